//! Writing a changed session after the handler, without losing anyone's update:
//!
//! - a **new** session (first write, or regenerated) is created only if its key is absent
//!   (`SET NX`); one with a user goes into its user's index in the same atomic step, under
//!   `SESSION_MAX_PER_USER`. It is created with its CSRF secret, so that two concurrent first
//!   pages never mint two. A regenerated session's old record is retired only if it is
//!   unchanged since this request loaded it (in the index script when both are the same
//!   user's, else with `delete_if`); otherwise this request's changes are replayed onto it
//!   and the new record written again, so a change saved during a log-in is not lost
//!   (`create.rs`);
//! - an **existing** session is saved with compare-and-set on the token of the record this
//!   request loaded. On a conflict the store hands back the newer record: this request's
//!   changes are replayed onto it ([`replay_onto`]) and the save tried again, up to
//!   [`MAX_SAVE_ATTEMPTS`] times with a jittered back-off (`backoff.rs`); then the answer is
//!   503. A session deleted meanwhile is never written back. Within one process, writers of
//!   one session take turns (`turns.rs`) and the next one starts from the record the last one
//!   wrote, so a burst of concurrent requests (a page's parallel API calls) costs one save
//!   each instead of a pile-up of conflicts; compare-and-set still decides between processes
//!   (`save.rs`);
//! - then ended records are removed (from their user's index too).

mod backoff;
mod create;
mod save;
mod turns;

pub(crate) use turns::WriteLocks;

use std::sync::Arc;
use std::time::SystemTime;

use super::LayerShared;
use super::ending::{self, Ending};
use super::handle::{RequestSession, WorkingCopy};
use super::id::{Id, slot};
use super::secret;
use crate::events;
use crate::metrics::WriteRefusal;
use crate::store::{StoreError, StoreKey};

/// Saves tried before answering 503. Every failed try means another request's save succeeded
/// (the loop is lock-free), so this bounds only a pile-up of many concurrent writers.
pub(crate) const MAX_SAVE_ATTEMPTS: u32 = 10;

/// Why a session could not be written; `service.rs` turns each into its response.
#[derive(Debug)]
pub(crate) enum WriteError {
    /// The store failed (the error, when there is one).
    Unavailable(Option<StoreError>),
    /// The session was deleted while this request ran (a logout elsewhere).
    Ended,
    /// Too many concurrent writers: still conflicting after [`MAX_SAVE_ATTEMPTS`].
    Busy,
    /// Merged with concurrent changes, the session would exceed `SESSION_MAX_BYTES`.
    TooLarge { size: usize, max: usize },
    /// The user has `SESSION_MAX_PER_USER` sessions and the policy refuses more.
    LimitReached { max: usize },
    /// The session could not be encoded.
    Encode,
}

impl WriteError {
    /// The refusal it counts as in the metrics, if any.
    pub(crate) fn refusal(&self) -> Option<WriteRefusal> {
        match self {
            Self::Busy => Some(WriteRefusal::Busy),
            Self::Ended => Some(WriteRefusal::Gone),
            _ => None,
        }
    }
}

impl From<StoreError> for WriteError {
    fn from(error: StoreError) -> Self {
        Self::Unavailable(Some(error))
    }
}

/// Writes what this request changed and removes ended records. `Ok(true)` when a record was
/// written (so the cookie goes out).
pub(crate) async fn write(
    shared: &LayerShared,
    state: &mut RequestSession,
    now: SystemTime,
) -> Result<bool, WriteError> {
    let RequestSession {
        current,
        to_delete,
        pre_session,
        endings,
        ..
    } = state;
    let mut written = false;
    if let Some(current) = current.as_mut() {
        let mut retired = false;
        if current.modified && worth_storing(current) {
            if current.stored {
                Box::pin(save::save(shared, current, now)).await?;
            } else {
                // Only an anonymous session takes over the pre-session secret: a session with a
                // user gets its own (a log-in rotates the secret).
                let carried = pre_session
                    .secret()
                    .filter(|_| current.envelope.user_id.is_none());
                let renewed = current
                    .regenerated
                    .as_ref()
                    .is_some_and(|old| old.user.is_some() && old.user == current.envelope.user_id);
                // Boxed, as the deletes below: the future of every request holds that of its
                // write, and most requests run none of these.
                retired = Box::pin(create::create(shared, current, carried, now)).await?;
                crate::metrics::session_created();
                if current.regenerated.is_some() {
                    crate::metrics::session_regenerated();
                }
                current.stored = true;
                log_created(shared, current, renewed);
            }
            written = true;
        }
        if let Some(regenerated) = current.regenerated.take()
            && !retired
        {
            to_delete.push(regenerated.old);
        }
    }
    if !to_delete.is_empty() || !endings.is_empty() {
        Box::pin(delete_all(shared, to_delete, endings)).await?;
    }
    Ok(written)
}

