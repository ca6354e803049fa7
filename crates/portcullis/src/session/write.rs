//! Writing a changed session after the handler, without losing anyone's update:
//!
//! - a **new** session (first write, or regenerated) is created only if its key is absent
//!   (`SET NX`); one with a user goes into its user's index in the same atomic step, under
//!   `SESSION_MAX_PER_USER`. It is created with its CSRF secret, so that two concurrent first
//!   pages never mint two. A regenerated session's old record is retired only if it is
//!   unchanged since this request loaded it (in the index script when both are the same
//!   user's, else with `delete_if`); otherwise this request's changes are replayed onto it
//!   and the new record written again, so a change saved during a log-in is not lost;
//! - an **existing** session is saved with compare-and-set on the token of the record this
//!   request loaded. On a conflict the store hands back the newer record: this request's
//!   changes are replayed onto it (`changes.rs`) and the save tried again, up to
//!   [`MAX_SAVE_ATTEMPTS`] times with a jittered back-off; then the answer is 503. A session
//!   deleted meanwhile is never written back. Within one process, writers of one session take
//!   turns ([`WriteLocks`]) and the next one starts from the record the last one wrote, so a
//!   burst of concurrent requests (a page's parallel API calls) costs one save each instead
//!   of a pile-up of conflicts; compare-and-set still decides between processes;
//! - then ended records are removed (from their user's index too).

use std::collections::hash_map::RandomState;
use std::fmt;
use std::hash::BuildHasher;
use std::time::{Duration, SystemTime};

use tokio::sync::Mutex;

use super::LayerShared;
use super::handle::{RequestSession, WorkingCopy};
use super::id::Id;
use super::id::slot;
use super::record::Envelope;
use crate::keys::fill_random;
use crate::store::{
    CreateIndexedOutcome, NewIndexed, Retire, SaveOutcome, StoreError, StoreKey, UserIndex,
    WriteOutcome,
};

/// Saves tried before answering 503. Every failed try means another request's save succeeded
/// (the loop is lock-free), so this bounds only a pile-up of many concurrent writers.
pub(crate) const MAX_SAVE_ATTEMPTS: u32 = 10;
/// The first retry goes at once (two writers, the common case); later ones wait a random time
/// below a window that doubles from this...
const BACKOFF_BASE: Duration = Duration::from_millis(1);
/// ...up to this, so that a pile-up of writers spreads out instead of colliding again.
const BACKOFF_CAP: Duration = Duration::from_millis(64);
/// Doublings of the window past which the shift stops (the cap is reached after 6 anyway); it
/// keeps `1 << n` far from overflowing whatever `MAX_SAVE_ATTEMPTS` becomes.
const MAX_BACKOFF_DOUBLINGS: u32 = 16;

/// Stripes of [`WriteLocks`]: enough that unrelated sessions rarely share one (a shared stripe
/// makes them wait for each other's round trip, and forget each other's record).
const WRITE_STRIPES: usize = 1024;
/// The largest record a stripe remembers, so that all of them together stay under 8 MiB; a
/// larger one is not remembered, and the next writer's compare-and-set fetches it instead.
const MAX_REMEMBERED_RECORD: usize = 8 * 1024;

/// One stripe: the key and record its last writer saved, if that writer succeeded.
type Stripe = Mutex<Option<(StoreKey, Vec<u8>)>>;

/// Turns for the writers of one session within this process, by stripe of its key, each
/// remembering the record its last writer saved.
pub(crate) struct WriteLocks {
    hasher: RandomState,
    stripes: Vec<Stripe>,
}

impl WriteLocks {
    pub(crate) fn new() -> Self {
        Self {
            hasher: RandomState::new(),
            stripes: (0..WRITE_STRIPES).map(|_| Mutex::new(None)).collect(),
        }
    }

    fn stripe(&self, key: &StoreKey) -> &Stripe {
        let hash = self.hasher.hash_one(key.as_str());
        let at = usize::try_from(hash % WRITE_STRIPES as u64).unwrap_or(0);
        &self.stripes[at]
    }
}

impl fmt::Debug for WriteLocks {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WriteLocks")
            .field("stripes", &self.stripes.len())
            .finish()
    }
}

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
        current, to_delete, ..
    } = state;
    let mut written = false;
    if let Some(current) = current.as_mut() {
        let mut retired = false;
        if current.modified && worth_storing(current) {
            if current.stored {
                save(shared, current, now).await?;
            } else {
                retired = create(shared, current, now).await?;
                current.stored = true;
            }
            written = true;
        }
        if let Some((old, _)) = current.regenerated.take()
            && !retired
        {
            to_delete.push(old);
        }
    }
    for id in std::mem::take(to_delete) {
        delete(shared, &id).await?;
    }
    Ok(written)
}

