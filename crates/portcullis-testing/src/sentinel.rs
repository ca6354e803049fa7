//! Redis behind Sentinel for the tests: a primary, a replica (`--replicaof`) and three
//! sentinels (`redis-server <config> --sentinel`, which Debian's `redis-server` package runs
//! without the `redis-sentinel` one), all on free loopback ports, with short failure detection
//! so that a failover takes a second or two. Every process is stopped by its pid, under the same
//! kind of watchdog as [`RedisServer`], so none outlives the test process.

use std::io::Write;
use std::path::PathBuf;
use std::process::{Child, ChildStdin};
use std::time::{Duration, Instant};

use crate::process::{self, Watched};
use crate::redis::{RedisServer, Reply, command, free_port, require_binary};

/// The name the sentinels monitor the primary under.
pub const PRIMARY_NAME: &str = "portcullis";
/// How long the sentinels wait for a silent primary before they call it down: short, so a
/// test's failover is quick (Redis's default is 30 s).
pub const DOWN_AFTER: Duration = Duration::from_millis(500);
/// Sentinel's `failover-timeout`: how long one failover attempt may take before another
/// sentinel tries (Redis's default is 3 minutes).
const FAILOVER_TIMEOUT: Duration = Duration::from_secs(2);
/// How long a setup may take to be ready, or a failover to complete.
const READY_WITHIN: Duration = Duration::from_secs(30);
/// How often readiness is checked.
const POLL: Duration = Duration::from_millis(10);

/// Runs one sentinel until the test process lets go of its input (see [`RedisServer`]).
const SENTINEL_WATCHDOG: &str = r#"
dir=$1
redis-server "$dir/sentinel.conf" --sentinel >>"$dir/sentinel.log" 2>&1 &
pid=$!
echo "$pid"
read -r _order
kill -9 "$pid" 2>/dev/null
wait "$pid" 2>/dev/null
rm -rf "$dir"
"#;

/// A primary, its replica and three sentinels that agree on them.
pub struct SentinelSetup {
    /// The two data nodes; which one is the primary changes with each failover.
    nodes: [Option<RedisServer>; 2],
    ports: [u16; 2],
    sentinels: Vec<SentinelProcess>,
}

/// One `redis-server --sentinel` process.
struct SentinelProcess {
    port: u16,
    dir: PathBuf,
    watchdog: Child,
    stdin: Option<ChildStdin>,
}

impl SentinelSetup {
    /// Starts everything and waits until the replica is in sync and every sentinel knows the
    /// replica and the two other sentinels (without which no failover can be agreed).
    pub fn start() -> Self {
        require_binary("redis-server");
        let primary = RedisServer::start();
        let replica_of = primary.port().to_string();
        let replica = RedisServer::start_with(&["--replicaof", "127.0.0.1", &replica_of]);
        let ports = [primary.port(), replica.port()];
        let sentinels = (0..3)
            .map(|_| SentinelProcess::start(primary.port()))
            .collect();
        let setup = Self {
            nodes: [Some(primary), Some(replica)],
            ports,
            sentinels,
        };
        setup.wait_until_ready();
        setup
    }

