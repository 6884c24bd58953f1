//! The caller's API tokens: create (the token shown once), list, revoke; and re-authentication,
//! which creating one needs when the session's password check is older than ten minutes.

use crate::page::{
    Chrome, Cursor, Refused, local_path, own_account, page_request, problem, query_value, refusal,
    see_other, shown, shown_refused, when,
};
use askama::Template;
use axum::extract::{Form, Path, Query, State};
use axum::response::Response;
use hive_core::identity::NewToken;
use hive_core::kernel::caller::Caller;
use hive_proto::TokenScope;
use hive_server::AppState;
use hive_server::auth::{Authenticated, Meta, check_password_size};
use http::StatusCode;
use serde::Deserialize;
use uuid::Uuid;

/// Tokens on one page of the list.
const PAGE_SIZE: u32 = 50;

struct TokenLine {
    id: String,
    name: String,
    role: &'static str,
    scopes: String,
    created: String,
    expires: String,
    last_used: String,
    revoked: bool,
}

#[derive(Template)]
#[template(path = "tokens.html")]
struct TokensPage<'a> {
    chrome: Chrome,
    title: &'a str,
    tokens: Vec<TokenLine>,
    /// The next page's cursor, encoded for the link.
    next_cursor: Option<String>,
    /// A token just created: shown this once.
    created: Option<String>,
    error: Option<String>,
    /// The create form was refused for an old password check: the page asks for it.
    reauthenticate: bool,
}

async fn page_of(
    state: &AppState,
    caller: &Caller,
    cursor: Option<&str>,
) -> Result<TokensPage<'static>, Refused> {
    let user = own_account(caller)?;
    let request = page_request(PAGE_SIZE, cursor)?;
    let listed = state
        .hive
        .identity
        .list_tokens(user, &request)
        .await
        .map_err(refusal)?;
    let tokens = listed
        .items
        .into_iter()
        .map(|token| TokenLine {
            id: token.id.to_string(),
            role: token.role.as_str(),
            scopes: if token.scopes.is_empty() {
                "all of the role's".to_owned()
            } else {
                token
                    .scopes
                    .iter()
                    .map(|s| s.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            },
            created: when(token.created_at),
            expires: when(token.expires_at),
            last_used: token.last_used_at.map_or_else(|| "never".to_owned(), when),
            revoked: token.revoked_at.is_some(),
            name: token.name,
        })
        .collect();
    Ok(TokensPage {
        chrome: Chrome::of(caller),
        title: "API tokens",
        tokens,
        next_cursor: listed.next_cursor.as_deref().map(query_value),
        created: None,
        error: None,
        reauthenticate: false,
    })
}

pub async fn list(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
    Query(query): Query<Cursor>,
) -> Response {
    shown(page_of(&state, &caller, query.cursor.as_deref()).await)
}

#[derive(Deserialize)]
pub struct CreateForm {
    name: String,
    expires_in_days: Option<String>,
    scope_read: Option<String>,
    scope_write: Option<String>,
    scope_execute: Option<String>,
    scope_admin: Option<String>,
}

impl CreateForm {
    fn scopes(&self) -> Vec<TokenScope> {
        [
            (&self.scope_read, TokenScope::Read),
            (&self.scope_write, TokenScope::Write),
            (&self.scope_execute, TokenScope::Execute),
            (&self.scope_admin, TokenScope::Admin),
        ]
        .into_iter()
        .filter_map(|(ticked, scope)| ticked.is_some().then_some(scope))
        .collect()
    }
}

pub async fn create(
    State(state): State<AppState>,
    Meta(meta): Meta,
    Authenticated(caller): Authenticated,
    Form(form): Form<CreateForm>,
) -> Response {
    let days = match form.expires_in_days.as_deref().map(str::trim) {
        None | Some("") => None,
        Some(days) => match days.parse::<i64>() {
            Ok(days) => Some(days),
            Err(_) => {
                return with_error(
                    &state,
                    &caller,
                    "The lifetime is a number of days.".into(),
                    false,
                )
                .await;
            }
        },
    };
    let request = NewToken {
        name: form.name.clone(),
        role: None,
        scopes: form.scopes(),
        expires_in_days: days,
    };
    match state
        .hive
        .identity
        .create_token(&caller, &request, &meta)
        .await
    {
        Ok(created) => shown_refused(
            page_of(&state, &caller, None).await,
            StatusCode::CREATED,
            |page| page.created = Some(created.token),
        ),
        Err(error) => {
            let reauthenticate = matches!(
                error,
                hive_core::identity::IdentityError::ReauthenticationRequired
            );
            let message = if reauthenticate {
                "Creating a token needs your password again: confirm it below, then create the token.".to_owned()
            } else {
                refusal(error).1
            };
            with_error(&state, &caller, message, reauthenticate).await
        }
    }
}

/// The list again, with what went wrong above it.
async fn with_error(
    state: &AppState,
    caller: &Caller,
    message: String,
    reauthenticate: bool,
) -> Response {
    let status = StatusCode::UNPROCESSABLE_ENTITY;
    shown_refused(page_of(state, caller, None).await, status, |page| {
        page.error = Some(message);
        page.reauthenticate = reauthenticate;
    })
}

pub async fn revoke(
    State(state): State<AppState>,
    Meta(meta): Meta,
    Authenticated(caller): Authenticated,
    Path(id): Path<Uuid>,
) -> Response {
    match state.hive.identity.revoke_token(&caller, id, &meta).await {
        Ok(()) => see_other("/account/tokens"),
        Err(error) => problem(refusal(error).0, None),
    }
}

#[derive(Deserialize)]
pub struct PasswordForm {
    password: String,
    next: Option<String>,
}

pub async fn reauthenticate(
    State(state): State<AppState>,
    Meta(meta): Meta,
    Authenticated(caller): Authenticated,
    Form(form): Form<PasswordForm>,
) -> Response {
    let checked = match check_password_size(&form.password) {
        Ok(()) => state
            .hive
            .identity
            .reauthenticate(&caller, &form.password, &meta)
            .await
            .map_err(refusal),
        Err(error) => Err(refusal(error)),
    };
    match checked {
        Ok(()) => see_other(local_path(form.next.as_deref())),
        Err((status, _)) => problem(status, None),
    }
}
