//! The real binary on the `redis` profile with a real `redis-server`: two processes share
//! sessions and log-in limits through one Redis, and an outage (a frozen server, then a killed
//! and restarted one) fails closed with 503 and recovers by itself with the same cookie.
#![allow(clippy::unwrap_used)]

use std::time::{Duration, Instant};

use crate::support::{PASSWORD, SECRET, Site, client, post_form, register_and_log_in};
use portcullis_testing::redis::RedisServer;

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
    let redis = RedisServer::start();
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
    let redis = RedisServer::start();
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
    let log = site.log();
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
    let mut redis = RedisServer::start();
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
