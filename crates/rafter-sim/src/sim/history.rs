//! What clients did and saw: the operation history the linearizability
//! checker judges, plus a text trace of every event used to prove that a
//! seed replays byte for byte.

/// A client operation on the single-key register each key is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OpKind {
    Put {
        key: u8,
        value: u64,
    },
    Get {
        key: u8,
    },
    /// Compare-and-swap: set `new` iff the current value is `expected`
    /// (`None` = key absent).
    Cas {
        key: u8,
        expected: Option<u64>,
        new: u64,
    },
}

impl OpKind {
    pub fn key(&self) -> u8 {
        match self {
            OpKind::Put { key, .. } | OpKind::Get { key } | OpKind::Cas { key, .. } => *key,
        }
    }
}

/// What the operation returned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OpResult {
    Put,
    Get(Option<u64>),
    Cas(bool),
}

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
