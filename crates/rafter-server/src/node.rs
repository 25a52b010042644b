//! The Raft loop: one thread that owns the member core, the Raft log and the
//! write side of the MVCC store. Each turn it drains every queued request,
//! proposes them all, persists the resulting Ready with one fsync (group
//! commit), applies every committed entry in one store transaction, and
//! answers the waiting clients. Reads never come here except for the
//! read-index handshake, which is coalesced: one round per turn.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::sync::Arc;
use std::time::{Duration, Instant};

use raft::eraftpb::Entry;
use rafter_core::{decode_command, encode_command, Member, ProposeError};
use rafter_proto::rafterpb::RaftCommand;
use rafter_storage::mvcc::{ApplyEntry, KvResponse};
use rafter_storage::{KvRequest, MemberStorage, MvccStore, RaftLog};
use tokio::sync::{oneshot, watch};

use crate::error::ApiError;
use crate::message_counts::MessageCounts;
use crate::transport::Transport;

/// How long applied state may stay only in the Raft log before the store
/// commits durably (the log always holds what the store has not synced).
const STORE_SYNC_INTERVAL: Duration = Duration::from_millis(500);
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
    pub messages_sent: MessageCounts,
}

/// Everything the loop owns.
pub struct RaftLoop {
    pub member: Member<MemberStorage>,
    pub log: RaftLog,
    pub store: Arc<MvccStore>,
    pub status: Arc<NodeStatus>,
    pub applied_tx: watch::Sender<u64>,
    pub tick_interval: Duration,
    pub next_command_id: u64,
    /// Sends Raft messages to peers (`None` until the peer transport starts).
    pub transport: Option<Transport>,
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

struct Waiters {
    proposals: HashMap<u64, oneshot::Sender<Result<KvResponse, ApiError>>>,
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
        self.proposals.retain(|_, r| !r.is_closed());
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
            proposals: HashMap::new(),
            reads_queued: Vec::new(),
            reads_in_flight: HashMap::new(),
            next_read_ctx: 1,
            transfers: Vec::new(),
        };
        if self.member.is_sole_voter() && !self.member.is_leader() {
            self.member.campaign().map_err(|e| e.to_string())?;
        }
        let mut next_tick = Instant::now() + self.tick_interval;
        let mut last_store_sync = Instant::now();
        let mut store_dirty = false;
        loop {
            let wait = next_tick.saturating_duration_since(Instant::now());
            match rx.recv_timeout(wait) {
                Ok(NodeRequest::Shutdown) => break,
                Ok(req) => {
                    self.accept(req, &mut w);
                    for req in rx.try_iter().take(MAX_REQUESTS_PER_TURN) {
                        if matches!(req, NodeRequest::Shutdown) {
                            return self.store.sync().map_err(|e| e.to_string());
                        }
                        self.accept(req, &mut w);
                    }
                }
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => break,
            }
            if Instant::now() >= next_tick {
                w.prune(self.member.leader_id());
                self.member.tick();
                next_tick += self.tick_interval;
                if next_tick < Instant::now() {
                    next_tick = Instant::now() + self.tick_interval;
                }
            }
            self.start_read_round(&mut w);
            store_dirty |= self.run_cycles(&mut w)?;
            if store_dirty && last_store_sync.elapsed() >= STORE_SYNC_INTERVAL {
                self.store
                    .sync()
                    .map_err(|e| format!("state machine sync failed: {e}"))?;
                store_dirty = false;
                last_store_sync = Instant::now();
            }
            self.publish_status();
        }
        self.store.sync().map_err(|e| e.to_string())?;
        Ok(())
    }

    fn accept(&mut self, req: NodeRequest, w: &mut Waiters) {
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
                        w.proposals.insert(id, reply);
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
            NodeRequest::Shutdown => unreachable!("handled by the loop"),
        }
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

    /// Processes Ready cycles until none is left. Returns whether the store
    /// applied anything (not yet synced: the store syncs on an interval, and
    /// until it does the Raft log holds those entries for replay).
    fn run_cycles(&mut self, w: &mut Waiters) -> Result<bool, String> {
        let mut applied_any = false;
        while let Some(cycle) = self.member.take_cycle() {
            self.status.ready_cycles.fetch_add(1, Ordering::Relaxed);
            // A leader's appends may go out before its own fsync (Raft
            // thesis 10.2.1); everything else waits for persistence.
            self.send(cycle.messages);
            if let Some(snapshot) = &cycle.snapshot {
                self.install_snapshot(snapshot)?;
                applied_any = true;
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
            applied_any |= self.apply(&cycle.committed_entries, w)?;
            let persisted = self.member.on_persisted();
            self.send(persisted.messages);
            applied_any |= self.apply(&persisted.committed_entries, w)?;
            if let Some(snapshot) = &cycle.snapshot {
                self.member.on_applied(snapshot.get_metadata().index);
            }
            tracing::trace!(
                entries = cycle.entries.len(),
                persist_us = (persisted_at - started).as_micros() as u64,
                apply_us = persisted_at.elapsed().as_micros() as u64,
                "ready cycle"
            );
        }
        Ok(applied_any)
    }

    /// Applies committed entries in one store transaction and answers their
    /// proposers.
    fn apply(&mut self, entries: &[Entry], w: &mut Waiters) -> Result<bool, String> {
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
            if let Some(reply) = w.proposals.remove(&cmd.id) {
                let _ = reply.send(result.map_err(ApiError::from));
            }
        }
        self.member.on_applied(last.index);
        self.status
            .entries_applied
            .fetch_add(entries.len() as u64, Ordering::Relaxed);
        self.status
            .applied_index
            .store(last.index, Ordering::Release);
        self.applied_tx.send_replace(last.index);
        self.maybe_compact_log(last.index)?;
        Ok(true)
    }

    /// Replaces the state machine and log with a snapshot from the leader.
    fn install_snapshot(&mut self, snapshot: &raft::eraftpb::Snapshot) -> Result<(), String> {
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
        self.log
            .apply_snapshot(meta)
            .map_err(|e| format!("raft log snapshot install failed: {e}"))?;
        self.compacted_index = meta.index;
        self.status
            .applied_index
            .store(meta.index, Ordering::Release);
        self.applied_tx.send_replace(meta.index);
        Ok(())
    }

    /// Drops log entries the state machine durably holds, keeping a tail for
    /// followers that are only a little behind.
    fn maybe_compact_log(&mut self, applied: u64) -> Result<(), String> {
        if applied < self.compacted_index + self.snapshot_count {
            return Ok(());
        }
        let keep = catch_up_entries(self.snapshot_count);
        let compact_to = applied.saturating_sub(keep);
        if compact_to <= self.compacted_index + 1 {
            return Ok(());
        }
        // Entries may leave the log only once the store is durable past them.
        self.store
            .sync()
            .map_err(|e| format!("state machine sync failed: {e}"))?;
        let term = raft::Storage::term(&self.log, compact_to - 1)
            .map_err(|e| format!("term of compaction point: {e}"))?;
        self.log
            .compact_to(compact_to, term)
            .map_err(|e| format!("raft log compaction failed: {e}"))?;
        tracing::info!(compact_to, applied, "compacted raft log");
        self.compacted_index = compact_to - 1;
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
