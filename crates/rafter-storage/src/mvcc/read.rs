//! Range reads over a consistent snapshot of the store, at the current
//! revision (from `kv_latest`) or at a past one (`kv_revs` and `kv_history`), with etcd's
//! Range semantics: filters, sorting, limit/more, count, keys_only.

use rafter_proto::etcdserverpb::range_request::{SortOrder, SortTarget};
use rafter_proto::etcdserverpb::{
    DeleteRangeRequest, DeleteRangeResponse, PutRequest, PutResponse, RangeRequest, RangeResponse,
};
use rafter_proto::mvccpb::KeyValue;
use redb::{Database, ReadOnlyTable, ReadTransaction, ReadableDatabase, ReadableTable};

use super::keyrange::KeyRange;
use super::record::Record;
use super::tables::{
    compact_revision, history_record, meta_get, KV_HISTORY, KV_LATEST, KV_REVS, META,
    META_CURRENT_REV,
};
use super::txn::{rev_header, TxnTables};
use super::MvccError;

/// Revisions visible to one read: what is current and what was compacted.
#[derive(Debug, Clone, Copy)]
pub struct RevisionBounds {
    pub current: i64,
    pub compacted: i64,
}

impl RevisionBounds {
    /// The revision a read asking for `requested` sees (0 or less: the
    /// current one), or etcd's error when it is in the future or compacted.
    pub fn resolve(&self, requested: i64) -> Result<i64, MvccError> {
        let rev = if requested <= 0 {
            self.current
        } else {
            requested
        };
        if rev > self.current {
            return Err(MvccError::FutureRevision);
        }
        if rev < self.compacted {
            return Err(MvccError::Compacted);
        }
        Ok(rev)
    }
}

/// The tables a read needs, and the revisions they hold, all from one redb
/// read transaction: a consistent snapshot that never blocks the writer.
/// History is opened only by a read at a past revision.
pub struct ReadView {
    txn: ReadTransaction,
    latest: ReadOnlyTable<&'static [u8], &'static [u8]>,
    pub bounds: RevisionBounds,
}

impl ReadView {
    pub fn open(db: &Database) -> Result<ReadView, MvccError> {
        let txn = db.begin_read()?;
        let meta = txn.open_table(META)?;
        Ok(ReadView {
            latest: txn.open_table(KV_LATEST)?,
            bounds: RevisionBounds {
                current: meta_get(&meta, META_CURRENT_REV, 1)? as i64,
                compacted: compact_revision(&meta)?,
            },
            txn,
        })
    }

    pub fn range(&self, req: &RangeRequest) -> Result<RangeResponse, MvccError> {
        self.range_page(req, true)
    }

    /// [`ReadView::range`]; with `count_total` false a scan at the current
    /// revision stops at the limit, so `count` and `more` are not
    /// meaningful (a later page of a RangeStream, whose first page counted).
    pub fn range_page(
        &self,
        req: &RangeRequest,
        count_total: bool,
    ) -> Result<RangeResponse, MvccError> {
        range(
            &self.latest,
            self.bounds,
            req,
            count_total,
            |kr, rev, limit, count_only| {
                let revs = self.txn.open_table(KV_REVS)?;
                let history = self.txn.open_table(KV_HISTORY)?;
                scan_at(&revs, &history, kr, rev, limit, count_only)
            },
        )
    }
}

/// A read-only txn (`MvccStore::txn_read`) runs on a read view; it has no
/// puts or deletes, which `txn_read` checks before it starts.
impl TxnTables for ReadView {
    type Latest = ReadOnlyTable<&'static [u8], &'static [u8]>;

    fn latest(&self) -> &Self::Latest {
        &self.latest
    }

    fn read_bounds(&self) -> RevisionBounds {
        self.bounds
    }

    /// Only a put asks, and a read-only txn has none.
    fn lease_exists(&self, _: i64) -> Result<bool, MvccError> {
        unreachable!("txn_read runs only txns that read")
    }

    fn range_in_txn(&self, r: &RangeRequest) -> Result<RangeResponse, MvccError> {
        self.range(r)
    }

    fn put_in_txn(&mut self, _: &PutRequest) -> Result<PutResponse, MvccError> {
        unreachable!("txn_read runs only txns that read")
    }

