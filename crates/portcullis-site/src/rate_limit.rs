//! Failed log-in limits (`LOGIN_RATE_LIMIT`, default 10 per 3 minutes, as Rails 8's
//! authentication generator does): a [`RateLimiter`] trait, the in-process
//! [`MemoryRateLimiter`] (the `dev` profile), and [`RedisRateLimiter`] (the `redis` profile), which
//! keeps the counts in Redis so that every process of the site shares them.
//!
//! Each key (`name:<user name>`, `addr:<client address>`) keeps the times of its recent
//! failures: a sliding window log. A key with `max` failures inside the window is limited
//! until the oldest of them leaves the window.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use portcullis::clock::Clock;
use portcullis::config::RateLimit;
use portcullis::store::RedisStore;

/// Keys tracked before expired ones are swept out, so hostile input cannot grow memory
/// without bound; past twice this, the oldest keys are dropped.
const SWEEP_ABOVE: usize = 10_000;

/// Whether another attempt may go ahead.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Decision {
    /// Go ahead.
    Allowed,
    /// Refuse; try again after this long (the `Retry-After` header).
    Limited {
        /// Time until the oldest counted failure leaves the window.
        retry_after: Duration,
    },
}

/// Counts failures per key and says when a key has had too many.
#[async_trait]
pub trait RateLimiter: Send + Sync + std::fmt::Debug + 'static {
    /// Whether `key` may try again now.
    async fn check(&self, key: &str) -> Decision;
    /// Records a failure for `key`.
    async fn record_failure(&self, key: &str);
    /// Forgets `key`'s failures (after a success).
    async fn reset(&self, key: &str);
}

/// A [`RateLimiter`] in this process's memory: right for one process; behind a load balancer
/// each process counts on its own.
#[derive(Debug)]
pub struct MemoryRateLimiter {
    limit: RateLimit,
    clock: Arc<dyn Clock>,
    failures: Mutex<HashMap<String, VecDeque<SystemTime>>>,
}

impl MemoryRateLimiter {
    /// A limiter allowing `limit.max` failures per `limit.window`, reading time from `clock`.
    #[must_use]
    pub fn new(limit: RateLimit, clock: Arc<dyn Clock>) -> Self {
        Self {
            limit,
            clock,
            failures: Mutex::new(HashMap::new()),
        }
    }

    /// Drops failures older than the window, then keys with none left.
    fn sweep(failures: &mut HashMap<String, VecDeque<SystemTime>>, cutoff: SystemTime) {
        for times in failures.values_mut() {
            while times.front().is_some_and(|&t| t <= cutoff) {
                times.pop_front();
            }
        }
        failures.retain(|_, times| !times.is_empty());
    }

    fn cutoff(&self, now: SystemTime) -> SystemTime {
        now.checked_sub(self.limit.window)
            .unwrap_or(SystemTime::UNIX_EPOCH)
    }
}

#[async_trait]
impl RateLimiter for MemoryRateLimiter {
    async fn check(&self, key: &str) -> Decision {
        let now = self.clock.now();
        let cutoff = self.cutoff(now);
        let failures = self.failures.lock().unwrap_or_else(PoisonError::into_inner);
        let Some(times) = failures.get(key) else {
            return Decision::Allowed;
        };
        let recent: Vec<SystemTime> = times.iter().copied().filter(|&t| t > cutoff).collect();
        if recent.len() < self.limit.max as usize {
            return Decision::Allowed;
        }
        // Allowed again once enough of the counted failures have left the window.
        let freeing = recent[recent.len() - self.limit.max as usize];
        let retry_after = (freeing + self.limit.window)
            .duration_since(now)
            .unwrap_or_default()
            .max(Duration::from_secs(1));
        Decision::Limited { retry_after }
    }

    async fn record_failure(&self, key: &str) {
        let now = self.clock.now();
        let cutoff = self.cutoff(now);
        let mut failures = self.failures.lock().unwrap_or_else(PoisonError::into_inner);
        if failures.len() > SWEEP_ABOVE && !failures.contains_key(key) {
            Self::sweep(&mut failures, cutoff);
            if failures.len() > 2 * SWEEP_ABOVE {
                failures.clear();
            }
        }
        let times = failures.entry(key.to_owned()).or_default();
        while times.front().is_some_and(|&t| t <= cutoff) {
            times.pop_front();
        }
        times.push_back(now);
        // Only the newest `max` failures can matter.
        while times.len() > self.limit.max as usize {
            times.pop_front();
        }
    }

    async fn reset(&self, key: &str) {
        let mut failures = self.failures.lock().unwrap_or_else(PoisonError::into_inner);
        failures.remove(key);
    }
}

/// Redis keys of the limiter: apart from the sessions' prefix, so the two never collide.
const REDIS_KEY_PREFIX: &str = "portcullis:login-failures:";

