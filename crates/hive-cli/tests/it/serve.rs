use crate::process::{HiveProcess, client, run_to_exit};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

fn setup_token(stderr: &str) -> String {
    let rest = stderr
        .split("/setup#token=")
        .nth(1)
        .unwrap_or_else(|| panic!("no setup link in:\n{stderr}"));
    rest.split_whitespace().next().unwrap().to_owned()
}

#[tokio::test]
async fn zero_config_start_creates_the_data_dir_and_a_restart_keeps_the_secrets() {
    let dir = tempfile::tempdir().unwrap();
    let hive = HiveProcess::start(dir.path(), &[]).await;

    let data = dir.path().join("hive-data");
    let secrets = data.join("secrets.json");
    assert_eq!(mode(&data), 0o700);
    assert_eq!(mode(&secrets), 0o600);
    assert!(
        data.join("hive.db").is_file(),
        "SQLite lives in the data dir"
    );
    let health = client()
        .get(format!("{}/api/health", hive.base_url))
        .send()
        .await
        .unwrap();
    assert_eq!(health.status(), 200);
    assert_eq!(health.text().await.unwrap(), r#"{"ok":true}"#);
    let first_secrets = std::fs::read(&secrets).unwrap();
    let first_token = setup_token(&hive.stderr());
    assert_eq!(first_token.len(), 64);

    let (status, _, stderr) = hive.stop().await;
    assert!(status.success(), "SIGTERM exits 0: {status:?}\n{stderr}");

    let again = HiveProcess::start(dir.path(), &[]).await;
    assert_eq!(
        std::fs::read(&secrets).unwrap(),
        first_secrets,
        "secrets are reused"
    );
    assert_eq!(setup_token(&again.stderr()), first_token);
    let (status, _, _) = again.stop().await;
    assert!(status.success());
}

/// The generated setup token lives while setup is open: printed on every start until the
/// first admin exists, then gone from the secrets file, never printed again and refused.
#[tokio::test]
async fn the_setup_link_is_retired_once_the_first_admin_exists() {
    let dir = tempfile::tempdir().unwrap();
    let secrets = dir.path().join("hive-data/secrets.json");
    let hive = HiveProcess::start(dir.path(), &[]).await;
    let token = setup_token(&hive.stderr());
    assert!(std::fs::read_to_string(&secrets).unwrap().contains(&token));
    let setup = |base: String, email: &'static str| {
        let token = token.clone();
        async move {
            client()
                .post(format!("{base}/api/v1/setup"))
                .header("x-hive-setup-token", token)
                .json(&serde_json::json!({
                    "email": email,
                    "displayName": "Admin",
                    "password": "a long passphrase of the first admin",
                }))
                .send()
                .await
                .unwrap()
                .status()
        }
    };
    assert_eq!(setup(hive.base_url.clone(), "admin@example.com").await, 201);
    // Out of the file at once; the running server refuses a second setup anyway.
    let file = std::fs::read_to_string(&secrets).unwrap();
    assert!(!file.contains(&token) && !file.contains("setupToken"));
    assert_eq!(mode(&secrets), 0o600);
    assert_eq!(setup(hive.base_url.clone(), "again@example.com").await, 409);
    let (status, _, _) = hive.stop().await;
    assert!(status.success());

    let again = HiveProcess::start(dir.path(), &[]).await;
    assert!(
        !again.stderr().contains("/setup#token="),
        "no link once setup is done:\n{}",
        again.stderr()
    );
    let file = std::fs::read_to_string(&secrets).unwrap();
    assert!(!file.contains("setupToken"), "none generated again");
    assert_eq!(setup(again.base_url.clone(), "late@example.com").await, 401);
    let (status, _, _) = again.stop().await;
    assert!(status.success());
}

