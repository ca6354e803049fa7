//! The contract every [`SessionStore`] keeps, written once and run against each store.
//!
//! To add a store, add one `store_contract!` line with an async factory that returns the store
//! and whatever must outlive it (a temporary folder, a server handle). Tests use keys unique to
//! one run, so a store shared between tests (a Redis server) works too.
#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use portcullis::store::{
    CasOutcome, CasToken, CreateIndexedOutcome, LimitPolicy, MAX_MEMBERS_VISITED, NewIndexed,
    Retire, SaveOutcome, SessionLimit, SessionStore, StoreKey, UserIndex, UserSlot, WriteOutcome,
};
#[cfg(feature = "redis")]
use portcullis::store::{RedisReplication, RedisStore, RedisTimeouts};

#[cfg(feature = "redis")]
use portcullis_testing::redis::{RedisCluster, RedisServer};
#[cfg(feature = "redis")]
use portcullis_testing::sentinel::SentinelSetup;

/// How long the tests give a short-lived record: long enough that a busy machine still
/// reaches the first load before it, short enough to keep the suite quick.
const SHORT: Duration = Duration::from_secs(1);
/// The most any test waits for a deadline to pass.
const PATIENCE: Duration = Duration::from_secs(5);
/// How often a waiting test looks again.
const POLL: Duration = Duration::from_millis(20);
/// How much before its deadline a store may end a record: the Redis store rounds the
/// deadline down to the millisecond before it (`PXAT`), so that it is never late.
const EARLY_AT_MOST: Duration = Duration::from_millis(1);

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

/// A user slot no other test uses: the index `sess:idx:{tag}` and members `sess:{tag}<m>`, as
/// the session layer names them.
fn slot(name: &str) -> UserSlot {
    let tag = key(name).as_str().replace("sess:test-", "");
    UserSlot::new(
        StoreKey::from_string(format!("sess:idx:{{{tag}}}")),
        format!("sess:{{{tag}}}"),
    )
}

/// A member name, as the layer makes them (base64url).
fn member(name: &str) -> String {
    format!("m-{name}")
}

/// A new indexed session `name` in `slot`, living `life`, with `limit`.
fn indexed<'a>(
    slot: &'a UserSlot,
    name: &'a str,
    record: &'a [u8],
    life: Duration,
    limit: SessionLimit,
) -> NewIndexed<'a> {
    NewIndexed {
        slot,
        member: name,
        record,
        expires_at: in_(life),
        deadline: in_(life),
        retire: None,
        limit,
    }
}

fn limit(max: usize, policy: LimitPolicy) -> SessionLimit {
    SessionLimit {
        max: std::num::NonZeroUsize::new(max),
        policy,
    }
}

