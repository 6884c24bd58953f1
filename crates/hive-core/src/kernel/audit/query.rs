//! Reading the audit log: [`AuditLog`], the service behind the trail, its export and its
//! verification (admins only, checked here, so no route or command can skip it); the filters
//! of a list or an export, the views of a record, and the export's walk through the log a
//! batch at a time.

use hive_proto::auth::{AuditExportLine, AuditFilterQuery};
use hive_store::{
    AuditFilter, AuditOutcome, AuditPosition, AuditRecord, Store, StoreError, TextMatch,
};
use std::sync::Arc;
use time::OffsetDateTime;

use super::{AuditAction, AuditChain, AuditEvent, Auditor, Verification};
use crate::kernel::caller::{Caller, RequestMeta};
use hive_proto::auth::AuditView;
use hive_store::{Page, PageRequest};

/// Why a read of the audit log was refused. Messages are safe to show to the caller.
#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    #[error("only an admin reads the audit log")]
    Forbidden,
    /// A filter is malformed; the message says which and why.
    #[error("{0}")]
    Invalid(String),
    /// The log cannot be read, or the export's own record cannot be written.
    #[error("temporarily unavailable")]
    Unavailable,
}

impl From<StoreError> for AuditError {
    fn from(error: StoreError) -> Self {
        tracing::error!(%error, "audit log unreadable");
        Self::Unavailable
    }
}

/// The audit log as callers read it.
#[derive(Debug, Clone)]
pub struct AuditLog {
    store: Arc<dyn Store>,
    auditor: Auditor,
}

impl AuditLog {
    pub fn new(store: Arc<dyn Store>, auditor: Auditor) -> Self {
        Self { store, auditor }
    }

    fn admin_only(caller: &Caller) -> Result<(), AuditError> {
        if caller.is_admin() {
            Ok(())
        } else {
            Err(AuditError::Forbidden)
        }
    }

    /// One page of the records `query` selects, newest first.
    pub async fn list(
        &self,
        caller: &Caller,
        query: &AuditFilterQuery,
        page: &PageRequest,
    ) -> Result<Page<AuditView>, AuditError> {
        Self::admin_only(caller)?;
        let filter = parse_filter(query).map_err(AuditError::Invalid)?;
        let page = self.store.audit().list(&filter, page).await?;
        Ok(Page {
            items: page.items.iter().map(view).collect(),
            next_cursor: page.next_cursor,
        })
    }

    /// Starts an export of the records `query` selects. The export is itself recorded first,
    /// durably: no record, no export.
    pub async fn export(
        &self,
        caller: &Caller,
        query: &AuditFilterQuery,
        meta: &RequestMeta,
    ) -> Result<ExportLines, AuditError> {
        Self::admin_only(caller)?;
        let filter = parse_filter(query).map_err(AuditError::Invalid)?;
        let event = AuditEvent::new(caller.principal(), AuditAction::AuditExport)
            .detail(serde_json::json!({ "filter": query }));
        self.auditor
            .record(event, meta)
            .await
            .map_err(|_| AuditError::Unavailable)?;
        Ok(ExportLines {
            walk: AuditExport::new(filter),
            store: Arc::clone(&self.store),
        })
    }

    /// Walks the whole chain and says where it breaks, if anywhere.
    pub async fn verify(&self, caller: &Caller) -> Result<Verification, AuditError> {
        Self::admin_only(caller)?;
        Ok(super::verify(self.store.as_ref(), self.auditor.chain()).await?)
    }

    /// The key of the chain.
    pub fn chain(&self) -> &Arc<AuditChain> {
        self.auditor.chain()
    }
}

/// An export under way: JSON lines ([`export_line`]), a batch at a time.
#[derive(Debug)]
pub struct ExportLines {
    walk: AuditExport,
    store: Arc<dyn Store>,
}

