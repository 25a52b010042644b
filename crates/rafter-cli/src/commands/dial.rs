//! `dial get|set|swap|outcome`: Rafter's consistency dial (seed 004) from
//! the shell, through `rafter-client`, with definite outcomes.
//!
//! A one-shot `set`/`swap` runs in the answering member's own session (no
//! client tag), so its request id stays meaningful after this process
//! exits: `rafter dial outcome SESSION-SEQ` can ask about it later.
//!
//! Simple output, one status line then the value where there is one:
//! - `get`: the value if the key exists (nothing if not); `TIMEOUT` if the
//!   deadline passed first.
//! - `set`: `OK <id>`; `swap`: `SWAPPED <id>`, or `NOT SWAPPED <id>`
//!   followed by the current value if the key exists.
//! - `outcome`: `APPLIED <id>` (with `NOT VALID` if the store refused it,
//!   or the swap did not swap), `CANCELLED <id>` or `PENDING <id>`.
//! - A timed-out mutation: `CANCELLED <id>` (never applied) or
//!   `PENDING <id>` (ask `outcome`).
//!
//! `-w json` prints every field of the answer. A timed-out answer exits
//! with status 1 after printing; errors print `Error: <message>`.

use std::ffi::OsString;
use std::io::Write;
use std::os::unix::ffi::OsStrExt;
use std::time::Duration;

use rafter_client::{Answer, Client, Consistency, Options, Outcome, RequestId, Wait};

use crate::error::{CliError, EXIT_BAD_CONNECTION, EXIT_ERROR};
use crate::global::GlobalArgs;
use crate::godur;
use crate::Ctx;

/// `rafter dial <subcommand>`.
#[derive(Debug, clap::Args)]
pub struct DialCommand {
    #[command(flatten)]
    pub global: GlobalArgs,
    #[command(flatten)]
    pub flags: DialFlags,
    #[command(subcommand)]
    pub action: DialAction,
}

/// Flags of every dial subcommand.
#[derive(Debug, Clone, clap::Args)]
pub struct DialFlags {
    /// Linearizable (true) or this member's own state (false)
    #[arg(
        long,
        global = true,
        num_args = 0..=1,
        require_equals = true,
        default_missing_value = "true",
        default_value_t = true,
        action = clap::ArgAction::Set
    )]
    pub consistent: bool,
    /// Wait as long as it takes (true) or at most --timeout (false)
    #[arg(
        long,
        global = true,
        num_args = 0..=1,
        require_equals = true,
        default_missing_value = "true",
        default_value_t = false,
        action = clap::ArgAction::Set
    )]
    pub blocking: bool,
    /// Deadline of a non-blocking request, retries included (e.g. 500ms, 2s)
    #[arg(long, global = true, default_value = "5s", value_parser = godur::parse)]
    pub timeout: Duration,
}

impl DialFlags {
    fn wait(&self) -> Wait {
        if self.blocking {
            Wait::Blocking
        } else {
            Wait::For(self.timeout)
        }
    }

    fn consistency(&self) -> Consistency {
        if self.consistent {
            Consistency::Consistent
        } else {
            Consistency::Local
        }
    }
}

/// Dial subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum DialAction {
    /// Reads a key
    Get {
        #[arg(value_name = "KEY")]
        key: OsString,
    },
    /// Writes a key
    Set {
        #[arg(value_name = "KEY")]
        key: OsString,
        #[arg(value_name = "VALUE")]
        value: OsString,
    },
    /// Sets KEY to NEW iff it holds OLD (or, with --old-absent, iff it does not exist)
    Swap {
        /// The key must not exist (then only KEY NEW are given)
        #[arg(
            long,
            num_args = 0..=1,
            require_equals = true,
            default_missing_value = "true",
            default_value_t = false,
            action = clap::ArgAction::Set
        )]
        old_absent: bool,
        /// KEY OLD NEW, or KEY NEW with --old-absent
        #[arg(value_name = "KEY [OLD] NEW")]
        args: Vec<OsString>,
    },
    /// The definite outcome of a set or swap, by its request id (SESSION-SEQ)
    Outcome {
        #[arg(value_name = "REQUEST_ID")]
        request_id: String,
    },
}

