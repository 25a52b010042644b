//! The redb tables of the MVCC store and the typed accessors over them.
//!
//! - `kv_history`: (revision, sub) -> (key, record). Every retained change
//!   in revision order, deletions as tombstones: appended at the end of the
//!   tree, so a put costs one sequential insert here (the layout etcd's
//!   backend uses). Serves watch replay and compaction.
//! - `kv_revs`:   (key, revision) -> sub. The index of `kv_history` by key:
//!   small rows (no value), so its random inserts touch few pages. Serves
//!   reads at past revisions (with one `kv_history` lookup per key found).
//! - `kv_latest`: key -> record. The newest live revision of each key; serves
//!   reads at the current revision without scanning history.
//! - `leases`:    lease id -> granted TTL and checkpointed remaining TTL
//!   (seconds; 0 = never checkpointed).
//! - `lease_keys`: (lease id, key) -> (). The keys attached to each lease,
//!   deleted with it.
//! - `sessions`: session id -> (timeout, last active, acked below, answers
//!   deleted below), in cluster milliseconds (see `sessions.rs`).
//! - `session_results`: (session id, seq) -> the kept answer of a request
//!   made in a session, or its cancellation.
//! - `local_dots`: member id -> the last of its local writes applied.
//! - `conflict_state`: conflict policies, last-writer-wins stamps and the
//!   conflict log (see `conflicts.rs`).
//! - `members`:   member id -> published name and client URLs.
//! - `meta`:      applied index, current and compacted revision. Written in
//!   the same transaction as the data, so they can never disagree with it.

use redb::{ReadableTable, TableDefinition};

use super::record::Record;
use super::MvccError;

/// A store written before `kv_history` existed kept whole records in
/// `kv_revs`; opening one fails on this table's type (redb checks it) instead
/// of serving it without history.
pub const KV_REVS: TableDefinition<(&[u8], u64), u64> = TableDefinition::new("kv_revs");
pub const KV_LATEST: TableDefinition<&[u8], &[u8]> = TableDefinition::new("kv_latest");
pub const KV_HISTORY: TableDefinition<(u64, u64), &[u8]> = TableDefinition::new("kv_history");
pub const META: TableDefinition<&str, u64> = TableDefinition::new("meta");
pub const LEASES: TableDefinition<i64, (i64, i64)> = TableDefinition::new("leases");
pub const LEASE_KEYS: TableDefinition<(i64, &[u8]), ()> = TableDefinition::new("lease_keys");
/// A session row: (timeout, last active, acked below, answers deleted
/// below), times in cluster ms.
pub type SessionRow = (u64, u64, u64, u64);
pub const SESSIONS: TableDefinition<u64, SessionRow> = TableDefinition::new("sessions");
/// Member id -> the last of its local writes applied (see `local_writes.rs`).
pub const LOCAL_DOTS: TableDefinition<u64, u64> = TableDefinition::new("local_dots");
pub const CONFLICT_STATE: TableDefinition<&[u8], &[u8]> = TableDefinition::new("conflict_state");
pub const SESSION_RESULTS: TableDefinition<(u64, u64), &[u8]> =
    TableDefinition::new("session_results");
/// member id -> its published attributes (`rafterpb.MemberAttributes`).
pub const MEMBERS: TableDefinition<u64, &[u8]> = TableDefinition::new("members");

pub const META_APPLIED_INDEX: &str = "applied_index";
pub const META_CURRENT_REV: &str = "current_revision";
pub const META_COMPACT_REV: &str = "compact_revision";
/// Cluster time in milliseconds: the sum of the applied `ClusterClock`s.
pub const META_CLUSTER_TIME: &str = "cluster_time_ms";

/// Reads a meta counter, `default` when absent.
pub fn meta_get(
    meta: &impl ReadableTable<&'static str, u64>,
    name: &str,
    default: u64,
) -> Result<u64, MvccError> {
    Ok(meta.get(name)?.map(|v| v.value()).unwrap_or(default))
}

/// The newest live record of `key`.
pub fn latest_get(
    latest: &impl ReadableTable<&'static [u8], &'static [u8]>,
    key: &[u8],
) -> Result<Option<Record>, MvccError> {
    Ok(latest.get(key)?.map(|v| Record::decode(v.value())))
}

/// The compaction revision; -1 before the first compaction, as in etcd, so
/// that compacting revision 0 (or 1) still succeeds once.
pub fn compact_revision(meta: &impl ReadableTable<&'static str, u64>) -> Result<i64, MvccError> {
    Ok(meta.get(META_COMPACT_REV)?.map_or(-1, |v| v.value() as i64))
}

/// Bytes before a `kv_history` row's key: the key's length.
const HISTORY_KEY_LEN_BYTES: usize = 4;

/// A `kv_history` row: the key's length (u32 little-endian), the key, then
/// the encoded record.
pub fn history_row(key: &[u8], rec: &Record) -> Vec<u8> {
    let encoded = rec.encode();
    let mut row = Vec::with_capacity(HISTORY_KEY_LEN_BYTES + key.len() + encoded.len());
    row.extend_from_slice(&(key.len() as u32).to_le_bytes());
    row.extend_from_slice(key);
    row.extend_from_slice(&encoded);
    row
}

/// The key and the encoded record of a `kv_history` row, or `None` when the
/// bytes cannot be one (what a snapshot's rows must pass before they are
/// stored).
pub fn split_history_row(row: &[u8]) -> Option<(&[u8], &[u8])> {
    let key_len = u32::from_le_bytes(row.get(..HISTORY_KEY_LEN_BYTES)?.try_into().ok()?) as usize;
    let key = row.get(HISTORY_KEY_LEN_BYTES..HISTORY_KEY_LEN_BYTES.checked_add(key_len)?)?;
    let rec = &row[HISTORY_KEY_LEN_BYTES + key_len..];
    Record::well_formed(rec).then_some((key, rec))
}

/// The encoded record inside a row [`history_row`] built for `key`.
pub fn history_row_record<'r>(row: &'r [u8], key: &[u8]) -> &'r [u8] {
    &row[HISTORY_KEY_LEN_BYTES + key.len()..]
}

/// The key and record of a row this store wrote.
pub fn decode_history_row(row: &[u8]) -> (&[u8], Record) {
    let (key, rec) = split_history_row(row).expect("corrupt kv_history row");
    (key, Record::decode(rec))
}

/// The record stored at (`rev`, `sub`), which the index says exists.
pub fn history_record(
    history: &impl ReadableTable<(u64, u64), &'static [u8]>,
    rev: u64,
    sub: u64,
) -> Result<Record, MvccError> {
    let row = history.get((rev, sub))?.ok_or_else(|| {
        MvccError::Storage(format!("revision {rev}.{sub} indexed but not stored"))
    })?;
    let (_, rec) = decode_history_row(row.value());
    Ok(rec)
}
