//! Model test of the MVCC store. Random sequences of Put, DeleteRange, Txn,
//! Range and Compact run against [`MvccStore`] and against a tiny in-memory
//! model of etcd's semantics (the map of live keys at every revision, plus the
//! compaction point). Every response, error, header revision and applied
//! state has to match. The model follows etcd's code
//! (server/etcdserver/txn, storage/mvcc), not the store's code, so a
//! disagreement shows a real difference. proptest shrinks a failing sequence,
//! and the failure message lists the concrete requests of the shrunk case.
//!
//! Read-only txns (ranges and nested read-only txns, with compares) are
//! also served by [`MvccStore::txn_read`], the read path, and then applied
//! as an entry on the same, unchanged state: the two answers must be the
//! same bytes, errors included, and match the model.
//!
//! Requests that the stateless checks in `mvcc::validate` reject never reach
//! Raft in the server, so they are skipped here as well.

use std::collections::{BTreeMap, BTreeSet};
use std::mem::discriminant;
use std::path::PathBuf;

use proptest::collection::vec;
use proptest::prelude::*;
use proptest::sample::select;
use proptest::test_runner::TestCaseError;
use prost::Message as _;
use rafter_proto::etcdserverpb::compare::{CompareResult, CompareTarget, TargetUnion};
use rafter_proto::etcdserverpb::range_request::{SortOrder, SortTarget};
use rafter_proto::etcdserverpb::request_op::Request as Op;
use rafter_proto::etcdserverpb::response_op::Response as OpResponse;
use rafter_proto::etcdserverpb::{
    CompactionRequest, CompactionResponse, Compare, DeleteRangeRequest, DeleteRangeResponse,
    PutRequest, PutResponse, RangeRequest, RangeResponse, RequestOp, ResponseHeader, ResponseOp,
    TxnRequest, TxnResponse,
};
use rafter_proto::mvccpb::KeyValue;
use rafter_storage::mvcc::{read_only, validate, AppliedState, ApplyEntry, KvResponse};
use rafter_storage::{KvRequest, MvccError, MvccStore};

// ---------------------------------------------------------------------------
// The key space and the generated operations.
// ---------------------------------------------------------------------------

/// Keys that get written: few, so that operations keep colliding.
const KEYS: [&[u8]; 6] = [b"a", b"ab", b"b", b"ba", b"c", b"d"];
/// Range bounds: the keys and the gaps between them. `\0` as a range end
/// means "every key from the start on", as in etcd.
const BOUNDS: [&[u8]; 9] = [b"\0", b"a", b"ab", b"b", b"ba", b"bb", b"c", b"d", b"e"];
/// Values, the empty one included; few, so that values tie.
const VALUES: [&[u8]; 4] = [b"", b"x", b"y", b"z"];
/// A lease id. No lease is ever granted, so requests with it must fail.
const LEASE: i64 = 7;
/// The server's `--max-txn-ops` default.
const MAX_TXN_OPS: usize = 128;

/// Which keys an operation touches.
#[derive(Debug, Clone, Copy)]
enum Span {
    /// One key of `KEYS`.
    Key(usize),
    /// `[BOUNDS[start], BOUNDS[end])`: empty when end <= start, except that
    /// an end of `\0` reaches to the last key.
    Between(usize, usize),
    /// Every key from `BOUNDS[start]` on.
    From(usize),
}

impl Span {
    fn bounds(self) -> (Vec<u8>, Vec<u8>) {
        match self {
            Span::Key(k) => (KEYS[k].to_vec(), vec![]),
            Span::Between(s, e) => (BOUNDS[s].to_vec(), BOUNDS[e].to_vec()),
            Span::From(s) => (BOUNDS[s].to_vec(), vec![0]),
        }
    }
}

/// Revisions are generated relative to the state they are used in: a
/// selector maps to 1..=current+1, so both past and future ones show up.
fn pick_rev(selector: u8, current: i64) -> i64 {
    1 + i64::from(selector) % (current + 1)
}

#[derive(Debug, Clone)]
struct RangeOp {
    span: Span,
    revision: Option<u8>,
    limit: i64,
    /// `(sort_order, sort_target)`, both as their protobuf numbers.
    sort: Option<(i32, i32)>,
    keys_only: bool,
    count_only: bool,
    /// min_mod, max_mod, min_create, max_create.
    filters: [Option<u8>; 4],
}

impl RangeOp {
    fn request(&self, current: i64) -> RangeRequest {
        let (key, range_end) = self.span.bounds();
        let rev = |selector: Option<u8>| selector.map_or(0, |s| pick_rev(s, current));
        let (sort_order, sort_target) = self.sort.unwrap_or((0, 0));
        RangeRequest {
            key,
            range_end,
            limit: self.limit,
            revision: rev(self.revision),
            sort_order,
            sort_target,
            keys_only: self.keys_only,
            count_only: self.count_only,
            min_mod_revision: rev(self.filters[0]),
            max_mod_revision: rev(self.filters[1]),
            min_create_revision: rev(self.filters[2]),
            max_create_revision: rev(self.filters[3]),
            ..Default::default()
        }
    }
}

#[derive(Debug, Clone)]
struct PutOp {
    key: usize,
    value: usize,
    prev_kv: bool,
    ignore_value: bool,
    ignore_lease: bool,
    with_lease: bool,
}

impl PutOp {
    fn request(&self) -> PutRequest {
        PutRequest {
            key: KEYS[self.key].to_vec(),
            value: VALUES[self.value].to_vec(),
            lease: if self.with_lease { LEASE } else { 0 },
            prev_kv: self.prev_kv,
            ignore_value: self.ignore_value,
            ignore_lease: self.ignore_lease,
        }
    }
}

#[derive(Debug, Clone)]
struct DeleteOp {
    span: Span,
    prev_kv: bool,
}

impl DeleteOp {
    fn request(&self) -> DeleteRangeRequest {
        let (key, range_end) = self.span.bounds();
        DeleteRangeRequest {
            key,
            range_end,
            prev_kv: self.prev_kv,
        }
    }
}

#[derive(Debug, Clone)]
struct CompareOp {
    span: Span,
    target: CompareTarget,
    result: CompareResult,
    operand: u8,
}

impl CompareOp {
    fn compare(&self, current: i64) -> Compare {
        let (key, range_end) = self.span.bounds();
        let n = i64::from(self.operand);
        let operand = match self.target {
            CompareTarget::Version => TargetUnion::Version(n % 4),
            CompareTarget::Create => TargetUnion::CreateRevision(n % (current + 2)),
            CompareTarget::Mod => TargetUnion::ModRevision(n % (current + 2)),
            CompareTarget::Value => TargetUnion::Value(VALUES[n as usize % VALUES.len()].to_vec()),
            CompareTarget::Lease => TargetUnion::Lease(if n % 4 == 0 { LEASE } else { 0 }),
        };
        Compare {
            result: self.result as i32,
            target: self.target as i32,
            key,
            range_end,
            target_union: Some(operand),
        }
    }
}

