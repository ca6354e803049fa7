//! What the session and CSRF layers count, through the [`metrics`](https://docs.rs/metrics)
//! facade: one function per event, called where the event happens, so that call sites stay one
//! line and need no `cfg`. Without the `metrics` feature every function is empty.
//!
//! The library installs no recorder: the application does (the reference site installs
//! `metrics-exporter-prometheus` and serves `/metrics` on `METRICS_BIND`), and calls
//! [`describe`] once after installing it so that the exposition carries each metric's help
//! text. Without a recorder the calls cost a check of an unset global.
//!
//! Every name starts with `portcullis_` and carries its unit (`_seconds`, `_bytes`, `_total`).
//! No label carries a user, a session id, a token or an address: labels take only the fixed
//! values named here. `docs/METRICS.md` lists each metric with what to alert on.
//!
//! | metric | kind | labels |
//! |---|---|---|
//! | `portcullis_store_operation_duration_seconds` | histogram | `store`, `op` |
//! | `portcullis_store_operation_errors_total` | counter | `store`, `op` |
//! | `portcullis_store_available` | gauge (1 or 0) | |
//! | `portcullis_store_transitions_total` | counter | `to` (`down`, `up`) |
//! | `portcullis_session_cookies_refused_total` | counter | `reason` ([`CookieRefusal`]) |
//! | `portcullis_session_cookies_fallback_key_total` | counter | |
//! | `portcullis_session_write_conflicts_total` | counter | |
//! | `portcullis_session_write_replays_total` | counter | |
//! | `portcullis_session_writes_refused_total` | counter | `reason` (`busy`, `gone`) |
//! | `portcullis_csrf_refusals_total` | counter | `reason` |
//! | `portcullis_sessions_created_total` | counter | |
//! | `portcullis_sessions_regenerated_total` | counter | |
//! | `portcullis_sessions_destroyed_total` | counter | |
//! | `portcullis_sessions_evicted_total` | counter | |
//! | `portcullis_session_record_size_bytes` | histogram | |
// Without the feature the names are only documentation.
#![cfg_attr(not(feature = "metrics"), allow(dead_code))]

#[cfg(feature = "metrics")]
mod measured;

use std::sync::Arc;
use std::time::Duration;

use crate::store::SessionStore;

const STORE_DURATION: &str = "portcullis_store_operation_duration_seconds";
const STORE_ERRORS: &str = "portcullis_store_operation_errors_total";
const STORE_AVAILABLE: &str = "portcullis_store_available";
const STORE_TRANSITIONS: &str = "portcullis_store_transitions_total";
const COOKIES_REFUSED: &str = "portcullis_session_cookies_refused_total";
const COOKIES_FALLBACK: &str = "portcullis_session_cookies_fallback_key_total";
const WRITE_CONFLICTS: &str = "portcullis_session_write_conflicts_total";
const WRITE_REPLAYS: &str = "portcullis_session_write_replays_total";
const WRITES_REFUSED: &str = "portcullis_session_writes_refused_total";
const CSRF_REFUSALS: &str = "portcullis_csrf_refusals_total";
const SESSIONS_CREATED: &str = "portcullis_sessions_created_total";
const SESSIONS_REGENERATED: &str = "portcullis_sessions_regenerated_total";
const SESSIONS_DESTROYED: &str = "portcullis_sessions_destroyed_total";
const SESSIONS_EVICTED: &str = "portcullis_sessions_evicted_total";
const RECORD_SIZE: &str = "portcullis_session_record_size_bytes";

/// Why a presented session cookie did not lead to a live session: the `reason` label of
/// `portcullis_session_cookies_refused_total`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum CookieRefusal {
    /// Not the shape of a session cookie: overlong, no signature separator.
    Malformed,
    /// Shaped like one, but no key of the ring signed it: forged, altered, or signed by a key
    /// since dropped.
    BadSignature,
    /// Authentic, but its session has ended; the label is why, as the site tells the person:
    /// [`Ending::as_str`](crate::session::Ending::as_str) (`idle`, `absolute`,
    /// `ended_elsewhere`, `password_change`, `administrator`, `logged_out`), the one mechanism
    /// for both.
    Ended(&'static str),
    /// Its record does not open here (altered, or sealed by a key or format this process does
    /// not know).
    Unreadable,
    /// Its record is larger than any this layer writes (`SESSION_MAX_BYTES`).
    Oversize,
}

impl CookieRefusal {
    /// The label value.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Malformed => "malformed",
            Self::BadSignature => "bad_signature",
            Self::Ended(why) => why,
            Self::Unreadable => "unreadable",
            Self::Oversize => "oversize",
        }
    }
}

