//! Which host and origin the site answers for: the `ALLOWED_HOSTS` list (400 and the site's
//! page for any other `Host`, against DNS rebinding), the public origin the CSRF check compares
//! `Origin` and `Referer` with (`PUBLIC_ORIGIN`, or a trusted proxy's `X-Forwarded-*`), and
//! `Strict-Transport-Security` on HTTPS answers when cookies are `Secure`.

use axum::body::Body;
use axum::http::{Method, StatusCode};

use crate::harness::{Browser, Page, TestApp, form_body};

/// A log-out form post with a valid token and `headers`: 303 when the origin checks pass.
async fn log_out_with(browser: &mut Browser<'_>, headers: &[(&str, &str)]) -> Page {
    let token = browser.csrf_token().await;
    let mut all = vec![("content-type", "application/x-www-form-urlencoded")];
    all.extend_from_slice(headers);
    let body = form_body(&[("csrf_token", &token)]);
    browser
        .request(Method::POST, "/logout", &all, Body::from(body))
        .await
}

#[tokio::test]
async fn in_dev_only_loopback_host_names_are_answered_with_any_port() {
    let app = TestApp::new().await;
    for host in [
        "localhost",
        "localhost:8000",
        "127.0.0.1:1234",
        "[::1]:8000",
        "LOCALHOST.",
    ] {
        let page = app
            .browser()
            .request(Method::GET, "/", &[("host", host)], Body::empty())
            .await;
        assert_eq!(page.status, StatusCode::OK, "{host}: {}", page.body);
    }
    for host in [
        "attacker.example",
        "attacker.example:8000",
        "localhost.attacker.example",
        "127.0.0.2",
        "local host",
    ] {
        let page = app
            .browser()
            .request(Method::GET, "/", &[("host", host)], Body::empty())
            .await;
        assert_eq!(page.status, StatusCode::BAD_REQUEST, "{host}");
        // The site's own page, with the reason and a way on.
        assert!(
            page.body.contains("Portcullis reference site"),
            "{}",
            page.body
        );
        assert!(page.body.contains("ALLOWED_HOSTS"), "{}", page.body);
        assert!(page.body.contains("href=\"/\""), "{}", page.body);
        assert!(
            page.header("set-cookie").is_empty(),
            "no session for a refused host"
        );
    }
}

#[tokio::test]
async fn allowed_hosts_take_exact_names_subdomain_patterns_and_a_wildcard() {
    let app = TestApp::with_env(&[("ALLOWED_HOSTS", "app.example.com,.example.org")]).await;
    let status = |host: &'static str| {
        let app = &app;
        async move {
            app.browser()
                .request(Method::GET, "/healthz", &[("host", host)], Body::empty())
                .await
                .status
        }
    };
    for host in [
        "app.example.com",
        "app.example.com:443",
        "example.org",
        "www.example.org",
    ] {
        assert_eq!(status(host).await, StatusCode::OK, "{host}");
    }
    for host in [
        "example.com",
        "localhost",
        "example.org.attacker.io",
        "xexample.org",
    ] {
        assert_eq!(status(host).await, StatusCode::BAD_REQUEST, "{host}");
    }
    let any = TestApp::with_env(&[("ALLOWED_HOSTS", "*")]).await;
    let page = any
        .browser()
        .request(
            Method::GET,
            "/healthz",
            &[("host", "anything.example")],
            Body::empty(),
        )
        .await;
    assert_eq!(page.status, StatusCode::OK);
}

