//! The simulated clients' operation vocabulary, in one place: which
//! operations there are and how often each is drawn, the etcd request each
//! mutation is proposed as, how a member executes a read against its real
//! store, and how the store's answer becomes what the client saw. Members
//! only call these functions, so widening the workload touches neither the
//! member nor the event loop; the verdict maps the same results onto the
//! checker's etcd model, and `Sim::finish` checks serializable reads.
//!
//! Keys are `k0`, `k1`, … (all under the prefix `k`); values are the
//! decimal text of numbers handed out once each, so a read names the write
//! it saw.

use rafter_proto::etcdserverpb::compare::{CompareResult, CompareTarget, TargetUnion};
use rafter_proto::etcdserverpb::request_op::Request as Op;
use rafter_proto::etcdserverpb::response_op::Response as OpResponse;
use rafter_proto::etcdserverpb::{
    Compare, DeleteRangeRequest, PutRequest, RangeRequest, RangeResponse, RequestOp,
    ResponseHeader, ResponseOp, TxnRequest,
};
use rafter_storage::mvcc::validate::check_txn;
use rafter_storage::mvcc::{KvResponse, MvccError};
use rafter_storage::{KvRequest, MvccStore};

use super::rng::Rng;

/// A client operation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OpKind {
    Put {
        key: u8,
        value: u64,
    },
    /// A linearizable range of one key (served after a read barrier).
    Get {
        key: u8,
    },
    /// A serializable range of one key: the member answers from its own
    /// store at once, possibly stale (checked in `Sim::finish`, not by the
    /// linearizability checker).
    SerialGet {
        key: u8,
    },
    /// A linearizable range over the whole key prefix; `keys` is how many
    /// keys the workload uses (`k0` … `k{keys-1}`).
    Scan {
        keys: u8,
    },
    /// A delete-range of one key.
    Delete {
        key: u8,
    },
    /// Compare-and-swap: set `new` iff the current value is `expected`
    /// (`None` = key absent).
    Cas {
        key: u8,
        expected: Option<u64>,
        new: u64,
    },
    /// `if guard then success else failure`, over several keys.
    Txn {
        guard: Guard,
        success: Vec<TxnOp>,
        failure: Vec<TxnOp>,
    },
}

/// A transaction's compare.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Guard {
    /// The key exists and holds `value`.
    Value { key: u8, value: u64 },
    /// The key's mod revision is `revision` (0: it does not exist).
    ModRevision { key: u8, revision: u64 },
}

/// A request in a transaction's branch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TxnOp {
    Put { key: u8, value: u64 },
    Delete { key: u8 },
    Get { key: u8 },
}

/// What an operation returned. Every `revision` is the response header's
/// (for a mutation that changed something, its own revision); `None` where
/// the answer did not say (a buggy leader's answer before the outcome was
/// known).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OpResult {
    Put {
        revision: Option<u64>,
    },
    /// `value == None` (and `mod_revision == 0`): the key was absent.
    Get {
        value: Option<u64>,
        mod_revision: u64,
        revision: u64,
    },
    /// The keys present: `(key, value, mod_revision)` in key order.
    Scan {
        revision: u64,
        kvs: Vec<(u8, u64, u64)>,
    },
    Delete {
        deleted: bool,
        revision: Option<u64>,
    },
    Cas {
        succeeded: bool,
        revision: Option<u64>,
    },
    /// `results`: one per request of the branch taken, or empty if unknown.
    Txn {
        succeeded: bool,
        revision: Option<u64>,
        results: Vec<TxnResult>,
    },
}

/// What one request of a transaction's branch returned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TxnResult {
    Put,
    Delete {
        deleted: bool,
    },
    Get {
        value: Option<u64>,
        mod_revision: u64,
    },
}

