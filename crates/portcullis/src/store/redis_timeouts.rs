//! [`RedisTimeouts`]: how long the Redis store waits. A plain value, defined in every build
//! (with or without the `redis` feature), so that `REDIS_CONNECT_TIMEOUT` and
//! `REDIS_RESPONSE_TIMEOUT` read and report the same everywhere.

use std::time::Duration;

/// How long the Redis store (`RedisStore`, with the `redis` feature) waits for Redis before a call fails with
/// [`StoreError::Unavailable`](super::StoreError::Unavailable).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RedisTimeouts {
    /// The longest wait for a new connection, TLS and handshake included
    /// (`REDIS_CONNECT_TIMEOUT`).
    pub connect: Duration,
    /// The longest wait for the reply to one command (`REDIS_RESPONSE_TIMEOUT`).
    pub response: Duration,
}

impl RedisTimeouts {
    /// The default connect timeout: 250 ms. A session lookup is on the path of every request
    /// that uses the session; on a LAN a connection takes about a millisecond, so a quarter
    /// of a second means Redis is gone, and the request should get its 503 now.
    pub const DEFAULT_CONNECT: Duration = Duration::from_millis(250);
    /// The default response timeout: 250 ms, for the same reason; one `GETEX` or `SET` takes
    /// microseconds of Redis time.
    pub const DEFAULT_RESPONSE: Duration = Duration::from_millis(250);
}

impl Default for RedisTimeouts {
    fn default() -> Self {
        Self {
            connect: Self::DEFAULT_CONNECT,
            response: Self::DEFAULT_RESPONSE,
        }
    }
}
