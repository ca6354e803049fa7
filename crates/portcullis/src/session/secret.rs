//! The session's CSRF secret. The session owns it, under [`CSRF_SECRET_KEY`]: it is minted when
//! the session is created, kept by [`Session::clear`], dropped when the session is regenerated
//! (so a log-in rotates it), and read by the CSRF layer through [`Session::csrf_secret`].

use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use super::record::Envelope;
use super::{Format, Session, SessionError};
#[cfg(feature = "flask")]
use crate::itsdangerous::lower_hex;
use crate::keys::fill_random;

/// The session key holding the CSRF secret, as Flask-WTF names it (declared with the record
/// layout, which stores a native secret apart from the map).
pub(crate) use super::record::CSRF_SECRET_KEY;

/// Flask-WTF's serializer salt: its tokens are signed with a key derived from `SECRET_KEY` and
/// this (`flask_wtf/csrf.py`, `generate_csrf`).
#[cfg(feature = "flask")]
pub(crate) const FLASK_WTF_TOKEN_SALT: &[u8] = b"wtf-csrf-token";

/// Secret length: 256 bits, twice the 128 the OWASP cheat sheet asks for, as session ids.
pub(crate) const SECRET_LEN: usize = 32;

/// A session's CSRF secret: 32 bytes from the OS generator, kept in the session under
/// `csrf_token` and never sent to the browser as is.
///
/// ```
/// use portcullis::csrf::{CsrfSecret, verify_token};
/// use portcullis::keys::KeyRing;
/// use std::time::{Duration, SystemTime};
///
/// let keys = KeyRing::new(b"a secret key of at least thirty-two bytes", &[]);
/// let secret = CsrfSecret::generate();
/// let now = SystemTime::now();
/// let (a, b) = (secret.issue(&keys, now), secret.issue(&keys, now));
/// assert_ne!(a, b, "masked anew on every render");
/// let limit = Some(Duration::from_secs(3600));
/// assert!(verify_token(Some(&a), Some(&secret), &keys, now, limit).is_ok());
/// assert!(verify_token(Some(&b), Some(&secret), &keys, now, limit).is_ok());
/// ```
#[derive(Clone)]
pub struct CsrfSecret(pub(crate) [u8; SECRET_LEN]);

impl fmt::Debug for CsrfSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("CsrfSecret([redacted])")
    }
}

impl CsrfSecret {
    /// A new secret from the operating system's generator.
    ///
    /// # Panics
    /// If the OS generator fails: a guessable secret would protect nothing.
    #[must_use]
    pub fn generate() -> Self {
        let mut secret = [0u8; SECRET_LEN];
        fill_random(&mut secret);
        Self(secret)
    }

    /// The form kept in the session: base64url.
    pub(crate) fn encode(&self) -> String {
        URL_SAFE_NO_PAD.encode(self.0)
    }

    pub(crate) fn decode(text: &str) -> Option<Self> {
        let bytes = URL_SAFE_NO_PAD.decode(text).ok()?;
        bytes.try_into().ok().map(Self)
    }
}

/// A session's CSRF secret in its session [`Format`]'s form: the native [`CsrfSecret`], or
/// Flask-WTF's 40-hex token with the key that signs its tokens. The CSRF layer issues and
/// checks tokens for it (`csrf/token.rs`).
#[derive(Clone)]
pub(crate) enum SessionSecret {
    Native(CsrfSecret),
    #[cfg(feature = "flask")]
    Flask {
        raw: String,
        key: [u8; 20],
    },
}

impl SessionSecret {
    /// How the session stores it under [`CSRF_SECRET_KEY`].
    pub(crate) fn session_text(&self) -> String {
        match self {
            Self::Native(secret) => secret.encode(),
            #[cfg(feature = "flask")]
            Self::Flask { raw, .. } => raw.clone(),
        }
    }
}

/// Random bytes of a Flask-WTF session token: its `sha1(os.urandom(64)).hexdigest()` is 160
/// bits, shown as 40 hex characters.
#[cfg(feature = "flask")]
const FLASK_RAW_BYTES: usize = 20;
#[cfg(feature = "flask")]
const FLASK_RAW_CHARS: usize = 2 * FLASK_RAW_BYTES;

/// A new Flask-format secret: 40 lowercase hex characters from the OS generator.
#[cfg(feature = "flask")]
pub(crate) fn new_flask_raw() -> String {
    let mut bytes = [0u8; FLASK_RAW_BYTES];
    fill_random(&mut bytes);
    lower_hex(&bytes)
}

