//! When to compact the Raft log.
//!
//! Once `snapshot_count` entries (etcd's `--snapshot-count`) are durable in
//! the state machine beyond the last compaction, entries before
//! `durable - catch_up` may go: the state machine holds them even after a
//! crash, and slightly slow followers still catch up from the log rather
//! than a snapshot (etcd keeps 5000 entries).

/// Log compaction policy and its progress.
#[derive(Debug, Clone)]
pub struct Compaction {
    snapshot_count: u64,
    /// Every entry at or below this index is gone from the log.
    compacted_index: u64,
}

impl Compaction {
    pub fn new(snapshot_count: u64, compacted_index: u64) -> Self {
        assert!(snapshot_count > 0, "snapshot count must be positive");
        Compaction {
            snapshot_count,
            compacted_index,
        }
    }

    /// Entries kept behind the compaction point.
    fn catch_up_entries(&self) -> u64 {
        (self.snapshot_count / 2).min(5000)
    }

    /// With the state machine durable up to `durable_index`: the index the
    /// log should be compacted to (entries before it dropped), if it is time.
    pub fn due(&mut self, durable_index: u64) -> Option<u64> {
        if durable_index < self.compacted_index + self.snapshot_count {
            return None;
        }
        let compact_to = durable_index.saturating_sub(self.catch_up_entries()) + 1;
        if compact_to <= self.compacted_index + 1 {
            return None;
        }
        self.compacted_index = compact_to - 1;
        Some(compact_to)
    }

    /// A snapshot replaced the log up to `index`.
    pub fn snapshot_installed(&mut self, index: u64) {
        self.compacted_index = self.compacted_index.max(index);
    }

    pub fn compacted_index(&self) -> u64 {
        self.compacted_index
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compacts_only_durable_entries_keeping_catch_up() {
        let mut c = Compaction::new(100, 0);
        assert_eq!(c.due(99), None);
        // 100 durable: keep 50 for catch-up, drop 1..=50.
        assert_eq!(c.due(100), Some(51));
        assert_eq!(c.compacted_index(), 50);
        assert_eq!(c.due(120), None);
        assert_eq!(c.due(150), Some(101));
    }

    #[test]
    fn a_snapshot_moves_the_point() {
        let mut c = Compaction::new(10, 0);
        c.snapshot_installed(40);
        assert_eq!(c.due(45), None);
        assert_eq!(c.due(50), Some(46));
    }
}