#[derive(Debug, Clone)]
enum TxnItem {
    Range(RangeOp),
    Put(PutOp),
    Delete(DeleteOp),
    Txn(Box<TxnOp>),
}

#[derive(Debug, Clone)]
struct TxnOp {
    compare: Vec<CompareOp>,
    success: Vec<TxnItem>,
    failure: Vec<TxnItem>,
}

impl TxnOp {
    fn request(&self, current: i64) -> TxnRequest {
        let ops = |items: &[TxnItem]| items.iter().map(|i| i.request(current)).collect();
        TxnRequest {
            compare: self.compare.iter().map(|c| c.compare(current)).collect(),
            success: ops(&self.success),
            failure: ops(&self.failure),
        }
    }
}

impl TxnItem {
    fn request(&self, current: i64) -> RequestOp {
        let op = match self {
            TxnItem::Range(r) => Op::RequestRange(r.request(current)),
            TxnItem::Put(p) => Op::RequestPut(p.request()),
            TxnItem::Delete(d) => Op::RequestDeleteRange(d.request()),
            TxnItem::Txn(t) => Op::RequestTxn(t.request(current)),
        };
        RequestOp { request: Some(op) }
    }
}

/// A mutation, as proposed through Raft.
#[derive(Debug, Clone)]
enum Cmd {
    Put(PutOp),
    Delete(DeleteOp),
    Txn(TxnOp),
    Compact(u8),
}

impl Cmd {
    fn request(&self, current: i64) -> KvRequest {
        match self {
            Cmd::Put(p) => KvRequest::Put(p.request()),
            Cmd::Delete(d) => KvRequest::DeleteRange(d.request()),
            Cmd::Txn(t) => KvRequest::Txn(t.request(current)),
            Cmd::Compact(selector) => KvRequest::Compaction(CompactionRequest {
                revision: i64::from(*selector) % (current + 2),
                physical: false,
            }),
        }
    }
}

/// One step of a test case.
#[derive(Debug, Clone)]
enum Step {
    /// One `apply` call; `None` is an entry without a KV request (a new
    /// leader's empty entry).
    Apply(Vec<Option<Cmd>>),
    Range(RangeOp),
    /// A read-only txn, served by `txn_read` and then applied.
    ReadTxn(TxnOp),
}

/// The stateless checks the server runs before proposing.
fn validate(req: &KvRequest) -> Result<(), MvccError> {
    match req {
        KvRequest::Put(p) => validate::check_put(p),
        KvRequest::DeleteRange(d) => validate::check_delete(d),
        KvRequest::Txn(t) => validate::check_txn(t, MAX_TXN_OPS),
        KvRequest::Compaction(_)
        | KvRequest::MemberAttributes(_)
        | KvRequest::Membership(_)
        | KvRequest::LeaseGrant(_)
        | KvRequest::LeaseRevoke(_)
        | KvRequest::LeaseCheckpoint(_)
        | KvRequest::SessionOpen(_)
        | KvRequest::SessionKeepAlive(_)
        | KvRequest::SessionClose(_)
        | KvRequest::SessionCancel(_)
        | KvRequest::ClusterClock(_)
        | KvRequest::LocalWrites(_)
        | KvRequest::ConflictPolicy(_)
        | KvRequest::Alarm(_) => Ok(()),
    }
}

// ---------------------------------------------------------------------------
// The model.
// ---------------------------------------------------------------------------

/// Live keys at one revision.
type Kvs = BTreeMap<Vec<u8>, KeyValue>;

/// A range's matching key-values in response order before the limit, split
/// into runs that tie on the sort target. etcd's sort is not stable, so any
/// order within a run (and any choice of members when the limit cuts one)
/// is correct.
type Groups = Vec<Vec<KeyValue>>;

/// Why the model rejects a request: etcd's error first, then every other
/// check the request fails. For a txn, etcd checks every Put on the chosen
/// path (key, then lease) before every Range, while the store checks op by
/// op and a Put's lease before its key; when several checks fail the two can
/// name different ones, so any of them is accepted.
///
/// One txn check is the store's own: a Put with ignore_value/ignore_lease on
/// a key that an earlier op of the txn deleted fails with KeyNotFound before
/// anything runs (etcd passes its check against the state before the txn,
/// then panics while applying).
type Rejection = Vec<MvccError>;

/// A model response, with the tie groups of every Range it ran, in order.
#[derive(Debug)]
struct Outcome {
    resp: KvResponse,
    groups: Vec<Groups>,
}

struct Model {
    /// `history[r]` holds the live keys at revision `r` (index 0 is unused).
    history: Vec<Kvs>,
    /// -1 before the first compaction, as in etcd, so compacting revision 0
    /// succeeds once.
    compacted: i64,
    applied_index: u64,
}

impl Model {
    fn new() -> Model {
        Model {
            history: vec![Kvs::new(), Kvs::new()],
            compacted: -1,
            applied_index: 0,
        }
    }

    fn current(&self) -> i64 {
        self.history.len() as i64 - 1
    }

    fn live(&self) -> &Kvs {
        self.history.last().expect("revision 1 always exists")
    }

    fn state(&self) -> AppliedState {
        AppliedState {
            applied_index: self.applied_index,
            current_revision: self.current(),
            compact_revision: self.compacted,
        }
    }

    fn range(&self, req: &RangeRequest) -> Result<(RangeResponse, Groups), MvccError> {
        let current = self.current();
        let rev = if req.revision <= 0 {
            current
        } else {
            req.revision
        };
        if rev > current {
            return Err(MvccError::FutureRevision);
        }
        if rev < self.compacted {
            return Err(MvccError::Compacted);
        }
        Ok(read(&self.history[rev as usize], current, req))
    }

    /// An entry without a KV request still advances the applied index.
    fn skip_entry(&mut self) {
        self.applied_index += 1;
    }

    fn apply(&mut self, req: &KvRequest) -> Result<Outcome, Rejection> {
        self.applied_index += 1;
        if let KvRequest::Compaction(c) = req {
            return self.compact(c.revision).map_err(|e| vec![e]);
        }
        let (outcome, next) = self.execute(req)?;
        if let Some(kvs) = next {
            self.history.push(kvs);
        }
        Ok(outcome)
    }

