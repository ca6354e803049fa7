//! CSRF protection: every state-changing request must prove that it comes from the site's own
//! pages.
//!
//! Add one layer to the router, inside the [`SessionLayer`](crate::SessionLayer), and one
//! helper to each form ([`CsrfToken::hidden_input`]). Safe methods (GET, HEAD, OPTIONS, TRACE)
//! pass untouched and never create a secret; every other method is checked twice.
//!
//! # Defence in depth
//!
//! 1. **Origin check**, in two steps.
//!    - *Fetch Metadata gate* ([`tower_http::csrf`], Go 1.25's `CrossOriginProtection`):
//!      `Sec-Fetch-Site: same-origin` or `none` (typed in the address bar) passes on;
//!      `same-site`, `cross-site` and any other value (the Fetch spec has four, in lower case,
//!      so `Same-Origin` or a list is refused too, stricter than "treat as missing") are refused.
//!    - *Full origin* (`origin.rs`, Django's `_origin_verified`): an `Origin` must equal the
//!      site's [`PublicOrigin`] in scheme, host and port, whatever `Sec-Fetch-Site` said, so
//!      `http://site` cannot post to `https://site` and `https://site.attacker.example` is
//!      nobody's. `Origin: null` is refused unless `Sec-Fetch-Site` vouched for the request
//!      (browsers send `null` from pages with `Referrer-Policy: no-referrer`).
//!    - *`Referer` rule* (Django's `_check_referer`): over HTTPS, with tokens on, in the native
//!      format, a request with neither `Sec-Fetch-Site` nor `Origin` must carry a `Referer`
//!      that is an `https` URL on the site's origin (or a trusted one). Over plain HTTP, with
//!      neither header, the request passes to the token check: it is not from a browser (curl,
//!      a server-side client), and CSRF is an attack through a victim's browser.
//!
//!    The site's origin is the [`PublicOrigin`] an application put in the request (the
//!    reference site's `PUBLIC_ORIGIN`, or a trusted proxy's `X-Forwarded-Proto` and
//!    `X-Forwarded-Host`); without one, the request's own: `https` when it came over HTTPS
//!    ([`Https`]), else `http`, with its `Host`. Behind a TLS-terminating proxy say which, or
//!    every `Origin: https://…` is refused. An `Origin` listed in `CSRF_TRUSTED_ORIGINS`
//!    ([`CsrfLayer::with_trusted_origin`], matched byte for byte, e.g.
//!    `https://app.example.com`) passes all three steps whatever `Sec-Fetch-Site` says; that is
//!    all it allows, the token is still required. Every answer to a request these steps
//!    decided carries `Vary: Sec-Fetch-Site` (added once), so no cache serves one browser's
//!    answer to another.
//! 2. **Token check** (Flask-WTF's synchronizer token). The session holds a 256-bit secret from
//!    the OS generator under [`SESSION_KEY`] (`csrf_token`), created the first time a page asks
//!    for a token (for an anonymous visitor with nothing stored yet, in a signed, `HttpOnly`
//!    pre-session cookie, `<cookie name>-csrf`, instead: form pages write no record, and the
//!    session takes the secret over once it is stored). Each rendering masks it with a fresh
//!    one-time pad (so the same secret never renders the same string twice, which defeats
//!    BREACH), stamps the issue time, and authenticates both with HMAC-SHA256 under the key ring's CSRF key (current key to issue,
//!    fallbacks too to verify). A token is valid for `WTF_CSRF_TIME_LIMIT` (default one hour;
//!    `None`: as long as the session) and only for the session whose secret it carries;
//!    the secrets are compared in constant time. [`Session::regenerate`](crate::Session::regenerate)
//!    (log in) and [`Session::destroy`](crate::Session::destroy) (log out) drop the secret, so
//!    tokens rendered before stop working.
//!
//!    In the Flask session format (`Format::flask`, the `flask` feature) the secret
//!    and the tokens are Flask-WTF 1.3's instead (`flask.rs`): a 40-hex `csrf_token` and
//!    itsdangerous-signed tokens, so a form rendered by the Flask app posts here and the other
//!    way round; over HTTPS ([`Https`]) the `Referer` must also be on this host, as Flask-WTF
//!    asks.
//!
//! # Usage
//!
//! ```
//! use axum::{Router, response::Html, routing::get};
//! use portcullis::{SessionLayer, csrf::{CsrfLayer, CsrfToken}, keys::KeyRing, store::MemoryStore};
//!
//! async fn form(csrf: CsrfToken) -> Html<String> {
//!     Html(format!("<form method=post>{}<button>Save</button></form>", csrf.hidden_input()))
//! }
//! let keys = KeyRing::new(b"a secret key of at least thirty-two bytes", &[]);
//! let app: Router = Router::new()
//!     .route("/", get(form).post(|| async { "saved" }))
//!     .layer(CsrfLayer::new()) // inside the session layer: it reads the session
//!     .layer(SessionLayer::new(MemoryStore::new(), keys));
//! ```
//!
//! With a loaded configuration, use [`CsrfLayer::from_config`]. The crate docs run this app: a
//! POST without the token is refused, with it accepted.
//!
//! # Where tokens are read
//!
//! The `X-CSRFToken` or `X-CSRF-Token` header (for scripts: [`CsrfToken::meta_tag`] puts the
//! token in the page), else the `csrf_token` field of an `application/x-www-form-urlencoded`
//! or `multipart/form-data` body. Never the query string (it leaks into logs and `Referer`) or
//! a cookie (another site can plant one). A form body is read to find the field, up to
//! `MAX_CONTENT_LENGTH` (default 1 MiB; 413 beyond, announced or streamed), and handed on to
//! the handler byte for byte. Other bodies, and requests with the header, are not read.
//!
//! # Failures
//!
//! A refused request gets a 403 whose reason is Flask-WTF's, as a small HTML page, or as JSON
//! (`{"error": "…", "status": 403}`) under the session's JSON prefix (`/api/`) or for clients
//! that accept only JSON. Each refusal is logged once at `warn` on the `portcullis::security`
//! target, with the reason, method and path (never the token). See [`CsrfError`]:
//!
//! | reason | when |
//! |---|---|
//! | `The CSRF token is missing.` | no header and no form field |
//! | `The CSRF session token is missing.` | the session holds no secret (new, logged in or out since) |
//! | `The CSRF token has expired.` | older than `WTF_CSRF_TIME_LIMIT` |
//! | `The CSRF token is invalid.` | malformed, or not made with this site's key |
//! | `The CSRF tokens do not match.` | made for another session's secret |
//! | `The referrer header is missing.` | Flask format, over HTTPS, no `Referer` |
//! | `The referrer does not match the host.` | Flask format, over HTTPS, a `Referer` elsewhere |
//! | `Cross-origin request refused.` | the Fetch Metadata gate refused it (or a foreign `Origin` without `Sec-Fetch-Site`) |
//! | `Origin checking failed - <origin> does not match any trusted origins.` | an `Origin` the gate let through that is not the site's origin: another scheme or port, or beside `Sec-Fetch-Site` (Django's words) |
//! | `Referer checking failed - no Referer.` | over HTTPS, neither `Sec-Fetch-Site`, `Origin` nor `Referer` |
//! | `Referer checking failed - Referer is malformed.` | the same, a `Referer` that is no URL |
//! | `Referer checking failed - Referer is insecure while host is secure.` | the same, an `http://` `Referer` |
//! | `Referer checking failed - <referer> does not match any trusted origins.` | the same, a `Referer` on another origin |
//!
//! Without a [`Session`](crate::Session) in the request (no `SessionLayer`, or added inside
//! `CsrfLayer` rather than outside) an unsafe request gets a 500 naming the mistake.
//!
//! # Exemptions
//!
//! [`CsrfLayer::exempt`] lets one method and path skip both checks, for webhooks that
//! authenticate themselves (a signature header). The path is compared byte for byte with the
//! request's path as axum dispatches it: an exemption for `POST /hook` does not cover
//! `/hook/`, `/hook//`, `/a/../hook`, `/%68ook`, `/HOOK` or `PUT /hook` (the lesson of Go's
//! CVE-2025-47910, where an exemption widened to paths the router redirected).
//!
//! # Turning tokens off
//!
//! [`CsrfLayer::with_enabled`]`(false)` (`WTF_CSRF_ENABLED=false`) stops asking for tokens but
//! keeps the origin check, so other sites still cannot post to this one from a modern browser.

