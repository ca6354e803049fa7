//! The record envelope: what a session looks like inside its seal.
//!
//! Stored bytes: `format (1 byte) ‖ nonce (24) ‖ XChaCha20-Poly1305(envelope) ‖ tag (16)`, with
//! the store key and the format byte as associated data, so the store can neither read a record
//! nor move it to another key. The envelope is MessagePack, its fields in order: created-at,
//! permanence, a write counter, the user id (which puts a logged-in session in its user's
//! index), the data map, the idle deadline of the last write, and the ids of the last writes
//! (see [`Envelope::writes`]). Compare-and-set goes by the nonce ([`cas_token`]), not by the
//! counter.
//!
//! Two layouts, told apart by the format byte; records are written in the second, both are read:
//! - **1**: the [`Envelope`]'s fields as they are, the CSRF secret a base64url string under
//!   `csrf_token` in the data map, the deadline in Unix milliseconds.
//! - **2** (compact): the same fields, but the idle deadline counted from the created-at (a
//!   few bytes instead of nine) and the CSRF secret, when it is a native one, as its 32 raw
//!   bytes in an eighth field instead of 56 bytes of map entry. A logged-in session's record
//!   is 26 bytes shorter, which takes its Redis value down one allocator size class.
//!
//! Each save's id ([`Envelope::note_write`]) is the first 8 bytes of the nonce it is sealed
//! with, so that a save draws from the OS generator once.

use std::collections::BTreeMap;
use std::time::SystemTime;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::ser::{SerializeMap, SerializeTuple};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::clock::{from_unix_millis, unix_millis};
use crate::keys::{KeyRing, KeyUse, NONCE_LEN, Nonce, SEAL_TAG_LEN};
use crate::store::{CasToken, StoreKey};

/// First byte of a record in the first layout, the envelope's fields as they are (read only).
const FORMAT_V1: u8 = 1;
/// First byte of a record in the compact layout, the one written; a new layout gets a new byte.
const FORMAT_V2: u8 = 2;

/// The session key holding the CSRF secret, as Flask-WTF names it (owned by `secret.rs`; the
/// compact layout stores a native secret apart from the map).
pub(crate) const CSRF_SECRET_KEY: &str = "csrf_token";
/// Bytes of a native CSRF secret.
const SECRET_BYTES: usize = 32;
/// Room reserved for a record before its envelope is encoded: the format byte, the nonce, the
/// tag, and an envelope of a small session, so that a typical save allocates once.
const RECORD_CAPACITY: usize = 1 + NONCE_LEN + SEAL_TAG_LEN + 192;

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

    /// Notes a new save of this envelope with the random `id` (the first bytes of the nonce it
    /// is sealed with, [`Nonce::id`]), kept among the last [`WRITES_KEPT`]; returns it.
    pub(crate) fn note_write(&mut self, id: u64) -> u64 {
        // The oldest go first, so that a full list (a copy of one has no spare room) takes
        // the new id without growing.
        let extra = (self.writes.len() + 1).saturating_sub(WRITES_KEPT);
        self.writes.drain(..extra);
        self.writes.push(id);
        id
    }

    pub(crate) fn created_at(&self) -> SystemTime {
        from_unix_millis(self.created_ms)
    }

    /// Size of the data map once encoded, for the `SESSION_MAX_BYTES` limit.
    pub(crate) fn data_len(&self) -> usize {
        encoded_len(&self.data)
    }

    /// [`Envelope::data_len`] as it would be with `value` under `key` (`None`: without `key`),
    /// counted without changing the map (which would copy an envelope still shared with the
    /// records kept opened): a map encodes as its length, then each key and value in turn.
    pub(crate) fn data_len_with(&self, key: &str, value: Option<&rmpv::Value>) -> usize {
        let old = self.data.get(key);
        let entry = |value: &rmpv::Value| encoded_len(key).saturating_add(encoded_len(value));
        let len_after = match (old, value) {
            (None, Some(_)) => self.data.len().saturating_add(1),
            (Some(_), None) => self.data.len().saturating_sub(1),
            _ => self.data.len(),
        };
        self.data_len()
            .saturating_sub(map_header_len(self.data.len()))
            .saturating_sub(old.map_or(0, entry))
            .saturating_add(map_header_len(len_after))
            .saturating_add(value.map_or(0, entry))
    }

    /// Encodes and seals the envelope for `key`, in the compact layout.
    pub(crate) fn seal(
        &self,
        keys: &KeyRing,
        key: &StoreKey,
    ) -> Result<Vec<u8>, rmp_serde::encode::Error> {
        self.seal_with(keys, key, &Nonce::random())
    }

    /// Notes a new save ([`Envelope::note_write`]) and seals the envelope for `key`; returns
    /// the record and the save's id. One random draw makes both the nonce and the id.
    pub(crate) fn seal_new_write(
        &mut self,
        keys: &KeyRing,
        key: &StoreKey,
    ) -> Result<(Vec<u8>, u64), rmp_serde::encode::Error> {
        let nonce = Nonce::random();
        let id = self.note_write(nonce.id());
        Ok((self.seal_with(keys, key, &nonce)?, id))
    }

    /// The record in one buffer: format byte and nonce, the envelope encoded after them and
    /// encrypted where it lies, then the tag.
    fn seal_with(
        &self,
        keys: &KeyRing,
        key: &StoreKey,
        nonce: &Nonce,
    ) -> Result<Vec<u8>, rmp_serde::encode::Error> {
        let mut out = Vec::with_capacity(RECORD_CAPACITY);
        out.push(FORMAT_V2);
        out.extend_from_slice(nonce.as_bytes());
        rmp_serde::encode::write(&mut out, &Compact(self))?;
        keys.seal_in_place(&aad(key, FORMAT_V2), nonce, &mut out, 1 + NONCE_LEN);
        Ok(out)
    }

    /// Opens and decodes a record read under `key`, in either layout. `None` for anything that
    /// is not a record this key ring sealed for this key: torn, foreign, altered, moved, or an
    /// unknown format.
    pub(crate) fn open(keys: &KeyRing, key: &StoreKey, bytes: &[u8]) -> Option<(Self, KeyUse)> {
        let (&format, sealed) = bytes.split_first()?;
        if format != FORMAT_V1 && format != FORMAT_V2 {
            return None;
        }
        let (plain, used) = keys.open(&aad(key, format), sealed)?;
        let envelope = if format == FORMAT_V1 {
            rmp_serde::decode::from_slice(&plain).ok()?
        } else {
            rmp_serde::decode::from_slice::<Decompact>(&plain).ok()?.0
        };
        Some((envelope, used))
    }
}

