//! A member that stops because its disk is full first asks another member
//! to record a NOSPACE alarm for it, etcd's alarm for a member out of
//! space: the cluster then refuses writes with etcd's "database space
//! exceeded" until an operator frees space, restarts the member and
//! disarms the alarm, instead of filling the other members' disks with
//! the same data. Best effort and bounded: the member stops either way,
//! and a single-member cluster has no one to ask.

use std::time::Duration;

use rafter_proto::etcdserverpb::alarm_request::AlarmAction;
use rafter_proto::etcdserverpb::maintenance_client::MaintenanceClient;
use rafter_proto::etcdserverpb::{AlarmRequest, AlarmType};
use rafter_storage::MvccStore;
use tonic::transport::Endpoint;

/// Longest the stopping member spends trying.
pub const RAISE_LIMIT: Duration = Duration::from_secs(3);
/// Longest one member may take to connect.
const CONNECT_TIMEOUT: Duration = Duration::from_millis(500);

/// Whether a fatal storage error means the disk is full (ENOSPC, as the
/// log's and the store's errors spell it).
pub fn is_disk_full(cause: &str) -> bool {
    cause.contains("No space left on device")
}

/// Asks the other members, one after another, to raise NOSPACE for
/// `member_id`; returns whether one accepted. Runs on a thread outside the
/// runtime `handle` belongs to.
pub fn raise(handle: &tokio::runtime::Handle, store: &MvccStore, member_id: u64) -> bool {
    let urls: Vec<String> = match store.member_attributes() {
        Ok(members) => members
            .into_iter()
            .filter(|m| m.member_id != member_id && !m.removed)
            .flat_map(|m| m.client_urls)
            .collect(),
        Err(e) => {
            tracing::warn!("cannot raise the NOSPACE alarm: the membership is unreadable: {e}");
            return false;
        }
    };
    let request = AlarmRequest {
        action: AlarmAction::Activate as i32,
        member_id,
        alarm: AlarmType::Nospace as i32,
    };
    let attempt = async {
        for url in urls {
            let Ok(endpoint) = Endpoint::from_shared(url.clone()) else {
                continue;
            };
            let Ok(channel) = endpoint.connect_timeout(CONNECT_TIMEOUT).connect().await else {
                continue;
            };
            match MaintenanceClient::new(channel).alarm(request).await {
                Ok(_) => {
                    tracing::error!(through = %url, "raised the NOSPACE alarm for this member");
                    return true;
                }
                Err(status) => {
                    tracing::warn!(through = %url, "raising the NOSPACE alarm failed: {status}")
                }
            }
        }
        false
    };
    // The timer must be made inside the runtime.
    handle
        .block_on(async { tokio::time::timeout(RAISE_LIMIT, attempt).await })
        .unwrap_or(false)
}
