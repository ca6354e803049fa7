//! A real PostgreSQL cluster for the tests: `initdb` into a temporary folder, `postgres` on a
//! free loopback port with trust authentication, ready when `pg_isready` says so, and a fresh
//! database per test ([`Postgres::database`]) so that tests sharing one cluster see nothing
//! of each other.
//!
//! As for Redis ([`crate::redis`]), the server runs under a small `sh` watchdog that holds a
//! pipe from the test process: when the test process exits, however it exits, the pipe closes
//! and the watchdog stops the server by its pid and removes its folder, so the cluster kept in
//! a `static` ([`Postgres::shared`]) dies with the test binary.
//!
//! PostgreSQL refuses to run as root: when the tests run as root (CI does), `initdb` and
//! `postgres` run as the `postgres` user (which Debian's package creates) through `setpriv`,
//! which `exec`s, so the pid the watchdog holds is the server's own; the folder is given to
//! that user first. The binaries are found under `/usr/lib/postgresql/<version>/bin`
//! (Debian's layout, newest version first), else on `PATH`; a missing one fails the test with
//! a message saying so, never skips it. `scripts/test` installs them.

use std::io::Write;
use std::path::PathBuf;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use crate::process::{self, Watched, process_alive, run};
use crate::redis::free_port;

/// How long the cluster may take to accept connections after `postgres` starts.
const READY_WITHIN: Duration = Duration::from_secs(30);
/// How often readiness is checked.
const POLL: Duration = Duration::from_millis(20);
/// The user PostgreSQL runs as when the tests run as root (Debian's package creates it).
const SYSTEM_USER: &str = "postgres";
/// The superuser `initdb` creates; the tests connect as it, without a password (trust).
const SUPERUSER: &str = "postgres";

/// Runs the server until told to stop, then stops it by pid (`SIGQUIT`: immediate shutdown, a
/// throw-away cluster needs no checkpoint) and removes the folder.
const WATCHDOG: &str = r#"
dir=$1; shift
"$@" >>"$dir/postgres.log" 2>&1 &
pid=$!
echo "$pid"
read -r order
kill -QUIT "$pid" 2>/dev/null
wait "$pid" 2>/dev/null
rm -rf "$dir"
"#;

/// One PostgreSQL cluster on 127.0.0.1.
pub struct Postgres {
    port: u16,
    dir: PathBuf,
    bin: PathBuf,
    watchdog: Child,
    stdin: Option<ChildStdin>,
    pid: u32,
}

impl Postgres {
    /// A new cluster on a free port, ready.
    pub fn start() -> Self {
        let bin = binaries();
        let dir = tempfile::Builder::new()
            .prefix("portcullis-postgres-")
            .tempdir()
            .unwrap()
            .keep();
        let as_user = as_system_user();
        if !as_user.is_empty() {
            run(Command::new("chown")
                .arg(format!("{SYSTEM_USER}:"))
                .arg(&dir));
        }
        let data = dir.join("data");
        let mut initdb = as_user.clone();
        initdb.push(bin.join("initdb").to_str().unwrap().to_owned());
        run(Command::new(&initdb[0])
            .args(&initdb[1..])
            .arg("--pgdata")
            .arg(&data)
            .args([
                "--username",
                SUPERUSER,
                "--auth",
                "trust",
                "--encoding",
                "UTF8",
            ])
            .args(["--no-sync", "--no-instructions"])
            .current_dir(&dir));
        let port = free_port();
        let mut server: Vec<String> = as_user;
        server.push(bin.join("postgres").to_str().unwrap().to_owned());
        for arg in [
            "-D",
            data.to_str().unwrap(),
            "-p",
            &port.to_string(),
            "-h",
            "127.0.0.1",
            // No Unix socket: the tests connect over TCP only.
            "-c",
            "unix_socket_directories=",
            // A throw-away cluster: durability costs time and buys nothing.
            "-c",
            "fsync=off",
            "-c",
            "synchronous_commit=off",
            "-c",
            "full_page_writes=off",
            // Every test's pool may hold a few connections at once.
            "-c",
            "max_connections=300",
        ] {
            server.push(arg.to_owned());
        }
        let mut script_args = vec![dir.clone().into_os_string()];
        script_args.extend(server.iter().map(Into::into));
        let Watched {
            watchdog,
            stdin,
            pid,
        } = process::watch(WATCHDOG, script_args, Some(&dir));
        let cluster = Self {
            port,
            dir,
            bin,
            watchdog,
            stdin: Some(stdin),
            pid,
        };
        cluster.wait_until_ready();
        cluster
    }

