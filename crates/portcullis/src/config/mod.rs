//! Configuration: profiles, the environment and `.env`, validation.
//!
//! [`Config::load`] reads every setting from, highest precedence first, the command line
//! (`--profile`, `--bind`, given to [`ConfigLoader`]), the process environment, the `.env`
//! file, and the profile's default. It refuses a bad value at start-up with one line naming
//! the setting, the value and what is allowed, and refuses combinations that browsers would
//! reject or that would expose the `dev` profile. [`Config::report`] lists every value with its
//! [`Source`]; [`Config::warnings`] lists what is legal but risky in production.
//!
//! Settings keep their Flask names, so a Flask app's `.env` carries over:
//!
//! | Setting | Default (`dev` / `redis`) | Accepts |
//! |---|---|---|
//! | `PORTCULLIS_PROFILE` | `dev` | `dev`, `redis` |
//! | `SECRET_KEY` | generated into `.portcullis/secret-key` / **required** | at least 32 bytes (any length, with a warning, when `SESSION_FORMAT=flask`) |
//! | `SECRET_KEY_FALLBACKS` | none | old keys, comma-separated, each at least 32 bytes |
//! | `PERMANENT_SESSION_LIFETIME` | `300` (idle) | seconds or `5m`, `1h 30m`; 1 s to 400 days |
//! | `SESSION_ABSOLUTE_LIFETIME` | `8h` | a duration, at least the idle lifetime |
//! | `SESSION_PERMANENT` | `false` / `true` | `true`/`false`, `1`/`0`, `yes`/`no`, `on`/`off` |
//! | `SESSION_REFRESH_EACH_REQUEST` | `true` | boolean |
//! | `SESSION_TYPE` | `filesystem` / `redis` | `filesystem`, `redis`, `memory` |
//! | `SESSION_FORMAT` | `native` | `native`, `flask` (share sessions with a Flask app; needs `redis` or `memory`) |
//! | `SESSION_KEY_PREFIX` | `sess:` | 0 to 64 of `A-Z a-z 0-9 _ : . { } -` |
//! | `SESSION_USE_SIGNER` | `true` | boolean |
//! | `SESSION_FILE_DIR` | `./.flask_session` | a directory |
//! | `SESSION_COOKIE_NAME` | `session` | RFC 6265 token characters |
//! | `SESSION_COOKIE_DOMAIN` | none | a domain; empty for none |
//! | `SESSION_COOKIE_PATH` | `/` | starts with `/` |
//! | `SESSION_COOKIE_SECURE` | `false` / `true` | boolean |
//! | `SESSION_COOKIE_HTTPONLY` | `true` | boolean |
//! | `SESSION_COOKIE_SAMESITE` | `Lax` | `Strict`, `Lax`, `None` (any case) |
//! | `SESSION_MAX_BYTES` | `65536` | bytes, more than 0 |
//! | `SESSION_MAX_PER_USER` | `none` | live sessions per user: a number from 1, or `none` (`0`) for no limit |
//! | `SESSION_LIMIT_POLICY` | `evict-oldest` | at the limit, a log-in ends the user's oldest session (`evict-oldest`) or is refused (`refuse`) |
//! | `REDIS_URL` | `redis://127.0.0.1:6379` | one `redis://`, `rediss://` (TLS), `redis+unix://` or `unix://` URL; or 2+ comma-separated `redis://`/`rediss://` URLs: a cluster |
//! | `REDIS_CONNECT_TIMEOUT` | `250ms` | a duration from 10 ms to 60 s (`250ms`, `1s`; plain numbers are seconds) |
//! | `REDIS_RESPONSE_TIMEOUT` | `250ms` | a duration from 10 ms to 60 s |
//! | `WTF_CSRF_ENABLED` | `true` | boolean |
//! | `WTF_CSRF_TIME_LIMIT` | `3600` | a duration, or `none` for no limit |
//! | `CSRF_TRUSTED_ORIGINS` | none | origins as browsers send them, comma-separated, e.g. `https://app.example.com` |
//! | `MAX_CONTENT_LENGTH` | `1048576` | bytes, more than 0 |
//! | `PORTCULLIS_BIND` | `127.0.0.1:8000` | an IP address and port |
//! | `PORTCULLIS_ALLOW_DEV_PROFILE` | `false` | boolean: lets `dev` listen beyond loopback |
//! | `DATABASE_URL` | `sqlite://portcullis.db` | a `sqlite:` URL: the site's accounts |
//! | `LOGIN_RATE_LIMIT` | `10/3m` | failed log-ins allowed per user name and per client, per window |
//! | `TRUSTED_PROXIES` | none | proxy IP addresses, comma-separated, whose `X-Forwarded-For` is believed |
//!
//! Rules between settings: `SameSite=None` and the `__Secure-` cookie-name prefix need
//! `Secure`; `__Host-` needs `Secure`, path `/` and no domain; the absolute lifetime is at least
//! the idle one; `dev` listens only on loopback unless `PORTCULLIS_ALLOW_DEV_PROFILE=true`;
//! `SESSION_FORMAT=flask` needs a store the Flask app can share, so not `filesystem`.
//!
//! `SESSION_FORMAT=flask` makes Portcullis read and write the very sessions of a Flask app
//! (Flask-Session 0.8 with `SESSION_TYPE="redis"`, Flask-WTF 1.3) that uses the same
//! `SECRET_KEY`, Redis, `SESSION_KEY_PREFIX`, `SESSION_USE_SIGNER` and `SESSION_COOKIE_NAME`.
//! The Flask app defines the key, so a `SECRET_KEY` shorter than 32 bytes is accepted then, with
//! a warning. [`Config::warnings`] lists what the format gives up (see the crate docs,
//! "Formats").
//!
//! `CSRF_TRUSTED_ORIGINS` lets an unsafe request whose `Origin` header is byte for byte one of
//! these origins pass the CSRF origin check even when `Sec-Fetch-Site` says `cross-site` or
//! `same-site`; it still needs a valid CSRF token. Nothing else changes: a request with neither
//! `Sec-Fetch-Site` nor `Origin` passes the origin check without any trusted origin (it is not
//! from a browser) and is left to the token check. Each entry must be written as a browser
//! sends it (`https://app.example.com`: scheme, lower-case host, a port only if not the
//! default, no path); anything else stops start-up, since it would never match.
//!
//! `REDIS_URL` may carry a user and password (`redis://user:password@host:6379/0`), shown as
//! `[redacted]` in reports, errors and logs; reserved characters in the password are
//! percent-encoded. Several comma-separated URLs name the seed nodes of a Redis Cluster
//! (`redis://10.0.0.1:7000,redis://10.0.0.2:7001`), all with the same scheme and credentials;
//! see [`crate::store::RedisStore`].
//!
//! An empty `SECRET_KEY` counts as unset (a `.env` copied from a template often has
//! `SECRET_KEY=`). `.env` values may use `${VAR}` substitution, which dotenvy resolves against
//! the process environment; quote a value in single quotes to keep a `$` literal.
//!
//! ```
//! use portcullis::config::{Config, ConfigLoader, Profile, Source};
//!
//! let state = tempfile::tempdir()?;
//! let config = ConfigLoader::new()
//!     .env([("PERMANENT_SESSION_LIFETIME".to_owned(), "10m".to_owned())])
//!     .no_dotenv()
//!     .state_dir(state.path())
//!     .load()?;
//! assert_eq!(config.profile, Profile::Dev);
//! assert_eq!(config.permanent_session_lifetime.as_secs(), 600);
//! assert_eq!(config.source("SECRET_KEY"), Source::Generated);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod apply;
mod error;
mod loader;
mod parse;
mod report;
mod rules;
mod secret;
mod source;
#[cfg(test)]
mod tests;
mod values;

