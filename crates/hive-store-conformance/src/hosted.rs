//! Hosted agents: bundle versions counted up and never reused (also after pruning, also under
//! concurrency), the newest `keep` kept, one active version and rollbacks to a stored one,
//! archives kept byte for byte, caps refused, everything gone with the agent; replica leases
//! taken when free or expired, kept by their holder, renewed only while held, released only by
//! the holder. Times are passed explicitly: nothing here sleeps.

use crate::audited::{audit_count, broken, refused};
use crate::{T0, note};
use futures_util::future::join_all;
use hive_proto::Role;
use hive_proto::agents::{AgentKind, AgentStatus, AgentVisibility};
use hive_store::{
    AgentLimits, AgentRow, BundleRow, LeaseRow, MAX_BUNDLE_ARCHIVE_BYTES,
    MAX_BUNDLE_MANIFEST_BYTES, MAX_LEASE_ADDRESS_CHARS, MAX_LEASE_NODE_CHARS, NewBundle, NewUser,
    Store, StoreError, truncate_to_micros,
};
use time::{Duration, OffsetDateTime};
use uuid::Uuid;

/// `seconds` after T0, with T0's nanoseconds (the stores keep microseconds).
fn at(seconds: i64) -> OffsetDateTime {
    T0 + Duration::seconds(seconds)
}

async fn user(store: &dyn Store) -> Uuid {
    let id = Uuid::now_v7();
    let user = NewUser {
        id,
        email: format!("{}@example.com", id.simple()),
        display_name: "Uploader".to_owned(),
        role: Role::Operator,
        password_hash: None,
        created_at: truncate_to_micros(T0),
    };
    store
        .users()
        .create(&user, note("user.create").append())
        .await
        .unwrap();
    id
}

/// A hosted agent of a new owner; answers its id and its owner's.
async fn hosted_agent(store: &dyn Store) -> (Uuid, Uuid) {
    let owner_id = user(store).await;
    let id = Uuid::now_v7();
    let row = AgentRow {
        id,
        owner_id,
        name: format!("h-{}", id.simple()),
        description: String::new(),
        visibility: AgentVisibility::Private,
        kind: AgentKind::Hosted,
        runtime: "{}".to_owned(),
        skills: "[]".to_owned(),
        limits: AgentLimits {
            requests_per_minute: 0,
            tokens_per_day: 0,
            concurrent_tasks: 1,
            timeout_seconds: 60,
        },
        status: AgentStatus::Created,
        status_detail: String::new(),
        version: 1,
        created_at: truncate_to_micros(T0),
        updated_at: truncate_to_micros(T0),
    };
    store
        .agents()
        .create(&row, note("agent.create").append())
        .await
        .unwrap();
    (id, owner_id)
}

/// A digest of its own for each `n` (the store checks the form, not the content).
fn digest(n: u8) -> String {
    format!("{n:02x}").repeat(32)
}

/// An archive of its own for each `n`, with bytes no text encoding would keep.
fn archive(n: u8) -> Vec<u8> {
    let mut bytes = vec![0x1f, 0x8b, 0x00, 0xff, n];
    bytes.extend((0..=255u8).rev());
    bytes.extend(std::iter::repeat_n(n, usize::from(n) * 7));
    bytes
}

fn manifest(n: u8) -> String {
    format!("name = \"agent\"\nversion = \"0.{n}.0\"\n# ünïcode kept\n")
}

fn new_bundle<'a>(
    agent_id: Uuid,
    sha256: &'a str,
    manifest: &'a str,
    archive: &'a [u8],
    created_by: Option<Uuid>,
    created_at: OffsetDateTime,
) -> NewBundle<'a> {
    NewBundle {
        agent_id,
        sha256,
        manifest,
        archive,
        created_by,
        created_at,
    }
}

