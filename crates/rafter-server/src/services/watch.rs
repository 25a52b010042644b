//! `etcdserverpb.Watch`: one bidirectional stream per call, carrying many
//! watches. Requests go to the core's watch hub; a sender task moves the
//! hub's responses for this stream into gRPC, stamping each header with this
//! member's identity and term. The hand-over channel is small, so a client
//! that stops reading stalls only its own sender: the hub's outbox for the
//! stream fills, its watches fall behind and later catch up from the store.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use rafter_core::watch::StreamId;
use rafter_proto::etcdserverpb::watch_server::Watch;
use rafter_proto::etcdserverpb::{WatchRequest, WatchResponse};
use tokio::sync::{mpsc, Notify};
use tokio_stream::wrappers::ReceiverStream;
use tokio_stream::StreamExt;
use tonic::{Request, Response, Status, Streaming};

use crate::handle::NodeHandle;
use crate::watcher::WatchShared;

/// Responses handed to gRPC ahead of the client reading them.
const SEND_QUEUE_RESPONSES: usize = 16;

pub struct WatchService {
    node: NodeHandle,
    shared: Arc<WatchShared>,
}

impl WatchService {
    pub fn new(node: NodeHandle, shared: Arc<WatchShared>) -> Self {
        WatchService { node, shared }
    }

    /// Serves one watch stream: `requests` until it ends (the client
    /// closed its side), the returned responses until they are dropped.
    /// gRPC's stream and the JSON gateway's both come here.
    pub fn open(
        &self,
        mut requests: impl tokio_stream::Stream<Item = Result<WatchRequest, Status>>
            + Send
            + Unpin
            + 'static,
    ) -> ReceiverStream<Result<WatchResponse, Status>> {
        let (id, notify) = self.shared.open_stream();
        let guard = Arc::new(StreamGuard {
            shared: self.shared.clone(),
            id,
            client_done: AtomicBool::new(false),
        });
        let (tx, rx) = mpsc::channel(SEND_QUEUE_RESPONSES);
        let (shared, node) = (self.shared.clone(), self.node.clone());
        let reader_guard = guard.clone();
        let reader_notify = notify.clone();
        tokio::spawn(async move {
            while let Some(next) = requests.next().await {
                match next {
                    Ok(req) => {
                        let (store_rev, store_compact_rev) = node.revisions();
                        let mut hub = shared.hub();
                        hub.request(id, req, store_rev, store_compact_rev);
                        let catch_up = hub.stream_needs_sync(id);
                        drop(hub);
                        if catch_up {
                            shared.wake();
                        }
                        reader_notify.notify_one();
                    }
                    Err(status) => {
                        tracing::debug!("watch stream {id} ended: {status}");
                        break;
                    }
                }
            }
            reader_guard.client_done.store(true, Ordering::Release);
            reader_notify.notify_one();
        });
        tokio::spawn(send_loop(
            guard,
            self.shared.clone(),
            self.node.clone(),
            notify,
            tx,
        ));
        ReceiverStream::new(rx)
    }
}

/// Closes the hub's stream when the last task serving it ends.
struct StreamGuard {
    shared: Arc<WatchShared>,
    id: StreamId,
    /// The client closed its side (or broke it): as etcd, end the stream.
    client_done: AtomicBool,
}

impl Drop for StreamGuard {
    fn drop(&mut self) {
        self.shared.close_stream(self.id);
    }
}

#[tonic::async_trait]
impl Watch for WatchService {
    type WatchStream = ReceiverStream<Result<WatchResponse, Status>>;

    async fn watch(
        &self,
        request: Request<Streaming<WatchRequest>>,
    ) -> Result<Response<Self::WatchStream>, Status> {
        Ok(Response::new(self.open(request.into_inner())))
    }
}

/// Moves the stream's responses from the hub to gRPC until the client goes.
async fn send_loop(
    guard: Arc<StreamGuard>,
    shared: Arc<WatchShared>,
    node: NodeHandle,
    notify: Arc<Notify>,
    tx: mpsc::Sender<Result<WatchResponse, Status>>,
) {
    let id = guard.id;
    loop {
        let (batch, catch_up) = {
            let mut hub = shared.hub();
            let batch = hub.pop_many(id, SEND_QUEUE_RESPONSES);
            (batch, hub.stream_needs_sync(id))
        };
        if catch_up {
            shared.wake();
        }
        if batch.is_empty() {
            if guard.client_done.load(Ordering::Acquire) {
                return;
            }
            tokio::select! {
                _ = notify.notified() => {}
                _ = tx.closed() => return,
            }
        }
        for mut resp in batch {
            node.stamp(&mut resp.header);
            if tx.send(Ok(resp)).await.is_err() {
                return; // the client is gone
            }
        }
    }
}
