//! What a run does next, read from its definition and its journal alone: which nodes are ready,
//! which are off the path taken (skipped), which wait, and whether the run is over. Pure, so
//! the executor that follows it can crash anywhere and the next one plans the same.
//!
//! A node is ready when every node with an edge into it is resolved (succeeded or skipped) and
//! at least one of those edges was taken; when all are resolved and none was taken it is
//! skipped (so a branch not chosen ends quietly and a join after it still runs). An edge is
//! taken when its source succeeded and either has no label (an approval's unlabeled edges are
//! taken only when approved) or its label is the branch the source chose.

use super::definition::{Definition, NodeKind};
use hive_store::{StepRow, StepStatus};
use std::collections::{BTreeMap, HashMap, HashSet};
use time::OffsetDateTime;

/// A step interrupted (a crash, a lost lease) this many times more than its attempts allow
/// fails instead of running again: a step that takes its replica down must not do so forever.
pub const INTERRUPTIONS_ALLOWED: i64 = 2;

/// The label an approval's decision gives its step.
pub const APPROVED: &str = "approved";
pub const REJECTED: &str = "rejected";

#[derive(Debug, Default, PartialEq, Eq)]
pub struct Plan {
    /// Nodes to start now, each with the attempt it will be.
    pub ready: Vec<(String, i64)>,
    /// Nodes off the path taken, to journal as skipped.
    pub skip: Vec<String>,
    /// Waiting delays whose time has come.
    pub due: Vec<String>,
    /// The earliest time a waiting step or a retry becomes due (none: only a signal helps).
    pub next_wake: Option<OffsetDateTime>,
    /// Steps that wait for something outside the run (an approval, a sub-workflow).
    pub awaiting: Vec<String>,
    pub end: Option<End>,
}

#[derive(Debug, PartialEq, Eq)]
pub enum End {
    /// Every node is resolved: the run succeeded (with the output node's output, if any).
    Succeeded,
    /// A step failed for good.
    Failed(String),
}

/// Plans the run at `now`. `in_flight` are the steps this executor runs at the moment (their
/// journal says running; they are not interrupted).
pub fn plan(
    definition: &Definition,
    journal: &HashMap<String, StepRow>,
    in_flight: &HashSet<String>,
    now: OffsetDateTime,
) -> Plan {
    let mut plan = Plan::default();
    let mut resolved_all = true;
    for node in &definition.nodes {
        let id = node.id.as_str();
        if in_flight.contains(id) {
            resolved_all = false;
            continue;
        }
        match journal.get(id) {
            Some(step) => match step.status {
                StepStatus::Succeeded => {
                    if matches!(node.kind, NodeKind::Approval(_))
                        && step.branch.as_deref() == Some(REJECTED)
                        && !definition
                            .outgoing(id)
                            .iter()
                            .any(|edge| edge.when.as_deref() == Some(REJECTED))
                    {
                        plan.end = Some(End::Failed(format!(
                            "node '{id}': the approval was rejected{}",
                            decided_by(step)
                        )));
                        return plan;
                    }
                }
                StepStatus::Skipped => {}
                StepStatus::Cancelled => {
                    plan.end = Some(End::Failed(format!("node '{id}' was cancelled")));
                    return plan;
                }
                StepStatus::Failed => match step.wake_at {
                    // A failed attempt with a retry to come.
                    Some(at) => {
                        resolved_all = false;
                        if at <= now {
                            plan.ready.push((id.to_owned(), step.attempt + 1));
                        } else {
                            plan.next_wake = earliest(plan.next_wake, at);
                        }
                    }
                    None => {
                        let error = step.error.as_deref().unwrap_or("failed");
                        plan.end = Some(End::Failed(format!("node '{id}': {error}")));
                        return plan;
                    }
                },
                StepStatus::Running => {
                    // Started by an executor that is gone: run it again.
                    resolved_all = false;
                    let allowed = i64::from(node.retry.max_attempts) + INTERRUPTIONS_ALLOWED;
                    if step.attempt >= allowed {
                        plan.end = Some(End::Failed(format!(
                            "node '{id}': interrupted {} times, it is not run again",
                            step.attempt
                        )));
                        return plan;
                    }
                    plan.ready.push((id.to_owned(), step.attempt + 1));
                }
                StepStatus::Waiting => {
                    resolved_all = false;
                    match (&node.kind, step.wake_at) {
                        (NodeKind::Delay(_), Some(at)) if at <= now => {
                            plan.due.push(id.to_owned());
                        }
                        (NodeKind::Delay(_), Some(at)) => {
                            plan.next_wake = earliest(plan.next_wake, at);
                        }
                        _ => plan.awaiting.push(id.to_owned()),
                    }
                }
            },
            None => {
                resolved_all = false;
                match readiness(definition, journal, id) {
                    Readiness::Ready => plan.ready.push((id.to_owned(), 1)),
                    Readiness::Skip => plan.skip.push(id.to_owned()),
                    Readiness::Blocked => {}
                }
            }
        }
    }
    if resolved_all {
        plan.end = Some(End::Succeeded);
    }
    plan
}

