//! A loaded [`Config`] applied to the layers and stores: the `from_config` constructors. They
//! live here, as inherent impls, so that `config` imports `session`, `csrf` and `store` and none
//! of them imports `config`.

use super::{Config, ConfigError, SessionFormat};
use crate::csrf::{CsrfLayer, InvalidTrustedOrigin};
use crate::session::{Format, SessionLayer};
#[cfg(feature = "redis")]
use crate::store::{RedisReplication, RedisStore, RedisTimeouts, RedisUrlError};
use crate::store::{SessionLimit, SessionStore};

impl SessionLayer {
    /// A layer configured from the Flask-named settings of `config`, with its key ring.
    ///
    /// # Panics
    /// If `config.session_cookie_name` is not a cookie name, as [`SessionLayer::with_cookie_name`]
    /// does; and if `config.session_format` is Flask's in a build without the `flask` feature.
    /// A [`Config`] from [`Config::load`] has passed the same checks.
    pub fn from_config(config: &Config, store: impl SessionStore) -> Self {
        let format = match config.session_format {
            SessionFormat::Native => Format::native(),
            #[cfg(feature = "flask")]
            SessionFormat::Flask => Format::flask(config.secret_key.as_bytes()),
            #[cfg(not(feature = "flask"))]
            SessionFormat::Flask => panic!(
                "SESSION_FORMAT=flask needs the `flask` feature; Config::load refuses it without"
            ),
        };
        Self::new(store, config.key_ring())
            .with_cookie_name(&config.session_cookie_name)
            .with_cookie_path(&config.session_cookie_path)
            .with_cookie_domain(config.session_cookie_domain.clone())
            .with_secure(config.session_cookie_secure)
            .with_http_only(config.session_cookie_httponly)
            .with_same_site(config.session_cookie_samesite)
            .with_idle_lifetime(config.permanent_session_lifetime)
            .with_absolute_lifetime(config.session_absolute_lifetime)
            .with_permanent(config.session_permanent)
            .with_refresh_each_request(config.session_refresh_each_request)
            .with_key_prefix(&config.session_key_prefix)
            .with_signer(config.session_use_signer)
            .with_max_bytes(config.session_max_bytes)
            .with_session_limit(SessionLimit {
                max: config.session_max_per_user,
                policy: config.session_limit_policy,
            })
            .with_format(format)
    }
}

impl CsrfLayer {
    /// A layer configured from `WTF_CSRF_ENABLED`, `WTF_CSRF_TIME_LIMIT`, `MAX_CONTENT_LENGTH`
    /// and `CSRF_TRUSTED_ORIGINS`.
    ///
    /// # Errors
    /// [`ConfigError::Invalid`] naming `CSRF_TRUSTED_ORIGINS` when an origin is not one a
    /// browser could send ([`Config::load`] already refuses those; this guards a `Config` whose
    /// fields were changed afterwards).
    pub fn from_config(config: &Config) -> Result<Self, ConfigError> {
        let mut layer = Self::new()
            .with_enabled(config.wtf_csrf_enabled)
            .with_time_limit(config.wtf_csrf_time_limit)
            .with_max_body(config.max_content_length);
        for origin in &config.csrf_trusted_origins {
            layer = layer.with_trusted_origin(origin)?;
        }
        Ok(layer)
    }
}

#[cfg(feature = "redis")]
impl RedisStore {
    /// A store for `REDIS_URL` with `REDIS_CONNECT_TIMEOUT`, `REDIS_RESPONSE_TIMEOUT`,
    /// `REDIS_SENTINEL_PASSWORD`, `REDIS_WAIT_REPLICAS` and `REDIS_NATIVE_CAS`; see
    /// [`RedisStore::connect_with`] and [`RedisStore::with_native_cas`].
    ///
    /// # Errors
    /// [`RedisUrlError`], as for [`RedisStore::connect`] (a loaded [`Config`] has already
    /// been checked the same way, so this fails only for a hand-edited one).
    pub async fn from_config(config: &Config) -> Result<Self, RedisUrlError> {
        let timeouts = RedisTimeouts {
            connect: config.redis_connect_timeout,
            response: config.redis_response_timeout,
        };
        let replication = RedisReplication {
            sentinel_password: config.redis_sentinel_password.clone(),
            wait_replicas: config.redis_wait_replicas,
        };
        Ok(
            Self::connect_with(&config.redis_url, timeouts, &replication)
                .await?
                .with_native_cas(config.redis_native_cas),
        )
    }
}

/// The configuration's error for a trusted origin the CSRF layer refuses: the same
/// [`ConfigError::Invalid`] that loading gives.
impl From<InvalidTrustedOrigin> for ConfigError {
    fn from(error: InvalidTrustedOrigin) -> Self {
        Self::Invalid {
            setting: "CSRF_TRUSTED_ORIGINS",
            value: error.origin,
            allowed: error.allowed,
        }
    }
}
