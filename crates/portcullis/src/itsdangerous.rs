//! What itsdangerous, the signing library under Flask, Flask-Session and Flask-WTF, writes: its
//! base64, HMAC-SHA1, key derivation and time stamps. One room for both Flask files, the session
//! format (`session/format/flask.rs`) and Flask-WTF's tokens (`csrf/flask.rs`).

use std::time::SystemTime;

use base64::Engine as _;
use base64::alphabet::URL_SAFE;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use hmac::{Hmac, Mac};
use sha1::{Digest, Sha1};

use crate::clock::unix_seconds;

/// base64url as itsdangerous writes it (no padding) and reads it (padding optional).
pub(crate) const B64: GeneralPurpose = GeneralPurpose::new(
    &URL_SAFE,
    GeneralPurposeConfig::new()
        .with_encode_padding(false)
        .with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// What itsdangerous's `django-concat` derivation puts between the salt and the key.
const DERIVATION_INFIX: &[u8] = b"signer";

/// HMAC-SHA1, itsdangerous's default signature.
pub(crate) type HmacSha1 = Hmac<Sha1>;

/// HMAC-SHA1 keyed with `key`.
pub(crate) fn hmac_sha1(key: &[u8]) -> HmacSha1 {
    // Invariant: HMAC takes keys of any length (longer ones are hashed first).
    <HmacSha1 as Mac>::new_from_slice(key).expect("HMAC-SHA1 accepts keys of any length")
}

/// The signing key of a `Signer(secret_key, salt, key_derivation="django-concat")`:
/// `SHA-1(salt ‖ "signer" ‖ secret_key)`.
pub(crate) fn derive_key(salt: &[u8], secret_key: &[u8]) -> [u8; 20] {
    Sha1::new()
        .chain_update(salt)
        .chain_update(DERIVATION_INFIX)
        .chain_update(secret_key)
        .finalize()
        .into()
}

/// `TimestampSigner`'s stamp for `time`: `base64(int_to_bytes(seconds))`, the big-endian Unix
/// seconds without leading zero bytes.
pub(crate) fn encode_timestamp(time: SystemTime) -> String {
    let seconds = unix_seconds(time).to_be_bytes();
    let first = seconds
        .iter()
        .position(|&b| b != 0)
        .unwrap_or(seconds.len());
    B64.encode(&seconds[first..])
}

/// itsdangerous's `bytes_to_int(base64_decode(stamp))`; `None` when it is not base64 or does not
/// fit in 64 bits.
pub(crate) fn decode_timestamp(stamp: &str) -> Option<u64> {
    let bytes = B64.decode(stamp).ok()?;
    let first = bytes.iter().position(|&b| b != 0).unwrap_or(bytes.len());
    let significant = &bytes[first..];
    if significant.len() > 8 {
        return None;
    }
    Some(
        significant
            .iter()
            .fold(0u64, |n, &b| (n << 8) | u64::from(b)),
    )
}

/// Lower-case hex, as Python's `hexdigest()` writes it (Flask-WTF's session token is one).
pub(crate) fn lower_hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn the_django_concat_key_matches_flask_wtfs_test_vector() {
        // Flask-WTF 1.3.0's key for SECRET_KEY "test-secret-key" (csrf/flask.rs's vector).
        let key = derive_key(b"wtf-csrf-token", b"test-secret-key");
        assert_eq!(lower_hex(&key), "119415ac099a5daed28f4962aed0954ab4eae73b");
    }

    #[test]
    fn time_stamps_drop_leading_zero_bytes_and_read_back() {
        let at = |seconds| SystemTime::UNIX_EPOCH + Duration::from_secs(seconds);
        // The stamp of Flask-WTF's test vector token (`….awe1-A.…`).
        assert_eq!(encode_timestamp(at(1_795_667_448)), "awe1-A");
        assert_eq!(decode_timestamp("awe1-A"), Some(1_795_667_448));
        // Padding is optional on the way in; leading zero bytes are tolerated.
        assert_eq!(decode_timestamp("awe1-A=="), Some(1_795_667_448));
        assert_eq!(decode_timestamp(&B64.encode([0, 0, 1])), Some(1));
        // The epoch has no significant byte at all.
        assert_eq!(encode_timestamp(at(0)), "");
        assert_eq!(decode_timestamp(""), Some(0));
        // Not base64, or wider than 64 bits: no time stamp.
        assert_eq!(decode_timestamp("not base64!"), None);
        assert_eq!(decode_timestamp(&B64.encode([1; 9])), None);
    }

    #[test]
    fn hex_is_lower_case_two_digits_a_byte() {
        assert_eq!(lower_hex(&[0x00, 0x0f, 0xab, 0xff]), "000fabff");
        assert_eq!(lower_hex(&[]), "");
    }
}
