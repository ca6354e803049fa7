//! [`SessionService`]: hands the handler a [`Session`] holding the request's cookies (verified
//! on its first use), and after the handler writes what changed ([`finish`]) and sets the
//! cookie headers; which cookie goes out is [`cookie_action`], a plain function.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::SystemTime;

use axum_core::response::{IntoResponse, Response};
use http::header::{CACHE_CONTROL, SET_COOKIE, VARY};
use http::{HeaderValue, Request, StatusCode};
use tower_service::Service;

use super::cookie::{self, CookieHeaders, Lifetime, PresentedCookie};
use super::handle::{RequestSession, Session};
use super::id::Id;
use super::write::{self, WriteError};
use super::{LayerShared, SessionError, Settings};
use crate::response::{Answer, error_page};

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
        let cookies = CookieHeaders::of(request.headers());
        let answer = Answer::for_request(
            request.uri().path(),
            request.headers(),
            &shared.settings.json_prefix,
        );
        let session = Session::new(Arc::clone(&shared), cookies);
        request.extensions_mut().insert(session.clone());
        let future = self.inner.call(request);
        Box::pin(async move {
            let response = future.await?;
            let mut state = session.state.lock().await;
            Ok(finish(&shared, &mut state, response, answer).await)
        })
    }
}

/// Everything that happens after the handler: fail closed on store errors, write a changed
/// session (`write/`: compare-and-set, replaying this request's changes on a conflict),
/// delete ended records, and set `Set-Cookie` ([`cookie_action`]), `Vary` and `Cache-Control`.
pub(crate) async fn finish(
    shared: &LayerShared,
    state: &mut RequestSession,
    mut response: Response,
    answer: Answer,
) -> Response {
    if state.failed {
        return unavailable(answer);
    }
    if !state.accessed {
        // The handler never touched the session: its cookies were not even verified.
        return response;
    }
    response
        .headers_mut()
        .append(VARY, HeaderValue::from_static("Cookie"));
    let settings = &shared.settings;
    let now = shared.clock.now();
    if response.status().is_server_error() {
        // A failed handler saves nothing: its changes may be half made. What it ended stays
        // ended, though: a logout must not be lost to a later error.
        if let Err(failure) = write::delete_ended(shared, state).await {
            return refuse(shared, failure, now, answer);
        }
        if state.destroyed && cookie_action(state, false, settings, now) == CookieAction::Clear {
            let header = cookie::set_cookie("", &Lifetime::Remove, now, settings);
            response.headers_mut().append(SET_COOKIE, header);
            response
                .headers_mut()
                .insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
        }
        return response;
    }
    let written = match write::write(shared, state, now).await {
        Ok(written) => written,
        Err(failure) => return refuse(shared, failure, now, answer),
    };
    if written {
        shared.health.report_success();
    }
    if state.destroyed {
        crate::metrics::session_destroyed();
    }
    let header = match cookie_action(state, written, settings, now) {
        CookieAction::Keep => None,
        CookieAction::Send { id, lifetime } => {
            let header = match cookie::presented_value(&state.presented, &id) {
                Some(value) => cookie::set_cookie(value, &lifetime, now, settings),
                None => {
                    let value = cookie::value(&id, settings, &shared.keys);
                    cookie::set_cookie(&value, &lifetime, now, settings)
                }
            };
            Some(header)
        }
        CookieAction::Clear => Some(cookie::set_cookie("", &Lifetime::Remove, now, settings)),
    };
    let pre_session = state.pre_session.set_cookie(settings, &shared.keys, now);
    if header.is_none() && pre_session.is_none() {
        return response;
    }
    let headers = response.headers_mut();
    for header in header.into_iter().chain(pre_session) {
        headers.append(SET_COOKIE, header);
    }
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// What a response does with the session cookie.
#[derive(Debug, PartialEq)]
pub(crate) enum CookieAction {
    /// `Set-Cookie` with the session's id, kept for `lifetime`.
    Send { id: Id, lifetime: Lifetime },
    /// `Set-Cookie` that removes the client's cookie: its session is gone.
    Clear,
    /// No `Set-Cookie`.
    Keep,
}

/// The cookie decision, once the session is written (`written`: a record was): a plain
/// function of what the request did, as tower-http's `Csrf::verify` is for its check.
///
/// The cookie goes out when a record was written, and for a stored session whose permanent
/// cookie slides (`SESSION_REFRESH_EACH_REQUEST`) or that was verified by a fallback key. It is
/// removed when the client sent one for a session that is gone (destroyed, expired, forged)
/// and nothing took its place.
pub(crate) fn cookie_action(
    state: &RequestSession,
    written: bool,
    settings: &Settings,
    now: SystemTime,
) -> CookieAction {
    let Some(current) = state.current.as_ref() else {
        return CookieAction::Keep;
    };
    let envelope = &current.envelope;
    let slides = envelope.permanent && settings.refresh_each_request;
    if written || (current.stored && (slides || current.reissue_cookie)) {
        let lifetime = if envelope.permanent {
            let idle = now + settings.idle;
            Lifetime::Until(idle.min(envelope.created_at() + settings.absolute))
        } else {
            Lifetime::BrowserSession
        };
        let id = current.id.clone();
        return CookieAction::Send { id, lifetime };
    }
    let cookie_was_sent = !matches!(state.presented, PresentedCookie::Absent);
    if cookie_was_sent && !current.stored && (state.destroyed || !write::worth_storing(current)) {
        // Dropped, so that it stops costing a store lookup on every request.
        return CookieAction::Clear;
    }
    CookieAction::Keep
}

/// The answer when the session could not be written: nothing of this request's changes is
/// kept, and the client's cookie is left alone unless its session is over.
fn refuse(shared: &LayerShared, failure: WriteError, now: SystemTime, answer: Answer) -> Response {
    if let Some(reason) = failure.refusal() {
        crate::metrics::write_refused(reason);
    }
    match failure {
        WriteError::Unavailable(error) => {
            if let Some(error) = error {
                shared.health.report_failure(&error);
            }
            unavailable(answer)
        }
        WriteError::Ended => ended_elsewhere(shared, now, answer),
        WriteError::Busy => {
            let mut response = error_page(
                StatusCode::SERVICE_UNAVAILABLE,
                "Too many requests changed your session at the same moment, so this one was \
                 not saved. Please try again.",
                answer,
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
            answer,
        ),
        WriteError::Encode => error_page(
            StatusCode::INTERNAL_SERVER_ERROR,
            "The session could not be encoded.",
            answer,
        ),
    }
}

fn unavailable(answer: Answer) -> Response {
    let mut response = error_page(
        StatusCode::SERVICE_UNAVAILABLE,
        "Sessions are temporarily unavailable. Please try again in a moment.",
        answer,
    );
    response.headers_mut().insert(
        http::header::RETRY_AFTER,
        HeaderValue::from_static(RETRY_AFTER_UNAVAILABLE),
    );
    response
}

fn ended_elsewhere(shared: &LayerShared, now: SystemTime, answer: Answer) -> Response {
    let mut response = error_page(
        StatusCode::CONFLICT,
        "Your session ended while this request was running (for example, you logged out in \
         another window), so its changes were not saved. Please log in again.",
        answer,
    );
    let clear = cookie::set_cookie("", &Lifetime::Remove, now, &shared.settings);
    response.headers_mut().append(SET_COOKIE, clear);
    response
        .headers_mut()
        .append(VARY, HeaderValue::from_static("Cookie"));
    response
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::keys::{KeyRing, KeyUse};
    use crate::session::SessionLayer;
    use crate::session::cookie::CookieValue;
    use crate::session::handle::WorkingCopy;
    use crate::session::pre_session::PreSession;
    use crate::session::record::Envelope;
    use crate::store::MemoryStore;

    /// One request's end, as `cookie_action` sees it.
    #[derive(Clone, Copy)]
    struct Case {
        cookie: &'static str,
        stored: bool,
        written: bool,
        permanent: bool,
        refresh: bool,
        reissue: bool,
        destroyed: bool,
        data: bool,
    }

    const BASE: Case = Case {
        cookie: "valid",
        stored: true,
        written: false,
        permanent: false,
        refresh: true,
        reissue: false,
        destroyed: false,
        data: true,
    };

    fn request(case: Case, now: SystemTime) -> RequestSession {
        let id = Id::random();
        let presented = match case.cookie {
            "absent" => PresentedCookie::Absent,
            "invalid" => PresentedCookie::Invalid,
            _ => PresentedCookie::Valid {
                id: id.clone(),
                key_use: KeyUse::Current,
                value: CookieValue::default(),
            },
        };
        let mut envelope = Envelope::new(now - Duration::from_secs(60), case.permanent);
        if case.data {
            envelope.data.insert("n".into(), rmpv::Value::from(1));
        }
        let current = WorkingCopy {
            id,
            stored: case.stored,
            modified: case.written,
            reissue_cookie: case.reissue,
            ..WorkingCopy::new(envelope)
        };
        RequestSession {
            unverified: None,
            presented,
            pre_session: PreSession::default(),
            current: Some(current),
            accessed: true,
            failed: false,
            ended_previous: false,
            ending: None,
            destroyed: case.destroyed,
            to_delete: Vec::new(),
            endings: Vec::new(),
        }
    }

    #[test]
    fn the_cookie_goes_out_stays_or_is_cleared_by_what_the_request_did() {
        let layer = SessionLayer::new(MemoryStore::new(), KeyRing::new(&[7; 32], &[]));
        let now = SystemTime::now();
        /// What the case should get: a cookie until the idle deadline, one for the browser
        /// session, or none.
        #[derive(Clone, Copy)]
        enum Want {
            Until,
            Browser,
            Keep,
        }
        use Want::{Browser, Keep, Until};
        // (name, case, Some(lifetime) for Send, None for Keep; "clear" cases below)
        let sends: [(&str, Case, Want); 9] = [
            (
                "written",
                Case {
                    written: true,
                    ..BASE
                },
                Browser,
            ),
            (
                "written, permanent",
                Case {
                    written: true,
                    permanent: true,
                    ..BASE
                },
                Until,
            ),
            (
                "written, new",
                Case {
                    written: true,
                    stored: false,
                    ..BASE
                },
                Browser,
            ),
            (
                "permanent slides",
                Case {
                    permanent: true,
                    ..BASE
                },
                Until,
            ),
            (
                "permanent, no refresh",
                Case {
                    permanent: true,
                    refresh: false,
                    ..BASE
                },
                Keep,
            ),
            (
                "fallback key",
                Case {
                    reissue: true,
                    ..BASE
                },
                Browser,
            ),
            ("unchanged", BASE, Keep),
            (
                "new, absent cookie",
                Case {
                    cookie: "absent",
                    stored: false,
                    data: false,
                    ..BASE
                },
                Keep,
            ),
            (
                "new, kept data",
                Case {
                    cookie: "absent",
                    stored: false,
                    ..BASE
                },
                Keep,
            ),
        ];
        for (name, case, expected) in sends {
            let mut settings = layer.shared().settings.clone();
            settings.refresh_each_request = case.refresh;
            let state = request(case, now);
            let id = state.current.as_ref().unwrap().id.clone();
            let lifetime = match expected {
                Until => Lifetime::Until(now + settings.idle),
                Browser => Lifetime::BrowserSession,
                Keep => Lifetime::Remove,
            };
            let expected = match expected {
                Keep => CookieAction::Keep,
                Until | Browser => CookieAction::Send { id, lifetime },
            };
            assert_eq!(
                cookie_action(&state, case.written, &settings, now),
                expected,
                "{name}"
            );
        }
        let clears = [
            (
                "forged cookie, empty session",
                Case {
                    cookie: "invalid",
                    stored: false,
                    data: false,
                    ..BASE
                },
            ),
            (
                "ended session, empty",
                Case {
                    stored: false,
                    data: false,
                    ..BASE
                },
            ),
            (
                "destroyed",
                Case {
                    stored: false,
                    destroyed: true,
                    ..BASE
                },
            ),
        ];
        for (name, case) in clears {
            let settings = &layer.shared().settings;
            let state = request(case, now);
            assert_eq!(
                cookie_action(&state, false, settings, now),
                CookieAction::Clear,
                "{name}"
            );
        }
    }

    #[test]
    fn a_permanent_cookie_never_outlives_the_absolute_lifetime_and_no_session_keeps_it() {
        let layer = SessionLayer::new(MemoryStore::new(), KeyRing::new(&[7; 32], &[]));
        let shared = layer.shared();
        let settings = &shared.settings;
        let now = SystemTime::now();
        let mut state = request(
            Case {
                written: true,
                permanent: true,
                ..BASE
            },
            now,
        );
        let current = state.current.as_mut().unwrap();
        let created = now - settings.absolute + Duration::from_secs(10);
        current.envelope_mut(&shared.opened).created_ms = crate::clock::unix_millis(created);
        let id = current.id.clone();
        let lifetime = Lifetime::Until(current.envelope.created_at() + settings.absolute);
        let expected = CookieAction::Send { id, lifetime };
        assert_eq!(cookie_action(&state, true, settings, now), expected);
        state.current = None;
        assert_eq!(
            cookie_action(&state, true, settings, now),
            CookieAction::Keep
        );
    }
}
