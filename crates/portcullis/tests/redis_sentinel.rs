//! The Redis store behind Sentinel, on real processes (a primary, a replica, three
//! sentinels): it follows a failover by asking the sentinels again, and a delete that ends a
//! session waits for the replica on a connection of its own (also on one server with a
//! replica, when `REDIS_WAIT_REPLICAS` asks for it). The site-level failover rounds
//! are in `portcullis-site/tests/binary/sentinel_failover.rs`.
#![cfg(feature = "redis")]
#![allow(clippy::unwrap_used)]

use std::time::{Duration, Instant, SystemTime};

use portcullis::store::{
    RedisReplication, RedisStore, RedisTimeouts, SessionStore, StoreError, StoreKey,
};
use portcullis_testing::redis::{RedisServer, Reply};
use portcullis_testing::sentinel::SentinelSetup;

fn key(name: &str) -> StoreKey {
    let mut random = [0_u8; 8];
    getrandom::fill(&mut random).unwrap();
    let hex: String = random.iter().map(|b| format!("{b:02x}")).collect();
    StoreKey::from_string(format!("sess:sentinel-{name}-{hex}"))
}

fn later() -> SystemTime {
    SystemTime::now() + Duration::from_secs(300)
}

/// Timeouts of a deployment that tolerates a slow replica (`WAIT` may take up to 800 ms) and a
/// slow look-up (it asks the sentinels, then the primary, over new connections: on a machine
/// loaded by parallel builds the default 250 ms is not always enough).
const ONE_SECOND: RedisTimeouts = RedisTimeouts {
    connect: Duration::from_secs(1),
    response: Duration::from_secs(1),
};

#[tokio::test]
async fn a_slow_wait_does_not_stall_other_requests_and_fails_the_delete_with_503() {
    let setup = SentinelSetup::start();
    let store = RedisStore::connect_with(&setup.url(), ONE_SECOND, &RedisReplication::default())
        .await
        .unwrap();
    let (ended, other) = (key("ended"), key("other"));
    store.create(&ended, b"record", later()).await.unwrap();
    store.create(&other, b"other", later()).await.unwrap();

    // A frozen replica acknowledges nothing: the delete's WAIT runs to its timeout (800 ms).
    setup.replica().pause();
    let deleting = tokio::spawn({
        let (store, ended) = (store.clone(), ended.clone());
        async move {
            let started = Instant::now();
            (store.delete(&ended).await, started.elapsed())
        }
    });
    // Meanwhile the shared connection serves every other request at once.
    let mut slowest = Duration::ZERO;
    while !deleting.is_finished() {
        let started = Instant::now();
        let loaded = store.load(&other, None).await.unwrap();
        slowest = slowest.max(started.elapsed());
        assert_eq!(loaded.as_deref(), Some(&b"other"[..]));
        tokio::task::yield_now().await;
    }
    let (deleted, waited) = deleting.await.unwrap();
    setup.replica().resume();
    assert!(
        waited >= Duration::from_millis(700),
        "the delete waited for the replica: {waited:?}"
    );
    assert!(
        slowest < Duration::from_millis(200),
        "no load waited for the WAIT: the slowest took {slowest:?}"
    );
    let Err(StoreError::Unavailable { source, .. }) = deleted else {
        panic!("a delete no replica acknowledged is not answered as done: {deleted:?}");
    };
    assert!(source.to_string().contains("0 of 1 replicas"), "{source}");

    // With the replica back, the same delete is acknowledged, and the replica has it.
    assert!(
        !store.delete(&ended).await.unwrap(),
        "already gone on the primary"
    );
    assert_eq!(
        setup.replica().command(&["EXISTS", ended.as_str()]),
        Reply::Integer(0)
    );
}

