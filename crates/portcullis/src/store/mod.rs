//! Where sealed session records live.
//!
//! A [`SessionStore`] keeps opaque, already-sealed bytes under a [`StoreKey`], each with an
//! expiry time. The store never sees a session id or plaintext: keys are
//! `SESSION_KEY_PREFIX` + SHA-256 of the id and records are AEAD-sealed by the session layer.
//!
//! The store's own expiry is the session's **idle** deadline: every load may slide it
//! ([`SessionStore::load`] with `Some(deadline)`), and an expired record must never be
//! returned. Writes come in two kinds that together make logouts final and lose no update:
//! [`SessionStore::create`] writes only if the key is absent, and [`SessionStore::save`] is a
//! compare-and-set: it replaces the record only if it is still the one the request loaded
//! (it still begins with that record's *token*), answers [`SaveOutcome::Conflict`] with the
//! newer record when another request saved first (the session layer re-applies its own
//! changes onto it and tries again), and [`SaveOutcome::Gone`] when the session was deleted
//! meanwhile, which it never brings back.
//!
//! The token is opaque to the store: the record format decides it (for the sealed records of
//! the session layer, the format byte and the 24-byte nonce that starts every record, unique
//! per write). A store only checks that the live record begins with it.
//!
//! Stores that can keep a per-user index beside the sessions offer it through
//! [`SessionStore::user_index`]; see [`UserIndex`]. Each store keeps its index in a child
//! module (`memory.rs` inline, `file/index.rs`, `redis/index.rs` with the Lua scripts in
//! `redis/scripts.rs`).
//!
//! Implementations: [`MemoryStore`] (one process, tests), [`FileStore`] (the `dev` profile;
//! Unix only, as it relies on Unix permission bits and file names that may hold `:`), and
//! [`RedisStore`] (the `redis` profile: one Redis server or a Redis Cluster, shared by every
//! process; one command per operation, e.g. `GETEX … PXAT` for a sliding load).
//! Every store passes the same contract suite (`tests/store_contract.rs`).

#[cfg(unix)]
mod file;
mod index;
mod memory;
#[cfg(feature = "redis")]
mod redis;
mod redis_timeouts;

#[cfg(feature = "redis")]
pub use self::redis::{RedisReplication, RedisStore, RedisUrlError};
#[cfg(unix)]
pub use file::FileStore;
pub use index::{
    CreateIndexedOutcome, IndexedRecord, LimitPolicy, MAX_MEMBERS_VISITED, NewIndexed, Retire,
    SessionLimit, UserIndex, UserSlot,
};
pub use memory::MemoryStore;
pub use redis_timeouts::RedisTimeouts;

#[cfg(feature = "redis")]
pub(crate) use self::redis::check_url as check_redis_url;

use std::fmt;
use std::time::SystemTime;

use async_trait::async_trait;

/// The key a record is stored under: `SESSION_KEY_PREFIX` followed by the base64url SHA-256 of
/// the session id. Never the id itself, so a dump of the store holds no usable cookie.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct StoreKey(String);

impl StoreKey {
    /// Wraps an already-derived key. The session layer derives keys with
    /// [`crate::session::Id::store_key`]; stores and tests may build them directly.
    #[must_use]
    pub fn from_string(key: String) -> Self {
        Self(key)
    }

    /// The key as text.
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for StoreKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "StoreKey({})", self.0)
    }
}

impl fmt::Display for StoreKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A store could not do what was asked. The session layer answers such requests with
/// `503 Service Unavailable` and never overwrites the client's cookie (fail closed).
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The backing storage failed (I/O error, connection refused, timeout...).
    #[error("session store unavailable: {context}")]
    Unavailable {
        /// What the store was doing.
        context: String,
        /// The underlying error.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// The key cannot be stored by this store (for example a character a file name cannot hold).
    #[error("invalid session store key {key:?}: {reason}")]
    InvalidKey {
        /// The refused key.
        key: String,
        /// Why it was refused.
        reason: &'static str,
    },
}

impl StoreError {
    /// Wraps a backend error with what the store was doing.
    pub fn unavailable(
        context: impl Into<String>,
        source: impl Into<Box<dyn std::error::Error + Send + Sync>>,
    ) -> Self {
        Self::Unavailable {
            context: context.into(),
            source: source.into(),
        }
    }
}

/// The outcome of [`SessionStore::create`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WriteOutcome {
    /// The record was written.
    Written,
    /// A live record already had the key. Nothing was written.
    NotWritten,
}

