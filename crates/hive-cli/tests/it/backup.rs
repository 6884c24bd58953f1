//! `hive backup` as an operator runs it: an archive made through a running server's API (and
//! refused on the locked data directory without one), verified with the operator's identity,
//! restored into an empty instance (SQLite and PostgreSQL) whose audit chain holds and whose
//! vault opens every secret, written before and after a key rotation; a tampered archive, the
//! wrong identity and a target that holds data are refused, the last one changing nothing; an
//! archive of an older schema is restored and migrated forward.

use crate::accounts::{PASSWORD, create_admin, create_token};
use crate::process::{HiveProcess, SHARED_SECRETS, client, run_to_exit};
use age::secrecy::ExposeSecret;
use serde_json::{Value, json};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

const OWNER: &str = "keeper@example.com";

/// The operator's key pair: the identity file (as `age-keygen` writes it) and the public key.
#[allow(deprecated)]
fn operator_key(dir: &Path, name: &str) -> (PathBuf, String) {
    let identity = age::x25519::Identity::generate();
    let public = identity.to_public().to_string();
    let path = dir.join(name);
    std::fs::write(
        &path,
        format!(
            "# public key: {public}\n{}\n",
            identity.to_string().expose_secret()
        ),
    )
    .unwrap();
    (path, public)
}

async fn ok(dir: &Path, args: &[&str], vars: &[(&str, &str)]) -> String {
    let (status, stdout, stderr) = run_to_exit(dir, args, vars).await;
    assert!(status.success(), "hive {args:?}:\n{stdout}\n{stderr}");
    stdout
}

async fn refused(dir: &Path, args: &[&str], vars: &[(&str, &str)]) -> String {
    let (status, stdout, stderr) = run_to_exit(dir, args, vars).await;
    assert!(!status.success(), "hive {args:?} succeeded:\n{stdout}");
    stderr
}

async fn api(server: &HiveProcess, token: &str, path: &str, body: Value) -> Value {
    let response = client()
        .post(format!("{}{path}", server.base_url))
        .bearer_auth(token)
        .json(&body)
        .send()
        .await
        .unwrap();
    assert!(
        response.status().is_success(),
        "{path}: {}",
        response.status()
    );
    response.json().await.unwrap()
}

/// An instance with a secret sealed under the first vault key and one under the second,
/// backed up through its running server by `hive backup create`: the archive's path.
async fn instance_backed_up(dir: &Path, vars: &[(&str, &str)]) -> PathBuf {
    create_admin_with(dir, vars).await;
    let token = token_with(dir, vars).await;
    let server = HiveProcess::start(dir, vars).await;
    api(
        &server,
        &token,
        "/api/v1/secrets",
        json!({"name": "before", "value": "value-before-rotation"}),
    )
    .await;
    api(&server, &token, "/api/v1/admin/vault/rotate", json!({})).await;
    api(
        &server,
        &token,
        "/api/v1/secrets",
        json!({"name": "after", "value": "value-after-rotation"}),
    )
    .await;

    let mut all = vars.to_vec();
    all.push(("HIVE_SERVER_URL", &server.base_url));
    all.push(("HIVE_TOKEN", &token));
    let made: Vec<Value> =
        serde_json::from_str(&ok(dir, &["backup", "create", "--json"], &all).await).unwrap();
    let name = made[0]["name"].as_str().unwrap().to_owned();
    let listed = ok(dir, &["backup", "list"], &all).await;
    assert!(listed.contains(&name), "{listed}");
    server.stop().await;
    dir.join("hive-data/backups").join(name)
}

async fn create_admin_with(dir: &Path, vars: &[(&str, &str)]) {
    if vars.is_empty() {
        create_admin(dir, OWNER).await;
    } else {
        let made = crate::process::run_with_input(
            dir,
            &["admin", "create", "--email", OWNER, "--name", "Root"],
            vars,
            &format!("{PASSWORD}\n"),
        )
        .await;
        assert!(made.0.success(), "{made:?}");
    }
}

async fn token_with(dir: &Path, vars: &[(&str, &str)]) -> String {
    if vars.is_empty() {
        return create_token(dir, OWNER, "backups", None).await;
    }
    let made = ok(
        dir,
        &["token", "create", "--user", OWNER, "--name", "backups"],
        vars,
    )
    .await;
    made.trim().to_owned()
}

