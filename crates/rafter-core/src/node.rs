//! The deterministic member: it owns a request's whole life.
//!
//! Inputs are client requests (each with a [`RequestId`]), peer messages,
//! ticks, "the log write is durable", "applied up to here" and "snapshot
//! installed". Outputs are [`Action`]s in the order the shell must carry
//! them out: messages to send, log writes, batches to apply (each entry
//! tagged with the request its result answers), snapshots to install,
//! responses, log compactions. Every decision of a request's life is made
//! here — what to propose, which entry answers which proposal, when a read
//! may be answered, in what order snapshots and entries reach the state
//! machine, when a waiter is abandoned, when to compact — and no file,
//! socket, thread, clock or ambient randomness is touched, so the server's
//! Raft loop and the simulator drive this same code.
//!
//! The shell's contract: feed inputs, then call [`Node::take_actions`] and
//! carry the actions out in order. `Persist` must be durable before
//! [`Node::on_persisted`]; `Apply` and `InstallSnapshot` go to the state
//! machine in order (possibly on another thread), each reported back with
//! [`Node::on_applied`] / [`Node::on_snapshot_installed`].

use std::collections::BTreeMap;

use raft::eraftpb::{Entry, HardState, Message, Snapshot, SnapshotMetadata};
use raft::Storage;
use rafter_proto::rafterpb::{
    raft_command::Request as KvRequest, ClientTag, ClusterClock, HlcStamp, LocalWrite,
    LocalWriteBatch, RaftCommand, SessionCancel,
};

use crate::command::{encode_command, peek_command_id};
use crate::compaction::Compaction;
use crate::forwarded::Forwarded;
use crate::lease::{Lessor, LessorConfig};
use crate::local_writes::LocalWrites;
use crate::member::{Member, MemberConfig};
use crate::proposals::{AtDeadline, Proposals};
use crate::reads::{ReadWaiter, Reads};
use crate::state_machine::{ApplyBatch, RequestId};

/// Static configuration of the deterministic member.
#[derive(Debug, Clone)]
pub struct NodeConfig {
    pub member: MemberConfig,
    /// Compact the log once this many entries are durable in the state
    /// machine beyond the last compaction (etcd's `--snapshot-count`).
    pub snapshot_count: u64,
    /// Ticks after which a waiting request is abandoned with a timeout.
    pub request_timeout_ticks: u64,
    /// First command id this member uses; the shell makes ids unique across
    /// members and restarts (member id and start time in the high bits).
    pub first_command_id: u64,
    /// Every log entry at or below this index is compacted away.
    pub compacted_index: u64,
    pub lessor: LessorConfig,
    /// The leases the state machine holds at start: (id, TTL, checkpointed
    /// remaining TTL or 0).
    pub leases: Vec<(i64, i64, i64)>,
    /// Length of a tick (what the cluster clock counts in).
    pub tick_us: u64,
    /// A leader proposes a cluster clock entry this often while sessions
    /// are open.
    pub cluster_clock_ms: u64,
    /// Client sessions the state machine holds at start.
    pub sessions_open: u64,
    /// This member's local writes that are durable in its queue and not
    /// applied yet, oldest first.
    pub local_writes: Vec<LocalWrite>,
    /// The membership the state machine holds at start (removed members
    /// included).
    pub members: Vec<rafter_proto::rafterpb::MemberAttributes>,
}

/// How long a proposal may wait for its outcome.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wait {
    /// The member's request timeout.
    Default,
    /// As long as it takes: a lost proposal is proposed again (only for
    /// requests that are idempotent: tagged with a session, or a cancel).
    Blocking,
    /// At most this many ticks.
    Ticks(u64),
}

/// What a request that is not a proposal was granted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Granted {
    /// A linearizable read may now read the local state machine: it has
    /// applied up to `read_index`.
    Read { read_index: u64 },
    /// The requested member is now the leader.
    LeaderTransferred,
    /// A keep-alive renewed the lease for `ttl_s` (`None`: no such lease).
    LeaseRenewed { ttl_s: Option<i64> },
    /// A lease's granted and remaining TTL (`None`: no such lease).
    LeaseTimeToLive { ttl: Option<(i64, i64)> },
}

/// Why the core refused or gave up on a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum RequestError {
    #[error("no leader")]
    NoLeader,
    #[error("not the leader")]
    NotLeader,
    #[error("request timed out")]
    Timeout,
    /// A session request's timeout passed and the cancel that would decide
    /// its fate could not be ordered in time: its outcome is not known yet.
    #[error("request outcome pending")]
    Pending,
    /// A membership change broke one of etcd's rules.
    #[error("membership: {0}")]
    Membership(#[from] crate::membership::MembershipError),
}

/// A log write: a snapshot's truncation point (if any), entries and hard
/// state, made durable together.
#[derive(Debug, Default)]
pub struct LogWrite {
    pub snapshot: Option<SnapshotMetadata>,
    pub entries: Vec<Entry>,
    pub hard_state: Option<HardState>,
    /// raft-rs's verdict: false when only volatile fields changed.
    pub must_sync: bool,
}

impl LogWrite {
    fn is_empty(&self) -> bool {
        self.snapshot.is_none() && self.entries.is_empty() && self.hard_state.is_none()
    }

    /// True when the write must reach the disk before Raft may go on.
    pub fn needs_fsync(&self) -> bool {
        self.must_sync || !self.entries.is_empty() || self.snapshot.is_some()
    }
}

/// One thing the shell must do, in order.
#[derive(Debug)]
pub enum Action {
    Send(Vec<Message>),
    /// Write to the log; report [`Node::on_persisted`] once durable.
    Persist(LogWrite),
    /// Apply after everything handed before; report [`Node::on_applied`].
    Apply(ApplyBatch),
    /// Replace the state machine after everything handed before; report
    /// [`Node::on_snapshot_installed`].
    InstallSnapshot(Box<Snapshot>),
    /// Answer a request (proposals are answered by their apply results).
    Respond(RequestId, Result<Granted, RequestError>),
    /// Drop log entries before `compact_to`: the state machine holds them
    /// durably.
    CompactLog {
        compact_to: u64,
    },
    /// The membership changed (a change was committed, or a snapshot
    /// replaced it): every record, removed members included. The shell
    /// connects to new members, forgets removed ones, and stops if this
    /// member was removed.
    MembershipChanged(Vec<rafter_proto::rafterpb::MemberAttributes>),
}

/// Where the current Ready cycle stands.
enum Stage {
    /// No cycle in flight: the next one may be taken.
    Idle,
    /// The cycle's snapshot is being installed; the rest waits.
    AwaitSnapshot {
        index: u64,
        write: LogWrite,
        persisted_messages: Vec<Message>,
    },
    /// The cycle's log write is being made durable.
    AwaitPersist {
        persisted_messages: Vec<Message>,
        snapshot_index: Option<u64>,
    },
}

/// An input that reached the core while a Ready cycle was in flight.
/// raft-rs must not be stepped between taking a Ready and advancing it (a
/// follower's replies would escape before its log write is durable), so
/// such inputs wait until the cycle finishes.
enum Deferred {
    Tick,
    Step(Box<Message>),
    Propose(RequestId, Box<KvRequest>, Option<ClientTag>, Wait),
    Read(RequestId),
    Transfer(RequestId, u64),
    ChangeMembership(RequestId, Box<rafter_proto::rafterpb::MembershipChange>),
    Unreachable(u64),
    SnapshotStatus(u64, bool),
    /// A proposal the core makes itself (a lease checkpoint).
    Internal(Box<KvRequest>),
    /// Applied lease changes wait behind the ticks deferred before them,
    /// so a grant's deadline counts from the lessor's current time, not
    /// from a clock that lags while the core is busy (which would revoke
    /// the lease early by the lag).
    LeaseChanges(Vec<crate::lease::LeaseChange>),
}

