//! A hash table whose values are stamped with instants, and a queue of those stamps in the order
//! they were made, so that what is due goes from the front in amortised O(1) per stamp. It is the
//! shape shared by the listener's de-duplication window ([`crate::seen`]: when each cancel was
//! handed on) and the registry's tombstones (when each dispatch stops cancelling late runs).
//!
//! A value may be stamped again (a cancel sent again, a signal dispatched again) without its
//! earlier queue item being looked for: that item is left in place and, when it reaches the
//! front, the value itself says what it stands for ([`Stamped::expire`]) — nothing, if the value
//! was stamped again since. The queue is ordered by insertion, so the stamps must only grow
//! along it for "what is due" to be a prefix: both users stamp with "now" or "now + a constant".

use std::collections::hash_map::Entry;
use std::collections::{HashMap, VecDeque};
use std::hash::Hash;

/// Hashed on every signal, so with a fast, randomly seeded hasher.
type Table<K, V> = HashMap<K, V, foldhash::fast::RandomState>;

/// A value whose parts carry stamps.
pub(crate) trait Stamped<T> {
    /// Drops the parts stamped exactly `at` (a part stamped again since keeps its newer stamp and
    /// stays); returns how many parts went, and whether none is left, so that the key goes too.
    fn expire(&mut self, at: T) -> (usize, bool);
}

/// The table and its queue of stamps. See the module docs.
#[derive(Debug)]
pub(crate) struct Expiring<K, V, T> {
    values: Table<K, V>,
    queue: VecDeque<(T, K)>,
}

impl<K, V, T> Default for Expiring<K, V, T> {
    fn default() -> Self {
        Expiring { values: Table::default(), queue: VecDeque::new() }
    }
}

impl<K: Hash + Eq + Clone, V: Stamped<T>, T: Copy + PartialOrd> Expiring<K, V, T> {
    /// The key's slot, to look a value up and insert or change it in one hash. A value inserted or
    /// stamped anew must be queued with [`Expiring::queue`].
    pub(crate) fn entry(&mut self, key: K) -> Entry<'_, K, V> {
        self.values.entry(key)
    }

    /// The value of `key`.
    pub(crate) fn get(&self, key: &K) -> Option<&V> {
        self.values.get(key)
    }

    /// The value of `key`, to change it (a change of its stamp must be queued).
    pub(crate) fn get_mut(&mut self, key: &K) -> Option<&mut V> {
        self.values.get_mut(key)
    }

    /// Queues the stamp `at` just given to the value of `key`.
    pub(crate) fn queue(&mut self, at: T, key: K) {
        self.queue.push_back((at, key));
    }

    /// How many keys have a value.
    pub(crate) fn len(&self) -> usize {
        self.values.len()
    }

    /// How many stamps are queued (one per stamping, current or not yet skipped).
    pub(crate) fn queued(&self) -> usize {
        self.queue.len()
    }

    /// Expires every stamp at the front for which `due` holds; returns how many parts went.
    pub(crate) fn expire_while(&mut self, due: impl Fn(T) -> bool) -> usize {
        let mut gone = 0;
        while self.queue.front().is_some_and(|(at, _)| due(*at)) {
            gone += self.expire_oldest().unwrap_or(0);
        }
        gone
    }

    /// Expires the oldest stamp, whether due or not (a table over its bound); returns how many
    /// parts went, or `None` if nothing was queued.
    pub(crate) fn expire_oldest(&mut self) -> Option<usize> {
        let (at, key) = self.queue.pop_front()?;
        let Entry::Occupied(mut slot) = self.values.entry(key) else { return Some(0) };
        let (gone, empty) = slot.get_mut().expire(at);
        if empty {
            slot.remove();
        }
        Some(gone)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A value with one stamp.
    struct One(u32);

    impl Stamped<u32> for One {
        fn expire(&mut self, at: u32) -> (usize, bool) {
            let current = self.0 == at;
            (usize::from(current), current)
        }
    }

    fn stamp(table: &mut Expiring<&'static str, One, u32>, key: &'static str, at: u32) {
        match table.entry(key) {
            Entry::Occupied(mut o) => o.get_mut().0 = at,
            Entry::Vacant(v) => {
                v.insert(One(at));
            }
        }
        table.queue(at, key);
    }

    #[test]
    fn what_is_due_goes_and_a_value_stamped_again_stays_until_its_newer_stamp() {
        let mut table = Expiring::default();
        stamp(&mut table, "a", 1);
        stamp(&mut table, "b", 2);
        stamp(&mut table, "a", 3);
        assert_eq!((table.len(), table.queued()), (2, 3));
        assert_eq!(table.expire_while(|at| at <= 2), 1, "a's first stamp is stale; b goes");
        assert!(table.get(&"a").is_some() && table.get(&"b").is_none());
        assert_eq!(table.expire_while(|at| at <= 2), 0, "nothing else is due");
        assert_eq!(table.expire_oldest(), Some(1));
        assert_eq!((table.len(), table.queued(), table.expire_oldest()), (0, 0, None));
    }

    #[test]
    fn a_value_removed_by_hand_leaves_a_queue_item_that_expires_nothing() {
        let mut table = Expiring::default();
        stamp(&mut table, "a", 1);
        if let Entry::Occupied(o) = table.entry("a") {
            o.remove();
        }
        assert_eq!(table.expire_while(|_| true), 0);
        assert_eq!(table.queued(), 0);
    }
}
