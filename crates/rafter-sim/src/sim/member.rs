//! One simulated member: the real member core (`rafter_core::Node`) and the
//! real MVCC store (in memory), driven as the server's Raft loop and apply
//! thread drive them. This file only does the I/O the core asks for, on
//! simulated devices: a log whose writes become durable at a simulated
//! fsync (a crash keeps only what was fsynced, maybe plus a torn prefix of
//! the rest), an apply queue worked off after a simulated delay (the apply
//! thread), and a store made durable by periodic syncs (a crash reverts it
//! to the last one). Every decision about a request is the core's.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

use raft::eraftpb::{Entry, Message, Snapshot};
use rafter_core::lease::LeaseChange;
use rafter_core::watch::{WatchConfig, WatchHub};
use rafter_core::{
    apply_batch, Action, ApplyBatch, Granted, Node, NodeConfig, RaftStorage, RequestError,
    RequestId, StateMachine, Wait,
};
use rafter_proto::rafterpb::{
    ClientTag, LocalWrite, MemberAttributes, MembershipChange, SessionOpen,
};
use rafter_storage::mvcc::sessions::RequestOutcome;
use rafter_storage::mvcc::{KvResponse, MvccError};
use rafter_storage::MvccStore;

use super::history::{OpKind, OpResult};
use super::log::{LogState, SimLog};
use super::ops;

/// Static settings of a simulated member.
#[derive(Debug, Clone)]
pub struct MemberSettings {
    pub election_tick: usize,
    pub snapshot_count: u64,
    pub request_timeout_ticks: u64,
    /// Test-only shell bug: tell the core the log is durable before the
    /// fsync completes.
    pub ack_before_fsync: bool,
}

/// Something a member tells the simulator.
pub enum Output {
    Send(Message),
    /// Operation `op` finished with a result.
    Done(usize, OpResult),
    /// Operation `op` was refused before it could take effect.
    Rejected(usize),
    /// The core gave up on operation `op`: its outcome is unknown.
    TimedOut(usize),
    /// Entry `index` of `term` with payload checksum was applied.
    Applied {
        index: u64,
        term: u64,
        data_crc: u32,
        revision: i64,
    },
    /// The member wrote to its log and waits for the fsync of `epoch`.
    Fsync(u64),
    /// The apply queue has work: run [`SimMember::apply_queued`] later.
    ApplyLater(u64),
    /// Something worth a line in the trace (snapshots, compactions).
    Note(String),
    /// A leadership transfer this member was asked for finished.
    Transferred(Result<(), RequestError>),
    /// Lease changes this member applied.
    LeaseChanges(Vec<LeaseChange>),
    /// A keep-alive for lessee `lessee` was answered here: renewed for a
    /// TTL, no such lease (`Ok(None)`), or refused (not the leader).
    Renewed {
        lessee: usize,
        result: Result<Option<i64>, RequestError>,
    },
    /// Client `client`'s open of session `id` was answered: `opened` (or
    /// it already existed: an earlier attempt went through), or not.
    SessionOpen {
        client: usize,
        id: u64,
        opened: bool,
    },
    /// A session op, or a question about its outcome, was answered.
    Session(usize, SessionAnswer),
}

/// What a client learns about an operation made in its session.
#[derive(Debug, Clone, PartialEq)]
pub enum SessionAnswer {
    /// Applied exactly once: its (original) answer.
    Applied(OpResult),
    /// Ordered after its cancel: never applied.
    Cancelled,
    /// Refused: the session had expired. Never applied.
    Expired,
    /// This submission was never proposed (no leader).
    NotProposed,
    /// Not decided yet (timed out, pending): ask again.
    Undecided,
    /// The session is gone, and with it what became of the op.
    Forgotten,
    /// The store says the client acknowledged it (it never did).
    Acknowledged,
}

impl SessionAnswer {
    /// The answer an applied session request (or the cancel that decided
    /// it) gave.
    pub fn of(kind: &OpKind, result: Result<KvResponse, MvccError>) -> SessionAnswer {
        match result {
            Ok(KvResponse::Outcome(RequestOutcome::Applied(r))) => SessionAnswer::of(kind, *r),
            Ok(KvResponse::Outcome(RequestOutcome::Cancelled)) | Err(MvccError::Cancelled) => {
                SessionAnswer::Cancelled
            }
            Ok(KvResponse::Outcome(RequestOutcome::SessionExpired)) => SessionAnswer::Forgotten,
            Ok(KvResponse::Outcome(RequestOutcome::Acknowledged))
            | Err(MvccError::AlreadyAcknowledged) => SessionAnswer::Acknowledged,
            Err(MvccError::SessionExpired) => SessionAnswer::Expired,
            other => SessionAnswer::Applied(ops::result_of(kind, other)),
        }
    }
}

