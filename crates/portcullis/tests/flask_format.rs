//! The Flask format through the real layers, in-process: cookies, store keys and records as
//! Flask-Session 0.8 writes them, and Flask-WTF 1.3 tokens, using the reference's test vectors
//! (secret `test-secret-key`). The end-to-end test against a running Flask app is
//! `crates/portcullis-site/tests/binary/flask_interop.rs`.
#![cfg(feature = "flask")]
#![allow(clippy::unwrap_used)]

mod support;

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use axum::Router;
use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use axum::routing::{any, get};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use portcullis::clock::ManualClock;
use portcullis::csrf::{CsrfLayer, CsrfToken, Https};
use portcullis::keys::KeyRing;
use portcullis::session::Format;
use portcullis::store::{MemoryStore, SessionStore, StoreKey};
use portcullis::{Session, SessionError, SessionLayer};
use portcullis_testing::Probe;
use rmpv::Value;
use sha1::Sha1;
use support::app::{cookie_pair, get_with, post_with, routes, send, set_cookie};

/// The reference's vectors (sections 1.3 and 3.2).
const SECRET: &[u8] = b"test-secret-key";
const SID: &str = "g4K9cfGqIV3O8sKaagGYlWBa_48KpnDaAC1wx2xMdeg";
const SIGNED: &str = "g4K9cfGqIV3O8sKaagGYlWBa_48KpnDaAC1wx2xMdeg.xiVSzVQNIPxEJ9neDmzc0Ho-Pq0";
const RAW: &str = "c84b997d260ed51411ba42b8919317ce4c0f876b";
const ISSUED: u64 = 1_795_667_448;
const TOKEN: &str =
    "ImM4NGI5OTdkMjYwZWQ1MTQxMWJhNDJiODkxOTMxN2NlNGMwZjg3NmIi.awe1-A.MkUsHcljXARPHowaRV34xP5Ls14";
/// Unrelated to this crate's key ring: the Flask format never uses it.
const RING_KEY: &[u8] = b"a key ring secret that the Flask format ignores";

struct Fixture {
    app: Router,
    store: Probe<MemoryStore>,
    clock: ManualClock,
}

fn fixture(session: impl FnOnce(SessionLayer) -> SessionLayer) -> Fixture {
    let clock = ManualClock::at(SystemTime::UNIX_EPOCH + Duration::from_secs(ISSUED));
    let store = Probe::new(MemoryStore::with_clock(Arc::new(clock.clone())));
    let layer = SessionLayer::new(store.clone(), KeyRing::new(RING_KEY, &[]))
        .with_clock(Arc::new(clock.clone()))
        .with_format(Format::flask(SECRET));
    let app = routes()
        .route("/token", get(|csrf: CsrfToken| async move { csrf.token() }))
        .route("/submit", any(|| async { "submitted" }))
        .route("/keys", get(keys))
        // The session routes' posts are not what these tests check.
        .layer(
            CsrfLayer::new()
                .exempt(Method::POST, "/set")
                .exempt(Method::POST, "/destroy"),
        )
        .layer(session(layer));
    Fixture { app, store, clock }
}

async fn keys(session: Session) -> Result<String, SessionError> {
    Ok(session.keys().await?.join(","))
}

fn key(sid: &str) -> StoreKey {
    StoreKey::from_string(format!("sess:{sid}"))
}

fn msgpack(entries: Vec<(&str, Value)>) -> Vec<u8> {
    let map = entries
        .into_iter()
        .map(|(k, v)| (Value::from(k), v))
        .collect();
    let mut bytes = Vec::new();
    rmpv::encode::write_value(&mut bytes, &Value::Map(map)).unwrap();
    bytes
}

/// The record's entries, sorted by key.
fn entries(bytes: &[u8]) -> Vec<(String, Value)> {
    let Value::Map(map) = rmpv::decode::read_value(&mut &bytes[..]).unwrap() else {
        panic!("a Flask record is a map");
    };
    let mut entries: Vec<(String, Value)> = map
        .into_iter()
        .map(|(k, v)| (k.as_str().unwrap().to_owned(), v))
        .collect();
    entries.sort_by(|a, b| a.0.cmp(&b.0));
    entries
}

impl Fixture {
    /// Puts a record under `sid` as the Flask app would.
    async fn plant(&self, sid: &str, record: &[u8]) {
        let deadline = self.clock.now_plus(Duration::from_secs(300));
        self.store
            .inner
            .create(&key(sid), record, deadline)
            .await
            .unwrap();
    }

