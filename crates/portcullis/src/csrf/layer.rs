//! [`CsrfLayer`]: configuration of the CSRF middleware (token settings, trusted origins,
//! exemptions) and the [`Settings`] the service decides with.

use std::sync::Arc;
use std::time::Duration;

use axum_core::response::Response;
use http::Method;
use tower_http::csrf::ProtectionError;
use tower_layer::Layer;

use super::CsrfError;
use super::service::{CsrfService, OriginRefused, TokenService};
use crate::config::{Config, ConfigError};
use crate::response::Answer;

/// Flask-WTF's `WTF_CSRF_TIME_LIMIT` default: one hour.
const DEFAULT_TIME_LIMIT: Duration = Duration::from_secs(3600);
/// Flask's `MAX_CONTENT_LENGTH` as the seed sets it: 1 MiB.
const DEFAULT_MAX_BODY: usize = 1024 * 1024;

/// Protects every unsafe request (any method but GET, HEAD, OPTIONS and TRACE): first the
/// origin check, then the token check. See the [module docs](super) for what each does.
///
/// It must sit *inside* the [`SessionLayer`](crate::SessionLayer), which is added after it:
///
/// ```
/// use axum::{Router, routing::post};
/// use portcullis::{SessionLayer, csrf::CsrfLayer, keys::KeyRing, store::MemoryStore};
///
/// let keys = KeyRing::new(b"a secret key of at least thirty-two bytes", &[]);
/// let app: Router = Router::new()
///     .route("/save", post(|| async { "saved" }))
///     .route("/hooks/payments", post(|| async { "ok" }))
///     .layer(CsrfLayer::new().exempt(axum::http::Method::POST, "/hooks/payments"))
///     .layer(SessionLayer::new(MemoryStore::new(), keys));
/// ```
///
/// Defaults: token check on (`WTF_CSRF_ENABLED`), tokens valid for one hour
/// (`WTF_CSRF_TIME_LIMIT`), form bodies read up to 1 MiB (`MAX_CONTENT_LENGTH`), no trusted
/// origins, no exemptions. [`CsrfLayer::from_config`] applies a loaded [`Config`] instead.
#[derive(Clone, Debug)]
#[must_use]
pub struct CsrfLayer {
    settings: Settings,
    origins: tower_http::csrf::CsrfLayer,
}

/// What the token check needs to decide.
#[derive(Clone, Debug)]
pub(crate) struct Settings {
    pub(crate) enabled: bool,
    pub(crate) time_limit: Option<Duration>,
    pub(crate) max_body: usize,
    /// Exact (method, raw path) pairs; few, so a list beats a map.
    pub(crate) exempt: Vec<(Method, String)>,
}

impl Settings {
    /// Whether `method` and `path` are exempt from both checks: compared byte for byte with the
    /// path the router dispatches on, so `/x/`, `/%78` or `/a/../x` never match `/x`.
    pub(crate) fn is_exempt(&self, method: &Method, path: &str) -> bool {
        self.exempt
            .iter()
            .any(|(m, p)| m == method && p.as_bytes() == path.as_bytes())
    }

    /// Whether a request must carry a valid token: the token check is on, the method is unsafe
    /// and the route is not exempt. RFC 9110 section 9.2.1 calls GET, HEAD, OPTIONS and TRACE
    /// safe: they must not change state, so they need no proof of origin.
    pub(crate) fn requires_token(&self, method: &Method, path: &str) -> bool {
        self.enabled && !method.is_safe() && !self.is_exempt(method, path)
    }
}

impl CsrfLayer {
    /// A layer with the defaults above.
    pub fn new() -> Self {
        Self {
            settings: Settings {
                enabled: true,
                time_limit: Some(DEFAULT_TIME_LIMIT),
                max_body: DEFAULT_MAX_BODY,
                exempt: Vec::new(),
            },
            origins: tower_http::csrf::CsrfLayer::new(),
        }
    }

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

    /// `WTF_CSRF_ENABLED` (default `true`). With `false` no token is asked for, but the origin
    /// check still refuses cross-origin requests: turning tokens off for an API client must not
    /// open the site's forms to other sites.
    pub fn with_enabled(mut self, enabled: bool) -> Self {
        self.settings.enabled = enabled;
        self
    }

    /// `WTF_CSRF_TIME_LIMIT` (default one hour): how long a token stays valid after it is
    /// rendered; `None` for no limit beyond the session's own lifetime.
    pub fn with_time_limit(mut self, limit: Option<Duration>) -> Self {
        self.settings.time_limit = limit;
        self
    }

    /// `MAX_CONTENT_LENGTH` (default 1 MiB): the largest form body read to find the token. A
    /// larger one is refused with 413 before it is buffered. Bodies that are not forms, and
    /// requests that carry the token in a header, are not read here.
    pub fn with_max_body(mut self, bytes: usize) -> Self {
        self.settings.max_body = bytes;
        self
    }

