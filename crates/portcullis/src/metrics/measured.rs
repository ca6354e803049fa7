//! [`Measured`]: a store wrapper that times and counts every operation of the store the session
//! layer was given (and of its user index), at the one boundary every store is called through.

use std::time::{Instant, SystemTime};

use async_trait::async_trait;

use super::{StoreOp, store_op};
use crate::store::{
    CasOutcome, CasToken, CreateIndexedOutcome, IndexedRecord, NewIndexed, SaveOutcome,
    SessionStore, StoreError, StoreKey, UserIndex, UserSlot, WriteOutcome,
};

/// `inner`, each call timed into `portcullis_store_operation_duration_seconds` and each failure
/// counted, labelled by the store's [`SessionStore::kind`].
#[derive(Debug)]
pub(super) struct Measured<S> {
    inner: S,
    kind: &'static str,
}

impl<S: SessionStore> Measured<S> {
    pub(super) fn new(inner: S) -> Self {
        let kind = inner.kind();
        Self { inner, kind }
    }

    /// Runs `call` as `op`, recording how long it took and whether it failed.
    async fn timed<T>(
        &self,
        op: StoreOp,
        call: impl Future<Output = Result<T, StoreError>>,
    ) -> Result<T, StoreError> {
        let started = Instant::now();
        let result = call.await;
        store_op(self.kind, op, started.elapsed(), result.is_ok());
        result
    }

    /// The inner store's index: [`Measured::user_index`] offers one only when it has one.
    fn inner_index(&self) -> Result<&dyn UserIndex, StoreError> {
        self.inner
            .user_index()
            .ok_or_else(|| StoreError::unavailable("the measured store", "it has no user index"))
    }
}

#[async_trait]
impl<S: SessionStore> SessionStore for Measured<S> {
    async fn create(
        &self,
        key: &StoreKey,
        record: &[u8],
        expires_at: SystemTime,
    ) -> Result<WriteOutcome, StoreError> {
        let call = self.inner.create(key, record, expires_at);
        self.timed(StoreOp::Create, call).await
    }

    async fn load(
        &self,
        key: &StoreKey,
        slide_to: Option<SystemTime>,
    ) -> Result<Option<Vec<u8>>, StoreError> {
        self.timed(StoreOp::Load, self.inner.load(key, slide_to))
            .await
    }

    async fn save(
        &self,
        key: &StoreKey,
        expected: &CasToken,
        record: &[u8],
        expires_at: SystemTime,
    ) -> Result<SaveOutcome, StoreError> {
        let call = self.inner.save(key, expected, record, expires_at);
        self.timed(StoreOp::Save, call).await
    }

    async fn delete(&self, key: &StoreKey) -> Result<bool, StoreError> {
        self.timed(StoreOp::Delete, self.inner.delete(key)).await
    }

    async fn delete_if(
        &self,
        key: &StoreKey,
        expected: &CasToken,
    ) -> Result<CasOutcome, StoreError> {
        let call = self.inner.delete_if(key, expected);
        self.timed(StoreOp::DeleteIf, call).await
    }

    async fn purge_expired(&self) -> Result<usize, StoreError> {
        let call = self.inner.purge_expired();
        self.timed(StoreOp::PurgeExpired, call).await
    }

    async fn ping(&self) -> Result<(), StoreError> {
        self.timed(StoreOp::Ping, self.inner.ping()).await
    }

    fn user_index(&self) -> Option<&dyn UserIndex> {
        self.inner.user_index().map(|_| self as &dyn UserIndex)
    }

    fn kind(&self) -> &'static str {
        self.kind
    }
}

/// Every call goes on to the inner store's index, timed.
#[async_trait]
impl<S: SessionStore> UserIndex for Measured<S> {
    async fn create_indexed(
        &self,
        new: NewIndexed<'_>,
    ) -> Result<CreateIndexedOutcome, StoreError> {
        let index = self.inner_index()?;
        self.timed(StoreOp::IndexCreate, index.create_indexed(new))
            .await
    }

    async fn list(&self, slot: &UserSlot) -> Result<Vec<IndexedRecord>, StoreError> {
        let index = self.inner_index()?;
        self.timed(StoreOp::IndexList, index.list(slot)).await
    }

    async fn end(&self, slot: &UserSlot, member: &str) -> Result<bool, StoreError> {
        let index = self.inner_index()?;
        self.timed(StoreOp::IndexEnd, index.end(slot, member)).await
    }

    async fn end_all(&self, slot: &UserSlot, keep: Option<&str>) -> Result<usize, StoreError> {
        let index = self.inner_index()?;
        self.timed(StoreOp::IndexEndAll, index.end_all(slot, keep))
            .await
    }

    async fn stored_members(&self, slot: &UserSlot) -> Result<Option<usize>, StoreError> {
        let index = self.inner_index()?;
        self.timed(StoreOp::IndexMembers, index.stored_members(slot))
            .await
    }
}
