//! The probes: `/healthz` (200 when the session store and the accounts database answer, 503
//! otherwise, with the error), and Kubernetes' `/livez` (200 while the process answers) and
//! `/readyz` (200 when both answer and no graceful shutdown has begun, else 503). `/livez` and
//! `/readyz` are mounted outside every layer but the security headers (`web/mod.rs`): no
//! session, no CSRF check, no `ALLOWED_HOSTS` (a kubelet sends the pod's address as `Host`), no
//! load shedding; their bodies say nothing but the state, so any host may read them.

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

/// Liveness: the process answers. Nothing else is checked, so that an outage of Redis or the
/// database never makes Kubernetes restart a healthy process.
pub(crate) async fn livez() -> Response {
    Json(json!({ "status": "ok" })).into_response()
}

/// Readiness: 503 from the first moment of a graceful shutdown (so new requests go elsewhere
/// before the listener closes), or while the session store or the database does not answer
/// (each ping bounded by its own timeouts). Which one failed is named, its error is not.
pub(crate) async fn readyz(State(state): State<AppState>) -> Response {
    let unavailable = |what: &str| {
        let body = json!({ "status": "unavailable", "unavailable": what });
        (StatusCode::SERVICE_UNAVAILABLE, Json(body)).into_response()
    };
    if state.shutting_down() {
        return unavailable("shutting down");
    }
    if state.store().ping().await.is_err() {
        return unavailable("session store");
    }
    if state.users().ping().await.is_err() {
        return unavailable("database");
    }
    Json(json!({ "status": "ok" })).into_response()
}
