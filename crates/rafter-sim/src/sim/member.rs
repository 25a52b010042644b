//! One simulated member: the real sans-I/O core (`rafter_core::Member`) and
//! the real MVCC store (in memory), driven exactly as the server's Raft loop
//! drives them, with a durable Raft log (raft-rs `MemStorage`) that survives
//! crashes. After a crash the store is rebuilt by replaying the log.

use std::collections::HashMap;

use raft::eraftpb::{ConfState, Entry, Message};
use raft::storage::MemStorage;
use rafter_core::{decode_command, encode_command, Member, MemberConfig, ProposeError};
use rafter_proto::rafterpb::RaftCommand;
use rafter_storage::mvcc::ApplyEntry;
use rafter_storage::MvccStore;

use super::history::{OpKind, OpResult};
use super::ops;

/// Test-only bugs the simulator must catch (selected by cargo features).
#[derive(Debug, Clone, Copy, Default)]
pub struct Bugs {
    /// Serve linearizable reads from local state without ReadIndex.
    pub local_reads: bool,
    /// Acknowledge a write as soon as the leader appends it, before commit.
    pub ack_uncommitted: bool,
    /// Tell Raft the log is persisted before the fsync completes.
    pub ack_before_fsync: bool,
}

/// Something a member tells the simulator.
pub enum Output {
    Send(Message),
    /// Operation `op` finished with a result.
    Done(usize, OpResult),
    /// Operation `op` was not accepted (definitely had no effect).
    Rejected(usize),
    /// Entry `index` of `term` with payload checksum was applied.
    Applied {
        index: u64,
        term: u64,
        data_crc: u32,
        revision: i64,
    },
    /// The member wrote to its log and waits for the fsync of `epoch`.
    Fsync(u64),
}

/// What survives a crash: the log as of the last completed fsync.
#[derive(Clone, Default)]
struct DurableLog {
    entries: Vec<Entry>,
    hard_state: raft::eraftpb::HardState,
}

/// An input that arrived while the member was blocked on an fsync.
enum Input {
    Tick,
    Step(Box<Message>),
    Submit(usize, OpKind),
}

/// A cycle whose log writes wait for their fsync.
struct PendingFsync {
    epoch: u64,
    persisted_messages: Vec<Message>,
    raft_told: bool,
}

pub struct SimMember {
    pub id: u64,
    voters: Vec<u64>,
    /// The log as the member sees it (written, maybe not yet fsynced).
    storage: MemStorage,
    durable: DurableLog,
    fsync: Option<PendingFsync>,
    fsync_epoch: u64,
    inbox: Vec<Input>,
    node: Option<Member<MemStorage>>,
    store: MvccStore,
    proposals: HashMap<u64, usize>,
    read_rounds: HashMap<u64, Vec<usize>>,
    reads_waiting: Vec<(u64, usize)>,
    /// Kind of each op in flight here (reads and proposals).
    kinds: HashMap<usize, OpKind>,
    next_ctx: u64,
    next_cmd: u64,
    applied: u64,
    election_tick: usize,
    rng_seed: u64,
    bugs: Bugs,
}

fn fresh_store() -> MvccStore {
    MvccStore::open_in_memory().expect("in-memory store")
}

