//! The site in-process: `app(state)` on a memory store and a `ManualClock`, driven with
//! `tower::ServiceExt::oneshot`, and a tiny browser that keeps the session cookie and puts the
//! CSRF token in forms. Raw session values are read and written through [`TestApp::side`], a
//! router built only here: the site itself has no route that writes arbitrary keys.
#![allow(dead_code, unreachable_pub, missing_docs, clippy::unwrap_used)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{HeaderMap, Method, Request, StatusCode};
use axum::routing::get;
use http_body_util::BodyExt;
use portcullis::clock::ManualClock;
use portcullis::config::ConfigLoader;
use portcullis::store::MemoryStore;
use portcullis::{Session, SessionLayer};
use portcullis_site::config::SiteConfig;
use portcullis_site::{AppState, app};
use portcullis_testing::Probe;
use portcullis_testing::probe::HeldCreate;
use serde_json::{Value, json};
use tempfile::TempDir;
use tower::ServiceExt;

pub const SECRET: &str = "an in-process test secret key of 32+ bytes";
pub const PASSWORD: &str = "correct horse battery";

/// The accounts database a [`TestApp`] runs on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Database {
    /// A SQLite file in the app's temporary folder (the embedded default).
    Sqlite,
    /// A fresh database of its own on the test binary's shared PostgreSQL cluster.
    Postgres,
}

/// One site: its router, clock and store.
pub struct TestApp {
    pub router: Router,
    pub clock: ManualClock,
    pub store: MemoryStore,
    pub state: AppState,
    /// The store the site sees: `store`, with loads that can be raced
    /// ([`TestApp::race_next_loads`]).
    probe: Probe<MemoryStore>,
    _dir: TempDir,
}

impl TestApp {
    pub async fn new() -> Self {
        Self::with_env(&[]).await
    }

    /// A site whose configuration is the defaults plus `env`, its accounts on SQLite.
    pub async fn with_env(env: &[(&str, &str)]) -> Self {
        Self::on(Database::Sqlite, env).await
    }

