//! The native compare-and-set write of [`RedisStore`](super::RedisStore): `SET key new IFEQ
//! old GET PXAT t`, one command and no script, on servers that have `IFEQ` (Valkey 8.1 and
//! later, Redis 8.4 and later), and how the store learns whether its server has it.
//!
//! The store asks the server (`COMMAND DOCS SET`, looking for an argument whose token is
//! `IFEQ`), never its version string: Valkey reports a `redis_version` of 7.2. The answer is
//! kept until a call sees the connection lost, refused or reset (the connection manager, or
//! the cluster client, then connects anew, maybe to another server: a failover, an upgrade,
//! a rolling restart), and asked again on the next save. A server that refuses `COMMAND
//! DOCS` (before Redis 7, or `NOPERM` from an ACL) is taken to have none, and so is one that
//! answers the native write with an `ERR` reply (a server without `IFEQ` says `ERR syntax
//! error`, and writes nothing): that save, and the next ones until the answer is forgotten,
//! use the Lua script. So a cluster whose nodes differ (an upgrade half done) ends up on the
//! script everywhere rather than failing.

use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};

use redis::{RedisError, Value};

use super::{RedisStore, Repeat, unexpected};
use crate::store::{SaveOutcome, StoreError, StoreKey};

/// Whether the store may write with `SET … IFEQ`, as far as it knows; shared by the store's
/// clones, as the connection is.
#[derive(Clone)]
pub(super) struct NativeCas {
    /// `REDIS_NATIVE_CAS`: off keeps the Lua script on every server.
    enabled: bool,
    /// One of `UNKNOWN`, `NATIVE`, `SCRIPT`.
    state: Arc<AtomicU8>,
}

/// Not asked yet, or the connection changed since.
const UNKNOWN: u8 = 0;
/// The server has `IFEQ`.
const NATIVE: u8 = 1;
/// The server has no `IFEQ` (or refused it once): the Lua script.
const SCRIPT: u8 = 2;

impl NativeCas {
    pub(super) fn new(enabled: bool) -> Self {
        Self {
            enabled,
            state: Arc::new(AtomicU8::new(UNKNOWN)),
        }
    }

    /// What the store uses now: `Some(true)` native, `Some(false)` the script, `None` not
    /// known yet (the next save asks).
    pub(super) fn known(&self) -> Option<bool> {
        match self.state.load(Ordering::Relaxed) {
            NATIVE => Some(true),
            SCRIPT => Some(false),
            _ => None,
        }
    }

    /// Forgets the answer when `error` means the connection is being made anew.
    pub(super) fn observe(&self, error: &RedisError) {
        if error.is_unrecoverable_error()
            || error.is_connection_dropped()
            || error.is_connection_refusal()
        {
            self.state.store(UNKNOWN, Ordering::Relaxed);
        }
    }
}

/// Saves `record` under `key` with `SET … IFEQ <loaded> GET PXAT <pxat>` when the server has
/// `IFEQ`; `None` when it has not (or native writes are off), and the caller runs the script.
///
/// The `GET` reply tells the three outcomes apart: nil, no live record (nothing is created);
/// the loaded record, saved; anything else, the live record, which another write put there
/// (nothing is written). Sent a second time after a lost connection, like the script: a
/// repeat of one that landed finds the record it wrote, a conflict the session layer
/// recognises as its own write.
pub(super) async fn save(
    store: &RedisStore,
    key: &StoreKey,
    loaded: &[u8],
    record: &[u8],
    pxat: u64,
) -> Result<Option<SaveOutcome>, StoreError> {
    if !usable(store).await? {
        return Ok(None);
    }
    let mut cmd = redis::cmd("SET");
    cmd.arg(key.as_str())
        .arg(record)
        .arg("IFEQ")
        .arg(loaded)
        .arg("GET")
        .arg("PXAT")
        .arg(pxat);
    match store
        .query::<Value>(&cmd, Repeat::Idempotent, "saving a session record")
        .await
    {
        Ok(Value::Nil) => Ok(Some(SaveOutcome::Gone)),
        Ok(Value::BulkString(live)) if live == loaded => Ok(Some(SaveOutcome::Saved)),
        Ok(Value::BulkString(live)) => Ok(Some(SaveOutcome::Conflict(live))),
        Ok(other) => Err(unexpected("SET … IFEQ", &other)),
        Err(error) if refused_by_server(&error) => {
            tracing::info!(
                redis = %store.shown,
                "Redis refused SET … IFEQ; saving with the Lua script until the connection changes"
            );
            store.native.state.store(SCRIPT, Ordering::Relaxed);
            Ok(None)
        }
        Err(error) => Err(error),
    }
}

