//! `rafterpb.RaftPeer`: receives batches of Raft messages from other members
//! and hands them to the Raft loop.

use std::sync::mpsc::Sender as StdSender;
use std::sync::Mutex;

use rafter_core::wire::decode_message;
use rafter_proto::rafterpb::raft_peer_server::RaftPeer;
use rafter_proto::rafterpb::{PeerAck, PeerBatch};
use tonic::{Request, Response, Status, Streaming};

use crate::node::NodeRequest;

pub struct PeerService {
    cluster_id: u64,
    raft_tx: Mutex<StdSender<NodeRequest>>,
}

impl PeerService {
    pub fn new(cluster_id: u64, raft_tx: StdSender<NodeRequest>) -> Self {
        PeerService {
            cluster_id,
            raft_tx: Mutex::new(raft_tx),
        }
    }
}

#[tonic::async_trait]
impl RaftPeer for PeerService {
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
}
