//! End to end in real headless Chromium, driven over WebDriver (chromedriver, fantoccini): a
//! person registers, logs in, cannot read the session cookie from a script, changes a setting,
//! logs out and finds nothing private behind Back; and, on a 5-second lifetime, comes back after
//! the idle time to the expiry message. Saves screenshots of the log-in page and the dashboard
//! under `target/screenshots/`.
//!
//! Needs Debian's `chromium` and `chromium-driver` (`scripts/test` installs them): without them
//! these tests fail, they do not skip.
#![allow(clippy::unwrap_used, clippy::expect_used)]

// The real binary's launcher, shared with the binary tests (this test stays its own binary:
// it needs Chromium).
#[path = "binary/support.rs"]
mod support;

use std::future::Future;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime};

use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::json;
use support::Site;

/// Longest wait for any condition: generous for a loaded CI machine.
const PATIENCE: Duration = Duration::from_secs(30);
const PASSWORD: &str = "correct horse battery";

/// Polls `condition` every 50 ms until it holds; fails after [`PATIENCE`].
async fn until<F, Fut>(what: &str, mut condition: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let start = Instant::now();
    while !condition().await {
        assert!(start.elapsed() < PATIENCE, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The full path of `program` on `PATH`, or a failure saying how to install it.
fn installed(program: &str) -> PathBuf {
    std::env::var_os("PATH")
        .iter()
        .flat_map(std::env::split_paths)
        .map(|dir| dir.join(program))
        .find(|path| path.is_file())
        .unwrap_or_else(|| {
            panic!(
                "{program} is not installed: the browser test needs Debian's chromium and \
                 chromium-driver (scripts/test installs them; or apt-get install -y chromium \
                 chromium-driver)"
            )
        })
}

/// A chromedriver on a free port, stopped when dropped.
struct Driver {
    child: Child,
    port: u16,
}

impl Driver {
    async fn start() -> Self {
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = Command::new(installed("chromedriver"))
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let driver = Self { child, port };
        let status = format!("http://127.0.0.1:{port}/status");
        until("chromedriver to answer", || async {
            let response = support::client().get(&status).send().await;
            response.is_ok_and(|r| r.status().is_success())
        })
        .await;
        driver
    }

    /// A headless Chromium session with a fresh profile in `profile`.
    async fn browser(&self, profile: &Path) -> Client {
        let args = [
            "--headless=new",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-first-run",
            "--window-size=1000,760",
            &format!("--user-data-dir={}", profile.display()),
        ];
        let options = json!({
            "binary": installed("chromium").display().to_string(),
            "args": args,
        });
        let mut capabilities = serde_json::Map::new();
        capabilities.insert("goog:chromeOptions".to_owned(), options);
        let connector = hyper_util::client::legacy::connect::HttpConnector::new();
        ClientBuilder::new(connector)
            .capabilities(capabilities)
            .connect(&format!("http://127.0.0.1:{}", self.port))
            .await
            .expect("chromedriver starts a Chromium session")
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Types `text` into the field with id `id`, replacing what is there.
async fn fill(browser: &Client, id: &str, text: &str) {
    let field = browser.find(Locator::Id(id)).await.unwrap();
    field.clear().await.unwrap();
    field.send_keys(text).await.unwrap();
}

/// Clicks the submit button whose text is `label`.
async fn submit(browser: &Client, label: &str) {
    let xpath = format!("//button[normalize-space()='{label}']");
    browser
        .find(Locator::XPath(&xpath))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
}

/// Waits until the current page's source contains `text`, and returns it.
async fn page_with(browser: &Client, text: &str) -> String {
    until(&format!("a page with {text:?}"), || async {
        browser.source().await.is_ok_and(|s| s.contains(text))
    })
    .await;
    browser.source().await.unwrap()
}

async fn path(browser: &Client) -> String {
    let url = browser.current_url().await.unwrap();
    match url.query() {
        Some(query) => format!("{}?{query}", url.path()),
        None => url.path().to_owned(),
    }
}

/// `target/screenshots/<name>.png` (ignored by git, so CI leaves the clone clean).
async fn screenshot(browser: &Client, name: &str) {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .parent()
        .unwrap()
        .join("screenshots");
    std::fs::create_dir_all(&dir).unwrap();
    let png = browser.screenshot().await.unwrap();
    assert!(png.starts_with(b"\x89PNG"), "a PNG image");
    std::fs::write(dir.join(format!("{name}.png")), png).unwrap();
}

async fn register_and_log_in(browser: &Client, site: &Site, name: &str, display: &str) {
    browser.goto(&site.url("/register")).await.unwrap();
    fill(browser, "name", name).await;
    fill(browser, "display_name", display).await;
    fill(browser, "password", PASSWORD).await;
    fill(browser, "confirm", PASSWORD).await;
    submit(browser, "Register").await;
    page_with(browser, &format!("Account {name} created. Please log in.")).await;
    assert_eq!(path(browser).await, "/login");
    fill(browser, "name", name).await;
    fill(browser, "password", PASSWORD).await;
}

#[tokio::test]
async fn a_person_registers_logs_in_changes_settings_and_logs_out_in_chromium() {
    let dir = tempfile::tempdir().unwrap();
    let site = Site::start(dir.path(), &[]);
    let driver = Driver::start().await;
    let browser = driver.browser(&dir.path().join("profile")).await;

    register_and_log_in(&browser, &site, "alice", "Alice").await;
    screenshot(&browser, "login").await;
    submit(&browser, "Log in").await;
    let dashboard = page_with(&browser, "id=\"seconds-left\"").await;
    assert!(dashboard.contains("Welcome back, Alice!"));
    assert_eq!(path(&browser).await, "/");

    // Scripts run (CSP does not stop WebDriver's), yet cannot see the HttpOnly cookie.
    let two = browser.execute("return 1 + 1;", vec![]).await.unwrap();
    assert_eq!(two, json!(2));
    let visible = browser
        .execute("return document.cookie;", vec![])
        .await
        .unwrap();
    assert!(!visible.as_str().unwrap().contains("session="), "{visible}");
    let cookie = browser.get_named_cookie("session").await.unwrap();
    assert_eq!(
        cookie.http_only(),
        Some(true),
        "the browser holds it, HttpOnly"
    );
    screenshot(&browser, "dashboard").await;

    // A protected form: the display name.
    browser.goto(&site.url("/account")).await.unwrap();
    let token = browser
        .find(Locator::Css(
            "form[action='/account/display-name'] input[name='csrf_token']",
        ))
        .await;
    assert!(token.is_ok(), "the form carries the CSRF token");
    fill(&browser, "display_name", "Alice Liddell").await;
    submit(&browser, "Save name").await;
    page_with(&browser, "Display name changed to Alice Liddell.").await;

    // Log out, then Back: the private page is fetched again (no-store) and is gone.
    submit(&browser, "Log out").await;
    page_with(&browser, "You have been logged out.").await;
    assert_eq!(path(&browser).await, "/login?logged_out=1");
    browser.back().await.unwrap();
    until("Back to land on the log-in page", || async {
        path(&browser).await.starts_with("/login?next=")
    })
    .await;
    let source = browser.source().await.unwrap();
    assert!(
        !source.contains("Alice Liddell"),
        "nothing private behind Back"
    );
    assert!(source.contains("Please log in."), "{source}");

    browser.close().await.unwrap();
}

#[tokio::test]
async fn after_the_idle_time_chromium_is_asked_to_log_in_again() {
    let dir = tempfile::tempdir().unwrap();
    let site = Site::start(dir.path(), &[("PERMANENT_SESSION_LIFETIME", "5")]);
    let driver = Driver::start().await;
    let browser = driver.browser(&dir.path().join("profile")).await;

    register_and_log_in(&browser, &site, "bob", "Bob").await;
    submit(&browser, "Log in").await;
    page_with(&browser, "id=\"seconds-left\"").await;

    // Wait without requests (each would slide the deadline): the file store's deadline is the
    // session file's mtime. (The user's index file, `sess:idx:{…}`, lives until the absolute
    // deadline, and the kept routing key, `sess:routing-key`, one absolute lifetime.)
    let sessions = dir.path().join(".flask_session");
    let deadline = std::fs::read_dir(&sessions)
        .unwrap()
        .filter_map(Result::ok)
        .filter(|entry| {
            let name = entry.file_name().to_string_lossy().into_owned();
            !name.contains(":idx:") && !name.ends_with(":routing-key")
        })
        .filter_map(|entry| entry.metadata().ok()?.modified().ok())
        .max()
        .unwrap();
    until("the idle deadline to pass", || async {
        SystemTime::now() > deadline
    })
    .await;

    browser
        .find(Locator::LinkText("Account"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    page_with(&browser, "Your session has expired. Please log in again.").await;
    assert_eq!(path(&browser).await, "/login?next=/account&expired=1");

    browser.close().await.unwrap();
}

// --- endings (uxa) ---

/// Waits, without a request (each would slide it), until the idle deadline of every session
/// file in `dir`'s session folder has passed: the file store's deadline is the file's mtime.
/// (Index files, the kept routing key and the `.gitignore` live on their own terms.)
async fn until_sessions_idle_out(dir: &Path) {
    let sessions = dir.join(".flask_session");
    let deadline = std::fs::read_dir(&sessions)
        .unwrap()
        .filter_map(Result::ok)
        .filter(|entry| {
            let name = entry.file_name().to_string_lossy().into_owned();
            !name.starts_with('.') && !name.contains(":idx:") && !name.ends_with(":routing-key")
        })
        .filter_map(|entry| entry.metadata().ok()?.modified().ok())
        .max()
        .unwrap();
    until("the idle deadline to pass", || async {
        SystemTime::now() > deadline
    })
    .await;
}

#[tokio::test]
async fn a_log_in_page_left_open_past_the_idle_time_logs_in_on_the_second_try_in_chromium() {
    let dir = tempfile::tempdir().unwrap();
    // The form's token lives as long as the session here (WTF_CSRF_TIME_LIMIT): the
    // anonymous forms' secret outlives a session, so it is the token that goes stale.
    let env = [
        ("PERMANENT_SESSION_LIFETIME", "3"),
        ("WTF_CSRF_TIME_LIMIT", "3"),
    ];
    let site = Site::start(dir.path(), &env);
    let driver = Driver::start().await;
    let browser = driver.browser(&dir.path().join("profile")).await;

    // The log-in page is open with the name and password typed; then nobody touches it.
    register_and_log_in(&browser, &site, "carol", "Carol").await;
    let rendered = SystemTime::now();
    until_sessions_idle_out(dir.path()).await;
    // Tokens carry their issue time in whole seconds: one more second covers the rounding.
    until("the form's token to expire", || async {
        SystemTime::now() > rendered + Duration::from_secs(3 + 1)
    })
    .await;
    submit(&browser, "Log in").await;
    let again = page_with(&browser, "This form had expired").await;
    assert!(again.contains("class=\"top\""), "in the site's layout");
    assert!(again.contains("(The CSRF token has expired.)"), "{again}");
    let name = browser.find(Locator::Id("name")).await.unwrap();
    assert_eq!(
        name.prop("value").await.unwrap().as_deref(),
        Some("carol"),
        "the name is kept"
    );
    let password = browser.find(Locator::Id("password")).await.unwrap();
    assert_eq!(
        password.prop("value").await.unwrap().as_deref(),
        Some(""),
        "never the password"
    );
    fill(&browser, "password", PASSWORD).await;
    submit(&browser, "Log in").await;
    page_with(&browser, "id=\"seconds-left\"").await;
    assert_eq!(path(&browser).await, "/");

    browser.close().await.unwrap();
}

#[tokio::test]
async fn reloading_the_start_page_after_expiry_shows_the_expiry_message_in_chromium() {
    let dir = tempfile::tempdir().unwrap();
    let site = Site::start(dir.path(), &[("PERMANENT_SESSION_LIFETIME", "3")]);
    let driver = Driver::start().await;
    let browser = driver.browser(&dir.path().join("profile")).await;

    register_and_log_in(&browser, &site, "dave", "Dave").await;
    submit(&browser, "Log in").await;
    let dashboard = page_with(&browser, "id=\"seconds-left\"").await;
    assert!(dashboard.contains("3 seconds"), "durations read as words");
    until_sessions_idle_out(dir.path()).await;
    browser.refresh().await.unwrap();
    let landing = page_with(&browser, "Your session has expired.").await;
    assert!(
        landing.contains("after 3 seconds without activity"),
        "{landing}"
    );
    assert_eq!(path(&browser).await, "/");

    browser.close().await.unwrap();
}

#[tokio::test]
async fn a_session_ended_from_a_second_browser_says_so_on_the_first_in_chromium() {
    let dir = tempfile::tempdir().unwrap();
    let site = Site::start(dir.path(), &[]);
    let driver = Driver::start().await;
    let laptop = driver.browser(&dir.path().join("laptop")).await;
    let phone = driver.browser(&dir.path().join("phone")).await;

    register_and_log_in(&laptop, &site, "erin", "Erin").await;
    submit(&laptop, "Log in").await;
    page_with(&laptop, "id=\"seconds-left\"").await;

    phone.goto(&site.url("/login")).await.unwrap();
    fill(&phone, "name", "erin").await;
    fill(&phone, "password", PASSWORD).await;
    submit(&phone, "Log in").await;
    page_with(&phone, "id=\"seconds-left\"").await;
    phone.goto(&site.url("/account/sessions")).await.unwrap();
    phone
        .find(Locator::Css(
            "form[action='/account/sessions/end-others'] button",
        ))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    until("the phone to end the laptop's session", || async {
        phone
            .source()
            .await
            .is_ok_and(|s| !s.contains("Log out all other devices"))
    })
    .await;

    laptop.refresh().await.unwrap();
    page_with(&laptop, "Your session was ended from another device.").await;
    assert_eq!(path(&laptop).await, "/");

    phone.close().await.unwrap();
    laptop.close().await.unwrap();
}
