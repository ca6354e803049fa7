//! Sessions kept as files in one folder, one file per session: the store of the `dev` profile
//! (`SESSION_FILE_DIR`), for one machine: the site and the command line next to it may share
//! the folder (writers take an OS lock). Not for production, where several machines share
//! sessions: use Redis there.
//!
//! # Layout
//!
//! The folder (mode 0700) holds one file (mode 0600) per session, named by its [`StoreKey`]
//! (`sess:` + base64url SHA-256 of the id, never the id itself), holding the sealed record as
//! opaque bytes. Keys that could make a path (`/`, `\`, `..`, NUL, a leading `.`) are refused.
//!
//! # The file's mtime is the record's deadline
//!
//! No expiry index is kept: a file's modification time *is* the record's idle deadline, and a
//! file is live while its mtime is later than the clock's now. So a sliding load is one
//! metadata write (`futimens`) that never rewrites the record, an expired record is simply
//! never read, and [`SessionStore::purge_expired`] needs only a directory listing and `stat`s.
//!
//! # Atomic writes
//!
//! A write goes to a `.tmp-<random hex>` file in the same folder, created 0600, fully written,
//! synced, and given its deadline as mtime; only then is it published under the key's name, by
//! `link(2)` for [`SessionStore::create`] (which fails if the name exists) or `rename(2)` for
//! [`SessionStore::save`]. Both are atomic, so a reader or a crash sees the old record or the
//! new one, never half of one. A crash can leave a `.tmp-` file behind; no load ever reads one,
//! and the purge removes those older than ten minutes.
//!
//! # Concurrency
//!
//! `create`, `save`, `delete`, the per-user index (`file/index.rs`), the purge's removals and
//! a sliding `load` close to its record's deadline check and act under one lock per folder: a
//! mutex shared by every `FileStore` of this process opened on that folder, then an OS lock
//! (`flock(2)`, through std's `File::lock`) on the folder's `.lock` file (opened once per
//! folder, kept open), which other processes (the command line next to the running site) take
//! too. So a `save` compares the live record with its token and renames its new record into
//! place with nothing in between: no `delete` can slip in, from this process or another (which
//! would bring the session back), and no other `save` (which would be lost). The slow part of
//! a write (writing and syncing the temporary file) happens before the lock is taken. A plain
//! `load` takes no lock: it reads one file through one handle, and renames are atomic.
//!
//! # Sliding loads
//!
//! A sliding load (every request's) opens the record's file once, checks it through that
//! handle (a regular 0600 file, within the size bound, live by the store's clock), sets its
//! mtime through the same handle (`futimens(2)`, std's `File::set_times`), and reads it into a
//! buffer reserved from the checked length: `open`, `fstat`, `futimens`, two `read`s and
//! `close`, with no lock. That work (a few microseconds on one small file in a local folder)
//! runs on the calling task: a trip to tokio's blocking pool costs several
//! times more than the work itself, and nothing in it waits for another process (the lock,
//! which may wait for a writer's `fsync`, is taken on the blocking pool). It needs no lock
//! because a touch through an open handle only ever changes the inode the load opened,
//! never a name:
//!
//! - A `delete` (or `delete_if`, a logout elsewhere, the per-user index ending a session)
//!   unlinks the name. A slide before the unlink is undone with the file; one after it
//!   touches an inode no name leads to. Either way the record stays gone: a slide never
//!   brings a session back, whatever the interleaving, in this process or across processes.
//! - A `save` renames a new inode over the name. A slide of the old inode after the rename is
//!   lost, and the load returned the old record: the same outcome as a load just before the
//!   save, whose new file carries the deadline its writer chose, exactly as a locked slide
//!   before the rename would have been overwritten by it. A slide that opened the old file
//!   never touches the new one.
//! - A `create` or the purge replaces or removes a file only once it is *expired* by its own
//!   clock read, taken before it looks. A load slides without the lock only a record with at
//!   least `SLIDE_LOCK_MARGIN` (5 s) left by its clock read, taken just before its touch,
//!   so for a step to find that record expired before the touch lands, the load would have
//!   to stall for 5 s between reading the clock and touching the file. A record closer to its
//!   deadline than that slides under the folder's lock, as every slide did before, so a slide
//!   and an expiry are ordered there: the record is either slid (and stays) or already gone.
//!   (With an idle lifetime under 5 s, every slide is such a one: slower, as safe.)
//!
//! What a sliding load does not do: it never creates a file (no `O_CREAT`), never follows a
//! link, and never touches a file it found foreign or expired.
//!
//! # Symbolic links
//!
//! Record files are opened with `O_NOFOLLOW` (and checked through the open handle), so a
//! symbolic link in the folder is never read nor has its target's mtime changed: it is a
//! foreign file.
//!
//! # Foreign files
//!
//! The store only touches what it could have written: regular files whose name is a valid key
//! (or starts with `.tmp-`), that neither group nor others may access (the store creates
//! every file 0600) and that are no longer than 64 MiB (`MAX_RECORD_FILE_LEN`, checked on the
//! metadata before any read, and the read itself is bounded). Anything else in the folder is
//! never read as a session nor removed.

use std::collections::HashMap;
use std::fs::{self, DirBuilder, File, FileTimes, Metadata, OpenOptions, Permissions};
use std::io::{self, Read, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Arc, LazyLock, Mutex, MutexGuard, PoisonError, Weak};
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use tokio::task::JoinHandle;

use super::index::UserIndex;
use super::{
    CasOutcome, CasToken, SaveOutcome, SessionStore, StoreError, StoreKey, WriteOutcome,
    matches_token,
};
use crate::clock::{Clock, SystemClock};

mod index;

