//! The API's OpenAPI 3.1 document, `GET /api/v1/openapi.json`.
//!
//! Each operation comes from its handler's `#[utoipa::path]` annotation (parameters, request
//! and response bodies); what the route table decides is written in from the table itself, so
//! the two cannot drift: the security requirement, the minimum role (`x-hive-access`), the
//! token scope (`x-hive-scope`), the route's own rate limit (`x-hive-rate-limit`) and the
//! error responses in the one error shape. A test fails when the document and the table differ
//! by a path or a method (docs/http-api.md says how to add a route).

use super::{
    RouteEntry, a2a, agents, auth, backup, billing, conversations, events, health, hosted, mesh,
    mfa, oidc, passkeys, route_table, secrets, settings, users, vault, wan, workflows,
};
use crate::auth::{Access, session_cookie_name};
use crate::state::AppState;
use axum::Json;
use axum::extract::State;
use hive_proto::{ErrorBody, Role};
use http::Method;
use serde::Serialize;
use serde_json::Value;
use utoipa::openapi::extensions::ExtensionsBuilder;
use utoipa::openapi::path::{Operation, PathItem};
use utoipa::openapi::response::{Response, ResponseBuilder};
use utoipa::openapi::schema::{
    KnownFormat, ObjectBuilder, OneOfBuilder, Schema, SchemaFormat, Type,
};
use utoipa::openapi::security::{
    ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityRequirement, SecurityScheme,
};
use utoipa::openapi::{Content, OpenApi as Document, Ref, RefOr};
use utoipa::{OpenApi, PartialSchema, ToSchema};

/// The security schemes' names in the document.
const BEARER: &str = "bearerToken";
const COOKIE: &str = "sessionCookie";

/// The operations of the handlers, one a route of the table (in the table's order).
#[derive(OpenApi)]
#[openapi(
    info(
        title = "Hive API",
        description = "The REST and A2A API of a Hive instance. Every operation names its \
            minimum role (`x-hive-access`) and, for API tokens, the scope it needs \
            (`x-hive-scope`); every error has one shape (`ErrorBody`). See docs/http-api.md.",
    ),
    paths(
        health::health,
        health::system_health,
        auth::setup_status,
        auth::setup,
        auth::register,
        auth::login,
        auth::show_invitation,
        auth::accept_invitation,
        auth::reset_password,
        auth::request_password_reset,
        oidc::providers,
        oidc::start,
        oidc::callback,
        auth::logout,
        auth::me,
        auth::update_me,
        auth::reauthenticate,
        auth::change_password,
        mfa::status,
        mfa::verify,
        mfa::start_totp,
        mfa::confirm_totp,
        mfa::disable_totp,
        mfa::regenerate_recovery_codes,
        auth::list_sessions,
        auth::revoke_session,
        auth::list_tokens,
        auth::create_token,
        auth::revoke_token,
        passkeys::list,
        passkeys::register_start,
        passkeys::register_finish,
        passkeys::rename,
        passkeys::delete,
        passkeys::second_factor_start,
        passkeys::second_factor_finish,
        passkeys::login_start,
        passkeys::login_finish,
        secrets::list,
        secrets::create,
        secrets::import,
        secrets::get,
        secrets::update,
        secrets::delete,
        agents::list,
        agents::create,
        agents::import,
        agents::get,
        agents::update,
        agents::start,
        agents::stop,
        agents::usage,
        agents::calls,
        agents::delete,
        hosted::push_bundle,
        hosted::bundles,
        hosted::rollback,
        hosted::restart,
        hosted::pause,
        hosted::resume,
        hosted::logs,
        hosted::follow,
        hosted::stats,
        workflows::list,
        workflows::apply,
        workflows::validate,
        workflows::import,
        workflows::get,
        workflows::update,
        workflows::patch,
        workflows::delete,
        workflows::versions,
        workflows::version,
        workflows::webhook_secret,
        workflows::start_run,
        workflows::runs,
        workflows::run,
        workflows::events,
        workflows::cancel,
        workflows::retry,
        workflows::decide,
        workflows::approvals,
        workflows::webhook,
        billing::wallet,
        billing::ledger,
        billing::usage,
        billing::usage_csv,
        billing::prices,
        billing::set_price,
        billing::delete_price,
        billing::adjust,
        billing::budgets,
        billing::set_budget,
        billing::delete_budget,
        billing::alerts,
        billing::checkout,
        billing::customer_portal,
        billing::stripe_webhook,
        a2a::instance_card,
        a2a::agent_card,
        a2a::instance_rpc,
        a2a::public_rpc,
        a2a::agent_rpc,
        a2a::status,
        conversations::chat,
        conversations::list,
        conversations::get,
        conversations::messages,
        conversations::delete,
        mesh::descriptor,
        mesh::status,
        mesh::directory,
        mesh::proxy,
        events::stream,
        wan::ingress,
        users::list_users,
        users::invite,
        users::get_user,
        users::update_user,
        users::reset_link,
        users::end_sessions,
        mfa::reset_user,
        users::audit_trail,
        settings::get_security,
        settings::put_security,
        settings::get_workflows,
        settings::put_workflows,
        vault::list_keys,
        vault::rotate,
        vault::reencrypt,
        backup::list,
        backup::create,
        users::audit_export,
        users::audit_verify,
        serve,
    ),
    components(schemas(ErrorBody))
)]
struct Annotated;

