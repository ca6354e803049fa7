//! The file store's per-user index: one small file per user slot beside the sessions, named by
//! the slot's index key (`sess:idx:{…}`), holding one `member deadline-ms` line per session.
//! Like a session file, it is written to a temporary file and renamed into place, and its
//! mtime is a deadline: that of its last session, so the purge removes it once all are over.
//!
//! Every operation runs under the folder lock, which makes each one atomic within the process,
//! as a Lua script is on Redis.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::fs;
use std::io;
use std::path::PathBuf;
use std::time::SystemTime;

use async_trait::async_trait;

use super::{FileStore, State, TempFile, read_live, remove, state_at, unavailable};
use crate::clock::{from_unix_millis, unix_millis};
use crate::store::index::{
    CreateIndexedOutcome, IndexedRecord, NewIndexed, UserIndex, UserSlot, over_limit,
};
use crate::store::{CasToken, MAX_MEMBERS_VISITED, SessionLimit, StoreError, matches_token};

/// An index as read: member to absolute deadline in Unix milliseconds.
type Members = BTreeMap<String, u64>;

impl FileStore {
    fn index_path(&self, slot: &UserSlot) -> Result<PathBuf, StoreError> {
        self.record_path(slot.index())
    }

    fn member_path(&self, slot: &UserSlot, member: &str) -> Result<PathBuf, StoreError> {
        self.record_path(&slot.member_key(member))
    }

    /// The index's members; an absent, expired or foreign index is empty, and lines the
    /// store did not write are skipped.
    fn read_index(&self, slot: &UserSlot) -> Result<Members, StoreError> {
        let path = self.index_path(slot)?;
        let Some(bytes) = read_live(&path, self.clock.now())? else {
            return Ok(Members::new());
        };
        let text = String::from_utf8_lossy(&bytes);
        Ok(text
            .lines()
            .filter_map(|line| {
                let (member, deadline) = line.split_once(' ')?;
                Some((member.to_owned(), deadline.parse().ok()?))
            })
            .collect())
    }

    /// Replaces the index with `members` (removes it when empty), its mtime the latest
    /// deadline.
    fn write_index(&self, slot: &UserSlot, members: &Members) -> Result<(), StoreError> {
        let path = self.index_path(slot)?;
        let Some(&last) = members.values().max() else {
            return remove(&path);
        };
        let mut text = String::new();
        for (member, deadline) in members {
            let _ = writeln!(text, "{member} {deadline}");
        }
        let deadline = from_unix_millis(last);
        if deadline <= self.clock.now() {
            return remove(&path);
        }
        TempFile::write(&self.dir, text.as_bytes(), deadline)
            .and_then(|tmp| tmp.rename_to(&path))
            .map_err(unavailable("writing a session index file"))
    }

    /// The index without its dead members: past their deadline, or whose session is gone.
    fn live_members(&self, slot: &UserSlot) -> Result<Members, StoreError> {
        let now = self.clock.now();
        let now_ms = unix_millis(now);
        let mut members = self.read_index(slot)?;
        let before = members.len();
        let mut dead = Vec::new();
        for (member, &deadline) in &members {
            let path = self.member_path(slot, member);
            let live = deadline > now_ms
                && match path {
                    Ok(path) => state_at(&path, now)? == State::Live,
                    // A line naming no valid file is no session of ours.
                    Err(_) => false,
                };
            if !live {
                dead.push(member.clone());
            }
        }
        for member in &dead {
            members.remove(member);
        }
        if members.len() != before {
            self.write_index(slot, &members)?;
        }
        Ok(members)
    }

    /// Removes `member`'s session file; `true` if it was live.
    fn remove_member(&self, slot: &UserSlot, member: &str) -> Result<bool, StoreError> {
        let path = self.member_path(slot, member)?;
        let live = state_at(&path, self.clock.now())? == State::Live;
        if live {
            remove(&path)?;
        }
        Ok(live)
    }

