//! The administrator's command line on a running dev site: `sessions list`, `sessions end`
//! (all, or all but one) and `users reset-password`, on the site's own files and accounts.
#![allow(clippy::unwrap_used)]

use std::io::Write;
use std::process::{Output, Stdio};

use crate::support::{Site, client, csrf, portcullis, post_form, register};

const PASSWORD: &str = "correct horse battery";

fn run(dir: &std::path::Path, args: &[&str], stdin: &str) -> Output {
    let mut child = portcullis(dir)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

async fn log_in(site: &Site, name: &str, password: &str) -> (u16, String) {
    let fields = [("name", name), ("password", password)];
    let (response, cookie) = post_form(site, None, "/login", &fields).await;
    (response.status().as_u16(), cookie)
}

async fn me(site: &Site, cookie: &str) -> u16 {
    client()
        .get(site.url("/api/me"))
        .header("cookie", cookie)
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

/// The ids (first column) of `sessions list`'s rows.
fn listed(output: &Output) -> Vec<String> {
    assert!(output.status.success(), "{}", text(&output.stderr));
    text(&output.stdout)
        .lines()
        .skip(1)
        .map(|line| line.split_whitespace().next().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn sessions_are_listed_and_ended_from_the_command_line() {
    let dir = tempfile::tempdir().unwrap();
    let site = Site::start(dir.path(), &[]);
    register(&site, "carol").await;
    let (_, first) = log_in(&site, "carol", PASSWORD).await;
    let (_, second) = log_in(&site, "carol", PASSWORD).await;

    let output = run(dir.path(), &["sessions", "list", "--user", "carol"], "");
    let out = text(&output.stdout);
    assert!(out.starts_with("ID "), "{out}");
    assert!(out.contains("STARTED") && out.contains("LAST USED") && out.contains("BROWSER"));
    let ids = listed(&output);
    assert_eq!(ids.len(), 2, "{out}");
    assert!(ids.iter().all(|id| id.len() == 43));
    assert!(
        !out.contains(first.split_once('=').unwrap().1),
        "never a cookie"
    );

    // The oldest session is listed first: keep it, end the other.
    let output = run(
        dir.path(),
        &[
            "sessions",
            "end",
            "--user",
            "carol",
            "--except-current",
            &ids[0],
        ],
        "",
    );
    assert!(output.status.success(), "{}", text(&output.stderr));
    assert_eq!(text(&output.stdout), "ended 1 session(s) of carol\n");
    assert_eq!(me(&site, &first).await, 200);
    assert_eq!(me(&site, &second).await, 401);
    // The ended browser's next page says who ended it (the command line is another process,
    // with the site's keys: its marker reads here).
    let start = client()
        .get(site.url("/"))
        .header("cookie", &second)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        start.contains("Your session was ended by an administrator."),
        "{start}"
    );
    assert_eq!(
        listed(&run(
            dir.path(),
            &["sessions", "list", "--user", "carol"],
            ""
        )),
        [ids[0].clone()]
    );

    let output = run(
        dir.path(),
        &["sessions", "end", "--user", "carol", "--all"],
        "",
    );
    assert_eq!(text(&output.stdout), "ended 1 session(s) of carol\n");
    assert_eq!(me(&site, &first).await, 401);
    let output = run(dir.path(), &["sessions", "list", "--user", "carol"], "");
    assert_eq!(text(&output.stdout), "carol has no live session\n");
}

#[tokio::test]
async fn bad_command_lines_are_refused_with_a_reason() {
    let dir = tempfile::tempdir().unwrap();
    let site = Site::start(dir.path(), &[]);
    register(&site, "dave").await;
    let cases: [(&[&str], i32, &str); 4] = [
        (&["sessions", "end", "--user", "dave"], 2, "required"),
        (
            &[
                "sessions",
                "end",
                "--user",
                "dave",
                "--all",
                "--except-current",
                "x",
            ],
            2,
            "cannot be used with",
        ),
        (
            &[
                "sessions",
                "end",
                "--user",
                "dave",
                "--except-current",
                "not-a-handle",
            ],
            1,
            "is not a session handle",
        ),
        (
            &["sessions", "list", "--user", "nobody"],
            1,
            "there is no user named \"nobody\"",
        ),
    ];
    for (args, code, words) in cases {
        let output = run(dir.path(), args, "");
        assert_eq!(output.status.code(), Some(code), "{args:?}");
        assert!(
            text(&output.stderr).contains(words),
            "{args:?}: {}",
            text(&output.stderr)
        );
    }
    for args in [
        &["sessions", "list", "--help"][..],
        &["sessions", "end", "--help"],
        &["users", "reset-password", "--help"],
    ] {
        let output = run(dir.path(), args, "");
        assert!(output.status.success(), "{args:?}");
        assert!(text(&output.stdout).contains("--user <NAME>"), "{args:?}");
    }
}

#[tokio::test]
async fn a_password_reset_ends_every_session_of_the_user() {
    let dir = tempfile::tempdir().unwrap();
    let site = Site::start(dir.path(), &[]);
    register(&site, "erin").await;
    let (_, laptop) = log_in(&site, "erin", PASSWORD).await;
    let (_, phone) = log_in(&site, "erin", PASSWORD).await;

    let output = run(
        dir.path(),
        &["users", "reset-password", "--user", "erin"],
        "short\n",
    );
    assert_eq!(output.status.code(), Some(1));
    assert!(
        text(&output.stderr).contains("8 to 128 characters"),
        "{}",
        text(&output.stderr)
    );
    assert_eq!(
        me(&site, &laptop).await,
        200,
        "a refused reset ends nothing"
    );

    let output = run(
        dir.path(),
        &["users", "reset-password", "--user", "erin"],
        "a brand new passphrase\n",
    );
    assert!(output.status.success(), "{}", text(&output.stderr));
    assert_eq!(
        text(&output.stdout),
        "password of erin changed; ended 2 session(s)\n"
    );
    assert_eq!(me(&site, &laptop).await, 401);
    assert_eq!(me(&site, &phone).await, 401);
    assert_eq!(log_in(&site, "erin", PASSWORD).await.0, 401);
    assert_eq!(log_in(&site, "erin", "a brand new passphrase").await.0, 303);
}

/// `users reset-password` follows the rules of the registration form: the blocklist, the
/// trivial and the context checks; what it refuses changes nothing.
#[tokio::test]
async fn a_password_reset_refuses_common_trivial_and_context_passwords() {
    let dir = tempfile::tempdir().unwrap();
    let site = Site::start(dir.path(), &[]);
    register(&site, "jürgen_müller").await;
    for (password, rule) in [
        ("password123", "on a list of common and breached passwords"),
        ("12345678", "a run of characters"),
        ("        ", "may not be only spaces"),
        ("JÜRGEN_MÜLLER", "may not be your user name"),
    ] {
        let output = run(
            dir.path(),
            &[
                "users",
                "reset-password",
                "--user",
                "JU\u{308}RGEN_MU\u{308}LLER",
            ],
            &format!("{password}\n"),
        );
        assert_eq!(output.status.code(), Some(1), "{password:?}");
        let stderr = text(&output.stderr);
        assert!(
            stderr.contains("password not changed: ") && stderr.contains(rule),
            "{password:?}: {stderr}"
        );
    }
    assert_eq!(log_in(&site, "jürgen_müller", PASSWORD).await.0, 303);
}

/// `users add` makes an account under the registration form's rules, and it logs in.
#[tokio::test]
async fn users_add_creates_an_account_under_the_registration_rules() {
    let dir = tempfile::tempdir().unwrap();
    let site = Site::start(dir.path(), &[]);
    register(&site, "scope").await;
    let add = |name: &str, password: &str| {
        run(
            dir.path(),
            &["users", "add", "--user", name, "--display-name", "Maria"],
            &format!("{password}\n"),
        )
    };
    for (name, password, refusal) in [
        (
            "Мария",
            "password123",
            "on a list of common and breached passwords",
        ),
        ("Мария", "MARIA", "a password has 8 to 128 characters"),
        ("\u{430}lice", PASSWORD, "may not mix alphabets"),
        (
            "\u{455}\u{441}\u{43e}\u{440}\u{435}",
            PASSWORD,
            "looks too much like one that is taken",
        ),
        ("SCOPE", PASSWORD, "this user name is taken"),
    ] {
        let output = add(name, password);
        assert_eq!(output.status.code(), Some(1), "{name} {password:?}");
        let stderr = text(&output.stderr);
        assert!(
            stderr.contains("account not created: ") && stderr.contains(refusal),
            "{name} {password:?}: {stderr}"
        );
    }
    let output = add("Мария", PASSWORD);
    assert!(output.status.success(), "{}", text(&output.stderr));
    assert_eq!(text(&output.stdout), "created Мария\n");
    assert_eq!(log_in(&site, "мария", PASSWORD).await.0, 303);
}

/// A log-in from a browser holding `device` (a device cookie's `name=value`), if any: its
/// status and the device cookie it was given, if one.
async fn log_in_on_device(
    site: &Site,
    name: &str,
    password: &str,
    device: Option<&str>,
) -> (u16, Option<String>) {
    let (session, token) = csrf(site, None).await;
    let cookie = match device {
        Some(device) => format!("{session}; {device}"),
        None => session,
    };
    let body = format!(
        "name={name}&password={}&csrf_token={token}",
        password.replace(' ', "+")
    );
    let response = client()
        .post(site.url("/login"))
        .header("cookie", cookie)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(body)
        .send()
        .await
        .unwrap();
    let given = response
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .filter_map(|v| v.split(';').next())
        .find(|pair| pair.starts_with("portcullis_device="))
        .map(str::to_owned);
    (response.status().as_u16(), given)
}

/// After `users reset-password`, a device cookie from before it is an unknown client's: the
/// name's lockout applies to it. The owner's next log-in gets a fresh cookie that still
/// exempts her browser.
#[tokio::test]
async fn a_password_reset_cancels_the_old_device_cookies() {
    const NEW: &str = "a brand new passphrase";
    let dir = tempfile::tempdir().unwrap();
    let site = Site::start(dir.path(), &[("LOGIN_RATE_LIMIT", "3/1m")]);
    register(&site, "iris").await;
    let (status, old) = log_in_on_device(&site, "iris", PASSWORD, None).await;
    assert_eq!(status, 303);
    let old = old.expect("the log-in gave a device cookie");

    let output = run(
        dir.path(),
        &["users", "reset-password", "--user", "iris"],
        &format!("{NEW}\n"),
    );
    assert!(output.status.success(), "{}", text(&output.stderr));
    let (status, fresh) = log_in_on_device(&site, "iris", NEW, None).await;
    assert_eq!(status, 303);
    let fresh = fresh.expect("the new log-in gave a device cookie");
    assert_ne!(fresh, old);

    // The name (and this address) locked for unknown clients.
    for _ in 0..3 {
        assert_eq!(log_in(&site, "iris", "a wrong guess").await.0, 401);
    }
    assert_eq!(
        log_in_on_device(&site, "iris", NEW, Some(&old)).await.0,
        429,
        "a device cookie from before the reset no longer exempts its browser"
    );
    assert_eq!(
        log_in_on_device(&site, "iris", NEW, Some(&fresh)).await.0,
        303,
        "the cookie of the log-in after the reset does"
    );
}

/// `users disable` then `enable` cancels the account's device cookies too: one issued before
/// is an unknown client's after the enable, under the name's lockout.
#[tokio::test]
async fn a_disable_and_enable_cancels_the_old_device_cookies() {
    let dir = tempfile::tempdir().unwrap();
    let site = Site::start(dir.path(), &[("LOGIN_RATE_LIMIT", "3/1m")]);
    register(&site, "jack").await;
    let (status, old) = log_in_on_device(&site, "jack", PASSWORD, None).await;
    assert_eq!(status, 303);
    let old = old.expect("the log-in gave a device cookie");
    for command in ["disable", "enable"] {
        let output = run(dir.path(), &["users", command, "--user", "jack"], "");
        assert!(output.status.success(), "{}", text(&output.stderr));
    }
    let (status, fresh) = log_in_on_device(&site, "jack", PASSWORD, None).await;
    assert_eq!(status, 303, "enabled again");
    let fresh = fresh.expect("the new log-in gave a device cookie");

    for _ in 0..3 {
        assert_eq!(log_in(&site, "jack", "a wrong guess").await.0, 401);
    }
    assert_eq!(
        log_in_on_device(&site, "jack", PASSWORD, Some(&old))
            .await
            .0,
        429,
        "a device cookie from before the disable no longer exempts its browser"
    );
    assert_eq!(
        log_in_on_device(&site, "jack", PASSWORD, Some(&fresh))
            .await
            .0,
        303,
        "the cookie of the log-in after the enable does"
    );
}

#[tokio::test]
async fn a_disabled_account_loses_its_sessions_and_cannot_log_in_until_enabled() {
    let dir = tempfile::tempdir().unwrap();
    let site = Site::start(dir.path(), &[]);
    register(&site, "dave").await;
    let (_, cookie) = log_in(&site, "dave", PASSWORD).await;
    assert_eq!(me(&site, &cookie).await, 200);

    let output = run(dir.path(), &["users", "disable", "--user", "dave"], "");
    assert!(output.status.success(), "{}", text(&output.stderr));
    assert_eq!(
        text(&output.stdout).trim(),
        "disabled dave; ended 1 session(s)"
    );
    assert_eq!(me(&site, &cookie).await, 401, "its session ended at once");
    let (status, _) = log_in(&site, "dave", PASSWORD).await;
    assert_eq!(status, 401, "the right password no longer logs in");

    let output = run(dir.path(), &["users", "enable", "--user", "dave"], "");
    assert!(output.status.success(), "{}", text(&output.stderr));
    assert_eq!(text(&output.stdout).trim(), "enabled dave");
    let (status, cookie) = log_in(&site, "dave", PASSWORD).await;
    assert_eq!(status, 303);
    assert_eq!(me(&site, &cookie).await, 200);

    let output = run(dir.path(), &["users", "disable", "--user", "nobody"], "");
    assert!(!output.status.success());
    assert!(text(&output.stderr).contains("there is no user named \"nobody\""));
}

#[tokio::test]
async fn ending_everyones_sessions_logs_every_user_out_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let site = Site::start(dir.path(), &[]);
    register(&site, "erin").await;
    register(&site, "frank").await;
    let mut cookies = Vec::new();
    for name in ["erin", "erin", "frank"] {
        let (status, cookie) = log_in(&site, name, PASSWORD).await;
        assert_eq!(status, 303);
        assert_eq!(me(&site, &cookie).await, 200);
        cookies.push(cookie);
    }

    let output = run(dir.path(), &["sessions", "end", "--everyone"], "");
    assert!(output.status.success(), "{}", text(&output.stderr));
    assert!(
        text(&output.stdout).starts_with("ended every session"),
        "{}",
        text(&output.stdout)
    );
    for cookie in &cookies {
        assert_eq!(me(&site, cookie).await, 401, "every session ended");
    }
    let (status, cookie) = log_in(&site, "frank", PASSWORD).await;
    assert_eq!(status, 303, "logging in again works");
    assert_eq!(me(&site, &cookie).await, 200);
}
