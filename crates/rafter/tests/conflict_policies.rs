//! Conflict policies on a 3-member cluster of real processes (seed 004
//! "Case 2"), one test per policy: a member is cut off from its peers; it
//! accepts a local write of a key while the majority commits a write of
//! the same key; after the heal the key holds what the prefix's policy
//! says, and the conflict log, read from every member, is identical and
//! names the decision. Policies are set, and the log read, with the
//! `rafter` CLI in one test and over gRPC in the others.

mod common;

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use common::cluster::{exclusive, Cluster, POLL_INTERVAL};
use common::dial::{get, set_local, wait_consistent, wait_leaderless, SETTLE};
use common::rafter_ok;
use rafter_proto::rafterpb::conflicts_client::ConflictsClient;
use rafter_proto::rafterpb::{
    ConflictDecision, ConflictListRequest, ConflictPolicy, ConflictRecord, ListPoliciesRequest,
    SetPolicyRequest,
};

/// A 3-member cluster with `prefix` under `policy`, and one member cut off
/// (it knows no leader) after it applied the policy and `initial` writes.
struct Partitioned {
    cluster: Cluster,
    cut: usize,
    leader: usize,
}

impl Partitioned {
    async fn start(prefix: &str, policy: ConflictPolicy, initial: &[(&str, &str)]) -> Partitioned {
        let cluster = Cluster::start_with_peer_proxies(3, &[]).await;
        let leader = cluster.leader().await;
        let cut = cluster.followers().await[0];
        conflicts(&cluster.endpoint(leader))
            .await
            .set_policy(SetPolicyRequest {
                prefix: prefix.into(),
                policy: policy as i32,
            })
            .await
            .expect("set the policy");
        let mut kv = cluster.client(leader).await;
        for (key, value) in initial {
            kv.put(*key, *value, None).await.expect("initial put");
        }
        let isolated = cluster.endpoint(cut);
        if let Some((key, value)) = initial.last() {
            wait_consistent(&cluster, &isolated, key, value).await;
        }
        let policies = conflicts(&isolated)
            .await
            .list_policies(ListPoliciesRequest {})
            .await
            .expect("list policies")
            .into_inner();
        // COMMIT_ORDER is the default: setting it leaves no entry.
        let listed: Vec<i32> = policies.policies.iter().map(|p| p.policy).collect();
        if policy == ConflictPolicy::CommitOrder {
            assert!(listed.is_empty(), "{policies:?}");
        } else {
            assert_eq!(listed, vec![policy as i32], "{policies:?}");
        }
        cluster.cut_off(cut, true);
        wait_leaderless(&cluster, cut).await;
        Partitioned {
            cluster,
            cut,
            leader,
        }
    }

    fn isolated(&self) -> String {
        self.cluster.endpoint(self.cut)
    }

    fn majority(&self) -> String {
        self.cluster.endpoint(self.leader)
    }

    /// A consistent write on the majority; returns the wall clock (ms)
    /// right after it was acknowledged (its stamp is not later).
    async fn majority_put(&self, key: &str, value: &str) -> u64 {
        self.cluster
            .client(self.leader)
            .await
            .put(key, value, None)
            .await
            .expect("majority put");
        wall_ms()
    }

    /// Heals the partition and waits until every member's conflict log
    /// holds `count` records; asserts the logs are identical and returns
    /// one.
    async fn heal_and_collect(&self, count: usize) -> Vec<ConflictRecord> {
        self.cluster.cut_off(self.cut, false);
        let deadline = Instant::now() + SETTLE;
        loop {
            let mut logs = Vec::new();
            for m in 0..self.cluster.size() {
                let log = conflicts(&self.cluster.endpoint(m))
                    .await
                    .list(ConflictListRequest::default())
                    .await
                    .expect("list conflicts")
                    .into_inner();
                logs.push(log.conflicts);
            }
            if logs.iter().all(|l| l.len() == count) {
                assert!(
                    logs.iter().all(|l| *l == logs[0]),
                    "the members' conflict logs differ: {logs:#?}"
                );
                return logs.swap_remove(0);
            }
            if Instant::now() >= deadline {
                self.cluster.fail(&format!(
                    "conflict logs did not reach {count} records on every member: {logs:#?}"
                ));
            }
            tokio::time::sleep(POLL_INTERVAL).await;
        }
    }
}

async fn conflicts(endpoint: &str) -> ConflictsClient<tonic::transport::Channel> {
    ConflictsClient::connect(endpoint.to_string())
        .await
        .expect("connect to the conflicts service")
}

fn wall_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970")
        .as_millis() as u64
}

