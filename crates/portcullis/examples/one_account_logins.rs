//! Benchmark of review finding 2: one account logs in N times (default 10,000) against a real
//! `redis-server`, never sending its cookie back, while another user keeps using their
//! session. Prints the slowest Redis call of the run (`SLOWLOG`, every call logged) and the
//! other user's request latency.
//!
//! ```sh
//! cargo run --release -p portcullis --example one_account_logins -- 10000
//! PORTCULLIS_BENCH_CAP=none cargo run --release -p portcullis --example one_account_logins
//! ```
//!
//! `PORTCULLIS_BENCH_CAP`: `default` (the layer's default `SESSION_MAX_PER_USER`), `none`, or a
//! number. The log-ins go through the session layer itself, without the site's Argon2 check,
//! so this is the most one process can put on Redis; the results are in `docs/BENCHMARKS.md`.
#![allow(clippy::unwrap_used, clippy::print_stdout, clippy::expect_used)]

use std::num::NonZeroUsize;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Body;
use axum::http::Request;
use axum::routing::{get, post};
use portcullis::keys::KeyRing;
use portcullis::store::{RedisStore, RedisTimeouts, SessionLimit};
use portcullis::{Session, SessionError, SessionLayer};
use portcullis_testing::redis::{RedisServer, Reply};
use tower::ServiceExt;

/// Concurrent log-in requests of the attacking account.
const ATTACKERS: usize = 8;

async fn log_in(session: Session, user: String) -> Result<&'static str, SessionError> {
    session.regenerate().await?;
    session.set_user_id(Some(user)).await?;
    Ok("logged in")
}

async fn count(session: Session) -> Result<String, SessionError> {
    let n = session
        .update("n", |n: Option<u64>| Some(n.unwrap_or(0) + 1))
        .await?;
    Ok(n.unwrap_or(0).to_string())
}

async fn send(app: &Router, request: Request<Body>) -> Option<String> {
    let response = app.clone().oneshot(request).await.unwrap();
    assert!(response.status().is_success(), "{}", response.status());
    response
        .headers()
        .get("set-cookie")
        .map(|v| v.to_str().unwrap().split(';').next().unwrap().to_owned())
}

fn log_in_request(user: &str) -> Request<Body> {
    Request::post("/log-in")
        .body(Body::from(user.to_owned()))
        .unwrap()
}

fn limit() -> SessionLimit {
    let mut limit = SessionLimit::default();
    match std::env::var("PORTCULLIS_BENCH_CAP").as_deref() {
        Err(_) | Ok("default") => {}
        Ok("none") => limit.max = None,
        Ok(n) => limit.max = Some(n.parse::<NonZeroUsize>().expect("a cap from 1")),
    }
    limit
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i]
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let logins: usize = std::env::args()
        .nth(1)
        .map_or(10_000, |n| n.parse().expect("a number of log-ins"));
    let redis = RedisServer::start();
    let timeouts = RedisTimeouts {
        connect: Duration::from_secs(5),
        response: Duration::from_secs(5),
    };
    let store = RedisStore::connect(&redis.url(), timeouts).await.unwrap();
    let limit = limit();
    println!("log-ins: {logins}, SESSION_MAX_PER_USER: {:?}", limit.max);
    let layer = SessionLayer::new(
        store,
        KeyRing::new(b"the bench's secret key, 32 bytes+", &[]),
    )
    .with_session_limit(limit);
    let app = Router::new()
        .route("/log-in", post(log_in))
        .route("/count", get(count))
        .layer(layer);
    let bob = send(&app, log_in_request("bob")).await.unwrap();
    redis.command(&["CONFIG", "SET", "slowlog-log-slower-than", "0"]);
    redis.command(&["CONFIG", "SET", "slowlog-max-len", "1000000"]);
    redis.command(&["SLOWLOG", "RESET"]);

    let done = Arc::new(AtomicBool::new(false));
    let other_user = {
        let (app, done) = (app.clone(), Arc::clone(&done));
        tokio::spawn(async move {
            let mut latencies = Vec::new();
            while !done.load(Ordering::Relaxed) {
                let started = Instant::now();
                let request = Request::get("/count")
                    .header("cookie", &bob)
                    .body(Body::empty())
                    .unwrap();
                send(&app, request).await;
                latencies.push(started.elapsed());
            }
            latencies
        })
    };
    let started = Instant::now();
    let attackers: Vec<_> = (0..ATTACKERS)
        .map(|i| {
            let app = app.clone();
            let share = logins / ATTACKERS + usize::from(i < logins % ATTACKERS);
            tokio::spawn(async move {
                for _ in 0..share {
                    send(&app, log_in_request("mallory")).await;
                }
            })
        })
        .collect();
    for attacker in attackers {
        attacker.await.unwrap();
    }
    let elapsed = started.elapsed();
    done.store(true, Ordering::Relaxed);
    let mut latencies = other_user.await.unwrap();
    latencies.sort();

    let Reply::Array(entries) = redis.command(&["SLOWLOG", "GET", "-1"]) else {
        panic!("SLOWLOG GET did not answer an array");
    };
    let mut slowest = (0_i64, String::new());
    for entry in &entries {
        let Reply::Array(fields) = entry else {
            continue;
        };
        let (Some(Reply::Integer(micros)), Some(Reply::Array(args))) =
            (fields.get(2), fields.get(3))
        else {
            continue;
        };
        if *micros > slowest.0 {
            let name = match args.first() {
                Some(Reply::Bulk(name)) => String::from_utf8_lossy(name).into_owned(),
                _ => String::new(),
            };
            slowest = (*micros, name);
        }
    }
    let Reply::Integer(members) = redis.command(&["EVAL", "local n = 0 for _, k in ipairs(redis.call('KEYS', 'sess:idx:*')) do n = math.max(n, redis.call('ZCARD', k)) end return n", "0"]) else {
        panic!("EVAL did not answer an integer");
    };
    println!("{logins} log-ins in {:.1} s", elapsed.as_secs_f64());
    println!("Redis calls logged: {}", entries.len());
    println!("slowest Redis call: {} µs ({})", slowest.0, slowest.1);
    println!("largest user index: {members} members");
    println!(
        "other user's requests: {}, p50 {:?}, p99 {:?}, max {:?}",
        latencies.len(),
        percentile(&latencies, 0.5),
        percentile(&latencies, 0.99),
        latencies.last().unwrap()
    );
}
