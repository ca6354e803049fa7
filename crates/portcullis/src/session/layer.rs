//! [`SessionLayer`]: configuration of the session middleware.

use std::sync::Arc;
use std::time::Duration;

use tower_layer::Layer;

use super::devices::UserSessions;
use super::service::SessionService;
use super::write::WriteLocks;
use super::{Format, Health, LayerShared, Settings};
use crate::clock::{Clock, SystemClock};
use crate::config::{Config, SameSite, SessionFormat};
use crate::keys::KeyRing;
use crate::store::{SessionLimit, SessionStore};

/// Adds a [`Session`](super::Session) to every request.
///
/// Defaults are the seed's `Config`: cookie `session`, `Path=/`, `HttpOnly`, `Secure`,
/// `SameSite=Lax`, a 5-minute idle lifetime slid by every request, an 8-hour absolute
/// lifetime, a browser-session cookie (`SESSION_PERMANENT=false`), prefix `sess:`, signed
/// cookies, 64 KiB records, JSON errors under `/api/`, the native [`Format`].
/// [`SessionLayer::from_config`] applies a loaded [`Config`] instead.
///
/// ```
/// use axum::{Router, routing::get};
/// use portcullis::{SessionLayer, keys::KeyRing, store::MemoryStore};
/// use std::time::Duration;
///
/// let keys = KeyRing::new(b"a secret key of at least thirty-two bytes", &[]);
/// let sessions = SessionLayer::new(MemoryStore::new(), keys)
///     .with_idle_lifetime(Duration::from_secs(300))
///     .with_secure(false); // plain HTTP in development only
/// let app: Router = Router::new().route("/", get(|| async { "hi" })).layer(sessions);
/// ```
#[derive(Clone, Debug)]
#[must_use]
pub struct SessionLayer {
    shared: Arc<LayerShared>,
}

impl SessionLayer {
    /// A layer over `store`, signing and sealing with `keys`, with the defaults above.
    pub fn new(store: impl SessionStore, keys: KeyRing) -> Self {
        let settings = Settings {
            cookie_name: "session".into(),
            cookie_path: "/".into(),
            cookie_domain: None,
            secure: true,
            http_only: true,
            same_site: ::cookie::SameSite::Lax,
            idle: Duration::from_secs(300),
            absolute: Duration::from_secs(8 * 3600),
            permanent: false,
            refresh_each_request: true,
            key_prefix: "sess:".into(),
            use_signer: true,
            max_bytes: 64 * 1024,
            json_prefix: "/api/".into(),
            limit: SessionLimit::default(),
            format: Format::native(),
        };
        Self {
            shared: Arc::new(LayerShared {
                store: Arc::new(store),
                keys: Arc::new(keys),
                clock: Arc::new(SystemClock),
                settings,
                health: Health::default(),
                writers: Arc::new(WriteLocks::new()),
            }),
        }
    }

    /// A layer configured from the Flask-named settings of `config`, with its key ring.
    pub fn from_config(config: &Config, store: impl SessionStore) -> Self {
        let mut layer = Self::new(store, config.key_ring());
        let s = layer.settings();
        s.cookie_name.clone_from(&config.session_cookie_name);
        s.cookie_path.clone_from(&config.session_cookie_path);
        s.cookie_domain.clone_from(&config.session_cookie_domain);
        s.secure = config.session_cookie_secure;
        s.http_only = config.session_cookie_httponly;
        s.same_site = super::cookie::same_site(config.session_cookie_samesite);
        s.idle = config.permanent_session_lifetime;
        s.absolute = config.session_absolute_lifetime;
        s.permanent = config.session_permanent;
        s.refresh_each_request = config.session_refresh_each_request;
        s.key_prefix.clone_from(&config.session_key_prefix);
        s.use_signer = config.session_use_signer;
        s.max_bytes = config.session_max_bytes;
        s.limit = SessionLimit {
            max: config.session_max_per_user,
            policy: config.session_limit_policy,
        };
        s.format = match config.session_format {
            SessionFormat::Native => Format::native(),
            SessionFormat::Flask => Format::flask(config.secret_key.as_bytes()),
        };
        layer
    }

    /// A handle on every user's sessions, for administrators: list a user's devices, end one,
    /// end all (see [`UserSessions`]). Uses this layer's store, keys and lifetimes.
    #[must_use]
    pub fn user_sessions(&self) -> UserSessions {
        UserSessions::new(Arc::clone(&self.shared))
    }

    /// What the layer's requests share, for the unit tests of the steps that use it.
    #[cfg(test)]
    pub(crate) fn shared(&self) -> Arc<LayerShared> {
        Arc::clone(&self.shared)
    }

    fn settings(&mut self) -> &mut Settings {
        &mut Arc::make_mut(&mut self.shared).settings
    }

