//! The database's copy for backups: `pg_dump` writes a plain SQL script, `psql` loads it into
//! an empty database. Both are PostgreSQL's own client programs, found on `PATH`; the
//! connection reaches them through libpq's environment variables, so the password is never on
//! a command line (where any local user could read it).

use hive_store::StoreError;
use percent_encoding::percent_decode_str;
use sqlx::postgres::PgConnectOptions;
use sqlx::{ConnectOptions, Connection, Executor, Row};
use std::path::Path;
use std::str::FromStr;
use tokio::process::Command;

/// The URL's query parameters passed on, by the libpq variable that carries each.
const PASSED_PARAMETERS: [(&str, &str); 6] = [
    ("sslmode", "PGSSLMODE"),
    ("sslrootcert", "PGSSLROOTCERT"),
    ("sslcert", "PGSSLCERT"),
    ("sslkey", "PGSSLKEY"),
    ("options", "PGOPTIONS"),
    ("host", "PGHOST"),
];

fn invalid_url() -> StoreError {
    StoreError::Invalid("DATABASE_URL is not a valid PostgreSQL URL".to_owned())
}

fn decoded(text: &str) -> Result<String, StoreError> {
    percent_decode_str(text)
        .decode_utf8()
        .map(|text| text.into_owned())
        .map_err(|_| invalid_url())
}

/// libpq's environment for the connection `url` names.
fn libpq_environment(url: &str) -> Result<Vec<(&'static str, String)>, StoreError> {
    let parsed = url::Url::parse(url).map_err(|_| invalid_url())?;
    if !matches!(parsed.scheme(), "postgres" | "postgresql") {
        return Err(invalid_url());
    }
    let mut env = Vec::new();
    if let Some(host) = parsed.host_str().filter(|host| !host.is_empty()) {
        env.push(("PGHOST", host.trim_matches(['[', ']']).to_owned()));
    }
    if let Some(port) = parsed.port() {
        env.push(("PGPORT", port.to_string()));
    }
    if !parsed.username().is_empty() {
        env.push(("PGUSER", decoded(parsed.username())?));
    }
    if let Some(password) = parsed.password() {
        env.push(("PGPASSWORD", decoded(password)?));
    }
    let database = parsed.path().trim_start_matches('/');
    if !database.is_empty() {
        env.push(("PGDATABASE", decoded(database)?));
    }
    for (name, value) in parsed.query_pairs() {
        if let Some((_, variable)) = PASSED_PARAMETERS.iter().find(|(known, _)| *known == name) {
            env.push((variable, value.into_owned()));
        }
    }
    Ok(env)
}

/// Runs one of PostgreSQL's client programs on `url`'s database: only `PATH` is inherited
/// (no stray `PG*` variable of this process reaches it), and its standard error is the
/// failure's message (libpq never prints the password).
async fn run_client(program: &str, args: &[&std::ffi::OsStr], url: &str) -> Result<(), StoreError> {
    let mut command = Command::new(program);
    command
        .args(args)
        .env_clear()
        .envs(libpq_environment(url)?)
        // No ~/.pgpass of this account is read in place of the URL's password.
        .env("PGPASSFILE", "/dev/null")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true);
    if let Some(path) = std::env::var_os("PATH") {
        command.env("PATH", path);
    }
    let output = command.output().await.map_err(|error| {
        StoreError::Unavailable(format!(
            "cannot run {program} (PostgreSQL's client programs must be installed): {error}"
        ))
    })?;
    if output.status.success() {
        return Ok(());
    }
    let said = String::from_utf8_lossy(&output.stderr);
    let said: String = said.lines().take(5).collect::<Vec<_>>().join("; ");
    Err(StoreError::Backend(format!(
        "{program} failed ({}): {said}",
        output.status
    )))
}

/// Writes the plain SQL dump of `url`'s database to `dest`: one consistent snapshot, taken
/// while the database serves.
pub(crate) async fn dump(url: &str, dest: &Path) -> Result<(), StoreError> {
    run_client(
        "pg_dump",
        &[
            "--format=plain".as_ref(),
            "--no-owner".as_ref(),
            "--no-privileges".as_ref(),
            "--file".as_ref(),
            dest.as_os_str(),
        ],
        url,
    )
    .await
}