/// Whether the session holds anything worth a record: an empty anonymous session is not
/// stored (a visitor who only reads gets no session).
pub(crate) fn worth_storing(current: &WorkingCopy) -> bool {
    current.stored || !current.envelope.data.is_empty() || current.envelope.user_id.is_some()
}

/// The compare-and-set loop, in this session's turn within the process.
async fn save(
    shared: &LayerShared,
    current: &mut WorkingCopy,
    now: SystemTime,
) -> Result<(), WriteError> {
    let settings = &shared.settings;
    let key = settings.format.store_key(&current.id, &settings.key_prefix);
    let Some(mut expected) = current.token.clone() else {
        // Invariant of the handle: a stored session was loaded, with its token.
        return Err(WriteError::Unavailable(None));
    };
    let token = |record: &[u8]| settings.format.cas_token(record);
    let mut last = shared.writers.stripe(&key).lock().await;
    let mut merged = catch_up(shared, current, &key, &last, &mut expected, now);
    for attempt in 0..MAX_SAVE_ATTEMPTS {
        // The handle kept this request's own changes within the limit; merged with another
        // request's, the session may not be.
        if merged {
            let size = current.envelope.data_len();
            if size > settings.max_bytes {
                *last = None;
                return Err(WriteError::TooLarge {
                    size,
                    max: settings.max_bytes,
                });
            }
        }
        current.envelope.revision += 1;
        let (sealed, expires_at) = seal(shared, current, &key, now)?;
        let outcome = match shared
            .store
            .save(&key, &expected, &sealed, expires_at)
            .await
        {
            Ok(outcome) => outcome,
            Err(error) => {
                *last = None;
                return Err(error.into());
            }
        };
        match outcome {
            SaveOutcome::Saved => {
                if attempt > 0 {
                    tracing::debug!(conflicts = attempt, "session saved after concurrent writes");
                }
                current.token = Some(token(&sealed));
                *last = (sealed.len() <= MAX_REMEMBERED_RECORD).then_some((key, sealed));
                return Ok(());
            }
            SaveOutcome::Gone => {
                *last = None;
                return Err(WriteError::Ended);
            }
            // Our own write, found by a retry after a lost reply: it had landed.
            SaveOutcome::Conflict(live) if token(&live) == token(&sealed) => {
                current.token = Some(token(&sealed));
                *last = (sealed.len() <= MAX_REMEMBERED_RECORD).then_some((key, sealed));
                return Ok(());
            }
            SaveOutcome::Conflict(live) => {
                let Some(mut envelope) = decode(shared, &key, &live, now) else {
                    *last = None;
                    return Err(unreadable());
                };
                if now >= envelope.created_at() + settings.absolute {
                    *last = None;
                    return Err(WriteError::Ended);
                }
                current.changes.replay(&mut envelope);
                current.envelope = envelope;
                expected = token(&live);
                merged = true;
                // Another process keeps winning: wait, keeping this process's turn, so that
                // its other writers of the session do not spend their tries meanwhile.
                back_off(attempt).await;
            }
        }
    }
    *last = None;
    tracing::warn!(
        attempts = MAX_SAVE_ATTEMPTS,
        "session still changed by other requests after every attempt; answering 503"
    );
    Err(WriteError::Busy)
}

/// When a writer of this process saved `key` since this request's record (`expected`), starts
/// from the record it wrote: this request's changes replayed onto it, `expected` its token.
/// `true` when it did.
fn catch_up(
    shared: &LayerShared,
    current: &mut WorkingCopy,
    key: &StoreKey,
    last: &Option<(StoreKey, Vec<u8>)>,
    expected: &mut Vec<u8>,
    now: SystemTime,
) -> bool {
    let format = &shared.settings.format;
    let Some((written_key, record)) = last.as_ref() else {
        return false;
    };
    if written_key != key || format.cas_token(record) == *expected {
        return false;
    }
    if !merge_onto(shared, current, key, record, now) {
        return false;
    }
    *expected = format.cas_token(record);
    true
}

/// Replays `current`'s changes onto `record` (of `key`), when it opens and is within its
/// absolute lifetime; `false` otherwise (the compare-and-set then decides).
fn merge_onto(
    shared: &LayerShared,
    current: &mut WorkingCopy,
    key: &StoreKey,
    record: &[u8],
    now: SystemTime,
) -> bool {
    let Some(mut envelope) = decode(shared, key, record, now) else {
        return false;
    };
    if now >= envelope.created_at() + shared.settings.absolute {
        return false;
    }
    current.changes.replay(&mut envelope);
    current.envelope = envelope;
    true
}

