//! Budgets and their alerts: everyone sees the budgets that concern them (their own, their
//! agents') with this period's use as a meter, and their alerts; admins see all, set a budget
//! (on a user or an agent, chosen from a list or given by id; per day or month; tokens and/or
//! cost typed in major units) and delete one. The same `Billing` service as the API's routes.

use crate::billing::BillingNav;
use crate::money::{self, count};
use crate::page::{
    Chrome, Refused, own_account, page_request, query_value, refusal, see_other, shown_refused,
    when,
};
use askama::Template;
use axum::extract::{Form, Path, Query, State};
use axum::response::Response;
use hive_core::billing::budgets::{BudgetSpec, BudgetStatus};
use hive_core::kernel::caller::Caller;
use hive_server::AppState;
use hive_server::auth::{Authenticated, Meta};
use hive_store::billing::{AlertRow, BudgetPeriod, BudgetRow, BudgetScope};
use http::StatusCode;
use serde::Deserialize;
use std::collections::HashMap;
use uuid::Uuid;

/// Alerts on one page.
const ALERTS_PAGE_SIZE: u32 = 50;
/// Users and agents offered in the admins' form (beyond them, an id is typed).
const CHOICES: u32 = hive_store::MAX_PAGE_SIZE;

/// A limit with this period's use.
pub struct Meter {
    pub used: i64,
    pub max: i64,
    /// Where the meter turns to a warning: the first alert's threshold (80 %).
    pub high: i64,
    /// `84 of 1,000 tokens (8 %)`.
    pub text: String,
    /// What calls under way hold on it, when they hold something.
    pub held: Option<String>,
}

pub struct BudgetLine {
    pub id: String,
    /// The user or agent, by name where the caller may know it.
    pub who: String,
    pub period: &'static str,
    /// `2026-01-01 00:00 UTC to 2026-02-01 00:00 UTC`.
    pub span: String,
    pub tokens: Option<Meter>,
    pub cost: Option<Meter>,
    pub created: String,
    pub created_by: String,
}

pub struct AlertLine {
    pub threshold: u8,
    pub budget: String,
    pub period: String,
    pub at: String,
    pub delivered: String,
}

pub struct Choice {
    pub value: String,
    pub label: String,
}

#[derive(Template)]
#[template(path = "billing_budgets.html")]
struct BudgetsPage<'a> {
    chrome: Chrome,
    title: &'a str,
    nav: BillingNav,
    admin: bool,
    currency: String,
    budgets: Vec<BudgetLine>,
    alerts: Vec<AlertLine>,
    next_alerts: Option<String>,
    /// The admins' form: users and agents to choose from.
    users: Vec<Choice>,
    agents: Vec<Choice>,
    notice: Option<&'static str>,
    error: Option<String>,
}

/// Names of the users and agents the caller may know, for the budgets' lines.
#[derive(Default)]
struct Names {
    users: HashMap<Uuid, String>,
    agents: HashMap<Uuid, String>,
}

impl Names {
    fn scope(&self, caller: &Caller, scope: BudgetScope) -> String {
        match scope {
            BudgetScope::User(id) if caller.user_id() == Some(id) => "you".to_owned(),
            BudgetScope::User(id) => self
                .users
                .get(&id)
                .cloned()
                .unwrap_or_else(|| format!("user {id}")),
            BudgetScope::Agent(id) => self
                .agents
                .get(&id)
                .map_or_else(|| format!("agent {id}"), |name| format!("agent {name}")),
        }
    }

    /// Who made a change, as the audit log names them (`user:<id>`): by name where known.
    fn principal(&self, caller: &Caller, principal: &str) -> String {
        match principal
            .strip_prefix("user:")
            .and_then(|id| Uuid::parse_str(id).ok())
        {
            Some(id) if caller.user_id() == Some(id) => "you".to_owned(),
            Some(id) => self
                .users
                .get(&id)
                .cloned()
                .unwrap_or_else(|| principal.to_owned()),
            None => principal.to_owned(),
        }
    }

    fn budget(&self, caller: &Caller, budget: &BudgetRow) -> String {
        format!(
            "{}, per {}",
            self.scope(caller, budget.scope),
            budget.period.as_str()
        )
    }
}

/// A limit's meter: `used` of `max`, each written by `write` (a number) with `unit` after.
fn meter(
    (used, held, max): (i64, i64, Option<i64>),
    write: impl Fn(i64) -> String,
    unit: &str,
) -> Option<Meter> {
    let max = max?;
    let percent = i128::from(used) * 100 / i128::from(max.max(1));
    Some(Meter {
        used,
        max,
        high: i64::try_from(i128::from(max) * 4 / 5).unwrap_or(max),
        text: format!("{} of {}{unit} ({percent} %)", write(used), write(max)),
        held: (held > 0).then(|| format!("{}{unit}", write(held))),
    })
}

