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
        if revs.get((key.as_slice(), *rev))?.is_none() {
            // Removed above as superseded by a later change of its key.
            continue;
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