enum Readiness {
    Ready,
    Skip,
    Blocked,
}

fn readiness(definition: &Definition, journal: &HashMap<String, StepRow>, id: &str) -> Readiness {
    let incoming = definition.incoming(id);
    if incoming.is_empty() {
        // The input node.
        return Readiness::Ready;
    }
    let mut taken = false;
    for edge in incoming {
        let Some(source) = journal.get(&edge.from) else {
            return Readiness::Blocked;
        };
        match source.status {
            StepStatus::Succeeded => {
                let source_kind = definition.node(&edge.from).map(|node| &node.kind);
                if edge_taken(source_kind, edge.when.as_deref(), source.branch.as_deref()) {
                    taken = true;
                }
            }
            StepStatus::Skipped => {}
            _ => return Readiness::Blocked,
        }
    }
    if taken {
        Readiness::Ready
    } else {
        Readiness::Skip
    }
}

fn edge_taken(source: Option<&NodeKind>, when: Option<&str>, branch: Option<&str>) -> bool {
    match (when, source) {
        (Some(label), _) => branch == Some(label),
        (None, Some(NodeKind::Approval(_))) => branch == Some(APPROVED),
        (None, _) => true,
    }
}

fn earliest(current: Option<OffsetDateTime>, at: OffsetDateTime) -> Option<OffsetDateTime> {
    Some(current.map_or(at, |current| current.min(at)))
}

fn decided_by(step: &StepRow) -> String {
    step.output
        .as_deref()
        .and_then(|output| serde_json::from_str::<serde_json::Value>(output).ok())
        .and_then(|output| {
            output
                .get("by")
                .and_then(|by| by.as_str())
                .map(str::to_owned)
        })
        .map(|by| format!(" by {by}"))
        .unwrap_or_default()
}