    /// Runs a Put, DeleteRange or Txn; returns the new live keys when it
    /// changed any.
    fn execute(&self, req: &KvRequest) -> Result<(Outcome, Option<Kvs>), Rejection> {
        let mut change = Change::new(self);
        let resp = match req {
            KvRequest::Put(p) => {
                self.check_put_alone(p).map_err(|e| vec![e])?;
                KvResponse::Put(change.put(p))
            }
            KvRequest::DeleteRange(d) => KvResponse::DeleteRange(change.delete(d)),
            KvRequest::Txn(t) => {
                let path = self.decide(t);
                let failures = self.check_txn(t, &path);
                if !failures.is_empty() {
                    return Err(failures);
                }
                let mut resp = change.txn(t, &mut path.into_iter());
                resp.header = Some(header(change.view_rev()));
                KvResponse::Txn(resp)
            }
            KvRequest::Compaction(_)
            | KvRequest::MemberAttributes(_)
            | KvRequest::Membership(_)
            | KvRequest::LeaseGrant(_)
            | KvRequest::LeaseRevoke(_)
            | KvRequest::LeaseCheckpoint(_)
            | KvRequest::SessionOpen(_)
            | KvRequest::SessionKeepAlive(_)
            | KvRequest::SessionClose(_)
            | KvRequest::SessionCancel(_)
            | KvRequest::ClusterClock(_)
            | KvRequest::LocalWrites(_)
            | KvRequest::ConflictPolicy(_)
            | KvRequest::Alarm(_) => {
                unreachable!(
                    "the generator makes no compaction, membership, lease, session or local write here"
                )
            }
        };
        Ok(change.finish(resp))
    }

    fn compact(&mut self, rev: i64) -> Result<Outcome, MvccError> {
        if rev <= self.compacted {
            return Err(MvccError::Compacted);
        }
        if rev > self.current() {
            return Err(MvccError::FutureRevision);
        }
        self.compacted = rev;
        let resp = CompactionResponse {
            header: Some(header(self.current())),
        };
        Ok(Outcome {
            resp: KvResponse::Compact(resp),
            groups: vec![],
        })
    }

    /// etcd's plain Put checks the lease before the key.
    fn check_put_alone(&self, p: &PutRequest) -> Result<(), MvccError> {
        if p.lease != 0 {
            return Err(MvccError::LeaseNotFound);
        }
        self.check_put_key(p)
    }

    fn check_put_key(&self, p: &PutRequest) -> Result<(), MvccError> {
        if (p.ignore_value || p.ignore_lease) && !self.live().contains_key(&p.key) {
            return Err(MvccError::KeyNotFound);
        }
        Ok(())
    }

    /// The branch every txn that will run takes, decided against the state
    /// before the request (etcd's `compareToPath`), depth first.
    fn decide(&self, t: &TxnRequest) -> Vec<bool> {
        let mut path = Vec::new();
        self.decide_into(t, &mut path);
        path
    }

    fn decide_into(&self, t: &TxnRequest, path: &mut Vec<bool>) {
        let succeeded = t.compare.iter().all(|c| compare_holds(self.live(), c));
        path.push(succeeded);
        for op in branch(t, succeeded) {
            if let Some(Op::RequestTxn(inner)) = &op.request {
                self.decide_into(inner, path);
            }
        }
    }

    /// etcd's `checkTxn`, which returns the first of these: every Put on
    /// the chosen path (key, then lease), then every Range (revision), all
    /// against the state before the request. Returns every failing check,
    /// the store's check of Puts after deletes (see [`Rejection`]) included.
    fn check_txn(&self, t: &TxnRequest, path: &[bool]) -> Rejection {
        let mut ops = Vec::new();
        chosen_ops(t, &mut path.iter().copied(), &mut ops);
        let mut failures = Vec::new();
        for op in &ops {
            if let Op::RequestPut(p) = op {
                failures.extend(self.check_put_key(p).err());
                if p.lease != 0 {
                    failures.push(MvccError::LeaseNotFound);
                }
            }
        }
        failures.extend(put_after_delete(&ops));
        for op in &ops {
            if let Op::RequestRange(r) = op {
                failures.extend(self.check_txn_range(r).err());
            }
        }
        failures
    }

    fn check_txn_range(&self, r: &RangeRequest) -> Result<(), MvccError> {
        match r.revision {
            0 => Ok(()),
            rev if rev > self.current() => Err(MvccError::FutureRevision),
            rev if rev < self.compacted => Err(MvccError::Compacted),
            _ => Ok(()),
        }
    }
}

fn branch(t: &TxnRequest, succeeded: bool) -> &[RequestOp] {
    if succeeded {
        &t.success
    } else {
        &t.failure
    }
}

/// The non-txn ops a txn will run, depth first.
fn chosen_ops<'t>(t: &'t TxnRequest, path: &mut impl Iterator<Item = bool>, out: &mut Vec<&'t Op>) {
    let succeeded = path.next().expect("one decision per txn that runs");
    for op in branch(t, succeeded) {
        match &op.request {
            Some(Op::RequestTxn(inner)) => chosen_ops(inner, path, out),
            Some(op) => out.push(op),
            None => {}
        }
    }
}

/// KeyNotFound for every Put with ignore_value/ignore_lease on a key that
/// an earlier op in `ops` (in execution order) deletes.
fn put_after_delete(ops: &[&Op]) -> Vec<MvccError> {
    let mut deleted: Vec<&DeleteRangeRequest> = Vec::new();
    let mut failures = Vec::new();
    for op in ops {
        match op {
            Op::RequestDeleteRange(d) => deleted.push(d),
            Op::RequestPut(p)
                if (p.ignore_value || p.ignore_lease)
                    && deleted
                        .iter()
                        .any(|d| in_span(&p.key, &d.key, &d.range_end)) =>
            {
                failures.push(MvccError::KeyNotFound)
            }
            _ => {}
        }
    }
    failures
}

fn header(revision: i64) -> ResponseHeader {
    ResponseHeader {
        revision,
        ..Default::default()
    }
}

/// One request's writes in progress: the live keys it edits, whether it has
/// changed any, and the tie groups of the ranges it ran.
struct Change<'m> {
    model: &'m Model,
    live: Kvs,
    changed: bool,
    groups: Vec<Groups>,
}