/// An admin created from the command line closes setup too: the next start prints no link and
/// the file keeps no token.
#[tokio::test]
async fn an_admin_made_on_the_command_line_retires_the_setup_link() {
    let dir = tempfile::tempdir().unwrap();
    let secrets = dir.path().join("hive-data/secrets.json");
    let (status, _, _) = HiveProcess::start(dir.path(), &[]).await.stop().await;
    assert!(status.success());
    assert!(
        std::fs::read_to_string(&secrets)
            .unwrap()
            .contains("setupToken")
    );
    let created = crate::process::run_with_input(
        dir.path(),
        &[
            "admin",
            "create",
            "--email",
            "root@example.com",
            "--name",
            "Root",
        ],
        &[],
        "a long passphrase of the first admin\n",
    )
    .await;
    assert!(created.0.success(), "{created:?}");
    assert!(
        !std::fs::read_to_string(&secrets)
            .unwrap()
            .contains("setupToken")
    );
    let hive = HiveProcess::start(dir.path(), &[]).await;
    assert!(
        !hive.stderr().contains("/setup#token="),
        "{}",
        hive.stderr()
    );
    let (status, _, _) = hive.stop().await;
    assert!(status.success());
}

#[tokio::test]
async fn a_corrupt_secrets_file_is_refused_with_a_clear_message() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("hive-data");
    std::fs::create_dir(&data).unwrap();
    let secrets = data.join("secrets.json");
    std::fs::write(&secrets, r#"{"version":1,"authSecret":"#).unwrap();
    std::fs::set_permissions(&secrets, std::fs::Permissions::from_mode(0o600)).unwrap();

    let (status, _, stderr) =
        run_to_exit(dir.path(), &["serve"], &[("HIVE_LISTEN", "127.0.0.1:0")]).await;
    assert!(!status.success());
    assert!(stderr.contains("corrupt"), "{stderr}");
    assert!(stderr.contains("secrets.json"), "{stderr}");
}

#[tokio::test]
async fn a_secrets_file_readable_by_others_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (status, _, _) = HiveProcess::start(dir.path(), &[]).await.stop().await;
    assert!(status.success());
    let secrets = dir.path().join("hive-data/secrets.json");
    let before = std::fs::read_to_string(&secrets).unwrap();
    std::fs::set_permissions(&secrets, std::fs::Permissions::from_mode(0o644)).unwrap();

    let (status, stdout, stderr) =
        run_to_exit(dir.path(), &["serve"], &[("HIVE_LISTEN", "127.0.0.1:0")]).await;
    assert!(!status.success());
    assert!(stderr.contains("chmod 600"), "{stderr}");
    // Refused, not silently fixed, and no secret is echoed.
    assert_eq!(mode(&secrets), 0o644);
    let parsed: serde_json::Value = serde_json::from_str(&before).unwrap();
    let auth_secret = parsed["authSecret"].as_str().unwrap();
    assert!(!stderr.contains(auth_secret) && !stdout.contains(auth_secret));
}

const STRONG_KEY: &str = "8f3a1c9e5b7d2046f1e8a3c5b9d7e2f40a6c8e1b3d5f7092a4c6e8b0d2f41357";
const STRONG_SECRET: &str = "Zq8vN3kW1xR7tY5uB2mC9pL4sD6fG0hJ";

