//! The probes on the real binary: `/livez` and `/readyz` answer outside the session layer,
//! the host check and load shedding; `/readyz` fails while Redis is frozen (and `/livez` does
//! not) and from the first moment of a graceful shutdown, while the listener is still open.
#![allow(clippy::unwrap_used)]

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use portcullis_testing::redis::RedisServer;

use crate::support::{SECRET, Site, client};

/// Longest a polled condition may take.
const PATIENCE: Duration = Duration::from_secs(15);

/// `GET path` with `Host: host`: status, whether it set a cookie, and the JSON body.
async fn probe(site: &Site, path: &str, host: &str) -> (u16, bool, serde_json::Value) {
    let response = client()
        .get(site.url(path))
        .header("host", host)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    let cookie = response.headers().contains_key("set-cookie");
    let body = response.json().await.unwrap_or(serde_json::Value::Null);
    (status, cookie, body)
}

/// Polls `path` until it answers `status`; panics after [`PATIENCE`].
async fn until(site: &Site, path: &str, status: u16) -> serde_json::Value {
    let start = Instant::now();
    loop {
        let (got, _, body) = probe(site, path, &site.addr.to_string()).await;
        if got == status {
            return body;
        }
        assert!(start.elapsed() < PATIENCE, "{path} never answered {status}");
        tokio::task::yield_now().await;
    }
}

/// A `POST /login` whose body never arrives: it holds its request slot until the body
/// deadline or until the rest is sent (`finish`).
fn held_request(site: &Site) -> TcpStream {
    let mut stream = TcpStream::connect(site.addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    write!(
        stream,
        "POST /login HTTP/1.1\r\nHost: {}\r\nContent-Type: application/x-www-form-urlencoded\r\n\
         Content-Length: 10\r\nConnection: close\r\n\r\nname=",
        site.addr
    )
    .unwrap();
    stream
}

/// A [`held_request`] that holds the site's only request slot (`MAX_REQUESTS_IN_FLIGHT=1`),
/// once `/healthz` is shed. A poll of `/healthz` can take the slot before the site reads the
/// held request, which is then shed itself (answered at once): that hold is tried again, so
/// the outcome never depends on which of the two the site read first.
async fn hold_the_only_slot(site: &Site) -> TcpStream {
    let start = Instant::now();
    loop {
        let held = held_request(site);
        loop {
            let (status, _, _) = probe(site, "/healthz", &site.addr.to_string()).await;
            if status == 503 {
                return held;
            }
            if answered(&held) {
                break;
            }
            assert!(
                start.elapsed() < PATIENCE,
                "/healthz never answered 503 while a request was held"
            );
            tokio::task::yield_now().await;
        }
    }
}

/// Whether the site has answered (or closed) `stream` already, without waiting.
fn answered(stream: &TcpStream) -> bool {
    stream.set_nonblocking(true).unwrap();
    let answered = !matches!(
        stream.peek(&mut [0; 1]),
        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock
    );
    stream.set_nonblocking(false).unwrap();
    answered
}

/// Sends the rest of a [`held_request`]'s body and reads its whole answer.
fn finish(mut stream: TcpStream) -> String {
    stream.write_all(b"alice").unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    response
}

#[tokio::test]
async fn probes_answer_any_host_without_a_cookie_and_are_never_shed() {
    let dir = tempfile::tempdir().unwrap();
    let env = [("SECRET_KEY", SECRET), ("MAX_REQUESTS_IN_FLIGHT", "1")];
    let site = Site::start(dir.path(), &env);
    for path in ["/livez", "/readyz"] {
        let (status, cookie, body) = probe(&site, path, &site.addr.to_string()).await;
        assert_eq!((status, cookie), (200, false), "{path}");
        assert_eq!(body, serde_json::json!({ "status": "ok" }), "{path}");
        // A kubelet sends the pod's address, which is no name of ALLOWED_HOSTS.
        let (status, cookie, _) = probe(&site, path, "10.1.2.3:8000").await;
        assert_eq!((status, cookie), (200, false), "{path} for any host");
    }
    let (status, _, _) = probe(&site, "/healthz", "10.1.2.3:8000").await;
    assert_eq!(status, 400, "the host check still guards the site");

    // The one request slot taken: the site sheds everything else, never a probe.
    let held = hold_the_only_slot(&site).await;
    for _ in 0..50 {
        for path in ["/livez", "/readyz"] {
            let (status, cookie, _) = probe(&site, path, &site.addr.to_string()).await;
            assert_eq!(
                (status, cookie),
                (200, false),
                "{path} while the site is full"
            );
        }
    }
    assert!(
        finish(held).starts_with("HTTP/1.1 403"),
        "the held request was answered"
    );
}

#[tokio::test]
async fn readyz_fails_while_redis_is_frozen_and_livez_still_answers() {
    let redis = RedisServer::start();
    let dir = tempfile::tempdir().unwrap();
    let url = redis.url();
    let env = [
        ("PORTCULLIS_PROFILE", "redis"),
        ("SECRET_KEY", SECRET),
        ("REDIS_URL", url.as_str()),
    ];
    let site = Site::start(dir.path(), &env);
    until(&site, "/readyz", 200).await;

    redis.pause();
    let body = until(&site, "/readyz", 503).await;
    assert_eq!(body["unavailable"], "session store", "{body}");
    let (status, _, _) = probe(&site, "/livez", &site.addr.to_string()).await;
    assert_eq!(
        status, 200,
        "a store outage is no reason to restart the process"
    );

    redis.resume();
    until(&site, "/readyz", 200).await;
}

#[tokio::test]
async fn readyz_answers_503_from_the_start_of_a_graceful_shutdown() {
    let dir = tempfile::tempdir().unwrap();
    let env = [("SECRET_KEY", SECRET), ("SHUTDOWN_DRAIN_TIME", "5s")];
    let mut site = Site::start(dir.path(), &env);
    until(&site, "/readyz", 200).await;
    let held = held_request(&site);

    site.terminate();
    let body = until(&site, "/readyz", 503).await;
    assert_eq!(body["unavailable"], "shutting down", "{body}");
    let (status, _, _) = probe(&site, "/livez", &site.addr.to_string()).await;
    assert_eq!(status, 200, "the listener is still open while draining");

    assert!(
        finish(held).starts_with("HTTP/1.1 403"),
        "the request in flight finished"
    );
    assert!(site.wait().success(), "clean exit; log:\n{}", site.log());
    assert!(site.log().contains("sys_shutdown"), "{}", site.log());
}