pub use crate::session::SameSite;
pub use error::ConfigError;
pub use loader::ConfigLoader;
pub use secret::SecretKey;
pub use values::{Profile, RateLimit, SessionFormat, Source, StoreKind};

use std::collections::HashMap;
use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

/// The validated configuration. Fields are public so that tests and embedding applications can
/// adjust a loaded configuration; [`Config::load`] is the way to build one.
#[derive(Clone)]
pub struct Config {
    /// The profile the defaults came from (`PORTCULLIS_PROFILE`, `--profile`).
    pub profile: Profile,
    /// The current key: signs and seals everything new (`SECRET_KEY`).
    pub secret_key: SecretKey,
    /// Old keys that still verify and open (`SECRET_KEY_FALLBACKS`).
    pub secret_key_fallbacks: Vec<SecretKey>,
    /// The idle lifetime: a session unused this long expires (`PERMANENT_SESSION_LIFETIME`).
    pub permanent_session_lifetime: Duration,
    /// The absolute lifetime: a session expires this long after login, however active
    /// (`SESSION_ABSOLUTE_LIFETIME`).
    pub session_absolute_lifetime: Duration,
    /// New sessions get a cookie with an expiry (`SESSION_PERMANENT`).
    pub session_permanent: bool,
    /// Re-send a permanent session's cookie on every response, sliding its expiry
    /// (`SESSION_REFRESH_EACH_REQUEST`).
    pub session_refresh_each_request: bool,
    /// Where sessions are stored (`SESSION_TYPE`).
    pub session_type: StoreKind,
    /// How sessions look to other programs: native, or shared with a Flask app
    /// (`SESSION_FORMAT`).
    pub session_format: SessionFormat,
    /// Prefix of every store key (`SESSION_KEY_PREFIX`).
    pub session_key_prefix: String,
    /// Sign the session cookie (`SESSION_USE_SIGNER`).
    pub session_use_signer: bool,
    /// The file store's directory (`SESSION_FILE_DIR`).
    pub session_file_dir: PathBuf,
    /// The session cookie's name (`SESSION_COOKIE_NAME`).
    pub session_cookie_name: String,
    /// The cookie's `Domain` attribute, if any (`SESSION_COOKIE_DOMAIN`).
    pub session_cookie_domain: Option<String>,
    /// The cookie's `Path` attribute (`SESSION_COOKIE_PATH`).
    pub session_cookie_path: String,
    /// The cookie's `Secure` attribute (`SESSION_COOKIE_SECURE`).
    pub session_cookie_secure: bool,
    /// The cookie's `HttpOnly` attribute (`SESSION_COOKIE_HTTPONLY`).
    pub session_cookie_httponly: bool,
    /// The cookie's `SameSite` attribute (`SESSION_COOKIE_SAMESITE`).
    pub session_cookie_samesite: SameSite,
    /// The largest session data, in bytes of its MessagePack encoding (`SESSION_MAX_BYTES`); the
    /// sealed record adds a fixed overhead of about 100 bytes.
    pub session_max_bytes: usize,
    /// The most live sessions one user may have; `None` for no limit (`SESSION_MAX_PER_USER`).
    pub session_max_per_user: Option<std::num::NonZeroUsize>,
    /// What a log-in beyond that limit does (`SESSION_LIMIT_POLICY`).
    pub session_limit_policy: crate::store::LimitPolicy,
    /// The Redis server, or the comma-separated seed nodes of a Redis Cluster (`REDIS_URL`).
    pub redis_url: String,
    /// The longest wait for a new Redis connection (`REDIS_CONNECT_TIMEOUT`).
    pub redis_connect_timeout: Duration,
    /// The longest wait for the reply to one Redis command (`REDIS_RESPONSE_TIMEOUT`).
    pub redis_response_timeout: Duration,
    /// Check CSRF tokens on unsafe requests (`WTF_CSRF_ENABLED`).
    pub wtf_csrf_enabled: bool,
    /// How long a CSRF token stays valid; `None` for no limit (`WTF_CSRF_TIME_LIMIT`).
    pub wtf_csrf_time_limit: Option<Duration>,
    /// Origins other than this site's own whose unsafe requests pass the origin check (they
    /// still need a CSRF token), e.g. `https://app.example.com` (`CSRF_TRUSTED_ORIGINS`).
    pub csrf_trusted_origins: Vec<String>,
    /// The largest request body, in bytes (`MAX_CONTENT_LENGTH`).
    pub max_content_length: usize,
    /// The address the site listens on (`PORTCULLIS_BIND`, `--bind`).
    pub bind: SocketAddr,
    /// Let the `dev` profile listen beyond loopback (`PORTCULLIS_ALLOW_DEV_PROFILE`).
    pub allow_dev_profile: bool,
    /// The site's accounts database (`DATABASE_URL`).
    pub database_url: String,
    /// Failed log-ins allowed per user name and per client address (`LOGIN_RATE_LIMIT`).
    pub login_rate_limit: RateLimit,
    /// Reverse proxies whose `X-Forwarded-For` entries are believed (`TRUSTED_PROXIES`).
    pub trusted_proxies: Vec<IpAddr>,
    /// Where each setting's value came from, by environment name.
    sources: HashMap<&'static str, Source>,
}

