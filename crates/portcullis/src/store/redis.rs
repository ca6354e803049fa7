//! [`RedisStore`]: sessions in Redis, one server or a Redis Cluster, for the `redis` profile.
//! The commands, key layout, TLS, cluster form, timeouts and outage behaviour are documented
//! on the type, where rustdoc shows them. The Lua scripts are in `redis/scripts.rs`, the
//! per-user index in `redis/index.rs`, the native compare-and-set (`SET … IFEQ`) and how the
//! store learns whether the server has it in `redis/native_cas.rs`, Sentinel in
//! `redis/sentinel.rs`, and the deletes that wait for replicas in `redis/ending.rs`.

mod ending;
mod index;
mod native_cas;
mod scripts;
mod sentinel;

pub use sentinel::RedisReplication;

use std::fmt;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::cluster::ClusterClient;
use redis::cluster_async::ClusterConnection;
use redis::{
    Client, Cmd, ConnectionAddr, ConnectionInfo, FromRedisValue, Pipeline, RedisError, Value,
};

use super::index::UserIndex;
use super::redis_timeouts::RedisTimeouts;
use super::{CasOutcome, CasToken, SaveOutcome, SessionStore, StoreError, StoreKey, WriteOutcome};
use crate::ErrorChain;
use crate::clock::{Clock, SystemClock, unix_millis};
use crate::redact::redact_url_password;
use ending::{Ending, Op, ReplicaWait};
use sentinel::SentinelPrimary;

/// `REDIS_URL` cannot be used: it does not parse, mixes schemes, or asks for something the
/// store refuses. Never about reachability: an unreachable Redis is not an error at
/// construction.
#[derive(Debug, thiserror::Error)]
#[error("invalid Redis URL {url}: {reason}")]
pub struct RedisUrlError {
    /// The URL list, passwords redacted.
    url: String,
    /// What is wrong, in words.
    reason: String,
    /// The client's own error, when it found the problem.
    #[source]
    source: Option<RedisError>,
}

impl RedisUrlError {
    /// The URL (or comma-separated URLs) that was refused, with passwords redacted.
    #[must_use]
    pub fn url(&self) -> &str {
        &self.url
    }

    /// What is wrong with it.
    #[must_use]
    pub fn reason(&self) -> &str {
        &self.reason
    }
}

