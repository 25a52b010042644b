//! A member on a failing disk (issue 18), run on `rafter-faultfs`: a FUSE
//! disk that keeps writes in memory until fsync, as LazyFS does in etcd's
//! robustness tests. A client writes all along and records what was
//! acknowledged; every acknowledged write must be there after the fault
//! and a restart.
//! - Lost unsynced writes: kill -9, then drop everything not fsynced.
//! - fsync fails with EIO (the data it should have saved is dropped, as
//!   Linux does) and writes fail with EIO: the member stops with a clear
//!   message, never retrying the fsync as if it had worked.
//! - The disk fills up: the member stops; once space is freed it restarts
//!   and serves, writes included.
//! - The disk stalls for seconds: requests wait, nothing is lost.
//!
//! Needs FUSE (root, /dev/fuse, fusermount3 from Debian's fuse3, which
//! scripts/install-test-deps.sh installs): without it the tests fail and
//! say so.

mod common;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::cluster::{exclusive, Cluster};
use common::{Server, Target};
use etcd_client::{AlarmAction, AlarmType, Client, ConnectOptions, GetOptions};
use rafter_faultfs::FaultDisk;
use tempfile::TempDir;

/// How long a member may take to notice a failed disk and stop.
const STOP_LIMIT: Duration = Duration::from_secs(20);
/// Writes acknowledged before a fault is injected.
const WRITES_BEFORE_FAULT: usize = 100;

/// A member whose data directory is on a fault disk. Fields drop in
/// order: the server (killed) before the disk (unmounted).
struct OnFaultDisk {
    server: Server,
    disk: FaultDisk,
    _dir: TempDir,
}

async fn start() -> OnFaultDisk {
    if let Some(why) = rafter_faultfs::unavailable() {
        panic!("the disk fault tests need FUSE: {why}");
    }
    let dir = tempfile::Builder::new()
        .prefix("rafter-disk-faults-")
        .tempdir()
        .expect("a temporary directory");
    let backing = dir.path().join("backing");
    let mountpoint = dir.path().join("disk");
    std::fs::create_dir(&backing).expect("create the backing directory");
    std::fs::create_dir(&mountpoint).expect("create the mount point");
    let disk = FaultDisk::mount(&backing, &mountpoint).expect("mount the fault disk");
    let server = Server::start_on(Target::Rafter, Some(mountpoint.join("data")), &[]).await;
    OnFaultDisk {
        server,
        disk,
        _dir: dir,
    }
}

/// Puts `w{n}` = `v{n}` for n = 0, 1, ... until stopped; records the
/// acknowledged ones.
struct Writer {
    acked: Arc<Mutex<BTreeMap<u64, String>>>,
    stop: Arc<AtomicBool>,
    task: tokio::task::JoinHandle<u64>,
}

