//! What only the Redis store promises, on real servers: one command per operation, records
//! and deadlines stored exactly, hash-tagged keys on a cluster, credentials from the URL, TLS
//! that checks certificates, and outages that fail fast and heal by themselves (on Redis and
//! on Valkey). The shared contract is in `store_contract.rs`.
#![cfg(feature = "redis")]
#![allow(clippy::unwrap_used)]

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use portcullis::store::{
    CasToken, CreateIndexedOutcome, NewIndexed, RedisStore, RedisTimeouts, SaveOutcome,
    SessionLimit, SessionStore, StoreError, StoreKey, UserSlot, WriteOutcome,
};
use portcullis_testing::redis::{
    ClusterPorts, RedisCluster, RedisServer, Reply, command_bytes, commands_between, free_port,
};
use portcullis_testing::valkey;

/// Timeouts for tests that are not about timeouts: a busy machine must not fail them.
const PATIENT: RedisTimeouts = RedisTimeouts {
    connect: Duration::from_secs(5),
    response: Duration::from_secs(5),
};
/// What "fails fast" means here: the defaults are 250 ms each, so a call that needs both
/// stays far below this even on a loaded machine.
const FAST: Duration = Duration::from_secs(2);
/// The most a test waits for a restarted Redis to be used again.
const RECOVERY: Duration = Duration::from_secs(10);

fn key(name: &str) -> StoreKey {
    StoreKey::from_string(format!("sess:redis-{name}-{}", random_hex()))
}

fn random_hex() -> String {
    let mut random = [0_u8; 8];
    getrandom::fill(&mut random).unwrap();
    random.iter().map(|b| format!("{b:02x}")).collect()
}

fn in_(duration: Duration) -> SystemTime {
    SystemTime::now() + duration
}

fn millis_since_epoch(time: SystemTime) -> u64 {
    u64::try_from(time.duration_since(UNIX_EPOCH).unwrap().as_millis()).unwrap()
}

/// The `PXAT` the store sends for `deadline`: the millisecond before the deadline's, as Redis
/// keeps a key through the millisecond its `PXAT` names.
fn pxat(deadline: SystemTime) -> i64 {
    i64::try_from(millis_since_epoch(deadline)).unwrap() - 1
}

/// The error is `Unavailable`, with the Redis client's error as its source.
fn assert_unavailable(error: &StoreError) {
    let StoreError::Unavailable { source, .. } = error else {
        panic!("not Unavailable: {error:?}");
    };
    assert!(
        source.downcast_ref::<redis::RedisError>().is_some()
            || source.to_string().contains("no seed node answered")
            || source.to_string().contains("deadline has elapsed"),
        "the source is not the Redis error: {source:?}"
    );
}

/// `error` and all its sources, as one line.
fn chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(e) = source {
        text = format!("{text}: {e}");
        source = e.source();
    }
    text
}

/// Runs `$call` between two `INFO commandstats` and checks that exactly `$expected` ran.
macro_rules! assert_commands {
    ($server:expr, $call:expr, $expected:expr) => {{
        let before = $server.commandstats();
        $call.await.unwrap();
        let ran = commands_between(&before, &$server.commandstats());
        let expected: HashMap<String, u64> = $expected
            .iter()
            .map(|&(name, calls): &(&str, u64)| (name.to_owned(), calls))
            .collect();
        assert_eq!(ran, expected, "{}", stringify!($call));
    }};
}

/// Loads every script into the server's cache, so that no count below includes the one-time
/// `NOSCRIPT` and `SCRIPT LOAD` of a script's first use.
async fn warm_scripts(store: &RedisStore) {
    let (k, later) = (key("warm"), in_(Duration::from_secs(60)));
    store
        .save(&k, &CasToken::new(b""), b"x", later)
        .await
        .unwrap();
    let slot = user_slot("warm");
    let index = store.user_index().unwrap();
    let new = new_indexed(&slot, "m", SessionLimit::default());
    index.create_indexed(new).await.unwrap();
    index.list(&slot).await.unwrap();
    index.end_all(&slot, None).await.unwrap();
}