fn bytes(s: &OsString) -> Vec<u8> {
    s.as_bytes().to_vec()
}

/// The output formats dial prints.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Out {
    Simple,
    Json,
}

impl DialCommand {
    /// Runs the command: one request, its answer printed.
    pub async fn run(&self, ctx: &mut Ctx<'_>) -> Result<(), CliError> {
        let out = match self.global.write_out.as_str() {
            "simple" => Out::Simple,
            "json" => Out::Json,
            _ => return Err(CliError::bad_feature("unsupported output format")),
        };
        // Arguments first: a malformed command needs no cluster.
        let request = self.request()?;
        let options = Options {
            connect_timeout: self.global.dial_timeout,
            ..Options::default()
        };
        let client = Client::connect_with(&self.global.endpoint_list(), options)
            .await
            .map_err(|e| match e {
                rafter_client::Error::BadEndpoint(m) => CliError::new(EXIT_BAD_CONNECTION, m),
                e => CliError::failed(e.to_string()),
            })?;
        let wait = self.flags.wait();
        let answer = match &request {
            Request::Get(key) => client.get(key, self.flags.consistency(), wait).await,
            Request::Set(key, value) => {
                client
                    .set_with(key, value, self.flags.consistency(), wait)
                    .await
            }
            Request::Swap(key, old, new) => client.swap(key, old.as_deref(), new, wait).await,
            Request::Outcome(id) => client.outcome(*id, wait).await,
        }
        .map_err(|e| CliError::failed(e.to_string()))?;
        match out {
            Out::Json => writeln!(ctx.out, "{}", json(&answer, self.global.hex))?,
            Out::Simple => simple(ctx.out, &request, &answer, self.global.hex)?,
        }
        if answer.timeout {
            return Err(CliError::silent(EXIT_ERROR));
        }
        Ok(())
    }

    fn request(&self) -> Result<Request, CliError> {
        Ok(match &self.action {
            DialAction::Get { key } => Request::Get(bytes(key)),
            DialAction::Set { key, value } => Request::Set(bytes(key), bytes(value)),
            DialAction::Swap { old_absent, args } => match (args.as_slice(), old_absent) {
                ([key, new], true) => Request::Swap(bytes(key), None, bytes(new)),
                ([key, old, new], false) => Request::Swap(bytes(key), Some(bytes(old)), bytes(new)),
                (_, true) => {
                    return Err(CliError::bad_args(
                        "dial swap --old-absent needs 2 arguments: KEY NEW",
                    ))
                }
                (_, false) => {
                    return Err(CliError::bad_args(
                        "dial swap needs 3 arguments: KEY OLD NEW (or --old-absent KEY NEW)",
                    ))
                }
            },
            DialAction::Outcome { request_id } => Request::Outcome(
                request_id
                    .parse::<RequestId>()
                    .map_err(|e| CliError::bad_args(e.to_string()))?,
            ),
        })
    }
}

/// One dial request, parsed.
#[derive(Debug)]
enum Request {
    Get(Vec<u8>),
    Set(Vec<u8>, Vec<u8>),
    Swap(Vec<u8>, Option<Vec<u8>>, Vec<u8>),
    Outcome(RequestId),
}

fn show(value: &[u8], hex: bool) -> String {
    if hex {
        value.iter().map(|b| format!("{b:02x}")).collect()
    } else {
        String::from_utf8_lossy(value).into_owned()
    }
}

/// The request id, or a local write's dot (`local MEMBER-HEX#SEQ`).
fn id_text(answer: &Answer) -> String {
    if let Some(local) = &answer.local {
        return format!("local {:x}#{}", local.member_id, local.seq);
    }
    answer
        .request_id
        .map(|id| id.to_string())
        .unwrap_or_else(|| "-".into())
}