    fn create_indexed_blocking(&self, new: &OwnedNew) -> Result<CreateIndexedOutcome, StoreError> {
        let (slot, member) = (&new.slot, new.member.as_str());
        let path = self.member_path(slot, member)?;
        // The slow part (write and sync) before the lock, as for a plain create.
        let tmp = self.prepare(&new.record, new.expires_at)?;
        let _order = self.lock()?;
        let mut members = self.live_members(slot)?;
        let counted: Vec<(String, SystemTime)> = members
            .iter()
            .filter(|(m, _)| Some(m.as_str()) != new.retire.as_ref().map(|r| r.0.as_str()))
            .map(|(m, d)| (m.clone(), from_unix_millis(*d)))
            .collect();
        let Some(evicted) = over_limit(&counted, new.limit) else {
            return Ok(CreateIndexedOutcome::Refused);
        };
        if let Some((old, token)) = &new.retire {
            let old_path = self.member_path(slot, old)?;
            match read_live(&old_path, self.clock.now())? {
                None => return Ok(CreateIndexedOutcome::Gone),
                Some(live) if !matches_token(&live, token) => {
                    return Ok(CreateIndexedOutcome::Stale(live));
                }
                Some(_) => {}
            }
        }
        match state_at(&path, self.clock.now())? {
            // Live, or something the store did not write: either way, not ours to replace.
            State::Live | State::Foreign => return Ok(CreateIndexedOutcome::Exists),
            State::Expired => remove(&path)?,
            State::Absent => {}
        }
        if let Some(tmp) = tmp {
            match fs::hard_link(&tmp.path, &path) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                    return Ok(CreateIndexedOutcome::Exists);
                }
                Err(e) => return Err(StoreError::unavailable("publishing a session file", e)),
            }
            members.insert(member.to_owned(), new.deadline_ms);
        }
        for old in new.retire.iter().map(|r| &r.0).chain(&evicted) {
            self.remove_member(slot, old)?;
            members.remove(old);
        }
        self.write_index(slot, &members)?;
        Ok(CreateIndexedOutcome::Created { evicted })
    }

    fn list_blocking(&self, slot: &UserSlot) -> Result<Vec<IndexedRecord>, StoreError> {
        let _order = self.lock()?;
        let members = self.live_members(slot)?;
        let mut by_deadline: Vec<(&String, &u64)> = members.iter().collect();
        by_deadline.sort_by(|a, b| a.1.cmp(b.1).then_with(|| a.0.cmp(b.0)));
        // The newest `MAX_MEMBERS_VISITED` only, as the Redis index lists them.
        by_deadline.drain(..by_deadline.len().saturating_sub(MAX_MEMBERS_VISITED));
        let now = self.clock.now();
        let mut found = Vec::with_capacity(by_deadline.len());
        for (member, _) in by_deadline {
            let path = self.member_path(slot, member)?;
            let Some(record) = read_live(&path, now)? else {
                continue;
            };
            let expires_at = fs::symlink_metadata(&path)
                .and_then(|meta| meta.modified())
                .map_err(unavailable("reading a session file's mtime"))?;
            found.push(IndexedRecord {
                member: member.clone(),
                expires_at,
                record,
            });
        }
        Ok(found)
    }

    fn end_blocking(&self, slot: &UserSlot, member: &str) -> Result<bool, StoreError> {
        let _order = self.lock()?;
        let mut members = self.read_index(slot)?;
        let ended = self.remove_member(slot, member)?;
        if members.remove(member).is_some() {
            self.write_index(slot, &members)?;
        }
        Ok(ended)
    }

    fn end_all_blocking(&self, slot: &UserSlot, keep: Option<&str>) -> Result<usize, StoreError> {
        let _order = self.lock()?;
        let mut members = self.read_index(slot)?;
        let mut ended = 0;
        let doomed: Vec<String> = members
            .keys()
            .filter(|m| Some(m.as_str()) != keep)
            .cloned()
            .collect();
        for member in &doomed {
            ended += usize::from(self.remove_member(slot, member)?);
            members.remove(member);
        }
        self.write_index(slot, &members)?;
        Ok(ended)
    }
}

/// A [`NewIndexed`], owned, so that it can move to the blocking pool.
struct OwnedNew {
    slot: UserSlot,
    member: String,
    record: Vec<u8>,
    expires_at: SystemTime,
    deadline_ms: u64,
    /// The member to retire, and its token.
    retire: Option<(String, CasToken)>,
    limit: SessionLimit,
}

#[async_trait]
impl UserIndex for FileStore {
    async fn create_indexed(
        &self,
        new: NewIndexed<'_>,
    ) -> Result<CreateIndexedOutcome, StoreError> {
        // Names are checked before any file work.
        self.index_path(new.slot)?;
        let owned = OwnedNew {
            slot: new.slot.clone(),
            member: new.member.to_owned(),
            record: new.record.to_vec(),
            expires_at: new.expires_at,
            deadline_ms: unix_millis(new.deadline),
            retire: new.retire.map(|r| (r.member.to_owned(), r.token.clone())),
            limit: new.limit,
        };
        self.run(move |store| store.create_indexed_blocking(&owned))
            .await
    }

    async fn list(&self, slot: &UserSlot) -> Result<Vec<IndexedRecord>, StoreError> {
        let slot = slot.clone();
        self.run(move |store| store.list_blocking(&slot)).await
    }

    async fn end(&self, slot: &UserSlot, member: &str) -> Result<bool, StoreError> {
        let (slot, member) = (slot.clone(), member.to_owned());
        self.run(move |store| store.end_blocking(&slot, &member))
            .await
    }

    async fn end_all(&self, slot: &UserSlot, keep: Option<&str>) -> Result<usize, StoreError> {
        let (slot, keep) = (slot.clone(), keep.map(str::to_owned));
        self.run(move |store| store.end_all_blocking(&slot, keep.as_deref()))
            .await
    }
    async fn stored_members(&self, slot: &UserSlot) -> Result<Option<usize>, StoreError> {
        let slot = slot.clone();
        self.run(move |store| {
            let _order = store.lock()?;
            store.read_index(&slot).map(|members| Some(members.len()))
        })
        .await
    }
}
