//! The caller's usage over a span of days, by day, agent or model: a bar chart the server
//! draws ([`crate::chart`]) of the cost, or of the tokens when everything was free, the same
//! numbers in a table, and the span's records as CSV (the API's export, which the session
//! cookie authenticates).

use crate::billing::BillingNav;
use crate::chart::{self, Chart, Labels, Slot};
use crate::money::{count, money};
use crate::page::{Chrome, Refused, page_request, query_value, refusal, shown_refused};
use askama::Template;
use axum::extract::{Query, State};
use axum::response::Response;
use hive_core::kernel::caller::Caller;
use hive_server::AppState;
use hive_server::auth::Authenticated;
use hive_store::billing::{UsageGroup, UsageGrouping};
use http::StatusCode;
use serde::Deserialize;
use std::collections::HashMap;
use time::{Date, Duration, OffsetDateTime};
use uuid::Uuid;

/// The span shown when none is asked for: the last 30 days, today included.
const DEFAULT_DAYS: i64 = 30;
/// Groups (agents, models) drawn at most; the table lists them all.
const MAX_GROUP_BARS: usize = 40;

const DAY: &[time::format_description::BorrowedFormatItem<'_>] =
    time::macros::format_description!("[year]-[month]-[day]");

/// One group's numbers, as the table shows them.
pub struct UsageLine {
    pub key: String,
    pub records: String,
    pub prompt: String,
    pub completion: String,
    pub tokens: String,
    /// Hosted agents' run time.
    pub run_time: String,
    /// Workflow steps' attempts.
    pub steps: String,
    pub cost: String,
}

#[derive(Template)]
#[template(path = "billing_usage.html")]
struct UsagePage<'a> {
    chrome: Chrome,
    title: &'a str,
    nav: BillingNav,
    from: String,
    to: String,
    by: &'static str,
    groupings: [(&'static str, &'static str); 3],
    chart: Option<Chart>,
    /// What the chart measures, in words (its title).
    measure: String,
    /// Only the largest groups are drawn.
    cut: bool,
    lines: Vec<UsageLine>,
    total: Option<UsageLine>,
    csv: String,
    error: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
pub struct UsageQuery {
    #[serde(default)]
    from: String,
    #[serde(default)]
    to: String,
    #[serde(default)]
    by: String,
}

/// One group's sums over every kind of use.
#[derive(Default, Clone)]
struct Sums {
    records: i64,
    prompt: i64,
    completion: i64,
    /// Seconds of hosted agents' run time.
    run_seconds: i64,
    steps: i64,
    cost: i64,
}

impl Sums {
    fn add(&mut self, group: &UsageGroup) {
        self.records = self.records.saturating_add(group.records);
        self.prompt = self.prompt.saturating_add(group.prompt_tokens);
        self.completion = self.completion.saturating_add(group.completion_tokens);
        match group.kind.as_str() {
            "hosted_run" => self.run_seconds = self.run_seconds.saturating_add(group.quantity),
            "workflow_step" => self.steps = self.steps.saturating_add(group.quantity),
            _ => {}
        }
        self.cost = self.cost.saturating_add(group.cost_minor);
    }

    fn tokens(&self) -> i64 {
        self.prompt.saturating_add(self.completion)
    }

    fn line(&self, key: String, currency: &str) -> UsageLine {
        UsageLine {
            key,
            records: count(self.records),
            prompt: count(self.prompt),
            completion: count(self.completion),
            tokens: count(self.tokens()),
            run_time: duration(self.run_seconds),
            steps: count(self.steps),
            cost: money(self.cost, currency),
        }
    }

    /// A bar's tooltip: the cost and what was used.
    fn tooltip(&self, name: &str, currency: &str) -> String {
        let mut used = vec![format!("{} tokens", count(self.tokens()))];
        if self.run_seconds > 0 {
            used.push(format!("{} of hosted run time", duration(self.run_seconds)));
        }
        if self.steps > 0 {
            let word = if self.steps == 1 { "step" } else { "steps" };
            used.push(format!("{} workflow {word}", count(self.steps)));
        }
        let records = if self.records == 1 {
            "record"
        } else {
            "records"
        };
        used.push(format!("{} {records}", count(self.records)));
        format!(
            "{name}: {} ({})",
            money(self.cost, currency),
            used.join(", ")
        )
    }
}

/// Seconds as the table shows them: `45 s`, `12 min 05 s`, `3 h 07 min`.
fn duration(seconds: i64) -> String {
    let seconds = seconds.max(0);
    match seconds {
        0..60 => format!("{seconds} s"),
        60..3600 => format!("{} min {:02} s", seconds / 60, seconds % 60),
        _ => format!("{} h {:02} min", seconds / 3600, seconds % 3600 / 60),
    }
}

fn date(text: &str, what: &str) -> Result<Option<Date>, Refused> {
    match text.trim() {
        "" => Ok(None),
        text => Date::parse(text, DAY).map(Some).map_err(|_| {
            (
                StatusCode::BAD_REQUEST,
                format!("{what} is a date such as 2026-01-31, not {text:?}."),
            )
        }),
    }
}

/// The span's first and last day (inclusive), from the query or the last 30 days.
fn span(query: &UsageQuery, today: Date) -> Result<(Date, Date), Refused> {
    let to = date(&query.to, "To")?.unwrap_or(today);
    let from = date(&query.from, "From")?
        .unwrap_or_else(|| to.saturating_sub(Duration::days(DEFAULT_DAYS - 1)));
    Ok((from, to))
}

fn start_of(day: Date) -> OffsetDateTime {
    day.midnight().assume_utc()
}

fn written(day: Date) -> String {
    day.format(DAY).unwrap_or_default()
}

async fn usage_page(
    state: &AppState,
    caller: &Caller,
    query: &UsageQuery,
) -> Result<UsagePage<'static>, Refused> {
    let billing = &state.hive.billing;
    let currency = billing.config().currency.as_str().to_owned();
    let today = state
        .hive
        .clock
        .now()
        .to_offset(time::UtcOffset::UTC)
        .date();
    let (by, grouping) = match query.by.as_str() {
        "" | "day" => ("day", UsageGrouping::Day),
        "agent" => ("agent", UsageGrouping::Agent),
        "model" => ("model", UsageGrouping::Model),
        _ => {
            return Err((
                StatusCode::BAD_REQUEST,
                "Group by day, agent or model.".to_owned(),
            ));
        }
    };
    let (from, to) = span(query, today)?;
    let since = start_of(from);
    let until = to
        .next_day()
        .map_or_else(|| start_of(to) + Duration::days(1), start_of);
    let groups = billing
        .usage(caller, None, since, until, grouping)
        .await
        .map_err(refusal)?;
    let mut sums: Vec<(String, Sums)> = Vec::new();
    let mut at: HashMap<String, usize> = HashMap::new();
    let mut total = Sums::default();
    for group in &groups {
        total.add(group);
        let n = *at.entry(group.key.clone()).or_insert_with(|| {
            sums.push((group.key.clone(), Sums::default()));
            sums.len() - 1
        });
        sums[n].1.add(group);
    }
    // Cost when anything cost something; else tokens.
    let by_cost = total.cost > 0;
    let value = |s: &Sums| if by_cost { s.cost } else { s.tokens() };
    let names = if grouping == UsageGrouping::Agent {
        agent_names(state, caller).await?
    } else {
        HashMap::new()
    };
    let name_of = |key: &str| -> String {
        match grouping {
            UsageGrouping::Agent => Uuid::parse_str(key)
                .ok()
                .and_then(|id| names.get(&id).cloned())
                .unwrap_or_else(|| key.to_owned()),
            UsageGrouping::Model if key.is_empty() => "(no model)".to_owned(),
            _ => key.to_owned(),
        }
    };
    let describe = |key: &str, s: &Sums| s.tooltip(&name_of(key), &currency);
    let (slots, labels, cut) = if grouping == UsageGrouping::Day {
        sums.sort_by(|a, b| a.0.cmp(&b.0));
        let by_day: HashMap<&str, &Sums> = sums.iter().map(|(k, s)| (k.as_str(), s)).collect();
        let mut slots = Vec::new();
        let mut day = from;
        while day <= to {
            let key = written(day);
            slots.push(match by_day.get(key.as_str()) {
                Some(s) => Slot {
                    tooltip: describe(&key, s),
                    value: value(s),
                    used: s.records > 0,
                    label: key,
                },
                None => Slot {
                    tooltip: format!("{key}: nothing used"),
                    value: 0,
                    used: false,
                    label: key,
                },
            });
            match day.next_day() {
                Some(next) => day = next,
                None => break,
            }
        }
        (slots, Labels::Ends, false)
    } else {
        sums.sort_by(|a, b| value(&b.1).cmp(&value(&a.1)).then(a.0.cmp(&b.0)));
        let slots: Vec<Slot> = sums
            .iter()
            .take(MAX_GROUP_BARS)
            .map(|(key, s)| Slot {
                label: name_of(key),
                value: value(s),
                used: s.records > 0,
                tooltip: describe(key, s),
            })
            .collect();
        (slots, Labels::Each, sums.len() > MAX_GROUP_BARS)
    };
    let chart = (!sums.is_empty()).then(|| {
        if by_cost {
            chart::draw(&slots, labels, |minor| money(minor, &currency))
        } else {
            chart::draw(&slots, labels, |tokens| format!("{} tokens", count(tokens)))
        }
    });
    let (from_text, to_text) = (written(from), written(to));
    let csv = format!(
        "/api/v1/billing/usage.csv?from={}&to={}",
        query_value(&rfc3339(since)),
        query_value(&rfc3339(until))
    );
    Ok(UsagePage {
        chrome: Chrome::of(caller),
        title: "Usage",
        nav: BillingNav::of(caller, "usage"),
        measure: format!(
            "{} per {by}, {from_text} to {to_text} (UTC)",
            if by_cost { "Cost" } else { "Tokens" }
        ),
        from: from_text,
        to: to_text,
        by,
        groupings: [("day", "day"), ("agent", "agent"), ("model", "model")],
        chart,
        cut,
        lines: sums
            .iter()
            .map(|(key, s)| s.line(name_of(key), &currency))
            .collect(),
        total: (!sums.is_empty()).then(|| total.line("Total".to_owned(), &currency)),
        csv,
        error: None,
    })
}

