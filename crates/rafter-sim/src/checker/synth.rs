//! Histories that are linearizable by construction, with real concurrency:
//! clients issue overlapping operations, each takes effect at a point inside
//! its interval on a correct object (a per-key register, or a small etcd
//! store with a global revision, written independently of the `kv` model),
//! and some lose their answer (and may take effect after the client gave
//! up, or never). The checker's tests use them to show it accepts correct
//! histories, and its performance is measured on them. Deterministic: the
//! same config gives the same history.

use std::collections::BTreeMap;

use super::history::Operation;
use super::kv::{KvCompare, KvInput, KvOutput, KvTxnOp, KvTxnResult};
use super::register::{RegisterInput, RegisterOutput};

/// A register history's operation.
pub type RegisterOp = Operation<RegisterInput<u8, u64>, RegisterOutput<u64>>;

/// A key-value history's operation.
pub type KvOp = Operation<KvInput<u8, u64>, KvOutput<u64>>;

#[derive(Debug, Clone)]
pub struct SynthConfig {
    pub seed: u64,
    pub ops: usize,
    pub keys: u8,
    /// Each client has one operation outstanding at a time.
    pub clients: usize,
    /// Operations whose answer is lost, per thousand.
    pub indeterminate_per_mille: u64,
    /// Values are drawn from `0..values` (few values: many equal states).
    pub values: u64,
}

impl SynthConfig {
    /// 8 clients on 8 keys with 1% of answers lost.
    pub fn new(seed: u64, ops: usize) -> Self {
        SynthConfig {
            seed,
            ops,
            keys: 8,
            clients: 8,
            indeterminate_per_mille: 10,
            values: 1_000_000,
        }
    }
}

/// SplitMix64: small, fast, and enough for test data.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        assert!(n > 0);
        self.next() % n
    }
}

struct Timing {
    client_id: usize,
    key: u8,
    call: u64,
    ret: u64,
    /// When it takes effect (may be after `ret` if the answer is lost).
    effect: u64,
    lost: bool,
}

/// When each operation is called, returns and takes effect.
fn timings(config: &SynthConfig, rng: &mut Rng) -> Vec<Timing> {
    assert!(config.clients > 0 && config.keys > 0 && config.values > 0);
    let mut client_time = vec![0u64; config.clients];
    let mut timings = Vec::with_capacity(config.ops);
    for _ in 0..config.ops {
        let client_id = (0..config.clients)
            .min_by_key(|&c| (client_time[c], c))
            .expect("at least one client");
        let call = client_time[client_id] + rng.below(50);
        let duration = 10 + rng.below(200);
        let lost = rng.below(1000) < config.indeterminate_per_mille;
        let effect = call + rng.below(if lost { 3 * duration } else { duration + 1 });
        timings.push(Timing {
            client_id,
            key: rng.below(config.keys.into()) as u8,
            call,
            ret: call + duration,
            effect,
            lost,
        });
        client_time[client_id] = call + duration;
    }
    timings
}

