//! Records this process opened or sealed lately, kept opened ([`OpenedRecords`]), so that the
//! next load of the same record skips the decryption and the decoding.
//!
//! Opening a sealed record is a pure function of the key ring, the store key and the record's
//! bytes (XChaCha20-Poly1305 decryption, then MessagePack), so its result can be kept and
//! handed out again for the very same bytes under the very same key: a load still reads the
//! store every time (the store decides what the session is: a record written elsewhere, an
//! expiry, a deletion all change or remove the bytes), and only when the bytes it gets are
//! exactly those of the kept entry is the kept envelope used instead of opening them again
//! (shared, not copied). A request that changes the session takes the kept envelope over when
//! nobody else holds it ([`OpenedRecords::release`]; a successful save of the session keeps
//! the record it writes, else the next load opens the bytes afresh), and copies it only while
//! another request shares it. A session read or written on every request by one process (the
//! common case behind a sticky or small pool) is then opened once per write instead of once per
//! request.
//!
//! One entry per stripe of the store key, like the writers' turns, each at most
//! [`MAX_KEPT_RECORD`] bytes, so all of them together stay under 8 MiB of records plus their
//! envelopes. Only native records are kept: a Flask record's decoding depends on the clock.

use std::fmt;
use std::sync::{Arc, Mutex, PoisonError};

use super::record::Envelope;
use super::stripes::Stripes;
use crate::store::StoreKey;

/// Stripes: enough that the sessions active at one moment rarely share one.
const STRIPES: usize = 1024;
/// The largest record kept opened.
const MAX_KEPT_RECORD: usize = 8 * 1024;

/// One record kept opened: its key, its bytes, what they open to, and whether that came from a
/// fallback key (so that the record is still rewritten under the current one).
struct Entry {
    key: StoreKey,
    record: Vec<u8>,
    envelope: Arc<Envelope>,
    rewrite: bool,
}

/// Records kept opened, by stripe of their store key.
pub(crate) struct OpenedRecords {
    stripes: Stripes<Mutex<Option<Entry>>>,
}

impl OpenedRecords {
    pub(crate) fn new() -> Self {
        Self {
            stripes: Stripes::new(STRIPES, |_| Mutex::new(None)),
        }
    }

    /// What `record`, read under `key`, opens to, when it is exactly the record kept for `key`:
    /// the kept envelope (shared, until a change takes it over or copies it), and its
    /// `rewrite` flag.
    pub(crate) fn get(&self, key: &StoreKey, record: &[u8]) -> Option<(Arc<Envelope>, bool)> {
        let entry = self
            .stripes
            .of(key)
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        match &*entry {
            Some(kept) if kept.key == *key && kept.record == record => {
                Some((kept.envelope.clone(), kept.rewrite))
            }
            _ => None,
        }
    }

    /// Keeps `envelope` as what `record` under `key` opens to (just opened, or just sealed by
    /// this process), in place of whatever its stripe held.
    pub(crate) fn put(
        &self,
        key: &StoreKey,
        record: &[u8],
        envelope: &Arc<Envelope>,
        rewrite: bool,
    ) {
        if record.len() > MAX_KEPT_RECORD {
            return;
        }
        let entry = Entry {
            key: key.clone(),
            record: record.to_vec(),
            envelope: envelope.clone(),
            rewrite,
        };
        *self
            .stripes
            .of(key)
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Some(entry);
    }

    /// Lets go of the record kept for `key` when what it opens to is `envelope` itself and
    /// nobody else holds that envelope: the caller is about to change it, and so changes it in
    /// place instead of copying it. A successful save of the session keeps the record it
    /// writes; otherwise the next load opens the bytes afresh.
    ///
    /// The count is read before the stripe's lock, so a load that takes the envelope in
    /// between makes this let go for nothing: the change then copies (`Arc::make_mut`), and
    /// the only cost is one opening on a later load. Nobody ever sees the change.
    pub(crate) fn release(&self, key: &StoreKey, envelope: &Arc<Envelope>) {
        // The kept entry and the caller: two. Any more, and it is copied anyway.
        if Arc::strong_count(envelope) != 2 {
            return;
        }
        let released = {
            let mut entry = self
                .stripes
                .of(key)
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            if entry
                .as_ref()
                .is_some_and(|kept| Arc::ptr_eq(&kept.envelope, envelope))
            {
                entry.take()
            } else {
                None
            }
        };
        // Freed after the stripe's lock.
        drop(released);
    }
}

