//! The real binary on the `dev` profile: the cookie a browser sees, sessions on disk that
//! survive a restart, graceful shutdown that lets in-flight writes land, and purging.
#![allow(clippy::unwrap_used)]

use std::io::{Read, Write};
use std::net::TcpStream;
use std::os::unix::fs::PermissionsExt;
use std::time::{Duration, Instant, SystemTime};

use crate::support::{Site, client, csrf, portcullis, register_and_log_in};

fn session_files(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    std::fs::read_dir(dir.join(".flask_session"))
        .map(|entries| {
            entries
                .map(|e| e.unwrap().path())
                .filter(|p| !p.file_name().unwrap().to_string_lossy().starts_with('.'))
                .collect()
        })
        .unwrap_or_default()
}

#[tokio::test]
async fn the_dev_site_sets_a_signed_httponly_lax_cookie_and_stores_the_session_in_files() {
    let dir = tempfile::tempdir().unwrap();
    let site = Site::start(dir.path(), &[]);
    // The log-in form holds a CSRF token whose secret is in a signed cookie: nothing is stored
    // for a visitor who only looks at a form (review finding 8).
    let response = client().get(site.url("/login")).send().await.unwrap();
    assert_eq!(response.status(), 200);
    let header = response.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .to_owned();
    let (pair, attributes) = header.split_once("; ").unwrap();
    let (secret, mac) = pair
        .strip_prefix("session-csrf=")
        .unwrap()
        .split_once('.')
        .unwrap();
    assert_eq!((secret.len(), mac.len()), (43, 43), "{header}");
    assert_eq!(attributes, "HttpOnly; SameSite=Lax; Path=/", "{header}");
    assert_eq!(response.headers()["cache-control"], "no-store");
    let page = response.text().await.unwrap();
    let start = page.find("name=\"csrf_token\" value=\"").unwrap() + 25;
    let token = &page[start..start + page[start..].find('"').unwrap()];
    assert!(
        session_files(dir.path()).is_empty(),
        "a form page stores nothing"
    );

    // Saving a preference stores something: now the session cookie and its file. (Not a
    // registration: that logs in, and a logged-in session has an index file too.)
    let response = save_a_preference(&site, pair, token).await;
    assert_eq!(response.status(), 200);
    let header = response.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .to_owned();
    let (value, attributes) = header
        .strip_prefix("session=")
        .unwrap()
        .split_once("; ")
        .unwrap();
    let (id, mac) = value.split_once('.').unwrap();
    assert_eq!((id.len(), mac.len()), (43, 43), "{header}");
    assert_eq!(
        attributes, "HttpOnly; SameSite=Lax; Path=/",
        "dev: no Secure, browser-session cookie"
    );
    let vary: Vec<&str> = response
        .headers()
        .get_all("vary")
        .iter()
        .map(|value| value.to_str().unwrap())
        .collect();
    assert!(vary.contains(&"Cookie"), "{vary:?}");
    assert_eq!(response.headers()["cache-control"], "no-store");

    let folder = dir.path().join(".flask_session");
    assert_eq!(
        std::fs::metadata(&folder).unwrap().permissions().mode() & 0o777,
        0o700
    );
    let files = session_files(dir.path());
    assert_eq!(files.len(), 1);
    assert_eq!(
        std::fs::metadata(&files[0]).unwrap().permissions().mode() & 0o777,
        0o600
    );
    assert!(
        !files[0].to_string_lossy().contains(id),
        "file names never hold the id"
    );
}

