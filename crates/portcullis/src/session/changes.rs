//! What one request changed in its session, as a list of operations, so that they can be
//! applied again onto a newer record when another request saved the session first.
//!
//! The session layer writes with a compare-and-set
//! ([`SessionStore::save`](crate::store::SessionStore::save)). When it finds that another request saved meanwhile, it
//! opens that request's record and replays this list onto it, in order:
//!
//! - `Insert` and `Remove`: last writer wins, per key; other keys are untouched, so two
//!   requests that set different keys both keep theirs;
//! - `Clear`: clears again, then the later operations apply;
//! - `Update`: the handler's closure runs again on the newer value (counters, lists), so two
//!   concurrent increments give +2;
//! - `User`, `Permanent`: last writer wins;
//! - `Regenerate`: the new lifetime's start, and the CSRF secret dropped.

use std::fmt;
use std::sync::Arc;

use super::SessionError;
use super::record::Envelope;
use super::secret;

/// An update closure, type-erased: the current value (or none) to the new one (or none, which
/// removes the key). Pure: it may run more than once.
pub(crate) type UpdateFn =
    Arc<dyn Fn(Option<&rmpv::Value>) -> Result<Option<rmpv::Value>, SessionError> + Send + Sync>;

/// One operation of a request on its session.
pub(crate) enum Change {
    Insert(String, rmpv::Value),
    Remove(String),
    /// Every key but the CSRF secret, and the user.
    Clear,
    Update(String, UpdateFn),
    User(Option<String>),
    Permanent(bool),
    /// A new id (handled by the writer), a new start of the absolute lifetime, no CSRF secret.
    Regenerate {
        created_ms: u64,
    },
}

/// The operations of one request, in order.
#[derive(Default)]
pub(crate) struct Changes(Vec<Change>);

impl fmt::Debug for Changes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Changes({} operations)", self.0.len())
    }
}

impl Changes {
    pub(crate) fn push(&mut self, change: Change) {
        self.0.push(change);
    }

    /// Applies every operation, in order, to `envelope`: a record another request saved
    /// after this one loaded its own.
    pub(crate) fn replay(&self, envelope: &mut Envelope) {
        for change in &self.0 {
            apply(change, envelope);
        }
    }
}

/// Applies one operation. The handle applies each operation the same way when the handler
/// makes it, so the request's own view and the replay agree.
pub(crate) fn apply(change: &Change, envelope: &mut Envelope) {
    match change {
        Change::Insert(key, value) => {
            envelope.data.insert(key.clone(), value.clone());
        }
        Change::Remove(key) => {
            envelope.data.remove(key);
        }
        Change::Clear => clear(envelope),
        Change::Update(key, update) => match update(envelope.data.get(key)) {
            Ok(Some(value)) => {
                envelope.data.insert(key.clone(), value);
            }
            Ok(None) => {
                envelope.data.remove(key);
            }
            // Another request stored a value of another type under this key: its value
            // stands, as it would have had it saved after this one.
            Err(error) => {
                tracing::warn!(
                    key = key.as_str(),
                    %error,
                    "a session update could not be applied again onto a concurrent change; \
                     keeping the concurrent value"
                );
            }
        },
        Change::User(user) => envelope.user_id.clone_from(user),
        Change::Permanent(permanent) => envelope.permanent = *permanent,
        Change::Regenerate { created_ms } => {
            envelope.created_ms = *created_ms;
            envelope.revision = 0;
            secret::drop_from(envelope);
        }
    }
}

/// Removes every key but the CSRF secret, and the user. The secret stays because it belongs to
/// the session, not to its data: pages rendered before still post (log in rotates it).
fn clear(envelope: &mut Envelope) {
    envelope.data.retain(|key, _| secret::is_secret_key(key));
    envelope.user_id = None;
}

#[cfg(test)]
mod tests {
    use std::time::SystemTime;

    use super::*;
    use crate::session::secret::CSRF_SECRET_KEY;

    fn counter() -> UpdateFn {
        Arc::new(|value| {
            let n = value.and_then(rmpv::Value::as_u64).unwrap_or(0);
            Ok(Some(rmpv::Value::from(n + 1)))
        })
    }

    #[test]
    fn a_replay_keeps_the_other_requests_keys_and_reruns_updates() {
        let mut changes = Changes::default();
        changes.push(Change::Insert("mine".into(), rmpv::Value::from("a")));
        changes.push(Change::Update("n".into(), counter()));
        changes.push(Change::Remove("gone".into()));

        let mut theirs = Envelope::new(SystemTime::now(), false);
        theirs.data.insert("theirs".into(), rmpv::Value::from("b"));
        theirs.data.insert("n".into(), rmpv::Value::from(1));
        theirs.data.insert("gone".into(), rmpv::Value::from(0));
        changes.replay(&mut theirs);

        assert_eq!(theirs.data["mine"], rmpv::Value::from("a"));
        assert_eq!(theirs.data["theirs"], rmpv::Value::from("b"));
        assert_eq!(theirs.data["n"], rmpv::Value::from(2));
        assert!(!theirs.data.contains_key("gone"));
    }

    #[test]
    fn clear_keeps_the_csrf_secret_and_later_operations() {
        let mut changes = Changes::default();
        changes.push(Change::Clear);
        changes.push(Change::Insert("after".into(), rmpv::Value::from(1)));
        let mut theirs = Envelope::new(SystemTime::now(), false);
        theirs.user_id = Some("7".into());
        theirs.data.insert("before".into(), rmpv::Value::from(0));
        theirs
            .data
            .insert(CSRF_SECRET_KEY.into(), rmpv::Value::from("s"));
        changes.replay(&mut theirs);
        let keys: Vec<&str> = theirs.data.keys().map(String::as_str).collect();
        assert_eq!(keys, ["after", CSRF_SECRET_KEY]);
        assert_eq!(theirs.user_id, None);
    }
}
