//! What every page shares: the frame around it, rendering, redirects, and the guard that
//! checks forms and turns refusals into pages a person reads.

use askama::Template;
use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Redirect, Response};
use hive_core::kernel::audit::{AuditAction, AuditEvent, Principal};
use hive_core::kernel::caller::Caller;
use hive_proto::{ErrorCode, Role};
use hive_server::auth::request_meta;
use hive_server::{ApiError, AppState};
use hive_store::PageRequest;
use http::{HeaderValue, Method, StatusCode, header};

/// The frame's facts about the person looking: who is signed in, and what the menu shows.
#[derive(Debug, Default)]
pub struct Chrome {
    /// The signed-in user's name; `None` on the sign-in and setup pages.
    pub user: Option<String>,
    pub operator: bool,
    pub admin: bool,
}

impl Chrome {
    pub fn anonymous() -> Self {
        Self::default()
    }

    pub fn of(caller: &Caller) -> Self {
        Self {
            user: Some(
                caller
                    .user
                    .as_ref()
                    .map_or_else(|| "Hive".to_owned(), |user| user.display_name.clone()),
            ),
            operator: caller.role >= Role::Operator,
            admin: caller.role >= Role::Admin,
        }
    }
}

/// A page, with `Cache-Control: no-store` (pages show one person's data).
pub fn render(status: StatusCode, page: &impl Template) -> Response {
    match page.render() {
        Ok(html) => (
            status,
            [
                (
                    header::CONTENT_TYPE,
                    HeaderValue::from_static("text/html; charset=utf-8"),
                ),
                (header::CACHE_CONTROL, HeaderValue::from_static("no-store")),
            ],
            html,
        )
            .into_response(),
        Err(_) => problem(StatusCode::INTERNAL_SERVER_ERROR, None),
    }
}

/// A moment as the pages show it: to the minute, in UTC.
pub fn when(at: time::OffsetDateTime) -> String {
    let at = at.to_offset(time::UtcOffset::UTC);
    format!(
        "{}-{:02}-{:02} {:02}:{:02} UTC",
        at.year(),
        u8::from(at.month()),
        at.day(),
        at.hour(),
        at.minute()
    )
}

/// `303 See Other`: where a form's answer sends the browser next.
pub fn see_other(to: &str) -> Response {
    Redirect::to(to).into_response()
}

/// `next` if it is a path on this site, else the home page: a link can never send a person
/// who signs in to another site.
pub fn local_path(next: Option<&str>) -> &str {
    match next {
        Some(path)
            if path.starts_with('/')
                && !path.starts_with("//")
                && !path.contains('\\')
                && !path.chars().any(char::is_control) =>
        {
            path
        }
        _ => "/",
    }
}

/// A refusal as a page shows it: its status and the message written for people.
pub type Refused = (StatusCode, String);

/// A refusal of a service as a form shows it: its status and the message written for people.
pub fn refusal(error: impl Into<ApiError>) -> Refused {
    let error = error.into();
    let status =
        StatusCode::from_u16(error.code.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    (status, error.message.into_owned())
}

/// `?cursor=` of a list page.
#[derive(Debug, Default, serde::Deserialize)]
pub struct Cursor {
    pub cursor: Option<String>,
}

/// A page of `limit` items after `cursor` (a cursor that is not one is the person's mistake).
pub fn page_request(limit: u32, cursor: Option<&str>) -> Result<PageRequest, Refused> {
    PageRequest::new(limit, cursor).map_err(|error| {
        refusal(ApiError::new(
            ErrorCode::ValidationFailed,
            error.to_string(),
        ))
    })
}

/// The caller's own account (an internal token has none).
pub fn own_account(caller: &Caller) -> Result<uuid::Uuid, Refused> {
    caller.user_id().ok_or_else(|| {
        refusal(ApiError::new(
            ErrorCode::Forbidden,
            "no account behind this caller",
        ))
    })
}

/// A page that was built, or the error page of why it could not be.
pub fn shown(built: Result<impl Template, Refused>) -> Response {
    match built {
        Ok(page) => render(StatusCode::OK, &page),
        Err((status, _)) => problem(status, None),
    }
}

/// A page built again after a refusal, with `edit` saying what went wrong on it.
pub fn shown_refused<T: Template>(
    built: Result<T, Refused>,
    status: StatusCode,
    edit: impl FnOnce(&mut T),
) -> Response {
    match built {
        Ok(mut page) => {
            edit(&mut page);
            render(status, &page)
        }
        Err((status, _)) => problem(status, None),
    }
}

/// After a form's action: on to `to`, or the refusal as a page.
pub fn then_see(done: Result<impl Sized, impl Into<ApiError>>, to: &str) -> Response {
    match done {
        Ok(_) => see_other(to),
        Err(error) => problem(refusal(error).0, None),
    }
}

/// Signs in the person who just made their account (setup, an invitation): the session
/// cookie, and the sign-in page takes them on to their next step.
pub async fn sign_in_new_account(
    state: &AppState,
    email: &str,
    password: &str,
    meta: &hive_core::kernel::caller::RequestMeta,
) -> Response {
    match state.hive.identity.login(email, password, meta).await {
        Ok(hive_core::identity::LoginOutcome::LoggedIn(session)) => {
            let https = state.hive.config.served_over_https();
            let cookie = hive_server::auth::session_cookie(https, Some(&session.token));
            ([(header::SET_COOKIE, cookie)], see_other("/login")).into_response()
        }
        _ => see_other("/login"),
    }
}

#[derive(Template)]
#[template(path = "problem.html")]
struct ProblemPage<'a> {
    chrome: Chrome,
    title: &'a str,
    heading: &'a str,
    advice: &'a str,
}