/// Longest key accepted, in bytes: file names are limited to 255 bytes on common file systems
/// (`NAME_MAX`); a `sess:` + SHA-256 key is 48.
const MAX_KEY_LEN: usize = 200;
/// Bytes, besides ASCII letters and digits, that a key may hold: base64url, the prefix's `:`,
/// and the `{}` of a Redis Cluster hash tag. None of them means anything in a path.
const KEY_PUNCTUATION: &[u8] = b"_:.{}-";
/// Names of write-in-progress files; the leading `.` keeps them apart from every valid key.
const TMP_PREFIX: &str = ".tmp-";
/// A temporary file untouched for this long belongs to a write that crashed.
const STALE_TMP_AGE: Duration = Duration::from_secs(10 * 60);
/// Permission bits of the folder and of every file in it: the owner's only.
const DIR_MODE: u32 = 0o700;
const FILE_MODE: u32 = 0o600;
/// The file whose OS lock orders writers of every process; the leading `.` keeps it apart from
/// every valid key, so it is never read as a session nor purged.
const LOCK_FILE: &str = ".lock";
/// Shortest sweep period [`FileStore::spawn_sweeper`] accepts (tokio's interval refuses zero,
/// and sweeping more often only costs disk work).
const MIN_SWEEP_PERIOD: Duration = Duration::from_secs(1);
/// Longest record file the store reads or writes, in bytes. A longer file under a key's name
/// is foreign: never read (so a hostile or sparse file cannot make a load allocate its length)
/// nor removed. 64 MiB is a thousand times the layer's default record bound
/// (2 × `SESSION_MAX_BYTES` + 4 KiB, with the 64 KiB default), and far above any per-user
/// index file; a write longer than it is refused, so the store never writes what it would not
/// read back.
const MAX_RECORD_FILE_LEN: u64 = 64 << 20;
/// A sliding load of a record with less than this left before its deadline takes the
/// folder's lock; one further from it slides with no lock (module docs, "Sliding loads").
/// Far longer than any pause between a load reading the clock and touching the file, and a
/// small part of any idle lifetime worth having (Flask's `PERMANENT_SESSION_LIFETIME`
/// default here is 5 minutes), so that nearly every slide takes no lock.
const SLIDE_LOCK_MARGIN: Duration = Duration::from_secs(5);
/// Most bytes a read reserves ahead from a file's length (which a hostile file chooses);
/// longer records grow the buffer as they are read. Far above a session record (the layer
/// bounds them at 132 KiB by default), so that one allocation and two `read`s do.
const READ_RESERVE_LIMIT: u64 = 1 << 20;

/// Sessions kept as files in one folder, for the `dev` profile: one machine.
///
/// - One file per session, named by its [`StoreKey`]; the folder is 0700, the files 0600.
///   Keys that could make a path (`/`, `\`, `..`, NUL, a leading `.`) are refused.
/// - A file's **mtime is the record's idle deadline**, so a sliding load only touches the
///   mtime, never rewrites the record, and an expired file is never read.
/// - Writes are atomic: a temporary `.tmp-` file, written and synced, is published by
///   `link(2)` (create) or `rename(2)` (save). A crash never leaves half a record.
/// - Checks and writes of one folder are serialized, within the process and between processes
///   (an OS lock on the folder's `.lock` file), so a save is a true compare-and-set: it never
///   undoes a concurrent logout nor overwrites a concurrent save. Reads take no lock, and
///   neither does a sliding load (it touches the mtime through the handle it read, which
///   cannot bring back a deleted file) unless its record is seconds from its deadline.
/// - Symbolic links are never followed (`O_NOFOLLOW`).
/// - The per-user index is one small file per user (`sess:idx:{…}`), whose mtime is its last
///   session's absolute deadline, so the purge removes it once every session in it is over.
/// - Files the store did not write (other names, or open to group or others) are never read
///   nor removed. Call [`SessionStore::purge_expired`], or [`FileStore::spawn_sweeper`], to
///   remove expired files.
///
/// Cloning is cheap and clones share the folder's lock.
///
/// ```
/// use portcullis::store::{FileStore, SessionStore, StoreKey, WriteOutcome};
/// use std::time::{Duration, SystemTime};
///
/// # tokio_test_block_on(async {
/// # let folder = tempfile::tempdir().unwrap();
/// let store = FileStore::open(folder.path().join(".flask_session"))?;
/// let key = StoreKey::from_string("sess:example".into());
/// let later = SystemTime::now() + Duration::from_secs(300);
/// assert_eq!(store.create(&key, b"sealed", later).await?, WriteOutcome::Written);
/// assert_eq!(store.load(&key, None).await?.as_deref(), Some(&b"sealed"[..]));
/// # Ok::<_, portcullis::store::StoreError>(())
/// # }).unwrap();
/// # fn tokio_test_block_on<F: std::future::Future>(f: F) -> F::Output {
/// #     tokio::runtime::Builder::new_multi_thread().build().unwrap().block_on(f)
/// # }
/// ```
#[derive(Clone, Debug)]
pub struct FileStore {
    dir: Arc<Path>,
    lock: Arc<FolderLock>,
    clock: Arc<dyn Clock>,
}

impl FileStore {
    /// Opens the session folder `dir` on the system clock, creating it (and its parents) if
    /// needed, and sets its mode to 0700, tightening an existing folder; a `.gitignore` of `*` keeps
    /// it out of version control. The folder should hold
    /// nothing but sessions. This does blocking file-system work: call it at start-up.
    ///
    /// # Errors
    /// [`StoreError::Unavailable`] when the folder cannot be created, is not a directory, or
    /// its mode cannot be set (for example because another user owns it).
    pub fn open(dir: impl Into<PathBuf>) -> Result<Self, StoreError> {
        let dir = dir.into();
        let failed = |what: &str, source: io::Error| {
            StoreError::unavailable(format!("{what} session folder {}", dir.display()), source)
        };
        DirBuilder::new()
            .recursive(true)
            .mode(DIR_MODE)
            .create(&dir)
            .map_err(|e| failed("creating", e))?;
        fs::set_permissions(&dir, Permissions::from_mode(DIR_MODE))
            .map_err(|e| failed("setting mode 0700 on", e))?;
        // A hidden name, which no record can have (`check_key`).
        crate::folder::ignore_in_git(&dir).map_err(|e| failed("writing .gitignore in", e))?;
        // Absolute, so that a later change of working directory cannot move the store, and
        // canonical, so that every store on this folder finds the same lock.
        let dir = fs::canonicalize(&dir).map_err(|e| failed("resolving", e))?;
        Ok(Self {
            lock: folder_lock(&dir).map_err(|e| failed("opening the lock file of", e))?,
            dir: dir.into(),
            clock: Arc::new(SystemClock),
        })
    }

