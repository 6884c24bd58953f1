//! The audit log for admins: filters, keyset paging, the chain's verification, export.

use crate::page::{Chrome, page_request, problem, query_value, refusal, render, when};
use askama::Template;
use axum::extract::{Query, State};
use axum::response::Response;
use hive_proto::auth::AuditFilterQuery;
use hive_server::AppState;
use hive_server::auth::Authenticated;
use http::StatusCode;
use serde::Deserialize;

/// Records on one page.
const PAGE_SIZE: u32 = 50;

/// The filter form's fields, as a browser sends them (empty fields included).
#[derive(Debug, Default, Deserialize)]
pub struct AuditQuery {
    #[serde(default)]
    actor: String,
    #[serde(default)]
    action: String,
    #[serde(default)]
    resource: String,
    #[serde(default)]
    outcome: String,
    #[serde(default)]
    since: String,
    #[serde(default)]
    until: String,
    cursor: Option<String>,
}

fn given(value: &str) -> Option<String> {
    Some(value.trim().to_owned()).filter(|value| !value.is_empty())
}

impl AuditQuery {
    fn filter(&self) -> AuditFilterQuery {
        AuditFilterQuery {
            actor: given(&self.actor),
            action: given(&self.action),
            resource: given(&self.resource),
            outcome: given(&self.outcome),
            since: given(&self.since),
            until: given(&self.until),
        }
    }

    /// The filter as a query string, for the next page's and the export's links.
    fn query_string(&self) -> String {
        [
            ("actor", &self.actor),
            ("action", &self.action),
            ("resource", &self.resource),
            ("outcome", &self.outcome),
            ("since", &self.since),
            ("until", &self.until),
        ]
        .into_iter()
        .filter(|(_, value)| !value.trim().is_empty())
        .map(|(name, value)| format!("{name}={}", query_value(value.trim())))
        .collect::<Vec<_>>()
        .join("&")
    }
}

struct RecordLine {
    at: String,
    actor: String,
    action: String,
    target: String,
    outcome: String,
    ip: String,
    detail: String,
}

#[derive(Template)]
#[template(path = "audit.html")]
struct AuditPage<'a> {
    chrome: Chrome,
    title: &'a str,
    query: &'a AuditQuery,
    records: Vec<RecordLine>,
    /// The next page's link, filters kept.
    next: Option<String>,
    export: String,
    error: Option<String>,
    outcomes: [&'a str; 3],
}

pub async fn page(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
    Query(query): Query<AuditQuery>,
) -> Response {
    let request = match page_request(PAGE_SIZE, query.cursor.as_deref()) {
        Ok(request) => request,
        Err((status, _)) => return problem(status, None),
    };
    let filters = query.query_string();
    let mut page = AuditPage {
        chrome: Chrome::of(&caller),
        title: "Audit log",
        query: &query,
        records: Vec::new(),
        next: None,
        export: format!("/api/v1/audit/export?{filters}"),
        error: None,
        outcomes: ["success", "failure", "denied"],
    };
    let status = match state
        .hive
        .audit_log
        .list(&caller, &query.filter(), &request)
        .await
    {
        Ok(listed) => {
            page.next = listed.next_cursor.map(|cursor| {
                let cursor = format!("cursor={}", query_value(&cursor));
                match filters.is_empty() {
                    true => format!("/admin/audit?{cursor}"),
                    false => format!("/admin/audit?{filters}&{cursor}"),
                }
            });
            page.records = listed
                .items
                .into_iter()
                .map(|record| RecordLine {
                    at: when(record.at),
                    actor: record.actor,
                    action: record.action,
                    target: record.target.unwrap_or_default(),
                    outcome: record.outcome,
                    ip: record.ip.unwrap_or_default(),
                    detail: record.detail.to_string(),
                })
                .collect();
            StatusCode::OK
        }
        // A filter the log cannot read (a bad time, an unknown outcome): said above the form.
        Err(error) => {
            let (status, message) = refusal(error);
            if status != StatusCode::BAD_REQUEST {
                return problem(status, None);
            }
            page.error = Some(message);
            status
        }
    };
    render(status, &page)
}

#[derive(Template)]
#[template(path = "audit_verify.html")]
struct VerifyPage<'a> {
    chrome: Chrome,
    title: &'a str,
    intact: bool,
    checked: u64,
    resumed_after: Option<i64>,
    first_break: Option<String>,
}

/// Walks the whole chain: on its own page, not on every look at the log.
pub async fn verify(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
) -> Response {
    match state.hive.audit_log.verify(&caller).await {
        Ok(verification) => {
            let page = VerifyPage {
                chrome: Chrome::of(&caller),
                title: "Audit chain",
                intact: verification.first_break.is_none() && verification.unchained == 0,
                checked: verification.checked,
                resumed_after: verification.resumed_after,
                first_break: verification.first_break.map(|broken| broken.to_string()),
            };
            render(StatusCode::OK, &page)
        }
        Err(error) => problem(refusal(error).0, None),
    }
}
