//! `txn`: reads a transaction from stdin in etcdctl's format, sends it and
//! prints the outcome and each request's response.

use std::io::BufReader;

use crate::error::CliError;
use crate::global::GlobalArgs;
use crate::txn_parse::read_txn;
use crate::Ctx;

/// `rafter txn`.
#[derive(Debug, clap::Args)]
pub struct TxnCommand {
    #[command(flatten)]
    pub global: GlobalArgs,
    /// Input transaction in interactive mode
    #[arg(
        short,
        long,
        num_args = 0..=1,
        require_equals = true,
        default_missing_value = "true",
        default_value_t = false,
        action = clap::ArgAction::Set
    )]
    pub interactive: bool,
}

impl TxnCommand {
    /// Runs the command: builds the request, sends it, prints the answer.
    pub async fn run(&self, ctx: &mut Ctx<'_>) -> Result<(), CliError> {
        let printer = ctx.printer(&self.global)?;
        let mut input = BufReader::new(&mut *ctx.stdin);
        let prompts: Option<&mut dyn std::io::Write> = if self.interactive {
            Some(&mut *ctx.out)
        } else {
            None
        };
        let req = read_txn(&mut input, prompts)?;
        let resp = ctx
            .conn(&self.global)
            .call(|ch| async move { crate::conn::kv(ch).txn(req).await })
            .await?;
        printer.txn(ctx.out, &resp)
    }
}
