//! `hive egress check`: the decision and its reason, exit 0 when allowed and 1 when refused,
//! and nothing connected to.

use crate::process::run_to_exit;

#[tokio::test]
async fn egress_check_prints_the_decision_and_exits_by_it() {
    let dir = tempfile::tempdir().unwrap();
    // A listener on the one loopback port the allowlist names: `check` must never connect.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let port = listener.local_addr().unwrap().port();
    let allowlist = format!("127.0.0.1:{port}");
    let vars = [("HIVE_EGRESS_FETCH_HOST_ALLOWLIST", allowlist.as_str())];

    let refused = [
        ("http://169.254.169.254/latest/meta-data/iam", "metadata"),
        ("http://10.1.2.3/", "private_range"),
        ("http://[::ffff:127.0.0.1]/", "embedded_ipv4"),
        ("http://user:pw@93.184.215.14/", "userinfo"),
        ("gopher://93.184.215.14/", "scheme"),
        ("http://93.184.215.14:8080/", "port"),
        ("http://metadata.google.internal/", "metadata"),
        ("http://printer.local./", "local_name"),
        ("http://127.0.0.1/", "private_range"),
    ];
    for (url, reason) in refused {
        let (status, stdout, stderr) =
            run_to_exit(dir.path(), &["egress", "check", url], &vars).await;
        assert_eq!(status.code(), Some(1), "{url}: {stdout}{stderr}");
        assert!(
            stderr.contains(&format!("refused ({reason})")),
            "{url}: {stderr}"
        );
        assert!(
            !stderr.contains("meta-data/iam"),
            "the path is never shown: {stderr}"
        );
    }

    let allowed = format!("http://127.0.0.1:{port}/anything?x=1");
    let (status, stdout, stderr) =
        run_to_exit(dir.path(), &["egress", "check", &allowed], &vars).await;
    assert_eq!(status.code(), Some(0), "{stdout}{stderr}");
    assert!(
        stdout.contains(&format!(
            "allowed: http://127.0.0.1:{port} -> 127.0.0.1:{port} (allowlisted)"
        )),
        "{stdout}"
    );
    assert!(
        matches!(listener.accept(), Err(e) if e.kind() == std::io::ErrorKind::WouldBlock),
        "check connected to nothing"
    );

    let (status, _, stderr) = run_to_exit(
        dir.path(),
        &["egress", "check", "http://127.0.0.1/"],
        &[("HIVE_EGRESS_FETCH_HOST_ALLOWLIST", "not a host!")],
    )
    .await;
    assert_eq!(status.code(), Some(1));
    assert!(
        stderr.contains("HIVE_EGRESS_FETCH_HOST_ALLOWLIST"),
        "{stderr}"
    );
}

#[tokio::test]
async fn egress_check_honours_the_admins_stored_allowlist() {
    use crate::process::{HiveProcess, client};
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path();
    let private = "http://10.9.8.7:8443/v1/models";
    let (status, _, stderr) = run_to_exit(path, &["egress", "check", private], &[]).await;
    assert_eq!(status.code(), Some(1), "{stderr}");
    assert!(!path.join("hive-data").exists(), "a check creates nothing");

    crate::accounts::create_admin(path, "root@example.com").await;
    let token = crate::accounts::create_token(path, "root@example.com", "ops", None).await;

    let hive = HiveProcess::start(path, &[]).await;
    let changed = client()
        .put(format!("{}/api/v1/settings/security", hive.base_url))
        .bearer_auth(&token)
        .json(&serde_json::json!({ "egressHostAllowlist": ["10.9.8.7:8443"] }))
        .send()
        .await
        .unwrap();
    assert_eq!(changed.status(), 200);
    let (stopped, _, _) = hive.stop().await;
    assert!(stopped.success());

    let (status, stdout, stderr) = run_to_exit(path, &["egress", "check", private], &[]).await;
    assert_eq!(status.code(), Some(0), "{stdout}{stderr}");
    assert!(
        stdout.contains("allowed: http://10.9.8.7:8443 -> 10.9.8.7:8443 (allowlisted)"),
        "{stdout}"
    );
}

#[tokio::test]
async fn egress_check_says_when_it_cannot_read_the_admins_list() {
    use crate::process::HiveProcess;
    let dir = tempfile::tempdir().unwrap();
    // A running server holds the SQLite data directory: the check cannot open it.
    let hive = HiveProcess::start(dir.path(), &[]).await;
    let (status, _, stderr) =
        run_to_exit(dir.path(), &["egress", "check", "http://10.9.8.7/"], &[]).await;
    assert_eq!(status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("the admin's allowlist was not read"),
        "{stderr}"
    );
    assert!(stderr.contains("refused (private_range)"), "{stderr}");
    let (stopped, _, _) = hive.stop().await;
    assert!(stopped.success());
}
