//! An in-process store: a map behind a mutex. For tests and single-process demos; sessions
//! vanish when the process exits. Every operation, the per-user index's included, is one
//! critical section, which is what makes each of them atomic.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::SystemTime;

use async_trait::async_trait;

use super::index::{
    CreateIndexedOutcome, IndexedRecord, MAX_MEMBERS_VISITED, NewIndexed, UserIndex, UserSlot,
    over_limit,
};
use super::{
    CasOutcome, CasToken, SaveOutcome, SessionStore, StoreError, StoreKey, WriteOutcome,
    matches_token,
};
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
    records: Arc<Mutex<Records>>,
    clock: Arc<dyn Clock>,
}

/// The records, and the per-user indexes: index key to member to absolute deadline.
#[derive(Debug, Default)]
struct Records {
    entries: HashMap<StoreKey, Entry>,
    indexes: HashMap<StoreKey, BTreeMap<String, SystemTime>>,
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
        self.records().entries.len()
    }

    /// Whether the store holds no record at all.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn records(&self) -> MutexGuard<'_, Records> {
        // A panic while holding the lock cannot leave a half-written entry: every critical
        // section below is whole map operations, none of which can panic half-way.
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
        let records = &mut self.records().entries;
        if Self::live(records, key, now).is_some() {
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
        let records = &mut self.records().entries;
        Ok(Self::live(records, key, now).map(|entry| {
            if let Some(deadline) = slide_to {
                entry.expires_at = deadline;
            }
            entry.record.clone()
        }))
    }

    async fn save(
        &self,
        key: &StoreKey,
        expected: &CasToken,
        record: &[u8],
        expires_at: SystemTime,
    ) -> Result<SaveOutcome, StoreError> {
        let now = self.clock.now();
        let records = &mut self.records().entries;
        let Some(entry) = Self::live(records, key, now) else {
            return Ok(SaveOutcome::Gone);
        };
        if !matches_token(&entry.record, expected) {
            return Ok(SaveOutcome::Conflict(entry.record.clone()));
        }
        if expires_at <= now {
            records.remove(key);
        } else {
            *entry = Entry {
                record: record.to_vec(),
                expires_at,
            };
        }
        Ok(SaveOutcome::Saved)
    }

    async fn delete(&self, key: &StoreKey) -> Result<bool, StoreError> {
        let now = self.clock.now();
        Ok(self
            .records()
            .entries
            .remove(key)
            .is_some_and(|entry| entry.expires_at > now))
    }

    async fn delete_if(
        &self,
        key: &StoreKey,
        expected: &CasToken,
    ) -> Result<CasOutcome, StoreError> {
        let now = self.clock.now();
        let records = &mut self.records().entries;
        let Some(entry) = Self::live(records, key, now) else {
            return Ok(CasOutcome::Gone);
        };
        if !matches_token(&entry.record, expected) {
            return Ok(CasOutcome::Conflict(entry.record.clone()));
        }
        records.remove(key);
        Ok(CasOutcome::Deleted)
    }

    async fn purge_expired(&self) -> Result<usize, StoreError> {
        let now = self.clock.now();
        let records = &mut self.records().entries;
        let before = records.len();
        records.retain(|_, entry| entry.expires_at > now);
        Ok(before - records.len())
    }

    fn user_index(&self) -> Option<&dyn UserIndex> {
        Some(self)
    }

    fn kind(&self) -> &'static str {
        "memory"
    }
}

impl Records {
    /// The slot's live members and their deadlines, after dropping the dead ones from the
    /// index (past their deadline, or whose record is gone).
    fn live_members(&mut self, slot: &UserSlot, now: SystemTime) -> Vec<(String, SystemTime)> {
        let Some(index) = self.indexes.get_mut(slot.index()) else {
            return Vec::new();
        };
        let entries = &mut self.entries;
        index.retain(|member, deadline| {
            *deadline > now && MemoryStore::live(entries, &slot.member_key(member), now).is_some()
        });
        let live = index.iter().map(|(m, d)| (m.clone(), *d)).collect();
        if index.is_empty() {
            self.indexes.remove(slot.index());
        }
        live
    }

