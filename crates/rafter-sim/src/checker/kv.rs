//! etcd's key-value operations as a sequential model, so that histories of
//! a real (or simulated) etcd-compatible store can be checked with etcd's
//! own semantics: put, range and delete-range of one key, a range over
//! several keys, and transactions that compare keys' values or mod
//! revisions and then put, delete or read several keys (`TxnCas`, the
//! one-key compare-and-put, is a shorthand for the common case).
//!
//! Revisions are global in etcd: every request that changes the store bumps
//! the store's revision by one, all of a transaction's writes share it, a
//! key's mod revision is that of the last write to it, and every answer's
//! header carries the revision it was served at (for a write, its own). How
//! much of that a history can check depends on whether it holds every write:
//!
//! - [`Kv::new`] checks each connected component of keys on its own
//!   (operations that touch a common key are linked; a multi-key operation
//!   links all its keys), so a history of single-key operations is checked
//!   key by key, as cheaply as a per-key register. A component does not see
//!   writes to other keys, which bump the revision too, so its state holds a
//!   lower bound of the store's revision: in the order the component's
//!   operations take effect, each write's revision exceeds every revision
//!   seen before it, a read's header revision is at least that, and a
//!   key's mod revision is the revision of the write that set it.
//! - [`Kv::whole_store`]: the history holds every request that changed the
//!   store, starting from an empty store at revision 1. The history is one
//!   part and revisions are counted exactly: a write that changes something
//!   gets exactly the current revision + 1, an answer that changed nothing
//!   carries exactly the current revision.
//!
//! A write whose revision is unknown (its answer was lost, or reported
//! without one) leaves its keys' mod revisions unknown but above the store's
//! revision before it; a later read or a compare on the mod revision pins
//! them down. An indeterminate transaction may go either way.

use std::fmt::{Debug, Write as _};
use std::hash::Hash;
use std::iter::{empty, once};
use std::marker::PhantomData;

use super::history::Operation;
use super::model::{partition_by_keys, Model, Partition};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KvCompare<V> {
    /// The key exists and holds this value.
    Value(V),
    /// The key's mod revision is this (0: the key does not exist).
    ModRevision(u64),
}

/// One request inside a transaction's branch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KvTxnOp<K, V> {
    Put {
        key: K,
        value: V,
    },
    /// A delete-range over exactly this key.
    Delete {
        key: K,
    },
    /// A range over exactly this key.
    Get {
        key: K,
    },
}

/// What one request of a transaction's branch answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KvTxnResult<V> {
    Put,
    Delete {
        deleted: bool,
    },
    /// The value and its mod revision (`None` and 0 if absent).
    Get {
        value: Option<V>,
        mod_revision: u64,
    },
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
    /// `if every compare holds then success else failure`; the branches
    /// must be ones etcd accepts (no key put twice, or put and deleted, in
    /// one branch).
    Txn {
        compare: Vec<(K, KvCompare<V>)>,
        success: Vec<KvTxnOp<K, V>>,
        failure: Vec<KvTxnOp<K, V>>,
    },
    /// A linearizable range covering exactly these keys (for example every
    /// key under a prefix the history uses), in key order.
    Range {
        keys: Vec<K>,
    },
}

impl<K, V> KvInput<K, V> {
    /// Every key the operation touches (compared, written or read).
    pub fn keys(&self) -> Vec<&K> {
        match self {
            KvInput::Put { key, .. }
            | KvInput::Get { key }
            | KvInput::Delete { key }
            | KvInput::TxnCas { key, .. } => vec![key],
            KvInput::Txn {
                compare,
                success,
                failure,
            } => compare
                .iter()
                .map(|(key, _)| key)
                .chain(success.iter().chain(failure).map(KvTxnOp::key))
                .collect(),
            KvInput::Range { keys } => keys.iter().collect(),
        }
    }
}

impl<K, V> KvTxnOp<K, V> {
    pub fn key(&self) -> &K {
        match self {
            KvTxnOp::Put { key, .. } | KvTxnOp::Delete { key } | KvTxnOp::Get { key } => key,
        }
    }

    fn as_ref(&self) -> OpRef<'_, K, V> {
        match self {
            KvTxnOp::Put { key, value } => OpRef::Put(key, value),
            KvTxnOp::Delete { key } => OpRef::Delete(key),
            KvTxnOp::Get { key } => OpRef::Get(key),
        }
    }
}

