use super::test_support::{TestKey, hmac_signed, key_set, part, unsigned};
use super::*;
use serde_json::json;

const NOW: i64 = 1_767_225_600; // 2026-01-01T00:00:00Z

struct Keys {
    rsa: TestKey,
    ec: TestKey,
    other_rsa: TestKey,
    other_ec: TestKey,
}

fn keys() -> Keys {
    Keys {
        rsa: TestKey::rsa("rsa-1"),
        ec: TestKey::ec("ec-1"),
        other_rsa: TestKey::rsa("rsa-1"),
        other_ec: TestKey::ec("ec-1"),
    }
}

/// A key set of `keys`' public halves, every algorithm accepted.
fn set_of(keys: &[&TestKey]) -> KeySet {
    KeySet::parse(key_set(keys).to_string().as_bytes(), &SigningAlg::ALL).unwrap()
}

fn corpus() -> Value {
    serde_json::from_str(include_str!("../../tests/data/jwt-attacks.json")).unwrap()
}

/// `{"now": N}` is now + N; `{"repeat": s, "times": n}` is `s` n times; anything else as it is.
fn resolve(value: &Value) -> Value {
    if let Some(offset) = value.get("now").and_then(Value::as_i64) {
        return json!(NOW + offset);
    }
    if let (Some(text), Some(times)) = (
        value.get("repeat").and_then(Value::as_str),
        value.get("times").and_then(Value::as_u64),
    ) {
        return json!(text.repeat(usize::try_from(times).unwrap()));
    }
    value.clone()
}

fn patched(mut base: Value, patch: Option<&Value>) -> Value {
    if let Some(patch) = patch.and_then(Value::as_object) {
        let object = base.as_object_mut().unwrap();
        for (name, value) in patch {
            if value.is_null() {
                object.remove(name);
            } else {
                object.insert(name.clone(), resolve(value));
            }
        }
    }
    base
}

fn default_claims(corpus: &Value) -> Value {
    json!({
        "iss": corpus["issuer"], "aud": corpus["client_id"], "nonce": corpus["nonce"],
        "sub": "user-1", "iat": NOW, "exp": NOW + 300,
        "email": "ada@example.com", "email_verified": true, "name": "Ada",
    })
}

fn build(case: &Value, keys: &Keys, claims: Value) -> String {
    let (key, other) = match case["key"].as_str() {
        Some("ec") => (&keys.ec, &keys.other_ec),
        _ => (&keys.rsa, &keys.other_rsa),
    };
    let header = patched(key.header(), case.get("header"));
    let claims = patched(claims, case.get("claims"));
    match case["signing"].as_str().unwrap() {
        "key" => key.sign(&header, &claims),
        "other_key" => other.sign(&header, &claims),
        "none" => unsigned(&header, &claims),
        "hmac_public_key" => hmac_signed(&header, &claims, &key.public_key_bytes()),
        "strip" => {
            let token = key.sign(&header, &claims);
            let (message, _) = token.rsplit_once('.').unwrap();
            format!("{message}.")
        }
        "tamper" => {
            let token = key.sign(&header, &claims);
            let changed = patched(claims, case.get("after_signing"));
            let parts: Vec<&str> = token.split('.').collect();
            format!("{}.{}.{}", parts[0], part(&changed), parts[2])
        }
        "raw" => case["token"].as_str().unwrap().to_owned(),
        other => panic!("unknown signing {other}"),
    }
}

fn expected<'a>(corpus: &'a Value) -> Expected<'a> {
    Expected {
        issuer: corpus["issuer"].as_str().unwrap(),
        client_id: corpus["client_id"].as_str().unwrap(),
        nonce: corpus["nonce"].as_str().unwrap(),
        now: NOW,
        leeway: 30,
    }
}

#[test]
fn the_attack_corpus_is_refused_and_valid_tokens_pass() {
    let corpus = corpus();
    let keys = keys();
    let set = set_of(&[&keys.rsa, &keys.ec]);
    let cases = corpus["cases"].as_array().unwrap();
    assert!(cases.len() >= 60, "the corpus lost cases");
    for case in cases {
        let name = case["name"].as_str().unwrap();
        let token = build(case, &keys, default_claims(&corpus));
        let outcome = verify_id_token(&token, &set, &expected(&corpus));
        let got = match &outcome {
            Ok(_) => "accepted",
            Err(rejection) => rejection.reason(),
        };
        assert_eq!(got, case["expect"].as_str().unwrap(), "case {name:?}");
    }
}

