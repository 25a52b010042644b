//! Reads etcdctl's transaction text format from stdin: comparison lines, a
//! blank line, success requests, a blank line, failure requests, a blank
//! line. Comparisons look like `mod("key") > "0"` or `value("k") = "v"`;
//! requests are `put`/`get`/`del` lines taking the flags of those commands.

mod argify;

use std::ffi::OsString;
use std::io::{BufRead, Write};
use std::os::unix::ffi::OsStringExt;

use clap::Parser;
use rafter_proto::etcdserverpb::{
    compare::{CompareResult, CompareTarget, TargetUnion},
    request_op::Request,
    Compare, RequestOp, TxnRequest,
};

use crate::commands::{del::DelArgs, get::GetArgs, put::PutArgs};
use crate::error::CliError;
use crate::output::quote::go_quote;

pub use argify::argify;

/// Prompts printed before each section in interactive mode.
const PROMPTS: [&str; 3] = [
    "compares:",
    "success requests (get, put, del):",
    "failure requests (get, put, del):",
];

/// Reads a whole transaction from `input`. With `prompts`, each section is
/// announced there first (`txn --interactive`).
pub fn read_txn(
    input: &mut dyn BufRead,
    mut prompts: Option<&mut dyn Write>,
) -> Result<TxnRequest, CliError> {
    let mut prompt = |i: usize| -> Result<(), CliError> {
        if let Some(out) = prompts.as_deref_mut() {
            writeln!(out, "{}", PROMPTS[i])?;
            out.flush()?;
        }
        Ok(())
    };
    prompt(0)?;
    let compare = read_section(input)?
        .iter()
        .map(|l| parse_compare(l))
        .collect::<Result<_, _>>()?;
    prompt(1)?;
    let success = read_ops(input)?;
    prompt(2)?;
    let failure = read_ops(input)?;
    Ok(TxnRequest {
        compare,
        success,
        failure,
    })
}

fn read_ops(input: &mut dyn BufRead) -> Result<Vec<RequestOp>, CliError> {
    read_section(input)?.iter().map(|l| parse_op(l)).collect()
}

/// The trimmed lines up to the next blank one. Running out of input first
/// is an error, as in etcdctl, even right after the last request.
fn read_section(input: &mut dyn BufRead) -> Result<Vec<String>, CliError> {
    let mut lines = Vec::new();
    loop {
        let mut raw = Vec::new();
        input
            .read_until(b'\n', &mut raw)
            .map_err(|e| CliError::invalid_input(e.to_string()))?;
        if raw.last() != Some(&b'\n') {
            return Err(CliError::invalid_input("EOF"));
        }
        let line = String::from_utf8_lossy(&raw).trim().to_string();
        if line.is_empty() {
            return Ok(lines);
        }
        lines.push(line);
    }
}

/// The request lines of a txn, parsed with the flags of the commands.
#[derive(Debug, Parser)]
#[command(no_binary_name = true, disable_help_subcommand = true)]
enum OpLine {
    Put(PutArgs),
    Get(GetArgs),
    Del(DelArgs),
}

/// Parses one request line (`put k v --prev-kv`, `get k --prefix`, ...).
pub fn parse_op(line: &str) -> Result<RequestOp, CliError> {
    let args = argify(line);
    if args.len() < 2 {
        return Err(CliError::invalid_input(format!(
            "invalid txn compare request: {line}"
        )));
    }
    let parsed = OpLine::try_parse_from(args.into_iter().map(OsString::from_vec))
        .map_err(|_| CliError::invalid_input(format!("invalid txn request: {line}")))?;
    let request = match parsed {
        OpLine::Put(a) => Request::RequestPut(a.request(None)?),
        OpLine::Get(a) => Request::RequestRange(a.request()?),
        OpLine::Del(a) => Request::RequestDeleteRange(a.request()?),
    };
    Ok(RequestOp {
        request: Some(request),
    })
}

