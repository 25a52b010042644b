//! Applying mutations inside one redb write transaction: Put, DeleteRange,
//! Txn and Compact with etcd's semantics. A request either fails its checks
//! before touching anything or is applied whole, so a batch of many requests
//! can share one transaction without a failed request leaving partial writes.

use rafter_proto::etcdserverpb::compare::{CompareResult, CompareTarget, TargetUnion};
use rafter_proto::etcdserverpb::request_op::Request as Op;
use rafter_proto::etcdserverpb::response_op::Response as OpResponse;
use rafter_proto::etcdserverpb::{
    CompactionRequest, CompactionResponse, Compare, DeleteRangeRequest, DeleteRangeResponse,
    PutRequest, PutResponse, RangeRequest, ResponseHeader, ResponseOp, TxnRequest, TxnResponse,
};
use rafter_proto::mvccpb::KeyValue;
use redb::{ReadableTable, Table};

use super::keyrange::KeyRange;
use super::read::{self, RevisionBounds};
use super::record::Record;
use super::tables::latest_get;
use super::{KvRequest, KvResponse, MvccError};

/// The tables of one write transaction plus the revision bookkeeping of the
/// request being applied.
pub struct Writer<'t> {
    pub latest: Table<'t, &'static [u8], &'static [u8]>,
    pub revs: Table<'t, (&'static [u8], u64), &'static [u8]>,
    pub rev_index: Table<'t, (u64, u64), &'static [u8]>,
    pub members: Table<'t, u64, &'static [u8]>,
    /// Revision of the last applied change.
    pub current_rev: i64,
    pub compact_rev: i64,
    /// Changes made by the request being applied (its sub-revisions).
    changes: u64,
}

