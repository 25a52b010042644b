//! The deterministic cluster simulator: N members of the real core and store
//! in one thread, a simulated network and clock, crashes and restarts, and
//! random clients, all derived from one u64 seed. A run produces a trace
//! (identical for identical seeds), the client history for the
//! linearizability checker, and any invariant violations seen on the way.

pub mod history;
pub mod invariants;
pub mod lessees;
pub mod local_writers;
pub mod log;
pub mod member;
pub mod net;
pub mod ops;
pub mod revision_order;
pub mod rng;
pub mod session_clients;
pub mod watchers;

use std::collections::BTreeMap;
use std::fmt::Write as _;

use raft::eraftpb::{Message, MessageType};

use history::{HistoryOp, OpKind, OpResult};
use invariants::Invariants;
use lessees::Lessee;
use member::{MemberSettings, Output, SessionAnswer, SimMember};
use net::{NetConfig, Network};
use rafter_core::lease::LeaseChange;
use rafter_core::RequestError;
use rng::Rng;
use session_clients::{SessionClient, SessionOp};
use watchers::{Connection, SimWatcher};

/// One run's settings.
#[derive(Debug, Clone)]
pub struct SimConfig {
    pub seed: u64,
    pub members: usize,
    pub clients: usize,
    /// The first this many clients make their mutations in a client
    /// session (exactly-once, definite outcomes).
    pub session_clients: usize,
    /// Sessions expire after this much cluster time without an op.
    pub session_timeout_ms: u64,
    /// Watch clients (each keeps one watch open and checks its events).
    pub watchers: usize,
    /// Lease clients (each grants a lease and keeps it alive or abandons it).
    pub lessees: usize,
    /// Local writers (`Set(consistent=false)` on random members). Their
    /// writes are outside the client history, whose model counts
    /// revisions exactly: runs with both (`mixed_config`) check the
    /// clients by the store's revision order instead (`revision_order`)
    /// and leave transactions out of the workload.
    pub local_writers: usize,
    /// Conflict policies the run sets through the log at its start: key
    /// `k{i}` gets the i-th (cycling), so local writes concurrent with
    /// client writes meet every policy.
    pub conflict_policies: Vec<rafter_proto::rafterpb::ConflictPolicy>,
    /// Lessees attach a key to their lease. Those writes are outside the
    /// client history, whose model counts revisions exactly, so runs with
    /// KV clients leave this off (`lease_keys_config` turns it on with no
    /// KV clients).
    pub lease_keys: bool,
    pub keys: u8,
    /// Virtual time with faults and client load.
    pub run_ms: u64,
    /// Virtual time after healing everything, for the cluster to converge.
    pub settle_ms: u64,
    pub tick_ms: u64,
    pub election_tick: usize,
    pub client_timeout_ms: u64,
    pub net: NetConfig,
    pub faults: bool,
    pub min_fsync_ms: u64,
    pub max_fsync_ms: u64,
    /// Delay before the apply thread works off its queue.
    pub max_apply_delay_ms: u64,
    /// Period of each member's durable store commit.
    pub store_sync_ms: u64,
    /// Log compaction threshold (small, so compaction and snapshot installs
    /// happen in every run).
    pub snapshot_count: u64,
    /// Test-only shell bug (`fault-ack-before-fsync`).
    pub ack_before_fsync: bool,
    /// Members that join during the run: each is added as a learner,
    /// started, promoted, and then a founding member (at random, perhaps
    /// the leader) is removed, under the same faults.
    pub spare_members: usize,
}

impl SimConfig {
    /// A run whose lessees attach keys to their leases, with watchers and
    /// no KV clients: checks that keys go with their lease and that
    /// watchers see them go.
    pub fn lease_keys_config(seed: u64) -> Self {
        SimConfig {
            clients: 0,
            lessees: 5,
            lease_keys: true,
            ..SimConfig::new(seed)
        }
    }

    /// A run of local writers on random members (no KV clients), with
    /// watchers and lessees: every acknowledged local write must apply,
    /// once, in its member's order.
    pub fn local_writes_config(seed: u64) -> Self {
        SimConfig {
            clients: 0,
            local_writers: 3,
            ..SimConfig::new(seed)
        }
    }

    /// Local writers and consistent KV clients on the same keys, each key
    /// under another conflict policy: consistent operations must be
    /// linearizable in the store's revision order, and every acknowledged
    /// local write must take effect once, after it was accepted, or be in
    /// the conflict log as not applied, as its key's policy decides.
    pub fn mixed_config(seed: u64) -> Self {
        use rafter_proto::rafterpb::ConflictPolicy;
        SimConfig {
            clients: 3,
            local_writers: 2,
            conflict_policies: vec![
                ConflictPolicy::CommitOrder,
                ConflictPolicy::LastWriterWins,
                ConflictPolicy::RejectIfChanged,
            ],
            ..SimConfig::new(seed)
        }
    }

    /// Membership changes under faults: a member is added as a learner,
    /// joins by snapshot, is promoted, and a founding member is removed,
    /// while clients, watchers and lessees run.
    pub fn membership_config(seed: u64) -> Self {
        SimConfig {
            spare_members: 1,
            ..SimConfig::new(seed)
        }
    }

    /// Consistent clients and local writers share the keys.
    pub fn is_mixed(&self) -> bool {
        self.clients > 0 && self.local_writers > 0
    }

    pub fn new(seed: u64) -> Self {
        SimConfig {
            seed,
            members: 3,
            clients: 4,
            session_clients: 2,
            session_timeout_ms: 1_500,
            watchers: 3,
            lessees: 3,
            local_writers: 0,
            conflict_policies: Vec::new(),
            lease_keys: false,
            keys: 3,
            run_ms: 4_000,
            settle_ms: 3_000,
            tick_ms: 10,
            election_tick: 10,
            client_timeout_ms: 1_000,
            net: NetConfig {
                min_delay_ms: 1,
                max_delay_ms: 8,
                drop_per_mille: 20,
                dup_per_mille: 10,
            },
            faults: true,
            min_fsync_ms: 1,
            max_fsync_ms: 20,
            max_apply_delay_ms: 3,
            store_sync_ms: 50,
            snapshot_count: 16,
            ack_before_fsync: rafter_core::fault::active(rafter_core::fault::Fault::AckBeforeFsync),
            spare_members: 0,
        }
    }
}

