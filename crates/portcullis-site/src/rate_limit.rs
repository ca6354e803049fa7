//! Failed log-in limits (`LOGIN_RATE_LIMIT`, default 10 per 3 minutes, as Rails 8's
//! authentication generator does): a [`RateLimiter`] trait, so that a Redis-backed limiter
//! can serve many processes later, and the in-process [`MemoryRateLimiter`].
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
