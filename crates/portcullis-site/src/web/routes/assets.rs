//! `/static/style.css`, embedded in the binary.

use axum::http::header;
use axum::response::IntoResponse;

use crate::web::templates::STYLESHEET;

/// The stylesheet holds nothing private: caches may keep it for an hour.
pub(crate) async fn stylesheet() -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, "text/css; charset=utf-8"),
            (header::CACHE_CONTROL, "public, max-age=3600"),
        ],
        STYLESHEET,
    )
}