/// An input that arrived while the member was blocked on an fsync.
enum Input {
    Tick,
    Step(Box<Message>),
    Submit(usize, OpKind),
    Transfer(u64),
    ChangeMembership(Box<MembershipChange>),
    SnapshotStatus(u64, bool),
    Propose(Box<rafter_storage::KvRequest>),
    QueueLocal(Box<LocalWrite>),
    LeaseChanges(Vec<rafter_core::lease::LeaseChange>),
    Renew(usize, i64),
    SessionOpen(usize, u64, u64),
    SubmitInSession(usize, OpKind, ClientTag, u64),
    AskOutcome(usize, OpKind, u64, u64, u64),
}

/// Work queued for the simulated apply thread, in the core's order.
enum ApplyWork {
    Batch(ApplyBatch),
    Snapshot(Box<Snapshot>),
}

/// Who waits for a request the core holds.
enum Waiter {
    Op(usize, OpKind),
    Transfer,
    /// A lessee's request whose answer nobody reads.
    Untracked,
    Renew(usize),
    SessionOpen(usize, u64),
    /// A session op.
    Session(usize, OpKind),
    /// A question about a session op's outcome.
    Outcome(usize, OpKind),
}

type Core = Node<RaftStorage<SimLog, MvccStore>>;

pub struct SimMember {
    pub id: u64,
    settings: MemberSettings,
    /// The log as the member sees it (written, maybe not yet fsynced).
    log: SimLog,
    /// The log as of the last completed fsync: what a crash keeps.
    durable_log: LogState,
    /// The fsync the member is blocked on, if any.
    fsync: Option<u64>,
    /// Entries written since the last fsync, in the order a torn write
    /// would have put them on disk.
    unsynced_entries: Vec<Entry>,
    fsync_epoch: u64,
    inbox: Vec<Input>,
    node: Option<Core>,
    store: Arc<MvccStore>,
    /// The store as of its last durable sync: blob and applied index.
    durable_store: Option<(Vec<u8>, u64)>,
    apply_queue: VecDeque<ApplyWork>,
    /// Bumped by a crash, so a late apply event of a past life does nothing.
    pub incarnation: u64,
    waiters: HashMap<RequestId, Waiter>,
    next_request: RequestId,
    rng_seed: u64,
    /// The member's watch streams (gone with a crash, as connections are).
    watch: WatchHub,
    /// Its durable queue of local writes not yet known to be applied (a
    /// crash keeps it: the server fsyncs a write before acknowledging it).
    local_queue: Vec<LocalWrite>,
    next_local_seq: u64,
    /// Stamps local writes (kept across crashes, as the server restores
    /// it from its queue file).
    hlc: rafter_core::hlc::Hlc,
    /// Simulated time as last told (ms).
    wall_ms: u64,
    /// An online defragmentation between taking its copy and swapping it
    /// in (gone with a crash, as the server's copy file is).
    defrag: Option<rafter_storage::mvcc::defrag::DefragCopy>,
    /// Started once (founders at once, a joining member once added).
    started: bool,
    /// Removed from the cluster: never runs again.
    removed: bool,
}

/// The peer URL a simulated member is known by.
pub fn sim_peer_url(id: u64) -> String {
    format!("sim://m{id}")
}

/// Tiny limits, so watch outboxes fill, watches fall behind and catch up
/// in small chunks, and fragmenting watches get fragments, in every run.
const SIM_WATCH: WatchConfig = WatchConfig {
    max_outbox_bytes: 150,
    max_request_bytes: 160,
    sync_chunk_events: 3,
};
/// A simulated member's nominal tick (the simulator's `tick_ms`).
const SIM_TICK_US: u64 = 10_000;
/// Catch-up steps a member's watch hub takes per tick or apply.
const WATCH_SYNC_STEPS: usize = 4;

fn new_hub(store: &MvccStore) -> WatchHub {
    let state = store.state().expect("store state");
    WatchHub::new(SIM_WATCH, state.current_revision, state.compact_revision)
}

fn fresh_store() -> Arc<MvccStore> {
    Arc::new(MvccStore::open_in_memory().expect("in-memory store"))
}

impl SimMember {
    /// A founding member of the cluster `founders` (ids), started.
    pub fn new(id: u64, founders: &[u64], settings: MemberSettings, rng_seed: u64) -> Self {
        let records: Vec<MemberAttributes> = founders
            .iter()
            .map(|&f| MemberAttributes {
                member_id: f,
                name: format!("m{f}"),
                peer_urls: vec![sim_peer_url(f)],
                ..Default::default()
            })
            .collect();
        let mut m = Self::unstarted(id, LogState::founding(founders), settings, rng_seed);
        m.store
            .bootstrap_members(&records)
            .expect("bootstrap the founding membership");
        let image = m.store.snapshot().expect("store image");
        m.durable_store = Some((image.data, image.applied_index));
        m.started = true;
        m.start();
        m
    }

    /// A member that will join the cluster once added (not started: empty
    /// log, empty store, no configuration).
    pub fn spare(id: u64, settings: MemberSettings, rng_seed: u64) -> Self {
        Self::unstarted(id, LogState::default(), settings, rng_seed)
    }