    /// A site whose configuration is the defaults plus `env`, its accounts on `database`.
    pub async fn on(database: Database, env: &[(&str, &str)]) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let db = match database {
            Database::Sqlite => format!("sqlite://{}", dir.path().join("users.db").display()),
            Database::Postgres => portcullis_testing::Postgres::shared().database(),
        };
        let mut vars = vec![
            ("SECRET_KEY".to_owned(), SECRET.to_owned()),
            ("SESSION_TYPE".to_owned(), "memory".to_owned()),
            ("DATABASE_URL".to_owned(), db),
        ];
        vars.extend(env.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())));
        let (config, site_config) = ConfigLoader::new()
            .env(vars)
            .no_dotenv()
            .state_dir(dir.path().join("state"))
            .load_with::<SiteConfig>()
            .unwrap();
        let clock = ManualClock::new();
        let store = MemoryStore::with_clock(Arc::new(clock.clone()));
        let probe = Probe::new(store.clone());
        let state = AppState::open_with_clock(
            config,
            site_config,
            Arc::new(probe.clone()),
            Arc::new(clock.clone()),
        )
        .await
        .unwrap();
        Self {
            router: app(state.clone()),
            clock,
            store,
            state,
            probe,
            _dir: dir,
        }
    }

    /// Makes the next `n` session loads wait for each other, so that `n` concurrent requests
    /// all read the same version of a session before any of them writes
    /// ([`Probe::race_next_loads`]).
    pub fn race_next_loads(&self, n: usize) {
        self.probe.race_next_loads(n);
    }

    /// Holds the next log-in's write to the user's index until released
    /// ([`Probe::hold_next_create_indexed`]).
    pub fn hold_next_create_indexed(&self) -> HeldCreate {
        self.probe.hold_next_create_indexed()
    }

    /// How many session loads the store has seen.
    pub fn loads(&self) -> usize {
        self.probe.stats.loads()
    }

    /// Polls until the store has seen `n` session loads (at most 10 s).
    pub async fn until_loads(&self, n: usize) {
        let start = std::time::Instant::now();
        while self.loads() < n {
            assert!(
                start.elapsed() < Duration::from_secs(10),
                "only {} loads",
                self.loads()
            );
            tokio::task::yield_now().await;
        }
    }

    pub fn browser(&self) -> Browser<'_> {
        Browser {
            app: self,
            cookie: None,
            device_cookie: None,
            csrf_cookie: None,
            peer: "127.0.0.1:40000".parse().unwrap(),
        }
    }

    /// Sends `request`, with `Host: localhost` when it names no host (as every HTTP/1.1 client
    /// does; the dev profile answers only to loopback names).
    pub async fn send(&self, mut request: Request<Body>) -> Page {
        if request.uri().authority().is_none() && !request.headers().contains_key("host") {
            request
                .headers_mut()
                .insert("host", axum::http::HeaderValue::from_static("localhost"));
        }
        let response = self.router.clone().oneshot(request).await.unwrap();
        let status = response.status();
        let headers = response.headers().clone();
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        Page {
            status,
            headers,
            body: String::from_utf8_lossy(&bytes).into_owned(),
        }
    }

    /// A second router on the same store, keys and clock, to look inside a session (and write
    /// raw values into it) as a Flask app sharing the store would: `GET /values` answers
    /// `{"data": {every key}, "user_id": ...}`, `POST /values` stores `{"key": k, "value": v}`.
    pub fn side(&self) -> Router {
        async fn values(session: Session) -> axum::Json<Value> {
            let mut data = serde_json::Map::new();
            for key in session.keys().await.unwrap() {
                let value = session.get::<Value>(&key).await.unwrap().unwrap();
                data.insert(key, value);
            }
            axum::Json(json!({ "data": data, "user_id": session.user_id().await.unwrap() }))
        }
        async fn write(session: Session, axum::Json(body): axum::Json<Value>) -> StatusCode {
            let key = body["key"].as_str().unwrap();
            session.insert(key, body["value"].clone()).await.unwrap();
            StatusCode::OK
        }
        let layer = SessionLayer::from_config(self.state.config(), self.store.clone())
            .with_clock(Arc::new(self.clock.clone()));
        Router::new()
            .route("/values", get(values).post(write))
            .layer(layer)
    }

    /// Every value of the session that `cookie` names, with its user id (see [`TestApp::side`]).
    pub async fn peek(&self, cookie: &str) -> Value {
        let request = Request::get("/values")
            .header("cookie", cookie)
            .body(Body::empty())
            .unwrap();
        let response = self.side().oneshot(request).await.unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        serde_json::from_slice(&bytes).unwrap()
    }

    /// Stores `value` under `key` in the session that `cookie` names, past the site's routes.
    pub async fn write_raw(&self, cookie: &str, key: &str, value: Value) {
        let body = json!({ "key": key, "value": value }).to_string();
        let request = Request::post("/values")
            .header("cookie", cookie)
            .header("content-type", "application/json")
            .body(Body::from(body))
            .unwrap();
        let response = self.side().oneshot(request).await.unwrap();
        assert_eq!(response.status(), StatusCode::OK);
    }

    /// Moves the clock past the idle lifetime (5 minutes).
    pub fn idle_out(&self) {
        self.clock.advance(Duration::from_secs(301));
    }

    /// Registers `name` with [`PASSWORD`] in a browser of its own. Registering logs that
    /// browser in; it logs out again, so the account starts with no session.
    pub async fn register(&self, name: &str) {
        let mut browser = self.browser();
        let page = browser
            .post_form(
                "/register",
                &[
                    ("name", name),
                    ("display_name", ""),
                    ("password", PASSWORD),
                    ("confirm", PASSWORD),
                ],
            )
            .await;
        assert_eq!(
            (page.status, page.location()),
            (StatusCode::SEE_OTHER, "/"),
            "{}",
            page.body
        );
        let page = browser.log_out().await;
        assert_eq!(page.status, StatusCode::SEE_OTHER, "{}", page.body);
    }

    /// A browser logged in as `name` (registered first).
    pub async fn logged_in(&self, name: &str) -> Browser<'_> {
        self.register(name).await;
        let mut browser = self.browser();
        let page = browser.log_in(name, PASSWORD).await;
        assert_eq!(page.status, StatusCode::SEE_OTHER, "{}", page.body);
        browser
    }
}

