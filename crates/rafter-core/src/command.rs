//! The encoding of Rafter's replicated commands (`rafterpb.RaftCommand`) in
//! Raft entries. Kept in one place so the log format has one owner.

use prost::Message as _;
use rafter_proto::rafterpb::RaftCommand;

/// A log entry whose payload is not a valid command: the log is corrupt or was
/// written by an incompatible version.
#[derive(Debug, thiserror::Error)]
#[error("undecodable raft command at index {index}: {source}")]
pub struct CommandError {
    pub index: u64,
    #[source]
    pub source: prost::DecodeError,
}

pub fn encode_command(cmd: &RaftCommand) -> Vec<u8> {
    cmd.encode_to_vec()
}

/// Decodes an entry's payload; an empty payload (a new leader's no-op entry)
/// is `None`.
pub fn decode_command(index: u64, data: &[u8]) -> Result<Option<RaftCommand>, CommandError> {
    if data.is_empty() {
        return Ok(None);
    }
    RaftCommand::decode(data)
        .map(Some)
        .map_err(|source| CommandError { index, source })
}
