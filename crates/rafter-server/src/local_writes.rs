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
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use rafter_core::hlc::{Hlc, HlcStamp};
use rafter_proto::rafterpb::LocalWrite;
use rafter_storage::local_queue::{LocalQueue, LocalQueueError};
use tokio::sync::oneshot;

use crate::error::ApiError;

/// What only the committer thread touches: the file and the numbering.
struct Durable {
    file: LocalQueue,
    next_seq: u64,
    hlc: Hlc,
    /// An append or fsync failed: what the file holds is unknown, so
    /// nothing more is acknowledged (a failed fsync is never retried as if
    /// it had succeeded).
    broken: Option<String>,
}

/// What readers and the apply thread see: the writes accepted here and
/// not yet applied.
#[derive(Default)]
struct Pending {
    /// By seq.
    writes: BTreeMap<u64, LocalWrite>,
    /// The newest pending seq of each key.
    newest: HashMap<Vec<u8>, u64>,
}

/// Most writes one fsync makes durable.
const MAX_WRITES_PER_FSYNC: usize = 1024;

/// A write waiting for the committer.
struct Submission {
    key: Vec<u8>,
    value: Vec<u8>,
    context_revision: i64,
    /// The stamp of the key's last change as this member applied it: the
    /// write's stamp must follow it (it saw that change).
    seen: Option<HlcStamp>,
    reply: oneshot::Sender<Result<LocalWrite, ApiError>>,
}

/// The committer's work, in arrival order.
enum Work {
    Write(Submission),
    /// Every pending write may have applied: replace the file by a marker
    /// if so (off the apply thread, which must not wait for fsyncs).
    Trim,
    /// Answered once everything sent before it is done.
    Flush(std::sync::mpsc::Sender<()>),
}

pub struct LocalWrites {
    member_id: u64,
    durable: Mutex<Durable>,
    pending: Mutex<Pending>,
    /// The committer's queue (set by `start_committer`).
    submit: Mutex<Option<std::sync::mpsc::Sender<Work>>>,
}

/// Milliseconds since the Unix epoch (0 if the clock is before it).
pub(crate) fn wall_clock_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// The record that stands for "every write up to `seq` applied": no key
/// (a real write always has one).
fn marker(member_id: u64, seq: u64, stamp: HlcStamp) -> LocalWrite {
    LocalWrite {
        member_id,
        seq,
        hlc_physical_ms: stamp.physical_ms,
        hlc_logical: stamp.logical,
        ..Default::default()
    }
}