impl ExportLines {
    /// The next batch as JSON lines, or `None` at the end.
    pub async fn next_lines(&mut self) -> Result<Option<Vec<u8>>, AuditError> {
        let Some(batch) = self.walk.next_batch(self.store.as_ref()).await? else {
            return Ok(None);
        };
        let mut lines = Vec::new();
        for record in &batch {
            serde_json::to_writer(&mut lines, &export_line(record)).map_err(|error| {
                tracing::error!(%error, "audit export line not written");
                AuditError::Unavailable
            })?;
            lines.push(b'\n');
        }
        Ok(Some(lines))
    }
}

/// How many records an export reads at a time (its memory bound).
pub const EXPORT_BATCH: u32 = 500;
/// The longest actor and action the store keeps (and so the longest worth filtering by).
const MAX_NAME_CHARS: usize = 100;
/// The longest target the store keeps.
const MAX_TARGET_CHARS: usize = 200;

/// Reads and checks the filters of a list or an export; the message says what is wrong.
pub fn parse_filter(query: &AuditFilterQuery) -> Result<AuditFilter, String> {
    Ok(AuditFilter {
        actor: query
            .actor
            .as_deref()
            .map(|actor| checked_text("actor", actor, MAX_NAME_CHARS).map(str::to_owned))
            .transpose()?,
        action: query.action.as_deref().map(parse_action).transpose()?,
        target: query.resource.as_deref().map(parse_resource).transpose()?,
        outcome: query
            .outcome
            .as_deref()
            .map(|outcome| {
                AuditOutcome::parse(outcome)
                    .map_err(|_| "outcome must be success, failure or denied".to_owned())
            })
            .transpose()?,
        since: query
            .since
            .as_deref()
            .map(|t| parse_time("since", t))
            .transpose()?,
        until: query
            .until
            .as_deref()
            .map(|t| parse_time("until", t))
            .transpose()?,
    })
    .and_then(|filter| match (filter.since, filter.until) {
        (Some(since), Some(until)) if since >= until => {
            Err("since must be before until".to_owned())
        }
        _ => Ok(filter),
    })
}

fn checked_text<'a>(name: &str, value: &'a str, max_chars: usize) -> Result<&'a str, String> {
    if value.is_empty() {
        return Err(format!("{name} is empty"));
    }
    if value.chars().count() > max_chars {
        return Err(format!("{name} is longer than {max_chars} characters"));
    }
    if value.chars().any(char::is_control) {
        return Err(format!("{name} contains a control character"));
    }
    Ok(value)
}

/// `auth.login` exactly; `auth.` or `auth.*` everything under `auth.`; `auth.login*` every
/// action starting so.
fn parse_action(raw: &str) -> Result<TextMatch, String> {
    let action = checked_text("action", raw, MAX_NAME_CHARS)?;
    let (stem, prefix) = match action.strip_suffix('*') {
        Some(stem) => (stem, true),
        None => (action, action.ends_with('.')),
    };
    if stem.contains('*') {
        return Err("action may have a * only at its end".to_owned());
    }
    if stem.is_empty() {
        return Err("action needs a prefix before the *".to_owned());
    }
    Ok(if prefix {
        TextMatch::Prefix(stem.to_owned())
    } else {
        TextMatch::Exact(stem.to_owned())
    })
}

/// `secret:<id>` exactly; a bare type (`secret`) every target of that type.
fn parse_resource(raw: &str) -> Result<TextMatch, String> {
    let resource = checked_text("resource", raw, MAX_TARGET_CHARS)?;
    if resource.contains(':') {
        return Ok(TextMatch::Exact(resource.to_owned()));
    }
    let is_type = resource.len() <= 50
        && resource
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-');
    if !is_type {
        return Err(
            "resource must be a target (type:id) or a type of lower-case letters, digits, _ and -"
                .to_owned(),
        );
    }
    Ok(TextMatch::Prefix(format!("{resource}:")))
}

fn parse_time(name: &str, raw: &str) -> Result<OffsetDateTime, String> {
    if raw.len() > 64 {
        return Err(format!("{name} is not an RFC 3339 time"));
    }
    OffsetDateTime::parse(raw, &time::format_description::well_known::Rfc3339)
        .map_err(|_| format!("{name} is not an RFC 3339 time (e.g. 2026-01-31T12:00:00Z)"))
}

