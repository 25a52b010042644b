//! Space quota, alarms and defragmentation, with the third-party etcd
//! client and the real etcdctl, each scenario run against the real etcd
//! too (the oracle) where etcd has the behaviour:
//!
//! - Writes past `--quota-backend-bytes` are refused with etcd's
//!   "database space exceeded" and the NOSPACE alarm is raised; deletes
//!   and reads still work; compaction + `etcdctl defrag` + `etcdctl alarm
//!   disarm` restore writes, and nothing else is lost. `etcdctl alarm
//!   list` and `endpoint status` report the alarm and both db sizes;
//!   `rafter alarm list` and `rafter defrag` print what etcdctl prints.
//! - `Maintenance.Alarm` ACTIVATE / DEACTIVATE / GET per member, and
//!   CORRUPT refusing every mutation ("corrupt cluster").
//! - Defragmentation keeps serving: puts and linearizable gets run
//!   throughout and succeed, the file shrinks, and no key changes.
//! - The corruption check: a member whose store was altered on disk is
//!   found by the initial check at its restart and by the leader's
//!   periodic check, and gets the CORRUPT alarm, which every member
//!   reports.

mod common;

use std::process::{Output, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::cluster::{exclusive, Cluster};
use common::{expect_grpc_error, rafter_ok, Server, Target};
use etcd_client::{AlarmAction, AlarmOptions, AlarmType, Client, GetOptions};

/// Bytes per value of the filling writes.
const FILL_VALUE_BYTES: usize = 100_000;
/// The quota of the quota scenario (3 MB: a few dozen fills).
const QUOTA_BYTES: &str = "3000000";

fn etcdctl(address: &str, args: &[&str]) -> Output {
    let mut command = common::etcdctl_command(address);
    command
        .arg("--command-timeout=30s")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("cannot run etcdctl: {e}"))
}