    /// The same store, reading the time from `clock` (tests use a
    /// [`ManualClock`](crate::clock::ManualClock)).
    #[must_use]
    pub fn with_clock(self, clock: Arc<dyn Clock>) -> Self {
        Self { clock, ..self }
    }

    /// The session folder, absolute.
    #[must_use]
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Starts a task that calls [`SessionStore::purge_expired`] now and then every `every`
    /// (at least one second), logging what it removed and any error; an error does not stop
    /// it. Abort the returned handle to stop it (dropping the handle does not).
    ///
    /// # Panics
    /// When called outside a Tokio runtime, or on one without timers (the task itself never
    /// panics).
    pub fn spawn_sweeper(&self, every: Duration) -> JoinHandle<()> {
        let store = self.clone();
        let mut ticks = tokio::time::interval(every.max(MIN_SWEEP_PERIOD));
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tokio::spawn(async move {
            loop {
                ticks.tick().await;
                match store.purge_expired().await {
                    Ok(0) => tracing::trace!("no expired session files to purge"),
                    Ok(removed) => tracing::debug!(removed, "purged expired session files"),
                    Err(error) => tracing::warn!(?error, "purging expired session files failed"),
                }
            }
        })
    }

    /// The path of `key`'s file, once the key is known to be a plain file name.
    fn record_path(&self, key: &StoreKey) -> Result<PathBuf, StoreError> {
        check_key(key.as_str()).map_err(|reason| StoreError::InvalidKey {
            key: key.as_str().to_owned(),
            reason,
        })?;
        Ok(self.dir.join(key.as_str()))
    }

    /// Runs blocking file-system work off the async executor.
    async fn run<T: Send + 'static>(
        &self,
        work: impl FnOnce(&Self) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        let store = self.clone();
        tokio::task::spawn_blocking(move || work(&store))
            .await
            .map_err(|e| StoreError::unavailable("session file task did not finish", e))?
    }

    /// Takes the folder's lock: this process's mutex, then the OS lock other processes take.
    fn lock(&self) -> Result<Order<'_>, StoreError> {
        // The lock guards no data, only the order of file-system steps, so a panic while it
        // was held leaves nothing inconsistent behind.
        let threads = self
            .lock
            .threads
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        self.lock
            .file
            .lock()
            .map_err(unavailable("locking the session folder"))?;
        Ok(Order {
            file: &self.lock.file,
            _threads: threads,
        })
    }

    /// A load, sliding the record's deadline to `slide_to` when given: through the handle it
    /// read, without the folder's lock, unless the record is within [`SLIDE_LOCK_MARGIN`] of
    /// its deadline (see the module docs, "Sliding loads", for why that is safe).
    #[cfg(test)]
    fn load_blocking(
        &self,
        path: &Path,
        slide_to: Option<SystemTime>,
    ) -> Result<Option<Vec<u8>>, StoreError> {
        match self.try_load(path, slide_to, false)? {
            Loaded::Done(record) => Ok(record),
            Loaded::NearDeadline => self.load_locked(path, slide_to),
        }
    }

    /// A load under the folder's lock, for a record near its deadline.
    fn load_locked(
        &self,
        path: &Path,
        slide_to: Option<SystemTime>,
    ) -> Result<Option<Vec<u8>>, StoreError> {
        let _order = self.lock()?;
        let Loaded::Done(record) = self.try_load(path, slide_to, true)? else {
            unreachable!("a load under the folder's lock never defers to the lock");
        };
        Ok(record)
    }

    /// One attempt at a load: open, check, slide and read through one handle, so that it sees
    /// one file throughout; opening without `create` means a slide can never bring back a
    /// deleted record. Unless `locked`, a record within [`SLIDE_LOCK_MARGIN`] of its deadline
    /// is left untouched, for the caller to retry under the lock.
    fn try_load(
        &self,
        path: &Path,
        slide_to: Option<SystemTime>,
        locked: bool,
    ) -> Result<Loaded, StoreError> {
        let Some(mut file) = open_record(path)? else {
            return Ok(Loaded::Done(None));
        };
        let meta = file
            .metadata()
            .map_err(unavailable("reading a session file's metadata"))?;
        let now = self.clock.now();
        if state_of(&meta, now).map_err(unavailable("reading an mtime"))? != State::Live {
            return Ok(Loaded::Done(None));
        }
        if let Some(deadline) = slide_to {
            if !locked && !clear_of_deadline(&meta, now)? {
                return Ok(Loaded::NearDeadline);
            }
            #[cfg(test)]
            hooks::run_before_slide(path);
            file.set_times(FileTimes::new().set_modified(deadline))
                .map_err(unavailable("sliding a session file's mtime"))?;
        }
        read_bounded(&mut file, meta.len()).map(Loaded::Done)
    }

    fn create_blocking(
        &self,
        path: &Path,
        record: &[u8],
        expires_at: SystemTime,
    ) -> Result<WriteOutcome, StoreError> {
        let tmp = self.prepare(record, expires_at)?;
        let _order = self.lock()?;
        match state_at(path, self.clock.now())? {
            State::Live | State::Foreign => return Ok(WriteOutcome::NotWritten),
            State::Expired => remove(path)?,
            State::Absent => {}
        }
        let Some(tmp) = tmp else {
            // Dead on arrival: an expired record is no record, so storing nothing is the same.
            return Ok(WriteOutcome::Written);
        };
        match fs::hard_link(&tmp.path, path) {
            Ok(()) => Ok(WriteOutcome::Written),
            // Another process published this key first.
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(WriteOutcome::NotWritten),
            Err(e) => Err(StoreError::unavailable("publishing a session file", e)),
        }
    }

    fn save_blocking(
        &self,
        path: &Path,
        expected: &CasToken,
        record: &[u8],
        expires_at: SystemTime,
    ) -> Result<SaveOutcome, StoreError> {
        let tmp = self.prepare(record, expires_at)?;
        #[cfg(test)]
        hooks::run_before_save_lock(path);
        let _order = self.lock()?;
        let Some(current) = read_live(path, self.clock.now())? else {
            return Ok(SaveOutcome::Gone);
        };
        if !matches_token(&current, expected) {
            return Ok(SaveOutcome::Conflict(current));
        }
        #[cfg(test)]
        hooks::run_after_save_check(path);
        match tmp {
            Some(tmp) => tmp
                .rename_to(path)
                .map_err(unavailable("replacing a session file"))?,
            // Replaced by an already expired record: the session ends now.
            None => remove(path)?,
        }
        Ok(SaveOutcome::Saved)
    }

    /// Removes the record; `true` if it was live.
    fn delete_blocking(&self, path: &Path) -> Result<bool, StoreError> {
        let _order = self.lock()?;
        let live = state_at(path, self.clock.now())? == State::Live;
        remove(path)?;
        Ok(live)
    }

    /// Writes the temporary file of a record, or nothing when its deadline has already passed
    /// (so that no temporary file ever carries an old mtime the purge could mistake for a
    /// crashed write's).
    fn prepare(
        &self,
        record: &[u8],
        expires_at: SystemTime,
    ) -> Result<Option<TempFile>, StoreError> {
        if u64::try_from(record.len()).map_or(true, |len| len > MAX_RECORD_FILE_LEN) {
            return Err(StoreError::unavailable(
                "writing a session file",
                "the record is longer than the file store's bound (64 MiB)",
            ));
        }
        if expires_at <= self.clock.now() {
            return Ok(None);
        }
        TempFile::write(&self.dir, record, expires_at)
            .map(Some)
            .map_err(unavailable("writing a temporary session file"))
    }

    fn purge_blocking(&self) -> Result<usize, StoreError> {
        let now = self.clock.now();
        let entries = fs::read_dir(&self.dir).map_err(unavailable("listing the session folder"))?;
        let mut removed = 0;
        for entry in entries {
            let entry = entry.map_err(unavailable("listing the session folder"))?;
            let name = entry.file_name();
            let Some(name) = name.to_str() else { continue };
            let path = entry.path();
            if name.starts_with(TMP_PREFIX) {
                remove_if_stale_tmp(&path, now)?;
            } else if check_key(name).is_ok() {
                // Re-checked under the lock: a create may have replaced the expired file
                // since the listing.
                let _order = self.lock()?;
                if state_at(&path, now)? == State::Expired {
                    remove(&path)?;
                    removed += 1;
                }
            }
        }
        Ok(removed)
    }

    fn ping_blocking(&self) -> Result<(), StoreError> {
        let meta = fs::metadata(&self.dir).map_err(unavailable("checking the session folder"))?;
        if !meta.is_dir() {
            return Err(StoreError::unavailable(
                "checking the session folder",
                format!("{} is not a directory", self.dir.display()),
            ));
        }
        // Writing is the only reliable test of writability (read-only mounts, full disks...).
        TempFile::create(&self.dir)
            .map(drop)
            .map_err(unavailable("writing in the session folder"))
    }
}

