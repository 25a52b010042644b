//! Which Txns the server may answer from the read path (a read snapshot of
//! the store, after a read-index barrier unless serializable) instead of
//! proposing them through Raft, as etcd does (its `isTxnReadonly` and
//! `isTxnSerializable`). A txn that only reads changes nothing, so putting
//! it in the log buys nothing but latency; and since both paths run the same
//! code (`mvcc/txn.rs`), the answer is the same either way.

use rafter_proto::etcdserverpb::request_op::Request as Op;
use rafter_proto::etcdserverpb::TxnRequest;

/// Whether every request of both branches is a Range, looking into nested
/// txns. etcd's `isTxnReadonly` counts a nested txn as a write even when it
/// only reads and proposes it; answers are the same, only that txn does not
/// enter the log here. An empty request is not read-only (the stateless
/// checks refuse it anyway).
pub fn is_read_only(t: &TxnRequest) -> bool {
    all_requests(t, |op| match op {
        Op::RequestRange(_) => true,
        Op::RequestTxn(inner) => is_read_only(inner),
        Op::RequestPut(_) | Op::RequestDeleteRange(_) => false,
    })
}

/// Whether a read-only txn may skip the read-index barrier: etcd's
/// `isTxnSerializable`, to the letter. Every request of both branches must be
/// a serializable Range; a nested txn is not, whatever it holds, so it gets
/// etcd's linearizable answer. A txn with no requests at all (only compares)
/// is serializable, as in etcd.
pub fn is_serializable(t: &TxnRequest) -> bool {
    all_requests(t, |op| matches!(op, Op::RequestRange(r) if r.serializable))
}

/// Whether `pred` holds for every request of both branches (not recursing).
fn all_requests(t: &TxnRequest, pred: impl Fn(&Op) -> bool) -> bool {
    t.success
        .iter()
        .chain(&t.failure)
        .all(|op| op.request.as_ref().is_some_and(&pred))
}

#[cfg(test)]
mod tests {
    use super::*;
    use rafter_proto::etcdserverpb::{DeleteRangeRequest, PutRequest, RangeRequest, RequestOp};

    fn range(serializable: bool) -> RequestOp {
        RequestOp {
            request: Some(Op::RequestRange(RangeRequest {
                key: b"k".to_vec(),
                serializable,
                ..Default::default()
            })),
        }
    }

    fn nested(t: TxnRequest) -> RequestOp {
        RequestOp {
            request: Some(Op::RequestTxn(t)),
        }
    }

    fn txn(success: Vec<RequestOp>, failure: Vec<RequestOp>) -> TxnRequest {
        TxnRequest {
            compare: vec![],
            success,
            failure,
        }
    }

    #[test]
    fn ranges_only_are_read_only() {
        assert!(is_read_only(&txn(vec![], vec![])));
        assert!(is_read_only(&txn(vec![range(false)], vec![range(true)])));
        let put = RequestOp {
            request: Some(Op::RequestPut(PutRequest::default())),
        };
        let delete = RequestOp {
            request: Some(Op::RequestDeleteRange(DeleteRangeRequest::default())),
        };
        assert!(!is_read_only(&txn(vec![range(false)], vec![put.clone()])));
        assert!(!is_read_only(&txn(vec![delete], vec![])));
        assert!(!is_read_only(&txn(
            vec![RequestOp { request: None }],
            vec![]
        )));
        // Nested txns are looked into, in either branch, at any depth.
        let reads = txn(
            vec![range(true)],
            vec![nested(txn(vec![], vec![range(true)]))],
        );
        assert!(is_read_only(&txn(vec![nested(reads.clone())], vec![])));
        let writes = txn(vec![range(true)], vec![nested(txn(vec![], vec![put]))]);
        assert!(!is_read_only(&txn(vec![], vec![nested(writes)])));
    }

    #[test]
    fn serializable_as_etcd_decides_it() {
        assert!(is_serializable(&txn(vec![], vec![])));
        assert!(is_serializable(&txn(vec![range(true)], vec![range(true)])));
        assert!(!is_serializable(&txn(
            vec![range(true)],
            vec![range(false)]
        )));
        assert!(!is_serializable(&txn(vec![range(false)], vec![])));
        let reads = txn(vec![range(true)], vec![range(true)]);
        assert!(!is_serializable(&txn(
            vec![range(true), nested(reads)],
            vec![]
        )));
    }
}