/// Whether the server has `IFEQ`, asking it when the store does not know.
async fn usable(store: &RedisStore) -> Result<bool, StoreError> {
    let native = &store.native;
    if !native.enabled {
        return Ok(false);
    }
    if let Some(known) = native.known() {
        return Ok(known);
    }
    let mut cmd = redis::cmd("COMMAND");
    cmd.arg("DOCS").arg("SET");
    let has = match store
        .query::<Value>(&cmd, Repeat::Idempotent, "asking Redis about SET")
        .await
    {
        Ok(docs) => has_ifeq(&docs),
        // A server without `COMMAND DOCS` (before Redis 7) has no `IFEQ` either; a user whose
        // ACL forbids `COMMAND` (`NOPERM`) is not asked again on every save.
        Err(error) if server_error_code(&error).is_some() => {
            tracing::info!(
                redis = %store.shown,
                error = %crate::ErrorChain(&error),
                "Redis did not answer COMMAND DOCS SET; saving with the Lua script"
            );
            false
        }
        // Not known: this save uses the script, which meets the same connection.
        Err(_) => return Ok(false),
    };
    native
        .state
        .store(if has { NATIVE } else { SCRIPT }, Ordering::Relaxed);
    tracing::debug!(redis = %store.shown, native = has, "compare-and-set write chosen");
    Ok(has)
}

/// Whether `error` is the server's `ERR` reply (a command or argument it does not know),
/// after which nothing was written.
fn refused_by_server(error: &StoreError) -> bool {
    server_error_code(error) == Some("ERR")
}

/// The code of the server's error reply (`ERR`, `NOPERM`...) that `error` carries, if it is
/// one (and not a lost connection or a timeout).
fn server_error_code(error: &StoreError) -> Option<&str> {
    let StoreError::Unavailable { source, .. } = error else {
        return None;
    };
    source.downcast_ref::<RedisError>()?.code()
}

/// Whether a `COMMAND DOCS SET` reply names an argument with the token `IFEQ`. The reply is
/// nested maps (RESP3) or flat key-value arrays (RESP2); this walks both.
fn has_ifeq(reply: &Value) -> bool {
    let text = |value: &Value| match value {
        Value::BulkString(bytes) => Some(bytes.clone()),
        Value::SimpleString(s) => Some(s.clone().into_bytes()),
        _ => None,
    };
    let is_ifeq_token = |name: &Value, value: &Value| {
        text(name).is_some_and(|n| n.eq_ignore_ascii_case(b"token"))
            && text(value).is_some_and(|v| v.eq_ignore_ascii_case(b"IFEQ"))
    };
    match reply {
        Value::Array(items) | Value::Set(items) => {
            items
                .windows(2)
                .any(|pair| is_ifeq_token(&pair[0], &pair[1]))
                || items.iter().any(has_ifeq)
        }
        Value::Map(pairs) => pairs
            .iter()
            .any(|(name, value)| is_ifeq_token(name, value) || has_ifeq(value)),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bulk(s: &str) -> Value {
        Value::BulkString(s.as_bytes().to_vec())
    }

    #[test]
    fn an_ifeq_token_is_found_in_flat_and_map_replies() {
        let argument = |token: &str| {
            Value::Array(vec![
                bulk("name"),
                bulk("comparison-value"),
                bulk("token"),
                bulk(token),
            ])
        };
        let flat = |token: &str| {
            Value::Array(vec![
                bulk("set"),
                Value::Array(vec![
                    bulk("arguments"),
                    Value::Array(vec![argument("NX"), argument(token)]),
                ]),
            ])
        };
        assert!(has_ifeq(&flat("IFEQ")));
        assert!(!has_ifeq(&flat("XX")));
        let map = Value::Map(vec![(
            bulk("set"),
            Value::Map(vec![(bulk("token"), bulk("ifeq"))]),
        )]);
        assert!(has_ifeq(&map));
        // The word in a summary is not an argument.
        assert!(!has_ifeq(&Value::Array(vec![
            bulk("summary"),
            bulk("IFEQ")
        ])));
    }
}
