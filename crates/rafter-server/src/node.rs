//! The Raft loop: one thread that drives the member core
//! (`rafter_core::Node`) and does its I/O. Each turn it feeds the core every
//! queued request, message and due tick, then carries out the core's
//! actions in order: sends messages, writes the log (one fsync per Ready:
//! group commit), hands apply batches and snapshots to the apply thread
//! (`applier.rs`), answers requests, compacts the log. It decides nothing
//! about a request's life: the core does.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rafter_core::{Action, Granted, LogWrite, Node, RequestError, RequestId, Wait};
use rafter_proto::rafterpb::ClientTag;
use rafter_storage::{KvRequest, MemberStorage, RaftLog};
use tokio::sync::oneshot;

use crate::applier::{ApplyTask, ApplyThread, ProposalReply};
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
        reply: ProposalReply,
    },
    /// A mutation in a client session (exactly-once, definite outcome); the
    /// core answers it by `wait` at the latest, or with `Pending`.
    ProposeInSession {
        request: KvRequest,
        tag: ClientTag,
        wait: Wait,
        reply: ProposalReply,
    },
    /// Decide a session request's fate through the log (`Outcome`).
    DecideOutcome {
        session_id: u64,
        seq: u64,
        wait: Wait,
        reply: ProposalReply,
    },
    /// Client sessions the store holds (after a batch that changed it).
    SessionsOpen(u64),
    /// Local writes accepted here and durable in the queue.
    QueueLocalWrites(Vec<rafter_proto::rafterpb::LocalWrite>),
    /// The store applied this member's local writes up to this seq.
    LocalWritesApplied(u64),
    /// Answered once a linearizable read may read the local store.
    ReadIndex {
        reply: oneshot::Sender<Result<(), ApiError>>,
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
    /// The apply thread applied everything up to `applied`; the store is
    /// durable up to `durable`.
    Applied { applied: u64, durable: u64 },
    /// The apply thread installed the snapshot at this index.
    SnapshotInstalled(u64),
    /// Lease changes an applied batch made (sent before its `Applied`).
    LeaseChanges(Vec<rafter_core::lease::LeaseChange>),
    /// The store was replaced; these are its leases.
    LeasesReset(Vec<(i64, i64, i64)>),
    /// A keep-alive (answered on the leader only).
    LeaseRenew {
        id: i64,
        reply: oneshot::Sender<Result<Granted, ApiError>>,
    },
    /// A lease's remaining time (answered on the leader only).
    LeaseTimeToLive {
        id: i64,
        reply: oneshot::Sender<Result<Granted, ApiError>>,
    },
    /// Every lease id this member knows.
    LeaseIds { reply: oneshot::Sender<Vec<i64>> },
    /// A membership change (answered once applied).
    ChangeMembership {
        change: rafter_proto::rafterpb::MembershipChange,
        reply: ProposalReply,
    },
    /// A snapshot replaced the state machine: its membership records.
    MembershipReset(Vec<rafter_proto::rafterpb::MemberAttributes>),
    /// A peer told this member it was removed from the cluster.
    Removed,
    /// The apply thread stopped on a store failure: the member must stop.
    ApplyFailed(String),
    /// Stop after making applied state durable.
    Shutdown,
}

/// Live facts about the member, published by the Raft loop after each turn.
#[derive(Debug, Default)]
pub struct NodeStatus {
    /// The Raft loop runs (cleared when it ends, by return or panic).
    pub running: std::sync::atomic::AtomicBool,
    pub term: AtomicU64,
    pub leader_id: AtomicU64,
    pub commit_index: AtomicU64,
    pub applied_index: AtomicU64,
    pub wal_fsyncs: AtomicU64,
    pub entries_applied: AtomicU64,
    /// Store transactions that applied entries (entries per transaction:
    /// `entries_applied / apply_commits`).
    pub apply_commits: AtomicU64,
    pub proposals: AtomicU64,
    pub ready_cycles: AtomicU64,
    pub store_syncs: AtomicU64,
    pub store_sync_us: AtomicU64,
    /// Client requests waiting in the core for their entry or read.
    pub proposals_pending: AtomicU64,
    pub messages_sent: MessageCounts,
    pub metrics: crate::metrics::Metrics,
}

/// Where the answer to a request in the core goes.
enum Reply {
    Proposal(ProposalReply),
    Read(oneshot::Sender<Result<(), ApiError>>),
    Transfer(oneshot::Sender<Result<(), ApiError>>),
    Lease(oneshot::Sender<Result<Granted, ApiError>>),
}

