//! A user's sessions, in-process: the sessions page (every device, end one, end the others),
//! what a password change ends, the per-user limit, and requests of two tabs at the same
//! moment (preferences, flashes) that both keep their change.
#![allow(clippy::unwrap_used)]

use super::harness::{self, Browser, PASSWORD, TestApp};
use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use serde_json::json;

const FIREFOX: &str = "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0";
const PHONE: &str = "Mozilla/5.0 (Linux; Android 14) AppleWebKit/537.36 (KHTML, like Gecko) \
                     Chrome/126.0 Mobile Safari/537.36";

/// Logs `name` in from a new browser with `user_agent`, from `peer`.
async fn log_in_from<'a>(
    app: &'a TestApp,
    name: &str,
    user_agent: &str,
    peer: &str,
) -> Browser<'a> {
    let mut browser = app.browser();
    browser.peer = peer.parse().unwrap();
    let token = browser.csrf_token().await;
    let body = harness::form_body(&[
        ("name", name),
        ("password", PASSWORD),
        ("csrf_token", &token),
    ]);
    let headers = [
        ("content-type", "application/x-www-form-urlencoded"),
        ("user-agent", user_agent),
    ];
    let page = browser
        .request(Method::POST, "/login", &headers, body.into())
        .await;
    assert_eq!(page.status, StatusCode::SEE_OTHER, "{}", page.body);
    browser
}

/// The handles in the sessions page's end forms, in order.
fn handles(body: &str) -> Vec<String> {
    body.split("name=\"session\" value=\"")
        .skip(1)
        .map(|rest| rest.split('"').next().unwrap().to_owned())
        .collect()
}

/// The handle of the row marked as this device.
fn current_handle(body: &str) -> String {
    let row = body
        .split("<tr")
        .find(|row| row.contains("(this device)"))
        .unwrap_or_else(|| panic!("no current row: {body}"));
    handles(row).pop().unwrap()
}

#[tokio::test]
async fn the_sessions_page_lists_each_device_with_browser_and_address_and_marks_this_one() {
    let app = TestApp::new().await;
    app.register("nina").await;
    let mut laptop = log_in_from(&app, "nina", FIREFOX, "198.51.100.7:5000").await;
    let _phone = log_in_from(&app, "nina", PHONE, "203.0.113.9:6000").await;
    let page = laptop.get("/account/sessions").await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    assert!(page.body.contains("Firefox on Linux"), "{}", page.body);
    assert!(page.body.contains("Chrome on Android"), "{}", page.body);
    assert!(page.body.contains("198.51.100.7") && page.body.contains("203.0.113.9"));
    assert_eq!(page.body.matches("(this device)").count(), 1);
    assert!(page.body.contains("just now"), "last used");
    assert_eq!(handles(&page.body).len(), 2);
    assert!(page.body.contains("Log out all other devices (1)"));
    let current = current_handle(&page.body);
    assert!(
        !page.body.contains(laptop.cookie.as_deref().unwrap()),
        "never the cookie"
    );
    assert_eq!(current.len(), 43);
    // Listing slides nobody else's expiry, nor does the account page link lie.
    assert!(
        laptop
            .get("/account")
            .await
            .body
            .contains("href=\"/account/sessions\"")
    );
}

#[tokio::test]
async fn ending_a_device_from_the_page_logs_it_out_at_once() {
    let app = TestApp::new().await;
    app.register("omar").await;
    let mut laptop = log_in_from(&app, "omar", FIREFOX, "198.51.100.7:5000").await;
    let mut phone = log_in_from(&app, "omar", PHONE, "203.0.113.9:6000").await;
    let page = laptop.get("/account/sessions").await;
    let current = current_handle(&page.body);
    let other = handles(&page.body)
        .into_iter()
        .find(|h| *h != current)
        .unwrap();

    let ended = laptop
        .post_form("/account/sessions/end", &[("session", &other)])
        .await;
    assert_eq!(ended.status, StatusCode::SEE_OTHER, "{}", ended.body);
    assert_eq!(ended.location(), "/account/sessions");
    let page = laptop.get("/account/sessions").await;
    assert!(
        page.body.contains("That session has been logged out."),
        "{}",
        page.body
    );
    assert_eq!(handles(&page.body), [current]);
    assert_eq!(phone.get("/api/me").await.status, StatusCode::UNAUTHORIZED);

    let again = laptop
        .post_form("/account/sessions/end", &[("session", &other)])
        .await;
    assert_eq!(again.status, StatusCode::SEE_OTHER);
    assert!(
        laptop
            .get("/account/sessions")
            .await
            .body
            .contains("had already ended")
    );
}

