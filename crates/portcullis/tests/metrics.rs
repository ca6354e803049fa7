//! The library's metrics that need a race or a clock to cause, through the real middleware on
//! a real Prometheus recorder (`metrics-exporter-prometheus`, its exposition parsed): a
//! compare-and-set conflict and its replay, a write refused as gone, a cookie verified by a
//! fallback key, a forged cookie (counted once where the session is used, never where it is
//! not), a session past its absolute lifetime, a session evicted by the per-user cap,
//! and the store operations of the memory store. The site's binary tests cover the rest
//! (`crates/portcullis-site/tests/binary/metrics.rs`).
//!
//! A recorder is process-wide, so this file is one test: every delta it asserts is its own.
//! Races are made certain with barriers; waits poll, nothing sleeps.
#![cfg(feature = "metrics")]
#![allow(clippy::unwrap_used)]

mod support;

use std::collections::HashMap;
use std::num::NonZeroUsize;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Extension, Path};
use axum::routing::{get, post};
use axum::{Router, http::StatusCode};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use portcullis::clock::ManualClock;
use portcullis::keys::KeyRing;
use portcullis::store::{LimitPolicy, MemoryStore, SessionLimit};
use portcullis::{Session, SessionError, SessionLayer};
use support::app::{cookie_pair, get_with, post_with, send};
use tokio::sync::{Barrier, Notify};

const SECRET: &[u8] = b"the metrics test secret key, 32 bytes+";
const OLD_SECRET: &[u8] = b"the key before the rotation, 32 bytes+";
/// The most a racing handler waits for the others.
const PATIENCE: Duration = Duration::from_secs(15);

/// The exposition as `series -> value`, the series written as rendered (`name{a="b"}`).
fn scrape(handle: &PrometheusHandle) -> HashMap<String, f64> {
    handle
        .render()
        .lines()
        .filter(|line| !line.starts_with('#') && !line.is_empty())
        .map(|line| {
            let (series, value) = line.rsplit_once(' ').unwrap();
            (series.to_owned(), value.parse().unwrap())
        })
        .collect()
}

/// How much `series` moved between two scrapes (absent counts as 0).
fn delta(before: &HashMap<String, f64>, after: &HashMap<String, f64>, series: &str) -> f64 {
    after.get(series).copied().unwrap_or(0.0) - before.get(series).copied().unwrap_or(0.0)
}

/// What the racing handlers share.
#[derive(Clone)]
struct Race {
    barrier: Arc<Barrier>,
    loaded: Arc<Notify>,
    gate: Arc<Notify>,
}

fn app(layer: SessionLayer, race: &Race) -> Router {
    Router::new()
        .route("/start", post(start))
        .route("/set/{key}", post(set_after_barrier))
        .route("/set-after-gate", post(set_after_gate))
        .route("/logout", post(logout))
        .route("/login/{user}", post(login))
        .route("/read", get(read))
        .route("/untouched", get(|| async { "no session here" }))
        .layer(layer)
        .layer(Extension(race.clone()))
}

async fn start(session: Session) -> Result<&'static str, SessionError> {
    session.insert("started", true).await?;
    Ok("started")
}

async fn set_after_barrier(
    session: Session,
    Extension(race): Extension<Race>,
    Path(key): Path<String>,
) -> Result<&'static str, SessionError> {
    session.get::<bool>("started").await?;
    let waited = tokio::time::timeout(PATIENCE, race.barrier.wait()).await;
    assert!(waited.is_ok(), "the other racer never loaded");
    session.insert(&key, true).await?;
    Ok("set")
}

async fn set_after_gate(
    session: Session,
    Extension(race): Extension<Race>,
) -> Result<&'static str, SessionError> {
    session.get::<bool>("started").await?;
    race.loaded.notify_one();
    race.gate.notified().await;
    session.insert("late", true).await?;
    Ok("set")
}

