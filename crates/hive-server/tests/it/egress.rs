//! The server's egress client: a refused outbound request is written to the audit log with
//! its reason and the URL's origin (never its path or query) and counted.

use crate::support::*;
use hive_core::kernel::egress::Purpose;
use hive_egress::{CallLimits, EgressError, EgressRequest};
use hive_testkit::backends;
use std::time::Duration;

#[tokio::test]
async fn refused_requests_are_audited_with_their_origin_only() {
    // Counters land in this recorder: the test's task runs every send on this thread.
    let recorder = metrics_util::debugging::DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    let _recording = metrics::set_default_local_recorder(&recorder);
    for backend in backends() {
        let server = identity_server(backend).await;
        let limits = CallLimits::new(Duration::from_secs(5), 64 * 1024);
        let purpose = Purpose {
            principal: hive_core::kernel::audit::Principal::User(uuid::Uuid::nil()),
            feature: "agent_card",
            meta: Default::default(),
        };
        let cases = [
            (
                "http://169.254.169.254/latest/meta-data/iam?token=s3cr3t",
                "metadata",
            ),
            (
                "http://10.0.0.7:80/internal/admin?key=hunter2hunter2",
                "private_range",
            ),
            ("http://localhost/.well-known/agent-card.json", "local_name"),
        ];
        for (url, reason) in cases {
            let refused = server
                .hive
                .egress
                .send(EgressRequest::get(url), &limits, &purpose)
                .await;
            assert!(
                matches!(&refused, Err(EgressError::Refused(r)) if r.reason.as_str() == reason),
                "{url}: {refused:?}"
            );
        }
        let records: Vec<_> = records_of(&server, "egress.refused").await;
        let seen: Vec<(Option<&str>, &str)> = records
            .iter()
            .map(|r| (r.target.as_deref(), r.detail.as_str()))
            .collect();
        assert_eq!(
            seen,
            [
                (
                    Some("http://169.254.169.254:80"),
                    r#"{"feature":"agent_card","reason":"metadata"}"#
                ),
                (
                    Some("http://10.0.0.7:80"),
                    r#"{"feature":"agent_card","reason":"private_range"}"#
                ),
                (
                    Some("http://localhost:80"),
                    r#"{"feature":"agent_card","reason":"local_name"}"#
                ),
            ],
            "{backend:?}"
        );
        assert!(
            records
                .iter()
                .all(|r| r.actor == format!("user:{}", uuid::Uuid::nil())
                    && r.outcome == hive_store::AuditOutcome::Denied)
        );
    }
    let refusals: Vec<(String, u64)> = snapshotter
        .snapshot()
        .into_vec()
        .into_iter()
        .filter(|(key, ..)| key.key().name() == "hive_egress_refusals_total")
        .map(|(key, _, _, value)| {
            let reason = key
                .key()
                .labels()
                .find(|l| l.key() == "reason")
                .map(|l| l.value().to_owned())
                .unwrap_or_default();
            let count = match value {
                metrics_util::debugging::DebugValue::Counter(n) => n,
                other => panic!("{other:?}"),
            };
            (reason, count)
        })
        .collect();
    let runs = u64::try_from(backends().len()).unwrap();
    let mut refusals = refusals;
    refusals.sort();
    assert_eq!(
        refusals,
        [
            ("local_name".to_owned(), runs),
            ("metadata".to_owned(), runs),
            ("private_range".to_owned(), runs)
        ]
    );
}

#[tokio::test]
async fn hive_never_calls_its_own_listeners() {
    let metrics = "127.0.0.1:19092";
    let server = hive_testkit::TestServer::builder(hive_testkit::TestBackend::Sqlite)
        .var("HIVE_METRICS_LISTEN", metrics)
        .start()
        .await;
    let own = server.base_url.trim_start_matches("http://").to_owned();
    // Allowlisted with their ports, so that only the self-connection rule stands in the way.
    let settings = hive_core::kernel::settings::SecuritySettings {
        egress_host_allowlist: vec![own.clone(), metrics.to_owned()],
    };
    let cli = hive_core::kernel::caller::Caller::cli();
    let meta = Default::default();
    let applied = server
        .hive
        .settings
        .put_security(&cli, settings, None, &meta);
    applied.await.unwrap();
    for url in [
        format!("http://{own}/api/health"),
        format!("http://{metrics}/metrics"),
    ] {
        let decision = server.hive.egress.check(&url).await;
        assert!(
            matches!(&decision, hive_egress::Decision::Refused(r) if r.reason.as_str() == "self_connection"),
            "{url}: {decision:?}"
        );
    }
    let elsewhere = format!("http://{}/", own.replace("127.0.0.1", "127.0.0.2"));
    let other = server.hive.egress.check(&elsewhere).await;
    assert!(
        matches!(&other, hive_egress::Decision::Refused(r) if r.reason.as_str() == "port"),
        "another address on the same port is judged by the usual rules: {other:?}"
    );
}
