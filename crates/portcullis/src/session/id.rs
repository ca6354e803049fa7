//! Session ids: 32 bytes from the OS generator, base64url in the cookie, and hashed with
//! SHA-256 before they reach the store.
//!
//! A logged-in session's id also carries its user's routing tag `T` (see
//! `session/devices.rs`), and its store key puts the tag in braces (`<prefix>{T}<hash>`), so
//! that on a Redis Cluster all of a user's sessions share a slot with the user's index. The
//! cookie never shows `T`: it carries the tag sealed under the key ring with a fresh nonce
//! (`<sealed T>~<random>`), so that two cookies of one user have nothing in common that an
//! observer could link, and a read still needs only the cookie to find the record (one round
//! trip). The tag is sealed when a cookie is issued for the id; a sliding refresh sends the
//! browser's own cookie back unchanged (`cookie::presented_value`), so one session keeps one
//! cookie text, which links nothing its random part did not already link. The canonical form `T~<random>` (what [`Id::encode`] gives, and what the store key
//! hashes) stays inside the process.

use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sha2::{Digest, Sha256};

use crate::keys::{KeyRing, KeyUse, NONCE_LEN, ROUTING_TAG_LEN, SEAL_TAG_LEN, fill_random};
use crate::store::{StoreKey, UserSlot};

/// Bytes of randomness in an id: 256 bits, well past OWASP's 64-bit minimum of entropy.
const ID_BYTES: usize = 32;

/// Length of 32 bytes in base64url without padding: an id's random part, a SHA-256 digest (a
/// device id, the end of a store key) and an HMAC-SHA256 tag (a native cookie's MAC).
pub(crate) const ENCODED_32_BYTES_LEN: usize = 43;
/// Length of an id in base64url without padding.
pub(crate) const ENCODED_ID_LEN: usize = ENCODED_32_BYTES_LEN;
/// Length of [`Id::digest`]: a base64url SHA-256.
pub(crate) const ENCODED_DIGEST_LEN: usize = ENCODED_32_BYTES_LEN;
/// Length of a routing tag in base64url without padding.
const ENCODED_TAG_LEN: usize = 22;
/// Between the routing tag and the random part: outside base64url, allowed in a cookie value.
const TAG_SEPARATOR: char = '~';
/// Length of the longest id in canonical form: a tagged one.
const MAX_ENCODED_ID_LEN: usize = ENCODED_TAG_LEN + 1 + ENCODED_ID_LEN;
/// Bytes of a sealed routing tag: nonce, encrypted tag, authentication tag.
const SEALED_TAG_BYTES: usize = NONCE_LEN + ROUTING_TAG_LEN + SEAL_TAG_LEN;
/// Length of a sealed routing tag in base64url without padding.
const ENCODED_SEALED_TAG_LEN: usize = (SEALED_TAG_BYTES * 4).div_ceil(3);
/// Length of the longest id in a cookie: a tagged one, its tag sealed.
pub(crate) const MAX_COOKIE_ID_LEN: usize = ENCODED_SEALED_TAG_LEN + 1 + ENCODED_ID_LEN;
/// What a sealed routing tag is bound to, besides the id's random part.
const SEALED_TAG_CONTEXT: &[u8] = b"portcullis session routing tag\0";

/// A routing tag: which user's slot a logged-in session lives in.
pub(crate) type Tag = [u8; ROUTING_TAG_LEN];

/// A session id. Its `Debug` output is redacted so it cannot leak into logs by accident.
#[derive(Clone, PartialEq, Eq)]
pub struct Id {
    tag: Option<Tag>,
    random: [u8; ID_BYTES],
}

impl Id {
    /// A fresh id from the OS generator.
    #[must_use]
    pub fn random() -> Self {
        let mut random = [0u8; ID_BYTES];
        fill_random(&mut random);
        Self { tag: None, random }
    }

    /// A fresh id carrying a user's routing tag.
    pub(crate) fn tagged(tag: Tag) -> Self {
        Self {
            tag: Some(tag),
            ..Self::random()
        }
    }

    /// Parses the base64url form, `<random>` or `<tag>~<random>`; anything else (wrong length,
    /// padding, other alphabet) is `None`.
    #[must_use]
    pub fn decode(text: &str) -> Option<Self> {
        let (tag, random) = match text.split_once(TAG_SEPARATOR) {
            Some((tag, random)) => (Some(decode_exact(tag, ENCODED_TAG_LEN)?), random),
            None => (None, text),
        };
        Some(Self {
            tag,
            random: decode_exact(random, ENCODED_ID_LEN)?,
        })
    }

    /// The id as a cookie carries it: the canonical form of an untagged id; for a tagged one
    /// `<sealed tag>~<random>`, the tag sealed under the ring's current key with a fresh
    /// nonce (so every call gives another text, and none shows the tag).
    pub(crate) fn cookie_text(&self, keys: &KeyRing) -> String {
        let random = URL_SAFE_NO_PAD.encode(self.random);
        match &self.tag {
            Some(tag) => {
                let sealed = keys.seal(&tag_context(&self.random), tag);
                format!("{}{TAG_SEPARATOR}{random}", URL_SAFE_NO_PAD.encode(sealed))
            }
            None => random,
        }
    }