/// What a run produced.
#[derive(Debug)]
pub struct Outcome {
    pub seed: u64,
    pub trace: String,
    pub history: Vec<HistoryOp>,
    pub violations: Vec<String>,
    /// The history was checked in the store's revision order (mixed runs:
    /// see `revision_order`), not by the model checker.
    pub checked_by_revision: bool,
}

#[derive(Debug)]
enum Event {
    Tick(usize),
    Deliver(Message),
    ClientIssue(usize),
    ClientTimeout(usize),
    Crash(usize),
    Restart(usize),
    FsyncDone(usize, u64),
    /// The member's apply thread works off its queue (in that incarnation).
    ApplyDone(usize, u64),
    StoreSync(usize),
    /// Tell the sender of a snapshot whether it arrived.
    SnapshotStatus {
        from: u64,
        to: u64,
        delivered: bool,
    },
    /// Ask the leader (if any) to hand leadership to this member.
    Transfer(usize),
    /// Cut every link of the current leader (if any) for this long: it
    /// keeps taking proposals it cannot commit while the others elect a
    /// new leader that overwrites them.
    IsolateLeader(u64),
    Cut(u64, u64),
    Heal(u64, u64),
    /// A watcher reads its stream (or reconnects when its member is gone).
    WatchPoll(usize),
    /// A local writer writes through a random member.
    LocalWrite(usize),
    /// A member starts an online defragmentation (takes its copy).
    DefragBegin(usize),
    /// It catches up and swaps the copy in.
    DefragFinish(usize),
    /// Propose the run's conflict policies (again, until applied).
    SetPolicies,
    /// A lessee's turn: grant, attach or keep alive.
    LeaseTurn(usize),
    /// A session client asks what became of its op.
    AskOutcome(usize),
    /// A copy of a session op sent again with its tag (a retry racing the
    /// question about its outcome).
    Resend(usize, OpKind, rafter_proto::rafterpb::ClientTag),
    /// The next step of the run's membership changes (add, start,
    /// promote, remove), retried until each is applied.
    MembershipStep,
}

struct Sim {
    cfg: SimConfig,
    now_ms: u64,
    seq: u64,
    queue: BTreeMap<(u64, u64), Event>,
    rng: Rng,
    net: Network,
    members: Vec<SimMember>,
    /// Per-member clock skew: its tick period in ms.
    tick_period_ms: Vec<u64>,
    history: Vec<HistoryOp>,
    /// Op each client has in flight.
    in_flight: Vec<Option<usize>>,
    /// Member each in-flight op was sent to.
    op_member: BTreeMap<usize, usize>,
    next_value: u64,
    invariants: Invariants,
    trace: String,
    load_on: bool,
    watchers: Vec<SimWatcher>,
    lessees: Vec<Lessee>,
    session_clients: Vec<SessionClient>,
    /// Session ops in flight, by op.
    session_ops: BTreeMap<usize, SessionOp>,
    local_acks: local_writers::LocalAcks,
    /// The founding member the run removes once its new member is a voter.
    removal_victim: usize,
}

/// Runs one simulation.
pub fn run(cfg: SimConfig) -> Outcome {
    let mut rng = Rng::new(cfg.seed);
    let ids: Vec<u64> = (1..=cfg.members as u64).collect();
    let settings = MemberSettings {
        election_tick: cfg.election_tick,
        snapshot_count: cfg.snapshot_count,
        request_timeout_ticks: 2 * cfg.client_timeout_ms / cfg.tick_ms,
        ack_before_fsync: cfg.ack_before_fsync,
    };
    let mut members: Vec<SimMember> = ids
        .iter()
        .map(|id| SimMember::new(*id, &ids, settings.clone(), rng.next_u64()))
        .collect();
    for spare in 0..cfg.spare_members as u64 {
        let id = cfg.members as u64 + 1 + spare;
        members.push(SimMember::spare(id, settings.clone(), rng.next_u64()));
    }
    let removal_victim = rng.below(cfg.members as u64) as usize;
    let watchers = (0..cfg.watchers)
        .map(|w| SimWatcher::random(w, &mut rng, cfg.keys))
        .collect();
    let lessees = (0..cfg.lessees)
        .map(|l| Lessee::random(l, &mut rng, cfg.run_ms, cfg.lease_keys))
        .collect();
    let tick_period_ms = (0..cfg.members + cfg.spare_members)
        .map(|_| rng.between(cfg.tick_ms * 9 / 10, cfg.tick_ms * 11 / 10))
        .collect();
    let cfg_session_clients = cfg.session_clients.min(cfg.clients);
    let mut sim = Sim {
        in_flight: vec![None; cfg.clients],
        cfg,
        now_ms: 0,
        seq: 0,
        queue: BTreeMap::new(),
        rng,
        net: Network::default(),
        members,
        tick_period_ms,
        history: Vec::new(),
        op_member: BTreeMap::new(),
        next_value: 1,
        invariants: Invariants::default(),
        trace: String::new(),
        load_on: true,
        watchers,
        lessees,
        session_clients: (0..cfg_session_clients)
            .map(|_| SessionClient::default())
            .collect(),
        session_ops: BTreeMap::new(),
        local_acks: local_writers::LocalAcks::default(),
        removal_victim,
    };
    // raft-rs asserts its own invariants (e.g. a commit index beyond the
    // log): such a panic inside a member is a found bug, not a crash of the
    // checker, so it is reported as a violation with the trace so far.
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| sim.run()));
    if let Err(panic) = result {
        let msg = panic
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
            .unwrap_or_else(|| "unknown panic".to_string());
        sim.invariants.violate(format!(
            "safety: a member's Raft invariant failed at {} ms: {msg}",
            sim.now_ms
        ));
    }
    Outcome {
        seed: sim.cfg.seed,
        trace: sim.trace,
        checked_by_revision: sim.cfg.is_mixed(),
        history: sim.history,
        violations: sim.invariants.violations,
    }
}

impl Sim {
    fn schedule(&mut self, at_ms: u64, e: Event) {
        self.seq += 1;
        self.queue.insert((at_ms, self.seq), e);
    }