#[async_trait]
impl SessionStore for FileStore {
    async fn create(
        &self,
        key: &StoreKey,
        record: &[u8],
        expires_at: SystemTime,
    ) -> Result<WriteOutcome, StoreError> {
        let path = self.record_path(key)?;
        let record = record.to_vec();
        self.run(move |store| store.create_blocking(&path, &record, expires_at))
            .await
    }

    /// Reads the record; with `slide_to`, sets the file's mtime to it (the record is not
    /// rewritten). A file that vanished before it was opened is `Ok(None)`. Runs on the
    /// calling task, but for a slide seconds from the record's deadline, which takes the
    /// folder's lock on the blocking pool.
    async fn load(
        &self,
        key: &StoreKey,
        slide_to: Option<SystemTime>,
    ) -> Result<Option<Vec<u8>>, StoreError> {
        let path = self.record_path(key)?;
        // Four system calls on one small local file, with no lock to wait for: shorter than a
        // trip to the blocking pool (module docs, "Sliding loads"). Only the locked slide of a
        // record near its deadline, which may wait for another process, goes there.
        match self.try_load(&path, slide_to, false)? {
            Loaded::Done(record) => Ok(record),
            Loaded::NearDeadline => {
                self.run(move |store| store.load_locked(&path, slide_to))
                    .await
            }
        }
    }

    async fn save(
        &self,
        key: &StoreKey,
        expected: &CasToken,
        record: &[u8],
        expires_at: SystemTime,
    ) -> Result<SaveOutcome, StoreError> {
        let path = self.record_path(key)?;
        let (expected, record) = (expected.clone(), record.to_vec());
        self.run(move |store| store.save_blocking(&path, &expected, &record, expires_at))
            .await
    }

    async fn delete(&self, key: &StoreKey) -> Result<bool, StoreError> {
        let path = self.record_path(key)?;
        self.run(move |store| store.delete_blocking(&path)).await
    }

    async fn delete_if(
        &self,
        key: &StoreKey,
        expected: &CasToken,
    ) -> Result<CasOutcome, StoreError> {
        let path = self.record_path(key)?;
        let expected = expected.clone();
        self.run(move |store| {
            let _order = store.lock()?;
            let Some(live) = read_live(&path, store.clock.now())? else {
                return Ok(CasOutcome::Gone);
            };
            if !matches_token(&live, &expected) {
                return Ok(CasOutcome::Conflict(live));
            }
            remove(&path)?;
            Ok(CasOutcome::Deleted)
        })
        .await
    }

    /// Removes expired session files and temporary files older than ten minutes (left by
    /// crashed writes); returns how many session records it removed. Files the store did not
    /// write are left alone.
    async fn purge_expired(&self) -> Result<usize, StoreError> {
        self.run(Self::purge_blocking).await
    }

    /// Checks that the folder is still a directory the store can write in.
    async fn ping(&self) -> Result<(), StoreError> {
        self.run(Self::ping_blocking).await
    }

    fn user_index(&self) -> Option<&dyn UserIndex> {
        Some(self)
    }

    fn kind(&self) -> &'static str {
        "file"
    }
}

/// How one attempt at a load ended.
enum Loaded {
    /// The record (slid if asked), or `None` for no live record.
    Done(Option<Vec<u8>>),
    /// Live but within [`SLIDE_LOCK_MARGIN`] of its deadline: to slide under the lock.
    NearDeadline,
}

