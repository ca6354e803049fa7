//! The session middleware's promises, driven through a real axum router with `oneshot`.
#![allow(clippy::unwrap_used)]

mod support;

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::http::StatusCode;
use portcullis::SessionLayer;
use portcullis::clock::{Clock, ManualClock};
use portcullis::keys::KeyRing;
use portcullis::store::{MemoryStore, SessionStore};
use portcullis_testing::Probe;
use support::app::{cookie_pair, get_with, post_with, routes, send, set_cookie};

const KEY: &[u8] = b"the current secret key, 32 bytes or more";
const OLD_KEY: &[u8] = b"a retired secret key, also 32 bytes long";

struct Fixture {
    app: Router,
    probe: Probe<MemoryStore>,
    clock: ManualClock,
}

fn fixture(configure: impl FnOnce(SessionLayer) -> SessionLayer) -> Fixture {
    fixture_with_keys(KeyRing::new(KEY, &[]), configure)
}

fn fixture_with_keys(
    keys: KeyRing,
    configure: impl FnOnce(SessionLayer) -> SessionLayer,
) -> Fixture {
    // Whole seconds, so that Max-Age arithmetic in assertions is exact.
    let clock = ManualClock::at(std::time::UNIX_EPOCH + Duration::from_secs(1_800_000_000));
    let probe = Probe::new(MemoryStore::with_clock(Arc::new(clock.clone())));
    let layer = SessionLayer::new(probe.clone(), keys).with_clock(Arc::new(clock.clone()));
    Fixture {
        app: routes().layer(configure(layer)),
        probe,
        clock,
    }
}

#[tokio::test]
async fn new_session_sets_a_signed_cookie_with_strict_attributes() {
    let f = fixture(|l| l);
    let (response, body) = send(&f.app, get_with("/count", None)).await;
    assert_eq!(body, "1");
    let header = set_cookie(&response).unwrap();
    let (pair, attributes) = header.split_once(';').unwrap();
    let value = pair.strip_prefix("session=").unwrap();
    let (id, mac) = value.split_once('.').unwrap();
    assert_eq!((id.len(), mac.len()), (43, 43));
    assert!(
        id.bytes()
            .chain(mac.bytes())
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    );
    for attribute in ["HttpOnly", "SameSite=Lax", "Secure", "Path=/"] {
        assert!(
            attributes.contains(attribute),
            "{attribute} missing from {header}"
        );
    }
    assert!(
        !attributes.contains("Max-Age"),
        "not permanent: a browser-session cookie"
    );
    assert_eq!(response.headers()["vary"], "Cookie");
    assert_eq!(response.headers()["cache-control"], "no-store");
}

#[tokio::test]
async fn secure_attribute_follows_the_setting() {
    let f = fixture(|l| l.with_secure(false));
    let (response, _) = send(&f.app, get_with("/count", None)).await;
    assert!(!set_cookie(&response).unwrap().contains("Secure"));
}

#[tokio::test]
async fn a_handler_that_never_touches_the_session_costs_no_store_operation() {
    let f = fixture(|l| l);
    let (first, _) = send(&f.app, get_with("/count", None)).await;
    let cookie = cookie_pair(&first);
    let before = f.probe.stats.total();
    let (response, _) = send(&f.app, get_with("/untouched", Some(&cookie))).await;
    assert_eq!(f.probe.stats.total(), before);
    assert!(set_cookie(&response).is_none());
    assert!(response.headers().get("vary").is_none());
}

#[tokio::test]
async fn a_read_loads_once_and_never_rewrites_the_record() {
    let f = fixture(|l| l);
    let (first, _) = send(&f.app, get_with("/count", None)).await;
    let cookie = cookie_pair(&first);
    let writes = f.probe.stats.writes();
    let loads = f.probe.stats.loads();
    let (response, body) = send(&f.app, get_with("/read", Some(&cookie))).await;
    assert_eq!(body, "1");
    assert_eq!(f.probe.stats.loads(), loads + 1);
    assert_eq!(f.probe.stats.writes(), writes);
    assert!(
        set_cookie(&response).is_none(),
        "unchanged browser-session cookie is not re-sent"
    );
    assert_eq!(response.headers()["vary"], "Cookie");
}

#[tokio::test]
async fn an_empty_new_session_is_neither_stored_nor_sent() {
    let f = fixture(|l| l);
    let (response, body) = send(&f.app, get_with("/read", None)).await;
    assert_eq!(body, "0");
    assert!(set_cookie(&response).is_none());
    assert_eq!(f.probe.stats.total(), 0);
}

