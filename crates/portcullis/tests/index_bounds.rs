//! Review finding 2: one account must not stall the shared Redis. Sessions per user are capped
//! by default, and every index script visits a bounded number of members per call, whatever the
//! configuration, so one user's index of any size costs every other request nothing.
#![cfg(feature = "redis")]
#![allow(clippy::unwrap_used)]

use std::num::NonZeroUsize;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use portcullis::store::{
    MAX_MEMBERS_VISITED, NewIndexed, RedisStore, RedisTimeouts, SessionLimit, StoreKey, UserIndex,
    UserSlot,
};
use portcullis_testing::redis::{RedisServer, Reply};

const PATIENT: RedisTimeouts = RedisTimeouts {
    connect: Duration::from_secs(5),
    response: Duration::from_secs(5),
};

fn slot(user: &str) -> UserSlot {
    UserSlot::new(
        StoreKey::from_string(format!("bounds:idx:{{{user}}}")),
        format!("bounds:{{{user}}}"),
    )
}

fn zcard(redis: &RedisServer, slot: &UserSlot) -> i64 {
    let Reply::Integer(n) = redis.command(&["ZCARD", slot.index().as_str()]) else {
        panic!("ZCARD did not answer an integer");
    };
    n
}

fn member(i: usize) -> String {
    format!("{i:0>43}")
}

async fn log_in(store: &RedisStore, slot: &UserSlot, i: usize, limit: SessionLimit) {
    let now = SystemTime::now();
    store
        .create_indexed(NewIndexed {
            slot,
            member: &member(i),
            record: b"a record",
            expires_at: now + Duration::from_secs(600),
            deadline: now + Duration::from_secs(3600) + Duration::from_millis(i as u64),
            retire: None,
            limit,
        })
        .await
        .unwrap();
}

fn no_limit() -> SessionLimit {
    SessionLimit {
        max: None,
        ..SessionLimit::default()
    }
}

#[test]
fn sessions_per_user_are_capped_at_fifty_by_default() {
    assert_eq!(SessionLimit::default().max, NonZeroUsize::new(50));
}

#[tokio::test]
async fn a_log_in_visits_a_bounded_number_of_members_of_a_huge_index() {
    let redis = RedisServer::shared();
    let store = RedisStore::connect(&redis.url(), PATIENT).await.unwrap();
    let slot = slot("huge");
    // 10,000 members whose sessions are gone (idled out), their deadlines still ahead.
    let deadline = SystemTime::now() + Duration::from_secs(3600);
    let score = deadline
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis()
        .to_string();
    let mut zadd = vec!["ZADD".to_owned(), slot.index().as_str().to_owned()];
    for i in 0..10_000 {
        zadd.push(score.clone());
        zadd.push(format!("dead{i:0>39}"));
    }
    let args: Vec<&str> = zadd.iter().map(String::as_str).collect();
    redis.command(&args);
    assert_eq!(zcard(redis, &slot), 10_000);
    log_in(&store, &slot, 0, no_limit()).await;
    let left = zcard(redis, &slot);
    let visited = 10_001 - left;
    assert!(
        usize::try_from(visited).unwrap() <= MAX_MEMBERS_VISITED,
        "one log-in pruned {visited} members in one script"
    );
}

#[tokio::test]
async fn lists_are_bounded_and_end_all_still_ends_every_session() {
    let redis = RedisServer::shared();
    let store = RedisStore::connect(&redis.url(), PATIENT).await.unwrap();
    let slot = slot("many");
    let n = MAX_MEMBERS_VISITED + 100;
    for i in 0..n {
        log_in(&store, &slot, i, no_limit()).await;
    }
    let listed = store.list(&slot).await.unwrap();
    assert_eq!(listed.len(), MAX_MEMBERS_VISITED, "the newest, at most");
    assert_eq!(listed.last().unwrap().member, member(n - 1));
    assert_eq!(store.end_all(&slot, Some(&member(3))).await.unwrap(), n - 1);
    assert_eq!(zcard(redis, &slot), 1, "only the kept one is left");
}