/// `PATCH /api/prefs` from an anonymous browser: stores one session, in one file.
async fn save_a_preference(site: &Site, cookie: &str, token: &str) -> reqwest::Response {
    client()
        .patch(site.url("/api/prefs"))
        .header("cookie", cookie)
        .header("content-type", "application/json")
        .header("x-csrftoken", token)
        .body(r#"{"devices_order":"started"}"#)
        .send()
        .await
        .unwrap()
}

/// Registers and logs in `name`; returns the session cookie and a CSRF token for it.
async fn logged_in(site: &Site, name: &str) -> (String, String) {
    let cookie = register_and_log_in(site, name).await;
    csrf(site, Some(&cookie)).await
}

#[tokio::test]
async fn sessions_survive_a_restart_of_the_dev_site() {
    let dir = tempfile::tempdir().unwrap();
    let mut site = Site::start(dir.path(), &[]);
    let (cookie, token) = logged_in(&site, "alice").await;
    let stored = client()
        .patch(site.url("/api/prefs"))
        .header("cookie", &cookie)
        .header("x-csrftoken", &token)
        .json(&serde_json::json!({"devices_order": "started"}))
        .send()
        .await
        .unwrap();
    assert_eq!(stored.status(), 200);
    site.terminate();
    assert!(site.wait().success());
    drop(site);
    let site = Site::start(dir.path(), &[]);
    let again = client()
        .get(site.url("/api/prefs"))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    let json: serde_json::Value = again.json().await.unwrap();
    assert_eq!(
        json["devices_order"], "started",
        "same generated key, same files"
    );
}

#[tokio::test]
async fn healthz_reports_the_store() {
    let dir = tempfile::tempdir().unwrap();
    let site = Site::start(dir.path(), &[]);
    let response = client().get(site.url("/healthz")).send().await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.text().await.unwrap(), r#"{"status":"ok"}"#);
}

/// SIGTERM while a request is inside its handler: the request completes, its session write
/// lands, and the process exits cleanly. `Expect: 100-continue` proves the handler is running
/// (the server answers `100 Continue` only when the handler starts reading the body).
#[tokio::test]
async fn graceful_shutdown_lets_in_flight_requests_finish_and_their_writes_land() {
    let dir = tempfile::tempdir().unwrap();
    let mut site = Site::start(dir.path(), &[]);
    let (cookie, token) = logged_in(&site, "bob").await;
    let body = r#"{"devices_times":"utc"}"#;
    let mut stream = TcpStream::connect(site.addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    write!(
        stream,
        "PATCH /api/prefs HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\n\
         Cookie: {cookie}\r\nX-CSRFToken: {token}\r\n\
         Content-Length: {}\r\nExpect: 100-continue\r\n\r\n",
        site.addr,
        body.len()
    )
    .unwrap();
    let mut buffer = [0u8; 1024];
    let n = stream.read(&mut buffer).unwrap();
    assert!(String::from_utf8_lossy(&buffer[..n]).starts_with("HTTP/1.1 100 Continue"));

    site.terminate();
    stream.write_all(body.as_bytes()).unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    assert!(site.wait().success(), "clean exit; log:\n{}", site.log());
    drop(site);

    let site = Site::start(dir.path(), &[]);
    let read = client()
        .get(site.url("/api/prefs"))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    let json: serde_json::Value = read.json().await.unwrap();
    assert_eq!(json["devices_times"], "utc", "written during shutdown");
}

#[tokio::test]
async fn purge_expired_removes_expired_session_files_only() {
    let dir = tempfile::tempdir().unwrap();
    let short = [
        ("PERMANENT_SESSION_LIFETIME", "1"),
        ("SESSION_ABSOLUTE_LIFETIME", "1"),
    ];
    let run = async |env: &[(&str, &str)]| {
        let mut site = Site::start(dir.path(), env);
        let (cookie, token) = csrf(&site, None).await;
        let response = save_a_preference(&site, &cookie, &token).await;
        assert_eq!(response.status(), 200);
        site.terminate();
        assert!(site.wait().success());
    };
    // One session that lives for the default five minutes (a saved preference) ...
    run(&[]).await;
    let live = session_files(dir.path());
    assert_eq!(live.len(), 1, "one live session file: {live:?}");
    // ... and one that expires in a second (after the first site's start-up sweep).
    run(&short).await;
    let expired: Vec<_> = session_files(dir.path())
        .into_iter()
        .filter(|f| !live.contains(f))
        .collect();
    assert_eq!(expired.len(), 1, "one short session file: {expired:?}");
    let expired = expired[0].clone();
    std::fs::write(dir.path().join(".flask_session/notes.txt"), "not a session").unwrap();

    // The file's mtime is its deadline: poll until it has passed.
    let deadline = std::fs::metadata(&expired).unwrap().modified().unwrap();
    let start = Instant::now();
    while SystemTime::now() <= deadline {
        assert!(start.elapsed() < Duration::from_secs(10));
        std::thread::sleep(Duration::from_millis(50));
    }
    let output = portcullis(dir.path())
        .args(["sessions", "purge-expired"])
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&output.stdout).trim(),
        "removed 1 expired session(s)"
    );
    assert!(!expired.exists());
    assert!(live[0].exists(), "the live session is kept");
    assert!(
        dir.path().join(".flask_session/notes.txt").exists(),
        "foreign files are left alone"
    );
}