/// Records a failure at Redis's own clock (so every machine agrees) for a window of ARGV[1] ms:
/// a sorted set of failure times (ARGV[2] makes each member unique), pruned to the window and
/// to the newest ARGV[3] failures, expiring with the window.
const RECORD_SCRIPT: &str = r"
local t = redis.call('TIME')
local now = t[1] * 1000 + math.floor(t[2] / 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - tonumber(ARGV[1]))
redis.call('ZADD', KEYS[1], now, now .. ':' .. ARGV[2])
redis.call('ZREMRANGEBYRANK', KEYS[1], 0, -1 - tonumber(ARGV[3]))
redis.call('PEXPIRE', KEYS[1], ARGV[1])
return 1
";

/// Milliseconds until KEYS[1] may try again (0: now), for a window of ARGV[1] ms and at most
/// ARGV[2] failures in it.
const CHECK_SCRIPT: &str = r"
local t = redis.call('TIME')
local now = t[1] * 1000 + math.floor(t[2] / 1000)
local window, max = tonumber(ARGV[1]), tonumber(ARGV[2])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - window)
local n = redis.call('ZCARD', KEYS[1])
if n < max then return 0 end
local freeing = redis.call('ZRANGE', KEYS[1], n - max, n - max, 'WITHSCORES')
return tonumber(freeing[2]) + window - now
";

/// A [`RateLimiter`] whose counts live in Redis, shared by every process of the site. When Redis
/// does not answer, `check` refuses (fail closed) and the failure is logged.
#[derive(Debug)]
pub struct RedisRateLimiter {
    limit: RateLimit,
    redis: Arc<RedisStore>,
    record: redis::Script,
    check: redis::Script,
}

impl RedisRateLimiter {
    /// A limiter allowing `limit.max` failures per `limit.window`, counted in `redis`.
    #[must_use]
    pub fn new(limit: RateLimit, redis: Arc<RedisStore>) -> Self {
        Self {
            limit,
            redis,
            record: redis::Script::new(RECORD_SCRIPT),
            check: redis::Script::new(CHECK_SCRIPT),
        }
    }

    fn window_ms(&self) -> Vec<u8> {
        self.limit.window.as_millis().to_string().into_bytes()
    }
}

#[async_trait]
impl RateLimiter for RedisRateLimiter {
    async fn check(&self, key: &str) -> Decision {
        let redis_key = format!("{REDIS_KEY_PREFIX}{key}");
        let max = self.limit.max.to_string();
        let args: [&[u8]; 2] = [&self.window_ms(), max.as_bytes()];
        match self
            .redis
            .run_script::<i64>(&self.check, &[&redis_key], &args)
            .await
        {
            Ok(wait) if wait <= 0 => Decision::Allowed,
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

    async fn record_failure(&self, key: &str) {
        let redis_key = format!("{REDIS_KEY_PREFIX}{key}");
        let mut nonce = [0u8; 8];
        if getrandom::fill(&mut nonce).is_err() {
            nonce = [0; 8];
        }
        let unique = nonce.iter().map(|b| format!("{b:02x}")).collect::<String>();
        let max = self.limit.max.to_string();
        let args: [&[u8]; 3] = [&self.window_ms(), unique.as_bytes(), max.as_bytes()];
        if let Err(error) = self
            .redis
            .run_script::<i64>(&self.record, &[&redis_key], &args)
            .await
        {
            tracing::error!(%error, "could not count a failed log-in in Redis");
        }
    }

    async fn reset(&self, key: &str) {
        let redis_key = format!("{REDIS_KEY_PREFIX}{key}");
        let script = redis::Script::new("return redis.call('DEL', KEYS[1])");
        if let Err(error) = self
            .redis
            .run_script::<i64>(&script, &[&redis_key], &[])
            .await
        {
            tracing::error!(%error, "could not reset log-in failures in Redis");
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

    #[tokio::test]
    async fn the_limit_applies_per_key_and_lifts_as_failures_age() {
        let clock = ManualClock::new();
        let limiter = limiter(&clock);
        for _ in 0..3 {
            assert_eq!(limiter.check("a").await, Decision::Allowed);
            limiter.record_failure("a").await;
            clock.advance(Duration::from_secs(10));
        }
        assert_eq!(
            limiter.check("a").await,
            Decision::Limited {
                retry_after: Duration::from_secs(30)
            }
        );
        assert_eq!(
            limiter.check("b").await,
            Decision::Allowed,
            "other keys are free"
        );
        clock.advance(Duration::from_secs(30));
        assert_eq!(limiter.check("a").await, Decision::Allowed);
    }

    #[tokio::test]
    async fn reset_forgets_a_key() {
        let clock = ManualClock::new();
        let limiter = limiter(&clock);
        for _ in 0..3 {
            limiter.record_failure("a").await;
        }
        assert!(matches!(limiter.check("a").await, Decision::Limited { .. }));
        limiter.reset("a").await;
        assert_eq!(limiter.check("a").await, Decision::Allowed);
    }
}
