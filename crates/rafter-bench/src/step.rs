//! Stepped offered load (seed 004): the same workload offered at increasing
//! target rates, one fixed-length step each, reporting how many operations
//! completed in each second, which shows where the cluster stops keeping up.

use crate::args::{CasArgs, ClusterArgs, DataArgs, MixArgs, ReadArgs, StepArgs, StepWorkload};
use crate::report::{RunFigures, StepReport};
use crate::schedule::RunLength;
use crate::server_cpu;
use crate::workload::Workload;

/// Runs every step in order with the same clients (compare-and-swap memory
/// carries over) and prints the report.
pub async fn run(
    cluster: &ClusterArgs,
    data: &DataArgs,
    steps: &StepArgs,
    read: &ReadArgs,
    cas: &CasArgs,
    mix: &MixArgs,
) -> Result<(), String> {
    if let Some(rate) = steps.rates_ops_per_s.iter().find(|rate| **rate <= 0.0) {
        return Err(format!("--rates: {rate} is not a positive rate"));
    }
    let workload = match steps.workload {
        StepWorkload::Put => Workload::Put,
        StepWorkload::Get => Workload::Get(read.consistency),
        StepWorkload::TxnCas => Workload::TxnCas(cas.compare),
        StepWorkload::Mixed => Workload::Mixed {
            read_ratio: mix.read_ratio,
            consistency: read.consistency,
        },
    };
    let (mut workers, settings) = crate::setup::prepare(cluster, data, workload).await?;
    let pids = server_cpu::find_listeners(&cluster.endpoints);
    let mut figures = Vec::with_capacity(steps.rates_ops_per_s.len());
    for rate in &steps.rates_ops_per_s {
        let length = RunLength::For(steps.step_duration);
        let meter = server_cpu::CpuMeter::start(pids.clone());
        let (returned, result) = crate::runner::run(workers, length, Some(*rate)).await;
        let cpu = meter.finish(result.recorder.all_latency_us().len());
        workers = returned;
        figures.push(RunFigures::of(&result, workload, Some(*rate), cpu));
    }
    let report = StepReport {
        settings,
        step_duration_ms: steps.step_duration.as_millis() as u64,
        steps: figures,
    };
    crate::print(cluster.output, &report.table(), &report);
    Ok(())
}
