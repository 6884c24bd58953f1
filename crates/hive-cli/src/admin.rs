//! `hive admin|user|token`: account administration on the server's own machine, straight
//! against the database (on SQLite, with the server stopped: the data directory is locked).
//! Passwords are read from standard input, never from arguments (which `ps` shows).

use clap::{Args, Subcommand};
use hive_core::Hive;
use hive_core::identity::{AccountUpdate, NewAccount, NewToken};
use hive_core::kernel::caller::{Caller, Credential, RequestMeta};
use hive_proto::{Role, TokenScope};
use hive_store::PageRequest;
use std::io::BufRead;
use uuid::Uuid;

#[derive(Subcommand)]
pub enum AdminAction {
    /// Create the first admin (refused once one exists). At a terminal the password is asked
    /// twice without echo; otherwise it is one line of standard input.
    Create(NewAdminArgs),
}

#[derive(Args)]
pub struct NewAdminArgs {
    #[arg(long)]
    email: String,
    #[arg(long)]
    name: String,
}

#[derive(Subcommand)]
pub enum UserAction {
    /// List accounts, newest first.
    List {
        #[arg(long, default_value_t = 100)]
        limit: u32,
    },
    /// Print a single-use invitation link (valid 7 days) for an email and role.
    Invite {
        #[arg(long)]
        email: String,
        #[arg(long, value_parser = parse_role)]
        role: Role,
    },
    /// Deactivate an account (by email or id); its sessions end and its tokens stop working.
    Deactivate { user: String },
    /// Print a single-use password-reset link (valid 1 hour).
    ResetLink { user: String },
    /// Second factors of an account.
    #[command(subcommand)]
    Mfa(MfaAction),
}

#[derive(Subcommand)]
pub enum MfaAction {
    /// Remove the TOTP, the passkeys and the recovery codes of a user who lost them (by email
    /// or id) and end their sessions: the next login enrolls again if the MFA policy requires it.
    Reset { user: String },
}

#[derive(Subcommand)]
pub enum TokenAction {
    /// Create an API token for a user; the token is printed once.
    Create {
        #[arg(long)]
        user: String,
        #[arg(long)]
        name: String,
        #[arg(long, value_parser = parse_role)]
        role: Option<Role>,
        /// read, write, execute or admin; repeat for several (none: all the role allows).
        #[arg(long = "scope", value_parser = parse_scope)]
        scopes: Vec<TokenScope>,
        #[arg(long, default_value_t = 90)]
        days: i64,
    },
    /// List a user's tokens.
    List {
        #[arg(long)]
        user: String,
    },
    /// Revoke a token by id.
    Revoke { id: Uuid },
}

fn parse_role(raw: &str) -> Result<Role, String> {
    raw.parse()
        .map_err(|_| "expected viewer, operator or admin".to_owned())
}

fn parse_scope(raw: &str) -> Result<TokenScope, String> {
    raw.parse()
        .map_err(|_| "expected read, write, execute or admin".to_owned())
}

pub(crate) fn cli_meta() -> RequestMeta {
    RequestMeta {
        ip: None,
        request_id: None,
        user_agent: Some("hive-cli".to_owned()),
    }
}

/// The first admin's password. Typed at a terminal: asked twice, never echoed, and the two must
/// match. Otherwise one line of standard input, as scripts pipe it.
fn read_password() -> Result<String, String> {
    use std::io::IsTerminal;
    if std::io::stdin().is_terminal() {
        let first = read_hidden("Password: ")?;
        let again = read_hidden("Password again: ")?;
        if first != again {
            return Err("the two passwords differ; nothing was created".to_owned());
        }
        return Ok(first);
    }
    eprintln!("Password (from standard input):");
    let mut line = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut line)
        .map_err(|e| format!("cannot read the password: {e}"))?;
    Ok(line.trim_end_matches(['\n', '\r']).to_owned())
}

/// One line typed at the terminal with its echo off (restored whatever the read did).
fn read_hidden(prompt: &str) -> Result<String, String> {
    use rustix::termios::{LocalModes, OptionalActions, tcgetattr, tcsetattr};
    use std::io::Write;
    let stdin = std::io::stdin();
    let saved =
        tcgetattr(&stdin).map_err(|e| format!("cannot read the terminal's settings: {e}"))?;
    let mut quiet = saved.clone();
    quiet.local_modes.remove(LocalModes::ECHO);
    // Echo off before the prompt shows: nothing typed after it is ever echoed.
    tcsetattr(&stdin, OptionalActions::Now, &quiet)
        .map_err(|e| format!("cannot turn the terminal's echo off: {e}"))?;
    eprint!("{prompt}");
    let _ = std::io::stderr().flush();
    let mut line = String::new();
    let read = stdin.lock().read_line(&mut line);
    let restored = tcsetattr(&stdin, OptionalActions::Now, &saved);
    eprintln!();
    read.map_err(|e| format!("cannot read the password: {e}"))?;
    restored.map_err(|e| format!("cannot turn the terminal's echo back on: {e}"))?;
    Ok(line.trim_end_matches(['\n', '\r']).to_owned())
}

