//! Schedule triggers on several replicas of one database: every fire time starts one run, and
//! none is missed, when the leader changes (the real job runners electing their leader on
//! PostgreSQL, each replica on a manual clock) and when schedule jobs run at the same moment.

use hive_core::identity::NewAccount;
use hive_core::kernel::caller::{Caller, Credential, RequestMeta};
use hive_core::kernel::jobs::{Job, JobContext};
use hive_core::workflows::jobs::FireSchedules;
use hive_proto::Role;
use hive_store::{PageRequest, RunFilter, RunTrigger};
use hive_testkit::{TestBackend, TestEnvironment, TestServer, backends};
use serde_json::json;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;
use time::OffsetDateTime;
use time::macros::datetime;

/// The keys every replica of one deployment shares.
const SHARED: [(&str, &str); 2] = [
    (
        "ENCRYPTION_KEY",
        "5a0f3c9e81d27b64a5c8f01e3d9b2a7c6e4f8d1b0a3c5e7f9d2b4a6c8e0f1d3b",
    ),
    ("AUTH_SECRET", "Vq3mX8rT1wZ6pK9sB4nL7dF2hJ5gC0yA"),
];

/// Where every test server's manual clock starts.
const START: OffsetDateTime = datetime!(2026-01-01 00:00 UTC);

/// A replica on the PostgreSQL database `url` (its own data directory), its jobs ticking every
/// `tick` seconds of real time; their schedule is read from its manual clock.
async fn replica(url: &str, prefix: &str, tick: &str) -> TestServer {
    let environment = TestEnvironment::new(TestBackend::Sqlite).await;
    let mut vars = vec![
        ("DATABASE_URL".to_owned(), url.to_owned()),
        ("HIVE_JOBS_TICK_SECONDS".to_owned(), tick.to_owned()),
    ];
    vars.extend(
        SHARED
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned())),
    );
    if let Some(redis) = hive_testkit::redis_url() {
        vars.push(("REDIS_URL".to_owned(), redis));
        vars.push(("HIVE_REDIS_KEY_PREFIX".to_owned(), prefix.to_owned()));
    }
    TestServer::start_in(environment, vars, axum::Router::new()).await
}

async fn admin(server: &TestServer) -> Caller {
    let account = NewAccount {
        email: "owner@example.com".to_owned(),
        display_name: "Owner".to_owned(),
        password: "a long enough test password".to_owned(),
    };
    let user = server
        .hive
        .identity
        .create_first_admin(
            &account,
            &RequestMeta::default(),
            hive_core::kernel::audit::Principal::Cli,
        )
        .await
        .unwrap();
    Caller {
        user: Some(user),
        role: Role::Admin,
        credential: Credential::Cli,
    }
}

/// A workflow fired every minute (saved at the server's clock: its first fire is the next
/// minute).
async fn save_ticking(server: &TestServer, caller: &Caller) {
    let document = json!({
        "name": "ticking",
        "triggers": [{"type": "schedule", "id": "tick", "cron": "* * * * *"}],
        "nodes": [
            {"id": "start", "type": "input"},
            {"id": "done", "type": "output", "value": "{{ run.trigger }}"}
        ],
        "edges": [{"from": "start", "to": "done"}]
    });
    server
        .hive
        .workflows
        .apply(caller, &document.to_string(), &RequestMeta::default())
        .await
        .unwrap();
}

/// How many runs each schedule trigger key has (`schedule:tick:<unix time>`).
async fn scheduled(server: &TestServer) -> BTreeMap<String, usize> {
    let filter = RunFilter {
        trigger: Some(RunTrigger::Schedule),
        ..RunFilter::default()
    };
    let page = server
        .hive
        .store
        .workflows()
        .list_runs(&filter, &PageRequest::first(100).unwrap())
        .await
        .unwrap();
    assert!(page.next_cursor.is_none());
    let mut keys = BTreeMap::new();
    for run in page.items {
        *keys.entry(run.trigger_key.unwrap()).or_insert(0) += 1;
    }
    keys
}

/// The trigger keys of the fires at START + `minutes`, each once.
fn fires(minutes: std::ops::RangeInclusive<i64>) -> BTreeMap<String, usize> {
    minutes
        .map(|m| {
            let at = START + time::Duration::minutes(m);
            (format!("schedule:tick:{}", at.unix_timestamp()), 1)
        })
        .collect()
}

