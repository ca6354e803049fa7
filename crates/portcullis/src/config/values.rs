//! The small vocabularies of the configuration: profiles, session store kinds, formats, how
//! `SameSite` is spelled in a setting, and the [`Source`] a setting's value came from.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

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

/// At most `max` events per `window` (`LOGIN_RATE_LIMIT`, written `10/3m`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct RateLimit {
    /// How many events the window allows.
    pub max: u32,
    /// How long an event counts.
    pub window: Duration,
}

impl RateLimit {
    const ALLOWED: &str = "a count and a duration, e.g. 10/3m (10 per 3 minutes) or 5/60";
}

/// Prints `10/3m`, as the setting accepts it back.
impl fmt::Display for RateLimit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}/{}",
            self.max,
            humantime::format_duration(self.window)
        )
    }
}

/// Parses `COUNT/DURATION`: a count of at least 1, and a duration as the other settings take it.
impl FromStr for RateLimit {
    type Err = ConfigError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let invalid = || ConfigError::invalid("LOGIN_RATE_LIMIT", s, Self::ALLOWED);
        let (max, window) = s.split_once('/').ok_or_else(invalid)?;
        let max = max.trim().parse::<u32>().ok().filter(|&n| n > 0);
        let window = super::parse::duration(window).ok();
        match (max, window) {
            (Some(max), Some(window)) => Ok(Self { max, window }),
            _ => Err(invalid()),
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
