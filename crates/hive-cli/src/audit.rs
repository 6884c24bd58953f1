//! `hive audit`: verify the hash chain, list and export the trail — through a running server's
//! API when one is named (so the chain is checked while the server runs), else on the stopped
//! instance's data directory (`instance`).

use crate::admin::cli_meta;
use crate::instance::{Failure, Instance};
use crate::output::{self, Column, column};
use crate::remote::{CALL_TIMEOUT, STREAM_HEAD_TIMEOUT, emit};
use clap::Subcommand;
use hive_core::kernel::caller::Caller;
use hive_proto::auth::{AuditFilterQuery, AuditVerificationView, PageResponse};
use hive_server::views;
use std::time::Duration;
use tokio::io::AsyncWriteExt;

/// How long a walk of the chain on the server may take: the server reads the whole history a
/// batch at a time before it answers, which on a long history is no matter of seconds.
const VERIFY_TIMEOUT: Duration = Duration::from_secs(30 * 60);

#[derive(Subcommand)]
pub enum AuditAction {
    /// Walk the hash chain of the audit log and report the first edited, deleted or reordered
    /// record (exit 1), or that it is intact (exit 0). Works while the server runs (--url).
    Verify,
    /// List the trail, newest first, with the export's filters.
    List {
        #[command(flatten)]
        filters: Filters,
        #[command(flatten)]
        page: crate::admin::ListArgs,
    },
    /// Write the audit log to standard output as JSON lines, oldest first, each with its seq,
    /// prevHash and hash. The export is itself audited.
    Export(Filters),
}

/// The filters of `hive audit list|export` (the same as the HTTP API's).
#[derive(clap::Args)]
pub struct Filters {
    /// Records at or after this RFC 3339 time.
    #[arg(long)]
    since: Option<String>,
    /// Records before this RFC 3339 time.
    #[arg(long)]
    until: Option<String>,
    /// Exactly this actor (e.g. user:<id>, cli, system).
    #[arg(long)]
    actor: Option<String>,
    /// Exactly this action, or a prefix ending in `.` or `*`.
    #[arg(long)]
    action: Option<String>,
    /// A target (type:id) or a target type.
    #[arg(long)]
    resource: Option<String>,
    /// success, failure or denied.
    #[arg(long)]
    outcome: Option<String>,
}

impl Filters {
    fn query(self) -> AuditFilterQuery {
        AuditFilterQuery {
            actor: self.actor,
            action: self.action,
            resource: self.resource,
            outcome: self.outcome,
            since: self.since,
            until: self.until,
        }
    }
}

/// A filter as the API's query string takes it.
fn query_pairs(filter: &AuditFilterQuery) -> Vec<(&'static str, String)> {
    [
        ("actor", &filter.actor),
        ("action", &filter.action),
        ("resource", &filter.resource),
        ("outcome", &filter.outcome),
        ("since", &filter.since),
        ("until", &filter.until),
    ]
    .into_iter()
    .filter_map(|(name, value)| value.clone().map(|value| (name, value)))
    .collect()
}

/// The columns of `hive audit list`.
const AUDIT_COLUMNS: [Column; 7] = [
    column("TIME", "at"),
    column("SEQ", "seq"),
    column("ACTOR", "actor"),
    column("ACTION", "action"),
    column("TARGET", "target"),
    column("OUTCOME", "outcome"),
    column("IP", "ip"),
];

pub async fn audit(on: Instance, action: AuditAction, as_json: bool) -> Result<(), Failure> {
    match action {
        AuditAction::Verify => verify(&on, as_json).await,
        AuditAction::List { filters, page } => {
            let filter = filters.query();
            let listed = match &on {
                Instance::Server(api) => {
                    let mut query = query_pairs(&filter);
                    query.extend(page.query());
                    let request = api.get("/audit", &query)?.timeout(CALL_TIMEOUT);
                    api.json::<serde_json::Value>(request).await?
                }
                Instance::Embedded(hive) => {
                    let page = page.page()?;
                    let records = hive
                        .audit_log
                        .list(&Caller::cli(), &filter, &page)
                        .await
                        .map_err(|e| e.to_string())?;
                    output::to_json(&PageResponse {
                        items: records.items,
                        next_cursor: records.next_cursor,
                    })?
                }
            };
            Ok(output::list(&listed, &AUDIT_COLUMNS, as_json)?)
        }
        AuditAction::Export(filters) => export(&on, filters.query()).await,
    }
}

