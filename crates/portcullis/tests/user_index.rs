//! Logged-in sessions and their user's index: unlinkable cookies (security checklist item 2,
//! review finding 7), and every session reachable by its user's index after any key rotation
//! (finding 9), also when a session gets its user without `regenerate` (finding 14).
#![allow(clippy::unwrap_used)]

mod support;

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::routing::post;
use portcullis::clock::ManualClock;
use portcullis::keys::KeyRing;
use portcullis::store::MemoryStore;
use portcullis::{Session, SessionError, SessionLayer};
use support::app::{cookie_pair, get_with, post_with, routes, send};

const KEY_A: &[u8] = b"key A: a secret key of thirty-two bytes or more";
const KEY_B: &[u8] = b"key B: a secret key of thirty-two bytes or more";

/// Logs in the user named in the body, as a site does: regenerate, then set the user.
async fn log_in(session: Session, user: String) -> Result<&'static str, SessionError> {
    session.regenerate().await?;
    session.set_user_id(Some(user)).await?;
    Ok("logged in")
}

/// Sets the user and nothing else: no regenerate.
async fn set_user(session: Session, user: String) -> Result<&'static str, SessionError> {
    session.set_user_id(Some(user)).await?;
    Ok("user set")
}

struct Site {
    layer: SessionLayer,
    app: Router,
}

fn site(store: &MemoryStore, clock: &ManualClock, keys: KeyRing) -> Site {
    let layer = SessionLayer::new(store.clone(), keys).with_clock(Arc::new(clock.clone()));
    let app = routes()
        .route("/log-in", post(log_in))
        .route("/set-user", post(set_user))
        .layer(layer.clone());
    Site { layer, app }
}

fn fixture() -> (MemoryStore, ManualClock) {
    let clock = ManualClock::at(std::time::UNIX_EPOCH + Duration::from_secs(1_800_000_000));
    (MemoryStore::with_clock(Arc::new(clock.clone())), clock)
}

/// The cookie's value, without its name.
fn value(pair: &str) -> String {
    pair.split_once('=').unwrap().1.to_owned()
}

/// The longest run of characters that `a` and `b` share, ignoring the format's fixed
/// separators (`~` and `.`).
fn longest_common_run(a: &str, b: &str) -> String {
    let mut best = String::new();
    for start in 0..a.len() {
        for end in (start + best.len() + 1)..=a.len() {
            let run = &a[start..end];
            if run.contains(['~', '.']) {
                break;
            }
            if b.contains(run) {
                best = run.to_owned();
            } else {
                break;
            }
        }
    }
    best
}

#[tokio::test]
async fn two_log_ins_of_one_user_give_cookies_with_nothing_in_common() {
    let (store, clock) = fixture();
    let site = site(&store, &clock, KeyRing::new(KEY_A, &[]));
    let mut cookies = Vec::new();
    for _ in 0..2 {
        let (response, body) = send(&site.app, post_with("/log-in", None, "alice")).await;
        assert_eq!(body, "logged in");
        cookies.push(value(&cookie_pair(&response)));
    }
    let run = longest_common_run(&cookies[0], &cookies[1]);
    assert!(
        run.len() < 8,
        "two log-ins of alice share {run:?}: {} and {}",
        cookies[0],
        cookies[1]
    );
    for cookie in &cookies {
        assert!(cookie.len() < 200, "{cookie} is {} bytes", cookie.len());
    }
    // Both are alice's, in one index, and each still opens its session.
    let listed = site.layer.user_sessions().list("alice").await.unwrap();
    assert_eq!(listed.len(), 2);
    for cookie in &cookies {
        let (_, body) = send(
            &site.app,
            get_with("/count", Some(&format!("session={cookie}"))),
        )
        .await;
        assert_eq!(body, "1", "the session behind {cookie} is found");
    }
}

#[tokio::test]
async fn a_session_logged_in_before_a_rotation_is_ended_by_end_all_once_the_old_key_is_dropped() {
    let (store, clock) = fixture();
    let under_a = site(&store, &clock, KeyRing::new(KEY_A, &[]));
    let (response, _) = send(&under_a.app, post_with("/log-in", None, "alice")).await;
    let cookie = cookie_pair(&response);
    // Rotated: B signs, A still verifies; the session is used and its cookie re-issued.
    let rotated = site(&store, &clock, KeyRing::new(KEY_B, &[KEY_A]));
    let (response, body) = send(&rotated.app, get_with("/count", Some(&cookie))).await;
    assert_eq!(body, "1");
    let cookie = cookie_pair(&response);
    // A dropped: the re-issued cookie still works...
    let under_b = site(&store, &clock, KeyRing::new(KEY_B, &[]));
    let (_, body) = send(&under_b.app, get_with("/count", Some(&cookie))).await;
    assert_eq!(body, "2", "the re-issued cookie needs only key B");
    // ... and so "end all" (a password change, "log out everywhere") must reach it.
    let sessions = under_b.layer.user_sessions();
    assert_eq!(sessions.list("alice").await.unwrap().len(), 1);
    assert_eq!(sessions.end_all("alice", None).await.unwrap(), 1);
    let (_, body) = send(&under_b.app, get_with("/read", Some(&cookie))).await;
    assert_eq!(body, "0", "the session was ended");
}

