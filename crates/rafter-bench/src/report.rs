//! Turning measurements into the two outputs: an aligned table for people
//! and one JSON line for scripts (latencies in microseconds, rates in
//! operations per second), printed last so `tail -n 1` finds it.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use hdrhistogram::Histogram;
use serde::Serialize;

use crate::runner::RunResult;
use crate::server_cpu::CpuFigures;
use crate::workload::{OpKind, Workload};

/// The settings a figure was measured with, repeated in every report.
#[derive(Debug, Clone, Serialize)]
pub struct Settings {
    pub workload: String,
    pub endpoints: Vec<String>,
    pub conns: usize,
    pub clients: usize,
    pub key_size_bytes: usize,
    pub val_size_bytes: usize,
    pub key_space_keys: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub consistency: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cas_on: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub read_ratio: Option<f64>,
    /// Watches (watch workload).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub watchers: Option<usize>,
    /// gRPC Watch streams the watches share (watch workload).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub watch_streams: Option<usize>,
}

/// Latency percentiles of successful operations, in microseconds.
#[derive(Debug, Clone, Serialize)]
pub struct Latency {
    pub p50_us: u64,
    pub p90_us: u64,
    pub p99_us: u64,
    pub max_us: u64,
    pub mean_us: f64,
}

impl Latency {
    pub fn of(histogram: &Histogram<u64>) -> Self {
        Self {
            p50_us: histogram.value_at_quantile(0.50),
            p90_us: histogram.value_at_quantile(0.90),
            p99_us: histogram.value_at_quantile(0.99),
            max_us: histogram.max(),
            mean_us: (histogram.mean() * 10.0).round() / 10.0,
        }
    }
}

/// The figures of one kind of operation within a run.
#[derive(Debug, Clone, Serialize)]
pub struct OpFigures {
    pub op: OpKind,
    pub ops: u64,
    pub throughput_ops_per_s: f64,
    pub latency: Latency,
}

/// The figures of one run (or one step of a stepped run).
#[derive(Debug, Clone, Serialize)]
pub struct RunFigures {
    /// Successful operations.
    pub ops: u64,
    /// Failed operations.
    pub errors: u64,
    pub errors_by_code: BTreeMap<String, u64>,
    /// One message for each error code, to tell what went wrong.
    pub first_error_by_code: BTreeMap<String, String>,
    pub duration_ms: u64,
    pub throughput_ops_per_s: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target_rate_ops_per_s: Option<f64>,
    pub latency: Latency,
    pub by_op: Vec<OpFigures>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cas_swapped: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cas_conflicted: Option<u64>,
    /// Successful operations completed in each second of the run.
    pub ops_per_second: Vec<u64>,
    /// What the run cost the servers and the load generator, when the
    /// server processes run on this machine.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cpu: Option<CpuFigures>,
}

impl RunFigures {
    /// Summarises a run of `workload` offered at `target_rate_ops_per_s`.
    pub fn of(
        result: &RunResult,
        workload: Workload,
        target_rate_ops_per_s: Option<f64>,
        cpu: Option<CpuFigures>,
    ) -> Self {
        let recorder = &result.recorder;
        let elapsed_s = result.elapsed.as_secs_f64().max(f64::MIN_POSITIVE);
        let rate = |ops: u64| ((ops as f64 / elapsed_s) * 10.0).round() / 10.0;
        let all = recorder.all_latency_us();
        let by_op = OpKind::ALL
            .iter()
            .map(|kind| (kind, recorder.latency_us(*kind)))
            .filter(|(_, histogram)| !histogram.is_empty())
            .map(|(kind, histogram)| OpFigures {
                op: *kind,
                ops: histogram.len(),
                throughput_ops_per_s: rate(histogram.len()),
                latency: Latency::of(histogram),
            })
            .collect();
        let is_cas = matches!(workload, Workload::TxnCas(_));
        Self {
            ops: all.len(),
            errors: recorder.error_count(),
            errors_by_code: recorder.errors_by_code().clone(),
            first_error_by_code: recorder.first_error_by_code().clone(),
            duration_ms: result.elapsed.as_millis() as u64,
            throughput_ops_per_s: rate(all.len()),
            target_rate_ops_per_s,
            latency: Latency::of(&all),
            by_op,
            cas_swapped: is_cas.then(|| recorder.cas_swapped()),
            cas_conflicted: is_cas.then(|| recorder.cas_conflicted()),
            ops_per_second: recorder.ops_per_second().to_vec(),
            cpu,
        }
    }
}

/// The report of a single run.
#[derive(Debug, Clone, Serialize)]
pub struct RunReport {
    pub settings: Settings,
    #[serde(flatten)]
    pub figures: RunFigures,
}

/// The report of a stepped-load run.
#[derive(Debug, Clone, Serialize)]
pub struct StepReport {
    pub settings: Settings,
    pub step_duration_ms: u64,
    pub steps: Vec<RunFigures>,
}

/// Milliseconds with three decimals from microseconds.
pub fn ms(us: impl Into<f64>) -> String {
    format!("{:.3}", us.into() / 1000.0)
}

