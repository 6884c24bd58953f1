//! The route table: every route with its access rule and its own rate-limit policy, if any.
//!
//! Routes exist only through [`route_table`]'s entries, so none can be added without a rule;
//! the access-matrix test walks the same table.

pub(crate) mod a2a;
mod agents;
mod auth;
mod backup;
mod billing;
mod conversations;
mod events;
mod health;
mod hosted;
mod mesh;
mod mfa;
mod oidc;
pub mod openapi;
mod passkeys;
mod secrets;
mod settings;
mod users;
mod vault;
pub mod views;
mod wan;
mod workflows;

use crate::auth::{Access, RouteRule, Stages, admit_session_stage, authorize};
use crate::error::ApiError;
use crate::state::AppState;
use axum::Router;
use axum::extract::{Request, State};
use axum::handler::Handler;
use axum::middleware::{Next, from_fn_with_state};
use axum::response::Response;
use axum::routing::{MethodFilter, MethodRouter, on};
use hive_proto::{ErrorCode, Role, TokenScope};
use http::Method;

/// One route as the table declares it.
#[derive(Debug, Clone)]
pub struct RouteEntry {
    pub method: Method,
    pub path: &'static str,
    pub rule: RouteRule,
    /// A rate-limit policy of its own, on top of the area's (`api`, `health`).
    pub rate_limit: Option<&'static str>,
    /// The route acts on an owned object named in its path: a non-admin reaches only their
    /// own, and another user's answers 404 (the handler's store query is scoped by owner).
    pub owned: bool,
}

/// A route with its rule and handler, ready to [`mount`]; the dashboard declares its pages
/// with the same builder, so they pass the same rules, limits and audit.
pub struct Route {
    entry: RouteEntry,
    handler: MethodRouter<AppState>,
    /// A JSON-RPC route that federated peers and the public tier may call too.
    mesh: bool,
}

/// A route: `access` is its minimum (checked by [`authorize`]), `rate_limit` a policy of its
/// own on top of its area's.
pub fn route<H, T>(
    method: Method,
    path: &'static str,
    access: Access,
    rate_limit: Option<&'static str>,
    handler: H,
) -> Route
where
    H: Handler<T, AppState>,
    T: 'static,
{
    let filter = MethodFilter::try_from(method.clone()).unwrap_or(MethodFilter::GET);
    Route {
        entry: RouteEntry {
            method,
            path,
            rule: RouteRule {
                access,
                scope: None,
                during: Stages::default(),
            },
            rate_limit,
            owned: false,
        },
        handler: on(filter, handler),
        mesh: false,
    }
}

impl Route {
    /// What the route table says of the route.
    pub fn entry(&self) -> &RouteEntry {
        &self.entry
    }

    /// Marks the route as acting on an object of its caller's (see [`RouteEntry::owned`]).
    pub fn owned(mut self) -> Self {
        self.entry.owned = true;
        self
    }

    /// Lets a session that still has to pass its second factor call the route.
    pub fn before_second_factor(mut self) -> Self {
        self.entry.rule.during.second_factor = true;
        self
    }

    /// Lets a session that must enroll a second factor first (the MFA policy) call the route.
    pub fn before_enrollment(mut self) -> Self {
        self.entry.rule.during.enrollment = true;
        self
    }

    /// The token scope the route needs, instead of the one its method implies.
    pub fn scope(mut self, scope: TokenScope) -> Self {
        self.entry.rule.scope = Some(scope);
        self
    }

    /// Opens the route to federated peers and the public tier ([`mesh::admit`]).
    fn mesh_entry(mut self) -> Self {
        self.mesh = true;
        self
    }

    /// Both: the routes every session may call (log out, who am I).
    pub fn any_stage(self) -> Self {
        self.before_second_factor().before_enrollment()
    }
}

const VIEWER: Access = Access::AtLeast(Role::Viewer);
const OPERATOR: Access = Access::AtLeast(Role::Operator);
const ADMIN: Access = Access::AtLeast(Role::Admin);
const REPLICA: Access = Access::Replica;