/// The database's own tables, views and sequences (PostgreSQL's catalogs excluded).
const OBJECTS: &str = "SELECT count(*) AS objects FROM pg_catalog.pg_class c \
     JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace \
     WHERE n.nspname NOT IN ('pg_catalog', 'information_schema') \
     AND n.nspname NOT LIKE 'pg_toast%' AND n.nspname NOT LIKE 'pg_temp%'";

/// The schemas a clean drops (PostgreSQL's own excluded).
const SCHEMAS: &str = "SELECT nspname FROM pg_catalog.pg_namespace \
     WHERE nspname NOT IN ('pg_catalog', 'information_schema') \
     AND nspname NOT LIKE 'pg_toast%' AND nspname NOT LIKE 'pg_temp%'";

/// Loads a dump [`dump`] wrote into `url`'s database, which must be empty: one holding
/// anything is refused ([`StoreError::Conflict`]) unless `replace`, which first drops every
/// schema in it (all its data) and recreates an empty `public`. The load is one transaction:
/// it applies whole or not at all.
pub async fn restore_database(url: &str, dump: &Path, replace: bool) -> Result<(), StoreError> {
    let options = PgConnectOptions::from_str(url).map_err(|_| invalid_url())?;
    let mut connection = crate::within_connect_timeout(options.connect()).await?;
    let objects: i64 = connection
        .fetch_one(OBJECTS)
        .await
        .and_then(|row| row.try_get("objects"))
        .map_err(crate::map_error)?;
    if objects > 0 {
        if !replace {
            let _ = connection.close().await;
            return Err(StoreError::Conflict(
                "the database named by DATABASE_URL is not empty".to_owned(),
            ));
        }
        clean(&mut connection).await?;
    }
    let _ = connection.close().await;
    run_client(
        "psql",
        &[
            "--no-psqlrc".as_ref(),
            "--quiet".as_ref(),
            "--set=ON_ERROR_STOP=1".as_ref(),
            "--single-transaction".as_ref(),
            "--file".as_ref(),
            dump.as_os_str(),
        ],
        url,
    )
    .await
}

/// Drops every schema of the database and recreates an empty `public`, in one transaction.
async fn clean(connection: &mut sqlx::PgConnection) -> Result<(), StoreError> {
    let mut transaction = connection.begin().await.map_err(crate::map_error)?;
    let schemas: Vec<String> = sqlx::query_scalar(SCHEMAS)
        .fetch_all(&mut *transaction)
        .await
        .map_err(crate::map_error)?;
    for schema in schemas {
        // A name from the catalog, quoted as an identifier (a quote inside is doubled).
        let quoted = schema.replace('"', "\"\"");
        transaction
            .execute(sqlx::AssertSqlSafe(format!(
                "DROP SCHEMA \"{quoted}\" CASCADE"
            )))
            .await
            .map_err(crate::map_error)?;
    }
    transaction
        .execute("CREATE SCHEMA public")
        .await
        .map_err(crate::map_error)?;
    transaction.commit().await.map_err(crate::map_error)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_password_goes_to_the_environment_decoded() {
        let env = libpq_environment(
            "postgres://hive%40app:p%3Ass%2Fword@db.internal:6543/hive%20prod?sslmode=verify-full&application_name=x",
        )
        .unwrap();
        let get = |name: &str| {
            env.iter()
                .find(|(variable, _)| *variable == name)
                .map(|(_, value)| value.as_str())
        };
        assert_eq!(get("PGHOST"), Some("db.internal"));
        assert_eq!(get("PGPORT"), Some("6543"));
        assert_eq!(get("PGUSER"), Some("hive@app"));
        assert_eq!(get("PGPASSWORD"), Some("p:ss/word"));
        assert_eq!(get("PGDATABASE"), Some("hive prod"));
        assert_eq!(get("PGSSLMODE"), Some("verify-full"));
        assert_eq!(
            env.len(),
            6,
            "nothing else is passed: {:?}",
            env.iter().map(|(n, _)| n).collect::<Vec<_>>()
        );
    }

    #[test]
    fn a_url_of_another_scheme_is_refused() {
        assert!(libpq_environment("mysql://u:p@h/db").is_err());
        assert!(libpq_environment("not a url").is_err());
    }
}
