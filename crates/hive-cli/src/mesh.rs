//! `hive mesh`: the federation's Ed25519 keys, HS256 shared secrets and the operator-signed
//! peer manifest. These
//! commands read no configuration and open no database: an operator may run them on another
//! machine than the instances (the operator key need never be on one).

use hive_crypto::federation::{
    Ed25519Seed, ed25519_kid, generate_shared_secret, parse_public_key, public_key_text,
};
use hive_crypto::manifest::{Manifest, ManifestPeer, sign_manifest, verify_manifest};
use std::io::Write;
use zeroize::Zeroizing;

/// The longest manifest or seed file read (manifests are at most 64 KiB).
const MAX_FILE_BYTES: u64 = 64 * 1024;
/// The longest validity `--expires-in-days` accepts (ten years).
const MAX_EXPIRES_IN_DAYS: i64 = 3650;

#[derive(clap::Subcommand)]
pub enum MeshAction {
    /// Write a fresh Ed25519 seed (64 hex characters, mode 0600) to FILE and print its public
    /// key and kid. Refuses to overwrite FILE. The seed itself is never printed.
    Keygen {
        /// Where to write the seed, e.g. /etc/hive/federation.seed
        #[arg(long)]
        out: String,
    },
    /// Print the public key of the seed in FILE (what peers pin for this instance, or what
    /// instances configure as MESH_FEDERATION_MANIFEST_PUBLIC_KEY for an operator key).
    PublicKey {
        #[arg(long)]
        seed_file: String,
    },
    /// Print a fresh HS256 shared secret (32 random bytes, base64url) for
    /// MESH_FEDERATION_SHARED_SECRET: give the same value to every instance of the mesh.
    Secret,
    /// The signed peer manifest.
    Manifest {
        #[command(subcommand)]
        action: ManifestAction,
    },
}

#[derive(clap::Subcommand)]
pub enum ManifestAction {
    /// Sign a manifest of peers' public keys with the operator seed in --key and write it to
    /// --out (it is public: mode 0644 is fine).
    Sign {
        /// The operator's seed file (`hive mesh keygen` writes one).
        #[arg(long)]
        key: String,
        /// ORIGIN=PUBLICKEY, once per peer (at most 64), e.g.
        /// https://b.example=11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo
        #[arg(long = "peer", required = true)]
        peers: Vec<String>,
        /// Free text naming the operator (iss); the operator key's kid when absent.
        #[arg(long)]
        issuer: Option<String>,
        /// Days until the manifest expires (1 to 3650); it never expires when absent.
        #[arg(long)]
        expires_in_days: Option<i64>,
        #[arg(long)]
        out: String,
    },
    /// Verify a manifest against the operator's public key and print its peers; exit 1 when it
    /// is refused (expiry judged by this machine's clock).
    Verify {
        #[arg(long)]
        file: String,
        /// The operator's Ed25519 public key (base64url, which may begin with `-`).
        #[arg(long, allow_hyphen_values = true)]
        public_key: String,
    },
}

pub fn mesh(action: MeshAction) -> Result<(), String> {
    match action {
        MeshAction::Keygen { out } => keygen(&out),
        MeshAction::Secret => {
            let secret = generate_shared_secret().map_err(|e| e.to_string())?;
            println!("{}", secret.as_str());
            Ok(())
        }
        MeshAction::PublicKey { seed_file } => {
            let seed = read_seed(&seed_file)?;
            println!("{}", seed.public_key_text());
            Ok(())
        }
        MeshAction::Manifest {
            action:
                ManifestAction::Sign {
                    key,
                    peers,
                    issuer,
                    expires_in_days,
                    out,
                },
        } => sign(&key, &peers, issuer, expires_in_days, &out),
        MeshAction::Manifest {
            action: ManifestAction::Verify { file, public_key },
        } => verify(&file, &public_key),
    }
}

fn keygen(out: &str) -> Result<(), String> {
    use std::os::unix::fs::OpenOptionsExt;
    // 32 bytes from the OS generator, as hex: exactly the seed format.
    let text = Zeroizing::new(hive_crypto::random_token_hex().map_err(|e| e.to_string())?);
    let seed = Ed25519Seed::parse(&text).map_err(|e| e.to_string())?;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(out)
        .map_err(|e| match e.kind() {
            std::io::ErrorKind::AlreadyExists => {
                format!(
                    "{out} exists; refusing to overwrite a key (remove it first if you mean to)"
                )
            }
            kind => format!("cannot create {out}: {kind}"),
        })?;
    let line = Zeroizing::new(format!("{}\n", text.as_str()));
    let written = file
        .write_all(line.as_bytes())
        .and_then(|()| file.sync_all());
    if let Err(error) = written {
        // A half-written seed must not be mistaken for a key later.
        let _ = std::fs::remove_file(out);
        return Err(format!("cannot write {out}: {}", error.kind()));
    }
    println!("public key: {}", seed.public_key_text());
    println!("kid: {}", seed.kid());
    eprintln!("seed written to {out} (mode 0600); keep it private, it is never printed");
    Ok(())
}

