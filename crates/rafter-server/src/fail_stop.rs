//! A member fails stop: a panic on any thread (a bug, or a dependency that
//! panics on a disk failure outside the calls that catch it) ends the
//! process with one error line naming the cause, as an unrecovered panic
//! ends etcd. Without this a panicking Raft or apply thread would leave a
//! process that still accepts clients but can no longer commit or apply.

use std::sync::Once;

static INSTALLED: Once = Once::new();

/// Installs the hook once per process.
pub fn install() {
    INSTALLED.call_once(|| {
        std::panic::set_hook(Box::new(|info| {
            if rafter_storage::disk_panic::is_catching() {
                // Caught and reported as a typed error by the caller.
                return;
            }
            let message = rafter_storage::disk_panic::message(info.payload());
            let location = info
                .location()
                .map(|l| format!(" at {}:{}", l.file(), l.line()))
                .unwrap_or_default();
            let thread = std::thread::current();
            let thread = thread.name().unwrap_or("unnamed");
            tracing::error!(
                "fatal: thread {thread} failed: {message}{location}; the member stops \
                 (nothing it had not made durable was acknowledged)"
            );
            std::process::exit(1);
        }));
    });
}