impl Reply {
    fn fail(self, e: ApiError) {
        match self {
            Reply::Proposal(r) => {
                let _ = r.send(Err(e));
            }
            Reply::Read(r) | Reply::Transfer(r) => {
                let _ = r.send(Err(e));
            }
            Reply::Lease(r) => {
                let _ = r.send(Err(e));
            }
        }
    }
}

impl From<RequestError> for ApiError {
    fn from(e: RequestError) -> Self {
        match e {
            RequestError::NoLeader => ApiError::NoLeader,
            RequestError::NotLeader => ApiError::NotLeader,
            RequestError::Timeout => ApiError::Timeout,
            RequestError::Pending => ApiError::OutcomePending,
            RequestError::Membership(m) => ApiError::Membership(m),
        }
    }
}

/// Everything the loop owns.
pub struct RaftLoop {
    pub node: Node<MemberStorage>,
    pub log: RaftLog,
    pub status: Arc<NodeStatus>,
    pub tick_interval: Duration,
    /// Sends Raft messages to peers (`None` until the peer transport starts).
    pub transport: Option<Transport>,
    /// The apply thread's queue and handle.
    pub apply_tx: Sender<ApplyTask>,
    pub apply_thread: ApplyThread,
    /// Members removed from the cluster, whose peer messages are refused
    /// (shared with the peer service).
    pub removed_members: Arc<std::sync::RwLock<std::collections::HashSet<u64>>>,
    /// Set when this member learned it was removed: the loop stops and the
    /// process exits.
    pub removed: bool,
    /// How long a member that applied its own removal keeps running Raft
    /// before it stops: etcd's 10 heartbeat intervals, so its heartbeats
    /// carry the removal's commit to the others (a removed leader of two
    /// voters is the only one that knows the removal committed).
    pub removal_grace: Duration,
    /// When a member that applied its own removal stops.
    pub stop_at: Option<Instant>,
}

