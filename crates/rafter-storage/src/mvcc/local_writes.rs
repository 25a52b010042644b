//! Applying local writes (`Set(consistent=false)`, seed 004 "Case 2") once
//! they reach the log. Each member numbers its writes 1, 2, ...; the
//! `local_dots` table holds the last seq applied per member, and apply
//! takes only the next one, so a write proposed twice, or ahead of an
//! earlier one still on its way, changes nothing and its member proposes
//! again from its oldest queued write: each write applies exactly once, in
//! its member's order.
//!
//! A write whose key changed after the write's context revision (the
//! member's applied revision when it accepted it) was concurrent with that
//! change, and the key's conflict policy decides it (`conflicts.rs`):
//! `COMMIT_ORDER` applies it where it commits, `LAST_WRITER_WINS` only if
//! its stamp is higher than the key's last change's, `REJECT_IF_CHANGED`
//! never. Either way the meeting is recorded in the conflict log, so no
//! acknowledged write is lost silently. A write not applied still takes
//! its seq: it was decided.

use rafter_proto::etcdserverpb::PutRequest;
use rafter_proto::rafterpb::{
    ConflictDecision, ConflictPolicy, ConflictRecord, HlcStamp, LocalWrite, LocalWriteBatch,
};
use redb::ReadableTable;

use super::conflicts;
use super::tables::latest_get;
use super::write::Writer;
use super::MvccError;

/// What apply did with a local write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalWriteApplied {
    pub member_id: u64,
    pub seq: u64,
    /// False when the seq was not the member's next, or the key's policy
    /// decided against it: nothing changed.
    pub applied: bool,
    /// The key changed after the write's context revision.
    pub concurrent: bool,
    /// The store's revision after it.
    pub revision: i64,
}

