//! Rafter's durable state, behind two types: [`RaftLog`] (the replicated log,
//! fsynced before anything it holds is acknowledged) and [`MvccStore`] (the
//! multi-version key-value state machine whose applied index is committed in
//! the same transaction as the data it describes).

pub mod member_storage;
pub mod mvcc;
pub mod raft_log;

pub use member_storage::MemberStorage;
pub use mvcc::{KvRequest, MvccError, MvccStore};
pub use raft_log::{RaftLog, RaftLogError};