/// Parses one comparison: `<target>("<key>") <op> "<value>"` where target is
/// ver/version, c/create, m/mod, val/value or lease and op is =, !=, < or >.
pub fn parse_compare(line: &str) -> Result<Compare, CliError> {
    let malformed =
        |detail: String| CliError::invalid_input(format!("malformed comparison: {line}{detail}"));
    let Some((target, rest)) = line.split_once('(') else {
        return Err(malformed(String::new()));
    };
    let mut scan = Scanner::new(rest);
    let key = scan.quoted();
    let op = key
        .as_ref()
        .and_then(|_| scan.literal(')'))
        .and_then(|_| scan.word());
    let value = op.as_ref().and_then(|_| scan.quoted());
    let (Some(key), Some(op), Some(value)) = (key.clone(), op.clone(), value.clone()) else {
        return Err(malformed(format!(
            "; got {target}({}) {} {}",
            go_quote(&key.unwrap_or_default()),
            op.unwrap_or_default(),
            go_quote(&value.unwrap_or_default())
        )));
    };
    let result = match op.as_str() {
        "=" => CompareResult::Equal,
        "!=" => CompareResult::NotEqual,
        "<" => CompareResult::Less,
        ">" => CompareResult::Greater,
        other => return Err(malformed(format!(" (unknown op {other})"))),
    };
    let invalid = || CliError::invalid_input(format!("invalid txn compare request: {line}"));
    let number = || -> Result<i64, CliError> {
        std::str::from_utf8(&value)
            .ok()
            .and_then(|v| v.parse::<i64>().ok())
            .ok_or_else(invalid)
    };
    let (target, union) = match target {
        "ver" | "version" => (CompareTarget::Version, TargetUnion::Version(number()?)),
        "c" | "create" => (
            CompareTarget::Create,
            TargetUnion::CreateRevision(number()?),
        ),
        "m" | "mod" => (CompareTarget::Mod, TargetUnion::ModRevision(number()?)),
        "val" | "value" => (CompareTarget::Value, TargetUnion::Value(value.clone())),
        "lease" => {
            let id = std::str::from_utf8(&value)
                .ok()
                .and_then(|v| crate::commands::put::parse_lease_id(v).ok())
                .ok_or_else(invalid)?;
            (CompareTarget::Lease, TargetUnion::Lease(id))
        }
        other => return Err(malformed(format!(" (unknown target {other})"))),
    };
    Ok(Compare {
        result: result as i32,
        target: target as i32,
        key,
        range_end: Vec::new(),
        target_union: Some(union),
    })
}

/// A cursor over the text after `target(` that reads Go-quoted strings,
/// literal characters and bare words, skipping spaces in between.
struct Scanner {
    chars: Vec<char>,
    pos: usize,
}

impl Scanner {
    fn new(text: &str) -> Self {
        Self {
            chars: text.chars().collect(),
            pos: 0,
        }
    }

    fn skip_spaces(&mut self) {
        while self.chars.get(self.pos).is_some_and(|c| c.is_whitespace()) {
            self.pos += 1;
        }
    }

    fn literal(&mut self, c: char) -> Option<()> {
        if self.chars.get(self.pos) == Some(&c) {
            self.pos += 1;
            Some(())
        } else {
            None
        }
    }

    fn word(&mut self) -> Option<String> {
        self.skip_spaces();
        let start = self.pos;
        while self.chars.get(self.pos).is_some_and(|c| !c.is_whitespace()) {
            self.pos += 1;
        }
        (self.pos > start).then(|| self.chars[start..self.pos].iter().collect())
    }

