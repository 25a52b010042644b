//! `etcdserverpb.Maintenance`: Status (what `etcdctl endpoint status`
//! shows), alarms (raised and disarmed through the log), Hash and HashKV
//! (cross-member consistency checks), snapshot download, online
//! defragmentation and leader transfer.

use std::sync::atomic::Ordering;

use rafter_proto::etcdserverpb::maintenance_server::Maintenance;
use rafter_proto::etcdserverpb::*;
use tonic::{Request, Response, Status};

use super::unimplemented_rpcs;
use rafter_storage::mvcc::KvResponse;

use crate::error::ApiError;
use crate::handle::NodeHandle;

/// The etcd API level Rafter speaks (reported as `version`, which etcd
/// clients read as the server's API version).
pub const API_VERSION: &str = "3.6.0";

/// Bytes of a snapshot per streamed message (etcd sends 32 KiB).
const SNAPSHOT_CHUNK_BYTES: usize = 32 * 1024;

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
        let store = self.node.store.clone();
        let db_size_in_use = tokio::task::spawn_blocking(move || store.db_size_in_use_bytes())
            .await
            .map_err(|e| Status::internal(e.to_string()))?
            .map_err(ApiError::from)? as i64;
        // etcd lists raised alarms as the status's errors.
        let errors = self
            .node
            .store
            .alarms()
            .map_err(ApiError::from)?
            .iter()
            .map(|a| {
                let name = AlarmType::try_from(a.alarm).map_or("UNKNOWN", |t| t.as_str_name());
                format!("memberID:{} alarm:{name} ", a.member_id)
            })
            .collect();
        Ok(Response::new(StatusResponse {
            header: Some(self.node.header(self.current_revision())),
            version: API_VERSION.to_string(),
            db_size,
            leader: s.leader_id.load(Ordering::Relaxed),
            raft_index: s.commit_index.load(Ordering::Relaxed),
            raft_term: s.term.load(Ordering::Relaxed),
            raft_applied_index: s.applied_index.load(Ordering::Relaxed),
            errors,
            db_size_in_use: db_size_in_use.min(db_size),
            is_learner: false,
            storage_version: API_VERSION.to_string(),
            db_size_quota: self.node.quota_bytes as i64,
            downgrade_info: Some(DowngradeInfo::default()),
        }))
    }

    /// GET lists the alarms from this member's store; ACTIVATE and
    /// DEACTIVATE go through the log (as etcd: every member must refuse
    /// the same writes) and answer with the alarms they changed.
    async fn alarm(
        &self,
        request: Request<AlarmRequest>,
    ) -> Result<Response<AlarmResponse>, Status> {
        let req = request.into_inner();
        let alarms = match alarm_request::AlarmAction::try_from(req.action) {
            Ok(alarm_request::AlarmAction::Get) => self
                .node
                .store
                .alarms()
                .map_err(ApiError::from)?
                .into_iter()
                .filter(|a| req.alarm == AlarmType::None as i32 || a.alarm == req.alarm)
                .collect(),
            Ok(_) => match self
                .node
                .propose(rafter_storage::KvRequest::Alarm(req))
                .await?
            {
                KvResponse::Alarm(changed) => changed,
                other => return Err(Status::internal(format!("alarm answered {other:?}"))),
            },
            Err(_) => {
                return Err(Status::invalid_argument(format!(
                    "etcdserver: unknown alarm action {}",
                    req.action
                )))
            }
        };
        Ok(Response::new(AlarmResponse {
            header: Some(self.node.header(self.current_revision())),
            alarms,
        }))
    }

    /// Rewrites this member's store compactly while it keeps serving (see
    /// `rafter_storage::mvcc::defrag`); answers once the new file is in
    /// place.
    async fn defragment(
        &self,
        _request: Request<DefragmentRequest>,
    ) -> Result<Response<DefragmentResponse>, Status> {
        let store = self.node.store.clone();
        let report = tokio::task::spawn_blocking(move || store.defragment())
            .await
            .map_err(|e| Status::internal(e.to_string()))?
            .map_err(ApiError::from)?;
        tracing::info!(
            "defragmented: {} -> {} bytes in {} ms ({} rows copied, {} entries replayed, applies paused {} us)",
            report.size_before_bytes,
            report.size_after_bytes,
            report.total_ms,
            report.rows_copied,
            report.entries_replayed,
            report.pause_us
        );
        Ok(Response::new(DefragmentResponse {
            header: Some(self.node.header(self.current_revision())),
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
        downgrade(DowngradeRequest) -> DowngradeResponse;
    }
}
