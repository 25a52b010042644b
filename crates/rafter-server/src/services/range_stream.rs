//! `KV.RangeStream` on the wire: the store's chunks
//! (`MvccStore::range_chunks`) produced on the blocking pool and handed to
//! gRPC through a bounded channel, so a slow client holds back the reads.

use rafter_proto::etcdserverpb::{RangeRequest, RangeStreamResponse};
use tokio::sync::mpsc;
use tonic::Status;

use crate::error::ApiError;
use crate::handle::NodeHandle;

/// Chunks computed ahead of what gRPC has taken.
const CHUNKS_IN_FLIGHT: usize = 2;

/// The stream's messages.
pub type Chunks = mpsc::Receiver<Result<RangeStreamResponse, Status>>;

/// Starts answering `r` (validated; the read barrier already passed).
pub fn start(node: NodeHandle, r: RangeRequest) -> Chunks {
    let (tx, rx) = mpsc::channel(CHUNKS_IN_FLIGHT);
    tokio::task::spawn_blocking(move || {
        let result = node
            .store
            .range_chunks(&r, node.max_request_bytes, |mut response| {
                if response.header.is_some() {
                    node.stamp(&mut response.header);
                }
                tx.blocking_send(Ok(RangeStreamResponse {
                    range_response: Some(response),
                }))
                .is_ok()
            });
        if let Err(e) = result {
            let _ = tx.blocking_send(Err(ApiError::from(e).into()));
        }
    });
    rx
}
