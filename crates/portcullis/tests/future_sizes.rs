//! The futures a request puts on the heap stay in the allocator's small sizes. A request boxes
//! the session layer's future, each store call's (the store and its user index are trait
//! objects), and the handler's, which holds the session calls' futures. glibc serves an
//! allocation of more than 1,000 bytes from its large bins (unless its per-thread cache holds
//! one of that size), and first merges every chunk freed into its fast bins since the last
//! (`malloc_consolidate`). A future of the store's three backends was sized for its
//! rarest one, Sentinel, so a store call took 3.8 KB and the layer's future 1.9 KB. The read
//! route then ran at 0.78× its current requests/s (docs/BENCHMARKS.md, issue 14). The sizes are
//! checked where the futures are made, with no timing involved.
#![allow(clippy::unwrap_used)]

mod support;

use std::mem::size_of_val;
use std::time::{Duration, SystemTime};

use axum::Router;
use axum::body::Body;
use axum::http::Request;
use axum::routing::get;
use portcullis::keys::KeyRing;
use portcullis::store::{
    CasToken, FileStore, MemoryStore, NewIndexed, SessionLimit, SessionStore, StoreKey, UserSlot,
};
use portcullis::{Session, SessionLayer};
use support::app::{get_with, send};
use tower::{Layer, Service};

/// The largest allocation glibc serves from its small bins: it rounds a request of `n` bytes up
/// to a chunk of `(n + 8 + 15) & !15`, and the small bins end below 1,024.
const SMALL: usize = 1000;
/// The most a session call's future may take, leaving 360 bytes of [`SMALL`] to the state of
/// the handler that holds it.
const SESSION_CALL: usize = 640;

const KEY: &[u8] = b"the current secret key, 32 bytes or more";

/// The size of each call's future on `store`.
fn store_call_sizes(store: &dyn SessionStore) -> Vec<(&'static str, usize)> {
    let key = StoreKey::from_string("sess:size".into());
    let token = CasToken::of_record(b"record", 4);
    let deadline = SystemTime::now() + Duration::from_secs(60);
    let mut sizes = vec![
        ("create", size_of_val(&*store.create(&key, b"r", deadline))),
        ("load", size_of_val(&*store.load(&key, None))),
        (
            "sliding load",
            size_of_val(&*store.load(&key, Some(deadline))),
        ),
        (
            "save",
            size_of_val(&*store.save(&key, &token, b"r", deadline)),
        ),
        ("delete", size_of_val(&*store.delete(&key))),
        ("delete_if", size_of_val(&*store.delete_if(&key, &token))),
    ];
    let index = store
        .user_index()
        .expect("every store checked here keeps a user index");
    let slot = UserSlot::new(StoreKey::from_string("sess:idx:{t}".into()), "sess:{t}");
    let new = NewIndexed {
        slot: &slot,
        member: "m",
        record: b"r",
        expires_at: deadline,
        deadline,
        retire: None,
        limit: SessionLimit::default(),
    };
    sizes.extend([
        ("create_indexed", size_of_val(&*index.create_indexed(new))),
        ("list", size_of_val(&*index.list(&slot))),
        ("end", size_of_val(&*index.end(&slot, "m"))),
        ("end_all", size_of_val(&*index.end_all(&slot, None))),
    ]);
    sizes
}

/// The calls of `stores` (name and store) that are above [`SMALL`], and every size.
fn too_large(stores: &[(&str, Box<dyn SessionStore>)]) -> (Vec<String>, Vec<String>) {
    let sizes: Vec<(String, usize)> = stores
        .iter()
        .flat_map(|(name, store)| {
            store_call_sizes(store.as_ref())
                .into_iter()
                .map(move |(call, size)| (format!("{name} {call}"), size))
        })
        .collect();
    let large = sizes
        .iter()
        .filter(|(_, size)| *size > SMALL)
        .map(|(call, size)| format!("{call}: {size}"))
        .collect();
    let all = sizes
        .iter()
        .map(|(call, size)| format!("{call}: {size}"))
        .collect();
    (large, all)
}

#[test]
fn every_call_of_the_file_and_memory_stores_is_one_small_allocation() {
    let dir = tempfile::tempdir().unwrap();
    let stores: [(&str, Box<dyn SessionStore>); 2] = [
        ("file", Box::new(FileStore::open(dir.path()).unwrap())),
        ("memory", Box::new(MemoryStore::new())),
    ];
    let (large, all) = too_large(&stores);
    assert!(
        large.is_empty(),
        "above {SMALL} bytes: {large:?}; all: {all:?}"
    );
}

#[cfg(feature = "redis")]
#[tokio::test]
async fn every_call_of_the_redis_store_is_one_small_allocation() {
    use portcullis::store::{RedisStore, RedisTimeouts};
    use portcullis_testing::redis::RedisServer;

    let server = RedisServer::start();
    let redis = RedisStore::connect(&server.url(), RedisTimeouts::default())
        .await
        .unwrap();
    let (large, all) = too_large(&[("redis", Box::new(redis))]);
    assert!(
        large.is_empty(),
        "above {SMALL} bytes: {large:?}; all: {all:?}"
    );
}

/// Each session call's future, as a handler makes it (made and dropped, never run).
async fn session_call_sizes(session: Session) -> String {
    let sizes = [
        ("get", size_of_val(&session.get::<u64>("n"))),
        ("insert", size_of_val(&session.insert("n", 1_u64))),
        (
            "update",
            size_of_val(&session.update("n", |n: Option<u64>| n.map(|n| n + 1))),
        ),
        ("remove", size_of_val(&session.remove::<u64>("n"))),
        ("regenerate", size_of_val(&session.regenerate())),
        ("destroy", size_of_val(&session.destroy())),
        (
            "set_user_id",
            size_of_val(&session.set_user_id(Some("alice".to_owned()))),
        ),
    ];
    sizes
        .iter()
        .map(|(call, size)| format!("{call}={size}"))
        .collect::<Vec<_>>()
        .join(" ")
}

#[tokio::test]
async fn the_session_calls_leave_most_of_a_small_handler_future_to_the_handler() {
    let app = Router::new()
        .route("/sizes", get(session_call_sizes))
        .layer(SessionLayer::new(
            MemoryStore::new(),
            KeyRing::new(KEY, &[]),
        ));
    let (_, body) = send(&app, get_with("/sizes", None)).await;
    let sizes: Vec<(&str, usize)> = body
        .split(' ')
        .map(|pair| {
            let (call, size) = pair.split_once('=').unwrap();
            (call, size.parse().unwrap())
        })
        .collect();
    assert_eq!(sizes.len(), 7, "{body}");
    let too_large: Vec<_> = sizes
        .iter()
        .filter(|(_, size)| *size > SESSION_CALL)
        .collect();
    assert!(
        too_large.is_empty(),
        "above {SESSION_CALL} bytes: {too_large:?}; all: {body}"
    );
}

#[tokio::test]
async fn the_session_layers_own_future_is_one_small_allocation() {
    let routes = Router::new().route("/", get(|| async { "ok" }));
    let mut service = SessionLayer::new(MemoryStore::new(), KeyRing::new(KEY, &[])).layer(routes);
    let future = service.call(Request::new(Body::empty()));
    let size = size_of_val(&*future);
    assert!(size <= SMALL, "{size} bytes");
    assert_eq!(future.await.unwrap().status(), 200);
}
