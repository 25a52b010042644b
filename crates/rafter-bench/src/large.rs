//! Large data (issue 15): load `--keys` keys in multi-put transactions,
//! then answer one Range over the first `--range-keys` of them, and report
//! what each cost: the load's rate and server CPU per key, each member's
//! resident memory after the load, and the Range's latency, size and how
//! far it raised the answering member's memory (current and peak). The
//! restart-to-ready time of members holding the data is measured by the
//! script that owns the processes (`scripts/bench-vs-etcd.sh`).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rafter_proto::etcdserverpb::kv_client::KvClient;
use rafter_proto::etcdserverpb::request_op::Request;
use rafter_proto::etcdserverpb::{PutRequest, RangeRequest, RequestOp, TxnRequest};
use serde::Serialize;

use crate::args::{ClusterArgs, DataArgs, LargeArgs};
use crate::conn::dial;
use crate::keys::{random_value, KeySpace};
use crate::rng::Rng;
use crate::server_cpu;

/// What `rafter bench large` measured.
#[derive(Debug, Serialize)]
pub struct LargeReport {
    pub keys: u64,
    pub val_size_bytes: usize,
    pub puts_per_txn: usize,
    pub load_ms: u64,
    pub load_keys_per_s: f64,
    /// All members' CPU over the load, per key written.
    pub load_server_cpu_us_per_key: Option<f64>,
    /// Each member's resident memory after the load (KiB), endpoint order.
    pub rss_after_load_kib: Vec<u64>,
    pub peak_rss_after_load_kib: Vec<u64>,
    pub range_keys_asked: u64,
    pub range_keys_returned: usize,
    pub range_response_bytes: usize,
    pub range_ms: f64,
    /// The answering member (the first endpoint): resident memory before
    /// the Range, right after it, and its peak before and after (KiB).
    pub range_member_rss_before_kib: u64,
    pub range_member_rss_after_kib: u64,
    pub range_member_peak_before_kib: u64,
    pub range_member_peak_after_kib: u64,
    /// The same range through `KV.RangeStream` (etcd 3.7; `None` when the
    /// server does not serve it), asked before the unary one so that its
    /// own peak shows.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stream: Option<StreamFigures>,
}

/// What the RangeStream of the range cost.
#[derive(Debug, Serialize)]
pub struct StreamFigures {
    pub messages: usize,
    pub keys_returned: usize,
    pub ms: f64,
    pub member_rss_before_kib: u64,
    pub member_rss_after_kib: u64,
    pub member_peak_before_kib: u64,
    pub member_peak_after_kib: u64,
}

