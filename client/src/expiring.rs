//! Records stamped with instants, kept in the order they were stamped and found by key: the shape
//! shared by the listener's de-duplication window ([`crate::seen`]: when each cancel was handed
//! on) and the registry's tombstones (when each dispatch stops cancelling late runs).
//!
//! Both take a record per signal and, in a flood, hold over a hundred thousand, so the layout is
//! chosen for the cache and the work is put off until it is needed:
//!
//! - the records live in a ring in stamping order (appended at the back, expired from the front:
//!   sequential memory), and the hash index holds only each record's sequence number and 32 bits
//!   of its key's hash (8 bytes a slot, about 2 MiB at the most, where a table of whole records
//!   was several times larger and every lookup and eviction a miss to main memory);
//! - a record is appended without being indexed ([`Expiring::append`]); the records appended
//!   since are indexed by the next lookup. Signals are recorded on every hand-off but looked up
//!   rarely (a replay, a registration), so in a flood most records expire before anyone looks,
//!   and are never hashed at all. The lookup after a flood pays for the rest at once: about 5 ms
//!   per 100,000 records left (`make bench memory` times it), once.
//!
//! A record appended for what an older live record stands for ([`Record::replaces`]: the same
//! cancel sent again, the same signal dispatched again) replaces it when it is indexed; the older
//! one leaves a vacancy in the ring, which goes when it reaches the front. The stamps must only
//! grow along the ring for "what is due" to be a prefix: both users stamp with "now" or "now + a
//! constant".

use std::collections::VecDeque;
use std::hash::{BuildHasher, Hash};

use hashbrown::HashTable;

/// Hashed on every signal, so with a fast, randomly seeded hasher.
type Hasher = foldhash::fast::RandomState;

/// Where a live record is: its sequence number, valid until the record moves or goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Slot(Seq);

/// A stamping's sequence number. 32 bits halve the index; they wrap, and stay unambiguous while
/// fewer than 2^32 stampings are held at once (the users bound theirs to a few hundred thousand).
type Seq = u32;

/// One stamping: its stamp, its key's hash, and the record, or nothing if the record was stamped
/// again or removed since.
#[derive(Debug)]
struct Stamping<K, V, T> {
    at: T,
    hash: Hash32,
    record: Option<(K, V)>,
}

/// A key's hash, 32 bits of it: kept in the index beside the sequence number, so that growing the
/// index rehashes without reading the ring, and a probe reads the ring only on a true match.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Hash32(u32);

impl Hash32 {
    /// The hash the index is probed with: the 32 bits twice, as hashbrown takes its bucket from
    /// the low bits and its tag from the top ones.
    fn wide(self) -> u64 {
        (u64::from(self.0) << 32) | u64::from(self.0)
    }
}

/// An entry of the index: a live record's sequence number and its key's hash.
type Indexed = (Seq, Hash32);

/// What a record's value says about the records of the same key.
pub(crate) trait Record {
    /// Whether this value, appended later, stands for what `older` stands for, and replaces it.
    fn replaces(&self, older: &Self) -> bool;

    /// Takes over from `older`, which this value replaces.
    fn succeed(&mut self, older: Self);
}

/// The ring and its index. See the module docs.
#[derive(Debug)]
pub(crate) struct Expiring<K, V, T> {
    /// The sequence numbers of the live indexed records, hashed by key.
    index: HashTable<Indexed>,
    /// Every stamping not yet expired, oldest first; `ring[i]` has sequence number `first + i`.
    ring: VecDeque<Stamping<K, V, T>>,
    first: Seq,
    /// How many stampings at the front of the ring have been through the index; the rest were
    /// appended since the last lookup.
    indexed: usize,
    hasher: Hasher,
}

impl<K, V, T> Default for Expiring<K, V, T> {
    fn default() -> Self {
        Expiring {
            index: HashTable::new(),
            ring: VecDeque::new(),
            first: 0,
            indexed: 0,
            hasher: Hasher::default(),
        }
    }
}

