//! Security events on the real binary with `LOG_FORMAT=json`: every line of its log is one
//! JSON object, each security event carries its OWASP name and the right fields, and nothing
//! in the whole log is a session id, a cookie value, a CSRF token, a password, or a user name
//! that names no account.
#![allow(clippy::unwrap_used)]

use std::time::{Duration, Instant};

use serde_json::Value;

use crate::support::{PASSWORD, SECRET, Site, client, cookie_pair, csrf};

/// What a log must never hold, collected as the test goes.
#[derive(Default)]
struct Secrets(Vec<String>);

impl Secrets {
    /// Every session cookie a response sets (`session`, `session-csrf`): each value whole and
    /// each of its parts (`id.mac`).
    fn cookies(&mut self, response: &reqwest::Response) {
        for header in response.headers().get_all("set-cookie") {
            let pair = header.to_str().unwrap().split(';').next().unwrap();
            let Some((name, value)) = pair.split_once('=') else {
                continue;
            };
            if name.starts_with("session") && !value.is_empty() {
                self.0.push(value.to_owned());
                self.0.extend(value.split('.').map(str::to_owned));
            }
        }
    }
}

/// Posts `fields` to `path` with a fresh CSRF token under `cookie` (a new session when `None`);
/// returns the response and the cookie to use next, and keeps the token and cookies secret.
async fn post(
    site: &Site,
    secrets: &mut Secrets,
    cookie: Option<&str>,
    path: &str,
    fields: &[(&str, &str)],
) -> (reqwest::Response, String) {
    let (cookie, token) = csrf(site, cookie).await;
    secrets.0.push(token.clone());
    secrets.0.push(cookie.split_once('=').unwrap().1.to_owned());
    let mut form: Vec<(&str, &str)> = fields.to_vec();
    form.push(("csrf_token", &token));
    let response = client()
        .post(site.url(path))
        .header("cookie", &cookie)
        .form(&form)
        .send()
        .await
        .unwrap();
    let next = match response.headers().get("set-cookie") {
        Some(_) => cookie_pair(&response),
        None => cookie,
    };
    secrets.cookies(&response);
    (response, next)
}

/// Every line of the log, each parsed as JSON (the test fails on one that is not).
fn lines(log: &str) -> Vec<Value> {
    log.lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}")))
        .collect()
}

/// The security events named `event`.
fn events<'a>(lines: &'a [Value], event: &str) -> Vec<&'a Value> {
    lines
        .iter()
        .filter(|line| line["event"] == event)
        .inspect(|line| assert_eq!(line["target"], "portcullis::security", "{line}"))
        .collect()
}

/// The only event named `event` that has `field` equal to `value`.
fn one<'a>(lines: &'a [Value], event: &str, field: &str, value: &str) -> &'a Value {
    let found: Vec<_> = events(lines, event)
        .into_iter()
        .filter(|line| line[field] == value)
        .collect();
    assert_eq!(
        found.len(),
        1,
        "one {event} with {field}={value}: {found:?}"
    );
    found[0]
}

fn json_site(dir: &std::path::Path, extra: &[(&str, &str)]) -> Site {
    let mut env = vec![("LOG_FORMAT", "json"), ("SECRET_KEY", SECRET)];
    env.extend_from_slice(extra);
    Site::start(dir, &env)
}