    /// Trusts `origin` (`CSRF_TRUSTED_ORIGINS`, default none), e.g. `https://app.example.com`:
    /// a request whose `Origin` header is byte for byte this value passes the origin check even
    /// when cross-site. It still needs a valid token.
    ///
    /// Write it as a browser sends it: `http` or `https`, the host in lower case, no default
    /// port, no path or trailing slash.
    ///
    /// # Errors
    /// [`ConfigError::Invalid`] naming `CSRF_TRUSTED_ORIGINS` and the value, when it is not such
    /// an origin.
    pub fn with_trusted_origin(mut self, origin: impl AsRef<str>) -> Result<Self, ConfigError> {
        let origin = origin.as_ref();
        crate::config::check_trusted_origin(origin).map_err(|allowed| ConfigError::Invalid {
            setting: "CSRF_TRUSTED_ORIGINS",
            value: origin.to_owned(),
            allowed,
        })?;
        // Invariant: check_trusted_origin runs tower-http's own validation first.
        self.origins = self
            .origins
            .add_trusted_origin(origin)
            .expect("check_trusted_origin accepts only origins tower-http accepts");
        Ok(self)
    }

    /// Exempts requests with exactly this method and path from both checks (default: none), for
    /// webhooks and other endpoints that prove their origin another way (a signature). The path
    /// is compared byte for byte with the request's, as the router it wraps sees it: no
    /// trailing-slash, case, percent-decoding or dot-segment variant matches.
    pub fn exempt(mut self, method: Method, path: impl Into<String>) -> Self {
        self.settings.exempt.push((method, path.into()));
        self
    }
}

impl Default for CsrfLayer {
    fn default() -> Self {
        Self::new()
    }
}

impl<S> Layer<S> for CsrfLayer {
    type Service = CsrfService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        let settings = Arc::new(self.settings.clone());
        let bypass = Arc::clone(&settings);
        let origin = self
            .origins
            .clone()
            // The origin check treats TRACE as unsafe (Go's choice); here all four safe methods
            // pass untouched, as the token check does. Exempt routes skip it too.
            .with_insecure_bypass(move |method, uri| {
                method.is_safe() || bypass.is_exempt(method, uri.path())
            })
            .with_rejection_response(refuse_cross_origin as fn(ProtectionError) -> Response);
        CsrfService::new(origin.layer(TokenService::new(inner, settings)))
    }
}

/// The origin check's refusal: our 403 page, marked so that the service can switch it to JSON
/// for API paths and log it with the request's method and path. tower-http attaches the
/// [`ProtectionError`] itself.
fn refuse_cross_origin(_: ProtectionError) -> Response {
    let mut response = CsrfError::CrossOrigin.to_response(Answer::Page);
    response.extensions_mut().insert(OriginRefused);
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_unsafe_unexempted_requests_need_a_token() {
        let settings = CsrfLayer::new().exempt(Method::POST, "/hook").settings;
        // (method, path, needs a token)
        let cases = [
            (Method::POST, "/form", true),
            (Method::PUT, "/form", true),
            (Method::PATCH, "/form", true),
            (Method::DELETE, "/form", true),
            (Method::from_bytes(b"PURGE").unwrap(), "/form", true),
            (Method::GET, "/form", false),
            (Method::HEAD, "/form", false),
            (Method::OPTIONS, "/form", false),
            (Method::TRACE, "/form", false),
            (Method::POST, "/hook", false),
            (Method::PUT, "/hook", true),
            (Method::POST, "/hook/", true),
            (Method::POST, "/hook//", true),
            (Method::POST, "/a/../hook", true),
            (Method::POST, "/%68ook", true),
            (Method::POST, "/HOOK", true),
            (Method::POST, "hook", true),
        ];
        for (method, path, expected) in cases {
            assert_eq!(
                settings.requires_token(&method, path),
                expected,
                "{method} {path}"
            );
        }
        let off = CsrfLayer::new().with_enabled(false).settings;
        assert!(!off.requires_token(&Method::POST, "/form"));
    }

    #[test]
    fn a_bad_trusted_origin_is_refused_naming_the_setting_and_value() {
        let cases = [
            "https://app.example.com/",
            "app.example.com",
            "ftp://app.example.com",
            "https://App.Example.com",
            "https://app.example.com:443",
            "http://app.example.com:80",
            "https://app.example.com/path",
        ];
        for origin in cases {
            let error = CsrfLayer::new().with_trusted_origin(origin).unwrap_err();
            let message = error.to_string();
            assert!(
                message.starts_with(&format!("invalid CSRF_TRUSTED_ORIGINS={origin:?}: ")),
                "{message}"
            );
            assert!(!message.contains('\n'));
        }
        for origin in [
            "https://app.example.com",
            "http://localhost:8080",
            "https://app.example.com:8443",
        ] {
            assert!(
                CsrfLayer::new().with_trusted_origin(origin).is_ok(),
                "{origin}"
            );
        }
    }
}
