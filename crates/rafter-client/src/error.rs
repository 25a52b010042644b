//! The client's error type, mapped once from a gRPC status, and the one
//! place that decides which failures a retry on another endpoint may cure.
//!
//! A status the server sent carries Rafter's or etcd's message prefix
//! (`rafter: `, `etcdserver: `); anything else came from the transport (a
//! broken connection, a refused dial), where the request may or may not
//! have reached a member.

use tonic::Code;

/// Why a request failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// The session expired (or was closed): the cluster forgot its
    /// requests' answers, so a request that was outstanding in it has an
    /// unknown fate. Open a new session.
    #[error("rafter: session expired")]
    SessionExpired,
    /// The request id was already acknowledged by this session (its answer
    /// is gone); retrying it can never apply it again.
    #[error("rafter: request already acknowledged")]
    AlreadyAcknowledged,
    /// No member could serve the request (no leader, no quorum, all
    /// endpoints down) before the retries ran out.
    #[error("{0}")]
    Unavailable(String),
    /// The request is malformed (empty key, too large, bad tag...).
    #[error("{0}")]
    InvalidArgument(String),
    /// A session-tagged etcd mutation timed out and was cancelled: it did
    /// not and never will change the store.
    #[error("{0}")]
    Cancelled(String),
    /// The server refused the request for another definite reason.
    #[error("{0}")]
    Rejected(String),
    /// The server does not implement what was asked.
    #[error("{0}")]
    Unimplemented(String),
    /// The connection failed; for a request without a session tag, it may
    /// or may not have been applied (use a `Session` to retry exactly once).
    #[error("transport: {0}")]
    Transport(String),
    /// The call's deadline passed before any member answered. For a
    /// session mutation the dial methods report this as a timed-out,
    /// pending `Answer` instead.
    #[error("{0}")]
    DeadlineExceeded(String),
    /// The endpoint list or an endpoint is unusable.
    #[error("{0}")]
    BadEndpoint(String),
}

/// How a failed attempt should be treated by the retry loop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Failure {
    /// The member said it cannot serve now and did not apply the request
    /// (etcd's `no leader`).
    RefusedUnavailable,
    /// The member may have started the request (a timeout it reports, a
    /// broken connection): retrying is safe only for idempotent requests.
    Ambiguous,
    /// A definite answer: do not retry.
    Final,
}

impl Error {
    /// Maps a gRPC status to the error and how retries should treat it.
    pub(crate) fn from_status(status: &tonic::Status) -> (Error, Failure) {
        let msg = status.message().to_string();
        let from_server = msg.starts_with("rafter: ") || msg.starts_with("etcdserver: ");
        let text = if msg.is_empty() {
            status.code().description().to_string()
        } else {
            msg.clone()
        };
        match status.code() {
            Code::FailedPrecondition if msg.contains("session expired") => {
                (Error::SessionExpired, Failure::Final)
            }
            Code::FailedPrecondition if msg.contains("already acknowledged") => {
                (Error::AlreadyAcknowledged, Failure::Final)
            }
            Code::Unavailable if msg == "etcdserver: no leader" => {
                (Error::Unavailable(text), Failure::RefusedUnavailable)
            }
            Code::Unavailable => (Error::Unavailable(text), Failure::Ambiguous),
            // A member answers a tagged etcd mutation that timed out but
            // was applied with this (its KV service does not unwrap the
            // decided outcome): resending the same request id gets the
            // kept answer.
            Code::Internal if msg.contains("apply returned a response of the wrong kind") => {
                (Error::Unavailable(text), Failure::Ambiguous)
            }
            Code::InvalidArgument | Code::OutOfRange => {
                (Error::InvalidArgument(text), Failure::Final)
            }
            Code::Aborted if from_server => (Error::Cancelled(text), Failure::Final),
            Code::Unimplemented => (Error::Unimplemented(text), Failure::Final),
            Code::DeadlineExceeded | Code::Cancelled | Code::Unknown | Code::Internal
                if !from_server =>
            {
                (Error::Transport(text), Failure::Ambiguous)
            }
            _ if from_server => (Error::Rejected(text), Failure::Final),
            _ => (Error::Transport(text), Failure::Ambiguous),
        }
    }

    /// Whether another endpoint might answer differently.
    pub fn is_unavailable(&self) -> bool {
        matches!(
            self,
            Error::Unavailable(_) | Error::Transport(_) | Error::DeadlineExceeded(_)
        )
    }
}

/// The client's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;
    use tonic::Status;

    #[test]
    fn statuses_map_to_errors_and_retry_classes() {
        let s = Status::failed_precondition("rafter: session expired");
        assert_eq!(
            Error::from_status(&s),
            (Error::SessionExpired, Failure::Final)
        );
        let s = Status::failed_precondition("rafter: request already acknowledged");
        assert_eq!(Error::from_status(&s).0, Error::AlreadyAcknowledged);
        let s = Status::unavailable("etcdserver: no leader");
        assert_eq!(Error::from_status(&s).1, Failure::RefusedUnavailable);
        let s = Status::unavailable("rafter: request timed out, outcome pending");
        assert_eq!(Error::from_status(&s).1, Failure::Ambiguous);
        let s = Status::unknown("transport error");
        assert_eq!(
            Error::from_status(&s),
            (
                Error::Transport("transport error".into()),
                Failure::Ambiguous
            )
        );
        let s = Status::unimplemented("rafter: Set(consistent=false) is not implemented");
        assert!(matches!(Error::from_status(&s).0, Error::Unimplemented(_)));
        let s = Status::invalid_argument("etcdserver: key is not provided");
        assert_eq!(
            Error::from_status(&s).0,
            Error::InvalidArgument("etcdserver: key is not provided".into())
        );
        let s = Status::aborted("rafter: request cancelled");
        assert!(matches!(Error::from_status(&s).0, Error::Cancelled(_)));
    }
}
