//! Redis behind Sentinel (`redis+sentinel://…`): the primary found through the sentinels, and
//! found again, one look-up at a time, when it stops answering as primary. The URL form and
//! the failover behaviour are documented on [`RedisStore`](super::RedisStore).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use redis::aio::ConnectionManager;
use redis::sentinel::{SentinelClient, SentinelNodeConnectionInfo, SentinelServerType};
use redis::{
    ConnectionInfo, FromRedisValue, IntoConnectionInfo, RedisConnectionInfo, RedisError, TlsMode,
};

use super::ending::{Ending, Failed, Op, ReplicaWait};
use super::{Repeat, UrlProblem, manager_config};
use crate::store::{RedisTimeouts, StoreError};

/// The schemes of a Sentinel `REDIS_URL`: plain, and TLS to the sentinels and the primary.
pub(super) const SCHEMES: [&str; 2] = ["redis+sentinel://", "rediss+sentinel://"];
/// Sentinel's own default port.
const DEFAULT_PORT: u16 = 26_379;

/// The Redis store's replication settings: the sentinels' own password
/// (`REDIS_SENTINEL_PASSWORD`) and how many replicas a delete that ends a session waits for
/// (`REDIS_WAIT_REPLICAS`); see [`RedisStore::connect_with`](super::RedisStore::connect_with).
#[derive(Clone, Default, PartialEq, Eq)]
pub struct RedisReplication {
    /// The sentinels' password, when it is not the primary's (the one in `REDIS_URL`).
    pub sentinel_password: Option<String>,
    /// How many replicas must acknowledge a delete that ends a session; `None`: 1 behind
    /// Sentinel, 0 otherwise.
    pub wait_replicas: Option<u32>,
}

impl RedisReplication {
    /// The replicas to wait for: as set, or 1 behind Sentinel and 0 otherwise.
    pub(super) fn replicas(&self, sentinel: bool) -> u32 {
        self.wait_replicas.unwrap_or(u32::from(sentinel))
    }
}

/// Never shows the password.
impl std::fmt::Debug for RedisReplication {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisReplication")
            .field(
                "sentinel_password",
                &self
                    .sentinel_password
                    .as_ref()
                    .map(|_| crate::redact::REDACTED),
            )
            .field("wait_replicas", &self.wait_replicas)
            .finish()
    }
}

/// A parsed `redis+sentinel://[user:password@]host[:port],host[:port]/<primary name>`.
pub(super) struct SentinelUrl {
    sentinels: Vec<ConnectionInfo>,
    primary_name: String,
    tls: bool,
    /// The credentials of the primary (those of the URL).
    primary_auth: RedisConnectionInfo,
}

/// Whether `raw` names Redis behind Sentinel.
pub(super) fn is_sentinel_url(raw: &str) -> bool {
    SCHEMES.iter().any(|scheme| raw.trim().starts_with(scheme))
}

/// Parses a Sentinel URL. The hosts share the URL's credentials, which are the primary's too;
/// `sentinel_password`, when given, replaces the password for the sentinels only.
pub(super) fn parse(raw: &str, sentinel_password: Option<&str>) -> Result<SentinelUrl, UrlProblem> {
    let raw = raw.trim();
    let (tls, rest) = match (raw.strip_prefix(SCHEMES[0]), raw.strip_prefix(SCHEMES[1])) {
        (Some(rest), _) => (false, rest),
        (_, Some(rest)) => (true, rest),
        _ => {
            return Err(UrlProblem::new(
                "a redis+sentinel:// or rediss+sentinel:// URL",
            ));
        }
    };
    if rest.contains('#') || rest.contains('?') {
        return Err(UrlProblem::new(
            "no query and no fragment in a Sentinel URL (#insecure would turn off TLS \
             certificate checks, which the store refuses)",
        ));
    }
    let Some((authority, name)) = rest.split_once('/') else {
        return Err(UrlProblem::new(
            "the primary's name after the hosts: redis+sentinel://host:26379,host:26379/mymaster",
        ));
    };
    if name.is_empty() || name.contains('/') || name.chars().any(char::is_whitespace) {
        return Err(UrlProblem::new(
            "one primary name after the hosts, without `/` or spaces (the name the sentinels \
             monitor, e.g. mymaster)",
        ));
    }
    let (userinfo, hosts) = match authority.rfind('@') {
        Some(at) => (&authority[..=at], &authority[at + 1..]),
        None => ("", authority),
    };
    let scheme = if tls { "rediss://" } else { "redis://" };
    let mut sentinels = Vec::new();
    for host in hosts.split(',').map(str::trim) {
        if host.is_empty() {
            return Err(UrlProblem::new(
                "one or more sentinel hosts separated by single commas, without empty entries",
            ));
        }
        // A port after the host, or after an IPv6 literal's closing bracket.
        let has_port = host
            .rsplit_once(':')
            .is_some_and(|(_, port)| !port.contains(']'))
            && (!host.starts_with('[') || host.contains("]:"));
        let url = if has_port {
            format!("{scheme}{userinfo}{host}")
        } else {
            format!("{scheme}{userinfo}{host}:{DEFAULT_PORT}")
        };
        let info = url
            .as_str()
            .into_connection_info()
            .map_err(UrlProblem::from_client)?;
        sentinels.push(info);
    }
    let primary_auth = sentinels[0].redis_settings().clone();
    if let Some(password) = sentinel_password {
        sentinels = sentinels
            .into_iter()
            .map(|info| {
                let auth = info.redis_settings().clone().set_password(password);
                info.set_redis_settings(auth)
            })
            .collect();
    }
    Ok(SentinelUrl {
        sentinels,
        primary_name: name.to_owned(),
        tls,
        primary_auth,
    })
}

