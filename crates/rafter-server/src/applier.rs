//! The apply thread: applies committed entries to the MVCC store, one write
//! transaction per batch, and answers their proposers, off the Raft thread.
//! The Raft loop hands entries over and goes on persisting, replicating and
//! committing while the store works and while it makes its periodic durable
//! commit (etcd applies in its own goroutine for the same reason). Applied
//! progress goes back to the Raft loop as `NodeRequest::Applied`; log
//! compaction is asked for only once the store is durable past it.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender, SyncSender};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use raft::eraftpb::{Entry, Snapshot};
use rafter_core::decode_command;
use rafter_storage::mvcc::{ApplyEntry, KvResponse};
use rafter_storage::MvccStore;
use tokio::sync::{oneshot, watch};

use crate::error::ApiError;
use crate::node::{NodeRequest, NodeStatus};

/// How long applied state may stay only in the Raft log before the store
/// commits durably (the log always holds what the store has not synced).
/// A durable commit writes every page dirtied since the last one and blocks
/// applies meanwhile: at 500 ms that took 17-80 ms under 5,000 puts/s (the
/// put p99); at 50 ms the p99 fell by a third at the same CPU per put
/// (etcd's backend commits every 100 ms).
const STORE_SYNC_INTERVAL: Duration = Duration::from_millis(50);
/// How often waiters whose client gave up are forgotten.
const PRUNE_INTERVAL: Duration = Duration::from_secs(1);
/// Upper bound on tasks taken in one turn, so syncs and pruning still come.
const MAX_TASKS_PER_TURN: usize = 16_384;
/// Upper bound on entries applied in one store transaction.
const MAX_ENTRIES_PER_BATCH: usize = 8192;

/// The apply thread; it returns why it stopped, if on an error.
pub type ApplyThread = JoinHandle<Result<(), String>>;

/// Where a proposal's result goes once its entry is applied.
pub type ProposalReply = oneshot::Sender<Result<KvResponse, ApiError>>;

/// Work for the apply thread, in the Raft loop's order.
pub enum ApplyTask {
    /// The reply of proposal `id`. Sent when the proposal enters the log,
    /// so always before the entry that carries it.
    Await { id: u64, reply: ProposalReply },
    /// Committed entries, in log order.
    Entries(Vec<Entry>),
    /// Replace the store by a snapshot's state (after every entry sent
    /// before it); the outcome goes to `done`.
    Snapshot {
        snapshot: Box<Snapshot>,
        done: SyncSender<Result<(), String>>,
    },
}

/// The apply thread's state.
pub struct Applier {
    pub store: Arc<MvccStore>,
    pub status: Arc<NodeStatus>,
    pub applied_tx: watch::Sender<u64>,
    pub raft_tx: Sender<NodeRequest>,
    /// Compact the log once this many entries were applied since the last
    /// compaction (etcd's `--snapshot-count`).
    pub snapshot_count: u64,
    /// Index the log was last compacted at.
    pub compacted_index: u64,
}

/// Entries kept behind the compaction point so slightly slow followers catch
/// up from the log rather than a snapshot (etcd keeps 5000).
fn catch_up_entries(snapshot_count: u64) -> u64 {
    (snapshot_count / 2).min(5000)
}

impl Applier {
    /// Starts the thread. It runs until the task sender is dropped, then
    /// makes the store durable; a store failure is also reported to the
    /// Raft loop, which stops the member.
    pub fn spawn(self) -> std::io::Result<(Sender<ApplyTask>, ApplyThread)> {
        let (tx, rx) = std::sync::mpsc::channel();
        let handle = std::thread::Builder::new()
            .name("rafter-apply".into())
            .spawn(move || {
                let raft_tx = self.raft_tx.clone();
                let result = self.run(rx);
                if let Err(e) = &result {
                    let _ = raft_tx.send(NodeRequest::ApplyFailed(e.clone()));
                }
                result
            })?;
        Ok((tx, handle))
    }

    fn run(mut self, rx: Receiver<ApplyTask>) -> Result<(), String> {
        let mut waiters: HashMap<u64, ProposalReply> = HashMap::new();
        let mut last_sync = Instant::now();
        let mut last_prune = Instant::now();
        let mut dirty = false;
        loop {
            let first = match rx.recv_timeout(STORE_SYNC_INTERVAL) {
                Ok(task) => Some(task),
                Err(RecvTimeoutError::Timeout) => None,
                Err(RecvTimeoutError::Disconnected) => break,
            };
            let mut entries = Vec::new();
            for task in first
                .into_iter()
                .chain(rx.try_iter().take(MAX_TASKS_PER_TURN))
            {
                match task {
                    ApplyTask::Await { id, reply } => {
                        waiters.insert(id, reply);
                    }
                    ApplyTask::Entries(mut batch) => {
                        entries.append(&mut batch);
                        if entries.len() >= MAX_ENTRIES_PER_BATCH {
                            dirty |= self.apply(&std::mem::take(&mut entries), &mut waiters)?;
                        }
                    }
                    ApplyTask::Snapshot { snapshot, done } => {
                        dirty |= self.apply(&std::mem::take(&mut entries), &mut waiters)?;
                        let result = self.install_snapshot(&snapshot);
                        let _ = done.send(result.clone());
                        result?;
                    }
                }
            }
            dirty |= self.apply(&entries, &mut waiters)?;
            if dirty && last_sync.elapsed() >= STORE_SYNC_INTERVAL {
                self.sync_store()?;
                dirty = false;
                last_sync = Instant::now();
            }
            if last_prune.elapsed() >= PRUNE_INTERVAL {
                waiters.retain(|_, reply| !reply.is_closed());
                last_prune = Instant::now();
            }
        }
        self.sync_store()
    }

