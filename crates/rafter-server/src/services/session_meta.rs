//! Client sessions on the etcd API: a Put, DeleteRange or Txn that carries
//! `rafter-session-id` and `rafter-seq` (and optionally
//! `rafter-acked-below`) as gRPC metadata is applied at most once, and a
//! retry with the same pair gets the original response. Without them the
//! request is etcd's, unchanged.

use rafter_proto::rafterpb::ClientTag;
use tonic::metadata::MetadataMap;

use crate::error::ApiError;

pub const SESSION_ID: &str = "rafter-session-id";
pub const SEQ: &str = "rafter-seq";
pub const ACKED_BELOW: &str = "rafter-acked-below";

/// The request's session tag, if it carries one.
pub fn session_tag(meta: &MetadataMap) -> Result<Option<ClientTag>, ApiError> {
    let field = |name: &str| -> Result<Option<u64>, ApiError> {
        let Some(v) = meta.get(name) else {
            return Ok(None);
        };
        let text = v
            .to_str()
            .map_err(|_| ApiError::BadSessionTag(format!("{name} is not text")))?;
        text.trim()
            .parse::<u64>()
            .map(Some)
            .map_err(|_| ApiError::BadSessionTag(format!("{name} is not a number: {text:?}")))
    };
    match (field(SESSION_ID)?, field(SEQ)?) {
        (None, None) => Ok(None),
        (Some(session_id), Some(seq)) if session_id != 0 && seq != 0 => Ok(Some(ClientTag {
            session_id,
            seq,
            acked_below: field(ACKED_BELOW)?.unwrap_or(0),
        })),
        (Some(_), Some(_)) => Err(ApiError::BadSessionTag(format!(
            "{SESSION_ID} and {SEQ} must be positive"
        ))),
        _ => Err(ApiError::BadSessionTag(format!(
            "{SESSION_ID} and {SEQ} go together"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta(pairs: &[(&'static str, &'static str)]) -> MetadataMap {
        let mut m = MetadataMap::new();
        for (k, v) in pairs {
            m.insert(*k, v.parse().expect("ascii"));
        }
        m
    }

    #[test]
    fn tags_parse_and_malformed_ones_are_refused() {
        assert_eq!(session_tag(&meta(&[])).expect("none"), None);
        let tag = session_tag(&meta(&[(SESSION_ID, "7"), (SEQ, "3"), (ACKED_BELOW, "2")]))
            .expect("valid")
            .expect("a tag");
        assert_eq!((tag.session_id, tag.seq, tag.acked_below), (7, 3, 2));
        assert!(session_tag(&meta(&[(SESSION_ID, "7")])).is_err());
        assert!(session_tag(&meta(&[(SESSION_ID, "x"), (SEQ, "1")])).is_err());
        assert!(session_tag(&meta(&[(SESSION_ID, "0"), (SEQ, "1")])).is_err());
    }
}
