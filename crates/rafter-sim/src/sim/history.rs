//! What clients did and saw: the operation history the linearizability
//! checker judges (the operations themselves are defined with the rest of
//! the workload's vocabulary in `ops`).

pub use super::ops::{OpKind, OpResult};

/// One operation: `result == None` means indeterminate (timed out, or its
/// member crashed): it may or may not have taken effect.
#[derive(Debug, Clone)]
pub struct HistoryOp {
    pub client: usize,
    pub kind: OpKind,
    pub call_ms: u64,
    pub return_ms: Option<u64>,
    pub result: Option<OpResult>,
}