/// A linearizable register history as configured.
pub fn register_history(config: &SynthConfig) -> Vec<RegisterOp> {
    let mut rng = Rng(config.seed);
    let timings = timings(config, &mut rng);
    let mut order: Vec<usize> = (0..timings.len()).collect();
    order.sort_by_key(|&i| (timings[i].effect, i));
    let mut registers: Vec<Option<u64>> = vec![None; config.keys.into()];
    let mut ops: Vec<Option<RegisterOp>> = (0..timings.len()).map(|_| None).collect();
    for i in order {
        let t = &timings[i];
        let register = &mut registers[usize::from(t.key)];
        let (input, output) = match rng.below(10) {
            0..=3 => (
                RegisterInput::Get { key: t.key },
                RegisterOutput::Get(*register),
            ),
            4..=6 => {
                let value = rng.below(config.values);
                (
                    RegisterInput::Put { key: t.key, value },
                    RegisterOutput::Put,
                )
            }
            _ => {
                // Half the time the client expects what is there, as after
                // a read.
                let expected = if rng.below(2) == 0 {
                    *register
                } else {
                    Some(rng.below(config.values))
                };
                let new = rng.below(config.values);
                let swapped = expected == *register;
                (
                    RegisterInput::Cas {
                        key: t.key,
                        expected,
                        new,
                    },
                    RegisterOutput::Cas(swapped),
                )
            }
        };
        // A lost answer's operation takes effect half the time.
        let takes_effect = !t.lost || rng.below(2) == 0;
        if takes_effect {
            match &input {
                RegisterInput::Put { value, .. } => *register = Some(*value),
                RegisterInput::Cas { new, .. } if output == RegisterOutput::Cas(true) => {
                    *register = Some(*new)
                }
                _ => {}
            }
        }
        ops[i] = Some(if t.lost {
            Operation::indeterminate(t.client_id, t.call, t.ret, input)
        } else {
            Operation::ok(t.client_id, t.call, t.ret, input, output)
        });
    }
    ops.into_iter()
        .map(|op| op.expect("every operation was built in the loop above"))
        .collect()
}

/// A correct etcd store: values, mod revisions and one global revision.
struct Store {
    revision: u64,
    keys: BTreeMap<u8, (u64, u64)>,
}

impl Store {
    fn read(&self, key: u8) -> (Option<u64>, u64) {
        self.keys
            .get(&key)
            .map_or((None, 0), |&(value, m)| (Some(value), m))
    }

    fn holds(&self, key: u8, compare: &KvCompare<u64>) -> bool {
        match compare {
            KvCompare::Value(v) => self.keys.get(&key).is_some_and(|(value, _)| value == v),
            KvCompare::ModRevision(r) => self.read(key).1 == *r,
        }
    }

    /// Applies a branch of requests as one etcd request: one revision for
    /// all its changes, if it makes any.
    fn run(&mut self, ops: &[KvTxnOp<u8, u64>]) -> (u64, Vec<KvTxnResult<u64>>) {
        let changes = ops.iter().any(|op| match op {
            KvTxnOp::Put { .. } => true,
            KvTxnOp::Delete { key } => self.keys.contains_key(key),
            KvTxnOp::Get { .. } => false,
        });
        if changes {
            self.revision += 1;
        }
        let results = ops
            .iter()
            .map(|op| match op {
                KvTxnOp::Put { key, value } => {
                    self.keys.insert(*key, (*value, self.revision));
                    KvTxnResult::Put
                }
                KvTxnOp::Delete { key } => KvTxnResult::Delete {
                    deleted: self.keys.remove(key).is_some(),
                },
                KvTxnOp::Get { key } => {
                    let (value, mod_revision) = self.read(*key);
                    KvTxnResult::Get {
                        value,
                        mod_revision,
                    }
                }
            })
            .collect();
        (self.revision, results)
    }

    fn apply(&mut self, input: &KvInput<u8, u64>) -> KvOutput<u64> {
        match input {
            KvInput::Put { key, value } => {
                let (revision, _) = self.run(&[KvTxnOp::Put {
                    key: *key,
                    value: *value,
                }]);
                KvOutput::Put {
                    revision: Some(revision),
                }
            }
            KvInput::Get { key } => {
                let (value, mod_revision) = self.read(*key);
                KvOutput::Get {
                    value,
                    mod_revision,
                    revision: Some(self.revision),
                }
            }
            KvInput::Delete { key } => {
                let (revision, results) = self.run(&[KvTxnOp::Delete { key: *key }]);
                KvOutput::Delete {
                    deleted: results[0] == KvTxnResult::Delete { deleted: true },
                    revision: Some(revision),
                }
            }
            KvInput::TxnCas {
                key,
                compare,
                value,
            } => {
                let succeeded = self.holds(*key, compare);
                let branch = if succeeded {
                    vec![KvTxnOp::Put {
                        key: *key,
                        value: *value,
                    }]
                } else {
                    vec![]
                };
                let (revision, _) = self.run(&branch);
                KvOutput::TxnCas {
                    succeeded,
                    revision: Some(revision),
                }
            }
            KvInput::Txn {
                compare,
                success,
                failure,
            } => {
                let succeeded = compare.iter().all(|(key, c)| self.holds(*key, c));
                let (revision, results) = self.run(if succeeded { success } else { failure });
                KvOutput::Txn {
                    succeeded,
                    revision: Some(revision),
                    results,
                }
            }
            KvInput::Range { keys } => KvOutput::Range {
                revision: Some(self.revision),
                reads: keys.iter().map(|key| self.read(*key)).collect(),
            },
        }
    }
}

