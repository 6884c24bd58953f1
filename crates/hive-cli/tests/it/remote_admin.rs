//! The account commands against a running `hive serve` through its API (`--url`, `HIVE_URL`,
//! a profile file), while the server holds the data directory: each command's effect is read
//! back from the API.

use crate::accounts::{PASSWORD, create_token};
use crate::process::{HiveProcess, client, run_to_exit, run_with_input};
use serde_json::{Value, json};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

/// An encrypted value and its key, as `hive secrets import` takes them (see `keys.rs`).
const IMPORT_KEY: &str = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";
const IMPORT_VALUE: &str =
    "0f1e2d3c4b5a69788796a5b4:67642c9c6150488d9b0b28b79fc0fcd3:43dd2c4d9f2f4a3a69bddf6c6b38";

/// A server with its first admin and an admin token made on the data directory beforehand,
/// and a second token of the admin's ("deploy", read only).
struct Running {
    server: HiveProcess,
    token: String,
    deploy_token: String,
}

impl Running {
    async fn start(path: &Path, vars: &[(&str, &str)]) -> Self {
        let created = crate::process::run_with_input(
            path,
            &[
                "admin",
                "create",
                "--email",
                "root@example.com",
                "--name",
                "Root",
            ],
            vars,
            &format!("{PASSWORD}\n"),
        )
        .await;
        assert!(created.0.success(), "{created:?}");
        let token = token_for(path, vars, "admin-cli", &[]).await;
        let deploy_token = token_for(path, vars, "deploy", &["--scope", "read"]).await;
        // The server's public URL is where the command line reaches it: a signed-in session's
        // writes must come from that origin (`hive token create`).
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let listen = format!("127.0.0.1:{port}");
        let public = format!("http://127.0.0.1:{port}");
        let mut all = vec![
            ("HIVE_LISTEN", listen.as_str()),
            ("AUTH_URL", public.as_str()),
        ];
        all.extend_from_slice(vars);
        let server = HiveProcess::start(path, &all).await;
        assert_eq!(server.base_url, public);
        Self {
            server,
            token,
            deploy_token,
        }
    }

    /// The variables that point a command at the server.
    fn vars(&self) -> [(&str, &str); 2] {
        [
            ("HIVE_URL", self.server.base_url.as_str()),
            ("HIVE_TOKEN", self.token.as_str()),
        ]
    }

    /// `hive <args>` against the server; it must succeed and name the server it used.
    async fn ok(&self, path: &Path, args: &[&str]) -> String {
        let (status, stdout, stderr) = run_to_exit(path, args, &self.vars()).await;
        assert!(status.success(), "{args:?}: {stdout}{stderr}");
        assert!(
            stderr.contains(&format!("hive: server {}", self.server.base_url)),
            "{args:?} names the server it used: {stderr}"
        );
        assert!(!stderr.contains("data directory"), "{stderr}");
        assert!(!stdout.contains(&self.token) && !stderr.contains(&self.token));
        stdout
    }

    /// `hive <args> --json` against the server: its JSON.
    async fn json(&self, path: &Path, args: &[&str]) -> Value {
        let mut all = args.to_vec();
        all.push("--json");
        let stdout = self.ok(path, &all).await;
        serde_json::from_str(stdout.trim()).unwrap_or_else(|e| panic!("{args:?}: {e}: {stdout}"))
    }

    /// GET an API path as the admin token.
    async fn get(&self, path: &str) -> (u16, Value) {
        let response = client()
            .get(format!("{}/api/v1{path}", self.server.base_url))
            .bearer_auth(&self.token)
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
    }
}

/// A token of root@example.com, made on the data directory.
async fn token_for(path: &Path, vars: &[(&str, &str)], name: &str, more: &[&str]) -> String {
    let mut arguments = vec![
        "token",
        "create",
        "--user",
        "root@example.com",
        "--name",
        name,
    ];
    arguments.extend_from_slice(more);
    let made = run_to_exit(path, &arguments, vars).await;
    assert!(made.0.success(), "{made:?}");
    made.1.trim().to_owned()
}

/// The email addresses of the API's accounts, with their role and whether active.
async fn accounts(running: &Running) -> Vec<(String, String, bool)> {
    let (status, users) = running.get("/users?limit=100").await;
    assert_eq!(status, 200, "{users}");
    users["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| {
            (
                u["email"].as_str().unwrap().to_owned(),
                u["role"].as_str().unwrap().to_owned(),
                u["active"].as_bool().unwrap(),
            )
        })
        .collect()
}

