//! The [`Session`] handle that handlers use: lazy loading, typed access, regenerate and destroy.

use std::sync::Arc;
use std::time::SystemTime;

use axum_core::extract::FromRequestParts;
use http::request::Parts;
use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::sync::Mutex;

use super::Format;
use super::changes::{self, Change, Changes, UpdateFn};
use super::cookie::{CookieHeaders, PresentedCookie};
use super::ending::Ending;
use super::id::Id;
use super::opened::OpenedRecords;
use super::pre_session::PreSession;
use super::record::Envelope;
use super::secret::CSRF_SECRET_KEY;
use super::{LayerShared, MissingSessionLayer, SessionError};
use crate::clock::Clock;
use crate::keys::KeyRing;
use crate::store::{CasToken, StoreKey};

/// A request's session. Cheap to clone: clones share one state.
///
/// Nothing is verified or read from the store until the first method that needs the data, so a
/// handler that never touches the session costs no cookie check (no HMAC, no security event for
/// a forged cookie) and no store operation. Changes are written once, after the
/// handler returns, and only if something changed.
///
/// Concurrent requests on one session lose nothing: each records what it changed, and when
/// another request saved first, its changes are applied again onto that request's record
/// (see [`Session::update`] and the crate docs' "Concurrency").
///
/// The handle comes from the [`SessionLayer`](super::SessionLayer), which must wrap every
/// route that extracts it; without it the extractor answers 500 naming the fix
/// ([`MissingSessionLayer`]).
///
/// ```
/// use axum::{Router, routing::get};
/// use portcullis::{Session, SessionError, SessionLayer, keys::KeyRing, store::MemoryStore};
///
/// async fn counter(session: Session) -> Result<String, SessionError> {
///     let visits: u64 = session.get("visits").await?.unwrap_or(0) + 1;
///     session.insert("visits", visits).await?;
///     Ok(format!("visit number {visits}"))
/// }
///
/// let keys = KeyRing::new(b"a secret key of at least thirty-two bytes", &[]);
/// let app: Router = Router::new()
///     .route("/", get(counter))
///     .layer(SessionLayer::new(MemoryStore::new(), keys));
/// ```
#[derive(Clone)]
pub struct Session {
    pub(crate) shared: Arc<LayerShared>,
    pub(crate) state: Arc<Mutex<RequestSession>>,
}

/// What the CSRF layer reads of the session layer, instead of reaching into it.
impl Session {
    /// The layer's key ring (the CSRF keys sign the tokens).
    pub(crate) fn key_ring(&self) -> &Arc<KeyRing> {
        &self.shared.keys
    }

    /// The layer's clock.
    pub(crate) fn clock(&self) -> &Arc<dyn Clock> {
        &self.shared.clock
    }

    /// The layer's session format (which decides the CSRF token's form).
    pub(crate) fn format(&self) -> &Format {
        &self.shared.settings.format
    }

    /// The path prefix whose errors the layer answers in JSON.
    pub(crate) fn json_prefix(&self) -> &str {
        &self.shared.settings.json_prefix
    }
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session").finish_non_exhaustive()
    }
}

/// Everything the layer needs to know after the handler ran.
#[derive(Debug)]
pub(crate) struct RequestSession {
    /// The request's `Cookie` headers until the session's first use verifies them into
    /// `presented` and `pre_session` (`load.rs`); `None` once verified.
    pub(crate) unverified: Option<CookieHeaders>,
    /// The session cookie; [`PresentedCookie::Absent`] until verified.
    pub(crate) presented: PresentedCookie,
    /// The anonymous forms' CSRF secret, from its own cookie (`pre_session.rs`); none until
    /// verified.
    pub(crate) pre_session: PreSession,
    /// The session as this request sees it; `None` until first access.
    pub(crate) current: Option<WorkingCopy>,
    /// The handler touched the session (responses get `Vary: Cookie`).
    pub(crate) accessed: bool,
    /// The store failed during this request: the response becomes a 503.
    pub(crate) failed: bool,
    /// The cookie named a session that no longer exists (expired or ended elsewhere).
    pub(crate) ended_previous: bool,
    /// Why it ended, when the layer could tell (`ending.rs`).
    pub(crate) ending: Option<Ending>,
    /// `destroy()` was called.
    pub(crate) destroyed: bool,
    /// Sessions to remove after the handler: a destroyed or regenerated session's old id, or
    /// one whose record was unreadable.
    pub(crate) to_delete: Vec<Id>,
    /// Sessions ended on purpose in this request: each gets a marker saying why, once deleted.
    pub(crate) endings: Vec<(Id, Ending)>,
}