/// Loads the keys, asks the Range, prints the report.
pub async fn run(cluster: &ClusterArgs, data: &DataArgs, large: &LargeArgs) -> Result<(), String> {
    if large.puts_per_txn == 0 || cluster.clients == 0 {
        return Err("--puts-per-txn and --clients must be at least 1".into());
    }
    let keys = KeySpace::new(data.key_size_bytes, large.keys)?;
    let value = random_value(data.val_size_bytes, &mut Rng::new(0xB16_DA7A));
    let channels = dial(&cluster.endpoints, cluster.conns).await?;
    // Member processes in endpoint order (each endpoint's listener).
    let pids: Vec<u32> = cluster
        .endpoints
        .iter()
        .map(|e| {
            server_cpu::find_listeners(std::slice::from_ref(e))
                .first()
                .copied()
        })
        .collect::<Option<_>>()
        .ok_or("rafter bench large measures memory: run it on the members' machine")?;
    let meter = server_cpu::CpuMeter::start(pids.clone());
    let started = Instant::now();
    let next_batch = Arc::new(AtomicU64::new(0));
    let batches = large.keys.div_ceil(large.puts_per_txn as u64);
    let written = Arc::new(AtomicU64::new(0));
    let progress = tokio::spawn({
        let written = written.clone();
        let total = large.keys;
        async move {
            loop {
                tokio::time::sleep(Duration::from_secs(5)).await;
                eprintln!(
                    "rafter bench large: {} of {total} keys written",
                    written.load(Ordering::Relaxed)
                );
            }
        }
    });
    let tasks: Vec<_> = (0..cluster.clients)
        .map(|client| {
            let mut kv = KvClient::new(channels[client % channels.len()].clone());
            let (next_batch, written, keys, value) = (
                next_batch.clone(),
                written.clone(),
                keys.clone(),
                value.clone(),
            );
            let (per_txn, total) = (large.puts_per_txn as u64, large.keys);
            tokio::spawn(async move {
                loop {
                    let batch = next_batch.fetch_add(1, Ordering::Relaxed);
                    if batch >= batches {
                        return Ok::<(), String>(());
                    }
                    let first = batch * per_txn;
                    let success = (first..(first + per_txn).min(total))
                        .map(|index| RequestOp {
                            request: Some(Request::RequestPut(PutRequest {
                                key: keys.key(index),
                                value: value.clone(),
                                ..Default::default()
                            })),
                        })
                        .collect::<Vec<_>>();
                    let count = success.len() as u64;
                    kv.txn(TxnRequest {
                        success,
                        ..Default::default()
                    })
                    .await
                    .map_err(|s| format!("loading keys from {first} failed: {}", s.message()))?;
                    written.fetch_add(count, Ordering::Relaxed);
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.map_err(|e| e.to_string())??;
    }
    progress.abort();
    let load = started.elapsed();
    let load_cpu = meter.finish(large.keys);
    let rss = |pid: &u32| server_cpu::rss_kib(*pid).unwrap_or_default();
    let peak = |pid: &u32| server_cpu::peak_rss_kib(*pid).unwrap_or_default();
    let rss_after_load_kib: Vec<u64> = pids.iter().map(rss).collect();
    let peak_rss_after_load_kib: Vec<u64> = pids.iter().map(peak).collect();

    let range_keys = large.range_keys.min(large.keys);
    let mut kv = KvClient::new(channels[0].clone()).max_decoding_message_size(usize::MAX);
    let range = RangeRequest {
        key: keys.key(0),
        range_end: if range_keys < large.keys {
            keys.key(range_keys)
        } else {
            vec![0]
        },
        ..Default::default()
    };
    let (rss_before, peak_before) = (rss(&pids[0]), peak(&pids[0]));
    let asked = Instant::now();
    let stream = match kv.range_stream(range.clone()).await {
        Ok(response) => {
            let mut messages = response.into_inner();
            let (mut count, mut keys_returned) = (0, 0);
            while let Some(message) = messages
                .message()
                .await
                .map_err(|s| format!("the range stream failed: {}", s.message()))?
            {
                count += 1;
                keys_returned += message.range_response.map_or(0, |r| r.kvs.len());
            }
            Some(StreamFigures {
                messages: count,
                keys_returned,
                ms: (asked.elapsed().as_secs_f64() * 1e4).round() / 10.0,
                member_rss_before_kib: rss_before,
                member_rss_after_kib: rss(&pids[0]),
                member_peak_before_kib: peak_before,
                member_peak_after_kib: peak(&pids[0]),
            })
        }
        Err(status) if status.code() == tonic::Code::Unimplemented => None,
        Err(status) => return Err(format!("the range stream failed: {}", status.message())),
    };
    let (rss_before, peak_before) = (rss(&pids[0]), peak(&pids[0]));
    let asked = Instant::now();
    let response = kv
        .range(range)
        .await
        .map_err(|s| format!("the range failed: {}", s.message()))?
        .into_inner();
    let range_time = asked.elapsed();
    let report = LargeReport {
        keys: large.keys,
        val_size_bytes: data.val_size_bytes,
        puts_per_txn: large.puts_per_txn,
        load_ms: load.as_millis() as u64,
        load_keys_per_s: (large.keys as f64 / load.as_secs_f64()).round(),
        load_server_cpu_us_per_key: load_cpu.map(|c| c.server_cpu_us_per_op),
        rss_after_load_kib,
        peak_rss_after_load_kib,
        range_keys_asked: range_keys,
        range_keys_returned: response.kvs.len(),
        range_response_bytes: prost::Message::encoded_len(&response),
        range_ms: (range_time.as_secs_f64() * 1e4).round() / 10.0,
        range_member_rss_before_kib: rss_before,
        range_member_rss_after_kib: rss(&pids[0]),
        range_member_peak_before_kib: peak_before,
        range_member_peak_after_kib: peak(&pids[0]),
        stream,
    };
    let mib = |kib: u64| kib / 1024;
    let mut table = format!(
        "large data: {} keys of {} B loaded in {} ms ({:.0} keys/s, server CPU {} us/key); \
         member RSS after load MiB: {:?}\n\
         range of {} keys: {} returned, {} MB, {} ms; answering member RSS {} -> {} MiB, \
         peak {} -> {} MiB\n",
        report.keys,
        report.val_size_bytes,
        report.load_ms,
        report.load_keys_per_s,
        report
            .load_server_cpu_us_per_key
            .map_or("n/a".into(), |c| format!("{c:.1}")),
        report
            .rss_after_load_kib
            .iter()
            .map(|k| mib(*k))
            .collect::<Vec<_>>(),
        report.range_keys_asked,
        report.range_keys_returned,
        report.range_response_bytes / 1_000_000,
        report.range_ms,
        mib(report.range_member_rss_before_kib),
        mib(report.range_member_rss_after_kib),
        mib(report.range_member_peak_before_kib),
        mib(report.range_member_peak_after_kib),
    );
    if let Some(s) = &report.stream {
        table.push_str(&format!(
            "range stream: {} messages, {} keys, {} ms; answering member RSS {} -> {} MiB, peak {} -> {} MiB\n",
            s.messages,
            s.keys_returned,
            s.ms,
            mib(s.member_rss_before_kib),
            mib(s.member_rss_after_kib),
            mib(s.member_peak_before_kib),
            mib(s.member_peak_after_kib)
        ));
    }
    crate::print(cluster.output, &table, &report);
    Ok(())
}
