//! The pre-session CSRF cookie: the CSRF secret of an anonymous visitor's forms (log in,
//! register), kept in a signed cookie instead of a stored session, so that a flood of
//! cookieless form pages writes nothing to the store (review finding 8).
//!
//! The cookie is `<session cookie name>-csrf`, with the session cookie's `Path`, `Domain`,
//! `Secure` and `SameSite`, always `HttpOnly`, until the browser closes. Its value is the
//! 256-bit secret in base64url and an HMAC-SHA256 under the key ring over the cookie's name and
//! the secret (current key to sign, fallbacks too to verify), so it cannot be forged or moved
//! to another name; it is verified with the session cookie, on the session's first use in a
//! request. A form's token is valid only with the cookie its secret came from: another
//! site's form cannot post the visitor's token without the visitor's cookie, which it can
//! neither read nor set (login CSRF). The secret goes into the session as soon as something
//! real is stored, and a log-in or log-out ([`Session::regenerate`](super::Session::regenerate),
//! [`Session::destroy`](super::Session::destroy)) retires it and removes the cookie, so the
//! logged-in session starts with a secret of its own. Only the native format has this: in the
//! Flask format the secret lives in the session, as Flask-WTF keeps it.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use http::HeaderValue;
use std::time::SystemTime;

use super::Settings;
use super::cookie::{CookieHeaders, Lifetime, build_set_cookie};
use super::secret::CsrfSecret;
use crate::keys::KeyRing;

/// Appended to the session cookie's name (so a `__Host-` prefix carries over).
pub(crate) const NAME_SUFFIX: &str = "-csrf";
/// Names the scheme inside the MAC, so the signature never verifies anything else.
const MAC_CONTEXT: &[u8] = b"portcullis pre-session csrf v1";
/// The secret in base64url (43 characters), a dot, and a 256-bit MAC in base64url.
const MAX_VALUE_LEN: usize = 43 + 1 + 43;

/// The request's pre-session secret and what to send back.
#[derive(Debug, Default)]
pub(crate) struct PreSession {
    /// The authentic secret the request's cookie carried.
    presented: Option<CsrfSecret>,
    /// A secret minted in this request (the response sets the cookie).
    minted: Option<CsrfSecret>,
    /// Regenerated or destroyed: the secret no longer counts and the cookie is removed.
    retired: bool,
}

impl PreSession {
    /// Reads and verifies the cookie; anything unauthentic counts as absent. The Flask format
    /// has no pre-session.
    pub(crate) fn read(cookies: &CookieHeaders, settings: &Settings, keys: &KeyRing) -> Self {
        if settings.format.is_flask() {
            return Self::default();
        }
        let presented = cookies
            .named(|name| is_name(name, settings))
            .find_map(|cookie| verify(cookie.value(), cookie.name(), keys));
        Self {
            presented,
            ..Self::default()
        }
    }

    /// The secret in effect: minted here or presented, unless retired.
    pub(crate) fn secret(&self) -> Option<&CsrfSecret> {
        if self.retired {
            return None;
        }
        self.minted.as_ref().or(self.presented.as_ref())
    }

    /// The secret in effect, minted when there is none; `None` once retired.
    pub(crate) fn secret_or_mint(&mut self) -> Option<CsrfSecret> {
        if self.retired {
            return None;
        }
        if self.secret().is_none() {
            self.minted = Some(CsrfSecret::generate());
        }
        self.secret().cloned()
    }

    /// The session was regenerated or destroyed: tokens of this secret stop working.
    pub(crate) fn retire(&mut self) {
        self.retired = true;
    }

    /// `Set-Cookie` for the response: the minted secret, or the removal of a retired one.
    pub(crate) fn set_cookie(
        &self,
        settings: &Settings,
        keys: &KeyRing,
        now: SystemTime,
    ) -> Option<HeaderValue> {
        if self.retired {
            return self.presented.as_ref().map(|_| {
                build_set_cookie(&name(settings), "", true, &Lifetime::Remove, now, settings)
            });
        }
        let secret = self.minted.as_ref()?;
        let name = name(settings);
        let encoded = secret.encode();
        let signature = keys.sign(&[MAC_CONTEXT, name.as_bytes(), encoded.as_bytes()]);
        let value = format!("{encoded}.{signature}");
        Some(build_set_cookie(
            &name,
            &value,
            true,
            &Lifetime::BrowserSession,
            now,
            settings,
        ))
    }
}

fn name(settings: &Settings) -> String {
    format!("{}{NAME_SUFFIX}", settings.cookie_name)
}

/// Whether `name` is the pre-session cookie's (without building it on every request).
fn is_name(name: &str, settings: &Settings) -> bool {
    name.strip_prefix(settings.cookie_name.as_str()) == Some(NAME_SUFFIX)
}

fn verify(value: &str, name: &str, keys: &KeyRing) -> Option<CsrfSecret> {
    if value.len() > MAX_VALUE_LEN {
        return None;
    }
    let (encoded, signature) = value.split_once('.')?;
    keys.verify(
        &[MAC_CONTEXT, name.as_bytes(), encoded.as_bytes()],
        signature,
    )?;
    // Canonical base64url only: one secret, one cookie value.
    let secret = CsrfSecret::decode(encoded)?;
    (URL_SAFE_NO_PAD.encode(secret.0) == encoded).then_some(secret)
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &[u8] = b"the current secret key, 32 bytes or more";

    fn signed(name: &str, encoded: &str, keys: &KeyRing) -> String {
        let signature = keys.sign(&[MAC_CONTEXT, name.as_bytes(), encoded.as_bytes()]);
        format!("{encoded}.{signature}")
    }

    #[test]
    fn only_an_authentic_cookie_of_this_name_carries_a_secret() {
        let keys = KeyRing::new(KEY, &[]);
        let secret = CsrfSecret::generate();
        let encoded = secret.encode();
        let good = signed("session-csrf", &encoded, &keys);
        assert_eq!(verify(&good, "session-csrf", &keys).unwrap().0, secret.0);
        let other_name = signed("other-csrf", &encoded, &keys);
        let other_key = signed("session-csrf", &encoded, &KeyRing::new(&[7; 32], &[]));
        let mut flipped = good.clone().into_bytes();
        flipped[0] = if flipped[0] == b'A' { b'B' } else { b'A' };
        let flipped = String::from_utf8(flipped).unwrap();
        let unsigned = encoded;
        let long = format!("{good}{}", "A".repeat(MAX_VALUE_LEN));
        for bad in [other_name, other_key, flipped, unsigned, long] {
            assert!(verify(&bad, "session-csrf", &keys).is_none(), "{bad}");
        }
    }

    #[test]
    fn a_retired_secret_counts_no_more_and_is_never_minted_again() {
        let mut pre = PreSession::default();
        let minted = pre.secret_or_mint().unwrap();
        assert_eq!(pre.secret_or_mint().unwrap().0, minted.0, "minted once");
        pre.retire();
        assert!(pre.secret().is_none() && pre.secret_or_mint().is_none());
    }
}
