//! Loading a session on its first use in a request: fetch its record (sliding the idle expiry
//! in the same round trip), [`classify`] it, and start this request's [`WorkingCopy`] from it.

use std::sync::Arc;
use std::time::SystemTime;

use tokio::sync::MutexGuard;

use super::changes::Changes;
use super::cookie::{self, PresentedCookie};
use super::ending::{self, Ending};
use super::format::{CLOCK_SKEW, max_record_len};
use super::handle::{RequestSession, Session, WorkingCopy};
use super::id::Id;
use super::pre_session::PreSession;
use super::record::Envelope;
use super::routing;
use super::{LayerShared, SessionError};
use crate::events;
use crate::keys::KeyUse;
use crate::metrics::CookieRefusal;
use crate::store::{CasToken, StoreKey};

/// What a load found under a session's key.
#[derive(Debug, PartialEq)]
pub(super) enum Loaded {
    /// A live session.
    Live {
        envelope: Arc<Envelope>,
        /// Write it back even if the request changes nothing (see `Format::decode_record`).
        rewrite: bool,
        /// The compare-and-set token of the record.
        token: CasToken,
    },
    /// A record this process cannot open: altered, torn, or sealed by a key or format it does
    /// not know yet (a rolling upgrade or key rotation). Its length, for the log.
    Unreadable(usize),
    /// A record longer than any this layer writes (`SESSION_MAX_BYTES`): never decoded. Its
    /// length, for the log.
    Oversize(usize),
    /// A session past its absolute lifetime: gone for good.
    PastAbsolute,
    /// No live record: expired, or ended elsewhere.
    Missing,
}

impl Loaded {
    /// Why the cookie led to no live session, for the metrics, labelled by its `ending` where
    /// the session ended; `None` for a live one.
    fn refusal(&self, ending: Option<Ending>) -> Option<CookieRefusal> {
        match self {
            Self::Live { .. } => None,
            Self::Unreadable(_) => Some(CookieRefusal::Unreadable),
            Self::Oversize(_) => Some(CookieRefusal::Oversize),
            Self::PastAbsolute | Self::Missing => Some(CookieRefusal::Ended(
                ending.unwrap_or(Ending::Idle).as_str(),
            )),
        }
    }
}

/// What the record `bytes` loaded under `key` at `now` holds. Pure: the store was read before.
pub(super) fn classify(
    shared: &LayerShared,
    key: &StoreKey,
    bytes: Option<&[u8]>,
    now: SystemTime,
) -> Loaded {
    let settings = &shared.settings;
    let Some(bytes) = bytes else {
        return Loaded::Missing;
    };
    let max_len = max_record_len(settings.max_bytes);
    if bytes.len() > max_len {
        return Loaded::Oversize(bytes.len());
    }
    let format = &settings.format;
    let decoded = if format.is_flask() {
        format
            .decode_stored(&shared.keys, key, bytes, now, max_len)
            .map(|(envelope, rewrite)| (Arc::new(envelope), rewrite))
    } else if let Some(kept) = shared.opened.get(key, bytes) {
        // The very bytes this process last opened or sealed under this key (`opened.rs`).
        Some(kept).filter(|(envelope, _)| envelope.created_at() <= now + CLOCK_SKEW)
    } else {
        let decoded = format
            .decode_stored(&shared.keys, key, bytes, now, max_len)
            .map(|(envelope, rewrite)| (Arc::new(envelope), rewrite));
        if let Some((envelope, rewrite)) = &decoded {
            shared.opened.put(key, bytes, envelope, *rewrite);
        }
        decoded
    };
    match decoded {
        None => Loaded::Unreadable(bytes.len()),
        Some((envelope, _)) if now >= envelope.created_at() + settings.absolute => {
            Loaded::PastAbsolute
        }
        Some((envelope, rewrite)) => Loaded::Live {
            envelope,
            rewrite,
            token: settings.format.cas_token(bytes),
        },
    }
}

impl RequestSession {
    /// Verifies the request's cookies, once, on the session's first use: the session cookie
    /// (logging and counting a forged one) and the pre-session CSRF cookie.
    pub(super) fn verify_cookies(&mut self, shared: &LayerShared) {
        if let Some(cookies) = self.unverified.take() {
            self.presented = cookie::read(&cookies, &shared.settings, &shared.keys);
            self.pre_session = PreSession::read(&cookies, &shared.settings, &shared.keys);
        }
    }
}

