//! Authentication and authorization in the pipeline.
//!
//! `authenticate` (a pipeline layer) finds the caller of every request: a session cookie, or
//! `Authorization: Bearer` with an API token or `HIVE_INTERNAL_TOKEN`. A cookie-authenticated
//! write must come with `Origin` = the `AUTH_URL` origin. A session short of its second factor
//! is set aside, not made the caller. `admit_session_stage` (a layer on each route, outside its
//! rate limit) makes it the caller only on the routes of its stage (anonymous everywhere
//! else); `authorize` (a layer on each route, inside its rate limit) enforces the route's
//! [`Access`] rule and audits every refusal.

use crate::error::ApiError;
use crate::request::{ClientIp, RequestId, has_federation_headers};
use crate::state::AppState;
use axum::extract::{FromRequestParts, Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use hive_core::kernel::audit::{AuditAction, AuditEvent, Principal};
use hive_core::kernel::caller::{Caller, Credential, RequestMeta, SessionStage};
use hive_proto::{ErrorCode, Role, TokenScope};
use http::request::Parts;
use http::{HeaderMap, HeaderValue, Method, header};

/// Who may call a route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Anyone, signed in or not (setup, login, registration, health).
    Public,
    /// A signed-in caller with at least this role. Objects a non-admin does not own answer
    /// 404 (enforced by the handler's store query).
    AtLeast(Role),
    /// Another replica of this deployment, by the signature its request carries (no session,
    /// no token), which the handler checks before anything else: everyone else gets 403.
    Replica,
}

/// The rule of one route, as the route table declares it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RouteRule {
    pub access: Access,
    /// The token scope the route needs; derived from the method and role when `None`.
    pub scope: Option<TokenScope>,
    /// Session stages short of verified that may call the route too (verifying the second
    /// factor, enrolling one, logging out). Empty for every other route.
    pub during: Stages,
}

/// A set of [`SessionStage`]s short of verified.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Stages {
    pub second_factor: bool,
    pub enrollment: bool,
}

impl Stages {
    pub fn allows(self, stage: SessionStage) -> bool {
        match stage {
            SessionStage::Verified => true,
            SessionStage::SecondFactorRequired => self.second_factor,
            SessionStage::EnrollmentRequired => self.enrollment,
        }
    }
}

impl RouteRule {
    /// The scope a token needs here: `admin` for admin routes, `read` for reads, else `write`.
    pub fn scope_for(&self, method: &Method) -> TokenScope {
        match (self.scope, self.access) {
            (Some(scope), _) => scope,
            (None, Access::AtLeast(Role::Admin)) => TokenScope::Admin,
            (None, _) if method == Method::GET || method == Method::HEAD => TokenScope::Read,
            (None, _) => TokenScope::Write,
        }
    }
}

/// The cookie name: `__Host-` only over https, where browsers accept it.
pub fn session_cookie_name(https: bool) -> &'static str {
    if https {
        "__Host-hive_session"
    } else {
        "hive_session"
    }
}

/// The `Set-Cookie` value of a new session (or, with `None`, of its removal).
pub fn session_cookie(https: bool, token: Option<&str>) -> HeaderValue {
    let max_age = hive_core::identity::limits::SESSION_ABSOLUTE.whole_seconds();
    set_cookie(session_cookie_name(https), token, max_age, https)
}

/// The cookie binding a single sign-on flow to the browser that started it: `__Host-` only
/// over https, like the session cookie.
pub fn oidc_flow_cookie_name(https: bool) -> &'static str {
    if https {
        "__Host-hive_oidc_flow"
    } else {
        "hive_oidc_flow"
    }
}

/// The `Set-Cookie` value of a flow handle (10 minutes, the flow's life), or of its removal.
pub fn oidc_flow_cookie(https: bool, handle: Option<&str>) -> HeaderValue {
    let max_age = hive_core::identity::oidc::FLOW_TTL.whole_seconds();
    set_cookie(oidc_flow_cookie_name(https), handle, max_age, https)
}

