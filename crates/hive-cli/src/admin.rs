//! `hive admin|user|token`: account administration, through a running server's API when one
//! is named, else straight against the stopped instance's database (`instance`). `hive admin
//! create` makes the first admin where there is no server yet: the data directory only.
//! Passwords are read from standard input, never from arguments (which `ps` shows).

use crate::instance::{Failure, Instance};
use crate::output::{self, Column, column};
use crate::remote::{Api, CALL_TIMEOUT, emit, shown};
use clap::{Args, Subcommand};
use hive_core::Hive;
use hive_core::identity::{AccountUpdate, InvitationLink, NewAccount, NewToken};
use hive_core::kernel::caller::{Caller, Credential, RequestMeta};
use hive_proto::auth::{
    CreateTokenRequest, CreatedTokenResponse, InviteRequest, LinkResponse, MeResponse,
    PageResponse, UpdateUserRequest, UserView,
};
use hive_proto::{Role, TokenScope};
use hive_server::views;
use hive_store::{MAX_PAGE_SIZE, PageRequest};
use reqwest::Method;
use serde_json::Value;
use std::io::BufRead;
use uuid::Uuid;

#[derive(Subcommand)]
pub enum AdminAction {
    /// Create the first admin (refused once one exists), on the data directory only: it is
    /// how an instance gets its first account, before any server runs (or, with the server
    /// running, use its one-time setup link). Never through a server's API. At a terminal the password is asked
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
    List(ListArgs),
    /// Print a single-use invitation link (valid 7 days) for an email and role.
    Invite {
        #[arg(long)]
        email: String,
        #[arg(long, value_parser = parse_role)]
        role: Role,
    },
    /// Change an account's role (by email or id).
    Role {
        user: String,
        #[arg(value_parser = parse_role)]
        role: Role,
    },
    /// Deactivate an account (by email or id); its sessions end and its tokens stop working.
    Deactivate { user: String },
    /// Reactivate a deactivated account (by email or id).
    Activate { user: String },
    /// Print a single-use password-reset link (valid 1 hour).
    ResetLink { user: String },
    /// End every session of an account (by email or id); its API tokens keep working.
    EndSessions { user: String },
    /// Second factors of an account.
    #[command(subcommand)]
    Mfa(MfaAction),
}

/// A page of a list: its size and where it starts.
#[derive(Args, Clone)]
pub struct ListArgs {
    /// At most this many (1-100).
    #[arg(long, default_value_t = 100)]
    pub(crate) limit: u32,
    /// Where the previous page ended (its `more: --cursor …`).
    #[arg(long)]
    pub(crate) cursor: Option<String>,
}

impl ListArgs {
    pub(crate) fn page(&self) -> Result<PageRequest, String> {
        PageRequest::new(self.limit, self.cursor.as_deref()).map_err(|e| e.to_string())
    }

    pub(crate) fn query(&self) -> Vec<(&'static str, String)> {
        let mut query = vec![("limit", self.limit.to_string())];
        query.extend(self.cursor.iter().map(|cursor| ("cursor", cursor.clone())));
        query
    }
}

#[derive(Subcommand)]
pub enum MfaAction {
    /// Remove the TOTP, the passkeys and the recovery codes of a user who lost them (by email
    /// or id) and end their sessions: the next login enrolls again if the MFA policy requires it.
    Reset { user: String },
}

