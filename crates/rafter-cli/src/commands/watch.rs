//! `watch`: etcdctl's watch command. It exists so that scripts and people
//! who follow keys with `etcdctl watch` can do the same with `rafter watch`
//! against etcd or Rafter: the same flags (`--prefix`, `--rev`, `--prev-kv`,
//! `--progress-notify`, `ETCDCTL_WATCH_KEY`/`ETCDCTL_WATCH_RANGE_END`,
//! `-- command args` run per event), the same output in every format, and
//! the same ending: a watch the server cancels (compaction, a failed
//! stream) prints `watch was canceled (...)` where etcdctl does and exits
//! with `Error: watch is canceled by the server` and status 5.
//!
//! What is printed follows the Go client etcdctl is built on, not the raw
//! stream: the server's "created" response is not shown, a cancel without
//! compaction ends the watch silently, a response without events that is
//! neither created, canceled nor compacted is a progress notification
//! (`progress notify: REV`). A broken connection (gRPC `Unavailable`) is
//! dialed again and the watch resumes after the last revision it saw, as
//! the Go client does.

use std::ffi::{OsStr, OsString};
use std::os::unix::ffi::OsStrExt;

use rafter_proto::etcdserverpb::{
    watch_request::RequestUnion, WatchCreateRequest, WatchRequest, WatchResponse,
};
use rafter_proto::mvccpb::Event;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::transport::Channel;

use crate::error::{CliError, EXIT_ERROR, EXIT_INTERRUPTED};
use crate::global::GlobalArgs;
use crate::keyrange;
use crate::output::quote::go_quote;
use crate::output::{event_type_name, Printer};
use crate::Ctx;

const BAD_ARGS_NUM: &str = "bad number of arguments";
const BAD_ARGS_CONFLICT_ENV: &str = "bad number of arguments (found conflicting environment key)";
const BAD_ARGS_SEPARATOR: &str = "bad number of arguments (found separator --, but no commands)";
/// What etcdctl exits with once the server has ended the watch.
const CANCELED_BY_SERVER: &str = "watch is canceled by the server";

/// `rafter watch [options] [key or prefix] [range_end] [--] [exec-command arg1 arg2 ...]`.
#[derive(Debug, clap::Args)]
pub struct WatchCommand {
    #[command(flatten)]
    pub global: GlobalArgs,
    /// Interactive mode (not supported by rafter)
    #[arg(
        short = 'i',
        long,
        num_args = 0..=1,
        require_equals = true,
        default_missing_value = "true",
        default_value_t = false,
        action = clap::ArgAction::Set
    )]
    pub interactive: bool,
    /// Watch on a prefix if prefix is set
    #[arg(
        long,
        num_args = 0..=1,
        require_equals = true,
        default_missing_value = "true",
        default_value_t = false,
        action = clap::ArgAction::Set
    )]
    pub prefix: bool,
    /// Revision to start watching
    #[arg(long, default_value_t = 0, allow_negative_numbers = true)]
    pub rev: i64,
    /// get the previous key-value pair before the event happens
    #[arg(
        long,
        num_args = 0..=1,
        require_equals = true,
        default_missing_value = "true",
        default_value_t = false,
        action = clap::ArgAction::Set
    )]
    pub prev_kv: bool,
    /// get periodic watch progress notification from server
    #[arg(
        long,
        num_args = 0..=1,
        require_equals = true,
        default_missing_value = "true",
        default_value_t = false,
        action = clap::ArgAction::Set
    )]
    pub progress_notify: bool,
    /// [key or prefix] [range_end]
    #[arg(value_name = "KEY [RANGE_END]")]
    pub args: Vec<OsString>,
    /// A command run for every event, with ETCD_WATCH_REVISION,
    /// ETCD_WATCH_EVENT_TYPE, ETCD_WATCH_KEY and ETCD_WATCH_VALUE set
    #[arg(last = true, value_name = "EXEC-COMMAND")]
    pub exec: Vec<OsString>,
}

/// The watch key and range end etcdctl reads from its environment.
#[derive(Debug, Clone, Default)]
pub struct WatchEnv {
    /// `ETCDCTL_WATCH_KEY` (unset and empty alike: `None`).
    pub key: Option<OsString>,
    /// `ETCDCTL_WATCH_RANGE_END`.
    pub range_end: Option<OsString>,
}

impl WatchEnv {
    /// The variables of this process.
    pub fn from_process() -> Self {
        let var = |name: &str| std::env::var_os(name).filter(|v| !v.is_empty());
        Self {
            key: var("ETCDCTL_WATCH_KEY"),
            range_end: var("ETCDCTL_WATCH_RANGE_END"),
        }
    }
}