/// A table for people: a heading line and rows whose every column starts where its heading
/// does; the cells of `time_columns` are RFC 3339 times in UTC (or `-`).
fn assert_aligned_table(table: &str, time_columns: &[&str]) -> Vec<Vec<String>> {
    let lines: Vec<&str> = table.lines().collect();
    let heading = lines[0];
    // Headings are upper case words, one space inside a heading ("LAST USED"), two or more
    // between headings.
    let mut starts = vec![0];
    let bytes = heading.as_bytes();
    for i in 2..bytes.len() {
        if bytes[i] != b' ' && bytes[i - 1] == b' ' && bytes[i - 2] == b' ' {
            starts.push(i);
        }
    }
    let names: Vec<&str> = starts
        .iter()
        .enumerate()
        .map(|(n, &start)| {
            let end = starts.get(n + 1).copied().unwrap_or(heading.len());
            heading[start..end].trim()
        })
        .collect();
    let mut rows = Vec::new();
    for line in &lines[1..] {
        let mut cells = Vec::new();
        for (n, &start) in starts.iter().enumerate() {
            assert!(
                start == 0 || line.as_bytes().get(start - 1) == Some(&b' '),
                "column {} does not start at {start} in {line:?}\n{table}",
                names[n]
            );
            let end = starts
                .get(n + 1)
                .copied()
                .unwrap_or(line.len())
                .min(line.len());
            let cell = line.get(start..end).unwrap_or("").trim().to_owned();
            assert!(
                !cell.is_empty(),
                "column {} empty in {line:?}\n{table}",
                names[n]
            );
            if time_columns.contains(&names[n]) && cell != "-" {
                let at = time::OffsetDateTime::parse(
                    &cell,
                    &time::format_description::well_known::Rfc3339,
                )
                .unwrap_or_else(|e| panic!("{cell:?} is no RFC 3339 time: {e}"));
                assert_eq!(at.offset(), time::UtcOffset::UTC, "{cell}");
                assert!(cell.ends_with('Z'), "{cell}");
            }
            cells.push(cell);
        }
        rows.push(cells);
    }
    rows
}

#[tokio::test]
async fn the_user_commands_work_against_a_running_server() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path();
    let running = Running::start(path, &[]).await;

    // The data directory is the server's: the embedded path is locked, the API is not.
    let invited = running
        .ok(
            path,
            &[
                "user",
                "invite",
                "--email",
                "op@example.com",
                "--role",
                "operator",
            ],
        )
        .await;
    let invitation = invited.trim().split("#token=").nth(1).unwrap().to_owned();
    let accepted = client()
        .post(format!(
            "{}/api/v1/auth/invitation/accept",
            running.server.base_url
        ))
        .json(&json!({ "token": invitation, "displayName": "Op", "password": PASSWORD }))
        .send()
        .await
        .unwrap();
    assert_eq!(accepted.status(), 201);
    assert!(accounts(&running).await.contains(&(
        "op@example.com".to_owned(),
        "operator".to_owned(),
        true
    )));

    let table = running.ok(path, &["user", "list"]).await;
    let rows = assert_aligned_table(&table, &["CREATED"]);
    assert!(table.starts_with("ID"), "{table}");
    assert!(
        rows.iter()
            .any(|row| row[1] == "op@example.com" && row[3] == "operator"),
        "{table}"
    );
    let listed = running.json(path, &["user", "list"]).await;
    assert_eq!(listed["items"].as_array().unwrap().len(), 2, "{listed}");

    running
        .ok(path, &["user", "role", "op@example.com", "viewer"])
        .await;
    assert!(accounts(&running).await.contains(&(
        "op@example.com".to_owned(),
        "viewer".to_owned(),
        true
    )));
    let off = running
        .json(path, &["user", "deactivate", "op@example.com"])
        .await;
    assert_eq!(off["active"], false, "{off}");
    assert!(accounts(&running).await.contains(&(
        "op@example.com".to_owned(),
        "viewer".to_owned(),
        false
    )));
    running
        .ok(path, &["user", "activate", "op@example.com"])
        .await;
    assert!(accounts(&running).await.contains(&(
        "op@example.com".to_owned(),
        "viewer".to_owned(),
        true
    )));

    let link = running
        .json(path, &["user", "reset-link", "op@example.com"])
        .await;
    assert!(link["url"].as_str().unwrap().contains("#token="), "{link}");

    // A session of the user's, then ended from the CLI.
    let login = client()
        .post(format!("{}/api/v1/auth/login", running.server.base_url))
        .json(&json!({ "email": "op@example.com", "password": PASSWORD }))
        .send()
        .await
        .unwrap();
    assert_eq!(login.status(), 200);
    let cookie = crate::process::session_cookie(&login);
    let me = |cookie: &str| {
        client()
            .get(format!("{}/api/v1/auth/me", running.server.base_url))
            .header("cookie", cookie)
            .send()
    };
    assert_eq!(me(&cookie).await.unwrap().status(), 200);
    let ended = running
        .ok(path, &["user", "end-sessions", "op@example.com"])
        .await;
    assert!(ended.contains("ended 1 sessions"), "{ended}");
    assert_eq!(
        me(&cookie).await.unwrap().status(),
        401,
        "the session ended"
    );

    let reset = running
        .ok(path, &["user", "mfa", "reset", "op@example.com"])
        .await;
    assert!(reset.contains("reset the second factors"), "{reset}");
    let (_, trail) = running.get("/audit?action=user.mfa_reset").await;
    assert_eq!(trail["items"].as_array().unwrap().len(), 1, "{trail}");

    let (status, _, stderr) = run_to_exit(
        path,
        &["user", "role", "nobody@example.com", "admin"],
        &running.vars(),
    )
    .await;
    assert_eq!(status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("no account"), "{stderr}");
    assert!(running.server.stop().await.0.success());
}

