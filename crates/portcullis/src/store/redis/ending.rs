//! Deletes that end a session and wait for replicas (`WAIT`): on a connection of their own,
//! since `WAIT` blocks the connection it is sent on, and a slow one must not stall the
//! multiplexed connection every other request shares. Documented on [`ReplicaWait`].

use std::time::Duration;

use redis::aio::{ConnectionLike, MultiplexedConnection};
use redis::{
    AsyncConnectionConfig, Client, Cmd, FromRedisValue, Pipeline, RedisError, RedisResult,
};

use super::RedisTimeouts;
use super::scripts::ScriptCall;
use crate::store::StoreError;

/// How a delete that ends a session waits for replicas: `REDIS_WAIT_REPLICAS`, and a bound
/// below the response timeout.
///
/// A logout, ending a device, ending the other sessions, a password change and a reset are
/// deletes ([`SessionStore::delete`](crate::store::SessionStore::delete),
/// [`UserIndex::end`](crate::store::UserIndex::end),
/// [`UserIndex::end_all`](crate::store::UserIndex::end_all)). Replication is asynchronous:
/// a delete the primary acknowledged may not have reached any replica when the primary dies,
/// and the replica promoted in its place still holds the session, which comes back. With
/// `replicas` above 0 each of these deletes is followed by `WAIT <replicas> <timeout>` on
/// a connection of their own, and the store answers only once that many replicas
/// have acknowledged the delete. Sentinel promotes the replica with the most replicated data,
/// so one that has the delete is chosen over one that does not.
///
/// - **Fewer replicas than asked** within the timeout: the call fails with
///   [`StoreError::Unavailable`], so the logout gets the 503 of an outage and the browser keeps
///   its cookie. The delete did happen on the primary; sending it again (the user clicks again)
///   is cheap and waits again. Answering "logged out" would promise what the store cannot
///   keep. The cost: while no replica keeps up (all down, or lagging by more than the timeout),
///   logouts fail, whereas log-ins and reads still work.
/// - **The connection breaks** (the primary died, or refused, or was demoted, `READONLY`):
///   the store asks the sentinels for the primary again and sends the delete and its `WAIT`
///   once more, to the new primary, before it answers. If none is known yet (the failover is
///   still under way), the call fails with 503: nothing was promised.
/// - **Cost**: one more round trip (the `WAIT`) and the time a replica takes to acknowledge
///   (on a LAN, about a millisecond); other requests do not wait for it. Concurrent ending
///   deletes share their connection, so they wait for each other's `WAIT`: the same
///   acknowledgement, usually, as replicas acknowledge in order.
/// - **What it does not promise** (Redis's own words: "WAIT does not make Redis a strongly
///   consistent store"): a replica that acknowledged holds the delete in memory, not on disk;
///   if it, too, is lost, or if a failover promotes a replica that did not acknowledge (a
///   manual failover, or one with `replica-priority` steering), the session can still come
///   back. It narrows the window of a normal failover; it is not a consensus protocol.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct ReplicaWait {
    /// How many replicas must acknowledge (0: no `WAIT`).
    pub(super) replicas: u32,
    /// The `WAIT` timeout.
    pub(super) timeout: Duration,
}

impl ReplicaWait {
    /// The share of the response timeout that `WAIT` may use: the rest is left for the round
    /// trip, so the reply arrives before the connection's own response timeout fires.
    const SHARE_OF_RESPONSE: (u32, u32) = (4, 5);

    /// Waits for `replicas` replicas, bounded by four fifths of the response timeout.
    pub(super) fn new(replicas: u32, timeouts: RedisTimeouts) -> Self {
        let (num, den) = Self::SHARE_OF_RESPONSE;
        Self {
            replicas,
            timeout: timeouts.response * num / den,
        }
    }

    /// Whether a delete waits at all.
    pub(super) fn waits(self) -> bool {
        self.replicas > 0
    }
}

/// The connection of the deletes that wait, to one server (the primary). Made on first use and
/// again after any failure; a plain multiplexed connection that never reconnects by itself, so
/// that a delete and its `WAIT` always travel on the same connection (`WAIT` counts the
/// replicas that have this connection's writes).
pub(super) struct Ending {
    client: Client,
    config: AsyncConnectionConfig,
    wait: ReplicaWait,
    connection: tokio::sync::Mutex<Option<MultiplexedConnection>>,
}

