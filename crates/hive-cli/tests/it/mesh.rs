//! `hive mesh`: keys written private and never printed, manifests signed and verified, and a
//! bad manifest stopping `hive config check`.

use crate::process::run_to_exit;
use hive_crypto::federation::Ed25519Seed;
use hive_crypto::manifest::{Manifest, ManifestPeer, sign_manifest};
use hive_testkit::capture;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

/// `hive mesh keygen --out NAME` in `dir`: the printed public key and kid.
async fn keygen(dir: &Path, name: &str) -> (String, String) {
    let (status, stdout, stderr) = run_to_exit(dir, &["mesh", "keygen", "--out", name], &[]).await;
    assert!(status.success(), "{stdout}{stderr}");
    let field = |label: &str| {
        stdout
            .lines()
            .find_map(|line| line.strip_prefix(label))
            .unwrap_or_else(|| panic!("no {label} in {stdout}"))
            .trim()
            .to_owned()
    };
    (field("public key:"), field("kid:"))
}

/// Runs `hive <args>` in `dir` and checks it fails with exit 1 saying `says`; returns what it
/// printed.
async fn refused(dir: &Path, args: &[&str], says: &str) -> String {
    let (status, stdout, stderr) = run_to_exit(dir, args, &[]).await;
    assert_eq!(status.code(), Some(1), "{args:?}: {stdout}");
    assert!(stderr.contains(says), "{args:?}: {stderr}");
    format!("{stdout}{stderr}")
}

#[tokio::test]
async fn keygen_writes_a_private_seed_once_and_never_prints_it() {
    let dir = tempfile::tempdir().unwrap();
    let (public_key, kid) = keygen(dir.path(), "federation.seed").await;
    let path = dir.path().join("federation.seed");
    let seed = std::fs::read_to_string(&path).unwrap();
    capture::canary(seed.trim());
    assert_eq!(seed.len(), 65, "64 hex characters and a newline");
    assert!(seed.ends_with('\n'));
    assert!(seed.trim().bytes().all(|b| b.is_ascii_hexdigit()));
    let mode = std::fs::metadata(&path).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600);
    let parsed = Ed25519Seed::parse(&seed).unwrap();
    assert_eq!(parsed.public_key_text(), public_key);
    assert_eq!(parsed.kid(), kid);

    // Never overwritten.
    let printed = refused(
        dir.path(),
        &["mesh", "keygen", "--out", "federation.seed"],
        "refusing to overwrite",
    )
    .await;
    assert!(!printed.contains(seed.trim()));
    assert_eq!(std::fs::read_to_string(&path).unwrap(), seed);

    let (status, stdout, stderr) = run_to_exit(
        dir.path(),
        &["mesh", "public-key", "--seed-file", "federation.seed"],
        &[],
    )
    .await;
    assert!(status.success(), "{stderr}");
    assert_eq!(stdout.trim(), public_key);
    assert!(!stdout.contains(seed.trim()) && !stderr.contains(seed.trim()));

    std::fs::write(dir.path().join("junk"), "not a seed\n").unwrap();
    refused(
        dir.path(),
        &["mesh", "public-key", "--seed-file", "junk"],
        "does not hold an Ed25519 seed",
    )
    .await;
}

