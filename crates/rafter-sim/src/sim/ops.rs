//! The client operations' vocabulary: the etcd request each simulated
//! operation sends and how its response reads as an operation result.

use rafter_proto::etcdserverpb::compare::{CompareResult, CompareTarget, TargetUnion};
use rafter_proto::etcdserverpb::request_op::Request as Op;
use rafter_proto::etcdserverpb::{Compare, PutRequest, RangeRequest, RequestOp, TxnRequest};
use rafter_storage::mvcc::KvResponse;
use rafter_storage::{KvRequest, MvccError, MvccStore};

use super::history::{OpKind, OpResult};

impl OpKind {
    pub fn is_read(&self) -> bool {
        matches!(self, OpKind::Get { .. })
    }

    pub fn is_serializable(&self) -> bool {
        false
    }
}

/// What an applied mutation returned, as the operation's result.
pub fn result_of(kind: &OpKind, result: Result<KvResponse, MvccError>) -> OpResult {
    match (kind, result) {
        (_, Ok(KvResponse::Txn(t))) => OpResult::Cas(t.succeeded),
        (_, Ok(_)) => OpResult::Put,
        (kind, Err(e)) => panic!("simulated request {kind:?} failed to apply: {e}"),
    }
}

/// Runs a read operation against a member's store.
pub fn read(store: &MvccStore, kind: &OpKind) -> OpResult {
    OpResult::Get(read_key(store, kind.key()))
}

/// The answer a buggy member gives without knowing the outcome.
pub fn predicted(kind: &OpKind) -> OpResult {
    match kind {
        OpKind::Cas { .. } => OpResult::Cas(true),
        _ => OpResult::Put,
    }
}

fn key_bytes(key: u8) -> Vec<u8> {
    vec![b'k', b'0' + key]
}

fn value_of(bytes: &[u8]) -> u64 {
    std::str::from_utf8(bytes)
        .ok()
        .and_then(|s| s.parse().ok())
        .expect("values are numbers")
}

fn read_key(store: &MvccStore, key: u8) -> Option<u64> {
    let resp = store
        .range(&RangeRequest {
            key: key_bytes(key),
            ..Default::default()
        })
        .expect("in-memory range");
    resp.kvs.first().map(|kv| value_of(&kv.value))
}

pub fn request_for(kind: &OpKind) -> KvRequest {
    let put = |key: u8, value: u64| PutRequest {
        key: key_bytes(key),
        value: value.to_string().into_bytes(),
        ..Default::default()
    };
    match kind {
        OpKind::Put { key, value } => KvRequest::Put(put(*key, *value)),
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
        OpKind::Get { .. } => unreachable!("reads are not proposed"),
    }
}