    /// A shared setup for the whole test binary, started on first use (never failed over).
    pub fn shared() -> &'static Self {
        static SHARED: std::sync::OnceLock<SentinelSetup> = std::sync::OnceLock::new();
        SHARED.get_or_init(Self::start)
    }

    /// `redis+sentinel://127.0.0.1:<p1>,127.0.0.1:<p2>,127.0.0.1:<p3>/portcullis`.
    pub fn url(&self) -> String {
        let hosts: Vec<String> = self
            .sentinels
            .iter()
            .map(|s| format!("127.0.0.1:{}", s.port))
            .collect();
        format!("redis+sentinel://{}/{PRIMARY_NAME}", hosts.join(","))
    }

    /// The port of one of the sentinels (to send it `SENTINEL FAILOVER`, for example).
    pub fn sentinel_port(&self) -> u16 {
        self.sentinels[0].port
    }

    /// The port of the node the sentinels name as primary.
    pub fn primary_port(&self) -> u16 {
        self.sentinels
            .iter()
            .find_map(|s| named_primary(s.port))
            .expect("no sentinel names a primary")
    }

    /// The primary the sentinels name.
    pub fn primary(&self) -> &RedisServer {
        let port = self.primary_port();
        self.node(port)
    }

    /// The node that is not the primary (the replica), if it runs.
    pub fn replica(&self) -> &RedisServer {
        let port = self.primary_port();
        let other = if self.ports[0] == port {
            self.ports[1]
        } else {
            self.ports[0]
        };
        self.node(other)
    }

    fn node(&self, port: u16) -> &RedisServer {
        self.nodes
            .iter()
            .flatten()
            .find(|n| n.port() == port)
            .unwrap_or_else(|| panic!("the node on port {port} does not run"))
    }

    /// Waits until the replica has everything the primary has written so far (its
    /// replication offset has reached the primary's).
    pub fn wait_until_replicated(&self) {
        let target = replication_field(self.primary(), "master_repl_offset");
        let deadline = Instant::now() + READY_WITHIN;
        while replication_field(self.replica(), "slave_repl_offset") < target {
            assert!(Instant::now() < deadline, "the replica did not catch up");
            std::thread::sleep(POLL);
        }
    }

    /// Kills the primary (SIGKILL, as a crash would) and returns its port.
    pub fn kill_primary(&mut self) -> u16 {
        let port = self.primary_port();
        let index = usize::from(self.ports[1] == port);
        let mut node = self.nodes[index].take().expect("the primary runs");
        node.stop();
        port
    }

    /// Waits until every sentinel names a primary other than `old` and that node answers as
    /// primary; returns how long that took since `since`.
    pub fn wait_for_failover(&self, old: u16, since: Instant) -> Duration {
        let deadline = since + READY_WITHIN;
        loop {
            let named: Vec<Option<u16>> = self
                .sentinels
                .iter()
                .map(|s| named_primary(s.port))
                .collect();
            if let Some(Some(new)) = named.first()
                && *new != old
                && named.iter().all(|n| *n == Some(*new))
                && role(*new).as_deref() == Some("master")
            {
                return since.elapsed();
            }
            assert!(
                Instant::now() < deadline,
                "no failover within {READY_WITHIN:?}: the sentinels name {named:?}; a \
                 sentinel's log:\n{}",
                self.sentinels[0].log()
            );
            std::thread::sleep(POLL);
        }
    }

    fn wait_until_ready(&self) {
        let deadline = Instant::now() + READY_WITHIN;
        let replica = self.replica();
        while replication_text(replica, "master_link_status").as_deref() != Some("up") {
            assert!(
                Instant::now() < deadline,
                "the replica on {} did not sync: {:?}\nits log:\n{}\na sentinel's log:\n{}",
                replica.port(),
                replication_text(replica, "role"),
                replica.log(),
                self.sentinels[0].log()
            );
            std::thread::sleep(POLL);
        }
        for sentinel in &self.sentinels {
            loop {
                let others = sentinel_list(sentinel.port, "SENTINELS");
                let replicas = sentinel_list(sentinel.port, "REPLICAS");
                let healthy_replica = replicas.iter().any(|flags| flags == "slave");
                if others.len() == 2 && healthy_replica {
                    break;
                }
                assert!(
                    Instant::now() < deadline,
                    "sentinel {} knows {} sentinels and replicas {replicas:?}; its log:\n{}",
                    sentinel.port,
                    others.len(),
                    sentinel.log()
                );
                std::thread::sleep(POLL);
            }
        }
    }
}

