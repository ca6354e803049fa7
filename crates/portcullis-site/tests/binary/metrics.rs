//! The metrics as an operator reads them: the real binary with `METRICS_BIND`, each event
//! caused for real and the exposition scraped and parsed, every delta exact where the event is
//! (a tampered cookie moves the bad-signature counter by one, a frozen Redis sets the
//! availability gauge to 0 and back); the exposition passes `promtool check metrics`; and a
//! real Prometheus server scrapes the listener and answers a query for a Portcullis series.
//!
//! A recorder is process-wide, so each test starts its own binary; the events that need a race
//! or a moved clock are caused in-process (`crates/portcullis/tests/metrics.rs`).
#![allow(clippy::unwrap_used)]

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use portcullis_testing::prometheus::PrometheusServer;
use portcullis_testing::redis::{RedisServer, Reply};

use crate::support::{PASSWORD, SECRET, Site, client};

/// The session cookie's name on the `redis` profile (Secure, no Domain, Path `/`).
const COOKIE: &str = "__Host-session";
/// The longest a test polls for a condition.
const PATIENCE: Duration = Duration::from_secs(20);

/// The metrics listener's address, from the site's start-up line.
fn metrics_addr(site: &Site) -> SocketAddr {
    let log = site.log();
    let rest = log
        .split_once("metrics on http://")
        .unwrap_or_else(|| panic!("no metrics line in the log:\n{log}"))
        .1;
    rest.split('/').next().unwrap().parse().unwrap()
}

/// One scrape: its `Content-Type` and text.
async fn scrape_text(site: &Site) -> (String, String) {
    let url = format!("http://{}/metrics", metrics_addr(site));
    let response = client().get(url).send().await.unwrap();
    assert_eq!(response.status(), 200);
    let content_type = response.headers()["content-type"]
        .to_str()
        .unwrap()
        .to_owned();
    (content_type, response.text().await.unwrap())
}

/// One scrape as `series -> value`, each series written as rendered (`name{a="b"}`).
async fn scrape(site: &Site) -> HashMap<String, f64> {
    let (_, text) = scrape_text(site).await;
    text.lines()
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

/// The `name=value` of the session cookie among a response's `Set-Cookie` headers.
fn session_cookie(response: &reqwest::Response) -> Option<String> {
    response
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().split(';').next().unwrap().to_owned())
        .find(|pair| pair.starts_with(&format!("{COOKIE}=")) && pair.len() > COOKIE.len() + 1)
}

/// Posts `fields` to `path` with a fresh CSRF token, as the client `from` (`X-Forwarded-For`,
/// believed from the loopback proxy); returns the response and the session cookie to use next.
async fn post_from(
    site: &Site,
    cookie: Option<&str>,
    path: &str,
    fields: &[(&str, &str)],
    from: &str,
) -> (reqwest::Response, Option<String>) {
    let mut request = client()
        .get(site.url("/api/csrf-token"))
        .header("x-forwarded-for", from);
    if let Some(cookie) = cookie {
        request = request.header("cookie", cookie);
    }
    let response = request.send().await.unwrap();
    let cookie = session_cookie(&response).or(cookie.map(str::to_owned));
    let cookies = response
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().split(';').next().unwrap().to_owned())
        .chain(cookie.clone())
        .collect::<Vec<_>>()
        .join("; ");
    let json: serde_json::Value = response.json().await.unwrap();
    let token = json["csrf_token"].as_str().unwrap().to_owned();
    let mut body: Vec<String> = fields
        .iter()
        .map(|(k, v)| format!("{k}={}", v.replace(' ', "+")))
        .collect();
    body.push(format!("csrf_token={token}"));
    let response = client()
        .post(site.url(path))
        .header("cookie", cookies)
        .header("x-forwarded-for", from)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(body.join("&"))
        .send()
        .await
        .unwrap();
    let next = session_cookie(&response).or(cookie);
    (response, next)
}

async fn me(site: &Site, cookie: Option<&str>) -> reqwest::StatusCode {
    let mut request = client().get(site.url("/api/me"));
    if let Some(cookie) = cookie {
        request = request.header("cookie", cookie);
    }
    request.send().await.unwrap().status()
}

/// The session keys (`sess:*`) in Redis.
fn session_keys(redis: &RedisServer) -> Vec<String> {
    let Reply::Array(keys) = redis.command(&["KEYS", "sess:*"]) else {
        panic!("KEYS did not answer an array");
    };
    keys.into_iter()
        .map(|key| match key {
            Reply::Bulk(bytes) => String::from_utf8(bytes).unwrap(),
            other => panic!("a key: {other:?}"),
        })
        .collect()
}

