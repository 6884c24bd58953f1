use super::*;
use crate::jwt::test_support::TestKey;

const NOW: i64 = 1_767_225_600; // 2026-01-01T00:00:00Z
const A: &str = "https://a.example";
const B: &str = "https://b.example";
const C: &str = "https://c.example";

/// A secret as an operator would generate it: 32 random bytes, base64url.
fn strong_secret() -> SharedSecret {
    let text = URL_SAFE_NO_PAD.encode(crate::random_bytes::<32>().unwrap());
    SharedSecret::new(&text).unwrap()
}

fn seed() -> Ed25519Seed {
    Ed25519Seed::generate().unwrap()
}

/// Keys are generated per run; nothing secret is checked in.
struct Keys {
    b: SigningKey,
    c: SigningKey,
    other_seed: SigningKey,
    mesh: SigningKey,
    other_mesh: SigningKey,
}

impl Keys {
    fn new() -> Self {
        Self {
            b: SigningKey::Ed25519(seed()),
            c: SigningKey::Ed25519(seed()),
            other_seed: SigningKey::Ed25519(seed()),
            mesh: SigningKey::Shared(strong_secret()),
            other_mesh: SigningKey::Shared(strong_secret()),
        }
    }

    fn public(key: &SigningKey) -> [u8; 32] {
        match key {
            SigningKey::Ed25519(seed) => seed.public_key(),
            SigningKey::Shared(_) => unreachable!("not an Ed25519 key"),
        }
    }

    fn secret(key: &SigningKey) -> &SharedSecret {
        match key {
            SigningKey::Shared(secret) => secret,
            SigningKey::Ed25519(_) => unreachable!("not a shared secret"),
        }
    }

    fn ed25519_verifier(&self) -> Verifier {
        Verifier::ed25519(&[
            (B.to_owned(), Self::public(&self.b)),
            (C.to_owned(), Self::public(&self.c)),
        ])
        .unwrap()
    }

    fn shared_verifier(&self) -> Verifier {
        Verifier::shared(Self::secret(&self.mesh), &[B.to_owned(), C.to_owned()])
    }
}

fn kid_of(key: &SigningKey) -> String {
    Signer::new(B, clone_key(key)).kid().to_owned()
}

fn clone_key(key: &SigningKey) -> SigningKey {
    match key {
        SigningKey::Shared(secret) => SigningKey::Shared(secret.clone()),
        SigningKey::Ed25519(seed) => SigningKey::Ed25519(Ed25519Seed {
            seed: seed.seed.clone(),
            public_key: seed.public_key,
        }),
    }
}

fn part(value: &Value) -> String {
    URL_SAFE_NO_PAD.encode(value.to_string())
}

fn expected() -> Expected<'static> {
    Expected {
        audience: A,
        require_audience: true,
        require_jti: true,
        now: NOW,
        leeway: 30,
        max_lifetime: 300,
    }
}

fn default_claims() -> Value {
    json!({
        "iss": B, "aud": A, "sub": "agent:planner", "jti": "9f2c4e71a0b35d86e1f7c2a94b0d6e38",
        "iat": NOW, "exp": NOW + 300,
    })
}

fn header_for(key: &SigningKey) -> Value {
    json!({ "alg": key.alg(), "typ": TOKEN_TYPE, "kid": kid_of(key) })
}

fn corpus() -> Value {
    serde_json::from_str(include_str!("../../tests/data/federation-jwt-attacks.json")).unwrap()
}

/// A case's keys: (the mode's key, peer C's, an unconfigured one of the same kind, the other
/// mode's key).
fn case_keys<'k>(keys: &'k Keys, mode: &str) -> [&'k SigningKey; 4] {
    match mode {
        "ed25519" => [&keys.b, &keys.c, &keys.other_seed, &keys.mesh],
        "shared" => [&keys.mesh, &keys.c, &keys.other_mesh, &keys.b],
        other => panic!("unknown mode {other}"),
    }
}