impl SentinelProcess {
    fn start(primary: u16) -> Self {
        let port = free_port();
        let dir = tempfile::Builder::new()
            .prefix("portcullis-sentinel-")
            .tempdir()
            .unwrap()
            .keep();
        let config = format!(
            "port {port}\nbind 127.0.0.1\ndaemonize no\ndir {dir}\n\
             sentinel monitor {PRIMARY_NAME} 127.0.0.1 {primary} 2\n\
             sentinel down-after-milliseconds {PRIMARY_NAME} {down}\n\
             sentinel failover-timeout {PRIMARY_NAME} {failover}\n",
            dir = dir.display(),
            down = DOWN_AFTER.as_millis(),
            failover = FAILOVER_TIMEOUT.as_millis(),
        );
        std::fs::write(dir.join("sentinel.conf"), config).unwrap();
        let Watched {
            watchdog, stdin, ..
        } = process::watch(SENTINEL_WATCHDOG, [&dir], None);
        let sentinel = Self {
            port,
            dir,
            watchdog,
            stdin: Some(stdin),
        };
        let deadline = Instant::now() + READY_WITHIN;
        while !matches!(command(port, &["PING"]), Ok(Reply::Simple(ref pong)) if pong == "PONG") {
            assert!(
                Instant::now() < deadline,
                "sentinel did not answer PING; its log:\n{}",
                sentinel.log()
            );
            std::thread::sleep(POLL);
        }
        sentinel
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("sentinel.log")).unwrap_or_default()
    }
}

impl Drop for SentinelProcess {
    fn drop(&mut self) {
        // End of input tells the watchdog to kill the sentinel and remove its folder.
        if let Some(mut stdin) = self.stdin.take() {
            let _ = stdin.write_all(b"stop\n");
        }
        let _ = self.watchdog.wait();
    }
}

/// The primary's port that the sentinel on `port` names, if it answers.
fn named_primary(port: u16) -> Option<u16> {
    match command(port, &["SENTINEL", "GET-MASTER-ADDR-BY-NAME", PRIMARY_NAME]) {
        Ok(Reply::Array(address)) => match address.get(1) {
            Some(Reply::Bulk(port)) => std::str::from_utf8(port).ok()?.parse().ok(),
            _ => None,
        },
        _ => None,
    }
}

/// The first word of `ROLE` on `port` (`master`, `slave`), if it answers.
fn role(port: u16) -> Option<String> {
    match command(port, &["ROLE"]) {
        Ok(Reply::Array(role)) => match role.first() {
            Some(Reply::Bulk(word)) => String::from_utf8(word.clone()).ok(),
            _ => None,
        },
        _ => None,
    }
}

/// The `flags` of each entry of `SENTINEL <what> portcullis` (`SENTINELS`, `REPLICAS`).
fn sentinel_list(port: u16, what: &str) -> Vec<String> {
    let Ok(Reply::Array(entries)) = command(port, &["SENTINEL", what, PRIMARY_NAME]) else {
        return Vec::new();
    };
    entries
        .iter()
        .filter_map(|entry| {
            let Reply::Array(fields) = entry else {
                return None;
            };
            fields.chunks(2).find_map(|pair| match pair {
                [Reply::Bulk(name), Reply::Bulk(value)] if name == b"flags" => {
                    String::from_utf8(value.clone()).ok()
                }
                _ => None,
            })
        })
        .collect()
}

/// A field of `INFO replication`, as text.
fn replication_text(node: &RedisServer, field: &str) -> Option<String> {
    let Ok(Reply::Bulk(info)) = command(node.port(), &["INFO", "replication"]) else {
        return None;
    };
    let info = String::from_utf8(info).ok()?;
    info.lines()
        .find_map(|line| line.strip_prefix(field)?.strip_prefix(':'))
        .map(|value| value.trim().to_owned())
}

/// A numeric field of `INFO replication`, 0 when missing.
fn replication_field(node: &RedisServer, field: &str) -> i64 {
    replication_text(node, field)
        .and_then(|value| value.parse().ok())
        .unwrap_or(0)
}
