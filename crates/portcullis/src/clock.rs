//! Time as the session layer sees it: a [`Clock`] trait so that expiry rules can be tested to
//! the second without sleeping, and the [`SystemClock`] used in production.

use std::fmt;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime};

/// A source of the current wall-clock time.
///
/// Production code uses [`SystemClock`]; tests use [`ManualClock`] to move time forward
/// by exact amounts.
pub trait Clock: Send + Sync + fmt::Debug + 'static {
    /// The current time.
    fn now(&self) -> SystemTime;
}

/// The operating system's clock.
#[derive(Clone, Copy, Debug, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> SystemTime {
        SystemTime::now()
    }
}

/// A clock that only moves when told to, for tests.
///
/// ```
/// use portcullis::clock::{Clock, ManualClock};
/// use std::time::Duration;
///
/// let clock = ManualClock::new();
/// let start = clock.now();
/// clock.advance(Duration::from_secs(301));
/// assert_eq!(clock.now().duration_since(start).unwrap(), Duration::from_secs(301));
/// ```
#[derive(Clone, Debug)]
pub struct ManualClock {
    now: Arc<Mutex<SystemTime>>,
}

impl ManualClock {
    /// A clock stopped at the current system time.
    #[must_use]
    pub fn new() -> Self {
        Self::at(SystemTime::now())
    }

    /// A clock stopped at `time`.
    #[must_use]
    pub fn at(time: SystemTime) -> Self {
        Self {
            now: Arc::new(Mutex::new(time)),
        }
    }

    /// Moves the clock forward by `by`.
    pub fn advance(&self, by: Duration) {
        let mut now = self.now.lock().unwrap_or_else(PoisonError::into_inner);
        *now += by;
    }
}

impl Default for ManualClock {
    fn default() -> Self {
        Self::new()
    }
}

impl Clock for ManualClock {
    fn now(&self) -> SystemTime {
        *self.now.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Milliseconds since the Unix epoch, saturating at zero for times before it.
pub(crate) fn unix_millis(time: SystemTime) -> u64 {
    time.duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// Whole seconds since the Unix epoch (rounded down), saturating at zero for times before it:
/// what CSRF tokens, native and Flask-WTF's, are stamped with.
pub(crate) fn unix_seconds(time: SystemTime) -> u64 {
    unix_millis(time) / 1000
}

/// The time `millis` milliseconds after the Unix epoch.
pub(crate) fn from_unix_millis(millis: u64) -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_millis(millis)
}