fn is_marker(w: &LocalWrite) -> bool {
    w.key.is_empty()
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
        // The highest seq ever handed out: from the writes and the marker
        // the file keeps once they all applied. Not from the store alone,
        // whose applied state may be older than what was trimmed here
        // (it is made durable lazily and replayed from the log).
        let last_found = found.iter().map(|w| w.seq).max().unwrap_or(0);
        let newest_stamp = found.iter().map(stamp_of).max().unwrap_or_default();
        let pending: Vec<LocalWrite> = found
            .into_iter()
            .filter(|w| w.member_id == member_id && w.seq > applied_seq && !is_marker(w))
            .collect();
        let last_seq = applied_seq.max(last_found);
        if pending.is_empty() {
            file.replace(&[marker(member_id, last_seq, newest_stamp)])?;
        }
        let mut newest = HashMap::new();
        for w in &pending {
            newest.insert(w.key.clone(), w.seq);
        }
        let queue = LocalWrites {
            member_id,
            durable: Mutex::new(Durable {
                file,
                next_seq: last_seq + 1,
                hlc: Hlc::starting_after(newest_stamp),
                broken: None,
            }),
            pending: Mutex::new(Pending {
                writes: pending.iter().map(|w| (w.seq, w.clone())).collect(),
                newest,
            }),
            submit: Mutex::new(None),
        };
        Ok((queue, pending))
    }

    /// Starts the thread that makes accepted writes durable: it takes every
    /// write waiting, stamps them and appends them with one fsync (group
    /// commit), hands them to `hand_off` (the core) in seq order, and only
    /// then answers their callers. It also trims the file once every write
    /// applied.
    pub fn start_committer(
        self: &Arc<Self>,
        hand_off: impl Fn(Vec<LocalWrite>) -> Result<(), ApiError> + Send + 'static,
    ) -> std::io::Result<()> {
        let (tx, rx) = std::sync::mpsc::channel::<Work>();
        *self.submit.lock().expect("local writes submit") = Some(tx);
        let me = Arc::clone(self);
        std::thread::Builder::new()
            .name("rafter-local-writes".into())
            .spawn(move || {
                let mut next = rx.recv().ok();
                while let Some(work) = next.take() {
                    match work {
                        Work::Write(first) => {
                            let mut batch = vec![first];
                            // Group commit: every write already waiting.
                            while batch.len() < MAX_WRITES_PER_FSYNC {
                                match rx.try_recv() {
                                    Ok(Work::Write(s)) => batch.push(s),
                                    Ok(other) => {
                                        next = Some(other);
                                        break;
                                    }
                                    Err(_) => break,
                                }
                            }
                            me.commit(batch, &hand_off);
                        }
                        Work::Trim => me.trim(),
                        Work::Flush(done) => {
                            let _ = done.send(());
                        }
                    }
                    if next.is_none() {
                        next = rx.recv().ok();
                    }
                }
            })?;
        Ok(())
    }

    fn send(&self, work: Work) -> Result<(), ApiError> {
        let submit = self.submit.lock().expect("local writes submit");
        let tx = submit.as_ref().ok_or(ApiError::Stopped)?;
        tx.send(work).map_err(|_| ApiError::Stopped)
    }

    /// Accepts a write: resolves once it is durable in the queue and handed
    /// to the core (it may be acknowledged then).
    pub async fn accept(
        &self,
        key: Vec<u8>,
        value: Vec<u8>,
        context_revision: i64,
        seen: Option<HlcStamp>,
    ) -> Result<LocalWrite, ApiError> {
        let (reply, answer) = oneshot::channel();
        self.send(Work::Write(Submission {
            key,
            value,
            context_revision,
            seen,
            reply,
        }))?;
        answer.await.map_err(|_| ApiError::Stopped)?
    }

    fn commit(
        &self,
        batch: Vec<Submission>,
        hand_off: &impl Fn(Vec<LocalWrite>) -> Result<(), ApiError>,
    ) {
        let mut durable = self.durable.lock().expect("local writes file");
        if let Some(why) = &durable.broken {
            let why = why.clone();
            for s in batch {
                let _ = s.reply.send(Err(ApiError::LocalQueue(why.clone())));
            }
            return;
        }
        let now_ms = wall_clock_ms();
        let mut writes = Vec::with_capacity(batch.len());
        let mut replies = Vec::with_capacity(batch.len());
        for (i, s) in batch.into_iter().enumerate() {
            if let Some(seen) = s.seen {
                durable.hlc.observe(seen);
            }
            let stamp = durable.hlc.stamp(now_ms);
            writes.push(LocalWrite {
                member_id: self.member_id,
                seq: durable.next_seq + i as u64,
                key: s.key,
                value: s.value,
                context_revision: s.context_revision,
                hlc_physical_ms: stamp.physical_ms,
                hlc_logical: stamp.logical,
            });
            replies.push(s.reply);
        }
        // Readers of the pending writes do not wait for this fsync.
        if let Err(e) = durable.file.append(&writes) {
            let why = e.to_string();
            tracing::error!("local writes are refused from now on: {why}");
            durable.broken = Some(why.clone());
            for reply in replies {
                let _ = reply.send(Err(ApiError::LocalQueue(why.clone())));
            }
            return;
        }
        durable.next_seq += writes.len() as u64;
        {
            let mut pending = self.pending.lock().expect("local writes");
            for w in &writes {
                pending.newest.insert(w.key.clone(), w.seq);
                pending.writes.insert(w.seq, w.clone());
            }
        }
        // Only this thread hands writes over: the core gets them in seq
        // order. Only a stopped member fails this; the writes stay durable
        // and are handed over again at restart.
        let handed = hand_off(writes.clone()).is_ok();
        for (w, reply) in writes.into_iter().zip(replies) {
            let _ = reply.send(if handed {
                Ok(w)
            } else {
                Err(ApiError::Stopped)
            });
        }
    }

    /// Replaces the file by a marker of the last seq used, if every write
    /// in it applied (on the committer thread: no write is appended
    /// meanwhile).
    fn trim(&self) {
        let mut durable = self.durable.lock().expect("local writes file");
        let drained = self.pending.lock().expect("local writes").writes.is_empty();
        if !drained || durable.broken.is_some() {
            return;
        }
        let last = marker(self.member_id, durable.next_seq - 1, durable.hlc.stamp(0));
        if let Err(e) = durable.file.replace(&[last]) {
            let why = e.to_string();
            tracing::error!("local writes are refused from now on: {why}");
            durable.broken = Some(why);
        }
    }

    /// Waits until the committer did everything asked of it before.
    pub fn flush(&self) -> Result<(), ApiError> {
        let (done, wait) = std::sync::mpsc::channel();
        self.send(Work::Flush(done))?;
        wait.recv().map_err(|_| ApiError::Stopped)
    }

    /// The newest write to `key` accepted here and not yet applied.
    pub fn newest(&self, key: &[u8]) -> Option<LocalWrite> {
        let pending = self.pending.lock().expect("local writes");
        let seq = pending.newest.get(key)?;
        pending.writes.get(seq).cloned()
    }

    /// The state machine applied this member's writes through `seq`. The
    /// file is trimmed on the committer thread, never here (the apply
    /// thread).
    pub fn applied_through(&self, seq: u64) {
        let drained = {
            let mut pending = self.pending.lock().expect("local writes");
            let still = pending.writes.split_off(&(seq + 1));
            let done = std::mem::replace(&mut pending.writes, still);
            for (s, w) in done {
                if pending.newest.get(&w.key) == Some(&s) {
                    pending.newest.remove(&w.key);
                }
            }
            pending.writes.is_empty()
        };
        if drained {
            // Without a committer (stopping) the file keeps the applied
            // writes; the next start skips them and trims it.
            let _ = self.send(Work::Trim);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn seqs_are_never_reused_even_when_the_store_restarts_behind() {
        let dir = tempfile::tempdir().unwrap();
        let (q, pending) = LocalWrites::open(dir.path(), 7, 0).unwrap();
        assert!(pending.is_empty());
        let q = Arc::new(q);
        q.start_committer(|_| Ok(())).unwrap();
        let a = q
            .accept(b"k".to_vec(), b"a".to_vec(), 1, None)
            .await
            .unwrap();
        let b = q
            .accept(b"k".to_vec(), b"b".to_vec(), 1, None)
            .await
            .unwrap();
        assert_eq!((a.seq, b.seq), (1, 2));
        assert_eq!(q.newest(b"k").unwrap().value, b"b");
        q.applied_through(2);
        assert_eq!(q.newest(b"k"), None);
        q.flush().unwrap();
        drop(q);
        // The store lost its last applies (they come back from the log):
        // it says nothing applied, yet seqs 1 and 2 must not be reused.
        let (q, pending) = LocalWrites::open(dir.path(), 7, 0).unwrap();
        assert!(pending.is_empty(), "{pending:?}");
        let q = Arc::new(q);
        q.start_committer(|_| Ok(())).unwrap();
        let c = q
            .accept(b"k".to_vec(), b"c".to_vec(), 2, None)
            .await
            .unwrap();
        assert_eq!(c.seq, 3);
    }

    #[tokio::test]
    async fn unapplied_writes_come_back_after_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let (q, _) = LocalWrites::open(dir.path(), 7, 0).unwrap();
        let q = Arc::new(q);
        q.start_committer(|_| Ok(())).unwrap();
        for v in ["a", "b", "c"] {
            q.accept(b"k".to_vec(), v.as_bytes().to_vec(), 1, None)
                .await
                .unwrap();
        }
        drop(q);
        let (_, pending) = LocalWrites::open(dir.path(), 7, 1).unwrap();
        let seqs: Vec<u64> = pending.iter().map(|w| w.seq).collect();
        assert_eq!(seqs, vec![2, 3], "applied ones are not handed out again");
    }
}