/// `{"now": N}`, `{"repeat": s, "times": n}`, `{"kid_of": k}`; anything else as it is.
fn resolve(value: &Value, keys: &[&SigningKey; 4]) -> Value {
    if let Some(offset) = value.get("now").and_then(Value::as_i64) {
        return json!(NOW + offset);
    }
    if let (Some(text), Some(times)) = (
        value.get("repeat").and_then(Value::as_str),
        value.get("times").and_then(Value::as_u64),
    ) {
        return json!(text.repeat(usize::try_from(times).unwrap()));
    }
    if let Some(name) = value.get("kid_of").and_then(Value::as_str) {
        let key = match name {
            "key" => keys[0],
            "peer_c" => keys[1],
            "other_key" => keys[2],
            "other_mode" => keys[3],
            other => panic!("unknown key {other}"),
        };
        return json!(kid_of(key));
    }
    value.clone()
}

fn patched(mut base: Value, patch: Option<&Value>, keys: &[&SigningKey; 4]) -> Value {
    if let Some(patch) = patch.and_then(Value::as_object) {
        let object = base.as_object_mut().unwrap();
        for (name, value) in patch {
            if value.is_null() {
                object.remove(name);
            } else {
                object.insert(name.clone(), resolve(value, keys));
            }
        }
    }
    base
}

fn build(case: &Value, keys: &Keys) -> String {
    let mode = case["mode"].as_str().unwrap();
    let set = case_keys(keys, mode);
    let [key, peer_c, other, other_mode] = set;
    let signing = case["signing"].as_str().unwrap();
    let signer = match signing {
        "peer_c" => peer_c,
        "unknown_key" => other,
        "other_mode" => other_mode,
        _ => key,
    };
    // A forgery keeps the configured key's kid; other keys bring their own.
    let default_kid = if signing == "other_key" { key } else { signer };
    let mut header = header_for(signer);
    header["kid"] = json!(kid_of(default_kid));
    let header = patched(header, case.get("header"), &set);
    let claims = patched(default_claims(), case.get("claims"), &set);
    match signing {
        "key" | "peer_c" | "unknown_key" | "other_mode" => {
            sign_parts(signer, &header, &claims).unwrap()
        }
        "other_key" => sign_parts(other, &header, &claims).unwrap(),
        "hmac_public_key" => {
            let message = format!("{}.{}", part(&header), part(&claims));
            let mut mac = HmacSha256::new_from_slice(&Keys::public(&keys.b)).unwrap();
            mac.update(message.as_bytes());
            format!(
                "{message}.{}",
                URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes())
            )
        }
        "none" => format!("{}.{}.", part(&header), part(&claims)),
        "strip" => {
            let token = sign_parts(key, &header, &claims).unwrap();
            let (message, _) = token.rsplit_once('.').unwrap();
            format!("{message}.")
        }
        "pad_signature" => format!("{}=", sign_parts(key, &header, &claims).unwrap()),
        "tamper" => {
            let token = sign_parts(key, &header, &claims).unwrap();
            let changed = patched(claims, case.get("after_signing"), &set);
            let parts: Vec<&str> = token.split('.').collect();
            format!("{}.{}.{}", parts[0], part(&changed), parts[2])
        }
        "claims_text" => {
            let message = format!(
                "{}.{}",
                part(&header),
                URL_SAFE_NO_PAD.encode(case["claims_text"].as_str().unwrap())
            );
            let signature = key.sign(message.as_bytes()).unwrap();
            format!("{message}.{}", URL_SAFE_NO_PAD.encode(signature))
        }
        "raw" => resolve(&case["token"], &set).as_str().unwrap().to_owned(),
        other => panic!("unknown signing {other}"),
    }
}

fn case_expected(case: &Value) -> Expected<'static> {
    let mut expected = expected();
    if let Some(patch) = case.get("expected") {
        if let Some(flag) = patch.get("require_audience").and_then(Value::as_bool) {
            expected.require_audience = flag;
        }
        if let Some(flag) = patch.get("require_jti").and_then(Value::as_bool) {
            expected.require_jti = flag;
        }
    }
    expected
}

fn outcome(result: &Result<PeerClaims, Rejection>) -> &'static str {
    match result {
        Ok(_) => "accepted",
        Err(rejection) => rejection.reason(),
    }
}