#[tokio::test]
async fn public_origin_is_what_origin_and_referer_must_match() {
    let app = TestApp::with_env(&[("PUBLIC_ORIGIN", "https://app.example.com")]).await;
    let mut browser = app.browser();
    // The proxy in front keeps `Host`, as tower-http's gate wants for browsers without
    // Sec-Fetch-Site; PUBLIC_ORIGIN adds the scheme, which no header tells.
    let host = ("host", "app.example.com");
    let page = log_out_with(&mut browser, &[host, ("origin", "https://app.example.com")]).await;
    assert_eq!(page.status, StatusCode::SEE_OTHER, "{}", page.body);
    for origin in [
        "http://app.example.com",
        "http://localhost",
        "https://site.attacker.example",
    ] {
        let page = log_out_with(&mut browser, &[host, ("origin", origin)]).await;
        assert_eq!(page.status, StatusCode::FORBIDDEN, "{origin}");
    }
    // The public origin is HTTPS: with neither Sec-Fetch-Site nor Origin, a Referer is needed.
    let page = log_out_with(&mut browser, &[host]).await;
    assert_eq!(page.status, StatusCode::FORBIDDEN);
    assert!(
        page.body.contains("Referer checking failed - no Referer."),
        "{}",
        page.body
    );
    let referer = [host, ("referer", "https://app.example.com/account")];
    assert_eq!(
        log_out_with(&mut browser, &referer).await.status,
        StatusCode::SEE_OTHER
    );
}

#[tokio::test]
async fn only_a_trusted_proxy_names_the_forwarded_scheme_and_host() {
    let app = TestApp::with_env(&[("TRUSTED_PROXIES", "127.0.0.1")]).await;
    // A browser with Fetch Metadata: the Origin is then held to the forwarded origin alone.
    let forwarded = [
        ("x-forwarded-proto", "https"),
        ("x-forwarded-host", "localhost:8443"),
        ("sec-fetch-site", "same-origin"),
        ("origin", "https://localhost:8443"),
    ];
    let mut via_proxy = app.browser();
    let page = log_out_with(&mut via_proxy, &forwarded).await;
    assert_eq!(page.status, StatusCode::SEE_OTHER, "{}", page.body);
    let wrong_port = [
        forwarded[0],
        forwarded[1],
        forwarded[2],
        ("origin", "https://localhost"),
    ];
    assert_eq!(
        log_out_with(&mut via_proxy, &wrong_port).await.status,
        StatusCode::FORBIDDEN
    );
    // The same headers from a client that is no trusted proxy are its own word: ignored.
    let mut direct = app.browser();
    direct.peer = "10.0.0.9:40000".parse().unwrap();
    let page = log_out_with(&mut direct, &forwarded).await;
    assert_eq!(page.status, StatusCode::FORBIDDEN, "{}", page.body);
    // A trusted proxy's forwarded host is held to ALLOWED_HOSTS too.
    let rebound = [("x-forwarded-host", "attacker.example")];
    let page = via_proxy
        .request(Method::GET, "/", &rebound, Body::empty())
        .await;
    assert_eq!(page.status, StatusCode::BAD_REQUEST);
}

/// The `Strict-Transport-Security` value of a GET of `/` from a trusted proxy, over HTTPS or not.
async fn hsts(env: &[(&str, &str)], https: bool) -> String {
    let mut env = env.to_vec();
    env.push(("TRUSTED_PROXIES", "127.0.0.1"));
    let app = TestApp::with_env(&env).await;
    let proto = [("x-forwarded-proto", if https { "https" } else { "http" })];
    let page = app
        .browser()
        .request(Method::GET, "/", &proto, Body::empty())
        .await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    page.header("strict-transport-security").to_owned()
}

#[tokio::test]
async fn https_answers_carry_hsts_when_cookies_are_secure() {
    let secure = [("SESSION_COOKIE_SECURE", "true")];
    assert_eq!(hsts(&secure, true).await, "max-age=31536000");
    assert_eq!(
        hsts(&secure, false).await,
        "",
        "never over plain HTTP (RFC 6797 7.2)"
    );
    assert_eq!(hsts(&[("SESSION_COOKIE_SECURE", "false")], true).await, "");
    let subdomains = [secure[0], ("HSTS_INCLUDE_SUBDOMAINS", "true")];
    assert_eq!(
        hsts(&subdomains, true).await,
        "max-age=31536000; includeSubDomains"
    );
}
