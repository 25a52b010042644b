//! Local writers: clients that make `Set(consistent=false)` writes on
//! random members (including ones cut off or about to crash), and the
//! check of what became of every acknowledged one after settling. The
//! acknowledgement comes once the write is in the member's durable queue;
//! from there the core must bring it into the log.
//!
//! Properties (after the cluster healed and settled):
//! - every acknowledged local write was decided (its member's applied seq
//!   reached it): nothing acknowledged is lost, across crashes;
//! - its value appears exactly once in its key's history, at a revision
//!   after its context (it took effect after it was accepted), unless the
//!   conflict log says its key's policy did not apply it (then never);
//! - every conflict log record names its key's policy and a decision
//!   that policy can make (last-writer-wins: the higher stamp wins);
//! - one member's writes to a key appear in their seq order.

use std::collections::{BTreeMap, BTreeSet};

use rafter_proto::mvccpb::Event;
use rafter_proto::rafterpb::{ConflictDecision, ConflictPolicy, ConflictRecord, LocalWrite};
use rafter_storage::mvcc::conflicts;
use rafter_storage::MvccStore;

/// Writes acknowledged to local writers.
#[derive(Debug, Default)]
pub struct LocalAcks {
    acks: Vec<(u64, LocalWrite)>,
}

impl LocalAcks {
    pub fn acknowledged(&mut self, at_ms: u64, write: LocalWrite) {
        self.acks.push((at_ms, write));
    }

    pub fn len(&self) -> usize {
        self.acks.len()
    }

    pub fn is_empty(&self) -> bool {
        self.acks.is_empty()
    }

    /// The acknowledged writes' values (numbers, as the clients' are).
    pub fn values(&self) -> BTreeSet<u64> {
        self.acks
            .iter()
            .filter_map(|(_, w)| std::str::from_utf8(&w.value).ok()?.parse().ok())
            .collect()
    }

    /// Problems with the acknowledged writes, judged on `store` (a member
    /// that applied everything) and its full `history`.
    pub fn check(&self, store: &MvccStore, history: &[Event]) -> Vec<String> {
        let mut problems = Vec::new();
        // value -> revisions where it was written
        let mut written: BTreeMap<&[u8], Vec<i64>> = BTreeMap::new();
        for e in history {
            if let Some(kv) = &e.kv {
                if e.r#type == rafter_proto::mvccpb::event::EventType::Put as i32 {
                    written.entry(&kv.value).or_default().push(kv.mod_revision);
                }
            }
        }
        let records = store.conflicts(b"", 0).map(|(r, _)| r).unwrap_or_default();
        let policies = store.conflict_policies().unwrap_or_default();
        let mut not_applied = BTreeSet::new();
        for r in &records {
            if let Some(p) = record_problem(r, conflicts::policy_for(&policies, &r.key)) {
                problems.push(format!(
                    "conflict log: m{}#{} on {:?}: {p}",
                    r.member_id,
                    r.seq,
                    String::from_utf8_lossy(&r.key)
                ));
            }
            if matches!(
                r.decision(),
                ConflictDecision::LocalLost | ConflictDecision::Rejected
            ) {
                not_applied.insert((r.member_id, r.seq));
            }
        }
        let mut last_rev: BTreeMap<(u64, Vec<u8>), (u64, i64)> = BTreeMap::new();
        for (at_ms, w) in &self.acks {
            let applied = store.local_applied_seq(w.member_id).unwrap_or(0);
            if applied < w.seq {
                problems.push(format!(
                    "local write m{}#{} (acknowledged at {at_ms} ms) was lost: the member's writes applied only up to #{applied}",
                    w.member_id, w.seq
                ));
                continue;
            }
            let revs = written.get(w.value.as_slice()).cloned().unwrap_or_default();
            if not_applied.contains(&(w.member_id, w.seq)) {
                if !revs.is_empty() {
                    problems.push(format!(
                        "local write m{}#{} is in the conflict log as not applied, yet applied at revisions {revs:?}",
                        w.member_id, w.seq
                    ));
                }
                continue;
            }
            if revs.len() != 1 {
                problems.push(format!(
                    "local write m{}#{} (acknowledged at {at_ms} ms) applied {} times, at revisions {revs:?}",
                    w.member_id,
                    w.seq,
                    revs.len()
                ));
                continue;
            }
            if revs[0] <= w.context_revision {
                problems.push(format!(
                    "local write m{}#{} applied at revision {}, not after its context revision {}",
                    w.member_id, w.seq, revs[0], w.context_revision
                ));
            }
            let key = (w.member_id, w.key.clone());
            if let Some((seq, rev)) = last_rev.get(&key) {
                if revs[0] < *rev {
                    problems.push(format!(
                        "local write m{}#{} applied at revision {} before #{seq} (revision {rev})",
                        w.member_id, w.seq, revs[0]
                    ));
                }
            }
            last_rev.insert(key, (w.seq, revs[0]));
        }
        problems
    }
}

/// What is wrong with a conflict record, given its key's policy now (the
/// runs set policies once, at their start, so a record made before they
/// applied may name commit-order).
fn record_problem(r: &ConflictRecord, policy: ConflictPolicy) -> Option<String> {
    let named = r.policy();
    if named != policy && named != ConflictPolicy::CommitOrder {
        return Some(format!("names policy {named:?}, the key's is {policy:?}"));
    }
    let stamps = r.local_stamp.zip(r.committed_stamp);
    let allowed = match named {
        ConflictPolicy::CommitOrder => r.decision() == ConflictDecision::AppliedInCommitOrder,
        ConflictPolicy::RejectIfChanged => r.decision() == ConflictDecision::Rejected,
        ConflictPolicy::LastWriterWins => match stamps {
            None => false,
            Some((local, committed)) => {
                let won = conflicts::stamp_order(&local) > conflicts::stamp_order(&committed);
                r.decision()
                    == if won {
                        ConflictDecision::LocalWon
                    } else {
                        ConflictDecision::LocalLost
                    }
            }
        },
    };
    (!allowed).then(|| format!("decision {:?} under {named:?}", r.decision()))
}