#[tokio::test]
async fn the_token_agent_key_and_secret_commands_work_against_a_running_server() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path();
    let running = Running::start(path, &[]).await;

    // Tokens: made in a signed-in session (the password from standard input), listed, revoked
    // — and the revoked one is refused.
    let (status, stdout, stderr) = run_with_input(
        path,
        &[
            "token",
            "create",
            "--user",
            "root@example.com",
            "--name",
            "more",
            "--json",
        ],
        &running.vars(),
        &format!("{PASSWORD}\n"),
    )
    .await;
    assert!(status.success(), "{stdout}{stderr}");
    let more: Value = serde_json::from_str(stdout.trim()).unwrap();
    let more_token = more["token"].as_str().unwrap().to_owned();
    let (_, sessions) = running.get("/auth/sessions").await;
    assert_eq!(
        sessions["items"],
        json!([]),
        "the CLI's session ended: {sessions}"
    );
    let (status, _, stderr) = run_with_input(
        path,
        &[
            "token",
            "create",
            "--user",
            "root@example.com",
            "--name",
            "wrong",
        ],
        &running.vars(),
        "not the password\n",
    )
    .await;
    assert_eq!(status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("refused the sign-in"), "{stderr}");
    let new_token = running.deploy_token.clone();
    let me = |token: &str| {
        client()
            .get(format!("{}/api/v1/auth/me", running.server.base_url))
            .bearer_auth(token)
            .send()
    };
    assert_eq!(me(&new_token).await.unwrap().status(), 200);
    assert_eq!(
        me(&more_token).await.unwrap().status(),
        200,
        "the token made works"
    );
    let table = running.ok(path, &["token", "list"]).await;
    let rows = assert_aligned_table(&table, &["CREATED", "EXPIRES", "LAST USED", "REVOKED"]);
    let names: Vec<&str> = rows.iter().map(|row| row[1].as_str()).collect();
    assert_eq!(
        names,
        ["more", "deploy", "admin-cli"],
        "none from the wrong password: {table}"
    );
    let deploy = rows.iter().find(|row| row[1] == "deploy").unwrap();
    assert_eq!(deploy[3], "read", "{table}");
    let new_id = deploy[0].clone();
    running.ok(path, &["token", "revoke", &new_id]).await;
    assert_eq!(
        me(&new_token).await.unwrap().status(),
        401,
        "a revoked token is refused"
    );
    let listed = running.json(path, &["token", "list"]).await;
    let revoked = listed["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["id"] == new_id.as_str())
        .unwrap();
    assert!(revoked["revokedAt"].is_string(), "{listed}");
    // Another account's tokens are not the API token's to list.
    let (status, _, stderr) = run_to_exit(
        path,
        &["token", "list", "--user", "someone@example.com"],
        &running.vars(),
    )
    .await;
    assert_eq!(status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("its own account only"), "{stderr}");

    // Agents: registered, listed, shown, started, stopped, deleted.
    let created = running
        .json(
            path,
            &[
                "agent",
                "register",
                "--name",
                "tck",
                "--kind",
                "conformance",
                "--description",
                "the conformance agent",
            ],
        )
        .await;
    let agent_id = created["id"].as_str().unwrap().to_owned();
    let (status, agent) = running.get(&format!("/agents/{agent_id}")).await;
    assert_eq!(status, 200);
    assert_eq!(agent["name"], "tck");
    let table = running.ok(path, &["agent", "list"]).await;
    let rows = assert_aligned_table(&table, &["UPDATED"]);
    assert!(
        rows.iter()
            .any(|row| row[0] == agent_id && row[1] == "tck" && row[2] == "conformance"),
        "{table}"
    );
    let shown = running.ok(path, &["agent", "show", "tck"]).await;
    assert!(shown.contains("the conformance agent"), "{shown}");
    let started = running.ok(path, &["agent", "start", "tck"]).await;
    assert!(started.contains("tck is ready"), "{started}");
    assert_eq!(
        running.get(&format!("/agents/{agent_id}")).await.1["status"],
        "ready"
    );
    let stopped = running.json(path, &["agent", "stop", "tck"]).await;
    assert_eq!(stopped["status"], "stopped", "{stopped}");
    assert_eq!(
        running.get(&format!("/agents/{agent_id}")).await.1["status"],
        "stopped"
    );
    running.ok(path, &["agent", "delete", &agent_id]).await;
    assert_eq!(running.get(&format!("/agents/{agent_id}")).await.0, 404);

    // The vault: an imported secret, a rotation whose new key is the active one.
    let (status, stdout, stderr) = run_with_input(
        path,
        &[
            "secrets",
            "import",
            "--name",
            "legacy",
            "--value",
            IMPORT_VALUE,
        ],
        &running.vars(),
        &format!("{IMPORT_KEY}\n"),
    )
    .await;
    assert!(status.success(), "{stdout}{stderr}");
    assert!(stdout.contains("imported secret legacy"), "{stdout}");
    let (_, secrets) = running.get("/secrets").await;
    assert!(
        secrets["items"]
            .as_array()
            .unwrap()
            .iter()
            .any(|s| s["name"] == "legacy"),
        "{secrets}"
    );
    let table = running.ok(path, &["secrets", "list"]).await;
    let rows = assert_aligned_table(&table, &["CREATED", "UPDATED"]);
    assert!(rows.iter().any(|row| row[1] == "legacy"), "{table}");

    let rotated = running.json(path, &["keys", "rotate"]).await;
    assert_eq!(rotated["keyId"], 2, "{rotated}");
    let (_, keys) = running.get("/admin/vault/keys").await;
    let active: Vec<&Value> = keys["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|k| k["active"] == true)
        .collect();
    assert_eq!(active.len(), 1, "{keys}");
    assert_eq!(
        active[0]["id"], 2,
        "the rotated key is the active one: {keys}"
    );
    let table = running.ok(path, &["keys", "list"]).await;
    let rows = assert_aligned_table(&table, &["CREATED", "RETIRED"]);
    assert_eq!(
        rows.iter()
            .map(|row| (row[0].as_str(), row[2].as_str()))
            .collect::<Vec<_>>(),
        [("1", "no"), ("2", "yes")],
        "{table}"
    );
    // The imported secret, sealed under key 1, moves to key 2 now; key 1 is retired.
    let moved = running.ok(path, &["keys", "reencrypt"]).await;
    assert!(moved.contains("re-sealed 1 secrets under key 2"), "{moved}");
    let (_, keys) = running.get("/admin/vault/keys").await;
    let old = &keys["items"][0];
    assert_eq!(
        (old["id"].clone(), old["secrets"].clone()),
        (json!(1), json!(0)),
        "{keys}"
    );
    assert!(old["retiredAt"].is_string(), "{keys}");
    let (_, trail) = running.get("/audit?action=vault.reencrypt").await;
    // Audited as the admin's token that asked, not as the background job.
    let actor = trail["items"][0]["actor"].as_str().unwrap_or_default();
    assert!(actor.starts_with("token:"), "{trail}");
    assert!(running.server.stop().await.0.success());
}

#[tokio::test]
async fn the_audit_commands_work_while_the_server_runs() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path();
    let running = Running::start(path, &[]).await;

    let intact = running.ok(path, &["audit", "verify"]).await;
    assert!(intact.contains("audit chain intact:"), "{intact}");
    let report = running.json(path, &["audit", "verify"]).await;
    assert_eq!(report["intact"], true, "{report}");
    assert!(report["checked"].as_u64().unwrap() >= 3, "{report}");
    let (status, api) = running.get("/audit/verify").await;
    assert_eq!(status, 200);
    assert_eq!(api["intact"], true);

    let table = running
        .ok(path, &["audit", "list", "--action", "token."])
        .await;
    let rows = assert_aligned_table(&table, &["TIME"]);
    assert!(rows.iter().any(|row| row[3] == "token.create"), "{table}");
    let listed = running.json(path, &["audit", "list", "--limit", "2"]).await;
    assert_eq!(listed["items"].as_array().unwrap().len(), 2, "{listed}");

    let exported = running.ok(path, &["audit", "export"]).await;
    let lines: Vec<Value> = exported
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
    assert!(lines.len() >= 3, "{exported}");
    assert!(
        lines.iter().all(|line| line["hash"].is_string()),
        "{exported}"
    );
    let (_, trail) = running.get("/audit?action=audit.export").await;
    assert_eq!(
        trail["items"].as_array().unwrap().len(),
        1,
        "the export is audited"
    );
    assert!(running.server.stop().await.0.success());
}