fn user_slot(name: &str) -> UserSlot {
    let tag = format!("{name}-{}", random_hex());
    UserSlot::new(
        StoreKey::from_string(format!("sess:idx:{{{tag}}}")),
        format!("sess:{{{tag}}}"),
    )
}

fn new_indexed<'a>(slot: &'a UserSlot, member: &'a str, limit: SessionLimit) -> NewIndexed<'a> {
    NewIndexed {
        slot,
        member,
        record: b"sealed",
        expires_at: in_(Duration::from_secs(60)),
        deadline: in_(Duration::from_secs(600)),
        retire: None,
        limit,
    }
}

/// Each operation is one command sent by the client, in one round trip. A script's own
/// commands run inside it, but Redis counts them in `commandstats` too; they are listed here,
/// so that the figures say exactly what each operation costs the server.
#[tokio::test]
async fn each_operation_is_exactly_one_command() {
    // A server of its own: the statistics are server-wide.
    let server = RedisServer::start();
    let store = RedisStore::connect(&server.url(), PATIENT).await.unwrap();
    // The connection and its handshake (CLIENT SETINFO) happen before the first snapshot.
    store.ping().await.unwrap();
    warm_scripts(&store).await;
    let (k, later, past) = (
        key("commands"),
        in_(Duration::from_secs(60)),
        SystemTime::now() - Duration::from_secs(1),
    );

    assert_commands!(server, store.create(&k, b"v1", later), [("set", 1)]);
    assert_commands!(server, store.load(&k, Some(later)), [("getex", 1)]);
    assert_commands!(server, store.load(&k, None), [("get", 1)]);
    let cas = [("evalsha", 1), ("get", 1), ("set", 1)];
    assert_commands!(
        server,
        store.save(&k, &CasToken::new(b"v1"), b"v2", later),
        cas
    );
    let conflict = [("evalsha", 1), ("get", 1)];
    assert_commands!(
        server,
        store.save(&k, &CasToken::new(b"v1"), b"v3", later),
        conflict
    );
    assert_commands!(server, store.delete(&k), [("del", 1)]);
    assert_commands!(server, store.load(&k, Some(later)), [("getex", 1)]);
    let gone = [("evalsha", 1), ("get", 1)];
    assert_commands!(
        server,
        store.save(&k, &CasToken::new(b""), b"v3", later),
        gone
    );
    assert_commands!(server, store.create(&k, b"v4", past), [("exists", 1)]);
    store.create(&k, b"v5", later).await.unwrap();
    let ended = [("evalsha", 1), ("get", 1), ("del", 1)];
    assert_commands!(
        server,
        store.save(&k, &CasToken::new(b"v5"), b"v6", past),
        ended
    );
    assert_commands!(server, store.purge_expired(), [] as [(&str, u64); 0]);
    assert_commands!(server, store.ping(), [("ping", 1)]);

    // The per-user index, on an empty slot: one EVALSHA or one pipeline each.
    let index = store.user_index().unwrap();
    let slot = user_slot("commands");
    // Each step visits a bounded number of members: `ZRANGE … BYSCORE LIMIT` for the expired
    // ones, `ZRANGE` of the oldest, `ZRANGE … REV` for the expiry.
    let login = [
        ("evalsha", 1),
        ("zrange", 3),
        ("zcard", 1),
        ("set", 1),
        ("zadd", 1),
        ("pexpireat", 1),
    ];
    let new = new_indexed(&slot, "a", SessionLimit::default());
    assert_commands!(server, index.create_indexed(new), login);
    let list = [("evalsha", 1), ("zrange", 2), ("get", 1), ("pttl", 1)];
    assert_commands!(server, index.list(&slot), list);
    assert_commands!(server, index.end(&slot, "a"), [("del", 1), ("zrem", 1)]);
    let new = new_indexed(&slot, "b", SessionLimit::default());
    index.create_indexed(new).await.unwrap();
    let end_all = [
        ("evalsha", 1),
        ("zrange", 1),
        ("del", 1),
        ("zrem", 1),
        ("zcard", 1),
    ];
    assert_commands!(server, index.end_all(&slot, None), end_all);
}