    fn unstarted(id: u64, log: LogState, settings: MemberSettings, rng_seed: u64) -> Self {
        SimMember {
            id,
            settings,
            log: SimLog::new(log.clone()),
            durable_log: log,
            fsync: None,
            unsynced_entries: Vec::new(),
            fsync_epoch: 0,
            inbox: Vec::new(),
            node: None,
            store: fresh_store(),
            durable_store: None,
            apply_queue: VecDeque::new(),
            incarnation: 0,
            waiters: HashMap::new(),
            next_request: 1,
            rng_seed,
            watch: WatchHub::new(SIM_WATCH, 1, -1),
            local_queue: Vec::new(),
            next_local_seq: 1,
            hlc: rafter_core::hlc::Hlc::default(),
            wall_ms: 0,
            defrag: None,
            started: false,
            removed: false,
        }
    }

    /// Starts a member that joins (it was added).
    pub fn start_joining(&mut self) {
        assert!(!self.started, "a member joins once");
        self.started = true;
        self.start();
    }

    /// Whether a crashed member may come back (it started and was not
    /// removed).
    pub fn may_restart(&self) -> bool {
        self.started && !self.removed && !self.is_up()
    }

    pub fn is_removed(&self) -> bool {
        self.removed
    }

    pub fn was_started(&self) -> bool {
        self.started
    }

    /// The member was removed: it stops for good (the server's peers refuse
    /// a removed member, which then exits).
    pub fn stop_removed(&mut self) {
        self.removed = true;
        self.node = None;
        self.incarnation += 1;
    }

    /// The membership this member's core holds (`None` when down).
    pub fn membership(&self) -> Option<rafter_core::membership::Membership> {
        self.node.as_ref().map(|n| n.membership().clone())
    }

    /// raft-rs's configuration (`None` when down).
    pub fn conf_state(&self) -> Option<raft::eraftpb::ConfState> {
        self.node.as_ref().map(|n| n.conf_state())
    }

    /// Proposes a membership change here (the shell forwards to the
    /// leader, so the simulation sends it there).
    pub fn change_membership(&mut self, change: MembershipChange, out: &mut Vec<Output>) {
        if self.blocked() {
            self.inbox.push(Input::ChangeMembership(Box::new(change)));
            return;
        }
        self.untracked(out, |node, req| node.change_membership(req, change));
    }

    /// Hands the core a request nobody waits for (its effect is observed
    /// through what members apply).
    fn untracked(&mut self, out: &mut Vec<Output>, submit: impl FnOnce(&mut Core, RequestId)) {
        let req = self.next_request;
        let Some(node) = self.node.as_mut() else {
            return;
        };
        self.next_request += 1;
        self.waiters.insert(req, Waiter::Untracked);
        submit(node, req);
        self.drive(out);
    }

    pub fn is_up(&self) -> bool {
        self.node.is_some()
    }

    pub fn is_leader(&self) -> bool {
        self.node.as_ref().is_some_and(|n| n.is_leader())
    }

    pub fn term(&self) -> u64 {
        self.node.as_ref().map_or(0, |n| n.term())
    }

    /// Starts an online defragmentation of the store (the server's steps,
    /// with applies free to happen before [`SimMember::defrag_finish`]).
    /// Returns what to trace.
    pub fn defrag_begin(&mut self) -> Option<String> {
        if !self.is_up() || self.defrag.is_some() {
            return None;
        }
        let copy = self.store.defrag_begin().expect("defragmentation copy");
        self.defrag = Some(copy);
        Some(format!("defrag: copy taken at applied {}", self.applied()))
    }

    /// Catches the copy up and swaps it in. A snapshot installed meanwhile
    /// makes it give up, as on the server.
    pub fn defrag_finish(&mut self) -> Option<String> {
        let mut copy = self.defrag.take()?;
        let caught_up = self.store.defrag_catch_up(&mut copy);
        match caught_up.and_then(|_| self.store.defrag_finish(copy)) {
            Ok(r) => Some(format!(
                "defrag: swapped in the copy from applied {} with {} entries replayed",
                r.copied_at_index, r.entries_replayed
            )),
            Err(e) if e.to_string().contains("abandoned") => Some(format!("defrag: {e}")),
            Err(e) => panic!("defragmentation failed: {e}"),
        }
    }

    pub fn applied(&self) -> u64 {
        self.store.state().map_or(0, |s| s.applied_index)
    }

    pub fn store(&self) -> &MvccStore {
        &self.store
    }

    /// The member's watch hub, while it is up.
    pub fn watch_hub(&mut self) -> Option<&mut WatchHub> {
        self.node.as_ref()?;
        Some(&mut self.watch)
    }

    /// Catch-up steps for the hub's unsynced watches (the server's watch
    /// thread does these on its own schedule).
    pub fn watch_sync(&mut self) {
        if self.node.is_none() {
            return;
        }
        for _ in 0..WATCH_SYNC_STEPS {
            if !self
                .watch
                .sync(self.store.as_ref())
                .expect("in-memory history")
            {
                break;
            }
        }
    }

