//! The dashboard: server-rendered pages for what Hive does, mounted behind the server's
//! pipeline.
//!
//! Each page is a route of the same kind as the API's, declared with the server's route
//! builder (its access rule, its own rate limit, the session stages it admits), and calls the
//! same core services with the caller the pipeline authenticated: access rules, limits and
//! audit records apply unchanged. Templates (askama) and assets (rust-embed) are compiled into
//! the binary; the pages' own script is small and only does what a form cannot.

mod account;
mod agents;
mod approvals;
mod assets;
mod audit;
mod billing;
mod budgets;
mod chart;
mod chat;
mod federation;
mod graph;
mod home;
mod hosted;
mod money;
mod page;
mod second_factor;
mod secrets;
mod security;
mod setup;
mod sign_in;
mod tokens;
mod usage;
mod user_admin;
mod users;
mod workflows;

use axum::Router;
use axum::middleware::from_fn_with_state;
use hive_proto::Role;
use hive_server::auth::Access;
use hive_server::{AppState, Route, RouteEntry, route};
use http::Method;

const PUBLIC: Access = Access::Public;
const VIEWER: Access = Access::AtLeast(Role::Viewer);
const OPERATOR: Access = Access::AtLeast(Role::Operator);
const ADMIN: Access = Access::AtLeast(Role::Admin);