impl RaftLoop {
    /// Runs until asked to shut down (or every sender is gone). Returns an
    /// error when the disk fails: the member must stop rather than
    /// acknowledge anything it may not have persisted.
    /// Returns `Ok(true)` when it stopped because this member was removed
    /// from the cluster.
    pub fn run(mut self, rx: Receiver<NodeRequest>) -> Result<bool, String> {
        /// Clears `running` however the loop ends.
        struct Running<'a>(&'a std::sync::atomic::AtomicBool);
        impl Drop for Running<'_> {
            fn drop(&mut self) {
                self.0.store(false, Ordering::Release);
            }
        }
        let status = Arc::clone(&self.status);
        status.running.store(true, Ordering::Release);
        let _running = Running(&status.running);
        let mut replies: HashMap<RequestId, Reply> = HashMap::new();
        let mut next_request: RequestId = 1;
        self.node
            .campaign_if_sole_voter()
            .map_err(|e| e.to_string())?;
        let mut next_tick = Instant::now() + self.tick_interval;
        'turns: loop {
            let wait = next_tick.saturating_duration_since(Instant::now());
            let first = match rx.recv_timeout(wait) {
                Ok(req) => Some(req),
                Err(RecvTimeoutError::Timeout) => None,
                Err(RecvTimeoutError::Disconnected) => break,
            };
            // Every tick that fell due since the last turn is taken, so Raft's
            // timers follow the wall clock even when the loop woke late (at a
            // 100 us tick a busy machine would otherwise stretch timeouts).
            // Taken before the turn's requests: a lease grant the apply
            // thread reports then counts its TTL from the current time, not
            // from before a stall (which would revoke it early).
            let now = Instant::now();
            self.node
                .set_wall_clock_ms(crate::local_writes::wall_clock_ms());
            let mut ticks = 0;
            while now >= next_tick && ticks < MAX_CATCH_UP_TICKS {
                self.node.tick();
                next_tick += self.tick_interval;
                ticks += 1;
            }
            if next_tick <= now {
                next_tick = now + self.tick_interval;
            }
            for req in first
                .into_iter()
                .chain(rx.try_iter().take(MAX_REQUESTS_PER_TURN))
            {
                let id = next_request;
                next_request += 1;
                match req {
                    NodeRequest::Shutdown => break 'turns,
                    NodeRequest::ApplyFailed(why) => return Err(why),
                    NodeRequest::Propose { request, reply } => {
                        self.status.proposals.fetch_add(1, Ordering::Relaxed);
                        replies.insert(id, Reply::Proposal(reply));
                        self.node.propose(id, request);
                    }
                    NodeRequest::ProposeInSession {
                        request,
                        tag,
                        wait,
                        reply,
                    } => {
                        self.status.proposals.fetch_add(1, Ordering::Relaxed);
                        replies.insert(id, Reply::Proposal(reply));
                        self.node.propose_in_session(id, request, tag, wait);
                    }
                    NodeRequest::DecideOutcome {
                        session_id,
                        seq,
                        wait,
                        reply,
                    } => {
                        replies.insert(id, Reply::Proposal(reply));
                        self.node.decide_outcome(id, session_id, seq, wait);
                    }
                    NodeRequest::SessionsOpen(open) => self.node.on_sessions_open(open),
                    NodeRequest::QueueLocalWrites(writes) => self.node.queue_local_writes(writes),
                    NodeRequest::LocalWritesApplied(seq) => self.node.on_local_writes_applied(seq),
                    NodeRequest::ReadIndex { reply } => {
                        replies.insert(id, Reply::Read(reply));
                        self.node.read(id);
                    }
                    NodeRequest::TransferLeader { target, reply } => {
                        replies.insert(id, Reply::Transfer(reply));
                        self.node.transfer_leader(id, target);
                    }
                    NodeRequest::Step(msg) => {
                        self.status.metrics.message_received(&msg);
                        if let Err(e) = self.node.step(*msg) {
                            tracing::debug!("raft rejected a peer message: {e}");
                        }
                    }
                    NodeRequest::Unreachable(peer) => self.node.report_unreachable(peer),
                    NodeRequest::SnapshotStatus(peer, delivered) => {
                        self.node.report_snapshot(peer, delivered)
                    }
                    NodeRequest::Applied { applied, durable } => {
                        self.node.on_applied(applied, durable)
                    }
                    NodeRequest::SnapshotInstalled(index) => self.node.on_snapshot_installed(index),
                    NodeRequest::LeaseChanges(changes) => self.node.on_lease_changes(&changes),
                    NodeRequest::LeasesReset(leases) => self.node.reset_leases(&leases),
                    NodeRequest::LeaseRenew { id: lease, reply } => {
                        replies.insert(id, Reply::Lease(reply));
                        self.node.lease_renew(id, lease);
                    }
                    NodeRequest::LeaseTimeToLive { id: lease, reply } => {
                        replies.insert(id, Reply::Lease(reply));
                        self.node.lease_time_to_live(id, lease);
                    }
                    NodeRequest::LeaseIds { reply } => {
                        let _ = reply.send(self.node.lease_ids());
                    }
                    NodeRequest::ChangeMembership { change, reply } => {
                        replies.insert(id, Reply::Proposal(reply));
                        self.node.change_membership(id, change);
                    }
                    NodeRequest::MembershipReset(records) => self.node.reset_membership(records),
                    NodeRequest::Removed => {
                        tracing::error!(
                            "the member has been permanently removed from the cluster; stopping"
                        );
                        self.removed = true;
                        break 'turns;
                    }
                }
            }
            self.carry_out(&mut replies)?;
            if self.stop_at.is_some_and(|at| Instant::now() >= at) {
                self.removed = true;
            }
            if self.removed {
                break;
            }
        }
        for id in self.node.abandon_all() {
            if let Some(reply) = replies.remove(&id) {
                reply.fail(ApiError::Stopped);
            }
        }
        // Dropping the queue stops the apply thread, which makes the store
        // durable before it exits.
        let RaftLoop {
            apply_tx,
            apply_thread,
            removed,
            ..
        } = self;
        drop(apply_tx);
        apply_thread
            .join()
            .map_err(|_| "the apply thread panicked".to_string())??;
        Ok(removed)
    }

    /// Carries out the core's actions until it has none left.
    fn carry_out(&mut self, replies: &mut HashMap<RequestId, Reply>) -> Result<(), String> {
        loop {
            let actions = self.node.take_actions();
            if actions.is_empty() {
                return Ok(());
            }
            // Status (commit index, term) is current before any result it
            // covers can reach a client.
            self.publish_status();
            for action in actions {
                match action {
                    Action::Send(messages) => self.send(messages),
                    Action::Persist(write) => {
                        self.persist(&write)?;
                        self.node.on_persisted();
                    }
                    Action::Apply(batch) => {
                        let waiting = batch
                            .reply_to
                            .iter()
                            .flatten()
                            .filter_map(|id| match replies.remove(id) {
                                Some(Reply::Proposal(r)) => Some((*id, r)),
                                _ => None,
                            })
                            .collect();
                        self.to_applier(ApplyTask::Apply { batch, waiting })?;
                    }
                    Action::InstallSnapshot(snapshot) => {
                        // Before the store changes: a crash after the store
                        // was restored and before the log was cut to the
                        // snapshot is finished at the next start.
                        self.log
                            .record_pending_snapshot(snapshot.get_metadata())
                            .map_err(|e| format!("raft log write failed: {e}"))?;
                        self.to_applier(ApplyTask::Snapshot(snapshot))?
                    }
                    Action::Respond(id, outcome) => {
                        let Some(reply) = replies.remove(&id) else {
                            continue;
                        };
                        match (reply, outcome) {
                            (reply, Err(e)) => {
                                if matches!(reply, Reply::Proposal(_)) {
                                    self.status.metrics.proposals_failed.inc();
                                }
                                reply.fail(e.into())
                            }
                            (Reply::Read(r), Ok(Granted::Read { .. }))
                            | (Reply::Transfer(r), Ok(Granted::LeaderTransferred)) => {
                                let _ = r.send(Ok(()));
                            }
                            (Reply::Lease(r), Ok(granted)) => {
                                let _ = r.send(Ok(granted));
                            }
                            (reply, Ok(granted)) => {
                                tracing::error!(?granted, "grant of the wrong kind");
                                reply.fail(ApiError::Stopped);
                            }
                        }
                    }
                    Action::CompactLog { compact_to } => self.compact_log(compact_to)?,
                    Action::MembershipChanged(records) => self.membership_changed(&records),
                }
            }
        }
    }

    /// Hands work to the apply thread; it is gone only after a store
    /// failure, which it reports itself.
    fn to_applier(&self, task: ApplyTask) -> Result<(), String> {
        self.apply_tx
            .send(task)
            .map_err(|_| "the apply thread stopped".to_string())
    }

    /// One log write (one fsync when Raft needs it).
    fn persist(&self, write: &LogWrite) -> Result<(), String> {
        self.status.ready_cycles.fetch_add(1, Ordering::Relaxed);
        if let Some(meta) = &write.snapshot {
            self.log
                .apply_snapshot(meta)
                .map_err(|e| format!("raft log snapshot install failed: {e}"))?;
        }
        if !write.entries.is_empty() || write.hard_state.is_some() {
            let started = std::time::Instant::now();
            self.log
                .persist(&write.entries, write.hard_state.as_ref(), write.must_sync)
                .map_err(|e| format!("raft log write failed: {e}"))?;
            if write.must_sync {
                self.status
                    .metrics
                    .wal_fsync_seconds
                    .observe(started.elapsed().as_secs_f64());
            }
        }
        Ok(())
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
        self.status.messages_sent.record(&messages);
        self.status.metrics.messages_sent(&messages);
        match &self.transport {
            Some(t) => t.send(messages),
            None => tracing::warn!(
                count = messages.len(),
                "raft messages dropped: no peer transport"
            ),
        }
    }

    /// Connects to new members, drops removed ones, and stops when this
    /// member itself was removed (etcd's removed member exits).
    fn membership_changed(&mut self, records: &[rafter_proto::rafterpb::MemberAttributes]) {
        let me = self.node.id();
        {
            let mut removed = self.removed_members.write().expect("removed lock");
            removed.extend(records.iter().filter(|r| r.removed).map(|r| r.member_id));
        }
        let peers: Vec<(u64, String)> = records
            .iter()
            .filter(|r| rafter_core::membership::is_member(r) && r.member_id != me)
            .map(|r| (r.member_id, r.peer_urls[0].clone()))
            .collect();
        if let Some(t) = &mut self.transport {
            t.set_peers(&peers);
        }
        if self.stop_at.is_none() && records.iter().any(|r| r.member_id == me && r.removed) {
            tracing::warn!(
                "this member was removed from the cluster; it stops serving in {:?}",
                self.removal_grace
            );
            self.stop_at = Some(Instant::now() + self.removal_grace);
        }
    }

    fn publish_status(&self) {
        let s = &self.status;
        s.term.store(self.node.term(), Ordering::Relaxed);
        let leader = self.node.leader_id().unwrap_or(0);
        let before = s.leader_id.swap(leader, Ordering::Relaxed);
        s.metrics.leader_changed(before, leader);
        s.proposals_pending
            .store(self.node.waiting_requests() as u64, Ordering::Relaxed);
        s.commit_index
            .store(self.node.commit_index(), Ordering::Relaxed);
        s.wal_fsyncs
            .store(self.log.fsync_count(), Ordering::Relaxed);
    }
}
