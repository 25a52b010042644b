//! raft-engine panics when an fsync fails (it treats the error as fatal,
//! as the fsyncgate lesson says it is: after a failed fsync the page cache
//! cannot be trusted, so the call must not be retried). Its callers here
//! run such calls under [`catch`], which turns that panic into an error
//! the member stops on with a clear message. The server's panic hook asks
//! [`is_catching`] so it neither reports the caught panic as a crash nor
//! stops the process twice.

use std::cell::Cell;
use std::panic::{catch_unwind, AssertUnwindSafe};

thread_local! {
    static CATCHING: Cell<bool> = const { Cell::new(false) };
}

/// Whether the current thread runs a call whose panic [`catch`] reports.
pub fn is_catching() -> bool {
    CATCHING.with(Cell::get)
}

/// Runs `call`, turning a panic into `Err` with its message. Nothing the
/// call touched may be used afterwards but to stop: the caller must treat
/// the error as fatal.
pub fn catch<T>(call: impl FnOnce() -> T) -> Result<T, String> {
    let was = CATCHING.with(|c| c.replace(true));
    let result = catch_unwind(AssertUnwindSafe(call));
    CATCHING.with(|c| c.set(was));
    result.map_err(|payload| message(payload.as_ref()))
}

/// The text of a panic payload.
pub fn message(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(text) = payload.downcast_ref::<&str>() {
        (*text).to_string()
    } else if let Some(text) = payload.downcast_ref::<String>() {
        text.clone()
    } else {
        "a panic without a message".to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_caught_panic_becomes_its_message() {
        assert_eq!(catch(|| 7), Ok(7));
        let caught = catch(|| -> u32 {
            assert!(is_catching());
            panic!("pipe::sync(): Io(Os {{ code: 5 }})")
        });
        assert_eq!(caught, Err("pipe::sync(): Io(Os { code: 5 })".to_string()));
        assert!(!is_catching());
    }
}
