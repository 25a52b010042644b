//! Peer transport: one long-lived gRPC client stream per peer, fed by a
//! queue. Each batch carries every message queued since the last one, so a
//! busy leader sends many Raft messages per network write. A broken stream
//! is reported to Raft (unreachable) and reconnected with backoff.

use std::collections::HashMap;
use std::sync::mpsc::Sender as StdSender;
use std::time::Duration;

use raft::eraftpb::{Message, MessageType};
use rafter_core::wire::{encode_message, MAX_PEER_MESSAGE_BYTES};
use rafter_proto::rafterpb::raft_peer_client::RaftPeerClient;
use rafter_proto::rafterpb::PeerBatch;
use tokio::sync::mpsc;

use crate::node::NodeRequest;

const MAX_MESSAGES_PER_BATCH: usize = 4096;
const CONNECT_TIMEOUT: Duration = Duration::from_millis(500);
const BACKOFF_MIN: Duration = Duration::from_millis(50);
const BACKOFF_MAX: Duration = Duration::from_millis(1000);

/// Sends Raft messages to peers. `send` never blocks the Raft loop.
pub struct Transport {
    queues: HashMap<u64, mpsc::UnboundedSender<Message>>,
}

impl Transport {
    /// Starts one sender task per peer on `rt`.
    pub fn start(
        rt: &tokio::runtime::Handle,
        self_id: u64,
        cluster_id: u64,
        peers: &[(u64, String)],
        raft_tx: StdSender<NodeRequest>,
    ) -> Transport {
        let mut queues = HashMap::new();
        for (id, url) in peers {
            let (tx, rx) = mpsc::unbounded_channel();
            queues.insert(*id, tx);
            let link = PeerLink {
                self_id,
                cluster_id,
                peer_id: *id,
                url: url.clone(),
                raft_tx: raft_tx.clone(),
            };
            rt.spawn(link.run(rx));
        }
        Transport { queues }
    }

    pub fn send(&self, messages: Vec<Message>) {
        for m in messages {
            match self.queues.get(&m.to) {
                Some(q) => {
                    let _ = q.send(m);
                }
                None => {
                    tracing::warn!(to = %format!("{:x}", m.to), "raft message for unknown member dropped")
                }
            }
        }
    }
}

struct PeerLink {
    self_id: u64,
    cluster_id: u64,
    peer_id: u64,
    url: String,
    raft_tx: StdSender<NodeRequest>,
}

impl PeerLink {
    async fn run(self, mut queue: mpsc::UnboundedReceiver<Message>) {
        let mut backoff = BACKOFF_MIN;
        loop {
            match self.connect().await {
                Ok(client) => {
                    backoff = BACKOFF_MIN;
                    match self.stream(client, &mut queue).await {
                        LinkEnd::QueueClosed => return,
                        LinkEnd::Broken(why) => {
                            tracing::debug!(peer = %format!("{:x}", self.peer_id), "peer stream broke: {why}");
                        }
                    }
                }
                Err(e) => {
                    tracing::debug!(peer = %format!("{:x}", self.peer_id), "cannot reach peer at {}: {e}", self.url);
                }
            }
            let _ = self.raft_tx.send(NodeRequest::Unreachable(self.peer_id));
            // Messages queued while the peer is unreachable are stale by the
            // time it is back; Raft resends what matters.
            tokio::time::sleep(backoff).await;
            while let Ok(m) = queue.try_recv() {
                self.report_snapshot_failure(&m);
            }
            backoff = (backoff * 2).min(BACKOFF_MAX);
        }
    }

    async fn connect(
        &self,
    ) -> Result<RaftPeerClient<tonic::transport::Channel>, tonic::transport::Error> {
        let endpoint = tonic::transport::Endpoint::from_shared(self.url.clone())?
            .connect_timeout(CONNECT_TIMEOUT)
            .tcp_nodelay(true)
            .http2_keep_alive_interval(Duration::from_secs(1))
            .keep_alive_timeout(Duration::from_secs(3));
        let channel = endpoint.connect().await?;
        Ok(RaftPeerClient::new(channel)
            .max_encoding_message_size(MAX_PEER_MESSAGE_BYTES)
            .max_decoding_message_size(MAX_PEER_MESSAGE_BYTES))
    }

    async fn stream(
        &self,
        mut client: RaftPeerClient<tonic::transport::Channel>,
        queue: &mut mpsc::UnboundedReceiver<Message>,
    ) -> LinkEnd {
        let (batch_tx, batch_rx) = mpsc::channel::<PeerBatch>(16);
        let call = client.stream(tokio_stream::wrappers::ReceiverStream::new(batch_rx));
        tokio::pin!(call);
        loop {
            tokio::select! {
                result = &mut call => {
                    return LinkEnd::Broken(match result {
                        Ok(_) => "peer closed the stream".to_string(),
                        Err(status) => status.to_string(),
                    });
                }
                next = queue.recv() => {
                    let Some(first) = next else { return LinkEnd::QueueClosed };
                    let mut snapshots = Vec::new();
                    let mut messages = Vec::new();
                    for m in std::iter::once(first).chain(std::iter::from_fn(|| queue.try_recv().ok())) {
                        if m.get_msg_type() == MessageType::MsgSnapshot {
                            snapshots.push(m.to);
                        }
                        messages.push(encode_message(&m));
                        if messages.len() >= MAX_MESSAGES_PER_BATCH {
                            break;
                        }
                    }
                    let batch = PeerBatch { from: self.self_id, cluster_id: self.cluster_id, messages };
                    if batch_tx.send(batch).await.is_err() {
                        for _ in snapshots {
                            let _ = self.raft_tx.send(NodeRequest::SnapshotStatus(self.peer_id, false));
                        }
                        return LinkEnd::Broken("stream closed while sending".into());
                    }
                    for _ in snapshots {
                        let _ = self.raft_tx.send(NodeRequest::SnapshotStatus(self.peer_id, true));
                    }
                }
            }
        }
    }

    fn report_snapshot_failure(&self, m: &Message) {
        if m.get_msg_type() == MessageType::MsgSnapshot {
            let _ = self
                .raft_tx
                .send(NodeRequest::SnapshotStatus(self.peer_id, false));
        }
    }
}

enum LinkEnd {
    QueueClosed,
    Broken(String),
}
