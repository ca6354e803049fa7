//! Who is logged in, kept in the session with Flask-Login's and Django's conventions:
//!
//! - `_user_id`: the user's id as a string (Flask-Login's key), also recorded in the sealed
//!   envelope with [`Session::set_user_id`];
//! - `_auth_hash`: HMAC-SHA256, under a key derived from `SECRET_KEY`, of the user's stored
//!   password hash. Checked on every authenticated request: after a password change, every
//!   other session of the user holds a stale hash and is logged out (Django's
//!   `update_session_auth_hash`);
//! - `_device`: the browser and address the session logged in from (`device.rs`), for the
//!   sessions page.
//!
//! A password change also ends the user's other sessions at once, through the session layer's
//! per-user index ([`Session::end_other_devices`]); the `_auth_hash` check remains for a
//! log-in that verified the old password but was written after that: it can never serve a
//! request, and the sessions page does not list it.

pub mod appearance;
pub(crate) mod device_cookie;
pub(crate) mod names;
pub mod password;
pub(crate) mod password_policy;
pub(crate) mod rate_limit;
pub mod users;

use hkdf::Hkdf;
use hmac::Mac;
use portcullis::config::Config;
use portcullis::session::Ending;
use portcullis::{Session, SessionError};
use sha2::Sha256;
use subtle::ConstantTimeEq;

use crate::session_data::device::{self, Device};
use users::User;

/// Flask-Login's session key for the logged-in user.
pub(crate) const USER_ID: &str = "_user_id";
/// The session key of the hash bound to the user's password.
pub(crate) const AUTH_HASH: &str = "_auth_hash";

/// HKDF salt and infos: each key serves one purpose only.
const HKDF_SALT: &[u8] = b"portcullis-site";
const HKDF_INFO: &[u8] = b"session auth hash v1";
const LOG_NAME_INFO: &[u8] = b"log name hash v1";
/// Hex digits of a name's log hash: 64 bits, enough to tell attempts apart in a log.
const LOG_NAME_HEX: usize = 16;

/// The keys of the auth hash: the current key first, then one per `SECRET_KEY_FALLBACKS`
/// entry, so a key rotation logs nobody out; and the key that hashes unknown names for logs.
#[derive(Clone)]
pub(crate) struct AuthKeys {
    keys: Vec<[u8; 32]>,
    log_name: [u8; 32],
}

impl std::fmt::Debug for AuthKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuthKeys").finish_non_exhaustive()
    }
}

impl AuthKeys {
    pub(crate) fn from_config(config: &Config) -> Self {
        let secrets = std::iter::once(&config.secret_key).chain(&config.secret_key_fallbacks);
        let keys = secrets
            .map(|secret| derive(secret.as_bytes(), HKDF_INFO))
            .collect();
        let log_name = derive(config.secret_key.as_bytes(), LOG_NAME_INFO);
        Self { keys, log_name }
    }

    /// A keyed hash of a typed user name that names no account, for log lines: the same name
    /// gives the same hash (attempts correlate), and the log never holds what was typed
    /// (people type their password into the name field).
    pub(crate) fn log_name_hash(&self, typed: &str) -> String {
        let mut hash = hex(&mac(&self.log_name, typed));
        hash.truncate(LOG_NAME_HEX);
        hash
    }

    /// The hash for `password_hash` under the current key, as hex.
    pub(crate) fn hash(&self, password_hash: &str) -> String {
        self.keys
            .first()
            .map(|key| hex(&mac(key, password_hash)))
            .unwrap_or_default()
    }

    /// Whether `presented` is the hash of `password_hash` under any key, in constant time.
    pub(crate) fn verify(&self, password_hash: &str, presented: &str) -> bool {
        self.keys.iter().any(|key| {
            let expected = hex(&mac(key, password_hash));
            bool::from(expected.as_bytes().ct_eq(presented.as_bytes()))
        })
    }
}

/// A 32-byte key for one purpose (`info`), from a secret.
fn derive(secret: &[u8], info: &[u8]) -> [u8; 32] {
    let mut key = [0u8; 32];
    Hkdf::<Sha256>::new(Some(HKDF_SALT), secret)
        .expand(info, &mut key)
        .unwrap_or_else(|e| panic!("32 bytes is a valid HKDF-SHA256 length: {e}"));
    key
}