/// Sessions in Redis, one server or a Redis Cluster: the store of the `redis` profile, shared
/// by every process of a deployment.
///
/// # One command, one round trip per operation
///
/// | trait call | Redis command |
/// |---|---|
/// | [`SessionStore::load`] with `slide_to` | `GETEX key PXAT <slide_to>` (read and slide together) |
/// | [`SessionStore::load`] without | `GET key` |
/// | [`SessionStore::create`] | `SET key record NX PXAT <deadline>` (only if absent) |
/// | [`SessionStore::save`] | `SET key <record> IFEQ <loaded> GET PXAT <deadline>` where the server has `IFEQ`, else `EVALSHA cas 1 key <token> <record> <deadline>`: compare-and-set (below) |
/// | [`SessionStore::delete`] | `DEL key` |
/// | [`SessionStore::delete_if`] | `EVALSHA delete_if 1 key <token>` |
/// | [`SessionStore::ping`] | `PING` (on a cluster: every primary) |
/// | [`SessionStore::purge_expired`] | nothing: Redis expires keys by itself, and this returns 0 |
///
/// A write is the `cas` script (`redis/scripts.rs`): `GET`, compare the record's first bytes
/// with the token, `SET … PXAT` when they match. It answers "saved", "gone" (nil: the session
/// was deleted, and is not brought back) or the live record itself, so the session layer
/// merges onto it without another read. Redis counts the script's inner `GET` and `SET` in
/// `INFO commandstats` too; the client sends one command. `EVALSHA` is sent again after
/// `SCRIPT LOAD` when the server has not cached the script (after a restart, on a new cluster
/// node).
///
/// # Native compare-and-set (Valkey 8.1+, Redis 8.4+)
///
/// Where the server has `SET … IFEQ`, a save whose token carries the loaded record (the
/// session layer's always do, [`CasToken::of_record`]) is `SET key <record> IFEQ <loaded>
/// GET PXAT <deadline>`: one command, no script. It compares the whole loaded record (the
/// token's nonce is unique per write, so that is the script's test too), and its `GET` reply
/// tells "gone" (nil), "saved" (the loaded record) and "changed" (the live record, handed
/// back for the merge) apart. A save that ends the record (its deadline has passed) and a
/// token without a record use the script; so do [`SessionStore::delete_if`] and the index,
/// which have no native form on Valkey 8.1.
///
/// The store learns whether the server has `IFEQ` from `COMMAND DOCS SET` (never the version
/// string: Valkey reports a `redis_version` of 7.2), on the first save, and asks again on the
/// first save after a call saw the connection lost, refused or reset (a new connection may
/// reach another server). A server that refuses `COMMAND DOCS` (older than Redis 7, or an ACL
/// without `COMMAND`), or answers the native write with an `ERR` reply (no `IFEQ`: nothing is
/// written), gets the script from then on, until the connection changes.
/// `REDIS_NATIVE_CAS=false` ([`RedisStore::with_native_cas`]) keeps the script everywhere.
///
/// The per-user index ([`SessionStore::user_index`]) is one script or one pipeline per
/// operation, on the user's slot: `EVALSHA login` (create, prune, limit, retire), `EVALSHA
/// list` (`GET` and `PTTL`, never sliding), `DEL` + `ZREM` in one pipeline (end one),
/// `EVALSHA end_all`.
///
/// Redis keeps a key through the millisecond its `PXAT` names, so the store sends the
/// millisecond before the deadline's: a record never outlives its deadline (by the same
/// clock; keep the hosts' clocks in sync, as the deadlines are computed by the application).
///
/// A deadline that has already passed (by the store's [`Clock`]) is never sent as `PXAT`:
/// such a `create` stores nothing and only checks whether a live record is in the way
/// (`EXISTS key`: `NotWritten` if one is, else `Written`, the record having expired at once),
/// and such a `save` ends the record (the script's `DEL`, when the token matches). That is
/// what the memory and file stores do, and it does not depend on the server's clock.
///
/// Records are opaque bytes, sent and read as binary strings, never decoded as text.
///
/// # Key layout
///
/// The store uses the [`StoreKey`] as given: `SESSION_KEY_PREFIX` followed by the base64url
/// SHA-256 of the session id (`sess:<43 characters>`). It never adds to, hashes or splits the
/// key, so a key that carries a Redis Cluster hash tag (`sess:{tag}<hash>`, for keys that must
/// share a slot) is routed by its tag on a cluster and works unchanged on one server.
///
/// # Addresses, TLS, cluster
///
/// [`RedisStore::connect`] takes `REDIS_URL`:
///
/// - one URL for one server: `redis://[user:password@]host[:port][/db]`, `rediss://…` for TLS,
///   or a Unix socket (`redis+unix:///path?db=0&pass=…`, `unix:///path`);
/// - **two or more comma-separated URLs for a Redis Cluster**: the seed nodes, e.g.
///   `redis://10.0.0.1:7000,redis://10.0.0.2:7001`. The client learns the other nodes from
///   them. All seeds use the same scheme and credentials, and database 0 (a cluster has no
///   other).
///
/// A character of the password that URLs reserve (`@ : / , # ?`…) is written percent-encoded.
/// Passwords never appear in logs, in [`RedisStore`]'s `Debug` output, nor in errors.
///
/// TLS (`rediss://`) uses rustls with the ring provider and verifies the server's
/// certificate against the Mozilla root store (webpki roots) and its host name. Turning that
/// off (`#insecure`) is refused.
///
/// # Timeouts and outages
///
/// Two bounds (`REDIS_CONNECT_TIMEOUT`, `REDIS_RESPONSE_TIMEOUT`, 250 ms each by default, see
/// [`RedisTimeouts`]) keep every call short when Redis is slow or gone, so that a request
/// gets its 503 quickly instead of hanging:
///
/// - Construction does not need Redis: [`RedisStore::connect`] succeeds whatever the network
///   says, pings once, and logs a warning when Redis does not answer. The application starts,
///   and serves sessions as soon as Redis does.
/// - One server: one multiplexed connection, shared by all requests and re-established by
///   itself. A connection attempt is a single try bounded by the connect timeout, each
///   command is bounded by the response timeout. During an outage each call fails with
///   [`StoreError::Unavailable`] (its source is the Redis error) and starts a new connection
///   attempt in the background; when Redis is back, the next call reconnects. A call that
///   failed on a lost or refused connection is sent once more on the fresh one (a create only
///   when refused, as it cannot have landed), so the first request after an outage, or after
///   an idle connection was closed, succeeds. A timed-out call is not retried.
/// - Cluster: the cluster client connects to its seeds eagerly, so the store connects on the
///   first call rather than at construction, and again on later calls until a connection is
///   made, each attempt bounded by both timeouts; concurrent calls share one attempt. Once
///   connected, the client follows the cluster's topology and reconnects to nodes by itself.
///   Each command (with its redirections and retries) is bounded by the response timeout.
///
/// # Sentinel and replicas
///
/// `redis+sentinel://[user:password@]host1[:port],host2[:port]/<primary name>` (port 26379 by
/// default; `rediss+sentinel://` for TLS to the sentinels and the primary) names the sentinels
/// of a primary; [`RedisStore::connect_with`] takes the sentinels' own password when it is not
/// the URL's (`REDIS_SENTINEL_PASSWORD`).
///
/// - The primary is looked up (redis-rs's Sentinel client: ask the sentinels, then check that
///   the node says it is a primary) on the first call, and again on the first call that finds
///   it refusing, dropping the connection, or demoted (`READONLY`). One look-up at a time,
///   bounded by the connect timeout: concurrent calls share its outcome, so a failover costs
///   each request at most one look-up, not a timeout. A call that failed so is sent once more
///   to the primary found when a repeat is harmless, as on one server (a refused or `READONLY`
///   call did nothing, so it always is); until the sentinels name a reachable primary, calls
///   fail with [`StoreError::Unavailable`] (the site's 503). The store does not poll the
///   sentinels: an
///   old primary that still answers as primary (after a manual failover, or across a network
///   partition, until the sentinels demote it, which takes them a few seconds) keeps getting
///   this store's writes, which its demotion then discards; Redis's `min-replicas-to-write`
///   bounds that window on the server's side.
/// - Deletes that end a session ([`SessionStore::delete`], [`UserIndex::end`],
///   [`UserIndex::end_all`]) wait for replicas (`WAIT`, 1 replica by default behind Sentinel,
///   `REDIS_WAIT_REPLICAS`) on a connection of their own, and are sent again to the new
///   primary after a broken connection; too few acknowledgements fail the call. What this costs
///   and does not promise is in `redis/ending.rs` (`ReplicaWait`). On one server with replicas,
///   `REDIS_WAIT_REPLICAS` above 0 does the same; a cluster does not wait (a warning says so).
///
/// Cloning is cheap; clones share the connection. The store must be created, and used, within
/// one Tokio runtime.
///
/// # Example
///
/// ```no_run
/// use portcullis::store::{RedisStore, RedisTimeouts, SessionStore, StoreKey};
/// use std::time::{Duration, SystemTime};
///
/// # async fn example() -> Result<(), Box<dyn std::error::Error>> {
/// // Starts even if Redis is down (it logs a warning); calls fail until Redis answers.
/// let store = RedisStore::connect("redis://127.0.0.1:6379", RedisTimeouts::default()).await?;
/// let key = StoreKey::from_string("sess:example".into());
/// let later = SystemTime::now() + Duration::from_secs(300);
/// store.create(&key, b"sealed", later).await?;
/// assert_eq!(store.load(&key, Some(later)).await?.as_deref(), Some(&b"sealed"[..]));
///
/// // Several URLs: a Redis Cluster.
/// let cluster = RedisStore::connect(
///    "redis://10.0.0.1:7000,redis://10.0.0.2:7001",
///    RedisTimeouts::default(),
/// )
/// .await?;
/// assert!(cluster.is_cluster());
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct RedisStore {
    backend: Backend,
    /// One server only, when deletes that end a session wait for replicas: their connection.
    /// Behind Sentinel it belongs to the primary found; a cluster does not wait.
    ending: Option<Arc<Ending>>,
    clock: Arc<dyn Clock>,
    /// Whether saves may use `SET … IFEQ`, and what the server was found to have.
    native: native_cas::NativeCas,
    /// `REDIS_URL` with passwords redacted, for logs and `Debug`.
    shown: Arc<str>,
}

