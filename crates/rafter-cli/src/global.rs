//! The flags every etcdctl command accepts (`--endpoints`, `-w`, `--hex`,
//! timeouts), declared once and flattened into each client command, with the
//! same `ETCDCTL_*` environment variables etcdctl reads.
//!
//! Boolean flags here and in the commands take an optional `=true`/`=false`
//! (`--prefix=true`), as etcdctl's flag parser accepts.

use std::time::Duration;

use crate::error::CliError;
use crate::godur;
use crate::output::Format;

/// Global flags shared by all client commands.
#[derive(Debug, Clone, clap::Args)]
pub struct GlobalArgs {
    /// gRPC endpoints (comma separated; `http://` is optional)
    #[arg(
        long,
        global = true,
        value_delimiter = ',',
        default_value = "127.0.0.1:2379",
        env = "ETCDCTL_ENDPOINTS"
    )]
    pub endpoints: Vec<String>,

    /// Set the output format (fields, json, protobuf, simple, table)
    #[arg(
        short = 'w',
        long = "write-out",
        global = true,
        default_value = "simple",
        env = "ETCDCTL_WRITE_OUT"
    )]
    pub write_out: String,

    /// Print byte strings as hex encoded strings
    #[arg(
        long,
        global = true,
        env = "ETCDCTL_HEX",
        num_args = 0..=1,
        require_equals = true,
        default_missing_value = "true",
        default_value_t = false,
        action = clap::ArgAction::Set
    )]
    pub hex: bool,

    /// Dial timeout for client connections
    #[arg(
        long,
        global = true,
        default_value = "2s",
        value_parser = godur::parse,
        env = "ETCDCTL_DIAL_TIMEOUT"
    )]
    pub dial_timeout: Duration,

    /// Timeout for short running command (excluding dial timeout)
    #[arg(
        long,
        global = true,
        default_value = "5s",
        value_parser = godur::parse,
        env = "ETCDCTL_COMMAND_TIMEOUT"
    )]
    pub command_timeout: Duration,
}

impl GlobalArgs {
    /// The output format named by `-w`, or etcdctl's error for an unknown one.
    pub fn format(&self) -> Result<Format, CliError> {
        Format::parse(&self.write_out)
            .ok_or_else(|| CliError::bad_feature("unsupported output format"))
    }

    /// The endpoint list with empty entries dropped.
    pub fn endpoint_list(&self) -> Vec<String> {
        self.endpoints
            .iter()
            .map(|e| e.trim().to_string())
            .filter(|e| !e.is_empty())
            .collect()
    }
}
