//! `get`: etcdctl's range flags turned into a `RangeRequest` (also for `get`
//! lines inside `txn`), and the command that sends it.

use std::ffi::OsString;
use std::os::unix::ffi::OsStrExt;

use rafter_proto::etcdserverpb::{
    range_request::{SortOrder, SortTarget},
    RangeRequest,
};

use crate::error::CliError;
use crate::global::GlobalArgs;
use crate::keyrange;
use crate::output::Format;
use crate::Ctx;

/// Flags and arguments of `get`.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct GetArgs {
    /// Linearizable(l) or Serializable(s)
    #[arg(long, default_value = "l")]
    pub consistency: String,
    /// Order of results; ASCEND or DESCEND (ASCEND by default)
    #[arg(long, default_value = "")]
    pub order: String,
    /// Sort target; CREATE, KEY, MODIFY, VALUE, or VERSION
    #[arg(long, default_value = "")]
    pub sort_by: String,
    /// Maximum number of results
    #[arg(long, default_value_t = 0, allow_negative_numbers = true)]
    pub limit: i64,
    /// Get keys with matching prefix
    #[arg(
        long,
        num_args = 0..=1,
        require_equals = true,
        default_missing_value = "true",
        default_value_t = false,
        action = clap::ArgAction::Set
    )]
    pub prefix: bool,
    /// Get keys that are greater than or equal to the given key using byte compare
    #[arg(
        long,
        num_args = 0..=1,
        require_equals = true,
        default_missing_value = "true",
        default_value_t = false,
        action = clap::ArgAction::Set
    )]
    pub from_key: bool,
    /// Specify the kv revision
    #[arg(long, default_value_t = 0, allow_negative_numbers = true)]
    pub rev: i64,
    /// Get only the keys
    #[arg(
        long,
        num_args = 0..=1,
        require_equals = true,
        default_missing_value = "true",
        default_value_t = false,
        action = clap::ArgAction::Set
    )]
    pub keys_only: bool,
    /// Get only the count
    #[arg(
        long,
        num_args = 0..=1,
        require_equals = true,
        default_missing_value = "true",
        default_value_t = false,
        action = clap::ArgAction::Set
    )]
    pub count_only: bool,
    /// Only write values when using the "simple" output format
    #[arg(
        long,
        num_args = 0..=1,
        require_equals = true,
        default_missing_value = "true",
        default_value_t = false,
        action = clap::ArgAction::Set
    )]
    pub print_value_only: bool,
    /// Minimum create revision
    #[arg(long, alias = "min-create-revision", default_value_t = 0)]
    pub min_create_rev: i64,
    /// Maximum create revision
    #[arg(long, alias = "max-create-revision", default_value_t = 0)]
    pub max_create_rev: i64,
    /// Minimum modification revision
    #[arg(long, alias = "min-mod-revision", default_value_t = 0)]
    pub min_mod_rev: i64,
    /// Maximum modification revision
    #[arg(long, alias = "max-mod-revision", default_value_t = 0)]
    pub max_mod_rev: i64,
    /// <key> [range_end]
    #[arg(value_name = "KEY [RANGE_END]")]
    pub args: Vec<OsString>,
}

impl GetArgs {
    /// The request these arguments describe, or etcdctl's error for them.
    pub fn request(&self) -> Result<RangeRequest, CliError> {
        let Some(first) = self.args.first() else {
            return Err(CliError::bad_args(
                "get command needs one argument as key and an optional argument as range_end",
            ));
        };
        check_range_flags(self.prefix, self.from_key, self.args.len())?;
        if self.keys_only && self.count_only {
            return Err(CliError::bad_args(
                "`--keys-only` and `--count-only` cannot be set at the same time, choose one",
            ));
        }
        let (key, range_end) = key_range(
            first.as_bytes(),
            self.args.get(1),
            self.prefix,
            self.from_key,
        );
        let serializable = match self.consistency.as_str() {
            "l" => false,
            "s" => true,
            other => {
                return Err(CliError::bad_feature(format!(
                    "unknown consistency flag {other:?}"
                )))
            }
        };
        let order = match self.order.to_uppercase().as_str() {
            "" => SortOrder::None,
            "ASCEND" => SortOrder::Ascend,
            "DESCEND" => SortOrder::Descend,
            _ => {
                return Err(CliError::bad_feature(format!(
                    "bad sort order {}",
                    self.order
                )))
            }
        };
        let target = match self.sort_by.to_uppercase().as_str() {
            "" | "KEY" => SortTarget::Key,
            "CREATE" => SortTarget::Create,
            "MODIFY" => SortTarget::Mod,
            "VALUE" => SortTarget::Value,
            "VERSION" => SortTarget::Version,
            _ => {
                return Err(CliError::bad_feature(format!(
                    "bad sort target {}",
                    self.sort_by
                )))
            }
        };
        // Keys come back in ascending key order anyway; asking for it
        // explicitly would only make the server sort the whole range.
        let order = if target == SortTarget::Key && order == SortOrder::Ascend {
            SortOrder::None
        } else {
            order
        };
        Ok(RangeRequest {
            key,
            range_end,
            limit: self.limit,
            revision: self.rev,
            sort_order: order as i32,
            sort_target: target as i32,
            serializable,
            keys_only: self.keys_only,
            count_only: self.count_only,
            min_mod_revision: self.min_mod_rev,
            max_mod_revision: self.max_mod_rev,
            min_create_revision: self.min_create_rev,
            max_create_revision: self.max_create_rev,
        })
    }
}