    async fn record(&self, sid: &str) -> Option<Vec<u8>> {
        self.store.inner.load(&key(sid), None).await.unwrap()
    }
}

trait NowPlus {
    fn now_plus(&self, by: Duration) -> SystemTime;
}

impl NowPlus for ManualClock {
    fn now_plus(&self, by: Duration) -> SystemTime {
        portcullis::clock::Clock::now(self) + by
    }
}

/// itsdangerous's signature of `sid`, recomputed here from its definition.
fn flask_signature(sid: &str) -> String {
    let mut derive = <Hmac<Sha1> as Mac>::new_from_slice(SECRET).unwrap();
    derive.update(b"flask-session");
    let derived = derive.finalize().into_bytes();
    let mut mac = <Hmac<Sha1> as Mac>::new_from_slice(&derived).unwrap();
    mac.update(sid.as_bytes());
    URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes())
}

#[tokio::test]
async fn a_new_session_gets_flask_sessions_cookie_key_and_record() {
    let f = fixture(|l| l.with_permanent(true));
    let (response, _) = send(&f.app, post_with("/set", None, "hello")).await;
    let pair = cookie_pair(&response);
    let value = pair.strip_prefix("session=").unwrap();
    let (sid, signature) = value.rsplit_once('.').unwrap();
    assert_eq!(sid.len(), 43, "32 random bytes, base64url");
    assert_eq!(signature, flask_signature(sid));

    let record = f.record(sid).await.expect("stored under prefix + sid");
    let entries = entries(&record);
    let names: Vec<&str> = entries.iter().map(|(k, _)| k.as_str()).collect();
    // The CSRF secret is minted with the session (Flask-WTF's raw form), so that two
    // concurrent first pages never mint two.
    assert_eq!(names, ["_permanent", "_portcullis", "csrf_token", "value"]);
    assert_eq!(entries[0].1, Value::Boolean(true));
    assert_eq!(entries[2].1.as_str().map(str::len), Some(40));
    assert_eq!(entries[3].1, Value::from("hello"));
}

#[tokio::test]
async fn a_session_flask_wrote_is_read_and_keys_portcullis_does_not_know_survive() {
    let f = fixture(|l| l);
    let flashes = Value::Array(vec![Value::Array(vec![
        Value::from("info"),
        Value::from("from flask"),
    ])]);
    let stamp = Value::Ext(-1, vec![0x6a, 0x1b, 0x2c, 0x3d]);
    let flask_written = vec![
        ("_permanent", Value::Boolean(true)),
        ("_user_id", Value::from("7")),
        ("_fresh", Value::Boolean(true)),
        ("_flashes", flashes.clone()),
        ("seen_at", stamp.clone()),
        ("ratio", Value::F64(1.5)),
        ("visits", Value::from(41)),
    ];
    f.plant(SID, &msgpack(flask_written.clone())).await;
    let cookie = format!("session={SIGNED}");

    let (response, body) = send(&f.app, get_with("/count", Some(&cookie))).await;
    assert_eq!(body, "42", "the Flask app's value, incremented");
    assert_eq!(
        cookie_pair(&response),
        cookie,
        "the same sid, signed the same way"
    );
    let written = entries(&f.record(SID).await.unwrap());
    for (name, value) in &flask_written {
        let expected = if *name == "visits" {
            Value::from(42)
        } else {
            value.clone()
        };
        let found = written.iter().find(|(k, _)| k == name).map(|(_, v)| v);
        assert_eq!(found, Some(&expected), "{name}");
    }
    let meta = written.iter().find(|(k, _)| k == "_portcullis").unwrap();
    let Value::Map(meta) = &meta.1 else {
        panic!("{meta:?}");
    };
    let field = |name: &str| meta.iter().find(|(k, _)| k.as_str() == Some(name)).unwrap();
    assert_eq!(
        field("created_ms").1,
        Value::from(ISSUED * 1000),
        "started when first read"
    );
    assert_eq!(field("user").1, Value::from("7"));
}

#[tokio::test]
async fn a_flask_record_without_portcullis_metadata_is_stamped_once() {
    let f = fixture(|l| l);
    f.plant(SID, &msgpack(vec![("n", Value::from(1))])).await;
    let cookie = format!("session={SIGNED}");
    send(&f.app, get_with("/read", Some(&cookie))).await;
    assert_eq!(f.store.stats.writes(), 1, "the created-at is recorded once");
    send(&f.app, get_with("/read", Some(&cookie))).await;
    assert_eq!(f.store.stats.writes(), 1, "and a read writes nothing after");
}

