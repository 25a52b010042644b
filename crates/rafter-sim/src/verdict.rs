//! Judging a simulation: invariant violations seen during the run (the
//! serializable-read check included), plus the linearizability of the
//! client history against etcd's key-value model (`checker::kv`). The
//! simulator's history holds every request that changed the store, from an
//! empty store, so the model counts revisions exactly over the whole history
//! (`Kv::whole_store`). Serializable reads are not linearizable and are left
//! to `Sim::finish`; here they become indeterminate reads, which constrain
//! nothing, so that operation numbers stay those of the history. The checker
//! runs with a step budget so a seed's verdict is the same on every machine.

use crate::checker::kv::{Kv, KvCompare, KvInput, KvOutput, KvTxnOp, KvTxnResult};
use crate::checker::{check, Budget, CheckResult, Operation};
use crate::sim::history::{HistoryOp, OpKind, OpResult};
use crate::sim::ops::{Guard, TxnOp, TxnResult};
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

type KvOp = Operation<KvInput<u8, u64>, KvOutput<u64>>;

fn txn_op(op: &TxnOp) -> KvTxnOp<u8, u64> {
    match *op {
        TxnOp::Put { key, value } => KvTxnOp::Put { key, value },
        TxnOp::Delete { key } => KvTxnOp::Delete { key },
        TxnOp::Get { key } => KvTxnOp::Get { key },
    }
}

fn txn_result(result: &TxnResult) -> KvTxnResult<u64> {
    match *result {
        TxnResult::Put => KvTxnResult::Put,
        TxnResult::Delete { deleted } => KvTxnResult::Delete { deleted },
        TxnResult::Get {
            value,
            mod_revision,
        } => KvTxnResult::Get {
            value,
            mod_revision,
        },
    }
}

fn input(kind: &OpKind) -> KvInput<u8, u64> {
    match kind {
        OpKind::Put { key, value } => KvInput::Put {
            key: *key,
            value: *value,
        },
        OpKind::Get { key } | OpKind::SerialGet { key } => KvInput::Get { key: *key },
        OpKind::Scan { keys } => KvInput::Range {
            keys: (0..*keys).collect(),
        },
        OpKind::Delete { key } => KvInput::Delete { key: *key },
        OpKind::Cas { key, expected, new } => KvInput::TxnCas {
            key: *key,
            // The request compares the version with 0 for "absent", which
            // is the same test as a mod revision of 0.
            compare: expected.map_or(KvCompare::ModRevision(0), KvCompare::Value),
            value: *new,
        },
        OpKind::Txn {
            guard,
            success,
            failure,
        } => {
            let compare = match *guard {
                Guard::Value { key, value } => (key, KvCompare::Value(value)),
                Guard::ModRevision { key, revision } => (key, KvCompare::ModRevision(revision)),
            };
            KvInput::Txn {
                compare: vec![compare],
                success: success.iter().map(txn_op).collect(),
                failure: failure.iter().map(txn_op).collect(),
            }
        }
    }
}

/// The answer in the model's terms, or why it cannot be one.
fn output(kind: &OpKind, result: &OpResult) -> Result<KvOutput<u64>, String> {
    Ok(match (kind, result) {
        (_, OpResult::Put { revision }) => KvOutput::Put {
            revision: *revision,
        },
        (
            _,
            OpResult::Get {
                value,
                mod_revision,
                revision,
            },
        ) => KvOutput::Get {
            value: *value,
            mod_revision: *mod_revision,
            revision: Some(*revision),
        },
        (OpKind::Scan { keys }, OpResult::Scan { revision, kvs }) => {
            if let Some((key, ..)) = kvs.iter().find(|(key, ..)| key >= keys) {
                return Err(format!("a scan returned k{key}, which was never written"));
            }
            let mut reads = vec![(None, 0); usize::from(*keys)];
            for &(key, value, mod_revision) in kvs {
                reads[usize::from(key)] = (Some(value), mod_revision);
            }
            KvOutput::Range {
                revision: Some(*revision),
                reads,
            }
        }
        (_, OpResult::Scan { .. }) => unreachable!("only scans answer with a scan"),
        (_, OpResult::Delete { deleted, revision }) => KvOutput::Delete {
            deleted: *deleted,
            revision: *revision,
        },
        (
            _,
            OpResult::Cas {
                succeeded,
                revision,
            },
        ) => KvOutput::TxnCas {
            succeeded: *succeeded,
            revision: *revision,
        },
        (
            _,
            OpResult::Txn {
                succeeded,
                revision,
                results,
            },
        ) => KvOutput::Txn {
            succeeded: *succeeded,
            revision: *revision,
            results: results.iter().map(txn_result).collect(),
        },
    })
}

fn to_operation(op: &HistoryOp, problems: &mut Vec<String>) -> KvOp {
    let output = match &op.result {
        // Serializable reads are checked in `Sim::finish`.
        Some(_) if op.kind.is_serializable() => None,
        Some(result) => output(&op.kind, result)
            .map_err(|e| problems.push(format!("client {} at {} ms: {e}", op.client, op.call_ms)))
            .ok(),
        None => None,
    };
    Operation {
        client_id: op.client,
        input: input(&op.kind),
        output,
        call_ns: op.call_ms * 1_000_000,
        return_ns: op.return_ms.map_or(u64::MAX, |r| r * 1_000_000),
    }
}

/// Checks a run's invariants and history.
pub fn verdict(outcome: &Outcome) -> Verdict {
    let mut problems = outcome.violations.clone();
    let history: Vec<_> = outcome
        .history
        .iter()
        .map(|op| to_operation(op, &mut problems))
        .collect();
    // The model refuses (panics on) an answer no execution of the operation
    // could give, such as a put answered with a transaction's result: that
    // is a wrong answer, reported like any other.
    // Mixed runs were checked in revision order by the simulator.
    let checked = if outcome.checked_by_revision {
        Ok(CheckResult::Ok)
    } else {
        std::panic::catch_unwind(|| check(&Kv::whole_store(), &history, Budget::steps(STEP_BUDGET)))
    };
    match checked {
        Ok(CheckResult::Ok) => {}
        Ok(other) => problems.push(format!("linearizability: {other}")),
        Err(panic) => {
            let why = panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_else(|| "unknown".to_string());
            problems.push(format!(
                "linearizability: an answer no execution allows: {why}"
            ));
        }
    }
    Verdict {
        seed: outcome.seed,
        problems,
        ops: outcome.history.len(),
    }
}
