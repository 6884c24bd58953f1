//! Import of Pilox workflow graphs (`{nodes: [{id, type, data}], edges: [{source, target,
//! sourceHandle, data}]}`) into Hive documents.
//!
//! What Pilox's graph means, as far as the import relies on it: a run's variables are one flat
//! map that starts as the run's input; each node's output is stored as `step_<id>`, under its
//! `data.outputVariable` if it has one, and as `lastOutput`; `{{name}}` in a template reads a
//! variable (a missing one as empty text). Execution starts at the `start` node (else the
//! first node without incoming edges) and follows the first outgoing edge of each node; a
//! `router` follows the edge whose label (`data.condition` or `sourceHandle`) equals its
//! condition's result, else a `default` edge. A `loop` runs the one node after it once per
//! item of the variable `data.loopVariable` (`__loopItem`, `__loopIndex`) and then continues
//! after that node.
//!
//! The mapping: `start` → input, `end` → output, `agent` → agent, `llm` → llm (the model's
//! name taken as the LLM agent's), `transform`/`prompt` → transform, `http` → http, `code` →
//! code, `router` with a condition → condition, `loop` and the node after it → a map over
//! that node. `{{name}}` becomes `{{ nodes.<id>.output }}` for a step's output (`step_<id>`,
//! an output variable, `lastOutput`), `{{ item }}`/`{{ index }}` in a loop, and
//! `{{ input.name }}` otherwise. A node with no equivalent is skipped: the edges through it
//! are joined (each node before it to each node after it). Every skipped node, dropped
//! field, dropped edge and change of meaning is one [`ImportNote`].

use crate::workflows::definition::valid_name;
use serde_json::{Map, Value, json};
use std::collections::{BTreeMap, BTreeSet};

/// Something the import could not carry over as it was.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImportNote {
    /// The Pilox node's id (empty for the workflow as a whole).
    pub node: String,
    pub reason: String,
}

/// A Hive document and what did not carry over.
#[derive(Debug, Clone, PartialEq)]
pub struct ImportReport {
    /// A Hive workflow document; it passes `Definition::parse` when nothing was skipped (and
    /// the Pilox graph was itself well formed: one start, no cycle).
    pub document: Value,
    pub notes: Vec<ImportNote>,
}

/// Pilox nodes and edges, as read.
struct PiloxNode {
    id: String,
    hive_id: String,
    kind: String,
    data: Map<String, Value>,
}

struct PiloxEdge {
    from: String,
    to: String,
    label: Option<String>,
}

/// Data fields kept for layout only; dropped without a note.
const SILENT_FIELDS: [&str; 2] = ["_position", "label"];

