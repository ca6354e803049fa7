//! A user's sessions across devices: list them, end one, end all but one. For the pages of
//! the user ([`Session::devices`] and friends) and for administrators ([`UserSessions`], from
//! [`SessionLayer::user_sessions`](super::SessionLayer::user_sessions)).
//!
//! A session gets into its user's index when it is created with a user id (log in:
//! [`Session::regenerate`] then [`Session::set_user_id`], in either order; `set_user_id`
//! alone regenerates a stored session, so that none is left out). Its id then
//! carries the user's routing tag `T` (128 bits of HMAC-SHA256 of the user id under a key of
//! the ring): the cookie holds `T` only sealed (`<sealed T>~<random>`, see `id.rs`), the store
//! key is `<prefix>{T}<member>` and the index `<prefix>idx:{T}`, where `member` is the base64url SHA-256 of the id. Members, never
//! ids, are what lists show and what "end" takes ([`DeviceId`]): knowing one gives no
//! cookie. `T` is keyed with the routing key kept in the store (`routing.rs`), which outlives
//! key rotations; lists and "end all" also look under the tags of the ring's own keys.

use std::fmt;
use std::sync::Arc;
use std::time::SystemTime;

use serde::de::DeserializeOwned;

use super::ending::{self, Ending};
use super::format::max_record_len;
use super::id::{ENCODED_DIGEST_LEN, Tag, slot};
use super::record::Data;
use super::routing;
use super::{LayerShared, Session, SessionError};
use crate::events;
use crate::store::{StoreError, UserIndex};

/// Names one session of a user in lists and in "end" requests: its member in the user's index
/// (the base64url SHA-256 of its id, which is also the end of its store key). Not a secret, and
/// no way back to the id or the cookie.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct DeviceId(String);

impl DeviceId {
    /// Parses a device id as shown by a list: 43 base64url characters; `None` for anything else.
    #[must_use]
    pub fn parse(text: &str) -> Option<Self> {
        let valid = text.len() == ENCODED_DIGEST_LEN
            && text
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        valid.then(|| Self(text.to_owned()))
    }

    /// The device id as text.
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for DeviceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for DeviceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "DeviceId({})", self.0)
    }
}

/// One live session of a user, as a list shows it.
#[derive(Clone)]
pub struct DeviceSession {
    device_id: DeviceId,
    created_at: SystemTime,
    last_used: SystemTime,
    expires_at: SystemTime,
    current: bool,
    data: Data,
}

impl fmt::Debug for DeviceSession {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DeviceSession")
            .field("device_id", &self.device_id)
            .field("created_at", &self.created_at)
            .field("current", &self.current)
            .finish_non_exhaustive()
    }
}

impl DeviceSession {
    /// What names this session in "end" requests.
    #[must_use]
    pub fn device_id(&self) -> &DeviceId {
        &self.device_id
    }

    /// When it began: the log-in (or the last regeneration).
    #[must_use]
    pub fn created_at(&self) -> SystemTime {
        self.created_at
    }

    /// When it was last used: its idle deadline less the idle lifetime (every load slides the
    /// deadline; with `SESSION_REFRESH_EACH_REQUEST=false`, every write). Within the last idle
    /// lifetime before the absolute deadline, the deadline is capped, so this is then a
    /// lower bound. Never earlier than [`DeviceSession::created_at`].
    #[must_use]
    pub fn last_used(&self) -> SystemTime {
        self.last_used
    }

    /// When it ends if nothing else happens.
    #[must_use]
    pub fn expires_at(&self) -> SystemTime {
        self.expires_at
    }

    /// Whether it is the session of the request that listed it.
    #[must_use]
    pub fn is_current(&self) -> bool {
        self.current
    }

    /// A value of its data (the application's own device details, for example), decoded as
    /// `T`; `None` when absent.
    ///
    /// # Errors
    /// [`SessionError::Decode`] when the value is not a `T`.
    pub fn get<T: DeserializeOwned>(&self, key: &str) -> Result<Option<T>, SessionError> {
        self.data
            .get(key)
            .map(|v| rmpv::ext::from_value(v.clone()).map_err(SessionError::Decode))
            .transpose()
    }
}

/// Every user's sessions, for administrators and background jobs: from
/// [`SessionLayer::user_sessions`](super::SessionLayer::user_sessions), so it uses the layer's
/// store, keys and lifetimes. Users are named by the id given to [`Session::set_user_id`].
///
/// ```
/// use portcullis::{SessionLayer, keys::KeyRing, store::MemoryStore};
///
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// let layer = SessionLayer::new(MemoryStore::new(), KeyRing::new(&[7; 32], &[]));
/// let sessions = layer.user_sessions();
/// assert!(sessions.list("42").await?.is_empty());
/// assert_eq!(sessions.end_all("42", None).await?, 0);
/// # Ok::<(), portcullis::SessionError>(())
/// # }).unwrap();
/// ```
#[derive(Clone, Debug)]
pub struct UserSessions {
    shared: Arc<LayerShared>,
}