/// Waits until the wall clock is past `ms`, so the next stamp taken on
/// this machine is later than one taken at `ms`.
async fn clock_past(ms: u64) {
    while wall_ms() <= ms {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn commit_order_applies_the_local_write_where_it_commits() {
    let _serial = exclusive().await;
    let p = Partitioned::start("/co/", ConflictPolicy::CommitOrder, &[("/co/k", "v0")]).await;
    let ack = set_local(&p.isolated(), "/co/k", "local").await;
    assert!(ack.valid, "{ack:?}");
    p.majority_put("/co/k", "majority").await;
    let log = p.heal_and_collect(1).await;
    wait_consistent(&p.cluster, &p.majority(), "/co/k", "local").await;
    let r = &log[0];
    assert_eq!(r.decision(), ConflictDecision::AppliedInCommitOrder);
    assert_eq!(r.policy(), ConflictPolicy::CommitOrder);
    assert_eq!(
        (r.local_value.as_slice(), r.committed_value.as_slice()),
        (&b"local"[..], &b"majority"[..])
    );
    assert!(r.committed_exists);
    assert_eq!(r.seq, 1);
    assert!(r.committed_mod_revision > r.context_revision, "{r:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn last_writer_wins_keeps_the_later_stamp() {
    let _serial = exclusive().await;
    let p = Partitioned::start(
        "/lww/",
        ConflictPolicy::LastWriterWins,
        &[("/lww/a", "v0"), ("/lww/b", "v0")],
    )
    .await;
    // a: the majority writes first, the cut-off member later: it wins.
    let majority_at = p.majority_put("/lww/a", "majority").await;
    clock_past(majority_at).await;
    let later = set_local(&p.isolated(), "/lww/a", "local").await;
    // b: the cut-off member writes first, the majority later: it loses.
    let local_at = later.local.expect("a dot").hlc_physical_ms;
    let earlier = set_local(&p.isolated(), "/lww/b", "local").await;
    clock_past(local_at.max(earlier.local.expect("a dot").hlc_physical_ms)).await;
    p.majority_put("/lww/b", "majority").await;
    let log = p.heal_and_collect(2).await;
    wait_consistent(&p.cluster, &p.majority(), "/lww/a", "local").await;
    wait_consistent(&p.cluster, &p.majority(), "/lww/b", "majority").await;
    let decisions: Vec<(Vec<u8>, ConflictDecision)> =
        log.iter().map(|r| (r.key.clone(), r.decision())).collect();
    assert_eq!(
        decisions,
        vec![
            (b"/lww/a".to_vec(), ConflictDecision::LocalWon),
            (b"/lww/b".to_vec(), ConflictDecision::LocalLost)
        ]
    );
    for r in &log {
        let local = r.local_stamp.expect("local stamp");
        let committed = r.committed_stamp.expect("committed stamp");
        let won = (local.physical_ms, local.logical) > (committed.physical_ms, committed.logical);
        assert_eq!(won, r.decision() == ConflictDecision::LocalWon, "{r:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reject_if_changed_keeps_the_majority_value_and_logs_the_rejection() {
    let _serial = exclusive().await;
    let cluster_policy = ConflictPolicy::RejectIfChanged;
    let p = Partitioned::start("/rj/", cluster_policy, &[("/rj/k", "v0")]).await;
    set_local(&p.isolated(), "/rj/k", "local").await;
    set_local(&p.isolated(), "/rj/untouched", "local").await;
    let read = get(&p.isolated(), "/rj/k", false).await.expect("local get");
    assert_eq!(read.value, b"local", "read your writes while cut off");
    p.majority_put("/rj/k", "majority").await;
    let log = p.heal_and_collect(1).await;
    wait_consistent(&p.cluster, &p.majority(), "/rj/untouched", "local").await;
    wait_consistent(&p.cluster, &p.majority(), "/rj/k", "majority").await;
    assert_eq!(log[0].decision(), ConflictDecision::Rejected);
    assert_eq!(log[0].local_value, b"local");

    // The CLI shows the same log and the policy.
    let endpoint = format!("--endpoints={}", p.cluster.address(p.cut));
    let simple = rafter_ok(&["conflicts", "--prefix", "/rj/", &endpoint]);
    let line = simple.trim();
    assert!(
        line.contains("/rj/k") && line.contains(" rejected local=local committed=majority"),
        "{simple:?}"
    );
    let json: serde_json::Value =
        serde_json::from_str(&rafter_ok(&["conflicts", "-w", "json", &endpoint]))
            .expect("json output");
    assert_eq!(json["conflicts"][0]["decision"], "rejected", "{json}");
    assert_eq!(json["conflicts"][0]["policy"], "reject-if-changed");
    let policies = rafter_ok(&["conflict-policy", "list", &endpoint]);
    assert_eq!(policies, "/rj/ reject-if-changed\n");
    assert_eq!(
        rafter_ok(&["conflict-policy", "set", "/rj/", "commit-order", &endpoint]),
        "OK\n"
    );
    assert_eq!(rafter_ok(&["conflict-policy", "list", &endpoint]), "");
}
