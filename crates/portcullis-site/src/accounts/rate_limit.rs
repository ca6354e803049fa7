//! Log-in limits (`LOGIN_RATE_LIMIT`, default 10 failures per 3 minutes, as Rails 8's
//! authentication generator does): a [`RateLimiter`] trait, the in-process
//! [`MemoryRateLimiter`] (the `dev` profile), and [`RedisRateLimiter`] (the `redis` profile),
//! which keeps the counts in Redis so that every process of the site shares them.
//!
//! Each key (`name:<user name>`, `addr:<client address>`, an IPv6 client by its /64:
//! [`address_key`]) keeps the times of its recent
//! attempts: a sliding window log. An attempt is counted **before** the password is checked,
//! in the same atomic step as the limit check ([`RateLimiter::attempt`]), so a burst of
//! concurrent guesses cannot all pass the check before any of them is counted; a successful
//! attempt is then taken back ([`RateLimiter::forgive`]). A key with `max` attempts inside the
//! window is limited until the oldest of them leaves it.
//!
//! [`LoginGuard`] is how a route uses them: a log-in and a password change (guessing the
//! current password is guessing a log-in) count the same two keys the same way, or, from a
//! browser with the user's device cookie (`device_cookie.rs`), the device's key alone.

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use axum::http::{HeaderValue, header};
use axum::response::Response;
use portcullis::clock::Clock;
use portcullis::store::RedisStore;

use crate::accounts::device_cookie::KnownDevice;
use crate::accounts::names;
use crate::config::RateLimit;

/// Keys the in-memory limiter tracks at most. When a new key finds it full, expired keys are
/// swept out and, if that is not enough, the [`EVICT_BATCH`] keys whose last attempt is oldest
/// are dropped: new clients are always counted (refusing them would lock everybody out once a
/// flood of names filled it), and what a flood pushes out first is the oldest counts.
const MAX_KEYS: usize = 20_000;
/// Keys evicted at once from a full limiter: a tenth, so the scan for the oldest runs once per
/// 2,000 new keys, not on every one.
const EVICT_BATCH: usize = MAX_KEYS / 10;
/// Longest user name kept as a rate-limit key (valid names are shorter).
const MAX_KEY_NAME_CHARS: usize = 64;

/// Bits of an IPv6 address that name one client: a /64 is the smallest network a provider
/// hands out (RFC 6177), so one user holds 2^64 addresses of it and the limit keys on the /64.
const IPV6_CLIENT_PREFIX: u32 = 64;

/// The rate-limit key of a client address: `addr:192.0.2.7` for IPv4 (IPv4-mapped IPv6
/// included), `addr:2001:db8:1:2::/64` for IPv6, in every per-address limit.
pub(crate) fn address_key(client: IpAddr) -> String {
    match client.to_canonical() {
        IpAddr::V4(v4) => format!("addr:{v4}"),
        IpAddr::V6(v6) => {
            let mask = u128::MAX << (128 - IPV6_CLIENT_PREFIX);
            let network = std::net::Ipv6Addr::from(v6.to_bits() & mask);
            format!("addr:{network}/{IPV6_CLIENT_PREFIX}")
        }
    }
}

/// One counted attempt, to take back with [`RateLimiter::forgive`] when it succeeds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Ticket(String);

/// Whether an attempt may go ahead.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Decision {
    /// Go ahead; the attempt is counted.
    Allowed(Ticket),
    /// Refuse; try again after this long (the `Retry-After` header). Nothing was counted.
    Limited {
        /// Time until the oldest counted attempt leaves the window.
        retry_after: Duration,
    },
}

/// Counts attempts per key and says when a key has had too many.
#[async_trait]
pub(crate) trait RateLimiter: Send + Sync + std::fmt::Debug + 'static {
    /// Checks `key` and, if it may go ahead, counts this attempt, in one atomic step.
    async fn attempt(&self, key: &str) -> Decision;
    /// Takes back one counted attempt (it succeeded, or was never made).
    async fn forgive(&self, key: &str, ticket: &Ticket);
    /// Forgets all of `key`'s attempts (after a successful log-in under that name).
    async fn reset(&self, key: &str);
}

