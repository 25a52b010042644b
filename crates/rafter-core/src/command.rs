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

/// The command id of an entry's payload without decoding its request
/// (`rafterpb.RaftCommand` field 1, a varint, comes first in prost's
/// encoding); `None` for an empty payload or one without an id.
pub fn peek_command_id(data: &[u8]) -> Option<u64> {
    const ID_TAG: u8 = 0x08; // field 1, wire type varint
    if data.first() != Some(&ID_TAG) {
        return RaftCommand::decode(data)
            .ok()
            .map(|c| c.id)
            .filter(|id| *id != 0);
    }
    let mut id = 0u64;
    for (i, byte) in data[1..].iter().take(10).enumerate() {
        id |= u64::from(byte & 0x7f) << (7 * i);
        if byte & 0x80 == 0 {
            return Some(id);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn peeked_id_matches_the_decoded_one() {
        for id in [1, 127, 128, 300, u64::MAX >> 1, u64::MAX] {
            let data = encode_command(&RaftCommand {
                id,
                ..Default::default()
            });
            assert_eq!(peek_command_id(&data), Some(id), "id {id}");
        }
        assert_eq!(peek_command_id(&[]), None);
        assert_eq!(
            peek_command_id(&encode_command(&RaftCommand::default())),
            None
        );
    }
}
