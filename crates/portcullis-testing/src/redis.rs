//! Real Redis servers for the tests: one server or a 3-master cluster on free loopback ports,
//! each with its own temporary folder and no persistence, ready when they answer `PING`.
//!
//! A server runs under a small `sh` watchdog that holds a pipe from the test process: when the
//! test process exits, however it exits, the pipe closes and the watchdog kills the server and
//! removes its folder. So servers kept in `static`s (shared by a test binary) die with it too.
//!
//! `redis-server` (and `redis-cli` for clusters) must be installed; a missing binary fails
//! the test with a message saying so, never skips it. `scripts/test` installs them.

use std::collections::{HashMap, HashSet};
use std::io::{BufRead, BufReader, Write};
use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};

use crate::process::{self, Watched, process_alive};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

/// How long a server may take to answer its first `PING`, or a cluster to reach `ok`.
const READY_WITHIN: Duration = Duration::from_secs(20);
/// How often readiness is checked.
const POLL: Duration = Duration::from_millis(10);
/// Ports are drawn from here: below Linux's ephemeral range (32768-60999), so an outgoing
/// connection cannot take a port between a server's stop and its restart.
const PORTS: std::ops::Range<u16> = 20_000..32_000;

/// Keeps the watchdog alive while the server should run; see the module docs.
const WATCHDOG: &str = r#"
server=$1; dir=$2; shift 2
"$server" "$@" >>"$dir/redis.log" 2>&1 &
pid=$!
echo "$pid"
read -r order
kill -9 "$pid" 2>/dev/null
wait "$pid" 2>/dev/null
[ "$order" = keep ] || rm -rf "$dir"
"#;

/// One `redis-server` on 127.0.0.1 (or a `valkey-server`: [`crate::valkey`]).
pub struct RedisServer {
    /// The server binary: `redis-server` from `PATH`, or a `valkey-server`.
    binary: PathBuf,
    port: u16,
    dir: PathBuf,
    extra: Vec<String>,
    running: Option<Running>,
}

struct Running {
    watchdog: Child,
    stdin: ChildStdin,
    pid: u32,
}

impl RedisServer {
    /// A new server on a free port, ready.
    pub fn start() -> Self {
        Self::start_with(&[])
    }

    /// A new server with extra `redis-server` options (e.g. `["--requirepass", "pw"]`).
    pub fn start_with(extra: &[&str]) -> Self {
        let mut server = Self::on_port(free_port(), extra);
        server.start_again();
        server
    }

    /// A server that will listen on `port`, not started yet ([`RedisServer::start_again`]).
    pub fn on_port(port: u16, extra: &[&str]) -> Self {
        require_binary("redis-server");
        Self::of_binary(PathBuf::from("redis-server"), port, extra)
    }

    /// A server of `binary` (`redis-server`, or a compatible one) that will listen on `port`,
    /// not started yet.
    pub(crate) fn of_binary(binary: PathBuf, port: u16, extra: &[&str]) -> Self {
        let dir = tempfile::Builder::new()
            .prefix("portcullis-redis-")
            .tempdir()
            .unwrap()
            .keep();
        Self {
            binary,
            port,
            dir,
            extra: extra.iter().map(|&s| s.to_owned()).collect(),
            running: None,
        }
    }