/// Translates a Pilox graph; never fails (what cannot be read is a note).
pub fn import_pilox(graph: &Value) -> ImportReport {
    let mut notes = Vec::new();
    let mut note = |node: &str, reason: String| {
        notes.push(ImportNote {
            node: node.to_owned(),
            reason,
        })
    };

    // Nodes, with sanitised, unique ids.
    let mut nodes: Vec<PiloxNode> = Vec::new();
    let mut taken = BTreeSet::new();
    for (index, value) in graph["nodes"].as_array().into_iter().flatten().enumerate() {
        let (Some(id), Some(kind)) = (value["id"].as_str(), value["type"].as_str()) else {
            note(
                "",
                format!("node #{} has no id or type; skipped", index + 1),
            );
            continue;
        };
        let hive_id = unique_id(&sanitize(id), &mut taken);
        if hive_id != id {
            note(
                id,
                format!("id renamed to '{hive_id}' (ids are 1 to 64 of A-Z a-z 0-9 _ -)"),
            );
        }
        nodes.push(PiloxNode {
            id: id.to_owned(),
            hive_id,
            kind: kind.to_owned(),
            data: value["data"].as_object().cloned().unwrap_or_default(),
        });
    }
    let hive_of: BTreeMap<String, String> = nodes
        .iter()
        .map(|node| (node.id.clone(), node.hive_id.clone()))
        .collect();
    let mut edges: Vec<PiloxEdge> = Vec::new();
    for (index, value) in graph["edges"].as_array().into_iter().flatten().enumerate() {
        let (Some(from), Some(to)) = (value["source"].as_str(), value["target"].as_str()) else {
            note(
                "",
                format!("edge #{} has no source or target; dropped", index + 1),
            );
            continue;
        };
        if !hive_of.contains_key(from) || !hive_of.contains_key(to) {
            note(
                from,
                format!("edge {from} → {to} names a node that is not in the graph; dropped"),
            );
            continue;
        }
        if value["data"]["variableMap"].is_object() {
            note(
                from,
                format!(
                    "edge {from} → {to}: its variableMap (copying variables) has no equivalent; dropped"
                ),
            );
        }
        let label = value["data"]["condition"]
            .as_str()
            .or_else(|| value["sourceHandle"].as_str())
            .map(str::to_owned);
        edges.push(PiloxEdge {
            from: from.to_owned(),
            to: to.to_owned(),
            label,
        });
    }

    // Who writes which variable, and each node's single predecessor (for `lastOutput`).
    let mut variables: BTreeMap<String, String> = BTreeMap::new();
    for node in &nodes {
        variables.insert(format!("step_{}", node.id), node.hive_id.clone());
        if let Some(name) = node.data.get("outputVariable").and_then(Value::as_str) {
            variables.insert(name.to_owned(), node.hive_id.clone());
        }
    }
    let start = nodes
        .iter()
        .find(|node| node.kind == "start")
        .or_else(|| {
            nodes
                .iter()
                .find(|node| !edges.iter().any(|edge| edge.to == node.id))
        })
        .map(|node| node.id.clone());

    // A loop swallows the node after it: that node becomes the map's body.
    let mut body_of: BTreeMap<String, String> = BTreeMap::new(); // loop id → body id
    for node in nodes.iter().filter(|node| node.kind == "loop") {
        if let Some(edge) = edges.iter().find(|edge| edge.from == node.id)
            && let Some(body) = nodes.iter().find(|n| n.id == edge.to)
            && ["agent", "llm", "http", "code", "transform", "prompt"].contains(&body.kind.as_str())
        {
            body_of.insert(node.id.clone(), body.id.clone());
        }
    }
    let bodies: BTreeMap<String, String> = body_of
        .iter()
        .map(|(lp, body)| (body.clone(), lp.clone()))
        .collect();
    // A body's output is the map's, from outside.
    for (body, lp) in &bodies {
        if let (Some(body_hive), Some(loop_hive)) = (hive_of.get(body), hive_of.get(lp)) {
            for target in variables.values_mut() {
                if target == body_hive {
                    *target = loop_hive.clone();
                }
            }
        }
    }

    let mut out_nodes: Vec<Value> = Vec::new();
    let mut skipped: BTreeSet<String> = BTreeSet::new();
    let mut output_done = false;
    let mut input_id: Option<String> = None;
    for node in &nodes {
        if bodies.contains_key(&node.id) {
            continue; // inside its map
        }
        // The node before, or its map when it is a loop's body.
        let predecessor =
            single_predecessor(&node.id, &edges, &hive_of, start.as_deref()).map(|hive| {
                nodes
                    .iter()
                    .find(|n| n.hive_id == hive)
                    .and_then(|n| bodies.get(&n.id))
                    .and_then(|lp| hive_of.get(lp))
                    .cloned()
                    .unwrap_or(hive)
            });
        let context = Context {
            variables: &variables,
            predecessor: predecessor.as_deref(),
            in_loop: false,
        };
        let mut consumed: BTreeSet<&str> =
            BTreeSet::from(["timeoutSeconds", "maxRetries", "outputVariable"]);
        let mut node_notes = Vec::new();
        let body = match node.kind.as_str() {
            "start" if input_id.is_none() => {
                input_id = Some(node.hive_id.clone());
                Some(json!({"type": "input"}))
            }
            "end" if !output_done => {
                output_done = true;
                node_notes.push("Pilox returned every variable; the output is now the output of the step before it".to_owned());
                Some(json!({"type": "output", "value": context.last_output(&mut node_notes)}))
            }
            "router" => {
                consumed.insert("condition");
                router(node, &edges, &context, &mut node_notes)
            }
            "loop" => {
                consumed.extend(["loopVariable", "maxIterations"]);
                match body_of
                    .get(&node.id)
                    .and_then(|id| nodes.iter().find(|n| &n.id == id))
                {
                    Some(inner) => {
                        let loop_context = Context {
                            in_loop: true,
                            ..context
                        };
                        let mut inner_consumed = BTreeSet::new();
                        let body = step(inner, &loop_context, &mut inner_consumed, &mut node_notes);
                        for key in inner.data.keys() {
                            if !inner_consumed.contains(key.as_str())
                                && !SILENT_FIELDS.contains(&key.as_str())
                                && !["outputVariable", "timeoutSeconds", "maxRetries"]
                                    .contains(&key.as_str())
                            {
                                node_notes.push(format!(
                                    "the body '{}': field `{key}` has no equivalent; dropped",
                                    inner.id
                                ));
                            }
                        }
                        if inner.data.contains_key("timeoutSeconds")
                            || inner.data.contains_key("maxRetries")
                        {
                            node_notes.push(format!("the body '{}': its timeout and retries apply to the map as a whole now", inner.id));
                        }
                        let items = node
                            .data
                            .get("loopVariable")
                            .and_then(Value::as_str)
                            .map(|name| format!("{{{{ {} }}}}", context.path(name)))
                            .unwrap_or_else(|| "{{ input }}".to_owned());
                        let max_items = node
                            .data
                            .get("maxIterations")
                            .and_then(Value::as_u64)
                            .unwrap_or(100)
                            .clamp(1, 1000);
                        node_notes.push(format!(
                            "loop and its node '{}' became one map node, one item at a time as in Pilox; a string of JSON is no longer parsed into a list",
                            inner.id
                        ));
                        body.map(|body| json!({"type": "map", "items": items, "node": body, "maxItems": max_items, "concurrency": 1}))
                    }
                    None => {
                        node_notes.push("a loop whose next node is not an agent, llm, http, code or transform node has no equivalent".to_owned());
                        None
                    }
                }
            }
            _ => step(node, &context, &mut consumed, &mut node_notes),
        };
        let Some(mut body) = body else {
            skipped.insert(node.id.clone());
            let why = if ["start", "end"].contains(&node.kind.as_str()) {
                format!("a second `{}` node has no equivalent", node.kind)
            } else {
                format!("type `{}` has no Hive equivalent", node.kind)
            };
            note(
                &node.id,
                format!(
                    "skipped: {why}; edges through it are joined, and what read its output will fail"
                ),
            );
            for reason in node_notes {
                note(&node.id, reason);
            }
            continue;
        };
        for key in node.data.keys() {
            if !consumed.contains(key.as_str()) && !SILENT_FIELDS.contains(&key.as_str()) {
                node_notes.push(format!("field `{key}` has no equivalent; dropped"));
            }
        }
        common(node, &mut body);
        if let Some(object) = body.as_object_mut() {
            object.insert("id".into(), Value::String(node.hive_id.clone()));
        }
        out_nodes.push(body);
        for reason in node_notes {
            note(&node.id, reason);
        }
    }

    // Edges: each skipped node's in-edges joined to its out-edges; a loop's edge into its body
    // is gone and the body's out-edges leave the map; past a non-router node only the first
    // edge is followed.
    let mut resolved: Vec<(String, String, Option<String>)> = Vec::new();
    let mut first_out: BTreeSet<String> = BTreeSet::new();
    let kind_of = |id: &str| {
        nodes
            .iter()
            .find(|n| n.id == id)
            .map(|n| n.kind.as_str())
            .unwrap_or("")
    };
    for edge in &edges {
        if bodies.contains_key(&edge.from) && !bodies.contains_key(&edge.to) {
            continue; // handled below, from the map
        }
        let from = bodies
            .get(&edge.from)
            .cloned()
            .unwrap_or_else(|| edge.from.clone());
        if body_of.get(&edge.from) == Some(&edge.to) {
            // the loop's own edge into its body: the body's out-edges are the loop's
            for next in edges.iter().filter(|e| e.from == edge.to) {
                resolved.push((from.clone(), next.to.clone(), None));
            }
            continue;
        }
        if bodies.contains_key(&edge.to) {
            note(
                &edge.from,
                format!(
                    "edge {} → {} into a loop's body dropped (the body runs only inside its map)",
                    edge.from, edge.to
                ),
            );
            continue;
        }
        let when = if kind_of(&edge.from) == "router" {
            // A condition has no `default`: it is the `false` branch.
            edge.label.clone().map(|label| {
                if label == "default" {
                    "false".to_owned()
                } else {
                    label
                }
            })
        } else {
            None
        };
        resolved.push((from, edge.to.clone(), when));
    }
    // Join through skipped nodes: an edge into one becomes edges to each node after it
    // (repeatedly, for chains of them; bounded, should skipped nodes form a cycle).
    for _ in 0..10_000 {
        let Some(position) = resolved.iter().position(|(_, to, _)| skipped.contains(to)) else {
            break;
        };
        let (from, to, when) = resolved.remove(position);
        let nexts: Vec<String> = resolved
            .iter()
            .filter(|(f, t, _)| *f == to && *t != from)
            .map(|(_, t, _)| t.clone())
            .collect();
        for next in nexts {
            resolved.push((from.clone(), next, when.clone()));
        }
    }
    resolved.retain(|(from, to, _)| !skipped.contains(from) && !skipped.contains(to) && from != to);
    let mut out_edges: Vec<Value> = Vec::new();
    let mut seen: BTreeSet<(String, String)> = BTreeSet::new();
    for (from, to, when) in resolved {
        let Some(kind) = nodes.iter().find(|n| n.id == from).map(|n| n.kind.as_str()) else {
            continue;
        };
        if kind != "router" && !first_out.insert(from.clone()) {
            note(
                &from,
                format!(
                    "edge {from} → {to} dropped: Pilox follows only the first edge of a `{kind}` node (use a parallel node to fan out)"
                ),
            );
            continue;
        }
        let (Some(hive_from), Some(hive_to)) = (hive_of.get(&from), hive_of.get(&to)) else {
            continue;
        };
        if !seen.insert((hive_from.clone(), hive_to.clone())) {
            continue;
        }
        let mut edge = json!({"from": hive_from, "to": hive_to});
        if let Some(when) = when {
            edge["when"] = Value::String(when);
        }
        out_edges.push(edge);
    }

    // No start node: Pilox began at the first node without incoming edges.
    if input_id.is_none() {
        let id = unique_id("start", &mut taken);
        out_nodes.insert(0, json!({"id": id, "type": "input"}));
        if let Some(first) = start.as_ref().and_then(|s| hive_of.get(s)) {
            out_edges.insert(0, json!({"from": id, "to": first}));
        }
        note(
            "",
            format!(
                "the graph has no start node: an input node '{id}' was added before the node Pilox started at"
            ),
        );
    }
    let name = graph["name"]
        .as_str()
        .filter(|name| valid_name(name))
        .unwrap_or("imported")
        .to_owned();
    ImportReport {
        document: json!({"name": name, "nodes": out_nodes, "edges": out_edges}),
        notes,
    }
}

