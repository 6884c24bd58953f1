//! Settings: created once, replaced only from the version the writer read, each write audited
//! in its own transaction.

use crate::audited::{audit_count, broken, refused};
use crate::{T0, note};
use futures_util::future::join_all;
use hive_store::{
    PutOutcome, SETTING_VALUE_MAX_BYTES, SettingRow, SettingWrite, Store, StoreError,
    truncate_to_micros,
};
use time::Duration;

const ALLOWLIST: &str = "security.egress_allowlist";

fn write(name: &str, value: &str, expected_version: Option<i64>) -> SettingWrite {
    SettingWrite {
        name: name.to_owned(),
        value: value.to_owned(),
        expected_version,
        // Nanoseconds on purpose: stored times are truncated to microseconds.
        updated_at: T0 + Duration::minutes(expected_version.unwrap_or(0)),
        updated_by: "admin@example.com".to_owned(),
    }
}

/// The row a successful `write` must leave behind, as version `version`.
fn stored(write: &SettingWrite, version: i64) -> SettingRow {
    SettingRow {
        name: write.name.clone(),
        value: write.value.clone(),
        version,
        updated_at: truncate_to_micros(write.updated_at),
        updated_by: write.updated_by.clone(),
    }
}

fn written(outcome: Result<PutOutcome, StoreError>, what: &str) -> SettingRow {
    match outcome {
        Ok(PutOutcome::Written(row)) => row,
        other => panic!("{what}: expected a write, got {other:?}"),
    }
}

