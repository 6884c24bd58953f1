//! `hive keys` (the vault's data keys) and `hive secrets import`, straight against the
//! database (on SQLite, with the server stopped). A raw import key is read from standard input
//! or a file, never from arguments (which `ps` shows).

use crate::admin::{cli_meta, find_user};
use clap::Subcommand;
use hive_core::Hive;
use hive_core::kernel::caller::{Caller, Credential};
use hive_core::kernel::jobs::{Job, JobContext};
use hive_core::vault::rotation::{REENCRYPT_BATCH, REENCRYPT_EVERY, ReencryptSecrets};
use hive_core::vault::secrets::ImportedSecret;
use std::io::BufRead;
use std::path::PathBuf;
use std::sync::Arc;
use zeroize::Zeroizing;

#[derive(Subcommand)]
pub enum KeysAction {
    /// List the data keys: id, creation, active, secrets still under each, encryptions reserved.
    List,
    /// Make a new data key active for all new writes; older values move to it in the
    /// background (or with `hive keys reencrypt`).
    Rotate,
    /// Re-seal now every secret under an older key, and retire keys no secret uses.
    Reencrypt,
}

#[derive(Subcommand)]
pub enum SecretsAction {
    /// Import a value in the `ivHex:tagHex:cipherHex` format (AES-256-GCM) as a new secret of a
    /// user. The 64-hex key is read from standard input, or from --key-file.
    Import {
        #[arg(long)]
        user: String,
        #[arg(long)]
        name: String,
        #[arg(long, default_value = "")]
        description: String,
        /// The encrypted value, `ivHex:tagHex:cipherHex`.
        #[arg(long)]
        value: String,
        /// A file holding the key (instead of standard input).
        #[arg(long)]
        key_file: Option<PathBuf>,
    },
}

pub async fn keys(hive: &Hive, action: KeysAction) -> Result<(), String> {
    let cli = Caller::cli();
    match action {
        KeysAction::List => {
            let keys = hive.key_admin.keys(&cli).await.map_err(|e| e.to_string())?;
            println!(
                "{:<6}  {:<25}  {:<8}  {:>8}  {:>12}",
                "id", "created", "state", "secrets", "reserved"
            );
            for key in keys {
                let state = match (key.active, key.retired_at) {
                    (true, _) => "active",
                    (false, Some(_)) => "retired",
                    (false, None) => "old",
                };
                println!(
                    "{:<6}  {:<25}  {:<8}  {:>8}  {:>12}",
                    key.id,
                    key.created_at.to_string(),
                    state,
                    key.secrets,
                    key.encryptions_reserved
                );
            }
        }
        KeysAction::Rotate => {
            let rotation = hive
                .key_admin
                .rotate(&cli, &cli_meta())
                .await
                .map_err(|e| e.to_string())?;
            println!(
                "data key {} is active (was {}); older values re-encrypt in the background",
                rotation.active_key_id, rotation.previous_key_id
            );
        }
        KeysAction::Reencrypt => {
            let job = ReencryptSecrets {
                vault: Arc::clone(&hive.vault),
                auditor: hive.auditor.clone(),
                every: REENCRYPT_EVERY,
                batch: REENCRYPT_BATCH,
            };
            let ctx = JobContext {
                store: Arc::clone(&hive.store),
                clock: Arc::clone(&hive.clock),
            };
            println!("{}", job.run(&ctx).await?);
        }
    }
    Ok(())
}

fn read_key(key_file: Option<&PathBuf>) -> Result<Zeroizing<String>, String> {
    let text = match key_file {
        Some(path) => Zeroizing::new(
            std::fs::read_to_string(path)
                .map_err(|e| format!("cannot read {}: {e}", path.display()))?,
        ),
        None => {
            eprintln!("Key (64 hexadecimal characters, from standard input):");
            let mut line = Zeroizing::new(String::new());
            std::io::stdin()
                .lock()
                .read_line(&mut line)
                .map_err(|e| format!("cannot read the key: {e}"))?;
            line
        }
    };
    Ok(Zeroizing::new(text.trim().to_owned()))
}

pub async fn secrets(hive: &Hive, action: SecretsAction) -> Result<(), String> {
    let SecretsAction::Import {
        user,
        name,
        description,
        value,
        key_file,
    } = action;
    let key = read_key(key_file.as_ref())?;
    let owner = find_user(hive, &user).await?;
    let caller = Caller {
        role: owner.role,
        user: Some(owner),
        credential: Credential::Cli,
    };
    let imported = ImportedSecret {
        name,
        description,
        value: Zeroizing::new(value),
        key,
    };
    let created = hive
        .secrets_service
        .import(&caller, &imported, &cli_meta())
        .await
        .map_err(|e| e.to_string())?;
    println!("imported secret {} ({})", created.name, created.id);
    Ok(())
}
