//! `del`: etcdctl's delete flags turned into a `DeleteRangeRequest` (also for
//! `del` lines inside `txn`), and the command that sends it.

use std::ffi::OsString;
use std::os::unix::ffi::OsStrExt;

use rafter_proto::etcdserverpb::DeleteRangeRequest;

use crate::commands::get::{check_range_flags, key_range};
use crate::error::CliError;
use crate::global::GlobalArgs;
use crate::Ctx;

/// Flags and arguments of `del`.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct DelArgs {
    /// Delete keys with matching prefix
    #[arg(
        long,
        num_args = 0..=1,
        require_equals = true,
        default_missing_value = "true",
        default_value_t = false,
        action = clap::ArgAction::Set
    )]
    pub prefix: bool,
    /// Return deleted key-value pairs
    #[arg(
        long,
        num_args = 0..=1,
        require_equals = true,
        default_missing_value = "true",
        default_value_t = false,
        action = clap::ArgAction::Set
    )]
    pub prev_kv: bool,
    /// Delete keys that are greater than or equal to the given key using byte compare
    #[arg(
        long,
        num_args = 0..=1,
        require_equals = true,
        default_missing_value = "true",
        default_value_t = false,
        action = clap::ArgAction::Set
    )]
    pub from_key: bool,
    /// <key> [range_end]
    #[arg(value_name = "KEY [RANGE_END]")]
    pub args: Vec<OsString>,
}

impl DelArgs {
    /// The request these arguments describe, or etcdctl's error for them.
    pub fn request(&self) -> Result<DeleteRangeRequest, CliError> {
        if self.args.is_empty() || self.args.len() > 2 {
            return Err(CliError::bad_args(
                "del command needs one argument as key and an optional argument as range_end",
            ));
        }
        check_range_flags(self.prefix, self.from_key, self.args.len())?;
        let (key, range_end) = key_range(
            self.args[0].as_bytes(),
            self.args.get(1),
            self.prefix,
            self.from_key,
        );
        Ok(DeleteRangeRequest {
            key,
            range_end,
            prev_kv: self.prev_kv,
        })
    }
}

/// `rafter del`.
#[derive(Debug, clap::Args)]
pub struct DelCommand {
    #[command(flatten)]
    pub global: GlobalArgs,
    #[command(flatten)]
    pub args: DelArgs,
}

impl DelCommand {
    /// Runs the command: builds the request, sends it, prints the answer.
    pub async fn run(&self, ctx: &mut Ctx<'_>) -> Result<(), CliError> {
        let printer = ctx.printer(&self.global)?;
        let req = self.args.request()?;
        let resp = ctx
            .conn(&self.global)
            .call(|ch| async move { crate::conn::kv(ch).delete_range(req).await })
            .await?;
        printer.del(ctx.out, &resp)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(list: &[&str]) -> DelArgs {
        DelArgs {
            args: list.iter().map(OsString::from).collect(),
            ..Default::default()
        }
    }

    #[test]
    fn argument_counts() {
        assert_eq!(args(&[]).request().unwrap_err().code, 128);
        assert_eq!(args(&["a", "b", "c"]).request().unwrap_err().code, 128);
        let r = args(&["a", "c"]).request().unwrap();
        assert_eq!((r.key, r.range_end), (b"a".to_vec(), b"c".to_vec()));
    }

    #[test]
    fn everything_with_empty_prefix() {
        let mut a = args(&[""]);
        a.prefix = true;
        a.prev_kv = true;
        let r = a.request().unwrap();
        assert_eq!((r.key, r.range_end, r.prev_kv), (vec![0], vec![0], true));
    }
}