/// etcdctl's checks shared by `get` and `del` on `--prefix`/`--from-key`.
pub fn check_range_flags(prefix: bool, from_key: bool, nargs: usize) -> Result<(), CliError> {
    if prefix && from_key {
        return Err(CliError::bad_args(
            "`--prefix` and `--from-key` cannot be set at the same time, choose one",
        ));
    }
    if (prefix || from_key) && nargs > 1 {
        return Err(CliError::bad_args(
            "too many arguments, only accept one argument when `--prefix` or `--from-key` is set",
        ));
    }
    Ok(())
}

/// The `(key, range_end)` of a `get`/`del` from its arguments and flags.
pub fn key_range(
    key: &[u8],
    range_end: Option<&OsString>,
    prefix: bool,
    from_key: bool,
) -> (Vec<u8>, Vec<u8>) {
    if prefix {
        keyrange::prefix_range(key)
    } else if from_key {
        keyrange::from_key_range(key)
    } else {
        (
            key.to_vec(),
            range_end.map(|e| e.as_bytes().to_vec()).unwrap_or_default(),
        )
    }
}

/// `rafter get`.
#[derive(Debug, clap::Args)]
pub struct GetCommand {
    #[command(flatten)]
    pub global: GlobalArgs,
    #[command(flatten)]
    pub args: GetArgs,
}

impl GetCommand {
    /// Runs the command: builds the request, sends it, prints the answer.
    pub async fn run(&self, ctx: &mut Ctx<'_>) -> Result<(), CliError> {
        let printer = ctx.printer(&self.global)?;
        let req = self.args.request()?;
        let resp = ctx
            .conn(&self.global)
            .call(|ch| async move { crate::conn::kv(ch).range(req).await })
            .await?;
        if self.args.count_only && printer.format != Format::Fields {
            return Err(CliError::bad_args(
                "--count-only is only for `--write-out=fields`",
            ));
        }
        if self.args.print_value_only && printer.format != Format::Simple {
            return Err(CliError::bad_args(
                "print-value-only is only for `--write-out=simple`",
            ));
        }
        printer.get(ctx.out, &resp, self.args.print_value_only)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(list: &[&str]) -> GetArgs {
        GetArgs {
            consistency: "l".into(),
            args: list.iter().map(OsString::from).collect(),
            ..Default::default()
        }
    }

    #[test]
    fn prefix_and_from_key_ranges() {
        let mut a = args(&["k"]);
        a.prefix = true;
        let r = a.request().unwrap();
        assert_eq!((r.key, r.range_end), (b"k".to_vec(), b"l".to_vec()));
        let mut a = args(&[""]);
        a.from_key = true;
        let r = a.request().unwrap();
        assert_eq!((r.key, r.range_end), (vec![0], vec![0]));
        let r = args(&["a", "c", "ignored"]).request().unwrap();
        assert_eq!((r.key, r.range_end), (b"a".to_vec(), b"c".to_vec()));
    }

    #[test]
    fn flag_errors_match_etcdctl() {
        assert_eq!(args(&[]).request().unwrap_err().code, 128);
        let mut a = args(&["a", "b"]);
        a.prefix = true;
        assert_eq!(a.request().unwrap_err().code, 128);
        let mut a = args(&["a"]);
        a.consistency = "x".into();
        assert_eq!(
            a.request().unwrap_err().message,
            "unknown consistency flag \"x\""
        );
        let mut a = args(&["a"]);
        a.order = "x".into();
        assert_eq!(a.request().unwrap_err().message, "bad sort order x");
        let mut a = args(&["a"]);
        a.sort_by = "x".into();
        assert_eq!(a.request().unwrap_err().code, 4);
    }

    #[test]
    fn sorting() {
        let mut a = args(&["a"]);
        a.order = "descend".into();
        a.sort_by = "modify".into();
        let r = a.request().unwrap();
        assert_eq!(r.sort_order, SortOrder::Descend as i32);
        assert_eq!(r.sort_target, SortTarget::Mod as i32);
        let mut a = args(&["a"]);
        a.order = "ASCEND".into();
        assert_eq!(a.request().unwrap().sort_order, SortOrder::None as i32);
    }
}
