//! Security headers on every response (OWASP Secure Headers): no script at all, no framing,
//! no MIME sniffing, no referrer beyond this site, and no caching unless a route allows it.
//! And [`warn_untrusted_forwarded`], which says once that a proxy is probably not trusted.

use axum::Router;
use axum::extract::{Request, State};
use axum::http::{HeaderName, HeaderValue, header};
use axum::middleware::Next;
use axum::response::Response;
use tower_http::set_header::SetResponseHeaderLayer;

use crate::web::client_addr::peer;
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

/// Middleware: logs once, the first time a request carries `X-Forwarded-For` while
/// `TRUSTED_PROXIES` is empty. Behind a proxy that is not listed, every client has the proxy's
/// address, so ten failed log-ins from anyone lock out everyone else's unknown browsers.
pub(crate) async fn warn_untrusted_forwarded(
    State(state): State<AppState>,
    request: Request,
    next: Next,
) -> Response {
    if state.site_config().trusted_proxies.is_empty()
        && request.headers().contains_key("x-forwarded-for")
        && state.first_untrusted_forwarded()
    {
        tracing::warn!(
            peer = %peer(request.extensions()),
            "requests carry X-Forwarded-For but TRUSTED_PROXIES is empty: every client behind \
             the proxy counts as the proxy's address in the rate limits. List the proxy in \
             TRUSTED_PROXIES (this is logged once)"
        );
    }
    next.run(request).await
}