    /// A shared server for the whole test binary, started on first use.
    pub fn shared() -> &'static Self {
        static SHARED: OnceLock<RedisServer> = OnceLock::new();
        SHARED.get_or_init(Self::start)
    }

    /// The port it listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `redis://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Its own folder (kept across [`RedisServer::stop`] and [`RedisServer::start_again`]).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The server process's id.
    pub fn pid(&self) -> u32 {
        self.running.as_ref().expect("the server is running").pid
    }

    /// Starts the server (again) on its port and folder, and waits until it answers.
    pub fn start_again(&mut self) {
        assert!(self.running.is_none(), "the server is already running");
        let port = self.port.to_string();
        let dir = self.dir.to_str().unwrap().to_owned();
        let mut args: Vec<String> = [
            "--port",
            &port,
            "--bind",
            "127.0.0.1",
            "--dir",
            &dir,
            "--save",
            "",
            "--appendonly",
            "no",
            "--daemonize",
            "no",
            "--logfile",
            "",
        ]
        .iter()
        .map(|&s| s.to_owned())
        .collect();
        args.extend(self.extra.iter().cloned());
        let mut script_args = vec![self.binary.clone().into_os_string(), dir.into()];
        script_args.extend(args.iter().map(Into::into));
        let Watched {
            watchdog,
            stdin,
            pid,
        } = process::watch(WATCHDOG, script_args, None);
        self.running = Some(Running {
            watchdog,
            stdin,
            pid,
        });
        let deadline = Instant::now() + READY_WITHIN;
        while !answers_ping(self.port) {
            assert!(
                process_alive(pid),
                "redis-server exited at start; its log:\n{}",
                self.log()
            );
            assert!(
                Instant::now() < deadline,
                "redis-server did not answer PING"
            );
            std::thread::sleep(POLL);
        }
    }

    /// Kills the server (as a crash would) and waits until it is gone; the folder stays.
    pub fn stop(&mut self) {
        let mut running = self.running.take().expect("the server is running");
        running.stdin.write_all(b"keep\n").unwrap();
        drop(running.stdin);
        running.watchdog.wait().unwrap();
    }

    /// Freezes the server (SIGSTOP): connections stay open, nothing is answered.
    pub fn pause(&self) {
        signal(self.pid(), "STOP");
    }

    /// Thaws a paused server (SIGCONT).
    pub fn resume(&self) {
        signal(self.pid(), "CONT");
    }

    /// Sends one command and returns its reply.
    pub fn command(&self, args: &[&str]) -> Reply {
        command(self.port, args).unwrap()
    }

    /// Calls per command from `INFO commandstats` (`get`, `getex`, `client|setinfo`...).
    pub fn commandstats(&self) -> HashMap<String, u64> {
        let Reply::Bulk(info) = self.command(&["INFO", "commandstats"]) else {
            panic!("INFO did not answer a bulk string");
        };
        parse_commandstats(&String::from_utf8(info).unwrap())
    }

    /// What the server has logged so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("redis.log")).unwrap_or_default()
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        match self.running.take() {
            // End of input tells the watchdog to kill the server and remove the folder.
            Some(mut running) => {
                drop(running.stdin);
                let _ = running.watchdog.wait();
            }
            None => {
                let _ = std::fs::remove_dir_all(&self.dir);
            }
        }
    }
}

/// A Redis Cluster of three masters without replicas, all slots assigned.
pub struct RedisCluster {
    nodes: Vec<RedisServer>,
}

/// The ports of a cluster's nodes: client port and cluster bus port for each.
#[derive(Clone, Copy, Debug)]
pub struct ClusterPorts {
    /// `(client port, cluster bus port)` of each node.
    pub nodes: [(u16, u16); 3],
}

impl ClusterPorts {
    /// Free ports for every node.
    pub fn free() -> Self {
        Self {
            nodes: [(); 3].map(|()| (free_port(), free_port())),
        }
    }

    /// The comma-separated URLs that select the cluster client.
    pub fn urls(&self) -> String {
        self.nodes
            .iter()
            .map(|(port, _)| format!("redis://127.0.0.1:{port}"))
            .collect::<Vec<_>>()
            .join(",")
    }
}

impl RedisCluster {
    /// A new cluster on free ports, every node reporting `cluster_state:ok`.
    pub fn start() -> Self {
        Self::start_on(ClusterPorts::free())
    }

