//! The route table, walked: every unsafe method of every route the site declares
//! (`portcullis_site::unsafe_routes`, the declaration `app()` mounts) refuses a request without
//! a CSRF token, and the same request with a token reaches the route (so a 404 or 405 cannot
//! pass for a refusal).

use axum::body::Body;
use axum::http::StatusCode;

use crate::harness::TestApp;

const MISSING: &str = "The CSRF token is missing.";

#[tokio::test]
async fn every_unsafe_route_and_method_without_a_token_is_refused_with_403() {
    // One registration per route and method, from one address: above the default 10 an hour.
    let app = TestApp::with_env(&[("REGISTER_RATE_LIMIT", "100/1h")]).await;
    let routes = portcullis_site::unsafe_routes();
    let mut pairs = 0;
    for (n, (path, methods)) in routes.into_iter().enumerate() {
        for (m, method) in methods.into_iter().enumerate() {
            // Logged in, from a modern browser of the site itself: only the token is missing.
            let mut browser = app.logged_in(&format!("user{n}x{m}")).await;
            for content_type in ["application/x-www-form-urlencoded", "application/json"] {
                let headers = [
                    ("content-type", content_type),
                    ("sec-fetch-site", "same-origin"),
                ];
                let page = browser
                    .request(method.clone(), path, &headers, Body::from("csrf=no"))
                    .await;
                assert_eq!(
                    page.status,
                    StatusCode::FORBIDDEN,
                    "{method} {path} {content_type}"
                );
                assert!(
                    page.body.contains(MISSING),
                    "{method} {path}: {}",
                    page.body
                );
            }
            let token = browser.csrf_token().await;
            let headers = [
                ("content-type", "application/x-www-form-urlencoded"),
                ("sec-fetch-site", "same-origin"),
                ("x-csrftoken", token.as_str()),
            ];
            let page = browser
                .request(method.clone(), path, &headers, Body::empty())
                .await;
            assert!(
                ![
                    StatusCode::FORBIDDEN,
                    StatusCode::NOT_FOUND,
                    StatusCode::METHOD_NOT_ALLOWED
                ]
                .contains(&page.status),
                "{method} {path} with a token: {} {}",
                page.status,
                page.body
            );
            pairs += 1;
        }
    }
    assert!(
        pairs >= 10,
        "only {pairs} unsafe route/method pairs declared"
    );
}
