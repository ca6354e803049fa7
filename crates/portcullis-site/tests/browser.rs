//! End to end in real headless Chromium, driven over WebDriver (chromedriver, fantoccini): a
//! person registers, logs in, cannot read the session cookie from a script, changes a setting,
//! logs out and finds nothing private behind Back; and, on a 5-second lifetime, comes back after
//! the idle time to the expiry message. Every page, at desktop and phone width (390 px) and in
//! both themes, meets WCAG 2.2 AA (axe-core, fetched by `scripts/fetch-axe-core`, plus checks
//! of control borders and focus rings), and an appearance chosen in one Chromium shows in
//! another. Saves screenshots of every page under `target/screenshots/`.
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
    // Registering logs in (see the registration section below); log out, to log in through
    // the form.
    page_with(browser, &format!("Your account {name} is ready")).await;
    submit(browser, "Log out").await;
    page_with(browser, "You have been logged out.").await;
    assert_eq!(path(browser).await, "/login?logged_out=1");
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

// --- registration (uxc) ---

/// A person registers with a name outside ASCII, is told why a common password is refused and
/// what is recommended, and lands logged in on the dashboard, greeted as new.
#[tokio::test]
async fn registering_in_chromium_lands_logged_in_on_the_dashboard() {
    let dir = tempfile::tempdir().unwrap();
    let site = Site::start(dir.path(), &[]);
    let driver = Driver::start().await;
    let browser = driver.browser(&dir.path().join("profile")).await;

    browser.goto(&site.url("/register")).await.unwrap();
    let password = browser.find(Locator::Id("password")).await.unwrap();
    assert_eq!(
        password.attr("aria-describedby").await.unwrap().as_deref(),
        Some("password-hint")
    );
    let hint = browser.find(Locator::Id("password-hint")).await.unwrap();
    assert!(
        hint.text()
            .await
            .unwrap()
            .contains("15 or more recommended"),
        "the page recommends 15"
    );

    fill(&browser, "name", "jürgen").await;
    fill(&browser, "display_name", "Jürgen").await;
    fill(&browser, "password", "password123").await;
    fill(&browser, "confirm", "password123").await;
    submit(&browser, "Register").await;
    page_with(&browser, "on a list of common and breached passwords").await;
    let name = browser.find(Locator::Id("name")).await.unwrap();
    assert_eq!(
        name.prop("value").await.unwrap().as_deref(),
        Some("jürgen"),
        "the name typed is kept"
    );
    assert_eq!(
        name.attr("aria-describedby").await.unwrap().as_deref(),
        Some("name-hint error"),
        "the error is tied to the field"
    );

    fill(&browser, "password", PASSWORD).await;
    fill(&browser, "confirm", PASSWORD).await;
    submit(&browser, "Register").await;
    let dashboard = page_with(&browser, "id=\"seconds-left\"").await;
    assert_eq!(path(&browser).await, "/");
    assert!(
        dashboard.contains("Welcome, Jürgen! Your account jürgen is ready, and you are logged in."),
        "{dashboard}"
    );
    assert!(!dashboard.contains("Welcome back"), "{dashboard}");
    assert!(dashboard.contains("<strong id=\"user-name\">jürgen</strong>"));
    screenshot(&browser, "registered").await;

    // Logged in for real: the account page opens without a log-in.
    browser.goto(&site.url("/account")).await.unwrap();
    page_with(&browser, "action=\"/account/password\"").await;
    assert_eq!(path(&browser).await, "/account");

    browser.close().await.unwrap();
}

// --- appearance, devices, accessibility (uxb) ---

/// The viewport of a phone: 390 CSS pixels wide (an iPhone 12 to 15).
const PHONE_WIDTH: u32 = 390;
/// WCAG 2.2 level AA, as axe-core tags its rules (each level includes the ones below).
const WCAG_AA_TAGS: &[&str] = &["wcag2a", "wcag2aa", "wcag21a", "wcag21aa", "wcag22aa"];

