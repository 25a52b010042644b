//! `conflict-policy set|list` and `conflicts`: the policies that decide a
//! local write concurrent with a committed change of its key, and the
//! replicated conflict log that records every such meeting (seed 004
//! "Case 2"). Rafter's own commands; etcdctl has no equivalent.
//!
//! Simple output:
//! - `conflict-policy set`: `OK`.
//! - `conflict-policy list`: `PREFIX POLICY` per line (`""` for the empty
//!   prefix), prefixes without a line are `commit-order`.
//! - `conflicts`: one line per record, oldest first: `REVISION KEY
//!   MEMBER#SEQ DECISION local=VALUE committed=VALUE` (`committed=<deleted>`
//!   when the key was deleted).
//!
//! `-w json` prints every field.

use std::ffi::OsString;
use std::io::Write;
use std::os::unix::ffi::OsStrExt;

use rafter_proto::rafterpb::conflicts_client::ConflictsClient;
use rafter_proto::rafterpb::{
    ConflictDecision, ConflictListRequest, ConflictListResponse, ConflictPolicy, ConflictRecord,
    HlcStamp, ListPoliciesRequest, ListPoliciesResponse, SetPolicyRequest,
};

use crate::error::CliError;
use crate::global::GlobalArgs;
use crate::output::Format;
use crate::Ctx;

/// `rafter conflict-policy <subcommand>`.
#[derive(Debug, clap::Args)]
pub struct ConflictPolicyCommand {
    #[command(flatten)]
    pub global: GlobalArgs,
    #[command(subcommand)]
    pub action: PolicyAction,
}

/// Conflict policy subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum PolicyAction {
    /// Sets the policy of every key starting with PREFIX (the longest matching prefix decides)
    Set {
        #[arg(value_name = "PREFIX")]
        prefix: OsString,
        /// commit-order, last-writer-wins or reject-if-changed
        #[arg(value_name = "POLICY")]
        policy: String,
    },
    /// Lists the prefixes with a policy other than commit-order
    List,
}

/// `rafter conflicts`: the conflict log.
#[derive(Debug, clap::Args)]
pub struct ConflictsCommand {
    #[command(flatten)]
    pub global: GlobalArgs,
    /// Only conflicts on keys starting with this prefix
    #[arg(long, default_value = "")]
    pub prefix: OsString,
    /// At most this many records, oldest first (0: all)
    #[arg(long, default_value_t = 0)]
    pub limit: u64,
}

/// The CLI's name of a policy.
pub fn policy_name(p: ConflictPolicy) -> &'static str {
    match p {
        ConflictPolicy::CommitOrder => "commit-order",
        ConflictPolicy::LastWriterWins => "last-writer-wins",
        ConflictPolicy::RejectIfChanged => "reject-if-changed",
    }
}

fn parse_policy(name: &str) -> Result<ConflictPolicy, CliError> {
    [
        ConflictPolicy::CommitOrder,
        ConflictPolicy::LastWriterWins,
        ConflictPolicy::RejectIfChanged,
    ]
    .into_iter()
    .find(|p| policy_name(*p) == name)
    .ok_or_else(|| {
        CliError::bad_args(format!(
            "unknown conflict policy {name:?} (commit-order, last-writer-wins or reject-if-changed)"
        ))
    })
}

fn decision_name(d: ConflictDecision) -> &'static str {
    match d {
        ConflictDecision::AppliedInCommitOrder => "applied-in-commit-order",
        ConflictDecision::LocalWon => "local-won",
        ConflictDecision::LocalLost => "local-lost",
        ConflictDecision::Rejected => "rejected",
    }
}

fn text(bytes: &[u8], hex: bool) -> String {
    if hex {
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    } else {
        String::from_utf8_lossy(bytes).into_owned()
    }
}

fn io(e: std::io::Error) -> CliError {
    CliError::bad_args(format!("writing output: {e}"))
}

fn simple_or_json(global: &GlobalArgs) -> Result<bool, CliError> {
    match global.format()? {
        Format::Simple => Ok(false),
        Format::Json => Ok(true),
        _ => Err(CliError::bad_feature(
            "conflict commands print simple or json output",
        )),
    }
}

impl ConflictPolicyCommand {
    pub async fn run(&self, ctx: &mut Ctx<'_>) -> Result<(), CliError> {
        let json = simple_or_json(&self.global)?;
        match &self.action {
            PolicyAction::Set { prefix, policy } => {
                let req = SetPolicyRequest {
                    prefix: prefix.as_bytes().to_vec(),
                    policy: parse_policy(policy)? as i32,
                };
                let resp = ctx
                    .conn(&self.global)
                    .call(|ch| async move { ConflictsClient::new(ch).set_policy(req).await })
                    .await?;
                if json {
                    writeln!(
                        ctx.out,
                        "{}",
                        serde_json::json!({"revision": resp.revision})
                    )
                } else {
                    writeln!(ctx.out, "OK")
                }
                .map_err(io)
            }
            PolicyAction::List => {
                let resp = ctx
                    .conn(&self.global)
                    .call(|ch| async move {
                        ConflictsClient::new(ch)
                            .list_policies(ListPoliciesRequest {})
                            .await
                    })
                    .await?;
                print_policies(ctx.out, &resp, json, self.global.hex).map_err(io)
            }
        }
    }
}

