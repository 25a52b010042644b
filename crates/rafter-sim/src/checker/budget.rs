//! How long the checker may search before it gives up and answers
//! `Unknown`. Linearizability checking is NP-complete, so a pathological
//! history must not hang a test run; giving up never counts as a pass.
//!
//! A wall-clock limit is what people want interactively; a step limit is
//! what a deterministic simulator wants (the same seed must give the same
//! verdict on any machine). Either or both can be set.

use std::time::{Duration, Instant};

/// Limits for one `check` call, shared by all its partitions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Budget {
    pub time: Option<Duration>,
    /// Search steps (attempts to linearize an operation, or backtracks).
    pub steps: Option<u64>,
}

impl Budget {
    pub fn time(limit: Duration) -> Self {
        Budget {
            time: Some(limit),
            steps: None,
        }
    }

    pub fn steps(limit: u64) -> Self {
        Budget {
            time: None,
            steps: Some(limit),
        }
    }

    pub fn unlimited() -> Self {
        Budget {
            time: None,
            steps: None,
        }
    }
}

impl From<Duration> for Budget {
    fn from(limit: Duration) -> Self {
        Budget::time(limit)
    }
}

/// How often (in steps) the clock is read: reading it costs more than a step.
const CLOCK_EVERY: u64 = 256;

/// A budget being spent.
#[derive(Debug)]
pub(crate) struct Meter {
    deadline: Option<Instant>,
    steps_left: Option<u64>,
    steps: u64,
    exhausted: bool,
}

impl Meter {
    pub(crate) fn start(budget: Budget) -> Self {
        let now = Instant::now();
        Meter {
            // A limit too far away to represent is no limit.
            deadline: budget.time.and_then(|t| now.checked_add(t)),
            steps_left: budget.steps,
            steps: 0,
            exhausted: false,
        }
    }

    /// Accounts for one step; false once the budget is spent (and from then
    /// on).
    pub(crate) fn step(&mut self) -> bool {
        if self.exhausted {
            return false;
        }
        self.steps += 1;
        if let Some(left) = self.steps_left.as_mut() {
            if *left == 0 {
                self.exhausted = true;
                return false;
            }
            *left -= 1;
        }
        if self.steps.is_multiple_of(CLOCK_EVERY) {
            return self.check_clock();
        }
        true
    }

    /// Reads the clock now; false if the deadline has passed.
    pub(crate) fn check_clock(&mut self) -> bool {
        if let Some(deadline) = self.deadline {
            if Instant::now() >= deadline {
                self.exhausted = true;
            }
        }
        !self.exhausted
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_step_budget_runs_out_exactly_and_stays_out() {
        let mut meter = Meter::start(Budget::steps(3));
        assert!(meter.step() && meter.step() && meter.step());
        assert!(!meter.step());
        assert!(!meter.step());
        assert!(!meter.check_clock());
    }

    #[test]
    fn a_zero_time_budget_is_spent_at_the_first_clock_reading() {
        let mut meter = Meter::start(Budget::time(Duration::ZERO));
        assert!(!meter.check_clock());
        let mut unlimited = Meter::start(Budget::unlimited());
        assert!((0..1000).all(|_| unlimited.step()));
    }
}