/// A leadership transfer waiting for its target to win.
struct Transfer {
    req: RequestId,
    target: u64,
    deadline_tick: u64,
}

/// The deterministic member.
pub struct Node<S: Storage> {
    member: Member<S>,
    proposals: Proposals,
    reads: Reads,
    transfers: Vec<Transfer>,
    compaction: Compaction,
    stage: Stage,
    actions: Vec<Action>,
    now_tick: u64,
    next_expiry_tick: u64,
    request_timeout_ticks: u64,
    next_command_id: u64,
    /// The state machine has applied up to here (as reported).
    applied_index: u64,
    /// Every entry up to here was handed to the state machine.
    handed_index: u64,
    /// `fault-snapshot-late`: a snapshot held back until entries that
    /// follow it were handed to apply.
    late_snapshot: Option<Box<Snapshot>>,
    deferred: Vec<Deferred>,
    forwarded: Forwarded,
    lessor: Lessor,
    /// Leadership as the lessor last saw it.
    leading: bool,
    /// Keep-alives wait until this leader applied up to here (its log when
    /// it took over): a revoke proposed in an earlier term may still be in
    /// it, and renewing a lease whose revoke then applies would tell the
    /// client it lives when it is gone.
    lease_ready_index: u64,
    /// Keep-alives of leases that had a checkpoint, answered once the
    /// checkpoint is cleared through the log: lease id → (request, TTL,
    /// deadline tick).
    renewals_clearing: BTreeMap<i64, Vec<(RequestId, i64, u64)>>,
    tick_us: u64,
    cluster_clock_ticks: u64,
    sessions_open: u64,
    /// While leading: the tick the cluster clock last counted to.
    clock_from_tick: Option<u64>,
    /// Ticks after which a blocking proposal that got no answer is proposed
    /// again (it may have been lost with a leader).
    retry_ticks: u64,
    /// Local writes on their way into the log.
    local_writes: LocalWrites,
    /// Stamps client mutations for last-writer-wins conflict policies.
    hlc: crate::hlc::Hlc,
    /// The member's wall clock as the shell last told it (ms).
    wall_ms: u64,
    /// The membership as of the entries handed to the state machine.
    membership: crate::membership::Membership,
}

impl<S: Storage> Node<S> {
    pub fn new(cfg: &NodeConfig, storage: S, logger: &slog::Logger) -> raft::Result<Self> {
        let member = Member::new(&cfg.member, storage, logger)?;
        assert!(
            cfg.request_timeout_ticks > 0,
            "request timeout must be positive"
        );
        Ok(Node {
            member,
            proposals: Proposals::default(),
            reads: Reads::default(),
            transfers: Vec::new(),
            compaction: Compaction::new(cfg.snapshot_count, cfg.compacted_index),
            stage: Stage::Idle,
            actions: Vec::new(),
            now_tick: 0,
            next_expiry_tick: 0,
            request_timeout_ticks: cfg.request_timeout_ticks,
            next_command_id: cfg.first_command_id,
            applied_index: cfg.member.applied_index,
            handed_index: cfg.member.applied_index,
            late_snapshot: None,
            deferred: Vec::new(),
            forwarded: Forwarded::default(),
            lessor: {
                let mut lessor = Lessor::new(cfg.lessor);
                lessor.reset(&cfg.leases);
                lessor
            },
            leading: false,
            lease_ready_index: 0,
            renewals_clearing: BTreeMap::new(),
            tick_us: cfg.tick_us.max(1),
            cluster_clock_ticks: (cfg.cluster_clock_ms * 1000 / cfg.tick_us.max(1)).max(1),
            sessions_open: cfg.sessions_open,
            clock_from_tick: None,
            retry_ticks: 2 * cfg.member.election_tick.max(1) as u64,
            local_writes: {
                let mut q = LocalWrites::default();
                q.push(cfg.local_writes.iter().cloned());
                q
            },
            hlc: crate::hlc::Hlc::default(),
            wall_ms: 0,
            membership: crate::membership::Membership::new(cfg.members.iter().cloned()),
        })
    }

    /// The wall clock (ms since the epoch; the simulator's own time there),
    /// which stamps the mutations this member proposes.
    pub fn set_wall_clock_ms(&mut self, wall_ms: u64) {
        self.wall_ms = wall_ms;
    }

    /// A keep-alive. Only the leader keeps lease time; elsewhere the answer
    /// is `NotLeader` and the shell forwards the keep-alive to the leader.
    pub fn lease_renew(&mut self, req: RequestId, id: i64) {
        self.follow_leadership();
        if !self.lessor.is_primary() {
            if crate::fault::active(crate::fault::Fault::LeaseRenewAnywhere) {
                // Test-only bug: a follower answers from its mirror
                // without telling the leader.
                let ttl_s = self.lessor.time_to_live(id).map(|(ttl, _)| ttl);
                self.respond(req, Ok(Granted::LeaseRenewed { ttl_s }));
                return;
            }
            self.respond(req, Err(RequestError::NotLeader));
            return;
        }
        if self.applied_index < self.lease_ready_index {
            self.respond(req, Err(RequestError::NoLeader));
            return;
        }
        let renewed = self.lessor.renew(id);
        if let Some((ttl, true)) = renewed {
            // The lease had a checkpointed remainder: a next leader would
            // start from it. As etcd, answer only once the checkpoint is
            // cleared through the log.
            let deadline = self.deadline();
            let waiting = self.renewals_clearing.entry(id).or_default();
            if waiting.is_empty() {
                self.propose_internal(KvRequest::LeaseCheckpoint(
                    rafter_proto::etcdserverpb::LeaseCheckpointRequest {
                        checkpoints: vec![rafter_proto::etcdserverpb::LeaseCheckpoint {
                            id,
                            remaining_ttl: 0,
                        }],
                    },
                ));
            }
            self.renewals_clearing
                .entry(id)
                .or_default()
                .push((req, ttl, deadline));
            return;
        }
        let ttl_s = renewed.map(|(ttl, _)| ttl);
        self.respond(req, Ok(Granted::LeaseRenewed { ttl_s }));
    }

    /// A lease's remaining time, as only the leader knows it.
    pub fn lease_time_to_live(&mut self, req: RequestId, id: i64) {
        self.follow_leadership();
        if !self.lessor.is_primary() {
            self.respond(req, Err(RequestError::NotLeader));
            return;
        }
        let ttl = self.lessor.time_to_live(id);
        self.respond(req, Ok(Granted::LeaseTimeToLive { ttl }));
    }

    /// Every lease id this member knows (applied leases).
    pub fn lease_ids(&self) -> Vec<i64> {
        self.lessor.ids()
    }

    /// Lease grants, revokes and checkpoints the state machine applied.
    pub fn on_lease_changes(&mut self, changes: &[crate::lease::LeaseChange]) {
        if self.busy() {
            self.deferred.push(Deferred::LeaseChanges(changes.to_vec()));
            return;
        }
        self.lessor.on_changes(changes);
        for change in changes {
            let (id, renewed) = match *change {
                crate::lease::LeaseChange::Checkpointed { id, remaining_s: 0 } => (id, true),
                crate::lease::LeaseChange::Revoked { id } => (id, false),
                _ => continue,
            };
            for (req, ttl, _) in self.renewals_clearing.remove(&id).unwrap_or_default() {
                let ttl_s = renewed.then_some(ttl);
                self.respond(req, Ok(Granted::LeaseRenewed { ttl_s }));
            }
        }
    }

