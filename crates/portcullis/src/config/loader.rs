//! [`ConfigLoader`]: gathers the layers (command line, environment, `.env`), parses every
//! setting with its profile default, records where each value came from, and applies the
//! rules that span two settings.

use std::collections::HashMap;
use std::ffi::OsString;
use std::fmt;
use std::path::{Path, PathBuf};

use super::declare::SettingsReader;
use super::parse::{keyword, secret};
use super::rules;
use super::secret::{GENERATE_HINT, MIN_SECRET_BYTES, dev_key};
use super::source::{self, Layers};
use super::{Config, ConfigError, Profile, SecretKey, SessionFormat, Source};
use crate::SessionLayer;

/// Builds a [`Config`] from the command line, the environment and a `.env` file.
///
/// ```
/// # #[cfg(feature = "redis")] {
/// use portcullis::config::{ConfigLoader, Profile, Source};
///
/// let config = ConfigLoader::new()
///     .profile(Profile::Redis)
///     .env([("SECRET_KEY".to_owned(), "k".repeat(32))])
///     .no_dotenv()
///     .load()?;
/// assert_eq!(config.source("PORTCULLIS_PROFILE"), Source::CommandLine);
/// assert!(config.session_cookie_secure);
/// # }
/// # Ok::<(), portcullis::config::ConfigError>(())
/// ```
#[derive(Clone)]
#[must_use]
pub struct ConfigLoader {
    command_line: HashMap<&'static str, String>,
    env: Option<HashMap<String, OsString>>,
    dotenv_file: Option<PathBuf>,
    state_dir: PathBuf,
}

impl ConfigLoader {
    /// A loader that reads the process environment and `./.env`, and keeps the development key
    /// in `./.portcullis`.
    pub fn new() -> Self {
        Self {
            command_line: HashMap::new(),
            env: None,
            dotenv_file: Some(PathBuf::from(".env")),
            state_dir: PathBuf::from(".portcullis"),
        }
    }

    /// The profile from `--profile`; it wins over `PORTCULLIS_PROFILE`.
    pub fn profile(self, profile: Profile) -> Self {
        self.command_line("PORTCULLIS_PROFILE", profile.to_string())
    }

    /// `value` for `setting` (its environment name) from a command-line option, such as the
    /// site's `--bind` for `PORTCULLIS_BIND`: it wins over every other layer, and the setting's
    /// source is [`Source::CommandLine`].
    pub fn command_line(mut self, setting: &'static str, value: impl Into<String>) -> Self {
        self.command_line.insert(setting, value.into());
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
        self.load_with::<()>().map(|(config, ())| config)
    }

    /// As [`ConfigLoader::load`], and reads an application's own settings `E` through the same
    /// layers, recording their sources: after the library's settings parse, and before any rule
    /// is checked (the library's rules first, then `E`'s).
    ///
    /// # Errors
    ///
    /// As [`ConfigLoader::load`], for the library's settings and for `E`'s.
    pub fn load_with<E: ExtraSettings>(self) -> Result<(Config, E), ConfigError> {
        let dotenv = match &self.dotenv_file {
            Some(path) => source::read_dotenv(path)?,
            None => HashMap::new(),
        };
        let environment = self.env.unwrap_or_else(source::process_environment);
        let mut reader = SettingsReader::new(Layers {
            command_line: self.command_line,
            environment,
            dotenv,
        });
        let config = read_config(&mut reader, &self.state_dir)?;
        let extra = E::read(&mut reader, &config)?;
        rules::check(&config)?;
        extra.check(&config)?;
        Ok((config, extra))
    }
}

impl Default for ConfigLoader {
    fn default() -> Self {
        Self::new()
    }
}

/// Shows which settings the command line gives and how many variables replace the
/// environment, never their values.
impl fmt::Debug for ConfigLoader {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ConfigLoader")
            .field(
                "command_line",
                &self.command_line.keys().collect::<Vec<_>>(),
            )
            .field("env_vars", &self.env.as_ref().map(HashMap::len))
            .field("dotenv_file", &self.dotenv_file)
            .field("state_dir", &self.state_dir)
            .finish()
    }
}