/// One line of [`Config::report`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Setting {
    /// The setting's environment name, e.g. `SESSION_COOKIE_NAME`.
    pub name: &'static str,
    /// The value as `.env` would spell it; `[redacted]` for secrets.
    pub value: String,
    /// Where the value came from.
    pub source: Source,
}

impl Config {
    /// The key ring for `SECRET_KEY` and `SECRET_KEY_FALLBACKS`.
    #[must_use]
    pub fn key_ring(&self) -> crate::keys::KeyRing {
        let fallbacks: Vec<&[u8]> = self
            .secret_key_fallbacks
            .iter()
            .map(SecretKey::as_bytes)
            .collect();
        crate::keys::KeyRing::new(self.secret_key.as_bytes(), &fallbacks)
    }

    /// Loads the configuration from the process environment and `./.env`; the same as
    /// `ConfigLoader::new().load()`.
    ///
    /// # Errors
    ///
    /// See [`ConfigLoader::load`].
    pub fn load() -> Result<Self, ConfigError> {
        ConfigLoader::new().load()
    }

    /// Where the setting named `setting` (its environment name, e.g. `SECRET_KEY`) came from;
    /// [`Source::Default`] for a name that is not a setting.
    #[must_use]
    pub fn source(&self, setting: &str) -> Source {
        self.sources
            .get(setting)
            .copied()
            .unwrap_or(Source::Default)
    }
}

/// Prints [`Config::report`]: secrets and the Redis password are redacted.
impl fmt::Debug for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let report = self.report();
        f.debug_map()
            .entries(report.iter().map(|s| (s.name, &s.value)))
            .finish()
    }
}
