//! Endings that explain themselves: the first page after a session ended says which ending
//! it was, a stale form is shown again with a fresh token, and a cross-site post gets a plain
//! refusal in the site's layout.

use axum::body::Body;
use axum::http::{Method, StatusCode};

use crate::harness::{self, PASSWORD, TestApp};

const FORM: &str = "application/x-www-form-urlencoded";

#[tokio::test]
async fn a_stale_log_in_form_is_shown_again_with_a_fresh_token_and_the_name_kept() {
    let app = TestApp::new().await;
    app.register("ivy").await;
    let mut browser = app.browser();
    let form = browser.get("/login").await;
    let stale = form.csrf_field().expect("the log-in form has a token");
    // The anonymous forms' secret is gone (its cookie expired while the page stayed open).
    browser.csrf_cookie = None;
    let body = harness::form_body(&[
        ("name", "ivy"),
        ("password", PASSWORD),
        ("next", "/account"),
        ("csrf_token", &stale),
    ]);
    let headers = [("content-type", FORM), ("sec-fetch-site", "same-origin")];
    let page = browser
        .request(Method::POST, "/login", &headers, Body::from(body))
        .await;
    assert_eq!(page.status, StatusCode::FORBIDDEN, "{}", page.body);
    assert!(page.body.contains("This form had expired"), "{}", page.body);
    assert!(
        page.body.contains("class=\"top\""),
        "in the layout: {}",
        page.body
    );
    assert!(
        page.body.contains("value=\"ivy\""),
        "the name is kept: {}",
        page.body
    );
    assert!(
        page.body.contains("value=\"&#x2f;account\""),
        "next is kept: {}",
        page.body
    );
    assert!(
        !page.body.contains(PASSWORD),
        "never the password: {}",
        page.body
    );
    let fresh = page.csrf_field().expect("a fresh token");
    assert_ne!(fresh, stale);
    let again = harness::form_body(&[
        ("name", "ivy"),
        ("password", PASSWORD),
        ("next", "/account"),
        ("csrf_token", &fresh),
    ]);
    let page = browser
        .request(Method::POST, "/login", &headers, Body::from(again))
        .await;
    assert_eq!(
        page.status,
        StatusCode::SEE_OTHER,
        "the second submit works: {}",
        page.body
    );
    assert_eq!(page.location(), "/account");
}

#[tokio::test]
async fn a_cross_site_post_gets_a_plain_refusal_in_the_layout_with_nothing_shown_back() {
    let app = TestApp::new().await;
    let mut browser = app.browser();
    let token = browser.csrf_token().await;
    let body = harness::form_body(&[
        ("name", "planted-name"),
        ("password", "planted"),
        ("csrf_token", &token),
    ]);
    let headers = [("content-type", FORM), ("sec-fetch-site", "cross-site")];
    let page = browser
        .request(Method::POST, "/login", &headers, Body::from(body))
        .await;
    assert_eq!(page.status, StatusCode::FORBIDDEN);
    assert!(
        page.body.contains("came from another site"),
        "{}",
        page.body
    );
    assert!(
        page.body.contains("class=\"top\""),
        "in the layout: {}",
        page.body
    );
    assert!(!page.body.contains("planted-name"), "{}", page.body);
    assert!(
        !page
            .body
            .contains("<form method=\"post\" action=\"/login\""),
        "{}",
        page.body
    );
}

#[tokio::test]
async fn an_api_refusal_stays_json() {
    let app = TestApp::new().await;
    let mut browser = app.logged_in("jay").await;
    let headers = [
        ("content-type", "application/json"),
        ("sec-fetch-site", "same-origin"),
    ];
    let page = browser
        .request(Method::PATCH, "/api/prefs", &headers, Body::from("{}"))
        .await;
    assert_eq!(page.status, StatusCode::FORBIDDEN);
    assert_eq!(page.json()["error"], "The CSRF token is missing.");
}

#[tokio::test]
async fn the_start_page_after_expiry_says_so_once() {
    let app = TestApp::new().await;
    let mut browser = app.logged_in("kim").await;
    app.idle_out();
    let page = browser.get("/").await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(
        page.body
            .contains("Your session has expired. Please log in again.")
            && page.body.contains("after 5 minutes without activity"),
        "{}",
        page.body
    );
    let page = browser.get("/").await;
    assert!(
        !page.body.contains("has expired"),
        "said once: {}",
        page.body
    );
}

