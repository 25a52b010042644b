//! What the Lock and Election services share. etcd serves both as thin
//! wrappers over its client-side `concurrency` package, run against the
//! member itself through an in-process client (`v3client`); Rafter does the
//! same, so the two services have exactly etcd's semantics and need nothing
//! from the Raft loop or the store beyond the public KV, Watch and Lease
//! APIs. This module holds that client ([`SelfClient`], a gRPC client of this
//! member's own client port), etcd's session lease, the key-range helpers of
//! the concurrency package, and its "wait until every key that queued before
//! mine is deleted" ([`wait_deletes`]), which both a lock and a campaign
//! block in.

use std::net::SocketAddr;
use std::time::Duration;

use rafter_proto::etcdserverpb::compare::{CompareResult, CompareTarget, TargetUnion};
use rafter_proto::etcdserverpb::kv_client::KvClient;
use rafter_proto::etcdserverpb::lease_client::LeaseClient;
use rafter_proto::etcdserverpb::range_request::{SortOrder, SortTarget};
use rafter_proto::etcdserverpb::watch_client::WatchClient;
use rafter_proto::etcdserverpb::{
    request_op, response_op, watch_request, Compare, DeleteRangeRequest, LeaseGrantRequest,
    PutRequest, RangeRequest, RangeResponse, RequestOp, ResponseHeader, ResponseOp, TxnRequest,
    TxnResponse, WatchCreateRequest, WatchRequest, WatchResponse,
};
use rafter_proto::mvccpb::event::EventType;
use tokio_stream::StreamExt as _;
use tonic::transport::{Channel, Endpoint};
use tonic::{Code, Status, Streaming};

/// TTL of the lease etcd's concurrency session grants when a request names
/// no lease (lease 0): its `defaultSessionTTL`, 60 seconds. The session is
/// orphaned at once, so nothing keeps this lease alive.
pub const SESSION_TTL_SECS: i64 = 60;

/// A gRPC client of this member's own client port: etcd's `v3client`.
#[derive(Clone)]
pub struct SelfClient {
    channel: Channel,
}

impl SelfClient {
    /// A client of the member listening on `addr`; it connects on first use
    /// (the listener is bound but not yet serving when this is built). An
    /// unspecified address (`0.0.0.0`, `::`) is reached over loopback.
    pub fn connect_lazy(addr: SocketAddr) -> SelfClient {
        let mut addr = addr;
        if addr.ip().is_unspecified() {
            addr.set_ip(match addr {
                SocketAddr::V4(_) => std::net::Ipv4Addr::LOCALHOST.into(),
                SocketAddr::V6(_) => std::net::Ipv6Addr::LOCALHOST.into(),
            });
        }
        let channel = Endpoint::from_shared(format!("http://{addr}"))
            .expect("a socket address makes a valid URI")
            .tcp_nodelay(true)
            .connect_timeout(Duration::from_secs(5))
            .connect_lazy();
        SelfClient { channel }
    }

    fn kv(&self) -> KvClient<Channel> {
        KvClient::new(self.channel.clone()).max_decoding_message_size(usize::MAX)
    }

    /// Runs a txn.
    pub async fn txn(&self, txn: TxnRequest) -> Result<TxnResponse, Status> {
        Ok(self.kv().txn(txn).await?.into_inner())
    }

    /// Runs a range.
    pub async fn range(&self, range: RangeRequest) -> Result<RangeResponse, Status> {
        Ok(self.kv().range(range).await?.into_inner())
    }

    /// Deletes one key; returns the response header.
    pub async fn delete(&self, key: Vec<u8>) -> Result<Option<ResponseHeader>, Status> {
        let response = self
            .kv()
            .delete_range(DeleteRangeRequest {
                key,
                ..Default::default()
            })
            .await?;
        Ok(response.into_inner().header)
    }