    /// A shared cluster for the whole test binary, started on first use.
    pub fn shared() -> &'static Self {
        static SHARED: OnceLock<RedisCluster> = OnceLock::new();
        SHARED.get_or_init(Self::start)
    }

    /// A new cluster on `ports` (known before it starts, e.g. to restart it on the same ones).
    pub fn start_on(ports: ClusterPorts) -> Self {
        require_binary("redis-cli");
        let nodes: Vec<RedisServer> = ports
            .nodes
            .iter()
            .map(|&(port, bus)| {
                let config_file = format!("nodes-{port}.conf");
                let bus = bus.to_string();
                let mut node = RedisServer::on_port(
                    port,
                    &[
                        "--cluster-enabled",
                        "yes",
                        "--cluster-config-file",
                        &config_file,
                        "--cluster-port",
                        &bus,
                        "--cluster-node-timeout",
                        "5000",
                    ],
                );
                node.start_again();
                node
            })
            .collect();
        let addresses: Vec<String> = nodes
            .iter()
            .map(|n| format!("127.0.0.1:{}", n.port()))
            .collect();
        let created = Command::new("redis-cli")
            .arg("--cluster")
            .arg("create")
            .args(&addresses)
            .args(["--cluster-replicas", "0", "--cluster-yes"])
            .stdin(Stdio::null())
            .output()
            .unwrap();
        assert!(
            created.status.success(),
            "redis-cli --cluster create failed:\n{}{}",
            String::from_utf8_lossy(&created.stdout),
            String::from_utf8_lossy(&created.stderr)
        );
        let cluster = Self { nodes };
        cluster.wait_until_ok();
        cluster
    }

    /// Polls `CLUSTER INFO` on every node until each says `cluster_state:ok`.
    pub fn wait_until_ok(&self) {
        let deadline = Instant::now() + READY_WITHIN;
        for node in &self.nodes {
            loop {
                let info = match command(node.port(), &["CLUSTER", "INFO"]) {
                    Ok(Reply::Bulk(info)) => String::from_utf8(info).unwrap(),
                    _ => String::new(),
                };
                if info.lines().any(|line| line.trim() == "cluster_state:ok") {
                    break;
                }
                assert!(Instant::now() < deadline, "cluster not ok: {info}");
                std::thread::sleep(POLL);
            }
        }
    }

    /// Its three masters.
    pub fn nodes(&self) -> &[RedisServer] {
        &self.nodes
    }

    /// Its three masters, to stop and start them.
    pub fn nodes_mut(&mut self) -> &mut [RedisServer] {
        &mut self.nodes
    }

    /// The comma-separated URLs of the nodes: what selects the cluster client.
    pub fn urls(&self) -> String {
        self.nodes
            .iter()
            .map(RedisServer::url)
            .collect::<Vec<_>>()
            .join(",")
    }

    /// The node that serves `slot`, from `CLUSTER SLOTS`.
    pub fn node_of_slot(&self, slot: i64) -> &RedisServer {
        let Reply::Array(slots) = self.nodes[0].command(&["CLUSTER", "SLOTS"]) else {
            panic!("CLUSTER SLOTS did not answer an array");
        };
        for range in slots {
            let Reply::Array(range) = range else { continue };
            let (Some(Reply::Integer(from)), Some(Reply::Integer(to)), Some(Reply::Array(master))) =
                (range.first(), range.get(1), range.get(2))
            else {
                continue;
            };
            if (*from..=*to).contains(&slot) {
                let Some(Reply::Integer(port)) = master.get(1) else {
                    panic!("no port in CLUSTER SLOTS");
                };
                return self
                    .nodes
                    .iter()
                    .find(|n| i64::from(n.port()) == *port)
                    .unwrap();
            }
        }
        panic!("slot {slot} is served by no node");
    }
}

/// Whether a server answers on `port`: `PONG`, or "authenticate first".
fn answers_ping(port: u16) -> bool {
    match command(port, &["PING"]) {
        Ok(Reply::Simple(pong)) => pong == "PONG",
        Ok(Reply::Error(error)) => error.starts_with("NOAUTH"),
        _ => false,
    }
}

/// A RESP reply, as far as the tests need one.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Reply {
    /// `+OK`
    Simple(String),
    /// `-ERR ...`
    Error(String),
    /// `:1`
    Integer(i64),
    /// `$3 foo`
    Bulk(Vec<u8>),
    /// `$-1` or `*-1`
    Nil,
    /// `*2 ...`
    Array(Vec<Reply>),
}

/// Sends one command to 127.0.0.1:`port` on a new connection and reads the reply.
pub fn command(port: u16, args: &[&str]) -> std::io::Result<Reply> {
    command_bytes(port, &args.iter().map(|a| a.as_bytes()).collect::<Vec<_>>())
}

