//! The site's metrics: the Prometheus recorder and the `/metrics` listener (`METRICS_BIND`, a
//! listener of its own, never the public one), the site's own counters (log-ins and
//! registrations by outcome, the password-hashing queue, HTTP requests by route template), and
//! the HTTP middleware. One function per event, as the library's `portcullis::metrics`; without
//! the `metrics` feature every one is empty and `METRICS_BIND` is refused at start-up.
//!
//! The exposition is the Prometheus text format 0.0.4 (`metrics-exporter-prometheus`, without
//! its own HTTP server: the site serves it with its axum). Histograms have buckets, so that
//! Prometheus can aggregate them across processes. `docs/METRICS.md` lists every metric.
#![cfg_attr(not(feature = "metrics"), allow(dead_code, unused_imports))]

use std::net::SocketAddr;

use axum::Router;
use axum::extract::{MatchedPath, Request};
use axum::http::Method;
use axum::middleware::Next;
use axum::response::Response;

const LOGINS: &str = "portcullis_site_logins_total";
const REGISTRATIONS: &str = "portcullis_site_registrations_total";
const HASH_QUEUE: &str = "portcullis_site_password_hash_queue_depth";
const HTTP_REQUESTS: &str = "portcullis_http_requests_total";
const HTTP_DURATION: &str = "portcullis_http_request_duration_seconds";

/// The `Content-Type` of the Prometheus text exposition format 0.0.4.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// How a log-in ended: the `outcome` label of `portcullis_site_logins_total`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Login {
    /// Logged in.
    Success,
    /// Wrong name or password, or a disabled account (told apart nowhere else either).
    Failure,
    /// Refused before the password check: too many failures (`LOGIN_RATE_LIMIT`).
    RateLimited,
    /// Refused: the user is at `SESSION_MAX_PER_USER` with the `refuse` policy.
    RefusedByCap,
    /// Refused at once: every hashing thread busy and the queue full (503).
    Busy,
}

impl Login {
    fn as_str(self) -> &'static str {
        match self {
            Self::Success => "success",
            Self::Failure => "failure",
            Self::RateLimited => "rate_limited",
            Self::RefusedByCap => "refused_by_cap",
            Self::Busy => "busy",
        }
    }
}

/// How a registration ended: the `outcome` label of `portcullis_site_registrations_total`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Registration {
    /// The account was created.
    Created,
    /// The form broke a rule (422) or the name is taken (409).
    Refused,
    /// Too many from this client or from everyone (`REGISTER_*RATE_LIMIT`).
    RateLimited,
    /// Every hashing thread busy and the queue full (503).
    Busy,
}

impl Registration {
    fn as_str(self) -> &'static str {
        match self {
            Self::Created => "created",
            Self::Refused => "refused",
            Self::RateLimited => "rate_limited",
            Self::Busy => "busy",
        }
    }
}

/// Why the metrics listener could not start.
#[derive(Debug, thiserror::Error)]
pub enum MetricsError {
    /// `METRICS_BIND` could not be bound.
    #[error("cannot listen on METRICS_BIND={addr}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// Another recorder was installed first (a second start in one process).
    #[error("a metrics recorder is already installed in this process")]
    AlreadyInstalled,
}

/// With `METRICS_BIND` set: installs the Prometheus recorder, registers every metric's
/// description (the library's too), and serves `GET /metrics` on `bind` in the background.
/// Returns the address it listens on. Unset: nothing is recorded, every metric call is a no-op.
///
/// # Errors
/// [`MetricsError`] when `bind` cannot be bound or a recorder is already installed.
#[cfg(feature = "metrics")]
pub async fn start(bind: Option<SocketAddr>) -> Result<Option<SocketAddr>, MetricsError> {
    use metrics_exporter_prometheus::{Matcher, PrometheusBuilder};

    let Some(bind) = bind else {
        return Ok(None);
    };
    let listener = tokio::net::TcpListener::bind(bind)
        .await
        .map_err(|source| MetricsError::Bind { addr: bind, source })?;
    let addr = listener
        .local_addr()
        .map_err(|source| MetricsError::Bind { addr: bind, source })?;
    // Invariant: the bucket lists are constants, non-empty.
    let recorder = PrometheusBuilder::new()
        .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), SECONDS_BUCKETS)
        .and_then(|b| b.set_buckets_for_metric(Matcher::Suffix("_bytes".into()), BYTES_BUCKETS))
        .expect("bucket lists are non-empty")
        .build_recorder();
    let handle = recorder.handle();
    metrics::set_global_recorder(recorder).map_err(|_| MetricsError::AlreadyInstalled)?;
    portcullis::metrics::describe();
    describe();
    let upkeep = handle.clone();
    tokio::spawn(async move {
        // Histogram samples are folded into their buckets at each scrape; without scrapes,
        // this keeps them from piling up.
        let mut every = tokio::time::interval(UPKEEP_EVERY);
        loop {
            every.tick().await;
            upkeep.run_upkeep();
        }
    });
    let router = Router::new().route(
        "/metrics",
        axum::routing::get(move || {
            let body = handle.render();
            async move { ([(axum::http::header::CONTENT_TYPE, CONTENT_TYPE)], body) }
        }),
    );
    tokio::spawn(async move {
        if let Err(error) = axum::serve(listener, router).await {
            tracing::error!(%error, "the metrics listener stopped");
        }
    });
    Ok(Some(addr))
}

/// Without the `metrics` feature `METRICS_BIND` is refused by the configuration check, so
/// there is nothing to start.
///
/// # Errors
/// Never.
#[cfg(not(feature = "metrics"))]
pub async fn start(_bind: Option<SocketAddr>) -> Result<Option<SocketAddr>, MetricsError> {
    Ok(None)
}