impl<'m> Change<'m> {
    fn new(model: &'m Model) -> Change<'m> {
        Change {
            model,
            live: model.live().clone(),
            changed: false,
            groups: vec![],
        }
    }

    /// All changes of one request share this revision.
    fn write_rev(&self) -> i64 {
        self.model.current() + 1
    }

    /// The revision reads inside the request see: its own writes included.
    fn view_rev(&self) -> i64 {
        self.model.current() + i64::from(self.changed)
    }

    fn finish(self, resp: KvResponse) -> (Outcome, Option<Kvs>) {
        let outcome = Outcome {
            resp,
            groups: self.groups,
        };
        (outcome, self.changed.then_some(self.live))
    }

    fn put(&mut self, p: &PutRequest) -> PutResponse {
        let rev = self.write_rev();
        let prev = self.live.get(&p.key).cloned();
        let kv = KeyValue {
            key: p.key.clone(),
            create_revision: prev.as_ref().map_or(rev, |kv| kv.create_revision),
            mod_revision: rev,
            version: prev.as_ref().map_or(1, |kv| kv.version + 1),
            value: match (&prev, p.ignore_value) {
                (Some(kv), true) => kv.value.clone(),
                _ => p.value.clone(),
            },
            lease: match (&prev, p.ignore_lease) {
                (Some(kv), true) => kv.lease,
                _ => p.lease,
            },
        };
        self.live.insert(p.key.clone(), kv);
        self.changed = true;
        PutResponse {
            header: Some(header(rev)),
            prev_kv: prev.filter(|_| p.prev_kv),
        }
    }

    fn delete(&mut self, d: &DeleteRangeRequest) -> DeleteRangeResponse {
        let victims: Vec<KeyValue> = self
            .live
            .values()
            .filter(|kv| in_span(&kv.key, &d.key, &d.range_end))
            .cloned()
            .collect();
        for kv in &victims {
            self.live.remove(&kv.key);
        }
        self.changed |= !victims.is_empty();
        DeleteRangeResponse {
            header: Some(header(self.view_rev())),
            deleted: victims.len() as i64,
            prev_kvs: if d.prev_kv { victims } else { vec![] },
        }
    }

    /// A Range inside a txn; its revision was checked before anything ran.
    fn range(&mut self, r: &RangeRequest) -> RangeResponse {
        let view = self.view_rev();
        let rev = if r.revision <= 0 { view } else { r.revision };
        let kvs = if rev == view {
            &self.live
        } else {
            &self.model.history[rev as usize]
        };
        let (resp, groups) = read(kvs, view, r);
        self.groups.push(groups);
        resp
    }

    /// Runs the branch `path` chose. A nested txn's header stays empty:
    /// etcd only fills in the outermost one.
    fn txn(&mut self, t: &TxnRequest, path: &mut impl Iterator<Item = bool>) -> TxnResponse {
        let succeeded = path.next().expect("one decision per txn that runs");
        let mut responses = Vec::new();
        for op in branch(t, succeeded) {
            let response = op.request.as_ref().map(|op| self.op(op, path));
            responses.push(ResponseOp { response });
        }
        TxnResponse {
            header: Some(ResponseHeader::default()),
            succeeded,
            responses,
        }
    }

    fn op(&mut self, op: &Op, path: &mut impl Iterator<Item = bool>) -> OpResponse {
        match op {
            Op::RequestRange(r) => OpResponse::ResponseRange(self.range(r)),
            Op::RequestPut(p) => OpResponse::ResponsePut(self.put(p)),
            Op::RequestDeleteRange(d) => OpResponse::ResponseDeleteRange(self.delete(d)),
            Op::RequestTxn(t) => OpResponse::ResponseTxn(self.txn(t, path)),
        }
    }
}

/// etcd's key-range convention: an empty end is the key alone, `\0` is
/// everything from the key on, otherwise `[start, end)`.
fn in_span(key: &[u8], start: &[u8], end: &[u8]) -> bool {
    match end {
        [] => key == start,
        [0] => key >= start,
        _ => key >= start && key < end,
    }
}

/// A Range over `kvs`, answered at header revision `header_rev`.
fn read(kvs: &Kvs, header_rev: i64, req: &RangeRequest) -> (RangeResponse, Groups) {
    let in_range: Vec<&KeyValue> = kvs
        .values()
        .filter(|kv| in_span(&kv.key, &req.key, &req.range_end))
        .collect();
    let mut groups = if req.count_only {
        Groups::new()
    } else {
        let fetched = in_range.iter().take(fetch_limit(req));
        let kept = fetched.filter(|kv| passes_filters(kv, req));
        sort_into_groups(kept.map(|kv| (*kv).clone()).collect(), req)
    };
    if req.keys_only {
        groups.iter_mut().flatten().for_each(|kv| kv.value.clear());
    }
    let limit = if req.limit > 0 {
        req.limit as usize
    } else {
        usize::MAX
    };
    let all: Vec<KeyValue> = groups.iter().flatten().cloned().collect();
    let resp = RangeResponse {
        header: Some(header(header_rev)),
        more: all.len() > limit,
        kvs: all.into_iter().take(limit).collect(),
        count: in_range.len() as i64,
    };
    (resp, groups)
}

/// How many keys etcd reads, in key order, before filtering and sorting:
/// with a limit, no sort order and no revision filter, one past the limit.
/// So a non-key sort target with order NONE (which etcd sorts ascending)
/// only sorts those keys, not the whole range.
fn fetch_limit(r: &RangeRequest) -> usize {
    let filtered = [
        r.min_mod_revision,
        r.max_mod_revision,
        r.min_create_revision,
        r.max_create_revision,
    ]
    .iter()
    .any(|&bound| bound != 0);
    if r.limit > 0 && r.sort_order == SortOrder::None as i32 && !filtered {
        r.limit as usize + 1
    } else {
        usize::MAX
    }
}

fn passes_filters(kv: &KeyValue, r: &RangeRequest) -> bool {
    let at_least = |bound: i64, v: i64| bound == 0 || v >= bound;
    let at_most = |bound: i64, v: i64| bound == 0 || v <= bound;
    at_least(r.min_mod_revision, kv.mod_revision)
        && at_most(r.max_mod_revision, kv.mod_revision)
        && at_least(r.min_create_revision, kv.create_revision)
        && at_most(r.max_create_revision, kv.create_revision)
}

/// Orders key-ordered `kvs` as the request asks, in runs of equal sort keys.
fn sort_into_groups(kvs: Vec<KeyValue>, r: &RangeRequest) -> Groups {
    let target = SortTarget::try_from(r.sort_target).expect("generated sort target");
    let order = match SortOrder::try_from(r.sort_order).expect("generated sort order") {
        SortOrder::None if target != SortTarget::Key => SortOrder::Ascend,
        order => order,
    };
    if order == SortOrder::None {
        return kvs.into_iter().map(|kv| vec![kv]).collect();
    }
    let mut kvs = kvs;
    kvs.sort_by_key(|kv| sort_key(kv, target));
    if order == SortOrder::Descend {
        kvs.reverse();
    }
    let mut groups: Groups = Vec::new();
    for kv in kvs {
        match groups.last_mut() {
            Some(run) if sort_key(&run[0], target) == sort_key(&kv, target) => run.push(kv),
            _ => groups.push(vec![kv]),
        }
    }
    groups
}

fn sort_key(kv: &KeyValue, target: SortTarget) -> (i64, Vec<u8>) {
    match target {
        SortTarget::Key => (0, kv.key.clone()),
        SortTarget::Version => (kv.version, vec![]),
        SortTarget::Create => (kv.create_revision, vec![]),
        SortTarget::Mod => (kv.mod_revision, vec![]),
        SortTarget::Value => (0, kv.value.clone()),
    }
}

/// etcd's `applyCompare`: every key in range must satisfy the compare; with
/// no key in range an all-zero key-value is compared, except that a value
/// compare then fails.
fn compare_holds(live: &Kvs, c: &Compare) -> bool {
    let target = CompareTarget::try_from(c.target).expect("generated compare target");
    let kvs: Vec<&KeyValue> = live
        .values()
        .filter(|kv| in_span(&kv.key, &c.key, &c.range_end))
        .collect();
    if kvs.is_empty() {
        return target != CompareTarget::Value && compare_kv(c, &KeyValue::default());
    }
    kvs.into_iter().all(|kv| compare_kv(c, kv))
}

fn compare_kv(c: &Compare, kv: &KeyValue) -> bool {
    let ord = match c.target_union.as_ref().expect("generated operand") {
        TargetUnion::Value(v) => kv.value.cmp(v),
        TargetUnion::Version(n) => kv.version.cmp(n),
        TargetUnion::CreateRevision(n) => kv.create_revision.cmp(n),
        TargetUnion::ModRevision(n) => kv.mod_revision.cmp(n),
        TargetUnion::Lease(n) => kv.lease.cmp(n),
    };
    match CompareResult::try_from(c.result).expect("generated compare result") {
        CompareResult::Equal => ord.is_eq(),
        CompareResult::Greater => ord.is_gt(),
        CompareResult::Less => ord.is_lt(),
        CompareResult::NotEqual => ord.is_ne(),
    }
}

// ---------------------------------------------------------------------------
// Comparing store and model responses.
// ---------------------------------------------------------------------------

fn same_error(a: &MvccError, b: &MvccError) -> bool {
    discriminant(a) == discriminant(b)
}

fn response_matches(
    got: &KvResponse,
    want: &KvResponse,
    groups: &mut std::slice::Iter<'_, Groups>,
) -> Result<(), String> {
    match (got, want) {
        (KvResponse::Txn(g), KvResponse::Txn(w)) => txn_matches(g, w, groups),
        _ if got == want => Ok(()),
        _ => Err(format!("store: {got:?}\nmodel: {want:?}")),
    }
}

fn txn_matches(
    got: &TxnResponse,
    want: &TxnResponse,
    groups: &mut std::slice::Iter<'_, Groups>,
) -> Result<(), String> {
    if got.header != want.header
        || got.succeeded != want.succeeded
        || got.responses.len() != want.responses.len()
    {
        return Err(format!("store txn: {got:?}\nmodel txn: {want:?}"));
    }
    for (g, w) in got.responses.iter().zip(&want.responses) {
        match (&g.response, &w.response) {
            (Some(OpResponse::ResponseRange(g)), Some(OpResponse::ResponseRange(w))) => {
                range_matches(g, w, groups.next().expect("model ran this range"))?
            }
            (Some(OpResponse::ResponseTxn(g)), Some(OpResponse::ResponseTxn(w))) => {
                txn_matches(g, w, groups)?
            }
            (g, w) if g == w => {}
            (g, w) => return Err(format!("store op: {g:?}\nmodel op: {w:?}")),
        }
    }
    Ok(())
}

/// Equal, or equal up to the order etcd leaves unspecified: position by
/// position, the store's key-value must come from the same tie group as the
/// model's, and no key may repeat.
fn range_matches(got: &RangeResponse, want: &RangeResponse, groups: &Groups) -> Result<(), String> {
    if got == want {
        return Ok(());
    }
    let group_of = |kv: &KeyValue| groups.iter().position(|g| g.contains(kv));
    let mut keys = BTreeSet::new();
    let ties_only = got.header == want.header
        && got.count == want.count
        && got.more == want.more
        && got.kvs.len() == want.kvs.len()
        && got.kvs.iter().zip(&want.kvs).all(|(g, w)| {
            group_of(g).is_some() && group_of(g) == group_of(w) && keys.insert(g.key.clone())
        });
    if ties_only {
        Ok(())
    } else {
        Err(format!("store range: {got:?}\nmodel range: {want:?}"))
    }
}

// ---------------------------------------------------------------------------
// Running a case against both.
// ---------------------------------------------------------------------------

type StoreResult = Option<Result<KvResponse, MvccError>>;
type ModelResult = Option<Result<Outcome, Rejection>>;

/// Entries for one `apply` call and what the model answered for each.
#[derive(Default)]
struct Batch {
    requests: Vec<Option<KvRequest>>,
    expected: Vec<ModelResult>,
}

struct Harness {
    dir: tempfile::TempDir,
    store: MvccStore,
    model: Model,
    /// The concrete requests so far, for failure messages.
    log: Vec<String>,
}

impl Harness {
    fn new() -> Harness {
        let dir = tempfile::tempdir().expect("temp dir");
        let store = MvccStore::open(&store_path(&dir)).expect("open store");
        Harness {
            dir,
            store,
            model: Model::new(),
            log: vec![],
        }
    }

