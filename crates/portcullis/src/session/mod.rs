//! Server-side sessions: the [`Session`] handle, the [`SessionLayer`] that provides it, and the
//! rules for ids, cookies, records and expiry. The crate docs explain the model; this module
//! holds the pieces:
//!
//! - `id.rs`: 256-bit ids (with a user's routing tag once logged in) and the hashed store key;
//! - `cookie.rs`: reading and verifying the cookie, writing `Set-Cookie`;
//! - `record.rs`: the envelope (sealed in the native format);
//! - `format/`: the [`Format`]: native or Flask cookies, store keys, records, CSRF secrets and
//!   compare-and-set tokens;
//! - `handle.rs`: the [`Session`] handle (typed access, update, regenerate, destroy), which
//!   records every change in `changes.rs`; `load.rs`: its lazy load, which classifies what
//!   the store holds;
//! - `write/`: the write after the handler: create (`create.rs`), compare-and-set (`save.rs`)
//!   in a process's turn (`turns.rs`) with back-off (`backoff.rs`), one replay of this
//!   request's changes onto a newer record, delete;
//! - `secret.rs`: the session's CSRF secret (minted at creation, dropped at regeneration),
//!   which the CSRF layer reads through [`Session`]'s crate-internal methods;
//!   `pre_session.rs`: an anonymous visitor's secret in a signed cookie until something real
//!   is stored, so cookieless form pages write no record;
//! - `ending.rs`: why a session ended ([`Ending`]) and the short-lived marker that says so;
//! - `devices.rs`: a user's sessions across devices ([`UserSessions`], [`Session::devices`]);
//! - `layer.rs`, `service.rs`: the tower middleware and what it does after the handler;
//! - `shared.rs`: what every request of one layer shares (settings, store, keys, clock).

mod changes;
mod cookie;
mod devices;
pub(crate) mod ending;
mod format;
mod handle;
mod id;
mod layer;
mod load;
mod opened;
mod pre_session;
mod record;
mod routing;
pub(crate) mod secret;
mod service;
mod shared;
mod stripes;
mod write;

pub use cookie::SameSite;
pub use devices::{DeviceId, DeviceSession, UserSessions};
pub use ending::Ending;
pub use format::Format;
pub use handle::Session;
pub use id::Id;
pub use layer::SessionLayer;
pub use record::Data;
pub use service::{ResponseFuture, SessionService};

pub(crate) use cookie::is_token_byte;
pub(crate) use secret::CSRF_SECRET_KEY;
pub(crate) use shared::{Health, LayerShared, Settings};

use axum_core::response::{IntoResponse, Response};
use http::StatusCode;

use crate::response::{Answer, error_page};
use crate::store::StoreError;

