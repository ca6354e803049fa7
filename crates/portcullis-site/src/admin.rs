//! What the command line does to a user's sessions, for an administrator: list them, end
//! them (all, or all but one), and reset a password, which ends them all. The `portcullis`
//! binary prints the results (`portcullis sessions list|end`, `portcullis users
//! reset-password`); the work is here, beside the site it administers.
//!
//! Users are named by their user name; the session layer knows them by id (`_user_id`), so
//! each call looks the name up first. The store must be the site's own (files or Redis): a
//! memory store lives inside the serving process, out of reach.

use std::sync::Arc;
use std::time::SystemTime;

use portcullis::config::Config;
use portcullis::session::{DeviceId, UserSessions};
use portcullis::store::SessionStore;
use portcullis::{SessionError, SessionLayer};

use crate::device::{self, Device};
use crate::password::{self, HashError};
use crate::users::{User, Users, UsersError, validate_password};

/// Why an administrative command could not be done.
#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    /// No account has this user name.
    #[error("there is no user named {0:?}")]
    NoSuchUser(String),
    /// A session handle that `list` could not have printed.
    #[error("{0:?} is not a session handle (43 letters, digits, '-' and '_', as `list` prints)")]
    BadHandle(String),
    /// The new password breaks a rule.
    #[error("password not changed: {0}")]
    Invalid(&'static str),
    /// The session store failed.
    #[error("the session store failed")]
    Session(#[from] SessionError),
    /// The accounts database failed.
    #[error("the accounts database failed")]
    Users(#[from] UsersError),
    /// Hashing the new password failed.
    #[error(transparent)]
    Hash(#[from] HashError),
}

/// One session of a user, as `portcullis sessions list` prints it.
#[derive(Clone, Debug)]
pub struct SessionRow {
    /// What `end --except-current` takes.
    pub handle: DeviceId,
    /// When it began (the log-in).
    pub started: SystemTime,
    /// When it was last used (see [`portcullis::session::DeviceSession::last_used`]).
    pub last_used: SystemTime,
    /// When it ends if unused.
    pub expires: SystemTime,
    /// The browser, e.g. "Firefox on Linux".
    pub browser: String,
    /// The client address it logged in from.
    pub address: String,
}

/// Administration of one site's sessions: its configuration's keys and lifetimes on `store`.
#[derive(Debug)]
pub struct Admin {
    sessions: UserSessions,
    users: Users,
}

impl Admin {
    /// Administration of the sessions in `store` (the site's), for the accounts in `users`.
    #[must_use]
    pub fn new(config: &Config, store: Arc<dyn SessionStore>, users: Users) -> Self {
        Self {
            sessions: SessionLayer::from_config(config, store).user_sessions(),
            users,
        }
    }

    /// The live sessions of the user named `name`, oldest first.
    ///
    /// # Errors
    /// [`AdminError::NoSuchUser`], or the store or the database failing.
    pub async fn list(&self, name: &str) -> Result<Vec<SessionRow>, AdminError> {
        let user = self.user(name).await?;
        let devices = self.sessions.list(&user.id.to_string()).await?;
        Ok(devices
            .iter()
            .map(|d| {
                let details: Device = d.get(device::KEY).ok().flatten().unwrap_or_default();
                SessionRow {
                    handle: d.device_id().clone(),
                    started: d.created_at(),
                    last_used: d.last_used(),
                    expires: d.expires_at(),
                    browser: details.browser(),
                    address: details.address,
                }
            })
            .collect())
    }

    /// Ends every session of the user named `name`, but the one whose handle is `keep` when
    /// given; returns how many ended.
    ///
    /// # Errors
    /// [`AdminError::NoSuchUser`], [`AdminError::BadHandle`], or the store or the database
    /// failing.
    pub async fn end(&self, name: &str, keep: Option<&str>) -> Result<usize, AdminError> {
        let keep = keep
            .map(|text| DeviceId::parse(text).ok_or_else(|| AdminError::BadHandle(text.into())))
            .transpose()?;
        let user = self.user(name).await?;
        let ended = self
            .sessions
            .end_all(&user.id.to_string(), keep.as_ref())
            .await?;
        tracing::info!(target: "portcullis::security", user = user.id, ended, "sessions ended from the command line");
        Ok(ended)
    }

    /// Sets a new password for the user named `name` and ends all their sessions (a reset);
    /// returns how many ended.
    ///
    /// # Errors
    /// [`AdminError::NoSuchUser`], [`AdminError::Invalid`] for a password that breaks a rule,
    /// or the store, the database or hashing failing.
    pub async fn reset_password(
        &self,
        name: &str,
        new_password: &str,
    ) -> Result<usize, AdminError> {
        let user = self.user(name).await?;
        if let Err(UsersError::Invalid(rule)) = validate_password(new_password) {
            return Err(AdminError::Invalid(rule));
        }
        let hash = password::hash(new_password.to_owned()).await?;
        // The password first: a log-in racing this reset then fails its check, or, had it
        // passed with the old one, holds a stale `_auth_hash` that no request accepts.
        self.users.set_password_hash(user.id, &hash).await?;
        let ended = self.sessions.end_all(&user.id.to_string(), None).await?;
        tracing::info!(target: "portcullis::security", user = user.id, ended, "password reset from the command line");
        Ok(ended)
    }

    async fn user(&self, name: &str) -> Result<User, AdminError> {
        self.users
            .by_name(name)
            .await?
            .ok_or_else(|| AdminError::NoSuchUser(name.to_owned()))
    }
}
