//! The etcd KV calls the client needs (Range, Txn), with a session tag as
//! `rafter-session-id`/`rafter-seq`/`rafter-acked-below` metadata on a
//! Txn, which makes it exactly-once across retries: the log consumer is
//! built on these.

use rafter_proto::etcdserverpb::kv_client::KvClient;
use rafter_proto::etcdserverpb::{RangeRequest, RangeResponse, TxnRequest, TxnResponse};
use tonic::transport::Channel;

use crate::answer::Wait;
use crate::dial::{deadline, Tag};
use crate::error::Result;
use crate::transport::{AttemptBound, Retry, Transport, MAX_MESSAGE_BYTES};

fn kv(ch: Channel) -> KvClient<Channel> {
    KvClient::new(ch).max_decoding_message_size(MAX_MESSAGE_BYTES)
}

/// A Range (linearizable unless the request says serializable); retried
/// on any unavailability until `wait` runs out.
pub(crate) async fn range(t: &Transport, req: &RangeRequest, wait: Wait) -> Result<RangeResponse> {
    t.call(
        deadline(wait),
        Retry::Idempotent,
        AttemptBound::Fixed,
        |ch, _| {
            let req = req.clone();
            async move { kv(ch).range(req).await }
        },
    )
    .await
}

/// A Txn; with a tag, every retry carries the same request id, so it is
/// applied at most once and a retry gets the original answer. Without
/// one, it is retried only when it surely did not reach a member.
pub(crate) async fn txn(
    t: &Transport,
    req: &TxnRequest,
    wait: Wait,
    tag: Option<&Tag>,
) -> Result<TxnResponse> {
    let retry = if tag.is_some() {
        Retry::Idempotent
    } else {
        Retry::IfNotSent
    };
    t.call(deadline(wait), retry, AttemptBound::Fixed, |ch, _| {
        let mut request = tonic::Request::new(req.clone());
        if let Some(tag) = tag {
            let st = tag.session_tag();
            let meta = request.metadata_mut();
            for (name, value) in [
                ("rafter-session-id", st.session_id),
                ("rafter-seq", st.seq),
                ("rafter-acked-below", st.acked_below),
            ] {
                meta.insert(name, value.to_string().parse().expect("decimal is ascii"));
            }
        }
        async move { kv(ch).txn(request).await }
    })
    .await
}