/// `session_created`, or `session_renewed` for a new id of the same user's session.
fn log_created(shared: &LayerShared, current: &WorkingCopy, renewed: bool) {
    let event = if renewed {
        events::SecurityEvent::SessionRenewed
    } else {
        events::SecurityEvent::SessionCreated
    };
    if !events::enabled(event) {
        // Nobody listens: no keyed hashes for nothing (one per log-in).
        return;
    }
    let format = &shared.settings.format;
    let key = format.store_key(&current.id, &shared.settings.key_prefix);
    let session = shared.keys.log_hash(key.as_str().as_bytes());
    let user = current.envelope.user_id.as_ref();
    let user_hash = user.map(|user| shared.keys.log_hash(user.as_bytes()));
    events::session_written(renewed, &session, user_hash.as_deref());
}

/// Only the deletes of [`write`]: for a failed handler, whose changes are dropped but whose
/// `destroy()` (a logout) must still happen. A regeneration is dropped with the changes, so
/// its old session stays.
pub(crate) async fn delete_ended(
    shared: &LayerShared,
    state: &mut RequestSession,
) -> Result<(), WriteError> {
    Box::pin(delete_all(shared, &mut state.to_delete, &mut state.endings)).await
}

/// Deletes each record in `to_delete`, then marks each ending.
async fn delete_all(
    shared: &LayerShared,
    to_delete: &mut Vec<Id>,
    endings: &mut Vec<(Id, Ending)>,
) -> Result<(), WriteError> {
    for id in std::mem::take(to_delete) {
        delete(shared, &id).await?;
    }
    mark_endings(shared, endings).await;
    Ok(())
}

/// Leaves the marker of each session this request ended on purpose (`ending.rs`), once its
/// record is gone.
async fn mark_endings(shared: &LayerShared, endings: &mut Vec<(Id, Ending)>) {
    for (id, ending) in std::mem::take(endings) {
        let key = shared
            .settings
            .format
            .store_key(&id, &shared.settings.key_prefix);
        ending::mark(shared, &key, ending).await;
    }
}

/// Whether the session holds anything worth a record: an empty anonymous session is not
/// stored (a visitor who only reads gets no session).
pub(crate) fn worth_storing(current: &WorkingCopy) -> bool {
    current.stored || !current.envelope.data.is_empty() || current.envelope.user_id.is_some()
}

/// Which record a replay goes onto, which decides what of this request's own session it keeps.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Onto {
    /// A newer record of this very session. It must still be within its absolute lifetime.
    ThisSession,
    /// The record of the session this one was regenerated from, saved meanwhile by another
    /// request. The new session keeps its own CSRF secret (regenerating rotates it) and the
    /// replayed regeneration restarts its lifetime, so the old record's age does not matter.
    RegeneratedFrom,
}

/// Why a record could not take this request's changes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum NotReplayed {
    /// It does not open here (another key or format: a rolling upgrade, a key rotation).
    Unreadable,
    /// It is past its absolute lifetime: the session is over.
    PastAbsolute,
}