fn rfc3339(at: OffsetDateTime) -> String {
    at.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

/// The caller's agents by name (an admin's: all); others keep their id.
async fn agent_names(state: &AppState, caller: &Caller) -> Result<HashMap<Uuid, String>, Refused> {
    let listed = state
        .hive
        .agents
        .list(caller, &page_request(hive_store::MAX_PAGE_SIZE, None)?)
        .await
        .map_err(refusal)?;
    Ok(listed
        .items
        .into_iter()
        .map(|agent| (agent.id, agent.name))
        .collect())
}

/// `GET /billing/usage?from=&to=&by=`.
pub async fn page(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
    Query(query): Query<UsageQuery>,
) -> Response {
    match usage_page(&state, &caller, &query).await {
        Ok(page) => crate::page::render(StatusCode::OK, &page),
        // A span or grouping that is not one: the page with the defaults, saying why.
        Err((status, message)) if status.is_client_error() => {
            let built = usage_page(&state, &caller, &UsageQuery::default()).await;
            shown_refused(built, status, |page| page.error = Some(message))
        }
        Err((status, _)) => crate::page::problem(status, None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn run_time_reads_in_the_unit_that_fits() {
        assert_eq!(duration(0), "0 s");
        assert_eq!(duration(59), "59 s");
        assert_eq!(duration(65), "1 min 05 s");
        assert_eq!(duration(3 * 3600 + 7 * 60 + 9), "3 h 07 min");
    }

    #[test]
    fn a_groups_tooltip_names_what_was_used() {
        let mut sums = Sums::default();
        for (kind, prompt, quantity, cost) in [
            ("llm", 10, 0, 5),
            ("hosted_run", 0, 90, 20),
            ("workflow_step", 0, 1, 0),
        ] {
            sums.add(&UsageGroup {
                key: "2026-01-01".into(),
                kind: kind.into(),
                records: 1,
                prompt_tokens: prompt,
                completion_tokens: 0,
                quantity,
                cost_minor: cost,
            });
        }
        assert_eq!(
            sums.tooltip("2026-01-01", "usd"),
            "2026-01-01: 0.25 USD (10 tokens, 1 min 30 s of hosted run time, 1 workflow step, 3 records)"
        );
    }
}
