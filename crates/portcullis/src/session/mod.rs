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
//! - `write.rs`: the write after the handler: create, compare-and-set with replay, delete;
//! - `secret.rs`: the session's CSRF secret (minted at creation, dropped at regeneration),
//!   which the CSRF layer reads through [`Session`]'s crate-internal methods;
//! - `devices.rs`: a user's sessions across devices ([`UserSessions`], [`Session::devices`]);
//! - `layer.rs`, `service.rs`: the tower middleware and what it does after the handler;
//! - `shared.rs`: what every request of one layer shares (settings, store, keys, clock).

mod changes;
mod cookie;
mod devices;
mod format;
mod handle;
mod id;
mod layer;
mod load;
mod record;
pub(crate) mod secret;
mod service;
mod shared;
mod write;

pub use devices::{DeviceId, DeviceSession, UserSessions};
pub use format::Format;
pub use handle::Session;
pub use id::Id;
pub use layer::SessionLayer;
pub use record::Data;
pub use service::{ResponseFuture, SessionService};

pub(crate) use format::hmac_sha1;
pub(crate) use secret::CSRF_SECRET_KEY;
pub(crate) use shared::{Health, LayerShared, Settings};

use axum_core::response::{IntoResponse, Response};
use http::StatusCode;

use crate::response::error_page;
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
