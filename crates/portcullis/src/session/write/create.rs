//! Creating a session (first write, or after a regeneration), in its user's index when it has
//! a user, and retiring the session it was regenerated from without losing what another
//! request saved there meanwhile.

use std::num::NonZeroUsize;
use std::time::SystemTime;

use super::backoff::back_off;
use super::{
    MAX_SAVE_ATTEMPTS, Onto, WriteError, collision, delete, replay_onto, save::save, seal,
};
use crate::events;
use crate::session::handle::WorkingCopy;
use crate::session::id::{Id, Tag, slot};
use crate::session::secret::CsrfSecret;
use crate::session::{LayerShared, Settings, routing, secret};
use crate::store::{
    CasOutcome, CasToken, CreateIndexedOutcome, NewIndexed, Retire, UserIndex, WriteOutcome,
};

/// Creates the session: in its user's index when it has a user (and the store keeps one),
/// else plainly; then retires the id it was regenerated from, if any. `Ok(true)` when that old
/// id is dealt with.
///
/// The old record is retired only if it is still the one this request loaded (in the index
/// script for the same user, with `delete_if` otherwise). When another request saved it
/// meanwhile, this request's changes are replayed onto that record and the new session
/// written again, so a change made during a log-in is carried over, not lost.
pub(super) async fn create(
    shared: &LayerShared,
    current: &mut WorkingCopy,
    carried: Option<&CsrfSecret>,
    now: SystemTime,
) -> Result<bool, WriteError> {
    let settings = &shared.settings;
    // A session is created with its CSRF secret, so that concurrent first pages never mint two;
    // an anonymous visitor's pre-session secret is carried over.
    secret::mint_into(
        current.envelope_mut(&shared.opened),
        &settings.format,
        carried,
    );
    let old = current.regenerated.clone();
    let user = current.envelope.user_id.clone();
    let index = shared
        .store
        .user_index()
        .filter(|_| settings.format.indexes_users());
    let retired = match (user, index) {
        // Boxed, as the retirement below: each is a future of its own size, and the plain
        // creation should not carry room for them.
        (Some(user), Some(index)) => {
            Box::pin(create_indexed(shared, index, current, &user, now)).await?
        }
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
        Some(old) if !retired => {
            let token = old.token.unwrap_or_default();
            Box::pin(retire(shared, current, &old.old, token, now)).await?;
            Ok(true)
        }
        _ => Ok(retired),
    }
}

/// The session a log-in replaces when it was the same user's: retired in the index script, in
/// the same step as the new one is created.
struct SameUser {
    old: Id,
    member: String,
    /// The token of its record as last seen: as loaded, then as another request saved it.
    token: CasToken,
}

impl SameUser {
    /// The session `current` was regenerated from, when it is in the slot of `tag`.
    fn of(current: &WorkingCopy, tag: &Tag) -> Option<Self> {
        let regenerated = current.regenerated.as_ref()?;
        (regenerated.old.tag() == Some(tag)).then(|| Self {
            old: regenerated.old.clone(),
            member: regenerated.old.digest(),
            token: regenerated.token.clone().unwrap_or_default(),
        })
    }

    fn retire(&self) -> Retire<'_> {
        Retire {
            member: &self.member,
            token: &self.token,
        }
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
    let tags = routing::user_tags(shared, user).await?;
    let Some(&tag) = tags.first() else {
        return Err(WriteError::Encode);
    };
    // The id was never sent (the session is new), so it can still take its user's tag.
    current.id = Id::tagged(tag);
    let key = settings.format.store_key(&current.id, &settings.key_prefix);
    let slot = slot(&settings.key_prefix, &tag);
    let member = current.id.digest();
    let mut same_user = SameUser::of(current, &tag);
    for attempt in 0..MAX_SAVE_ATTEMPTS {
        let (sealed, expires_at) = seal(shared, current, &key, now)?;
        let created = index
            .create_indexed(NewIndexed {
                slot: &slot,
                member: &member,
                record: &sealed,
                expires_at,
                deadline: current.envelope.created_at() + settings.absolute,
                retire: same_user.as_ref().map(SameUser::retire),
                limit: settings.limit,
            })
            .await?;
        match created {
            CreateIndexedOutcome::Created { evicted } => {
                log_evicted(shared, user, evicted.len());
                current.token = Some(settings.format.cas_token(&sealed));
                return Ok(same_user.is_some());
            }
            CreateIndexedOutcome::Exists => return Err(collision()),
            // Ended while this request ran (a logout elsewhere): its data must not live on
            // under a new id.
            CreateIndexedOutcome::Gone => return Err(WriteError::Ended),
            CreateIndexedOutcome::Refused => return Err(limit_reached(settings)),
            CreateIndexedOutcome::Stale(live) => {
                crate::metrics::cas_conflict();
                let Some(same) = same_user.as_mut() else {
                    return Err(WriteError::Unavailable(None));
                };
                merge_regenerated_from(shared, current, &same.old, &live, now)?;
                same.token = settings.format.cas_token(&live);
                back_off(attempt).await;
            }
        }
    }
    Err(WriteError::Busy)
}

fn log_evicted(shared: &LayerShared, user: &str, evicted: usize) {
    crate::metrics::sessions_evicted(evicted);
    if evicted > 0 {
        let user_hash = shared.keys.log_hash(user.as_bytes());
        // A log-in ended the user's oldest sessions (SESSION_MAX_PER_USER).
        let max = shared.settings.limit.max.map(NonZeroUsize::get);
        events::sessions_ended(&user_hash, "evicted", evicted, max);
    }
}

fn limit_reached(settings: &Settings) -> WriteError {
    WriteError::LimitReached {
        max: settings.limit.max.map_or(0, NonZeroUsize::get),
    }
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
    mut expected: CasToken,
    now: SystemTime,
) -> Result<(), WriteError> {
    let settings = &shared.settings;
    let old_key = settings.format.store_key(old, &settings.key_prefix);
    for attempt in 0..MAX_SAVE_ATTEMPTS {
        match shared.store.delete_if(&old_key, &expected).await? {
            CasOutcome::Deleted => return Ok(()),
            CasOutcome::Gone => {
                delete(shared, &current.id).await?;
                return Err(WriteError::Ended);
            }
            CasOutcome::Conflict(live) => {
                crate::metrics::cas_conflict();
                merge_regenerated_from(shared, current, old, &live, now)?;
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
fn merge_regenerated_from(
    shared: &LayerShared,
    current: &mut WorkingCopy,
    old: &Id,
    live: &[u8],
    now: SystemTime,
) -> Result<(), WriteError> {
    let settings = &shared.settings;
    let old_key = settings.format.store_key(old, &settings.key_prefix);
    Ok(replay_onto(
        shared,
        current,
        &old_key,
        live,
        now,
        Onto::RegeneratedFrom,
    )?)
}
