//! Parsers for setting values. Each takes the raw text and returns the value, or `Err` with
//! a description of what is allowed, which the reader turns into a [`super::ConfigError`]. The
//! public ones let an application's settings accept the same spellings as the library's.

use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use super::secret::MIN_SECRET_BYTES;
use super::{ConfigError, SecretKey};
use crate::csrf::check_trusted_origin;
use crate::session::is_token_byte;

/// A parsed value, or what the setting allows.
pub type Parsed<T> = Result<T, String>;

/// The shortest accepted duration.
const MIN_DURATION: Duration = Duration::from_secs(1);

/// The longest accepted duration: browsers cap cookie lifetimes at 400 days (RFC 6265bis,
/// section 5.6.1), and a bound keeps deadline arithmetic far from overflow.
const MAX_DURATION: Duration = Duration::from_secs(400 * 24 * 60 * 60);

/// The shortest Redis timeout: less would fail even on loopback under load.
const MIN_TIMEOUT: Duration = Duration::from_millis(10);

/// The longest Redis timeout: every request that needs a session waits this long during an
/// outage, so more than a minute is a misconfiguration.
const MAX_TIMEOUT: Duration = Duration::from_secs(60);

/// The longest `SESSION_KEY_PREFIX`.
const MAX_PREFIX_CHARS: usize = 64;

/// One of an enum's keywords ([`super::Profile`], [`super::StoreKind`], [`super::SameSite`]),
/// with the enum's own description of what is allowed.
pub(super) fn keyword<T: FromStr<Err = ConfigError>>(raw: &str) -> Parsed<T> {
    raw.parse().map_err(|e| match e {
        ConfigError::Invalid { allowed, .. } => allowed,
        other => other.to_string(),
    })
}

/// `true`/`false`, `1`/`0`, `yes`/`no`, `on`/`off`, in any case (Python writes `True`).
pub fn boolean(raw: &str) -> Parsed<bool> {
    match raw.trim().to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" | "on" => Ok(true),
        "false" | "0" | "no" | "off" => Ok(false),
        _ => Err("true or false (also 1/0, yes/no, on/off)".to_owned()),
    }
}

/// Whole seconds (`300`) or a humantime duration (`5m`, `1h 30m`), from 1 second to 400 days.
pub fn duration(raw: &str) -> Parsed<Duration> {
    let raw = raw.trim();
    let parsed = match raw.parse::<u64>() {
        Ok(seconds) => Some(Duration::from_secs(seconds)),
        Err(_) => humantime::parse_duration(raw).ok(),
    };
    match parsed {
        Some(d) if d > MAX_DURATION => {
            Err("a duration of at most 400 days (the longest cookie lifetime browsers keep)".into())
        }
        Some(d) if d >= MIN_DURATION => Ok(d),
        _ => Err("a duration of at least 1 second, e.g. 300 or 5m".to_owned()),
    }
}

/// A [`duration`], or `none` (any case) for no limit. Zero is refused rather than read as
/// "none", so that a typo cannot switch the limit off.
pub(super) fn optional_duration(raw: &str) -> Parsed<Option<Duration>> {
    if raw.trim().eq_ignore_ascii_case("none") {
        return Ok(None);
    }
    duration(raw)
        .map(Some)
        .map_err(|allowed| format!("{allowed}, or none for no limit"))
}

/// A whole number of bytes, greater than zero.
pub(super) fn size(raw: &str) -> Parsed<usize> {
    match raw.trim().parse::<usize>() {
        Ok(bytes) if bytes > 0 => Ok(bytes),
        _ => Err("a whole number of bytes greater than 0, e.g. 65536".to_owned()),
    }
}

/// `SESSION_MAX_PER_USER`: a number of sessions from 1, or `none` (any case) for no limit.
/// Zero is refused rather than read as "none", as for [`optional_duration`].
pub(super) fn session_limit(raw: &str) -> Parsed<Option<std::num::NonZeroUsize>> {
    let raw = raw.trim();
    if raw.eq_ignore_ascii_case("none") {
        return Ok(None);
    }
    match raw.parse::<std::num::NonZeroUsize>() {
        Ok(max) => Ok(Some(max)),
        Err(_) => Err("a number of sessions from 1, e.g. 5, or none for no limit".to_owned()),
    }
}

/// `SESSION_LIMIT_POLICY`: `evict-oldest` or `refuse`, in any case.
pub(super) fn limit_policy(raw: &str) -> Parsed<crate::store::LimitPolicy> {
    match raw.trim().to_ascii_lowercase().as_str() {
        "evict-oldest" => Ok(crate::store::LimitPolicy::EvictOldest),
        "refuse" => Ok(crate::store::LimitPolicy::Refuse),
        _ => Err("evict-oldest (a log-in ends the oldest session) or refuse".to_owned()),
    }
}