/// Answers. Every `revision` is the response header's: for a request that
/// changed the store, the revision of its change; otherwise the store's
/// revision when it was served. `None`: not recorded (any is allowed).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KvOutput<V> {
    Put {
        revision: Option<u64>,
    },
    /// The value and its mod revision (`None` and 0 if absent).
    Get {
        value: Option<V>,
        mod_revision: u64,
        revision: Option<u64>,
    },
    Delete {
        deleted: bool,
        revision: Option<u64>,
    },
    TxnCas {
        succeeded: bool,
        revision: Option<u64>,
    },
    /// `results` has one entry per request of the branch taken, in order,
    /// or none if they were not recorded.
    Txn {
        succeeded: bool,
        revision: Option<u64>,
        results: Vec<KvTxnResult<V>>,
    },
    /// One `(value, mod revision)` per key of the input, in the same order
    /// (`(None, 0)`: absent).
    Range {
        revision: Option<u64>,
        reads: Vec<(Option<V>, u64)>,
    },
}

/// What is known of a key's mod revision.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Revision {
    Known(u64),
    /// Unknown, but greater than this.
    Above(u64),
}

impl Revision {
    /// Whether the revision can be `r`.
    fn admits(self, r: u64) -> bool {
        match self {
            Revision::Known(k) => k == r,
            Revision::Above(a) => r > a,
        }
    }
}

/// A key that exists: its value and mod revision.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct KeyState<V> {
    pub value: V,
    pub mod_revision: Revision,
}

/// The keys of one part of the history: those that exist, and the store's
/// revision: exactly, with [`Kv::whole_store`]; otherwise a lower bound (the
/// store's revision also exceeds the bound of any key whose mod revision is
/// only known to be `Above` it).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct KvState<K, V> {
    pub revision: u64,
    /// In key order; a key not listed does not exist.
    pub keys: Vec<(K, KeyState<V>)>,
}

/// The model. See the module documentation for its two ways of counting
/// revisions.
#[derive(Debug)]
pub struct Kv<K, V> {
    exact: bool,
    _types: PhantomData<fn() -> (K, V)>,
}

impl<K, V> Kv<K, V> {
    /// Partitioned by connected components of keys; revisions are checked
    /// as lower bounds. Lost writes are cheap while their keys are checked
    /// apart; many of them on keys a history links together can exhaust the
    /// budget (answering unknown) sooner than with [`Kv::whole_store`],
    /// whose exact revisions pin down which lost writes took effect.
    pub fn new() -> Self {
        Kv {
            exact: false,
            _types: PhantomData,
        }
    }

    /// For a history that holds every request that changed the store since
    /// it was empty (at revision 1): one part, revisions counted exactly.
    pub fn whole_store() -> Self {
        Kv {
            exact: true,
            _types: PhantomData,
        }
    }
}

impl<K, V> Default for Kv<K, V> {
    fn default() -> Self {
        Self::new()
    }
}

/// A branch request, borrowed from whichever input holds it.
#[derive(Debug)]
enum OpRef<'a, K, V> {
    Put(&'a K, &'a V),
    Delete(&'a K),
    Get(&'a K),
}

impl<K, V> Clone for OpRef<'_, K, V> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<K, V> Copy for OpRef<'_, K, V> {}

/// What an answer claims, in the terms the transaction machinery uses.
struct Claim<'a, V> {
    succeeded: Option<bool>,
    revision: Option<u64>,
    results: Results<'a, V>,
}

