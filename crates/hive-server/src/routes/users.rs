//! Administration of accounts (admin role) and the audit trail.

use super::views::{page_request, user_view};
use crate::auth::{Authenticated, Meta};
use crate::error::ApiError;
use crate::json::JsonBody;
use crate::state::AppState;
use axum::Json;
use axum::body::Body;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use hive_core::identity::{AccountUpdate, InvitationLink};
use hive_proto::ErrorCode;
use hive_proto::auth::{
    AuditFilterQuery, AuditListQuery, AuditVerificationView, AuditView, EndedSessionsView,
    InviteRequest, LinkResponse, PageQuery, PageResponse, UpdateUserRequest, UserView,
};

use http::{StatusCode, header};
use uuid::Uuid;

fn link_response(link: InvitationLink) -> Response {
    let body = LinkResponse {
        id: link.id.to_string(),
        url: link.url,
        expires_at: link.expires_at,
    };
    (StatusCode::CREATED, Json(body)).into_response()
}

#[utoipa::path(
    get,
    path = "/api/v1/users",
    tag = "users",
    params(PageQuery),
    responses((status = 200, description = "OK.", body = PageResponse<UserView>)),
)]
pub async fn list_users(
    State(state): State<AppState>,
    Query(query): Query<PageQuery>,
) -> Result<Json<PageResponse<UserView>>, ApiError> {
    let page = state
        .hive
        .identity
        .list_users(&page_request(&query)?)
        .await?;
    Ok(Json(PageResponse {
        items: page.items.iter().map(user_view).collect(),
        next_cursor: page.next_cursor,
    }))
}

#[utoipa::path(
    get,
    path = "/api/v1/users/{id}",
    tag = "users",
    params(("id" = Uuid, Path)),
    responses((status = 200, description = "OK.", body = UserView)),
)]
pub async fn get_user(
    State(state): State<AppState>,
    Path(id): Path<Uuid>,
) -> Result<Json<UserView>, ApiError> {
    let user = state.hive.identity.get_user(id).await?;
    Ok(Json(user_view(&user)))
}

#[utoipa::path(
    patch,
    path = "/api/v1/users/{id}",
    tag = "users",
    params(("id" = Uuid, Path)),
    request_body = UpdateUserRequest,
    responses((status = 200, description = "OK.", body = UserView)),
)]
pub async fn update_user(
    State(state): State<AppState>,
    Meta(meta): Meta,
    Authenticated(caller): Authenticated,
    Path(id): Path<Uuid>,
    JsonBody(request): JsonBody<UpdateUserRequest>,
) -> Result<Json<UserView>, ApiError> {
    let update = AccountUpdate {
        display_name: request.display_name,
        role: request.role,
        active: request.active,
    };
    let user = state
        .hive
        .identity
        .update_user(&caller, id, &update, &meta)
        .await?;
    Ok(Json(user_view(&user)))
}

#[utoipa::path(
    post,
    path = "/api/v1/users/invitations",
    tag = "users",
    request_body = InviteRequest,
    responses((status = 201, description = "The invitation link, shown this once.", body = LinkResponse)),
)]
pub async fn invite(
    State(state): State<AppState>,
    Meta(meta): Meta,
    Authenticated(caller): Authenticated,
    JsonBody(request): JsonBody<InviteRequest>,
) -> Result<Response, ApiError> {
    let link = state
        .hive
        .identity
        .invite(&caller, &request.email, request.role, &meta)
        .await?;
    Ok(link_response(link))
}

#[utoipa::path(
    post,
    path = "/api/v1/users/{id}/reset-link",
    tag = "users",
    params(("id" = Uuid, Path)),
    responses((status = 201, description = "The reset link, shown this once.", body = LinkResponse)),
)]
pub async fn reset_link(
    State(state): State<AppState>,
    Meta(meta): Meta,
    Authenticated(caller): Authenticated,
    Path(id): Path<Uuid>,
) -> Result<Response, ApiError> {
    let link = state
        .hive
        .identity
        .create_reset_link(&caller, id, &meta)
        .await?;
    Ok(link_response(link))
}

#[utoipa::path(
    delete,
    path = "/api/v1/users/{id}/sessions",
    tag = "users",
    params(("id" = Uuid, Path)),
    responses((status = 200, description = "How many sessions ended.", body = EndedSessionsView)),
)]
pub async fn end_sessions(
    State(state): State<AppState>,
    Meta(meta): Meta,
    Authenticated(caller): Authenticated,
    Path(id): Path<Uuid>,
) -> Result<Json<EndedSessionsView>, ApiError> {
    let ended = state
        .hive
        .identity
        .revoke_all_sessions(&caller, id, &meta)
        .await?;
    Ok(Json(EndedSessionsView { ended }))
}

