//! The rules that span two settings, checked once every value has parsed: cookie attributes
//! that browsers would reject together, lifetimes out of order, and the Flask format without a
//! store Flask can share or with a per-user limit. Each refusal is one line naming both
//! settings.

use super::{Config, ConfigError, SameSite, SessionFormat, StoreKind};

/// Refuses the first contradiction between two settings.
pub(super) fn check(c: &Config) -> Result<(), ConfigError> {
    let name = &c.session_cookie_name;
    if c.session_cookie_samesite == SameSite::None && !c.session_cookie_secure {
        return Err(ConfigError::conflict(
            "SESSION_COOKIE_SAMESITE=None requires SESSION_COOKIE_SECURE=true: \
             browsers drop SameSite=None cookies that are not Secure",
        ));
    }
    // Browsers match cookie-name prefixes case-insensitively (RFC 6265bis, section 4.1.3).
    let lower = name.to_ascii_lowercase();
    if lower.starts_with("__host-") {
        if !c.session_cookie_secure {
            return Err(ConfigError::conflict(format!(
                "SESSION_COOKIE_NAME={name:?} requires SESSION_COOKIE_SECURE=true: \
                 browsers drop __Host- cookies that are not Secure"
            )));
        }
        if c.session_cookie_path != "/" {
            return Err(ConfigError::conflict(format!(
                "SESSION_COOKIE_NAME={name:?} requires SESSION_COOKIE_PATH=\"/\", not {:?}: \
                 browsers drop __Host- cookies with another path",
                c.session_cookie_path
            )));
        }
        if let Some(domain) = &c.session_cookie_domain {
            return Err(ConfigError::conflict(format!(
                "SESSION_COOKIE_NAME={name:?} forbids SESSION_COOKIE_DOMAIN={domain:?}: \
                 __Host- cookies are bound to the exact host"
            )));
        }
    }
    if lower.starts_with("__secure-") && !c.session_cookie_secure {
        return Err(ConfigError::conflict(format!(
            "SESSION_COOKIE_NAME={name:?} requires SESSION_COOKIE_SECURE=true: \
             browsers drop __Secure- cookies that are not Secure"
        )));
    }
    if c.session_absolute_lifetime < c.permanent_session_lifetime {
        return Err(ConfigError::conflict(format!(
            "SESSION_ABSOLUTE_LIFETIME={} is shorter than PERMANENT_SESSION_LIFETIME={}: \
             the absolute lifetime must be at least the idle lifetime",
            humantime::format_duration(c.session_absolute_lifetime),
            humantime::format_duration(c.permanent_session_lifetime),
        )));
    }
    if c.session_format == SessionFormat::Flask && c.session_type == StoreKind::Filesystem {
        return Err(ConfigError::conflict(
            "SESSION_FORMAT=flask requires SESSION_TYPE=redis (or memory, in tests), not \
             filesystem: the Flask app shares sessions through Redis, and Portcullis's session \
             files are not Flask-Session's",
        ));
    }
    if c.session_format == SessionFormat::Flask
        && let Some(max) = c.session_max_per_user
    {
        return Err(ConfigError::conflict(format!(
            "SESSION_MAX_PER_USER={max} requires SESSION_FORMAT=native: the per-user index that \
             counts a user's sessions needs ids Portcullis mints, and a Flask app mints its own"
        )));
    }
    Ok(())
}
