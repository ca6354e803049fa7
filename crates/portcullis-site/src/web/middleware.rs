//! Security headers on every response (OWASP Secure Headers): no script at all, no framing,
//! no MIME sniffing, no referrer beyond this site, and no caching unless a route allows it.
//! And [`mark_https`], which tells the CSRF layer which requests came over HTTPS.

use axum::Router;
use axum::extract::{Request, State};
use axum::http::{HeaderName, HeaderValue, header};
use axum::middleware::Next;
use axum::response::Response;
use portcullis::csrf::Https;
use tower_http::set_header::SetResponseHeaderLayer;

use crate::web::client_addr::{forwarded_https, peer};
use crate::web::state::AppState;

/// The site has no JavaScript: `script-src 'none'`; forms post only here; nobody frames it.
const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; script-src 'none'; \
     object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

/// Adds the headers to every response of `router`. `Cache-Control: no-store` is set only when
/// the route did not choose (the stylesheet may be cached; pages with private data may not).
pub(crate) fn add<S: Clone + Send + Sync + 'static>(router: Router<S>) -> Router<S> {
    let fixed: [(HeaderName, &'static str); 5] = [
        (header::CONTENT_SECURITY_POLICY, CONTENT_SECURITY_POLICY),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::REFERRER_POLICY, "same-origin"),
        (header::X_FRAME_OPTIONS, "DENY"),
        (
            HeaderName::from_static("cross-origin-opener-policy"),
            "same-origin",
        ),
    ];
    let mut router = router.layer(SetResponseHeaderLayer::if_not_present(
        header::CACHE_CONTROL,
        HeaderValue::from_static("no-store"),
    ));
    for (name, value) in fixed {
        router = router.layer(SetResponseHeaderLayer::overriding(
            name,
            HeaderValue::from_static(value),
        ));
    }
    router
}

/// Middleware: marks a request that a trusted proxy says came over HTTPS with
/// [`portcullis::csrf::Https`], so that the Flask format's CSRF check asks for a matching
/// `Referer` as Flask-WTF does behind Werkzeug's `ProxyFix`.
pub(crate) async fn mark_https(
    State(state): State<AppState>,
    mut request: Request,
    next: Next,
) -> Response {
    let peer = peer(request.extensions());
    if forwarded_https(
        peer,
        request.headers(),
        &state.site_config().trusted_proxies,
    ) {
        request.extensions_mut().insert(Https);
    }
    next.run(request).await
}
