//! `KV.RangeStream` (etcd 3.7) against the unary Range of the same member:
//! merging the stream's messages must give the Range's answer, for plain,
//! limited, keys-only, past-revision, sorted and count-only ranges, and a
//! large range must arrive in several messages. (That later chunks keep
//! the first one's revision while writes arrive is tested on the store,
//! `mvcc::range_stream`, where the writes can come between two chunks.)

mod common;

use common::Server;
use prost::Message as _;
use rafter_proto::etcdserverpb::kv_client::KvClient;
use rafter_proto::etcdserverpb::request_op::Request as Op;
use rafter_proto::etcdserverpb::{PutRequest, RangeRequest, RangeResponse, RequestOp, TxnRequest};
use tonic::transport::Channel;

const KEYS: usize = 3000;

async fn kv(server: &Server) -> KvClient<Channel> {
    KvClient::connect(server.endpoint())
        .await
        .expect("connect")
        .max_decoding_message_size(usize::MAX)
}

fn key(i: usize) -> Vec<u8> {
    format!("k/{i:05}").into_bytes()
}

/// Writes keys 0..KEYS with 100-byte values, 100 per transaction; returns
/// the revision after the first transaction.
async fn load(kv: &mut KvClient<Channel>) -> i64 {
    let mut first_revision = 0;
    for batch in 0..KEYS / 100 {
        let success = (batch * 100..(batch + 1) * 100)
            .map(|i| RequestOp {
                request: Some(Op::RequestPut(PutRequest {
                    key: key(i),
                    value: vec![b'a' + (i % 26) as u8; 100],
                    ..Default::default()
                })),
            })
            .collect();
        let response = kv
            .txn(TxnRequest {
                success,
                ..Default::default()
            })
            .await
            .expect("load")
            .into_inner();
        if batch == 0 {
            first_revision = response.header.expect("header").revision;
        }
    }
    first_revision
}

/// The stream's messages, and their protobuf merge.
async fn stream(kv: &mut KvClient<Channel>, r: RangeRequest) -> (usize, RangeResponse) {
    let mut stream = kv.range_stream(r).await.expect("range stream").into_inner();
    let mut merged = RangeResponse::default();
    let mut messages = 0;
    while let Some(message) = stream.message().await.expect("stream message") {
        messages += 1;
        let chunk = message.range_response.expect("a range response");
        merged
            .merge(chunk.encode_to_vec().as_slice())
            .expect("merge");
    }
    (messages, merged)
}

#[tokio::test]
async fn merged_stream_equals_the_unary_range() {
    let server = Server::start().await;
    let mut kv = kv(&server).await;
    let early = load(&mut kv).await;
    let prefix = |r: RangeRequest| RangeRequest {
        key: b"k/".to_vec(),
        range_end: b"k0".to_vec(),
        ..r
    };
    let cases = [
        prefix(RangeRequest::default()),
        prefix(RangeRequest {
            limit: 1234,
            ..Default::default()
        }),
        prefix(RangeRequest {
            limit: 5,
            ..Default::default()
        }),
        prefix(RangeRequest {
            keys_only: true,
            serializable: true,
            ..Default::default()
        }),
        prefix(RangeRequest {
            revision: early,
            ..Default::default()
        }),
        prefix(RangeRequest {
            sort_order: 2,
            sort_target: 3,
            limit: 10,
            ..Default::default()
        }),
        prefix(RangeRequest {
            count_only: true,
            ..Default::default()
        }),
        RangeRequest {
            key: key(7),
            ..Default::default()
        },
        RangeRequest {
            key: key(10),
            range_end: key(12),
            ..Default::default()
        },
        RangeRequest {
            key: b"zz".to_vec(),
            range_end: b"zzz".to_vec(),
            ..Default::default()
        },
    ];
    for r in cases {
        let unary = kv.range(r.clone()).await.expect("range").into_inner();
        let (messages, merged) = stream(&mut kv, r.clone()).await;
        assert_eq!(merged, unary, "{r:?} ({messages} messages)");
    }
    // The whole prefix comes in several messages.
    let (messages, merged) = stream(&mut kv, prefix(RangeRequest::default())).await;
    assert!(messages > 3, "{messages} messages");
    assert_eq!(merged.kvs.len(), KEYS);
    assert_eq!(merged.count, KEYS as i64);
    assert!(!merged.more);
}