/// An application's own settings, read by [`ConfigLoader::load_with`] through the same layers
/// as the library's, usually declared with [`settings!`](crate::settings).
pub trait ExtraSettings: Sized {
    /// Reads the settings from `reader`; `config` holds the library's, parsed but not yet
    /// checked (its profile decides the defaults).
    ///
    /// # Errors
    /// A value that does not parse, as [`ConfigError::Invalid`] naming the setting.
    fn read(reader: &mut SettingsReader, config: &Config) -> Result<Self, ConfigError>;

    /// The rules between these settings and the library's, checked after the library's own.
    ///
    /// # Errors
    /// A contradiction, as [`ConfigError::Conflict`] naming both settings.
    fn check(&self, config: &Config) -> Result<(), ConfigError> {
        let _ = config;
        Ok(())
    }

    /// What is allowed but risky in these settings, one sentence each; see
    /// [`Config::warnings_with`].
    fn warnings(&self, config: &Config) -> Vec<String> {
        let _ = config;
        Vec::new()
    }
}

/// No settings beyond the library's: what [`ConfigLoader::load`] reads.
impl ExtraSettings for () {
    fn read(_: &mut SettingsReader, _: &Config) -> Result<Self, ConfigError> {
        Ok(())
    }
}

/// Every setting of the library: the three read by hand first (the profile decides the
/// defaults; the format decides which keys are accepted), then every declared row in order.
fn read_config(reader: &mut SettingsReader, state_dir: &Path) -> Result<Config, ConfigError> {
    let mut profile = Profile::Dev;
    reader.read("PORTCULLIS_PROFILE", &mut profile, keyword)?;
    // The first line the configuration logs: which profile, and why, so that nobody runs
    // `dev` without knowing it.
    match reader.lookup("PORTCULLIS_PROFILE")? {
        Some((_, source)) => {
            tracing::info!(%profile, from = %source, "configuration profile {profile} (PORTCULLIS_PROFILE)")
        }
        None => tracing::info!(
            %profile,
            "configuration profile {profile}: PORTCULLIS_PROFILE is not set, so the default \
             (files in the working directory, no Secure cookies); set PORTCULLIS_PROFILE=redis \
             in production"
        ),
    }
    let mut format = SessionFormat::Native;
    reader.read("SESSION_FORMAT", &mut format, keyword)?;
    let secret_key = read_secret_key(reader, profile, format, state_dir)?;
    let mut config = Config::defaults(profile);
    config.session_format = format;
    config.secret_key = secret_key;
    config.read_declared(reader)?;
    if config.source("SESSION_COOKIE_NAME") == Source::Default {
        config.session_cookie_name = default_cookie_name(&config).to_owned();
    }
    Ok(config)
}

/// The cookie name when none is configured. With `Secure` on (production), a prefix that
/// browsers enforce, against cookie tossing: a sibling subdomain or a plain-HTTP page cannot
/// set a `__Host-` cookie at all, nor a `__Secure-` one without `Secure` (RFC 6265bis, section
/// 4.1.3). `__Host-` needs `Path=/` and no `Domain`; otherwise `__Secure-`. The `dev` profile
/// keeps `session` (plain HTTP on localhost), and so does the Flask format: the name is the
/// Flask app's, and Flask's default is `session`.
fn default_cookie_name(c: &Config) -> &'static str {
    let plain = SessionLayer::DEFAULT_COOKIE_NAME;
    if c.profile == Profile::Dev
        || c.session_format == SessionFormat::Flask
        || !c.session_cookie_secure
    {
        plain
    } else if c.session_cookie_path == "/" && c.session_cookie_domain.is_none() {
        "__Host-session"
    } else {
        "__Secure-session"
    }
}