/// What templates may read while translating one node.
#[derive(Clone, Copy)]
struct Context<'a> {
    variables: &'a BTreeMap<String, String>,
    /// The Hive id of the node before this one (`lastOutput`), or `None` when it is the input or unclear.
    predecessor: Option<&'a str>,
    in_loop: bool,
}

impl Context<'_> {
    /// A Pilox variable as a Hive path.
    fn path(&self, name: &str) -> String {
        match name {
            "__loopItem" if self.in_loop => "item".to_owned(),
            "__loopIndex" if self.in_loop => "index".to_owned(),
            "lastOutput" => match self.predecessor {
                Some(id) => format!("nodes.{id}.output"),
                None => "input".to_owned(),
            },
            _ => match self.variables.get(name) {
                Some(id) => format!("nodes.{id}.output"),
                None => format!("input.{name}"),
            },
        }
    }

    /// The previous step's output, as Pilox's default input of a node.
    fn last_output(&self, notes: &mut Vec<String>) -> String {
        if self.predecessor.is_none() {
            notes.push("its input (`lastOutput`) is taken as the run's input".to_owned());
        }
        format!("{{{{ {} }}}}", self.path("lastOutput"))
    }

    /// A Pilox template (`{{name}}`, word characters only) as a Hive one; any other `{{` is
    /// escaped, since Pilox left it as text.
    fn template(&self, text: &str) -> String {
        let mut out = String::new();
        let mut rest = text;
        while let Some(open) = rest.find("{{") {
            out.push_str(&rest[..open]);
            let after = &rest[open + 2..];
            let name_end = after
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .unwrap_or(after.len());
            if name_end > 0 && after[name_end..].starts_with("}}") {
                out.push_str(&format!("{{{{ {} }}}}", self.path(&after[..name_end])));
                rest = &after[name_end + 2..];
            } else {
                out.push_str("\\{{");
                rest = after;
            }
        }
        out.push_str(rest);
        out
    }

    /// A Pilox condition as CEL, when it has one of the forms Pilox understood.
    fn condition(&self, text: &str) -> Option<String> {
        let text = text.trim();
        if text.contains("&&") {
            let parts: Option<Vec<String>> = text.split("&&").map(|p| self.condition(p)).collect();
            return parts.map(|p| format!("({})", p.join(") && (")));
        }
        if text.contains("||") {
            let parts: Option<Vec<String>> = text.split("||").map(|p| self.condition(p)).collect();
            return parts.map(|p| format!("({})", p.join(") || (")));
        }
        let word =
            |s: &str| !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
        let quoted = |s: &str| {
            let s = s.trim();
            let inner = s
                .strip_prefix('\'')
                .and_then(|s| s.strip_suffix('\''))
                .or_else(|| s.strip_prefix('"').and_then(|s| s.strip_suffix('"')))?;
            serde_json::to_string(inner).ok()
        };
        for method in ["contains", "startsWith", "endsWith"] {
            if let Some((name, rest)) = text.split_once(&format!(".{method}("))
                && word(name)
                && let Some(argument) = rest.strip_suffix(')').and_then(quoted)
            {
                return Some(format!("string({}).{method}({argument})", self.path(name)));
            }
        }
        for op in ["===", "!==", "==", "!=", ">=", "<=", ">", "<"] {
            if let Some((name, value)) = text.split_once(op) {
                let name = name.trim();
                if !word(name) {
                    return None;
                }
                let cel_op = match op {
                    "===" => "==",
                    "!==" => "!=",
                    other => other,
                };
                if ["==", "!="].contains(&cel_op) {
                    return quoted(value)
                        .map(|v| format!("string({}) {cel_op} {v}", self.path(name)));
                }
                let number: f64 = value.trim().parse().ok()?;
                return Some(format!("double({}) {cel_op} {number:?}", self.path(name)));
            }
        }
        if word(text) {
            return Some(format!("{} == true", self.path(text)));
        }
        None
    }
}

