//! `etcdserverpb.Maintenance`: Status (what `etcdctl endpoint status` shows)
//! Alarm listing, Hash and HashKV (cross-member consistency checks);
//! snapshot download and defragmentation arrive with the maintenance work.

use std::sync::atomic::Ordering;

use rafter_proto::etcdserverpb::maintenance_server::Maintenance;
use rafter_proto::etcdserverpb::*;
use tonic::{Request, Response, Status};

use super::unimplemented_rpcs;
use crate::error::ApiError;
use crate::handle::NodeHandle;

/// The etcd API level Rafter speaks (reported as `version`, which etcd
/// clients read as the server's API version).
pub const API_VERSION: &str = "3.6.0";

/// Bytes of a snapshot per streamed message (etcd sends 32 KiB).
const SNAPSHOT_CHUNK_BYTES: usize = 32 * 1024;
/// etcd's default backend quota (2 GiB).
const DB_SIZE_QUOTA_BYTES: i64 = 2 * 1024 * 1024 * 1024;

pub struct MaintenanceService {
    node: NodeHandle,
    /// Ids of the cluster's members (valid leader-transfer targets).
    members: Vec<u64>,
}

impl MaintenanceService {
    pub fn new(node: NodeHandle, members: Vec<u64>) -> Self {
        MaintenanceService { node, members }
    }

    fn current_revision(&self) -> i64 {
        self.node.store.state().map_or(0, |s| s.current_revision)
    }
}

#[tonic::async_trait]
impl Maintenance for MaintenanceService {
    type SnapshotStream = tokio_stream::wrappers::ReceiverStream<Result<SnapshotResponse, Status>>;

    async fn status(
        &self,
        _request: Request<StatusRequest>,
    ) -> Result<Response<StatusResponse>, Status> {
        let s = &self.node.status;
        let db_size = self.node.store.db_size_bytes() as i64;
        Ok(Response::new(StatusResponse {
            header: Some(self.node.header(self.current_revision())),
            version: API_VERSION.to_string(),
            db_size,
            leader: s.leader_id.load(Ordering::Relaxed),
            raft_index: s.commit_index.load(Ordering::Relaxed),
            raft_term: s.term.load(Ordering::Relaxed),
            raft_applied_index: s.applied_index.load(Ordering::Relaxed),
            errors: vec![],
            db_size_in_use: db_size,
            is_learner: false,
            storage_version: API_VERSION.to_string(),
            db_size_quota: DB_SIZE_QUOTA_BYTES,
            downgrade_info: Some(DowngradeInfo::default()),
        }))
    }

    async fn alarm(
        &self,
        request: Request<AlarmRequest>,
    ) -> Result<Response<AlarmResponse>, Status> {
        if request.get_ref().action != alarm_request::AlarmAction::Get as i32 {
            return Err(crate::error::unimplemented(
                "Maintenance.Alarm (activate/deactivate)",
            ));
        }
        Ok(Response::new(AlarmResponse {
            header: Some(self.node.header(self.current_revision())),
            alarms: vec![],
        }))
    }

    /// A point-in-time copy of the whole store (every table, read in one
    /// transaction) in `rafter_storage::snapshot_file`'s form, streamed in
    /// chunks as etcd streams its database file. `rafter snapshot
    /// status|restore` read it; etcdctl's `snapshot save` saves it.
    async fn snapshot(
        &self,
        _request: Request<SnapshotRequest>,
    ) -> Result<Response<Self::SnapshotStream>, Status> {
        let store = self.node.store.clone();
        let (data, _) = tokio::task::spawn_blocking(move || store.snapshot_data())
            .await
            .map_err(|e| Status::internal(e.to_string()))?
            .map_err(ApiError::from)?;
        let data = rafter_storage::snapshot_file::encode(&data);
        let header = self.node.header(self.current_revision());
        let (tx, rx) = tokio::sync::mpsc::channel(4);
        tokio::spawn(async move {
            let total = data.len();
            let mut sent = 0;
            for chunk in data.chunks(SNAPSHOT_CHUNK_BYTES) {
                sent += chunk.len();
                let resp = SnapshotResponse {
                    header: Some(header),
                    remaining_bytes: (total - sent) as u64,
                    blob: chunk.to_vec(),
                    version: API_VERSION.to_string(),
                };
                if tx.send(Ok(resp)).await.is_err() {
                    return; // the client went away
                }
            }
        });
        Ok(Response::new(tokio_stream::wrappers::ReceiverStream::new(
            rx,
        )))
    }

    async fn hash_kv(
        &self,
        request: Request<HashKvRequest>,
    ) -> Result<Response<HashKvResponse>, Status> {
        let store = self.node.store.clone();
        let revision = request.get_ref().revision;
        let (hash, hash_revision, compact_revision) =
            tokio::task::spawn_blocking(move || store.hash_kv(revision))
                .await
                .map_err(|e| Status::internal(e.to_string()))?
                .map_err(ApiError::from)?;
        Ok(Response::new(HashKvResponse {
            header: Some(self.node.header(self.current_revision())),
            hash,
            compact_revision,
            hash_revision,
        }))
    }

    async fn hash(&self, _request: Request<HashRequest>) -> Result<Response<HashResponse>, Status> {
        let store = self.node.store.clone();
        let (data, _) = tokio::task::spawn_blocking(move || store.snapshot_data())
            .await
            .map_err(|e| Status::internal(e.to_string()))?
            .map_err(ApiError::from)?;
        Ok(Response::new(HashResponse {
            header: Some(self.node.header(self.current_revision())),
            hash: crc32fast::hash(&data),
        }))
    }

    async fn move_leader(
        &self,
        request: Request<MoveLeaderRequest>,
    ) -> Result<Response<MoveLeaderResponse>, Status> {
        let target = request.get_ref().target_id;
        if !self.members.contains(&target) {
            return Err(ApiError::BadLeaderTransferee.into());
        }
        self.node.transfer_leader(target).await?;
        Ok(Response::new(MoveLeaderResponse {
            header: Some(self.node.header(self.current_revision())),
        }))
    }

    unimplemented_rpcs! { "Maintenance";
        defragment(DefragmentRequest) -> DefragmentResponse;
        downgrade(DowngradeRequest) -> DowngradeResponse;
    }
}