    fn run(&mut self) {
        for m in 0..self.members.len() {
            let first = self.rng.between(1, self.tick_period_ms[m]);
            self.schedule(first, Event::Tick(m));
            let sync = self.rng.between(1, self.cfg.store_sync_ms);
            self.schedule(sync, Event::StoreSync(m));
        }
        for c in 0..self.cfg.clients {
            let at = self.rng.between(50, 300);
            self.schedule(at, Event::ClientIssue(c));
        }
        for w in 0..self.watchers.len() {
            let at = self.rng.between(1, 300);
            self.schedule(at, Event::WatchPoll(w));
        }
        for l in 0..self.lessees.len() {
            let at = self.rng.between(1, 300);
            self.schedule(at, Event::LeaseTurn(l));
        }
        for w in 0..self.cfg.local_writers {
            let at = self.rng.between(1, 300);
            self.schedule(at, Event::LocalWrite(w));
        }
        if !self.cfg.conflict_policies.is_empty() {
            let at = self.rng.between(1, 100);
            self.schedule(at, Event::SetPolicies);
        }
        if self.cfg.faults {
            self.schedule_faults();
            self.schedule_defrags();
        }
        if self.cfg.spare_members > 0 {
            let at = self.rng.between(300, 1200);
            self.schedule(at, Event::MembershipStep);
        }
        let end_ms = self.cfg.run_ms + self.cfg.settle_ms;
        let mut healed = false;
        while let Some((&(at, seq), _)) = self.queue.iter().next() {
            if at > end_ms {
                break;
            }
            if !healed && at >= self.cfg.run_ms {
                healed = true;
                self.heal_everything();
            }
            let event = self.queue.remove(&(at, seq)).expect("just seen");
            self.now_ms = at;
            self.handle(event);
            self.invariants.check_leaders(self.now_ms, &self.members);
        }
        self.finish();
    }

    /// Online defragmentations at random times: each takes its copy, lets
    /// the member go on applying for a while, then catches up and swaps.
    fn schedule_defrags(&mut self) {
        let n = self.members.len() as u64;
        // A defragmentation costs the simulator a new in-memory database
        // and a copy: one or two per run keep the campaign's time.
        let mut t = 100;
        while t < self.cfg.run_ms {
            t += self.rng.between(1500, 3500);
            let m = self.rng.below(n) as usize;
            self.schedule(t, Event::DefragBegin(m));
            let finish = t + self.rng.between(5, 300);
            self.schedule(finish, Event::DefragFinish(m));
        }
    }

    /// Crashes, restarts and link cuts at random times during the run.
    fn schedule_faults(&mut self) {
        let n = self.members.len();
        let mut t = 200;
        while t < self.cfg.run_ms {
            t += self.rng.between(100, 600);
            match self.rng.below(5) {
                4 => {
                    let for_ms = self.rng.between(150, 700);
                    self.schedule(t, Event::IsolateLeader(for_ms));
                }
                3 => {
                    let to = self.rng.below(n as u64) as usize;
                    self.schedule(t, Event::Transfer(to));
                }
                0 => {
                    let m = self.rng.below(n as u64) as usize;
                    let back = t + self.rng.between(50, 800);
                    self.schedule(t, Event::Crash(m));
                    self.schedule(back, Event::Restart(m));
                }
                _ => {
                    // Swizzle: cut a random subset of links one by one,
                    // then restore them in random order.
                    let mut links = Vec::new();
                    for a in 1..=n as u64 {
                        for b in 1..=n as u64 {
                            if a != b && self.rng.chance(400) {
                                links.push((a, b));
                            }
                        }
                    }
                    let mut at = t;
                    for &(a, b) in &links {
                        at += self.rng.between(5, 60);
                        self.schedule(at, Event::Cut(a, b));
                    }
                    let mut order = links.clone();
                    for i in (1..order.len()).rev() {
                        let j = self.rng.below(i as u64 + 1) as usize;
                        order.swap(i, j);
                    }
                    at += self.rng.between(100, 700);
                    for (a, b) in order {
                        at += self.rng.between(5, 80);
                        self.schedule(at, Event::Heal(a, b));
                    }
                }
            }
        }
    }

    fn heal_everything(&mut self) {
        for (a, b) in self.net.cut_links() {
            self.net.heal(a, b);
        }
        for m in 0..self.members.len() {
            if self.members[m].may_restart() {
                self.members[m].restart();
                let _ = writeln!(self.trace, "{} restart m{} (settle)", self.now_ms, m + 1);
            }
        }
        self.load_on = false;
        let _ = writeln!(self.trace, "{} healed; settling", self.now_ms);
    }

