//! One member's Raft state machine: raft-rs `RawNode` plus the bookkeeping
//! that turns inputs (proposals, read-index requests, peer messages, ticks)
//! into [`Cycle`]s of outputs, batching everything queued since the last one.

use raft::eraftpb::{Entry, HardState, Message, Snapshot};
use raft::{RawNode, ReadState, StateRole, Storage};

/// Static configuration of a member.
#[derive(Debug, Clone)]
pub struct MemberConfig {
    pub id: u64,
    /// Ticks without a heartbeat before a follower campaigns: the minimum of
    /// the randomized range, and the leader's check-quorum period.
    pub election_tick: usize,
    /// End (exclusive) of the randomized election timeout range in ticks;
    /// 0 means `2 * election_tick`, etcd's and raft-rs's range.
    pub max_election_tick: usize,
    pub heartbeat_tick: usize,
    /// Index already reflected in the state machine (entries up to it are
    /// not handed out again).
    pub applied_index: u64,
    pub max_size_per_msg_bytes: u64,
    pub max_inflight_msgs: usize,
    /// Seed of the member's own RNG for election timeouts, so runs replay.
    pub rng_seed: u64,
}

/// Why a proposal was not accepted into the log.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ProposeError {
    /// No leader is known, so nobody can order the proposal.
    #[error("no leader")]
    NoLeader,
    /// raft-rs dropped it (e.g. leadership transfer in progress).
    #[error("proposal dropped")]
    Dropped,
}

/// Everything the shell must do for one Ready, in order:
/// 1. send `messages` (safe before persisting: leader appends are pipelined);
/// 2. persist `snapshot`, `entries` and `hard_state` with one fsync;
/// 3. send `persisted_messages`; apply `committed_entries` (these were
///    committed before this cycle, so they may also be applied before step 2);
/// 4. call [`Member::on_persisted`], send its messages, apply its committed
///    entries, then call [`Member::on_applied`].
#[derive(Debug, Default)]
pub struct Cycle {
    pub messages: Vec<Message>,
    pub snapshot: Option<Snapshot>,
    pub entries: Vec<Entry>,
    pub hard_state: Option<HardState>,
    pub must_sync: bool,
    pub persisted_messages: Vec<Message>,
    pub committed_entries: Vec<Entry>,
    pub read_states: Vec<ReadState>,
}

/// A member driving raft-rs.
pub struct Member<S: Storage> {
    node: RawNode<S>,
    /// The Ready whose cycle is taken but not yet reported persisted.
    pending: Option<raft::Ready>,
    rng: SplitMix64,
    last_term_role: (u64, StateRole),
    /// The randomized election timeout is drawn from [min, max) ticks.
    election_tick_range: (usize, usize),
}

impl<S: Storage> Member<S> {
    pub fn new(cfg: &MemberConfig, storage: S, logger: &slog::Logger) -> raft::Result<Self> {
        let election_tick_range = (
            cfg.election_tick,
            match cfg.max_election_tick {
                0 => 2 * cfg.election_tick,
                max => max,
            },
        );
        let raft_cfg = raft::Config {
            id: cfg.id,
            election_tick: cfg.election_tick,
            min_election_tick: election_tick_range.0,
            max_election_tick: election_tick_range.1,
            heartbeat_tick: cfg.heartbeat_tick,
            applied: cfg.applied_index,
            max_size_per_msg: cfg.max_size_per_msg_bytes,
            max_inflight_msgs: cfg.max_inflight_msgs,
            pre_vote: true,
            check_quorum: true,
            read_only_option: raft::ReadOnlyOption::Safe,
            // Every proposal a turn steps would otherwise send each
            // follower its own one-entry append (and get its own answer):
            // the appends of one Ready go to a follower as one message.
            batch_append: true,
            ..Default::default()
        };
        raft_cfg.validate()?;
        let node = RawNode::new(&raft_cfg, storage, logger)?;
        let mut member = Member {
            last_term_role: (node.raft.term, node.raft.state),
            node,
            pending: None,
            rng: SplitMix64(cfg.rng_seed ^ cfg.id),
            election_tick_range,
        };
        member.reseed_election_timeout();
        Ok(member)
    }

    pub fn id(&self) -> u64 {
        self.node.raft.id
    }

    pub fn term(&self) -> u64 {
        self.node.raft.term
    }

    /// The leader this member knows of, if any.
    pub fn leader_id(&self) -> Option<u64> {
        match self.node.raft.leader_id {
            raft::INVALID_ID => None,
            id => Some(id),
        }
    }

    pub fn is_leader(&self) -> bool {
        self.node.raft.state == StateRole::Leader
    }