impl Session {
    /// Locks the state and loads the session on first use.
    pub(super) async fn loaded(&self) -> Result<MutexGuard<'_, RequestSession>, SessionError> {
        let mut state = self.state.lock().await;
        self.load_into(&mut state).await?;
        Ok(state)
    }

    async fn load_into(&self, state: &mut RequestSession) -> Result<(), SessionError> {
        if state.failed {
            return Err(SessionError::Unavailable { source: None });
        }
        if state.current.is_some() {
            return Ok(());
        }
        state.verify_cookies(&self.shared);
        state.accessed = true;
        let now = self.shared.clock.now();
        let PresentedCookie::Valid { id, key_use, .. } = &state.presented else {
            state.current = Some(self.fresh(now));
            return Ok(());
        };
        let (id, key_use) = (id.clone(), *key_use);
        let settings = &self.shared.settings;
        let key = settings.format.store_key(&id, &settings.key_prefix);
        let slide_to = settings.refresh_each_request.then(|| now + settings.idle);
        let bytes = self.fetch(state, &key, slide_to).await?;
        let loaded = classify(&self.shared, &key, bytes.as_deref(), now);
        state.ending = match loaded {
            // The rarer paths' futures are boxed, so that the future of every load (which each
            // handler's future holds) stays small.
            Loaded::Missing => Some(Box::pin(self.why_missing(state, &key)).await?),
            Loaded::PastAbsolute => Some(Ending::Absolute),
            _ => None,
        };
        if let Some(reason) = loaded.refusal(state.ending) {
            crate::metrics::cookie_refused(reason);
        }
        let mut slide_to = slide_to;
        if let (Loaded::Live { envelope, .. }, Some(slid)) = (&loaded, slide_to) {
            let absolute_deadline = envelope.created_at() + settings.absolute;
            if slid > absolute_deadline {
                // The slide asked for more than the session has left (its created-at is
                // inside the record, so the first round trip could not know): bring the
                // store's expiry back to the absolute deadline. Only within the last idle
                // lifetime of a session, so rarely a second round trip; the marker that the
                // absolute limit will end it (`ending.rs`) is written alongside, not after.
                let until = absolute_deadline + settings.idle;
                let (fetched, marked) = Box::pin(async {
                    tokio::join!(
                        self.fetch(state, &key, Some(absolute_deadline)),
                        ending::mark_until(&self.shared, &key, Ending::Absolute, until)
                    )
                })
                .await;
                fetched?;
                if let Err(error) = marked {
                    tracing::warn!(%error, "could not record the session's absolute deadline");
                }
                slide_to = Some(absolute_deadline);
            }
        }
        // In a block that ends before the wait below: a value moved out of a local still takes
        // room in the future across every later wait of the local's scope.
        let refresh_routing = {
            let opened = Opened {
                id,
                key_use,
                key,
                slide_to,
            };
            let current = self.start(state, opened, loaded, now);
            if current.reissue_cookie {
                crate::metrics::cookie_fallback_key();
            }
            let refresh_routing = current.reissue_cookie && current.id.tag().is_some();
            state.current = Some(current);
            refresh_routing
        };
        if refresh_routing {
            // A logged-in cookie signed with a fallback key: the rotation is under way, so
            // the kept routing key must be sealed under the current key before the fallback
            // is dropped. Best effort: the session itself was read.
            if let Err(error) = Box::pin(routing::refresh(&self.shared)).await {
                tracing::warn!(%error, "could not re-seal the kept session routing key");
            }
        }
        Ok(())
    }

    /// Why the record under `key` is missing (the miss path's one extra read), noting an
    /// outage in `state`.
    async fn why_missing(
        &self,
        state: &mut RequestSession,
        key: &StoreKey,
    ) -> Result<Ending, SessionError> {
        ending::read(&self.shared, key).await.map_err(|error| {
            state.failed = true;
            self.shared.health.report_failure(&error);
            SessionError::Unavailable {
                source: Some(error),
            }
        })
    }

    /// Reads the record (sliding its expiry to `slide_to`), noting an outage in `state`.
    async fn fetch(
        &self,
        state: &mut RequestSession,
        key: &StoreKey,
        slide_to: Option<SystemTime>,
    ) -> Result<Option<Vec<u8>>, SessionError> {
        match self.shared.store.load(key, slide_to).await {
            Ok(bytes) => {
                self.shared.health.report_success();
                Ok(bytes)
            }
            Err(error) => {
                state.failed = true;
                self.shared.health.report_failure(&error);
                Err(SessionError::Unavailable {
                    source: Some(error),
                })
            }
        }
    }

    /// This request's working copy after a load that found `loaded`; a fresh session, with
    /// the reason noted in `state` and the log, unless the record was live.
    fn start(
        &self,
        state: &mut RequestSession,
        opened: Opened,
        loaded: Loaded,
        now: SystemTime,
    ) -> WorkingCopy {
        let session = || self.shared.keys.log_hash(opened.key.as_str().as_bytes());
        match loaded {
            Loaded::Live {
                envelope,
                rewrite,
                token,
            } => {
                // Without a slide, the idle deadline is the one the last write set.
                let written = (envelope.deadline_ms > 0)
                    .then(|| crate::clock::from_unix_millis(envelope.deadline_ms));
                // Only a native record's envelope is kept opened (`classify`).
                let kept_under = (!self.shared.settings.format.is_flask()).then_some(opened.key);
                return WorkingCopy {
                    id: opened.id,
                    modified: rewrite,
                    reissue_cookie: opened.key_use == KeyUse::Fallback,
                    idle_deadline: opened.slide_to.or(written),
                    envelope,
                    kept_under,
                    stored: true,
                    token: Some(token),
                    changes: Changes::default(),
                    regenerated: None,
                };
            }
            // Treated as absent but left in place, since another process may still read it;
            // its idle expiry ends it.
            Loaded::Unreadable(bytes) => {
                events::unopened("record", Some(&session()), bytes, "failed authentication");
            }
            // Larger than any this layer writes: not decoded.
            Loaded::Oversize(bytes) => {
                let reason = "larger than SESSION_MAX_BYTES";
                events::unopened("record", Some(&session()), bytes, reason);
            }
            Loaded::PastAbsolute => {
                events::session_past_absolute(&session());
                let id = opened.id;
                state.endings.push((id.clone(), Ending::Absolute));
                state.to_delete.push(id);
            }
            Loaded::Missing => events::session_gone(&session()),
        }
        state.ended_previous = true;
        self.fresh(now)
    }

    /// A new, empty session that no record holds yet.
    pub(super) fn fresh(&self, now: SystemTime) -> WorkingCopy {
        WorkingCopy::new(Envelope::new(now, self.shared.settings.permanent))
    }
}