/// A step node's Hive body (agent, llm, transform, http, code), or `None` for other types.
fn step(
    node: &PiloxNode,
    context: &Context<'_>,
    consumed: &mut BTreeSet<&'static str>,
    notes: &mut Vec<String>,
) -> Option<Value> {
    let text = |key: &str| node.data.get(key).and_then(Value::as_str);
    Some(match node.kind.as_str() {
        "agent" => {
            consumed.extend(["agentId", "template"]);
            let message = match text("template") {
                Some(template) => context.template(template),
                None => context.last_output(notes),
            };
            let agent = text("agentId").unwrap_or_default();
            if agent.is_empty() {
                notes.push("no agentId: set the agent".to_owned());
            }
            json!({"type": "agent", "agent": agent, "message": message})
        }
        "llm" => {
            consumed.extend(["model", "template", "systemPrompt"]);
            let prompt = match text("template") {
                Some(template) => context.template(template),
                None => context.last_output(notes),
            };
            let model = text("model").unwrap_or_default();
            notes.push(format!("the model {model:?} is called through a Hive LLM agent of that name, which must exist; provider, temperature and token limit belong to that agent"));
            let mut body = json!({"type": "llm", "agent": model, "prompt": prompt});
            if let Some(system) = text("systemPrompt") {
                body["system"] = Value::String(context.template(system));
            }
            body
        }
        "transform" | "prompt" => {
            consumed.extend(["template", "action"]);
            let value = match text("template") {
                Some(template) => context.template(template),
                None => context.last_output(notes),
            };
            json!({"type": "transform", "value": value})
        }
        "http" => {
            consumed.extend(["url", "method", "headers", "body"]);
            let method = text("method").unwrap_or("GET").to_ascii_uppercase();
            let mut headers = Map::new();
            headers.insert(
                "Content-Type".into(),
                Value::String("application/json".into()),
            );
            if let Some(raw) = text("headers") {
                match serde_json::from_str::<Map<String, Value>>(raw) {
                    Ok(parsed) => {
                        for (name, value) in parsed {
                            let value = value
                                .as_str()
                                .map(str::to_owned)
                                .unwrap_or_else(|| value.to_string());
                            headers.insert(name, Value::String(context.template(&value)));
                        }
                    }
                    Err(_) => notes.push(
                        "`headers` is not a JSON object of strings (Pilox ignored it too); dropped"
                            .to_owned(),
                    ),
                }
            }
            let mut body = json!({
                "type": "http",
                "method": method,
                "url": context.template(text("url").unwrap_or_default()),
                "headers": headers,
            });
            if let Some(raw) = text("body") {
                if ["GET", "HEAD"].contains(&method.as_str()) {
                    notes.push(
                        "the body of a GET or HEAD request is dropped, as Pilox did".to_owned(),
                    );
                } else {
                    body["body"] = Value::String(context.template(raw));
                }
            }
            body
        }
        "code" => {
            consumed.extend(["codeContent", "language"]);
            let language = match text("language") {
                Some("python") => {
                    notes.push(
                        "Python code did not run in Pilox; it runs in Hive's sandbox now"
                            .to_owned(),
                    );
                    "python"
                }
                _ => "javascript",
            };
            notes.push("the code now runs in Hive's sandbox, without network and without Pilox's `variables` object: pass what it needs through `env`".to_owned());
            json!({"type": "code", "language": language, "source": text("codeContent").unwrap_or_default()})
        }
        _ => return None,
    })
}