/// A one-line description of the settings.
pub fn settings_line(settings: &Settings) -> String {
    let mut line = format!(
        "{} against {} ({} conns, {} clients, key {} B, value {} B, key space {}",
        settings.workload,
        settings.endpoints.join(","),
        settings.conns,
        settings.clients,
        settings.key_size_bytes,
        settings.val_size_bytes,
        settings.key_space_keys
    );
    if let Some(consistency) = &settings.consistency {
        let _ = write!(line, ", consistency {consistency}");
    }
    if let Some(cas_on) = &settings.cas_on {
        let _ = write!(line, ", compare {cas_on}");
    }
    if let Some(read_ratio) = settings.read_ratio {
        let _ = write!(line, ", read ratio {read_ratio}");
    }
    if let (Some(watchers), Some(streams)) = (settings.watchers, settings.watch_streams) {
        let _ = write!(line, ", {watchers} watchers on {streams} streams");
    }
    line.push(')');
    line
}

/// Lines that follow a run's table: errors and compare-and-swap outcomes.
pub fn notes(figures: &RunFigures) -> String {
    let mut text = String::new();
    if !figures.errors_by_code.is_empty() {
        let codes: Vec<String> = figures
            .errors_by_code
            .iter()
            .map(|(code, count)| {
                let message = figures
                    .first_error_by_code
                    .get(code)
                    .map(String::as_str)
                    .unwrap_or_default();
                format!("{code}={count} (first: {message:?})")
            })
            .collect();
        let _ = writeln!(text, "errors: {}", codes.join(", "));
    }
    if let Some(cpu) = &figures.cpu {
        let rss_mib: Vec<String> = cpu
            .server_peak_rss_kib
            .iter()
            .map(|kib| (kib / 1024).to_string())
            .collect();
        let _ = writeln!(
            text,
            "CPU per op: servers {:.1} us ({} ms over pids {:?}), load generator {:.1} us; server peak RSS MiB: {}",
            cpu.server_cpu_us_per_op,
            cpu.server_cpu_ms,
            cpu.server_pids,
            cpu.load_generator_cpu_us_per_op,
            rss_mib.join(" / ")
        );
    }
    if let (Some(swapped), Some(conflicted)) = (figures.cas_swapped, figures.cas_conflicted) {
        let _ = writeln!(
            text,
            "compare-and-swap: {swapped} swapped, {conflicted} found the key changed"
        );
    }
    text
}

impl RunReport {
    /// The table for people.
    pub fn table(&self) -> String {
        let figures = &self.figures;
        let mut text = format!("{}\n", settings_line(&self.settings));
        let _ = writeln!(
            text,
            "{:<6} {:>9} {:>7} {:>11} {:>9} {:>9} {:>9} {:>9}",
            "op", "ops", "errors", "ops/s", "p50 ms", "p90 ms", "p99 ms", "max ms"
        );
        let row =
            |text: &mut String, name: &str, ops: u64, errors: String, rate: f64, l: &Latency| {
                let _ = writeln!(
                    text,
                    "{:<6} {:>9} {:>7} {:>11.1} {:>9} {:>9} {:>9} {:>9}",
                    name,
                    ops,
                    errors,
                    rate,
                    ms(l.p50_us as f64),
                    ms(l.p90_us as f64),
                    ms(l.p99_us as f64),
                    ms(l.max_us as f64)
                );
            };
        for op in &figures.by_op {
            row(
                &mut text,
                op.op.name(),
                op.ops,
                String::new(),
                op.throughput_ops_per_s,
                &op.latency,
            );
        }
        row(
            &mut text,
            "total",
            figures.ops,
            figures.errors.to_string(),
            figures.throughput_ops_per_s,
            &figures.latency,
        );
        let _ = writeln!(text, "duration: {} ms", figures.duration_ms);
        text.push_str(&notes(figures));
        text
    }
}

impl StepReport {
    /// The table for people: one row per step with its per-second series.
    pub fn table(&self) -> String {
        let mut text = format!(
            "stepped load, {} ms per step: {}\n",
            self.step_duration_ms,
            settings_line(&self.settings)
        );
        let _ = writeln!(
            text,
            "{:>13} {:>14} {:>7} {:>9} {:>9} {:>9}  achieved ops in each second",
            "offered ops/s", "achieved ops/s", "errors", "p50 ms", "p99 ms", "max ms"
        );
        for step in &self.steps {
            let series: Vec<String> = step.ops_per_second.iter().map(u64::to_string).collect();
            let _ = writeln!(
                text,
                "{:>13} {:>14.1} {:>7} {:>9} {:>9} {:>9}  {}",
                step.target_rate_ops_per_s.unwrap_or_default(),
                step.throughput_ops_per_s,
                step.errors,
                ms(step.latency.p50_us as f64),
                ms(step.latency.p99_us as f64),
                ms(step.latency.max_us as f64),
                series.join(" ")
            );
        }
        for step in &self.steps {
            text.push_str(&notes(step));
        }
        text
    }
}
