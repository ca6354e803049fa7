//! Session ids: 32 bytes from the OS generator, base64url in the cookie, and hashed with
//! SHA-256 before they reach the store.
//!
//! A logged-in session's id also carries its user's routing tag (`T~r`, see
//! `session/devices.rs`), and its store key puts the tag in braces (`<prefix>{T}<hash>`), so
//! that on a Redis Cluster all of a user's sessions share a slot with the user's index.

use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sha2::{Digest, Sha256};

use crate::keys::{ROUTING_TAG_LEN, fill_random};
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
/// Length of the longest id: a tagged one.
pub(crate) const MAX_ENCODED_ID_LEN: usize = ENCODED_TAG_LEN + 1 + ENCODED_ID_LEN;

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

    /// The base64url form used in the cookie.
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
        let digest = self.digest();
        StoreKey::from_string(match &self.tag {
            Some(tag) => format!("{prefix}{{{}}}{digest}", encode_tag(tag)),
            None => format!("{prefix}{digest}"),
        })
    }

    /// The routing tag, for a logged-in session's id.
    pub(crate) fn tag(&self) -> Option<&Tag> {
        self.tag.as_ref()
    }

    /// base64url(SHA-256(id)): the end of the store key, and the session's member in its
    /// user's index.
    pub(crate) fn digest(&self) -> String {
        URL_SAFE_NO_PAD.encode(Sha256::digest(self.encode().as_bytes()))
    }
}

/// A routing tag in base64url, as it appears in ids and store keys.
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
fn decode_exact<const N: usize>(text: &str, len: usize) -> Option<[u8; N]> {
    if text.len() != len {
        return None;
    }
    let bytes: [u8; N] = URL_SAFE_NO_PAD.decode(text).ok()?.try_into().ok()?;
    (URL_SAFE_NO_PAD.encode(bytes) == text).then_some(bytes)
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
    fn store_key_hashes_the_id_under_the_prefix() {
        let id = Id::random();
        let key = id.store_key("sess:");
        assert!(key.as_str().starts_with("sess:"));
        assert!(!key.as_str().contains(&id.encode()));
        assert_eq!(key, id.store_key("sess:"));
        assert_eq!(format!("{id:?}"), "Id([redacted])");
    }
}
