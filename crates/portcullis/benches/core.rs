//! Micro-benchmarks of the per-request work: cookie sign/verify, record seal/open (200 bytes and
//! 1 KiB), and the file store's save and load, each beside a `baseline_*` of the bare primitive
//! it builds on (one HMAC, one AEAD call, one plain file write or read), run in the same process
//! so that the ratio shows what Portcullis adds. `baseline_xchacha20poly1305_encrypt_1KiB` is
//! RustCrypto's cipher, which the sealing no longer runs on: it is kept as the reference.
//! Run: `cargo bench -p portcullis --bench core`.
#![allow(missing_docs, clippy::unwrap_used)]

use std::hint::black_box;
use std::time::{Duration, SystemTime};

use criterion::{Criterion, criterion_group, criterion_main};
use portcullis::keys::KeyRing;
use portcullis::session::Id;
use portcullis::store::{CasToken, FileStore, SessionStore};

const SECRET: &[u8] = b"a benchmark secret key of 32 bytes or more";

fn cookies(c: &mut Criterion) {
    let keys = KeyRing::new(SECRET, &[]);
    let id = Id::random().encode();
    let mac = keys.sign(&[b"session", id.as_bytes()]);
    c.bench_function("cookie_sign", |b| {
        b.iter(|| keys.sign(&[b"session", black_box(id.as_bytes())]));
    });
    c.bench_function("cookie_verify", |b| {
        b.iter(|| keys.verify(&[b"session", black_box(id.as_bytes())], black_box(&mac)));
    });
    c.bench_function("baseline_hmac_sha256", |b| {
        use hmac::Mac;
        b.iter(|| {
            let mut mac = <hmac::Hmac<sha2::Sha256> as Mac>::new_from_slice(SECRET).unwrap();
            mac.update(black_box(id.as_bytes()));
            mac.finalize()
        });
    });
}

fn records(c: &mut Criterion) {
    let keys = KeyRing::new(SECRET, &[]);
    let data = vec![0x5a_u8; 1024];
    let aad = b"sess:0123456789abcdef0123456789abcdef0123456";
    let sealed = keys.seal(aad, &data);
    // A logged-in session's envelope: a user name, the CSRF secret, the write ids.
    let session = vec![0x5a_u8; 200];
    let sealed_session = keys.seal(aad, &session);
    c.bench_function("record_seal_200B", |b| {
        b.iter(|| keys.seal(aad, black_box(&session)))
    });
    c.bench_function("record_open_200B", |b| {
        b.iter(|| keys.open(aad, black_box(&sealed_session)))
    });
    c.bench_function("record_seal_1KiB", |b| {
        b.iter(|| keys.seal(aad, black_box(&data)))
    });
    c.bench_function("record_open_1KiB", |b| {
        b.iter(|| keys.open(aad, black_box(&sealed)))
    });
    // The bare cipher the sealing runs on: HChaCha20, then ring's ChaCha20-Poly1305.
    c.bench_function("baseline_ring_xchacha20poly1305_seal_1KiB", |b| {
        use ring::aead::{Aad, CHACHA20_POLY1305, LessSafeKey, Nonce, UnboundKey};
        let key = [7u8; 32];
        let mut buffer = data.clone();
        b.iter(|| {
            let subkey =
                chacha20::hchacha::<chacha20::cipher::consts::U10>(&key.into(), &[9u8; 16].into());
            let sealer = LessSafeKey::new(UnboundKey::new(&CHACHA20_POLY1305, &subkey).unwrap());
            sealer
                .seal_in_place_separate_tag(
                    Nonce::assume_unique_for_key([0; 12]),
                    Aad::from(black_box(aad)),
                    black_box(&mut buffer[..]),
                )
                .unwrap()
        });
    });
    // RustCrypto's XChaCha20-Poly1305, which the sealing used until issue 14's third stop.
    c.bench_function("baseline_xchacha20poly1305_encrypt_1KiB", |b| {
        use chacha20poly1305::aead::{Aead, KeyInit};
        let cipher = chacha20poly1305::XChaCha20Poly1305::new(&[7u8; 32].into());
        let nonce = chacha20poly1305::XNonce::from([9u8; 24]);
        b.iter(|| cipher.encrypt(&nonce, black_box(&data[..])).unwrap());
    });
}

fn file_store(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let store = FileStore::open(dir.path()).unwrap();
    let key = Id::random().store_key("sess:");
    let record = vec![0x5a_u8; 1100];
    let deadline = || SystemTime::now() + Duration::from_secs(300);
    runtime
        .block_on(store.create(&key, &record, deadline()))
        .unwrap();
    // An empty token matches any record: this measures a compare-and-set that succeeds (the
    // read of the live file included), never a conflict.
    c.bench_function("file_store_save_1KiB", |b| {
        b.iter(|| {
            runtime
                .block_on(store.save(&key, &CasToken::new(b""), black_box(&record), deadline()))
                .unwrap()
        });
    });
    c.bench_function("file_store_load_and_slide", |b| {
        b.iter(|| {
            runtime
                .block_on(store.load(&key, Some(deadline())))
                .unwrap()
        });
    });
    c.bench_function("file_store_load", |b| {
        b.iter(|| runtime.block_on(store.load(&key, None)).unwrap());
    });
    // What every store operation pays to leave the async executor: one round trip to tokio's
    // blocking pool, doing nothing there.
    c.bench_function("baseline_blocking_pool_hop", |b| {
        b.iter(|| {
            runtime
                .block_on(runtime.spawn_blocking(|| black_box(1)))
                .unwrap()
        });
    });
    // The store syncs every write to disk before publishing it; the baselines show a plain
    // write, a synced write, and a plain read of the same bytes (written once first, so that
    // the read's baseline can run alone: `-- baseline_fs_read`).
    let plain = dir.path().join("plain-file");
    std::fs::write(&plain, &record).unwrap();
    c.bench_function("baseline_fs_write_1KiB", |b| {
        b.iter(|| std::fs::write(&plain, black_box(&record)).unwrap());
    });
    c.bench_function("baseline_fs_write_and_sync_1KiB", |b| {
        b.iter(|| {
            let mut file = std::fs::File::create(&plain).unwrap();
            std::io::Write::write_all(&mut file, black_box(&record)).unwrap();
            file.sync_all().unwrap();
        });
    });
    c.bench_function("baseline_fs_read_1KiB", |b| {
        b.iter(|| std::fs::read(&plain).unwrap())
    });
}

criterion_group!(benches, cookies, records, file_store);
criterion_main!(benches);
