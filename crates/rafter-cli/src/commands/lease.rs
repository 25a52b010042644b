//! `lease grant|revoke|timetolive|list|keep-alive`: etcdctl's lease commands,
//! with its argument checks, hexadecimal lease ids, error wording and exit
//! codes, so scripts that manage leases with etcdctl work with `rafter`.

use std::time::Duration;

use rafter_proto::etcdserverpb::{
    LeaseGrantRequest, LeaseKeepAliveRequest, LeaseKeepAliveResponse, LeaseLeasesRequest,
    LeaseRevokeRequest, LeaseTimeToLiveRequest,
};
use tokio::sync::mpsc;
use tokio_stream::wrappers::UnboundedReceiverStream;
use tonic::transport::Channel;

use crate::error::{CliError, EXIT_BAD_CONNECTION};
use crate::global::GlobalArgs;
use crate::output::{lease::hex_id, Format};
use crate::Ctx;

/// etcd's message for a lease it does not know (`rpctypes.ErrLeaseNotFound`),
/// which etcd's client also reports for a keep-alive answered with TTL 0.
const LEASE_NOT_FOUND: &str = "etcdserver: requested lease not found";

/// The shortest pause between two keep-alives (the Go client checks every
/// 500 ms whether one is due).
const MIN_KEEP_ALIVE_PAUSE: Duration = Duration::from_millis(500);

/// `rafter lease <subcommand>`.
#[derive(Debug, clap::Args)]
pub struct LeaseCommand {
    #[command(flatten)]
    pub global: GlobalArgs,
    #[command(subcommand)]
    pub action: LeaseAction,
}

/// Lease subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum LeaseAction {
    /// Creates leases
    Grant {
        /// <ttl> in seconds
        #[arg(value_name = "TTL", allow_negative_numbers = true)]
        args: Vec<String>,
    },
    /// Revokes leases
    Revoke {
        /// <leaseID> in hexadecimal
        #[arg(value_name = "LEASE_ID", allow_negative_numbers = true)]
        args: Vec<String>,
    },
    /// Get lease information
    #[command(name = "timetolive")]
    TimeToLive {
        /// Get keys attached to this lease
        #[arg(
            long,
            num_args = 0..=1,
            require_equals = true,
            default_missing_value = "true",
            default_value_t = false,
            action = clap::ArgAction::Set
        )]
        keys: bool,
        /// <leaseID> in hexadecimal
        #[arg(value_name = "LEASE_ID", allow_negative_numbers = true)]
        args: Vec<String>,
    },
    /// List all active leases
    List,
    /// Keeps leases alive (renew)
    #[command(name = "keep-alive")]
    KeepAlive {
        /// Resets the keep-alive time to its original value and exits
        /// immediately
        #[arg(
            long,
            num_args = 0..=1,
            require_equals = true,
            default_missing_value = "true",
            default_value_t = false,
            action = clap::ArgAction::Set
        )]
        once: bool,
        /// <leaseID> in hexadecimal
        #[arg(value_name = "LEASE_ID", allow_negative_numbers = true)]
        args: Vec<String>,
    },
}

/// The one argument a subcommand needs, or etcdctl's complaint.
fn single<'a>(args: &'a [String], complaint: &str) -> Result<&'a str, CliError> {
    match args {
        [one] => Ok(one),
        _ => Err(CliError::bad_args(complaint)),
    }
}

/// A lease id argument (hexadecimal), with etcdctl's error for a bad one.
pub fn lease_id_arg(text: &str) -> Result<i64, CliError> {
    crate::commands::put::parse_hex_i64(text).map_err(|why| {
        CliError::bad_args(format!(
            "bad lease ID arg (strconv.ParseInt: parsing {text:?}: {why}), expecting ID in Hex"
        ))
    })
}

/// A TTL argument (decimal), with etcdctl's error for a bad one.
fn ttl_arg(text: &str) -> Result<i64, CliError> {
    let digits = text.strip_prefix(['-', '+']).unwrap_or(text);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(CliError::bad_args(format!(
            "bad TTL (strconv.ParseInt: parsing {text:?}: invalid syntax)"
        )));
    }
    text.parse().map_err(|_| {
        CliError::bad_args(format!(
            "bad TTL (strconv.ParseInt: parsing {text:?}: value out of range)"
        ))
    })
}

/// A failure of a keep-alive or time-to-live request: etcdctl exits with
/// its "bad connection" code for these.
fn bad_connection(err: CliError) -> CliError {
    CliError::new(EXIT_BAD_CONNECTION, err.message)
}

