//! [`SessionService`]: verifies the cookie before the handler, and after it writes what changed
//! and sets the cookie headers. The after-handler decision is [`finish`], a plain function.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use axum_core::response::Response;
use http::header::{CACHE_CONTROL, SET_COOKIE, VARY};
use http::{HeaderValue, Request, StatusCode};
use tower_service::Service;

use super::Shared;
use super::cookie::{self, Lifetime, Presented};
use super::handle::{Session, State};
use crate::response::{error_page, wants_json};
use crate::store::WriteOutcome;

/// The response future of [`SessionService`]: the handler's future followed by the session's
/// write. Boxed because the write is an `async` store call.
pub type ResponseFuture<E> = Pin<Box<dyn Future<Output = Result<Response, E>> + Send>>;

/// The middleware made by [`SessionLayer`](super::SessionLayer).
#[derive(Clone, Debug)]
pub struct SessionService<S> {
    inner: S,
    shared: Arc<Shared>,
}

impl<S> SessionService<S> {
    pub(crate) fn new(inner: S, shared: Arc<Shared>) -> Self {
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

/// Everything that happens after the handler: fail closed on store errors, delete ended
/// records, write a changed session, and set `Set-Cookie`, `Vary` and `Cache-Control`.
pub(crate) async fn finish(
    shared: &Shared,
    state: &mut State,
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
    let cookie_was_sent = !matches!(state.presented, Presented::Absent);
    let Some(current) = state.current.as_mut() else {
        return response;
    };
    let deadline = (now + settings.idle).min(current.envelope.created_at() + settings.absolute);
    let lifetime = if current.envelope.permanent {
        Lifetime::Until(deadline)
    } else {
        Lifetime::BrowserSession
    };

    let worth_storing =
        current.stored || !current.envelope.data.is_empty() || current.envelope.user_id.is_some();
    let send_cookie = if current.modified && worth_storing {
        current.envelope.revision += 1;
        current.envelope.deadline_ms = crate::clock::unix_millis(deadline);
        let key = settings.format.store_key(&current.id, &settings.key_prefix);
        let Ok(sealed) = settings
            .format
            .encode_record(&current.envelope, &shared.keys, &key)
        else {
            return error_page(
                StatusCode::INTERNAL_SERVER_ERROR,
                "The session could not be encoded.",
                json,
            );
        };
        let written = if current.stored {
            shared.store.update(&key, &sealed, deadline).await
        } else {
            shared.store.create(&key, &sealed, deadline).await
        };
        match written {
            Ok(WriteOutcome::Written) => shared.health.report_success(),
            Ok(WriteOutcome::NotWritten) if current.stored => {
                return ended_elsewhere(shared, now, json);
            }
            Ok(WriteOutcome::NotWritten) => {
                // A fresh 256-bit id already in use: the generator is broken. Refuse to share.
                tracing::error!("a new session id collided with a live one; refusing to write");
                return unavailable(json);
            }
            Err(error) => {
                shared.health.report_failure(&error);
                return unavailable(json);
            }
        }
        true
    } else if current.stored {
        let sliding = current.envelope.permanent && settings.refresh_each_request;
        sliding || current.reissue_cookie
    } else {
        false
    };

    // Only now delete what ended: a regenerated session's new record is already written, so
    // there is never a moment with neither the old record nor the new one.
    if let Some(old) = state.regenerated_from.take() {
        match shared.store.delete(&old).await {
            Ok(true) => {}
            Ok(false) => {
                // The old record vanished while this request ran: a logout elsewhere ended the
                // session, and its data must not live on under the new id.
                let new = settings.format.store_key(&current.id, &settings.key_prefix);
                if let Err(error) = shared.store.delete(&new).await {
                    shared.health.report_failure(&error);
                    return unavailable(json);
                }
                return ended_elsewhere(shared, now, json);
            }
            Err(error) => {
                shared.health.report_failure(&error);
                return unavailable(json);
            }
        }
    }
    for key in std::mem::take(&mut state.to_delete) {
        if let Err(error) = shared.store.delete(&key).await {
            shared.health.report_failure(&error);
            return unavailable(json);
        }
    }

    let header = if send_cookie {
        let value = cookie::value(&current.id, settings, &shared.keys);
        Some(cookie::set_cookie(value, &lifetime, now, settings))
    } else if cookie_was_sent && !current.stored && (state.destroyed || !worth_storing) {
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

fn unavailable(json: bool) -> Response {
    let mut response = error_page(
        StatusCode::SERVICE_UNAVAILABLE,
        "Sessions are temporarily unavailable. Please try again in a moment.",
        json,
    );
    response
        .headers_mut()
        .insert(http::header::RETRY_AFTER, HeaderValue::from_static("5"));
    response
}

fn ended_elsewhere(shared: &Shared, now: std::time::SystemTime, json: bool) -> Response {
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