/// axe-core's script, fetched into `target/axe-core/` by `scripts/fetch-axe-core` (which
/// `scripts/test` runs); missing, the check fails with how to get it.
fn axe_source() -> &'static str {
    static SOURCE: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    SOURCE.get_or_init(|| {
        let path = Path::new(env!("CARGO_TARGET_TMPDIR"))
            .parent()
            .unwrap()
            .join("axe-core/axe.min.js");
        std::fs::read_to_string(&path).unwrap_or_else(|e| {
            panic!(
                "{}: {e}; the accessibility check needs axe-core: run python3 \
                 scripts/fetch-axe-core (scripts/test does)",
                path.display()
            )
        })
    })
}

/// A headless Chromium of its own profile: a desktop window, or a phone's viewport
/// ([`PHONE_WIDTH`], Chromium's mobile emulation) when `phone`.
async fn chromium(driver: &Driver, profile: &Path, phone: bool) -> Client {
    let mut args = vec![
        "--headless=new".to_owned(),
        "--no-sandbox".to_owned(),
        "--disable-gpu".to_owned(),
        "--disable-dev-shm-usage".to_owned(),
        "--disable-background-networking".to_owned(),
        "--disable-component-update".to_owned(),
        "--disable-sync".to_owned(),
        "--no-first-run".to_owned(),
        "--hide-scrollbars".to_owned(),
        "--window-size=1000,760".to_owned(),
        format!("--user-data-dir={}", profile.display()),
    ];
    let mut options = json!({ "binary": installed("chromium").display().to_string() });
    if phone {
        options["mobileEmulation"] = json!({
            "deviceMetrics": { "width": PHONE_WIDTH, "height": 844, "pixelRatio": 2 },
        });
    } else {
        args.push("--force-device-scale-factor=1".to_owned());
    }
    options["args"] = json!(args);
    let mut capabilities = serde_json::Map::new();
    capabilities.insert("goog:chromeOptions".to_owned(), options);
    let connector = hyper_util::client::legacy::connect::HttpConnector::new();
    ClientBuilder::new(connector)
        .capabilities(capabilities)
        .connect(&format!("http://127.0.0.1:{}", driver.port))
        .await
        .expect("chromedriver starts a Chromium session")
}

/// axe-core's WCAG 2.2 AA violations on the current page (injected through WebDriver: the
/// page's CSP forbids its own scripts), each with its rule and elements.
async fn axe_violations(browser: &Client, page: &str) -> serde_json::Value {
    let injected = browser
        .execute(&format!("{}\nreturn typeof axe;", axe_source()), vec![])
        .await
        .unwrap();
    assert_eq!(injected, json!("object"), "axe-core loads on {page}");
    let run = "const done = arguments[arguments.length - 1];
        axe.run(document, { runOnly: { type: 'tag', values: arguments[0] },
                            resultTypes: ['violations'] })
          .then(r => done(r.violations.map(v => v.id + ' (' + v.impact + '): ' + v.help + ' at '
                + v.nodes.map(n => n.target.join(' ') + ' ' + n.failureSummary).join('; '))))
          .catch(e => done(['axe-core failed: ' + e]));";
    browser
        .execute_async(run, vec![json!(WCAG_AA_TAGS)])
        .await
        .unwrap()
}

/// Fails with every WCAG 2.2 AA violation axe-core finds on the current page.
async fn assert_accessible(browser: &Client, page: &str) {
    let violations = axe_violations(browser, page).await;
    assert_eq!(violations, json!([]), "WCAG 2.2 AA on {page}");
}

