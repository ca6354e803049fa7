//! A fixed set of slots picked by a keyed hash of the store key ([`Stripes`]): the writers'
//! turns (`write/turns.rs`) and the records kept opened (`opened.rs`) each hold one slot per
//! stripe, so that unrelated sessions rarely share one and no map grows with the sessions.

use std::collections::hash_map::RandomState;
use std::hash::BuildHasher;

use crate::store::StoreKey;

/// `len` slots, one picked per store key by a hash keyed at random per process (a client
/// cannot aim its sessions at one stripe).
pub(crate) struct Stripes<T> {
    hasher: RandomState,
    slots: Box<[T]>,
}

impl<T> Stripes<T> {
    /// `len` slots, each made by `slot`.
    pub(crate) fn new(len: usize, slot: impl FnMut(usize) -> T) -> Self {
        Self {
            hasher: RandomState::new(),
            slots: (0..len.max(1)).map(slot).collect(),
        }
    }

    /// The slot of `key`.
    pub(crate) fn of(&self, key: &StoreKey) -> &T {
        let hash = self.hasher.hash_one(key.as_str());
        let at = usize::try_from(hash % self.slots.len() as u64).unwrap_or(0);
        &self.slots[at]
    }

    /// How many slots there are.
    pub(crate) fn len(&self) -> usize {
        self.slots.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_always_gets_the_same_slot() {
        let stripes = Stripes::new(16, |i| i);
        let key = StoreKey::from_string("sess:a".into());
        let first = *stripes.of(&key);
        assert!(first < 16);
        assert!((0..100).all(|_| *stripes.of(&key) == first));
        assert_eq!(stripes.len(), 16);
    }
}
