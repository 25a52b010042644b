//! Rafter's dial service from tests: local and consistent Sets and Gets,
//! and waiting for a partitioned member or the majority to reach a state.

use std::time::{Duration, Instant};

use rafter_proto::rafterpb::dial_client::DialClient;
use rafter_proto::rafterpb::{DialGetRequest, DialResponse, DialSetRequest};
use tonic::transport::Channel;

use super::cluster::{Cluster, POLL_INTERVAL};

pub const SETTLE: Duration = Duration::from_secs(20);

pub async fn dial(endpoint: &str) -> DialClient<Channel> {
    DialClient::connect(endpoint.to_string())
        .await
        .expect("connect to the dial service")
}

pub async fn set_local(endpoint: &str, key: &str, value: &str) -> DialResponse {
    dial(endpoint)
        .await
        .set(DialSetRequest {
            key: key.into(),
            value: value.into(),
            consistent: false,
            ..Default::default()
        })
        .await
        .expect("a local set is acknowledged")
        .into_inner()
}

pub async fn get(endpoint: &str, key: &str, consistent: bool) -> Option<DialResponse> {
    let request = DialGetRequest {
        key: key.into(),
        consistent,
        ..Default::default()
    };
    let call = async { dial(endpoint).await.get(request).await };
    match tokio::time::timeout(Duration::from_secs(2), call).await {
        Ok(Ok(r)) => Some(r.into_inner()),
        _ => None,
    }
}

/// Polls until `endpoint`'s consistent Get of `key` returns `value`.
pub async fn wait_consistent(cluster: &Cluster, endpoint: &str, key: &str, value: &str) {
    let deadline = Instant::now() + SETTLE;
    loop {
        if let Some(r) = get(endpoint, key, true).await {
            if r.valid && r.value == value.as_bytes() {
                return;
            }
        }
        if Instant::now() >= deadline {
            cluster.fail(&format!(
                "{key} did not become {value:?} for consistent reads within {SETTLE:?}"
            ));
        }
        tokio::time::sleep(POLL_INTERVAL).await;
    }
}

/// Waits until member `index` reports no leader.
pub async fn wait_leaderless(cluster: &Cluster, index: usize) {
    let deadline = Instant::now() + SETTLE;
    loop {
        if let Some(status) = cluster.status(index).await {
            if status.leader() == 0 {
                return;
            }
        }
        if Instant::now() >= deadline {
            cluster.fail(&format!(
                "{} still follows a leader after being cut off",
                cluster.name(index)
            ));
        }
        tokio::time::sleep(POLL_INTERVAL).await;
    }
}
