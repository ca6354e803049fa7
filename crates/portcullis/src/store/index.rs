//! The per-user index: which live sessions belong to one user, kept beside those sessions so
//! that one atomic step of the store sees both.
//!
//! The session layer gives every logged-in session a key that names its user's slot,
//! `<prefix>{T}<member>`, where `T` is a keyed tag of the user id and `member` the base64url
//! SHA-256 of the session id; the user's index is `<prefix>idx:{T}`, a set of members scored by
//! their absolute deadline. A [`UserSlot`] carries both names, so a store never builds keys of
//! its own and never sees a user id or a session id. On a Redis Cluster the braces make the
//! sessions and the index share one hash slot, so each operation below is one script or one
//! pipeline on one node.
//!
//! Entries cannot leak: every operation first drops members past their deadline and members
//! whose session is gone (expired, deleted), and the index itself expires with its last
//! deadline. No keyspace notifications, no sweeper.

use std::fmt;
use std::num::NonZeroUsize;
use std::time::SystemTime;

use async_trait::async_trait;

use super::{CasToken, StoreError, StoreKey};

/// Where one user's sessions and their index live: the index's key and the prefix that turns a
/// member into its session's key. Built by the session layer.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct UserSlot {
    index: StoreKey,
    member_prefix: String,
}

impl UserSlot {
    /// A slot whose index is `index` and whose member `m` is stored under `member_prefix` + `m`.
    #[must_use]
    pub fn new(index: StoreKey, member_prefix: impl Into<String>) -> Self {
        Self {
            index,
            member_prefix: member_prefix.into(),
        }
    }

    /// The index's key, e.g. `sess:idx:{T}`.
    #[must_use]
    pub fn index(&self) -> &StoreKey {
        &self.index
    }

    /// What goes before a member to make its session key, e.g. `sess:{T}`.
    #[must_use]
    pub fn member_prefix(&self) -> &str {
        &self.member_prefix
    }

    /// The session key of `member`.
    #[must_use]
    pub fn member_key(&self, member: &str) -> StoreKey {
        StoreKey::from_string(format!("{}{member}", self.member_prefix))
    }
}

impl fmt::Debug for UserSlot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UserSlot")
            .field("index", &self.index.as_str())
            .finish_non_exhaustive()
    }
}

/// What happens to a log-in when its user already has the most sessions allowed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum LimitPolicy {
    /// The user's oldest session (the earliest absolute deadline, so the earliest log-in) ends
    /// to make room. The default: a person who lost a device can still log in.
    #[default]
    EvictOldest,
    /// The new log-in is refused until the user ends a session.
    Refuse,
}

/// The most members of one user's index that one index operation visits (prunes, evicts,
/// lists or ends), whatever the limit: so that one account with a huge index (no limit, or one
/// from before the limit) cannot make one call, a Lua script blocking a shared Redis, cost
/// more than this. Lists show the newest this many; "end all" goes on in calls of this many.
pub const MAX_MEMBERS_VISITED: usize = 128;

/// `SESSION_MAX_PER_USER` and its policy.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SessionLimit {
    /// The most live sessions one user may have; `None` for no limit. Default
    /// [`SessionLimit::DEFAULT_MAX`].
    pub max: Option<NonZeroUsize>,
    /// What a log-in beyond the limit does.
    pub policy: LimitPolicy,
}

impl SessionLimit {
    /// The default `SESSION_MAX_PER_USER`: 50 live sessions per user, the oldest ended by a
    /// log-in beyond them. Enough devices for anyone, and a bound on what one account can
    /// make the store hold.
    pub const DEFAULT_MAX: NonZeroUsize = NonZeroUsize::MIN.saturating_add(49);
}

impl Default for SessionLimit {
    fn default() -> Self {
        Self {
            max: Some(Self::DEFAULT_MAX),
            policy: LimitPolicy::default(),
        }
    }
}

/// A logged-in session to create and index in one step ([`UserIndex::create_indexed`]).
#[derive(Clone, Copy, Debug)]
pub struct NewIndexed<'a> {
    /// The user's slot.
    pub slot: &'a UserSlot,
    /// The new session's member; its key is `slot.member_key(member)`.
    pub member: &'a str,
    /// The sealed record.
    pub record: &'a [u8],
    /// The record's idle deadline (the store's expiry).
    pub expires_at: SystemTime,
    /// The session's absolute deadline: its score in the index.
    pub deadline: SystemTime,
    /// A session of the same slot that this one replaces (a regeneration): removed in the same
    /// step, and not counted against the limit.
    pub retire: Option<Retire<'a>>,
    /// The limit to apply.
    pub limit: SessionLimit,
}

/// The session a regeneration replaces, in [`NewIndexed::retire`].
#[derive(Clone, Copy, Debug)]
pub struct Retire<'a> {
    /// Its member.
    pub member: &'a str,
    /// The compare-and-set token of its record as the regenerating request loaded it. When the
    /// live record no longer matches (another request saved it meanwhile), nothing is written
    /// and the outcome is [`CreateIndexedOutcome::Stale`], so that the caller can carry that change over.
    pub token: &'a CasToken,
}