/// Whether a live file's deadline is at least [`SLIDE_LOCK_MARGIN`] after `now`, so that no
/// other step (whose clock reads come before its checks) can find it expired before a slide
/// made now lands.
fn clear_of_deadline(meta: &Metadata, now: SystemTime) -> Result<bool, StoreError> {
    let deadline = meta.modified().map_err(unavailable("reading an mtime"))?;
    Ok(deadline
        .duration_since(now)
        .is_ok_and(|left| left >= SLIDE_LOCK_MARGIN))
}

/// What a path holds, as far as the store is concerned.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    Absent,
    Live,
    Expired,
    /// Something the store did not write: not a regular file, or open to group or others.
    Foreign,
}

fn state_of(meta: &Metadata, now: SystemTime) -> io::Result<State> {
    // A file longer than any record the store writes was put there by someone else (a sparse
    // 1 TiB file costs its planter nothing), so it is judged on its length before any read.
    if !meta.is_file() || meta.permissions().mode() & 0o077 != 0 || meta.len() > MAX_RECORD_FILE_LEN
    {
        return Ok(State::Foreign);
    }
    Ok(if meta.modified()? > now {
        State::Live
    } else {
        State::Expired
    })
}

/// The state of `path` itself (a symbolic link is foreign, never followed).
fn state_at(path: &Path, now: SystemTime) -> Result<State, StoreError> {
    let state = match fs::symlink_metadata(path) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(State::Absent),
        meta => meta.and_then(|meta| state_of(&meta, now)),
    };
    state.map_err(unavailable("checking a session file"))
}

/// The record at `path` if it is live (a file the store wrote, before its deadline); `None` for
/// anything else. Checked and read through one handle; call under the folder lock, so that
/// nothing replaces the file meanwhile.
fn read_live(path: &Path, now: SystemTime) -> Result<Option<Vec<u8>>, StoreError> {
    let Some(mut file) = open_record(path)? else {
        return Ok(None);
    };
    let meta = file
        .metadata()
        .map_err(unavailable("reading a session file's metadata"))?;
    if state_of(&meta, now).map_err(unavailable("reading an mtime"))? != State::Live {
        return Ok(None);
    }
    read_bounded(&mut file, meta.len())
}

/// Reads a record file whose metadata passed [`state_of`], never more than
/// [`MAX_RECORD_FILE_LEN`] bytes: the length was checked on the metadata, but a file can grow
/// between that check and the read, so the read itself is bounded too, and nothing is
/// allocated ahead from the (hostile) length `len` beyond [`READ_RESERVE_LIMIT`]. `None` when
/// it outgrew the bound: a foreign file.
fn read_bounded(file: &mut File, len: u64) -> Result<Option<Vec<u8>>, StoreError> {
    // One byte more than the length, so that the read that finds the end needs no new room.
    let reserve = len.min(READ_RESERVE_LIMIT).saturating_add(1);
    let mut record = Vec::with_capacity(usize::try_from(reserve).unwrap_or(0));
    file.take(MAX_RECORD_FILE_LEN + 1)
        .read_to_end(&mut record)
        .map_err(unavailable("reading a session file"))?;
    let len = u64::try_from(record.len()).unwrap_or(u64::MAX);
    Ok((len <= MAX_RECORD_FILE_LEN).then_some(record))
}

/// Opens `path` to read (and touch its mtime through the handle), never through a symbolic
/// link: `None` when it is absent or a link. `O_NONBLOCK` keeps a FIFO planted under a key's
/// name from blocking the open (it is then foreign: not a regular file); on regular files it
/// changes nothing.
fn open_record(path: &Path) -> Result<Option<File>, StoreError> {
    let opened = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(path);
    match opened {
        Ok(file) => Ok(Some(file)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        // `O_NOFOLLOW` on a symbolic link.
        Err(e) if e.raw_os_error() == Some(libc::ELOOP) => Ok(None),
        Err(e) => Err(StoreError::unavailable("opening a session file", e)),
    }
}

/// Removes a file; one that is already gone is fine.
fn remove(path: &Path) -> Result<(), StoreError> {
    match fs::remove_file(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => {
            Err(StoreError::unavailable("removing a session file", e))
        }
        _ => Ok(()),
    }
}

fn remove_if_stale_tmp(path: &Path, now: SystemTime) -> Result<(), StoreError> {
    let Some(cutoff) = now.checked_sub(STALE_TMP_AGE) else {
        return Ok(());
    };
    let meta = match fs::symlink_metadata(path) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        meta => meta.map_err(unavailable("checking a temporary session file"))?,
    };
    // A write in progress has an mtime of about now (being written) or of its deadline (about
    // to be published), both later than the cutoff.
    match state_of(&meta, cutoff).map_err(unavailable("checking a temporary session file"))? {
        State::Expired => remove(path),
        _ => Ok(()),
    }
}

/// Refuses keys that are not a plain, visible file name.
fn check_key(key: &str) -> Result<(), &'static str> {
    if key.is_empty() {
        Err("it is empty")
    } else if key.len() > MAX_KEY_LEN {
        Err("it is longer than 200 bytes")
    } else if key.starts_with('.') {
        Err("it starts with '.', which names hidden and temporary files")
    } else if !key
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || KEY_PUNCTUATION.contains(&b))
    {
        Err("it holds a character outside [A-Za-z0-9_:.{}-]")
    } else {
        Ok(())
    }
}

fn unavailable(context: &'static str) -> impl FnOnce(io::Error) -> StoreError {
    move |source| StoreError::unavailable(context, source)
}

/// A `.tmp-` file of the session folder, removed when dropped unless renamed away.
struct TempFile {
    path: PathBuf,
}

impl TempFile {
    /// An empty temporary file, 0600 from its creation on.
    fn create(dir: &Path) -> io::Result<(Self, File)> {
        let mut random = [0_u8; 16];
        getrandom::fill(&mut random)
            .map_err(|e| io::Error::other(format!("the OS random generator failed: {e}")))?;
        let hex: String = random.iter().map(|b| format!("{b:02x}")).collect();
        let path = dir.join(format!("{TMP_PREFIX}{hex}"));
        let file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(FILE_MODE)
            .open(&path)?;
        Ok((Self { path }, file))
    }