impl OpKind {
    /// Whether the operation is served without going through the Raft log.
    pub fn is_read(&self) -> bool {
        matches!(
            self,
            OpKind::Get { .. } | OpKind::SerialGet { .. } | OpKind::Scan { .. }
        )
    }

    /// Whether it is a read served from the member's local state at once.
    pub fn is_serializable(&self) -> bool {
        matches!(self, OpKind::SerialGet { .. })
    }
}

/// Draws the next client operation over keys `0..keys`. Every written value
/// is fresh (`next_value` is bumped); compares mostly expect recently
/// written values so that they succeed often enough to matter.
pub fn random_op(rng: &mut Rng, keys: u8, next_value: &mut u64) -> OpKind {
    assert!(keys > 0, "the workload needs a key");
    let key = rng.below(u64::from(keys)) as u8;
    match rng.below(20) {
        0..=5 => OpKind::Get { key },
        6 | 7 => OpKind::SerialGet { key },
        8 => OpKind::Scan { keys },
        9..=12 => OpKind::Put {
            key,
            value: fresh(next_value),
        },
        13 => OpKind::Delete { key },
        14..=16 => {
            let new = fresh(next_value);
            let expected = recent_value(rng, *next_value);
            OpKind::Cas { key, expected, new }
        }
        _ => {
            let guard = match rng.below(3) {
                0 => Guard::ModRevision {
                    key,
                    revision: if rng.chance(500) {
                        0
                    } else {
                        // Revisions grow a little slower than values.
                        rng.between(*next_value / 2, *next_value)
                    },
                },
                _ => match recent_value(rng, *next_value) {
                    Some(value) => Guard::Value { key, value },
                    None => Guard::ModRevision { key, revision: 0 },
                },
            };
            // Two or more distinct keys written on success (etcd refuses a
            // branch that writes a key twice).
            let mut order: Vec<u8> = (0..keys).collect();
            for i in (1..order.len()).rev() {
                let j = rng.below(i as u64 + 1) as usize;
                order.swap(i, j);
            }
            let written = rng.between(2.min(u64::from(keys)), u64::from(keys)) as usize;
            let success = order[..written]
                .iter()
                .map(|&key| {
                    if rng.chance(250) {
                        TxnOp::Delete { key }
                    } else {
                        TxnOp::Put {
                            key,
                            value: fresh(next_value),
                        }
                    }
                })
                .collect();
            let other = order[order.len() - 1];
            let failure = if rng.chance(500) {
                vec![TxnOp::Put {
                    key: other,
                    value: fresh(next_value),
                }]
            } else {
                vec![TxnOp::Get { key: other }]
            };
            OpKind::Txn {
                guard,
                success,
                failure,
            }
        }
    }
}

/// A value never handed out before.
fn fresh(next_value: &mut u64) -> u64 {
    let v = *next_value;
    *next_value += 1;
    v
}

/// A value written lately (`None`, the key's absence, now and then).
fn recent_value(rng: &mut Rng, next_value: u64) -> Option<u64> {
    if rng.chance(200) || next_value < 3 {
        None
    } else {
        let newest = next_value - 2;
        Some(rng.between(newest.saturating_sub(12).max(1), newest))
    }
}