/// The session data and what happened to it in this request.
#[derive(Debug)]
pub(crate) struct WorkingCopy {
    pub(crate) id: Id,
    /// Shared with the record kept opened (`opened.rs`) until this request first changes it
    /// ([`WorkingCopy::envelope_mut`]), so that a request that only reads copies nothing; a
    /// successful save shares the new one again.
    pub(crate) envelope: Arc<Envelope>,
    /// The store key under which the records kept opened may hold this very envelope, until
    /// the first change lets go of it there ([`WorkingCopy::envelope_mut`]).
    pub(crate) kept_under: Option<StoreKey>,
    /// A record for `id` is in the store (it was loaded from there).
    pub(crate) stored: bool,
    pub(crate) modified: bool,
    /// The cookie was signed with a fallback key: send a fresh one.
    pub(crate) reissue_cookie: bool,
    /// The store's expiry after this request's load, when the load slid it.
    pub(crate) idle_deadline: Option<SystemTime>,
    /// The compare-and-set token of the record loaded for `id` (when `stored`).
    pub(crate) token: Option<CasToken>,
    /// Every change this request made, to replay onto a newer record on a conflict.
    pub(crate) changes: Changes,
    /// When this request regenerated a stored session: what it was regenerated from.
    pub(crate) regenerated: Option<Regenerated>,
}

/// The stored session a request regenerated: its old id, and the token of its record as this
/// request loaded it, so that the writer can retire it and carry over what other requests saved
/// there meanwhile.
#[derive(Clone, Debug)]
pub(crate) struct Regenerated {
    pub(crate) old: Id,
    pub(crate) token: Option<CasToken>,
    /// Its user id: a new id for the same user is a renewal, not a new session.
    pub(crate) user: Option<String>,
}

impl WorkingCopy {
    /// A new session's working copy of `envelope`: a new id, nothing stored, loaded or changed.
    pub(crate) fn new(envelope: Envelope) -> Self {
        Self {
            id: Id::random(),
            envelope: Arc::new(envelope),
            kept_under: None,
            stored: false,
            modified: false,
            reissue_cookie: false,
            idle_deadline: None,
            token: None,
            changes: Changes::default(),
            regenerated: None,
        }
    }

    /// The envelope to change: this request's own. On the first change of an envelope shared
    /// with the records kept opened, those let go of it when nobody else holds it
    /// ([`OpenedRecords::release`]), so that it changes in place; else it is copied first.
    pub(crate) fn envelope_mut(&mut self, opened: &OpenedRecords) -> &mut Envelope {
        if let Some(key) = self.kept_under.take() {
            opened.release(&key, &self.envelope);
        }
        Arc::make_mut(&mut self.envelope)
    }

    /// Applies `change` to this request's view and records it for a replay.
    fn apply(&mut self, change: Change, opened: &OpenedRecords) {
        changes::apply(&change, self.envelope_mut(opened));
        self.changes.push(change);
        self.modified = true;
    }
}

impl Session {
    pub(crate) fn new(shared: Arc<LayerShared>, cookies: CookieHeaders) -> Self {
        let state = RequestSession {
            unverified: Some(cookies),
            presented: PresentedCookie::Absent,
            pre_session: PreSession::default(),
            current: None,
            accessed: false,
            failed: false,
            ended_previous: false,
            ending: None,
            destroyed: false,
            to_delete: Vec::new(),
            endings: Vec::new(),
        };
        Self {
            shared,
            state: Arc::new(Mutex::new(state)),
        }
    }