#[tokio::test]
async fn a_manifest_is_signed_verified_and_refused_when_tampered_with() {
    let dir = tempfile::tempdir().unwrap();
    let (operator_key, operator_kid) = keygen(dir.path(), "operator.seed").await;
    let (b_key, _) = keygen(dir.path(), "b.seed").await;
    let (c_key, _) = keygen(dir.path(), "c.seed").await;
    let b = format!("https://b.example/={b_key}");
    let c = format!("https://c.example:8443={c_key}");
    let (status, stdout, stderr) = run_to_exit(
        dir.path(),
        &[
            "mesh",
            "manifest",
            "sign",
            "--key",
            "operator.seed",
            "--peer",
            &b,
            "--peer",
            &c,
            "--issuer",
            "ops@a.example",
            "--expires-in-days",
            "30",
            "--out",
            "peers.manifest",
        ],
        &[],
    )
    .await;
    assert!(status.success(), "{stdout}{stderr}");
    assert!(stdout.contains(&operator_key), "{stdout}");

    let verify = |key: &str| {
        [
            "mesh",
            "manifest",
            "verify",
            "--file",
            "peers.manifest",
            "--public-key",
        ]
        .into_iter()
        .chain([key])
        .map(str::to_owned)
        .collect::<Vec<String>>()
    };
    let args = verify(&operator_key);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let (status, stdout, stderr) = run_to_exit(dir.path(), &args, &[]).await;
    assert!(status.success(), "{stderr}");
    assert!(stdout.contains(&operator_kid), "{stdout}");
    assert!(stdout.contains("issuer: ops@a.example"), "{stdout}");
    assert!(
        stdout.contains(&format!("peer https://b.example {b_key}")),
        "{stdout}"
    );
    assert!(
        stdout.contains(&format!("peer https://c.example:8443 {c_key}")),
        "{stdout}"
    );

    // Another operator key.
    let wrong = verify(&b_key);
    let wrong: Vec<&str> = wrong.iter().map(String::as_str).collect();
    refused(dir.path(), &wrong, "manifest refused").await;

    // A byte of the payload changed.
    let path = dir.path().join("peers.manifest");
    let text = std::fs::read_to_string(&path).unwrap();
    let mut parts: Vec<String> = text.trim().split('.').map(str::to_owned).collect();
    let last = parts[1].pop().unwrap();
    parts[1].push(if last == 'A' { 'B' } else { 'A' });
    std::fs::write(&path, parts.join(".")).unwrap();
    refused(dir.path(), &args, "manifest refused").await;

    // Bad peers are refused before anything is written.
    for peer in [
        "https://b.example",
        "ftp://b.example=AAAA",
        "https://b.example=short",
    ] {
        let args = [
            "mesh",
            "manifest",
            "sign",
            "--key",
            "operator.seed",
            "--peer",
            peer,
            "--out",
            "bad",
        ];
        refused(dir.path(), &args, "--peer").await;
        assert!(!dir.path().join("bad").exists());
    }
}

#[tokio::test]
async fn config_check_pins_manifest_keys_and_refuses_a_bad_manifest() {
    let dir = tempfile::tempdir().unwrap();
    keygen(dir.path(), "federation.seed").await;
    let operator = Ed25519Seed::generate().unwrap();
    let peer = Ed25519Seed::generate().unwrap();
    let write = |issued_at: i64, expires_at: Option<i64>| {
        let manifest = Manifest {
            issuer: "ops".to_owned(),
            issued_at,
            expires_at,
            peers: vec![ManifestPeer {
                origin: "https://b.example".to_owned(),
                public_key: peer.public_key(),
            }],
        };
        let text = sign_manifest(&operator, &manifest).unwrap();
        std::fs::write(dir.path().join("peers.manifest"), text).unwrap();
    };
    let now = i64::try_from(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs(),
    )
    .unwrap();
    let operator_key = operator.public_key_text();
    let vars = [
        ("MESH_FEDERATION_ENABLED", "true"),
        ("MESH_FEDERATION_PEERS", "https://b.example"),
        ("MESH_FEDERATION_ED25519_SEED_FILE", "federation.seed"),
        ("MESH_FEDERATION_PEER_MANIFEST_FILE", "peers.manifest"),
        ("MESH_FEDERATION_MANIFEST_PUBLIC_KEY", operator_key.as_str()),
    ];
    write(now, Some(now + 86_400));
    let (status, stdout, stderr) = run_to_exit(dir.path(), &["config", "check"], &vars).await;
    assert!(status.success(), "{stdout}{stderr}");
    assert!(!stdout.contains("cannot call in"), "{stdout}");

    write(now - 7200, Some(now - 3600));
    let (status, stdout, stderr) = run_to_exit(dir.path(), &["config", "check"], &vars).await;
    assert_eq!(status.code(), Some(1), "{stdout}");
    assert!(
        stderr.contains("MESH_FEDERATION_PEER_MANIFEST_FILE"),
        "{stderr}"
    );
    assert!(stderr.contains("expired"), "{stderr}");

    write(now, None);
    let mut wrong = vars.to_vec();
    let other = peer.public_key_text();
    wrong[4] = ("MESH_FEDERATION_MANIFEST_PUBLIC_KEY", &other);
    let (status, _, stderr) = run_to_exit(dir.path(), &["config", "check"], &wrong).await;
    assert_eq!(status.code(), Some(1));
    assert!(
        stderr.contains("MESH_FEDERATION_PEER_MANIFEST_FILE"),
        "{stderr}"
    );
}

