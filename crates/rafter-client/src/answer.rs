//! The typed vocabulary of the consistency dial: what a call asks for
//! (`Consistency`, `Wait`) and what it gets back (`Answer`, `Outcome`,
//! `RequestId`), so callers never handle raw protobuf fields.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use rafter_proto::rafterpb;

/// How fresh a read must be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Consistency {
    /// Linearizable: the value was stored on a majority when the read was
    /// ordered (ReadIndex).
    Consistent,
    /// The newest value on the member that received the request.
    Local,
}

/// How long a call may take.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wait {
    /// As long as it takes (a leader, a quorum); the client retries across
    /// endpoints until it has a definite answer.
    Blocking,
    /// At most this long, retries included; then the answer says
    /// `timeout` and, for a mutation, whether it was cancelled or is
    /// pending.
    For(Duration),
}

impl Wait {
    /// `Wait::For` in milliseconds.
    pub fn ms(timeout_ms: u64) -> Wait {
        Wait::For(Duration::from_millis(timeout_ms))
    }
}

/// A mutation's identity: its session and its sequence number there.
/// Printed and parsed as `SESSION-SEQ` in decimal.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RequestId {
    pub session_id: u64,
    pub seq: u64,
}

impl fmt::Display for RequestId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.session_id, self.seq)
    }
}

/// Why a text is not a request id.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("bad request id {0:?}: expected SESSION-SEQ (two positive decimal numbers)")]
pub struct BadRequestId(pub String);

impl FromStr for RequestId {
    type Err = BadRequestId;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let bad = || BadRequestId(text.to_string());
        let (session, seq) = text.split_once('-').ok_or_else(bad)?;
        let number = |s: &str| -> Result<u64, BadRequestId> {
            if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
                return Err(bad());
            }
            s.parse::<u64>().ok().filter(|&n| n > 0).ok_or_else(bad)
        };
        Ok(RequestId {
            session_id: number(session)?,
            seq: number(seq)?,
        })
    }
}

impl From<rafterpb::RequestId> for RequestId {
    fn from(r: rafterpb::RequestId) -> Self {
        RequestId {
            session_id: r.session_id,
            seq: r.seq,
        }
    }
}

impl From<RequestId> for rafterpb::RequestId {
    fn from(r: RequestId) -> Self {
        rafterpb::RequestId {
            session_id: r.session_id,
            seq: r.seq,
        }
    }
}

/// What became of a mutation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// A read (or nothing was proposed).
    None,
    /// Applied exactly once; the answer is the original one.
    Applied,
    /// Definitely never applied.
    Cancelled,
    /// Not decided yet: ask `outcome(request_id)` later.
    Pending,
    /// Refused by the state machine without a change.
    Rejected,
}

impl Outcome {
    /// The proto enum's name (`APPLIED`, ...), as the CLI prints it.
    pub fn name(self) -> &'static str {
        match self {
            Outcome::None => "NONE",
            Outcome::Applied => "APPLIED",
            Outcome::Cancelled => "CANCELLED",
            Outcome::Pending => "PENDING",
            Outcome::Rejected => "REJECTED",
        }
    }

    /// Whether the request's fate is known for good.
    pub fn is_definite(self) -> bool {
        self != Outcome::Pending
    }
}

impl From<rafterpb::Outcome> for Outcome {
    fn from(o: rafterpb::Outcome) -> Self {
        match o {
            rafterpb::Outcome::Unspecified => Outcome::None,
            rafterpb::Outcome::Applied => Outcome::Applied,
            rafterpb::Outcome::Cancelled => Outcome::Cancelled,
            rafterpb::Outcome::Pending => Outcome::Pending,
            rafterpb::Outcome::Rejected => Outcome::Rejected,
        }
    }
}

/// A dial call's answer (seed 004's `{valid, timeout, value}` plus the
/// details that make it definite).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    /// Get: the read succeeded. Set: it took effect. Swap: it swapped.
    pub valid: bool,
    /// The call's deadline passed first.
    pub timeout: bool,
    /// Get: the value. Swap that did not swap: what the key holds.
    pub value: Vec<u8>,
    /// Whether the key exists (Get, failed Swap).
    pub found: bool,
    /// Store revision of the answer.
    pub revision: i64,
    /// The mutation's id (for `outcome`), if it was one.
    pub request_id: Option<RequestId>,
    pub outcome: Outcome,
    /// Why the answer is not valid (empty otherwise).
    pub error: String,
    /// The member that answered (0 when no member did).
    pub member_id: u64,
    /// A local write's dot and causal context (a local Set, or a local Get
    /// answered from a write still queued at the member).
    pub local: Option<rafterpb::LocalWriteInfo>,
}

impl Answer {
    /// A timed-out answer no member gave: for a mutation with `request_id`
    /// its fate is pending, otherwise nothing happened.
    pub(crate) fn client_timeout(request_id: Option<RequestId>) -> Answer {
        Answer {
            valid: false,
            timeout: true,
            value: Vec::new(),
            found: false,
            revision: 0,
            request_id,
            outcome: if request_id.is_some() {
                Outcome::Pending
            } else {
                Outcome::None
            },
            error: "timed out before any member answered".into(),
            member_id: 0,
            local: None,
        }
    }
}

impl From<rafterpb::DialResponse> for Answer {
    fn from(r: rafterpb::DialResponse) -> Self {
        Answer {
            valid: r.valid,
            timeout: r.timeout,
            outcome: r.outcome().into(),
            value: r.value,
            found: r.found,
            revision: r.revision,
            request_id: r.request_id.map(Into::into),
            error: r.error,
            member_id: r.member_id,
            local: r.local,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_ids_print_and_parse_as_session_dash_seq() {
        let id = RequestId {
            session_id: 12,
            seq: 3,
        };
        assert_eq!(id.to_string(), "12-3");
        assert_eq!("12-3".parse::<RequestId>(), Ok(id));
        for bad in [
            "", "12", "12-", "-3", "a-3", "12-3-4", "0-3", "12-0", "+1-2",
        ] {
            assert!(bad.parse::<RequestId>().is_err(), "{bad:?} parsed");
        }
    }
}