/// The request a mutation is proposed as.
pub fn request_for(kind: &OpKind) -> KvRequest {
    match kind {
        OpKind::Put { key, value } => KvRequest::Put(put(*key, *value)),
        OpKind::Delete { key } => KvRequest::DeleteRange(DeleteRangeRequest {
            key: key_bytes(*key),
            ..Default::default()
        }),
        OpKind::Cas { key, expected, new } => {
            let compare = match expected {
                Some(v) => Compare {
                    key: key_bytes(*key),
                    target: CompareTarget::Value as i32,
                    result: CompareResult::Equal as i32,
                    target_union: Some(TargetUnion::Value(v.to_string().into_bytes())),
                    range_end: vec![],
                },
                None => Compare {
                    key: key_bytes(*key),
                    target: CompareTarget::Version as i32,
                    result: CompareResult::Equal as i32,
                    target_union: Some(TargetUnion::Version(0)),
                    range_end: vec![],
                },
            };
            KvRequest::Txn(TxnRequest {
                compare: vec![compare],
                success: vec![RequestOp {
                    request: Some(Op::RequestPut(put(*key, *new))),
                }],
                failure: vec![],
            })
        }
        OpKind::Txn {
            guard,
            success,
            failure,
        } => {
            let compare = match guard {
                Guard::Value { key, value } => Compare {
                    key: key_bytes(*key),
                    target: CompareTarget::Value as i32,
                    result: CompareResult::Equal as i32,
                    target_union: Some(TargetUnion::Value(value.to_string().into_bytes())),
                    range_end: vec![],
                },
                Guard::ModRevision { key, revision } => Compare {
                    key: key_bytes(*key),
                    target: CompareTarget::Mod as i32,
                    result: CompareResult::Equal as i32,
                    target_union: Some(TargetUnion::ModRevision(*revision as i64)),
                    range_end: vec![],
                },
            };
            let txn = TxnRequest {
                compare: vec![compare],
                success: success.iter().map(request_op).collect(),
                failure: failure.iter().map(request_op).collect(),
            };
            // What the server's API layer would refuse before proposing.
            debug_assert!(check_txn(&txn, 128).is_ok(), "{kind:?} is not a valid txn");
            KvRequest::Txn(txn)
        }
        OpKind::Get { .. } | OpKind::SerialGet { .. } | OpKind::Scan { .. } => {
            unreachable!("reads are not proposed: {kind:?}")
        }
    }
}

fn request_op(op: &TxnOp) -> RequestOp {
    let request = match op {
        TxnOp::Put { key, value } => Op::RequestPut(put(*key, *value)),
        TxnOp::Delete { key } => Op::RequestDeleteRange(DeleteRangeRequest {
            key: key_bytes(*key),
            ..Default::default()
        }),
        TxnOp::Get { key } => Op::RequestRange(RangeRequest {
            key: key_bytes(*key),
            ..Default::default()
        }),
    };
    RequestOp {
        request: Some(request),
    }
}

fn put(key: u8, value: u64) -> PutRequest {
    PutRequest {
        key: key_bytes(key),
        value: value.to_string().into_bytes(),
        ..Default::default()
    }
}

/// What the client of an applied mutation is told. The workload only
/// issues requests that apply on any state (no leases, valid txns), so an
/// apply error is a bug in the store or in this vocabulary: it panics, and
/// the simulator reports the panic as a violation.
pub fn result_of(kind: &OpKind, result: Result<KvResponse, MvccError>) -> OpResult {
    let response =
        result.unwrap_or_else(|e| panic!("simulated request {kind:?} failed to apply: {e}"));
    match (kind, response) {
        (OpKind::Put { .. }, KvResponse::Put(r)) => OpResult::Put {
            revision: Some(revision_of(r.header.as_ref())),
        },
        (OpKind::Delete { .. }, KvResponse::DeleteRange(r)) => OpResult::Delete {
            deleted: r.deleted > 0,
            revision: Some(revision_of(r.header.as_ref())),
        },
        (OpKind::Cas { .. }, KvResponse::Txn(t)) => OpResult::Cas {
            succeeded: t.succeeded,
            revision: Some(revision_of(t.header.as_ref())),
        },
        (OpKind::Txn { .. }, KvResponse::Txn(t)) => OpResult::Txn {
            succeeded: t.succeeded,
            revision: Some(revision_of(t.header.as_ref())),
            results: t.responses.iter().map(txn_result).collect(),
        },
        (kind, response) => panic!("{kind:?} was answered with {response:?}"),
    }
}