#[tokio::test]
async fn production_refuses_weak_or_missing_secrets_and_plain_http() {
    let dir = tempfile::tempdir().unwrap();
    let weak = "changeme-changeme-changeme-changeme";
    let periodic_key = "ab".repeat(32);
    let cases: Vec<(Vec<(&str, &str)>, &str)> = vec![
        (
            vec![("AUTH_SECRET", weak), ("ENCRYPTION_KEY", STRONG_KEY)],
            "AUTH_SECRET",
        ),
        (
            vec![("AUTH_SECRET", "short"), ("ENCRYPTION_KEY", STRONG_KEY)],
            "AUTH_SECRET",
        ),
        (vec![("ENCRYPTION_KEY", STRONG_KEY)], "AUTH_SECRET"),
        (
            vec![
                ("AUTH_SECRET", STRONG_SECRET),
                ("ENCRYPTION_KEY", &periodic_key),
            ],
            "ENCRYPTION_KEY",
        ),
    ];
    for (vars, named) in cases {
        let mut all = vec![
            ("HIVE_ENV", "production"),
            ("AUTH_URL", "https://hive.example.com"),
            ("HIVE_LISTEN", "127.0.0.1:0"),
        ];
        all.extend(vars.iter().copied());
        let (status, stdout, stderr) = run_to_exit(dir.path(), &["serve"], &all).await;
        assert!(!status.success(), "{vars:?}");
        assert!(stderr.contains(named), "{vars:?}: {stderr}");
        for (_, value) in &vars {
            assert!(
                !stderr.contains(value) && !stdout.contains(value),
                "a secret was echoed"
            );
        }
    }
    assert!(
        !dir.path().join("hive-data/secrets.json").exists(),
        "production generates nothing"
    );

    let plain = [
        ("HIVE_ENV", "production"),
        ("AUTH_URL", "http://hive.example.com"),
        ("AUTH_SECRET", STRONG_SECRET),
        ("ENCRYPTION_KEY", STRONG_KEY),
        ("HIVE_LISTEN", "127.0.0.1:0"),
    ];
    let (status, _, stderr) = run_to_exit(dir.path(), &["serve"], &plain).await;
    assert!(!status.success());
    assert!(stderr.contains("AUTH_URL"), "{stderr}");

    let mut allowed = plain.to_vec();
    allowed.push(("HIVE_ALLOW_INSECURE_HTTP", "true"));
    let hive = HiveProcess::start(dir.path(), &allowed).await;
    assert!(
        !hive.stderr().contains("/setup#token="),
        "production prints no generated token"
    );
    let (status, _, _) = hive.stop().await;
    assert!(status.success());
}

#[tokio::test]
async fn access_logs_are_json_lines_without_credentials() {
    let dir = tempfile::tempdir().unwrap();
    let hive =
        HiveProcess::start(dir.path(), &[("LOG_FORMAT", "json"), ("LOG_LEVEL", "info")]).await;
    let bearer = "hive_TopSecretBearerValue0123456789";
    let cookie = "hive_session=TopSecretCookieValue0123456789";
    let response = client()
        .get(format!(
            "{}/api/health?token=TopSecretQueryValue",
            hive.base_url
        ))
        .header("authorization", format!("Bearer {bearer}"))
        .header("cookie", cookie)
        .header("x-request-id", "log-check-1")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let (status, stdout, stderr) = hive.stop().await;
    assert!(status.success());

    let lines: Vec<serde_json::Value> = stdout
        .lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|_| panic!("not JSON: {line}")))
        .collect();
    let access = lines
        .iter()
        .find(|line| line["span"]["request_id"] == "log-check-1")
        .unwrap_or_else(|| panic!("no access log line for the request:\n{stdout}"));
    assert_eq!(access["status"], 200);
    assert_eq!(access["span"]["path"], "/api/health");
    assert_eq!(access["span"]["client_ip"], "127.0.0.1");
    for output in [&stdout, &stderr] {
        assert!(
            !output.contains("TopSecret"),
            "a credential reached the logs:\n{output}"
        );
    }
}

#[tokio::test]
async fn a_second_process_on_the_same_data_dir_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let first = HiveProcess::start(dir.path(), &[]).await;
    let (status, _, stderr) =
        run_to_exit(dir.path(), &["serve"], &[("HIVE_LISTEN", "127.0.0.1:0")]).await;
    assert!(!status.success());
    assert!(
        stderr.contains("in use by another Hive process"),
        "{stderr}"
    );
    assert!(first.stop().await.0.success());
}

#[tokio::test]
async fn migrate_applies_once_and_a_newer_schema_stops_the_server() {
    let dir = tempfile::tempdir().unwrap();
    let (status, stdout, stderr) = run_to_exit(dir.path(), &["migrate"], &[]).await;
    assert!(status.success(), "{stderr}");
    assert!(stdout.contains("applied migrations"), "{stdout}");
    let (status, stdout, _) = run_to_exit(dir.path(), &["migrate"], &[]).await;
    assert!(status.success());
    assert!(stdout.contains("up to date"), "{stdout}");

    // A newer Hive migrated this database: this binary must not write to it.
    let db = dir.path().join("hive-data/hive.db");
    let pool = sqlx::SqlitePool::connect(&format!("sqlite:{}", db.display()))
        .await
        .unwrap();
    sqlx::query(
        "INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time) \
         VALUES (99990101000000, 'from the future', 1, x'00', 0)",
    )
    .execute(&pool)
    .await
    .unwrap();
    pool.close().await;

    for args in [&["serve"][..], &["migrate"][..]] {
        let (status, _, stderr) =
            run_to_exit(dir.path(), args, &[("HIVE_LISTEN", "127.0.0.1:0")]).await;
        assert!(!status.success(), "{args:?}");
        assert!(stderr.contains("newer"), "{args:?}: {stderr}");
    }
}