/// The per-request results an answer claims.
enum Results<'a, V> {
    Unknown,
    Put,
    Deleted(bool),
    Read(&'a Option<V>, u64),
    Txn(&'a [KvTxnResult<V>]),
    Reads(&'a [(Option<V>, u64)]),
}

/// The claimed result of one request.
enum ResultRef<'a, V> {
    Put,
    Deleted(bool),
    Read(&'a Option<V>, u64),
}

impl<'a, V> Results<'a, V> {
    /// The result claimed for the `i`-th request of the branch taken.
    fn at(&self, i: usize) -> Option<ResultRef<'a, V>> {
        match self {
            Results::Unknown => None,
            Results::Put => Some(ResultRef::Put),
            Results::Deleted(d) => Some(ResultRef::Deleted(*d)),
            Results::Read(value, m) => Some(ResultRef::Read(value, *m)),
            Results::Txn(results) => results.get(i).map(|r| match r {
                KvTxnResult::Put => ResultRef::Put,
                KvTxnResult::Delete { deleted } => ResultRef::Deleted(*deleted),
                KvTxnResult::Get {
                    value,
                    mod_revision,
                } => ResultRef::Read(value, *mod_revision),
            }),
            Results::Reads(reads) => reads.get(i).map(|(value, m)| ResultRef::Read(value, *m)),
        }
    }

    /// How many results are claimed (`None`: unrecorded).
    fn count(&self) -> Option<usize> {
        match self {
            Results::Unknown => None,
            Results::Put | Results::Deleted(_) | Results::Read(..) => Some(1),
            Results::Txn([]) => None,
            Results::Txn(results) => Some(results.len()),
            Results::Reads(reads) => Some(reads.len()),
        }
    }
}

impl<K: Ord + Clone, V: Clone + Eq> KvState<K, V> {
    fn find(&self, key: &K) -> Result<usize, usize> {
        self.keys.binary_search_by(|(k, _)| k.cmp(key))
    }

    /// The least the store's revision can be: the bound, or above it if a
    /// key's mod revision is only known to exceed something.
    fn least_current(&self) -> u64 {
        self.keys
            .iter()
            .fold(self.revision, |least, (_, key)| match key.mod_revision {
                Revision::Above(r) => least.max(r + 1),
                Revision::Known(_) => least,
            })
    }

    fn get(&self, key: &K) -> Option<&KeyState<V>> {
        self.find(key).ok().map(|i| &self.keys[i].1)
    }

    fn set(&mut self, key: &K, state: KeyState<V>) {
        match self.find(key) {
            Ok(i) => self.keys[i].1 = state,
            Err(i) => self.keys.insert(i, (key.clone(), state)),
        }
    }

    /// Deletes the key; whether it existed.
    fn remove(&mut self, key: &K) -> bool {
        match self.find(key) {
            Ok(i) => {
                self.keys.remove(i);
                true
            }
            Err(_) => false,
        }
    }

    /// Whether a read of `key` can answer `value` at `mod_revision` (in an
    /// answer with header `header`); if so, pins the key's mod revision.
    fn read(&mut self, key: &K, value: &Option<V>, mod_revision: u64, header: Option<u64>) -> bool {
        let Ok(i) = self.find(key) else {
            return value.is_none() && mod_revision == 0;
        };
        let state = &mut self.keys[i].1;
        if value.as_ref() != Some(&state.value)
            || !state.mod_revision.admits(mod_revision)
            || header.is_some_and(|h| mod_revision > h)
        {
            return false;
        }
        state.mod_revision = Revision::Known(mod_revision);
        self.revision = self.revision.max(mod_revision);
        true
    }

    /// Pushes each way the compare can turn out, with the state as pinned
    /// down by that outcome.
    fn compare(self, key: &K, compare: &KvCompare<V>, out: &mut Vec<(bool, Self)>) {
        let mod_revision = match (compare, self.get(key)) {
            (KvCompare::Value(expected), state) => {
                let holds = state.is_some_and(|s| s.value == *expected);
                out.push((holds, self));
                return;
            }
            (KvCompare::ModRevision(expected), None) => {
                out.push((*expected == 0, self));
                return;
            }
            (KvCompare::ModRevision(_), Some(state)) => state.mod_revision,
        };
        let KvCompare::ModRevision(expected) = *compare else {
            unreachable!("value compares returned above")
        };
        match mod_revision {
            Revision::Known(r) => out.push((r == expected, self)),
            Revision::Above(_) if !mod_revision.admits(expected) => out.push((false, self)),
            Revision::Above(_) => {
                let mut pinned = self.clone();
                let value = pinned.get(key).expect("the key exists").value.clone();
                pinned.set(
                    key,
                    KeyState {
                        value,
                        mod_revision: Revision::Known(expected),
                    },
                );
                pinned.revision = pinned.revision.max(expected);
                out.push((false, self));
                out.push((true, pinned));
            }
        }
    }
}

impl<K, V> Kv<K, V>
where
    K: Ord + Clone + Debug,
    V: Clone + Eq + Debug,
{
    /// Runs a transaction (every input is one): each way the compares can
    /// turn out that agrees with the claimed outcome, then the branch.
    fn txn<'a, C, S, F>(
        &self,
        state: &KvState<K, V>,
        compares: C,
        success: S,
        failure: F,
        claim: Option<&Claim<'a, V>>,
        next: &mut Vec<KvState<K, V>>,
    ) where
        K: 'a,
        V: 'a,
        C: Iterator<Item = (&'a K, &'a KvCompare<V>)>,
        S: Iterator<Item = OpRef<'a, K, V>> + Clone,
        F: Iterator<Item = OpRef<'a, K, V>> + Clone,
    {
        let mut compares = compares.peekable();
        if compares.peek().is_none() {
            if claim.and_then(|c| c.succeeded) != Some(false) {
                self.branch(state.clone(), success, claim, next);
            }
            return;
        }
        let mut outcomes = vec![(true, state.clone())];
        for (key, compare) in compares {
            let mut after = Vec::with_capacity(outcomes.len() + 1);
            for (holds, s) in outcomes {
                if holds {
                    s.compare(key, compare, &mut after);
                } else {
                    // etcd stops at the first compare that fails.
                    after.push((false, s));
                }
            }
            outcomes = after;
        }
        for (holds, s) in outcomes {
            if claim.and_then(|c| c.succeeded).is_some_and(|c| c != holds) {
                continue;
            }
            if holds {
                self.branch(s, success.clone(), claim, next);
            } else {
                self.branch(s, failure.clone(), claim, next);
            }
        }
    }

    /// Runs the requests of a branch: the revision first (whether the branch
    /// changes anything decides whether it bumps it), then each request in
    /// order against the claimed results.
    fn branch<'a, I>(
        &self,
        mut state: KvState<K, V>,
        ops: I,
        claim: Option<&Claim<'a, V>>,
        next: &mut Vec<KvState<K, V>>,
    ) where
        K: 'a,
        V: 'a,
        I: Iterator<Item = OpRef<'a, K, V>> + Clone,
    {
        let puts = ops.clone().any(|op| matches!(op, OpRef::Put(..)));
        let changes = puts
            || ops
                .clone()
                .any(|op| matches!(op, OpRef::Delete(key) if state.get(key).is_some()));
        let header = claim.and_then(|c| c.revision);
        let least = if self.exact {
            state.revision
        } else {
            state.least_current()
        };
        let mut written = Revision::Known(least);
        if changes {
            written = match header {
                Some(h) if h == least + 1 || (!self.exact && h > least) => Revision::Known(h),
                Some(_) => return,
                None if self.exact => Revision::Known(least + 1),
                // Above the stored bound only, which stays as it is while a
                // key put here carries the news: then a lost write that a
                // later one overwrote leaves the very state the later one
                // leaves alone, and the search does not try every subset of
                // the lost writes. A revision known only this way is weaker
                // than it could be, never wrong.
                None => Revision::Above(state.revision),
            };
            match written {
                Revision::Known(r) => state.revision = r,
                Revision::Above(_) if !puts => state.revision += 1,
                Revision::Above(_) => {}
            }
        } else {
            match header {
                Some(h) if h == least || (!self.exact && h > least) => state.revision = h,
                Some(_) => return,
                None => {}
            }
        }
        let results = claim.map_or(&Results::Unknown, |c| &c.results);
        let mut count = 0;
        for (i, op) in ops.enumerate() {
            count += 1;
            let claimed = results.at(i);
            match (op, claimed) {
                (OpRef::Put(key, value), None | Some(ResultRef::Put)) => state.set(
                    key,
                    KeyState {
                        value: value.clone(),
                        mod_revision: written,
                    },
                ),
                (OpRef::Delete(key), claimed) => {
                    let existed = state.remove(key);
                    match claimed {
                        None => {}
                        Some(ResultRef::Deleted(deleted)) if deleted == existed => {}
                        Some(ResultRef::Deleted(_)) => return,
                        Some(_) => mismatch(op),
                    }
                }
                (OpRef::Get(_), None) => {}
                (OpRef::Get(key), Some(ResultRef::Read(value, mod_revision))) => {
                    if !state.read(key, value, mod_revision, header) {
                        return;
                    }
                }
                (op, Some(_)) => mismatch(op),
            }
        }
        if results.count().is_some_and(|claimed| claimed != count) {
            mismatch_count(count, results);
        }
        next.push(state);
    }
}

