//! `endpoint status` and `endpoint health`: ask each endpoint (or, with
//! `--cluster`, each member's client URL) on its own, as etcdctl does, and
//! report per endpoint.

use std::time::Duration;

use rafter_proto::etcdserverpb::{
    alarm_request::AlarmAction, AlarmRequest, AlarmType, MemberListRequest, RangeRequest,
    StatusRequest,
};
use tokio::task::JoinSet;
use tokio::time::Instant;

use crate::conn::Conn;
use crate::error::{CliError, EXIT_ERROR};
use crate::global::GlobalArgs;
use crate::output::{EndpointHealth, EndpointStatus};
use crate::Ctx;

/// `rafter endpoint <subcommand>`.
#[derive(Debug, clap::Args)]
pub struct EndpointCommand {
    #[command(flatten)]
    pub global: GlobalArgs,
    /// Use all endpoints from the cluster member list
    #[arg(
        long,
        global = true,
        num_args = 0..=1,
        require_equals = true,
        default_missing_value = "true",
        default_value_t = false,
        action = clap::ArgAction::Set
    )]
    pub cluster: bool,
    #[command(subcommand)]
    pub action: EndpointAction,
}

/// Endpoint subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum EndpointAction {
    /// Prints out the status of endpoints specified in `--endpoints` flag
    Status,
    /// Checks the healthiness of endpoints specified in `--endpoints` flag
    Health,
}

impl EndpointCommand {
    /// Runs the command: builds the request, sends it, prints the answer.
    pub async fn run(&self, ctx: &mut Ctx<'_>) -> Result<(), CliError> {
        let printer = ctx.printer(&self.global)?;
        let endpoints = self.endpoints(ctx).await?;
        match self.action {
            EndpointAction::Status => {
                let mut ok = Vec::new();
                let mut failed = false;
                for endpoint in endpoints {
                    let conn = Conn::for_endpoints(&self.global, vec![endpoint.clone()]);
                    match status(conn).await {
                        Ok(status) => ok.push(EndpointStatus { endpoint, status }),
                        Err(e) => {
                            failed = true;
                            writeln!(
                                ctx.err,
                                "Failed to get the status of endpoint {endpoint} ({e})"
                            )?;
                        }
                    }
                }
                printer.endpoint_status(ctx.out, &ok)?;
                if failed {
                    return Err(CliError::silent(EXIT_ERROR));
                }
                Ok(())
            }
            EndpointAction::Health => {
                let list = check_health(&self.global, endpoints).await;
                printer.endpoint_health(ctx.out, ctx.err, &list)?;
                if list.iter().any(|h| !h.health) {
                    return Err(CliError::failed("unhealthy cluster"));
                }
                Ok(())
            }
        }
    }

    /// The endpoints to check: `--endpoints`, or with `--cluster` the client
    /// URLs of every member those endpoints list.
    async fn endpoints(&self, _ctx: &Ctx<'_>) -> Result<Vec<String>, CliError> {
        if !self.cluster {
            return Ok(self.global.endpoint_list());
        }
        cluster_endpoints(&self.global).await
    }
}

/// Every member's client URLs, from the member list (what `--cluster`
/// means for etcdctl's per-endpoint commands).
pub async fn cluster_endpoints(global: &GlobalArgs) -> Result<Vec<String>, CliError> {
    let req = MemberListRequest {
        linearizable: false,
    };
    let resp = Conn::new(global)
        .call(|ch| async move { crate::conn::cluster(ch).member_list(req).await })
        .await?;
    let mut urls: Vec<String> = Vec::new();
    for url in resp.members.iter().flat_map(|m| m.client_ur_ls.iter()) {
        if !urls.contains(url) {
            urls.push(url.clone());
        }
    }
    Ok(urls)
}

/// Checks every endpoint concurrently; like etcdctl, lists them in the
/// order the checks finish.
async fn check_health(global: &GlobalArgs, endpoints: Vec<String>) -> Vec<EndpointHealth> {
    let mut set = JoinSet::new();
    for endpoint in endpoints {
        let conn = Conn::for_endpoints(global, vec![endpoint.clone()]);
        set.spawn(async move {
            let (took, error) = health(conn).await;
            EndpointHealth {
                endpoint,
                health: error.is_empty(),
                took,
                error,
            }
        });
    }
    let mut list = Vec::new();
    while let Some(joined) = set.join_next().await {
        if let Ok(h) = joined {
            list.push(h);
        }
    }
    list
}

async fn status(conn: Conn) -> Result<rafter_proto::etcdserverpb::StatusResponse, CliError> {
    conn.call(|ch| async move { crate::conn::maintenance(ch).status(StatusRequest {}).await })
        .await
}

/// A linearizable read (permission denied still proves a working quorum)
/// followed by a check that no alarm is raised. Returns how long the read
/// took and why the endpoint is unhealthy ("" if it is healthy).
async fn health(conn: Conn) -> (Duration, String) {
    let start = Instant::now();
    let read = conn
        .call(|ch| async move {
            crate::conn::kv(ch)
                .range(RangeRequest {
                    key: b"health".to_vec(),
                    ..Default::default()
                })
                .await
        })
        .await;
    let took = start.elapsed();
    match read {
        Ok(_) => {}
        Err(e) if e.message == "etcdserver: permission denied" => {}
        Err(e) => return (took, e.message),
    }
    let alarms = conn
        .call(|ch| async move {
            crate::conn::maintenance(ch)
                .alarm(AlarmRequest {
                    action: AlarmAction::Get as i32,
                    member_id: 0,
                    alarm: AlarmType::None as i32,
                })
                .await
        })
        .await;
    let error = match alarms {
        Err(_) => "Unable to fetch the alarm list".to_string(),
        Ok(resp) if resp.alarms.is_empty() => String::new(),
        Ok(resp) => {
            let mut text = String::from("Active Alarm(s): ");
            for alarm in &resp.alarms {
                let name = AlarmType::try_from(alarm.alarm)
                    .map(|a| a.as_str_name())
                    .unwrap_or("UNKNOWN");
                text.push_str(name);
                text.push(' ');
            }
            text
        }
    };
    (took, error)
}
