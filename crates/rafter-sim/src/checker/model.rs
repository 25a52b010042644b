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
    let mut by_key: BTreeMap<K, Vec<usize>> = BTreeMap::new();
    for (index, op) in history.iter().enumerate() {
        by_key.entry(key_of(&op.input)).or_default().push(index);
    }
    by_key
        .into_iter()
        .map(|(key, ops)| Partition {
            label: format!("key {key:?}"),
            ops,
        })
        .collect()
}