    /// etcd's `concurrency.NewSession(WithLease(lease))` followed by
    /// `Orphan()`: lease 0 grants a new lease of [`SESSION_TTL_SECS`];
    /// any other lease is used as given (not checked: a put with an unknown
    /// lease fails later, as in etcd).
    pub async fn session_lease(&self, lease: i64) -> Result<i64, Status> {
        if lease != 0 {
            return Ok(lease);
        }
        let response = LeaseClient::new(self.channel.clone())
            .lease_grant(LeaseGrantRequest {
                ttl: SESSION_TTL_SECS,
                id: 0,
            })
            .await?
            .into_inner();
        if !response.error.is_empty() {
            return Err(Status::unknown(response.error));
        }
        Ok(response.id)
    }

    /// Opens a watch with `create` on a stream of its own.
    pub async fn watch(&self, create: WatchCreateRequest) -> Result<Watcher, Status> {
        let request = WatchRequest {
            request_union: Some(watch_request::RequestUnion::CreateRequest(create)),
        };
        // The request side stays open (a closed side ends the stream) until
        // the watcher is dropped, which cancels the call.
        let requests = tokio_stream::once(request).chain(tokio_stream::pending());
        let responses = WatchClient::new(self.channel.clone())
            .max_decoding_message_size(usize::MAX)
            .watch(requests)
            .await?
            .into_inner();
        Ok(Watcher { responses })
    }
}

/// One watch, as clientv3's watch channel: responses carrying events.
pub struct Watcher {
    responses: Streaming<WatchResponse>,
}

impl Watcher {
    /// The next response with events (or a progress notification); `None`
    /// when the stream ended, an error when the watch was cancelled (as
    /// clientv3's `WatchResponse.Err`).
    pub async fn next(&mut self) -> Result<Option<WatchResponse>, Status> {
        loop {
            let Some(response) = self.responses.message().await? else {
                return Ok(None);
            };
            if response.compact_revision != 0 {
                return Err(Status::new(
                    Code::OutOfRange,
                    "etcdserver: mvcc: required revision has been compacted",
                ));
            }
            if response.canceled {
                if !response.cancel_reason.is_empty() {
                    return Err(Status::new(
                        Code::FailedPrecondition,
                        response.cancel_reason,
                    ));
                }
                return Err(Status::new(
                    Code::OutOfRange,
                    "etcdserver: mvcc: required revision is a future revision",
                ));
            }
            if response.created {
                continue;
            }
            return Ok(Some(response));
        }
    }
}

/// etcd's error for a gRPC status the concurrency package passed up. The
/// services return Go errors that are not gRPC statuses (clientv3 turns
/// every status into an `rpctypes.EtcdError`), so gRPC sends them as
/// `Unknown` with the error's text.
pub fn passed_up(status: Status) -> Status {
    Status::unknown(status.message().to_string())
}

/// A key under `prefix` named after `lease` in hex, as the concurrency
/// package names a session's key (Go's `%x`, so a negative id gets a sign).
pub fn session_key(prefix: &[u8], lease: i64) -> Vec<u8> {
    let hex = if lease < 0 {
        format!("-{:x}", lease.unsigned_abs())
    } else {
        format!("{lease:x}")
    };
    let mut key = prefix.to_vec();
    key.extend_from_slice(hex.as_bytes());
    key
}

/// `name + "/"`: the prefix under which a lock's or election's keys queue.
pub fn queue_prefix(name: &[u8]) -> Vec<u8> {
    let mut prefix = name.to_vec();
    prefix.push(b'/');
    prefix
}

/// The end of the range of keys starting with `prefix` (clientv3's
/// `GetPrefixRangeEnd`).
pub fn prefix_end(prefix: &[u8]) -> Vec<u8> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return end;
        }
    }
    // All 0xff (or empty): every key from `prefix` on.
    vec![0]
}

/// clientv3's `WithFirstCreate`: the key under `prefix` created first.
pub fn first_created(prefix: &[u8]) -> RangeRequest {
    RangeRequest {
        key: prefix.to_vec(),
        range_end: prefix_end(prefix),
        limit: 1,
        sort_order: SortOrder::Ascend as i32,
        sort_target: SortTarget::Create as i32,
        ..Default::default()
    }
}