/// A store operation: the `op` label of the store metrics.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum StoreOp {
    /// [`SessionStore::create`].
    Create,
    /// [`SessionStore::load`].
    Load,
    /// [`SessionStore::save`].
    Save,
    /// [`SessionStore::delete`].
    Delete,
    /// [`SessionStore::delete_if`].
    DeleteIf,
    /// [`SessionStore::purge_expired`].
    PurgeExpired,
    /// [`SessionStore::ping`].
    Ping,
    /// [`UserIndex::create_indexed`](crate::store::UserIndex::create_indexed).
    IndexCreate,
    /// [`UserIndex::list`](crate::store::UserIndex::list).
    IndexList,
    /// [`UserIndex::end`](crate::store::UserIndex::end).
    IndexEnd,
    /// [`UserIndex::end_all`](crate::store::UserIndex::end_all).
    IndexEndAll,
    /// [`UserIndex::stored_members`](crate::store::UserIndex::stored_members).
    IndexMembers,
}

impl StoreOp {
    /// The label value.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Create => "create",
            Self::Load => "load",
            Self::Save => "save",
            Self::Delete => "delete",
            Self::DeleteIf => "delete_if",
            Self::PurgeExpired => "purge_expired",
            Self::Ping => "ping",
            Self::IndexCreate => "index_create",
            Self::IndexList => "index_list",
            Self::IndexEnd => "index_end",
            Self::IndexEndAll => "index_end_all",
            Self::IndexMembers => "index_members",
        }
    }
}

/// Why a session write was refused: the `reason` label of
/// `portcullis_session_writes_refused_total`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum WriteRefusal {
    /// Still conflicting after every compare-and-set attempt: 503.
    Busy,
    /// The session was ended while the request ran (a logout elsewhere): 409, never written
    /// back.
    Gone,
}

impl WriteRefusal {
    /// The label value.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Busy => "busy",
            Self::Gone => "gone",
        }
    }
}

/// Registers the help text and unit of every metric with the installed recorder. Call it once,
/// after installing the recorder; without the `metrics` feature it does nothing.
pub fn describe() {
    #[cfg(feature = "metrics")]
    {
        use metrics::{Unit, describe_counter, describe_gauge, describe_histogram};
        describe_histogram!(
            STORE_DURATION,
            Unit::Seconds,
            "Session store operations, by store and operation."
        );
        describe_counter!(
            STORE_ERRORS,
            "Session store operations that failed (outage, timeout), by store and operation."
        );
        describe_gauge!(
            STORE_AVAILABLE,
            "1 while the session store answers, 0 during an outage (as the session layer last saw it)."
        );
        describe_counter!(
            STORE_TRANSITIONS,
            "Session store outages starting (to=down) and ending (to=up)."
        );
        describe_counter!(
            COOKIES_REFUSED,
            "Session cookies that led to no live session, by reason."
        );
        describe_counter!(
            COOKIES_FALLBACK,
            "Session cookies verified by a fallback key (SECRET_KEY_FALLBACKS) and re-issued."
        );
        describe_counter!(
            WRITE_CONFLICTS,
            "Compare-and-set saves that found another request's newer record."
        );
        describe_counter!(
            WRITE_REPLAYS,
            "Requests' changes replayed onto a newer record after a conflict."
        );
        describe_counter!(
            WRITES_REFUSED,
            "Session writes refused: busy (503 after every retry), gone (409, ended meanwhile)."
        );
        describe_counter!(
            CSRF_REFUSALS,
            "Requests refused by CSRF protection, by reason."
        );
        describe_counter!(SESSIONS_CREATED, "Session records created.");
        describe_counter!(
            SESSIONS_REGENERATED,
            "Sessions regenerated under a new id (log-in)."
        );
        describe_counter!(SESSIONS_DESTROYED, "Sessions destroyed (log-out).");
        describe_counter!(
            SESSIONS_EVICTED,
            "Sessions ended by SESSION_MAX_PER_USER to make room for a new log-in."
        );
        describe_histogram!(
            RECORD_SIZE,
            Unit::Bytes,
            "Size of each session record written, sealed."
        );
    }
}

/// `store` with each of its operations (and its user index's) timed and counted, labelled with
/// [`SessionStore::kind`]. Without the `metrics` feature, `store` itself.
pub(crate) fn measured(store: impl SessionStore) -> Arc<dyn SessionStore> {
    #[cfg(feature = "metrics")]
    let store = measured::Measured::new(store);
    Arc::new(store)
}

/// One store operation took `elapsed` and succeeded (`ok`) or failed.
#[cfg_attr(not(feature = "metrics"), allow(unused_variables))]
#[inline]
pub(crate) fn store_op(store: &'static str, op: StoreOp, elapsed: Duration, ok: bool) {
    #[cfg(feature = "metrics")]
    {
        let labels = [("store", store), ("op", op.as_str())];
        metrics::histogram!(STORE_DURATION, &labels).record(elapsed);
        if !ok {
            metrics::counter!(STORE_ERRORS, &labels).increment(1);
        }
    }
}

