//! Session formats: how a session looks outside the process. One [`Format`] decides the four
//! things another program sharing the sessions would see: the cookie value, the store key, the
//! stored record, and the CSRF token. The rest of the session layer (lazy loading, expiry,
//! regeneration, fail-closed outages, no resurrection) is the same in every format.
//!
//! - `native.rs`: Portcullis's own format, the default: `id.mac` cookies (HMAC-SHA256), hashed
//!   store keys, sealed records, masked CSRF tokens, key rotation.
//! - `flask.rs`: Flask-Session 0.8 and Flask-WTF 1.3's format, so that a Flask app with the same
//!   `SECRET_KEY` and Redis reads and writes the very same sessions (see the crate docs,
//!   "Formats", for what it gives up).

#[cfg(feature = "flask")]
mod flask;
mod native;

use std::fmt;
#[cfg(feature = "flask")]
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use super::Settings;
use super::id::Id;
use super::record::Envelope;
use super::secret::SessionSecret;
use crate::keys::{KeyRing, KeyUse};
use crate::store::{CasToken, StoreKey};

/// How much later than this process's clock a stored session may say it started: the clocks of
/// the processes that share a store differ by less.
pub(crate) const CLOCK_SKEW: Duration = Duration::from_secs(60);

/// The longest record a store may return for a session of at most `max_bytes` of data
/// (`SESSION_MAX_BYTES`): twice that, for the encodings' overhead (a Flask app's own keys,
/// JSON), plus 4 KiB for the seal and the session's own fields. Anything longer was not
/// written by a layer with this setting, and is refused undecoded.
pub(crate) fn max_record_len(max_bytes: usize) -> usize {
    max_bytes.saturating_mul(2).saturating_add(4096)
}

#[cfg(feature = "flask")]
pub(crate) use flask::FlaskKeys;

/// How sessions are written for the world outside the process: the cookie, the store key, the
/// record and the CSRF token. [`Format::native`] is the default; `Format::flask` (the `flask` feature) shares
/// sessions with a running Flask app (Flask-Session 0.8 on Redis, Flask-WTF 1.3). Chosen with
/// `SESSION_FORMAT` or [`SessionLayer::with_format`](super::SessionLayer::with_format).
///
/// | | native | flask |
/// |---|---|---|
/// | cookie | `id.mac`, HMAC-SHA256 over name and id | `sid.sig`, itsdangerous HMAC-SHA1 (salt `flask-session`) |
/// | store key | prefix + SHA-256 of the id | prefix + the sid itself |
/// | record | sealed (XChaCha20-Poly1305) envelope | plain MessagePack map, readable by Flask |
/// | CSRF token | masked, HMAC-SHA256, rotation | Flask-WTF's itsdangerous token (SHA-1) |
/// | `SECRET_KEY_FALLBACKS` | verify and open | ignored, as Flask-Session and Flask-WTF do |
///
/// ```
/// # #[cfg(feature = "flask")] {
/// use portcullis::session::Format;
///
/// let shared_with_flask = Format::flask(b"the Flask app's SECRET_KEY");
/// assert!(shared_with_flask.is_flask());
/// assert!(!Format::default().is_flask());
/// # }
/// ```
#[derive(Clone, Default)]
pub struct Format(Kind);

#[derive(Clone, Default)]
enum Kind {
    #[default]
    Native,
    /// The keys derived from the Flask app's `SECRET_KEY`, computed once.
    #[cfg(feature = "flask")]
    Flask(Arc<FlaskKeys>),
}

impl fmt::Debug for Format {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never the derived keys.
        f.write_str(match self.0 {
            Kind::Native => "Format::Native",
            #[cfg(feature = "flask")]
            Kind::Flask(_) => "Format::Flask",
        })
    }
}

impl Format {
    /// Portcullis's own format (the default): signed `id.mac` cookies, hashed store keys,
    /// sealed records, masked CSRF tokens, and key rotation through the [`KeyRing`].
    #[must_use]
    pub fn native() -> Self {
        Self(Kind::Native)
    }

    /// Flask-Session 0.8 and Flask-WTF 1.3's format, keyed with the Flask app's `SECRET_KEY`
    /// (its UTF-8 bytes, used as itsdangerous uses them: any length). Needs a store the Flask
    /// app shares: the Redis store with the same `SESSION_KEY_PREFIX`. Needs the `flask`
    /// feature.
    #[cfg(feature = "flask")]
    #[must_use]
    pub fn flask(secret_key: &[u8]) -> Self {
        Self(Kind::Flask(Arc::new(FlaskKeys::derive(secret_key))))
    }

    /// Whether this is the Flask format.
    #[must_use]
    pub fn is_flask(&self) -> bool {
        #[cfg(feature = "flask")]
        return matches!(self.0, Kind::Flask(_));
        #[cfg(not(feature = "flask"))]
        false
    }

    /// The id in an authentic cookie `value`, and which key verified it; `None` for anything
    /// else (malformed, overlong, unsigned when signing is on, forged).
    pub(crate) fn verify_cookie(
        &self,
        value: &str,
        settings: &Settings,
        keys: &KeyRing,
    ) -> Option<(Id, KeyUse)> {
        match &self.0 {
            Kind::Native => native::verify_cookie(value, settings, keys),
            #[cfg(feature = "flask")]
            Kind::Flask(flask) => flask::verify_cookie(value, settings.use_signer, flask)
                .map(|id| (id, KeyUse::Current)),
        }
    }