/// The compare-and-set token of a stored record: opaque bytes that say which write of the
/// session a caller saw. The record format decides them (for the session layer's sealed
/// records, the format byte and the nonce that begin every record; for the Flask format, the
/// whole record), so a token may carry a whole record, not only a prefix. A store only checks
/// that the live record begins with it ([`matches_token`]).
///
/// A token made with [`CasToken::of_record`] also keeps the whole record it was taken from,
/// for a store whose server compares whole values natively (the Redis store's `SET … IFEQ`
/// on Valkey 8.1+ and Redis 8.4+). Such a token vouches that only that record begins with its
/// bytes (they are unique per write), so "begins with the token" and "equals the record" are
/// the same test and a store may use either.
#[derive(Clone, Default)]
pub struct CasToken {
    /// The record the token was taken from, or the token's bytes alone.
    bytes: Vec<u8>,
    /// How many of `bytes` the live record must begin with.
    len: usize,
    /// Whether `bytes` is the whole record (made by [`CasToken::of_record`]).
    whole: bool,
}

impl CasToken {
    /// A token of `bytes`.
    #[must_use]
    pub fn new(bytes: impl Into<Vec<u8>>) -> Self {
        let bytes = bytes.into();
        Self {
            len: bytes.len(),
            bytes,
            whole: false,
        }
    }

    /// The token of `record`: its first `len` bytes (all of it when shorter), which must be
    /// unique to this write of the record (a nonce drawn per write, or the whole record), and
    /// the record itself ([`CasToken::record`]).
    #[must_use]
    pub fn of_record(record: &[u8], len: usize) -> Self {
        Self {
            bytes: record.to_vec(),
            len: len.min(record.len()),
            whole: true,
        }
    }

    /// The token's bytes, as a store compares them.
    #[must_use]
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes[..self.len]
    }

    /// The whole record the token was taken from, when it was made by
    /// [`CasToken::of_record`]: a store may compare the live record with it for equality.
    #[must_use]
    pub fn record(&self) -> Option<&[u8]> {
        self.whole.then_some(self.bytes.as_slice())
    }
}

/// Tokens are equal when their bytes are ([`CasToken::as_bytes`]): they name the same write.
impl PartialEq for CasToken {
    fn eq(&self, other: &Self) -> bool {
        self.as_bytes() == other.as_bytes()
    }
}

impl Eq for CasToken {}

/// Shows the length, never the bytes: a Flask record's token is the record itself.
impl fmt::Debug for CasToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "CasToken({} bytes)", self.len)
    }
}

/// The outcome of [`SessionStore::save`], the compare-and-set write.
#[derive(Clone, PartialEq, Eq)]
pub enum SaveOutcome {
    /// The live record still matched the token: it was replaced.
    Saved,
    /// Another write came first: the live record does not match the token. It is handed back,
    /// so the caller can merge onto it without another read. Nothing was written.
    Conflict(Vec<u8>),
    /// No live record under the key (expired or deleted). Nothing was written: a deleted
    /// session is never brought back.
    Gone,
}

/// Shows the size of a conflicting record, never its bytes.
impl fmt::Debug for SaveOutcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Saved => f.write_str("Saved"),
            Self::Conflict(record) => write!(f, "Conflict({} bytes)", record.len()),
            Self::Gone => f.write_str("Gone"),
        }
    }
}

/// The outcome of [`SessionStore::delete_if`], the compare-and-delete.
#[derive(Clone, PartialEq, Eq)]
pub enum CasOutcome {
    /// The live record still matched the token: it was removed.
    Deleted,
    /// Another write came first: the live record does not match the token. It is handed back,
    /// so the caller can carry its changes over. Nothing was removed.
    Conflict(Vec<u8>),
    /// No live record under the key (expired or deleted).
    Gone,
}

/// Shows the size of a conflicting record, never its bytes.
impl fmt::Debug for CasOutcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Deleted => f.write_str("Deleted"),
            Self::Conflict(record) => write!(f, "Conflict({} bytes)", record.len()),
            Self::Gone => f.write_str("Gone"),
        }
    }
}

/// Whether `record` matches the compare-and-set token `expected`: it begins with it. Every
/// store applies this one rule (the Redis store in Lua, with the same meaning).
#[must_use]
pub fn matches_token(record: &[u8], expected: &CasToken) -> bool {
    record.starts_with(expected.as_bytes())
}

