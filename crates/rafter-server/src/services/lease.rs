//! `etcdserverpb.Lease`. Grant and revoke go through the log (the grant's
//! id chosen and its TTL raised to etcd's minimum here, before proposing,
//! so every member applies the same values). Keep-alives and time-to-live
//! need the leader's lessor: on a follower they are forwarded to the
//! leader's client URL, as etcd forwards them over its peer HTTP API.
//! A stream's keep-alives are handled concurrently and answered in order,
//! so one slow answer does not hold the ones behind it.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;

use rafter_core::lease::MAX_LEASE_TTL_S;
use rafter_proto::etcdserverpb::lease_client::LeaseClient;
use rafter_proto::etcdserverpb::lease_server::Lease;
use rafter_proto::etcdserverpb::{
    LeaseGrantRequest, LeaseGrantResponse, LeaseKeepAliveRequest, LeaseKeepAliveResponse,
    LeaseLeasesRequest, LeaseLeasesResponse, LeaseRevokeRequest, LeaseRevokeResponse, LeaseStatus,
    LeaseTimeToLiveRequest, LeaseTimeToLiveResponse,
};
use rafter_storage::mvcc::KvResponse;
use rafter_storage::KvRequest;
use tokio::sync::{mpsc, Mutex};
use tokio_stream::wrappers::ReceiverStream;
use tokio_stream::StreamExt;
use tonic::transport::Channel;
use tonic::{Request, Response, Status, Streaming};

use crate::error::ApiError;
use crate::handle::NodeHandle;
use crate::lease_forward::KeepAliveForwarder;

/// Keep-alive responses queued for a client that reads slowly.
const KEEP_ALIVE_QUEUE: usize = 64;

/// The leader's client URL and a client connected to it.
type LeaderClient = (String, LeaseClient<Channel>);

#[derive(Clone)]
pub struct LeaseService {
    node: NodeHandle,
    min_ttl_s: i64,
    /// Next server-chosen lease id (member id in the high bits, the start
    /// time below, as etcd's request id generator).
    next_id: Arc<AtomicI64>,
    /// A client of the current leader, for forwarded requests.
    leader: Arc<Mutex<Option<LeaderClient>>>,
    /// Keep-alives forwarded to the leader over one stream.
    forwarder: KeepAliveForwarder,
}

impl LeaseService {
    pub fn new(node: NodeHandle, min_ttl_s: i64, first_id: i64) -> Self {
        LeaseService {
            node,
            min_ttl_s,
            next_id: Arc::new(AtomicI64::new(first_id.max(1))),
            leader: Arc::new(Mutex::new(None)),
            forwarder: KeepAliveForwarder::default(),
        }
    }

    async fn leader_client(&self) -> Result<LeaseClient<Channel>, Status> {
        let url = self.node.leader_client_url()?;
        let mut cached = self.leader.lock().await;
        if let Some((u, c)) = cached.as_ref() {
            if *u == url {
                return Ok(c.clone());
            }
        }
        let channel = tonic::transport::Endpoint::from_shared(url.clone())
            .map_err(|e| Status::unavailable(format!("etcdserver: leader URL {url}: {e}")))?
            .connect_timeout(self.node.request_timeout)
            .connect_lazy();
        let client = LeaseClient::new(channel);
        *cached = Some((url, client.clone()));
        Ok(client)
    }

    /// One keep-alive, answered here on the leader or by the leader.
    pub async fn keep_alive_once(&self, id: i64) -> Result<LeaseKeepAliveResponse, Status> {
        match self.node.lease_renew(id).await {
            Ok(ttl) => Ok(LeaseKeepAliveResponse {
                header: Some(self.node.header(self.node.current_revision())),
                id,
                ttl: ttl.unwrap_or(0),
            }),
            Err(ApiError::NotLeader) => {
                let url = self.node.leader_client_url()?;
                self.forwarder
                    .keep_alive(&url, id, self.node.request_timeout)
                    .await
            }
            Err(e) => Err(e.into()),
        }
    }
}

#[tonic::async_trait]
impl Lease for LeaseService {
    type LeaseKeepAliveStream = ReceiverStream<Result<LeaseKeepAliveResponse, Status>>;