/// What `purge_expired` reports for a store.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Purge {
    /// The store removes expired records when asked, and counts them.
    Counts,
    /// The backend drops expired records by itself; the purge removes nothing and returns 0.
    #[cfg(feature = "redis")]
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
            async fn save_replaces_a_record_that_still_matches_its_token() {
                let (store, _keep) = store().await;
                let k = key("save-live");
                store
                    .create(&k, b"old record", in_(PATIENCE))
                    .await
                    .unwrap();
                let outcome = store
                    .save(&k, &CasToken::new(b"old"), b"new record", in_(PATIENCE))
                    .await
                    .unwrap();
                assert_eq!(outcome, SaveOutcome::Saved);
                assert_eq!(
                    store.load(&k, None).await.unwrap().as_deref(),
                    Some(&b"new record"[..])
                );
            }

            /// The token is opaque: any prefix of the record, the whole record included.
            #[tokio::test]
            async fn a_token_matches_when_the_record_begins_with_it() {
                let (store, _keep) = store().await;
                let k = key("save-prefix");
                store.create(&k, b"abcdef", in_(PATIENCE)).await.unwrap();
                for (token, next) in [
                    (&b"abcdef"[..], &b"ghijkl"[..]),
                    (b"g", b"mnopqr"),
                    (b"", b"stuvwx"),
                ] {
                    let outcome = store
                        .save(&k, &CasToken::new(token), next, in_(PATIENCE))
                        .await
                        .unwrap();
                    assert_eq!(outcome, SaveOutcome::Saved, "{token:?}");
                }
                let longer = store
                    .save(&k, &CasToken::new(b"stuvwxyz"), b"never", in_(PATIENCE))
                    .await
                    .unwrap();
                assert_eq!(longer, SaveOutcome::Conflict(b"stuvwx".to_vec()));
            }

            #[tokio::test]
            async fn a_save_with_a_stale_token_is_a_conflict_holding_the_live_record() {
                let (store, _keep) = store().await;
                let k = key("save-stale");
                store.create(&k, b"v1 first", in_(PATIENCE)).await.unwrap();
                let first = store
                    .save(&k, &CasToken::new(b"v1"), b"v2 second", in_(PATIENCE))
                    .await;
                assert_eq!(first.unwrap(), SaveOutcome::Saved);
                let late = store
                    .save(&k, &CasToken::new(b"v1"), b"v3 lost", in_(PATIENCE))
                    .await
                    .unwrap();
                assert_eq!(late, SaveOutcome::Conflict(b"v2 second".to_vec()));
                assert_eq!(
                    store.load(&k, None).await.unwrap().as_deref(),
                    Some(&b"v2 second"[..]),
                    "the conflicting save wrote nothing"
                );
            }

            #[tokio::test]
            async fn save_sets_the_new_deadline() {
                let (store, _keep) = store().await;
                let k = key("save-deadline");
                store.create(&k, b"old", in_(PATIENCE * 4)).await.unwrap();
                let deadline = in_(SHORT);
                store
                    .save(&k, &CasToken::new(b"old"), b"new", deadline)
                    .await
                    .unwrap();
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
                let save = store
                    .save(&k, &CasToken::new(b""), b"x", in_(PATIENCE))
                    .await
                    .unwrap();
                assert_eq!(save, SaveOutcome::Gone, "nothing was stored");

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
            async fn save_to_a_past_deadline_ends_the_record() {
                let (store, _keep) = store().await;
                let k = key("save-past");
                store.create(&k, b"old", in_(PATIENCE)).await.unwrap();
                let past = SystemTime::now() - Duration::from_secs(1);
                let stale = store
                    .save(&k, &CasToken::new(b"other"), b"new", past)
                    .await
                    .unwrap();
                assert_eq!(stale, SaveOutcome::Conflict(b"old".to_vec()));
                let outcome = store
                    .save(&k, &CasToken::new(b"old"), b"new", past)
                    .await
                    .unwrap();
                assert_eq!(outcome, SaveOutcome::Saved);
                assert_eq!(store.load(&k, None).await.unwrap(), None);
                let again = store.create(&k, b"again", in_(PATIENCE)).await.unwrap();
                assert_eq!(again, WriteOutcome::Written);
            }

            /// A token that keeps its whole record ([`CasToken::of_record`], as the session
            /// layer's do) saves while that record is live: the Redis store's native
            /// `SET … IFEQ`, where the server has it, compares the whole record.
            #[tokio::test]
            async fn a_record_token_saves_over_its_unchanged_record() {
                let (store, _keep) = store().await;
                let k = key("record-token");
                store.create(&k, b"n1:first", in_(PATIENCE)).await.unwrap();
                let token = CasToken::of_record(b"n1:first", 3);
                let outcome = store
                    .save(&k, &token, b"n2:second", in_(PATIENCE))
                    .await
                    .unwrap();
                assert_eq!(outcome, SaveOutcome::Saved);
                assert_eq!(
                    store.load(&k, None).await.unwrap().as_deref(),
                    Some(&b"n2:second"[..])
                );
                let again = store
                    .save(&k, &token, b"n3:lost", in_(PATIENCE))
                    .await
                    .unwrap();
                assert_eq!(again, SaveOutcome::Conflict(b"n2:second".to_vec()));
                assert_eq!(
                    store.load(&k, None).await.unwrap().as_deref(),
                    Some(&b"n2:second"[..])
                );
            }

            #[tokio::test]
            async fn a_record_token_save_keeps_its_new_deadline() {
                let (store, _keep) = store().await;
                let k = key("record-token-deadline");
                store.create(&k, b"n1:first", in_(PATIENCE)).await.unwrap();
                let deadline = in_(SHORT);
                let outcome = store
                    .save(&k, &CasToken::of_record(b"n1:first", 3), b"n2", deadline)
                    .await
                    .unwrap();
                assert_eq!(outcome, SaveOutcome::Saved);
                wait_past(deadline).await;
                assert_eq!(store.load(&k, None).await.unwrap(), None);
            }

            #[tokio::test]
            async fn a_record_token_never_brings_back_a_deleted_record() {
                let (store, _keep) = store().await;
                let k = key("record-token-gone");
                store.create(&k, b"n1:first", in_(PATIENCE)).await.unwrap();
                store.delete(&k).await.unwrap();
                let outcome = store
                    .save(
                        &k,
                        &CasToken::of_record(b"n1:first", 3),
                        b"n2:resurrected",
                        in_(PATIENCE),
                    )
                    .await
                    .unwrap();
                assert_eq!(outcome, SaveOutcome::Gone);
                assert_eq!(store.load(&k, None).await.unwrap(), None);
            }

            #[tokio::test]
            async fn a_record_token_save_to_a_past_deadline_ends_the_record() {
                let (store, _keep) = store().await;
                let k = key("record-token-past");
                store.create(&k, b"n1:first", in_(PATIENCE)).await.unwrap();
                let past = SystemTime::now() - Duration::from_secs(1);
                let outcome = store
                    .save(&k, &CasToken::of_record(b"n1:first", 3), b"n2", past)
                    .await
                    .unwrap();
                assert_eq!(outcome, SaveOutcome::Saved);
                assert_eq!(store.load(&k, None).await.unwrap(), None);
            }

            #[tokio::test]
            async fn save_of_a_missing_key_is_gone_and_writes_nothing() {
                let (store, _keep) = store().await;
                let k = key("save-missing");
                let outcome = store
                    .save(&k, &CasToken::new(b""), b"ghost", in_(PATIENCE))
                    .await
                    .unwrap();
                assert_eq!(outcome, SaveOutcome::Gone);
                assert_eq!(store.load(&k, None).await.unwrap(), None);
            }

            #[tokio::test]
            async fn delete_then_save_does_not_resurrect() {
                let (store, _keep) = store().await;
                let k = key("delete-save");
                store.create(&k, b"live", in_(PATIENCE)).await.unwrap();
                store.delete(&k).await.unwrap();
                let outcome = store
                    .save(&k, &CasToken::new(b"live"), b"resurrected", in_(PATIENCE))
                    .await
                    .unwrap();
                assert_eq!(outcome, SaveOutcome::Gone);
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
                // Had the sliding load created anything, save would find it, create would not.
                let save = store
                    .save(&k, &CasToken::new(b""), b"x", in_(PATIENCE))
                    .await
                    .unwrap();
                assert_eq!(save, SaveOutcome::Gone);
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
                // A store may end a record up to a millisecond early, never late: Redis counts
                // whole milliseconds, and the store names the one before the deadline's.
                assert!(
                    SystemTime::now() + EARLY_AT_MOST >= deadline,
                    "gone before its deadline"
                );
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
            async fn save_of_an_expired_record_is_gone() {
                let (store, _keep) = store().await;
                let k = key("save-expired");
                let deadline = in_(SHORT);
                store.create(&k, b"old", deadline).await.unwrap();
                wait_past(deadline).await;
                let outcome = store
                    .save(&k, &CasToken::new(b"old"), b"new", in_(PATIENCE))
                    .await
                    .unwrap();
                assert_eq!(outcome, SaveOutcome::Gone);
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
                let saved = store
                    .save(&k, &CasToken::new(&created[..3]), &updated, in_(PATIENCE))
                    .await;
                assert_eq!(saved.unwrap(), SaveOutcome::Saved);
                let stale = store
                    .save(&k, &CasToken::new(&created[..3]), b"x", in_(PATIENCE))
                    .await;
                assert_eq!(stale.unwrap(), SaveOutcome::Conflict(updated.clone()));
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

            /// The race of requests against a log-out, forced: several requests load the
            /// record, the delete lands after every load and before any save (two barriers
            /// order it), then they all save at once with the tokens they read. Each must be
            /// `Gone` and nothing may be left: had the delete not happened, every token would
            /// still match, so a save that overlooked the delete would write the session back.
            /// A save before the delete, with a token it loaded, shows the tokens are good.
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn concurrent_saves_and_a_delete_leave_no_record() {
                const SAVERS: usize = 4;
                const BOUND: Duration = Duration::from_secs(15);
                let (store, _keep) = store().await;
                let k = key("save-delete-race");
                store.create(&k, b"live", in_(PATIENCE)).await.unwrap();
                let seen = store.load(&k, None).await.unwrap().unwrap();
                let before = store
                    .save(&k, &CasToken::new(seen), b"updated", in_(PATIENCE))
                    .await
                    .unwrap();
                assert_eq!(before, SaveOutcome::Saved, "a save before the delete");

                let loaded = Arc::new(tokio::sync::Barrier::new(SAVERS + 1));
                let deleted = Arc::new(tokio::sync::Barrier::new(SAVERS + 1));
                let savers: Vec<_> = (0..SAVERS)
                    .map(|i| {
                        let (store, k) = (Arc::clone(&store), k.clone());
                        let (loaded, deleted) = (Arc::clone(&loaded), Arc::clone(&deleted));
                        tokio::spawn(async move {
                            let seen = store.load(&k, None).await.unwrap();
                            assert_eq!(seen.as_deref(), Some(&b"updated"[..]), "saver {i}");
                            loaded.wait().await;
                            deleted.wait().await;
                            let record = format!("saver {i}");
                            store
                                .save(
                                    &k,
                                    &CasToken::new(seen.unwrap()),
                                    record.as_bytes(),
                                    in_(PATIENCE),
                                )
                                .await
                                .unwrap()
                        })
                    })
                    .collect();
                tokio::time::timeout(BOUND, loaded.wait())
                    .await
                    .expect("the savers did not all load");
                assert!(
                    store.delete(&k).await.unwrap(),
                    "the delete found no live record"
                );
                tokio::time::timeout(BOUND, deleted.wait())
                    .await
                    .expect("the savers did not all pass the delete");
                for (i, saver) in savers.into_iter().enumerate() {
                    let outcome = tokio::time::timeout(BOUND, saver)
                        .await
                        .expect("a save did not finish")
                        .unwrap();
                    assert_eq!(
                        outcome,
                        SaveOutcome::Gone,
                        "saver {i}: a save after the delete must find the record gone"
                    );
                }
                let late = store
                    .save(&k, &CasToken::new(b""), b"late", in_(PATIENCE))
                    .await
                    .unwrap();
                assert_eq!(
                    late,
                    SaveOutcome::Gone,
                    "a save with a token matching anything"
                );
                let left = store.load(&k, None).await.unwrap();
                assert_eq!(left, None, "the session was resurrected");
            }

            /// Compare-and-set as the session layer uses it: every writer reads, adds one, and
            /// saves with the token it read; on a conflict it retries on the record handed
            /// back. Last-writer-wins would lose increments.
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn concurrent_compare_and_set_increments_lose_nothing() {
                let (store, _keep) = store().await;
                let k = key("cas-counter");
                store.create(&k, b"0", in_(PATIENCE * 4)).await.unwrap();
                let (writers, each) = (8, 10);
                let tasks: Vec<_> = (0..writers)
                    .map(|_| {
                        let (store, k) = (Arc::clone(&store), k.clone());
                        tokio::spawn(async move {
                            for _ in 0..each {
                                let mut seen = store.load(&k, None).await.unwrap().unwrap();
                                loop {
                                    let n: u64 =
                                        String::from_utf8(seen.clone()).unwrap().parse().unwrap();
                                    let next = (n + 1).to_string();
                                    match store
                                        .save(
                                            &k,
                                            &CasToken::new(seen.clone()),
                                            next.as_bytes(),
                                            in_(PATIENCE * 4),
                                        )
                                        .await
                                        .unwrap()
                                    {
                                        SaveOutcome::Saved => break,
                                        SaveOutcome::Conflict(live) => seen = live,
                                        SaveOutcome::Gone => panic!("the counter vanished"),
                                    }
                                }
                            }
                        })
                    })
                    .collect();
                for task in tasks {
                    task.await.unwrap();
                }
                let total = store.load(&k, None).await.unwrap().unwrap();
                assert_eq!(total, (writers * each).to_string().into_bytes());
            }

            fn index_of(store: &Arc<impl SessionStore>) -> &dyn UserIndex {
                store
                    .user_index()
                    .expect("every store of the crate keeps an index")
            }

            #[tokio::test]
            async fn an_indexed_session_is_a_session_and_is_listed_until_ended() {
                let (store, _keep) = store().await;
                let index = index_of(&store);
                let slot = slot("list");
                let (a, b) = (member("a"), member("b"));
                for (m, record) in [(&a, &b"record a"[..]), (&b, b"record b")] {
                    let created = index
                        .create_indexed(indexed(
                            &slot,
                            m,
                            record,
                            PATIENCE * 4,
                            limit(0, LimitPolicy::EvictOldest),
                        ))
                        .await
                        .unwrap();
                    assert_eq!(created, CreateIndexedOutcome::Created { evicted: vec![] });
                }
                let key_a = slot.member_key(&a);
                assert_eq!(
                    store.load(&key_a, None).await.unwrap().as_deref(),
                    Some(&b"record a"[..])
                );
                let again = index
                    .create_indexed(indexed(
                        &slot,
                        &a,
                        b"again",
                        PATIENCE,
                        limit(0, LimitPolicy::EvictOldest),
                    ))
                    .await
                    .unwrap();
                assert_eq!(
                    again,
                    CreateIndexedOutcome::Exists,
                    "create-if-absent, as create"
                );

                let listed = index.list(&slot).await.unwrap();
                let members: Vec<&str> = listed.iter().map(|r| r.member.as_str()).collect();
                assert_eq!(members, [a.as_str(), b.as_str()]);
                assert_eq!(listed[0].record, b"record a");
                let left = listed[0]
                    .expires_at
                    .duration_since(SystemTime::now())
                    .unwrap();
                assert!(left <= PATIENCE * 4 && left > PATIENCE * 3, "{left:?}");

                assert!(index.end(&slot, &a).await.unwrap());
                assert!(!index.end(&slot, &a).await.unwrap(), "already ended");
                assert_eq!(store.load(&key_a, None).await.unwrap(), None);
                let listed = index.list(&slot).await.unwrap();
                assert_eq!(listed.len(), 1);
                assert_eq!(listed[0].member, b);
            }

            /// Finding 2: a list is bounded whatever the index holds (no limit here), so a
            /// sessions page stays bounded; "end all" still ends every session.
            #[tokio::test]
            async fn a_list_shows_at_most_the_bound_and_end_all_ends_them_all() {
                let (store, _keep) = store().await;
                let index = index_of(&store);
                let slot = slot("bounded-list");
                let n = MAX_MEMBERS_VISITED + 5;
                for i in 0..n {
                    let name = member(&format!("{i:03}"));
                    let new = indexed(
                        &slot,
                        &name,
                        b"r",
                        PATIENCE * 4,
                        limit(0, LimitPolicy::EvictOldest),
                    );
                    index.create_indexed(new).await.unwrap();
                }
                assert_eq!(index.list(&slot).await.unwrap().len(), MAX_MEMBERS_VISITED);
                assert_eq!(index.end_all(&slot, None).await.unwrap(), n);
                assert!(index.list(&slot).await.unwrap().is_empty());
            }

            #[tokio::test]
            async fn listing_does_not_slide_expiry() {
                let (store, _keep) = store().await;
                let index = index_of(&store);
                let slot = slot("no-slide");
                let m = member("brief");
                let deadline = in_(SHORT);
                let mut new = indexed(&slot, &m, b"x", SHORT, SessionLimit::default());
                new.expires_at = deadline;
                new.deadline = in_(PATIENCE * 4);
                index.create_indexed(new).await.unwrap();
                assert_eq!(index.list(&slot).await.unwrap().len(), 1);
                wait_past(deadline).await;
                assert!(
                    index.list(&slot).await.unwrap().is_empty(),
                    "listed past its idle deadline: the list slid it"
                );
                assert_eq!(store.load(&slot.member_key(&m), None).await.unwrap(), None);
            }

            #[tokio::test]
            async fn dead_members_leave_the_index_and_do_not_count_against_the_limit() {
                let (store, _keep) = store().await;
                let index = index_of(&store);
                let slot = slot("prune");
                let cap = limit(2, LimitPolicy::Refuse);
                let (gone, brief, live) = (member("gone"), member("brief"), member("live"));
                index
                    .create_indexed(indexed(&slot, &gone, b"g", PATIENCE * 4, cap))
                    .await
                    .unwrap();
                let deadline = in_(SHORT);
                let mut new = indexed(&slot, &brief, b"b", SHORT, cap);
                new.deadline = deadline;
                index.create_indexed(new).await.unwrap();
                // Deleted behind the index's back, and idled out: neither counts any more.
                store.delete(&slot.member_key(&gone)).await.unwrap();
                wait_past(deadline).await;
                let created = index
                    .create_indexed(indexed(&slot, &live, b"l", PATIENCE * 4, cap))
                    .await
                    .unwrap();
                assert_eq!(created, CreateIndexedOutcome::Created { evicted: vec![] });
                let listed = index.list(&slot).await.unwrap();
                assert_eq!(listed.len(), 1);
                assert_eq!(listed[0].member, live);
            }

            #[tokio::test]
            async fn at_the_limit_a_new_session_evicts_the_oldest_or_is_refused() {
                let (store, _keep) = store().await;
                let index = index_of(&store);
                let slot = slot("limit");
                let names: Vec<String> = (0..3).map(|i| member(&i.to_string())).collect();
                for (i, m) in names.iter().enumerate() {
                    let mut new = indexed(
                        &slot,
                        m,
                        b"x",
                        PATIENCE * 4,
                        limit(3, LimitPolicy::EvictOldest),
                    );
                    // Deadlines in log-in order.
                    new.deadline = in_(PATIENCE * 4 + Duration::from_secs(i as u64));
                    index.create_indexed(new).await.unwrap();
                }
                let refused = index
                    .create_indexed(indexed(
                        &slot,
                        &member("3"),
                        b"x",
                        PATIENCE * 5,
                        limit(3, LimitPolicy::Refuse),
                    ))
                    .await
                    .unwrap();
                assert_eq!(refused, CreateIndexedOutcome::Refused);
                assert_eq!(
                    store
                        .load(&slot.member_key(&member("3")), None)
                        .await
                        .unwrap(),
                    None,
                    "a refused log-in writes nothing"
                );
                let evicting = index
                    .create_indexed(indexed(
                        &slot,
                        &member("4"),
                        b"x",
                        PATIENCE * 5,
                        limit(3, LimitPolicy::EvictOldest),
                    ))
                    .await
                    .unwrap();
                assert_eq!(
                    evicting,
                    CreateIndexedOutcome::Created {
                        evicted: vec![names[0].clone()]
                    }
                );
                assert_eq!(
                    store.load(&slot.member_key(&names[0]), None).await.unwrap(),
                    None
                );
                let members: Vec<String> = index
                    .list(&slot)
                    .await
                    .unwrap()
                    .into_iter()
                    .map(|r| r.member)
                    .collect();
                assert_eq!(members, [names[1].clone(), names[2].clone(), member("4")]);
            }

            #[tokio::test]
            async fn a_regeneration_retires_the_old_member_in_the_same_step() {
                let (store, _keep) = store().await;
                let index = index_of(&store);
                let slot = slot("retire");
                let (old, new) = (member("old"), member("new"));
                let cap = limit(1, LimitPolicy::Refuse);
                index
                    .create_indexed(indexed(&slot, &old, b"old record", PATIENCE * 4, cap))
                    .await
                    .unwrap();
                let mut next = indexed(&slot, &new, b"n", PATIENCE * 4, cap);
                let token = CasToken::new(b"old");
                next.retire = Some(Retire {
                    member: &old,
                    token: &token,
                });
                let created = index.create_indexed(next).await.unwrap();
                assert_eq!(
                    created,
                    CreateIndexedOutcome::Created { evicted: vec![] },
                    "the old one does not count"
                );
                assert_eq!(
                    store.load(&slot.member_key(&old), None).await.unwrap(),
                    None
                );
                let members: Vec<String> = index
                    .list(&slot)
                    .await
                    .unwrap()
                    .into_iter()
                    .map(|r| r.member)
                    .collect();
                assert_eq!(members, [new]);
            }

            /// Another request saved the session being regenerated: nothing is written, and
            /// its record comes back so that the regeneration can carry the change over.
            #[tokio::test]
            async fn a_regeneration_of_a_changed_session_is_stale_and_writes_nothing() {
                let (store, _keep) = store().await;
                let index = index_of(&store);
                let slot = slot("stale");
                let (old, new) = (member("old"), member("new"));
                index
                    .create_indexed(indexed(
                        &slot,
                        &old,
                        b"v1",
                        PATIENCE * 4,
                        SessionLimit::default(),
                    ))
                    .await
                    .unwrap();
                let old_key = slot.member_key(&old);
                store
                    .save(
                        &old_key,
                        &CasToken::new(b"v1"),
                        b"v2 saved meanwhile",
                        in_(PATIENCE),
                    )
                    .await
                    .unwrap();
                let mut next = indexed(&slot, &new, b"n", PATIENCE * 4, SessionLimit::default());
                let token = CasToken::new(b"v1");
                next.retire = Some(Retire {
                    member: &old,
                    token: &token,
                });
                let stale = index.create_indexed(next).await.unwrap();
                assert_eq!(
                    stale,
                    CreateIndexedOutcome::Stale(b"v2 saved meanwhile".to_vec())
                );
                assert_eq!(
                    store.load(&slot.member_key(&new), None).await.unwrap(),
                    None
                );
                assert!(store.load(&old_key, None).await.unwrap().is_some());
                let token = CasToken::new(b"v2");
                next.retire = Some(Retire {
                    member: &old,
                    token: &token,
                });
                let created = index.create_indexed(next).await.unwrap();
                assert_eq!(created, CreateIndexedOutcome::Created { evicted: vec![] });
                assert_eq!(store.load(&old_key, None).await.unwrap(), None);
            }

            #[tokio::test]
            async fn delete_if_removes_only_an_unchanged_record() {
                let (store, _keep) = store().await;
                let k = key("delete-if");
                store.create(&k, b"v1 first", in_(PATIENCE)).await.unwrap();
                store
                    .save(&k, &CasToken::new(b"v1"), b"v2 second", in_(PATIENCE))
                    .await
                    .unwrap();
                let stale = store.delete_if(&k, &CasToken::new(b"v1")).await.unwrap();
                assert_eq!(stale, CasOutcome::Conflict(b"v2 second".to_vec()));
                assert!(
                    store.load(&k, None).await.unwrap().is_some(),
                    "nothing removed"
                );
                assert_eq!(
                    store.delete_if(&k, &CasToken::new(b"v2")).await.unwrap(),
                    CasOutcome::Deleted
                );
                assert_eq!(store.load(&k, None).await.unwrap(), None);
                assert_eq!(
                    store.delete_if(&k, &CasToken::new(b"v2")).await.unwrap(),
                    CasOutcome::Gone
                );
            }

            #[tokio::test]
            async fn end_all_keeps_exactly_the_one_given_and_touches_no_other_slot() {
                let (store, _keep) = store().await;
                let index = index_of(&store);
                let (mine, theirs) = (slot("end-all"), slot("end-all-other"));
                let names: Vec<String> = (0..4).map(|i| member(&i.to_string())).collect();
                for m in &names {
                    for slot in [&mine, &theirs] {
                        index
                            .create_indexed(indexed(
                                slot,
                                m,
                                b"x",
                                PATIENCE * 4,
                                SessionLimit::default(),
                            ))
                            .await
                            .unwrap();
                    }
                }
                assert_eq!(index.end_all(&mine, Some(&names[2])).await.unwrap(), 3);
                let members: Vec<String> = index
                    .list(&mine)
                    .await
                    .unwrap()
                    .into_iter()
                    .map(|r| r.member)
                    .collect();
                assert_eq!(members, [names[2].clone()]);
                assert!(!index.end(&mine, &names[0]).await.unwrap());
                assert_eq!(
                    index.list(&theirs).await.unwrap().len(),
                    4,
                    "another user's slot"
                );
                assert_eq!(index.end_all(&mine, None).await.unwrap(), 1);
                assert!(index.list(&mine).await.unwrap().is_empty());
                assert_eq!(
                    store.load(&mine.member_key(&names[2]), None).await.unwrap(),
                    None
                );
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
#[cfg(feature = "redis")]
const PATIENT_REDIS: RedisTimeouts = RedisTimeouts {
    connect: Duration::from_secs(5),
    response: Duration::from_secs(5),
};

#[cfg(feature = "redis")]
store_contract!(
    redis,
    async {
        let url = RedisServer::shared().url();
        let store = RedisStore::connect(&url, PATIENT_REDIS).await.unwrap();
        (store, ())
    },
    Purge::ExpiresByItself
);

// The same contract on Valkey 8.1+, whose `SET … IFEQ` the store uses for saves whose token
// keeps its record (`a_record_token_*`); the others take the Lua script, as on Redis 7.
#[cfg(feature = "redis")]
store_contract!(
    valkey,
    async {
        let url = portcullis_testing::valkey::shared().url();
        let store = RedisStore::connect(&url, PATIENT_REDIS).await.unwrap();
        (store, ())
    },
    Purge::ExpiresByItself
);

#[cfg(feature = "redis")]
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

// Behind Sentinel: every delete that ends a session also waits for the replica (`WAIT 1`).
#[cfg(feature = "redis")]
store_contract!(
    redis_sentinel,
    async {
        let url = SentinelSetup::shared().url();
        let store = RedisStore::connect_with(&url, PATIENT_REDIS, &RedisReplication::default())
            .await
            .unwrap();
        (store, ())
    },
    Purge::ExpiresByItself
);
