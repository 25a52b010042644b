//! The apply thread: carries out the core's `Apply` and `InstallSnapshot`
//! actions on the MVCC store, in the order the core gave them, off the Raft
//! thread. The Raft loop hands batches over and goes on persisting,
//! replicating and committing while the store works and while it makes its
//! periodic durable commit (etcd applies in its own goroutine for the same
//! reason). The apply code itself is the core's (`rafter_core::apply_batch`,
//! which the simulator runs too); this thread only merges queued batches
//! into one store transaction, delivers each result to the reply the core
//! named, syncs the store, and reports progress back to the core
//! (`NodeRequest::Applied`, `NodeRequest::SnapshotInstalled`).

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use raft::eraftpb::Snapshot;
use rafter_core::{apply_batch, ApplyBatch, RequestId, StateMachine};
use rafter_storage::mvcc::KvResponse;
use rafter_storage::MvccStore;
use tokio::sync::oneshot;

use crate::error::ApiError;
use crate::local_writes::LocalWrites;
use crate::node::{NodeRequest, NodeStatus};
use crate::watcher::WatchFeeder;

/// How long applied state may stay only in the Raft log before the store
/// commits durably (the log always holds what the store has not synced).
/// A durable commit writes every page dirtied since the last one and blocks
/// applies meanwhile: at 500 ms that took 17-80 ms under 5,000 puts/s (the
/// put p99); at 50 ms the p99 fell by a third at the same CPU per put
/// (etcd's backend commits every 100 ms).
const STORE_SYNC_INTERVAL: Duration = Duration::from_millis(50);
/// Upper bound on tasks taken in one turn, so syncs still come.
const MAX_TASKS_PER_TURN: usize = 16_384;
/// Upper bound on entries applied in one store transaction.
const MAX_ENTRIES_PER_BATCH: usize = 8192;

/// The apply thread; it returns why it stopped, if on an error.
pub type ApplyThread = JoinHandle<Result<(), String>>;

/// Where a proposal's result goes once its entry is applied.
pub type ProposalReply = oneshot::Sender<Result<KvResponse, ApiError>>;

/// Work for the apply thread, in the core's order.
pub enum ApplyTask {
    /// Committed entries, and the replies of the proposals they answer.
    Apply {
        batch: ApplyBatch,
        waiting: Vec<(RequestId, ProposalReply)>,
    },
    /// Replace the store by a snapshot's state (after every batch before).
    Snapshot(Box<Snapshot>),
}

/// Batches merged into one store transaction.
#[derive(Default)]
struct Pending {
    batch: ApplyBatch,
    waiting: HashMap<RequestId, ProposalReply>,
}

