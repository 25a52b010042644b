//! `v3electionpb.Election`: leader election for clients that do not carry
//! etcd's client-side `concurrency` package (etcdctl elect, the gRPC
//! gateway, other languages). As etcd's `v3election`, it runs that
//! package's election against this member through [`SelfClient`]:
//! candidates queue as `name/<lease hex>` keys, the one created first leads
//! and its value is the proclamation; Observe follows the leader key.

use rafter_proto::etcdserverpb::{ResponseHeader, TxnRequest, WatchCreateRequest};
use rafter_proto::mvccpb::event::EventType;
use rafter_proto::mvccpb::KeyValue;
use rafter_proto::v3electionpb::election_server::Election;
use rafter_proto::v3electionpb::{
    CampaignRequest, CampaignResponse, LeaderKey, LeaderRequest, LeaderResponse, ProclaimRequest,
    ProclaimResponse, ResignRequest, ResignResponse,
};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status};

use super::concurrency::{
    created_at, delete_op, first_created, get_op, passed_up, prefix_end, put_op, queue_prefix,
    range_of, session_key, wait_deletes, SelfClient,
};

/// The concurrency package's `ErrElectionNotLeader`.
const NOT_LEADER: &str = "election: not leader";
/// The concurrency package's `ErrElectionNoLeader`.
const NO_LEADER: &str = "election: no leader";
/// v3election's `ErrMissingLeaderKey`.
const MISSING_LEADER_KEY: &str = "\"leader\" field must be provided";

/// Observe answers handed to gRPC ahead of the client reading them (etcd's
/// channel is unbuffered: the observer waits for each send).
const OBSERVE_QUEUE: usize = 1;

pub struct ElectionService {
    client: SelfClient,
}

impl ElectionService {
    pub fn new(client: SelfClient) -> Self {
        ElectionService { client }
    }

    /// etcd's `Election.Campaign`.
    async fn campaign(&self, request: CampaignRequest) -> Result<CampaignResponse, Status> {
        let lease = self.client.session_lease(request.lease).await?;
        let prefix = queue_prefix(&request.name);
        let key = session_key(&prefix, lease);
        let response = self
            .client
            .txn(TxnRequest {
                compare: vec![created_at(&key, 0)],
                success: vec![put_op(&key, request.value.clone(), lease)],
                failure: vec![get_op(&key)],
            })
            .await?;
        let mut leader = LeaderKey {
            name: request.name,
            key,
            rev: response.header.as_ref().map_or(0, |h| h.revision),
            lease,
        };
        if !response.succeeded {
            // This lease already campaigns: take its place in the queue, and
            // post the new value if it differs.
            if let Some(kv) = range_of(response.responses.first()).kvs.first() {
                leader.rev = kv.create_revision;
                if kv.value != request.value {
                    if let Err(e) = self.proclaim(&leader, lease, request.value).await {
                        let _ = self.resign(&leader).await;
                        return Err(e);
                    }
                }
            }
        }
        // A candidate whose client goes away while waiting resigns (etcd
        // resigns on a cancelled wait, and keeps the key on other errors).
        let mut resign = ResignOnDrop {
            client: self.client.clone(),
            leader: Some(leader.clone()),
        };
        let waited = wait_deletes(&self.client, &prefix, leader.rev - 1).await;
        resign.leader = None;
        waited?;
        Ok(CampaignResponse {
            header: response.header,
            leader: Some(leader),
        })
    }

    /// etcd's `Election.Proclaim` on a resumed election: puts the value if
    /// the leader key still has the leader's create revision.
    async fn proclaim(
        &self,
        leader: &LeaderKey,
        lease: i64,
        value: Vec<u8>,
    ) -> Result<Option<ResponseHeader>, Status> {
        let response = self
            .client
            .txn(TxnRequest {
                compare: vec![created_at(&leader.key, leader.rev)],
                success: vec![put_op(&leader.key, value, lease)],
                failure: vec![],
            })
            .await?;
        if !response.succeeded {
            return Err(Status::unknown(NOT_LEADER));
        }
        Ok(response.header)
    }

    /// etcd's `Election.Resign` on a resumed election: deletes the leader
    /// key if it still has the leader's create revision; not leading is no
    /// error.
    async fn resign(&self, leader: &LeaderKey) -> Result<Option<ResponseHeader>, Status> {
        resign(&self.client, leader).await
    }

    /// etcd's `Election.Leader`.
    async fn leader(&self, name: &[u8]) -> Result<LeaderResponse, Status> {
        let response = self
            .client
            .range(first_created(&queue_prefix(name)))
            .await?;
        match response.kvs.into_iter().next() {
            Some(kv) => Ok(LeaderResponse {
                header: response.header,
                kv: Some(kv),
            }),
            None => Err(Status::unknown(NO_LEADER)),
        }
    }
}

async fn resign(client: &SelfClient, leader: &LeaderKey) -> Result<Option<ResponseHeader>, Status> {
    let response = client
        .txn(TxnRequest {
            compare: vec![created_at(&leader.key, leader.rev)],
            success: vec![delete_op(&leader.key)],
            failure: vec![],
        })
        .await?;
    Ok(response.header)
}

/// Resigns a candidate whose Campaign call is dropped while it waits.
struct ResignOnDrop {
    client: SelfClient,
    leader: Option<LeaderKey>,
}