// One line a page: the table reads as a table.
#[rustfmt::skip]
fn pages() -> Vec<Route> {
    use Method as M;
    vec![
        route(M::GET, "/assets/{*file}", PUBLIC, None, assets::serve),
        // Setup and sign-in: public, under the same limits as the API's.
        route(M::GET, "/setup", PUBLIC, None, setup::form),
        route(M::POST, "/setup", PUBLIC, Some("setup"), setup::submit),
        route(M::GET, "/login", PUBLIC, None, sign_in::form).any_stage(),
        route(M::POST, "/login", PUBLIC, Some("login"), sign_in::submit),
        route(M::GET, "/login/verify", VIEWER, None, sign_in::verify_form).before_second_factor(),
        route(M::POST, "/login/verify", VIEWER, Some("login"), sign_in::verify).before_second_factor(),
        route(M::POST, "/logout", VIEWER, None, sign_in::logout).any_stage(),
        // A reset link opens this page; the attempt is counted like a sign-in.
        route(M::GET, "/reset-password/request", PUBLIC, None, sign_in::reset_request_form),
        route(M::POST, "/reset-password/request", PUBLIC, Some("login"), sign_in::reset_request),
        route(M::GET, "/reset-password", PUBLIC, None, sign_in::reset_form),
        route(M::POST, "/reset-password", PUBLIC, Some("login"), sign_in::reset),
        // The caller's second factor: enrollment is open to a session the policy holds back.
        // (Passkeys are added by the page's script through the API, which admits such a session.)
        route(M::GET, "/account/second-factor", VIEWER, None, second_factor::page).before_enrollment(),
        route(M::POST, "/account/second-factor/totp", VIEWER, None, second_factor::start_totp).before_enrollment(),
        route(M::POST, "/account/second-factor/totp/confirm", VIEWER, Some("login"), second_factor::confirm_totp).before_enrollment(),
        route(M::POST, "/account/passkeys/{id}/delete", VIEWER, None, second_factor::delete_passkey).owned(),
        // An invitation link opens this page; accepting is counted like a registration.
        route(M::GET, "/invite", PUBLIC, None, users::invitation),
        route(M::POST, "/invite", PUBLIC, Some("register"), users::accept),
        route(M::GET, "/", VIEWER, None, home::page),
        // Agents: operators manage their own, admins all; chat with any the caller may call.
        route(M::GET, "/agents", OPERATOR, None, agents::list),
        route(M::POST, "/agents", OPERATOR, None, agents::create),
        route(M::GET, "/agents/{id}", OPERATOR, None, agents::detail).owned(),
        route(M::POST, "/agents/{id}/start", OPERATOR, None, agents::start).owned(),
        route(M::POST, "/agents/{id}/stop", OPERATOR, None, agents::stop).owned(),
        // A hosted agent's: its bundle's versions and the lifecycle its sandbox adds (the
        // upload itself is the API's, called by the page's script).
        route(M::POST, "/agents/{id}/bundle/rollback", OPERATOR, None, hosted::rollback).owned(),
        route(M::POST, "/agents/{id}/restart", OPERATOR, None, hosted::restart).owned(),
        route(M::POST, "/agents/{id}/pause", OPERATOR, None, hosted::pause).owned(),
        route(M::POST, "/agents/{id}/resume", OPERATOR, None, hosted::resume).owned(),
        route(M::POST, "/agents/{id}/settings", OPERATOR, None, agents::update_settings).owned(),
        route(M::POST, "/agents/{id}/limits", OPERATOR, None, agents::update_limits).owned(),
        route(M::POST, "/agents/{id}/delete", OPERATOR, None, agents::delete).owned(),
        route(M::GET, "/agents/{id}/chat", VIEWER, None, chat::page),
        // Workflows: operators keep their own, admins all; approvals are decided by whoever
        // the step names (the service checks, as the API's route does).
        route(M::GET, "/approvals", VIEWER, None, approvals::page),
        route(M::POST, "/approvals/{id}/decide", VIEWER, None, approvals::decide),
        route(M::GET, "/workflows", OPERATOR, None, workflows::list),
        route(M::POST, "/workflows", OPERATOR, None, workflows::create),
        route(M::GET, "/workflows/runs", OPERATOR, None, workflows::runs),
        route(M::GET, "/workflows/runs/{id}", OPERATOR, None, workflows::run).owned(),
        route(M::POST, "/workflows/runs/{id}/cancel", OPERATOR, None, workflows::cancel).owned(),
        route(M::POST, "/workflows/runs/{id}/retry", OPERATOR, None, workflows::retry).owned(),
        route(M::POST, "/workflows/runs/{id}/decide", OPERATOR, None, workflows::decide),
        route(M::GET, "/workflows/{id}", OPERATOR, None, workflows::detail).owned(),
        route(M::POST, "/workflows/{id}/save", OPERATOR, None, workflows::save).owned(),
        route(M::POST, "/workflows/{id}/enabled", OPERATOR, None, workflows::set_enabled).owned(),
        route(M::POST, "/workflows/{id}/runs", OPERATOR, None, workflows::start_run).owned(),
        route(M::POST, "/workflows/{id}/webhook-secret", OPERATOR, None, workflows::webhook_secret).owned(),
        route(M::POST, "/workflows/{id}/delete", OPERATOR, None, workflows::delete).owned(),
        // Billing: everyone's own wallet, ledger, usage and the budgets that concern them, each
        // from the same service as the API's routes; admins set budgets and prices. A top-up
        // and the portal are answered with a redirect to Stripe.
        route(M::GET, "/billing", VIEWER, None, billing::wallet),
        route(M::POST, "/billing/checkout", VIEWER, None, billing::checkout),
        route(M::POST, "/billing/portal", VIEWER, None, billing::portal),
        route(M::GET, "/billing/ledger", VIEWER, None, billing::ledger),
        route(M::GET, "/billing/usage", VIEWER, None, usage::page),
        route(M::GET, "/billing/budgets", VIEWER, None, budgets::page),
        route(M::POST, "/billing/budgets", ADMIN, None, budgets::set),
        route(M::POST, "/billing/budgets/{id}/delete", ADMIN, None, budgets::delete),
        route(M::GET, "/billing/prices", ADMIN, None, billing::prices),
        route(M::POST, "/billing/prices", ADMIN, None, billing::set_price),
        route(M::POST, "/billing/prices/remove", ADMIN, None, billing::remove_price),
        // Secrets: names only; operators keep their own, admins see all.
        route(M::GET, "/secrets", OPERATOR, Some("secrets"), secrets::list),
        route(M::POST, "/secrets", OPERATOR, Some("secrets"), secrets::create),
        route(M::POST, "/secrets/{id}/value", OPERATOR, Some("secrets"), secrets::replace).owned(),
        route(M::POST, "/secrets/{id}/delete", OPERATOR, Some("secrets"), secrets::delete).owned(),
        // The caller's account: sessions and password.
        route(M::GET, "/account", VIEWER, None, account::page),
        route(M::POST, "/account/sessions/{id}/revoke", VIEWER, None, account::revoke_session).owned(),
        route(M::POST, "/account/password", VIEWER, Some("login"), account::change_password),
        // The caller's own API tokens; creating one needs a recent password check.
        route(M::GET, "/account/tokens", VIEWER, None, tokens::list),
        route(M::POST, "/account/tokens", VIEWER, None, tokens::create),
        route(M::POST, "/account/tokens/{id}/revoke", VIEWER, None, tokens::revoke).owned(),
        route(M::POST, "/account/reauthenticate", VIEWER, Some("login"), tokens::reauthenticate).before_enrollment(),
        // Administration.
        route(M::GET, "/admin/users", ADMIN, None, users::list),
        route(M::POST, "/admin/users/invite", ADMIN, None, users::invite),
        route(M::GET, "/admin/users/{id}", ADMIN, None, user_admin::page),
        route(M::POST, "/admin/users/{id}/role", ADMIN, None, user_admin::change_role),
        route(M::POST, "/admin/users/{id}/active", ADMIN, None, user_admin::set_active),
        route(M::POST, "/admin/users/{id}/reset-link", ADMIN, None, user_admin::reset_link),
        route(M::POST, "/admin/users/{id}/sessions/end", ADMIN, None, user_admin::end_sessions),
        route(M::POST, "/admin/users/{id}/second-factor/reset", ADMIN, None, user_admin::reset_second_factor),
        route(M::GET, "/admin/security", ADMIN, None, security::page),
        route(M::POST, "/admin/security/egress", ADMIN, None, security::set_allowlist),
        route(M::POST, "/admin/security/code-nodes", ADMIN, None, security::set_code_nodes),
        route(M::POST, "/admin/security/rotate-key", ADMIN, None, security::rotate_key),
        route(M::GET, "/admin/federation", ADMIN, None, federation::page),
        route(M::POST, "/admin/federation/probe", ADMIN, None, federation::probe),
        route(M::GET, "/admin/audit", ADMIN, None, audit::page),
        route(M::GET, "/admin/audit/verify", ADMIN, None, audit::verify),
    ]
}

/// Every page and asset with its rule (for the access-matrix test and the docs).
pub fn page_table() -> Vec<RouteEntry> {
    pages().iter().map(|page| page.entry().clone()).collect()
}

/// The pages behind their rules, with refusals written for a person and every form checked
/// for the Hive origin.
pub fn routes(state: &AppState) -> Router<AppState> {
    hive_server::mount(state, pages()).route_layer(from_fn_with_state(state.clone(), page::guard))
}

/// Hive's whole application: the API and the dashboard behind one pipeline.
pub fn app(state: AppState) -> Router {
    app_with(state, Router::new())
}

/// [`app`] with `extra` routes merged in (the test kit's), and a browser's unknown page
/// answered with a page rather than the API's JSON.
pub fn app_with(state: AppState, extra: Router<AppState>) -> Router {
    let pages = routes(&state).merge(extra);
    let fallback = axum::routing::any(page::not_found).with_state(state.clone());
    hive_server::router_with_fallback(state, pages, fallback)
}
