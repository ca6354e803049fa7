//! What every request of one [`SessionLayer`](super::SessionLayer) shares: its settings, store,
//! keys and clock ([`LayerShared`]), and the store's [`Health`] as last seen.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use super::Format;
use super::opened::OpenedRecords;
use super::routing::KeptRoutingKey;
use super::write::WriteLocks;
use crate::clock::Clock;
use crate::keys::KeyRing;
use crate::store::{SessionLimit, SessionStore, StoreError};

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
pub(crate) struct LayerShared {
    pub(crate) store: Arc<dyn SessionStore>,
    pub(crate) keys: Arc<KeyRing>,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) settings: Settings,
    pub(crate) health: Health,
    /// Turns for concurrent writers of one session in this process.
    pub(crate) writers: Arc<WriteLocks>,
    /// Records this process opened or sealed lately, kept opened (`opened.rs`).
    pub(crate) opened: OpenedRecords,
    /// The routing key kept in the store, as this process last read it.
    pub(crate) routing: Arc<KeptRoutingKey>,
}

/// Whether the store answered last time, so that an outage is logged once when it starts and
/// once when it ends, not once per request.
#[derive(Clone, Debug, Default)]
pub(crate) struct Health {
    down: Arc<AtomicBool>,
}

impl Health {
    pub(crate) fn report_failure(&self, error: &StoreError) {
        crate::metrics::store_available(false);
        if !self.down.swap(true, Ordering::Relaxed) {
            crate::metrics::store_transition(false);
            tracing::error!(error = %error, "session store unreachable: answering 503 until it returns");
        }
    }

    pub(crate) fn report_success(&self) {
        crate::metrics::store_available(true);
        if self.down.swap(false, Ordering::Relaxed) {
            crate::metrics::store_transition(true);
            tracing::info!("session store reachable again");
        }
    }
}
