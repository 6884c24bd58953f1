//! The caller's second factors: an authenticator app (TOTP, with recovery codes) and passkeys.
//! A session the policy holds back until it enrolls one lands here (from setup or sign-in).
//!
//! Passkey ceremonies need the browser's WebAuthn API: the page's script runs them against
//! the JSON API (`/api/v1/auth/passkeys/…`), so the same core checks and audit records apply;
//! deleting one is a form.

use crate::page::{Chrome, Refused, refusal, render, see_other, shown, shown_refused, when};
use askama::Template;
use axum::extract::{Form, Path, State};
use axum::response::Response;
use hive_core::identity::mfa::TotpState;
use hive_core::kernel::caller::{Caller, SessionStage};
use hive_server::AppState;
use hive_server::auth::{Authenticated, Meta, check_code_size};
use http::StatusCode;
use serde::Deserialize;
use uuid::Uuid;

/// Where this page is: the script and forms come back to it.
pub const PATH: &str = "/account/second-factor";

struct PasskeyLine {
    id: String,
    name: String,
    added: String,
    last_used: String,
    /// Synced between the person's devices (backed up), as platform passkeys are.
    synced: bool,
}

#[derive(Template)]
#[template(path = "second_factor.html")]
struct SecondFactorPage<'a> {
    chrome: Chrome,
    title: &'a str,
    required: bool,
    totp_enabled: bool,
    recovery_codes_left: u32,
    /// Passkeys work with this `AUTH_URL` (a domain name, not an IP address).
    passkeys_available: bool,
    passkeys: Vec<PasskeyLine>,
    error: Option<String>,
}

/// The frame of a session still short of its enrollment shows no menu: it can go nowhere else.
fn chrome_for(caller: &Caller) -> Chrome {
    match caller.stage() {
        SessionStage::Verified => Chrome::of(caller),
        _ => Chrome::anonymous(),
    }
}

async fn page_of(state: &AppState, caller: &Caller) -> Result<SecondFactorPage<'static>, Refused> {
    let status = state.hive.mfa.status(caller).await.map_err(refusal)?;
    let passkeys_available = state.hive.passkeys.available();
    let passkeys = if passkeys_available {
        state.hive.passkeys.list(caller).await.map_err(refusal)?
    } else {
        Vec::new()
    };
    Ok(SecondFactorPage {
        chrome: chrome_for(caller),
        title: "Second factor and passkeys",
        required: caller.stage() == SessionStage::EnrollmentRequired,
        totp_enabled: status.totp == TotpState::Enabled,
        recovery_codes_left: status.recovery_codes_left,
        passkeys_available,
        passkeys: passkeys
            .into_iter()
            .map(|row| PasskeyLine {
                id: row.id.to_string(),
                name: row.name,
                added: when(row.created_at),
                last_used: row.last_used_at.map_or_else(|| "never".to_owned(), when),
                synced: row.backup_state,
            })
            .collect(),
        error: None,
    })
}

/// The page again, saying why the last step was refused.
async fn refused_page(state: &AppState, caller: &Caller, (status, message): Refused) -> Response {
    shown_refused(page_of(state, caller).await, status, |page| {
        page.error = Some(message);
    })
}

pub async fn page(State(state): State<AppState>, Authenticated(caller): Authenticated) -> Response {
    shown(page_of(&state, &caller).await)
}

#[derive(Template)]
#[template(path = "totp.html")]
struct TotpPage<'a> {
    chrome: Chrome,
    title: &'a str,
    qr_data_uri: String,
    secret: &'a str,
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
            };
            render(StatusCode::OK, &page)
        }
        Err(error) => refused_page(&state, &caller, refusal(error)).await,
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
        // The pending seed stands: the person tries another code, or starts again.
        Err((status, message)) => {
            let message = format!("{message} Start again to see the code once more.");
            refused_page(&state, &caller, (status, message)).await
        }
    }
}

pub async fn delete_passkey(
    State(state): State<AppState>,
    Meta(meta): Meta,
    Authenticated(caller): Authenticated,
    Path(id): Path<Uuid>,
) -> Response {
    match state.hive.passkeys.delete(&caller, id, &meta).await {
        Ok(()) => see_other(PATH),
        Err(error) => refused_page(&state, &caller, refusal(error)).await,
    }
}