#[tokio::test]
async fn a_record_holding_only_permanent_is_an_empty_session() {
    let f = fixture(|l| l);
    let only = msgpack(vec![("_permanent", Value::Boolean(true))]);
    f.plant(SID, &only).await;
    let cookie = format!("session={SIGNED}");
    let (_, body) = send(&f.app, get_with("/keys", Some(&cookie))).await;
    assert_eq!(body, "");
    assert_eq!(f.store.stats.writes(), 0);
    assert_eq!(f.record(SID).await.unwrap(), only, "left as Flask wrote it");
}

#[tokio::test]
async fn a_cookie_whose_record_is_gone_gets_a_new_sid_and_a_forged_one_reads_nothing() {
    let f = fixture(|l| l);
    let cookie = format!("session={SIGNED}");
    let (response, _) = send(&f.app, get_with("/count", Some(&cookie))).await;
    let new = cookie_pair(&response);
    assert_ne!(new, cookie, "an unknown sid is never adopted");
    assert!(f.record(SID).await.is_none());

    let loads = f.store.stats.loads();
    let forged = format!("session={SID}.xiVSzVQNIPxEJ9neDmzc0Ho-Pq1");
    for bad in [forged.as_str(), &format!("session={SID}")] {
        send(&f.app, get_with("/read", Some(bad))).await;
    }
    assert_eq!(
        f.store.stats.loads(),
        loads,
        "no store access for a bad cookie"
    );
}

#[tokio::test]
async fn with_the_signer_off_the_cookie_is_the_bare_sid() {
    let f = fixture(|l| l.with_signer(false));
    f.plant(SID, &msgpack(vec![("visits", Value::from(1))]))
        .await;
    let (response, body) = send(&f.app, get_with("/count", Some(&format!("session={SID}")))).await;
    assert_eq!(body, "2");
    assert_eq!(cookie_pair(&response), format!("session={SID}"));
}

#[tokio::test]
async fn logging_out_deletes_the_flask_record() {
    let f = fixture(|l| l);
    f.plant(SID, &msgpack(vec![("_user_id", Value::from("7"))]))
        .await;
    let cookie = format!("session={SIGNED}");
    let (response, _) = send(&f.app, post_with("/destroy", Some(&cookie), "")).await;
    assert!(set_cookie(&response).unwrap().contains("Max-Age=0"));
    assert!(f.record(SID).await.is_none());
}

fn submit(cookie: &str, token: &str, extra: &[(&str, &str)]) -> Request<Body> {
    let mut request = Request::post("/submit")
        .header("host", "example.com")
        .header("cookie", cookie)
        .header("x-csrftoken", token);
    for (name, value) in extra {
        request = request.header(*name, *value);
    }
    request.body(Body::empty()).unwrap()
}

async fn status_and_body(app: &Router, request: Request<Body>) -> (StatusCode, String) {
    let (response, body) = send(app, request).await;
    (response.status(), body)
}

#[tokio::test]
async fn a_flask_wtf_token_is_accepted_and_checked_in_its_order() {
    let f = fixture(|l| l);
    f.plant(SID, &msgpack(vec![("csrf_token", Value::from(RAW))]))
        .await;
    let cookie = format!("session={SIGNED}");
    let (status, body) = status_and_body(&f.app, submit(&cookie, TOKEN, &[])).await;
    assert_eq!((status, body.as_str()), (StatusCode::OK, "submitted"));

    let other = "0123456789abcdef0123456789abcdef01234567";
    let (cookie_b, token_b) = {
        f.plant(
            "A".repeat(43).as_str(),
            &msgpack(vec![("csrf_token", Value::from(other))]),
        )
        .await;
        let cookie_b = format!(
            "session={}.{}",
            "A".repeat(43),
            flask_signature(&"A".repeat(43))
        );
        let (_, token) = send(&f.app, get_with("/token", Some(&cookie_b))).await;
        (cookie_b, token)
    };
    let cases = [
        (
            submit(&cookie, &token_b, &[]),
            "The CSRF tokens do not match.",
        ),
        (
            submit(&cookie, "garbage", &[]),
            "The CSRF token is invalid.",
        ),
        (
            submit(&cookie_b, TOKEN, &[]),
            "The CSRF tokens do not match.",
        ),
    ];
    for (request, reason) in cases {
        let (status, body) = status_and_body(&f.app, request).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
        assert!(body.contains(reason), "{reason}: {body}");
    }
    f.clock.advance(Duration::from_secs(3601));
    f.plant(SID, &msgpack(vec![("csrf_token", Value::from(RAW))]))
        .await;
    let (status, body) = status_and_body(&f.app, submit(&cookie, TOKEN, &[])).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert!(body.contains("The CSRF token has expired."), "{body}");
}

