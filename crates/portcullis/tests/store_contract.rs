//! The contract every [`SessionStore`] keeps, written once and run against each store.
//!
//! To add a store, add one `store_contract!` line with an async factory that returns the store
//! and whatever must outlive it (a temporary folder, a server handle). Tests use keys unique to
//! one run, so a store shared between tests (a Redis server) works too.
#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use portcullis::store::{RedisStore, RedisTimeouts, SessionStore, StoreKey, WriteOutcome};

#[path = "support/redis.rs"]
mod redis_support;
use redis_support::{RedisCluster, RedisServer};

/// How long the tests give a short-lived record: long enough that a busy machine still
/// reaches the first load before it, short enough to keep the suite quick.
const SHORT: Duration = Duration::from_secs(1);
/// The most any test waits for a deadline to pass.
const PATIENCE: Duration = Duration::from_secs(5);
/// How often a waiting test looks again.
const POLL: Duration = Duration::from_millis(20);

/// A key no other test (or earlier run against a shared server) uses.
fn key(name: &str) -> StoreKey {
    let mut random = [0_u8; 8];
    getrandom::fill(&mut random).unwrap();
    let hex: String = random.iter().map(|b| format!("{b:02x}")).collect();
    StoreKey::from_string(format!("sess:test-{name}-{hex}"))
}

fn in_(duration: Duration) -> SystemTime {
    SystemTime::now() + duration
}

/// Waits, by polling the clock, until `deadline` has passed.
async fn wait_past(deadline: SystemTime) {
    let give_up = in_(PATIENCE)
        + deadline
            .duration_since(SystemTime::now())
            .unwrap_or_default();
    while SystemTime::now() <= deadline {
        assert!(
            SystemTime::now() < give_up,
            "the clock did not reach the deadline"
        );
        tokio::time::sleep(POLL).await;
    }
}

/// What `purge_expired` reports for a store.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Purge {
    /// The store removes expired records when asked, and counts them.
    Counts,
    /// The backend drops expired records by itself; the purge removes nothing and returns 0.
    ExpiresByItself,
}