/// A copy of a layer's shared state (made while the layer is built) starts with nothing kept.
impl Clone for OpenedRecords {
    fn clone(&self) -> Self {
        Self::new()
    }
}

impl fmt::Debug for OpenedRecords {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OpenedRecords")
            .field("stripes", &self.stripes.len())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use std::time::SystemTime;

    use super::*;

    #[test]
    fn a_kept_envelope_comes_back_only_for_the_same_key_and_the_same_bytes() {
        let kept = OpenedRecords::new();
        let key = StoreKey::from_string("sess:a".into());
        let mut envelope = Envelope::new(SystemTime::now(), true);
        envelope.data.insert("n".into(), rmpv::Value::from(1));
        let envelope = Arc::new(envelope);
        kept.put(&key, b"record one", &envelope, false);
        assert_eq!(
            kept.get(&key, b"record one"),
            Some((envelope.clone(), false))
        );
        assert_eq!(kept.get(&key, b"record two"), None, "other bytes");
        assert_eq!(kept.get(&key, b"record on"), None, "a prefix");
        let other = StoreKey::from_string("sess:b".into());
        assert_eq!(kept.get(&other, b"record one"), None, "another key");
        kept.put(&key, b"record two", &envelope, true);
        assert_eq!(kept.get(&key, b"record one"), None, "replaced");
        assert_eq!(kept.get(&key, b"record two"), Some((envelope, true)));
    }

    #[test]
    fn a_record_too_large_to_keep_is_not_kept() {
        let kept = OpenedRecords::new();
        let key = StoreKey::from_string("sess:a".into());
        let envelope = Arc::new(Envelope::new(SystemTime::now(), false));
        let large = vec![7u8; MAX_KEPT_RECORD + 1];
        kept.put(&key, &large, &envelope, false);
        assert_eq!(kept.get(&key, &large), None);
    }

    /// A request that only reads shares the kept envelope (no copy); one that changes it
    /// changes its own copy, never what the next request of the same bytes gets.
    #[test]
    fn a_handed_out_envelope_is_shared_until_changed_and_then_copied() {
        let kept = OpenedRecords::new();
        let key = StoreKey::from_string("sess:a".into());
        let mut envelope = Envelope::new(SystemTime::now(), true);
        envelope.data.insert("n".into(), rmpv::Value::from(1));
        kept.put(&key, b"record", &Arc::new(envelope.clone()), false);

        let (mut handed, _) = kept.get(&key, b"record").unwrap();
        let (again, _) = kept.get(&key, b"record").unwrap();
        assert!(Arc::ptr_eq(&handed, &again), "a read copies nothing");

        Arc::make_mut(&mut handed)
            .data
            .insert("n".into(), rmpv::Value::from(2));
        assert!(!Arc::ptr_eq(&handed, &again), "a change copies");
        let (next, _) = kept.get(&key, b"record").unwrap();
        assert_eq!(*next, envelope, "the kept envelope is unchanged");
    }

    /// The stripe now keeps another envelope (another request saved meanwhile; a record of
    /// another key in the same stripe differs the same way): a release leaves it.
    #[test]
    fn a_release_leaves_a_record_kept_for_another_envelope() {
        let kept = OpenedRecords::new();
        let key = StoreKey::from_string("sess:a".into());
        let ours = Arc::new(Envelope::new(SystemTime::now(), true));
        let theirs = Arc::new(Envelope::new(SystemTime::now(), false));
        kept.put(&key, b"their record", &theirs, false);
        let held = Arc::clone(&ours);
        kept.release(&key, &held);
        assert_eq!(kept.get(&key, b"their record"), Some((theirs, false)));
    }
}
