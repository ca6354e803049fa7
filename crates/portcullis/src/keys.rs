//! The key ring: `SECRET_KEY` and its fallbacks, each stretched by HKDF-SHA256 into independent
//! keys for one purpose each (cookie signing, record sealing, CSRF tokens, log hashing), so that
//! no key is ever used by two algorithms.
//!
//! New cookies and records always use the current key; verifying and opening also try the
//! fallbacks (`SECRET_KEY_FALLBACKS`), so a key can be rotated without logging anybody out.
//! Once one absolute session lifetime has passed, nothing signed by a fallback is still alive
//! and it can be dropped.

use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chacha20::cipher::consts::U10;
use hkdf::Hkdf;
use hmac::{Hmac, Mac};
use ring::aead::{Aad, CHACHA20_POLY1305, LessSafeKey, UnboundKey};
use sha2::Sha256;
use zeroize::Zeroize;

/// HMAC-SHA256, as [`hmac_sha256`] makes it.
pub type HmacSha256 = Hmac<Sha256>;

/// A new HMAC-SHA256 keyed with `key`, to `update` and `finalize`: the one place the crate (and
/// the reference site) builds one.
#[must_use]
pub fn hmac_sha256(key: &[u8]) -> HmacSha256 {
    // Invariant: HMAC takes keys of any length (a longer one is hashed first, RFC 2104).
    <HmacSha256 as Mac>::new_from_slice(key).expect("HMAC-SHA256 accepts keys of any length")
}

/// Salt for HKDF: names this scheme, so keys derived here never equal keys another program
/// derives from the same `SECRET_KEY` (a Flask app, for one).
const HKDF_SALT: &[u8] = b"portcullis key ring v1";

/// Length of an XChaCha20-Poly1305 nonce: 192 bits, large enough to draw at random for every
/// seal without a counter (RFC draft-irtf-cfrg-xchacha).
pub(crate) const NONCE_LEN: usize = 24;
/// Bytes of the Poly1305 authentication tag that ends every sealed value.
pub(crate) const SEAL_TAG_LEN: usize = 16;

/// Which key of the ring verified or opened something.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeyUse {
    /// The current `SECRET_KEY`.
    Current,
    /// A key from `SECRET_KEY_FALLBACKS`: the value should be re-issued under the current key.
    Fallback,
}

/// A key that users' routing tags are HMACs under.
pub(crate) type RoutingKey = [u8; 32];

/// Bytes of a user's routing tag: 128 bits, so two users never share an index.
pub(crate) const ROUTING_TAG_LEN: usize = 16;

/// Bytes of HMAC kept in a log hash: 96 bits (16 base64url characters) tell thousands of
/// sessions apart in a log, yet are too short to stand in for the value they hash.
const LOG_HASH_LEN: usize = 12;

/// The keys derived from one secret. The signing key is kept as HMAC-SHA256 already keyed
/// (its inner and outer pads hashed once), so each signature costs a clone instead of two
/// more SHA-256 blocks.
struct DerivedKeys {
    signing: HmacSha256,
    sealing: [u8; 32],
    csrf: [u8; 32],
    routing: RoutingKey,
}

impl DerivedKeys {
    fn derive(secret: &[u8]) -> Self {
        let hkdf = Hkdf::<Sha256>::new(Some(HKDF_SALT), secret);
        let expand = |label: &[u8]| {
            let mut key = [0u8; 32];
            // Invariant: 32 bytes is far below HKDF-SHA256's 255 * 32 byte output limit.
            hkdf.expand(label, &mut key)
                .expect("32-byte HKDF output is always valid");
            key
        };
        Self {
            signing: hmac_sha256(&expand(b"session cookie signing")),
            sealing: expand(b"session record sealing"),
            csrf: expand(b"csrf token authentication"),
            routing: expand(b"session routing tag"),
        }
    }

    fn mac(&self, parts: &[&[u8]]) -> HmacSha256 {
        let mut mac = self.signing.clone();
        for part in parts {
            // Length-prefix each part so ("ab", "c") and ("a", "bc") never collide.
            mac.update(&(part.len() as u64).to_be_bytes());
            mac.update(part);
        }
        mac
    }
}

/// The raw keys are wiped when the ring is dropped (the HMAC state and ring's own key schedule
/// are not: neither crate offers it).
impl Drop for DerivedKeys {
    fn drop(&mut self) {
        self.sealing.zeroize();
        self.csrf.zeroize();
        self.routing.zeroize();
    }
}