fn simple(
    out: &mut dyn Write,
    request: &Request,
    answer: &Answer,
    hex: bool,
) -> Result<(), CliError> {
    let id = id_text(answer);
    match (request, answer.outcome) {
        (Request::Get(_), _) if answer.timeout => writeln!(out, "TIMEOUT")?,
        (Request::Get(_), _) => {
            if answer.found {
                writeln!(out, "{}", show(&answer.value, hex))?;
            }
        }
        (_, Outcome::Cancelled) => writeln!(out, "CANCELLED {id}")?,
        (_, Outcome::Pending) => writeln!(out, "PENDING {id}")?,
        (Request::Outcome(_), _) if answer.valid => writeln!(out, "APPLIED {id}")?,
        (Request::Outcome(_), _) => writeln!(out, "APPLIED {id} NOT VALID")?,
        (Request::Set(..), _) if answer.valid => writeln!(out, "OK {id}")?,
        (Request::Swap(..), _) if answer.valid => writeln!(out, "SWAPPED {id}")?,
        (Request::Swap(..), _) if answer.error.is_empty() => {
            writeln!(out, "NOT SWAPPED {id}")?;
            if answer.found {
                writeln!(out, "{}", show(&answer.value, hex))?;
            }
        }
        (_, _) => writeln!(out, "FAILED {id}: {}", answer.error)?,
    }
    Ok(())
}

fn json(answer: &Answer, hex: bool) -> serde_json::Value {
    serde_json::json!({
        "valid": answer.valid,
        "timeout": answer.timeout,
        "value": show(&answer.value, hex),
        "found": answer.found,
        "revision": answer.revision,
        "request_id": answer.request_id.map(|id| id.to_string()),
        "outcome": answer.outcome.name(),
        "error": answer.error,
        "member_id": format!("{:x}", answer.member_id),
        "local": answer.local.as_ref().map(|l| serde_json::json!({
            "member_id": format!("{:x}", l.member_id),
            "seq": l.seq,
            "context_revision": l.context_revision,
            "hlc_physical_ms": l.hlc_physical_ms,
            "hlc_logical": l.hlc_logical,
        })),
    })
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Debug, Parser)]
    struct Cli {
        #[command(subcommand)]
        command: crate::ClientCommand,
    }

    fn dial(args: &[&str]) -> Result<DialCommand, clap::Error> {
        let argv = ["rafter", "dial"].iter().chain(args);
        match Cli::try_parse_from(argv)?.command {
            crate::ClientCommand::Dial(d) => Ok(d),
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn flags_go_before_or_after_the_subcommand() {
        let d = dial(&["get", "k", "--consistent=false", "--timeout", "500ms"]).unwrap();
        assert_eq!(d.flags.consistency(), Consistency::Local);
        assert_eq!(d.flags.wait(), Wait::For(Duration::from_millis(500)));
        let d = dial(&["--blocking", "set", "k", "v"]).unwrap();
        assert_eq!(d.flags.wait(), Wait::Blocking);
        assert!(matches!(d.request().unwrap(), Request::Set(k, v) if k == b"k" && v == b"v"));
    }

    #[test]
    fn swap_arguments_and_request_ids_are_checked() {
        let d = dial(&["swap", "k", "old", "new"]).unwrap();
        assert!(matches!(d.request().unwrap(), Request::Swap(_, Some(o), _) if o == b"old"));
        let d = dial(&["swap", "--old-absent", "k", "new"]).unwrap();
        assert!(matches!(d.request().unwrap(), Request::Swap(_, None, n) if n == b"new"));
        let d = dial(&["swap", "k", "new"]).unwrap();
        assert_eq!(d.request().unwrap_err().code, 128);
        let d = dial(&["outcome", "12-3"]).unwrap();
        assert!(matches!(
            d.request().unwrap(),
            Request::Outcome(RequestId {
                session_id: 12,
                seq: 3
            })
        ));
        let d = dial(&["outcome", "12"]).unwrap();
        assert_eq!(d.request().unwrap_err().code, 128);
        assert!(dial(&["get", "k", "--timeout", "soon"]).is_err());
    }
}
