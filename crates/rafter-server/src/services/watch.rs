//! `etcdserverpb.Watch`: registered so clients get a clear answer; watch
//! streams arrive with the watch work.

use rafter_proto::etcdserverpb::watch_server::Watch;
use rafter_proto::etcdserverpb::{WatchRequest, WatchResponse};
use tonic::{Request, Response, Status, Streaming};

pub struct WatchService;

#[tonic::async_trait]
impl Watch for WatchService {
    type WatchStream = tokio_stream::Empty<Result<WatchResponse, Status>>;

    async fn watch(
        &self,
        _request: Request<Streaming<WatchRequest>>,
    ) -> Result<Response<Self::WatchStream>, Status> {
        Err(crate::error::unimplemented("Watch.Watch"))
    }
}