#[test]
fn the_attack_corpus_is_refused_and_valid_tokens_pass() {
    let corpus = corpus();
    assert_eq!(corpus["audience"], A);
    assert_eq!(corpus["issuer"], B);
    assert_eq!(corpus["other_issuer"], C);
    let keys = Keys::new();
    let ed25519 = keys.ed25519_verifier();
    let shared = keys.shared_verifier();
    let cases = corpus["cases"].as_array().unwrap();
    assert!(cases.len() >= 120, "the corpus lost cases");
    for case in cases {
        let name = case["name"].as_str().unwrap();
        let verifier = match case["mode"].as_str().unwrap() {
            "ed25519" => &ed25519,
            _ => &shared,
        };
        let token = build(case, &keys);
        let got = outcome(&verifier.verify(&token, &case_expected(case)));
        assert_eq!(got, case["expect"].as_str().unwrap(), "case {name:?}");
    }
}

#[test]
fn an_ed25519_round_trip_returns_the_claims() {
    let seed = seed();
    let public_key = seed.public_key();
    let signer = Signer::new(B, SigningKey::Ed25519(seed));
    assert_eq!(signer.kid(), ed25519_kid(&public_key));
    assert!(signer.kid().starts_with("ed25519-") && signer.kid().len() == 24);
    let minted = signer.mint(A, "user:ada", NOW, 300).unwrap();
    assert_eq!(minted.expires_at, NOW + 300);
    let verifier = Verifier::ed25519(&[(B.to_owned(), public_key)]).unwrap();
    let claims = verifier.verify(&minted.token, &expected()).unwrap();
    assert_eq!(
        claims,
        PeerClaims {
            issuer: B.to_owned(),
            subject: "user:ada".to_owned(),
            jti: Some(minted.jti.clone()),
            issued_at: NOW,
            expires_at: NOW + 300,
            audience: Some(A.to_owned()),
        }
    );
    // The header is exactly what a peer expects.
    let header: Value = serde_json::from_slice(
        &URL_SAFE_NO_PAD
            .decode(minted.token.split('.').next().unwrap())
            .unwrap(),
    )
    .unwrap();
    assert_eq!(
        header,
        json!({"alg": "EdDSA", "typ": TOKEN_TYPE, "kid": signer.kid()})
    );
}

#[test]
fn a_shared_secret_round_trip_returns_the_claims() {
    let secret = strong_secret();
    let verifier = Verifier::shared(&secret, &[B.to_owned(), C.to_owned()]);
    let kid = secret.kid().to_owned();
    let signer = Signer::new(C, SigningKey::Shared(secret));
    assert_eq!(signer.kid(), kid);
    assert_eq!(verifier.kids().collect::<Vec<_>>(), [kid.as_str()]);
    let minted = signer.mint(A, "agent:7", NOW, 60).unwrap();
    let claims = verifier.verify(&minted.token, &expected()).unwrap();
    assert_eq!(claims.issuer, C);
    assert_eq!(claims.subject, "agent:7");
    assert_eq!(claims.jti.as_deref(), Some(minted.jti.as_str()));
    assert_eq!((claims.issued_at, claims.expires_at), (NOW, NOW + 60));
    // Not at another audience, nor with an Ed25519 verifier.
    let elsewhere = Expected {
        audience: B,
        ..expected()
    };
    assert_eq!(
        verifier.verify(&minted.token, &elsewhere),
        Err(Rejection::WrongAudience)
    );
    let ed25519 = Verifier::ed25519(&[(C.to_owned(), seed().public_key())]).unwrap();
    assert_eq!(
        ed25519.verify(&minted.token, &expected()),
        Err(Rejection::AlgNotAllowed)
    );
}

/// A token signed by B with the default claims and `patch`, verified at `leeway`.
fn verify_patched(keys: &Keys, patch: Value, leeway: i64, max_lifetime: i64) -> &'static str {
    let claims = patched(default_claims(), Some(&patch), &case_keys(keys, "ed25519"));
    let token = sign_parts(&keys.b, &header_for(&keys.b), &claims).unwrap();
    let expected = Expected {
        leeway,
        max_lifetime,
        ..expected()
    };
    outcome(&keys.ed25519_verifier().verify(&token, &expected))
}