/// A router with a condition and `true`/`false` edges: a condition node.
fn router(
    node: &PiloxNode,
    edges: &[PiloxEdge],
    context: &Context<'_>,
    notes: &mut Vec<String>,
) -> Option<Value> {
    let out: Vec<&PiloxEdge> = edges.iter().filter(|e| e.from == node.id).collect();
    if out.iter().any(
        |e| matches!(e.label.as_deref(), Some(l) if !["true", "false", "default"].contains(&l)),
    ) {
        notes.push("a router whose edges carry their own conditions has no equivalent yet (rewrite it as a switch)".to_owned());
        return None;
    }
    let Some(condition) = node.data.get("condition").and_then(Value::as_str) else {
        notes.push("a router without a condition has no equivalent".to_owned());
        return None;
    };
    let Some(expression) = context.condition(condition) else {
        notes.push(format!(
            "the condition {condition:?} is not in a form the import understands; rewrite it in CEL"
        ));
        return None;
    };
    if out.iter().any(|e| e.label.as_deref() == Some("default")) {
        notes.push("its `default` edge is now its `false` edge".to_owned());
    }
    notes.push(format!("condition {condition:?} became the CEL expression {expression:?}; Pilox compared text and numbers loosely and read missing variables as empty, CEL does neither"));
    Some(json!({"type": "condition", "expression": expression}))
}

