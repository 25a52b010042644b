//! The consistent cache under faults, checked for linearizability, with
//! the stale cache as the control that proves the check can tell.
//!
//! A 3-member cluster of real processes. Two writers put unique values to
//! three keys through clients with every endpoint. Four caches of the
//! keys' prefix: three with every endpoint, each starting on another
//! member, and one that knows only one member (as an API server on its
//! own member would); each cache has a reader of each freshness. Meanwhile the test kills -9 and restarts members,
//! pauses them (SIGSTOP / SIGCONT) and, on Rafter, cuts them off from
//! their peers (`RAFTER_TEST_TARGET=etcd` runs the same without the cuts,
//! which the peer proxies cannot make for etcd).
//!
//! Then, with `rafter_sim::checker` and a register per key:
//! - writes plus consistent reads are linearizable (every write that may
//!   have happened included, as an operation of unknown end);
//! - writes plus stale reads are not: a paused or cut-off member's cache
//!   keeps answering old values after newer writes finished.
//!
//! Mutation check: with rafter-client's `fault-cache-no-catch-up` (a
//! consistent read answers from the copy without waiting for it to catch
//! up), the consistent reads must fail the check:
//! `RAFTER_FAULT=fault-cache-no-catch-up cargo nextest run --workspace -E 'binary(cache_faults)'`
//! (the tests' build has rafter-client's `faults` compiled in).

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::cluster::{exclusive, Cluster};
use common::faults;
use common::{Rng, Target};
use rafter_client::cache::CacheStats;
use rafter_client::etcdserverpb::request_op::Request as Op;
use rafter_client::etcdserverpb::{PutRequest, RequestOp, TxnRequest};
use rafter_client::{Cache, CacheOptions, Client, Freshness, Options, Wait};
use rafter_sim::checker::register::{Register, RegisterInput, RegisterOutput};
use rafter_sim::checker::{check, Budget, CheckResult, Operation};

const PREFIX: &str = "cache-lin/";
const KEYS: u64 = 3;
const WRITERS: usize = 2;
/// Long enough for a paused member's stream to be abandoned as stalled: a
/// read's revision request fails over after `attempt_timeout` (300 ms), and
/// the stream is given up `STALL_TIMEOUT` later.
const FAULT_LENGTH: Duration = Duration::from_millis(2000);
/// Shorter than the default second, so a stall is seen well within a fault
/// even on a loaded machine.
const STALL_TIMEOUT: Duration = Duration::from_millis(600);
const READ_TIMEOUT: Duration = Duration::from_secs(1);
/// Pause between one task's operations, which bounds the history's size.
const PACE: Duration = Duration::from_millis(4);

type Op_ = Operation<RegisterInput<u64, u64>, RegisterOutput<u64>>;

#[derive(Default)]
struct Histories {
    writes: Vec<Op_>,
    consistent: Vec<Op_>,
    stale: Vec<Op_>,
    failed_consistent_reads: usize,
}

fn key(k: u64) -> Vec<u8> {
    format!("{PREFIX}{k}").into_bytes()
}

fn parse(value: &[u8]) -> u64 {
    std::str::from_utf8(value)
        .expect("utf-8")
        .parse()
        .expect("a number")
}

fn ns(started: Instant) -> u64 {
    started.elapsed().as_nanos() as u64
}

async fn writer(
    id: usize,
    client: Client,
    started: Instant,
    stop: Arc<AtomicBool>,
    histories: Arc<Mutex<Histories>>,
) {
    let mut rng = Rng(0x9e37_79b9 + id as u64);
    let mut n = 0u64;
    while !stop.load(Ordering::Relaxed) {
        n += 1;
        let k = rng.below(KEYS);
        let value = (id as u64 + 1) * 1_000_000 + n;
        let txn = TxnRequest {
            success: vec![RequestOp {
                request: Some(Op::RequestPut(PutRequest {
                    key: key(k),
                    value: value.to_string().into_bytes(),
                    ..Default::default()
                })),
            }],
            ..Default::default()
        };
        let input = RegisterInput::Put { key: k, value };
        let call = ns(started);
        let result = client.txn(&txn, Wait::For(READ_TIMEOUT)).await;
        let ret = ns(started);
        let op = match result {
            Ok(_) => Operation::ok(id, call, ret, input, RegisterOutput::Put),
            Err(_) => Operation::indeterminate(id, call, ret, input),
        };
        histories.lock().unwrap().writes.push(op);
        tokio::time::sleep(PACE).await;
    }
}