    fn handle(&mut self, event: Event) {
        let mut out = Vec::new();
        match event {
            Event::WatchPoll(w) => {
                self.watch_poll(w);
                // Mostly prompt readers, sometimes a long stall (the
                // stream's outbox fills and its watch falls behind).
                let pause = if self.rng.chance(100) {
                    self.rng.between(100, 400)
                } else {
                    self.rng.between(1, 25)
                };
                self.schedule(self.now_ms + pause, Event::WatchPoll(w));
            }
            Event::SetPolicies => {
                if !self.policies_applied() {
                    self.propose_policies();
                    self.schedule(self.now_ms + 300, Event::SetPolicies);
                }
            }
            Event::LocalWrite(w) => {
                if self.load_on {
                    self.local_write(w);
                    let next = self.now_ms + self.rng.between(20, 200);
                    self.schedule(next, Event::LocalWrite(w));
                }
            }
            Event::LeaseTurn(l) => {
                self.lease_turn(l);
                let next = self.now_ms + self.lessees[l].turn_ms();
                self.schedule(next, Event::LeaseTurn(l));
            }
            Event::Tick(m) => {
                self.members[m].watch_sync();
                self.members[m].set_wall_clock_ms(self.now_ms);
                self.members[m].tick(&mut out);
                self.schedule(self.now_ms + self.tick_period_ms[m], Event::Tick(m));
                self.process(m, out);
            }
            Event::Deliver(msg) => {
                let to = (msg.to - 1) as usize;
                let is_snapshot = msg.get_msg_type() == MessageType::MsgSnapshot;
                if self.net.is_cut(msg.from, msg.to) {
                    if is_snapshot {
                        self.snapshot_status(msg.from, msg.to, false);
                    }
                    return;
                }
                let from = (msg.from - 1) as usize;
                if self.members[to]
                    .membership()
                    .is_some_and(|ms| ms.is_removed(msg.from))
                {
                    // The server's peers refuse a removed member's
                    // messages, and it stops when told.
                    if !self.members[from].is_removed() {
                        let _ = writeln!(
                            self.trace,
                            "{} m{} refused by m{} as removed: stops",
                            self.now_ms, msg.from, msg.to
                        );
                        self.members[from].stop_removed();
                    }
                    if is_snapshot {
                        self.snapshot_status(msg.from, msg.to, false);
                    }
                    return;
                }
                if is_snapshot {
                    self.snapshot_status(msg.from, msg.to, true);
                }
                self.members[to].step(msg, &mut out);
                self.process(to, out);
            }
            Event::ClientIssue(c) => self.issue(c),
            Event::ClientTimeout(op) => {
                if self.history[op].return_ms.is_none()
                    && self.in_flight[self.history[op].client] == Some(op)
                {
                    self.lose(op);
                }
            }
            Event::AskOutcome(op) => self.ask_outcome(op),
            Event::Resend(op, kind, tag) => self.resend(op, &kind, tag),
            Event::FsyncDone(m, epoch) => {
                self.members[m].fsync_done(epoch, &mut out);
                self.process(m, out);
            }
            Event::ApplyDone(m, incarnation) => {
                self.members[m].apply_queued(incarnation, &mut out);
                self.process(m, out);
            }
            Event::SnapshotStatus {
                from,
                to,
                delivered,
            } => {
                let m = (from - 1) as usize;
                self.members[m].report_snapshot(to, delivered, &mut out);
                self.process(m, out);
            }
            Event::StoreSync(m) => {
                self.members[m].sync_store(&mut out);
                self.schedule(self.now_ms + self.cfg.store_sync_ms, Event::StoreSync(m));
                self.process(m, out);
            }
            Event::IsolateLeader(for_ms) => {
                let Some(leader) = self.members.iter().position(|m| m.is_leader()) else {
                    return;
                };
                if !self.load_on {
                    return;
                }
                let l = leader as u64 + 1;
                let _ = writeln!(
                    self.trace,
                    "{} isolate leader m{l} for {for_ms} ms",
                    self.now_ms
                );
                for b in 1..=self.members.len() as u64 {
                    if b != l {
                        for (from, to) in [(l, b), (b, l)] {
                            self.net.cut(from, to);
                            let at = self.now_ms + for_ms + self.rng.below(20);
                            self.schedule(at, Event::Heal(from, to));
                        }
                    }
                }
            }
            Event::Transfer(to) => {
                let Some(leader) = self.members.iter().position(|m| m.is_leader()) else {
                    return;
                };
                if leader == to || !self.load_on {
                    return;
                }
                let _ = writeln!(
                    self.trace,
                    "{} transfer leadership m{} -> m{}",
                    self.now_ms,
                    leader + 1,
                    to + 1
                );
                self.members[leader].transfer_leader(to as u64 + 1, &mut out);
                self.process(leader, out);
            }
            Event::Crash(m) => {
                if self.members[m].is_up() && self.load_on {
                    let torn_keep = self.rng.below(3) as usize;
                    let _ = writeln!(
                        self.trace,
                        "{} crash m{} (torn tail keeps {torn_keep})",
                        self.now_ms,
                        m + 1
                    );
                    for op in self.members[m].crash(torn_keep) {
                        if self.in_flight[self.history[op].client] == Some(op) {
                            self.lose(op);
                        }
                    }
                }
            }
            Event::DefragBegin(m) => {
                if let Some(what) = self.members[m].defrag_begin() {
                    let _ = writeln!(self.trace, "{} m{} {what}", self.now_ms, m + 1);
                }
            }
            Event::DefragFinish(m) => {
                if let Some(what) = self.members[m].defrag_finish() {
                    let _ = writeln!(self.trace, "{} m{} {what}", self.now_ms, m + 1);
                }
            }
            Event::MembershipStep => self.membership_step(),
            Event::Restart(m) => {
                if self.members[m].may_restart() {
                    let _ = writeln!(self.trace, "{} restart m{}", self.now_ms, m + 1);
                    self.members[m].restart();
                }
            }
            Event::Cut(_, _) if !self.load_on => {}
            Event::Cut(a, b) => {
                let _ = writeln!(self.trace, "{} cut {a}->{b}", self.now_ms);
                self.net.cut(a, b);
            }
            Event::Heal(a, b) => {
                let _ = writeln!(self.trace, "{} heal {a}->{b}", self.now_ms);
                self.net.heal(a, b);
            }
        }
    }

    fn process(&mut self, m: usize, out: Vec<Output>) {
        for o in out {
            match o {
                Output::Send(msg) => {
                    let deliveries =
                        self.net
                            .deliveries(&self.cfg.net, &mut self.rng, &msg, self.now_ms);
                    if deliveries.is_empty() && msg.get_msg_type() == MessageType::MsgSnapshot {
                        self.snapshot_status(msg.from, msg.to, false);
                    }
                    for at in deliveries {
                        self.schedule(at, Event::Deliver(msg.clone()));
                    }
                }
                Output::Done(op, result) => self.complete(op, Some(result)),
                Output::SessionOpen { client, id, opened } => {
                    let _ = writeln!(
                        self.trace,
                        "{} c{client} session {id:#x} opened: {opened}",
                        self.now_ms
                    );
                    if opened {
                        self.session_clients[client].opened(id);
                    }
                }
                Output::Session(op, answer) => self.session_answer(op, answer),
                Output::Rejected(op) => self.reject(op),
                Output::TimedOut(op) => {
                    let client = self.history[op].client;
                    if self.in_flight[client] == Some(op) {
                        self.give_up(op);
                    }
                }
                Output::ApplyLater(incarnation) => {
                    let at = self.now_ms + self.rng.below(self.cfg.max_apply_delay_ms + 1);
                    self.schedule(at, Event::ApplyDone(m, incarnation));
                }
                Output::Note(note) => {
                    let _ = writeln!(self.trace, "{} m{} {note}", self.now_ms, m + 1);
                }
                Output::Transferred(result) => {
                    let _ = writeln!(
                        self.trace,
                        "{} transfer at m{} finished: {result:?}",
                        self.now_ms,
                        m + 1
                    );
                }
                Output::Fsync(epoch) => {
                    let at = self.now_ms
                        + self
                            .rng
                            .between(self.cfg.min_fsync_ms, self.cfg.max_fsync_ms);
                    self.schedule(at, Event::FsyncDone(m, epoch));
                }
                Output::LeaseChanges(changes) => {
                    for change in changes {
                        let (id, revoked) = match change {
                            LeaseChange::Granted { id, .. } => (id, false),
                            LeaseChange::Revoked { id } => (id, true),
                            LeaseChange::Checkpointed { .. } => continue,
                        };
                        let now = self.now_ms;
                        if let Some(l) = self.lessees.iter_mut().find(|l| l.id == id) {
                            let at = if revoked {
                                &mut l.revoked_at_ms
                            } else {
                                &mut l.granted_at_ms
                            };
                            if at.is_none() {
                                let _ = writeln!(
                                    self.trace,
                                    "{now} lease {id} {} (first applied at m{})",
                                    if revoked { "revoked" } else { "granted" },
                                    m + 1
                                );
                                *at = Some(now);
                            }
                        }
                    }
                }
                Output::Renewed { lessee, result } => match result {
                    Ok(ttl) => {
                        let _ = writeln!(
                            self.trace,
                            "{} lease {} keep-alive answered by m{}: {ttl:?}",
                            self.now_ms,
                            self.lessees[lessee].id,
                            m + 1
                        );
                        self.lessees[lessee].renewed(ttl)
                    }
                    Err(RequestError::NotLeader) => {
                        // The server forwards a keep-alive to the leader.
                        let from = m as u64 + 1;
                        let leader = self.members.iter().position(|x| x.is_leader());
                        if let Some(leader) = leader {
                            if !self.net.is_cut(from, leader as u64 + 1) {
                                let id = self.lessees[lessee].id;
                                let mut more = Vec::new();
                                self.members[leader].lease_renew(lessee, id, &mut more);
                                self.process(leader, more);
                            }
                        }
                    }
                    Err(_) => {}
                },
                Output::Applied {
                    index,
                    term,
                    data_crc,
                    revision,
                } => {
                    self.invariants.applied(m, index, term, data_crc, revision);
                }
            }
        }
    }

