//! [`AppState`]: what every handler shares: the configuration, the session store, the clock,
//! the accounts, the log-in and registration limiters, the password-hashing pool, the
//! templates, the auth-hash keys, the CSRF layer, and the one session layer of the process, from which every user's sessions are reached (the log-in
//! limit check, the command line).

use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use portcullis::SessionLayer;
use portcullis::clock::{Clock, SystemClock};
use portcullis::config::{Config, ConfigError};
use portcullis::csrf::CsrfLayer;
use portcullis::session::UserSessions;
use portcullis::store::{RedisStore, SessionStore};

use crate::accounts::AuthKeys;
use crate::accounts::device_cookie::DeviceCookies;
use crate::accounts::password::HashPool;
use crate::accounts::rate_limit::{
    LOGIN_REDIS_PREFIX, MemoryRateLimiter, REGISTER_REDIS_PREFIX, RateLimiter, RedisRateLimiter,
};
use crate::accounts::users::{Users, UsersError};
use crate::config::SiteConfig;
use crate::web::templates::Templates;

/// The site's shared state. Cheap to clone.
#[derive(Clone, Debug)]
pub struct AppState {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    config: Config,
    site_config: SiteConfig,
    store: Arc<dyn SessionStore>,
    clock: Arc<dyn Clock>,
    users: Users,
    limiter: Arc<dyn RateLimiter>,
    register_limits: RegisterLimits,
    hashing: HashPool,
    device_cookies: DeviceCookies,
    /// Whether the warning about `X-Forwarded-For` without `TRUSTED_PROXIES` was logged.
    warned_untrusted_forwarded: AtomicBool,
    /// A graceful shutdown has begun: `/readyz` answers 503.
    shutting_down: AtomicBool,
    templates: Templates,
    auth_keys: AuthKeys,
    csrf: CsrfLayer,
    /// The process's one session layer: the router mounts it and [`AppState::user_sessions`]
    /// comes from it, so both share one outage tracker and one set of write locks.
    sessions: SessionLayer,
}

/// The two registration limits: per client address and from everyone together.
#[derive(Debug)]
pub(crate) struct RegisterLimits {
    /// `REGISTER_RATE_LIMIT`, keyed by [`address_key`](crate::accounts::rate_limit::address_key).
    pub(crate) per_client: Arc<dyn RateLimiter>,
    /// `REGISTER_TOTAL_RATE_LIMIT`, on one key.
    pub(crate) total: Arc<dyn RateLimiter>,
}

