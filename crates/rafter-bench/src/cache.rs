//! `rafter bench cache`: what a consistent read through `rafter-client`'s
//! watch-fed cache costs next to a direct linearizable get, the question
//! an operator asks before moving readers onto the cache (seed 000).
//!
//! The run preloads `--key-space` keys under a prefix and keeps a writer
//! putting random ones at `--write-rate` (so the cache has events to
//! follow). Then, one phase after another, each for `--duration`,
//! `--clients` readers get random keys:
//! - `direct`: a linearizable Range per read, over `--conns` connections;
//! - `consistent`: `Cache::get(Freshness::Consistent)` on one cache shared
//!   by every reader (one linearizable request answers every read waiting
//!   when it is sent);
//! - `stale`: `Cache::get(Freshness::Stale)`, no request at all.
//!
//! Reported per phase: reads per second, latency percentiles, errors, the
//! linearizable requests the server answered, and the CPU time of the
//! server processes and of the load generator per read.
//! It speaks only the etcd API, so it measures etcd the same way.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hdrhistogram::Histogram;
use rafter_client::etcdserverpb::{PutRequest, RangeRequest};
use rafter_client::{Cache, CacheOptions, Client, Freshness, Wait};
use rafter_proto::etcdserverpb::kv_client::KvClient;
use serde::Serialize;
use tokio::time::Instant;

use crate::args::{CacheArgs, CacheMode, ClusterArgs, DataArgs};
use crate::conn::dial;
use crate::report::{ms, Latency};
use crate::rng::Rng;
use crate::server_cpu;

/// The keys read and written: the prefix and a zero-padded number.
#[derive(Clone)]
struct KeySpace {
    prefix: String,
    width: usize,
    count: u64,
}

impl KeySpace {
    fn key(&self, n: u64) -> Vec<u8> {
        format!("{}{n:0width$}", self.prefix, width = self.width).into_bytes()
    }

    fn len(&self) -> u64 {
        self.count
    }
}

/// Largest latency tracked exactly: one minute.
const MAX_TRACKED_LATENCY_US: u64 = 60_000_000;

/// One phase's figures.
#[derive(Debug, Serialize)]
pub struct PhaseFigures {
    pub mode: String,
    pub reads: u64,
    pub errors: u64,
    pub reads_per_s: f64,
    pub latency: Latency,
    /// Linearizable requests sent: one per direct read; for the cache, the
    /// shared revision requests.
    pub linearizable_requests: u64,
    pub server_cpu_ms: u64,
    pub server_cpu_us_per_read: f64,
    pub load_generator_cpu_us_per_read: f64,
}

#[derive(Debug, Serialize)]
struct CacheReport {
    endpoints: Vec<String>,
    readers: usize,
    keys: u64,
    write_rate_puts_per_s: f64,
    writes: u64,
    phases: Vec<PhaseFigures>,
}

/// What one reader (or writer) recorded: latencies of the successes and
/// the failures.
pub(crate) struct Tally {
    pub(crate) histogram: Histogram<u64>,
    pub(crate) reads: u64,
    pub(crate) errors: u64,
}

impl Tally {
    pub(crate) fn new() -> Tally {
        Tally {
            histogram: Histogram::new_with_bounds(1, MAX_TRACKED_LATENCY_US, 3)
                .expect("histogram bounds"),
            reads: 0,
            errors: 0,
        }
    }

    pub(crate) fn record(&mut self, latency: Duration) {
        let us = latency.as_micros() as u64;
        self.histogram
            .record(us.clamp(1, MAX_TRACKED_LATENCY_US))
            .expect("bounded value");
        self.reads += 1;
    }

    pub(crate) fn merge<'a>(tallies: impl Iterator<Item = &'a Tally>) -> Tally {
        let mut all = Tally::new();
        for t in tallies {
            all.histogram.add(&t.histogram).expect("same bounds");
            all.reads += t.reads;
            all.errors += t.errors;
        }
        all
    }
}

/// How a reader reads one key.
#[derive(Clone)]
enum Reader {
    Direct(Vec<Client>),
    Cache(Cache, Freshness),
}