    pub fn hash(&self) -> u32 {
        self.store.hash_kv(0).map_or(0, |(h, _, _)| h)
    }

    /// Index of the log's first entry (past it: compacted away).
    pub fn first_log_index(&self) -> u64 {
        self.log.state().first_index()
    }

    fn start(&mut self) {
        let applied = self.applied();
        let log_state = self.log.state();
        {
            // The store may be ahead of the log's recorded commit (raft-rs
            // need not persist the commit of a light ready).
            let mut w = self.log.write();
            if let Some(hs) = rafter_core::node::restart_hard_state(&w.hard_state, applied) {
                w.hard_state = hs;
            }
            // raft-rs starts from the configuration as of the applied
            // index, as on the server.
            let membership = rafter_core::membership::Membership::new(
                self.store.member_attributes().expect("store members"),
            );
            if !membership.is_empty() {
                w.set_conf_state(membership.conf_state());
            }
        }
        let cfg = NodeConfig {
            member: rafter_core::MemberConfig {
                id: self.id,
                election_tick: self.settings.election_tick,
                max_election_tick: 0,
                heartbeat_tick: 1,
                applied_index: applied,
                max_size_per_msg_bytes: 1024 * 1024,
                max_inflight_msgs: 256,
                rng_seed: self.rng_seed,
            },
            snapshot_count: self.settings.snapshot_count,
            request_timeout_ticks: self.settings.request_timeout_ticks,
            first_command_id: (self.id << 48) | (self.incarnation << 32),
            compacted_index: log_state.first_index() - 1,
            lessor: rafter_core::lease::LessorConfig {
                // Checkpoints every second of simulated time, so they
                // happen in every run; a lost revoke is retried after one.
                checkpoint_interval_ticks: 100,
                revoke_retry_ticks: 100,
                ..rafter_core::lease::LessorConfig::new(
                    SIM_TICK_US,
                    self.settings.election_tick as u64,
                )
            },
            leases: self.store.leases().expect("store leases"),
            tick_us: SIM_TICK_US,
            // Often, so sessions expire within a run.
            cluster_clock_ms: 200,
            sessions_open: self.store.sessions_open().expect("store sessions"),
            local_writes: {
                let applied_seq = self
                    .store
                    .local_applied_seq(self.id)
                    .expect("store local writes");
                self.local_queue
                    .iter()
                    .filter(|w| w.seq > applied_seq)
                    .cloned()
                    .collect()
            },
            members: self.store.member_attributes().expect("store members"),
        };
        let logger = slog::Logger::root(slog::Discard, slog::o!());
        let storage = RaftStorage {
            log: self.log.clone(),
            sm: self.store.clone(),
        };
        self.watch = new_hub(&self.store);
        let mut node = Node::new(&cfg, storage, &logger).expect("member starts");
        node.campaign_if_sole_voter().expect("campaign");
        self.node = Some(node);
        self.rng_seed = self.rng_seed.wrapping_add(1);
    }

    /// Crash: the log reverts to its last fsync (plus maybe a torn prefix
    /// of what was being written), the store to its last durable sync.
    /// Returns the ops that were waiting here (now indeterminate).
    pub fn crash(&mut self, torn_keep: usize) -> Vec<usize> {
        self.node = None;
        self.defrag = None;
        self.incarnation += 1;
        // A torn write keeps a prefix of the records written since the
        // last fsync; where they overwrite a conflicting suffix, the old
        // entries from that point on are replaced, never mixed with them.
        let mut survived = self.durable_log.clone();
        let unsynced = std::mem::take(&mut self.unsynced_entries);
        if self.fsync.take().is_some() {
            let kept = &unsynced[..torn_keep.min(unsynced.len())];
            if kept.first().is_some_and(|e| {
                e.index >= survived.first_index() && e.index <= survived.last_index() + 1
            }) {
                survived.append(kept);
            }
        }
        self.durable_log = survived.clone();
        self.log = SimLog::new(survived);
        self.store = fresh_store();
        if let Some((blob, index)) = &self.durable_store {
            let restored =
                StateMachine::restore(self.store.as_ref(), blob).expect("restore durable store");
            assert_eq!(restored, *index, "durable store image and its index");
        }
        self.apply_queue.clear();
        let mut lost: Vec<usize> = self
            .waiters
            .drain()
            .filter_map(|(_, w)| match w {
                Waiter::Op(op, _) | Waiter::Session(op, _) | Waiter::Outcome(op, _) => Some(op),
                Waiter::Transfer
                | Waiter::Untracked
                | Waiter::Renew(_)
                | Waiter::SessionOpen(..) => None,
            })
            .collect();
        lost.extend(
            std::mem::take(&mut self.inbox)
                .into_iter()
                .filter_map(|i| match i {
                    Input::Submit(op, _)
                    | Input::SubmitInSession(op, ..)
                    | Input::AskOutcome(op, ..) => Some(op),
                    _ => None,
                }),
        );
        lost.sort_unstable();
        lost
    }

