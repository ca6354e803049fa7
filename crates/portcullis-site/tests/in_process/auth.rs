//! Registering, logging in and out, in-process: rules and refusals, session id regeneration,
//! the open-redirect guard, failed log-in limits, expiry messages, password changes.
#![allow(clippy::unwrap_used)]

use super::harness::{self, PASSWORD, TestApp};
use axum::body::Body;
use axum::http::{Method, StatusCode};

#[tokio::test]
async fn register_then_log_in_shows_the_dashboard_with_name_and_time_left() {
    let app = TestApp::new().await;
    let mut browser = app.browser();
    let page = browser.get("/register").await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(
        page.csrf_field().is_some(),
        "the form carries the CSRF field"
    );
    let page = browser
        .post_form(
            "/register",
            &[
                ("name", "Ada"),
                ("display_name", "Ada Lovelace"),
                ("password", PASSWORD),
                ("confirm", PASSWORD),
            ],
        )
        .await;
    assert_eq!((page.status, page.location()), (StatusCode::SEE_OTHER, "/"));
    let first = browser.get("/").await;
    assert!(
        first
            .body
            .contains("Welcome, Ada Lovelace! Your account Ada is ready, and you are logged in."),
        "registering logs in: {}",
        first.body
    );
    assert!(!first.body.contains("Welcome back"), "{}", first.body);

    browser.log_out().await;
    let page = browser.log_in("ada", PASSWORD).await;
    assert_eq!((page.status, page.location()), (StatusCode::SEE_OTHER, "/"));
    let dashboard = browser.get("/").await;
    assert!(
        dashboard.body.contains("Welcome back, Ada Lovelace!"),
        "{}",
        dashboard.body
    );
    assert!(
        dashboard
            .body
            .contains("<strong id=\"user-name\">Ada</strong>")
    );
    assert!(
        dashboard
            .body
            .contains("<strong id=\"seconds-left\">300</strong>"),
        "{}",
        dashboard.body
    );
    assert!(
        !browser.get("/").await.body.contains("Welcome back"),
        "a flash shows once"
    );
}

#[tokio::test]
async fn registration_refuses_bad_user_names_with_the_rule_broken() {
    let app = TestApp::new().await;
    let long = "x".repeat(33);
    for (name, rule) in [
        ("ab", "3 to 32 characters"),
        (long.as_str(), "3 to 32 characters"),
        ("ada lovelace", "only letters (of any alphabet), digits"),
        ("ada/../x", "only letters (of any alphabet), digits"),
        ("<script>", "only letters (of any alphabet), digits"),
        ("zo\u{2603}", "only letters (of any alphabet), digits"),
    ] {
        let page = app
            .browser()
            .post_form(
                "/register",
                &[
                    ("name", name),
                    ("password", PASSWORD),
                    ("confirm", PASSWORD),
                ],
            )
            .await;
        assert_eq!(page.status, StatusCode::UNPROCESSABLE_ENTITY, "{name}");
        assert!(page.body.contains(rule), "{name}: {}", page.body);
        assert!(
            !page.body.contains("<script>"),
            "the name is escaped when shown back"
        );
    }
}

#[tokio::test]
async fn registration_refuses_a_taken_name_in_any_case() {
    let app = TestApp::new().await;
    app.register("grace").await;
    let page = app
        .browser()
        .post_form(
            "/register",
            &[
                ("name", "GRACE"),
                ("password", PASSWORD),
                ("confirm", PASSWORD),
            ],
        )
        .await;
    assert_eq!(page.status, StatusCode::CONFLICT);
    assert!(
        page.body.contains("This user name is taken"),
        "{}",
        page.body
    );
}

#[tokio::test]
async fn registration_refuses_short_long_or_mismatched_passwords() {
    let app = TestApp::new().await;
    let long = "p".repeat(129);
    for (password, confirm, rule) in [
        ("short", "short", "8 to 128 characters"),
        (long.as_str(), long.as_str(), "8 to 128 characters"),
        (PASSWORD, "something else", "two passwords differ"),
    ] {
        let page = app
            .browser()
            .post_form(
                "/register",
                &[
                    ("name", "alan"),
                    ("password", password),
                    ("confirm", confirm),
                ],
            )
            .await;
        assert_eq!(page.status, StatusCode::UNPROCESSABLE_ENTITY);
        assert!(page.body.contains(rule), "{}", page.body);
    }
}

#[tokio::test]
async fn a_wrong_password_and_an_unknown_user_get_the_same_answer() {
    let app = TestApp::new().await;
    app.register("linus").await;
    let wrong = app.browser().log_in("linus", "not the password").await;
    let unknown = app.browser().log_in("nobody", PASSWORD).await;
    for page in [&wrong, &unknown] {
        assert_eq!(page.status, StatusCode::UNAUTHORIZED);
        assert!(
            page.body.contains("Invalid user name or password."),
            "{}",
            page.body
        );
    }
    let normal = |page: &harness::Page, name: &str| {
        let token = page.csrf_field().unwrap();
        page.body.replace(&token, "TOKEN").replace(name, "NAME")
    };
    assert_eq!(
        normal(&wrong, "linus"),
        normal(&unknown, "nobody"),
        "nothing else differs"
    );
}

