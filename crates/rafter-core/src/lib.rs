//! The sans-I/O member. [`Node`] is the deterministic member that owns a
//! request's whole life (proposals, reads, apply order, snapshots,
//! compaction, abandoned waiters); [`Member`] beneath it wraps raft-rs's
//! `RawNode`. Neither reads a clock, opens a socket or file, or spawns
//! anything, so the server and the simulator drive the same code.

pub mod command;
pub mod compaction;
pub mod fault;
pub mod forwarded;
pub mod hlc;
pub mod lease;
pub mod local_writes;
pub mod logger;
pub mod member;
pub mod membership;
pub mod node;
pub mod proposals;
pub mod raft_storage;
pub mod reads;
pub mod state_machine;
pub mod watch;
pub mod wire;

pub use command::{decode_command, encode_command, peek_command_id, CommandError};
pub use member::{Cycle, Member, MemberConfig, Persisted, ProposeError};
pub use node::{Action, Granted, LogWrite, Node, NodeConfig, RequestError, Wait};
pub use raft_storage::RaftStorage;
pub use state_machine::{
    apply_batch, Applied, ApplyBatch, ApplyError, Command, RequestId, SmApplied, SmSnapshot,
    StateMachine, WatchFeed,
};
