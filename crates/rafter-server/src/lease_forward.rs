//! Keep-alives a follower forwards to the leader, multiplexed over one
//! long-lived `LeaseKeepAlive` stream to the leader's client URL (etcd
//! forwards them over its peer API). The leader answers a stream's
//! keep-alives in order, so each answer goes to the oldest waiter for its
//! lease id. When the leader changes, or the stream breaks, waiters are
//! failed and the next keep-alive opens a stream to the new leader.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};

use rafter_proto::etcdserverpb::lease_client::LeaseClient;
use rafter_proto::etcdserverpb::{LeaseKeepAliveRequest, LeaseKeepAliveResponse};
use tokio::sync::{mpsc, oneshot};
use tokio_stream::wrappers::ReceiverStream;
use tonic::Status;

/// Keep-alives queued to the leader before senders wait.
const FORWARD_QUEUE: usize = 4096;

type Waiters = HashMap<i64, VecDeque<oneshot::Sender<Result<LeaseKeepAliveResponse, Status>>>>;

struct Link {
    url: String,
    requests: mpsc::Sender<LeaseKeepAliveRequest>,
    waiters: Arc<Mutex<Waiters>>,
}

/// The forwarding stream to the current leader, opened on first use.
#[derive(Default, Clone)]
pub struct KeepAliveForwarder {
    link: Arc<tokio::sync::Mutex<Option<Link>>>,
}

impl KeepAliveForwarder {
    /// Sends one keep-alive to the leader at `url` and waits for its answer.
    pub async fn keep_alive(
        &self,
        url: &str,
        id: i64,
        timeout: std::time::Duration,
    ) -> Result<LeaseKeepAliveResponse, Status> {
        let (tx, rx) = oneshot::channel();
        let requests = {
            let mut link = self.link.lock().await;
            let stale = link
                .as_ref()
                .is_none_or(|l| l.url != url || l.requests.is_closed());
            if stale {
                *link = Some(open(url)?);
            }
            let l = link.as_ref().expect("just opened");
            l.waiters
                .lock()
                .expect("waiters lock")
                .entry(id)
                .or_default()
                .push_back(tx);
            l.requests.clone()
        };
        requests
            .send(LeaseKeepAliveRequest { id })
            .await
            .map_err(|_| {
                Status::unavailable("etcdserver: the leader's keep-alive stream closed")
            })?;
        match tokio::time::timeout(timeout, rx).await {
            Ok(Ok(answer)) => answer,
            Ok(Err(_)) => Err(Status::unavailable(
                "etcdserver: the leader's keep-alive stream closed",
            )),
            Err(_) => Err(Status::unavailable("etcdserver: request timed out")),
        }
    }
}

fn open(url: &str) -> Result<Link, Status> {
    let channel = tonic::transport::Endpoint::from_shared(url.to_string())
        .map_err(|e| Status::unavailable(format!("etcdserver: leader URL {url}: {e}")))?
        .connect_lazy();
    let (tx, rx) = mpsc::channel(FORWARD_QUEUE);
    let waiters: Arc<Mutex<Waiters>> = Arc::default();
    let task_waiters = waiters.clone();
    tokio::spawn(async move {
        let mut client = LeaseClient::new(channel);
        let outcome = match client.lease_keep_alive(ReceiverStream::new(rx)).await {
            Ok(resp) => {
                let mut stream = resp.into_inner();
                loop {
                    match stream.message().await {
                        Ok(Some(answer)) => {
                            let waiter = task_waiters
                                .lock()
                                .expect("waiters lock")
                                .get_mut(&answer.id)
                                .and_then(VecDeque::pop_front);
                            if let Some(w) = waiter {
                                let _ = w.send(Ok(answer));
                            }
                        }
                        Ok(None) => {
                            break Status::unavailable(
                                "etcdserver: leader closed the keep-alive stream",
                            )
                        }
                        Err(status) => break status,
                    }
                }
            }
            Err(status) => status,
        };
        // Fail everyone still waiting on this stream.
        let waiting = std::mem::take(&mut *task_waiters.lock().expect("waiters lock"));
        for w in waiting.into_values().flatten() {
            let _ = w.send(Err(outcome.clone()));
        }
    });
    Ok(Link {
        url: url.to_string(),
        requests: tx,
        waiters,
    })
}
