//! The encoding of Raft messages between members. raft-rs 0.7 speaks
//! rust-protobuf 2 (advisory RUSTSEC-2024-0437: unbounded recursion on
//! malicious input), so decoding is confined to this module and bounded in
//! size; only members of the same cluster reach it.

use protobuf::Message as _;
use raft::eraftpb::Message;

/// Largest Raft message accepted from a peer (snapshots included).
pub const MAX_PEER_MESSAGE_BYTES: usize = 512 * 1024 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum WireError {
    #[error("peer message of {0} bytes exceeds the {MAX_PEER_MESSAGE_BYTES} byte limit")]
    TooLarge(usize),
    #[error("undecodable peer message: {0}")]
    Decode(#[from] protobuf::ProtobufError),
}

pub fn encode_message(m: &Message) -> Vec<u8> {
    m.write_to_bytes()
        .expect("encoding an in-memory raft message cannot fail")
}

pub fn decode_message(bytes: &[u8]) -> Result<Message, WireError> {
    if bytes.len() > MAX_PEER_MESSAGE_BYTES {
        return Err(WireError::TooLarge(bytes.len()));
    }
    Ok(Message::parse_from_bytes(bytes)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_garbage() {
        let m = Message {
            from: 1,
            to: 2,
            term: 7,
            ..Default::default()
        };
        assert_eq!(decode_message(&encode_message(&m)).unwrap(), m);
        assert!(decode_message(&[0xff, 0xff, 0xff]).is_err());
    }
}