    pub fn commit_index(&self) -> u64 {
        self.node.raft.raft_log.committed
    }

    pub fn last_index(&self) -> u64 {
        self.node.raft.raft_log.last_index()
    }

    /// Every entry in the log after `index` (stable or not).
    pub fn entries_after(&self, index: u64) -> Vec<Entry> {
        self.node
            .raft
            .raft_log
            .entries(index + 1, None, raft::GetEntriesContext::empty(false))
            .unwrap_or_default()
    }

    /// True when the only voter is this member (it may elect itself at once).
    pub fn is_sole_voter(&self) -> bool {
        let voters: Vec<u64> = self.node.raft.prs().conf().voters().ids().iter().collect();
        voters == [self.id()]
    }

    pub fn campaign(&mut self) -> raft::Result<()> {
        let r = self.node.campaign();
        self.after_input();
        r
    }

    pub fn tick(&mut self) {
        self.node.tick();
        self.after_input();
    }

    pub fn step(&mut self, msg: Message) -> raft::Result<()> {
        let r = self.node.step(msg);
        self.after_input();
        r
    }

    /// Appends a command to the leader's log (forwarded when a follower).
    pub fn propose(&mut self, data: Vec<u8>) -> Result<(), ProposeError> {
        if self.leader_id().is_none() {
            return Err(ProposeError::NoLeader);
        }
        let r = self.node.propose(vec![], data);
        self.after_input();
        r.map_err(|_| ProposeError::Dropped)
    }

    /// Proposes a membership change; the command rides in the entry's
    /// context (forwarded to the leader when a follower).
    pub fn propose_conf_change(
        &mut self,
        context: Vec<u8>,
        cc: raft::eraftpb::ConfChange,
    ) -> Result<(), ProposeError> {
        if self.leader_id().is_none() {
            return Err(ProposeError::NoLeader);
        }
        let r = self.node.propose_conf_change(context, cc);
        self.after_input();
        r.map_err(|_| ProposeError::Dropped)
    }

    /// Applies a committed membership change to raft-rs's configuration.
    pub fn apply_conf_change(
        &mut self,
        cc: &raft::eraftpb::ConfChange,
    ) -> raft::Result<raft::eraftpb::ConfState> {
        let r = self.node.apply_conf_change(cc);
        self.after_input();
        r
    }

    /// raft-rs's current configuration.
    pub fn conf_state(&self) -> raft::eraftpb::ConfState {
        self.node.raft.prs().conf().to_conf_state()
    }

    /// On the leader: the other voter whose log matches the most of its
    /// own and that was heard from recently (the best leadership
    /// transferee), if any.
    pub fn best_transferee(&self) -> Option<u64> {
        let me = self.id();
        let voters: Vec<u64> = self.node.raft.prs().conf().voters().ids().iter().collect();
        voters
            .into_iter()
            .filter(|&id| id != me)
            .filter_map(|id| {
                let pr = self.node.raft.prs().get(id)?;
                pr.recent_active.then_some((pr.matched, id))
            })
            .max()
            .map(|(_, id)| id)
    }

    /// True while a membership change is proposed and not yet applied.
    pub fn has_pending_conf(&self) -> bool {
        self.node.raft.has_pending_conf()
    }

    /// On the leader: the share of its log that `peer` has (1.0 when it is
    /// the leader itself; 0 when unknown).
    pub fn match_share(&self, peer: u64) -> f64 {
        let last = self.last_index().max(1) as f64;
        match self.node.raft.prs().get(peer) {
            Some(pr) => pr.matched as f64 / last,
            None => 0.0,
        }
    }

    /// Starts handing leadership to `target` (leader only).
    pub fn transfer_leader(&mut self, target: u64) {
        self.node.transfer_leader(target);
        self.after_input();
    }

    /// Tells Raft a peer could not be reached (the leader probes it again).
    pub fn report_unreachable(&mut self, peer: u64) {
        self.node.report_unreachable(peer);
    }

    /// Tells Raft whether a snapshot reached `peer`.
    pub fn report_snapshot(&mut self, peer: u64, delivered: bool) {
        let status = if delivered {
            raft::SnapshotStatus::Finish
        } else {
            raft::SnapshotStatus::Failure
        };
        self.node.report_snapshot(peer, status);
    }

    /// Starts one read-index round; its `ReadState` carries `ctx` back.
    pub fn read_index(&mut self, ctx: Vec<u8>) {
        self.node.read_index(ctx);
        self.after_input();
    }

    pub fn has_ready(&self) -> bool {
        self.pending.is_none() && self.node.has_ready()
    }

