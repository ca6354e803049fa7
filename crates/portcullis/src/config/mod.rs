//! Configuration: profiles, the environment and `.env`, validation.
//!
//! [`Config::load`] reads every setting from, highest precedence first, the command line
//! (`--profile`, or any option given to [`ConfigLoader::command_line`]), the process
//! environment, the `.env` file, and the profile's default. It refuses a bad value at start-up
//! with one line naming the setting, the value and what is allowed, and refuses combinations
//! that browsers would reject. [`Config::report`] lists every value with its [`Source`];
//! [`Config::warnings`] lists what is legal but risky in production.
//! [`ConfigLoader::load_with`] reads an application's own settings through the same layers.
//!
//! Settings keep their Flask names, so a Flask app's `.env` carries over. Each one is declared
//! once, in `settings.rs`, with the [`settings!`](crate::settings) macro: the [`Config`] field
//! and its docs, the profile's default, the parser, what [`Config::report`] prints and the row
//! of the configuration reference ([`Config::reference`], rendered by [`reference_table`]) all
//! come from that one row. The README's "Configuration reference" is that table, the library's
//! rows followed by the reference site's, and a test fails when the two differ.
//!
//! Rules between settings: `SameSite=None` and the `__Secure-` cookie-name prefix need
//! `Secure`; `__Host-` needs `Secure`, path `/` and no domain; the absolute lifetime is at least
//! the idle one; `SESSION_FORMAT=flask` needs a store the Flask app can share, so not
//! `filesystem` (`redis`, or `memory` in tests), and no `SESSION_MAX_PER_USER`. An application
//! adds its own rules through [`ExtraSettings::check`].
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
//!
//! # Adding a setting
//!
//! Add one row to `settings.rs` (or to an application's own declarations, as the site's
//! `config.rs`), and paste the row that the site's test
//! `the_readme_configuration_table_is_the_generated_one` prints into the README's table:
//!
//! ```text
//! /// what it is for, one paragraph: the reference table's last column
//! "SESSION_EXAMPLE" => session_example: bool {
//!     default: false;            // or `default: dev_value, redis: redis_value;`
//!     parse: boolean;            // what the value may be; Err says what is allowed
//!     show: show::display;       // how `portcullis config` prints it
//!     accepts: "a boolean";
//! }
//! ```
//!
//! That is the field, its default on both profiles, its reader, its line in `portcullis config`
//! and its row in the reference. A default the layers also use belongs to the layer, as a
//! `DEFAULT_*` constant the row refers to (`SessionLayer::DEFAULT_IDLE_LIFETIME`), so it is
//! written once; then pass the value to the layer in `config/apply.rs`.

mod apply;
mod declare;
mod error;
mod loader;
pub mod parse;
mod report;
mod rules;
mod secret;
mod settings;
mod source;
#[cfg(test)]
mod test_support;
mod values;

pub use crate::session::SameSite;
pub use declare::{SettingDoc, SettingsReader, reference_table, show};
pub use error::ConfigError;
pub use loader::{ConfigLoader, ExtraSettings};
pub use secret::SecretKey;
pub use settings::Config;
pub use values::{Profile, SessionFormat, Source, StoreKind};

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
}
