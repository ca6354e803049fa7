//! Security events are logged once per request, with a keyed hash and never the id or cookie.
#![allow(clippy::unwrap_used)]

mod support;

use std::io::Write;
use std::sync::{Arc, Mutex};

use portcullis::SessionLayer;
use portcullis::keys::KeyRing;
use portcullis::store::MemoryStore;
use support::app::{cookie_pair, get_with, routes, send};

#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Captured {
    fn take(&self) -> String {
        String::from_utf8(std::mem::take(&mut *self.0.lock().unwrap())).unwrap()
    }
}

/// A subscriber that writes into `captured`, for the current thread.
fn capture(captured: &Captured) -> tracing::subscriber::DefaultGuard {
    let writer = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .with_max_level(tracing::Level::INFO)
        .finish();
    tracing::subscriber::set_default(subscriber)
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// The test routes behind a session layer on `store`, with the test's key.
fn app(store: MemoryStore) -> axum::Router {
    routes().layer(SessionLayer::new(
        store,
        KeyRing::new(b"a security-log test key of 32+ bytes", &[]),
    ))
}

#[test]
fn tampered_and_ended_cookies_are_logged_once_without_the_id() {
    let captured = Captured::default();
    let _guard = capture(&captured);
    let runtime = runtime();
    let store = MemoryStore::new();
    let app = app(store.clone());

    let (first, _) = runtime.block_on(send(&app, get_with("/count", None)));
    let cookie = cookie_pair(&first);
    let value = cookie.trim_start_matches("session=");
    let id = value.split('.').next().unwrap();
    captured.take();

    let stuffed = vec!["session=forged"; 1000].join("; ");
    runtime.block_on(send(&app, get_with("/read", Some(&stuffed))));
    let log = captured.take();
    assert_eq!(
        log.matches("failed verification").count(),
        1,
        "one line per request: {log}"
    );
    assert!(
        log.contains("count=4"),
        "a stuffed header costs a few checks, not 1000: {log}"
    );

    let tampered = format!("session={}x", &value[..value.len() - 1]);
    runtime.block_on(send(&app, get_with("/count", Some(&tampered))));
    let log = captured.take();
    assert_eq!(log.matches("failed verification").count(), 1, "{log}");
    assert!(
        log.contains("portcullis::security") && log.contains("cookie_hash="),
        "{log}"
    );
    assert!(!log.contains(id), "the id must never be logged: {log}");

    // The session ends on the server (expiry, a logout elsewhere); its cookie comes back.
    runtime.block_on(async {
        use portcullis::store::SessionStore;
        let key = portcullis::session::Id::decode(id)
            .unwrap()
            .store_key("sess:");
        store.delete(&key).await.unwrap();
    });
    runtime.block_on(send(&app, get_with("/read", Some(&cookie))));
    let log = captured.take();
    assert_eq!(log.matches("names no live session").count(), 1, "{log}");
    assert!(!log.contains(id), "{log}");
}

/// The cookie is verified on the session's first use: a forged one on a route that never
/// touches the session costs no HMAC, logs nothing and gets no `Set-Cookie`; on a route that
/// does, it is logged once.
#[test]
fn a_forged_cookie_is_logged_only_by_a_request_that_uses_the_session() {
    let captured = Captured::default();
    let _guard = capture(&captured);
    let runtime = runtime();
    let app = app(MemoryStore::new());
    let (first, _) = runtime.block_on(send(&app, get_with("/count", None)));
    let cookie = cookie_pair(&first);
    let forged = format!("{}x", &cookie[..cookie.len() - 1]);
    captured.take();

    let (response, body) = runtime.block_on(send(&app, get_with("/untouched", Some(&forged))));
    assert_eq!(body, "no session here");
    assert!(response.headers().get("set-cookie").is_none());
    assert!(response.headers().get("vary").is_none());
    let log = captured.take();
    assert!(!log.contains("input_validation_fail"), "{log}");

    let (response, body) = runtime.block_on(send(&app, get_with("/read", Some(&forged))));
    assert_eq!(body, "0", "no session");
    assert_eq!(response.headers()["vary"], "Cookie");
    let log = captured.take();
    assert_eq!(log.matches("input_validation_fail").count(), 1, "{log}");
    assert_eq!(log.matches("failed verification").count(), 1, "{log}");
}