/// Pushes bundle `n` of the agent, keeping `keep`; answers the stored row.
async fn push(store: &dyn Store, agent_id: Uuid, n: u8, keep: u32) -> BundleRow {
    let (sha256, manifest, archive) = (digest(n), manifest(n), archive(n));
    let bundle = new_bundle(
        agent_id,
        &sha256,
        &manifest,
        &archive,
        None,
        at(i64::from(n)),
    );
    store
        .hosted()
        .push_bundle(&bundle, keep, note("agent.bundle.push").append())
        .await
        .unwrap()
}

async fn versions(store: &dyn Store, agent_id: Uuid) -> Vec<i64> {
    let listed = store.hosted().list_bundles(agent_id).await.unwrap();
    listed.iter().map(|b| b.version).collect()
}

/// The versions marked active.
async fn active_versions(store: &dyn Store, agent_id: Uuid) -> Vec<i64> {
    let listed = store.hosted().list_bundles(agent_id).await.unwrap();
    listed
        .iter()
        .filter(|b| b.active)
        .map(|b| b.version)
        .collect()
}

fn invalid<T: std::fmt::Debug>(result: Result<T, StoreError>, what: &str) {
    assert!(
        matches!(result, Err(StoreError::Invalid(_))),
        "{what}: {result:?}"
    );
}

pub async fn bundle_versions_count_up_and_are_never_reused(store: &dyn Store) {
    let (agent_id, uploader) = hosted_agent(store).await;
    let (sha256, text, bytes) = (digest(1), manifest(1), archive(1));
    let first = store
        .hosted()
        .push_bundle(
            &new_bundle(agent_id, &sha256, &text, &bytes, Some(uploader), at(1)),
            2,
            note("agent.bundle.push").append(),
        )
        .await
        .unwrap();
    assert_eq!(
        first,
        BundleRow {
            agent_id,
            version: 1,
            sha256: sha256.clone(),
            size_bytes: i64::try_from(bytes.len()).unwrap(),
            manifest: text.clone(),
            created_by: Some(uploader),
            created_at: truncate_to_micros(at(1)),
            active: true,
        }
    );
    assert_eq!(push(store, agent_id, 2, 2).await.version, 2);
    assert_eq!(push(store, agent_id, 3, 2).await.version, 3);
    assert_eq!(versions(store, agent_id).await, vec![3, 2], "1 was pruned");

    // The numbers go on from the highest ever stored, not from what is left.
    assert_eq!(push(store, agent_id, 4, 1).await.version, 4);
    assert_eq!(versions(store, agent_id).await, vec![4]);
    assert_eq!(push(store, agent_id, 5, 10).await.version, 5);
    assert_eq!(versions(store, agent_id).await, vec![5, 4]);

    // Each agent counts on its own.
    let (other, _) = hosted_agent(store).await;
    assert_eq!(push(store, other, 9, 10).await.version, 1);
    assert_eq!(versions(store, agent_id).await, vec![5, 4]);

    // Listed newest first, every field but the archive, as pushed.
    let listed = store.hosted().list_bundles(agent_id).await.unwrap();
    let (sha5, text5, bytes5) = (digest(5), manifest(5), archive(5));
    assert_eq!(
        listed[0],
        BundleRow {
            agent_id,
            version: 5,
            sha256: sha5,
            size_bytes: i64::try_from(bytes5.len()).unwrap(),
            manifest: text5,
            created_by: None,
            created_at: truncate_to_micros(at(5)),
            active: true,
        }
    );
    assert!(!listed[1].active);
    assert!(
        store
            .hosted()
            .list_bundles(Uuid::now_v7())
            .await
            .unwrap()
            .is_empty()
    );
}

pub async fn pushing_keeps_the_newest_versions(store: &dyn Store) {
    let (agent_id, _) = hosted_agent(store).await;
    for n in 1..=5 {
        push(store, agent_id, n, 3).await;
    }
    assert_eq!(versions(store, agent_id).await, vec![5, 4, 3]);
    // A larger `keep` deletes nothing and keeps what is there.
    push(store, agent_id, 6, 10).await;
    assert_eq!(versions(store, agent_id).await, vec![6, 5, 4, 3]);
    // `keep` 0 still keeps the new version.
    push(store, agent_id, 7, 0).await;
    assert_eq!(versions(store, agent_id).await, vec![7]);
    assert_eq!(active_versions(store, agent_id).await, vec![7]);
}

