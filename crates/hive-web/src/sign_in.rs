//! Signing in (password, then the second factor) and out.

use crate::page::{Chrome, local_path, problem, query_value, refusal, render, see_other};
use askama::Template;
use axum::Extension;
use axum::extract::{Form, Query, State};
use axum::response::{IntoResponse, Response};
use hive_core::identity::LoginOutcome;
use hive_core::kernel::caller::{Caller, SessionStage};
use hive_server::AppState;
use hive_server::auth::{
    Authenticated, Meta, check_code_size, check_password_size, session_cookie,
};
use http::{StatusCode, header};
use serde::Deserialize;

#[derive(Debug, Default, Deserialize)]
/// `?next=`: where to go once signed in.
pub struct Onward {
    next: Option<String>,
}

#[derive(Template)]
#[template(path = "login.html")]
struct LoginPage<'a> {
    chrome: Chrome,
    title: &'a str,
    email: &'a str,
    next: &'a str,
    error: Option<String>,
    setup_pending: bool,
    /// The single sign-on providers configured: (where to start, what to call it).
    providers: Vec<(String, String)>,
    /// Passkeys work here: the page offers signing in with one.
    passkeys: bool,
}

/// A button a provider of `OIDC_PROVIDERS`.
fn providers(state: &AppState) -> Vec<(String, String)> {
    state
        .hive
        .oidc
        .providers()
        .into_iter()
        .map(|provider| {
            let start = format!("/api/v1/auth/oidc/{}/start", query_value(&provider.id));
            (start, provider.display_name)
        })
        .collect()
}

/// Where a session goes next: its missing step first, else where it was going.
pub fn onward(caller: &Caller, next: Option<&str>) -> String {
    let next = local_path(next);
    match caller.stage() {
        SessionStage::SecondFactorRequired => format!("/login/verify?next={}", query_value(next)),
        SessionStage::EnrollmentRequired => crate::second_factor::PATH.to_owned(),
        SessionStage::Verified => next.to_owned(),
    }
}

pub async fn form(
    State(state): State<AppState>,
    caller: Option<Extension<Caller>>,
    Query(query): Query<Onward>,
) -> Response {
    if let Some(Extension(caller)) = caller {
        return see_other(&onward(&caller, query.next.as_deref()));
    }
    let setup_pending = !state.hive.identity.setup_completed().await.unwrap_or(true);
    let page = LoginPage {
        chrome: Chrome::anonymous(),
        title: "Sign in",
        email: "",
        next: local_path(query.next.as_deref()),
        error: None,
        setup_pending,
        providers: providers(&state),
        passkeys: state.hive.passkeys.available(),
    };
    render(StatusCode::OK, &page)
}

#[derive(Deserialize)]
pub struct LoginForm {
    email: String,
    password: String,
    next: Option<String>,
}

pub async fn submit(
    State(state): State<AppState>,
    Meta(meta): Meta,
    Form(form): Form<LoginForm>,
) -> Response {
    let outcome = match check_password_size(&form.password) {
        Ok(()) => state
            .hive
            .identity
            .login(&form.email, &form.password, &meta)
            .await
            .map_err(refusal),
        Err(error) => Err(refusal(error)),
    };
    let (status, error) = match outcome {
        Ok(LoginOutcome::LoggedIn(session)) => {
            let https = state.hive.config.served_over_https();
            // The sign-in page sends the new session on to its next step.
            let to = format!(
                "/login?next={}",
                query_value(local_path(form.next.as_deref()))
            );
            return (
                [(
                    header::SET_COOKIE,
                    session_cookie(https, Some(&session.token)),
                )],
                see_other(&to),
            )
                .into_response();
        }
        Ok(LoginOutcome::Refused) => (
            StatusCode::UNAUTHORIZED,
            "The email or the password is wrong.".to_owned(),
        ),
        Err(refused) => refused,
    };
    let page = LoginPage {
        chrome: Chrome::anonymous(),
        title: "Sign in",
        email: &form.email,
        next: local_path(form.next.as_deref()),
        error: Some(error),
        setup_pending: false,
        providers: providers(&state),
        passkeys: state.hive.passkeys.available(),
    };
    render(status, &page)
}

#[derive(Template)]
#[template(path = "verify.html")]
struct VerifyPage<'a> {
    chrome: Chrome,
    title: &'a str,
    next: &'a str,
    error: Option<String>,
    /// The account has a passkey this session may verify with.
    passkey: bool,
}

