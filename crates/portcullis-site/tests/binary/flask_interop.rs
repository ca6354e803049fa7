//! `SESSION_FORMAT=flask` against the real thing: the `portcullis` binary and a Flask app
//! (Flask 3.1, Flask-Session 0.8, Flask-WTF 1.3, under gunicorn: `tests/flask_app/app.py`) on
//! one `redis-server`, with one `SECRET_KEY` and one accounts database. A browser's cookie goes
//! to both, as it would on one host, and each test checks a promise in both directions.
//!
//! The Flask side runs from the virtual environment that `scripts/test` makes in
//! `target/flask-venv` (or `PORTCULLIS_FLASK_VENV`). Without it these tests fail, never skip.
#![allow(clippy::unwrap_used)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::support::{Site, client};
use portcullis_testing::redis::{RedisServer, Reply};
use reqwest::header::{HeaderMap, HeaderValue};
use serde_json::{Value, json};

/// The Flask app's key: 18 bytes, shorter than the native format allows, as a Flask app's key
/// may well be; the Flask format takes it (with a warning).
const SECRET: &str = "flask-app-key-2019";
const PASSWORD: &str = "correct horse battery";
/// How long the Flask app may take to answer its first request.
const PATIENCE: Duration = Duration::from_secs(30);

/// The virtual environment with Flask and gunicorn.
fn venv() -> PathBuf {
    let path = std::env::var_os("PORTCULLIS_FLASK_VENV").map_or_else(
        || Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/flask-venv"),
        PathBuf::from,
    );
    assert!(
        path.join("bin/gunicorn").is_file(),
        "the Flask test environment is missing ({}/bin/gunicorn): run scripts/test, which \
         installs Flask, Flask-Session, Flask-WTF, redis-py and gunicorn into target/flask-venv \
         (or point PORTCULLIS_FLASK_VENV at such a virtual environment)",
        path.display()
    );
    path
}

/// Keeps gunicorn running while the test holds its stdin; kills it when the test process goes
/// away however it goes (the pipe closes), as the Redis harness does for its servers.
const WATCHDOG: &str = r#"
"$@" &
pid=$!
read -r _
kill -INT "$pid" 2>/dev/null
wait "$pid" 2>/dev/null
"#;

/// `tests/flask_app/app.py` under gunicorn on a free port.
struct FlaskApp {
    watchdog: Child,
    stdin: Option<ChildStdin>,
    port: u16,
    log: Arc<Mutex<String>>,
}