#[tokio::test]
async fn log_out_all_other_devices_leaves_exactly_this_one() {
    let app = TestApp::new().await;
    app.register("pia").await;
    let mut first = log_in_from(&app, "pia", FIREFOX, "198.51.100.1:1").await;
    let mut second = log_in_from(&app, "pia", PHONE, "198.51.100.2:2").await;
    let mut third = log_in_from(&app, "pia", FIREFOX, "198.51.100.3:3").await;
    let mut stranger = app.logged_in("quentin").await;

    let page = second.post_form("/account/sessions/end-others", &[]).await;
    assert_eq!(page.status, StatusCode::SEE_OTHER, "{}", page.body);
    let page = second.get("/account/sessions").await;
    assert!(
        page.body.contains("2 other sessions have been logged out."),
        "{}",
        page.body
    );
    assert_eq!(handles(&page.body).len(), 1);
    assert!(!page.body.contains("Log out all other devices"));
    for browser in [&mut first, &mut third] {
        assert_eq!(
            browser.get("/api/me").await.status,
            StatusCode::UNAUTHORIZED
        );
    }
    assert_eq!(second.get("/api/me").await.status, StatusCode::OK);
    assert_eq!(
        stranger.get("/api/me").await.status,
        StatusCode::OK,
        "another user"
    );
}

#[tokio::test]
async fn a_password_change_ends_the_other_sessions_at_once() {
    let app = TestApp::new().await;
    app.register("ravi").await;
    let mut laptop = log_in_from(&app, "ravi", FIREFOX, "198.51.100.1:1").await;
    let mut phone = log_in_from(&app, "ravi", PHONE, "198.51.100.2:2").await;
    let users_sessions = app.store.len();
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
    assert_eq!(page.status, StatusCode::SEE_OTHER, "{}", page.body);
    // Deleted now, not at the phone's next request: the record is gone from the store, and
    // the marker saying why is in its place.
    assert_eq!(
        app.store.len(),
        users_sessions,
        "the phone's record is gone, its ending's marker in its place"
    );
    let page = laptop.get("/account/sessions").await;
    assert_eq!(handles(&page.body).len(), 1, "{}", page.body);
    assert!(
        laptop.get("/account").await.status == StatusCode::OK,
        "this session lives on under a new id"
    );
    // The phone's next page says what happened.
    let page = phone.get("/").await;
    assert!(
        page.body
            .contains("Your session was ended because your password was changed."),
        "{}",
        page.body
    );
}

/// A log-in that checked the old password but was written after the change's "end others":
/// the log-in is held at its write to the user's index (its password check has passed) while
/// the password change runs to its end, then let go. It holds a stale `_auth_hash`: it serves
/// no request and is not listed.
#[tokio::test]
async fn a_login_that_raced_a_password_change_is_never_served_nor_listed() {
    let app = TestApp::new().await;
    app.register("sara").await;
    let mut laptop = log_in_from(&app, "sara", FIREFOX, "198.51.100.1:1").await;
    let mut racer = app.browser();
    racer.peer = "198.51.100.2:2".parse().unwrap();
    let held = app.hold_next_create_indexed();
    let log_in = racer.log_in("sara", PASSWORD);
    let change = async {
        // The racer's password check passed: it is at its write to the index.
        held.reached.await.unwrap();
        let page = laptop
            .post_form(
                "/account/password",
                &[
                    ("current", PASSWORD),
                    ("new_password", "changed meanwhile"),
                    ("confirm", "changed meanwhile"),
                ],
            )
            .await;
        held.release.send(()).unwrap();
        page
    };
    let (logged_in, changed) = tokio::time::timeout(std::time::Duration::from_secs(15), async {
        tokio::join!(log_in, change)
    })
    .await
    .expect("the raced log-in and password change finish within 15 s");
    assert_eq!(changed.status, StatusCode::SEE_OTHER, "{}", changed.body);
    assert_eq!(
        logged_in.status,
        StatusCode::SEE_OTHER,
        "{}",
        logged_in.body
    );
    // The racer's session was written, in sara's name, after the change ended the others.
    let written = app.peek(racer.cookie.as_deref().unwrap()).await;
    let sara = app.state.users().by_name("sara").await.unwrap().unwrap();
    assert_eq!(
        written["user_id"],
        json!(sara.id.to_string()),
        "the raced log-in is in the store: {written}"
    );
    let page = laptop.get("/account/sessions").await;
    assert_eq!(
        handles(&page.body).len(),
        1,
        "stale sessions are not devices: {}",
        page.body
    );
    assert_eq!(racer.get("/api/me").await.status, StatusCode::UNAUTHORIZED);
    assert_eq!(laptop.get("/api/me").await.status, StatusCode::OK);
}