async fn has_passkey(state: &AppState, caller: &Caller) -> bool {
    state.hive.passkeys.available()
        && state
            .hive
            .passkeys
            .list(caller)
            .await
            .is_ok_and(|passkeys| !passkeys.is_empty())
}

pub async fn verify_form(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
    Query(query): Query<Onward>,
) -> Response {
    let page = VerifyPage {
        chrome: Chrome::anonymous(),
        title: "Second factor",
        next: local_path(query.next.as_deref()),
        error: None,
        passkey: has_passkey(&state, &caller).await,
    };
    render(StatusCode::OK, &page)
}

#[derive(Deserialize)]
pub struct CodeForm {
    code: String,
    next: Option<String>,
}

pub async fn verify(
    State(state): State<AppState>,
    Meta(meta): Meta,
    Authenticated(caller): Authenticated,
    Form(form): Form<CodeForm>,
) -> Response {
    let code = form.code.trim();
    let verified = match check_code_size(code) {
        Ok(()) => state
            .hive
            .mfa
            .verify(&caller, code, &meta)
            .await
            .map_err(refusal),
        Err(error) => Err(refusal(error)),
    };
    match verified {
        Ok(()) => see_other(local_path(form.next.as_deref())),
        Err((status, error)) => {
            let page = VerifyPage {
                chrome: Chrome::anonymous(),
                title: "Second factor",
                next: local_path(form.next.as_deref()),
                error: Some(error),
                passkey: has_passkey(&state, &caller).await,
            };
            render(status, &page)
        }
    }
}

pub async fn logout(
    State(state): State<AppState>,
    Meta(meta): Meta,
    Authenticated(caller): Authenticated,
) -> Response {
    if let Err(error) = state.hive.identity.logout(&caller, &meta).await {
        // The session still stands (its end could not be recorded): say so, keep the cookie.
        return problem(refusal(error).0, None);
    }
    let https = state.hive.config.served_over_https();
    (
        [(header::SET_COOKIE, session_cookie(https, None))],
        see_other("/login"),
    )
        .into_response()
}

#[derive(Template)]
#[template(path = "reset_password.html")]
struct ResetPage<'a> {
    chrome: Chrome,
    title: &'a str,
    done: bool,
    error: Option<String>,
}

/// The page a reset link opens (`/reset-password#token=…`).
pub async fn reset_form() -> Response {
    let page = ResetPage {
        chrome: Chrome::anonymous(),
        title: "Choose a new password",
        done: false,
        error: None,
    };
    render(StatusCode::OK, &page)
}

#[derive(Deserialize)]
pub struct ResetForm {
    token: String,
    password: String,
}

pub async fn reset(
    State(state): State<AppState>,
    Meta(meta): Meta,
    Form(form): Form<ResetForm>,
) -> Response {
    let reset = match check_password_size(&form.password) {
        Ok(()) => state
            .hive
            .identity
            .reset_password(form.token.trim(), &form.password, &meta)
            .await
            .map_err(refusal),
        Err(error) => Err(refusal(error)),
    };
    let (status, done, error) = match reset {
        Ok(()) => (StatusCode::OK, true, None),
        Err((status, message)) => (status, false, Some(message)),
    };
    let page = ResetPage {
        chrome: Chrome::anonymous(),
        title: "Choose a new password",
        done,
        error,
    };
    render(status, &page)
}

#[derive(Template)]
#[template(path = "reset_request.html")]
struct ResetRequestPage<'a> {
    chrome: Chrome,
    title: &'a str,
    sent: bool,
}

/// Asking for a reset link by mail.
pub async fn reset_request_form() -> Response {
    let page = ResetRequestPage {
        chrome: Chrome::anonymous(),
        title: "Forgot your password",
        sent: false,
    };
    render(StatusCode::OK, &page)
}

#[derive(Deserialize)]
pub struct EmailForm {
    email: String,
}

pub async fn reset_request(
    State(state): State<AppState>,
    Meta(meta): Meta,
    Form(form): Form<EmailForm>,
) -> Response {
    // The same answer whether or not the account exists (the service says nothing either).
    if let Err(error) = state
        .hive
        .identity
        .request_password_reset(&form.email, &meta)
    {
        return problem(refusal(error).0, None);
    }
    let page = ResetRequestPage {
        chrome: Chrome::anonymous(),
        title: "Forgot your password",
        sent: true,
    };
    render(StatusCode::ACCEPTED, &page)
}