fn mismatch<K: Debug, V: Debug>(op: OpRef<'_, K, V>) -> ! {
    panic!("{op:?} cannot answer the result claimed for it (the history is malformed)")
}

fn mismatch_count<V>(count: usize, results: &Results<'_, V>) -> ! {
    panic!(
        "an answer with {:?} results for a branch of {count} requests (the history is malformed)",
        results.count()
    )
}

impl<K, V> Model for Kv<K, V>
where
    K: Ord + Clone + Hash + Debug,
    V: Clone + Eq + Hash + Debug,
{
    type Input = KvInput<K, V>;
    type Output = KvOutput<V>;
    type State = KvState<K, V>;

    fn init(&self) -> KvState<K, V> {
        KvState {
            revision: 1,
            keys: Vec::new(),
        }
    }

    fn step(
        &self,
        state: &KvState<K, V>,
        input: &KvInput<K, V>,
        output: Option<&KvOutput<V>>,
        next: &mut Vec<KvState<K, V>>,
    ) {
        let claim = output.map(|output| claim(input, output));
        let claim = claim.as_ref();
        match input {
            KvInput::Put { key, value } => self.txn(
                state,
                empty(),
                once(OpRef::Put(key, value)),
                empty(),
                claim,
                next,
            ),
            KvInput::Get { key } => {
                self.txn(state, empty(), once(OpRef::Get(key)), empty(), claim, next)
            }
            KvInput::Delete { key } => self.txn(
                state,
                empty(),
                once(OpRef::Delete(key)),
                empty(),
                claim,
                next,
            ),
            KvInput::TxnCas {
                key,
                compare,
                value,
            } => self.txn(
                state,
                once((key, compare)),
                once(OpRef::Put(key, value)),
                empty(),
                claim,
                next,
            ),
            KvInput::Txn {
                compare,
                success,
                failure,
            } => self.txn(
                state,
                compare.iter().map(|(key, compare)| (key, compare)),
                success.iter().map(KvTxnOp::as_ref),
                failure.iter().map(KvTxnOp::as_ref),
                claim,
                next,
            ),
            KvInput::Range { keys } => self.txn(
                state,
                empty(),
                keys.iter().map(OpRef::Get),
                empty(),
                claim,
                next,
            ),
        }
    }

    /// The store's revision never goes back (nor, as a lower bound, does
    /// what is known of it), so an answer whose header revision is already
    /// behind it can never be placed.
    fn can_still_linearize(
        &self,
        state: &KvState<K, V>,
        _input: &KvInput<K, V>,
        output: &KvOutput<V>,
    ) -> bool {
        let header = match output {
            KvOutput::Put { revision }
            | KvOutput::Get { revision, .. }
            | KvOutput::Delete { revision, .. }
            | KvOutput::TxnCas { revision, .. }
            | KvOutput::Txn { revision, .. }
            | KvOutput::Range { revision, .. } => *revision,
        };
        let least = if self.exact {
            state.revision
        } else {
            state.least_current()
        };
        header.is_none_or(|h| least <= h)
    }

    fn is_read_only(&self, input: &Self::Input) -> bool {
        match input {
            KvInput::Get { .. } | KvInput::Range { .. } => true,
            KvInput::Txn {
                success, failure, ..
            } => success
                .iter()
                .chain(failure)
                .all(|op| matches!(op, KvTxnOp::Get { .. })),
            _ => false,
        }
    }

    fn partition(&self, history: &[Operation<Self::Input, Self::Output>]) -> Vec<Partition> {
        if self.exact {
            return vec![Partition {
                label: "whole history".to_string(),
                ops: (0..history.len()).collect(),
            }];
        }
        partition_by_keys(history, |input| input.keys())
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
            } => format!(
                "txn(if {} then put({key:?}, {value:?}))",
                show_compare(key, compare)
            ),
            KvInput::Txn {
                compare,
                success,
                failure,
            } => {
                let tests: Vec<String> = compare.iter().map(|(k, c)| show_compare(k, c)).collect();
                format!(
                    "txn(if {} then {} else {})",
                    tests.join(" && "),
                    show_branch(success),
                    show_branch(failure)
                )
            }
            KvInput::Range { keys } => format!("range({keys:?})"),
        };
        let answer = match output {
            None => "? (indeterminate)".to_string(),
            Some(KvOutput::Put { revision }) => format!("ok{}", at(*revision)),
            Some(KvOutput::Get {
                value,
                mod_revision,
                revision,
            }) => format!("{}{}", show_read(value, *mod_revision), at(*revision)),
            Some(KvOutput::Delete { deleted, revision }) => {
                format!("deleted {}{}", u8::from(*deleted), at(*revision))
            }
            Some(KvOutput::TxnCas {
                succeeded,
                revision,
            }) => format!("{}{}", outcome(*succeeded), at(*revision)),
            Some(KvOutput::Txn {
                succeeded,
                revision,
                results,
            }) => {
                let mut text = format!("{}{}", outcome(*succeeded), at(*revision));
                if !results.is_empty() {
                    let shown: Vec<String> = results
                        .iter()
                        .map(|r| match r {
                            KvTxnResult::Put => "ok".to_string(),
                            KvTxnResult::Delete { deleted } => {
                                format!("deleted {}", u8::from(*deleted))
                            }
                            KvTxnResult::Get {
                                value,
                                mod_revision,
                            } => show_read(value, *mod_revision),
                        })
                        .collect();
                    let _ = write!(text, " [{}]", shown.join(", "));
                }
                text
            }
            Some(KvOutput::Range { revision, reads }) => {
                let shown: Vec<String> = reads.iter().map(|(v, m)| show_read(v, *m)).collect();
                format!("[{}]{}", shown.join(", "), at(*revision))
            }
        };
        format!("{call} => {answer}")
    }

    fn describe_state(&self, state: &KvState<K, V>) -> String {
        let mut text = format!(
            "revision {}{}:",
            if self.exact { "" } else { ">= " },
            state.revision
        );
        if state.keys.is_empty() {
            text.push_str(" no keys");
        }
        for (i, (key, s)) in state.keys.iter().enumerate() {
            let revision = match s.mod_revision {
                Revision::Known(r) => format!("@{r}"),
                Revision::Above(r) => format!("@>{r}"),
            };
            let sep = if i == 0 { " " } else { ", " };
            let _ = write!(text, "{sep}{key:?}={:?} {revision}", s.value);
        }
        text
    }
}

