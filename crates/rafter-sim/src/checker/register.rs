//! A register per key with get, put and compare-and-swap: the simplest model
//! of a key-value store, and the one the simulator's clients use. Each key
//! is an independent register, so the history is checked one key at a time.

use std::fmt::Debug;
use std::hash::Hash;
use std::marker::PhantomData;

use super::history::Operation;
use super::model::{partition_by_key, Model, Partition};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RegisterInput<K, V> {
    Get {
        key: K,
    },
    Put {
        key: K,
        value: V,
    },
    /// Sets `new` iff the current value is `expected` (`None`: the key is
    /// absent).
    Cas {
        key: K,
        expected: Option<V>,
        new: V,
    },
}

impl<K, V> RegisterInput<K, V> {
    pub fn key(&self) -> &K {
        match self {
            RegisterInput::Get { key }
            | RegisterInput::Put { key, .. }
            | RegisterInput::Cas { key, .. } => key,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RegisterOutput<V> {
    /// The value read (`None`: absent).
    Get(Option<V>),
    Put,
    /// Whether the swap happened.
    Cas(bool),
}

/// The model. Its state is the value of the one key a partition holds.
#[derive(Debug)]
pub struct Register<K, V> {
    _types: PhantomData<fn() -> (K, V)>,
}

impl<K, V> Register<K, V> {
    pub fn new() -> Self {
        Register {
            _types: PhantomData,
        }
    }
}

impl<K, V> Default for Register<K, V> {
    fn default() -> Self {
        Self::new()
    }
}

impl<K, V> Model for Register<K, V>
where
    K: Ord + Debug,
    V: Clone + Eq + Hash + Debug,
{
    type Input = RegisterInput<K, V>;
    type Output = RegisterOutput<V>;
    type State = Option<V>;

    fn init(&self) -> Option<V> {
        None
    }

    fn step(
        &self,
        state: &Option<V>,
        input: &RegisterInput<K, V>,
        output: Option<&RegisterOutput<V>>,
        next: &mut Vec<Option<V>>,
    ) {
        match (input, output) {
            (RegisterInput::Get { .. }, None) => next.push(state.clone()),
            (RegisterInput::Get { .. }, Some(RegisterOutput::Get(read))) => {
                if read == state {
                    next.push(state.clone());
                }
            }
            (RegisterInput::Put { value, .. }, None | Some(RegisterOutput::Put)) => {
                next.push(Some(value.clone()))
            }
            (RegisterInput::Cas { expected, new, .. }, output) => {
                let swaps = expected == state;
                let claimed = match output {
                    None => swaps,
                    Some(RegisterOutput::Cas(swapped)) => *swapped,
                    Some(other) => panic!("{input:?} cannot answer {other:?}"),
                };
                if claimed == swaps {
                    next.push(if swaps {
                        Some(new.clone())
                    } else {
                        state.clone()
                    });
                }
            }
            (input, Some(output)) => panic!("{input:?} cannot answer {output:?}"),
        }
    }

    fn is_read_only(&self, input: &Self::Input) -> bool {
        matches!(input, RegisterInput::Get { .. })
    }

    fn partition(&self, history: &[Operation<Self::Input, Self::Output>]) -> Vec<Partition> {
        partition_by_key(history, |input| input.key())
    }

    fn describe_operation(&self, input: &Self::Input, output: Option<&Self::Output>) -> String {
        let call = match input {
            RegisterInput::Get { key } => format!("get({key:?})"),
            RegisterInput::Put { key, value } => format!("put({key:?}, {value:?})"),
            RegisterInput::Cas { key, expected, new } => {
                format!("cas({key:?}, {} -> {new:?})", show(expected.as_ref()))
            }
        };
        let answer = match output {
            None => "? (indeterminate)".to_string(),
            Some(RegisterOutput::Get(value)) => show(value.as_ref()),
            Some(RegisterOutput::Put) => "ok".to_string(),
            Some(RegisterOutput::Cas(swapped)) => swapped.to_string(),
        };
        format!("{call} => {answer}")
    }

    fn describe_state(&self, state: &Option<V>) -> String {
        show(state.as_ref())
    }
}

fn show<V: Debug>(value: Option<&V>) -> String {
    value.map_or("absent".to_string(), |v| format!("{v:?}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    type R = Register<u8, u64>;

    fn step(
        state: Option<u64>,
        input: RegisterInput<u8, u64>,
        output: Option<RegisterOutput<u64>>,
    ) -> Vec<Option<u64>> {
        let mut next = Vec::new();
        R::new().step(&state, &input, output.as_ref(), &mut next);
        next
    }

    #[test]
    fn reads_must_see_the_value() {
        let get = RegisterInput::Get { key: 0 };
        assert_eq!(
            step(Some(1), get.clone(), Some(RegisterOutput::Get(Some(1)))),
            vec![Some(1)]
        );
        assert!(step(Some(1), get.clone(), Some(RegisterOutput::Get(None))).is_empty());
        assert_eq!(step(Some(1), get, None), vec![Some(1)]);
    }

    #[test]
    fn cas_swaps_exactly_when_expected_matches() {
        let cas = |expected| RegisterInput::Cas {
            key: 0,
            expected,
            new: 9,
        };
        assert_eq!(
            step(None, cas(None), Some(RegisterOutput::Cas(true))),
            vec![Some(9)]
        );
        assert!(step(Some(1), cas(None), Some(RegisterOutput::Cas(true))).is_empty());
        assert_eq!(
            step(Some(1), cas(None), Some(RegisterOutput::Cas(false))),
            vec![Some(1)]
        );
        assert!(step(Some(1), cas(Some(1)), Some(RegisterOutput::Cas(false))).is_empty());
        assert_eq!(step(Some(1), cas(Some(1)), None), vec![Some(9)]);
        assert_eq!(step(Some(2), cas(Some(1)), None), vec![Some(2)]);
    }

    #[test]
    #[should_panic(expected = "cannot answer")]
    fn a_mismatched_answer_is_a_bug_in_the_history() {
        step(
            None,
            RegisterInput::Put { key: 0, value: 1 },
            Some(RegisterOutput::Cas(true)),
        );
    }
}
