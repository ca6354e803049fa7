//! Micro-benchmarks of the CSRF token work done per rendered form and per checked request:
//! issuing a masked token, and verifying one (with the current key, and with a fallback key
//! after a rotation, which costs one more HMAC). Run: `cargo bench -p portcullis --bench csrf`.
#![allow(missing_docs, clippy::unwrap_used)]

use std::hint::black_box;
use std::time::{Duration, SystemTime};

use criterion::{Criterion, criterion_group, criterion_main};
use portcullis::csrf::{CsrfSecret, verify_token};
use portcullis::keys::KeyRing;

const SECRET: &[u8] = b"a benchmark secret key of 32 bytes or more";
const OLD_SECRET: &[u8] = b"a retired benchmark key, 32 bytes or more";
const LIMIT: Option<Duration> = Some(Duration::from_secs(3600));

fn tokens(c: &mut Criterion) {
    let keys = KeyRing::new(SECRET, &[OLD_SECRET]);
    let secret = CsrfSecret::generate();
    let now = SystemTime::now();
    c.bench_function("csrf_token_issue", |b| {
        b.iter(|| secret.issue(&keys, black_box(now)));
    });

    let token = secret.issue(&keys, now);
    c.bench_function("csrf_token_verify", |b| {
        b.iter(|| verify_token(Some(black_box(&token)), Some(&secret), &keys, now, LIMIT).unwrap());
    });

    let old_token = secret.issue(&KeyRing::new(OLD_SECRET, &[]), now);
    c.bench_function("csrf_token_verify_fallback_key", |b| {
        b.iter(|| {
            verify_token(
                Some(black_box(&old_token)),
                Some(&secret),
                &keys,
                now,
                LIMIT,
            )
            .unwrap();
        });
    });

    let forged = "A".repeat(token.len());
    c.bench_function("csrf_token_verify_forged", |b| {
        b.iter(|| {
            verify_token(Some(black_box(&forged)), Some(&secret), &keys, now, LIMIT).unwrap_err()
        });
    });
}

criterion_group!(benches, tokens);
criterion_main!(benches);
