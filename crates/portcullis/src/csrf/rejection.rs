//! [`CsrfError`]: why a request was refused. Each variant is its own HTTP answer, with the
//! reason in Flask-WTF's words so that a team moving from Flask keeps its error pages and tests.
//! Also what the service and the response future share about a refusal: its marker, the
//! request it refused, and its one log line.

use axum_core::response::{IntoResponse, Response};
use http::{Method, StatusCode};
use tower_http::csrf::ProtectionError;

use crate::SessionError;
use crate::events;
use crate::response::{Answer, error_page};
use crate::session::MissingSessionLayer;

/// Why the CSRF protection refused a request (or could not issue a token).
///
/// The five token reasons, and the two `Referer` reasons of the Flask format, read exactly as
/// Flask-WTF's. [`IntoResponse`] renders an HTML page;
/// the layer itself renders JSON instead for API paths (see [`CsrfError::to_response`]).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CsrfError {
    /// No token in the `X-CSRFToken` / `X-CSRF-Token` header nor in the `csrf_token` field.
    #[error("The CSRF token is missing.")]
    Missing,
    /// A token was sent, but the session holds no secret: it was never given a page with a
    /// token, or it was regenerated (log in) or destroyed (log out) since.
    #[error("The CSRF session token is missing.")]
    SessionTokenMissing,
    /// The token is authentic but older than `WTF_CSRF_TIME_LIMIT`.
    #[error("The CSRF token has expired.")]
    Expired,
    /// The token is malformed or was not made with this site's key.
    #[error("The CSRF token is invalid.")]
    Invalid,
    /// The token is authentic but belongs to another session's secret.
    #[error("The CSRF tokens do not match.")]
    Mismatch,
    /// Flask format, over HTTPS: the request has no `Referer` (Flask-WTF's
    /// `WTF_CSRF_SSL_STRICT` check).
    #[error("The referrer header is missing.")]
    ReferrerMissing,
    /// Flask format, over HTTPS: the `Referer` is not `https://` on this very host and port.
    #[error("The referrer does not match the host.")]
    ReferrerMismatch,
    /// The origin check (`Sec-Fetch-Site`, then `Origin` against `Host`) saw a cross-origin
    /// request.
    #[error("Cross-origin request refused.")]
    CrossOrigin,
    /// An `Origin` that is neither the site's own (scheme, host and port all equal) nor
    /// trusted: `http://site` posting to `https://site` included. Django's reason.
    #[error("Origin checking failed - {origin} does not match any trusted origins.")]
    OriginMismatch {
        /// The `Origin` header as sent.
        origin: String,
    },
    /// Over HTTPS, a request with neither `Sec-Fetch-Site` nor `Origin` whose `Referer` is
    /// missing, malformed, not `https`, or on another origin; the reason is Django's
    /// (`Referer checking failed - …`).
    #[error("{0}")]
    Referer(String),
    /// The form body that should carry the token is over `MAX_CONTENT_LENGTH`.
    #[error("The request body is larger than the limit of {limit} bytes.")]
    BodyTooLarge {
        /// The configured limit, in bytes.
        limit: usize,
    },
    /// The form body could not be read (the client went away, or sent a broken stream).
    #[error("The request body could not be read.")]
    BodyUnreadable(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// No [`Session`](crate::Session) in the request: the layers are missing or in the wrong
    /// order. A server misconfiguration, so a 500.
    #[error("{MissingSessionLayer}")]
    NoSession,
    /// The session could not be read or written (the store is down).
    #[error(transparent)]
    Session(#[from] SessionError),
}

impl CsrfError {
    /// The status this error answers with: 403 for a refused request, 413 for an oversized
    /// body, 400 for an unreadable one, 500 for a misconfiguration, and the session's own status
    /// for a session error.
    #[must_use]
    pub fn status(&self) -> StatusCode {
        match self {
            Self::Missing
            | Self::SessionTokenMissing
            | Self::Expired
            | Self::Invalid
            | Self::Mismatch
            | Self::ReferrerMissing
            | Self::ReferrerMismatch
            | Self::CrossOrigin
            | Self::OriginMismatch { .. }
            | Self::Referer(_) => StatusCode::FORBIDDEN,
            Self::BodyTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            Self::BodyUnreadable(_) => StatusCode::BAD_REQUEST,
            Self::NoSession => MissingSessionLayer.status(),
            Self::Session(error) => error.status(),
        }
    }

    /// The `reason` label of `portcullis_csrf_refusals_total`: a fixed word per variant, never
    /// the header it names.
    pub(crate) fn metric_reason(&self) -> &'static str {
        match self {
            Self::Missing => "missing",
            Self::SessionTokenMissing => "session_token_missing",
            Self::Expired => "expired",
            Self::Invalid => "invalid",
            Self::Mismatch => "mismatch",
            Self::ReferrerMissing => "referrer_missing",
            Self::ReferrerMismatch => "referrer_mismatch",
            Self::CrossOrigin => "cross_origin",
            Self::OriginMismatch { .. } => "origin_mismatch",
            Self::Referer(_) => "referer",
            Self::BodyTooLarge { .. } => "body_too_large",
            Self::BodyUnreadable(_) => "body_unreadable",
            Self::NoSession => "no_session",
            Self::Session(_) => "session",
        }
    }

    /// Which kind of refusal this is, for an application that answers refusals in its own
    /// layout: `None` for the failures that are no refusal (body, session, misconfiguration).
    #[must_use]
    pub fn refusal(&self) -> Option<Refusal> {
        match self {
            Self::Missing
            | Self::SessionTokenMissing
            | Self::Expired
            | Self::Invalid
            | Self::Mismatch => Some(Refusal::StaleToken),
            Self::ReferrerMissing
            | Self::ReferrerMismatch
            | Self::CrossOrigin
            | Self::OriginMismatch { .. }
            | Self::Referer(_) => Some(Refusal::CrossOrigin),
            Self::BodyTooLarge { .. }
            | Self::BodyUnreadable(_)
            | Self::NoSession
            | Self::Session(_) => None,
        }
    }

    /// The answer as a page or as `{"error": reason, "status": code}`. A refusal carries its
    /// [`Refusal`] in the response's extensions.
    #[must_use]
    pub fn to_response(&self, answer: Answer) -> Response {
        let mut response = match self {
            Self::NoSession => MissingSessionLayer.to_response(answer),
            other => error_page(other.status(), &other.to_string(), answer),
        };
        if let Some(refusal) = self.refusal() {
            response.extensions_mut().insert(refusal);
        }
        response
    }
}