impl UserSessions {
    pub(crate) fn new(shared: Arc<LayerShared>) -> Self {
        Self { shared }
    }

    /// The user's live sessions, oldest log-in first. Listing slides no session's expiry, and
    /// drops dead entries from the index on the way.
    ///
    /// # Errors
    /// [`SessionError::Unavailable`] when the store cannot be reached;
    /// [`SessionError::NoUserIndex`] when the store keeps no per-user index.
    pub async fn list(&self, user: &str) -> Result<Vec<DeviceSession>, SessionError> {
        let index = self.index()?;
        let settings = &self.shared.settings;
        let now = self.shared.clock.now();
        let mut found = Vec::new();
        for tag in self.tags(user).await? {
            let slot = slot(&settings.key_prefix, &tag);
            let listed = index.list(&slot).await.map_err(|e| self.failed(e))?;
            for record in listed {
                let key = slot.member_key(&record.member);
                let max_len = max_record_len(settings.max_bytes);
                let Some((envelope, _)) = settings.format.decode_stored(
                    &self.shared.keys,
                    &key,
                    &record.record,
                    now,
                    max_len,
                ) else {
                    continue;
                };
                let deadline = envelope.created_at() + settings.absolute;
                // The tag is keyed and 128 bits, so this only guards against a foreign writer.
                if envelope.user_id.as_deref() != Some(user) || now >= deadline {
                    continue;
                }
                let Some(device_id) = DeviceId::parse(&record.member) else {
                    continue;
                };
                let created_at = envelope.created_at();
                let last_used = record
                    .expires_at
                    .checked_sub(settings.idle)
                    .map_or(created_at, |t| t.max(created_at));
                found.push(DeviceSession {
                    device_id,
                    created_at,
                    last_used,
                    expires_at: record.expires_at,
                    current: false,
                    data: envelope.data,
                });
            }
        }
        self.shared.health.report_success();
        Ok(found)
    }

    /// Ends one of the user's sessions; `true` if it was live. A device id of another user's
    /// session ends nothing.
    ///
    /// # Errors
    /// As [`UserSessions::list`].
    pub async fn end(&self, user: &str, device_id: &DeviceId) -> Result<bool, SessionError> {
        self.end_because(user, device_id, Ending::EndedElsewhere)
            .await
    }

