//! Server-side sessions: the [`Session`] handle, the [`SessionLayer`] that provides it, and the
//! rules for ids, cookies, records and expiry. The crate docs explain the model; this module
//! holds the pieces:
//!
//! - `id.rs`: 256-bit ids (with a user's routing tag once logged in) and the hashed store key;
//! - `cookie.rs`: reading and verifying the cookie, writing `Set-Cookie`;
//! - `record.rs`: the envelope (sealed in the native format);
//! - `format/`: the [`Format`]: native or Flask cookies, store keys, records, CSRF secrets and
//!   compare-and-set tokens;
//! - `handle.rs`: the [`Session`] handle (lazy load, typed access, update, regenerate,
//!   destroy), which records every change in `changes.rs`;
//! - `write.rs`: the write after the handler: create, compare-and-set with replay, delete;
//! - `index.rs`: a user's sessions across devices ([`UserSessions`], [`Session::devices`]);
//! - `layer.rs`, `service.rs`: the tower middleware and what it does after the handler.

mod changes;
mod cookie;
mod format;
mod handle;
mod id;
mod index;
mod layer;
mod record;
mod service;
mod write;

pub use cookie::SameSite;
pub use format::Format;
pub use handle::Session;
pub use id::Id;
pub use index::{DeviceSession, SessionHandle, UserSessions};
pub use layer::SessionLayer;
pub use record::Data;
pub use service::{ResponseFuture, SessionService};

pub(crate) use cookie::is_token_byte;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use axum_core::extract::FromRequestParts;
use axum_core::response::{IntoResponse, Response};
use http::StatusCode;
use http::request::Parts;

use crate::clock::Clock;
use crate::keys::KeyRing;
use crate::response::error_page;
use crate::store::{SessionLimit, SessionStore, StoreError};

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
    fn decode(error: rmpv::ext::Error) -> Self {
        Self::Decode(error)
    }
    fn encode(error: rmpv::ext::Error) -> Self {
        Self::Encode(error)
    }
}

impl IntoResponse for SessionError {
    fn into_response(self) -> Response {
        let status = match self {
            Self::Unavailable { .. } => StatusCode::SERVICE_UNAVAILABLE,
            Self::TooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            Self::Decode(_) | Self::Encode(_) | Self::NoUserIndex => {
                StatusCode::INTERNAL_SERVER_ERROR
            }
        };
        error_page(status, &self.to_string(), false)
    }
}

/// The extractor finds the [`Session`] the layer put in the request.
impl<S: Send + Sync> FromRequestParts<S> for Session {
    type Rejection = (StatusCode, &'static str);

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        parts.extensions.get::<Session>().cloned().ok_or((
            StatusCode::INTERNAL_SERVER_ERROR,
            "Session extractor used without SessionLayer on the route",
        ))
    }
}

/// Cookie and lifetime settings, built by [`SessionLayer`]'s `with_*` methods.
#[derive(Clone, Debug)]
pub(crate) struct Settings {
    pub(crate) cookie_name: String,
    pub(crate) cookie_path: String,
    pub(crate) cookie_domain: Option<String>,
    pub(crate) secure: bool,
    pub(crate) http_only: bool,
    pub(crate) same_site: ::cookie::SameSite,
    pub(crate) idle: Duration,
    pub(crate) absolute: Duration,
    pub(crate) permanent: bool,
    pub(crate) refresh_each_request: bool,
    pub(crate) key_prefix: String,
    pub(crate) use_signer: bool,
    pub(crate) max_bytes: usize,
    pub(crate) json_prefix: String,
    /// `SESSION_MAX_PER_USER` and its policy.
    pub(crate) limit: SessionLimit,
    pub(crate) format: Format,
}

/// What every request of one layer shares.
#[derive(Clone, Debug)]
pub(crate) struct Shared {
    pub(crate) store: Arc<dyn SessionStore>,
    pub(crate) keys: Arc<KeyRing>,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) settings: Settings,
    pub(crate) health: Health,
    /// Turns for concurrent writers of one session in this process.
    pub(crate) writers: Arc<write::WriteLocks>,
}

/// Whether the store answered last time, so that an outage is logged once when it starts and
/// once when it ends, not once per request.
#[derive(Clone, Debug, Default)]
pub(crate) struct Health {
    down: Arc<AtomicBool>,
}

impl Health {
    pub(crate) fn report_failure(&self, error: &StoreError) {
        if !self.down.swap(true, Ordering::Relaxed) {
            tracing::error!(error = %error, "session store unreachable: answering 503 until it returns");
        }
    }

    pub(crate) fn report_success(&self) {
        if self.down.swap(false, Ordering::Relaxed) {
            tracing::info!("session store reachable again");
        }
    }
}