impl Ending {
    pub(super) fn new(client: Client, timeouts: RedisTimeouts, wait: ReplicaWait) -> Self {
        let config = AsyncConnectionConfig::new()
            .set_connection_timeout(Some(timeouts.connect))
            .set_response_timeout(Some(timeouts.response));
        Self {
            client,
            config,
            wait,
            connection: tokio::sync::Mutex::new(None),
        }
    }

    /// Runs `op` (the delete), then `WAIT` on the same connection, and returns what `op`
    /// returned; fails when fewer replicas than asked acknowledged. The connection never
    /// reconnects by itself, so a `WAIT` that answers counts the replicas that have the delete.
    ///
    /// # Errors
    /// [`Failed::Redis`] with the client's error (the connection is then dropped, and the
    /// next call makes a new one), [`Failed::Store`] when the replicas did not acknowledge.
    pub(super) async fn send<T: FromRedisValue>(
        &self,
        context: &'static str,
        op: Op<'_>,
    ) -> Result<T, Failed> {
        let mut connection = self.connection().await?;
        let mut wait = redis::cmd("WAIT");
        wait.arg(self.wait.replicas)
            .arg(u64::try_from(self.wait.timeout.as_millis()).unwrap_or(u64::MAX));
        let sent = match op.send(&mut connection).await {
            Ok(value) => wait
                .query_async::<i64>(&mut connection)
                .await
                .map(|acknowledged| (value, acknowledged)),
            Err(error) => Err(error),
        };
        let (value, acknowledged) = match sent {
            Ok(sent) => sent,
            Err(error) => {
                if error.is_unrecoverable_error() || error.is_timeout() {
                    *self.connection.lock().await = None;
                }
                return Err(Failed::Redis(error));
            }
        };
        if acknowledged < i64::from(self.wait.replicas) {
            return Err(Failed::Store(StoreError::unavailable(
                context,
                format!(
                    "{acknowledged} of {} replicas acknowledged the delete within {} ms; it is \
                     done on the primary but could come back after a failover",
                    self.wait.replicas,
                    self.wait.timeout.as_millis()
                ),
            )));
        }
        Ok(value)
    }

    /// The connection, made now if there is none.
    async fn connection(&self) -> Result<MultiplexedConnection, Failed> {
        let mut slot = self.connection.lock().await;
        if let Some(connection) = slot.as_ref() {
            return Ok(connection.clone());
        }
        let connection = self
            .client
            .get_multiplexed_async_connection_with_config(&self.config)
            .await
            .map_err(Failed::Redis)?;
        *slot = Some(connection.clone());
        Ok(connection)
    }
}

/// Why a waiting delete failed: Redis said so (and may be elsewhere now), or the store decided.
pub(super) enum Failed {
    /// The client's error: a lost, refused or read-only connection may mean a failover.
    Redis(RedisError),
    /// Too few replicas, or a reply of the wrong shape: final.
    Store(StoreError),
}

impl Failed {
    /// As the store's error, with `context` for a Redis error.
    pub(super) fn into_store_error(self, context: &'static str) -> StoreError {
        match self {
            Self::Redis(error) => StoreError::unavailable(context, error),
            Self::Store(error) => error,
        }
    }
}

/// One operation for Redis, to send on whichever connection the backend picks.
#[derive(Clone, Copy)]
pub(super) enum Op<'a> {
    /// One command.
    Cmd(&'a Cmd),
    /// A pipeline, in one round trip.
    Pipeline(&'a Pipeline),
    /// A Lua script (`EVALSHA`, again after `SCRIPT LOAD` when the server does not have it).
    Script(&'a ScriptCall<'a>),
}

impl Op<'_> {
    /// Sends the operation on `connection` and converts its reply.
    pub(super) async fn send<T: FromRedisValue, C: ConnectionLike + Send>(
        self,
        connection: &mut C,
    ) -> RedisResult<T> {
        match self {
            Self::Cmd(cmd) => cmd.query_async(connection).await,
            Self::Pipeline(pipeline) => pipeline.query_async(connection).await,
            Self::Script(call) => call.send(connection).await,
        }
    }
}