/// `SECRET_KEY` plus fallbacks, as derived keys.
///
/// ```
/// use portcullis::keys::{KeyRing, KeyUse};
///
/// let old = KeyRing::new(b"an old secret key of at least 32 bytes", &[]);
/// let sealed = old.seal(b"sess:key", b"hello");
///
/// let rotated = KeyRing::new(
///     b"the new secret key, also 32 bytes or more",
///     &[b"an old secret key of at least 32 bytes"],
/// );
/// let (plain, used) = rotated.open(b"sess:key", &sealed).unwrap();
/// assert_eq!(plain, b"hello");
/// assert_eq!(used, KeyUse::Fallback);
/// ```
pub struct KeyRing {
    current: DerivedKeys,
    fallbacks: Vec<DerivedKeys>,
    /// Keyed hash for log lines, so that ids never appear in logs yet events can be correlated;
    /// kept keyed, as the signing key is.
    log_key: HmacSha256,
}

impl fmt::Debug for KeyRing {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyRing")
            .field("fallbacks", &self.fallbacks.len())
            .finish_non_exhaustive()
    }
}

impl KeyRing {
    /// Derives the ring from the current secret and any fallbacks (oldest last).
    ///
    /// Length rules (32 bytes at least in production) are the configuration's job; see
    /// [`crate::config`].
    #[must_use]
    pub fn new(secret: &[u8], fallbacks: &[&[u8]]) -> Self {
        let current = DerivedKeys::derive(secret);
        let mut log_key = [0u8; 32];
        Hkdf::<Sha256>::new(Some(HKDF_SALT), secret)
            .expand(b"log hashing", &mut log_key)
            .expect("32-byte HKDF output is always valid");
        Self {
            current,
            fallbacks: fallbacks.iter().map(|s| DerivedKeys::derive(s)).collect(),
            log_key: hmac_sha256(&log_key),
        }
    }

    fn all(&self) -> impl Iterator<Item = (KeyUse, &DerivedKeys)> {
        std::iter::once((KeyUse::Current, &self.current))
            .chain(self.fallbacks.iter().map(|k| (KeyUse::Fallback, k)))
    }

    /// HMAC-SHA256 of `parts` under the current signing key, base64url without padding.
    #[must_use]
    pub fn sign(&self, parts: &[&[u8]]) -> String {
        URL_SAFE_NO_PAD.encode(self.current.mac(parts).finalize().into_bytes())
    }

    /// Checks a base64url signature made by [`KeyRing::sign`] against every key of the ring,
    /// in constant time per key.
    #[must_use]
    pub fn verify(&self, parts: &[&[u8]], signature: &str) -> Option<KeyUse> {
        let tag = URL_SAFE_NO_PAD.decode(signature).ok()?;
        self.all()
            .find_map(|(used, keys)| keys.mac(parts).verify_slice(&tag).is_ok().then_some(used))
    }

    /// Seals `plaintext` with XChaCha20-Poly1305 under the current key; `aad` (the store key) is
    /// authenticated but not stored, so a record cannot be moved to another key.
    /// Output: nonce (24 bytes) followed by ciphertext and tag.
    #[must_use]
    pub fn seal(&self, aad: &[u8], plaintext: &[u8]) -> Vec<u8> {
        let nonce = Nonce::random();
        let mut out = Vec::with_capacity(NONCE_LEN + plaintext.len() + SEAL_TAG_LEN);
        out.extend_from_slice(nonce.as_bytes());
        out.extend_from_slice(plaintext);
        self.seal_in_place(aad, &nonce, &mut out, NONCE_LEN);
        out
    }

    /// [`KeyRing::seal`] without copies: encrypts `buffer[from..]` in place under `nonce` and
    /// appends the tag. The caller has put whatever goes before the ciphertext (the format byte
    /// and the nonce itself, for a record) into `buffer[..from]`, so that one allocation holds
    /// the whole sealed value.
    pub(crate) fn seal_in_place(
        &self,
        aad: &[u8],
        nonce: &Nonce,
        buffer: &mut Vec<u8>,
        from: usize,
    ) {
        debug_assert!(
            from <= buffer.len(),
            "the plaintext starts inside the buffer"
        );
        let from = from.min(buffer.len());
        let plaintext = &mut buffer[from..];
        let (key, nonce) = xchacha20poly1305(&self.current.sealing, &nonce.0);
        // Invariant: ChaCha20-Poly1305 refuses only inputs above 256 GiB.
        let tag = key
            .seal_in_place_separate_tag(nonce, Aad::from(aad), plaintext)
            .expect("ChaCha20-Poly1305 seals anything below 256 GiB");
        buffer.extend_from_slice(tag.as_ref());
    }

