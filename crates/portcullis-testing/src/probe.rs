//! [`Probe`]: a store wrapper around any real store, for tests that must see or steer what the
//! session layer asks of its store: it counts every call, can be switched to fail, and can
//! hold loads at a barrier so that concurrent requests all read the same version of a session,
//! and can lose a save's reply ([`Probe::lose_next_save_reply`]).

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use async_trait::async_trait;
use portcullis::store::{
    CasOutcome, CasToken, CreateIndexedOutcome, IndexedRecord, NewIndexed, SaveOutcome,
    SessionStore, StoreError, StoreKey, UserIndex, UserSlot, WriteOutcome,
};
use tokio::sync::{Barrier, oneshot};

/// How long a raced load waits for the others before the test fails.
const RACE_PATIENCE: std::time::Duration = std::time::Duration::from_secs(15);

/// Counts every call and can be switched to fail, around any real store; clones share
/// their [`Stats`] and their barrier.
#[derive(Debug, Clone)]
pub struct Probe<S> {
    /// The real store every call goes on to.
    pub inner: S,
    /// What has been called so far, and the fault switch.
    pub stats: Arc<Stats>,
    armed: Arc<Mutex<Option<Armed>>>,
    lose: Arc<Mutex<Option<Losing>>>,
    hold: Arc<Mutex<Option<Losing>>>,
}

/// The two ends of a lost save reply ([`Probe::lose_next_save_reply`]).
#[derive(Debug)]
pub struct LostReply {
    /// Fires once the save whose reply is lost has been written.
    pub written: oneshot::Receiver<()>,
    /// Send (or drop) to let the save be sent again.
    pub resend: oneshot::Sender<()>,
}

/// The two ends of a held log-in ([`Probe::hold_next_create_indexed`]).
#[derive(Debug)]
pub struct HeldCreate {
    /// Fires once the held `create_indexed` has been called, before it reaches the store.
    pub reached: oneshot::Receiver<()>,
    /// Send (or drop) to let it go on to the store.
    pub release: oneshot::Sender<()>,
}

/// A save whose reply is to be lost: where to say it was written, and when to send it again.
type Losing = (oneshot::Sender<()>, oneshot::Receiver<()>);

/// The barrier the next loads wait on, and how many loads are still to take it.
type Armed = (Arc<Barrier>, usize);

/// The calls a [`Probe`] has seen, and its fault switch.
#[derive(Debug, Default)]
pub struct Stats {
    /// `load` calls.
    pub loads: AtomicUsize,
    /// `create` calls.
    pub creates: AtomicUsize,
    /// `save` calls.
    pub updates: AtomicUsize,
    /// `delete` and `delete_if` calls.
    pub deletes: AtomicUsize,
    /// While set, every call fails as an unreachable store would (after being counted).
    pub failing: AtomicBool,
    /// Every record offered to `create` or `save`, with its key, in order.
    pub written: Mutex<Vec<(StoreKey, Vec<u8>)>>,
    /// Every call in order: `create`, `load`, `save`, `delete`, `delete_if`.
    pub calls: Mutex<Vec<&'static str>>,
    /// The user slot of every `create_indexed` (a log-in), in order: so that a test can look
    /// at that user's index itself ([`UserIndex::stored_members`]).
    pub slots: Mutex<Vec<UserSlot>>,
}

impl Stats {
    /// `create` and `save` calls.
    pub fn writes(&self) -> usize {
        self.creates.load(Ordering::SeqCst) + self.updates.load(Ordering::SeqCst)
    }

    /// `load` calls.
    pub fn loads(&self) -> usize {
        self.loads.load(Ordering::SeqCst)
    }

    /// Every session call: writes, loads and deletes.
    pub fn total(&self) -> usize {
        self.writes() + self.loads() + self.deletes.load(Ordering::SeqCst)
    }

    /// The calls so far, in order.
    pub fn calls(&self) -> Vec<&'static str> {
        self.calls.lock().unwrap().clone()
    }

    /// Makes every following call fail (`true`) or pass through again (`false`).
    pub fn fail(&self, on: bool) {
        self.failing.store(on, Ordering::SeqCst);
    }
}

impl<S> Probe<S> {
    /// A probe around `inner`, counting from zero, not failing, not racing.
    pub fn new(inner: S) -> Self {
        Self {
            inner,
            stats: Arc::default(),
            armed: Arc::default(),
            lose: Arc::default(),
            hold: Arc::default(),
        }
    }

    /// Loses the reply of the next `save`, as a dropped connection does: the save is written,
    /// [`LostReply::written`] fires, and once [`LostReply::resend`] is sent (so that the test
    /// can let another writer in meanwhile) the very same save is sent again and its answer is
    /// the one returned, as `RedisStore` sends a save again after a lost connection.
    pub fn lose_next_save_reply(&self) -> LostReply {
        let (written_tx, written) = oneshot::channel();
        let (resend, resend_rx) = oneshot::channel();
        *self.lose.lock().unwrap() = Some((written_tx, resend_rx));
        LostReply { written, resend }
    }

    /// Holds the next `create_indexed` (a log-in's write, after its password check passed)
    /// before it reaches the store: [`HeldCreate::reached`] fires, and it goes on once
    /// [`HeldCreate::release`] is sent, so that a test can run another request meanwhile.
    /// A hold not released within 15 s fails that call.
    pub fn hold_next_create_indexed(&self) -> HeldCreate {
        let (reached_tx, reached) = oneshot::channel();
        let (release, release_rx) = oneshot::channel();
        *self.hold.lock().unwrap() = Some((reached_tx, release_rx));
        HeldCreate { reached, release }
    }