    /// The run's membership changes, one at a time through the leader:
    /// add the spare as a learner, start it once added, promote it once it
    /// is a learner (the leader refuses while it is behind), then remove
    /// the chosen founding member. Each is proposed again until the
    /// leader's membership shows it (a proposal may be lost to a fault).
    /// The removed member stops when it applies its removal or when a peer
    /// refuses its messages.
    fn membership_step(&mut self) {
        use rafter_proto::rafterpb::membership_change::Kind;
        use rafter_proto::rafterpb::{MemberAttributes, MembershipChange};
        if !self.load_on {
            return;
        }
        let again = self.now_ms + self.rng.between(100, 400);
        let Some(leader) = self.members.iter().position(|m| m.is_leader()) else {
            self.schedule(again, Event::MembershipStep);
            return;
        };
        let membership = self.members[leader].membership().expect("the leader is up");
        let spare = self.cfg.members;
        let spare_id = spare as u64 + 1;
        let victim_id = self.removal_victim as u64 + 1;
        let change = |kind: Kind, id: u64, learner: bool| MembershipChange {
            kind: kind as i32,
            members: vec![MemberAttributes {
                member_id: id,
                peer_urls: if kind == Kind::Add {
                    vec![member::sim_peer_url(id)]
                } else {
                    vec![]
                },
                is_learner: learner,
                ..Default::default()
            }],
        };
        let step = match membership.get(spare_id) {
            None => Some(change(Kind::Add, spare_id, true)),
            Some(m) if m.is_learner => {
                if !self.members[spare].was_started() {
                    let _ = writeln!(self.trace, "{} start m{spare_id} (joins)", self.now_ms);
                    self.members[spare].start_joining();
                }
                Some(change(Kind::Promote, spare_id, false))
            }
            Some(_) if !membership.is_removed(victim_id) => {
                Some(change(Kind::Remove, victim_id, false))
            }
            Some(_) => None,
        };
        if let Some(change) = step {
            let _ = writeln!(
                self.trace,
                "{} membership change at m{}: {:?} m{}",
                self.now_ms,
                leader + 1,
                Kind::try_from(change.kind).unwrap_or(Kind::Bootstrap),
                change.members[0].member_id
            );
            let mut out = Vec::new();
            self.members[leader].change_membership(change, &mut out);
            self.process(leader, out);
            self.schedule(again, Event::MembershipStep);
        }
    }

    /// Every running member's raft-rs configuration is the one its
    /// recorded membership implies, and all members agree on it.
    fn check_membership(&mut self) {
        let mut seen = None;
        for (i, m) in self.members.iter().enumerate() {
            let (Some(membership), Some(raft)) = (m.membership(), m.conf_state()) else {
                continue;
            };
            if membership.is_empty() {
                continue;
            }
            let mut recorded = membership.conf_state();
            let mut actual = raft;
            for cs in [&mut recorded, &mut actual] {
                cs.voters.sort_unstable();
                cs.learners.sort_unstable();
            }
            if recorded.voters != actual.voters || recorded.learners != actual.learners {
                self.invariants.violate(format!(
                    "safety: m{}'s raft configuration (voters {:?}, learners {:?}) is not its recorded membership (voters {:?}, learners {:?})",
                    i + 1,
                    actual.voters,
                    actual.learners,
                    recorded.voters,
                    recorded.learners
                ));
            }
            match &seen {
                None => seen = Some((i, recorded)),
                Some((j, other)) if *other != recorded => {
                    self.invariants.violate(format!(
                        "safety: m{} and m{} settled on different memberships: {:?} and {:?}",
                        j + 1,
                        i + 1,
                        other,
                        recorded
                    ));
                }
                Some(_) => {}
            }
        }
    }

    /// The sender of a snapshot learns its fate a moment later.
    fn snapshot_status(&mut self, from: u64, to: u64, delivered: bool) {
        let at = self.now_ms + 1;
        self.schedule(
            at,
            Event::SnapshotStatus {
                from,
                to,
                delivered,
            },
        );
    }

    fn issue(&mut self, client: usize) {
        if !self.load_on || self.in_flight[client].is_some() {
            return;
        }
        let in_session = client < self.session_clients.len();
        if in_session && self.session_clients[client].id == 0 {
            self.open_session(client);
            return;
        }
        let mut kind = ops::random_op(&mut self.rng, self.cfg.keys, &mut self.next_value);
        while self.cfg.is_mixed() && matches!(kind, OpKind::Txn { .. }) {
            // Mixed runs are checked in revision order, which does not
            // judge transactions.
            kind = ops::random_op(&mut self.rng, self.cfg.keys, &mut self.next_value);
        }
        let op = self.history.len();
        let member = self.rng.below(self.members.len() as u64) as usize;
        if in_session && !kind.is_read() {
            let tag = self.session_clients[client].next_tag();
            self.session_ops.insert(
                op,
                SessionOp {
                    tag,
                    first_answer: None,
                    retried: false,
                    ask_due: false,
                },
            );
        }
        let _ = writeln!(
            self.trace,
            "{} call c{client} op{op} m{} {kind:?}",
            self.now_ms,
            member + 1
        );
        self.history.push(HistoryOp {
            client,
            kind: kind.clone(),
            call_ms: self.now_ms,
            return_ms: None,
            result: None,
        });
        self.in_flight[client] = Some(op);
        self.op_member.insert(op, member);
        self.schedule(
            self.now_ms + self.cfg.client_timeout_ms,
            Event::ClientTimeout(op),
        );
        let mut out = Vec::new();
        match self.session_ops.get(&op) {
            Some(s) => {
                let (tag, ticks) = (s.tag, self.rng.between(2, 60));
                let _ = writeln!(
                    self.trace,
                    "{} op{op} in session {:#x} seq {} within {ticks} ticks",
                    self.now_ms, tag.session_id, tag.seq
                );
                self.members[member].submit_in_session(op, &kind, tag, ticks, &mut out);
            }
            None => self.members[member].submit(op, &kind, &mut out),
        }
        self.process(member, out);
    }

