//! Flask-WTF 1.3's CSRF tokens, for the Flask session format: what `generate_csrf` issues and
//! `validate_csrf` accepts, so a form rendered by the Flask app posts to Portcullis and the
//! other way round.
//!
//! - The session holds `csrf_token`: 40 lowercase hex characters (160 random bits), created
//!   only when missing, shared by every token of the session.
//! - A token is itsdangerous's `URLSafeTimedSerializer(SECRET_KEY, salt="wtf-csrf-token")`:
//!   `payload.timestamp.signature`, where `payload` is the base64url JSON string `"<40 hex>"`
//!   (quotes included), `timestamp` the big-endian Unix seconds without leading zero bytes, and
//!   `signature` HMAC-SHA1 over `payload.timestamp` under `SHA-1("wtf-csrf-token" ‖ "signer" ‖
//!   SECRET_KEY)` (the `django-concat` key derivation), all base64url without padding.
//! - Checks run in Flask-WTF's order and fail with its words: signature ("The CSRF token is
//!   invalid."), then age ("… has expired.", also when the token is from the future: the
//!   servers' clocks must agree), then the payload ("… is invalid."), then the comparison with
//!   the session's token, in constant time ("The CSRF tokens do not match.").
//! - On HTTPS, the `Referer` must be on this very host, as `WTF_CSRF_SSL_STRICT` asks
//!   ([`check_referrer`]).
//!
//! Unlike the native tokens these are not masked (the payload is the same in every token of a
//! session, so BREACH applies) and only `SECRET_KEY` signs and verifies them: Flask-WTF knows
//! no fallback keys.

use std::time::{Duration, SystemTime};

use base64::Engine as _;
use hmac::Mac;
use http::HeaderMap;
use http::header::REFERER;
use subtle::ConstantTimeEq;

use super::CsrfError;
use super::origin::url_origin;
use crate::clock::unix_seconds;
use crate::itsdangerous::{B64, HmacSha1, decode_timestamp, encode_timestamp, hmac_sha1};
/// Longest token worth looking at: a real one has 91 characters; refuse garbage unread.
const MAX_TOKEN_CHARS: usize = 256;

/// The token for session token `raw`, stamped `now`.
pub(crate) fn issue(raw: &str, key: &[u8; 20], now: SystemTime) -> String {
    // json.dumps of a hex string: the string in double quotes, nothing to escape.
    let payload = B64.encode(format!("\"{raw}\""));
    let signed = format!("{payload}.{}", encode_timestamp(now));
    let signature = B64.encode(sign(key, &signed).finalize().into_bytes());
    format!("{signed}.{signature}")
}

/// Checks `presented` against the session token `raw`, in Flask-WTF's order (the caller has
/// already refused a missing token and a missing session token).
///
/// # Errors
/// [`CsrfError::Invalid`], [`CsrfError::Expired`] or [`CsrfError::Mismatch`], for the first
/// check that fails.
pub(crate) fn verify(
    presented: &str,
    raw: &str,
    key: &[u8; 20],
    now: SystemTime,
    time_limit: Option<Duration>,
) -> Result<(), CsrfError> {
    if presented.len() > MAX_TOKEN_CHARS {
        return Err(CsrfError::Invalid);
    }
    // Signer.unsign: the signature follows the last separator.
    let (signed, signature) = presented.rsplit_once('.').ok_or(CsrfError::Invalid)?;
    let tag = B64.decode(signature).map_err(|_| CsrfError::Invalid)?;
    sign(key, signed)
        .verify_slice(&tag)
        .map_err(|_| CsrfError::Invalid)?;
    // TimestampSigner.unsign: then the time stamp, then its age.
    let (payload, stamp) = signed.rsplit_once('.').ok_or(CsrfError::Invalid)?;
    let issued = decode_timestamp(stamp).ok_or(CsrfError::Invalid)?;
    if let Some(limit) = time_limit {
        let age = i128::from(unix_seconds(now)) - i128::from(issued);
        if age < 0 || age > i128::from(limit.as_secs()) {
            return Err(CsrfError::Expired);
        }
    }
    // URLSafeSerializer.loads: a leading '.' means zlib, which Flask-WTF's short payload never
    // uses; only a signer with the key could send one, so it is refused rather than inflated.
    if payload.starts_with('.') {
        return Err(CsrfError::Invalid);
    }
    let json = B64.decode(payload).map_err(|_| CsrfError::Invalid)?;
    let token: String = serde_json::from_slice(&json).map_err(|_| CsrfError::Invalid)?;
    if bool::from(token.as_bytes().ct_eq(raw.as_bytes())) {
        Ok(())
    } else {
        Err(CsrfError::Mismatch)
    }
}