impl WatchCommand {
    /// The create request these arguments describe, or etcdctl's error for
    /// them (all exit 128), checked in etcdctl's order.
    pub fn request(&self, env: &WatchEnv) -> Result<WatchCreateRequest, CliError> {
        if env.key.is_none() {
            if let Some(range_end) = &env.range_end {
                return Err(CliError::bad_args(format!(
                    "ETCDCTL_WATCH_KEY is empty but got ETCDCTL_WATCH_RANGE_END={}",
                    go_quote(range_end.as_bytes())
                )));
            }
        }
        if self.interactive {
            return Err(CliError::bad_feature(
                "interactive watch (-i) is not supported by rafter",
            ));
        }
        let mut args: Vec<&OsStr> = Vec::new();
        if let Some(key) = &env.key {
            if !self.args.is_empty() {
                return Err(CliError::bad_args(BAD_ARGS_CONFLICT_ENV));
            }
            args.push(key);
            args.extend(env.range_end.as_deref());
        }
        args.extend(self.args.iter().map(OsString::as_os_str));
        let Some(key) = args.first() else {
            return Err(CliError::bad_args(BAD_ARGS_NUM));
        };
        let key = key.as_bytes();
        // etcdctl takes a range end only from exactly two arguments; a
        // third one silently watches the first key alone.
        let (key, range_end) = if self.prefix {
            if args.len() == 2 {
                return Err(CliError::bad_args(
                    "`range_end` and `--prefix` are mutually exclusive",
                ));
            }
            keyrange::prefix_range(key)
        } else if args.len() == 2 {
            (key.to_vec(), args[1].as_bytes().to_vec())
        } else {
            (key.to_vec(), Vec::new())
        };
        Ok(WatchCreateRequest {
            key,
            range_end,
            start_revision: self.rev,
            progress_notify: self.progress_notify,
            prev_kv: self.prev_kv,
            ..Default::default()
        })
    }

    /// Runs the command: opens the watch, prints every response until the
    /// server ends it (or forever).
    pub async fn run(&self, ctx: &mut Ctx<'_>) -> Result<(), CliError> {
        let printer = ctx.printer(&self.global)?;
        if self.exec.is_empty() && separator_without_command(std::env::args_os()) {
            return Err(CliError::bad_args(BAD_ARGS_SEPARATOR));
        }
        let mut create = self.request(&WatchEnv::from_process())?;
        let conn = ctx.conn(&self.global);
        let mut watch = Watch {
            printer,
            exec: &self.exec,
            // The revision to resume at after a reconnect.
            next_revision: create.start_revision,
        };
        loop {
            let channel = conn.connect_patiently().await?;
            match watch.stream(channel, create.clone(), ctx).await? {
                StreamEnd::Broken => create.start_revision = watch.next_revision,
                StreamEnd::Canceled => {
                    return Err(CliError::new(EXIT_INTERRUPTED, CANCELED_BY_SERVER))
                }
            }
        }
    }
}

/// Whether the process arguments end with a `--` after `watch` (etcdctl
/// looks at its raw arguments for this, as a parser drops the `--`).
fn separator_without_command(args: impl Iterator<Item = OsString>) -> bool {
    let args: Vec<OsString> = args.collect();
    match args.iter().position(|a| a == "watch") {
        Some(i) => args.len() > i + 1 && args.last().is_some_and(|a| a == "--"),
        None => false,
    }
}

/// How one gRPC stream ended.
enum StreamEnd {
    /// The connection broke; dial again and resume.
    Broken,
    /// The server ended the watch (already reported on stderr if etcdctl
    /// reports it).
    Canceled,
}

/// One watch being printed.
struct Watch<'a> {
    printer: Printer,
    exec: &'a [OsString],
    next_revision: i64,
}