impl<'t> Writer<'t> {
    pub fn new(
        latest: Table<'t, &'static [u8], &'static [u8]>,
        revs: Table<'t, (&'static [u8], u64), &'static [u8]>,
        rev_index: Table<'t, (u64, u64), &'static [u8]>,
        members: Table<'t, u64, &'static [u8]>,
        current_rev: i64,
        compact_rev: i64,
    ) -> Self {
        Writer {
            latest,
            revs,
            rev_index,
            members,
            current_rev,
            compact_rev,
            changes: 0,
        }
    }

    /// Applies one request. On error nothing was written.
    pub fn apply(&mut self, req: &KvRequest) -> Result<KvResponse, MvccError> {
        self.changes = 0;
        let resp = match req {
            KvRequest::Put(p) => {
                self.check_put(p)?;
                KvResponse::Put(self.put(p)?)
            }
            KvRequest::DeleteRange(d) => KvResponse::DeleteRange(self.delete_range(d)?),
            KvRequest::Txn(t) => KvResponse::Txn(self.txn(t)?),
            KvRequest::Compaction(c) => KvResponse::Compact(self.compact(c)?),
            KvRequest::MemberAttributes(a) => {
                let encoded = prost::Message::encode_to_vec(a);
                self.members.insert(a.member_id, encoded.as_slice())?;
                KvResponse::MemberAttributes
            }
        };
        if self.changes > 0 {
            self.current_rev += 1;
        }
        Ok(resp.with_revision(self.current_rev))
    }

    /// The revision the request's changes get: one past the last applied.
    fn write_rev(&self) -> i64 {
        self.current_rev + 1
    }

    /// Revision a read inside the request sees: its own writes included.
    fn read_bounds(&self) -> RevisionBounds {
        RevisionBounds {
            current: if self.changes > 0 {
                self.current_rev + 1
            } else {
                self.current_rev
            },
            compacted: self.compact_rev,
        }
    }

    fn check_put(&self, p: &PutRequest) -> Result<(), MvccError> {
        if p.lease != 0 {
            return Err(MvccError::LeaseNotFound);
        }
        if (p.ignore_value || p.ignore_lease) && latest_get(&self.latest, &p.key)?.is_none() {
            return Err(MvccError::KeyNotFound);
        }
        Ok(())
    }

    fn put(&mut self, p: &PutRequest) -> Result<PutResponse, MvccError> {
        let rev = self.write_rev();
        let prev = latest_get(&self.latest, &p.key)?;
        let value = match (&prev, p.ignore_value) {
            (Some(prev), true) => prev.value.clone(),
            _ => p.value.clone(),
        };
        let lease = match (&prev, p.ignore_lease) {
            (Some(prev), true) => prev.lease,
            _ => p.lease,
        };
        let rec = Record {
            create_revision: prev.as_ref().map_or(rev, |r| r.create_revision),
            mod_revision: rev,
            version: prev.as_ref().map_or(1, |r| r.version + 1),
            lease,
            value,
            tombstone: false,
        };
        self.record_change(&p.key, &rec)?;
        Ok(PutResponse {
            header: None,
            prev_kv: if p.prev_kv {
                prev.map(|r| r.to_key_value(&p.key))
            } else {
                None
            },
        })
    }

    fn delete_range(&mut self, d: &DeleteRangeRequest) -> Result<DeleteRangeResponse, MvccError> {
        let kr = KeyRange::new(&d.key, &d.range_end);
        let victims = self.live_keys(&kr)?;
        let rev = self.write_rev();
        let mut prev_kvs = Vec::new();
        for (key, prev) in &victims {
            let tomb = Record {
                create_revision: 0,
                mod_revision: rev,
                version: 0,
                lease: 0,
                value: vec![],
                tombstone: true,
            };
            self.record_change(key, &tomb)?;
            if d.prev_kv {
                prev_kvs.push(prev.to_key_value(key));
            }
        }
        Ok(DeleteRangeResponse {
            header: None,
            deleted: victims.len() as i64,
            prev_kvs,
        })
    }

    fn live_keys(&self, kr: &KeyRange) -> Result<Vec<(Vec<u8>, Record)>, MvccError> {
        let mut out = Vec::new();
        match kr {
            KeyRange::Single(k) => {
                if let Some(r) = latest_get(&self.latest, k)? {
                    out.push((k.clone(), r));
                }
            }
            KeyRange::Span { .. } if kr.is_empty() => {}
            KeyRange::Span { start, end } => {
                let iter = match end {
                    Some(e) => self.latest.range::<&[u8]>(start.as_slice()..e.as_slice())?,
                    None => self.latest.range::<&[u8]>(start.as_slice()..)?,
                };
                for item in iter {
                    let (k, v) = item?;
                    out.push((k.value().to_vec(), Record::decode(v.value())));
                }
            }
        }
        Ok(out)
    }

    /// Writes one change of `key` at the request's revision.
    fn record_change(&mut self, key: &[u8], rec: &Record) -> Result<(), MvccError> {
        let rev = self.write_rev() as u64;
        let encoded = rec.encode();
        self.revs.insert((key, rev), encoded.as_slice())?;
        self.rev_index.insert((rev, self.changes), key)?;
        if rec.tombstone {
            self.latest.remove(key)?;
        } else {
            self.latest.insert(key, encoded.as_slice())?;
        }
        self.changes += 1;
        Ok(())
    }

    fn range(
        &self,
        r: &RangeRequest,
    ) -> Result<rafter_proto::etcdserverpb::RangeResponse, MvccError> {
        read::range(&self.latest, &self.revs, self.read_bounds(), r)
    }

    fn txn(&mut self, t: &TxnRequest) -> Result<TxnResponse, MvccError> {
        // etcd decides every branch, nested ones included, against the state
        // before the transaction writes anything, then checks the chosen
        // requests, and only then executes them.
        let path = self.choose_path(t)?;
        self.check_path(t, &path)?;
        let mut path_iter = path.iter().copied();
        self.exec_txn(t, &mut path_iter)
    }

    /// Branch decisions in depth-first order of the txns that will run.
    fn choose_path(&self, t: &TxnRequest) -> Result<Vec<bool>, MvccError> {
        let mut path = Vec::new();
        self.choose_into(t, &mut path)?;
        Ok(path)
    }

    fn choose_into(&self, t: &TxnRequest, path: &mut Vec<bool>) -> Result<(), MvccError> {
        let mut ok = true;
        for c in &t.compare {
            if !self.compare(c)? {
                ok = false;
                break;
            }
        }
        path.push(ok);
        let ops = if ok { &t.success } else { &t.failure };
        for op in ops {
            if let Some(Op::RequestTxn(inner)) = &op.request {
                self.choose_into(inner, path)?;
            }
        }
        Ok(())
    }

    fn check_path(&self, t: &TxnRequest, path: &[bool]) -> Result<(), MvccError> {
        let mut it = path.iter().copied();
        self.check_txn(t, &mut it, &mut Vec::new())
    }

    /// Checks the requests that will run, in execution order. `deleted`
    /// collects the ranges deleted by earlier requests of the txn: a put with
    /// ignore_value/ignore_lease on a key deleted earlier in the same txn has
    /// no value to keep, so the txn fails with "key not found" (etcd 3.4
    /// crashes on this case; see ARCHITECTURE.md).
    fn check_txn(
        &self,
        t: &TxnRequest,
        path: &mut impl Iterator<Item = bool>,
        deleted: &mut Vec<KeyRange>,
    ) -> Result<(), MvccError> {
        let ok = path.next().expect("path covers every executed txn");
        let ops = if ok { &t.success } else { &t.failure };
        for op in ops {
            match &op.request {
                Some(Op::RequestPut(p)) => {
                    self.check_put(p)?;
                    if (p.ignore_value || p.ignore_lease)
                        && deleted.iter().any(|d| d.contains(&p.key))
                    {
                        return Err(MvccError::KeyNotFound);
                    }
                }
                Some(Op::RequestRange(r)) => {
                    let b = self.read_bounds();
                    let rev = if r.revision <= 0 {
                        b.current
                    } else {
                        r.revision
                    };
                    if rev > b.current {
                        return Err(MvccError::FutureRevision);
                    }
                    if rev < b.compacted {
                        return Err(MvccError::Compacted);
                    }
                }
                Some(Op::RequestTxn(inner)) => self.check_txn(inner, path, deleted)?,
                Some(Op::RequestDeleteRange(d)) => {
                    deleted.push(KeyRange::new(&d.key, &d.range_end))
                }
                None => {}
            }
        }
        Ok(())
    }

    fn exec_txn(
        &mut self,
        t: &TxnRequest,
        path: &mut impl Iterator<Item = bool>,
    ) -> Result<TxnResponse, MvccError> {
        let ok = path.next().expect("path covers every executed txn");
        let ops = if ok { &t.success } else { &t.failure };
        let mut responses = Vec::with_capacity(ops.len());
        for op in ops {
            let response = match &op.request {
                Some(Op::RequestRange(r)) => Some(OpResponse::ResponseRange(self.range(r)?)),
                Some(Op::RequestPut(p)) => {
                    let mut resp = self.put(p)?;
                    resp.header = Some(rev_header(self.write_rev()));
                    Some(OpResponse::ResponsePut(resp))
                }
                Some(Op::RequestDeleteRange(d)) => {
                    let mut resp = self.delete_range(d)?;
                    resp.header = Some(rev_header(self.read_bounds().current));
                    Some(OpResponse::ResponseDeleteRange(resp))
                }
                Some(Op::RequestTxn(inner)) => {
                    let mut resp = self.exec_txn(inner, path)?;
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
    fn compare(&self, c: &Compare) -> Result<bool, MvccError> {
        let kr = KeyRange::new(&c.key, &c.range_end);
        let kvs = self.live_keys(&kr)?;
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

    fn compact(&mut self, c: &CompactionRequest) -> Result<CompactionResponse, MvccError> {
        if c.revision <= self.compact_rev {
            return Err(MvccError::Compacted);
        }
        if c.revision > self.current_rev {
            return Err(MvccError::FutureRevision);
        }
        super::compact::compact(&mut self.revs, &mut self.rev_index, c.revision as u64)?;
        self.compact_rev = c.revision;
        Ok(CompactionResponse { header: None })
    }
}

fn rev_header(revision: i64) -> ResponseHeader {
    ResponseHeader {
        revision,
        ..Default::default()
    }
}

fn compare_one(c: &Compare, target: CompareTarget, kv: &KeyValue) -> bool {
    use std::cmp::Ordering;
    let ord = match (target, &c.target_union) {
        (CompareTarget::Value, Some(TargetUnion::Value(v))) => {
            kv.value.as_slice().cmp(v.as_slice())
        }
        (CompareTarget::Value, _) => kv.value.as_slice().cmp(&[][..]),
        (CompareTarget::Version, u) => kv.version.cmp(&int_of(u, |t| match t {
            TargetUnion::Version(n) => Some(*n),
            _ => None,
        })),
        (CompareTarget::Create, u) => kv.create_revision.cmp(&int_of(u, |t| match t {
            TargetUnion::CreateRevision(n) => Some(*n),
            _ => None,
        })),
        (CompareTarget::Mod, u) => kv.mod_revision.cmp(&int_of(u, |t| match t {
            TargetUnion::ModRevision(n) => Some(*n),
            _ => None,
        })),
        (CompareTarget::Lease, u) => kv.lease.cmp(&int_of(u, |t| match t {
            TargetUnion::Lease(n) => Some(*n),
            _ => None,
        })),
    };
    match CompareResult::try_from(c.result).unwrap_or(CompareResult::Equal) {
        CompareResult::Equal => ord == Ordering::Equal,
        CompareResult::Greater => ord == Ordering::Greater,
        CompareResult::Less => ord == Ordering::Less,
        CompareResult::NotEqual => ord != Ordering::Equal,
    }
}

fn int_of(u: &Option<TargetUnion>, pick: impl Fn(&TargetUnion) -> Option<i64>) -> i64 {
    u.as_ref().and_then(pick).unwrap_or(0)
}