    pub fn restart(&mut self) {
        assert!(self.node.is_none(), "restart of a running member");
        self.start();
    }

    /// Like the server's Raft loop, a member blocked on an fsync handles
    /// nothing else until it completes: inputs wait in its inbox.
    fn blocked(&self) -> bool {
        self.fsync.is_some() && !self.settings.ack_before_fsync
    }

    /// The simulated time stamps this member's proposals (its HLC).
    pub fn set_wall_clock_ms(&mut self, now_ms: u64) {
        self.wall_ms = now_ms;
        if let Some(n) = self.node.as_mut() {
            n.set_wall_clock_ms(now_ms);
        }
    }

    pub fn tick(&mut self, out: &mut Vec<Output>) {
        if self.blocked() {
            self.inbox.push(Input::Tick);
            return;
        }
        if let Some(n) = self.node.as_mut() {
            n.tick();
        }
        self.drive(out);
    }

    pub fn step(&mut self, m: Message, out: &mut Vec<Output>) {
        if self.blocked() {
            self.inbox.push(Input::Step(Box::new(m)));
            return;
        }
        if let Some(n) = self.node.as_mut() {
            let _ = n.step(m);
        }
        self.drive(out);
    }

    /// Whether a snapshot this member sent reached `peer` (the server's
    /// transport reports the same).
    pub fn report_snapshot(&mut self, peer: u64, delivered: bool, out: &mut Vec<Output>) {
        if self.blocked() {
            self.inbox.push(Input::SnapshotStatus(peer, delivered));
            return;
        }
        if let Some(n) = self.node.as_mut() {
            n.report_snapshot(peer, delivered);
        }
        self.drive(out);
    }

    /// Asks this member to hand leadership to `target`.
    pub fn transfer_leader(&mut self, target: u64, out: &mut Vec<Output>) {
        if self.blocked() {
            self.inbox.push(Input::Transfer(target));
            return;
        }
        let req = self.next_request;
        let Some(node) = self.node.as_mut() else {
            return;
        };
        self.next_request += 1;
        self.waiters.insert(req, Waiter::Transfer);
        node.transfer_leader(req, target);
        self.drive(out);
    }

    /// A lessee's grant or put: proposed; its outcome is observed through
    /// what members apply.
    /// A local write (`Set(consistent=false)`) accepted here: durable in
    /// the member's queue at once, then handed to the core. Returns it as
    /// acknowledged, or `None` when the member is down.
    pub fn accept_local(
        &mut self,
        key: Vec<u8>,
        value: Vec<u8>,
        out: &mut Vec<Output>,
    ) -> Option<LocalWrite> {
        self.node.as_ref()?;
        let context_revision = self.store.state().expect("store state").current_revision;
        if let Ok(Some(seen)) = self.store.key_stamp(&key) {
            self.hlc.observe(rafter_core::hlc::HlcStamp {
                physical_ms: seen.physical_ms,
                logical: seen.logical,
            });
        }
        let stamp = self.hlc.stamp(self.wall_ms);
        let write = LocalWrite {
            member_id: self.id,
            seq: self.next_local_seq,
            key,
            value,
            context_revision,
            hlc_physical_ms: stamp.physical_ms,
            hlc_logical: stamp.logical,
        };
        self.next_local_seq += 1;
        self.local_queue.push(write.clone());
        self.queue_local(write.clone(), out);
        Some(write)
    }

    fn queue_local(&mut self, write: LocalWrite, out: &mut Vec<Output>) {
        if self.blocked() {
            self.inbox.push(Input::QueueLocal(Box::new(write)));
            return;
        }
        if let Some(node) = self.node.as_mut() {
            node.queue_local_writes(vec![write]);
        }
        self.drive(out);
    }

    /// Applied lease changes reach the core as they do on the server: in
    /// order with the ticks it has not taken yet (the server's apply thread
    /// sends them to the Raft loop's queue).
    fn lease_changes(
        &mut self,
        changes: Vec<rafter_core::lease::LeaseChange>,
        out: &mut Vec<Output>,
    ) {
        if self.blocked() {
            self.inbox.push(Input::LeaseChanges(changes));
            return;
        }
        if let Some(node) = self.node.as_mut() {
            node.on_lease_changes(&changes);
        }
        self.drive(out);
    }

    /// The store applied this member's local writes up to `seq`.
    fn local_writes_applied(&mut self, seq: u64) {
        self.local_queue.retain(|w| w.seq > seq);
        if let Some(node) = self.node.as_mut() {
            node.on_local_writes_applied(seq);
        }
    }

    pub fn propose_untracked(&mut self, request: rafter_storage::KvRequest, out: &mut Vec<Output>) {
        if self.blocked() {
            self.inbox.push(Input::Propose(Box::new(request)));
            return;
        }
        self.untracked(out, |node, req| node.propose(req, request));
    }

