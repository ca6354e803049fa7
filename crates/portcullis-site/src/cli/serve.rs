//! `portcullis serve`: log the configuration's warnings, bind, serve, and shut down gracefully
//! on SIGTERM or Ctrl-C: `/readyz` answers 503 at once, the listener stays open for
//! `SHUTDOWN_DRAIN_TIME` (so a load balancer stops sending first), then requests in flight
//! finish, and their session writes land, before the process exits. `sys_startup` and
//! `sys_shutdown` are logged as security events.
//!
//! The accept loop is hyper-util's, not `axum::serve`, because that gives hyper no timer: with
//! one, hyper closes a connection whose headers take longer than `HEADER_READ_TIMEOUT` (a
//! slow-header client cannot hold it). The other limits are the router's (`web/limits.rs`).

use std::time::Duration;

use axum::Router;
use axum::extract::ConnectInfo;
use hyper::Request;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use portcullis::config::Config;
use tokio::net::TcpListener;
use tower::ServiceExt;

use crate::config::SiteConfig;
use crate::events;
use crate::stores::Stores;
use crate::web::{AppState, app};

/// Runs the site until a shutdown signal arrives.
pub(crate) async fn run(
    config: Config,
    site_config: SiteConfig,
) -> Result<(), Box<dyn std::error::Error>> {
    // What `portcullis config` warns about, in the service's own log too, so a risky production
    // setting is seen by whoever reads the log and not only by whoever runs `config`.
    for warning in config.warnings_with(&site_config) {
        tracing::warn!(target: "portcullis::config", "{warning}");
    }
    // First, so that the store's first operations are counted.
    if let Some(address) = crate::metrics::start(site_config.metrics_bind).await? {
        tracing::info!("metrics on http://{address}/metrics");
    }
    let stores = Stores::open(&config).await?;
    stores.sweep_in_background();
    let bind = site_config.bind;
    let state = AppState::open(config, site_config, stores.sessions, stores.redis).await?;
    // The password blocklist is read before the first request, not inside one.
    crate::accounts::password_policy::load_blocklist();
    let router = app(state.clone());
    let listener = TcpListener::bind(bind).await?;
    let config = state.config();
    let address = listener.local_addr()?;
    tracing::info!(
        profile = %config.profile,
        store = ?config.session_type,
        "listening on http://{address}"
    );
    events::started(&config.profile.to_string());
    serve(listener, router, &state).await;
    tracing::info!("shut down cleanly");
    Ok(())
}

/// How long the accept loop waits after a failed accept: what `axum::serve` waits (one
/// second), so that running out of file descriptors costs neither a core nor the log.
const ACCEPT_BACKOFF: Duration = Duration::from_secs(1);

/// Accepts connections until the shutdown signal and `SHUTDOWN_DRAIN_TIME` after it (with
/// `/readyz` answering 503 from the signal on), then lets every open one finish its request in
/// flight (each connection is told to close after it).
async fn serve(listener: TcpListener, router: Router, state: &AppState) {
    let graceful = GracefulShutdown::new();
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(state.site_config().header_read_timeout);
    let drain = state.site_config().shutdown_drain_time;
    let shutdown = async {
        shutdown_signal().await;
        state.begin_shutdown();
        events::shutdown_requested();
        tokio::time::sleep(drain).await;
    };
    tokio::pin!(shutdown);
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            () = &mut shutdown => break,
        };
        let (stream, peer) = match accepted {
            Ok(accepted) => accepted,
            Err(error) => {
                // Out of file descriptors and the like: a later accept may work, but retrying
                // at once would spin a core and flood the log while the condition lasts.
                tracing::warn!(%error, "cannot accept a connection; trying again shortly");
                tokio::select! {
                    () = tokio::time::sleep(ACCEPT_BACKOFF) => continue,
                    () = &mut shutdown => break,
                }
            }
        };
        // The peer address feeds the log-in limits (see TRUSTED_PROXIES for proxies).
        let service = router
            .clone()
            .map_request(move |mut request: Request<Incoming>| {
                request.extensions_mut().insert(ConnectInfo(peer));
                request
            });
        let connection =
            builder.serve_connection(TokioIo::new(stream), TowerToHyperService::new(service));
        let connection = graceful.watch(connection);
        tokio::spawn(async move {
            if let Err(error) = connection.await {
                tracing::debug!(%error, %peer, "connection ended with an error");
            }
        });
    }
    drop(listener);
    graceful.shutdown().await;
}

async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(error) = tokio::signal::ctrl_c().await {
            tracing::error!(%error, "cannot listen for Ctrl-C");
            std::future::pending::<()>().await;
        }
    };
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(error) => {
                tracing::error!(%error, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
}