/// Whether the document describes a route of the table: all but the calls between replicas
/// (`/internal/`), which only another replica can make, signed with the deployment's key.
pub fn documented(entry: &RouteEntry) -> bool {
    !matches!(entry.rule.access, Access::Replica)
}

/// The document, with the session cookie's name as this server sets it (`https`).
pub fn document(https: bool) -> Document {
    let mut document = Annotated::openapi();
    let components = document.components.get_or_insert_with(Default::default);
    components.add_security_scheme(
        BEARER,
        SecurityScheme::Http(
            HttpBuilder::new()
                .scheme(HttpAuthScheme::Bearer)
                .description(Some(
                    "An API token (`hive_…`, made at `POST /api/v1/tokens`); a federated \
                     peer's token at the A2A endpoints.",
                ))
                .build(),
        ),
    );
    components.add_security_scheme(
        COOKIE,
        SecurityScheme::ApiKey(ApiKey::Cookie(ApiKeyValue::with_description(
            session_cookie_name(https),
            "The dashboard's session (`POST /api/v1/auth/login`); a write with it also needs \
             an `Origin` equal to `AUTH_URL`'s.",
        ))),
    );
    components.responses.insert(
        ERROR.into(),
        RefOr::T(error_response(
            "An error, in the one error shape.",
            RefOr::Ref(Ref::from_schema_name("ErrorBody")),
        )),
    );
    components.responses.insert(
        RPC_ERROR.into(),
        RefOr::T(error_response(
            "An error: a JSON-RPC error response, or the one error shape when the request was \
             refused before the call was read.",
            OneOfBuilder::new()
                .item(Ref::from_schema_name("ErrorBody"))
                .item(Ref::from_schema_name("JsonRpcResponse"))
                .into(),
        )),
    );
    for entry in route_table().iter().filter(|entry| documented(entry)) {
        alias_trailing_slash(&mut document, entry);
        if let Some(operation) = document
            .paths
            .paths
            .get_mut(entry.path)
            .and_then(|item| operation(item, &entry.method))
        {
            apply_rule(operation, entry);
        }
    }
    document
}

const ERROR: &str = "Error";
const RPC_ERROR: &str = "RpcError";

fn error_response(description: &str, schema: RefOr<Schema>) -> Response {
    ResponseBuilder::new()
        .description(description)
        .content("application/json", Content::new(Some(schema)))
        .build()
}

/// A route whose path is another's with a trailing slash (the A2A endpoints, as some clients
/// call them) is documented as that one, under an operation id of its own.
fn alias_trailing_slash(document: &mut Document, entry: &RouteEntry) {
    let paths = &mut document.paths.paths;
    let Some(base) = entry.path.strip_suffix('/') else {
        return;
    };
    if paths.contains_key(entry.path) {
        return;
    }
    let Some(mut twin) = paths
        .get_mut(base)
        .and_then(|item| operation(item, &entry.method))
        .cloned()
    else {
        return;
    };
    twin.operation_id = twin.operation_id.map(|id| format!("{id}_trailing_slash"));
    let mut item = PathItem::default();
    if let Some(slot) = operation_slot(&mut item, &entry.method) {
        *slot = Some(twin);
    }
    paths.insert(entry.path.to_owned(), item);
}

fn operation<'a>(item: &'a mut PathItem, method: &Method) -> Option<&'a mut Operation> {
    operation_slot(item, method).and_then(Option::as_mut)
}

fn operation_slot<'a>(
    item: &'a mut PathItem,
    method: &Method,
) -> Option<&'a mut Option<Operation>> {
    Some(match *method {
        Method::GET => &mut item.get,
        Method::POST => &mut item.post,
        Method::PUT => &mut item.put,
        Method::PATCH => &mut item.patch,
        Method::DELETE => &mut item.delete,
        Method::HEAD => &mut item.head,
        Method::OPTIONS => &mut item.options,
        _ => return None,
    })
}