/// Makes `current` the session in `record` (read under `key`) with this request's changes
/// replayed onto it: the one merge of the write path (a conflict in `save.rs`, catching up
/// with this process's last writer, and a regenerated session's old record in `create.rs`).
/// `current` is left as it was when the record does not take them.
pub(super) fn replay_onto(
    shared: &LayerShared,
    current: &mut WorkingCopy,
    key: &StoreKey,
    record: &[u8],
    now: SystemTime,
    onto: Onto,
) -> Result<(), NotReplayed> {
    let settings = &shared.settings;
    let max_len = super::format::max_record_len(settings.max_bytes);
    let (mut envelope, _) = settings
        .format
        .decode_stored(&shared.keys, key, record, now, max_len)
        .ok_or(NotReplayed::Unreadable)?;
    if onto == Onto::ThisSession && now >= envelope.created_at() + settings.absolute {
        return Err(NotReplayed::PastAbsolute);
    }
    current.changes.replay(&mut envelope);
    crate::metrics::cas_replayed();
    if onto == Onto::RegeneratedFrom {
        secret::keep_own(&current.envelope, &mut envelope);
    }
    current.envelope = Arc::new(envelope);
    Ok(())
}

impl From<NotReplayed> for WriteError {
    fn from(why: NotReplayed) -> Self {
        match why {
            NotReplayed::Unreadable => unreadable(),
            NotReplayed::PastAbsolute => Self::Ended,
        }
    }
}

/// Encodes `current` for `key` in the layer's format (sealed, for the native one), recording
/// the idle deadline it is written with; returns the record and that deadline.
fn seal(
    shared: &LayerShared,
    current: &mut WorkingCopy,
    key: &StoreKey,
    now: SystemTime,
) -> Result<(Vec<u8>, SystemTime), WriteError> {
    let expires_at = note_deadline(shared, current, now);
    let sealed = shared
        .settings
        .format
        .encode_record(&current.envelope, &shared.keys, key)
        .map_err(|_| WriteError::Encode)?;
    crate::metrics::record_sealed(sealed.len());
    Ok((sealed, expires_at))
}

/// [`seal`] for a save of an existing session, which notes the save's id among the record's
/// writes (`save.rs`); returns the record, its deadline and the id.
fn seal_write(
    shared: &LayerShared,
    current: &mut WorkingCopy,
    key: &StoreKey,
    now: SystemTime,
) -> Result<(Vec<u8>, SystemTime, u64), WriteError> {
    let expires_at = note_deadline(shared, current, now);
    let (sealed, id) = shared
        .settings
        .format
        .encode_write(current.envelope_mut(&shared.opened), &shared.keys, key)
        .map_err(|_| WriteError::Encode)?;
    crate::metrics::record_sealed(sealed.len());
    Ok((sealed, expires_at, id))
}

/// The store expiry a write at `now` sets (the idle deadline, at most the absolute one),
/// recorded in the envelope.
fn note_deadline(shared: &LayerShared, current: &mut WorkingCopy, now: SystemTime) -> SystemTime {
    let settings = &shared.settings;
    let deadline = current.envelope.created_at() + settings.absolute;
    let expires_at = (now + settings.idle).min(deadline);
    current.envelope_mut(&shared.opened).deadline_ms = crate::clock::unix_millis(expires_at);
    expires_at
}

/// Removes an ended session: from its user's index too when it is a logged-in one.
async fn delete(shared: &LayerShared, id: &Id) -> Result<(), WriteError> {
    let settings = &shared.settings;
    let prefix = &settings.key_prefix;
    match (id.tag(), shared.store.user_index()) {
        (Some(tag), Some(index)) if settings.format.indexes_users() => {
            index.end(&slot(prefix, tag), &id.digest()).await?
        }
        _ => {
            let key = settings.format.store_key(id, prefix);
            shared.store.delete(&key).await?
        }
    };
    Ok(())
}

/// Another request saved a record this process cannot read (sealed under a key or in a format
/// it does not know yet: a rolling upgrade or key rotation). Nothing is written over it, and
/// the client keeps its cookie: 503, as for an outage, until this process can read it.
fn unreadable() -> WriteError {
    // Not overwritten: 503 until this process can read it.
    events::unopened(
        "record",
        None,
        0,
        "written concurrently under another key or format",
    );
    WriteError::Unavailable(None)
}

