//! When each operation of a run may start: the run's length (a number of
//! operations or a duration) and, with `--rate`, a fixed interval between
//! operation start times shared by all clients. Operation n is due at
//! `start + n / rate` whichever client takes it, so the offered load does not
//! slow down when the servers do (open loop) as long as a client is free.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::time::Instant;

/// How long a run lasts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunLength {
    /// This many operations in total.
    Ops(u64),
    /// Operations start until this much time has passed.
    For(Duration),
}

/// The shared ticket counter of one run.
#[derive(Debug)]
pub struct Schedule {
    start: Instant,
    length: RunLength,
    interval: Option<Duration>,
    next_ticket: AtomicU64,
}

impl Schedule {
    /// A schedule starting now; `rate_ops_per_s` of `None` means as fast as
    /// the clients go.
    pub fn new(length: RunLength, rate_ops_per_s: Option<f64>) -> Self {
        Self {
            start: Instant::now(),
            length,
            interval: rate_ops_per_s
                .filter(|rate| *rate > 0.0)
                .map(|rate| Duration::from_secs_f64(1.0 / rate)),
            next_ticket: AtomicU64::new(0),
        }
    }

    /// When the run started.
    pub fn start(&self) -> Instant {
        self.start
    }

    /// Takes the next operation: the instant it is due, or `None` when the
    /// run is over.
    pub fn take(&self) -> Option<Instant> {
        let ticket = self.next_ticket.fetch_add(1, Ordering::Relaxed);
        if let RunLength::Ops(total) = self.length {
            if ticket >= total {
                return None;
            }
        }
        let due = match self.interval {
            Some(interval) => self.start + interval.mul_f64(ticket as f64),
            None => Instant::now(),
        };
        if let RunLength::For(duration) = self.length {
            if due.max(Instant::now()) >= self.start + duration {
                return None;
            }
        }
        Some(due)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn an_op_count_hands_out_exactly_that_many_tickets() {
        let schedule = Schedule::new(RunLength::Ops(3), None);
        assert_eq!((0..10).filter_map(|_| schedule.take()).count(), 3);
    }

    #[tokio::test(start_paused = true)]
    async fn a_rate_spaces_due_times_and_a_duration_ends_the_run() {
        let schedule = Schedule::new(RunLength::For(Duration::from_secs(1)), Some(10.0));
        let due: Vec<Instant> = std::iter::from_fn(|| schedule.take()).collect();
        assert_eq!(due.len(), 10);
        assert_eq!(due[1] - due[0], Duration::from_millis(100));
    }
}