/// Exit 2 when the server cannot be used (refused token, nothing listening), 1 when the work
/// fails; the token is never shown.
#[tokio::test]
async fn an_unusable_server_exits_2_and_failed_work_exits_1() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path();
    let running = Running::start(path, &[]).await;
    let url = running.server.base_url.clone();

    let wrong = [
        ("HIVE_URL", url.as_str()),
        ("HIVE_TOKEN", "hive_not-a-real-token"),
    ];
    let (status, stdout, stderr) = run_to_exit(path, &["user", "list"], &wrong).await;
    assert_eq!(status.code(), Some(2), "{stdout}{stderr}");
    assert!(
        stderr.contains("refused the token from HIVE_TOKEN"),
        "{stderr}"
    );
    assert!(!stderr.contains("hive_not-a-real-token"), "{stderr}");

    let no_token = [("HIVE_URL", url.as_str())];
    let (status, _, stderr) = run_to_exit(path, &["audit", "verify"], &no_token).await;
    assert_eq!(status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("no API token"), "{stderr}");

    // The embedded path says to use --url, the remote one works, the same data directory.
    let (status, _, stderr) = run_to_exit(path, &["audit", "verify"], &[]).await;
    assert_eq!(status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("--url"), "{stderr}");
    let flag = run_to_exit(
        path,
        &["audit", "verify", "--url", &url],
        &[("HIVE_TOKEN", running.token.as_str())],
    )
    .await;
    assert!(flag.0.success(), "{flag:?}");
    let alias = run_to_exit(
        path,
        &["keys", "list", "--server", &url],
        &[("HIVE_TOKEN", running.token.as_str())],
    )
    .await;
    assert!(alias.0.success(), "{alias:?}");

    // A viewer's token may not do an admin's work: the work fails (1), the server was reached.
    let invited = running
        .ok(
            path,
            &[
                "user",
                "invite",
                "--email",
                "v@example.com",
                "--role",
                "viewer",
            ],
        )
        .await;
    let invitation = invited.trim().split("#token=").nth(1).unwrap().to_owned();
    let accepted = client()
        .post(format!("{url}/api/v1/auth/invitation/accept"))
        .json(&json!({ "token": invitation, "displayName": "V", "password": PASSWORD }))
        .send()
        .await
        .unwrap();
    assert_eq!(accepted.status(), 201);
    assert!(running.server.stop().await.0.success());
    let viewer_token = create_token(path, "v@example.com", "v", None).await;
    let server = HiveProcess::start(path, &[]).await;
    let viewer = [
        ("HIVE_URL", server.base_url.as_str()),
        ("HIVE_TOKEN", viewer_token.as_str()),
    ];
    let (status, _, stderr) = run_to_exit(path, &["user", "list"], &viewer).await;
    assert_eq!(status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("may not do this"), "{stderr}");
    let closed = server.base_url.clone();
    assert!(server.stop().await.0.success());

    // Nothing listens there any more.
    let gone = [
        ("HIVE_URL", closed.as_str()),
        ("HIVE_TOKEN", viewer_token.as_str()),
    ];
    let (status, _, stderr) = run_to_exit(path, &["user", "list"], &gone).await;
    assert_eq!(status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("cannot reach"), "{stderr}");
}