use std::time::Duration;

use http::Method;

mod body;
#[cfg(feature = "flask")]
pub(crate) mod flask;
mod future;
mod layer;
mod origin;
mod rejection;
mod service;
mod token;

pub use crate::session::secret::CsrfSecret;
pub use future::ResponseFuture;
pub use layer::{CsrfLayer, InvalidTrustedOrigin};
pub use origin::PublicOrigin;
pub use rejection::{CsrfError, Refusal};
pub use service::CsrfService;
pub use token::{CsrfToken, verify_token};

pub(crate) use layer::check_trusted_origin;

/// The session key holding the CSRF secret, as Flask-WTF names it. A session is created with
/// its secret; regenerating a session replaces it, so a login rotates the secret.
pub const SESSION_KEY: &str = crate::session::CSRF_SECRET_KEY;

/// The form field that carries the token, as Flask-WTF names it.
pub const FORM_FIELD: &str = "csrf_token";

/// The headers that carry the token, in the order they are read (Flask-WTF's
/// `WTF_CSRF_HEADERS`).
pub const HEADERS: [&str; 2] = ["X-CSRFToken", "X-CSRF-Token"];

/// Marks a request that reached the site over HTTPS, for the Flask format's `Referer` check
/// (Flask-WTF's `WTF_CSRF_SSL_STRICT`): put it in the request's extensions, outside
/// [`CsrfLayer`], from whatever knows how the client connected. A request whose URI has the
/// `https` scheme counts as HTTPS without it.
///
/// Behind a TLS-terminating proxy the application sees plain HTTP, so only the proxy's word
/// (`X-Forwarded-Proto`) can say it, and only a trusted proxy's word counts: the reference site
/// sets this marker when the connection comes from an address in `TRUSTED_PROXIES` and the
/// last `X-Forwarded-Proto` value is `https` (as Werkzeug's `ProxyFix` does for Flask). Without
/// the marker the check does not run, as in a Flask app without `ProxyFix`.
///
/// ```
/// use axum::http::Request;
/// use portcullis::csrf::Https;
///
/// let mut request = Request::new(());
/// request.extensions_mut().insert(Https);
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Https;

/// What the token check needs to decide.
#[derive(Clone, Debug)]
pub(crate) struct Settings {
    pub(crate) enabled: bool,
    pub(crate) time_limit: Option<Duration>,
    pub(crate) max_body: usize,
    /// Exact (method, raw path) pairs; few, so a list beats a map.
    pub(crate) exempt: Vec<(Method, String)>,
    /// `CSRF_TRUSTED_ORIGINS`, as configured (tower-http keeps its own copy for its gate).
    pub(crate) trusted: Vec<String>,
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
        self.enabled && self.checks_origin(method, path)
    }

    /// Whether a request goes through the origin checks: unsafe and not exempt.
    pub(crate) fn checks_origin(&self, method: &Method, path: &str) -> bool {
        !method.is_safe() && !self.is_exempt(method, path)
    }
}
