//! `rafter bench defrag`: what a defragmentation costs the clients of the
//! member it runs on. Fills the store (`--data-mb`), deletes half of it
//! and compacts, then runs writers and linearizable readers against the
//! member before, during and after a `Maintenance.Defragment` and reports
//! the defragmentation's duration, the file size before and after, and the
//! requests' latency during it: the worst request and the longest time no
//! request completed. etcd's defragmentation holds its backend lock
//! throughout (etcd issue 9222), so the same run against etcd shows the
//! stall side by side.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rafter_proto::etcdserverpb::kv_client::KvClient;
use rafter_proto::etcdserverpb::maintenance_client::MaintenanceClient;
use rafter_proto::etcdserverpb::{
    CompactionRequest, DefragmentRequest, DeleteRangeRequest, PutRequest, RangeRequest,
    StatusRequest,
};
use tonic::transport::Channel;

/// `rafter bench defrag` settings.
#[derive(Debug, Clone, clap::Args)]
pub struct DefragArgs {
    /// The member to fill and defragment (client URL or host:port).
    #[arg(long, default_value = "127.0.0.1:2379")]
    pub endpoint: String,
    /// Data written before deleting half of it.
    #[arg(long, default_value_t = 1024)]
    pub data_mb: u64,
    /// Bytes per value of the fill.
    #[arg(long, default_value_t = 32 * 1024)]
    pub value_bytes: usize,
    /// Writers and linearizable readers each, running throughout.
    #[arg(long, default_value_t = 2)]
    pub clients: usize,
    /// Load before and after the defragmentation (seconds).
    #[arg(long, default_value_t = 2)]
    pub settle_s: u64,
    /// A label for the report (e.g. etcd-3.4, rafter).
    #[arg(long, default_value = "server")]
    pub label: String,
}

/// Fill requests in flight at once.
const FILL_CONCURRENCY: usize = 16;

/// One completed request under load: when it ended, how long it took.
#[derive(Clone, Copy)]
struct Sample {
    end: Instant,
    latency: Duration,
}

pub async fn run(args: DefragArgs) -> Result<(), String> {
    let url = crate::conn::endpoint_url(&args.endpoint)?;
    let channel = crate::conn::dial(&[url], 1)
        .await?
        .pop()
        .ok_or("no connection")?;
    fill(&channel, &args).await?;
    let mut kv = KvClient::new(channel.clone());
    let deleted = kv
        .delete_range(DeleteRangeRequest {
            key: b"fill/".to_vec(),
            range_end: format!("fill/{:08}", fill_keys(&args) / 2).into_bytes(),
            ..Default::default()
        })
        .await
        .map_err(|e| format!("delete: {e}"))?
        .into_inner();
    let revision = deleted.header.map_or(0, |h| h.revision);
    kv.compact(CompactionRequest {
        revision,
        physical: true,
    })
    .await
    .map_err(|e| format!("compact: {e}"))?;
    let mut maintenance = MaintenanceClient::new(channel.clone());
    let size_before = db_size(&mut maintenance).await?;
    eprintln!(
        "{}: {} keys deleted, compacted at {revision}; file {} MB; starting the load",
        args.label,
        deleted.deleted,
        size_before >> 20
    );

    let stop = Arc::new(AtomicBool::new(false));
    let samples = Arc::new(Mutex::new(Vec::new()));
    let errors = Arc::new(Mutex::new(0u64));
    let mut tasks = Vec::new();
    for i in 0..args.clients * 2 {
        let mut kv = KvClient::new(channel.clone());
        let (stop, samples, errors) = (stop.clone(), samples.clone(), errors.clone());
        tasks.push(tokio::spawn(async move {
            let mut n = 0u64;
            while !stop.load(Ordering::Relaxed) {
                let start = Instant::now();
                let ok = if i % 2 == 0 {
                    kv.put(PutRequest {
                        key: format!("load/{i}/{}", n % 100).into_bytes(),
                        value: vec![b'l'; 256],
                        ..Default::default()
                    })
                    .await
                    .is_ok()
                } else {
                    kv.range(RangeRequest {
                        key: format!("load/0/{}", n % 100).into_bytes(),
                        ..Default::default()
                    })
                    .await
                    .is_ok()
                };
                let end = Instant::now();
                if ok {
                    samples.lock().expect("samples").push(Sample {
                        end,
                        latency: end - start,
                    });
                } else {
                    *errors.lock().expect("errors") += 1;
                }
                n += 1;
            }
        }));
    }
    tokio::time::sleep(Duration::from_secs(args.settle_s)).await;
    let defrag_start = Instant::now();
    maintenance
        .defragment(DefragmentRequest {})
        .await
        .map_err(|e| format!("defragment: {e}"))?;
    let defrag_end = Instant::now();
    tokio::time::sleep(Duration::from_secs(args.settle_s)).await;
    stop.store(true, Ordering::Relaxed);
    for t in tasks {
        let _ = t.await;
    }
    let size_after = db_size(&mut maintenance).await?;
    let samples = samples.lock().expect("samples").clone();
    let errors = *errors.lock().expect("errors");
    report(
        &args,
        &samples,
        errors,
        (defrag_start, defrag_end),
        (size_before, size_after),
    );
    Ok(())
}