    /// The state machine was replaced (snapshot): its leases, as listed.
    pub fn reset_leases(&mut self, leases: &[(i64, i64, i64)]) {
        self.lessor.reset(leases);
    }

    /// Promotes or demotes the lessor when leadership changed.
    fn follow_leadership(&mut self) {
        let leading = self.member.is_leader();
        if leading != self.leading {
            self.leading = leading;
            self.clock_from_tick = leading.then_some(self.now_tick);
            if leading {
                self.lease_ready_index = self.member.last_index();
                self.lessor.promote();
            } else {
                self.lessor.demote();
            }
        }
    }

    /// The lessor's tick: proposes revokes of expired leases and
    /// checkpoints of remaining TTLs. Nobody waits for these proposals; a
    /// lost revoke is proposed again after the lessor's retry interval.
    fn lease_tick(&mut self) {
        self.follow_leadership();
        let (revoke, checkpoints) = self.lessor.tick();
        for id in revoke {
            self.propose_internal(KvRequest::LeaseRevoke(
                rafter_proto::etcdserverpb::LeaseRevokeRequest { id },
            ));
        }
        if !checkpoints.is_empty() {
            let checkpoints = checkpoints
                .into_iter()
                .map(
                    |(id, remaining_ttl)| rafter_proto::etcdserverpb::LeaseCheckpoint {
                        id,
                        remaining_ttl,
                    },
                )
                .collect();
            self.propose_internal(KvRequest::LeaseCheckpoint(
                rafter_proto::etcdserverpb::LeaseCheckpointRequest { checkpoints },
            ));
        }
    }

    /// How many client sessions the state machine holds (after an apply
    /// that changed it, or a snapshot).
    pub fn on_sessions_open(&mut self, open: u64) {
        self.sessions_open = open;
    }

    /// The leader's share of cluster time: while sessions are open, its
    /// elapsed ticks go into the log every `cluster_clock_ms`.
    fn cluster_clock_tick(&mut self) {
        let Some(from) = self.clock_from_tick else {
            return;
        };
        let elapsed_ticks = self.now_tick - from;
        if self.sessions_open == 0 {
            // Idle time is nobody's: sessions opened later start from now.
            self.clock_from_tick = Some(self.now_tick);
            return;
        }
        if elapsed_ticks >= self.cluster_clock_ticks {
            self.clock_from_tick = Some(self.now_tick);
            self.propose_internal(KvRequest::ClusterClock(ClusterClock {
                // Rounded down: cluster time never runs ahead.
                elapsed_ms: elapsed_ticks * self.tick_us / 1000,
            }));
        }
    }

    /// Local writes this member accepted (durable in its queue), to be
    /// ordered through the log.
    pub fn queue_local_writes(&mut self, writes: Vec<LocalWrite>) {
        self.local_writes.push(writes);
        self.propose_local_writes();
    }

    /// The state machine applied this member's local writes up to `seq`.
    pub fn on_local_writes_applied(&mut self, seq: u64) {
        self.local_writes.applied_through(seq);
        self.propose_local_writes();
    }

    /// Local writes not applied yet.
    pub fn local_writes_queued(&self) -> usize {
        self.local_writes.len()
    }

    /// Proposes the oldest queued local writes when a leader is known and
    /// no round is in flight (or the last one had time to apply).
    fn propose_local_writes(&mut self) {
        if self.local_writes.is_empty() || self.member.leader_id().is_none() {
            return;
        }
        let writes = self.local_writes.round(self.now_tick, self.retry_ticks);
        if !writes.is_empty() {
            self.propose_internal(KvRequest::LocalWrites(LocalWriteBatch { writes }));
        }
    }

    fn propose_internal(&mut self, request: KvRequest) {
        if self.busy() {
            self.deferred.push(Deferred::Internal(Box::new(request)));
            return;
        }
        let id = self.next_command_id;
        self.next_command_id += 1;
        let cmd = RaftCommand {
            id,
            request: Some(request),
            client: None,
            stamp: None,
        };
        // A refused proposal (leadership just lost) is retried by the lessor.
        let _ = self.member.propose(encode_command(&cmd));
    }

    pub fn id(&self) -> u64 {
        self.member.id()
    }

    pub fn term(&self) -> u64 {
        self.member.term()
    }

    pub fn leader_id(&self) -> Option<u64> {
        self.member.leader_id()
    }

    pub fn is_leader(&self) -> bool {
        self.member.is_leader()
    }

    pub fn commit_index(&self) -> u64 {
        self.member.commit_index()
    }

    pub fn last_index(&self) -> u64 {
        self.member.last_index()
    }

    /// The applied index the state machine last reported.
    pub fn applied_index(&self) -> u64 {
        self.applied_index
    }

    /// Requests waiting in the core (proposals, reads, transfers).
    pub fn waiting_requests(&self) -> usize {
        self.proposals.len() + self.reads.len() + self.transfers.len()
    }

    /// A sole voter elects itself at once instead of waiting out a timeout.
    pub fn campaign_if_sole_voter(&mut self) -> raft::Result<()> {
        if self.member.is_sole_voter() && !self.member.is_leader() {
            self.member.campaign()?;
        }
        Ok(())
    }

    fn deadline(&self) -> u64 {
        self.now_tick + self.request_timeout_ticks
    }

    fn respond(&mut self, req: RequestId, outcome: Result<Granted, RequestError>) {
        self.actions.push(Action::Respond(req, outcome));
    }

    /// A client mutation: proposed now; answered when its entry is applied
    /// (the [`ApplyBatch`] names it), or with an error.
    pub fn propose(&mut self, req: RequestId, request: KvRequest) {
        self.propose_with(req, request, None, Wait::Default);
    }

    /// A mutation made in a client session: applied at most once, and its
    /// outcome is definite. At its deadline the core orders a cancel of it
    /// and answers with the cancel's result (the original answer if the
    /// request was applied first, `Cancelled` if not), or `Pending` when not
    /// even the cancel could be ordered in time. Blocking requests are
    /// proposed again until one copy is applied.
    pub fn propose_in_session(
        &mut self,
        req: RequestId,
        request: KvRequest,
        tag: ClientTag,
        wait: Wait,
    ) {
        self.propose_with(req, request, Some(tag), wait);
    }

    /// Orders a cancel of (session, seq): answered with what it decided.
    /// With `Wait::Blocking` it is proposed again until ordered.
    pub fn decide_outcome(&mut self, req: RequestId, session_id: u64, seq: u64, wait: Wait) {
        let cancel = KvRequest::SessionCancel(SessionCancel { session_id, seq });
        self.propose_with(req, cancel, None, wait);
    }

