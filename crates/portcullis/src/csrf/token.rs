//! Tokens: the masked, timestamped and authenticated token a page carries for the session's
//! [`CsrfSecret`] (which the session owns, `session/secret.rs`), [`verify_token`] (the check, in
//! Flask-WTF's order), the [`CsrfToken`] extractor, and the tokens of a `SessionSecret`, native
//! or Flask-WTF's (`flask.rs`) by the session's format.
//!
//! A token is `base64url(mask ‖ secret⊕mask ‖ issued_at ‖ HMAC-SHA256)`: the random mask makes
//! every rendering different (BREACH), the timestamp gives the time limit, and the MAC under the
//! key ring's CSRF key stops anyone from moving the timestamp.

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use axum_core::extract::FromRequestParts;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::Mac;
use http::request::Parts;
use subtle::ConstantTimeEq;

use super::{CsrfError, FORM_FIELD};
use crate::clock::{Clock, unix_seconds};
use crate::keys::{HmacSha256, KeyRing, fill_random, hmac_sha256};
use crate::session::secret::{CsrfSecret, SECRET_LEN, SessionSecret};
use crate::{Session, SessionError};

/// The one-time pad is as long as the secret it hides.
const MASK_LEN: usize = SECRET_LEN;
/// Issue time: Unix seconds, big-endian.
const TIME_LEN: usize = 8;
/// A full HMAC-SHA256 tag.
const TAG_LEN: usize = 32;
/// Decoded token length: 104 bytes.
const TOKEN_LEN: usize = MASK_LEN + SECRET_LEN + TIME_LEN + TAG_LEN;
/// Encoded token length: base64 without padding, 4 characters per 3 bytes, rounded up.
const TOKEN_CHARS: usize = (TOKEN_LEN * 4).div_ceil(3);
/// Names the scheme inside the MAC, so a tag made here never verifies anything else.
const MAC_CONTEXT: &[u8] = b"portcullis csrf token v1";
/// How far in the future an issue time may lie: servers behind one load balancer disagree by a
/// few seconds. Further than that is refused as expired, as itsdangerous (Flask-WTF's signer)
/// refuses a negative age.
const MAX_CLOCK_SKEW: Duration = Duration::from_secs(60);

impl CsrfSecret {
    /// A token for this secret, issued at `now` and authenticated with the current CSRF key of
    /// `keys`. Every call draws a new mask, so no two tokens are the same string.
    #[must_use]
    pub fn issue(&self, keys: &KeyRing, now: SystemTime) -> String {
        let mut token = [0u8; TOKEN_LEN];
        let (mask, rest) = token.split_at_mut(MASK_LEN);
        fill_random(mask);
        let (masked, rest) = rest.split_at_mut(SECRET_LEN);
        for ((out, secret), pad) in masked.iter_mut().zip(&self.0).zip(mask.iter()) {
            *out = secret ^ pad;
        }
        let (time, _) = rest.split_at_mut(TIME_LEN);
        time.copy_from_slice(&unix_seconds(now).to_be_bytes());
        let (body, tag) = token.split_at_mut(TOKEN_LEN - TAG_LEN);
        let (_, key) = keys
            .csrf_keys()
            .next()
            .expect("a key ring always holds its current key");
        tag.copy_from_slice(&mac(key, body).finalize().into_bytes());
        URL_SAFE_NO_PAD.encode(token)
    }
}

/// Tokens for a session's secret, in its format's form.
impl SessionSecret {
    /// A token for this secret, issued at `now`.
    fn issue(&self, keys: &KeyRing, now: SystemTime) -> String {
        match self {
            Self::Native(secret) => secret.issue(keys, now),
            #[cfg(feature = "flask")]
            Self::Flask { raw, key } => super::flask::issue(raw, key, now),
        }
    }

    /// Checks a presented, non-empty token against this secret.
    ///
    /// # Errors
    /// [`CsrfError::Invalid`], [`CsrfError::Expired`] or [`CsrfError::Mismatch`].
    pub(crate) fn verify(
        &self,
        presented: &str,
        keys: &KeyRing,
        now: SystemTime,
        time_limit: Option<Duration>,
    ) -> Result<(), CsrfError> {
        match self {
            Self::Native(secret) => {
                verify_token(Some(presented), Some(secret), keys, now, time_limit)
            }
            #[cfg(feature = "flask")]
            Self::Flask { raw, key } => super::flask::verify(presented, raw, key, now, time_limit),
        }
    }
}