#[derive(Clone)]
enum Backend {
    Single(ConnectionManager),
    Cluster(Arc<LazyCluster>),
    Sentinel(Arc<SentinelPrimary>),
}

/// The shared connection's configuration, for one server and for a primary behind Sentinel.
fn manager_config(timeouts: RedisTimeouts) -> ConnectionManagerConfig {
    ConnectionManagerConfig::new()
        .set_connection_timeout(Some(timeouts.connect))
        .set_response_timeout(Some(timeouts.response))
        // One try per attempt: retrying with back-off inside an attempt would make every
        // request during an outage wait for all the tries.
        .set_number_of_retries(0)
}

impl RedisStore {
    /// A store for `urls`: one URL for one server, two or more comma-separated for a cluster
    /// (see [`RedisStore`](RedisStore#addresses-tls-cluster)).
    ///
    /// Connecting is not needed to succeed: this pings Redis once (bounded by `timeouts`) and
    /// only logs a warning when it does not answer; calls then fail with
    /// [`StoreError::Unavailable`] until it does. Call it within the Tokio runtime that will
    /// use the store.
    ///
    /// # Errors
    /// [`RedisUrlError`] when `urls` does not parse, mixes schemes or credentials between
    /// cluster nodes, names a database other than 0 for a cluster, or turns certificate
    /// checks off (`#insecure`).
    pub async fn connect(urls: &str, timeouts: RedisTimeouts) -> Result<Self, RedisUrlError> {
        Self::connect_with(urls, timeouts, &RedisReplication::default()).await
    }