/// `HttpOnly`, `SameSite=Lax` (sent on the provider's top-level redirect back, not on
/// cross-site subrequests), `Secure` over https; no value means removal.
fn set_cookie(name: &str, value: Option<&str>, max_age: i64, https: bool) -> HeaderValue {
    let secure = if https { "; Secure" } else { "" };
    let (value, max_age) = match value {
        Some(value) => (value, max_age),
        None => ("", 0),
    };
    let text = format!("{name}={value}; Path=/; HttpOnly; SameSite=Lax; Max-Age={max_age}{secure}");
    HeaderValue::from_str(&text).unwrap_or_else(|_| HeaderValue::from_static(""))
}

/// The `name=value` pairs of the request's cookies, in the order sent, over every `Cookie`
/// header (HTTP/2 clients may send each cookie in a header of its own); a piece without `=`
/// is no cookie.
pub(crate) fn cookie_pairs(headers: &HeaderMap) -> impl Iterator<Item = (&str, &str)> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
}

/// The values of the cookie `name`, in the order sent.
pub(crate) fn cookie_values<'h>(
    headers: &'h HeaderMap,
    name: &str,
) -> impl Iterator<Item = &'h str> {
    cookie_pairs(headers)
        .filter(move |(key, _)| *key == name)
        .map(|(_, value)| value)
}

/// The value of the cookie `name` (the pipeline refuses a credential cookie sent twice).
pub(crate) fn cookie_token<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    cookie_values(headers, name).next()
}

fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

/// The request's context for audit records and sessions.
pub fn request_meta(parts_headers: &HeaderMap, extensions: &http::Extensions) -> RequestMeta {
    RequestMeta {
        ip: extensions
            .get::<ClientIp>()
            .map(|ClientIp(ip)| ip.to_string()),
        request_id: extensions
            .get::<RequestId>()
            .map(|id| id.as_str().to_owned()),
        user_agent: parts_headers
            .get(header::USER_AGENT)
            .and_then(|v| v.to_str().ok())
            .map(|v| v.chars().take(256).collect()),
    }
}

/// The request's [`RequestMeta`], for handlers.
pub struct Meta(pub RequestMeta);

impl<S: Send + Sync> FromRequestParts<S> for Meta {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(Self(request_meta(&parts.headers, &parts.extensions)))
    }
}

/// The authenticated caller, for handlers behind an [`Access::AtLeast`] rule.
#[derive(Debug, Clone)]
pub struct Authenticated(pub Caller);

impl<S: Send + Sync> FromRequestParts<S> for Authenticated {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        parts
            .extensions
            .get::<Caller>()
            .cloned()
            .map(Self)
            .ok_or_else(|| ApiError::of(ErrorCode::Unauthenticated))
    }
}

fn is_write(method: &Method) -> bool {
    !matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS)
}

/// Pipeline layer: resolves the caller and puts it in the request's extensions.
pub async fn authenticate(
    State(state): State<AppState>,
    mut request: Request,
    next: Next,
) -> Response {
    let identity = &state.hive.identity;
    let https = state.hive.config.served_over_https();
    let headers = request.headers();
    // A peer's call is authenticated by the mesh layer of the JSON-RPC routes alone: no
    // fallback to a bearer token or cookie, and anywhere else it is anonymous.
    let resolved = if has_federation_headers(headers) {
        Ok(None)
    } else if let Some(token) = bearer(headers) {
        identity.authenticate_bearer(token).await
    } else if let Some(token) = cookie_token(headers, session_cookie_name(https)) {
        if is_write(request.method()) && !origin_allowed(headers, &state) {
            let meta = request_meta(request.headers(), request.extensions());
            identity
                .auditor()
                .record_refusal(
                    AuditEvent::refused(
                        Principal::Anonymous,
                        AuditAction::AuthCookieOrigin,
                        "cross_origin_cookie_write",
                    ),
                    &meta,
                )
                .await;
            return ApiError::new(
                ErrorCode::Forbidden,
                "a cookie-authenticated write must come from the Hive origin",
            )
            .into_response();
        }
        identity.authenticate_session(token).await
    } else {
        Ok(None)
    };
    match resolved {
        // A session short of its second factor is no caller yet: only the routes of its stage
        // take it as one (see `authorize`); everywhere else it is anonymous.
        Ok(Some(caller)) if caller.stage() != SessionStage::Verified => {
            request.extensions_mut().insert(Unverified(caller));
        }
        Ok(Some(caller)) => {
            request.extensions_mut().insert(caller);
        }
        Ok(None) => {}
        Err(error) => return ApiError::from(error).into_response(),
    }
    next.run(request).await
}

