//! Compaction: drop every revision at or below the compaction point that a
//! read at that point no longer needs. For each key the newest record at or
//! below the point survives, unless it is a deletion; its `kv_history` row
//! stays with it (so history below the point holds only survivors, and a
//! watch may start at the compaction revision: etcd's rule, only revisions
//! below it are gone).

use redb::{ReadableTable, Table};

use super::tables::decode_history_row;
use super::MvccError;

/// Compacts the changes made after `previous_rev` (the last compaction
/// point; everything at or below it was compacted then) up to `compact_rev`.
pub fn compact(
    revs: &mut Table<'_, (&'static [u8], u64), u64>,
    history: &mut Table<'_, (u64, u64), &'static [u8]>,
    previous_rev: u64,
    compact_rev: u64,
) -> Result<(), MvccError> {
    assert!(previous_rev <= compact_rev, "compaction goes forward");
    // The changes since the last compaction, in revision order. A survivor of
    // the last compaction is reached through the newer change of its key.
    let mut changes: Vec<(u64, u64, Vec<u8>, bool)> = Vec::new();
    for item in history.range((previous_rev, 0u64)..=(compact_rev, u64::MAX))? {
        let (rk, row) = item?;
        let (rev, sub) = rk.value();
        let (key, rec) = decode_history_row(row.value());
        changes.push((rev, sub, key.to_vec(), rec.tombstone));
    }
    for (rev, sub, key, tombstone) in &changes {
        // Older records, including one kept by an earlier compaction, are
        // superseded.
        let older: Vec<(u64, u64)> = revs
            .range((key.as_slice(), 0u64)..(key.as_slice(), *rev))?
            .map(|item| item.map(|(k, v)| (k.value().1, v.value())))
            .collect::<Result<_, _>>()?;
        for (older_rev, older_sub) in older {
            revs.remove((key.as_slice(), older_rev))?;
            history.remove((older_rev, older_sub))?;
        }
        match revs.get((key.as_slice(), *rev))?.map(|s| s.value()) {
            // Removed above as superseded by a later change of its key.
            None => continue,
            // A later change of the key in the same revision (a txn that
            // deleted and then put it) is the one indexed: this one only
            // served watches.
            Some(indexed) if indexed != *sub => {
                history.remove((*rev, *sub))?;
                continue;
            }
            Some(_) => {}
        }
        let superseded = revs
            .range((key.as_slice(), rev + 1)..=(key.as_slice(), compact_rev))?
            .next()
            .is_some();
        if superseded || *tombstone {
            revs.remove((key.as_slice(), *rev))?;
            history.remove((*rev, *sub))?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use rafter_proto::etcdserverpb::request_op::Request;
    use rafter_proto::etcdserverpb::{
        CompactionRequest, DeleteRangeRequest, PutRequest, RangeRequest, RequestOp, TxnRequest,
    };

    use crate::mvcc::{ApplyEntry, KvRequest, MvccStore};

    fn apply(store: &MvccStore, index: &mut u64, request: KvRequest) {
        *index += 1;
        let entry = ApplyEntry {
            index: *index,
            request: Some(&request),
            client: None,
            stamp: None,
        };
        let (_, results) = store.apply(&[entry], false).expect("apply");
        assert!(matches!(results[0], Some(Ok(_))), "{results:?}");
    }

    fn put(key: &str) -> PutRequest {
        PutRequest {
            key: key.into(),
            value: b"v".to_vec(),
            ..Default::default()
        }
    }

    /// A txn that deletes a key and puts it again changes it twice in one
    /// revision; compacting at that revision keeps the put (the index
    /// points at it), found by the model test.
    #[test]
    fn a_delete_and_put_in_one_revision_survive_compaction_as_the_put() {
        let store = MvccStore::open_in_memory().expect("store");
        let mut index = 0;
        apply(&store, &mut index, KvRequest::Put(put("a")));
        apply(&store, &mut index, KvRequest::Put(put("c")));
        let ops = |r: Request| RequestOp { request: Some(r) };
        apply(
            &store,
            &mut index,
            KvRequest::Txn(TxnRequest {
                success: vec![
                    ops(Request::RequestDeleteRange(DeleteRangeRequest {
                        key: vec![0],
                        range_end: vec![0],
                        ..Default::default()
                    })),
                    ops(Request::RequestPut(put("a"))),
                ],
                ..Default::default()
            }),
        );
        let revision = store.state().expect("state").current_revision;
        apply(
            &store,
            &mut index,
            KvRequest::Compaction(CompactionRequest {
                revision,
                physical: true,
            }),
        );
        apply(&store, &mut index, KvRequest::Put(put("b")));
        let keys = |revision: i64| -> Vec<Vec<u8>> {
            store
                .range(&RangeRequest {
                    key: vec![0],
                    range_end: vec![0],
                    revision,
                    ..Default::default()
                })
                .expect("range")
                .kvs
                .into_iter()
                .map(|kv| kv.key)
                .collect()
        };
        assert_eq!(keys(revision), vec![b"a".to_vec()]);
        assert_eq!(keys(0), vec![b"a".to_vec(), b"b".to_vec()]);
    }
}
