//! The API-edge error: every failure a client request can meet, mapped once
//! to the gRPC code and message etcd clients recognise (etcd's `rpctypes`).

use rafter_storage::MvccError;
use tonic::{Code, Status};

/// Why a client request failed.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error(transparent)]
    Kv(#[from] MvccError),
    #[error("no leader")]
    NoLeader,
    #[error("request timed out")]
    Timeout,
    #[error("request is too large")]
    RequestTooLarge,
    #[error("server stopped")]
    Stopped,
    #[error("not leader")]
    NotLeader,
    #[error("bad leader transferee")]
    BadLeaderTransferee,
    #[error("too large lease TTL")]
    LeaseTtlTooLarge,
    /// A session request timed out and its cancel could not be ordered in
    /// time either: ask `Outcome` later.
    #[error("request timed out, outcome pending")]
    OutcomePending,
    /// Malformed session metadata on an etcd request.
    #[error("{0}")]
    BadSessionTag(String),
    /// The local write queue cannot take writes (its file failed).
    #[error("local write queue failed: {0}")]
    LocalQueue(String),
    /// A membership change broke one of etcd's rules.
    #[error("{0}")]
    Membership(#[from] rafter_core::membership::MembershipError),
}

impl From<ApiError> for Status {
    fn from(e: ApiError) -> Status {
        let (code, msg) = match &e {
            ApiError::Kv(k) => match k {
                MvccError::Compacted | MvccError::FutureRevision => (Code::OutOfRange, None),
                MvccError::LeaseNotFound => (Code::NotFound, None),
                MvccError::LeaseExists => (Code::FailedPrecondition, None),
                MvccError::EmptyKey
                | MvccError::KeyNotFound
                | MvccError::ValueProvided
                | MvccError::LeaseProvided
                | MvccError::TooManyOps
                | MvccError::DuplicateKey => (Code::InvalidArgument, None),
                MvccError::SessionExpired | MvccError::AlreadyAcknowledged => {
                    (Code::FailedPrecondition, Some(k.to_string()))
                }
                MvccError::SessionExists => (Code::AlreadyExists, Some(k.to_string())),
                MvccError::Cancelled => (Code::Aborted, Some(k.to_string())),
                MvccError::NoSpace => (Code::ResourceExhausted, None),
                MvccError::Corrupt => (Code::DataLoss, None),
                MvccError::Storage(s) => {
                    tracing::error!("storage failure answering a request: {s}");
                    (Code::Internal, None)
                }
                MvccError::NotReadOnly => {
                    tracing::error!("a txn that writes was sent down the read path");
                    (Code::Internal, None)
                }
            },
            ApiError::RequestTooLarge => (Code::InvalidArgument, None),
            ApiError::NoLeader | ApiError::Timeout | ApiError::Stopped => (Code::Unavailable, None),
            ApiError::NotLeader => (Code::FailedPrecondition, None),
            ApiError::BadLeaderTransferee => (Code::FailedPrecondition, None),
            ApiError::LeaseTtlTooLarge => (Code::OutOfRange, None),
            ApiError::OutcomePending => (Code::Unavailable, Some(format!("rafter: {e}"))),
            ApiError::BadSessionTag(_) => (Code::InvalidArgument, Some(format!("rafter: {e}"))),
            ApiError::LocalQueue(_) => (Code::Unavailable, Some(format!("rafter: {e}"))),
            ApiError::Membership(m) => {
                use rafter_core::membership::MembershipError as M;
                match m {
                    // etcd answers both as "member not found".
                    M::NotFound | M::IdRemoved => {
                        (Code::NotFound, Some("etcdserver: member not found".into()))
                    }
                    M::BadUrls => (Code::InvalidArgument, None),
                    M::InProgress | M::Unrecorded => {
                        (Code::FailedPrecondition, Some(format!("rafter: {e}")))
                    }
                    M::IdExists
                    | M::PeerUrlExists
                    | M::NotLearner
                    | M::LearnerNotReady
                    | M::TooManyLearners
                    | M::NotEnoughStarted => (Code::FailedPrecondition, None),
                }
            }
        };
        let msg: String = msg.unwrap_or_else(|| format!("etcdserver: {e}"));
        Status::new(code, msg)
    }
}

/// The gRPC answer for an RPC that a later version implements.
pub fn unimplemented(rpc: &str) -> Status {
    Status::unimplemented(format!("rafter: {rpc} is not implemented yet"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn etcd_codes_and_messages() {
        let s: Status = ApiError::Kv(MvccError::Compacted).into();
        assert_eq!(s.code(), Code::OutOfRange);
        assert_eq!(
            s.message(),
            "etcdserver: mvcc: required revision has been compacted"
        );
        let s: Status = ApiError::NoLeader.into();
        assert_eq!(
            (s.code(), s.message()),
            (Code::Unavailable, "etcdserver: no leader")
        );
        let s: Status = ApiError::Kv(MvccError::LeaseNotFound).into();
        assert_eq!(
            (s.code(), s.message()),
            (Code::NotFound, "etcdserver: requested lease not found")
        );
        let s: Status = ApiError::Kv(MvccError::NoSpace).into();
        assert_eq!(
            (s.code(), s.message()),
            (
                Code::ResourceExhausted,
                "etcdserver: mvcc: database space exceeded"
            )
        );
        let s: Status = ApiError::Kv(MvccError::Corrupt).into();
        assert_eq!(
            (s.code(), s.message()),
            (Code::DataLoss, "etcdserver: corrupt cluster")
        );
        let s: Status = ApiError::RequestTooLarge.into();
        assert_eq!(
            (s.code(), s.message()),
            (Code::InvalidArgument, "etcdserver: request is too large")
        );
    }
}
