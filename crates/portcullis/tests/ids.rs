//! Session ids: a million of them, none alike, all 256 bits (security checklist item 1).
#![allow(clippy::unwrap_used)]

use std::collections::HashSet;

use base64::Engine as _;
use portcullis::session::Id;

#[test]
fn a_million_ids_never_collide_and_each_carries_256_bits() {
    let mut seen = HashSet::with_capacity(1_000_000);
    for _ in 0..1_000_000 {
        let text = Id::random().encode();
        assert!(seen.insert(text));
    }
    let sample = seen.iter().next().unwrap();
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(sample)
        .unwrap();
    assert_eq!(bytes.len(), 32);
}