/// The name the document gives a route's minimum role.
pub fn access_name(access: Access) -> &'static str {
    match access {
        Access::Public => "public",
        Access::AtLeast(Role::Viewer) => "viewer",
        Access::AtLeast(Role::Operator) => "operator",
        Access::AtLeast(Role::Admin) => "admin",
        Access::Replica => "replica",
    }
}

/// The error statuses every operation documents (others fall under `default`).
const ERROR_STATUSES: [&str; 6] = ["400", "401", "403", "404", "429", "503"];
/// And those of an operation that takes a body.
const BODY_ERROR_STATUSES: [&str; 2] = ["413", "415"];

/// Writes the table's rule for `entry` into its operation.
fn apply_rule(operation: &mut Operation, entry: &RouteEntry) {
    // Operation ids are the handlers' names, unique in their module: the tag (the module)
    // makes them unique in the document.
    let tag = operation
        .tags
        .as_ref()
        .and_then(|tags| tags.first())
        .cloned();
    if let (Some(tag), Some(id)) = (tag, operation.operation_id.as_mut())
        && !id.starts_with(&format!("{tag}_"))
    {
        *id = format!("{tag}_{id}");
    }
    let access = entry.rule.access;
    let mut extensions = ExtensionsBuilder::new().add("x-hive-access", access_name(access));
    if let Access::AtLeast(_) = access {
        operation.security = Some(vec![
            SecurityRequirement::new(BEARER, Vec::<String>::new()),
            SecurityRequirement::new(COOKIE, Vec::<String>::new()),
        ]);
        let scope = entry.rule.scope_for(&entry.method);
        extensions = extensions.add("x-hive-scope", scope.as_str());
    }
    if let Some(policy) = entry.rate_limit {
        extensions = extensions.add("x-hive-rate-limit", policy);
    }
    if entry.owned {
        extensions = extensions.add("x-hive-owned", true);
    }
    operation
        .extensions
        .get_or_insert_with(Default::default)
        .merge(extensions.build());
    let error = if entry.path.contains("jsonrpc") {
        RPC_ERROR
    } else {
        ERROR
    };
    let body_statuses: &[&str] = if operation.request_body.is_some() {
        &BODY_ERROR_STATUSES
    } else {
        &[]
    };
    let responses = &mut operation.responses.responses;
    for status in ERROR_STATUSES
        .iter()
        .chain(body_statuses)
        .chain(&["default"])
    {
        responses
            .entry((*status).to_owned())
            .or_insert_with(|| RefOr::Ref(Ref::from_response_name(error)));
    }
}

/// A JSON-RPC 2.0 request (A2A's methods: `message/send`, `message/stream`, `tasks/get`…).
#[derive(Serialize, ToSchema)]
#[allow(dead_code)]
pub(crate) struct JsonRpcRequest {
    /// Always `2.0`.
    jsonrpc: String,
    method: String,
    #[schema(required = false)]
    params: Option<Value>,
    /// Absent for a notification.
    #[schema(required = false)]
    id: Option<Value>,
}

/// A JSON-RPC 2.0 response: a `result` or an `error`.
#[derive(Serialize, ToSchema)]
#[allow(dead_code)]
pub(crate) struct JsonRpcResponse {
    jsonrpc: String,
    #[schema(required = false)]
    id: Option<Value>,
    #[schema(required = false)]
    result: Option<Value>,
    #[schema(required = false)]
    error: Option<Value>,
}

/// A body of bytes as they are (a hosted agent's bundle).
pub(crate) struct Binary;

impl PartialSchema for Binary {
    fn schema() -> RefOr<Schema> {
        ObjectBuilder::new()
            .schema_type(Type::String)
            .format(Some(SchemaFormat::KnownFormat(KnownFormat::Binary)))
            .into()
    }
}

impl ToSchema for Binary {}

