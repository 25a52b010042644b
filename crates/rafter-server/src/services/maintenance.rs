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
    type SnapshotStream = tokio_stream::Empty<Result<SnapshotResponse, Status>>;

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

    async fn snapshot(
        &self,
        _request: Request<SnapshotRequest>,
    ) -> Result<Response<Self::SnapshotStream>, Status> {
        Err(crate::error::unimplemented("Maintenance.Snapshot"))
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
