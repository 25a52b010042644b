//! `elect`: etcdctl's elect command. `rafter elect NAME PROPOSAL` campaigns
//! (on a lease of `--ttl` seconds kept alive meanwhile), prints the leader
//! key and value once elected (a `get` of the key, as etcdctl does) and
//! resigns on SIGINT or SIGTERM; `rafter elect -l NAME` prints every new
//! leader (key and value) until interrupted.
//!
//! etcdctl builds the election from KV, Lease and Watch on the client side;
//! this uses the server's Election service, which takes the same keys
//! (`NAME/<lease hex>`) in the same order.

use rafter_proto::etcdserverpb::RangeResponse;
use rafter_proto::v3electionpb::{
    election_client::ElectionClient, CampaignRequest, LeaderRequest, ResignRequest,
};

use crate::commands::session::{self, Interrupts, Session, CONTEXT_CANCELED, DEFAULT_TTL};
use crate::error::CliError;
use crate::global::GlobalArgs;
use crate::Ctx;

const BAD_ARGS: &str = "elect takes one election name argument and an optional proposal argument";
const NO_PROPOSAL: &str = "no proposal argument but -l not set";
const PROPOSAL_AND_LISTEN: &str = "proposal given but -l is set";

/// `rafter elect <election-name> [proposal]`.
#[derive(Debug, clap::Args)]
pub struct ElectCommand {
    #[command(flatten)]
    pub global: GlobalArgs,
    /// Observation mode
    #[arg(
        short = 'l',
        long,
        num_args = 0..=1,
        require_equals = true,
        default_missing_value = "true",
        default_value_t = false,
        action = clap::ArgAction::Set
    )]
    pub listen: bool,
    /// Timeout for session
    #[arg(long, default_value_t = DEFAULT_TTL, allow_negative_numbers = true)]
    pub ttl: i64,
    /// <election-name> [proposal]
    #[arg(value_name = "ELECTION-NAME")]
    pub args: Vec<String>,
}

impl ElectCommand {
    /// Runs the command: checks the arguments as etcdctl does, then
    /// campaigns or observes.
    pub async fn run(&self, ctx: &mut Ctx<'_>) -> Result<(), CliError> {
        match (self.args.as_slice(), self.listen) {
            ([name], true) => self.observe(name, ctx).await,
            ([_], false) => Err(CliError::bad_args(NO_PROPOSAL)),
            ([_, _], true) => Err(CliError::bad_args(PROPOSAL_AND_LISTEN)),
            ([name, proposal], false) => self.campaign(name, proposal, ctx).await,
            _ => Err(CliError::bad_args(BAD_ARGS)),
        }
    }

    async fn campaign(
        &self,
        name: &str,
        proposal: &str,
        ctx: &mut Ctx<'_>,
    ) -> Result<(), CliError> {
        let printer = ctx.printer(&self.global)?;
        let mut interrupts = Interrupts::catch()?;
        let conn = ctx.conn(&self.global);
        let mut session = Session::open(&conn, self.ttl).await?;
        let mut client = ElectionClient::new(conn.channel().await?);
        let request = CampaignRequest {
            name: name.as_bytes().to_vec(),
            lease: session.lease,
            value: proposal.as_bytes().to_vec(),
        };
        let campaigned = tokio::select! {
            r = client.campaign(request) => r,
            _ = interrupts.recv() => {
                let _ = session.close().await;
                return Err(CliError::failed(CONTEXT_CANCELED));
            }
        };
        let leader = match campaigned {
            Ok(r) => r.into_inner().leader.unwrap_or_default(),
            Err(status) => {
                let _ = session.close().await;
                return Err(status.into());
            }
        };
        let held = match session::get_key(&conn, leader.key.clone()).await {
            Ok(r) => r,
            Err(e) => {
                let _ = session.close().await;
                return Err(e);
            }
        };
        printer.get(ctx.out, &held, false)?;
        ctx.out.flush()?;
        tokio::select! {
            _ = interrupts.recv() => {
                let resigned = client.resign(ResignRequest { leader: Some(leader) }).await;
                let closed = session.close().await;
                resigned?;
                closed
            }
            _ = session.done() => Err(CliError::failed("elect: session expired")),
        }
    }

    async fn observe(&self, name: &str, ctx: &mut Ctx<'_>) -> Result<(), CliError> {
        let printer = ctx.printer(&self.global)?;
        let mut interrupts = Interrupts::catch()?;
        let conn = ctx.conn(&self.global);
        let mut client = ElectionClient::new(conn.channel().await?);
        let request = LeaderRequest {
            name: name.as_bytes().to_vec(),
        };
        let mut stream = tokio::select! {
            r = client.observe(request) => r?.into_inner(),
            _ = interrupts.recv() => return Ok(()),
        };
        loop {
            let next = tokio::select! {
                next = stream.message() => next,
                _ = interrupts.recv() => return Ok(()),
            };
            match next {
                Ok(Some(leader)) => {
                    let resp = RangeResponse {
                        header: leader.header,
                        count: i64::from(leader.kv.is_some()),
                        kvs: leader.kv.into_iter().collect(),
                        more: false,
                    };
                    printer.get(ctx.out, &resp, false)?;
                    ctx.out.flush()?;
                }
                Ok(None) | Err(_) => return Err(CliError::failed("elect: observer lost")),
            }
        }
    }
}