/// Checks a presented token against the session's secret, in Flask-WTF's order: missing token,
/// missing session secret, authenticity (current and fallback CSRF keys), age, then the secret
/// itself, compared in constant time.
///
/// `time_limit` is `WTF_CSRF_TIME_LIMIT`; `None` accepts a token of any age (the session's own
/// lifetime still bounds it).
///
/// # Errors
/// [`CsrfError::Missing`], [`CsrfError::SessionTokenMissing`], [`CsrfError::Invalid`],
/// [`CsrfError::Expired`] or [`CsrfError::Mismatch`], for the first check that fails.
pub fn verify_token(
    presented: Option<&str>,
    secret: Option<&CsrfSecret>,
    keys: &KeyRing,
    now: SystemTime,
    time_limit: Option<Duration>,
) -> Result<(), CsrfError> {
    let presented = presented
        .filter(|token| !token.is_empty())
        .ok_or(CsrfError::Missing)?;
    let secret = secret.ok_or(CsrfError::SessionTokenMissing)?;
    let token = open(presented, keys).ok_or(CsrfError::Invalid)?;
    let issued = token_issued_at(&token);
    let now = unix_seconds(now);
    if issued > now.saturating_add(MAX_CLOCK_SKEW.as_secs()) {
        return Err(CsrfError::Expired);
    }
    if let Some(limit) = time_limit
        && now.saturating_sub(issued) > limit.as_secs()
    {
        return Err(CsrfError::Expired);
    }
    let mut unmasked = [0u8; SECRET_LEN];
    let (mask, masked) = token[..MASK_LEN + SECRET_LEN].split_at(MASK_LEN);
    for ((out, masked), pad) in unmasked.iter_mut().zip(masked).zip(mask) {
        *out = masked ^ pad;
    }
    if bool::from(unmasked.ct_eq(&secret.0)) {
        Ok(())
    } else {
        Err(CsrfError::Mismatch)
    }
}

/// Decodes a token and checks its tag against every CSRF key of the ring; `None` if it is
/// malformed or made with no key of the ring.
fn open(presented: &str, keys: &KeyRing) -> Option<[u8; TOKEN_LEN]> {
    // Refuse by length before decoding: a client's megabyte of garbage costs nothing.
    if presented.len() != TOKEN_CHARS {
        return None;
    }
    let token: [u8; TOKEN_LEN] = URL_SAFE_NO_PAD.decode(presented).ok()?.try_into().ok()?;
    let (body, tag) = token.split_at(TOKEN_LEN - TAG_LEN);
    // `verify_slice` compares in constant time.
    keys.csrf_keys()
        .any(|(_, key)| mac(key, body).verify_slice(tag).is_ok())
        .then_some(token)
}

fn token_issued_at(token: &[u8; TOKEN_LEN]) -> u64 {
    let start = MASK_LEN + SECRET_LEN;
    let mut time = [0u8; TIME_LEN];
    time.copy_from_slice(&token[start..start + TIME_LEN]);
    u64::from_be_bytes(time)
}

fn mac(key: &[u8; 32], body: &[u8]) -> HmacSha256 {
    let mut mac = hmac_sha256(key);
    mac.update(MAC_CONTEXT);
    mac.update(body);
    mac
}

/// Tokens for the current session's pages: take it as an extractor and put
/// [`CsrfToken::hidden_input`] in each form, or [`CsrfToken::meta_tag`] in the page head for
/// scripts that send the `X-CSRFToken` header.
///
/// The first use creates the session's secret (so the response sets the session cookie). Each
/// call renders a new token (masked anew in the native format; Flask-WTF's, stamped with the
/// second, in the Flask format); all of them stay valid until the time limit or until the
/// secret changes (log in, log out).
///
/// ```
/// use axum::{Router, response::Html, routing::get};
/// use portcullis::csrf::CsrfToken;
///
/// async fn form(csrf: CsrfToken) -> Html<String> {
///     Html(format!(
///         "<form method=post action=/save>{}<button>Save</button></form>",
///         csrf.hidden_input()
///     ))
/// }
/// let app: Router = Router::new().route("/form", get(form));
/// ```
#[derive(Clone)]
pub struct CsrfToken {
    secret: SessionSecret,
    keys: Arc<KeyRing>,
    clock: Arc<dyn Clock>,
}