impl SentinelUrl {
    /// Whether the sentinels and the primary are reached over TLS.
    pub(super) fn is_tls(&self) -> bool {
        self.tls
    }
}

/// The primary behind the sentinels: its connections, and how to find it again.
pub(super) struct SentinelPrimary {
    /// The sentinels' client; locked by the one look-up under way.
    lookup: tokio::sync::Mutex<SentinelClient>,
    current: Mutex<Option<Primary>>,
    generation: AtomicU64,
    timeouts: RedisTimeouts,
    wait: ReplicaWait,
    /// `host:port` of the sentinels and the primary's name, for logs (no credentials).
    pub(super) shown: String,
}

/// One primary that the sentinels named: the shared connection and the deletes' own.
#[derive(Clone)]
struct Primary {
    generation: u64,
    manager: ConnectionManager,
    ending: Arc<Ending>,
    address: String,
}

impl SentinelPrimary {
    /// The store's view of the sentinels of `url`; connects nothing yet.
    pub(super) fn new(
        url: SentinelUrl,
        timeouts: RedisTimeouts,
        wait: ReplicaWait,
    ) -> Result<Self, UrlProblem> {
        let shown = format!(
            "{} (primary {})",
            url.sentinels
                .iter()
                .map(|info| info.addr().to_string())
                .collect::<Vec<_>>()
                .join(","),
            url.primary_name
        );
        let mut node =
            SentinelNodeConnectionInfo::default().set_redis_connection_info(url.primary_auth);
        if url.tls {
            node = node.set_tls_mode(TlsMode::Secure);
        }
        let client = SentinelClient::build(
            url.sentinels,
            url.primary_name,
            Some(node),
            SentinelServerType::Master,
        )
        .map_err(UrlProblem::from_client)?;
        Ok(Self {
            lookup: tokio::sync::Mutex::new(client),
            current: Mutex::new(None),
            generation: AtomicU64::new(0),
            timeouts,
            wait,
            shown,
        })
    }

