//! `lock`: etcdctl's lock command. `rafter lock NAME` takes the named lock
//! (on a lease of `--ttl` seconds kept alive meanwhile), prints the lock key
//! as etcdctl does (a `get` of it) and holds it until SIGINT or SIGTERM;
//! `rafter lock NAME command args...` runs the command while holding it,
//! with `ETCD_LOCK_KEY` and `ETCD_LOCK_REV` in its environment, and fails
//! as etcdctl does when the command fails (`Error: exit status N`, 1).
//!
//! etcdctl builds the lock from KV, Lease and Watch on the client side;
//! this uses the server's Lock service, which takes the same keys
//! (`NAME/<lease hex>`) in the same order.

use std::ffi::OsString;
use std::os::unix::ffi::OsStrExt;

use rafter_proto::v3lockpb::{lock_client::LockClient, LockRequest, UnlockRequest};

use crate::commands::session::{self, Interrupts, Session, CONTEXT_CANCELED, DEFAULT_TTL};
use crate::error::CliError;
use crate::global::GlobalArgs;
use crate::Ctx;

const BAD_ARGS: &str = "lock takes a lock name argument and an optional command to execute";

/// `rafter lock <lockname> [exec-command arg1 arg2 ...]`.
#[derive(Debug, clap::Args)]
pub struct LockCommand {
    #[command(flatten)]
    pub global: GlobalArgs,
    /// Timeout for session
    #[arg(long, default_value_t = DEFAULT_TTL, allow_negative_numbers = true)]
    pub ttl: i64,
    /// <lockname> [exec-command arg1 arg2 ...]
    #[arg(value_name = "LOCKNAME")]
    pub args: Vec<OsString>,
}

impl LockCommand {
    /// Runs the command: acquires, then holds or runs the command, then
    /// releases.
    pub async fn run(&self, ctx: &mut Ctx<'_>) -> Result<(), CliError> {
        let Some((name, exec)) = self.args.split_first() else {
            return Err(CliError::bad_args(BAD_ARGS));
        };
        let printer = ctx.printer(&self.global)?;
        let mut interrupts = Interrupts::catch()?;
        let conn = ctx.conn(&self.global);
        let mut session = Session::open(&conn, self.ttl).await?;
        let channel = conn.channel().await?;
        let request = LockRequest {
            name: name.as_bytes().to_vec(),
            lease: session.lease,
        };
        let mut client = LockClient::new(channel);
        let locked = tokio::select! {
            locked = client.lock(request) => locked,
            _ = interrupts.recv() => {
                let _ = session.close().await;
                return Err(CliError::failed(CONTEXT_CANCELED));
            }
        };
        let locked = match locked {
            Ok(r) => r.into_inner(),
            Err(status) => {
                let _ = session.close().await;
                return Err(status.into());
            }
        };
        let key = locked.key.clone();
        let revision = locked.header.map_or(0, |h| h.revision);

        if let Some((program, args)) = exec.split_first() {
            ctx.out.flush()?;
            let mut command = tokio::process::Command::new(program);
            command
                .args(args)
                .env("ETCD_LOCK_KEY", std::ffi::OsStr::from_bytes(&key))
                .env("ETCD_LOCK_REV", revision.to_string());
            // The command runs to its end whatever signals arrive (it gets
            // the terminal's own).
            let result = match command.spawn() {
                Ok(mut child) => child.wait().await,
                Err(e) => Err(e),
            };
            let unlocked = release(&mut client, key, session).await;
            if let Some(why) = session::exec_failure(program, result) {
                return Err(CliError::failed(why));
            }
            return unlocked;
        }

        let held = match session::get_key(&conn, key.clone()).await {
            Ok(r) => r,
            Err(e) => {
                let _ = release(&mut client, key, session).await;
                return Err(e);
            }
        };
        if held.kvs.is_empty() {
            let _ = release(&mut client, key, session).await;
            return Err(CliError::failed("lock lost on init"));
        }
        printer.get(ctx.out, &held, false)?;
        ctx.out.flush()?;
        tokio::select! {
            _ = interrupts.recv() => release(&mut client, key, session).await,
            _ = session.done() => Err(CliError::failed("session expired")),
        }
    }
}

/// Unlocks (deletes the lock key) and ends the session (revokes its lease).
async fn release(
    client: &mut LockClient<tonic::transport::Channel>,
    key: Vec<u8>,
    session: Session,
) -> Result<(), CliError> {
    let unlocked = client.unlock(UnlockRequest { key }).await;
    let closed = session.close().await;
    unlocked?;
    closed
}
