//! `rafter bench dial-set`: what a local write (`Set(consistent=false)`:
//! acknowledged after one fsync on the receiving member, replicated
//! afterwards) costs next to a consistent one (acknowledged once a
//! majority committed it), with a healthy quorum: seed 004's PACELC "else
//! latency" choice, measured. Rafter only (the dial service).
//!
//! One phase per consistency, each for `--duration`: `--clients` writers
//! set random keys under `--prefix` through `rafter-client`, each with one
//! request in flight; reported per phase: sets per second, latency
//! percentiles, errors, and server CPU per set.

use std::sync::{Arc, Mutex};

use rafter_client::{Client, Consistency, Wait};
use serde::Serialize;
use tokio::time::Instant;

use crate::args::{ClusterArgs, DataArgs, DialArgs, DialMode};
use crate::cache::Tally;
use crate::report::{ms, Latency};
use crate::rng::Rng;
use crate::server_cpu;

#[derive(Debug, Serialize)]
struct PhaseFigures {
    consistency: String,
    sets: u64,
    errors: u64,
    sets_per_s: f64,
    latency: Latency,
    server_cpu_us_per_set: f64,
}

#[derive(Debug, Serialize)]
struct DialReport {
    endpoints: Vec<String>,
    clients: usize,
    value_size_bytes: usize,
    phases: Vec<PhaseFigures>,
}

pub async fn run(cluster: &ClusterArgs, data: &DataArgs, args: &DialArgs) -> Result<(), String> {
    if cluster.clients == 0 || data.key_space_keys == 0 {
        return Err("--clients and --key-space must be at least 1".into());
    }
    let server_pids = server_cpu::find_listeners(&cluster.endpoints);
    let client = Client::connect(&cluster.endpoints)
        .await
        .map_err(|e| format!("connect: {e}"))?;
    let value = vec![b'v'; data.val_size_bytes];
    let mut phases = Vec::new();
    for mode in &args.modes {
        let consistency = match mode {
            DialMode::Consistent => Consistency::Consistent,
            DialMode::Local => Consistency::Local,
        };
        eprintln!(
            "phase {}: {} clients for {:?}",
            mode.label(),
            cluster.clients,
            args.duration
        );
        let tallies = Arc::new(Mutex::new(Vec::new()));
        let cpu_before = server_cpu::total_cpu(&server_pids);
        let started = Instant::now();
        let end = started + args.duration;
        let mut tasks = Vec::new();
        for slot in 0..cluster.clients {
            let client = client.clone();
            let value = value.clone();
            let tallies = tallies.clone();
            let prefix = args.prefix.clone();
            let keys = data.key_space_keys;
            let timeout = cluster.request_timeout;
            tasks.push(tokio::spawn(async move {
                let mut rng = Rng::new(slot as u64 + 7);
                let mut tally = Tally::new();
                while Instant::now() < end {
                    let key = format!("{prefix}{}", rng.below(keys));
                    let t = Instant::now();
                    let answer = client
                        .set_with(key.as_bytes(), &value, consistency, Wait::For(timeout))
                        .await;
                    match answer {
                        Ok(a) if a.valid => tally.record(t.elapsed()),
                        _ => tally.errors += 1,
                    }
                }
                tallies.lock().expect("tallies").push(tally);
            }));
        }
        for task in tasks {
            task.await.map_err(|e| format!("a writer: {e}"))?;
        }
        let elapsed = started.elapsed();
        let cpu = server_cpu::total_cpu(&server_pids).saturating_sub(cpu_before);
        let all = Tally::merge(tallies.lock().expect("tallies").iter());
        phases.push(PhaseFigures {
            consistency: mode.label().to_string(),
            sets: all.reads,
            errors: all.errors,
            sets_per_s: all.reads as f64 / elapsed.as_secs_f64(),
            latency: Latency::of(&all.histogram),
            server_cpu_us_per_set: cpu.as_micros() as f64 / all.reads.max(1) as f64,
        });
    }
    let report = DialReport {
        endpoints: cluster.endpoints.clone(),
        clients: cluster.clients,
        value_size_bytes: data.val_size_bytes,
        phases,
    };
    let mut table = format!(
        "dial sets: {} clients, {} B values, endpoints {}\n\
         consistency   sets/s   p50 ms   p90 ms   p99 ms   max ms  errors  server CPU us/set\n",
        report.clients,
        report.value_size_bytes,
        report.endpoints.join(",")
    );
    for p in &report.phases {
        table.push_str(&format!(
            "{:<12} {:>7.0} {:>8} {:>8} {:>8} {:>8} {:>7} {:>18.1}\n",
            p.consistency,
            p.sets_per_s,
            ms(p.latency.p50_us as f64),
            ms(p.latency.p90_us as f64),
            ms(p.latency.p99_us as f64),
            ms(p.latency.max_us as f64),
            p.errors,
            p.server_cpu_us_per_set
        ));
    }
    crate::print(cluster.output, &table, &report);
    Ok(())
}