    /// [`RedisStore::connect`], also for Redis behind Sentinel (`redis+sentinel://…`, with
    /// `replication`'s sentinel password), and with deletes that end a session waiting for
    /// `replication`'s replicas (see [`RedisStore`](RedisStore#sentinel-and-replicas)).
    ///
    /// # Errors
    /// [`RedisUrlError`], as for [`RedisStore::connect`], and for a Sentinel URL without a
    /// primary name or with an empty host.
    pub async fn connect_with(
        urls: &str,
        timeouts: RedisTimeouts,
        replication: &RedisReplication,
    ) -> Result<Self, RedisUrlError> {
        let shown: Arc<str> = redact_url_password(urls).into();
        let refuse = |problem: UrlProblem| RedisUrlError {
            url: shown.to_string(),
            reason: problem.reason,
            source: problem.source,
        };
        if sentinel::is_sentinel_url(urls) {
            let url =
                sentinel::parse(urls, replication.sentinel_password.as_deref()).map_err(refuse)?;
            if url.is_tls() {
                let _ = rustls::crypto::ring::default_provider().install_default();
            }
            let wait = ReplicaWait::new(replication.replicas(true), timeouts);
            let primary = SentinelPrimary::new(url, timeouts, wait).map_err(refuse)?;
            return Ok(Self::started(Backend::Sentinel(Arc::new(primary)), None, shown).await);
        }
        let Nodes(nodes) = parse_nodes(urls).map_err(refuse)?;
        if nodes.iter().any(is_tls) {
            // redis builds its rustls configuration from the process's default provider.
            // Another part of the program may have installed one already; either is fine.
            let _ = rustls::crypto::ring::default_provider().install_default();
        }
        let wait = ReplicaWait::new(replication.replicas(false), timeouts);
        let mut ending = None;
        let backend = match <[ConnectionInfo; 1]>::try_from(nodes) {
            Ok([node]) => {
                let client = Client::open(node).map_err(|e| refuse(UrlProblem::from_client(e)))?;
                if wait.waits() {
                    ending = Some(Arc::new(Ending::new(client.clone(), timeouts, wait)));
                }
                let manager =
                    ConnectionManager::new_lazy_with_config(client, manager_config(timeouts))
                        .map_err(|e| refuse(UrlProblem::from_client(e)))?;
                Backend::Single(manager)
            }
            Err(seeds) => {
                let client = ClusterClient::builder(seeds)
                    .connection_timeout(timeouts.connect)
                    .response_timeout(timeouts.response)
                    .build()
                    .map_err(|e| refuse(UrlProblem::from_client(e)))?;
                if wait.waits() {
                    tracing::warn!(
                        redis = %shown,
                        "REDIS_WAIT_REPLICAS is not applied on a Redis Cluster: deletes that \
                         end a session do not wait for replicas there"
                    );
                }
                Backend::Cluster(Arc::new(LazyCluster::new(client, timeouts)))
            }
        };
        Ok(Self::started(backend, ending, shown).await)
    }

    /// The store, after one ping that only logs.
    async fn started(backend: Backend, ending: Option<Arc<Ending>>, shown: Arc<str>) -> Self {
        let store = Self {
            backend,
            ending,
            clock: Arc::new(SystemClock),
            native: native_cas::NativeCas::new(true),
            shown,
        };
        match store.ping().await {
            Ok(()) => tracing::info!(redis = %store.shown, "connected to Redis"),
            Err(error) => tracing::warn!(
                redis = %store.shown,
                error = %ErrorChain(&error),
                "Redis does not answer; starting anyway: requests that need a session get 503 \
                 until it does, and the store reconnects by itself"
            ),
        }
        store
    }

    /// The same store, deciding whether a deadline has already passed with `clock`.
    #[must_use]
    pub fn with_clock(self, clock: Arc<dyn Clock>) -> Self {
        Self { clock, ..self }
    }

    /// The same store, saving with the server's native compare-and-set (`SET … IFEQ`) where
    /// it has one (`true`, the default), or always with the Lua script (`false`;
    /// `REDIS_NATIVE_CAS`), e.g. to compare the two on one server.
    #[must_use]
    pub fn with_native_cas(self, enabled: bool) -> Self {
        Self {
            native: native_cas::NativeCas::new(enabled),
            ..self
        }
    }

    /// Whether saves use the native compare-and-set: `Some(true)` they do, `Some(false)` the
    /// Lua script, `None` not known yet (the next save asks the server).
    #[must_use]
    pub fn native_cas(&self) -> Option<bool> {
        self.native.known()
    }

    /// Whether the store talks to a Redis Cluster (several URLs) rather than one server.
    #[must_use]
    pub fn is_cluster(&self) -> bool {
        matches!(self.backend, Backend::Cluster(_))
    }