    fn propose_with(
        &mut self,
        req: RequestId,
        request: KvRequest,
        client: Option<ClientTag>,
        wait: Wait,
    ) {
        if self.busy() {
            self.deferred
                .push(Deferred::Propose(req, Box::new(request), client, wait));
            return;
        }
        let blocking = wait == Wait::Blocking;
        debug_assert!(
            !blocking || client.is_some() || matches!(request, KvRequest::SessionCancel(_)),
            "only idempotent requests may be proposed again"
        );
        let (deadline, at_deadline) = match (wait, client) {
            (Wait::Blocking, _) => (
                self.now_tick + self.retry_ticks,
                AtDeadline::Retry {
                    request: Box::new(request.clone()),
                    client,
                },
            ),
            (Wait::Default, None) => (self.deadline(), AtDeadline::TimeOut),
            (Wait::Ticks(t), None) => (self.now_tick + t.max(1), AtDeadline::TimeOut),
            (wait, Some(tag)) => {
                let ticks = match wait {
                    Wait::Ticks(t) => t.max(1),
                    _ => self.request_timeout_ticks,
                };
                let cancel = AtDeadline::Cancel {
                    session_id: tag.session_id,
                    seq: tag.seq,
                    grace_ticks: ticks.min(self.request_timeout_ticks),
                };
                (self.now_tick + ticks, cancel)
            }
        };
        if self.member.leader_id().is_none() {
            if blocking {
                // Nothing to propose to yet: wait for a leader, then retry.
                let id = self.take_command_id();
                self.proposals.insert(id, req, deadline, at_deadline, None);
            } else {
                self.respond(req, Err(RequestError::NoLeader));
            }
            return;
        }
        match self.append_waiting(req, request, client, deadline, at_deadline) {
            Ok(()) => {}
            Err((id, at_deadline)) if blocking => {
                self.proposals.insert(id, req, deadline, at_deadline, None)
            }
            Err(_) => self.respond(req, Err(RequestError::NoLeader)),
        }
    }

    /// Proposes `request` under a new command id and makes `req` wait for
    /// its entry. If raft-rs refuses it, returns the id and what the
    /// deadline would have meant.
    fn append_waiting(
        &mut self,
        req: RequestId,
        request: KvRequest,
        client: Option<ClientTag>,
        deadline: u64,
        at_deadline: AtDeadline,
    ) -> Result<(), (u64, AtDeadline)> {
        let id = self.take_command_id();
        let stamp = match request {
            KvRequest::Put(_) | KvRequest::DeleteRange(_) | KvRequest::Txn(_) => {
                let s = self.hlc.stamp(self.wall_ms);
                Some(HlcStamp {
                    physical_ms: s.physical_ms,
                    logical: s.logical,
                    member_id: self.member.id(),
                })
            }
            _ => None,
        };
        let cmd = RaftCommand {
            id,
            request: Some(request),
            client,
            stamp,
        };
        if self.member.propose(encode_command(&cmd)).is_err() {
            return Err((id, at_deadline));
        }
        let appended_at = self.member.is_leader().then(|| self.member.last_index());
        self.proposals
            .insert(id, req, deadline, at_deadline, appended_at);
        Ok(())
    }

    /// A session request's deadline passed: orders a cancel of it, which
    /// answers the request's client; `Pending` if it cannot be ordered.
    fn propose_cancel(&mut self, req: RequestId, session_id: u64, seq: u64, grace_ticks: u64) {
        debug_assert!(!self.busy(), "deadlines are checked between cycles");
        if self.member.leader_id().is_none() {
            self.respond(req, Err(RequestError::Pending));
            return;
        }
        let cancel = KvRequest::SessionCancel(SessionCancel { session_id, seq });
        let deadline = self.now_tick + grace_ticks.max(1);
        if self
            .append_waiting(req, cancel, None, deadline, AtDeadline::Pending)
            .is_err()
        {
            self.respond(req, Err(RequestError::Pending));
        }
    }

    fn take_command_id(&mut self) -> u64 {
        let id = self.next_command_id;
        self.next_command_id += 1;
        id
    }

    /// A linearizable read: granted once a read index is known and applied.
    pub fn read(&mut self, req: RequestId) {
        if crate::fault::active(crate::fault::Fault::LocalReads) {
            let read_index = self.applied_index;
            self.respond(req, Ok(Granted::Read { read_index }));
            return;
        }
        if self.busy() {
            self.deferred.push(Deferred::Read(req));
            return;
        }
        if self.member.leader_id().is_none() {
            self.respond(req, Err(RequestError::NoLeader));
            return;
        }
        let deadline_tick = self.deadline();
        self.reads.queue(ReadWaiter { req, deadline_tick });
    }

    /// Hands leadership to `target` (etcd's MoveLeader); answered once the
    /// target leads.
    pub fn transfer_leader(&mut self, req: RequestId, target: u64) {
        if self.busy() {
            self.deferred.push(Deferred::Transfer(req, target));
            return;
        }
        if !self.member.is_leader() {
            self.respond(req, Err(RequestError::NotLeader));
            return;
        }
        // Target 0: the voter best placed to take over.
        let target = match target {
            0 => match self.member.best_transferee() {
                Some(t) => t,
                None => {
                    self.respond(req, Err(RequestError::NoLeader));
                    return;
                }
            },
            t => t,
        };
        if target == self.member.id() {
            self.respond(req, Ok(Granted::LeaderTransferred));
            return;
        }
        self.member.transfer_leader(target);
        let deadline_tick = self.deadline();
        self.transfers.push(Transfer {
            req,
            target,
            deadline_tick,
        });
    }

    /// A membership change (etcd's MemberAdd, MemberRemove, MemberUpdate,
    /// MemberPromote), answered once its entry is applied. The leader
    /// refuses at once what would be refused at commit, a second change
    /// while one is in flight (raft-rs would drop it) and the promotion of
    /// a learner that is behind (etcd's leader-side checks); every member
    /// checks etcd's rules again when the entry commits.
    pub fn change_membership(
        &mut self,
        req: RequestId,
        change: rafter_proto::rafterpb::MembershipChange,
    ) {
        use crate::membership::{MembershipError, LEARNER_READY_SHARE};
        use rafter_proto::rafterpb::membership_change::Kind;
        if self.busy() {
            self.deferred
                .push(Deferred::ChangeMembership(req, Box::new(change)));
            return;
        }
        if self.member.leader_id().is_none() {
            self.respond(req, Err(RequestError::NoLeader));
            return;
        }
        // Only the leader knows whether a change is in flight and whether a
        // learner caught up: elsewhere the shell asks the leader.
        if !self.member.is_leader() {
            self.respond(req, Err(RequestError::NotLeader));
            return;
        }
        {
            let refused = if self.membership.is_empty() {
                Err(MembershipError::Unrecorded)
            } else if self.member.has_pending_conf() {
                Err(MembershipError::InProgress)
            } else {
                self.membership.validate(&change)
            };
            let refused = refused.and_then(|()| {
                let promoted = change.members.first().map_or(0, |m| m.member_id);
                if change.kind == Kind::Promote as i32
                    && self.member.match_share(promoted) < LEARNER_READY_SHARE
                {
                    Err(MembershipError::LearnerNotReady)
                } else {
                    Ok(())
                }
            });
            if let Err(e) = refused {
                self.respond(req, Err(e.into()));
                return;
            }
        }
        let id = self.take_command_id();
        let cmd = RaftCommand {
            id,
            request: Some(KvRequest::Membership(change.clone())),
            client: None,
            stamp: None,
        };
        let cc = crate::membership::proposed_conf_change(&change);
        if self
            .member
            .propose_conf_change(encode_command(&cmd), cc)
            .is_err()
        {
            self.respond(req, Err(RequestError::NoLeader));
            return;
        }
        let appended_at = self.member.is_leader().then(|| self.member.last_index());
        let deadline = self.deadline();
        self.proposals
            .insert(id, req, deadline, AtDeadline::TimeOut, appended_at);
    }

    /// raft-rs's current configuration (it must equal the membership's).
    pub fn conf_state(&self) -> raft::eraftpb::ConfState {
        self.member.conf_state()
    }

    /// The membership as of the entries handed to the state machine.
    pub fn membership(&self) -> &crate::membership::Membership {
        &self.membership
    }