async fn logout(session: Session) -> Result<&'static str, SessionError> {
    session.destroy().await?;
    Ok("bye")
}

async fn login(session: Session, Path(user): Path<String>) -> Result<&'static str, SessionError> {
    session.regenerate().await?;
    session.set_user_id(Some(user)).await?;
    Ok("in")
}

async fn read(session: Session) -> Result<String, SessionError> {
    Ok(session
        .get::<bool>("started")
        .await?
        .unwrap_or(false)
        .to_string())
}

/// Waits until the wall clock's millisecond moves on, so two log-ins get distinct deadlines.
async fn next_millisecond() {
    let millis = || {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis()
    };
    let start = millis();
    while millis() <= start {
        tokio::task::yield_now().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn races_rotations_lifetimes_and_the_cap_move_their_counters_by_exactly_one() {
    let recorder = PrometheusBuilder::new().build_recorder();
    let handle = recorder.handle();
    metrics::set_global_recorder(recorder).unwrap();
    portcullis::metrics::describe();

    let store = Arc::new(MemoryStore::new());
    let race = Race {
        barrier: Arc::new(Barrier::new(2)),
        loaded: Arc::new(Notify::new()),
        gate: Arc::new(Notify::new()),
    };
    // Two layers over one store: two processes of one site, which only compare-and-set keeps
    // from losing each other's writes.
    let first = app(
        SessionLayer::new(Arc::clone(&store), KeyRing::new(SECRET, &[])),
        &race,
    );
    let second = app(
        SessionLayer::new(Arc::clone(&store), KeyRing::new(SECRET, &[])),
        &race,
    );
    let (response, _) = send(&first, post_with("/start", None, "")).await;
    let cookie = cookie_pair(&response);

    // A conflict: both load, then both save; the second to save replays onto the first's.
    let before = scrape(&handle);
    let (a, b) = tokio::join!(
        send(&first, post_with("/set/a", Some(&cookie), "")),
        send(&second, post_with("/set/b", Some(&cookie), "")),
    );
    assert_eq!(
        (a.0.status(), b.0.status()),
        (StatusCode::OK, StatusCode::OK)
    );
    let after = scrape(&handle);
    let conflicts = "portcullis_session_write_conflicts_total";
    assert_eq!(
        delta(&before, &after, conflicts),
        1.0,
        "one save conflicted"
    );
    let replays = "portcullis_session_write_replays_total";
    assert_eq!(delta(&before, &after, replays), 1.0, "and replayed once");

    // Gone: a logout through the other process while a request holds the session.
    let before = scrape(&handle);
    let held = tokio::spawn({
        let first = first.clone();
        let cookie = cookie.clone();
        async move { send(&first, post_with("/set-after-gate", Some(&cookie), "")).await }
    });
    race.loaded.notified().await;
    let (response, _) = send(&second, post_with("/logout", Some(&cookie), "")).await;
    assert_eq!(response.status(), StatusCode::OK);
    race.gate.notify_one();
    let (response, _) = held.await.unwrap();
    assert_eq!(response.status(), StatusCode::CONFLICT);
    let after = scrape(&handle);
    let gone = r#"portcullis_session_writes_refused_total{reason="gone"}"#;
    assert_eq!(delta(&before, &after, gone), 1.0);
    let destroyed = "portcullis_sessions_destroyed_total";
    assert_eq!(delta(&before, &after, destroyed), 1.0);

    // A cookie signed by the old key, read after the rotation.
    let old = app(
        SessionLayer::new(Arc::clone(&store), KeyRing::new(OLD_SECRET, &[])),
        &race,
    );
    let rotated = app(
        SessionLayer::new(Arc::clone(&store), KeyRing::new(SECRET, &[OLD_SECRET])),
        &race,
    );
    let (response, _) = send(&old, post_with("/start", None, "")).await;
    let old_cookie = cookie_pair(&response);
    let before = scrape(&handle);
    let (response, body) = send(&rotated, get_with("/read", Some(&old_cookie))).await;
    assert_eq!((response.status(), body.as_str()), (StatusCode::OK, "true"));
    let after = scrape(&handle);
    let fallback = "portcullis_session_cookies_fallback_key_total";
    assert_eq!(delta(&before, &after, fallback), 1.0);

    // A forged cookie: verified (and counted) on the session's first use, so once on a route
    // that reads the session and never on one that does not touch it.
    let forged = format!("{}x", &cookie[..cookie.len() - 1]);
    let bad_signature = r#"portcullis_session_cookies_refused_total{reason="bad_signature"}"#;
    let before = scrape(&handle);
    let (response, _) = send(&first, get_with("/untouched", Some(&forged))).await;
    assert_eq!(response.status(), StatusCode::OK);
    let after = scrape(&handle);
    assert_eq!(delta(&before, &after, bad_signature), 0.0, "never verified");
    let (_, body) = send(&first, get_with("/read", Some(&forged))).await;
    assert_eq!(body, "false", "a new session");
    let after_read = scrape(&handle);
    assert_eq!(delta(&after, &after_read, bad_signature), 1.0);

    // Past the absolute lifetime: the layer's clock moves on; the store still holds it.
    let clock = ManualClock::new();
    let aging = app(
        SessionLayer::new(Arc::clone(&store), KeyRing::new(SECRET, &[]))
            .with_clock(Arc::new(clock.clone())),
        &race,
    );
    let (response, _) = send(&aging, post_with("/start", None, "")).await;
    let aged_cookie = cookie_pair(&response);
    clock.advance(SessionLayer::DEFAULT_ABSOLUTE_LIFETIME + Duration::from_secs(1));
    let before = scrape(&handle);
    let (_, body) = send(&aging, get_with("/read", Some(&aged_cookie))).await;
    assert_eq!(body, "false", "a new session");
    let after = scrape(&handle);
    let expired = r#"portcullis_session_cookies_refused_total{reason="absolute"}"#;
    assert_eq!(delta(&before, &after, expired), 1.0);

    // The per-user cap: a second log-in with room for one evicts the first.
    let capped = app(
        SessionLayer::new(Arc::clone(&store), KeyRing::new(SECRET, &[])).with_session_limit(
            SessionLimit {
                max: NonZeroUsize::new(1),
                policy: LimitPolicy::EvictOldest,
            },
        ),
        &race,
    );
    let before = scrape(&handle);
    for _ in 0..2 {
        // A visitor's session, then a log-in: the id is regenerated.
        let (response, _) = send(&capped, post_with("/start", None, "")).await;
        let visitor = cookie_pair(&response);
        let (response, _) = send(&capped, post_with("/login/dana", Some(&visitor), "")).await;
        assert_eq!(response.status(), StatusCode::OK);
        next_millisecond().await;
    }
    let after = scrape(&handle);
    assert_eq!(
        delta(&before, &after, "portcullis_sessions_evicted_total"),
        1.0
    );
    assert_eq!(
        delta(&before, &after, "portcullis_sessions_regenerated_total"),
        2.0
    );
    assert_eq!(
        delta(&before, &after, "portcullis_sessions_created_total"),
        4.0,
        "two visitors' sessions and two logged-in ones"
    );
    let index_creates =
        r#"portcullis_store_operation_duration_seconds_count{store="memory",op="index_create"}"#;
    assert_eq!(delta(&before, &after, index_creates), 2.0);

    // Every load above was timed, none failed, and each record written was measured.
    let loads = r#"portcullis_store_operation_duration_seconds_count{store="memory",op="load"}"#;
    assert!(after[loads] >= 5.0, "{}", handle.render());
    let errors = r#"portcullis_store_operation_errors_total{store="memory",op="load"}"#;
    assert!(!after.contains_key(errors));
    assert!(after["portcullis_session_record_size_bytes_count"] >= 6.0);
}
