//! The disk fault campaign (issue 18, acceptance 2): a 3-member cluster
//! whose members keep their data on fault disks (`rafter-faultfs`, which
//! keeps writes in memory until fsync). Each round clients write and read
//! linearizably while the disks stall now and then; then every member is
//! killed with SIGKILL at once and every write not yet fsynced is dropped,
//! as a power cut does; then the members restart. After every round:
//! - the round's history, with a linearizable read of every key after the
//!   restart, is linearizable (`rafter_sim::checker`): no acknowledged
//!   write was lost, none came back from the dead;
//! - the keys of every earlier round still hold what they held;
//! - HashKV is equal on all members.
//!
//! CI runs `ROUNDS_IN_CI` rounds; `RAFTER_DISK_CAMPAIGN_ROUNDS=100` runs
//! the full campaign. Needs FUSE (see `rafter-faultfs`).

mod common;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::cluster::{bounded_request, exclusive, Cluster};
use common::Rng;
use etcd_client::{Client, ConnectOptions};
use rafter_sim::checker::register::{Register, RegisterInput, RegisterOutput};
use rafter_sim::checker::{check, Budget, CheckResult, Operation};

const ROUNDS_IN_CI: usize = 6;
const KEYS: u64 = 3;
const WRITERS: usize = 2;
const READERS: usize = 2;
/// Load before the members are killed, stalls included.
const LOAD: Duration = Duration::from_millis(1500);
/// Longest one client call may take before it counts as indeterminate.
const CALL_LIMIT: Duration = Duration::from_secs(2);
/// Pause between one client's calls, which bounds the history's size.
const PACE: Duration = Duration::from_millis(3);

type Op = Operation<RegisterInput<u64, u64>, RegisterOutput<u64>>;