#[tokio::test]
async fn a_user_set_without_regenerate_still_puts_the_session_in_the_users_index() {
    let (store, clock) = fixture();
    let site = site(&store, &clock, KeyRing::new(KEY_A, &[]));
    let (response, _) = send(&site.app, get_with("/count", None)).await;
    let anonymous = cookie_pair(&response);
    let (response, body) = send(&site.app, post_with("/set-user", Some(&anonymous), "alice")).await;
    assert_eq!(body, "user set", "{response:?}");
    let cookie = cookie_pair(&response);
    assert_ne!(
        cookie, anonymous,
        "a change of user gives the session a new id"
    );
    let (_, body) = send(&site.app, get_with("/count", Some(&cookie))).await;
    assert_eq!(body, "2", "the data came along");
    let (_, body) = send(&site.app, get_with("/read", Some(&anonymous))).await;
    assert_eq!(body, "0", "the id from before the change is dead");
    let sessions = site.layer.user_sessions();
    assert_eq!(sessions.list("alice").await.unwrap().len(), 1);
    assert_eq!(sessions.end_all("alice", None).await.unwrap(), 1);
    let (_, body) = send(&site.app, get_with("/read", Some(&cookie))).await;
    assert_eq!(body, "0", "ended with the user's other sessions");
}

/// A routing-key record that no key of the ring opens (sealed under a key since dropped
/// everywhere) must not be kept alive by the index operations that fail to open it: read
/// without sliding, it expires one absolute lifetime after it was last opened, and a fresh one
/// is made under the current key (review r2.2: each operation slid it, so it never expired).
#[tokio::test]
async fn an_unopenable_routing_key_record_expires_and_is_made_anew() {
    use portcullis::store::{SessionStore, StoreKey};

    let (store, clock) = fixture();
    let record = StoreKey::from_string("sess:routing-key".into());
    // Made under A by A's first index operation, with one absolute lifetime to live.
    let under_a = site(&store, &clock, KeyRing::new(KEY_A, &[]));
    under_a.layer.user_sessions().list("alice").await.unwrap();
    let unopenable = store.load(&record, None).await.unwrap().unwrap();
    // A dropped for good: B cannot open it. B's index operations, each past B's reread delay,
    // run until well past the record's deadline.
    let under_b = site(&store, &clock, KeyRing::new(KEY_B, &[]));
    let step = Duration::from_secs(30 * 60);
    let past_deadline = SessionLayer::DEFAULT_ABSOLUTE_LIFETIME + step;
    let mut elapsed = Duration::ZERO;
    while elapsed <= past_deadline {
        under_b.layer.user_sessions().list("alice").await.unwrap();
        clock.advance(step);
        elapsed += step;
    }
    under_b.layer.user_sessions().list("alice").await.unwrap();
    let now_kept = store.load(&record, None).await.unwrap();
    assert!(
        now_kept.is_some(),
        "an index operation keeps a routing key record"
    );
    assert_ne!(
        now_kept.as_deref(),
        Some(unopenable.as_slice()),
        "the unopenable routing key record was slid past its deadline instead of expiring"
    );
}

/// The other side of the above: a record that opens is still slid by the operations that
/// read it, so the routing key of a running deployment outlives its first deadline.
#[tokio::test]
async fn an_opened_routing_key_record_is_slid_past_its_first_deadline() {
    use portcullis::store::{SessionStore, StoreKey};

    let (store, clock) = fixture();
    let record = StoreKey::from_string("sess:routing-key".into());
    let site = site(&store, &clock, KeyRing::new(KEY_A, &[]));
    site.layer.user_sessions().list("alice").await.unwrap();
    let kept = store.load(&record, None).await.unwrap().unwrap();
    let step = Duration::from_secs(30 * 60);
    let past_deadline = SessionLayer::DEFAULT_ABSOLUTE_LIFETIME + step;
    let mut elapsed = Duration::ZERO;
    while elapsed <= past_deadline {
        clock.advance(step);
        elapsed += step;
        site.layer.user_sessions().list("alice").await.unwrap();
    }
    assert_eq!(
        store.load(&record, None).await.unwrap().as_deref(),
        Some(kept.as_slice()),
        "the routing key record that opens was not kept alive"
    );
}
