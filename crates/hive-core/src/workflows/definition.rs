//! The workflow document: nodes, edges, triggers and limits, and every structural rule it
//! must meet before it is saved.
//!
//! [`Definition::parse`] reads the JSON text and checks it whole, collecting every problem
//! (each a [`Problem`] naming the node and the rule) rather than stopping at the first. A
//! definition that parsed is a DAG with exactly one input node from which every node is
//! reachable; the engine may rely on that.

use crate::workflows::expression::{Expression, VARIABLES};
use crate::workflows::schedule::CronSchedule;
use crate::workflows::template::{Template, TemplatePath};
use hive_proto::Role;
use hive_proto::agents::AgentVisibility;
use serde::Deserialize;
use serde_json::{Map, Value};
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::fmt;
use std::time::Duration;

/// The document's size, at most: 256 KiB.
pub const MAX_DOCUMENT_BYTES: usize = 256 * 1024;
pub const MAX_NODES: usize = 200;
pub const MAX_EDGES: usize = 1000;
pub const MAX_TRIGGERS: usize = 20;
pub const MAX_NAME_CHARS: usize = 100;
pub const MAX_DESCRIPTION_CHARS: usize = 2000;
/// A code node's source, at most: 64 KiB.
pub const MAX_SOURCE_BYTES: usize = 64 * 1024;
/// Any string in the document, at most (templates included): 64 KiB.
pub const MAX_STRING_BYTES: usize = 64 * 1024;
/// Short strings (agent and workflow references, header and variable names, cases, e-mail
/// addresses, host names), at most.
pub const MAX_SHORT_CHARS: usize = 256;
/// Entries of a list or map field (headers, env, cases, approvers…), at most.
pub const MAX_ENTRIES: usize = 100;

/// One thing wrong with a document.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Problem {
    /// The node it is about, when it is about one.
    pub node: Option<String>,
    /// The rule broken, in snake_case: `unknown_type`, `missing_field`, `unknown_field`,
    /// `bad_field`, `bad_id`, `duplicate_id`, `out_of_range`, `too_large`, `bad_json`,
    /// `bad_name`, `bad_template`, `bad_expression`, `unknown_node`, `self_edge`,
    /// `duplicate_edge`, `missing_input`, `duplicate_input`, `input_has_incoming`,
    /// `duplicate_output`, `unreachable`, `cycle`, `bad_branch`, `duplicate_case`,
    /// `not_upstream`, `item_outside_map`, `secret_not_allowed_here`, `bad_map_body`,
    /// `duplicate_trigger`, `bad_schedule`, `bad_trigger_input`, `bad_agent_name`,
    /// `duplicate_a2a`; and, found when a document is checked for saving, `agent_name_taken`.
    pub rule: &'static str,
    /// What is wrong, naming the node (or edge, trigger) and the rule.
    pub message: String,
}

/// Every problem of a document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problems(pub Vec<Problem>);

impl fmt::Display for Problems {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let messages: Vec<&str> = self.0.iter().map(|p| p.message.as_str()).collect();
        f.write_str(&messages.join("; "))
    }
}

impl std::error::Error for Problems {}

/// A checked workflow.
#[derive(Debug, Clone, PartialEq)]
pub struct Definition {
    pub name: String,
    pub description: String,
    pub nodes: Vec<Node>,
    pub edges: Vec<Edge>,
    pub triggers: Vec<Trigger>,
    pub limits: Limits,
}

/// A step of the workflow.
#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    pub id: String,
    pub name: Option<String>,
    pub timeout: Option<Duration>,
    pub retry: Retry,
    pub kind: NodeKind,
}

/// How often a failed step is tried and how long to wait between tries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retry {
    /// Tries in all (1: no retry).
    pub max_attempts: u32,
    /// The wait before the second try; it doubles for each try after.
    pub backoff: Duration,
    /// The longest wait.
    pub max_backoff: Duration,
}

impl Default for Retry {
    fn default() -> Self {
        Self {
            max_attempts: 1,
            backoff: Duration::from_secs(1),
            max_backoff: Duration::from_secs(300),
        }
    }
}

impl Retry {
    /// The wait before try number `attempt` (1-based): none before the first, `backoff`
    /// before the second, twice that before the third, and so on, never above `max_backoff`.
    pub fn delay_before(&self, attempt: u32) -> Duration {
        if attempt <= 1 {
            return Duration::ZERO;
        }
        let factor = 1u32.checked_shl(attempt - 2).unwrap_or(u32::MAX);
        self.backoff
            .checked_mul(factor)
            .unwrap_or(Duration::MAX)
            .min(self.max_backoff)
    }
}

/// What a node does.
#[derive(Debug, Clone, PartialEq)]
pub enum NodeKind {
    Input(InputNode),
    Output(OutputNode),
    Agent(AgentNode),
    Llm(LlmNode),
    Http(HttpNode),
    Code(CodeNode),
    Transform(TransformNode),
    Condition(ConditionNode),
    Switch(SwitchNode),
    Parallel,
    Join,
    Map(MapNode),
    Delay(DelayNode),
    Approval(ApprovalNode),
    Workflow(WorkflowNode),
}

impl NodeKind {
    /// The `type` it is written with.
    pub fn type_name(&self) -> &'static str {
        match self {
            Self::Input(_) => "input",
            Self::Output(_) => "output",
            Self::Agent(_) => "agent",
            Self::Llm(_) => "llm",
            Self::Http(_) => "http",
            Self::Code(_) => "code",
            Self::Transform(_) => "transform",
            Self::Condition(_) => "condition",
            Self::Switch(_) => "switch",
            Self::Parallel => "parallel",
            Self::Join => "join",
            Self::Map(_) => "map",
            Self::Delay(_) => "delay",
            Self::Approval(_) => "approval",
            Self::Workflow(_) => "workflow",
        }
    }

    /// Its templates, each with the field it is in (`url`, `headers.Authorization`,
    /// `body.url` for a map's body) and whether that field may read secrets.
    pub fn templates(&self) -> Vec<TemplateField<'_>> {
        let mut out = Vec::new();
        self.collect_templates("", &mut out);
        out
    }

    fn collect_templates<'a>(&'a self, prefix: &str, out: &mut Vec<TemplateField<'a>>) {
        let mut push = |field: String, template: &'a Template, secrets_allowed: bool| {
            out.push(TemplateField {
                field: format!("{prefix}{field}"),
                template,
                secrets_allowed,
                in_map_body: !prefix.is_empty(),
            });
        };
        match self {
            Self::Input(_) | Self::Condition(_) | Self::Switch(_) | Self::Parallel | Self::Join => {
            }
            Self::Output(node) => push("value".into(), &node.value, false),
            Self::Transform(node) => push("value".into(), &node.value, false),
            Self::Agent(node) => push("message".into(), &node.message, false),
            Self::Llm(node) => {
                push("prompt".into(), &node.prompt, false);
                if let Some(system) = &node.system {
                    push("system".into(), system, false);
                }
            }
            Self::Http(node) => {
                push("url".into(), &node.url, true);
                for (name, value) in &node.headers {
                    push(format!("headers.{name}"), value, true);
                }
                if let Some(body) = &node.body {
                    push("body".into(), body, true);
                }
            }
            Self::Code(node) => {
                for (name, value) in &node.env {
                    push(format!("env.{name}"), value, true);
                }
            }
            Self::Map(node) => {
                push("items".into(), &node.items, false);
                node.body.collect_templates("node.", out);
            }
            Self::Delay(node) => {
                if let Some(until) = &node.until {
                    push("until".into(), until, false);
                }
            }
            Self::Approval(node) => push("message".into(), &node.message, false),
            Self::Workflow(node) => push("input".into(), &node.input, false),
        }
    }

    /// True for a code node, or a map over one.
    pub fn uses_code(&self) -> bool {
        match self {
            Self::Code(_) => true,
            Self::Map(map) => map.body.uses_code(),
            _ => false,
        }
    }

    /// Its expression, for condition and switch nodes.
    pub fn expression(&self) -> Option<&Expression> {
        match self {
            Self::Condition(node) => Some(&node.expression),
            Self::Switch(node) => Some(&node.expression),
            _ => None,
        }
    }
}