/// `SECRET_KEY`: required on `redis`; on `dev`, the generated key when unset or empty. Any
/// length in the Flask format (the Flask app chose it; [`Config::warnings`] says so).
fn read_secret_key(
    reader: &mut SettingsReader,
    profile: Profile,
    format: SessionFormat,
    state_dir: &Path,
) -> Result<SecretKey, ConfigError> {
    const SETTING: &str = "SECRET_KEY";
    match reader.lookup(SETTING)? {
        Some((raw, source)) if !raw.is_empty() => {
            let key = if format == SessionFormat::Flask {
                SecretKey::any_length(raw)
            } else {
                secret(&raw).map_err(|allowed| ConfigError::invalid(SETTING, &raw, allowed))?
            };
            reader.record(SETTING, source);
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
            reader.record(SETTING, Source::Generated);
            Ok(key)
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::config::test_support::*;

    #[cfg(feature = "redis")]
    #[test]
    fn dev_and_redis_profiles_have_their_defaults() {
        // (profile, session_permanent, session_type, session_cookie_secure)
        let cases = [
            ("dev", false, StoreKind::Filesystem, false),
            ("redis", true, StoreKind::Redis, true),
        ];
        for (profile, permanent, store, secure) in cases {
            let c = load(&keyed(&[("PORTCULLIS_PROFILE", profile)])).unwrap();
            assert_eq!(c.profile.to_string(), profile);
            assert_eq!(c.session_permanent, permanent, "{profile}");
            assert_eq!(c.session_type, store, "{profile}");
            assert_eq!(c.session_cookie_secure, secure, "{profile}");
            assert_eq!(c.secret_key.as_bytes(), KEY.as_bytes());
            assert!(c.secret_key_fallbacks.is_empty());
            assert_eq!(c.permanent_session_lifetime, Duration::from_secs(300));
            assert_eq!(c.session_absolute_lifetime, Duration::from_secs(8 * 3600));
            assert!(c.session_refresh_each_request);
            assert_eq!(c.session_key_prefix, "sess:");
            assert!(c.session_use_signer, "the signer is on in every profile");
            assert_eq!(c.session_file_dir, PathBuf::from("./.flask_session"));
            let name = if secure { "__Host-session" } else { "session" };
            assert_eq!(c.session_cookie_name, name, "{profile}");
            assert_eq!(c.session_cookie_domain, None);
            assert_eq!(c.session_cookie_path, "/");
            assert!(c.session_cookie_httponly);
            assert_eq!(c.session_cookie_samesite, SameSite::Lax);
            assert_eq!(c.session_max_bytes, 65536);
            assert_eq!(c.redis_url, "redis://127.0.0.1:6379");
            assert_eq!(c.redis_connect_timeout, Duration::from_millis(250));
            assert_eq!(c.redis_response_timeout, Duration::from_millis(250));
            assert!(c.wtf_csrf_enabled);
            assert_eq!(c.wtf_csrf_time_limit, Some(Duration::from_secs(3600)));
            assert!(c.csrf_trusted_origins.is_empty());
            assert_eq!(c.max_content_length, 1_048_576);
        }
    }

    /// Finding 6 (cookie tossing): with `Secure` on and no name configured, the default name
    /// carries the strongest prefix the other cookie settings allow.
    #[cfg(all(feature = "redis", feature = "flask"))]
    #[test]
    fn secure_cookies_default_to_a_prefixed_name() {
        let redis = ("PORTCULLIS_PROFILE", "redis");
        let cases: &[(&[(&str, &str)], &str)] = &[
            (&[redis], "__Host-session"),
            (
                &[redis, ("SESSION_COOKIE_DOMAIN", "example.com")],
                "__Secure-session",
            ),
            (
                &[redis, ("SESSION_COOKIE_PATH", "/app")],
                "__Secure-session",
            ),
            (&[redis, ("SESSION_COOKIE_SECURE", "false")], "session"),
            (&[redis, ("SESSION_FORMAT", "flask")], "session"),
            (&[redis, ("SESSION_COOKIE_NAME", "sid")], "sid"),
            (&[redis, ("SESSION_COOKIE_NAME", "session")], "session"),
            (&[], "session"),
            (&[("SESSION_COOKIE_SECURE", "true")], "session"),
        ];
        for (pairs, expected) in cases {
            let c = load(&keyed(pairs)).unwrap();
            assert_eq!(c.session_cookie_name, *expected, "{pairs:?}");
        }
        let c = load(&keyed(&[redis])).unwrap();
        assert_eq!(c.source("SESSION_COOKIE_NAME"), Source::Default);
        assert_eq!(
            c.warnings(),
            Vec::<String>::new(),
            "the default needs no advice"
        );
    }

    #[cfg(feature = "redis")]
    #[test]
    fn the_command_line_profile_beats_the_environment() {
        let dir = tempdir().unwrap();
        let pairs = keyed(&[("PORTCULLIS_PROFILE", "dev")]);
        let c = loader(&dir, &pairs).profile(Profile::Redis).load().unwrap();
        assert_eq!(c.profile, Profile::Redis);
        assert_eq!(c.source("PORTCULLIS_PROFILE"), Source::CommandLine);
    }

    #[test]
    fn an_empty_secret_key_counts_as_unset() {
        let dir = tempdir().unwrap();
        let c = loader(&dir, &[("SECRET_KEY", "")]).load().unwrap();
        assert_eq!(c.source("SECRET_KEY"), Source::Generated);
        let err = load(&[("SECRET_KEY", ""), ("PORTCULLIS_PROFILE", "redis")]).unwrap_err();
        assert!(
            matches!(
                err,
                ConfigError::Missing {
                    setting: "SECRET_KEY",
                    ..
                }
            ),
            "{err:?}"
        );
    }

    #[test]
    fn redis_profile_without_secret_key_is_refused() {
        let dir = tempdir().unwrap();
        let err = loader(&dir, &[("PORTCULLIS_PROFILE", "redis")])
            .load()
            .unwrap_err();
        assert!(
            matches!(
                err,
                ConfigError::Missing {
                    setting: "SECRET_KEY",
                    ..
                }
            ),
            "{err:?}"
        );
        assert_eq!(
            err.to_string(),
            "missing SECRET_KEY: the redis profile needs a key of at least 32 bytes, the same on every \
             instance; generate one with `openssl rand -base64 48`"
        );
        assert!(
            !dir.path().join("state").exists(),
            "no key is generated for production"
        );
    }

    #[cfg(all(feature = "redis", feature = "flask"))]
    #[test]
    fn the_session_format_is_native_by_default_and_flask_on_request() {
        let c = load(&keyed(&[])).unwrap();
        assert_eq!(c.session_format, SessionFormat::Native);
        assert_eq!(c.source("SESSION_FORMAT"), Source::Default);
        let c = load(&keyed(&[
            ("SESSION_FORMAT", " Flask"),
            ("SESSION_TYPE", "redis"),
        ]))
        .unwrap();
        assert_eq!(c.session_format, SessionFormat::Flask);
        assert_eq!(c.source("SESSION_FORMAT"), Source::Environment);
        let report = c.report();
        let shown = report.iter().find(|s| s.name == "SESSION_FORMAT").unwrap();
        assert_eq!(shown.value, "flask");
    }

    #[cfg(all(feature = "redis", feature = "flask"))]
    #[test]
    fn the_flask_format_takes_a_short_secret_key_with_a_warning() {
        let short = [("SECRET_KEY", "dev-key-of-a-flask-app")];
        let native = load(&[short[0], ("PORTCULLIS_PROFILE", "redis")]).unwrap_err();
        assert!(
            native.to_string().contains("at least 32 bytes (got 22)"),
            "{native}"
        );

        let mut pairs = FLASK.to_vec();
        pairs.extend_from_slice(&short);
        let c = load(&pairs).unwrap();
        assert_eq!(c.secret_key.as_bytes(), b"dev-key-of-a-flask-app");
        let warnings = c.warnings();
        assert!(
            warnings.iter().any(|w| w.starts_with(
                "SECRET_KEY is 22 bytes, under the 32 the native format requires: accepted because \
                 SESSION_FORMAT=flask takes the Flask app's key"
            )),
            "{warnings:?}"
        );
        for text in [format!("{c:?}"), warnings.join("\n")] {
            assert!(!text.contains("dev-key-of-a-flask-app"), "{text}");
        }
        // Still required on the redis profile, and still never empty.
        let mut unset = FLASK.to_vec();
        unset.push(("SECRET_KEY", ""));
        assert!(matches!(load(&unset), Err(ConfigError::Missing { .. })));
    }
}
