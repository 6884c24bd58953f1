//! Singleton jobs run on exactly one of several replicas sharing one PostgreSQL.

use crate::process::{HiveProcess, SHARED_SECRETS, node_id, poll_until};
use sqlx::Row;
use std::time::Duration;
use time::OffsetDateTime;

#[derive(Debug, Clone)]
struct Run {
    node: String,
    started: OffsetDateTime,
    finished: Option<OffsetDateTime>,
}

async fn runs(pool: &sqlx::PgPool) -> Vec<Run> {
    sqlx::query(
        "SELECT node_id, started_at, finished_at FROM job_runs \
         WHERE job = 'prune-job-history' ORDER BY started_at, id",
    )
    .fetch_all(pool)
    .await
    .unwrap()
    .iter()
    .map(|row| Run {
        node: row.get("node_id"),
        started: row.get("started_at"),
        finished: row.get("finished_at"),
    })
    .collect()
}

/// Polls the run history until `done` holds (the jobs tick every second).
async fn wait_for_runs(pool: &sqlx::PgPool, done: impl Fn(&[Run]) -> bool) -> Vec<Run> {
    poll_until("the job runs", Duration::from_secs(60), async || {
        let now = runs(pool).await;
        done(&now).then_some(now)
    })
    .await
}

fn assert_one_at_a_time(runs: &[Run]) {
    for pair in runs.windows(2) {
        let before = pair[0].finished.expect("an earlier run has finished");
        assert!(pair[1].started >= before, "two runs overlapped: {pair:?}");
    }
}

#[tokio::test]
async fn the_leader_job_runs_once_with_two_processes_and_fails_over() {
    let Some(_) = hive_testkit::postgres_admin_url() else {
        return;
    };
    let database = hive_testkit::scratch_postgres().await;
    let pool = sqlx::PgPool::connect(database.url()).await.unwrap();
    let mut vars = vec![
        ("DATABASE_URL", database.url()),
        ("HIVE_JOBS_TICK_SECONDS", "1"),
        ("HIVE_JOB_HISTORY_PRUNE_INTERVAL_SECONDS", "1"),
        ("LOG_FORMAT", "json"),
        ("LOG_LEVEL", "info"),
    ];
    vars.extend_from_slice(&SHARED_SECRETS);
    let (dir_a, dir_b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let a = HiveProcess::start(dir_a.path(), &vars).await;
    let b = HiveProcess::start(dir_b.path(), &vars).await;
    let (id_a, id_b) = (node_id(&a.stdout()), node_id(&b.stdout()));
    assert_ne!(id_a, id_b);

    let first = wait_for_runs(&pool, |runs| {
        runs.iter().filter(|r| r.finished.is_some()).count() >= 4
    })
    .await;
    let leader = first[0].node.clone();
    assert!(
        first.iter().all(|run| run.node == leader),
        "only one replica runs the job: {first:?}"
    );
    assert_one_at_a_time(&first[..first.len() - 1]);

    // The leader goes away; the other replica takes over.
    let (old, survivor, survivor_id) = if leader == id_a {
        (a, b, id_b)
    } else {
        assert_eq!(leader, id_b);
        (b, a, id_a)
    };
    let (status, _, _) = old.stop().await;
    assert!(status.success());
    let led_by_old = runs(&pool).await.len();
    let after = wait_for_runs(&pool, |runs| {
        runs.iter()
            .filter(|r| r.node == survivor_id && r.finished.is_some())
            .count()
            >= 2
    })
    .await;
    assert!(
        after[led_by_old..]
            .iter()
            .all(|run| run.node == survivor_id),
        "after fail-over only the survivor runs the job: {after:?}"
    );
    assert_one_at_a_time(&after[..after.len() - 1]);
    assert!(survivor.stop().await.0.success());
    pool.close().await;
}
