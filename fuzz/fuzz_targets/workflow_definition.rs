//! The workflow definition validator (`hive_core::workflows::definition::Definition::parse`):
//! any text as a workflow document, and any JSON as a Pilox graph for `import::import_pilox`
//! (whose document then goes through the validator).
//!
//! Properties of an accepted definition: exactly one input node, with no incoming edge; node
//! ids valid and distinct; every edge between two existing, distinct nodes; no node is its own
//! ancestor (no cycle); every other node is reachable from the input.

#![no_main]

use hive_core::workflows::definition::{Definition, NodeKind, valid_id};
use hive_core::workflows::import::import_pilox;
use libfuzzer_sys::fuzz_target;
use std::collections::BTreeSet;

fn check(definition: &Definition) {
    let inputs = definition
        .nodes
        .iter()
        .filter(|node| matches!(node.kind, NodeKind::Input(_)))
        .count();
    assert_eq!(inputs, 1);
    let input = &definition.input_node().id;
    assert!(definition.incoming(input).is_empty());
    let mut ids = BTreeSet::new();
    for node in &definition.nodes {
        assert!(valid_id(&node.id), "{:?}", node.id);
        assert!(ids.insert(node.id.as_str()), "{:?} twice", node.id);
    }
    for edge in &definition.edges {
        assert!(ids.contains(edge.from.as_str()) && ids.contains(edge.to.as_str()));
        assert_ne!(edge.from, edge.to);
    }
    for node in &definition.nodes {
        let ancestors = definition.ancestors(&node.id);
        assert!(!ancestors.contains(&node.id), "{:?} is in a cycle", node.id);
        if &node.id != input {
            assert!(ancestors.contains(input), "{:?} is unreachable", node.id);
        }
    }
}

fuzz_target!(
    init: {
        // The CEL parser (a dependency) panics on some malformed conditions (`1 +`, `x > 1*`);
        // Hive parses on a thread of its own, named `cel-parse`, and turns that thread's panic
        // into a syntax error when it joins it (`workflows::expression`, tested there). Such a
        // panic is handled, not a crash; any other still aborts the run.
        let abort = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if std::thread::current().name() != Some("cel-parse") {
                abort(info);
            }
        }));
    },
    |data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(definition) = Definition::parse(text) {
        check(&definition);
    }
    if let Ok(graph) = serde_json::from_str::<serde_json::Value>(text) {
        let report = import_pilox(&graph);
        if let Ok(definition) = Definition::parse(&report.document.to_string()) {
            check(&definition);
        }
    }
});
