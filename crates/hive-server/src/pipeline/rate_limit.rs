//! Rate limiting in the pipeline: the policy a request falls under, counted by client IP or
//! principal, answered `429` with `Retry-After` when over; every counted answer carries
//! `RateLimit-Limit`, `RateLimit-Remaining` and `RateLimit-Reset`.

use crate::error::ApiError;
use crate::request::ClientIp;
use crate::state::AppState;
use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use hive_core::kernel::audit::{AuditAction, AuditEvent, Principal};
use hive_proto::ErrorCode;
use hive_state::{Decision, Policy, Scope};
use http::{HeaderMap, HeaderName, HeaderValue};
use std::time::Duration;

const LIMIT: HeaderName = HeaderName::from_static("ratelimit-limit");
const REMAINING: HeaderName = HeaderName::from_static("ratelimit-remaining");
const RESET: HeaderName = HeaderName::from_static("ratelimit-reset");

/// The policy of a path, for the policies that cover whole areas; routes with their own
/// (login, setup…) add them as route layers.
fn area_policy(path: &str) -> Option<&'static str> {
    if path == "/api/health" {
        Some("health")
    } else if path.starts_with("/api/v1/")
        || !(path.starts_with("/api/") || path.starts_with("/.well-known/"))
    {
        // The dashboard's pages and assets count against the same budget as the API.
        Some("api")
    } else {
        None
    }
}

pub async fn apply(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let policy = area_policy(request.uri().path())
        .and_then(|name| state.hive.state.policies.get(name))
        .cloned();
    match policy {
        // Area limits are not audited: a flood of refusals must not become a flood of records.
        Some(policy) => enforce(&state, &policy, Refusals::Unrecorded, request, next).await,
        None => next.run(request).await,
    }
}

/// Whether refusals under a policy are written to the audit log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refusals {
    /// One record per caller and window: the first refusal is recorded, the rest are counted
    /// in metrics only (the audit log stays bounded under a flood).
    Recorded,
    Unrecorded,
}

/// Counts the request under `policy` and lets it through or refuses it.
pub(crate) async fn enforce(
    state: &AppState,
    policy: &Policy,
    refusals: Refusals,
    request: Request,
    next: Next,
) -> Response {
    let ip = request
        .extensions()
        .get::<ClientIp>()
        .map_or_else(|| "unknown".to_owned(), |ClientIp(ip)| ip.to_string());
    // Route policies run after authentication and count a caller by principal; the area
    // policies run before it and count the address.
    let caller = request
        .extensions()
        .get::<hive_core::kernel::caller::Caller>();
    let key = match (policy.scope, caller) {
        (Scope::ClientIp, _) => ip,
        // Anonymous public-tier callers share no principal: each address is its own.
        (Scope::Principal, Some(caller))
            if matches!(
                caller.credential,
                hive_core::kernel::caller::Credential::PublicTier { key: None }
            ) =>
        {
            format!("public:{ip}")
        }
        // One bucket per account, however many tokens it uses.
        (Scope::Principal, Some(caller)) => caller.owner().to_string(),
        (Scope::Principal, None) => format!("ip:{ip}"),
    };
    match state.hive.state.limiter.check(policy, &key).await {
        Ok(decision) if decision.allowed => {
            metrics::counter!("hive_rate_limit_decisions_total", "policy" => policy.name, "outcome" => "allowed").increment(1);
            let mut response = next.run(request).await;
            describe(response.headers_mut(), &decision);
            response
        }
        Ok(decision) => {
            tracing::warn!(policy = policy.name, "rate limited");
            if refusals == Refusals::Recorded {
                let meta = crate::auth::request_meta(request.headers(), request.extensions());
                let actor = caller.map_or(
                    Principal::Anonymous,
                    hive_core::kernel::caller::Caller::principal,
                );
                record_refusal(state, policy, &key, decision.retry_after, actor, meta).await;
            }
            metrics::counter!("hive_rate_limit_decisions_total", "policy" => policy.name, "outcome" => "limited").increment(1);
            let mut response = ApiError::of(ErrorCode::RateLimited)
                .with_retry_after(whole_seconds(decision.retry_after))
                .into_response();
            describe(response.headers_mut(), &decision);
            response
        }
        Err(error) => {
            // Only reachable when even the per-node limiter cannot decide (its table is full).
            tracing::error!(policy = policy.name, %error, "rate limiter cannot decide; refusing");
            ApiError::of(ErrorCode::ServiceUnavailable)
                .with_retry_after(1)
                .into_response()
        }
    }
}

/// Writes `rate_limit.exceeded` for the first refusal of `key` under `policy` in a window.
async fn record_refusal(
    state: &AppState,
    policy: &Policy,
    key: &str,
    window: Duration,
    principal: Principal,
    meta: hive_core::kernel::caller::RequestMeta,
) {
    let once = format!("rate-limit-audit:{}:{key}", policy.name);
    // A replay cache that cannot answer records the refusal rather than hide it.
    let first = state
        .hive
        .state
        .replay
        .consume(&once, window.max(Duration::from_secs(1)))
        .await
        .unwrap_or(true);
    if !first {
        return;
    }
    let event = AuditEvent::new(principal, AuditAction::RateLimitExceeded)
        .outcome(hive_store::AuditOutcome::Denied)
        .detail(serde_json::json!({ "policy": policy.name }));
    state.hive.auditor.record_refusal(event, &meta).await;
}

fn describe(headers: &mut HeaderMap, decision: &Decision) {
    headers.insert(LIMIT, HeaderValue::from(decision.limit));
    headers.insert(REMAINING, HeaderValue::from(decision.remaining));
    headers.insert(
        RESET,
        HeaderValue::from(whole_seconds(decision.reset_after)),
    );
}

/// Rounded up, and at least 1 for a wait: "retry in 0 s" would invite a hot loop.
fn whole_seconds(wait: Duration) -> u64 {
    let seconds = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
    seconds.max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn areas_and_rounding() {
        assert_eq!(area_policy("/api/health"), Some("health"));
        assert_eq!(area_policy("/api/v1/agents"), Some("api"));
        assert_eq!(area_policy("/.well-known/agent-card.json"), None);
        assert_eq!(whole_seconds(Duration::from_millis(1)), 1);
        assert_eq!(whole_seconds(Duration::from_millis(1500)), 2);
        assert_eq!(whole_seconds(Duration::from_secs(3)), 3);
    }
}
