//! `KV.RangeStream` on the wire: the store's chunks (`RangeChunks`), each
//! read on the blocking pool, handed to gRPC through a bounded channel. A
//! slow client holds back the next read without holding a blocking thread
//! while it waits.

use rafter_proto::etcdserverpb::{RangeRequest, RangeStreamResponse};
use rafter_storage::mvcc::RangeChunks;
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
    tokio::spawn(async move {
        let mut chunks = RangeChunks::new(r, node.max_request_bytes);
        loop {
            let store = node.store.clone();
            let read = tokio::task::spawn_blocking(move || {
                let next = chunks.next_chunk(&store);
                (chunks, next)
            })
            .await;
            let next = match read {
                Ok((returned, next)) => {
                    chunks = returned;
                    next
                }
                Err(e) => {
                    let _ = tx.send(Err(Status::internal(e.to_string()))).await;
                    return;
                }
            };
            let message = match next {
                Ok(Some(mut response)) => {
                    if response.header.is_some() {
                        node.stamp(&mut response.header);
                    }
                    Ok(RangeStreamResponse {
                        range_response: Some(response),
                    })
                }
                Ok(None) => return,
                Err(e) => Err(ApiError::from(e).into()),
            };
            let failed = message.is_err();
            if tx.send(message).await.is_err() || failed {
                return;
            }
        }
    });
    rx
}