/// The length of `value`'s MessagePack encoding, counted, not kept; `usize::MAX` when it cannot
/// be encoded.
fn encoded_len(value: &(impl Serialize + ?Sized)) -> usize {
    let mut counted = Counted(0);
    rmp_serde::encode::write(&mut counted, value).map_or(usize::MAX, |()| counted.0)
}

/// The length of the MessagePack header of a map of `len` entries: fixmap, map 16 or map 32.
fn map_header_len(len: usize) -> usize {
    match len {
        0..16 => 1,
        16..65_536 => 3,
        _ => 5,
    }
}

/// A writer that only counts the bytes written to it: the size of an encoding, not kept.
struct Counted(usize);

impl std::io::Write for Counted {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0 = self.0.saturating_add(bytes.len());
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// The native CSRF secret in `data`, as raw bytes, when it is one: exactly the base64url text of
/// 32 bytes that the session keeps (anything else stays in the map as it is).
fn native_secret(data: &Data) -> Option<[u8; SECRET_BYTES]> {
    let text = data.get(CSRF_SECRET_KEY)?.as_str()?;
    let mut secret = [0u8; SECRET_BYTES];
    let decoded = URL_SAFE_NO_PAD.decode_slice(text, &mut secret).ok()?;
    let canonical = decoded == SECRET_BYTES && URL_SAFE_NO_PAD.encode(secret) == text;
    canonical.then_some(secret)
}

/// The envelope in the compact layout (format 2), encoded without copying it: a tuple of eight
/// fields (see the module docs).
struct Compact<'a>(&'a Envelope);

impl Serialize for Compact<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let envelope = self.0;
        let secret = native_secret(&envelope.data);
        let mut fields = serializer.serialize_tuple(8)?;
        fields.serialize_element(&envelope.created_ms)?;
        fields.serialize_element(&envelope.permanent)?;
        fields.serialize_element(&envelope.revision)?;
        fields.serialize_element(&envelope.user_id)?;
        fields.serialize_element(&DataWithout {
            data: &envelope.data,
            secret: secret.is_some(),
        })?;
        let deadline = (envelope.deadline_ms != 0).then(|| {
            i64::try_from(i128::from(envelope.deadline_ms) - i128::from(envelope.created_ms))
                .unwrap_or(i64::MAX)
        });
        fields.serialize_element(&deadline)?;
        fields.serialize_element(&envelope.writes)?;
        fields.serialize_element(&secret.as_ref().map(|s| Bytes(s)))?;
        fields.end()
    }
}

/// The data map, without the CSRF secret when `secret` says it goes in its own field.
struct DataWithout<'a> {
    data: &'a Data,
    secret: bool,
}