#[tokio::test]
async fn the_store_follows_a_failover_to_the_new_primary_without_a_restart() {
    let mut setup = SentinelSetup::start();
    let store = RedisStore::connect_with(&setup.url(), ONE_SECOND, &RedisReplication::default())
        .await
        .unwrap();
    let kept = key("kept");
    store.create(&kept, b"record", later()).await.unwrap();
    setup.wait_until_replicated();

    let killed_at = Instant::now();
    let old = setup.kill_primary();
    let mut failures = 0_u32;
    let served_after = loop {
        match store.load(&kept, None).await {
            Ok(Some(record)) => {
                assert_eq!(record, b"record");
                break killed_at.elapsed();
            }
            Ok(None) => panic!("the replica had the record: a failover must not lose it"),
            Err(StoreError::Unavailable { .. }) => failures += 1,
            Err(other) => panic!("only Unavailable during a failover: {other:?}"),
        }
        assert!(
            killed_at.elapsed() < Duration::from_secs(30),
            "never served again"
        );
    };
    let failover = setup.wait_for_failover(old, killed_at);
    assert!(failures > 0, "the kill was noticed");
    assert!(
        served_after <= failover + Duration::from_secs(1),
        "served again {served_after:?} after the kill; the sentinels took {failover:?}"
    );
    let written = key("written");
    store.create(&written, b"new", later()).await.unwrap();
    assert_eq!(
        setup.primary().command(&["EXISTS", written.as_str()]),
        Reply::Integer(1),
        "writes go to the new primary"
    );
}

/// A manual failover (`SENTINEL FAILOVER`) leaves the old primary up; once it is demoted (here
/// at once, by hand, as the sentinels do a few seconds later) it answers writes with
/// `READONLY`, and the store asks the sentinels again and sends the write to the new primary.
#[tokio::test]
async fn a_demoted_primary_answering_readonly_sends_the_write_to_the_new_one() {
    let setup = SentinelSetup::start();
    let store = RedisStore::connect_with(&setup.url(), ONE_SECOND, &RedisReplication::default())
        .await
        .unwrap();
    let before = key("before");
    store.create(&before, b"record", later()).await.unwrap();
    setup.wait_until_replicated();

    let started = Instant::now();
    let old = setup.primary_port();
    let reply = portcullis_testing::redis::command(
        setup.sentinel_port(),
        &[
            "SENTINEL",
            "FAILOVER",
            portcullis_testing::sentinel::PRIMARY_NAME,
        ],
    )
    .unwrap();
    assert_eq!(reply, Reply::Simple("OK".to_owned()));
    setup.wait_for_failover(old, started);
    let new = setup.primary_port().to_string();
    let demoted = setup.replica();
    assert_eq!(demoted.port(), old);
    assert_eq!(
        demoted.command(&["REPLICAOF", "127.0.0.1", &new]),
        Reply::Simple("OK".to_owned())
    );

    // The store's connection still points at the old primary: the write meets READONLY there,
    // which did nothing, so it is sent again to the primary the sentinels name now.
    let written = key("written");
    store.create(&written, b"new", later()).await.unwrap();
    assert_eq!(
        setup.primary().command(&["EXISTS", written.as_str()]),
        Reply::Integer(1),
        "written to the new primary"
    );
    assert_eq!(
        store.load(&before, None).await.unwrap().as_deref(),
        Some(&b"record"[..])
    );
}

#[tokio::test]
async fn one_server_with_a_replica_waits_for_it_when_asked_to() {
    let primary = RedisServer::start();
    let port = primary.port().to_string();
    let replica = RedisServer::start_with(&["--replicaof", "127.0.0.1", &port]);
    let synced = Instant::now();
    while !matches!(
        replica.command(&["INFO", "replication"]),
        Reply::Bulk(info) if String::from_utf8_lossy(&info).contains("master_link_status:up")
    ) {
        assert!(
            synced.elapsed() < Duration::from_secs(20),
            "the replica never synced"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    let replication = RedisReplication {
        wait_replicas: Some(1),
        ..RedisReplication::default()
    };
    let store = RedisStore::connect_with(&primary.url(), ONE_SECOND, &replication)
        .await
        .unwrap();
    let (first, second) = (key("first"), key("second"));
    store.create(&first, b"one", later()).await.unwrap();
    store.create(&second, b"two", later()).await.unwrap();

    // Answered only once the replica has it: it is gone there when the call returns.
    assert!(store.delete(&first).await.unwrap());
    assert_eq!(
        replica.command(&["EXISTS", first.as_str()]),
        Reply::Integer(0)
    );
    replica.pause();
    let refused = store.delete(&second).await;
    replica.resume();
    assert!(
        matches!(refused, Err(StoreError::Unavailable { .. })),
        "no replica acknowledged: {refused:?}"
    );
}