#[test]
fn accepted_claims_are_returned() {
    let corpus = corpus();
    let keys = keys();
    let set = set_of(&[&keys.ec]);
    let token = keys.ec.sign(&keys.ec.header(), &default_claims(&corpus));
    let claims = verify_id_token(&token, &set, &expected(&corpus)).unwrap();
    assert_eq!(claims.subject, "user-1");
    assert_eq!(claims.email.as_deref(), Some("ada@example.com"));
    assert!(claims.email_verified);
    assert_eq!(claims.name.as_deref(), Some("Ada"));
    // Only a JSON true is a verified email.
    let string_true = patched(
        default_claims(&corpus),
        Some(&json!({"email_verified": "true"})),
    );
    let token = keys.ec.sign(&keys.ec.header(), &string_true);
    assert!(
        !verify_id_token(&token, &set, &expected(&corpus))
            .unwrap()
            .email_verified
    );
}

#[test]
fn leeway_is_capped_at_thirty_seconds() {
    let corpus = corpus();
    let keys = keys();
    let set = set_of(&[&keys.rsa]);
    let claims = patched(default_claims(&corpus), Some(&json!({"exp": NOW - 40})));
    let token = keys.rsa.sign(&keys.rsa.header(), &claims);
    let generous = Expected {
        leeway: 3600,
        ..expected(&corpus)
    };
    assert_eq!(
        verify_id_token(&token, &set, &generous),
        Err(Rejection::Expired)
    );
}

#[test]
fn a_key_set_keeps_only_usable_signature_keys() {
    let keys = keys();
    let mut document = key_set(&[&keys.rsa, &keys.ec]);
    let list = document["keys"].as_array_mut().unwrap();
    list.push(json!({"kty": "oct", "kid": "hmac", "k": "c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0"}));
    let mut encryption = keys.other_rsa.jwk();
    encryption["kid"] = json!("enc");
    encryption["use"] = json!("enc");
    list.push(encryption);
    let mut no_kid = TestKey::ec("x").jwk();
    no_kid.as_object_mut().unwrap().remove("kid");
    list.push(no_kid);
    let mut mislabelled = TestKey::ec("mislabelled").jwk();
    mislabelled["alg"] = json!("RS256");
    list.push(mislabelled);
    list.push(json!({"kty": "EC", "kid": "p384", "crv": "P-384", "x": "AA", "y": "AA"}));
    list.push(json!({"kty": "RSA", "kid": "short", "n": "AQAB", "e": "AQAB"}));
    let set = KeySet::parse(document.to_string().as_bytes(), &SigningAlg::ALL).unwrap();
    assert_eq!(set.kids().collect::<Vec<_>>(), ["ec-1", "rsa-1"]);

    // Only the algorithms the provider announces.
    let rsa_only = KeySet::parse(document.to_string().as_bytes(), &[SigningAlg::Rs256]).unwrap();
    assert_eq!(rsa_only.kids().collect::<Vec<_>>(), ["rsa-1"]);

    let twice = key_set(&[&keys.rsa, &keys.other_rsa]).to_string();
    assert_eq!(
        KeySet::parse(twice.as_bytes(), &SigningAlg::ALL).unwrap_err(),
        KeySetError::DuplicateKid("rsa-1".into())
    );
    assert_eq!(
        KeySet::parse(b"[]", &SigningAlg::ALL).unwrap_err(),
        KeySetError::NotAKeySet
    );
}

#[test]
fn rejections_never_repeat_the_token() {
    let keys = keys();
    let corpus = corpus();
    let set = set_of(&[&keys.rsa]);
    let claims = patched(default_claims(&corpus), Some(&json!({"nonce": "other"})));
    let token = keys.rsa.sign(&keys.rsa.header(), &claims);
    let rejection = verify_id_token(&token, &set, &expected(&corpus)).unwrap_err();
    for shown in [
        rejection.to_string(),
        format!("{rejection:?}"),
        format!("{set:?}"),
    ] {
        assert!(!shown.contains(&token[..20]), "{shown}");
    }
}