/// The attempts one password check counted, on the user name (`name:<name>`, lower-cased) and on
/// the client address (`addr:<address>`), before the password is checked.
///
/// Dropping the guard keeps them counted: that is what a wrong password wants. A right one
/// takes them back ([`LoginGuard::forgive`], [`LoginGuard::logged_in`]).
#[derive(Debug)]
pub(crate) struct LoginGuard<'l> {
    limiter: &'l dyn RateLimiter,
    name_key: String,
    tickets: Vec<(String, Ticket)>,
}

/// Too many failed attempts on the name or the address: the answer is a 429 with
/// `Retry-After`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct TooManyAttempts {
    retry_after: Duration,
}

impl<'l> LoginGuard<'l> {
    /// Counts one attempt on `name` and one on `client`, checking the limits in the same step;
    /// when either is over its limit, takes back the attempt counted on the other and answers
    /// the longer wait.
    pub(crate) async fn begin(
        limiter: &'l dyn RateLimiter,
        name: &str,
        client: IpAddr,
    ) -> Result<Self, TooManyAttempts> {
        // The name's account key (NFKC, case folding, `names.rs`): every way of typing one
        // account's name (`JÜRGEN`, a decomposed `ü`, fullwidth letters) counts on one key.
        let name: String = names::key(name).chars().take(MAX_KEY_NAME_CHARS).collect();
        let name_key = format!("name:{name}");
        let mut guard = Self {
            limiter,
            name_key: name_key.clone(),
            tickets: Vec::with_capacity(2),
        };
        let mut wait = None;
        for key in [name_key, address_key(client)] {
            match limiter.attempt(&key).await {
                Decision::Allowed(ticket) => guard.tickets.push((key, ticket)),
                Decision::Limited { retry_after } => wait = wait.max(Some(retry_after)),
            }
        }
        match wait {
            None => Ok(guard),
            Some(retry_after) => {
                guard.forgive().await;
                Err(TooManyAttempts { retry_after })
            }
        }
    }

    /// Counts one attempt on a browser known to `name` by its device cookie, on the device's
    /// own key only: the name's and the address's counts (a stranger's failures) neither block
    /// it nor grow from it.
    pub(crate) async fn on_device(
        limiter: &'l dyn RateLimiter,
        device: &KnownDevice,
    ) -> Result<Self, TooManyAttempts> {
        let key = device.limit_key();
        match limiter.attempt(&key).await {
            Decision::Allowed(ticket) => Ok(Self {
                limiter,
                name_key: key.clone(),
                tickets: vec![(key, ticket)],
            }),
            Decision::Limited { retry_after } => Err(TooManyAttempts { retry_after }),
        }
    }

    /// [`LoginGuard::on_device`] for a known device, else [`LoginGuard::begin`].
    pub(crate) async fn for_client(
        limiter: &'l dyn RateLimiter,
        device: Option<&KnownDevice>,
        name: &str,
        client: IpAddr,
    ) -> Result<Self, TooManyAttempts> {
        match device {
            Some(device) => Self::on_device(limiter, device).await,
            None => Self::begin(limiter, name, client).await,
        }
    }

    /// The password was right, so this was no guess: takes the attempts back.
    pub(crate) async fn forgive(self) {
        for (key, ticket) in &self.tickets {
            self.limiter.forgive(key, ticket).await;
        }
    }

    /// A log-in succeeded: forgets every failure counted on the name (on the device, for a
    /// known device), then takes this attempt back.
    pub(crate) async fn logged_in(self) {
        self.limiter.reset(&self.name_key).await;
        self.forgive().await;
    }
}

impl TooManyAttempts {
    /// A refusal that lifts after `retry_after`.
    pub(crate) fn after(retry_after: Duration) -> Self {
        Self { retry_after }
    }

    /// The wait in whole seconds, at least one, as the page and `Retry-After` say it.
    pub(crate) fn seconds(self) -> u64 {
        self.retry_after.as_secs().max(1)
    }

    /// `response` (the page that says so) with the `Retry-After` header.
    pub(crate) fn with_retry_after(self, mut response: Response) -> Response {
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(self.seconds()));
        response
    }
}

