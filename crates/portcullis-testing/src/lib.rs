//! Test support shared by the Portcullis crates' integration tests (never published): real
//! Redis servers ([`redis`]), Redis behind Sentinel ([`sentinel`]), real Valkey servers
//! ([`valkey`]), a real PostgreSQL cluster ([`postgres`]), a real nginx terminating HTTPS
//! ([`nginx`]), a Prometheus server ([`prometheus`]) and a store wrapper that counts, fails
//! and races ([`probe`]).
//!
//! A dev-dependency of both `portcullis` and `portcullis-site`, as sqlx keeps `sqlx-test`, so
//! that no test includes another crate's files by a relative `#[path]`. Helpers fail the test
//! with a message (they panic) rather than return errors: that is how a test reports.
#![allow(clippy::unwrap_used, clippy::expect_used)]

pub mod nginx;
pub mod postgres;
pub mod probe;
mod process;
pub mod prometheus;
pub mod redis;
pub mod sentinel;
pub mod valkey;

pub use nginx::TlsProxy;
pub use postgres::Postgres;
pub use probe::{Probe, Stats};
pub use redis::{RedisCluster, RedisServer, Reply};
pub use sentinel::SentinelSetup;
