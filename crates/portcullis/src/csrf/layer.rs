//! [`CsrfLayer`]: configuration of the CSRF middleware (token settings, trusted origins,
//! exemptions), turned into the [`Settings`] the service decides with.

use std::sync::Arc;
use std::time::Duration;

use axum_core::response::Response;
use http::Method;
use tower_http::csrf::ProtectionError;
use tower_layer::Layer;

use super::rejection::OriginRefused;
use super::service::{CsrfService, TokenService};
use super::{CsrfError, Settings};
use crate::response::Answer;

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
/// origins, no exemptions. [`CsrfLayer::from_config`] applies a loaded configuration instead.
#[derive(Clone, Debug)]
#[must_use]
pub struct CsrfLayer {
    settings: Settings,
    origins: tower_http::csrf::CsrfLayer,
}

impl CsrfLayer {
    /// The token check is on by default (`WTF_CSRF_ENABLED`).
    pub const DEFAULT_ENABLED: bool = true;
    /// Flask-WTF's `WTF_CSRF_TIME_LIMIT` default: one hour.
    pub const DEFAULT_TIME_LIMIT: Duration = Duration::from_secs(3600);
    /// Flask's `MAX_CONTENT_LENGTH` as the seed sets it: 1 MiB.
    pub const DEFAULT_MAX_BODY: usize = 1024 * 1024;

    /// A layer with the defaults above.
    pub fn new() -> Self {
        Self {
            settings: Settings {
                enabled: Self::DEFAULT_ENABLED,
                time_limit: Some(Self::DEFAULT_TIME_LIMIT),
                max_body: Self::DEFAULT_MAX_BODY,
                exempt: Vec::new(),
                trusted: Vec::new(),
            },
            origins: tower_http::csrf::CsrfLayer::new(),
        }
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
    /// [`InvalidTrustedOrigin`], naming `CSRF_TRUSTED_ORIGINS` and the value, when it is not
    /// such an origin.
    pub fn with_trusted_origin(
        mut self,
        origin: impl AsRef<str>,
    ) -> Result<Self, InvalidTrustedOrigin> {
        let origin = origin.as_ref();
        check_trusted_origin(origin).map_err(|allowed| InvalidTrustedOrigin {
            origin: origin.to_owned(),
            allowed,
        })?;
        // Invariant: check_trusted_origin runs tower-http's own validation first.
        self.origins = self
            .origins
            .add_trusted_origin(origin)
            .expect("check_trusted_origin accepts only origins tower-http accepts");
        self.settings.trusted.push(origin.to_owned());
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
        CsrfService::new(
            origin.layer(TokenService::new(inner, Arc::clone(&settings))),
            settings,
        )
    }
}

/// A trusted origin that a browser could never send, so that trusting it would trust nothing
/// ([`CsrfLayer::with_trusted_origin`]). Its message is the one the configuration gives for
/// `CSRF_TRUSTED_ORIGINS`.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("invalid CSRF_TRUSTED_ORIGINS={origin:?}: {allowed}")]
pub struct InvalidTrustedOrigin {
    /// The origin as given.
    pub origin: String,
    /// What a trusted origin must look like, and what is wrong with this one.
    pub allowed: String,
}

/// What `CSRF_TRUSTED_ORIGINS` accepts.
const ORIGINS_ALLOWED: &str =
    "origins as browsers send them, comma-separated, e.g. https://app.example.com";

/// Checks one trusted origin with tower-http's own validation (`http` or `https`, a host, no
/// path), then refuses what it accepts but a browser never sends, since such an entry would
/// silently trust nothing: capitals (browsers lower-case the origin), user info, and a default
/// port (browsers omit `:443` and `:80`). `Err` says what is allowed.
pub(crate) fn check_trusted_origin(origin: &str) -> Result<(), String> {
    if let Err(error) = tower_http::csrf::CsrfLayer::new().add_trusted_origin(origin) {
        return Err(format!("{ORIGINS_ALLOWED} ({error})"));
    }
    let authority = origin.split_once("://").map_or(origin, |(_, rest)| rest);
    let default_port = (origin.starts_with("https://") && authority.ends_with(":443"))
        || (origin.starts_with("http://") && authority.ends_with(":80"));
    let problem = if origin.bytes().any(|b| b.is_ascii_uppercase()) {
        "must be lower case"
    } else if authority.contains('@') {
        "must not hold user info"
    } else if default_port {
        "must leave out the default port"
    } else {
        return Ok(());
    };
    Err(format!(
        "{ORIGINS_ALLOWED} ({origin:?} {problem}, as browsers send it)"
    ))
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
