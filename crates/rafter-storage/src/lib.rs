//! Rafter's durable state, behind two types: [`RaftLog`] (the replicated log,
//! fsynced before anything it holds is acknowledged) and [`MvccStore`] (the
//! multi-version key-value state machine whose applied index is committed in
//! the same transaction as the data it describes).

pub mod disk_panic;
pub mod entry_cache;
pub mod local_queue;
pub mod mvcc;
pub mod raft_log;
pub mod snapshot_file;
pub mod state_machine;

pub use mvcc::{ApplyOutcome, KvRequest, MvccError, MvccStore};
pub use raft_log::{LogRecovery, RaftLog, RaftLogError};

/// What raft-rs reads in the server: the raft-engine log, with snapshots
/// made from the MVCC store.
pub type MemberStorage = rafter_core::RaftStorage<RaftLog, MvccStore>;