/// The session in a record of this layer's format, read under `key`.
fn decode(
    shared: &LayerShared,
    key: &StoreKey,
    record: &[u8],
    now: SystemTime,
) -> Option<Envelope> {
    shared
        .settings
        .format
        .decode_record(&shared.keys, key, record, now)
        .map(|(envelope, _)| envelope)
}

/// Creates the session: in its user's index when it has a user (and the store keeps one),
/// else plainly; then retires the id it was regenerated from, if any. `Ok(true)` when that old
/// id is dealt with.
///
/// The old record is retired only if it is still the one this request loaded (in the index
/// script for the same user, with `delete_if` otherwise). When another request saved it
/// meanwhile, this request's changes are replayed onto that record and the new session
/// written again, so a change made during a log-in is carried over, not lost.
async fn create(
    shared: &LayerShared,
    current: &mut WorkingCopy,
    now: SystemTime,
) -> Result<bool, WriteError> {
    let settings = &shared.settings;
    // A session is created with its CSRF secret, so that concurrent first pages never mint two.
    current
        .envelope
        .data
        .entry(crate::csrf::SESSION_KEY.to_owned())
        .or_insert_with(|| rmpv::Value::from(settings.format.new_csrf_secret().session_text()));
    let old = current.regenerated.clone();
    let user = current.envelope.user_id.clone();
    let index = shared
        .store
        .user_index()
        .filter(|_| settings.format.indexes_users());
    let retired = match (user, index) {
        (Some(user), Some(index)) => create_indexed(shared, index, current, &user, now).await?,
        _ => {
            let key = settings.format.store_key(&current.id, &settings.key_prefix);
            let (sealed, expires_at) = seal(shared, current, &key, now)?;
            match shared.store.create(&key, &sealed, expires_at).await? {
                WriteOutcome::Written => current.token = Some(settings.format.cas_token(&sealed)),
                WriteOutcome::NotWritten => return Err(collision()),
            }
            false
        }
    };
    match old {
        Some((old, token)) if !retired => {
            retire(shared, current, &old, token.unwrap_or_default(), now).await?;
            Ok(true)
        }
        _ => Ok(retired),
    }
}

/// Creates a logged-in session in its user's index, retiring in the same step the id it was
/// regenerated from when that was the same user's. `Ok(true)` when it retired it.
async fn create_indexed(
    shared: &LayerShared,
    index: &dyn UserIndex,
    current: &mut WorkingCopy,
    user: &str,
    now: SystemTime,
) -> Result<bool, WriteError> {
    let settings = &shared.settings;
    let Some(&tag) = shared.keys.routing_tags(user).first() else {
        return Err(WriteError::Encode);
    };
    // The id was never sent (the session is new), so it can still take its user's tag.
    current.id = Id::tagged(tag);
    let key = settings.format.store_key(&current.id, &settings.key_prefix);
    let slot = slot(&settings.key_prefix, &tag);
    let member = current.id.digest();
    let same_user = current
        .regenerated
        .as_ref()
        .filter(|(old, _)| old.tag() == Some(&tag))
        .map(|(old, token)| (old.clone(), old.digest(), token.clone().unwrap_or_default()));
    let mut old_token = same_user.as_ref().map(|(_, _, token)| token.clone());
    for attempt in 0..MAX_SAVE_ATTEMPTS {
        let (sealed, expires_at) = seal(shared, current, &key, now)?;
        let retire = same_user
            .as_ref()
            .zip(old_token.as_deref())
            .map(|((_, member, _), token)| Retire { member, token });
        let created = index
            .create_indexed(NewIndexed {
                slot: &slot,
                member: &member,
                record: &sealed,
                expires_at,
                deadline: current.envelope.created_at() + settings.absolute,
                retire,
                limit: settings.limit,
            })
            .await?;
        match created {
            CreateIndexedOutcome::Created { evicted } => {
                if !evicted.is_empty() {
                    tracing::info!(
                        target: "portcullis::security",
                        user = %shared.keys.log_hash(user.as_bytes()),
                        ended = evicted.len(),
                        "a log-in ended the user's oldest sessions (SESSION_MAX_PER_USER)"
                    );
                }
                current.token = Some(settings.format.cas_token(&sealed));
                return Ok(same_user.is_some());
            }
            CreateIndexedOutcome::Exists => return Err(collision()),
            // Ended while this request ran (a logout elsewhere): its data must not live on
            // under a new id.
            CreateIndexedOutcome::Gone => return Err(WriteError::Ended),
            CreateIndexedOutcome::Refused => {
                return Err(WriteError::LimitReached {
                    max: settings.limit.max.map_or(0, std::num::NonZeroUsize::get),
                });
            }
            CreateIndexedOutcome::Stale(live) => {
                let Some((old, _, _)) = &same_user else {
                    return Err(WriteError::Unavailable(None));
                };
                merge_into(shared, current, old, &live, now)?;
                old_token = Some(settings.format.cas_token(&live));
                back_off(attempt).await;
            }
        }
    }
    Err(WriteError::Busy)
}