#[tokio::test]
async fn at_the_session_limit_a_login_is_refused_with_a_clear_page() {
    let app = TestApp::with_env(&[
        ("SESSION_MAX_PER_USER", "2"),
        ("SESSION_LIMIT_POLICY", "refuse"),
    ])
    .await;
    app.register("tara").await;
    let mut first = log_in_from(&app, "tara", FIREFOX, "198.51.100.1:1").await;
    log_in_from(&app, "tara", PHONE, "198.51.100.2:2").await;
    let mut third = app.browser();
    let page = third.log_in("tara", PASSWORD).await;
    assert_eq!(page.status, StatusCode::CONFLICT, "{}", page.body);
    assert!(
        page.body
            .contains("You are logged in on 2 devices, the most allowed."),
        "{}",
        page.body
    );
    assert_eq!(third.get("/api/me").await.status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        first.get("/api/me").await.status,
        StatusCode::OK,
        "nobody was logged out"
    );
    // Logging in again where already logged in replaces that session: not refused.
    assert_eq!(
        first.log_in("tara", PASSWORD).await.status,
        StatusCode::SEE_OTHER
    );
}

#[tokio::test]
async fn at_the_session_limit_the_oldest_session_is_logged_out_by_default() {
    let app = TestApp::with_env(&[("SESSION_MAX_PER_USER", "2")]).await;
    app.register("uma").await;
    let mut oldest = log_in_from(&app, "uma", FIREFOX, "198.51.100.1:1").await;
    app.clock.advance(std::time::Duration::from_secs(1));
    let mut middle = log_in_from(&app, "uma", PHONE, "198.51.100.2:2").await;
    app.clock.advance(std::time::Duration::from_secs(1));
    let mut newest = log_in_from(&app, "uma", FIREFOX, "198.51.100.3:3").await;
    assert_eq!(oldest.get("/api/me").await.status, StatusCode::UNAUTHORIZED);
    assert_eq!(middle.get("/api/me").await.status, StatusCode::OK);
    let page = newest.get("/account/sessions").await;
    assert_eq!(handles(&page.body).len(), 2);
}

#[tokio::test]
async fn hostile_session_ends_get_a_4xx_with_a_reason_and_end_nothing() {
    let app = TestApp::new().await;
    app.register("vera").await;
    let mut mine = log_in_from(&app, "vera", FIREFOX, "198.51.100.1:1").await;
    let mut other = app.logged_in("walt").await;
    let theirs = current_handle(&other.get("/account/sessions").await.body);

    for bad in [
        "",
        "x",
        &"A".repeat(44),
        "../../sess:idx:{x}",
        "<script>alert(1)</script>",
    ] {
        let page = mine
            .post_form("/account/sessions/end", &[("session", bad)])
            .await;
        assert_eq!(page.status, StatusCode::UNPROCESSABLE_ENTITY, "{bad}");
        assert!(
            page.body.contains("That is not a session of this list"),
            "{bad}"
        );
        assert!(!page.body.contains("<script>alert"), "escaped");
    }
    let missing = mine.post_form("/account/sessions/end", &[]).await;
    assert_eq!(
        missing.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{}",
        missing.body
    );
    assert!(
        missing.body.contains("missing field `session`"),
        "{}",
        missing.body
    );
    // Another user's session is not in this user's slot: nothing ends.
    let page = mine
        .post_form("/account/sessions/end", &[("session", &theirs)])
        .await;
    assert_eq!(page.status, StatusCode::SEE_OTHER);
    assert_eq!(other.get("/api/me").await.status, StatusCode::OK);
    // Without the CSRF token: refused before anything happens.
    let page = mine
        .post_form_raw("/account/sessions/end-others", &[])
        .await;
    assert_eq!(page.status, StatusCode::FORBIDDEN);
    assert!(
        page.body.contains("The CSRF token is missing."),
        "{}",
        page.body
    );
    assert_eq!(other.get("/api/me").await.status, StatusCode::OK);
    harness::assert_routed(&app, "/account/sessions/end-others").await;
    // Anonymous: to the log-in page.
    let page = app.browser().get("/account/sessions").await;
    assert_eq!(page.status, StatusCode::SEE_OTHER);
    assert_eq!(page.location(), "/login?next=/account/sessions");
}