impl SimMember {
    pub fn new(id: u64, voters: &[u64], election_tick: usize, rng_seed: u64, bugs: Bugs) -> Self {
        let storage = MemStorage::new_with_conf_state(ConfState::from((voters.to_vec(), vec![])));
        let mut m = SimMember {
            id,
            voters: voters.to_vec(),
            storage,
            durable: DurableLog::default(),
            fsync: None,
            fsync_epoch: 0,
            inbox: Vec::new(),
            node: None,
            store: fresh_store(),
            proposals: HashMap::new(),
            read_rounds: HashMap::new(),
            reads_waiting: Vec::new(),
            kinds: HashMap::new(),
            next_ctx: 1,
            next_cmd: id << 40,
            applied: 0,
            election_tick,
            rng_seed,
            bugs,
        };
        m.start();
        m
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

    pub fn applied(&self) -> u64 {
        self.applied
    }

    /// The member's store (for checks after the run).
    pub fn store(&self) -> &MvccStore {
        &self.store
    }

    pub fn hash(&self) -> u32 {
        self.store.hash_kv(0).map_or(0, |(h, _, _)| h)
    }

    fn start(&mut self) {
        let cfg = MemberConfig {
            id: self.id,
            election_tick: self.election_tick,
            max_election_tick: 0,
            heartbeat_tick: 1,
            applied_index: 0,
            max_size_per_msg_bytes: 1024 * 1024,
            max_inflight_msgs: 256,
            rng_seed: self.rng_seed,
        };
        let logger = slog::Logger::root(slog::Discard, slog::o!());
        self.node = Some(Member::new(&cfg, self.storage.clone(), &logger).expect("member starts"));
        self.rng_seed = self.rng_seed.wrapping_add(1);
    }

    /// Crash: everything not in the durable log is gone. Returns the ops
    /// that were waiting here (now indeterminate).
    pub fn crash(&mut self, torn_keep: usize) -> Vec<usize> {
        self.node = None;
        // Writes not yet fsynced are lost, except that a torn write may have
        // put a prefix of the pending records on disk.
        let mut survived = self.durable.clone();
        if self.fsync.take().is_some() {
            let written = self.log_entries();
            let extra: Vec<Entry> = written
                .into_iter()
                .filter(|e| e.index > survived.entries.last().map_or(0, |l| l.index))
                .take(torn_keep)
                .collect();
            let consistent = extra
                .first()
                .is_none_or(|e| e.index == survived.entries.last().map_or(1, |l| l.index + 1));
            if consistent {
                survived.entries.extend(extra);
            }
        }
        self.durable = survived.clone();
        let lost_inbox = std::mem::take(&mut self.inbox);
        self.storage =
            MemStorage::new_with_conf_state(ConfState::from((self.voters.clone(), vec![])));
        {
            let mut w = self.storage.wl();
            w.append(&survived.entries).expect("replay durable log");
            w.set_hardstate(survived.hard_state);
        }
        self.store = fresh_store();
        self.applied = 0;
        let mut lost: Vec<usize> = self.proposals.drain().map(|(_, op)| op).collect();
        lost.extend(lost_inbox.into_iter().filter_map(|i| match i {
            Input::Submit(op, _) => Some(op),
            _ => None,
        }));
        lost.extend(self.read_rounds.drain().flat_map(|(_, ops)| ops));
        lost.extend(self.reads_waiting.drain(..).map(|(_, op)| op));
        self.kinds.clear();
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
        self.fsync.as_ref().is_some_and(|p| !p.raft_told)
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
        match kind {
            kind if kind.is_read() => {
                if self.bugs.local_reads || kind.is_serializable() {
                    out.push(Output::Done(op, ops::read(&self.store, kind)));
                    return;
                }
                if node.leader_id().is_none() {
                    out.push(Output::Rejected(op));
                    return;
                }
                let ctx = self.next_ctx;
                self.next_ctx += 1;
                self.read_rounds.insert(ctx, vec![op]);
                self.kinds.insert(op, kind.clone());
                node.read_index(ctx.to_be_bytes().to_vec());
            }
            _ => {
                let id = self.next_cmd;
                self.next_cmd += 1;
                let cmd = RaftCommand {
                    id,
                    request: Some(ops::request_for(kind)),
                };
                match node.propose(encode_command(&cmd)) {
                    Ok(()) => {
                        self.proposals.insert(id, op);
                        self.kinds.insert(op, kind.clone());
                    }
                    Err(ProposeError::NoLeader | ProposeError::Dropped) => {
                        out.push(Output::Rejected(op));
                    }
                }
            }
        }
        self.drive(out);
    }

    /// Runs Ready cycles until none is left, persisting instantly.
    fn log_entries(&self) -> Vec<Entry> {
        let (first, last) = (
            raft::Storage::first_index(&self.storage).unwrap_or(1),
            raft::Storage::last_index(&self.storage).unwrap_or(0),
        );
        if last < first {
            return vec![];
        }
        raft::Storage::entries(
            &self.storage,
            first,
            last + 1,
            None,
            raft::GetEntriesContext::empty(false),
        )
        .expect("entries of the in-memory log")
    }

    /// The fsync of `epoch` completed: the written log becomes durable and
    /// the cycle that waited for it continues.
    pub fn fsync_done(&mut self, epoch: u64, out: &mut Vec<Output>) {
        let Some(pending) = self.fsync.take_if(|p| p.epoch == epoch) else {
            return;
        };
        self.durable = DurableLog {
            entries: self.log_entries(),
            hard_state: self.storage.rl().hard_state().clone(),
        };
        if !pending.raft_told {
            out.extend(pending.persisted_messages.into_iter().map(Output::Send));
            self.after_persist(out);
        }
        self.drive(out);
        for input in std::mem::take(&mut self.inbox) {
            match input {
                Input::Tick => self.tick(out),
                Input::Step(m) => self.step(*m, out),
                Input::Submit(op, kind) => self.submit(op, &kind, out),
            }
        }
    }

    fn after_persist(&mut self, out: &mut Vec<Output>) {
        let node = self.node.as_mut().expect("member is up");
        let persisted = node.on_persisted();
        out.extend(persisted.messages.into_iter().map(Output::Send));
        self.apply(&persisted.committed_entries, out);
        let node = self.node.as_mut().expect("still up");
        node.on_applied(self.applied);
    }

    fn drive(&mut self, out: &mut Vec<Output>) {
        loop {
            if self.fsync.is_some() && !self.bugs.ack_before_fsync {
                break;
            }
            let Some(node) = self.node.as_mut() else {
                return;
            };
            let Some(cycle) = node.take_cycle() else {
                break;
            };
            out.extend(cycle.messages.into_iter().map(Output::Send));
            assert!(
                cycle.snapshot.is_none(),
                "the simulator never compacts its logs"
            );
            {
                let mut w = self.storage.wl();
                w.append(&cycle.entries).expect("append");
                if let Some(hs) = cycle.hard_state {
                    w.set_hardstate(hs);
                }
            }
            if self.bugs.ack_uncommitted && node.is_leader() {
                for e in &cycle.entries {
                    if let Ok(Some(cmd)) = decode_command(e.index, &e.data) {
                        if let Some(op) = self.proposals.remove(&cmd.id) {
                            let kind = self.kinds.remove(&op).expect("a proposal has a kind");
                            out.push(Output::Done(op, ops::predicted(&kind)));
                        }
                    }
                }
            }
            for rs in &cycle.read_states {
                let ctx =
                    u64::from_be_bytes(rs.request_ctx.as_slice().try_into().expect("8-byte ctx"));
                if let Some(ops) = self.read_rounds.remove(&ctx) {
                    self.reads_waiting
                        .extend(ops.into_iter().map(|op| (rs.index, op)));
                }
            }
            self.apply(&cycle.committed_entries, out);
            let needs_fsync = !cycle.entries.is_empty() || cycle.must_sync;
            if !needs_fsync {
                out.extend(cycle.persisted_messages.into_iter().map(Output::Send));
                self.after_persist(out);
                continue;
            }
            self.fsync_epoch += 1;
            out.push(Output::Fsync(self.fsync_epoch));
            let raft_told = self.bugs.ack_before_fsync;
            let waiting_messages = if raft_told {
                out.extend(cycle.persisted_messages.into_iter().map(Output::Send));
                self.after_persist(out);
                vec![]
            } else {
                cycle.persisted_messages
            };
            match self.fsync.as_mut() {
                Some(p) => p.epoch = self.fsync_epoch,
                None => {
                    self.fsync = Some(PendingFsync {
                        epoch: self.fsync_epoch,
                        persisted_messages: waiting_messages,
                        raft_told,
                    })
                }
            }
        }
        self.finish_reads(out);
    }

    fn apply(&mut self, entries: &[Entry], out: &mut Vec<Output>) {
        for e in entries {
            let cmd = decode_command(e.index, &e.data).expect("decodable command");
            let request = cmd.as_ref().and_then(|c| c.request.as_ref());
            let (state, mut results) = self
                .store
                .apply(
                    &[ApplyEntry {
                        index: e.index,
                        request,
                    }],
                    false,
                )
                .expect("in-memory apply");
            self.applied = state.applied_index;
            out.push(Output::Applied {
                index: e.index,
                term: e.term,
                data_crc: crc32fast::hash(&e.data),
                revision: state.current_revision,
            });
            let (Some(cmd), Some(Some(result))) = (cmd, results.pop()) else {
                continue;
            };
            if let Some(op) = self.proposals.remove(&cmd.id) {
                let kind = self.kinds.remove(&op).expect("a proposal has a kind");
                out.push(Output::Done(op, ops::result_of(&kind, result)));
            }
        }
    }

    fn finish_reads(&mut self, out: &mut Vec<Output>) {
        let applied = self.applied;
        let (ready, waiting): (Vec<_>, Vec<_>) = std::mem::take(&mut self.reads_waiting)
            .into_iter()
            .partition(|(i, _)| *i <= applied);
        self.reads_waiting = waiting;
        for (_, op) in ready {
            let kind = self.kinds.remove(&op).expect("every read has a kind");
            out.push(Output::Done(op, ops::read(&self.store, &kind)));
        }
    }
}