    fn fail(&self, what: impl std::fmt::Display) -> TestCaseError {
        TestCaseError::fail(format!("{what}\nrequests:\n  {}", self.log.join("\n  ")))
    }

    fn run(&mut self, steps: &[(Step, u8)]) -> Result<(), TestCaseError> {
        for (step, probe) in steps {
            self.step(step, *probe)?;
        }
        Ok(())
    }

    /// One step, then the applied state and full reads at the current and
    /// at a past revision (`probe` picks which).
    fn step(&mut self, step: &Step, probe: u8) -> Result<(), TestCaseError> {
        match step {
            Step::Apply(cmds) => self.apply(cmds)?,
            Step::Range(op) => {
                let req = op.request(self.model.current());
                self.log.push(describe_range(&req));
                self.check_range(&req)?;
            }
            Step::ReadTxn(op) => self.read_txn(op.request(self.model.current()))?,
        }
        self.check_state()?;
        let current = self.model.current();
        self.check_range(&full_range(0))?;
        self.check_range(&full_range(1 + i64::from(probe) % current))
    }

    /// Applies the commands that pass the stateless checks in one batch,
    /// each as its own entry.
    fn apply(&mut self, cmds: &[Option<Cmd>]) -> Result<(), TestCaseError> {
        let mut batch = Batch::default();
        for cmd in cmds {
            match cmd {
                Some(cmd) => self.admit(cmd.request(self.model.current()), &mut batch),
                None => self.admit_empty(&mut batch),
            }
        }
        self.apply_entries(&batch, false).map(drop)
    }