    /// A `"..."` string with Go escapes or a `` `...` `` raw string.
    fn quoted(&mut self) -> Option<Vec<u8>> {
        self.skip_spaces();
        let quote = *self.chars.get(self.pos)?;
        if quote != '"' && quote != '`' {
            return None;
        }
        let mut i = self.pos + 1;
        let mut out = Vec::new();
        loop {
            let c = *self.chars.get(i)?;
            if c == quote {
                self.pos = i + 1;
                return Some(out);
            }
            if c == '\\' && quote == '"' {
                i += 1 + argify::unescape(&self.chars[i + 1..], &mut out)?;
                continue;
            }
            let mut buf = [0u8; 4];
            out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
            i += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rafter_proto::etcdserverpb::{DeleteRangeRequest, PutRequest};

    fn read(text: &str) -> Result<TxnRequest, CliError> {
        read_txn(&mut text.as_bytes(), None)
    }

    #[test]
    fn reads_three_sections() {
        let txn = read(
            "mod(\"k1\") > \"0\"\nvalue(\"k2\") = \"vk2\"\n\nput k1 \"new v\"\nget k2 --prefix\n\ndel k3 --prev-kv\n\n",
        )
        .unwrap();
        assert_eq!(txn.compare.len(), 2);
        assert_eq!(txn.compare[0].target, CompareTarget::Mod as i32);
        assert_eq!(txn.compare[0].result, CompareResult::Greater as i32);
        assert_eq!(
            txn.compare[0].target_union,
            Some(TargetUnion::ModRevision(0))
        );
        assert_eq!(
            txn.compare[1].target_union,
            Some(TargetUnion::Value(b"vk2".to_vec()))
        );
        assert_eq!(txn.success.len(), 2);
        assert_eq!(
            txn.success[0].request,
            Some(Request::RequestPut(PutRequest {
                key: b"k1".to_vec(),
                value: b"new v".to_vec(),
                ..Default::default()
            }))
        );
        match &txn.success[1].request {
            Some(Request::RequestRange(r)) => assert_eq!(r.range_end, b"k3"),
            other => panic!("unexpected {other:?}"),
        }
        assert_eq!(
            txn.failure[0].request,
            Some(Request::RequestDeleteRange(DeleteRangeRequest {
                key: b"k3".to_vec(),
                range_end: Vec::new(),
                prev_kv: true,
            }))
        );
    }

    #[test]
    fn blank_sections_and_whitespace_lines() {
        let txn = read("  \n  \n\n").unwrap();
        assert!(txn.compare.is_empty() && txn.success.is_empty() && txn.failure.is_empty());
    }

    #[test]
    fn missing_final_blank_line_is_eof() {
        for text in [
            "",
            "\nput a b\n",
            "\nput a b\n\nput c d",
            "version(\"k\") = \"0\"\n\n\n",
        ] {
            let err = read(text).unwrap_err();
            assert_eq!((err.code, err.message.as_str()), (3, "EOF"), "{text:?}");
        }
    }

    #[test]
    fn interactive_prompts() {
        let mut prompts = Vec::new();
        read_txn(&mut "\n\n\n".as_bytes(), Some(&mut prompts)).unwrap();
        assert_eq!(
            String::from_utf8(prompts).unwrap(),
            "compares:\nsuccess requests (get, put, del):\nfailure requests (get, put, del):\n"
        );
    }

    #[test]
    fn compare_targets_and_aliases() {
        for (line, target) in [
            ("ver(\"z\") = \"1\"", CompareTarget::Version),
            ("version(\"z\") != \"1\"", CompareTarget::Version),
            ("c(\"z\") < \"1\"", CompareTarget::Create),
            ("create(\"z\") > \"1\"", CompareTarget::Create),
            ("m(\"z\") = \"1\"", CompareTarget::Mod),
            ("val(\"z\") = \"x\"", CompareTarget::Value),
            ("lease(\"z\") = \"2040a200b5ab4e22\"", CompareTarget::Lease),
        ] {
            assert_eq!(parse_compare(line).unwrap().target, target as i32, "{line}");
        }
        let c = parse_compare("value(\"a\\nb\") = `raw\\n`").unwrap();
        assert_eq!(c.key, b"a\nb");
        assert_eq!(c.target_union, Some(TargetUnion::Value(b"raw\\n".to_vec())));
    }

    #[test]
    fn compare_errors_match_etcdctl() {
        let msg = |line: &str| parse_compare(line).unwrap_err().message;
        assert_eq!(
            msg("foo(\"z\") = \"1\""),
            "malformed comparison: foo(\"z\") = \"1\" (unknown target foo)"
        );
        assert_eq!(
            msg("mod(z) = \"1\""),
            "malformed comparison: mod(z) = \"1\"; got mod(\"\")  \"\""
        );
        assert_eq!(
            msg("mod(\"z\") = 1"),
            "malformed comparison: mod(\"z\") = 1; got mod(\"z\") = \"\""
        );
        assert_eq!(
            msg("version(\"z\") = \"x\""),
            "invalid txn compare request: version(\"z\") = \"x\""
        );
        assert_eq!(msg("nothing"), "malformed comparison: nothing");
        assert_eq!(parse_compare("mod(\"z\") =< \"1\"").unwrap_err().code, 3);
    }

    #[test]
    fn op_errors_match_etcdctl() {
        let err = |line: &str| parse_op(line).unwrap_err();
        assert_eq!(err("put").message, "invalid txn compare request: put");
        assert_eq!(err("foo bar").message, "invalid txn request: foo bar");
        assert_eq!(
            err("get a --bad").message,
            "invalid txn request: get a --bad"
        );
        assert_eq!(err("get a --bad").code, 3);
        let e = err("put a");
        assert_eq!(e.code, 128);
        assert_eq!(
            e.message,
            "put command needs 1 argument and input from stdin or 2 arguments"
        );
    }

    #[test]
    fn op_flags() {
        let op = parse_op("put k v --lease=2040a200b5ab4e22 --prev-kv").unwrap();
        match op.request {
            Some(Request::RequestPut(p)) => {
                assert_eq!(p.lease, 0x2040a200b5ab4e22);
                assert!(p.prev_kv);
            }
            other => panic!("unexpected {other:?}"),
        }
        let op = parse_op("get a --prefix --limit=1 --keys-only").unwrap();
        match op.request {
            Some(Request::RequestRange(r)) => {
                assert_eq!(
                    (r.range_end, r.limit, r.keys_only),
                    (b"b".to_vec(), 1, true)
                );
            }
            other => panic!("unexpected {other:?}"),
        }
    }
}
