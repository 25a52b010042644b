//! `compaction` (alias `compact`): discards history before a revision and
//! prints `compacted revision N` whatever the output format.

use rafter_proto::etcdserverpb::CompactionRequest;

use crate::error::CliError;
use crate::global::GlobalArgs;
use crate::Ctx;

/// `rafter compaction <revision>`.
#[derive(Debug, clap::Args)]
pub struct CompactCommand {
    #[command(flatten)]
    pub global: GlobalArgs,
    /// Wait for the compaction to physically remove all old revisions
    #[arg(
        long,
        num_args = 0..=1,
        require_equals = true,
        default_missing_value = "true",
        default_value_t = false,
        action = clap::ArgAction::Set
    )]
    pub physical: bool,
    /// <revision>
    #[arg(value_name = "REVISION", allow_negative_numbers = true)]
    pub args: Vec<String>,
}

impl CompactCommand {
    /// Runs the command: builds the request, sends it, prints the answer.
    pub async fn run(&self, ctx: &mut Ctx<'_>) -> Result<(), CliError> {
        ctx.printer(&self.global)?;
        let [rev] = self.args.as_slice() else {
            return Err(CliError::bad_args("compaction command needs 1 argument"));
        };
        let revision: i64 = rev.parse().map_err(|e: std::num::ParseIntError| {
            let why = match e.kind() {
                std::num::IntErrorKind::PosOverflow | std::num::IntErrorKind::NegOverflow => {
                    "value out of range"
                }
                _ => "invalid syntax",
            };
            CliError::failed(format!("strconv.ParseInt: parsing {rev:?}: {why}"))
        })?;
        let req = CompactionRequest {
            revision,
            physical: self.physical,
        };
        ctx.conn(&self.global)
            .call(|ch| async move { crate::conn::kv(ch).compact(req).await })
            .await?;
        writeln!(ctx.out, "compacted revision {revision}")?;
        Ok(())
    }
}