/// The restored instance's audit chain holds, and its vault opens both secrets: after one
/// more rotation, re-sealing must decrypt each under whichever key it had in the archive (the
/// server's own re-encryption job may or may not have re-sealed the older one before the
/// backup, so only a fresh rotation makes the count certain).
async fn restored_instance_works(dir: &Path, vars: &[(&str, &str)]) {
    let verified = ok(dir, &["audit", "verify"], vars).await;
    assert!(verified.contains("audit chain intact"), "{verified}");
    ok(dir, &["keys", "rotate"], vars).await;
    let resealed = ok(dir, &["keys", "reencrypt"], vars).await;
    assert!(
        resealed.contains("re-sealed 2 secrets under key 3") && resealed.contains("0 unreadable"),
        "{resealed}"
    );
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

#[tokio::test]
async fn a_sqlite_instance_round_trips_through_an_archive_made_while_it_serves() {
    let keys = tempfile::tempdir().unwrap();
    let (identity, public) = operator_key(keys.path(), "operator.key");
    let (stranger, _) = operator_key(keys.path(), "stranger.key");
    let identity = identity.to_str().unwrap();
    let source = tempfile::tempdir().unwrap();
    let vars = [("HIVE_BACKUP_RECIPIENTS", public.as_str())];

    // Without a server named, the running server's data directory is not opened.
    create_admin(source.path(), OWNER).await;
    let server = HiveProcess::start(source.path(), &vars).await;
    let locked = run_to_exit(source.path(), &["backup", "create"], &vars).await;
    assert_eq!(locked.0.code(), Some(2), "{locked:?}");
    assert!(locked.2.contains("in use"), "{}", locked.2);
    server.stop().await;
    let source_dir = tempfile::tempdir().unwrap();
    let archive = instance_backed_up(source_dir.path(), &vars).await;
    assert_eq!(mode(&archive), 0o600);
    assert_eq!(mode(archive.parent().unwrap()), 0o700);
    let file = archive.to_str().unwrap();

    let verified = ok(
        keys.path(),
        &["backup", "verify", file, "--identity", identity],
        &[],
    )
    .await;
    assert!(verified.contains("archive verified"), "{verified}");
    assert!(
        verified.contains("database.sqlite") && verified.contains("secrets.json"),
        "{verified}"
    );

    // The wrong identity and a changed byte are refused, each saying which.
    let stranger = stranger.to_str().unwrap();
    let wrong = refused(
        keys.path(),
        &["backup", "verify", file, "--identity", stranger],
        &[],
    )
    .await;
    assert!(wrong.contains("does not open this archive"), "{wrong}");
    let mut bytes = std::fs::read(&archive).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x20;
    let tampered = keys.path().join("tampered.age");
    std::fs::write(&tampered, &bytes).unwrap();
    let damaged = refused(
        keys.path(),
        &[
            "backup",
            "verify",
            tampered.to_str().unwrap(),
            "--identity",
            identity,
        ],
        &[],
    )
    .await;
    assert!(damaged.contains("damaged or was altered"), "{damaged}");

    // Into an empty directory: the instance as it was.
    let target = tempfile::tempdir().unwrap();
    let restored = ok(
        target.path(),
        &["backup", "restore", file, "--identity", identity],
        &[],
    )
    .await;
    assert!(restored.contains("restored"), "{restored}");
    restored_instance_works(target.path(), &[]).await;

    // Again without --force: refused, and the database is as it was.
    let database = target.path().join("hive-data/hive.db");
    let before = std::fs::read(&database).unwrap();
    let again = refused(
        target.path(),
        &["backup", "restore", file, "--identity", identity],
        &[],
    )
    .await;
    assert!(again.contains("--force"), "{again}");
    assert_eq!(std::fs::read(&database).unwrap(), before);
    // A tampered archive changes nothing either, even with --force.
    let tampered_restore = refused(
        target.path(),
        &[
            "backup",
            "restore",
            tampered.to_str().unwrap(),
            "--identity",
            identity,
            "--force",
        ],
        &[],
    )
    .await;
    assert!(
        tampered_restore.contains("damaged or was altered"),
        "{tampered_restore}"
    );
    assert_eq!(std::fs::read(&database).unwrap(), before);
    // With --force the target is emptied first, then restored.
    ok(
        target.path(),
        &["backup", "restore", file, "--identity", identity, "--force"],
        &[],
    )
    .await;
    let verified = ok(target.path(), &["audit", "verify"], &[]).await;
    assert!(verified.contains("audit chain intact"), "{verified}");
}

#[tokio::test]
async fn a_postgres_instance_round_trips_into_an_empty_database() {
    if hive_testkit::postgres_admin_url().is_none() {
        return;
    }
    let keys = tempfile::tempdir().unwrap();
    let (identity, public) = operator_key(keys.path(), "operator.key");
    let identity = identity.to_str().unwrap();
    let source_db = hive_testkit::scratch_postgres().await;
    let target_db = hive_testkit::scratch_postgres().await;
    let shared = |url: &str| {
        let mut vars: Vec<(String, String)> = SHARED_SECRETS
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        vars.push(("DATABASE_URL".to_owned(), url.to_owned()));
        vars.push(("HIVE_BACKUP_RECIPIENTS".to_owned(), public.clone()));
        vars
    };
    let source_vars = shared(source_db.url());
    let source_vars: Vec<(&str, &str)> = source_vars
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let source = tempfile::tempdir().unwrap();
    let archive = instance_backed_up(source.path(), &source_vars).await;
    let file = archive.to_str().unwrap();
    let verified = ok(
        keys.path(),
        &["backup", "verify", file, "--identity", identity],
        &[],
    )
    .await;
    assert!(verified.contains("database.sql "), "{verified}");

    let target_vars = shared(target_db.url());
    let target_vars: Vec<(&str, &str)> = target_vars
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let target = tempfile::tempdir().unwrap();
    ok(
        target.path(),
        &["backup", "restore", file, "--identity", identity],
        &target_vars,
    )
    .await;
    restored_instance_works(target.path(), &target_vars).await;

    // The database now holds data: refused without --force (its own check, the data
    // directory's secrets file aside), then emptied and loaded with it.
    std::fs::remove_file(target.path().join("hive-data/secrets.json")).unwrap();
    let again = refused(
        target.path(),
        &["backup", "restore", file, "--identity", identity],
        &target_vars,
    )
    .await;
    assert!(
        again.contains("not empty") && again.contains("--force"),
        "{again}"
    );
    ok(
        target.path(),
        &["backup", "restore", file, "--identity", identity, "--force"],
        &target_vars,
    )
    .await;
    let verified = ok(target.path(), &["audit", "verify"], &target_vars).await;
    assert!(verified.contains("audit chain intact"), "{verified}");
}

/// An archive of a database an older Hive left one migration behind (with a table of its own,
/// to see its rows come back): restored, then migrated forward to this version.
#[tokio::test]
async fn an_archive_of_an_older_schema_is_restored_and_migrated_forward() {
    use hive_core::backup::archive::{self, Manifest, Source};
    use hive_store::Store;
    let migrations = Path::new(env!("CARGO_MANIFEST_DIR")).join("../hive-store-sqlite/migrations");
    let migrator = sqlx::migrate::Migrator::new(migrations).await.unwrap();
    let latest = migrator.iter().map(|m| m.version).max().unwrap();

    let old = tempfile::tempdir().unwrap();
    let store = hive_store_sqlite::SqliteStore::open(&old.path().join("hive.db"), 1)
        .await
        .unwrap();
    migrator
        .run_to(latest - 1, store.writer_pool())
        .await
        .unwrap();
    sqlx::raw_sql("CREATE TABLE sentinel (word TEXT); INSERT INTO sentinel VALUES ('kept');")
        .execute(store.writer_pool())
        .await
        .unwrap();
    let copy = old.path().join("copy.sqlite");
    store.copy_database(&copy).await.unwrap();
    store.close().await;

    let keys = tempfile::tempdir().unwrap();
    let (identity, public) = operator_key(keys.path(), "operator.key");
    let archive_path = keys.path().join("old.age");
    let manifest = Manifest {
        format: archive::FORMAT,
        hive_version: "0.0.1".to_owned(),
        backend: "sqlite".to_owned(),
        schema_version: Some(latest - 1),
        created_at: time::OffsetDateTime::now_utc()
            .replace_nanosecond(0)
            .unwrap(),
        members: Vec::new(),
    };
    let recipients = archive::recipients(&[public]).unwrap();
    let sources = [Source {
        name: hive_core::backup::SQLITE_MEMBER.to_owned(),
        path: copy,
    }];
    archive::write(&archive_path, manifest, &sources, &recipients).unwrap();

    let target = tempfile::tempdir().unwrap();
    let restored = ok(
        target.path(),
        &[
            "backup",
            "restore",
            archive_path.to_str().unwrap(),
            "--identity",
            identity.to_str().unwrap(),
        ],
        &[],
    )
    .await;
    assert!(
        restored.contains(&format!("migrated forward: [{latest}]")),
        "{restored}"
    );
    let migrated = ok(target.path(), &["migrate"], &[]).await;
    assert!(
        migrated.contains(&format!("up to date (schema version {latest})")),
        "{migrated}"
    );
    let verified = ok(target.path(), &["audit", "verify"], &[]).await;
    assert!(verified.contains("audit chain intact"), "{verified}");
    let pool = sqlx::SqlitePool::connect(&format!(
        "sqlite:{}",
        target.path().join("hive-data/hive.db").display()
    ))
    .await
    .unwrap();
    let word: String = sqlx::query_scalar("SELECT word FROM sentinel")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(word, "kept");
}
