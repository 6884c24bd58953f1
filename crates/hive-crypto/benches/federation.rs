//! Federation tokens minted and verified per second, in both key modes (one core).
//!
//! `cargo bench -p hive-crypto --bench federation`. Prints numbers; asserts nothing. Results
//! go to docs/benchmarks.md.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use hive_crypto::federation::{Ed25519Seed, Expected, SharedSecret, Signer, SigningKey, Verifier};
use std::time::Instant;

const ROUNDS: u32 = 20_000;
const NOW: i64 = 1_767_225_600;
const A: &str = "https://a.example";
const B: &str = "https://b.example";

fn report(name: &str, rounds: u32, started: Instant) {
    let elapsed = started.elapsed();
    println!(
        "{name:<28} {:>9.0} per second   {:>6.1} µs each",
        f64::from(rounds) / elapsed.as_secs_f64(),
        elapsed.as_secs_f64() * 1e6 / f64::from(rounds),
    );
}

fn measure(mode: &str, signer: &Signer, verifier: &Verifier) {
    let started = Instant::now();
    let tokens: Vec<String> = (0..ROUNDS)
        .map(|_| signer.mint(B, "user:bench", NOW, 300).unwrap().token)
        .collect();
    report(&format!("{mode}: mint"), ROUNDS, started);
    let expected = Expected {
        audience: B,
        require_audience: true,
        require_jti: true,
        now: NOW,
        leeway: 30,
        max_lifetime: 300,
    };
    let started = Instant::now();
    for token in &tokens {
        verifier.verify(token, &expected).unwrap();
    }
    report(&format!("{mode}: verify"), ROUNDS, started);
}

fn main() {
    let seed = Ed25519Seed::generate().unwrap();
    let verifier = Verifier::ed25519(&[(A.to_owned(), seed.public_key())]).unwrap();
    measure(
        "EdDSA",
        &Signer::new(A, SigningKey::Ed25519(seed)),
        &verifier,
    );

    let secret =
        SharedSecret::new(&hive_crypto::federation::generate_shared_secret().unwrap()).unwrap();
    let verifier = Verifier::shared(&secret, &[A.to_owned()]);
    measure(
        "HS256",
        &Signer::new(A, SigningKey::Shared(secret)),
        &verifier,
    );
}
