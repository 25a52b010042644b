//! The Raft loop: one thread that owns the member core and the Raft log.
//! Each turn it drains every queued request, proposes them all, persists the
//! resulting Ready with one fsync (group commit) and hands every committed
//! entry to the apply thread (`applier.rs`), which owns the write side of
//! the MVCC store and answers the waiting clients. Reads never come here
//! except for the read-index handshake, which is coalesced: one round per
//! turn.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender};
use std::sync::Arc;
use std::time::{Duration, Instant};

use raft::eraftpb::Entry;
use rafter_core::{encode_command, Member, ProposeError};
use rafter_proto::rafterpb::RaftCommand;
use rafter_storage::mvcc::KvResponse;
use rafter_storage::{KvRequest, MemberStorage, RaftLog};
use tokio::sync::oneshot;

use crate::applier::{ApplyTask, ApplyThread};
use crate::error::ApiError;
use crate::message_counts::MessageCounts;
use crate::transport::Transport;

/// Upper bound on overdue ticks taken in one turn.
const MAX_CATCH_UP_TICKS: u32 = 1000;
/// Upper bound on requests taken into one turn, so one turn stays short.
const MAX_REQUESTS_PER_TURN: usize = 8192;

/// A request to the Raft loop.
pub enum NodeRequest {
    /// Replicate and apply a mutation; the reply carries its result.
    Propose {
        request: KvRequest,
        reply: oneshot::Sender<Result<KvResponse, ApiError>>,
    },
    /// Learn an index such that every write acknowledged before the call is
    /// at or below it (ReadIndex).
    ReadIndex {
        reply: oneshot::Sender<Result<u64, ApiError>>,
    },
    /// A Raft message from a peer.
    Step(Box<raft::eraftpb::Message>),
    /// The transport lost its stream to this peer.
    Unreachable(u64),
    /// Whether a snapshot message reached this peer.
    SnapshotStatus(u64, bool),
    /// Hand leadership to this member (etcd's MoveLeader).
    TransferLeader {
        target: u64,
        reply: oneshot::Sender<Result<(), ApiError>>,
    },
    /// The apply thread applied everything up to this index.
    Applied(u64),
    /// The store is durable past this index: drop the log before it.
    CompactLog(u64),
    /// The apply thread stopped on a store failure: the member must stop.
    ApplyFailed(String),
    /// Stop after making applied state durable.
    Shutdown,
}

/// Live facts about the member, published by the Raft loop after each turn.
#[derive(Debug, Default)]
pub struct NodeStatus {
    pub term: AtomicU64,
    pub leader_id: AtomicU64,
    pub commit_index: AtomicU64,
    pub applied_index: AtomicU64,
    pub wal_fsyncs: AtomicU64,
    pub entries_applied: AtomicU64,
    pub proposals: AtomicU64,
    pub ready_cycles: AtomicU64,
    pub store_syncs: AtomicU64,
    pub store_sync_us: AtomicU64,
    pub messages_sent: MessageCounts,
}

/// Everything the loop owns.
pub struct RaftLoop {
    pub member: Member<MemberStorage>,
    pub log: RaftLog,
    pub status: Arc<NodeStatus>,
    pub tick_interval: Duration,
    pub next_command_id: u64,
    /// Sends Raft messages to peers (`None` until the peer transport starts).
    pub transport: Option<Transport>,
    /// The apply thread's queue and handle.
    pub apply_tx: Sender<ApplyTask>,
    pub apply_thread: ApplyThread,
}

struct Waiters {
    /// Read-index requests not yet sent to Raft.
    reads_queued: Vec<oneshot::Sender<Result<u64, ApiError>>>,
    /// Read-index rounds in flight, by context.
    reads_in_flight: HashMap<u64, Vec<oneshot::Sender<Result<u64, ApiError>>>>,
    next_read_ctx: u64,
    /// Leadership transfers waiting for the target to win.
    transfers: Vec<(u64, oneshot::Sender<Result<(), ApiError>>)>,
}

impl Waiters {
    /// Forgets waiters whose client gave up (timed out), so requests lost in
    /// a leader change do not accumulate; and answers finished transfers.
    fn prune(&mut self, leader: Option<u64>) {
        self.reads_in_flight.retain(|_, rs| {
            rs.retain(|r| !r.is_closed());
            !rs.is_empty()
        });
        let (done, waiting): (Vec<_>, Vec<_>) = std::mem::take(&mut self.transfers)
            .into_iter()
            .partition(|(target, reply)| Some(*target) == leader || reply.is_closed());
        self.transfers = waiting;
        for (_, reply) in done {
            let _ = reply.send(Ok(()));
        }
    }
}