/// What kind of refusal a CSRF answer is, in its response's extensions, so that a layer
/// outside [`CsrfLayer`](super::CsrfLayer) can answer it its own way: show a stale form again
/// with a fresh token, or refuse a cross-site request in the site's layout.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Refusal {
    /// The request passed the origin check (it came from the site's own pages), but its token
    /// did not pass: missing, expired, or of a session that has ended since the form was
    /// rendered. Safe to answer with the form again and a fresh token.
    StaleToken,
    /// The request came from another origin, or could not show it came from this one.
    /// Nothing of it should be shown back.
    CrossOrigin,
}

/// An HTML page with the reason; the layer picks JSON for API paths itself.
impl IntoResponse for CsrfError {
    fn into_response(self) -> Response {
        match self {
            // The session layer turns a store failure into its 503 anyway; keep its answer.
            Self::Session(error) => error.into_response(),
            other => other.to_response(Answer::Page),
        }
    }
}

/// Marks the origin check's refusal, so that [`ResponseFuture`](super::ResponseFuture) can tell
/// it from a handler's 403.
#[derive(Clone, Copy, Debug)]
pub(crate) struct OriginRefused;

/// What a refusal needs to know about its request.
#[derive(Debug)]
pub(crate) struct RequestInfo {
    pub(crate) answer: Answer,
    pub(crate) method: Method,
    pub(crate) path: String,
}

/// One security log line per refusal; never the token. A store outage is the session layer's
/// to report.
pub(super) fn log_refusal(
    error: &CsrfError,
    method: &Method,
    path: &str,
    origin_check: Option<&ProtectionError>,
) {
    if matches!(error, CsrfError::Session(_)) {
        return;
    }
    crate::metrics::csrf_refused(error.metric_reason());
    let check = origin_check.map_or_else(|| "csrf token".to_owned(), ToString::to_string);
    events::csrf_refused(&error.to_string(), &check, method.as_str(), path);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_reasons_are_flask_wtf_words_and_forbidden() {
        let cases = [
            (CsrfError::Missing, "The CSRF token is missing."),
            (
                CsrfError::SessionTokenMissing,
                "The CSRF session token is missing.",
            ),
            (CsrfError::Expired, "The CSRF token has expired."),
            (CsrfError::Invalid, "The CSRF token is invalid."),
            (CsrfError::Mismatch, "The CSRF tokens do not match."),
            (
                CsrfError::ReferrerMissing,
                "The referrer header is missing.",
            ),
            (
                CsrfError::ReferrerMismatch,
                "The referrer does not match the host.",
            ),
            (CsrfError::CrossOrigin, "Cross-origin request refused."),
        ];
        for (error, text) in cases {
            assert_eq!(error.to_string(), text);
            assert_eq!(error.status(), StatusCode::FORBIDDEN, "{text}");
            let response = error.to_response(Answer::Page);
            assert_eq!(
                response.extensions().get::<Refusal>().copied(),
                error.refusal(),
                "{text}"
            );
        }
        assert_eq!(CsrfError::Expired.refusal(), Some(Refusal::StaleToken));
        assert_eq!(CsrfError::CrossOrigin.refusal(), Some(Refusal::CrossOrigin));
        assert_eq!(CsrfError::NoSession.refusal(), None);
    }

    #[test]
    fn other_failures_have_their_own_status() {
        assert_eq!(
            CsrfError::BodyTooLarge { limit: 10 }.status(),
            StatusCode::PAYLOAD_TOO_LARGE
        );
        assert_eq!(
            CsrfError::NoSession.status(),
            StatusCode::INTERNAL_SERVER_ERROR
        );
        let down = CsrfError::from(SessionError::Unavailable { source: None });
        assert_eq!(down.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(
            down.into_response().status(),
            StatusCode::SERVICE_UNAVAILABLE
        );
    }
}
