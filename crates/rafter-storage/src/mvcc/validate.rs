//! Request checks that need no state (etcd runs them in its gRPC layer before
//! proposing): empty keys, the txn op limit, duplicate keys in a txn, and the
//! ignore_value/ignore_lease combinations.

use rafter_proto::etcdserverpb::request_op::Request as Op;
use rafter_proto::etcdserverpb::{DeleteRangeRequest, PutRequest, RangeRequest, TxnRequest};

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

/// etcd's `checkTxnRequest`: each list within the op limit; a nested txn in
/// a branch gets the limit minus that branch's length; an empty op is
/// refused (etcd answers it with "key not found").
fn check_txn_ops(t: &TxnRequest, max_txn_ops: usize) -> Result<(), MvccError> {
    if t.compare.len() > max_txn_ops
        || t.success.len() > max_txn_ops
        || t.failure.len() > max_txn_ops
    {
        return Err(MvccError::TooManyOps);
    }
    for c in &t.compare {
        if c.key.is_empty() {
            return Err(MvccError::EmptyKey);
        }
    }
    for branch in [&t.success, &t.failure] {
        let nested_limit = max_txn_ops - branch.len();
        for op in branch.iter() {
            match &op.request {
                Some(Op::RequestRange(r)) => check_range(r)?,
                Some(Op::RequestPut(p)) => check_put(p)?,
                Some(Op::RequestDeleteRange(d)) => check_delete(d)?,
                Some(Op::RequestTxn(inner)) => check_txn_ops(inner, nested_limit)?,
                None => return Err(MvccError::KeyNotFound),
            }
        }
    }
    Ok(())
}

/// A delete's key interval as etcd's duplicate-key check sees it: the literal
/// `[key, range_end)` (a point when `range_end` is empty). etcd does not
/// special-case `range_end == [0]` here, so a from-key delete is an empty
/// interval for this check; we match that so the same txns are accepted.
struct DelInterval {
    start: Vec<u8>,
    /// `None` for a single key.
    end: Option<Vec<u8>>,
}

impl DelInterval {
    fn new(key: &[u8], range_end: &[u8]) -> Self {
        DelInterval {
            start: key.to_vec(),
            end: (!range_end.is_empty()).then(|| range_end.to_vec()),
        }
    }

    fn contains(&self, k: &[u8]) -> bool {
        match &self.end {
            None => self.start.as_slice() == k,
            Some(end) => self.start.as_slice() <= k && k < end.as_slice(),
        }
    }
}

/// etcd's rule (its `checkIntervals`), per branch: a key may be put at most
/// once, and not inside a range deleted at the same level or by an earlier
/// nested txn. The two branches of one nested txn exclude each other, so they
/// may put the same key.
fn check_intervals(t: &TxnRequest) -> Result<(), MvccError> {
    branch_writes(&t.success)?;
    branch_writes(&t.failure)?;
    Ok(())
}

type Puts = std::collections::HashSet<Vec<u8>>;

fn branch_writes(
    ops: &[rafter_proto::etcdserverpb::RequestOp],
) -> Result<(Puts, Vec<DelInterval>), MvccError> {
    let mut dels: Vec<DelInterval> = ops
        .iter()
        .filter_map(|op| match &op.request {
            Some(Op::RequestDeleteRange(d)) => Some(DelInterval::new(&d.key, &d.range_end)),
            _ => None,
        })
        .collect();
    let deleted = |dels: &[DelInterval], k: &[u8]| dels.iter().any(|d| d.contains(k));
    let mut puts = Puts::new();
    for op in ops {
        let Some(Op::RequestTxn(inner)) = &op.request else {
            continue;
        };
        let (puts_then, dels_then) = branch_writes(&inner.success)?;
        let (puts_else, dels_else) = branch_writes(&inner.failure)?;
        for k in &puts_then {
            if puts.contains(k) || deleted(&dels, k) {
                return Err(MvccError::DuplicateKey);
            }
            puts.insert(k.clone());
        }
        for k in &puts_else {
            if (puts.contains(k) && !puts_then.contains(k)) || deleted(&dels, k) {
                return Err(MvccError::DuplicateKey);
            }
            puts.insert(k.clone());
        }
        dels.extend(dels_then);
        dels.extend(dels_else);
    }
    for op in ops {
        if let Some(Op::RequestPut(p)) = &op.request {
            if puts.contains(&p.key) || deleted(&dels, &p.key) {
                return Err(MvccError::DuplicateKey);
            }
            puts.insert(p.key.clone());
        }
    }
    Ok((puts, dels))
}