impl FlaskApp {
    fn start(venv: &Path, redis: &RedisServer, users_db: &Path) -> Self {
        let app_dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/flask_app");
        let mut watchdog = Command::new("sh")
            .arg("-c")
            .arg(WATCHDOG)
            .arg("sh")
            .arg(venv.join("bin/gunicorn"))
            .args([
                "--bind",
                "127.0.0.1:0",
                "--workers",
                "1",
                "--no-control-socket",
            ])
            .arg("--chdir")
            .arg(&app_dir)
            .arg("app:app")
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            // No __pycache__ in the source tree.
            .env("PYTHONDONTWRITEBYTECODE", "1")
            .env("SECRET_KEY", SECRET)
            .env("REDIS_URL", redis.url())
            .env("USERS_DB", users_db)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stdin = watchdog.stdin.take();
        let stderr = watchdog.stderr.take().unwrap();
        let log = Arc::new(Mutex::new(String::new()));
        let (tx, rx) = std::sync::mpsc::channel();
        let sink = Arc::clone(&log);
        std::thread::spawn(move || {
            let mut tx = Some(tx);
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Some((_, rest)) = line.split_once("Listening at: http://127.0.0.1:")
                    && let Some(tx) = tx.take()
                {
                    let port = rest.split_whitespace().next().unwrap_or_default();
                    let _ = tx.send(port.parse::<u16>().unwrap());
                }
                let mut log = sink.lock().unwrap();
                log.push_str(&line);
                log.push('\n');
            }
        });
        let port = rx
            .recv_timeout(PATIENCE)
            .unwrap_or_else(|_| panic!("gunicorn did not start; log:\n{}", log.lock().unwrap()));
        Self {
            watchdog,
            stdin,
            port,
            log,
        }
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    /// Polls `/healthz` until the worker answers.
    async fn ready(&self) {
        let start = Instant::now();
        loop {
            if let Ok(response) = client().get(self.url("/healthz")).send().await
                && response.status() == 200
            {
                return;
            }
            assert!(
                start.elapsed() < PATIENCE,
                "the Flask app did not answer; log:\n{}",
                self.log.lock().unwrap()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

impl Drop for FlaskApp {
    fn drop(&mut self) {
        // Closing the watchdog's stdin stops gunicorn.
        drop(self.stdin.take());
        let _ = self.watchdog.wait();
    }
}

/// One Redis, one accounts database, the Portcullis site and the Flask app on them.
struct Both {
    redis: RedisServer,
    site: Site,
    flask: FlaskApp,
    _dir: tempfile::TempDir,
}

async fn both() -> Both {
    // First, so that a missing environment fails before anything starts.
    let venv = venv();
    let redis = RedisServer::start();
    let dir = tempfile::tempdir().unwrap();
    let users_db = dir.path().join("users.db");
    let database_url = format!("sqlite://{}", users_db.display());
    let redis_url = redis.url();
    let site = Site::start(
        dir.path(),
        &[
            ("PORTCULLIS_PROFILE", "redis"),
            ("SESSION_FORMAT", "flask"),
            ("SECRET_KEY", SECRET),
            ("REDIS_URL", &redis_url),
            ("DATABASE_URL", &database_url),
            // The tests play the TLS-terminating proxy on loopback.
            ("TRUSTED_PROXIES", "127.0.0.1"),
        ],
    );
    // The site created the users table at start-up; the Flask app only reads it.
    let flask = FlaskApp::start(&venv, &redis, &users_db);
    flask.ready().await;
    Both {
        redis,
        site,
        flask,
        _dir: dir,
    }
}

/// A browser on one host: one `session` cookie, sent to both apps and replaced by either.
#[derive(Default)]
struct Browser {
    cookie: Option<String>,
}

impl Browser {
    async fn send(&mut self, request: reqwest::RequestBuilder) -> reqwest::Response {
        let request = match &self.cookie {
            Some(cookie) => request.header("cookie", cookie),
            None => request,
        };
        let response = request.send().await.unwrap();
        if let Some(header) = response.headers().get("set-cookie") {
            let header = header.to_str().unwrap();
            let pair = header.split(';').next().unwrap().trim();
            let removed = header.contains("Max-Age=0") || pair.ends_with('=');
            self.cookie = (!removed).then(|| pair.to_owned());
        }
        response
    }

    async fn get(&mut self, url: String) -> reqwest::Response {
        self.send(client().get(url)).await
    }

    async fn json(&mut self, url: String) -> Value {
        let response = self.get(url).await;
        assert_eq!(response.status(), 200);
        response.json().await.unwrap()
    }

    async fn post_form(
        &mut self,
        url: String,
        fields: &[(&str, &str)],
        headers: HeaderMap,
    ) -> reqwest::Response {
        let body = fields
            .iter()
            .map(|(name, value)| format!("{name}={}", encode(value)))
            .collect::<Vec<_>>()
            .join("&");
        let request = client()
            .post(url)
            .headers(headers)
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body);
        self.send(request).await
    }

    /// A CSRF token from the site (`/api/csrf-token`) or the Flask app (`/csrf`).
    async fn token(&mut self, url: String) -> String {
        let json = self.json(url).await;
        json["csrf_token"].as_str().unwrap().to_owned()
    }

    /// Posts a form to the site with a token the site issued, as its pages do.
    async fn site_form(
        &mut self,
        both: &Both,
        path: &str,
        fields: &[(&str, &str)],
    ) -> reqwest::Response {
        let token = self.token(both.site.url("/api/csrf-token")).await;
        let mut all = fields.to_vec();
        all.push(("csrf_token", &token));
        self.post_form(both.site.url(path), &all, HeaderMap::new())
            .await
    }

    /// Posts a form to the Flask app with a token the Flask app issued.
    async fn flask_form(
        &mut self,
        both: &Both,
        path: &str,
        fields: &[(&str, &str)],
    ) -> reqwest::Response {
        let token = self.token(both.flask.url("/csrf")).await;
        let mut all = fields.to_vec();
        all.push(("csrf_token", &token));
        self.post_form(both.flask.url(path), &all, HeaderMap::new())
            .await
    }

    /// `PUT /api/prefs`: a CSRF-protected write open to anonymous sessions.
    async fn site_prefs(&mut self, both: &Both, token: &str, body: Value) -> reqwest::Response {
        let request = client()
            .put(both.site.url("/api/prefs"))
            .header("x-csrftoken", token)
            .json(&body);
        self.send(request).await
    }
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

fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
    let mut map = HeaderMap::new();
    for (name, value) in pairs {
        map.insert(*name, HeaderValue::from_str(value).unwrap());
    }
    map
}

/// Registers `name` on the site, in a browser of its own.
async fn register(both: &Both, name: &str) {
    let fields = [
        ("name", name),
        ("password", PASSWORD),
        ("confirm", PASSWORD),
    ];
    let response = Browser::default()
        .site_form(both, "/register", &fields)
        .await;
    assert_eq!(response.status(), 303, "registration");
}

/// The sid in a `session=sid.sig` cookie.
fn sid(cookie: &str) -> &str {
    let value = cookie.strip_prefix("session=").unwrap();
    value.rsplit_once('.').unwrap().0
}

fn record_exists(both: &Both, cookie: &str) -> bool {
    let key = format!("sess:{}", sid(cookie));
    match portcullis_testing::redis::command(both.redis.port(), &["EXISTS", &key]).unwrap() {
        Reply::Integer(n) => n == 1,
        other => panic!("EXISTS answered {other:?}"),
    }
}

/// The site's `/api/me` for `cookie`: the user name, or `None` when not logged in.
async fn site_user(both: &Both, cookie: &str) -> Option<String> {
    let response = client()
        .get(both.site.url("/api/me"))
        .header("cookie", cookie)
        .send()
        .await
        .unwrap();
    match response.status().as_u16() {
        200 => Some(
            response.json::<Value>().await.unwrap()["user"]
                .as_str()?
                .to_owned(),
        ),
        401 => None,
        other => panic!("/api/me answered {other}"),
    }
}

/// The Flask app's `_user_id` for `cookie`.
async fn flask_user(both: &Both, cookie: &str) -> Option<String> {
    let response = client()
        .get(both.flask.url("/whoami"))
        .header("cookie", cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let json: Value = response.json().await.unwrap();
    json["user_id"].as_str().map(str::to_owned)
}

#[tokio::test]
async fn a_user_logged_in_on_either_app_is_logged_in_on_the_other() {
    let both = both().await;
    register(&both, "alice").await;

    // Flask logs in (Flask-Login's keys, a new sid, a timestamp); the site knows the user.
    let mut on_flask = Browser::default();
    let response = on_flask
        .flask_form(&both, "/login", &[("name", "alice")])
        .await;
    assert_eq!(response.status(), 200, "{}", both.flask.log.lock().unwrap());
    let alice_id = response.json::<Value>().await.unwrap()["user_id"].clone();
    let cookie = on_flask.cookie.clone().unwrap();
    assert_eq!(site_user(&both, &cookie).await.as_deref(), Some("alice"));
    // The site wrote the session back (its password binding, its created-at): Flask still
    // reads every key it wrote, with its types.
    let dump = on_flask.json(both.flask.url("/session")).await;
    assert_eq!(dump["_user_id"]["value"], alice_id);
    assert_eq!(dump["_fresh"]["value"], true);
    assert_eq!(dump["logged_in_at"]["type"], "datetime");
    assert_eq!(dump["_auth_hash"]["type"], "str");
    assert_eq!(dump["_portcullis"]["type"], "dict");
    assert_eq!(
        site_user(&both, &cookie).await.as_deref(),
        Some("alice"),
        "and the site still accepts it after Flask's write"
    );

    // The site logs in; Flask knows the user.
    let mut on_site = Browser::default();
    let response = on_site
        .site_form(
            &both,
            "/login",
            &[("name", "alice"), ("password", PASSWORD)],
        )
        .await;
    assert_eq!(response.status(), 303);
    let cookie = on_site.cookie.clone().unwrap();
    assert_eq!(
        flask_user(&both, &cookie).await.as_deref(),
        alice_id.as_str()
    );
    assert_eq!(site_user(&both, &cookie).await.as_deref(), Some("alice"));
}

#[tokio::test]
async fn what_the_site_writes_flask_reads_with_its_own_keys_and_flashes_kept() {
    let both = both().await;
    register(&both, "bob").await;
    let mut browser = Browser::default();
    // Flask writes a value the site has no use for: a dict with a timestamp, a float, a tuple,
    // None and a 64-bit integer.
    let response = browser.flask_form(&both, "/rich", &[]).await;
    assert_eq!(response.status(), 200);
    // The site logs in (new sid, a welcome flash), then writes its own value (a preference).
    let response = browser
        .site_form(&both, "/login", &[("name", "bob"), ("password", PASSWORD)])
        .await;
    assert_eq!(response.status(), 303);
    let token = browser.token(both.site.url("/api/csrf-token")).await;
    let response = browser
        .site_prefs(&both, &token, json!({ "devices_order": "started" }))
        .await;
    assert_eq!(response.status(), 200);

    let dump = browser.json(both.flask.url("/session")).await;
    let flask_only = &dump["flask_only"]["value"];
    assert_eq!(flask_only["at"]["type"], "datetime");
    assert_eq!(flask_only["at"]["value"], "2026-05-01T12:30:00+00:00");
    assert_eq!(
        flask_only["ratio"],
        json!({ "type": "float", "value": 1.5 })
    );
    assert_eq!(flask_only["pair"]["value"][1]["value"], "two");
    assert_eq!(flask_only["nothing"]["type"], "NoneType");
    assert_eq!(flask_only["big"]["value"], 1_u64 << 40);
    // The view options as the site encodes them: a msgpack array, `[devices_order,
    // devices_times]`.
    assert_eq!(
        dump["_prefs"],
        json!({ "type": "list", "value": [
            { "type": "str", "value": "started" },
            { "type": "str", "value": "relative" },
        ] })
    );
    assert_eq!(dump["_user_id"]["type"], "str");
    let flashes = browser.json(both.flask.url("/flashes")).await;
    assert_eq!(flashes, json!([["message", "Welcome back, bob!"]]));

    // A message flashed by Flask shows on the site's next page.
    let response = browser
        .flask_form(&both, "/flash", &[("message", "Saved on Flask")])
        .await;
    assert_eq!(response.status(), 200);
    let page = browser.get(both.site.url("/")).await;
    assert_eq!(page.status(), 200);
    let html = page.text().await.unwrap();
    assert!(html.contains("Saved on Flask"), "{html}");
    assert!(html.contains("bob"), "the dashboard of the logged-in user");
}

#[tokio::test]
async fn a_csrf_token_issued_by_either_app_is_accepted_by_the_other() {
    let both = both().await;
    // A session started by the site: its token passes Flask-WTF.
    let mut first = Browser::default();
    let site_token = first.token(both.site.url("/api/csrf-token")).await;
    let fields = [("note", "hi"), ("csrf_token", site_token.as_str())];
    let response = first
        .post_form(both.flask.url("/form"), &fields, HeaderMap::new())
        .await;
    assert_eq!(response.status(), 200, "Flask accepts the site's token");
    // The Flask app's token for the same session passes the site.
    let flask_token = first.token(both.flask.url("/csrf")).await;
    let response = first
        .site_prefs(&both, &flask_token, json!({ "devices_order": "started" }))
        .await;
    assert_eq!(response.status(), 200, "the site accepts Flask's token");

    // A form the site renders (its log-in page) posts to Flask.
    let page = first.get(both.site.url("/login")).await;
    let html = page.text().await.unwrap();
    let start = html.find("name=\"csrf_token\" value=\"").unwrap() + 25;
    let rendered = &html[start..start + html[start..].find('"').unwrap()];
    let fields = [("note", "from a page"), ("csrf_token", rendered)];
    let response = first
        .post_form(both.flask.url("/form"), &fields, HeaderMap::new())
        .await;
    assert_eq!(
        response.status(),
        200,
        "Flask accepts the token of the site's page"
    );

    // A session started by Flask: the same, the other way round.
    let mut second = Browser::default();
    let flask_token = second.token(both.flask.url("/csrf")).await;
    let response = second
        .site_prefs(&both, &flask_token, json!({ "devices_order": "last-used" }))
        .await;
    assert_eq!(response.status(), 200);
    let site_token = second.token(both.site.url("/api/csrf-token")).await;
    let fields = [("csrf_token", site_token.as_str())];
    let response = second
        .post_form(both.flask.url("/form"), &fields, HeaderMap::new())
        .await;
    assert_eq!(response.status(), 200);

    // Another session's token is refused by both, for the same reason.
    let mismatch = "The CSRF tokens do not match.";
    let response = first
        .site_prefs(&both, &flask_token, json!({ "devices_order": "started" }))
        .await;
    assert_eq!(response.status(), 403);
    assert_eq!(response.json::<Value>().await.unwrap()["error"], mismatch);
    let fields = [("csrf_token", site_token.as_str())];
    let response = first
        .post_form(both.flask.url("/form"), &fields, HeaderMap::new())
        .await;
    assert_eq!(response.status(), 400);
    assert_eq!(response.json::<Value>().await.unwrap()["error"], mismatch);

    // Over HTTPS (a trusted proxy says so), both want a Referer on their own host.
    for (name, post_url, host) in [
        (
            "site",
            both.site.url("/account/preferences"),
            both.site.addr.to_string(),
        ),
        (
            "flask",
            both.flask.url("/form"),
            format!("127.0.0.1:{}", both.flask.port),
        ),
    ] {
        let token = if name == "site" {
            first.token(both.site.url("/api/csrf-token")).await
        } else {
            first.token(both.flask.url("/csrf")).await
        };
        let fields = [("csrf_token", token.as_str())];
        let https = [("x-forwarded-proto", "https")];
        let response = first
            .post_form(post_url.clone(), &fields, headers(&https))
            .await;
        assert!(
            matches!(response.status().as_u16(), 400 | 403),
            "{name}: {}",
            response.status()
        );
        let text = response.text().await.unwrap();
        assert!(
            text.contains("The referrer header is missing."),
            "{name}: {text}"
        );
        let referrer = format!("https://{host}/account");
        let with_referrer = [
            ("x-forwarded-proto", "https"),
            ("referer", referrer.as_str()),
        ];
        let response = first
            .post_form(post_url, &fields, headers(&with_referrer))
            .await;
        // The site's form needs a logged-in user: past CSRF it redirects to the log-in page.
        assert!(
            matches!(response.status().as_u16(), 200 | 303),
            "{name}: {} {}",
            response.status(),
            response.text().await.unwrap()
        );
    }
}

#[tokio::test]
async fn logging_out_on_either_app_ends_the_session_on_both() {
    let both = both().await;
    register(&both, "carol").await;

    // Logged in on the site, out on Flask.
    let mut browser = Browser::default();
    let response = browser
        .site_form(
            &both,
            "/login",
            &[("name", "carol"), ("password", PASSWORD)],
        )
        .await;
    assert_eq!(response.status(), 303);
    let cookie = browser.cookie.clone().unwrap();
    assert!(flask_user(&both, &cookie).await.is_some());
    let response = browser.flask_form(&both, "/logout", &[]).await;
    assert_eq!(response.status(), 200);
    assert_eq!(browser.cookie, None, "Flask deleted the cookie");
    assert!(!record_exists(&both, &cookie), "and the record");
    assert_eq!(
        site_user(&both, &cookie).await,
        None,
        "the old cookie is worthless"
    );

    // Logged in on Flask, out on the site.
    let mut browser = Browser::default();
    let response = browser
        .flask_form(&both, "/login", &[("name", "carol")])
        .await;
    assert_eq!(response.status(), 200);
    let cookie = browser.cookie.clone().unwrap();
    assert_eq!(site_user(&both, &cookie).await.as_deref(), Some("carol"));
    let response = browser.site_form(&both, "/logout", &[]).await;
    assert_eq!(response.status(), 303);
    assert_eq!(browser.cookie, None, "the site expired the cookie");
    assert!(!record_exists(&both, &cookie), "and deleted the record");
    assert_eq!(flask_user(&both, &cookie).await, None);
    assert_eq!(site_user(&both, &cookie).await, None);
}
