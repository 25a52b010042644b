//! The store's history as watches read it: the changes of a span of
//! revisions in revision order (from `rev_index`), each with the key's
//! previous live value (from `kv_revs`), all from one read transaction so
//! the compaction check and the data agree.

use rafter_core::watch::{EventHistory, HistoryChunk, HistoryError};
use rafter_proto::mvccpb::event::EventType;
use rafter_proto::mvccpb::Event;
use redb::ReadableDatabase;

use super::record::Record;
use super::tables::{compact_revision, KV_REVS, META, REV_INDEX};
use super::{MvccError, MvccStore};

impl MvccStore {
    /// Events of revisions `from_rev..=to_rev`, whole revisions only, ending
    /// at the first revision boundary after `max_events` events.
    pub fn history(
        &self,
        from_rev: i64,
        to_rev: i64,
        max_events: usize,
    ) -> Result<HistoryChunk, HistoryError> {
        self.read_history(from_rev, to_rev, max_events)
            .map_err(|e| HistoryError::Failed(e.to_string()))?
    }

    fn read_history(
        &self,
        from_rev: i64,
        to_rev: i64,
        max_events: usize,
    ) -> Result<Result<HistoryChunk, HistoryError>, MvccError> {
        let txn = self.db().begin_read()?;
        let compacted = compact_revision(&txn.open_table(META)?)?;
        if from_rev < compacted {
            return Ok(Err(HistoryError::Compacted(compacted)));
        }
        let index = txn.open_table(REV_INDEX)?;
        let revs = txn.open_table(KV_REVS)?;
        let mut events: Vec<Event> = Vec::new();
        let (from, to) = (from_rev.max(0) as u64, to_rev.max(0) as u64);
        for item in index.range((from, 0u64)..=(to, u64::MAX))? {
            let (rk, key) = item?;
            let (rev, _) = rk.value();
            let key = key.value();
            let last_rev = events
                .last()
                .map(|e| rafter_core::watch::event_revision(e) as u64);
            if events.len() >= max_events && last_rev != Some(rev) {
                let through_rev = last_rev.expect("events is not empty") as i64;
                return Ok(Ok(HistoryChunk {
                    events,
                    through_rev,
                }));
            }
            let rec = revs
                .get((key, rev))?
                .map(|v| Record::decode(v.value()))
                .ok_or_else(|| {
                    MvccError::Storage(format!("revision {rev} indexed but not stored"))
                })?;
            let prev = revs
                .range((key, 0u64)..(key, rev))?
                .next_back()
                .transpose()?
                .map(|(_, v)| Record::decode(v.value()))
                .filter(|r| !r.tombstone);
            events.push(Event {
                r#type: if rec.tombstone {
                    EventType::Delete as i32
                } else {
                    EventType::Put as i32
                },
                kv: Some(rec.to_key_value(key)),
                prev_kv: prev.map(|r| r.to_key_value(key)),
            });
        }
        Ok(Ok(HistoryChunk {
            events,
            through_rev: to_rev,
        }))
    }
}

impl EventHistory for MvccStore {
    fn events(
        &self,
        from_rev: i64,
        to_rev: i64,
        max_events: usize,
    ) -> Result<HistoryChunk, HistoryError> {
        self.history(from_rev, to_rev, max_events)
    }
}
