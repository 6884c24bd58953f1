//! `hive admin|user|token` against the data directory, then the server honouring what they made.

use crate::process::{HiveProcess, client, run_to_exit, run_with_input};

pub use hive_testkit::TEST_PASSWORD as PASSWORD;

/// `hive admin create` with the test password on standard input; its standard output.
pub async fn create_admin(path: &std::path::Path, email: &str) -> String {
    let created = run_with_input(
        path,
        &["admin", "create", "--email", email, "--name", "Root"],
        &[],
        &format!("{PASSWORD}\n"),
    )
    .await;
    assert!(created.0.success(), "{created:?}");
    assert!(!created.1.contains(PASSWORD) && !created.2.contains(PASSWORD));
    created.1
}

/// `hive token create` for `email`: the token it prints (once, on purpose: not a canary of the
/// leak check). Every scope when `scope` is `None`.
pub async fn create_token(
    path: &std::path::Path,
    email: &str,
    name: &str,
    scope: Option<&str>,
) -> String {
    let mut arguments = vec!["token", "create", "--user", email, "--name", name];
    arguments.extend(scope.iter().flat_map(|scope| ["--scope", *scope]));
    let made = run_to_exit(path, &arguments, &[]).await;
    assert!(made.0.success(), "{made:?}");
    made.1.trim().to_owned()
}

#[tokio::test]
async fn the_account_commands_make_a_working_admin_token_and_invitation() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path();
    let created = create_admin(path, "Root@Example.com").await;
    assert!(
        created.contains("created admin root@example.com"),
        "{created}"
    );

    // Setup is closed: a second admin is refused, and so is a weak password.
    let again = run_with_input(
        path,
        &["admin", "create", "--email", "b@example.com", "--name", "B"],
        &[],
        &format!("{PASSWORD}\n"),
    )
    .await;
    assert!(!again.0.success());
    assert!(again.2.contains("already complete"), "{}", again.2);

    let token = create_token(path, "root@example.com", "ci", Some("read")).await;
    assert!(token.starts_with("hive_"), "{token}");

    let invite = run_to_exit(
        path,
        &[
            "user",
            "invite",
            "--email",
            "op@example.com",
            "--role",
            "operator",
        ],
        &[],
    )
    .await;
    assert!(invite.0.success(), "{invite:?}");
    let invite_token = invite.1.trim().split("#token=").nth(1).unwrap().to_owned();

    let listed = run_to_exit(path, &["token", "list", "--user", "root@example.com"], &[]).await;
    let ci_line = listed.1.lines().nth(1).unwrap();
    let ci_cells: Vec<&str> = ci_line.split_whitespace().collect();
    // id, name, role, scopes, created, expires, last used, revoked: live, never used.
    assert_eq!(ci_cells[1..4], ["ci", "admin", "read"], "{}", listed.1);
    assert_eq!(ci_cells[6..], ["-", "-"], "{}", listed.1);
    assert!(!listed.1.contains(&token), "a token is shown once");

    // The server sees the same accounts.
    let server = HiveProcess::start(path, &[]).await;
    let http = client();
    let me: serde_json::Value = http
        .get(format!("{}/api/v1/auth/me", server.base_url))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(me["user"]["email"], "root@example.com");
    assert_eq!(me["role"], "admin");
    let accepted = http
        .post(format!("{}/api/v1/auth/invitation/accept", server.base_url))
        .json(&serde_json::json!({ "token": invite_token, "displayName": "Op", "password": PASSWORD }))
        .send()
        .await
        .unwrap();
    assert_eq!(accepted.status(), 201);
    assert!(server.stop().await.0.success());

    let users = run_to_exit(path, &["user", "list"], &[]).await;
    assert!(
        users.1.contains("op@example.com") && users.1.contains("operator"),
        "{}",
        users.1
    );
    let off = run_to_exit(path, &["user", "deactivate", "op@example.com"], &[]).await;
    assert!(off.0.success(), "{off:?}");
    let users = run_to_exit(path, &["user", "list"], &[]).await;
    let op_line = users
        .1
        .lines()
        .find(|l| l.contains("op@example.com"))
        .unwrap();
    // id, email, name, role, active, ...
    assert_eq!(op_line.split_whitespace().nth(4), Some("no"), "{op_line}");

    let token_id = listed
        .1
        .lines()
        .nth(1)
        .unwrap()
        .split_whitespace()
        .next()
        .unwrap()
        .to_owned();
    let revoked = run_to_exit(path, &["token", "revoke", &token_id], &[]).await;
    assert!(revoked.0.success(), "{revoked:?}");
    let server = HiveProcess::start(path, &[]).await;
    let status = client()
        .get(format!("{}/api/v1/auth/me", server.base_url))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .status();
    assert_eq!(status, 401, "a revoked token stops working");
    assert!(server.stop().await.0.success());
}

