//! `etcdserverpb.KV`: Range, Put, DeleteRange, Txn, Compact. Mutations go
//! through Raft; Range and read-only Txns read the store directly (after a
//! read-index barrier unless serializable), as etcd serves them.

use prost::Message as _;
use rafter_proto::etcdserverpb::kv_server::Kv;
use rafter_proto::etcdserverpb::*;
use rafter_storage::mvcc::{read_only, validate, KvResponse};
use rafter_storage::{KvRequest, MvccError, MvccStore};
use tonic::{Request, Response, Status};

use crate::error::ApiError;
use crate::handle::NodeHandle;
use crate::services::session_meta::session_tag;

pub struct KvService {
    node: NodeHandle,
}

impl KvService {
    pub fn new(node: NodeHandle) -> Self {
        KvService { node }
    }

    /// Proposes a mutation, exactly-once when the request carries a
    /// session tag (`session_meta.rs`).
    async fn mutate(
        &self,
        request: KvRequest,
        tag: Option<rafter_proto::rafterpb::ClientTag>,
    ) -> Result<KvResponse, ApiError> {
        let Some(tag) = tag else {
            return self.node.propose(request).await;
        };
        let wait = self.node.wait_for(false, 0);
        match self.node.propose_in_session(request, tag, wait).await? {
            // Its deadline passed and a cancel decided it: applied first
            // (the original answer) or cancelled.
            KvResponse::Outcome(decided) => Ok(decided.into_answer()?),
            answer => Ok(answer),
        }
    }

    fn check_size(&self, encoded_len: usize) -> Result<(), ApiError> {
        if encoded_len > self.node.max_request_bytes {
            return Err(ApiError::RequestTooLarge);
        }
        Ok(())
    }

    /// A read-only txn takes the Range path: a read-index barrier unless
    /// serializable, then one read snapshot of the store. Nothing enters the
    /// Raft log.
    async fn txn_read(&self, r: TxnRequest) -> Result<TxnResponse, Status> {
        if !read_only::is_serializable(&r) {
            self.node.read_barrier().await?;
        }
        // Only single keys: a few B-tree lookups per compare and range, as
        // for a single-key Range; any key range goes to the blocking pool.
        let mut resp = self
            .read_store(single_keys(&r), move |s| s.txn_read(&r))
            .await?;
        self.node.stamp(&mut resp.header);
        Ok(resp)
    }

    /// Runs a read of the store (in its own read snapshot). `inline` when it
    /// is a few B-tree lookups: cheaper on this thread than a hop to the
    /// blocking pool. A scan that may be long goes to the blocking pool, so
    /// it never holds up an async worker.
    async fn read_store<T: Send + 'static>(
        &self,
        inline: bool,
        read: impl FnOnce(&MvccStore) -> Result<T, MvccError> + Send + 'static,
    ) -> Result<T, Status> {
        let result = if inline {
            read(&self.node.store)
        } else {
            let store = self.node.store.clone();
            tokio::task::spawn_blocking(move || read(&store))
                .await
                .map_err(|e| Status::internal(e.to_string()))?
        };
        Ok(result.map_err(ApiError::from)?)
    }
}

/// Whether every compare and range of a read-only txn, nested txns
/// included, names a single key (no `range_end`).
fn single_keys(t: &TxnRequest) -> bool {
    t.compare.iter().all(|c| c.range_end.is_empty())
        && t.success
            .iter()
            .chain(&t.failure)
            .all(|op| match &op.request {
                Some(request_op::Request::RequestRange(r)) => r.range_end.is_empty(),
                Some(request_op::Request::RequestTxn(inner)) => single_keys(inner),
                _ => true,
            })
}

/// A response of another kind than the request means the apply layer is
/// broken; it is an internal error, never a silent wrong answer.
fn mismatch() -> Status {
    Status::internal("rafter: apply returned a response of the wrong kind")
}

#[tonic::async_trait]
impl Kv for KvService {
    type RangeStreamStream =
        tokio_stream::wrappers::ReceiverStream<Result<RangeStreamResponse, Status>>;

    async fn range_stream(
        &self,
        request: Request<RangeRequest>,
    ) -> Result<Response<Self::RangeStreamStream>, Status> {
        let r = request.into_inner();
        validate::check_range(&r).map_err(ApiError::from)?;
        if !r.serializable {
            self.node.read_barrier().await?;
        }
        let chunks = super::range_stream::start(self.node.clone(), r);
        Ok(Response::new(tokio_stream::wrappers::ReceiverStream::new(
            chunks,
        )))
    }

    async fn range(
        &self,
        request: Request<RangeRequest>,
    ) -> Result<Response<RangeResponse>, Status> {
        let r = request.into_inner();
        validate::check_range(&r).map_err(ApiError::from)?;
        if !r.serializable {
            self.node.read_barrier().await?;
        }
        let single_key = r.range_end.is_empty();
        let mut resp = self.read_store(single_key, move |s| s.range(&r)).await?;
        self.node.stamp(&mut resp.header);
        Ok(Response::new(resp))
    }

    async fn put(&self, request: Request<PutRequest>) -> Result<Response<PutResponse>, Status> {
        let tag = session_tag(request.metadata())?;
        let r = request.into_inner();
        validate::check_put(&r).map_err(ApiError::from)?;
        self.check_size(r.encoded_len())?;
        match self.mutate(KvRequest::Put(r), tag).await? {
            KvResponse::Put(mut p) => {
                self.node.stamp(&mut p.header);
                Ok(Response::new(p))
            }
            _ => Err(mismatch()),
        }
    }

    async fn delete_range(
        &self,
        request: Request<DeleteRangeRequest>,
    ) -> Result<Response<DeleteRangeResponse>, Status> {
        let tag = session_tag(request.metadata())?;
        let r = request.into_inner();
        validate::check_delete(&r).map_err(ApiError::from)?;
        self.check_size(r.encoded_len())?;
        match self.mutate(KvRequest::DeleteRange(r), tag).await? {
            KvResponse::DeleteRange(mut d) => {
                self.node.stamp(&mut d.header);
                Ok(Response::new(d))
            }
            _ => Err(mismatch()),
        }
    }

    async fn txn(&self, request: Request<TxnRequest>) -> Result<Response<TxnResponse>, Status> {
        let tag = session_tag(request.metadata())?;
        let r = request.into_inner();
        validate::check_txn(&r, self.node.max_txn_ops).map_err(ApiError::from)?;
        if read_only::is_read_only(&r) {
            // No size check: etcd refuses an over-limit request only when it
            // would enter the log; gRPC's receive limit bounds this one.
            return self.txn_read(r).await.map(Response::new);
        }
        self.check_size(r.encoded_len())?;
        match self.mutate(KvRequest::Txn(r), tag).await? {
            KvResponse::Txn(mut t) => {
                // As etcd: only the outer header is complete; the headers of
                // responses inside the txn carry just the revision.
                self.node.stamp(&mut t.header);
                Ok(Response::new(t))
            }
            _ => Err(mismatch()),
        }
    }

    async fn compact(
        &self,
        request: Request<CompactionRequest>,
    ) -> Result<Response<CompactionResponse>, Status> {
        let r = request.into_inner();
        match self.node.propose(KvRequest::Compaction(r)).await? {
            KvResponse::Compact(mut c) => {
                self.node.stamp(&mut c.header);
                Ok(Response::new(c))
            }
            _ => Err(mismatch()),
        }
    }
}
