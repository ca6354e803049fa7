//! A real nginx terminating HTTPS in front of site processes, as production runs them: a
//! throw-away certificate authority and a `localhost` certificate made with `openssl`, nginx
//! with a configuration of its own in a temporary folder (`daemon off`, so the process the
//! test holds is the master), round-robin over the upstreams, stopped by its pid at drop.
//!
//! The proxy passes what the site's `TRUSTED_PROXIES` rules read: `X-Forwarded-For` with the
//! client's address appended (`$proxy_add_x_forwarded_for`), `X-Forwarded-Proto: https`, and
//! the `Host` as the client sent it. Each answer carries `X-Upstream` (nginx's
//! `$upstream_addr`): which site process served it, told by the proxy, not by the site.
//!
//! `nginx` (on `PATH` or `/usr/sbin/nginx`) and `openssl` must be installed; a missing one
//! fails the test with a message saying so, never skips it. `scripts/test` installs them.

use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::process::run;
use crate::redis::free_port;

/// How long nginx may take to listen.
const READY_WITHIN: Duration = Duration::from_secs(20);
/// How often readiness is checked.
const POLL: Duration = Duration::from_millis(10);

/// The response header naming the site process that served a request.
pub const UPSTREAM_HEADER: &str = "x-upstream";

/// nginx on 127.0.0.1 terminating HTTPS for `localhost`.
pub struct TlsProxy {
    port: u16,
    dir: tempfile::TempDir,
    child: Child,
}

impl TlsProxy {
    /// nginx on a free port, proxying round-robin to `upstreams`, ready.
    pub fn start(upstreams: &[SocketAddr]) -> Self {
        Self::start_on(free_port(), upstreams)
    }

    /// nginx on `port` (known before it starts, e.g. for the sites' `PUBLIC_ORIGIN`),
    /// proxying round-robin to `upstreams`, ready.
    pub fn start_on(port: u16, upstreams: &[SocketAddr]) -> Self {
        let dir = tempfile::Builder::new()
            .prefix("portcullis-nginx-")
            .tempdir()
            .unwrap();
        // nginx's workers run as `nobody` when the master is root: they need to enter the
        // folder for their temporary files (the key stays readable by root only).
        run(Command::new("chmod").arg("755").arg(dir.path()));
        make_certificates(dir.path());
        let config = dir.path().join("nginx.conf");
        std::fs::write(&config, configuration(dir.path(), port, upstreams)).unwrap();
        let child = Command::new(binary())
            .arg("-p")
            .arg(dir.path())
            .arg("-c")
            .arg(&config)
            .arg("-e")
            .arg(dir.path().join("error.log"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let mut proxy = Self { port, dir, child };
        proxy.wait_until_listening();
        proxy
    }

    /// The port it listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The master process's id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// `https://localhost:<port>`: the origin browsers would send, for `PUBLIC_ORIGIN`.
    pub fn origin(&self) -> String {
        format!("https://localhost:{}", self.port)
    }

    /// The throw-away certificate authority, PEM, for the client to trust.
    pub fn ca_pem(&self) -> Vec<u8> {
        std::fs::read(self.dir.path().join("ca.pem")).unwrap()
    }

    /// What nginx has logged so far (errors, and the access log).
    pub fn log(&self) -> String {
        let read = |name: &str| std::fs::read_to_string(self.dir.path().join(name));
        format!(
            "{}{}",
            read("error.log").unwrap_or_default(),
            read("access.log").unwrap_or_default()
        )
    }

    fn wait_until_listening(&mut self) {
        let deadline = Instant::now() + READY_WITHIN;
        while TcpStream::connect((Ipv4Addr::LOCALHOST, self.port)).is_err() {
            assert!(
                self.child.try_wait().unwrap().is_none(),
                "nginx exited at start; its log:\n{}",
                self.log()
            );
            assert!(Instant::now() < deadline, "nginx did not listen");
            std::thread::sleep(POLL);
        }
    }
}

impl Drop for TlsProxy {
    fn drop(&mut self) {
        // SIGTERM: nginx's fast shutdown, the master stops its workers before it exits.
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let _ = self.child.wait();
    }
}

/// The whole `nginx.conf`: everything under `dir`, nothing of the system's configuration.
fn configuration(dir: &Path, port: u16, upstreams: &[SocketAddr]) -> String {
    let dir = dir.display();
    let servers: String = upstreams
        .iter()
        .map(|addr| format!("        server {addr};\n"))
        .collect();
    format!(
        r#"daemon off;
worker_processes 1;
pid {dir}/nginx.pid;
error_log {dir}/error.log info;
events {{
    worker_connections 64;
}}
http {{
    access_log {dir}/access.log;
    client_body_temp_path {dir}/client_body;
    proxy_temp_path {dir}/proxy;
    fastcgi_temp_path {dir}/fastcgi;
    uwsgi_temp_path {dir}/uwsgi;
    scgi_temp_path {dir}/scgi;
    upstream site {{
{servers}    }}
    server {{
        listen 127.0.0.1:{port} ssl;
        server_name localhost;
        ssl_certificate {dir}/site.pem;
        ssl_certificate_key {dir}/site.key;
        ssl_protocols TLSv1.2 TLSv1.3;
        location / {{
            proxy_pass http://site;
            proxy_set_header Host $http_host;
            proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
            proxy_set_header X-Forwarded-Proto https;
            add_header X-Upstream $upstream_addr always;
        }}
    }}
}}
"#
    )
}

/// `ca.pem` (a certificate authority for one day) and `site.pem`/`site.key` (`localhost` and
/// 127.0.0.1, signed by it, not itself an authority: rustls refuses a CA as a server's
/// certificate).
fn make_certificates(dir: &Path) {
    let curve = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1"];
    run(Command::new(openssl())
        .args(["req", "-x509"])
        .args(curve)
        .args(["-nodes", "-days", "1", "-subj", "/CN=Portcullis test CA"])
        .arg("-keyout")
        .arg(dir.join("ca.key"))
        .arg("-out")
        .arg(dir.join("ca.pem")));
    run(Command::new(openssl())
        .args(["req", "-x509"])
        .args(curve)
        .args(["-nodes", "-days", "1", "-subj", "/CN=localhost"])
        .arg("-CA")
        .arg(dir.join("ca.pem"))
        .arg("-CAkey")
        .arg(dir.join("ca.key"))
        .args(["-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"])
        .args(["-addext", "basicConstraints=critical,CA:FALSE"])
        .args(["-addext", "extendedKeyUsage=serverAuth"])
        .arg("-keyout")
        .arg(dir.join("site.key"))
        .arg("-out")
        .arg(dir.join("site.pem")));
}

/// The nginx binary: on `PATH`, or Debian's `/usr/sbin/nginx` (not on a user's `PATH`).
fn binary() -> PathBuf {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .map(|dir| dir.join("nginx"))
        .chain([PathBuf::from("/usr/sbin/nginx")])
        .find(|candidate| candidate.is_file())
        .unwrap_or_else(|| {
            panic!(
                "`nginx` is not installed (not on PATH nor /usr/sbin/nginx): the TLS proxy test \
                 needs a real proxy and never skips. Install it with `apt-get install nginx` \
                 (scripts/test does)."
            )
        })
}

/// `openssl`, which must be on `PATH`.
fn openssl() -> &'static str {
    let path = std::env::var_os("PATH").unwrap_or_default();
    assert!(
        std::env::split_paths(&path).any(|dir| dir.join("openssl").is_file()),
        "`openssl` is not installed: the TLS proxy test makes its certificates with it. \
         Install it with `apt-get install openssl` (scripts/test does)."
    );
    "openssl"
}