    /// Parses what [`Id::cookie_text`] gave, opening a sealed tag with any key of the ring;
    /// also the canonical form `<tag>~<random>` that cookies carried before tags were sealed
    /// (answered as [`KeyUse::Fallback`], so that the cookie is issued again, sealed).
    /// Anything else (wrong lengths, non-canonical base64url, a tag that does not open) is
    /// `None`.
    pub(crate) fn from_cookie_text(text: &str, keys: &KeyRing) -> Option<(Self, KeyUse)> {
        let Some((tag, random)) = text.split_once(TAG_SEPARATOR) else {
            return Some((Self::decode(text)?, KeyUse::Current));
        };
        if tag.len() == ENCODED_TAG_LEN {
            return Some((Self::decode(text)?, KeyUse::Fallback));
        }
        let random: [u8; ID_BYTES] = decode_exact(random, ENCODED_ID_LEN)?;
        let sealed: [u8; SEALED_TAG_BYTES] = decode_exact(tag, ENCODED_SEALED_TAG_LEN)?;
        let (opened, used) = keys.open(&tag_context(&random), &sealed)?;
        let tag = Some(opened.try_into().ok()?);
        Some((Self { tag, random }, used))
    }

    /// The canonical base64url form, `<random>` or `<tag>~<random>`: what the store key
    /// hashes, and an untagged id's cookie form. A tagged id's cookie shows its tag only
    /// sealed (see the crate docs, "Security model").
    #[must_use]
    pub fn encode(&self) -> String {
        match &self.tag {
            Some(tag) => format!(
                "{}{TAG_SEPARATOR}{}",
                encode_tag(tag),
                URL_SAFE_NO_PAD.encode(self.random)
            ),
            None => URL_SAFE_NO_PAD.encode(self.random),
        }
    }

    /// The key of this session's record: `prefix` + base64url(SHA-256(id)), with the routing
    /// tag in braces between them for a tagged id. Unkeyed on purpose, so that rotating
    /// `SECRET_KEY` orphans no record.
    #[must_use]
    pub fn store_key(&self, prefix: &str) -> StoreKey {
        let tag_len = self.tag.map_or(0, |_| ENCODED_TAG_LEN + 2);
        let mut key = String::with_capacity(prefix.len() + tag_len + ENCODED_32_BYTES_LEN);
        key.push_str(prefix);
        if let Some(tag) = &self.tag {
            key.push('{');
            URL_SAFE_NO_PAD.encode_string(tag, &mut key);
            key.push('}');
        }
        URL_SAFE_NO_PAD.encode_string(self.hashed(), &mut key);
        StoreKey::from_string(key)
    }

    /// The routing tag, for a logged-in session's id.
    pub(crate) fn tag(&self) -> Option<&Tag> {
        self.tag.as_ref()
    }

    /// base64url(SHA-256(id)): the end of the store key, and the session's member in its
    /// user's index.
    pub(crate) fn digest(&self) -> String {
        URL_SAFE_NO_PAD.encode(self.hashed())
    }

    /// SHA-256 of the canonical form ([`Id::encode`]), which is written on the stack, not
    /// allocated: every load and save computes it.
    fn hashed(&self) -> [u8; 32] {
        let mut text = [0_u8; MAX_ENCODED_ID_LEN];
        let mut len = 0;
        if let Some(tag) = &self.tag {
            len = encode_into(tag, &mut text);
            len += TAG_SEPARATOR.encode_utf8(&mut text[len..]).len();
        }
        len += encode_into(&self.random, &mut text[len..]);
        Sha256::digest(&text[..len]).into()
    }
}

/// What a sealed tag is bound to: a context string and the id's random part, so that a sealed
/// tag cannot be moved onto another id.
fn tag_context(random: &[u8; ID_BYTES]) -> Vec<u8> {
    [SEALED_TAG_CONTEXT, random].concat()
}

/// Writes `bytes` in base64url at the start of `out`; returns the length written.
fn encode_into(bytes: &[u8], out: &mut [u8]) -> usize {
    // Invariant: callers give room for the longest canonical id (MAX_ENCODED_ID_LEN).
    URL_SAFE_NO_PAD
        .encode_slice(bytes, out)
        .expect("the buffer holds a canonical id")
}

/// A routing tag in base64url, as it appears in canonical ids and store keys.
pub(crate) fn encode_tag(tag: &Tag) -> String {
    URL_SAFE_NO_PAD.encode(tag)
}

/// The index slot of the user with routing tag `tag`: the index `<prefix>idx:{T}` and the
/// member prefix `<prefix>{T}`.
pub(crate) fn slot(prefix: &str, tag: &Tag) -> UserSlot {
    let tag = encode_tag(tag);
    UserSlot::new(
        StoreKey::from_string(format!("{prefix}idx:{{{tag}}}")),
        format!("{prefix}{{{tag}}}"),
    )
}

