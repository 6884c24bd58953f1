//! The setup wizard: the first admin from the link `hive serve` prints, then the second
//! factor the policy asks for.

use crate::page::{Chrome, refusal, render, see_other, sign_in_new_account};
use askama::Template;
use axum::extract::{Form, State};
use axum::response::Response;
use hive_core::identity::NewAccount;
use hive_core::kernel::caller::{Caller, SessionStage};
use hive_server::AppState;
use hive_server::auth::{Authenticated, Meta, check_code_size, check_password_size};
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

#[derive(Template)]
#[template(path = "second_factor.html")]
struct SecondFactorPage<'a> {
    chrome: Chrome,
    title: &'a str,
    required: bool,
    enabled: bool,
    recovery_codes_left: u32,
    error: Option<String>,
}

/// The frame of a session still short of its enrollment shows no menu: it can go nowhere else.
fn chrome_for(caller: &Caller) -> Chrome {
    match caller.stage() {
        SessionStage::Verified => Chrome::of(caller),
        _ => Chrome::anonymous(),
    }
}

pub async fn second_factor(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
) -> Response {
    let status = match state.hive.mfa.status(&caller).await {
        Ok(status) => status,
        Err(error) => return crate::page::problem(refusal(error).0, None),
    };
    let page = SecondFactorPage {
        chrome: chrome_for(&caller),
        title: "Second factor",
        required: caller.stage() == SessionStage::EnrollmentRequired,
        enabled: status.totp == hive_core::identity::mfa::TotpState::Enabled,
        recovery_codes_left: status.recovery_codes_left,
        error: None,
    };
    render(StatusCode::OK, &page)
}

#[derive(Template)]
#[template(path = "totp.html")]
struct TotpPage<'a> {
    chrome: Chrome,
    title: &'a str,
    qr_data_uri: String,
    secret: &'a str,
    error: Option<String>,
}

/// The QR code as an image the page's policy allows (`img-src data:`), not markup in the page.
fn data_uri(svg: &str) -> String {
    let encoded = percent_encoding::utf8_percent_encode(svg, percent_encoding::NON_ALPHANUMERIC);
    format!("data:image/svg+xml,{encoded}")
}

pub async fn start_totp(
    State(state): State<AppState>,
    Meta(meta): Meta,
    Authenticated(caller): Authenticated,
) -> Response {
    match state.hive.mfa.start_totp(&caller, None, &meta).await {
        Ok(enrollment) => {
            let page = TotpPage {
                chrome: chrome_for(&caller),
                title: "Authenticator app",
                qr_data_uri: data_uri(&enrollment.qr_svg),
                secret: &enrollment.secret,
                error: None,
            };
            render(StatusCode::OK, &page)
        }
        Err(error) => {
            let (status, message) = refusal(error);
            let page = SecondFactorPage {
                chrome: chrome_for(&caller),
                title: "Second factor",
                required: caller.stage() == SessionStage::EnrollmentRequired,
                enabled: false,
                recovery_codes_left: 0,
                error: Some(message),
            };
            render(status, &page)
        }
    }
}

#[derive(Template)]
#[template(path = "recovery_codes.html")]
struct RecoveryCodesPage<'a> {
    chrome: Chrome,
    title: &'a str,
    codes: Vec<&'a str>,
}

#[derive(Deserialize)]
pub struct ConfirmForm {
    code: String,
}

pub async fn confirm_totp(
    State(state): State<AppState>,
    Meta(meta): Meta,
    Authenticated(caller): Authenticated,
    Form(form): Form<ConfirmForm>,
) -> Response {
    let code = form.code.trim();
    let confirmed = match check_code_size(code) {
        Ok(()) => state
            .hive
            .mfa
            .confirm_totp(&caller, code, &meta)
            .await
            .map_err(refusal),
        Err(error) => Err(refusal(error)),
    };
    match confirmed {
        Ok(codes) => {
            let page = RecoveryCodesPage {
                chrome: Chrome::of(&caller),
                title: "Recovery codes",
                codes: codes.iter().map(|code| code.as_str()).collect(),
            };
            render(StatusCode::OK, &page)
        }
        Err((status, message)) => {
            // The pending seed stands: the person tries another code, or starts again.
            let page = SecondFactorPage {
                chrome: chrome_for(&caller),
                title: "Second factor",
                required: caller.stage() == SessionStage::EnrollmentRequired,
                enabled: false,
                recovery_codes_left: 0,
                error: Some(format!("{message} Start again to see the code once more.")),
            };
            render(status, &page)
        }
    }
}