    fn current(&self) -> Option<Primary> {
        // Only whole assignments happen under this lock: nothing to repair after a panic.
        self.current
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Forgets the primary of `generation` (not a newer one another call found meanwhile).
    fn forget(&self, generation: u64) {
        let mut current = self.current.lock().unwrap_or_else(PoisonError::into_inner);
        if current.as_ref().is_some_and(|p| p.generation == generation) {
            tracing::warn!(
                sentinels = %self.shown,
                "the Redis primary stopped answering as primary; asking the sentinels again"
            );
            *current = None;
        }
    }

    /// The primary, asking the sentinels first when none is known. One look-up at a time,
    /// bounded by the connect timeout: a call that finds one under way shares its outcome
    /// rather than start another, so no call waits for more than one look-up.
    async fn primary(&self) -> Result<Primary, StoreError> {
        const CONTEXT: &str = "asking the Redis sentinels for the primary";
        if let Some(primary) = self.current() {
            return Ok(primary);
        }
        let Ok(mut client) = self.lookup.try_lock() else {
            drop(self.lookup.lock().await);
            return self.current().ok_or_else(|| {
                StoreError::unavailable(CONTEXT, "no primary found by a concurrent look-up")
            });
        };
        if let Some(primary) = self.current() {
            return Ok(primary);
        }
        let found =
            match tokio::time::timeout(self.timeouts.connect, client.async_get_client()).await {
                Ok(Ok(found)) => found,
                Ok(Err(e)) => return Err(StoreError::unavailable(CONTEXT, e)),
                Err(elapsed) => return Err(StoreError::unavailable(CONTEXT, elapsed)),
            };
        let address = found.get_connection_info().addr().to_string();
        let manager =
            ConnectionManager::new_lazy_with_config(found.clone(), manager_config(self.timeouts))
                .map_err(|e| StoreError::unavailable(CONTEXT, e))?;
        let primary = Primary {
            generation: self.generation.fetch_add(1, Ordering::Relaxed) + 1,
            manager,
            ending: Arc::new(Ending::new(found, self.timeouts, self.wait)),
            address,
        };
        tracing::info!(sentinels = %self.shown, primary = %primary.address, "found the Redis primary");
        *self.current.lock().unwrap_or_else(PoisonError::into_inner) = Some(primary.clone());
        Ok(primary)
    }

    /// Runs `op` on the primary's shared connection. When it fails because the primary is
    /// gone, refuses, or has been demoted (`READONLY`), the primary is forgotten and looked
    /// up again, and `op` is sent once more to the one found, if `repeat` allows it (a refused
    /// or read-only command did nothing, so it may always be sent again).
    pub(super) async fn run<T: FromRedisValue>(
        &self,
        context: &'static str,
        repeat: Repeat,
        op: Op<'_>,
    ) -> Result<T, StoreError> {
        let primary = self.primary().await?;
        let error = match op.send(&mut primary.manager.clone()).await {
            Ok(value) => return Ok(value),
            Err(error) => error,
        };
        if !moved(&error) {
            return Err(StoreError::unavailable(context, error));
        }
        self.forget(primary.generation);
        if !(is_read_only(&error) || repeat.may_retry(&error)) {
            return Err(StoreError::unavailable(context, error));
        }
        let primary = self.primary().await?;
        op.send(&mut primary.manager.clone())
            .await
            .map_err(|e| StoreError::unavailable(context, e))
    }

    /// Sends a delete that ends sessions, and its `WAIT`, on the primary's own connection for
    /// these; after a broken or refused connection, or `READONLY`, sends both again to the
    /// primary the sentinels name now, before answering (deleting twice is harmless).
    pub(super) async fn end_sessions<T: FromRedisValue>(
        &self,
        context: &'static str,
        op: Op<'_>,
    ) -> Result<T, StoreError> {
        let primary = self.primary().await?;
        let error = match primary.ending.send(context, op).await {
            Ok(value) => return Ok(value),
            Err(Failed::Redis(error)) if moved(&error) => error,
            Err(failed) => return Err(failed.into_store_error(context)),
        };
        tracing::warn!(
            sentinels = %self.shown,
            error = %error,
            "a delete that ends a session failed on the Redis primary; sending it to the \
             primary the sentinels name now"
        );
        self.forget(primary.generation);
        let primary = self.primary().await?;
        primary
            .ending
            .send(context, op)
            .await
            .map_err(|failed| failed.into_store_error(context))
    }

    /// Whether deletes that end sessions wait for replicas.
    pub(super) fn waits(&self) -> bool {
        self.wait.waits()
    }
}

/// Whether `error` says the primary may be elsewhere now: the connection was refused, reset
/// or lost, or the server has become a replica.
fn moved(error: &RedisError) -> bool {
    is_read_only(error)
        || error.is_connection_refusal()
        || error.is_connection_dropped()
        || (error.is_unrecoverable_error() && !error.is_timeout())
}

fn is_read_only(error: &RedisError) -> bool {
    error.code() == Some("READONLY")
        || matches!(
            error.kind(),
            redis::ErrorKind::Server(redis::ServerErrorKind::ReadOnly)
        )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addresses(url: &SentinelUrl) -> Vec<String> {
        url.sentinels.iter().map(|i| i.addr().to_string()).collect()
    }

    #[test]
    fn sentinel_urls_take_hosts_with_default_ports_and_the_primary_name() {
        let url = parse(
            "redis+sentinel://a.example,b.example:26380,[::1]/mymaster",
            None,
        )
        .unwrap_or_else(|p| panic!("{}", p.reason));
        assert_eq!(url.primary_name, "mymaster");
        assert!(!url.is_tls());
        assert_eq!(
            addresses(&url),
            ["a.example:26379", "b.example:26380", "::1:26379"]
        );
    }

    #[test]
    fn the_urls_password_is_the_primarys_and_the_sentinel_password_replaces_it_for_sentinels() {
        let url = parse(
            "rediss+sentinel://app:p%40ss@s1:1,s2:2/cache",
            Some("sentinel-pw"),
        )
        .unwrap_or_else(|p| panic!("{}", p.reason));
        assert!(url.is_tls());
        assert_eq!(url.primary_auth.username(), Some("app"));
        assert_eq!(url.primary_auth.password(), Some("p@ss"));
        for sentinel in &url.sentinels {
            assert_eq!(sentinel.redis_settings().password(), Some("sentinel-pw"));
        }
    }

    #[test]
    fn sentinel_urls_without_a_name_with_empty_hosts_or_a_fragment_are_refused() {
        for bad in [
            "redis+sentinel://a:26379",
            "redis+sentinel://a:26379/",
            "redis+sentinel://a:26379,,b/mymaster",
            "redis+sentinel://a:26379/my/master",
            "rediss+sentinel://a:26379/mymaster#insecure",
            "redis+sentinel://a:notaport/mymaster",
        ] {
            assert!(parse(bad, None).is_err(), "{bad} was accepted");
        }
    }
}
