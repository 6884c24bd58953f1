//! Inference usage: rows kept as given, an agent's rows paged newest first, token sums per
//! agent from a moment on, values checked.

use crate::{T0, first};
use hive_store::{
    PageRequest, Store, StoreError, USAGE_DAYS_MAX, USAGE_PRINCIPAL_MAX_CHARS, UsageDay, UsageRow,
    truncate_to_micros,
};
use time::macros::{date, datetime};
use time::{Duration, OffsetDateTime};
use uuid::Uuid;

fn usage(agent_id: Uuid, seconds: i64, prompt: u64, completion: u64) -> UsageRow {
    UsageRow::llm(
        Uuid::now_v7(),
        agent_id,
        format!("user:{}", Uuid::now_v7()),
        "llama3.2:1b — ünïcode",
        prompt,
        completion,
        truncate_to_micros(T0 + Duration::seconds(seconds)),
    )
}

pub async fn usage_rows_round_trip_and_page_newest_first(store: &dyn Store) {
    let (agent, other) = (Uuid::now_v7(), Uuid::now_v7());
    let mut mine = Vec::new();
    for i in 0..13 {
        // Pairs share a time, so ties must be broken by id.
        let row = usage(agent, i / 2, 10 + i as u64, 1);
        store.usage().record(&row).await.unwrap();
        mine.push(row);
        store.usage().record(&usage(other, i, 5, 5)).await.unwrap();
    }
    // Nanoseconds are truncated to microseconds, not rounded.
    let precise = UsageRow {
        created_at: T0 + Duration::seconds(100),
        prompt_tokens: i64::MAX as u64,
        completion_tokens: 0,
        ..usage(agent, 0, 0, 0)
    };
    store.usage().record(&precise).await.unwrap();
    mine.push(UsageRow {
        created_at: truncate_to_micros(precise.created_at),
        ..precise
    });
    mine.sort_by_key(|u| std::cmp::Reverse((u.created_at, u.id)));

    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let page = PageRequest::new(4, cursor.as_deref()).unwrap();
        let got = store.usage().list(agent, &page).await.unwrap();
        assert!(got.items.len() <= 4);
        seen.extend(got.items);
        match got.next_cursor {
            Some(next) => cursor = Some(next),
            None => break,
        }
    }
    assert_eq!(seen, mine, "every row once, every field kept, newest first");

    let nobody = store
        .usage()
        .list(Uuid::now_v7(), &first(10))
        .await
        .unwrap();
    assert!(nobody.items.is_empty() && nobody.next_cursor.is_none());
}

pub async fn usage_tokens_are_summed_per_agent_from_a_moment(store: &dyn Store) {
    let (agent, other) = (Uuid::now_v7(), Uuid::now_v7());
    assert_eq!(store.usage().tokens_since(agent, T0).await.unwrap(), 0);
    for row in [
        usage(agent, -1, 1_000, 1_000),
        usage(agent, 0, 7, 3),
        usage(agent, 60, 20, 0),
        usage(other, 10, 500, 500),
    ] {
        store.usage().record(&row).await.unwrap();
    }
    let at = |seconds: i64| truncate_to_micros(T0 + Duration::seconds(seconds));
    assert_eq!(
        store.usage().tokens_since(agent, at(0)).await.unwrap(),
        30,
        "from the moment on, inclusive"
    );
    assert_eq!(store.usage().tokens_since(agent, at(1)).await.unwrap(), 20);
    assert_eq!(
        store.usage().tokens_since(agent, at(-10)).await.unwrap(),
        2_030
    );
    assert_eq!(store.usage().tokens_since(agent, at(61)).await.unwrap(), 0);
    assert_eq!(
        store.usage().tokens_since(other, at(0)).await.unwrap(),
        1_000
    );
}