impl<K: Hash + Eq, V: Record, T: Copy + PartialOrd> Expiring<K, V, T> {
    fn position(&self, seq: Seq) -> usize {
        position_of(self.first, seq)
    }

    fn stamping(&self, seq: Seq) -> &Stamping<K, V, T> {
        let position = self.position(seq);
        debug_assert!(position < self.ring.len(), "sequence number {seq} is not in the ring");
        &self.ring[position]
    }

    fn hash(&self, key: &K) -> Hash32 {
        // The low half of a 64-bit hash (foldhash mixes its output fully).
        Hash32(self.hasher.hash_one(key) as u32)
    }

    /// Adds a record stamped `at` (no earlier than any stamp yet to expire; see the module docs).
    /// It is indexed, and replaces an older record it stands for, at the next lookup.
    pub(crate) fn append(&mut self, key: K, value: V, at: T) {
        let hash = self.hash(&key);
        self.ring.push_back(Stamping { at, hash, record: Some((key, value)) });
    }

    /// Indexes the records appended since the last lookup, in order.
    fn index_appended(&mut self) {
        while self.indexed < self.ring.len() {
            let position = self.indexed;
            self.indexed += 1;
            let seq = self.first.wrapping_add(position as Seq);
            let stamping = &mut self.ring[position];
            let hash = stamping.hash;
            let Some((key, mut value)) = stamping.record.take() else { continue };
            let (ring, first) = (&self.ring, self.first);
            let older = self.index.find_mut(hash.wide(), |&(s, h)| {
                h == hash
                    && ring[position_of(first, s)]
                        .record
                        .as_ref()
                        .is_some_and(|(k, v)| *k == key && value.replaces(v))
            });
            match older {
                Some(indexed) => {
                    let older_position = position_of(first, indexed.0);
                    indexed.0 = seq;
                    let (_, older_value) =
                        self.ring[older_position].record.take().expect("indexed records are live");
                    value.succeed(older_value);
                }
                None => {
                    self.index.insert_unique(hash.wide(), (seq, hash), |&(_, h)| h.wide());
                }
            }
            self.ring[position].record = Some((key, value));
        }
    }

    /// The first live record with `key` whose value satisfies `matching`.
    pub(crate) fn find(&mut self, key: &K, mut matching: impl FnMut(&V) -> bool) -> Option<Slot> {
        self.index_appended();
        let hash = self.hash(key);
        self.index
            .find(hash.wide(), |&(seq, h)| {
                h == hash && self.stamping(seq).record.as_ref().is_some_and(|(k, v)| k == key && matching(v))
            })
            .map(|&(seq, _)| Slot(seq))
    }

