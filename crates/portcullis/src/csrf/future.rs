//! Response futures: [`ResponseFuture`] turns the origin check's refusal into our page (JSON for
//! API paths) and logs it; `TokenFuture` is the token check's future. Only the path that reads
//! the body and the session is boxed: safe, exempt and refused requests cost no allocation.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use axum_core::response::Response;
use http::HeaderValue;
use http::header::VARY;
use pin_project_lite::pin_project;
use tower_http::csrf::ProtectionError;

use super::CsrfError;
use super::rejection::{OriginRefused, RequestInfo, log_refusal};
use crate::response::Answer;

/// The token check's work for one request, boxed: it awaits the body and the session store.
type Checking<E> = Pin<Box<dyn Future<Output = Result<Response, E>> + Send>>;

pin_project! {
    /// The future of the token check.
    #[project = TokenFutureProj]
    pub(crate) enum TokenFuture<F, E> {
        /// No token needed: the inner service's own future.
        Passed { #[pin] future: F },
        /// Reading the token, checking it, then calling the inner service.
        Checking { future: Checking<E> },
        /// Refused before any await (misconfiguration).
        Refused { response: Option<Response> },
    }
}

impl<F, E> TokenFuture<F, E> {
    pub(crate) fn passed(future: F) -> Self {
        Self::Passed { future }
    }

    pub(crate) fn checking(future: Checking<E>) -> Self {
        Self::Checking { future }
    }

    pub(crate) fn refused(response: Response) -> Self {
        Self::Refused {
            response: Some(response),
        }
    }
}

impl<F, E> Future for TokenFuture<F, E>
where
    F: Future<Output = Result<Response, E>>,
{
    type Output = Result<Response, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project() {
            TokenFutureProj::Passed { future } => future.poll(cx),
            TokenFutureProj::Checking { future } => future.as_mut().poll(cx),
            TokenFutureProj::Refused { response } => Poll::Ready(Ok(response
                .take()
                .expect("TokenFuture polled after completion"))),
        }
    }
}

pin_project! {
    /// The response future of [`CsrfService`](super::CsrfService).
    pub struct ResponseFuture<F, E>
    where
        F: Future<Output = Result<Response, E>>,
    {
        #[pin]
        inner: tower_http::csrf::ResponseFuture<TokenFuture<F, E>>,
        // `None` for safe methods, which the origin check never refuses.
        info: Option<RequestInfo>,
        // Whether the origin check decided this answer: then it gets `Vary: Sec-Fetch-Site`.
        vary: bool,
    }
}

impl<F, E> ResponseFuture<F, E>
where
    F: Future<Output = Result<Response, E>>,
{
    pub(crate) fn new(
        inner: tower_http::csrf::ResponseFuture<TokenFuture<F, E>>,
        info: Option<RequestInfo>,
        vary: bool,
    ) -> Self {
        Self { inner, info, vary }
    }
}

impl<F, E> Future for ResponseFuture<F, E>
where
    F: Future<Output = Result<Response, E>>,
{
    type Output = Result<Response, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let mut response = ready!(this.inner.poll(cx))?;
        if *this.vary {
            vary_on_fetch_site(&mut response);
        }
        if response
            .extensions_mut()
            .remove::<OriginRefused>()
            .is_none()
        {
            return Poll::Ready(Ok(response));
        }
        let error = CsrfError::CrossOrigin;
        let check = response.extensions().get::<ProtectionError>().cloned();
        if let Some(info) = this.info.take() {
            log_refusal(&error, &info.method, &info.path, check.as_ref());
            if info.answer == Answer::Json {
                response = error.to_response(Answer::Json);
                // Keep tower-http's reason for layers further out, as it promises.
                if let Some(check) = check {
                    response.extensions_mut().insert(check);
                }
                if *this.vary {
                    vary_on_fetch_site(&mut response);
                }
            }
        }
        Poll::Ready(Ok(response))
    }
}

/// Adds `Sec-Fetch-Site` to the response's `Vary` unless it is there already (or `Vary: *`).
fn vary_on_fetch_site(response: &mut Response) {
    let listed = response
        .headers()
        .get_all(VARY)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .any(|name| {
            let name = name.trim();
            name == "*" || name.eq_ignore_ascii_case("sec-fetch-site")
        });
    if !listed {
        response
            .headers_mut()
            .append(VARY, HeaderValue::from_static("Sec-Fetch-Site"));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vary_of(values: &[&'static str]) -> Vec<String> {
        let mut response = Response::new(axum_core::body::Body::empty());
        for value in values {
            response
                .headers_mut()
                .append(VARY, HeaderValue::from_static(value));
        }
        vary_on_fetch_site(&mut response);
        response
            .headers()
            .get_all(VARY)
            .iter()
            .map(|v| v.to_str().unwrap().to_owned())
            .collect()
    }

    #[test]
    fn sec_fetch_site_is_appended_to_vary_once() {
        assert_eq!(vary_of(&[]), ["Sec-Fetch-Site"]);
        assert_eq!(vary_of(&["Cookie"]), ["Cookie", "Sec-Fetch-Site"]);
        assert_eq!(
            vary_of(&["cookie, sec-fetch-site"]),
            ["cookie, sec-fetch-site"]
        );
        assert_eq!(vary_of(&["*"]), ["*"]);
    }
}