fn origin_allowed(headers: &HeaderMap, state: &AppState) -> bool {
    headers
        .get(header::ORIGIN)
        .is_some_and(|origin| *origin == state.pipeline.allowed_origin)
}

/// A session that has not passed its second factor (or must enroll one first), kept apart
/// from [`Caller`] so that no handler or layer can take it for one by mistake.
#[derive(Debug, Clone)]
struct Unverified(Caller);

/// Route layer, outside the route's own rate limit and [`authorize`]: an unverified session
/// becomes the caller on the routes of its stage (verifying, enrolling, logging out), so that
/// the limit records a refusal as its user's (and a policy counted by principal counts it as
/// its user). On any other route it stays set aside.
pub async fn admit_session_stage(
    State(rule): State<RouteRule>,
    mut request: Request,
    next: Next,
) -> Response {
    if let Some(Unverified(caller)) = request.extensions_mut().remove::<Unverified>() {
        if rule.during.allows(caller.stage()) {
            request.extensions_mut().insert(caller);
        } else {
            request.extensions_mut().insert(Unverified(caller));
        }
    }
    next.run(request).await
}

/// Route layer: the route's rule against the caller. Refusals are audited.
pub async fn authorize(
    State((state, rule)): State<(AppState, RouteRule)>,
    mut request: Request,
    next: Next,
) -> Response {
    // A session still set aside is not one of this route's stage ([`admit_session_stage`]):
    // the request goes on as anonymous, and a refusal names the session.
    let unverified = request
        .extensions_mut()
        .remove::<Unverified>()
        .map(|Unverified(caller)| caller);
    let Access::AtLeast(minimum) = rule.access else {
        return next.run(request).await;
    };
    let caller = request.extensions().get::<Caller>();
    let refusal = match caller {
        // The answer is the anonymous one; the record says whose session it was and why.
        None => {
            let reason = match unverified.as_ref().map(Caller::stage) {
                Some(SessionStage::EnrollmentRequired) => "mfa_enrollment_required",
                Some(_) => "second_factor_required",
                None => "unauthenticated",
            };
            Some((reason, ErrorCode::Unauthenticated))
        }
        Some(caller) if caller.role < minimum => Some(("role_too_low", ErrorCode::Forbidden)),
        Some(caller) if !caller.has_scope(rule.scope_for(request.method())) => {
            Some(("token_scope", ErrorCode::Forbidden))
        }
        Some(_) => None,
    };
    let Some((reason, code)) = refusal else {
        return next.run(request).await;
    };
    let meta = request_meta(request.headers(), request.extensions());
    let actor = caller
        .or(unverified.as_ref())
        .map_or(Principal::Anonymous, Caller::principal);
    let action = AuditAction::HttpRoute {
        method: request.method().to_string(),
        route: matched_path(&request),
    };
    state
        .hive
        .auditor
        .record_refusal(AuditEvent::refused(actor, action, reason), &meta)
        .await;
    let mut response = ApiError::of(code).into_response();
    if code == ErrorCode::Unauthenticated {
        response.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static("Bearer realm=\"hive\""),
        );
    }
    response
}