/// A record as the API shows it.
pub fn view(record: &AuditRecord) -> hive_proto::auth::AuditView {
    hive_proto::auth::AuditView {
        id: record.id.to_string(),
        at: record.at,
        actor: record.actor.clone(),
        action: record.action.clone(),
        target: record.target.clone(),
        outcome: record.outcome.as_str().to_owned(),
        ip: record.ip.clone(),
        request_id: record.request_id.clone(),
        detail: serde_json::from_str(&record.detail).unwrap_or(serde_json::Value::Null),
        seq: record.link.as_ref().map(|link| link.seq),
    }
}

/// A record as one export line: the view and its links.
pub fn export_line(record: &AuditRecord) -> AuditExportLine {
    AuditExportLine {
        record: view(record),
        prev_hash: record.link.as_ref().map(|link| link.prev_hash.clone()),
        hash: record.link.as_ref().map(|link| link.hash.clone()),
    }
}

/// Walks the records of a filter oldest first, a batch at a time: the records older than
/// the chain, then the chain in order.
#[derive(Debug, Clone)]
pub struct AuditExport {
    filter: AuditFilter,
    position: Option<AuditPosition>,
}

impl AuditExport {
    pub fn new(filter: AuditFilter) -> Self {
        Self {
            filter,
            position: Some(AuditPosition::START),
        }
    }

