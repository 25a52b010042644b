//! Compaction: drop every revision at or below the compaction point that a
//! read at that point no longer needs. For each key the newest record at or
//! below the point survives, unless it is a deletion. The revision index
//! keeps the surviving changes made at the point itself, so a watch may
//! start at the compaction revision (etcd's rule: only revisions below it
//! are gone).

use redb::{ReadableTable, Table};

use super::record::Record;
use super::MvccError;

pub fn compact(
    revs: &mut Table<'_, (&'static [u8], u64), &'static [u8]>,
    rev_index: &mut Table<'_, (u64, u64), &'static [u8]>,
    compact_rev: u64,
) -> Result<(), MvccError> {
    // Changes at or below the point, in revision order. The index is only
    // needed above the compaction point, so all of these entries go.
    let mut changes: Vec<(u64, u64, Vec<u8>)> = Vec::new();
    for item in rev_index.range((0u64, 0u64)..=(compact_rev, u64::MAX))? {
        let (rk, key) = item?;
        let (rev, sub) = rk.value();
        changes.push((rev, sub, key.value().to_vec()));
    }
    let mut kept_at_point = std::collections::BTreeSet::new();
    for (rev, sub, key) in &changes {
        // Older records, including one kept by an earlier compaction, are superseded.
        revs.retain_in((key.as_slice(), 0u64)..(key.as_slice(), *rev), |_, _| false)?;
        let superseded = revs
            .range((key.as_slice(), rev + 1)..=(key.as_slice(), compact_rev))?
            .next()
            .is_some();
        let remove = superseded
            || match revs.get((key.as_slice(), *rev))? {
                Some(v) => Record::decode(v.value()).tombstone,
                None => false,
            };
        if remove {
            revs.remove((key.as_slice(), *rev))?;
        } else if *rev == compact_rev {
            kept_at_point.insert(*sub);
        }
    }
    rev_index.retain_in((0u64, 0u64)..=(compact_rev, u64::MAX), |(rev, sub), _| {
        rev == compact_rev && kept_at_point.contains(&sub)
    })?;
    Ok(())
}