/// Retires `old` (already written as `current`'s new id) if it is still the record this
/// request loaded; else replays this request's changes onto it, saves the new session again,
/// and tries once more. An old record already gone was ended while this request ran (a
/// logout elsewhere): then the new record goes too, and the answer is 409, so that the
/// session's data does not live on under a new id.
async fn retire(
    shared: &LayerShared,
    current: &mut WorkingCopy,
    old: &Id,
    mut expected: Vec<u8>,
    now: SystemTime,
) -> Result<(), WriteError> {
    let settings = &shared.settings;
    let old_key = settings.format.store_key(old, &settings.key_prefix);
    for attempt in 0..MAX_SAVE_ATTEMPTS {
        match shared.store.delete_if(&old_key, &expected).await? {
            SaveOutcome::Saved => return Ok(()),
            SaveOutcome::Gone => {
                delete(shared, &current.id).await?;
                return Err(WriteError::Ended);
            }
            SaveOutcome::Conflict(live) => {
                merge_into(shared, current, old, &live, now)?;
                save(shared, current, now).await?;
                expected = settings.format.cas_token(&live);
                back_off(attempt).await;
            }
        }
    }
    Err(WriteError::Busy)
}

/// Makes `current` what another request saved under `old` (`live`) plus this request's
/// changes, keeping the new session's own CSRF secret.
fn merge_into(
    shared: &LayerShared,
    current: &mut WorkingCopy,
    old: &Id,
    live: &[u8],
    now: SystemTime,
) -> Result<(), WriteError> {
    let settings = &shared.settings;
    let old_key = settings.format.store_key(old, &settings.key_prefix);
    let Some(mut envelope) = decode(shared, &old_key, live, now) else {
        return Err(unreadable());
    };
    current.changes.replay(&mut envelope);
    if let Some(secret) = current.envelope.data.get(crate::csrf::SESSION_KEY) {
        envelope
            .data
            .insert(crate::csrf::SESSION_KEY.to_owned(), secret.clone());
    }
    current.envelope = envelope;
    Ok(())
}

/// Encodes `current` for `key` in the layer's format (sealed, for the native one), recording
/// the idle deadline it is written with; returns the record and that deadline.
fn seal(
    shared: &LayerShared,
    current: &mut WorkingCopy,
    key: &StoreKey,
    now: SystemTime,
) -> Result<(Vec<u8>, SystemTime), WriteError> {
    let settings = &shared.settings;
    let deadline = current.envelope.created_at() + settings.absolute;
    let expires_at = (now + settings.idle).min(deadline);
    current.envelope.deadline_ms = crate::clock::unix_millis(expires_at);
    let sealed = settings
        .format
        .encode_record(&current.envelope, &shared.keys, key)
        .map_err(|_| WriteError::Encode)?;
    Ok((sealed, expires_at))
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
    tracing::warn!(
        target: "portcullis::security",
        "a concurrent write left a session record this process cannot read; not overwriting it"
    );
    WriteError::Unavailable(None)
}

/// A fresh 256-bit id already in use: the generator is broken. Refuse to share a session.
fn collision() -> WriteError {
    tracing::error!("a new session id collided with a live one; refusing to write");
    WriteError::Unavailable(None)
}

/// Waits before try `attempt + 1`: not at all after the first conflict, then a random time
/// below a window that doubles up to [`BACKOFF_CAP`] (full jitter).
async fn back_off(attempt: u32) {
    if attempt == 0 {
        return;
    }
    let window = BACKOFF_BASE
        .saturating_mul(1 << (attempt - 1).min(MAX_BACKOFF_DOUBLINGS))
        .min(BACKOFF_CAP);
    let mut random = [0u8; 8];
    fill_random(&mut random);
    let window = u64::try_from(window.as_micros()).unwrap_or(u64::MAX).max(1);
    let micros = u64::from_le_bytes(random) % window;
    tokio::time::sleep(Duration::from_micros(micros)).await;
}