/// A cookie name: one or more RFC 6265 token characters.
pub(super) fn cookie_name(raw: &str) -> Parsed<String> {
    if !raw.is_empty() && raw.bytes().all(is_token_byte) {
        Ok(raw.to_owned())
    } else {
        Err("a non-empty cookie name of letters, digits and !#$%&'*+-.^_`|~".to_owned())
    }
}

/// A store key prefix: short, and safe inside a file name and a Redis Cluster hash tag.
pub(super) fn key_prefix(raw: &str) -> Parsed<String> {
    let allowed = |c: char| c.is_ascii_alphanumeric() || "_:.{}-".contains(c);
    // A leading `.` would name hidden files, which the file store keeps for its own
    // temporary files and refuses as keys.
    if raw.chars().count() <= MAX_PREFIX_CHARS && raw.chars().all(allowed) && !raw.starts_with('.')
    {
        Ok(raw.to_owned())
    } else {
        Err(format!(
            "0 to {MAX_PREFIX_CHARS} characters from A-Z a-z 0-9 _ : . {{ }} -, not starting with ."
        ))
    }
}

/// A cookie `Path`: starts with `/`; nothing that could end the attribute or the header.
pub(super) fn cookie_path(raw: &str) -> Parsed<String> {
    let bad = |c: char| c == ';' || c.is_whitespace() || c.is_control();
    if raw.starts_with('/') && !raw.contains(bad) {
        Ok(raw.to_owned())
    } else {
        Err("a path starting with '/' without ';', whitespace or control characters".to_owned())
    }
}

/// A cookie `Domain`, or none when empty.
pub(super) fn cookie_domain(raw: &str) -> Parsed<Option<String>> {
    let bad = |c: char| c == ';' || c == ',' || c.is_whitespace() || c.is_control();
    if raw.is_empty() {
        Ok(None)
    } else if !raw.contains(bad) {
        Ok(Some(raw.to_owned()))
    } else {
        Err("a domain such as example.com, without whitespace, ';' or ',' (empty for none)".into())
    }
}

/// A non-empty directory path.
pub(super) fn directory(raw: &str) -> Parsed<PathBuf> {
    if raw.is_empty() {
        Err("a non-empty directory path".to_owned())
    } else {
        Ok(PathBuf::from(raw))
    }
}

/// One Redis URL, or two or more comma-separated ones for a cluster, checked as the Redis
/// store will read them (scheme, host, port, database, the same scheme and credentials on
/// every cluster node, no `#insecure`); spaces around the commas are dropped.
pub(super) fn redis_url(raw: &str) -> Parsed<String> {
    crate::store::check_redis_url(raw)
}

/// A Redis timeout: whole seconds (`1`) or a humantime duration (`250ms`), from 10 ms to 60 s.
pub(super) fn timeout(raw: &str) -> Parsed<Duration> {
    let raw = raw.trim();
    let parsed = match raw.parse::<u64>() {
        Ok(seconds) => Some(Duration::from_secs(seconds)),
        Err(_) => humantime::parse_duration(raw).ok(),
    };
    match parsed {
        Some(d) if (MIN_TIMEOUT..=MAX_TIMEOUT).contains(&d) => Ok(d),
        _ => {
            Err("a duration from 10ms to 60s, e.g. 250ms or 1s (plain numbers are seconds)".into())
        }
    }
}

/// A secret key of at least 32 bytes.
pub(super) fn secret(raw: &str) -> Parsed<SecretKey> {
    SecretKey::parse(raw)
}

/// Comma-separated secret keys, each at least 32 bytes; whitespace around an entry is dropped
/// (so `a, b` works) and empty entries are ignored.
pub(super) fn secret_list(raw: &str) -> Parsed<Vec<SecretKey>> {
    let keys = raw.split(',').map(str::trim).filter(|key| !key.is_empty());
    keys.enumerate()
        .map(|(i, key)| {
            SecretKey::parse(key).map_err(|_| {
                let (n, len) = (i + 1, key.len());
                format!("keys of at least {MIN_SECRET_BYTES} bytes each (key {n} has {len})")
            })
        })
        .collect()
}

/// Comma-separated trusted origins; whitespace around an entry is dropped and empty entries are
/// ignored, so an empty value means none.
pub(super) fn trusted_origins(raw: &str) -> Parsed<Vec<String>> {
    raw.split(',')
        .map(str::trim)
        .filter(|origin| !origin.is_empty())
        .map(|origin| check_trusted_origin(origin).map(|()| origin.to_owned()))
        .collect()
}