/// Timeout, retries and name, which every node takes.
fn common(node: &PiloxNode, body: &mut Value) {
    if let Some(name) = node.data.get("label").and_then(Value::as_str) {
        body["name"] = Value::String(name.chars().take(100).collect());
    }
    if let Some(seconds) = node.data.get("timeoutSeconds").and_then(Value::as_u64) {
        body["timeoutSeconds"] = json!(seconds.clamp(1, 86_400));
    }
    if let Some(retries) = node.data.get("maxRetries").and_then(Value::as_u64)
        && retries > 0
    {
        body["retry"] = json!({"maxAttempts": (retries + 1).min(10), "backoffSeconds": 1, "maxBackoffSeconds": 10});
    }
}

/// The Hive id of the one node leading to `id`, unless it is the start (whose output is the input).
fn single_predecessor(
    id: &str,
    edges: &[PiloxEdge],
    hive_of: &BTreeMap<String, String>,
    start: Option<&str>,
) -> Option<String> {
    let sources: BTreeSet<&str> = edges
        .iter()
        .filter(|e| e.to == id)
        .map(|e| e.from.as_str())
        .collect();
    match sources.into_iter().collect::<Vec<_>>().as_slice() {
        [one] if Some(*one) != start => hive_of.get(*one).cloned(),
        _ => None,
    }
}

fn sanitize(id: &str) -> String {
    let cleaned: String = id
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' || c == '-' {
                c
            } else {
                '_'
            }
        })
        .take(60)
        .collect();
    if cleaned.is_empty() {
        "node".to_owned()
    } else {
        cleaned
    }
}

