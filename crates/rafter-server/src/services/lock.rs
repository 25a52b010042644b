//! `v3lockpb.Lock`: distributed mutexes for clients that do not carry
//! etcd's client-side `concurrency` package (etcdctl lock, the gRPC
//! gateway, other languages). As etcd's `v3lock`, it runs that package's
//! mutex against this member through [`SelfClient`]: Lock creates
//! `name/<lease hex>` with the caller's lease and waits until every key
//! under `name/` created before it is deleted; Unlock deletes the key.

use rafter_proto::etcdserverpb::TxnRequest;
use rafter_proto::v3lockpb::lock_server::Lock;
use rafter_proto::v3lockpb::{LockRequest, LockResponse, UnlockRequest, UnlockResponse};
use tonic::{Request, Response, Status};

use super::concurrency::{
    created_at, first_created, get_op, passed_up, put_op, queue_prefix, range_of, range_op,
    session_key, wait_deletes, SelfClient,
};

pub struct LockService {
    client: SelfClient,
}

impl LockService {
    pub fn new(client: SelfClient) -> Self {
        LockService { client }
    }

    /// etcd's `Mutex.Lock`: the key and the header of the read that found
    /// the lock free.
    async fn lock(&self, name: &[u8], lease: i64) -> Result<LockResponse, Status> {
        let lease = self.client.session_lease(lease).await?;
        let prefix = queue_prefix(name);
        let key = session_key(&prefix, lease);
        // Queue up (or find this lease already queued: locking twice with
        // one lease is one acquisition), and read the holder in the same
        // round trip.
        // The txn runs as its own task: a caller that goes away while it is
        // in flight must still leave the queue if the txn put its key.
        let queueing = tokio::spawn({
            let client = self.client.clone();
            let txn = TxnRequest {
                compare: vec![created_at(&key, 0)],
                success: vec![
                    put_op(&key, vec![], lease),
                    range_op(first_created(&prefix)),
                ],
                failure: vec![get_op(&key), range_op(first_created(&prefix))],
            };
            async move { client.txn(txn).await }
        });
        let mut in_flight = QueueingInFlight {
            client: self.client.clone(),
            key: key.clone(),
            task: Some(queueing),
        };
        let response = in_flight
            .task
            .as_mut()
            .expect("just set")
            .await
            .map_err(|e| Status::internal(format!("lock queueing task: {e}")))?;
        in_flight.task = None;
        let response = response?;
        let mut my_rev = response.header.as_ref().map_or(0, |h| h.revision);
        if !response.succeeded {
            my_rev = range_of(response.responses.first())
                .kvs
                .first()
                .map_or(my_rev, |kv| kv.create_revision);
        }
        let owner = range_of(response.responses.get(1));
        if owner
            .kvs
            .first()
            .is_none_or(|kv| kv.create_revision == my_rev)
        {
            return Ok(LockResponse {
                header: response.header,
                key,
            });
        }
        // A caller that gives up while waiting leaves the queue (etcd
        // unlocks on a failed or cancelled wait).
        let mut leave = LeaveQueue {
            client: self.client.clone(),
            key: Some(key.clone()),
        };
        match wait_deletes(&self.client, &prefix, my_rev - 1).await {
            Ok(header) => {
                leave.key = None;
                Ok(LockResponse { header, key })
            }
            Err(e) => Err(e), // `leave` deletes the key
        }
    }
}

/// A queueing txn still running when its Lock call is dropped: once it
/// finishes, the key it put (if it put one) is deleted.
struct QueueingInFlight {
    client: SelfClient,
    key: Vec<u8>,
    task: Option<tokio::task::JoinHandle<Result<rafter_proto::etcdserverpb::TxnResponse, Status>>>,
}

impl Drop for QueueingInFlight {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            let (client, key) = (self.client.clone(), std::mem::take(&mut self.key));
            tokio::spawn(async move {
                if let Ok(Ok(response)) = task.await {
                    if response.succeeded {
                        if let Err(e) = client.delete(key).await {
                            tracing::debug!("leaving a lock queue: {e}");
                        }
                    }
                }
            });
        }
    }
}

/// Deletes a waiter's key when its Lock call ends without the lock
/// (failed, or dropped because the client went away).
struct LeaveQueue {
    client: SelfClient,
    key: Option<Vec<u8>>,
}

impl Drop for LeaveQueue {
    fn drop(&mut self) {
        if let Some(key) = self.key.take() {
            let client = self.client.clone();
            tokio::spawn(async move {
                if let Err(e) = client.delete(key).await {
                    tracing::debug!("leaving a lock queue: {e}");
                }
            });
        }
    }
}

#[tonic::async_trait]
impl Lock for LockService {
    async fn lock(&self, request: Request<LockRequest>) -> Result<Response<LockResponse>, Status> {
        let request = request.into_inner();
        LockService::lock(self, &request.name, request.lease)
            .await
            .map(Response::new)
            .map_err(passed_up)
    }

    async fn unlock(
        &self,
        request: Request<UnlockRequest>,
    ) -> Result<Response<UnlockResponse>, Status> {
        let header = self
            .client
            .delete(request.into_inner().key)
            .await
            .map_err(passed_up)?;
        Ok(Response::new(UnlockResponse { header }))
    }
}
