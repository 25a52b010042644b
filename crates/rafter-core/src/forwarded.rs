//! Proposals that followers forwarded to this member, remembered for a
//! while so that a forwarded proposal the network delivered twice enters
//! the log once. raft-rs appends every `MsgPropose` it receives as a
//! leader; a duplicate would apply the command twice (a compare-and-swap
//! that failed the first time could succeed the second, after its client
//! was told it failed). Command ids are unique per member and restart, so
//! they identify a proposal.

use std::collections::{HashSet, VecDeque};

use raft::eraftpb::{Message, MessageType};

use crate::command::peek_command_id;

/// How many forwarded command ids are remembered. A duplicate arrives
/// within a network delay of the original; this covers many round trips
/// of proposals at full load.
const REMEMBERED: usize = 65_536;

#[derive(Debug, Default)]
pub struct Forwarded {
    seen: HashSet<u64>,
    order: VecDeque<u64>,
}

impl Forwarded {
    /// Drops from a forwarded proposal every entry already seen; returns
    /// false when nothing is left to step.
    pub fn filter(&mut self, msg: &mut Message) -> bool {
        if msg.get_msg_type() != MessageType::MsgPropose {
            return true;
        }
        let mut entries = msg.take_entries().into_vec();
        entries.retain(|e| match peek_command_id(&e.data) {
            Some(id) => self.remember(id),
            None => true,
        });
        let any = !entries.is_empty();
        msg.set_entries(entries.into());
        any
    }

    /// Records `id`; false if it was already there.
    fn remember(&mut self, id: u64) -> bool {
        if !self.seen.insert(id) {
            return false;
        }
        self.order.push_back(id);
        if self.order.len() > REMEMBERED {
            let old = self.order.pop_front().expect("non-empty");
            self.seen.remove(&old);
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use raft::eraftpb::Entry;

    use super::*;
    use crate::command::encode_command;
    use rafter_proto::rafterpb::RaftCommand;

    fn propose(ids: &[u64]) -> Message {
        let mut m = Message::default();
        m.set_msg_type(MessageType::MsgPropose);
        let entries: Vec<Entry> = ids
            .iter()
            .map(|id| Entry {
                data: encode_command(&RaftCommand {
                    id: *id,
                    ..Default::default()
                })
                .into(),
                ..Default::default()
            })
            .collect();
        m.set_entries(entries.into());
        m
    }

    #[test]
    fn a_duplicate_delivery_is_stepped_once() {
        let mut f = Forwarded::default();
        let mut first = propose(&[1, 2]);
        assert!(f.filter(&mut first));
        assert_eq!(first.entries.len(), 2);
        let mut again = propose(&[1, 2]);
        assert!(!f.filter(&mut again), "the duplicate is dropped");
        let mut mixed = propose(&[2, 3]);
        assert!(f.filter(&mut mixed));
        assert_eq!(mixed.entries.len(), 1);
    }
}