    /// [`UserSessions::end`], saying why: the reason [`Session::ended`] reports to the ended
    /// session's next request.
    ///
    /// # Errors
    /// As [`UserSessions::list`].
    pub async fn end_because(
        &self,
        user: &str,
        device_id: &DeviceId,
        ending: Ending,
    ) -> Result<bool, SessionError> {
        let index = self.index()?;
        for tag in self.tags(user).await? {
            let slot = slot(&self.shared.settings.key_prefix, &tag);
            if index
                .end(&slot, device_id.as_str())
                .await
                .map_err(|e| self.failed(e))?
            {
                ending::mark(&self.shared, &slot.member_key(device_id.as_str()), ending).await;
                self.log_ended(user, 1);
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// Ends every session of the user, but `except` when given; returns how many ended.
    ///
    /// # Errors
    /// As [`UserSessions::list`].
    pub async fn end_all(
        &self,
        user: &str,
        except: Option<&DeviceId>,
    ) -> Result<usize, SessionError> {
        self.end_all_because(user, except, Ending::EndedElsewhere)
            .await
    }

    /// [`UserSessions::end_all`], saying why: the reason [`Session::ended`] reports to each
    /// ended session's next request (one more index read, to know whom to tell).
    ///
    /// # Errors
    /// As [`UserSessions::list`].
    pub async fn end_all_because(
        &self,
        user: &str,
        except: Option<&DeviceId>,
        ending: Ending,
    ) -> Result<usize, SessionError> {
        let index = self.index()?;
        let keep = except.map(DeviceId::as_str);
        let mut ended = 0;
        for tag in self.tags(user).await? {
            let slot = slot(&self.shared.settings.key_prefix, &tag);
            let listed = index.list(&slot).await.map_err(|e| self.failed(e))?;
            ended += index
                .end_all(&slot, keep)
                .await
                .map_err(|e| self.failed(e))?;
            for record in listed.iter().filter(|r| Some(r.member.as_str()) != keep) {
                ending::mark(&self.shared, &slot.member_key(&record.member), ending).await;
            }
        }
        self.log_ended(user, ended);
        Ok(ended)
    }

    /// Where the user's sessions are: under the kept routing key's tag, then the ring's.
    async fn tags(&self, user: &str) -> Result<Vec<Tag>, SessionError> {
        routing::user_tags(&self.shared, user)
            .await
            .map_err(|e| self.failed(e))
    }

    fn index(&self) -> Result<&dyn UserIndex, SessionError> {
        self.shared
            .store
            .user_index()
            .filter(|_| self.shared.settings.format.indexes_users())
            .ok_or(SessionError::NoUserIndex)
    }

    fn failed(&self, error: StoreError) -> SessionError {
        self.shared.health.report_failure(&error);
        SessionError::Unavailable {
            source: Some(error),
        }
    }

    fn log_ended(&self, user: &str, count: usize) {
        if count > 0 {
            let user_hash = self.shared.keys.log_hash(user.as_bytes());
            events::sessions_ended(&user_hash, "revoked", count, None);
        }
    }
}

/// What the index operations of [`Session`] need to know of the current session.
struct IndexedOwner {
    user: String,
    /// This session's device id in its user's index: of the id it was loaded with, when this
    /// request regenerated it (that one is in the index until the write retires it).
    device_id: Option<DeviceId>,
    /// The device id names this session's current id (it was not regenerated in this request).
    stored: bool,
}

impl Session {
    /// This session's device id in its user's index: `None` for an anonymous session, or one not
    /// written yet in its user's index (new, or regenerated in this request).
    ///
    /// # Errors
    /// [`SessionError::Unavailable`] when the store cannot be reached.
    pub async fn device_id(&self) -> Result<Option<DeviceId>, SessionError> {
        Ok(self
            .whose()
            .await?
            .filter(|w| w.stored)
            .and_then(|w| w.device_id))
    }

    /// Every live session of this session's user, this one marked
    /// ([`DeviceSession::is_current`]); empty for an anonymous session.
    ///
    /// # Errors
    /// As [`UserSessions::list`].
    pub async fn devices(&self) -> Result<Vec<DeviceSession>, SessionError> {
        let Some(whose) = self.whose().await? else {
            return Ok(Vec::new());
        };
        let mut devices = self.user_sessions().list(&whose.user).await?;
        for device in &mut devices {
            device.current = Some(&device.device_id) == whose.device_id.as_ref();
        }
        Ok(devices)
    }

    /// Ends one session of this session's user, now; `true` if it was live. Ending this very
    /// session is [`Session::destroy`]. Nothing happens for an anonymous session.
    ///
    /// # Errors
    /// As [`UserSessions::list`].
    pub async fn end_device(&self, device_id: &DeviceId) -> Result<bool, SessionError> {
        let Some(whose) = self.whose().await? else {
            return Ok(false);
        };
        if whose.device_id.as_ref() == Some(device_id) {
            self.destroy().await?;
            return Ok(true);
        }
        self.user_sessions().end(&whose.user, device_id).await
    }

    /// Ends every other session of this session's user, now ("log out other devices", and
    /// what a password change must do); returns how many ended. Nothing happens for an
    /// anonymous session.
    ///
    /// # Errors
    /// As [`UserSessions::list`].
    pub async fn end_other_devices(&self) -> Result<usize, SessionError> {
        self.end_other_devices_because(Ending::EndedElsewhere).await
    }

    /// [`Session::end_other_devices`], saying why (a password change is
    /// [`Ending::PasswordChange`]).
    ///
    /// # Errors
    /// As [`UserSessions::list`].
    pub async fn end_other_devices_because(&self, ending: Ending) -> Result<usize, SessionError> {
        let Some(whose) = self.whose().await? else {
            return Ok(0);
        };
        self.user_sessions()
            .end_all_because(&whose.user, whose.device_id.as_ref(), ending)
            .await
    }

    fn user_sessions(&self) -> UserSessions {
        UserSessions::new(Arc::clone(&self.shared))
    }

    /// The user and the device id of this session (of the id it had when loaded, if this request
    /// regenerated it: that one is in the index until the write retires it).
    async fn whose(&self) -> Result<Option<IndexedOwner>, SessionError> {
        let state = self.loaded().await?;
        let Some(current) = state.current.as_ref() else {
            return Ok(None);
        };
        let Some(user) = current.envelope.user_id.clone() else {
            return Ok(None);
        };
        let indexed = if current.stored {
            Some(&current.id)
        } else {
            current.regenerated.as_ref().map(|r| &r.old)
        };
        let device_id = indexed
            .filter(|id| id.tag().is_some())
            .and_then(|id| DeviceId::parse(&id.digest()));
        Ok(Some(IndexedOwner {
            user,
            device_id,
            stored: current.stored,
        }))
    }
}