/// Asserts that `series` moved by exactly `by` between the scrapes.
#[track_caller]
fn assert_moved(
    before: &HashMap<String, f64>,
    after: &HashMap<String, f64>,
    series: &str,
    by: f64,
) {
    assert_eq!(delta(before, after, series), by, "{series}");
}

#[tokio::test]
async fn each_site_and_session_event_moves_its_metric_exactly_and_promtool_accepts_the_scrape() {
    let redis = RedisServer::start();
    let dir = tempfile::tempdir().unwrap();
    let url = redis.url();
    let site = Site::start(
        dir.path(),
        &[
            ("PORTCULLIS_PROFILE", "redis"),
            ("SECRET_KEY", SECRET),
            ("REDIS_URL", url.as_str()),
            ("METRICS_BIND", "127.0.0.1:0"),
            ("LOGIN_RATE_LIMIT", "3/3m"),
            ("TRUSTED_PROXIES", "127.0.0.1"),
            // Every password check that finds both hashing threads busy is refused at once.
            ("PASSWORD_HASH_QUEUE", "0"),
        ],
    );

    // The exposition format and its first series.
    let (content_type, text) = scrape_text(&site).await;
    assert_eq!(content_type, "text/plain; version=0.0.4; charset=utf-8");
    assert!(
        text.contains("portcullis_site_password_hash_queue_depth 0"),
        "{text}"
    );

    // Registration and log-in.
    let s0 = scrape(&site).await;
    let fields = [
        ("name", "erin"),
        ("password", PASSWORD),
        ("confirm", PASSWORD),
    ];
    let (response, _) = post_from(&site, None, "/register", &fields, "10.0.0.1").await;
    assert_eq!(response.status(), 303);
    let taken = post_from(&site, None, "/register", &fields, "10.0.0.1")
        .await
        .0;
    assert_eq!(taken.status(), 409);
    let s1 = scrape(&site).await;
    assert_moved(
        &s0,
        &s1,
        r#"portcullis_site_registrations_total{outcome="created"}"#,
        1.0,
    );
    assert_moved(
        &s0,
        &s1,
        r#"portcullis_site_registrations_total{outcome="refused"}"#,
        1.0,
    );
    let log_in = [("name", "erin"), ("password", PASSWORD)];
    let (response, erin) = post_from(&site, None, "/login", &log_in, "10.0.0.1").await;
    assert_eq!(response.status(), 303);
    let erin = erin.unwrap();
    let s2 = scrape(&site).await;
    assert_moved(
        &s1,
        &s2,
        r#"portcullis_site_logins_total{outcome="success"}"#,
        1.0,
    );
    assert_moved(&s1, &s2, "portcullis_sessions_created_total", 1.0);
    let index_creates =
        r#"portcullis_store_operation_duration_seconds_count{store="redis",op="index_create"}"#;
    assert_moved(&s1, &s2, index_creates, 1.0);
    assert!(s2["portcullis_session_record_size_bytes_count"] >= 1.0);

    // Failures, then the limit (3 per name).
    let wrong = [("name", "erin"), ("password", "not the password")];
    for _ in 0..3 {
        let response = post_from(&site, None, "/login", &wrong, "10.0.0.2").await.0;
        assert_eq!(response.status(), 401);
    }
    let response = post_from(&site, None, "/login", &wrong, "10.0.0.2").await.0;
    assert_eq!(response.status(), 429);
    let s3 = scrape(&site).await;
    assert_moved(
        &s2,
        &s3,
        r#"portcullis_site_logins_total{outcome="failure"}"#,
        3.0,
    );
    assert_moved(
        &s2,
        &s3,
        r#"portcullis_site_logins_total{outcome="rate_limited"}"#,
        1.0,
    );

    // A burst of log-ins with no room to queue: some are refused at once, and the queue's
    // gauge is back to 0 after.
    let burst = (0..16).map(|i| {
        let name = format!("nobody{i}");
        let from = format!("10.0.1.{i}");
        let site = &site;
        async move {
            let fields = [("name", name.as_str()), ("password", "a guess")];
            post_from(site, None, "/login", &fields, &from)
                .await
                .0
                .status()
        }
    });
    let statuses = futures_util::future::join_all(burst).await;
    let s4 = scrape(&site).await;
    let busy = delta(&s3, &s4, r#"portcullis_site_logins_total{outcome="busy"}"#);
    let failed = delta(
        &s3,
        &s4,
        r#"portcullis_site_logins_total{outcome="failure"}"#,
    );
    assert_eq!(busy + failed, 16.0, "{statuses:?}");
    assert_eq!(
        busy,
        statuses.iter().filter(|s| s.as_u16() == 503).count() as f64
    );
    assert!(
        busy >= 1.0,
        "two hashing threads, sixteen at once: {statuses:?}"
    );
    assert_eq!(s4["portcullis_site_password_hash_queue_depth"], 0.0);

    // Cookies refused, by reason: tampered, malformed, ended.
    let (name, value) = erin.split_once('=').unwrap();
    let (id, mac) = value.split_once('.').unwrap();
    let flipped = if mac.starts_with('A') { 'B' } else { 'A' };
    let tampered = format!("{name}={id}.{flipped}{}", &mac[1..]);
    assert_eq!(me(&site, Some(&tampered)).await, 401);
    assert_eq!(me(&site, Some(&format!("{COOKIE}=no-dot-here"))).await, 401);
    let refused =
        |reason: &str| format!(r#"portcullis_session_cookies_refused_total{{reason="{reason}"}}"#);
    let s5 = scrape(&site).await;
    assert_moved(&s4, &s5, &refused("bad_signature"), 1.0);
    assert_moved(&s4, &s5, &refused("malformed"), 1.0);

    // A new account's session (registering logs in), its record then altered, oversized and
    // removed in the store.
    let before_keys = session_keys(&redis);
    let fields = [
        ("name", "fay"),
        ("password", PASSWORD),
        ("confirm", PASSWORD),
    ];
    let (response, visitor) = post_from(&site, None, "/register", &fields, "10.0.0.3").await;
    assert_eq!(response.status(), 303);
    let visitor = visitor.unwrap();
    // Its record, not the user's new index (`sess:idx:…`) nor the marker that the anonymous
    // session it replaced has ended (`sess:ended:…`).
    let new_keys: Vec<String> = session_keys(&redis)
        .into_iter()
        .filter(|key| !before_keys.contains(key))
        .filter(|key| !key.starts_with("sess:idx:") && !key.starts_with("sess:ended:"))
        .collect();
    assert_eq!(new_keys.len(), 1, "{new_keys:?}");
    let key = new_keys[0].clone();
    // Its record altered in the store, then larger than any the site writes.
    redis.command(&["SET", &key, "not a sealed record", "KEEPTTL"]);
    assert_eq!(me(&site, Some(&visitor)).await, 401);
    let huge = "x".repeat(200 * 1024);
    redis.command(&["SET", &key, &huge, "KEEPTTL"]);
    assert_eq!(me(&site, Some(&visitor)).await, 401);
    redis.command(&["DEL", &key]);
    assert_eq!(me(&site, Some(&visitor)).await, 401);
    let s6 = scrape(&site).await;
    assert_moved(&s5, &s6, &refused("unreadable"), 1.0);
    assert_moved(&s5, &s6, &refused("oversize"), 1.0);
    // A record gone without a marker: idle expiry, as the pages say (`Ending`).
    assert_moved(&s5, &s6, &refused("idle"), 1.0);

    // Log-out, and a form without its CSRF token.
    let (response, _) = post_from(&site, Some(&erin), "/logout", &[], "10.0.0.1").await;
    assert_eq!(response.status(), 303);
    let forged = client()
        .post(site.url("/logout"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body("")
        .send()
        .await
        .unwrap();
    assert_eq!(forged.status(), 403);
    let s7 = scrape(&site).await;
    assert_moved(&s6, &s7, "portcullis_sessions_destroyed_total", 1.0);
    assert_moved(
        &s6,
        &s7,
        r#"portcullis_csrf_refusals_total{reason="missing"}"#,
        1.0,
    );
    let logout = r#"portcullis_http_requests_total{method="POST",route="/logout",status="403"}"#;
    assert_moved(&s6, &s7, logout, 1.0);
    // The logged-out cookie presented again is refused for the reason the page gives.
    assert_eq!(me(&site, Some(&erin)).await, 401);
    let s7b = scrape(&site).await;
    assert_moved(&s7, &s7b, &refused("logged_out"), 1.0);

    // HTTP requests by route template, never the path: an unknown path is `unmatched`.
    let response = client()
        .get(site.url("/no/such/page/12345"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 404);
    let s8 = scrape(&site).await;
    let unmatched =
        r#"portcullis_http_requests_total{method="GET",route="unmatched",status="404"}"#;
    assert_moved(&s7, &s8, unmatched, 1.0);
    let latency = r#"portcullis_http_request_duration_seconds_count{method="GET",route="unmatched",status_class="4xx"}"#;
    assert_moved(&s7, &s8, latency, 1.0);
    assert!(
        s8.keys()
            .all(|series| !series.contains("12345") && !series.contains("10.0.")),
        "no path and no address in a label"
    );

    // A frozen Redis: the gauge goes to 0 and the outage is counted; back to 1 after.
    let log_in = [("name", "fay"), ("password", PASSWORD)];
    let (response, fay) = post_from(&site, None, "/login", &log_in, "10.0.0.3").await;
    assert_eq!(response.status(), 303);
    let fay = fay.unwrap();
    let s9 = scrape(&site).await;
    assert_eq!(s9["portcullis_store_available"], 1.0);
    redis.pause();
    assert_eq!(me(&site, Some(&fay)).await, 503);
    let s10 = scrape(&site).await;
    assert_eq!(s10["portcullis_store_available"], 0.0);
    assert_moved(
        &s9,
        &s10,
        r#"portcullis_store_transitions_total{to="down"}"#,
        1.0,
    );
    let load_errors = r#"portcullis_store_operation_errors_total{store="redis",op="load"}"#;
    assert_moved(&s9, &s10, load_errors, 1.0);
    redis.resume();
    let start = Instant::now();
    while me(&site, Some(&fay)).await != 200 {
        assert!(start.elapsed() < PATIENCE, "the site did not recover");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let s11 = scrape(&site).await;
    assert_eq!(s11["portcullis_store_available"], 1.0);
    assert_moved(
        &s10,
        &s11,
        r#"portcullis_store_transitions_total{to="up"}"#,
        1.0,
    );

    // The whole exposition, every family present by now, as Prometheus's own linter sees it.
    let (_, text) = scrape_text(&site).await;
    let mut promtool = std::process::Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("promtool (scripts/test installs the prometheus package)");
    use std::io::Write;
    promtool
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let checked = promtool.wait_with_output().unwrap();
    assert!(
        checked.status.success(),
        "promtool check metrics:\n{}{}\n{text}",
        String::from_utf8_lossy(&checked.stdout),
        String::from_utf8_lossy(&checked.stderr)
    );
}

#[tokio::test]
async fn a_real_prometheus_scrapes_the_metrics_listener_and_answers_a_query() {
    let dir = tempfile::tempdir().unwrap();
    let site = Site::start(
        dir.path(),
        &[("SECRET_KEY", SECRET), ("METRICS_BIND", "127.0.0.1:0")],
    );
    let response = client().get(site.url("/")).send().await.unwrap();
    assert_eq!(response.status(), 200);
    let prometheus = PrometheusServer::start(&[metrics_addr(&site)]);
    let query = r#"portcullis_http_requests_total{route="/",status="200"}"#;
    let start = Instant::now();
    loop {
        let body: serde_json::Value = serde_json::from_str(&prometheus.query(query)).unwrap();
        assert_eq!(body["status"], "success", "{body}");
        if let Some(sample) = body["data"]["result"].as_array().and_then(|r| r.first()) {
            assert_eq!(sample["metric"]["job"], "portcullis");
            let value: f64 = sample["value"][1].as_str().unwrap().parse().unwrap();
            assert!(value >= 1.0, "{sample}");
            break;
        }
        assert!(
            start.elapsed() < PATIENCE,
            "no portcullis series in Prometheus; its log:\n{}",
            prometheus.log()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[test]
fn metrics_on_the_sites_own_port_are_refused_at_start_up() {
    let dir = tempfile::tempdir().unwrap();
    let output = crate::support::portcullis(dir.path())
        .args(["serve", "--bind", "127.0.0.1:18123"])
        .env("SECRET_KEY", SECRET)
        .env("METRICS_BIND", "127.0.0.1:18123")
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("METRICS_BIND=127.0.0.1:18123"), "{stderr}");
}

/// The per-user cap and a key rotation, through the binary: a log-in past
/// `SESSION_MAX_PER_USER` evicts the oldest session (the evicted counter moves by one), and
/// after a restart with a new `SECRET_KEY` and the old one in `SECRET_KEY_FALLBACKS`, a cookie
/// of before is verified by the fallback (its counter moves by one, then stays: the cookie is
/// re-issued under the new key).
#[tokio::test]
async fn the_cap_evicts_and_a_rotated_key_counts_its_fallback_through_the_binary() {
    let redis = RedisServer::start();
    let dir = tempfile::tempdir().unwrap();
    let url = redis.url();
    let env = |secret: &str, fallbacks: &str| {
        vec![
            ("PORTCULLIS_PROFILE".to_owned(), "redis".to_owned()),
            ("SECRET_KEY".to_owned(), secret.to_owned()),
            ("SECRET_KEY_FALLBACKS".to_owned(), fallbacks.to_owned()),
            ("REDIS_URL".to_owned(), url.clone()),
            ("METRICS_BIND".to_owned(), "127.0.0.1:0".to_owned()),
            ("SESSION_MAX_PER_USER".to_owned(), "1".to_owned()),
            ("TRUSTED_PROXIES".to_owned(), "127.0.0.1".to_owned()),
        ]
    };
    let start = |env: &[(String, String)]| {
        let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        Site::start(dir.path(), &env)
    };
    let mut site = start(&env(SECRET, ""));
    let fields = [
        ("name", "fern"),
        ("password", PASSWORD),
        ("confirm", PASSWORD),
    ];
    // Registering logs in: the user's one session.
    let (response, first) = post_from(&site, None, "/register", &fields, "10.0.0.1").await;
    assert_eq!(response.status(), 303);
    let first = first.unwrap();
    assert_eq!(me(&site, Some(&first)).await, 200);

    let s0 = scrape(&site).await;
    let log_in = [("name", "fern"), ("password", PASSWORD)];
    let (response, second) = post_from(&site, None, "/login", &log_in, "10.0.0.2").await;
    assert_eq!(response.status(), 303);
    let second = second.unwrap();
    let s1 = scrape(&site).await;
    assert_moved(&s0, &s1, "portcullis_sessions_evicted_total", 1.0);
    assert_eq!(me(&site, Some(&first)).await, 401, "the oldest was evicted");
    assert_eq!(me(&site, Some(&second)).await, 200);

    // The key rotated: the old one only verifies.
    site.terminate();
    assert!(site.wait().success());
    let rotated = format!("{SECRET}-rotated");
    let site = start(&env(&rotated, SECRET));
    let fallback = "portcullis_session_cookies_fallback_key_total";
    let s2 = scrape(&site).await;
    let response = client()
        .get(site.url("/api/me"))
        .header("cookie", &second)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200, "a cookie of before still logs in");
    let reissued = session_cookie(&response).expect("re-issued under the new key");
    let s3 = scrape(&site).await;
    assert_moved(&s2, &s3, fallback, 1.0);
    assert_eq!(me(&site, Some(&reissued)).await, 200);
    let s4 = scrape(&site).await;
    assert_moved(&s3, &s4, fallback, 0.0);
}

/// With `SESSION_LIMIT_POLICY=refuse`, a log-in past the cap is refused and counted as such.
#[tokio::test]
async fn a_log_in_refused_by_the_cap_is_counted_through_the_binary() {
    let dir = tempfile::tempdir().unwrap();
    let site = Site::start(
        dir.path(),
        &[
            ("SECRET_KEY", SECRET),
            ("METRICS_BIND", "127.0.0.1:0"),
            ("SESSION_MAX_PER_USER", "1"),
            ("SESSION_LIMIT_POLICY", "refuse"),
            ("TRUSTED_PROXIES", "127.0.0.1"),
        ],
    );
    let fields = [
        ("name", "gale"),
        ("password", PASSWORD),
        ("confirm", PASSWORD),
    ];
    // Registering logs in: the user's one session.
    let (response, _) = post_from(&site, None, "/register", &fields, "10.0.0.1").await;
    assert_eq!(response.status(), 303);
    let s0 = scrape(&site).await;
    let log_in = [("name", "gale"), ("password", PASSWORD)];
    let (response, _) = post_from(&site, None, "/login", &log_in, "10.0.0.2").await;
    assert_ne!(response.status(), 303, "the cap refuses a second session");
    let s1 = scrape(&site).await;
    assert_moved(
        &s0,
        &s1,
        r#"portcullis_site_logins_total{outcome="refused_by_cap"}"#,
        1.0,
    );
    assert_moved(
        &s0,
        &s1,
        r#"portcullis_site_logins_total{outcome="success"}"#,
        0.0,
    );
}