    fn delete_in_txn(&mut self, _: &DeleteRangeRequest) -> Result<DeleteRangeResponse, MvccError> {
        unreachable!("txn_read runs only txns that read")
    }
}

/// Raw key-values in key order, plus the number of keys in range.
pub struct Scan {
    kvs: Vec<KeyValue>,
    count: i64,
}

/// Answers a RangeRequest. `latest` and what `scan_past` reads (a
/// [`scan_at`] of history) must come from the same transaction as `bounds`.
pub fn range(
    latest: &impl ReadableTable<&'static [u8], &'static [u8]>,
    bounds: RevisionBounds,
    req: &RangeRequest,
    count_total: bool,
    scan_past: impl FnOnce(&KeyRange, i64, usize, bool) -> Result<Scan, MvccError>,
) -> Result<RangeResponse, MvccError> {
    let rev = bounds.resolve(req.revision)?;
    let needs_full_scan = req.sort_order != SortOrder::None as i32
        || req.min_mod_revision != 0
        || req.max_mod_revision != 0
        || req.min_create_revision != 0
        || req.max_create_revision != 0;
    // One extra key tells whether there is `more` without counting twice.
    let fetch_limit = if needs_full_scan || req.limit <= 0 || req.count_only {
        usize::MAX
    } else {
        req.limit as usize + 1
    };
    let kr = KeyRange::new(&req.key, &req.range_end);
    let mut scan = if kr.is_empty() {
        Scan {
            kvs: vec![],
            count: 0,
        }
    } else if rev == bounds.current && !count_total && fetch_limit < usize::MAX {
        scan_latest_page(latest, &kr, fetch_limit)?
    } else if rev == bounds.current {
        scan_latest(latest, &kr, fetch_limit, req.count_only)?
    } else {
        scan_past(&kr, rev, fetch_limit, req.count_only)?
    };
    apply_filters(&mut scan.kvs, req);
    sort(&mut scan.kvs, req);
    let mut more = false;
    if req.limit > 0 && scan.kvs.len() > req.limit as usize {
        scan.kvs.truncate(req.limit as usize);
        more = true;
    }
    if req.keys_only {
        for kv in &mut scan.kvs {
            kv.value.clear();
        }
    }
    Ok(RangeResponse {
        header: Some(rev_header(bounds.current)),
        kvs: scan.kvs,
        more,
        count: scan.count,
    })
}

fn scan_latest(
    latest: &impl ReadableTable<&'static [u8], &'static [u8]>,
    kr: &KeyRange,
    limit: usize,
    count_only: bool,
) -> Result<Scan, MvccError> {
    let mut scan = Scan {
        kvs: vec![],
        count: 0,
    };
    for_each_live(latest, kr, |k, v| {
        scan.count += 1;
        if !count_only && scan.kvs.len() < limit {
            scan.kvs.push(Record::decode(v).to_key_value(k));
        }
        true
    })?;
    Ok(scan)
}

/// The first `limit` live keys of `kr`, without counting the rest.
fn scan_latest_page(
    latest: &impl ReadableTable<&'static [u8], &'static [u8]>,
    kr: &KeyRange,
    limit: usize,
) -> Result<Scan, MvccError> {
    let mut kvs = Vec::new();
    for_each_live(latest, kr, |k, v| {
        kvs.push(Record::decode(v).to_key_value(k));
        kvs.len() < limit
    })?;
    Ok(Scan {
        count: kvs.len() as i64,
        kvs,
    })
}

/// Calls `take` with each live key of `kr` and its newest record (encoded),
/// in key order, until `take` returns false.
pub fn for_each_live(
    latest: &impl ReadableTable<&'static [u8], &'static [u8]>,
    kr: &KeyRange,
    mut take: impl FnMut(&[u8], &[u8]) -> bool,
) -> Result<(), MvccError> {
    match kr {
        KeyRange::Single(k) => {
            if let Some(v) = latest.get(k.as_slice())? {
                take(k, v.value());
            }
        }
        KeyRange::Span { .. } if kr.is_empty() => {}
        KeyRange::Span { start, end } => {
            let iter = match end {
                Some(e) => latest.range::<&[u8]>(start.as_slice()..e.as_slice())?,
                None => latest.range::<&[u8]>(start.as_slice()..)?,
            };
            for item in iter {
                let (k, v) = item?;
                if !take(k.value(), v.value()) {
                    break;
                }
            }
        }
    }
    Ok(())
}

