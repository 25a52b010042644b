//! The client commands alone, as a small binary (`cargo run -p rafter-cli
//! --example rafterctl -- get foo`), for trying them without building the
//! server that the `rafter` binary links in.

use clap::Parser;

#[derive(Debug, Parser)]
#[command(
    name = "rafterctl",
    about = "etcdctl-compatible client commands of rafter"
)]
struct Cli {
    #[command(subcommand)]
    command: rafter_cli::ClientCommand,
}

#[tokio::main]
async fn main() {
    let cli = Cli::parse();
    std::process::exit(rafter_cli::run(cli.command).await);
}