async fn wait_for(what: &str, mut done: impl AsyncFnMut() -> bool) {
    let waiting = async {
        while !done().await {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    };
    tokio::time::timeout(Duration::from_secs(60), waiting)
        .await
        .unwrap_or_else(|_| panic!("{what} did not happen within 60 s"));
}

/// The node of each run of the schedule job, by the clock time it started at.
async fn schedule_job_runs(server: &TestServer) -> Vec<(OffsetDateTime, String)> {
    let page = server
        .hive
        .store
        .job_runs()
        .list(
            Some("workflow-schedules"),
            &PageRequest::first(100).unwrap(),
        )
        .await
        .unwrap();
    let mut runs: Vec<_> = page
        .items
        .into_iter()
        .map(|run| (run.started_at, run.node_id))
        .collect();
    runs.sort();
    runs
}

#[tokio::test]
async fn a_schedule_fires_every_minute_once_across_a_change_of_leader() {
    if hive_testkit::postgres_admin_url().is_none() {
        return;
    }
    let database = hive_testkit::scratch_postgres().await;
    let prefix = format!("hive-test-{}", uuid::Uuid::new_v4().simple());
    let a = replica(database.url(), &prefix, "1").await;
    let b = replica(database.url(), &prefix, "1").await;
    let caller = admin(&a).await;
    save_ticking(&a, &caller).await;

    // Minute 1: whichever replica leads fires it.
    for server in [&a, &b] {
        server.clock.advance(time::Duration::minutes(1));
    }
    wait_for("the first fire", async || {
        scheduled(&a).await == fires(1..=1)
    })
    .await;
    let at_one = START + time::Duration::minutes(1);
    let leader = schedule_job_runs(&a)
        .await
        .into_iter()
        .find(|(at, _)| *at == at_one)
        .map(|(_, node)| node)
        .unwrap();
    let (old, survivor) = if leader == a.hive.node_id {
        (a, b)
    } else {
        assert_eq!(leader, b.hive.node_id);
        (b, a)
    };

    // The leader stops; while nobody leads, minutes 2 and 3 pass. The survivor takes the lead
    // and fires them, and minute 4, once each.
    let (stopped, _environment) = old.stop().await;
    stopped.unwrap();
    survivor.clock.advance(time::Duration::seconds(3 * 60 + 30));
    wait_for("the missed fires", async || {
        scheduled(&survivor).await.len() >= 4
    })
    .await;
    // A few more ticks of the survivor's runner at a later time of the same minute fire nothing
    // more.
    survivor.clock.advance(time::Duration::seconds(10));
    let later = START + time::Duration::seconds(4 * 60 + 40);
    wait_for("a later run of the schedule job", async || {
        schedule_job_runs(&survivor)
            .await
            .iter()
            .any(|(at, node)| *at >= later && *node == survivor.hive.node_id)
    })
    .await;
    assert_eq!(scheduled(&survivor).await, fires(1..=4));
    let runs = schedule_job_runs(&survivor).await;
    assert!(
        runs.iter()
            .filter(|(at, _)| *at > at_one)
            .all(|(_, node)| *node == survivor.hive.node_id),
        "after the change only the survivor runs the job: {runs:?}"
    );
    survivor.stop().await.0.unwrap();
}

/// Runs the schedule job once, as a leader would, on `server`'s store and clock; the number of
/// runs its note says it started.
async fn fire(server: &TestServer) -> usize {
    let job = FireSchedules {
        starter: Arc::clone(&server.hive.workflow_starter),
        every: Duration::from_secs(1),
    };
    let context = JobContext {
        store: Arc::clone(&server.hive.store),
        clock: Arc::clone(&server.hive.clock),
    };
    let note = job.run(&context).await.unwrap();
    note.strip_prefix("started ")
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("unexpected note: {note}"))
}

/// Waits until a runner has recorded the end of its first `workflow-schedules` run.
async fn runners_passed(server: &TestServer) {
    for _ in 0..400 {
        let runs = server
            .hive
            .store
            .job_runs()
            .list(Some("workflow-schedules"), &PageRequest::first(10).unwrap())
            .await
            .unwrap();
        if runs.items.iter().any(|run| run.finished_at.is_some()) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("no runner ran workflow-schedules within 20 s of its start");
}

#[tokio::test]
async fn schedule_jobs_running_at_once_start_each_fire_once() {
    for backend in backends() {
        // Two replicas on PostgreSQL; on SQLite (one process only) the same one twice. Their
        // own runners tick hourly: only the calls below fire.
        let (a, b, _database) = match backend {
            TestBackend::Sqlite => {
                let server = TestServer::builder(backend)
                    .var("HIVE_JOBS_TICK_SECONDS", "3600")
                    .start()
                    .await;
                (server, None, None)
            }
            TestBackend::Postgres => {
                let database = hive_testkit::scratch_postgres().await;
                let prefix = format!("hive-test-{}", uuid::Uuid::new_v4().simple());
                let a = replica(database.url(), &prefix, "3600").await;
                let b = replica(database.url(), &prefix, "3600").await;
                (a, Some(b), Some(database))
            }
        };
        let b_or_a = b.as_ref().unwrap_or(&a);
        // The servers' own runners pass over every job once as they start: that pass must be
        // over before there is a fire to take, or it may take one (a loaded machine delays it).
        runners_passed(&a).await;
        let caller = admin(&a).await;
        save_ticking(&a, &caller).await;
        for minute in 1..=3 {
            for server in std::iter::once(&a).chain(&b) {
                server.clock.advance(time::Duration::minutes(1));
            }
            let (one, two, three, four) =
                tokio::join!(fire(&a), fire(b_or_a), fire(&a), fire(b_or_a));
            assert_eq!(
                one + two + three + four,
                1,
                "{backend:?}, minute {minute}: one job started the fire's run"
            );
            assert_eq!(scheduled(&a).await, fires(1..=minute), "{backend:?}");
        }
        if let Some(b) = b {
            b.stop().await.0.unwrap();
        }
        a.stop().await.0.unwrap();
    }
}