/// Whether `text` is a secret as Flask-WTF makes them.
#[cfg(feature = "flask")]
pub(crate) fn is_flask_raw(text: &str) -> bool {
    text.len() == FLASK_RAW_CHARS && text.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// Gives a session being created its secret, unless it has one: a session is created with it,
/// so that two concurrent first pages never mint two.
///
/// `carried` is the pre-session cookie's secret (`pre_session.rs`) when an anonymous visitor's
/// forms used one: the session takes it over, so the tokens of pages already rendered still
/// post.
pub(super) fn mint_into(envelope: &mut Envelope, format: &Format, carried: Option<&CsrfSecret>) {
    envelope
        .data
        .entry(CSRF_SECRET_KEY.to_owned())
        .or_insert_with(|| {
            let secret = match carried {
                Some(secret) if !format.is_flask() => SessionSecret::Native(secret.clone()),
                _ => format.new_csrf_secret(),
            };
            rmpv::Value::from(secret.session_text())
        });
}

/// A regenerated session starts without a secret: the next page mints a new one.
pub(super) fn drop_from(envelope: &mut Envelope) {
    envelope.data.remove(CSRF_SECRET_KEY);
}

/// Puts `own`'s secret, if it has one, into `onto`: a regenerated session keeps its new secret
/// when its changes are replayed onto what another request saved under the old id.
pub(super) fn keep_own(own: &Envelope, onto: &mut Envelope) {
    if let Some(secret) = own.data.get(CSRF_SECRET_KEY) {
        onto.data.insert(CSRF_SECRET_KEY.to_owned(), secret.clone());
    }
}

/// Whether `key` is the secret's: [`Session::clear`] keeps it, because it belongs to the
/// session, not to its data (pages rendered before still post).
pub(super) fn is_secret_key(key: &str) -> bool {
    key == CSRF_SECRET_KEY
}

impl Session {
    /// The secret stored in this session; `None` when there is none, or when what is there is
    /// not a secret of the session's format (then it is as good as absent, and the next token
    /// replaces it).
    pub(crate) async fn csrf_secret(&self) -> Result<Option<SessionSecret>, SessionError> {
        let format = &self.shared.settings.format;
        let text = self.get_lenient::<String>(CSRF_SECRET_KEY).await?;
        match text.as_deref().and_then(|text| format.csrf_secret(text)) {
            Some(secret) => Ok(Some(secret)),
            None => self.pre_session_secret(false).await,
        }
    }

    /// The pre-session cookie's secret (`pre_session.rs`), minted when `mint`, for a session
    /// that is anonymous and not stored, in the native format; else `None`.
    async fn pre_session_secret(&self, mint: bool) -> Result<Option<SessionSecret>, SessionError> {
        if self.shared.settings.format.is_flask() {
            return Ok(None);
        }
        let mut state = self.loaded().await?;
        let unstored_anonymous = state
            .current
            .as_ref()
            .is_some_and(|c| !c.stored && c.envelope.user_id.is_none());
        if !unstored_anonymous {
            return Ok(None);
        }
        let secret = if mint {
            state.pre_session.secret_or_mint()
        } else {
            state.pre_session.secret().cloned()
        };
        Ok(secret.map(SessionSecret::Native))
    }

    /// The secret stored in this session, created and stored on first use.
    ///
    /// A session is created with its secret (see `write/create.rs`), so this creates one
    /// only in a session that is new in this request, or that lost its secret (regenerated
    /// in this request, or written by another application). The secret is stored as an
    /// update that keeps one another request stored meanwhile, so that concurrent pages
    /// never replace each other's secret one after the other.
    pub(crate) async fn csrf_secret_or_mint(&self) -> Result<SessionSecret, SessionError> {
        if let Some(secret) = self.csrf_secret().await? {
            return Ok(secret);
        }
        // An anonymous visitor's first form page stores nothing: its secret goes in a cookie.
        if let Some(secret) = self.pre_session_secret(true).await? {
            return Ok(secret);
        }
        let format = self.shared.settings.format.clone();
        let minted = format.new_csrf_secret().session_text();
        let valid = format.clone();
        let stored = self
            .update(CSRF_SECRET_KEY, move |current: Option<rmpv::Value>| {
                let kept =
                    current.filter(|v| v.as_str().and_then(|t| valid.csrf_secret(t)).is_some());
                Some(kept.unwrap_or_else(|| rmpv::Value::from(minted.as_str())))
            })
            .await?;
        stored
            .as_ref()
            .and_then(rmpv::Value::as_str)
            .and_then(|text| format.csrf_secret(text))
            .ok_or(SessionError::Unavailable { source: None })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(feature = "flask")]
    #[test]
    fn flask_raw_secrets_are_forty_lowercase_hex_characters() {
        const RAW: &str = "c84b997d260ed51411ba42b8919317ce4c0f876b";
        let raw = new_flask_raw();
        assert!(is_flask_raw(&raw), "{raw}");
        assert_ne!(raw, new_flask_raw());
        assert!(is_flask_raw(RAW));
        for bad in [
            &RAW[1..],
            &RAW.to_uppercase(),
            &format!("{RAW}0"),
            "g".repeat(40).as_str(),
        ] {
            assert!(!is_flask_raw(bad), "{bad}");
        }
    }

    #[test]
    fn the_secret_is_minted_once_kept_across_a_replay_and_dropped_at_regeneration() {
        let mut envelope = Envelope::new(std::time::SystemTime::now(), false);
        mint_into(&mut envelope, &Format::native(), None);
        let minted = envelope.data[CSRF_SECRET_KEY].clone();
        mint_into(&mut envelope, &Format::native(), None);
        assert_eq!(envelope.data[CSRF_SECRET_KEY], minted, "minted only once");
        let mut theirs = Envelope::new(std::time::SystemTime::now(), false);
        theirs
            .data
            .insert(CSRF_SECRET_KEY.into(), rmpv::Value::from("theirs"));
        keep_own(&envelope, &mut theirs);
        assert_eq!(theirs.data[CSRF_SECRET_KEY], minted);
        drop_from(&mut envelope);
        assert!(!envelope.data.contains_key(CSRF_SECRET_KEY));
        assert!(is_secret_key(CSRF_SECRET_KEY) && !is_secret_key("other"));
    }
}
