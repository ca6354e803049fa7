//! `/healthz`: 200 when the session store and the accounts database answer, 503 otherwise.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::web::state::AppState;

pub(crate) async fn healthz(State(state): State<AppState>) -> Response {
    if let Err(error) = state.store().ping().await {
        let body = json!({ "status": "unavailable", "error": error.to_string() });
        return (StatusCode::SERVICE_UNAVAILABLE, Json(body)).into_response();
    }
    if let Err(error) = state.users().ping().await {
        let body = json!({ "status": "unavailable", "error": error.to_string() });
        return (StatusCode::SERVICE_UNAVAILABLE, Json(body)).into_response();
    }
    Json(json!({ "status": "ok" })).into_response()
}
