//! The real binary behind Redis Sentinel (a primary, a replica, three sentinels): when the
//! primary is killed, the site serves the same session and accepts writes again within the
//! sentinels' failover time plus a second, with only 503s meanwhile; and a logout answered
//! as the primary dies (four logouts sent, and the primary killed at once) stays a logout after
//! the failover. `scripts/failover-rounds` runs it for 50 rounds (`PORTCULLIS_FAILOVER_ROUNDS`);
//! CI runs a few.
#![allow(clippy::unwrap_used)]

use std::time::{Duration, Instant};

use reqwest::StatusCode;

use crate::support::{PASSWORD, SECRET, Site, client, csrf, post_form};
use portcullis_testing::sentinel::SentinelSetup;

/// Rounds when `PORTCULLIS_FAILOVER_ROUNDS` is unset: a few, to keep CI fast.
const CI_ROUNDS: usize = 3;
/// The goal: the site is back within the sentinels' own failover time plus this.
const SLACK: Duration = Duration::from_secs(1);
/// Users who log out as the primary is killed, each round.
const LEAVERS: usize = 4;
/// The longest the site may stay unavailable after a kill before the test gives up.
const GIVE_UP: Duration = Duration::from_secs(30);

/// What one session is: its cookie, its CSRF token and its user.
struct Visitor {
    cookie: String,
    token: String,
    name: String,
}

impl Visitor {
    async fn log_in(site: &Site, name: String) -> Self {
        let fields = [
            ("name", name.as_str()),
            ("password", PASSWORD),
            ("confirm", PASSWORD),
        ];
        let (response, _) = post_form(site, None, "/register", &fields).await;
        assert_eq!(
            response.status(),
            303,
            "registration; the site's log:\n{}",
            site.log()
        );
        let log_in = [("name", name.as_str()), ("password", PASSWORD)];
        let (response, cookie) = post_form(site, None, "/login", &log_in).await;
        assert_eq!(
            response.status(),
            303,
            "log-in; the site's log:\n{}",
            site.log()
        );
        let (cookie, token) = csrf(site, Some(&cookie)).await;
        Self {
            cookie,
            token,
            name,
        }
    }

    /// `GET /api/me`: its status, and the user it names.
    async fn me(&self, site: &Site) -> (StatusCode, Option<String>) {
        let response = client()
            .get(site.url("/api/me"))
            .header("cookie", &self.cookie)
            .send()
            .await
            .unwrap();
        let status = response.status();
        let json: serde_json::Value = response.json().await.unwrap_or_default();
        (status, json["user"].as_str().map(str::to_owned))
    }

    /// `PATCH /api/prefs` with `devices_order`: the status.
    async fn write(&self, site: &Site, order: &str) -> StatusCode {
        client()
            .patch(site.url("/api/prefs"))
            .header("cookie", &self.cookie)
            .header("x-csrftoken", &self.token)
            .json(&serde_json::json!({ "devices_order": order }))
            .send()
            .await
            .unwrap()
            .status()
    }

    /// `POST /logout`: the status.
    async fn log_out(site: String, cookie: String, token: String) -> StatusCode {
        client()
            .post(format!("{site}/logout"))
            .header("cookie", cookie)
            .header("content-type", "application/x-www-form-urlencoded")
            .body(format!("csrf_token={token}"))
            .send()
            .await
            .unwrap()
            .status()
    }
}

/// What the rounds saw, printed at the end for `scripts/failover-rounds`.
#[derive(Default)]
struct Tally {
    acknowledged: usize,
    refused: usize,
    came_back: usize,
    recoveries: Vec<Duration>,
    failovers: Vec<Duration>,
}