    /// Serves a read-only txn with `txn_read`, then applies it as an entry
    /// on the same state (it changes nothing but the applied index): the
    /// answers must be the same bytes, or the same error, and the applied
    /// one must match the model (`apply_entries` checks that).
    fn read_txn(&mut self, req: TxnRequest) -> Result<(), TestCaseError> {
        if !read_only::is_read_only(&req) {
            return Err(self.fail(format!("not read-only: {}", describe_txn(&req))));
        }
        let read = self.store.txn_read(&req);
        let mut batch = Batch::default();
        self.admit(KvRequest::Txn(req), &mut batch);
        if batch.requests.is_empty() {
            // Refused by the stateless checks: neither path would run it.
            return Ok(());
        }
        let applied = self.apply_entries(&batch, false)?;
        let same = match (&read, applied.as_slice()) {
            (Ok(r), [Some(Ok(KvResponse::Txn(a)))]) => r.encode_to_vec() == a.encode_to_vec(),
            (Err(r), [Some(Err(a))]) => r.to_string() == a.to_string(),
            _ => false,
        };
        if !same {
            return Err(self.fail(format!(
                "txn_read and apply differ
txn_read: {read:?}
apply: {applied:?}"
            )));
        }
        Ok(())
    }

    /// Applies concrete requests, one `apply` call each.
    fn apply_requests(&mut self, requests: Vec<KvRequest>) -> Result<(), TestCaseError> {
        for req in requests {
            let mut batch = Batch::default();
            self.admit(req, &mut batch);
            self.apply_entries(&batch, false)?;
            self.check_state()?;
        }
        Ok(())
    }

    /// Adds `req` to the batch and runs it on the model, unless the
    /// stateless checks reject it (then the server would not propose it).
    fn admit(&mut self, req: KvRequest, batch: &mut Batch) {
        if let Err(e) = validate(&req) {
            self.log
                .push(format!("({e}, not proposed) {}", describe(&req)));
            return;
        }
        self.log.push(describe(&req));
        batch.expected.push(Some(self.model.apply(&req)));
        batch.requests.push(Some(req));
    }

    fn admit_empty(&mut self, batch: &mut Batch) {
        self.log.push("(entry without request)".into());
        self.model.skip_entry();
        batch.requests.push(None);
        batch.expected.push(None);
    }

    /// Applies the batch and checks every result against the model; returns
    /// the store's results.
    fn apply_entries(
        &mut self,
        batch: &Batch,
        durable: bool,
    ) -> Result<Vec<StoreResult>, TestCaseError> {
        if batch.requests.is_empty() {
            return Ok(vec![]);
        }
        let first = self.model.applied_index + 1 - batch.requests.len() as u64;
        let entries: Vec<ApplyEntry<'_>> = (first..)
            .zip(&batch.requests)
            .map(|(index, request)| ApplyEntry {
                client: None,
                stamp: None,
                index,
                request: request.as_ref(),
            })
            .collect();
        let (state, results) = self
            .store
            .apply(&entries, durable)
            .map_err(|e| self.fail(format!("apply failed: {e}")))?;
        if state != self.model.state() {
            let want = self.model.state();
            return Err(self.fail(format!("apply state: store {state:?}, model {want:?}")));
        }
        let expected = &batch.expected;
        if results.len() != expected.len() {
            return Err(self.fail(format!(
                "{} results for {} entries",
                results.len(),
                expected.len()
            )));
        }
        for (got, want) in results.iter().zip(expected) {
            self.check_result(got, want)?;
        }
        Ok(results)
    }

    fn check_result(&self, got: &StoreResult, want: &ModelResult) -> Result<(), TestCaseError> {
        let verdict = match (got, want) {
            (None, None) => Ok(()),
            (Some(Ok(g)), Some(Ok(w))) => response_matches(g, &w.resp, &mut w.groups.iter()),
            (Some(Err(g)), Some(Err(w))) if w.iter().any(|w| same_error(g, w)) => Ok(()),
            (g, w) => Err(format!("store: {g:?}\nmodel: {w:?}")),
        };
        verdict.map_err(|e| self.fail(format!("result of the last request differs\n{e}")))
    }

    fn check_range(&self, req: &RangeRequest) -> Result<(), TestCaseError> {
        let verdict = match (self.store.range(req), self.model.range(req)) {
            (Ok(got), Ok((want, groups))) => range_matches(&got, &want, &groups),
            (Err(g), Err(w)) if same_error(&g, &w) => Ok(()),
            (g, w) => Err(format!("store: {g:?}\nmodel: {:?}", w.map(|(r, _)| r))),
        };
        verdict.map_err(|e| self.fail(format!("{} differs\n{e}", describe_range(req))))
    }

    fn check_state(&self) -> Result<(), TestCaseError> {
        let got = self.store.state().map_err(|e| self.fail(e))?;
        let want = self.model.state();
        if got != want {
            return Err(self.fail(format!("state: store {got:?}, model {want:?}")));
        }
        Ok(())
    }

    /// Every revision still readable, and one just below the compaction
    /// point (which must fail).
    fn check_all_revisions(&self) -> Result<(), TestCaseError> {
        for rev in (self.model.compacted - 1).max(1)..=self.model.current() {
            self.check_range(&full_range(rev))?;
        }
        Ok(())
    }

    /// Applies an entry without request with `durable`, which puts
    /// everything applied so far on disk.
    fn seal(&mut self) -> Result<(), TestCaseError> {
        let mut batch = Batch::default();
        self.admit_empty(&mut batch);
        self.apply_entries(&batch, true).map(drop)
    }

    fn reopen(self) -> Result<Harness, TestCaseError> {
        let Harness {
            dir,
            store,
            model,
            mut log,
        } = self;
        drop(store);
        log.push("(reopen)".into());
        let store = MvccStore::open(&store_path(&dir))
            .map_err(|e| TestCaseError::fail(format!("reopen: {e}")))?;
        Ok(Harness {
            dir,
            store,
            model,
            log,
        })
    }

