//! Where sealed session records live.
//!
//! A [`SessionStore`] keeps opaque, already-sealed bytes under a [`StoreKey`], each with an
//! expiry time. The store never sees a session id or plaintext: keys are
//! `SESSION_KEY_PREFIX` + SHA-256 of the id and records are AEAD-sealed by the session layer.
//!
//! The store's own expiry is the session's **idle** deadline: every load may slide it
//! ([`SessionStore::load`] with `Some(deadline)`), and an expired record must never be
//! returned. Writes come in two kinds that together make logouts final:
//! [`SessionStore::create`] writes only if the key is absent, and [`SessionStore::update`]
//! only if it is present, so a request that saves after another request deleted the session
//! never brings it back.
//!
//! Implementations: [`MemoryStore`] (one process, tests), [`FileStore`] (the `dev` profile;
//! Unix only, as it relies on Unix permission bits and file names that may hold `:`), and
//! [`RedisStore`] (the `redis` profile: one Redis server or a Redis Cluster, shared by every
//! process; one command per operation, e.g. `GETEX … PXAT` for a sliding load).
//! Every store passes the same contract suite (`tests/store_contract.rs`).

#[cfg(unix)]
mod file;
mod memory;
mod redis;

pub use self::redis::{RedisStore, RedisTimeouts, RedisUrlError};
#[cfg(unix)]
pub use file::FileStore;
pub use memory::MemoryStore;

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

/// The outcome of a conditional write.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WriteOutcome {
    /// The record was written.
    Written,
    /// The condition did not hold: for [`SessionStore::create`] the key already existed, for
    /// [`SessionStore::update`] it was gone (expired or deleted). Nothing was written.
    NotWritten,
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

    /// Replaces the live record under `key`, if, and only if, one is there.
    ///
    /// # Errors
    /// [`StoreError`] when the backend fails.
    async fn update(
        &self,
        key: &StoreKey,
        record: &[u8],
        expires_at: SystemTime,
    ) -> Result<WriteOutcome, StoreError>;

    /// Removes the record under `key` and says whether a live one was there; removing a
    /// missing record is not an error. The answer lets a regenerated session notice that a
    /// logout deleted its old record meanwhile, and not outlive it under its new id.
    ///
    /// # Errors
    /// [`StoreError`] when the backend fails.
    async fn delete(&self, key: &StoreKey) -> Result<bool, StoreError>;

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
    async fn update(
        &self,
        key: &StoreKey,
        record: &[u8],
        expires_at: SystemTime,
    ) -> Result<WriteOutcome, StoreError> {
        (**self).update(key, record, expires_at).await
    }
    async fn delete(&self, key: &StoreKey) -> Result<bool, StoreError> {
        (**self).delete(key).await
    }
    async fn purge_expired(&self) -> Result<usize, StoreError> {
        (**self).purge_expired().await
    }
    async fn ping(&self) -> Result<(), StoreError> {
        (**self).ping().await
    }
}
