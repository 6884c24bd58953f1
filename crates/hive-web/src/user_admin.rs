//! One account, for admins: its role, whether it may sign in, a reset link, its sessions and
//! its second factor.

use crate::page::{Chrome, Refused, problem, refusal, shown, shown_refused, when};
use askama::Template;
use axum::extract::{Form, Path, State};
use axum::response::Response;
use hive_core::identity::AccountUpdate;
use hive_core::kernel::caller::{Caller, RequestMeta};
use hive_proto::Role;
use hive_server::AppState;
use hive_server::auth::{Authenticated, Meta};
use http::StatusCode;
use serde::Deserialize;
use uuid::Uuid;

#[derive(Template)]
#[template(path = "user.html")]
struct UserPage<'a> {
    chrome: Chrome,
    title: &'a str,
    id: String,
    name: String,
    email: String,
    role: Role,
    active: bool,
    second_factor: bool,
    created: String,
    roles: &'a [Role],
    /// What the last action did, or the reset link it made (shown once).
    notice: Option<String>,
    reset_link: Option<String>,
    error: Option<String>,
}

async fn page_of(
    state: &AppState,
    caller: &Caller,
    id: Uuid,
) -> Result<UserPage<'static>, Refused> {
    let user = state.hive.identity.get_user(id).await.map_err(refusal)?;
    Ok(UserPage {
        chrome: Chrome::of(caller),
        title: "User",
        id: user.id.to_string(),
        role: user.role,
        active: user.active,
        second_factor: user.second_factor,
        created: when(user.created_at),
        name: user.display_name,
        email: user.email,
        roles: &Role::ALL,
        notice: None,
        reset_link: None,
        error: None,
    })
}

pub async fn page(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
    Path(id): Path<Uuid>,
) -> Response {
    shown(page_of(&state, &caller, id).await)
}

/// An admin's action on the account, then the account's page saying how it went.
async fn act(
    state: &AppState,
    caller: &Caller,
    id: Uuid,
    done: Result<Option<String>, Refused>,
    notice: &str,
) -> Response {
    let built = page_of(state, caller, id).await;
    match done {
        Ok(link) => shown_refused(built, StatusCode::OK, |page| {
            page.notice = Some(notice.to_owned());
            page.reset_link = link;
        }),
        Err((status, message)) => {
            if status == StatusCode::NOT_FOUND {
                return problem(status, None);
            }
            shown_refused(built, status, |page| page.error = Some(message))
        }
    }
}

async fn update(
    state: &AppState,
    caller: &Caller,
    id: Uuid,
    update: AccountUpdate,
    meta: &RequestMeta,
) -> Result<Option<String>, Refused> {
    state
        .hive
        .identity
        .update_user(caller, id, &update, meta)
        .await
        .map(|_| None)
        .map_err(refusal)
}

#[derive(Deserialize)]
pub struct RoleForm {
    role: String,
}

pub async fn change_role(
    State(state): State<AppState>,
    Meta(meta): Meta,
    Authenticated(caller): Authenticated,
    Path(id): Path<Uuid>,
    Form(form): Form<RoleForm>,
) -> Response {
    let done = match form.role.parse::<Role>() {
        Ok(role) => {
            let change = AccountUpdate {
                display_name: None,
                role: Some(role),
                active: None,
            };
            update(&state, &caller, id, change, &meta).await
        }
        Err(_) => Err((
            StatusCode::BAD_REQUEST,
            "Choose one of the roles listed.".to_owned(),
        )),
    };
    act(
        &state,
        &caller,
        id,
        done,
        "The role is changed; the account's sessions have ended.",
    )
    .await
}

#[derive(Deserialize)]
pub struct ActiveForm {
    active: bool,
}

pub async fn set_active(
    State(state): State<AppState>,
    Meta(meta): Meta,
    Authenticated(caller): Authenticated,
    Path(id): Path<Uuid>,
    Form(form): Form<ActiveForm>,
) -> Response {
    let change = AccountUpdate {
        display_name: None,
        role: None,
        active: Some(form.active),
    };
    let done = update(&state, &caller, id, change, &meta).await;
    let notice = if form.active {
        "The account may sign in again."
    } else {
        "The account is deactivated: it cannot sign in, and its sessions and tokens no longer work."
    };
    act(&state, &caller, id, done, notice).await
}

pub async fn reset_link(
    State(state): State<AppState>,
    Meta(meta): Meta,
    Authenticated(caller): Authenticated,
    Path(id): Path<Uuid>,
) -> Response {
    let done = state
        .hive
        .identity
        .create_reset_link(&caller, id, &meta)
        .await
        .map(|link| Some(link.url))
        .map_err(refusal);
    act(
        &state,
        &caller,
        id,
        done,
        "A reset link is made: pass it on to its owner.",
    )
    .await
}

pub async fn end_sessions(
    State(state): State<AppState>,
    Meta(meta): Meta,
    Authenticated(caller): Authenticated,
    Path(id): Path<Uuid>,
) -> Response {
    let done = state
        .hive
        .identity
        .revoke_all_sessions(&caller, id, &meta)
        .await
        .map(|_| None)
        .map_err(refusal);
    act(
        &state,
        &caller,
        id,
        done,
        "Every session of the account has ended.",
    )
    .await
}

pub async fn reset_second_factor(
    State(state): State<AppState>,
    Meta(meta): Meta,
    Authenticated(caller): Authenticated,
    Path(id): Path<Uuid>,
) -> Response {
    let done = state
        .hive
        .mfa
        .reset(&caller, id, &meta)
        .await
        .map(|()| None)
        .map_err(refusal);
    act(
        &state,
        &caller,
        id,
        done,
        "The account's second factors are removed; it enrolls again at its next sign-in if its role requires one.",
    )
    .await
}
