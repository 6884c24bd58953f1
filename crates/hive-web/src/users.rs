//! Administration of users: the list, and invitations (the link shown once); and the page an
//! invitation link opens, where the invited person creates their account.

use crate::page::{
    Chrome, Cursor, Refused, page_request, problem, query_value, refusal, render, shown,
    sign_in_new_account,
};
use askama::Template;
use axum::extract::{Form, Query, State};
use axum::response::Response;
use hive_core::kernel::caller::Caller;
use hive_proto::Role;
use hive_server::AppState;
use hive_server::auth::{Authenticated, Meta, check_password_size};
use http::StatusCode;
use serde::Deserialize;

/// Users on one page of the list.
const PAGE_SIZE: u32 = 50;

struct UserLine {
    id: String,
    name: String,
    email: String,
    role: &'static str,
    active: bool,
    second_factor: bool,
}

#[derive(Template)]
#[template(path = "users.html")]
struct UsersPage<'a> {
    chrome: Chrome,
    title: &'a str,
    users: Vec<UserLine>,
    /// The next page's cursor, encoded for the link.
    next_cursor: Option<String>,
    /// An invitation just made: its link, shown this once, and for whom.
    invited: Option<(String, String)>,
    error: Option<String>,
    roles: &'a [Role],
}

async fn page_of(
    state: &AppState,
    caller: &Caller,
    cursor: Option<&str>,
) -> Result<UsersPage<'static>, Refused> {
    let request = page_request(PAGE_SIZE, cursor)?;
    let listed = state
        .hive
        .identity
        .list_users(&request)
        .await
        .map_err(refusal)?;
    Ok(UsersPage {
        chrome: Chrome::of(caller),
        title: "Users",
        users: listed
            .items
            .into_iter()
            .map(|user| UserLine {
                id: user.id.to_string(),
                role: user.role.as_str(),
                active: user.active,
                second_factor: user.second_factor,
                name: user.display_name,
                email: user.email,
            })
            .collect(),
        next_cursor: listed.next_cursor.as_deref().map(query_value),
        invited: None,
        error: None,
        roles: &Role::ALL,
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
pub struct InviteForm {
    email: String,
    role: String,
}

pub async fn invite(
    State(state): State<AppState>,
    Meta(meta): Meta,
    Authenticated(caller): Authenticated,
    Form(form): Form<InviteForm>,
) -> Response {
    let invited = match form.role.parse::<Role>() {
        Ok(role) => state
            .hive
            .identity
            .invite(&caller, &form.email, role, &meta)
            .await
            .map_err(refusal),
        Err(_) => Err((
            StatusCode::BAD_REQUEST,
            "Choose one of the roles listed.".to_owned(),
        )),
    };
    let mut page = match page_of(&state, &caller, None).await {
        Ok(page) => page,
        Err((status, _)) => return problem(status, None),
    };
    match invited {
        Ok(link) => {
            page.invited = Some((form.email, link.url));
            render(StatusCode::CREATED, &page)
        }
        Err((status, message)) => {
            page.error = Some(message);
            render(status, &page)
        }
    }
}

#[derive(Template)]
#[template(path = "invitation.html")]
struct InvitationPage<'a> {
    chrome: Chrome,
    title: &'a str,
    display_name: &'a str,
    error: Option<String>,
}

pub async fn invitation() -> Response {
    let page = InvitationPage {
        chrome: Chrome::anonymous(),
        title: "Join Hive",
        display_name: "",
        error: None,
    };
    render(StatusCode::OK, &page)
}

#[derive(Deserialize)]
pub struct AcceptForm {
    token: String,
    display_name: String,
    password: String,
}

pub async fn accept(
    State(state): State<AppState>,
    Meta(meta): Meta,
    Form(form): Form<AcceptForm>,
) -> Response {
    let identity = &state.hive.identity;
    let created = match check_password_size(&form.password) {
        Ok(()) => identity
            .accept_invitation(form.token.trim(), &form.display_name, &form.password, &meta)
            .await
            .map_err(refusal),
        Err(error) => Err(refusal(error)),
    };
    let user = match created {
        Ok(user) => user,
        Err((status, error)) => {
            let page = InvitationPage {
                chrome: Chrome::anonymous(),
                title: "Join Hive",
                display_name: &form.display_name,
                error: Some(error),
            };
            return render(status, &page);
        }
    };
    sign_in_new_account(&state, &user.email, &form.password, &meta).await
}

/// The roles an invitation may carry, for the form's choice.
pub fn role_label(role: &Role) -> &'static str {
    match role {
        Role::Viewer => "viewer: calls the agents shared with them",
        Role::Operator => "operator: registers and runs agents, keeps secrets",
        Role::Admin => "admin: everything, users and settings included",
    }
}
