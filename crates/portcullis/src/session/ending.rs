//! Why a session ended ([`Ending`]), and the short-lived marker that remembers it.
//!
//! The store alone only knows "missing". So every call that ends a session on purpose (a
//! logout, ending a device or every other device, a password change, an administrator) leaves
//! a marker: one sealed byte under a key derived from the session's store key by a keyed MAC
//! (`<prefix>ended:<mac>`), expiring one idle lifetime later (after that, the cookie could not
//! name a live session anyway). The absolute limit leaves one too, when a load first clamps
//! the session's expiry to its absolute deadline. A load that finds no record reads the
//! marker (the miss path only: a live session still costs one round trip); no marker means
//! the idle lifetime ran out. The marker is sealed under the key ring with its key as
//! associated data, so neither a client (who never writes the store) nor a store writer
//! without the key can plant a misleading reason.

use std::fmt;
use std::time::SystemTime;

use super::LayerShared;
use crate::store::{StoreError, StoreKey, WriteOutcome};

/// Why the session a request's cookie named is over, as [`Session::ended`](super::Session::ended)
/// reports it. [`Ending::as_str`] gives a stable `snake_case` label for logs and metrics.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Ending {
    /// Nothing used it for the idle lifetime (`PERMANENT_SESSION_LIFETIME`).
    Idle,
    /// It reached its absolute lifetime (`SESSION_ABSOLUTE_LIFETIME`).
    Absolute,
    /// Ended from another of the user's sessions ("log out other devices", "end this device").
    EndedElsewhere,
    /// Ended because the user's password changed.
    PasswordChange,
    /// Ended by an administrator (the command line: end sessions, disable, reset a password).
    Administrator,
    /// Logged out ([`Session::destroy`](super::Session::destroy)).
    LoggedOut,
}

impl Ending {
    /// Every reason, in declaration order.
    pub const ALL: [Self; 6] = [
        Self::Idle,
        Self::Absolute,
        Self::EndedElsewhere,
        Self::PasswordChange,
        Self::Administrator,
        Self::LoggedOut,
    ];

    /// The `snake_case` label: `idle`, `absolute`, `ended_elsewhere`, `password_change`,
    /// `administrator`, `logged_out`.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Idle => "idle",
            Self::Absolute => "absolute",
            Self::EndedElsewhere => "ended_elsewhere",
            Self::PasswordChange => "password_change",
            Self::Administrator => "administrator",
            Self::LoggedOut => "logged_out",
        }
    }

    fn code(self) -> u8 {
        match self {
            Self::Idle => 1,
            Self::Absolute => 2,
            Self::EndedElsewhere => 3,
            Self::PasswordChange => 4,
            Self::Administrator => 5,
            Self::LoggedOut => 6,
        }
    }

    fn from_code(code: u8) -> Option<Self> {
        Self::ALL.into_iter().find(|ending| ending.code() == code)
    }
}

impl fmt::Display for Ending {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The marker's key for the session stored under `record`: keyed, so it tells nothing of the
/// record's key, and under the layer's prefix.
fn marker_key(shared: &LayerShared, record: &StoreKey) -> StoreKey {
    let mac = shared
        .keys
        .sign(&[b"portcullis session ending", record.as_str().as_bytes()]);
    StoreKey::from_string(format!("{}ended:{mac}", shared.settings.key_prefix))
}

/// Leaves the marker saying that the session stored under `record` ended for `ending`, until
/// `until`. A marker already there is replaced (the last ending is the one that happened),
/// except by [`Ending::Absolute`]: every load of a session's last idle lifetime writes that
/// one, and it must neither cost more than one write after the first nor hide a logout.
pub(crate) async fn mark_until(
    shared: &LayerShared,
    record: &StoreKey,
    ending: Ending,
    until: SystemTime,
) -> Result<(), StoreError> {
    let key = marker_key(shared, record);
    let sealed = shared.keys.seal(key.as_str().as_bytes(), &[ending.code()]);
    // Usually no marker is there: one write. Else the newer ending replaces it.
    let outcome = shared.store.create(&key, &sealed, until).await?;
    if outcome == WriteOutcome::NotWritten && ending != Ending::Absolute {
        shared.store.delete(&key).await?;
        shared.store.create(&key, &sealed, until).await?;
    }
    Ok(())
}

/// [`mark_until`] one idle lifetime from now, logging (not failing on) a store error: the
/// session did end, only its reason may read as idle.
pub(crate) async fn mark(shared: &LayerShared, record: &StoreKey, ending: Ending) {
    let until = shared.clock.now() + shared.settings.idle;
    if let Err(error) = mark_until(shared, record, ending, until).await {
        tracing::warn!(%error, ending = %ending, "could not record why a session ended");
    }
}

/// Why the session stored under `record`, found missing, ended: its marker's reason, else
/// [`Ending::Idle`].
pub(crate) async fn read(shared: &LayerShared, record: &StoreKey) -> Result<Ending, StoreError> {
    let key = marker_key(shared, record);
    let Some(sealed) = shared.store.load(&key, None).await? else {
        return Ok(Ending::Idle);
    };
    let opened = shared.keys.open(key.as_str().as_bytes(), &sealed);
    Ok(match opened.as_ref().map(|(plain, _)| plain.as_slice()) {
        Some(&[code]) => Ending::from_code(code).unwrap_or(Ending::Idle),
        _ => Ending::Idle,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::KeyRing;
    use crate::session::SessionLayer;
    use crate::store::MemoryStore;

    #[test]
    fn labels_are_snake_case_and_codes_round_trip() {
        let labels: Vec<&str> = Ending::ALL.iter().map(|e| e.as_str()).collect();
        assert_eq!(
            labels,
            [
                "idle",
                "absolute",
                "ended_elsewhere",
                "password_change",
                "administrator",
                "logged_out"
            ]
        );
        for ending in Ending::ALL {
            assert_eq!(Ending::from_code(ending.code()), Some(ending));
            // The same words label the refused-cookie counter.
            let refused = crate::metrics::CookieRefusal::Ended(ending.as_str());
            assert_eq!(refused.as_str(), ending.as_str());
        }
        assert_eq!(Ending::from_code(0), None);
    }

    #[tokio::test]
    async fn a_marker_is_read_back_and_a_foreign_one_reads_as_idle() {
        let key_ring = KeyRing::new(b"a secret key of thirty-two bytes or more", &[]);
        let layer = SessionLayer::new(MemoryStore::new(), key_ring);
        let shared = layer.shared();
        let record = StoreKey::from_string("sess:record".into());
        assert_eq!(read(&shared, &record).await.unwrap(), Ending::Idle);
        mark(&shared, &record, Ending::Administrator).await;
        assert_eq!(read(&shared, &record).await.unwrap(), Ending::Administrator);
        mark(&shared, &record, Ending::LoggedOut).await;
        assert_eq!(read(&shared, &record).await.unwrap(), Ending::LoggedOut);
        // The absolute limit's marker never hides another ending.
        mark(&shared, &record, Ending::Absolute).await;
        assert_eq!(read(&shared, &record).await.unwrap(), Ending::LoggedOut);
        // A marker not sealed under the ring (a store writer without the key) says nothing.
        let key = marker_key(&shared, &record);
        shared.store.delete(&key).await.unwrap();
        let until = shared.clock.now() + shared.settings.idle;
        shared.store.create(&key, &[5], until).await.unwrap();
        assert_eq!(read(&shared, &record).await.unwrap(), Ending::Idle);
    }
}