#[tokio::test]
async fn a_restart_with_another_encryption_key_is_refused_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let first_key = "4f1c9a2be87d3065c1f0a9b8e7d6c5b4a39281706f5e4d3c2b1a09f8e7d6c5b4";
    let other_key = "9e8d7c6b5a4f3e2d1c0b9a8f7e6d5c4b3a29180f7e6d5c4b3a2918f7e6d5c4b3";
    let started = HiveProcess::start(dir.path(), &[("ENCRYPTION_KEY", first_key)]).await;
    assert!(started.stop().await.0.success());
    let (status, _, stderr) = run_to_exit(
        dir.path(),
        &["serve"],
        &[
            ("ENCRYPTION_KEY", other_key),
            ("HIVE_LISTEN", "127.0.0.1:0"),
        ],
    )
    .await;
    assert!(!status.success());
    assert!(stderr.contains("ENCRYPTION_KEY does not match"), "{stderr}");
    assert!(!stderr.contains(first_key) && !stderr.contains(other_key));
    // The right key starts again.
    let again = HiveProcess::start(dir.path(), &[("ENCRYPTION_KEY", first_key)]).await;
    assert!(again.stop().await.0.success());
}

/// Every file under `dir` (recursively) with its mode; every directory must be 0700.
fn private_files(dir: &Path) -> Vec<(String, u32)> {
    assert_eq!(mode(dir), 0o700, "{}", dir.display());
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            found.extend(private_files(&path));
        } else {
            found.push((path.display().to_string(), mode(&path)));
        }
    }
    found
}

fn assert_all_private(data: &Path, expected_names: &[&str]) {
    let files = private_files(data);
    for name in expected_names {
        assert!(
            files.iter().any(|(path, _)| path.ends_with(name)),
            "{name} missing from {files:?}"
        );
    }
    let loose: Vec<_> = files.iter().filter(|(_, mode)| *mode != 0o600).collect();
    assert!(loose.is_empty(), "not 0600: {loose:?}");
}

#[tokio::test]
async fn every_file_in_the_data_dir_is_its_owners_only() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("hive-data");
    let hive = HiveProcess::start(dir.path(), &[]).await;
    // The process narrowed its own umask (the test runner's is usually 0022), which covers any
    // file the stores do not create 0600 themselves.
    let status = std::fs::read_to_string(format!("/proc/{}/status", hive.pid())).unwrap();
    assert!(
        status.lines().any(|line| line == "Umask:\t0077"),
        "{status}"
    );
    // Running: the database has its WAL and index beside it.
    assert_all_private(
        &data,
        &[
            "hive.db",
            "hive.db-wal",
            "hive.db-shm",
            "hive.db.lock",
            "secrets.json",
        ],
    );
    let (status, _, stderr) = hive.stop().await;
    assert!(status.success(), "{stderr}");

    // More writes, from another command.
    crate::accounts::create_admin(dir.path(), "root@example.com").await;
    assert_all_private(&data, &["hive.db", "hive.db.lock", "secrets.json"]);

    // A database an older version left 0644 is narrowed, and the log says so.
    let db = data.join("hive.db");
    std::fs::set_permissions(&db, std::fs::Permissions::from_mode(0o644)).unwrap();
    let hive = HiveProcess::start(dir.path(), &[]).await;
    assert_all_private(&data, &["hive.db", "hive.db-wal", "hive.db-shm"]);
    // Logs are JSON lines on stdout.
    assert!(
        hive.stdout().contains("store.file_mode_narrowed"),
        "{}",
        hive.stdout()
    );
    let (status, _, _) = hive.stop().await;
    assert!(status.success());
}

