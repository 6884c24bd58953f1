//! `hive backup`: make, list, verify and restore encrypted archives of an instance.
//!
//! `create` and `list` work on the instance directly (the server stopped: on SQLite it holds
//! the data directory), or through a running server's API when one is named (`--url`,
//! `HIVE_URL` or a profile, with an admin's token: `instance`). `verify` and `restore` read an archive with the
//! operator's identity file, which never needs to be on the server; `restore` fills an empty
//! instance (or, with `--force`, one it empties first), the server stopped.

use crate::instance::{Failure, Target};
use crate::{output, remote, with_hive};
use clap::Subcommand;
use hive_core::backup::archive::{self, ArchiveError, Manifest, Sink};
use hive_core::kernel::caller::Caller;
use hive_core::kernel::config::Config;
use hive_core::storage::{self, SchemaOutcome};
use hive_proto::backup::{BackupView, BackupsResponse};
use indicatif::{ProgressBar, ProgressStyle};
use reqwest::Method;
use std::io::IsTerminal;
use std::path::PathBuf;

#[derive(Subcommand)]
pub enum BackupAction {
    /// Make an archive now (in HIVE_BACKUP_DIR, encrypted to HIVE_BACKUP_RECIPIENTS); through
    /// the server named by --url, HIVE_URL or a profile when one is, else on the stopped
    /// instance.
    Create {
        #[command(flatten)]
        target: Target,
    },
    /// List the archives, newest first (through the server when one is named, as `create`).
    List {
        #[command(flatten)]
        target: Target,
    },
    /// Decrypt an archive and check its manifest and every member's checksum, restoring
    /// nothing.
    Verify {
        /// The archive (`hive-backup-….age`).
        file: PathBuf,
        /// The age identity file of one of the recipients it was made for.
        #[arg(long, value_name = "IDENTITY_FILE")]
        identity: PathBuf,
        #[arg(long)]
        json: bool,
    },
    /// Restore an archive into this instance's empty data directory (SQLite) or empty
    /// database (DATABASE_URL), then bring its schema to this version. The server must be
    /// stopped.
    Restore {
        file: PathBuf,
        #[arg(long, value_name = "IDENTITY_FILE")]
        identity: PathBuf,
        /// Delete what the target holds first (its database and generated secrets), then
        /// restore. Without it a target that holds anything is refused.
        #[arg(long)]
        force: bool,
        #[arg(long)]
        json: bool,
    },
}

pub async fn backup(config: Config, action: BackupAction) -> Result<(), Failure> {
    match action {
        BackupAction::Create { target } => match crate::instance::server(&config, &target)? {
            Some(api) => {
                let bar = progress_bar(None, "making the backup on the server");
                let made = api.call(Method::POST, "/admin/backups", None).await;
                bar.finish_and_clear();
                let made: BackupView = made?;
                Ok(show(&[made], target.json)?)
            }
            None => {
                with_hive(config, |hive| async move {
                    let bar = progress_bar(None, "making the backup");
                    let made = hive
                        .backups
                        .create(&Caller::cli(), &crate::admin::cli_meta())
                        .await;
                    bar.finish_and_clear();
                    let made = made.map_err(|e| e.to_string())?;
                    show(&[view(made)], target.json)
                })
                .await
            }
        },
        BackupAction::List { target } => match crate::instance::server(&config, &target)? {
            Some(api) => {
                let listed: BackupsResponse = api.call(Method::GET, "/admin/backups", None).await?;
                Ok(show(&listed.items, target.json)?)
            }
            None => {
                with_hive(config, |hive| async move {
                    let listed = hive
                        .backups
                        .list(&Caller::cli())
                        .await
                        .map_err(|e| e.to_string())?;
                    let items: Vec<_> = listed.into_iter().map(view).collect();
                    show(&items, target.json)
                })
                .await
            }
        },
        BackupAction::Verify {
            file,
            identity,
            json,
        } => {
            let manifest = tokio::task::spawn_blocking(move || {
                let identities = archive::identities(&identity)?;
                let opened = std::fs::File::open(&file).map_err(|error| ArchiveError::Io {
                    action: "open",
                    path: file.display().to_string(),
                    error,
                })?;
                let size = opened.metadata().map(|m| m.len()).unwrap_or(0);
                let bar = progress_bar(Some(size), "verifying");
                let checked = archive::read_from(bar.wrap_read(opened), &identities, Sink::Discard);
                bar.finish_and_clear();
                checked
            })
            .await
            .map_err(|_| "interrupted".to_owned())?
            .map_err(|e| e.to_string())?;
            print_manifest(&manifest, json, "archive verified")?;
            Ok(())
        }
        BackupAction::Restore {
            file,
            identity,
            force,
            json,
        } => {
            eprintln!("hive: restoring into {}", crate::instance_of(&config));
            let bar = progress_bar(None, "restoring");
            let restored = storage::restore(&config, &file, &identity, force).await;
            bar.finish_and_clear();
            let restored = restored.map_err(|e| e.to_string())?;
            print_manifest(&restored.manifest, json, "restored")?;
            if !json {
                match restored.schema {
                    SchemaOutcome::AlreadyCurrent { version } => {
                        println!("schema version {version}, current");
                    }
                    SchemaOutcome::Migrated { applied, version } => {
                        println!("migrated forward: {applied:?}; schema version {version}");
                    }
                }
                println!(
                    "next: check the audit chain (`hive audit verify`), then start the server with the same ENCRYPTION_KEY and AUTH_SECRET as the instance that made it (unless the archive held its secrets.json)"
                );
            }
            Ok(())
        }
    }
}

/// A progress bar on standard error when it is a terminal (hidden otherwise, so that scripts
/// and logs get none): of `bytes` when the size of the work is known, else a spinner.
fn progress_bar(bytes: Option<u64>, what: &'static str) -> ProgressBar {
    if !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let bar = match bytes {
        Some(total) => {
            let bar = ProgressBar::new(total);
            if let Ok(style) =
                ProgressStyle::with_template("{msg} {wide_bar} {bytes}/{total_bytes} ({eta})")
            {
                bar.set_style(style);
            }
            bar
        }
        None => return output::progress(what),
    };
    bar.set_message(what);
    bar.enable_steady_tick(std::time::Duration::from_millis(120));
    bar
}

fn view(info: hive_core::backup::BackupInfo) -> BackupView {
    BackupView {
        name: info.name,
        bytes: info.bytes,
        created_at: info.created_at,
    }
}

fn show(items: &[BackupView], json: bool) -> Result<(), String> {
    if json {
        return output::json(&output::to_json(&items)?);
    }
    let rows = items
        .iter()
        .map(|item| {
            vec![
                remote::shown(&item.name).into_owned(),
                remote::size(item.bytes),
                output::time(item.created_at),
            ]
        })
        .collect();
    output::grid(&["name", "size", "created"], rows)
}

fn print_manifest(manifest: &Manifest, json: bool, what: &str) -> Result<(), String> {
    if json {
        let text = serde_json::to_string_pretty(manifest).map_err(|e| e.to_string())?;
        return remote::emit(&text);
    }
    println!(
        "{what}: made by Hive {} at {} ({}, schema version {})",
        remote::shown(&manifest.hive_version),
        remote::rfc3339(manifest.created_at),
        remote::shown(&manifest.backend),
        manifest
            .schema_version
            .map_or_else(|| "none".to_owned(), |v| v.to_string())
    );
    for member in &manifest.members {
        println!(
            "  {:<20}  {:>10}  sha256 {}",
            remote::shown(&member.name),
            remote::size(member.bytes),
            member.sha256
        );
    }
    Ok(())
}
