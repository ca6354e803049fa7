//! The real binary on the `redis` profile with a real `redis-server`: two processes share
//! sessions and log-in limits through one Redis, and an outage (a frozen server, then a killed
//! and restarted one) fails closed with 503 and recovers by itself with the same cookie. The
//! sharing and the outages are run on a real `valkey-server` too (its native `SET … IFEQ`).
#![allow(clippy::unwrap_used)]

use std::time::{Duration, Instant};

use crate::support::{PASSWORD, SECRET, Site, client, portcullis, post_form, register_and_log_in};
use portcullis_testing::redis::RedisServer;
use portcullis_testing::valkey;

fn redis_site(dir: &std::path::Path, redis: &RedisServer, extra: &[(&str, &str)]) -> Site {
    let url = redis.url();
    let mut env = vec![
        ("PORTCULLIS_PROFILE", "redis"),
        ("SECRET_KEY", SECRET),
        ("REDIS_URL", url.as_str()),
    ];
    env.extend_from_slice(extra);
    Site::start(dir, &env)
}

async fn me(site: &Site, cookie: &str) -> reqwest::Response {
    client()
        .get(site.url("/api/me"))
        .header("cookie", cookie)
        .send()
        .await
        .unwrap()
}

async fn wrong_password(site: &Site, name: &str) -> reqwest::StatusCode {
    let (response, _) = post_form(
        site,
        None,
        "/login",
        &[("name", name), ("password", "not the password")],
    )
    .await;
    response.status()
}

#[tokio::test]
async fn two_site_processes_share_sessions_through_one_redis() {
    two_site_processes_share_sessions_through(RedisServer::start()).await;
}

#[tokio::test]
async fn two_site_processes_share_sessions_through_one_valkey() {
    two_site_processes_share_sessions_through(valkey::start()).await;
}

async fn two_site_processes_share_sessions_through(redis: RedisServer) {
    let dir = tempfile::tempdir().unwrap();
    let first = redis_site(dir.path(), &redis, &[]);
    let second = redis_site(dir.path(), &redis, &[]);
    let cookie = register_and_log_in(&first, "alice").await;

    let response = me(&second, &cookie).await;
    assert_eq!(response.status(), 200);
    let json: serde_json::Value = response.json().await.unwrap();
    assert_eq!(
        json["user"], "alice",
        "logged in through one process, known to the other"
    );

    // The cookie shows the user's routing tag only sealed, so the store key is found in
    // Redis: the one logged-in session, `sess:{tag}<hash>`.
    let portcullis_testing::redis::Reply::Array(keys) = redis.command(&["KEYS", "sess:{*"]) else {
        panic!("KEYS did not answer an array");
    };
    let [portcullis_testing::redis::Reply::Bulk(key)] = &keys[..] else {
        panic!("one logged-in session expected: {keys:?}");
    };
    let key = portcullis::store::StoreKey::from_string(String::from_utf8(key.clone()).unwrap());
    assert_eq!(
        redis.command(&["EXISTS", key.as_str()]),
        portcullis_testing::redis::Reply::Integer(1)
    );

    let (response, _) = post_form(&second, Some(&cookie), "/logout", &[]).await;
    assert_eq!(response.status(), 303);
    assert_eq!(
        me(&first, &cookie).await.status(),
        401,
        "logged out through the other"
    );
    assert_eq!(
        redis.command(&["EXISTS", key.as_str()]),
        portcullis_testing::redis::Reply::Integer(0),
        "the record is deleted on the server"
    );
}

#[tokio::test]
async fn failed_log_ins_are_counted_in_redis_across_processes() {
    let redis = RedisServer::start();
    let dir = tempfile::tempdir().unwrap();
    let limit = [("LOGIN_RATE_LIMIT", "3/3m")];
    let first = redis_site(dir.path(), &redis, &limit);
    let second = redis_site(dir.path(), &redis, &limit);
    register_and_log_in(&first, "bob").await;
    assert_eq!(wrong_password(&first, "bob").await, 401);
    assert_eq!(wrong_password(&second, "bob").await, 401);
    assert_eq!(wrong_password(&first, "bob").await, 401);
    let (response, _) = post_form(
        &second,
        None,
        "/login",
        &[("name", "bob"), ("password", PASSWORD)],
    )
    .await;
    assert_eq!(
        response.status(),
        429,
        "three failures over two processes reach the limit"
    );
    assert!(response.headers().contains_key("retry-after"));
}

#[tokio::test]
async fn a_frozen_redis_fails_closed_and_the_site_recovers_with_the_same_cookie() {
    a_frozen_server_fails_closed_and_the_site_recovers(RedisServer::start()).await;
}