#[tokio::test]
async fn the_session_survives_across_requests() {
    let f = fixture(|l| l);
    let (first, _) = send(&f.app, get_with("/count", None)).await;
    let cookie = cookie_pair(&first);
    for expected in 2..=4 {
        let (_, body) = send(&f.app, get_with("/count", Some(&cookie))).await;
        assert_eq!(body, expected.to_string());
    }
}

#[tokio::test]
async fn store_keys_are_hashed_and_records_sealed() {
    let f = fixture(|l| l);
    let (first, _) = send(&f.app, post_with("/set", None, "a-very-recognisable-value")).await;
    let cookie = cookie_pair(&first);
    let id = cookie
        .trim_start_matches("session=")
        .split('.')
        .next()
        .unwrap()
        .to_owned();
    let written = f.probe.stats.written.lock().unwrap().clone();
    let (key, record) = written.last().unwrap();
    assert!(key.as_str().starts_with("sess:"));
    assert!(
        !key.as_str().contains(&id),
        "the store key must not contain the id"
    );
    assert!(
        !record.windows(9).any(|w| w == b"a-very-re"),
        "the record must be sealed"
    );
}

#[tokio::test]
async fn a_tampered_cookie_starts_an_anonymous_session_without_a_store_read() {
    let f = fixture(|l| l);
    let (first, _) = send(&f.app, get_with("/count", None)).await;
    let cookie = cookie_pair(&first);
    let mut bytes = cookie.into_bytes();
    let last = bytes.len() - 1;
    bytes[last] = if bytes[last] == b'A' { b'B' } else { b'A' };
    let tampered = String::from_utf8(bytes).unwrap();
    let loads = f.probe.stats.loads();
    let (response, body) = send(&f.app, get_with("/count", Some(&tampered))).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(body, "1");
    assert_eq!(
        f.probe.stats.loads(),
        loads,
        "nothing is read for an unauthentic cookie"
    );
    assert_ne!(cookie_pair(&response), tampered);
}

#[tokio::test]
async fn only_the_exact_cookie_name_is_read() {
    let f = fixture(|l| l);
    let (first, _) = send(&f.app, get_with("/count", None)).await;
    let value = cookie_pair(&first)
        .trim_start_matches("session=")
        .to_owned();
    for name in ["Session", "session2", "xsession", "SESSION"] {
        let (_, body) = send(&f.app, get_with("/read", Some(&format!("{name}={value}")))).await;
        assert_eq!(body, "0", "cookie {name} must not be read");
    }
    let (_, body) = send(
        &f.app,
        get_with("/read", Some(&format!("other=1; session={value}"))),
    )
    .await;
    assert_eq!(body, "1");
}

#[tokio::test]
async fn a_cookie_signed_for_another_cookie_name_is_refused() {
    let f = fixture(|l| l.with_cookie_name("other"));
    let (first, _) = send(&f.app, get_with("/count", None)).await;
    let value = cookie_pair(&first).trim_start_matches("other=").to_owned();
    let g = fixture(|l| l);
    let (_, body) = send(&g.app, get_with("/read", Some(&format!("session={value}")))).await;
    assert_eq!(body, "0");
}

#[tokio::test]
async fn a_session_idle_past_its_lifetime_is_gone_and_its_id_is_not_adopted() {
    let f = fixture(|l| l);
    let (first, _) = send(&f.app, get_with("/count", None)).await;
    let cookie = cookie_pair(&first);
    f.clock.advance(Duration::from_secs(299));
    let (_, body) = send(&f.app, get_with("/read", Some(&cookie))).await;
    assert_eq!(
        body, "1",
        "one second before the idle deadline it is alive, and slid"
    );
    f.clock.advance(Duration::from_secs(299));
    let (_, body) = send(&f.app, get_with("/read", Some(&cookie))).await;
    assert_eq!(body, "1", "the previous load slid the idle deadline");
    f.clock.advance(Duration::from_secs(301));
    let (_, body) = send(&f.app, get_with("/ended", Some(&cookie))).await;
    assert_eq!(body, "true");
    let (_, why) = send(&f.app, get_with("/why", Some(&cookie))).await;
    assert_eq!(
        why, "idle",
        "no ending call left a marker: the idle lifetime ran out"
    );
    let (response, body) = send(&f.app, get_with("/count", Some(&cookie))).await;
    assert_eq!(body, "1");
    assert_ne!(
        cookie_pair(&response),
        cookie,
        "an ended session's id is never reused"
    );
}

