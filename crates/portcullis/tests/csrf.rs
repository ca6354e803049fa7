//! The CSRF layer's promises, driven through a real axum router with `oneshot`: the origin check
//! and the token check together, where tokens are read, body limits, exemptions, answers and
//! logging.
#![allow(clippy::unwrap_used)]

mod support;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::http::{Method, Request, StatusCode};
use axum::routing::{any, get, post};
use http_body_util::BodyExt;
use portcullis::clock::ManualClock;
use portcullis::config::ConfigLoader;
use portcullis::csrf::{CsrfLayer, CsrfToken};
use portcullis::keys::KeyRing;
use portcullis::store::MemoryStore;
use portcullis::{Session, SessionError, SessionLayer};
use support::app::{cookie_pair, send, set_cookie};
use tower::ServiceExt;

const KEY: &[u8] = b"the current secret key, 32 bytes or more";
const HOST: &str = "example.com";
const MISSING: &str = "The CSRF token is missing.";
const SESSION_MISSING: &str = "The CSRF session token is missing.";
const EXPIRED: &str = "The CSRF token has expired.";
const INVALID: &str = "The CSRF token is invalid.";
const MISMATCH: &str = "The CSRF tokens do not match.";
const CROSS_ORIGIN: &str = "Cross-origin request refused.";

/// Routes: token pages, an echo of the body under any method, and session lifecycle actions.
fn routes() -> Router {
    Router::new()
        .route("/token", get(|csrf: CsrfToken| async move { csrf.token() }))
        .route("/tokens", get(thousand_tokens))
        .route("/page", get(page))
        .route("/plain", get(|| async { "plain" }))
        .route("/submit", any(echo))
        .route("/api/submit", any(echo))
        .route("/hook", any(|| async { "hook" }))
        .route("/login", post(login))
        .route("/destroy", post(destroy))
}

async fn echo(body: Bytes) -> Bytes {
    body
}

async fn thousand_tokens(csrf: CsrfToken) -> String {
    (0..1000)
        .map(|_| csrf.token())
        .collect::<Vec<_>>()
        .join("\n")
}

async fn page(csrf: CsrfToken) -> String {
    format!("{}\n{}", csrf.meta_tag(), csrf.hidden_input())
}

/// What a login does to the session: a new id, the CSRF secret dropped, a user recorded.
async fn login(session: Session) -> Result<&'static str, SessionError> {
    session.regenerate().await?;
    session.set_user_id(Some("alice".to_owned())).await?;
    Ok("logged in")
}

async fn destroy(session: Session) -> Result<&'static str, SessionError> {
    session.destroy().await?;
    Ok("destroyed")
}

struct Fixture {
    app: Router,
    clock: ManualClock,
}

fn fixture(csrf: impl FnOnce(CsrfLayer) -> CsrfLayer) -> Fixture {
    fixture_with(csrf, |s| s)
}

fn fixture_with(
    csrf: impl FnOnce(CsrfLayer) -> CsrfLayer,
    session: impl FnOnce(SessionLayer) -> SessionLayer,
) -> Fixture {
    let clock = ManualClock::at(std::time::UNIX_EPOCH + Duration::from_secs(1_800_000_000));
    let store = MemoryStore::with_clock(Arc::new(clock.clone()));
    let sessions =
        SessionLayer::new(store, KeyRing::new(KEY, &[])).with_clock(Arc::new(clock.clone()));
    Fixture {
        app: routes()
            .layer(csrf(CsrfLayer::new()))
            .layer(session(sessions)),
        clock,
    }
}

/// A session cookie and a token for it; with `cookie`, a new token for that session.
async fn token(app: &Router, cookie: Option<&str>) -> (String, String) {
    let mut request = Request::get("/token");
    if let Some(cookie) = cookie {
        request = request.header("cookie", cookie);
    }
    let (response, body) = send(app, request.body(Body::empty()).unwrap()).await;
    assert_eq!(response.status(), StatusCode::OK, "{body}");
    let cookie = set_cookie(&response)
        .map_or_else(|| cookie.unwrap().to_owned(), |_| cookie_pair(&response));
    (cookie, body)
}

/// A header name and value.
type Header<'a> = (&'a str, &'a str);