    /// The state machine was replaced (snapshot): its membership.
    pub fn reset_membership(&mut self, records: Vec<rafter_proto::rafterpb::MemberAttributes>) {
        self.membership = crate::membership::Membership::new(records);
        self.actions
            .push(Action::MembershipChanged(self.membership.records()));
    }

    /// A committed membership change entry: checked with etcd's rules and,
    /// if valid, applied to raft-rs's configuration and the core's
    /// membership; the entry becomes the command the state machine records
    /// (an empty entry if refused, whose proposer gets the error). Returns
    /// whether the membership changed.
    fn commit_conf_change(&mut self, entry: &mut Entry) -> bool {
        use raft::eraftpb::EntryType;
        debug_assert_eq!(entry.get_entry_type(), EntryType::EntryConfChange);
        let context = std::mem::take(&mut entry.context).to_vec();
        entry.set_entry_type(EntryType::EntryNormal);
        entry.data = Default::default();
        let cmd = match crate::command::decode_command(entry.index, &context) {
            Ok(Some(cmd)) => cmd,
            // Not a change this code proposed: nothing to apply.
            _ => return false,
        };
        let Some(KvRequest::Membership(change)) = &cmd.request else {
            return false;
        };
        if let Err(e) = self.membership.validate(change) {
            if let Some(req) = self.proposals.take_answered(entry.index, Some(cmd.id)) {
                self.respond(req, Err(e.into()));
            }
            return false;
        }
        let skip_raft = crate::fault::active(crate::fault::Fault::PromoteSkipsRaft)
            && change.kind == rafter_proto::rafterpb::membership_change::Kind::Promote as i32;
        if let Some(cc) = self.membership.apply(change).filter(|_| !skip_raft) {
            if let Err(e) = self.member.apply_conf_change(&cc) {
                panic!(
                    "raft-rs refused a validated membership change at {}: {e}",
                    entry.index
                );
            }
        }
        entry.data = context.into();
        true
    }

    /// A message from a peer (errors are raft-rs's verdict on it; the
    /// member goes on).
    pub fn step(&mut self, mut msg: Message) -> raft::Result<()> {
        if self.busy() {
            self.deferred.push(Deferred::Step(Box::new(msg)));
            return Ok(());
        }
        if !self.forwarded.filter(&mut msg) {
            return Ok(());
        }
        self.member.step(msg)
    }

    pub fn report_unreachable(&mut self, peer: u64) {
        if self.busy() {
            self.deferred.push(Deferred::Unreachable(peer));
            return;
        }
        self.member.report_unreachable(peer);
    }

    pub fn report_snapshot(&mut self, peer: u64, delivered: bool) {
        if self.busy() {
            self.deferred
                .push(Deferred::SnapshotStatus(peer, delivered));
            return;
        }
        self.member.report_snapshot(peer, delivered);
    }

    /// True while a Ready cycle is in flight.
    fn busy(&self) -> bool {
        !matches!(self.stage, Stage::Idle)
    }

    /// Replays the inputs that waited for the cycle to finish.
    fn replay_deferred(&mut self) {
        for input in std::mem::take(&mut self.deferred) {
            match input {
                Deferred::Tick => self.tick(),
                Deferred::Internal(request) => self.propose_internal(*request),
                Deferred::LeaseChanges(changes) => self.on_lease_changes(&changes),
                Deferred::Step(msg) => {
                    if let Err(e) = self.step(*msg) {
                        tracing::debug!("raft rejected a peer message: {e}");
                    }
                }
                Deferred::Propose(req, request, client, wait) => {
                    self.propose_with(req, *request, client, wait)
                }
                Deferred::Read(req) => self.read(req),
                Deferred::Transfer(req, target) => self.transfer_leader(req, target),
                Deferred::ChangeMembership(req, change) => self.change_membership(req, *change),
                Deferred::Unreachable(peer) => self.report_unreachable(peer),
                Deferred::SnapshotStatus(peer, delivered) => self.report_snapshot(peer, delivered),
            }
        }
    }

    /// One tick of Raft's clock; also the core's only clock for deadlines.
    pub fn tick(&mut self) {
        if self.busy() {
            self.deferred.push(Deferred::Tick);
            return;
        }
        self.now_tick += 1;
        self.member.tick();
        self.lease_tick();
        self.cluster_clock_tick();
        self.propose_local_writes();
        if self.now_tick >= self.next_expiry_tick {
            // Checking every waiter on every tick would cost O(waiters) per
            // tick at fine tick rates; a sixteenth of the timeout is close
            // enough.
            self.next_expiry_tick = self.now_tick + (self.request_timeout_ticks / 16).max(1);
            self.expire();
        } else if self
            .proposals
            .earliest_deadline()
            .is_some_and(|tick| tick <= self.now_tick)
        {
            // A client's short deadline passed between the periodic checks.
            for req in self.expire_proposals() {
                self.respond(req, Err(RequestError::Timeout));
            }
        }
    }

    fn expire(&mut self) {
        let now = self.now_tick;
        let mut gone = self.expire_proposals();
        gone.extend(self.reads.expire(now));
        self.transfers.retain(|t| {
            let live = t.deadline_tick > now;
            if !live {
                gone.push(t.req);
            }
            live
        });
        self.renewals_clearing.retain(|_, waiting| {
            waiting.retain(|&(req, _, deadline)| {
                let live = deadline > now;
                if !live {
                    gone.push(req);
                }
                live
            });
            !waiting.is_empty()
        });
        for req in gone {
            self.respond(req, Err(RequestError::Timeout));
        }
    }

    /// Acts on proposals whose deadline passed; returns those whose client
    /// hears "timed out".
    fn expire_proposals(&mut self) -> Vec<RequestId> {
        let mut gone = Vec::new();
        for (req, at_deadline) in self.proposals.expire(self.now_tick) {
            match at_deadline {
                AtDeadline::TimeOut => gone.push(req),
                AtDeadline::Pending => self.respond(req, Err(RequestError::Pending)),
                AtDeadline::Cancel {
                    session_id,
                    seq,
                    grace_ticks,
                } => self.propose_cancel(req, session_id, seq, grace_ticks),
                AtDeadline::Retry { request, client } => {
                    self.propose_with(req, *request, client, Wait::Blocking)
                }
            }
        }
        gone
    }

    /// The last `Persist` is durable.
    pub fn on_persisted(&mut self) {
        let Stage::AwaitPersist {
            persisted_messages,
            snapshot_index,
        } = std::mem::replace(&mut self.stage, Stage::Idle)
        else {
            panic!("on_persisted without a log write in flight");
        };
        self.finish_cycle(persisted_messages, snapshot_index);
    }

    /// The state machine applied every entry up to `applied_index` and holds
    /// every entry up to `durable_index` durably (a crash keeps them).
    pub fn on_applied(&mut self, applied_index: u64, durable_index: u64) {
        assert!(
            applied_index <= self.handed_index,
            "applied {applied_index} beyond what was handed ({})",
            self.handed_index
        );
        assert!(durable_index <= applied_index, "durable beyond applied");
        if applied_index > self.applied_index {
            self.applied_index = applied_index;
            self.member
                .on_applied(applied_index.min(self.member.commit_index()));
            self.grant_reads();
        }
        if let Some(compact_to) = self.compaction.due(durable_index) {
            self.actions.push(Action::CompactLog { compact_to });
        }
    }