#[tokio::test]
async fn a_profile_file_names_the_server_and_must_be_private() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path();
    let running = Running::start(path, &[]).await;
    let profile = path.join("profile");
    std::fs::write(
        &profile,
        format!(
            "# hive\nurl = \"{url}\"\ntoken = \"{token}\"\n\n[other]\nurl = http://127.0.0.1:9\ntoken = hive_other\n",
            url = running.server.base_url,
            token = running.token
        ),
    )
    .unwrap();
    let profile_path = profile.to_str().unwrap();
    let vars = [("HIVE_PROFILE", profile_path)];

    std::fs::set_permissions(&profile, std::fs::Permissions::from_mode(0o644)).unwrap();
    let (status, stdout, stderr) = run_to_exit(path, &["user", "list"], &vars).await;
    assert_eq!(status.code(), Some(2), "{stdout}{stderr}");
    assert!(
        stderr.contains("mode 0644") && stderr.contains("chmod 600"),
        "{stderr}"
    );
    assert!(
        !stderr.contains(&running.token) && stdout.is_empty(),
        "{stderr}"
    );

    std::fs::set_permissions(&profile, std::fs::Permissions::from_mode(0o600)).unwrap();
    let (status, stdout, stderr) = run_to_exit(path, &["user", "list", "--json"], &vars).await;
    assert!(status.success(), "{stdout}{stderr}");
    assert!(
        stderr.contains(&format!("hive: server {}", running.server.base_url)),
        "{stderr}"
    );
    let listed: Value = serde_json::from_str(stdout.trim()).unwrap();
    assert_eq!(listed["items"][0]["email"], "root@example.com");

    // A named profile wins over the default one (here: a server that is not there).
    let (status, _, stderr) =
        run_to_exit(path, &["audit", "verify", "--profile", "other"], &vars).await;
    assert_eq!(status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("hive: server http://127.0.0.1:9"),
        "{stderr}"
    );
    let (status, _, stderr) =
        run_to_exit(path, &["audit", "verify", "--profile", "missing"], &vars).await;
    assert_eq!(status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("no profile [missing]"), "{stderr}");
    assert!(running.server.stop().await.0.success());
}