/// Shared secrets people choose; each must stop `hive config check`, in production and not.
const PASSPHRASES: [&str; 8] = [
    "acme-corp-hive-federation-key-2026",
    "correct horse battery staple mesh",
    "CorrectHorseBatteryStapleMeshAcmeCorp2026Prod",
    "acme-corp-hive-federation-key-2026-prod-mesh",
    "Tr0ub4dor&3-hive-federation-mesh-key-prod",
    "our hive mesh shared key for the acme corporation",
    // A passphrase run through base64 or hex.
    "Y29ycmVjdCBob3JzZSBiYXR0ZXJ5IHN0YXBsZSBtZXNoIGtleQ==",
    "61636d652d636f72702d686976652d66656465726174696f6e2d6b65792d32303236",
];

#[tokio::test]
async fn shared_secrets_must_be_generated_and_hive_mesh_secret_makes_one() {
    let dir = tempfile::tempdir().unwrap();
    // Printing the secret is this command's purpose, so its output is not kept for the leak
    // check (which watches every other output for it).
    let generate = || async {
        let output = crate::process::hive_command(dir.path(), &[])
            .args(["mesh", "secret"])
            .output()
            .await
            .unwrap();
        assert!(output.status.success());
        let secret = String::from_utf8(output.stdout).unwrap().trim().to_owned();
        capture::canary(&secret);
        secret
    };
    let secret = generate().await;
    assert_eq!(secret.len(), 43, "32 bytes as base64url");
    assert_ne!(secret, generate().await, "fresh every time");

    let check = |environment: &'static str, value: String| {
        let dir = dir.path().to_owned();
        async move {
            let vars = [
                ("HIVE_ENV", environment),
                ("AUTH_URL", "https://hive.example.com"),
                ("AUTH_SECRET", "Vq3mX8rT1wZ6pK9sB4nL7dF2hJ5gC0yA"),
                (
                    "ENCRYPTION_KEY",
                    "5a0f3c9e81d27b64a5c8f01e3d9b2a7c6e4f8d1b0a3c5e7f9d2b4a6c8e0f1d3b",
                ),
                ("MESH_FEDERATION_ENABLED", "true"),
                ("MESH_FEDERATION_PEERS", "https://b.example"),
                ("MESH_FEDERATION_SHARED_SECRET", value.as_str()),
            ];
            let (status, stdout, stderr) = run_to_exit(&dir, &["config", "check"], &vars).await;
            assert!(
                !stdout.contains(&value) && !stderr.contains(&value),
                "the secret was echoed"
            );
            (status.code(), stderr)
        }
    };
    for environment in ["production", "development"] {
        for passphrase in PASSPHRASES {
            let (code, stderr) = check(environment, passphrase.to_owned()).await;
            assert_eq!(code, Some(1), "{environment}: {passphrase:?} was accepted");
            assert!(
                stderr.contains("MESH_FEDERATION_SHARED_SECRET")
                    && stderr.contains("hive mesh secret"),
                "{stderr}"
            );
        }
        let (code, stderr) = check(environment, secret.clone()).await;
        assert_eq!(code, Some(0), "{environment}: {stderr}");
    }
}