#[tokio::test]
async fn without_refresh_each_request_reads_do_not_slide_the_idle_expiry() {
    let f = fixture(|l| l.with_refresh_each_request(false));
    let (first, _) = send(&f.app, get_with("/count", None)).await;
    let cookie = cookie_pair(&first);
    f.clock.advance(Duration::from_secs(200));
    let (_, body) = send(&f.app, get_with("/read", Some(&cookie))).await;
    assert_eq!(body, "1");
    f.clock.advance(Duration::from_secs(101));
    let (_, body) = send(&f.app, get_with("/read", Some(&cookie))).await;
    assert_eq!(body, "0", "idle time counts from the last write");
}

#[tokio::test]
async fn the_absolute_lifetime_ends_even_an_active_session() {
    let f = fixture(|l| l.with_absolute_lifetime(Duration::from_secs(600)));
    let (first, _) = send(&f.app, get_with("/count", None)).await;
    let cookie = cookie_pair(&first);
    for _ in 0..2 {
        f.clock.advance(Duration::from_secs(250));
        let (_, body) = send(&f.app, get_with("/count", Some(&cookie))).await;
        assert_ne!(body, "1");
    }
    f.clock.advance(Duration::from_secs(101));
    let (_, body) = send(&f.app, get_with("/ended", Some(&cookie))).await;
    assert_eq!(body, "true", "601 s after creation the session is over");
    let (_, why) = send(&f.app, get_with("/why", Some(&cookie))).await;
    assert_eq!(
        why, "absolute",
        "the clamp to the absolute deadline left its marker"
    );
}

/// Checklist 13 and 15: a sliding load within the last idle lifetime before the absolute
/// deadline sets the store's expiry to that deadline, not past it, so the store drops the
/// record when the session ends.
#[tokio::test]
async fn a_sliding_load_never_keeps_the_record_past_the_absolute_deadline() {
    let f = fixture(|l| l.with_absolute_lifetime(Duration::from_secs(600)));
    let (first, _) = send(&f.app, get_with("/count", None)).await;
    let cookie = cookie_pair(&first);
    let key = f.probe.stats.written.lock().unwrap()[0].0.clone();
    for _ in 0..2 {
        f.clock.advance(Duration::from_secs(250));
        let (_, body) = send(&f.app, get_with("/read", Some(&cookie))).await;
        assert_eq!(body, "1", "a read slides the idle expiry");
    }
    // 500 s in, the slide asked for 800 s; the absolute deadline is 600 s.
    f.clock.advance(Duration::from_secs(101));
    assert_eq!(
        f.probe.inner.load(&key, None).await.unwrap(),
        None,
        "the store kept the record past the absolute deadline"
    );
}

/// Checklist 13: past its absolute deadline a session is refused even when the store still
/// returns its record (here its expiry was pushed out behind the layer's back).
#[tokio::test]
async fn a_record_the_store_still_returns_past_the_absolute_deadline_is_refused() {
    let f = fixture(|l| l.with_absolute_lifetime(Duration::from_secs(600)));
    let (first, _) = send(&f.app, get_with("/count", None)).await;
    let cookie = cookie_pair(&first);
    let key = f.probe.stats.written.lock().unwrap()[0].0.clone();
    let far = portcullis::clock::Clock::now(&f.clock) + Duration::from_secs(86_400);
    f.probe.inner.load(&key, Some(far)).await.unwrap();
    f.clock.advance(Duration::from_secs(601));
    assert!(
        f.probe.inner.load(&key, None).await.unwrap().is_some(),
        "the store still returns it"
    );
    let (_, body) = send(&f.app, get_with("/count", Some(&cookie))).await;
    assert_eq!(body, "1", "a new session, not the old one's count");
    let (_, ended) = send(&f.app, get_with("/ended", Some(&cookie))).await;
    assert_eq!(ended, "true");
}

#[tokio::test]
async fn a_permanent_session_slides_its_cookie_on_every_load() {
    let f = fixture(|l| {
        l.with_permanent(true)
            .with_absolute_lifetime(Duration::from_secs(400))
    });
    let (first, _) = send(&f.app, get_with("/count", None)).await;
    let header = set_cookie(&first).unwrap();
    assert!(header.contains("Max-Age=300"), "{header}");
    assert!(header.contains("Expires="), "{header}");
    let cookie = cookie_pair(&first);
    f.clock.advance(Duration::from_secs(200));
    let (response, _) = send(&f.app, get_with("/read", Some(&cookie))).await;
    let header = set_cookie(&response).expect("a read re-sends a permanent cookie");
    assert!(
        header.contains("Max-Age=200"),
        "capped by the absolute lifetime: {header}"
    );
    assert_eq!(response.headers()["cache-control"], "no-store");
}

