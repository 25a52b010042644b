//! The checker's view of a history: what each client asked, what it was told
//! (if anything), and when. Kept independent of the simulator's own types so
//! that histories from any source (simulator, real cluster, hand-made tests)
//! can be checked.

/// One client operation.
///
/// `output == None` marks an indeterminate operation (the client timed out,
/// or its server crashed): it may have taken effect at any moment after
/// `call_ns`, even after the client gave up, or never. The checker ignores
/// `return_ns` for such operations except when displaying them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Operation<I, O> {
    pub client_id: usize,
    pub input: I,
    pub output: Option<O>,
    pub call_ns: u64,
    /// When the answer arrived; for an indeterminate operation, when the
    /// client gave up (or `u64::MAX` if unknown).
    pub return_ns: u64,
}

impl<I, O> Operation<I, O> {
    /// An operation that completed with `output`.
    pub fn ok(client_id: usize, call_ns: u64, return_ns: u64, input: I, output: O) -> Self {
        Operation {
            client_id,
            input,
            output: Some(output),
            call_ns,
            return_ns,
        }
    }

    /// An operation whose outcome was never learned: it may or may not have
    /// taken effect. `gave_up_ns` is only used for display.
    pub fn indeterminate(client_id: usize, call_ns: u64, gave_up_ns: u64, input: I) -> Self {
        Operation {
            client_id,
            input,
            output: None,
            call_ns,
            return_ns: gave_up_ns,
        }
    }

    pub fn is_determinate(&self) -> bool {
        self.output.is_some()
    }
}

/// Panics unless every completed operation returns no earlier than it was
/// called: a history that violates this is a bug in whatever recorded it.
pub(crate) fn assert_well_formed<I, O>(history: &[Operation<I, O>]) {
    for (index, op) in history.iter().enumerate() {
        assert!(
            !op.is_determinate() || op.call_ns <= op.return_ns,
            "operation #{index} returns at {} ns, before its call at {} ns",
            op.return_ns,
            op.call_ns
        );
    }
}