impl fmt::Debug for CsrfToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CsrfToken").finish_non_exhaustive()
    }
}

impl CsrfToken {
    /// Tokens for `session`, creating its secret on first use. Use this instead of the
    /// extractor after [`Session::regenerate`] in the same handler: the extractor ran before
    /// the secret was dropped.
    ///
    /// # Errors
    /// [`SessionError::Unavailable`] when the store cannot be reached.
    pub async fn for_session(session: &Session) -> Result<Self, SessionError> {
        let secret = session.csrf_secret_or_mint().await?;
        Ok(Self {
            secret,
            keys: Arc::clone(session.key_ring()),
            clock: Arc::clone(session.clock()),
        })
    }

    /// A freshly masked token, issued now.
    #[must_use]
    pub fn token(&self) -> String {
        self.secret.issue(&self.keys, self.clock.now())
    }

    /// `<input type="hidden" name="csrf_token" value="…">` for a form. The token is base64url
    /// (and dots, in the Flask format), so it needs no escaping.
    #[must_use]
    pub fn hidden_input(&self) -> String {
        format!(
            "<input type=\"hidden\" name=\"{FORM_FIELD}\" value=\"{}\">",
            self.token()
        )
    }

    /// `<meta name="csrf-token" content="…">` for the page head, where scripts read the token
    /// to send it in the `X-CSRFToken` header.
    #[must_use]
    pub fn meta_tag(&self) -> String {
        format!("<meta name=\"csrf-token\" content=\"{}\">", self.token())
    }
}

