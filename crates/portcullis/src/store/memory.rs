//! An in-process store: a map behind a mutex. For tests and single-process demos; sessions
//! vanish when the process exits.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::SystemTime;

use async_trait::async_trait;

use super::{SessionStore, StoreError, StoreKey, WriteOutcome};
use crate::clock::{Clock, SystemClock};

/// Sessions kept in memory, with exact expiry against a [`Clock`].
///
/// ```
/// use portcullis::store::{MemoryStore, SessionStore, StoreKey, WriteOutcome};
/// use std::time::{Duration, SystemTime};
///
/// # tokio_test_block_on(async {
/// let store = MemoryStore::new();
/// let key = StoreKey::from_string("sess:example".into());
/// let later = SystemTime::now() + Duration::from_secs(300);
/// assert_eq!(store.create(&key, b"sealed", later).await?, WriteOutcome::Written);
/// assert_eq!(store.load(&key, None).await?.as_deref(), Some(&b"sealed"[..]));
/// # Ok::<_, portcullis::store::StoreError>(())
/// # }).unwrap();
/// # fn tokio_test_block_on<F: std::future::Future>(f: F) -> F::Output {
/// #     tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(f)
/// # }
/// ```
#[derive(Clone, Debug)]
pub struct MemoryStore {
    records: Arc<Mutex<HashMap<StoreKey, Entry>>>,
    clock: Arc<dyn Clock>,
}

#[derive(Debug)]
struct Entry {
    record: Vec<u8>,
    expires_at: SystemTime,
}

impl MemoryStore {
    /// An empty store on the system clock.
    #[must_use]
    pub fn new() -> Self {
        Self::with_clock(Arc::new(SystemClock))
    }

    /// An empty store that reads the time from `clock`.
    #[must_use]
    pub fn with_clock(clock: Arc<dyn Clock>) -> Self {
        Self {
            records: Arc::default(),
            clock,
        }
    }

    /// How many records the store holds, expired ones included until purged.
    #[must_use]
    pub fn len(&self) -> usize {
        self.records().len()
    }

    /// Whether the store holds no record at all.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn records(&self) -> MutexGuard<'_, HashMap<StoreKey, Entry>> {
        // A panic while holding the lock cannot leave a half-written entry: every critical
        // section below is a single map operation.
        self.records.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn live<'a>(
        records: &'a mut HashMap<StoreKey, Entry>,
        key: &StoreKey,
        now: SystemTime,
    ) -> Option<&'a mut Entry> {
        if records.get(key).is_some_and(|e| e.expires_at <= now) {
            records.remove(key);
        }
        records.get_mut(key)
    }
}

impl Default for MemoryStore {
    fn default() -> Self {
        Self::new()
    }
}

#[async_trait]
impl SessionStore for MemoryStore {
    async fn create(
        &self,
        key: &StoreKey,
        record: &[u8],
        expires_at: SystemTime,
    ) -> Result<WriteOutcome, StoreError> {
        let now = self.clock.now();
        let mut records = self.records();
        if Self::live(&mut records, key, now).is_some() {
            return Ok(WriteOutcome::NotWritten);
        }
        records.insert(
            key.clone(),
            Entry {
                record: record.to_vec(),
                expires_at,
            },
        );
        Ok(WriteOutcome::Written)
    }

    async fn load(
        &self,
        key: &StoreKey,
        slide_to: Option<SystemTime>,
    ) -> Result<Option<Vec<u8>>, StoreError> {
        let now = self.clock.now();
        let mut records = self.records();
        Ok(Self::live(&mut records, key, now).map(|entry| {
            if let Some(deadline) = slide_to {
                entry.expires_at = deadline;
            }
            entry.record.clone()
        }))
    }

    async fn update(
        &self,
        key: &StoreKey,
        record: &[u8],
        expires_at: SystemTime,
    ) -> Result<WriteOutcome, StoreError> {
        let now = self.clock.now();
        let mut records = self.records();
        Ok(match Self::live(&mut records, key, now) {
            Some(entry) => {
                *entry = Entry {
                    record: record.to_vec(),
                    expires_at,
                };
                WriteOutcome::Written
            }
            None => WriteOutcome::NotWritten,
        })
    }

    async fn delete(&self, key: &StoreKey) -> Result<bool, StoreError> {
        let now = self.clock.now();
        Ok(self
            .records()
            .remove(key)
            .is_some_and(|entry| entry.expires_at > now))
    }

    async fn purge_expired(&self) -> Result<usize, StoreError> {
        let now = self.clock.now();
        let mut records = self.records();
        let before = records.len();
        records.retain(|_, entry| entry.expires_at > now);
        Ok(before - records.len())
    }
}
