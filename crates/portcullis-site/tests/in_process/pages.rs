//! Pages, headers, the account forms and the JSON API, in-process; and the session keys a
//! Flask app would read.
#![allow(clippy::unwrap_used)]

use crate::harness::{PASSWORD, TestApp};
use axum::body::Body;
use axum::http::{Method, StatusCode};
use serde_json::json;

#[tokio::test]
async fn every_response_carries_the_security_headers() {
    let app = TestApp::new().await;
    let mut browser = app.logged_in("alice").await;
    for path in [
        "/",
        "/account",
        "/login",
        "/register",
        "/static/style.css",
        "/nowhere",
        "/api/me",
        "/healthz",
    ] {
        let page = browser.get(path).await;
        let csp = page.header("content-security-policy");
        assert!(csp.contains("script-src 'none'"), "{path}: {csp}");
        assert!(csp.contains("frame-ancestors 'none'"), "{path}");
        assert!(!csp.contains("unsafe-inline"), "{path}");
        assert_eq!(page.header("x-content-type-options"), "nosniff", "{path}");
        assert_eq!(page.header("referrer-policy"), "same-origin", "{path}");
        assert_eq!(page.header("x-frame-options"), "DENY", "{path}");
    }
    // Even the session layer's and CSRF layer's own refusals.
    let refused = browser.post_form_raw("/logout", &[]).await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN);
    assert!(
        refused
            .header("content-security-policy")
            .contains("script-src 'none'")
    );
}

#[tokio::test]
async fn pages_with_private_data_are_never_cached_and_the_stylesheet_may_be() {
    let app = TestApp::new().await;
    let mut browser = app.logged_in("bob").await;
    for path in ["/", "/account", "/api/me", "/api/prefs"] {
        let page = browser.get(path).await;
        assert_eq!(page.status, StatusCode::OK, "{path}");
        assert_eq!(page.header("cache-control"), "no-store", "{path}");
        assert_eq!(page.header("vary"), "Cookie", "{path}");
    }
    let css = browser.get("/static/style.css").await;
    assert_eq!(css.header("content-type"), "text/css; charset=utf-8");
    assert!(css.header("cache-control").starts_with("public"));
    assert!(css.body.contains("prefers-color-scheme"));
}

#[tokio::test]
async fn the_landing_page_gives_a_visitor_no_session() {
    let app = TestApp::new().await;
    let page = app.browser().get("/").await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(page.body.contains("Create an account"));
    assert!(
        page.headers.get("set-cookie").is_none(),
        "reading needs no cookie"
    );
    assert!(!page.body.contains("<script"), "no JavaScript at all");
    assert!(
        page.body.contains("name=\"viewport\""),
        "readable on a phone"
    );
}

#[tokio::test]
async fn unknown_paths_get_a_404_page() {
    let app = TestApp::new().await;
    let page = app.browser().get("/no/such/page").await;
    assert_eq!(page.status, StatusCode::NOT_FOUND);
    assert!(page.body.contains("There is no page at this address."));
}

#[tokio::test]
async fn api_me_is_401_json_until_logged_in() {
    let app = TestApp::new().await;
    let page = app.browser().get("/api/me").await;
    assert_eq!(page.status, StatusCode::UNAUTHORIZED);
    assert_eq!(page.json(), json!({"error": "not logged in"}));
    let mut browser = app.logged_in("carol").await;
    app.clock.advance(std::time::Duration::from_secs(10));
    let me = browser.get("/api/me").await.json();
    assert_eq!(
        me,
        json!({"user": "carol", "display_name": "carol", "seconds_left": 300})
    );
}