    /// Opens what [`KeyRing::seal`] produced, trying every key of the ring. `None` when the
    /// data was altered, cut, sealed for another `aad`, or sealed under an unknown key.
    #[must_use]
    pub fn open(&self, aad: &[u8], sealed: &[u8]) -> Option<(Vec<u8>, KeyUse)> {
        let (nonce, ciphertext) = sealed.split_first_chunk::<NONCE_LEN>()?;
        if ciphertext.len() < SEAL_TAG_LEN {
            return None;
        }
        let mut buffer = Vec::with_capacity(ciphertext.len());
        self.all().find_map(|(used, keys)| {
            // A failed opening leaves the buffer unspecified: each key starts from the bytes.
            buffer.clear();
            buffer.extend_from_slice(ciphertext);
            let (key, nonce) = xchacha20poly1305(&keys.sealing, nonce);
            let len = key
                .open_in_place(nonce, Aad::from(aad), &mut buffer)
                .ok()?
                .len();
            buffer.truncate(len);
            Some((std::mem::take(&mut buffer), used))
        })
    }

    /// The CSRF authentication key of the current secret and of each fallback.
    pub(crate) fn csrf_keys(&self) -> impl Iterator<Item = (KeyUse, &[u8; 32])> {
        self.all().map(|(used, keys)| (used, &keys.csrf))
    }

    /// The routing key of the current secret: what the kept routing key starts as (see
    /// `session/routing.rs`).
    pub(crate) fn routing_key(&self) -> RoutingKey {
        self.current.routing
    }

    /// The routing tags of `user` (the first 128 bits of HMAC-SHA256 over the user id): under
    /// the `kept` routing key first, then under the current key and each fallback, without
    /// repeats. A logged-in session's store key carries its user's tag, so that the user's
    /// sessions and index share one Redis Cluster slot; keyed, so that the store does not show
    /// the user id.
    pub(crate) fn routing_tags(
        &self,
        user: &str,
        kept: Option<&RoutingKey>,
    ) -> Vec<[u8; ROUTING_TAG_LEN]> {
        let mut tags: Vec<[u8; ROUTING_TAG_LEN]> = Vec::new();
        let ring = self.all().map(|(_, keys)| &keys.routing);
        for key in kept.into_iter().chain(ring) {
            let mut mac = hmac_sha256(key);
            mac.update(user.as_bytes());
            let mut tag = [0u8; ROUTING_TAG_LEN];
            tag.copy_from_slice(&mac.finalize().into_bytes()[..ROUTING_TAG_LEN]);
            if !tags.contains(&tag) {
                tags.push(tag);
            }
        }
        tags
    }

    /// A short keyed hash of `data` for log lines: correlates events without revealing ids.
    #[must_use]
    pub fn log_hash(&self, data: &[u8]) -> String {
        let mut mac = self.log_key.clone();
        mac.update(data);
        URL_SAFE_NO_PAD.encode(&mac.finalize().into_bytes()[..LOG_HASH_LEN])
    }
}

/// XChaCha20-Poly1305 under `key` and `nonce`, as draft-irtf-cfrg-xchacha (section 2.3)
/// defines it: HChaCha20 of the key and the nonce's first 16 bytes is a one-time subkey, and
/// ChaCha20-Poly1305 (RFC 8439) seals under that subkey with the nonce's last 8 bytes behind 4
/// zero bytes. The two pieces come from vetted crates: RustCrypto's `chacha20` for HChaCha20 and
/// ring's ChaCha20-Poly1305, whose assembly seals a session's couple of hundred bytes about 4
/// times as fast as RustCrypto's `chacha20poly1305` did (docs/BENCHMARKS.md, issue 14). The
/// bytes are the same as that crate's `XChaCha20Poly1305`: the tests check the draft's vector
/// and agree with the crate both ways.
fn xchacha20poly1305(key: &[u8; 32], nonce: &[u8; NONCE_LEN]) -> (LessSafeKey, ring::aead::Nonce) {
    let (head, tail) = nonce.split_at(16);
    let mut subkey = chacha20::hchacha::<U10>(key.into(), head.into());
    // Invariant: a ChaCha20-Poly1305 key is 32 bytes, as HChaCha20's output is.
    let key = UnboundKey::new(&CHACHA20_POLY1305, &subkey)
        .expect("HChaCha20 makes a 32-byte ChaCha20-Poly1305 key");
    subkey.as_mut_slice().zeroize();
    let mut inner = [0u8; ring::aead::NONCE_LEN];
    inner[4..].copy_from_slice(tail);
    // Each seal draws a fresh 192-bit nonce, so each pair of subkey and inner nonce is used
    // once.
    (
        LessSafeKey::new(key),
        ring::aead::Nonce::assume_unique_for_key(inner),
    )
}

