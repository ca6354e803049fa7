//! Turns for the writers of one session within this process ([`WriteLocks`]), and the [`Turn`]
//! a writer holds meanwhile, which remembers the record its writer saved for the next one.

use std::fmt;

use tokio::sync::{Mutex, MutexGuard};

use crate::session::stripes::Stripes;
use crate::store::StoreKey;

/// Stripes of [`WriteLocks`]: enough that unrelated sessions rarely share one (a shared stripe
/// makes them wait for each other's round trip, and forget each other's record).
const WRITE_STRIPES: usize = 1024;
/// The largest record a stripe remembers, so that all of them together stay under 8 MiB; a
/// larger one is not remembered, and the next writer's compare-and-set fetches it instead.
const MAX_REMEMBERED_RECORD: usize = 8 * 1024;

/// What a stripe remembers: the key and record its last writer saved, if that writer succeeded.
type Remembered = Option<(StoreKey, Vec<u8>)>;

/// Turns for the writers of one session within this process, by stripe of its key, each
/// remembering the record its last writer saved.
pub(crate) struct WriteLocks {
    stripes: Stripes<Mutex<Remembered>>,
}

impl WriteLocks {
    pub(crate) fn new() -> Self {
        Self {
            stripes: Stripes::new(WRITE_STRIPES, |_| Mutex::new(None)),
        }
    }

    /// Waits for the turn of `key`'s stripe.
    pub(super) async fn turn(&self, key: &StoreKey) -> Turn<'_> {
        Turn {
            last: self.stripes.of(key).lock().await,
            remembered: false,
        }
    }
}

impl fmt::Debug for WriteLocks {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WriteLocks")
            .field("stripes", &self.stripes.len())
            .finish()
    }
}

/// One writer's turn on its stripe. A turn that ends without [`Turn::remember`] (an error, a
/// session that ended, too many conflicts) forgets the stripe's record: the next writer then
/// starts from the record it loaded, and compare-and-set hands it the live one.
pub(super) struct Turn<'a> {
    last: MutexGuard<'a, Remembered>,
    remembered: bool,
}

impl Turn<'_> {
    /// The record the last writer of this stripe saved, when it was `key`'s.
    pub(super) fn last_written(&self, key: &StoreKey) -> Option<&[u8]> {
        match &*self.last {
            Some((written, record)) if written == key => Some(record),
            _ => None,
        }
    }

    /// Remembers `record`, just saved under `key`, for the next writer (when it is small
    /// enough to keep).
    pub(super) fn remember(&mut self, key: StoreKey, record: Vec<u8>) {
        *self.last = (record.len() <= MAX_REMEMBERED_RECORD).then_some((key, record));
        self.remembered = true;
    }

    /// Forgets the stripe's record now.
    pub(super) fn forget(&mut self) {
        *self.last = None;
        self.remembered = false;
    }
}

impl Drop for Turn<'_> {
    fn drop(&mut self) {
        if !self.remembered {
            self.forget();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(name: &str) -> StoreKey {
        StoreKey::from_string(name.to_owned())
    }

    #[tokio::test]
    async fn a_turn_hands_the_next_writer_what_it_remembered_and_forgets_otherwise() {
        let small = b"sealed".to_vec();
        let large = vec![0; MAX_REMEMBERED_RECORD + 1];
        // (what the first turn does, what the next turn of the same key finds)
        type FirstTurn = fn(&mut Turn<'_>, Vec<u8>, Vec<u8>);
        let cases: [(&str, FirstTurn, Option<&[u8]>); 4] = [
            (
                "remember",
                |t, s, _| t.remember(key("sess:a"), s),
                Some(&b"sealed"[..]),
            ),
            ("nothing: dropped", |_, _, _| {}, None),
            (
                "remember, then forget",
                |t, s, _| {
                    t.remember(key("sess:a"), s);
                    t.forget();
                },
                None,
            ),
            (
                "remember a record too large",
                |t, _, l| t.remember(key("sess:a"), l),
                None,
            ),
        ];
        for (name, first, found) in cases {
            let locks = WriteLocks::new();
            {
                let mut turn = locks.turn(&key("sess:a")).await;
                assert_eq!(turn.last_written(&key("sess:a")), None, "{name}");
                first(&mut turn, small.clone(), large.clone());
            }
            let next = locks.turn(&key("sess:a")).await;
            assert_eq!(next.last_written(&key("sess:a")), found, "{name}");
        }
    }

    #[tokio::test]
    async fn a_remembered_record_is_only_handed_to_writers_of_its_key() {
        // One stripe: both keys share it.
        let locks = WriteLocks {
            stripes: Stripes::new(1, |_| Mutex::new(None)),
        };
        locks
            .turn(&key("sess:a"))
            .await
            .remember(key("sess:a"), b"a's".to_vec());
        let turn = locks.turn(&key("sess:b")).await;
        assert_eq!(turn.last_written(&key("sess:b")), None);
        assert_eq!(turn.last_written(&key("sess:a")), Some(&b"a's"[..]));
    }
}