impl Writer<'_> {
    /// Applies a round of one member's local writes, each as its own
    /// request with its own revision (when it changes anything).
    pub(super) fn local_write_batch(
        &mut self,
        batch: &LocalWriteBatch,
    ) -> Result<Vec<LocalWriteApplied>, MvccError> {
        let mut answers = Vec::with_capacity(batch.writes.len());
        for w in &batch.writes {
            self.changes = 0;
            let mut answer = match self.local_write(w) {
                Ok(answer) => answer,
                Err(e) => {
                    // The whole apply transaction is abandoned.
                    self.changes = 0;
                    return Err(e);
                }
            };
            if self.changes > 0 {
                self.current_rev += 1;
            }
            answer.revision = self.current_rev;
            answers.push(answer);
        }
        self.changes = 0;
        Ok(answers)
    }

    fn local_write(&mut self, w: &LocalWrite) -> Result<LocalWriteApplied, MvccError> {
        let last = self.local_dots.get(w.member_id)?.map_or(0, |v| v.value());
        let mut answer = LocalWriteApplied {
            member_id: w.member_id,
            seq: w.seq,
            applied: false,
            concurrent: false,
            revision: 0,
        };
        if w.seq <= last && !rafter_core::fault::active(rafter_core::fault::Fault::LocalWriteTwice)
        {
            // A copy of an applied write: its member may not know yet that
            // it applied (a lost report, a restart), so say so again.
            self.local_dots_changed.push((w.member_id, last));
            return Ok(answer);
        }
        if w.seq > last + 1 {
            return Ok(answer);
        }
        let change = self.change_since(&w.key, w.context_revision)?;
        answer.concurrent = change.is_some();
        let local_stamp = HlcStamp {
            physical_ms: w.hlc_physical_ms,
            logical: w.hlc_logical,
            member_id: w.member_id,
        };
        let decision = match &change {
            None => None,
            Some(change) => Some(self.decide(w, &local_stamp, change)?),
        };
        // `fault-conflict-ignored`: a test-only bug that applies every
        // local write whatever its policy decided (the conflict log still
        // says it was not applied).
        let apply = rafter_core::fault::active(rafter_core::fault::Fault::ConflictIgnored)
            || matches!(
                decision,
                None | Some((
                    _,
                    ConflictDecision::AppliedInCommitOrder | ConflictDecision::LocalWon
                ))
            );
        if apply {
            let outer = self.stamp.replace(local_stamp);
            let put = self.put(&PutRequest {
                key: w.key.clone(),
                value: w.value.clone(),
                ..Default::default()
            });
            self.stamp = outer;
            put?;
        }
        if let (Some(change), Some((policy, decision))) = (change, decision) {
            let committed_stamp = if policy == ConflictPolicy::LastWriterWins {
                Some(change.stamp)
            } else {
                None
            };
            conflicts::record_put(
                &mut self.conflict_state,
                &ConflictRecord {
                    key: w.key.clone(),
                    local_value: w.value.clone(),
                    committed_exists: change.value.is_some(),
                    committed_value: change.value.unwrap_or_default(),
                    member_id: w.member_id,
                    seq: w.seq,
                    local_stamp: Some(local_stamp),
                    committed_stamp,
                    context_revision: w.context_revision,
                    committed_mod_revision: change.mod_revision,
                    revision: if self.changes > 0 {
                        self.current_rev + 1
                    } else {
                        self.current_rev
                    },
                    policy: policy as i32,
                    decision: decision as i32,
                },
            )?;
        }
        self.local_dots.insert(w.member_id, w.seq.max(last))?;
        self.local_dots_changed.push((w.member_id, w.seq));
        answer.applied = apply;
        Ok(answer)
    }

    /// The key's change after `context_revision`, if it had one: its
    /// current value (`None`: deleted) and the revision of that change.
    /// History below the compaction point is gone, so a key with no live
    /// record whose context is older than it counts as changed (revision 0:
    /// unknown), never as unchanged.
    fn change_since(&self, key: &[u8], context_revision: i64) -> Result<Option<Change>, MvccError> {
        let stamp = || -> Result<HlcStamp, MvccError> {
            Ok(conflicts::stamp_get(&self.conflict_state, key)?.unwrap_or_default())
        };
        if let Some(live) = latest_get(&self.latest, key)? {
            if live.mod_revision <= context_revision {
                return Ok(None);
            }
            return Ok(Some(Change {
                mod_revision: live.mod_revision,
                value: Some(live.value),
                stamp: stamp()?,
            }));
        }
        let after = (context_revision.max(0) as u64).saturating_add(1);
        if let Some(item) = self.revs.range((key, after)..=(key, u64::MAX))?.next_back() {
            let (k, sub) = item?;
            debug_assert!(
                super::tables::history_record(&self.history, k.value().1, sub.value())?.tombstone,
                "no live record: deleted"
            );
            return Ok(Some(Change {
                mod_revision: k.value().1 as i64,
                value: None,
                stamp: stamp()?,
            }));
        }
        if context_revision < self.compact_rev {
            return Ok(Some(Change {
                mod_revision: 0,
                value: None,
                stamp: stamp()?,
            }));
        }
        Ok(None)
    }

    /// What the key's policy decides for a concurrent local write.
    fn decide(
        &self,
        w: &LocalWrite,
        local: &HlcStamp,
        change: &Change,
    ) -> Result<(ConflictPolicy, ConflictDecision), MvccError> {
        let policy = conflicts::policy_for(&self.policies, &w.key);
        let decision = match policy {
            ConflictPolicy::CommitOrder => ConflictDecision::AppliedInCommitOrder,
            ConflictPolicy::LastWriterWins => {
                if conflicts::stamp_order(local) > conflicts::stamp_order(&change.stamp) {
                    ConflictDecision::LocalWon
                } else {
                    ConflictDecision::LocalLost
                }
            }
            ConflictPolicy::RejectIfChanged => ConflictDecision::Rejected,
        };
        Ok((policy, decision))
    }
}

/// A committed change of a key after a local write's context.
struct Change {
    mod_revision: i64,
    value: Option<Vec<u8>>,
    stamp: HlcStamp,
}