    /// Sends `cmd` and converts its reply; any failure is [`StoreError::Unavailable`] with
    /// `context` and the Redis error as source.
    ///
    /// On one server, a call that failed because the connection was lost or refused is sent
    /// once more: the failure made the connection manager start a new connection, which may
    /// find Redis back, so the first call after an outage or an idle disconnection succeeds.
    /// A `Once` command is sent again only when it cannot have reached Redis (connection
    /// refused). A timeout is never retried: the call has used its time.
    async fn query<T: FromRedisValue>(
        &self,
        cmd: &Cmd,
        repeat: Repeat,
        context: &'static str,
    ) -> Result<T, StoreError> {
        let result = match &self.backend {
            Backend::Single(manager) => {
                let mut connection = manager.clone();
                match cmd.query_async(&mut connection).await {
                    Err(e) if repeat.may_retry(&e) => {
                        self.native.observe(&e);
                        cmd.query_async(&mut connection).await
                    }
                    result => result,
                }
            }
            // The rarer backends' futures are boxed, so that the future of every call on a
            // single server (which the session store's boxed futures embed) stays small. This
            // match is written out in `query`, `send_call` and `pipeline` on purpose: one
            // function over an `Op` sends through a future sized for all three kinds, which
            // doubles a load's (296 to 592 bytes, `tests/future_sizes.rs`).
            Backend::Cluster(cluster) => {
                return Box::pin(async {
                    let mut connection = cluster.connection().await?;
                    cmd.query_async(&mut connection).await.map_err(|e| {
                        self.native.observe(&e);
                        StoreError::unavailable(context, e)
                    })
                })
                .await;
            }
            Backend::Sentinel(primary) => {
                return Box::pin(primary.run(context, repeat, Op::Cmd(cmd))).await;
            }
        };
        result.map_err(|e| {
            self.native.observe(&e);
            StoreError::unavailable(context, e)
        })
    }

    /// Runs a Lua `script` (`EVALSHA`, again after `SCRIPT LOAD` when the server does not have it
    /// cached) with `keys` and `args`, over the store's own connections and timeouts. For small
    /// shared state that belongs beside the sessions, such as the site's log-in rate limit, so
    /// that every process sees the same counts. On a cluster, all `keys` must share a hash slot.
    ///
    /// A script is sent a second time only when the first try was refused before reaching Redis.
    ///
    /// # Errors
    /// [`StoreError::Unavailable`] when Redis cannot be reached, times out, or the script fails.
    pub async fn run_script<T: FromRedisValue>(
        &self,
        script: &redis::Script,
        keys: &[&str],
        args: &[&[u8]],
    ) -> Result<T, StoreError> {
        self.invoke(script, keys, args, Repeat::Once, "running a Redis script")
            .await
    }

    /// Runs `script` with `keys` and `args`; like [`RedisStore::query`], a call refused before
    /// reaching Redis is sent again, and an `Idempotent` one also after a lost connection.
    ///
    /// The call is built before the future is returned, so that the future holds neither the
    /// arguments nor whatever the caller made them from.
    fn invoke<'s, T: FromRedisValue + 's>(
        &'s self,
        script: &'s redis::Script,
        keys: &[&str],
        args: &[&[u8]],
        repeat: Repeat,
        context: &'static str,
    ) -> impl Future<Output = Result<T, StoreError>> + 's {
        let call = scripts::ScriptCall::new(script, keys, args);
        async move { self.send_call(&call, repeat, context).await }
    }

    /// Sends a built script call ([`RedisStore::invoke`]).
    async fn send_call<T: FromRedisValue>(
        &self,
        call: &scripts::ScriptCall<'_>,
        repeat: Repeat,
        context: &'static str,
    ) -> Result<T, StoreError> {
        let result = match &self.backend {
            Backend::Single(manager) => {
                let mut connection = manager.clone();
                match call.send(&mut connection).await {
                    Err(e) if repeat.may_retry(&e) => {
                        self.native.observe(&e);
                        call.send(&mut connection).await
                    }
                    result => result,
                }
            }
            // Boxed, as in `query`: the common single-server call's future stays small.
            Backend::Cluster(cluster) => {
                return Box::pin(async {
                    let mut connection = cluster.connection().await?;
                    call.send(&mut connection).await.map_err(|e| {
                        self.native.observe(&e);
                        StoreError::unavailable(context, e)
                    })
                })
                .await;
            }
            Backend::Sentinel(primary) => {
                return Box::pin(primary.run(context, repeat, Op::Script(call))).await;
            }
        };
        result.map_err(|e| {
            self.native.observe(&e);
            StoreError::unavailable(context, e)
        })
    }

    /// Sends `pipeline` (its commands all in one hash slot on a cluster) in one round trip.
    async fn pipeline<T: FromRedisValue>(
        &self,
        pipeline: &Pipeline,
        repeat: Repeat,
        context: &'static str,
    ) -> Result<T, StoreError> {
        let result = match &self.backend {
            Backend::Single(manager) => {
                let mut connection = manager.clone();
                match pipeline.query_async(&mut connection).await {
                    Err(e) if repeat.may_retry(&e) => {
                        self.native.observe(&e);
                        pipeline.query_async(&mut connection).await
                    }
                    result => result,
                }
            }
            // Boxed, as in `query`.
            Backend::Cluster(cluster) => {
                return Box::pin(async {
                    let mut connection = cluster.connection().await?;
                    pipeline.query_async(&mut connection).await.map_err(|e| {
                        self.native.observe(&e);
                        StoreError::unavailable(context, e)
                    })
                })
                .await;
            }
            Backend::Sentinel(primary) => {
                return Box::pin(primary.run(context, repeat, Op::Pipeline(pipeline))).await;
            }
        };
        result.map_err(|e| {
            self.native.observe(&e);
            StoreError::unavailable(context, e)
        })
    }

    /// Runs a delete that ends sessions: when deletes wait for replicas, `op` on their own
    /// connection followed by `WAIT` (`redis/ending.rs`); otherwise `shared`, the same delete
    /// on the shared connection.
    async fn end_sessions<T: FromRedisValue>(
        &self,
        context: &'static str,
        op: Op<'_>,
        shared: impl Future<Output = Result<T, StoreError>> + Send,
    ) -> Result<T, StoreError> {
        // The deletes that wait for replicas are boxed, as in `query`.
        match (&self.backend, &self.ending) {
            (Backend::Sentinel(primary), _) if primary.waits() => {
                Box::pin(primary.end_sessions(context, op)).await
            }
            (Backend::Single(_), Some(ending)) => Box::pin(ending.send(context, op))
                .await
                .map_err(|failed| failed.into_store_error(context)),
            _ => shared.await,
        }
    }

    /// The `PXAT` argument for the deadline `time`: Redis keeps a key through the whole
    /// millisecond it names (expired means "now > PXAT", in milliseconds), so this names the
    /// millisecond before the one `time` falls in. The record then ends up to a millisecond
    /// early, never late, as an idle timeout should. At least 1: Redis refuses 0.
    fn pxat(time: SystemTime) -> u64 {
        unix_millis(time).saturating_sub(1).max(1)
    }
}

