//! Starts the real `portcullis` binary for end-to-end tests, in its own temporary folder, and
//! stops it when dropped.
#![allow(dead_code, unreachable_pub, missing_docs, clippy::unwrap_used)]

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A secret key long enough for every profile.
pub const SECRET: &str = "an end-to-end test secret key of 32+ bytes";

/// Longest wait for the server to start or stop.
const PATIENCE: Duration = Duration::from_secs(30);

/// A `portcullis` command in `dir`, with a clean environment apart from `PATH`.
pub fn portcullis(dir: &Path) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_portcullis"));
    command
        .current_dir(dir)
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default());
    command.env("RUST_LOG", "info");
    command
}

/// A running site.
pub struct Site {
    pub child: Child,
    pub addr: SocketAddr,
    pub dir: PathBuf,
    pub log: Arc<Mutex<String>>,
}

impl Site {
    /// Starts `portcullis serve --bind 127.0.0.1:0` in `dir` with `env`, and waits for its
    /// "listening on" line.
    pub fn start(dir: &Path, env: &[(&str, &str)]) -> Site {
        let mut command = portcullis(dir);
        command
            .args(["serve", "--bind", "127.0.0.1:0"])
            .envs(env.iter().copied());
        command.stdout(Stdio::null()).stderr(Stdio::piped());
        let mut child = command.spawn().unwrap();
        let stderr = child.stderr.take().unwrap();
        let log = Arc::new(Mutex::new(String::new()));
        let (tx, rx) = std::sync::mpsc::channel();
        let sink = Arc::clone(&log);
        std::thread::spawn(move || {
            let mut tx = Some(tx);
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Some((_, rest)) = line.split_once("listening on http://")
                    && let Some(tx) = tx.take()
                {
                    // The address ends at a space (text) or a quote (LOG_FORMAT=json).
                    let end = rest.find([' ', '"']).unwrap_or(rest.len());
                    let addr = &rest[..end];
                    let _ = tx.send(addr.parse::<SocketAddr>().unwrap());
                }
                sink.lock().unwrap().push_str(&line);
                sink.lock().unwrap().push('\n');
            }
        });
        let addr = rx
            .recv_timeout(PATIENCE)
            .unwrap_or_else(|_| panic!("the site did not start; log:\n{}", log.lock().unwrap()));
        Site {
            child,
            addr,
            dir: dir.to_owned(),
            log,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// Sends SIGTERM (graceful shutdown).
    pub fn terminate(&self) {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        assert!(status.unwrap().success());
    }

    /// Waits for the process to exit, polling.
    pub fn wait(&mut self) -> ExitStatus {
        let start = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(start.elapsed() < PATIENCE, "the site did not exit");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }

    /// The log once it holds `needle`, or as it is after 10 s: a line the site writes just
    /// after a response can reach the reader thread a moment after the client has it.
    pub fn log_once_it_holds(&self, needle: &str) -> String {
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        loop {
            let log = self.log();
            if log.contains(needle) || std::time::Instant::now() > deadline {
                return log;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Site {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A client that keeps no cookies of its own and follows no redirects, so tests see raw headers.
pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

/// The `name=value` part of a response's `Set-Cookie`.
pub fn cookie_pair(response: &reqwest::Response) -> String {
    let header = response.headers()["set-cookie"].to_str().unwrap();
    header.split(';').next().unwrap().to_owned()
}

/// A session cookie and a CSRF token for it: `GET /api/csrf-token`, keeping `cookie` if given.
pub async fn csrf(site: &Site, cookie: Option<&str>) -> (String, String) {
    let mut request = client().get(site.url("/api/csrf-token"));
    if let Some(cookie) = cookie {
        request = request.header("cookie", cookie);
    }
    let response = request.send().await.unwrap();
    let cookie = match response.headers().get("set-cookie") {
        Some(_) => cookie_pair(&response),
        None => cookie.unwrap().to_owned(),
    };
    let json: serde_json::Value = response.json().await.unwrap();
    (cookie, json["csrf_token"].as_str().unwrap().to_owned())
}

/// Posts a form with a fresh CSRF token under `cookie` (a new session when `None`); returns
/// the response and the cookie to use next.
pub async fn post_form(
    site: &Site,
    cookie: Option<&str>,
    path: &str,
    fields: &[(&str, &str)],
) -> (reqwest::Response, String) {
    let (cookie, token) = csrf(site, cookie).await;
    let mut body: Vec<String> = fields
        .iter()
        .map(|(k, v)| {
            format!(
                "{k}={}",
                v.replace('%', "%25").replace('&', "%26").replace(' ', "+")
            )
        })
        .collect();
    body.push(format!("csrf_token={token}"));
    let response = client()
        .post(site.url(path))
        .header("cookie", &cookie)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(body.join("&"))
        .send()
        .await
        .unwrap();
    let next = match response.headers().get("set-cookie") {
        Some(_) => cookie_pair(&response),
        None => cookie,
    };
    (response, next)
}

/// The password every end-to-end test account uses.
pub const PASSWORD: &str = "correct horse battery";

/// The session cookie's `name=value` among a response's `Set-Cookie`s (not the device cookie,
/// not the anonymous forms' `-csrf` one), if it sets one.
pub fn session_cookie(response: &reqwest::Response) -> Option<String> {
    response
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .filter_map(|v| v.split(';').next())
        .map(str::trim)
        .find(|pair| {
            let name = pair.split('=').next().unwrap_or_default();
            !name.ends_with("portcullis_device") && !name.ends_with("-csrf")
        })
        .map(str::to_owned)
}

/// Registers `name` through the real form, which logs in, and logs out again: the account
/// starts with no session.
pub async fn register(site: &Site, name: &str) {
    let fields = [
        ("name", name),
        ("password", PASSWORD),
        ("confirm", PASSWORD),
    ];
    let (response, _) = post_form(site, None, "/register", &fields).await;
    assert_eq!(response.status(), 303, "registration of {name}");
    assert_eq!(response.headers()["location"], "/", "registering logs in");
    let cookie = session_cookie(&response).unwrap();
    let (response, _) = post_form(site, Some(&cookie), "/logout", &[]).await;
    assert_eq!(response.status(), 303, "log-out of {name}");
}

/// Registers `name` and logs in through the real forms; returns the session cookie.
pub async fn register_and_log_in(site: &Site, name: &str) -> String {
    register(site, name).await;
    let log_in = [("name", name), ("password", PASSWORD)];
    let (response, cookie) = post_form(site, None, "/login", &log_in).await;
    assert_eq!(response.status(), 303, "log-in of {name}");
    assert_eq!(response.headers()["location"], "/");
    cookie
}
