//! Cross-member consistency checks (etcd's corruption check): members
//! compare `HashKV` at a common revision; a member whose store disagrees
//! with the majority gets the CORRUPT alarm, raised through the log, which
//! makes every member refuse mutations until an operator disarms it.
//!
//! - Initially, each member checks itself against its peers once it has
//!   a leader (`--experimental-initial-corrupt-check`, on by default).
//!   etcd refuses to start instead; here the member is already serving
//!   when the answer comes, so it raises the alarm on itself.
//! - Periodically, the leader checks every member
//!   (`--experimental-corrupt-check-time`).
//!
//! Hashes are compared only where both sides kept the same history (equal
//! compaction revisions), as etcd does: a member that applied a later
//! compaction hashes less history, which is no corruption.

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;
use std::time::Duration;

use rafter_proto::etcdserverpb::maintenance_client::MaintenanceClient;
use rafter_proto::etcdserverpb::{alarm_request, AlarmRequest, AlarmType, HashKvRequest};

use crate::handle::NodeHandle;

/// How long a peer that has not yet applied the compared revision is
/// waited for.
const PEER_CATCH_UP: Duration = Duration::from_secs(5);
/// Pause between asks to a peer that is behind.
const PEER_RETRY: Duration = Duration::from_millis(50);

/// One member's hash of the store at the compared revision.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MemberHash {
    pub member_id: u64,
    pub hash: u32,
    pub compact_revision: i64,
}

/// The members whose hash disagrees with the majority's among those that
/// kept the same history as `reference` (the checking member). Ties go
/// to the reference's hash.
pub fn disagreeing(reference: MemberHash, peers: &[MemberHash]) -> Vec<MemberHash> {
    let comparable: Vec<MemberHash> = std::iter::once(reference)
        .chain(
            peers
                .iter()
                .copied()
                .filter(|p| p.compact_revision == reference.compact_revision),
        )
        .collect();
    let mut votes: BTreeMap<u32, usize> = BTreeMap::new();
    for m in &comparable {
        *votes.entry(m.hash).or_default() += 1;
    }
    let reference_votes = votes[&reference.hash];
    let majority = votes
        .iter()
        .filter(|&(_, &n)| n > reference_votes)
        .max_by_key(|&(_, &n)| n)
        .map_or(reference.hash, |(&h, _)| h);
    comparable
        .into_iter()
        .filter(|m| m.hash != majority)
        .collect()
}

/// Runs the initial check (if asked) and then the periodic one (if its
/// interval is not zero) for the member's lifetime.
pub async fn run(node: NodeHandle, initial: bool, interval: Duration) {
    if initial {
        // Wait for a leader, so peers' published URLs are known.
        while node.status.leader_id.load(Ordering::Relaxed) == 0 {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        check(&node, "initial").await;
    }
    if interval.is_zero() {
        return;
    }
    let mut ticker = tokio::time::interval(interval);
    ticker.tick().await;
    loop {
        ticker.tick().await;
        if node.status.leader_id.load(Ordering::Relaxed) == node.member_id {
            check(&node, "periodic").await;
        }
    }
}

/// One comparison of this member's store with its peers'; raises CORRUPT
/// on each member that disagrees with the majority.
async fn check(node: &NodeHandle, kind: &str) {
    let store = node.store.clone();
    let own = match tokio::task::spawn_blocking(move || store.hash_kv(0)).await {
        Ok(Ok(h)) => h,
        Ok(Err(e)) => {
            tracing::warn!("{kind} corruption check: hashing the store failed: {e}");
            return;
        }
        Err(e) => {
            tracing::warn!("{kind} corruption check: {e}");
            return;
        }
    };
    let (hash, revision, compact_revision) = own;
    let reference = MemberHash {
        member_id: node.member_id,
        hash,
        compact_revision,
    };
    let peers = match node.store.member_attributes() {
        Ok(p) => p,
        Err(e) => {
            tracing::warn!("{kind} corruption check: reading members: {e}");
            return;
        }
    };
    let mut hashes = Vec::new();
    for peer in peers.iter().filter(|p| p.member_id != node.member_id) {
        let Some(url) = peer.client_urls.first() else {
            continue;
        };
        match peer_hash(node, url, revision).await {
            Ok(Some((hash, compact_revision))) => hashes.push(MemberHash {
                member_id: peer.member_id,
                hash,
                compact_revision,
            }),
            Ok(None) => {}
            Err(e) => tracing::info!(
                "{kind} corruption check: member {:x} at {url} did not answer: {e}",
                peer.member_id
            ),
        }
    }
    let bad = disagreeing(reference, &hashes);
    if bad.is_empty() {
        tracing::info!(
            "{kind} corruption check passed: {} member(s) agree at revision {revision} (hash {hash})",
            hashes.len() + 1
        );
        return;
    }
    for m in bad {
        tracing::error!(
            "{kind} corruption check: member {:x} has hash {} at revision {revision} where the majority has another (this member {:x}: {hash}; peers: {:?}); raising CORRUPT",
            m.member_id,
            m.hash,
            node.member_id,
            hashes
        );
        let raise = rafter_storage::KvRequest::Alarm(AlarmRequest {
            action: alarm_request::AlarmAction::Activate as i32,
            member_id: m.member_id,
            alarm: AlarmType::Corrupt as i32,
        });
        if let Err(e) = node.propose(raise).await {
            tracing::error!("raising CORRUPT for member {:x} failed: {e}", m.member_id);
        }
    }
}

/// A peer's (hash, compaction revision) at `revision`; `None` when it no
/// longer keeps that revision, or did not reach it in time.
async fn peer_hash(
    node: &NodeHandle,
    url: &str,
    revision: i64,
) -> Result<Option<(u32, i64)>, String> {
    let channel = tonic::transport::Endpoint::from_shared(url.to_string())
        .map_err(|e| e.to_string())?
        .connect_timeout(node.request_timeout)
        .timeout(node.request_timeout)
        .connect_lazy();
    let mut client = MaintenanceClient::new(channel);
    let deadline = tokio::time::Instant::now() + PEER_CATCH_UP;
    loop {
        match client.hash_kv(HashKvRequest { revision }).await {
            Ok(resp) => {
                let resp = resp.into_inner();
                return Ok(Some((resp.hash, resp.compact_revision)));
            }
            Err(s) if s.message().contains("future revision") => {
                if tokio::time::Instant::now() >= deadline {
                    return Ok(None);
                }
                tokio::time::sleep(PEER_RETRY).await;
            }
            Err(s) if s.message().contains("compacted") => return Ok(None),
            Err(s) => return Err(s.message().to_string()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(member_id: u64, hash: u32) -> MemberHash {
        MemberHash {
            member_id,
            hash,
            compact_revision: 5,
        }
    }

    #[test]
    fn the_odd_one_out_is_blamed_even_when_it_is_the_checker() {
        assert_eq!(disagreeing(m(1, 10), &[m(2, 10), m(3, 99)]), vec![m(3, 99)]);
        assert_eq!(disagreeing(m(1, 99), &[m(2, 10), m(3, 10)]), vec![m(1, 99)]);
        assert!(disagreeing(m(1, 10), &[m(2, 10), m(3, 10)]).is_empty());
        // A tie keeps the checker's hash.
        assert_eq!(disagreeing(m(1, 10), &[m(2, 99)]), vec![m(2, 99)]);
    }

    #[test]
    fn different_histories_are_not_compared() {
        let later = MemberHash {
            member_id: 3,
            hash: 77,
            compact_revision: 9,
        };
        assert!(disagreeing(m(1, 10), &[m(2, 10), later]).is_empty());
    }
}
