//! Request checks that need no state (etcd runs them in its gRPC layer before
//! proposing): empty keys, the txn op limit, duplicate keys in a txn, and the
//! ignore_value/ignore_lease combinations.

use rafter_proto::etcdserverpb::request_op::Request as Op;
use rafter_proto::etcdserverpb::{DeleteRangeRequest, PutRequest, RangeRequest, TxnRequest};

use super::keyrange::KeyRange;
use super::MvccError;

pub fn check_range(r: &RangeRequest) -> Result<(), MvccError> {
    if r.key.is_empty() {
        return Err(MvccError::EmptyKey);
    }
    Ok(())
}

pub fn check_put(p: &PutRequest) -> Result<(), MvccError> {
    if p.key.is_empty() {
        return Err(MvccError::EmptyKey);
    }
    if p.ignore_value && !p.value.is_empty() {
        return Err(MvccError::ValueProvided);
    }
    if p.ignore_lease && p.lease != 0 {
        return Err(MvccError::LeaseProvided);
    }
    Ok(())
}

pub fn check_delete(d: &DeleteRangeRequest) -> Result<(), MvccError> {
    if d.key.is_empty() {
        return Err(MvccError::EmptyKey);
    }
    Ok(())
}

pub fn check_txn(t: &TxnRequest, max_txn_ops: usize) -> Result<(), MvccError> {
    check_txn_ops(t, max_txn_ops)?;
    check_intervals(t)?;
    Ok(())
}

fn check_txn_ops(t: &TxnRequest, max_txn_ops: usize) -> Result<(), MvccError> {
    if t.compare.len() > max_txn_ops || t.success.len() > max_txn_ops || t.failure.len() > max_txn_ops
    {
        return Err(MvccError::TooManyOps);
    }
    for c in &t.compare {
        if c.key.is_empty() {
            return Err(MvccError::EmptyKey);
        }
    }
    for op in t.success.iter().chain(&t.failure) {
        match &op.request {
            Some(Op::RequestRange(r)) => check_range(r)?,
            Some(Op::RequestPut(p)) => check_put(p)?,
            Some(Op::RequestDeleteRange(d)) => check_delete(d)?,
            Some(Op::RequestTxn(inner)) => check_txn_ops(inner, max_txn_ops)?,
            None => {}
        }
    }
    Ok(())
}

/// Keys written by one branch of a txn (nested txns included).
#[derive(Default)]
struct Writes {
    puts: Vec<Vec<u8>>,
    deletes: Vec<KeyRange>,
}

/// etcd's rule: within the ops that can run together, a key may be put at
/// most once and may not be both put and deleted.
fn check_intervals(t: &TxnRequest) -> Result<(), MvccError> {
    branch_writes(&t.success)?;
    branch_writes(&t.failure)?;
    Ok(())
}

fn branch_writes(ops: &[rafter_proto::etcdserverpb::RequestOp]) -> Result<Writes, MvccError> {
    let mut w = Writes::default();
    for op in ops {
        match &op.request {
            Some(Op::RequestPut(p)) => {
                if w.puts.contains(&p.key) {
                    return Err(MvccError::DuplicateKey);
                }
                w.puts.push(p.key.clone());
            }
            Some(Op::RequestDeleteRange(d)) => w.deletes.push(KeyRange::new(&d.key, &d.range_end)),
            Some(Op::RequestTxn(inner)) => {
                let s = branch_writes(&inner.success)?;
                let f = branch_writes(&inner.failure)?;
                // Only one of the inner branches runs, so each may repeat the
                // other's keys, but neither may collide with this level's.
                for key in s.puts.iter().chain(&f.puts) {
                    if w.puts.contains(key) {
                        return Err(MvccError::DuplicateKey);
                    }
                }
                for key in s.puts.into_iter().chain(f.puts) {
                    if !w.puts.contains(&key) {
                        w.puts.push(key);
                    }
                }
                w.deletes.extend(s.deletes);
                w.deletes.extend(f.deletes);
            }
            Some(Op::RequestRange(_)) | None => {}
        }
    }
    for key in &w.puts {
        if w.deletes.iter().any(|d| d.contains(key)) {
            return Err(MvccError::DuplicateKey);
        }
    }
    Ok(w)
}
