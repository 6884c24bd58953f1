//! `hive keys` (the vault's data keys) and `hive secrets`, through a running server's API when
//! one is named, else straight against the stopped instance's database (`instance`). A raw
//! import key is read from standard input or a file, never from arguments (which `ps` shows).

use crate::admin::{ListArgs, acting_as, cli_meta, own_account};
use crate::instance::{Failure, Instance};
use crate::output::{self, Column, column};
use crate::remote::{CALL_TIMEOUT, emit, shown};
use clap::Subcommand;
use hive_core::kernel::caller::Caller;
use hive_core::vault::secrets::ImportedSecret;
use hive_proto::secrets::{
    ImportSecretRequest, ReencryptResponse, RotateKeyResponse, VaultKeyView, VaultKeysResponse,
};
use hive_server::views;
use reqwest::Method;
use serde_json::Value;
use std::io::BufRead;
use std::path::PathBuf;
use zeroize::Zeroizing;

#[derive(Subcommand)]
pub enum KeysAction {
    /// List the data keys: id, creation, active, secrets still under each, encryptions reserved.
    List,
    /// Make a new data key active for all new writes; older values move to it in the
    /// background (or with `hive keys reencrypt`).
    Rotate,
    /// Re-seal now every secret under an older key, and retire keys no secret uses (a running
    /// server also does this in the background, every 5 minutes).
    Reencrypt,
}

#[derive(Subcommand)]
pub enum SecretsAction {
    /// List secrets (names and metadata, never values), newest first.
    List(ListArgs),
    /// Import a value in the `ivHex:tagHex:cipherHex` format (AES-256-GCM) as a new secret: of
    /// --user on the data directory, of the token's account on a server. The 64-hex key is
    /// read from standard input, or from --key-file.
    Import {
        #[arg(long)]
        user: Option<String>,
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

/// The columns of `hive keys list`.
const KEY_COLUMNS: [Column; 6] = [
    column("ID", "id"),
    column("CREATED", "createdAt"),
    column("ACTIVE", "active"),
    column("RETIRED", "retiredAt"),
    column("SECRETS", "secrets"),
    column("RESERVED", "encryptionsReserved"),
];

/// The columns of `hive secrets list`.
const SECRET_COLUMNS: [Column; 5] = [
    column("ID", "id"),
    column("NAME", "name"),
    column("OWNER", "ownerId"),
    column("CREATED", "createdAt"),
    column("UPDATED", "updatedAt"),
];

pub async fn keys(on: Instance, action: KeysAction, as_json: bool) -> Result<(), Failure> {
    let cli = Caller::cli();
    match action {
        KeysAction::List => {
            let keys: VaultKeysResponse = match &on {
                Instance::Server(api) => api.call(Method::GET, "/admin/vault/keys", None).await?,
                Instance::Embedded(hive) => VaultKeysResponse {
                    items: hive
                        .key_admin
                        .keys(&cli)
                        .await
                        .map_err(|e| e.to_string())?
                        .into_iter()
                        .map(|key| VaultKeyView {
                            id: key.id,
                            created_at: key.created_at,
                            active: key.active,
                            retired_at: key.retired_at,
                            secrets: key.secrets,
                            encryptions_reserved: key.encryptions_reserved,
                        })
                        .collect(),
                },
            };
            output::list(&output::to_json(&keys)?, &KEY_COLUMNS, as_json)?;
        }
        KeysAction::Rotate => {
            let rotation: RotateKeyResponse = match &on {
                Instance::Server(api) => {
                    api.call(Method::POST, "/admin/vault/rotate", None).await?
                }
                Instance::Embedded(hive) => {
                    let rotation = hive
                        .key_admin
                        .rotate(&cli, &cli_meta())
                        .await
                        .map_err(|e| e.to_string())?;
                    RotateKeyResponse {
                        key_id: rotation.active_key_id,
                        previous_key_id: rotation.previous_key_id,
                        created: rotation.created,
                    }
                }
            };
            if as_json {
                output::json(&output::to_json(&rotation)?)?;
            } else {
                emit(&format!(
                    "data key {} is active (was {}); older values re-encrypt in the background \
                     (or now: `hive keys reencrypt`)",
                    rotation.key_id, rotation.previous_key_id
                ))?;
            }
        }
        KeysAction::Reencrypt => {
            let progress = output::progress("re-encrypting secrets under older keys");
            let done: Result<ReencryptResponse, Failure> = match &on {
                Instance::Server(api) => api
                    .call(Method::POST, "/admin/vault/reencrypt", None)
                    .await
                    .map_err(Failure::from),
                Instance::Embedded(hive) => hive
                    .key_admin
                    .reencrypt(&cli, &cli_meta())
                    .await
                    .map(|report| views::reencrypt_view(&report))
                    .map_err(|e| Failure::Work(e.to_string())),
            };
            progress.finish_and_clear();
            let done = done?;
            if as_json {
                output::json(&output::to_json(&done)?)?;
            } else {
                emit(&format!(
                    "re-sealed {} secrets under key {} ({} changed meanwhile, {} unreadable); retired keys {:?}",
                    done.resealed,
                    done.key_id,
                    done.changed_meanwhile,
                    done.unreadable,
                    done.retired_keys
                ))?;
            }
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

pub async fn secrets(on: Instance, action: SecretsAction, as_json: bool) -> Result<(), Failure> {
    let (user, name, description, value, key_file) = match action {
        SecretsAction::List(page) => {
            let listed = match &on {
                Instance::Server(api) => {
                    let request = api.get("/secrets", &page.query())?.timeout(CALL_TIMEOUT);
                    api.json::<Value>(request).await?
                }
                Instance::Embedded(hive) => {
                    let secrets = hive
                        .secrets_service
                        .list(&Caller::cli(), &page.page()?)
                        .await
                        .map_err(|e| e.to_string())?;
                    output::page_json(&secrets.items, secrets.next_cursor, views::secret_view)?
                }
            };
            return Ok(output::list(&listed, &SECRET_COLUMNS, as_json)?);
        }
        SecretsAction::Import {
            user,
            name,
            description,
            value,
            key_file,
        } => (user, name, description, value, key_file),
    };
    let key = read_key(key_file.as_ref())?;
    let created = match &on {
        Instance::Server(api) => {
            own_account(api, user.as_deref(), "--user").await?;
            let body = output::to_json(&ImportSecretRequest {
                name,
                description,
                value,
                key: key.to_string(),
            })?;
            api.call::<Value>(Method::POST, "/secrets/import", Some(body))
                .await?
        }
        Instance::Embedded(hive) => {
            let caller = acting_as(hive, user.as_deref(), "--user").await?;
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
            output::to_json(&views::secret_view(&created))?
        }
    };
    if as_json {
        output::json(&created)?;
    } else {
        let field = |name: &str| {
            shown(
                created
                    .get(name)
                    .and_then(Value::as_str)
                    .unwrap_or_default(),
            )
            .into_owned()
        };
        emit(&format!(
            "imported secret {} ({})",
            field("name"),
            field("id")
        ))?;
    }
    Ok(())
}