    /// The stamps and values of the live records with `key`.
    pub(crate) fn with_key<'a>(&'a mut self, key: &'a K) -> impl Iterator<Item = (T, &'a V)> + 'a {
        self.index_appended();
        let this = &*self;
        let hash = this.hash(key);
        this.index.iter_hash(hash.wide()).filter_map(move |&(seq, h)| {
            if h != hash {
                return None;
            }
            let stamping = this.stamping(seq);
            match &stamping.record {
                Some((k, v)) if k == key => Some((stamping.at, v)),
                _ => None,
            }
        })
    }

    /// The stamp of the record at `slot`.
    pub(crate) fn at(&self, slot: Slot) -> T {
        self.stamping(slot.0).at
    }

    /// The value of the record at `slot`.
    #[cfg(test)]
    pub(crate) fn get(&self, slot: Slot) -> &V {
        &self.stamping(slot.0).record.as_ref().expect("a slot names a live record").1
    }

    /// The value of the record at `slot`, to change it.
    pub(crate) fn get_mut(&mut self, slot: Slot) -> &mut V {
        let position = self.position(slot.0);
        &mut self.ring[position].record.as_mut().expect("a slot names a live record").1
    }

    /// Removes the record at `slot`; returns its key and value.
    pub(crate) fn remove(&mut self, slot: Slot) -> (K, V) {
        let position = self.position(slot.0);
        let stamping = &mut self.ring[position];
        let (hash, record) = (stamping.hash, stamping.record.take().expect("a slot names a live record"));
        self.unindex(hash, slot.0);
        record
    }

    fn unindex(&mut self, hash: Hash32, seq: Seq) {
        let found = self.index.find_entry(hash.wide(), |&(s, _)| s == seq).map(|entry| entry.remove());
        debug_assert!(found.is_ok(), "a live indexed record {seq} is in the index");
    }

    /// How many live records there are (indexing what was appended since the last lookup).
    pub(crate) fn len(&mut self) -> usize {
        self.index_appended();
        // One index entry per live record.
        self.index.len()
    }

    /// How many stampings are held: the records, those appended since the last lookup, and the
    /// vacancies not yet expired.
    pub(crate) fn stampings(&self) -> usize {
        self.ring.len()
    }

    /// Expires the stampings at the front for which `due` holds; returns how many records went.
    pub(crate) fn expire_while(&mut self, due: impl Fn(T) -> bool) -> usize {
        let mut gone = 0;
        while self.ring.front().is_some_and(|s| due(s.at)) {
            gone += usize::from(self.expire_oldest().unwrap_or(false));
        }
        gone
    }

    /// Expires the oldest stamping, whether due or not (a table over its bound); returns whether
    /// it held a record, or `None` if there was none.
    pub(crate) fn expire_oldest(&mut self) -> Option<bool> {
        let stamping = self.ring.pop_front()?;
        let seq = self.first;
        self.first = self.first.wrapping_add(1);
        let held = stamping.record.is_some();
        if self.indexed > 0 {
            self.indexed -= 1;
            if held {
                self.unindex(stamping.hash, seq);
            }
        }
        Some(held)
    }
}

