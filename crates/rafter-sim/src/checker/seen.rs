//! The memo of configurations the search has entered, with subsumption.
//!
//! A configuration is (determinate operations linearized, model state,
//! indeterminate operations linearized). Indeterminate operations never
//! have to be linearized and never constrain when others can be, so a
//! configuration that has used *more* of them than an entered one with the
//! same determinate set and state can only do less: every way to finish
//! from it is also a way to finish from the entered one. Skipping such
//! configurations, not only exact repeats, is what keeps a history with
//! many lost writes from costing 2^(lost writes) when it is not
//! linearizable.

use std::collections::hash_map::DefaultHasher;
use std::collections::HashMap;
use std::hash::{Hash, Hasher};

use super::bitset::Bitset;

struct Entry<S> {
    determinate: Bitset,
    state: S,
    /// Indeterminate sets entered with, none a subset of another.
    indeterminate: Vec<Bitset>,
}

pub(crate) struct Seen<S> {
    /// Keyed by a hash of (determinate set, state); collisions share a
    /// bucket.
    buckets: HashMap<u64, Vec<Entry<S>>>,
}

impl<S: Clone + Eq + Hash> Seen<S> {
    pub(crate) fn new() -> Self {
        Seen {
            buckets: HashMap::new(),
        }
    }

    /// Records the configuration and returns true, unless it is subsumed by
    /// one recorded before (same determinate set and state, a subset of its
    /// indeterminate operations).
    pub(crate) fn enter(
        &mut self,
        determinate: &Bitset,
        state: &S,
        indeterminate: &Bitset,
    ) -> bool {
        let mut hasher = DefaultHasher::new();
        determinate.hash(&mut hasher);
        state.hash(&mut hasher);
        let bucket = self.buckets.entry(hasher.finish()).or_default();
        match bucket
            .iter_mut()
            .find(|e| e.determinate == *determinate && e.state == *state)
        {
            Some(entry) => {
                if entry
                    .indeterminate
                    .iter()
                    .any(|old| old.is_subset(indeterminate))
                {
                    return false;
                }
                entry
                    .indeterminate
                    .retain(|old| !indeterminate.is_subset(old));
                entry.indeterminate.push(indeterminate.clone());
            }
            None => bucket.push(Entry {
                determinate: determinate.clone(),
                state: state.clone(),
                indeterminate: vec![indeterminate.clone()],
            }),
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(capacity: usize, members: &[usize]) -> Bitset {
        let mut s = Bitset::new(capacity);
        for &m in members {
            s.insert(m);
        }
        s
    }

    #[test]
    fn supersets_of_indeterminate_operations_are_subsumed() {
        let mut seen = Seen::new();
        let d = set(4, &[0, 1]);
        assert!(seen.enter(&d, &7u8, &set(3, &[1])));
        assert!(!seen.enter(&d, &7u8, &set(3, &[1])), "an exact repeat");
        assert!(
            !seen.enter(&d, &7u8, &set(3, &[1, 2])),
            "did more with more"
        );
        assert!(seen.enter(&d, &8u8, &set(3, &[1, 2])), "another state");
        assert!(seen.enter(&d, &7u8, &set(3, &[2])), "not comparable");
        assert!(seen.enter(&d, &7u8, &set(3, &[])), "fewer used");
        assert!(!seen.enter(&d, &7u8, &set(3, &[0])));
        assert!(
            seen.enter(&set(4, &[0]), &7u8, &set(3, &[1])),
            "another set"
        );
    }
}