/// A [`RateLimiter`] in this process's memory: right for one process; behind a load balancer
/// each process counts on its own.
#[derive(Debug)]
pub(crate) struct MemoryRateLimiter {
    limit: RateLimit,
    clock: Arc<dyn Clock>,
    attempts: Mutex<HashMap<String, VecDeque<(SystemTime, u64)>>>,
    next_ticket: AtomicU64,
}

impl MemoryRateLimiter {
    /// A limiter allowing `limit.max` attempts per `limit.window`, reading time from `clock`.
    #[must_use]
    pub(crate) fn new(limit: RateLimit, clock: Arc<dyn Clock>) -> Self {
        Self {
            limit,
            clock,
            attempts: Mutex::new(HashMap::new()),
            next_ticket: AtomicU64::new(0),
        }
    }

    fn max(&self) -> usize {
        self.limit.max as usize
    }
}

/// Drops attempts at or before `cutoff`.
fn prune(times: &mut VecDeque<(SystemTime, u64)>, cutoff: SystemTime) {
    while times.front().is_some_and(|&(t, _)| t <= cutoff) {
        times.pop_front();
    }
}

/// Sweeps out expired keys and, if the map is still full, the [`EVICT_BATCH`] keys whose last
/// attempt is oldest (a key with none left goes first).
fn make_room(attempts: &mut HashMap<String, VecDeque<(SystemTime, u64)>>, cutoff: SystemTime) {
    attempts.retain(|_, times| {
        prune(times, cutoff);
        !times.is_empty()
    });
    if attempts.len() < MAX_KEYS {
        return;
    }
    let last = |times: &VecDeque<(SystemTime, u64)>| {
        times.back().map_or(SystemTime::UNIX_EPOCH, |&(t, _)| t)
    };
    let mut ages: Vec<SystemTime> = attempts.values().map(last).collect();
    let (older, &mut newest_evicted, _) = ages.select_nth_unstable(EVICT_BATCH - 1);
    // Every key older than the cut goes; of those at the cut, as many as make up the batch.
    let mut at_the_cut = EVICT_BATCH - older.iter().filter(|&&t| t < newest_evicted).count();
    attempts.retain(|_, times| {
        let age = last(times);
        let evict = age < newest_evicted || (age == newest_evicted && at_the_cut > 0);
        if age == newest_evicted && evict {
            at_the_cut -= 1;
        }
        !evict
    });
}

#[async_trait]
impl RateLimiter for MemoryRateLimiter {
    async fn attempt(&self, key: &str) -> Decision {
        let now = self.clock.now();
        let window = self.limit.window;
        let cutoff = now.checked_sub(window).unwrap_or(SystemTime::UNIX_EPOCH);
        let mut attempts = self.attempts.lock().unwrap_or_else(PoisonError::into_inner);
        if attempts.len() >= MAX_KEYS && !attempts.contains_key(key) {
            make_room(&mut attempts, cutoff);
        }
        let times = attempts.entry(key.to_owned()).or_default();
        prune(times, cutoff);
        if times.len() >= self.max() {
            // Allowed again once enough of the counted attempts have left the window.
            let freeing = times[times.len() - self.max()].0;
            let retry_after = (freeing + window)
                .duration_since(now)
                .unwrap_or_default()
                .max(Duration::from_secs(1));
            return Decision::Limited { retry_after };
        }
        let ticket = self.next_ticket.fetch_add(1, Ordering::Relaxed);
        times.push_back((now, ticket));
        Decision::Allowed(Ticket(ticket.to_string()))
    }

    async fn forgive(&self, key: &str, ticket: &Ticket) {
        let mut attempts = self.attempts.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(times) = attempts.get_mut(key) {
            times.retain(|&(_, t)| t.to_string() != ticket.0);
        }
    }

    async fn reset(&self, key: &str) {
        let mut attempts = self.attempts.lock().unwrap_or_else(PoisonError::into_inner);
        attempts.remove(key);
    }
}

/// Redis keys of the log-in limiter: apart from the sessions' prefix, so the two never collide.
pub(crate) const LOGIN_REDIS_PREFIX: &str = "portcullis:login-attempts:";
/// Redis keys of the registration limits.
pub(crate) const REGISTER_REDIS_PREFIX: &str = "portcullis:register-attempts:";