/// `hive serve --help` lists the main settings with their defaults, and where the rest are.
#[tokio::test]
async fn serve_help_lists_the_main_settings_and_where_the_others_are() {
    let dir = tempfile::tempdir().unwrap();
    let (status, stdout, stderr) = run_to_exit(dir.path(), &["serve", "--help"], &[]).await;
    assert!(status.success(), "{stderr}");
    for (name, default) in [
        ("HIVE_DATA_DIR", "./hive-data"),
        ("HIVE_LISTEN", "127.0.0.1:8080"),
        ("AUTH_URL", "http://<HIVE_LISTEN>"),
        ("DATABASE_URL", "SQLite at <HIVE_DATA_DIR>/hive.db"),
        ("REDIS_URL", "unset"),
        ("HIVE_METRICS_LISTEN", "unset (off)"),
        ("LOG_LEVEL", "info"),
        ("LOG_FORMAT", "auto"),
    ] {
        assert!(
            stdout.contains(&format!("{name} [default: {default}]")),
            "{name} in:\n{stdout}"
        );
    }
    assert!(stdout.contains("also DATABASE_URL_FILE"), "{stdout}");
    assert!(stdout.contains("docs/configuration.md"), "{stdout}");
    assert!(stdout.contains("hive config check"), "{stdout}");
    // Help creates nothing.
    assert!(!dir.path().join("hive-data").exists());
}

/// Logs read by people at a terminal (a pseudo-terminal here, through Python's `pty`), JSON
/// lines when told so there, and JSON lines by default when stdout is a pipe.
#[tokio::test]
async fn logs_are_readable_at_a_terminal_and_json_elsewhere() {
    // Runs `hive serve` at a terminal until it listens, stops it, and prints what the terminal
    // showed.
    const DRIVER: &str = r#"
import os, pty, signal, sys
hive = sys.argv[1]
pid, fd = pty.fork()
if pid == 0:
    os.execv(hive, [hive, "serve"])
seen = b""
stopped = False
while True:
    try:
        chunk = os.read(fd, 4096)
    except OSError:
        break
    if not chunk:
        break
    seen += chunk
    if not stopped and b"Hive is listening on http" in seen:
        os.kill(pid, signal.SIGTERM)
        stopped = True
os.waitpid(pid, 0)
sys.stdout.write(seen.decode(errors="replace"))
"#;
    let at_terminal = async |format: Option<&str>| {
        let dir = tempfile::tempdir().unwrap();
        let mut command = tokio::process::Command::new("python3");
        command
            .current_dir(dir.path())
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("HIVE_LISTEN", "127.0.0.1:0")
            .env("HIVE_MFA_REQUIRED", "none")
            .args(["-c", DRIVER, env!("CARGO_BIN_EXE_hive")]);
        if let Some(format) = format {
            command.env("LOG_FORMAT", format);
        }
        let output = tokio::time::timeout(std::time::Duration::from_secs(60), command.output())
            .await
            .expect("hive starts and stops at the terminal")
            .unwrap();
        String::from_utf8_lossy(&output.stdout).into_owned()
    };

    let shown = at_terminal(None).await;
    assert!(shown.contains("Hive is listening on http"), "{shown}");
    assert!(shown.contains("INFO"), "{shown}");
    assert!(
        !shown.lines().any(|line| line.starts_with("{\"")),
        "JSON at a terminal:\n{shown}"
    );

    let shown = at_terminal(Some("json")).await;
    let json_lines: Vec<serde_json::Value> = shown
        .lines()
        .filter_map(|line| serde_json::from_str(line.trim_end()).ok())
        .collect();
    assert!(
        json_lines
            .iter()
            .any(|line| line["message"] == "Hive is listening" && line["level"] == "INFO"),
        "{shown}"
    );

    // A pipe: JSON lines without being told.
    let dir = tempfile::tempdir().unwrap();
    let hive = HiveProcess::start(dir.path(), &[]).await;
    let stdout = hive.stdout();
    assert!(!crate::process::node_id(&stdout).is_empty());
    assert!(hive.stop().await.0.success());
}
