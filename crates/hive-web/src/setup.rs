//! The setup wizard: the first admin from the link `hive serve` prints; the sign-in page then
//! sends them on to the second factor the policy asks for (`second_factor`).

use crate::page::{Chrome, refusal, render, see_other, sign_in_new_account};
use askama::Template;
use axum::extract::{Form, State};
use axum::response::Response;
use hive_core::identity::NewAccount;
use hive_server::AppState;
use hive_server::auth::{Meta, check_password_size};
use http::StatusCode;
use serde::Deserialize;

#[derive(Template)]
#[template(path = "setup.html")]
struct SetupPage<'a> {
    chrome: Chrome,
    title: &'a str,
    email: &'a str,
    display_name: &'a str,
    error: Option<String>,
}

pub async fn form(State(state): State<AppState>) -> Response {
    if state.hive.identity.setup_completed().await.unwrap_or(false) {
        return see_other("/login");
    }
    let page = SetupPage {
        chrome: Chrome::anonymous(),
        title: "Set up Hive",
        email: "",
        display_name: "",
        error: None,
    };
    render(StatusCode::OK, &page)
}

#[derive(Deserialize)]
pub struct SetupForm {
    setup_token: String,
    email: String,
    display_name: String,
    password: String,
}

pub async fn submit(
    State(state): State<AppState>,
    Meta(meta): Meta,
    Form(form): Form<SetupForm>,
) -> Response {
    let identity = &state.hive.identity;
    let account = NewAccount {
        email: form.email.clone(),
        display_name: form.display_name.clone(),
        password: form.password.clone(),
    };
    let created = match check_password_size(&form.password) {
        Ok(()) => identity
            .setup(Some(form.setup_token.trim()), &account, &meta)
            .await
            .map_err(refusal),
        Err(error) => Err(refusal(error)),
    };
    if let Err((status, error)) = created {
        let page = SetupPage {
            chrome: Chrome::anonymous(),
            title: "Set up Hive",
            email: &form.email,
            display_name: &form.display_name,
            error: Some(error),
        };
        return render(status, &page);
    }
    // The admin exists: sign them in, and the sign-in page takes them to the next step.
    sign_in_new_account(&state, &form.email, &form.password, &meta).await
}