// One line a route: the table reads as a table.
#[rustfmt::skip]
fn routes_declared() -> Vec<Route> {
    use Method as M;
    use auth as a;
    use passkeys as pk;
    use workflows as wf;
    use users as u;
    const PUBLIC: Access = Access::Public;
    vec![
        route(M::GET, "/api/health", PUBLIC, None, health::health),
        route(M::GET, "/api/v1/system/health", VIEWER, None, health::system_health),
        // The API's own description: public, it holds what the source already tells.
        route(M::GET, "/api/v1/openapi.json", PUBLIC, None, openapi::serve),
        // Setup and sign-in: public, each under its own limit.
        route(M::GET, "/api/v1/setup/status", PUBLIC, None, a::setup_status),
        route(M::POST, "/api/v1/setup", PUBLIC, Some("setup"), a::setup),
        route(M::POST, "/api/v1/auth/register", PUBLIC, Some("register"), a::register),
        route(M::POST, "/api/v1/auth/login", PUBLIC, Some("login"), a::login),
        route(M::POST, "/api/v1/auth/invitation", PUBLIC, Some("register"), a::show_invitation),
        route(M::POST, "/api/v1/auth/invitation/accept", PUBLIC, Some("register"), a::accept_invitation),
        route(M::POST, "/api/v1/auth/password-reset", PUBLIC, Some("login"), a::reset_password),
        route(M::POST, "/api/v1/auth/password-reset/request", PUBLIC, Some("login"), a::request_password_reset),
        // Single sign-on: browser navigations, under their own authentication limit.
        route(M::GET, "/api/v1/auth/oidc/providers", PUBLIC, None, oidc::providers),
        route(M::GET, "/api/v1/auth/oidc/{provider}/start", PUBLIC, Some("sso"), oidc::start),
        route(M::GET, "/api/v1/auth/oidc/{provider}/callback", PUBLIC, Some("sso"), oidc::callback),
        // The caller's own account.
        route(M::POST, "/api/v1/auth/logout", VIEWER, None, a::logout).any_stage(),
        route(M::GET, "/api/v1/auth/me", VIEWER, None, a::me).any_stage(),
        route(M::PATCH, "/api/v1/auth/me", VIEWER, None, a::update_me),
        route(M::POST, "/api/v1/auth/reauthenticate", VIEWER, Some("login"), a::reauthenticate).before_enrollment(),
        route(M::POST, "/api/v1/auth/password", VIEWER, Some("login"), a::change_password),
        // Second factors: verification and enrollment are open to sessions short of them.
        route(M::GET, "/api/v1/auth/mfa", VIEWER, None, mfa::status).any_stage(),
        route(M::POST, "/api/v1/auth/mfa/verify", VIEWER, Some("login"), mfa::verify).before_second_factor(),
        route(M::POST, "/api/v1/auth/mfa/totp", VIEWER, None, mfa::start_totp).before_enrollment(),
        route(M::POST, "/api/v1/auth/mfa/totp/confirm", VIEWER, Some("login"), mfa::confirm_totp).before_enrollment(),
        route(M::POST, "/api/v1/auth/mfa/totp/disable", VIEWER, Some("login"), mfa::disable_totp),
        route(M::POST, "/api/v1/auth/mfa/recovery-codes", VIEWER, None, mfa::regenerate_recovery_codes),
        route(M::GET, "/api/v1/auth/sessions", VIEWER, None, a::list_sessions),
        route(M::DELETE, "/api/v1/auth/sessions/{id}", VIEWER, None, a::revoke_session).owned(),
        route(M::GET, "/api/v1/tokens", VIEWER, None, a::list_tokens),
        route(M::POST, "/api/v1/tokens", VIEWER, None, a::create_token),
        route(M::DELETE, "/api/v1/tokens/{id}", VIEWER, None, a::revoke_token).owned(),
        // Passkeys: the caller's own; a session that must enroll a second factor may register
        // one, a session waiting for its second factor may verify it with one.
        route(M::GET, "/api/v1/auth/passkeys", VIEWER, None, pk::list),
        route(M::POST, "/api/v1/auth/passkeys/register/start", VIEWER, None, pk::register_start).before_enrollment(),
        route(M::POST, "/api/v1/auth/passkeys/register/finish", VIEWER, None, pk::register_finish).before_enrollment(),
        route(M::PATCH, "/api/v1/auth/passkeys/{id}", VIEWER, None, pk::rename).owned(),
        route(M::DELETE, "/api/v1/auth/passkeys/{id}", VIEWER, None, pk::delete).owned(),
        route(M::POST, "/api/v1/auth/mfa/passkey/start", VIEWER, None, pk::second_factor_start).before_second_factor(),
        route(M::POST, "/api/v1/auth/mfa/passkey/finish", VIEWER, Some("login"), pk::second_factor_finish).before_second_factor(),
        // Passwordless login: the finish is an attempt, counted like a password login.
        route(M::POST, "/api/v1/auth/passkey-login/start", PUBLIC, None, pk::login_start),
        route(M::POST, "/api/v1/auth/passkey-login/finish", PUBLIC, Some("login"), pk::login_finish),
        // Secrets: operators manage their own, admins all.
        route(M::GET, "/api/v1/secrets", OPERATOR, Some("secrets"), secrets::list),
        route(M::POST, "/api/v1/secrets", OPERATOR, Some("secrets"), secrets::create),
        route(M::POST, "/api/v1/secrets/import", OPERATOR, Some("secrets"), secrets::import),
        route(M::GET, "/api/v1/secrets/{id}", OPERATOR, Some("secrets"), secrets::get).owned(),
        route(M::PATCH, "/api/v1/secrets/{id}", OPERATOR, Some("secrets"), secrets::update).owned(),
        route(M::DELETE, "/api/v1/secrets/{id}", OPERATOR, Some("secrets"), secrets::delete).owned(),
        // Agents: operators register and manage their own, admins all.
        route(M::GET, "/api/v1/agents", OPERATOR, None, agents::list),
        route(M::POST, "/api/v1/agents", OPERATOR, None, agents::create),
        route(M::POST, "/api/v1/agents/import", OPERATOR, None, agents::import),
        route(M::GET, "/api/v1/agents/{id}", OPERATOR, None, agents::get).owned(),
        route(M::PATCH, "/api/v1/agents/{id}", OPERATOR, None, agents::update).owned(),
        route(M::POST, "/api/v1/agents/{id}/start", OPERATOR, None, agents::start).owned(),
        route(M::POST, "/api/v1/agents/{id}/stop", OPERATOR, None, agents::stop).owned(),
        route(M::GET, "/api/v1/agents/{id}/usage", OPERATOR, None, agents::usage).owned(),
        route(M::GET, "/api/v1/agents/{id}/calls", OPERATOR, None, agents::calls).owned(),
        route(M::DELETE, "/api/v1/agents/{id}", OPERATOR, None, agents::delete).owned(),
        route(M::PUT, "/api/v1/agents/{id}/bundle", OPERATOR, None, hosted::push_bundle).owned(),
        route(M::GET, "/api/v1/agents/{id}/bundles", OPERATOR, None, hosted::bundles).owned(),
        route(M::POST, "/api/v1/agents/{id}/bundle/rollback", OPERATOR, None, hosted::rollback).owned(),
        route(M::POST, "/api/v1/agents/{id}/restart", OPERATOR, None, hosted::restart).owned(),
        route(M::POST, "/api/v1/agents/{id}/pause", OPERATOR, None, hosted::pause).owned(),
        route(M::POST, "/api/v1/agents/{id}/resume", OPERATOR, None, hosted::resume).owned(),
        route(M::GET, "/api/v1/agents/{id}/logs", OPERATOR, None, hosted::logs).owned(),
        route(M::GET, "/api/v1/agents/{id}/logs/stream", OPERATOR, None, hosted::follow).owned(),
        route(M::GET, "/api/v1/agents/{id}/stats", OPERATOR, None, hosted::stats).owned(),
        route(M::GET, "/api/v1/workflows", OPERATOR, None, wf::list),
        route(M::POST, "/api/v1/workflows", OPERATOR, None, wf::apply),
        route(M::POST, "/api/v1/workflows/validate", OPERATOR, None, wf::validate).scope(TokenScope::Read),
        route(M::POST, "/api/v1/workflows/import", OPERATOR, None, wf::import).scope(TokenScope::Read),
        route(M::GET, "/api/v1/workflows/{id}", OPERATOR, None, wf::get).owned(),
        route(M::PUT, "/api/v1/workflows/{id}", OPERATOR, None, wf::update).owned(),
        route(M::PATCH, "/api/v1/workflows/{id}", OPERATOR, None, wf::patch).owned(),
        route(M::DELETE, "/api/v1/workflows/{id}", OPERATOR, None, wf::delete).owned(),
        route(M::GET, "/api/v1/workflows/{id}/versions", OPERATOR, None, wf::versions).owned(),
        route(M::GET, "/api/v1/workflows/{id}/versions/{version}", OPERATOR, None, wf::version).owned(),
        route(M::POST, "/api/v1/workflows/{id}/webhook-secret", OPERATOR, None, wf::webhook_secret).owned(),
        route(M::POST, "/api/v1/workflows/{id}/runs", OPERATOR, None, wf::start_run).owned().scope(TokenScope::Execute),
        route(M::GET, "/api/v1/workflow-runs", OPERATOR, None, wf::runs),
        route(M::GET, "/api/v1/workflow-runs/{id}", OPERATOR, None, wf::run).owned(),
        route(M::GET, "/api/v1/workflow-runs/{id}/events", OPERATOR, None, wf::events).owned(),
        route(M::POST, "/api/v1/workflow-runs/{id}/cancel", OPERATOR, None, wf::cancel).owned().scope(TokenScope::Execute),
        route(M::POST, "/api/v1/workflow-runs/{id}/retry", OPERATOR, None, wf::retry).owned().scope(TokenScope::Execute),
        route(M::POST, "/api/v1/workflow-runs/{id}/approvals/{node}", VIEWER, None, wf::decide),
        route(M::GET, "/api/v1/workflow-approvals", VIEWER, None, wf::approvals),
        route(M::POST, "/api/webhooks/workflows/{id}/{trigger}", PUBLIC, None, wf::webhook),
        // Billing: everyone reads their own (admins anyone's); admins adjust and price.
        route(M::GET, "/api/v1/billing/wallet", VIEWER, None, billing::wallet),
        route(M::GET, "/api/v1/billing/ledger", VIEWER, None, billing::ledger),
        route(M::GET, "/api/v1/billing/usage", VIEWER, None, billing::usage),
        route(M::GET, "/api/v1/billing/usage.csv", VIEWER, None, billing::usage_csv),
        route(M::GET, "/api/v1/billing/prices", VIEWER, None, billing::prices),
        route(M::PUT, "/api/v1/billing/prices/{model}", ADMIN, None, billing::set_price),
        route(M::DELETE, "/api/v1/billing/prices/{model}", ADMIN, None, billing::delete_price),
        route(M::POST, "/api/v1/billing/adjustments", ADMIN, None, billing::adjust),
        route(M::GET, "/api/v1/billing/budgets", VIEWER, None, billing::budgets),
        route(M::POST, "/api/v1/billing/budgets", ADMIN, None, billing::set_budget),
        route(M::DELETE, "/api/v1/billing/budgets/{id}", ADMIN, None, billing::delete_budget),
        route(M::GET, "/api/v1/billing/alerts", VIEWER, None, billing::alerts),
        route(M::POST, "/api/v1/billing/checkout-session", VIEWER, None, billing::checkout),
        route(M::POST, "/api/v1/billing/customer-portal", VIEWER, None, billing::customer_portal),
        route(M::POST, "/api/webhooks/stripe", PUBLIC, None, billing::stripe_webhook),
        route(M::POST, "/internal/v1/hosted/{id}/channel", REPLICA, None, hosted::relay),
        route(M::POST, "/internal/v1/hosted/{id}/channel/{*path}", REPLICA, None, hosted::relay),
        route(M::GET, "/internal/v1/hosted/{id}/channel/{*path}", REPLICA, None, hosted::relay),
        route(M::GET, "/internal/v1/hosted/{id}/logs", REPLICA, None, hosted::relay_logs),
        route(M::GET, "/internal/v1/hosted/{id}/stats", REPLICA, None, hosted::relay_stats),
        // A2A: cards are public (what they list depends on the caller); calls need the
        // execute scope and at least A2A_JSONRPC_MIN_ROLE (checked by the handler).
        route(M::GET, "/.well-known/agent-card.json", PUBLIC, Some("a2a"), a2a::instance_card),
        route(M::GET, "/api/a2a/agents/{id}/agent-card.json", PUBLIC, Some("a2a"), a2a::agent_card),
        // Peers (a federation token) and the public tier (when on) are admitted by the mesh
        // layers before the rule; the public tier also has its own endpoint.
        route(M::POST, "/api/a2a/jsonrpc", VIEWER, Some("a2a"), a2a::instance_rpc).scope(TokenScope::Execute).mesh_entry(),
        route(M::POST, "/api/a2a/jsonrpc/", VIEWER, Some("a2a"), a2a::instance_rpc).scope(TokenScope::Execute).mesh_entry(),
        route(M::POST, "/api/a2a/jsonrpc/public", PUBLIC, Some("a2a"), a2a::public_rpc).mesh_entry(),
        route(M::POST, "/api/a2a/agents/{id}/jsonrpc", VIEWER, Some("a2a"), a2a::agent_rpc).scope(TokenScope::Execute).mesh_entry(),
        route(M::POST, "/api/a2a/agents/{id}/jsonrpc/", VIEWER, Some("a2a"), a2a::agent_rpc).scope(TokenScope::Execute).mesh_entry(),
        route(M::GET, "/api/v1/a2a/status", VIEWER, None, a2a::status),
        // Chat with an agent the caller may call (an A2A call: the execute scope), and the
        // caller's own conversations.
        route(M::POST, "/api/v1/agents/{id}/chat", VIEWER, Some("a2a"), conversations::chat).scope(TokenScope::Execute),
        route(M::GET, "/api/v1/conversations", VIEWER, None, conversations::list),
        route(M::GET, "/api/v1/conversations/{id}", VIEWER, None, conversations::get).owned(),
        route(M::GET, "/api/v1/conversations/{id}/messages", VIEWER, None, conversations::messages).owned(),
        route(M::DELETE, "/api/v1/conversations/{id}", VIEWER, None, conversations::delete).owned(),
        // Federation: what this instance publishes of itself, its peers, and calls to them.
        route(M::GET, "/.well-known/hive-mesh.json", PUBLIC, Some("a2a"), mesh::descriptor),
        route(M::GET, "/api/v1/mesh/federation/status", VIEWER, None, mesh::status),
        route(M::GET, "/api/v1/mesh/federation/directory", VIEWER, None, mesh::directory),
        route(M::POST, "/api/v1/mesh/federation/proxy/jsonrpc", OPERATOR, None, mesh::proxy),
        // The live event stream, filtered to what the caller may see.
        route(M::GET, "/api/v1/events", VIEWER, None, events::stream),
        // The WAN mesh.
        route(M::POST, "/api/v1/mesh/wan/ingress", OPERATOR, None, wan::ingress),
        // Administration.
        route(M::GET, "/api/v1/users", ADMIN, None, u::list_users),
        route(M::POST, "/api/v1/users/invitations", ADMIN, None, u::invite),
        route(M::GET, "/api/v1/users/{id}", ADMIN, None, u::get_user),
        route(M::PATCH, "/api/v1/users/{id}", ADMIN, None, u::update_user),
        route(M::POST, "/api/v1/users/{id}/reset-link", ADMIN, None, u::reset_link),
        route(M::DELETE, "/api/v1/users/{id}/sessions", ADMIN, None, u::end_sessions),
        route(M::DELETE, "/api/v1/users/{id}/mfa", ADMIN, None, mfa::reset_user),
        route(M::GET, "/api/v1/audit", ADMIN, None, u::audit_trail),
        route(M::GET, "/api/v1/settings/security", ADMIN, None, settings::get_security),
        route(M::PUT, "/api/v1/settings/security", ADMIN, None, settings::put_security),
        route(M::GET, "/api/v1/settings/workflows", ADMIN, None, settings::get_workflows),
        route(M::PUT, "/api/v1/settings/workflows", ADMIN, None, settings::put_workflows),
        route(M::GET, "/api/v1/admin/vault/keys", ADMIN, None, vault::list_keys),
        route(M::POST, "/api/v1/admin/vault/rotate", ADMIN, None, vault::rotate),
        route(M::GET, "/api/v1/admin/backups", ADMIN, None, backup::list),
        route(M::POST, "/api/v1/admin/backups", ADMIN, None, backup::create),
        route(M::POST, "/api/v1/admin/vault/reencrypt", ADMIN, None, vault::reencrypt),
        route(M::GET, "/api/v1/audit/export", ADMIN, None, u::audit_export),
        route(M::GET, "/api/v1/audit/verify", ADMIN, None, u::audit_verify),
    ]
}

