//! Proposals waiting for their entry: which request an applied entry
//! answers, and when a proposal is abandoned.
//!
//! A proposal made in a client session does not simply time out: at its
//! deadline the core orders a cancel of it through the log, and the cancel's
//! result (applied before, or cancelled) answers the client; only when the
//! cancel cannot be ordered in time is the answer "pending".
//!
//! A proposal is matched to its entry by command id, never by log position:
//! a new leader may overwrite the slot a proposal was appended at with a
//! different entry, whose result must not reach this proposal's client.

use std::collections::{BTreeSet, HashMap};

use rafter_proto::rafterpb::{raft_command::Request as KvRequest, ClientTag};

use crate::state_machine::RequestId;

/// What a proposal's deadline means.
#[derive(Debug, Clone, PartialEq)]
pub enum AtDeadline {
    /// The client hears "timed out" (the entry may still apply later).
    TimeOut,
    /// Order a cancel of (session, seq) and answer with its result; wait
    /// for it up to `grace_ticks`.
    Cancel {
        session_id: u64,
        seq: u64,
        grace_ticks: u64,
    },
    /// This is the cancel: past its deadline the outcome is pending.
    Pending,
    /// A blocking proposal that may have been lost: propose it again.
    Retry {
        request: Box<KvRequest>,
        client: Option<ClientTag>,
    },
}

#[derive(Debug, Clone)]
struct Waiting {
    req: RequestId,
    deadline_tick: u64,
    at_deadline: AtDeadline,
    /// Log index the leader appended it at (used only by the
    /// `fault-slot-by-index` mutation check).
    appended_at: Option<u64>,
}

/// Proposals in the log (or forwarded to the leader), by command id.
#[derive(Debug, Default)]
pub struct Proposals {
    by_command: HashMap<u64, Waiting>,
    /// (deadline tick, command id), so the earliest deadline is at hand
    /// (a client's deadline may be a few milliseconds away).
    deadlines: BTreeSet<(u64, u64)>,
}

impl Proposals {
    pub fn insert(
        &mut self,
        command_id: u64,
        req: RequestId,
        deadline_tick: u64,
        at_deadline: AtDeadline,
        appended_at: Option<u64>,
    ) {
        self.deadlines.insert((deadline_tick, command_id));
        let old = self.by_command.insert(
            command_id,
            Waiting {
                req,
                deadline_tick,
                at_deadline,
                appended_at,
            },
        );
        assert!(old.is_none(), "command id {command_id} proposed twice");
    }

    /// The request that the entry (`index`, carrying `command_id`) answers,
    /// removed from the waiting set.
    pub fn take_answered(&mut self, index: u64, command_id: Option<u64>) -> Option<RequestId> {
        if crate::fault::active(crate::fault::Fault::SlotByIndex) {
            let id = self
                .by_command
                .iter()
                .find(|(_, w)| w.appended_at == Some(index))
                .map(|(id, _)| *id);
            if let Some(id) = id {
                return self.remove(id).map(|w| w.req);
            }
        }
        self.remove(command_id?).map(|w| w.req)
    }

    fn remove(&mut self, command_id: u64) -> Option<Waiting> {
        let w = self.by_command.remove(&command_id)?;
        self.deadlines.remove(&(w.deadline_tick, command_id));
        Some(w)
    }

    /// The earliest deadline of a waiting proposal.
    pub fn earliest_deadline(&self) -> Option<u64> {
        self.deadlines.first().map(|(tick, _)| *tick)
    }

    /// Removes and returns the proposals whose deadline has passed, with
    /// what their deadline means, in request order.
    pub fn expire(&mut self, now_tick: u64) -> Vec<(RequestId, AtDeadline)> {
        let mut out = Vec::new();
        while let Some(&(tick, command_id)) = self.deadlines.first() {
            if tick > now_tick {
                break;
            }
            let w = self.remove(command_id).expect("indexed proposals exist");
            out.push((w.req, w.at_deadline));
        }
        out.sort_unstable_by_key(|(req, _)| *req);
        out
    }

    /// Drops every proposal (the member stops); returns them.
    pub fn drain(&mut self) -> Vec<RequestId> {
        self.deadlines.clear();
        let mut out: Vec<RequestId> = self.by_command.drain().map(|(_, w)| w.req).collect();
        out.sort_unstable();
        out
    }

    pub fn len(&self) -> usize {
        self.by_command.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_command.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_overwritten_slot_answers_nobody() {
        let mut p = Proposals::default();
        p.insert(100, 1, 50, AtDeadline::TimeOut, Some(7));
        // Another leader's entry (command 200) landed at index 7.
        assert_eq!(p.take_answered(7, Some(200)), None);
        assert_eq!(p.take_answered(9, Some(100)), Some(1));
        assert!(p.is_empty());
    }

    #[test]
    fn expired_proposals_are_returned_once() {
        let mut p = Proposals::default();
        p.insert(1, 10, 5, AtDeadline::TimeOut, None);
        p.insert(2, 11, 9, AtDeadline::Pending, None);
        assert_eq!(p.expire(5), vec![(10, AtDeadline::TimeOut)]);
        assert!(p.expire(5).is_empty());
        assert_eq!(p.len(), 1);
    }
}
