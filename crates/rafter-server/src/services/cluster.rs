//! `etcdserverpb.Cluster`: MemberList from the bootstrap configuration and
//! the client URLs each member published through the log;
//! membership changes arrive with the cluster work.

use rafter_proto::etcdserverpb::cluster_server::Cluster;
use rafter_proto::etcdserverpb::*;
use tonic::{Request, Response, Status};

use super::unimplemented_rpcs;
use crate::handle::NodeHandle;

pub struct ClusterService {
    node: NodeHandle,
    members: Vec<Member>,
}

impl ClusterService {
    pub fn new(node: NodeHandle, members: Vec<Member>) -> Self {
        ClusterService { node, members }
    }
}

impl ClusterService {
    /// The attributes members published. Members publish right after a
    /// leader appears; while a leader is known, wait briefly (bounded by
    /// ATTRIBUTES_WAIT) for every member's, so a new cluster lists them all.
    async fn published_attributes(
        &self,
    ) -> Result<Vec<rafter_proto::rafterpb::MemberAttributes>, Status> {
        let deadline = tokio::time::Instant::now() + ATTRIBUTES_WAIT;
        loop {
            let published = self
                .node
                .store
                .member_attributes()
                .map_err(crate::error::ApiError::from)?;
            let complete = self
                .members
                .iter()
                .all(|m| published.iter().any(|a| a.member_id == m.id));
            let has_leader = self
                .node
                .status
                .leader_id
                .load(std::sync::atomic::Ordering::Relaxed)
                != 0;
            if complete || !has_leader || tokio::time::Instant::now() >= deadline {
                return Ok(published);
            }
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
    }
}

/// Longest MemberList waits for members' attributes to be published.
const ATTRIBUTES_WAIT: std::time::Duration = std::time::Duration::from_millis(1000);

#[tonic::async_trait]
impl Cluster for ClusterService {
    async fn member_list(
        &self,
        request: Request<MemberListRequest>,
    ) -> Result<Response<MemberListResponse>, Status> {
        if request.get_ref().linearizable {
            self.node.read_barrier().await?;
        }
        let published = self.published_attributes().await?;
        let revision = self.node.store.state().map_or(0, |s| s.current_revision);
        let mut members = self.members.clone();
        for m in &mut members {
            if let Some(a) = published.iter().find(|a| a.member_id == m.id) {
                m.client_ur_ls = a.client_urls.clone();
            }
        }
        Ok(Response::new(MemberListResponse {
            header: Some(self.node.header(revision)),
            members,
        }))
    }

    unimplemented_rpcs! { "Cluster";
        member_add(MemberAddRequest) -> MemberAddResponse;
        member_remove(MemberRemoveRequest) -> MemberRemoveResponse;
        member_update(MemberUpdateRequest) -> MemberUpdateResponse;
        member_promote(MemberPromoteRequest) -> MemberPromoteResponse;
    }
}