fn txn_result(response: &ResponseOp) -> TxnResult {
    match &response.response {
        Some(OpResponse::ResponsePut(_)) => TxnResult::Put,
        Some(OpResponse::ResponseDeleteRange(d)) => TxnResult::Delete {
            deleted: d.deleted > 0,
        },
        Some(OpResponse::ResponseRange(r)) => {
            let (value, mod_revision) = first_kv(r);
            TxnResult::Get {
                value,
                mod_revision,
            }
        }
        other => panic!("the workload's txns have no {other:?}"),
    }
}

/// Executes a read against a member's store, at its current revision.
pub fn read(store: &MvccStore, kind: &OpKind) -> OpResult {
    match kind {
        OpKind::Get { key } | OpKind::SerialGet { key } => {
            let r = range(
                store,
                RangeRequest {
                    key: key_bytes(*key),
                    serializable: kind.is_serializable(),
                    ..Default::default()
                },
            );
            let (value, mod_revision) = first_kv(&r);
            OpResult::Get {
                value,
                mod_revision,
                revision: revision_of(r.header.as_ref()),
            }
        }
        OpKind::Scan { .. } => {
            let r = range(
                store,
                RangeRequest {
                    key: PREFIX.to_vec(),
                    range_end: vec![PREFIX[0] + 1],
                    ..Default::default()
                },
            );
            OpResult::Scan {
                revision: revision_of(r.header.as_ref()),
                kvs: r
                    .kvs
                    .iter()
                    .map(|kv| (key_of(&kv.key), value_of(&kv.value), kv.mod_revision as u64))
                    .collect(),
            }
        }
        _ => unreachable!("{kind:?} is not a read"),
    }
}

/// A serializable read of `key` at revision `revision` (which must not be
/// compacted): the value and mod revision, as `OpResult::Get` has them.
pub fn read_at(store: &MvccStore, key: u8, revision: u64) -> Result<(Option<u64>, u64), MvccError> {
    let r = store.range(&RangeRequest {
        key: key_bytes(key),
        revision: revision as i64,
        ..Default::default()
    })?;
    Ok(first_kv(&r))
}

/// The answer a buggy leader gives when it acknowledges a mutation before
/// knowing its outcome (`fault-ack-uncommitted`): it took effect, at a
/// revision it cannot know.
pub fn predicted(kind: &OpKind) -> OpResult {
    match kind {
        OpKind::Put { .. } => OpResult::Put { revision: None },
        OpKind::Delete { .. } => OpResult::Delete {
            deleted: true,
            revision: None,
        },
        OpKind::Cas { .. } => OpResult::Cas {
            succeeded: true,
            revision: None,
        },
        OpKind::Txn { .. } => OpResult::Txn {
            succeeded: true,
            revision: None,
            results: vec![],
        },
        OpKind::Get { .. } | OpKind::SerialGet { .. } | OpKind::Scan { .. } => {
            unreachable!("reads are not proposed: {kind:?}")
        }
    }
}

const PREFIX: &[u8] = b"k";

pub fn key_bytes(key: u8) -> Vec<u8> {
    vec![PREFIX[0], b'0' + key]
}

fn key_of(bytes: &[u8]) -> u8 {
    match bytes {
        [p, k] if *p == PREFIX[0] => k - b'0',
        _ => panic!("the workload never writes key {bytes:?}"),
    }
}

fn value_of(bytes: &[u8]) -> u64 {
    std::str::from_utf8(bytes)
        .ok()
        .and_then(|s| s.parse().ok())
        .expect("values are numbers")
}

fn range(store: &MvccStore, request: RangeRequest) -> RangeResponse {
    store.range(&request).expect("in-memory range")
}

fn first_kv(r: &RangeResponse) -> (Option<u64>, u64) {
    r.kvs.first().map_or((None, 0), |kv| {
        (Some(value_of(&kv.value)), kv.mod_revision as u64)
    })
}

fn revision_of(header: Option<&ResponseHeader>) -> u64 {
    header.expect("the store sets every header").revision as u64
}

