//! [`ConfigLoader`]: gathers the layers (command line, environment, `.env`), parses every
//! setting with its profile default, records where each value came from, and applies the
//! rules that span two settings.

use std::collections::HashMap;
use std::ffi::OsString;
use std::fmt;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::parse::{
    Parsed, boolean, cookie_domain, cookie_name, cookie_path, database_url, directory, duration,
    ip_list, key_prefix, keyword, limit_policy, optional_duration, redis_url, secret, secret_list,
    session_limit, size, socket_addr, timeout, trusted_origins,
};
use super::rules;
use super::secret::{GENERATE_HINT, MIN_SECRET_BYTES, dev_key};
use super::source::{self, Layers};
use super::{Config, ConfigError, Profile, RateLimit, SecretKey, SessionFormat, Source, StoreKind};
use crate::csrf::CsrfLayer;
use crate::session::SessionLayer;
use crate::store::RedisTimeouts;

/// Where the site listens by default: this machine only.
const DEFAULT_BIND: SocketAddr = SocketAddr::new(std::net::IpAddr::V4(Ipv4Addr::LOCALHOST), 8000);

/// Failed log-ins per window: Rails 8's authentication generator uses
/// `rate_limit to: 10, within: 3.minutes`.
const DEFAULT_LOGIN_RATE_LIMIT: RateLimit = RateLimit {
    max: 10,
    window: Duration::from_secs(180),
};

/// Builds a [`Config`] from the command line, the environment and a `.env` file.
///
/// ```
/// use portcullis::config::{ConfigLoader, Profile, Source};
///
/// let config = ConfigLoader::new()
///     .profile(Profile::Redis)
///     .env([("SECRET_KEY".to_owned(), "k".repeat(32))])
///     .no_dotenv()
///     .load()?;
/// assert_eq!(config.source("PORTCULLIS_PROFILE"), Source::CommandLine);
/// assert!(config.session_cookie_secure);
/// # Ok::<(), portcullis::config::ConfigError>(())
/// ```
#[derive(Clone)]
#[must_use]
pub struct ConfigLoader {
    profile: Option<Profile>,
    bind: Option<SocketAddr>,
    env: Option<HashMap<String, OsString>>,
    dotenv_file: Option<PathBuf>,
    state_dir: PathBuf,
}

impl ConfigLoader {
    /// A loader that reads the process environment and `./.env`, and keeps the development key
    /// in `./.portcullis`.
    pub fn new() -> Self {
        Self {
            profile: None,
            bind: None,
            env: None,
            dotenv_file: Some(PathBuf::from(".env")),
            state_dir: PathBuf::from(".portcullis"),
        }
    }

    /// The profile from `--profile`; it wins over `PORTCULLIS_PROFILE`.
    pub fn profile(mut self, profile: Profile) -> Self {
        self.profile = Some(profile);
        self
    }

    /// The address from `--bind`; it wins over `PORTCULLIS_BIND`.
    pub fn bind(mut self, addr: SocketAddr) -> Self {
        self.bind = Some(addr);
        self
    }

    /// Uses `vars` instead of the process environment (for tests).
    pub fn env(mut self, vars: impl IntoIterator<Item = (String, String)>) -> Self {
        self.env = Some(
            vars.into_iter()
                .map(|(k, v)| (k, OsString::from(v)))
                .collect(),
        );
        self
    }

    /// Reads `path` instead of `.env`. A missing file is fine; a malformed one is an error.
    pub fn dotenv_file(mut self, path: impl Into<PathBuf>) -> Self {
        self.dotenv_file = Some(path.into());
        self
    }

    /// Reads no `.env` file.
    pub fn no_dotenv(mut self) -> Self {
        self.dotenv_file = None;
        self
    }

    /// Keeps the generated development key in `dir` instead of `.portcullis`.
    pub fn state_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.state_dir = dir.into();
        self
    }

    /// Reads, parses and checks every setting.
    ///
    /// On the `dev` profile without `SECRET_KEY`, this reads `<state_dir>/secret-key`, or
    /// generates it (directory 0700, file 0600) on first use.
    ///
    /// # Errors
    ///
    /// - [`ConfigError::Invalid`]: a value is not allowed, e.g. a 10-byte `SECRET_KEY`.
    /// - [`ConfigError::Conflict`]: two settings contradict each other, e.g.
    ///   `SESSION_COOKIE_SAMESITE=None` without `SESSION_COOKIE_SECURE=true`.
    /// - [`ConfigError::Missing`]: the `redis` profile has no `SECRET_KEY`.
    /// - [`ConfigError::DotEnv`]: the `.env` file is malformed or unreadable.
    /// - [`ConfigError::SecretFile`]: the development key file cannot be read or written.
    pub fn load(self) -> Result<Config, ConfigError> {
        let mut command_line = HashMap::new();
        if let Some(profile) = self.profile {
            command_line.insert("PORTCULLIS_PROFILE", profile.to_string());
        }
        if let Some(bind) = self.bind {
            command_line.insert("PORTCULLIS_BIND", bind.to_string());
        }
        let dotenv = match &self.dotenv_file {
            Some(path) => source::read_dotenv(path)?,
            None => HashMap::new(),
        };
        let environment = self.env.unwrap_or_else(source::process_environment);
        let mut reader = Reader {
            layers: Layers {
                command_line,
                environment,
                dotenv,
            },
            sources: HashMap::new(),
        };
        let config = reader.read_all(&self.state_dir)?;
        rules::check(&config)?;
        Ok(config)
    }
}

