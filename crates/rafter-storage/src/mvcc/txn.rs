//! One implementation of a Txn for both paths that run one: the write path
//! (`write.rs` `Writer`, inside the apply transaction, for txns that write)
//! and the read path (`read.rs` `ReadView`, inside a read transaction, for
//! read-only txns served without Raft). etcd also runs both through one
//! function (`applierV3backend.Txn` in 3.4, `txn.Txn` in 3.6); sharing the
//! code is what makes a read-only txn give the same answer whichever way it
//! is served.
//!
//! Deciding the branches, checking the chosen requests and comparing keys
//! read only `kv_latest` through `redb::ReadableTable`, so a write
//! transaction's table and a read transaction's serve alike. Running the
//! chosen requests goes through [`TxnTables`], which each path implements.

use rafter_proto::etcdserverpb::compare::{CompareResult, CompareTarget, TargetUnion};
use rafter_proto::etcdserverpb::request_op::Request as Op;
use rafter_proto::etcdserverpb::response_op::Response as OpResponse;
use rafter_proto::etcdserverpb::{
    Compare, DeleteRangeRequest, DeleteRangeResponse, PutRequest, PutResponse, RangeRequest,
    RangeResponse, ResponseHeader, ResponseOp, TxnRequest, TxnResponse,
};
use rafter_proto::mvccpb::KeyValue;
use redb::ReadableTable;

use super::keyrange::KeyRange;
use super::read::{self, RevisionBounds};
use super::record::Record;
use super::tables::latest_get;
use super::MvccError;

/// What running a txn needs from the transaction underneath it.
pub trait TxnTables {
    type Latest: ReadableTable<&'static [u8], &'static [u8]>;

    /// `kv_latest` as the txn finds it (before it writes anything).
    fn latest(&self) -> &Self::Latest;

    /// Whether a lease with this id exists (a put may name it).
    fn lease_exists(&self, id: i64) -> Result<bool, MvccError>;

    /// The revisions a range inside the txn may read at this point.
    fn read_bounds(&self) -> RevisionBounds;

    /// A range inside the txn.
    fn range_in_txn(&self, r: &RangeRequest) -> Result<RangeResponse, MvccError>;

    /// A put inside the txn, its header as etcd fills it.
    fn put_in_txn(&mut self, p: &PutRequest) -> Result<PutResponse, MvccError>;

    /// A delete inside the txn, its header as etcd fills it.
    fn delete_in_txn(&mut self, d: &DeleteRangeRequest) -> Result<DeleteRangeResponse, MvccError>;
}

/// Runs a txn with etcd's semantics; the outer header is left to the caller.
/// etcd decides every branch, nested ones included, against the state before
/// the transaction writes anything, then checks the chosen requests, and
/// only then executes them.
pub fn run(tables: &mut impl TxnTables, t: &TxnRequest) -> Result<TxnResponse, MvccError> {
    let path = choose_path(tables.latest(), t)?;
    check_txn(
        tables.latest(),
        &|id| tables.lease_exists(id),
        tables.read_bounds(),
        t,
        &mut path.iter().copied(),
        &mut Vec::new(),
    )?;
    exec_txn(tables, t, &mut path.iter().copied())
}

/// A header with only a revision (the server adds member, cluster, term).
pub fn rev_header(revision: i64) -> ResponseHeader {
    ResponseHeader {
        revision,
        ..Default::default()
    }
}

/// The checks a put needs the state for: an unknown lease, and
/// ignore_value/ignore_lease on a key that does not exist.
pub fn check_put(
    latest: &impl ReadableTable<&'static [u8], &'static [u8]>,
    lease_exists: &dyn Fn(i64) -> Result<bool, MvccError>,
    p: &PutRequest,
) -> Result<(), MvccError> {
    if p.lease != 0 && !p.ignore_lease && !lease_exists(p.lease)? {
        return Err(MvccError::LeaseNotFound);
    }
    if (p.ignore_value || p.ignore_lease) && latest_get(latest, &p.key)?.is_none() {
        return Err(MvccError::KeyNotFound);
    }
    Ok(())
}

/// The live keys of a range, with their newest records, in key order.
pub fn live_keys(
    latest: &impl ReadableTable<&'static [u8], &'static [u8]>,
    kr: &KeyRange,
) -> Result<Vec<(Vec<u8>, Record)>, MvccError> {
    let mut out = Vec::new();
    read::for_each_live(latest, kr, |k, v| {
        out.push((k.to_vec(), Record::decode(v)));
        true
    })?;
    Ok(out)
}

/// Branch decisions in depth-first order of the txns that will run.
fn choose_path(
    latest: &impl ReadableTable<&'static [u8], &'static [u8]>,
    t: &TxnRequest,
) -> Result<Vec<bool>, MvccError> {
    let mut path = Vec::new();
    choose_into(latest, t, &mut path)?;
    Ok(path)
}

fn choose_into(
    latest: &impl ReadableTable<&'static [u8], &'static [u8]>,
    t: &TxnRequest,
    path: &mut Vec<bool>,
) -> Result<(), MvccError> {
    let mut ok = true;
    for c in &t.compare {
        if !compare(latest, c)? {
            ok = false;
            break;
        }
    }
    path.push(ok);
    for op in branch(t, ok) {
        if let Some(Op::RequestTxn(inner)) = &op.request {
            choose_into(latest, inner, path)?;
        }
    }
    Ok(())
}