/// Checks and counts one attempt on `KEYS[1]`, on Redis's own clock so every machine agrees: a
/// sorted set of attempt times pruned to the window of `ARGV[1]` ms; with `ARGV[2]` or more left,
/// answers the milliseconds to wait; otherwise adds `ARGV[3]` (the ticket) and answers 0.
const ATTEMPT_SCRIPT: &str = r"
local t = redis.call('TIME')
local now = t[1] * 1000 + math.floor(t[2] / 1000)
local window, max = tonumber(ARGV[1]), tonumber(ARGV[2])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - window)
local n = redis.call('ZCARD', KEYS[1])
if n >= max then
  local freeing = redis.call('ZRANGE', KEYS[1], n - max, n - max, 'WITHSCORES')
  return math.max(1, tonumber(freeing[2]) + window - now)
end
redis.call('ZADD', KEYS[1], now, ARGV[3])
redis.call('PEXPIRE', KEYS[1], window)
return 0
";

/// A [`RateLimiter`] whose counts live in Redis, shared by every process of the site. When Redis
/// does not answer, attempts are refused (fail closed) and the failure is logged.
#[derive(Debug)]
pub(crate) struct RedisRateLimiter {
    limit: RateLimit,
    redis: Arc<RedisStore>,
    prefix: &'static str,
    attempt: redis::Script,
    forgive: redis::Script,
    reset: redis::Script,
}

impl RedisRateLimiter {
    /// A limiter allowing `limit.max` attempts per `limit.window`, counted in `redis` under
    /// keys that start with `prefix`.
    #[must_use]
    pub(crate) fn new(limit: RateLimit, redis: Arc<RedisStore>, prefix: &'static str) -> Self {
        Self {
            limit,
            redis,
            prefix,
            attempt: redis::Script::new(ATTEMPT_SCRIPT),
            forgive: redis::Script::new("return redis.call('ZREM', KEYS[1], ARGV[1])"),
            reset: redis::Script::new("return redis.call('DEL', KEYS[1])"),
        }
    }
}

#[async_trait]
impl RateLimiter for RedisRateLimiter {
    async fn attempt(&self, key: &str) -> Decision {
        let redis_key = format!("{}{key}", self.prefix);
        let window = self.limit.window.as_millis().to_string();
        let max = self.limit.max.to_string();
        let mut random = [0u8; 12];
        if getrandom::fill(&mut random).is_err() {
            tracing::error!("no randomness for a log-in attempt ticket; refusing the attempt");
            return Decision::Limited {
                retry_after: Duration::from_secs(5),
            };
        }
        let ticket: String = random.iter().map(|b| format!("{b:02x}")).collect();
        let args: [&[u8]; 3] = [window.as_bytes(), max.as_bytes(), ticket.as_bytes()];
        match self
            .redis
            .run_script::<i64>(&self.attempt, &[&redis_key], &args)
            .await
        {
            Ok(0) => Decision::Allowed(Ticket(ticket)),
            Ok(wait) => Decision::Limited {
                retry_after: Duration::from_millis(wait.unsigned_abs()).max(Duration::from_secs(1)),
            },
            Err(error) => {
                tracing::error!(%error, "log-in limit unavailable; refusing log-ins until Redis answers");
                Decision::Limited {
                    retry_after: Duration::from_secs(5),
                }
            }
        }
    }

    async fn forgive(&self, key: &str, ticket: &Ticket) {
        let redis_key = format!("{}{key}", self.prefix);
        let args: [&[u8]; 1] = [ticket.0.as_bytes()];
        if let Err(error) = self
            .redis
            .run_script::<i64>(&self.forgive, &[&redis_key], &args)
            .await
        {
            tracing::error!(%error, "could not take back a log-in attempt in Redis");
        }
    }

    async fn reset(&self, key: &str) {
        let redis_key = format!("{}{key}", self.prefix);
        if let Err(error) = self
            .redis
            .run_script::<i64>(&self.reset, &[&redis_key], &[])
            .await
        {
            tracing::error!(%error, "could not reset log-in attempts in Redis");
        }
    }
}

#[cfg(test)]
mod tests {
    use portcullis::clock::ManualClock;