/// [`command`] with binary arguments.
pub fn command_bytes(port: u16, args: &[&[u8]]) -> std::io::Result<Reply> {
    let mut stream = TcpStream::connect((Ipv4Addr::LOCALHOST, port))?;
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    let mut request = format!("*{}\r\n", args.len()).into_bytes();
    for arg in args {
        request.extend_from_slice(format!("${}\r\n", arg.len()).as_bytes());
        request.extend_from_slice(arg);
        request.extend_from_slice(b"\r\n");
    }
    stream.write_all(&request)?;
    read_reply(&mut BufReader::new(stream))
}

fn read_reply(reader: &mut impl BufRead) -> std::io::Result<Reply> {
    let mut line = String::new();
    reader.read_line(&mut line)?;
    let line = line.trim_end_matches("\r\n");
    let (kind, rest) = line.split_at_checked(1).ok_or_else(|| {
        std::io::Error::new(std::io::ErrorKind::UnexpectedEof, "connection closed")
    })?;
    let number = || rest.parse::<i64>().unwrap();
    Ok(match kind {
        "+" => Reply::Simple(rest.to_owned()),
        "-" => Reply::Error(rest.to_owned()),
        ":" => Reply::Integer(number()),
        "$" if number() < 0 => Reply::Nil,
        "$" => {
            let mut bulk = vec![0; usize::try_from(number()).unwrap() + 2];
            reader.read_exact(&mut bulk)?;
            bulk.truncate(bulk.len() - 2);
            Reply::Bulk(bulk)
        }
        "*" if number() < 0 => Reply::Nil,
        "*" => Reply::Array(
            (0..number())
                .map(|_| read_reply(reader))
                .collect::<Result<_, _>>()?,
        ),
        other => panic!("unexpected RESP type {other:?}"),
    })
}

/// `cmdstat_getex:calls=1,usec=...` lines into `{"getex": 1}`.
pub fn parse_commandstats(info: &str) -> HashMap<String, u64> {
    info.lines()
        .filter_map(|line| {
            let (name, fields) = line.strip_prefix("cmdstat_")?.split_once(':')?;
            let calls = fields
                .split(',')
                .find_map(|field| field.strip_prefix("calls="))?;
            Some((name.to_owned(), calls.parse().ok()?))
        })
        .collect()
}

/// What changed between two `commandstats` snapshots, `INFO` itself left out.
pub fn commands_between(
    before: &HashMap<String, u64>,
    after: &HashMap<String, u64>,
) -> HashMap<String, u64> {
    after
        .iter()
        .filter(|(name, _)| name.as_str() != "info")
        .filter_map(|(name, &calls)| {
            let delta = calls - before.get(name).copied().unwrap_or(0);
            (delta > 0).then(|| (name.clone(), delta))
        })
        .collect()
}

/// A port in `PORTS` that nothing listens on and that this process has not handed out.
pub fn free_port() -> u16 {
    static GIVEN: Mutex<Option<HashSet<u16>>> = Mutex::new(None);
    let mut given = GIVEN.lock().unwrap();
    let given = given.get_or_insert_with(HashSet::new);
    loop {
        let mut random = [0_u8; 2];
        getrandom::fill(&mut random).unwrap();
        let span = PORTS.end - PORTS.start;
        let port = PORTS.start + u16::from_le_bytes(random) % span;
        if !given.contains(&port) && TcpListener::bind((Ipv4Addr::LOCALHOST, port)).is_ok() {
            given.insert(port);
            return port;
        }
    }
}

/// Fails the test when `binary` is not on `PATH`: these tests never skip.
pub fn require_binary(binary: &str) {
    let path = std::env::var_os("PATH").unwrap_or_default();
    let found = std::env::split_paths(&path).any(|dir| dir.join(binary).is_file());
    assert!(
        found,
        "`{binary}` is not installed (not on PATH): the Redis tests need a real server and never \
         skip. Install it with `apt-get install redis-server` (scripts/test does)."
    );
}

fn signal(pid: u32, name: &str) {
    let status = Command::new("sh")
        .arg("-c")
        .arg(format!("kill -{name} {pid}"))
        .status()
        .unwrap();
    assert!(status.success(), "kill -{name} {pid} failed");
}