    /// The state machine now holds the snapshot at `index` (durably).
    pub fn on_snapshot_installed(&mut self, index: u64) {
        self.applied_index = self.applied_index.max(index);
        self.handed_index = self.handed_index.max(index);
        self.compaction.snapshot_installed(index);
        self.grant_reads();
        match std::mem::replace(&mut self.stage, Stage::Idle) {
            Stage::AwaitSnapshot {
                index: expected,
                write,
                persisted_messages,
            } => {
                assert_eq!(index, expected, "a different snapshot was installed");
                self.persist(write, persisted_messages, Some(index));
            }
            // `fault-snapshot-late`: the cycle went on without it.
            other => self.stage = other,
        }
    }

    fn grant_reads(&mut self) {
        for (req, read_index) in self.reads.granted(self.applied_index) {
            self.respond(req, Ok(Granted::Read { read_index }));
        }
    }

    /// Everything the inputs since the last call made necessary, in order.
    pub fn take_actions(&mut self) -> Vec<Action> {
        // A round steps raft-rs, which must wait while a Ready is in flight.
        if !self.busy() {
            if let Some(ctx) = self.reads.start_round(self.member.id()) {
                self.member.read_index(ctx);
            }
        }
        self.drive();
        if !self.transfers.is_empty() {
            let leader = self.member.leader_id();
            let (done, waiting): (Vec<_>, Vec<_>) = std::mem::take(&mut self.transfers)
                .into_iter()
                .partition(|t| Some(t.target) == leader);
            self.transfers = waiting;
            for t in done {
                self.respond(t.req, Ok(Granted::LeaderTransferred));
            }
        }
        std::mem::take(&mut self.actions)
    }

    /// Takes Ready cycles until one must wait for the shell.
    fn drive(&mut self) {
        while matches!(self.stage, Stage::Idle) {
            let Some(cycle) = self.member.take_cycle() else {
                break;
            };
            // A leader's appends may go out before its own fsync (Raft
            // thesis 10.2.1); everything else waits for persistence.
            if !cycle.messages.is_empty() {
                self.actions.push(Action::Send(cycle.messages));
            }
            for rs in &cycle.read_states {
                let granted = self.reads.round_done(
                    self.member.id(),
                    &rs.request_ctx,
                    rs.index,
                    self.applied_index,
                );
                for (req, read_index) in granted {
                    self.respond(req, Ok(Granted::Read { read_index }));
                }
            }
            if crate::fault::active(crate::fault::Fault::AckUncommitted) && self.member.is_leader()
            {
                let appended = self.member.entries_after(self.handed_index);
                let appended = [appended, cycle.entries.clone()].concat();
                self.hand_to_apply(appended);
            }
            // Committed before this cycle: they may be applied before its
            // log write, and always before its snapshot.
            self.hand_to_apply(cycle.committed_entries);
            let write = LogWrite {
                snapshot: cycle.snapshot.as_ref().map(|s| s.get_metadata().clone()),
                entries: cycle.entries,
                hard_state: cycle.hard_state,
                must_sync: cycle.must_sync,
            };
            match cycle.snapshot {
                Some(snapshot) if crate::fault::active(crate::fault::Fault::SnapshotLate) => {
                    let index = snapshot.get_metadata().index;
                    self.handed_index = self.handed_index.max(index);
                    self.late_snapshot = Some(Box::new(snapshot));
                    self.persist(write, cycle.persisted_messages, Some(index));
                }
                Some(snapshot) => {
                    let index = snapshot.get_metadata().index;
                    assert!(
                        index >= self.handed_index,
                        "snapshot {index} behind entries already handed ({})",
                        self.handed_index
                    );
                    self.actions
                        .push(Action::InstallSnapshot(Box::new(snapshot)));
                    self.stage = Stage::AwaitSnapshot {
                        index,
                        write,
                        persisted_messages: cycle.persisted_messages,
                    };
                }
                None => self.persist(write, cycle.persisted_messages, None),
            }
        }
    }

    /// Asks the shell to make the cycle's write durable, or finishes the
    /// cycle at once when there is nothing to write.
    fn persist(
        &mut self,
        write: LogWrite,
        persisted_messages: Vec<Message>,
        snapshot_index: Option<u64>,
    ) {
        if write.is_empty() {
            self.finish_cycle(persisted_messages, snapshot_index);
            return;
        }
        self.actions.push(Action::Persist(write));
        self.stage = Stage::AwaitPersist {
            persisted_messages,
            snapshot_index,
        };
    }

    /// The cycle's write is durable: what it unlocked goes out.
    fn finish_cycle(&mut self, persisted_messages: Vec<Message>, snapshot_index: Option<u64>) {
        if !persisted_messages.is_empty() {
            self.actions.push(Action::Send(persisted_messages));
        }
        let persisted = self.member.on_persisted();
        if !persisted.messages.is_empty() {
            self.actions.push(Action::Send(persisted.messages));
        }
        self.hand_to_apply(persisted.committed_entries);
        if let Some(index) = snapshot_index {
            self.member.on_applied(index);
        }
        debug_assert!(!self.busy(), "the cycle is finished");
        self.replay_deferred();
    }

    /// Hands committed entries to the state machine, each tagged with the
    /// proposal its result answers.
    fn hand_to_apply(&mut self, entries: Vec<Entry>) {
        let mut entries: Vec<Entry> = entries
            .into_iter()
            .filter(|e| e.index > self.handed_index)
            .collect();
        let mut changed = false;
        for e in &mut entries {
            if e.get_entry_type() == raft::eraftpb::EntryType::EntryConfChange {
                changed |= self.commit_conf_change(e);
            }
        }
        let Some(first) = entries.first() else {
            return;
        };
        assert_eq!(
            first.index,
            self.handed_index + 1,
            "committed entries must reach the state machine without gaps"
        );
        let reply_to = entries
            .iter()
            .map(|e| {
                self.proposals
                    .take_answered(e.index, peek_command_id(&e.data))
            })
            .collect();
        self.handed_index = entries.last().map_or(self.handed_index, |e| e.index);
        self.actions
            .push(Action::Apply(ApplyBatch { entries, reply_to }));
        // After the batch that records it: a member that applies its own
        // removal stops once the removal is in its state machine.
        if changed {
            self.actions
                .push(Action::MembershipChanged(self.membership.records()));
        }
        if let Some(snapshot) = self.late_snapshot.take() {
            self.actions.push(Action::InstallSnapshot(snapshot));
        }
    }

    /// Every waiting request, answered with an error (the member stops).
    pub fn abandon_all(&mut self) -> Vec<RequestId> {
        let mut out = self.proposals.drain();
        out.extend(self.reads.drain());
        out.extend(self.transfers.drain(..).map(|t| t.req));
        out
    }
}

/// The hard state a member restarts with, if it must change: the state
/// machine may have applied past the commit index the log recorded
/// (raft-rs need not persist the commit of a light Ready), and those
/// entries were committed.
pub fn restart_hard_state(hs: &HardState, applied_index: u64) -> Option<HardState> {
    (hs.commit < applied_index).then(|| {
        let mut hs = hs.clone();
        hs.commit = applied_index;
        hs
    })
}

#[cfg(test)]
mod tests {
    use raft::eraftpb::ConfState;
    use raft::storage::MemStorage;
    use rafter_proto::etcdserverpb::PutRequest;
    use rafter_proto::rafterpb::{ClientTag, SessionCancel};

    use super::*;
    use crate::command::decode_command;

    /// A one-member core and a minimal shell: the log is MemStorage, writes
    /// are durable at once, applied entries are only recorded.
    struct Harness {
        node: Node<MemStorage>,
        storage: MemStorage,
        handed: Vec<ApplyBatch>,
        responses: Vec<(RequestId, Result<Granted, RequestError>)>,
        /// Every entry written to the log.
        persisted: Vec<Entry>,
        /// Every membership the core reported.
        membership: Vec<Vec<rafter_proto::rafterpb::MemberAttributes>>,
    }

