//! Conflict policies and the conflict log (seed 004 "Case 2"): how a local
//! write that meets a committed change of its key it had not seen is
//! decided, and the replicated record of every such meeting.
//!
//! Everything lives in one table, `conflict_state`, under three key
//! prefixes, so it is applied, snapshotted and restored with the rest of
//! the store:
//! - `p` + prefix -> policy (one byte): a key's policy is that of the
//!   longest matching prefix, `COMMIT_ORDER` without one.
//! - `s` + key -> the HLC stamp of the key's last change, kept only for
//!   keys under `LAST_WRITER_WINS` (what a concurrent local write is
//!   compared with). A change made without a stamp (a lease expiry)
//!   counts as the oldest.
//! - `c` + revision + member + seq -> a `ConflictRecord`, in the order the
//!   conflicts were decided; records below a compaction point are dropped
//!   with the history they refer to.

use prost::Message as _;
use rafter_proto::rafterpb::{ConflictPolicy, ConflictPolicySet, ConflictRecord, HlcStamp};
use redb::{ReadableTable, Table};

use super::MvccError;

const POLICY: u8 = b'p';
const STAMP: u8 = b's';
const RECORD: u8 = b'c';

fn tagged(tag: u8, bytes: &[u8]) -> Vec<u8> {
    let mut k = Vec::with_capacity(1 + bytes.len());
    k.push(tag);
    k.extend_from_slice(bytes);
    k
}

/// The end (exclusive) of every key starting with `tag`.
fn tag_end(tag: u8) -> [u8; 1] {
    [tag + 1]
}

/// Every policy set, in prefix order.
pub fn policies(
    table: &impl ReadableTable<&'static [u8], &'static [u8]>,
) -> Result<Vec<ConflictPolicySet>, MvccError> {
    let mut out = Vec::new();
    for item in table.range(&[POLICY][..]..&tag_end(POLICY)[..])? {
        let (k, v) = item?;
        let policy = ConflictPolicy::try_from(i32::from(*v.value().first().unwrap_or(&0)))
            .map_err(|_| MvccError::Storage("corrupt conflict policy".into()))?;
        out.push(ConflictPolicySet {
            prefix: k.value()[1..].to_vec(),
            policy: policy as i32,
        });
    }
    Ok(out)
}

/// The policy deciding `key`: the longest matching prefix's.
pub fn policy_for(policies: &[ConflictPolicySet], key: &[u8]) -> ConflictPolicy {
    policies
        .iter()
        .filter(|p| key.starts_with(&p.prefix))
        .max_by_key(|p| p.prefix.len())
        .map_or(ConflictPolicy::CommitOrder, |p| p.policy())
}

/// Sets (or, for `COMMIT_ORDER`, removes) a prefix's policy.
pub fn set_policy(
    table: &mut Table<'_, &'static [u8], &'static [u8]>,
    set: &ConflictPolicySet,
) -> Result<(), MvccError> {
    let key = tagged(POLICY, &set.prefix);
    match set.policy() {
        ConflictPolicy::CommitOrder => {
            table.remove(key.as_slice())?;
        }
        other => {
            table.insert(key.as_slice(), &[other as u8][..])?;
        }
    }
    Ok(())
}

/// Stamps order by (physical, logical, member).
pub fn stamp_order(s: &HlcStamp) -> (u64, u32, u64) {
    (s.physical_ms, s.logical, s.member_id)
}

pub fn stamp_get(
    table: &impl ReadableTable<&'static [u8], &'static [u8]>,
    key: &[u8],
) -> Result<Option<HlcStamp>, MvccError> {
    match table.get(tagged(STAMP, key).as_slice())? {
        None => Ok(None),
        Some(v) => HlcStamp::decode(v.value())
            .map(Some)
            .map_err(|e| MvccError::Storage(format!("corrupt key stamp: {e}"))),
    }
}

pub fn stamp_put(
    table: &mut Table<'_, &'static [u8], &'static [u8]>,
    key: &[u8],
    stamp: &HlcStamp,
) -> Result<(), MvccError> {
    table.insert(
        tagged(STAMP, key).as_slice(),
        stamp.encode_to_vec().as_slice(),
    )?;
    Ok(())
}

fn record_key(revision: i64, member_id: u64, seq: u64) -> Vec<u8> {
    let mut k = Vec::with_capacity(25);
    k.push(RECORD);
    k.extend_from_slice(&(revision as u64).to_be_bytes());
    k.extend_from_slice(&member_id.to_be_bytes());
    k.extend_from_slice(&seq.to_be_bytes());
    k
}

pub fn record_put(
    table: &mut Table<'_, &'static [u8], &'static [u8]>,
    record: &ConflictRecord,
) -> Result<(), MvccError> {
    let key = record_key(record.revision, record.member_id, record.seq);
    table.insert(key.as_slice(), record.encode_to_vec().as_slice())?;
    Ok(())
}

/// The conflict log, oldest first: records on keys starting with
/// `prefix`, at most `limit` of them (0: all).
pub fn records(
    table: &impl ReadableTable<&'static [u8], &'static [u8]>,
    prefix: &[u8],
    limit: usize,
) -> Result<Vec<ConflictRecord>, MvccError> {
    let mut out = Vec::new();
    for item in table.range(&[RECORD][..]..&tag_end(RECORD)[..])? {
        let (_, v) = item?;
        let record = ConflictRecord::decode(v.value())
            .map_err(|e| MvccError::Storage(format!("corrupt conflict record: {e}")))?;
        if record.key.starts_with(prefix) {
            out.push(record);
            if out.len() == limit {
                break;
            }
        }
    }
    Ok(out)
}

/// How many records the log holds.
pub fn record_count(
    table: &impl ReadableTable<&'static [u8], &'static [u8]>,
) -> Result<u64, MvccError> {
    let mut n = 0;
    for item in table.range(&[RECORD][..]..&tag_end(RECORD)[..])? {
        item?;
        n += 1;
    }
    Ok(n)
}

/// Drops the records decided below `compact_rev`.
pub fn compact(
    table: &mut Table<'_, &'static [u8], &'static [u8]>,
    compact_rev: i64,
) -> Result<(), MvccError> {
    let end = record_key(compact_rev, 0, 0);
    table.retain_in(&[RECORD][..]..end.as_slice(), |_, _| false)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(prefix: &str, policy: ConflictPolicy) -> ConflictPolicySet {
        ConflictPolicySet {
            prefix: prefix.as_bytes().to_vec(),
            policy: policy as i32,
        }
    }

    #[test]
    fn the_longest_matching_prefix_decides() {
        let policies = vec![
            set("/a/", ConflictPolicy::LastWriterWins),
            set("/a/b/", ConflictPolicy::RejectIfChanged),
        ];
        assert_eq!(
            policy_for(&policies, b"/a/x"),
            ConflictPolicy::LastWriterWins
        );
        assert_eq!(
            policy_for(&policies, b"/a/b/x"),
            ConflictPolicy::RejectIfChanged
        );
        assert_eq!(policy_for(&policies, b"/c"), ConflictPolicy::CommitOrder);
    }

    #[test]
    fn record_keys_sort_by_revision() {
        assert!(record_key(2, 9, 9) < record_key(10, 1, 1));
        assert!(record_key(10, 1, 2) < record_key(10, 2, 1));
    }
}