/// Shows where the store points, with passwords redacted; never a connection's internals,
/// which hold the password.
impl fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisStore")
            .field("redis_url", &self.shown)
            .field("cluster", &self.is_cluster())
            .field("sentinel", &matches!(self.backend, Backend::Sentinel(_)))
            .finish_non_exhaustive()
    }
}

#[async_trait]
impl SessionStore for RedisStore {
    async fn create(
        &self,
        key: &StoreKey,
        record: &[u8],
        expires_at: SystemTime,
    ) -> Result<WriteOutcome, StoreError> {
        if expires_at <= self.clock.now() {
            // Dead on arrival: store nothing; the outcome only says whether a live record
            // was in the way.
            let exists: bool = self
                .query(
                    redis::cmd("EXISTS").arg(key.as_str()),
                    Repeat::Idempotent,
                    "checking a session key",
                )
                .await?;
            return Ok(if exists {
                WriteOutcome::NotWritten
            } else {
                WriteOutcome::Written
            });
        }
        let mut cmd = redis::cmd("SET");
        cmd.arg(key.as_str())
            .arg(record)
            .arg("NX")
            .arg("PXAT")
            .arg(Self::pxat(expires_at));
        written(
            self.query(&cmd, Repeat::Once, "creating a session record")
                .await?,
        )
    }

    async fn load(
        &self,
        key: &StoreKey,
        slide_to: Option<SystemTime>,
    ) -> Result<Option<Vec<u8>>, StoreError> {
        // Sized for its arguments, so that building it allocates once for them.
        let mut cmd = Cmd::with_capacity(4, key.as_str().len() + 32);
        match slide_to {
            Some(deadline) => {
                cmd.arg("GETEX")
                    .arg(key.as_str())
                    .arg("PXAT")
                    .arg(Self::pxat(deadline));
            }
            None => {
                cmd.arg("GET").arg(key.as_str());
            }
        }
        self.query(&cmd, Repeat::Idempotent, "loading a session record")
            .await
    }

    /// `SET … IFEQ` where the server has it and the token carries the loaded record
    /// (`redis/native_cas.rs`), else the `cas` script. Sent a second time after a lost
    /// connection: if the first one had landed, the second finds the record it wrote (or one
    /// another request wrote on top of it) and answers a conflict holding it, which the
    /// session layer recognises as its own write (by its token, or by the save ids the record
    /// keeps).
    async fn save(
        &self,
        key: &StoreKey,
        expected: &CasToken,
        record: &[u8],
        expires_at: SystemTime,
    ) -> Result<SaveOutcome, StoreError> {
        // An empty deadline tells the script to end the record: a deadline that has passed is
        // never sent as PXAT, so the outcome does not depend on the server's clock.
        let pxat = if expires_at <= self.clock.now() {
            String::new()
        } else {
            let pxat = Self::pxat(expires_at);
            if let Some(loaded) = expected.record()
                && let Some(outcome) = native_cas::save(self, key, loaded, record, pxat).await?
            {
                return Ok(outcome);
            }
            pxat.to_string()
        };
        let reply: Value = self
            .invoke(
                &scripts::CAS,
                &[key.as_str()],
                &[expected.as_bytes(), record, pxat.as_bytes()],
                Repeat::Idempotent,
                "saving a session record",
            )
            .await?;
        match reply {
            Value::Int(1) => Ok(SaveOutcome::Saved),
            Value::Nil => Ok(SaveOutcome::Gone),
            Value::BulkString(current) => Ok(SaveOutcome::Conflict(current)),
            other => Err(unexpected("the cas script", &other)),
        }
    }