/// This document.
#[utoipa::path(
    get,
    path = "/api/v1/openapi.json",
    tag = "openapi",
    responses((status = 200, description = "The OpenAPI 3.1 document.", body = Object)),
)]
pub async fn serve(State(state): State<AppState>) -> Json<Document> {
    Json(document(state.hive.config.served_over_https()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    const METHODS: [&str; 7] = ["get", "post", "put", "patch", "delete", "head", "options"];

    fn as_json() -> Value {
        serde_json::to_value(document(false)).unwrap()
    }

    /// Every (method, path) of the document.
    fn operations(document: &Value) -> BTreeSet<(String, String)> {
        let paths = document["paths"].as_object().unwrap();
        paths
            .iter()
            .flat_map(|(path, item)| {
                METHODS
                    .iter()
                    .filter(|method| item.get(**method).is_some())
                    .map(move |method| (method.to_uppercase(), path.clone()))
            })
            .collect()
    }

    #[test]
    fn the_document_has_an_operation_for_every_route_of_the_table_and_no_other() {
        let in_table: BTreeSet<(String, String)> = route_table()
            .iter()
            .filter(|entry| documented(entry))
            .map(|entry| (entry.method.to_string(), entry.path.to_owned()))
            .collect();
        let described = operations(&as_json());
        let missing: Vec<_> = in_table.difference(&described).collect();
        let extra: Vec<_> = described.difference(&in_table).collect();
        assert!(
            missing.is_empty(),
            "routes of the table without an operation in the document (annotate the handler \
             with #[utoipa::path] and list it in `Annotated`'s paths): {missing:?}"
        );
        assert!(
            extra.is_empty(),
            "operations of the document that the route table does not have (a wrong path or \
             method in a #[utoipa::path]): {extra:?}"
        );
        // Only the calls between replicas are left out.
        let left_out: Vec<_> = route_table()
            .into_iter()
            .filter(|entry| !documented(entry))
            .map(|entry| entry.path)
            .collect();
        assert!(left_out.iter().all(|path| path.starts_with("/internal/")));
        assert!(!left_out.is_empty());
    }

    #[test]
    fn every_operation_carries_its_routes_rule_and_the_one_error_shape() {
        let document = as_json();
        assert!(document["openapi"].as_str().unwrap().starts_with("3.1."));
        let mut ids = BTreeSet::new();
        for entry in route_table().iter().filter(|entry| documented(entry)) {
            let method = entry.method.as_str().to_lowercase();
            let operation = &document["paths"][entry.path][&method];
            let name = format!("{} {}", entry.method, entry.path);
            assert_eq!(
                operation["x-hive-access"],
                access_name(entry.rule.access),
                "{name}"
            );
            let id = operation["operationId"].as_str().unwrap().to_owned();
            assert!(ids.insert(id.clone()), "{name}: operation id {id} twice");
            match entry.rule.access {
                Access::AtLeast(_) => {
                    assert_eq!(
                        operation["security"],
                        serde_json::json!([{ BEARER: [] }, { COOKIE: [] }]),
                        "{name}"
                    );
                    assert_eq!(
                        operation["x-hive-scope"],
                        entry.rule.scope_for(&entry.method).as_str(),
                        "{name}"
                    );
                }
                _ => assert!(operation.get("security").is_none(), "{name}"),
            }
            let responses = operation["responses"].as_object().unwrap();
            for status in ERROR_STATUSES.iter().chain(&["default"]) {
                let response = &responses[*status];
                let reference = response["$ref"].as_str().unwrap_or_default();
                // An operation may describe one of its errors itself (the health check's
                // 503 has a body of its own).
                assert!(
                    reference.starts_with("#/components/responses/")
                        || response.get("description").is_some(),
                    "{name}: {status}"
                );
            }
            let successes = responses.keys().filter(|status| status.starts_with('2'));
            assert!(
                successes.count() > 0 || responses.contains_key("302"),
                "{name}"
            );
        }
        let error = &document["components"]["responses"][ERROR]["content"]["application/json"];
        assert_eq!(error["schema"]["$ref"], "#/components/schemas/ErrorBody");
        let body = &document["components"]["schemas"]["ErrorBody"];
        assert_eq!(body["required"], serde_json::json!(["error"]));
    }

    #[test]
    fn the_cookie_scheme_names_the_cookie_the_server_sets() {
        for https in [false, true] {
            let document = serde_json::to_value(document(https)).unwrap();
            let scheme = &document["components"]["securitySchemes"][COOKIE];
            assert_eq!(scheme["in"], "cookie");
            assert_eq!(scheme["name"], session_cookie_name(https));
        }
    }

    /// Writes the document to `HIVE_OPENAPI_OUT` when set (to read it while writing handlers).
    #[test]
    fn the_document_serializes() {
        let text = serde_json::to_string_pretty(&document(false)).unwrap();
        if let Ok(path) = std::env::var("HIVE_OPENAPI_OUT") {
            std::fs::write(path, &text).unwrap();
        }
        assert!(text.len() > 10_000);
    }
}