/// Walks the chain (on the server or here) and reports: exit 0 intact, 1 broken.
async fn verify(on: &Instance, as_json: bool) -> Result<(), Failure> {
    let progress = output::progress("verifying the audit chain");
    let report: Result<AuditVerificationView, Failure> = match on {
        Instance::Server(api) => {
            let request = api.request(reqwest::Method::GET, "/audit/verify");
            let response = tokio::time::timeout(VERIFY_TIMEOUT, api.json(request))
                .await
                .map_err(|_| Failure::Instance(format!("{} did not answer in time", api.origin())));
            match response {
                Ok(answer) => answer.map_err(Failure::from),
                Err(failure) => Err(failure),
            }
        }
        Instance::Embedded(hive) => hive
            .audit_log
            .verify(&Caller::cli())
            .await
            .map(|report| views::verification_view(&report))
            .map_err(|e| Failure::Work(e.to_string())),
    };
    progress.finish_and_clear();
    let report = report?;
    if as_json {
        output::json(&output::to_json(&report)?)?;
    } else {
        if report.unchained > 0 {
            emit(&format!(
                "{} records are outside the hash chain (Hive writes none)",
                report.unchained
            ))?;
        }
        if let Some(seq) = report.resumed_after {
            emit(&format!(
                "records up to {seq} were deleted by retention; verified from its signed checkpoint"
            ))?;
        }
    }
    match &report.first_break {
        None => {
            if !as_json {
                emit(&format!(
                    "audit chain intact: {} records verified",
                    report.checked
                ))?;
            }
            Ok(())
        }
        Some(first_break) => Err(Failure::Work(format!(
            "audit chain broken: {} ({} records before it verified)",
            crate::remote::shown(first_break),
            report.checked
        ))),
    }
}

/// Streams the export to standard output, counting its records on a terminal.
async fn export(on: &Instance, filter: AuditFilterQuery) -> Result<(), Failure> {
    let mut out = tokio::io::BufWriter::new(tokio::io::stdout());
    let write_failed = |e: std::io::Error| format!("cannot write the export: {e}");
    let progress = output::progress("exporting the audit log");
    let mut records: u64 = 0;
    let mut count = |chunk: &[u8]| {
        records += chunk.iter().filter(|&&b| b == b'\n').count() as u64;
        progress.set_message(format!("exporting the audit log: {records} records"));
    };
    match on {
        Instance::Server(api) => {
            let request = api.get("/audit/export", &query_pairs(&filter))?;
            let mut response = tokio::time::timeout(STREAM_HEAD_TIMEOUT, api.send(request))
                .await
                .map_err(|_| {
                    Failure::Instance(format!("{} did not answer in time", api.origin()))
                })??;
            while let Some(chunk) = response.chunk().await.map_err(|e| {
                Failure::Work(format!(
                    "the export was cut off: {}",
                    crate::remote::describe(e)
                ))
            })? {
                count(&chunk);
                out.write_all(&chunk).await.map_err(write_failed)?;
            }
        }
        Instance::Embedded(hive) => {
            let mut export = hive
                .audit_log
                .export(&Caller::cli(), &filter, &cli_meta())
                .await
                .map_err(|e| e.to_string())?;
            while let Some(lines) = export.next_lines().await.map_err(|e| e.to_string())? {
                count(&lines);
                out.write_all(&lines).await.map_err(write_failed)?;
            }
        }
    }
    progress.finish_and_clear();
    Ok(out.flush().await.map_err(write_failed)?)
}
