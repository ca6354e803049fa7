//! Saving an existing session: compare-and-set on the token of the record this request loaded,
//! in this session's turn within the process, replaying this request's changes onto whatever
//! another request saved first.

use std::sync::Arc;
use std::time::SystemTime;

use super::backoff::back_off;
use super::turns::Turn;
use super::{MAX_SAVE_ATTEMPTS, Onto, WriteError, replay_onto, seal_write};
use crate::session::LayerShared;
use crate::session::handle::WorkingCopy;
use crate::session::record::{Envelope, WRITES_KEPT};
use crate::store::{CasToken, SaveOutcome, StoreKey};

/// The compare-and-set loop, in this session's turn within the process: seal, save, and on a
/// conflict replay onto the newer record and go again.
pub(super) async fn save(
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
    let mut turn = shared.writers.turn(&key).await;
    let mut merged = catch_up(shared, current, &key, &turn, &mut expected, now);
    for attempt in 0..MAX_SAVE_ATTEMPTS {
        if merged {
            check_merged_size(current, settings.max_bytes)?;
        }
        current.envelope_mut(&shared.opened).revision += 1;
        let (sealed, expires_at, id) = seal_write(shared, current, &key, now)?;
        let write = Write {
            id,
            revision: current.envelope.revision,
        };
        let token = settings.format.cas_token(&sealed);
        match shared
            .store
            .save(&key, &expected, &sealed, expires_at)
            .await?
        {
            SaveOutcome::Saved => {
                if attempt > 0 {
                    tracing::debug!(conflicts = attempt, "session saved after concurrent writes");
                }
                saved(shared, current, &mut turn, key, sealed, token);
                return Ok(());
            }
            SaveOutcome::Gone => return Err(WriteError::Ended),
            // Our own write, found by a retry after a lost reply: it had landed.
            SaveOutcome::Conflict(live) if settings.format.cas_token(&live) == token => {
                saved(shared, current, &mut turn, key, sealed, token);
                return Ok(());
            }
            SaveOutcome::Conflict(live) => {
                crate::metrics::cas_conflict();
                match landed(shared, &key, &live, write, now) {
                    Landed::Yes(envelope) => {
                        // Another request wrote on top of it: that record is the session now,
                        // this request's changes included.
                        let token = settings.format.cas_token(&live);
                        current.envelope = Arc::new(envelope);
                        saved(shared, current, &mut turn, key, live, token);
                        return Ok(());
                    }
                    Landed::CannotTell => return Err(cannot_tell()),
                    Landed::No => {}
                }
                replay_onto(shared, current, &key, &live, now, Onto::ThisSession)?;
                expected = settings.format.cas_token(&live);
                merged = true;
                // Another process keeps winning: wait, keeping this process's turn, so that
                // its other writers of the session do not spend their tries meanwhile.
                back_off(attempt).await;
            }
        }
    }
    Err(busy())
}

/// One try at saving: its id among the record's writes, and the revision it wrote.
#[derive(Clone, Copy)]
struct Write {
    id: u64,
    revision: u64,
}

/// Whether a save had landed, from the newer record a conflict handed back.
enum Landed {
    /// The record descends from it (its id is among the record's writes): the record, opened.
    Yes(Envelope),
    /// It does not.
    No,
    /// So many saves came after its revision that its id would have left the record's list.
    CannotTell,
}

/// Whether `write` had landed before `live` was written: only a save sent again after a lost
/// reply finds its own write under another one; any other conflict is `Landed::No`.
fn landed(
    shared: &LayerShared,
    key: &StoreKey,
    live: &[u8],
    write: Write,
    now: SystemTime,
) -> Landed {
    let Some((envelope, _)) = shared
        .settings
        .format
        .decode_record(&shared.keys, key, live, now)
    else {
        // Unreadable: the replay says so.
        return Landed::No;
    };
    if envelope.writes.contains(&write.id) {
        Landed::Yes(envelope)
    } else if envelope.revision >= write.revision + WRITES_KEPT as u64 {
        Landed::CannotTell
    } else {
        Landed::No
    }
}

/// A save sent again after a lost reply met more saves than a record remembers.
fn cannot_tell() -> WriteError {
    tracing::warn!(
        "a session save whose reply was lost cannot tell whether it landed; answering 503 \
         rather than applying its changes twice"
    );
    WriteError::Unavailable(None)
}

/// Still conflicting after every attempt: a pile-up of writers on one session.
fn busy() -> WriteError {
    tracing::warn!(
        attempts = MAX_SAVE_ATTEMPTS,
        "session still changed by other requests after every attempt; answering 503"
    );
    WriteError::Busy
}

/// The handle kept this request's own changes within `SESSION_MAX_BYTES`; merged with another
/// request's, the session may not be.
fn check_merged_size(current: &WorkingCopy, max: usize) -> Result<(), WriteError> {
    let size = current.envelope.data_len();
    if size > max {
        return Err(WriteError::TooLarge { size, max });
    }
    Ok(())
}

/// Records a successful save: its token for this request, its record for the next writer.
fn saved(
    shared: &LayerShared,
    current: &mut WorkingCopy,
    turn: &mut Turn<'_>,
    key: StoreKey,
    sealed: Vec<u8>,
    token: CasToken,
) {
    if !shared.settings.format.is_flask() {
        shared.opened.put(&key, &sealed, &current.envelope, false);
    }
    current.token = Some(token);
    turn.remember(key, sealed);
}

/// When a writer of this process saved `key` since this request's record (`expected`), starts
/// from the record it wrote: this request's changes replayed onto it, `expected` its token.
/// `true` when it did.
fn catch_up(
    shared: &LayerShared,
    current: &mut WorkingCopy,
    key: &StoreKey,
    turn: &Turn<'_>,
    expected: &mut CasToken,
    now: SystemTime,
) -> bool {
    let format = &shared.settings.format;
    let Some(record) = turn.last_written(key) else {
        return false;
    };
    let token = format.cas_token(record);
    if token == *expected
        || replay_onto(shared, current, key, record, now, Onto::ThisSession).is_err()
    {
        return false;
    }
    *expected = token;
    true
}
