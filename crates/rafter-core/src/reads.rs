//! Linearizable reads: when a read may be answered.
//!
//! Reads that arrive between two batches share one raft-rs ReadIndex round
//! (one heartbeat quorum for all of them). The round's `ReadState` gives the
//! read index; a read is granted only once the state machine has applied up
//! to it, so the local read that follows sees every write acknowledged
//! before the read began.

use std::collections::{BTreeMap, HashMap};

use crate::state_machine::RequestId;

/// A read waiting for something, with the tick after which it is abandoned.
#[derive(Debug, Clone, Copy)]
pub struct ReadWaiter {
    pub req: RequestId,
    pub deadline_tick: u64,
}

/// Every read in the core, by stage.
#[derive(Debug, Default)]
pub struct Reads {
    /// Not yet sent to Raft: the next round takes them all.
    queued: Vec<ReadWaiter>,
    /// Rounds in flight, by their context counter.
    in_flight: HashMap<u64, Vec<ReadWaiter>>,
    next_ctx: u64,
    /// Read index known; waiting for the state machine to reach it.
    waiting_apply: BTreeMap<u64, Vec<ReadWaiter>>,
}

impl Reads {
    pub fn queue(&mut self, w: ReadWaiter) {
        self.queued.push(w);
    }

    /// Starts a round for every queued read, if any: returns the context to
    /// hand raft-rs. The context carries the member id because raft-rs keys
    /// pending rounds by context across the cluster (followers forward
    /// theirs to the leader, which drops duplicates).
    pub fn start_round(&mut self, member_id: u64) -> Option<Vec<u8>> {
        if self.queued.is_empty() {
            return None;
        }
        self.next_ctx += 1;
        let ctx = self.next_ctx;
        self.in_flight.insert(ctx, std::mem::take(&mut self.queued));
        let mut context = member_id.to_be_bytes().to_vec();
        context.extend_from_slice(&ctx.to_be_bytes());
        Some(context)
    }

    /// A round came back with `read_index`: its reads wait for apply (or are
    /// granted at once when `applied` already covers it). Returns the reads
    /// granted now.
    pub fn round_done(
        &mut self,
        member_id: u64,
        context: &[u8],
        read_index: u64,
        applied: u64,
    ) -> Vec<(RequestId, u64)> {
        let Some(ctx) = own_context(member_id, context) else {
            return vec![];
        };
        let Some(waiters) = self.in_flight.remove(&ctx) else {
            return vec![];
        };
        self.waiting_apply
            .entry(read_index)
            .or_default()
            .extend(waiters);
        self.granted(applied)
    }

    /// Removes and returns every read whose read index `applied` covers.
    pub fn granted(&mut self, applied: u64) -> Vec<(RequestId, u64)> {
        let mut out = Vec::new();
        let covered = if crate::fault::active(crate::fault::Fault::ReadBeforeApplied) {
            u64::MAX
        } else {
            applied
        };
        while let Some(entry) = self.waiting_apply.first_entry() {
            if *entry.key() > covered {
                break;
            }
            let index = *entry.key();
            out.extend(entry.remove().into_iter().map(|w| (w.req, index)));
        }
        out
    }

    /// Removes and returns the reads whose deadline has passed.
    pub fn expire(&mut self, now_tick: u64) -> Vec<RequestId> {
        let mut out = Vec::new();
        let mut keep = |ws: &mut Vec<ReadWaiter>| {
            ws.retain(|w| {
                let live = w.deadline_tick > now_tick;
                if !live {
                    out.push(w.req);
                }
                live
            });
            !ws.is_empty()
        };
        keep(&mut self.queued);
        self.in_flight.retain(|_, ws| keep(ws));
        self.waiting_apply.retain(|_, ws| keep(ws));
        out
    }

    /// Drops every read (the member stops); returns them.
    pub fn drain(&mut self) -> Vec<RequestId> {
        let mut out: Vec<RequestId> = self.queued.drain(..).map(|w| w.req).collect();
        out.extend(self.in_flight.drain().flat_map(|(_, ws)| ws).map(|w| w.req));
        out.extend(
            std::mem::take(&mut self.waiting_apply)
                .into_values()
                .flatten()
                .map(|w| w.req),
        );
        out
    }

    pub fn len(&self) -> usize {
        self.queued.len()
            + self.in_flight.values().map(Vec::len).sum::<usize>()
            + self.waiting_apply.values().map(Vec::len).sum::<usize>()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The round counter of a context this member made, or `None` for a
/// context from elsewhere.
fn own_context(member_id: u64, context: &[u8]) -> Option<u64> {
    if context.len() != 16 || context[..8] != member_id.to_be_bytes() {
        return None;
    }
    Some(u64::from_be_bytes(context[8..].try_into().ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn w(req: RequestId) -> ReadWaiter {
        ReadWaiter {
            req,
            deadline_tick: 10,
        }
    }

    #[test]
    fn one_round_serves_every_queued_read_once_applied() {
        let mut r = Reads::default();
        r.queue(w(1));
        r.queue(w(2));
        let ctx = r.start_round(7).expect("a round");
        assert!(r.start_round(7).is_none(), "nothing left to send");
        assert!(r.round_done(7, &ctx, 5, 4).is_empty(), "applied below");
        assert!(r.granted(4).is_empty());
        assert_eq!(r.granted(5), vec![(1, 5), (2, 5)]);
        assert!(r.is_empty());
    }

    #[test]
    fn foreign_contexts_are_ignored() {
        let mut r = Reads::default();
        r.queue(w(1));
        let ctx = r.start_round(7).expect("a round");
        assert!(r.round_done(8, &ctx, 5, 9).is_empty());
        assert_eq!(r.len(), 1);
    }

    #[test]
    fn expired_reads_leave_every_stage() {
        let mut r = Reads::default();
        r.queue(w(1));
        let ctx = r.start_round(7).expect("a round");
        r.queue(w(2));
        assert!(r.round_done(7, &ctx, 50, 0).is_empty());
        let mut gone = r.expire(10);
        gone.sort_unstable();
        assert_eq!(gone, vec![1, 2]);
        assert!(r.is_empty());
    }
}