/// Scans history: for each key in range, its newest record at or before
/// `rev`, skipped when that record is a deletion.
pub fn scan_at(
    revs: &impl ReadableTable<(&'static [u8], u64), u64>,
    history: &impl ReadableTable<(u64, u64), &'static [u8]>,
    kr: &KeyRange,
    rev: i64,
    limit: usize,
    count_only: bool,
) -> Result<Scan, MvccError> {
    let rev = rev as u64;
    let mut scan = Scan {
        kvs: vec![],
        count: 0,
    };
    let (start, end): (&[u8], Option<&[u8]>) = match kr {
        KeyRange::Single(k) => (k.as_slice(), None),
        KeyRange::Span { start, end } => (start.as_slice(), end.as_deref()),
    };
    let iter = match (kr, end) {
        (KeyRange::Single(k), _) => revs.range((k.as_slice(), 0u64)..=(k.as_slice(), rev))?,
        (_, Some(e)) => revs.range((start, 0u64)..(e, 0u64))?,
        (_, None) => revs.range((start, 0u64)..)?,
    };
    // Per key: its newest (revision, sub) at or before `rev`.
    type Newest = Option<(Vec<u8>, Option<(u64, u64)>)>;
    let mut current: Newest = None;
    let flush = |entry: Newest, scan: &mut Scan| -> Result<(), MvccError> {
        if let Some((k, Some((r, sub)))) = entry {
            let rec = history_record(history, r, sub)?;
            if !rec.tombstone {
                scan.count += 1;
                if !count_only && scan.kvs.len() < limit {
                    scan.kvs.push(rec.to_key_value(&k));
                }
            }
        }
        Ok(())
    };
    for item in iter {
        let (key, value) = item?;
        let (k, r) = key.value();
        let same_key = current.as_ref().is_some_and(|(ck, _)| ck.as_slice() == k);
        if !same_key {
            flush(current.take(), &mut scan)?;
            current = Some((k.to_vec(), None));
        }
        if r <= rev {
            if let Some((_, best)) = current.as_mut() {
                *best = Some((r, value.value()));
            }
        }
    }
    flush(current.take(), &mut scan)?;
    Ok(scan)
}

fn apply_filters(kvs: &mut Vec<KeyValue>, req: &RangeRequest) {
    kvs.retain(|kv| {
        (req.max_mod_revision == 0 || kv.mod_revision <= req.max_mod_revision)
            && (req.min_mod_revision == 0 || kv.mod_revision >= req.min_mod_revision)
            && (req.max_create_revision == 0 || kv.create_revision <= req.max_create_revision)
            && (req.min_create_revision == 0 || kv.create_revision >= req.min_create_revision)
    });
}

/// etcd sorts ascending by default when a non-key target is given; results
/// are already in ascending key order otherwise. The sort is stable in both
/// directions, so ties keep ascending key order, which is what etcd's sort
/// does for small results (insertion sort) and what makes answers repeatable.
fn sort(kvs: &mut [KeyValue], req: &RangeRequest) {
    use std::cmp::Ordering;
    let target = SortTarget::try_from(req.sort_target).unwrap_or(SortTarget::Key);
    let mut order = SortOrder::try_from(req.sort_order).unwrap_or(SortOrder::None);
    if target != SortTarget::Key && order == SortOrder::None {
        order = SortOrder::Ascend;
    }
    let by_target = |a: &KeyValue, b: &KeyValue| -> Ordering {
        match target {
            SortTarget::Key => a.key.cmp(&b.key),
            SortTarget::Version => a.version.cmp(&b.version),
            SortTarget::Create => a.create_revision.cmp(&b.create_revision),
            SortTarget::Mod => a.mod_revision.cmp(&b.mod_revision),
            SortTarget::Value => a.value.cmp(&b.value),
        }
    };
    match order {
        SortOrder::None => {}
        SortOrder::Ascend => kvs.sort_by(by_target),
        SortOrder::Descend => kvs.sort_by(|a, b| by_target(b, a)),
    }
}