/// The outcome of [`UserIndex::create_indexed`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CreateIndexedOutcome {
    /// Written and indexed; the members that were ended to respect the limit, oldest first.
    Created {
        /// Members evicted by [`LimitPolicy::EvictOldest`].
        evicted: Vec<String>,
    },
    /// A live record already has this key; nothing was written.
    Exists,
    /// The user has the most sessions allowed and the policy is [`LimitPolicy::Refuse`];
    /// nothing was written.
    Refused,
    /// The session to retire no longer matches its token: its live record. Nothing was
    /// written.
    Stale(Vec<u8>),
    /// The session to retire is gone (ended while the regeneration ran). Nothing was written.
    Gone,
}

/// One live session of a user, as [`UserIndex::list`] finds it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IndexedRecord {
    /// Its member in the index.
    pub member: String,
    /// When the store will expire it if nothing else happens (its idle deadline).
    pub expires_at: SystemTime,
    /// Its sealed record, read without sliding its expiry.
    pub record: Vec<u8>,
}

/// The per-user index of a store (see the module docs). A store offers one through
/// [`SessionStore::user_index`](super::SessionStore::user_index).
#[async_trait]
pub trait UserIndex: Send + Sync {
    /// Creates a session (only if its key is absent, as
    /// [`SessionStore::create`](super::SessionStore::create)) and adds it to the slot's index, in one atomic step that
    /// also prunes dead members, applies the limit, and retires `new.retire`: only if it still
    /// matches its token ([`CreateIndexedOutcome::Stale`] otherwise) and is still there ([`CreateIndexedOutcome::Gone`]
    /// otherwise: a regeneration never outlives a logout).
    ///
    /// # Errors
    /// [`StoreError`] when the backend fails.
    async fn create_indexed(&self, new: NewIndexed<'_>)
    -> Result<CreateIndexedOutcome, StoreError>;

    /// The slot's live sessions, with their records, in index order (oldest log-in first).
    /// Reading slides no expiry; dead members are dropped from the index on the way.
    ///
    /// # Errors
    /// [`StoreError`] when the backend fails.
    async fn list(&self, slot: &UserSlot) -> Result<Vec<IndexedRecord>, StoreError>;

    /// Ends one session of the slot and removes it from the index; `true` if a live session
    /// was there. A member of another slot is never touched, whatever its name.
    ///
    /// # Errors
    /// [`StoreError`] when the backend fails.
    async fn end(&self, slot: &UserSlot, member: &str) -> Result<bool, StoreError>;

    /// Ends every session of the slot except `keep`, in one atomic step; returns how many
    /// live sessions ended.
    ///
    /// # Errors
    /// [`StoreError`] when the backend fails.
    async fn end_all(&self, slot: &UserSlot, keep: Option<&str>) -> Result<usize, StoreError>;

    /// How many members the slot's index holds as stored, dead ones included: nothing is
    /// pruned and no session is read. For tests and monitoring that must see the index itself
    /// rather than the live sessions [`UserIndex::list`] finds through it. `None` from a store
    /// that does not tell (the default, so a store written elsewhere need not).
    ///
    /// # Errors
    /// [`StoreError`] when the backend fails.
    async fn stored_members(&self, slot: &UserSlot) -> Result<Option<usize>, StoreError> {
        let _ = slot;
        Ok(None)
    }
}

/// Members a limit forces out of `members` (each `(member, deadline)`, live ones only), given
/// that one more is about to join: the oldest deadlines first. `None` when the policy refuses.
pub(crate) fn over_limit(
    members: &[(String, SystemTime)],
    limit: SessionLimit,
) -> Option<Vec<String>> {
    let Some(max) = limit.max else {
        return Some(Vec::new());
    };
    let excess = (members.len() + 1).saturating_sub(max.get());
    if excess == 0 {
        return Some(Vec::new());
    }
    if limit.policy == LimitPolicy::Refuse {
        return None;
    }
    let mut oldest: Vec<&(String, SystemTime)> = members.iter().collect();
    oldest.sort_by(|a, b| a.1.cmp(&b.1).then_with(|| a.0.cmp(&b.0)));
    Some(oldest.iter().take(excess).map(|(m, _)| m.clone()).collect())
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn limit(max: usize, policy: LimitPolicy) -> SessionLimit {
        SessionLimit {
            max: NonZeroUsize::new(max),
            policy,
        }
    }

    #[test]
    fn the_limit_evicts_the_oldest_deadlines_or_refuses() {
        let t = SystemTime::UNIX_EPOCH;
        let members = vec![
            ("b".to_owned(), t + Duration::from_secs(2)),
            ("a".to_owned(), t + Duration::from_secs(1)),
            ("c".to_owned(), t + Duration::from_secs(3)),
        ];
        assert_eq!(
            over_limit(&members, SessionLimit::default()),
            Some(Vec::new())
        );
        assert_eq!(
            over_limit(&members, limit(4, LimitPolicy::Refuse)),
            Some(Vec::new())
        );
        assert_eq!(
            over_limit(&members, limit(3, LimitPolicy::EvictOldest)),
            Some(vec!["a".to_owned()])
        );
        assert_eq!(
            over_limit(&members, limit(2, LimitPolicy::EvictOldest)),
            Some(vec!["a".to_owned(), "b".to_owned()])
        );
        assert_eq!(over_limit(&members, limit(3, LimitPolicy::Refuse)), None);
    }
}
