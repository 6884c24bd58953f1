use crate::process::run_to_exit;

#[tokio::test]
async fn config_check_prints_what_it_found_with_secrets_masked() {
    let dir = tempfile::tempdir().unwrap();
    let secret = "Zq8vN3kW1xR7tY5uB2mC9pL4sD6fG0hJ";
    let (status, stdout, stderr) = run_to_exit(
        dir.path(),
        &["config", "check"],
        &[
            ("AUTH_SECRET", secret),
            ("HIVE_LISTEN", "127.0.0.1:9999"),
            (
                "DATABASE_URL",
                "postgres://hive:DbPassw0rdValue@db.internal:5432/hive",
            ),
        ],
    )
    .await;
    assert!(status.success(), "{stderr}");
    assert!(
        stdout.contains("HIVE_LISTEN") && stdout.contains("127.0.0.1:9999"),
        "{stdout}"
    );
    assert!(stdout.contains("AUTH_SECRET"), "{stdout}");
    assert!(
        !stdout.contains(secret) && !stderr.contains(secret),
        "{stdout}"
    );
    assert!(!stdout.contains("DbPassw0rdValue"), "{stdout}");
    assert!(
        !dir.path().join("hive-data").exists(),
        "config check creates nothing"
    );
}

#[tokio::test]
async fn config_check_names_the_first_invalid_variable_and_exits_non_zero() {
    let dir = tempfile::tempdir().unwrap();
    for (name, value) in [
        ("HIVE_LISTEN", "not-an-address"),
        ("HIVE_BODY_LIMIT_BYTES", "12"),
        ("HIVE_CLIENT_IP_SOURCE", "auto"),
        ("ENCRYPTION_KEY", "abc"),
    ] {
        let (status, stdout, stderr) =
            run_to_exit(dir.path(), &["config", "check"], &[(name, value)]).await;
        assert!(!status.success(), "{name}");
        assert!(stderr.contains(name), "{name}: {stderr}");
        assert!(stdout.is_empty(), "{name}: {stdout}");
    }
}

#[tokio::test]
async fn config_check_reports_unknown_hive_variables() {
    let dir = tempfile::tempdir().unwrap();
    let (status, stdout, stderr) = run_to_exit(
        dir.path(),
        &["config", "check"],
        &[("HIVE_LISTN", "127.0.0.1:1")],
    )
    .await;
    assert!(status.success());
    let output = format!("{stdout}{stderr}");
    assert!(output.contains("HIVE_LISTN"), "{output}");
    assert!(
        output.contains("HIVE_LISTEN"),
        "suggests the right name: {output}"
    );
}