#[tokio::test]
async fn audit_verify_reports_an_intact_chain_and_finds_an_edit() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path();
    create_admin(path, "root@example.com").await;
    for who in ["a@example.com", "b@example.com"] {
        let invited = run_to_exit(
            path,
            &["user", "invite", "--email", who, "--role", "viewer"],
            &[],
        )
        .await;
        assert!(invited.0.success(), "{invited:?}");
    }
    let intact = run_to_exit(path, &["audit", "verify"], &[]).await;
    assert!(intact.0.success(), "{intact:?}");
    assert!(
        // The vault's first key, the admin and the two invitations.
        intact.1.contains("audit chain intact: 4 records verified"),
        "{}",
        intact.1
    );

    // Someone with database access rewrites history.
    let db = path.join("hive-data/hive.db");
    let pool = sqlx::SqlitePool::connect(&format!("sqlite:{}", db.display()))
        .await
        .unwrap();
    // Hive's own statements cannot; the database's owner drops the guard first.
    let refused = sqlx::query("UPDATE audit_events SET actor = 'cli-forged' WHERE seq = 2")
        .execute(&pool)
        .await;
    assert!(refused.is_err(), "the log is append-only");
    sqlx::raw_sql(
        "DROP TRIGGER audit_events_append_only; \
         UPDATE audit_events SET actor = 'cli-forged' WHERE seq = 2",
    )
    .execute(&pool)
    .await
    .unwrap();
    pool.close().await;
    let broken = run_to_exit(path, &["audit", "verify"], &[]).await;
    assert!(!broken.0.success());
    assert!(broken.2.contains("record 2 was altered"), "{}", broken.2);
    assert!(
        broken.2.contains("1 records before it verified"),
        "{}",
        broken.2
    );
}

#[tokio::test]
async fn audit_verify_names_a_record_inserted_outside_the_chain() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path();
    create_admin(path, "root@example.com").await;
    let db = path.join("hive-data/hive.db");
    let pool = sqlx::SqlitePool::connect(&format!("sqlite:{}", db.display()))
        .await
        .unwrap();
    let forged = uuid::Uuid::now_v7();
    let insert = format!(
        "INSERT INTO audit_events (id, at, actor, action, outcome, detail) \
         VALUES ('{forged}', 1577836800000000, 'user:forged', 'auth.login', 'success', '{{}}')"
    );
    let refused = sqlx::raw_sql(sqlx::AssertSqlSafe(insert.clone()))
        .execute(&pool)
        .await;
    assert!(
        refused.is_err(),
        "the database refuses a record outside the chain"
    );
    // The database's owner drops the guards first.
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
        "DROP TRIGGER audit_events_chained_only; \
         DROP TRIGGER audit_events_continue_the_chain; {insert}"
    )))
    .execute(&pool)
    .await
    .unwrap();
    pool.close().await;
    let (status, stdout, stderr) = run_to_exit(path, &["audit", "verify"], &[]).await;
    assert_eq!(status.code(), Some(1), "{stdout}{stderr}");
    assert!(
        stderr.contains(&format!("record {forged} is not in the hash chain")),
        "{stderr}"
    );
    assert!(
        stdout.contains("1 records are outside the hash chain") && !stdout.contains("predate"),
        "{stdout}"
    );
}