impl Writer {
    fn start(endpoint: String) -> Writer {
        let acked = Arc::new(Mutex::new(BTreeMap::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let (a, s) = (acked.clone(), stop.clone());
        let task = tokio::spawn(async move {
            let options = ConnectOptions::new()
                .with_connect_timeout(Duration::from_millis(500))
                .with_timeout(Duration::from_secs(3));
            let mut client = None;
            let mut n = 0u64;
            while !s.load(Ordering::Relaxed) {
                if client.is_none() {
                    client = Client::connect([endpoint.as_str()], Some(options.clone()))
                        .await
                        .ok();
                }
                let Some(c) = client.as_mut() else {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                };
                let (key, value) = (format!("w{n:06}"), format!("v{n}"));
                match c.put(key, value.clone(), None).await {
                    Ok(_) => {
                        a.lock().unwrap().insert(n, value);
                    }
                    Err(_) => {
                        client = None;
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                }
                n += 1;
            }
            n
        });
        Writer { acked, stop, task }
    }

    fn acked(&self) -> usize {
        self.acked.lock().unwrap().len()
    }

    async fn wait_for_acks(&self, at_least: usize) {
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        while self.acked() < at_least {
            assert!(
                std::time::Instant::now() < deadline,
                "only {} writes acknowledged",
                self.acked()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Stops writing; returns every acknowledged write and how many were sent.
    async fn finish(self) -> (BTreeMap<u64, String>, u64) {
        self.stop.store(true, Ordering::Relaxed);
        let sent = self.task.await.expect("the writer");
        let acked = std::mem::take(&mut *self.acked.lock().unwrap());
        (acked, sent)
    }
}

/// Every acknowledged write is on the member.
async fn assert_all_present(server: &Server, acked: &BTreeMap<u64, String>) {
    assert_all_on(server.client().await, acked).await;
}

/// Every acknowledged write is readable through `client`.
async fn assert_all_on(mut client: Client, acked: &BTreeMap<u64, String>) {
    let response = client
        .get("w", Some(GetOptions::new().with_prefix()))
        .await
        .expect("read the writes back");
    let stored: BTreeMap<String, String> = response
        .kvs()
        .iter()
        .map(|kv| {
            (
                kv.key_str().unwrap().to_string(),
                kv.value_str().unwrap().to_string(),
            )
        })
        .collect();
    for (n, value) in acked {
        assert_eq!(
            stored.get(&format!("w{n:06}")),
            Some(value),
            "acknowledged write w{n:06} is missing ({} stored, {} acknowledged)",
            stored.len(),
            acked.len()
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crashes_that_lose_unsynced_writes_lose_nothing_acknowledged() {
    let mut m = start().await;
    let mut all_acked = BTreeMap::new();
    let mut lost_bytes = 0;
    for round in 0..5 {
        let writer = Writer::start(m.server.endpoint());
        writer.wait_for_acks(40).await;
        // Killed while writes are in flight.
        m.server.kill9();
        let lost = m.disk.lose_unsynced();
        lost_bytes += lost;
        let (acked, sent) = writer.finish().await;
        println!(
            "round {round}: {} of {sent} writes acknowledged, {lost} unsynced bytes lost",
            acked.len()
        );
        all_acked.extend(acked);
        m.server.restart().await;
        assert_all_present(&m.server, &all_acked).await;
    }
    assert!(
        lost_bytes > 0,
        "no crash lost an unsynced byte: the test proved nothing"
    );
}

/// Injects a fault while a client writes, expects the member to stop with
/// `message` in its log, then clears the fault, restarts the member and
/// checks every acknowledged write.
async fn member_stops_and_recovers(
    inject: impl Fn(&FaultDisk),
    clear: impl Fn(&FaultDisk),
    message: &str,
) {
    let mut m = start().await;
    let writer = Writer::start(m.server.endpoint());
    writer.wait_for_acks(WRITES_BEFORE_FAULT).await;
    inject(&m.disk);
    let status = m.server.wait_for_exit(STOP_LIMIT).await;
    let log = m.server.log();
    let (acked, sent) = writer.finish().await;
    let status = status.unwrap_or_else(|| panic!("the member did not stop:\n{log}"));
    println!(
        "{} of {sent} writes acknowledged; member exited with {status}",
        acked.len()
    );
    assert!(!status.success(), "{status}");
    assert!(log.contains(message), "no {message:?} in the log:\n{log}");
    assert!(log.contains("the member stops"), "{log}");
    assert!(
        !log.contains("panicked at"),
        "a panic, not an error message:\n{log}"
    );
    clear(&m.disk);
    // The crash drops whatever the failure left unsynced.
    m.disk.lose_unsynced();
    m.server.restart().await;
    assert_all_present(&m.server, &acked).await;
    let mut client = m.server.client().await;
    client
        .put("after-recovery", "ok", None)
        .await
        .expect("the recovered member takes writes");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_fsync_stops_the_member_and_is_never_retried() {
    member_stops_and_recovers(
        |disk| disk.fail_fsync(true),
        |disk| disk.fail_fsync(false),
        "could not be written or synced",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_write_stops_the_member() {
    member_stops_and_recovers(
        |disk| disk.fail_writes(true),
        |disk| disk.fail_writes(false),
        "could not be written or synced",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_stops_the_member_and_it_recovers_once_space_is_freed() {
    member_stops_and_recovers(
        |disk| disk.fill(true),
        |disk| disk.fill(false),
        "No space left on device",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_disk_delays_requests_and_loses_nothing() {
    let mut m = start().await;
    let writer = Writer::start(m.server.endpoint());
    writer.wait_for_acks(WRITES_BEFORE_FAULT).await;
    let before = writer.acked();
    m.disk.stall(Duration::from_millis(1500));
    tokio::time::sleep(Duration::from_secs(4)).await;
    let during = writer.acked() - before;
    m.disk.stall(Duration::ZERO);
    writer.wait_for_acks(writer.acked() + 50).await;
    assert!(
        m.server.pid().is_some() && m.server.wait_for_exit(Duration::ZERO).await.is_none(),
        "the member stopped on a slow disk:\n{}",
        m.server.log()
    );
    m.server.kill9();
    m.disk.lose_unsynced();
    let (acked, sent) = writer.finish().await;
    println!(
        "{} of {sent} writes acknowledged, {during} during 4 s of 1.5 s stalls",
        acked.len()
    );
    assert!(during < 20, "the stall did not slow writes: {during}");
    m.server.restart().await;
    assert_all_present(&m.server, &acked).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_whose_disk_fills_raises_nospace_before_it_stops() {
    let _serial = exclusive().await;
    let mut cluster = Cluster::start_on_fault_disks(3, &[]).await;
    let leader = cluster.leader().await;
    let victim = cluster.followers().await[0];
    let victim_id = cluster
        .status(victim)
        .await
        .and_then(|s| s.header().map(|h| h.member_id()))
        .expect("the victim's member id");
    let writer = Writer::start(cluster.endpoint(leader));
    writer.wait_for_acks(WRITES_BEFORE_FAULT).await;
    cluster.disk(victim).fill(true);
    let status = cluster.wait_for_exit(victim, STOP_LIMIT).await;
    let log = cluster.log(victim);
    let status = status.unwrap_or_else(|| panic!("the member did not stop:\n{log}"));
    assert!(!status.success(), "{status}");
    assert!(log.contains("No space left on device"), "{log}");
    assert!(log.contains("raised the NOSPACE alarm"), "{log}");

    let mut client = cluster.client(leader).await;
    let alarms = client
        .alarm(AlarmAction::Get, AlarmType::None, None)
        .await
        .expect("list alarms");
    assert!(
        alarms
            .alarms()
            .iter()
            .any(|a| a.member_id() == victim_id && a.alarm() == AlarmType::Nospace),
        "no NOSPACE alarm for {victim_id:x}: {:?}",
        alarms
            .alarms()
            .iter()
            .map(|a| (a.member_id(), a.alarm()))
            .collect::<Vec<_>>()
    );
    let refused = client.put("while-full", "x", None).await;
    let message = format!("{refused:?}");
    assert!(
        message.contains("etcdserver: mvcc: database space exceeded"),
        "writes are refused while the alarm is raised: {message}"
    );
    let (acked, sent) = writer.finish().await;
    println!(
        "{} of {sent} writes acknowledged before the alarm",
        acked.len()
    );

    // The operator frees space, restarts the member and disarms the alarm.
    cluster.disk(victim).fill(false);
    cluster.restart(victim).await;
    let mut disarm = etcd_client::AlarmOptions::new();
    disarm.with_member(victim_id);
    client
        .alarm(AlarmAction::Deactivate, AlarmType::Nospace, Some(disarm))
        .await
        .expect("disarm");
    client
        .put("after-disarm", "ok", None)
        .await
        .expect("writes resume after the disarm");
    assert_all_on(cluster.client(victim).await, &acked).await;
}
