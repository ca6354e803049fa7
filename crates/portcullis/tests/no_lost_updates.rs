//! No lost updates and the per-user index, through the real middleware, on every store
//! (memory, files, one Redis server, a 3-master Redis Cluster): one suite, written once.
//!
//! Concurrency is made certain rather than likely: the handlers that race first load the
//! session, then wait on a barrier until every one of them has loaded, and only then change
//! it. So every test here fails under last-writer-wins. Waits poll; no test sleeps to wait.
#![allow(clippy::unwrap_used)]

mod support;

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::{Extension, Path};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use portcullis::keys::KeyRing;
use portcullis::session::{DeviceId, Id};
use portcullis::store::{LimitPolicy, SessionLimit, SessionStore, StoreKey};
#[cfg(feature = "redis")]
use portcullis::store::{RedisStore, RedisTimeouts};
use portcullis::{Session, SessionError, SessionLayer};
use portcullis_testing::Probe;
#[cfg(feature = "redis")]
use portcullis_testing::redis::{RedisCluster, RedisServer};
use serde_json::{Value, json};
use support::app::{cookie_pair, get_with, post_with, send};
use tokio::sync::{Barrier, Notify};

const SECRET: &[u8] = b"the no-lost-updates test secret, 32+ bytes";
/// Timeouts for tests that are not about timeouts.
#[cfg(feature = "redis")]
const PATIENT: RedisTimeouts = RedisTimeouts {
    connect: Duration::from_secs(5),
    response: Duration::from_secs(5),
};
/// The most a polling test waits.
const PATIENCE: Duration = Duration::from_secs(15);

/// Waits for `wait` at most [`PATIENCE`]: a racer that failed before its barrier makes the
/// test fail, not hang CI.
async fn bounded<F: std::future::Future>(what: &str, wait: F) -> F::Output {
    tokio::time::timeout(PATIENCE, wait)
        .await
        .unwrap_or_else(|_| panic!("{what}: gave up after {PATIENCE:?}"))
}

/// What the racing handlers share: a barrier for `n` of them, and a gate the logout test
/// opens.
#[derive(Clone)]
struct Race {
    barrier: Arc<Barrier>,
    loaded: Arc<Notify>,
    gate: Arc<Notify>,
}

impl Race {
    fn new(n: usize) -> Self {
        Self {
            barrier: Arc::new(Barrier::new(n)),
            loaded: Arc::new(Notify::new()),
            gate: Arc::new(Notify::new()),
        }
    }
}

/// Flask's flashes: `[[category, message], ...]`.
type Flashes = Vec<(String, String)>;

fn app(store: impl SessionStore, race: &Race, limit: SessionLimit, idle: Duration) -> Router {
    let layer = SessionLayer::new(store, KeyRing::new(SECRET, &[]))
        .with_idle_lifetime(idle)
        .with_session_limit(limit);
    Router::new()
        .route("/start", post(start))
        .route("/set/{key}", post(set_after_barrier))
        .route("/incr", post(incr_after_barrier))
        .route("/bump", post(bump))
        .route("/flash/{message}", post(flash_after_barrier))
        .route("/consume", post(consume_after_barrier))
        .route("/set-after-gate", post(set_after_gate))
        .route("/logout", post(logout))
        .route("/values", get(values))
        .route("/login/{user}", post(login))
        .route("/whoami", get(whoami))
        .route("/devices", get(devices))
        .route("/end-others", post(end_others))
        .layer(layer)
        .layer(Extension(race.clone()))
}

async fn start(session: Session) -> Result<&'static str, SessionError> {
    session.insert("started", true).await?;
    let flashes: Flashes = vec![("message".into(), "old".into())];
    session.insert("_flashes", flashes).await?;
    Ok("started")
}

async fn set_after_barrier(
    session: Session,
    Extension(race): Extension<Race>,
    Path(key): Path<String>,
) -> Result<&'static str, SessionError> {
    session.get::<bool>("started").await?;
    bounded("the barrier", race.barrier.wait()).await;
    session.insert(&key, true).await?;
    Ok("set")
}