    /// A temporary file holding `record`, on disk, with `deadline` as its mtime.
    fn write(dir: &Path, record: &[u8], deadline: SystemTime) -> io::Result<Self> {
        let (tmp, mut file) = Self::create(dir)?;
        file.write_all(record)?;
        file.set_times(FileTimes::new().set_modified(deadline))?;
        file.sync_all()?;
        Ok(tmp)
    }

    fn rename_to(mut self, to: &Path) -> io::Result<()> {
        fs::rename(&self.path, to)?;
        // Renamed away: nothing is left for `drop` to clean up.
        self.path = PathBuf::new();
        Ok(())
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        if self.path.as_os_str().is_empty() {
            return;
        }
        if let Err(error) = fs::remove_file(&self.path) {
            // Harmless: the purge removes it once it is ten minutes old.
            tracing::warn!(%error, path = %self.path.display(), "could not remove a temporary session file");
        }
    }
}

/// The lock of one folder: a mutex for this process's threads (an OS lock on one open file is
/// shared by every thread of the process), then `flock(2)` on the folder's `.lock` file for
/// other processes.
#[derive(Debug)]
struct FolderLock {
    threads: Mutex<()>,
    file: File,
}

/// The folder's lock, held; released (the OS lock first) when dropped.
struct Order<'a> {
    file: &'a File,
    _threads: MutexGuard<'a, ()>,
}

impl Drop for Order<'_> {
    fn drop(&mut self) {
        if let Err(error) = self.file.unlock() {
            // Closing the file would release it; the file stays open with the store, so say so.
            tracing::error!(%error, "could not unlock the session folder");
        }
    }
}

/// The lock of the folder `dir` (canonical), shared by every store of this process on it.
fn folder_lock(dir: &Path) -> io::Result<Arc<FolderLock>> {
    static LOCKS: LazyLock<Mutex<HashMap<PathBuf, Weak<FolderLock>>>> =
        LazyLock::new(Mutex::default);
    // Each critical section below is whole map operations: nothing to repair after a panic.
    let mut locks = LOCKS.lock().unwrap_or_else(PoisonError::into_inner);
    if let Some(lock) = locks.get(dir).and_then(Weak::upgrade) {
        return Ok(lock);
    }
    locks.retain(|_, lock| lock.strong_count() > 0);
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(FILE_MODE)
        .custom_flags(libc::O_NOFOLLOW)
        .open(dir.join(LOCK_FILE))?;
    let lock = Arc::new(FolderLock {
        threads: Mutex::new(()),
        file,
    });
    locks.insert(dir.to_owned(), Arc::downgrade(&lock));
    Ok(lock)
}

/// Pauses for tests that force an interleaving inside a step.
#[cfg(test)]
mod hooks {
    use std::collections::HashMap;
    use std::path::{Path, PathBuf};
    use std::sync::{Mutex, PoisonError};

    type Hook = Box<dyn FnOnce() + Send>;
    type Hooks = Mutex<Option<HashMap<PathBuf, Hook>>>;

    static BEFORE_SAVE_LOCK: Hooks = Mutex::new(None);
    static BEFORE_SLIDE: Hooks = Mutex::new(None);
    static AFTER_SAVE_CHECK: Hooks = Mutex::new(None);

    fn set(hooks: &Hooks, path: &Path, hook: impl FnOnce() + Send + 'static) {
        hooks
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get_or_insert_with(HashMap::new)
            .insert(path.to_owned(), Box::new(hook));
    }

    fn run(hooks: &Hooks, path: &Path) {
        let hook = hooks
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .as_mut()
            .and_then(|hooks| hooks.remove(path));
        if let Some(hook) = hook {
            hook();
        }
    }

    /// Runs `hook` once, in the next save of `path`, after its temporary file is written and
    /// before it takes the folder's lock (so before it looks at the record).
    pub(super) fn before_save_lock(path: &Path, hook: impl FnOnce() + Send + 'static) {
        set(&BEFORE_SAVE_LOCK, path, hook);
    }

    pub(super) fn run_before_save_lock(path: &Path) {
        run(&BEFORE_SAVE_LOCK, path);
    }

    /// Runs `hook` once, in the next sliding load of `path`, after it found the record live
    /// and before it touches the mtime.
    pub(super) fn before_slide(path: &Path, hook: impl FnOnce() + Send + 'static) {
        set(&BEFORE_SLIDE, path, hook);
    }

    pub(super) fn run_before_slide(path: &Path) {
        run(&BEFORE_SLIDE, path);
    }

    /// Runs `hook` once, in the next save of `path`, after its check and before its rename.
    pub(super) fn after_save_check(path: &Path, hook: impl FnOnce() + Send + 'static) {
        set(&AFTER_SAVE_CHECK, path, hook);
    }

