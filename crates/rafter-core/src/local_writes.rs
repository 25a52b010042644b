//! The member's queued local writes on their way into the log (seed 004
//! "Case 2"). A write accepted with `Set(consistent=false)` is durable in
//! the member's own queue before it is acknowledged; from then on the core
//! proposes it whenever the member knows a leader, and again after a
//! while if it has not applied, until the state machine reports it applied.
//!
//! Apply takes a member's writes only in seq order and only once (the next
//! seq after the last applied one), so proposing the same write twice, or
//! a later write before an earlier one committed, never applies anything
//! twice or out of order: the copies are refused and the queue proposes
//! again from its oldest write.

use std::collections::VecDeque;

use rafter_proto::rafterpb::LocalWrite;

/// Most writes proposed in one round (one log entry).
pub const MAX_WRITES_PER_ROUND: usize = 64;
/// A round stops growing at this many key and value bytes (it always
/// holds at least one write).
pub const MAX_ROUND_BYTES: usize = 1 << 20;

#[derive(Debug, Default)]
pub struct LocalWrites {
    /// Accepted, durable, not applied yet; ascending seq.
    queue: VecDeque<LocalWrite>,
    /// When the last round was proposed (a tick), if it may still apply.
    proposed_at_tick: Option<u64>,
}

impl LocalWrites {
    /// Adds durable writes (in seq order, after any queued ones).
    pub fn push(&mut self, writes: impl IntoIterator<Item = LocalWrite>) {
        for w in writes {
            if let Some(last) = self.queue.back() {
                assert!(
                    w.seq > last.seq,
                    "local write {} queued after {}",
                    w.seq,
                    last.seq
                );
            }
            self.queue.push_back(w);
        }
    }

    pub fn len(&self) -> usize {
        self.queue.len()
    }

    pub fn is_empty(&self) -> bool {
        self.queue.is_empty()
    }

    /// The state machine applied this member's writes up to `seq`: they
    /// leave the queue, and the next round may go out at once.
    pub fn applied_through(&mut self, seq: u64) {
        let before = self.queue.len();
        while self.queue.front().is_some_and(|w| w.seq <= seq) {
            self.queue.pop_front();
        }
        if self.queue.len() != before {
            self.proposed_at_tick = None;
        }
    }

    /// The writes to propose now, if a round is due: none is in flight, or
    /// the last one has had `retry_ticks` to apply.
    pub fn round(&mut self, now_tick: u64, retry_ticks: u64) -> Vec<LocalWrite> {
        if self.queue.is_empty() {
            return Vec::new();
        }
        if let Some(at) = self.proposed_at_tick {
            if now_tick.saturating_sub(at) < retry_ticks {
                return Vec::new();
            }
        }
        self.proposed_at_tick = Some(now_tick);
        let mut bytes = 0;
        let mut round = Vec::new();
        for w in self.queue.iter().take(MAX_WRITES_PER_ROUND) {
            bytes += w.key.len() + w.value.len();
            if !round.is_empty() && bytes > MAX_ROUND_BYTES {
                break;
            }
            round.push(w.clone());
        }
        round
    }

    /// The round in flight may never apply (it was dropped with a lost
    /// leadership): the next one may go out at once.
    pub fn retry_now(&mut self) {
        self.proposed_at_tick = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn w(seq: u64) -> LocalWrite {
        LocalWrite {
            member_id: 1,
            seq,
            ..Default::default()
        }
    }

    #[test]
    fn rounds_go_out_once_then_again_after_the_retry_interval() {
        let mut q = LocalWrites::default();
        assert!(q.round(0, 10).is_empty());
        q.push([w(1), w(2)]);
        assert_eq!(q.round(0, 10).len(), 2);
        assert!(q.round(5, 10).is_empty(), "in flight");
        assert_eq!(q.round(10, 10).len(), 2, "not applied: sent again");
        q.applied_through(1);
        assert_eq!(q.round(11, 10), vec![w(2)], "what is left goes at once");
        q.applied_through(2);
        assert!(q.is_empty());
    }

    #[test]
    #[should_panic(expected = "queued after")]
    fn writes_are_queued_in_seq_order() {
        let mut q = LocalWrites::default();
        q.push([w(2), w(1)]);
    }
}