/// Bucket bounds of every `_seconds` histogram: 0.5 ms (a local Redis) to 10 s (a timeout).
#[cfg(feature = "metrics")]
const SECONDS_BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// Bucket bounds of every `_bytes` histogram: a bare record (about 100 bytes) to
/// `SESSION_MAX_BYTES`' default (64 KiB) and beyond.
#[cfg(feature = "metrics")]
const BYTES_BUCKETS: &[f64] = &[
    128.0, 256.0, 512.0, 1024.0, 2048.0, 4096.0, 8192.0, 16384.0, 32768.0, 65536.0, 131072.0,
];

/// How often histogram samples are folded without a scrape.
#[cfg(feature = "metrics")]
const UPKEEP_EVERY: std::time::Duration = std::time::Duration::from_secs(5);

/// Whether this build can serve metrics (the `metrics` feature).
pub(crate) const BUILT_IN: bool = cfg!(feature = "metrics");

#[cfg(feature = "metrics")]
fn describe() {
    use metrics::{Unit, describe_counter, describe_gauge, describe_histogram};
    describe_counter!(LOGINS, "Log-in attempts, by outcome.");
    describe_counter!(REGISTRATIONS, "Registration attempts, by outcome.");
    describe_gauge!(
        HASH_QUEUE,
        "Password checks waiting for a hashing thread (PASSWORD_HASH_QUEUE bounds it)."
    );
    describe_counter!(
        HTTP_REQUESTS,
        "HTTP requests, by method, route template and status code."
    );
    describe_histogram!(
        HTTP_DURATION,
        Unit::Seconds,
        "HTTP request latency, by method, route template and status class."
    );
    // Present from the start, so an alert on it has a series before the first queueing.
    metrics::gauge!(HASH_QUEUE).set(0.0);
}

/// A log-in ended with `outcome`.
#[cfg_attr(not(feature = "metrics"), allow(unused_variables))]
pub(crate) fn login(outcome: Login) {
    #[cfg(feature = "metrics")]
    metrics::counter!(LOGINS, "outcome" => outcome.as_str()).increment(1);
}

/// A registration ended with `outcome`.
#[cfg_attr(not(feature = "metrics"), allow(unused_variables))]
pub(crate) fn registration(outcome: Registration) {
    #[cfg(feature = "metrics")]
    metrics::counter!(REGISTRATIONS, "outcome" => outcome.as_str()).increment(1);
}

/// A password check started waiting for a hashing thread.
pub(crate) fn hash_queue_entered() {
    #[cfg(feature = "metrics")]
    metrics::gauge!(HASH_QUEUE).increment(1.0);
}

/// A password check stopped waiting (its turn came, it was refused, or it was dropped).
pub(crate) fn hash_queue_left() {
    #[cfg(feature = "metrics")]
    metrics::gauge!(HASH_QUEUE).decrement(1.0);
}

/// `router` with every request counted and timed by method, route template (axum's
/// [`MatchedPath`], never the path itself: `unmatched` for the fallback) and status. Without
/// the `metrics` feature, `router` itself.
pub(crate) fn track_http<S: Clone + Send + Sync + 'static>(router: Router<S>) -> Router<S> {
    if BUILT_IN {
        router.layer(axum::middleware::from_fn(http_request))
    } else {
        router
    }
}

#[cfg_attr(not(feature = "metrics"), allow(clippy::unused_async))]
async fn http_request(request: Request, next: Next) -> Response {
    #[cfg(feature = "metrics")]
    {
        let started = std::time::Instant::now();
        let route = request
            .extensions()
            .get::<MatchedPath>()
            .map_or("unmatched", MatchedPath::as_str)
            .to_owned();
        let method = method_label(request.method());
        let response = next.run(request).await;
        let status = response.status();
        let class = status_class(status.as_u16());
        metrics::counter!(HTTP_REQUESTS, "method" => method, "route" => route.clone(), "status" => status.as_u16().to_string())
            .increment(1);
        metrics::histogram!(HTTP_DURATION, "method" => method, "route" => route, "status_class" => class)
            .record(started.elapsed());
        response
    }
    #[cfg(not(feature = "metrics"))]
    next.run(request).await
}

/// The method as a label: the standard ones by name, any other (a client may send any token)
/// as `other`, so a client cannot mint label values.
fn method_label(method: &Method) -> &'static str {
    const KNOWN: [(Method, &str); 9] = [
        (Method::GET, "GET"),
        (Method::HEAD, "HEAD"),
        (Method::POST, "POST"),
        (Method::PUT, "PUT"),
        (Method::PATCH, "PATCH"),
        (Method::DELETE, "DELETE"),
        (Method::OPTIONS, "OPTIONS"),
        (Method::CONNECT, "CONNECT"),
        (Method::TRACE, "TRACE"),
    ];
    KNOWN
        .iter()
        .find(|(known, _)| known == method)
        .map_or("other", |(_, label)| label)
}

/// `2xx`, `4xx`, ...
fn status_class(code: u16) -> &'static str {
    match code {
        100..=199 => "1xx",
        200..=299 => "2xx",
        300..=399 => "3xx",
        400..=499 => "4xx",
        _ => "5xx",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_client_cannot_mint_method_or_status_labels() {
        let odd = Method::from_bytes(b"BREW").unwrap();
        assert_eq!(method_label(&odd), "other");
        assert_eq!(method_label(&Method::POST), "POST");
        assert_eq!(status_class(204), "2xx");
        assert_eq!(status_class(429), "4xx");
        assert_eq!(status_class(503), "5xx");
    }
}