    /// Cookie name (`SESSION_COOKIE_NAME`, default `session`), matched exactly.
    ///
    /// # Panics
    /// If `name` is empty or holds a character not allowed in a cookie name (RFC 6265 token).
    pub fn with_cookie_name(mut self, name: impl Into<String>) -> Self {
        let name = name.into();
        assert!(
            !name.is_empty() && name.bytes().all(crate::config::is_token_byte),
            "cookie name {name:?} must be a non-empty RFC 6265 token"
        );
        self.settings().cookie_name = name;
        self
    }

    /// Cookie `Path` (`SESSION_COOKIE_PATH`, default `/`).
    pub fn with_cookie_path(mut self, path: impl Into<String>) -> Self {
        self.settings().cookie_path = path.into();
        self
    }

    /// Cookie `Domain` (`SESSION_COOKIE_DOMAIN`, default none: this host only).
    pub fn with_cookie_domain(mut self, domain: Option<String>) -> Self {
        self.settings().cookie_domain = domain;
        self
    }

    /// Cookie `Secure` (`SESSION_COOKIE_SECURE`, default `true`): HTTPS only.
    pub fn with_secure(mut self, secure: bool) -> Self {
        self.settings().secure = secure;
        self
    }

    /// Cookie `HttpOnly` (`SESSION_COOKIE_HTTPONLY`, default `true`): hidden from scripts.
    pub fn with_http_only(mut self, http_only: bool) -> Self {
        self.settings().http_only = http_only;
        self
    }

    /// Cookie `SameSite` (`SESSION_COOKIE_SAMESITE`, default `Lax`).
    pub fn with_same_site(mut self, same_site: SameSite) -> Self {
        self.settings().same_site = super::cookie::same_site(same_site);
        self
    }

    /// Idle lifetime (`PERMANENT_SESSION_LIFETIME`, default 5 minutes): a session unused for
    /// this long is gone.
    pub fn with_idle_lifetime(mut self, idle: Duration) -> Self {
        self.settings().idle = idle;
        self
    }

    /// Absolute lifetime (`SESSION_ABSOLUTE_LIFETIME`, default 8 hours): a session is gone this
    /// long after it began or was regenerated, however active.
    pub fn with_absolute_lifetime(mut self, absolute: Duration) -> Self {
        self.settings().absolute = absolute;
        self
    }

    /// `SESSION_PERMANENT` (default `false`): whether the cookie carries `Max-Age`/`Expires`,
    /// re-sent (sliding) on every response that loaded the session.
    pub fn with_permanent(mut self, permanent: bool) -> Self {
        self.settings().permanent = permanent;
        self
    }

    /// `SESSION_REFRESH_EACH_REQUEST` (default `true`): whether each load slides the idle expiry.
    /// With `false`, idle time counts from the last write, as in Flask.
    pub fn with_refresh_each_request(mut self, refresh: bool) -> Self {
        self.settings().refresh_each_request = refresh;
        self
    }

    /// `SESSION_KEY_PREFIX` (default `sess:`), put before the hashed id in store keys.
    pub fn with_key_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.settings().key_prefix = prefix.into();
        self
    }

    /// `SESSION_USE_SIGNER` (default `true`): sign the cookie. Without it the cookie is the bare
    /// id, still 256 random bits, but a stolen store key list is one step closer to a cookie.
    pub fn with_signer(mut self, use_signer: bool) -> Self {
        self.settings().use_signer = use_signer;
        self
    }

    /// `SESSION_MAX_BYTES` (default 64 KiB): the largest encoded session data.
    pub fn with_max_bytes(mut self, max_bytes: usize) -> Self {
        self.settings().max_bytes = max_bytes;
        self
    }

    /// The most live sessions one user may have, and what a log-in beyond it does
    /// (`SESSION_MAX_PER_USER`, `SESSION_LIMIT_POLICY`; default: no limit). With
    /// [`LimitPolicy::EvictOldest`](crate::store::LimitPolicy::EvictOldest) the log-in ends
    /// the user's oldest session; with [`LimitPolicy::Refuse`](crate::store::LimitPolicy::Refuse)
    /// it is answered 409 and nothing is written.
    pub fn with_session_limit(mut self, limit: SessionLimit) -> Self {
        self.settings().limit = limit;
        self
    }

    /// `SESSION_FORMAT` (default [`Format::native`]): how cookies, store keys, records and CSRF
    /// tokens look. [`Format::flask`] shares the sessions of a Flask app (Flask-Session 0.8 on
    /// the same Redis, Flask-WTF 1.3, the same `SECRET_KEY`); see the crate docs, "Formats".
    pub fn with_format(mut self, format: Format) -> Self {
        self.settings().format = format;
        self
    }

    /// The clock used for expiry decisions (default: the system clock). Tests use
    /// [`ManualClock`](crate::clock::ManualClock).
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        Arc::make_mut(&mut self.shared).clock = clock;
        self
    }
}

impl<S> Layer<S> for SessionLayer {
    type Service = SessionService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        SessionService::new(inner, Arc::clone(&self.shared))
    }
}