/// Finds the [`Session`] that [`SessionLayer`](crate::SessionLayer) put in the request.
impl<S: Send + Sync> FromRequestParts<S> for CsrfToken {
    type Rejection = CsrfError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        let session = parts
            .extensions
            .get::<Session>()
            .cloned()
            .ok_or(CsrfError::NoSession)?;
        Ok(Self::for_session(&session).await?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &[u8] = b"the current secret key, 32 bytes or more";
    const OLD_KEY: &[u8] = b"a retired secret key, also 32 bytes long";
    const HOUR: Option<Duration> = Some(Duration::from_secs(3600));
    /// Any time well after the epoch, so that "an hour earlier" exists.
    const NOW: u64 = 1_800_000_000;

    fn at(seconds: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(seconds)
    }

    #[test]
    fn a_token_has_the_documented_length_and_alphabet() {
        let token = CsrfSecret::generate().issue(&KeyRing::new(KEY, &[]), at(NOW));
        assert_eq!(token.len(), TOKEN_CHARS);
        assert_eq!(TOKEN_CHARS, 139);
        assert!(
            token
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        );
    }

    #[test]
    fn checks_run_in_flask_wtf_order() {
        let keys = KeyRing::new(KEY, &[]);
        let secret = CsrfSecret::generate();
        let other = CsrfSecret::generate();
        let good = secret.issue(&keys, at(NOW));
        let forged = CsrfSecret::generate().issue(&KeyRing::new(OLD_KEY, &[]), at(NOW));
        let old = secret.issue(&keys, at(NOW - 3_601));
        // (presented, session secret, expected)
        let cases: [(Option<&str>, Option<&CsrfSecret>, Option<&str>); 9] = [
            (None, Some(&secret), Some("The CSRF token is missing.")),
            (Some(""), Some(&secret), Some("The CSRF token is missing.")),
            (None, None, Some("The CSRF token is missing.")),
            (
                Some(&good),
                None,
                Some("The CSRF session token is missing."),
            ),
            (
                Some("garbage"),
                Some(&secret),
                Some("The CSRF token is invalid."),
            ),
            (
                Some(&forged),
                Some(&secret),
                Some("The CSRF token is invalid."),
            ),
            (
                Some(&old),
                Some(&secret),
                Some("The CSRF token has expired."),
            ),
            (
                Some(&good),
                Some(&other),
                Some("The CSRF tokens do not match."),
            ),
            (Some(&good), Some(&secret), None),
        ];
        for (presented, session, expected) in cases {
            let result = verify_token(presented, session, &keys, at(NOW), HOUR);
            assert_eq!(
                result.err().map(|e| e.to_string()).as_deref(),
                expected,
                "{presented:?}"
            );
        }
    }

    #[test]
    fn any_changed_byte_makes_the_token_invalid() {
        let keys = KeyRing::new(KEY, &[]);
        let secret = CsrfSecret::generate();
        let token = secret.issue(&keys, at(NOW));
        let bytes = URL_SAFE_NO_PAD.decode(&token).unwrap();
        for i in 0..bytes.len() {
            let mut bad = bytes.clone();
            bad[i] ^= 1;
            let bad = URL_SAFE_NO_PAD.encode(bad);
            assert!(
                matches!(
                    verify_token(Some(&bad), Some(&secret), &keys, at(NOW), HOUR),
                    Err(CsrfError::Invalid)
                ),
                "flip at byte {i}"
            );
        }
        let cut = &token[..token.len() - 1];
        let long = format!("{token}A");
        for bad in [cut, long.as_str()] {
            assert!(matches!(
                verify_token(Some(bad), Some(&secret), &keys, at(NOW), HOUR),
                Err(CsrfError::Invalid)
            ));
        }
    }

    #[test]
    fn fallback_keys_verify_but_new_tokens_use_the_current_key() {
        let secret = CsrfSecret::generate();
        let old_token = secret.issue(&KeyRing::new(OLD_KEY, &[]), at(NOW));
        let rotated = KeyRing::new(KEY, &[OLD_KEY]);
        assert!(verify_token(Some(&old_token), Some(&secret), &rotated, at(NOW), HOUR).is_ok());
        let new_token = secret.issue(&rotated, at(NOW));
        assert!(
            verify_token(
                Some(&new_token),
                Some(&secret),
                &KeyRing::new(KEY, &[]),
                at(NOW),
                HOUR
            )
            .is_ok()
        );
        assert!(matches!(
            verify_token(
                Some(&new_token),
                Some(&secret),
                &KeyRing::new(OLD_KEY, &[]),
                at(NOW),
                HOUR
            ),
            Err(CsrfError::Invalid)
        ));
    }

    #[test]
    fn the_time_limit_counts_whole_seconds_and_none_never_expires() {
        let keys = KeyRing::new(KEY, &[]);
        let secret = CsrfSecret::generate();
        let token = secret.issue(&keys, at(NOW));
        let check =
            |now: u64, limit| verify_token(Some(&token), Some(&secret), &keys, at(now), limit);
        assert!(check(NOW + 3_599, HOUR).is_ok());
        assert!(
            check(NOW + 3_600, HOUR).is_ok(),
            "the limit itself is allowed"
        );
        assert!(matches!(check(NOW + 3_601, HOUR), Err(CsrfError::Expired)));
        assert!(check(NOW + 10 * 365 * 86_400, None).is_ok());
        assert!(
            check(NOW - 60, HOUR).is_ok(),
            "small clock skew is tolerated"
        );
        assert!(matches!(check(NOW - 61, HOUR), Err(CsrfError::Expired)));
        assert!(matches!(check(NOW - 61, None), Err(CsrfError::Expired)));
    }

    #[test]
    fn the_secret_round_trips_through_its_session_form_and_never_prints() {
        let secret = CsrfSecret::generate();
        let decoded = CsrfSecret::decode(&secret.encode()).unwrap();
        assert_eq!(decoded.0, secret.0);
        assert!(CsrfSecret::decode("short").is_none());
        assert!(CsrfSecret::decode(&URL_SAFE_NO_PAD.encode([0u8; 31])).is_none());
        assert_eq!(format!("{secret:?}"), "CsrfSecret([redacted])");
    }
}
