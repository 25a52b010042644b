//! The redb tables of the MVCC store and the typed accessors over them.
//!
//! - `kv_revs`:   (key, revision) -> record. Every retained revision of every
//!   key, deletions as tombstones; serves reads at past revisions.
//! - `kv_latest`: key -> record. The newest live revision of each key; serves
//!   reads at the current revision without scanning history.
//! - `rev_index`: (revision, sub) -> key. Changes in revision order, for
//!   compaction (and for watch replay later).
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

pub const KV_REVS: TableDefinition<(&[u8], u64), &[u8]> = TableDefinition::new("kv_revs");
pub const KV_LATEST: TableDefinition<&[u8], &[u8]> = TableDefinition::new("kv_latest");
pub const REV_INDEX: TableDefinition<(u64, u64), &[u8]> = TableDefinition::new("rev_index");
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
