#![allow(clippy::unwrap_used)]
//! Store filling (review finding 8): anonymous form pages carry their CSRF secret in a signed
//! cookie, not in a stored session, and the log-in form still resists login CSRF.

use axum::body::Body;
use axum::http::{Method, Request, StatusCode};

use crate::harness::{PASSWORD, TestApp};

/// Enough cookieless requests that one record each would show, few enough to run in a second.
const FLOOD: usize = 2_000;

#[tokio::test]
async fn cookieless_form_pages_leave_the_store_as_it_was() {
    let app = TestApp::new().await;
    app.register("ann").await;
    let before = app.store.len();
    for i in 0..FLOOD {
        let path = ["/login", "/register", "/api/csrf-token"][i % 3];
        let request = Request::get(path).body(Body::empty()).unwrap();
        let page = app.send(request).await;
        assert_eq!(page.status, StatusCode::OK, "{path}: {}", page.body);
        assert!(
            page.body.contains("csrf_token"),
            "{path} still carries a token"
        );
    }
    assert_eq!(
        app.store.len(),
        before,
        "{FLOOD} cookieless form pages wrote session records"
    );
}

#[tokio::test]
async fn the_log_in_form_needs_its_own_browsers_token() {
    let app = TestApp::new().await;
    app.register("ann").await;
    let login = [("name", "ann"), ("password", PASSWORD)];

    // Another browser's token (the attacker's own form) is refused in the victim's browser.
    let mut attacker = app.browser();
    let theirs = attacker.get("/login").await.csrf_field().unwrap();
    let mut victim = app.browser();
    victim.get("/login").await;
    assert!(victim.csrf_cookie.is_some(), "the form set its CSRF cookie");
    let mut forged = login.to_vec();
    forged.push(("csrf_token", &theirs));
    let page = victim.post_form_raw("/login", &forged).await;
    assert_eq!(page.status, StatusCode::FORBIDDEN, "{}", page.body);
    assert!(
        page.body.contains("The CSRF tokens do not match."),
        "{}",
        page.body
    );

    // The attacker's token without their cookie (a cross-site form post) is refused too.
    let mut cookieless = app.browser();
    let page = cookieless.post_form_raw("/login", &forged).await;
    assert_eq!(page.status, StatusCode::FORBIDDEN, "{}", page.body);
    assert!(
        page.body.contains("The CSRF session token is missing."),
        "{}",
        page.body
    );

    // No token at all.
    let page = victim.post_form_raw("/login", &login).await;
    assert_eq!(page.status, StatusCode::FORBIDDEN, "{}", page.body);
    assert!(
        page.body.contains("The CSRF token is missing."),
        "{}",
        page.body
    );

    // The form's own token logs in, and the log-in stores the session and drops the cookie.
    let form = victim.get("/login").await.csrf_field().unwrap();
    let mut own = login.to_vec();
    own.push(("csrf_token", &form));
    let page = victim.post_form_raw("/login", &own).await;
    assert_eq!(page.status, StatusCode::SEE_OTHER, "{}", page.body);
    assert!(victim.cookie.is_some(), "logged in: a session cookie");
    assert!(
        victim.csrf_cookie.is_none(),
        "the log-in ends the pre-session CSRF cookie"
    );
    let dashboard = victim.get("/account").await;
    assert_eq!(dashboard.status, StatusCode::OK, "{}", dashboard.body);

    // The pre-login token no longer posts: the log-in rotated the secret.
    let page = victim
        .request(
            Method::POST,
            "/logout",
            &[("content-type", "application/x-www-form-urlencoded")],
            Body::from(format!("csrf_token={form}")),
        )
        .await;
    assert_eq!(page.status, StatusCode::FORBIDDEN, "{}", page.body);
}
