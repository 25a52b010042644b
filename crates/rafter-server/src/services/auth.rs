//! `etcdserverpb.Auth`: AuthStatus answers truthfully that auth is off; the
//! rest arrives with the security work.

use rafter_proto::etcdserverpb::auth_server::Auth;
use rafter_proto::etcdserverpb::*;
use tonic::{Request, Response, Status};

use super::unimplemented_rpcs;
use crate::handle::NodeHandle;

pub struct AuthService {
    node: NodeHandle,
}

impl AuthService {
    pub fn new(node: NodeHandle) -> Self {
        AuthService { node }
    }
}

#[tonic::async_trait]
impl Auth for AuthService {
    async fn auth_status(
        &self,
        _request: Request<AuthStatusRequest>,
    ) -> Result<Response<AuthStatusResponse>, Status> {
        let revision = self.node.store.state().map_or(0, |s| s.current_revision);
        Ok(Response::new(AuthStatusResponse {
            header: Some(self.node.header(revision)),
            enabled: false,
            auth_revision: 0,
        }))
    }

    unimplemented_rpcs! { "Auth";
        auth_enable(AuthEnableRequest) -> AuthEnableResponse;
        auth_disable(AuthDisableRequest) -> AuthDisableResponse;
        authenticate(AuthenticateRequest) -> AuthenticateResponse;
        user_add(AuthUserAddRequest) -> AuthUserAddResponse;
        user_get(AuthUserGetRequest) -> AuthUserGetResponse;
        user_list(AuthUserListRequest) -> AuthUserListResponse;
        user_delete(AuthUserDeleteRequest) -> AuthUserDeleteResponse;
        user_change_password(AuthUserChangePasswordRequest) -> AuthUserChangePasswordResponse;
        user_grant_role(AuthUserGrantRoleRequest) -> AuthUserGrantRoleResponse;
        user_revoke_role(AuthUserRevokeRoleRequest) -> AuthUserRevokeRoleResponse;
        role_add(AuthRoleAddRequest) -> AuthRoleAddResponse;
        role_get(AuthRoleGetRequest) -> AuthRoleGetResponse;
        role_list(AuthRoleListRequest) -> AuthRoleListResponse;
        role_delete(AuthRoleDeleteRequest) -> AuthRoleDeleteResponse;
        role_grant_permission(AuthRoleGrantPermissionRequest) -> AuthRoleGrantPermissionResponse;
        role_revoke_permission(AuthRoleRevokePermissionRequest) -> AuthRoleRevokePermissionResponse;
    }
}