#[tokio::test]
async fn a_write_that_finds_its_session_ended_elsewhere_gets_409_and_is_not_written_back() {
    use axum::routing::get;
    use portcullis::Session;
    use tokio::sync::{mpsc, oneshot};

    let (loaded_tx, mut loaded_rx) = mpsc::channel::<()>(1);
    let (go_tx, go_rx) = oneshot::channel::<()>();
    let go_rx = Arc::new(tokio::sync::Mutex::new(Some(go_rx)));
    let f = fixture(|l| l);
    let slow = Router::new()
        .route(
            "/slow-write",
            get(move |session: Session| {
                let loaded_tx = loaded_tx.clone();
                let go_rx = Arc::clone(&go_rx);
                async move {
                    let _: Option<u64> = session.get("visits").await.unwrap();
                    loaded_tx.send(()).await.unwrap();
                    let go = go_rx.lock().await.take().unwrap();
                    go.await.unwrap();
                    session.insert("late", "write").await.unwrap();
                    "written"
                }
            }),
        )
        .merge(routes())
        .layer(
            SessionLayer::new(f.probe.clone(), KeyRing::new(KEY, &[]))
                .with_clock(Arc::new(f.clock.clone())),
        );
    let (first, _) = send(&slow, get_with("/count", None)).await;
    let cookie = cookie_pair(&first);
    let app = slow.clone();
    let racing_cookie = cookie.clone();
    let racing =
        tokio::spawn(
            async move { send(&app, get_with("/slow-write", Some(&racing_cookie))).await },
        );
    loaded_rx.recv().await.unwrap();
    let (logout, _) = send(&slow, post_with("/destroy", Some(&cookie), "")).await;
    assert!(set_cookie(&logout).unwrap().contains("Max-Age=0"));
    go_tx.send(()).unwrap();
    let (response, body) = racing.await.unwrap();
    assert_eq!(response.status(), StatusCode::CONFLICT);
    assert!(body.contains("ended"), "{body}");
    assert!(set_cookie(&response).unwrap().contains("Max-Age=0"));
    assert_eq!(
        f.probe.inner.len(),
        1,
        "the logged-out session was not written back: only the logout's marker is left"
    );
}

#[tokio::test]
async fn a_session_over_the_size_limit_is_refused_and_unchanged() {
    let f = fixture(|l| l.with_max_bytes(1024));
    let (first, _) = send(&f.app, get_with("/count", None)).await;
    let cookie = cookie_pair(&first);
    let (response, body) = send(&f.app, post_with("/big", Some(&cookie), "")).await;
    assert_eq!(response.status(), StatusCode::PAYLOAD_TOO_LARGE);
    assert!(body.contains("SESSION_MAX_BYTES"), "{body}");
    let (_, body) = send(&f.app, get_with("/count", Some(&cookie))).await;
    assert_eq!(body, "2");
}

#[tokio::test]
async fn regenerate_issues_a_new_id_keeps_the_data_and_kills_the_old_id() {
    let f = fixture(|l| l);
    let (first, _) = send(&f.app, get_with("/count", None)).await;
    let old = cookie_pair(&first);
    let (response, _) = send(&f.app, post_with("/regenerate", Some(&old), "")).await;
    let new = cookie_pair(&response);
    assert_ne!(new, old);
    let (_, body) = send(&f.app, get_with("/read", Some(&new))).await;
    assert_eq!(body, "1", "data kept");
    let (_, body) = send(&f.app, get_with("/read", Some(&old))).await;
    assert_eq!(body, "0", "the pre-regeneration id is dead");
    assert_eq!(f.probe.inner.len(), 1);
}

#[tokio::test]
async fn regenerate_writes_the_new_record_before_deleting_the_old_one() {
    let f = fixture(|l| l);
    let (first, _) = send(&f.app, get_with("/count", None)).await;
    f.probe.stats.calls.lock().unwrap().clear();
    send(
        &f.app,
        post_with("/regenerate", Some(&cookie_pair(&first)), ""),
    )
    .await;
    assert_eq!(
        f.probe.stats.calls(),
        ["load", "create", "delete_if"],
        "never a moment with neither; the old one only if no other request changed it"
    );
}