impl LeaseCommand {
    /// Runs the command: checks the arguments, sends the request(s), prints
    /// the answers.
    pub async fn run(&self, ctx: &mut Ctx<'_>) -> Result<(), CliError> {
        let printer = ctx.printer(&self.global)?;
        let conn = ctx.conn(&self.global);
        match &self.action {
            LeaseAction::Grant { args } => {
                let ttl = ttl_arg(single(args, "lease grant command needs TTL argument")?)?;
                let req = LeaseGrantRequest { ttl, id: 0 };
                let resp = conn
                    .call(|ch| async move { crate::conn::lease(ch).lease_grant(req).await })
                    .await
                    .map_err(|e| CliError::failed(format!("failed to grant lease ({e})")))?;
                printer.lease_grant(ctx.out, &resp)
            }
            LeaseAction::Revoke { args } => {
                let id = lease_id_arg(single(args, "lease revoke command needs 1 argument")?)?;
                let req = LeaseRevokeRequest { id };
                let resp = conn
                    .call(|ch| async move { crate::conn::lease(ch).lease_revoke(req).await })
                    .await
                    .map_err(|e| CliError::failed(format!("failed to revoke lease ({e})")))?;
                printer.lease_revoke(ctx.out, id, &resp)
            }
            LeaseAction::TimeToLive { keys, args } => {
                let id = lease_id_arg(single(
                    args,
                    "lease timetolive command needs lease ID as argument",
                )?)?;
                let req = LeaseTimeToLiveRequest { id, keys: *keys };
                let resp = conn
                    .call(|ch| async move { crate::conn::lease(ch).lease_time_to_live(req).await })
                    .await
                    .map_err(bad_connection)?;
                printer.lease_time_to_live(ctx.out, &resp, *keys)
            }
            LeaseAction::List => {
                let resp = conn
                    .call(|ch| async move {
                        crate::conn::lease(ch)
                            .lease_leases(LeaseLeasesRequest {})
                            .await
                    })
                    .await
                    .map_err(bad_connection)?;
                printer.lease_list(ctx.out, &resp)
            }
            LeaseAction::KeepAlive { once, args } => {
                let id = lease_id_arg(single(
                    args,
                    "lease keep-alive command needs lease ID as argument",
                )?)?;
                let channel = conn.channel().await.map_err(bad_connection)?;
                let mut stream = KeepAliveStream::open(channel, id)
                    .await
                    .map_err(bad_connection)?;
                if *once {
                    let resp = stream.next().await.map_err(bad_connection)?;
                    if resp.ttl <= 0 {
                        return Err(bad_connection(CliError::failed(LEASE_NOT_FOUND)));
                    }
                    return printer.lease_keep_alive(ctx.out, &resp);
                }
                // Renew until the lease is gone, printing every answer; the
                // next renewal is due a third of the TTL later, as etcd's
                // client does.
                loop {
                    let resp = stream.next().await.map_err(bad_connection)?;
                    if resp.ttl <= 0 {
                        break;
                    }
                    printer.lease_keep_alive(ctx.out, &resp)?;
                    ctx.out.flush()?;
                    let pause = Duration::from_secs(resp.ttl as u64) / 3;
                    tokio::time::sleep(pause.max(MIN_KEEP_ALIVE_PAUSE)).await;
                    stream.send(id)?;
                }
                if printer.format == Format::Simple {
                    writeln!(ctx.out, "lease {} expired or revoked.", hex_id(id))?;
                }
                Ok(())
            }
        }
    }
}

/// One LeaseKeepAlive stream.
pub(crate) struct KeepAliveStream {
    requests: mpsc::UnboundedSender<LeaseKeepAliveRequest>,
    responses: tonic::Streaming<LeaseKeepAliveResponse>,
}

impl KeepAliveStream {
    /// Opens the stream with a first keep-alive for `id` already queued
    /// (etcd answers the call only once it has a message to send).
    pub(crate) async fn open(channel: Channel, id: i64) -> Result<KeepAliveStream, CliError> {
        let (requests, receiver) = mpsc::unbounded_channel();
        requests
            .send(LeaseKeepAliveRequest { id })
            .map_err(|_| CliError::failed("keep-alive stream closed"))?;
        let responses = crate::conn::lease(channel)
            .lease_keep_alive(UnboundedReceiverStream::new(receiver))
            .await?
            .into_inner();
        Ok(KeepAliveStream {
            requests,
            responses,
        })
    }

    pub(crate) fn send(&mut self, id: i64) -> Result<(), CliError> {
        self.requests
            .send(LeaseKeepAliveRequest { id })
            .map_err(|_| CliError::failed("keep-alive stream closed"))
    }

    pub(crate) async fn next(&mut self) -> Result<LeaseKeepAliveResponse, CliError> {
        match self.responses.message().await? {
            Some(resp) => Ok(resp),
            None => Err(CliError::failed("keep-alive stream closed by the server")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arguments_are_checked_like_etcdctl() {
        assert_eq!(ttl_arg("60"), Ok(60));
        assert_eq!(ttl_arg("-5"), Ok(-5));
        assert_eq!(
            ttl_arg("abc").unwrap_err().message,
            "bad TTL (strconv.ParseInt: parsing \"abc\": invalid syntax)"
        );
        assert_eq!(lease_id_arg("1234"), Ok(0x1234));
        let err = lease_id_arg("zz").unwrap_err();
        assert_eq!(err.code, 128);
        assert_eq!(
            err.message,
            "bad lease ID arg (strconv.ParseInt: parsing \"zz\": invalid syntax), expecting ID in Hex"
        );
        assert_eq!(
            single(&[], "needs one").unwrap_err().message,
            "needs one".to_string()
        );
    }
}