    /// The cookie value for `id`.
    pub(crate) fn cookie_value(&self, id: &Id, settings: &Settings, keys: &KeyRing) -> String {
        match &self.0 {
            Kind::Native => native::cookie_value(id, settings, keys),
            #[cfg(feature = "flask")]
            Kind::Flask(flask) => flask::cookie_value(id, settings.use_signer, flask),
        }
    }

    /// The store key of `id`'s record under `prefix`.
    pub(crate) fn store_key(&self, id: &Id, prefix: &str) -> StoreKey {
        match &self.0 {
            Kind::Native => id.store_key(prefix),
            #[cfg(feature = "flask")]
            Kind::Flask(_) => flask::store_key(id, prefix),
        }
    }

    /// The bytes to store for `envelope` under `key`.
    pub(crate) fn encode_record(
        &self,
        envelope: &Envelope,
        keys: &KeyRing,
        key: &StoreKey,
    ) -> Result<Vec<u8>, EncodeError> {
        match &self.0 {
            Kind::Native => Ok(envelope.seal(keys, key)?),
            #[cfg(feature = "flask")]
            Kind::Flask(_) => Ok(flask::encode_record(envelope)?),
        }
    }

    /// Notes a new save of `envelope` ([`Envelope::note_write`]) and encodes it for `key`;
    /// returns the record and the save's id. The native format takes the id from the seal's
    /// nonce, so that a save draws from the OS generator once.
    pub(crate) fn encode_write(
        &self,
        envelope: &mut Envelope,
        keys: &KeyRing,
        key: &StoreKey,
    ) -> Result<(Vec<u8>, u64), EncodeError> {
        match &self.0 {
            Kind::Native => Ok(envelope.seal_new_write(keys, key)?),
            #[cfg(feature = "flask")]
            Kind::Flask(_) => {
                let id = envelope.note_write(crate::keys::Nonce::random().id());
                Ok((flask::encode_record(envelope)?, id))
            }
        }
    }

    /// The session in a record read under `key` at `now`, and whether it should be written
    /// back even if the request changes nothing (sealed under a fallback key; a Flask record
    /// that does not carry its created-at yet). `None` when it is not a record of this format.
    pub(crate) fn decode_record(
        &self,
        keys: &KeyRing,
        key: &StoreKey,
        bytes: &[u8],
        #[cfg_attr(
            not(feature = "flask"),
            expect(unused_variables, reason = "only Flask records read the clock")
        )]
        now: SystemTime,
    ) -> Option<(Envelope, bool)> {
        match &self.0 {
            Kind::Native => Envelope::open(keys, key, bytes)
                .map(|(envelope, used)| (envelope, used == KeyUse::Fallback)),
            #[cfg(feature = "flask")]
            Kind::Flask(_) => flask::decode_record(bytes, now),
        }
    }

    /// [`Format::decode_record`] for a record as a store returned it, which may be hostile
    /// (whoever can write the store, or the Flask app's data): a record longer than
    /// `max_len` is refused before it is decoded, and one whose session claims to start
    /// later than `now` (beyond [`CLOCK_SKEW`]) is refused, since it would never reach its
    /// absolute deadline.
    pub(crate) fn decode_stored(
        &self,
        keys: &KeyRing,
        key: &StoreKey,
        bytes: &[u8],
        now: SystemTime,
        max_len: usize,
    ) -> Option<(Envelope, bool)> {
        if bytes.len() > max_len {
            return None;
        }
        let (envelope, rewrite) = self.decode_record(keys, key, bytes, now)?;
        (envelope.created_at() <= now + CLOCK_SKEW).then_some((envelope, rewrite))
    }

    /// The compare-and-set token of a stored record
    /// ([`SessionStore::save`](crate::store::SessionStore::save)): what identifies this very
    /// write of the session. Native records begin with a format byte and a nonce drawn anew
    /// for every seal, so those 25 bytes are enough; a Flask record is plain MessagePack with
    /// nothing unique in it, so its token is the whole record.
    pub(crate) fn cas_token(&self, record: &[u8]) -> CasToken {
        match &self.0 {
            Kind::Native => super::record::cas_token(record),
            #[cfg(feature = "flask")]
            Kind::Flask(_) => CasToken::of_record(record, record.len()),
        }
    }

    /// Whether logged-in sessions get ids that carry their user's routing tag, and so a
    /// per-user index: only in the native format (a Flask app mints its own ids and keys, so
    /// its sessions cannot share a slot with an index; see the crate docs, "Formats").
    pub(crate) fn indexes_users(&self) -> bool {
        matches!(self.0, Kind::Native)
    }

    /// A new CSRF secret for a session.
    pub(crate) fn new_csrf_secret(&self) -> SessionSecret {
        match &self.0 {
            Kind::Native => native::new_csrf_secret(),
            #[cfg(feature = "flask")]
            Kind::Flask(flask) => flask::new_csrf_secret(flask),
        }
    }

    /// The CSRF secret a session holds as `text`; `None` when `text` is not a secret of this
    /// format (then the next token replaces it).
    pub(crate) fn csrf_secret(&self, text: &str) -> Option<SessionSecret> {
        match &self.0 {
            Kind::Native => native::csrf_secret(text),
            #[cfg(feature = "flask")]
            Kind::Flask(flask) => flask::csrf_secret(text, flask),
        }
    }
}

/// A session could not be turned into a record.
#[derive(Debug, thiserror::Error)]
pub(crate) enum EncodeError {
    /// The native envelope could not be encoded.
    #[error("the session envelope could not be encoded")]
    Native(#[from] rmp_serde::encode::Error),
    /// The Flask map could not be encoded.
    #[cfg(feature = "flask")]
    #[error("the Flask session map could not be encoded")]
    Flask(#[from] rmpv::encode::Error),
}