#[tokio::test]
async fn regenerate_restarts_the_absolute_lifetime() {
    let f = fixture(|l| l.with_absolute_lifetime(Duration::from_secs(400)));
    let (first, _) = send(&f.app, get_with("/count", None)).await;
    f.clock.advance(Duration::from_secs(250));
    let (response, _) = send(
        &f.app,
        post_with("/regenerate", Some(&cookie_pair(&first)), ""),
    )
    .await;
    let cookie = cookie_pair(&response);
    f.clock.advance(Duration::from_secs(250));
    let (_, body) = send(&f.app, get_with("/read", Some(&cookie))).await;
    assert_eq!(
        body, "1",
        "500 s after creation but 250 s after regeneration"
    );
}

#[tokio::test]
async fn destroy_deletes_the_record_and_expires_the_cookie() {
    let f = fixture(|l| l);
    let (first, _) = send(&f.app, get_with("/count", None)).await;
    let cookie = cookie_pair(&first);
    let (response, _) = send(&f.app, post_with("/destroy", Some(&cookie), "")).await;
    let header = set_cookie(&response).unwrap();
    assert!(header.starts_with("session=;"), "{header}");
    assert!(header.contains("Max-Age=0"), "{header}");
    assert_eq!(response.headers()["cache-control"], "no-store");
    assert_eq!(
        f.probe.inner.len(),
        1,
        "only the ending's marker is left, no session record"
    );
    let (_, body) = send(&f.app, get_with("/read", Some(&cookie))).await;
    assert_eq!(body, "0", "replaying the cookie finds nothing");
    let (_, why) = send(&f.app, get_with("/why", Some(&cookie))).await;
    assert_eq!(why, "logged_out");
}

#[tokio::test]
async fn a_live_or_cookieless_session_has_no_ending_and_the_marker_outlives_no_cookie() {
    let f = fixture(|l| l);
    let (_, why) = send(&f.app, get_with("/why", None)).await;
    assert_eq!(why, "none");
    let (first, _) = send(&f.app, get_with("/count", None)).await;
    let cookie = cookie_pair(&first);
    let (_, why) = send(&f.app, get_with("/why", Some(&cookie))).await;
    assert_eq!(why, "none", "a live session has not ended");
    send(&f.app, post_with("/destroy", Some(&cookie), "")).await;
    f.clock.advance(Duration::from_secs(301));
    let (_, why) = send(&f.app, get_with("/why", Some(&cookie))).await;
    assert_eq!(
        why, "idle",
        "the marker lives one idle lifetime, then is gone"
    );
}

#[tokio::test]
async fn a_cookie_signed_with_a_fallback_key_is_accepted_and_reissued_with_the_current_key() {
    let old = fixture_with_keys(KeyRing::new(OLD_KEY, &[]), |l| l);
    let (first, _) = send(&old.app, get_with("/count", None)).await;
    let old_cookie = cookie_pair(&first);
    // The same store, now with the key rotated.
    let layer = SessionLayer::new(old.probe.clone(), KeyRing::new(KEY, &[OLD_KEY]))
        .with_clock(Arc::new(old.clock.clone()));
    let rotated = routes().layer(layer);
    let (response, body) = send(&rotated, get_with("/read", Some(&old_cookie))).await;
    assert_eq!(body, "1");
    let new_cookie = cookie_pair(&response);
    assert_ne!(new_cookie, old_cookie);
    assert_eq!(
        new_cookie.split('.').next(),
        old_cookie.split('.').next(),
        "same id, new MAC"
    );
    let current_only = routes().layer(
        SessionLayer::new(old.probe.clone(), KeyRing::new(KEY, &[]))
            .with_clock(Arc::new(old.clock.clone())),
    );
    let (_, body) = send(&current_only, get_with("/read", Some(&new_cookie))).await;
    assert_eq!(
        body, "1",
        "the re-issued cookie and the re-sealed record need only the current key"
    );
}

