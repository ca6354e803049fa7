//! Opens the session store that the configuration names, once per process: the site serves
//! from it and the commands administer it, through the one session layer in the `AppState`.

use std::sync::Arc;
use std::time::Duration;

use portcullis::config::{Config, StoreKind};
use portcullis::store::{
    FileStore, MemoryStore, RedisStore, RedisUrlError, SessionStore, StoreError,
};

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

/// The opened session store, and the same store under its own type where the site needs more
/// than [`SessionStore`]: Redis for the log-in limits, files for the sweeper.
#[derive(Debug)]
pub(crate) struct Stores {
    pub(crate) sessions: Arc<dyn SessionStore>,
    pub(crate) redis: Option<Arc<RedisStore>>,
    files: Option<Arc<FileStore>>,
}

impl Stores {
    /// The configured store. A Redis server that does not answer yet does not stop start-up:
    /// the store says so in the log, requests that need a session get 503 until it answers,
    /// and service resumes by itself.
    pub(crate) async fn open(config: &Config) -> Result<Self, StoresError> {
        Ok(match config.session_type {
            StoreKind::Filesystem => {
                let files = Arc::new(FileStore::open(&config.session_file_dir)?);
                Self {
                    sessions: Arc::clone(&files) as Arc<dyn SessionStore>,
                    redis: None,
                    files: Some(files),
                }
            }
            StoreKind::Memory => Self {
                sessions: Arc::new(MemoryStore::new()),
                redis: None,
                files: None,
            },
            StoreKind::Redis => {
                let redis = Arc::new(RedisStore::from_config(config).await?);
                Self {
                    sessions: Arc::clone(&redis) as Arc<dyn SessionStore>,
                    redis: Some(redis),
                    files: None,
                }
            }
        })
    }

    /// For the file store, sweeps expired sessions every minute in the background: for the
    /// serving process, not for a command that ends in a moment.
    pub(crate) fn sweep_in_background(&self) {
        if let Some(files) = &self.files {
            files.spawn_sweeper(SWEEP_EVERY);
        }
    }

    /// Removes the expired session files now; how many. Other stores expire their records by
    /// themselves: none.
    pub(crate) async fn purge_expired(&self) -> Result<usize, StoreError> {
        match &self.files {
            Some(files) => files.purge_expired().await,
            None => Ok(0),
        }
    }
}