impl Reader {
    async fn read(&self, slot: usize, key: &[u8], timeout: Duration) -> bool {
        match self {
            Reader::Direct(clients) => {
                let request = RangeRequest {
                    key: key.to_vec(),
                    ..Default::default()
                };
                clients[slot % clients.len()]
                    .range(&request, Wait::For(timeout))
                    .await
                    .is_ok()
            }
            Reader::Cache(cache, freshness) => cache.get(key, *freshness).await.is_ok(),
        }
    }
}

/// Runs the benchmark and prints its report.
pub async fn run(cluster: &ClusterArgs, data: &DataArgs, args: &CacheArgs) -> Result<(), String> {
    if cluster.clients == 0 || data.key_space_keys == 0 || cluster.conns == 0 {
        return Err("--clients, --conns and --key-space must be at least 1".into());
    }
    let keys = KeySpace {
        prefix: args.prefix.clone(),
        width: data.key_size_bytes,
        count: data.key_space_keys,
    };
    let server_pids = if args.server_pids.is_empty() {
        server_cpu::find_listeners(&cluster.endpoints)
    } else {
        args.server_pids.clone()
    };
    let channels = dial(&cluster.endpoints, 1).await?;
    let mut kv = KvClient::new(channels[0].clone());
    let value = vec![b'v'; data.val_size_bytes];
    eprintln!("preloading {} keys", data.key_space_keys);
    for n in 0..data.key_space_keys {
        kv.put(PutRequest {
            key: keys.key(n),
            value: value.clone(),
            ..Default::default()
        })
        .await
        .map_err(|e| format!("preload: {}", e.message()))?;
    }

    let stop_writer = Arc::new(AtomicBool::new(false));
    let writes = Arc::new(AtomicU64::new(0));
    let writer = tokio::spawn(write_loop(
        kv,
        keys.clone(),
        value,
        args.write_rate_puts_per_s,
        stop_writer.clone(),
        writes.clone(),
    ));

    let mut phases = Vec::new();
    for mode in &args.modes {
        let (reader, requests): (Reader, Box<dyn Fn() -> u64>) = match mode {
            CacheMode::Direct => {
                let mut clients = Vec::new();
                for i in 0..cluster.conns {
                    let n = cluster.endpoints.len();
                    let rotated: Vec<String> = (0..n)
                        .map(|j| cluster.endpoints[(i + j) % n].clone())
                        .collect();
                    clients.push(connect(&rotated).await?);
                }
                (Reader::Direct(clients), Box::new(|| 0))
            }
            CacheMode::Consistent | CacheMode::Stale => {
                let client = connect(&cluster.endpoints).await?;
                let cache = Cache::start(&client, args.prefix.as_bytes(), CacheOptions::default())
                    .await
                    .map_err(|e| format!("start the cache: {e}"))?;
                let freshness = match mode {
                    CacheMode::Stale => Freshness::Stale,
                    _ => Freshness::Consistent(cluster.request_timeout),
                };
                let counted = cache.clone();
                (
                    Reader::Cache(cache, freshness),
                    Box::new(move || counted.stats().revision_requests),
                )
            }
        };
        eprintln!(
            "phase {}: {} readers for {:?}",
            mode.label(),
            cluster.clients,
            args.duration
        );
        let figures = phase(
            mode,
            reader,
            &*requests,
            &keys,
            cluster,
            args.duration,
            &server_pids,
        )
        .await;
        phases.push(figures);
    }
    stop_writer.store(true, Ordering::Relaxed);
    writer.await.map_err(|e| format!("writer: {e}"))?;

    let report = CacheReport {
        endpoints: cluster.endpoints.clone(),
        readers: cluster.clients,
        keys: data.key_space_keys,
        write_rate_puts_per_s: args.write_rate_puts_per_s,
        writes: writes.load(Ordering::Relaxed),
        phases,
    };
    crate::print(cluster.output, &table(&report), &report);
    Ok(())
}

async fn connect(endpoints: &[String]) -> Result<Client, String> {
    Client::connect(endpoints)
        .await
        .map_err(|e| format!("connect: {e}"))
}

