//! [`RedisStore`]'s per-user index: each operation is one script or one pipeline on the user's
//! hash slot (the session keys `P<member>` and the index share the tag in `P`), so it is one
//! round trip to one node, on one server or a Redis Cluster.

use std::time::Duration;

use async_trait::async_trait;
use redis::Value;

use super::{Op, RedisStore, Repeat, scripts, unexpected};
use crate::clock::unix_millis;
use crate::store::index::{
    CreateIndexedOutcome, IndexedRecord, LimitPolicy, NewIndexed, UserIndex, UserSlot,
};
use crate::store::{MAX_MEMBERS_VISITED, StoreError};

#[async_trait]
impl UserIndex for RedisStore {
    async fn create_indexed(
        &self,
        new: NewIndexed<'_>,
    ) -> Result<CreateIndexedOutcome, StoreError> {
        // The arguments are made in a block that ends before the wait: the call copies them, and
        // this future need not hold them (`RedisStore::invoke`).
        let call = {
            let now = self.clock.now();
            let key = new.slot.member_key(new.member);
            // A session dead on arrival gets no PXAT in the past: its deadline is "now + 1 ms",
            // the soonest Redis can do, so the outcome does not depend on the server's clock.
            let expires_at = new.expires_at.max(now + Duration::from_millis(1));
            let max = new.limit.max.map_or(0, std::num::NonZeroUsize::get);
            let policy = match new.limit.policy {
                LimitPolicy::EvictOldest => "evict",
                LimitPolicy::Refuse => "refuse",
            };
            let (pxat, score, now_ms, max) = (
                Self::pxat(expires_at).to_string(),
                unix_millis(new.deadline).to_string(),
                unix_millis(now).to_string(),
                max.to_string(),
            );
            let retire = new
                .retire
                .map_or(("", &b""[..]), |r| (r.member, r.token.as_bytes()));
            let bound = MAX_MEMBERS_VISITED.to_string();
            let args: [&[u8]; 11] = [
                new.record,
                pxat.as_bytes(),
                new.member.as_bytes(),
                score.as_bytes(),
                now_ms.as_bytes(),
                max.as_bytes(),
                new.slot.member_prefix().as_bytes(),
                policy.as_bytes(),
                retire.0.as_bytes(),
                retire.1,
                bound.as_bytes(),
            ];
            self.invoke(
                &scripts::LOGIN,
                &[key.as_str(), new.slot.index().as_str()],
                &args,
                Repeat::Once,
                "creating an indexed session record",
            )
        };
        let reply: Value = call.await?;
        match reply {
            Value::Int(-1) => Ok(CreateIndexedOutcome::Refused),
            Value::Int(-2) => Ok(CreateIndexedOutcome::Exists),
            Value::Int(-3) => Ok(CreateIndexedOutcome::Gone),
            Value::BulkString(live) => Ok(CreateIndexedOutcome::Stale(live)),
            Value::Array(evicted) => Ok(CreateIndexedOutcome::Created {
                evicted: evicted.iter().filter_map(text).collect(),
            }),
            other => Err(unexpected("the login script", &other)),
        }
    }

    async fn list(&self, slot: &UserSlot) -> Result<Vec<IndexedRecord>, StoreError> {
        let now = self.clock.now();
        let now_ms = unix_millis(now).to_string();
        let reply: Value = self
            .invoke(
                &scripts::LIST,
                &[slot.index().as_str()],
                &[
                    now_ms.as_bytes(),
                    slot.member_prefix().as_bytes(),
                    MAX_MEMBERS_VISITED.to_string().as_bytes(),
                ],
                Repeat::Idempotent,
                "listing a user's sessions",
            )
            .await?;
        let Value::Array(items) = reply else {
            return Err(unexpected("the list script", &reply));
        };
        let mut found = Vec::with_capacity(items.len() / 3);
        for triple in items.chunks(3) {
            let [member, Value::Int(pttl), Value::BulkString(record)] = triple else {
                return Err(unexpected(
                    "the list script",
                    &Value::Array(triple.to_vec()),
                ));
            };
            let Some(member) = text(member) else {
                continue;
            };
            // -1 (no expiry) cannot happen for a session; read it as "now", the safe side.
            let left = Duration::from_millis(u64::try_from(*pttl).unwrap_or(0));
            found.push(IndexedRecord {
                member,
                expires_at: now + left,
                record: record.clone(),
            });
        }
        Ok(found)
    }

    /// `DEL` and `ZREM` in one pipeline (one round trip to the slot's node); the `DEL` goes
    /// first, so a failure between the two leaves a dead member, which the next call prunes.
    /// Followed by `WAIT` where deletes wait for replicas.
    async fn end(&self, slot: &UserSlot, member: &str) -> Result<bool, StoreError> {
        const CONTEXT: &str = "ending a session";
        let mut pipeline = redis::pipe();
        pipeline
            .cmd("DEL")
            .arg(slot.member_key(member).as_str())
            .cmd("ZREM")
            .arg(slot.index().as_str())
            .arg(member);
        let (deleted, _): (u64, u64) = self
            .end_sessions(
                CONTEXT,
                Op::Pipeline(&pipeline),
                self.pipeline(&pipeline, Repeat::Idempotent, CONTEXT),
            )
            .await?;
        Ok(deleted > 0)
    }

    /// One script per [`MAX_MEMBERS_VISITED`] members, so that no call blocks Redis for long,
    /// until none is left but the one kept; each followed by `WAIT` where deletes wait for
    /// replicas.
    async fn end_all(&self, slot: &UserSlot, keep: Option<&str>) -> Result<usize, StoreError> {
        const CONTEXT: &str = "ending a user's sessions";
        let bound = MAX_MEMBERS_VISITED.to_string();
        let index = slot.index();
        let args: [&[u8]; 3] = [
            slot.member_prefix().as_bytes(),
            keep.unwrap_or("").as_bytes(),
            bound.as_bytes(),
        ];
        let call = scripts::ScriptCall::new(&scripts::END_ALL, &[index.as_str()], &args);
        let mut ended = 0_usize;
        loop {
            // Boxed: it holds both ways of sending the call, and ending a user's sessions is
            // rare (this future stays small, `tests/future_sizes.rs`).
            let (now_ended, left): (u64, u64) = Box::pin(self.end_sessions(
                CONTEXT,
                Op::Script(&call),
                self.send_call(&call, Repeat::Idempotent, CONTEXT),
            ))
            .await?;
            ended = ended.saturating_add(usize::try_from(now_ended).unwrap_or(usize::MAX));
            if left == 0 {
                return Ok(ended);
            }
        }
    }
    async fn stored_members(&self, slot: &UserSlot) -> Result<Option<usize>, StoreError> {
        let mut zcard = redis::cmd("ZCARD");
        zcard.arg(slot.index().as_str());
        let count: usize = self
            .query(
                &zcard,
                Repeat::Idempotent,
                "counting a user's index members",
            )
            .await?;
        Ok(Some(count))
    }
}

/// A member as text; members are base64url, so anything else is not one of ours.
fn text(value: &Value) -> Option<String> {
    match value {
        Value::BulkString(bytes) => String::from_utf8(bytes.clone()).ok(),
        Value::SimpleString(text) => Some(text.clone()),
        _ => None,
    }
}
