//! Reading the session cookie from a request and writing `Set-Cookie`.
//!
//! The value is the session's [`Format`](super::Format)'s: `id.mac` in the native format (the
//! base64url id and an HMAC-SHA256 over the cookie name and the id, so a cookie cannot be
//! forged, altered, or moved to another cookie name), `sid.sig` in the Flask format.
//! The layer keeps the request's `Cookie` headers as they came ([`CookieHeaders`]) and verifies
//! them on the session's first use, before anything touches the store: a request whose handler
//! never touches the session costs no HMAC and logs nothing. A value that fails verification is
//! "no session".

use std::fmt::{self, Write as _};
use std::time::{Duration, SystemTime};

use ::cookie::Cookie;
use http::HeaderValue;
use http::header::{COOKIE, HeaderMap};

use super::Settings;
use super::id::{ENCODED_32_BYTES_LEN, Id, MAX_COOKIE_ID_LEN};
use crate::events;
use crate::keys::{KeyRing, KeyUse};
use crate::metrics::CookieRefusal;

/// Longest cookie value worth looking at: an id (a tagged one, its tag sealed, is the longest), a dot and a
/// 256-bit MAC in base64url (the Flask format's 160-bit signature is shorter).
const MAX_VALUE_LEN: usize = MAX_COOKIE_ID_LEN + 1 + ENCODED_32_BYTES_LEN;

/// What the request's cookie said.
#[derive(Clone, Debug)]
pub(crate) enum PresentedCookie {
    /// No cookie of that name.
    Absent,
    /// A well-formed, authentic id (under the current key or a fallback), and the cookie value
    /// that carried it: under the current key, a response that sends the same id again sends
    /// this value back instead of signing it anew.
    Valid {
        id: Id,
        key_use: KeyUse,
        value: CookieValue,
    },
    /// A cookie that is malformed, overlong or fails its signature. The keyed hash of its value
    /// goes into the security log.
    Invalid,
}

/// How many cookies of the session's name are checked per request: a browser sends one per
/// matching path or domain, a few at most; a header stuffed with thousands must not cost
/// thousands of HMACs and log lines.
const MAX_CANDIDATES: usize = 4;

/// A request's `Cookie` headers, unparsed: kept by the layer until the session's first use
/// (cloning a header value only counts a reference). The first apart, so that the usual one
/// header allocates nothing (HTTP/2 clients may send one per cookie).
#[derive(Clone, Default)]
pub(crate) struct CookieHeaders {
    first: Option<HeaderValue>,
    rest: Vec<HeaderValue>,
}

/// Redacted: the headers hold the session's id.
impl fmt::Debug for CookieHeaders {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("CookieHeaders([redacted])")
    }
}

/// An authentic cookie value as the request carried it. Its `Debug` output is redacted: it
/// holds the session's id.
#[derive(Clone, Default)]
pub(crate) struct CookieValue(String);

impl fmt::Debug for CookieValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("CookieValue([redacted])")
    }
}

impl CookieHeaders {
    /// The `Cookie` headers of a request.
    pub(crate) fn of(headers: &HeaderMap) -> Self {
        let mut values = headers.get_all(COOKIE).iter().cloned();
        Self {
            first: values.next(),
            rest: values.collect(),
        }
    }

    /// The cookies whose name `is_name` accepts, the first [`MAX_CANDIDATES`] of them.
    pub(crate) fn named<'a>(
        &'a self,
        is_name: impl Fn(&str) -> bool + 'a,
    ) -> impl Iterator<Item = Cookie<'a>> {
        self.first
            .iter()
            .chain(&self.rest)
            .filter_map(|v| v.to_str().ok())
            .flat_map(Cookie::split_parse)
            .flatten()
            .filter(move |cookie| is_name(cookie.name()))
            .take(MAX_CANDIDATES)
    }
}