impl Serialize for DataWithout<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let len = self.data.len() - usize::from(self.secret);
        let mut map = serializer.serialize_map(Some(len))?;
        for (key, value) in self.data {
            if !(self.secret && key == CSRF_SECRET_KEY) {
                map.serialize_entry(key, value)?;
            }
        }
        map.end()
    }
}

/// Bytes as MessagePack `bin`, not as an array of integers.
struct Bytes<'a>(&'a [u8]);

impl Serialize for Bytes<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_bytes(self.0)
    }
}

/// A record's envelope decoded from the compact layout.
struct Decompact(Envelope);

/// The compact layout's fields as they are decoded.
#[derive(Deserialize)]
struct CompactFields {
    created_ms: u64,
    permanent: bool,
    revision: u64,
    user_id: Option<String>,
    data: Data,
    deadline_after_created_ms: Option<i64>,
    writes: Vec<u64>,
    secret: Option<SecretBytes>,
}

/// The compact layout's CSRF secret: exactly 32 bytes of MessagePack `bin`.
struct SecretBytes([u8; SECRET_BYTES]);

impl<'de> Deserialize<'de> for SecretBytes {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl serde::de::Visitor<'_> for Visitor {
            type Value = SecretBytes;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a 32-byte CSRF secret")
            }
            fn visit_bytes<E: serde::de::Error>(self, bytes: &[u8]) -> Result<SecretBytes, E> {
                bytes
                    .try_into()
                    .map(SecretBytes)
                    .map_err(|_| E::invalid_length(bytes.len(), &self))
            }
        }
        deserializer.deserialize_bytes(Visitor)
    }
}

impl<'de> Deserialize<'de> for Decompact {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let fields = CompactFields::deserialize(deserializer)?;
        let mut data = fields.data;
        if let Some(SecretBytes(secret)) = fields.secret {
            let text = URL_SAFE_NO_PAD.encode(secret);
            data.insert(CSRF_SECRET_KEY.to_owned(), rmpv::Value::from(text));
        }
        let deadline_ms = fields
            .deadline_after_created_ms
            .map_or(0, |after| fields.created_ms.saturating_add_signed(after));
        Ok(Self(Envelope {
            created_ms: fields.created_ms,
            permanent: fields.permanent,
            revision: fields.revision,
            user_id: fields.user_id,
            data,
            deadline_ms,
            writes: fields.writes,
        }))
    }
}

/// The compare-and-set token of a sealed record
/// ([`SessionStore::save`](crate::store::SessionStore::save)): its format byte and nonce, unique per seal and stored
/// in clear. A record shorter than that (not one of ours) is its own token. The token keeps the
/// whole record too, for stores that compare whole values ([`CasToken::of_record`]).
pub(crate) fn cas_token(sealed: &[u8]) -> CasToken {
    CasToken::of_record(sealed, 1 + crate::keys::NONCE_LEN)
}

