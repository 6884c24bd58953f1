//! Webhook signatures against vectors made with Stripe's own library
//! (`vectors/stripe_signatures.json`): Hive's verdict is each vector's `expected`, and Hive
//! accepts exactly what Stripe's library accepts, except where a vector says Hive is stricter
//! (`stricter_than_stripe`): there Stripe's library accepts and Hive refuses.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use hive_crypto::webhook_signature::{self, SignatureError, Verified};
use serde_json::Value;

fn vectors() -> Vec<Value> {
    let all: Value = serde_json::from_str(include_str!("vectors/stripe_signatures.json")).unwrap();
    assert!(
        all["generated_by"]
            .as_str()
            .is_some_and(|how| how.starts_with("stripe")),
        "the file names the stripe package that made it"
    );
    all["vectors"].as_array().unwrap().clone()
}

fn text<'a>(vector: &'a Value, field: &str) -> &'a str {
    vector[field]
        .as_str()
        .unwrap_or_else(|| panic!("{field} of {vector}"))
}

#[test]
fn every_stripe_vector_gets_its_expected_verdict() {
    let vectors = vectors();
    assert!(vectors.len() >= 20);
    for vector in &vectors {
        let name = text(vector, "name");
        let header = vector["header"].as_str();
        let result = webhook_signature::verify(
            header,
            text(vector, "payload").as_bytes(),
            text(vector, "secret").as_bytes(),
            vector["now"].as_i64().unwrap(),
        );
        let ours = result.as_ref().map_or_else(|e| e.reason(), |_| "ok");
        assert_eq!(ours, text(vector, "expected"), "{name}");

        let stripe_accepts = match text(vector, "stripe") {
            "ok" => true,
            "refused" => false,
            other => panic!("{name}: stripe verdict {other:?}"),
        };
        if vector.get("stricter_than_stripe").is_some() {
            assert!(stripe_accepts && result.is_err(), "{name}");
        } else {
            assert_eq!(result.is_ok(), stripe_accepts, "{name}");
        }
        if let Ok(Verified { signature, .. }) = &result {
            assert!(
                header.unwrap().contains(&format!("v1={signature}")),
                "{name}"
            );
        }
    }
}

#[test]
fn the_headers_stripe_made_are_the_ones_hive_makes() {
    for vector in vectors() {
        let name = text(&vector, "name");
        if !name.starts_with("valid") && !name.starts_with("exactly") {
            continue;
        }
        let header = text(&vector, "header");
        let t = header
            .strip_prefix("t=")
            .and_then(|rest| rest.split_once(','))
            .and_then(|(t, _)| t.parse::<i64>().ok())
            .unwrap();
        assert_eq!(
            webhook_signature::header(
                text(&vector, "secret").as_bytes(),
                t,
                text(&vector, "payload").as_bytes()
            ),
            header,
            "{name}"
        );
    }
}

#[test]
fn the_vectors_cover_every_reason() {
    let vectors = vectors();
    for reason in [
        "ok",
        SignatureError::Missing.reason(),
        SignatureError::Malformed.reason(),
        SignatureError::Stale.reason(),
        SignatureError::Mismatch.reason(),
    ] {
        assert!(vectors.iter().any(|v| v["expected"] == reason), "{reason}");
    }
}
