//! The error type of client commands and etcdctl's exit codes, so a failing
//! `rafter` command reports and exits the way the etcdctl command it mirrors
//! does (`Error: <message>` on stderr, then the same exit status).

use std::fmt;

/// A command failed for a reason the server or network reported.
pub const EXIT_ERROR: i32 = 1;
/// The client could not be set up for the given endpoints.
pub const EXIT_BAD_CONNECTION: i32 = 2;
/// Input read from stdin (txn) is malformed.
pub const EXIT_INVALID_INPUT: i32 = 3;
/// The request asks for something unsupported (output format, sort order...).
pub const EXIT_BAD_FEATURE: i32 = 4;
/// A long-running command (watch) was ended by the server.
pub const EXIT_INTERRUPTED: i32 = 5;
/// Wrong arguments or flag combinations.
pub const EXIT_BAD_ARGS: i32 = 128;

/// A command failure: the exit code and the text printed after `Error: `.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CliError {
    /// Process exit code.
    pub code: i32,
    /// Message; empty when the command already reported everything itself.
    pub message: String,
}

impl CliError {
    /// An error with the given exit code and message.
    pub fn new(code: i32, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
        }
    }

    /// Exit code 1 (a failed request).
    pub fn failed(message: impl Into<String>) -> Self {
        Self::new(EXIT_ERROR, message)
    }

    /// Exit code 128 (bad arguments).
    pub fn bad_args(message: impl Into<String>) -> Self {
        Self::new(EXIT_BAD_ARGS, message)
    }

    /// Exit code 4 (unsupported feature).
    pub fn bad_feature(message: impl Into<String>) -> Self {
        Self::new(EXIT_BAD_FEATURE, message)
    }

    /// Exit code 3 (malformed input).
    pub fn invalid_input(message: impl Into<String>) -> Self {
        Self::new(EXIT_INVALID_INPUT, message)
    }

    /// A failure whose details were already printed; only the exit code remains.
    pub fn silent(code: i32) -> Self {
        Self::new(code, "")
    }

    /// The error a request gets when the command timeout runs out.
    pub fn deadline_exceeded() -> Self {
        Self::failed("context deadline exceeded")
    }
}

impl fmt::Display for CliError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for CliError {}

impl From<tonic::Status> for CliError {
    /// etcd puts its error text (`etcdserver: ...`) in the gRPC status
    /// message; etcdctl prints exactly that.
    fn from(status: tonic::Status) -> Self {
        let message = if status.message().is_empty() {
            status.code().description().to_string()
        } else {
            status.message().to_string()
        };
        Self::failed(message)
    }
}

impl From<std::io::Error> for CliError {
    fn from(err: std::io::Error) -> Self {
        Self::failed(err.to_string())
    }
}