fn read_small(path: &str) -> Result<Zeroizing<String>, String> {
    use std::io::Read;
    let cannot = |e: std::io::Error| format!("cannot read {path}: {}", e.kind());
    let file = std::fs::File::open(path).map_err(cannot)?;
    let mut text = Zeroizing::new(String::new());
    file.take(MAX_FILE_BYTES + 1)
        .read_to_string(&mut text)
        .map_err(cannot)?;
    if text.len() as u64 > MAX_FILE_BYTES {
        return Err(format!("{path} is larger than 64 KiB"));
    }
    Ok(text)
}

fn read_seed(path: &str) -> Result<Ed25519Seed, String> {
    let text = read_small(path)?;
    Ed25519Seed::parse(&text)
        .map_err(|_| format!("{path} does not hold an Ed25519 seed (64 hex characters)"))
}

fn now() -> Result<i64, String> {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .ok()
        .and_then(|elapsed| i64::try_from(elapsed.as_secs()).ok())
        .ok_or_else(|| "the system clock is before 1970".to_owned())
}

fn sign(
    key: &str,
    peers: &[String],
    issuer: Option<String>,
    expires_in_days: Option<i64>,
    out: &str,
) -> Result<(), String> {
    let seed = read_seed(key)?;
    let mut entries = Vec::with_capacity(peers.len());
    for item in peers {
        let (origin, public_key) = item
            .split_once('=')
            .ok_or_else(|| format!("--peer {item:?}: expected ORIGIN=PUBLICKEY"))?;
        let origin = hive_core::kernel::config::normalize_peer_origin(origin).ok_or_else(|| {
            format!("--peer {item:?}: {origin:?} is not an origin (https://host[:port])")
        })?;
        let public_key = parse_public_key(public_key).map_err(|_| {
            format!("--peer {item:?}: not an Ed25519 public key (32 bytes, base64url)")
        })?;
        entries.push(ManifestPeer { origin, public_key });
    }
    let issued_at = now()?;
    let expires_at = match expires_in_days {
        None => None,
        Some(days) if (1..=MAX_EXPIRES_IN_DAYS).contains(&days) => {
            Some(issued_at.saturating_add(days * 86_400))
        }
        Some(_) => return Err("--expires-in-days must be 1 to 3650".to_owned()),
    };
    let manifest = Manifest {
        issuer: issuer.unwrap_or_else(|| format!("operator key {}", seed.kid())),
        issued_at,
        expires_at,
        peers: entries,
    };
    let text = sign_manifest(&seed, &manifest).map_err(|e| e.to_string())?;
    std::fs::write(out, format!("{text}\n"))
        .map_err(|e| format!("cannot write {out}: {}", e.kind()))?;
    println!(
        "manifest of {} peers signed by {} written to {out}",
        manifest.peers.len(),
        seed.kid()
    );
    println!(
        "instances verify it with MESH_FEDERATION_MANIFEST_PUBLIC_KEY={}",
        seed.public_key_text()
    );
    Ok(())
}

fn verify(file: &str, public_key: &str) -> Result<(), String> {
    let operator_key = parse_public_key(public_key).map_err(|_| {
        "--public-key is not an Ed25519 public key (32 bytes, base64url)".to_owned()
    })?;
    let text = read_small(file)?;
    let manifest = verify_manifest(&text, &operator_key, now()?)
        .map_err(|e| format!("manifest refused: {e}"))?;
    println!("manifest valid: signed by {}", ed25519_kid(&operator_key));
    println!("issuer: {}", manifest.issuer);
    println!("issued at: {}", manifest.issued_at);
    match manifest.expires_at {
        Some(exp) => println!("expires at: {exp}"),
        None => println!("expires at: never"),
    }
    for peer in &manifest.peers {
        println!(
            "peer {} {} ({})",
            peer.origin,
            public_key_text(&peer.public_key),
            ed25519_kid(&peer.public_key)
        );
    }
    Ok(())
}