fn matched_path(request: &Request) -> String {
    request
        .extensions()
        .get::<axum::extract::MatchedPath>()
        .map_or_else(
            || request.uri().path().to_owned(),
            |p| p.as_str().to_owned(),
        )
}

/// How the caller authenticated, as the API names it.
pub fn credential_name(credential: &Credential) -> &'static str {
    match credential {
        Credential::Session { .. } => "session",
        Credential::ApiToken { .. } => "token",
        Credential::Internal => "internal",
        Credential::Cli => "cli",
        Credential::Peer { .. } => "federation",
        Credential::PublicTier { .. } => "public",
        Credential::Workflow { .. } => "workflow",
    }
}

/// Passwords longer than this are refused before any hashing (the policy allows 128
/// characters, at most 512 bytes).
const MAX_PASSWORD_BYTES: usize = 1024;

pub fn check_password_size(password: &str) -> Result<(), ApiError> {
    if password.len() > MAX_PASSWORD_BYTES {
        return Err(ApiError::new(
            hive_proto::ErrorCode::ValidationFailed,
            "the password is too long",
        ));
    }
    Ok(())
}

/// Longer input is refused before any lookup (a recovery code has 64 characters).
const MAX_CODE_BYTES: usize = 128;

pub fn check_code_size(code: &str) -> Result<(), ApiError> {
    if code.len() > MAX_CODE_BYTES {
        return Err(ApiError::new(
            hive_proto::ErrorCode::ValidationFailed,
            "a code has 6 digits (or, for a recovery code, 64 characters)",
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cookies_follow_the_scheme() {
        let plain = session_cookie(false, Some("abc"));
        assert_eq!(
            plain.to_str().unwrap(),
            "hive_session=abc; Path=/; HttpOnly; SameSite=Lax; Max-Age=43200"
        );
        let secure = session_cookie(true, Some("abc"));
        assert_eq!(
            secure.to_str().unwrap(),
            "__Host-hive_session=abc; Path=/; HttpOnly; SameSite=Lax; Max-Age=43200; Secure"
        );
        assert!(
            session_cookie(true, None)
                .to_str()
                .unwrap()
                .contains("Max-Age=0")
        );
        assert_eq!(
            oidc_flow_cookie(true, Some("h")).to_str().unwrap(),
            "__Host-hive_oidc_flow=h; Path=/; HttpOnly; SameSite=Lax; Max-Age=600; Secure"
        );
        assert_eq!(
            oidc_flow_cookie(false, None).to_str().unwrap(),
            "hive_oidc_flow=; Path=/; HttpOnly; SameSite=Lax; Max-Age=0"
        );
    }

    #[test]
    fn credentials_are_read_from_headers() {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::COOKIE,
            HeaderValue::from_static("a=1; hive_session=tok; b=2"),
        );
        headers.insert(
            header::AUTHORIZATION,
            HeaderValue::from_static("bearer  hive_x "),
        );
        assert_eq!(cookie_token(&headers, "hive_session"), Some("tok"));
        assert_eq!(cookie_token(&headers, "__Host-hive_session"), None);
        assert_eq!(bearer(&headers), Some("hive_x"));
        headers.insert(header::AUTHORIZATION, HeaderValue::from_static("Basic abc"));
        assert_eq!(bearer(&headers), None);
    }

    #[test]
    fn scopes_follow_method_and_role() {
        let viewer = RouteRule {
            access: Access::AtLeast(Role::Viewer),
            scope: None,
            during: Stages::default(),
        };
        assert_eq!(viewer.scope_for(&Method::GET), TokenScope::Read);
        assert_eq!(viewer.scope_for(&Method::POST), TokenScope::Write);
        let admin = RouteRule {
            access: Access::AtLeast(Role::Admin),
            scope: None,
            during: Stages::default(),
        };
        assert_eq!(admin.scope_for(&Method::GET), TokenScope::Admin);
    }
}