/// The apply thread's state.
pub struct Applier {
    pub store: Arc<MvccStore>,
    pub status: Arc<NodeStatus>,
    pub raft_tx: Sender<NodeRequest>,
    /// The store's applied index.
    pub applied_index: u64,
    /// Where each batch's changes go, for watches.
    pub watch: WatchFeeder,
    pub member_id: u64,
    /// This member's local write queue, trimmed as its writes apply.
    pub local_writes: Arc<LocalWrites>,
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
        let mut last_sync = Instant::now();
        let mut durable = self.applied_index;
        loop {
            let first = match rx.recv_timeout(STORE_SYNC_INTERVAL) {
                Ok(task) => Some(task),
                Err(RecvTimeoutError::Timeout) => None,
                Err(RecvTimeoutError::Disconnected) => break,
            };
            let mut pending = Pending::default();
            for task in first
                .into_iter()
                .chain(rx.try_iter().take(MAX_TASKS_PER_TURN))
            {
                match task {
                    ApplyTask::Apply { batch, waiting } => {
                        pending.batch.append(batch);
                        pending.waiting.extend(waiting);
                        if pending.batch.entries.len() >= MAX_ENTRIES_PER_BATCH {
                            self.apply(std::mem::take(&mut pending), durable)?;
                        }
                    }
                    ApplyTask::Snapshot(snapshot) => {
                        self.apply(std::mem::take(&mut pending), durable)?;
                        self.install_snapshot(&snapshot)?;
                        durable = self.applied_index;
                    }
                }
            }
            self.apply(pending, durable)?;
            if durable < self.applied_index && last_sync.elapsed() >= STORE_SYNC_INTERVAL {
                self.sync_store()?;
                durable = self.applied_index;
                last_sync = Instant::now();
                self.report(durable);
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
            .metrics
            .backend_commit_seconds
            .observe(started.elapsed().as_secs_f64());
        self.status
            .store_sync_us
            .fetch_add(started.elapsed().as_micros() as u64, Ordering::Relaxed);
        Ok(())
    }

    /// Applies merged batches in one store transaction, answers their
    /// proposers and reports progress.
    fn apply(&mut self, mut pending: Pending, durable: u64) -> Result<(), String> {
        if pending.batch.is_empty() {
            return Ok(());
        }
        let applied =
            apply_batch(self.store.as_ref(), &pending.batch).map_err(|e| e.to_string())?;
        self.watch.applied(applied.watch);
        if !applied.leases.is_empty() {
            let _ = self.raft_tx.send(NodeRequest::LeaseChanges(applied.leases));
        }
        if let Some(open) = applied.sessions_open {
            let _ = self.raft_tx.send(NodeRequest::SessionsOpen(open));
        }
        if let Some(&(_, seq)) = applied
            .local_dots
            .iter()
            .rev()
            .find(|(member, _)| *member == self.member_id)
        {
            self.local_writes.applied_through(seq);
            let _ = self.raft_tx.send(NodeRequest::LocalWritesApplied(seq));
        }
        for id in applied.unanswered {
            tracing::error!(
                request = id,
                "an applied entry named a proposal it does not carry"
            );
            if let Some(reply) = pending.waiting.remove(&id) {
                let _ = reply.send(Err(ApiError::Stopped));
            }
        }
        for (id, result) in applied.replies {
            if let Some(reply) = pending.waiting.remove(&id) {
                let _ = reply.send(result.map_err(ApiError::from));
            }
        }
        self.status
            .entries_applied
            .fetch_add(pending.batch.entries.len() as u64, Ordering::Relaxed);
        self.status.apply_commits.fetch_add(1, Ordering::Relaxed);
        self.applied_index = applied.applied_index;
        self.report(durable);
        Ok(())
    }

    /// Makes the applied index visible (Status, metrics) and tells the core.
    fn report(&self, durable: u64) {
        self.status
            .applied_index
            .store(self.applied_index, Ordering::Release);
        let _ = self.raft_tx.send(NodeRequest::Applied {
            applied: self.applied_index,
            durable,
        });
    }

    /// Replaces the state machine with a snapshot from the leader (durably).
    fn install_snapshot(&mut self, snapshot: &Snapshot) -> Result<(), String> {
        let meta = snapshot.get_metadata();
        tracing::info!(
            index = meta.index,
            term = meta.term,
            size_bytes = snapshot.data.len(),
            "installing snapshot"
        );
        let index = StateMachine::restore(self.store.as_ref(), &snapshot.data)
            .map_err(|e| format!("snapshot restore failed: {e}"))?;
        assert_eq!(index, meta.index, "snapshot data and metadata disagree");
        rafter_core::fault::crash_point("after-snapshot-restore");
        let state = self
            .store
            .state()
            .map_err(|e| format!("reading the restored store failed: {e}"))?;
        self.watch
            .store_replaced(state.current_revision, state.compact_revision);
        let leases = self
            .store
            .leases()
            .map_err(|e| format!("reading the restored leases failed: {e}"))?;
        let _ = self.raft_tx.send(NodeRequest::LeasesReset(leases));
        let members = self
            .store
            .member_attributes()
            .map_err(|e| format!("reading the restored membership failed: {e}"))?;
        let _ = self.raft_tx.send(NodeRequest::MembershipReset(members));
        let sessions = self
            .store
            .sessions_open()
            .map_err(|e| format!("reading the restored sessions failed: {e}"))?;
        let _ = self.raft_tx.send(NodeRequest::SessionsOpen(sessions));
        let local_seq = self
            .store
            .local_applied_seq(self.member_id)
            .map_err(|e| format!("reading the restored local writes failed: {e}"))?;
        self.local_writes.applied_through(local_seq);
        let _ = self
            .raft_tx
            .send(NodeRequest::LocalWritesApplied(local_seq));
        self.applied_index = index;
        self.status.applied_index.store(index, Ordering::Release);
        let _ = self.raft_tx.send(NodeRequest::SnapshotInstalled(index));
        Ok(())
    }
}