fn unique_id(base: &str, taken: &mut BTreeSet<String>) -> String {
    let mut candidate = base.to_owned();
    let mut n = 2;
    while taken.contains(&candidate) {
        candidate = format!("{base}_{n}");
        n += 1;
    }
    taken.insert(candidate.clone());
    candidate
}

#[cfg(test)]
mod tests {
    use super::super::definition::{Definition, NodeKind};
    use super::*;

    fn graph() -> Value {
        json!({
            "nodes": [
                {"id": "start", "type": "start", "data": {"_position": {"x": 0, "y": 0}}},
                {"id": "ask agent", "type": "agent", "data": {"agentId": "a-1", "template": "Classify {{text}} {bad", "outputVariable": "label", "maxRetries": 2, "label": "Ask"}},
                {"id": "route", "type": "router", "data": {"condition": "label == 'urgent' && score >= 3"}},
                {"id": "call", "type": "http", "data": {"url": "https://x.test/{{step_route}}", "method": "post", "headers": "{\"X-Id\": \"{{runId}}\"}", "body": "{{label}}"}},
                {"id": "mem", "type": "memory", "data": {"memoryType": "buffer"}},
                {"id": "js", "type": "code", "data": {"codeContent": "return 1", "language": "javascript", "timeoutSeconds": 5}},
                {"id": "items", "type": "loop", "data": {"loopVariable": "list", "maxIterations": 5000}},
                {"id": "each", "type": "llm", "data": {"model": "llama3", "template": "Say {{__loopItem}}", "temperature": 0.2}},
                {"id": "done", "type": "end", "data": {}}
            ],
            "edges": [
                {"id": "e1", "source": "start", "target": "ask agent"},
                {"id": "e2", "source": "ask agent", "target": "route"},
                {"id": "e3", "source": "route", "target": "call", "sourceHandle": "true"},
                {"id": "e4", "source": "route", "target": "js", "data": {"condition": "false"}},
                {"id": "e5", "source": "call", "target": "mem"},
                {"id": "e6", "source": "mem", "target": "items"},
                {"id": "e7", "source": "items", "target": "each"},
                {"id": "e8", "source": "each", "target": "done"},
                {"id": "e9", "source": "js", "target": "done"}
            ]
        })
    }