/// A sliding permanent cookie is sent again on every read with a new expiry; under the current
/// key that is the very value the request carried (nothing signed or sealed anew: a logged-in
/// id's sealed routing tag would differ with every seal), under a fallback key a new one
/// signed with the current key.
#[tokio::test]
async fn a_sliding_read_sends_back_the_cookie_it_was_sent_unless_a_fallback_key_verified_it() {
    let app = |keys: KeyRing, clock: &ManualClock, store: Probe<MemoryStore>| {
        let layer = SessionLayer::new(store, keys)
            .with_clock(Arc::new(clock.clone()))
            .with_permanent(true);
        routes()
            .route(
                "/login",
                axum::routing::post(|session: portcullis::Session| async move {
                    session.regenerate().await?;
                    session.set_user_id(Some("alice".into())).await?;
                    Ok::<_, portcullis::SessionError>("welcome")
                }),
            )
            .layer(layer)
    };
    let old = fixture(|l| l);
    let before_rotation = app(KeyRing::new(OLD_KEY, &[]), &old.clock, old.probe.clone());
    let (first, _) = send(&before_rotation, post_with("/login", None, "")).await;
    let old_cookie = cookie_pair(&first);
    assert!(
        old_cookie.contains('~'),
        "a logged-in id, its tag sealed: {old_cookie}"
    );
    let (again, _) = send(&before_rotation, post_with("/login", None, "")).await;
    assert_ne!(
        cookie_pair(&again)
            .split_once('~')
            .map(|(tag, _)| tag.to_owned()),
        old_cookie.split_once('~').map(|(tag, _)| tag.to_owned()),
        "every seal of the tag differs"
    );
    old.clock.advance(Duration::from_secs(10));
    let (response, _) = send(&before_rotation, get_with("/read", Some(&old_cookie))).await;
    let header = set_cookie(&response).expect("a sliding cookie");
    assert!(header.contains("Max-Age=300"), "a new expiry: {header}");
    assert_eq!(
        cookie_pair(&response),
        old_cookie,
        "the very value it was sent"
    );

    let rotated = app(KeyRing::new(KEY, &[OLD_KEY]), &old.clock, old.probe.clone());
    let (response, _) = send(&rotated, get_with("/read", Some(&old_cookie))).await;
    let new_cookie = cookie_pair(&response);
    assert_ne!(
        new_cookie, old_cookie,
        "a fallback key's cookie is issued again"
    );
    let (response, _) = send(&rotated, get_with("/read", Some(&new_cookie))).await;
    assert_eq!(cookie_pair(&response), new_cookie);
}

#[tokio::test]
async fn without_the_signer_the_cookie_is_the_bare_id() {
    let f = fixture(|l| l.with_signer(false));
    let (first, _) = send(&f.app, get_with("/count", None)).await;
    let cookie = cookie_pair(&first);
    let value = cookie.trim_start_matches("session=");
    assert_eq!(value.len(), 43);
    assert!(!value.contains('.'));
    let (_, body) = send(&f.app, get_with("/count", Some(&cookie))).await;
    assert_eq!(body, "2");
}

#[tokio::test]
async fn a_failed_handler_saves_nothing() {
    let f = fixture(|l| l);
    let (response, _) = send(&f.app, post_with("/fail", None, "")).await;
    assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
    assert!(set_cookie(&response).is_none());
    assert_eq!(f.probe.stats.writes(), 0);
}

/// The third request changes the record this process keeps opened (`session/opened.rs`) in
/// place, then fails: the kept record was let go of before the change, so the next request
/// opens the stored bytes afresh and never sees the dropped change.
#[tokio::test]
async fn a_failed_handlers_change_to_a_kept_record_is_never_seen() {
    let f = fixture(|l| l);
    let (first, _) = send(&f.app, get_with("/count", None)).await;
    let cookie = cookie_pair(&first);
    let (_, body) = send(&f.app, get_with("/count", Some(&cookie))).await;
    assert_eq!(body, "2", "saved, and kept opened");
    let (response, _) = send(&f.app, post_with("/count-then-fail", Some(&cookie), "")).await;
    assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
    let (_, body) = send(&f.app, get_with("/read", Some(&cookie))).await;
    assert_eq!(body, "2", "the failed request's 3 is nowhere");
    let (_, body) = send(&f.app, get_with("/count", Some(&cookie))).await;
    assert_eq!(body, "3");
}

/// A `destroy()` (a logout) made before the handler failed with a 5xx still happens: the
/// record is deleted and the cookie cleared, though nothing else of the request is saved.
#[tokio::test]
async fn a_destroy_before_a_failure_still_ends_the_session() {
    let f = fixture(|l| l);
    let (first, _) = send(&f.app, get_with("/count", None)).await;
    let cookie = cookie_pair(&first);
    let (response, _) = send(&f.app, post_with("/destroy-then-fail", Some(&cookie), "")).await;
    assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(
        f.probe.inner.len(),
        1,
        "the destroyed record is deleted: only the logout's marker is left"
    );
    let cleared = set_cookie(&response).expect("the cookie is cleared");
    assert!(cleared.contains("Max-Age=0"), "{cleared}");
    let (_, body) = send(&f.app, get_with("/read", Some(&cookie))).await;
    assert_eq!(body, "0", "the old cookie names no session");
}