/// The associated data of a record under `key` in `format`: the key, then the format byte.
fn aad(key: &StoreKey, format: u8) -> Vec<u8> {
    let key = key.as_str().as_bytes();
    let mut aad = Vec::with_capacity(key.len() + 1);
    aad.extend_from_slice(key);
    aad.push(format);
    aad
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_size_of_a_change_is_counted_as_making_it_would_measure() {
        // Around each change of the map header's width (fixmap, map 16, map 32), for an
        // insert, a replacement (longer and shorter), a removal and the removal of a key that
        // is not there.
        for len in [0, 1, 14, 15, 16, 17, 65_534, 65_535, 65_536] {
            let mut env = Envelope::new(SystemTime::now(), true);
            for i in 0..len {
                env.data.insert(format!("k{i}"), rmpv::Value::from(i));
            }
            let long = rmpv::Value::from("a value longer than the one it replaces ".repeat(9));
            let changes = [
                ("new", Some(rmpv::Value::from("x"))),
                ("k0", Some(long)),
                ("k0", Some(rmpv::Value::Nil)),
                ("k0", None),
                ("absent", None),
            ];
            for (key, value) in changes {
                let counted = env.data_len_with(key, value.as_ref());
                let mut changed = env.data.clone();
                match value {
                    Some(value) => changed.insert(key.to_owned(), value),
                    None => changed.remove(key),
                };
                assert_eq!(counted, encoded_len(&changed), "{len} entries, {key}");
            }
        }
    }

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
        for other_format in [FORMAT_V1, 3] {
            let mut relabelled = sealed.clone();
            relabelled[0] = other_format;
            assert_eq!(
                Envelope::open(&keys, &key, &relabelled),
                None,
                "the format byte is authenticated"
            );
        }
        assert_eq!(Envelope::open(&keys, &key, &[]), None);
        assert!(
            !sealed.windows(14).any(|w| w == b"alice-the-user"),
            "the user id is sealed"
        );
    }

    /// A record as the first layout wrote it: the envelope's fields as they are.
    fn sealed_v1(envelope: &Envelope, keys: &KeyRing, key: &StoreKey) -> Vec<u8> {
        let plain = rmp_serde::encode::to_vec(envelope).unwrap();
        let mut record = vec![FORMAT_V1];
        record.extend(keys.seal(&aad(key, FORMAT_V1), &plain));
        record
    }

    fn logged_in_with_secret() -> Envelope {
        let mut env = Envelope::new(SystemTime::now(), true);
        let secret = URL_SAFE_NO_PAD.encode([0xa5_u8; SECRET_BYTES]);
        env.data
            .insert(CSRF_SECRET_KEY.into(), rmpv::Value::from(secret));
        env.data.insert("user".into(), rmpv::Value::from("alice"));
        env.deadline_ms = env.created_ms + 300_000;
        env
    }

    #[test]
    fn records_of_the_first_layout_still_open_and_are_rewritten_in_the_compact_one() {
        let keys = KeyRing::new(b"a secret key of thirty-two bytes or more", &[]);
        let key = StoreKey::from_string("sess:a".into());
        let mut env = logged_in_with_secret();
        env.note_write(7);
        let old = sealed_v1(&env, &keys, &key);
        assert_eq!(
            Envelope::open(&keys, &key, &old),
            Some((env.clone(), KeyUse::Current))
        );
        let new = env.seal(&keys, &key).unwrap();
        assert_eq!(new[0], FORMAT_V2);
        assert_eq!(
            Envelope::open(&keys, &key, &new),
            Some((env, KeyUse::Current))
        );
        assert!(
            new.len() + 26 <= old.len(),
            "compact: {} bytes against {}",
            new.len(),
            old.len()
        );
    }

    #[test]
    fn a_logged_in_record_with_its_csrf_secret_fits_in_108_bytes() {
        // 108 bytes and Redis's string header fit a 112-byte allocation; the first layout's
        // 132 took 160.
        let keys = KeyRing::new(b"a secret key of thirty-two bytes or more", &[]);
        let key = StoreKey::from_string("sess:a".into());
        let sealed = logged_in_with_secret().seal(&keys, &key).unwrap();
        assert!(sealed.len() <= 108, "{} bytes", sealed.len());
    }

    #[test]
    fn a_csrf_token_that_is_not_a_native_secret_stays_in_the_map_as_it_is() {
        let keys = KeyRing::new(b"a secret key of thirty-two bytes or more", &[]);
        let key = StoreKey::from_string("sess:a".into());
        let canonical = URL_SAFE_NO_PAD.encode([0xff_u8; SECRET_BYTES]);
        // The same bytes with non-zero trailing bits, a Flask-WTF hex token, a number.
        let mut trailing = canonical.clone();
        trailing.pop();
        trailing.push('_');
        let values = [
            rmpv::Value::from(trailing),
            rmpv::Value::from("0123456789abcdef0123456789abcdef01234567"),
            rmpv::Value::from(42),
            rmpv::Value::from(canonical),
        ];
        for value in values {
            let mut env = Envelope::new(SystemTime::now(), false);
            env.data.insert(CSRF_SECRET_KEY.into(), value.clone());
            let sealed = env.seal(&keys, &key).unwrap();
            let (opened, _) = Envelope::open(&keys, &key, &sealed).unwrap();
            assert_eq!(opened.data.get(CSRF_SECRET_KEY), Some(&value));
            assert_eq!(opened, env);
        }
    }

    #[test]
    fn a_save_id_is_the_start_of_its_nonce_and_joins_the_writes() {
        let keys = KeyRing::new(b"a secret key of thirty-two bytes or more", &[]);
        let key = StoreKey::from_string("sess:a".into());
        let mut env = Envelope::new(SystemTime::now(), false);
        let (sealed, id) = env.seal_new_write(&keys, &key).unwrap();
        assert_eq!(env.writes, [id]);
        assert_eq!(sealed[1..9], id.to_le_bytes());
        let (opened, _) = Envelope::open(&keys, &key, &sealed).unwrap();
        assert_eq!(opened.writes, [id]);
        let (_, second) = env.seal_new_write(&keys, &key).unwrap();
        assert_ne!(second, id);
        assert_eq!(env.writes, [id, second]);
    }

    #[test]
    fn the_data_length_is_that_of_the_data_maps_encoding() {
        let mut env = logged_in_with_secret();
        env.data
            .insert("blob".into(), rmpv::Value::from(vec![0u8; 300]));
        let encoded = rmp_serde::encode::to_vec(&env.data).unwrap();
        assert_eq!(env.data_len(), encoded.len());
    }
}