/// Why the site could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The accounts database could not be opened or migrated.
    #[error(transparent)]
    Users(#[from] UsersError),
    /// The CSRF settings were refused.
    #[error(transparent)]
    Config(#[from] ConfigError),
}

impl AppState {
    /// Opens the accounts database (`DATABASE_URL`, migrated) and builds the state on the
    /// system clock.
    ///
    /// # Errors
    /// [`StartError::Users`] when the database cannot be opened or migrated;
    /// [`StartError::Config`] when a CSRF setting is refused.
    /// With `redis`, failed log-ins are counted there, shared by every process of the site;
    /// without, in this process.
    pub async fn open(
        config: Config,
        site_config: SiteConfig,
        store: Arc<dyn SessionStore>,
        redis: Option<Arc<RedisStore>>,
    ) -> Result<Self, StartError> {
        Self::build(config, site_config, store, Arc::new(SystemClock), redis).await
    }

    /// As [`AppState::open`], reading time from `clock` (the session layer, the pages and the
    /// limiter all use it; tests pass a `ManualClock`, with a store on the same clock).
    ///
    /// # Errors
    /// As [`AppState::open`].
    pub async fn open_with_clock(
        config: Config,
        site_config: SiteConfig,
        store: Arc<dyn SessionStore>,
        clock: Arc<dyn Clock>,
    ) -> Result<Self, StartError> {
        Self::build(config, site_config, store, clock, None).await
    }

    async fn build(
        config: Config,
        site_config: SiteConfig,
        store: Arc<dyn SessionStore>,
        clock: Arc<dyn Clock>,
        redis: Option<Arc<RedisStore>>,
    ) -> Result<Self, StartError> {
        let csrf = CsrfLayer::from_config(&config)?;
        let users = Users::open(&site_config.database_url).await?;
        // With Redis, the counts are shared by every process of the site; without, per process.
        let limiter = |limit, prefix| -> Arc<dyn RateLimiter> {
            match &redis {
                Some(redis) => Arc::new(RedisRateLimiter::new(limit, Arc::clone(redis), prefix)),
                None => Arc::new(MemoryRateLimiter::new(limit, Arc::clone(&clock))),
            }
        };
        let login = limiter(site_config.login_rate_limit, LOGIN_REDIS_PREFIX);
        let register_limits = RegisterLimits {
            per_client: limiter(site_config.register_rate_limit, REGISTER_REDIS_PREFIX),
            total: limiter(site_config.register_total_rate_limit, REGISTER_REDIS_PREFIX),
        };
        let hashing = HashPool::new(site_config.password_hash_queue);
        let device_cookies = DeviceCookies::new(&config, Arc::clone(&clock));
        let auth_keys = AuthKeys::from_config(&config);
        let sessions =
            SessionLayer::from_config(&config, Arc::clone(&store)).with_clock(Arc::clone(&clock));
        Ok(Self {
            inner: Arc::new(Inner {
                config,
                site_config,
                store,
                clock,
                users,
                limiter: login,
                register_limits,
                hashing,
                device_cookies,
                warned_untrusted_forwarded: AtomicBool::new(false),
                shutting_down: AtomicBool::new(false),
                templates: Templates::new(),
                auth_keys,
                csrf,
                sessions,
            }),
        })
    }

    /// The configuration.
    #[must_use]
    pub fn config(&self) -> &Config {
        &self.inner.config
    }

    /// The site's own settings.
    #[must_use]
    pub fn site_config(&self) -> &SiteConfig {
        &self.inner.site_config
    }

    pub(crate) fn store(&self) -> &Arc<dyn SessionStore> {
        &self.inner.store
    }

    pub(crate) fn clock(&self) -> &Arc<dyn Clock> {
        &self.inner.clock
    }

    /// The accounts.
    #[must_use]
    pub fn users(&self) -> &Users {
        &self.inner.users
    }

    pub(crate) fn limiter(&self) -> &dyn RateLimiter {
        self.inner.limiter.as_ref()
    }

    pub(crate) fn register_limits(&self) -> &RegisterLimits {
        &self.inner.register_limits
    }

    /// Where password hashes run (`PASSWORD_HASH_QUEUE`).
    #[must_use]
    pub fn password_hashing(&self) -> &HashPool {
        &self.inner.hashing
    }

    pub(crate) fn device_cookies(&self) -> &DeviceCookies {
        &self.inner.device_cookies
    }

    /// True the first time only: whether to log that requests carry `X-Forwarded-For` while
    /// no proxy is trusted.
    pub(crate) fn first_untrusted_forwarded(&self) -> bool {
        !self
            .inner
            .warned_untrusted_forwarded
            .swap(true, std::sync::atomic::Ordering::Relaxed)
    }

    /// Marks the start of a graceful shutdown: from now on `/readyz` answers 503.
    pub fn begin_shutdown(&self) {
        self.inner
            .shutting_down
            .store(true, std::sync::atomic::Ordering::SeqCst);
    }

    /// Whether a graceful shutdown has begun.
    #[must_use]
    pub fn shutting_down(&self) -> bool {
        self.inner
            .shutting_down
            .load(std::sync::atomic::Ordering::SeqCst)
    }

    pub(crate) fn templates(&self) -> &Templates {
        &self.inner.templates
    }

    pub(crate) fn auth_keys(&self) -> &AuthKeys {
        &self.inner.auth_keys
    }

    pub(crate) fn csrf(&self) -> &CsrfLayer {
        &self.inner.csrf
    }

    /// The session layer, for the router to mount.
    pub(crate) fn session_layer(&self) -> &SessionLayer {
        &self.inner.sessions
    }

    /// Every user's sessions (list, end), through the session layer: the site's store, keys
    /// and lifetimes.
    pub(crate) fn user_sessions(&self) -> UserSessions {
        self.inner.sessions.user_sessions()
    }
}
