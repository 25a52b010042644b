//! `etcdserverpb.Cluster`: MemberList from the bootstrap configuration;
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

#[tonic::async_trait]
impl Cluster for ClusterService {
    async fn member_list(
        &self,
        request: Request<MemberListRequest>,
    ) -> Result<Response<MemberListResponse>, Status> {
        if request.get_ref().linearizable {
            self.node.read_barrier().await?;
        }
        let revision = self.node.store.state().map_or(0, |s| s.current_revision);
        Ok(Response::new(MemberListResponse {
            header: Some(self.node.header(revision)),
            members: self.members.clone(),
        }))
    }

    unimplemented_rpcs! { "Cluster";
        member_add(MemberAddRequest) -> MemberAddResponse;
        member_remove(MemberRemoveRequest) -> MemberRemoveResponse;
        member_update(MemberUpdateRequest) -> MemberUpdateResponse;
        member_promote(MemberPromoteRequest) -> MemberPromoteResponse;
    }
}