#[tokio::test]
async fn patch_prefs_sets_only_the_keys_it_names() {
    let app = TestApp::new().await;
    let mut browser = app.logged_in("xena").await;
    let page = browser
        .send_json(Method::PATCH, "/api/prefs", r#"{"devices_times":"utc"}"#)
        .await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    let page = browser
        .send_json(
            Method::PATCH,
            "/api/prefs",
            r#"{"devices_order":"started"}"#,
        )
        .await;
    assert_eq!(
        page.json(),
        json!({"devices_order": "started", "devices_times": "utc"})
    );
    let page = browser
        .send_json(Method::PATCH, "/api/prefs", r#"{"devices_order":"neon"}"#)
        .await;
    assert_eq!(page.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(
        browser.get("/api/prefs").await.json(),
        json!({"devices_order": "started", "devices_times": "utc"})
    );
}

/// A request made as a tab would send it, with the browser's cookie and a CSRF header.
fn tab_request(
    browser: &Browser<'_>,
    method: Method,
    path: &str,
    token: &str,
    body: &str,
) -> Request<Body> {
    let mut request = Request::builder()
        .method(method)
        .uri(path)
        .header("cookie", browser.cookie.as_deref().unwrap())
        .header("x-csrftoken", token)
        .header("content-type", "application/json")
        .body(Body::from(body.to_owned()))
        .unwrap();
    request
        .extensions_mut()
        .insert(axum::extract::ConnectInfo(browser.peer));
    request
}

#[tokio::test]
async fn two_tabs_patching_different_preferences_at_once_both_keep_them() {
    let app = TestApp::new().await;
    let mut browser = app.logged_in("yuri").await;
    let token = browser.csrf_token().await;
    app.race_next_loads(2);
    let theme = tab_request(
        &browser,
        Method::PATCH,
        "/api/prefs",
        &token,
        r#"{"devices_order":"started"}"#,
    );
    let density = tab_request(
        &browser,
        Method::PATCH,
        "/api/prefs",
        &token,
        r#"{"devices_times":"utc"}"#,
    );
    let (a, b) = tokio::join!(app.send(theme), app.send(density));
    assert_eq!(
        (a.status, b.status),
        (StatusCode::OK, StatusCode::OK),
        "{} {}",
        a.body,
        b.body
    );
    assert_eq!(
        browser.get("/api/prefs").await.json(),
        json!({"devices_order": "started", "devices_times": "utc"}),
        "both tabs' changes are kept"
    );
}

#[tokio::test]
async fn a_flash_from_another_tab_survives_a_page_that_shows_the_waiting_ones() {
    let app = TestApp::new().await;
    let mut browser = app.logged_in("zoe").await;
    browser.get("/").await; // shows (and consumes) the welcome flash
    let changed = browser
        .post_form("/account/display-name", &[("display_name", "Zoe One")])
        .await;
    assert_eq!(changed.status, StatusCode::SEE_OTHER);
    let token = browser.csrf_token().await;
    app.race_next_loads(2);
    let mut show = Request::get("/account")
        .header("cookie", browser.cookie.as_deref().unwrap())
        .body(Body::empty())
        .unwrap();
    show.extensions_mut()
        .insert(axum::extract::ConnectInfo(browser.peer));
    let rename = Request::post("/account/display-name")
        .header("cookie", browser.cookie.as_deref().unwrap())
        .header("x-csrftoken", &token)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(Body::from("display_name=Zoe+Two"))
        .unwrap();
    let (shown, renamed) = tokio::join!(app.send(show), app.send(rename));
    assert!(
        shown.body.contains("Display name changed to Zoe One."),
        "{}",
        shown.body
    );
    assert_eq!(renamed.status, StatusCode::SEE_OTHER, "{}", renamed.body);
    let next = browser.get("/account").await;
    assert!(
        next.body.contains("Display name changed to Zoe Two."),
        "the concurrent flash waits for the next page: {}",
        next.body
    );
    assert!(!next.body.contains("Zoe One."), "the shown one is gone");
}

#[tokio::test]
async fn the_sessions_page_says_how_long_ago_with_the_exact_utc_time_in_this_sessions_order() {
    let app = TestApp::new().await;
    app.register("olga").await;
    let mut laptop = log_in_from(&app, "olga", FIREFOX, "198.51.100.7:5000").await;
    app.clock.advance(std::time::Duration::from_secs(180));
    let _phone = log_in_from(&app, "olga", PHONE, "203.0.113.9:6000").await;
    app.clock.advance(std::time::Duration::from_secs(60));
    laptop.get("/").await;
    app.clock.advance(std::time::Duration::from_secs(60));
    // The laptop logged in first but was used after the phone; the desktop looks now.
    let mut desktop = log_in_from(&app, "olga", FIREFOX, "192.0.2.1:7000").await;
    let page = desktop.get("/account/sessions").await;
    assert!(page.body.contains(">5 minutes ago</time>"), "{}", page.body);
    assert!(page.body.contains(">2 minutes ago</time>"), "{}", page.body);
    assert!(page.body.contains(">1 minute ago</time>"), "{}", page.body);
    assert!(
        page.body.contains("<time datetime=\"") && page.body.contains(" UTC\">"),
        "the exact UTC time on hover: {}",
        page.body
    );
    let laptop_first =
        |body: &str| body.find("198.51.100.7").unwrap() < body.find("203.0.113.9").unwrap();
    assert!(laptop_first(&page.body), "the most recently used first");

    // This session's view options: the desktop's own, the laptop's list stays as it was.
    let page = desktop
        .send_json(
            Method::PATCH,
            "/api/prefs",
            r#"{"devices_order":"started","devices_times":"utc"}"#,
        )
        .await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    let page = desktop.get("/account/sessions").await;
    assert!(!page.body.contains("minutes ago"), "{}", page.body);
    assert!(page.body.contains(" UTC</time>"), "{}", page.body);
    assert!(!laptop_first(&page.body), "the latest log-in first");
    let page = laptop.get("/account/sessions").await;
    assert!(page.body.contains("minutes ago</time>"), "{}", page.body);
    assert!(laptop_first(&page.body), "the laptop's list: by use");
}

#[tokio::test]
async fn every_page_of_a_logged_in_user_links_to_the_sessions_page() {
    let app = TestApp::new().await;
    let mut browser = app.logged_in("pia").await;
    for path in ["/", "/account", "/account/sessions"] {
        let page = browser.get(path).await;
        assert!(
            page.body.contains("<nav aria-label=\"Site\">")
                && page
                    .body
                    .contains("<a href=\"/account/sessions\">Sessions</a>"),
            "{path}: {}",
            page.body
        );
    }
}

#[tokio::test]
async fn the_sessions_pages_show_form_sets_this_sessions_view_and_refuses_unknown_values() {
    let app = TestApp::new().await;
    let mut browser = app.logged_in("rosa").await;
    let page = browser
        .post_form(
            "/account/sessions/view",
            &[("devices_order", "started"), ("devices_times", "utc")],
        )
        .await;
    assert_eq!(
        (page.status, page.location()),
        (StatusCode::SEE_OTHER, "/account/sessions")
    );
    let page = browser.get("/account/sessions").await;
    assert!(
        page.body.contains("<option value=\"utc\" selected>"),
        "{}",
        page.body
    );
    assert!(page.body.contains(" UTC</time>"), "{}", page.body);
    assert_eq!(
        browser.get("/api/prefs").await.json(),
        json!({"devices_order": "started", "devices_times": "utc"})
    );
    for fields in [
        vec![("devices_order", "sideways"), ("devices_times", "utc")],
        vec![("devices_order", "started")],
    ] {
        let page = browser.post_form("/account/sessions/view", &fields).await;
        assert_eq!(page.status, StatusCode::UNPROCESSABLE_ENTITY, "{fields:?}");
        assert!(
            page.body.contains("devices_order must be one of")
                || page.body.contains("missing field `devices_times`"),
            "{}",
            page.body
        );
    }
}
