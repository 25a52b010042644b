//! Client subcommands of `rafter` (put, get, del, txn, watch, compaction,
//! endpoint, member, lease, lock, elect) whose flags and output mirror
//! etcdctl's, so scripts written for etcdctl work with `rafter` unchanged;
//! and Rafter's own `dial`, `conflict-policy` and `conflicts`.

mod commands;
mod conn;
mod error;
mod global;
use rafter_proto::godur;
mod keyrange;
mod output;
mod txn_parse;

use std::io::{Read, Write};

pub use error::CliError;
/// Reads a `rafter txn` transaction from text (public for the fuzz targets).
pub use txn_parse::read_txn;

use commands::{
    alarm::AlarmCommand,
    compact::CompactCommand,
    conflicts::{ConflictPolicyCommand, ConflictsCommand},
    defrag::DefragCommand,
    del::DelCommand,
    dial::DialCommand,
    elect::ElectCommand,
    endpoint::EndpointCommand,
    get::GetCommand,
    lease::LeaseCommand,
    lock::LockCommand,
    member::MemberCommand,
    put::PutCommand,
    snapshot::SnapshotCommand,
    txn::TxnCommand,
    watch::WatchCommand,
};
use conn::Conn;
use global::GlobalArgs;
use output::Printer;

/// Client commands; `rafter <command> --help` lists each one's flags.
#[derive(Debug, clap::Subcommand)]
pub enum ClientCommand {
    /// Puts the given key into the store
    Put(PutCommand),
    /// Gets the key or a range of keys
    Get(GetCommand),
    /// Removes the specified key or range of keys [key, range_end)
    Del(DelCommand),
    /// Txn processes all the requests in one transaction
    Txn(TxnCommand),
    /// Watches events stream on keys or prefixes
    Watch(WatchCommand),
    /// Compacts the event history in etcd
    #[command(name = "compaction", alias = "compact")]
    Compaction(CompactCommand),
    /// Endpoint related commands
    #[command(infer_subcommands = true)]
    Endpoint(EndpointCommand),
    /// Membership related commands
    #[command(infer_subcommands = true)]
    Member(MemberCommand),
    /// Lease related commands
    Lease(LeaseCommand),
    /// Acquires a named lock
    Lock(LockCommand),
    /// Observes and participates in leader election
    Elect(ElectCommand),
    /// Rafter's consistency dial: get, set, swap with definite outcomes
    Dial(DialCommand),
    /// Sets or lists the policies deciding local writes concurrent with committed changes
    #[command(name = "conflict-policy")]
    ConflictPolicy(ConflictPolicyCommand),
    /// Lists the conflict log: local writes that met committed changes, and what was decided
    Conflicts(ConflictsCommand),
    /// Manages snapshots: save (from a member), status and restore (of a file)
    Snapshot(SnapshotCommand),
    /// Alarm related commands
    Alarm(AlarmCommand),
    /// Defragments the storage of the etcd members with given endpoints
    Defrag(DefragCommand),
}

/// The streams a command talks to, and shortcuts every command needs.
pub struct Ctx<'a> {
    /// Where responses go (stdout).
    pub out: &'a mut dyn Write,
    /// Where diagnostics go (stderr).
    pub err: &'a mut dyn Write,
    /// Where `put` values and `txn` input come from (stdin).
    pub stdin: &'a mut dyn Read,
}

impl Ctx<'_> {
    /// The printer for the command's `-w` and `--hex` flags.
    fn printer(&self, global: &GlobalArgs) -> Result<Printer, CliError> {
        Ok(Printer::new(global.format()?, global.hex))
    }

    /// The connection plan for the command's `--endpoints` and timeouts.
    fn conn(&self, global: &GlobalArgs) -> Conn {
        Conn::new(global)
    }
}

/// Runs one client command and returns the process exit code.
pub async fn run(cmd: ClientCommand) -> i32 {
    let stdout = std::io::stdout();
    let stderr = std::io::stderr();
    let mut out = stdout.lock();
    let mut err = stderr.lock();
    let mut stdin = std::io::stdin().lock();
    let mut ctx = Ctx {
        out: &mut out,
        err: &mut err,
        stdin: &mut stdin,
    };
    let code = run_with(cmd, &mut ctx).await;
    let _ = out.flush();
    code
}

/// Runs one client command against the given streams and returns the exit
/// code, printing a failure as `Error: <message>` on `ctx.err`.
pub async fn run_with(cmd: ClientCommand, ctx: &mut Ctx<'_>) -> i32 {
    let result = match &cmd {
        ClientCommand::Put(c) => c.run(ctx).await,
        ClientCommand::Get(c) => c.run(ctx).await,
        ClientCommand::Del(c) => c.run(ctx).await,
        ClientCommand::Txn(c) => c.run(ctx).await,
        ClientCommand::Watch(c) => c.run(ctx).await,
        ClientCommand::Compaction(c) => c.run(ctx).await,
        ClientCommand::Endpoint(c) => c.run(ctx).await,
        ClientCommand::Member(c) => c.run(ctx).await,
        ClientCommand::Lease(c) => c.run(ctx).await,
        ClientCommand::Lock(c) => c.run(ctx).await,
        ClientCommand::Elect(c) => c.run(ctx).await,
        ClientCommand::Dial(c) => c.run(ctx).await,
        ClientCommand::ConflictPolicy(c) => c.run(ctx).await,
        ClientCommand::Conflicts(c) => c.run(ctx).await,
        ClientCommand::Snapshot(c) => c.run(ctx).await,
        ClientCommand::Alarm(c) => c.run(ctx).await,
        ClientCommand::Defrag(c) => c.run(ctx).await,
    };
    let _ = ctx.out.flush();
    match result {
        Ok(()) => 0,
        Err(e) => {
            if !e.message.is_empty() {
                let _ = writeln!(ctx.err, "Error: {}", e.message);
            }
            e.code
        }
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Debug, Parser)]
    struct Cli {
        #[command(subcommand)]
        command: ClientCommand,
    }

    fn get(args: &[&str]) -> commands::get::GetCommand {
        let argv = ["rafter", "get"].iter().chain(args);
        match Cli::try_parse_from(argv).expect("parses").command {
            ClientCommand::Get(g) => g,
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn bool_flags_take_optional_values() {
        assert!(get(&["k", "--prefix"]).args.prefix);
        assert!(get(&["k", "--prefix=true"]).args.prefix);
        assert!(!get(&["k", "--prefix=false"]).args.prefix);
        let g = get(&["--prefix", "k"]);
        assert!(g.args.prefix);
        assert_eq!(g.args.args, ["k"]);
        assert!(get(&["k", "--hex"]).global.hex);
    }

    #[test]
    fn global_flags_follow_the_command() {
        let g = get(&[
            "k",
            "--endpoints=http://127.0.0.1:1,127.0.0.1:2",
            "-w",
            "json",
            "--command-timeout=1m",
        ]);
        assert_eq!(
            g.global.endpoint_list(),
            ["http://127.0.0.1:1", "127.0.0.1:2"]
        );
        assert_eq!(g.global.write_out, "json");
        assert_eq!(g.global.command_timeout, std::time::Duration::from_secs(60));
    }

    #[test]
    fn command_aliases() {
        let argv = ["rafter", "compact", "5"];
        assert!(matches!(
            Cli::try_parse_from(argv).unwrap().command,
            ClientCommand::Compaction(_)
        ));
        let argv = ["rafter", "endpoint", "stat"];
        assert!(Cli::try_parse_from(argv).is_ok());
    }
}