#[tokio::test]
async fn a_frozen_valkey_fails_closed_and_the_site_recovers_with_the_same_cookie() {
    a_frozen_server_fails_closed_and_the_site_recovers(valkey::start()).await;
}

async fn a_frozen_server_fails_closed_and_the_site_recovers(redis: RedisServer) {
    let dir = tempfile::tempdir().unwrap();
    let site = redis_site(dir.path(), &redis, &[]);
    let cookie = register_and_log_in(&site, "carol").await;
    assert_eq!(me(&site, &cookie).await.status(), 200);

    redis.pause();
    let page = client()
        .get(site.url("/"))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 503);
    assert!(
        page.headers().get("set-cookie").is_none(),
        "the client's cookie is left alone"
    );
    assert!(
        page.text()
            .await
            .unwrap()
            .contains("temporarily unavailable")
    );
    for _ in 0..3 {
        let api = me(&site, &cookie).await;
        assert_eq!(api.status(), 503);
        assert!(api.headers().get("set-cookie").is_none());
        let json: serde_json::Value = api.json().await.unwrap();
        assert!(
            json["error"]
                .as_str()
                .unwrap()
                .contains("temporarily unavailable")
        );
    }
    let health = client().get(site.url("/healthz")).send().await.unwrap();
    assert_eq!(health.status(), 503);

    redis.resume();
    let response = me(&site, &cookie).await;
    assert_eq!(
        response.status(),
        200,
        "service resumes without a restart, same session"
    );
    let log = site.log_once_it_holds("session store reachable again");
    assert_eq!(
        log.matches("session store unreachable").count(),
        1,
        "one line per outage:\n{log}"
    );
    assert_eq!(
        log.matches("session store reachable again").count(),
        1,
        "{log}"
    );
}

#[tokio::test]
async fn a_killed_and_restarted_redis_keeps_its_sessions_and_the_site_recovers() {
    a_killed_and_restarted_server_keeps_its_sessions(RedisServer::start()).await;
}

#[tokio::test]
async fn a_killed_and_restarted_valkey_keeps_its_sessions_and_the_site_recovers() {
    a_killed_and_restarted_server_keeps_its_sessions(valkey::start()).await;
}