/// A response, read whole.
#[derive(Debug)]
pub struct Page {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: String,
}

impl Page {
    pub fn location(&self) -> &str {
        self.headers
            .get("location")
            .map_or("", |v| v.to_str().unwrap())
    }

    pub fn header(&self, name: &str) -> &str {
        self.headers.get(name).map_or("", |v| v.to_str().unwrap())
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("{e}: {}", self.body))
    }

    /// The value of the first `name="csrf_token" value="..."` field.
    pub fn csrf_field(&self) -> Option<String> {
        let start = self.body.find("name=\"csrf_token\" value=\"")? + 25;
        let end = self.body[start..].find('"')? + start;
        Some(self.body[start..end].to_owned())
    }
}

/// The device cookie's name, over HTTP and with `Secure`.
pub const DEVICE_COOKIE: &str = "portcullis_device";
pub const SECURE_DEVICE_COOKIE: &str = "__Host-portcullis_device";

/// Keeps the session cookie, the anonymous forms' CSRF cookie and the device cookie like a
/// browser, from one client address.
#[derive(Clone)]
pub struct Browser<'a> {
    pub app: &'a TestApp,
    /// `name=value` of the session cookie.
    pub cookie: Option<String>,
    /// `name=value` of the pre-session CSRF cookie (`<session cookie name>-csrf`).
    pub csrf_cookie: Option<String>,
    /// The device cookie's `name=value`, given at log-in and kept across log-outs.
    pub device_cookie: Option<String>,
    pub peer: SocketAddr,
}

impl Browser<'_> {
    pub async fn request(
        &mut self,
        method: Method,
        path: &str,
        headers: &[(&str, &str)],
        body: Body,
    ) -> Page {
        let mut request = Request::builder().method(method).uri(path);
        let cookies: Vec<&str> = [&self.cookie, &self.csrf_cookie, &self.device_cookie]
            .into_iter()
            .flatten()
            .map(String::as_str)
            .collect();
        if !cookies.is_empty() {
            request = request.header("cookie", cookies.join("; "));
        }
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let mut request = request.body(body).unwrap();
        request.extensions_mut().insert(ConnectInfo(self.peer));
        let page = self.app.send(request).await;
        self.remember(&page);
        page
    }

    fn remember(&mut self, page: &Page) {
        for header in page.headers.get_all("set-cookie") {
            let header = header.to_str().unwrap();
            let pair = header.split(';').next().unwrap().trim();
            let expired = header.contains("Max-Age=0") || pair.ends_with('=');
            let name = pair.split('=').next().unwrap_or_default();
            let slot = if name == DEVICE_COOKIE || name == SECURE_DEVICE_COOKIE {
                &mut self.device_cookie
            } else if name.ends_with("-csrf") {
                &mut self.csrf_cookie
            } else {
                &mut self.cookie
            };
            *slot = (!expired).then(|| pair.to_owned());
        }
    }

    pub async fn get(&mut self, path: &str) -> Page {
        self.request(Method::GET, path, &[], Body::empty()).await
    }

    /// A form post with a fresh CSRF token, as a page of the site would send it.
    pub async fn post_form(&mut self, path: &str, fields: &[(&str, &str)]) -> Page {
        let token = self.csrf_token().await;
        let mut all = fields.to_vec();
        all.push(("csrf_token", &token));
        self.post_form_raw(path, &all).await
    }

    /// A form post exactly as given (no token added).
    pub async fn post_form_raw(&mut self, path: &str, fields: &[(&str, &str)]) -> Page {
        let body = form_body(fields);
        let headers = [("content-type", "application/x-www-form-urlencoded")];
        self.request(Method::POST, path, &headers, Body::from(body))
            .await
    }

    pub async fn csrf_token(&mut self) -> String {
        let page = self.get("/api/csrf-token").await;
        assert_eq!(page.status, StatusCode::OK, "{}", page.body);
        page.json()["csrf_token"].as_str().unwrap().to_owned()
    }

    /// JSON with the `X-CSRFToken` header.
    pub async fn send_json(&mut self, method: Method, path: &str, body: &str) -> Page {
        let token = self.csrf_token().await;
        let headers = [
            ("content-type", "application/json"),
            ("x-csrftoken", &*token),
        ];
        self.request(method, path, &headers, Body::from(body.to_owned()))
            .await
    }

    pub async fn log_in(&mut self, name: &str, password: &str) -> Page {
        self.post_form("/login", &[("name", name), ("password", password)])
            .await
    }

    pub async fn log_out(&mut self) -> Page {
        self.post_form("/logout", &[]).await
    }
}