impl Default for ConfigLoader {
    fn default() -> Self {
        Self::new()
    }
}

/// Shows the options and how many variables replace the environment, never their values.
impl fmt::Debug for ConfigLoader {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ConfigLoader")
            .field("profile", &self.profile)
            .field("bind", &self.bind)
            .field("env_vars", &self.env.as_ref().map(HashMap::len))
            .field("dotenv_file", &self.dotenv_file)
            .field("state_dir", &self.state_dir)
            .finish()
    }
}

/// Reads each `"SETTING" => field: parser` row into the config, in order, with [`Reader::set`].
macro_rules! read_settings {
    ($reader:expr, $config:ident; $($setting:literal => $field:ident: $parse:expr,)*) => {
        $($reader.set($setting, &mut $config.$field, $parse)?;)*
    };
}

/// Reads settings from the layers, remembering each one's source.
struct Reader {
    layers: Layers,
    sources: HashMap<&'static str, Source>,
}

impl Reader {
    /// Stores the parsed value of `setting` in `value` if a layer sets it; otherwise leaves
    /// the default there.
    fn set<T>(
        &mut self,
        setting: &'static str,
        value: &mut T,
        parse: impl FnOnce(&str) -> Parsed<T>,
    ) -> Result<(), ConfigError> {
        let Some((raw, source)) = self.layers.lookup(setting)? else {
            self.sources.insert(setting, Source::Default);
            return Ok(());
        };
        *value = parse(&raw).map_err(|allowed| ConfigError::invalid(setting, &raw, allowed))?;
        self.sources.insert(setting, source);
        Ok(())
    }

    /// Every setting, in the order of the table in the module docs.
    fn read_all(&mut self, state_dir: &Path) -> Result<Config, ConfigError> {
        let mut profile = Profile::Dev;
        self.set("PORTCULLIS_PROFILE", &mut profile, keyword)?;
        // Read before the key: the Flask format takes the Flask app's key, whatever its length.
        let mut format = SessionFormat::Native;
        self.set("SESSION_FORMAT", &mut format, keyword)?;
        let secret_key = self.secret_key(profile, format, state_dir)?;
        let mut c = defaults(profile, secret_key);
        c.session_format = format;
        read_settings! { self, c;
            "SECRET_KEY_FALLBACKS" => secret_key_fallbacks: secret_list,
            "PERMANENT_SESSION_LIFETIME" => permanent_session_lifetime: duration,
            "SESSION_ABSOLUTE_LIFETIME" => session_absolute_lifetime: duration,
            "SESSION_PERMANENT" => session_permanent: boolean,
            "SESSION_REFRESH_EACH_REQUEST" => session_refresh_each_request: boolean,
            "SESSION_TYPE" => session_type: keyword,
            "SESSION_KEY_PREFIX" => session_key_prefix: key_prefix,
            "SESSION_USE_SIGNER" => session_use_signer: boolean,
            "SESSION_FILE_DIR" => session_file_dir: directory,
            "SESSION_COOKIE_NAME" => session_cookie_name: cookie_name,
            "SESSION_COOKIE_DOMAIN" => session_cookie_domain: cookie_domain,
            "SESSION_COOKIE_PATH" => session_cookie_path: cookie_path,
            "SESSION_COOKIE_SECURE" => session_cookie_secure: boolean,
            "SESSION_COOKIE_HTTPONLY" => session_cookie_httponly: boolean,
            "SESSION_COOKIE_SAMESITE" => session_cookie_samesite: keyword,
            "SESSION_MAX_BYTES" => session_max_bytes: size,
            "SESSION_MAX_PER_USER" => session_max_per_user: session_limit,
            "SESSION_LIMIT_POLICY" => session_limit_policy: limit_policy,
            "REDIS_URL" => redis_url: redis_url,
            "REDIS_CONNECT_TIMEOUT" => redis_connect_timeout: timeout,
            "REDIS_RESPONSE_TIMEOUT" => redis_response_timeout: timeout,
            "WTF_CSRF_ENABLED" => wtf_csrf_enabled: boolean,
            "WTF_CSRF_TIME_LIMIT" => wtf_csrf_time_limit: optional_duration,
            "CSRF_TRUSTED_ORIGINS" => csrf_trusted_origins: trusted_origins,
            "MAX_CONTENT_LENGTH" => max_content_length: size,
            "PORTCULLIS_BIND" => bind: socket_addr,
            "PORTCULLIS_ALLOW_DEV_PROFILE" => allow_dev_profile: boolean,
            "DATABASE_URL" => database_url: database_url,
            "LOGIN_RATE_LIMIT" => login_rate_limit: keyword,
            "TRUSTED_PROXIES" => trusted_proxies: ip_list,
        }
        c.sources = std::mem::take(&mut self.sources);
        Ok(c)
    }