/// Flask-WTF's check on HTTPS (`WTF_CSRF_SSL_STRICT`, on by default): the `Referer` must have
/// the scheme `https`, and the host name and port of `host` (the request's `Host`), compared
/// exactly as Python's `urlparse` gives them: `https://example.com:443/` does not match the
/// host `example.com`. `Origin` is not consulted, as in Flask-WTF.
///
/// # Errors
/// [`CsrfError::ReferrerMissing`] without a `Referer`; [`CsrfError::ReferrerMismatch`] when it
/// names another origin, or cannot be parsed.
pub(crate) fn check_referrer(headers: &HeaderMap, host: Option<&str>) -> Result<(), CsrfError> {
    let referrer = headers
        .get(REFERER)
        .map(|value| String::from_utf8_lossy(value.as_bytes()).into_owned())
        .filter(|value| !value.is_empty())
        .ok_or(CsrfError::ReferrerMissing)?;
    let ours = host.and_then(|host| url_origin(&format!("https://{host}/")));
    match (url_origin(&referrer), ours) {
        (Some(theirs), Some(ours)) if theirs == ours => Ok(()),
        _ => Err(CsrfError::ReferrerMismatch),
    }
}

fn sign(key: &[u8; 20], signed: &str) -> HmacSha1 {
    let mut mac = hmac_sha1(key);
    mac.update(signed.as_bytes());
    mac
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::itsdangerous::lower_hex;

    /// The reference's vector (section 3.2), checked against Flask-WTF 1.3.0.
    const SECRET: &[u8] = b"test-secret-key";
    const RAW: &str = "c84b997d260ed51411ba42b8919317ce4c0f876b";
    const ISSUED: u64 = 1_795_667_448;
    const TOKEN: &str = "ImM4NGI5OTdkMjYwZWQ1MTQxMWJhNDJiODkxOTMxN2NlNGMwZjg3NmIi.awe1-A.MkUsHcljXARPHowaRV34xP5Ls14";
    const HOUR: Option<Duration> = Some(Duration::from_secs(3600));

    fn at(seconds: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(seconds)
    }

    /// The token signing key, as `FlaskKeys` derives it.
    fn derive_key(secret_key: &[u8]) -> [u8; 20] {
        crate::itsdangerous::derive_key(crate::session::secret::FLASK_WTF_TOKEN_SALT, secret_key)
    }

    #[test]
    fn the_token_matches_flask_wtfs_test_vector() {
        let key = derive_key(SECRET);
        assert_eq!(lower_hex(&key), "119415ac099a5daed28f4962aed0954ab4eae73b");
        assert_eq!(issue(RAW, &key, at(ISSUED)), TOKEN);
        assert_eq!(TOKEN.len(), 91);
        assert!(verify(TOKEN, RAW, &key, at(ISSUED + 10), HOUR).is_ok());
    }

    #[test]
    fn checks_run_in_flask_wtf_order_with_its_reasons() {
        let key = derive_key(SECRET);
        let other_key = derive_key(b"another-secret-key");
        let other_raw = crate::session::secret::new_flask_raw();
        let forged = issue(RAW, &other_key, at(ISSUED));
        let altered = TOKEN.replacen("awe1-A", "awe1-B", 1);
        // (token, session token, now, reason)
        let cases: [(&str, &str, u64, Option<&str>); 8] = [
            (TOKEN, RAW, ISSUED, None),
            (TOKEN, RAW, ISSUED + 3600, None),
            ("garbage", RAW, ISSUED, Some("The CSRF token is invalid.")),
            (&forged, RAW, ISSUED, Some("The CSRF token is invalid.")),
            (&altered, RAW, ISSUED, Some("The CSRF token is invalid.")),
            (
                TOKEN,
                RAW,
                ISSUED + 3601,
                Some("The CSRF token has expired."),
            ),
            (TOKEN, RAW, ISSUED - 1, Some("The CSRF token has expired.")),
            (
                TOKEN,
                &other_raw,
                ISSUED,
                Some("The CSRF tokens do not match."),
            ),
        ];
        for (token, raw, now, reason) in cases {
            let result = verify(token, raw, &key, at(now), HOUR);
            assert_eq!(
                result.err().map(|e| e.to_string()).as_deref(),
                reason,
                "{token} at {now}"
            );
        }
        // An expired forgery is invalid: the signature is checked before the age.
        let old_forgery = issue(RAW, &other_key, at(ISSUED - 7200));
        assert!(matches!(
            verify(&old_forgery, RAW, &key, at(ISSUED), HOUR),
            Err(CsrfError::Invalid)
        ));
        // Without a time limit, age is not checked at all (WTF_CSRF_TIME_LIMIT=None).
        assert!(verify(TOKEN, RAW, &key, at(ISSUED - 1), None).is_ok());
        assert!(verify(TOKEN, RAW, &key, at(ISSUED + 86_400 * 365), None).is_ok());
        assert!(matches!(
            verify(&"a".repeat(1000), RAW, &key, at(ISSUED), HOUR),
            Err(CsrfError::Invalid)
        ));
    }

    #[test]
    fn a_signed_payload_that_is_not_a_json_string_is_invalid() {
        let key = derive_key(SECRET);
        for payload in [
            B64.encode("42"),
            B64.encode("not json"),
            format!(".{}", B64.encode("x")),
        ] {
            let signed = format!("{payload}.awe1-A");
            let signature = B64.encode(sign(&key, &signed).finalize().into_bytes());
            let token = format!("{signed}.{signature}");
            assert!(
                matches!(
                    verify(&token, RAW, &key, at(ISSUED), HOUR),
                    Err(CsrfError::Invalid)
                ),
                "{payload}"
            );
        }
    }

    #[test]
    fn the_referrer_must_be_this_https_host_exactly() {
        let check = |referrer: Option<&str>, host: &str| {
            let mut headers = HeaderMap::new();
            if let Some(referrer) = referrer {
                headers.insert(REFERER, referrer.parse().unwrap());
            }
            check_referrer(&headers, Some(host))
                .err()
                .map(|e| e.to_string())
        };
        let missing = Some("The referrer header is missing.".to_owned());
        let mismatch = Some("The referrer does not match the host.".to_owned());
        assert_eq!(check(None, "example.com"), missing);
        assert_eq!(check(Some(""), "example.com"), missing);
        // (referrer, host, matches)
        let cases = [
            ("https://example.com/form", "example.com", true),
            ("HTTPS://Example.COM/form?x=1", "example.com", true),
            ("https://user:pw@example.com/", "example.com", true),
            ("https://example.com:8443/a", "example.com:8443", true),
            ("https://[::1]:8443/a", "[::1]:8443", true),
            ("https://example.com:443/", "example.com", false),
            ("http://example.com/", "example.com", false),
            ("https://evil.example/", "example.com", false),
            ("https://example.com.evil/", "example.com", false),
            ("https://example.com:x/", "example.com", false),
            ("https://example.com:70000/", "example.com", false),
            ("/relative", "example.com", false),
            ("https:///nohost", "example.com", false),
        ];
        for (referrer, host, matches) in cases {
            let expected = if matches { None } else { mismatch.clone() };
            assert_eq!(
                check(Some(referrer), host),
                expected,
                "{referrer} on {host}"
            );
        }
        let mut headers = HeaderMap::new();
        headers.insert(REFERER, "https://example.com/".parse().unwrap());
        assert!(matches!(
            check_referrer(&headers, None),
            Err(CsrfError::ReferrerMismatch)
        ));
    }
}