    fn end_member(&mut self, slot: &UserSlot, member: &str, now: SystemTime) -> bool {
        let key = slot.member_key(member);
        let was_live = MemoryStore::live(&mut self.entries, &key, now).is_some();
        self.entries.remove(&key);
        if let Some(index) = self.indexes.get_mut(slot.index()) {
            index.remove(member);
            if index.is_empty() {
                self.indexes.remove(slot.index());
            }
        }
        was_live
    }
}

#[async_trait]
impl UserIndex for MemoryStore {
    async fn create_indexed(
        &self,
        new: NewIndexed<'_>,
    ) -> Result<CreateIndexedOutcome, StoreError> {
        let now = self.clock.now();
        let mut records = self.records();
        let retire = new.retire.map(|r| r.member);
        let mut members = records.live_members(new.slot, now);
        members.retain(|(m, _)| Some(m.as_str()) != retire);
        let Some(evicted) = over_limit(&members, new.limit) else {
            return Ok(CreateIndexedOutcome::Refused);
        };
        if let Some(old) = new.retire {
            let old_key = new.slot.member_key(old.member);
            match Self::live(&mut records.entries, &old_key, now) {
                None => return Ok(CreateIndexedOutcome::Gone),
                Some(entry) if !matches_token(&entry.record, old.token) => {
                    return Ok(CreateIndexedOutcome::Stale(entry.record.clone()));
                }
                Some(_) => {}
            }
        }
        let key = new.slot.member_key(new.member);
        if Self::live(&mut records.entries, &key, now).is_some() {
            return Ok(CreateIndexedOutcome::Exists);
        }
        for member in retire.into_iter().chain(evicted.iter().map(String::as_str)) {
            records.end_member(new.slot, member, now);
        }
        if new.expires_at > now {
            records.entries.insert(
                key,
                Entry {
                    record: new.record.to_vec(),
                    expires_at: new.expires_at,
                },
            );
            records
                .indexes
                .entry(new.slot.index().clone())
                .or_default()
                .insert(new.member.to_owned(), new.deadline);
        }
        Ok(CreateIndexedOutcome::Created { evicted })
    }

    async fn list(&self, slot: &UserSlot) -> Result<Vec<IndexedRecord>, StoreError> {
        let now = self.clock.now();
        let mut records = self.records();
        let mut members = records.live_members(slot, now);
        // Oldest log-in first, as the Redis index orders by score; the newest
        // `MAX_MEMBERS_VISITED` only, as there.
        members.sort_by(|a, b| a.1.cmp(&b.1).then_with(|| a.0.cmp(&b.0)));
        members.drain(..members.len().saturating_sub(MAX_MEMBERS_VISITED));
        Ok(members
            .into_iter()
            .filter_map(|(member, _)| {
                let entry = records.entries.get(&slot.member_key(&member))?;
                Some(IndexedRecord {
                    expires_at: entry.expires_at,
                    record: entry.record.clone(),
                    member,
                })
            })
            .collect())
    }

    async fn end(&self, slot: &UserSlot, member: &str) -> Result<bool, StoreError> {
        let now = self.clock.now();
        Ok(self.records().end_member(slot, member, now))
    }

    async fn end_all(&self, slot: &UserSlot, keep: Option<&str>) -> Result<usize, StoreError> {
        let now = self.clock.now();
        let mut records = self.records();
        let members: Vec<String> = records
            .indexes
            .get(slot.index())
            .map(|index| index.keys().cloned().collect())
            .unwrap_or_default();
        let mut ended = 0;
        for member in members.iter().filter(|m| Some(m.as_str()) != keep) {
            ended += usize::from(records.end_member(slot, member, now));
        }
        Ok(ended)
    }
    async fn stored_members(&self, slot: &UserSlot) -> Result<Option<usize>, StoreError> {
        Ok(Some(
            self.records()
                .indexes
                .get(slot.index())
                .map_or(0, BTreeMap::len),
        ))
    }
}
