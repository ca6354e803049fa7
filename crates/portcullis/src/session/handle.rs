//! The [`Session`] handle that handlers use: lazy loading, typed access, regenerate and destroy.

use std::sync::Arc;
use std::time::SystemTime;

use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::sync::{Mutex, MutexGuard};

use super::cookie::Presented;
use super::id::Id;
use super::record::{Data, Envelope};
use super::{SessionError, Shared};
use crate::keys::KeyUse;
use crate::store::StoreKey;

/// A request's session. Cheap to clone: clones share one state.
///
/// Nothing is read from the store until the first method that needs the data, so a handler that
/// never touches the session costs no store operation. Changes are written once, after the
/// handler returns, and only if something changed.
///
/// ```
/// use axum::{Router, routing::get};
/// use portcullis::{Session, SessionError};
///
/// async fn counter(session: Session) -> Result<String, SessionError> {
///     let visits: u64 = session.get("visits").await?.unwrap_or(0) + 1;
///     session.insert("visits", visits).await?;
///     Ok(format!("visit number {visits}"))
/// }
///
/// let app: Router = Router::new().route("/", get(counter));
/// ```
#[derive(Clone)]
pub struct Session {
    pub(crate) shared: Arc<Shared>,
    pub(crate) state: Arc<Mutex<State>>,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session").finish_non_exhaustive()
    }
}

/// Everything the layer needs to know after the handler ran.
#[derive(Debug)]
pub(crate) struct State {
    pub(crate) presented: Presented,
    /// The session as this request sees it; `None` until first access.
    pub(crate) current: Option<Current>,
    /// The handler touched the session (responses get `Vary: Cookie`).
    pub(crate) accessed: bool,
    /// The store failed during this request: the response becomes a 503.
    pub(crate) failed: bool,
    /// The cookie named a session that no longer exists (expired or ended elsewhere).
    pub(crate) ended_previous: bool,
    /// `destroy()` was called.
    pub(crate) destroyed: bool,
    /// Records to remove after the handler: a destroyed session's key, an expired record's.
    pub(crate) to_delete: Vec<StoreKey>,
    /// The stored record a `regenerate()` moved away from: deleted only after the new record is
    /// written, and if it had already vanished (a logout elsewhere), the new one goes too.
    pub(crate) regenerated_from: Option<StoreKey>,
}

/// The session data and what happened to it in this request.
#[derive(Debug)]
pub(crate) struct Current {
    pub(crate) id: Id,
    pub(crate) envelope: Envelope,
    /// A record for `id` is in the store (it was loaded from there).
    pub(crate) stored: bool,
    pub(crate) modified: bool,
    /// The cookie was signed with a fallback key: send a fresh one.
    pub(crate) reissue_cookie: bool,
    /// The store's expiry after this request's load, when the load slid it.
    pub(crate) idle_deadline: Option<SystemTime>,
}

impl Session {
    pub(crate) fn new(shared: Arc<Shared>, presented: Presented) -> Self {
        let state = State {
            presented,
            current: None,
            accessed: false,
            failed: false,
            ended_previous: false,
            destroyed: false,
            to_delete: Vec::new(),
            regenerated_from: None,
        };
        Self {
            shared,
            state: Arc::new(Mutex::new(state)),
        }
    }

