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
    let mut format = SessionFormat::Native;
    reader.read("SESSION_FORMAT", &mut format, keyword)?;
    let secret_key = read_secret_key(reader, profile, format, state_dir)?;
    let mut config = Config::defaults(profile);
    config.session_format = format;
    config.secret_key = secret_key;
    config.read_declared(reader)?;
    Ok(config)
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
