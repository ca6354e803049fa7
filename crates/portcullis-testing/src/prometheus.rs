//! A real Prometheus server for the tests: on a free loopback port, with its own temporary
//! folder (configuration and storage), scraping the given targets every second, ready when
//! `/-/ready` answers 200. Stopped by its pid when dropped.
//!
//! `prometheus` must be installed (Debian's package; `scripts/test` installs it); a missing
//! binary fails the test with a message saying so, never skips it.

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::redis::free_port;

/// How long the server may take to become ready.
const READY_WITHIN: Duration = Duration::from_secs(30);
/// How often readiness is checked.
const POLL: Duration = Duration::from_millis(50);

/// One `prometheus` server on 127.0.0.1.
pub struct PrometheusServer {
    child: Child,
    port: u16,
    dir: tempfile::TempDir,
}

impl PrometheusServer {
    /// A server scraping `targets` (`/metrics`, every second), ready.
    pub fn start(targets: &[SocketAddr]) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let targets: Vec<String> = targets.iter().map(|t| format!("'{t}'")).collect();
        let config = format!(
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nscrape_configs:\n  - \
             job_name: portcullis\n    static_configs:\n      - targets: [{}]\n",
            targets.join(", ")
        );
        let config_path = dir.path().join("prometheus.yml");
        std::fs::write(&config_path, config).unwrap();
        let port = free_port();
        let log = std::fs::File::create(dir.path().join("prometheus.log")).unwrap();
        let child = Command::new("prometheus")
            .arg(format!("--config.file={}", config_path.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.path().join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|error| {
                panic!("cannot start `prometheus` (scripts/test installs it): {error}")
            });
        let mut server = Self { child, port, dir };
        let deadline = Instant::now() + READY_WITHIN;
        while server.get("/-/ready").map(|(status, _)| status) != Some(200) {
            let exited = server.child.try_wait().unwrap();
            assert!(
                exited.is_none(),
                "prometheus exited at start; its log:\n{}",
                server.log()
            );
            assert!(
                Instant::now() < deadline,
                "prometheus was not ready; its log:\n{}",
                server.log()
            );
            std::thread::sleep(POLL);
        }
        server
    }

    /// Its HTTP port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The body of the instant query `expr` (`/api/v1/query`), as JSON text.
    pub fn query(&self, expr: &str) -> String {
        let encoded: String = expr
            .bytes()
            .map(|b| {
                if b.is_ascii_alphanumeric() || b"_-.".contains(&b) {
                    (b as char).to_string()
                } else {
                    format!("%{b:02X}")
                }
            })
            .collect();
        let (status, body) = self
            .get(&format!("/api/v1/query?query={encoded}"))
            .expect("prometheus answers");
        assert_eq!(status, 200, "query {expr}: {body}");
        body
    }

    /// Its log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("prometheus.log")).unwrap_or_default()
    }

    /// `GET path` over HTTP/1.0: the status and the body, `None` when it does not answer.
    fn get(&self, path: &str) -> Option<(u16, String)> {
        let mut stream = TcpStream::connect((Ipv4Addr::LOCALHOST, self.port)).ok()?;
        stream.set_read_timeout(Some(READY_WITHIN)).ok()?;
        write!(stream, "GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").ok()?;
        let mut response = String::new();
        stream.read_to_string(&mut response).ok()?;
        let (head, body) = response.split_once("\r\n\r\n")?;
        let status = head.split_whitespace().nth(1)?.parse().ok()?;
        Some((status, body.to_owned()))
    }
}

impl Drop for PrometheusServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