    /// An entry at or below the applied index is a replay of something the
    /// state already holds: it must be skipped, changing nothing.
    fn check_replay_is_skipped(&self) -> Result<(), TestCaseError> {
        let put = KvRequest::Put(PutRequest {
            key: KEYS[0].to_vec(),
            value: b"replayed".to_vec(),
            ..Default::default()
        });
        let entry = ApplyEntry {
            client: None,
            stamp: None,
            index: self.model.applied_index,
            request: Some(&put),
        };
        let (state, results) = self
            .store
            .apply(&[entry], false)
            .map_err(|e| self.fail(format!("replay: {e}")))?;
        if state != self.model.state() || results.len() != 1 || results[0].is_some() {
            return Err(self.fail(format!("replay was applied: {state:?} {results:?}")));
        }
        self.check_all_revisions()
    }
}

fn store_path(dir: &tempfile::TempDir) -> PathBuf {
    dir.path().join("kv.redb")
}

/// Every key, at `revision` (0 = current).
fn full_range(revision: i64) -> RangeRequest {
    RangeRequest {
        key: vec![0],
        range_end: vec![0],
        revision,
        ..Default::default()
    }
}

// ---------------------------------------------------------------------------
// Readable requests for failure messages.
// ---------------------------------------------------------------------------

fn show(bytes: &[u8]) -> String {
    if bytes == [0] {
        "\\0".into()
    } else {
        String::from_utf8_lossy(bytes).into_owned()
    }
}

fn show_span(key: &[u8], end: &[u8]) -> String {
    match end {
        [] => show(key),
        [0] => format!("[{}, +inf)", show(key)),
        _ => format!("[{}, {})", show(key), show(end)),
    }
}

fn flag(out: &mut String, on: bool, name: &str) {
    if on {
        out.push(' ');
        out.push_str(name);
    }
}

fn describe(req: &KvRequest) -> String {
    match req {
        KvRequest::Put(p) => describe_put(p),
        KvRequest::DeleteRange(d) => describe_delete(d),
        KvRequest::Txn(t) => describe_txn(t),
        KvRequest::Compaction(c) => format!("compact {}", c.revision),
        KvRequest::MemberAttributes(a) => format!("member {:x} attributes", a.member_id),
        KvRequest::Membership(c) => format!("membership change {:?}", c.kind),
        KvRequest::LeaseGrant(g) => format!("grant lease {} ttl {}", g.id, g.ttl),
        KvRequest::LeaseRevoke(r) => format!("revoke lease {}", r.id),
        KvRequest::LeaseCheckpoint(c) => format!("checkpoint {} leases", c.checkpoints.len()),
        other => format!("{other:?}"),
    }
}

fn describe_put(p: &PutRequest) -> String {
    let mut s = format!("put {}={:?}", show(&p.key), show(&p.value));
    flag(&mut s, p.prev_kv, "prev_kv");
    flag(&mut s, p.ignore_value, "ignore_value");
    flag(&mut s, p.ignore_lease, "ignore_lease");
    flag(&mut s, p.lease != 0, &format!("lease={}", p.lease));
    s
}

fn describe_delete(d: &DeleteRangeRequest) -> String {
    let mut s = format!("delete {}", show_span(&d.key, &d.range_end));
    flag(&mut s, d.prev_kv, "prev_kv");
    s
}

fn describe_range(r: &RangeRequest) -> String {
    let mut s = format!("range {}", show_span(&r.key, &r.range_end));
    let numbers = [
        ("rev", r.revision),
        ("limit", r.limit),
        ("min_mod", r.min_mod_revision),
        ("max_mod", r.max_mod_revision),
        ("min_create", r.min_create_revision),
        ("max_create", r.max_create_revision),
    ];
    for (name, n) in numbers {
        flag(&mut s, n != 0, &format!("{name}={n}"));
    }
    let order = SortOrder::try_from(r.sort_order).map_or("?", |o| o.as_str_name());
    let target = SortTarget::try_from(r.sort_target).map_or("?", |t| t.as_str_name());
    flag(
        &mut s,
        r.sort_order != 0 || r.sort_target != 0,
        &format!("sort={order}/{target}"),
    );
    flag(&mut s, r.keys_only, "keys_only");
    flag(&mut s, r.count_only, "count_only");
    s
}

fn describe_txn(t: &TxnRequest) -> String {
    let compares: Vec<String> = t.compare.iter().map(describe_compare).collect();
    format!(
        "txn {{ if [{}] then [{}] else [{}] }}",
        compares.join(", "),
        describe_ops(&t.success),
        describe_ops(&t.failure)
    )
}

fn describe_compare(c: &Compare) -> String {
    let target = CompareTarget::try_from(c.target).map_or("?", |t| t.as_str_name());
    let result = CompareResult::try_from(c.result).map_or("?", |r| r.as_str_name());
    let operand = match &c.target_union {
        Some(TargetUnion::Value(v)) => format!("{:?}", show(v)),
        Some(TargetUnion::Version(n) | TargetUnion::CreateRevision(n))
        | Some(TargetUnion::ModRevision(n) | TargetUnion::Lease(n)) => n.to_string(),
        None => "-".into(),
    };
    format!(
        "{target}({}) {result} {operand}",
        show_span(&c.key, &c.range_end)
    )
}

fn describe_ops(ops: &[RequestOp]) -> String {
    let ops: Vec<String> = ops
        .iter()
        .map(|op| match &op.request {
            Some(Op::RequestRange(r)) => describe_range(r),
            Some(Op::RequestPut(p)) => describe_put(p),
            Some(Op::RequestDeleteRange(d)) => describe_delete(d),
            Some(Op::RequestTxn(t)) => describe_txn(t),
            None => "-".into(),
        })
        .collect();
    ops.join("; ")
}

// ---------------------------------------------------------------------------
// Strategies.
// ---------------------------------------------------------------------------

fn span() -> impl Strategy<Value = Span> {
    prop_oneof![
        3 => (0..KEYS.len()).prop_map(Span::Key),
        2 => (0..BOUNDS.len(), 0..BOUNDS.len()).prop_map(|(s, e)| Span::Between(s, e)),
        1 => (0..BOUNDS.len()).prop_map(Span::From),
    ]
}

fn maybe_rev(probability: f64) -> impl Strategy<Value = Option<u8>> {
    prop::option::weighted(probability, any::<u8>())
}

fn range_op() -> impl Strategy<Value = RangeOp> {
    let sort = prop::option::weighted(0.4, (0..3i32, 0..5i32));
    let filters = [
        maybe_rev(0.1),
        maybe_rev(0.1),
        maybe_rev(0.1),
        maybe_rev(0.1),
    ];
    let flags = (prop::bool::weighted(0.2), prop::bool::weighted(0.1));
    (span(), maybe_rev(0.3), 0..4i64, sort, flags, filters).prop_map(
        |(span, revision, limit, sort, (keys_only, count_only), filters)| RangeOp {
            span,
            revision,
            limit,
            sort,
            keys_only,
            count_only,
            filters,
        },
    )
}

fn put_op() -> impl Strategy<Value = PutOp> {
    let rare = || prop::bool::weighted(0.08);
    (
        0..KEYS.len(),
        0..VALUES.len(),
        any::<bool>(),
        rare(),
        rare(),
        rare(),
    )
        .prop_map(
            |(key, value, prev_kv, ignore_value, ignore_lease, with_lease)| PutOp {
                key,
                // A value next to ignore_value is rejected before proposing.
                value: if ignore_value { 0 } else { value },
                prev_kv,
                ignore_value,
                ignore_lease,
                with_lease,
            },
        )
}

fn delete_op() -> impl Strategy<Value = DeleteOp> {
    (span(), any::<bool>()).prop_map(|(span, prev_kv)| DeleteOp { span, prev_kv })
}

fn compare_op() -> impl Strategy<Value = CompareOp> {
    let targets = select(vec![
        CompareTarget::Version,
        CompareTarget::Create,
        CompareTarget::Mod,
        CompareTarget::Value,
        CompareTarget::Lease,
    ]);
    let results = select(vec![
        CompareResult::Equal,
        CompareResult::Greater,
        CompareResult::Less,
        CompareResult::NotEqual,
    ]);
    (span(), targets, results, any::<u8>()).prop_map(|(span, target, result, operand)| CompareOp {
        span,
        target,
        result,
        operand,
    })
}

fn txn_body(item: BoxedStrategy<TxnItem>) -> impl Strategy<Value = TxnOp> {
    (
        vec(compare_op(), 0..3),
        vec(item.clone(), 0..4),
        vec(item, 0..3),
    )
        .prop_map(|(compare, success, failure)| TxnOp {
            compare,
            success,
            failure,
        })
}

/// Txns of `leaf` requests, nested up to two levels deep.
fn nested_txn(leaf: BoxedStrategy<TxnItem>) -> impl Strategy<Value = TxnOp> {
    let item = leaf.prop_recursive(2, 8, 3, |inner| {
        txn_body(inner).prop_map(|t| TxnItem::Txn(Box::new(t)))
    });
    txn_body(item.boxed())
}

fn txn_op() -> impl Strategy<Value = TxnOp> {
    nested_txn(
        prop_oneof![
            2 => range_op().prop_map(TxnItem::Range),
            2 => put_op().prop_map(TxnItem::Put),
            1 => delete_op().prop_map(TxnItem::Delete),
        ]
        .boxed(),
    )
}

/// Txns that only read: compares, ranges and nested read-only txns.
fn read_txn_op() -> impl Strategy<Value = TxnOp> {
    nested_txn(range_op().prop_map(TxnItem::Range).boxed())
}

fn cmd() -> impl Strategy<Value = Cmd> {
    prop_oneof![
        4 => put_op().prop_map(Cmd::Put),
        2 => delete_op().prop_map(Cmd::Delete),
        3 => txn_op().prop_map(Cmd::Txn),
        1 => any::<u8>().prop_map(Cmd::Compact),
    ]
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        5 => cmd().prop_map(|c| Step::Apply(vec![Some(c)])),
        1 => vec(prop::option::weighted(0.85, cmd()), 1..4).prop_map(Step::Apply),
        2 => range_op().prop_map(Step::Range),
        2 => read_txn_op().prop_map(Step::ReadTxn),
    ]
}

