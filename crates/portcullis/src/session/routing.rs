//! The routing key: what a user's routing tag is an HMAC under, kept in the store so that it
//! outlives every key rotation.
//!
//! A logged-in session's store key and its user's index carry the user's tag (see
//! `devices.rs`). Were the tag derived from the current `SECRET_KEY` alone, a rotation would
//! give each user a new tag, and once the fallback key is dropped the sessions logged in
//! before it (their ids keep their tag when their cookies are re-issued) could no longer be
//! found by "end all", a password change or `SESSION_MAX_PER_USER`. So the layer keeps one
//! routing key for good, in the store under `<prefix>routing-key`, sealed under the ring (the
//! record is authenticated and bound to its key like a session's):
//!
//! - the first index operation creates it (`create`: only if absent, so concurrent processes
//!   agree), with the routing key of the current `SECRET_KEY`, so that the tags of a running
//!   deployment stay what they were;
//! - whoever opens it under a fallback key seals it again under the current key: a process
//!   does so at its first index operation, and when it re-issues a logged-in cookie signed
//!   with a fallback, so that the record is under the new key before the old one is dropped;
//! - a read that opens it slides its expiry to one absolute session lifetime ahead (the
//!   record is read without sliding, opened, and only then slid). A record that no process can
//!   open (sealed under keys all dropped) is neither slid nor replaced: it is left to expire,
//!   since a process of a rolling upgrade that still has the old key may read it, and
//!   replacing it would change that process's tags under it. Once no process that opens it
//!   has read it for a whole absolute lifetime it expires, and so has every session that
//!   could have used it, and a new one is made.
//!
//! Lists and "end all" look under the tag of the kept key first, then under the tags of the
//! ring's keys (what ids got before the key was kept), without repeats. Each process reads
//! the record again after [`REREAD_AFTER`], so that all of them agree within that time should
//! it ever be removed and made anew.

use std::sync::Mutex;
use std::time::{Duration, SystemTime};

use super::LayerShared;
use super::id::Tag;
use crate::events;
use crate::keys::{KeyUse, RoutingKey};
use crate::store::{CasToken, SaveOutcome, StoreError, StoreKey, WriteOutcome};

/// Where the routing key is kept, after `SESSION_KEY_PREFIX` (no session key looks like it:
/// those are 43 base64url characters or begin with `{` or `idx:`).
const RECORD_NAME: &str = "routing-key";

/// How long a process uses the routing key it read before reading it again.
pub(crate) const REREAD_AFTER: Duration = Duration::from_secs(60);

/// Tries at creating or reading the record when other processes race this one.
const ATTEMPTS: usize = 3;

/// The routing key as this process last read it.
#[derive(Debug, Default)]
pub(crate) struct KeptRoutingKey {
    last: Mutex<Option<(RoutingKey, SystemTime)>>,
}

impl KeptRoutingKey {
    fn cached(&self, now: SystemTime) -> Option<RoutingKey> {
        let last = self
            .last
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        last.and_then(|(key, read_at)| {
            let age = now.duration_since(read_at).unwrap_or(Duration::ZERO);
            (age < REREAD_AFTER).then_some(key)
        })
    }

    fn remember(&self, key: RoutingKey, now: SystemTime) {
        let mut last = self
            .last
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        *last = Some((key, now));
    }

    fn last(&self) -> Option<RoutingKey> {
        let last = self
            .last
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        last.map(|(key, _)| key)
    }
}

/// The routing tags of `user`: under the kept routing key first (new sessions take that
/// one), then under each key of the ring, without repeats.
///
/// # Errors
/// When the store fails.
pub(crate) async fn user_tags(shared: &LayerShared, user: &str) -> Result<Vec<Tag>, StoreError> {
    let kept = kept_key(shared).await?;
    Ok(shared.keys.routing_tags(user, kept.as_ref()))
}

/// Reads the kept routing key now, so that a record still sealed under a fallback key is
/// sealed again under the current one; for a process that re-issues a logged-in cookie.
/// Costs nothing when this process read it lately.
///
/// # Errors
/// When the store fails.
pub(crate) async fn refresh(shared: &LayerShared) -> Result<(), StoreError> {
    kept_key(shared).await.map(|_| ())
}

/// The kept routing key: as this process read it within [`REREAD_AFTER`], else read (and
/// created, or sealed again under the current key) now. `None` when the record is there but
/// no key of the ring opens it.
async fn kept_key(shared: &LayerShared) -> Result<Option<RoutingKey>, StoreError> {
    let now = shared.clock.now();
    if let Some(key) = shared.routing.cached(now) {
        return Ok(Some(key));
    }
    let record = StoreKey::from_string(format!("{}{RECORD_NAME}", shared.settings.key_prefix));
    let keep_until = now + shared.settings.absolute;
    for _ in 0..ATTEMPTS {
        // Read without sliding: only a record this process can open is kept alive, so one no
        // key opens any more expires one absolute lifetime after its last opener read it
        // (review r2.2: a sliding read here kept such a record forever).
        let Some(sealed) = shared.store.load(&record, None).await? else {
            // Made anew: with the key this process used, if it had one, so that processes
            // that cached it keep agreeing; else the current key's.
            let key = shared
                .routing
                .last()
                .unwrap_or_else(|| shared.keys.routing_key());
            let sealed = shared.keys.seal(record.as_str().as_bytes(), &key);
            if shared.store.create(&record, &sealed, keep_until).await? == WriteOutcome::Written {
                shared.routing.remember(key, now);
                return Ok(Some(key));
            }
            continue;
        };
        let Some((plain, used)) = shared.keys.open(record.as_str().as_bytes(), &sealed) else {
            // Looking under the tags of this process's own keys only.
            events::unopened(
                "routing key",
                None,
                0,
                "sealed under a key this process lacks",
            );
            return Ok(None);
        };
        let Ok(key) = RoutingKey::try_from(plain.as_slice()) else {
            return Ok(None);
        };
        if used == KeyUse::Fallback {
            let resealed = shared.keys.seal(record.as_str().as_bytes(), &key);
            // The save slides it too. Another process that did the same first is as good; a
            // record removed meanwhile is read again.
            let token = CasToken::of_record(&sealed, sealed.len());
            match shared
                .store
                .save(&record, &token, &resealed, keep_until)
                .await?
            {
                SaveOutcome::Saved | SaveOutcome::Conflict(_) => {}
                SaveOutcome::Gone => continue,
            }
        } else {
            // Opened: now slide it. The sliding read must find what was opened; a record
            // removed or replaced in between is read (and opened) again.
            let slid = shared.store.load(&record, Some(keep_until)).await?;
            if slid.as_deref() != Some(sealed.as_slice()) {
                continue;
            }
        }
        shared.routing.remember(key, now);
        return Ok(Some(key));
    }
    Err(StoreError::unavailable(
        "the session routing key was removed and made anew repeatedly",
        "no stable routing key",
    ))
}