/// WCAG contrast arithmetic for the checks below, on computed `rgb(...)` colours: `bg(el)` is
/// the first opaque background at or behind `el`, `ratio(a, b)` the contrast ratio.
const CONTRAST_JS: &str = "
    const rgb = c => c.match(/[\\d.]+/g).map(Number);
    const lum = c => { const [r, g, b] = rgb(c).map(v => { v /= 255;
        return v <= 0.03928 ? v / 12.92 : Math.pow((v + 0.055) / 1.055, 2.4); });
        return 0.2126 * r + 0.7152 * g + 0.0722 * b; };
    const ratio = (a, b) => { const [x, y] = [lum(a), lum(b)];
        return (Math.max(x, y) + 0.05) / (Math.min(x, y) + 0.05); };
    const bg = el => { for (let e = el; e; e = e.parentElement) {
        const c = getComputedStyle(e).backgroundColor, v = rgb(c);
        if (v.length < 4 || v[3] > 0) return c; } return 'rgb(255, 255, 255)'; };
    const name = el => el.tagName.toLowerCase() + (el.id ? '#' + el.id : '')
        + ' \"' + (el.textContent || el.name || '').trim().slice(0, 30) + '\"';
";

/// WCAG 1.4.11, which axe-core does not check: the visible form controls whose border has less
/// than 3:1 against the background around it or its own.
async fn weak_control_borders(browser: &Client) -> serde_json::Value {
    let script = format!(
        "{CONTRAST_JS}
        const bad = [];
        for (const el of document.querySelectorAll('input:not([type=hidden]), select, textarea')) {{
            const border = getComputedStyle(el).borderTopColor;
            const r = Math.min(ratio(border, bg(el.parentElement)), ratio(border, bg(el)));
            if (r < 3) bad.push(name(el) + ': border ' + border + ' at ' + r.toFixed(2) + ':1');
        }}
        return bad;"
    );
    browser.execute(&script, vec![]).await.unwrap()
}

/// WCAG 2.4.7 and 2.4.11: Tab through the page, as a keyboard user does; every element that
/// takes the focus shows a ring of 2 px or more with 3:1 against the background around it.
async fn assert_focus_visible(browser: &Client, page: &str) {
    let count = browser
        .execute(
            "document.activeElement.blur(); return document.querySelectorAll(
               'a[href], button, input:not([type=hidden]), select, textarea').length;",
            vec![],
        )
        .await
        .unwrap()
        .as_u64()
        .unwrap();
    assert!(count > 0, "{page} has something to focus");
    let report = format!(
        "{CONTRAST_JS}
        const el = document.activeElement, s = getComputedStyle(el);
        if (el === document.body) return 'nothing took the focus';
        if (s.outlineStyle === 'none' || parseFloat(s.outlineWidth) < 2)
            return name(el) + ': no focus ring (' + s.outlineStyle + ' ' + s.outlineWidth + ')';
        const r = ratio(s.outlineColor, bg(el.parentElement));
        return r < 3 ? name(el) + ': focus ring at ' + r.toFixed(2) + ':1' : null;"
    );
    for _ in 0..count {
        let focused = browser.active_element().await.unwrap();
        focused.send_keys("\u{e004}").await.unwrap(); // WebDriver's Tab key
        let problem = browser.execute(&report, vec![]).await.unwrap();
        assert_eq!(problem, json!(null), "a visible focus on {page}");
    }
}

/// The page reads without scrolling sideways: nothing is wider than the viewport.
async fn assert_no_horizontal_scroll(browser: &Client, page: &str) {
    let widths = browser
        .execute(
            "const e = document.documentElement; return [e.scrollWidth, e.clientWidth];",
            vec![],
        )
        .await
        .unwrap();
    let (scroll, client) = (widths[0].as_u64().unwrap(), widths[1].as_u64().unwrap());
    assert!(
        scroll <= client,
        "{page}: scrollWidth {scroll} > clientWidth {client}"
    );
}