#[test]
fn clock_skew_edges_for_exp_iat_and_nbf() {
    let keys = Keys::new();
    for leeway in [0, 30] {
        // exp: accepted while now < exp + leeway.
        for (behind, want) in [
            (leeway - 1, "accepted"),
            (leeway, "expired"),
            (leeway + 1, "expired"),
        ] {
            let exp = NOW - behind;
            let patch = json!({"iat": exp - 300, "exp": exp});
            assert_eq!(
                verify_patched(&keys, patch, leeway, 300),
                want,
                "exp now-{behind} at leeway {leeway}"
            );
        }
        // iat and nbf: accepted up to now + leeway.
        for (ahead, want) in [
            (leeway - 1, "accepted"),
            (leeway, "accepted"),
            (leeway + 1, "issued_in_future"),
        ] {
            let iat = NOW + ahead;
            let patch = json!({"iat": iat, "exp": iat + 300});
            assert_eq!(
                verify_patched(&keys, patch, leeway, 300),
                want,
                "iat now+{ahead} at leeway {leeway}"
            );
        }
        for (ahead, want) in [
            (leeway - 1, "accepted"),
            (leeway, "accepted"),
            (leeway + 1, "not_yet_valid"),
        ] {
            let patch = json!({"nbf": NOW + ahead});
            assert_eq!(
                verify_patched(&keys, patch, leeway, 300),
                want,
                "nbf now+{ahead} at leeway {leeway}"
            );
        }
    }
}

#[test]
fn leeway_is_clamped_to_zero_through_three_hundred() {
    let keys = Keys::new();
    let expired = |behind: i64| json!({"iat": NOW - behind - 300, "exp": NOW - behind});
    assert_eq!(verify_patched(&keys, expired(299), 3600, 300), "accepted");
    assert_eq!(verify_patched(&keys, expired(300), 3600, 300), "expired");
    // A negative leeway counts as none, not as a stricter clock.
    assert_eq!(verify_patched(&keys, expired(-1), -60, 300), "accepted");
    assert_eq!(verify_patched(&keys, expired(0), -60, 300), "expired");
}

#[test]
fn lifetime_at_the_maximum_passes_and_one_second_more_does_not() {
    let keys = Keys::new();
    for max in [30, 60, 300, 3600] {
        let at_max = json!({"exp": NOW + max});
        let over = json!({"exp": NOW + max + 1});
        assert_eq!(verify_patched(&keys, at_max, 30, max), "accepted", "{max}");
        assert_eq!(
            verify_patched(&keys, over, 30, max),
            "lifetime_too_long",
            "{max}"
        );
    }
    // A configured maximum above an hour still means an hour.
    let long = json!({"exp": NOW + 3601});
    assert_eq!(
        verify_patched(&keys, long, 30, i64::MAX),
        "lifetime_too_long"
    );
}

#[test]
fn an_unknown_key_under_a_known_kid_is_a_bad_signature() {
    let keys = Keys::new();
    let mut header = header_for(&keys.other_seed);
    header["kid"] = json!(kid_of(&keys.b));
    let token = sign_parts(&keys.other_seed, &header, &default_claims()).unwrap();
    assert_eq!(
        keys.ed25519_verifier().verify(&token, &expected()),
        Err(Rejection::BadSignature)
    );
}

#[test]
fn a_peer_key_cannot_speak_for_another_peer() {
    let keys = Keys::new();
    let verifier = keys.ed25519_verifier();
    let b_as_c = Signer::new(C, clone_key(&keys.b))
        .mint(A, "user:mallory", NOW, 300)
        .unwrap();
    assert_eq!(
        verifier.verify(&b_as_c.token, &expected()),
        Err(Rejection::WrongIssuer)
    );
    let b_as_b = Signer::new(B, clone_key(&keys.b))
        .mint(A, "user:mallory", NOW, 300)
        .unwrap();
    assert_eq!(
        verifier.verify(&b_as_b.token, &expected()).unwrap().issuer,
        B
    );
}

#[test]
fn a_key_names_one_issuer_but_an_issuer_may_have_several_keys() {
    let key = seed().public_key();
    let twice = Verifier::ed25519(&[(B.to_owned(), key), (C.to_owned(), key)]).unwrap_err();
    assert_eq!(twice.kid, ed25519_kid(&key));
    let rotated = Verifier::ed25519(&[(B.to_owned(), key), (B.to_owned(), seed().public_key())]);
    assert_eq!(rotated.unwrap().kids().count(), 2);
}