    impl Harness {
        fn new() -> Self {
            Self::with_voters(vec![1])
        }

        /// Member 1 leads `voters`; with a second voter that never acks an
        /// append, nothing commits.
        fn with_voters(voters: Vec<u64>) -> Self {
            let storage =
                MemStorage::new_with_conf_state(ConfState::from((voters.clone(), vec![])));
            let cfg = NodeConfig {
                member: MemberConfig {
                    id: 1,
                    election_tick: 10,
                    max_election_tick: 0,
                    heartbeat_tick: 1,
                    applied_index: 0,
                    max_size_per_msg_bytes: 1 << 20,
                    max_inflight_msgs: 256,
                    rng_seed: 1,
                },
                snapshot_count: 1000,
                request_timeout_ticks: 20,
                first_command_id: 100,
                compacted_index: 0,
                lessor: crate::lease::LessorConfig::new(100_000, 10),
                leases: vec![],
                tick_us: 100_000,
                cluster_clock_ms: 1000,
                sessions_open: 0,
                local_writes: vec![],
                members: vec![],
            };
            let logger = slog::Logger::root(slog::Discard, slog::o!());
            let mut node = Node::new(&cfg, storage.clone(), &logger).expect("node");
            node.campaign_if_sole_voter().expect("campaign");
            let mut h = Harness {
                node,
                storage,
                handed: vec![],
                responses: vec![],
                persisted: vec![],
                membership: vec![],
            };
            h.run();
            if voters.len() > 1 {
                h.node.member.campaign().expect("campaign");
                h.run();
                for msg_type in [
                    raft::eraftpb::MessageType::MsgRequestPreVoteResponse,
                    raft::eraftpb::MessageType::MsgRequestVoteResponse,
                ] {
                    let mut m = Message::default();
                    m.set_msg_type(msg_type);
                    m.from = 2;
                    m.to = 1;
                    m.term = h.node.term()
                        + u64::from(
                            msg_type == raft::eraftpb::MessageType::MsgRequestPreVoteResponse,
                        );
                    h.node.step(m).expect("vote");
                    h.run();
                }
            }
            assert!(h.node.is_leader());
            h
        }

        /// Member 2 answers a heartbeat (so member 1 keeps leading) but
        /// never acknowledges an append.
        fn heartbeat_from_2(&mut self) {
            let mut m = Message::default();
            m.set_msg_type(raft::eraftpb::MessageType::MsgHeartbeatResponse);
            m.from = 2;
            m.to = 1;
            m.term = self.node.term();
            self.node.step(m).expect("heartbeat response");
        }

        /// Carries out actions until there are none; applies nothing.
        fn run(&mut self) {
            loop {
                let actions = self.node.take_actions();
                if actions.is_empty() {
                    return;
                }
                for a in actions {
                    match a {
                        Action::Persist(w) => {
                            self.persisted.extend(w.entries.iter().cloned());
                            let mut core = self.storage.wl();
                            core.append(&w.entries).expect("append");
                            if let Some(hs) = w.hard_state {
                                core.set_hardstate(hs);
                            }
                            drop(core);
                            self.node.on_persisted();
                        }
                        Action::Apply(batch) => self.handed.push(batch),
                        Action::Respond(req, r) => self.responses.push((req, r)),
                        Action::MembershipChanged(records) => self.membership.push(records),
                        Action::Send(_)
                        | Action::InstallSnapshot(_)
                        | Action::CompactLog { .. } => {}
                    }
                }
            }
        }

        /// [`Harness::run`], then reports everything handed as applied.
        fn run_and_apply(&mut self) {
            self.run();
            let handed = self.last_handed();
            self.node.on_applied(handed, handed);
            self.run();
        }

        fn last_handed(&self) -> u64 {
            self.handed
                .iter()
                .filter_map(ApplyBatch::last_index)
                .max()
                .unwrap_or(0)
        }
    }

    fn membership_change(
        kind: rafter_proto::rafterpb::membership_change::Kind,
        id: u64,
        url: &str,
        learner: bool,
    ) -> rafter_proto::rafterpb::MembershipChange {
        rafter_proto::rafterpb::MembershipChange {
            kind: kind as i32,
            members: vec![rafter_proto::rafterpb::MemberAttributes {
                member_id: id,
                peer_urls: if url.is_empty() {
                    vec![]
                } else {
                    vec![url.to_string()]
                },
                is_learner: learner,
                ..Default::default()
            }],
        }
    }

    #[test]
    fn membership_changes_follow_etcd_rules_one_at_a_time() {
        use rafter_proto::rafterpb::membership_change::Kind;
        let mut h = Harness::new();
        h.node
            .reset_membership(vec![rafter_proto::rafterpb::MemberAttributes {
                member_id: 1,
                peer_urls: vec!["http://a:1".into()],
                ..Default::default()
            }]);
        h.run_and_apply();
        h.node
            .change_membership(10, membership_change(Kind::Add, 2, "http://b:1", true));
        h.run_and_apply();
        // Committed at once (one voter): raft-rs and the core both know
        // the learner, and the proposer is answered by the entry.
        let last = h.membership.last().expect("reported");
        assert!(last.iter().any(|r| r.member_id == 2 && r.is_learner));
        assert_eq!(h.node.member.conf_state().learners.len(), 1);
        let batch = h.handed.last().expect("handed");
        assert_eq!(batch.reply_to.last(), Some(&Some(10)));
        // A second learner, a promotion of a learner that has none of the
        // log, a duplicate URL: refused at once with etcd's errors.
        h.node
            .change_membership(11, membership_change(Kind::Add, 3, "http://c:1", true));
        h.node
            .change_membership(12, membership_change(Kind::Promote, 2, "", false));
        h.node
            .change_membership(13, membership_change(Kind::Add, 4, "http://b:1", false));
        h.node
            .change_membership(14, membership_change(Kind::Remove, 1, "", false));
        h.run_and_apply();
        use crate::membership::MembershipError as E;
        let errors: Vec<_> = h.responses.iter().map(|(r, e)| (*r, *e)).collect();
        assert!(errors.contains(&(11, Err(E::TooManyLearners.into()))));
        assert!(errors.contains(&(12, Err(E::LearnerNotReady.into()))));
        assert!(errors.contains(&(13, Err(E::PeerUrlExists.into()))));
        assert!(errors.contains(&(14, Err(E::NotEnoughStarted.into()))));
        // Removing the learner; its id never comes back.
        h.node
            .change_membership(15, membership_change(Kind::Remove, 2, "", false));
        h.run_and_apply();
        assert!(h.node.member.conf_state().learners.is_empty());
        h.node
            .change_membership(16, membership_change(Kind::Add, 2, "http://b:1", false));
        h.run_and_apply();
        assert!(h.responses.contains(&(16, Err(E::IdRemoved.into()))));
    }

    #[test]
    fn a_second_membership_change_waits_for_the_first() {
        use rafter_proto::rafterpb::membership_change::Kind;
        let mut h = Harness::with_voters(vec![1, 2]);
        h.node.reset_membership(
            [(1, "http://a:1"), (2, "http://b:1")]
                .map(|(id, url)| rafter_proto::rafterpb::MemberAttributes {
                    member_id: id,
                    peer_urls: vec![url.into()],
                    ..Default::default()
                })
                .to_vec(),
        );
        h.run();
        h.node
            .change_membership(10, membership_change(Kind::Add, 3, "http://c:1", true));
        h.run();
        h.node
            .change_membership(11, membership_change(Kind::Add, 4, "http://d:1", true));
        h.run();
        assert!(h.responses.contains(&(
            11,
            Err(crate::membership::MembershipError::InProgress.into())
        )));
    }

