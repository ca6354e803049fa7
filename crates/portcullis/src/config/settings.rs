//! Every setting of the library, declared once: its environment name, field, type, default per
//! profile, parser, printer, what it accepts and what it is for (see [`settings!`](crate::settings)).
//! The order is the report's, the reference table's and the reader's.

use std::num::NonZeroUsize;
use std::path::PathBuf;
use std::time::Duration;

use super::parse::{
    boolean, cookie_domain, cookie_name, cookie_path, directory, duration, key_prefix, keyword,
    limit_policy, optional_duration, optional_password, redis_url, secret_list, session_limit,
    size, timeout, trusted_origins, wait_replicas,
};
use super::{Profile, SameSite, SecretKey, SessionFormat, StoreKind, show};
use crate::csrf::CsrfLayer;
use crate::redact::{REDACTED, redact_url_password};
use crate::session::SessionLayer;
use crate::store::{LimitPolicy, RedisTimeouts, SessionLimit};

crate::settings! {
    /// The validated configuration. Fields are public so that tests and embedding applications
    /// can adjust a loaded configuration; [`Config::load`] is the way to build one.
    #[derive(Clone)]
    pub struct Config {
        /// which defaults apply
        ///
        /// Read first (`--profile` beats it): every other default depends on it.
        "PORTCULLIS_PROFILE" => profile: Profile {
            default: Profile::Dev, redis: Profile::Redis;
            show: show::display;
            accepts: "`dev`, `redis`";
        }
        /// the root of every key: cookie signatures, record encryption, CSRF tokens. At least 32
        /// bytes; a shorter key is refused, since a guessable key lets anyone forge cookies (with
        /// `SESSION_FORMAT=flask`, the Flask app's key is taken whatever its length, with a
        /// warning)
        ///
        /// The current key: it signs and seals everything new. Read by hand, after
        /// `SESSION_FORMAT`: required on `redis`; on `dev`, generated when unset or empty.
        "SECRET_KEY" => secret_key: SecretKey {
            default: SecretKey::any_length(String::new());
            show: |_| REDACTED.to_owned();
            shown_default: "generated once into `.portcullis/secret-key` (0600)", "**required**";
            accepts: "at least 32 bytes (any length, with a warning, when `SESSION_FORMAT=flask`)";
        }
        /// old keys (comma-separated) that still verify cookies and open records, so a key
        /// rotation logs nobody out; drop one after an absolute lifetime
        "SECRET_KEY_FALLBACKS" => secret_key_fallbacks: Vec<SecretKey> {
            default: Vec::new();
            parse: secret_list;
            show: |keys| vec![REDACTED; keys.len()].join(",");
            accepts: "old keys, comma-separated, each at least 32 bytes";
        }
        /// the **idle** lifetime: a session unused this long is gone and the user logs in
        /// again. Limits how long a forgotten or stolen session stays useful
        "PERMANENT_SESSION_LIFETIME" => permanent_session_lifetime: Duration {
            default: SessionLayer::DEFAULT_IDLE_LIFETIME;
            parse: duration;
            show: show::duration;
            accepts: "seconds or `5m`, `1h 30m`; 1 s to 400 days";
        }
        /// a session ends this long after login however active it is (OWASP's absolute
        /// timeout); at least the idle lifetime
        "SESSION_ABSOLUTE_LIFETIME" => session_absolute_lifetime: Duration {
            default: SessionLayer::DEFAULT_ABSOLUTE_LIFETIME;
            parse: duration;
            show: show::duration;
            accepts: "a duration, at least the idle lifetime";
        }
        /// `true`: the cookie carries `Max-Age`/`Expires` and slides with each request;
        /// `false`: a browser-session cookie. Server-side expiry applies either way
        "SESSION_PERMANENT" => session_permanent: bool {
            // The seed turns it on for Redis, "when the site goes live".
            default: SessionLayer::DEFAULT_PERMANENT, redis: true;
            parse: boolean;
            show: show::display;
            accepts: "`true`/`false`, `1`/`0`, `yes`/`no`, `on`/`off`";
        }
        /// each request slides the idle expiry (one store operation, no rewrite); `false`: idle
        /// time counts from the last change, as in Flask
        "SESSION_REFRESH_EACH_REQUEST" => session_refresh_each_request: bool {
            default: SessionLayer::DEFAULT_REFRESH_EACH_REQUEST;
            parse: boolean;
            show: show::display;
            accepts: "a boolean";
        }
        /// the store: `filesystem`, `redis`, `memory` (tests; lost on restart)
        "SESSION_TYPE" => session_type: StoreKind {
            default: StoreKind::Filesystem, redis: StoreKind::Redis;
            parse: keyword;
            show: show::display;
            accepts: "`filesystem`, `redis`, `memory`";
        }
        /// how cookies, store keys, records and CSRF tokens look: `native`, or `flask` to share
        /// sessions with a Flask app (see [Migrating from Flask](#migrating-from-flask));
        /// `flask` needs a store the Flask app shares, `SESSION_TYPE=redis` (`memory` in
        /// tests): the file store is refused
        ///
        /// Read by hand, before `SECRET_KEY`: the Flask format takes the Flask app's key,
        /// whatever its length.
        "SESSION_FORMAT" => session_format: SessionFormat {
            default: SessionFormat::Native;
            show: show::display;
            accepts: "`native`, `flask`";
        }
        /// put before the hashed id in store keys (the raw sid with `SESSION_FORMAT=flask`), so
        /// other data in the same Redis never collides
        "SESSION_KEY_PREFIX" => session_key_prefix: String {
            default: SessionLayer::DEFAULT_KEY_PREFIX.to_owned();
            parse: key_prefix;
            show: String::clone;
            accepts: "0 to 64 of `A-Z a-z 0-9 _ : . { } -`";
        }
        /// sign the session-id cookie (HMAC-SHA256 over name and id), so a forged or altered
        /// cookie never reaches the store
        "SESSION_USE_SIGNER" => session_use_signer: bool {
            // On in every profile, unlike the seed, which signs only on Redis.
            default: SessionLayer::DEFAULT_USE_SIGNER;
            parse: boolean;
            show: show::display;
            accepts: "a boolean";
        }
        /// where the file store keeps sessions (folder 0700, files 0600)
        "SESSION_FILE_DIR" => session_file_dir: PathBuf {
            // Flask-Session's folder, so a Flask app's `.env` carries over.
            default: PathBuf::from("./.flask_session");
            parse: directory;
            show: |dir| dir.display().to_string();
            accepts: "a directory";
        }
        /// the cookie's exact name. Unset: `__Host-session` on `redis` with Secure on (pinned to
        /// this host, so a sibling subdomain cannot plant one), `__Secure-session` there with a
        /// Domain or a Path other than `/`, else `session` (dev, Secure off, the flask format)
        "SESSION_COOKIE_NAME" => session_cookie_name: String {
            default: SessionLayer::DEFAULT_COOKIE_NAME.to_owned(), redis: "__Host-session".to_owned();
            parse: cookie_name;
            show: String::clone;
            accepts: "RFC 6265 token characters";
        }
        /// share the cookie with subdomains; none keeps it to this host
        "SESSION_COOKIE_DOMAIN" => session_cookie_domain: Option<String> {
            default: None;
            parse: cookie_domain;
            show: |domain| domain.clone().unwrap_or_default();
            accepts: "a domain; empty for none";
        }
        /// the cookie's path
        "SESSION_COOKIE_PATH" => session_cookie_path: String {
            default: SessionLayer::DEFAULT_COOKIE_PATH.to_owned();
            parse: cookie_path;
            show: String::clone;
            accepts: "starts with `/`";
        }
        /// send the cookie over HTTPS only, so it never crosses the network in clear; off in dev
        /// for plain HTTP on localhost
        "SESSION_COOKIE_SECURE" => session_cookie_secure: bool {
            default: false, redis: SessionLayer::DEFAULT_SECURE;
            parse: boolean;
            show: show::display;
            accepts: "a boolean";
        }
        /// hide the cookie from JavaScript, so an injected script cannot read the session id
        "SESSION_COOKIE_HTTPONLY" => session_cookie_httponly: bool {
            default: SessionLayer::DEFAULT_HTTP_ONLY;
            parse: boolean;
            show: show::display;
            accepts: "a boolean";
        }
        /// browsers leave the cookie off cross-site POSTs (CSRF) but keep it on top-level
        /// navigation; `None` needs `Secure`
        "SESSION_COOKIE_SAMESITE" => session_cookie_samesite: SameSite {
            default: SessionLayer::DEFAULT_SAME_SITE;
            parse: keyword;
            show: show::display;
            accepts: "`Strict`, `Lax`, `None` (any case)";
        }
        /// the largest session; larger writes are refused, so a client cannot grow a session
        /// without bound
        ///
        /// Counted in bytes of the data's MessagePack encoding; the sealed record adds a fixed
        /// overhead of about 100 bytes.
        "SESSION_MAX_BYTES" => session_max_bytes: usize {
            default: SessionLayer::DEFAULT_MAX_BYTES;
            parse: size;
            show: show::display;
            accepts: "bytes, more than 0";
        }
        /// the most live sessions one user may have (a number from 1), or `none`: bounds how
        /// many devices a stolen password can keep logged in, and what one account can make the
        /// store hold. Native format only (the Flask format keeps no index and no cap)
        "SESSION_MAX_PER_USER" => session_max_per_user: Option<NonZeroUsize> {
            // 50: no person has more devices, and one account cannot fill the store or make
            // its index scripts long (review finding 2).
            default: SessionLimit::default().max;
            parse: session_limit;
            show: |max| max.map_or_else(|| "none".to_owned(), |max| max.to_string());
            accepts: "a number from 1, or `none` for no limit";
        }
        /// at `SESSION_MAX_PER_USER`, a log-in ends the user's oldest session (`evict-oldest`: a
        /// person who lost a device can still log in), or is refused with 409 and a page saying
        /// so (`refuse`)
        "SESSION_LIMIT_POLICY" => session_limit_policy: LimitPolicy {
            default: SessionLimit::default().policy;
            parse: limit_policy;
            show: |policy| match policy {
                LimitPolicy::EvictOldest => "evict-oldest".to_owned(),
                LimitPolicy::Refuse => "refuse".to_owned(),
            };
            accepts: "`evict-oldest`, `refuse`";
        }
        /// the Redis server (`rediss://` for TLS, certificates checked;
        /// `redis://user:password@host:6379/0`, the password redacted everywhere), 2+
        /// comma-separated URLs of a Redis Cluster's nodes (`redis://a:7000,redis://b:7001`),
        /// or the sentinels of a primary (`redis+sentinel://user:password@s1:26379,s2/mymaster`)
        "REDIS_URL" => redis_url: String {
            // Redis's own default address.
            default: "redis://127.0.0.1:6379".to_owned();
            parse: redis_url;
            show: |url| redact_url_password(url);
            accepts: "one `redis://`, `rediss://` (TLS), `redis+unix://` or `unix://` URL; 2+ \
                      comma-separated `redis://`/`rediss://` URLs: a cluster; or \
                      `redis+sentinel://` (`rediss+sentinel://`: TLS) with the sentinels' \
                      comma-separated hosts and `/<primary name>`";
        }
        /// the longest wait for a Redis connection (10 ms to 60 s); while Redis is down,
        /// requests that need a session get their 503 this fast
        "REDIS_CONNECT_TIMEOUT" => redis_connect_timeout: Duration {
            default: RedisTimeouts::DEFAULT_CONNECT;
            parse: timeout;
            show: show::duration;
            accepts: "a duration from 10 ms to 60 s (`250ms`, `1s`; plain numbers are seconds)";
        }
        /// the longest wait for one Redis reply (10 ms to 60 s)
        "REDIS_RESPONSE_TIMEOUT" => redis_response_timeout: Duration {
            default: RedisTimeouts::DEFAULT_RESPONSE;
            parse: timeout;
            show: show::duration;
            accepts: "a duration from 10 ms to 60 s";
        }
        /// a save uses the server's native compare-and-set (`SET … IFEQ`, Valkey 8.1+ and
        /// Redis 8.4+) where the server has it, else the Lua script; `false` keeps the script
        "REDIS_NATIVE_CAS" => redis_native_cas: bool {
            default: true;
            parse: boolean;
            show: show::display;
            accepts: "a boolean";
        }
        /// the sentinels' password, when it is not the one in a `redis+sentinel://` `REDIS_URL`
        /// (which is the primary's); never shown
        "REDIS_SENTINEL_PASSWORD" => redis_sentinel_password: Option<String> {
            default: None;
            parse: optional_password;
            show: |password| password.as_ref().map_or_else(String::new, |_| REDACTED.to_owned());
            accepts: "a password; unset or empty: the one in `REDIS_URL`";
        }
        /// how many replicas must have a delete that ends a session (log-out, ending a device
        /// or the others, a password change or reset) before it is answered (`WAIT`), so that
        /// a failover cannot bring the session back; too few within four fifths of
        /// `REDIS_RESPONSE_TIMEOUT` and it fails with 503. `auto`: 1 behind Sentinel, else 0
        "REDIS_WAIT_REPLICAS" => redis_wait_replicas: Option<u32> {
            default: None;
            parse: wait_replicas;
            show: |replicas| replicas.map_or_else(|| "auto".to_owned(), |n| n.to_string());
            accepts: "`auto`, or a number of replicas from 0 to 16 (not applied on a cluster)";
        }
        /// CSRF tokens on every form and unsafe request
        "WTF_CSRF_ENABLED" => wtf_csrf_enabled: bool {
            default: CsrfLayer::DEFAULT_ENABLED;
            parse: boolean;
            show: show::display;
            accepts: "a boolean";
        }
        /// how long a CSRF token is valid; `none` for the session's life
        "WTF_CSRF_TIME_LIMIT" => wtf_csrf_time_limit: Option<Duration> {
            default: Some(CsrfLayer::DEFAULT_TIME_LIMIT);
            parse: optional_duration;
            show: |limit| limit.as_ref().map_or_else(|| "none".to_owned(), show::duration);
            accepts: "a duration, or `none` for no limit";
        }
        /// other origins (exact `https://host[:port]`, comma-separated) whose unsafe requests
        /// pass the origin check; they still need a token
        "CSRF_TRUSTED_ORIGINS" => csrf_trusted_origins: Vec<String> {
            default: Vec::new();
            parse: trusted_origins;
            show: |origins| origins.join(",");
            accepts: "origins as browsers send them, comma-separated, e.g. \
                      `https://app.example.com`";
        }
        /// the largest request body read for a CSRF token (413 beyond)
        "MAX_CONTENT_LENGTH" => max_content_length: usize {
            default: CsrfLayer::DEFAULT_MAX_BODY;
            parse: size;
            show: show::display;
            accepts: "bytes, more than 0";
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::config::test_support::*;

    #[test]
    fn report_lists_every_setting_once_with_secrets_redacted() {
        let fallbacks = format!("{OLD_KEY},{OLD_KEY}2");
        let c = load(&keyed(&[
            ("SECRET_KEY_FALLBACKS", &fallbacks),
            ("REDIS_URL", "redis://app:s3cret-pw@cache:6379/0"),
        ]))
        .unwrap();
        let report = c.report();
        let names: Vec<&str> = report.iter().map(|s| s.name).collect();
        let mut unique = names.clone();
        unique.sort_unstable();
        unique.dedup();
        assert_eq!(unique.len(), names.len(), "no setting twice");
        let mut recorded: Vec<&str> = c.sources.keys().copied().collect();
        recorded.sort_unstable();
        assert_eq!(
            unique, recorded,
            "every setting read is reported, and nothing else"
        );

        let value = |name: &str| {
            report
                .iter()
                .find(|s| s.name == name)
                .unwrap()
                .value
                .clone()
        };
        assert_eq!(value("SECRET_KEY"), "[redacted]");
        assert_eq!(value("SECRET_KEY_FALLBACKS"), "[redacted],[redacted]");
        assert_eq!(value("REDIS_URL"), "redis://app:[redacted]@cache:6379/0");
        assert_eq!(value("PERMANENT_SESSION_LIFETIME"), "5m");
        assert_eq!(value("WTF_CSRF_TIME_LIMIT"), "1h");
        assert_eq!(value("SESSION_COOKIE_DOMAIN"), "");
        for text in [format!("{report:?}"), format!("{c:?}")] {
            assert!(
                !text.contains(KEY) && !text.contains(OLD_KEY) && !text.contains("s3cret"),
                "{text}"
            );
        }
    }

    #[test]
    fn report_gives_each_value_its_source() {
        let dir = tempdir().unwrap();
        let file = dotenv(&dir, "SESSION_COOKIE_PATH=/app\n");
        let c = loader(&dir, &[("SESSION_COOKIE_NAME", "sid")])
            .dotenv_file(file)
            .profile(Profile::Dev)
            .load()
            .unwrap();
        let report = c.report();
        let source = |name: &str| report.iter().find(|s| s.name == name).unwrap().source;
        assert_eq!(source("SESSION_COOKIE_NAME"), Source::Environment);
        assert_eq!(source("SESSION_COOKIE_PATH"), Source::DotEnv);
        assert_eq!(source("PORTCULLIS_PROFILE"), Source::CommandLine);
        assert_eq!(source("SECRET_KEY"), Source::Generated);
        assert_eq!(source("REDIS_URL"), Source::Default);
        assert_eq!(c.source("NOT_A_SETTING"), Source::Default);
    }

    #[test]
    fn every_password_of_a_redis_url_list_is_redacted_in_the_report() {
        let (raw, shown) = (
            "redis://app:pw1@a:7000,redis://app:pw1@b:7001/0",
            "redis://app:[redacted]@a:7000,redis://app:[redacted]@b:7001/0",
        );
        let c = load(&keyed(&[("REDIS_URL", raw)])).unwrap();
        let report = format!("{:?} {c:?}", c.report());
        assert!(report.contains(shown), "{report}");
        assert!(!report.contains("pw1"), "{report}");
    }

    #[test]
    fn the_reference_lists_every_reported_setting_in_order() {
        let c = load(&keyed(&[])).unwrap();
        let reported: Vec<&str> = c.report().iter().map(|s| s.name).collect();
        let documented: Vec<&str> = Config::reference().iter().map(|r| r.name).collect();
        assert_eq!(documented, reported);
    }

    #[cfg(feature = "redis")]
    #[test]
    fn the_reference_shows_the_defaults_a_fresh_load_reports() {
        for profile in ["dev", "redis"] {
            let c = load(&keyed(&[("PORTCULLIS_PROFILE", profile)])).unwrap();
            for (row, setting) in Config::reference().iter().zip(c.report()) {
                if setting.name == "SECRET_KEY" {
                    continue;
                }
                let cell = match profile {
                    "dev" => &row.dev_default,
                    _ => &row.redis_default,
                };
                let expected = if setting.value.is_empty() {
                    "none".to_owned()
                } else {
                    format!("`{}`", setting.value)
                };
                assert_eq!(*cell, expected, "{profile} {}", setting.name);
            }
        }
        let key = &Config::reference()[1];
        assert_eq!(key.name, "SECRET_KEY");
        assert_eq!(key.redis_default, "**required**");
    }
}
