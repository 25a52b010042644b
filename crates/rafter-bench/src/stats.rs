//! What a run measured: latency histograms (HDR, microseconds) per kind of
//! operation, error counts by gRPC code, compare-and-swap outcomes and
//! completions per second. Each client records into its own [`Recorder`]
//! (no shared lock on the hot path); the run merges them at the end.

use std::collections::BTreeMap;
use std::time::Duration;

use hdrhistogram::Histogram;

use crate::workload::{OpKind, OpOutcome};

/// Largest latency the histograms track exactly: one minute.
const MAX_TRACKED_LATENCY_US: u64 = 60_000_000;
/// Significant decimal digits kept by the histograms.
const HISTOGRAM_SIGNIFICANT_DIGITS: u8 = 3;

/// Measurements of one client, or of a whole run once merged.
#[derive(Debug, Clone)]
pub struct Recorder {
    latency_us: Vec<Histogram<u64>>,
    errors_by_code: BTreeMap<String, u64>,
    first_error_by_code: BTreeMap<String, String>,
    cas_swapped: u64,
    cas_conflicted: u64,
    ops_per_second: Vec<u64>,
}

impl Default for Recorder {
    fn default() -> Self {
        Self::new()
    }
}

impl Recorder {
    /// Empty measurements.
    pub fn new() -> Self {
        let histogram = || {
            Histogram::new_with_bounds(1, MAX_TRACKED_LATENCY_US, HISTOGRAM_SIGNIFICANT_DIGITS)
                .expect("valid histogram bounds")
        };
        Self {
            latency_us: OpKind::ALL.iter().map(|_| histogram()).collect(),
            errors_by_code: BTreeMap::new(),
            first_error_by_code: BTreeMap::new(),
            cas_swapped: 0,
            cas_conflicted: 0,
            ops_per_second: Vec::new(),
        }
    }

    /// Records one answered or failed operation that took `latency` and
    /// completed `since_start` after the run began.
    pub fn record(
        &mut self,
        kind: OpKind,
        result: &Result<OpOutcome, tonic::Status>,
        latency: Duration,
        since_start: Duration,
    ) {
        match result {
            Ok(outcome) => {
                let latency_us = u64::try_from(latency.as_micros()).unwrap_or(u64::MAX);
                self.latency_us[kind.index()].saturating_record(latency_us.max(1));
                match outcome {
                    OpOutcome::Done => {}
                    OpOutcome::Swapped => self.cas_swapped += 1,
                    OpOutcome::Conflicted => self.cas_conflicted += 1,
                }
                let second = since_start.as_secs() as usize;
                if self.ops_per_second.len() <= second {
                    self.ops_per_second.resize(second + 1, 0);
                }
                self.ops_per_second[second] += 1;
            }
            Err(status) => {
                let code = format!("{:?}", status.code());
                self.first_error_by_code
                    .entry(code.clone())
                    .or_insert_with(|| status.message().to_string());
                *self.errors_by_code.entry(code).or_default() += 1;
            }
        }
    }

    /// Adds another client's measurements to these.
    pub fn merge(&mut self, other: &Recorder) {
        for (mine, theirs) in self.latency_us.iter_mut().zip(&other.latency_us) {
            mine.add(theirs).expect("histograms with equal bounds");
        }
        for (code, count) in &other.errors_by_code {
            *self.errors_by_code.entry(code.clone()).or_default() += count;
        }
        for (code, message) in &other.first_error_by_code {
            self.first_error_by_code
                .entry(code.clone())
                .or_insert_with(|| message.clone());
        }
        self.cas_swapped += other.cas_swapped;
        self.cas_conflicted += other.cas_conflicted;
        if self.ops_per_second.len() < other.ops_per_second.len() {
            self.ops_per_second.resize(other.ops_per_second.len(), 0);
        }
        for (mine, theirs) in self.ops_per_second.iter_mut().zip(&other.ops_per_second) {
            *mine += theirs;
        }
    }

    /// Latencies of successful operations of one kind.
    pub fn latency_us(&self, kind: OpKind) -> &Histogram<u64> {
        &self.latency_us[kind.index()]
    }

    /// Latencies of all successful operations.
    pub fn all_latency_us(&self) -> Histogram<u64> {
        let mut all = self.latency_us[0].clone();
        for histogram in &self.latency_us[1..] {
            all.add(histogram).expect("histograms with equal bounds");
        }
        all
    }

    /// Failed operations by gRPC code name.
    pub fn errors_by_code(&self) -> &BTreeMap<String, u64> {
        &self.errors_by_code
    }

    /// One error message for each gRPC code seen, to tell what went wrong.
    pub fn first_error_by_code(&self) -> &BTreeMap<String, String> {
        &self.first_error_by_code
    }

    /// Failed operations.
    pub fn error_count(&self) -> u64 {
        self.errors_by_code.values().sum()
    }

    /// Compare-and-swap transactions whose compare held.
    pub fn cas_swapped(&self) -> u64 {
        self.cas_swapped
    }

    /// Compare-and-swap transactions whose compare failed.
    pub fn cas_conflicted(&self) -> u64 {
        self.cas_conflicted
    }

    /// Successful operations completed in each second of the run.
    pub fn ops_per_second(&self) -> &[u64] {
        &self.ops_per_second
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merge_adds_counts_histograms_and_series() {
        let mut a = Recorder::new();
        let mut b = Recorder::new();
        let ms = Duration::from_millis;
        a.record(OpKind::Put, &Ok(OpOutcome::Done), ms(2), ms(100));
        b.record(OpKind::Put, &Ok(OpOutcome::Done), ms(4), ms(1500));
        b.record(OpKind::Txn, &Ok(OpOutcome::Conflicted), ms(4), ms(1500));
        b.record(
            OpKind::Get,
            &Err(tonic::Status::unavailable("down")),
            ms(1),
            ms(1600),
        );
        a.merge(&b);
        assert_eq!(a.latency_us(OpKind::Put).len(), 2);
        assert_eq!(a.all_latency_us().len(), 3);
        assert_eq!(a.error_count(), 1);
        assert_eq!(a.errors_by_code().get("Unavailable"), Some(&1));
        assert_eq!(
            a.first_error_by_code()
                .get("Unavailable")
                .map(String::as_str),
            Some("down")
        );
        assert_eq!(a.cas_conflicted(), 1);
        assert_eq!(a.ops_per_second(), &[1, 2]);
    }
}
