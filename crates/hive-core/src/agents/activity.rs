//! What an agent did: its token usage per UTC day (from the usage meter's rows) and its recent
//! calls (from the audit log's records of calls to it). Both are the agent's owner's and the
//! admins' to read — the same rule as reading the agent — and show only these facts: the audit
//! log itself stays the admins'.

use super::{AgentError, Agents};
use crate::kernel::audit::AuditAction;
use crate::kernel::caller::Caller;
use hive_store::{
    AuditFilter, AuditRecord, Page, PageRequest, TextMatch, USAGE_DAYS_MAX, UsageDay,
};
use time::{Duration, UtcOffset};
use uuid::Uuid;

/// The days of usage read when none are asked for.
pub const DEFAULT_USAGE_DAYS: u32 = 14;

/// The audit actions of a call to an agent: through the gateway, from a federated peer, from
/// the public tier.
pub fn call_actions() -> [AuditAction; 3] {
    [
        AuditAction::A2aCall,
        AuditAction::MeshFederationInbound,
        AuditAction::MeshPublicTierCall,
    ]
}

/// One call to an agent, as its audit record tells it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgentCall {
    /// The audit record's id.
    pub id: Uuid,
    /// When the call was recorded: its answer, or a stream's end.
    pub at: time::OffsetDateTime,
    /// Who called, as the audit log names them (`user:<id>`, `token:<id>`, `peer:<origin>`…).
    pub caller: String,
    pub action: String,
    pub method: Option<String>,
    pub outcome: String,
    pub error_code: Option<i64>,
    pub error_message: Option<String>,
    pub duration_ms: Option<u64>,
}

impl AgentCall {
    fn of(record: AuditRecord) -> Self {
        let detail: serde_json::Value =
            serde_json::from_str(&record.detail).unwrap_or(serde_json::Value::Null);
        let text = |key: &str| detail.get(key).and_then(|v| v.as_str()).map(str::to_owned);
        Self {
            id: record.id,
            at: record.at,
            caller: record.actor,
            action: record.action,
            method: text("method"),
            // Records older than the outcome detail say how the audit log judged them.
            outcome: text("outcome").unwrap_or_else(|| record.outcome.as_str().to_owned()),
            error_code: detail.get("errorCode").and_then(serde_json::Value::as_i64),
            error_message: text("errorMessage"),
            duration_ms: detail.get("durationMs").and_then(serde_json::Value::as_u64),
        }
    }
}

impl Agents {
    /// The agent's calls and tokens per UTC day, for the `days` days that end today (1 to
    /// [`USAGE_DAYS_MAX`]), oldest first, a day without calls included with zeros. The agent's
    /// owner's and admins' to read; anyone else's agent is not found.
    pub async fn usage_by_day(
        &self,
        caller: &Caller,
        id: Uuid,
        days: u32,
    ) -> Result<Vec<UsageDay>, AgentError> {
        if !(1..=USAGE_DAYS_MAX).contains(&days) {
            return Err(AgentError::Invalid(format!(
                "days must be 1 to {USAGE_DAYS_MAX}"
            )));
        }
        self.get(caller, id).await?;
        let today = self.clock.now().to_offset(UtcOffset::UTC).date();
        let first = today
            .checked_sub(Duration::days(i64::from(days - 1)))
            .ok_or_else(|| AgentError::Invalid("days reach before the calendar".into()))?;
        let found = self.store.usage().by_day(id, first, days).await?;
        let mut found = found.into_iter().peekable();
        let mut all = Vec::with_capacity(days as usize);
        let mut day = first;
        for _ in 0..days {
            match found.next_if(|used| used.day == day) {
                Some(used) => all.push(used),
                None => all.push(UsageDay {
                    day,
                    calls: 0,
                    prompt_tokens: 0,
                    completion_tokens: 0,
                }),
            }
            match day.next_day() {
                Some(next) => day = next,
                None => break,
            }
        }
        Ok(all)
    }

    /// The calls to the agent, newest first, from the audit log (its records of calls whose
    /// target is the agent). The agent's owner's and admins' to read; anyone else's agent is
    /// not found.
    pub async fn calls(
        &self,
        caller: &Caller,
        id: Uuid,
        page: &PageRequest,
    ) -> Result<Page<AgentCall>, AgentError> {
        self.get(caller, id).await?;
        let filter = AuditFilter {
            action: Some(TextMatch::AnyOf(
                call_actions()
                    .iter()
                    .map(|action| action.name().into_owned())
                    .collect(),
            )),
            target: Some(TextMatch::Exact(format!("agent:{id}"))),
            ..AuditFilter::default()
        };
        let page = self.store.audit().list(&filter, page).await?;
        Ok(Page {
            items: page.items.into_iter().map(AgentCall::of).collect(),
            next_cursor: page.next_cursor,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hive_store::AuditOutcome;

    #[test]
    fn a_call_is_read_from_its_record() {
        let record = AuditRecord {
            id: Uuid::nil(),
            at: time::OffsetDateTime::UNIX_EPOCH,
            actor: "user:1".into(),
            action: "a2a.call".into(),
            target: Some("agent:x".into()),
            outcome: AuditOutcome::Failure,
            ip: None,
            request_id: None,
            detail: r#"{"method":"SendMessage","outcome":"failed","errorCode":null,"errorMessage":"the model endpoint failed: the endpoint answered HTTP 401","durationMs":12}"#.into(),
            link: None,
        };
        let call = AgentCall::of(record.clone());
        assert_eq!(call.method.as_deref(), Some("SendMessage"));
        assert_eq!(call.outcome, "failed");
        assert_eq!(call.error_code, None);
        assert!(call.error_message.unwrap().ends_with("HTTP 401"));
        assert_eq!(call.duration_ms, Some(12));
        let bare = AgentCall::of(AuditRecord {
            detail: "{}".into(),
            ..record
        });
        assert_eq!((bare.outcome.as_str(), bare.method), ("failure", None));
    }
}
