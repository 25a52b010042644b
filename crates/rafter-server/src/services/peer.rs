//! `rafterpb.RaftPeer`: receives batches of Raft messages from other members
//! and hands them to the Raft loop.

use std::collections::HashSet;
use std::sync::mpsc::Sender as StdSender;
use std::sync::{Arc, Mutex, RwLock};

use rafter_core::wire::decode_message;
use rafter_core::wire::MAX_PEER_MESSAGE_BYTES;
use rafter_proto::rafterpb::raft_peer_server::RaftPeer;
use rafter_proto::rafterpb::{MembersRequest, MembersResponse, PeerAck, PeerBatch, SnapshotChunk};
use tonic::{Request, Response, Status, Streaming};

use crate::node::NodeRequest;

/// Ids of members removed from the cluster (their messages are refused).
pub type RemovedMembers = Arc<RwLock<HashSet<u64>>>;

pub struct PeerService {
    cluster_id: u64,
    raft_tx: Mutex<StdSender<NodeRequest>>,
    removed: RemovedMembers,
    store: Arc<rafter_storage::MvccStore>,
}

impl PeerService {
    pub fn new(
        cluster_id: u64,
        raft_tx: StdSender<NodeRequest>,
        removed: RemovedMembers,
        store: Arc<rafter_storage::MvccStore>,
    ) -> Self {
        PeerService {
            cluster_id,
            raft_tx: Mutex::new(raft_tx),
            removed,
            store,
        }
    }

    fn refuse_removed(&self, from: u64) -> Result<(), Status> {
        if self.removed.read().expect("removed lock").contains(&from) {
            return Err(Status::failed_precondition(
                crate::transport::REMOVED_MESSAGE,
            ));
        }
        Ok(())
    }
}

#[tonic::async_trait]
impl RaftPeer for PeerService {
    async fn members(
        &self,
        _request: Request<MembersRequest>,
    ) -> Result<Response<MembersResponse>, Status> {
        let members = self
            .store
            .member_attributes()
            .map_err(|e| Status::internal(e.to_string()))?;
        Ok(Response::new(MembersResponse {
            cluster_id: self.cluster_id,
            members,
        }))
    }

    async fn stream(
        &self,
        request: Request<Streaming<PeerBatch>>,
    ) -> Result<Response<PeerAck>, Status> {
        let mut batches = request.into_inner();
        let tx = self
            .raft_tx
            .lock()
            .map_err(|_| Status::internal("poisoned"))?
            .clone();
        while let Some(batch) = batches.message().await? {
            if batch.cluster_id != self.cluster_id {
                return Err(Status::permission_denied(format!(
                    "rafter: peer {:x} belongs to cluster {:x}, not {:x}",
                    batch.from, batch.cluster_id, self.cluster_id
                )));
            }
            self.refuse_removed(batch.from)?;
            for bytes in &batch.messages {
                let msg =
                    decode_message(bytes).map_err(|e| Status::invalid_argument(e.to_string()))?;
                if tx.send(NodeRequest::Step(Box::new(msg))).is_err() {
                    return Err(Status::unavailable("rafter: member is stopping"));
                }
            }
        }
        Ok(Response::new(PeerAck {}))
    }

    async fn snapshot(
        &self,
        request: Request<Streaming<SnapshotChunk>>,
    ) -> Result<Response<PeerAck>, Status> {
        let mut chunks = request.into_inner();
        let mut data: Vec<u8> = Vec::new();
        while let Some(chunk) = chunks.message().await? {
            if chunk.cluster_id != self.cluster_id {
                return Err(Status::permission_denied(
                    "rafter: snapshot from another cluster",
                ));
            }
            self.refuse_removed(chunk.from)?;
            let total = chunk.total_bytes as usize;
            if total > MAX_PEER_MESSAGE_BYTES || data.len() + chunk.data.len() > total {
                return Err(Status::invalid_argument(
                    "rafter: snapshot larger than announced or allowed",
                ));
            }
            if data.is_empty() {
                data.reserve_exact(total);
            }
            data.extend_from_slice(&chunk.data);
            if chunk.last {
                if data.len() != total || crc32fast::hash(&data) != chunk.crc32 {
                    return Err(Status::data_loss(
                        "rafter: snapshot checksum or size mismatch",
                    ));
                }
                let msg =
                    decode_message(&data).map_err(|e| Status::invalid_argument(e.to_string()))?;
                tracing::info!(from = %format!("{:x}", chunk.from), size_bytes = total, "received snapshot");
                let tx = self
                    .raft_tx
                    .lock()
                    .map_err(|_| Status::internal("poisoned"))?
                    .clone();
                tx.send(NodeRequest::Step(Box::new(msg)))
                    .map_err(|_| Status::unavailable("rafter: member is stopping"))?;
                return Ok(Response::new(PeerAck {}));
            }
        }
        Err(Status::data_loss(
            "rafter: snapshot stream ended before its last chunk",
        ))
    }
}
