//! The site's routes. This site is small: `/` shows the session working (a visit
//! counter and the time left), `/api/session` reads and writes session values as JSON, and
//! `/healthz` reports whether the session store answers.

use std::sync::Arc;
use std::time::SystemTime;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use portcullis::config::Config;
use portcullis::store::SessionStore;
use portcullis::{Session, SessionError, SessionLayer};
use serde::Deserialize;
use serde_json::{Map, Value, json};

/// Longest key accepted by `/api/session`.
const MAX_API_KEY_LEN: usize = 64;

#[derive(Clone)]
struct AppState {
    store: Arc<dyn SessionStore>,
}

/// The whole site, with the session layer configured from `config`.
pub(crate) fn router(config: &Config, store: Arc<dyn SessionStore>) -> Router {
    let sessions = SessionLayer::from_config(config, Arc::clone(&store));
    Router::new()
        .route("/", get(index))
        .route("/api/session", get(read_values).post(write_value))
        .route("/healthz", get(healthz))
        .layer(sessions)
        .with_state(AppState { store })
}

async fn index(session: Session) -> Result<Html<String>, SessionError> {
    let visits: u64 = session.get("visits").await?.unwrap_or(0) + 1;
    session.insert("visits", visits).await?;
    let left = session
        .expires_at()
        .await?
        .duration_since(SystemTime::now())
        .map_or(0, |d| d.as_secs());
    Ok(Html(format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>Portcullis</title></head><body><h1>Portcullis</h1>\
         <p>You have visited this page <strong id=\"visits\">{visits}</strong> time(s) in this session.</p>\
         <p>Your session expires in <strong id=\"left\">{left}</strong> seconds unless you come back sooner.</p>\
         </body></html>\n"
    )))
}

async fn read_values(session: Session) -> Result<Json<Value>, SessionError> {
    let mut values = Map::new();
    for key in session.keys().await? {
        if let Some(value) = session.get::<Value>(&key).await? {
            values.insert(key, value);
        }
    }
    Ok(Json(json!({ "values": values })))
}

#[derive(Deserialize)]
struct WriteValue {
    key: String,
    value: Value,
}

async fn write_value(session: Session, Json(body): Json<WriteValue>) -> Response {
    let valid = !body.key.is_empty()
        && body.key.len() <= MAX_API_KEY_LEN
        && !body.key.starts_with('_')
        && body.key != portcullis::csrf::SESSION_KEY
        && body
            .key
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if !valid {
        let reason = "key must be 1 to 64 letters, digits, '-' or '_', not starting with '_', \
                      and not a reserved name";
        return (
            StatusCode::UNPROCESSABLE_ENTITY,
            Json(json!({ "error": reason })),
        )
            .into_response();
    }
    match session.insert(&body.key, body.value).await {
        Ok(()) => Json(json!({ "stored": body.key })).into_response(),
        Err(error) => error.into_response(),
    }
}

async fn healthz(State(state): State<AppState>) -> Response {
    match state.store.ping().await {
        Ok(()) => Json(json!({ "status": "ok" })).into_response(),
        Err(error) => (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({ "status": "unavailable", "error": error.to_string() })),
        )
            .into_response(),
    }
}
