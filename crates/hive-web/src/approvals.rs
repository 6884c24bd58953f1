//! The approvals waiting for the signed-in user's decision (any role: whoever a step names, or
//! whose role it admits), of anyone's workflows, each decided from here with the same service
//! call as the API's. The run's own page stays its owner's.

use crate::hosted::log_time;
use crate::page::{Chrome, Refused, problem, refusal, render, see_other};
use crate::workflows::{DecisionForm, take_decision};
use askama::Template;
use axum::extract::{Form, Path, Query, State};
use axum::response::Response;
use hive_core::kernel::caller::Caller;
use hive_proto::Role;
use hive_server::AppState;
use hive_server::auth::{Authenticated, Meta};
use http::StatusCode;
use serde::Deserialize;
use uuid::Uuid;

/// One approval waiting for the caller.
pub struct PendingLine {
    pub run_id: String,
    pub short_id: String,
    pub workflow: String,
    pub node: String,
    pub message: String,
    pub since: String,
    /// Whether the caller may open the run's page (an operator whose run it is, an admin).
    pub run_page: bool,
}

#[derive(Template)]
#[template(path = "approvals.html")]
struct ApprovalsPage<'a> {
    chrome: Chrome,
    title: &'a str,
    approvals: Vec<PendingLine>,
    notice: Option<&'static str>,
}

#[derive(Default, Deserialize)]
pub struct ApprovalsQuery {
    #[serde(default)]
    decided: Option<String>,
}

async fn approvals_page(
    state: &AppState,
    caller: &Caller,
    notice: Option<&'static str>,
) -> Result<ApprovalsPage<'static>, Refused> {
    let pending = state
        .hive
        .workflows
        .pending_approvals(caller)
        .await
        .map_err(refusal)?;
    let approvals = pending
        .into_iter()
        .map(|approval| {
            let run_id = approval.run.id.to_string();
            PendingLine {
                short_id: run_id.chars().take(8).collect(),
                run_page: caller.is_admin()
                    || (caller.role >= Role::Operator
                        && caller.user_id() == Some(approval.run.principal_user)),
                run_id,
                workflow: approval.workflow,
                node: approval.step_key,
                message: approval.message,
                since: log_time(approval.since),
            }
        })
        .collect();
    Ok(ApprovalsPage {
        chrome: Chrome::of(caller),
        title: "Approvals",
        approvals,
        notice,
    })
}

/// `GET /approvals`: what waits for the caller's decision, newest first.
pub async fn page(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
    Query(query): Query<ApprovalsQuery>,
) -> Response {
    let notice = match query.decided.as_deref() {
        Some("approved") => Some("Approved: the run goes on."),
        Some("rejected") => Some("Rejected: the run takes its rejected branch, or fails."),
        _ => None,
    };
    match approvals_page(&state, &caller, notice).await {
        Ok(page) => render(StatusCode::OK, &page),
        Err((status, _)) => problem(status, None),
    }
}

/// `POST /approvals/{run}/decide`: the service decides who may; a refusal is the problem
/// page, a decision taken goes back to the list with a notice.
pub async fn decide(
    State(state): State<AppState>,
    Meta(meta): Meta,
    Authenticated(caller): Authenticated,
    Path(id): Path<Uuid>,
    Form(form): Form<DecisionForm>,
) -> Response {
    match take_decision(&state, &caller, id, &form, &meta).await {
        Ok(true) => see_other("/approvals?decided=approved"),
        Ok(false) => see_other("/approvals?decided=rejected"),
        Err(page) => page,
    }
}