/// Finds the session cookie (exact name) and verifies it. When the browser sends several cookies
/// of that name (different paths or domains), the first authentic one wins. Failures are logged
/// once per request (`input_validation_fail`), with the keyed hash of the first unauthentic
/// value.
pub(crate) fn read(
    cookies: &CookieHeaders,
    settings: &Settings,
    keys: &KeyRing,
) -> PresentedCookie {
    let mut first_failure = None;
    let mut failures = 0_usize;
    for cookie in cookies.named(|name| name == settings.cookie_name) {
        let reason = match verify(cookie.value(), settings, keys) {
            Ok((id, key_use)) => {
                let value = CookieValue(cookie.value().to_owned());
                return PresentedCookie::Valid { id, key_use, value };
            }
            Err(reason) => reason,
        };
        failures += 1;
        first_failure.get_or_insert_with(|| (keys.log_hash(cookie.value().as_bytes()), reason));
    }
    match first_failure {
        None => PresentedCookie::Absent,
        Some((cookie_hash, reason)) => {
            crate::metrics::cookie_refused(reason);
            events::cookie_unverified(&cookie_hash, failures);
            PresentedCookie::Invalid
        }
    }
}

fn verify(value: &str, settings: &Settings, keys: &KeyRing) -> Result<(Id, KeyUse), CookieRefusal> {
    if value.len() > MAX_VALUE_LEN {
        return Err(CookieRefusal::Malformed);
    }
    settings
        .format
        .verify_cookie(value, settings, keys)
        .ok_or_else(|| refusal(value, settings))
}

/// Why `value` failed verification, for the metrics: shaped `id.signature` (with the signer
/// on) is a bad signature (forged, altered, or signed by a key since dropped); anything else is
/// malformed.
fn refusal(value: &str, settings: &Settings) -> CookieRefusal {
    if settings.use_signer && value.contains('.') {
        CookieRefusal::BadSignature
    } else {
        CookieRefusal::Malformed
    }
}

/// The cookie value for `id`, in the session's format.
pub(crate) fn value(id: &Id, settings: &Settings, keys: &KeyRing) -> String {
    settings.format.cookie_value(id, settings, keys)
}

/// The request's own cookie value when it carried `id` under the current key: a response that
/// sends the same session again (a sliding cookie's new expiry) sends it back as it came, with
/// nothing signed or sealed anew. `None` for another id, or a value verified by a fallback key
/// (it must be issued again under the current one).
pub(crate) fn presented_value<'a>(presented: &'a PresentedCookie, id: &Id) -> Option<&'a str> {
    match presented {
        PresentedCookie::Valid {
            id: presented,
            key_use: KeyUse::Current,
            value,
        } if presented == id => Some(&value.0),
        _ => None,
    }
}

/// How long the browser should keep the cookie.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Lifetime {
    /// Until the browser closes (no `Expires`/`Max-Age`).
    BrowserSession,
    /// Until this deadline (`Max-Age` and `Expires`).
    Until(SystemTime),
    /// Remove it now (`Max-Age=0` and an `Expires` in the past).
    Remove,
}

/// A `Set-Cookie` header value with the configured attributes.
pub(crate) fn set_cookie(
    value: &str,
    lifetime: &Lifetime,
    now: SystemTime,
    settings: &Settings,
) -> HeaderValue {
    build_set_cookie(
        &settings.cookie_name,
        value,
        settings.http_only,
        lifetime,
        now,
        settings,
    )
}

/// Room in a `Set-Cookie` value for everything but the name, the value, the path and the
/// domain: `=`, `; HttpOnly`, `; SameSite=Strict`, `; Secure`, `; Path=`, `; Domain=`,
/// `; Max-Age=` with 20 digits and `; Expires=` with an IMF-fixdate come to 121 bytes.
const SET_COOKIE_ATTRIBUTES_LEN: usize = 128;