#[track_caller]
fn etcdctl_ok(address: &str, args: &[&str]) -> String {
    let out = etcdctl(address, args);
    assert!(
        out.status.success(),
        "etcdctl {args:?} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn status_json(address: &str) -> serde_json::Value {
    let out = etcdctl_ok(address, &["endpoint", "status", "-w", "json"]);
    let v: serde_json::Value = serde_json::from_str(&out).expect("status JSON");
    v[0]["Status"].clone()
}

/// The quota scenario on one server; returns etcdctl's `alarm list` line
/// with the member id replaced, for comparing the two servers.
async fn quota_scenario(target: Target) -> String {
    let server = Server::start_target(target, &["--quota-backend-bytes", QUOTA_BYTES]).await;
    let mut client = server.client().await;
    let member_id = client
        .status()
        .await
        .expect("status")
        .header()
        .unwrap()
        .member_id();
    client.put("keep", "me", None).await.expect("put keep");
    let value = vec![b'x'; FILL_VALUE_BYTES];
    let mut filled = 0;
    let refused = loop {
        match client
            .put(format!("fill/{filled:04}"), value.clone(), None)
            .await
        {
            Ok(_) => filled += 1,
            Err(e) => break e,
        }
        assert!(filled < 1000, "{target:?}: the quota never refused a write");
    };
    expect_grpc_error::<()>(
        Err(refused),
        tonic::Code::ResourceExhausted,
        "etcdserver: mvcc: database space exceeded",
    );
    // The alarm is raised through the log; wait for it to apply.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let alarms = client
            .alarm(AlarmAction::Get, AlarmType::None, None)
            .await
            .expect("alarm list");
        if let [a] = alarms.alarms() {
            assert_eq!((a.member_id(), a.alarm()), (member_id, AlarmType::Nospace));
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{target:?}: NOSPACE never raised"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Every write that adds data is refused while the alarm is raised,
    // even a small one, and a lease grant too.
    expect_grpc_error(
        client.put("small", "v", None).await,
        tonic::Code::ResourceExhausted,
        "etcdserver: mvcc: database space exceeded",
    );
    expect_grpc_error(
        client.lease_grant(60, None).await,
        tonic::Code::ResourceExhausted,
        "etcdserver: mvcc: database space exceeded",
    );
    // Reads work.
    let got = client.get("keep", None).await.expect("get keep");
    assert_eq!(got.kvs()[0].value(), b"me");

    let address = server.address();
    let listed = etcdctl_ok(&address, &["alarm", "list"]);
    assert_eq!(
        rafter_ok(&["alarm", "list", "--endpoints", &address]),
        listed,
        "rafter alarm list prints what etcdctl prints"
    );
    let status = status_json(&address);
    assert!(status["dbSize"].as_i64().unwrap() > 0);
    assert!(status["dbSizeInUse"].as_i64().unwrap() > 0);
    assert!(
        status["errors"][0]
            .as_str()
            .unwrap()
            .contains("alarm:NOSPACE"),
        "{status}"
    );

    // Free the space: delete, compact, defragment, disarm.
    let deleted = client
        .delete(
            "fill/",
            Some(etcd_client::DeleteOptions::new().with_prefix()),
        )
        .await
        .expect("a delete is allowed");
    assert_eq!(deleted.deleted(), filled);
    let rev = deleted.header().unwrap().revision();
    etcdctl_ok(&address, &["compaction", &rev.to_string()]);
    let size_before = status_json(&address)["dbSize"].as_i64().unwrap();
    let out = etcdctl_ok(&address, &["defrag"]);
    assert_eq!(
        out.trim(),
        format!("Finished defragmenting etcd member[{address}]")
    );
    let size_after = status_json(&address)["dbSize"].as_i64().unwrap();
    assert_eq!(
        rafter_ok(&["defrag", "--endpoints", &address]),
        out,
        "rafter defrag reports as etcdctl does"
    );
    assert!(
        size_after < size_before,
        "{target:?}: defrag must shrink the file: {size_before} -> {size_after}"
    );
    // Still refused until disarmed.
    expect_grpc_error(
        client.put("small", "v", None).await,
        tonic::Code::ResourceExhausted,
        "etcdserver: mvcc: database space exceeded",
    );
    let disarmed = etcdctl_ok(&address, &["alarm", "disarm"]);
    assert_eq!(disarmed, listed, "disarm prints what it disarmed");
    assert_eq!(etcdctl_ok(&address, &["alarm", "list"]), "");
    client.put("small", "v", None).await.expect("writes again");
    client.lease_grant(60, None).await.expect("grants again");
    let got = client.get("keep", None).await.expect("get keep");
    assert_eq!(got.kvs()[0].value(), b"me", "nothing else is lost");
    listed.replace(&member_id.to_string(), "<member>")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_past_the_quota_are_refused_until_space_is_freed_and_the_alarm_disarmed() {
    let rafter = quota_scenario(Target::Rafter).await;
    let etcd = quota_scenario(Target::Etcd).await;
    assert_eq!(rafter, etcd, "etcdctl alarm list differs");
    assert_eq!(rafter, "memberID:<member> alarm:NOSPACE \n");
}

/// ACTIVATE / DEACTIVATE / GET by member and type, and CORRUPT refusing
/// every mutation while reads go on.
async fn alarm_rpcs(target: Target) {
    let server = Server::start_target(target, &[]).await;
    let mut client = server.client().await;
    client.put("k", "v", None).await.expect("put");
    let member_id = client.status().await.unwrap().header().unwrap().member_id();
    let mut for_member = AlarmOptions::new();
    for_member.with_member(member_id);
    let raised = client
        .alarm(
            AlarmAction::Activate,
            AlarmType::Corrupt,
            Some(for_member.clone()),
        )
        .await
        .expect("activate");
    assert_eq!(raised.alarms().len(), 1);
    let got = client
        .alarm(AlarmAction::Get, AlarmType::Corrupt, None)
        .await
        .expect("get corrupt");
    assert_eq!(got.alarms().len(), 1);
    assert_eq!(got.alarms()[0].alarm(), AlarmType::Corrupt);
    let none = client
        .alarm(AlarmAction::Get, AlarmType::Nospace, None)
        .await
        .expect("get nospace");
    assert!(none.alarms().is_empty());
    for result in [
        client.put("k", "w", None).await.map(|_| ()),
        client.delete("k", None).await.map(|_| ()),
    ] {
        expect_grpc_error(result, tonic::Code::DataLoss, "etcdserver: corrupt cluster");
    }
    let got = client.get("k", None).await.expect("reads go on");
    assert_eq!(got.kvs()[0].value(), b"v");
    let cleared = client
        .alarm(
            AlarmAction::Deactivate,
            AlarmType::Corrupt,
            Some(for_member.clone()),
        )
        .await
        .expect("deactivate");
    assert_eq!(cleared.alarms().len(), 1);
    let again = client
        .alarm(
            AlarmAction::Deactivate,
            AlarmType::Corrupt,
            Some(for_member),
        )
        .await
        .expect("deactivate again");
    assert!(again.alarms().is_empty(), "nothing left to clear");
    client.put("k", "w", None).await.expect("writes again");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alarm_rpcs_follow_etcd() {
    alarm_rpcs(Target::Etcd).await;
    alarm_rpcs(Target::Rafter).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn defragmentation_keeps_serving_and_shrinks_the_file() {
    let _serial = exclusive().await;
    let server = Server::start_target(Target::Rafter, &[]).await;
    let mut client = server.client().await;
    // 40 MB written, half of it deleted and compacted away.
    let value = vec![b'd'; 8192];
    for i in 0..5000 {
        client
            .put(format!("data/{i:05}"), value.clone(), None)
            .await
            .expect("put");
    }
    let deleted = client
        .delete(
            "data/0",
            Some(etcd_client::DeleteOptions::new().with_range("data/02500")),
        )
        .await
        .expect("delete");
    assert_eq!(deleted.deleted(), 2500);
    client
        .compact(deleted.header().unwrap().revision(), None)
        .await
        .expect("compact");
    let before = client.status().await.expect("status");
    let hash_before = client.hash_kv(0).await.expect("hash").hash();

    // Load: one writer and one linearizable reader for the whole time.
    let stop = Arc::new(AtomicBool::new(false));
    let served = Arc::new(AtomicU64::new(0));
    let mut load = Vec::new();
    for role in ["writer", "reader"] {
        let mut c = server.client().await;
        let stop = stop.clone();
        let served = served.clone();
        load.push(tokio::spawn(async move {
            let mut worst = Duration::ZERO;
            let mut i = 0u64;
            while !stop.load(Ordering::Relaxed) {
                let t = Instant::now();
                if role == "writer" {
                    c.put(format!("load/{}", i % 50), i.to_string(), None)
                        .await
                        .expect("a put during defragmentation");
                } else {
                    c.get("data/04999", None)
                        .await
                        .expect("a get during defragmentation");
                }
                worst = worst.max(t.elapsed());
                served.fetch_add(1, Ordering::Relaxed);
                i += 1;
            }
            worst
        }));
    }
    // Let the load start, then defragment under it.
    let started = served.load(Ordering::Relaxed);
    while served.load(Ordering::Relaxed) < started + 20 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let at_start = served.load(Ordering::Relaxed);
    let t = Instant::now();
    client.defragment().await.expect("defragment");
    let took = t.elapsed();
    let during = served.load(Ordering::Relaxed) - at_start;
    stop.store(true, Ordering::Relaxed);
    let mut worst = Duration::ZERO;
    for task in load {
        worst = worst.max(task.await.expect("load task"));
    }
    let after = client.status().await.expect("status");
    println!(
        "defragmentation took {took:?}; {during} requests served meanwhile; worst request {worst:?}; db {} -> {} bytes (in use {})",
        before.db_size(),
        after.db_size(),
        status_json(&server.address())["dbSizeInUse"]
    );
    for line in server.log().lines().filter(|l| l.contains("defragmented")) {
        println!("{line}");
    }
    assert!(during > 0, "requests must be served during defragmentation");
    assert!(
        after.db_size() < before.db_size(),
        "the file must shrink: {} -> {}",
        before.db_size(),
        after.db_size()
    );
    // The data is what it was: the kept keys, at the compacted history.
    let kept = client
        .get(
            "data/",
            Some(GetOptions::new().with_prefix().with_count_only()),
        )
        .await
        .expect("count");
    assert_eq!(kept.count(), 2500);
    let rev_before = before.header().unwrap().revision();
    let hash_at = client.hash_kv(rev_before).await.expect("hash").hash();
    assert_eq!(
        hash_at, hash_before,
        "the history up to the defrag is unchanged"
    );
    // And it survives a restart on the new file.
    drop(client);
    let mut server = server;
    server.kill9();
    server.restart().await;
    let mut client = server.client().await;
    assert_eq!(
        client.hash_kv(rev_before).await.unwrap().hash(),
        hash_before
    );
}

/// Alters member `index`'s store on disk while it is down (a value
/// changed in place, revisions kept), as silent corruption would.
fn corrupt_member(cluster: &mut Cluster, index: usize, key: &str) {
    cluster.kill9(index);
    let store =
        rafter_storage::MvccStore::open(&cluster.store_file(index)).expect("open the store");
    store
        .corrupt_value_for_tests(key.as_bytes(), b"bit rot")
        .expect("corrupt");
    store.sync().unwrap();
}

async fn wait_corrupt_alarm(cluster: &Cluster, member_id: u64) {
    let deadline = Instant::now() + Duration::from_secs(20);
    'wait: loop {
        let mut seen_on_all = true;
        for i in cluster.running() {
            let mut c = cluster.client(i).await;
            let alarms = c
                .alarm(AlarmAction::Get, AlarmType::None, None)
                .await
                .expect("alarm list");
            seen_on_all &= alarms
                .alarms()
                .iter()
                .any(|a| a.member_id() == member_id && a.alarm() == AlarmType::Corrupt);
        }
        if seen_on_all {
            break 'wait;
        }
        if Instant::now() > deadline {
            cluster.fail("the corruption check never raised CORRUPT");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn member_id(client: &mut Client) -> u64 {
    client.status().await.unwrap().header().unwrap().member_id()
}

async fn corruption_found(flags: &[&str]) {
    let _serial = exclusive().await;
    let mut cluster = Cluster::start(3, flags).await;
    let leader = cluster.leader().await;
    let victim = (leader + 1) % 3;
    let mut c = cluster.client(leader).await;
    for i in 0..50 {
        c.put(format!("c/{i}"), "v", None).await.expect("put");
    }
    let mut v = cluster.client(victim).await;
    let victim_id = member_id(&mut v).await;
    // The victim has applied everything before it is stopped.
    let rev = c
        .get("c/0", None)
        .await
        .unwrap()
        .header()
        .unwrap()
        .revision();
    while v
        .get("c/0", Some(GetOptions::new().with_serializable()))
        .await
        .unwrap()
        .header()
        .unwrap()
        .revision()
        < rev
    {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    drop(v);
    corrupt_member(&mut cluster, victim, "c/7");
    cluster.restart(victim).await;
    wait_corrupt_alarm(&cluster, victim_id).await;
    let log = (0..3).map(|i| cluster.log(i)).collect::<String>();
    assert!(
        log.contains("corruption check: member") && log.contains("raising CORRUPT"),
        "the mismatch is logged with both hashes"
    );
    expect_grpc_error(
        c.put("after", "v", None).await,
        tonic::Code::DataLoss,
        "etcdserver: corrupt cluster",
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_initial_check_finds_a_member_corrupted_on_disk() {
    corruption_found(&[
        "--experimental-initial-corrupt-check=true",
        "--experimental-corrupt-check-time=0s",
    ])
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_periodic_check_finds_a_member_corrupted_on_disk() {
    corruption_found(&[
        "--experimental-initial-corrupt-check=false",
        "--experimental-corrupt-check-time=300ms",
    ])
    .await;
}
