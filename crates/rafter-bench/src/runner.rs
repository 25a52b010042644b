//! Running a workload: each client is a task that takes operations from the
//! shared [`Schedule`], waits until each is due, issues it and records the
//! answer in its own [`Recorder`]; the recorders are merged at the end.

use std::time::Duration;

use tokio::time::Instant;

use crate::schedule::{RunLength, Schedule};
use crate::stats::Recorder;
use crate::workload::Worker;

/// What one run measured.
#[derive(Debug)]
pub struct RunResult {
    /// Merged measurements of all clients.
    pub recorder: Recorder,
    /// From the start of the run until its last answer.
    pub elapsed: Duration,
}

/// Runs `workers` concurrently for `length` at `rate_ops_per_s` (unlimited
/// when `None`). The workers are handed back, keeping what they learned
/// (compare-and-swap revisions) for a following run.
pub async fn run(
    workers: Vec<Worker>,
    length: RunLength,
    rate_ops_per_s: Option<f64>,
) -> (Vec<Worker>, RunResult) {
    let schedule = std::sync::Arc::new(Schedule::new(length, rate_ops_per_s));
    let tasks: Vec<_> = workers
        .into_iter()
        .map(|worker| tokio::spawn(client_loop(worker, schedule.clone())))
        .collect();
    let mut workers = Vec::with_capacity(tasks.len());
    let mut recorder = Recorder::new();
    for task in tasks {
        let (worker, client_recorder) = task.await.expect("a benchmark client panicked");
        recorder.merge(&client_recorder);
        workers.push(worker);
    }
    let elapsed = schedule.start().elapsed();
    (workers, RunResult { recorder, elapsed })
}

/// One client: operations back to back (or when due) until the run is over.
async fn client_loop(mut worker: Worker, schedule: std::sync::Arc<Schedule>) -> (Worker, Recorder) {
    let mut recorder = Recorder::new();
    while let Some(due) = schedule.take() {
        tokio::time::sleep_until(due).await;
        let sent = Instant::now();
        let (kind, result) = worker.run_one().await;
        let answered = Instant::now();
        recorder.record(kind, &result, answered - sent, answered - schedule.start());
    }
    (worker, recorder)
}
