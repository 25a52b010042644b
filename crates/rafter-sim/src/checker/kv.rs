//! etcd's key-value operations on one key at a time: put, range of one key,
//! delete-range of one key, and a transaction that compares the key's value
//! or mod revision and puts on success. Revisions are global in etcd, so
//! one key's history does not say which numbers its writes get, only that
//! they increase; the model checks what one key can: a read returns the
//! value and mod revision of the last write to take effect, each write's
//! revision exceeds the previous one's, and compares see the current value.
//!
//! A write whose answer was lost gets an unknown revision (above the last
//! known one) that a later read or a successful compare pins down.
//! Cross-key properties (one global revision order) are not checked here.

use std::fmt::Debug;
use std::hash::Hash;
use std::marker::PhantomData;

use super::history::Operation;
use super::model::{partition_by_key, Model, Partition};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KvCompare<V> {
    /// The key exists and holds this value.
    Value(V),
    /// The key's mod revision is this (0: the key does not exist).
    ModRevision(u64),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KvInput<K, V> {
    Put {
        key: K,
        value: V,
    },
    /// A linearizable range over exactly this key.
    Get {
        key: K,
    },
    /// A delete-range over exactly this key.
    Delete {
        key: K,
    },
    /// `if compare then put(value)` with no else branch.
    TxnCas {
        key: K,
        compare: KvCompare<V>,
        value: V,
    },
}

impl<K, V> KvInput<K, V> {
    pub fn key(&self) -> &K {
        match self {
            KvInput::Put { key, .. }
            | KvInput::Get { key }
            | KvInput::Delete { key }
            | KvInput::TxnCas { key, .. } => key,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KvOutput<V> {
    /// The response header's revision: the write's revision.
    Put {
        revision: u64,
    },
    /// The value and its mod revision (`None` and 0 if absent).
    Get {
        value: Option<V>,
        mod_revision: u64,
    },
    Delete {
        deleted: bool,
    },
    /// `revision` (the header's) is only meaningful when `succeeded`.
    TxnCas {
        succeeded: bool,
        revision: u64,
    },
}

/// What is known of the key's last modification revision.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Revision {
    Known(u64),
    /// Unknown, but greater than this.
    Above(u64),
}

impl Revision {
    /// A later write's revision must be greater than this.
    fn floor(self) -> u64 {
        match self {
            Revision::Known(r) => r,
            Revision::Above(r) => r + 1,
        }
    }

    /// Whether the revision can be `r`.
    fn admits(self, r: u64) -> bool {
        match self {
            Revision::Known(k) => k == r,
            Revision::Above(a) => r > a,
        }
    }
}

/// One key: its value (`None`: absent) and last modification revision (of
/// the delete, if absent; it only bounds later revisions then).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct KvState<V> {
    pub value: Option<V>,
    pub revision: Revision,
}

/// The model; partitioned per key.
#[derive(Debug)]
pub struct Kv<K, V> {
    _types: PhantomData<fn() -> (K, V)>,
}

impl<K, V> Kv<K, V> {
    pub fn new() -> Self {
        Kv {
            _types: PhantomData,
        }
    }
}

impl<K, V> Default for Kv<K, V> {
    fn default() -> Self {
        Self::new()
    }
}

impl<V: Clone + Eq> KvState<V> {
    /// The state after a write of `value` (`None`: a delete) at `revision`
    /// (`None`: unknown).
    fn written(&self, value: Option<V>, revision: Option<u64>) -> Option<Self> {
        let revision = match revision {
            Some(r) if r > self.revision.floor() => Revision::Known(r),
            Some(_) => return None,
            None => Revision::Above(self.revision.floor()),
        };
        Some(KvState { value, revision })
    }

    /// The states, one per way the compare can turn out, each with the
    /// outcome and the state as pinned down by that outcome.
    fn compare(&self, compare: &KvCompare<V>) -> Vec<(bool, Self)> {
        match (compare, &self.value) {
            (KvCompare::Value(expected), value) => {
                vec![(value.as_ref() == Some(expected), self.clone())]
            }
            (KvCompare::ModRevision(expected), None) => vec![(*expected == 0, self.clone())],
            (KvCompare::ModRevision(expected), Some(_)) => match self.revision {
                Revision::Known(r) => vec![(r == *expected, self.clone())],
                Revision::Above(_) => {
                    let mut outcomes = vec![(false, self.clone())];
                    if self.revision.admits(*expected) {
                        let pinned = KvState {
                            value: self.value.clone(),
                            revision: Revision::Known(*expected),
                        };
                        outcomes.push((true, pinned));
                    }
                    outcomes
                }
            },
        }
    }
}

impl<K, V> Model for Kv<K, V>
where
    K: Ord + Debug,
    V: Clone + Eq + Hash + Debug,
{
    type Input = KvInput<K, V>;
    type Output = KvOutput<V>;
    type State = KvState<V>;

    fn init(&self) -> KvState<V> {
        KvState {
            value: None,
            revision: Revision::Known(0),
        }
    }

    fn step(
        &self,
        state: &KvState<V>,
        input: &KvInput<K, V>,
        output: Option<&KvOutput<V>>,
        next: &mut Vec<KvState<V>>,
    ) {
        let mismatch = |output: &KvOutput<V>| -> ! { panic!("{input:?} cannot answer {output:?}") };
        match input {
            KvInput::Put { value, .. } => {
                let revision = match output {
                    None => None,
                    Some(KvOutput::Put { revision }) => Some(*revision),
                    Some(other) => mismatch(other),
                };
                next.extend(state.written(Some(value.clone()), revision));
            }
            KvInput::Get { .. } => match output {
                None => next.push(state.clone()),
                Some(KvOutput::Get {
                    value,
                    mod_revision,
                }) => {
                    if value != &state.value {
                        return;
                    }
                    if state.value.is_none() {
                        if *mod_revision == 0 {
                            next.push(state.clone());
                        }
                    } else if state.revision.admits(*mod_revision) {
                        next.push(KvState {
                            value: state.value.clone(),
                            revision: Revision::Known(*mod_revision),
                        });
                    }
                }
                Some(other) => mismatch(other),
            },
            KvInput::Delete { .. } => {
                let present = state.value.is_some();
                match output {
                    None => {}
                    Some(KvOutput::Delete { deleted }) if *deleted == present => {}
                    Some(KvOutput::Delete { .. }) => return,
                    Some(other) => mismatch(other),
                }
                if present {
                    next.extend(state.written(None, None));
                } else {
                    next.push(state.clone());
                }
            }
            KvInput::TxnCas { compare, value, .. } => {
                let claimed = match output {
                    None => None,
                    Some(KvOutput::TxnCas {
                        succeeded,
                        revision,
                    }) => Some((*succeeded, *revision)),
                    Some(other) => mismatch(other),
                };
                for (holds, pinned) in state.compare(compare) {
                    match claimed {
                        Some((succeeded, _)) if succeeded != holds => {}
                        _ if !holds => next.push(pinned),
                        Some((_, revision)) => {
                            next.extend(pinned.written(Some(value.clone()), Some(revision)))
                        }
                        None => next.extend(pinned.written(Some(value.clone()), None)),
                    }
                }
            }
        }
    }

    fn is_read_only(&self, input: &Self::Input) -> bool {
        matches!(input, KvInput::Get { .. })
    }

    fn partition(&self, history: &[Operation<Self::Input, Self::Output>]) -> Vec<Partition> {
        partition_by_key(history, |input| input.key())
    }

    fn describe_operation(&self, input: &Self::Input, output: Option<&Self::Output>) -> String {
        let call = match input {
            KvInput::Put { key, value } => format!("put({key:?}, {value:?})"),
            KvInput::Get { key } => format!("get({key:?})"),
            KvInput::Delete { key } => format!("delete({key:?})"),
            KvInput::TxnCas {
                key,
                compare,
                value,
            } => {
                let test = match compare {
                    KvCompare::Value(v) => format!("value == {v:?}"),
                    KvCompare::ModRevision(r) => format!("mod_revision == {r}"),
                };
                format!("txn({key:?}: if {test} then put {value:?})")
            }
        };
        let answer = match output {
            None => "? (indeterminate)".to_string(),
            Some(KvOutput::Put { revision }) => format!("ok @{revision}"),
            Some(KvOutput::Get {
                value: Some(v),
                mod_revision,
            }) => format!("{v:?} @{mod_revision}"),
            Some(KvOutput::Get { value: None, .. }) => "absent".to_string(),
            Some(KvOutput::Delete { deleted }) => format!("deleted {}", u8::from(*deleted)),
            Some(KvOutput::TxnCas {
                succeeded: true,
                revision,
            }) => format!("succeeded @{revision}"),
            Some(KvOutput::TxnCas {
                succeeded: false, ..
            }) => "failed".to_string(),
        };
        format!("{call} => {answer}")
    }

    fn describe_state(&self, state: &KvState<V>) -> String {
        let revision = match state.revision {
            Revision::Known(r) => format!("@{r}"),
            Revision::Above(r) => format!("@>{r}"),
        };
        match &state.value {
            Some(v) => format!("{v:?} {revision}"),
            None => format!("absent (last change {revision})"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    type M = Kv<&'static str, u64>;

    fn step(
        state: &KvState<u64>,
        input: KvInput<&'static str, u64>,
        output: Option<KvOutput<u64>>,
    ) -> Vec<KvState<u64>> {
        let mut next = Vec::new();
        M::new().step(state, &input, output.as_ref(), &mut next);
        next
    }

    fn at(value: Option<u64>, revision: Revision) -> KvState<u64> {
        KvState { value, revision }
    }

    #[test]
    fn puts_need_increasing_revisions_and_reads_see_them() {
        let s0 = M::new().init();
        let put = |value| KvInput::Put { key: "a", value };
        let s1 = step(&s0, put(1), Some(KvOutput::Put { revision: 5 }));
        assert_eq!(s1, vec![at(Some(1), Revision::Known(5))]);
        assert!(step(&s1[0], put(2), Some(KvOutput::Put { revision: 5 })).is_empty());
        let get = |value, mod_revision| {
            Some(KvOutput::Get {
                value,
                mod_revision,
            })
        };
        assert_eq!(step(&s1[0], KvInput::Get { key: "a" }, get(Some(1), 5)), s1);
        assert!(step(&s1[0], KvInput::Get { key: "a" }, get(Some(1), 4)).is_empty());
        assert!(step(&s0, KvInput::Get { key: "a" }, get(None, 3)).is_empty());
    }

    #[test]
    fn a_lost_answer_leaves_the_revision_to_be_pinned_by_a_read() {
        let s = step(
            &at(Some(1), Revision::Known(5)),
            KvInput::Put { key: "a", value: 2 },
            None,
        );
        assert_eq!(s, vec![at(Some(2), Revision::Above(5))]);
        let get = |r| {
            Some(KvOutput::Get {
                value: Some(2),
                mod_revision: r,
            })
        };
        assert!(step(&s[0], KvInput::Get { key: "a" }, get(5)).is_empty());
        assert_eq!(
            step(&s[0], KvInput::Get { key: "a" }, get(6)),
            vec![at(Some(2), Revision::Known(6))]
        );
        // A later write must leave room for the unknown revision.
        assert!(step(
            &s[0],
            KvInput::Put { key: "a", value: 3 },
            Some(KvOutput::Put { revision: 6 })
        )
        .is_empty());
    }

    #[test]
    fn an_indeterminate_txn_on_an_unknown_revision_may_go_either_way() {
        let s = at(Some(2), Revision::Above(5));
        let txn = KvInput::TxnCas {
            key: "a",
            compare: KvCompare::ModRevision(7),
            value: 3,
        };
        assert_eq!(
            step(&s, txn.clone(), None),
            vec![s.clone(), at(Some(3), Revision::Above(7))]
        );
        let won = Some(KvOutput::TxnCas {
            succeeded: true,
            revision: 9,
        });
        assert_eq!(step(&s, txn, won), vec![at(Some(3), Revision::Known(9))]);
    }

    #[test]
    fn deletes_report_whether_the_key_existed() {
        let s = at(Some(1), Revision::Known(5));
        let del = |deleted| Some(KvOutput::Delete { deleted });
        assert_eq!(
            step(&s, KvInput::Delete { key: "a" }, del(true)),
            vec![at(None, Revision::Above(5))]
        );
        assert!(step(&s, KvInput::Delete { key: "a" }, del(false)).is_empty());
        let txn = KvInput::TxnCas {
            key: "a",
            compare: KvCompare::ModRevision(0),
            value: 3,
        };
        let absent = at(None, Revision::Above(5));
        let won = Some(KvOutput::TxnCas {
            succeeded: true,
            revision: 7,
        });
        assert_eq!(
            step(&absent, txn.clone(), won),
            vec![at(Some(3), Revision::Known(7))]
        );
        let early = Some(KvOutput::TxnCas {
            succeeded: true,
            revision: 6,
        });
        assert!(step(&absent, txn, early).is_empty());
    }
}