    /// Takes the next Ready as a [`Cycle`]. At most one cycle is in flight:
    /// the next one comes after [`Member::on_persisted`].
    pub fn take_cycle(&mut self) -> Option<Cycle> {
        if !self.has_ready() {
            return None;
        }
        let mut rd = self.node.ready();
        let snapshot = if rd.snapshot().is_empty() {
            None
        } else {
            Some(rd.snapshot().clone())
        };
        let cycle = Cycle {
            messages: rd.take_messages(),
            snapshot,
            entries: rd.take_entries(),
            hard_state: rd.hs().cloned(),
            must_sync: rd.must_sync(),
            persisted_messages: rd.take_persisted_messages(),
            committed_entries: rd.take_committed_entries(),
            read_states: rd.take_read_states(),
        };
        self.pending = Some(rd);
        Some(cycle)
    }

    /// Reports that the last cycle's snapshot, entries and hard state are
    /// durable. Returns what that unlocked: more committed entries to apply
    /// and messages to send.
    pub fn on_persisted(&mut self) -> Persisted {
        let rd = self
            .pending
            .take()
            .expect("on_persisted without a cycle in flight");
        let mut light = self.node.advance_append(rd);
        self.after_input();
        Persisted {
            commit_index: light.commit_index(),
            messages: light.take_messages(),
            committed_entries: light.take_committed_entries(),
        }
    }

    /// Reports that every entry up to `index` is applied to the state
    /// machine. Reports may arrive late (an apply thread's progress after a
    /// snapshot moved past it), so one that goes backwards is ignored.
    pub fn on_applied(&mut self, index: u64) {
        if index <= self.node.raft.raft_log.applied {
            return;
        }
        debug_assert!(index <= self.commit_index(), "applied past commit");
        self.node.advance_apply_to(index);
    }

    /// raft-rs redraws the randomized election timeout from a thread RNG
    /// whenever term or role changes; overwrite it from the member's own
    /// seeded RNG so a run replays exactly.
    fn after_input(&mut self) {
        let now = (self.node.raft.term, self.node.raft.state);
        if now != self.last_term_role {
            self.last_term_role = now;
            self.reseed_election_timeout();
        }
    }

    fn reseed_election_timeout(&mut self) {
        let (min, max) = self.election_tick_range;
        debug_assert!(min < max, "raft-rs validated the election range");
        let t = min + (self.rng.next() % (max - min) as u64) as usize;
        self.node.raft.set_randomized_election_timeout(t);
    }
}

/// What became possible once a cycle was persisted.
#[derive(Debug, Default)]
pub struct Persisted {
    pub commit_index: Option<u64>,
    pub messages: Vec<Message>,
    pub committed_entries: Vec<Entry>,
}

/// A small deterministic RNG (SplitMix64) for election timeouts.
struct SplitMix64(u64);

impl SplitMix64 {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
}

#[cfg(test)]
mod tests {
    use raft::eraftpb::ConfState;
    use raft::storage::MemStorage;

    use super::*;

    fn member(election_tick: usize, max_election_tick: usize) -> raft::Result<Member<MemStorage>> {
        let storage = MemStorage::new_with_conf_state(ConfState::from((vec![1, 2, 3], vec![])));
        let cfg = MemberConfig {
            id: 1,
            election_tick,
            max_election_tick,
            heartbeat_tick: 1,
            applied_index: 0,
            max_size_per_msg_bytes: 1024 * 1024,
            max_inflight_msgs: 256,
            rng_seed: 7,
        };
        Member::new(
            &cfg,
            storage,
            &slog::Logger::root(slog::Discard, slog::o!()),
        )
    }

    /// Draws the randomized timeout of many terms and returns its extremes.
    fn drawn_range(m: &mut Member<MemStorage>) -> (usize, usize) {
        let mut seen = (usize::MAX, 0);
        for term in 1..500 {
            m.node.raft.term = term;
            m.after_input();
            let t = m.node.raft.randomized_election_timeout();
            seen = (seen.0.min(t), seen.1.max(t));
        }
        seen
    }

    #[test]
    fn default_election_range_is_t_to_2t() {
        let mut m = member(10, 0).unwrap();
        assert_eq!(drawn_range(&mut m), (10, 19));
    }

    #[test]
    fn explicit_election_range_is_honoured() {
        let mut m = member(150, 155).unwrap();
        assert_eq!(drawn_range(&mut m), (150, 154));
        let mut narrow = member(150, 151).unwrap();
        assert_eq!(drawn_range(&mut narrow), (150, 150));
    }

    #[test]
    fn empty_election_range_is_refused() {
        assert!(member(10, 10).is_err());
        assert!(member(10, 5).is_err());
    }
}
