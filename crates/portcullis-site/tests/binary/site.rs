//! The real binary as a person uses it: register, log in, the dashboard, failed log-ins counted
//! by the socket peer, logout, and an idle session expiring (a 1-second lifetime, polled).
#![allow(clippy::unwrap_used)]

use std::time::{Duration, Instant};

use crate::support::{Site, client, post_form, register_and_log_in};

async fn get(site: &Site, path: &str, cookie: &str) -> reqwest::Response {
    client()
        .get(site.url(path))
        .header("cookie", cookie)
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn the_real_site_registers_logs_in_shows_the_dashboard_and_logs_out() {
    let dir = tempfile::tempdir().unwrap();
    let site = Site::start(dir.path(), &[]);
    let cookie = register_and_log_in(&site, "alice").await;
    assert!(
        dir.path().join("portcullis.db").exists(),
        "DATABASE_URL's default"
    );

    let dashboard = get(&site, "/", &cookie).await;
    assert_eq!(dashboard.headers()["cache-control"], "no-store");
    assert!(
        dashboard.headers()["content-security-policy"]
            .to_str()
            .unwrap()
            .contains("script-src 'none'")
    );
    let body = dashboard.text().await.unwrap();
    assert!(
        body.contains("<strong id=\"user-name\">alice</strong>"),
        "{body}"
    );
    assert!(body.contains("id=\"seconds-left\""));

    let (response, _) = post_form(&site, Some(&cookie), "/logout", &[]).await;
    assert_eq!(response.headers()["location"], "/login?logged_out=1");
    let replay = get(&site, "/account", &cookie).await;
    assert_eq!(replay.status(), 303);
    assert!(
        replay.headers()["location"]
            .to_str()
            .unwrap()
            .starts_with("/login?next=/account")
    );
}

#[tokio::test]
async fn the_real_site_counts_failed_log_ins_by_the_socket_peer() {
    let dir = tempfile::tempdir().unwrap();
    let site = Site::start(dir.path(), &[("LOGIN_RATE_LIMIT", "2/1m")]);
    for name in ["x-one", "x-two"] {
        let (response, _) = post_form(
            &site,
            None,
            "/login",
            &[("name", name), ("password", "wrong")],
        )
        .await;
        assert_eq!(response.status(), 401);
    }
    let (response, _) = post_form(
        &site,
        None,
        "/login",
        &[("name", "x-three"), ("password", "wrong")],
    )
    .await;
    assert_eq!(response.status(), 429);
    let retry: u64 = response.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=60).contains(&retry), "{retry}");
    let log = site.log();
    assert!(
        log.contains("client=127.0.0.1"),
        "the peer address from ConnectInfo:\n{log}"
    );
    assert!(!log.contains("wrong"), "passwords are never logged");
}

#[tokio::test]
async fn an_idle_session_on_the_real_site_expires_and_the_login_page_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let site = Site::start(dir.path(), &[("PERMANENT_SESSION_LIFETIME", "1")]);
    let cookie = register_and_log_in(&site, "bob").await;
    let start = Instant::now();
    let location = loop {
        let response = get(&site, "/account", &cookie).await;
        if response.status() == 303 {
            break response.headers()["location"].to_str().unwrap().to_owned();
        }
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "the session never expired"
        );
        // A request slides the idle deadline; poll slowly enough for one second to pass.
        std::thread::sleep(Duration::from_millis(1100));
    };
    assert_eq!(location, "/login?next=/account&expired=1");
    let login = get(&site, &location, &cookie).await.text().await.unwrap();
    assert!(
        login.contains("Your session has expired. Please log in again."),
        "{login}"
    );
}