macro_rules! store_contract {
    ($name:ident, $factory:expr) => {
        store_contract!($name, $factory, Purge::Counts);
    };
    ($name:ident, $factory:expr, $purge:expr) => {
        mod $name {
            use super::*;

            /// The store under test, and what must live as long as it.
            async fn store() -> (Arc<impl SessionStore>, impl Sized) {
                let (store, keep_alive) = $factory.await;
                (Arc::new(store), keep_alive)
            }

            #[tokio::test]
            async fn create_then_load_returns_the_record() {
                let (store, _keep) = store().await;
                let k = key("create-load");
                let outcome = store.create(&k, b"sealed", in_(PATIENCE)).await.unwrap();
                assert_eq!(outcome, WriteOutcome::Written);
                assert_eq!(
                    store.load(&k, None).await.unwrap().as_deref(),
                    Some(&b"sealed"[..])
                );
            }

            #[tokio::test]
            async fn create_refuses_an_existing_live_key() {
                let (store, _keep) = store().await;
                let k = key("create-twice");
                store.create(&k, b"first", in_(PATIENCE)).await.unwrap();
                let outcome = store.create(&k, b"second", in_(PATIENCE)).await.unwrap();
                assert_eq!(outcome, WriteOutcome::NotWritten);
                assert_eq!(
                    store.load(&k, None).await.unwrap().as_deref(),
                    Some(&b"first"[..])
                );
            }

            #[tokio::test]
            async fn update_replaces_a_live_record() {
                let (store, _keep) = store().await;
                let k = key("update-live");
                store.create(&k, b"old", in_(PATIENCE)).await.unwrap();
                let outcome = store.update(&k, b"new", in_(PATIENCE)).await.unwrap();
                assert_eq!(outcome, WriteOutcome::Written);
                assert_eq!(
                    store.load(&k, None).await.unwrap().as_deref(),
                    Some(&b"new"[..])
                );
            }

            #[tokio::test]
            async fn update_sets_the_new_deadline() {
                let (store, _keep) = store().await;
                let k = key("update-deadline");
                store.create(&k, b"old", in_(PATIENCE * 4)).await.unwrap();
                let deadline = in_(SHORT);
                store.update(&k, b"new", deadline).await.unwrap();
                wait_past(deadline).await;
                assert_eq!(store.load(&k, None).await.unwrap(), None);
            }

            #[tokio::test]
            async fn create_with_a_past_deadline_stores_nothing() {
                let (store, _keep) = store().await;
                let k = key("create-past");
                let past = SystemTime::now() - Duration::from_secs(1);
                let outcome = store.create(&k, b"stillborn", past).await.unwrap();
                assert_eq!(
                    outcome,
                    WriteOutcome::Written,
                    "no live record was in the way"
                );
                assert_eq!(store.load(&k, None).await.unwrap(), None);
                let update = store.update(&k, b"x", in_(PATIENCE)).await.unwrap();
                assert_eq!(update, WriteOutcome::NotWritten, "nothing was stored");

                store.create(&k, b"live", in_(PATIENCE)).await.unwrap();
                let outcome = store.create(&k, b"stillborn", past).await.unwrap();
                assert_eq!(
                    outcome,
                    WriteOutcome::NotWritten,
                    "a live record was in the way"
                );
                assert_eq!(
                    store.load(&k, None).await.unwrap().as_deref(),
                    Some(&b"live"[..])
                );
            }

            #[tokio::test]
            async fn update_to_a_past_deadline_ends_the_record() {
                let (store, _keep) = store().await;
                let k = key("update-past");
                store.create(&k, b"old", in_(PATIENCE)).await.unwrap();
                let past = SystemTime::now() - Duration::from_secs(1);
                let outcome = store.update(&k, b"new", past).await.unwrap();
                assert_eq!(outcome, WriteOutcome::Written);
                assert_eq!(store.load(&k, None).await.unwrap(), None);
                let again = store.create(&k, b"again", in_(PATIENCE)).await.unwrap();
                assert_eq!(again, WriteOutcome::Written);
            }

            #[tokio::test]
            async fn update_of_a_missing_key_writes_nothing() {
                let (store, _keep) = store().await;
                let k = key("update-missing");
                let outcome = store.update(&k, b"ghost", in_(PATIENCE)).await.unwrap();
                assert_eq!(outcome, WriteOutcome::NotWritten);
                assert_eq!(store.load(&k, None).await.unwrap(), None);
            }

            #[tokio::test]
            async fn delete_then_update_does_not_resurrect() {
                let (store, _keep) = store().await;
                let k = key("delete-update");
                store.create(&k, b"live", in_(PATIENCE)).await.unwrap();
                store.delete(&k).await.unwrap();
                let outcome = store
                    .update(&k, b"resurrected", in_(PATIENCE))
                    .await
                    .unwrap();
                assert_eq!(outcome, WriteOutcome::NotWritten);
                assert_eq!(store.load(&k, None).await.unwrap(), None);
            }

            #[tokio::test]
            async fn delete_of_missing_key_is_ok() {
                let (store, _keep) = store().await;
                let k = key("delete-missing");
                assert!(!store.delete(&k).await.unwrap());
                assert!(!store.delete(&k).await.unwrap());
                assert_eq!(store.load(&k, None).await.unwrap(), None);
            }

            #[tokio::test]
            async fn delete_says_whether_a_live_record_was_there() {
                let (store, _keep) = store().await;
                let k = key("delete-answer");
                store.create(&k, b"live", in_(PATIENCE)).await.unwrap();
                assert!(store.delete(&k).await.unwrap(), "a live record was removed");
                assert!(
                    !store.delete(&k).await.unwrap(),
                    "nothing left the second time"
                );
            }

            #[tokio::test]
            async fn load_of_missing_key_is_none() {
                let (store, _keep) = store().await;
                let k = key("load-missing");
                assert_eq!(store.load(&k, None).await.unwrap(), None);
                assert_eq!(store.load(&k, Some(in_(PATIENCE))).await.unwrap(), None);
            }

            #[tokio::test]
            async fn load_does_not_create_a_record() {
                let (store, _keep) = store().await;
                let k = key("load-no-create");
                assert_eq!(store.load(&k, Some(in_(PATIENCE))).await.unwrap(), None);
                // Had the sliding load created anything, update would find it, create would not.
                let update = store.update(&k, b"x", in_(PATIENCE)).await.unwrap();
                assert_eq!(update, WriteOutcome::NotWritten);
                let create = store.create(&k, b"x", in_(PATIENCE)).await.unwrap();
                assert_eq!(create, WriteOutcome::Written);
            }

            #[tokio::test]
            async fn expired_record_is_not_loaded() {
                let (store, _keep) = store().await;
                let k = key("expires");
                let deadline = in_(SHORT);
                store.create(&k, b"brief", deadline).await.unwrap();
                assert!(
                    store.load(&k, None).await.unwrap().is_some(),
                    "expired too early"
                );
                let give_up = deadline + PATIENCE;
                while store.load(&k, None).await.unwrap().is_some() {
                    assert!(
                        SystemTime::now() < give_up,
                        "still loaded long after its deadline"
                    );
                    tokio::time::sleep(POLL).await;
                }
                assert!(SystemTime::now() >= deadline, "gone before its deadline");
            }

            #[tokio::test]
            async fn load_with_slide_keeps_the_record_alive_past_its_old_deadline() {
                let (store, _keep) = store().await;
                let k = key("slide");
                let old_deadline = in_(SHORT);
                store.create(&k, b"slid", old_deadline).await.unwrap();
                let slid = store.load(&k, Some(in_(SHORT * 10))).await.unwrap();
                assert_eq!(slid.as_deref(), Some(&b"slid"[..]));
                wait_past(old_deadline).await;
                assert_eq!(
                    store.load(&k, None).await.unwrap().as_deref(),
                    Some(&b"slid"[..])
                );
            }

            #[tokio::test]
            async fn create_over_an_expired_record_succeeds() {
                let (store, _keep) = store().await;
                let k = key("create-over-expired");
                let deadline = in_(SHORT);
                store.create(&k, b"old", deadline).await.unwrap();
                wait_past(deadline).await;
                let outcome = store.create(&k, b"new", in_(PATIENCE)).await.unwrap();
                assert_eq!(outcome, WriteOutcome::Written);
                assert_eq!(
                    store.load(&k, None).await.unwrap().as_deref(),
                    Some(&b"new"[..])
                );
            }

            #[tokio::test]
            async fn update_of_an_expired_record_writes_nothing() {
                let (store, _keep) = store().await;
                let k = key("update-expired");
                let deadline = in_(SHORT);
                store.create(&k, b"old", deadline).await.unwrap();
                wait_past(deadline).await;
                let outcome = store.update(&k, b"new", in_(PATIENCE)).await.unwrap();
                assert_eq!(outcome, WriteOutcome::NotWritten);
                assert_eq!(store.load(&k, None).await.unwrap(), None);
            }

            #[tokio::test]
            async fn purge_expired_removes_only_expired_records() {
                let (store, _keep) = store().await;
                let (brief1, brief2, lasting) = (key("purge-a"), key("purge-b"), key("purge-c"));
                let deadline = in_(SHORT);
                store.create(&brief1, b"a", deadline).await.unwrap();
                store.create(&brief2, b"b", deadline).await.unwrap();
                store
                    .create(&lasting, b"c", in_(PATIENCE * 4))
                    .await
                    .unwrap();
                wait_past(deadline).await;
                let expected = if $purge == Purge::Counts { 2 } else { 0 };
                assert_eq!(store.purge_expired().await.unwrap(), expected);
                assert_eq!(store.purge_expired().await.unwrap(), 0);
                assert_eq!(
                    store.load(&lasting, None).await.unwrap().as_deref(),
                    Some(&b"c"[..])
                );
                assert_eq!(store.load(&brief1, None).await.unwrap(), None);
                assert_eq!(store.load(&brief2, None).await.unwrap(), None);
            }

            #[tokio::test]
            async fn records_are_bytes_not_text() {
                let (store, _keep) = store().await;
                let k = key("bytes");
                let created = [0x00, 0xFF, 0xFE, b'\n', 0x80, 0x00, b'\r'];
                store.create(&k, &created, in_(PATIENCE)).await.unwrap();
                assert_eq!(
                    store.load(&k, None).await.unwrap().as_deref(),
                    Some(&created[..])
                );
                let updated: Vec<u8> = (0..=255).rev().collect();
                store.update(&k, &updated, in_(PATIENCE)).await.unwrap();
                assert_eq!(store.load(&k, None).await.unwrap(), Some(updated));
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn concurrent_creates_of_one_key_write_exactly_once() {
                let (store, _keep) = store().await;
                let k = key("create-race");
                let tasks: Vec<_> = (0_u8..16)
                    .map(|i| {
                        let (store, k) = (Arc::clone(&store), k.clone());
                        tokio::spawn(async move {
                            (i, store.create(&k, &[i], in_(PATIENCE)).await.unwrap())
                        })
                    })
                    .collect();
                let mut winners = Vec::new();
                for task in tasks {
                    let (i, outcome) = task.await.unwrap();
                    if outcome == WriteOutcome::Written {
                        winners.push(i);
                    }
                }
                assert_eq!(winners.len(), 1, "winners: {winners:?}");
                assert_eq!(store.load(&k, None).await.unwrap(), Some(vec![winners[0]]));
            }

            /// `update` never creates, so whatever the interleaving, nothing may be left once
            /// a delete and concurrent updates have all finished; a record left means an
            /// update checked before the delete and wrote after it.
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn concurrent_updates_and_a_delete_leave_no_record() {
                let (store, _keep) = store().await;
                let k = key("update-delete-race");
                for round in 0..50 {
                    store.create(&k, b"live", in_(PATIENCE)).await.unwrap();
                    let updaters: Vec<_> = (0..4)
                        .map(|_| {
                            let (store, k) = (Arc::clone(&store), k.clone());
                            tokio::spawn(async move {
                                store.update(&k, b"updated", in_(PATIENCE)).await.unwrap()
                            })
                        })
                        .collect();
                    store.delete(&k).await.unwrap();
                    let late = store.update(&k, b"late", in_(PATIENCE)).await.unwrap();
                    assert_eq!(late, WriteOutcome::NotWritten, "round {round}");
                    for updater in updaters {
                        updater.await.unwrap();
                    }
                    let left = store.load(&k, None).await.unwrap();
                    assert_eq!(left, None, "round {round}: the session was resurrected");
                }
            }
        }
    };
}

store_contract!(memory, async {
    (portcullis::store::MemoryStore::new(), ())
});

#[cfg(unix)]
store_contract!(file, async {
    let folder = tempfile::tempdir().unwrap();
    let store = portcullis::store::FileStore::open(folder.path().join("sessions")).unwrap();
    (store, folder)
});

/// The contract's calls are not about timeouts: generous ones keep a busy machine from failing
/// them (the outage tests in `redis_store.rs` use the defaults).
const PATIENT_REDIS: RedisTimeouts = RedisTimeouts {
    connect: Duration::from_secs(5),
    response: Duration::from_secs(5),
};

store_contract!(
    redis,
    async {
        let url = RedisServer::shared().url();
        let store = RedisStore::connect(&url, PATIENT_REDIS).await.unwrap();
        (store, ())
    },
    Purge::ExpiresByItself
);

store_contract!(
    redis_cluster,
    async {
        let urls = RedisCluster::shared().urls();
        let store = RedisStore::connect(&urls, PATIENT_REDIS).await.unwrap();
        assert!(store.is_cluster());
        (store, ())
    },
    Purge::ExpiresByItself
);
