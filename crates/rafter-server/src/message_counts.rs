//! Raft messages this member sent, by type, for `/metrics`
//! (`rafter_raft_messages_sent_total{type="..."}`): the election benchmark
//! reads them to count the messages an election takes (seed 004's
//! packets-per-election distribution). Counted where the Raft loop hands
//! messages to the transport, so a message to an unreachable peer counts as
//! sent, as in etcd's raft log.

use std::sync::atomic::{AtomicU64, Ordering};

use protobuf::ProtobufEnum as _;
use raft::eraftpb::{Message, MessageType};

/// raft-rs's message types are numbered 0..TYPES.
const TYPES: usize = MessageType::MsgRequestPreVoteResponse as usize + 1;

/// One counter per message type.
#[derive(Debug, Default)]
pub struct MessageCounts([AtomicU64; TYPES]);

impl MessageCounts {
    pub fn record(&self, messages: &[Message]) {
        for message in messages {
            let index = message.get_msg_type() as usize;
            debug_assert!(index < TYPES, "unknown raft message type {index}");
            if let Some(counter) = self.0.get(index) {
                counter.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    /// Every type's name (raft-rs's, e.g. `MsgRequestVote`) and count.
    pub fn snapshot(&self) -> Vec<(String, u64)> {
        MessageType::values()
            .iter()
            .map(|kind| {
                let count = self.0[*kind as usize].load(Ordering::Relaxed);
                (format!("{kind:?}"), count)
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_by_type() {
        let counts = MessageCounts::default();
        let message = |kind| {
            let mut m = Message::default();
            m.set_msg_type(kind);
            m
        };
        counts.record(&[
            message(MessageType::MsgRequestPreVote),
            message(MessageType::MsgRequestPreVote),
            message(MessageType::MsgHeartbeat),
        ]);
        let snapshot = counts.snapshot();
        assert_eq!(snapshot.len(), TYPES);
        let get = |name: &str| snapshot.iter().find(|(n, _)| n == name).unwrap().1;
        assert_eq!(get("MsgRequestPreVote"), 2);
        assert_eq!(get("MsgHeartbeat"), 1);
        assert_eq!(get("MsgRequestVote"), 0);
    }
}