/// Reads an answer as what the transaction machinery checks.
fn claim<'a, K: Debug, V: Debug>(input: &KvInput<K, V>, output: &'a KvOutput<V>) -> Claim<'a, V> {
    let (succeeded, revision, results) = match (input, output) {
        (KvInput::Put { .. }, KvOutput::Put { revision }) => (None, *revision, Results::Put),
        (
            KvInput::Get { .. },
            KvOutput::Get {
                value,
                mod_revision,
                revision,
            },
        ) => (None, *revision, Results::Read(value, *mod_revision)),
        (KvInput::Delete { .. }, KvOutput::Delete { deleted, revision }) => {
            (None, *revision, Results::Deleted(*deleted))
        }
        (
            KvInput::TxnCas { .. },
            KvOutput::TxnCas {
                succeeded,
                revision,
            },
        ) => (Some(*succeeded), *revision, Results::Unknown),
        (
            KvInput::Txn { .. },
            KvOutput::Txn {
                succeeded,
                revision,
                results,
            },
        ) => (Some(*succeeded), *revision, Results::Txn(results)),
        (KvInput::Range { keys }, KvOutput::Range { revision, reads })
            if reads.len() == keys.len() =>
        {
            (None, *revision, Results::Reads(reads))
        }
        (input, output) => panic!("{input:?} cannot answer {output:?}"),
    };
    Claim {
        succeeded,
        revision,
        results,
    }
}