/// A compare that `key`'s create revision equals `revision` (0: the key
/// does not exist).
pub fn created_at(key: &[u8], revision: i64) -> Compare {
    Compare {
        result: CompareResult::Equal as i32,
        target: CompareTarget::Create as i32,
        key: key.to_vec(),
        range_end: vec![],
        target_union: Some(TargetUnion::CreateRevision(revision)),
    }
}

/// A txn op that puts `key = value` with `lease`.
pub fn put_op(key: &[u8], value: Vec<u8>, lease: i64) -> RequestOp {
    RequestOp {
        request: Some(request_op::Request::RequestPut(PutRequest {
            key: key.to_vec(),
            value,
            lease,
            ..Default::default()
        })),
    }
}

/// A txn op that reads with `range`.
pub fn range_op(range: RangeRequest) -> RequestOp {
    RequestOp {
        request: Some(request_op::Request::RequestRange(range)),
    }
}

/// A txn op that reads the single `key`.
pub fn get_op(key: &[u8]) -> RequestOp {
    range_op(RangeRequest {
        key: key.to_vec(),
        ..Default::default()
    })
}

/// A txn op that deletes the single `key`.
pub fn delete_op(key: &[u8]) -> RequestOp {
    RequestOp {
        request: Some(request_op::Request::RequestDeleteRange(
            DeleteRangeRequest {
                key: key.to_vec(),
                ..Default::default()
            },
        )),
    }
}

/// The range response of a txn op (an empty one if it is another kind,
/// which a txn built here never returns).
pub fn range_of(op: Option<&ResponseOp>) -> RangeResponse {
    match op.and_then(|op| op.response.as_ref()) {
        Some(response_op::Response::ResponseRange(range)) => range.clone(),
        _ => RangeResponse::default(),
    }
}

/// etcd's `waitDeletes`: returns once no key under `prefix` has a create
/// revision at or below `max_create_rev`, with the header of the read that
/// found none. It waits for the newest such key's deletion, then looks
/// again (a waiter watches only its predecessor, so a release wakes one
/// waiter, not all).
pub async fn wait_deletes(
    client: &SelfClient,
    prefix: &[u8],
    max_create_rev: i64,
) -> Result<Option<ResponseHeader>, Status> {
    loop {
        let response = client
            .range(RangeRequest {
                key: prefix.to_vec(),
                range_end: prefix_end(prefix),
                limit: 1,
                sort_order: SortOrder::Descend as i32,
                sort_target: SortTarget::Create as i32,
                max_create_revision: max_create_rev,
                ..Default::default()
            })
            .await?;
        let Some(last) = response.kvs.first() else {
            return Ok(response.header);
        };
        let revision = response.header.as_ref().map_or(0, |h| h.revision);
        wait_delete(client, last.key.clone(), revision).await?;
    }
}

/// etcd's `waitDelete`: returns once `key` is deleted at or after
/// `revision`.
async fn wait_delete(client: &SelfClient, key: Vec<u8>, revision: i64) -> Result<(), Status> {
    let mut watcher = client
        .watch(WatchCreateRequest {
            key,
            start_revision: revision,
            ..Default::default()
        })
        .await?;
    while let Some(response) = watcher.next().await? {
        if response
            .events
            .iter()
            .any(|event| event.r#type == EventType::Delete as i32)
        {
            return Ok(());
        }
    }
    Err(Status::unknown("lost watcher waiting for delete"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_as_the_concurrency_package_names_them() {
        assert_eq!(session_key(b"lk/", 0x694d_77aa), b"lk/694d77aa".to_vec());
        assert_eq!(session_key(b"lk/", -1), b"lk/-1".to_vec());
        assert_eq!(queue_prefix(b"lk"), b"lk/".to_vec());
        assert_eq!(prefix_end(b"a/"), b"a0".to_vec());
        assert_eq!(prefix_end(b"a\xff"), b"b".to_vec());
        assert_eq!(prefix_end(b"\xff"), vec![0]);
    }
}
