//! The small vocabularies of the configuration: profiles, session store kinds, formats, how
//! `SameSite` is spelled in a setting, and the [`Source`] a setting's value came from.

use std::fmt;
use std::str::FromStr;

use super::ConfigError;
use crate::session::SameSite;

/// A configuration profile: the set of defaults a deployment starts from.
///
/// Chosen with `--profile` or `PORTCULLIS_PROFILE`; the default is [`Profile::Dev`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Profile {
    /// Development: sessions in local files, cookie not `Secure`, a generated key. Runs with
    /// nothing installed; refuses to listen beyond loopback unless explicitly allowed.
    #[default]
    Dev,
    /// Production: sessions in Redis, `Secure` cookies, permanent sessions, `SECRET_KEY` required.
    Redis,
}

impl Profile {
    const ALLOWED: &str = "dev or redis";
}

impl fmt::Display for Profile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Dev => "dev",
            Self::Redis => "redis",
        })
    }
}

/// Parses `dev` or `redis`, ignoring case.
impl FromStr for Profile {
    type Err = ConfigError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "dev" => Ok(Self::Dev),
            "redis" => Ok(Self::Redis),
            _ => Err(ConfigError::invalid("PORTCULLIS_PROFILE", s, Self::ALLOWED)),
        }
    }
}

/// Where session records are kept (`SESSION_TYPE`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum StoreKind {
    /// One file per session under `SESSION_FILE_DIR` (the `dev` default).
    Filesystem,
    /// A Redis server or cluster at `REDIS_URL` (the `redis` default).
    Redis,
    /// Process memory: lost on restart, not shared between processes. For tests.
    Memory,
}

impl StoreKind {
    const ALLOWED: &str = "filesystem, redis or memory";
}

impl fmt::Display for StoreKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Filesystem => "filesystem",
            Self::Redis => "redis",
            Self::Memory => "memory",
        })
    }
}

/// Parses `filesystem`, `redis` or `memory`, ignoring case (as Flask-Session does).
impl FromStr for StoreKind {
    type Err = ConfigError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "filesystem" => Ok(Self::Filesystem),
            "redis" => Ok(Self::Redis),
            "memory" => Ok(Self::Memory),
            _ => Err(ConfigError::invalid("SESSION_TYPE", s, Self::ALLOWED)),
        }
    }
}

/// How sessions look outside the process (`SESSION_FORMAT`): cookies, store keys, records and
/// CSRF tokens. See [`crate::session::Format`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum SessionFormat {
    /// Portcullis's own: sealed records, hashed store keys, HMAC-SHA256, key rotation.
    #[default]
    Native,
    /// Flask-Session 0.8 and Flask-WTF 1.3's, to share sessions with a running Flask app.
    Flask,
}

impl SessionFormat {
    const ALLOWED: &str = "native or flask";
}

impl fmt::Display for SessionFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Native => "native",
            Self::Flask => "flask",
        })
    }
}

/// Parses `native` or `flask`, ignoring case.
impl FromStr for SessionFormat {
    type Err = ConfigError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "native" => Ok(Self::Native),
            "flask" => Ok(Self::Flask),
            _ => Err(ConfigError::invalid("SESSION_FORMAT", s, Self::ALLOWED)),
        }
    }
}

/// What `SESSION_COOKIE_SAMESITE` accepts.
const SAME_SITE_ALLOWED: &str = "Strict, Lax or None";

/// Parses `Strict`, `Lax` or `None`, ignoring case.
impl FromStr for SameSite {
    type Err = ConfigError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "strict" => Ok(Self::Strict),
            "lax" => Ok(Self::Lax),
            "none" => Ok(Self::None),
            _ => Err(ConfigError::invalid(
                "SESSION_COOKIE_SAMESITE",
                s,
                SAME_SITE_ALLOWED,
            )),
        }
    }
}

/// Where a setting's value came from, as shown by `portcullis config`.
///
/// Precedence, highest first: command line, process environment, `.env`, profile default.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Source {
    /// The profile's default.
    Default,
    /// The `.env` file.
    DotEnv,
    /// The process environment.
    Environment,
    /// A command-line option (`--profile`, `--bind`).
    CommandLine,
    /// Generated on this machine: the development `SECRET_KEY` in the state directory.
    Generated,
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Default => "default",
            Self::DotEnv => ".env",
            Self::Environment => "environment",
            Self::CommandLine => "command line",
            Self::Generated => "generated",
        })
    }
}

#[cfg(test)]
mod tests {
    use crate::config::test_support::*;

    #[test]
    fn names_display_as_written_in_settings() {
        assert_eq!(
            [Profile::Dev, Profile::Redis].map(|p| p.to_string()),
            ["dev", "redis"]
        );
        assert_eq!(
            [StoreKind::Filesystem, StoreKind::Redis, StoreKind::Memory].map(|k| k.to_string()),
            ["filesystem", "redis", "memory"]
        );
        assert_eq!(
            [SameSite::Strict, SameSite::Lax, SameSite::None].map(|s| s.to_string()),
            ["Strict", "Lax", "None"]
        );
        let sources = [
            Source::Default,
            Source::DotEnv,
            Source::Environment,
            Source::CommandLine,
            Source::Generated,
        ];
        assert_eq!(
            sources.map(|s| s.to_string()),
            [
                "default",
                ".env",
                "environment",
                "command line",
                "generated"
            ]
        );
        assert_eq!("Redis".parse::<Profile>().unwrap(), Profile::Redis);
        assert_eq!(
            "prod".parse::<Profile>().unwrap_err().to_string(),
            "invalid PORTCULLIS_PROFILE=\"prod\": dev or redis"
        );
    }
}
