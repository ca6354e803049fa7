//! The benchmark's app on tower-sessions 0.14 and tower-sessions-redis-store 0.16 (fred): the
//! same four routes as `portcullis-app`, configured as that crate's documentation shows (a fred
//! pool of 6, an idle expiry of 5 minutes), plain-text cookie (its default). With
//! `--always-save` every request that carries a session saves it, which is how tower-sessions
//! slides the expiry of a session that is only read.
//!
//! Usage: `tower-sessions-app ADDRESS REDIS_URL [--always-save]`

#![forbid(unsafe_code)]

use std::error::Error;

use axum::Router;
use axum::http::StatusCode;
use axum::routing::{get, post};
use tower_sessions::cookie::time::Duration;
use tower_sessions::{Expiry, Session, SessionManagerLayer};
use tower_sessions_redis_store::RedisStore;
use tower_sessions_redis_store::fred::prelude::{ClientLike, Config, Pool};

/// The idle lifetime, Portcullis's default (the seed's five minutes).
const IDLE: Duration = Duration::minutes(5);
/// The pool size of tower-sessions-redis-store's documentation.
const POOL_SIZE: usize = 6;

type Answer<T> = Result<T, (StatusCode, String)>;

fn failed(error: tower_sessions::session::Error) -> (StatusCode, String) {
    (StatusCode::INTERNAL_SERVER_ERROR, error.to_string())
}

/// Never touches the session: the cost of the layer alone.
async fn plain() -> &'static str {
    "ok"
}

/// Reads the logged-in user: one load.
async fn read(session: Session) -> Answer<String> {
    let user = session.get::<String>("user").await.map_err(failed)?;
    Ok(user.unwrap_or_default())
}

/// `n += 1`: one load and one write.
async fn write(session: Session) -> Answer<String> {
    let n = session.get::<u64>("n").await.map_err(failed)?.unwrap_or(0) + 1;
    session.insert("n", n).await.map_err(failed)?;
    Ok(n.to_string())
}

/// A log-in: a new id (no session fixation) holding the user.
async fn log_in(session: Session) -> Answer<&'static str> {
    session.cycle_id().await.map_err(failed)?;
    session.insert("user", "alice").await.map_err(failed)?;
    Ok("welcome")
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn Error>> {
    let mut args = std::env::args().skip(1);
    let (Some(address), Some(redis_url)) = (args.next(), args.next()) else {
        return Err("usage: tower-sessions-app ADDRESS REDIS_URL [--always-save]".into());
    };
    let always_save = match args.next().as_deref() {
        None => false,
        Some("--always-save") => true,
        Some(other) => return Err(format!("unknown argument {other:?}").into()),
    };
    let pool = Pool::new(Config::from_url(&redis_url)?, None, None, None, POOL_SIZE)?;
    let _connection = pool.init().await?;
    let sessions = SessionManagerLayer::new(RedisStore::new(pool))
        .with_secure(false)
        .with_expiry(Expiry::OnInactivity(IDLE))
        .with_always_save(always_save);
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
