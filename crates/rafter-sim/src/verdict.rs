//! Judging a simulation: invariant violations seen during the run, plus the
//! linearizability of the client history.

use crate::sim::linearize::{self, Linearizability};
use crate::sim::Outcome;

/// The judgement of one run.
#[derive(Debug)]
pub struct Verdict {
    pub seed: u64,
    pub problems: Vec<String>,
    pub ops: usize,
}

impl Verdict {
    pub fn is_ok(&self) -> bool {
        self.problems.is_empty()
    }
}

impl std::fmt::Display for Verdict {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.is_ok() {
            return write!(f, "seed {}: ok ({} operations)", self.seed, self.ops);
        }
        writeln!(f, "seed {}: FAILED", self.seed)?;
        for p in &self.problems {
            writeln!(f, "  {p}")?;
        }
        Ok(())
    }
}

/// Checks a run's invariants and history.
pub fn verdict(outcome: &Outcome) -> Verdict {
    let mut problems = outcome.violations.clone();
    match linearize::check(&outcome.history) {
        Linearizability::Ok => {}
        Linearizability::Violation(key, window) => {
            problems.push(format!("linearizability violated on key k{key}: {window}"))
        }
        Linearizability::Unknown(key) => problems.push(format!(
            "linearizability unknown on key k{key}: the checker's step budget ran out (never counted as ok)"
        )),
    }
    Verdict {
        seed: outcome.seed,
        problems,
        ops: outcome.history.len(),
    }
}