    use super::*;

    fn limiter(clock: &ManualClock) -> MemoryRateLimiter {
        let limit = RateLimit {
            max: 3,
            window: Duration::from_secs(60),
        };
        MemoryRateLimiter::new(limit, Arc::new(clock.clone()))
    }

    fn allowed(decision: &Decision) -> bool {
        matches!(decision, Decision::Allowed(_))
    }

    #[tokio::test]
    async fn the_limit_applies_per_key_and_lifts_as_attempts_age() {
        let clock = ManualClock::new();
        let limiter = limiter(&clock);
        for _ in 0..3 {
            assert!(allowed(&limiter.attempt("a").await));
            clock.advance(Duration::from_secs(10));
        }
        assert_eq!(
            limiter.attempt("a").await,
            Decision::Limited {
                retry_after: Duration::from_secs(30)
            }
        );
        assert!(
            allowed(&limiter.attempt("b").await),
            "other keys are unaffected"
        );
        clock.advance(Duration::from_secs(31));
        assert!(
            allowed(&limiter.attempt("a").await),
            "the oldest attempt left the window"
        );
    }

    /// Tasks in a burst, and the longest a burst may take (it takes milliseconds).
    const BURST: usize = 50;
    const BURST_PATIENCE: Duration = Duration::from_secs(20);

    /// [`BURST`] attempts on one key from as many tasks, released at once by a barrier on a
    /// multi-thread runtime; how many were allowed.
    async fn burst(limiter: Arc<dyn RateLimiter>) -> usize {
        let start = Arc::new(tokio::sync::Barrier::new(BURST));
        let tries: Vec<_> = (0..BURST)
            .map(|_| {
                let limiter = Arc::clone(&limiter);
                let start = Arc::clone(&start);
                tokio::spawn(async move {
                    start.wait().await;
                    limiter.attempt("burst").await
                })
            })
            .collect();
        let all = futures_util::future::join_all(tries);
        let decisions = tokio::time::timeout(BURST_PATIENCE, all)
            .await
            .expect("the burst is answered in time");
        decisions
            .into_iter()
            .map(|d| usize::from(allowed(&d.expect("no attempt panicked"))))
            .sum()
    }

    /// The bug the burst must catch: a limiter that checks, lets the others check too (the
    /// barrier stands for any await point, a Redis round trip for one), and only then counts.
    #[derive(Debug)]
    struct CheckThenCount {
        max: usize,
        counted: Mutex<usize>,
        all_checked: tokio::sync::Barrier,
    }

