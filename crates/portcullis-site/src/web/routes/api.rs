//! The JSON API: `/api/me`, `/api/prefs`, `/api/csrf-token`, and `/api/session` (raw session
//! values, used by the tests and the load benchmark). Errors are `{"error": reason}` with a 4xx
//! status. Unsafe methods need the `X-CSRFToken` header (the CSRF layer checks it).

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use portcullis::csrf::CsrfToken;
use portcullis::{Session, SessionError};
use serde::Deserialize;
use serde_json::{Map, Value, json};

use crate::session_data::prefs::Prefs;
use crate::web::error::ApiError;
use crate::web::extract::ApiUser;
use crate::web::state::AppState;
use crate::web::text::seconds_left;

/// Longest key accepted by `/api/session`.
const MAX_API_KEY_LEN: usize = 64;
/// Largest `PATCH /api/prefs` body: preferences are a few short words.
pub(crate) const MAX_PREFS_BODY: usize = 1024;

/// A token for the `X-CSRFToken` header of `PATCH /api/prefs` and `POST /api/session`.
pub(crate) async fn csrf_token(csrf: CsrfToken) -> Json<Value> {
    Json(json!({ "csrf_token": csrf.token() }))
}

pub(crate) async fn me(
    State(state): State<AppState>,
    session: Session,
    ApiUser(user): ApiUser,
) -> Result<Json<Value>, ApiError> {
    let left = seconds_left(&state, &session).await?;
    Ok(Json(json!({
        "user": user.name,
        "display_name": user.display_name,
        "seconds_left": left,
    })))
}

pub(crate) async fn prefs(session: Session) -> Result<Json<Prefs>, ApiError> {
    Ok(Json(Prefs::load(&session).await?))
}

/// Changes the preferences it names, and only those: a JSON object of known keys, e.g.
/// `{"theme": "dark"}` (`PATCH`; `PUT` is the older spelling and does the same).
pub(crate) async fn patch_prefs(session: Session, body: Bytes) -> Result<Json<Prefs>, ApiError> {
    let unprocessable = |reason: String| ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, reason);
    let changes: Map<String, Value> = match serde_json::from_slice(&body) {
        Ok(Value::Object(map)) => map,
        Ok(_) => return Err(unprocessable("the body must be a JSON object".to_owned())),
        Err(e) => {
            let reason = format!("the body is not valid JSON: {e}");
            return Err(ApiError::new(StatusCode::BAD_REQUEST, reason));
        }
    };
    let prefs = Prefs::patch(&session, changes)
        .await?
        .map_err(unprocessable)?;
    Ok(Json(prefs))
}

/// Keys the site keeps for itself: `_`-prefixed (Flask's convention) and the CSRF secret.
fn reserved(key: &str) -> bool {
    key.starts_with('_') || key == portcullis::csrf::SESSION_KEY
}

pub(crate) async fn read_values(session: Session) -> Result<Json<Value>, SessionError> {
    let mut values = Map::new();
    for key in session.keys().await?.into_iter().filter(|k| !reserved(k)) {
        if let Ok(Some(value)) = session.get::<Value>(&key).await {
            values.insert(key, value);
        }
    }
    Ok(Json(json!({ "values": values })))
}

#[derive(Deserialize)]
pub(crate) struct WriteValue {
    key: String,
    value: Value,
}

/// Stores one value for the logged-in user's session. Logged-in only, so that anonymous clients
/// cannot fill the store with 64 KiB sessions.
pub(crate) async fn write_value(
    session: Session,
    _user: ApiUser,
    Json(body): Json<WriteValue>,
) -> Response {
    let valid = !body.key.is_empty()
        && body.key.len() <= MAX_API_KEY_LEN
        && !reserved(&body.key)
        && body
            .key
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if !valid {
        let reason = "key must be 1 to 64 letters, digits, '-' or '_', not starting with '_', \
                      and not a reserved name";
        return ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, reason).into_response();
    }
    match session.insert(&body.key, body.value).await {
        Ok(()) => Json(json!({ "stored": body.key })).into_response(),
        Err(error) => error.into_response(),
    }
}
