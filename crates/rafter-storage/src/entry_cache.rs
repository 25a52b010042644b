//! The newest Raft log entries, kept in memory in front of raft-engine.
//!
//! raft-rs reads its storage near the end of the log on every step: the
//! term of the entry a commit would cover, the term before each follower's
//! next append, the entries to send and the entries to apply. raft-engine
//! keeps in memory only where each entry lies in its files, so each of
//! those reads was a `pread` and a protobuf decode of the whole entry: a
//! fifth of a leader's Raft thread under a put load (benchmarks/NOTES.md,
//! change 5). TiKV keeps the same kind of cache in front of raft-engine.
//!
//! The cache holds a contiguous run of the log's newest entries, exactly as
//! persisted: an append replaces the cached suffix it conflicts with, as
//! the log itself does, and compaction or an installed snapshot drops what
//! the log drops. Older entries are read from raft-engine as before.

use std::collections::VecDeque;

use protobuf::Message as _;
use raft::eraftpb::Entry;

/// Bytes of bookkeeping counted per cached entry besides its payload.
const ENTRY_OVERHEAD_BYTES: usize = 64;

/// A contiguous run of the log's newest entries, bounded in bytes.
#[derive(Debug)]
pub struct EntryCache {
    entries: VecDeque<Entry>,
    size_bytes: usize,
    max_size_bytes: usize,
}

fn entry_size_bytes(e: &Entry) -> usize {
    e.data.len() + e.context.len() + ENTRY_OVERHEAD_BYTES
}

impl EntryCache {
    pub fn new(max_size_bytes: usize) -> Self {
        EntryCache {
            entries: VecDeque::new(),
            size_bytes: 0,
            max_size_bytes,
        }
    }

    fn first_index(&self) -> Option<u64> {
        self.entries.front().map(|e| e.index)
    }

    fn last_index(&self) -> Option<u64> {
        self.entries.back().map(|e| e.index)
    }

    /// Records entries the log just persisted. They start at
    /// `entries[0].index`, which replaces every cached entry from there on
    /// (a new leader's log overwriting a conflicting suffix).
    pub fn append(&mut self, entries: &[Entry]) {
        let Some(first) = entries.first() else {
            return;
        };
        let stale_suffix_kept =
            rafter_core::fault::active(rafter_core::fault::Fault::LogCacheStale);
        match (self.first_index(), self.last_index()) {
            (Some(_), Some(last)) if stale_suffix_kept && first.index <= last => return,
            (Some(front), Some(last)) if first.index > front && first.index <= last + 1 => {
                while self.last_index().is_some_and(|i| i >= first.index) {
                    let gone = self.entries.pop_back().expect("a cached entry");
                    self.size_bytes -= entry_size_bytes(&gone);
                }
            }
            // Not adjacent to the cached run (or replacing all of it): the
            // run starts again here.
            _ => self.clear(),
        }
        for e in entries {
            if let Some(last) = self.last_index() {
                assert_eq!(e.index, last + 1, "persisted entries must be contiguous");
            }
            self.size_bytes += entry_size_bytes(e);
            self.entries.push_back(e.clone());
        }
        while self.size_bytes > self.max_size_bytes {
            let Some(gone) = self.entries.pop_front() else {
                break;
            };
            self.size_bytes -= entry_size_bytes(&gone);
        }
    }

    /// Drops entries before `index` (the log compacted them).
    pub fn compact_to(&mut self, index: u64) {
        while self.first_index().is_some_and(|i| i < index) {
            let gone = self.entries.pop_front().expect("a cached entry");
            self.size_bytes -= entry_size_bytes(&gone);
        }
    }

    /// Forgets every entry (the log was replaced).
    pub fn clear(&mut self) {
        self.entries.clear();
        self.size_bytes = 0;
    }

    /// The term of entry `index`, if it is cached.
    pub fn term(&self, index: u64) -> Option<u64> {
        let first = self.first_index()?;
        let offset = usize::try_from(index.checked_sub(first)?).ok()?;
        let e = self.entries.get(offset)?;
        debug_assert_eq!(e.index, index);
        Some(e.term)
    }

    /// Entries `[low, high)`, if every one of them is cached, cut as
    /// raft-rs's `limit_size` cuts: the first entry always, then entries
    /// while their encoded sizes add up to at most `max_size_bytes`. Only
    /// the entries kept are copied.
    pub fn slice(&self, low: u64, high: u64, max_size_bytes: Option<u64>) -> Option<Vec<Entry>> {
        let first = self.first_index()?;
        let last = self.last_index()?;
        if low < first || high > last + 1 || low > high {
            return None;
        }
        let from = (low - first) as usize;
        let to = (high - first) as usize;
        let max_size_bytes = max_size_bytes.unwrap_or(u64::MAX);
        let mut size_bytes = 0u64;
        Some(
            self.entries
                .range(from..to)
                .enumerate()
                .take_while(|(i, e)| {
                    size_bytes = size_bytes.saturating_add(u64::from(e.compute_size()));
                    *i == 0 || size_bytes <= max_size_bytes
                })
                .map(|(_, e)| e.clone())
                .collect(),
        )
    }

    /// Bytes the cached entries account for.
    pub fn size_bytes(&self) -> usize {
        self.size_bytes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(index: u64, term: u64) -> Entry {
        Entry {
            index,
            term,
            data: vec![index as u8; 10].into(),
            ..Default::default()
        }
    }

    fn run(from: u64, to: u64, term: u64) -> Vec<Entry> {
        (from..=to).map(|i| entry(i, term)).collect()
    }

    #[test]
    fn an_overwrite_replaces_the_cached_suffix() {
        let mut cache = EntryCache::new(1 << 20);
        cache.append(&run(5, 10, 1));
        cache.append(&run(8, 9, 2));
        assert_eq!(cache.term(7), Some(1));
        assert_eq!(cache.term(8), Some(2));
        assert_eq!(cache.term(9), Some(2));
        assert_eq!(
            cache.term(10),
            None,
            "the old suffix past the overwrite is gone"
        );
        assert_eq!(cache.slice(5, 10, None).map(|v| v.len()), Some(5));
        assert_eq!(cache.slice(5, 11, None), None);
    }

    #[test]
    fn a_gap_or_an_overwrite_before_the_run_restarts_it() {
        let mut cache = EntryCache::new(1 << 20);
        cache.append(&run(5, 10, 1));
        cache.append(&run(20, 21, 1));
        assert_eq!(cache.term(10), None);
        assert_eq!(cache.term(20), Some(1));
        cache.append(&run(3, 4, 2));
        assert_eq!(cache.term(20), None);
        assert_eq!(cache.slice(3, 5, None).map(|v| v.len()), Some(2));
    }

    #[test]
    fn the_oldest_entries_go_past_the_byte_bound_and_compaction_drops_a_prefix() {
        let mut cache = EntryCache::new(3 * (10 + ENTRY_OVERHEAD_BYTES));
        cache.append(&run(1, 5, 1));
        assert_eq!(cache.term(2), None);
        assert_eq!(cache.slice(3, 6, None).map(|v| v.len()), Some(3));
        assert!(cache.size_bytes() <= 3 * (10 + ENTRY_OVERHEAD_BYTES));
        cache.compact_to(5);
        assert_eq!(cache.term(4), None);
        assert_eq!(cache.term(5), Some(1));
        cache.compact_to(9);
        assert_eq!(cache.size_bytes(), 0);
    }
}