fn branch(t: &TxnRequest, succeeded: bool) -> &[rafter_proto::etcdserverpb::RequestOp] {
    if succeeded {
        &t.success
    } else {
        &t.failure
    }
}

/// Checks the requests that will run, in execution order. `deleted`
/// collects the ranges deleted by earlier requests of the txn: a put with
/// ignore_value/ignore_lease on a key deleted earlier in the same txn has
/// no value to keep, so the txn fails with "key not found" (etcd 3.4
/// crashes on this case; see ARCHITECTURE.md).
fn check_txn(
    latest: &impl ReadableTable<&'static [u8], &'static [u8]>,
    lease_exists: &dyn Fn(i64) -> Result<bool, MvccError>,
    bounds: RevisionBounds,
    t: &TxnRequest,
    path: &mut impl Iterator<Item = bool>,
    deleted: &mut Vec<KeyRange>,
) -> Result<(), MvccError> {
    let ok = path.next().expect("path covers every executed txn");
    for op in branch(t, ok) {
        match &op.request {
            Some(Op::RequestPut(p)) => {
                check_put(latest, lease_exists, p)?;
                if (p.ignore_value || p.ignore_lease) && deleted.iter().any(|d| d.contains(&p.key))
                {
                    return Err(MvccError::KeyNotFound);
                }
            }
            Some(Op::RequestRange(r)) => {
                bounds.resolve(r.revision)?;
            }
            Some(Op::RequestTxn(inner)) => {
                check_txn(latest, lease_exists, bounds, inner, path, deleted)?
            }
            Some(Op::RequestDeleteRange(d)) => deleted.push(KeyRange::new(&d.key, &d.range_end)),
            None => {}
        }
    }
    Ok(())
}

fn exec_txn(
    tables: &mut impl TxnTables,
    t: &TxnRequest,
    path: &mut impl Iterator<Item = bool>,
) -> Result<TxnResponse, MvccError> {
    let ok = path.next().expect("path covers every executed txn");
    let ops = branch(t, ok);
    let mut responses = Vec::with_capacity(ops.len());
    for op in ops {
        let response = match &op.request {
            Some(Op::RequestRange(r)) => Some(OpResponse::ResponseRange(tables.range_in_txn(r)?)),
            Some(Op::RequestPut(p)) => Some(OpResponse::ResponsePut(tables.put_in_txn(p)?)),
            Some(Op::RequestDeleteRange(d)) => {
                Some(OpResponse::ResponseDeleteRange(tables.delete_in_txn(d)?))
            }
            Some(Op::RequestTxn(inner)) => {
                let mut resp = exec_txn(tables, inner, path)?;
                // As etcd: a nested txn's header stays empty.
                resp.header = Some(ResponseHeader::default());
                Some(OpResponse::ResponseTxn(resp))
            }
            None => None,
        };
        responses.push(ResponseOp { response });
    }
    Ok(TxnResponse {
        header: None,
        succeeded: ok,
        responses,
    })
}

/// One compare over every key in its range; a missing key compares as an
/// empty key-value, except that a value compare on it always fails.
fn compare(
    latest: &impl ReadableTable<&'static [u8], &'static [u8]>,
    c: &Compare,
) -> Result<bool, MvccError> {
    let kr = KeyRange::new(&c.key, &c.range_end);
    let kvs = live_keys(latest, &kr)?;
    let target = CompareTarget::try_from(c.target).unwrap_or(CompareTarget::Version);
    if kvs.is_empty() {
        if target == CompareTarget::Value {
            return Ok(false);
        }
        return Ok(compare_one(c, target, &KeyValue::default()));
    }
    Ok(kvs
        .iter()
        .all(|(k, r)| compare_one(c, target, &r.to_key_value(k))))
}

fn compare_one(c: &Compare, target: CompareTarget, kv: &KeyValue) -> bool {
    use std::cmp::Ordering;
    // An operand of another kind than the target counts as zero (the empty
    // value for a value compare), as in etcd.
    let ord = match (target, &c.target_union) {
        (CompareTarget::Value, Some(TargetUnion::Value(v))) => {
            kv.value.as_slice().cmp(v.as_slice())
        }
        (CompareTarget::Value, _) => kv.value.as_slice().cmp(&[][..]),
        (CompareTarget::Version, Some(TargetUnion::Version(n))) => kv.version.cmp(n),
        (CompareTarget::Version, _) => kv.version.cmp(&0),
        (CompareTarget::Create, Some(TargetUnion::CreateRevision(n))) => kv.create_revision.cmp(n),
        (CompareTarget::Create, _) => kv.create_revision.cmp(&0),
        (CompareTarget::Mod, Some(TargetUnion::ModRevision(n))) => kv.mod_revision.cmp(n),
        (CompareTarget::Mod, _) => kv.mod_revision.cmp(&0),
        (CompareTarget::Lease, Some(TargetUnion::Lease(n))) => kv.lease.cmp(n),
        (CompareTarget::Lease, _) => kv.lease.cmp(&0),
    };
    match CompareResult::try_from(c.result).unwrap_or(CompareResult::Equal) {
        CompareResult::Equal => ord == Ordering::Equal,
        CompareResult::Greater => ord == Ordering::Greater,
        CompareResult::Less => ord == Ordering::Less,
        CompareResult::NotEqual => ord != Ordering::Equal,
    }
}