/// Checks the page `browser` shows as `name` (at `width`: `desktop` or `phone`): saves its
/// screenshot as `<name>-<width>`, then WCAG 2.2 AA (axe-core, control borders), and no
/// horizontal scroll on a phone or a visible focus on every element a Tab reaches on a desktop.
async fn check_page(browser: &Client, name: &str, width: &str) {
    let page = format!("{name} at {width} width ({})", path(browser).await);
    // Before the focus walk below scrolls the page.
    screenshot(browser, &format!("{name}-{width}")).await;
    assert_accessible(browser, &page).await;
    let weak = weak_control_borders(browser).await;
    assert_eq!(weak, json!([]), "control borders of 3:1 on {page}");
    if width == "phone" {
        assert_no_horizontal_scroll(browser, &page).await;
    } else {
        assert_focus_visible(browser, &page).await;
    }
}

/// Logs `name` in through the log-in form.
async fn log_in(browser: &Client, site: &Site, name: &str) {
    browser.goto(&site.url("/login")).await.unwrap();
    fill(browser, "name", name).await;
    fill(browser, "password", PASSWORD).await;
    submit(browser, "Log in").await;
    page_with(browser, "id=\"seconds-left\"").await;
}

/// Chooses `theme` on the Account page and saves it.
async fn choose_theme(browser: &Client, site: &Site, theme: &str) {
    browser.goto(&site.url("/account")).await.unwrap();
    let select = browser.find(Locator::Id("theme")).await.unwrap();
    select.select_by_value(theme).await.unwrap();
    submit(browser, "Save appearance").await;
    page_with(browser, "Appearance saved.").await;
}

/// The theme the page in `browser` shows, and its computed background colour.
async fn shown_theme(browser: &Client) -> (String, String) {
    let shown = browser
        .execute(
            "return [document.documentElement.dataset.theme,
                     getComputedStyle(document.body).backgroundColor];",
            vec![],
        )
        .await
        .unwrap();
    (
        shown[0].as_str().unwrap().to_owned(),
        shown[1].as_str().unwrap().to_owned(),
    )
}

/// A visitor's pages, and the forms with an error shown (tied to their fields).
async fn check_visitor_pages(browser: &Client, site: &Site, width: &str) {
    for (name, path) in [
        ("landing", "/"),
        ("login", "/login"),
        ("register", "/register"),
        ("not-found", "/no-such-page"),
    ] {
        browser.goto(&site.url(path)).await.unwrap();
        check_page(browser, name, width).await;
    }
    browser.goto(&site.url("/register")).await.unwrap();
    fill(browser, "name", "carol").await;
    fill(browser, "password", PASSWORD).await;
    fill(browser, "confirm", "not the same password").await;
    submit(browser, "Register").await;
    page_with(browser, "id=\"error\"").await;
    let described = browser.find(Locator::Id("password")).await.unwrap();
    let describedby = described.attr("aria-describedby").await.unwrap();
    assert_eq!(describedby.as_deref(), Some("password-hint error"));
    check_page(browser, "register-error", width).await;
    browser.goto(&site.url("/login")).await.unwrap();
    fill(browser, "name", "nobody").await;
    fill(browser, "password", "wrong password").await;
    submit(browser, "Log in").await;
    page_with(browser, "id=\"error\"").await;
    check_page(browser, "login-error", width).await;
}

/// A logged-in user's pages in `theme`; the devices page lists two devices.
async fn check_user_pages(browser: &Client, site: &Site, width: &str, theme: &str) {
    for (name, path) in [
        ("dashboard", "/"),
        ("account", "/account"),
        ("sessions", "/account/sessions"),
    ] {
        browser.goto(&site.url(path)).await.unwrap();
        let rows = browser
            .find_all(Locator::Css("#sessions tbody tr"))
            .await
            .unwrap();
        assert!(
            path != "/account/sessions" || rows.len() == 2,
            "two devices"
        );
        check_page(browser, &format!("{name}-{theme}"), width).await;
    }
}