/// A template and where it is.
#[derive(Debug, Clone)]
pub struct TemplateField<'a> {
    pub field: String,
    pub template: &'a Template,
    pub secrets_allowed: bool,
    pub in_map_body: bool,
}

/// The run's entry: its output is the run's input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InputNode {
    pub required: Vec<String>,
}

impl InputNode {
    /// Checks a run's input: an object holding every required key.
    pub fn check(&self, input: &Value) -> Result<(), String> {
        let Some(object) = input.as_object() else {
            return Err("the input must be a JSON object".into());
        };
        let missing: Vec<&str> = self
            .required
            .iter()
            .filter(|key| !object.contains_key(key.as_str()))
            .map(String::as_str)
            .collect();
        if missing.is_empty() {
            Ok(())
        } else {
            Err(format!("the input lacks {}", missing.join(", ")))
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct OutputNode {
    pub value: Template,
}

#[derive(Debug, Clone, PartialEq)]
pub struct AgentNode {
    /// The agent's id (a UUID) or name.
    pub agent: String,
    /// Renders to a string or an A2A message object.
    pub message: Template,
    pub stream: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub struct LlmNode {
    /// An LLM agent's id or name.
    pub agent: String,
    pub prompt: Template,
    pub system: Option<Template>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HttpMethod {
    Get,
    Post,
    Put,
    Patch,
    Delete,
    Head,
}

impl HttpMethod {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Get => "GET",
            Self::Post => "POST",
            Self::Put => "PUT",
            Self::Patch => "PATCH",
            Self::Delete => "DELETE",
            Self::Head => "HEAD",
        }
    }

    fn parse(text: &str) -> Option<Self> {
        [
            Self::Get,
            Self::Post,
            Self::Put,
            Self::Patch,
            Self::Delete,
            Self::Head,
        ]
        .into_iter()
        .find(|method| method.as_str() == text)
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct HttpNode {
    pub method: HttpMethod,
    pub url: Template,
    pub headers: BTreeMap<String, Template>,
    pub body: Option<Template>,
    /// Statuses that count as success; empty: any 2xx.
    pub expect_status: Vec<u16>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CodeLanguage {
    Python,
    JavaScript,
}

impl CodeLanguage {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Python => "python",
            Self::JavaScript => "javascript",
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct CodeNode {
    pub language: CodeLanguage,
    pub source: String,
    pub env: BTreeMap<String, Template>,
    /// Host names the code may reach; empty: no network.
    pub network: Vec<String>,
    pub memory_mb: u32,
    pub cpu: f64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct TransformNode {
    pub value: Template,
}

/// Outgoing edges carry `when` "true" or "false".
#[derive(Debug, Clone, PartialEq)]
pub struct ConditionNode {
    pub expression: Expression,
}

/// Outgoing edges carry `when`: one of `cases`, or "default".
#[derive(Debug, Clone, PartialEq)]
pub struct SwitchNode {
    pub expression: Expression,
    pub cases: Vec<String>,
}

/// Runs its body once per item of `items` (`item` and `index` in the body's templates).
#[derive(Debug, Clone, PartialEq)]
pub struct MapNode {
    pub items: Template,
    pub body: Box<NodeKind>,
    pub max_items: u32,
    pub concurrency: u32,
}

/// Waits `seconds`, or until the time `until` renders to (RFC 3339); exactly one is set.
#[derive(Debug, Clone, PartialEq)]
pub struct DelayNode {
    pub seconds: Option<u64>,
    pub until: Option<Template>,
}

/// Waits for a person's decision; outgoing edges may carry `when` "approved" or "rejected".
#[derive(Debug, Clone, PartialEq)]
pub struct ApprovalNode {
    /// E-mail addresses of users who may decide.
    pub users: Vec<String>,
    /// Users with at least this role may decide.
    pub role: Option<Role>,
    pub message: Template,
}

/// Runs another workflow.
#[derive(Debug, Clone, PartialEq)]
pub struct WorkflowNode {
    /// The workflow's id (a UUID) or name.
    pub workflow: String,
    pub input: Template,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Edge {
    pub from: String,
    pub to: String,
    pub when: Option<String>,
}

/// What starts a run.
// A parsed cron is large; a workflow has at most 20 triggers, and the engine matches on the
// fields directly, so they are not boxed.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq)]
pub enum Trigger {
    Webhook {
        id: String,
    },
    Schedule {
        id: String,
        schedule: CronSchedule,
        input: Value,
    },
    /// The workflow published as an agent: calling the agent over A2A starts a run.
    A2a {
        id: String,
        /// The agent's name (unique in the instance, as every agent's).
        agent: String,
        visibility: AgentVisibility,
        /// The agent's description (empty: the workflow's).
        description: String,
    },
}

impl Trigger {
    pub fn id(&self) -> &str {
        match self {
            Self::Webhook { id } | Self::Schedule { id, .. } | Self::A2a { id, .. } => id,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// A run's whole duration, at most.
    pub timeout: Duration,
    /// Steps a run may take, at most.
    pub max_steps: u32,
    /// Runs of this workflow at once, at most.
    pub max_concurrent_runs: u32,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            timeout: Duration::from_secs(86_400),
            max_steps: 1000,
            max_concurrent_runs: 10,
        }
    }
}

/// What a workflow names outside itself.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct References {
    pub agents: BTreeSet<String>,
    pub workflows: BTreeSet<String>,
    pub secrets: BTreeSet<String>,
    pub approver_users: BTreeSet<String>,
}

/// The node `input_node` answers for a definition built by hand without one.
static NO_INPUT: Node = Node {
    id: String::new(),
    name: None,
    timeout: None,
    retry: Retry {
        max_attempts: 1,
        backoff: Duration::from_secs(1),
        max_backoff: Duration::from_secs(300),
    },
    kind: NodeKind::Input(InputNode {
        required: Vec::new(),
    }),
};

impl Definition {
    /// Reads and checks a document; every problem found, or the definition.
    pub fn parse(json: &str) -> Result<Definition, Problems> {
        let mut checker = Checker::default();
        let definition = checker.document(json);
        match definition {
            Some(definition) if checker.problems.is_empty() => Ok(definition),
            _ => Err(Problems(checker.problems)),
        }
    }

    pub fn node(&self, id: &str) -> Option<&Node> {
        self.nodes.iter().find(|node| node.id == id)
    }

    /// The input node (a parsed definition has exactly one).
    pub fn input_node(&self) -> &Node {
        self.nodes
            .iter()
            .find(|node| matches!(node.kind, NodeKind::Input(_)))
            .unwrap_or(&NO_INPUT)
    }

    pub fn incoming(&self, id: &str) -> Vec<&Edge> {
        self.edges.iter().filter(|edge| edge.to == id).collect()
    }

    pub fn outgoing(&self, id: &str) -> Vec<&Edge> {
        self.edges.iter().filter(|edge| edge.from == id).collect()
    }

    /// The nodes from which `id` can be reached (not `id` itself).
    pub fn ancestors(&self, id: &str) -> BTreeSet<String> {
        ancestors(
            self.edges.iter().map(|e| (e.from.as_str(), e.to.as_str())),
            id,
        )
    }

    pub fn references(&self) -> References {
        let mut references = References::default();
        fn kind_refs(kind: &NodeKind, references: &mut References) {
            match kind {
                NodeKind::Agent(node) => {
                    references.agents.insert(node.agent.clone());
                }
                NodeKind::Llm(node) => {
                    references.agents.insert(node.agent.clone());
                }
                NodeKind::Workflow(node) => {
                    references.workflows.insert(node.workflow.clone());
                }
                NodeKind::Approval(node) => {
                    references.approver_users.extend(node.users.iter().cloned());
                }
                NodeKind::Map(node) => kind_refs(&node.body, references),
                _ => {}
            }
            for field in kind.templates() {
                references.secrets.extend(field.template.secret_names());
            }
        }
        for node in &self.nodes {
            kind_refs(&node.kind, &mut references);
        }
        references
    }

    pub fn has_schedule(&self) -> bool {
        self.triggers
            .iter()
            .any(|trigger| matches!(trigger, Trigger::Schedule { .. }))
    }

    /// True when a code node (or a map over one) is in it.
    pub fn uses_code(&self) -> bool {
        self.nodes.iter().any(|node| match &node.kind {
            NodeKind::Code(_) => true,
            NodeKind::Map(map) => matches!(*map.body, NodeKind::Code(_)),
            _ => false,
        })
    }

    pub fn trigger(&self, id: &str) -> Option<&Trigger> {
        self.triggers.iter().find(|trigger| trigger.id() == id)
    }

    /// The a2a trigger (a workflow has one at most): the agent it publishes the workflow as.
    pub fn a2a_trigger(&self) -> Option<&Trigger> {
        self.triggers
            .iter()
            .find(|trigger| matches!(trigger, Trigger::A2a { .. }))
    }
}

fn ancestors<'a>(edges: impl Iterator<Item = (&'a str, &'a str)>, id: &str) -> BTreeSet<String> {
    let mut parents: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for (from, to) in edges {
        parents.entry(to).or_default().push(from);
    }
    let mut seen = BTreeSet::new();
    let mut queue = VecDeque::from([id]);
    while let Some(current) = queue.pop_front() {
        for parent in parents.get(current).into_iter().flatten() {
            if seen.insert((*parent).to_owned()) {
                queue.push_back(parent);
            }
        }
    }
    seen.remove(id);
    seen
}

/// `[A-Za-z0-9_-]{1,64}`: node and trigger ids.
pub fn valid_id(id: &str) -> bool {
    (1..=64).contains(&id.len())
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

/// 1 to 100 characters of `[A-Za-z0-9 _.-]`: a workflow's name.
pub fn valid_name(name: &str) -> bool {
    (1..=MAX_NAME_CHARS).contains(&name.chars().count())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || " _.-".contains(c))
        && !name.trim().is_empty()
}

fn valid_hostname(host: &str) -> bool {
    let host = host.strip_prefix("*.").unwrap_or(host);
    (1..=253).contains(&host.len())
        && host.split('.').all(|label| {
            (1..=63).contains(&label.len())
                && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
                && !label.starts_with('-')
                && !label.ends_with('-')
        })
}

fn valid_email(email: &str) -> bool {
    email.chars().count() <= MAX_SHORT_CHARS
        && match email.split_once('@') {
            Some((local, domain)) => {
                !local.is_empty()
                    && !domain.is_empty()
                    && !domain.contains('@')
                    && !email.chars().any(char::is_whitespace)
            }
            None => false,
        }
}

/// A serde error's rule.
fn classify(message: &str) -> &'static str {
    if message.contains("missing field") {
        "missing_field"
    } else if message.contains("unknown field") {
        "unknown_field"
    } else {
        "bad_field"
    }
}

// Node bodies as written (before their templates and expressions are compiled).

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct RawInput {
    #[serde(default)]
    required: Vec<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct RawValue {
    value: Value,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct RawAgent {
    agent: String,
    message: Value,
    #[serde(default)]
    stream: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct RawLlm {
    agent: String,
    prompt: Value,
    #[serde(default)]
    system: Option<Value>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct RawHttp {
    method: String,
    url: Value,
    #[serde(default)]
    headers: BTreeMap<String, Value>,
    #[serde(default)]
    body: Option<Value>,
    #[serde(default)]
    expect_status: Vec<u16>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct RawCode {
    language: String,
    source: String,
    #[serde(default)]
    env: BTreeMap<String, Value>,
    #[serde(default)]
    network: Vec<String>,
    #[serde(default)]
    memory_mb: Option<u32>,
    #[serde(default)]
    cpu: Option<f64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct RawCondition {
    expression: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct RawSwitch {
    expression: String,
    cases: Vec<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawEmpty {}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct RawMap {
    items: Value,
    node: Map<String, Value>,
    #[serde(default)]
    max_items: Option<u32>,
    #[serde(default)]
    concurrency: Option<u32>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct RawDelay {
    #[serde(default)]
    seconds: Option<u64>,
    #[serde(default)]
    until: Option<Value>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct RawApprovers {
    #[serde(default)]
    users: Vec<String>,
    #[serde(default)]
    role: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct RawApproval {
    approvers: RawApprovers,
    message: Value,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct RawWorkflow {
    workflow: String,
    input: Value,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct RawRetry {
    #[serde(default)]
    max_attempts: Option<u32>,
    #[serde(default)]
    backoff_seconds: Option<u64>,
    #[serde(default)]
    max_backoff_seconds: Option<u64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct RawEdge {
    from: String,
    to: String,
    #[serde(default)]
    when: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct RawLimits {
    #[serde(default)]
    timeout_seconds: Option<u64>,
    #[serde(default)]
    max_steps: Option<u32>,
    #[serde(default)]
    max_concurrent_runs: Option<u32>,
}

/// The types a map's body may be.
const MAP_BODY_TYPES: [&str; 6] = ["agent", "llm", "http", "code", "transform", "workflow"];

/// Where problems are reported: a node (or a map's body) and its label.
struct Place {
    node: Option<String>,
    label: String,
}

#[derive(Default)]
struct Checker {
    problems: Vec<Problem>,
}

impl Checker {
    fn report(&mut self, node: Option<&str>, rule: &'static str, message: String) {
        self.problems.push(Problem {
            node: node.map(str::to_owned),
            rule,
            message,
        });
    }

    fn at(&mut self, place: &Place, rule: &'static str, message: impl fmt::Display) {
        self.problems.push(Problem {
            node: place.node.clone(),
            rule,
            message: format!("{}: {message}", place.label),
        });
    }

    fn range<T: PartialOrd + fmt::Display + Copy>(
        &mut self,
        place: &Place,
        field: &str,
        value: T,
        min: T,
        max: T,
    ) -> T {
        if value < min || value > max {
            self.at(
                place,
                "out_of_range",
                format!("`{field}` is {value}, not between {min} and {max}"),
            );
        }
        value
    }

    fn short(&mut self, place: &Place, field: &str, value: &str) {
        if value.is_empty() {
            self.at(place, "bad_field", format!("`{field}` is empty"));
        } else if value.chars().count() > MAX_SHORT_CHARS {
            self.at(
                place,
                "too_large",
                format!("`{field}` is longer than {MAX_SHORT_CHARS} characters"),
            );
        }
    }

    fn entries(&mut self, place: &Place, field: &str, count: usize) {
        if count > MAX_ENTRIES {
            self.at(
                place,
                "too_large",
                format!("`{field}` has more than {MAX_ENTRIES} entries"),
            );
        }
    }

    fn template(&mut self, place: &Place, field: &str, value: Value) -> Option<Template> {
        match Template::new(value) {
            Ok(template) => Some(template),
            Err(error) => {
                self.at(place, "bad_template", format!("`{field}`: {error}"));
                None
            }
        }
    }

    fn expression(&mut self, place: &Place, source: &str) -> Option<Expression> {
        match Expression::parse(source) {
            Ok(expression) => Some(expression),
            Err(error) => {
                self.at(place, "bad_expression", format!("`expression`: {error}"));
                None
            }
        }
    }

    fn raw<T: serde::de::DeserializeOwned>(
        &mut self,
        place: &Place,
        body: Map<String, Value>,
    ) -> Option<T> {
        match serde_json::from_value(Value::Object(body)) {
            Ok(raw) => Some(raw),
            Err(error) => {
                let message = error.to_string();
                self.at(place, classify(&message), message);
                None
            }
        }
    }

    fn document(&mut self, json: &str) -> Option<Definition> {
        if json.len() > MAX_DOCUMENT_BYTES {
            self.report(
                None,
                "too_large",
                format!("workflow: the document is larger than {MAX_DOCUMENT_BYTES} bytes"),
            );
            return None;
        }
        let value: Value = match serde_json::from_str(json) {
            Ok(value) => value,
            Err(error) => {
                self.report(None, "bad_json", format!("workflow: not JSON: {error}"));
                return None;
            }
        };
        let Value::Object(mut top) = value else {
            self.report(
                None,
                "bad_json",
                "workflow: the document is not a JSON object".into(),
            );
            return None;
        };
        check_strings(&Value::Object(top.clone()), self);
        let place = Place {
            node: None,
            label: "workflow".into(),
        };
        for key in top.keys() {
            if ![
                "name",
                "description",
                "nodes",
                "edges",
                "triggers",
                "limits",
            ]
            .contains(&key.as_str())
            {
                self.at(&place, "unknown_field", format!("unknown field `{key}`"));
            }
        }
        let name = match top.remove("name") {
            Some(Value::String(name)) => {
                if !valid_name(&name) {
                    self.at(
                        &place,
                        "bad_name",
                        format!("the name must be 1 to {MAX_NAME_CHARS} characters of letters, digits, space, `_`, `.` and `-`"),
                    );
                }
                name
            }
            Some(_) => {
                self.at(&place, "bad_field", "`name` is not a string");
                String::new()
            }
            None => {
                self.at(&place, "missing_field", "missing field `name`");
                String::new()
            }
        };
        let description = match top.remove("description") {
            Some(Value::String(text)) => {
                if text.chars().count() > MAX_DESCRIPTION_CHARS {
                    self.at(
                        &place,
                        "too_large",
                        format!(
                            "the description is longer than {MAX_DESCRIPTION_CHARS} characters"
                        ),
                    );
                }
                text
            }
            None | Some(Value::Null) => String::new(),
            Some(_) => {
                self.at(&place, "bad_field", "`description` is not a string");
                String::new()
            }
        };
        let nodes = match top.remove("nodes") {
            Some(Value::Array(nodes)) => nodes,
            Some(_) => {
                self.at(&place, "bad_field", "`nodes` is not a list");
                Vec::new()
            }
            None => {
                self.at(&place, "missing_field", "missing field `nodes`");
                Vec::new()
            }
        };
        let edges = match top.remove("edges") {
            Some(Value::Array(edges)) => edges,
            None | Some(Value::Null) => Vec::new(),
            Some(_) => {
                self.at(&place, "bad_field", "`edges` is not a list");
                Vec::new()
            }
        };
        let triggers = match top.remove("triggers") {
            Some(Value::Array(triggers)) => triggers,
            None | Some(Value::Null) => Vec::new(),
            Some(_) => {
                self.at(&place, "bad_field", "`triggers` is not a list");
                Vec::new()
            }
        };
        if nodes.len() > MAX_NODES {
            self.at(&place, "too_large", format!("more than {MAX_NODES} nodes"));
            return None;
        }
        if edges.len() > MAX_EDGES {
            self.at(&place, "too_large", format!("more than {MAX_EDGES} edges"));
            return None;
        }
        if triggers.len() > MAX_TRIGGERS {
            self.at(
                &place,
                "too_large",
                format!("more than {MAX_TRIGGERS} triggers"),
            );
            return None;
        }
        let limits = match top.remove("limits") {
            None | Some(Value::Null) => Limits::default(),
            Some(Value::Object(limits)) => self.limits(&place, limits),
            Some(_) => {
                self.at(&place, "bad_field", "`limits` is not an object");
                Limits::default()
            }
        };

        // Nodes: ids first (a node whose body is wrong still exists for the graph checks).
        let mut ids: Vec<(String, &'static str)> = Vec::new();
        let mut parsed: Vec<Node> = Vec::new();
        let mut seen = BTreeSet::new();
        for (index, node) in nodes.into_iter().enumerate() {
            if let Some((id, type_name, node)) = self.node(index, node) {
                if !seen.insert(id.clone()) {
                    self.report(
                        Some(&id),
                        "duplicate_id",
                        format!("node '{id}': the id is used by another node"),
                    );
                    continue;
                }
                ids.push((id, type_name));
                if let Some(node) = node {
                    parsed.push(node);
                }
            }
        }
        let edges = self.edges(edges, &seen);
        let triggers = self.triggers(triggers);
        self.graph(&ids, &edges);
        self.references(&parsed, &edges);
        if let Some(input) = parsed.iter().find_map(|node| match &node.kind {
            NodeKind::Input(input) => Some(input),
            _ => None,
        }) {
            for trigger in &triggers {
                if let Trigger::Schedule {
                    id, input: value, ..
                } = trigger
                    && let Err(error) = input.check(value)
                {
                    self.report(
                        None,
                        "bad_trigger_input",
                        format!("trigger '{id}': its input does not fit the input node: {error}"),
                    );
                }
            }
        }
        Some(Definition {
            name,
            description,
            nodes: parsed,
            edges,
            triggers,
            limits,
        })
    }

    fn limits(&mut self, place: &Place, limits: Map<String, Value>) -> Limits {
        let defaults = Limits::default();
        let Some(raw) = self.raw::<RawLimits>(
            &Place {
                node: place.node.clone(),
                label: "workflow limits".into(),
            },
            limits,
        ) else {
            return defaults;
        };
        let place = Place {
            node: None,
            label: "workflow limits".into(),
        };
        let timeout = raw
            .timeout_seconds
            .map(|s| self.range(&place, "timeoutSeconds", s, 1, 2_592_000))
            .map(Duration::from_secs)
            .unwrap_or(defaults.timeout);
        let max_steps = raw
            .max_steps
            .map(|n| self.range(&place, "maxSteps", n, 1, 10_000))
            .unwrap_or(defaults.max_steps);
        let max_concurrent_runs = raw
            .max_concurrent_runs
            .map(|n| self.range(&place, "maxConcurrentRuns", n, 1, 100))
            .unwrap_or(defaults.max_concurrent_runs);
        Limits {
            timeout,
            max_steps,
            max_concurrent_runs,
        }
    }

    /// One node: its id and type (when readable) and the node (when entirely right).
    fn node(&mut self, index: usize, value: Value) -> Option<(String, &'static str, Option<Node>)> {
        let Value::Object(mut object) = value else {
            self.report(
                None,
                "bad_field",
                format!("node #{}: not an object", index + 1),
            );
            return None;
        };
        let id = match object.remove("id") {
            Some(Value::String(id)) => id,
            Some(_) => {
                self.report(
                    None,
                    "bad_id",
                    format!("node #{}: `id` is not a string", index + 1),
                );
                return None;
            }
            None => {
                self.report(
                    None,
                    "missing_field",
                    format!("node #{}: missing field `id`", index + 1),
                );
                return None;
            }
        };
        if !valid_id(&id) {
            let shown: String = id.chars().take(64).collect();
            self.report(
                None,
                "bad_id",
                format!(
                    "node #{} ({shown:?}): an id is 1 to 64 of A-Z a-z 0-9 _ -",
                    index + 1
                ),
            );
            return None;
        }
        let type_text = match object.remove("type") {
            Some(Value::String(text)) => text,
            Some(_) => {
                self.report(
                    Some(&id),
                    "bad_field",
                    format!("node '{id}': `type` is not a string"),
                );
                return Some((id, "unknown", None));
            }
            None => {
                self.report(
                    Some(&id),
                    "missing_field",
                    format!("node '{id}': missing field `type`"),
                );
                return Some((id, "unknown", None));
            }
        };
        let Some(type_name) = canonical_type(&type_text) else {
            let shown: String = type_text.chars().take(40).collect();
            self.report(
                Some(&id),
                "unknown_type",
                format!("node '{id}': unknown type {shown:?}"),
            );
            return Some((id, "unknown", None));
        };
        let place = Place {
            node: Some(id.clone()),
            label: format!("node '{id}' ({type_name})"),
        };
        let name = match object.remove("name") {
            None | Some(Value::Null) => None,
            Some(Value::String(name)) => {
                if name.chars().count() > MAX_NAME_CHARS {
                    self.at(
                        &place,
                        "too_large",
                        format!("`name` is longer than {MAX_NAME_CHARS} characters"),
                    );
                }
                Some(name)
            }
            Some(_) => {
                self.at(&place, "bad_field", "`name` is not a string");
                None
            }
        };
        let timeout = match object.remove("timeoutSeconds") {
            None | Some(Value::Null) => None,
            Some(value) => match value.as_u64() {
                Some(seconds) => Some(Duration::from_secs(self.range(
                    &place,
                    "timeoutSeconds",
                    seconds,
                    1,
                    86_400,
                ))),
                None => {
                    self.at(
                        &place,
                        "bad_field",
                        "`timeoutSeconds` is not a whole number",
                    );
                    None
                }
            },
        };
        let retry = match object.remove("retry") {
            None | Some(Value::Null) => Retry::default(),
            Some(Value::Object(retry)) => self.retry(&place, retry),
            Some(_) => {
                self.at(&place, "bad_field", "`retry` is not an object");
                Retry::default()
            }
        };
        let before = self.problems.len();
        let kind = self.kind(&place, type_name, object);
        let node = match kind {
            Some(kind) if self.problems.len() == before => Some(Node {
                id: id.clone(),
                name,
                timeout,
                retry,
                kind,
            }),
            _ => None,
        };
        Some((id, type_name, node))
    }

    fn retry(&mut self, place: &Place, retry: Map<String, Value>) -> Retry {
        let defaults = Retry::default();
        let Some(raw) = self.raw::<RawRetry>(place, retry) else {
            return defaults;
        };
        let max_attempts = raw
            .max_attempts
            .map(|n| self.range(place, "retry.maxAttempts", n, 1, 10))
            .unwrap_or(defaults.max_attempts);
        let backoff = raw
            .backoff_seconds
            .map(|s| Duration::from_secs(self.range(place, "retry.backoffSeconds", s, 0, 3600)))
            .unwrap_or(defaults.backoff);
        let max_backoff = raw
            .max_backoff_seconds
            .map(|s| {
                Duration::from_secs(self.range(place, "retry.maxBackoffSeconds", s, 0, 86_400))
            })
            .unwrap_or(defaults.max_backoff);
        Retry {
            max_attempts,
            backoff,
            max_backoff,
        }
    }

    /// A node's body by type; `None` when something is wrong (reported).
    fn kind(
        &mut self,
        place: &Place,
        type_name: &'static str,
        body: Map<String, Value>,
    ) -> Option<NodeKind> {
        let kind = match type_name {
            "input" => {
                let raw: RawInput = self.raw(place, body)?;
                self.entries(place, "required", raw.required.len());
                for field in &raw.required {
                    self.short(place, "required", field);
                }
                NodeKind::Input(InputNode {
                    required: raw.required,
                })
            }
            "output" => {
                let raw: RawValue = self.raw(place, body)?;
                NodeKind::Output(OutputNode {
                    value: self.template(place, "value", raw.value)?,
                })
            }
            "transform" => {
                let raw: RawValue = self.raw(place, body)?;
                NodeKind::Transform(TransformNode {
                    value: self.template(place, "value", raw.value)?,
                })
            }
            "agent" => {
                let raw: RawAgent = self.raw(place, body)?;
                self.short(place, "agent", &raw.agent);
                NodeKind::Agent(AgentNode {
                    agent: raw.agent,
                    message: self.template(place, "message", raw.message)?,
                    stream: raw.stream,
                })
            }
            "llm" => {
                let raw: RawLlm = self.raw(place, body)?;
                self.short(place, "agent", &raw.agent);
                let prompt = self.template(place, "prompt", raw.prompt);
                let system = match raw.system {
                    Some(system) => Some(self.template(place, "system", system)?),
                    None => None,
                };
                NodeKind::Llm(LlmNode {
                    agent: raw.agent,
                    prompt: prompt?,
                    system,
                })
            }
            "http" => {
                let raw: RawHttp = self.raw(place, body)?;
                let method = HttpMethod::parse(&raw.method);
                if method.is_none() {
                    self.at(
                        place,
                        "bad_field",
                        "`method` is one of GET, POST, PUT, PATCH, DELETE, HEAD",
                    );
                }
                self.entries(place, "headers", raw.headers.len());
                self.entries(place, "expectStatus", raw.expect_status.len());
                for status in &raw.expect_status {
                    self.range(place, "expectStatus", *status, 100, 599);
                }
                let url = self.template(place, "url", raw.url);
                let mut headers = BTreeMap::new();
                let mut ok = true;
                for (name, value) in raw.headers {
                    self.short(place, "headers", &name);
                    if !name
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || "!#$%&'*+-.^_`|~".contains(c))
                    {
                        self.at(
                            place,
                            "bad_field",
                            format!("header name {name:?} is not a token"),
                        );
                    }
                    match self.template(place, &format!("headers.{name}"), value) {
                        Some(template) => {
                            headers.insert(name, template);
                        }
                        None => ok = false,
                    }
                }
                let body = match raw.body {
                    Some(body) => Some(self.template(place, "body", body)?),
                    None => None,
                };
                if !ok {
                    return None;
                }
                NodeKind::Http(HttpNode {
                    method: method?,
                    url: url?,
                    headers,
                    body,
                    expect_status: raw.expect_status,
                })
            }
            "code" => {
                let raw: RawCode = self.raw(place, body)?;
                let language = match raw.language.as_str() {
                    "python" => Some(CodeLanguage::Python),
                    "javascript" => Some(CodeLanguage::JavaScript),
                    _ => {
                        self.at(place, "bad_field", "`language` is python or javascript");
                        None
                    }
                };
                if raw.source.len() > MAX_SOURCE_BYTES {
                    self.at(
                        place,
                        "too_large",
                        format!("`source` is larger than {MAX_SOURCE_BYTES} bytes"),
                    );
                }
                if raw.source.trim().is_empty() {
                    self.at(place, "bad_field", "`source` is empty");
                }
                self.entries(place, "env", raw.env.len());
                self.entries(place, "network", raw.network.len());
                for host in &raw.network {
                    if !valid_hostname(host) {
                        self.at(
                            place,
                            "bad_field",
                            format!("`network`: {host:?} is not a host name"),
                        );
                    }
                }
                let memory_mb =
                    self.range(place, "memoryMb", raw.memory_mb.unwrap_or(128), 16, 2048);
                let cpu = raw.cpu.unwrap_or(0.5);
                if !(0.1..=4.0).contains(&cpu) {
                    self.at(
                        place,
                        "out_of_range",
                        format!("`cpu` is {cpu}, not between 0.1 and 4"),
                    );
                }
                let mut env = BTreeMap::new();
                let mut ok = true;
                for (name, value) in raw.env {
                    self.short(place, "env", &name);
                    if !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
                        || name.starts_with(|c: char| c.is_ascii_digit())
                    {
                        self.at(
                            place,
                            "bad_field",
                            format!("`env`: {name:?} is not a variable name"),
                        );
                    } else if crate::agents::hosted::bundle::reserved_variable(&name)
                        || name == "PWD"
                    {
                        self.at(
                            place,
                            "bad_field",
                            format!(
                                "`env`: {name} is set by Hive (not HIVE_*, LD_*, SSL_CERT_*, *_PROXY, PATH, HOME, TMPDIR, PWD, PYTHONPATH or PYTHONHOME)"
                            ),
                        );
                    }
                    match self.template(place, &format!("env.{name}"), value) {
                        Some(template) => {
                            env.insert(name, template);
                        }
                        None => ok = false,
                    }
                }
                if !ok {
                    return None;
                }
                NodeKind::Code(CodeNode {
                    language: language?,
                    source: raw.source,
                    env,
                    network: raw.network,
                    memory_mb,
                    cpu,
                })
            }
            "condition" => {
                let raw: RawCondition = self.raw(place, body)?;
                NodeKind::Condition(ConditionNode {
                    expression: self.expression(place, &raw.expression)?,
                })
            }
            "switch" => {
                let raw: RawSwitch = self.raw(place, body)?;
                self.entries(place, "cases", raw.cases.len());
                if raw.cases.is_empty() {
                    self.at(place, "bad_field", "`cases` is empty");
                }
                let mut seen = BTreeSet::new();
                for case in &raw.cases {
                    self.short(place, "cases", case);
                    if case == "default" {
                        self.at(
                            place,
                            "bad_branch",
                            "\"default\" is not a case: it is the edge taken when no case matches",
                        );
                    }
                    if !seen.insert(case.as_str()) {
                        self.at(
                            place,
                            "duplicate_case",
                            format!("case {case:?} is listed twice"),
                        );
                    }
                }
                NodeKind::Switch(SwitchNode {
                    expression: self.expression(place, &raw.expression)?,
                    cases: raw.cases,
                })
            }
            "parallel" => {
                let _: RawEmpty = self.raw(place, body)?;
                NodeKind::Parallel
            }
            "join" => {
                let _: RawEmpty = self.raw(place, body)?;
                NodeKind::Join
            }
            "map" => {
                let raw: RawMap = self.raw(place, body)?;
                let max_items =
                    self.range(place, "maxItems", raw.max_items.unwrap_or(100), 1, 1000);
                let concurrency =
                    self.range(place, "concurrency", raw.concurrency.unwrap_or(4), 1, 16);
                let items = self.template(place, "items", raw.items);
                let body = self.map_body(place, raw.node);
                NodeKind::Map(MapNode {
                    items: items?,
                    body: Box::new(body?),
                    max_items,
                    concurrency,
                })
            }
            "delay" => {
                let raw: RawDelay = self.raw(place, body)?;
                match (raw.seconds, raw.until) {
                    (Some(seconds), None) => {
                        self.range(place, "seconds", seconds, 1, 2_592_000);
                        NodeKind::Delay(DelayNode {
                            seconds: Some(seconds),
                            until: None,
                        })
                    }
                    (None, Some(until)) => NodeKind::Delay(DelayNode {
                        seconds: None,
                        until: Some(self.template(place, "until", until)?),
                    }),
                    _ => {
                        self.at(
                            place,
                            "bad_field",
                            "exactly one of `seconds` and `until` is set",
                        );
                        return None;
                    }
                }
            }
            "approval" => {
                let raw: RawApproval = self.raw(place, body)?;
                self.entries(place, "approvers.users", raw.approvers.users.len());
                for user in &raw.approvers.users {
                    if !valid_email(user) {
                        self.at(
                            place,
                            "bad_field",
                            format!("`approvers.users`: {user:?} is not an e-mail address"),
                        );
                    }
                }
                let role = match raw.approvers.role.as_deref() {
                    None => None,
                    Some(text) => match text.parse::<Role>() {
                        Ok(role) => Some(role),
                        Err(_) => {
                            self.at(
                                place,
                                "bad_field",
                                "`approvers.role` is viewer, operator or admin",
                            );
                            return None;
                        }
                    },
                };
                if raw.approvers.users.is_empty() && role.is_none() {
                    self.at(
                        place,
                        "missing_field",
                        "`approvers` names `users` or a `role`",
                    );
                }
                NodeKind::Approval(ApprovalNode {
                    users: raw.approvers.users,
                    role,
                    message: self.template(place, "message", raw.message)?,
                })
            }
            "workflow" => {
                let raw: RawWorkflow = self.raw(place, body)?;
                self.short(place, "workflow", &raw.workflow);
                NodeKind::Workflow(WorkflowNode {
                    workflow: raw.workflow,
                    input: self.template(place, "input", raw.input)?,
                })
            }
            _ => {
                self.at(place, "unknown_type", format!("unknown type {type_name:?}"));
                return None;
            }
        };
        Some(kind)
    }

    fn map_body(&mut self, place: &Place, mut body: Map<String, Value>) -> Option<NodeKind> {
        let body_type = match body.remove("type") {
            Some(Value::String(text)) => text,
            _ => {
                self.at(place, "missing_field", "`node` (the body) has no `type`");
                return None;
            }
        };
        let type_name = canonical_type(&body_type).filter(|t| MAP_BODY_TYPES.contains(t));
        let Some(type_name) = type_name else {
            let shown: String = body_type.chars().take(40).collect();
            self.at(
                place,
                "bad_map_body",
                format!(
                    "the body's type {shown:?} is not one of {}",
                    MAP_BODY_TYPES.join(", ")
                ),
            );
            return None;
        };
        let body_place = Place {
            node: place.node.clone(),
            label: format!("{} body ({type_name})", place.label),
        };
        self.kind(&body_place, type_name, body)
    }

    fn edges(&mut self, edges: Vec<Value>, ids: &BTreeSet<String>) -> Vec<Edge> {
        let mut out: Vec<Edge> = Vec::new();
        for (index, value) in edges.into_iter().enumerate() {
            let place = Place {
                node: None,
                label: format!("edge #{}", index + 1),
            };
            let Value::Object(object) = value else {
                self.at(&place, "bad_field", "not an object");
                continue;
            };
            let Some(raw) = self.raw::<RawEdge>(&place, object) else {
                continue;
            };
            let label = format!("edge '{}' → '{}'", raw.from, raw.to);
            let mut ok = true;
            for end in [&raw.from, &raw.to] {
                if !ids.contains(end) {
                    let shown: String = end.chars().take(64).collect();
                    self.report(
                        Some(&shown),
                        "unknown_node",
                        format!("{label}: there is no node '{shown}'"),
                    );
                    ok = false;
                }
            }
            if raw.from == raw.to {
                self.report(
                    Some(&raw.from),
                    "self_edge",
                    format!("{label}: a node cannot lead to itself"),
                );
                ok = false;
            }
            if out
                .iter()
                .any(|edge| edge.from == raw.from && edge.to == raw.to)
            {
                self.report(
                    Some(&raw.from),
                    "duplicate_edge",
                    format!("{label}: listed twice"),
                );
                ok = false;
            }
            if let Some(when) = &raw.when
                && when.chars().count() > MAX_SHORT_CHARS
            {
                self.report(
                    Some(&raw.from),
                    "too_large",
                    format!("{label}: `when` is too long"),
                );
                ok = false;
            }
            if ok {
                out.push(Edge {
                    from: raw.from,
                    to: raw.to,
                    when: raw.when,
                });
            }
        }
        out
    }

    fn triggers(&mut self, triggers: Vec<Value>) -> Vec<Trigger> {
        let mut out: Vec<Trigger> = Vec::new();
        for (index, value) in triggers.into_iter().enumerate() {
            let mut place = Place {
                node: None,
                label: format!("trigger #{}", index + 1),
            };
            let Value::Object(mut object) = value else {
                self.at(&place, "bad_field", "not an object");
                continue;
            };
            let id = match object.remove("id") {
                Some(Value::String(id)) if valid_id(&id) => id,
                Some(_) => {
                    self.at(&place, "bad_id", "an id is 1 to 64 of A-Z a-z 0-9 _ -");
                    continue;
                }
                None => {
                    self.at(&place, "missing_field", "missing field `id`");
                    continue;
                }
            };
            place.label = format!("trigger '{id}'");
            let type_name = match object.remove("type") {
                Some(Value::String(text)) => text,
                _ => {
                    self.at(&place, "missing_field", "missing field `type`");
                    continue;
                }
            };
            let trigger = match type_name.as_str() {
                "webhook" => {
                    if let Some(key) = object.keys().next() {
                        self.at(&place, "unknown_field", format!("unknown field `{key}`"));
                        continue;
                    }
                    Trigger::Webhook { id: id.clone() }
                }
                "a2a" => {
                    let Some(trigger) = self.a2a_trigger(&place, &id, object) else {
                        continue;
                    };
                    if out.iter().any(|t| matches!(t, Trigger::A2a { .. })) {
                        self.at(
                            &place,
                            "duplicate_a2a",
                            "a workflow is published as one agent at most: one a2a trigger",
                        );
                        continue;
                    }
                    trigger
                }
                "schedule" => {
                    let cron = object.remove("cron");
                    let timezone = object.remove("timezone");
                    let input = object.remove("input").unwrap_or(Value::Object(Map::new()));
                    if let Some(key) = object.keys().next() {
                        self.at(&place, "unknown_field", format!("unknown field `{key}`"));
                        continue;
                    }
                    let Some(Value::String(cron)) = cron else {
                        self.at(&place, "missing_field", "missing field `cron` (a string)");
                        continue;
                    };
                    let timezone = match timezone {
                        None | Some(Value::Null) => "UTC".to_owned(),
                        Some(Value::String(zone)) => zone,
                        Some(_) => {
                            self.at(&place, "bad_field", "`timezone` is not a string");
                            continue;
                        }
                    };
                    if !input.is_object() {
                        self.at(&place, "bad_trigger_input", "`input` is not an object");
                        continue;
                    }
                    match CronSchedule::parse(&cron, &timezone) {
                        Ok(schedule) => Trigger::Schedule {
                            id: id.clone(),
                            schedule,
                            input,
                        },
                        Err(error) => {
                            self.at(&place, "bad_schedule", error);
                            continue;
                        }
                    }
                }
                other => {
                    let shown: String = other.chars().take(40).collect();
                    self.at(
                        &place,
                        "unknown_type",
                        format!("unknown trigger type {shown:?} (webhook, schedule or a2a)"),
                    );
                    continue;
                }
            };
            if out.iter().any(|t| t.id() == id) {
                self.at(
                    &place,
                    "duplicate_trigger",
                    "the id is used by another trigger",
                );
                continue;
            }
            out.push(trigger);
        }
        out
    }

    /// An a2a trigger's fields: `agent` (an agent's name), `visibility` (default `private`),
    /// `description` (default empty).
    fn a2a_trigger(
        &mut self,
        place: &Place,
        id: &str,
        mut object: Map<String, Value>,
    ) -> Option<Trigger> {
        let agent = object.remove("agent");
        let visibility = object.remove("visibility");
        let description = object.remove("description");
        if let Some(key) = object.keys().next() {
            self.at(place, "unknown_field", format!("unknown field `{key}`"));
            return None;
        }
        let agent = match agent {
            Some(Value::String(agent)) if crate::agents::valid_agent_name(&agent) => agent,
            Some(_) => {
                self.at(
                    place,
                    "bad_agent_name",
                    "`agent` is an agent's name: 1 to 64 of a-z 0-9 and inner dashes",
                );
                return None;
            }
            None => {
                self.at(
                    place,
                    "missing_field",
                    "missing field `agent` (the name of the agent it publishes)",
                );
                return None;
            }
        };
        let visibility = match visibility {
            None | Some(Value::Null) => AgentVisibility::Private,
            Some(Value::String(word)) => match word.parse() {
                Ok(visibility) => visibility,
                Err(_) => {
                    self.at(
                        place,
                        "bad_field",
                        "`visibility` is private, federation or public",
                    );
                    return None;
                }
            },
            Some(_) => {
                self.at(
                    place,
                    "bad_field",
                    "`visibility` is private, federation or public",
                );
                return None;
            }
        };
        let description = match description {
            None | Some(Value::Null) => String::new(),
            Some(Value::String(text)) => text,
            Some(_) => {
                self.at(place, "bad_field", "`description` is not a string");
                return None;
            }
        };
        if description.chars().count() > MAX_DESCRIPTION_CHARS
            || description.chars().any(|c| c.is_control() && c != '\n')
        {
            self.at(
                place,
                "too_large",
                format!(
                    "`description` is at most {MAX_DESCRIPTION_CHARS} characters without control characters"
                ),
            );
            return None;
        }
        Some(Trigger::A2a {
            id: id.to_owned(),
            agent,
            visibility,
            description,
        })
    }

    /// The graph's rules: one input, reachability, no cycle, at most one output.
    fn graph(&mut self, ids: &[(String, &'static str)], edges: &[Edge]) {
        let inputs: Vec<&str> = ids
            .iter()
            .filter(|(_, t)| *t == "input")
            .map(|(id, _)| id.as_str())
            .collect();
        match inputs.as_slice() {
            [] => self.report(
                None,
                "missing_input",
                "workflow: there is no input node".into(),
            ),
            [_] => {}
            [_, rest @ ..] => {
                for id in rest {
                    self.report(
                        Some(id),
                        "duplicate_input",
                        format!("node '{id}' (input): a workflow has exactly one input node"),
                    );
                }
            }
        }
        let outputs: Vec<&str> = ids
            .iter()
            .filter(|(_, t)| *t == "output")
            .map(|(id, _)| id.as_str())
            .collect();
        for id in outputs.iter().skip(1) {
            self.report(
                Some(id),
                "duplicate_output",
                format!("node '{id}' (output): a workflow has at most one output node"),
            );
        }
        if let Some(input) = inputs.first() {
            for edge in edges.iter().filter(|edge| edge.to == *input) {
                self.report(
                    Some(input),
                    "input_has_incoming",
                    format!(
                        "node '{input}' (input): the input node has an incoming edge from '{}'",
                        edge.from
                    ),
                );
            }
            // Reachability from the input.
            let mut reached = BTreeSet::from([*input]);
            let mut queue = VecDeque::from([*input]);
            while let Some(current) = queue.pop_front() {
                for edge in edges.iter().filter(|edge| edge.from == current) {
                    if reached.insert(edge.to.as_str()) {
                        queue.push_back(edge.to.as_str());
                    }
                }
            }
            for (id, type_name) in ids {
                if !reached.contains(id.as_str()) {
                    let why = if edges.iter().any(|edge| edge.to == *id) {
                        format!("it cannot be reached from the input node '{input}'")
                    } else {
                        "it has no incoming edge".to_owned()
                    };
                    self.report(
                        Some(id),
                        "unreachable",
                        format!("node '{id}' ({type_name}): unreachable: {why}"),
                    );
                }
            }
        }
        // Cycles: a depth-first search; each back edge closes one.
        let mut state: BTreeMap<&str, u8> = BTreeMap::new(); // 1: on the path, 2: done
        for (start, _) in ids {
            if state.contains_key(start.as_str()) {
                continue;
            }
            let mut path: Vec<&str> = vec![start.as_str()];
            let mut stack: Vec<(&str, usize)> = vec![(start.as_str(), 0)];
            state.insert(start.as_str(), 1);
            while let Some((current, next)) = stack.pop() {
                let children: Vec<&str> = edges
                    .iter()
                    .filter(|edge| edge.from == current)
                    .map(|edge| edge.to.as_str())
                    .collect();
                if let Some(child) = children.get(next) {
                    stack.push((current, next + 1));
                    match state.get(child) {
                        None => {
                            state.insert(child, 1);
                            path.push(child);
                            stack.push((child, 0));
                        }
                        Some(1) => {
                            let from = path.iter().position(|id| id == child).unwrap_or(0);
                            let mut cycle: Vec<&str> = path[from..].to_vec();
                            cycle.push(child);
                            self.report(
                                Some(child),
                                "cycle",
                                format!(
                                    "node '{child}': cycle outside a loop: {}; to repeat work, use a map node",
                                    cycle.join(" → ")
                                ),
                            );
                        }
                        _ => {}
                    }
                } else {
                    state.insert(current, 2);
                    path.pop();
                }
            }
        }
    }

    /// Branch labels, `nodes.X` references, `item`/`index` and secrets.
    fn references(&mut self, nodes: &[Node], edges: &[Edge]) {
        for node in nodes {
            let label = format!("node '{}' ({})", node.id, node.kind.type_name());
            let out: Vec<&Edge> = edges.iter().filter(|e| e.from == node.id).collect();
            // Branch labels.
            let allowed: Option<Vec<&str>> = match &node.kind {
                NodeKind::Condition(_) => Some(vec!["true", "false"]),
                NodeKind::Switch(switch) => Some(
                    switch
                        .cases
                        .iter()
                        .map(String::as_str)
                        .chain(["default"])
                        .collect(),
                ),
                NodeKind::Approval(_) => Some(vec!["approved", "rejected"]),
                _ => None,
            };
            let required = matches!(node.kind, NodeKind::Condition(_) | NodeKind::Switch(_));
            for edge in out {
                match (&edge.when, &allowed) {
                    (None, Some(labels)) if required => self.report(
                        Some(&node.id),
                        "bad_branch",
                        format!("{label}: the edge to '{}' needs `when`: one of {}", edge.to, labels.join(", ")),
                    ),
                    (Some(when), Some(labels)) if !labels.contains(&when.as_str()) => self.report(
                        Some(&node.id),
                        "bad_branch",
                        format!("{label}: the edge to '{}' has `when` {when:?}, not one of {}", edge.to, labels.join(", ")),
                    ),
                    (Some(_), None) => self.report(
                        Some(&node.id),
                        "bad_branch",
                        format!("{label}: the edge to '{}' has `when`, which only condition, switch and approval edges take", edge.to),
                    ),
                    _ => {}
                }
            }
            let ancestors = ancestors(
                edges.iter().map(|e| (e.from.as_str(), e.to.as_str())),
                &node.id,
            );
            let check_node_ref = |checker: &mut Checker, id: &str, where_: &str| {
                if ancestors.contains(id) {
                    return;
                }
                if nodes.iter().any(|n| n.id == id) {
                    checker.report(
                        Some(&node.id),
                        "not_upstream",
                        format!(
                            "{label}: {where_} reads node '{id}', which does not run before it"
                        ),
                    );
                } else {
                    checker.report(
                        Some(&node.id),
                        "unknown_node",
                        format!("{label}: {where_} reads node '{id}', which does not exist"),
                    );
                }
            };
            for field in node.kind.templates() {
                for path in field.template.paths() {
                    let where_ = format!("`{}` (`{}`)", field.field, path);
                    self.template_path(node, &label, &field, &path, &where_, &check_node_ref);
                }
            }
            if let Some(expression) = node.kind.expression() {
                let where_ = "`expression`".to_owned();
                for root in expression.roots() {
                    if root == "secrets" {
                        self.report(
                            Some(&node.id),
                            "secret_not_allowed_here",
                            format!("{label}: {where_} reads secrets; only http url, headers and body and code env may"),
                        );
                    } else if root == "item" || root == "index" {
                        self.report(
                            Some(&node.id),
                            "item_outside_map",
                            format!("{label}: {where_} reads `{root}`, which exists only in a map's body"),
                        );
                    } else if !VARIABLES.contains(&root.as_str()) {
                        self.report(
                            Some(&node.id),
                            "bad_expression",
                            format!(
                                "{label}: {where_} reads `{root}`; it may read {}",
                                VARIABLES.join(", ")
                            ),
                        );
                    }
                }
                for id in expression.node_ids() {
                    check_node_ref(self, &id, &where_);
                }
            }
        }
    }

    fn template_path(
        &mut self,
        node: &Node,
        label: &str,
        field: &TemplateField<'_>,
        path: &TemplatePath,
        where_: &str,
        check_node_ref: &dyn Fn(&mut Checker, &str, &str),
    ) {
        match path.root.as_str() {
            "secrets" if !field.secrets_allowed => self.report(
                Some(&node.id),
                "secret_not_allowed_here",
                format!("{label}: {where_} reads a secret; only http url, headers and body and code env may"),
            ),
            "item" | "index" if !field.in_map_body => self.report(
                Some(&node.id),
                "item_outside_map",
                format!("{label}: {where_} reads `{}`, which exists only in a map's body", path.root),
            ),
            "nodes" => {
                if let Some(id) = path.node_id() {
                    check_node_ref(self, id, where_);
                }
            }
            _ => {}
        }
    }
}

/// The type names, with `loop` for `map`.
fn canonical_type(text: &str) -> Option<&'static str> {
    Some(match text {
        "input" => "input",
        "output" => "output",
        "agent" => "agent",
        "llm" => "llm",
        "http" => "http",
        "code" => "code",
        "transform" => "transform",
        "condition" => "condition",
        "switch" => "switch",
        "parallel" => "parallel",
        "join" => "join",
        "map" | "loop" => "map",
        "delay" => "delay",
        "approval" => "approval",
        "workflow" => "workflow",
        _ => return None,
    })
}

/// Refuses any string (or object key) longer than [`MAX_STRING_BYTES`].
fn check_strings(value: &Value, checker: &mut Checker) {
    let mut stack = vec![value];
    let mut reported = false;
    while let Some(value) = stack.pop() {
        let too_long = match value {
            Value::String(text) => text.len() > MAX_STRING_BYTES,
            Value::Array(items) => {
                stack.extend(items.iter());
                false
            }
            Value::Object(map) => {
                stack.extend(map.values());
                map.keys().any(|key| key.len() > MAX_STRING_BYTES)
            }
            _ => false,
        };
        if too_long && !reported {
            reported = true;
            checker.report(
                None,
                "too_large",
                format!("workflow: a string is longer than {MAX_STRING_BYTES} bytes"),
            );
        }
    }
}

#[cfg(test)]
mod tests;