fn at(revision: Option<u64>) -> String {
    revision.map_or(String::new(), |r| format!(" @{r}"))
}

fn outcome(succeeded: bool) -> &'static str {
    if succeeded {
        "succeeded"
    } else {
        "failed"
    }
}

fn show_read<V: Debug>(value: &Option<V>, mod_revision: u64) -> String {
    match value {
        Some(v) => format!("{v:?} (mod {mod_revision})"),
        None => "absent".to_string(),
    }
}

fn show_compare<K: Debug, V: Debug>(key: &K, compare: &KvCompare<V>) -> String {
    match compare {
        KvCompare::Value(v) => format!("{key:?} == {v:?}"),
        KvCompare::ModRevision(r) => format!("mod({key:?}) == {r}"),
    }
}

fn show_branch<K: Debug, V: Debug>(ops: &[KvTxnOp<K, V>]) -> String {
    let shown: Vec<String> = ops
        .iter()
        .map(|op| match op {
            KvTxnOp::Put { key, value } => format!("put({key:?}, {value:?})"),
            KvTxnOp::Delete { key } => format!("delete({key:?})"),
            KvTxnOp::Get { key } => format!("get({key:?})"),
        })
        .collect();
    format!("[{}]", shown.join(", "))
}

#[cfg(test)]
mod tests {
    use super::*;

    type M = Kv<&'static str, u64>;
    type S = KvState<&'static str, u64>;

