//! Round trips per request through the real middleware on a real Redis, counted from
//! `INFO commandstats`: a request that never touches the session costs nothing, a read costs
//! one `GETEX` (load and slide), a change costs that plus one `EVALSHA` (the compare-and-set
//! script), a new session one `SET`. Redis also counts the commands a script runs (its `GET`
//! and `SET`); they are listed, but the client sends one command per round trip. On Valkey
//! 8.1+ a change is one native `SET … IFEQ` instead of the script, and the store asks the
//! server again which one it has after the connection changes.
#![cfg(feature = "redis")]
#![allow(clippy::unwrap_used)]

mod support;

use std::collections::HashMap;

use axum::Router;
use portcullis::SessionLayer;
use portcullis::keys::KeyRing;
use std::time::{Duration, SystemTime};

use portcullis::store::{
    CasToken, RedisStore, RedisTimeouts, SaveOutcome, SessionStore, StoreKey, WriteOutcome,
};
use portcullis_testing::redis::{RedisServer, commands_between};
use portcullis_testing::valkey;
use support::app::{cookie_pair, get_with, post_with, routes, send};

async fn commands_of(
    server: &RedisServer,
    app: &Router,
    request: axum::http::Request<axum::body::Body>,
) -> (HashMap<String, u64>, axum::http::Response<()>) {
    let before = server.commandstats();
    let (response, _) = send(app, request).await;
    (commands_between(&before, &server.commandstats()), response)
}

fn counts(pairs: &[(&str, u64)]) -> HashMap<String, u64> {
    pairs
        .iter()
        .map(|&(name, calls)| (name.to_owned(), calls))
        .collect()
}

#[tokio::test]
async fn each_kind_of_request_costs_exactly_its_round_trips() {
    let server = RedisServer::start();
    let store = RedisStore::connect(&server.url(), RedisTimeouts::default())
        .await
        .unwrap();
    store.ping().await.unwrap(); // the connection's handshake happens before the first count
    let keys = KeyRing::new(b"a round-trip test secret of 32+ bytes", &[]);
    let app = routes().layer(SessionLayer::new(store, keys).with_permanent(true));

    let (commands, first) = commands_of(&server, &app, get_with("/count", None)).await;
    assert_eq!(
        commands,
        counts(&[("set", 1)]),
        "a new session: SET NX PXAT"
    );
    let cookie = cookie_pair(&first);

    let (commands, _) = commands_of(&server, &app, get_with("/untouched", Some(&cookie))).await;
    assert_eq!(
        commands,
        counts(&[]),
        "a handler that never touches the session"
    );

    let (commands, response) = commands_of(&server, &app, get_with("/read", Some(&cookie))).await;
    assert_eq!(
        commands,
        counts(&[("getex", 1)]),
        "a read: GETEX PXAT, nothing else"
    );
    assert!(
        response.headers().contains_key("set-cookie"),
        "the permanent cookie still slides"
    );

    // The first EVALSHA of each script on a fresh server loads it (NOSCRIPT, SCRIPT LOAD):
    // once per server, not per request.
    send(&app, get_with("/count", Some(&cookie))).await;
    send(&app, post_with("/regenerate", Some(&cookie), "")).await;
    let (warm, _) = send(&app, get_with("/count", None)).await;
    let cookie = cookie_pair(&warm);

    let (commands, _) = commands_of(&server, &app, get_with("/count", Some(&cookie))).await;
    assert_eq!(
        commands,
        counts(&[("getex", 1), ("evalsha", 1), ("get", 1), ("set", 1)]),
        "a change: GETEX, then EVALSHA cas (its GET and SET run inside it)"
    );

    let (commands, regenerated) =
        commands_of(&server, &app, post_with("/regenerate", Some(&cookie), "")).await;
    assert_eq!(
        commands,
        counts(&[
            ("getex", 1),
            ("set", 1),
            ("evalsha", 1),
            ("get", 1),
            ("del", 1)
        ]),
        "regenerate: the new record is written, then the old one deleted if unchanged"
    );
    let cookie = cookie_pair(&regenerated);

    let (commands, _) = commands_of(&server, &app, post_with("/destroy", Some(&cookie), "")).await;
    assert_eq!(
        commands,
        counts(&[("del", 1), ("set", 1)]),
        "destroy: DEL, without loading first, and SET NX of the ending's marker"
    );

    let (commands, _) = commands_of(&server, &app, get_with("/why", Some(&cookie))).await;
    assert_eq!(
        commands,
        counts(&[("getex", 1), ("get", 1)]),
        "a cookie that names no live session: GETEX finds nothing, one GET reads the marker"
    );
}

/// A logged-in cookie of `app` whose next change is a save, with every one-off command (the
/// script loads, the server probe) already spent.
async fn warm_cookie(app: &Router) -> String {
    let (first, _) = send(app, get_with("/count", None)).await;
    let cookie = cookie_pair(&first);
    send(app, get_with("/count", Some(&cookie))).await;
    send(app, post_with("/regenerate", Some(&cookie), "")).await;
    let (warm, _) = send(app, get_with("/count", None)).await;
    cookie_pair(&warm)
}