    /// A member that is up, drawn at random (`None` when all are down).
    fn random_up_member(&mut self) -> Option<usize> {
        let up: Vec<usize> = (0..self.members.len())
            .filter(|m| self.members[*m].is_up())
            .collect();
        if up.is_empty() {
            return None;
        }
        Some(up[self.rng.below(up.len() as u64) as usize])
    }

    /// A session client without a session opens one (again after a while
    /// if the answer does not come).
    fn open_session(&mut self, client: usize) {
        let now = self.now_ms;
        if self.session_clients[client].should_open(now) {
            if let Some(member) = self.random_up_member() {
                let id = self.session_clients[client].start_open(client, now);
                let timeout_ms = self.cfg.session_timeout_ms;
                let _ = writeln!(
                    self.trace,
                    "{now} c{client} opens session {id:#x} at m{}",
                    member + 1
                );
                let mut out = Vec::new();
                self.members[member].session_open(client, id, timeout_ms, &mut out);
                self.process(member, out);
            }
        }
        let at = self.now_ms + self.rng.between(20, 60);
        self.schedule(at, Event::ClientIssue(client));
    }

    /// The answer to an op is lost (timeout, crash): a session op's outcome
    /// is asked for; any other op's is unknown.
    fn lose(&mut self, op: usize) {
        if self.session_ops.contains_key(&op) {
            let after_ms = self.rng.between(1, 30);
            self.schedule_ask(op, after_ms);
        } else {
            self.give_up(op);
        }
    }

    /// Asks about a session op's outcome a little later, unless a question
    /// is already due (so questions never multiply).
    fn schedule_ask(&mut self, op: usize, after_ms: u64) {
        let Some(s) = self.session_ops.get_mut(&op) else {
            return;
        };
        if !s.ask_due {
            s.ask_due = true;
            self.schedule(self.now_ms + after_ms, Event::AskOutcome(op));
        }
    }

    /// Asks a random member that is up to decide a session op's outcome.
    fn ask_outcome(&mut self, op: usize) {
        let client = self.history[op].client;
        if self.in_flight[client] != Some(op) {
            return;
        }
        let Some(s) = self.session_ops.get_mut(&op) else {
            return;
        };
        s.ask_due = false;
        let tag = s.tag;
        let Some(member) = self.random_up_member() else {
            self.schedule_ask(op, 50);
            return;
        };
        let ticks = self.rng.between(5, 60);
        let _ = writeln!(
            self.trace,
            "{} c{client} asks m{} for the outcome of op{op}",
            self.now_ms,
            member + 1
        );
        let kind = self.history[op].kind.clone();
        let mut out = Vec::new();
        self.members[member].ask_outcome(op, &kind, tag.session_id, tag.seq, ticks, &mut out);
        self.process(member, out);
        if self.rng.chance(300) {
            // A retry of the op races the question: whichever the log
            // orders first decides, and the other must agree.
            if let Some(s) = self.session_ops.get_mut(&op) {
                s.retried = true;
            }
            let at = self.now_ms + self.rng.between(1, 30);
            self.schedule(at, Event::Resend(op, kind, tag));
        }
    }

    /// Sends a session op again, same tag, to a random member that is up.
    /// Its answer counts only while the op is still in flight.
    fn resend(&mut self, op: usize, kind: &OpKind, tag: rafter_proto::rafterpb::ClientTag) {
        let Some(member) = self.random_up_member() else {
            return;
        };
        let ticks = self.rng.between(2, 60);
        let _ = writeln!(
            self.trace,
            "{} c{} sends op{op} again to m{}",
            self.now_ms,
            self.history[op].client,
            member + 1
        );
        let mut out = Vec::new();
        self.members[member].submit_in_session(op, kind, tag, ticks, &mut out);
        self.process(member, out);
    }

    /// What a session op's client learned.
    fn session_answer(&mut self, op: usize, answer: SessionAnswer) {
        let client = self.history[op].client;
        if self.in_flight[client] != Some(op) {
            return;
        }
        let Some(s) = self.session_ops.get(&op).cloned() else {
            return;
        };
        let _ = writeln!(
            self.trace,
            "{} c{client} op{op} session answer {answer:?}",
            self.now_ms
        );
        let first = s.first_answer.clone();
        match answer {
            SessionAnswer::Applied(result) => {
                if first.is_none() && !s.retried && self.rng.chance(150) {
                    // Inject a lost answer: the op is sent again, same tag.
                    let entry = self.session_ops.get_mut(&op).expect("present");
                    entry.first_answer = Some(result);
                    entry.retried = true;
                    let member = self.rng.below(self.members.len() as u64) as usize;
                    let ticks = self.rng.between(2, 60);
                    let kind = self.history[op].kind.clone();
                    let _ = writeln!(
                        self.trace,
                        "{} c{client} loses the answer of op{op}, sends it again to m{}",
                        self.now_ms,
                        member + 1
                    );
                    let mut out = Vec::new();
                    self.members[member].submit_in_session(op, &kind, s.tag, ticks, &mut out);
                    self.process(member, out);
                    return;
                }
                if let Some(first) = first {
                    if first != result {
                        self.invariants.violate(format!(
                            "exactly-once: op{op} (client {client}) was answered {first:?}, its retry {result:?}"
                        ));
                    }
                }
                self.settle(op, &s);
                self.complete(op, Some(result));
            }
            SessionAnswer::Cancelled => {
                if let Some(first) = first {
                    self.invariants.violate(format!(
                        "exactly-once: op{op} (client {client}) was applied ({first:?}) and then reported cancelled"
                    ));
                }
                self.settle(op, &s);
                self.reject(op);
            }
            SessionAnswer::Expired => {
                self.session_clients[client].expired(s.tag.session_id);
                self.settle(op, &s);
                match first {
                    Some(first) => self.complete(op, Some(first)),
                    None => self.reject(op),
                }
            }
            SessionAnswer::NotProposed if first.is_none() && !s.retried => {
                self.settle(op, &s);
                self.reject(op);
            }
            SessionAnswer::NotProposed | SessionAnswer::Undecided => {
                let after_ms = self.rng.between(5, 50);
                self.schedule_ask(op, after_ms);
            }
            SessionAnswer::Forgotten => {
                self.session_clients[client].expired(s.tag.session_id);
                self.session_ops.remove(&op);
                match first {
                    Some(first) => self.complete(op, Some(first)),
                    None => self.give_up(op),
                }
            }
            SessionAnswer::Acknowledged => {
                self.invariants.violate(format!(
                    "exactly-once: the store says op{op} (client {client}) was acknowledged; it never was"
                ));
                self.session_ops.remove(&op);
                self.give_up(op);
            }
        }
    }