    async fn lease_grant(
        &self,
        request: Request<LeaseGrantRequest>,
    ) -> Result<Response<LeaseGrantResponse>, Status> {
        let mut req = request.into_inner();
        if req.ttl > MAX_LEASE_TTL_S {
            return Err(ApiError::LeaseTtlTooLarge.into());
        }
        req.ttl = req.ttl.max(self.min_ttl_s);
        if req.id == 0 {
            req.id = self.next_id.fetch_add(1, Ordering::Relaxed) & i64::MAX;
        }
        match self.node.propose(KvRequest::LeaseGrant(req)).await? {
            KvResponse::LeaseGrant(mut resp) => {
                self.node.stamp(&mut resp.header);
                Ok(Response::new(resp))
            }
            other => unreachable!("a grant answered {other:?}"),
        }
    }

    async fn lease_revoke(
        &self,
        request: Request<LeaseRevokeRequest>,
    ) -> Result<Response<LeaseRevokeResponse>, Status> {
        let req = request.into_inner();
        match self.node.propose(KvRequest::LeaseRevoke(req)).await? {
            KvResponse::LeaseRevoke(mut resp) => {
                self.node.stamp(&mut resp.header);
                Ok(Response::new(resp))
            }
            other => unreachable!("a revoke answered {other:?}"),
        }
    }

    async fn lease_keep_alive(
        &self,
        request: Request<Streaming<LeaseKeepAliveRequest>>,
    ) -> Result<Response<Self::LeaseKeepAliveStream>, Status> {
        let mut requests = request.into_inner();
        let (tx, rx) = mpsc::channel(KEEP_ALIVE_QUEUE);
        // Each keep-alive runs as its own task; the answers are sent in the
        // order the requests came.
        let (pending_tx, mut pending_rx) = mpsc::channel(KEEP_ALIVE_QUEUE);
        let service = self.clone();
        tokio::spawn(async move {
            while let Some(Ok(req)) = requests.next().await {
                let service = service.clone();
                let task = tokio::spawn(async move { service.keep_alive_once(req.id).await });
                if pending_tx.send(task).await.is_err() {
                    return;
                }
            }
        });
        tokio::spawn(async move {
            while let Some(task) = pending_rx.recv().await {
                let answer = task
                    .await
                    .unwrap_or_else(|e| Err(Status::internal(format!("keep-alive task: {e}"))));
                let failed = answer.is_err();
                if tx.send(answer).await.is_err() || failed {
                    return;
                }
            }
        });
        Ok(Response::new(ReceiverStream::new(rx)))
    }

    async fn lease_time_to_live(
        &self,
        request: Request<LeaseTimeToLiveRequest>,
    ) -> Result<Response<LeaseTimeToLiveResponse>, Status> {
        let req = request.into_inner();
        let ttl = match self.node.lease_time_to_live(req.id).await {
            Ok(ttl) => ttl,
            Err(ApiError::NotLeader) => {
                let mut leader = self.leader_client().await?;
                return leader.lease_time_to_live(req).await;
            }
            Err(e) => return Err(e.into()),
        };
        let header = Some(self.node.header(self.node.current_revision()));
        let Some((granted_ttl, remaining)) = ttl else {
            // etcd answers an unknown lease with TTL -1, not an error.
            return Ok(Response::new(LeaseTimeToLiveResponse {
                header,
                id: req.id,
                ttl: -1,
                granted_ttl: 0,
                keys: vec![],
            }));
        };
        let keys = if req.keys {
            self.node
                .store
                .lease(req.id, true)
                .map_err(ApiError::from)?
                .map(|(_, keys)| keys)
                .unwrap_or_default()
        } else {
            vec![]
        };
        Ok(Response::new(LeaseTimeToLiveResponse {
            header,
            id: req.id,
            ttl: remaining,
            granted_ttl,
            keys,
        }))
    }

    async fn lease_leases(
        &self,
        _request: Request<LeaseLeasesRequest>,
    ) -> Result<Response<LeaseLeasesResponse>, Status> {
        let ids = self.node.lease_ids().await?;
        Ok(Response::new(LeaseLeasesResponse {
            header: Some(self.node.header(self.node.current_revision())),
            leases: ids.into_iter().map(|id| LeaseStatus { id }).collect(),
        }))
    }
}