#[tokio::test]
async fn a_session_ended_from_another_device_says_so_on_the_log_in_page() {
    let app = TestApp::new().await;
    let mut laptop = app.logged_in("lee").await;
    let mut phone = app.browser();
    assert_eq!(
        phone.log_in("lee", PASSWORD).await.status,
        StatusCode::SEE_OTHER
    );
    let page = laptop.post_form("/account/sessions/end-others", &[]).await;
    assert_eq!(page.status, StatusCode::SEE_OTHER, "{}", page.body);
    let page = phone.get("/account").await;
    assert_eq!(page.status, StatusCode::SEE_OTHER);
    let login = phone.get(page.location()).await;
    assert!(
        login
            .body
            .contains("Your session was ended from another device."),
        "{}",
        login.body
    );
    assert!(!login.body.contains("has expired"), "{}", login.body);
    // The address alone tells nothing: a forged link shows no reason.
    let forged = app.browser().get("/login?next=/account&expired=1").await;
    assert!(!forged.body.contains("ended"), "{}", forged.body);
    assert!(!forged.body.contains("has expired"), "{}", forged.body);
}

#[tokio::test]
async fn a_replayed_logged_out_cookie_says_logged_out() {
    let app = TestApp::new().await;
    let mut browser = app.logged_in("max").await;
    let cookie = browser.cookie.clone();
    browser.log_out().await;
    browser.cookie = cookie;
    let page = browser.get("/").await;
    assert!(
        page.body.contains("You have been logged out."),
        "{}",
        page.body
    );
}

#[tokio::test]
async fn a_stale_registration_form_keeps_the_names_but_never_the_password() {
    let app = TestApp::new().await;
    let mut browser = app.browser();
    let form = browser.get("/register").await;
    let stale = form
        .csrf_field()
        .expect("the registration form has a token");
    browser.csrf_cookie = None;
    let body = harness::form_body(&[
        ("name", "nia"),
        ("display_name", "Nia N."),
        ("password", PASSWORD),
        ("confirm", PASSWORD),
        ("csrf_token", &stale),
    ]);
    let headers = [("content-type", FORM), ("sec-fetch-site", "same-origin")];
    let page = browser
        .request(Method::POST, "/register", &headers, Body::from(body))
        .await;
    assert_eq!(page.status, StatusCode::FORBIDDEN, "{}", page.body);
    assert!(page.body.contains("This form had expired"), "{}", page.body);
    assert!(page.body.contains("value=\"nia\""), "{}", page.body);
    assert!(page.body.contains("value=\"Nia N.\""), "{}", page.body);
    assert!(!page.body.contains(PASSWORD), "{}", page.body);
    assert!(page.csrf_field().is_some_and(|fresh| fresh != stale));
}

#[tokio::test]
async fn an_account_form_sent_after_expiry_says_the_session_expired_in_the_layout() {
    let app = TestApp::new().await;
    let mut browser = app.logged_in("olga").await;
    let account = browser.get("/account").await;
    let token = account.csrf_field().expect("the account page has forms");
    app.idle_out();
    let body = harness::form_body(&[("display_name", "Olga"), ("csrf_token", &token)]);
    let headers = [("content-type", FORM), ("sec-fetch-site", "same-origin")];
    let page = browser
        .request(
            Method::POST,
            "/account/display-name",
            &headers,
            Body::from(body),
        )
        .await;
    assert_eq!(page.status, StatusCode::FORBIDDEN, "{}", page.body);
    assert!(
        page.body.contains("class=\"top\""),
        "in the layout: {}",
        page.body
    );
    assert!(
        page.body
            .contains("Your session has expired. Please log in again."),
        "{}",
        page.body
    );
    assert!(
        page.body.contains("<a href=\"&#x2f;login\">Log in</a>"),
        "{}",
        page.body
    );
}

#[tokio::test]
async fn a_stale_account_form_of_a_live_session_leads_back_to_its_page() {
    let app = TestApp::new().await;
    let mut browser = app.logged_in("pia").await;
    let body = harness::form_body(&[("display_name", "Pia"), ("csrf_token", "stale")]);
    let headers = [("content-type", FORM), ("sec-fetch-site", "same-origin")];
    let page = browser
        .request(
            Method::POST,
            "/account/display-name",
            &headers,
            Body::from(body),
        )
        .await;
    assert_eq!(page.status, StatusCode::FORBIDDEN, "{}", page.body);
    assert!(page.body.contains("This form had expired"), "{}", page.body);
    assert!(
        page.body.contains("(The CSRF token is invalid.)"),
        "{}",
        page.body
    );
    assert!(
        page.body
            .contains("<a href=\"&#x2f;account\">Back to your account</a>"),
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
async fn an_oversized_form_is_refused_with_413_in_the_layout() {
    let app = TestApp::new().await;
    let mut browser = app.browser();
    let huge = format!("name={}", "x".repeat(2 * 1024 * 1024));
    let headers = [("content-type", FORM), ("sec-fetch-site", "same-origin")];
    let page = browser
        .request(Method::POST, "/login", &headers, Body::from(huge))
        .await;
    assert_eq!(page.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert!(
        page.body.contains("class=\"top\""),
        "in the layout: {}",
        page.body
    );
    assert!(page.body.contains("larger than the limit"), "{}", page.body);
}
