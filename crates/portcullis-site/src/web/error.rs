//! Errors that are responses: [`AppError`] for pages (the session layer's own answers, or a
//! generic 500 page with the cause logged) and [`ApiError`] for JSON routes.

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use portcullis::SessionError;
use serde_json::json;

use crate::accounts::password::{BUSY_RETRY_AFTER, HashError};
use crate::accounts::users::UsersError;

/// Something the site could not do. Never caused by input alone: input problems are 4xx
/// answers built by the handlers.
#[derive(Debug, thiserror::Error)]
pub(crate) enum AppError {
    /// The session store failed (the layer answers 503) or the session was misused.
    #[error(transparent)]
    Session(#[from] SessionError),
    /// The accounts database failed.
    #[error(transparent)]
    Users(#[from] UsersError),
    /// A template failed to render.
    #[error("a page failed to render")]
    Template(#[from] minijinja::Error),
    /// Password hashing failed.
    #[error(transparent)]
    Hash(#[from] HashError),
}

impl IntoResponse for AppError {
    fn into_response(self) -> Response {
        if let Self::Session(error) = self {
            return error.into_response();
        }
        if let Self::Hash(HashError::Busy) = self {
            // Handlers answer with the site's page (`Page::busy`); this is the fallback.
            let page = "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
                 <title>The site is busy</title></head><body><h1>The site is busy</h1>\
                 <p>Too many people are logging in at this moment. Please try again in a few \
                 seconds.</p><p><a href=\"/\">Home</a></p></body></html>\n";
            let mut response = (StatusCode::SERVICE_UNAVAILABLE, Html(page)).into_response();
            with_busy_retry_after(&mut response);
            return response;
        }
        if let Self::Users(error) = &self
            && error.is_unavailable()
        {
            tracing::warn!(error = %error, source = ?std::error::Error::source(error), "the accounts database is unavailable");
            let page = "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
                 <title>Accounts are temporarily unavailable</title></head><body>\
                 <h1>Accounts are temporarily unavailable</h1><p>The site cannot reach its \
                 accounts database at this moment. Please try again in a few seconds.</p>\
                 </body></html>\n";
            return (StatusCode::SERVICE_UNAVAILABLE, Html(page)).into_response();
        }
        tracing::error!(error = %self, source = ?std::error::Error::source(&self), "request failed");
        let page = "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
             <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
             <title>Something went wrong</title></head><body><h1>Something went wrong</h1>\
             <p>The site could not answer this request. Please try again in a moment.</p>\
             </body></html>\n";
        (StatusCode::INTERNAL_SERVER_ERROR, Html(page)).into_response()
    }
}

/// Adds `Retry-After` for a full password-hashing queue.
pub(crate) fn with_busy_retry_after(response: &mut Response) {
    response.headers_mut().insert(
        header::RETRY_AFTER,
        HeaderValue::from(BUSY_RETRY_AFTER.as_secs()),
    );
}

/// A JSON error: `{"error": reason}` with a status.
#[derive(Debug)]
pub(crate) struct ApiError {
    status: StatusCode,
    reason: String,
    /// `Retry-After` for a full hashing queue.
    busy: bool,
}

impl ApiError {
    /// An error with `status` and a reason for the client.
    pub(crate) fn new(status: StatusCode, reason: impl Into<String>) -> Self {
        Self {
            status,
            reason: reason.into(),
            busy: false,
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut response = (self.status, Json(json!({ "error": self.reason }))).into_response();
        if self.busy {
            with_busy_retry_after(&mut response);
        }
        response
    }
}

/// Server-side failures in JSON routes: the session layer answers for its own errors, the rest
/// is logged and answered with a JSON 500.
impl From<AppError> for ApiError {
    fn from(error: AppError) -> Self {
        match error {
            // The session's own answers (503, 413), with its reason.
            AppError::Session(error) if error.status() != StatusCode::INTERNAL_SERVER_ERROR => {
                Self::new(error.status(), error.to_string())
            }
            AppError::Hash(HashError::Busy) => Self {
                busy: true,
                ..Self::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "the site is busy checking passwords; try again shortly",
                )
            },
            AppError::Users(error) if error.is_unavailable() => {
                tracing::warn!(error = %error, source = ?std::error::Error::source(&error), "the accounts database is unavailable");
                Self::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "the accounts database is unavailable; try again shortly",
                )
            }
            other => {
                tracing::error!(error = %other, "API request failed");
                Self::new(StatusCode::INTERNAL_SERVER_ERROR, "internal error")
            }
        }
    }
}

impl From<SessionError> for ApiError {
    fn from(error: SessionError) -> Self {
        AppError::from(error).into()
    }
}