    pub(super) fn run_after_save_check(path: &Path) {
        run(&AFTER_SAVE_CHECK, path);
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    /// The race the lock exists for, made deterministic: a save has its temporary file ready
    /// and is held (by a hook) just before it takes the lock; a delete then takes the lock,
    /// lets the save go on to wait for it, removes the record and lets go. The save must then
    /// find the record gone; one that checked the record before taking the lock would rename
    /// it back.
    #[test]
    fn a_save_waiting_on_a_delete_does_not_resurrect() {
        const BOUND: Duration = Duration::from_secs(15);
        let folder = tempfile::tempdir().unwrap();
        let store = FileStore::open(folder.path()).unwrap();
        let path = store.dir().join("sess:race");
        let later = SystemTime::now() + Duration::from_secs(60);
        let tmp = TempFile::write(store.dir(), b"live", later).unwrap();
        tmp.rename_to(&path).unwrap();

        let (ready, ready_rx) = std::sync::mpsc::channel();
        let (go, go_rx) = std::sync::mpsc::channel::<()>();
        hooks::before_save_lock(&path, move || {
            ready.send(()).unwrap();
            go_rx.recv_timeout(BOUND).unwrap();
        });
        let (outcome, outcome_rx) = std::sync::mpsc::channel();
        std::thread::spawn({
            let (store, path) = (store.clone(), path.clone());
            move || {
                let saved =
                    store.save_blocking(&path, &CasToken::new(b"live"), b"resurrected", later);
                outcome.send(saved).unwrap();
            }
        });
        ready_rx
            .recv_timeout(BOUND)
            .expect("the save never reached the lock");

        let delete = store.lock().unwrap();
        go.send(()).unwrap();
        fs::remove_file(&path).unwrap();
        drop(delete);

        let outcome = outcome_rx
            .recv_timeout(BOUND)
            .expect("the save never finished")
            .unwrap();
        assert_eq!(outcome, SaveOutcome::Gone);
        assert!(!path.exists(), "the deleted session was brought back");
    }

    const BOUND: Duration = Duration::from_secs(15);

    /// What a load answered.
    type LoadAnswer = Result<Option<Vec<u8>>, StoreError>;

    /// A store with one live record, `sess:race` holding `live`, due `deadline`.
    fn store_with_record(deadline: SystemTime) -> (FileStore, PathBuf, tempfile::TempDir) {
        let folder = tempfile::tempdir().unwrap();
        let store = FileStore::open(folder.path()).unwrap();
        let path = store.dir().join("sess:race");
        TempFile::write(store.dir(), b"live", deadline)
            .unwrap()
            .rename_to(&path)
            .unwrap();
        (store, path, folder)
    }

    /// Starts a sliding load of `path` on its own thread, held (by a hook) after it found the
    /// record live and before it touches the mtime; returns once it is held, with the channel
    /// that lets it go and the one its outcome arrives on.
    fn held_slide(
        store: &FileStore,
        path: &Path,
        slide_to: SystemTime,
    ) -> (
        std::sync::mpsc::Sender<()>,
        std::sync::mpsc::Receiver<LoadAnswer>,
    ) {
        let (ready, ready_rx) = std::sync::mpsc::channel();
        let (go, go_rx) = std::sync::mpsc::channel::<()>();
        hooks::before_slide(path, move || {
            ready.send(()).unwrap();
            go_rx.recv_timeout(BOUND).unwrap();
        });
        let (outcome, outcome_rx) = std::sync::mpsc::channel();
        std::thread::spawn({
            let (store, path) = (store.clone(), path.to_owned());
            move || {
                outcome
                    .send(store.load_blocking(&path, Some(slide_to)))
                    .unwrap()
            }
        });
        ready_rx
            .recv_timeout(BOUND)
            .expect("the load never reached its slide");
        (go, outcome_rx)
    }

    /// A slide that found the record live, held just before its touch while a delete runs to
    /// its end: the delete does not wait for it (no lock is held), and the touch that follows
    /// lands on the unlinked file, so the session stays gone.
    #[test]
    fn a_slide_landing_after_a_delete_does_not_resurrect() {
        let later = SystemTime::now() + Duration::from_secs(60);
        let (store, path, _folder) = store_with_record(later);
        let (go, loaded) = held_slide(&store, &path, later + Duration::from_secs(300));

        let (deleted, deleted_rx) = std::sync::mpsc::channel();
        std::thread::spawn({
            let path = path.clone();
            move || deleted.send(store.delete_blocking(&path)).unwrap()
        });
        let deleted = deleted_rx.recv_timeout(BOUND);
        go.send(()).unwrap();
        assert!(
            deleted.expect("the delete waited for the slide").unwrap(),
            "the delete found no live record"
        );

        let loaded = loaded.recv_timeout(BOUND).unwrap().unwrap();
        assert_eq!(
            loaded.as_deref(),
            Some(&b"live"[..]),
            "read before the delete"
        );
        assert!(!path.exists(), "the deleted session was brought back");
        assert_eq!(read_live(&path, SystemTime::now()).unwrap(), None);
    }

    /// A slide held before its touch while a save replaces the record: the touch lands on the
    /// old file, so the new record keeps the content and the deadline its writer gave it.
    #[test]
    fn a_slide_landing_after_a_save_leaves_the_new_record_as_written() {
        let later = SystemTime::now() + Duration::from_secs(60);
        let (store, path, _folder) = store_with_record(later);
        let slid = later + Duration::from_secs(300);
        let (go, loaded) = held_slide(&store, &path, slid);

        let saved_deadline = later + Duration::from_secs(120);
        let saved = store.save_blocking(&path, &CasToken::new(b"live"), b"saved", saved_deadline);
        go.send(()).unwrap();
        assert_eq!(saved.unwrap(), SaveOutcome::Saved);

        let loaded = loaded.recv_timeout(BOUND).unwrap().unwrap();
        assert_eq!(
            loaded.as_deref(),
            Some(&b"live"[..]),
            "read before the save"
        );
        assert_eq!(fs::read(&path).unwrap(), b"saved");
        assert_eq!(
            fs::metadata(&path).unwrap().modified().unwrap(),
            saved_deadline,
            "the slide of the old record moved the new one's deadline"
        );
    }

    /// Whether this process's half of the folder lock is held while a sliding load at `now`
    /// of a record due `deadline` touches it.
    fn slide_holds_the_lock(now: SystemTime, deadline: SystemTime) -> bool {
        let (store, path, _folder) = store_with_record(deadline);
        // A stopped clock, so that a slow machine cannot expire the record meanwhile.
        let store = store.with_clock(Arc::new(crate::clock::ManualClock::at(now)));
        let (held, held_rx) = std::sync::mpsc::channel();
        let lock = Arc::clone(&store.lock);
        hooks::before_slide(&path, move || {
            held.send(lock.threads.try_lock().is_err()).unwrap();
        });
        let slid = deadline + Duration::from_secs(300);
        let loaded = store.load_blocking(&path, Some(slid)).unwrap();
        assert_eq!(loaded.as_deref(), Some(&b"live"[..]));
        assert_eq!(fs::metadata(&path).unwrap().modified().unwrap(), slid);
        held_rx.recv_timeout(BOUND).expect("the load never slid")
    }

    /// A record seconds from its deadline slides under the folder lock, ordered with a purge
    /// or a create that would find it expired; one further away needs no lock.
    #[test]
    fn only_a_slide_near_the_deadline_takes_the_folder_lock() {
        let now = SystemTime::now();
        assert!(
            slide_holds_the_lock(now, now + SLIDE_LOCK_MARGIN / 2),
            "a slide near the deadline took no lock"
        );
        assert!(
            !slide_holds_the_lock(now, now + SLIDE_LOCK_MARGIN + Duration::from_secs(60)),
            "a slide far from the deadline took the lock"
        );
    }

    /// A sparse 1 TiB file, 0600 and live, planted under a key's name: judged on its length
    /// before any read, so no load allocates its length (which aborted the process) and every
    /// path answers as for a foreign file. Sparse, so it costs no disk.
    #[test]
    fn a_huge_record_file_is_foreign_and_never_read() {
        let folder = tempfile::tempdir().unwrap();
        let store = FileStore::open(folder.path().join("sessions")).unwrap();
        let later = SystemTime::now() + Duration::from_secs(60);
        let path = store.dir().join("sess:huge");
        let file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(FILE_MODE)
            .open(&path)
            .unwrap();
        file.set_len(1 << 40).unwrap();
        file.set_times(FileTimes::new().set_modified(later))
            .unwrap();
        drop(file);

        assert_eq!(store.load_blocking(&path, None).unwrap(), None);
        let slide = later + Duration::from_secs(3600);
        assert_eq!(store.load_blocking(&path, Some(slide)).unwrap(), None);
        assert_eq!(read_live(&path, SystemTime::now()).unwrap(), None);
        assert_eq!(
            fs::metadata(&path).unwrap().modified().unwrap(),
            later,
            "the foreign file was touched"
        );
        assert_eq!(
            store
                .create_blocking(&path, b"sealed", later + Duration::from_secs(60))
                .unwrap(),
            WriteOutcome::NotWritten,
            "a foreign file was replaced"
        );
    }

    /// A live-looking file outside the folder, linked in under a key's name.
    #[test]
    fn a_symlinked_record_is_never_read_nor_touched() {
        let folder = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        let store = FileStore::open(folder.path().join("sessions")).unwrap();
        let later = SystemTime::now() + Duration::from_secs(60);
        let target = outside.path().join("not-a-session");
        TempFile::write(outside.path(), b"someone else's file", later)
            .unwrap()
            .rename_to(&target)
            .unwrap();
        let before = fs::metadata(&target).unwrap().modified().unwrap();
        let path = store.dir().join("sess:link");
        std::os::unix::fs::symlink(&target, &path).unwrap();

        let slide = later + Duration::from_secs(3600);
        assert_eq!(store.load_blocking(&path, Some(slide)).unwrap(), None);
        assert_eq!(store.load_blocking(&path, None).unwrap(), None);
        assert_eq!(read_live(&path, SystemTime::now()).unwrap(), None);
        assert_eq!(
            fs::metadata(&target).unwrap().modified().unwrap(),
            before,
            "the link's target was touched"
        );
    }

    /// Set in the child process of [`a_delete_by_another_process_is_never_undone_by_a_save`]:
    /// the folder it deletes `sess:race` from.
    const CHILD_DELETES_IN: &str = "PORTCULLIS_TEST_CHILD_DELETES_IN";

    /// Whether `/proc/locks` shows process `pid` waiting for a lock (a `->` line).
    fn waits_for_a_lock(pid: u32) -> bool {
        let locks = fs::read_to_string("/proc/locks").unwrap();
        locks.lines().any(|line| {
            line.contains("->")
                && line
                    .split_whitespace()
                    .any(|field| field == pid.to_string())
        })
    }

    /// A second process (this test binary again, as a second `FileStore`) deletes a session
    /// while a save of this process has checked the record and not yet replaced it. Its
    /// delete must wait for the save (or the save would rename the record back over it).
    #[test]
    fn a_delete_by_another_process_is_never_undone_by_a_save() {
        if let Some(dir) = std::env::var_os(CHILD_DELETES_IN) {
            let store = FileStore::open(PathBuf::from(dir)).unwrap();
            let runtime = tokio::runtime::Builder::new_current_thread()
                .build()
                .unwrap();
            let key = StoreKey::from_string("sess:race".into());
            runtime.block_on(store.delete(&key)).unwrap();
            return;
        }
        let folder = tempfile::tempdir().unwrap();
        let store = FileStore::open(folder.path()).unwrap();
        let path = store.dir().join("sess:race");
        let later = SystemTime::now() + Duration::from_secs(60);
        TempFile::write(store.dir(), b"live", later)
            .unwrap()
            .rename_to(&path)
            .unwrap();

        let (checked, checked_rx) = std::sync::mpsc::channel();
        let (go, go_rx) = std::sync::mpsc::channel::<()>();
        hooks::after_save_check(&path, move || {
            checked.send(()).unwrap();
            go_rx.recv().unwrap();
        });
        let saver = std::thread::spawn({
            let (store, path) = (store.clone(), path.clone());
            move || store.save_blocking(&path, &CasToken::new(b"live"), b"saved", later)
        });
        checked_rx.recv_timeout(Duration::from_secs(10)).unwrap();

        let mut child = std::process::Command::new(std::env::current_exe().unwrap())
            .args([
                "--exact",
                "store::file::tests::a_delete_by_another_process_is_never_undone_by_a_save",
                "--test-threads=1",
            ])
            .env(CHILD_DELETES_IN, store.dir())
            .stdout(std::process::Stdio::null())
            .spawn()
            .unwrap();
        // The child either deletes at once (no lock between processes) or waits for ours.
        let start = std::time::Instant::now();
        while child.try_wait().unwrap().is_none() && !waits_for_a_lock(child.id()) {
            assert!(
                start.elapsed() < Duration::from_secs(20),
                "the child is stuck"
            );
            std::thread::sleep(Duration::from_millis(5));
        }
        go.send(()).unwrap();
        assert_eq!(saver.join().unwrap().unwrap(), SaveOutcome::Saved);
        let start = std::time::Instant::now();
        let status = loop {
            if let Some(status) = child.try_wait().unwrap() {
                break status;
            }
            assert!(
                start.elapsed() < Duration::from_secs(20),
                "the child is stuck"
            );
            std::thread::sleep(Duration::from_millis(5));
        };
        assert!(status.success());
        assert!(
            !path.exists(),
            "the other process's delete was undone by the save"
        );
    }
}