fn budget_line(caller: &Caller, names: &Names, status: BudgetStatus, currency: &str) -> BudgetLine {
    let budget = status.budget;
    let used = status.used;
    BudgetLine {
        id: budget.id.to_string(),
        who: names.scope(caller, budget.scope),
        period: budget.period.as_str(),
        span: format!(
            "{} to {}",
            when(status.period_start),
            when(status.period_end)
        ),
        tokens: meter(
            (used.tokens, used.held_tokens, budget.max_tokens),
            count,
            " tokens",
        ),
        cost: meter(
            (used.cost_minor, used.held_cost_minor, budget.max_cost_minor),
            |minor| money::major(minor, currency),
            &format!(" {}", money::code(currency)),
        ),
        created: when(budget.created_at),
        // Only admins set budgets; others are not told which one.
        created_by: if caller.is_admin() {
            names.principal(caller, &budget.created_by)
        } else {
            "an administrator".to_owned()
        },
    }
}

fn alert_line(
    caller: &Caller,
    names: &Names,
    budgets: &HashMap<Uuid, BudgetRow>,
    alert: AlertRow,
    webhook: bool,
) -> AlertLine {
    let budget = budgets.get(&alert.budget_id);
    let start = alert.period_start.to_offset(time::UtcOffset::UTC).date();
    let period = match budget.map(|b| b.period) {
        Some(BudgetPeriod::Month) => format!("{}-{:02}", start.year(), u8::from(start.month())),
        _ => start.to_string(),
    };
    let delivered = match (alert.delivered_at, webhook) {
        (Some(at), _) => format!("delivered {}", when(at)),
        (None, false) => "shown here only (no alert webhook)".to_owned(),
        (None, true) if alert.attempts >= hive_core::billing::budgets::MAX_ALERT_ATTEMPTS => {
            format!("not delivered (given up after {} tries)", alert.attempts)
        }
        (None, true) if alert.attempts > 0 => {
            format!("not delivered yet ({} tries)", alert.attempts)
        }
        (None, true) => "not delivered yet".to_owned(),
    };
    AlertLine {
        threshold: alert.threshold,
        budget: budget.map_or_else(
            || "a budget since deleted".to_owned(),
            |budget| names.budget(caller, budget),
        ),
        period,
        at: when(alert.created_at),
        delivered,
    }
}

async fn budgets_page(
    state: &AppState,
    caller: &Caller,
    alerts_cursor: Option<&str>,
) -> Result<BudgetsPage<'static>, Refused> {
    own_account(caller)?;
    let billing = &state.hive.billing;
    let currency = billing.config().currency.as_str().to_owned();
    let admin = caller.is_admin();
    let statuses = billing.budgets(caller).await.map_err(refusal)?;
    let alerts = billing
        .alerts(
            caller,
            admin,
            &page_request(ALERTS_PAGE_SIZE, alerts_cursor)?,
        )
        .await
        .map_err(refusal)?;
    let mut names = Names::default();
    let (mut users, mut agents) = (Vec::new(), Vec::new());
    // The caller's agents (an admin's: all), by name; an admin also knows every user.
    let listed = state
        .hive
        .agents
        .list(caller, &page_request(CHOICES, None)?)
        .await
        .map_err(refusal)?;
    for agent in listed.items {
        names.agents.insert(agent.id, agent.name.clone());
        agents.push(Choice {
            value: format!("agent:{}", agent.id),
            label: agent.name,
        });
    }
    if admin {
        let listed = state
            .hive
            .identity
            .list_users(&page_request(CHOICES, None)?)
            .await
            .map_err(refusal)?;
        for user in listed.items {
            let label = format!("{} ({})", user.display_name, user.email);
            names.users.insert(user.id, label.clone());
            users.push(Choice {
                value: format!("user:{}", user.id),
                label,
            });
        }
    }
    let by_id: HashMap<Uuid, BudgetRow> = statuses
        .iter()
        .map(|status| (status.budget.id, status.budget.clone()))
        .collect();
    let webhook = billing.config().alert_webhook_url.is_some();
    Ok(BudgetsPage {
        chrome: Chrome::of(caller),
        title: "Budgets",
        nav: BillingNav::of(caller, "budgets"),
        admin,
        alerts: alerts
            .items
            .into_iter()
            .map(|alert| alert_line(caller, &names, &by_id, alert, webhook))
            .collect(),
        next_alerts: alerts.next_cursor.as_deref().map(query_value),
        budgets: statuses
            .into_iter()
            .map(|status| budget_line(caller, &names, status, &currency))
            .collect(),
        currency: money::code(&currency),
        users: if admin { users } else { Vec::new() },
        agents: if admin { agents } else { Vec::new() },
        notice: None,
        error: None,
    })
}