pub(crate) async fn find_user(hive: &Hive, who: &str) -> Result<hive_store::UserRow, String> {
    let found = match Uuid::try_parse(who) {
        Ok(id) => hive.store.users().get(id).await,
        Err(_) => {
            hive.store
                .users()
                .find_by_email(&who.trim().to_lowercase())
                .await
        }
    };
    found
        .map_err(|e| e.to_string())?
        .ok_or_else(|| format!("no account {who:?}"))
}

pub async fn admin(hive: &Hive, action: AdminAction) -> Result<(), String> {
    let AdminAction::Create(args) = action;
    let account = NewAccount {
        email: args.email,
        display_name: args.name,
        password: read_password()?,
    };
    let admin = hive
        .identity
        .create_first_admin(
            &account,
            &cli_meta(),
            hive_core::kernel::audit::Principal::Cli,
        )
        .await
        .map_err(|e| e.to_string())?;
    println!("created admin {} ({})", admin.email, admin.id);
    Ok(())
}

pub async fn user(hive: &Hive, action: UserAction) -> Result<(), String> {
    let identity = &hive.identity;
    let cli = Caller::cli();
    match action {
        UserAction::List { limit } => {
            let page = PageRequest::first(limit).map_err(|e| e.to_string())?;
            let users = identity
                .list_users(&page)
                .await
                .map_err(|e| e.to_string())?;
            println!("{:<36}  {:<8}  {:<6}  email", "id", "role", "active");
            for user in users.items {
                println!(
                    "{:<36}  {:<8}  {:<6}  {}",
                    user.id, user.role, user.active, user.email
                );
            }
        }
        UserAction::Invite { email, role } => {
            let link = identity
                .invite(&cli, &email, role, &cli_meta())
                .await
                .map_err(|e| e.to_string())?;
            println!("{}", link.url);
            eprintln!("single use; expires {}", link.expires_at);
        }
        UserAction::Deactivate { user } => {
            let target = find_user(hive, &user).await?;
            let update = AccountUpdate {
                active: Some(false),
                ..AccountUpdate::default()
            };
            identity
                .update_user(&cli, target.id, &update, &cli_meta())
                .await
                .map_err(|e| e.to_string())?;
            println!("deactivated {}", target.email);
        }
        UserAction::ResetLink { user } => {
            let target = find_user(hive, &user).await?;
            let link = identity
                .create_reset_link(&cli, target.id, &cli_meta())
                .await
                .map_err(|e| e.to_string())?;
            println!("{}", link.url);
            eprintln!("single use; expires {}", link.expires_at);
        }
        UserAction::Mfa(MfaAction::Reset { user }) => {
            let target = find_user(hive, &user).await?;
            hive.mfa
                .reset(&cli, target.id, &cli_meta())
                .await
                .map_err(|e| e.to_string())?;
            println!("reset the second factors of {}", target.email);
        }
    }
    Ok(())
}

pub async fn token(hive: &Hive, action: TokenAction) -> Result<(), String> {
    let identity = &hive.identity;
    match action {
        TokenAction::Create {
            user,
            name,
            role,
            scopes,
            days,
        } => {
            let owner = find_user(hive, &user).await?;
            let caller = Caller {
                role: owner.role,
                user: Some(owner),
                credential: Credential::Cli,
            };
            let request = NewToken {
                name,
                role,
                scopes,
                expires_in_days: Some(days),
            };
            let created = identity
                .create_token(&caller, &request, &cli_meta())
                .await
                .map_err(|e| e.to_string())?;
            println!("{}", created.token);
            eprintln!(
                "token {} (role {}, expires {}); shown once, store it now",
                created.row.id, created.row.role, created.row.expires_at
            );
        }
        TokenAction::List { user } => {
            let owner = find_user(hive, &user).await?;
            let page = PageRequest::first(100).map_err(|e| e.to_string())?;
            let tokens = identity
                .list_tokens(owner.id, &page)
                .await
                .map_err(|e| e.to_string())?;
            println!("{:<36}  {:<8}  {:<8}  name", "id", "role", "state");
            for token in tokens.items {
                let state = if token.revoked_at.is_some() {
                    "revoked"
                } else {
                    "live"
                };
                println!(
                    "{:<36}  {:<8}  {:<8}  {}",
                    token.id, token.role, state, token.name
                );
            }
        }
        TokenAction::Revoke { id } => {
            identity
                .revoke_token(&Caller::cli(), id, &cli_meta())
                .await
                .map_err(|e| e.to_string())?;
            println!("revoked {id}");
        }
    }
    Ok(())
}
