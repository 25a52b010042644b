//! The store's history as watches read it: the changes of a span of
//! revisions in revision order (from `kv_history`), each with the key's
//! previous live value (found through `kv_revs`), all from one read
//! transaction so the compaction check and the data agree.

use rafter_core::watch::{EventHistory, HistoryChunk, HistoryError};
use rafter_proto::mvccpb::event::EventType;
use rafter_proto::mvccpb::Event;
use redb::ReadableDatabase;

use super::tables::{
    compact_revision, decode_history_row, history_record, KV_HISTORY, KV_REVS, META,
};
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
        let history = txn.open_table(KV_HISTORY)?;
        let revs = txn.open_table(KV_REVS)?;
        let mut events: Vec<Event> = Vec::new();
        let (from, to) = (from_rev.max(0) as u64, to_rev.max(0) as u64);
        for item in history.range((from, 0u64)..=(to, u64::MAX))? {
            let (rk, row) = item?;
            let (rev, _) = rk.value();
            let (key, rec) = decode_history_row(row.value());
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
            let prev = match revs.range((key, 0u64)..(key, rev))?.next_back() {
                Some(item) => {
                    let (k, sub) = item?;
                    Some(history_record(&history, k.value().1, sub.value())?)
                }
                None => None,
            }
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