/// Decodes exactly `len` base64url characters into `N` bytes. Non-canonical encodings (stray
/// low bits in the last character) are refused, so one id has exactly one cookie form.
/// Decoded and encoded again on the stack: every cookie's id goes through here.
fn decode_exact<const N: usize>(text: &str, len: usize) -> Option<[u8; N]> {
    /// Room for the decoding of the longest part of an id, with the decoder's margin.
    const DECODED_ROOM: usize = 64;
    if text.len() != len || N > DECODED_ROOM - 3 {
        return None;
    }
    let mut decoded = [0_u8; DECODED_ROOM];
    let written = URL_SAFE_NO_PAD.decode_slice(text, &mut decoded).ok()?;
    let bytes: [u8; N] = decoded.get(..written)?.try_into().ok()?;
    let mut encoded = [0_u8; DECODED_ROOM * 4 / 3 + 1];
    let again = URL_SAFE_NO_PAD.encode_slice(bytes, &mut encoded).ok()?;
    (encoded.get(..again)? == text.as_bytes()).then_some(bytes)
}

impl fmt::Debug for Id {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Id([redacted])")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_round_trip_and_are_distinct() {
        let a = Id::random();
        assert_eq!(a.encode().len(), ENCODED_ID_LEN);
        assert_eq!(Id::decode(&a.encode()), Some(a.clone()));
        assert_ne!(a, Id::random());
    }

    #[test]
    fn non_canonical_or_malformed_ids_are_refused() {
        let text = Id::random().encode();
        assert!(Id::decode(&text[1..]).is_none());
        assert!(Id::decode(&format!("{text}A")).is_none());
        assert!(Id::decode(&text.replace(|c: char| c.is_ascii_alphanumeric(), "+")).is_none());
        // The last character carries 4 bits of the id and 2 zero bits; the next letter of the
        // alphabet sets one of those bits, which decodes to the same bytes but is not canonical.
        const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
        let last = ALPHABET
            .iter()
            .position(|&c| c == text.as_bytes()[42])
            .unwrap();
        let bad = format!("{}{}", &text[..42], ALPHABET[last + 1] as char);
        assert!(Id::decode(&bad).is_none());
    }

    #[test]
    fn tagged_ids_round_trip_and_put_the_tag_in_braces_in_the_store_key() {
        let id = Id::tagged([7; ROUTING_TAG_LEN]);
        let text = id.encode();
        assert_eq!(text.len(), MAX_ENCODED_ID_LEN);
        assert_eq!(text.chars().nth(ENCODED_TAG_LEN), Some('~'));
        assert_eq!(Id::decode(&text), Some(id.clone()));
        let tag = encode_tag(&[7; ROUTING_TAG_LEN]);
        assert_eq!(
            id.store_key("sess:").as_str(),
            format!("sess:{{{tag}}}{}", id.digest())
        );
        for bad in [
            format!("~{}", Id::random().encode()),
            format!("{tag}~"),
            format!("{tag}~~{}", Id::random().encode()),
            format!("{tag}A~{}", Id::random().encode()),
        ] {
            assert!(Id::decode(&bad).is_none(), "{bad}");
        }
    }

    #[test]
    fn a_cookie_seals_the_tag_afresh_and_a_sealed_tag_opens_only_on_its_own_id() {
        let keys = KeyRing::new(b"a secret key of thirty-two bytes or more", &[]);
        let id = Id::tagged([7; ROUTING_TAG_LEN]);
        let (one, two) = (id.cookie_text(&keys), id.cookie_text(&keys));
        assert_ne!(one, two, "a fresh nonce every time");
        assert_eq!(one.len(), MAX_COOKIE_ID_LEN);
        assert!(!one.contains(&encode_tag(&[7; ROUTING_TAG_LEN])));
        assert_eq!(
            Id::from_cookie_text(&one, &keys),
            Some((id.clone(), KeyUse::Current))
        );
        // The form cookies had before tags were sealed still reads, and asks for a re-issue.
        assert_eq!(
            Id::from_cookie_text(&id.encode(), &keys),
            Some((id, KeyUse::Fallback))
        );
        let (sealed, _) = one.split_once('~').unwrap();
        let other = format!("{sealed}~{}", Id::random().encode());
        assert_eq!(Id::from_cookie_text(&other, &keys), None);
        let foreign = KeyRing::new(b"another key of thirty-two bytes or more", &[]);
        assert_eq!(Id::from_cookie_text(&one, &foreign), None);
    }

    #[test]
    fn the_digest_is_the_sha256_of_the_canonical_form() {
        for id in [Id::random(), Id::tagged([7; ROUTING_TAG_LEN])] {
            let expected = URL_SAFE_NO_PAD.encode(Sha256::digest(id.encode().as_bytes()));
            assert_eq!(id.digest(), expected);
            let key = id.store_key("sess:");
            assert!(key.as_str().ends_with(&expected), "{key}");
        }
    }

    #[test]
    fn store_key_hashes_the_id_under_the_prefix() {
        let id = Id::random();
        let key = id.store_key("sess:");
        assert!(key.as_str().starts_with("sess:"));
        assert!(!key.as_str().contains(&id.encode()));
        assert_eq!(key, id.store_key("sess:"));
        assert_eq!(format!("{id:?}"), "Id([redacted])");
    }
}