#[tokio::test]
async fn the_json_log_names_each_security_event_and_holds_no_secret() {
    let dir = tempfile::tempdir().unwrap();
    let limits = [
        ("LOGIN_RATE_LIMIT", "3/1m"),
        ("REGISTER_RATE_LIMIT", "2/1h"),
    ];
    let mut site = json_site(dir.path(), &limits);
    let mut secrets = Secrets::default();
    let new_password = "a brand new passphrase";
    let typed_name = "hunter2-Tr0ub4dor-3";
    secrets
        .0
        .extend([PASSWORD, new_password, typed_name].map(str::to_owned));

    let account = [
        ("name", "alice"),
        ("password", PASSWORD),
        ("confirm", PASSWORD),
    ];
    let (response, _) = post(&site, &mut secrets, None, "/register", &account).await;
    assert_eq!(response.status(), 303);
    let log_in = [("name", "alice"), ("password", PASSWORD)];
    let (response, cookie) = post(&site, &mut secrets, None, "/login", &log_in).await;
    assert_eq!(response.status(), 303);

    // A form posted without its token.
    let refused = client()
        .post(site.url("/account/display-name"))
        .header("cookie", &cookie)
        .form(&[("display_name", "Alice")])
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 403);

    let wrong = [
        ("current", "not the password"),
        ("new_password", new_password),
        ("confirm", new_password),
    ];
    let (response, cookie) = post(
        &site,
        &mut secrets,
        Some(&cookie),
        "/account/password",
        &wrong,
    )
    .await;
    assert_eq!(response.status(), 422);
    let change = [
        ("current", PASSWORD),
        ("new_password", new_password),
        ("confirm", new_password),
    ];
    let (response, cookie) = post(
        &site,
        &mut secrets,
        Some(&cookie),
        "/account/password",
        &change,
    )
    .await;
    assert_eq!(response.status(), 303);
    let (response, _) = post(&site, &mut secrets, Some(&cookie), "/logout", &[]).await;
    assert_eq!(response.status(), 303);

    // Failures from this address until it is locked out: a known name, then a name that is
    // no account's (a password typed into the name field).
    let mut statuses = Vec::new();
    for name in ["alice", typed_name, typed_name, typed_name] {
        let fields = [("name", name), ("password", "a wrong guess")];
        let (response, _) = post(&site, &mut secrets, None, "/login", &fields).await;
        statuses.push(response.status().as_u16());
    }
    assert!(
        statuses.contains(&401) && statuses.ends_with(&[429]),
        "{statuses:?}"
    );
    // Registrations from this address until the limit refuses one.
    let other = [
        ("name", "bob"),
        ("password", PASSWORD),
        ("confirm", PASSWORD),
    ];
    let (_, _) = post(&site, &mut secrets, None, "/register", &other).await;
    let (response, _) = post(&site, &mut secrets, None, "/register", &other).await;
    assert_eq!(response.status(), 429);

    site.terminate();
    assert!(site.wait().success());
    let log = site.log();
    let lines = lines(&log);
    for line in lines
        .iter()
        .filter(|l| l["target"] == "portcullis::security")
    {
        let level = line["owasp_level"].as_str().unwrap_or_default();
        assert!(
            line["event"].is_string(),
            "every security line is a named event: {line}"
        );
        assert!(["INFO", "WARN", "CRITICAL"].contains(&level), "{line}");
    }

    let started = &events(&lines, "sys_startup")[0];
    assert_eq!(
        (started["owasp_level"].as_str(), started["level"].as_str()),
        (Some("WARN"), Some("WARN"))
    );
    assert_eq!(events(&lines, "sys_shutdown").len(), 1, "{log}");
    let created = &events(&lines, "user_created")[0];
    let user = created["user"].as_str().unwrap();
    assert!(user.parse::<i64>().is_ok(), "the account's id: {created}");
    // Registering logs the new account in, and so does the log-in form after it.
    let successes: Vec<_> = events(&lines, "authn_login_success")
        .into_iter()
        .filter(|line| line["user"] == user)
        .collect();
    assert_eq!(successes.len(), 2, "{successes:?}");
    for success in successes {
        assert_eq!(success["client"], "127.0.0.1");
        assert_eq!(success["owasp_level"], "INFO");
    }
    let session = events(&lines, "session_created")
        .into_iter()
        .find(|line| line.get("user_hash").is_some())
        .unwrap();
    assert_eq!(
        session["session"].as_str().unwrap().len(),
        16,
        "a keyed hash: {session}"
    );
    let csrf = one(
        &lines,
        "input_validation_fail",
        "path",
        "/account/display-name",
    );
    assert_eq!(csrf["reason"], "The CSRF token is missing.");
    assert_eq!(csrf["method"], "POST");
    let failed_change = one(&lines, "authn_password_change_fail", "user", user);
    assert_eq!(
        (
            failed_change["owasp_level"].as_str(),
            failed_change["level"].as_str()
        ),
        (Some("CRITICAL"), Some("ERROR"))
    );
    one(&lines, "authn_password_change", "user", user);
    assert_eq!(
        events(&lines, "session_renewed").len(),
        1,
        "the password change: {log}"
    );
    let logout = one(&lines, "session_expired", "reason", "logout");
    assert_eq!(logout["user"], user);
    one(&lines, "authn_login_fail", "user_name", "\"alice\"");
    let unknown = events(&lines, "authn_login_fail")
        .into_iter()
        .filter(|line| line["user_name"].as_str().unwrap().starts_with("hash:"))
        .count();
    assert!(
        unknown >= 1,
        "a name of no account is logged by its hash: {log}"
    );
    let lock = &events(&lines, "authn_login_lock")[0];
    assert_eq!(
        (lock["reason"].as_str(), lock["max"].as_u64()),
        (Some("maxretries"), Some(3))
    );
    let limited = one(
        &lines,
        "excess_rate_limit_exceeded",
        "what",
        "REGISTER_RATE_LIMIT",
    );
    assert_eq!(limited["max"], 2);

    for secret in &secrets.0 {
        assert!(
            !log.contains(secret.as_str()),
            "{secret:?} is in the log:\n{log}"
        );
    }
}

#[tokio::test]
async fn a_request_with_an_expired_session_is_logged_as_use_after_expire() {
    let dir = tempfile::tempdir().unwrap();
    let site = json_site(dir.path(), &[("PERMANENT_SESSION_LIFETIME", "1")]);
    let mut secrets = Secrets::default();
    let account = [
        ("name", "carol"),
        ("password", PASSWORD),
        ("confirm", PASSWORD),
    ];
    post(&site, &mut secrets, None, "/register", &account).await;
    let log_in = [("name", "carol"), ("password", PASSWORD)];
    let (_, cookie) = post(&site, &mut secrets, None, "/login", &log_in).await;
    let start = Instant::now();
    loop {
        let response = client()
            .get(site.url("/api/me"))
            .header("cookie", &cookie)
            .send()
            .await
            .unwrap();
        if response.status() == 401 {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "the session never expired"
        );
        // A request slides the idle deadline; poll slowly enough for one second to pass.
        std::thread::sleep(Duration::from_millis(1100));
    }
    let log = site.log_once_it_holds("session_use_after_expire");
    let lines = lines(&log);
    let expired = &events(&lines, "session_use_after_expire")[0];
    assert_eq!(expired["owasp_level"], "CRITICAL");
    assert_eq!(expired["session"].as_str().unwrap().len(), 16, "{expired}");
    for secret in &secrets.0 {
        assert!(
            !log.contains(secret.as_str()),
            "{secret:?} is in the log:\n{log}"
        );
    }
}
