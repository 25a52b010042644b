//! `etcdserverpb.Lease`: registered so clients get a clear answer; leases
//! arrive with the lease work.

use rafter_proto::etcdserverpb::lease_server::Lease;
use rafter_proto::etcdserverpb::*;
use tonic::{Request, Response, Status, Streaming};

use super::unimplemented_rpcs;

pub struct LeaseService;

#[tonic::async_trait]
impl Lease for LeaseService {
    type LeaseKeepAliveStream = tokio_stream::Empty<Result<LeaseKeepAliveResponse, Status>>;

    unimplemented_rpcs! { "Lease";
        lease_grant(LeaseGrantRequest) -> LeaseGrantResponse;
        lease_revoke(LeaseRevokeRequest) -> LeaseRevokeResponse;
        lease_time_to_live(LeaseTimeToLiveRequest) -> LeaseTimeToLiveResponse;
        lease_leases(LeaseLeasesRequest) -> LeaseLeasesResponse;
    }

    async fn lease_keep_alive(
        &self,
        _request: Request<Streaming<LeaseKeepAliveRequest>>,
    ) -> Result<Response<Self::LeaseKeepAliveStream>, Status> {
        Err(crate::error::unimplemented("Lease.LeaseKeepAlive"))
    }
}