    fn put() -> KvRequest {
        KvRequest::Put(PutRequest {
            key: b"k".to_vec(),
            value: b"v".to_vec(),
            ..Default::default()
        })
    }

    #[test]
    fn a_proposal_is_answered_by_the_entry_that_carries_it() {
        let mut h = Harness::new();
        h.node.propose(7, put());
        h.run();
        let (entry, to) = h
            .handed
            .iter()
            .flat_map(|b| b.entries.iter().zip(&b.reply_to))
            .find(|(_, to)| to.is_some())
            .expect("the proposal reached apply");
        assert_eq!(*to, Some(7));
        let cmd = decode_command(entry.index, &entry.data)
            .expect("decodes")
            .expect("a command");
        assert_eq!(cmd.request, Some(put()));
    }

    #[test]
    fn a_read_is_granted_only_once_its_index_is_applied() {
        let mut h = Harness::new();
        h.node.propose(7, put());
        h.run();
        h.node.read(8);
        h.run();
        assert!(
            h.responses.is_empty(),
            "granted before apply: {:?}",
            h.responses
        );
        let handed = h.last_handed();
        h.node.on_applied(handed - 1, 0);
        h.run();
        assert!(h.responses.is_empty(), "granted below the read index");
        h.node.on_applied(handed, 0);
        h.run();
        assert_eq!(
            h.responses,
            vec![(8, Ok(Granted::Read { read_index: handed }))]
        );
    }

    #[test]
    fn waiters_are_abandoned_at_their_deadline() {
        let mut h = Harness::new();
        h.node.read(8);
        h.run();
        for _ in 0..30 {
            h.node.tick();
        }
        h.run();
        assert_eq!(h.responses, vec![(8, Err(RequestError::Timeout))]);
        assert_eq!(h.node.waiting_requests(), 0);
    }

    fn persisted_requests(h: &Harness) -> Vec<KvRequest> {
        h.persisted
            .iter()
            .filter_map(|e| decode_command(e.index, &e.data).expect("decodes")?.request)
            .collect()
    }

    const TAG: ClientTag = ClientTag {
        session_id: 5,
        seq: 9,
        acked_below: 1,
    };

    /// Ticks the pair's leader `n` times, member 2 answering heartbeats
    /// only.
    fn tick_uncommitted(h: &mut Harness, n: usize) {
        for _ in 0..n {
            h.node.tick();
            h.heartbeat_from_2();
            h.run();
        }
    }

    #[test]
    fn a_session_request_past_its_deadline_orders_a_cancel_then_is_pending() {
        let mut h = Harness::with_voters(vec![1, 2]);
        h.node.propose_in_session(7, put(), TAG, Wait::Ticks(3));
        h.run();
        tick_uncommitted(&mut h, 3);
        assert!(h.responses.is_empty(), "answered before the cancel decided");
        let cancel = KvRequest::SessionCancel(SessionCancel {
            session_id: 5,
            seq: 9,
        });
        assert!(
            persisted_requests(&h).contains(&cancel),
            "no cancel ordered at the deadline"
        );
        // The cancel cannot commit either: the outcome is pending.
        tick_uncommitted(&mut h, 4);
        assert_eq!(h.responses, vec![(7, Err(RequestError::Pending))]);
        assert_eq!(h.node.waiting_requests(), 0);
    }

    #[test]
    fn a_plain_proposal_past_its_deadline_times_out_without_a_cancel() {
        let mut h = Harness::with_voters(vec![1, 2]);
        h.node.propose_with(7, put(), None, Wait::Ticks(3));
        h.run();
        tick_uncommitted(&mut h, 4);
        assert_eq!(h.responses, vec![(7, Err(RequestError::Timeout))]);
        assert!(!persisted_requests(&h)
            .iter()
            .any(|r| matches!(r, KvRequest::SessionCancel(_))));
    }

    #[test]
    fn a_blocking_proposal_is_proposed_again_until_answered() {
        let mut h = Harness::with_voters(vec![1, 2]);
        h.node.propose_in_session(7, put(), TAG, Wait::Blocking);
        h.run();
        tick_uncommitted(&mut h, 45);
        assert!(h.responses.is_empty(), "a blocking request gave up");
        let copies = persisted_requests(&h)
            .into_iter()
            .filter(|r| r == &put())
            .count();
        assert!(copies > 1, "not proposed again: {copies} copies");
    }

    #[test]
    fn queued_local_writes_are_proposed_in_order_and_again_until_applied() {
        let mut h = Harness::with_voters(vec![1, 2]);
        let write = |seq| LocalWrite {
            member_id: 1,
            seq,
            key: b"k".to_vec(),
            ..Default::default()
        };
        let proposed = |h: &Harness| -> Vec<u64> {
            persisted_requests(h)
                .into_iter()
                .flat_map(|r| match r {
                    KvRequest::LocalWrites(b) => b.writes.iter().map(|w| w.seq).collect(),
                    _ => vec![],
                })
                .collect()
        };
        h.node.queue_local_writes(vec![write(1), write(2)]);
        h.run();
        assert_eq!(proposed(&h), vec![1, 2]);
        tick_uncommitted(&mut h, 10);
        assert_eq!(
            proposed(&h),
            vec![1, 2],
            "a round in flight is not repeated"
        );
        tick_uncommitted(&mut h, 15);
        assert_eq!(
            proposed(&h),
            vec![1, 2, 1, 2],
            "an unapplied round goes again"
        );
        h.node.on_local_writes_applied(1);
        h.run();
        assert_eq!(
            proposed(&h),
            vec![1, 2, 1, 2, 2],
            "what is left goes at once"
        );
        h.node.on_local_writes_applied(2);
        assert_eq!(h.node.local_writes_queued(), 0);
    }

    #[test]
    fn the_leader_records_its_elapsed_time_only_while_sessions_are_open() {
        let mut h = Harness::new();
        let clocks = |h: &Harness| -> Vec<u64> {
            persisted_requests(h)
                .into_iter()
                .filter_map(|r| match r {
                    KvRequest::ClusterClock(c) => Some(c.elapsed_ms),
                    _ => None,
                })
                .collect()
        };
        for _ in 0..25 {
            h.node.tick();
        }
        h.run();
        assert!(clocks(&h).is_empty(), "a clock entry with no session open");
        h.node.on_sessions_open(1);
        for _ in 0..25 {
            h.node.tick();
        }
        h.run();
        // 100 ms ticks, an entry every 1000 ms.
        assert_eq!(clocks(&h), vec![1000, 1000]);
    }

    #[test]
    fn compaction_waits_for_durable_state() {
        let mut h = Harness::new();
        for req in 0..1500 {
            h.node.propose(req, put());
        }
        h.run();
        let handed = h.last_handed();
        h.node.on_applied(handed, 0);
        assert!(
            !h.node
                .take_actions()
                .iter()
                .any(|a| matches!(a, Action::CompactLog { .. })),
            "compacted entries the store may still lose"
        );
        h.node.on_applied(handed, handed);
        let compact_to = h.node.take_actions().into_iter().find_map(|a| match a {
            Action::CompactLog { compact_to } => Some(compact_to),
            _ => None,
        });
        assert_eq!(compact_to, Some(handed - 500 + 1));
    }
}