    /// Locks the state and loads the session on first use.
    async fn loaded(&self) -> Result<MutexGuard<'_, State>, SessionError> {
        let mut state = self.state.lock().await;
        self.load_into(&mut state).await?;
        Ok(state)
    }

    async fn load_into(&self, state: &mut State) -> Result<(), SessionError> {
        if state.failed {
            return Err(SessionError::Unavailable { source: None });
        }
        if state.current.is_some() {
            return Ok(());
        }
        state.accessed = true;
        let now = self.shared.clock.now();
        let Presented::Valid { id, key_use } = state.presented.clone() else {
            state.current = Some(self.fresh(now));
            return Ok(());
        };
        let settings = &self.shared.settings;
        let key = settings.format.store_key(&id, &settings.key_prefix);
        let slide_to = settings.refresh_each_request.then(|| now + settings.idle);
        let bytes = match self.shared.store.load(&key, slide_to).await {
            Ok(bytes) => bytes,
            Err(error) => {
                state.failed = true;
                self.shared.health.report_failure(&error);
                return Err(SessionError::Unavailable {
                    source: Some(error),
                });
            }
        };
        self.shared.health.report_success();
        let keys = &self.shared.keys;
        let opened = bytes.map(|b| (settings.format.decode_record(keys, &key, &b, now), b.len()));
        state.current = Some(match opened {
            Some((Some((envelope, rewrite)), _))
                if now < envelope.created_at() + settings.absolute =>
            {
                // Without a slide, the idle deadline is the one the last write set.
                let written = (envelope.deadline_ms > 0)
                    .then(|| crate::clock::from_unix_millis(envelope.deadline_ms));
                Current {
                    id,
                    modified: rewrite,
                    reissue_cookie: key_use == KeyUse::Fallback,
                    idle_deadline: slide_to.or(written),
                    envelope,
                    stored: true,
                }
            }
            Some((None, len)) => {
                // Unreadable here: altered, torn, or sealed by a key or format this process does
                // not know yet (a rolling upgrade or key rotation). Treated as absent but left
                // in place, since another process may still read it; its idle expiry ends it.
                tracing::warn!(
                    target: "portcullis::security",
                    session = %self.shared.keys.log_hash(key.as_str().as_bytes()),
                    bytes = len,
                    "session record failed authentication; starting a new session"
                );
                state.ended_previous = true;
                self.fresh(now)
            }
            Some((Some(_), _)) => {
                // Past its absolute lifetime: gone for good.
                state.to_delete.push(key);
                state.ended_previous = true;
                self.fresh(now)
            }
            None => {
                tracing::info!(
                    target: "portcullis::security",
                    session = %self.shared.keys.log_hash(key.as_str().as_bytes()),
                    "session cookie names no live session (expired or ended); issuing a new id"
                );
                state.ended_previous = true;
                self.fresh(now)
            }
        });
        Ok(())
    }

    fn fresh(&self, now: SystemTime) -> Current {
        Current {
            id: Id::random(),
            envelope: Envelope::new(now, self.shared.settings.permanent),
            stored: false,
            modified: false,
            reissue_cookie: false,
            idle_deadline: None,
        }
    }

    async fn with_current<R>(
        &self,
        f: impl FnOnce(&mut Current) -> Result<R, SessionError>,
    ) -> Result<R, SessionError> {
        let mut state = self.loaded().await?;
        let current = state
            .current
            .as_mut()
            .ok_or(SessionError::Unavailable { source: None })?;
        f(current)
    }

    /// The value under `key`, decoded as `T`; `None` when absent.
    ///
    /// # Errors
    /// [`SessionError::Unavailable`] when the store cannot be reached;
    /// [`SessionError::Decode`] when the stored value is not a `T`.
    pub async fn get<T: DeserializeOwned>(&self, key: &str) -> Result<Option<T>, SessionError> {
        self.with_current(|c| {
            c.envelope
                .data
                .get(key)
                .map(|v| rmpv::ext::from_value(v.clone()).map_err(SessionError::decode))
                .transpose()
        })
        .await
    }

    /// Stores `value` under `key`, replacing what was there.
    ///
    /// # Errors
    /// [`SessionError::TooLarge`] when the session would exceed `SESSION_MAX_BYTES` (nothing is
    /// changed then); [`SessionError::Unavailable`] when the store cannot be reached;
    /// [`SessionError::Encode`] when `value` cannot be encoded.
    pub async fn insert<T: Serialize>(&self, key: &str, value: T) -> Result<(), SessionError> {
        let value = rmpv::ext::to_value(value).map_err(SessionError::encode)?;
        let max = self.shared.settings.max_bytes;
        self.with_current(|c| {
            let previous = c.envelope.data.insert(key.to_owned(), value);
            let size = c.envelope.data_len();
            if size > max {
                match previous {
                    Some(old) => c.envelope.data.insert(key.to_owned(), old),
                    None => c.envelope.data.remove(key),
                };
                return Err(SessionError::TooLarge { size, max });
            }
            c.modified = true;
            Ok(())
        })
        .await
    }

    /// Removes `key` and returns its value decoded as `T`.
    ///
    /// # Errors
    /// As [`Session::get`].
    pub async fn remove<T: DeserializeOwned>(&self, key: &str) -> Result<Option<T>, SessionError> {
        self.with_current(|c| {
            let removed = c.envelope.data.remove(key);
            c.modified |= removed.is_some();
            removed
                .map(|v| rmpv::ext::from_value(v).map_err(SessionError::decode))
                .transpose()
        })
        .await
    }

    /// Removes every key (the session itself, its id and its lifetime stay).
    ///
    /// # Errors
    /// [`SessionError::Unavailable`] when the store cannot be reached.
    pub async fn clear(&self) -> Result<(), SessionError> {
        self.with_current(|c| {
            c.modified |= !c.envelope.data.is_empty() || c.envelope.user_id.is_some();
            c.envelope.data = Data::new();
            c.envelope.user_id = None;
            Ok(())
        })
        .await
    }

    /// The keys present, in order.
    ///
    /// # Errors
    /// [`SessionError::Unavailable`] when the store cannot be reached.
    pub async fn keys(&self) -> Result<Vec<String>, SessionError> {
        self.with_current(|c| Ok(c.envelope.data.keys().cloned().collect()))
            .await
    }

    /// The logged-in user recorded in the sealed envelope, if any.
    ///
    /// # Errors
    /// [`SessionError::Unavailable`] when the store cannot be reached.
    pub async fn user_id(&self) -> Result<Option<String>, SessionError> {
        self.with_current(|c| Ok(c.envelope.user_id.clone())).await
    }

    /// Records (or clears) the logged-in user in the sealed envelope.
    ///
    /// # Errors
    /// [`SessionError::Unavailable`] when the store cannot be reached.
    pub async fn set_user_id(&self, user: Option<String>) -> Result<(), SessionError> {
        self.with_current(|c| {
            c.modified |= c.envelope.user_id != user;
            c.envelope.user_id = user;
            Ok(())
        })
        .await
    }

    /// Whether the cookie carries an expiry; starts as `SESSION_PERMANENT`.
    ///
    /// # Errors
    /// [`SessionError::Unavailable`] when the store cannot be reached.
    pub async fn permanent(&self) -> Result<bool, SessionError> {
        self.with_current(|c| Ok(c.envelope.permanent)).await
    }

    /// Overrides `SESSION_PERMANENT` for this session (Flask's `session.permanent`). Idle and
    /// absolute expiry apply on the server either way.
    ///
    /// # Errors
    /// [`SessionError::Unavailable`] when the store cannot be reached.
    pub async fn set_permanent(&self, permanent: bool) -> Result<(), SessionError> {
        self.with_current(|c| {
            c.modified |= c.envelope.permanent != permanent;
            c.envelope.permanent = permanent;
            Ok(())
        })
        .await
    }

    /// When this session began (or was last regenerated): the start of its absolute lifetime.
    ///
    /// # Errors
    /// [`SessionError::Unavailable`] when the store cannot be reached.
    pub async fn created_at(&self) -> Result<SystemTime, SessionError> {
        self.with_current(|c| Ok(c.envelope.created_at())).await
    }

    /// When the session will expire if nothing else happens: the idle deadline this request
    /// set, capped by the absolute lifetime.
    ///
    /// # Errors
    /// [`SessionError::Unavailable`] when the store cannot be reached.
    pub async fn expires_at(&self) -> Result<SystemTime, SessionError> {
        let now = self.shared.clock.now();
        let settings = &self.shared.settings;
        self.with_current(|c| {
            let idle = c.idle_deadline.unwrap_or(now + settings.idle);
            Ok(idle.min(c.envelope.created_at() + settings.absolute))
        })
        .await
    }

    /// `true` when the request's cookie was authentic but its session had ended (idle or
    /// absolute expiry, or a logout elsewhere): the site can say "your session has expired".
    ///
    /// # Errors
    /// [`SessionError::Unavailable`] when the store cannot be reached.
    pub async fn previous_session_ended(&self) -> Result<bool, SessionError> {
        let state = self.loaded().await?;
        Ok(state.ended_previous)
    }

    /// Gives the session a new id, keeping its data, and restarts its absolute lifetime; the old
    /// record is deleted once the new one is written. Call it whenever privilege changes (log in)
    /// so that an id planted before login is worthless after it (session fixation).
    ///
    /// # Errors
    /// [`SessionError::Unavailable`] when the store cannot be reached.
    pub async fn regenerate(&self) -> Result<(), SessionError> {
        let prefix = &self.shared.settings.key_prefix;
        let now = self.shared.clock.now();
        let mut state = self.loaded().await?;
        let State {
            current,
            regenerated_from,
            ..
        } = &mut *state;
        let current = current
            .as_mut()
            .ok_or(SessionError::Unavailable { source: None })?;
        if current.stored {
            *regenerated_from = Some(self.shared.settings.format.store_key(&current.id, prefix));
        }
        current.id = Id::random();
        current.envelope.created_ms = crate::clock::unix_millis(now);
        current.envelope.revision = 0;
        current.envelope.data.remove(crate::csrf::SESSION_KEY);
        current.stored = false;
        current.modified = true;
        current.idle_deadline = None;
        Ok(())
    }

    /// Ends the session: its record is deleted after the handler returns and the cookie is
    /// expired. Anything inserted afterwards in the same request starts a new session.
    ///
    /// # Errors
    /// None today; the signature leaves room for stores that delete eagerly.
    pub async fn destroy(&self) -> Result<(), SessionError> {
        let prefix = &self.shared.settings.key_prefix;
        let now = self.shared.clock.now();
        let mut state = self.state.lock().await;
        state.accessed = true;
        state.destroyed = true;
        let format = &self.shared.settings.format;
        let stored_key = match (&state.current, &state.presented) {
            (Some(c), _) if c.stored => Some(format.store_key(&c.id, prefix)),
            (None, Presented::Valid { id, .. }) => Some(format.store_key(id, prefix)),
            _ => None,
        };
        state.to_delete.extend(stored_key);
        if let Some(old) = state.regenerated_from.take() {
            state.to_delete.push(old);
        }
        state.current = Some(self.fresh(now));
        Ok(())
    }
}