    fn settle(&mut self, op: usize, s: &SessionOp) {
        let client = self.history[op].client;
        self.session_clients[client].settled(&s.tag);
        self.session_ops.remove(&op);
    }

    fn next_issue(&mut self, client: usize) {
        self.in_flight[client] = None;
        let at = self.now_ms + self.rng.between(1, 40);
        self.schedule(at, Event::ClientIssue(client));
    }

    fn complete(&mut self, op: usize, result: Option<OpResult>) {
        let client = self.history[op].client;
        if self.in_flight[client] != Some(op) {
            // The client already gave up; a late answer changes nothing.
            return;
        }
        let _ = writeln!(
            self.trace,
            "{} return c{client} op{op} {result:?}",
            self.now_ms
        );
        self.history[op].return_ms = Some(self.now_ms);
        self.history[op].result = result;
        self.op_member.remove(&op);
        self.next_issue(client);
    }

    /// The op was refused before it could take effect: drop it from the
    /// history (it provably did nothing).
    fn reject(&mut self, op: usize) {
        let client = self.history[op].client;
        if self.in_flight[client] != Some(op) {
            return;
        }
        let _ = writeln!(self.trace, "{} reject c{client} op{op}", self.now_ms);
        self.history[op].return_ms = Some(self.now_ms);
        self.history[op].result = None;
        self.history[op].kind = OpKind::Get { key: u8::MAX };
        self.op_member.remove(&op);
        self.next_issue(client);
    }

    /// Timeout or crash: the outcome is unknown.
    fn give_up(&mut self, op: usize) {
        let client = self.history[op].client;
        let _ = writeln!(self.trace, "{} timeout c{client} op{op}", self.now_ms);
        self.op_member.remove(&op);
        self.next_issue(client);
    }

    /// A watcher's turn: reconnect if its member went away, else read a
    /// few responses and now and then ask for progress.
    fn watch_poll(&mut self, w: usize) {
        if let Some(c) = self.watchers[w].connection {
            if !self.members[c.member].is_up()
                || self.members[c.member].incarnation != c.incarnation
            {
                let _ = writeln!(
                    self.trace,
                    "{} w{w} lost its stream on m{}",
                    self.now_ms,
                    c.member + 1
                );
                self.watchers[w].disconnected();
            }
        }
        let Some(c) = self.watchers[w].connection else {
            let Some(member) = self.random_up_member() else {
                return;
            };
            let request = self.watchers[w].create_request();
            let incarnation = self.members[member].incarnation;
            let (store_rev, store_compact_rev) = self.members[member]
                .store()
                .state()
                .map_or((0, -1), |s| (s.current_revision, s.compact_revision));
            let hub = self.members[member].watch_hub().expect("up");
            let stream = hub.open_stream();
            hub.request(stream, request, store_rev, store_compact_rev);
            let _ = writeln!(
                self.trace,
                "{} w{w} watches on m{}",
                self.now_ms,
                member + 1
            );
            self.watchers[w].connection = Some(Connection {
                member,
                incarnation,
                stream,
            });
            return;
        };
        let reads = self.rng.between(1, 4);
        let progress = self.rng.chance(50);
        let store_rev = self.members[c.member]
            .store()
            .state()
            .map_or(0, |s| s.current_revision);
        let hub = self.members[c.member].watch_hub().expect("up");
        for _ in 0..reads {
            match hub.pop(c.stream) {
                Some(resp) => self.watchers[w].receive(resp),
                None => break,
            }
        }
        if progress {
            hub.request(c.stream, SimWatcher::progress_request(), store_rev, -1);
        }
    }

    /// A lessee's turn: propose its grant or put, or send a keep-alive, to
    /// a random member that is up.
    fn lease_turn(&mut self, l: usize) {
        if !self.load_on && self.lessees[l].granted_at_ms.is_none() {
            // No new leases while settling: one granted late would expire
            // (and be revoked through the log) just as the run ends, before
            // every member applied the revoke.
            return;
        }
        let Some(member) = self.random_up_member() else {
            return;
        };
        let mut out = Vec::new();
        if let Some(request) = self.lessees[l].proposal() {
            self.members[member].propose_untracked(request, &mut out);
        } else if self.lessees[l].keeps_alive(self.now_ms)
            && self.lessees[l].revoked_at_ms.is_none()
        {
            let id = self.lessees[l].id;
            self.lessees[l].keep_alive_sent_ms = self.now_ms;
            self.members[member].lease_renew(l, id, &mut out);
        }
        self.process(member, out);
    }

    fn policies_applied(&self) -> bool {
        self.members.iter().any(|m| {
            m.is_up()
                && m.store().conflict_policies().is_ok_and(|p| {
                    p.len()
                        == self
                            .cfg
                            .conflict_policies
                            .iter()
                            .filter(|p| **p != rafter_proto::rafterpb::ConflictPolicy::CommitOrder)
                            .count()
                })
        })
    }

    /// Proposes every key's policy through a random member (idempotent).
    fn propose_policies(&mut self) {
        let Some(member) = self.random_up_member() else {
            return;
        };
        let _ = writeln!(
            self.trace,
            "{} set conflict policies via m{}",
            self.now_ms,
            member + 1
        );
        let mut out = Vec::new();
        for key in 0..self.cfg.keys {
            let policy =
                self.cfg.conflict_policies[key as usize % self.cfg.conflict_policies.len()];
            self.members[member].propose_untracked(
                rafter_storage::KvRequest::ConflictPolicy(
                    rafter_proto::rafterpb::ConflictPolicySet {
                        prefix: ops::key_bytes(key),
                        policy: policy as i32,
                    },
                ),
                &mut out,
            );
        }
        self.process(member, out);
    }