async fn incr_after_barrier(
    session: Session,
    Extension(race): Extension<Race>,
) -> Result<&'static str, SessionError> {
    session.get::<bool>("started").await?;
    bounded("the barrier", race.barrier.wait()).await;
    session
        .update("n", |n: Option<u64>| Some(n.unwrap_or(0) + 1))
        .await?;
    Ok("incremented")
}

async fn bump(session: Session) -> Result<&'static str, SessionError> {
    session
        .update("n", |n: Option<u64>| Some(n.unwrap_or(0) + 1))
        .await?;
    Ok("incremented")
}

/// `flash()`: an append.
async fn flash_after_barrier(
    session: Session,
    Extension(race): Extension<Race>,
    Path(message): Path<String>,
) -> Result<&'static str, SessionError> {
    session.get::<Flashes>("_flashes").await?;
    bounded("the barrier", race.barrier.wait()).await;
    session
        .update("_flashes", move |list: Option<Flashes>| {
            let mut list = list.unwrap_or_default();
            list.push(("message".into(), message.clone()));
            Some(list)
        })
        .await?;
    Ok("flashed")
}

/// `get_flashed_messages()`: removes exactly the messages it returns.
async fn consume_after_barrier(
    session: Session,
    Extension(race): Extension<Race>,
) -> Result<Json<Flashes>, SessionError> {
    let shown = session
        .get::<Flashes>("_flashes")
        .await?
        .unwrap_or_default();
    bounded("the barrier", race.barrier.wait()).await;
    let taken = shown.clone();
    session
        .update("_flashes", move |list: Option<Flashes>| {
            let mut list = list.unwrap_or_default();
            for message in &taken {
                if let Some(at) = list.iter().position(|m| m == message) {
                    list.remove(at);
                }
            }
            (!list.is_empty()).then_some(list)
        })
        .await?;
    Ok(Json(shown))
}

async fn set_after_gate(
    session: Session,
    Extension(race): Extension<Race>,
) -> Result<&'static str, SessionError> {
    session.get::<bool>("started").await?;
    race.loaded.notify_one();
    bounded("the gate", race.gate.notified()).await;
    session.insert("late", true).await?;
    Ok("set")
}

async fn logout(session: Session) -> Result<&'static str, SessionError> {
    session.destroy().await?;
    Ok("bye")
}

async fn values(session: Session) -> Result<Json<Value>, SessionError> {
    let mut values = serde_json::Map::new();
    for key in session.keys().await? {
        if key != portcullis::csrf::SESSION_KEY {
            values.insert(key.clone(), session.get::<Value>(&key).await?.unwrap());
        }
    }
    Ok(Json(Value::Object(values)))
}

async fn login(session: Session, Path(user): Path<String>) -> Result<&'static str, SessionError> {
    session.regenerate().await?;
    session.set_user_id(Some(user)).await?;
    Ok("in")
}

async fn whoami(session: Session) -> Result<String, SessionError> {
    Ok(session.user_id().await?.unwrap_or_default())
}

async fn devices(session: Session) -> Result<Json<Value>, SessionError> {
    let devices = session.devices().await?;
    Ok(Json(json!(
        devices
            .iter()
            .map(|d| json!({"handle": d.device_id().as_str(), "current": d.is_current()}))
            .collect::<Vec<_>>()
    )))
}

async fn end_others(session: Session) -> Result<String, SessionError> {
    Ok(session.end_other_devices().await?.to_string())
}

fn json_of(body: &str) -> Value {
    serde_json::from_str(body).unwrap_or_else(|e| panic!("{e}: {body}"))
}

/// A user name no other test (or earlier run on a shared server) uses.
fn user(name: &str) -> String {
    let mut random = [0_u8; 6];
    getrandom::fill(&mut random).unwrap();
    let hex: String = random.iter().map(|b| format!("{b:02x}")).collect();
    format!("{name}-{hex}")
}

/// The store key of the session a cookie names (`session=<id>.<mac>`).
fn key_of(cookie: &str) -> StoreKey {
    let value = cookie.split_once('=').unwrap().1;
    let id = value.split_once('.').unwrap().0;
    Id::decode(id).unwrap().store_key("sess:")
}

