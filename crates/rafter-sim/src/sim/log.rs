//! A member's simulated Raft log: what raft-rs reads (`raft::Storage`) and
//! what the member writes, with a truncation point so log compaction and
//! snapshot installs look as they do on the server's raft-engine log. A
//! copy of the [`LogState`] taken at each fsync is what a crash keeps.

use std::sync::{Arc, RwLock};

use raft::eraftpb::{ConfState, Entry, HardState, Snapshot, SnapshotMetadata};
use raft::{GetEntriesContext, RaftState, Storage, StorageError};

/// The log's contents.
#[derive(Debug, Clone, Default)]
pub struct LogState {
    /// Index and term of the last entry compacted away (0, 0: none).
    truncated: (u64, u64),
    entries: Vec<Entry>,
    pub hard_state: HardState,
    conf_state: ConfState,
}

impl LogState {
    pub fn new(voters: &[u64]) -> Self {
        LogState {
            conf_state: ConfState::from((voters.to_vec(), vec![])),
            ..Default::default()
        }
    }

    /// A founding member's log: it starts after index 1, which stands for
    /// the founding membership its store records (as the server's).
    pub fn founding(voters: &[u64]) -> Self {
        LogState {
            truncated: (1, 1),
            hard_state: HardState {
                term: 1,
                commit: 1,
                ..Default::default()
            },
            ..LogState::new(voters)
        }
    }

    pub fn first_index(&self) -> u64 {
        self.truncated.0 + 1
    }

    pub fn last_index(&self) -> u64 {
        self.entries.last().map_or(self.truncated.0, |e| e.index)
    }

    pub fn entries(&self) -> &[Entry] {
        &self.entries
    }

    fn term(&self, idx: u64) -> raft::Result<u64> {
        if idx == self.truncated.0 {
            return Ok(self.truncated.1);
        }
        if idx < self.first_index() {
            return Err(raft::Error::Store(StorageError::Compacted));
        }
        if idx > self.last_index() {
            return Err(raft::Error::Store(StorageError::Unavailable));
        }
        Ok(self.entries[(idx - self.first_index()) as usize].term)
    }

    /// Appends entries, replacing any suffix they conflict with.
    pub fn append(&mut self, entries: &[Entry]) {
        let Some(first) = entries.first() else {
            return;
        };
        assert!(
            first.index >= self.first_index() && first.index <= self.last_index() + 1,
            "append at {} leaves a gap in [{}, {}]",
            first.index,
            self.first_index(),
            self.last_index()
        );
        let keep = (first.index - self.first_index()) as usize;
        self.entries.truncate(keep);
        self.entries.extend_from_slice(entries);
    }

    /// Sets the configuration raft-rs starts from (the server does this at
    /// start from the store's membership).
    pub fn set_conf_state(&mut self, conf_state: ConfState) {
        self.conf_state = conf_state;
    }

    /// Replaces the log by a snapshot's truncation point and membership.
    pub fn apply_snapshot(&mut self, meta: &SnapshotMetadata) {
        self.truncated = (meta.index, meta.term);
        self.entries.clear();
        self.conf_state = meta.get_conf_state().clone();
    }

    /// Drops entries before `compact_to` (a no-op if already gone or not
    /// yet in this copy of the log).
    pub fn compact_to(&mut self, compact_to: u64) {
        if compact_to <= self.first_index() || compact_to - 1 > self.last_index() {
            return;
        }
        let term = self.term(compact_to - 1).expect("term inside the log");
        let drop = (compact_to - self.first_index()) as usize;
        self.entries.drain(..drop);
        self.truncated = (compact_to - 1, term);
    }
}

/// A shared handle: raft-rs reads through it, the member writes through it.
#[derive(Clone, Default)]
pub struct SimLog(Arc<RwLock<LogState>>);

impl SimLog {
    pub fn new(state: LogState) -> Self {
        SimLog(Arc::new(RwLock::new(state)))
    }

    pub fn state(&self) -> LogState {
        self.0.read().expect("log lock").clone()
    }

    pub fn write(&self) -> std::sync::RwLockWriteGuard<'_, LogState> {
        self.0.write().expect("log lock")
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, LogState> {
        self.0.read().expect("log lock")
    }
}

impl Storage for SimLog {
    fn initial_state(&self) -> raft::Result<RaftState> {
        let s = self.read();
        Ok(RaftState {
            hard_state: s.hard_state.clone(),
            conf_state: s.conf_state.clone(),
        })
    }

    fn entries(
        &self,
        low: u64,
        high: u64,
        max_size: impl Into<Option<u64>>,
        _context: GetEntriesContext,
    ) -> raft::Result<Vec<Entry>> {
        let s = self.read();
        if low < s.first_index() {
            return Err(raft::Error::Store(StorageError::Compacted));
        }
        if high > s.last_index() + 1 {
            return Err(raft::Error::Store(StorageError::Unavailable));
        }
        let offset = s.first_index();
        let mut out = s.entries[(low - offset) as usize..(high - offset) as usize].to_vec();
        raft::util::limit_size(&mut out, max_size.into());
        Ok(out)
    }

    fn term(&self, idx: u64) -> raft::Result<u64> {
        self.read().term(idx)
    }

    fn first_index(&self) -> raft::Result<u64> {
        Ok(self.read().first_index())
    }

    fn last_index(&self) -> raft::Result<u64> {
        Ok(self.read().last_index())
    }

    /// Snapshots come from the state machine (`rafter_core::RaftStorage`).
    fn snapshot(&self, _request_index: u64, _to: u64) -> raft::Result<Snapshot> {
        Err(raft::Error::Store(
            StorageError::SnapshotTemporarilyUnavailable,
        ))
    }
}