/// What went wrong with a session operation. Each variant is also the HTTP answer
/// ([`IntoResponse`]), so handlers can use `?`.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SessionError {
    /// The store could not be reached. The layer turns the whole response into a 503 and leaves
    /// the client's cookie alone (fail closed).
    #[error("sessions are temporarily unavailable")]
    Unavailable {
        /// The store's error, when there was one in this call.
        #[source]
        source: Option<StoreError>,
    },
    /// The session would exceed `SESSION_MAX_BYTES`; nothing was changed.
    #[error("the session would hold {size} bytes, over the limit of {max} (SESSION_MAX_BYTES)")]
    TooLarge {
        /// Encoded size the change would have produced.
        size: usize,
        /// The configured limit.
        max: usize,
    },
    /// A stored value is not of the requested type.
    #[error("a session value could not be decoded as the requested type")]
    Decode(#[source] rmpv::ext::Error),
    /// A value could not be encoded as MessagePack.
    #[error("a value could not be encoded for the session")]
    Encode(#[source] rmpv::ext::Error),
    /// There is no per-user index, so a user's sessions cannot be listed or ended: the store
    /// keeps none (every store of this crate does), or the sessions are in the Flask format
    /// (whose ids the Flask app mints, so they cannot share a slot with an index).
    #[error("there is no per-user session index (a store without one, or the Flask format)")]
    NoUserIndex,
}

impl SessionError {
    /// The status this error answers with: 503 when the store is down, 413 for a session over
    /// `SESSION_MAX_BYTES`, 500 for the rest (a bug or a misconfiguration).
    #[must_use]
    pub fn status(&self) -> StatusCode {
        match self {
            Self::Unavailable { .. } => StatusCode::SERVICE_UNAVAILABLE,
            Self::TooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            Self::Decode(_) | Self::Encode(_) | Self::NoUserIndex => {
                StatusCode::INTERNAL_SERVER_ERROR
            }
        }
    }
}

/// An HTML page with the reason.
impl IntoResponse for SessionError {
    fn into_response(self) -> Response {
        error_page(self.status(), &self.to_string(), Answer::Page)
    }
}

/// The rejection when a request carries no [`Session`]: [`SessionLayer`] is not on the route,
/// or it sits inside a layer that needs the session (`CsrfLayer`). A server misconfiguration,
/// so a 500 that names the fix. The [`Session`] extractor, the
/// `CsrfToken` extractor and the CSRF layer all answer with it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, thiserror::Error)]
#[error("{}", Self::BODY_TEXT)]
pub struct MissingSessionLayer;

impl MissingSessionLayer {
    const BODY_TEXT: &str = "Sessions are misconfigured: no session in the request. Add \
        SessionLayer outside CsrfLayer and outside every route that uses the session: \
        `.layer(CsrfLayer::new()).layer(SessionLayer::new(..))`.";
    const RELEASE_BODY_TEXT: &str =
        "The server is misconfigured (its log says how to fix it). Please try again later.";

    /// 500 Internal Server Error.
    #[must_use]
    pub fn status(&self) -> StatusCode {
        StatusCode::INTERNAL_SERVER_ERROR
    }

    /// The reason, naming the fix.
    #[must_use]
    pub fn body_text(&self) -> &'static str {
        Self::BODY_TEXT
    }

    /// The answer, as a page or JSON: the reason naming the fix in debug builds, a plain
    /// "misconfigured" in release builds (the fix is for the developer, not the visitor).
    /// Logged either way, naming the fix.
    pub(crate) fn to_response(self, answer: Answer) -> Response {
        tracing::error!("{}", Self::BODY_TEXT);
        let body = if cfg!(debug_assertions) {
            self.body_text()
        } else {
            Self::RELEASE_BODY_TEXT
        };
        error_page(self.status(), body, answer)
    }
}

/// An HTML page with the reason; the misconfiguration is logged.
impl IntoResponse for MissingSessionLayer {
    fn into_response(self) -> Response {
        self.to_response(Answer::Page)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_session_error_answers_with_its_own_status() {
        let cases = [
            (
                SessionError::Unavailable { source: None },
                StatusCode::SERVICE_UNAVAILABLE,
            ),
            (
                SessionError::TooLarge { size: 2, max: 1 },
                StatusCode::PAYLOAD_TOO_LARGE,
            ),
            (SessionError::NoUserIndex, StatusCode::INTERNAL_SERVER_ERROR),
        ];
        for (error, status) in cases {
            assert_eq!(error.status(), status, "{error}");
            assert_eq!(error.into_response().status(), status);
        }
    }

    #[test]
    fn a_missing_layer_is_a_500_naming_the_fix() {
        let rejection = MissingSessionLayer;
        assert_eq!(rejection.status(), StatusCode::INTERNAL_SERVER_ERROR);
        assert!(
            rejection
                .body_text()
                .contains("Add SessionLayer outside CsrfLayer")
        );
        assert_eq!(rejection.to_string(), rejection.body_text());
        let response = rejection.to_response(Answer::Json);
        assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(
            response.headers()[http::header::CONTENT_TYPE],
            "application/json"
        );
    }
}
