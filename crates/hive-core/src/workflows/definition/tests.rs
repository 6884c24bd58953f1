use super::*;
use serde_json::json;

/// input → ask (agent) → check (condition) → big (http) / small (transform) → done (output)
fn triage() -> Value {
    json!({
        "name": "triage",
        "description": "Sort incoming requests",
        "nodes": [
            {"id": "start", "type": "input", "required": ["text"]},
            {"id": "ask", "type": "agent", "agent": "classifier", "message": "Classify: {{ input.text }}",
             "retry": {"maxAttempts": 3, "backoffSeconds": 2}},
            {"id": "check", "type": "condition", "expression": "nodes.ask.output.size > 10"},
            {"id": "big", "type": "http", "method": "POST", "url": "https://example.com/{{ run.id }}",
             "headers": {"Authorization": "Bearer {{ secrets.API_KEY }}"}, "body": {"text": "{{ input.text }}"}},
            {"id": "small", "type": "transform", "value": {"answer": "{{ nodes.ask.output }}"}},
            {"id": "done", "type": "output", "value": "{{ input.text }}"}
        ],
        "edges": [
            {"from": "start", "to": "ask"},
            {"from": "ask", "to": "check"},
            {"from": "check", "to": "big", "when": "true"},
            {"from": "check", "to": "small", "when": "false"},
            {"from": "big", "to": "done"},
            {"from": "small", "to": "done"}
        ],
        "triggers": [
            {"type": "webhook", "id": "incoming"},
            {"type": "schedule", "id": "daily", "cron": "0 9 * * 1-5", "timezone": "Europe/Paris", "input": {"text": "daily"}},
            {"type": "a2a", "id": "agent", "agent": "triage-bot", "visibility": "federation",
             "description": "Sorts a request"}
        ],
        "limits": {"timeoutSeconds": 3600, "maxSteps": 500, "maxConcurrentRuns": 5}
    })
}

fn parse(document: &Value) -> Result<Definition, Problems> {
    Definition::parse(&document.to_string())
}

fn problems(document: &Value) -> Vec<Problem> {
    match parse(document) {
        Ok(_) => panic!("the document was accepted"),
        Err(problems) => problems.0,
    }
}

/// The problem with `rule` about `node`; fails when there is none.
#[track_caller]
fn expect(document: &Value, rule: &str, node: Option<&str>) -> Problem {
    let found = problems(document);
    found
        .iter()
        .find(|p| p.rule == rule && p.node.as_deref() == node)
        .cloned()
        .unwrap_or_else(|| panic!("no {rule} problem about {node:?} in {found:#?}"))
}

fn with_node(mut document: Value, node: Value, from: &str) -> Value {
    let id = node["id"].as_str().unwrap().to_owned();
    document["nodes"].as_array_mut().unwrap().push(node);
    document["edges"]
        .as_array_mut()
        .unwrap()
        .push(json!({"from": from, "to": id}));
    document
}

