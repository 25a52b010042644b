//! A watcher that reads nothing while 100,000 events are written: the
//! server must not hold that backlog (Rafter's stated bound: each stream's
//! outbox holds at most 1 MiB plus one catch-up chunk of 1,000 events,
//! plus 16 responses handed to gRPC), writers must keep their pace, and the
//! watcher, once it reads, must get every event in order with no gap.
//!
//! The backlog here is 100,000 events of 1 KiB values with their 1 KiB
//! previous values (over 200 MiB if it were buffered). The server's resident
//! memory is sampled while the watcher stalls and compared with its growth
//! over the same writes without a watcher (the store's own pages grow in
//! both). Throughputs and memory are printed (`--nocapture`), not asserted
//! as speeds.

mod common;

use std::time::{Duration, Instant};

use common::{Server, Target};
use etcd_client::Client;
use rafter_proto::etcdserverpb::watch_client::WatchClient;
use rafter_proto::etcdserverpb::watch_request::RequestUnion;
use rafter_proto::etcdserverpb::{WatchCreateRequest, WatchRequest};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;

const EVENTS: usize = 100_000;
const BASELINE_PUTS: usize = 100_000;
const VALUE_BYTES: usize = 1024;
const WRITERS: usize = 64;
/// What the stalled watcher may add to the server's memory beyond what the
/// same writes add without it.
const WATCH_MEMORY_BOUND_BYTES: i64 = 64 << 20;

fn rss_bytes(pid: u32) -> i64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("read status");
    let kib: i64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .expect("VmRSS");
    kib * 1024
}

/// Puts `count` keys under `prefix` from `WRITERS` concurrent tasks while
/// sampling the server's memory; returns (puts per second, peak RSS).
async fn write(client: &Client, prefix: &str, count: usize, pid: u32) -> (f64, i64) {
    let started = Instant::now();
    let value = vec![b'v'; VALUE_BYTES];
    let mut tasks = Vec::new();
    for w in 0..WRITERS {
        let mut kv = client.kv_client();
        let value = value.clone();
        let prefix = prefix.to_string();
        tasks.push(tokio::spawn(async move {
            let mut i = w;
            while i < count {
                kv.put(format!("{prefix}{i:06}"), value.clone(), None)
                    .await
                    .expect("put");
                i += WRITERS;
            }
        }));
    }
    let mut peak = rss_bytes(pid);
    let sampler = async {
        loop {
            tokio::time::sleep(Duration::from_millis(50)).await;
            peak = peak.max(rss_bytes(pid));
        }
    };
    tokio::select! {
        _ = futures_join(tasks) => {}
        _ = sampler => unreachable!("the sampler never ends"),
    }
    peak = peak.max(rss_bytes(pid));
    (count as f64 / started.elapsed().as_secs_f64(), peak)
}

async fn futures_join(tasks: Vec<tokio::task::JoinHandle<()>>) {
    for t in tasks {
        t.await.expect("writer task");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_watcher_costs_bounded_memory_and_gets_everything() {
    let server = Server::start().await;
    let pid = server.pid().expect("running");
    let client = server.client().await;

    let rss_start = rss_bytes(pid);
    let (baseline_rate, baseline_peak) = write(&client, "base/", BASELINE_PUTS, pid).await;
    let baseline_growth = baseline_peak - rss_start;
    let rss_mid = rss_bytes(pid);

    // The watcher gets its own connection, so its unread stream stalls
    // only itself.
    let channel = tonic::transport::Endpoint::from_shared(server.endpoint())
        .expect("endpoint")
        .connect()
        .await
        .expect("connect the watcher");
    let (req_tx, req_rx) = mpsc::channel(4);
    let mut watch = WatchClient::new(channel);
    req_tx
        .send(WatchRequest {
            request_union: Some(RequestUnion::CreateRequest(WatchCreateRequest {
                key: b"slow/".to_vec(),
                range_end: b"slow0".to_vec(),
                prev_kv: true,
                ..Default::default()
            })),
        })
        .await
        .expect("send create");
    let mut stream = watch
        .watch(ReceiverStream::new(req_rx))
        .await
        .expect("watch")
        .into_inner();
    let created = stream.message().await.expect("created").expect("created");
    assert!(created.created);
    let start_rev = created.header.expect("header").revision;

    // Overwrite the same keys so every event has a 1 KiB previous value.
    let (first_rate, first_peak) = write(&client, "slow/", EVENTS / 2, pid).await;
    let (second_rate, second_peak) = write(&client, "slow/", EVENTS / 2, pid).await;
    let stalled_rate = (first_rate + second_rate) / 2.0;
    let stalled_peak = first_peak.max(second_peak);
    let stalled_growth = stalled_peak - rss_mid;
    let watch_cost = stalled_growth - baseline_growth;

    println!(
        "writers: {baseline_rate:.0} puts/s without a watcher, {stalled_rate:.0} puts/s with a stalled watcher"
    );
    println!(
        "server RSS: start {} MiB; +{} MiB over {BASELINE_PUTS} puts without a watcher; +{} MiB over {EVENTS} puts with the stalled watcher (peak {} MiB)",
        rss_start >> 20,
        baseline_growth >> 20,
        stalled_growth >> 20,
        stalled_peak >> 20
    );
    if server.target() == Target::Rafter {
        assert!(
            watch_cost < WATCH_MEMORY_BOUND_BYTES,
            "the stalled watcher grew the server by {} MiB more than the same writes without it",
            watch_cost >> 20
        );
    }

    // Now read: every event, in revision order, none twice, none missing.
    let mut next_rev = start_rev + 1;
    let mut received = 0usize;
    let deadline = Instant::now() + Duration::from_secs(120);
    while received < EVENTS {
        let left = deadline.saturating_duration_since(Instant::now());
        let resp = tokio::time::timeout(left, stream.message())
            .await
            .expect("the watcher got every event in time")
            .expect("stream ok")
            .expect("stream open");
        for ev in resp.events {
            let kv = ev.kv.expect("kv");
            assert_eq!(
                kv.mod_revision, next_rev,
                "event {received} out of order or missing"
            );
            if received >= EVENTS / 2 {
                assert_eq!(ev.prev_kv.expect("prev_kv").value.len(), VALUE_BYTES);
            }
            next_rev += 1;
            received += 1;
        }
    }
    println!("the watcher received all {received} events in order after stalling");
    drop(req_tx);
}
