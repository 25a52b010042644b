//! Judging a simulation: invariant violations seen during the run, plus the
//! linearizability of the client history (each key a register with put, get
//! and compare-and-swap, checked by `checker` with a step budget so a seed's
//! verdict is the same on every machine).

use crate::checker::register::{Register, RegisterInput, RegisterOutput};
use crate::checker::{check, Budget, CheckResult, Operation};
use crate::sim::history::{HistoryOp, OpKind, OpResult};
use crate::sim::Outcome;

/// Search steps the checker may spend on one run's history.
const STEP_BUDGET: u64 = 20_000_000;

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

fn to_operation(op: &HistoryOp) -> Operation<RegisterInput<u8, u64>, RegisterOutput<u64>> {
    let input = match &op.kind {
        OpKind::Put { key, value } => RegisterInput::Put {
            key: *key,
            value: *value,
        },
        OpKind::Get { key } => RegisterInput::Get { key: *key },
        OpKind::Cas { key, expected, new } => RegisterInput::Cas {
            key: *key,
            expected: *expected,
            new: *new,
        },
    };
    let output = op.result.as_ref().map(|r| match r {
        OpResult::Put => RegisterOutput::Put,
        OpResult::Get(v) => RegisterOutput::Get(*v),
        OpResult::Cas(ok) => RegisterOutput::Cas(*ok),
    });
    Operation {
        client_id: op.client,
        input,
        output,
        call_ns: op.call_ms * 1_000_000,
        return_ns: op.return_ms.map_or(u64::MAX, |r| r * 1_000_000),
    }
}

/// Checks a run's invariants and history.
pub fn verdict(outcome: &Outcome) -> Verdict {
    let mut problems = outcome.violations.clone();
    let history: Vec<_> = outcome.history.iter().map(to_operation).collect();
    match check(&Register::new(), &history, Budget::steps(STEP_BUDGET)) {
        CheckResult::Ok => {}
        other => problems.push(format!("linearizability: {other}")),
    }
    Verdict {
        seed: outcome.seed,
        problems,
        ops: outcome.history.len(),
    }
}