/// A linearizable history of an etcd store as configured: single-key puts,
/// reads, deletes and compare-and-puts, multi-key transactions and ranges
/// over every key. Revisions are counted from an empty store at revision 1,
/// so the history suits `Kv::whole_store` as well as `Kv::new`.
pub fn kv_history(config: &SynthConfig) -> Vec<KvOp> {
    let mut rng = Rng(config.seed);
    let timings = timings(config, &mut rng);
    let mut order: Vec<usize> = (0..timings.len()).collect();
    order.sort_by_key(|&i| (timings[i].effect, i));
    let mut store = Store {
        revision: 1,
        keys: BTreeMap::new(),
    };
    let mut ops: Vec<Option<KvOp>> = (0..timings.len()).map(|_| None).collect();
    for i in order {
        let t = &timings[i];
        let key = t.key;
        let other = ((u64::from(key) + 1 + rng.below(u64::from(config.keys)))
            % u64::from(config.keys)) as u8;
        let compare = |rng: &mut Rng, store: &Store| {
            let (value, mod_revision) = store.read(key);
            match (rng.below(4), value) {
                (0, Some(v)) => KvCompare::Value(v),
                (1, _) => KvCompare::Value(rng.below(config.values)),
                (2, _) => KvCompare::ModRevision(mod_revision),
                _ => KvCompare::ModRevision(rng.below(store.revision + 1)),
            }
        };
        let input = match rng.below(12) {
            0..=2 => KvInput::Get { key },
            3..=5 => KvInput::Put {
                key,
                value: rng.below(config.values),
            },
            6 => KvInput::Delete { key },
            7 | 8 => KvInput::TxnCas {
                key,
                compare: compare(&mut rng, &store),
                value: rng.below(config.values),
            },
            9 | 10 => {
                let compare = vec![(key, compare(&mut rng, &store))];
                let mut success = vec![KvTxnOp::Put {
                    key,
                    value: rng.below(config.values),
                }];
                if other != key {
                    success.push(if rng.below(2) == 0 {
                        KvTxnOp::Delete { key: other }
                    } else {
                        KvTxnOp::Put {
                            key: other,
                            value: rng.below(config.values),
                        }
                    });
                }
                let failure = if rng.below(2) == 0 {
                    vec![KvTxnOp::Get { key: other }]
                } else {
                    vec![KvTxnOp::Put {
                        key: other,
                        value: rng.below(config.values),
                    }]
                };
                KvInput::Txn {
                    compare,
                    success,
                    failure,
                }
            }
            _ => KvInput::Range {
                keys: (0..config.keys).collect(),
            },
        };
        // A lost answer's operation takes effect half the time.
        let takes_effect = !t.lost || rng.below(2) == 0;
        let output = if takes_effect {
            store.apply(&input)
        } else {
            KvOutput::Put { revision: None }
        };
        ops[i] = Some(if t.lost {
            Operation::indeterminate(t.client_id, t.call, t.ret, input)
        } else {
            Operation::ok(t.client_id, t.call, t.ret, input, output)
        });
    }
    ops.into_iter()
        .map(|op| op.expect("every operation was built in the loop above"))
        .collect()
}