    /// A durable store commit: it writes every page the batches since the
    /// last one dirtied, so its time grows with that interval.
    fn sync_store(&self) -> Result<(), String> {
        let started = Instant::now();
        self.store
            .sync()
            .map_err(|e| format!("state machine sync failed: {e}"))?;
        self.status.store_syncs.fetch_add(1, Ordering::Relaxed);
        self.status
            .store_sync_us
            .fetch_add(started.elapsed().as_micros() as u64, Ordering::Relaxed);
        Ok(())
    }

    /// Applies committed entries in one store transaction and answers their
    /// proposers. Returns whether anything was applied.
    fn apply(
        &mut self,
        entries: &[Entry],
        waiters: &mut HashMap<u64, ProposalReply>,
    ) -> Result<bool, String> {
        let Some(last) = entries.last() else {
            return Ok(false);
        };
        let mut decoded = Vec::with_capacity(entries.len());
        for e in entries {
            let cmd = decode_command(e.index, &e.data).map_err(|e| e.to_string())?;
            decoded.push((e.index, cmd));
        }
        let apply_entries: Vec<ApplyEntry<'_>> = decoded
            .iter()
            .map(|(index, cmd)| ApplyEntry {
                index: *index,
                request: cmd.as_ref().and_then(|c| c.request.as_ref()),
            })
            .collect();
        let (state, results) = self
            .store
            .apply(&apply_entries, false)
            .map_err(|e| format!("state machine write failed: {e}"))?;
        assert_eq!(
            state.applied_index, last.index,
            "applied index must follow the log"
        );
        for ((_, cmd), result) in decoded.iter().zip(results) {
            let (Some(cmd), Some(result)) = (cmd, result) else {
                continue;
            };
            if let Some(reply) = waiters.remove(&cmd.id) {
                let _ = reply.send(result.map_err(ApiError::from));
            }
        }
        self.publish_applied(last.index);
        self.status
            .entries_applied
            .fetch_add(entries.len() as u64, Ordering::Relaxed);
        self.maybe_compact_log(last.index)?;
        Ok(true)
    }

    /// Makes `index` visible to readers (read barriers, Status).
    fn make_visible(&self, index: u64) {
        self.status.applied_index.store(index, Ordering::Release);
        self.applied_tx.send_replace(index);
    }

    /// Makes `index` visible and tells the Raft loop.
    fn publish_applied(&self, index: u64) {
        self.make_visible(index);
        let _ = self.raft_tx.send(NodeRequest::Applied(index));
    }

    /// Replaces the state machine with a snapshot from the leader.
    fn install_snapshot(&mut self, snapshot: &Snapshot) -> Result<(), String> {
        let meta = snapshot.get_metadata();
        tracing::info!(
            index = meta.index,
            term = meta.term,
            size_bytes = snapshot.data.len(),
            "installing snapshot"
        );
        let state = self
            .store
            .restore(&snapshot.data)
            .map_err(|e| format!("snapshot restore failed: {e}"))?;
        assert_eq!(
            state.applied_index, meta.index,
            "snapshot data and metadata disagree"
        );
        self.compacted_index = meta.index;
        // The Raft loop records the snapshot as applied itself.
        self.make_visible(meta.index);
        Ok(())
    }

    /// Once `--snapshot-count` entries were applied since the last
    /// compaction, makes the store durable and asks the Raft loop to drop
    /// the log before `applied - catch_up_entries`.
    fn maybe_compact_log(&mut self, applied: u64) -> Result<(), String> {
        if applied < self.compacted_index + self.snapshot_count {
            return Ok(());
        }
        let compact_to = applied.saturating_sub(catch_up_entries(self.snapshot_count));
        if compact_to <= self.compacted_index + 1 {
            return Ok(());
        }
        // Entries may leave the log only once the store is durable past them.
        self.sync_store()?;
        let _ = self.raft_tx.send(NodeRequest::CompactLog(compact_to));
        self.compacted_index = compact_to - 1;
        Ok(())
    }
}
