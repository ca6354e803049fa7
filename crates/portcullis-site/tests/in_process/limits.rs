//! The site's limits on requests (finding 10): load shedding beyond `MAX_REQUESTS_IN_FLIGHT`
//! and the request deadline, both answered with the site's own 503 page and `Retry-After`. A
//! request is held inside its handler by a session load that waits for a second one.
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use crate::harness::TestApp;

/// Longest wait for an answer.
const BOUND: Duration = Duration::from_secs(30);

#[tokio::test]
async fn requests_beyond_the_limit_in_flight_are_shed_with_503_and_retry_after() {
    let app = TestApp::with_env(&[("MAX_REQUESTS_IN_FLIGHT", "1")]).await;
    let mut held = app.logged_in("alice").await;
    let mut other = app.browser();
    let before = app.loads();
    app.race_next_loads(2);
    let shed = tokio::time::timeout(BOUND, async {
        tokio::select! {
            page = held.get("/") => panic!("the held request finished: {}", page.status),
            page = async {
                app.until_loads(before + 1).await;
                other.get("/login").await
            } => page,
        }
    })
    .await
    .expect("the second request is answered at once, not queued");
    assert_eq!(shed.status, 503);
    assert_eq!(shed.header("retry-after"), "1");
    assert!(shed.body.contains("The site is busy"), "{}", shed.body);
    assert!(shed.body.contains("href=\"/\""), "a way on: {}", shed.body);
    assert!(
        app.loads() == before + 1,
        "the shed request reached no session"
    );
}

#[tokio::test]
async fn a_request_past_its_deadline_gets_the_sites_503_page() {
    let app = TestApp::with_env(&[("REQUEST_TIMEOUT", "1")]).await;
    let mut held = app.logged_in("alice").await;
    app.race_next_loads(2);
    let page = tokio::time::timeout(BOUND, held.get("/"))
        .await
        .expect("the deadline answers the held request");
    assert_eq!(page.status, 503);
    assert_eq!(page.header("retry-after"), "1");
    assert!(page.body.contains("took too long"), "{}", page.body);
    assert!(page.body.contains("<!doctype html>"), "{}", page.body);
}