#[cfg(test)]
mod tests {
    use super::*;
    use rafter_storage::mvcc::ApplyEntry;

    fn apply(store: &MvccStore, index: u64, kind: &OpKind) -> OpResult {
        let request = request_for(kind);
        let (_, mut results) = store
            .apply(
                &[ApplyEntry {
                    client: None,
                    stamp: None,
                    index,
                    request: Some(&request),
                }],
                false,
            )
            .expect("in-memory apply");
        result_of(kind, results.pop().flatten().expect("a result"))
    }

    #[test]
    fn every_kind_maps_to_the_store_and_back() {
        let store = MvccStore::open_in_memory().expect("store");
        let put = |key, value| OpKind::Put { key, value };
        assert_eq!(
            apply(&store, 1, &put(0, 10)),
            OpResult::Put { revision: Some(2) }
        );
        assert_eq!(
            apply(&store, 2, &put(2, 11)),
            OpResult::Put { revision: Some(3) }
        );
        let txn = OpKind::Txn {
            guard: Guard::ModRevision {
                key: 0,
                revision: 2,
            },
            success: vec![TxnOp::Put { key: 0, value: 12 }, TxnOp::Delete { key: 2 }],
            failure: vec![TxnOp::Get { key: 2 }],
        };
        assert_eq!(
            apply(&store, 3, &txn),
            OpResult::Txn {
                succeeded: true,
                revision: Some(4),
                results: vec![TxnResult::Put, TxnResult::Delete { deleted: true }],
            }
        );
        assert_eq!(
            apply(&store, 4, &txn),
            OpResult::Txn {
                succeeded: false,
                revision: Some(4),
                results: vec![TxnResult::Get {
                    value: None,
                    mod_revision: 0
                }],
            }
        );
        let cas = OpKind::Cas {
            key: 0,
            expected: Some(12),
            new: 13,
        };
        assert_eq!(
            apply(&store, 5, &cas),
            OpResult::Cas {
                succeeded: true,
                revision: Some(5)
            }
        );
        assert_eq!(
            apply(&store, 6, &OpKind::Delete { key: 2 }),
            OpResult::Delete {
                deleted: false,
                revision: Some(5)
            }
        );
        assert_eq!(
            read(&store, &OpKind::Scan { keys: 3 }),
            OpResult::Scan {
                revision: 5,
                kvs: vec![(0, 13, 5)],
            }
        );
        assert_eq!(
            read(&store, &OpKind::SerialGet { key: 0 }),
            OpResult::Get {
                value: Some(13),
                mod_revision: 5,
                revision: 5
            }
        );
        assert_eq!(read_at(&store, 0, 4).expect("not compacted"), (Some(12), 4));
        assert_eq!(read_at(&store, 2, 3).expect("not compacted"), (Some(11), 3));
    }

    #[test]
    fn random_txns_are_valid_and_values_are_fresh() {
        let mut rng = Rng::new(7);
        let mut next_value = 1;
        let mut seen = std::collections::HashSet::new();
        for _ in 0..2000 {
            let kind = random_op(&mut rng, 3, &mut next_value);
            let values: Vec<u64> = match &kind {
                OpKind::Put { value, .. } => vec![*value],
                OpKind::Cas { new, .. } => vec![*new],
                OpKind::Txn {
                    success, failure, ..
                } => success
                    .iter()
                    .chain(failure)
                    .filter_map(|op| match op {
                        TxnOp::Put { value, .. } => Some(*value),
                        _ => None,
                    })
                    .collect(),
                _ => vec![],
            };
            for v in values {
                assert!(seen.insert(v), "value {v} written twice");
            }
            if !kind.is_read() {
                let KvRequest::Txn(t) = request_for(&kind) else {
                    continue;
                };
                assert!(check_txn(&t, 128).is_ok(), "{kind:?}");
            }
        }
    }
}
