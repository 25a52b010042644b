//! Local writers: clients that make `Set(consistent=false)` writes on
//! random members (including ones cut off or about to crash), and the
//! check of what became of every acknowledged one after settling. The
//! acknowledgement comes once the write is in the member's durable queue;
//! from there the core must bring it into the log.
//!
//! Properties (after the cluster healed and settled):
//! - every acknowledged local write applied (its member's applied seq
//!   reached it): nothing acknowledged is lost, across crashes;
//! - its value appears exactly once in its key's history: applied once,
//!   however often it was proposed;
//! - one member's writes to a key appear in their seq order.

use std::collections::BTreeMap;

use rafter_proto::mvccpb::Event;
use rafter_proto::rafterpb::LocalWrite;
use rafter_storage::MvccStore;

/// Writes acknowledged to local writers.
#[derive(Debug, Default)]
pub struct LocalAcks {
    acks: Vec<(u64, LocalWrite)>,
}

impl LocalAcks {
    pub fn acknowledged(&mut self, at_ms: u64, write: LocalWrite) {
        self.acks.push((at_ms, write));
    }

    pub fn len(&self) -> usize {
        self.acks.len()
    }

    pub fn is_empty(&self) -> bool {
        self.acks.is_empty()
    }

    /// Problems with the acknowledged writes, judged on `store` (a member
    /// that applied everything) and its full `history`.
    pub fn check(&self, store: &MvccStore, history: &[Event]) -> Vec<String> {
        let mut problems = Vec::new();
        // value -> revisions where it was written
        let mut written: BTreeMap<&[u8], Vec<i64>> = BTreeMap::new();
        for e in history {
            if let Some(kv) = &e.kv {
                if e.r#type == rafter_proto::mvccpb::event::EventType::Put as i32 {
                    written.entry(&kv.value).or_default().push(kv.mod_revision);
                }
            }
        }
        let mut last_rev: BTreeMap<(u64, Vec<u8>), (u64, i64)> = BTreeMap::new();
        for (at_ms, w) in &self.acks {
            let applied = store.local_applied_seq(w.member_id).unwrap_or(0);
            if applied < w.seq {
                problems.push(format!(
                    "local write m{}#{} (acknowledged at {at_ms} ms) was lost: the member's writes applied only up to #{applied}",
                    w.member_id, w.seq
                ));
                continue;
            }
            let revs = written.get(w.value.as_slice()).cloned().unwrap_or_default();
            if revs.len() != 1 {
                problems.push(format!(
                    "local write m{}#{} (acknowledged at {at_ms} ms) applied {} times, at revisions {revs:?}",
                    w.member_id,
                    w.seq,
                    revs.len()
                ));
                continue;
            }
            let key = (w.member_id, w.key.clone());
            if let Some((seq, rev)) = last_rev.get(&key) {
                if revs[0] < *rev {
                    problems.push(format!(
                        "local write m{}#{} applied at revision {} before #{seq} (revision {rev})",
                        w.member_id, w.seq, revs[0]
                    ));
                }
            }
            last_rev.insert(key, (w.seq, revs[0]));
        }
        problems
    }
}