impl RaftLoop {
    /// Runs until asked to shut down (or every sender is gone). Returns an error when the
    /// disk fails: the member must stop rather than acknowledge anything it
    /// may not have persisted.
    pub fn run(mut self, rx: Receiver<NodeRequest>) -> Result<(), String> {
        let mut w = Waiters {
            reads_queued: Vec::new(),
            reads_in_flight: HashMap::new(),
            next_read_ctx: 1,
            transfers: Vec::new(),
        };
        if self.member.is_sole_voter() && !self.member.is_leader() {
            self.member.campaign().map_err(|e| e.to_string())?;
        }
        let mut next_tick = Instant::now() + self.tick_interval;
        'turns: loop {
            let wait = next_tick.saturating_duration_since(Instant::now());
            let first = match rx.recv_timeout(wait) {
                Ok(req) => Some(req),
                Err(RecvTimeoutError::Timeout) => None,
                Err(RecvTimeoutError::Disconnected) => break,
            };
            for req in first
                .into_iter()
                .chain(rx.try_iter().take(MAX_REQUESTS_PER_TURN))
            {
                match req {
                    NodeRequest::Shutdown => break 'turns,
                    NodeRequest::ApplyFailed(why) => return Err(why),
                    req => self.accept(req, &mut w)?,
                }
            }
            // Every tick that fell due since the last turn is taken, so Raft's
            // timers follow the wall clock even when the loop woke late (at a
            // 100 us tick a busy machine would otherwise stretch timeouts).
            let now = Instant::now();
            if now >= next_tick {
                w.prune(self.member.leader_id());
                let mut ticks = 0;
                while now >= next_tick && ticks < MAX_CATCH_UP_TICKS {
                    self.member.tick();
                    next_tick += self.tick_interval;
                    ticks += 1;
                }
                if next_tick <= now {
                    next_tick = now + self.tick_interval;
                }
            }
            self.start_read_round(&mut w);
            self.run_cycles(&mut w)?;
            self.publish_status();
        }
        // Dropping the queue stops the apply thread, which makes the store
        // durable before it exits.
        let RaftLoop {
            apply_tx,
            apply_thread,
            ..
        } = self;
        drop(apply_tx);
        apply_thread
            .join()
            .map_err(|_| "the apply thread panicked".to_string())?
    }

    /// Hands work to the apply thread; it is gone only after a store
    /// failure, which it reports itself.
    fn to_applier(&self, task: ApplyTask) -> Result<(), String> {
        self.apply_tx
            .send(task)
            .map_err(|_| "the apply thread stopped".to_string())
    }

    fn accept(&mut self, req: NodeRequest, w: &mut Waiters) -> Result<(), String> {
        match req {
            NodeRequest::Propose { request, reply } => {
                let id = self.next_command_id;
                self.next_command_id += 1;
                let cmd = RaftCommand {
                    id,
                    request: Some(request),
                };
                match self.member.propose(encode_command(&cmd)) {
                    Ok(()) => {
                        self.status.proposals.fetch_add(1, Ordering::Relaxed);
                        self.to_applier(ApplyTask::Await { id, reply })?;
                    }
                    Err(ProposeError::NoLeader) => {
                        let _ = reply.send(Err(ApiError::NoLeader));
                    }
                    Err(ProposeError::Dropped) => {
                        let _ = reply.send(Err(ApiError::NoLeader));
                    }
                }
            }
            NodeRequest::ReadIndex { reply } => {
                if self.member.leader_id().is_none() {
                    let _ = reply.send(Err(ApiError::NoLeader));
                } else {
                    w.reads_queued.push(reply);
                }
            }
            NodeRequest::Step(msg) => {
                if let Err(e) = self.member.step(*msg) {
                    tracing::debug!("raft rejected a peer message: {e}");
                }
            }
            NodeRequest::Unreachable(peer) => self.member.report_unreachable(peer),
            NodeRequest::SnapshotStatus(peer, delivered) => {
                self.member.report_snapshot(peer, delivered)
            }
            NodeRequest::TransferLeader { target, reply } => {
                if self.member.is_leader() {
                    self.member.transfer_leader(target);
                    w.transfers.push((target, reply));
                } else {
                    let _ = reply.send(Err(ApiError::NotLeader));
                }
            }
            NodeRequest::Applied(index) => self.member.on_applied(index),
            NodeRequest::CompactLog(compact_to) => self.compact_log(compact_to)?,
            NodeRequest::Shutdown | NodeRequest::ApplyFailed(_) => {
                unreachable!("handled by the loop")
            }
        }
        Ok(())
    }

    /// One read-index round serves every read queued during this turn.
    fn start_read_round(&mut self, w: &mut Waiters) {
        if w.reads_queued.is_empty() {
            return;
        }
        let ctx = w.next_read_ctx;
        w.next_read_ctx += 1;
        w.reads_in_flight
            .insert(ctx, std::mem::take(&mut w.reads_queued));
        // raft-rs keys pending read-index requests by context across the
        // whole cluster (followers forward theirs to the leader, which drops
        // a duplicate), so the context carries this member's id.
        let mut context = self.member.id().to_be_bytes().to_vec();
        context.extend_from_slice(&ctx.to_be_bytes());
        self.member.read_index(context);
    }

    /// Processes Ready cycles until none is left, handing committed entries
    /// to the apply thread.
    fn run_cycles(&mut self, w: &mut Waiters) -> Result<(), String> {
        while let Some(cycle) = self.member.take_cycle() {
            self.status.ready_cycles.fetch_add(1, Ordering::Relaxed);
            // A leader's appends may go out before its own fsync (Raft
            // thesis 10.2.1); everything else waits for persistence.
            self.send(cycle.messages);
            if let Some(snapshot) = &cycle.snapshot {
                self.install_snapshot(snapshot)?;
            }
            let started = Instant::now();
            if !cycle.entries.is_empty() || cycle.hard_state.is_some() {
                self.log
                    .persist(&cycle.entries, cycle.hard_state.as_ref(), cycle.must_sync)
                    .map_err(|e| format!("raft log write failed: {e}"))?;
            }
            for rs in &cycle.read_states {
                let (member, ctx) = rs.request_ctx.split_at(8.min(rs.request_ctx.len()));
                if member != self.member.id().to_be_bytes() || ctx.len() != 8 {
                    tracing::warn!("read state with a foreign context ignored");
                    continue;
                }
                let ctx = u64::from_be_bytes(ctx.try_into().expect("8 bytes"));
                if let Some(waiters) = w.reads_in_flight.remove(&ctx) {
                    for reply in waiters {
                        let _ = reply.send(Ok(rs.index));
                    }
                }
            }
            let persisted_at = Instant::now();
            self.send(cycle.persisted_messages);
            self.queue_apply(cycle.committed_entries)?;
            let persisted = self.member.on_persisted();
            self.send(persisted.messages);
            self.queue_apply(persisted.committed_entries)?;
            if let Some(snapshot) = &cycle.snapshot {
                self.member.on_applied(snapshot.get_metadata().index);
            }
            tracing::trace!(
                entries = cycle.entries.len(),
                persist_us = (persisted_at - started).as_micros() as u64,
                "ready cycle"
            );
        }
        Ok(())
    }

    /// Queues committed entries for the apply thread.
    fn queue_apply(&mut self, entries: Vec<Entry>) -> Result<(), String> {
        if entries.is_empty() {
            return Ok(());
        }
        self.to_applier(ApplyTask::Entries(entries))
    }

    /// Replaces the state machine (on the apply thread, after everything
    /// queued before) and the log with a snapshot from the leader.
    fn install_snapshot(&mut self, snapshot: &raft::eraftpb::Snapshot) -> Result<(), String> {
        let (done, outcome) = std::sync::mpsc::sync_channel(1);
        self.to_applier(ApplyTask::Snapshot {
            snapshot: Box::new(snapshot.clone()),
            done,
        })?;
        outcome
            .recv()
            .map_err(|_| "the apply thread stopped during a snapshot".to_string())??;
        self.log
            .apply_snapshot(snapshot.get_metadata())
            .map_err(|e| format!("raft log snapshot install failed: {e}"))
    }

    /// Drops log entries before `compact_to`, which the store durably holds.
    fn compact_log(&mut self, compact_to: u64) -> Result<(), String> {
        let first_index =
            raft::Storage::first_index(&self.log).map_err(|e| format!("first log index: {e}"))?;
        if compact_to <= first_index {
            // A snapshot install already moved the log past it.
            return Ok(());
        }
        let term = raft::Storage::term(&self.log, compact_to - 1)
            .map_err(|e| format!("term of compaction point: {e}"))?;
        self.log
            .compact_to(compact_to, term)
            .map_err(|e| format!("raft log compaction failed: {e}"))?;
        tracing::info!(compact_to, "compacted raft log");
        Ok(())
    }

    fn send(&self, messages: Vec<raft::eraftpb::Message>) {
        if messages.is_empty() {
            return;
        }
        self.status.messages_sent.record(&messages);
        match &self.transport {
            Some(t) => t.send(messages),
            None => tracing::warn!(
                count = messages.len(),
                "raft messages dropped: no peer transport"
            ),
        }
    }

    fn publish_status(&self) {
        let s = &self.status;
        s.term.store(self.member.term(), Ordering::Relaxed);
        s.leader_id
            .store(self.member.leader_id().unwrap_or(0), Ordering::Relaxed);
        s.commit_index
            .store(self.member.commit_index(), Ordering::Relaxed);
        s.wal_fsyncs
            .store(self.log.fsync_count(), Ordering::Relaxed);
    }
}