/// One round on a fresh setup and site: `staying` has written to its session, [`LEAVERS`]
/// users log out as the primary is killed. Polls without pause until the site serves `staying`'s session
/// and accepts its write (only 503 meanwhile, never another user), then checks that an
/// acknowledged logout still holds.
async fn one_failover(tally: &mut Tally) {
    let mut setup = SentinelSetup::start();
    let dir = tempfile::tempdir().unwrap();
    let url = setup.url();
    // `scripts/failover-rounds` may set the replicas to wait for (0: its baseline without WAIT).
    let wait = std::env::var("PORTCULLIS_FAILOVER_WAIT_REPLICAS").unwrap_or("auto".to_owned());
    let site = Site::start(
        dir.path(),
        &[
            ("PORTCULLIS_PROFILE", "redis"),
            ("SECRET_KEY", SECRET),
            ("REDIS_URL", url.as_str()),
            ("REDIS_WAIT_REPLICAS", wait.as_str()),
            // A look-up asks the sentinels and then the primary, over new connections: on a
            // machine loaded by parallel builds 250 ms is not always enough for that.
            ("REDIS_CONNECT_TIMEOUT", "1s"),
        ],
    );
    let staying = Visitor::log_in(&site, "stays".to_owned()).await;
    let mut leaving = Vec::new();
    for n in 0..LEAVERS {
        leaving.push(Visitor::log_in(&site, format!("leaves{n}")).await);
    }
    assert_eq!(staying.write(&site, "started").await, StatusCode::OK);
    setup.wait_until_replicated();

    let logouts: Vec<_> = leaving
        .iter()
        .map(|v| {
            tokio::spawn(Visitor::log_out(
                site.url(""),
                v.cookie.clone(),
                v.token.clone(),
            ))
        })
        .collect();
    let killed_at = Instant::now();
    let old = setup.kill_primary();
    let mut unavailable = 0_u32;
    loop {
        let (status, user) = staying.me(&site).await;
        match status {
            StatusCode::OK => {
                assert_eq!(user.as_deref(), Some("stays"), "the same session");
                match staying.write(&site, "last-used").await {
                    StatusCode::OK => break,
                    StatusCode::SERVICE_UNAVAILABLE => unavailable += 1,
                    other => panic!("a write during the failover answered {other}"),
                }
            }
            StatusCode::SERVICE_UNAVAILABLE => unavailable += 1,
            other => panic!("during the failover only 503 is allowed, not {other}"),
        }
        assert!(killed_at.elapsed() < GIVE_UP, "the site did not recover");
    }
    let recovered = killed_at.elapsed();
    let failover = setup.wait_for_failover(old, killed_at);
    assert!(unavailable > 0, "the kill was noticed");
    assert!(
        recovered <= failover + SLACK,
        "served and written again {recovered:?} after the kill; the sentinels took {failover:?}"
    );
    tally.recoveries.push(recovered);
    tally.failovers.push(failover);

    for (visitor, logout) in leaving.iter().zip(logouts) {
        let answered = logout.await.unwrap();
        let after = still_logged_in(&site, visitor, killed_at).await;
        match answered {
            StatusCode::SEE_OTHER => {
                tally.acknowledged += 1;
                tally.came_back += usize::from(after);
            }
            StatusCode::SERVICE_UNAVAILABLE => tally.refused += 1,
            other => panic!("a logout answered {other}"),
        }
    }
}

/// Whether `visitor`'s session is alive, once the site answers something else than 503.
async fn still_logged_in(site: &Site, visitor: &Visitor, killed_at: Instant) -> bool {
    loop {
        let (status, user) = visitor.me(site).await;
        match status {
            StatusCode::SERVICE_UNAVAILABLE => {}
            StatusCode::OK => {
                assert_eq!(
                    user.as_deref(),
                    Some(visitor.name.as_str()),
                    "the same session"
                );
                return true;
            }
            StatusCode::UNAUTHORIZED => return false,
            other => panic!("after the failover: {other}"),
        }
        assert!(killed_at.elapsed() < GIVE_UP, "the site did not recover");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sentinel_failover_keeps_sessions_and_brings_back_no_logout() {
    let rounds = std::env::var("PORTCULLIS_FAILOVER_ROUNDS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(CI_ROUNDS);
    let mut tally = Tally::default();
    for _ in 0..rounds {
        one_failover(&mut tally).await;
    }
    let median = |list: &mut Vec<Duration>| {
        list.sort();
        list[list.len() / 2]
    };
    eprintln!(
        "failover rounds: {rounds}; logouts acknowledged: {}, answered 503: {}, came back: {}; \
         median site recovery {:?}, median sentinel failover {:?}",
        tally.acknowledged,
        tally.refused,
        tally.came_back,
        median(&mut tally.recoveries),
        median(&mut tally.failovers),
    );
    assert_eq!(tally.came_back, 0, "an acknowledged logout came back");
}