    #[async_trait]
    impl RateLimiter for CheckThenCount {
        async fn attempt(&self, _key: &str) -> Decision {
            let under = *self.counted.lock().unwrap() < self.max;
            self.all_checked.wait().await;
            if !under {
                return Decision::Limited {
                    retry_after: Duration::from_secs(1),
                };
            }
            *self.counted.lock().unwrap() += 1;
            Decision::Allowed(Ticket(String::new()))
        }
        async fn forgive(&self, _key: &str, _ticket: &Ticket) {}
        async fn reset(&self, _key: &str) {}
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn concurrent_attempts_cannot_all_pass_before_any_is_counted() {
        let clock = ManualClock::new();
        assert_eq!(
            burst(Arc::new(limiter(&clock))).await,
            3,
            "exactly the limit goes through"
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn the_burst_catches_a_limiter_that_checks_before_it_counts() {
        let split = CheckThenCount {
            max: 3,
            counted: Mutex::new(0),
            all_checked: tokio::sync::Barrier::new(BURST),
        };
        assert_eq!(
            burst(Arc::new(split)).await,
            BURST,
            "every attempt passed the check before any was counted"
        );
    }

    /// A Redis limiter of 3 per minute on a fresh key space of `server`.
    async fn redis_limiter(
        server: &portcullis_testing::RedisServer,
        prefix: &'static str,
    ) -> RedisRateLimiter {
        let store = RedisStore::connect(&server.url(), portcullis::store::RedisTimeouts::default())
            .await
            .expect("the test Redis answers");
        let limit = RateLimit {
            max: 3,
            window: Duration::from_secs(60),
        };
        RedisRateLimiter::new(limit, Arc::new(store), prefix)
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn concurrent_attempts_on_redis_cannot_all_pass_before_any_is_counted() {
        let server = portcullis_testing::RedisServer::start();
        let limiter = redis_limiter(&server, "test:burst:").await;
        assert_eq!(
            burst(Arc::new(limiter)).await,
            3,
            "exactly the limit goes through"
        );
        let counted = server.command(&["ZCARD", "test:burst:burst"]);
        assert!(
            matches!(counted, portcullis_testing::Reply::Integer(3)),
            "Redis holds the three counted attempts: {counted:?}"
        );
    }

    /// The same bug on Redis: one script checks, another counts, with every task's check
    /// between them.
    #[derive(Debug)]
    struct RedisCheckThenCount {
        redis: Arc<RedisStore>,
        all_checked: tokio::sync::Barrier,
    }

    #[async_trait]
    impl RateLimiter for RedisCheckThenCount {
        async fn attempt(&self, key: &str) -> Decision {
            let check = redis::Script::new("return redis.call('ZCARD', KEYS[1])");
            let count = redis::Script::new(
                "redis.call('ZADD', KEYS[1], 0, ARGV[1]) return redis.call('ZCARD', KEYS[1])",
            );
            let key = format!("test:split:{key}");
            let seen: i64 = self.redis.run_script(&check, &[&key], &[]).await.unwrap();
            self.all_checked.wait().await;
            if seen >= 3 {
                return Decision::Limited {
                    retry_after: Duration::from_secs(1),
                };
            }
            let mut ticket = [0u8; 8];
            getrandom::fill(&mut ticket).unwrap();
            let ticket = format!("{ticket:?}");
            let args: [&[u8]; 1] = [ticket.as_bytes()];
            let _: i64 = self.redis.run_script(&count, &[&key], &args).await.unwrap();
            Decision::Allowed(Ticket(ticket))
        }
        async fn forgive(&self, _key: &str, _ticket: &Ticket) {}
        async fn reset(&self, _key: &str) {}
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn the_burst_catches_a_redis_limiter_that_checks_before_it_counts() {
        let server = portcullis_testing::RedisServer::start();
        let store = RedisStore::connect(&server.url(), portcullis::store::RedisTimeouts::default())
            .await
            .expect("the test Redis answers");
        let split = RedisCheckThenCount {
            redis: Arc::new(store),
            all_checked: tokio::sync::Barrier::new(BURST),
        };
        assert_eq!(
            burst(Arc::new(split)).await,
            BURST,
            "every attempt passed the check before any was counted"
        );
    }

    #[tokio::test]
    async fn a_forgiven_attempt_does_not_count_and_reset_forgets_a_key() {
        let clock = ManualClock::new();
        let limiter = limiter(&clock);
        for _ in 0..5 {
            let Decision::Allowed(ticket) = limiter.attempt("ok").await else {
                panic!("successful attempts must never pile up");
            };
            limiter.forgive("ok", &ticket).await;
        }
        for _ in 0..3 {
            limiter.attempt("a").await;
        }
        assert!(!allowed(&limiter.attempt("a").await));
        limiter.reset("a").await;
        assert!(allowed(&limiter.attempt("a").await));
    }

    #[tokio::test]
    async fn a_full_limiter_evicts_its_oldest_keys_instead_of_refusing_new_ones() {
        let clock = ManualClock::new();
        let limiter = limiter(&clock);
        for _ in 0..3 {
            limiter.attempt("name:oldest").await;
        }
        clock.advance(Duration::from_secs(1));
        for i in 0..MAX_KEYS {
            limiter.attempt(&format!("name:flood{i}")).await;
        }
        clock.advance(Duration::from_secs(1));
        for _ in 0..3 {
            limiter.attempt("name:recent").await;
        }
        assert!(
            allowed(&limiter.attempt("name:new").await),
            "a new key is counted, not refused, when the limiter is full"
        );
        assert!(
            !allowed(&limiter.attempt("name:recent").await),
            "the newest counts are kept"
        );
        assert!(
            allowed(&limiter.attempt("name:oldest").await),
            "the oldest key made room"
        );
        let tracked = limiter.attempts.lock().unwrap().len();
        assert!(tracked <= MAX_KEYS, "{tracked} keys tracked");
    }

    #[tokio::test]
    async fn ipv6_clients_share_one_count_per_64_and_ipv4_per_address() {
        let clock = ManualClock::new();
        let limiter = limiter(&clock);
        for host in 1..=3 {
            let client = IpAddr::from([0x2001, 0xdb8, 1, 2, 0, 0, 0, host]);
            let guard = LoginGuard::begin(&limiter, &format!("user{host}"), client).await;
            assert!(guard.is_ok(), "within the limit");
        }
        let same_64 = IpAddr::from([0x2001, 0xdb8, 1, 2, 0xffff, 1, 2, 3]);
        assert!(
            LoginGuard::begin(&limiter, "user9", same_64).await.is_err(),
            "another address of the same /64 shares its count"
        );
        let next_64 = IpAddr::from([0x2001, 0xdb8, 1, 3, 0, 0, 0, 1]);
        assert!(LoginGuard::begin(&limiter, "user8", next_64).await.is_ok());
        assert_eq!(address_key(same_64), "addr:2001:db8:1:2::/64");
        assert_eq!(
            address_key("::ffff:192.0.2.7".parse().unwrap()),
            "addr:192.0.2.7"
        );
        assert_eq!(address_key(IpAddr::from([192, 0, 2, 7])), "addr:192.0.2.7");
    }

    #[tokio::test]
    async fn a_guard_counts_name_and_address_and_a_refusal_takes_back_the_other() {
        let clock = ManualClock::new();
        let limiter = limiter(&clock);
        let client = IpAddr::from([192, 0, 2, 7]);
        for _ in 0..3 {
            let guard = LoginGuard::begin(&limiter, "Ada", client).await;
            assert!(guard.is_ok(), "within the limit");
        }
        let refused = LoginGuard::begin(&limiter, "ADA", IpAddr::from([192, 0, 2, 8])).await;
        assert_eq!(
            refused.err().map(TooManyAttempts::seconds),
            Some(60),
            "the name is over its limit, in any case"
        );
        assert!(
            allowed(&limiter.attempt("addr:192.0.2.8").await),
            "the refused attempt was taken back from the other address"
        );
    }

    #[tokio::test]
    async fn every_form_of_one_user_name_counts_on_one_key() {
        let clock = ManualClock::new();
        let limiter = limiter(&clock);
        for (i, typed) in ["jürgen", "JÜRGEN", "ju\u{308}rgen"]
            .into_iter()
            .enumerate()
        {
            let client = IpAddr::from([192, 0, 2, u8::try_from(i).unwrap_or(0)]);
            assert!(LoginGuard::begin(&limiter, typed, client).await.is_ok());
        }
        let fullwidth = "\u{ff4a}\u{fc}\u{ff52}\u{ff47}\u{ff45}\u{ff4e}";
        let refused = LoginGuard::begin(&limiter, fullwidth, IpAddr::from([192, 0, 2, 9])).await;
        assert!(refused.is_err(), "fullwidth letters are the same name");
    }

    #[tokio::test]
    async fn a_forgiven_guard_leaves_nothing_counted_and_a_log_in_resets_the_name() {
        let clock = ManualClock::new();
        let limiter = limiter(&clock);
        let client = IpAddr::from([192, 0, 2, 7]);
        for _ in 0..5 {
            let guard = LoginGuard::begin(&limiter, "ada", client).await;
            guard.unwrap().forgive().await;
        }
        for _ in 0..2 {
            // Two wrong passwords: the guards are dropped, the attempts stay counted.
            let _failed = LoginGuard::begin(&limiter, "ada", client).await;
        }
        LoginGuard::begin(&limiter, "ada", client)
            .await
            .unwrap()
            .logged_in()
            .await;
        for _ in 0..3 {
            assert!(allowed(&limiter.attempt("name:ada").await), "name reset");
        }
        assert!(
            allowed(&limiter.attempt("addr:192.0.2.7").await),
            "the two failures on the address still count, but not the log-in"
        );
        assert!(!allowed(&limiter.attempt("addr:192.0.2.7").await));
    }
}
