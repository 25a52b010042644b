//! What the checker checks against: a sequential specification of the
//! object (a model), and how a history splits into independent parts. The
//! search knows nothing about registers or key-value stores; everything it
//! needs to know about them is behind this trait.

use std::collections::BTreeMap;
use std::fmt::Debug;
use std::hash::Hash;

use super::history::Operation;

/// A sequential specification.
pub trait Model {
    /// Equal inputs must mean the same operation (the search treats lost
    /// operations with equal inputs as interchangeable).
    type Input: Debug + PartialEq;
    type Output: Debug;
    /// Model states are memoised together with the set of operations already
    /// linearized, so they must be cheap to clone, compare and hash.
    type State: Clone + Eq + Hash + Debug;

    /// The state before any operation.
    fn init(&self) -> Self::State;

    /// Pushes onto `next` every state the object can be in after `input` is
    /// applied in `state` and answers `output`, and nothing if that is
    /// impossible. `output == None` means the answer was never seen (an
    /// indeterminate operation that took effect): any answer is allowed.
    /// Deterministic models push at most one state; `next` is empty on entry.
    fn step(
        &self,
        state: &Self::State,
        input: &Self::Input,
        output: Option<&Self::Output>,
        next: &mut Vec<Self::State>,
    );

    /// Whether `input` never changes the state (a read). An indeterminate
    /// operation of that kind constrains nothing, so the search leaves it
    /// out.
    fn is_read_only(&self, _input: &Self::Input) -> bool {
        false
    }

    /// Whether the operation `input` answering `output` could still be
    /// linearized in `state` or in some state reachable from it. The search
    /// asks this of the operation whose return it is stuck at before it
    /// tries an indeterminate operation there: a state from which that
    /// operation can never be placed is a dead end, however many more
    /// indeterminate operations follow. Answer `false` only when that is
    /// certain (for example a revision the answer reports is already
    /// behind the state's); the default `true` is always sound.
    fn can_still_linearize(
        &self,
        _state: &Self::State,
        _input: &Self::Input,
        _output: &Self::Output,
    ) -> bool {
        true
    }

    /// Splits a history into parts that can be checked independently (for
    /// example one per key, since a history is linearizable iff each key's
    /// sub-history is). The default checks the history as a whole, which is
    /// what a model whose operations span several keys needs.
    fn partition(&self, history: &[Operation<Self::Input, Self::Output>]) -> Vec<Partition> {
        vec![Partition {
            label: "whole history".to_string(),
            ops: (0..history.len()).collect(),
        }]
    }

    /// How an operation is shown in a violation report.
    fn describe_operation(&self, input: &Self::Input, output: Option<&Self::Output>) -> String {
        match output {
            Some(output) => format!("{input:?} -> {output:?}"),
            None => format!("{input:?} -> ?"),
        }
    }

    /// How a state is shown in a violation report.
    fn describe_state(&self, state: &Self::State) -> String {
        format!("{state:?}")
    }
}

/// A part of a history checked on its own: indices into the history, in
/// history order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Partition {
    /// Names the part in reports (for example the key).
    pub label: String,
    pub ops: Vec<usize>,
}

/// One partition per distinct key, ordered by key so that checking (and so
/// which violation is reported first) is deterministic.
pub fn partition_by_key<'h, I, O, K: Ord + Debug>(
    history: &'h [Operation<I, O>],
    key_of: impl Fn(&'h I) -> K,
) -> Vec<Partition> {
    partition_by_keys(history, |input| std::iter::once(key_of(input)))
}

/// One partition per connected component of keys, for operations that
/// touch several keys: two operations are in the same part if they touch a
/// common key, directly or through other operations. Parts share no key, so
/// for an object whose keys are independent a history is linearizable iff
/// each part is; where keys share state (etcd's global revision), checking
/// each part on its own is sound but misses what only links parts. A
/// history of single-key operations gets one part per key. Parts are
/// ordered by their smallest key, and an operation that touches no key at
/// all gets a part of its own at the end ("no key").
pub fn partition_by_keys<'h, I, O, K, Keys>(
    history: &'h [Operation<I, O>],
    keys_of: impl Fn(&'h I) -> Keys,
) -> Vec<Partition>
where
    K: Ord + Debug,
    Keys: IntoIterator<Item = K>,
{
    // Union-find over the keys, numbered in order of first appearance.
    fn root(parent: &mut [usize], mut x: usize) -> usize {
        while parent[x] != x {
            parent[x] = parent[parent[x]];
            x = parent[x];
        }
        x
    }
    let mut number: BTreeMap<K, usize> = BTreeMap::new();
    let mut parent: Vec<usize> = Vec::new();
    let mut first_key: Vec<Option<usize>> = Vec::with_capacity(history.len());
    for op in history {
        let mut first = None;
        for key in keys_of(&op.input) {
            let fresh = parent.len();
            let k = *number.entry(key).or_insert(fresh);
            if k == fresh {
                parent.push(fresh);
            }
            match first {
                None => first = Some(k),
                Some(f) => {
                    let (a, b) = (root(&mut parent, f), root(&mut parent, k));
                    parent[a.max(b)] = a.min(b);
                }
            }
        }
        first_key.push(first);
    }
    // Parts in the order of their smallest key.
    let mut part_of_root: Vec<Option<usize>> = vec![None; parent.len()];
    let mut parts: Vec<(Vec<&K>, Vec<usize>)> = Vec::new();
    for (key, &k) in &number {
        let r = root(&mut parent, k);
        let part = *part_of_root[r].get_or_insert_with(|| {
            parts.push((Vec::new(), Vec::new()));
            parts.len() - 1
        });
        parts[part].0.push(key);
    }
    let mut keyless = Vec::new();
    for (index, first) in first_key.iter().enumerate() {
        match first {
            Some(k) => {
                let r = root(&mut parent, *k);
                let part = part_of_root[r].expect("every key is in a part");
                parts[part].1.push(index);
            }
            None => keyless.push(index),
        }
    }
    let mut partitions: Vec<Partition> = parts
        .into_iter()
        .map(|(keys, ops)| Partition {
            label: match keys.as_slice() {
                [key] => format!("key {key:?}"),
                _ => format!("keys {keys:?}"),
            },
            ops,
        })
        .collect();
    if !keyless.is_empty() {
        partitions.push(Partition {
            label: "no key".to_string(),
            ops: keyless,
        });
    }
    partitions
}