#[test]
fn weak_secrets_are_refused_by_each_rule() {
    let random = URL_SAFE_NO_PAD.encode(crate::random_bytes::<32>().unwrap());
    let cases = [
        (random.repeat(96), WeakSecret::TooLong),
        // Passphrases and hand-made values are not encodings of random bytes.
        (
            "acme-corp-hive-federation-key-2026".to_owned(),
            WeakSecret::NotEncoded,
        ),
        (
            "correct horse battery staple mesh".to_owned(),
            WeakSecret::NotEncoded,
        ),
        (
            "CorrectHorseBatteryStapleMeshAcmeCorp2026Prod".to_owned(),
            WeakSecret::NotEncoded,
        ),
        (
            "Xk9#mQ2$vL7&pR4!wN8@zT5^bY3*hJ6%".to_owned(),
            WeakSecret::NotEncoded,
        ),
        (format!("{random}=="), WeakSecret::NotEncoded),
        (String::new(), WeakSecret::TooFewBytes),
        (
            URL_SAFE_NO_PAD.encode(crate::random_bytes::<31>().unwrap()),
            WeakSecret::TooFewBytes,
        ),
        (random_hex_of(31), WeakSecret::TooFewBytes),
        // A passphrase run through base64 or hex is still a passphrase.
        (
            base64::engine::general_purpose::STANDARD
                .encode("correct horse battery staple mesh key"),
            WeakSecret::EncodesText,
        ),
        (
            URL_SAFE_NO_PAD.encode("acme-corp-hive-federation-key-2026"),
            WeakSecret::EncodesText,
        ),
        (
            hex::encode("acme-corp-hive-federation-key-2026"),
            WeakSecret::EncodesText,
        ),
        (
            "acme-corp-hive-federation-key-2026-prod-mesh".to_owned(),
            WeakSecret::NotGenerated,
        ),
        (
            format!("20260101{}", "31415926".repeat(7)),
            WeakSecret::NotGenerated,
        ),
        ("Xy".repeat(22), WeakSecret::RepeatedPattern),
        ("Xk9mQ2vL".repeat(6), WeakSecret::RepeatedPattern),
        (
            "Xk9mQ2vL7pR4wN8zT5bY3hJ6PasswordQ2vL7pR4wN8z".to_owned(),
            WeakSecret::DefaultWord,
        ),
        (
            "Xk9mQ2vL7pR4wN8zT5bY3hJ6abcdefghQ2vL7pR4wN8z".to_owned(),
            WeakSecret::Run,
        ),
        (
            "Xk9mQ2vL7pR4wN8zT5bY3hJ6zzzzzzzzQ2vL7pR4wN8z".to_owned(),
            WeakSecret::Run,
        ),
        (
            "1z3XZxXYyzZx23yxXx21Y2YyYZYYXXxxYY1zx3xYx21X".to_owned(),
            WeakSecret::FewDistinct,
        ),
    ];
    for (secret, rule) in cases {
        assert_eq!(SharedSecret::new(&secret).unwrap_err(), rule, "{secret:?}");
    }
    // Generated secrets pass, in every encoding `openssl rand` and Hive write.
    let standard = base64::engine::general_purpose::STANDARD;
    for _ in 0..200 {
        let bytes = crate::random_bytes::<32>().unwrap();
        SharedSecret::new(&hex::encode(bytes)).unwrap();
        SharedSecret::new(&hex::encode_upper(bytes)).unwrap();
        SharedSecret::new(&standard.encode(bytes)).unwrap();
        SharedSecret::new(&URL_SAFE_NO_PAD.encode(bytes)).unwrap();
        SharedSecret::new(&generate_shared_secret().unwrap()).unwrap();
    }
    let generated = generate_shared_secret().unwrap();
    assert_eq!(generated.len(), 43);
    assert_ne!(*generated, *generate_shared_secret().unwrap());
}

fn random_hex_of(bytes: usize) -> String {
    crate::random_hex(bytes).unwrap()
}