pub async fn settings_are_created_replaced_and_listed(store: &dyn Store) {
    let settings = store.settings();
    assert_eq!(settings.get(ALLOWLIST).await.unwrap(), None);
    assert!(settings.list().await.unwrap().is_empty());
    let audited = audit_count(store).await;

    // Whitespace and key order are kept: the value is stored as text, not re-encoded.
    let create = write(
        ALLOWLIST,
        r#"{ "hosts": ["b.example", "a.example"], "a": 1 }"#,
        None,
    );
    let created = written(
        settings
            .put(&create, note("settings.update").append())
            .await,
        "create",
    );
    assert_eq!(created, stored(&create, 1));
    assert_eq!(
        settings.get(ALLOWLIST).await.unwrap(),
        Some(created.clone())
    );

    let replace = SettingWrite {
        updated_by: "other-admin".to_owned(),
        ..write(ALLOWLIST, r#"{"hosts":[]}"#, Some(1))
    };
    let replaced = written(
        settings
            .put(&replace, note("settings.update").append())
            .await,
        "replace",
    );
    assert_eq!(replaced, stored(&replace, 2));
    assert_eq!(
        settings.get(ALLOWLIST).await.unwrap(),
        Some(replaced.clone())
    );
    let third = written(
        settings
            .put(
                &write(ALLOWLIST, "[1, 2.5, null, true]", Some(2)),
                note("settings.update").append(),
            )
            .await,
        "replace again",
    );
    assert_eq!(third.version, 3);

    // Names sort by code point; every document kind is a value.
    let other = write("a_first.name", "\"text\"", None);
    let other = written(
        settings.put(&other, note("settings.update").append()).await,
        "another",
    );
    assert_eq!(settings.list().await.unwrap(), vec![other, third]);
    assert_eq!(
        audit_count(store).await,
        audited + 4,
        "one record per write"
    );
}

pub async fn stale_setting_writes_change_nothing(store: &dyn Store) {
    let settings = store.settings();
    let create = write(ALLOWLIST, r#"{"hosts":["a.example"]}"#, None);
    assert_eq!(
        written(
            settings
                .put(&create, note("settings.update").append())
                .await,
            "create",
        ),
        stored(&create, 1)
    );
    written(
        settings
            .put(
                &write(ALLOWLIST, r#"{"hosts":["b.example"]}"#, Some(1)),
                note("settings.update").append(),
            )
            .await,
        "replace",
    );
    let current = settings.get(ALLOWLIST).await.unwrap();
    let audited = audit_count(store).await;

    for (attempt, what) in [
        (
            write(ALLOWLIST, r#"{"hosts":["evil"]}"#, None),
            "a second create",
        ),
        (
            write(ALLOWLIST, r#"{"hosts":["evil"]}"#, Some(1)),
            "an old version",
        ),
        (
            write(ALLOWLIST, r#"{"hosts":["evil"]}"#, Some(3)),
            "a future version",
        ),
        (
            write(ALLOWLIST, r#"{"hosts":["evil"]}"#, Some(0)),
            "version 0",
        ),
    ] {
        assert_eq!(
            settings
                .put(&attempt, note("settings.update").append())
                .await
                .unwrap(),
            PutOutcome::Stale {
                current_version: Some(2)
            },
            "{what}"
        );
    }
    // Replacing what does not exist creates nothing.
    assert_eq!(
        settings
            .put(
                &write("missing", "{}", Some(1)),
                note("settings.update").append()
            )
            .await
            .unwrap(),
        PutOutcome::Stale {
            current_version: None
        }
    );
    assert_eq!(settings.get("missing").await.unwrap(), None);
    assert_eq!(settings.get(ALLOWLIST).await.unwrap(), current);
    assert_eq!(settings.list().await.unwrap().len(), 1);
    assert_eq!(
        audit_count(store).await,
        audited,
        "no record without a write"
    );
}

pub async fn setting_names_values_and_authors_are_checked(store: &dyn Store) {
    let settings = store.settings();
    let longest_name = "n".repeat(64);
    // Exactly the limit, in bytes: a JSON string of 65534 letters and its two quotes.
    let largest_value = format!("\"{}\"", "a".repeat(SETTING_VALUE_MAX_BYTES - 2));
    for (name, value) in [(longest_name.as_str(), "{}"), ("big", &largest_value)] {
        written(
            settings
                .put(&write(name, value, None), note("settings.update").append())
                .await,
            name,
        );
    }
    let audited = audit_count(store).await;

    let too_long_name = "n".repeat(65);
    let too_large = format!("\"{}\"", "a".repeat(SETTING_VALUE_MAX_BYTES - 1));
    // Fewer characters than the limit but more bytes: the limit is in bytes.
    let too_many_bytes = format!("\"{}\"", "é".repeat(SETTING_VALUE_MAX_BYTES / 2));
    let mut refused_writes = vec![
        (write("", "{}", None), "an empty name"),
        (write(&too_long_name, "{}", None), "a name of 65"),
        (write("Security", "{}", None), "capitals"),
        (write("a-b", "{}", None), "a dash"),
        (write("a b", "{}", None), "a space"),
        (write("a1", "{}", None), "a digit"),
        (write("égress", "{}", None), "a non-ASCII letter"),
        (write("a\nb", "{}", None), "a newline"),
        (write("a/b", "{}", None), "a slash"),
        (write("big2", &too_large, None), "a value of 64 KiB + 1"),
        (
            write("big3", &too_many_bytes, None),
            "a value too large in bytes",
        ),
        (write("x", "", None), "an empty value"),
        (write("x", "{", None), "broken JSON"),
        (write("x", "{'a': 1}", None), "single quotes"),
        (write("x", "{a: 1}", None), "a bare key (JSON5)"),
        (write("x", "[1,]", None), "a trailing comma"),
        (write("x", "hosts", None), "not JSON"),
        (write("x", "{} {}", None), "two documents"),
        (write("big", "{]", Some(1)), "broken JSON on replace"),
    ];
    let mut no_author = write("x", "{}", None);
    no_author.updated_by = String::new();
    refused_writes.push((no_author, "no author"));
    let mut long_author = write("x", "{}", None);
    long_author.updated_by = "a".repeat(101);
    refused_writes.push((long_author, "an author of 101"));
    for (attempt, what) in &refused_writes {
        let result = settings
            .put(attempt, note("settings.update").append())
            .await;
        assert!(
            matches!(result, Err(StoreError::Invalid(_))),
            "{what}: {result:?}"
        );
    }
    assert_eq!(settings.list().await.unwrap().len(), 2, "nothing added");
    assert_eq!(settings.get("big").await.unwrap().unwrap().version, 1);
    assert_eq!(
        audit_count(store).await,
        audited,
        "no record without a write"
    );
}

pub async fn concurrent_setting_writes_have_one_winner(store: &dyn Store) {
    let settings = store.settings();

    // Twenty admins creating the same setting at once.
    let creates: Vec<SettingWrite> = (0..20)
        .map(|i| write(ALLOWLIST, &format!(r#"{{"by":{i}}}"#), None))
        .collect();
    let notes: Vec<_> = creates.iter().map(|_| note("settings.update")).collect();
    let outcomes = join_all(
        creates
            .iter()
            .zip(&notes)
            .map(|(w, n)| settings.put(w, n.append())),
    )
    .await;
    let created = one_winner(outcomes, 1);

    // Twenty replacing the version they all read.
    let replaces: Vec<SettingWrite> = (0..20)
        .map(|i| write(ALLOWLIST, &format!(r#"{{"by":{}}}"#, 100 + i), Some(1)))
        .collect();
    // Fresh records: record ids are unique.
    let notes: Vec<_> = replaces.iter().map(|_| note("settings.update")).collect();
    let outcomes = join_all(
        replaces
            .iter()
            .zip(&notes)
            .map(|(w, n)| settings.put(w, n.append())),
    )
    .await;
    let replaced = one_winner(outcomes, 2);
    assert_ne!(created.value, replaced.value);
    assert_eq!(settings.get(ALLOWLIST).await.unwrap(), Some(replaced));
    assert_eq!(audit_count(store).await, 2, "only the winners were audited");
}

/// Exactly one of `outcomes` wrote (`version`); every other one saw that write.
fn one_winner(outcomes: Vec<Result<PutOutcome, StoreError>>, version: i64) -> SettingRow {
    let mut winners = Vec::new();
    for outcome in outcomes {
        match outcome.unwrap() {
            PutOutcome::Written(row) => winners.push(row),
            PutOutcome::Stale { current_version } => {
                assert_eq!(current_version, Some(version), "a loser sees the winner")
            }
        }
    }
    assert_eq!(winners.len(), 1, "{winners:?}");
    let winner = winners.remove(0);
    assert_eq!(winner.version, version);
    winner
}

pub async fn a_setting_whose_audit_record_fails_is_unchanged(store: &dyn Store) {
    let settings = store.settings();
    refused(
        settings
            .put(
                &write(ALLOWLIST, "{}", None),
                broken("settings.update").append(),
            )
            .await,
        "create",
    );
    assert_eq!(settings.get(ALLOWLIST).await.unwrap(), None);

    let create = write(ALLOWLIST, r#"{"hosts":["a.example"]}"#, None);
    let created = written(
        settings
            .put(&create, note("settings.update").append())
            .await,
        "create",
    );
    let audited = audit_count(store).await;
    refused(
        settings
            .put(
                &write(ALLOWLIST, r#"{"hosts":["evil"]}"#, Some(1)),
                broken("settings.update").append(),
            )
            .await,
        "replace",
    );
    assert_eq!(settings.get(ALLOWLIST).await.unwrap(), Some(created));
    assert_eq!(audit_count(store).await, audited);

    // The refused write left the version where it was: the next writer of version 1 wins.
    let next = written(
        settings
            .put(
                &write(ALLOWLIST, r#"{"hosts":[]}"#, Some(1)),
                note("settings.update").append(),
            )
            .await,
        "replace after the refusal",
    );
    assert_eq!(next.version, 2);
}