/// The index key expires with its last session's absolute deadline, and an ended or idled-out
/// session leaves the index at the next operation: nothing is left behind in Redis.
#[tokio::test]
async fn index_entries_and_the_index_itself_disappear_by_themselves() {
    let server = RedisServer::shared();
    let store = RedisStore::connect(&server.url(), PATIENT).await.unwrap();
    let index = store.user_index().unwrap();
    let slot = user_slot("expiry");
    let raw = |args: &[&str]| server.command(args);
    let mut new = new_indexed(&slot, "brief", SessionLimit::default());
    new.expires_at = in_(Duration::from_millis(300));
    // The index outlives the idle session by far, so that its member can only leave by the
    // prune below, never by the whole key expiring while the test polls.
    new.deadline = in_(Duration::from_secs(10));
    assert_eq!(
        index.create_indexed(new).await.unwrap(),
        CreateIndexedOutcome::Created { evicted: vec![] }
    );
    let Reply::Integer(ttl) = raw(&["PTTL", slot.index().as_str()]) else {
        panic!("no PTTL");
    };
    assert!(
        ttl > 9_000 && ttl <= 10_000,
        "the index expires with its last deadline: {ttl}"
    );
    // Idled out: the session key goes first; the next list drops its member.
    let member_key = slot.member_key("brief");
    let started = std::time::Instant::now();
    while raw(&["EXISTS", member_key.as_str()]) != Reply::Integer(0) {
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "the idle session never expired"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_ne!(
        raw(&["ZSCORE", slot.index().as_str(), "brief"]),
        Reply::Nil,
        "before the next list, the dead member is still indexed"
    );
    assert!(index.list(&slot).await.unwrap().is_empty());
    assert_eq!(
        raw(&["ZSCORE", slot.index().as_str(), "brief"]),
        Reply::Nil,
        "the member left the index"
    );
    assert_eq!(raw(&["EXISTS", slot.index().as_str()]), Reply::Integer(0));
}

#[tokio::test]
async fn records_and_deadlines_are_stored_exactly() {
    let server = RedisServer::shared();
    let store = RedisStore::connect(&server.url(), PATIENT).await.unwrap();
    let k = key("exact");
    let record: Vec<u8> = [0xFF, 0x00, 0xC3, 0x28, 0x80, b'\r', b'\n']
        .into_iter()
        .chain(0..=255)
        .collect();
    assert!(
        std::str::from_utf8(&record).is_err(),
        "the record is not text"
    );
    let deadline = in_(Duration::from_secs(120));
    store.create(&k, &record, deadline).await.unwrap();

    let raw = |args: &[&[u8]]| command_bytes(server.port(), args).unwrap();
    assert_eq!(
        raw(&[b"GET", k.as_str().as_bytes()]),
        Reply::Bulk(record.clone())
    );
    let expiry = |k: &StoreKey| raw(&[b"PEXPIRETIME", k.as_str().as_bytes()]);
    assert_eq!(expiry(&k), Reply::Integer(pxat(deadline)));

    let slid = in_(Duration::from_secs(300));
    assert_eq!(store.load(&k, Some(slid)).await.unwrap(), Some(record));
    assert_eq!(expiry(&k), Reply::Integer(pxat(slid)));
    store.load(&k, None).await.unwrap();
    assert_eq!(expiry(&k), Reply::Integer(pxat(slid)), "GET slides nothing");

    // Bytes written by another client come back as they are.
    let foreign = key("foreign");
    let bytes = [0xF0, 0x28, 0x8C, 0xBC, 0x00];
    raw(&[b"SET", foreign.as_str().as_bytes(), &bytes, b"EX", b"60"]);
    assert_eq!(
        store.load(&foreign, None).await.unwrap(),
        Some(bytes.to_vec())
    );
}

#[tokio::test]
async fn a_record_is_gone_as_soon_as_its_deadline_has_passed() {
    let store = RedisStore::connect(&RedisServer::shared().url(), PATIENT)
        .await
        .unwrap();
    for round in 0..5 {
        let k = key("boundary");
        // Half a millisecond into a millisecond: Redis would keep the key through the rest
        // of it were the deadline's own millisecond sent as PXAT.
        let now = millis_since_epoch(SystemTime::now());
        let deadline = UNIX_EPOCH + Duration::from_micros((now + 100) * 1000 + 500);
        store.create(&k, b"brief", deadline).await.unwrap();
        tokio::time::sleep(Duration::from_millis(90)).await;
        while SystemTime::now() <= deadline {
            std::hint::spin_loop();
        }
        assert_eq!(store.load(&k, None).await.unwrap(), None, "round {round}");
    }
}

#[tokio::test]
async fn hash_tagged_keys_share_their_slot_on_the_cluster() {
    let cluster = RedisCluster::shared();
    let store = RedisStore::connect(&cluster.urls(), PATIENT).await.unwrap();
    let tag = random_hex();
    let keys = ["one", "two", "three"]
        .map(|name| StoreKey::from_string(format!("sess:{{{tag}}}{name}-{}", random_hex())));
    let later = in_(Duration::from_secs(60));
    for k in &keys {
        assert_eq!(
            store.create(k, k.as_str().as_bytes(), later).await.unwrap(),
            WriteOutcome::Written
        );
    }
    for k in &keys {
        let loaded = store.load(k, Some(later)).await.unwrap();
        assert_eq!(loaded.as_deref(), Some(k.as_str().as_bytes()));
        assert_eq!(
            store
                .save(k, &CasToken::new(k.as_str().as_bytes()), b"updated", later)
                .await
                .unwrap(),
            SaveOutcome::Saved
        );
    }

    let node = &cluster.nodes()[0];
    let Reply::Integer(slot) = node.command(&["CLUSTER", "KEYSLOT", &tag]) else {
        panic!("no slot");
    };
    let owner = cluster.node_of_slot(slot);
    let Reply::Array(in_slot) =
        owner.command(&["CLUSTER", "GETKEYSINSLOT", &slot.to_string(), "10"])
    else {
        panic!("no keys");
    };
    for k in &keys {
        assert!(
            in_slot.contains(&Reply::Bulk(k.as_str().as_bytes().to_vec())),
            "{k} is not in the slot of {{{tag}}}: {in_slot:?}"
        );
    }
    for k in &keys {
        store.delete(k).await.unwrap();
        assert_eq!(store.load(k, None).await.unwrap(), None);
    }
}

#[tokio::test]
async fn untagged_keys_spread_over_every_cluster_node() {
    let cluster = RedisCluster::shared();
    let store = RedisStore::connect(&cluster.urls(), PATIENT).await.unwrap();
    let prefix = format!("sess:spread-{}-", random_hex());
    for i in 0..60 {
        let k = StoreKey::from_string(format!("{prefix}{i}"));
        store
            .create(&k, b"x", in_(Duration::from_secs(60)))
            .await
            .unwrap();
    }
    for node in cluster.nodes() {
        let Reply::Array(found) = node.command(&["KEYS", &format!("{prefix}*")]) else {
            panic!("KEYS did not answer an array");
        };
        // 60 random slots miss one of three nodes with a probability of 3 * (2/3)^60.
        assert!(
            !found.is_empty(),
            "node {} holds none of the keys",
            node.port()
        );
    }
}

/// The outage tests, run on Redis and on Valkey: `$start` starts a server on a free port,
/// `$on_port` makes one for a given port without starting it.
macro_rules! outage_tests {
    ($name:ident, $start:path, $on_port:path) => {
        mod $name {
            use super::*;

            #[tokio::test]
            async fn a_paused_server_fails_fast_and_the_same_store_answers_on_resume() {
                let server = $start();
                let store = RedisStore::connect(&server.url(), RedisTimeouts::default())
                    .await
                    .unwrap();
                let k = key("paused");
                let later = in_(Duration::from_secs(60));
                store.create(&k, b"kept", later).await.unwrap();

                server.pause();
                let started = Instant::now();
                let during = store.load(&k, Some(later)).await;
                let took = started.elapsed();
                let during_ping = store.ping().await;
                server.resume();

                assert_unavailable(&during.unwrap_err());
                assert_unavailable(&during_ping.unwrap_err());
                assert!(took < FAST, "a load on a frozen server took {took:?}");
                assert_eq!(
                    store.load(&k, Some(later)).await.unwrap().as_deref(),
                    Some(&b"kept"[..]),
                    "the same store answers once the server does"
                );
            }

            #[tokio::test]
            async fn a_killed_and_restarted_server_is_reconnected_by_itself() {
                let mut server = $start();
                let store = RedisStore::connect(&server.url(), RedisTimeouts::default())
                    .await
                    .unwrap();
                let later = in_(Duration::from_secs(60));
                store.create(&key("before"), b"x", later).await.unwrap();

                server.stop();
                for _ in 0..3 {
                    let started = Instant::now();
                    let error = store.load(&key("down"), Some(later)).await.unwrap_err();
                    assert_unavailable(&error);
                    assert!(started.elapsed() < FAST, "took {:?}", started.elapsed());
                }

                server.start_again();
                let started = Instant::now();
                // The lost connection is replaced within the first call: no request fails once Redis
                // answers again.
                store.ping().await.unwrap();
                let k = key("after");
                assert_eq!(
                    store.create(&k, b"back", later).await.unwrap(),
                    WriteOutcome::Written
                );
                assert_eq!(
                    store.load(&k, None).await.unwrap().as_deref(),
                    Some(&b"back"[..])
                );
                // A save after the new connection (on Valkey: the server is asked again about IFEQ).
                assert_eq!(
                    store
                        .save(&k, &CasToken::of_record(b"back", 4), b"back again", later)
                        .await
                        .unwrap(),
                    SaveOutcome::Saved
                );
                assert!(started.elapsed() < RECOVERY);
            }

            #[tokio::test]
            async fn a_connection_closed_by_the_server_is_replaced_within_the_call() {
                // A server of its own: the kill below ends every client's connection.
                let server = $start();
                let store = RedisStore::connect(&server.url(), RedisTimeouts::default())
                    .await
                    .unwrap();
                let (k, later) = (key("closed"), in_(Duration::from_secs(60)));
                store.create(&k, b"kept", later).await.unwrap();
                // What a server's idle `timeout`, or a proxy, does to a quiet connection.
                let Reply::Integer(killed) =
                    server.command(&["CLIENT", "KILL", "TYPE", "normal", "SKIPME", "yes"])
                else {
                    panic!("CLIENT KILL failed");
                };
                assert_eq!(killed, 1, "the store's one connection");
                let loaded = store.load(&k, Some(later)).await.unwrap();
                assert_eq!(loaded.as_deref(), Some(&b"kept"[..]));
            }

            #[tokio::test]
            async fn without_redis_the_store_is_built_fails_fast_and_serves_once_redis_starts() {
                let port = free_port();
                let url = format!("redis://127.0.0.1:{port}");
                let started = Instant::now();
                let store = RedisStore::connect(&url, RedisTimeouts::default())
                    .await
                    .unwrap();
                assert!(
                    started.elapsed() < FAST,
                    "construction took {:?}",
                    started.elapsed()
                );

                let (k, later) = (key("no-server"), in_(Duration::from_secs(60)));
                let started = Instant::now();
                assert_unavailable(&store.create(&k, b"x", later).await.unwrap_err());
                assert_unavailable(&store.load(&k, Some(later)).await.unwrap_err());
                assert_unavailable(&store.load(&k, None).await.unwrap_err());
                assert_unavailable(
                    &store
                        .save(&k, &CasToken::new(b""), b"x", later)
                        .await
                        .unwrap_err(),
                );
                assert_unavailable(&store.delete(&k).await.unwrap_err());
                assert_unavailable(&store.ping().await.unwrap_err());
                assert!(
                    started.elapsed() < FAST,
                    "six calls took {:?}",
                    started.elapsed()
                );

                let mut server = $on_port(port, &[]);
                server.start_again();
                store.ping().await.unwrap();
                assert_eq!(
                    store.create(&k, b"x", later).await.unwrap(),
                    WriteOutcome::Written
                );
            }
        }
    };
}

outage_tests!(on_redis, RedisServer::start, RedisServer::on_port);
outage_tests!(on_valkey, valkey::start, valkey::on_port);

/// Log lines, captured.
#[derive(Clone, Default)]
struct Logs(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Logs {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test]
async fn starting_without_redis_says_so_without_the_password() {
    let logs = Logs::default();
    let writer = logs.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .finish();
    // The test's runtime runs on this thread only, so the subscriber sees the store's logs.
    let _guard = tracing::subscriber::set_default(subscriber);
    let port = free_port();
    let url = format!("redis://app:s3cret-pw@127.0.0.1:{port}");
    RedisStore::connect(&url, RedisTimeouts::default())
        .await
        .unwrap();

    let text = String::from_utf8(logs.0.lock().unwrap().clone()).unwrap();
    assert!(text.contains("WARN"), "{text}");
    assert!(
        text.contains("Redis does not answer; starting anyway"),
        "{text}"
    );
    assert!(
        text.contains(&format!("redis://app:[redacted]@127.0.0.1:{port}")),
        "{text}"
    );
    assert!(!text.contains("s3cret"), "{text}");
}

#[tokio::test]
async fn a_cluster_store_made_before_the_cluster_runs_works_once_it_does() {
    let ports = ClusterPorts::free();
    let started = Instant::now();
    let store = RedisStore::connect(&ports.urls(), RedisTimeouts::default())
        .await
        .unwrap();
    assert!(store.is_cluster());
    assert!(
        started.elapsed() < FAST,
        "construction took {:?}",
        started.elapsed()
    );

    let (k, later) = (key("cluster-late"), in_(Duration::from_secs(60)));
    let started = Instant::now();
    assert_unavailable(&store.load(&k, Some(later)).await.unwrap_err());
    assert_unavailable(&store.create(&k, b"x", later).await.unwrap_err());
    assert!(started.elapsed() < FAST, "took {:?}", started.elapsed());

    let _cluster = RedisCluster::start_on(ports);
    let started = Instant::now();
    while let Err(error) = store.ping().await {
        assert!(
            started.elapsed() < RECOVERY,
            "still unavailable: {}",
            chain(&error)
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        store.create(&k, b"x", later).await.unwrap(),
        WriteOutcome::Written
    );
    assert_eq!(
        store.load(&k, None).await.unwrap().as_deref(),
        Some(&b"x"[..])
    );
}

#[tokio::test]
async fn url_credentials_authenticate_and_never_show() {
    let server = RedisServer::start_with(&[
        "--requirepass",
        "default-pw",
        "--user",
        "app",
        "on",
        ">app-pw",
        "~sess:*",
        "+@all",
    ]);
    let port = server.port();
    let later = in_(Duration::from_secs(60));

    for url in [
        format!("redis://:default-pw@127.0.0.1:{port}"),
        format!("redis://app:app-pw@127.0.0.1:{port}/0"),
    ] {
        let store = RedisStore::connect(&url, PATIENT).await.unwrap();
        let k = key("auth");
        assert_eq!(
            store.create(&k, b"x", later).await.unwrap(),
            WriteOutcome::Written
        );
        let shown = format!("{store:?}");
        assert!(
            !shown.contains("-pw") && shown.contains("[redacted]"),
            "{shown}"
        );
    }

    for url in [
        format!("redis://app:wrong-pw@127.0.0.1:{port}"),
        format!("redis://127.0.0.1:{port}"),
    ] {
        let store = RedisStore::connect(&url, PATIENT).await.unwrap();
        let error = store.load(&key("auth"), None).await.unwrap_err();
        assert_unavailable(&error);
        let shown = format!("{} {error:?} {store:?}", chain(&error));
        assert!(!shown.contains("wrong-pw"), "{shown}");
    }
}

#[tokio::test]
async fn tls_checks_the_server_certificate() {
    portcullis_testing::redis::require_binary("openssl");
    let certs = tempfile::tempdir().unwrap();
    let (cert, private_key) = (certs.path().join("cert.pem"), certs.path().join("key.pem"));
    let made = std::process::Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
        ])
        .args(["-nodes", "-days", "1", "-subj", "/CN=localhost"])
        .args(["-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"])
        .arg("-keyout")
        .arg(&private_key)
        .arg("-out")
        .arg(&cert)
        .output()
        .unwrap();
    assert!(
        made.status.success(),
        "{}",
        String::from_utf8_lossy(&made.stderr)
    );
    let tls_port = free_port();
    let (cert, private_key) = (cert.to_str().unwrap(), private_key.to_str().unwrap());
    let _server = RedisServer::start_with(&[
        "--tls-port",
        &tls_port.to_string(),
        "--tls-cert-file",
        cert,
        "--tls-key-file",
        private_key,
        "--tls-ca-cert-file",
        cert,
        "--tls-auth-clients",
        "no",
    ]);

    // A self-signed certificate is no public CA's: the handshake must fail, and say why.
    let url = format!("rediss://localhost:{tls_port}");
    let store = RedisStore::connect(&url, PATIENT).await.unwrap();
    let error = store.ping().await.unwrap_err();
    assert_unavailable(&error);
    let text = chain(&error).to_lowercase();
    assert!(text.contains("certificate"), "{text}");

    // Turning verification off is refused before anything connects.
    let error = RedisStore::connect(&format!("{url}/#insecure"), PATIENT)
        .await
        .unwrap_err();
    assert!(error.reason().contains("#insecure"), "{error}");
}

#[tokio::test]
async fn a_bad_url_is_refused_with_its_passwords_redacted() {
    let cases = [
        (
            "redis://:pw-1@a:7000,rediss://:pw-1@b:7001",
            "the same scheme",
        ),
        (
            "redis://:pw-1@a:7000,redis://:pw-2@b:7001",
            "different password",
        ),
        ("http://:pw-1@cache:6379", "one URL starting with"),
        (
            "redis://:pw-1@a:7000/3,redis://:pw-1@b:7001/3",
            "database 0",
        ),
    ];
    for (url, reason) in cases {
        let error = RedisStore::connect(url, PATIENT).await.unwrap_err();
        assert!(error.reason().contains(reason), "{url}: {error}");
        let shown = format!("{} {error:?}", chain(&error));
        assert!(!shown.contains("pw-"), "{shown}");
        assert!(error.url().contains("[redacted]"), "{}", error.url());
    }
}

#[tokio::test]
async fn a_restarted_cluster_is_reconnected_by_itself() {
    let mut cluster = RedisCluster::start();
    let store = RedisStore::connect(&cluster.urls(), RedisTimeouts::default())
        .await
        .unwrap();
    let later = in_(Duration::from_secs(60));
    store.create(&key("before"), b"x", later).await.unwrap();

    for node in cluster.nodes_mut() {
        node.stop();
    }
    let started = Instant::now();
    let error = store.load(&key("down"), Some(later)).await.unwrap_err();
    assert_unavailable(&error);
    assert!(started.elapsed() < FAST, "took {:?}", started.elapsed());

    for node in cluster.nodes_mut() {
        node.start_again();
    }
    cluster.wait_until_ok();
    let started = Instant::now();
    while let Err(error) = store.ping().await {
        assert!(
            started.elapsed() < RECOVERY,
            "still unavailable: {}",
            chain(&error)
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let k = key("after");
    assert_eq!(
        store.create(&k, b"back", later).await.unwrap(),
        WriteOutcome::Written
    );
    assert_eq!(
        store.load(&k, None).await.unwrap().as_deref(),
        Some(&b"back"[..])
    );
}

#[tokio::test]
async fn from_config_uses_redis_url_and_the_redis_timeouts() {
    let state = tempfile::tempdir().unwrap();
    let config = portcullis::config::ConfigLoader::new()
        .env([
            ("REDIS_URL".to_owned(), RedisServer::shared().url()),
            ("REDIS_CONNECT_TIMEOUT".to_owned(), "2s".to_owned()),
            ("REDIS_RESPONSE_TIMEOUT".to_owned(), "1500ms".to_owned()),
        ])
        .no_dotenv()
        .state_dir(state.path())
        .load()
        .unwrap();
    assert_eq!(config.redis_response_timeout, Duration::from_millis(1500));
    let store = RedisStore::from_config(&config).await.unwrap();
    assert!(!store.is_cluster());
    let k = key("from-config");
    let later = in_(Duration::from_secs(60));
    assert_eq!(
        store.create(&k, b"x", later).await.unwrap(),
        WriteOutcome::Written
    );
    assert_eq!(
        store.load(&k, Some(later)).await.unwrap().as_deref(),
        Some(&b"x"[..])
    );
}
