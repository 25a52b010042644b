//! Learning the cluster's current revision for consistent reads: one
//! linearizable request answers every read that was waiting when it was
//! sent. A read that arrives while a request is in flight waits for the
//! next one, because the revision must be learned after the read began:
//! only then does it cover every write that finished before the read.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use rafter_proto::etcdserverpb::RangeRequest;
use tokio::sync::oneshot;
use tokio::time::Instant;

use crate::answer::Wait;
use crate::client::Client;
use crate::error::{Error, Result};

type Waiter = oneshot::Sender<Result<i64>>;

#[derive(Default)]
struct Queue {
    /// A request is in flight (a task owns the next round).
    running: bool,
    /// Reads waiting for a request sent after they arrived.
    waiting: Vec<Waiter>,
}

/// The shared revision requests of one cache.
pub(crate) struct Fetcher {
    client: Client,
    /// The key the request reads (the cache's prefix, one key, no value):
    /// any linearizable read returns the store's revision in its header.
    key: Vec<u8>,
    /// Bound on one request, retries across endpoints included.
    timeout: Duration,
    queue: Mutex<Queue>,
    requests: std::sync::atomic::AtomicU64,
}

impl Fetcher {
    pub(crate) fn new(client: Client, key: Vec<u8>, timeout: Duration) -> Arc<Fetcher> {
        Arc::new(Fetcher {
            client,
            key,
            timeout,
            queue: Mutex::new(Queue::default()),
            requests: Default::default(),
        })
    }

    /// How many linearizable requests were sent.
    pub(crate) fn requests(&self) -> u64 {
        self.requests.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// The store's revision, learned by a linearizable request sent after
    /// this call began, or an error by `deadline`.
    pub(crate) async fn current_revision(self: &Arc<Self>, deadline: Instant) -> Result<i64> {
        let (tx, rx) = oneshot::channel();
        let start = {
            let mut queue = self.queue.lock().expect("fetch queue");
            queue.waiting.push(tx);
            !std::mem::replace(&mut queue.running, true)
        };
        if start {
            tokio::spawn(Arc::clone(self).rounds());
        }
        match tokio::time::timeout_at(deadline, rx).await {
            Ok(Ok(result)) => result,
            Ok(Err(_)) => Err(Error::Unavailable(
                "the cache's revision request was dropped".into(),
            )),
            Err(_) => Err(Error::DeadlineExceeded(
                "the cluster's current revision could not be learned before the deadline".into(),
            )),
        }
    }

    /// Sends requests while reads wait, each answering the reads that
    /// arrived before it was sent.
    async fn rounds(self: Arc<Self>) {
        loop {
            let batch = {
                let mut queue = self.queue.lock().expect("fetch queue");
                if queue.waiting.is_empty() {
                    queue.running = false;
                    return;
                }
                std::mem::take(&mut queue.waiting)
            };
            self.requests
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let request = RangeRequest {
                key: self.key.clone(),
                limit: 1,
                keys_only: true,
                ..Default::default()
            };
            let result = self
                .client
                .range(&request, Wait::For(self.timeout))
                .await
                .map(|r| r.header.map_or(0, |h| h.revision));
            for waiter in batch {
                let _ = waiter.send(result.clone());
            }
        }
    }
}