#[tokio::test]
async fn every_page_meets_wcag_2_2_aa_at_desktop_and_phone_width_in_both_themes() {
    let dir = tempfile::tempdir().unwrap();
    let site = Site::start(dir.path(), &[]);
    let driver = Driver::start().await;
    let desktop = chromium(&driver, &dir.path().join("desktop"), false).await;
    let phone = chromium(&driver, &dir.path().join("phone"), true).await;
    // The site's pages ask for the device's width (`<meta name="viewport">`).
    phone.goto(&site.url("/")).await.unwrap();
    let inner = phone
        .execute("return window.innerWidth;", vec![])
        .await
        .unwrap();
    assert_eq!(inner, json!(PHONE_WIDTH), "the phone's viewport");

    // Both widths at once: two browsers, one site.
    tokio::join!(
        check_visitor_pages(&desktop, &site, "desktop"),
        check_visitor_pages(&phone, &site, "phone"),
    );

    // A user on two devices, so the devices page lists two.
    register_and_log_in(&desktop, &site, "wcag", "Web Content").await;
    submit(&desktop, "Log in").await;
    page_with(&desktop, "id=\"seconds-left\"").await;
    log_in(&phone, &site, "wcag").await;
    for theme in ["light", "dark"] {
        choose_theme(&desktop, &site, theme).await;
        tokio::join!(
            check_user_pages(&desktop, &site, "desktop", theme),
            check_user_pages(&phone, &site, "phone", theme),
        );
    }
    // The account page with an error tied to its fields.
    desktop.goto(&site.url("/account")).await.unwrap();
    fill(&desktop, "current", "not my password").await;
    fill(&desktop, "new_password", "another long password").await;
    fill(&desktop, "confirm", "another long password").await;
    submit(&desktop, "Change password").await;
    page_with(&desktop, "id=\"error\"").await;
    check_page(&desktop, "account-error", "desktop").await;

    // The checks can fail: faint text, and the old input border (`--line`, 1.37:1 in the dark
    // theme), are found.
    desktop
        .execute(
            "const p = document.createElement('p'); p.textContent = 'faint';
             p.style.color = '#bbbbbb'; p.style.background = '#ffffff';
             document.querySelector('main').append(p);
             document.querySelector('input:not([type=hidden])').style.borderColor = 'var(--line)';",
            vec![],
        )
        .await
        .unwrap();
    let found = axe_violations(&desktop, "a faint page").await;
    assert!(
        found.to_string().contains("color-contrast"),
        "axe-core finds the faint text: {found}"
    );
    let found = weak_control_borders(&desktop).await;
    assert!(
        found.to_string().contains("border rgb"),
        "the border check finds the faint border: {found}"
    );

    desktop.close().await.unwrap();
    phone.close().await.unwrap();
}

#[tokio::test]
async fn appearance_chosen_in_one_chromium_shows_in_a_second_and_after_a_log_out() {
    let dir = tempfile::tempdir().unwrap();
    let site = Site::start(dir.path(), &[]);
    let driver = Driver::start().await;
    let first = chromium(&driver, &dir.path().join("first"), false).await;
    let second = chromium(&driver, &dir.path().join("second"), true).await;
    register_and_log_in(&first, &site, "theo", "Theo").await;
    submit(&first, "Log in").await;
    page_with(&first, "id=\"seconds-left\"").await;
    log_in(&second, &site, "theo").await;
    let (theme, light) = shown_theme(&second).await;
    assert_eq!(theme, "system");

    choose_theme(&first, &site, "dark").await;
    second.refresh().await.unwrap();
    page_with(&second, "id=\"seconds-left\"").await;
    let (theme, dark) = shown_theme(&second).await;
    assert_eq!(
        theme, "dark",
        "the second browser shows the first one's choice"
    );
    assert_ne!(dark, light, "and the page is drawn dark: {dark}");

    // The choice is the account's: logging out and in again keeps it.
    submit(&second, "Log out").await;
    page_with(&second, "You have been logged out.").await;
    assert_eq!(shown_theme(&second).await.0, "system", "a visitor");
    log_in(&second, &site, "theo").await;
    assert_eq!(shown_theme(&second).await.0, "dark");

    first.close().await.unwrap();
    second.close().await.unwrap();
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
