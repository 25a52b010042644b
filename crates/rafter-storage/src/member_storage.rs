//! What raft-rs reads as its `Storage`: the log for entries and hard state,
//! and the state machine for snapshots. A snapshot is made on demand from the
//! store's current applied state, so a follower that fell behind the
//! compacted log gets everything up to the leader's applied index.

use std::sync::Arc;

use raft::eraftpb::{Entry, Snapshot};
use raft::{GetEntriesContext, RaftState, Storage, StorageError};

use crate::{MvccStore, RaftLog};

#[derive(Clone, Debug)]
pub struct MemberStorage {
    pub log: RaftLog,
    pub store: Arc<MvccStore>,
}

fn other(e: impl std::error::Error + Send + Sync + 'static) -> raft::Error {
    raft::Error::Store(StorageError::Other(Box::new(e)))
}

impl Storage for MemberStorage {
    fn initial_state(&self) -> raft::Result<RaftState> {
        self.log.initial_state()
    }

    fn entries(
        &self,
        low: u64,
        high: u64,
        max_size: impl Into<Option<u64>>,
        context: GetEntriesContext,
    ) -> raft::Result<Vec<Entry>> {
        self.log.entries(low, high, max_size, context)
    }

    fn term(&self, idx: u64) -> raft::Result<u64> {
        self.log.term(idx)
    }

    fn first_index(&self) -> raft::Result<u64> {
        self.log.first_index()
    }

    fn last_index(&self) -> raft::Result<u64> {
        self.log.last_index()
    }

    fn snapshot(&self, request_index: u64, _to: u64) -> raft::Result<Snapshot> {
        let (data, applied) = self.store.snapshot_data().map_err(other)?;
        if applied < request_index {
            return Err(raft::Error::Store(
                StorageError::SnapshotTemporarilyUnavailable,
            ));
        }
        let mut snap = Snapshot {
            data: data.into(),
            ..Default::default()
        };
        let meta = snap.mut_metadata();
        meta.index = applied;
        meta.term = self.log.term(applied)?;
        meta.set_conf_state(self.log.conf_state().map_err(other)?);
        Ok(snap)
    }
}
