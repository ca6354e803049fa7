//! [`SessionLayer`]: configuration of the session middleware.

use std::sync::Arc;
use std::time::Duration;

use tower_layer::Layer;

use super::cookie::{SameSite, is_token_byte};
use super::devices::UserSessions;
use super::opened::OpenedRecords;
use super::service::SessionService;
use super::write::WriteLocks;
use super::{Format, Health, LayerShared, Settings};
use crate::clock::{Clock, SystemClock};
use crate::keys::KeyRing;
use crate::store::{SessionLimit, SessionStore};

/// Adds a [`Session`](super::Session) to every request.
///
/// Defaults are the seed's `Config`: cookie `session`, `Path=/`, `HttpOnly`, `Secure`,
/// `SameSite=Lax`, a 5-minute idle lifetime slid by every request, an 8-hour absolute
/// lifetime, a browser-session cookie (`SESSION_PERMANENT=false`), prefix `sess:`, signed
/// cookies, 64 KiB records, JSON errors under `/api/`, the native [`Format`].
/// Each default is a `DEFAULT_*` constant below; [`SessionLayer::from_config`] applies a loaded
/// configuration instead.
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
    /// The cookie's name, Flask's `SESSION_COOKIE_NAME` default.
    pub const DEFAULT_COOKIE_NAME: &'static str = "session";
    /// The cookie's `Path`: the whole site.
    pub const DEFAULT_COOKIE_PATH: &'static str = "/";
    /// The cookie is `Secure`: sent over HTTPS only.
    pub const DEFAULT_SECURE: bool = true;
    /// The cookie is `HttpOnly`: hidden from scripts.
    pub const DEFAULT_HTTP_ONLY: bool = true;
    /// The cookie's `SameSite`, as the seed's `Config` sets it.
    pub const DEFAULT_SAME_SITE: SameSite = SameSite::Lax;
    /// The idle lifetime of the seed's `Config`: 5 minutes.
    pub const DEFAULT_IDLE_LIFETIME: Duration = Duration::from_secs(300);
    /// The absolute lifetime: a working day, within OWASP's advice for the absolute timeout.
    pub const DEFAULT_ABSOLUTE_LIFETIME: Duration = Duration::from_secs(8 * 60 * 60);
    /// A browser-session cookie, as Flask's `SESSION_PERMANENT` default.
    pub const DEFAULT_PERMANENT: bool = false;
    /// Each load slides the idle expiry, as Flask's `SESSION_REFRESH_EACH_REQUEST` default.
    pub const DEFAULT_REFRESH_EACH_REQUEST: bool = true;
    /// The store key prefix, as Flask-Session's `SESSION_KEY_PREFIX` default.
    pub const DEFAULT_KEY_PREFIX: &'static str = "sess:";
    /// The cookie is signed.
    pub const DEFAULT_USE_SIGNER: bool = true;
    /// The largest encoded session data: 64 KiB.
    pub const DEFAULT_MAX_BYTES: usize = 64 * 1024;
    /// The path prefix whose error answers are JSON.
    pub const DEFAULT_JSON_PREFIX: &'static str = "/api/";

    /// A layer over `store`, signing and sealing with `keys`, with the defaults above.
    pub fn new(store: impl SessionStore, keys: KeyRing) -> Self {
        let settings = Settings {
            cookie_name: Self::DEFAULT_COOKIE_NAME.into(),
            cookie_path: Self::DEFAULT_COOKIE_PATH.into(),
            cookie_domain: None,
            secure: Self::DEFAULT_SECURE,
            http_only: Self::DEFAULT_HTTP_ONLY,
            same_site: super::cookie::same_site(Self::DEFAULT_SAME_SITE),
            idle: Self::DEFAULT_IDLE_LIFETIME,
            absolute: Self::DEFAULT_ABSOLUTE_LIFETIME,
            permanent: Self::DEFAULT_PERMANENT,
            refresh_each_request: Self::DEFAULT_REFRESH_EACH_REQUEST,
            key_prefix: Self::DEFAULT_KEY_PREFIX.into(),
            use_signer: Self::DEFAULT_USE_SIGNER,
            max_bytes: Self::DEFAULT_MAX_BYTES,
            json_prefix: Self::DEFAULT_JSON_PREFIX.into(),
            limit: SessionLimit::default(),
            format: Format::native(),
        };
        Self {
            shared: Arc::new(LayerShared {
                store: crate::metrics::measured(store),
                keys: Arc::new(keys),
                clock: Arc::new(SystemClock),
                settings,
                health: Health::default(),
                writers: Arc::new(WriteLocks::new()),
                opened: OpenedRecords::new(),
                routing: Arc::default(),
            }),
        }
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
            !name.is_empty() && name.bytes().all(is_token_byte),
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
    /// (`SESSION_MAX_PER_USER`, `SESSION_LIMIT_POLICY`; default: 50 sessions,
    /// [`SessionLimit::DEFAULT_MAX`], evict-oldest). With
    /// [`LimitPolicy::EvictOldest`](crate::store::LimitPolicy::EvictOldest) the log-in ends
    /// the user's oldest session; with [`LimitPolicy::Refuse`](crate::store::LimitPolicy::Refuse)
    /// it is answered 409 and nothing is written.
    pub fn with_session_limit(mut self, limit: SessionLimit) -> Self {
        self.settings().limit = limit;
        self
    }

    /// `SESSION_FORMAT` (default [`Format::native`]): how cookies, store keys, records and CSRF
    /// tokens look. `Format::flask` (the `flask` feature) shares the sessions of a Flask app (Flask-Session 0.8 on
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