/// Every route of the API with its rule (for the access-matrix test and the docs).
pub fn route_table() -> Vec<RouteEntry> {
    routes_declared().into_iter().map(|r| r.entry).collect()
}

async fn route_rate_limit(
    State((state, policy)): State<(AppState, &'static str)>,
    request: Request,
    next: Next,
) -> Response {
    match state.hive.state.policies.get(policy).cloned() {
        // A route's own limit guards sign-in and secrets: its refusals are audited.
        Some(policy) => {
            let recorded = crate::pipeline::Refusals::Recorded;
            crate::pipeline::enforce_policy(&state, &policy, recorded, request, next).await
        }
        None => next.run(request).await,
    }
}

/// The API's routes; what none of them matches is [`not_found`] unless the embedder gives
/// its own answer ([`crate::serve::router_with_fallback`]).
pub(crate) fn routes(state: &AppState) -> Router<AppState> {
    mount(state, routes_declared())
}

/// The API's answer to a path no route has.
pub async fn not_found() -> ApiError {
    ApiError::of(ErrorCode::NotFound)
}

/// `routes` on a router, each behind its rule, its own limit and its session stage.
pub fn mount(state: &AppState, routes: Vec<Route>) -> Router<AppState> {
    let mut router = Router::new();
    for Route {
        entry,
        handler,
        mesh: mesh_entry,
    } in routes
    {
        let mut handler =
            handler.route_layer(from_fn_with_state((state.clone(), entry.rule), authorize));
        if let Some(policy) = entry.rate_limit {
            handler = handler.route_layer(from_fn_with_state(
                (state.clone(), policy),
                route_rate_limit,
            ));
        }
        // Before the limit: a session of this route's stage is counted as its user.
        handler = handler.route_layer(from_fn_with_state(entry.rule, admit_session_stage));
        // Outermost: peers and the public tier are counted per address, then admitted.
        if mesh_entry {
            handler = handler
                .route_layer(from_fn_with_state(state.clone(), mesh::admit))
                .route_layer(from_fn_with_state(state.clone(), mesh::limit));
        }
        router = router.route(entry.path, handler);
    }
    router
}
