//! `rafter`: one binary for the server (`rafter serve`, the default when no
//! subcommand is given) and the etcdctl-compatible client commands.

use clap::Parser;

mod malloc_arenas;

#[derive(Debug, Parser)]
#[command(
    name = "rafter",
    version,
    about = "Rafter: an etcd v3 compatible key-value store",
    args_conflicts_with_subcommands = true
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    /// Server flags, accepted without a subcommand as etcd accepts them.
    #[command(flatten)]
    serve: rafter_server::config::ServeArgs,
}

#[derive(Debug, clap::Subcommand)]
enum Command {
    /// Run a member (the default when no subcommand is given).
    Serve(Box<rafter_server::config::ServeArgs>),
    #[command(flatten)]
    Client(Box<rafter_cli::ClientCommand>),
    /// Load generator speaking the etcd v3 API (measures etcd and Rafter alike).
    Bench(Box<rafter_bench::BenchCommand>),
    /// Demonstrations on a local cluster (`rafter demo partition`: the dial on both sides of a cut).
    Demo(Box<rafter_bench::demo::DemoCommand>),
}

fn main() {
    let cli = Cli::parse();
    let code = match cli.command {
        None => serve(cli.serve),
        Some(Command::Serve(args)) => serve(*args),
        Some(Command::Client(cmd)) => {
            let rt = tokio::runtime::Runtime::new().expect("tokio runtime");
            rt.block_on(rafter_cli::run(*cmd))
        }
        Some(Command::Bench(cmd)) => rafter_bench::run(*cmd),
        Some(Command::Demo(cmd)) => rafter_bench::demo::run(*cmd),
    };
    std::process::exit(code);
}

fn serve(args: rafter_server::config::ServeArgs) -> i32 {
    malloc_arenas::limit();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    match rafter_server::run(args) {
        Ok(()) => 0,
        Err(e) => {
            tracing::error!("rafter serve failed: {e:#}");
            1
        }
    }
}
