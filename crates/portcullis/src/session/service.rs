//! [`SessionService`]: verifies the cookie before the handler, and after it writes what changed
//! and sets the cookie headers. The after-handler decision is [`finish`], a plain function.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::SystemTime;

use axum_core::response::{IntoResponse, Response};
use http::header::{CACHE_CONTROL, SET_COOKIE, VARY};
use http::{HeaderValue, Request, StatusCode};
use tower_service::Service;

use super::cookie::{self, Lifetime, PresentedCookie};
use super::handle::{RequestSession, Session};
use super::write::{self, WriteError};
use super::{LayerShared, SessionError};
use crate::response::{error_page, wants_json};

/// `Retry-After` when too many writers raced for one session: the race is over in moments.
const RETRY_AFTER_BUSY: &str = "1";
/// `Retry-After` when the store is down: long enough not to hammer it, short enough for a
/// blip (a Redis failover takes a few seconds).
const RETRY_AFTER_UNAVAILABLE: &str = "5";

/// The response future of [`SessionService`]: the handler's future followed by the session's
/// write. Boxed because the write is an `async` store call.
pub type ResponseFuture<E> = Pin<Box<dyn Future<Output = Result<Response, E>> + Send>>;

/// The middleware made by [`SessionLayer`](super::SessionLayer).
#[derive(Clone, Debug)]
pub struct SessionService<S> {
    inner: S,
    shared: Arc<LayerShared>,
}

impl<S> SessionService<S> {
    pub(crate) fn new(inner: S, shared: Arc<LayerShared>) -> Self {
        Self { inner, shared }
    }
}

impl<S, B> Service<Request<B>> for SessionService<S>
where
    S: Service<Request<B>, Response = Response> + Clone + Send + 'static,
    S::Future: Send + 'static,
    B: Send + 'static,
{
    type Response = Response;
    type Error = S::Error;
    type Future = ResponseFuture<S::Error>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: Request<B>) -> Self::Future {
        let shared = Arc::clone(&self.shared);
        let presented = cookie::read(request.headers(), &shared.settings, &shared.keys);
        let json = wants_json(
            request.uri().path(),
            request.headers(),
            &shared.settings.json_prefix,
        );
        let session = Session::new(Arc::clone(&shared), presented);
        request.extensions_mut().insert(session.clone());
        let future = self.inner.call(request);
        Box::pin(async move {
            let response = future.await?;
            let mut state = session.state.lock().await;
            Ok(finish(&shared, &mut state, response, json).await)
        })
    }
}

/// Everything that happens after the handler: fail closed on store errors, write a changed
/// session (`write.rs`: compare-and-set, replaying this request's changes on a conflict),
/// delete ended records, and set `Set-Cookie`, `Vary` and `Cache-Control`.
pub(crate) async fn finish(
    shared: &LayerShared,
    state: &mut RequestSession,
    mut response: Response,
    json: bool,
) -> Response {
    if state.failed {
        return unavailable(json);
    }
    if !state.accessed {
        return response;
    }
    response
        .headers_mut()
        .append(VARY, HeaderValue::from_static("Cookie"));
    if response.status().is_server_error() {
        // A failed handler saves nothing: its changes may be half made.
        return response;
    }
    let settings = &shared.settings;
    let now = shared.clock.now();
    let cookie_was_sent = !matches!(state.presented, PresentedCookie::Absent);
    let written = match write::write(shared, state, now).await {
        Ok(written) => written,
        Err(failure) => return refuse(shared, failure, now, json),
    };
    if written {
        shared.health.report_success();
    }
    let Some(current) = state.current.as_ref() else {
        return response;
    };
    let deadline = (now + settings.idle).min(current.envelope.created_at() + settings.absolute);
    let lifetime = if current.envelope.permanent {
        Lifetime::Until(deadline)
    } else {
        Lifetime::BrowserSession
    };
    let send_cookie = written
        || (current.stored
            && ((current.envelope.permanent && settings.refresh_each_request)
                || current.reissue_cookie));

    let header = if send_cookie {
        let value = cookie::value(&current.id, settings, &shared.keys);
        Some(cookie::set_cookie(value, &lifetime, now, settings))
    } else if cookie_was_sent
        && !current.stored
        && (state.destroyed || !write::worth_storing(current))
    {
        // The client holds a cookie for a session that is gone (destroyed, expired, forged):
        // drop it, so it stops costing a store lookup on every request.
        Some(cookie::set_cookie(
            String::new(),
            &Lifetime::Remove,
            now,
            settings,
        ))
    } else {
        None
    };
    if let Some(header) = header {
        let headers = response.headers_mut();
        headers.append(SET_COOKIE, header);
        headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    response
}

/// The answer when the session could not be written: nothing of this request's changes is
/// kept, and the client's cookie is left alone unless its session is over.
fn refuse(shared: &LayerShared, failure: WriteError, now: SystemTime, json: bool) -> Response {
    match failure {
        WriteError::Unavailable(error) => {
            if let Some(error) = error {
                shared.health.report_failure(&error);
            }
            unavailable(json)
        }
        WriteError::Ended => ended_elsewhere(shared, now, json),
        WriteError::Busy => {
            let mut response = error_page(
                StatusCode::SERVICE_UNAVAILABLE,
                "Too many requests changed your session at the same moment, so this one was \
                 not saved. Please try again.",
                json,
            );
            response.headers_mut().insert(
                http::header::RETRY_AFTER,
                HeaderValue::from_static(RETRY_AFTER_BUSY),
            );
            response
        }
        WriteError::TooLarge { size, max } => SessionError::TooLarge { size, max }.into_response(),
        WriteError::LimitReached { max } => error_page(
            StatusCode::CONFLICT,
            &format!(
                "You are logged in on {max} devices, the most allowed. Log out on one of them \
                 (or end it from its sessions page) and try again."
            ),
            json,
        ),
        WriteError::Encode => error_page(
            StatusCode::INTERNAL_SERVER_ERROR,
            "The session could not be encoded.",
            json,
        ),
    }
}

fn unavailable(json: bool) -> Response {
    let mut response = error_page(
        StatusCode::SERVICE_UNAVAILABLE,
        "Sessions are temporarily unavailable. Please try again in a moment.",
        json,
    );
    response.headers_mut().insert(
        http::header::RETRY_AFTER,
        HeaderValue::from_static(RETRY_AFTER_UNAVAILABLE),
    );
    response
}

fn ended_elsewhere(shared: &LayerShared, now: SystemTime, json: bool) -> Response {
    let mut response = error_page(
        StatusCode::CONFLICT,
        "Your session ended while this request was running (for example, you logged out in \
         another window), so its changes were not saved. Please log in again.",
        json,
    );
    let clear = cookie::set_cookie(String::new(), &Lifetime::Remove, now, &shared.settings);
    response.headers_mut().append(SET_COOKIE, clear);
    response
        .headers_mut()
        .append(VARY, HeaderValue::from_static("Cookie"));
    response
}
