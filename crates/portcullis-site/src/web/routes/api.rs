//! The JSON API: `/api/me`, `/api/prefs` and `/api/csrf-token`. Errors are `{"error": reason}`
//! with a 4xx status. Each checks a logged-in session as the pages do (`ApiUser`, `ApiSession`). Unsafe methods need the `X-CSRFToken` header (the CSRF layer checks it).
//!
//! No route writes arbitrary session keys: a Flask app sharing the sessions may trust keys
//! such as `user_id`, so clients set known preferences only (`PATCH /api/prefs`): the
//! session's own view options (`session_data/prefs.rs`); the appearance is the account's.

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use portcullis::Session;
use portcullis::csrf::CsrfToken;
use serde_json::{Map, Value, json};

use crate::session_data::prefs::Prefs;
use crate::web::error::ApiError;
use crate::web::extract::{ApiSession, ApiUser};
use crate::web::state::AppState;
use crate::web::text::seconds_left;

/// Largest `PATCH /api/prefs` body: preferences are a few short words.
pub(crate) const MAX_PREFS_BODY: usize = 1024;

/// A token for the `X-CSRFToken` header of `PATCH /api/prefs` (and any unsafe JSON request).
pub(crate) async fn csrf_token(_checked: ApiSession, csrf: CsrfToken) -> Json<Value> {
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

pub(crate) async fn prefs(ApiSession(session): ApiSession) -> Result<Json<Prefs>, ApiError> {
    Ok(Json(Prefs::load(&session).await?))
}

/// Changes the preferences it names, and only those: a JSON object of known keys, e.g.
/// `{"devices_order": "started"}` (`PATCH`; `PUT` is the older spelling and does the same).
pub(crate) async fn patch_prefs(
    ApiSession(session): ApiSession,
    body: Bytes,
) -> Result<Json<Prefs>, ApiError> {
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