fn mac(key: &[u8; 32], message: &str) -> [u8; 32] {
    let mut mac = portcullis::keys::hmac_sha256(key);
    mac.update(message.as_bytes());
    mac.finalize().into_bytes().into()
}

fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    bytes.iter().fold(String::with_capacity(64), |mut out, b| {
        let _ = write!(out, "{b:02x}");
        out
    })
}

/// Logs `user` in from `device`: a different user's data is dropped first, then the id is
/// regenerated (the pre-login id dies, the CSRF secret rotates) and the user recorded; the
/// session layer then creates it in the user's index (`SESSION_MAX_PER_USER` applies).
pub(crate) async fn log_in(
    session: &Session,
    keys: &AuthKeys,
    user: &User,
    device: Device,
) -> Result<(), SessionError> {
    let id = user.id.to_string();
    // Anything but "nobody" or "this same user" (another id, or a value of another type a
    // Flask app may have written) means someone else's data: drop it.
    let previous = session.get::<String>(USER_ID).await;
    if !matches!(&previous, Ok(None)) && !matches!(&previous, Ok(Some(p)) if *p == id) {
        session.clear().await?;
    }
    session.regenerate().await?;
    session.insert(USER_ID, &id).await?;
    session.set_user_id(Some(id)).await?;
    session.insert(device::KEY, device).await?;
    session
        .insert(AUTH_HASH, keys.hash(&user.password_hash))
        .await
}

/// After a password change: every other session of the user ends now, and this one gets a new
/// id with the new hash. Returns how many other sessions ended.
pub(crate) async fn renew_after_password_change(
    session: &Session,
    keys: &AuthKeys,
    new_password_hash: &str,
) -> Result<usize, SessionError> {
    let ended = match session
        .end_other_devices_because(Ending::PasswordChange)
        .await
    {
        Ok(ended) => ended,
        // The Flask format keeps no per-user index: the other sessions then end at their next
        // request, when their `_auth_hash` no longer matches.
        Err(SessionError::NoUserIndex) => 0,
        Err(other) => return Err(other),
    };
    session.regenerate().await?;
    session
        .insert(AUTH_HASH, keys.hash(new_password_hash))
        .await?;
    Ok(ended)
}

/// The user id the session claims, if any (not yet checked against the database).
pub(crate) async fn claimed_user_id(session: &Session) -> Result<Option<i64>, SessionError> {
    let id = session.get_lenient::<String>(USER_ID).await?;
    Ok(id.and_then(|id| id.parse().ok()))
}

/// Whether the session's `_auth_hash` matches `user`'s password.
///
/// With `flask_format`, a session without one was logged in by the Flask app, which knows
/// nothing of it (Flask-Login writes only `_user_id`): it is bound to the current password now,
/// so that a later password change on these routes still ends it. A session the Flask app
/// shares is only as trustworthy as Redis anyway: whoever can write Redis can write any
/// `_user_id`.
pub(crate) async fn hash_matches(
    session: &Session,
    keys: &AuthKeys,
    user: &User,
    flask_format: bool,
) -> Result<bool, SessionError> {
    match session.get::<String>(AUTH_HASH).await.ok().flatten() {
        Some(presented) => Ok(keys.verify(&user.password_hash, &presented)),
        None if flask_format => {
            session
                .insert(AUTH_HASH, keys.hash(&user.password_hash))
                .await?;
            Ok(true)
        }
        None => Ok(false),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(secret: &[u8]) -> Vec<[u8; 32]> {
        vec![derive(secret, HKDF_INFO)]
    }

    #[test]
    fn the_hash_is_bound_to_the_password_hash_and_the_key() {
        let a = AuthKeys {
            keys: keys(b"key a"),
            log_name: [0; 32],
        };
        let b = AuthKeys {
            keys: keys(b"key b"),
            log_name: [0; 32],
        };
        let h = a.hash("$argon2id$one");
        assert_eq!(h.len(), 64);
        assert!(a.verify("$argon2id$one", &h));
        assert!(!a.verify("$argon2id$two", &h));
        assert!(!b.verify("$argon2id$one", &h));
        let both = AuthKeys {
            keys: [keys(b"key b"), keys(b"key a")].concat(),
            log_name: [0; 32],
        };
        assert!(
            both.verify("$argon2id$one", &h),
            "fallback keys still verify"
        );
    }
}