pub async fn one_bundle_version_is_active_and_rolled_back_to(store: &dyn Store) {
    let (agent_id, _) = hosted_agent(store).await;
    let hosted = store.hosted();
    assert_eq!(hosted.active_bundle(agent_id).await.unwrap(), None);
    for n in 1..=3 {
        let pushed = push(store, agent_id, n, 10).await;
        assert!(pushed.active);
        assert_eq!(
            active_versions(store, agent_id).await,
            vec![i64::from(n)],
            "the new version is the only active one"
        );
    }
    let (row, bytes) = hosted.active_bundle(agent_id).await.unwrap().unwrap();
    assert_eq!((row.version, bytes), (3, archive(3)));

    // A rollback to a stored version, with its audit record.
    let before = audit_count(store).await;
    assert!(
        hosted
            .activate_bundle(agent_id, 2, note("agent.bundle.activate").append())
            .await
            .unwrap()
    );
    assert_eq!(audit_count(store).await, before + 1);
    assert_eq!(active_versions(store, agent_id).await, vec![2]);
    let (row, bytes) = hosted.active_bundle(agent_id).await.unwrap().unwrap();
    assert_eq!((row.version, row.sha256, bytes), (2, digest(2), archive(2)));
    // Activating the active version again changes nothing but is a rollback all the same.
    assert!(
        hosted
            .activate_bundle(agent_id, 2, note("agent.bundle.activate").append())
            .await
            .unwrap()
    );
    assert_eq!(active_versions(store, agent_id).await, vec![2]);

    // A version that is not stored: nothing written, no audit record.
    let (other, _) = hosted_agent(store).await;
    let listed = hosted.list_bundles(agent_id).await.unwrap();
    let before = audit_count(store).await;
    for (agent, version) in [
        (agent_id, 4),
        (agent_id, 0),
        (other, 1),
        (Uuid::now_v7(), 1),
    ] {
        assert!(
            !hosted
                .activate_bundle(agent, version, note("agent.bundle.activate").append())
                .await
                .unwrap(),
            "version {version}"
        );
    }
    assert_eq!(hosted.list_bundles(agent_id).await.unwrap(), listed);
    assert_eq!(audit_count(store).await, before);

    // A pruned version cannot be activated.
    push(store, agent_id, 4, 2).await;
    assert_eq!(versions(store, agent_id).await, vec![4, 3]);
    assert!(
        !hosted
            .activate_bundle(agent_id, 2, note("agent.bundle.activate").append())
            .await
            .unwrap()
    );
    assert_eq!(active_versions(store, agent_id).await, vec![4]);

    // A rollback whose audit record fails is undone.
    refused(
        hosted
            .activate_bundle(agent_id, 3, broken("agent.bundle.activate").append())
            .await,
        "rollback",
    );
    assert_eq!(active_versions(store, agent_id).await, vec![4]);
}