/// Returns once the wall clock is in a later millisecond than when called: "oldest" is by
/// log-in time in milliseconds, so log-ins in one millisecond have no order.
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

/// Runs `n` copies of `request(i)` at once; returns their statuses.
async fn all_at_once(
    app: &Router,
    n: usize,
    request: impl Fn(usize) -> axum::http::Request<axum::body::Body>,
) -> Vec<StatusCode> {
    let tasks: Vec<_> = (0..n)
        .map(|i| {
            let (app, request) = (app.clone(), request(i));
            tokio::spawn(async move { send(&app, request).await.0.status() })
        })
        .collect();
    let mut statuses = Vec::new();
    for task in tasks {
        statuses.push(task.await.unwrap());
    }
    statuses
}

macro_rules! no_lost_updates {
    ($name:ident, $factory:expr) => {
        mod $name {
            use super::*;

            async fn store() -> (impl SessionStore + Clone, impl Sized) {
                $factory.await
            }

            /// An app on a fresh store handle, with `n` racers, and a started session.
            async fn started(n: usize) -> (Router, String, impl SessionStore, impl Sized) {
                let (store, keep) = store().await;
                let app = app(
                    store.clone(),
                    &Race::new(n),
                    SessionLimit::default(),
                    Duration::from_secs(300),
                );
                let (response, _) = send(&app, post_with("/start", None, "")).await;
                assert_eq!(response.status(), StatusCode::OK);
                (app, cookie_pair(&response), store, keep)
            }

            async fn distinct_keys_all_survive(n: usize) {
                let (app, cookie, _store, _keep) = started(n).await;
                let statuses = all_at_once(&app, n, |i| {
                    post_with(&format!("/set/k{i}"), Some(&cookie), "")
                })
                .await;
                assert!(
                    statuses.iter().all(|s| *s == StatusCode::OK),
                    "{statuses:?}"
                );
                let (_, body) = send(&app, get_with("/values", Some(&cookie))).await;
                let values = json_of(&body);
                let missing: Vec<usize> = (0..n)
                    .filter(|i| values.get(format!("k{i}")).is_none())
                    .collect();
                assert!(missing.is_empty(), "lost updates: keys {missing:?} of {n}");
                assert_eq!(values["started"], true);
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn six_concurrent_requests_setting_distinct_keys_keep_all_six() {
                distinct_keys_all_survive(6).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn thirty_two_concurrent_requests_setting_distinct_keys_keep_all() {
                distinct_keys_all_survive(32).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn a_hundred_concurrent_requests_setting_distinct_keys_keep_all() {
                distinct_keys_all_survive(100).await;
            }

            /// Two layers on one store stand for two processes behind a load balancer: their
            /// writers do not take turns, so only compare-and-set keeps the updates.
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn concurrent_requests_through_two_processes_keep_every_key() {
                let n = 32;
                let (store, _keep) = store().await;
                let race = Race::new(n);
                let idle = Duration::from_secs(300);
                let processes = [
                    app(store.clone(), &race, SessionLimit::default(), idle),
                    app(store.clone(), &race, SessionLimit::default(), idle),
                ];
                let (response, _) = send(&processes[0], post_with("/start", None, "")).await;
                let cookie = cookie_pair(&response);
                let tasks: Vec<_> = (0..n)
                    .map(|i| {
                        let app = processes[i % 2].clone();
                        let request = post_with(&format!("/set/k{i}"), Some(&cookie), "");
                        tokio::spawn(async move { send(&app, request).await.0.status() })
                    })
                    .collect();
                for task in tasks {
                    assert_eq!(task.await.unwrap(), StatusCode::OK);
                }
                let (_, body) = send(&processes[1], get_with("/values", Some(&cookie))).await;
                let values = json_of(&body);
                let missing: Vec<usize> = (0..n)
                    .filter(|i| values.get(format!("k{i}")).is_none())
                    .collect();
                assert!(missing.is_empty(), "lost updates: keys {missing:?}");
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn two_concurrent_increments_give_two() {
                let (app, cookie, _store, _keep) = started(2).await;
                let statuses =
                    all_at_once(&app, 2, |_| post_with("/incr", Some(&cookie), "")).await;
                assert_eq!(statuses, [StatusCode::OK, StatusCode::OK]);
                let (_, body) = send(&app, get_with("/values", Some(&cookie))).await;
                assert_eq!(json_of(&body)["n"], 2, "{body}");
            }

            /// A save whose reply is lost is sent again; another process's write lands in
            /// between, so the second try finds a record that is neither the one it expected
            /// nor its own. Its update had landed: it must not be applied again.
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn a_lost_save_reply_retried_after_another_write_applies_the_update_once() {
                let (store, _keep) = store().await;
                let probe = Probe::new(store);
                let idle = Duration::from_secs(300);
                let race = Race::new(1);
                let processes = [
                    app(probe.clone(), &race, SessionLimit::default(), idle),
                    app(probe.clone(), &race, SessionLimit::default(), idle),
                ];
                let (response, _) = send(&processes[0], post_with("/start", None, "")).await;
                let cookie = cookie_pair(&response);
                let lost = probe.lose_next_save_reply();
                let first = {
                    let (app, cookie) = (processes[0].clone(), cookie.clone());
                    tokio::spawn(
                        async move { send(&app, post_with("/bump", Some(&cookie), "")).await },
                    )
                };
                tokio::time::timeout(PATIENCE, lost.written)
                    .await
                    .unwrap()
                    .unwrap();
                let (other, _) = send(&processes[1], post_with("/bump", Some(&cookie), "")).await;
                assert_eq!(other.status(), StatusCode::OK);
                lost.resend.send(()).unwrap();
                let (first, _) = tokio::time::timeout(PATIENCE, first)
                    .await
                    .unwrap()
                    .unwrap();
                assert_eq!(first.status(), StatusCode::OK);
                let (_, body) = send(&processes[1], get_with("/values", Some(&cookie))).await;
                assert_eq!(json_of(&body)["n"], 2, "each increment lands once: {body}");
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn a_flash_added_while_another_request_consumes_flashes_survives() {
                let (app, cookie, _store, _keep) = started(2).await;
                let (consumer, adder) = {
                    let (app1, app2) = (app.clone(), app.clone());
                    let (c1, c2) = (cookie.clone(), cookie.clone());
                    (
                        tokio::spawn(async move {
                            send(&app1, post_with("/consume", Some(&c1), "")).await
                        }),
                        tokio::spawn(async move {
                            send(&app2, post_with("/flash/new", Some(&c2), "")).await
                        }),
                    )
                };
                let (consumed, shown) = consumer.await.unwrap();
                let (added, _) = adder.await.unwrap();
                assert_eq!(
                    (consumed.status(), added.status()),
                    (StatusCode::OK, StatusCode::OK)
                );
                assert_eq!(json_of(&shown), json!([["message", "old"]]));
                let (_, body) = send(&app, get_with("/values", Some(&cookie))).await;
                assert_eq!(
                    json_of(&body)["_flashes"],
                    json!([["message", "new"]]),
                    "the consumed one is gone, the concurrent one is kept"
                );
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn a_write_racing_a_logout_leaves_no_key_behind() {
                let (store, _keep) = store().await;
                let race = Race::new(1);
                let app = app(
                    store.clone(),
                    &race,
                    SessionLimit::default(),
                    Duration::from_secs(300),
                );
                let (response, _) = send(&app, post_with("/start", None, "")).await;
                let cookie = cookie_pair(&response);
                let loaded = race.loaded.notified();
                let writer = {
                    let (app, cookie) = (app.clone(), cookie.clone());
                    tokio::spawn(async move {
                        send(&app, post_with("/set-after-gate", Some(&cookie), "")).await
                    })
                };
                bounded("the racing load", loaded).await;
                let (out, _) = send(&app, post_with("/logout", Some(&cookie), "")).await;
                assert_eq!(out.status(), StatusCode::OK);
                race.gate.notify_one();
                let (late, _) = writer.await.unwrap();
                assert_eq!(
                    late.status(),
                    StatusCode::CONFLICT,
                    "the late write is refused"
                );
                assert_eq!(
                    store.load(&key_of(&cookie), None).await.unwrap(),
                    None,
                    "no key left behind"
                );
            }

            /// Logs `user` in from a fresh browser; returns its cookie.
            async fn log_in(app: &Router, user: &str) -> String {
                let (response, body) =
                    send(app, post_with(&format!("/login/{user}"), None, "")).await;
                assert_eq!(response.status(), StatusCode::OK, "{body}");
                cookie_pair(&response)
            }

            async fn whoami(app: &Router, cookie: &str) -> String {
                send(app, get_with("/whoami", Some(cookie))).await.1
            }

            async fn devices(app: &Router, cookie: &str) -> Vec<Value> {
                let (_, body) = send(app, get_with("/devices", Some(cookie))).await;
                json_of(&body).as_array().unwrap().clone()
            }

            fn limited(max: usize, policy: LimitPolicy) -> SessionLimit {
                SessionLimit {
                    max: std::num::NonZeroUsize::new(max),
                    policy,
                }
            }

            #[tokio::test]
            async fn login_beyond_the_cap_evicts_the_oldest_session() {
                let (store, _keep) = store().await;
                let limit = limited(2, LimitPolicy::EvictOldest);
                let app = app(store, &Race::new(1), limit, Duration::from_secs(300));
                let who = user("evict");
                let first = log_in(&app, &who).await;
                next_millisecond().await;
                let second = log_in(&app, &who).await;
                assert_eq!(whoami(&app, &first).await, who);
                next_millisecond().await;
                let third = log_in(&app, &who).await;
                assert_eq!(whoami(&app, &first).await, "", "the oldest was ended");
                assert_eq!(whoami(&app, &second).await, who);
                assert_eq!(whoami(&app, &third).await, who);
                assert_eq!(devices(&app, &third).await.len(), 2);
            }

            #[tokio::test]
            async fn login_beyond_the_cap_is_refused_when_configured() {
                let (store, _keep) = store().await;
                let limit = limited(2, LimitPolicy::Refuse);
                let app = app(store, &Race::new(1), limit, Duration::from_secs(300));
                let who = user("refuse");
                let first = log_in(&app, &who).await;
                log_in(&app, &who).await;
                let (refused, body) =
                    send(&app, post_with(&format!("/login/{who}"), None, "")).await;
                assert_eq!(refused.status(), StatusCode::CONFLICT, "{body}");
                assert!(body.contains("the most allowed"), "{body}");
                assert!(refused.headers().get("set-cookie").is_none());
                assert_eq!(whoami(&app, &first).await, who, "nobody was logged out");
                assert_eq!(devices(&app, &first).await.len(), 2);
            }

            #[tokio::test]
            async fn end_others_leaves_exactly_the_current_session() {
                let (store, _keep) = store().await;
                let app = app(
                    store,
                    &Race::new(1),
                    SessionLimit::default(),
                    Duration::from_secs(300),
                );
                let who = user("others");
                let cookies = [
                    log_in(&app, &who).await,
                    log_in(&app, &who).await,
                    log_in(&app, &who).await,
                ];
                let bystander = log_in(&app, &user("bystander")).await;
                assert_eq!(devices(&app, &cookies[1]).await.len(), 3);
                let (_, ended) = send(&app, post_with("/end-others", Some(&cookies[1]), "")).await;
                assert_eq!(ended, "2");
                let left = devices(&app, &cookies[1]).await;
                assert_eq!(left.len(), 1);
                assert_eq!(left[0]["current"], true);
                assert_eq!(whoami(&app, &cookies[0]).await, "");
                assert_eq!(whoami(&app, &cookies[2]).await, "");
                assert_eq!(whoami(&app, &cookies[1]).await, who);
                assert_ne!(
                    whoami(&app, &bystander).await,
                    "",
                    "another user is untouched"
                );
            }

            #[tokio::test]
            async fn an_idled_out_session_leaves_the_list_and_its_index_entry() {
                let (store, _keep) = store().await;
                let probe = Probe::new(store);
                let idle = Duration::from_secs(1);
                let app = app(probe.clone(), &Race::new(1), SessionLimit::default(), idle);
                let who = user("idle");
                let _idle = log_in(&app, &who).await;
                let active = log_in(&app, &who).await;
                assert_eq!(devices(&app, &active).await.len(), 2);
                // The user's index itself, as the store holds it, not as a listing shows it.
                let slots = probe.stats.slots.lock().unwrap().clone();
                assert_eq!(slots.len(), 2, "two log-ins: {slots:?}");
                assert_eq!(slots[0], slots[1], "one user, one slot");
                let index = probe.inner.user_index().unwrap();
                assert_eq!(index.stored_members(&slots[0]).await.unwrap(), Some(2));
                let started = Instant::now();
                // Every look from the active session keeps it alive; the other idles out.
                while devices(&app, &active).await.len() != 1 {
                    assert!(started.elapsed() < PATIENCE, "still listed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                let left = devices(&app, &active).await;
                assert_eq!(left[0]["current"], true);
                let handle = DeviceId::parse(left[0]["handle"].as_str().unwrap()).unwrap();
                assert_eq!(handle.as_str().len(), 43);
                assert_eq!(
                    index.stored_members(&slots[0]).await.unwrap(),
                    Some(1),
                    "the idled-out session's member is gone from the index itself"
                );
            }
        }
    };
}

/// The Flask format's records are plain MessagePack, with nothing unique per write: its
/// compare-and-set token is the whole record, and concurrent requests still lose nothing.
#[cfg(feature = "flask")]
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn flask_format_sessions_lose_no_updates_either() {
    let n = 32;
    let store = portcullis::store::MemoryStore::new();
    let race = Race::new(n);
    let layer = SessionLayer::new(store, KeyRing::new(SECRET, &[]))
        .with_format(portcullis::session::Format::flask(b"the Flask app's key"));
    let app = Router::new()
        .route("/start", post(start))
        .route("/set/{key}", post(set_after_barrier))
        .route("/values", get(values))
        .route("/login/{user}", post(login))
        .route("/devices", get(devices))
        .layer(layer)
        .layer(Extension(race));
    let (response, _) = send(&app, post_with("/start", None, "")).await;
    let cookie = cookie_pair(&response);
    let statuses = all_at_once(&app, n, |i| {
        post_with(&format!("/set/k{i}"), Some(&cookie), "")
    })
    .await;
    assert!(
        statuses.iter().all(|s| *s == StatusCode::OK),
        "{statuses:?}"
    );
    let (_, body) = send(&app, get_with("/values", Some(&cookie))).await;
    let values = json_of(&body);
    assert!(
        (0..n).all(|i| values.get(format!("k{i}")).is_some()),
        "{body}"
    );
    // No per-user index in this format: listing is refused, not silently empty.
    let (logged_in, _) = send(&app, post_with("/login/flask-user", Some(&cookie), "")).await;
    let cookie = cookie_pair(&logged_in);
    let (listed, body) = send(&app, get_with("/devices", Some(&cookie))).await;
    assert_eq!(listed.status(), StatusCode::INTERNAL_SERVER_ERROR);
    assert!(body.contains("no per-user session index"), "{body}");
}

no_lost_updates!(memory, async {
    let store = portcullis::store::MemoryStore::new();
    (store, ())
});

#[cfg(unix)]
no_lost_updates!(file, async {
    let folder = tempfile::tempdir().unwrap();
    let store = portcullis::store::FileStore::open(folder.path().join("sessions")).unwrap();
    (store, folder)
});

#[cfg(feature = "redis")]
no_lost_updates!(redis, async {
    let store = RedisStore::connect(&RedisServer::shared().url(), PATIENT)
        .await
        .unwrap();
    (store, ())
});

// On Valkey 8.1+, every save of the session layer is the native `SET … IFEQ`.
#[cfg(feature = "redis")]
no_lost_updates!(valkey, async {
    let store = RedisStore::connect(&portcullis_testing::valkey::shared().url(), PATIENT)
        .await
        .unwrap();
    (store, ())
});

#[cfg(feature = "redis")]
no_lost_updates!(redis_cluster, async {
    let store = RedisStore::connect(&RedisCluster::shared().urls(), PATIENT)
        .await
        .unwrap();
    assert!(store.is_cluster());
    (store, ())
});