/// Storage for sealed session records.
///
/// All times are absolute wall-clock deadlines; a record whose deadline has passed is gone.
#[async_trait]
pub trait SessionStore: Send + Sync + fmt::Debug + 'static {
    /// Writes `record` under `key` if, and only if, no live record is there.
    ///
    /// # Errors
    /// [`StoreError`] when the backend fails.
    async fn create(
        &self,
        key: &StoreKey,
        record: &[u8],
        expires_at: SystemTime,
    ) -> Result<WriteOutcome, StoreError>;

    /// Reads the live record under `key`; with `slide_to`, also moves its expiry to that time
    /// in the same operation (one round trip).
    ///
    /// # Errors
    /// [`StoreError`] when the backend fails. A missing or expired record is `Ok(None)`.
    async fn load(
        &self,
        key: &StoreKey,
        slide_to: Option<SystemTime>,
    ) -> Result<Option<Vec<u8>>, StoreError>;

    /// Replaces the live record under `key` with `record`, expiring at `expires_at`, if, and
    /// only if, it still matches `expected` ([`matches_token`]): the token of the record the
    /// caller loaded. Check and write are one atomic step.
    ///
    /// A deadline that has already passed ends the record (when it matches).
    ///
    /// # Errors
    /// [`StoreError`] when the backend fails. A mismatch is [`SaveOutcome::Conflict`], a
    /// missing record [`SaveOutcome::Gone`].
    async fn save(
        &self,
        key: &StoreKey,
        expected: &CasToken,
        record: &[u8],
        expires_at: SystemTime,
    ) -> Result<SaveOutcome, StoreError>;

    /// Removes the record under `key` and says whether a live one was there; removing a
    /// missing record is not an error. The answer lets a regenerated session notice that a
    /// logout deleted its old record meanwhile, and not outlive it under its new id.
    ///
    /// # Errors
    /// [`StoreError`] when the backend fails.
    async fn delete(&self, key: &StoreKey) -> Result<bool, StoreError>;

    /// Removes the live record under `key` if, and only if, it still matches `expected`
    /// ([`matches_token`]), in one atomic step: [`CasOutcome::Deleted`] when removed,
    /// [`CasOutcome::Conflict`] with the live record when another write came first (nothing
    /// is removed), [`CasOutcome::Gone`] when there was no live record. The session layer
    /// retires a regenerated session's old record this way, so that what another request
    /// saved there meanwhile is carried over rather than lost.
    ///
    /// # Errors
    /// [`StoreError`] when the backend fails.
    async fn delete_if(
        &self,
        key: &StoreKey,
        expected: &CasToken,
    ) -> Result<CasOutcome, StoreError>;

    /// Removes every expired record and returns how many were removed. Stores whose backend
    /// expires records by itself (Redis) return `Ok(0)`.
    ///
    /// # Errors
    /// [`StoreError`] when the backend fails.
    async fn purge_expired(&self) -> Result<usize, StoreError> {
        Ok(0)
    }

    /// Checks that the backend answers, for health checks.
    ///
    /// # Errors
    /// [`StoreError`] when it does not.
    async fn ping(&self) -> Result<(), StoreError> {
        Ok(())
    }

    /// The store's per-user index, when it keeps one (every store of this crate does). Without
    /// one, sessions of logged-in users are stored like any other and cannot be listed.
    fn user_index(&self) -> Option<&dyn UserIndex> {
        None
    }

    /// A short name of the backend for metrics labels (`memory`, `file`, `redis`); `custom`
    /// by default, so that a store written elsewhere need not say. A wrapper says its inner
    /// store's.
    fn kind(&self) -> &'static str {
        "custom"
    }
}

#[async_trait]
impl<S: SessionStore + ?Sized> SessionStore for std::sync::Arc<S> {
    async fn create(
        &self,
        key: &StoreKey,
        record: &[u8],
        expires_at: SystemTime,
    ) -> Result<WriteOutcome, StoreError> {
        (**self).create(key, record, expires_at).await
    }
    async fn load(
        &self,
        key: &StoreKey,
        slide_to: Option<SystemTime>,
    ) -> Result<Option<Vec<u8>>, StoreError> {
        (**self).load(key, slide_to).await
    }
    async fn save(
        &self,
        key: &StoreKey,
        expected: &CasToken,
        record: &[u8],
        expires_at: SystemTime,
    ) -> Result<SaveOutcome, StoreError> {
        (**self).save(key, expected, record, expires_at).await
    }
    async fn delete(&self, key: &StoreKey) -> Result<bool, StoreError> {
        (**self).delete(key).await
    }
    async fn delete_if(
        &self,
        key: &StoreKey,
        expected: &CasToken,
    ) -> Result<CasOutcome, StoreError> {
        (**self).delete_if(key, expected).await
    }
    async fn purge_expired(&self) -> Result<usize, StoreError> {
        (**self).purge_expired().await
    }
    async fn ping(&self) -> Result<(), StoreError> {
        (**self).ping().await
    }
    fn user_index(&self) -> Option<&dyn UserIndex> {
        (**self).user_index()
    }
    fn kind(&self) -> &'static str {
        (**self).kind()
    }
}
