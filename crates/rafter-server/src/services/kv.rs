//! `etcdserverpb.KV`: Range, Put, DeleteRange, Txn, Compact. Mutations go
//! through Raft; Range reads the store directly (after a read-index barrier
//! unless serializable).

use prost::Message as _;
use rafter_proto::etcdserverpb::kv_server::Kv;
use rafter_proto::etcdserverpb::*;
use rafter_storage::mvcc::{validate, KvResponse};
use rafter_storage::KvRequest;
use tonic::{Request, Response, Status};

use crate::error::ApiError;
use crate::handle::NodeHandle;

pub struct KvService {
    node: NodeHandle,
}

impl KvService {
    pub fn new(node: NodeHandle) -> Self {
        KvService { node }
    }

    fn check_size(&self, encoded_len: usize) -> Result<(), ApiError> {
        if encoded_len > self.node.max_request_bytes {
            return Err(ApiError::RequestTooLarge);
        }
        Ok(())
    }
}

/// A response of another kind than the request means the apply layer is
/// broken; it is an internal error, never a silent wrong answer.
fn mismatch() -> Status {
    Status::internal("rafter: apply returned a response of the wrong kind")
}

#[tonic::async_trait]
impl Kv for KvService {
    async fn range(
        &self,
        request: Request<RangeRequest>,
    ) -> Result<Response<RangeResponse>, Status> {
        let r = request.into_inner();
        validate::check_range(&r).map_err(ApiError::from)?;
        if !r.serializable {
            self.node.read_barrier().await?;
        }
        let mut resp = if r.range_end.is_empty() {
            // A single key is a few B-tree lookups in a read snapshot:
            // cheaper on this thread than a hop to the blocking pool.
            self.node.store.range(&r).map_err(ApiError::from)?
        } else {
            let store = self.node.store.clone();
            tokio::task::spawn_blocking(move || store.range(&r))
                .await
                .map_err(|e| Status::internal(e.to_string()))?
                .map_err(ApiError::from)?
        };
        self.node.stamp(&mut resp.header);
        Ok(Response::new(resp))
    }

    async fn put(&self, request: Request<PutRequest>) -> Result<Response<PutResponse>, Status> {
        let r = request.into_inner();
        validate::check_put(&r).map_err(ApiError::from)?;
        self.check_size(r.encoded_len())?;
        match self.node.propose(KvRequest::Put(r)).await? {
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
        let r = request.into_inner();
        validate::check_delete(&r).map_err(ApiError::from)?;
        self.check_size(r.encoded_len())?;
        match self.node.propose(KvRequest::DeleteRange(r)).await? {
            KvResponse::DeleteRange(mut d) => {
                self.node.stamp(&mut d.header);
                Ok(Response::new(d))
            }
            _ => Err(mismatch()),
        }
    }

    async fn txn(&self, request: Request<TxnRequest>) -> Result<Response<TxnResponse>, Status> {
        let r = request.into_inner();
        validate::check_txn(&r, self.node.max_txn_ops).map_err(ApiError::from)?;
        self.check_size(r.encoded_len())?;
        match self.node.propose(KvRequest::Txn(r)).await? {
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
