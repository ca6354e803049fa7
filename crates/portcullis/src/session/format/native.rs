//! The native format: `id.mac` cookies (a logged-in id's routing tag sealed, see `id.rs`)
//! signed with HMAC-SHA256 over the cookie name and the id
//! (every key of the ring verifies), and CSRF secrets of 32 random bytes. Store keys and sealed
//! records are `Id::store_key` and `Envelope::seal`/`open`, used as they are.

use super::super::Settings;
use super::super::id::Id;
use super::super::secret::{CsrfSecret, SessionSecret};
use crate::keys::{KeyRing, KeyUse};

/// The id in `value` if it is `id.mac` with a MAC from any key of the ring (or, with the signer
/// off, a bare id).
pub(super) fn verify_cookie(
    value: &str,
    settings: &Settings,
    keys: &KeyRing,
) -> Option<(Id, KeyUse)> {
    if !settings.use_signer {
        return Id::from_cookie_text(value, keys);
    }
    let (id_text, mac) = value.split_once('.')?;
    // The cookie name is signed too, so a value cannot be moved to another cookie. Verified
    // before the id is parsed, so that a forged value costs no attempt to open a tag.
    let signed = keys.verify(&[settings.cookie_name.as_bytes(), id_text.as_bytes()], mac)?;
    let (id, tag_sealed) = Id::from_cookie_text(id_text, keys)?;
    let key_use = if tag_sealed == KeyUse::Fallback {
        KeyUse::Fallback
    } else {
        signed
    };
    Some((id, key_use))
}

/// `id.mac` under the current key, or the bare id with the signer off.
pub(super) fn cookie_value(id: &Id, settings: &Settings, keys: &KeyRing) -> String {
    let id_text = id.cookie_text(keys);
    if settings.use_signer {
        let mac = keys.sign(&[settings.cookie_name.as_bytes(), id_text.as_bytes()]);
        format!("{id_text}.{mac}")
    } else {
        id_text
    }
}

pub(super) fn new_csrf_secret() -> SessionSecret {
    SessionSecret::Native(CsrfSecret::generate())
}

pub(super) fn csrf_secret(text: &str) -> Option<SessionSecret> {
    CsrfSecret::decode(text).map(SessionSecret::Native)
}