    /// `SECRET_KEY`: required on `redis`; on `dev`, the generated key when unset or empty. Any
    /// length in the Flask format (the Flask app chose it; [`Config::warnings`] says so).
    fn secret_key(
        &mut self,
        profile: Profile,
        format: SessionFormat,
        state_dir: &Path,
    ) -> Result<SecretKey, ConfigError> {
        const SETTING: &str = "SECRET_KEY";
        match self.layers.lookup(SETTING)? {
            Some((raw, source)) if !raw.is_empty() => {
                let key = if format == SessionFormat::Flask {
                    SecretKey::any_length(raw)
                } else {
                    secret(&raw).map_err(|allowed| ConfigError::invalid(SETTING, &raw, allowed))?
                };
                self.sources.insert(SETTING, source);
                Ok(key)
            }
            _ if profile == Profile::Redis => Err(ConfigError::Missing {
                setting: SETTING,
                why: format!(
                    "the redis profile needs a key of at least {MIN_SECRET_BYTES} bytes, the same \
                     on every instance; {GENERATE_HINT}"
                ),
            }),
            _ => {
                let key = dev_key(state_dir)?;
                self.sources.insert(SETTING, Source::Generated);
                Ok(key)
            }
        }
    }
}

/// The profile's defaults: what a setting is when no layer sets it.
fn defaults(profile: Profile, secret_key: SecretKey) -> Config {
    let redis = profile == Profile::Redis;
    Config {
        profile,
        secret_key,
        secret_key_fallbacks: Vec::new(),
        permanent_session_lifetime: SessionLayer::DEFAULT_IDLE_LIFETIME,
        session_absolute_lifetime: SessionLayer::DEFAULT_ABSOLUTE_LIFETIME,
        session_permanent: redis || SessionLayer::DEFAULT_PERMANENT,
        session_refresh_each_request: SessionLayer::DEFAULT_REFRESH_EACH_REQUEST,
        session_type: if redis {
            StoreKind::Redis
        } else {
            StoreKind::Filesystem
        },
        session_format: SessionFormat::Native,
        session_key_prefix: SessionLayer::DEFAULT_KEY_PREFIX.to_owned(),
        // On in every profile, unlike the seed, which signs only on Redis.
        session_use_signer: SessionLayer::DEFAULT_USE_SIGNER,
        session_file_dir: PathBuf::from("./.flask_session"),
        session_cookie_name: SessionLayer::DEFAULT_COOKIE_NAME.to_owned(),
        session_cookie_domain: None,
        session_cookie_path: SessionLayer::DEFAULT_COOKIE_PATH.to_owned(),
        session_cookie_secure: redis && SessionLayer::DEFAULT_SECURE,
        session_cookie_httponly: SessionLayer::DEFAULT_HTTP_ONLY,
        session_cookie_samesite: SessionLayer::DEFAULT_SAME_SITE,
        session_max_bytes: SessionLayer::DEFAULT_MAX_BYTES,
        // No limit by default, as Flask-Session, Django and Spring Security.
        session_max_per_user: None,
        session_limit_policy: crate::store::LimitPolicy::EvictOldest,
        redis_url: "redis://127.0.0.1:6379".to_owned(),
        redis_connect_timeout: RedisTimeouts::DEFAULT_CONNECT,
        redis_response_timeout: RedisTimeouts::DEFAULT_RESPONSE,
        wtf_csrf_enabled: CsrfLayer::DEFAULT_ENABLED,
        wtf_csrf_time_limit: Some(CsrfLayer::DEFAULT_TIME_LIMIT),
        csrf_trusted_origins: Vec::new(),
        max_content_length: CsrfLayer::DEFAULT_MAX_BODY,
        bind: DEFAULT_BIND,
        allow_dev_profile: false,
        database_url: "sqlite://portcullis.db".to_owned(),
        login_rate_limit: DEFAULT_LOGIN_RATE_LIMIT,
        trusted_proxies: Vec::new(),
        sources: HashMap::new(),
    }
}