#[test]
fn the_shared_kid_is_fixed_and_derived_from_nothing() {
    let one = strong_secret();
    let other = strong_secret();
    assert_eq!(one.kid(), SHARED_KID);
    assert_eq!(other.kid(), SHARED_KID);
    let signer = Signer::new(B, SigningKey::Shared(one.clone()));
    assert_eq!(signer.kid(), "hs256");
    let token = signer.mint(A, "agent:7", NOW, 60).unwrap().token;
    let header: Value = serde_json::from_slice(
        &URL_SAFE_NO_PAD
            .decode(token.split('.').next().unwrap())
            .unwrap(),
    )
    .unwrap();
    assert_eq!(header["kid"], "hs256");
    // A peer under the same secret accepts it; a peer under another secret does not.
    let same = Verifier::shared(&one, &[B.to_owned()]);
    assert_eq!(same.verify(&token, &expected()).unwrap().issuer, B);
    let different = Verifier::shared(&other, &[B.to_owned()]);
    assert_eq!(
        different.verify(&token, &expected()).unwrap_err(),
        Rejection::BadSignature
    );
}

#[test]
fn seeds_are_read_from_hex_and_base64url() {
    // RFC 8032 section 7.1, test 1.
    let hex_seed = "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60";
    let public = "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a";
    let from_hex = Ed25519Seed::parse(hex_seed).unwrap();
    assert_eq!(hex::encode(from_hex.public_key()), public);
    let b64 = URL_SAFE_NO_PAD.encode(hex::decode(hex_seed).unwrap());
    assert_eq!(b64.len(), 43);
    let from_b64 = Ed25519Seed::parse(&format!("  {b64}\n")).unwrap();
    assert_eq!(from_b64.public_key(), from_hex.public_key());
    let upper = Ed25519Seed::parse(&format!("\t{}\n", hex_seed.to_uppercase())).unwrap();
    assert_eq!(upper.public_key(), from_hex.public_key());
    assert_eq!(
        parse_public_key(&from_hex.public_key_text()).unwrap(),
        from_hex.public_key()
    );

    for (text, error) in [
        ("", KeyTextError::BadLength),
        (&hex_seed[..62], KeyTextError::BadLength),
        (&format!("{hex_seed}00"), KeyTextError::BadLength),
        (&format!("{b64}="), KeyTextError::BadLength),
        (&b64[..42], KeyTextError::BadLength),
        (&format!("{}g", &hex_seed[..63]), KeyTextError::BadEncoding),
        (&format!("{}+", &b64[..42]), KeyTextError::BadEncoding),
        (&format!("{}/", &b64[..42]), KeyTextError::BadEncoding),
        (
            &format!("{} ", &hex_seed[..32]).repeat(2)[..64],
            KeyTextError::BadEncoding,
        ),
    ] {
        assert_eq!(Ed25519Seed::parse(text).unwrap_err(), error, "{text:?}");
    }
    assert_ne!(seed().public_key(), seed().public_key());
}

#[test]
fn peer_public_keys_are_43_base64url_characters() {
    let seed = seed();
    let text = seed.public_key_text();
    assert_eq!(text.len(), 43);
    assert_eq!(parse_public_key(&text).unwrap(), seed.public_key());
    assert_eq!(
        parse_public_key(&format!(" {text} ")).unwrap(),
        seed.public_key()
    );
    assert_eq!(
        parse_public_key(&format!("{text}=")),
        Err(KeyTextError::BadLength)
    );
    assert_eq!(
        parse_public_key(&hex::encode(seed.public_key())),
        Err(KeyTextError::BadLength)
    );
    assert_eq!(
        parse_public_key(&format!("{}*", &text[..42])),
        Err(KeyTextError::BadEncoding)
    );
}

#[test]
fn debug_never_shows_key_material() {
    let hex_seed = "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60";
    let seed = Ed25519Seed::parse(hex_seed).unwrap();
    let b64 = URL_SAFE_NO_PAD.encode(hex::decode(hex_seed).unwrap());
    let text = URL_SAFE_NO_PAD.encode(crate::random_bytes::<32>().unwrap());
    let secret = SharedSecret::new(&text).unwrap();
    let verifier = Verifier::shared(&secret, &[B.to_owned()]);
    let shown = [
        format!("{seed:?}"),
        format!("{secret:?}"),
        format!("{verifier:?}"),
        format!("{:?}", Signer::new(B, SigningKey::Ed25519(seed))),
        format!("{:?}", Signer::new(B, SigningKey::Shared(secret))),
    ];
    for shown in shown {
        for needle in [&hex_seed[..16], &b64[..16], &text[..16], "157, 97, 177"] {
            assert!(!shown.contains(needle), "{shown}");
        }
        assert!(shown.contains("kid") || shown.contains("hs256"), "{shown}");
    }
}