/// An error page: what went wrong and what to do, in words.
pub fn problem(status: StatusCode, retry_after: Option<&HeaderValue>) -> Response {
    let (heading, advice) = match status {
        StatusCode::FORBIDDEN => (
            "You cannot open this page",
            "Your role does not allow it, or the form came from another site. Go back to the home page, or ask an administrator for access.",
        ),
        StatusCode::NOT_FOUND => (
            "Nothing here",
            "The page or the object it names does not exist, or it is not yours to see.",
        ),
        StatusCode::TOO_MANY_REQUESTS => ("Too many attempts", "Wait a little, then try again."),
        StatusCode::PAYLOAD_TOO_LARGE => (
            "That was too large",
            "Shorten what you entered and send it again.",
        ),
        status if status.is_server_error() => (
            "Hive cannot do this right now",
            "A service it depends on is not answering. Try again in a moment; if it persists, the operator's logs say why.",
        ),
        _ => (
            "The request was not understood",
            "Go back, check what you entered, and send it again.",
        ),
    };
    let page = ProblemPage {
        chrome: Chrome::anonymous(),
        title: heading,
        heading,
        advice,
    };
    let mut response = match page.render() {
        Ok(html) => (
            status,
            [(
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/html; charset=utf-8"),
            )],
            html,
        )
            .into_response(),
        Err(_) => status.into_response(),
    };
    if let Some(seconds) = retry_after {
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, seconds.clone());
    }
    response
}

/// Route layer on every page: a form must come from Hive's own origin (signed in or not, so
/// no other site can sign a browser in or out), and a refusal made below (the route's rule,
/// its limit, a bad form) comes back as a page, or as the sign-in page when no one is signed in.
pub async fn guard(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let mut response = checked(&state, request, next).await;
    // A page's forms need their origin sent: under `no-referrer` (the API's policy) a browser
    // sends `Origin: null` with a form's POST. `same-origin` still sends nothing elsewhere.
    response.headers_mut().insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    response
}

async fn checked(state: &AppState, request: Request, next: Next) -> Response {
    let method = request.method().clone();
    if method == Method::POST
        && request.headers().get(header::ORIGIN) != Some(state.allowed_origin())
    {
        let meta = request_meta(request.headers(), request.extensions());
        let refused = AuditEvent::refused(
            Principal::Anonymous,
            AuditAction::AuthCookieOrigin,
            "cross_origin_form",
        );
        state
            .hive
            .identity
            .auditor()
            .record_refusal(refused, &meta)
            .await;
        return problem(StatusCode::FORBIDDEN, None);
    }
    let path = request.uri().path().to_owned();
    let response = next.run(request).await;
    let status = response.status();
    let written = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("text/html"));
    if !(status.is_client_error() || status.is_server_error()) || written {
        return response;
    }
    if status == StatusCode::UNAUTHORIZED {
        let back = if method == Method::GET {
            path.as_str()
        } else {
            "/"
        };
        return see_other(&sign_in_link(back));
    }
    problem(status, response.headers().get(header::RETRY_AFTER))
}

/// The answer to a path no route has: the API's JSON 404 under `/api/` and `/.well-known/`,
/// the 404 page anywhere else (a browser's mistyped or stale link).
pub async fn not_found(uri: http::Uri) -> Response {
    let path = uri.path();
    if path.starts_with("/api/") || path.starts_with("/.well-known/") {
        return hive_server::not_found().await.into_response();
    }
    let mut page = problem(StatusCode::NOT_FOUND, None);
    page.headers_mut().insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    page
}

/// The sign-in page, coming back to `path` afterwards.
pub fn sign_in_link(path: &str) -> String {
    if path == "/" {
        return "/login".to_owned();
    }
    format!("/login?next={}", query_value(path))
}

/// Characters a query value keeps as they are (RFC 3986's unreserved); all others encoded.
const QUERY_VALUE: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

/// `value` encoded for a query string.
pub fn query_value(value: &str) -> String {
    percent_encoding::utf8_percent_encode(value, QUERY_VALUE).to_string()
}
