//! `portcullis serve`: log the configuration's warnings, bind, serve, and shut down gracefully
//! on SIGTERM or Ctrl-C (requests in flight finish, and their session writes land, before the
//! process exits).

use std::net::SocketAddr;

use portcullis::config::Config;
use tokio::net::TcpListener;

use crate::config::SiteConfig;
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
    let stores = Stores::open(&config).await?;
    stores.sweep_in_background();
    let bind = site_config.bind;
    let state = AppState::open(config, site_config, stores.sessions, stores.redis).await?;
    let router = app(state.clone());
    let listener = TcpListener::bind(bind).await?;
    let config = state.config();
    let address = listener.local_addr()?;
    tracing::info!(
        profile = %config.profile,
        store = ?config.session_type,
        "listening on http://{address}"
    );
    // The peer address feeds the log-in limits (see TRUSTED_PROXIES for proxies).
    axum::serve(
        listener,
        router.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(shutdown_signal())
    .await?;
    tracing::info!("shut down cleanly");
    Ok(())
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
    tracing::info!("shutdown requested: finishing requests in flight");
}
