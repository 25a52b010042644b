//! `put`: the flags of etcdctl's put, turned into a `PutRequest` (also for
//! `put` lines inside `txn`), and the command that sends it.

use std::ffi::OsString;
use std::io::Read;
use std::os::unix::ffi::OsStrExt;

use rafter_proto::etcdserverpb::PutRequest;

use crate::error::CliError;
use crate::global::GlobalArgs;
use crate::Ctx;

/// Flags and arguments of `put`.
#[derive(Debug, Clone, clap::Args)]
pub struct PutArgs {
    /// Lease ID (in hexadecimal) to attach to the key
    #[arg(long, default_value = "0")]
    pub lease: String,
    /// Return the previous key-value pair before modification
    #[arg(
        long,
        num_args = 0..=1,
        require_equals = true,
        default_missing_value = "true",
        default_value_t = false,
        action = clap::ArgAction::Set
    )]
    pub prev_kv: bool,
    /// Updates the key using its current value
    #[arg(
        long,
        num_args = 0..=1,
        require_equals = true,
        default_missing_value = "true",
        default_value_t = false,
        action = clap::ArgAction::Set
    )]
    pub ignore_value: bool,
    /// Updates the key using its current lease
    #[arg(
        long,
        num_args = 0..=1,
        require_equals = true,
        default_missing_value = "true",
        default_value_t = false,
        action = clap::ArgAction::Set
    )]
    pub ignore_lease: bool,
    /// <key> [value]; without a value it is read from stdin
    #[arg(value_name = "KEY [VALUE]")]
    pub args: Vec<OsString>,
}

const NEEDS_ARGS: &str = "put command needs 1 argument and input from stdin or 2 arguments";

impl PutArgs {
    /// The request these arguments describe. `stdin` supplies the value when
    /// only a key is given; without it, a missing value is an error.
    pub fn request(&self, stdin: Option<&mut dyn Read>) -> Result<PutRequest, CliError> {
        let key = self
            .args
            .first()
            .ok_or_else(|| CliError::bad_args(NEEDS_ARGS))?
            .as_bytes()
            .to_vec();
        let value = match (self.args.get(1), self.ignore_value) {
            (Some(_), true) => {
                return Err(CliError::bad_args(
                    "put command needs only 1 argument when 'ignore-value' is set",
                ))
            }
            (Some(v), false) => v.as_bytes().to_vec(),
            (None, true) => Vec::new(),
            (None, false) => {
                let mut buf = Vec::new();
                if let Some(input) = stdin {
                    input
                        .read_to_end(&mut buf)
                        .map_err(|e| CliError::bad_args(e.to_string()))?;
                }
                if buf.is_empty() {
                    return Err(CliError::bad_args(NEEDS_ARGS));
                }
                buf
            }
        };
        Ok(PutRequest {
            key,
            value,
            lease: parse_lease_id(&self.lease)?,
            prev_kv: self.prev_kv,
            ignore_value: self.ignore_value,
            ignore_lease: self.ignore_lease,
        })
    }
}

/// A lease ID written in hexadecimal, as etcdctl prints and reads them.
pub fn parse_lease_id(text: &str) -> Result<i64, CliError> {
    parse_hex_i64(text).map_err(|why| {
        CliError::bad_args(format!(
            "bad lease ID (strconv.ParseInt: parsing {text:?}: {why}), expecting ID in Hex"
        ))
    })
}

/// Go's `strconv.ParseInt(text, 16, 64)`, with its error wording.
pub(crate) fn parse_hex_i64(text: &str) -> Result<i64, &'static str> {
    let (negative, digits) = match text.as_bytes().first() {
        Some(b'-') => (true, &text[1..]),
        Some(b'+') => (false, &text[1..]),
        _ => (false, text),
    };
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err("invalid syntax");
    }
    let magnitude = u64::from_str_radix(digits, 16).map_err(|_| "value out of range")?;
    if negative {
        if magnitude > 1 << 63 {
            return Err("value out of range");
        }
        Ok((magnitude as i64).wrapping_neg())
    } else {
        i64::try_from(magnitude).map_err(|_| "value out of range")
    }
}

/// `rafter put`.
#[derive(Debug, clap::Args)]
pub struct PutCommand {
    #[command(flatten)]
    pub global: GlobalArgs,
    #[command(flatten)]
    pub args: PutArgs,
}

impl PutCommand {
    /// Runs the command: builds the request, sends it, prints the answer.
    pub async fn run(&self, ctx: &mut Ctx<'_>) -> Result<(), CliError> {
        let printer = ctx.printer(&self.global)?;
        let req = self.args.request(Some(&mut *ctx.stdin))?;
        let resp = ctx
            .conn(&self.global)
            .call(|ch| async move { crate::conn::kv(ch).put(req).await })
            .await?;
        printer.put(ctx.out, &resp)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(list: &[&str]) -> PutArgs {
        PutArgs {
            lease: "0".into(),
            prev_kv: false,
            ignore_value: false,
            ignore_lease: false,
            args: list.iter().map(OsString::from).collect(),
        }
    }

    #[test]
    fn value_comes_from_args_or_stdin() {
        let req = args(&["k", "v"]).request(None).unwrap();
        assert_eq!((req.key, req.value), (b"k".to_vec(), b"v".to_vec()));
        let mut input: &[u8] = b"line1\nline2\n";
        let req = args(&["k"]).request(Some(&mut input)).unwrap();
        assert_eq!(req.value, b"line1\nline2\n");
        let mut empty: &[u8] = b"";
        assert_eq!(
            args(&["k"]).request(Some(&mut empty)).unwrap_err().code,
            128
        );
        assert_eq!(args(&[]).request(None).unwrap_err().message, NEEDS_ARGS);
    }

    #[test]
    fn ignore_value_takes_only_a_key() {
        let mut a = args(&["k", "v"]);
        a.ignore_value = true;
        assert!(a.request(None).is_err());
        a.args.pop();
        assert!(a.request(None).unwrap().value.is_empty());
    }

    #[test]
    fn lease_ids_are_hex() {
        assert_eq!(parse_lease_id("0"), Ok(0));
        assert_eq!(parse_lease_id("2040a200b5ab4e22"), Ok(0x2040a200b5ab4e22));
        assert_eq!(
            parse_lease_id("zz").unwrap_err().message,
            "bad lease ID (strconv.ParseInt: parsing \"zz\": invalid syntax), expecting ID in Hex"
        );
        assert!(parse_lease_id("ffffffffffffffff").is_err());
    }
}
