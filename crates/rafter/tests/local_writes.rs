//! Local writes (`Set(consistent=false)`, seed 004 "Case 2") on a
//! 3-member cluster of real processes.
//!
//! - One member is cut off from its peers (a proxy in front of its peer
//!   port drops what they send it) until it knows no leader. A local Set
//!   there is acknowledged; a local Get there reads it; a consistent Get on
//!   the majority does not see it. The member is killed with SIGKILL and
//!   restarted, still cut off: its local Get still reads the write (the
//!   queue is durable). After the heal the write reaches the log: the
//!   majority's consistent Get returns it, and the majority's leader kept
//!   its term (the returning member did not disrupt it: pre-vote).
//! - With a quorum present a local Set is asynchronous replication: it is
//!   acknowledged by the member and soon visible to consistent reads.

mod common;

use std::time::Instant;

use common::cluster::{exclusive, Cluster};
use common::dial::{get, set_local, wait_consistent, wait_leaderless};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cut_off_member_accepts_local_writes_and_they_arrive_after_the_heal() {
    let _serial = exclusive().await;
    let mut cluster = Cluster::start_with_peer_proxies(3, &[]).await;
    let leader = cluster.leader().await;
    let cut = cluster.followers().await[0];
    let majority = cluster.endpoint(leader);
    let isolated = cluster.endpoint(cut);
    let mut kv = cluster.client(leader).await;
    kv.put("config", "v0", None).await.expect("put v0");
    wait_consistent(&cluster, &isolated, "config", "v0").await;

    cluster.cut_off(cut, true);
    wait_leaderless(&cluster, cut).await;
    let term_before = cluster
        .status(leader)
        .await
        .expect("leader status")
        .raft_term();

    let started = Instant::now();
    let ack = set_local(&isolated, "config", "local-1").await;
    println!("local set acknowledged in {:?}", started.elapsed());
    assert!(ack.valid, "{ack:?}");
    let local = ack.local.expect("the answer names the write's dot");
    assert_eq!(local.member_id, ack.member_id);
    assert_eq!(local.seq, 1);
    assert!(local.context_revision >= 2, "{local:?}");
    assert!(local.hlc_physical_ms > 0);

    let read = get(&isolated, "config", false).await.expect("local get");
    assert_eq!(read.value, b"local-1", "read your writes at the member");
    assert!(read.local.is_some(), "the value came from the queue");
    let majority_read = get(&majority, "config", true).await.expect("majority get");
    assert_eq!(majority_read.value, b"v0", "the majority cannot see it yet");

    // Nothing acknowledged is lost: kill -9 and restart, still cut off.
    cluster.kill9(cut);
    cluster.restart_without_leader(cut).await;
    let read = get(&isolated, "config", false).await.expect("local get");
    assert_eq!(read.value, b"local-1", "the queued write survived kill -9");
    let second = set_local(&isolated, "config", "local-2").await;
    assert_eq!(second.local.expect("dot").seq, 2, "seqs are never reused");

    cluster.cut_off(cut, false);
    wait_consistent(&cluster, &majority, "config", "local-2").await;
    let term_after = cluster
        .status(leader)
        .await
        .expect("leader status")
        .raft_term();
    assert_eq!(
        term_before, term_after,
        "the returning member disrupted the majority's leader"
    );
    // Both writes were ordered once and in order: two revisions.
    let history = kv.get("config", None).await.expect("get");
    let version = history.kvs()[0].version();
    assert_eq!(version, 3, "v0, local-1, local-2: each applied once");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_a_quorum_a_local_write_is_asynchronous_replication() {
    let _serial = exclusive().await;
    let cluster = Cluster::start(3, &[]).await;
    let follower = cluster.followers().await[0];
    let other = (0..3).find(|&i| i != follower).expect("another member");
    for i in 0..20 {
        let value = format!("v{i}");
        let ack = set_local(&cluster.endpoint(follower), "async", &value).await;
        assert!(ack.valid);
        let read = get(&cluster.endpoint(follower), "async", false)
            .await
            .expect("local get");
        assert_eq!(read.value, value.as_bytes(), "read your writes");
    }
    wait_consistent(&cluster, &cluster.endpoint(other), "async", "v19").await;
    let mut kv = cluster.client(other).await;
    let got = kv.get("async", None).await.expect("get");
    assert_eq!(got.kvs()[0].version(), 20, "every write applied once");
}