#[tokio::test]
async fn login_regenerates_the_session_id_and_the_old_cookie_is_dead() {
    let app = TestApp::new().await;
    let mut browser = app.browser();
    app.register("ken").await;
    // An anonymous session stored by `PATCH /api/prefs`: the id a fixation would plant.
    let page = browser
        .send_json(Method::PATCH, "/api/prefs", r#"{"devices_order":"started"}"#)
        .await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    let before = browser.cookie.clone().unwrap();
    browser.log_in("ken", PASSWORD).await;
    let after = browser.cookie.clone().unwrap();
    assert_ne!(before, after);

    let mut attacker = app.browser();
    attacker.cookie = Some(before);
    let page = attacker.get("/account").await;
    assert_eq!(
        page.status,
        StatusCode::SEE_OTHER,
        "the pre-login id is dead"
    );
    assert!(page.location().starts_with("/login"));
    assert_eq!(browser.get("/account").await.status, StatusCode::OK);
}

#[tokio::test]
async fn login_rotates_the_csrf_secret() {
    let app = TestApp::new().await;
    app.register("dennis").await;
    let mut browser = app.browser();
    let old_token = browser.csrf_token().await;
    browser.log_in("dennis", PASSWORD).await;
    let page = browser
        .post_form_raw("/logout", &[("csrf_token", &old_token)])
        .await;
    assert_eq!(page.status, StatusCode::FORBIDDEN, "{}", page.body);
    assert!(
        page.body.contains("The CSRF tokens do not match."),
        "the logged-in session was created with a secret of its own: {}",
        page.body
    );
}

#[tokio::test]
async fn a_different_user_logging_in_gets_an_empty_session() {
    let app = TestApp::new().await;
    app.register("bob").await;
    let mut browser = app.logged_in("alice").await;
    app.write_raw(
        browser.cookie.as_deref().unwrap(),
        "cart",
        serde_json::json!("alice's"),
    )
    .await;
    browser.log_in("bob", PASSWORD).await;
    let session = app.peek(browser.cookie.as_deref().unwrap()).await;
    assert!(
        session["data"].get("cart").is_none(),
        "nothing of alice's is left: {session}"
    );
    assert_eq!(browser.get("/api/me").await.json()["user"], "bob");
}

#[tokio::test]
async fn the_same_user_logging_in_again_keeps_the_session_data() {
    let app = TestApp::new().await;
    let mut browser = app.logged_in("carol").await;
    app.write_raw(
        browser.cookie.as_deref().unwrap(),
        "cart",
        serde_json::json!(3),
    )
    .await;
    browser.log_in("carol", PASSWORD).await;
    let session = app.peek(browser.cookie.as_deref().unwrap()).await;
    assert_eq!(session["data"]["cart"], 3);
}

#[tokio::test]
async fn next_accepts_local_paths_only() {
    let app = TestApp::new().await;
    app.register("eve").await;
    for (next, expected) in [
        ("/account", "/account"),
        ("/account?tab=password", "/account?tab=password"),
        ("//evil.com", "/"),
        ("/\\evil.com", "/"),
        ("https://evil.com", "/"),
        ("/%2F%2Fevil.com", "/"),
        ("/%5Cevil.com", "/"),
        ("javascript:alert(1)", "/"),
    ] {
        let mut browser = app.browser();
        let page = browser
            .post_form(
                "/login",
                &[("name", "eve"), ("password", PASSWORD), ("next", next)],
            )
            .await;
        assert_eq!(page.status, StatusCode::SEE_OTHER);
        assert_eq!(page.location(), expected, "next={next}");
    }
    // The GET form never puts a foreign target into its hidden field either.
    let page = app.browser().get("/login?next=%2F%2Fevil.com").await;
    assert!(
        page.body.contains("name=\"next\" value=\"\""),
        "{}",
        page.body
    );
}

#[tokio::test]
async fn a_protected_page_without_a_session_asks_to_log_in_and_comes_back() {
    let app = TestApp::new().await;
    app.register("frank").await;
    let mut browser = app.browser();
    let page = browser.get("/account").await;
    assert_eq!(page.status, StatusCode::SEE_OTHER);
    assert_eq!(page.location(), "/login?next=/account");
    let login = browser.get(page.location()).await;
    assert!(login.body.contains("Please log in."), "{}", login.body);
    assert!(!login.body.contains("expired"));
    assert!(
        login.body.contains("name=\"next\" value=\"&#x2f;account\""),
        "{}",
        login.body
    );
    let page = browser
        .post_form(
            "/login",
            &[
                ("name", "frank"),
                ("password", PASSWORD),
                ("next", "/account"),
            ],
        )
        .await;
    assert_eq!(page.location(), "/account");
}

#[tokio::test]
async fn after_five_idle_minutes_a_protected_page_says_the_session_expired() {
    let app = TestApp::new().await;
    let mut browser = app.logged_in("grace").await;
    app.clock.advance(std::time::Duration::from_secs(299));
    assert_eq!(
        browser.get("/account").await.status,
        StatusCode::OK,
        "activity at 4:59 slides"
    );
    app.clock.advance(std::time::Duration::from_secs(299));
    assert_eq!(
        browser.get("/account").await.status,
        StatusCode::OK,
        "still alive at 9:58"
    );
    app.idle_out();
    let page = browser.get("/account").await;
    assert_eq!(page.status, StatusCode::SEE_OTHER);
    assert_eq!(page.location(), "/login?next=/account&expired=1");
    let login = browser.get(page.location()).await;
    assert!(
        login
            .body
            .contains("Your session has expired. Please log in again."),
        "{}",
        login.body
    );
    let api = browser.get("/api/me").await;
    assert_eq!(api.status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn failed_logins_are_limited_per_user_name_with_retry_after() {
    let app = TestApp::with_env(&[("LOGIN_RATE_LIMIT", "3/1m")]).await;
    app.register("heidi").await;
    for i in 0..3 {
        let mut browser = app.browser();
        browser.peer = format!("10.1.0.{i}:5000").parse().unwrap();
        assert_eq!(
            browser.log_in("heidi", "wrong").await.status,
            StatusCode::UNAUTHORIZED
        );
    }
    let mut browser = app.browser();
    browser.peer = "10.1.0.9:5000".parse().unwrap();
    let page = browser.log_in("HEIDI", PASSWORD).await;
    assert_eq!(
        page.status,
        StatusCode::TOO_MANY_REQUESTS,
        "even the right password waits"
    );
    assert_eq!(page.header("retry-after"), "60");
    assert!(
        page.body.contains("Too many failed log-ins"),
        "{}",
        page.body
    );
    assert_eq!(
        browser.get("/api/me").await.status,
        StatusCode::UNAUTHORIZED
    );

    app.clock.advance(std::time::Duration::from_secs(61));
    assert_eq!(
        browser.log_in("heidi", PASSWORD).await.status,
        StatusCode::SEE_OTHER
    );
}

#[tokio::test]
async fn failed_logins_are_limited_per_client_address() {
    let app = TestApp::with_env(&[("LOGIN_RATE_LIMIT", "3/1m")]).await;
    app.register("ivan").await;
    for name in ["a-one", "a-two", "a-three"] {
        assert_eq!(
            app.browser().log_in(name, "wrong").await.status,
            StatusCode::UNAUTHORIZED
        );
    }
    let page = app.browser().log_in("ivan", PASSWORD).await;
    assert_eq!(page.status, StatusCode::TOO_MANY_REQUESTS);
    let mut elsewhere = app.browser();
    elsewhere.peer = "192.0.2.7:1234".parse().unwrap();
    assert_eq!(
        elsewhere.log_in("ivan", PASSWORD).await.status,
        StatusCode::SEE_OTHER
    );
}

#[tokio::test]
async fn forwarded_for_counts_only_behind_a_trusted_proxy() {
    let app = TestApp::with_env(&[
        ("LOGIN_RATE_LIMIT", "2/1m"),
        ("TRUSTED_PROXIES", "10.0.0.1"),
    ])
    .await;
    let attempt = async |peer: &str, forwarded: &str, name: &str| {
        let mut browser = app.browser();
        browser.peer = peer.parse().unwrap();
        let token = browser.csrf_token().await;
        let body = harness::form_body(&[("name", name), ("password", "x"), ("csrf_token", &token)]);
        let headers = [
            ("content-type", "application/x-www-form-urlencoded"),
            ("x-forwarded-for", forwarded),
        ];
        browser
            .request(Method::POST, "/login", &headers, body.into())
            .await
            .status
    };
    // Behind the proxy, each forwarded client has its own count.
    for (i, client) in ["198.51.100.1", "198.51.100.1", "198.51.100.2"]
        .iter()
        .enumerate()
    {
        let status = attempt(
            "10.0.0.1:80",
            &format!("6.6.6.6, {client}"),
            &format!("n{i}"),
        )
        .await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
    }
    assert_eq!(
        attempt("10.0.0.1:80", "198.51.100.1", "n9").await,
        StatusCode::TOO_MANY_REQUESTS
    );
    assert_eq!(
        attempt("10.0.0.1:80", "198.51.100.2", "n8").await,
        StatusCode::UNAUTHORIZED
    );
    // A client that is not the proxy cannot choose its address.
    for i in 0..2 {
        let status = attempt(
            "203.0.113.5:80",
            &format!("198.51.100.{}", 50 + i),
            &format!("m{i}"),
        )
        .await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
    }
    assert_eq!(
        attempt("203.0.113.5:80", "198.51.100.99", "m9").await,
        StatusCode::TOO_MANY_REQUESTS
    );
}

#[tokio::test]
async fn logout_destroys_the_session_and_replaying_the_cookie_gets_the_login_page() {
    let app = TestApp::new().await;
    let mut browser = app.logged_in("judy").await;
    let cookie = browser.cookie.clone().unwrap();
    let page = browser.log_out().await;
    assert_eq!(page.status, StatusCode::SEE_OTHER);
    assert_eq!(page.location(), "/login?logged_out=1");
    assert_eq!(
        page.header("clear-site-data"),
        "\"cache\"",
        "the device cookie stays: no \"cookies\""
    );
    assert!(
        page.header("set-cookie").contains("Max-Age=0"),
        "{:?}",
        page.headers
    );
    assert_eq!(page.header("cache-control"), "no-store");
    let login = browser.get(page.location()).await;
    assert!(
        login.body.contains("You have been logged out."),
        "{}",
        login.body
    );

    let mut replay = app.browser();
    replay.cookie = Some(cookie);
    let page = replay.get("/account").await;
    assert_eq!(page.status, StatusCode::SEE_OTHER);
    assert!(
        page.location().starts_with("/login?next=/account"),
        "{}",
        page.location()
    );
    assert_eq!(replay.get("/api/me").await.status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn logout_is_post_only() {
    let app = TestApp::new().await;
    let mut browser = app.logged_in("ken").await;
    assert_eq!(
        browser.get("/logout").await.status,
        StatusCode::METHOD_NOT_ALLOWED
    );
    assert_eq!(
        browser.get("/api/me").await.status,
        StatusCode::OK,
        "still logged in"
    );
}

#[tokio::test]
async fn forms_without_a_csrf_token_are_refused() {
    let app = TestApp::new().await;
    let mut browser = app.logged_in("mallory").await;
    for path in [
        "/login",
        "/register",
        "/logout",
        "/account/display-name",
        "/account/password",
        "/account/preferences",
    ] {
        let page = browser.post_form_raw(path, &[("display_name", "x")]).await;
        assert_eq!(page.status, StatusCode::FORBIDDEN, "{path}");
        assert!(
            page.body.contains("The CSRF token is missing."),
            "{path}: {}",
            page.body
        );
        // The CSRF layer refuses before routing: prove the route is there.
        harness::assert_routed(&app, path).await;
    }
    browser.get("/account").await;
    let page = browser
        .post_form_raw("/logout", &[("csrf_token", "forged")])
        .await;
    assert_eq!(page.status, StatusCode::FORBIDDEN);
    assert!(
        page.body.contains("The CSRF token is invalid."),
        "{}",
        page.body
    );
    assert_eq!(
        browser.get("/api/me").await.status,
        StatusCode::OK,
        "still logged in"
    );
}

#[tokio::test]
async fn a_cross_site_form_post_is_refused() {
    let app = TestApp::new().await;
    let mut browser = app.logged_in("oscar").await;
    let token = browser.csrf_token().await;
    let body = harness::form_body(&[("csrf_token", &token)]);
    let headers = [
        ("content-type", "application/x-www-form-urlencoded"),
        ("sec-fetch-site", "cross-site"),
    ];
    let page = browser
        .request(Method::POST, "/logout", &headers, body.into())
        .await;
    assert_eq!(page.status, StatusCode::FORBIDDEN);
    assert!(
        page.body.contains("Cross-origin request refused."),
        "{}",
        page.body
    );
    assert_eq!(browser.get("/api/me").await.status, StatusCode::OK);
    harness::assert_routed(&app, "/logout").await;
}

#[tokio::test]
async fn a_password_change_ends_the_users_other_sessions_and_renews_this_one() {
    let app = TestApp::new().await;
    let mut laptop = app.logged_in("peggy").await;
    let mut phone = app.browser();
    phone.log_in("peggy", PASSWORD).await;
    assert_eq!(phone.get("/account").await.status, StatusCode::OK);
    let before = laptop.cookie.clone();

    let page = laptop
        .post_form(
            "/account/password",
            &[
                ("current", PASSWORD),
                ("new_password", "a new passphrase"),
                ("confirm", "a new passphrase"),
            ],
        )
        .await;
    assert_eq!(
        (page.status, page.location()),
        (StatusCode::SEE_OTHER, "/account"),
        "{}",
        page.body
    );
    assert_ne!(laptop.cookie, before, "the id is regenerated");
    let account = laptop.get("/account").await;
    assert!(
        account.body.contains("Password changed"),
        "{}",
        account.body
    );

    let page = phone.get("/account").await;
    assert_eq!(
        page.status,
        StatusCode::SEE_OTHER,
        "the other session is logged out"
    );
    assert_eq!(page.location(), "/login?next=/account&expired=1");
    assert_eq!(
        app.browser().log_in("peggy", PASSWORD).await.status,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        app.browser()
            .log_in("peggy", "a new passphrase")
            .await
            .status,
        StatusCode::SEE_OTHER
    );
}

#[tokio::test]
async fn a_password_change_needs_the_current_password_and_a_valid_new_one() {
    let app = TestApp::new().await;
    let mut browser = app.logged_in("quinn").await;
    for (current, new, confirm, reason) in [
        (
            "wrong password",
            "a new passphrase",
            "a new passphrase",
            "the current password is wrong",
        ),
        (PASSWORD, "short", "short", "8 to 128 characters"),
        (
            PASSWORD,
            "a new passphrase",
            "another one!",
            "the two new passwords differ",
        ),
    ] {
        let page = browser
            .post_form(
                "/account/password",
                &[
                    ("current", current),
                    ("new_password", new),
                    ("confirm", confirm),
                ],
            )
            .await;
        assert_eq!(page.status, StatusCode::UNPROCESSABLE_ENTITY);
        assert!(page.body.contains(reason), "{reason}: {}", page.body);
    }
    assert_eq!(
        browser.log_in("quinn", PASSWORD).await.status,
        StatusCode::SEE_OTHER
    );
}

#[tokio::test]
async fn concurrent_wrong_passwords_cannot_outrun_the_limit() {
    let app = TestApp::with_env(&[("LOGIN_RATE_LIMIT", "3/1m")]).await;
    app.register("judy").await;
    let mut browsers: Vec<_> = (0..12)
        .map(|i| {
            let mut browser = app.browser();
            browser.peer = format!("10.2.0.{i}:5000").parse().unwrap();
            browser
        })
        .collect();
    let guesses = browsers
        .iter_mut()
        .map(|browser| browser.log_in("judy", "a wrong guess"));
    let pages = futures_util::future::join_all(guesses).await;
    let tried = pages
        .iter()
        .filter(|p| p.status == StatusCode::UNAUTHORIZED)
        .count();
    let refused = pages
        .iter()
        .filter(|p| p.status == StatusCode::TOO_MANY_REQUESTS)
        .count();
    assert_eq!(
        (tried, refused),
        (3, 9),
        "the limit counts attempts before checking passwords"
    );
}

/// Finding 1: no route of the site writes arbitrary session keys, so a logged-in user cannot
/// set `user_id` (which a Flask app sharing the sessions may trust) or any other key.
#[tokio::test]
async fn no_route_writes_arbitrary_session_keys() {
    let app = TestApp::new().await;
    let mut browser = app.logged_in("mallory").await;
    for method in [Method::POST, Method::PUT, Method::PATCH] {
        let page = browser
            .send_json(
                method.clone(),
                "/api/session",
                r#"{"key":"user_id","value":1}"#,
            )
            .await;
        assert!(
            matches!(page.status.as_u16(), 404 | 405),
            "{method} /api/session: {} {}",
            page.status,
            page.body
        );
    }
    let session = app.peek(browser.cookie.as_deref().unwrap()).await;
    assert!(
        session["data"].get("user_id").is_none(),
        "the session holds no client-chosen key: {session}"
    );
    assert_eq!(browser.get("/api/me").await.json()["user"], "mallory");
}

/// Finding 14: the JSON routes open to anyone (`/api/prefs`, `/api/csrf-token`) check a
/// logged-in session as the pages do. A session whose password changed behind it (a log-in
/// that raced the change's "end others", simulated by changing the hash in the database) gets
/// 401 there, and is logged out.
#[tokio::test]
async fn json_routes_refuse_a_session_whose_password_changed() {
    let app = TestApp::new().await;
    app.register("olga").await;
    let mut browsers = Vec::new();
    for _ in 0..3 {
        let mut browser = app.browser();
        browser.log_in("olga", PASSWORD).await;
        let token = browser.csrf_token().await;
        browsers.push((browser, token));
    }
    let user = app.state.users().by_name("olga").await.unwrap().unwrap();
    let hash = portcullis_site::accounts::password::hash("changed elsewhere".to_owned())
        .await
        .unwrap();
    app.state
        .users()
        .set_password_hash(user.id, &hash)
        .await
        .unwrap();
    let requests = [
        (Method::GET, "/api/prefs", ""),
        (Method::GET, "/api/csrf-token", ""),
        (
            Method::PATCH,
            "/api/prefs",
            r#"{"devices_order":"started"}"#,
        ),
    ];
    for ((mut browser, token), (method, path, body)) in browsers.into_iter().zip(requests) {
        let cookie = browser.cookie.clone().unwrap();
        let headers = [
            ("content-type", "application/json"),
            ("x-csrftoken", &*token),
        ];
        let page = browser
            .request(method.clone(), path, &headers, Body::from(body))
            .await;
        assert_eq!(
            page.status,
            StatusCode::UNAUTHORIZED,
            "{method} {path}: {}",
            page.body
        );
        assert!(page.json()["error"].is_string(), "{}", page.body);
        let session = app.peek(&cookie).await;
        assert!(
            session["data"].get("_user_id").is_none(),
            "{method} {path} logged the session out: {session}"
        );
    }
}

/// Finding 14: people type their password into the name field, so a failed log-in logs the
/// typed name only when it names an account, and otherwise a keyed hash of it (the same hash
/// for the same name, so repeated attempts still correlate), also when the limit refuses it.
#[tokio::test]
async fn failed_log_ins_log_the_typed_name_only_when_the_account_exists() {
    let log = harness::CapturedLog::start();
    let app = TestApp::with_env(&[("LOGIN_RATE_LIMIT", "2/3m")]).await;
    app.register("quentin").await;
    let page = app.browser().log_in("quentin", "not the password").await;
    assert_eq!(page.status, StatusCode::UNAUTHORIZED);
    let typed = "Tr0ub4dor&3-typed-in-the-name-field";
    let mut stranger = app.browser();
    stranger.peer = "203.0.113.9:5000".parse().unwrap();
    let statuses = [
        stranger.log_in(typed, "x").await.status,
        stranger.log_in(typed, "x").await.status,
        stranger.log_in(typed, "x").await.status,
    ];
    assert_eq!(
        statuses,
        [
            StatusCode::UNAUTHORIZED,
            StatusCode::UNAUTHORIZED,
            StatusCode::TOO_MANY_REQUESTS
        ]
    );

    let text = log.text();
    let lines = |what: &str| -> Vec<String> {
        text.lines()
            .filter(|line| line.contains(what))
            .map(str::to_owned)
            .collect()
    };
    let failed = lines("log-in failed");
    let refused = lines("too many failures");
    assert_eq!((failed.len(), refused.len()), (3, 1), "{text}");
    assert!(failed[0].contains(r#"name="quentin""#), "{}", failed[0]);
    assert!(
        !text.contains("Tr0ub4dor"),
        "the unknown name never reaches the log:\n{text}"
    );
    let hashed = |line: &str| {
        line.split("name=hash:")
            .nth(1)
            .and_then(|rest| rest.split_whitespace().next())
            .map(str::to_owned)
            .unwrap_or_else(|| panic!("no keyed hash in {line}"))
    };
    let hash = hashed(&failed[1]);
    assert!(hash.len() >= 16, "{hash}");
    assert_eq!(hashed(&failed[2]), hash, "the same name, the same hash");
    assert_eq!(hashed(&refused[0]), hash);
}

/// Registers `name` from `peer`, answering the page.
async fn register_from(app: &TestApp, peer: &str, name: &str) -> harness::Page {
    let mut browser = app.browser();
    browser.peer = peer.parse().unwrap();
    browser
        .post_form(
            "/register",
            &[
                ("name", name),
                ("display_name", ""),
                ("password", PASSWORD),
                ("confirm", PASSWORD),
            ],
        )
        .await
}

#[tokio::test]
async fn registration_is_limited_per_client_and_an_ipv6_client_by_its_64() {
    let app = TestApp::with_env(&[("REGISTER_RATE_LIMIT", "2/1h")]).await;
    for (peer, name) in [
        ("[2001:db8:5:6::1]:5000", "reg-a"),
        ("[2001:db8:5:6::2]:5000", "reg-b"),
    ] {
        assert_eq!(
            register_from(&app, peer, name).await.status,
            StatusCode::SEE_OTHER
        );
    }
    let page = register_from(&app, "[2001:db8:5:6:ffff::9]:5000", "reg-c").await;
    assert_eq!(page.status, StatusCode::TOO_MANY_REQUESTS, "{}", page.body);
    assert_eq!(page.header("retry-after"), "3600");
    assert!(
        page.body.contains("Too many registrations"),
        "{}",
        page.body
    );
    assert!(
        page.body.contains("action=\"/register\""),
        "the form comes back: {}",
        page.body
    );
    assert_eq!(
        register_from(&app, "[2001:db8:5:7::1]:5000", "reg-c")
            .await
            .status,
        StatusCode::SEE_OTHER,
        "another /64 is another client"
    );
    assert_eq!(
        app.browser().log_in("reg-c", PASSWORD).await.status,
        StatusCode::SEE_OTHER
    );
}

#[tokio::test]
async fn registration_is_limited_overall_with_503_and_retry_after() {
    let app = TestApp::with_env(&[("REGISTER_TOTAL_RATE_LIMIT", "2/1m")]).await;
    for i in 0..2 {
        let page = register_from(&app, &format!("192.0.2.{i}:5000"), &format!("all-{i}")).await;
        assert_eq!(page.status, StatusCode::SEE_OTHER, "{}", page.body);
    }
    let page = register_from(&app, "192.0.2.9:5000", "all-9").await;
    assert_eq!(
        page.status,
        StatusCode::SERVICE_UNAVAILABLE,
        "{}",
        page.body
    );
    assert_eq!(page.header("retry-after"), "60");
    assert!(page.body.contains("Too many accounts"), "{}", page.body);
    app.clock.advance(std::time::Duration::from_secs(61));
    assert_eq!(
        register_from(&app, "192.0.2.9:5000", "all-9").await.status,
        StatusCode::SEE_OTHER
    );
}

/// Holds every thread of the site's password-hashing pool until released.
struct HashingHeld {
    release: Vec<std::sync::mpsc::Sender<()>>,
    jobs: Vec<tokio::task::JoinHandle<()>>,
}

/// Occupies every hashing thread of `app` with a job that waits to be released (at most 30 s),
/// and returns once all of them run.
async fn hold_every_hashing_thread(app: &TestApp) -> HashingHeld {
    let pool = app.state.clone();
    let threads = pool.password_hashing().threads();
    let (started_tx, mut started) = tokio::sync::mpsc::unbounded_channel();
    let mut release = Vec::new();
    let mut jobs = Vec::new();
    for _ in 0..threads {
        let (tx, rx) = std::sync::mpsc::channel::<()>();
        release.push(tx);
        let state = pool.clone();
        let started_tx = started_tx.clone();
        jobs.push(tokio::spawn(async move {
            let job = move || {
                let _ = started_tx.send(());
                let _ = rx.recv_timeout(std::time::Duration::from_secs(30));
            };
            state
                .password_hashing()
                .run(job)
                .await
                .expect("the holding job ran");
        }));
    }
    for _ in 0..threads {
        tokio::time::timeout(std::time::Duration::from_secs(10), started.recv())
            .await
            .expect("every hashing thread took its job within 10 s");
    }
    HashingHeld { release, jobs }
}

impl HashingHeld {
    /// Lets every held job return, and returns once each has given its thread back: a job's
    /// turn ends when it returns, so the next hash finds a free thread, not a race with one.
    async fn release(self) {
        for tx in self.release {
            let _ = tx.send(());
        }
        for job in self.jobs {
            tokio::time::timeout(std::time::Duration::from_secs(10), job)
                .await
                .expect("every held job returned within 10 s of its release")
                .expect("the holding task did not panic");
        }
    }
}

/// A request that must be answered without waiting for a hashing thread: 5 s is far beyond
/// any answer that does not wait, and far short of one that waits for a release that comes
/// only after it.
async fn without_waiting<F: std::future::Future>(request: F) -> F::Output {
    tokio::time::timeout(std::time::Duration::from_secs(5), request)
        .await
        .expect("answered at once, not queued behind busy hashing threads")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_hashing_queue_answers_503_with_retry_after_and_the_sites_page() {
    let app =
        TestApp::with_env(&[("PASSWORD_HASH_QUEUE", "0"), ("LOGIN_RATE_LIMIT", "1/1m")]).await;
    app.register("busy").await;
    let held = hold_every_hashing_thread(&app).await;
    let mut browser = app.browser();
    let page = without_waiting(browser.log_in("busy", PASSWORD)).await;
    assert_eq!(
        page.status,
        StatusCode::SERVICE_UNAVAILABLE,
        "{}",
        page.body
    );
    assert_eq!(page.header("retry-after"), "1");
    assert!(
        page.body.contains("Please try again in a few seconds"),
        "{}",
        page.body
    );
    assert!(page.body.contains("href=\"/\""), "a way on: {}", page.body);
    let page = without_waiting(register_from(&app, "192.0.2.80:5000", "busy-two")).await;
    assert_eq!(
        page.status,
        StatusCode::SERVICE_UNAVAILABLE,
        "{}",
        page.body
    );
    assert_eq!(page.header("retry-after"), "1");
    held.release().await;
    assert_eq!(
        browser.log_in("busy", PASSWORD).await.status,
        StatusCode::SEE_OTHER,
        "the refused attempt was not counted against the limit of 1"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_taken_or_invalid_name_is_refused_before_any_password_is_hashed() {
    let app = TestApp::with_env(&[("PASSWORD_HASH_QUEUE", "0")]).await;
    app.register("taken").await;
    app.register("scope").await;
    let held = hold_every_hashing_thread(&app).await;
    let page = without_waiting(register_from(&app, "192.0.2.81:5000", "TAKEN")).await;
    assert_eq!(page.status, StatusCode::CONFLICT, "{}", page.body);
    // A look-alike of a taken name: "scope" in Cyrillic letters.
    let look_alike = "\u{455}\u{441}\u{43e}\u{440}\u{435}";
    let page = without_waiting(register_from(&app, "192.0.2.81:5000", look_alike)).await;
    assert_eq!(page.status, StatusCode::CONFLICT, "{}", page.body);
    let page = without_waiting(register_from(&app, "192.0.2.81:5000", "no spaces")).await;
    assert_eq!(
        page.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{}",
        page.body
    );
    held.release().await;
}

/// `n` wrong passwords for `name`, each from a fresh browser at `peer`.
async fn wrong_passwords(app: &TestApp, peer: &str, name: &str, n: usize) {
    for _ in 0..n {
        let mut stranger = app.browser();
        stranger.peer = peer.parse().unwrap();
        let status = stranger.log_in(name, "a wrong guess").await.status;
        assert!(
            [StatusCode::UNAUTHORIZED, StatusCode::TOO_MANY_REQUESTS].contains(&status),
            "{status}"
        );
    }
}

/// A browser at `peer` that logged in as `name` (registered first) and logged out again,
/// holding its device cookie.
async fn known_browser<'a>(app: &'a TestApp, name: &str, peer: &str) -> harness::Browser<'a> {
    app.register(name).await;
    let mut browser = app.browser();
    browser.peer = peer.parse().unwrap();
    assert_eq!(
        browser.log_in(name, PASSWORD).await.status,
        StatusCode::SEE_OTHER
    );
    assert_eq!(browser.log_out().await.status, StatusCode::SEE_OTHER);
    assert!(
        browser.device_cookie.is_some(),
        "the log-in gave a device cookie"
    );
    browser
}

#[tokio::test]
async fn a_strangers_failures_never_lock_the_user_out_of_her_own_browser() {
    let app = TestApp::new().await;
    let mut alice = known_browser(&app, "alice", "198.51.100.10:5000").await;
    // Ten wrong passwords for alice from elsewhere: the limit of unknown clients.
    wrong_passwords(&app, "203.0.113.66:4000", "alice", 10).await;
    let mut unknown = app.browser();
    unknown.peer = "192.0.2.44:5000".parse().unwrap();
    let page = unknown.log_in("alice", PASSWORD).await;
    assert_eq!(
        page.status,
        StatusCode::TOO_MANY_REQUESTS,
        "an unknown client is still blocked"
    );
    let page = alice.log_in("alice", PASSWORD).await;
    assert_eq!(
        page.status,
        StatusCode::SEE_OTHER,
        "her device cookie lets her in: {}",
        page.body
    );
    assert_eq!(alice.get("/api/me").await.status, StatusCode::OK);
}

#[tokio::test]
async fn a_known_browser_at_the_attackers_address_logs_in() {
    let app = TestApp::new().await;
    let shared = "198.51.100.20:5000";
    let mut bob = known_browser(&app, "bob", shared).await;
    for i in 0..10 {
        wrong_passwords(&app, shared, &format!("victim{i}"), 1).await;
    }
    let mut unknown = app.browser();
    unknown.peer = shared.parse().unwrap();
    assert_eq!(
        unknown.log_in("bob", PASSWORD).await.status,
        StatusCode::TOO_MANY_REQUESTS,
        "the address is locked for unknown clients"
    );
    let mut stolen = app.browser();
    stolen.peer = shared.parse().unwrap();
    stolen.device_cookie.clone_from(&bob.device_cookie);
    app.register("carol").await;
    assert_eq!(
        stolen.log_in("carol", PASSWORD).await.status,
        StatusCode::TOO_MANY_REQUESTS,
        "bob's device cookie makes nobody else known"
    );
    assert_eq!(
        bob.log_in("bob", PASSWORD).await.status,
        StatusCode::SEE_OTHER
    );
}

#[tokio::test]
async fn a_known_device_has_its_own_limit() {
    let app = TestApp::with_env(&[("LOGIN_RATE_LIMIT", "3/1m")]).await;
    let mut dave = known_browser(&app, "dave", "198.51.100.30:5000").await;
    for _ in 0..3 {
        assert_eq!(
            dave.log_in("dave", "wrong").await.status,
            StatusCode::UNAUTHORIZED
        );
    }
    let page = dave.log_in("dave", PASSWORD).await;
    assert_eq!(
        page.status,
        StatusCode::TOO_MANY_REQUESTS,
        "the device is limited"
    );
    assert_eq!(page.header("retry-after"), "60");
    let mut elsewhere = app.browser();
    elsewhere.peer = "192.0.2.55:5000".parse().unwrap();
    assert_eq!(
        elsewhere.log_in("dave", PASSWORD).await.status,
        StatusCode::SEE_OTHER,
        "the device's failures did not count on the name"
    );
}

#[tokio::test]
async fn the_device_cookie_is_signed_http_only_lax_long_lived_and_names_nobody() {
    let app = TestApp::with_env(&[("SESSION_COOKIE_SECURE", "true")]).await;
    app.register("erin").await;
    let mut browser = app.browser();
    let page = browser.log_in("erin", PASSWORD).await;
    assert_eq!(page.status, StatusCode::SEE_OTHER);
    let device = page
        .headers
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .find(|c| c.starts_with("__Host-portcullis_device="))
        .expect("a device cookie");
    for attribute in [
        "HttpOnly",
        "SameSite=Lax",
        "Secure",
        "Path=/",
        "Max-Age=31536000",
    ] {
        assert!(device.contains(attribute), "{attribute}: {device}");
    }
    assert!(!device.contains("Domain"), "{device}");
    assert!(!device.to_lowercase().contains("erin"), "{device}");
    let first = page.headers.get("set-cookie").unwrap().to_str().unwrap();
    assert!(
        !first.contains("portcullis_device"),
        "the session's cookie comes first: {first}"
    );
    let logout = browser.log_out().await;
    assert!(
        logout
            .headers
            .get_all("set-cookie")
            .iter()
            .all(|v| !v.to_str().unwrap().contains("portcullis_device")),
        "logging out keeps the device cookie"
    );
}

#[tokio::test]
async fn the_password_form_lets_the_users_own_browser_through_a_strangers_lockout() {
    let app = TestApp::new().await;
    let mut frank = app.logged_in("frank").await;
    wrong_passwords(&app, "203.0.113.77:4000", "frank", 10).await;
    let page = frank
        .post_form(
            "/account/password",
            &[
                ("current", PASSWORD),
                ("new_password", "a new long passphrase"),
                ("confirm", "a new long passphrase"),
            ],
        )
        .await;
    assert_eq!(page.status, StatusCode::SEE_OTHER, "{}", page.body);
}

/// Whoever once knew the password and kept the device cookies it earned (one per log-in) is
/// an unknown client after the password changes: the name's lockout applies to them, so they
/// get no `LOGIN_RATE_LIMIT` of guesses at the new password per cookie. The owner's browser,
/// which made the change, gets a fresh cookie and stays known.
#[tokio::test]
async fn a_password_change_cancels_the_old_device_cookies() {
    const NEW: &str = "a new long passphrase";
    let app = TestApp::new().await;
    let mut gina = known_browser(&app, "gina", "198.51.100.40:5000").await;
    let mut thief = app.browser();
    thief.peer = "192.0.2.66:5000".parse().unwrap();
    thief.device_cookie.clone_from(&gina.device_cookie);
    let old_cookie = gina.device_cookie.clone();

    assert_eq!(
        gina.log_in("gina", PASSWORD).await.status,
        StatusCode::SEE_OTHER
    );
    let page = gina
        .post_form(
            "/account/password",
            &[
                ("current", PASSWORD),
                ("new_password", NEW),
                ("confirm", NEW),
            ],
        )
        .await;
    assert_eq!(page.status, StatusCode::SEE_OTHER, "{}", page.body);
    assert_ne!(
        gina.device_cookie, old_cookie,
        "the change gave a fresh device cookie"
    );
    assert_eq!(gina.log_out().await.status, StatusCode::SEE_OTHER);

    // The name locked for unknown clients.
    wrong_passwords(&app, "203.0.113.88:4000", "gina", 10).await;
    assert_eq!(
        thief.log_in("gina", NEW).await.status,
        StatusCode::TOO_MANY_REQUESTS,
        "a device cookie from before the change no longer exempts its browser"
    );
    let page = gina.log_in("gina", NEW).await;
    assert_eq!(
        page.status,
        StatusCode::SEE_OTHER,
        "the owner's fresh cookie still lets her in: {}",
        page.body
    );
}

#[tokio::test]
async fn x_forwarded_for_without_a_trusted_proxy_is_warned_about_once() {
    use std::sync::{Arc, Mutex};
    let log = Arc::new(Mutex::new(Vec::<u8>::new()));
    let sink = Arc::clone(&log);
    let subscriber = tracing_subscriber::fmt()
        .with_writer(move || Writer(Arc::clone(&sink)))
        .with_ansi(false)
        .finish();
    let _default = tracing::subscriber::set_default(subscriber);
    let app = TestApp::new().await;
    for _ in 0..3 {
        let mut browser = app.browser();
        let page = browser
            .request(
                Method::GET,
                "/login",
                &[("x-forwarded-for", "198.51.100.99")],
                axum::body::Body::empty(),
            )
            .await;
        assert_eq!(page.status, StatusCode::OK);
    }
    let text = String::from_utf8(log.lock().unwrap().clone()).unwrap();
    assert_eq!(
        text.matches("TRUSTED_PROXIES is empty").count(),
        1,
        "logged once: {text}"
    );
    assert!(text.contains("WARN"), "{text}");
}

/// A log sink for the test subscriber.
struct Writer(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for Writer {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test]
async fn a_session_of_a_disabled_account_is_never_served_and_its_log_in_fails_as_a_wrong_password()
{
    let app = TestApp::new().await;
    let mut browser = app.logged_in("dora").await;
    let user = app.state.users().by_name("dora").await.unwrap().unwrap();
    // Disabled behind the site's back: a session that a log-in racing `users disable` wrote
    // after its sessions were ended looks exactly like this one.
    app.state.users().set_disabled(user.id, true).await.unwrap();
    let page = browser.get("/account").await;
    assert_eq!(page.status, StatusCode::SEE_OTHER, "{}", page.body);
    assert!(page.location().starts_with("/login"));

    let wrong = app.browser().log_in("dora", "not the password").await;
    let right = app.browser().log_in("dora", PASSWORD).await;
    let without_token = |body: &str| body.split("csrf_token").next().unwrap().to_owned();
    assert_eq!(right.status, StatusCode::UNAUTHORIZED);
    assert_eq!(wrong.status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        without_token(&right.body),
        without_token(&wrong.body),
        "the same page as a wrong password"
    );
    assert!(right.body.contains("Invalid user name or password."));
}

#[tokio::test]
async fn an_unknown_user_name_costs_the_same_argon2_work_as_a_wrong_password() {
    use portcullis_site::accounts::password::COUNTED;
    use std::sync::{Arc, Mutex};

    const OWASP: &str = "m=19456,t=2,p=1";
    let app = TestApp::new().await;
    app.register("olga").await;
    for (name, password, what) in [
        ("olga", "not the password", "a wrong password"),
        ("nobody", PASSWORD, "an unknown name"),
        ("olga", PASSWORD, "the right password"),
    ] {
        let counted = Arc::new(Mutex::new(Vec::new()));
        COUNTED
            .scope(Arc::clone(&counted), app.browser().log_in(name, password))
            .await;
        assert_eq!(*counted.lock().unwrap(), [OWASP], "{what}");
    }
}