/// A request to `path` with `method`, optional cookie, extra headers and body.
fn request(
    method: Method,
    path: &str,
    cookie: Option<&str>,
    headers: &[Header<'_>],
    body: impl Into<Body>,
) -> Request<Body> {
    let mut builder = Request::builder()
        .method(method)
        .uri(path)
        .header("host", HOST);
    if let Some(cookie) = cookie {
        builder = builder.header("cookie", cookie);
    }
    for (name, value) in headers {
        builder = builder.header(*name, *value);
    }
    builder.body(body.into()).unwrap()
}

/// A POST to `/submit` with the token in `X-CSRFToken`.
fn post_with_token(cookie: Option<&str>, token: &str) -> Request<Body> {
    request(
        Method::POST,
        "/submit",
        cookie,
        &[("x-csrftoken", token)],
        "",
    )
}

/// The status and the body text.
async fn outcome(app: &Router, request: Request<Body>) -> (StatusCode, String) {
    let (response, body) = send(app, request).await;
    (response.status(), body)
}

async fn send_bytes(app: &Router, request: Request<Body>) -> (StatusCode, Bytes) {
    let response = app.clone().oneshot(request).await.unwrap();
    let status = response.status();
    (
        status,
        response.into_body().collect().await.unwrap().to_bytes(),
    )
}

/// Asserts a 403 whose page gives `reason`.
async fn assert_refused(app: &Router, request: Request<Body>, reason: &str) {
    let (status, body) = outcome(app, request).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    assert!(body.contains(reason), "expected {reason:?} in {body}");
}

// Origin-check outcomes, for readability of the table below.
const PASS: bool = true;
const REFUSE: bool = false;

#[tokio::test]
async fn method_fetch_site_origin_and_token_matrix() {
    let f = fixture(|l| l);
    let (cookie, valid) = token(&f.app, None).await;
    let methods = [
        (Method::POST, false),
        (Method::PUT, false),
        (Method::PATCH, false),
        (Method::DELETE, false),
        (Method::GET, true),
        (Method::HEAD, true),
        (Method::OPTIONS, true),
        (Method::TRACE, true),
    ];
    // Over plain HTTP (no `Https` marker), so the site's origin is `http://example.com`.
    let origins = [
        None,
        Some("http://example.com"),
        Some("https://attacker.example"),
        Some("null"),
    ];
    // Rows: Sec-Fetch-Site. Columns: Origin absent, the site's, foreign, "null". A foreign
    // Origin is refused whatever Sec-Fetch-Site says; `null` beside it is a privacy setting.
    let origin_check: [(Option<&str>, [bool; 4]); 5] = [
        (None, [PASS, PASS, REFUSE, REFUSE]),
        (Some("same-origin"), [PASS, PASS, REFUSE, PASS]),
        (Some("none"), [PASS, PASS, REFUSE, PASS]),
        (Some("same-site"), [REFUSE; 4]),
        (Some("cross-site"), [REFUSE; 4]),
    ];
    // (token sent, refusal when the origin check passes)
    let tokens = [
        (None, Some(MISSING)),
        (Some(valid.as_str()), None),
        (Some("not-a-token"), Some(INVALID)),
    ];
    let mut cases = 0;
    for (method, safe) in &methods {
        for (fetch_site, verdicts) in &origin_check {
            for (origin, passes_origin_check) in origins.iter().zip(verdicts) {
                for (token, token_refusal) in &tokens {
                    let mut headers = Vec::new();
                    headers.extend(fetch_site.map(|v| ("sec-fetch-site", v)));
                    headers.extend(origin.map(|v| ("origin", v)));
                    headers.extend(token.map(|v| ("x-csrftoken", v)));
                    let req = request(method.clone(), "/submit", Some(&cookie), &headers, "");
                    let expected = match (safe, passes_origin_check, token_refusal) {
                        (true, _, _) => None,
                        (false, false, _) if matches!(fetch_site, Some("same-origin" | "none")) => {
                            Some(ORIGIN_FAILED)
                        }
                        (false, false, _) => Some(CROSS_ORIGIN),
                        (false, true, refusal) => *refusal,
                    };
                    let (status, body) = outcome(&f.app, req).await;
                    let case = format!("{method} {fetch_site:?} {origin:?} {token:?}");
                    match expected {
                        None => assert_eq!(status, StatusCode::OK, "{case}: {body}"),
                        Some(reason) => {
                            assert_eq!(status, StatusCode::FORBIDDEN, "{case}");
                            assert!(body.contains(reason), "{case}: {body}");
                        }
                    }
                    cases += 1;
                }
            }
        }
    }
    assert_eq!(cases, 8 * 5 * 4 * 3);
}

#[tokio::test]
async fn a_thousand_renders_of_one_secret_are_distinct_and_all_valid() {
    let f = fixture(|l| l);
    let (cookie, _) = token(&f.app, None).await;
    let (response, body) = send(
        &f.app,
        request(Method::GET, "/tokens", Some(&cookie), &[], ""),
    )
    .await;
    assert!(set_cookie(&response).is_none(), "the secret already exists");
    let tokens: Vec<&str> = body.lines().collect();
    assert_eq!(tokens.len(), 1000);
    let distinct: std::collections::HashSet<&str> = tokens.iter().copied().collect();
    assert_eq!(distinct.len(), 1000, "every render is a new string");
    for token in tokens {
        let (status, body) = outcome(&f.app, post_with_token(Some(&cookie), token)).await;
        assert_eq!(status, StatusCode::OK, "{body}");
    }
}

#[tokio::test]
async fn a_token_is_valid_until_the_time_limit_and_expired_after() {
    let f = fixture_with(|l| l, |s| s.with_idle_lifetime(Duration::from_secs(7200)));
    let (cookie, token) = token(&f.app, None).await;
    f.clock.advance(Duration::from_secs(3599));
    let (status, _) = outcome(&f.app, post_with_token(Some(&cookie), &token)).await;
    assert_eq!(status, StatusCode::OK, "valid one second before the limit");
    f.clock.advance(Duration::from_secs(2));
    assert_refused(&f.app, post_with_token(Some(&cookie), &token), EXPIRED).await;
    let (_, fresh) = self::token(&f.app, Some(&cookie)).await;
    let (status, _) = outcome(&f.app, post_with_token(Some(&cookie), &fresh)).await;
    assert_eq!(status, StatusCode::OK, "a new render is valid again");
}

#[tokio::test]
async fn without_a_time_limit_a_token_lives_as_long_as_its_session() {
    let days = Duration::from_secs(30 * 86_400);
    let f = fixture_with(
        |l| l.with_time_limit(None),
        |s| s.with_idle_lifetime(days).with_absolute_lifetime(days),
    );
    let (cookie, token) = token(&f.app, None).await;
    f.clock.advance(days - Duration::from_secs(86_400));
    let (status, body) = outcome(&f.app, post_with_token(Some(&cookie), &token)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
}

#[tokio::test]
async fn each_token_failure_gets_its_flask_wtf_reason() {
    let f = fixture(|l| l);
    let (cookie_a, token_a) = token(&f.app, None).await;
    let (cookie_b, _) = token(&f.app, None).await;
    assert_ne!(cookie_a, cookie_b);
    // (cookie, token, reason)
    let cases: [(Option<&str>, Option<&str>, &str); 6] = [
        (Some(&cookie_b), Some(&token_a), MISMATCH),
        (None, Some(&token_a), SESSION_MISSING),
        (Some(&cookie_a), Some("garbage"), INVALID),
        (
            Some(&cookie_a),
            Some(&token_a[..token_a.len() - 2]),
            INVALID,
        ),
        (Some(&cookie_a), None, MISSING),
        (Some(&cookie_a), Some(""), MISSING),
    ];
    for (cookie, token, reason) in cases {
        let headers: Vec<(&str, &str)> = token.map(|t| ("x-csrftoken", t)).into_iter().collect();
        assert_refused(
            &f.app,
            request(Method::POST, "/submit", cookie, &headers, ""),
            reason,
        )
        .await;
    }
}

#[tokio::test]
async fn tokens_are_read_from_both_headers_and_both_form_encodings_and_the_body_is_kept() {
    let f = fixture(|l| l);
    let (cookie, token) = token(&f.app, None).await;
    let urlencoded = format!("title=Hello+world&csrf_token={token}&tags=a&tags=b");
    let boundary = "----portcullis7MA4YWxk";
    let mut multipart = format!(
        "--{boundary}\r\nContent-Disposition: form-data; name=\"upload\"; filename=\"a.bin\"\r\n\
         Content-Type: application/octet-stream\r\n\r\n"
    )
    .into_bytes();
    multipart.extend((0..=255u8).cycle().take(4096));
    multipart.extend(
        format!(
            "\r\n--{boundary}\r\nContent-Disposition: form-data; name=\"csrf_token\"\r\n\r\n\
             {token}\r\n--{boundary}--\r\n"
        )
        .into_bytes(),
    );
    let multipart_type = format!("multipart/form-data; boundary={boundary}");
    let json = br#"{"note":"kept"}"#.to_vec();
    // (name, headers, body)
    let cases: [(&str, Vec<Header<'_>>, Vec<u8>); 4] = [
        (
            "X-CSRFToken header",
            vec![
                ("x-csrftoken", &token),
                ("content-type", "application/json"),
            ],
            json.clone(),
        ),
        (
            "X-CSRF-Token header",
            vec![
                ("x-csrf-token", &token),
                ("content-type", "application/json"),
            ],
            json,
        ),
        (
            "url-encoded field",
            vec![("content-type", "application/x-www-form-urlencoded")],
            urlencoded.into_bytes(),
        ),
        (
            "multipart field after a binary upload",
            vec![("content-type", &multipart_type)],
            multipart,
        ),
    ];
    for (name, headers, body) in cases {
        let req = request(
            Method::POST,
            "/submit",
            Some(&cookie),
            &headers,
            body.clone(),
        );
        let (status, echoed) = send_bytes(&f.app, req).await;
        assert_eq!(status, StatusCode::OK, "{name}: {echoed:?}");
        assert_eq!(echoed, body, "{name}: the handler gets the body unchanged");
    }
}

#[tokio::test]
async fn a_token_in_the_query_string_or_a_cookie_is_not_accepted() {
    let f = fixture(|l| l);
    let (cookie, token) = token(&f.app, None).await;
    let in_query = format!("/submit?csrf_token={token}");
    assert_refused(
        &f.app,
        request(Method::POST, &in_query, Some(&cookie), &[], ""),
        MISSING,
    )
    .await;
    let with_cookie = format!("{cookie}; csrf_token={token}");
    assert_refused(
        &f.app,
        request(Method::POST, "/submit", Some(&with_cookie), &[], ""),
        MISSING,
    )
    .await;
    // A JSON body is not a form: its "csrf_token" member is not read.
    let json = format!("{{\"csrf_token\":\"{token}\"}}");
    assert_refused(
        &f.app,
        request(
            Method::POST,
            "/submit",
            Some(&cookie),
            &[("content-type", "application/json")],
            json,
        ),
        MISSING,
    )
    .await;
}

#[tokio::test]
async fn a_form_body_over_the_limit_is_refused_with_413_announced_or_streamed() {
    const LIMIT: usize = 1024;
    let f = fixture(|l| l.with_max_body(LIMIT));
    let (cookie, token) = token(&f.app, None).await;
    let form = [("content-type", "application/x-www-form-urlencoded")];
    let fits = format!("csrf_token={token}&pad={}", "a".repeat(LIMIT - 160));
    assert!(fits.len() <= LIMIT);
    let (status, _) = outcome(
        &f.app,
        request(Method::POST, "/submit", Some(&cookie), &form, fits),
    )
    .await;
    assert_eq!(status, StatusCode::OK);

    let big = format!("csrf_token={token}&pad={}", "a".repeat(LIMIT));
    let declared = big.len().to_string();
    let with_length = [form[0], ("content-length", declared.as_str())];
    let (status, body) = outcome(
        &f.app,
        request(Method::POST, "/submit", Some(&cookie), &with_length, big),
    )
    .await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{body}");

    // No Content-Length and a body that never ends: refused once the limit is passed, so it is
    // never buffered without bound.
    let chunk = Bytes::from(vec![b'a'; 256]);
    let endless = futures_util::stream::repeat_with(move || Ok::<_, std::io::Error>(chunk.clone()));
    let endless = request(
        Method::POST,
        "/submit",
        Some(&cookie),
        &form,
        Body::from_stream(endless),
    );
    // Bounded in time too: an unbounded read would never answer.
    let (status, body) = tokio::time::timeout(Duration::from_secs(10), outcome(&f.app, endless))
        .await
        .expect("the endless body is cut off at the limit");
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{body}");

    // A token in the header: the body is the handler's business, not read here.
    let header = [form[0], ("x-csrftoken", token.as_str())];
    let large = "a".repeat(LIMIT * 4);
    let (status, echoed) = outcome(
        &f.app,
        request(
            Method::POST,
            "/submit",
            Some(&cookie),
            &header,
            large.clone(),
        ),
    )
    .await;
    assert_eq!((status, echoed), (StatusCode::OK, large));
}

#[tokio::test]
async fn an_exemption_matches_only_its_exact_method_and_path() {
    let f = fixture(|l| {
        l.exempt(Method::POST, "/hook")
            .exempt(Method::GET, "/submit")
    });
    let cross_site = [("sec-fetch-site", "cross-site")];
    let (status, body) = outcome(
        &f.app,
        request(Method::POST, "/hook", None, &cross_site, ""),
    )
    .await;
    assert_eq!(
        (status, body.as_str()),
        (StatusCode::OK, "hook"),
        "exempt: both checks skipped"
    );
    let (status, body) = outcome(&f.app, request(Method::POST, "/hook", None, &[], "")).await;
    assert_eq!((status, body.as_str()), (StatusCode::OK, "hook"));
    // (method, path): none of these is the exempt route.
    let not_exempt = [
        (Method::POST, "/hook/"),
        (Method::POST, "/hook//"),
        (Method::POST, "/a/../hook"),
        (Method::POST, "/%68ook"),
        (Method::POST, "/HOOK"),
        (Method::PUT, "/hook"),
        (Method::POST, "/submit"),
    ];
    for (method, path) in not_exempt {
        assert_refused(
            &f.app,
            request(method.clone(), path, None, &cross_site, ""),
            CROSS_ORIGIN,
        )
        .await;
        assert_refused(&f.app, request(method, path, None, &[], ""), MISSING).await;
    }
}

#[tokio::test]
async fn turning_tokens_off_keeps_the_origin_check() {
    let f = fixture(|l| l.with_enabled(false));
    let (status, _) = outcome(&f.app, request(Method::POST, "/submit", None, &[], "x")).await;
    assert_eq!(status, StatusCode::OK, "no token needed");
    let same_origin = [("sec-fetch-site", "same-origin")];
    let (status, _) = outcome(
        &f.app,
        request(Method::DELETE, "/submit", None, &same_origin, ""),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    for headers in [
        [("sec-fetch-site", "cross-site")],
        [("origin", "https://attacker.example")],
    ] {
        assert_refused(
            &f.app,
            request(Method::POST, "/submit", None, &headers, ""),
            CROSS_ORIGIN,
        )
        .await;
    }
}

#[tokio::test]
async fn a_trusted_origin_passes_the_origin_check_but_still_needs_a_token() {
    let f = fixture(|l| l.with_trusted_origin("https://app.example.com").unwrap());
    let (cookie, token) = token(&f.app, None).await;
    let trusted = [
        ("sec-fetch-site", "cross-site"),
        ("origin", "https://app.example.com"),
    ];
    assert_refused(
        &f.app,
        request(Method::POST, "/submit", Some(&cookie), &trusted, ""),
        MISSING,
    )
    .await;
    let with_token = [trusted[0], trusted[1], ("x-csrftoken", token.as_str())];
    let (status, _) = outcome(
        &f.app,
        request(Method::POST, "/submit", Some(&cookie), &with_token, ""),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    for origin in [
        "https://app.example.com.attacker.io",
        "http://app.example.com",
    ] {
        let headers = [
            trusted[0],
            ("origin", origin),
            ("x-csrftoken", token.as_str()),
        ];
        assert_refused(
            &f.app,
            request(Method::POST, "/submit", Some(&cookie), &headers, ""),
            CROSS_ORIGIN,
        )
        .await;
    }
}

#[tokio::test]
async fn refusals_are_json_under_the_api_prefix_and_html_elsewhere() {
    let f = fixture(|l| l);
    let cross_site = [("sec-fetch-site", "cross-site")];
    let accept_json = [("accept", "application/json")];
    // (path, headers, reason, JSON?)
    let cases: [(&str, &[Header<'_>], &str, bool); 6] = [
        ("/api/submit", &[], MISSING, true),
        ("/api/submit", &cross_site, CROSS_ORIGIN, true),
        ("/submit", &[], MISSING, false),
        ("/submit", &cross_site, CROSS_ORIGIN, false),
        ("/submit", &accept_json, MISSING, true),
        (
            "/api/submit",
            &[("x-csrftoken", "bad")],
            SESSION_MISSING,
            true,
        ),
    ];
    for (path, headers, reason, json) in cases {
        let (response, body) = send(&f.app, request(Method::POST, path, None, headers, "")).await;
        assert_eq!(response.status(), StatusCode::FORBIDDEN, "{path}");
        let content_type = response.headers()["content-type"].to_str().unwrap();
        if json {
            assert_eq!(content_type, "application/json", "{path} {headers:?}");
            let value: serde_json::Value = serde_json::from_str(&body).unwrap();
            assert_eq!(value, serde_json::json!({ "error": reason, "status": 403 }));
        } else {
            assert_eq!(
                content_type, "text/html; charset=utf-8",
                "{path} {headers:?}"
            );
            assert!(
                body.starts_with("<!doctype html>") && body.contains(reason),
                "{body}"
            );
        }
    }
}

#[tokio::test]
async fn login_and_logout_make_earlier_tokens_fail() {
    let f = fixture(|l| l);
    let (cookie, old) = token(&f.app, None).await;
    let (response, _) = send(
        &f.app,
        request(
            Method::POST,
            "/login",
            Some(&cookie),
            &[("x-csrftoken", &old)],
            "",
        ),
    )
    .await;
    assert_eq!(response.status(), StatusCode::OK);
    let renewed = cookie_pair(&response);
    assert_ne!(renewed, cookie);
    // The regenerated session was created with a secret of its own.
    assert_refused(&f.app, post_with_token(Some(&renewed), &old), MISMATCH).await;
    let (_, new) = token(&f.app, Some(&renewed)).await;
    assert_refused(&f.app, post_with_token(Some(&renewed), &old), MISMATCH).await;
    let (status, _) = outcome(&f.app, post_with_token(Some(&renewed), &new)).await;
    assert_eq!(status, StatusCode::OK);

    let (response, _) = send(
        &f.app,
        request(
            Method::POST,
            "/destroy",
            Some(&renewed),
            &[("x-csrftoken", &new)],
            "",
        ),
    )
    .await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_refused(
        &f.app,
        post_with_token(Some(&renewed), &new),
        SESSION_MISSING,
    )
    .await;
}

#[tokio::test]
async fn safe_requests_never_create_a_secret_and_pages_render_both_helpers() {
    let f = fixture(|l| l);
    for method in [Method::GET, Method::HEAD, Method::OPTIONS, Method::TRACE] {
        let (response, _) = send(&f.app, request(method.clone(), "/submit", None, &[], "")).await;
        assert_eq!(response.status(), StatusCode::OK, "{method}");
        assert!(
            set_cookie(&response).is_none(),
            "{method}: no session was started"
        );
    }
    let (response, body) = send(&f.app, request(Method::GET, "/page", None, &[], "")).await;
    let cookie = cookie_pair(&response);
    let (meta, input) = body.split_once('\n').unwrap();
    let meta_token = meta
        .strip_prefix("<meta name=\"csrf-token\" content=\"")
        .and_then(|rest| rest.strip_suffix("\">"))
        .unwrap();
    let input_token = input
        .strip_prefix("<input type=\"hidden\" name=\"csrf_token\" value=\"")
        .and_then(|rest| rest.strip_suffix("\">"))
        .unwrap();
    assert_ne!(meta_token, input_token);
    for token in [meta_token, input_token] {
        let (status, _) = outcome(&f.app, post_with_token(Some(&cookie), token)).await;
        assert_eq!(status, StatusCode::OK);
    }
}

#[tokio::test]
async fn without_a_session_layer_outside_unsafe_requests_get_a_500_naming_the_mistake() {
    let keys = || KeyRing::new(KEY, &[]);
    let apps = [
        ("no session layer", routes().layer(CsrfLayer::new())),
        (
            "session layer inside",
            routes()
                .layer(SessionLayer::new(MemoryStore::new(), keys()))
                .layer(CsrfLayer::new()),
        ),
    ];
    for (name, app) in apps {
        let (status, body) = outcome(&app, request(Method::POST, "/submit", None, &[], "")).await;
        assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR, "{name}");
        assert!(
            body.contains("Add SessionLayer outside CsrfLayer"),
            "{name}: {body}"
        );
        let (status, _) = outcome(&app, request(Method::GET, "/plain", None, &[], "")).await;
        assert_eq!(
            status,
            StatusCode::OK,
            "{name}: safe requests are not affected"
        );
    }
}

#[tokio::test]
async fn from_config_applies_the_csrf_settings() {
    let state = tempfile::tempdir().unwrap();
    let config = ConfigLoader::new()
        .env(
            [
                ("MAX_CONTENT_LENGTH", "64"),
                ("WTF_CSRF_TIME_LIMIT", "10s"),
                ("CSRF_TRUSTED_ORIGINS", "https://app.example.com"),
            ]
            .map(|(k, v)| (k.to_owned(), v.to_owned())),
        )
        .no_dotenv()
        .state_dir(state.path())
        .load()
        .unwrap();
    let layer = CsrfLayer::from_config(&config).unwrap();
    let f = fixture(|_| layer);
    let (cookie, token) = token(&f.app, None).await;
    let trusted = [
        ("origin", "https://app.example.com"),
        ("x-csrftoken", token.as_str()),
    ];
    let (status, _) = outcome(
        &f.app,
        request(Method::POST, "/submit", Some(&cookie), &trusted, ""),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "trusted origin");
    let form = [("content-type", "application/x-www-form-urlencoded")];
    let (status, _) = outcome(
        &f.app,
        request(
            Method::POST,
            "/submit",
            Some(&cookie),
            &form,
            "a".repeat(65),
        ),
    )
    .await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "MAX_CONTENT_LENGTH");
    f.clock.advance(Duration::from_secs(11));
    assert_refused(&f.app, post_with_token(Some(&cookie), &token), EXPIRED).await;

    let mut off = config.clone();
    off.wtf_csrf_enabled = false;
    let f = fixture(|_| CsrfLayer::from_config(&off).unwrap());
    let (status, _) = outcome(&f.app, request(Method::POST, "/submit", None, &[], "")).await;
    assert_eq!(status, StatusCode::OK, "WTF_CSRF_ENABLED=false");

    let mut bad = config;
    bad.csrf_trusted_origins = vec!["https://app.example.com/".to_owned()];
    let error = CsrfLayer::from_config(&bad).unwrap_err().to_string();
    assert!(
        error.starts_with("invalid CSRF_TRUSTED_ORIGINS=\"https://app.example.com/\""),
        "{error}"
    );
}

/// Every event on the security target, as `field=value` text.
#[derive(Clone, Default)]
struct SecurityLog(Arc<Mutex<Vec<String>>>);

impl tracing::Subscriber for SecurityLog {
    fn enabled(&self, metadata: &tracing::Metadata<'_>) -> bool {
        metadata.target() == "portcullis::security"
    }
    fn new_span(&self, _: &tracing::span::Attributes<'_>) -> tracing::span::Id {
        tracing::span::Id::from_u64(1)
    }
    fn record(&self, _: &tracing::span::Id, _: &tracing::span::Record<'_>) {}
    fn record_follows_from(&self, _: &tracing::span::Id, _: &tracing::span::Id) {}
    fn event(&self, event: &tracing::Event<'_>) {
        struct Text(String);
        impl tracing::field::Visit for Text {
            fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
                self.0.push_str(&format!("{}={value:?} ", field.name()));
            }
        }
        let mut text = Text(format!("{} ", event.metadata().level()));
        event.record(&mut text);
        self.0.lock().unwrap().push(text.0);
    }
    fn enter(&self, _: &tracing::span::Id) {}
    fn exit(&self, _: &tracing::span::Id) {}
}

#[tokio::test(flavor = "current_thread")]
async fn each_refusal_is_logged_once_with_its_reason_and_never_the_token() {
    let log = SecurityLog::default();
    let _guard = tracing::subscriber::set_default(log.clone());
    let f = fixture(|l| l);
    let (cookie, token) = token(&f.app, None).await;
    let (_, other_token) = self::token(&f.app, None).await;
    assert!(
        log.0.lock().unwrap().is_empty(),
        "issuing tokens logs nothing"
    );

    let (status, _) = outcome(&f.app, post_with_token(Some(&cookie), &token)).await;
    assert_eq!(status, StatusCode::OK);
    assert!(log.0.lock().unwrap().is_empty(), "success logs nothing");

    // (request, reason)
    let cases = [
        (post_with_token(Some(&cookie), &other_token), MISMATCH),
        (
            request(
                Method::PUT,
                "/submit",
                None,
                &[("sec-fetch-site", "cross-site")],
                "",
            ),
            CROSS_ORIGIN,
        ),
        (
            request(Method::DELETE, "/submit", Some(&cookie), &[], ""),
            MISSING,
        ),
    ];
    for (request, reason) in cases {
        let method = request.method().to_string();
        log.0.lock().unwrap().clear();
        let (status, _) = outcome(&f.app, request).await;
        assert_eq!(status, StatusCode::FORBIDDEN);
        let lines = log.0.lock().unwrap().clone();
        assert_eq!(lines.len(), 1, "{reason}: {lines:?}");
        let line = &lines[0];
        assert!(line.starts_with("WARN "), "{line}");
        assert!(line.contains(&format!("reason={reason}")), "{line}");
        assert!(line.contains(&format!("method={method}")), "{line}");
        assert!(line.contains("path=\"/submit\""), "{line}");
        assert!(
            !line.contains(&token) && !line.contains(&other_token),
            "{line}"
        );
    }
}

/// Django's reason for an `Origin` that is not the site's.
const ORIGIN_FAILED: &str = "Origin checking failed - ";

/// `request(…)` as it arrives over HTTPS (a TLS-terminating proxy's word, or the URI).
fn over_https(mut request: Request<Body>) -> Request<Body> {
    request.extensions_mut().insert(portcullis::csrf::Https);
    request
}

#[tokio::test]
async fn an_origin_must_equal_the_site_origin_in_scheme_host_and_port() {
    let f = fixture(|l| l);
    let (cookie, token) = token(&f.app, None).await;
    let post = |origin: &str, https: bool| {
        let headers = [("origin", origin), ("x-csrftoken", token.as_str())];
        let request = request(Method::POST, "/submit", Some(&cookie), &headers, "");
        if https { over_https(request) } else { request }
    };
    // (Origin, over HTTPS, passes)
    let cases = [
        ("https://example.com", true, true),
        ("http://example.com", false, true),
        // The scheme counts: an http page (an http vhost, a MITM) cannot post to https.
        ("http://example.com", true, false),
        ("https://example.com", false, false),
        ("https://example.com:8443", true, false),
        ("https://example.com.attacker.example", true, false),
        ("https://site.attacker.example", true, false),
        ("https://example.com/", true, false),
    ];
    for (origin, https, passes) in cases {
        let (status, body) = outcome(&f.app, post(origin, https)).await;
        if passes {
            assert_eq!(status, StatusCode::OK, "{origin} https={https}: {body}");
        } else {
            assert_eq!(status, StatusCode::FORBIDDEN, "{origin} https={https}");
            assert!(
                body.contains(ORIGIN_FAILED) || body.contains(CROSS_ORIGIN),
                "{origin}: {body}"
            );
        }
    }
    // Even beside a Sec-Fetch-Site that passes, a foreign Origin is refused, with Django's words.
    let headers = [
        ("sec-fetch-site", "same-origin"),
        ("origin", "http://example.com"),
        ("x-csrftoken", token.as_str()),
    ];
    let request = over_https(request(
        Method::POST,
        "/submit",
        Some(&cookie),
        &headers,
        "",
    ));
    assert_refused(
        &f.app,
        request,
        "Origin checking failed - http://example.com does not match any trusted origins.",
    )
    .await;
}

#[tokio::test]
async fn over_https_a_request_without_fetch_metadata_or_origin_needs_a_same_origin_referer() {
    let f = fixture(|l| l.with_trusted_origin("https://app.example.com").unwrap());
    let (cookie, token) = token(&f.app, None).await;
    let post = |referer: Option<&str>, https: bool| {
        let mut headers = vec![("x-csrftoken", token.as_str())];
        headers.extend(referer.map(|r| ("referer", r)));
        let request = request(Method::POST, "/submit", Some(&cookie), &headers, "");
        if https { over_https(request) } else { request }
    };
    let refused = [
        (None, "Referer checking failed - no Referer."),
        (
            Some("not a url"),
            "Referer checking failed - Referer is malformed.",
        ),
        (
            Some("https://"),
            "Referer checking failed - Referer is malformed.",
        ),
        (
            Some("http://example.com/form"),
            "Referer checking failed - Referer is insecure while host is secure.",
        ),
        (
            Some("https://attacker.example/form"),
            "Referer checking failed - https://attacker.example/form does not match any \
             trusted origins.",
        ),
        (
            Some("https://example.com.attacker.example/"),
            "does not match any trusted origins.",
        ),
        (
            Some("https://example.com:8443/"),
            "does not match any trusted origins.",
        ),
    ];
    for (referer, reason) in refused {
        assert_refused(&f.app, post(referer, true), reason).await;
    }
    for referer in [
        "https://example.com/form?x=1",
        "https://example.com:443/",
        "https://app.example.com/elsewhere",
    ] {
        let (status, body) = outcome(&f.app, post(Some(referer), true)).await;
        assert_eq!(status, StatusCode::OK, "{referer}: {body}");
    }
    // Over plain HTTP there is no Referer rule (Django's too): a non-browser client passes.
    let (status, body) = outcome(&f.app, post(None, false)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    // A browser that sent Sec-Fetch-Site: same-origin needs no Referer.
    let headers = [
        ("sec-fetch-site", "same-origin"),
        ("x-csrftoken", token.as_str()),
    ];
    let request = over_https(request(
        Method::POST,
        "/submit",
        Some(&cookie),
        &headers,
        "",
    ));
    assert_eq!(outcome(&f.app, request).await.0, StatusCode::OK);
}

#[tokio::test]
async fn unknown_fetch_site_values_are_refused_and_checked_answers_vary_on_it() {
    let f = fixture(|l| l);
    let (cookie, token) = token(&f.app, None).await;
    // Stricter than "treat as missing": the Fetch spec has four values, all lower case.
    for value in [
        "Same-Origin",
        "same-origin, cross-site",
        "cross-origin",
        "foo",
        " none",
    ] {
        let headers = [("sec-fetch-site", value), ("x-csrftoken", token.as_str())];
        assert_refused(
            &f.app,
            request(Method::POST, "/submit", Some(&cookie), &headers, ""),
            CROSS_ORIGIN,
        )
        .await;
    }
    let vary = |response: &axum::http::Response<()>| -> Vec<String> {
        response
            .headers()
            .get_all("vary")
            .iter()
            .map(|v| v.to_str().unwrap().to_owned())
            .collect()
    };
    // Passed, refused by the gate, refused by the token check: all depend on the header.
    for (fetch_site, token) in [
        ("same-origin", token.as_str()),
        ("cross-site", token.as_str()),
        ("same-origin", "bad"),
    ] {
        let headers = [("sec-fetch-site", fetch_site), ("x-csrftoken", token)];
        let (response, _) = send(
            &f.app,
            request(Method::POST, "/submit", Some(&cookie), &headers, ""),
        )
        .await;
        let listed = vary(&response);
        let named = listed
            .iter()
            .filter(|v| v.as_str() == "Sec-Fetch-Site")
            .count();
        assert_eq!(named, 1, "{fetch_site} {token}: {listed:?}");
    }
    // Nor does an exempt route's (no protection, nothing to vary on; Rails skips it too).
    let f = fixture(|l| l.exempt(Method::POST, "/hook"));
    let (response, _) = send(
        &f.app,
        request(
            Method::POST,
            "/hook",
            None,
            &[("sec-fetch-site", "cross-site")],
            "",
        ),
    )
    .await;
    assert_eq!(response.status(), StatusCode::OK);
    assert!(!vary(&response).iter().any(|v| v.contains("Sec-Fetch-Site")));
    // A safe request's answer does not depend on it.
    let (response, _) = send(&f.app, request(Method::GET, "/plain", None, &[], "")).await;
    let listed = vary(&response);
    assert!(
        !listed.iter().any(|v| v.contains("Sec-Fetch-Site")),
        "{listed:?}"
    );
}
