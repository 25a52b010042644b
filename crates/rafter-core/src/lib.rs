//! The sans-I/O member. [`Member`] wraps raft-rs's `RawNode` and turns each
//! Ready into a [`Cycle`]: what the shell must persist (one fsync), send, and
//! apply. It reads no clock, opens no socket or file and spawns nothing, so a
//! simulator can drive whole clusters of it from one seed.

pub mod command;
pub mod logger;
pub mod member;
pub mod wire;

pub use command::{decode_command, encode_command, CommandError};
pub use member::{Cycle, Member, MemberConfig, Persisted, ProposeError};