/// A fresh 256-bit id already in use: the generator is broken. Refuse to share a session.
fn collision() -> WriteError {
    tracing::error!("a new session id collided with a live one; refusing to write");
    WriteError::Unavailable(None)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::keys::KeyRing;
    use crate::session::SessionLayer;
    use crate::session::changes::{Change, Changes};
    use crate::session::record::Envelope;
    use crate::store::MemoryStore;

    const KEY: &[u8] = b"a secret key of thirty-two bytes or more";
    const CSRF: &str = crate::session::secret::CSRF_SECRET_KEY;

    fn shared() -> std::sync::Arc<LayerShared> {
        SessionLayer::new(MemoryStore::new(), KeyRing::new(KEY, &[])).shared()
    }

    /// This request's session: it set `mine`, holds its own CSRF secret, and (when
    /// `regenerated`) regenerated the session at `now`.
    fn working_copy(now: SystemTime, regenerated: bool) -> WorkingCopy {
        let mut changes = Changes::default();
        changes.push(Change::Insert("mine".into(), rmpv::Value::from(1)));
        if regenerated {
            let created_ms = crate::clock::unix_millis(now);
            changes.push(Change::Regenerate { created_ms });
        }
        let mut envelope = Envelope::new(now, false);
        envelope.data.insert("mine".into(), rmpv::Value::from(1));
        envelope
            .data
            .insert(CSRF.into(), rmpv::Value::from("own secret"));
        WorkingCopy {
            stored: true,
            modified: true,
            changes,
            ..WorkingCopy::new(envelope)
        }
    }

    #[test]
    fn replay_onto_merges_or_refuses_by_what_the_record_is_and_where_it_goes() {
        let shared = shared();
        let key = StoreKey::from_string("sess:k".into());
        let now = SystemTime::now();
        let record = |created: SystemTime| {
            let mut theirs = Envelope::new(created, false);
            theirs.data.insert("theirs".into(), rmpv::Value::from(2));
            theirs
                .data
                .insert(CSRF.into(), rmpv::Value::from("their secret"));
            theirs.seal(&shared.keys, &key).unwrap()
        };
        let fresh = record(now - Duration::from_secs(60));
        let over = record(now - shared.settings.absolute);
        let foreign = b"not a record of this layer".to_vec();
        // (record, onto, what comes out, the CSRF secret kept)
        let cases = [
            (&fresh, Onto::ThisSession, Ok(()), Some("their secret")),
            (
                &over,
                Onto::ThisSession,
                Err(NotReplayed::PastAbsolute),
                None,
            ),
            (
                &foreign,
                Onto::ThisSession,
                Err(NotReplayed::Unreadable),
                None,
            ),
            (&fresh, Onto::RegeneratedFrom, Ok(()), Some("own secret")),
            // The replayed regeneration restarts the lifetime, so age does not matter.
            (&over, Onto::RegeneratedFrom, Ok(()), Some("own secret")),
            (
                &foreign,
                Onto::RegeneratedFrom,
                Err(NotReplayed::Unreadable),
                None,
            ),
        ];
        for (i, (bytes, onto, outcome, secret)) in cases.into_iter().enumerate() {
            let regenerated = onto == Onto::RegeneratedFrom;
            let mut current = working_copy(now, regenerated);
            let before = current.envelope.clone();
            let got = replay_onto(&shared, &mut current, &key, bytes, now, onto);
            assert_eq!(got, outcome, "case {i}");
            let data = &current.envelope.data;
            match secret {
                None => assert_eq!(current.envelope, before, "case {i}: left as it was"),
                Some(secret) => {
                    assert_eq!(data["mine"], rmpv::Value::from(1), "case {i}");
                    assert_eq!(data.get("theirs"), Some(&rmpv::Value::from(2)), "case {i}");
                    assert_eq!(data.get(CSRF), Some(&rmpv::Value::from(secret)), "case {i}");
                }
            }
            if regenerated && outcome.is_ok() {
                assert_eq!(
                    current.envelope.created_at(),
                    before.created_at(),
                    "case {i}"
                );
            }
        }
    }
}