/// A fresh XChaCha20-Poly1305 nonce from the operating system's generator: 192 random bits, so
/// nonces never repeat under one key without a counter. Its first 8 bytes also serve as the id
/// of the save that seals with it (`Envelope::note_write`): one draw for both.
pub(crate) struct Nonce([u8; NONCE_LEN]);

impl Nonce {
    pub(crate) fn random() -> Self {
        let mut nonce = [0u8; NONCE_LEN];
        fill_random(&mut nonce);
        Self(nonce)
    }

    pub(crate) fn as_bytes(&self) -> &[u8; NONCE_LEN] {
        &self.0
    }

    /// A 64-bit id unique to this nonce (its first 8 bytes).
    pub(crate) fn id(&self) -> u64 {
        let mut id = [0u8; 8];
        id.copy_from_slice(&self.0[..8]);
        u64::from_le_bytes(id)
    }
}

/// Fills `buf` from the operating system's generator.
///
/// # Panics
/// If the OS generator fails: continuing without randomness would issue guessable ids.
pub(crate) fn fill_random(buf: &mut [u8]) {
    getrandom::fill(buf).expect("the OS random generator must be available to issue session ids");
}

#[cfg(test)]
mod tests {
    use super::*;

    /// draft-irtf-cfrg-xchacha-03, appendix A.3.1: AEAD_XChaCha20_Poly1305.
    #[test]
    fn the_sealing_is_xchacha20poly1305_as_the_draft_gives_it() {
        let key: [u8; 32] = std::array::from_fn(|i| 0x80 + i as u8);
        let nonce: [u8; NONCE_LEN] = std::array::from_fn(|i| 0x40 + i as u8);
        let aad = [
            0x50, 0x51, 0x52, 0x53, 0xc0, 0xc1, 0xc2, 0xc3, 0xc4, 0xc5, 0xc6, 0xc7,
        ];
        let plaintext: &[u8] = b"Ladies and Gentlemen of the class of '99: \
            If I could offer you only one tip for the future, sunscreen would be it.";
        let mut buffer = plaintext.to_vec();
        let (sealer, inner) = xchacha20poly1305(&key, &nonce);
        let tag = sealer
            .seal_in_place_separate_tag(inner, Aad::from(aad), &mut buffer)
            .unwrap();
        let hex = |bytes: &[u8]| bytes.iter().map(|b| format!("{b:02x}")).collect::<String>();
        assert_eq!(
            hex(&buffer),
            "bd6d179d3e83d43b9576579493c0e939572a1700252bfaccbed2902c21396cbb731c7f1b0b4aa644\
             0bf3a82f4eda7e39ae64c6708c54c216cb96b72e1213b4522f8c9ba40db5d945b11b69b982c1bb9e\
             3f3fac2bc369488f76b2383565d3fff921f9664c97637da9768812f615c68b13b52e"
        );
        assert_eq!(hex(tag.as_ref()), "c0875924c1c7987947deafd8780acf49");
    }