impl Watch<'_> {
    /// Opens a stream on `channel`, creates the watch and prints its
    /// responses until the stream ends.
    async fn stream(
        &mut self,
        channel: Channel,
        create: WatchCreateRequest,
        ctx: &mut Ctx<'_>,
    ) -> Result<StreamEnd, CliError> {
        let (requests, outgoing) = mpsc::channel(1);
        let create = WatchRequest {
            request_union: Some(RequestUnion::CreateRequest(create)),
        };
        // The sender stays alive until the stream ends: closing the request
        // side would end the watch.
        let _ = requests.send(create).await;
        let mut request = tonic::Request::new(ReceiverStream::new(outgoing));
        // etcdctl watches with `WithRequireLeader`: a member that lost its
        // leader cancels the stream instead of going quiet.
        request.metadata_mut().insert(
            "hasleader",
            tonic::metadata::MetadataValue::from_static("true"),
        );
        let mut responses = match crate::conn::watch(channel).watch(request).await {
            Ok(response) => response.into_inner(),
            Err(status) => return self.failed(status, ctx),
        };
        loop {
            match responses.message().await {
                Ok(Some(response)) => {
                    if let Some(end) = self.show(&response, ctx).await? {
                        return Ok(end);
                    }
                }
                Ok(None) => {
                    // The Go client reports a stream the server closed
                    // without a status as its io.EOF.
                    return self.closed("EOF", ctx);
                }
                Err(status) => return self.failed(status, ctx),
            }
        }
    }

    /// Prints one response as etcdctl does; `Some` when it ends the watch.
    async fn show(
        &mut self,
        r: &WatchResponse,
        ctx: &mut Ctx<'_>,
    ) -> Result<Option<StreamEnd>, CliError> {
        let header_revision = r.header.map_or(0, |h| h.revision);
        if r.created {
            if r.canceled {
                // A create the server refused. (The Go client drops this
                // response and waits forever; ending is more useful.)
                writeln!(ctx.err, "watch was canceled ({})", r.cancel_reason)?;
                return Ok(Some(StreamEnd::Canceled));
            }
            if self.next_revision == 0 {
                self.next_revision = header_revision + 1;
            }
            return Ok(None);
        }
        if r.canceled && r.compact_revision == 0 {
            return Ok(Some(StreamEnd::Canceled));
        }
        if r.canceled {
            writeln!(
                ctx.err,
                "watch was canceled (etcdserver: mvcc: required revision has been compacted)"
            )?;
        }
        let progress = r.events.is_empty() && !r.canceled && r.compact_revision == 0;
        if progress && header_revision != 0 {
            writeln!(ctx.out, "progress notify: {header_revision}")?;
        }
        self.printer.watch(ctx.out, r, false)?;
        ctx.out.flush()?;
        for event in &r.events {
            self.exec_for(header_revision, event, ctx).await?;
        }
        if let Some(last) = r.events.last().and_then(|e| e.kv.as_ref()) {
            self.next_revision = last.mod_revision + 1;
        } else if progress {
            self.next_revision = self.next_revision.max(header_revision + 1);
        }
        Ok(r.canceled.then_some(StreamEnd::Canceled))
    }

    /// A stream that failed with `status`: a broken connection is resumed,
    /// anything else ends the watch as the Go client's close error.
    fn failed(&mut self, status: tonic::Status, ctx: &mut Ctx<'_>) -> Result<StreamEnd, CliError> {
        if connection_broke(&status) {
            return Ok(StreamEnd::Broken);
        }
        self.closed(&go_error_text(&status), ctx)
    }

    /// Reports the final response the Go client makes up for a closed
    /// stream: canceled, no header, no events.
    fn closed(&mut self, why: &str, ctx: &mut Ctx<'_>) -> Result<StreamEnd, CliError> {
        writeln!(ctx.err, "watch was canceled ({why})")?;
        let made_up = WatchResponse {
            canceled: true,
            ..Default::default()
        };
        self.printer.watch(ctx.out, &made_up, true)?;
        ctx.out.flush()?;
        Ok(StreamEnd::Canceled)
    }

    /// Runs the `-- command` for one event, as etcdctl does: environment
    /// variables describe the event, output goes to ours, and a failure
    /// ends the process with status 1.
    async fn exec_for(
        &self,
        revision: i64,
        event: &Event,
        ctx: &mut Ctx<'_>,
    ) -> Result<(), CliError> {
        let Some((program, args)) = self.exec.split_first() else {
            return Ok(());
        };
        let kv = event.kv.clone().unwrap_or_default();
        let status = tokio::process::Command::new(program)
            .args(args)
            .env("ETCD_WATCH_REVISION", revision.to_string())
            .env(
                "ETCD_WATCH_EVENT_TYPE",
                format!("\"{}\"", event_type_name(event.r#type)),
            )
            .env("ETCD_WATCH_KEY", go_quote(&kv.key))
            .env("ETCD_WATCH_VALUE", go_quote(&kv.value))
            .status()
            .await;
        let why = match status {
            Ok(status) if status.success() => return Ok(()),
            Ok(status) => match (
                status.code(),
                std::os::unix::process::ExitStatusExt::signal(&status),
            ) {
                (Some(code), _) => format!("exit status {code}"),
                (None, Some(signal)) => format!("signal: {signal}"),
                (None, None) => status.to_string(),
            },
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => format!(
                "exec: {}: executable file not found in $PATH",
                go_quote(program.as_bytes())
            ),
            Err(e) => e.to_string(),
        };
        let quoted: Vec<String> = self.exec.iter().map(|a| go_quote(a.as_bytes())).collect();
        writeln!(ctx.err, "command [{}] error ({why})", quoted.join(" "))?;
        Err(CliError::silent(EXIT_ERROR))
    }
}

/// Whether a stream failed because its connection did, which the Go client
/// retries (gRPC `Unavailable` and `Internal`); tonic reports a connection
/// that drops mid-stream as `Unknown` with an HTTP/2 or transport error.
fn connection_broke(status: &tonic::Status) -> bool {
    match status.code() {
        tonic::Code::Unavailable | tonic::Code::Internal => true,
        tonic::Code::Unknown => {
            let message = status.message();
            message.starts_with("h2 protocol error") || message.starts_with("transport error")
        }
        _ => false,
    }
}

/// The text of a Go gRPC error as etcdctl prints it: etcd's own errors by
/// their description, others as `rpc error: code = X desc = Y`.
fn go_error_text(status: &tonic::Status) -> String {
    if status.message().starts_with("etcdserver: ") {
        return status.message().to_string();
    }
    let code = match status.code() {
        tonic::Code::Cancelled => "Canceled".to_string(),
        other => format!("{other:?}"),
    };
    format!("rpc error: code = {code} desc = {}", status.message())
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Debug, Parser)]
    struct Cli {
        #[command(flatten)]
        watch: WatchCommand,
    }

    fn parse(args: &[&str]) -> WatchCommand {
        let argv = std::iter::once("watch").chain(args.iter().copied());
        Cli::try_parse_from(argv).expect("parses").watch
    }

    fn range(args: &[&str]) -> Result<(Vec<u8>, Vec<u8>), CliError> {
        parse(args)
            .request(&WatchEnv::default())
            .map(|r| (r.key, r.range_end))
    }

    #[test]
    fn keys_ranges_and_prefixes() {
        assert_eq!(range(&["k"]).unwrap(), (b"k".to_vec(), vec![]));
        assert_eq!(range(&["a", "c"]).unwrap(), (b"a".to_vec(), b"c".to_vec()));
        assert_eq!(range(&["a", "c", "x"]).unwrap(), (b"a".to_vec(), vec![]));
        assert_eq!(
            range(&["--prefix", "k"]).unwrap(),
            (b"k".to_vec(), b"l".to_vec())
        );
        assert_eq!(range(&["", "--prefix=true"]).unwrap(), (vec![0], vec![0]));
    }

    #[test]
    fn flags_reach_the_request() {
        let r = parse(&["k", "--rev", "7", "--prev-kv", "--progress-notify"])
            .request(&WatchEnv::default())
            .unwrap();
        assert_eq!(r.start_revision, 7);
        assert!(r.prev_kv && r.progress_notify);
        let w = parse(&["k", "--", "echo", "-n", "x"]);
        assert_eq!(w.args, ["k"]);
        assert_eq!(w.exec, ["echo", "-n", "x"]);
    }

    #[test]
    fn argument_errors_match_etcdctl() {
        let err = range(&[]).unwrap_err();
        assert_eq!((err.code, err.message.as_str()), (128, BAD_ARGS_NUM));
        let err = range(&["a", "b", "--prefix"]).unwrap_err();
        assert_eq!(
            err.message,
            "`range_end` and `--prefix` are mutually exclusive"
        );
        let env = WatchEnv {
            key: Some("a".into()),
            range_end: None,
        };
        let err = parse(&["b"]).request(&env).unwrap_err();
        assert_eq!(err.message, BAD_ARGS_CONFLICT_ENV);
        let env = WatchEnv {
            key: Some("a".into()),
            range_end: Some("c".into()),
        };
        let r = parse(&[]).request(&env).unwrap();
        assert_eq!((r.key, r.range_end), (b"a".to_vec(), b"c".to_vec()));
        let env = WatchEnv {
            key: None,
            range_end: Some("a".into()),
        };
        assert_eq!(
            parse(&["b"]).request(&env).unwrap_err().message,
            "ETCDCTL_WATCH_KEY is empty but got ETCDCTL_WATCH_RANGE_END=\"a\""
        );
        let args = |list: &[&str]| list.iter().map(OsString::from).collect::<Vec<_>>();
        assert!(separator_without_command(
            args(&["rafter", "watch", "a", "--"]).into_iter()
        ));
        assert!(!separator_without_command(
            args(&["rafter", "watch", "a"]).into_iter()
        ));
    }

    #[test]
    fn go_error_texts() {
        let s = tonic::Status::unimplemented("no Watch here");
        assert_eq!(
            go_error_text(&s),
            "rpc error: code = Unimplemented desc = no Watch here"
        );
        let s = tonic::Status::unavailable("etcdserver: no leader");
        assert_eq!(go_error_text(&s), "etcdserver: no leader");
        assert!(connection_broke(&s));
        let s = tonic::Status::unknown("h2 protocol error: error reading a body from connection");
        assert!(connection_broke(&s));
        assert!(!connection_broke(&tonic::Status::unknown("boom")));
    }
}
