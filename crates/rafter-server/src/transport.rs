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
use rafter_proto::rafterpb::{PeerBatch, SnapshotChunk};
use tokio::sync::mpsc;

use crate::node::NodeRequest;

const MAX_MESSAGES_PER_BATCH: usize = 4096;
const SNAPSHOT_CHUNK_BYTES: usize = 1024 * 1024;
const CONNECT_TIMEOUT: Duration = Duration::from_millis(500);
const BACKOFF_MIN: Duration = Duration::from_millis(20);
/// Short enough that a restarted peer hears its leader within a few
/// heartbeats, long enough not to spin on a dead one.
const BACKOFF_MAX: Duration = Duration::from_millis(200);

/// Sends Raft messages to peers. `send` never blocks the Raft loop.
pub struct Transport {
    /// Each peer's queue and the URL its link sends to.
    queues: HashMap<u64, (mpsc::UnboundedSender<Message>, String)>,
    rt: tokio::runtime::Handle,
    self_id: u64,
    cluster_id: u64,
    raft_tx: StdSender<NodeRequest>,
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
        let mut transport = Transport {
            queues: HashMap::new(),
            rt: rt.clone(),
            self_id,
            cluster_id,
            raft_tx,
        };
        transport.set_peers(peers);
        transport
    }

    /// Makes `peers` the members messages go to: links to new peers (or
    /// peers whose URL changed) start, links to others end.
    pub fn set_peers(&mut self, peers: &[(u64, String)]) {
        self.queues
            .retain(|id, (_, url)| peers.iter().any(|(p, u)| p == id && u == url));
        for (id, url) in peers {
            if self.queues.contains_key(id) {
                continue;
            }
            let (tx, rx) = mpsc::unbounded_channel();
            self.queues.insert(*id, (tx, url.clone()));
            let link = PeerLink {
                self_id: self.self_id,
                cluster_id: self.cluster_id,
                peer_id: *id,
                url: url.clone(),
                raft_tx: self.raft_tx.clone(),
            };
            self.rt.spawn(link.run(rx));
        }
    }

    pub fn send(&self, messages: Vec<Message>) {
        for m in messages {
            match self.queues.get(&m.to) {
                Some((q, _)) => {
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
                        LinkEnd::Removed => {
                            let _ = self.raft_tx.send(NodeRequest::Removed);
                            return;
                        }
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
        client: RaftPeerClient<tonic::transport::Channel>,
        queue: &mut mpsc::UnboundedReceiver<Message>,
    ) -> LinkEnd {
        let (batch_tx, batch_rx) = mpsc::channel::<PeerBatch>(16);
        let mut stream_client = client.clone();
        let call = stream_client.stream(tokio_stream::wrappers::ReceiverStream::new(batch_rx));
        tokio::pin!(call);
        loop {
            tokio::select! {
                result = &mut call => {
                    if let Err(status) = &result {
                        if status.message() == REMOVED_MESSAGE {
                            return LinkEnd::Removed;
                        }
                    }
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
                            snapshots.push(m);
                            continue;
                        }
                        messages.push(encode_message(&m));
                        if messages.len() >= MAX_MESSAGES_PER_BATCH {
                            break;
                        }
                    }
                    if !messages.is_empty() {
                        let batch = PeerBatch { from: self.self_id, cluster_id: self.cluster_id, messages };
                        if batch_tx.send(batch).await.is_err() {
                            return LinkEnd::Broken("stream closed while sending".into());
                        }
                    }
                    for snap in snapshots {
                        let delivered = self.send_snapshot(&mut client.clone(), &snap).await;
                        let _ = self.raft_tx.send(NodeRequest::SnapshotStatus(self.peer_id, delivered));
                    }
                }
            }
        }
    }

    /// Streams one snapshot message in checksummed chunks on its own call, so
    /// a large snapshot never blocks (or is bounded by) the message stream.
    async fn send_snapshot(
        &self,
        client: &mut RaftPeerClient<tonic::transport::Channel>,
        m: &Message,
    ) -> bool {
        let data = encode_message(m);
        let total_bytes = data.len() as u64;
        let crc32 = crc32fast::hash(&data);
        let count = data.len().div_ceil(SNAPSHOT_CHUNK_BYTES).max(1);
        let chunks: Vec<SnapshotChunk> = (0..count)
            .map(|i| {
                let piece = &data
                    [i * SNAPSHOT_CHUNK_BYTES..((i + 1) * SNAPSHOT_CHUNK_BYTES).min(data.len())];
                SnapshotChunk {
                    from: self.self_id,
                    cluster_id: self.cluster_id,
                    total_bytes,
                    data: piece.to_vec(),
                    last: i + 1 == count,
                    crc32: if i + 1 == count { crc32 } else { 0 },
                }
            })
            .collect();
        match client.snapshot(tokio_stream::iter(chunks)).await {
            Ok(_) => true,
            Err(status) => {
                tracing::warn!(peer = %format!("{:x}", self.peer_id), "snapshot not delivered: {status}");
                false
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
    /// The peer refused this member: it was removed from the cluster.
    Removed,
}

/// What a member answers the peer messages of a removed member (etcd's
/// "the member has been permanently removed from the cluster").
pub const REMOVED_MESSAGE: &str = "the member has been permanently removed from the cluster";