#[derive(Default, Deserialize)]
pub struct BudgetsQuery {
    #[serde(default)]
    done: Option<String>,
    /// The alerts' next page.
    #[serde(default)]
    cursor: Option<String>,
}

/// `GET /billing/budgets`.
pub async fn page(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
    Query(query): Query<BudgetsQuery>,
) -> Response {
    let notice = match query.done.as_deref() {
        Some("set") => Some("The budget is set: calls count against it from now on."),
        Some("deleted") => Some("The budget is deleted."),
        _ => None,
    };
    let built = budgets_page(&state, &caller, query.cursor.as_deref()).await;
    shown_refused(built, StatusCode::OK, |page| page.notice = notice)
}

/// The page again, saying what went wrong.
async fn refused(state: &AppState, caller: &Caller, (status, message): Refused) -> Response {
    shown_refused(budgets_page(state, caller, None).await, status, |page| {
        page.error = Some(message);
    })
}

#[derive(Deserialize)]
pub struct BudgetForm {
    /// A choice of the list: `user:<id>` or `agent:<id>` (empty: `scope` and `scope_id`).
    #[serde(default)]
    target: String,
    /// `user` or `agent`, with `scope_id`, when an id is typed.
    #[serde(default)]
    scope: String,
    #[serde(default)]
    scope_id: String,
    #[serde(default)]
    period: String,
    #[serde(default)]
    max_tokens: String,
    /// In major units, as typed.
    #[serde(default)]
    max_cost: String,
}

fn invalid(message: impl Into<String>) -> Refused {
    (StatusCode::UNPROCESSABLE_ENTITY, message.into())
}

impl BudgetForm {
    fn scope(&self) -> Result<BudgetScope, Refused> {
        let typed = self.scope_id.trim();
        let (kind, id) = if typed.is_empty() {
            self.target
                .split_once(':')
                .ok_or_else(|| invalid("Choose a user or an agent, or type the id of one."))?
        } else {
            (self.scope.as_str(), typed)
        };
        let id = Uuid::parse_str(id.trim())
            .map_err(|_| invalid(format!("{id:?} is not an id (a UUID).")))?;
        match kind {
            "user" => Ok(BudgetScope::User(id)),
            "agent" => Ok(BudgetScope::Agent(id)),
            _ => Err(invalid("A budget is on a user or an agent.")),
        }
    }

    fn spec(&self, currency: &str) -> Result<BudgetSpec, Refused> {
        let period = BudgetPeriod::parse(&self.period)
            .map_err(|_| invalid("The period is a day or a month."))?;
        let max_tokens = match self.max_tokens.trim() {
            "" => None,
            text => Some(text.parse::<i64>().map_err(|_| {
                invalid(format!("{text:?} is not a number of tokens: type digits."))
            })?),
        };
        let max_cost_minor = match self.max_cost.trim() {
            "" => None,
            text => Some(
                money::parse_major(text, currency)
                    .map_err(|message| invalid(format!("Max cost: {message}")))?,
            ),
        };
        Ok(BudgetSpec {
            scope: self.scope()?,
            period,
            max_tokens,
            max_cost_minor,
        })
    }
}

/// `POST /billing/budgets` (admins): sets the budget of a scope and period (replacing one
/// there).
pub async fn set(
    State(state): State<AppState>,
    Meta(meta): Meta,
    Authenticated(caller): Authenticated,
    Form(form): Form<BudgetForm>,
) -> Response {
    let billing = &state.hive.billing;
    let done = match form.spec(billing.config().currency.as_str()) {
        Ok(spec) => billing
            .set_budget(&caller, spec, &meta)
            .await
            .map_err(refusal),
        Err(refused) => Err(refused),
    };
    match done {
        Ok(_) => see_other("/billing/budgets?done=set"),
        Err(refused) => self::refused(&state, &caller, refused).await,
    }
}

/// `POST /billing/budgets/{id}/delete` (admins).
pub async fn delete(
    State(state): State<AppState>,
    Meta(meta): Meta,
    Authenticated(caller): Authenticated,
    Path(id): Path<Uuid>,
) -> Response {
    match state.hive.billing.delete_budget(&caller, id, &meta).await {
        Ok(()) => see_other("/billing/budgets?done=deleted"),
        Err(error) => refused(&state, &caller, refusal(error)).await,
    }
}