    fn step_with(
        model: &M,
        state: &S,
        input: KvInput<&'static str, u64>,
        output: Option<KvOutput<u64>>,
    ) -> Vec<S> {
        let mut next = Vec::new();
        model.step(state, &input, output.as_ref(), &mut next);
        next
    }

    fn step(state: &S, input: KvInput<&'static str, u64>, output: Option<KvOutput<u64>>) -> Vec<S> {
        step_with(&M::new(), state, input, output)
    }

    /// A state at store revision `revision` with the given keys.
    fn at(revision: u64, keys: &[(&'static str, u64, Revision)]) -> S {
        KvState {
            revision,
            keys: keys
                .iter()
                .map(|&(k, value, mod_revision)| {
                    (
                        k,
                        KeyState {
                            value,
                            mod_revision,
                        },
                    )
                })
                .collect(),
        }
    }

    /// Key "a" alone, the store's revision bound where its revision says.
    fn one(value: u64, revision: Revision) -> S {
        let (Revision::Known(bound) | Revision::Above(bound)) = revision;
        at(bound, &[("a", value, revision)])
    }

    fn get(value: Option<u64>, mod_revision: u64) -> Option<KvOutput<u64>> {
        Some(KvOutput::Get {
            value,
            mod_revision,
            revision: None,
        })
    }

    fn put_at(revision: u64) -> Option<KvOutput<u64>> {
        Some(KvOutput::Put {
            revision: Some(revision),
        })
    }

    #[test]
    fn puts_need_increasing_revisions_and_reads_see_them() {
        let s0 = M::new().init();
        let put = |value| KvInput::Put { key: "a", value };
        let s1 = step(&s0, put(1), put_at(5));
        assert_eq!(s1, vec![one(1, Revision::Known(5))]);
        assert!(step(&s1[0], put(2), put_at(5)).is_empty());
        assert_eq!(step(&s1[0], KvInput::Get { key: "a" }, get(Some(1), 5)), s1);
        assert!(step(&s1[0], KvInput::Get { key: "a" }, get(Some(1), 4)).is_empty());
        assert!(step(&s0, KvInput::Get { key: "a" }, get(None, 3)).is_empty());
    }

    #[test]
    fn a_lost_answer_leaves_the_revision_to_be_pinned_by_a_read() {
        let s = step(
            &one(1, Revision::Known(5)),
            KvInput::Put { key: "a", value: 2 },
            None,
        );
        assert_eq!(s, vec![one(2, Revision::Above(5))]);
        assert!(step(&s[0], KvInput::Get { key: "a" }, get(Some(2), 5)).is_empty());
        assert_eq!(
            step(&s[0], KvInput::Get { key: "a" }, get(Some(2), 6)),
            vec![one(2, Revision::Known(6))]
        );
        // A later write must leave room for the unknown revision.
        assert!(step(&s[0], KvInput::Put { key: "a", value: 3 }, put_at(6)).is_empty());
    }

    #[test]
    fn an_indeterminate_txn_on_an_unknown_revision_may_go_either_way() {
        let s = one(2, Revision::Above(5));
        let txn = KvInput::TxnCas {
            key: "a",
            compare: KvCompare::ModRevision(7),
            value: 3,
        };
        assert_eq!(
            step(&s, txn.clone(), None),
            vec![s.clone(), one(3, Revision::Above(7))]
        );
        let won = Some(KvOutput::TxnCas {
            succeeded: true,
            revision: Some(9),
        });
        assert_eq!(step(&s, txn, won), vec![one(3, Revision::Known(9))]);
    }

    #[test]
    fn deletes_report_whether_the_key_existed() {
        let s = one(1, Revision::Known(5));
        let del = |deleted| {
            Some(KvOutput::Delete {
                deleted,
                revision: None,
            })
        };
        let absent = step(&s, KvInput::Delete { key: "a" }, del(true));
        assert_eq!(absent, vec![at(6, &[])]);
        assert!(step(&s, KvInput::Delete { key: "a" }, del(false)).is_empty());
        let txn = KvInput::TxnCas {
            key: "a",
            compare: KvCompare::ModRevision(0),
            value: 3,
        };
        let won = |revision| {
            Some(KvOutput::TxnCas {
                succeeded: true,
                revision: Some(revision),
            })
        };
        assert_eq!(
            step(&absent[0], txn.clone(), won(7)),
            vec![one(3, Revision::Known(7))]
        );
        assert!(step(&absent[0], txn, won(6)).is_empty());
    }

    #[test]
    fn a_txn_writes_every_key_of_its_branch_at_one_revision() {
        let s = at(
            4,
            &[("a", 1, Revision::Known(3)), ("b", 2, Revision::Known(4))],
        );
        let txn = KvInput::Txn {
            compare: vec![("a", KvCompare::Value(1))],
            success: vec![
                KvTxnOp::Put { key: "c", value: 9 },
                KvTxnOp::Delete { key: "b" },
            ],
            failure: vec![KvTxnOp::Get { key: "b" }],
        };
        let answer = |succeeded, revision, results| {
            Some(KvOutput::Txn {
                succeeded,
                revision: Some(revision),
                results,
            })
        };
        let results = vec![KvTxnResult::Put, KvTxnResult::Delete { deleted: true }];
        let after = at(
            6,
            &[("a", 1, Revision::Known(3)), ("c", 9, Revision::Known(6))],
        );
        assert_eq!(
            step(&s, txn.clone(), answer(true, 6, results.clone())),
            vec![after.clone()]
        );
        let exact = M::whole_store();
        assert!(
            step_with(&exact, &s, txn.clone(), answer(true, 6, results.clone())).is_empty(),
            "counted exactly, the txn's revision is 5"
        );
        let mut exact_after = after;
        exact_after.revision = 5;
        exact_after.keys[1].1.mod_revision = Revision::Known(5);
        assert_eq!(
            step_with(&exact, &s, txn.clone(), answer(true, 5, results)),
            vec![exact_after]
        );
        assert!(
            step(&s, txn.clone(), answer(false, 4, vec![])).is_empty(),
            "the compare holds"
        );
        let wrong_read = vec![KvTxnResult::Put, KvTxnResult::Delete { deleted: false }];
        assert!(step(&s, txn, answer(true, 6, wrong_read)).is_empty());
    }

    #[test]
    fn a_failed_txn_reads_at_the_current_revision() {
        let s = at(
            4,
            &[("a", 1, Revision::Known(3)), ("b", 2, Revision::Above(3))],
        );
        let txn = KvInput::Txn {
            compare: vec![("a", KvCompare::Value(5))],
            success: vec![KvTxnOp::Put { key: "a", value: 6 }],
            failure: vec![KvTxnOp::Get { key: "b" }],
        };
        let failed = |revision, mod_revision| {
            Some(KvOutput::Txn {
                succeeded: false,
                revision: Some(revision),
                results: vec![KvTxnResult::Get {
                    value: Some(2),
                    mod_revision,
                }],
            })
        };
        let pinned = at(
            7,
            &[("a", 1, Revision::Known(3)), ("b", 2, Revision::Known(4))],
        );
        assert_eq!(step(&s, txn.clone(), failed(7, 4)), vec![pinned]);
        assert!(
            step(&s, txn.clone(), failed(3, 4)).is_empty(),
            "the header went back"
        );
        assert!(
            step(&s, txn.clone(), failed(7, 8)).is_empty(),
            "a mod revision beyond the header"
        );
        assert!(step(&s, txn, failed(7, 3)).is_empty(), "b changed after 3");
    }

    #[test]
    fn a_range_sees_every_key_at_its_header_revision() {
        let s = at(
            6,
            &[("a", 1, Revision::Known(3)), ("c", 2, Revision::Known(6))],
        );
        let range = KvInput::Range {
            keys: vec!["a", "b", "c"],
        };
        let answer = |revision, c_mod| {
            Some(KvOutput::Range {
                revision: Some(revision),
                reads: vec![(Some(1), 3), (None, 0), (Some(2), c_mod)],
            })
        };
        assert_eq!(step(&s, range.clone(), answer(8, 6)).len(), 1);
        assert!(step(&s, range.clone(), answer(5, 6)).is_empty());
        assert!(step(&s, range.clone(), answer(8, 5)).is_empty());
        let exact = M::whole_store();
        assert!(step_with(&exact, &s, range.clone(), answer(8, 6)).is_empty());
        assert_eq!(step_with(&exact, &s, range, answer(6, 6)), vec![s]);
    }

    #[test]
    #[should_panic(expected = "cannot answer")]
    fn a_range_answer_for_other_keys_is_a_bug_in_the_history() {
        step(
            &M::new().init(),
            KvInput::Range { keys: vec!["a"] },
            Some(KvOutput::Range {
                revision: None,
                reads: vec![],
            }),
        );
    }
}