#[tokio::test]
async fn api_csrf_token_gives_a_token_that_the_header_accepts() {
    let app = TestApp::new().await;
    let mut browser = app.browser();
    let page = browser.get("/api/csrf-token").await;
    assert_eq!(page.status, StatusCode::OK);
    let token = page.json()["csrf_token"].as_str().unwrap().to_owned();
    assert!(token.len() > 100);
    for header in ["x-csrftoken", "x-csrf-token"] {
        let headers = [
            ("content-type", "application/json"),
            (header, token.as_str()),
        ];
        let page = browser
            .request(
                Method::PUT,
                "/api/prefs",
                &headers,
                Body::from(r#"{"devices_order":"started"}"#),
            )
            .await;
        assert_eq!(page.status, StatusCode::OK, "{header}: {}", page.body);
    }
}

#[tokio::test]
async fn api_prefs_keeps_known_preferences_and_refuses_the_rest_with_a_reason() {
    let app = TestApp::new().await;
    let mut browser = app.logged_in("dave").await;
    assert_eq!(
        browser.get("/api/prefs").await.json(),
        json!({"devices_order": "last-used", "devices_times": "relative"})
    );
    let page = browser
        .send_json(Method::PUT, "/api/prefs", r#"{"devices_order":"started"}"#)
        .await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    assert_eq!(
        page.json(),
        json!({"devices_order": "started", "devices_times": "relative"})
    );
    // A view option of the session, not the appearance: that is the account's.
    assert!(
        browser
            .get("/")
            .await
            .body
            .contains("data-theme=\"system\"")
    );

    let huge = format!(r#"{{"devices_order":"{}"}}"#, "x".repeat(5000));
    for (body, status, reason) in [
        (r#"{"colour":"red"}"#, 422, "unknown preference"),
        (
            r#"{"devices_order":"neon"}"#,
            422,
            "devices_order must be one of",
        ),
        (
            r#"{"devices_order":7}"#,
            422,
            "devices_order must be one of",
        ),
        ("[1,2]", 422, "JSON object"),
        ("{}", 422, "at least one"),
        ("{not json", 400, "not valid JSON"),
        (huge.as_str(), 413, ""),
    ] {
        let page = browser.send_json(Method::PUT, "/api/prefs", body).await;
        assert_eq!(page.status.as_u16(), status, "{body}: {}", page.body);
        if !reason.is_empty() {
            assert!(
                page.json()["error"].as_str().unwrap().contains(reason),
                "{}",
                page.body
            );
        }
    }
    assert_eq!(
        browser.get("/api/prefs").await.json()["devices_order"],
        "started",
        "unchanged by refusals"
    );
}

#[tokio::test]
async fn api_prefs_put_needs_the_csrf_header() {
    let app = TestApp::new().await;
    let mut browser = app.logged_in("erin").await;
    let headers = [("content-type", "application/json")];
    let page = browser
        .request(
            Method::PUT,
            "/api/prefs",
            &headers,
            Body::from(r#"{"devices_order":"started"}"#),
        )
        .await;
    assert_eq!(page.status, StatusCode::FORBIDDEN);
    assert_eq!(page.json()["error"], "The CSRF token is missing.");
    assert_eq!(
        browser.get("/api/prefs").await.json()["devices_order"],
        "last-used"
    );
}

#[tokio::test]
async fn the_display_name_form_changes_what_the_dashboard_shows() {
    let app = TestApp::new().await;
    let mut browser = app.logged_in("frank").await;
    let page = browser
        .post_form(
            "/account/display-name",
            &[("display_name", "  Frank <b>the</b> Tank  ")],
        )
        .await;
    assert_eq!(
        (page.status, page.location()),
        (StatusCode::SEE_OTHER, "/account")
    );
    let account = browser.get("/account").await;
    assert!(
        account
            .body
            .contains("Display name changed to Frank &lt;b&gt;the&lt;&#x2f;b&gt; Tank."),
        "{}",
        account.body
    );
    let dashboard = browser.get("/").await;
    assert!(
        dashboard
            .body
            .contains("Frank &lt;b&gt;the&lt;&#x2f;b&gt; Tank"),
        "escaped: {}",
        dashboard.body
    );

    let long = "n".repeat(65);
    for bad in ["   ", long.as_str(), "tab\there"] {
        let page = browser
            .post_form("/account/display-name", &[("display_name", bad)])
            .await;
        assert_eq!(page.status, StatusCode::UNPROCESSABLE_ENTITY, "{bad:?}");
        assert!(
            page.body.contains("Not saved: a display name"),
            "{}",
            page.body
        );
    }
}

#[tokio::test]
async fn the_appearance_form_sets_the_theme_and_refuses_unknown_values() {
    let app = TestApp::new().await;
    let mut browser = app.logged_in("gina").await;
    let page = browser
        .post_form(
            "/account/preferences",
            &[("theme", "dark"), ("density", "compact")],
        )
        .await;
    assert_eq!(page.status, StatusCode::SEE_OTHER);
    let account = browser.get("/account").await;
    assert!(
        account
            .body
            .contains("data-theme=\"dark\" data-density=\"compact\"")
    );
    assert!(account.body.contains("Appearance saved."));
    let page = browser
        .post_form(
            "/account/preferences",
            &[("theme", "neon"), ("density", "compact")],
        )
        .await;
    assert_eq!(page.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(page.body.contains("theme must be one of"));
}

#[tokio::test]
async fn hostile_input_gets_a_4xx_with_a_reason_never_a_5xx() {
    let app = TestApp::new().await;
    let mut browser = app.logged_in("hank").await;
    let long_name = "n".repeat(100_000);
    // (path, fields, status, reason shown): each refusal names what was wrong, so a 404 (a
    // route gone), a 403 or a 405 cannot pass for it.
    let missing = |field: &str| format!("missing field `{field}`");
    type Case<'a> = (&'a str, Vec<(&'a str, &'a str)>, StatusCode, String);
    let cases: Vec<Case<'_>> = vec![
        (
            "/login",
            vec![("name", "hank")],
            StatusCode::UNPROCESSABLE_ENTITY,
            missing("password"),
        ),
        (
            "/login",
            vec![("name", &long_name), ("password", "x")],
            StatusCode::UNAUTHORIZED,
            "Invalid user name or password.".to_owned(),
        ),
        (
            "/login",
            vec![("name", "\u{0}"), ("password", "\u{0}")],
            StatusCode::UNAUTHORIZED,
            "Invalid user name or password.".to_owned(),
        ),
        (
            "/register",
            vec![("name", "x")],
            StatusCode::UNPROCESSABLE_ENTITY,
            missing("password"),
        ),
        (
            "/register",
            vec![("name", &long_name), ("password", "x"), ("confirm", "y")],
            StatusCode::UNPROCESSABLE_ENTITY,
            "A user name has 3 to 32 characters.".to_owned(),
        ),
        (
            "/account/password",
            vec![("current", "x")],
            StatusCode::UNPROCESSABLE_ENTITY,
            missing("new_password"),
        ),
        (
            "/account/preferences",
            vec![("theme", "dark")],
            StatusCode::UNPROCESSABLE_ENTITY,
            missing("density"),
        ),
    ];
    for (path, fields, status, reason) in cases {
        let page = browser.post_form(path, &fields).await;
        assert_eq!(page.status, status, "{path} {fields:?}: {}", page.body);
        assert!(
            page.body.contains(&reason),
            "{path}: {reason:?} in {}",
            page.body
        );
    }
    // Hostile queries on the log-in page, as a visitor sees it: a bad `next` is dropped (the
    // form posts to no foreign place), a repeated parameter is a 400 that says so.
    let mut visitor = app.browser();
    for query in ["/login?next=%FF%FE", "/login?next=%"] {
        let page = visitor.get(query).await;
        assert_eq!(page.status, StatusCode::OK, "{query}: {}", page.body);
        assert!(
            page.body.contains("name=\"next\" value=\"\""),
            "{query}: {}",
            page.body
        );
    }
    let page = visitor.get("/login?expired=1&expired=2").await;
    assert_eq!(page.status, StatusCode::BAD_REQUEST, "{}", page.body);
    assert!(
        page.body.contains("duplicate field `expired`"),
        "{}",
        page.body
    );
    assert_eq!(browser.get("/api/me").await.json()["user"], "hank");
}

#[tokio::test]
async fn the_session_keeps_flask_login_and_flash_conventions() {
    let app = TestApp::new().await;
    let mut browser = app.browser();
    browser
        .post_form(
            "/register",
            &[
                ("name", "ivy"),
                ("password", PASSWORD),
                ("confirm", PASSWORD),
            ],
        )
        .await;
    let registered = app.peek(browser.cookie.as_deref().unwrap()).await;
    assert_eq!(
        registered["data"]["_flashes"],
        json!([[
            "message",
            "Welcome, ivy! Your account ivy is ready, and you are logged in."
        ]])
    );
    assert_eq!(registered["data"]["_user_id"], "1");
    browser.log_out().await;
    browser.log_in("ivy", PASSWORD).await;
    let session = app.peek(browser.cookie.as_deref().unwrap()).await;
    assert_eq!(
        session["data"]["_user_id"], "1",
        "Flask-Login's key, a string"
    );
    assert_eq!(session["user_id"], "1", "and in the sealed envelope");
    assert_eq!(session["data"]["_auth_hash"].as_str().unwrap().len(), 64);
    assert_eq!(
        session["data"]["_flashes"],
        json!([["message", "Welcome back, ivy!"]])
    );
}

#[tokio::test]
async fn healthz_answers_503_when_the_accounts_database_is_down() {
    let app = TestApp::new().await;
    let up = app.browser().get("/healthz").await;
    assert_eq!(up.status, StatusCode::OK, "{}", up.body);
    assert_eq!(up.json()["status"], "ok");

    app.state.users().close().await;
    let down = app.browser().get("/healthz").await;
    assert_eq!(
        down.status,
        StatusCode::SERVICE_UNAVAILABLE,
        "{}",
        down.body
    );
    assert_eq!(down.json()["status"], "unavailable");
    assert_eq!(down.json()["error"], "the accounts database failed");
}

#[tokio::test]
async fn the_appearance_is_kept_on_the_account_so_every_device_and_a_later_log_in_show_it() {
    let app = TestApp::new().await;
    let mut laptop = app.logged_in("ines").await;
    let mut phone = app.browser();
    let page = phone.log_in("ines", PASSWORD).await;
    assert_eq!(page.status, StatusCode::SEE_OTHER, "{}", page.body);
    assert!(phone.get("/").await.body.contains("data-theme=\"system\""));
    let page = laptop
        .post_form(
            "/account/preferences",
            &[("theme", "dark"), ("density", "compact")],
        )
        .await;
    assert_eq!(page.status, StatusCode::SEE_OTHER, "{}", page.body);
    let shown = "data-theme=\"dark\" data-density=\"compact\"";
    assert!(
        phone.get("/").await.body.contains(shown),
        "the other device"
    );
    let account = phone.get("/account").await;
    assert!(account.body.contains("<option value=\"dark\" selected>"));
    // A log-out (or an expiry) loses nothing; a visitor sees the defaults.
    laptop.log_out().await;
    let landing = laptop.get("/").await;
    assert!(landing.body.contains("data-theme=\"system\""), "a visitor");
    laptop.log_in("ines", PASSWORD).await;
    assert!(
        laptop.get("/").await.body.contains(shown),
        "the next log-in"
    );
}

#[tokio::test]
async fn the_dashboard_says_how_long_ago_the_session_started_with_the_utc_time_on_hover() {
    let app = TestApp::new().await;
    let mut browser = app.logged_in("jana").await;
    app.clock.advance(std::time::Duration::from_secs(180));
    let page = browser.get("/").await;
    let started = page.body.split("id=\"started\">").nth(1).unwrap();
    let started = &started[..started.find("</dd>").unwrap()];
    assert!(started.starts_with("<time datetime=\""), "{started}");
    assert!(started.contains(" UTC\">3 minutes ago</time>"), "{started}");
}

#[tokio::test]
async fn pages_and_api_answer_503_while_the_accounts_database_is_down() {
    let app = TestApp::new().await;
    let mut browser = app.logged_in("wren").await;
    app.state.users().close().await;
    let me = browser.get("/api/me").await;
    assert_eq!(me.status, StatusCode::SERVICE_UNAVAILABLE, "{}", me.body);
    assert_eq!(
        me.json()["error"],
        "the accounts database is unavailable; try again shortly"
    );
    let log_in = app.browser().log_in("wren", "correct horse battery").await;
    assert_eq!(
        log_in.status,
        StatusCode::SERVICE_UNAVAILABLE,
        "{}",
        log_in.body
    );
    assert!(
        log_in.body.contains("Accounts are temporarily unavailable"),
        "{}",
        log_in.body
    );
}