    /// A local write on a random member that is up (cut off or not).
    fn local_write(&mut self, writer: usize) {
        let Some(member) = self.random_up_member() else {
            return;
        };
        let key = vec![
            b'k',
            b'0' + self.rng.below(self.cfg.keys.max(1) as u64) as u8,
        ];
        // A number handed out once, like the clients' values, so a client
        // read names the local write it saw.
        let value = self.next_value.to_string().into_bytes();
        self.next_value += 1;
        let _ = writer;
        let mut out = Vec::new();
        if let Some(write) = self.members[member].accept_local(key, value, &mut out) {
            let _ = writeln!(
                self.trace,
                "{} local write m{}#{} acknowledged",
                self.now_ms,
                member + 1,
                write.seq
            );
            self.local_acks.acknowledged(self.now_ms, write);
        }
        self.process(member, out);
    }

    fn check_local_writes(&mut self) {
        if self.local_acks.is_empty() {
            return;
        }
        let Some(source) = (0..self.members.len())
            .filter(|m| self.members[*m].is_up())
            .max_by_key(|m| self.members[*m].applied())
        else {
            return;
        };
        let store = self.members[source].store();
        let history = watchers::full_history(store);
        let problems = self.local_acks.check(store, &history);
        let mut decisions = BTreeMap::new();
        for r in store.conflicts(b"", 0).map(|(r, _)| r).unwrap_or_default() {
            *decisions.entry(format!("{:?}", r.decision())).or_insert(0) += 1;
        }
        let _ = writeln!(
            self.trace,
            "{} {} local writes acknowledged, {} problems; conflicts {decisions:?}",
            self.now_ms,
            self.local_acks.len(),
            problems.len()
        );
        for p in problems {
            self.invariants.violate(format!("local write: {p}"));
        }
    }

    fn check_lessees(&mut self) {
        let Some(source) = (0..self.members.len())
            .filter(|m| self.members[*m].is_up())
            .max_by_key(|m| self.members[*m].applied())
        else {
            return;
        };
        let end_ms = self.now_ms;
        let mut problems = Vec::new();
        for l in &self.lessees {
            problems.extend(l.check(self.members[source].store(), self.cfg.tick_ms, end_ms));
        }
        for p in problems {
            self.invariants.violate(format!("lease: {p}"));
        }
    }

    /// After settling, every watcher reads until its member has nothing
    /// more for it; then its events are checked against the history.
    fn check_watchers(&mut self) {
        let Some(source) = (0..self.members.len())
            .filter(|m| self.members[*m].is_up())
            .max_by_key(|m| self.members[*m].applied())
        else {
            return;
        };
        let truth = watchers::full_history(self.members[source].store());
        let watchers = std::mem::take(&mut self.watchers);
        for mut watcher in watchers {
            let mut caught_up = false;
            if let Some(c) = watcher.connection {
                let member = &mut self.members[c.member];
                if member.is_up() && member.incarnation == c.incarnation {
                    for _ in 0..10_000 {
                        member.watch_sync();
                        let hub = member.watch_hub().expect("up");
                        let Some(resp) = hub.pop(c.stream) else {
                            caught_up = !hub.needs_sync();
                            break;
                        };
                        watcher.receive(resp);
                    }
                }
            }
            let _ = writeln!(
                self.trace,
                "{} {} caught up: {caught_up}",
                self.now_ms,
                watcher.summary()
            );
            for problem in watcher.check(&truth, caught_up) {
                self.invariants.violate(format!("watch: {problem}"));
            }
        }
    }

    fn finish(&mut self) {
        self.check_membership();
        self.check_watchers();
        self.check_lessees();
        self.check_local_writes();
        let up: Vec<&SimMember> = self.members.iter().filter(|m| m.is_up()).collect();
        let applied: Vec<u64> = up.iter().map(|m| m.applied()).collect();
        let hashes: Vec<u32> = up.iter().map(|m| m.hash()).collect();
        let _ = writeln!(
            self.trace,
            "{} end applied={applied:?} hashes={hashes:?}",
            self.now_ms
        );
        if applied.windows(2).any(|w| w[0] != w[1]) {
            self.invariants
                .violate(format!("convergence: members did not reach the same applied index after settling: {applied:?}"));
        } else if hashes.windows(2).any(|w| w[0] != w[1]) {
            self.invariants.violate(format!(
                "state-machine safety: members at applied index {} differ: hashes {hashes:?}",
                applied[0]
            ));
        }
        // Rejected ops were turned into no-op placeholders; drop them.
        self.history
            .retain(|op| op.kind != OpKind::Get { key: u8::MAX });
        if self.cfg.is_mixed() {
            if let Some(store) = up.iter().max_by_key(|m| m.applied()).map(|m| m.store()) {
                let events = watchers::full_history(store);
                let local_values = self.local_acks.values();
                for p in revision_order::check(&self.history, store, &events, &local_values) {
                    self.invariants.violate(p);
                }
            }
        }
        // Serializable reads may be stale, so the linearizability checker
        // leaves them out; what they must be is a state the store really
        // had: the value and mod revision a surviving member holds for the
        // key at the read's header revision (revisions are never
        // compacted here), which must not be beyond the final revision.
        let Some(store) = up.iter().max_by_key(|m| m.applied()).map(|m| m.store()) else {
            return;
        };
        let last = store.state().map_or(0, |s| s.current_revision as u64);
        for (index, op) in self.history.iter().enumerate() {
            let (
                OpKind::SerialGet { key },
                Some(OpResult::Get {
                    value,
                    mod_revision,
                    revision,
                }),
            ) = (&op.kind, &op.result)
            else {
                continue;
            };
            let problem = if *revision > last {
                Some(format!(
                    "read at revision {revision}, beyond the final revision {last}"
                ))
            } else {
                match ops::read_at(store, *key, *revision) {
                    Ok(held) if held == (*value, *mod_revision) => None,
                    Ok((v, m)) => Some(format!(
                        "saw {value:?} (mod {mod_revision}) at revision {revision}, but the store held {v:?} (mod {m}) then"
                    )),
                    Err(e) => Some(format!("revision {revision} cannot be read back: {e}")),
                }
            };
            if let Some(problem) = problem {
                self.invariants.violate(format!(
                    "serializable read: operation #{index} (client {}, get k{key} at {} ms) {problem}",
                    op.client, op.call_ms
                ));
            }
        }
    }
}
