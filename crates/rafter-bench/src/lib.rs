//! `rafter bench`: a load generator that speaks the etcd v3 gRPC API, so the
//! same command measures etcd and Rafter. Workloads: put, get (linearizable
//! or serializable), compare-and-swap transactions, mixed reads and writes,
//! stepped offered load (seed 004), watch delivery to many watchers
//! (`watch`), keeping many leases alive (`lease`), consistent reads through
//! the client cache against direct gets (`cache`) and leader failover
//! (`election`), defragmentation under load (`defrag`) and large data
//! (`large`: a million keys and a 100,000-key range).
//! Reports a table for people and one JSON line for scripts with
//! throughput, HDR latency percentiles and errors.

mod args;
mod cache;
mod cdf;
mod conn;
mod defrag;
pub mod demo;
mod dial;
mod duration;
mod election;
mod election_messages;
mod keys;
mod large;
mod lease;
mod local_cluster;
pub mod peer_proxy;
mod png;
mod preload;
mod report;
mod rng;
mod runner;
mod schedule;
mod server_cpu;
mod setup;
mod stats;
mod step;
mod watch;
mod workload;

pub use args::BenchCommand;

use args::{BenchWorkload, ClusterArgs, DataArgs, LengthArgs, OutputFormat};
use report::{RunFigures, RunReport};
use schedule::RunLength;
use workload::Workload;

/// Operations of a run given neither `--total` nor `--duration`.
const DEFAULT_TOTAL_OPS: u64 = 10_000;

/// Runs a benchmark command and returns the process exit code: 0 when the
/// run completed (failed operations are reported, not fatal), 1 when it
/// could not run (bad flags, unreachable endpoints, failed preload).
pub fn run(command: BenchCommand) -> i32 {
    let runtime = tokio::runtime::Runtime::new().expect("start the tokio runtime");
    match runtime.block_on(execute(command)) {
        Ok(()) => 0,
        Err(message) => {
            eprintln!("rafter bench: {message}");
            1
        }
    }
}

async fn execute(command: BenchCommand) -> Result<(), String> {
    match command.workload {
        BenchWorkload::Put {
            cluster,
            data,
            length,
        } => single(&cluster, &data, &length, Workload::Put).await,
        BenchWorkload::Get {
            cluster,
            data,
            length,
            read,
        } => single(&cluster, &data, &length, Workload::Get(read.consistency)).await,
        BenchWorkload::TxnCas {
            cluster,
            data,
            length,
            cas,
        } => single(&cluster, &data, &length, Workload::TxnCas(cas.compare)).await,
        BenchWorkload::Mixed {
            cluster,
            data,
            length,
            read,
            mix,
        } => {
            let workload = Workload::Mixed {
                read_ratio: mix.read_ratio,
                consistency: read.consistency,
            };
            single(&cluster, &data, &length, workload).await
        }
        BenchWorkload::Step {
            cluster,
            data,
            steps,
            read,
            cas,
            mix,
        } => step::run(&cluster, &data, &steps, &read, &cas, &mix).await,
        BenchWorkload::Watch {
            cluster,
            data,
            watch,
        } => watch::run(&cluster, &data, &watch).await,
        BenchWorkload::Cache {
            cluster,
            data,
            cache,
        } => cache::run(&cluster, &data, &cache).await,
        BenchWorkload::DialSet {
            cluster,
            data,
            dial,
        } => dial::run(&cluster, &data, &dial).await,
        BenchWorkload::Lease { cluster, lease } => lease::run(&cluster, &lease).await,
        BenchWorkload::Large {
            cluster,
            data,
            large,
        } => large::run(&cluster, &data, &large).await,
        BenchWorkload::Election(args) => election::run(&args).await,
        BenchWorkload::Defrag(args) => defrag::run(args).await,
    }
}

/// One measured run of `workload`.
async fn single(
    cluster: &ClusterArgs,
    data: &DataArgs,
    length: &LengthArgs,
    workload: Workload,
) -> Result<(), String> {
    let run_length = match (length.total_ops, length.duration) {
        (_, Some(duration)) => RunLength::For(duration),
        (Some(total_ops), None) => RunLength::Ops(total_ops),
        (None, None) => RunLength::Ops(DEFAULT_TOTAL_OPS),
    };
    let (workers, settings) = setup::prepare(cluster, data, workload).await?;
    let meter = server_cpu::CpuMeter::start(server_cpu::find_listeners(&cluster.endpoints));
    let (_, result) = runner::run(workers, run_length, length.rate_ops_per_s).await;
    let cpu = meter.finish(result.recorder.all_latency_us().len());
    let report = RunReport {
        settings,
        figures: RunFigures::of(&result, workload, length.rate_ops_per_s, cpu),
    };
    print(cluster.output, &report.table(), &report);
    Ok(())
}

/// Prints the table and/or the JSON line, as `--output` asks.
fn print(output: OutputFormat, table: &str, report: &impl serde::Serialize) {
    if output != OutputFormat::Json {
        print!("{table}");
    }
    if output != OutputFormat::Table {
        println!(
            "{}",
            serde_json::to_string(report).expect("reports serialise to JSON")
        );
    }
}