/// The outputs of the succeeded nodes, as templates and conditions see them
/// (`nodes.<id>.output`); a map's items are inside their node's output, not listed apart.
pub fn outputs(journal: &HashMap<String, StepRow>) -> BTreeMap<String, serde_json::Value> {
    journal
        .values()
        .filter(|step| step.status == StepStatus::Succeeded && step.step_key == step.node_id)
        .map(|step| {
            let output = step
                .output
                .as_deref()
                .and_then(|text| serde_json::from_str(text).ok())
                .unwrap_or(serde_json::Value::Null);
            (
                step.node_id.clone(),
                serde_json::json!({ "output": output }),
            )
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;
    use uuid::Uuid;

    const NOW: OffsetDateTime = datetime!(2026-12-01 12:00 UTC);

    fn definition(json: serde_json::Value) -> Definition {
        Definition::parse(&json.to_string()).unwrap()
    }

    fn step(key: &str, status: StepStatus, branch: Option<&str>) -> (String, StepRow) {
        (
            key.to_owned(),
            StepRow {
                run_id: Uuid::nil(),
                step_key: key.to_owned(),
                node_id: key.to_owned(),
                status,
                attempt: 1,
                input: None,
                output: Some("{}".into()),
                branch: branch.map(str::to_owned),
                error: (status == StepStatus::Failed).then(|| "boom".to_owned()),
                wake_at: None,
                started_at: NOW,
                finished_at: Some(NOW),
            },
        )
    }

    fn branching() -> Definition {
        definition(serde_json::json!({
            "name": "branching",
            "nodes": [
                {"id": "start", "type": "input"},
                {"id": "check", "type": "condition", "expression": "input.n > 1"},
                {"id": "big", "type": "transform", "value": "big"},
                {"id": "small", "type": "transform", "value": "small"},
                {"id": "after", "type": "join"}
            ],
            "edges": [
                {"from": "start", "to": "check"},
                {"from": "check", "to": "big", "when": "true"},
                {"from": "check", "to": "small", "when": "false"},
                {"from": "big", "to": "after"},
                {"from": "small", "to": "after"}
            ]
        }))
    }

    fn names(ready: &[(String, i64)]) -> Vec<&str> {
        ready.iter().map(|(id, _)| id.as_str()).collect()
    }

    #[test]
    fn the_input_node_is_ready_first_and_nothing_else() {
        let plan = plan(&branching(), &HashMap::new(), &HashSet::new(), NOW);
        assert_eq!(names(&plan.ready), ["start"]);
        assert!(plan.skip.is_empty() && plan.end.is_none());
    }

    #[test]
    fn the_branch_not_taken_is_skipped_and_the_join_waits_for_it() {
        let journal: HashMap<_, _> = [
            step("start", StepStatus::Succeeded, None),
            step("check", StepStatus::Succeeded, Some("true")),
        ]
        .into();
        let plan = plan(&branching(), &journal, &HashSet::new(), NOW);
        assert_eq!(names(&plan.ready), ["big"]);
        assert_eq!(plan.skip, ["small"]);

        let journal: HashMap<_, _> = [
            step("start", StepStatus::Succeeded, None),
            step("check", StepStatus::Succeeded, Some("true")),
            step("big", StepStatus::Succeeded, None),
            step("small", StepStatus::Skipped, None),
        ]
        .into();
        let plan = super::plan(&branching(), &journal, &HashSet::new(), NOW);
        assert_eq!(names(&plan.ready), ["after"]);
    }

    #[test]
    fn a_run_whose_nodes_are_all_resolved_succeeded() {
        let journal: HashMap<_, _> = [
            step("start", StepStatus::Succeeded, None),
            step("check", StepStatus::Succeeded, Some("false")),
            step("big", StepStatus::Skipped, None),
            step("small", StepStatus::Succeeded, None),
            step("after", StepStatus::Succeeded, None),
        ]
        .into();
        let plan = plan(&branching(), &journal, &HashSet::new(), NOW);
        assert_eq!(plan.end, Some(End::Succeeded));
    }

    #[test]
    fn a_failed_step_without_retry_ends_the_run_naming_it() {
        let journal: HashMap<_, _> = [
            step("start", StepStatus::Succeeded, None),
            step("check", StepStatus::Failed, None),
        ]
        .into();
        let plan = plan(&branching(), &journal, &HashSet::new(), NOW);
        assert_eq!(plan.end, Some(End::Failed("node 'check': boom".into())));
    }

    #[test]
    fn a_failed_attempt_with_a_retry_waits_for_its_time_then_runs_again() {
        let (key, mut failed) = step("check", StepStatus::Failed, None);
        failed.wake_at = Some(NOW + time::Duration::seconds(5));
        let journal: HashMap<_, _> = [step("start", StepStatus::Succeeded, None), (key, failed)]
            .into_iter()
            .collect();
        let early = plan(&branching(), &journal, &HashSet::new(), NOW);
        assert!(early.ready.is_empty() && early.end.is_none());
        assert_eq!(early.next_wake, Some(NOW + time::Duration::seconds(5)));
        let later = plan(
            &branching(),
            &journal,
            &HashSet::new(),
            NOW + time::Duration::seconds(5),
        );
        assert_eq!(later.ready, [("check".to_owned(), 2)]);
    }

    #[test]
    fn a_step_left_running_by_a_gone_executor_runs_again_unless_in_flight_here() {
        let journal: HashMap<_, _> = [
            step("start", StepStatus::Succeeded, None),
            step("check", StepStatus::Running, None),
        ]
        .into();
        let plan_after_crash = plan(&branching(), &journal, &HashSet::new(), NOW);
        assert_eq!(plan_after_crash.ready, [("check".to_owned(), 2)]);
        let here: HashSet<String> = ["check".to_owned()].into();
        let plan_here = plan(&branching(), &journal, &here, NOW);
        assert!(plan_here.ready.is_empty() && plan_here.end.is_none());
    }

    #[test]
    fn a_step_interrupted_too_often_fails() {
        let (key, mut running) = step("check", StepStatus::Running, None);
        running.attempt = 1 + INTERRUPTIONS_ALLOWED;
        let journal: HashMap<_, _> = [step("start", StepStatus::Succeeded, None), (key, running)]
            .into_iter()
            .collect();
        let plan = plan(&branching(), &journal, &HashSet::new(), NOW);
        assert!(matches!(plan.end, Some(End::Failed(ref why)) if why.contains("interrupted")));
    }

    fn approval() -> Definition {
        definition(serde_json::json!({
            "name": "approval",
            "nodes": [
                {"id": "start", "type": "input"},
                {"id": "ok", "type": "approval", "approvers": {"role": "admin"}, "message": "go?"},
                {"id": "ship", "type": "transform", "value": 1}
            ],
            "edges": [{"from": "start", "to": "ok"}, {"from": "ok", "to": "ship"}]
        }))
    }

    #[test]
    fn a_waiting_approval_awaits_and_its_rejection_without_a_rejected_edge_fails() {
        let journal: HashMap<_, _> = [
            step("start", StepStatus::Succeeded, None),
            step("ok", StepStatus::Waiting, None),
        ]
        .into();
        let waiting = plan(&approval(), &journal, &HashSet::new(), NOW);
        assert_eq!(waiting.awaiting, ["ok"]);
        assert!(waiting.ready.is_empty() && waiting.end.is_none());

        let journal: HashMap<_, _> = [
            step("start", StepStatus::Succeeded, None),
            step("ok", StepStatus::Succeeded, Some(REJECTED)),
        ]
        .into();
        let rejected = plan(&approval(), &journal, &HashSet::new(), NOW);
        assert!(matches!(rejected.end, Some(End::Failed(ref why)) if why.contains("rejected")));

        let journal: HashMap<_, _> = [
            step("start", StepStatus::Succeeded, None),
            step("ok", StepStatus::Succeeded, Some(APPROVED)),
        ]
        .into();
        let approved = plan(&approval(), &journal, &HashSet::new(), NOW);
        assert_eq!(names(&approved.ready), ["ship"]);
    }
}