#[tokio::test]
async fn an_unreachable_store_fails_closed_with_503_and_keeps_the_clients_cookie() {
    let f = fixture(|l| l);
    let (first, _) = send(&f.app, get_with("/count", None)).await;
    let cookie = cookie_pair(&first);
    f.probe.stats.fail(true);
    let (response, body) = send(&f.app, get_with("/count", Some(&cookie))).await;
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(body.contains("temporarily unavailable"), "{body}");
    assert!(
        set_cookie(&response).is_none(),
        "the client's cookie is not overwritten"
    );
    let (api, body) = send(&f.app, get_with("/api/anything", Some(&cookie))).await;
    assert_eq!(
        api.status(),
        StatusCode::NOT_FOUND,
        "untouched routes are not affected: {body}"
    );
    f.probe.stats.fail(false);
    let (response, body) = send(&f.app, get_with("/count", Some(&cookie))).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(body, "2", "the session survived the outage");
}

#[tokio::test]
async fn hostile_cookie_values_never_reach_the_store() {
    use axum::body::Body;
    use axum::http::{HeaderValue, Request};
    let f = fixture(|l| l);
    let (first, _) = send(&f.app, get_with("/count", None)).await;
    let valid = cookie_pair(&first)
        .trim_start_matches("session=")
        .to_owned();
    let loads = f.probe.stats.loads();
    let overlong = format!("{valid}{}", "A".repeat(5000));
    let hostile: Vec<Vec<u8>> = vec![
        overlong.into_bytes(),
        b"../../etc/passwd".to_vec(),
        b"..\\..\\windows".to_vec(),
        format!("{}/{}", &valid[..20], &valid[21..]).into_bytes(),
        b"abc\x00def".to_vec(),
        "s\u{e9}ssion-caf\u{e9}".as_bytes().to_vec(),
        valid.to_uppercase().into_bytes(),
        Vec::new(),
        b".".to_vec(),
    ];
    for value in hostile {
        let mut header = b"session=".to_vec();
        header.extend_from_slice(&value);
        let Ok(header) = HeaderValue::from_bytes(&header) else {
            continue; // not even a valid header: hyper would refuse it before us
        };
        let request = Request::get("/read")
            .header("cookie", header)
            .body(Body::empty())
            .unwrap();
        let (response, body) = send(&f.app, request).await;
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(body, "0", "{value:?} must be no session");
    }
    assert_eq!(
        f.probe.stats.loads(),
        loads,
        "no hostile value reached the store"
    );
}

/// Checklist 3, cookie-only transport: a valid id sent in a query string, a form field or any
/// header but `Cookie` names no session and reaches no store; the same id in `Cookie` does
/// (the control that shows the counts would see a read).
#[tokio::test]
async fn an_id_sent_anywhere_but_the_cookie_header_is_ignored() {
    use axum::body::Body;
    use axum::http::Request;
    let f = fixture(|l| l);
    let (first, _) = send(&f.app, get_with("/count", None)).await;
    let pair = cookie_pair(&first);
    let value = pair.trim_start_matches("session=").to_owned();
    let loads = f.probe.stats.loads();

    let mut requests = vec![
        ("query", Request::get(format!("/read?session={value}"))),
        (
            "query, another name",
            Request::get(format!("/read?sid={value}&id={value}")),
        ),
    ];
    for header in [
        "authorization",
        "session",
        "x-session",
        "x-session-id",
        "cookie2",
        "set-cookie",
    ] {
        let (name, sent) = if header == "authorization" {
            (header, format!("Bearer {value}"))
        } else if header.contains("cookie") {
            (header, pair.clone())
        } else {
            (header, value.clone())
        };
        requests.push((header, Request::get("/read").header(name, sent)));
    }
    for (carrier, request) in requests {
        let (response, body) = send(&f.app, request.body(Body::empty()).unwrap()).await;
        assert_eq!(response.status(), StatusCode::OK, "{carrier}");
        assert_eq!(body, "0", "an id in the {carrier} must be no session");
        assert_eq!(set_cookie(&response), None, "{carrier}");
    }
    // A form field: the write lands in a new session, not in the one the field names.
    let form = Request::post("/set")
        .header("content-type", "application/x-www-form-urlencoded")
        .body(Body::from(pair.clone()))
        .unwrap();
    let (response, _) = send(&f.app, form).await;
    assert_eq!(response.status(), StatusCode::OK);
    let fresh = cookie_pair(&response);
    assert_ne!(fresh, pair, "the form field's id is not adopted");
    assert_eq!(
        f.probe.stats.loads(),
        loads,
        "no carrier but Cookie reached the store"
    );

    let (_, body) = send(&f.app, get_with("/read", Some(&pair))).await;
    assert_eq!(body, "1", "the same id in Cookie names the session");
    assert_eq!(f.probe.stats.loads(), loads + 1);
}