pub async fn usage_values_are_checked(store: &dyn Store) {
    let agent = Uuid::now_v7();
    let invalid = |result: Result<(), StoreError>, what: &str| {
        assert!(
            matches!(result, Err(StoreError::Invalid(_))),
            "{what}: {result:?}"
        );
    };
    let base = usage(agent, 0, 1, 1);
    invalid(
        store
            .usage()
            .record(&UsageRow {
                principal: String::new(),
                ..base.clone()
            })
            .await,
        "empty principal",
    );
    invalid(
        store
            .usage()
            .record(&UsageRow {
                principal: "p".repeat(USAGE_PRINCIPAL_MAX_CHARS + 1),
                ..base.clone()
            })
            .await,
        "long principal",
    );
    invalid(
        store
            .usage()
            .record(&UsageRow {
                model: "m".repeat(201),
                ..base.clone()
            })
            .await,
        "long model",
    );
    invalid(
        store
            .usage()
            .record(&UsageRow {
                completion_tokens: u64::MAX,
                ..base.clone()
            })
            .await,
        "count over i64::MAX",
    );
    // Up to the caps, in characters, is fine.
    let at_caps = UsageRow {
        principal: "ü".repeat(USAGE_PRINCIPAL_MAX_CHARS),
        model: "é".repeat(200),
        ..base.clone()
    };
    store.usage().record(&at_caps).await.unwrap();
    let again = store.usage().record(&at_caps).await;
    assert!(matches!(again, Err(StoreError::Conflict(_))), "{again:?}");
    assert_eq!(
        store
            .usage()
            .tokens_since(agent, T0 - Duration::days(1))
            .await
            .unwrap(),
        2
    );
}

pub async fn usage_is_summed_per_utc_day(store: &dyn Store) {
    let (agent, other, idle) = (Uuid::now_v7(), Uuid::now_v7(), Uuid::now_v7());
    let at = |when: OffsetDateTime, prompt: u64, completion: u64| UsageRow {
        created_at: truncate_to_micros(when),
        ..usage(agent, 0, prompt, completion)
    };
    let first = date!(2026 - 03 - 01);
    for row in [
        // The microsecond before the first day: not counted.
        at(datetime!(2026-02-28 23:59:59.999999 UTC), 1_000, 1_000),
        // Both ends of the first day.
        at(datetime!(2026-03-01 00:00 UTC), 1, 2),
        at(datetime!(2026-03-01 23:59:59.999999 UTC), 10, 20),
        // 01:00 at +02:00 is 23:00 UTC the day before: the first day.
        at(datetime!(2026-03-02 01:00 +02:00), 100, 200),
        at(datetime!(2026-03-02 00:00 UTC), 3, 4),
        // No call on 03-03; two on 03-04.
        at(datetime!(2026-03-04 12:00 UTC), 5, 0),
        at(datetime!(2026-03-04 12:00 UTC), 6, 0),
        // The first moment after four days.
        at(datetime!(2026-03-05 00:00 UTC), 7, 7),
        UsageRow {
            created_at: truncate_to_micros(datetime!(2026-03-01 12:00 UTC)),
            ..usage(other, 0, 50, 50)
        },
    ] {
        store.usage().record(&row).await.unwrap();
    }
    let day = |day, calls, prompt_tokens, completion_tokens| UsageDay {
        day,
        calls,
        prompt_tokens,
        completion_tokens,
    };
    assert_eq!(
        store.usage().by_day(agent, first, 4).await.unwrap(),
        [
            day(date!(2026 - 03 - 01), 3, 111, 222),
            day(date!(2026 - 03 - 02), 1, 3, 4),
            day(date!(2026 - 03 - 04), 2, 11, 0),
        ],
        "per UTC day, oldest first, days without calls absent"
    );
    assert_eq!(
        store.usage().by_day(agent, first, 5).await.unwrap().last(),
        Some(&day(date!(2026 - 03 - 05), 1, 7, 7))
    );
    assert_eq!(
        store
            .usage()
            .by_day(agent, date!(2026 - 03 - 02), 1)
            .await
            .unwrap(),
        [day(date!(2026 - 03 - 02), 1, 3, 4)]
    );
    assert_eq!(
        store
            .usage()
            .by_day(agent, first, USAGE_DAYS_MAX)
            .await
            .unwrap()
            .len(),
        4
    );
    assert!(
        store
            .usage()
            .by_day(idle, first, 14)
            .await
            .unwrap()
            .is_empty(),
        "an agent with no calls has no days"
    );
    for days in [0, USAGE_DAYS_MAX + 1] {
        assert!(
            matches!(
                store.usage().by_day(agent, first, days).await,
                Err(StoreError::Invalid(_))
            ),
            "{days} days"
        );
    }
}