    /// A keep-alive from lessee `lessee` arrives at this member.
    pub fn lease_renew(&mut self, lessee: usize, id: i64, out: &mut Vec<Output>) {
        if self.blocked() {
            self.inbox.push(Input::Renew(lessee, id));
            return;
        }
        let req = self.next_request;
        let Some(node) = self.node.as_mut() else {
            return;
        };
        self.next_request += 1;
        self.waiters.insert(req, Waiter::Renew(lessee));
        node.lease_renew(req, id);
        self.drive(out);
    }

    /// Client `client` opens session `id` here.
    pub fn session_open(&mut self, client: usize, id: u64, timeout_ms: u64, out: &mut Vec<Output>) {
        if self.blocked() {
            self.inbox.push(Input::SessionOpen(client, id, timeout_ms));
            return;
        }
        let req = self.next_request;
        let Some(node) = self.node.as_mut() else {
            out.push(Output::SessionOpen {
                client,
                id,
                opened: false,
            });
            return;
        };
        self.next_request += 1;
        self.waiters.insert(req, Waiter::SessionOpen(client, id));
        let open = rafter_storage::KvRequest::SessionOpen(SessionOpen {
            session_id: id,
            timeout_ms,
        });
        node.propose(req, open);
        self.drive(out);
    }

    /// A mutation made in a client session arrives here, with its deadline.
    pub fn submit_in_session(
        &mut self,
        op: usize,
        kind: &OpKind,
        tag: ClientTag,
        wait_ticks: u64,
        out: &mut Vec<Output>,
    ) {
        if self.blocked() {
            self.inbox
                .push(Input::SubmitInSession(op, kind.clone(), tag, wait_ticks));
            return;
        }
        let req = self.next_request;
        let Some(node) = self.node.as_mut() else {
            out.push(Output::Session(op, SessionAnswer::NotProposed));
            return;
        };
        self.next_request += 1;
        self.waiters.insert(req, Waiter::Session(op, kind.clone()));
        node.propose_in_session(req, ops::request_for(kind), tag, Wait::Ticks(wait_ticks));
        self.drive(out);
    }

    /// A client asks what became of its session op (session, seq).
    pub fn ask_outcome(
        &mut self,
        op: usize,
        kind: &OpKind,
        session_id: u64,
        seq: u64,
        wait_ticks: u64,
        out: &mut Vec<Output>,
    ) {
        if self.blocked() {
            self.inbox.push(Input::AskOutcome(
                op,
                kind.clone(),
                session_id,
                seq,
                wait_ticks,
            ));
            return;
        }
        let req = self.next_request;
        let Some(node) = self.node.as_mut() else {
            out.push(Output::Session(op, SessionAnswer::Undecided));
            return;
        };
        self.next_request += 1;
        self.waiters.insert(req, Waiter::Outcome(op, kind.clone()));
        node.decide_outcome(req, session_id, seq, Wait::Ticks(wait_ticks));
        self.drive(out);
    }

    /// A client operation arrives at this member.
    pub fn submit(&mut self, op: usize, kind: &OpKind, out: &mut Vec<Output>) {
        if self.blocked() {
            self.inbox.push(Input::Submit(op, kind.clone()));
            return;
        }
        let Some(node) = self.node.as_mut() else {
            out.push(Output::Rejected(op));
            return;
        };
        if kind.is_serializable() {
            out.push(Output::Done(op, ops::read(&self.store, kind)));
            return;
        }
        let req = self.next_request;
        self.next_request += 1;
        self.waiters.insert(req, Waiter::Op(op, kind.clone()));
        if kind.is_read() {
            node.read(req);
        } else {
            node.propose(req, ops::request_for(kind));
        }
        self.drive(out);
    }

    /// The fsync of `epoch` completed: the written log becomes durable and
    /// the cycle that waited for it continues.
    pub fn fsync_done(&mut self, epoch: u64, out: &mut Vec<Output>) {
        if self.fsync != Some(epoch) {
            return;
        }
        self.fsync = None;
        self.unsynced_entries.clear();
        self.durable_log = self.log.state();
        if !self.settings.ack_before_fsync {
            if let Some(n) = self.node.as_mut() {
                n.on_persisted();
            }
        }
        self.drive(out);
        for input in std::mem::take(&mut self.inbox) {
            match input {
                Input::Tick => self.tick(out),
                Input::Step(m) => self.step(*m, out),
                Input::Submit(op, kind) => self.submit(op, &kind, out),
                Input::Transfer(target) => self.transfer_leader(target, out),
                Input::ChangeMembership(change) => self.change_membership(*change, out),
                Input::SnapshotStatus(peer, delivered) => {
                    self.report_snapshot(peer, delivered, out)
                }
                Input::Propose(request) => self.propose_untracked(*request, out),
                Input::QueueLocal(write) => self.queue_local(*write, out),
                Input::LeaseChanges(changes) => self.lease_changes(changes, out),
                Input::Renew(lessee, id) => self.lease_renew(lessee, id, out),
                Input::SessionOpen(client, id, timeout_ms) => {
                    self.session_open(client, id, timeout_ms, out)
                }
                Input::SubmitInSession(op, kind, tag, ticks) => {
                    self.submit_in_session(op, &kind, tag, ticks, out)
                }
                Input::AskOutcome(op, kind, session_id, seq, ticks) => {
                    self.ask_outcome(op, &kind, session_id, seq, ticks, out)
                }
            }
        }
    }