    /// A shared cluster for the whole test binary, started on first use.
    pub fn shared() -> &'static Self {
        static SHARED: OnceLock<Postgres> = OnceLock::new();
        SHARED.get_or_init(Self::start)
    }

    /// The port it listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The server process's id (the postmaster).
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// `postgres://postgres@127.0.0.1:<port>/<database>`.
    pub fn url(&self, database: &str) -> String {
        format!("postgres://{SUPERUSER}@127.0.0.1:{}/{database}", self.port)
    }

    /// A new, empty database of its own (`CREATE DATABASE`), as a URL.
    pub fn database(&self) -> String {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let name = format!(
            "test_{}_{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        self.sql(&format!("CREATE DATABASE {name}"));
        self.url(&name)
    }

    /// Runs `sql` with `psql` on the `postgres` database and returns what it printed
    /// (unaligned, tuples only); fails the test if it fails.
    pub fn sql(&self, sql: &str) -> String {
        let output = Command::new(self.bin.join("psql"))
            .args(["--host", "127.0.0.1", "--port", &self.port.to_string()])
            .args(["--username", SUPERUSER, "--dbname", "postgres"])
            .args(["--no-psqlrc", "--tuples-only", "--no-align"])
            .args(["--set", "ON_ERROR_STOP=1", "--command", sql])
            .stdin(Stdio::null())
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "psql {sql:?} failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8(output.stdout).unwrap()
    }

    /// What the server has logged so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("postgres.log")).unwrap_or_default()
    }

    fn wait_until_ready(&self) {
        let deadline = Instant::now() + READY_WITHIN;
        loop {
            let ready = Command::new(self.bin.join("pg_isready"))
                .args(["--host", "127.0.0.1", "--port", &self.port.to_string()])
                .args(["--quiet", "--timeout", "1"])
                .status()
                .unwrap();
            if ready.success() {
                return;
            }
            assert!(
                process_alive(self.pid),
                "postgres exited at start; its log:\n{}",
                self.log()
            );
            assert!(
                Instant::now() < deadline,
                "postgres did not accept connections; its log:\n{}",
                self.log()
            );
            std::thread::sleep(POLL);
        }
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        // End of input tells the watchdog to stop the server and remove the folder.
        if let Some(mut stdin) = self.stdin.take() {
            let _ = stdin.write_all(b"stop\n");
        }
        let _ = self.watchdog.wait();
    }
}

/// The folder of PostgreSQL's server binaries: Debian's newest `/usr/lib/postgresql/*/bin`,
/// else the one of `initdb` on `PATH`.
fn binaries() -> PathBuf {
    let mut debian: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .filter_map(|entry| {
            let entry = entry.ok()?;
            let version = entry.file_name().to_str()?.parse().ok()?;
            let bin = entry.path().join("bin");
            bin.join("initdb").is_file().then_some((version, bin))
        })
        .collect();
    debian.sort();
    if let Some((_, bin)) = debian.pop() {
        return bin;
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .find(|dir| dir.join("initdb").is_file())
        .unwrap_or_else(|| {
            panic!(
                "PostgreSQL's `initdb` is not installed (not under /usr/lib/postgresql/*/bin nor \
                 on PATH): the PostgreSQL tests need a real server and never skip. Install it \
                 with `apt-get install postgresql` (scripts/test does)."
            )
        })
}

/// The command prefix that runs a program as [`SYSTEM_USER`] when this process is root (whom
/// PostgreSQL refuses), else nothing.
fn as_system_user() -> Vec<String> {
    if !running_as_root() {
        return Vec::new();
    }
    ["setpriv", "--reuid", SYSTEM_USER, "--regid", SYSTEM_USER]
        .iter()
        .map(|&s| s.to_owned())
        .chain(["--init-groups".to_owned()])
        .collect()
}

/// Whether the effective user is root, from `/proc/self/status` (`Uid: real effective ...`).
fn running_as_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            let line = status.lines().find(|l| l.starts_with("Uid:"))?;
            Some(line.split_whitespace().nth(2)? == "0")
        })
        .unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cluster_gives_each_test_a_database_of_its_own() {
        let cluster = Postgres::start();
        let first = cluster.database();
        let second = cluster.database();
        assert_ne!(first, second);
        let names = cluster.sql("SELECT datname FROM pg_database ORDER BY datname");
        for url in [&first, &second] {
            let name = url.rsplit('/').next().unwrap();
            assert!(names.lines().any(|line| line == name), "{names}");
        }
        let pid = cluster.pid();
        let dir = cluster.dir.clone();
        drop(cluster);
        assert!(!process_alive(pid), "postgres still runs after the drop");
        assert!(!dir.exists(), "the cluster's folder is left behind");
    }
}