#[test]
fn every_mint_has_a_fresh_jti_of_at_least_128_bits() {
    let signer = Signer::new(B, SigningKey::Ed25519(seed()));
    let mut seen = std::collections::HashSet::new();
    for _ in 0..100 {
        let minted = signer.mint(A, "user:ada", NOW, 300).unwrap();
        assert_eq!(minted.jti.len(), 32, "16 bytes as hex");
        assert!(minted.jti.bytes().all(|b| b.is_ascii_hexdigit()));
        assert!(seen.insert(minted.jti));
    }
}

#[test]
fn mint_refuses_what_a_peer_would_refuse() {
    let signer = Signer::new(B, SigningKey::Shared(strong_secret()));
    assert_eq!(signer.issuer(), B);
    for ttl in [0, 29, 3601, -1] {
        assert_eq!(signer.mint(A, "u", NOW, ttl), Err(MintError::BadTtl));
    }
    assert!(signer.mint(A, "u", NOW, 30).is_ok());
    assert!(signer.mint(A, "u", NOW, 3600).is_ok());
    assert_eq!(signer.mint(A, "", NOW, 300), Err(MintError::BadSubject));
    let long = "s".repeat(256);
    assert_eq!(signer.mint(A, &long, NOW, 300), Err(MintError::BadSubject));
    assert_eq!(signer.mint("", "u", NOW, 300), Err(MintError::BadAudience));
    assert_eq!(
        signer.mint(A, "u", i64::MAX - 10, 300),
        Err(MintError::BadTtl)
    );
}

#[test]
fn the_oidc_verifier_refuses_federation_tokens() {
    use crate::jwt;
    let provider = TestKey::rsa("rsa-1");
    let set = jwt::KeySet::parse(
        jwt::test_support::key_set(&[&provider])
            .to_string()
            .as_bytes(),
        &jwt::SigningAlg::ALL,
    )
    .unwrap();
    let oidc = jwt::Expected {
        issuer: B,
        client_id: A,
        nonce: "n",
        now: NOW,
        leeway: 30,
    };
    // A real federation token: EdDSA is no ID token algorithm.
    let minted = Signer::new(B, SigningKey::Ed25519(seed()))
        .mint(A, "user:ada", NOW, 300)
        .unwrap();
    assert_eq!(
        jwt::verify_id_token(&minted.token, &set, &oidc),
        Err(jwt::Rejection::AlgNotAllowed)
    );
    // Even signed by the provider's own key, the federation typ is not an ID token's.
    let mut header = provider.header();
    header["typ"] = json!(TOKEN_TYPE);
    let mut claims = default_claims();
    claims["nonce"] = json!("n");
    let token = provider.sign(&header, &claims);
    assert_eq!(
        jwt::verify_id_token(&token, &set, &oidc),
        Err(jwt::Rejection::WrongType)
    );
    // And an ID token is no federation token.
    let id_token = provider.sign(&provider.header(), &claims);
    let keys = Keys::new();
    assert_eq!(
        keys.ed25519_verifier().verify(&id_token, &expected()),
        Err(Rejection::AlgNotAllowed)
    );
}

#[test]
fn rejections_never_repeat_the_token() {
    let keys = Keys::new();
    let minted = Signer::new(C, clone_key(&keys.b))
        .mint(A, "user:ada", NOW, 300)
        .unwrap();
    let rejection = keys
        .ed25519_verifier()
        .verify(&minted.token, &expected())
        .unwrap_err();
    assert_eq!(rejection.reason(), "wrong_issuer");
    for shown in [rejection.to_string(), format!("{rejection:?}")] {
        assert!(!shown.contains(&minted.token[..20]), "{shown}");
        assert!(!shown.contains(&minted.jti), "{shown}");
    }
}
