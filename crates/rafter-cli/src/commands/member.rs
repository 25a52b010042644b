//! `member list`: the cluster's members as etcdctl lists them.

use rafter_proto::etcdserverpb::MemberListRequest;

use crate::error::CliError;
use crate::global::GlobalArgs;
use crate::Ctx;

/// `rafter member <subcommand>`.
#[derive(Debug, clap::Args)]
pub struct MemberCommand {
    #[command(flatten)]
    pub global: GlobalArgs,
    #[command(subcommand)]
    pub action: MemberAction,
}

/// Member subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum MemberAction {
    /// Lists all members in the cluster
    List,
}

impl MemberCommand {
    /// Runs the command: builds the request, sends it, prints the answer.
    pub async fn run(&self, ctx: &mut Ctx<'_>) -> Result<(), CliError> {
        let printer = ctx.printer(&self.global)?;
        match self.action {
            MemberAction::List => {
                let req = MemberListRequest {
                    linearizable: false,
                };
                let resp = ctx
                    .conn(&self.global)
                    .call(|ch| async move { crate::conn::cluster(ch).member_list(req).await })
                    .await?;
                printer.member_list(ctx.out, &resp)
            }
        }
    }
}