#[tokio::test]
async fn audit_export_writes_linked_json_lines_and_is_audited() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path();
    create_admin(path, "root@example.com").await;
    let invited = run_to_exit(
        path,
        &[
            "user",
            "invite",
            "--email",
            "a@example.com",
            "--role",
            "viewer",
        ],
        &[],
    )
    .await;
    assert!(invited.0.success(), "{invited:?}");

    let exported = run_to_exit(
        path,
        &["audit", "export", "--since", "2000-01-01T00:00:00Z"],
        &[],
    )
    .await;
    assert!(exported.0.success(), "{exported:?}");
    let lines: Vec<serde_json::Value> = exported
        .1
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
    assert_eq!(
        lines.len(),
        4,
        "the first key's, the admin's, the invitation's and the export's own"
    );
    assert_eq!(lines[0]["action"], "vault.key_create");
    assert_eq!(lines[0]["seq"], 1);
    for pair in lines.windows(2) {
        assert_eq!(pair[1]["prevHash"], pair[0]["hash"]);
        assert_eq!(
            pair[1]["seq"].as_i64(),
            pair[0]["seq"].as_i64().map(|s| s + 1)
        );
    }
    assert_eq!(lines[3]["action"], "audit.export");
    assert_eq!(lines[3]["actor"], "cli");

    let nothing = run_to_exit(
        path,
        &["audit", "export", "--until", "2000-01-01T00:00:00Z"],
        &[],
    )
    .await;
    assert!(nothing.0.success(), "{nothing:?}");
    assert_eq!(nothing.1, "");
    let bad = run_to_exit(path, &["audit", "export", "--since", "yesterday"], &[]).await;
    assert!(!bad.0.success());
    assert!(bad.2.contains("since is not an RFC 3339 time"), "{}", bad.2);
}

/// Signs in over HTTP; the session cookie and the session's stage.
async fn sign_in(base_url: &str, email: &str) -> (String, String) {
    let http = client();
    let login = http
        .post(format!("{base_url}/api/v1/auth/login"))
        .json(&serde_json::json!({ "email": email, "password": PASSWORD }))
        .send()
        .await
        .unwrap();
    assert_eq!(login.status(), 200);
    let cookie = login.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_owned();
    hive_testkit::capture::canary(cookie.split_once('=').unwrap().1);
    let me: serde_json::Value = http
        .get(format!("{base_url}/api/v1/auth/me"))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    (cookie, me["sessionStage"].as_str().unwrap().to_owned())
}

#[tokio::test]
async fn an_admin_who_lost_the_second_factor_is_reset_from_the_command_line() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path();
    create_admin(path, "root@example.com").await;
    // The default policy: admins need a second factor.
    const ORIGIN: &str = "http://hive.test";
    let policy = [("HIVE_MFA_REQUIRED", "admins"), ("AUTH_URL", ORIGIN)];
    let server = HiveProcess::start(path, &policy).await;
    let base = server.base_url.clone();
    let (cookie, stage) = sign_in(&base, "root@example.com").await;
    assert_eq!(stage, "enrollment_required");
    let http = client();
    let post = |path: &str, body: serde_json::Value| {
        http.post(format!("{base}{path}"))
            .header("cookie", &cookie)
            .header("origin", ORIGIN)
            .json(&body)
            .send()
    };
    let enrollment: serde_json::Value = post("/api/v1/auth/mfa/totp", serde_json::json!({}))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let secret_text = enrollment["secret"].as_str().unwrap();
    hive_testkit::capture::canary(secret_text);
    let secret = hive_crypto::totp::TotpSecret::from_base32(secret_text).unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let confirmed = post(
        "/api/v1/auth/mfa/totp/confirm",
        serde_json::json!({ "code": secret.code_at(now) }),
    )
    .await
    .unwrap();
    assert_eq!(confirmed.status(), 200);
    let (_, stage) = sign_in(&base, "root@example.com").await;
    assert_eq!(stage, "second_factor_required");
    assert!(server.stop().await.0.success());

    // The authenticator is lost: the operator resets the factors on the server's machine.
    let reset = run_to_exit(path, &["user", "mfa", "reset", "root@example.com"], &[]).await;
    assert!(reset.0.success(), "{reset:?}");
    assert!(
        reset
            .1
            .contains("reset the second factors of root@example.com")
    );
    let missing = run_to_exit(path, &["user", "mfa", "reset", "nobody@example.com"], &[]).await;
    assert!(!missing.0.success());

    let server = HiveProcess::start(path, &policy).await;
    let (_, stage) = sign_in(&server.base_url, "root@example.com").await;
    assert_eq!(stage, "enrollment_required", "enrolls again");
    assert!(server.stop().await.0.success());
}