#[tokio::test]
async fn without_refresh_the_expiry_shown_is_the_one_the_last_write_set() {
    let f = fixture(|l| l.with_refresh_each_request(false));
    let start = f.clock.now();
    let (first, _) = send(&f.app, get_with("/count", None)).await;
    f.clock.advance(Duration::from_secs(200));
    let (_, body) = send(&f.app, get_with("/expires", Some(&cookie_pair(&first)))).await;
    let written_deadline = start + Duration::from_secs(300);
    let secs = written_deadline
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    assert_eq!(
        body,
        secs.to_string(),
        "idle time counts from the last write"
    );
}

#[tokio::test]
async fn an_unreadable_record_is_treated_as_absent_but_left_in_place() {
    // Unsigned cookies, so that a process with another key reaches the record at all (as one
    // with a newer key ring would during a rolling rotation).
    let f = fixture(|l| l.with_signer(false));
    let (first, _) = send(&f.app, get_with("/count", None)).await;
    let cookie = cookie_pair(&first);
    let other = routes().layer(
        SessionLayer::new(f.probe.clone(), KeyRing::new(OLD_KEY, &[]))
            .with_signer(false)
            .with_clock(Arc::new(f.clock.clone())),
    );
    let (_, body) = send(&other, get_with("/ended", Some(&cookie))).await;
    assert_eq!(body, "true", "a record it cannot open is no session to it");
    assert_eq!(
        f.probe.inner.len(),
        1,
        "but it does not delete what others may read"
    );
    let (_, body) = send(&f.app, get_with("/read", Some(&cookie))).await;
    assert_eq!(body, "1");
}

#[tokio::test]
async fn a_regenerate_racing_a_logout_does_not_bring_the_session_back() {
    use axum::routing::post;
    use portcullis::Session;
    use tokio::sync::{mpsc, oneshot};

    let (loaded_tx, mut loaded_rx) = mpsc::channel::<()>(1);
    let (go_tx, go_rx) = oneshot::channel::<()>();
    let go_rx = Arc::new(tokio::sync::Mutex::new(Some(go_rx)));
    let f = fixture(|l| l);
    let app = Router::new()
        .route(
            "/slow-login",
            post(move |session: Session| {
                let loaded_tx = loaded_tx.clone();
                let go_rx = Arc::clone(&go_rx);
                async move {
                    let _: Option<u64> = session.get("visits").await.unwrap();
                    loaded_tx.send(()).await.unwrap();
                    let go = go_rx.lock().await.take().unwrap();
                    go.await.unwrap();
                    session.regenerate().await.unwrap();
                    session.set_user_id(Some("mallory".into())).await.unwrap();
                    "logged in"
                }
            }),
        )
        .merge(routes())
        .layer(
            SessionLayer::new(f.probe.clone(), KeyRing::new(KEY, &[]))
                .with_clock(Arc::new(f.clock.clone())),
        );
    let (first, _) = send(&app, get_with("/count", None)).await;
    let cookie = cookie_pair(&first);
    let racing = {
        let (app, cookie) = (app.clone(), cookie.clone());
        tokio::spawn(async move { send(&app, post_with("/slow-login", Some(&cookie), "")).await })
    };
    loaded_rx.recv().await.unwrap();
    send(&app, post_with("/destroy", Some(&cookie), "")).await;
    go_tx.send(()).unwrap();
    let (response, _) = racing.await.unwrap();
    assert_eq!(response.status(), StatusCode::CONFLICT);
    assert!(set_cookie(&response).unwrap().contains("Max-Age=0"));
    // What is left is the routing key the log-in kept (see the crate docs, "Sessions across
    // devices") and the logout's marker (`Session::ended`), no session.
    use portcullis::store::{SessionStore, StoreKey};
    let routing_key = StoreKey::from_string("sess:routing-key".into());
    assert!(
        f.probe
            .inner
            .load(&routing_key, None)
            .await
            .unwrap()
            .is_some()
    );
    assert_eq!(
        f.probe.inner.len(),
        2,
        "the logged-out session did not move to a new id"
    );
}