/// A malformed query string (an unknown parameter, a limit that is not a number) as the
/// API's error shape rather than axum's plain text.
pub(super) fn query_error(rejection: QueryRejection) -> ApiError {
    let text = rejection.body_text();
    let detail = text
        .strip_prefix("Failed to deserialize query string: ")
        .unwrap_or(&text);
    ApiError::new(
        ErrorCode::ValidationFailed,
        format!("invalid query: {}", describe_query_error(detail)),
    )
}

/// The query parser puts the parameter's path first (`limit: invalid digit…`); for an unknown
/// parameter that path is the client's own name, so it is kept only for known ones.
fn describe_query_error(detail: &str) -> String {
    match detail.split_once(": ") {
        Some((_, rest)) if rest.starts_with("unknown field") => {
            hive_a2a::error::describe_message(rest)
        }
        Some((path, rest)) if hive_a2a::error::is_short_plain_name(path) => {
            format!("{path}: {}", hive_a2a::error::describe_message(rest))
        }
        _ => hive_a2a::error::describe_message(detail),
    }
}

#[utoipa::path(
    get,
    path = "/api/v1/audit",
    tag = "users",
    params(AuditListQuery),
    responses((status = 200, description = "OK.", body = PageResponse<AuditView>)),
)]
pub async fn audit_trail(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
    query: Result<Query<AuditListQuery>, QueryRejection>,
) -> Result<Json<PageResponse<AuditView>>, ApiError> {
    let Query(query) = query.map_err(query_error)?;
    let filter = query.filter();
    let page = page_request(&PageQuery {
        limit: query.limit,
        cursor: query.cursor,
    })?;
    let page = state.hive.audit_log.list(&caller, &filter, &page).await?;
    Ok(Json(PageResponse {
        items: page.items,
        next_cursor: page.next_cursor,
    }))
}

/// The filtered trail as JSON lines, oldest first, read and sent a batch at a time so that a
/// long history never sits in memory. The export itself is audited first: no record, no export.
#[utoipa::path(
    get,
    path = "/api/v1/audit/export",
    tag = "users",
    params(AuditFilterQuery),
    responses((status = 200, description = "The audit records, one JSON object a line.", content_type = "application/x-ndjson", body = String)),
)]
pub async fn audit_export(
    State(state): State<AppState>,
    Meta(meta): Meta,
    Authenticated(caller): Authenticated,
    query: Result<Query<AuditFilterQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    let Query(query) = query.map_err(query_error)?;
    let export = state.hive.audit_log.export(&caller, &query, &meta).await?;
    let batches = futures_util::stream::unfold(Some(export), |export| async move {
        let mut export = export?;
        match export.next_lines().await {
            Ok(Some(lines)) => Some((Ok(Bytes::from(lines)), Some(export))),
            Ok(None) => None,
            // The client sees a cut-off body, never the store's message (logged by the log).
            Err(_) => Some((Err(std::io::Error::other("audit export failed")), None)),
        }
    });
    Ok((
        [(header::CONTENT_TYPE, "application/x-ndjson")],
        Body::from_stream(batches),
    )
        .into_response())
}

/// Walks the audit chain while the server runs and says whether it is intact, or where it
/// first breaks (a broken chain is an answer, 200, not an error).
#[utoipa::path(
    get,
    path = "/api/v1/audit/verify",
    tag = "users",
    responses((status = 200, description = "The walk of the chain: intact, or where it first breaks.", body = AuditVerificationView)),
)]
pub async fn audit_verify(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
) -> Result<Json<AuditVerificationView>, ApiError> {
    let report = state.hive.audit_log.verify(&caller).await?;
    Ok(Json(super::views::verification_view(&report)))
}

#[cfg(test)]
mod tests {
    use super::describe_query_error;

    #[test]
    fn query_errors_name_known_parameters_only() {
        assert_eq!(
            describe_query_error("limit: invalid digit found in string"),
            "limit: invalid digit found in string"
        );
        let unknown = describe_query_error(&format!(
            "{0}: unknown field `{0}`, expected one of `limit`, `cursor`",
            "z".repeat(500)
        ));
        assert!(unknown.starts_with("unknown field (a name"), "{unknown}");
        assert!(!unknown.contains("zzz"), "{unknown}");
        let odd = describe_query_error("a: b: unknown field `a: b CANARY`, expected `limit`");
        assert!(!odd.contains("CANARY"), "{odd}");
        // The names repeated are those the A2A error messages repeat (one rule): a dash too.
        assert_eq!(
            describe_query_error("page-size: invalid type: string \"x\", expected u32"),
            "page-size: invalid type: string, expected u32"
        );
    }
}