/// The authentic cookie a load went by, and where it looked.
struct Opened {
    id: Id,
    key_use: KeyUse,
    key: StoreKey,
    slide_to: Option<SystemTime>,
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::keys::KeyRing;
    use crate::session::SessionLayer;
    use crate::store::MemoryStore;

    const KEY: &[u8] = b"a secret key of thirty-two bytes or more";
    const OLD_KEY: &[u8] = b"the key before the rotation, 32 bytes+";

    #[test]
    fn classify_tells_live_unreadable_past_absolute_and_missing_records_apart() {
        let layer = SessionLayer::new(MemoryStore::new(), KeyRing::new(KEY, &[OLD_KEY]));
        let shared = layer.shared();
        let key = StoreKey::from_string("sess:k".into());
        let now = SystemTime::now();
        let absolute = shared.settings.absolute;
        let sealed = |created: SystemTime, secret: &[u8]| {
            let ring = KeyRing::new(secret, &[]);
            Envelope::new(created, false).seal(&ring, &key).unwrap()
        };
        let live = sealed(now - absolute + Duration::from_secs(1), KEY);
        let by_old_key = sealed(now, OLD_KEY);
        let over = sealed(now - absolute, KEY);
        let foreign = sealed(now, b"somebody else's key, thirty-two bytes");
        // (record, what it is: "live" with its rewrite flag, or another outcome)
        let cases: [(Option<&[u8]>, &str, bool); 6] = [
            (Some(&live), "live", false),
            (Some(&by_old_key), "live", true),
            (Some(&over), "past absolute", false),
            (Some(&foreign), "unreadable", false),
            (Some(b"junk"), "unreadable", false),
            (None, "missing", false),
        ];
        for (bytes, expected, expected_rewrite) in cases {
            match classify(&shared, &key, bytes, now) {
                Loaded::Live {
                    envelope,
                    rewrite,
                    token,
                } => {
                    let record = bytes.unwrap();
                    assert_eq!(expected, "live");
                    assert_eq!(
                        rewrite, expected_rewrite,
                        "a fallback key asks for a rewrite"
                    );
                    assert_eq!(token, shared.settings.format.cas_token(record));
                    assert_eq!(
                        Some(Arc::unwrap_or_clone(envelope)),
                        Envelope::open(&shared.keys, &key, record).map(|(e, _)| e)
                    );
                }
                Loaded::Unreadable(len) => {
                    assert_eq!(expected, "unreadable");
                    assert_eq!(Some(len), bytes.map(<[u8]>::len));
                }
                Loaded::Oversize(_) => panic!("no case is oversize"),
                Loaded::PastAbsolute => assert_eq!(expected, "past absolute"),
                Loaded::Missing => assert_eq!(expected, "missing"),
            }
        }
    }
}