    async fn with_current<R>(
        &self,
        f: impl FnOnce(&mut WorkingCopy) -> Result<R, SessionError>,
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
                .map(|v| rmpv::ext::from_value(v.clone()).map_err(SessionError::Decode))
                .transpose()
        })
        .await
    }

    /// The value under `key`, decoded as `T`; `None` when absent or when it is not a `T` (a
    /// value another version of the application, or another application, stored there), for
    /// values that are only worth having in the expected shape.
    ///
    /// # Errors
    /// [`SessionError::Unavailable`] when the store cannot be reached.
    pub async fn get_lenient<T: DeserializeOwned>(
        &self,
        key: &str,
    ) -> Result<Option<T>, SessionError> {
        match self.get(key).await {
            Err(SessionError::Decode(_)) => Ok(None),
            other => other,
        }
    }

    /// Stores `value` under `key`, replacing what was there.
    ///
    /// # Errors
    /// [`SessionError::TooLarge`] when the session would exceed `SESSION_MAX_BYTES` (nothing is
    /// changed then); [`SessionError::Unavailable`] when the store cannot be reached;
    /// [`SessionError::Encode`] when `value` cannot be encoded.
    pub async fn insert<T: Serialize>(&self, key: &str, value: T) -> Result<(), SessionError> {
        let value = rmpv::ext::to_value(value).map_err(SessionError::Encode)?;
        let max = self.shared.settings.max_bytes;
        self.with_current(|c| {
            check_size(c, key, Some(&value), max)?;
            c.apply(Change::Insert(key.to_owned(), value), &self.shared.opened);
            Ok(())
        })
        .await
    }

    /// Changes the value under `key` with `f`, which gets the current value (`None` when
    /// absent) and returns the new one (`None` removes the key); returns the new value.
    ///
    /// Unlike [`Session::get`] then [`Session::insert`], an update survives concurrent
    /// requests: when another request saved the session first, `f` runs again on the value
    /// that request left, before this request's change is saved. So two concurrent increments
    /// give +2, and a message appended to a list by one request is still there after another
    /// appended its own. `f` must therefore be pure: it may run more than once, and only its
    /// last result is kept.
    ///
    /// ```
    /// # async fn handler(session: portcullis::Session) -> Result<(), portcullis::SessionError> {
    /// let visits = session.update("visits", |n: Option<u64>| Some(n.unwrap_or(0) + 1)).await?;
    /// assert!(visits >= Some(1));
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    /// [`SessionError::Decode`] when the stored value is not a `T`, [`SessionError::Encode`]
    /// when the new one cannot be encoded, [`SessionError::TooLarge`] when the session would
    /// exceed `SESSION_MAX_BYTES` (nothing is changed in these cases);
    /// [`SessionError::Unavailable`] when the store cannot be reached.
    pub async fn update<T, F>(&self, key: &str, f: F) -> Result<Option<T>, SessionError>
    where
        T: Serialize + DeserializeOwned + 'static,
        F: Fn(Option<T>) -> Option<T> + Send + Sync + 'static,
    {
        let update: UpdateFn = Arc::new(move |current: Option<&rmpv::Value>| {
            let current = current
                .map(|v| rmpv::ext::from_value::<T>(v.clone()))
                .transpose()
                .map_err(SessionError::Decode)?;
            f(current)
                .map(rmpv::ext::to_value)
                .transpose()
                .map_err(SessionError::Encode)
        });
        let max = self.shared.settings.max_bytes;
        let new = self
            .with_current(|c| {
                let new = update(c.envelope.data.get(key))?;
                check_size(c, key, new.as_ref(), max)?;
                c.apply(Change::Update(key.to_owned(), update), &self.shared.opened);
                Ok(new)
            })
            .await?;
        new.map(|v| rmpv::ext::from_value(v).map_err(SessionError::Decode))
            .transpose()
    }

    /// As [`Session::update`], but a stored value that is not a `T` counts as absent: it is
    /// removed, and `f` gets `None`.
    ///
    /// # Errors
    /// As [`Session::update`], but never [`SessionError::Decode`] for the stored value.
    pub async fn update_lenient<T, F>(&self, key: &str, f: F) -> Result<Option<T>, SessionError>
    where
        T: Serialize + DeserializeOwned + 'static,
        F: Fn(Option<T>) -> Option<T> + Send + Sync + 'static,
    {
        let f = Arc::new(f);
        let first = Arc::clone(&f);
        match self.update(key, move |value| first(value)).await {
            // Nothing was changed: the update refused the stored value before applying.
            Err(SessionError::Decode(_)) => {
                self.remove::<rmpv::Value>(key).await?;
                self.update(key, move |value| f(value)).await
            }
            other => other,
        }
    }

    /// Removes `key` and returns its value decoded as `T`.
    ///
    /// # Errors
    /// As [`Session::get`].
    pub async fn remove<T: DeserializeOwned>(&self, key: &str) -> Result<Option<T>, SessionError> {
        self.with_current(|c| {
            let removed = c.envelope.data.get(key).cloned();
            if removed.is_some() {
                c.apply(Change::Remove(key.to_owned()), &self.shared.opened);
            }
            removed
                .map(|v| rmpv::ext::from_value(v).map_err(SessionError::Decode))
                .transpose()
        })
        .await
    }

    /// Removes every key and the logged-in user (the session itself, its id, its lifetime and
    /// its CSRF secret stay).
    ///
    /// # Errors
    /// [`SessionError::Unavailable`] when the store cannot be reached.
    pub async fn clear(&self) -> Result<(), SessionError> {
        self.with_current(|c| {
            let csrf = usize::from(c.envelope.data.contains_key(CSRF_SECRET_KEY));
            if c.envelope.data.len() > csrf || c.envelope.user_id.is_some() {
                c.apply(Change::Clear, &self.shared.opened);
            }
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
    ///
    /// A session gets into its user's index (listed by [`Session::devices`], ended by a
    /// password change...) when it is created or [regenerated](Session::regenerate) with a
    /// user. So where the layer keeps per-user indexes (the native format), a change of user
    /// on a stored session that this request has not regenerated [regenerates](Session::regenerate)
    /// it first: it gets a new id in its user's index, and an id planted before the log-in is
    /// worthless after it. Calling `regenerate` at log-in yourself is still the clearer code.
    pub async fn set_user_id(&self, user: Option<String>) -> Result<(), SessionError> {
        let indexes =
            self.shared.settings.format.indexes_users() && self.shared.store.user_index().is_some();
        let regenerate = self
            .with_current(|c| Ok(indexes && c.stored && c.envelope.user_id != user))
            .await?;
        if regenerate {
            self.regenerate().await?;
        }
        self.with_current(|c| {
            if c.envelope.user_id != user {
                c.apply(Change::User(user), &self.shared.opened);
            }
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
            if c.envelope.permanent != permanent {
                c.apply(Change::Permanent(permanent), &self.shared.opened);
            }
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

    /// Why the session the request's cookie named is over, when it is and the layer can tell:
    /// [`Ending::Idle`] when its record is simply gone, [`Ending::Absolute`] past its absolute
    /// lifetime, and the reason the ending call gave otherwise ([`Session::destroy`] is
    /// [`Ending::LoggedOut`]; [`Session::end_other_devices`] [`Ending::EndedElsewhere`]).
    /// `None` for a request without an authentic cookie, with a live session, or whose record
    /// could not be opened. Found on the miss path only (a second store read there); in the
    /// Flask format a session the Flask app ended reads as [`Ending::Idle`].
    ///
    /// # Errors
    /// [`SessionError::Unavailable`] when the store cannot be reached.
    pub async fn ended(&self) -> Result<Option<Ending>, SessionError> {
        let state = self.loaded().await?;
        Ok(state.ending)
    }

    /// Gives the session a new id, keeping its data, and restarts its absolute lifetime; the old
    /// record is deleted once the new one is written, and what other requests saved there
    /// meanwhile is carried over. The CSRF secret rotates: the new session gets a new one.
    /// Call it whenever privilege changes (log in) so that an id planted before login is
    /// worthless after it (session fixation). A session with a user id is then created in its
    /// user's index, subject to `SESSION_MAX_PER_USER`.
    ///
    /// # Errors
    /// [`SessionError::Unavailable`] when the store cannot be reached.
    pub async fn regenerate(&self) -> Result<(), SessionError> {
        let now = self.shared.clock.now();
        let mut state = self.loaded().await?;
        // The anonymous forms' secret ends with the anonymous session: a log-in rotates it.
        state.pre_session.retire();
        let current = state
            .current
            .as_mut()
            .ok_or(SessionError::Unavailable { source: None })?;
        if current.stored && current.regenerated.is_none() {
            current.regenerated = Some(Regenerated {
                old: current.id.clone(),
                token: current.token.take(),
                user: current.envelope.user_id.clone(),
            });
        }
        if current.stored {
            current.id = Id::random();
        }
        // Else the id is one this request drew (a new session, or one regenerated already) and
        // never sent: nobody else can know it, so it stays, and a log-in without a session
        // draws one id instead of two.
        current.stored = false;
        current.idle_deadline = None;
        current.apply(
            Change::Regenerate {
                created_ms: crate::clock::unix_millis(now),
            },
            &self.shared.opened,
        );
        Ok(())
    }

    /// Ends the session: its record is deleted after the handler returns and the cookie is
    /// expired. Anything inserted afterwards in the same request starts a new session.
    ///
    /// # Errors
    /// None today; the signature leaves room for stores that delete eagerly.
    pub async fn destroy(&self) -> Result<(), SessionError> {
        self.destroy_because(Ending::LoggedOut).await
    }

    /// [`Session::destroy`], saying why: the reason [`Session::ended`] reports to a later
    /// request that presents this session's cookie (a password change or an account disabled
    /// elsewhere, noticed by this request).
    ///
    /// # Errors
    /// As [`Session::destroy`].
    pub async fn destroy_because(&self, ending: Ending) -> Result<(), SessionError> {
        let now = self.shared.clock.now();
        let mut state = self.state.lock().await;
        state.verify_cookies(&self.shared);
        state.accessed = true;
        state.destroyed = true;
        state.pre_session.retire();
        let stored = match (&state.current, &state.presented) {
            (Some(c), _) if c.stored => Some(c.id.clone()),
            (Some(c), _) => c.regenerated.as_ref().map(|r| r.old.clone()),
            (None, PresentedCookie::Valid { id, .. }) => Some(id.clone()),
            _ => None,
        };
        state.endings.extend(stored.clone().map(|id| (id, ending)));
        state.to_delete.extend(stored);
        state.current = Some(self.fresh(now));
        Ok(())
    }
}

/// The extractor finds the [`Session`] the layer put in the request.
impl<S: Send + Sync> FromRequestParts<S> for Session {
    type Rejection = MissingSessionLayer;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        parts
            .extensions
            .get::<Session>()
            .cloned()
            .ok_or(MissingSessionLayer)
    }
}

/// Refuses a change of `key` to `value` (`None`: its removal) that would take the data past
/// `max` bytes, measured without making the change.
fn check_size(
    c: &WorkingCopy,
    key: &str,
    value: Option<&rmpv::Value>,
    max: usize,
) -> Result<(), SessionError> {
    let size = c.envelope.data_len_with(key, value);
    if size > max {
        return Err(SessionError::TooLarge { size, max });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::time::SystemTime;

    use super::*;

    /// A working copy of the record kept for `key`, as a load hands it out.
    fn loaded(kept: &OpenedRecords, key: &StoreKey) -> WorkingCopy {
        let (envelope, _) = kept.get(key, b"record").unwrap();
        WorkingCopy {
            envelope,
            kept_under: Some(key.clone()),
            stored: true,
            ..WorkingCopy::new(Envelope::new(SystemTime::now(), true))
        }
    }

    /// The common write: one request loads the kept record and changes it. Its change takes
    /// the kept envelope itself (no copy), and the kept record is let go of, so the next load
    /// of those bytes opens them afresh rather than seeing the change.
    #[test]
    fn a_change_nobody_else_shares_takes_the_kept_envelope_in_place() {
        let kept = OpenedRecords::new();
        let key = StoreKey::from_string("sess:a".into());
        kept.put(
            &key,
            b"record",
            &Arc::new(Envelope::new(SystemTime::now(), true)),
            false,
        );
        let mut current = loaded(&kept, &key);
        let before = Arc::as_ptr(&current.envelope);

        current
            .envelope_mut(&kept)
            .data
            .insert("n".into(), rmpv::Value::from(2));
        assert_eq!(Arc::as_ptr(&current.envelope), before, "changed in place");
        assert_eq!(kept.get(&key, b"record"), None, "let go of");
        assert_eq!(current.kept_under, None);
    }

    /// Another request holds the same envelope: the change copies it, and the kept record
    /// stays for the next load.
    #[test]
    fn a_change_of_an_envelope_another_request_holds_copies_it_and_keeps_the_record() {
        let kept = OpenedRecords::new();
        let key = StoreKey::from_string("sess:a".into());
        let envelope = Envelope::new(SystemTime::now(), true);
        kept.put(&key, b"record", &Arc::new(envelope.clone()), false);
        let mut current = loaded(&kept, &key);
        let (other, _) = kept.get(&key, b"record").unwrap();

        current
            .envelope_mut(&kept)
            .data
            .insert("n".into(), rmpv::Value::from(2));
        assert!(!Arc::ptr_eq(&current.envelope, &other), "copied");
        assert_eq!(*other, envelope, "the other request's view is unchanged");
        let (next, _) = kept.get(&key, b"record").unwrap();
        assert!(Arc::ptr_eq(&next, &other), "still kept");
    }
}
