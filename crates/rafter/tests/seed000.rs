//! Seed 000 (Kubernetes issue 59848) reproduced with real processes: the
//! `seed000` example's scenario (`rafter-client/examples/seed000`), run
//! against a 3-member Rafter cluster and a 3-member etcd cluster.
//!
//! Two API servers answer from watch-fed caches; API-2 is cut off; the pod
//! moves from K1 to K2; K1 restarts and lists its pods through API-2.
//! - Stale caches: K1 runs the pod again, and the duplicate is detected.
//! - Consistent caches: K1's listing fails (no answer rather than a stale
//!   one), so it runs nothing; once API-2 is back, K1's listing succeeds
//!   and still runs nothing.
//!
//! API-2 is cut off two ways: a proxy in front of its endpoint stops
//! forwarding (both targets), or, on Rafter, its member is partitioned
//! from its peers while API-2 still reaches it (the peer proxies cannot
//! isolate an etcd member: etcd receives its peers' messages on
//! connections it opens itself).

mod common;

#[path = "../../rafter-client/examples/seed000/scenario.rs"]
mod scenario;
#[path = "../../rafter-client/examples/seed000/stall_proxy.rs"]
mod stall_proxy;

use common::cluster::{exclusive, Cluster};
use common::Target;
use scenario::{Mode, Outcome, Scenario, POD};
use stall_proxy::StallProxy;

/// How API-2 is cut off.
#[derive(Debug, Clone, Copy)]
enum Cut {
    /// A proxy between API-2 and its member stops forwarding.
    Proxy,
    /// API-2's member is partitioned from its peers.
    Partition,
}

/// Acts 1-4; returns what act 3 and act 4 ended with.
async fn play(target: Target, mode: Mode, cut: Cut) -> (Outcome, Outcome) {
    let _guard = exclusive().await;
    let cluster = match cut {
        Cut::Proxy => Cluster::start_target(target, 3, &[]).await,
        Cut::Partition => {
            assert_eq!(target, Target::Rafter);
            Cluster::start_with_peer_proxies(3, &[]).await
        }
    };
    // API-2 uses a follower (cutting the leader off would also work, after
    // an election).
    let api2_member = cluster.followers().await[0];
    let api1: Vec<String> = (0..3)
        .filter(|&i| i != api2_member)
        .map(|i| cluster.endpoint(i))
        .collect();
    let proxy = StallProxy::start(cluster.address(api2_member))
        .await
        .expect("start the proxy");
    let api2 = match cut {
        Cut::Proxy => vec![proxy.endpoint()],
        Cut::Partition => vec![cluster.endpoint(api2_member)],
    };
    let mut s = Scenario::prepare(&api1, &api2, mode)
        .await
        .unwrap_or_else(|e| cluster.fail(&e));
    let set_cut = |on: bool| match cut {
        Cut::Proxy => proxy.set_stalled(on),
        Cut::Partition => cluster.cut_off(api2_member, on),
    };
    set_cut(true);
    let during = s.play().await;
    set_cut(false);
    let during = during.unwrap_or_else(|e| cluster.fail(&format!("{e}; log: {:#?}", s.log)));
    let after = s
        .after_heal()
        .await
        .unwrap_or_else(|e| cluster.fail(&format!("{e}; log: {:#?}", s.log)));
    println!("{target:?}, {mode:?} caches, cut by {cut:?}:");
    for line in &s.log {
        println!("  {line}");
    }
    (during, after)
}

fn assert_duplicate(during: &Outcome) {
    assert_eq!(
        during.duplicates,
        vec![POD.to_string()],
        "a stale cache must make K1 run the moved pod again: {during:?}"
    );
    assert_eq!(during.k1_error, None);
}

fn assert_never_duplicate(during: &Outcome, after: &Outcome) {
    assert!(during.duplicates.is_empty(), "{during:?}");
    let error = during
        .k1_error
        .as_deref()
        .expect("API-2 cannot answer a consistent read while cut off");
    assert!(
        error.contains("deadline") || error.contains("revision"),
        "{error}"
    );
    assert!(after.duplicates.is_empty(), "{after:?}");
    assert_eq!(after.k1_error, None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stale_caches_run_the_moved_pod_twice_on_rafter() {
    let (during, _) = play(Target::Rafter, Mode::Stale, Cut::Proxy).await;
    assert_duplicate(&during);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stale_caches_run_the_moved_pod_twice_on_etcd() {
    let (during, _) = play(Target::Etcd, Mode::Stale, Cut::Proxy).await;
    assert_duplicate(&during);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn consistent_caches_never_do_on_rafter() {
    let (during, after) = play(Target::Rafter, Mode::Consistent, Cut::Proxy).await;
    assert_never_duplicate(&during, &after);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn consistent_caches_never_do_on_etcd() {
    let (during, after) = play(Target::Etcd, Mode::Consistent, Cut::Proxy).await;
    assert_never_duplicate(&during, &after);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stale_cache_on_a_partitioned_member_runs_the_pod_twice() {
    let (during, _) = play(Target::Rafter, Mode::Stale, Cut::Partition).await;
    assert_duplicate(&during);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn consistent_cache_on_a_partitioned_member_never_does() {
    let (during, after) = play(Target::Rafter, Mode::Consistent, Cut::Partition).await;
    assert_never_duplicate(&during, &after);
}