    /// `DEL`; followed by `WAIT` where deletes wait for replicas (a logout ends a session).
    async fn delete(&self, key: &StoreKey) -> Result<bool, StoreError> {
        const CONTEXT: &str = "deleting a session record";
        // Redis expires a key on access, so `DEL` counts only a live record.
        let mut del = redis::cmd("DEL");
        del.arg(key.as_str());
        self.end_sessions::<u64>(
            CONTEXT,
            Op::Cmd(&del),
            self.query(&del, Repeat::Once, CONTEXT),
        )
        .await
        .map(|deleted| deleted > 0)
    }

    /// The `delete_if` script. Sent again after a lost connection: a repeat of one that
    /// landed answers "gone", which is what the caller wanted.
    async fn delete_if(
        &self,
        key: &StoreKey,
        expected: &CasToken,
    ) -> Result<CasOutcome, StoreError> {
        let reply: Value = self
            .invoke(
                &scripts::DELETE_IF,
                &[key.as_str()],
                &[expected.as_bytes()],
                Repeat::Idempotent,
                "retiring a session record",
            )
            .await?;
        match reply {
            Value::Int(1) => Ok(CasOutcome::Deleted),
            Value::Nil => Ok(CasOutcome::Gone),
            Value::BulkString(current) => Ok(CasOutcome::Conflict(current)),
            other => Err(unexpected("the delete_if script", &other)),
        }
    }

    /// Sends `PING`; on a cluster, to every primary, all of which must answer.
    async fn ping(&self) -> Result<(), StoreError> {
        self.query::<Value>(&redis::cmd("PING"), Repeat::Idempotent, "pinging Redis")
            .await
            .map(drop)
    }

    fn user_index(&self) -> Option<&dyn UserIndex> {
        Some(self)
    }

    fn kind(&self) -> &'static str {
        "redis"
    }
}

/// Whether sending a command twice has the effect, and gives the answer, of sending it once.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Repeat {
    /// `GET`, `GETEX` to a fixed deadline, the `cas` script (see its `save`),
    /// `EXISTS`, `PING`, and a `DEL` whose count is not used.
    Idempotent,
    /// `SET … NX`, and a `DEL` whose count is the answer: a repeat of one that did land would
    /// answer "already exists" or "nothing deleted".
    Once,
}

impl Repeat {
    fn may_retry(self, error: &RedisError) -> bool {
        error.is_connection_refusal()
            || (self == Self::Idempotent && error.is_unrecoverable_error() && !error.is_timeout())
    }
}

/// The outcome of `SET … NX`: `OK` when written, nil when the key was there.
fn written(reply: Value) -> Result<WriteOutcome, StoreError> {
    match reply {
        Value::Okay => Ok(WriteOutcome::Written),
        Value::Nil => Ok(WriteOutcome::NotWritten),
        other => Err(unexpected("SET", &other)),
    }
}

/// A reply of a shape the store never asks for: a bug, or not Redis. Only the shape is shown,
/// never the bytes (they may be a sealed record).
fn unexpected(what: &str, reply: &Value) -> StoreError {
    let shape = match reply {
        Value::BulkString(bytes) => format!("a {}-byte string", bytes.len()),
        Value::Array(items) => format!("an array of {}", items.len()),
        Value::Int(n) => format!("the integer {n}"),
        other => format!("{other:?}"),
    };
    StoreError::unavailable(
        "reading a Redis reply",
        format!("unexpected reply to {what}: {shape}"),
    )
}

/// A cluster connection made on first use, and again on later uses until one is made (the
/// cluster client connects eagerly, and fails when no seed answers).
struct LazyCluster {
    client: ClusterClient,
    /// The longest a connection attempt may take: connecting, then asking for the slots.
    attempt_budget: Duration,
    connection: Mutex<Option<ClusterConnection>>,
    /// Held by the one call that is connecting.
    connecting: tokio::sync::Mutex<()>,
}

impl LazyCluster {
    fn new(client: ClusterClient, timeouts: RedisTimeouts) -> Self {
        Self {
            client,
            attempt_budget: timeouts.connect + timeouts.response,
            connection: Mutex::new(None),
            connecting: tokio::sync::Mutex::new(()),
        }
    }