fn fill_keys(args: &DefragArgs) -> u64 {
    (args.data_mb << 20) / args.value_bytes as u64
}

/// Writes `--data-mb` of values, showing progress.
async fn fill(channel: &Channel, args: &DefragArgs) -> Result<(), String> {
    let keys = fill_keys(args);
    let next = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..FILL_CONCURRENCY {
        let mut kv = KvClient::new(channel.clone());
        let next = next.clone();
        let value = vec![b'f'; args.value_bytes];
        let label = args.label.clone();
        tasks.push(tokio::spawn(async move {
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= keys {
                    return Ok::<(), String>(());
                }
                kv.put(PutRequest {
                    key: format!("fill/{i:08}").into_bytes(),
                    value: value.clone(),
                    ..Default::default()
                })
                .await
                .map_err(|e| format!("fill put {i}: {e}"))?;
                if i > 0 && i.is_multiple_of((keys / 20).max(1)) {
                    eprintln!(
                        "{label}: filled {}% ({i} of {keys} keys) in {:?}",
                        i * 100 / keys,
                        started.elapsed()
                    );
                }
            }
        }));
    }
    for t in tasks {
        t.await.map_err(|e| e.to_string())??;
    }
    Ok(())
}

async fn db_size(m: &mut MaintenanceClient<Channel>) -> Result<i64, String> {
    Ok(m.status(StatusRequest {})
        .await
        .map_err(|e| format!("status: {e}"))?
        .into_inner()
        .db_size)
}

fn report(
    args: &DefragArgs,
    samples: &[Sample],
    errors: u64,
    (start, end): (Instant, Instant),
    (size_before, size_after): (i64, i64),
) {
    // Requests that overlapped the defragmentation.
    let mut during: Vec<Sample> = samples
        .iter()
        .copied()
        .filter(|s| s.end >= start && s.end - s.latency <= end)
        .collect();
    during.sort_by_key(|s| s.end);
    let worst = during.iter().map(|s| s.latency).max().unwrap_or_default();
    let mut latencies: Vec<Duration> = during.iter().map(|s| s.latency).collect();
    latencies.sort();
    let p99 = latencies
        .get((latencies.len() * 99 / 100).min(latencies.len().saturating_sub(1)))
        .copied()
        .unwrap_or_default();
    // The longest stretch within the defragmentation with no completion.
    let mut stall = Duration::ZERO;
    let mut last = start;
    for s in &during {
        stall = stall.max(s.end.saturating_duration_since(last));
        last = last.max(s.end);
    }
    stall = stall.max(end.saturating_duration_since(last));
    let baseline_worst = samples
        .iter()
        .filter(|s| s.end < start)
        .map(|s| s.latency)
        .max()
        .unwrap_or_default();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    println!(
        "{}: defrag {:.0} ms, file {} -> {} MB; during it {} requests, p99 {:.1} ms, worst {:.1} ms, longest stall {:.1} ms (worst before it {:.1} ms); {} errors",
        args.label,
        ms(end - start),
        size_before >> 20,
        size_after >> 20,
        during.len(),
        ms(p99),
        ms(worst),
        ms(stall),
        ms(baseline_worst),
        errors
    );
    println!(
        "{{\"label\":\"{}\",\"data_mb\":{},\"defrag_ms\":{:.0},\"size_before_bytes\":{size_before},\"size_after_bytes\":{size_after},\"requests_during\":{},\"p99_during_ms\":{:.2},\"worst_during_ms\":{:.2},\"longest_stall_ms\":{:.2},\"worst_before_ms\":{:.2},\"errors\":{errors}}}",
        args.label,
        args.data_mb,
        ms(end - start),
        during.len(),
        ms(p99),
        ms(worst),
        ms(stall),
        ms(baseline_worst)
    );
}