/// Asserts that `POST path` reaches a handler: with a valid token, from a new anonymous
/// browser, it is answered by the route (a redirect or a 4xx of its own), not 404 or 405.
/// "Refused without a token" tests call it, because the CSRF layer refuses before routing and
/// would refuse a path with no route just the same.
pub async fn assert_routed(app: &TestApp, path: &str) {
    let page = app.browser().post_form(path, &[]).await;
    assert!(
        ![
            StatusCode::NOT_FOUND,
            StatusCode::METHOD_NOT_ALLOWED,
            StatusCode::FORBIDDEN
        ]
        .contains(&page.status),
        "POST {path} with a token: {} {}",
        page.status,
        page.body
    );
}

/// `a=b&c=d`, percent-encoded.
pub fn form_body(fields: &[(&str, &str)]) -> String {
    fields
        .iter()
        .map(|(k, v)| format!("{}={}", encode(k), encode(v)))
        .collect::<Vec<_>>()
        .join("&")
}

fn encode(text: &str) -> String {
    text.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                char::from(b).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// Log lines written on this thread while it lives (`tokio::test` runs the test and the
/// handlers it drives on one thread), at `info` and above, without colour codes.
///
/// One global subscriber for the whole test binary routes each line to the capture of the
/// thread that wrote it: a per-thread `set_default` can miss lines when another test thread
/// registers the same call sites first.
pub struct CapturedLog {
    lines: Arc<std::sync::Mutex<Vec<u8>>>,
}

thread_local! {
    static CAPTURE: std::cell::RefCell<Option<Arc<std::sync::Mutex<Vec<u8>>>>> =
        const { std::cell::RefCell::new(None) };
}

impl CapturedLog {
    pub fn start() -> Self {
        static INSTALLED: std::sync::Once = std::sync::Once::new();
        INSTALLED.call_once(|| {
            let subscriber = tracing_subscriber::fmt()
                .with_writer(|| Sink)
                .with_ansi(false)
                .with_max_level(tracing::Level::INFO)
                .finish();
            tracing::subscriber::set_global_default(subscriber).unwrap();
        });
        let lines = Arc::new(std::sync::Mutex::new(Vec::new()));
        CAPTURE.with(|capture| *capture.borrow_mut() = Some(Arc::clone(&lines)));
        Self { lines }
    }

    /// Everything logged so far.
    pub fn text(&self) -> String {
        String::from_utf8(self.lines.lock().unwrap().clone()).unwrap()
    }
}

impl Drop for CapturedLog {
    fn drop(&mut self) {
        CAPTURE.with(|capture| capture.borrow_mut().take());
    }
}

/// Writes to this thread's capture, if any; elsewhere, nowhere.
struct Sink;

impl std::io::Write for Sink {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        CAPTURE.with(|capture| {
            if let Some(lines) = &*capture.borrow() {
                lines.lock().unwrap().extend_from_slice(buf);
            }
        });
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}
