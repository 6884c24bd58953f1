//! The caller's account: their sessions (revoke any) and their password.

use crate::page::{
    Chrome, Refused, own_account, page_request, refusal, shown, shown_refused, then_see, when,
};
use askama::Template;
use axum::extract::{Form, Path, State};
use axum::response::Response;
use hive_core::identity::IdentityError;
use hive_core::kernel::caller::{Caller, Credential};
use hive_server::AppState;
use hive_server::auth::{Authenticated, Meta, check_password_size};
use http::StatusCode;
use serde::Deserialize;
use uuid::Uuid;

/// Sessions shown: a user has at most 48.
const SESSIONS_SHOWN: u32 = 50;

struct SessionLine {
    id: String,
    current: bool,
    ip: String,
    user_agent: String,
    created: String,
    last_seen: String,
}

#[derive(Template)]
#[template(path = "account.html")]
struct AccountPage<'a> {
    chrome: Chrome,
    title: &'a str,
    sessions: Vec<SessionLine>,
    error: Option<String>,
    notice: Option<&'a str>,
    /// The change was refused for an old password check: the page asks for it first.
    reauthenticate: bool,
}

const REAUTHENTICATE: &str = "Changing the password needs your password checked in the last ten minutes: confirm it below, then change it.";

async fn page_of(state: &AppState, caller: &Caller) -> Result<AccountPage<'static>, Refused> {
    let user = own_account(caller)?;
    let request = page_request(SESSIONS_SHOWN, None)?;
    let current = match caller.credential {
        Credential::Session { session_id, .. } => Some(session_id),
        _ => None,
    };
    let listed = state
        .hive
        .identity
        .list_sessions(user, &request)
        .await
        .map_err(refusal)?;
    Ok(AccountPage {
        chrome: Chrome::of(caller),
        title: "Account",
        sessions: listed
            .items
            .into_iter()
            .map(|session| SessionLine {
                id: session.id.to_string(),
                current: Some(session.id) == current,
                created: when(session.created_at),
                last_seen: when(session.last_seen_at),
                ip: session.ip,
                user_agent: session.user_agent,
            })
            .collect(),
        error: None,
        notice: None,
        reauthenticate: false,
    })
}

pub async fn page(State(state): State<AppState>, Authenticated(caller): Authenticated) -> Response {
    shown(page_of(&state, &caller).await)
}

pub async fn revoke_session(
    State(state): State<AppState>,
    Meta(meta): Meta,
    Authenticated(caller): Authenticated,
    Path(id): Path<Uuid>,
) -> Response {
    then_see(
        state.hive.identity.revoke_session(&caller, id, &meta).await,
        "/account",
    )
}

#[derive(Deserialize)]
pub struct PasswordForm {
    current_password: String,
    new_password: String,
}

pub async fn change_password(
    State(state): State<AppState>,
    Meta(meta): Meta,
    Authenticated(caller): Authenticated,
    Form(form): Form<PasswordForm>,
) -> Response {
    let changed = match check_password_size(&form.current_password)
        .and_then(|()| check_password_size(&form.new_password))
    {
        Ok(()) => state
            .hive
            .identity
            .change_password(&caller, &form.current_password, &form.new_password, &meta)
            .await
            .map_err(|error| match error {
                IdentityError::ReauthenticationRequired => {
                    (StatusCode::UNPROCESSABLE_ENTITY, REAUTHENTICATE.to_owned())
                }
                other => refusal(other),
            }),
        Err(error) => Err(refusal(error)),
    };
    let (status, error, notice) = match changed {
        Ok(()) => (
            StatusCode::OK,
            None,
            Some("Your password is changed; your other sessions have ended."),
        ),
        Err((status, message)) => (status, Some(message), None),
    };
    shown_refused(page_of(&state, &caller).await, status, |page| {
        page.reauthenticate = error.as_deref() == Some(REAUTHENTICATE);
        page.error = error;
        page.notice = notice;
    })
}