/// A command run where there is no instance says so and makes none; one run while a server
/// holds the instance says how to proceed; both exit 2, apart from a broken chain's 1; every
/// command names the instance it used.
#[tokio::test]
async fn commands_name_their_instance_and_never_make_one_by_mistake() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path();
    for command in [
        &["audit", "verify"][..],
        &[
            "user",
            "invite",
            "--email",
            "x@example.com",
            "--role",
            "viewer",
        ],
        &["keys", "list"],
    ] {
        let (status, stdout, stderr) = run_to_exit(path, command, &[]).await;
        assert_eq!(status.code(), Some(2), "{command:?}: {stdout}{stderr}");
        assert!(stderr.contains("no Hive instance at"), "{stderr}");
        assert!(!stdout.contains("audit chain intact"), "{stdout}");
        assert!(
            !path.join("hive-data").exists(),
            "{command:?} made an instance"
        );
    }

    create_admin(path, "root@example.com").await;
    let (status, _, stderr) = run_to_exit(path, &["audit", "verify"], &[]).await;
    assert!(status.success());
    let data_dir = std::fs::canonicalize(path.join("hive-data")).unwrap();
    assert!(
        stderr.contains(&format!("data directory {}", data_dir.display())),
        "{stderr}"
    );

    let server = crate::process::HiveProcess::start(path, &[]).await;
    let (status, _, stderr) = run_to_exit(path, &["audit", "verify"], &[]).await;
    assert_eq!(status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("in use by another Hive process"),
        "{stderr}"
    );
    assert!(stderr.contains("stop the server first"), "{stderr}");
    assert!(server.stop().await.0.success());
}

/// `hive admin create` at a terminal (a pseudo-terminal here, through Python's `pty`): the
/// password is asked twice, never echoed back, and two that differ create nothing.
#[tokio::test]
async fn admin_create_at_a_terminal_hides_and_confirms_the_password() {
    // Types each answer after its prompt; prints everything the terminal showed, then the
    // exit status on the last line.
    const DRIVER: &str = r#"
import os, pty, sys
hive, first, second = sys.argv[1], sys.argv[2], sys.argv[3]
pid, fd = pty.fork()
if pid == 0:
    os.execv(hive, [hive, "admin", "create", "--email", "tty@example.com", "--name", "Tty"])
seen = b""
answers = [first, second]
while True:
    try:
        chunk = os.read(fd, 4096)
    except OSError:
        break
    if not chunk:
        break
    seen += chunk
    # Each prompt is answered once, when it is the last thing shown (as a person would).
    asked = seen.count(b"Password: ") + seen.count(b"Password again: ")
    if answers and asked > 2 - len(answers) and seen.endswith(b": "):
        os.write(fd, (answers.pop(0) + "\n").encode())
_, status = os.waitpid(pid, 0)
sys.stdout.write(seen.decode(errors="replace"))
sys.stdout.write("\nexit=%d\n" % os.waitstatus_to_exitcode(status))
"#;
    let hive = env!("CARGO_BIN_EXE_hive");
    for (first, second, created) in [
        (
            "tty correct horse battery",
            "tty correct horse battery typo",
            false,
        ),
        (
            "tty correct horse battery",
            "tty correct horse battery",
            true,
        ),
    ] {
        let dir = tempfile::tempdir().unwrap();
        hive_testkit::capture::canary(first);
        let output = tokio::process::Command::new("python3")
            .current_dir(dir.path())
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("HIVE_MFA_REQUIRED", "none")
            .args(["-c", DRIVER, hive, first, second])
            .output()
            .await
            .unwrap();
        let shown = String::from_utf8_lossy(&output.stdout);
        assert!(shown.contains("Password: "), "{shown}");
        assert!(shown.contains("Password again: "), "{shown}");
        assert!(
            !shown.contains("correct horse"),
            "the password was echoed:\n{shown}"
        );
        if created {
            assert!(shown.trim_end().ends_with("exit=0"), "{shown}");
            let login = run_to_exit(dir.path(), &["user", "list"], &[]).await;
            assert!(login.1.contains("tty@example.com"), "{login:?}");
        } else {
            assert!(shown.trim_end().ends_with("exit=1"), "{shown}");
            assert!(shown.contains("the two passwords differ"), "{shown}");
        }
    }
}