#[derive(Subcommand)]
pub enum TokenAction {
    /// Create an API token for --user; the token is printed once. Through a server, the CLI
    /// signs in as --user with their password (asked without echo at a terminal, else one
    /// line of standard input): a server makes tokens only for a session whose password was
    /// just checked, never for another token.
    Create {
        #[arg(long)]
        user: Option<String>,
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
    /// List a user's tokens (on a server: those of the token's own account).
    List {
        #[arg(long)]
        user: Option<String>,
        #[command(flatten)]
        page: ListArgs,
    },
    /// Revoke a token by id.
    Revoke { id: Uuid },
}

/// The columns of `hive user list`.
const USER_COLUMNS: [Column; 7] = [
    column("ID", "id"),
    column("EMAIL", "email"),
    column("NAME", "displayName"),
    column("ROLE", "role"),
    column("ACTIVE", "active"),
    column("MFA", "mfaEnabled"),
    column("CREATED", "createdAt"),
];

/// The columns of `hive token list`.
const TOKEN_COLUMNS: [Column; 8] = [
    column("ID", "id"),
    column("NAME", "name"),
    column("ROLE", "role"),
    column("SCOPES", "scopes"),
    column("CREATED", "createdAt"),
    column("EXPIRES", "expiresAt"),
    column("LAST USED", "lastUsedAt"),
    column("REVOKED", "revokedAt"),
];

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

/// An account named by its id or its email, on the server: its id.
pub(crate) async fn user_id(api: &Api, who: &str) -> Result<String, Failure> {
    if let Ok(id) = Uuid::try_parse(who) {
        return Ok(id.to_string());
    }
    let email = who.trim().to_lowercase();
    let mut cursor: Option<String> = None;
    // Bounded: a server handing back cursors forever must not keep this running.
    for _ in 0..10_000 {
        let mut query = vec![("limit", MAX_PAGE_SIZE.to_string())];
        query.extend(cursor.iter().map(|cursor| ("cursor", cursor.clone())));
        let request = api.get("/users", &query)?.timeout(CALL_TIMEOUT);
        let page: PageResponse<UserView> = api.json(request).await?;
        if let Some(user) = page.items.iter().find(|user| user.email == email) {
            return Ok(user.id.clone());
        }
        match page.next_cursor {
            Some(next) if cursor.as_ref() != Some(&next) => cursor = Some(next),
            _ => break,
        }
    }
    Err(Failure::Work(format!("no account {}", shown(who))))
}

/// Prints a one-time link: its URL on standard output, its expiry on standard error.
fn print_link(link: &Value, as_json: bool) -> Result<(), String> {
    if as_json {
        return output::json(link);
    }
    let url = link.get("url").and_then(Value::as_str).unwrap_or_default();
    emit(&shown(url))?;
    let expires = link
        .get("expiresAt")
        .and_then(Value::as_str)
        .unwrap_or_default();
    eprintln!("single use; expires {expires}");
    Ok(())
}

fn link_json(link: InvitationLink) -> Result<Value, String> {
    output::to_json(&LinkResponse {
        id: link.id.to_string(),
        url: link.url,
        expires_at: link.expires_at,
    })
}

/// Applies `update` to an account; the account as it is now.
async fn update_account(
    on: &Instance,
    who: &str,
    update: AccountUpdate,
) -> Result<UserView, Failure> {
    match on {
        Instance::Server(api) => {
            let id = user_id(api, who).await?;
            let body = output::to_json(&UpdateUserRequest {
                display_name: update.display_name,
                role: update.role,
                active: update.active,
            })?;
            Ok(api
                .call(Method::PATCH, &format!("/users/{id}"), Some(body))
                .await?)
        }
        Instance::Embedded(hive) => {
            let target = find_user(hive, who).await?;
            let user = hive
                .identity
                .update_user(&Caller::cli(), target.id, &update, &cli_meta())
                .await
                .map_err(|e| e.to_string())?;
            Ok(views::user_view(&user))
        }
    }
}

pub async fn user(on: Instance, action: UserAction, as_json: bool) -> Result<(), Failure> {
    let cli = Caller::cli();
    match action {
        UserAction::List(page) => {
            let listed = match &on {
                Instance::Server(api) => {
                    let request = api.get("/users", &page.query())?.timeout(CALL_TIMEOUT);
                    api.json::<Value>(request).await?
                }
                Instance::Embedded(hive) => {
                    let users = hive
                        .identity
                        .list_users(&page.page()?)
                        .await
                        .map_err(|e| e.to_string())?;
                    output::page_json(&users.items, users.next_cursor, views::user_view)?
                }
            };
            output::list(&listed, &USER_COLUMNS, as_json)?;
        }
        UserAction::Invite { email, role } => {
            let link = match &on {
                Instance::Server(api) => {
                    let body = output::to_json(&InviteRequest { email, role })?;
                    api.call(Method::POST, "/users/invitations", Some(body))
                        .await?
                }
                Instance::Embedded(hive) => link_json(
                    hive.identity
                        .invite(&cli, &email, role, &cli_meta())
                        .await
                        .map_err(|e| e.to_string())?,
                )?,
            };
            print_link(&link, as_json)?;
        }
        UserAction::Role { user, role } => {
            let update = AccountUpdate {
                role: Some(role),
                ..AccountUpdate::default()
            };
            let changed = update_account(&on, &user, update).await?;
            print_account(
                &changed,
                &format!("{} is {}", changed.email, changed.role),
                as_json,
            )?;
        }
        UserAction::Deactivate { user } => set_active(&on, &user, false, as_json).await?,
        UserAction::Activate { user } => set_active(&on, &user, true, as_json).await?,
        UserAction::ResetLink { user } => {
            let link = match &on {
                Instance::Server(api) => {
                    let id = user_id(api, &user).await?;
                    api.call(Method::POST, &format!("/users/{id}/reset-link"), None)
                        .await?
                }
                Instance::Embedded(hive) => {
                    let target = find_user(hive, &user).await?;
                    link_json(
                        hive.identity
                            .create_reset_link(&cli, target.id, &cli_meta())
                            .await
                            .map_err(|e| e.to_string())?,
                    )?
                }
            };
            print_link(&link, as_json)?;
        }
        UserAction::EndSessions { user } => {
            let ended = match &on {
                Instance::Server(api) => {
                    let id = user_id(api, &user).await?;
                    api.call(Method::DELETE, &format!("/users/{id}/sessions"), None)
                        .await?
                }
                Instance::Embedded(hive) => {
                    let target = find_user(hive, &user).await?;
                    let ended = hive
                        .identity
                        .revoke_all_sessions(&cli, target.id, &cli_meta())
                        .await
                        .map_err(|e| e.to_string())?;
                    serde_json::json!({ "ended": ended })
                }
            };
            if as_json {
                output::json(&ended)?;
            } else {
                let count = ended.get("ended").and_then(Value::as_u64).unwrap_or(0);
                emit(&format!("ended {count} sessions of {}", shown(&user)))?;
            }
        }
        UserAction::Mfa(MfaAction::Reset { user }) => {
            match &on {
                Instance::Server(api) => {
                    let id = user_id(api, &user).await?;
                    api.send(
                        api.request(Method::DELETE, &format!("/users/{id}/mfa"))
                            .timeout(CALL_TIMEOUT),
                    )
                    .await?;
                }
                Instance::Embedded(hive) => {
                    let target = find_user(hive, &user).await?;
                    hive.mfa
                        .reset(&cli, target.id, &cli_meta())
                        .await
                        .map_err(|e| e.to_string())?;
                }
            }
            emit(&format!("reset the second factors of {}", shown(&user)))?;
        }
    }
    Ok(())
}

async fn set_active(on: &Instance, who: &str, active: bool, as_json: bool) -> Result<(), Failure> {
    let update = AccountUpdate {
        active: Some(active),
        ..AccountUpdate::default()
    };
    let changed = update_account(on, who, update).await?;
    let done = if active { "activated" } else { "deactivated" };
    print_account(&changed, &format!("{done} {}", changed.email), as_json)
}

/// An account after a change: its JSON, or what was done.
fn print_account(account: &UserView, done: &str, as_json: bool) -> Result<(), Failure> {
    if as_json {
        output::json(&output::to_json(account)?)?;
    } else {
        emit(&shown(done))?;
    }
    Ok(())
}

/// On a server, a token command acts for the token's own account: `--user`, if given, must
/// name it.
pub(crate) async fn own_account(api: &Api, user: Option<&str>, flag: &str) -> Result<(), Failure> {
    let Some(user) = user else {
        return Ok(());
    };
    let me: MeResponse = api.call(Method::GET, "/auth/me", None).await?;
    let mine = me
        .user
        .is_some_and(|me| me.id == user || me.email == user.trim().to_lowercase());
    if mine {
        Ok(())
    } else {
        Err(Failure::Work(format!(
            "through a server's API a token acts for its own account only; {flag} {} is another. \
             Use that user's token (or the dashboard), or run this on the stopped data directory",
            shown(user)
        )))
    }
}

/// The account `flag` names on the data directory, as the CLI acting for it.
pub(crate) async fn acting_as(
    hive: &Hive,
    user: Option<&str>,
    flag: &str,
) -> Result<Caller, Failure> {
    let Some(user) = user else {
        return Err(Failure::Work(format!(
            "on the data directory, name the account to act for with {flag}"
        )));
    };
    let owner = find_user(hive, user).await?;
    Ok(Caller {
        role: owner.role,
        user: Some(owner),
        credential: Credential::Cli,
    })
}

pub async fn token(on: Instance, action: TokenAction, as_json: bool) -> Result<(), Failure> {
    match action {
        TokenAction::Create {
            user,
            name,
            role,
            scopes,
            days,
        } => {
            let created: Value = match &on {
                Instance::Server(api) => {
                    let request = CreateTokenRequest {
                        name,
                        role,
                        scopes,
                        expires_in_days: Some(days),
                    };
                    create_token_signed_in(api, user.as_deref(), &request).await?
                }
                Instance::Embedded(hive) => {
                    let caller = acting_as(hive, user.as_deref(), "--user").await?;
                    let request = NewToken {
                        name,
                        role,
                        scopes,
                        expires_in_days: Some(days),
                    };
                    let created = hive
                        .identity
                        .create_token(&caller, &request, &cli_meta())
                        .await
                        .map_err(|e| e.to_string())?;
                    output::to_json(&CreatedTokenResponse {
                        token: created.token,
                        view: views::token_view(&created.row),
                    })?
                }
            };
            if as_json {
                output::json(&created)?;
            } else {
                let field = |name: &str| {
                    created
                        .get(name)
                        .and_then(Value::as_str)
                        .unwrap_or_default()
                        .to_owned()
                };
                emit(&shown(&field("token")))?;
                eprintln!(
                    "token {} (role {}, expires {}); shown once, store it now",
                    shown(&field("id")),
                    shown(&field("role")),
                    shown(&field("expiresAt"))
                );
            }
        }
        TokenAction::List { user, page } => {
            let listed = match &on {
                Instance::Server(api) => {
                    own_account(api, user.as_deref(), "--user").await?;
                    let request = api.get("/tokens", &page.query())?.timeout(CALL_TIMEOUT);
                    api.json::<Value>(request).await?
                }
                Instance::Embedded(hive) => {
                    let caller = acting_as(hive, user.as_deref(), "--user").await?;
                    let owner = caller.user.as_ref().map(|u| u.id).unwrap_or_default();
                    let tokens = hive
                        .identity
                        .list_tokens(owner, &page.page()?)
                        .await
                        .map_err(|e| e.to_string())?;
                    output::page_json(&tokens.items, tokens.next_cursor, views::token_view)?
                }
            };
            output::list(&listed, &TOKEN_COLUMNS, as_json)?;
        }
        TokenAction::Revoke { id } => {
            match &on {
                Instance::Server(api) => {
                    api.send(
                        api.request(Method::DELETE, &format!("/tokens/{id}"))
                            .timeout(CALL_TIMEOUT),
                    )
                    .await?;
                }
                Instance::Embedded(hive) => hive
                    .identity
                    .revoke_token(&Caller::cli(), id, &cli_meta())
                    .await
                    .map_err(|e| e.to_string())?,
            }
            emit(&format!("revoked {id}"))?;
        }
    }
    Ok(())
}

/// `hive token create` through a server: signs in as `email` with their password, makes the
/// token in that fresh session (the API makes tokens for no other caller), and signs out.
async fn create_token_signed_in(
    api: &Api,
    email: Option<&str>,
    request: &CreateTokenRequest,
) -> Result<Value, Failure> {
    use reqwest::header::{COOKIE, ORIGIN, SET_COOKIE};
    let Some(email) = email else {
        return Err(Failure::Work(
            "through a server, name the account to sign in as with --user EMAIL: a token is \
             made for a session that has just given its password, never for another token"
                .to_owned(),
        ));
    };
    let password = zeroize::Zeroizing::new(read_sign_in_password(email)?);
    let unreachable = |e| Failure::Instance(api.unreachable(e));
    let signed_in = api
        .http
        .post(format!("{}/auth/login", api.base))
        .json(&serde_json::json!({ "email": email, "password": password.as_str() }))
        .timeout(CALL_TIMEOUT)
        .send()
        .await
        .map_err(unreachable)?;
    if !signed_in.status().is_success() {
        return Err(Failure::Work(format!(
            "the server refused the sign-in of {} ({}): nothing was made",
            shown(email),
            signed_in.status()
        )));
    }
    // The session's cookie, sent back as it came (name=value), with the origin the server
    // expects of a cookie's writes.
    let cookie = zeroize::Zeroizing::new(
        signed_in
            .headers()
            .get(SET_COOKIE)
            .and_then(|value| value.to_str().ok())
            .and_then(|value| value.split(';').next())
            .unwrap_or_default()
            .to_owned(),
    );
    let in_session = |method: Method, path: &str| {
        api.http
            .request(method, format!("{}{path}", api.base))
            .header(COOKIE, cookie.as_str())
            .header(ORIGIN, api.origin())
            .timeout(CALL_TIMEOUT)
    };
    let me: MeResponse = api
        .read_json(
            in_session(Method::GET, "/auth/me")
                .send()
                .await
                .map_err(unreachable)?,
        )
        .await?;
    let made = if me.session_stage.as_deref() == Some("verified") {
        let body = output::to_json(request)?;
        match in_session(Method::POST, "/tokens").json(&body).send().await {
            Ok(response) => match crate::remote::refused(response, "the signed-in session").await {
                Ok(response) => api
                    .read_json::<Value>(response)
                    .await
                    .map_err(Failure::from),
                Err(failure) => Err(failure.into()),
            },
            Err(error) => Err(unreachable(error)),
        }
    } else {
        Err(Failure::Work(format!(
            "{} must pass a second factor to sign in: create the token in the dashboard",
            shown(email)
        )))
    };
    // Whatever happened, the session ends here (it was made for this one token).
    let _ = in_session(Method::POST, "/auth/logout").send().await;
    made
}

/// The password to sign in with: asked once without echo at a terminal, else one line of
/// standard input.
fn read_sign_in_password(email: &str) -> Result<String, String> {
    use std::io::IsTerminal;
    if std::io::stdin().is_terminal() {
        return read_hidden(&format!("Password of {}: ", shown(email)));
    }
    eprintln!("Password of {} (from standard input):", shown(email));
    let mut line = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut line)
        .map_err(|e| format!("cannot read the password: {e}"))?;
    Ok(line.trim_end_matches(['\n', '\r']).to_owned())
}