/// The session layer saw the store answer (`up`) or fail.
#[cfg_attr(not(feature = "metrics"), allow(unused_variables))]
#[inline]
pub(crate) fn store_available(up: bool) {
    #[cfg(feature = "metrics")]
    metrics::gauge!(STORE_AVAILABLE).set(if up { 1.0 } else { 0.0 });
}

/// An outage started (`up` false) or ended.
#[cfg_attr(not(feature = "metrics"), allow(unused_variables))]
#[inline]
pub(crate) fn store_transition(up: bool) {
    #[cfg(feature = "metrics")]
    metrics::counter!(STORE_TRANSITIONS, "to" => if up { "up" } else { "down" }).increment(1);
}

/// A presented cookie led to no live session.
#[cfg_attr(not(feature = "metrics"), allow(unused_variables))]
#[inline]
pub(crate) fn cookie_refused(reason: CookieRefusal) {
    #[cfg(feature = "metrics")]
    metrics::counter!(COOKIES_REFUSED, "reason" => reason.as_str()).increment(1);
}

/// A live session's cookie was verified by a fallback key.
#[inline]
pub(crate) fn cookie_fallback_key() {
    #[cfg(feature = "metrics")]
    metrics::counter!(COOKIES_FALLBACK).increment(1);
}

/// A compare-and-set save met another request's newer record.
#[inline]
pub(crate) fn cas_conflict() {
    #[cfg(feature = "metrics")]
    metrics::counter!(WRITE_CONFLICTS).increment(1);
}

/// This request's changes were replayed onto a newer record.
#[inline]
pub(crate) fn cas_replayed() {
    #[cfg(feature = "metrics")]
    metrics::counter!(WRITE_REPLAYS).increment(1);
}

/// A session write was refused.
#[cfg_attr(not(feature = "metrics"), allow(unused_variables))]
#[inline]
pub(crate) fn write_refused(reason: WriteRefusal) {
    #[cfg(feature = "metrics")]
    metrics::counter!(WRITES_REFUSED, "reason" => reason.as_str()).increment(1);
}

/// CSRF protection refused a request; `reason` is one of a fixed set of labels.
#[cfg_attr(not(feature = "metrics"), allow(unused_variables))]
#[inline]
pub(crate) fn csrf_refused(reason: &'static str) {
    #[cfg(feature = "metrics")]
    metrics::counter!(CSRF_REFUSALS, "reason" => reason).increment(1);
}

/// A session record was created.
#[inline]
pub(crate) fn session_created() {
    #[cfg(feature = "metrics")]
    metrics::counter!(SESSIONS_CREATED).increment(1);
}

/// A session was regenerated under a new id.
#[inline]
pub(crate) fn session_regenerated() {
    #[cfg(feature = "metrics")]
    metrics::counter!(SESSIONS_REGENERATED).increment(1);
}

/// A session was destroyed.
#[inline]
pub(crate) fn session_destroyed() {
    #[cfg(feature = "metrics")]
    metrics::counter!(SESSIONS_DESTROYED).increment(1);
}

/// `count` sessions were evicted by the per-user cap.
#[cfg_attr(not(feature = "metrics"), allow(unused_variables))]
#[inline]
pub(crate) fn sessions_evicted(count: usize) {
    #[cfg(feature = "metrics")]
    metrics::counter!(SESSIONS_EVICTED).increment(count as u64);
}

/// A sealed record of `bytes` was written.
#[cfg_attr(not(feature = "metrics"), allow(unused_variables))]
#[inline]
pub(crate) fn record_sealed(bytes: usize) {
    #[cfg(feature = "metrics")]
    metrics::histogram!(RECORD_SIZE).record(bytes as f64);
}

#[cfg(all(test, feature = "metrics"))]
mod tests {
    use super::*;

    #[test]
    fn label_values_are_fixed_snake_case_words() {
        // The labels of ended sessions are `session::Ending`'s, checked in `session/ending.rs`.
        let reasons = [
            CookieRefusal::Malformed,
            CookieRefusal::BadSignature,
            CookieRefusal::Unreadable,
            CookieRefusal::Oversize,
        ]
        .map(CookieRefusal::as_str);
        for label in reasons
            .iter()
            .chain(&[WriteRefusal::Busy.as_str(), WriteRefusal::Gone.as_str()])
        {
            assert!(
                label.bytes().all(|b| b.is_ascii_lowercase() || b == b'_'),
                "{label}"
            );
        }
    }
}
