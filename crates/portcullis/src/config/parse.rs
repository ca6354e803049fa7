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
/// Without the `redis` feature nothing reads the URL (a Redis store is refused at start-up), so
/// it is kept as given, trimmed.
pub(super) fn redis_url(raw: &str) -> Parsed<String> {
    #[cfg(feature = "redis")]
    return crate::store::check_redis_url(raw);
    #[cfg(not(feature = "redis"))]
    Ok(raw.trim().to_owned())
}

/// A password, or none when empty.
pub(super) fn optional_password(raw: &str) -> Parsed<Option<String>> {
    Ok((!raw.is_empty()).then(|| raw.to_owned()))
}

/// The most replicas `REDIS_WAIT_REPLICAS` may ask for: more than any deployment runs, and a
/// bound against a typo that would fail every log-out.
const MAX_WAIT_REPLICAS: u32 = 16;

/// `auto` (`None`), or a number of replicas from 0 to [`MAX_WAIT_REPLICAS`].
pub(super) fn wait_replicas(raw: &str) -> Parsed<Option<u32>> {
    let raw = raw.trim();
    if raw.eq_ignore_ascii_case("auto") {
        return Ok(None);
    }
    match raw.parse::<u32>() {
        Ok(n) if n <= MAX_WAIT_REPLICAS => Ok(Some(n)),
        _ => Err(format!(
            "`auto`, or a number of replicas from 0 to {MAX_WAIT_REPLICAS}"
        )),
    }
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

#[cfg(test)]
mod tests {
    use crate::config::test_support::*;

    #[test]
    fn a_bad_value_is_refused_in_one_line_with_setting_value_and_what_is_allowed() {
        const DURATION: &str = "a duration of at least 1 second, e.g. 300 or 5m";
        const BOOL: &str = "true or false (also 1/0, yes/no, on/off)";
        const PREFIX: &str = "0 to 64 characters from A-Z a-z 0-9 _ : . { } -, not starting with .";
        const NAME: &str = "a non-empty cookie name of letters, digits and !#$%&'*+-.^_`|~";
        const DOMAIN: &str =
            "a domain such as example.com, without whitespace, ';' or ',' (empty for none)";
        const PATH: &str = "a path starting with '/' without ';', whitespace or control characters";
        const SIZE: &str = "a whole number of bytes greater than 0, e.g. 65536";
        const REDIS_SCHEME: &str = "one URL starting with redis://, rediss://, redis+unix:// or \
                                    unix://, several comma-separated redis:// or rediss:// URLs \
                                    for a Redis Cluster, or \
                                    redis+sentinel://host:26379,host:26379/<primary name> \
                                    (rediss+sentinel:// for TLS)";
        const TIMEOUT: &str =
            "a duration from 10ms to 60s, e.g. 250ms or 1s (plain numbers are seconds)";
        let long_prefix = "p".repeat(65);
        let cases: &[(&str, &str, &str)] = &[
            ("PORTCULLIS_PROFILE", "prod", "dev or redis"),
            ("PERMANENT_SESSION_LIFETIME", "0", DURATION),
            ("PERMANENT_SESSION_LIFETIME", "abc", DURATION),
            ("PERMANENT_SESSION_LIFETIME", "-5", DURATION),
            ("PERMANENT_SESSION_LIFETIME", "500ms", DURATION),
            (
                "SESSION_ABSOLUTE_LIFETIME",
                "401d",
                "a duration of at most 400 days (the longest cookie lifetime browsers keep)",
            ),
            ("SESSION_PERMANENT", "maybe", BOOL),
            ("SESSION_REFRESH_EACH_REQUEST", "", BOOL),
            ("SESSION_TYPE", "mongodb", "filesystem, redis or memory"),
            ("SESSION_FORMAT", "django", "native or flask"),
            (
                "SESSION_MAX_PER_USER",
                "0",
                "a number of sessions from 1, e.g. 5, or none for no limit",
            ),
            (
                "SESSION_MAX_PER_USER",
                "-1",
                "a number of sessions from 1, e.g. 5, or none for no limit",
            ),
            (
                "SESSION_LIMIT_POLICY",
                "lru",
                "evict-oldest (a log-in ends the oldest session) or refuse",
            ),
            ("SESSION_KEY_PREFIX", "../x", PREFIX),
            ("SESSION_KEY_PREFIX", "a\\b", PREFIX),
            ("SESSION_KEY_PREFIX", "sess id", PREFIX),
            ("SESSION_KEY_PREFIX", &long_prefix, PREFIX),
            ("SESSION_KEY_PREFIX", ".sess:", PREFIX),
            ("SESSION_USE_SIGNER", "signed", BOOL),
            ("SESSION_FILE_DIR", "", "a non-empty directory path"),
            ("SESSION_COOKIE_NAME", "", NAME),
            ("SESSION_COOKIE_NAME", "my session", NAME),
            ("SESSION_COOKIE_NAME", "a;b", NAME),
            ("SESSION_COOKIE_NAME", "id=1", NAME),
            ("SESSION_COOKIE_NAME", "a\nSet-Cookie: x", NAME),
            ("SESSION_COOKIE_DOMAIN", "example.com;evil", DOMAIN),
            ("SESSION_COOKIE_DOMAIN", "a b", DOMAIN),
            ("SESSION_COOKIE_DOMAIN", "a,b", DOMAIN),
            ("SESSION_COOKIE_PATH", "app", PATH),
            ("SESSION_COOKIE_PATH", "/a;b", PATH),
            ("SESSION_COOKIE_SECURE", "2", BOOL),
            ("SESSION_COOKIE_HTTPONLY", "nope", BOOL),
            (
                "SESSION_COOKIE_SAMESITE",
                "strictest",
                "Strict, Lax or None",
            ),
            ("SESSION_MAX_BYTES", "0", SIZE),
            ("MAX_CONTENT_LENGTH", "1MB", SIZE),
            ("REDIS_URL", "http://localhost", REDIS_SCHEME),
            ("REDIS_URL", "redis://a:7000,http://b:7001", REDIS_SCHEME),
            (
                "REDIS_URL",
                "redis://a:7000,,redis://b:7001",
                "one URL, or several separated by single commas, without empty entries",
            ),
            (
                "REDIS_URL",
                "redis://a:7000,",
                "one URL, or several separated by single commas, without empty entries",
            ),
            (
                "REDIS_URL",
                "redis://a:7000,rediss://b:7001",
                "the same scheme, redis:// or rediss://, for every node of a cluster",
            ),
            (
                "REDIS_URL",
                "unix:///run/redis.sock,redis://b:7001",
                "a cluster's nodes as redis:// or rediss:// URLs, not Unix sockets",
            ),
            (
                "REDIS_URL",
                "redis://a:7000/1,redis://b:7001/1",
                "database 0 (or none) for a cluster's nodes: a Redis Cluster has no other",
            ),
            (
                "REDIS_URL",
                "rediss://cache:6380/#insecure",
                "no URL fragment: #insecure would turn off TLS certificate checks, which the store \
                 refuses",
            ),
            (
                "REDIS_URL",
                "redis://cache:6379/zero",
                "a URL the Redis client accepts (Invalid database number)",
            ),
            ("REDIS_CONNECT_TIMEOUT", "0", TIMEOUT),
            ("REDIS_CONNECT_TIMEOUT", "5ms", TIMEOUT),
            ("REDIS_CONNECT_TIMEOUT", "61s", TIMEOUT),
            ("REDIS_RESPONSE_TIMEOUT", "fast", TIMEOUT),
            ("REDIS_RESPONSE_TIMEOUT", "-1", TIMEOUT),
            (
                "REDIS_URL",
                "redis+sentinel://s1:26379,s2:26379",
                "the primary's name after the hosts: redis+sentinel://host:26379,host:26379/mymaster",
            ),
            (
                "REDIS_WAIT_REPLICAS",
                "one",
                "`auto`, or a number of replicas from 0 to 16",
            ),
            (
                "REDIS_WAIT_REPLICAS",
                "17",
                "`auto`, or a number of replicas from 0 to 16",
            ),
            ("WTF_CSRF_ENABLED", "enabled", BOOL),
            (
                "WTF_CSRF_TIME_LIMIT",
                "0",
                "a duration of at least 1 second, e.g. 300 or 5m, or none for no limit",
            ),
            (
                "CSRF_TRUSTED_ORIGINS",
                "https://app.example.com/",
                "origins as browsers send them, comma-separated, e.g. https://app.example.com \
                 (invalid origin \"https://app.example.com/\": path, query, and fragment are not \
                 allowed)",
            ),
        ];
        // Without the `redis` feature nothing reads REDIS_URL, so it is not checked.
        let checked = |setting: &str| cfg!(feature = "redis") || setting != "REDIS_URL";
        for &(setting, value, allowed) in cases.iter().filter(|case| checked(case.0)) {
            let err = error(&[(setting, value)]);
            let message = err.to_string();
            assert_eq!(message, format!("invalid {setting}={value:?}: {allowed}"));
            assert!(!message.contains('\n'), "one line: {message}");
            let ConfigError::Invalid {
                setting: s,
                value: v,
                ..
            } = &err
            else {
                panic!("not Invalid: {err:?}");
            };
            assert_eq!((*s, v.as_str()), (setting, value));
        }
    }

    #[test]
    fn the_documented_example_message_is_exact() {
        let err = error(&[("PERMANENT_SESSION_LIFETIME", "0")]);
        assert_eq!(
            err.to_string(),
            "invalid PERMANENT_SESSION_LIFETIME=\"0\": a duration of at least 1 second, e.g. 300 or 5m"
        );
    }

    #[test]
    fn a_short_fallback_key_is_refused_without_echoing_any_key() {
        let fallbacks = format!("{OLD_KEY},too-short-secret");
        let err = error(&[("SECRET_KEY_FALLBACKS", &fallbacks)]);
        assert_eq!(
            err.to_string(),
            "invalid SECRET_KEY_FALLBACKS=[redacted]: keys of at least 32 bytes each (key 2 has 16)"
        );
        let debug = format!("{err:?}");
        assert!(
            !debug.contains("too-short") && !debug.contains(OLD_KEY),
            "{debug}"
        );
    }

    #[test]
    fn fallback_keys_are_split_on_commas_and_empty_entries_ignored() {
        let other = "another-old-key-long-enough-000002";
        let fallbacks = format!(",{OLD_KEY},, {other} ,");
        let c = load(&keyed(&[("SECRET_KEY_FALLBACKS", &fallbacks)])).unwrap();
        let keys: Vec<&[u8]> = c
            .secret_key_fallbacks
            .iter()
            .map(SecretKey::as_bytes)
            .collect();
        assert_eq!(keys, [OLD_KEY.as_bytes(), other.as_bytes()]);
    }

    #[test]
    fn durations_accept_plain_seconds_and_human_forms() {
        let cases = [
            ("300", 300),
            ("5m", 300),
            ("1h 30m", 5400),
            (" 60 ", 60),
            ("1s", 1),
            ("400d", 400 * 86400),
        ];
        for (raw, seconds) in cases {
            let c = load(&keyed(&[
                ("PERMANENT_SESSION_LIFETIME", raw),
                ("SESSION_ABSOLUTE_LIFETIME", "400d"),
            ]))
            .unwrap();
            assert_eq!(
                c.permanent_session_lifetime,
                Duration::from_secs(seconds),
                "{raw:?}"
            );
        }
    }

    #[test]
    fn redis_timeouts_accept_milliseconds_and_plain_seconds() {
        let cases = [
            ("250ms", Duration::from_millis(250)),
            ("10ms", Duration::from_millis(10)),
            ("1", Duration::from_secs(1)),
            (" 2s ", Duration::from_secs(2)),
            ("60s", Duration::from_secs(60)),
            ("1s 500ms", Duration::from_millis(1500)),
        ];
        for (raw, expected) in cases {
            let c = load(&keyed(&[
                ("REDIS_CONNECT_TIMEOUT", raw),
                ("REDIS_RESPONSE_TIMEOUT", raw),
            ]))
            .unwrap();
            assert_eq!(c.redis_connect_timeout, expected, "{raw:?}");
            assert_eq!(c.redis_response_timeout, expected, "{raw:?}");
        }
        let c = load(&keyed(&[("REDIS_RESPONSE_TIMEOUT", "1500ms")])).unwrap();
        let value = |name: &str| {
            c.report()
                .into_iter()
                .find(|s| s.name == name)
                .unwrap()
                .value
        };
        assert_eq!(value("REDIS_RESPONSE_TIMEOUT"), "1s 500ms");
        assert_eq!(value("REDIS_CONNECT_TIMEOUT"), "250ms");
    }

    #[cfg(feature = "redis")]
    #[test]
    fn redis_url_takes_one_server_or_comma_separated_cluster_nodes() {
        let accepted = [
            ("redis://127.0.0.1:6379", "redis://127.0.0.1:6379"),
            (
                "rediss://user:pw@cache.example:6380/2",
                "rediss://user:pw@cache.example:6380/2",
            ),
            (
                "redis+unix:///run/redis.sock?db=1",
                "redis+unix:///run/redis.sock?db=1",
            ),
            ("unix:///run/redis.sock", "unix:///run/redis.sock"),
            ("redis://[::1]:6379", "redis://[::1]:6379"),
            (
                "redis://10.0.0.1:7000, redis://10.0.0.2:7001 ,redis://10.0.0.3:7002",
                "redis://10.0.0.1:7000,redis://10.0.0.2:7001,redis://10.0.0.3:7002",
            ),
            (
                "rediss://:pw@a.example:7000,rediss://:pw@b.example:7001/0",
                "rediss://:pw@a.example:7000,rediss://:pw@b.example:7001/0",
            ),
            (
                "redis+sentinel://app:pw@s1:26379,s2,s3:26380/mymaster",
                "redis+sentinel://app:pw@s1:26379,s2,s3:26380/mymaster",
            ),
            (
                "rediss+sentinel://s1.example/cache",
                "rediss+sentinel://s1.example/cache",
            ),
        ];
        for (raw, normalised) in accepted {
            let c = load(&keyed(&[("REDIS_URL", raw)])).unwrap();
            assert_eq!(c.redis_url, normalised);
        }
    }

    #[test]
    fn the_sentinel_password_is_never_shown_and_wait_replicas_is_auto_by_default() {
        let c = load(&keyed(&[])).unwrap();
        assert_eq!(
            (c.redis_sentinel_password.as_deref(), c.redis_wait_replicas),
            (None, None)
        );
        let c = load(&keyed(&[
            ("REDIS_SENTINEL_PASSWORD", "sentinel-secret"),
            ("REDIS_WAIT_REPLICAS", "2"),
        ]))
        .unwrap();
        assert_eq!(
            c.redis_sentinel_password.as_deref(),
            Some("sentinel-secret")
        );
        assert_eq!(c.redis_wait_replicas, Some(2));
        let report = format!("{:?}", c.report());
        assert!(!report.contains("sentinel-secret"), "{report}");
        let c = load(&keyed(&[("REDIS_WAIT_REPLICAS", "AUTO")])).unwrap();
        assert_eq!(c.redis_wait_replicas, None);
    }

    #[cfg(feature = "redis")]
    #[test]
    fn cluster_nodes_with_different_credentials_are_refused_without_echoing_them() {
        let err = error(&[(
            "REDIS_URL",
            "redis://:first-pw@a:7000,redis://:second-pw@b:7001",
        )]);
        let ConfigError::Invalid { value, allowed, .. } = &err else {
            panic!("not Invalid: {err:?}");
        };
        assert_eq!(
            value,
            "redis://:[redacted]@a:7000,redis://:[redacted]@b:7001"
        );
        assert!(
            allowed.starts_with("a URL the Redis client accepts ("),
            "{allowed}"
        );
        let shown = format!("{err} {err:?}");
        assert!(
            !shown.contains("first-pw") && !shown.contains("second-pw"),
            "{shown}"
        );
    }

    #[test]
    fn csrf_time_limit_none_means_no_limit_and_zero_is_refused() {
        for raw in ["none", "None", "NONE"] {
            let c = load(&keyed(&[("WTF_CSRF_TIME_LIMIT", raw)])).unwrap();
            assert_eq!(c.wtf_csrf_time_limit, None, "{raw:?}");
        }
        let c = load(&keyed(&[("WTF_CSRF_TIME_LIMIT", "2h")])).unwrap();
        assert_eq!(c.wtf_csrf_time_limit, Some(Duration::from_secs(7200)));
        assert!(matches!(
            error(&[("WTF_CSRF_TIME_LIMIT", "0")]),
            ConfigError::Invalid {
                setting: "WTF_CSRF_TIME_LIMIT",
                ..
            }
        ));
    }

    #[test]
    fn csrf_trusted_origins_are_a_comma_separated_list_of_exact_origins() {
        let c = load(&keyed(&[(
            "CSRF_TRUSTED_ORIGINS",
            " https://app.example.com, http://localhost:8080,,",
        )]))
        .unwrap();
        assert_eq!(
            c.csrf_trusted_origins,
            ["https://app.example.com", "http://localhost:8080"]
        );
        assert_eq!(c.source("CSRF_TRUSTED_ORIGINS"), Source::Environment);
        let report = c.report();
        let reported = report
            .iter()
            .find(|s| s.name == "CSRF_TRUSTED_ORIGINS")
            .unwrap();
        assert_eq!(
            reported.value,
            "https://app.example.com,http://localhost:8080"
        );
        let empty = load(&keyed(&[("CSRF_TRUSTED_ORIGINS", "")])).unwrap();
        assert!(empty.csrf_trusted_origins.is_empty());
    }

    #[test]
    fn a_trusted_origin_a_browser_never_sends_stops_start_up_naming_it() {
        // (value, what the message says about the bad entry)
        let cases = [
            (
                "https://ok.example.com,app.example.com",
                "scheme must be http or https",
            ),
            ("ftp://files.example.com", "scheme must be http or https"),
            (
                "https://app.example.com/path",
                "path, query, and fragment are not allowed",
            ),
            (
                "https://app.example.com#x",
                "path, query, and fragment are not allowed",
            ),
            ("https://App.example.com", "must be lower case"),
            ("HTTPS://app.example.com", "must be lower case"),
            ("https://user@app.example.com", "must not hold user info"),
            (
                "https://app.example.com:443",
                "must leave out the default port",
            ),
            (
                "http://app.example.com:80",
                "must leave out the default port",
            ),
            ("https://bücher.example", "punycode"),
        ];
        for (value, problem) in cases {
            let err = error(&[("CSRF_TRUSTED_ORIGINS", value)]);
            let message = err.to_string();
            assert!(
                message.starts_with(&format!(
                    "invalid CSRF_TRUSTED_ORIGINS={value:?}: origins as"
                )),
                "{message}"
            );
            assert!(message.contains(problem), "{message}");
            assert!(!message.contains('\n'), "one line: {message}");
        }
    }

    #[test]
    fn booleans_accept_python_and_shell_spellings() {
        let cases = [
            ("True", true),
            ("true", true),
            ("1", true),
            ("YES", true),
            ("on", true),
            ("False", false),
            ("0", false),
            ("no", false),
            ("OFF", false),
        ];
        for (raw, expected) in cases {
            let c = load(&keyed(&[("SESSION_REFRESH_EACH_REQUEST", raw)])).unwrap();
            assert_eq!(c.session_refresh_each_request, expected, "{raw:?}");
        }
    }

    #[test]
    fn keywords_ignore_case_and_empty_domain_means_none() {
        let c = load(&keyed(&[
            ("PORTCULLIS_PROFILE", "REDIS"),
            ("SESSION_TYPE", "Memory"),
            ("SESSION_COOKIE_SAMESITE", "strict"),
            ("SESSION_COOKIE_DOMAIN", ""),
        ]))
        .unwrap();
        assert_eq!(c.profile, Profile::Redis);
        assert_eq!(c.session_type, StoreKind::Memory);
        assert_eq!(c.session_cookie_samesite, SameSite::Strict);
        assert_eq!(c.session_cookie_domain, None);
        let c = load(&keyed(&[("SESSION_COOKIE_DOMAIN", "example.com")])).unwrap();
        assert_eq!(c.session_cookie_domain.as_deref(), Some("example.com"));
    }

    #[cfg(all(feature = "redis", feature = "flask"))]
    #[test]
    fn the_session_limit_is_fifty_by_default_and_needs_the_native_format() {
        let c = load(&keyed(&[])).unwrap();
        assert_eq!(
            c.session_max_per_user.map(std::num::NonZeroUsize::get),
            Some(50)
        );
        assert_eq!(
            c.session_limit_policy,
            crate::store::LimitPolicy::EvictOldest
        );
        let c = load(&keyed(&[
            ("SESSION_MAX_PER_USER", " 5"),
            ("SESSION_LIMIT_POLICY", "Refuse"),
        ]))
        .unwrap();
        assert_eq!(
            c.session_max_per_user.map(std::num::NonZeroUsize::get),
            Some(5)
        );
        assert_eq!(c.session_limit_policy, crate::store::LimitPolicy::Refuse);
        let report = c.report();
        let shown = |name: &str| {
            report
                .iter()
                .find(|s| s.name == name)
                .unwrap()
                .value
                .clone()
        };
        assert_eq!(shown("SESSION_MAX_PER_USER"), "5");
        assert_eq!(shown("SESSION_LIMIT_POLICY"), "refuse");
        assert_eq!(
            load(&keyed(&[("SESSION_MAX_PER_USER", "NONE")]))
                .unwrap()
                .session_max_per_user,
            None
        );
        let mut pairs = FLASK.to_vec();
        pairs.push(("SECRET_KEY", "a Flask app's key"));
        // The default cap is the native format's: the Flask format loads with it, uncapped.
        assert!(load(&pairs).is_ok());
        pairs.push(("SESSION_MAX_PER_USER", "3"));
        let err = load(&pairs).unwrap_err();
        assert!(
            err.to_string()
                .starts_with("SESSION_MAX_PER_USER=3 requires SESSION_FORMAT=native"),
            "{err}"
        );
    }
}
