//! `member list|add|remove|update|promote`: the cluster's members as
//! etcdctl lists them, and etcdctl's membership changes with its output
//! (`member add` prints the settings the new member starts with).

use rafter_proto::etcdserverpb::{
    MemberAddRequest, MemberListRequest, MemberPromoteRequest, MemberRemoveRequest,
    MemberUpdateRequest, ResponseHeader,
};

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
    /// Adds a member into the cluster
    Add {
        /// The new member's name
        name: String,
        /// Comma separated peer URLs for the new member
        #[arg(long = "peer-urls")]
        peer_urls: String,
        /// Indicates if the new member is raft learner
        #[arg(long)]
        learner: bool,
    },
    /// Removes a member from the cluster
    Remove {
        /// The member's id (hex)
        id: String,
    },
    /// Updates a member in the cluster
    Update {
        /// The member's id (hex)
        id: String,
        /// Comma separated peer URLs for the member
        #[arg(long = "peer-urls")]
        peer_urls: String,
    },
    /// Promotes a non-voting member in the cluster
    Promote {
        /// The member's id (hex)
        id: String,
    },
}

fn parse_id(id: &str) -> Result<u64, CliError> {
    u64::from_str_radix(id, 16)
        .map_err(|e| CliError::bad_args(format!("bad member ID arg ({e}), expecting ID in Hex")))
}

fn split_urls(urls: &str) -> Vec<String> {
    urls.split(',')
        .map(str::trim)
        .filter(|u| !u.is_empty())
        .map(str::to_string)
        .collect()
}

fn cluster_id(header: &Option<ResponseHeader>) -> u64 {
    header.as_ref().map_or(0, |h| h.cluster_id)
}

/// etcdctl's line for a removed, updated or promoted member.
fn changed(
    ctx: &mut Ctx<'_>,
    id: u64,
    what: &str,
    header: &Option<ResponseHeader>,
) -> Result<(), CliError> {
    writeln!(
        ctx.out,
        "Member {id:16x} {what} cluster {:16x}",
        cluster_id(header)
    )?;
    Ok(())
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
            MemberAction::Add {
                ref name,
                ref peer_urls,
                learner,
            } => {
                let req = MemberAddRequest {
                    peer_ur_ls: split_urls(peer_urls),
                    is_learner: learner,
                };
                let resp = ctx
                    .conn(&self.global)
                    .call(|ch| async move { crate::conn::cluster(ch).member_add(req).await })
                    .await?;
                let new_id = resp.member.as_ref().map_or(0, |m| m.id);
                writeln!(
                    ctx.out,
                    "Member {new_id:16x} added to cluster {:16x}\n",
                    cluster_id(&resp.header)
                )?;
                let mut initial = Vec::new();
                for m in &resp.members {
                    let member_name = if m.id == new_id { name } else { &m.name };
                    for u in &m.peer_ur_ls {
                        initial.push(format!("{member_name}={u}"));
                    }
                }
                let advertised = resp
                    .member
                    .as_ref()
                    .map(|m| m.peer_ur_ls.join(","))
                    .unwrap_or_default();
                writeln!(ctx.out, "ETCD_NAME=\"{name}\"")?;
                writeln!(ctx.out, "ETCD_INITIAL_CLUSTER=\"{}\"", initial.join(","))?;
                writeln!(ctx.out, "ETCD_INITIAL_ADVERTISE_PEER_URLS=\"{advertised}\"")?;
                writeln!(ctx.out, "ETCD_INITIAL_CLUSTER_STATE=\"existing\"")?;
                Ok(())
            }
            MemberAction::Remove { ref id } => {
                let id = parse_id(id)?;
                let req = MemberRemoveRequest { id };
                let resp = ctx
                    .conn(&self.global)
                    .call(|ch| async move { crate::conn::cluster(ch).member_remove(req).await })
                    .await?;
                changed(ctx, id, "removed from", &resp.header)
            }
            MemberAction::Update {
                ref id,
                ref peer_urls,
            } => {
                let id = parse_id(id)?;
                let req = MemberUpdateRequest {
                    id,
                    peer_ur_ls: split_urls(peer_urls),
                };
                let resp = ctx
                    .conn(&self.global)
                    .call(|ch| async move { crate::conn::cluster(ch).member_update(req).await })
                    .await?;
                changed(ctx, id, "updated in", &resp.header)
            }
            MemberAction::Promote { ref id } => {
                let id = parse_id(id)?;
                let req = MemberPromoteRequest { id };
                let resp = ctx
                    .conn(&self.global)
                    .call(|ch| async move { crate::conn::cluster(ch).member_promote(req).await })
                    .await?;
                changed(ctx, id, "promoted in", &resp.header)
            }
        }
    }
}
