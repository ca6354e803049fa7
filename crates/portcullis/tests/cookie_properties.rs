//! Property tests: any change to a valid cookie (a flipped byte, a cut, an extension, another
//! encoding) yields "no session" with a 200, never a 500, and nothing is read from the store.
#![allow(clippy::unwrap_used)]

mod support;

use std::sync::Arc;

use axum::Router;
use axum::http::StatusCode;
use portcullis::SessionLayer;
use portcullis::keys::KeyRing;
use portcullis::store::MemoryStore;
use portcullis_testing::Probe;
use proptest::prelude::*;
use support::app::{cookie_pair, get_with, routes, send};

struct World {
    runtime: tokio::runtime::Runtime,
    app: Router,
    stats: Arc<portcullis_testing::Stats>,
    value: String,
}

fn world() -> World {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let probe = Probe::new(MemoryStore::new());
    let stats = Arc::clone(&probe.stats);
    let keys = KeyRing::new(b"a property-test secret key of 32+ bytes", &[]);
    let app = routes().layer(SessionLayer::new(probe, keys));
    let (first, _) = runtime.block_on(send(&app, get_with("/count", None)));
    let value = cookie_pair(&first)
        .trim_start_matches("session=")
        .to_owned();
    World {
        runtime,
        app,
        stats,
        value,
    }
}

/// Sends `session=<value>` and checks that no session was found and nothing was loaded.
fn assert_no_session(world: &World, value: &str) -> Result<(), TestCaseError> {
    prop_assume!(value != world.value);
    let loads = world.stats.loads();
    let cookie = format!("session={value}");
    let (response, body) = world
        .runtime
        .block_on(send(&world.app, get_with("/read", Some(&cookie))));
    prop_assert_eq!(response.status(), StatusCode::OK);
    prop_assert_eq!(body, "0");
    prop_assert_eq!(
        world.stats.loads(),
        loads,
        "an unauthentic cookie must not reach the store"
    );
    Ok(())
}

/// Printable ASCII that a cookie header can carry, without the pair separator `;`.
fn cookie_char() -> impl Strategy<Value = char> {
    (0x21u8..=0x7e)
        .prop_filter("pair separator", |b| *b != b';')
        .prop_map(char::from)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn replacing_any_byte_gives_no_session(index in 0usize..87, replacement in cookie_char()) {
        let world = world();
        let mut chars: Vec<char> = world.value.chars().collect();
        let index = index % chars.len();
        chars[index] = replacement;
        assert_no_session(&world, &chars.into_iter().collect::<String>())?;
    }

    #[test]
    fn cutting_the_cookie_anywhere_gives_no_session(at in 0usize..87, from_front in any::<bool>()) {
        let world = world();
        let at = at % world.value.len();
        let cut = if from_front { &world.value[at + 1..] } else { &world.value[..at] };
        assert_no_session(&world, cut)?;
    }

    #[test]
    fn extending_the_cookie_gives_no_session(extra in proptest::collection::vec(cookie_char(), 1..64)) {
        let world = world();
        let extended = format!("{}{}", world.value, extra.into_iter().collect::<String>());
        assert_no_session(&world, &extended)?;
    }

    #[test]
    fn another_encoding_of_the_same_bytes_gives_no_session(variant in 0usize..4) {
        let world = world();
        let value = &world.value;
        let other = match variant {
            0 => value.replace('-', "+").replace('_', "/") + "=",
            1 => format!("{value}="),
            2 => value.replacen('.', "%2E", 1),
            _ => format!("\"{value}\"x"),
        };
        assert_no_session(&world, &other)?;
    }
}
