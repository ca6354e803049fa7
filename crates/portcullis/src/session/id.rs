//! Session ids: 32 bytes from the OS generator, base64url in the cookie, and hashed with
//! SHA-256 before they reach the store.

use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sha2::{Digest, Sha256};

use crate::keys::fill_random;
use crate::store::StoreKey;

/// Bytes of randomness in an id: 256 bits, well past OWASP's 64-bit minimum of entropy.
const ID_BYTES: usize = 32;

/// Length of an id in base64url without padding.
pub(crate) const ENCODED_ID_LEN: usize = 43;

/// A session id. Its `Debug` output is redacted so it cannot leak into logs by accident.
#[derive(Clone, PartialEq, Eq)]
pub struct Id([u8; ID_BYTES]);

impl Id {
    /// A fresh id from the OS generator.
    #[must_use]
    pub fn random() -> Self {
        let mut bytes = [0u8; ID_BYTES];
        fill_random(&mut bytes);
        Self(bytes)
    }

    /// Parses the base64url form; anything else (wrong length, padding, other alphabet) is `None`.
    #[must_use]
    pub fn decode(text: &str) -> Option<Self> {
        if text.len() != ENCODED_ID_LEN {
            return None;
        }
        let bytes = URL_SAFE_NO_PAD.decode(text).ok()?;
        let id = Self(bytes.try_into().ok()?);
        // Reject non-canonical encodings (stray low bits in the last character), so one id has
        // exactly one cookie form.
        (id.encode() == text).then_some(id)
    }

    /// The base64url form used in the cookie.
    #[must_use]
    pub fn encode(&self) -> String {
        URL_SAFE_NO_PAD.encode(self.0)
    }

    /// The key of this session's record: `prefix` + base64url(SHA-256(id)). Unkeyed on purpose,
    /// so that rotating `SECRET_KEY` orphans no record.
    #[must_use]
    pub fn store_key(&self, prefix: &str) -> StoreKey {
        let digest = Sha256::digest(self.encode().as_bytes());
        StoreKey::from_string(format!("{prefix}{}", URL_SAFE_NO_PAD.encode(digest)))
    }
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
    fn store_key_hashes_the_id_under_the_prefix() {
        let id = Id::random();
        let key = id.store_key("sess:");
        assert!(key.as_str().starts_with("sess:"));
        assert!(!key.as_str().contains(&id.encode()));
        assert_eq!(key, id.store_key("sess:"));
        assert_eq!(format!("{id:?}"), "Id([redacted])");
    }
}