/// On PostgreSQL the chain can be edited while the server runs: `hive audit verify` through
/// the API finds it and exits 1.
#[tokio::test]
async fn audit_verify_through_the_server_finds_an_edit_on_postgres() {
    if hive_testkit::postgres_admin_url().is_none() {
        return;
    }
    let database = hive_testkit::scratch_postgres().await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path();
    let vars = [("DATABASE_URL", database.url())];
    let running = Running::start(path, &vars).await;
    let remote = running.vars();
    let intact = run_to_exit(path, &["audit", "verify"], &remote).await;
    assert!(intact.0.success(), "{intact:?}");

    // Someone with the database owner's rights rewrites history behind the server's back.
    let pool = sqlx::PgPool::connect(database.url()).await.unwrap();
    sqlx::raw_sql(
        "ALTER TABLE audit_events DISABLE TRIGGER audit_events_append_only; \
         UPDATE audit_events SET actor = 'cli-forged' WHERE seq = 2",
    )
    .execute(&pool)
    .await
    .unwrap();
    pool.close().await;

    let (status, stdout, stderr) = run_to_exit(path, &["audit", "verify"], &remote).await;
    assert_eq!(status.code(), Some(1), "{stdout}{stderr}");
    assert!(stderr.contains("record 2 was altered"), "{stderr}");
    let (status, stdout, _) = run_to_exit(path, &["audit", "verify", "--json"], &remote).await;
    assert_eq!(status.code(), Some(1));
    let report: Value = serde_json::from_str(stdout.trim()).unwrap();
    assert_eq!(report["intact"], false, "{report}");
    assert_eq!(report["firstBreak"], "record 2 was altered", "{report}");
    assert!(running.server.stop().await.0.success());
}
