//! Round trips per request through the real middleware on a real Redis, counted from
//! `INFO commandstats`: a request that never touches the session costs nothing, a read costs
//! one `GETEX` (load and slide), a change costs that plus one `EVALSHA` (the compare-and-set
//! script), a new session one `SET`. Redis also counts the commands a script runs (its `GET`
//! and `SET`); they are listed, but the client sends one command per round trip.
#![cfg(feature = "redis")]
#![allow(clippy::unwrap_used)]

mod support;

use std::collections::HashMap;

use axum::Router;
use portcullis::SessionLayer;
use portcullis::keys::KeyRing;
use portcullis::store::{RedisStore, RedisTimeouts, SessionStore};
use portcullis_testing::redis::{RedisServer, commands_between};
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
