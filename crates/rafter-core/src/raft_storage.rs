//! What raft-rs reads as its `Storage`: a log (the server's raft-engine log,
//! the simulator's in-memory one) for entries and hard state, and the state
//! machine for snapshots. A snapshot is made on demand from the state
//! machine's current applied state, so a follower behind the compacted log
//! gets everything up to the leader's applied index. One implementation for
//! the server and the simulator.

use std::sync::Arc;

use raft::eraftpb::{Entry, Snapshot};
use raft::{GetEntriesContext, RaftState, Storage, StorageError};

use crate::state_machine::StateMachine;

/// A log plus the state machine that snapshots come from.
pub struct RaftStorage<L, SM> {
    pub log: L,
    pub sm: Arc<SM>,
}

impl<L: Clone, SM> Clone for RaftStorage<L, SM> {
    fn clone(&self) -> Self {
        RaftStorage {
            log: self.log.clone(),
            sm: self.sm.clone(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
#[error("snapshot of the state machine failed: {0}")]
struct SnapshotError(String);

impl<L: Storage, SM: StateMachine> Storage for RaftStorage<L, SM> {
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
        let image = self.sm.snapshot().map_err(|e| {
            raft::Error::Store(StorageError::Other(Box::new(SnapshotError(e.to_string()))))
        })?;
        let applied = image.applied_index;
        if applied < request_index {
            return Err(raft::Error::Store(
                StorageError::SnapshotTemporarilyUnavailable,
            ));
        }
        let mut snap = Snapshot {
            data: image.data.into(),
            ..Default::default()
        };
        // The configuration as of the image's index: from the membership
        // it holds (the log's may be newer), or the log's for a state
        // machine that records none.
        let membership = crate::membership::Membership::new(image.members);
        let conf_state = if membership.is_empty() {
            self.log.initial_state()?.conf_state
        } else {
            membership.conf_state()
        };
        let meta = snap.mut_metadata();
        meta.index = applied;
        meta.term = self.log.term(applied)?;
        meta.set_conf_state(conf_state);
        Ok(snap)
    }
}
