//! What `lock` and `elect` share, after etcd's `concurrency.Session`: a
//! lease granted with the session TTL and kept alive in the background
//! (reporting when it is gone), SIGINT/SIGTERM caught from the start so an
//! interrupted wait ends as etcdctl's does (`context canceled`), and the
//! Go texts for a command's exit status.

use std::ffi::OsString;
use std::os::unix::ffi::OsStrExt;
use std::time::Duration;

use rafter_proto::etcdserverpb::{
    LeaseGrantRequest, LeaseRevokeRequest, RangeRequest, RangeResponse,
};
use tokio::signal::unix::{signal, Signal, SignalKind};
use tokio::sync::watch;

use crate::commands::lease::KeepAliveStream;
use crate::conn::Conn;
use crate::error::CliError;
use crate::output::quote::go_quote;

/// etcdctl's default `--ttl` for `lock` and `elect` (seconds).
pub const DEFAULT_TTL: i64 = 10;

/// What the Go client reports for a wait its signal handler canceled.
pub const CONTEXT_CANCELED: &str = "context canceled";

/// The shortest pause between two keep-alives.
const MIN_KEEP_ALIVE_PAUSE: Duration = Duration::from_millis(500);

/// SIGINT and SIGTERM, caught for the whole command.
pub struct Interrupts {
    int: Signal,
    term: Signal,
}

impl Interrupts {
    /// Starts catching both signals.
    pub fn catch() -> Result<Self, CliError> {
        let failed = |e: std::io::Error| CliError::failed(format!("cannot catch signals: {e}"));
        Ok(Self {
            int: signal(SignalKind::interrupt()).map_err(failed)?,
            term: signal(SignalKind::terminate()).map_err(failed)?,
        })
    }

    /// Waits for one of them.
    pub async fn recv(&mut self) {
        tokio::select! {
            _ = self.int.recv() => {}
            _ = self.term.recv() => {}
        }
    }
}

/// A lease kept alive until dropped or revoked.
pub struct Session {
    /// The lease id.
    pub lease: i64,
    conn: Conn,
    alive: watch::Receiver<bool>,
    keeper: tokio::task::JoinHandle<()>,
}

impl Session {
    /// Grants a lease of `ttl` seconds and starts keeping it alive.
    pub async fn open(conn: &Conn, ttl: i64) -> Result<Session, CliError> {
        let req = LeaseGrantRequest { ttl, id: 0 };
        let resp = conn
            .call(|ch| async move { crate::conn::lease(ch).lease_grant(req).await })
            .await?;
        let lease = resp.id;
        let (tell, alive) = watch::channel(true);
        let keeper_conn = conn.clone();
        let keeper = tokio::spawn(async move {
            keep_alive(keeper_conn, lease, resp.ttl).await;
            let _ = tell.send(false);
        });
        Ok(Session {
            lease,
            conn: conn.clone(),
            alive,
            keeper,
        })
    }

    /// Waits until the lease is gone (expired or revoked elsewhere).
    pub async fn done(&mut self) {
        while *self.alive.borrow_and_update() {
            if self.alive.changed().await.is_err() {
                return;
            }
        }
    }

    /// Stops the keep-alives and revokes the lease (which deletes the keys
    /// attached to it).
    pub async fn close(self) -> Result<(), CliError> {
        self.keeper.abort();
        let req = LeaseRevokeRequest { id: self.lease };
        self.conn
            .call(|ch| async move { crate::conn::lease(ch).lease_revoke(req).await })
            .await
            .map(|_| ())
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        self.keeper.abort();
    }
}

/// Renews `lease` a third of its TTL after each renewal until the server
/// says it is gone; a broken stream is opened again, as the Go client does.
async fn keep_alive(conn: Conn, lease: i64, ttl: i64) {
    let mut pause = pause_for(ttl);
    loop {
        tokio::time::sleep(pause).await;
        let Ok(channel) = conn.connect_patiently().await else {
            continue;
        };
        let Ok(mut stream) = KeepAliveStream::open(channel, lease).await else {
            pause = MIN_KEEP_ALIVE_PAUSE;
            continue;
        };
        loop {
            match stream.next().await {
                Ok(resp) if resp.ttl <= 0 => return,
                Ok(resp) => {
                    tokio::time::sleep(pause_for(resp.ttl)).await;
                    if stream.send(lease).is_err() {
                        break;
                    }
                }
                Err(_) => break,
            }
        }
        pause = MIN_KEEP_ALIVE_PAUSE;
    }
}

fn pause_for(ttl: i64) -> Duration {
    (Duration::from_secs(ttl.max(0) as u64) / 3).max(MIN_KEEP_ALIVE_PAUSE)
}

/// A Range for exactly `key`, as etcdctl's `Get` after acquiring.
pub async fn get_key(conn: &Conn, key: Vec<u8>) -> Result<RangeResponse, CliError> {
    let req = RangeRequest {
        key,
        ..Default::default()
    };
    conn.call(|ch| async move { crate::conn::kv(ch).range(req).await })
        .await
}

/// Why a command failed, in the words of Go's `exec` package.
pub fn exec_failure(
    program: &OsString,
    result: std::io::Result<std::process::ExitStatus>,
) -> Option<String> {
    use std::os::unix::process::ExitStatusExt;
    match result {
        Ok(status) if status.success() => None,
        Ok(status) => Some(match (status.code(), status.signal()) {
            (Some(code), _) => format!("exit status {code}"),
            (None, Some(sig)) => format!("signal: {}", signal_name(sig)),
            (None, None) => status.to_string(),
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Some(format!(
            "exec: {}: executable file not found in $PATH",
            go_quote(program.as_bytes())
        )),
        Err(e) => Some(e.to_string()),
    }
}

/// Go's name of a signal (`syscall.Signal.String`).
fn signal_name(sig: i32) -> String {
    let name = match sig {
        1 => "hangup",
        2 => "interrupt",
        3 => "quit",
        4 => "illegal instruction",
        5 => "trace/breakpoint trap",
        6 => "aborted",
        7 => "bus error",
        8 => "floating point exception",
        9 => "killed",
        10 => "user defined signal 1",
        11 => "segmentation fault",
        12 => "user defined signal 2",
        13 => "broken pipe",
        14 => "alarm clock",
        15 => "terminated",
        _ => return format!("signal {sig}"),
    };
    name.to_string()
}
