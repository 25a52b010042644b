//! The set of operations linearized so far, as the search memoises it. The
//! hash is maintained incrementally (an XOR of one mixed word per member) so
//! that memoising a configuration costs a copy, not a rehash of the set.

use std::hash::{Hash, Hasher};

#[derive(Debug, Clone)]
pub(crate) struct Bitset {
    words: Vec<u64>,
    hash: u64,
}

impl Bitset {
    /// An empty set able to hold members `0..capacity`.
    pub(crate) fn new(capacity: usize) -> Self {
        Bitset {
            words: vec![0; capacity.div_ceil(64)],
            hash: 0,
        }
    }

    pub(crate) fn contains(&self, member: usize) -> bool {
        self.words[member / 64] & (1 << (member % 64)) != 0
    }

    pub(crate) fn insert(&mut self, member: usize) {
        assert!(!self.contains(member), "{member} is already in the set");
        self.words[member / 64] |= 1 << (member % 64);
        self.hash ^= mix(member as u64);
    }

    pub(crate) fn remove(&mut self, member: usize) {
        assert!(self.contains(member), "{member} is not in the set");
        self.words[member / 64] &= !(1 << (member % 64));
        self.hash ^= mix(member as u64);
    }
}

impl Bitset {
    /// Whether every member of `self` is in `other` (same capacity).
    pub(crate) fn is_subset(&self, other: &Bitset) -> bool {
        assert_eq!(
            self.words.len(),
            other.words.len(),
            "sets of different capacity"
        );
        self.words
            .iter()
            .zip(&other.words)
            .all(|(a, b)| a & !b == 0)
    }
}

impl PartialEq for Bitset {
    fn eq(&self, other: &Self) -> bool {
        self.hash == other.hash && self.words == other.words
    }
}

impl Eq for Bitset {}

impl Hash for Bitset {
    fn hash<H: Hasher>(&self, state: &mut H) {
        state.write_u64(self.hash);
    }
}

/// SplitMix64's finaliser: spreads consecutive member numbers over all bits.
fn mix(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn equal_sets_built_in_different_orders_are_equal_and_hash_alike() {
        let mut a = Bitset::new(130);
        let mut b = Bitset::new(130);
        for m in [0, 64, 129, 7] {
            a.insert(m);
        }
        for m in [7, 129, 3, 0, 64] {
            b.insert(m);
        }
        b.remove(3);
        assert_eq!(a, b);
        assert_eq!(a.hash, b.hash);
        assert!(a.contains(129) && !a.contains(128));
        b.remove(129);
        assert_ne!(a, b);
    }

    #[test]
    fn subsets() {
        let mut a = Bitset::new(100);
        let mut b = Bitset::new(100);
        assert!(a.is_subset(&b));
        a.insert(70);
        assert!(!a.is_subset(&b));
        b.insert(70);
        b.insert(3);
        assert!(a.is_subset(&b) && !b.is_subset(&a));
        assert!(Bitset::new(0).is_subset(&Bitset::new(0)));
    }

    #[test]
    #[should_panic(expected = "already in the set")]
    fn inserting_twice_is_a_bug() {
        let mut a = Bitset::new(10);
        a.insert(1);
        a.insert(1);
    }
}
