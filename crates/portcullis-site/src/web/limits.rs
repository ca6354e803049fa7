//! The site's limits on each request (finding 10): at most `MAX_REQUESTS_IN_FLIGHT` at once
//! (beyond, 503 with `Retry-After` at once: load shedding, not a queue), a deadline for the
//! whole request (`REQUEST_TIMEOUT`, answered with the site's 503 page) and one for the whole
//! body (`REQUEST_BODY_TIMEOUT`, total, not per frame, so a trickle cannot beat it; answered
//! 408). The header-read timeout is the accept loop's (`cli/serve.rs`): it comes before any
//! request exists.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};

use axum::Router;
use axum::body::{Body, Bytes};
use axum::error_handling::HandleErrorLayer;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::Response;
use http_body::{Frame, SizeHint};
use tokio::time::Sleep;
use tower::ServiceBuilder;
use tower::limit::GlobalConcurrencyLimitLayer;

use crate::web::page;
use crate::web::state::AppState;

/// What a client is told to wait before trying again after a 503 of these limits.
const RETRY_AFTER_SECONDS: u32 = 1;

/// Adds the limits to `router`; outermost, so a shed request costs nothing else.
pub(crate) fn add(router: Router, state: &AppState) -> Router {
    let site = state.site_config();
    let shed_state = state.clone();
    let shed = ServiceBuilder::new()
        .layer(HandleErrorLayer::new(move |_: tower::BoxError| {
            let state = shed_state.clone();
            async move {
                busy(
                    &state,
                    "The site is busy right now. Please try again in a moment.",
                )
            }
        }))
        .load_shed()
        // Global: `Router::layer` layers each route on its own, and the limit is the site's.
        .layer(GlobalConcurrencyLimitLayer::new(
            site.max_requests_in_flight,
        ));
    router
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            body_deadline,
        ))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            request_deadline,
        ))
        .layer(shed)
}

/// The site's 503 page with `Retry-After`.
fn busy(state: &AppState, message: &str) -> Response {
    let mut response = page::plain_error(state, StatusCode::SERVICE_UNAVAILABLE, message);
    response
        .headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from(RETRY_AFTER_SECONDS));
    response
}

/// Middleware: the whole request within `REQUEST_TIMEOUT`, else the site's 503 page. The
/// handler is dropped at the deadline, so nothing it had not saved yet is saved.
async fn request_deadline(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let limit = state.site_config().request_timeout;
    match tokio::time::timeout(limit, next.run(request)).await {
        Ok(response) => response,
        Err(_) => {
            tracing::warn!(?limit, "request timed out");
            busy(
                &state,
                "The site took too long to answer. Please try again in a moment.",
            )
        }
    }
}

/// Middleware: the body ends within `REQUEST_BODY_TIMEOUT` of the request's start, else 408
/// with the site's page, whatever the handler made of the cut-off body, and the connection is
/// closed (the rest of the body is never read).
async fn body_deadline(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let limit = state.site_config().request_body_timeout;
    let expired = Arc::new(AtomicBool::new(false));
    let request = request.map(|body| {
        Body::new(Deadline {
            inner: body,
            sleep: Box::pin(tokio::time::sleep(limit)),
            expired: Arc::clone(&expired),
        })
    });
    let response = next.run(request).await;
    if !expired.load(Ordering::SeqCst) {
        return response;
    }
    tracing::info!(?limit, "request body too slow");
    let mut response = page::plain_error(
        &state,
        StatusCode::REQUEST_TIMEOUT,
        "The request took too long to arrive. Please try again.",
    );
    response
        .headers_mut()
        .insert(header::CONNECTION, HeaderValue::from_static("close"));
    response
}

/// The body was not over by its deadline.
#[derive(Debug, thiserror::Error)]
#[error("the request body did not arrive by its deadline (REQUEST_BODY_TIMEOUT)")]
struct BodyTooSlow;

/// A body that fails once its deadline has passed, however often frames arrive.
struct Deadline {
    inner: Body,
    sleep: Pin<Box<Sleep>>,
    expired: Arc<AtomicBool>,
}

impl http_body::Body for Deadline {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        let this = &mut *self;
        if this.sleep.as_mut().poll(cx).is_ready() {
            this.expired.store(true, Ordering::SeqCst);
            return Poll::Ready(Some(Err(axum::Error::new(BodyTooSlow))));
        }
        Pin::new(&mut this.inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
