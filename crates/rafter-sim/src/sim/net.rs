//! The simulated network: per-message delay, loss and duplication (so also
//! reordering), and partitions of any subset of links, cut and healed one by
//! one (FoundationDB's "swizzle clogging").

use std::collections::BTreeSet;

use raft::eraftpb::{Message, MessageType};

use super::rng::Rng;

/// Network fault settings.
#[derive(Debug, Clone)]
pub struct NetConfig {
    pub min_delay_ms: u64,
    pub max_delay_ms: u64,
    pub drop_per_mille: u64,
    pub dup_per_mille: u64,
}

/// Links and their state. A cut link is directional: (from, to).
#[derive(Debug, Default)]
pub struct Network {
    cut: BTreeSet<(u64, u64)>,
}

impl Network {
    pub fn is_cut(&self, from: u64, to: u64) -> bool {
        self.cut.contains(&(from, to))
    }

    pub fn cut(&mut self, from: u64, to: u64) {
        self.cut.insert((from, to));
    }

    pub fn heal(&mut self, from: u64, to: u64) {
        self.cut.remove(&(from, to));
    }

    pub fn cut_links(&self) -> Vec<(u64, u64)> {
        self.cut.iter().copied().collect()
    }

    /// Delivery times for one message: none (lost), one, or two (duplicate).
    ///
    /// A proposal a follower forwards to the leader (`MsgPropose`) is never
    /// duplicated: raft-rs cannot tell a second copy from a second proposal
    /// and appends it again, and the command is then applied twice (Rafter,
    /// like etcd, does not deduplicate command ids). Rafter's transport (one
    /// gRPC stream per peer, dropping what is queued when a stream breaks)
    /// never delivers a message twice; duplicates stay for Raft's own
    /// messages, which must tolerate them.
    pub fn deliveries(&self, cfg: &NetConfig, rng: &mut Rng, m: &Message, now_ms: u64) -> Vec<u64> {
        if self.is_cut(m.from, m.to) || rng.chance(cfg.drop_per_mille) {
            return vec![];
        }
        let mut at = vec![now_ms + rng.between(cfg.min_delay_ms, cfg.max_delay_ms)];
        if rng.chance(cfg.dup_per_mille) && m.get_msg_type() != MessageType::MsgPropose {
            at.push(now_ms + rng.between(cfg.min_delay_ms, cfg.max_delay_ms));
        }
        at
    }
}
