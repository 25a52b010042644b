//! This member's local writes (`Set(consistent=false)`, seed 004 "Case 2"):
//! accepted without a quorum, acknowledged once fsynced in the member's
//! own queue file (`rafter_storage::local_queue`), readable at once by
//! `Get(consistent=false)` here, and handed to the core, which proposes
//! them into the log whenever a leader is known until they apply.
//!
//! Each write carries its causal context: the member's applied revision
//! when it was accepted, its dot (member id, seq: 1, 2, ... per member,
//! never reused) and a hybrid-logical-clock stamp.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

use rafter_core::hlc::{Hlc, HlcStamp};
use rafter_proto::rafterpb::LocalWrite;
use rafter_storage::local_queue::{LocalQueue, LocalQueueError};

use crate::error::ApiError;

struct Inner {
    file: LocalQueue,
    next_seq: u64,
    hlc: Hlc,
    /// Queued and not yet applied, by seq.
    pending: BTreeMap<u64, LocalWrite>,
    /// The newest pending seq of each key.
    newest: HashMap<Vec<u8>, u64>,
    /// An append or fsync failed: what the file holds is unknown, so
    /// nothing more is acknowledged (a failed fsync is never retried as if
    /// it had succeeded).
    broken: Option<String>,
}

pub struct LocalWrites {
    member_id: u64,
    inner: Mutex<Inner>,
}

fn wall_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

fn stamp_of(w: &LocalWrite) -> HlcStamp {
    HlcStamp {
        physical_ms: w.hlc_physical_ms,
        logical: w.hlc_logical,
    }
}

impl LocalWrites {
    /// Opens the queue in `dir`. `applied_seq` is the last of this member's
    /// writes the state machine applied; returns the writes still to be
    /// ordered (for the core), oldest first.
    pub fn open(
        dir: &Path,
        member_id: u64,
        applied_seq: u64,
    ) -> Result<(LocalWrites, Vec<LocalWrite>), LocalQueueError> {
        let (mut file, found) = LocalQueue::open(dir)?;
        let last_found = found.iter().map(|w| w.seq).max().unwrap_or(0);
        let newest_stamp = found.iter().map(stamp_of).max().unwrap_or_default();
        let pending: Vec<LocalWrite> = found
            .into_iter()
            .filter(|w| w.member_id == member_id && w.seq > applied_seq)
            .collect();
        if pending.is_empty() {
            file.clear()?;
        }
        let mut newest = HashMap::new();
        for w in &pending {
            newest.insert(w.key.clone(), w.seq);
        }
        let queue = LocalWrites {
            member_id,
            inner: Mutex::new(Inner {
                file,
                next_seq: applied_seq.max(last_found) + 1,
                hlc: Hlc::starting_after(newest_stamp),
                pending: pending.iter().map(|w| (w.seq, w.clone())).collect(),
                newest,
                broken: None,
            }),
        };
        Ok((queue, pending))
    }

    /// Accepts a write: stamps it, appends and fsyncs it, then hands it to
    /// `hand_off` (the core) while still holding the queue, so writes reach
    /// the core in seq order. Blocking (one fsync); the write may be
    /// acknowledged once this returns.
    pub fn accept(
        &self,
        key: Vec<u8>,
        value: Vec<u8>,
        context_revision: i64,
        hand_off: impl FnOnce(LocalWrite) -> Result<(), ApiError>,
    ) -> Result<LocalWrite, ApiError> {
        let mut inner = self.inner.lock().expect("local writes");
        if let Some(why) = &inner.broken {
            return Err(ApiError::LocalQueue(why.clone()));
        }
        let stamp = inner.hlc.stamp(wall_ms());
        let write = LocalWrite {
            member_id: self.member_id,
            seq: inner.next_seq,
            key,
            value,
            context_revision,
            hlc_physical_ms: stamp.physical_ms,
            hlc_logical: stamp.logical,
        };
        if let Err(e) = inner.file.append(std::slice::from_ref(&write)) {
            let why = e.to_string();
            tracing::error!("local writes are refused from now on: {why}");
            inner.broken = Some(why.clone());
            return Err(ApiError::LocalQueue(why));
        }
        inner.next_seq += 1;
        inner.newest.insert(write.key.clone(), write.seq);
        inner.pending.insert(write.seq, write.clone());
        hand_off(write.clone())?;
        Ok(write)
    }

    /// The newest write to `key` accepted here and not yet applied.
    pub fn newest(&self, key: &[u8]) -> Option<LocalWrite> {
        let inner = self.inner.lock().expect("local writes");
        let seq = inner.newest.get(key)?;
        inner.pending.get(seq).cloned()
    }

    /// The state machine applied this member's writes through `seq`.
    pub fn applied_through(&self, seq: u64) {
        let mut inner = self.inner.lock().expect("local writes");
        let still = inner.pending.split_off(&(seq + 1));
        let done = std::mem::replace(&mut inner.pending, still);
        for (s, w) in done {
            if inner.newest.get(&w.key) == Some(&s) {
                inner.newest.remove(&w.key);
            }
        }
        if inner.pending.is_empty() && inner.broken.is_none() {
            if let Err(e) = inner.file.clear() {
                let why = e.to_string();
                tracing::error!("local writes are refused from now on: {why}");
                inner.broken = Some(why);
            }
        }
    }
}
