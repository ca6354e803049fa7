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

#[test]
fn tampered_and_ended_cookies_are_logged_once_without_the_id() {
    let captured = Captured::default();
    let writer = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .with_max_level(tracing::Level::INFO)
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let store = MemoryStore::new();
    let app = routes().layer(SessionLayer::new(
        store.clone(),
        KeyRing::new(b"a security-log test key of 32+ bytes", &[]),
    ));

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