    fn current(&self) -> Option<ClusterConnection> {
        // Only whole assignments happen under this lock: nothing to repair after a panic.
        self.connection
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// The connection, connecting first if there is none yet.
    async fn connection(&self) -> Result<ClusterConnection, StoreError> {
        const CONTEXT: &str = "connecting to the Redis cluster";
        if let Some(connection) = self.current() {
            return Ok(connection);
        }
        let Ok(_attempt) = self.connecting.try_lock() else {
            // Another call is connecting: share its outcome rather than queue a second
            // attempt behind it, so that no call waits for more than one attempt.
            drop(self.connecting.lock().await);
            return self.current().ok_or_else(|| {
                StoreError::unavailable(CONTEXT, "no seed node answered a concurrent attempt")
            });
        };
        if let Some(connection) = self.current() {
            return Ok(connection);
        }
        let connection =
            match tokio::time::timeout(self.attempt_budget, self.client.get_async_connection())
                .await
            {
                Ok(Ok(connection)) => connection,
                Ok(Err(e)) => return Err(StoreError::unavailable(CONTEXT, e)),
                Err(elapsed) => return Err(StoreError::unavailable(CONTEXT, elapsed)),
            };
        *self
            .connection
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Some(connection.clone());
        Ok(connection)
    }
}

/// What `REDIS_URL` names, checked: one server, or two or more seed nodes of a cluster.
struct Nodes(Vec<ConnectionInfo>);

fn is_tls(info: &ConnectionInfo) -> bool {
    matches!(info.addr(), ConnectionAddr::TcpTls { .. })
}

/// Why a `REDIS_URL` was refused.
struct UrlProblem {
    reason: String,
    source: Option<RedisError>,
}

impl UrlProblem {
    fn new(reason: impl Into<String>) -> Self {
        Self {
            reason: reason.into(),
            source: None,
        }
    }

    fn from_client(error: RedisError) -> Self {
        // The client's messages end with its error kind's name; the words are enough.
        let words = error.to_string().replace(" - InvalidClientConfig", "");
        Self {
            reason: format!("a URL the Redis client accepts ({words})"),
            source: Some(error),
        }
    }
}

/// Schemes of one server over TCP; the cluster client takes only these.
const TCP_SCHEMES: [&str; 2] = ["redis://", "rediss://"];
/// Schemes of one server on a Unix socket.
const UNIX_SCHEMES: [&str; 2] = ["redis+unix://", "unix://"];

/// Parses `REDIS_URL`: one URL, or two or more comma-separated URLs of cluster seed nodes.
fn parse_nodes(raw: &str) -> Result<Nodes, UrlProblem> {
    let urls: Vec<&str> = raw.split(',').map(str::trim).collect();
    if urls.iter().any(|url| url.is_empty()) {
        return Err(UrlProblem::new(
            "one URL, or several separated by single commas, without empty entries",
        ));
    }
    for url in &urls {
        let tcp = TCP_SCHEMES.iter().any(|s| url.starts_with(s));
        let unix = UNIX_SCHEMES.iter().any(|s| url.starts_with(s));
        if !(tcp || unix && urls.len() == 1) {
            return Err(UrlProblem::new(if unix {
                "a cluster's nodes as redis:// or rediss:// URLs, not Unix sockets"
            } else {
                "one URL starting with redis://, rediss://, redis+unix:// or unix://, \
                 several comma-separated redis:// or rediss:// URLs for a Redis Cluster, or \
                 redis+sentinel://host:26379,host:26379/<primary name> (rediss+sentinel:// \
                 for TLS)"
            }));
        }
        if url.contains('#') {
            return Err(UrlProblem::new(
                "no URL fragment: #insecure would turn off TLS certificate checks, which the \
                 store refuses",
            ));
        }
    }
    let infos = urls
        .iter()
        .map(|url| redis::IntoConnectionInfo::into_connection_info(*url))
        .collect::<Result<Vec<_>, _>>()
        .map_err(UrlProblem::from_client)?;
    if infos.len() == 1 {
        return Ok(Nodes(infos));
    }
    if infos.iter().any(|info| is_tls(info) != is_tls(&infos[0])) {
        return Err(UrlProblem::new(
            "the same scheme, redis:// or rediss://, for every node of a cluster",
        ));
    }
    if infos.iter().any(|info| info.redis_settings().db() != 0) {
        return Err(UrlProblem::new(
            "database 0 (or none) for a cluster's nodes: a Redis Cluster has no other",
        ));
    }
    // Building the client checks, among others, that all seeds share their credentials.
    ClusterClient::builder(infos.clone())
        .build()
        .map_err(UrlProblem::from_client)?;
    Ok(Nodes(infos))
}

/// Checks `REDIS_URL` as [`RedisStore::connect`] will read it; returns it with the spaces
/// around commas removed, or what is wrong with it.
pub(crate) fn check_url(raw: &str) -> Result<String, String> {
    if sentinel::is_sentinel_url(raw) {
        sentinel::parse(raw, None).map_err(|problem| problem.reason)?;
        return Ok(raw.trim().to_owned());
    }
    parse_nodes(raw).map_err(|problem| problem.reason)?;
    Ok(raw.split(',').map(str::trim).collect::<Vec<_>>().join(","))
}
