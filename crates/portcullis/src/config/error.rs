//! [`ConfigError`]: why a configuration was refused, in one line that names the setting, the
//! value and what is allowed. Secret values never appear in it, not even in `Debug`.

use std::fmt;
use std::path::PathBuf;

use crate::redact::{REDACTED, redact_url_password};

/// The configuration could not be loaded. Each variant's `Display` is a single line.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// A setting has a value that is not allowed.
    #[error("invalid {setting}={}: {allowed}", Shown(.setting, .value))]
    Invalid {
        /// The setting's environment name, e.g. `PERMANENT_SESSION_LIFETIME`.
        setting: &'static str,
        /// The value as given; `[redacted]` for secrets, and `REDIS_URL` without its password.
        value: String,
        /// What the setting accepts.
        allowed: String,
    },
    /// Two settings that are each valid contradict each other.
    #[error("{message}")]
    Conflict {
        /// One line naming both settings and why they clash.
        message: String,
    },
    /// A setting the profile requires is not set.
    #[error("missing {setting}: {why}")]
    Missing {
        /// The setting's environment name.
        setting: &'static str,
        /// Why it is required and how to provide it.
        why: String,
    },
    /// A setting asks for a part of Portcullis that this build leaves out: its cargo feature
    /// is off (`SESSION_TYPE=redis` needs `redis`, `SESSION_FORMAT=flask` needs `flask`).
    #[error(
        "{setting}={value} needs portcullis's `{feature}` cargo feature, which this build leaves \
         out: enable it (portcullis = {{ features = [\"{feature}\"] }})"
    )]
    NotBuilt {
        /// The setting's environment name.
        setting: &'static str,
        /// Its value, as `.env` spells it.
        value: &'static str,
        /// The cargo feature that would provide it.
        feature: &'static str,
    },
    /// The `.env` file exists but could not be read or parsed.
    #[error("cannot load {}: {source}", .path.display())]
    DotEnv {
        /// The file.
        path: PathBuf,
        /// What went wrong; a malformed line is reported without its value.
        #[source]
        source: dotenvy::Error,
    },
    /// The development key file could not be read or written.
    #[error("cannot use the development key file {}: {source}", .path.display())]
    SecretFile {
        /// The file, `<state_dir>/secret-key`.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
}

impl ConfigError {
    /// An [`ConfigError::Invalid`] for `raw`, redacting it if the setting holds a secret.
    pub(super) fn invalid(setting: &'static str, raw: &str, allowed: impl Into<String>) -> Self {
        let value = match setting {
            "SECRET_KEY" | "SECRET_KEY_FALLBACKS" => REDACTED.to_owned(),
            "REDIS_URL" => redact_url_password(raw),
            _ => raw.to_owned(),
        };
        Self::Invalid {
            setting,
            value,
            allowed: allowed.into(),
        }
    }

    /// A [`ConfigError::Conflict`] with `message`.
    pub(super) fn conflict(message: impl Into<String>) -> Self {
        Self::Conflict {
            message: message.into(),
        }
    }
}

/// A value as an error shows it: quoted and escaped (so it stays on one line), except a
/// redacted secret, which is shown bare so that it does not read as the literal value.
struct Shown<'a>(&'a str, &'a str);

impl fmt::Display for Shown<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let Self(setting, value) = *self;
        if matches!(setting, "SECRET_KEY" | "SECRET_KEY_FALLBACKS") {
            f.write_str(REDACTED)
        } else {
            write!(f, "{value:?}")
        }
    }
}

#[cfg(all(test, feature = "redis"))]
mod tests {
    use crate::config::test_support::*;

    #[test]
    fn a_redis_password_is_redacted_in_errors() {
        let err = error(&[("REDIS_URL", "http://:s3cret-pw@cache")]);
        assert!(
            matches!(&err, ConfigError::Invalid { value, .. } if value == "http://:[redacted]@cache")
        );
        assert!(!format!("{err} {err:?}").contains("s3cret"));
    }
}
