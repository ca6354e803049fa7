//! Registering, logging in and out, in-process: rules and refusals, session id regeneration,
//! the open-redirect guard, failed log-in limits, expiry messages, password changes.
#![allow(clippy::unwrap_used)]

use crate::harness::{self, PASSWORD, TestApp};
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
    assert_eq!(
        (page.status, page.location()),
        (StatusCode::SEE_OTHER, "/login")
    );
    let login = browser.get("/login").await;
    assert!(
        login.body.contains("Account Ada created. Please log in."),
        "{}",
        login.body
    );

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
        ("ada lovelace", "only letters, digits"),
        ("ada/../x", "only letters, digits"),
        ("<script>", "only letters, digits"),
        ("zoë", "only letters, digits"),
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
    // Registering stores an anonymous session (its flash): the id a fixation would plant.
    let fields = [
        ("name", "ken"),
        ("password", PASSWORD),
        ("confirm", PASSWORD),
    ];
    let page = browser.post_form("/register", &fields).await;
    assert_eq!(page.status, StatusCode::SEE_OTHER, "{}", page.body);
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
    let stored = browser
        .send_json(
            Method::POST,
            "/api/session",
            r#"{"key":"cart","value":"alice's"}"#,
        )
        .await;
    assert_eq!(stored.status, StatusCode::OK, "{}", stored.body);
    browser.log_in("bob", PASSWORD).await;
    let values = browser.get("/api/session").await.json();
    assert_eq!(
        values["values"],
        serde_json::json!({}),
        "nothing of alice's is left"
    );
    assert_eq!(browser.get("/api/me").await.json()["user"], "bob");
}

#[tokio::test]
async fn the_same_user_logging_in_again_keeps_the_session_data() {
    let app = TestApp::new().await;
    let mut browser = app.logged_in("carol").await;
    browser
        .send_json(Method::POST, "/api/session", r#"{"key":"cart","value":3}"#)
        .await;
    browser.log_in("carol", PASSWORD).await;
    assert_eq!(
        browser.get("/api/session").await.json()["values"]["cart"],
        3
    );
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
    assert_eq!(page.header("clear-site-data"), "\"cookies\"");
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

#[tokio::test]
async fn anonymous_clients_cannot_write_session_values() {
    let app = TestApp::new().await;
    let mut browser = app.browser();
    let page = browser
        .send_json(
            Method::POST,
            "/api/session",
            r#"{"key":"junk","value":"x"}"#,
        )
        .await;
    assert_eq!(page.status, StatusCode::UNAUTHORIZED, "{}", page.body);
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