    /// What [`KeyRing::seal`] makes, RustCrypto's `XChaCha20Poly1305` opens, and the other way
    /// round: every length up to a few blocks, then past each of ring's length-dependent paths
    /// (its AVX2 code branches at 192 and 320 bytes and runs its main loop above that), under
    /// additional data of the lengths its assembly treats apart. Records sealed before the sealing
    /// moved to ring still open.
    #[test]
    fn sealing_agrees_with_rustcrypto_xchacha20poly1305_both_ways() {
        use chacha20poly1305::aead::{Aead, KeyInit, Payload};
        use chacha20poly1305::{XChaCha20Poly1305, XNonce};

        let ring = KeyRing::new(b"a secret key of at least thirty-two bytes", &[]);
        let reference = XChaCha20Poly1305::new(&ring.current.sealing.into());
        let long = [321, 383, 384, 511, 512, 513, 640, 1024, 1200, 4097];
        let aads: [&[u8]; 5] = [b"", &[13; 13], &[16; 16], &[17; 17], &[60; 60]];
        for (len, aad) in (0..=300)
            .chain(long)
            .flat_map(|len| aads.map(|aad| (len, aad)))
        {
            let plaintext: Vec<u8> = (0..len).map(|i| (i * 7 + len) as u8).collect();
            let sealed = ring.seal(aad, &plaintext);
            let (nonce, ciphertext) = sealed.split_at(NONCE_LEN);
            let payload = Payload {
                msg: ciphertext,
                aad,
            };
            assert_eq!(
                reference
                    .decrypt(XNonce::from_slice(nonce), payload)
                    .unwrap(),
                plaintext,
                "length {len}, additional data {}",
                aad.len()
            );

            let nonce = Nonce::random();
            let payload = Payload {
                msg: &plaintext,
                aad,
            };
            let mut theirs = nonce.as_bytes().to_vec();
            theirs.extend(
                reference
                    .encrypt(XNonce::from_slice(nonce.as_bytes()), payload)
                    .unwrap(),
            );
            assert_eq!(
                ring.open(aad, &theirs),
                Some((plaintext.clone(), KeyUse::Current)),
                "length {len}, additional data {}",
                aad.len()
            );
            assert_eq!(ring.open(b"sess:other", &theirs), None, "length {len}");
        }
    }

    #[test]
    fn anything_shorter_than_a_nonce_and_a_tag_opens_to_nothing() {
        let ring = KeyRing::new(b"a secret key of at least thirty-two bytes", &[]);
        let sealed = ring.seal(b"sess:short", b"");
        assert_eq!(sealed.len(), NONCE_LEN + SEAL_TAG_LEN);
        assert!(ring.open(b"sess:short", &sealed).is_some());
        for len in 0..sealed.len() {
            assert_eq!(
                ring.open(b"sess:short", &sealed[..len]),
                None,
                "{len} bytes"
            );
        }
    }

    const A: &[u8] = b"secret key A, long enough for production";
    const B: &[u8] = b"secret key B, long enough for production";

    #[test]
    fn signature_verifies_with_current_key_only_for_same_parts() {
        let ring = KeyRing::new(A, &[]);
        let sig = ring.sign(&[b"session", b"id"]);
        assert_eq!(
            ring.verify(&[b"session", b"id"], &sig),
            Some(KeyUse::Current)
        );
        assert_eq!(ring.verify(&[b"session", b"other"], &sig), None);
        assert_eq!(
            ring.verify(&[b"sessioni", b"d"], &sig),
            None,
            "parts are length-prefixed"
        );
        assert_eq!(
            KeyRing::new(B, &[]).verify(&[b"session", b"id"], &sig),
            None
        );
    }

    #[test]
    fn fallback_key_verifies_and_opens_but_new_values_use_current() {
        let old = KeyRing::new(A, &[]);
        let rotated = KeyRing::new(B, &[A]);
        let sig = old.sign(&[b"x"]);
        assert_eq!(rotated.verify(&[b"x"], &sig), Some(KeyUse::Fallback));
        let sealed = old.seal(b"k", b"data");
        assert_eq!(
            rotated.open(b"k", &sealed),
            Some((b"data".to_vec(), KeyUse::Fallback))
        );
        assert_eq!(old.verify(&[b"x"], &rotated.sign(&[b"x"])), None);
    }

    #[test]
    fn sealed_record_is_bound_to_its_aad_and_detects_any_change() {
        let ring = KeyRing::new(A, &[]);
        let sealed = ring.seal(b"sess:one", b"payload");
        assert!(ring.open(b"sess:two", &sealed).is_none());
        for i in 0..sealed.len() {
            let mut bad = sealed.clone();
            bad[i] ^= 1;
            assert!(
                ring.open(b"sess:one", &bad).is_none(),
                "flip at {i} must fail"
            );
        }
        assert!(
            ring.open(b"sess:one", &sealed[..sealed.len() - 1])
                .is_none()
        );
        assert_ne!(
            ring.seal(b"sess:one", b"payload"),
            sealed,
            "nonces are fresh"
        );
    }

    #[test]
    fn log_hash_is_keyed_and_short() {
        let a = KeyRing::new(A, &[]).log_hash(b"id");
        assert_eq!(a.len(), 16);
        assert_ne!(a, KeyRing::new(B, &[]).log_hash(b"id"));
    }
}