fn rounds() -> usize {
    std::env::var("RAFTER_DISK_CAMPAIGN_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(ROUNDS_IN_CI)
}

fn key(round: usize, k: u64) -> String {
    format!("disk-campaign/{round}/{k}")
}

async fn connect(endpoints: &[String]) -> Client {
    let options = ConnectOptions::new()
        .with_connect_timeout(Duration::from_millis(300))
        .with_timeout(CALL_LIMIT);
    Client::connect(endpoints, Some(options))
        .await
        .expect("connect a client")
}

/// One client's calls until `stop`: puts of unique values, or gets.
async fn client_task(
    id: usize,
    round: usize,
    writes: bool,
    endpoints: Vec<String>,
    started: Instant,
    stop: Arc<AtomicBool>,
    history: Arc<Mutex<Vec<Op>>>,
) {
    let mut client = connect(&endpoints).await;
    let mut rng = Rng(0x2545_f491 + (round * 16 + id) as u64);
    let mut n = 0u64;
    let ns = || started.elapsed().as_nanos() as u64;
    while !stop.load(Ordering::Relaxed) {
        n += 1;
        let k = rng.below(KEYS);
        let call = ns();
        let op = if writes {
            let value = (id as u64 + 1) * 1_000_000 + n;
            let input = RegisterInput::Put { key: k, value };
            let put = tokio::time::timeout(
                CALL_LIMIT,
                client.put(key(round, k), value.to_string(), None),
            );
            match put.await {
                Ok(Ok(_)) => Operation::ok(id, call, ns(), input, RegisterOutput::Put),
                _ => Operation::indeterminate(id, call, ns(), input),
            }
        } else {
            let get = tokio::time::timeout(CALL_LIMIT, client.get(key(round, k), None));
            match get.await {
                Ok(Ok(response)) => {
                    let value = response
                        .kvs()
                        .first()
                        .map(|kv| kv.value_str().expect("utf-8").parse().expect("a number"));
                    Operation::ok(
                        id,
                        call,
                        ns(),
                        RegisterInput::Get { key: k },
                        RegisterOutput::Get(value),
                    )
                }
                // A failed read constrains nothing.
                _ => {
                    tokio::time::sleep(PACE).await;
                    continue;
                }
            }
        };
        history.lock().unwrap().push(op);
        tokio::time::sleep(PACE).await;
    }
}

/// Reads every key of `round` through a linearizable Get.
async fn read_round(client: &mut Client, round: usize) -> BTreeMap<u64, Option<u64>> {
    let mut values = BTreeMap::new();
    for k in 0..KEYS {
        let response = bounded_request(client.get(key(round, k), None))
            .await
            .expect("a linearizable read after the restart");
        let value = response
            .kvs()
            .first()
            .map(|kv| kv.value_str().expect("utf-8").parse().expect("a number"));
        values.insert(k, value);
    }
    values
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_all_with_lost_unsynced_writes_and_stalls_loses_nothing_acknowledged() {
    let _serial = exclusive().await;
    let mut cluster = Cluster::start_on_fault_disks(3, &[]).await;
    let members: Vec<usize> = (0..cluster.size()).collect();
    let endpoints: Vec<String> = members.iter().map(|&i| cluster.endpoint(i)).collect();
    let mut settled: BTreeMap<usize, BTreeMap<u64, Option<u64>>> = BTreeMap::new();
    let (mut acked_total, mut lost_total, mut stalls_total) = (0usize, 0u64, 0usize);
    let campaign_started = Instant::now();
    for round in 0..rounds() {
        let started = Instant::now();
        let stop = Arc::new(AtomicBool::new(false));
        let history = Arc::new(Mutex::new(Vec::new()));
        let tasks: Vec<_> = (0..WRITERS + READERS)
            .map(|id| {
                tokio::spawn(client_task(
                    id,
                    round,
                    id < WRITERS,
                    endpoints.clone(),
                    started,
                    stop.clone(),
                    history.clone(),
                ))
            })
            .collect();
        // Stalls of 100-500 ms on a random member's disk, until the kill.
        let mut rng = Rng(0x9e37_79b9 + round as u64);
        while started.elapsed() < LOAD {
            let member = rng.below(members.len() as u64) as usize;
            let stall = Duration::from_millis(100 + rng.below(400));
            cluster.disk(member).stall(stall);
            tokio::time::sleep(stall).await;
            cluster.disk(member).stall(Duration::ZERO);
            stalls_total += 1;
            tokio::time::sleep(Duration::from_millis(rng.below(200))).await;
        }
        for &member in &members {
            cluster.kill9(member);
        }
        let lost: u64 = members
            .iter()
            .map(|&member| cluster.disk(member).lose_unsynced())
            .sum();
        lost_total += lost;
        stop.store(true, Ordering::Relaxed);
        for task in tasks {
            task.await.expect("a client task");
        }
        let ops = std::mem::take(&mut *history.lock().unwrap());
        let verdict =
            verify_round(&mut cluster, &endpoints, round, ops, started, &mut settled).await;
        let (size, acked) = match verdict {
            Ok(counts) => counts,
            Err(violation) if mutation_check() => {
                println!(
                    "round {round}: the campaign caught the log that skips fsync: {violation}"
                );
                return;
            }
            Err(violation) => panic!("round {round}: {violation}"),
        };
        acked_total += acked;
        cluster.assert_hash_kv_agrees().await;
        println!(
            "round {round}: {size} operations, {acked} writes acknowledged, {lost} unsynced bytes lost; linearizable; {:?}",
            started.elapsed()
        );
    }
    println!(
        "{} rounds in {:?}: {acked_total} acknowledged writes, {stalls_total} disk stalls, {lost_total} unsynced bytes lost",
        rounds(),
        campaign_started.elapsed()
    );
    assert!(
        !mutation_check(),
        "the campaign did not notice a Raft log that skips fsync"
    );
    assert!(
        lost_total > 0,
        "no crash lost an unsynced byte: the campaign proved nothing"
    );
}

/// Whether this run is the mutation check: with the server's Raft log
/// skipping fsync (`RAFTER_FAULT=fault-log-skips-fsync`), the campaign must
/// find lost acknowledged writes (or members that cannot come back).
fn mutation_check() -> bool {
    std::env::var("RAFTER_FAULT").is_ok_and(|v| v == "fault-log-skips-fsync")
}

/// Restarts the killed members and checks the round: the history with a
/// read of every key after the restart is linearizable, and every earlier
/// round's keys hold what they held. Returns the number of operations and
/// of acknowledged writes, or the violation.
async fn verify_round(
    cluster: &mut Cluster,
    endpoints: &[String],
    round: usize,
    mut ops: Vec<Op>,
    started: Instant,
    settled: &mut BTreeMap<usize, BTreeMap<u64, Option<u64>>>,
) -> Result<(usize, usize), String> {
    let members: Vec<usize> = (0..cluster.size()).collect();
    cluster
        .try_restart_all(&members)
        .await
        .map_err(|e| format!("the members did not come back: {e}"))?;
    let mut client = connect(endpoints).await;
    let acked = ops
        .iter()
        .filter(|op| matches!(op.input, RegisterInput::Put { .. }) && op.output.is_some())
        .count();
    let after = started.elapsed().as_nanos() as u64;
    let finals = read_round(&mut client, round).await;
    let done = started.elapsed().as_nanos() as u64;
    for (&k, &value) in &finals {
        ops.push(Operation::ok(
            usize::MAX,
            after,
            done,
            RegisterInput::Get { key: k },
            RegisterOutput::Get(value),
        ));
    }
    let size = ops.len();
    match check(&Register::new(), &ops, Budget::steps(50_000_000)) {
        CheckResult::Ok => {}
        other => {
            return Err(format!(
                "the history of {size} operations is not linearizable: {other}"
            ))
        }
    }
    for (earlier, values) in settled.iter() {
        let now = read_round(&mut client, *earlier).await;
        if &now != values {
            return Err(format!(
                "the keys of round {earlier} changed: {values:?} became {now:?}"
            ));
        }
    }
    settled.insert(round, finals);
    Ok((size, acked))
}
