//! The benchmark's app on Portcullis: the four routes of `benches/peers/run` behind a
//! `SessionLayer` on the Redis store, as the library runs by default (signed cookie, sealed
//! record, idle expiry slid by every load, compare-and-set writes), with a permanent cookie that
//! slides too, as the `redis` profile has it. Plain HTTP, so the cookie is not `Secure`.
//!
//! Usage: `portcullis-app ADDRESS REDIS_URL`

#![forbid(unsafe_code)]

use std::error::Error;

use axum::Router;
use axum::routing::{get, post};
use portcullis::keys::KeyRing;
use portcullis::store::{RedisStore, RedisTimeouts};
use portcullis::{Session, SessionError, SessionLayer};

/// The benchmark's own key: the figures do not depend on it.
const SECRET_KEY: &[u8] = b"benches/peers: a secret key of at least 32 bytes";

/// Never touches the session: the cost of the layer alone.
async fn plain() -> &'static str {
    "ok"
}

/// Reads the logged-in user: one load (and, here, one slide).
async fn read(session: Session) -> Result<String, SessionError> {
    Ok(session.get::<String>("user").await?.unwrap_or_default())
}

/// `n += 1`: one load and one write.
async fn write(session: Session) -> Result<String, SessionError> {
    let n = session.get::<u64>("n").await?.unwrap_or(0) + 1;
    session.insert("n", n).await?;
    Ok(n.to_string())
}

/// A log-in: a new id (no session fixation) holding the user.
async fn log_in(session: Session) -> Result<&'static str, SessionError> {
    session.regenerate().await?;
    session.insert("user", "alice").await?;
    Ok("welcome")
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn Error>> {
    let mut args = std::env::args().skip(1);
    let (Some(address), Some(redis_url)) = (args.next(), args.next()) else {
        return Err("usage: portcullis-app ADDRESS REDIS_URL".into());
    };
    let store = RedisStore::connect(&redis_url, RedisTimeouts::default()).await?;
    let sessions = SessionLayer::new(store, KeyRing::new(SECRET_KEY, &[]))
        .with_permanent(true)
        .with_secure(false);
    let app = Router::new()
        .route("/plain", get(plain))
        .route("/read", get(read))
        .route("/write", post(write))
        .route("/login", post(log_in))
        .layer(sessions);
    let listener = tokio::net::TcpListener::bind(&address).await?;
    axum::serve(listener, app).await?;
    Ok(())
}