#[tokio::test]
async fn a_change_on_valkey_is_one_native_set_and_no_script() {
    let server = valkey::start();
    let store = RedisStore::connect(&server.url(), RedisTimeouts::default())
        .await
        .unwrap();
    let keys = KeyRing::new(b"a round-trip test secret of 32+ bytes", &[]);
    let app = routes().layer(SessionLayer::new(store.clone(), keys).with_permanent(true));
    let cookie = warm_cookie(&app).await;
    assert_eq!(
        store.native_cas(),
        Some(true),
        "Valkey 8.1 has SET ... IFEQ"
    );

    let (commands, response) = commands_of(&server, &app, get_with("/count", Some(&cookie))).await;
    assert!(response.status().is_success());
    assert_eq!(
        commands,
        counts(&[("getex", 1), ("set", 1)]),
        "a change on Valkey: GETEX, then SET ... IFEQ ... GET PXAT, no EVALSHA"
    );
}

#[tokio::test]
async fn a_change_on_valkey_with_native_writes_off_runs_the_script() {
    let server = valkey::start();
    let store = RedisStore::connect(&server.url(), RedisTimeouts::default())
        .await
        .unwrap()
        .with_native_cas(false);
    let keys = KeyRing::new(b"a round-trip test secret of 32+ bytes", &[]);
    let app = routes().layer(SessionLayer::new(store.clone(), keys).with_permanent(true));
    let cookie = warm_cookie(&app).await;
    assert_eq!(
        store.native_cas(),
        None,
        "never asked: the script is forced"
    );

    let (commands, _) = commands_of(&server, &app, get_with("/count", Some(&cookie))).await;
    assert_eq!(
        commands,
        counts(&[("getex", 1), ("evalsha", 1), ("get", 1), ("set", 1)]),
        "REDIS_NATIVE_CAS=false: the cas script, as on Redis 7"
    );
}

/// The choice belongs to the connection, not to the store: when the server behind the address
/// changes (Redis 7 replaced by Valkey on its port), the store asks again and switches.
#[tokio::test]
async fn the_write_path_is_chosen_again_when_the_connection_changes() {
    let mut redis = RedisServer::start();
    let store = RedisStore::connect(&redis.url(), RedisTimeouts::default())
        .await
        .unwrap();
    let key = StoreKey::from_string("sess:round-trips-switch".to_owned());
    let later = SystemTime::now() + Duration::from_secs(60);
    let save = |token: &'static [u8], next: &'static [u8]| {
        let (store, key) = (store.clone(), key.clone());
        async move {
            store
                .save(&key, &CasToken::of_record(token, 3), next, later)
                .await
                .unwrap()
        }
    };

    assert_eq!(
        store.create(&key, b"n1:first", later).await.unwrap(),
        WriteOutcome::Written
    );
    assert_eq!(save(b"n1:first", b"n2:second").await, SaveOutcome::Saved);
    assert_eq!(store.native_cas(), Some(false), "Redis 7 has no IFEQ");
    assert!(
        redis.commandstats().contains_key("evalsha"),
        "the script ran"
    );

    redis.stop();
    let mut valkey = valkey::on_port(redis.port(), &[]);
    valkey.start_again();
    // The first call meets the closed connection and is sent again on a new one.
    assert_eq!(store.load(&key, None).await.unwrap(), None, "a new server");
    assert_eq!(
        store.native_cas(),
        None,
        "forgotten with the old connection"
    );

    assert_eq!(
        store.create(&key, b"n1:first", later).await.unwrap(),
        WriteOutcome::Written
    );
    assert_eq!(save(b"n1:first", b"n2:second").await, SaveOutcome::Saved);
    assert_eq!(
        save(b"n1:first", b"n3:lost").await,
        SaveOutcome::Conflict(b"n2:second".to_vec())
    );
    assert_eq!(
        store.native_cas(),
        Some(true),
        "asked again: Valkey has IFEQ"
    );
    let commands = valkey.commandstats();
    assert_eq!(
        commands.get("set"),
        Some(&3),
        "SET NX, then two SET ... IFEQ"
    );
    assert!(!commands.contains_key("evalsha") && !commands.contains_key("eval"));
}

/// A user whose ACL forbids `COMMAND` cannot be told about `IFEQ`: the store saves with the
/// script and keeps that answer, rather than asking again on every save.
#[tokio::test]
async fn a_user_barred_from_command_docs_saves_with_the_script_and_is_not_asked_again() {
    let server = valkey::start();
    let created = server.command(&[
        "ACL", "SETUSER", "app", "on", ">app-pw", "~*", "+@all", "-command",
    ]);
    assert_eq!(created, portcullis_testing::Reply::Simple("OK".to_owned()));
    let url = format!("redis://app:app-pw@127.0.0.1:{}", server.port());
    let store = RedisStore::connect(&url, RedisTimeouts::default())
        .await
        .unwrap();
    let key = StoreKey::from_string("sess:round-trips-acl".to_owned());
    let later = SystemTime::now() + Duration::from_secs(60);
    store.create(&key, b"n1:first", later).await.unwrap();
    let saved = store
        .save(
            &key,
            &CasToken::of_record(b"n1:first", 3),
            b"n2:second",
            later,
        )
        .await
        .unwrap();
    assert_eq!(saved, SaveOutcome::Saved);
    assert_eq!(store.native_cas(), Some(false), "NOPERM: the script, kept");
    assert!(server.commandstats().contains_key("evalsha"));
}