async fn reader(
    id: usize,
    cache: Cache,
    freshness: Freshness,
    started: Instant,
    stop: Arc<AtomicBool>,
    histories: Arc<Mutex<Histories>>,
) {
    let mut rng = Rng(0x51ed_270b + id as u64);
    while !stop.load(Ordering::Relaxed) {
        let k = rng.below(KEYS);
        let call = ns(started);
        let result = cache.get(&key(k), freshness).await;
        let ret = ns(started);
        {
            let mut h = histories.lock().unwrap();
            match result {
                Ok(answer) => {
                    let read = answer.value.map(|kv| parse(&kv.value));
                    let op = Operation::ok(
                        id,
                        call,
                        ret,
                        RegisterInput::Get { key: k },
                        RegisterOutput::Get(read),
                    );
                    match freshness {
                        Freshness::Stale => h.stale.push(op),
                        Freshness::Consistent(_) => h.consistent.push(op),
                    }
                }
                // A failed read returned nothing: it constrains nothing.
                Err(_) => h.failed_consistent_reads += 1,
            }
        }
        tokio::time::sleep(PACE).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn consistent_cache_reads_are_linearizable_under_faults_and_stale_ones_are_not() {
    let _serial = exclusive().await;
    let mut cluster = Cluster::start_with_peer_proxies(3, &[]).await;
    let all: Vec<String> = (0..3).map(|i| cluster.endpoint(i)).collect();
    let started = Instant::now();
    let stop = Arc::new(AtomicBool::new(false));
    let histories = Arc::new(Mutex::new(Histories::default()));
    let mut tasks = Vec::new();
    for id in 0..WRITERS {
        let client = Client::connect(&all).await.expect("connect a writer");
        tasks.push(tokio::spawn(writer(
            id,
            client,
            started,
            stop.clone(),
            histories.clone(),
        )));
    }
    let mut caches = Vec::new();
    // Three caches with every endpoint, each starting on another member
    // (its watch stays there until the stream breaks or stalls, while its
    // revision requests move on at the first failure), and one that only
    // knows member 3.
    let mut homes: Vec<Vec<String>> = (0..3)
        .map(|first| (0..3).map(|i| all[(first + i) % 3].clone()).collect())
        .collect();
    homes.push(vec![all[2].clone()]);
    for (c, endpoints) in homes.iter().enumerate() {
        // Attempts that fail over quickly: a revision request moves to
        // another member while the watch stays on the faulty one until it
        // stalls, the case a consistent read must wait out.
        let options = Options {
            attempt_timeout: Duration::from_millis(300),
            ..Options::default()
        };
        let client = Client::connect_with(endpoints, options)
            .await
            .expect("connect a cache");
        let cache_options = CacheOptions {
            stall_timeout: STALL_TIMEOUT,
            ..CacheOptions::default()
        };
        let cache = Cache::start(&client, PREFIX, cache_options)
            .await
            .expect("start a cache");
        for (r, freshness) in [Freshness::Consistent(READ_TIMEOUT), Freshness::Stale]
            .into_iter()
            .enumerate()
        {
            tasks.push(tokio::spawn(reader(
                100 + 10 * c + r,
                cache.clone(),
                freshness,
                started,
                stop.clone(),
                histories.clone(),
            )));
        }
        caches.push(cache);
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    let rafter = cluster.target() == Target::Rafter;
    for fault in [
        "pause follower",
        "kill leader",
        "cut follower",
        "pause leader",
        "kill follower",
        "cut leader",
    ] {
        if fault.starts_with("cut") && !rafter {
            continue;
        }
        faults::inject(&mut cluster, fault, FAULT_LENGTH, started).await;
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    stop.store(true, Ordering::Relaxed);
    for task in tasks {
        task.await.expect("a client task");
    }
    let stats: Vec<CacheStats> = caches.iter().map(Cache::stats).collect();
    let h = std::mem::take(&mut *histories.lock().unwrap());
    println!(
        "{} writes, {} consistent reads ({} failed), {} stale reads",
        h.writes.len(),
        h.consistent.len(),
        h.failed_consistent_reads,
        h.stale.len()
    );
    for (c, s) in stats.iter().enumerate() {
        println!("cache {c}: {s:?}");
    }
    assert!(
        h.consistent.len() >= 100,
        "too few consistent reads succeeded to mean anything"
    );
    assert!(
        stats.iter().map(|s| s.watches).sum::<u64>() > stats.len() as u64,
        "the faults broke no cache's stream: {stats:?}"
    );

    let with_consistent: Vec<Op_> = h.writes.iter().chain(&h.consistent).cloned().collect();
    let result = check(
        &Register::new(),
        &with_consistent,
        Budget::steps(50_000_000),
    );
    let asked = std::env::var("RAFTER_FAULT").is_ok_and(|v| v == "fault-cache-no-catch-up");
    assert_eq!(
        rafter_client::cache::fault_no_catch_up(),
        asked,
        "RAFTER_FAULT asks for the cache's test-only bug but this build does not have it (feature faults)"
    );
    if rafter_client::cache::fault_no_catch_up() {
        // The mutation check: consistent reads that do not wait for the
        // copy to catch up must be caught.
        assert!(
            result.violation().is_some(),
            "consistent reads that skip the catch-up passed the check: {result}"
        );
        return;
    }
    match result {
        CheckResult::Ok => {}
        other => panic!("consistent cache reads are not shown linearizable: {other}"),
    }
    // The first fault pauses a member that one of the first three caches
    // watches on while its revision requests fail over: its reads must
    // have waited until the stream was abandoned as stalled.
    assert!(
        stats.iter().map(|s| s.stalls).sum::<u64>() >= 1,
        "no cache abandoned a stalled stream: {stats:?}"
    );
    let with_stale: Vec<Op_> = h.writes.iter().chain(&h.stale).cloned().collect();
    match check(&Register::new(), &with_stale, Budget::steps(50_000_000)) {
        CheckResult::Ok => panic!("stale cache reads passed the check: it cannot tell"),
        result => assert!(
            result.violation().is_some(),
            "the stale reads' check found no verdict: {result}"
        ),
    }
}
