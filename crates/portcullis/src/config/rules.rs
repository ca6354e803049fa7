//! The rules that span two settings, checked once every value has parsed: cookie attributes
//! that browsers would reject together, lifetimes out of order, and the Flask format without a
//! store Flask can share or with a per-user limit. Each refusal is one line naming both
//! settings.

use super::{Config, ConfigError, SameSite, SessionFormat, StoreKind};

/// Refuses a setting that asks for what this build left out, then the first contradiction
/// between two settings.
pub(super) fn check(c: &Config) -> Result<(), ConfigError> {
    built_in(c)?;
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
    // The default cap is the native format's; the Flask format keeps no index and no cap.
    if c.session_format == SessionFormat::Flask
        && let Some(max) = c.session_max_per_user
        && max != crate::store::SessionLimit::DEFAULT_MAX
    {
        return Err(ConfigError::conflict(format!(
            "SESSION_MAX_PER_USER={max} requires SESSION_FORMAT=native: the per-user index that \
             counts a user's sessions needs ids Portcullis mints, and a Flask app mints its own"
        )));
    }
    Ok(())
}

/// Refuses `SESSION_TYPE=redis` without the `redis` feature and `SESSION_FORMAT=flask` without
/// the `flask` feature, at start-up, rather than at the first request.
fn built_in(c: &Config) -> Result<(), ConfigError> {
    if !cfg!(feature = "redis") && c.session_type == StoreKind::Redis {
        return Err(ConfigError::NotBuilt {
            setting: "SESSION_TYPE",
            value: "redis",
            feature: "redis",
        });
    }
    if !cfg!(feature = "flask") && c.session_format == SessionFormat::Flask {
        return Err(ConfigError::NotBuilt {
            setting: "SESSION_FORMAT",
            value: "flask",
            feature: "flask",
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use crate::config::test_support::*;

    #[test]
    fn conflicting_settings_are_refused_in_one_line_naming_both() {
        let secure = ("SESSION_COOKIE_SECURE", "true");
        let cases: &[(&[(&str, &str)], &str)] = &[
            (
                &[("SESSION_COOKIE_SAMESITE", "None")],
                "SESSION_COOKIE_SAMESITE=None requires SESSION_COOKIE_SECURE=true: \
                 browsers drop SameSite=None cookies that are not Secure",
            ),
            (
                &[("SESSION_COOKIE_NAME", "__Host-id")],
                "SESSION_COOKIE_NAME=\"__Host-id\" requires SESSION_COOKIE_SECURE=true: \
                 browsers drop __Host- cookies that are not Secure",
            ),
            (
                &[("SESSION_COOKIE_NAME", "__host-id")],
                "SESSION_COOKIE_NAME=\"__host-id\" requires SESSION_COOKIE_SECURE=true: \
                 browsers drop __Host- cookies that are not Secure",
            ),
            (
                &[
                    ("SESSION_COOKIE_NAME", "__Host-id"),
                    secure,
                    ("SESSION_COOKIE_PATH", "/app"),
                ],
                "SESSION_COOKIE_NAME=\"__Host-id\" requires SESSION_COOKIE_PATH=\"/\", not \"/app\": \
                 browsers drop __Host- cookies with another path",
            ),
            (
                &[
                    ("SESSION_COOKIE_NAME", "__Host-id"),
                    secure,
                    ("SESSION_COOKIE_DOMAIN", "example.com"),
                ],
                "SESSION_COOKIE_NAME=\"__Host-id\" forbids SESSION_COOKIE_DOMAIN=\"example.com\": \
                 __Host- cookies are bound to the exact host",
            ),
            (
                &[("SESSION_COOKIE_NAME", "__Secure-id")],
                "SESSION_COOKIE_NAME=\"__Secure-id\" requires SESSION_COOKIE_SECURE=true: \
                 browsers drop __Secure- cookies that are not Secure",
            ),
            (
                &[("SESSION_ABSOLUTE_LIFETIME", "1m")],
                "SESSION_ABSOLUTE_LIFETIME=1m is shorter than PERMANENT_SESSION_LIFETIME=5m: \
                 the absolute lifetime must be at least the idle lifetime",
            ),
        ];
        for &(pairs, expected) in cases {
            let err = error(pairs);
            assert!(matches!(err, ConfigError::Conflict { .. }), "{err:?}");
            assert_eq!(err.to_string(), expected);
        }
    }

    #[test]
    fn consistent_cookie_and_lifetime_settings_are_accepted() {
        let secure = ("SESSION_COOKIE_SECURE", "true");
        let cases: &[&[(&str, &str)]] = &[
            &[("SESSION_COOKIE_SAMESITE", "None"), secure],
            &[("SESSION_COOKIE_NAME", "__Host-id"), secure],
            &[
                ("SESSION_COOKIE_NAME", "__Secure-id"),
                secure,
                ("SESSION_COOKIE_DOMAIN", "example.com"),
            ],
            &[("SESSION_ABSOLUTE_LIFETIME", "5m")],
        ];
        for pairs in cases {
            assert!(load(&keyed(pairs)).is_ok(), "{pairs:?}");
        }
    }

    #[test]
    fn a_store_or_format_this_build_leaves_out_is_refused_naming_its_feature() {
        let redis = load(&keyed(&[("SESSION_TYPE", "redis")]));
        if cfg!(feature = "redis") {
            assert!(redis.is_ok(), "{redis:?}");
        } else {
            assert_eq!(
                redis.unwrap_err().to_string(),
                "SESSION_TYPE=redis needs portcullis's `redis` cargo feature, which this build \
                 leaves out: enable it (portcullis = { features = [\"redis\"] })"
            );
        }
        let flask = load(&keyed(&[
            ("SESSION_FORMAT", "flask"),
            ("SESSION_TYPE", "memory"),
        ]));
        if cfg!(feature = "flask") {
            assert!(flask.is_ok(), "{flask:?}");
        } else {
            assert_eq!(
                flask.unwrap_err().to_string(),
                "SESSION_FORMAT=flask needs portcullis's `flask` cargo feature, which this build \
                 leaves out: enable it (portcullis = { features = [\"flask\"] })"
            );
        }
    }

    #[cfg(feature = "flask")]
    #[test]
    fn the_flask_format_is_refused_with_the_file_store_in_one_line() {
        let err = error(&[("SESSION_FORMAT", "flask")]);
        assert_eq!(
            err.to_string(),
            "SESSION_FORMAT=flask requires SESSION_TYPE=redis (or memory, in tests), not filesystem: \
             the Flask app shares sessions through Redis, and Portcullis's session files are not \
             Flask-Session's"
        );
        assert!(
            load(&keyed(&[
                ("SESSION_FORMAT", "flask"),
                ("SESSION_TYPE", "memory")
            ]))
            .is_ok()
        );
    }
}
