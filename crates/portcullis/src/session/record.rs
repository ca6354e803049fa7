//! The record envelope: what a session looks like inside its seal.
//!
//! Stored bytes: `format (1 byte) ‖ nonce (24) ‖ XChaCha20-Poly1305(envelope) ‖ tag (16)`, with
//! the store key and the format byte as associated data, so the store can neither read a record
//! nor move it to another key. The envelope is MessagePack, its fields in order: created-at,
//! permanence, a write counter, the user id (which puts a logged-in session in its user's
//! index), the data map, the idle deadline of the last write, and the ids of the last writes
//! (see [`Envelope::writes`]). Compare-and-set goes by the nonce ([`cas_token`]), not by the
//! counter.

use std::collections::BTreeMap;
use std::time::SystemTime;

use serde::{Deserialize, Serialize};

use crate::clock::{from_unix_millis, unix_millis};
use crate::keys::{KeyRing, KeyUse};
use crate::store::{CasToken, StoreKey};

/// First byte of every sealed record; a new layout gets a new byte.
const FORMAT_V1: u8 = 1;

/// The session's data: string keys to MessagePack values.
pub type Data = BTreeMap<String, rmpv::Value>;

/// A session as stored, before sealing.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub(crate) struct Envelope {
    /// When the session (or its last regeneration) began, in Unix milliseconds: the start of the
    /// absolute lifetime.
    pub(crate) created_ms: u64,
    /// Whether the cookie carries an expiry (`SESSION_PERMANENT` or a per-session override).
    pub(crate) permanent: bool,
    /// Counts the saves since the session began or was regenerated. Nothing decides on it
    /// (compare-and-set goes by the nonce); it is kept because the envelope is positional
    /// MessagePack, so dropping a field would break every record sealed before, and the Flask
    /// format carries it in `_portcullis` for the same reason.
    pub(crate) revision: u64,
    /// The logged-in user, if any.
    pub(crate) user_id: Option<String>,
    /// Application data.
    pub(crate) data: Data,
    /// The store expiry set by the last write, in Unix milliseconds: without sliding loads
    /// (`SESSION_REFRESH_EACH_REQUEST=false`) it is still the idle deadline. 0 when unknown.
    #[serde(default)]
    pub(crate) deadline_ms: u64,
    /// Random ids of the last [`WRITES_KEPT`] saves this record descends from, its own last.
    /// A save whose reply was lost is sent again by the store, and may then find a newer
    /// record that another request wrote on top of it: that its id is in there tells that it
    /// had landed, so that its changes are not applied a second time.
    #[serde(default)]
    pub(crate) writes: Vec<u64>,
}

/// How many save ids a record keeps: a save whose reply was lost can tell that it landed while
/// fewer than this many other saves came after it (beyond that it cannot tell, and answers 503
/// rather than risk applying a change twice).
pub(crate) const WRITES_KEPT: usize = 16;

impl Envelope {
    pub(crate) fn new(now: SystemTime, permanent: bool) -> Self {
        Self {
            created_ms: unix_millis(now),
            permanent,
            revision: 0,
            user_id: None,
            data: Data::new(),
            deadline_ms: 0,
            writes: Vec::new(),
        }
    }

    /// Notes a new save of this envelope: a fresh random id, kept among the last
    /// [`WRITES_KEPT`]; returns it.
    pub(crate) fn note_write(&mut self) -> u64 {
        let mut bytes = [0u8; 8];
        crate::keys::fill_random(&mut bytes);
        let id = u64::from_le_bytes(bytes);
        self.writes.push(id);
        let extra = self.writes.len().saturating_sub(WRITES_KEPT);
        self.writes.drain(..extra);
        id
    }

    pub(crate) fn created_at(&self) -> SystemTime {
        from_unix_millis(self.created_ms)
    }

    /// Size of the data map once encoded, for the `SESSION_MAX_BYTES` limit.
    pub(crate) fn data_len(&self) -> usize {
        rmp_serde::encode::to_vec(&self.data).map_or(usize::MAX, |v| v.len())
    }

    /// Encodes and seals the envelope for `key`.
    pub(crate) fn seal(
        &self,
        keys: &KeyRing,
        key: &StoreKey,
    ) -> Result<Vec<u8>, rmp_serde::encode::Error> {
        let plain = rmp_serde::encode::to_vec(self)?;
        let sealed = keys.seal(&aad(key), &plain);
        let mut out = Vec::with_capacity(1 + sealed.len());
        out.push(FORMAT_V1);
        out.extend_from_slice(&sealed);
        Ok(out)
    }

    /// Opens and decodes a record read under `key`. `None` for anything that is not a record this
    /// key ring sealed for this key: torn, foreign, altered, moved, or an unknown format.
    pub(crate) fn open(keys: &KeyRing, key: &StoreKey, bytes: &[u8]) -> Option<(Self, KeyUse)> {
        let (&format, sealed) = bytes.split_first()?;
        if format != FORMAT_V1 {
            return None;
        }
        let (plain, used) = keys.open(&aad(key), sealed)?;
        let envelope = rmp_serde::decode::from_slice(&plain).ok()?;
        Some((envelope, used))
    }
}

/// The compare-and-set token of a sealed record
/// ([`SessionStore::save`](crate::store::SessionStore::save)): its format byte and nonce, unique per seal and stored
/// in clear. A record shorter than that (not one of ours) is its own token. The token keeps the
/// whole record too, for stores that compare whole values ([`CasToken::of_record`]).
pub(crate) fn cas_token(sealed: &[u8]) -> CasToken {
    CasToken::of_record(sealed, 1 + crate::keys::NONCE_LEN)
}

fn aad(key: &StoreKey) -> Vec<u8> {
    let mut aad = key.as_str().as_bytes().to_vec();
    aad.push(FORMAT_V1);
    aad
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn envelope_round_trips_through_the_seal_and_is_bound_to_its_key() {
        let keys = KeyRing::new(b"a secret key of thirty-two bytes or more", &[]);
        let key = StoreKey::from_string("sess:a".into());
        let mut env = Envelope::new(SystemTime::now(), true);
        env.data.insert("n".into(), rmpv::Value::from(7));
        env.user_id = Some("alice-the-user".into());
        let sealed = env.seal(&keys, &key).unwrap();
        assert_eq!(
            Envelope::open(&keys, &key, &sealed),
            Some((env.clone(), KeyUse::Current))
        );
        assert_eq!(
            Envelope::open(&keys, &StoreKey::from_string("sess:b".into()), &sealed),
            None
        );
        let mut other_format = sealed.clone();
        other_format[0] = 2;
        assert_eq!(Envelope::open(&keys, &key, &other_format), None);
        assert_eq!(Envelope::open(&keys, &key, &[]), None);
        assert!(
            !sealed.windows(14).any(|w| w == b"alice-the-user"),
            "the user id is sealed"
        );
    }
}
