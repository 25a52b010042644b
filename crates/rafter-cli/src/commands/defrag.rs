//! `defrag`: asks each endpoint (or, with `--cluster`, each member) to
//! rewrite its store compactly, as etcdctl's `defrag`. On Rafter the member
//! keeps serving meanwhile.

use rafter_proto::etcdserverpb::DefragmentRequest;

use crate::conn::Conn;
use crate::error::{CliError, EXIT_ERROR};
use crate::global::GlobalArgs;
use crate::Ctx;

/// `rafter defrag`.
#[derive(Debug, clap::Args)]
pub struct DefragCommand {
    #[command(flatten)]
    pub global: GlobalArgs,
    /// Use all endpoints from the cluster member list
    #[arg(
        long,
        num_args = 0..=1,
        require_equals = true,
        default_missing_value = "true",
        default_value_t = false,
        action = clap::ArgAction::Set
    )]
    pub cluster: bool,
}

impl DefragCommand {
    /// Runs the command: one Defragment per endpoint, each reported.
    pub async fn run(&self, ctx: &mut Ctx<'_>) -> Result<(), CliError> {
        let endpoints = if self.cluster {
            super::endpoint::cluster_endpoints(&self.global).await?
        } else {
            self.global.endpoint_list()
        };
        let mut failed = false;
        for endpoint in endpoints {
            let conn = Conn::for_endpoints(&self.global, vec![endpoint.clone()]);
            let result = conn
                .call(|ch| async move {
                    crate::conn::maintenance(ch)
                        .defragment(DefragmentRequest {})
                        .await
                })
                .await;
            match result {
                Ok(_) => writeln!(ctx.out, "Finished defragmenting etcd member[{endpoint}]")?,
                Err(e) => {
                    failed = true;
                    writeln!(
                        ctx.err,
                        "Failed to defragment etcd member[{endpoint}] ({})",
                        e.message
                    )?;
                }
            }
        }
        if failed {
            return Err(CliError::silent(EXIT_ERROR));
        }
        Ok(())
    }
}