    fn notes_for<'a>(report: &'a ImportReport, node: &str) -> Vec<&'a str> {
        report
            .notes
            .iter()
            .filter(|n| n.node == node)
            .map(|n| n.reason.as_str())
            .collect()
    }

    #[test]
    fn a_pilox_graph_becomes_a_hive_document_with_notes() {
        let report = import_pilox(&graph());
        let document = &report.document;
        let node = |id: &str| {
            document["nodes"]
                .as_array()
                .unwrap()
                .iter()
                .find(|n| n["id"] == id)
                .cloned()
                .unwrap_or_else(|| panic!("no node {id} in {document:#}"))
        };
        assert_eq!(node("start")["type"], "input");
        let ask = node("ask_agent");
        assert_eq!(ask["type"], "agent");
        assert_eq!(ask["agent"], "a-1");
        assert_eq!(ask["message"], "Classify {{ input.text }} {bad");
        assert_eq!(ask["name"], "Ask");
        assert_eq!(ask["retry"]["maxAttempts"], 3);
        let route = node("route");
        assert_eq!(route["type"], "condition");
        assert_eq!(
            route["expression"],
            "(string(nodes.ask_agent.output) == \"urgent\") && (double(input.score) >= 3.0)"
        );
        let call = node("call");
        assert_eq!(call["method"], "POST");
        assert_eq!(call["url"], "https://x.test/{{ nodes.route.output }}");
        assert_eq!(call["headers"]["X-Id"], "{{ input.runId }}");
        assert_eq!(call["body"], "{{ nodes.ask_agent.output }}");
        let js = node("js");
        assert_eq!(
            (js["type"].as_str(), js["language"].as_str()),
            (Some("code"), Some("javascript"))
        );
        assert_eq!(js["timeoutSeconds"], 5);
        let map = node("items");
        assert_eq!(map["type"], "map");
        assert_eq!(map["maxItems"], 1000);
        assert_eq!(map["node"]["type"], "llm");
        assert_eq!(map["node"]["prompt"], "Say {{ item }}");
        assert_eq!(node("done")["type"], "output");
        // Two steps lead to it: which ran last is not known, so it takes the run's input.
        assert_eq!(node("done")["value"], "{{ input }}");
        assert!(
            notes_for(&report, "done")
                .iter()
                .any(|r| r.contains("run's input"))
        );
        // The memory node is gone and its edges joined; the branch labels carried over.
        let edges: Vec<(String, String, Option<String>)> = document["edges"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| {
                (
                    e["from"].as_str().unwrap().to_owned(),
                    e["to"].as_str().unwrap().to_owned(),
                    e["when"].as_str().map(str::to_owned),
                )
            })
            .collect();
        assert!(
            edges.contains(&("call".into(), "items".into(), None)),
            "{edges:?}"
        );
        assert!(edges.contains(&("route".into(), "call".into(), Some("true".into()))));
        assert!(edges.contains(&("route".into(), "js".into(), Some("false".into()))));
        assert!(edges.contains(&("items".into(), "done".into(), None)));
        assert!(
            !edges
                .iter()
                .any(|(f, t, _)| f == "mem" || t == "mem" || t == "each")
        );

        // Notes: the skipped node, the renamed id, the dropped fields, the sandbox.
        assert!(
            notes_for(&report, "mem")
                .iter()
                .any(|r| r.contains("skipped") && r.contains("memory")),
            "{:#?}",
            report.notes
        );
        assert!(
            notes_for(&report, "ask agent")
                .iter()
                .any(|r| r.contains("renamed"))
        );
        assert!(
            notes_for(&report, "items")
                .iter()
                .any(|r| r.contains("temperature")),
            "{:#?}",
            report.notes
        );
        assert!(
            notes_for(&report, "js")
                .iter()
                .any(|r| r.contains("sandbox"))
        );
        assert!(
            notes_for(&report, "route")
                .iter()
                .any(|r| r.contains("CEL"))
        );
    }

    #[test]
    fn the_document_parses_when_nothing_was_skipped() {
        let mut graph = graph();
        // Without the memory node, nothing is skipped.
        graph["nodes"]
            .as_array_mut()
            .unwrap()
            .retain(|n| n["id"] != "mem");
        let edges = graph["edges"].as_array_mut().unwrap();
        edges.retain(|e| e["source"] != "mem" && e["target"] != "mem");
        edges.push(json!({"source": "call", "target": "items"}));
        let report = import_pilox(&graph);
        assert!(
            !report.notes.iter().any(|n| n.reason.contains("skipped")),
            "{:#?}",
            report.notes
        );
        let definition = Definition::parse(&report.document.to_string())
            .unwrap_or_else(|problems| panic!("{problems}\n{:#}", report.document));
        assert!(matches!(
            definition.node("items").unwrap().kind,
            NodeKind::Map(_)
        ));
        assert!(matches!(
            definition.node("route").unwrap().kind,
            NodeKind::Condition(_)
        ));
        assert!(definition.uses_code());
    }

    #[test]
    fn a_graph_without_start_gets_an_input_and_unmappable_routers_are_reported() {
        let graph = json!({
            "nodes": [
                {"id": "t", "type": "transform", "data": {"template": "{{x}}"}},
                {"id": "r", "type": "router", "data": {}},
                {"id": "a", "type": "transform", "data": {}},
                {"id": "b", "type": "transform", "data": {}}
            ],
            "edges": [
                {"source": "t", "target": "r"},
                {"source": "r", "target": "a", "data": {"condition": "x > 1"}},
                {"source": "r", "target": "b", "data": {"condition": "default"}}
            ]
        });
        let report = import_pilox(&graph);
        assert_eq!(report.document["nodes"][0]["type"], "input");
        assert_eq!(
            report.document["edges"][0],
            json!({"from": "start", "to": "t"})
        );
        assert!(
            notes_for(&report, "")
                .iter()
                .any(|r| r.contains("no start node"))
        );
        assert!(
            notes_for(&report, "r")
                .iter()
                .any(|r| r.contains("skipped"))
        );
        assert!(notes_for(&report, "r").iter().any(|r| r.contains("switch")));
        assert!(import_pilox(&json!("nonsense")).document["nodes"].is_array());
    }
}
