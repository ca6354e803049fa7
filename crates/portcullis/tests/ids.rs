//! Session ids: a million of them, none alike, all 256 bits (security checklist item 1).
#![allow(clippy::unwrap_used)]

use std::collections::HashSet;

use base64::Engine as _;
use portcullis::session::Id;

#[test]
fn a_million_ids_never_collide_and_each_carries_256_bits() {
    let mut seen = HashSet::with_capacity(1_000_000);
    // How often each of the 256 bits is set, over the first `SAMPLE` ids.
    const SAMPLE: u32 = 10_000;
    let mut ones = [0_u32; 256];
    for i in 0..1_000_000 {
        let text = Id::random().encode();
        if i < SAMPLE {
            let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(&text)
                .unwrap();
            assert_eq!(bytes.len(), 32, "{text}");
            for (bit, count) in ones.iter_mut().enumerate() {
                *count += u32::from(bytes[bit / 8] >> (bit % 8) & 1);
            }
        }
        assert!(seen.insert(text));
    }
    // Every bit is random: set in about half the ids. For a fair bit the count is binomial
    // with mean 5,000 and standard deviation 50, so 4,500..=5,500 (ten deviations) never fails
    // by chance, while a fixed bit (0 or 10,000) is far outside: an id with 48 random bits
    // padded to 32 bytes fails here, although a million of them would not collide.
    for (bit, count) in ones.iter().enumerate() {
        assert!(
            (4_500..=5_500).contains(count),
            "bit {bit} was set in {count} of {SAMPLE} ids"
        );
    }
}
