//! [`CsrfService`]: tower-http's origin check around our token check. The decisions are plain
//! functions: [`Settings::requires_token`](super::Settings::requires_token) (does this
//! request need a token?) and `SessionSecret::verify` (is it valid, in the session's
//! format?); this file only wires them to a request, its body and its session.

use std::sync::Arc;
use std::task::{Context, Poll};

use axum_core::body::Body;
use axum_core::response::Response;
use http::Request;
use tower_http::csrf::{Csrf, ProtectionError};
use tower_service::Service;

use super::body::{form_token, header_token};
#[cfg(feature = "flask")]
use super::flask;
use super::future::{ResponseFuture, TokenFuture};
use super::rejection::{RequestInfo, log_refusal};
use super::{CsrfError, Https, PublicOrigin, Settings, origin};
use crate::response::Answer;
use crate::{Session, SessionLayer};

/// How the origin check's refusals are built (see `layer.rs`).
type RefuseFn = fn(ProtectionError) -> Response;

/// The middleware made by [`CsrfLayer`](super::CsrfLayer): the origin check (tower-http's
/// [`Csrf`], Go's algorithm), then the token check, then the inner service.
#[derive(Clone, Debug)]
pub struct CsrfService<S> {
    origin: Csrf<TokenService<S>, RefuseFn>,
    settings: Arc<Settings>,
}

impl<S> CsrfService<S> {
    pub(super) fn new(origin: Csrf<TokenService<S>, RefuseFn>, settings: Arc<Settings>) -> Self {
        Self { origin, settings }
    }
}

impl<S> Service<Request<Body>> for CsrfService<S>
where
    S: Service<Request<Body>, Response = Response> + Clone + Send + 'static,
    S::Future: Send + 'static,
{
    type Response = Response;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future, S::Error>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.origin.poll_ready(cx)
    }

    fn call(&mut self, request: Request<Body>) -> Self::Future {
        // Only an unsafe request can be refused; only then is the path worth copying.
        let info = (!request.method().is_safe()).then(|| RequestInfo {
            answer: answer_for(&request),
            method: request.method().clone(),
            path: request.uri().path().to_owned(),
        });
        // The answer to a checked request depends on its `Sec-Fetch-Site`: caches must know.
        let vary = self
            .settings
            .checks_origin(request.method(), request.uri().path());
        ResponseFuture::new(self.origin.call(request), info, vary)
    }
}

/// The token check, inside the origin check.
#[derive(Clone, Debug)]
pub(crate) struct TokenService<S> {
    inner: S,
    settings: Arc<Settings>,
}

impl<S> TokenService<S> {
    pub(super) fn new(inner: S, settings: Arc<Settings>) -> Self {
        Self { inner, settings }
    }
}

impl<S> Service<Request<Body>> for TokenService<S>
where
    S: Service<Request<Body>, Response = Response> + Clone + Send + 'static,
    S::Future: Send + 'static,
{
    type Response = Response;
    type Error = S::Error;
    type Future = TokenFuture<S::Future, S::Error>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<Body>) -> Self::Future {
        let (method, path) = (request.method(), request.uri().path());
        if self.settings.checks_origin(method, path)
            && let Err(error) = check_origin(&request, &self.settings)
        {
            log_refusal(&error, method, path, None);
            return TokenFuture::refused(error.to_response(answer_for(&request)));
        }
        if !self.settings.requires_token(method, path) {
            return TokenFuture::passed(self.inner.call(request));
        }
        let Some(session) = request.extensions().get::<Session>().cloned() else {
            tracing::error!(
                method = %request.method(),
                path = %request.uri().path(),
                "CsrfLayer found no Session: add SessionLayer outside CsrfLayer"
            );
            return TokenFuture::refused(CsrfError::NoSession.to_response(answer_for(&request)));
        };
        // The service that was made ready goes with this request; its clone waits for the next.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let settings = Arc::clone(&self.settings);
        TokenFuture::checking(Box::pin(async move {
            let answer = answer_for(&request);
            let (method, path) = (request.method().clone(), request.uri().path().to_owned());
            match check(request, &session, &settings).await {
                Ok(request) => inner.call(request).await,
                Err(error) => {
                    log_refusal(&error, &method, &path, None);
                    Ok(error.to_response(answer))
                }
            }
        }))
    }
}

/// The full-origin check (`origin.rs`) on a request that tower-http's gate let through. The
/// `Referer` rule is the native format's, over HTTPS, with tokens on; the Flask format keeps
/// Flask-WTF's own (after the token, on every HTTPS request).
fn check_origin<B>(request: &Request<B>, settings: &Settings) -> Result<(), CsrfError> {
    let site = origin::site_origin(request, is_https(request));
    let flask = request
        .extensions()
        .get::<Session>()
        .is_some_and(|session| session.format().is_flask());
    let rules = origin::Rules {
        site: site.as_ref(),
        trusted: &settings.trusted,
        referer_rule: settings.enabled
            && !flask
            && site.as_ref().is_some_and(PublicOrigin::is_https),
    };
    origin::verify(request.headers(), &rules)
}

/// Finds the presented token and verifies it against the session's secret; hands back the
/// request, its body intact, when it passes.
async fn check(
    request: Request<Body>,
    session: &Session,
    settings: &Settings,
) -> Result<Request<Body>, CsrfError> {
    let (request, presented) = match header_token(request.headers()) {
        Some(token) => (request, Some(token)),
        None => form_token(request, settings.max_body).await?,
    };
    // No token: refuse before touching the store (Flask-WTF checks this first too).
    let Some(presented) = presented.filter(|token| !token.is_empty()) else {
        return Err(CsrfError::Missing);
    };
    let secret = session
        .csrf_secret()
        .await?
        .ok_or(CsrfError::SessionTokenMissing)?;
    let now = session.clock().now();
    secret.verify(&presented, session.key_ring(), now, settings.time_limit)?;
    // Flask-WTF checks the Referer after the token, and only over HTTPS.
    #[cfg(feature = "flask")]
    if session.format().is_flask() && is_https(&request) {
        flask::check_referrer(request.headers(), host(&request))?;
    }
    Ok(request)
}

/// Whether the request came over HTTPS: an `https` URI, or the [`Https`] marker that a
/// proxy-aware layer outside this one puts in.
fn is_https<B>(request: &Request<B>) -> bool {
    request.uri().scheme() == Some(&http::uri::Scheme::HTTPS)
        || request.extensions().get::<Https>().is_some()
        || request
            .extensions()
            .get::<PublicOrigin>()
            .is_some_and(PublicOrigin::is_https)
}

/// The host the request was sent to, as Flask's `request.host`: the `Host` header, else the
/// URI's authority (HTTP/2).
#[cfg(feature = "flask")]
fn host<B>(request: &Request<B>) -> Option<&str> {
    request
        .headers()
        .get(http::header::HOST)
        .and_then(|value| value.to_str().ok())
        .or_else(|| request.uri().authority().map(http::uri::Authority::as_str))
}

/// How this request's errors are answered, by the session's `json_prefix` or its `Accept`
/// header.
fn answer_for<B>(request: &Request<B>) -> Answer {
    let prefix = request
        .extensions()
        .get::<Session>()
        .map_or(SessionLayer::DEFAULT_JSON_PREFIX, Session::json_prefix);
    Answer::for_request(request.uri().path(), request.headers(), prefix)
}