    /// The simulated apply thread: applies everything queued, in order,
    /// and reports progress to the core.
    pub fn apply_queued(&mut self, incarnation: u64, out: &mut Vec<Output>) {
        if incarnation != self.incarnation || self.node.is_none() {
            return;
        }
        while let Some(work) = self.apply_queue.pop_front() {
            match work {
                ApplyWork::Batch(batch) => self.apply(batch, out),
                ApplyWork::Snapshot(snapshot) => {
                    let index = StateMachine::restore(self.store.as_ref(), &snapshot.data)
                        .expect("restore a snapshot");
                    assert_eq!(index, snapshot.get_metadata().index);
                    let state = self.store.state().expect("store state");
                    self.watch
                        .on_store_replaced(state.current_revision, state.compact_revision);
                    let leases = self.store.leases().expect("store leases");
                    let sessions = self.store.sessions_open().expect("store sessions");
                    let members = self.store.member_attributes().expect("store members");
                    let node = self.node.as_mut().expect("up");
                    node.reset_leases(&leases);
                    node.on_sessions_open(sessions);
                    node.reset_membership(members);
                    let local_seq = self
                        .store
                        .local_applied_seq(self.id)
                        .expect("store local writes");
                    self.local_writes_applied(local_seq);
                    // A restore is durable, as on the server.
                    self.durable_store = Some((snapshot.data.to_vec(), index));
                    let node = self.node.as_mut().expect("up");
                    node.on_snapshot_installed(index);
                }
            }
        }
        self.watch_sync();
        self.drive(out);
    }

    /// Applies one batch with the core's apply code, one entry at a time so
    /// every entry's revision is checked.
    fn apply(&mut self, batch: ApplyBatch, out: &mut Vec<Output>) {
        for (entry, reply_to) in batch.entries.into_iter().zip(batch.reply_to) {
            let one = ApplyBatch {
                entries: vec![entry],
                reply_to: vec![reply_to],
            };
            let applied = apply_batch(self.store.as_ref(), &one).expect("in-memory apply");
            let feed = &applied.watch;
            self.watch
                .on_applied(&feed.events, feed.current_rev, feed.compact_rev);
            if !applied.leases.is_empty() {
                self.lease_changes(applied.leases.clone(), out);
                out.push(Output::LeaseChanges(applied.leases.clone()));
            }
            let e = &one.entries[0];
            let revision = self.store.state().expect("state").current_revision;
            out.push(Output::Applied {
                index: e.index,
                term: e.term,
                data_crc: crc32fast::hash(&e.data),
                revision,
            });
            // Only a broken core names a proposal for an entry that does
            // not carry it; its client hears success, as a buggy server
            // would tell it.
            for req in applied.unanswered {
                if let Some(Waiter::Op(op, kind)) = self.waiters.remove(&req) {
                    out.push(Output::Done(op, ops::predicted(&kind)));
                }
            }
            if let Some(open) = applied.sessions_open {
                self.node.as_mut().expect("up").on_sessions_open(open);
            }
            for &(member, seq) in &applied.local_dots {
                if member == self.id {
                    self.local_writes_applied(seq);
                }
            }
            for (req, result) in applied.replies {
                match self.waiters.remove(&req) {
                    Some(Waiter::Op(op, kind)) => {
                        out.push(Output::Done(op, ops::result_of(&kind, result)))
                    }
                    Some(Waiter::Session(op, kind) | Waiter::Outcome(op, kind)) => {
                        out.push(Output::Session(op, SessionAnswer::of(&kind, result)))
                    }
                    Some(Waiter::SessionOpen(client, id)) => out.push(Output::SessionOpen {
                        client,
                        id,
                        opened: matches!(
                            result,
                            Ok(KvResponse::SessionOpened { .. }) | Err(MvccError::SessionExists)
                        ),
                    }),
                    _ => {}
                }
            }
        }
        let durable = self.durable_store.as_ref().map_or(0, |(_, i)| *i);
        let applied = self.applied();
        let node = self.node.as_mut().expect("up");
        node.on_applied(applied, durable.min(applied));
    }

    /// The store's periodic durable commit.
    pub fn sync_store(&mut self, out: &mut Vec<Output>) {
        if self.blocked() || self.node.is_none() {
            return;
        }
        let image = self.store.snapshot().expect("store image");
        let index = image.applied_index;
        self.durable_store = Some((image.data, index));
        let node = self.node.as_mut().expect("up");
        node.on_applied(index, index);
        self.drive(out);
    }

