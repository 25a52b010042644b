//! `rafterpb.Conflicts`: setting and listing the conflict policies that
//! decide local writes concurrent with committed changes, and reading the
//! replicated conflict log (seed 004 "Case 2"). Policies change through the
//! log like any write; lists are answered from this member's applied state,
//! with the revision and applied index they were read at.

use rafter_proto::rafterpb::conflicts_server::Conflicts;
use rafter_proto::rafterpb::*;
use rafter_storage::mvcc::KvResponse;
use rafter_storage::KvRequest;
use tonic::{Request, Response, Status};

use crate::error::ApiError;
use crate::handle::NodeHandle;

pub struct ConflictsService {
    node: NodeHandle,
}

impl ConflictsService {
    pub fn new(node: NodeHandle) -> Self {
        ConflictsService { node }
    }
}

#[tonic::async_trait]
impl Conflicts for ConflictsService {
    async fn set_policy(
        &self,
        request: Request<SetPolicyRequest>,
    ) -> Result<Response<SetPolicyResponse>, Status> {
        let req = request.into_inner();
        if ConflictPolicy::try_from(req.policy).is_err() {
            return Err(Status::invalid_argument(format!(
                "rafter: unknown conflict policy {}",
                req.policy
            )));
        }
        let answer = self
            .node
            .propose(KvRequest::ConflictPolicy(ConflictPolicySet {
                prefix: req.prefix,
                policy: req.policy,
            }))
            .await?;
        if !matches!(answer, KvResponse::ConflictPolicySet) {
            return Err(Status::internal(format!(
                "rafter: unexpected answer to a conflict policy: {answer:?}"
            )));
        }
        Ok(Response::new(SetPolicyResponse {
            revision: self.node.current_revision(),
        }))
    }

    async fn list_policies(
        &self,
        _request: Request<ListPoliciesRequest>,
    ) -> Result<Response<ListPoliciesResponse>, Status> {
        let policies = self
            .node
            .store
            .conflict_policies()
            .map_err(ApiError::from)?;
        Ok(Response::new(ListPoliciesResponse {
            policies,
            revision: self.node.current_revision(),
            member_id: self.node.member_id,
        }))
    }

    async fn list(
        &self,
        request: Request<ConflictListRequest>,
    ) -> Result<Response<ConflictListResponse>, Status> {
        let req = request.into_inner();
        let limit = usize::try_from(req.limit).unwrap_or(usize::MAX);
        let (conflicts, state) = self
            .node
            .store
            .conflicts(&req.prefix, limit)
            .map_err(ApiError::from)?;
        Ok(Response::new(ConflictListResponse {
            conflicts,
            revision: state.current_revision,
            member_id: self.node.member_id,
            applied_index: state.applied_index,
        }))
    }
}