/// Steps, each with the selector of the past revision read after it.
fn steps(max: usize) -> impl Strategy<Value = Vec<(Step, u8)>> {
    vec((step(), any::<u8>()), 1..=max)
}

/// `cases` unless PROPTEST_CASES says otherwise; no regression files.
fn config(cases: u32) -> ProptestConfig {
    let base = ProptestConfig::default();
    ProptestConfig {
        cases: std::env::var_os("PROPTEST_CASES").map_or(cases, |_| base.cases),
        failure_persistence: None,
        ..base
    }
}

fn put(key: &[u8]) -> KvRequest {
    KvRequest::Put(PutRequest {
        key: key.to_vec(),
        ..Default::default()
    })
}

fn delete(key: &[u8]) -> KvRequest {
    KvRequest::DeleteRange(DeleteRangeRequest {
        key: key.to_vec(),
        ..Default::default()
    })
}

fn compact(revision: i64) -> KvRequest {
    KvRequest::Compaction(CompactionRequest {
        revision,
        physical: false,
    })
}

/// A key deleted between two compactions stays deleted at every revision
/// from the second compaction point on (the shrunk form of a model failure:
/// the record that survived the first compaction came back).
#[test]
fn deletion_between_compactions_stays_deleted() -> Result<(), TestCaseError> {
    let mut h = Harness::new();
    h.apply_requests(vec![
        put(b"a"),
        compact(2),
        delete(b"a"),
        compact(3),
        put(b"b"),
    ])?;
    h.check_all_revisions()
}

/// `txn_read` serves only txns that read: one with a put anywhere, nested
/// included, is refused and changes nothing.
#[test]
fn txn_read_refuses_writes() -> Result<(), TestCaseError> {
    let mut h = Harness::new();
    h.apply_requests(vec![put(b"a")])?;
    let KvRequest::Put(write) = put(b"b") else {
        unreachable!()
    };
    let nested = TxnRequest {
        compare: vec![],
        success: vec![],
        failure: vec![RequestOp {
            request: Some(Op::RequestPut(write)),
        }],
    };
    let txn = TxnRequest {
        compare: vec![],
        success: vec![RequestOp {
            request: Some(Op::RequestTxn(nested)),
        }],
        failure: vec![],
    };
    match h.store.txn_read(&txn) {
        Err(MvccError::NotReadOnly) => {}
        other => return Err(h.fail(format!("txn_read of a write: {other:?}"))),
    }
    h.check_state()?;
    h.check_all_revisions()
}

proptest! {
    #![proptest_config(config(512))]

    #[test]
    fn store_matches_model(steps in steps(60)) {
        Harness::new().run(&steps)?;
    }
}

proptest! {
    #![proptest_config(config(32))]

    #[test]
    fn state_survives_reopen(before in steps(30), after in steps(20)) {
        let mut h = Harness::new();
        h.run(&before)?;
        h.seal()?;
        let mut h = h.reopen()?;
        h.check_state()?;
        h.check_all_revisions()?;
        h.check_replay_is_skipped()?;
        h.run(&after)?;
    }
}
