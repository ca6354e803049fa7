//! Builds the session store that the configuration asks for.

use std::sync::Arc;
use std::time::Duration;

use portcullis::config::{Config, StoreKind};
use portcullis::store::{
    FileStore, MemoryStore, RedisStore, RedisUrlError, SessionStore, StoreError,
};
use portcullis_site::admin::Admin;
use portcullis_site::config::SiteConfig;
use portcullis_site::users::Users;

/// How often the file store sweeps expired sessions in the background.
const SWEEP_EVERY: Duration = Duration::from_secs(60);

/// What went wrong building a store.
#[derive(Debug, thiserror::Error)]
pub(crate) enum StoresError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    RedisUrl(#[from] RedisUrlError),
}

/// The configured store; for files, also starts the background sweeper. A Redis server that
/// does not answer yet does not stop start-up: the store says so in the log, requests that need
/// a session get 503 until it answers, and service resumes by itself.
/// With Redis, the same connection is also handed back for the log-in limits.
pub(crate) async fn open(config: &Config) -> Result<Opened, StoresError> {
    Ok(match config.session_type {
        StoreKind::Filesystem => {
            let store = FileStore::open(&config.session_file_dir)?;
            store.spawn_sweeper(SWEEP_EVERY);
            Opened {
                sessions: Arc::new(store),
                redis: None,
            }
        }
        StoreKind::Memory => Opened {
            sessions: Arc::new(MemoryStore::new()),
            redis: None,
        },
        StoreKind::Redis => {
            let redis = Arc::new(RedisStore::from_config(config).await?);
            Opened {
                sessions: Arc::clone(&redis) as Arc<dyn SessionStore>,
                redis: Some(redis),
            }
        }
    })
}

/// The opened session store, and the Redis connection when sessions live there.
pub(crate) struct Opened {
    pub(crate) sessions: Arc<dyn SessionStore>,
    pub(crate) redis: Option<Arc<RedisStore>>,
}

/// What the administrative commands work with: the site's store (without the file store's
/// sweeper) and accounts. The memory store is refused: it lives inside the serving process.
pub(crate) async fn admin(
    config: &Config,
    site_config: &SiteConfig,
) -> Result<Admin, Box<dyn std::error::Error>> {
    let store: Arc<dyn SessionStore> = match config.session_type {
        StoreKind::Filesystem => Arc::new(FileStore::open(&config.session_file_dir)?),
        StoreKind::Redis => Arc::new(RedisStore::from_config(config).await?),
        StoreKind::Memory => {
            return Err(
                "SESSION_TYPE=memory keeps sessions inside the serving process; \
                        the command line cannot reach them"
                    .into(),
            );
        }
    };
    let users = Users::open(&site_config.database_url).await?;
    Ok(Admin::new(config, store, users))
}

/// `portcullis sessions purge-expired`.
pub(crate) async fn purge_expired(config: &Config) -> Result<(), Box<dyn std::error::Error>> {
    let removed = match config.session_type {
        StoreKind::Filesystem => {
            FileStore::open(&config.session_file_dir)?
                .purge_expired()
                .await?
        }
        StoreKind::Memory | StoreKind::Redis => 0,
    };
    println!("removed {removed} expired session(s)");
    Ok(())
}