#[tokio::test]
async fn tokens_issued_here_are_flask_wtf_tokens_of_the_sessions_hex_token() {
    let f = fixture(|l| l);
    let (response, token) = send(&f.app, get_with("/token", None)).await;
    let pair = cookie_pair(&response);
    let sid = pair
        .strip_prefix("session=")
        .unwrap()
        .rsplit_once('.')
        .unwrap()
        .0;
    let record = entries(&f.record(sid).await.unwrap());
    let raw = record.iter().find(|(k, _)| k == "csrf_token").unwrap();
    let raw = raw.1.as_str().unwrap();
    assert!(
        raw.len() == 40
            && raw
                .bytes()
                .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()),
        "{raw}"
    );
    let parts: Vec<&str> = token.split('.').collect();
    assert_eq!(parts.len(), 3, "{token}");
    let payload = URL_SAFE_NO_PAD.decode(parts[0]).unwrap();
    assert_eq!(payload, format!("\"{raw}\"").as_bytes());
    let (status, _) = status_and_body(&f.app, submit(&pair, &token, &[])).await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn over_https_the_referrer_must_be_this_host() {
    let f = fixture(|l| l);
    f.plant(SID, &msgpack(vec![("csrf_token", Value::from(RAW))]))
        .await;
    let cookie = format!("session={SIGNED}");
    let https = |referrer: Option<&str>| {
        let extra: Vec<(&str, &str)> = referrer.map(|r| ("referer", r)).into_iter().collect();
        let mut request = submit(&cookie, TOKEN, &extra);
        request.extensions_mut().insert(Https);
        request
    };
    let cases = [
        (None, Some("The referrer header is missing.")),
        (
            Some("http://example.com/form"),
            Some("The referrer does not match the host."),
        ),
        (
            Some("https://example.com:443/form"),
            Some("The referrer does not match the host."),
        ),
        (
            Some("https://other.example/form"),
            Some("The referrer does not match the host."),
        ),
        (Some("https://example.com/form"), None),
    ];
    for (referrer, reason) in cases {
        let (status, body) = status_and_body(&f.app, https(referrer)).await;
        match reason {
            Some(reason) => {
                assert_eq!(status, StatusCode::FORBIDDEN, "{referrer:?}");
                assert!(body.contains(reason), "{referrer:?}: {body}");
            }
            None => assert_eq!(status, StatusCode::OK, "{body}"),
        }
    }
    // Plain HTTP (no marker): Flask-WTF does not look at the Referer.
    let (status, _) = status_and_body(&f.app, submit(&cookie, TOKEN, &[])).await;
    assert_eq!(status, StatusCode::OK);
}

/// A hostile Flask record (finding 12) that says its session started after the year 9999: it
/// would never reach its absolute deadline, and dates past 9999 cannot be printed. It is no
/// session: the request starts a new one.
#[tokio::test]
async fn a_flask_record_that_starts_past_the_year_9999_is_refused() {
    let f = fixture(|l| l);
    let year_10000_ms = 253_402_300_800_000_u64;
    let meta = Value::Map(vec![
        (Value::from("created_ms"), Value::from(year_10000_ms)),
        (Value::from("revision"), Value::from(1)),
    ]);
    f.plant(
        SID,
        &msgpack(vec![("visits", Value::from(41)), ("_portcullis", meta)]),
    )
    .await;
    let cookie = format!("session={SIGNED}");
    let (response, body) = send(&f.app, get_with("/read", Some(&cookie))).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(body, "0", "the hostile record is not this session");
    let (_, ended) = send(&f.app, get_with("/ended", Some(&cookie))).await;
    assert_eq!(ended, "true");
}

/// A record larger than any session this layer writes (from `SESSION_MAX_BYTES`) is refused
/// before it is decoded (finding 12): here a well-formed Flask record of 300 KB.
#[tokio::test]
async fn an_oversize_record_is_refused_before_decoding() {
    let f = fixture(|l| l.with_max_bytes(64 * 1024));
    f.plant(
        SID,
        &msgpack(vec![
            ("visits", Value::from(41)),
            ("padding", Value::from("x".repeat(300_000))),
        ]),
    )
    .await;
    let cookie = format!("session={SIGNED}");
    let (response, body) = send(&f.app, get_with("/read", Some(&cookie))).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(body, "0", "the oversize record was decoded");
}