async fn a_killed_and_restarted_server_keeps_its_sessions(mut redis: RedisServer) {
    let dir = tempfile::tempdir().unwrap();
    let site = redis_site(dir.path(), &redis, &[]);
    let cookie = register_and_log_in(&site, "dave").await;
    // Persistence is Redis's job: SAVE stands in for its snapshot schedule.
    redis.command(&["SAVE"]);
    redis.stop();
    let down = me(&site, &cookie).await;
    assert_eq!(down.status(), 503);
    assert!(down.headers().get("set-cookie").is_none());

    redis.start_again();
    let start = Instant::now();
    loop {
        let status = me(&site, &cookie).await.status();
        if status == 200 {
            break;
        }
        assert_eq!(status, 503, "only 503 while reconnecting");
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "the site did not recover"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Checklist 19: the exact `Set-Cookie` of the production profile, byte for byte apart from
/// the signed value. The `__Host-` prefix (finding 6) means no sibling subdomain or plain-HTTP
/// page can plant a session cookie for this host.
#[tokio::test]
async fn the_production_session_cookie_is_exactly_host_prefixed_secure_httponly_and_lax() {
    let redis = RedisServer::start();
    let dir = tempfile::tempdir().unwrap();
    let site = redis_site(dir.path(), &redis, &[]);
    // The log-in form stores nothing: it carries its CSRF secret in the pre-session cookie,
    // `__Host-` as well, for the browser session only (finding 8).
    let form = client().get(site.url("/login")).send().await.unwrap();
    assert_eq!(form.status(), 200);
    let pre_session = form.headers()["set-cookie"].to_str().unwrap();
    let (pair, attributes) = pre_session.split_once("; ").unwrap();
    assert!(pair.starts_with("__Host-session-csrf="), "{pre_session}");
    assert_eq!(
        attributes, "HttpOnly; SameSite=Lax; Secure; Path=/",
        "{pre_session}"
    );
    // The log-in sets the session cookie itself.
    let fields = [
        ("name", "erin"),
        ("password", PASSWORD),
        ("confirm", PASSWORD),
    ];
    let (registered, _) = post_form(&site, None, "/register", &fields).await;
    assert_eq!(registered.status(), 303);
    let log_in = [("name", "erin"), ("password", PASSWORD)];
    let (response, _) = post_form(&site, None, "/login", &log_in).await;
    assert_eq!(response.status(), 303);
    let header = response
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|value| value.to_str().unwrap())
        .find(|value| value.starts_with("__Host-session="))
        .unwrap_or_else(|| panic!("no session cookie: {:?}", response.headers()));
    let (name, rest) = header.split_once('=').unwrap();
    let (value, attributes) = rest.split_once("; ").unwrap();
    assert_eq!(name, "__Host-session", "{header}");
    // A logged-in id carries its routing tag; the MAC is HMAC-SHA256, 43 characters.
    let (id, mac) = value.rsplit_once('.').unwrap();
    assert_eq!(mac.len(), 43, "{header}");
    assert!(id.len() >= 43 && value.len() < 200, "{header}");
    assert!(
        value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.~".contains(&b)),
        "{header}"
    );
    let (fixed, expires) = attributes.split_once("; Expires=").unwrap();
    assert_eq!(
        fixed, "HttpOnly; SameSite=Lax; Secure; Path=/; Max-Age=300",
        "{header}"
    );
    // `Expires` repeats `Max-Age` for old browsers: the response's `Date` plus 300 s.
    let date = response.headers()["date"].to_str().unwrap();
    let ahead = imf_fixdate(expires)
        .duration_since(imf_fixdate(date))
        .unwrap();
    assert!(
        (299..=301).contains(&ahead.as_secs()),
        "{header} (Date: {date})"
    );
}

/// An HTTP date (`Tue, 01 Dec 2026 22:04:26 GMT`, RFC 9110's IMF-fixdate), strictly.
fn imf_fixdate(text: &str) -> std::time::SystemTime {
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let parts: Vec<&str> = text.split(' ').collect();
    assert!(
        parts.len() == 6 && parts[0].len() == 4 && parts[0].ends_with(',') && parts[5] == "GMT",
        "not an IMF-fixdate: {text:?}"
    );
    let month = MONTHS.iter().position(|m| *m == parts[2]).unwrap() + 1;
    let rfc3339 = format!("{}-{month:02}-{}T{}Z", parts[3], parts[1], parts[4]);
    humantime::parse_rfc3339(&rfc3339).unwrap_or_else(|e| panic!("{text:?}: {e}"))
}

/// Finding 6: `serve` logs every warning that `portcullis config` prints, at start-up, so a
/// risky production setting shows in the service's log and not only to whoever runs `config`.
#[tokio::test]
async fn serve_logs_every_configuration_warning_at_start_up() {
    let redis = RedisServer::start();
    let dir = tempfile::tempdir().unwrap();
    let url = redis.url();
    let risky = [
        ("SESSION_COOKIE_SECURE", "false"),
        ("SESSION_COOKIE_HTTPONLY", "false"),
        ("WTF_CSRF_ENABLED", "false"),
    ];
    let output = portcullis(dir.path())
        .args(["config"])
        .envs([
            ("PORTCULLIS_PROFILE", "redis"),
            ("SECRET_KEY", SECRET),
            ("REDIS_URL", url.as_str()),
        ])
        .envs(risky)
        .output()
        .unwrap();
    assert!(output.status.success());
    let printed = String::from_utf8_lossy(&output.stdout).into_owned();
    let warnings: Vec<&str> = printed
        .lines()
        .filter_map(|line| line.strip_prefix("warning: "))
        .collect();
    assert_eq!(warnings.len(), 3, "{printed}");

    let site = redis_site(dir.path(), &redis, &risky);
    let log = site.log();
    for warning in warnings {
        assert!(
            log.lines()
                .any(|line| line.contains("WARN") && line.ends_with(warning)),
            "serve did not log {warning:?}; log:\n{log}"
        );
    }
}

#[tokio::test]
async fn disabling_an_account_and_ending_everyone_reach_the_sessions_in_redis() {
    let redis = RedisServer::start();
    let dir = tempfile::tempdir().unwrap();
    let site = redis_site(dir.path(), &redis, &[]);
    let alice = register_and_log_in(&site, "alice").await;
    let bob = register_and_log_in(&site, "bob").await;
    let url = redis.url();
    let env = [
        ("PORTCULLIS_PROFILE", "redis"),
        ("SECRET_KEY", SECRET),
        ("REDIS_URL", url.as_str()),
    ];
    let run = |args: &[&str]| {
        let output = portcullis(dir.path())
            .args(args)
            .envs(env)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
        assert!(output.status.success(), "{args:?}: {stderr}");
        String::from_utf8_lossy(&output.stdout).trim().to_owned()
    };

    assert_eq!(
        run(&["users", "disable", "--user", "alice"]),
        "disabled alice; ended 1 session(s)"
    );
    assert_eq!(me(&site, &alice).await.status(), 401);
    assert_eq!(me(&site, &bob).await.status(), 200, "only alice's");
    assert!(run(&["sessions", "end", "--everyone"]).starts_with("ended every session"));
    assert_eq!(me(&site, &bob).await.status(), 401);
}
