//! `alarm list` and `alarm disarm`, as etcdctl: list the raised alarms, or
//! clear every one of them (each through the log) and print what was
//! cleared.

use rafter_proto::etcdserverpb::{
    alarm_request::AlarmAction, AlarmRequest, AlarmResponse, AlarmType,
};

use crate::error::CliError;
use crate::global::GlobalArgs;
use crate::output::Format;
use crate::Ctx;

/// `rafter alarm <subcommand>`.
#[derive(Debug, clap::Args)]
pub struct AlarmCommand {
    #[command(flatten)]
    pub global: GlobalArgs,
    #[command(subcommand)]
    pub action: AlarmSubcommand,
}

/// Alarm subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum AlarmSubcommand {
    /// Lists all alarms
    List,
    /// Disarms all alarms
    Disarm,
}

impl AlarmCommand {
    /// Runs the command: builds the requests, sends them, prints the answer.
    pub async fn run(&self, ctx: &mut Ctx<'_>) -> Result<(), CliError> {
        let format = self.global.format()?;
        let conn = ctx.conn(&self.global);
        let list = AlarmRequest {
            action: AlarmAction::Get as i32,
            member_id: 0,
            alarm: AlarmType::None as i32,
        };
        let listed = conn
            .call(|ch| async move { crate::conn::maintenance(ch).alarm(list).await })
            .await?;
        let resp = match self.action {
            AlarmSubcommand::List => listed,
            AlarmSubcommand::Disarm => {
                // etcd's client disarms "everything" one raised alarm at a time.
                let mut out = AlarmResponse {
                    header: listed.header,
                    alarms: vec![],
                };
                for a in listed.alarms {
                    let req = AlarmRequest {
                        action: AlarmAction::Deactivate as i32,
                        member_id: a.member_id,
                        alarm: a.alarm,
                    };
                    let resp = conn
                        .call(|ch| async move { crate::conn::maintenance(ch).alarm(req).await })
                        .await?;
                    out.header = resp.header;
                    out.alarms.extend(resp.alarms);
                }
                out
            }
        };
        match format {
            Format::Json => writeln!(ctx.out, "{}", crate::output::json::alarm(&resp))?,
            Format::Simple | Format::Fields | Format::Table | Format::Protobuf => {
                for a in &resp.alarms {
                    let name = AlarmType::try_from(a.alarm).map_or("UNKNOWN", |t| t.as_str_name());
                    writeln!(ctx.out, "memberID:{} alarm:{name} ", a.member_id)?;
                }
            }
        }
        Ok(())
    }
}