/// Where sequence number `seq` sits in a ring whose front is `first`.
fn position_of(first: Seq, seq: Seq) -> usize {
    seq.wrapping_sub(first) as usize
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A test value: a tag (records of a key with the same tag stand for the same thing) and how
    /// many records it replaced.
    #[derive(Debug, PartialEq, Eq)]
    struct Tagged {
        tag: u32,
        replaced: u32,
    }

    impl Record for Tagged {
        fn replaces(&self, older: &Self) -> bool {
            self.tag == older.tag
        }

        fn succeed(&mut self, older: Self) {
            self.replaced = older.replaced + 1;
        }
    }

    fn tagged(tag: u32) -> Tagged {
        Tagged { tag, replaced: 0 }
    }

    type Table = Expiring<&'static str, Tagged, u32>;

    #[test]
    fn what_is_due_goes_and_a_record_appended_again_stays_until_its_newer_stamp() {
        let mut table = Table::default();
        table.append("a", tagged(0), 1);
        table.append("b", tagged(0), 2);
        table.append("a", tagged(0), 3);
        assert_eq!((table.len(), table.stampings()), (2, 3));
        let a = table.find(&"a", |_| true).expect("a");
        assert_eq!(
            (table.at(a), table.get(a)),
            (3, &Tagged { tag: 0, replaced: 1 }),
            "a replaced at its newer stamp"
        );
        assert_eq!(table.expire_while(|at| at <= 2), 1, "a's first stamping is a vacancy; b goes");
        assert!(table.find(&"a", |_| true).is_some() && table.find(&"b", |_| true).is_none());
        assert_eq!(table.expire_while(|at| at <= 2), 0, "nothing else is due");
        assert_eq!(table.expire_oldest(), Some(true));
        assert_eq!((table.len(), table.stampings(), table.expire_oldest()), (0, 0, None));
    }

    #[test]
    fn records_that_expire_before_anyone_looks_are_never_indexed() {
        let mut table = Table::default();
        table.append("a", tagged(0), 1);
        table.append("b", tagged(0), 2);
        assert_eq!(table.expire_while(|at| at <= 1), 1);
        assert!(table.index.is_empty(), "nothing looked up yet");
        assert_eq!(table.len(), 1);
        assert!(table.find(&"b", |_| true).is_some() && table.find(&"a", |_| true).is_none());
        // Half indexed, half appended since: both expire cleanly.
        table.append("c", tagged(0), 3);
        assert_eq!(table.expire_while(|_| true), 2);
        assert_eq!((table.len(), table.stampings()), (0, 0));
        assert!(table.index.is_empty());
    }

    #[test]
    fn a_record_removed_by_hand_leaves_a_vacancy_that_expires_nothing() {
        let mut table = Table::default();
        table.append("a", tagged(7), 1);
        let a = table.find(&"a", |_| true).expect("a");
        assert_eq!(table.remove(a), ("a", tagged(7)));
        assert_eq!(table.len(), 0);
        assert_eq!(table.expire_while(|_| true), 0);
        assert_eq!(table.stampings(), 0);
    }

    #[test]
    fn records_sharing_a_key_are_told_apart_by_their_values() {
        let mut table = Table::default();
        table.append("a", tagged(10), 1);
        table.append("a", tagged(20), 2);
        table.append("b", tagged(30), 3);
        table.append("a", tagged(10), 4);
        let mut a: Vec<_> = table.with_key(&"a").map(|(at, v)| (at, v.tag)).collect();
        a.sort_unstable();
        assert_eq!(a, [(2, 20), (4, 10)], "the second 10 replaced the first");
        let twenty = table.find(&"a", |v| v.tag == 20).expect("the 20");
        assert_eq!(table.at(twenty), 2);
        assert_eq!(table.expire_while(|at| at <= 2), 1, "the vacancy of the first 10, then the 20");
        assert_eq!(table.with_key(&"a").count(), 1);
        assert_eq!(table.find(&"a", |v| v.tag == 20), None);
        assert_eq!(table.len(), 2);
    }

    #[test]
    fn sequence_numbers_wrap() {
        let mut table = Table { first: Seq::MAX - 2, ..Table::default() };
        for (n, key) in ["a", "b", "c", "d", "e", "f"].into_iter().enumerate() {
            table.append(key, tagged(0), n as u32);
            let _ = table.len();
        }
        assert_eq!(table.expire_while(|at| at < 4), 4);
        assert!(table.find(&"e", |_| true).is_some() && table.find(&"f", |_| true).is_some());
        assert!(table.find(&"d", |_| true).is_none());
        assert_eq!(table.len(), 2);
    }

    #[test]
    fn a_flood_through_a_bounded_table_keeps_the_index_and_the_ring_in_step() {
        // Many records appended, some again, some removed, looked up at irregular times, the
        // oldest expired past a bound: every live record is found at its latest stamp, once.
        let mut table: Expiring<u64, Tagged, u32> = Expiring::default();
        let mut last = std::collections::HashMap::new();
        for n in 0..50_000_u32 {
            let key = u64::from(n % 7_000);
            if n % 5 == 0 {
                if let Some(slot) = table.find(&key, |_| true) {
                    table.remove(slot);
                    last.remove(&key);
                }
            } else {
                table.append(key, tagged(0), n);
                last.insert(key, n);
            }
            while table.stampings() > 4_000 {
                table.expire_oldest();
            }
        }
        let oldest = table.ring.front().map(|s| s.at).expect("records");
        last.retain(|_, at| *at >= oldest);
        assert_eq!(table.len(), last.len());
        for (key, at) in &last {
            let slot = table.find(key, |_| true).expect("live");
            assert_eq!(table.at(slot), *at, "key {key} at its latest stamp");
            assert_eq!(table.with_key(key).count(), 1, "key {key} once");
        }
    }
}