#[test]
fn a_good_document_parses_and_answers() {
    let definition = parse(&triage()).unwrap();
    assert_eq!(definition.name, "triage");
    assert_eq!(definition.input_node().id, "start");
    assert_eq!(definition.node("ask").unwrap().kind.type_name(), "agent");
    assert_eq!(definition.node("ask").unwrap().retry.max_attempts, 3);
    assert_eq!(definition.outgoing("check").len(), 2);
    assert_eq!(definition.incoming("done").len(), 2);
    assert_eq!(
        definition.ancestors("done"),
        ["ask", "big", "check", "small", "start"]
            .map(String::from)
            .into()
    );
    let references = definition.references();
    assert_eq!(references.agents, BTreeSet::from(["classifier".to_owned()]));
    assert_eq!(references.secrets, BTreeSet::from(["API_KEY".to_owned()]));
    assert!(definition.has_schedule());
    assert!(!definition.uses_code());
    assert!(matches!(
        definition.trigger("daily"),
        Some(Trigger::Schedule { .. })
    ));
    assert_eq!(
        definition.a2a_trigger(),
        Some(&Trigger::A2a {
            id: "agent".into(),
            agent: "triage-bot".into(),
            visibility: AgentVisibility::Federation,
            description: "Sorts a request".into(),
        })
    );
    assert_eq!(definition.limits.max_steps, 500);
    assert_eq!(definition.limits.timeout, Duration::from_secs(3600));
    match &definition.node("big").unwrap().kind {
        NodeKind::Http(http) => {
            assert_eq!(http.method, HttpMethod::Post);
            assert!(http.headers.contains_key("Authorization"));
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn every_node_type_parses() {
    let document = json!({
        "name": "all types",
        "nodes": [
            {"id": "in", "type": "input"},
            {"id": "fan", "type": "parallel"},
            {"id": "llm", "type": "llm", "agent": "gpt", "prompt": "Hi", "system": "Be brief"},
            {"id": "code", "type": "code", "language": "python", "source": "print(1)",
             "env": {"TOKEN": "{{ secrets.T }}"}, "network": ["api.example.com"], "memoryMb": 256, "cpu": 1.0},
            {"id": "each", "type": "loop", "items": "{{ input.list }}",
             "node": {"type": "http", "method": "GET", "url": "https://x.test/{{ item.id }}?i={{ index }}"},
             "maxItems": 50, "concurrency": 2},
            {"id": "all", "type": "join"},
            {"id": "pick", "type": "switch", "expression": "input.kind", "cases": ["a", "b"]},
            {"id": "wait", "type": "delay", "seconds": 60},
            {"id": "later", "type": "delay", "until": "{{ input.at }}"},
            {"id": "ok", "type": "approval", "approvers": {"users": ["ada@example.com"], "role": "operator"},
             "message": "Approve {{ input.kind }}?"},
            {"id": "sub", "type": "workflow", "workflow": "child", "input": {"x": "{{ nodes.code.output }}"}},
            {"id": "no", "type": "transform", "value": 1}
        ],
        "edges": [
            {"from": "in", "to": "fan"},
            {"from": "fan", "to": "llm"},
            {"from": "fan", "to": "code"},
            {"from": "fan", "to": "each"},
            {"from": "llm", "to": "all"},
            {"from": "code", "to": "all"},
            {"from": "each", "to": "all"},
            {"from": "all", "to": "pick"},
            {"from": "pick", "to": "wait", "when": "a"},
            {"from": "pick", "to": "later", "when": "default"},
            {"from": "wait", "to": "ok"},
            {"from": "ok", "to": "sub", "when": "approved"},
            {"from": "ok", "to": "no", "when": "rejected"}
        ]
    });
    let definition = parse(&document).unwrap();
    assert!(definition.uses_code());
    assert!(!definition.has_schedule());
    match &definition.node("each").unwrap().kind {
        NodeKind::Map(map) => {
            assert_eq!(map.body.type_name(), "http");
            assert_eq!((map.max_items, map.concurrency), (50, 2));
        }
        other => panic!("{other:?}"),
    }
    match &definition.node("ok").unwrap().kind {
        NodeKind::Approval(approval) => assert_eq!(approval.role, Some(Role::Operator)),
        other => panic!("{other:?}"),
    }
    let references = definition.references();
    assert_eq!(references.workflows, BTreeSet::from(["child".to_owned()]));
    assert_eq!(references.agents, BTreeSet::from(["gpt".to_owned()]));
    assert_eq!(references.secrets, BTreeSet::from(["T".to_owned()]));
    assert_eq!(
        references.approver_users,
        BTreeSet::from(["ada@example.com".to_owned()])
    );
}

#[test]
fn every_problem_is_collected_not_just_the_first() {
    let mut document = triage();
    document["nodes"][1]["type"] = json!("teleport");
    document["nodes"][2]["expression"] = json!("1 +");
    document["bogus"] = json!(1);
    let found = problems(&document);
    let rules: BTreeSet<&str> = found.iter().map(|p| p.rule).collect();
    assert!(
        rules.is_superset(&BTreeSet::from([
            "unknown_type",
            "bad_expression",
            "unknown_field"
        ])),
        "{found:#?}"
    );
    let text = Problems(found).to_string();
    assert!(text.contains("; "), "{text}");
}

#[test]
fn an_unknown_type_is_refused() {
    let mut document = triage();
    document["nodes"][1]["type"] = json!("teleport");
    let problem = expect(&document, "unknown_type", Some("ask"));
    assert!(
        problem.message.contains("node 'ask'"),
        "{}",
        problem.message
    );
}

#[test]
fn a_missing_field_names_the_node_and_the_field() {
    let mut document = triage();
    document["nodes"][1]
        .as_object_mut()
        .unwrap()
        .remove("message");
    let problem = expect(&document, "missing_field", Some("ask"));
    assert!(
        problem
            .message
            .starts_with("node 'ask' (agent): missing field `message`"),
        "{}",
        problem.message
    );
}

#[test]
fn unknown_fields_are_refused_everywhere() {
    let mut document = triage();
    document["nodes"][1]["colour"] = json!("red");
    let problem = expect(&document, "unknown_field", Some("ask"));
    assert!(problem.message.contains("colour"), "{}", problem.message);
    let mut document = triage();
    document["nodes"][1]["retry"]["jitter"] = json!(true);
    expect(&document, "unknown_field", Some("ask"));
    let mut document = triage();
    document["edges"][0]["label"] = json!("x");
    expect(&document, "unknown_field", None);
    let mut document = triage();
    document["limits"]["maxMemory"] = json!(1);
    expect(&document, "unknown_field", None);
    let mut document = triage();
    document["triggers"][0]["secret"] = json!("x");
    expect(&document, "unknown_field", None);
    let mut document = triage();
    document["owner"] = json!("x");
    expect(&document, "unknown_field", None);
}

#[test]
fn duplicate_and_malformed_ids_are_refused() {
    let mut document = triage();
    document["nodes"][4]["id"] = json!("big");
    expect(&document, "duplicate_id", Some("big"));
    let mut document = triage();
    document["nodes"][4]["id"] = json!("no spaces");
    expect(&document, "bad_id", None);
}

#[test]
fn edges_must_join_two_different_known_nodes_once() {
    let mut document = triage();
    document["edges"]
        .as_array_mut()
        .unwrap()
        .push(json!({"from": "done", "to": "nowhere"}));
    expect(&document, "unknown_node", Some("nowhere"));
    let mut document = triage();
    document["edges"]
        .as_array_mut()
        .unwrap()
        .push(json!({"from": "small", "to": "small"}));
    expect(&document, "self_edge", Some("small"));
    let mut document = triage();
    document["edges"]
        .as_array_mut()
        .unwrap()
        .push(json!({"from": "start", "to": "ask"}));
    expect(&document, "duplicate_edge", Some("start"));
}

#[test]
fn exactly_one_input_node_without_incoming_edges() {
    let mut document = triage();
    document["nodes"][0] = json!({"id": "start", "type": "transform", "value": 1});
    expect(&document, "missing_input", None);
    let document = with_node(triage(), json!({"id": "in2", "type": "input"}), "done");
    expect(&document, "duplicate_input", Some("in2"));
    let mut document = triage();
    document["edges"]
        .as_array_mut()
        .unwrap()
        .push(json!({"from": "small", "to": "start"}));
    expect(&document, "input_has_incoming", Some("start"));
}

#[test]
fn every_node_is_reachable_from_the_input() {
    let mut document = triage();
    document["nodes"]
        .as_array_mut()
        .unwrap()
        .push(json!({"id": "orphan", "type": "transform", "value": 1}));
    let problem = expect(&document, "unreachable", Some("orphan"));
    assert!(
        problem.message.contains("no incoming edge"),
        "{}",
        problem.message
    );
    // An island with an edge into it, but none from the input's side.
    let mut document = triage();
    let nodes = document["nodes"].as_array_mut().unwrap();
    nodes.push(json!({"id": "i1", "type": "parallel"}));
    nodes.push(json!({"id": "i2", "type": "transform", "value": 1}));
    document["edges"]
        .as_array_mut()
        .unwrap()
        .push(json!({"from": "i1", "to": "i2"}));
    expect(&document, "unreachable", Some("i2"));
}

#[test]
fn a_cycle_is_refused_with_its_path() {
    let mut document = triage();
    document["edges"]
        .as_array_mut()
        .unwrap()
        .push(json!({"from": "done", "to": "ask"}));
    let problem = expect(&document, "cycle", Some("ask"));
    assert!(
        problem.message.contains("ask → check → big → done → ask")
            || problem.message.contains("ask → check → small → done → ask"),
        "{}",
        problem.message
    );
    assert!(problem.message.contains("cycle outside a loop"));
    assert!(problem.message.contains("map node"));
}

#[test]
fn branch_labels_are_required_exactly_where_they_belong() {
    let mut document = triage();
    document["edges"][2].as_object_mut().unwrap().remove("when");
    expect(&document, "bad_branch", Some("check"));
    let mut document = triage();
    document["edges"][2]["when"] = json!("maybe");
    expect(&document, "bad_branch", Some("check"));
    let mut document = triage();
    document["edges"][0]["when"] = json!("true");
    expect(&document, "bad_branch", Some("start"));
    let switch =
        json!({"id": "pick", "type": "switch", "expression": "input.kind", "cases": ["a"]});
    let mut document = with_node(triage(), switch, "done");
    let edges = document["edges"].as_array_mut().unwrap();
    edges.last_mut().unwrap()["when"] = json!(null);
    edges.push(json!({"from": "pick", "to": "small", "when": "b"}));
    let found = problems(&document);
    assert!(
        found.iter().any(|p| p.rule == "bad_branch"
            && p.node.as_deref() == Some("pick")
            && p.message.contains("\"b\"")),
        "{found:#?}"
    );
    let approval =
        json!({"id": "ok", "type": "approval", "approvers": {"role": "admin"}, "message": "?"});
    let mut document = with_node(triage(), approval, "done");
    document["nodes"]
        .as_array_mut()
        .unwrap()
        .push(json!({"id": "after", "type": "transform", "value": 1}));
    document["edges"]
        .as_array_mut()
        .unwrap()
        .push(json!({"from": "ok", "to": "after", "when": "maybe"}));
    expect(&document, "bad_branch", Some("ok"));
}

#[test]
fn switch_cases_are_unique() {
    let switch =
        json!({"id": "pick", "type": "switch", "expression": "input.kind", "cases": ["a", "a"]});
    let document = with_node(triage(), switch, "done");
    expect(&document, "duplicate_case", Some("pick"));
}

#[test]
fn templates_read_only_upstream_nodes() {
    let mut document = triage();
    // `small` runs beside `big`, not before it.
    document["nodes"][3]["body"] = json!("{{ nodes.small.output }}");
    let problem = expect(&document, "not_upstream", Some("big"));
    assert!(problem.message.contains("'small'"), "{}", problem.message);
    let mut document = triage();
    document["nodes"][3]["body"] = json!("{{ nodes.ghost.output }}");
    expect(&document, "unknown_node", Some("big"));
    let mut document = triage();
    document["nodes"][1]["message"] = json!("{{ nodes.ask.output }}");
    expect(&document, "not_upstream", Some("ask"));
}

#[test]
fn expressions_read_only_upstream_nodes_and_known_variables() {
    let mut document = triage();
    document["nodes"][2]["expression"] = json!("nodes.big.output.ok");
    expect(&document, "not_upstream", Some("check"));
    let mut document = triage();
    document["nodes"][2]["expression"] = json!("env.HOME == 'x'");
    expect(&document, "bad_expression", Some("check"));
    let mut document = triage();
    document["nodes"][2]["expression"] = json!("secrets.API_KEY == 'x'");
    expect(&document, "secret_not_allowed_here", Some("check"));
    let mut document = triage();
    document["nodes"][2]["expression"] = json!("1 +");
    expect(&document, "bad_expression", Some("check"));
}

#[test]
fn item_and_index_exist_only_in_a_map_body() {
    let mut document = triage();
    document["nodes"][4]["value"] = json!("{{ item.x }}");
    expect(&document, "item_outside_map", Some("small"));
    let map = json!({"id": "each", "type": "map", "items": "{{ item }}",
                     "node": {"type": "transform", "value": "{{ item }}"}});
    let document = with_node(triage(), map, "done");
    // The map's own `items` is outside its body.
    let found = problems(&document);
    assert_eq!(
        found
            .iter()
            .filter(|p| p.rule == "item_outside_map" && p.node.as_deref() == Some("each"))
            .count(),
        1,
        "{found:#?}"
    );
}

#[test]
fn secrets_only_in_http_and_code_env() {
    for (index, field) in [(1, "message"), (4, "value"), (5, "value")] {
        let mut document = triage();
        document["nodes"][index][field] = json!("{{ secrets.API_KEY }}");
        let id = document["nodes"][index]["id"].as_str().unwrap().to_owned();
        let problem = expect(&document, "secret_not_allowed_here", Some(&id));
        assert!(problem.message.contains(field), "{}", problem.message);
    }
    let mut document = triage();
    document["nodes"][0] = json!({"id": "start", "type": "input", "required": ["text"]});
    document["nodes"][3]["url"] = json!("https://x.test/?k={{ secrets.K }}");
    assert!(parse(&document).is_ok());
    let code = json!({"id": "c", "type": "code", "language": "javascript", "source": "1",
                      "env": {"K": "{{ secrets.K }}"}});
    assert!(parse(&with_node(triage(), code, "done")).is_ok());
    let map = json!({"id": "each", "type": "map", "items": "{{ input.list }}",
                     "node": {"type": "agent", "agent": "a", "message": "{{ secrets.K }}"}});
    expect(
        &with_node(triage(), map, "done"),
        "secret_not_allowed_here",
        Some("each"),
    );
}

#[test]
fn at_most_one_output_node() {
    let document = with_node(
        triage(),
        json!({"id": "done2", "type": "output", "value": 1}),
        "small",
    );
    expect(&document, "duplicate_output", Some("done2"));
}

#[test]
fn triggers_are_checked() {
    let mut document = triage();
    document["triggers"][2]["id"] = json!("incoming");
    expect(&document, "duplicate_trigger", None);
    let mut document = triage();
    document["triggers"][1]["cron"] = json!("0 25 * * *");
    let problem = expect(&document, "bad_schedule", None);
    assert!(
        problem.message.contains("trigger 'daily'"),
        "{}",
        problem.message
    );
    let mut document = triage();
    document["triggers"][1]["timezone"] = json!("Nowhere/Land");
    expect(&document, "bad_schedule", None);
    let mut document = triage();
    document["triggers"][1]["input"] = json!({"other": 1});
    expect(&document, "bad_trigger_input", None);
    let mut document = triage();
    document["triggers"][0]["type"] = json!("email");
    expect(&document, "unknown_type", None);
}

#[test]
fn an_a2a_trigger_names_the_agent_it_publishes() {
    // Only `agent` is needed: private, and no description of its own, by default.
    let mut document = triage();
    document["triggers"][2] = json!({"type": "a2a", "id": "agent", "agent": "t"});
    assert_eq!(
        parse(&document).unwrap().a2a_trigger(),
        Some(&Trigger::A2a {
            id: "agent".into(),
            agent: "t".into(),
            visibility: AgentVisibility::Private,
            description: String::new(),
        })
    );
    let mut document = triage();
    document["triggers"][2]
        .as_object_mut()
        .unwrap()
        .remove("agent");
    let problem = expect(&document, "missing_field", None);
    assert!(problem.message.contains("trigger 'agent'"), "{problem:?}");
    for bad in [
        json!("Triage"),
        json!("-triage"),
        json!("tri age"),
        json!(""),
        json!(7),
    ] {
        let mut document = triage();
        document["triggers"][2]["agent"] = bad;
        expect(&document, "bad_agent_name", None);
    }
    let mut document = triage();
    document["triggers"][2]["agent"] = json!("a".repeat(65));
    expect(&document, "bad_agent_name", None);
    let mut document = triage();
    document["triggers"][2]["visibility"] = json!("everyone");
    expect(&document, "bad_field", None);
    let mut document = triage();
    document["triggers"][2]["description"] = json!("d".repeat(2001));
    expect(&document, "too_large", None);
    let mut document = triage();
    document["triggers"][2]["secret"] = json!("x");
    expect(&document, "unknown_field", None);
    // One agent at most.
    let mut document = triage();
    document["triggers"]
        .as_array_mut()
        .unwrap()
        .push(json!({"type": "a2a", "id": "again", "agent": "other-bot"}));
    expect(&document, "duplicate_a2a", None);
}

#[test]
fn caps_are_enforced() {
    let mut document = triage();
    let nodes = document["nodes"].as_array_mut().unwrap();
    for i in 0..200 {
        nodes.push(json!({"id": format!("n{i}"), "type": "parallel"}));
    }
    expect(&document, "too_large", None);
    let mut document = triage();
    document["description"] = json!("x".repeat(2001));
    expect(&document, "too_large", None);
    let mut document = triage();
    document["description"] = json!("x".repeat(300 * 1024));
    let problem = expect(&document, "too_large", None);
    assert!(problem.message.contains("document"), "{}", problem.message);
    let mut document = triage();
    document["name"] = json!("bad/name");
    expect(&document, "bad_name", None);
    let mut document = triage();
    document["name"] = json!("");
    expect(&document, "bad_name", None);
    let mut document = triage();
    document["nodes"][1]["agent"] = json!("a".repeat(300));
    expect(&document, "too_large", Some("ask"));
}

#[test]
fn numbers_out_of_range_are_refused() {
    let mut document = triage();
    document["nodes"][1]["retry"]["maxAttempts"] = json!(11);
    expect(&document, "out_of_range", Some("ask"));
    let mut document = triage();
    document["nodes"][1]["timeoutSeconds"] = json!(0);
    expect(&document, "out_of_range", Some("ask"));
    let code =
        json!({"id": "c", "type": "code", "language": "python", "source": "1", "memoryMb": 4096});
    expect(
        &with_node(triage(), code, "done"),
        "out_of_range",
        Some("c"),
    );
    let code = json!({"id": "c", "type": "code", "language": "python", "source": "1", "cpu": 8.0});
    expect(
        &with_node(triage(), code, "done"),
        "out_of_range",
        Some("c"),
    );
    let map = json!({"id": "m", "type": "map", "items": "{{ input.l }}", "concurrency": 17,
                     "node": {"type": "transform", "value": 1}});
    expect(&with_node(triage(), map, "done"), "out_of_range", Some("m"));
    let mut document = triage();
    document["limits"]["maxSteps"] = json!(0);
    expect(&document, "out_of_range", None);
}

#[test]
fn bad_templates_name_the_field() {
    let mut document = triage();
    document["nodes"][3]["url"] = json!("https://x.test/{{ env.HOME }}");
    let problem = expect(&document, "bad_template", Some("big"));
    assert!(problem.message.contains("`url`"), "{}", problem.message);
}

#[test]
fn a_map_body_is_one_of_the_allowed_types() {
    let map = json!({"id": "m", "type": "map", "items": "{{ input.l }}",
                     "node": {"type": "approval", "approvers": {"role": "admin"}, "message": "?"}});
    expect(&with_node(triage(), map, "done"), "bad_map_body", Some("m"));
    let map = json!({"id": "m", "type": "map", "items": "{{ input.l }}",
                     "node": {"type": "transform", "id": "x", "value": 1}});
    expect(
        &with_node(triage(), map, "done"),
        "unknown_field",
        Some("m"),
    );
}

#[test]
fn node_specific_rules() {
    let delay = json!({"id": "d", "type": "delay", "seconds": 5, "until": "{{ input.at }}"});
    expect(&with_node(triage(), delay, "done"), "bad_field", Some("d"));
    let delay = json!({"id": "d", "type": "delay"});
    expect(&with_node(triage(), delay, "done"), "bad_field", Some("d"));
    let approval = json!({"id": "a", "type": "approval", "approvers": {}, "message": "?"});
    expect(
        &with_node(triage(), approval, "done"),
        "missing_field",
        Some("a"),
    );
    let approval =
        json!({"id": "a", "type": "approval", "approvers": {"users": ["nobody"]}, "message": "?"});
    expect(
        &with_node(triage(), approval, "done"),
        "bad_field",
        Some("a"),
    );
    let http = json!({"id": "h", "type": "http", "method": "TRACE", "url": "https://x.test"});
    expect(&with_node(triage(), http, "done"), "bad_field", Some("h"));
    let code = json!({"id": "c", "type": "code", "language": "ruby", "source": "1"});
    expect(&with_node(triage(), code, "done"), "bad_field", Some("c"));
    let code =
        json!({"id": "c", "type": "code", "language": "python", "source": "x".repeat(65 * 1024)});
    expect(&with_node(triage(), code, "done"), "too_large", Some("c"));
    let join = json!({"id": "j", "type": "join", "wait": "all"});
    expect(
        &with_node(triage(), join, "done"),
        "unknown_field",
        Some("j"),
    );
}

#[test]
fn retry_waits_double_up_to_the_cap() {
    let retry = Retry {
        max_attempts: 6,
        backoff: Duration::from_secs(2),
        max_backoff: Duration::from_secs(10),
    };
    let waits: Vec<u64> = (1..=6).map(|n| retry.delay_before(n).as_secs()).collect();
    assert_eq!(waits, [0, 2, 4, 8, 10, 10]);
    assert_eq!(retry.delay_before(200), Duration::from_secs(10));
}

#[test]
fn the_input_node_checks_a_runs_input() {
    let input = InputNode {
        required: vec!["text".into(), "lang".into()],
    };
    assert!(
        input
            .check(&json!({"text": "x", "lang": "fr", "more": 1}))
            .is_ok()
    );
    let error = input.check(&json!({"text": "x"})).unwrap_err();
    assert!(error.contains("lang"), "{error}");
    assert!(input.check(&json!(["text"])).is_err());
}

/// Every complete document in docs/workflows.md is one this version accepts, so the examples
/// users copy are valid.
#[test]
fn the_documentation_examples_are_valid_documents() {
    let docs = include_str!("../../../../../docs/workflows.md");
    let mut checked = 0;
    for block in docs.split("```json").skip(1) {
        let text = block.split("```").next().unwrap_or_default();
        let value: Value = serde_json::from_str(text)
            .unwrap_or_else(|error| panic!("a JSON example does not parse: {error}\n{text}"));
        if value.get("nodes").is_none() {
            continue;
        }
        if let Err(problems) = Definition::parse(text) {
            panic!("{}: {problems}", value["name"]);
        }
        checked += 1;
    }
    assert!(checked >= 15, "only {checked} documents were found");
}
