//! The server's own limits on the real binary (finding 10): slow clients cannot hold
//! connections, a trickled body cannot outlast its deadline, and a normal client is answered
//! meanwhile. Small timeouts are configured; the tests wait on outcomes, each with a bound.
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::support::{Site, client};

/// How many slow clients hold a connection open at once.
const SLOW_CLIENTS: usize = 500;

/// Longest wait for the server to close a slow connection or answer a request.
const BOUND: Duration = Duration::from_secs(30);

/// Reads until the server closes `stream`; what it sent before closing.
async fn until_closed(stream: &mut TcpStream) -> String {
    let mut seen = Vec::new();
    let read = tokio::time::timeout(BOUND, stream.read_to_end(&mut seen)).await;
    assert!(
        read.is_ok(),
        "the server kept the connection open for {BOUND:?}; it sent {:?}",
        String::from_utf8_lossy(&seen)
    );
    String::from_utf8_lossy(&seen).into_owned()
}

#[tokio::test]
async fn slow_headers_are_cut_off_while_a_normal_client_is_answered() {
    let dir = tempfile::tempdir().unwrap();
    let site = Site::start(dir.path(), &[("HEADER_READ_TIMEOUT", "1s")]);
    let mut slow = Vec::with_capacity(SLOW_CLIENTS);
    for _ in 0..SLOW_CLIENTS {
        let mut stream = TcpStream::connect(site.addr).await.unwrap();
        // The request line and one header, and never the blank line that ends them.
        stream
            .write_all(b"GET / HTTP/1.1\r\nHost: localhost\r\n")
            .await
            .unwrap();
        slow.push(stream);
    }
    let answer = tokio::time::timeout(BOUND, client().get(site.url("/healthz")).send())
        .await
        .expect("a normal client is answered while the slow ones wait")
        .unwrap();
    assert_eq!(answer.status(), 200);
    for stream in &mut slow {
        let sent = until_closed(stream).await;
        assert!(
            sent.is_empty() || sent.starts_with("HTTP/1.1 408"),
            "no page for an unfinished request: {sent:?}"
        );
    }
    assert!(slow.len() == SLOW_CLIENTS);
}

#[tokio::test]
async fn a_trickled_body_is_refused_at_its_deadline_not_one_frame_at_a_time() {
    let dir = tempfile::tempdir().unwrap();
    let site = Site::start(dir.path(), &[("REQUEST_BODY_TIMEOUT", "1s")]);
    let mut stream = TcpStream::connect(site.addr).await.unwrap();
    let length = 10_000;
    stream
        .write_all(
            format!(
                "POST /login HTTP/1.1\r\nHost: localhost\r\n\
                 Content-Type: application/x-www-form-urlencoded\r\n\
                 Content-Length: {length}\r\n\r\n"
            )
            .as_bytes(),
        )
        .await
        .unwrap();
    // One byte every 50 ms would take 500 s; every frame comes well within a second.
    let mut ticks = tokio::time::interval(Duration::from_millis(50));
    let mut answer = vec![0u8; 4096];
    let mut sent = 0;
    let read = loop {
        tokio::select! {
            read = stream.read(&mut answer) => break read.unwrap(),
            _ = ticks.tick() => {
                assert!(sent < 400, "the server waited 20 s for a trickled body");
                if stream.write_all(b"a").await.is_err() {
                    // Closed by the server: read what it answered.
                    break stream.read(&mut answer).await.unwrap_or(0);
                }
                sent += 1;
            }
        }
    };
    let answer = String::from_utf8_lossy(&answer[..read]).into_owned();
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(
        answer.contains("<!doctype html>"),
        "the site's own page: {answer}"
    );
}
