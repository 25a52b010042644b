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
//! change. Today every write is applied where it commits (the
//! `commit-order` policy seed 004 asks for); the answer says whether it was
//! concurrent.

use rafter_proto::etcdserverpb::PutRequest;
use rafter_proto::rafterpb::{LocalWrite, LocalWriteBatch};
use redb::ReadableTable;

use super::tables::latest_get;
use super::write::Writer;
use super::MvccError;

/// What apply did with a local write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalWriteApplied {
    pub member_id: u64,
    pub seq: u64,
    /// False when the seq was not the member's next: nothing changed.
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
        if w.seq <= last && !cfg!(feature = "fault-local-write-twice") {
            // A copy of an applied write: its member may not know yet that
            // it applied (a lost report, a restart), so say so again.
            self.local_dots_changed.push((w.member_id, last));
            return Ok(answer);
        }
        if w.seq > last + 1 {
            return Ok(answer);
        }
        answer.concurrent =
            latest_get(&self.latest, &w.key)?.is_some_and(|r| r.mod_revision > w.context_revision);
        self.put(&PutRequest {
            key: w.key.clone(),
            value: w.value.clone(),
            ..Default::default()
        })?;
        self.local_dots.insert(w.member_id, w.seq.max(last))?;
        self.local_dots_changed.push((w.member_id, w.seq));
        answer.applied = true;
        Ok(answer)
    }
}