fn print_policies(
    out: &mut dyn Write,
    resp: &ListPoliciesResponse,
    json: bool,
    hex: bool,
) -> std::io::Result<()> {
    if json {
        let list: Vec<serde_json::Value> = resp
            .policies
            .iter()
            .map(|p| serde_json::json!({"prefix": text(&p.prefix, hex), "policy": policy_name(p.policy())}))
            .collect();
        return writeln!(
            out,
            "{}",
            serde_json::json!({"revision": resp.revision, "member_id": format!("{:x}", resp.member_id), "policies": list})
        );
    }
    for p in &resp.policies {
        let prefix = if p.prefix.is_empty() {
            "\"\"".to_string()
        } else {
            text(&p.prefix, hex)
        };
        writeln!(out, "{prefix} {}", policy_name(p.policy()))?;
    }
    Ok(())
}

impl ConflictsCommand {
    pub async fn run(&self, ctx: &mut Ctx<'_>) -> Result<(), CliError> {
        let json = simple_or_json(&self.global)?;
        let req = ConflictListRequest {
            prefix: self.prefix.as_bytes().to_vec(),
            limit: self.limit,
        };
        let resp = ctx
            .conn(&self.global)
            .call(|ch| async move { ConflictsClient::new(ch).list(req).await })
            .await?;
        print_conflicts(ctx.out, &resp, json, self.global.hex).map_err(io)
    }
}

fn stamp_json(s: &Option<HlcStamp>) -> serde_json::Value {
    match s {
        None => serde_json::Value::Null,
        Some(s) => serde_json::json!({
            "physical_ms": s.physical_ms,
            "logical": s.logical,
            "member_id": format!("{:x}", s.member_id),
        }),
    }
}

fn record_json(r: &ConflictRecord, hex: bool) -> serde_json::Value {
    serde_json::json!({
        "key": text(&r.key, hex),
        "local_value": text(&r.local_value, hex),
        "committed_value": if r.committed_exists {
            serde_json::Value::String(text(&r.committed_value, hex))
        } else {
            serde_json::Value::Null
        },
        "member_id": format!("{:x}", r.member_id),
        "seq": r.seq,
        "local_stamp": stamp_json(&r.local_stamp),
        "committed_stamp": stamp_json(&r.committed_stamp),
        "context_revision": r.context_revision,
        "committed_mod_revision": r.committed_mod_revision,
        "revision": r.revision,
        "policy": policy_name(r.policy()),
        "decision": decision_name(r.decision()),
    })
}

fn print_conflicts(
    out: &mut dyn Write,
    resp: &ConflictListResponse,
    json: bool,
    hex: bool,
) -> std::io::Result<()> {
    if json {
        let list: Vec<serde_json::Value> =
            resp.conflicts.iter().map(|r| record_json(r, hex)).collect();
        return writeln!(
            out,
            "{}",
            serde_json::json!({
                "revision": resp.revision,
                "applied_index": resp.applied_index,
                "member_id": format!("{:x}", resp.member_id),
                "conflicts": list,
            })
        );
    }
    for r in &resp.conflicts {
        let committed = if r.committed_exists {
            text(&r.committed_value, hex)
        } else {
            "<deleted>".into()
        };
        writeln!(
            out,
            "{} {} {:x}#{} {} local={} committed={committed}",
            r.revision,
            text(&r.key, hex),
            r.member_id,
            r.seq,
            decision_name(r.decision()),
            text(&r.local_value, hex),
        )?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn policy_names_round_trip() {
        for p in [
            ConflictPolicy::CommitOrder,
            ConflictPolicy::LastWriterWins,
            ConflictPolicy::RejectIfChanged,
        ] {
            assert_eq!(parse_policy(policy_name(p)).unwrap(), p);
        }
        assert!(parse_policy("first-writer-wins").is_err());
    }

    #[test]
    fn a_record_prints_on_one_line() {
        let resp = ConflictListResponse {
            conflicts: vec![ConflictRecord {
                key: b"/cfg/a".to_vec(),
                local_value: b"mine".to_vec(),
                committed_exists: false,
                member_id: 0xab,
                seq: 3,
                revision: 9,
                decision: ConflictDecision::Rejected as i32,
                policy: ConflictPolicy::RejectIfChanged as i32,
                ..Default::default()
            }],
            ..Default::default()
        };
        let mut out = Vec::new();
        print_conflicts(&mut out, &resp, false, false).unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "9 /cfg/a ab#3 rejected local=mine committed=<deleted>\n"
        );
    }
}