pub async fn bundle_archives_round_trip_byte_for_byte(store: &dyn Store) {
    let (agent_id, _) = hosted_agent(store).await;
    // Every byte value, then a stretch no compression shortens.
    let mut bytes: Vec<u8> = (0..=255u8).cycle().take(4096).collect();
    let mut state = 0x2545_f491_4f6c_dd1d_u64;
    bytes.extend((0..300_000).map(|_| {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state.to_le_bytes()[0]
    }));
    let (sha256, text) = (digest(0xab), manifest(1));
    let pushed = store
        .hosted()
        .push_bundle(
            &new_bundle(agent_id, &sha256, &text, &bytes, None, at(0)),
            5,
            note("agent.bundle.push").append(),
        )
        .await
        .unwrap();
    assert_eq!(pushed.size_bytes, i64::try_from(bytes.len()).unwrap());
    let (row, stored) = store
        .hosted()
        .active_bundle(agent_id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(row, pushed);
    assert!(stored == bytes, "the archive comes back as it went in");

    // An empty archive is kept as empty.
    let pushed = store
        .hosted()
        .push_bundle(
            &new_bundle(agent_id, &sha256, "", &[], None, at(1)),
            5,
            note("agent.bundle.push").append(),
        )
        .await
        .unwrap();
    assert_eq!((pushed.size_bytes, pushed.manifest.as_str()), (0, ""));
    let (_, stored) = store
        .hosted()
        .active_bundle(agent_id)
        .await
        .unwrap()
        .unwrap();
    assert!(stored.is_empty());
}

pub async fn bundle_caps_are_refused(store: &dyn Store) {
    let (agent_id, _) = hosted_agent(store).await;
    let hosted = store.hosted();
    let before = audit_count(store).await;
    let sha256 = digest(1);
    let over_archive = vec![7u8; MAX_BUNDLE_ARCHIVE_BYTES + 1];
    let over_manifest = "é".repeat(MAX_BUNDLE_MANIFEST_BYTES / 2) + "x";
    let upper = "AB".repeat(32);
    let short = "ab".repeat(31);
    let not_hex = "g".repeat(64);
    let cases: [(&str, NewBundle<'_>); 5] = [
        (
            "an archive over its cap",
            new_bundle(agent_id, &sha256, "", &over_archive, None, at(0)),
        ),
        (
            "a manifest over its cap in bytes",
            new_bundle(agent_id, &sha256, &over_manifest, b"x", None, at(0)),
        ),
        (
            "an upper-case digest",
            new_bundle(agent_id, &upper, "", b"x", None, at(0)),
        ),
        (
            "a short digest",
            new_bundle(agent_id, &short, "", b"x", None, at(0)),
        ),
        (
            "a digest that is not hex",
            new_bundle(agent_id, &not_hex, "", b"x", None, at(0)),
        ),
    ];
    for (what, bundle) in &cases {
        invalid(
            hosted
                .push_bundle(bundle, 5, note("agent.bundle.push").append())
                .await,
            what,
        );
    }
    assert!(hosted.list_bundles(agent_id).await.unwrap().is_empty());
    assert_eq!(audit_count(store).await, before, "refusals write nothing");

    // Exactly at the caps is stored (the schema's own checks agree with the store's).
    let at_manifest = "é".repeat(MAX_BUNDLE_MANIFEST_BYTES / 2);
    let at_archive = vec![7u8; MAX_BUNDLE_ARCHIVE_BYTES];
    let pushed = hosted
        .push_bundle(
            &new_bundle(agent_id, &sha256, &at_manifest, &at_archive, None, at(0)),
            5,
            note("agent.bundle.push").append(),
        )
        .await
        .unwrap();
    assert_eq!(pushed.version, 1, "the refusals used no version number");
    assert_eq!(pushed.manifest, at_manifest);
    let (_, stored) = hosted.active_bundle(agent_id).await.unwrap().unwrap();
    assert_eq!(stored.len(), MAX_BUNDLE_ARCHIVE_BYTES);
    assert!(stored == at_archive);
}

pub async fn a_bundle_for_a_missing_agent_is_not_found(store: &dyn Store) {
    let before = audit_count(store).await;
    let missing = Uuid::now_v7();
    let (sha256, text, bytes) = (digest(1), manifest(1), archive(1));
    let pushed = store
        .hosted()
        .push_bundle(
            &new_bundle(missing, &sha256, &text, &bytes, None, at(0)),
            5,
            note("agent.bundle.push").append(),
        )
        .await;
    assert!(matches!(pushed, Err(StoreError::NotFound)), "{pushed:?}");
    assert_eq!(audit_count(store).await, before);
    assert!(
        store
            .hosted()
            .list_bundles(missing)
            .await
            .unwrap()
            .is_empty()
    );
}

pub async fn a_bundle_push_whose_audit_record_fails_is_undone(store: &dyn Store) {
    let (agent_id, _) = hosted_agent(store).await;
    push(store, agent_id, 1, 1).await;
    let (sha256, text, bytes) = (digest(2), manifest(2), archive(2));
    refused(
        store
            .hosted()
            .push_bundle(
                &new_bundle(agent_id, &sha256, &text, &bytes, None, at(2)),
                1,
                broken("agent.bundle.push").append(),
            )
            .await,
        "push",
    );
    // Neither stored nor pruning the active one, and its number not taken.
    assert_eq!(versions(store, agent_id).await, vec![1]);
    assert_eq!(active_versions(store, agent_id).await, vec![1]);
    assert_eq!(push(store, agent_id, 3, 5).await.version, 2);
}

pub async fn concurrent_bundle_pushes_take_distinct_versions(store: &dyn Store) {
    let (agent_id, _) = hosted_agent(store).await;
    let pushes = (1..=8u8).map(|n| push(store, agent_id, n, 100));
    let mut numbers: Vec<i64> = join_all(pushes).await.iter().map(|b| b.version).collect();
    numbers.sort_unstable();
    assert_eq!(numbers, (1..=8).collect::<Vec<i64>>());
    assert_eq!(
        versions(store, agent_id).await,
        (1..=8).rev().collect::<Vec<i64>>()
    );
    assert_eq!(active_versions(store, agent_id).await.len(), 1);
}

pub async fn a_deleted_agent_takes_its_bundles_and_lease(store: &dyn Store) {
    let (doomed, _) = hosted_agent(store).await;
    let (kept, _) = hosted_agent(store).await;
    let hosted = store.hosted();
    for agent_id in [doomed, kept] {
        push(store, agent_id, 1, 5).await;
        push(store, agent_id, 2, 5).await;
        assert!(
            hosted
                .take_lease(agent_id, "node-a", "http://a", at(0), at(30))
                .await
                .unwrap()
        );
    }
    assert!(
        store
            .agents()
            .delete(doomed, None, note("agent.delete").append())
            .await
            .unwrap()
    );
    assert!(hosted.list_bundles(doomed).await.unwrap().is_empty());
    assert_eq!(hosted.active_bundle(doomed).await.unwrap(), None);
    assert_eq!(hosted.lease_of(doomed).await.unwrap(), None);
    assert_eq!(
        hosted.renew_leases("node-a", at(1), at(31)).await.unwrap(),
        vec![kept]
    );
    // The other agent keeps everything.
    assert_eq!(versions(store, kept).await, vec![2, 1]);
    assert!(hosted.lease_of(kept).await.unwrap().is_some());
}

pub async fn a_hosted_agent_is_stored_and_paused(store: &dyn Store) {
    let (agent_id, _) = hosted_agent(store).await;
    let agents = store.agents();
    let row = agents.get(agent_id, None).await.unwrap().unwrap();
    assert_eq!(
        (row.kind, row.status),
        (AgentKind::Hosted, AgentStatus::Created)
    );
    assert!(
        agents
            .set_status(
                agent_id,
                AgentStatus::Paused,
                "paused by an operator",
                truncate_to_micros(at(1)),
                None,
            )
            .await
            .unwrap()
    );
    let paused = agents.get(agent_id, None).await.unwrap().unwrap();
    assert_eq!(
        (paused.kind, paused.status, paused.status_detail.as_str()),
        (
            AgentKind::Hosted,
            AgentStatus::Paused,
            "paused by an operator"
        )
    );
    assert!(
        agents
            .set_status_from(
                agent_id,
                AgentStatus::Paused,
                AgentStatus::Ready,
                "",
                truncate_to_micros(at(2)),
                None,
            )
            .await
            .unwrap()
    );
}

fn lease(agent_id: Uuid, node: &str, address: &str, expires_at: OffsetDateTime) -> LeaseRow {
    LeaseRow {
        agent_id,
        node: node.to_owned(),
        address: address.to_owned(),
        expires_at: truncate_to_micros(expires_at),
    }
}

pub async fn a_lease_is_taken_when_free_and_over_when_expired(store: &dyn Store) {
    let (agent_id, _) = hosted_agent(store).await;
    let hosted = store.hosted();
    assert_eq!(hosted.lease_of(agent_id).await.unwrap(), None);
    assert!(
        hosted
            .take_lease(agent_id, "node-a", "http://10.0.0.1:7000", at(0), at(30))
            .await
            .unwrap()
    );
    let held = lease(agent_id, "node-a", "http://10.0.0.1:7000", at(30));
    assert_eq!(
        hosted.lease_of(agent_id).await.unwrap().as_ref(),
        Some(&held)
    );

    // Another node is refused while it has not expired, up to its last instant.
    for now in [at(1), at(29), truncate_to_micros(at(30))] {
        assert!(
            !hosted
                .take_lease(agent_id, "node-b", "http://10.0.0.2:7000", now, at(60))
                .await
                .unwrap(),
            "at {now}"
        );
        assert_eq!(
            hosted.lease_of(agent_id).await.unwrap().as_ref(),
            Some(&held)
        );
    }

    // Once it expired, another node takes it over, with its own address and term.
    assert!(
        hosted
            .take_lease(agent_id, "node-b", "http://10.0.0.2:7000", at(31), at(61))
            .await
            .unwrap()
    );
    assert_eq!(
        hosted.lease_of(agent_id).await.unwrap(),
        Some(lease(agent_id, "node-b", "http://10.0.0.2:7000", at(61)))
    );
    assert!(
        !hosted
            .take_lease(agent_id, "node-a", "http://10.0.0.1:7000", at(32), at(62))
            .await
            .unwrap(),
        "the old holder does not get it back"
    );
}

pub async fn the_same_node_retakes_and_extends_its_lease(store: &dyn Store) {
    let (agent_id, _) = hosted_agent(store).await;
    let hosted = store.hosted();
    assert!(
        hosted
            .take_lease(agent_id, "node-a", "", at(0), at(30))
            .await
            .unwrap()
    );
    assert!(
        hosted
            .take_lease(agent_id, "node-a", "http://new:7000", at(10), at(40))
            .await
            .unwrap()
    );
    assert_eq!(
        hosted.lease_of(agent_id).await.unwrap(),
        Some(lease(agent_id, "node-a", "http://new:7000", at(40)))
    );
    // Its own expired lease too.
    assert!(
        hosted
            .take_lease(agent_id, "node-a", "http://new:7000", at(100), at(130))
            .await
            .unwrap()
    );
    assert_eq!(
        hosted.lease_of(agent_id).await.unwrap(),
        Some(lease(agent_id, "node-a", "http://new:7000", at(130)))
    );
}

pub async fn renewal_extends_only_the_leases_still_held(store: &dyn Store) {
    let hosted = store.hosted();
    let (long, _) = hosted_agent(store).await;
    let (short, _) = hosted_agent(store).await;
    let (others, _) = hosted_agent(store).await;
    for (agent_id, node, until) in [
        (long, "node-a", at(30)),
        (short, "node-a", at(10)),
        (others, "node-b", at(30)),
    ] {
        assert!(
            hosted
                .take_lease(agent_id, node, "", at(0), until)
                .await
                .unwrap()
        );
    }

    // `short` expired before now: node-a may have lost it, so it is not renewed.
    assert_eq!(
        hosted.renew_leases("node-a", at(20), at(50)).await.unwrap(),
        vec![long]
    );
    assert_eq!(
        hosted.lease_of(long).await.unwrap(),
        Some(lease(long, "node-a", "", at(50)))
    );
    assert_eq!(
        hosted.lease_of(short).await.unwrap(),
        Some(lease(short, "node-a", "", at(10)))
    );
    assert_eq!(
        hosted.lease_of(others).await.unwrap(),
        Some(lease(others, "node-b", "", at(30))),
        "another node's lease is untouched"
    );

    // node-b takes `short` over; node-a's renewals never bring it back.
    assert!(
        hosted
            .take_lease(short, "node-b", "", at(21), at(51))
            .await
            .unwrap()
    );
    assert_eq!(
        hosted.renew_leases("node-a", at(22), at(52)).await.unwrap(),
        vec![long]
    );
    assert_eq!(
        hosted.lease_of(short).await.unwrap().unwrap().node,
        "node-b"
    );
    let mut held_by_b = vec![short, others];
    held_by_b.sort_unstable();
    assert_eq!(
        hosted.renew_leases("node-b", at(23), at(53)).await.unwrap(),
        held_by_b
    );

    // A lease that ran out between renewals is not renewed; its end stays where it was.
    assert!(
        hosted
            .renew_leases("node-a", at(60), at(90))
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        hosted.lease_of(long).await.unwrap(),
        Some(lease(long, "node-a", "", at(52)))
    );
    assert!(
        hosted
            .renew_leases("node-c", at(0), at(90))
            .await
            .unwrap()
            .is_empty()
    );
}

pub async fn a_lease_is_released_only_by_its_holder(store: &dyn Store) {
    let (agent_id, _) = hosted_agent(store).await;
    let hosted = store.hosted();
    assert!(
        hosted
            .take_lease(agent_id, "node-a", "", at(0), at(30))
            .await
            .unwrap()
    );
    hosted.release_lease(agent_id, "node-b").await.unwrap();
    assert_eq!(
        hosted.lease_of(agent_id).await.unwrap(),
        Some(lease(agent_id, "node-a", "", at(30)))
    );
    hosted.release_lease(agent_id, "node-a").await.unwrap();
    assert_eq!(hosted.lease_of(agent_id).await.unwrap(), None);
    // Free again: another node takes it before the old term would have ended.
    assert!(
        hosted
            .take_lease(agent_id, "node-b", "", at(1), at(31))
            .await
            .unwrap()
    );
    // Releasing what is not held, or a missing agent's, is no error.
    hosted.release_lease(agent_id, "node-a").await.unwrap();
    hosted
        .release_lease(Uuid::now_v7(), "node-a")
        .await
        .unwrap();
    assert_eq!(
        hosted.lease_of(agent_id).await.unwrap().unwrap().node,
        "node-b"
    );
}

pub async fn a_lease_for_a_missing_agent_is_not_taken(store: &dyn Store) {
    let hosted = store.hosted();
    let missing = Uuid::now_v7();
    assert!(
        !hosted
            .take_lease(missing, "node-a", "", at(0), at(30))
            .await
            .unwrap()
    );
    assert_eq!(hosted.lease_of(missing).await.unwrap(), None);

    // Node names and addresses are checked.
    let (agent_id, _) = hosted_agent(store).await;
    let long_node = "n".repeat(MAX_LEASE_NODE_CHARS + 1);
    let long_address = "a".repeat(MAX_LEASE_ADDRESS_CHARS + 1);
    for (node, address) in [("", ""), (&*long_node, ""), ("node-a", &*long_address)] {
        invalid(
            hosted
                .take_lease(agent_id, node, address, at(0), at(30))
                .await,
            &format!("node of {} and address of {}", node.len(), address.len()),
        );
    }
    assert_eq!(hosted.lease_of(agent_id).await.unwrap(), None);
    let at_caps = (
        "é".repeat(MAX_LEASE_NODE_CHARS),
        "é".repeat(MAX_LEASE_ADDRESS_CHARS),
    );
    assert!(
        hosted
            .take_lease(agent_id, &at_caps.0, &at_caps.1, at(0), at(30))
            .await
            .unwrap(),
        "the caps count characters"
    );
}