/// Puts random keys at `rate` until stopped.
async fn write_loop(
    mut kv: KvClient<tonic::transport::Channel>,
    keys: KeySpace,
    value: Vec<u8>,
    rate_puts_per_s: f64,
    stop: Arc<AtomicBool>,
    writes: Arc<AtomicU64>,
) {
    if rate_puts_per_s <= 0.0 {
        return;
    }
    let mut rng = Rng::new(0xcafe);
    let mut ticker = tokio::time::interval(Duration::from_secs_f64(1.0 / rate_puts_per_s));
    while !stop.load(Ordering::Relaxed) {
        ticker.tick().await;
        let request = PutRequest {
            key: keys.key(rng.below(keys.len())),
            value: value.clone(),
            ..Default::default()
        };
        if kv.put(request).await.is_ok() {
            writes.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// One measured phase: every reader reads random keys for `duration`.
async fn phase(
    mode: &CacheMode,
    reader: Reader,
    requests: &dyn Fn() -> u64,
    keys: &KeySpace,
    cluster: &ClusterArgs,
    duration: Duration,
    server_pids: &[u32],
) -> PhaseFigures {
    let tallies = Arc::new(Mutex::new(Vec::new()));
    let requests_before = requests();
    let server_before = server_cpu::total_cpu(server_pids);
    let own_before = server_cpu::own_cpu().unwrap_or_default();
    let started = Instant::now();
    let end = started + duration;
    let mut tasks = Vec::new();
    for slot in 0..cluster.clients {
        let reader = reader.clone();
        let keys = keys.clone();
        let tallies = tallies.clone();
        let timeout = cluster.request_timeout;
        tasks.push(tokio::spawn(async move {
            let mut rng = Rng::new(slot as u64 + 1);
            let mut tally = Tally::new();
            while Instant::now() < end {
                let key = keys.key(rng.below(keys.len()));
                let t = Instant::now();
                if reader.read(slot, &key, timeout).await {
                    tally.record(t.elapsed());
                } else {
                    tally.errors += 1;
                }
            }
            tallies.lock().expect("tallies").push(tally);
        }));
    }
    for task in tasks {
        task.await.expect("a reader");
    }
    let elapsed = started.elapsed();
    let server_cpu = server_cpu::total_cpu(server_pids).saturating_sub(server_before);
    let own_cpu = server_cpu::own_cpu()
        .unwrap_or_default()
        .saturating_sub(own_before);
    let all = Tally::merge(tallies.lock().expect("tallies").iter());
    let reads = all.reads.max(1) as f64;
    let linearizable_requests = match mode {
        CacheMode::Direct => all.reads + all.errors,
        _ => requests() - requests_before,
    };
    PhaseFigures {
        mode: mode.label().to_string(),
        reads: all.reads,
        errors: all.errors,
        reads_per_s: all.reads as f64 / elapsed.as_secs_f64(),
        latency: Latency::of(&all.histogram),
        linearizable_requests,
        server_cpu_ms: server_cpu.as_millis() as u64,
        server_cpu_us_per_read: server_cpu.as_micros() as f64 / reads,
        load_generator_cpu_us_per_read: own_cpu.as_micros() as f64 / reads,
    }
}

fn table(report: &CacheReport) -> String {
    let mut out = format!(
        "cache reads: {} readers, {} keys, writer at {}/s ({} puts), endpoints {}\n",
        report.readers,
        report.keys,
        report.write_rate_puts_per_s,
        report.writes,
        report.endpoints.join(",")
    );
    out.push_str(
        "mode        reads/s   p50 ms   p99 ms   max ms  errors  linearizable reqs  server CPU us/read  loadgen CPU us/read\n",
    );
    for p in &report.phases {
        out.push_str(&format!(
            "{:<10} {:>8.0} {:>8} {:>8} {:>8} {:>7} {:>18} {:>19.1} {:>20.1}\n",
            p.mode,
            p.reads_per_s,
            ms(p.latency.p50_us as f64),
            ms(p.latency.p99_us as f64),
            ms(p.latency.max_us as f64),
            p.errors,
            p.linearizable_requests,
            p.server_cpu_us_per_read,
            p.load_generator_cpu_us_per_read
        ));
    }
    out
}