    /// Makes the next `n` loads wait for each other: each loads, then waits until all `n` have
    /// loaded, so `n` concurrent requests all read the same version of a session before any
    /// of them writes.
    pub fn race_next_loads(&self, n: usize) {
        *self.armed.lock().unwrap() = Some((Arc::new(Barrier::new(n)), n));
    }

    /// The barrier this load must take, if loads are being raced and some are still to come.
    fn take_barrier(&self) -> Option<Arc<Barrier>> {
        let mut armed = self.armed.lock().unwrap();
        match armed.as_mut() {
            Some((barrier, left)) if *left > 0 => {
                *left -= 1;
                Some(Arc::clone(barrier))
            }
            _ => None,
        }
    }

    fn record(&self, call: &'static str, counter: &AtomicUsize) -> Result<(), StoreError> {
        counter.fetch_add(1, Ordering::SeqCst);
        self.stats.calls.lock().unwrap().push(call);
        if self.stats.failing.load(Ordering::SeqCst) {
            return Err(StoreError::unavailable(
                "injected fault",
                "connection refused",
            ));
        }
        Ok(())
    }

    fn remember_written(&self, key: &StoreKey, record: &[u8]) {
        self.stats
            .written
            .lock()
            .unwrap()
            .push((key.clone(), record.to_vec()));
    }
}

#[async_trait]
impl<S: SessionStore> SessionStore for Probe<S> {
    async fn create(
        &self,
        key: &StoreKey,
        record: &[u8],
        at: SystemTime,
    ) -> Result<WriteOutcome, StoreError> {
        self.record("create", &self.stats.creates)?;
        self.remember_written(key, record);
        self.inner.create(key, record, at).await
    }

    async fn load(
        &self,
        key: &StoreKey,
        slide: Option<SystemTime>,
    ) -> Result<Option<Vec<u8>>, StoreError> {
        self.record("load", &self.stats.loads)?;
        let barrier = self.take_barrier();
        let loaded = self.inner.load(key, slide).await;
        if let Some(barrier) = barrier {
            // Bounded: a racer that never arrives fails the test instead of hanging it.
            tokio::time::timeout(RACE_PATIENCE, barrier.wait())
                .await
                .unwrap_or_else(|_| {
                    panic!("raced loads: the others never came ({RACE_PATIENCE:?})")
                });
        }
        loaded
    }

    async fn save(
        &self,
        key: &StoreKey,
        expected: &CasToken,
        record: &[u8],
        at: SystemTime,
    ) -> Result<SaveOutcome, StoreError> {
        self.record("save", &self.stats.updates)?;
        self.remember_written(key, record);
        let lost = self.lose.lock().unwrap().take();
        if let Some((written, resend)) = lost {
            // The first answer never arrives.
            let _lost = self.inner.save(key, expected, record, at).await?;
            let _ = written.send(());
            let _ = resend.await;
        }
        self.inner.save(key, expected, record, at).await
    }

    async fn delete(&self, key: &StoreKey) -> Result<bool, StoreError> {
        self.record("delete", &self.stats.deletes)?;
        self.inner.delete(key).await
    }

    async fn delete_if(
        &self,
        key: &StoreKey,
        expected: &CasToken,
    ) -> Result<CasOutcome, StoreError> {
        self.record("delete_if", &self.stats.deletes)?;
        self.inner.delete_if(key, expected).await
    }

    /// The index is not counted (the tests count the session operations); its log-ins'
    /// slots are remembered in [`Stats::slots`].
    fn user_index(&self) -> Option<&dyn UserIndex> {
        self.inner.user_index().map(|_| self as &dyn UserIndex)
    }

    fn kind(&self) -> &'static str {
        self.inner.kind()
    }
}

/// Every call goes on to the real store's index; only the slots of log-ins are remembered.
#[async_trait]
impl<S: SessionStore> UserIndex for Probe<S> {
    async fn create_indexed(
        &self,
        new: NewIndexed<'_>,
    ) -> Result<CreateIndexedOutcome, StoreError> {
        self.stats.slots.lock().unwrap().push(new.slot.clone());
        let held = self.hold.lock().unwrap().take();
        if let Some((reached, release)) = held {
            let _ = reached.send(());
            if tokio::time::timeout(RACE_PATIENCE, release).await.is_err() {
                return Err(StoreError::unavailable(
                    "a held create_indexed",
                    "never released",
                ));
            }
        }
        self.real_index()?.create_indexed(new).await
    }

    async fn list(&self, slot: &UserSlot) -> Result<Vec<IndexedRecord>, StoreError> {
        self.real_index()?.list(slot).await
    }

    async fn end(&self, slot: &UserSlot, member: &str) -> Result<bool, StoreError> {
        self.real_index()?.end(slot, member).await
    }

    async fn end_all(&self, slot: &UserSlot, keep: Option<&str>) -> Result<usize, StoreError> {
        self.real_index()?.end_all(slot, keep).await
    }

    async fn stored_members(&self, slot: &UserSlot) -> Result<Option<usize>, StoreError> {
        self.real_index()?.stored_members(slot).await
    }
}

impl<S: SessionStore> Probe<S> {
    /// The real store's index; a probe offers one only when its store does.
    fn real_index(&self) -> Result<&dyn UserIndex, StoreError> {
        self.inner
            .user_index()
            .ok_or_else(|| StoreError::unavailable("the probed store", "it has no user index"))
    }
}