impl Drop for ResignOnDrop {
    fn drop(&mut self) {
        if let Some(leader) = self.leader.take() {
            let client = self.client.clone();
            tokio::spawn(async move {
                if let Err(e) = resign(&client, &leader).await {
                    tracing::debug!("resigning an abandoned campaign: {e}");
                }
            });
        }
    }
}

/// etcd's `Election.observe`: sends the current leader's key-value, then
/// every change of it, then the next leader's once it is deleted; waits for
/// a first candidate when there is none. Ends when the client goes away or
/// a read or watch fails (the stream then ends without error, as etcd's).
async fn observe(
    client: SelfClient,
    name: Vec<u8>,
    tx: mpsc::Sender<Result<LeaderResponse, Status>>,
) {
    let prefix = queue_prefix(&name);
    let send = |header: Option<ResponseHeader>, kv: KeyValue| {
        let tx = tx.clone();
        async move {
            tx.send(Ok(LeaderResponse {
                header,
                kv: Some(kv),
            }))
            .await
            .is_ok()
        }
    };
    loop {
        let Ok(response) = client.range(first_created(&prefix)).await else {
            return;
        };
        let (header, kv) = match response.kvs.into_iter().next() {
            Some(kv) => (response.header, kv),
            None => {
                // No leader yet: wait for the first put under the prefix.
                let Ok(mut watcher) = client
                    .watch(WatchCreateRequest {
                        key: prefix.clone(),
                        range_end: prefix_end(&prefix),
                        start_revision: response.header.as_ref().map_or(0, |h| h.revision),
                        ..Default::default()
                    })
                    .await
                else {
                    return;
                };
                let mut first = None;
                while first.is_none() {
                    let watched = tokio::select! {
                        watched = watcher.next() => watched,
                        _ = tx.closed() => return,
                    };
                    let Ok(Some(watched)) = watched else {
                        return;
                    };
                    if let Some(kv) = watched
                        .events
                        .into_iter()
                        .find(|e| e.r#type == EventType::Put as i32)
                        .and_then(|e| e.kv)
                    {
                        // The batch may hold several revisions: the header
                        // says the put's.
                        let mut header = watched.header.unwrap_or_default();
                        header.revision = kv.mod_revision;
                        first = Some((Some(header), kv));
                    }
                }
                first.expect("the loop ends with a put")
            }
        };
        let from = header.as_ref().map_or(0, |h| h.revision) + 1;
        let key = kv.key.clone();
        if !send(header, kv).await {
            return;
        }
        // Follow this leader until its key is deleted.
        let Ok(mut watcher) = client
            .watch(WatchCreateRequest {
                key,
                start_revision: from,
                ..Default::default()
            })
            .await
        else {
            return;
        };
        'leader: loop {
            let watched = tokio::select! {
                watched = watcher.next() => watched,
                _ = tx.closed() => return,
            };
            let Ok(Some(watched)) = watched else {
                return;
            };
            for event in watched.events {
                if event.r#type == EventType::Delete as i32 {
                    break 'leader;
                }
                if let Some(kv) = event.kv {
                    if !send(watched.header, kv).await {
                        return;
                    }
                }
            }
        }
    }
}

#[tonic::async_trait]
impl Election for ElectionService {
    type ObserveStream = ReceiverStream<Result<LeaderResponse, Status>>;

    async fn campaign(
        &self,
        request: Request<CampaignRequest>,
    ) -> Result<Response<CampaignResponse>, Status> {
        ElectionService::campaign(self, request.into_inner())
            .await
            .map(Response::new)
            .map_err(passed_up)
    }

    async fn proclaim(
        &self,
        request: Request<ProclaimRequest>,
    ) -> Result<Response<ProclaimResponse>, Status> {
        let request = request.into_inner();
        let leader = request
            .leader
            .ok_or_else(|| Status::unknown(MISSING_LEADER_KEY))?;
        let result = async {
            let lease = self.client.session_lease(leader.lease).await?;
            ElectionService::proclaim(self, &leader, lease, request.value).await
        };
        let header = result.await.map_err(passed_up)?;
        Ok(Response::new(ProclaimResponse { header }))
    }

    async fn leader(
        &self,
        request: Request<LeaderRequest>,
    ) -> Result<Response<LeaderResponse>, Status> {
        ElectionService::leader(self, &request.into_inner().name)
            .await
            .map(Response::new)
            .map_err(passed_up)
    }

    async fn observe(
        &self,
        request: Request<LeaderRequest>,
    ) -> Result<Response<Self::ObserveStream>, Status> {
        let (tx, rx) = mpsc::channel(OBSERVE_QUEUE);
        tokio::spawn(observe(self.client.clone(), request.into_inner().name, tx));
        Ok(Response::new(ReceiverStream::new(rx)))
    }

    async fn resign(
        &self,
        request: Request<ResignRequest>,
    ) -> Result<Response<ResignResponse>, Status> {
        let leader = request
            .into_inner()
            .leader
            .ok_or_else(|| Status::unknown(MISSING_LEADER_KEY))?;
        let result = async {
            // As etcd, which opens a session on the leader's lease first.
            self.client.session_lease(leader.lease).await?;
            ElectionService::resign(self, &leader).await
        };
        let header = result.await.map_err(passed_up)?;
        Ok(Response::new(ResignResponse { header }))
    }
}