/// A `Set-Cookie` header value for the cookie `name` with the session cookie's `Path`,
/// `Domain`, `Secure` and `SameSite` (the pre-session CSRF cookie shares them).
pub(crate) fn build_set_cookie(
    name: &str,
    value: &str,
    http_only: bool,
    lifetime: &Lifetime,
    now: SystemTime,
    settings: &Settings,
) -> HeaderValue {
    let mut cookie = Cookie::build((name, value))
        .path(settings.cookie_path.as_str())
        .http_only(http_only)
        .secure(settings.secure)
        .same_site(settings.same_site);
    if let Some(domain) = &settings.cookie_domain {
        cookie = cookie.domain(domain.as_str());
    }
    match lifetime {
        Lifetime::BrowserSession => {}
        Lifetime::Until(deadline) => {
            let secs = deadline
                .duration_since(now)
                .unwrap_or(Duration::ZERO)
                .as_secs();
            let unix = deadline
                .duration_since(SystemTime::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs());
            cookie = cookie.max_age(::cookie::time::Duration::seconds(saturate(secs)));
            if let Ok(at) = ::cookie::time::OffsetDateTime::from_unix_timestamp(saturate(unix)) {
                cookie = cookie.expires(at);
            }
        }
        Lifetime::Remove => {
            cookie = cookie
                .max_age(::cookie::time::Duration::ZERO)
                .expires(::cookie::time::OffsetDateTime::UNIX_EPOCH);
        }
    }
    // Room for the name, the value and every attribute at their longest, so that the text is
    // written without growing.
    let domain = settings.cookie_domain.as_ref().map_or(0, String::len);
    let mut text = String::with_capacity(
        name.len() + value.len() + settings.cookie_path.len() + domain + SET_COOKIE_ATTRIBUTES_LEN,
    );
    write!(text, "{}", cookie.build()).expect("writing to a String cannot fail");
    // Invariant: names are validated tokens and values are base64url, so this is a valid header.
    HeaderValue::try_from(text).expect("cookie text is a valid header value")
}

fn saturate(secs: u64) -> i64 {
    i64::try_from(secs).unwrap_or(i64::MAX)
}

/// The session cookie's `SameSite` attribute (`SESSION_COOKIE_SAMESITE`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum SameSite {
    /// Sent only with same-site requests.
    Strict,
    /// Also sent with top-level cross-site navigations (links), not with cross-site POSTs.
    Lax,
    /// Sent with every request; browsers require `Secure` with it.
    None,
}

/// Prints the attribute value as it appears in `Set-Cookie`: `Strict`, `Lax` or `None`.
impl fmt::Display for SameSite {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Strict => "Strict",
            Self::Lax => "Lax",
            Self::None => "None",
        })
    }
}

/// Maps our `SameSite` onto the cookie crate's.
pub(crate) fn same_site(value: SameSite) -> ::cookie::SameSite {
    match value {
        SameSite::Strict => ::cookie::SameSite::Strict,
        SameSite::Lax => ::cookie::SameSite::Lax,
        SameSite::None => ::cookie::SameSite::None,
    }
}

/// Whether `byte` may appear in a cookie name: RFC 6265 section 4.1.1 refers to RFC 2616's
/// token, visible ASCII except separators.
pub(crate) fn is_token_byte(byte: u8) -> bool {
    byte.is_ascii_graphic() && !b"()<>@,;:\\\"/[]?={}".contains(&byte)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_cookie_header_is_kept_and_none_shows_in_debug_output() {
        let mut headers = HeaderMap::new();
        headers.append(COOKIE, HeaderValue::from_static("session=secret-id.mac"));
        headers.append(COOKIE, HeaderValue::from_static("other=1; session=again"));
        let cookies = CookieHeaders::of(&headers);
        let values: Vec<_> = cookies.named(|name| name == "session").collect();
        assert_eq!(values.len(), 2, "HTTP/2 sends a header per cookie");
        let presented = PresentedCookie::Valid {
            id: Id::random(),
            key_use: KeyUse::Current,
            value: CookieValue(values[0].value().to_owned()),
        };
        let printed = format!("{cookies:?} {presented:?}");
        assert!(
            !printed.contains("secret-id") && !printed.contains("again"),
            "{printed}"
        );
    }
}