    /// The next batch, or `None` when every record has been read.
    pub async fn next_batch(
        &mut self,
        store: &dyn Store,
    ) -> Result<Option<Vec<AuditRecord>>, StoreError> {
        while let Some(position) = self.position {
            let batch = store
                .audit()
                .oldest_first(&self.filter, &position, EXPORT_BATCH)
                .await?;
            self.position = match (batch.last(), position) {
                (Some(last), _) => Some(AuditPosition::after(last)),
                (None, AuditPosition::Unchained(_)) => Some(AuditPosition::Chained(0)),
                (None, AuditPosition::Chained(_)) => None,
            };
            if !batch.is_empty() {
                return Ok(Some(batch));
            }
        }
        Ok(None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernel::caller::Credential;
    use hive_crypto::vault::{MasterKey, Purpose};
    use hive_proto::Role;
    use time::macros::datetime;

    async fn audit_log() -> (AuditLog, Arc<dyn Store>, tempfile::TempDir) {
        let dir = tempfile::tempdir().unwrap();
        let store: Arc<dyn Store> = Arc::new(
            hive_store_sqlite::SqliteStore::open(&dir.path().join("db"), 2)
                .await
                .unwrap(),
        );
        store.migrate().await.unwrap();
        let chain = AuditChain::new(MasterKey::from_bytes(&[7; 32]).derive(Purpose::AuditChain));
        let clock: hive_proto::SharedClock = Arc::new(hive_proto::SystemClock);
        let auditor = Auditor::new(Arc::clone(&store), Arc::new(chain), clock);
        (AuditLog::new(Arc::clone(&store), auditor), store, dir)
    }

    fn operator() -> Caller {
        Caller {
            user: None,
            role: Role::Operator,
            credential: Credential::Internal,
        }
    }

    async fn records(store: &Arc<dyn Store>) -> usize {
        let page = PageRequest::first(100).unwrap();
        store
            .audit()
            .list(&AuditFilter::all(), &page)
            .await
            .unwrap()
            .items
            .len()
    }

    #[tokio::test]
    async fn only_admins_read_export_or_verify_the_log() {
        let (log, store, _dir) = audit_log().await;
        let query = AuditFilterQuery::default();
        let meta = RequestMeta::default();
        let page = PageRequest::first(10).unwrap();
        assert!(matches!(
            log.list(&operator(), &query, &page).await,
            Err(AuditError::Forbidden)
        ));
        assert!(matches!(
            log.export(&operator(), &query, &meta).await,
            Err(AuditError::Forbidden)
        ));
        assert!(matches!(
            log.verify(&operator()).await,
            Err(AuditError::Forbidden)
        ));
        assert_eq!(records(&store).await, 0, "a refused export records nothing");
    }

    #[tokio::test]
    async fn an_export_is_recorded_before_its_first_line_and_a_bad_filter_exports_nothing() {
        let (log, store, _dir) = audit_log().await;
        let meta = RequestMeta::default();
        let bad = AuditFilterQuery {
            outcome: Some("ok".into()),
            ..AuditFilterQuery::default()
        };
        assert!(matches!(
            log.export(&Caller::cli(), &bad, &meta).await,
            Err(AuditError::Invalid(_))
        ));
        assert_eq!(records(&store).await, 0);

        let mut export = log
            .export(&Caller::cli(), &AuditFilterQuery::default(), &meta)
            .await
            .unwrap();
        assert_eq!(records(&store).await, 1, "recorded before any line is read");
        let lines = export.next_lines().await.unwrap().unwrap();
        let line: serde_json::Value = serde_json::from_slice(&lines[..lines.len() - 1]).unwrap();
        assert_eq!(line["action"], "audit.export");
        assert_eq!(line["actor"], "cli");
        assert!(export.next_lines().await.unwrap().is_none());
        assert!(
            log.verify(&Caller::cli())
                .await
                .unwrap()
                .first_break
                .is_none()
        );
    }

    #[test]
    fn filters_are_parsed_and_bad_ones_named() {
        let query = |f: fn(&mut AuditFilterQuery)| {
            let mut query = AuditFilterQuery::default();
            f(&mut query);
            parse_filter(&query)
        };
        assert_eq!(query(|_| {}).unwrap(), AuditFilter::all());
        let exact = query(|q| q.action = Some("auth.login".into())).unwrap();
        assert_eq!(exact.action, Some(TextMatch::Exact("auth.login".into())));
        for parsed in [
            query(|q| q.action = Some("auth.".into())),
            query(|q| q.action = Some("auth.*".into())),
        ] {
            assert_eq!(
                parsed.unwrap().action,
                Some(TextMatch::Prefix("auth.".into()))
            );
        }
        let stem = query(|q| q.action = Some("auth.login*".into())).unwrap();
        assert_eq!(stem.action, Some(TextMatch::Prefix("auth.login".into())));
        let typed = query(|q| q.resource = Some("secret".into())).unwrap();
        assert_eq!(typed.target, Some(TextMatch::Prefix("secret:".into())));
        let one = query(|q| q.resource = Some("secret:abc".into())).unwrap();
        assert_eq!(one.target, Some(TextMatch::Exact("secret:abc".into())));
        let timed = query(|q| {
            q.since = Some("2026-01-01T00:00:00Z".into());
            q.until = Some("2026-01-02T00:00:00+01:00".into());
        })
        .unwrap();
        assert_eq!(timed.since, Some(datetime!(2026-01-01 00:00 UTC)));
        assert_eq!(timed.until, Some(datetime!(2026-01-01 23:00 UTC)));

        type Edit = fn(&mut AuditFilterQuery);
        let refused: [(Edit, &str); 9] = [
            (|q| q.actor = Some("x".repeat(101)), "actor is longer"),
            (|q| q.actor = Some(String::new()), "actor is empty"),
            (|q| q.action = Some("a*b".into()), "only at its end"),
            (|q| q.action = Some("*".into()), "needs a prefix"),
            (
                |q| q.resource = Some("Secret Stuff".into()),
                "resource must be",
            ),
            (
                |q| q.resource = Some("secret:\u{7}".into()),
                "control character",
            ),
            (|q| q.outcome = Some("ok".into()), "outcome must be"),
            (
                |q| q.since = Some("yesterday".into()),
                "since is not an RFC 3339",
            ),
            (
                |q| {
                    q.since = Some("2026-01-02T00:00:00Z".into());
                    q.until = Some("2026-01-01T00:00:00Z".into());
                },
                "since must be before until",
            ),
        ];
        for (bad, message) in refused {
            let error = query(bad).unwrap_err();
            assert!(error.contains(message), "{error:?} lacks {message:?}");
        }
    }
}