    /// Carries out the core's actions until it has none left.
    fn drive(&mut self, out: &mut Vec<Output>) {
        loop {
            let Some(node) = self.node.as_mut() else {
                return;
            };
            if self.fsync.is_some() && !self.settings.ack_before_fsync {
                return;
            }
            let actions = node.take_actions();
            if actions.is_empty() {
                return;
            }
            for action in actions {
                self.carry_out(action, out);
            }
            if self.removed {
                out.push(Output::Note("removed from the cluster: stops".into()));
                self.stop_removed();
                return;
            }
        }
    }

    fn carry_out(&mut self, action: Action, out: &mut Vec<Output>) {
        match action {
            Action::Send(msgs) => out.extend(msgs.into_iter().map(Output::Send)),
            Action::Persist(write) => {
                {
                    let mut log = self.log.write();
                    if let Some(meta) = &write.snapshot {
                        // The server writes a snapshot's truncation point
                        // durably at once.
                        log.apply_snapshot(meta);
                        self.durable_log.apply_snapshot(meta);
                    }
                    log.append(&write.entries);
                    if let Some(first) = write.entries.first() {
                        self.unsynced_entries.retain(|e| e.index < first.index);
                        self.unsynced_entries.extend_from_slice(&write.entries);
                    }
                    if let Some(hs) = &write.hard_state {
                        log.hard_state = hs.clone();
                    }
                }
                let node = self.node.as_mut().expect("up");
                if !write.needs_fsync() {
                    node.on_persisted();
                    return;
                }
                self.fsync_epoch += 1;
                self.fsync = Some(self.fsync_epoch);
                out.push(Output::Fsync(self.fsync_epoch));
                if self.settings.ack_before_fsync {
                    node.on_persisted();
                }
            }
            Action::MembershipChanged(records) => {
                let members: Vec<String> = records
                    .iter()
                    .map(|r| {
                        let kind = match (r.removed, r.is_learner) {
                            (true, _) => "removed",
                            (false, true) => "learner",
                            (false, false) => "voter",
                        };
                        format!("m{} {kind}", r.member_id)
                    })
                    .collect();
                out.push(Output::Note(format!("membership: {}", members.join(", "))));
                if records.iter().any(|r| r.member_id == self.id && r.removed) {
                    // It applied its own removal: it stops once this turn
                    // is carried out, as the server's Raft loop does.
                    self.removed = true;
                }
            }
            Action::Apply(batch) => {
                self.apply_queue.push_back(ApplyWork::Batch(batch));
                out.push(Output::ApplyLater(self.incarnation));
            }
            Action::InstallSnapshot(snapshot) => {
                let meta = snapshot.get_metadata();
                out.push(Output::Note(format!(
                    "installs snapshot at index {} term {}",
                    meta.index, meta.term
                )));
                self.apply_queue.push_back(ApplyWork::Snapshot(snapshot));
                out.push(Output::ApplyLater(self.incarnation));
            }
            Action::Respond(req, outcome) => match (self.waiters.remove(&req), outcome) {
                (None, _) | (Some(Waiter::Untracked), _) => {}
                (Some(Waiter::Renew(lessee)), outcome) => {
                    let result = match outcome {
                        Ok(Granted::LeaseRenewed { ttl_s }) => Ok(ttl_s),
                        Ok(other) => panic!("a keep-alive got {other:?}"),
                        Err(e) => Err(e),
                    };
                    out.push(Output::Renewed { lessee, result });
                }
                (Some(Waiter::SessionOpen(client, id)), _) => {
                    // Answered without applying: refused or timed out.
                    out.push(Output::SessionOpen {
                        client,
                        id,
                        opened: false,
                    });
                }
                (Some(Waiter::Session(op, _)), outcome) => {
                    let answer = match outcome {
                        Err(RequestError::NoLeader) => SessionAnswer::NotProposed,
                        _ => SessionAnswer::Undecided,
                    };
                    out.push(Output::Session(op, answer));
                }
                (Some(Waiter::Outcome(op, _)), _) => {
                    out.push(Output::Session(op, SessionAnswer::Undecided));
                }
                (Some(Waiter::Transfer), outcome) => {
                    out.push(Output::Transferred(outcome.map(|_| ())));
                }
                (Some(Waiter::Op(op, kind)), Ok(Granted::Read { .. })) => {
                    out.push(Output::Done(op, ops::read(&self.store, &kind)));
                }
                (Some(Waiter::Op(op, _)), Err(RequestError::Timeout)) => {
                    out.push(Output::TimedOut(op));
                }
                (Some(Waiter::Op(op, _)), Err(_)) => out.push(Output::Rejected(op)),
                (Some(Waiter::Op(op, kind)), Ok(other)) => {
                    panic!("op {op} ({kind:?}) got a grant of the wrong kind: {other:?}")
                }
            },
            Action::CompactLog { compact_to } => {
                out.push(Output::Note(format!(
                    "compacts its log before {compact_to}"
                )));
                self.log.write().compact_to(compact_to);
                self.durable_log.compact_to(compact_to);
            }
        }
    }
}
