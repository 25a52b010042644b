//! A cluster of etcd or Rafter members run as child processes on loopback,
//! with free ports and a temporary directory, whose members can be killed
//! with SIGKILL and restarted on their data: what the election benchmark
//! needs to crash leaders over and over. Children die with the cluster.

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use rafter_proto::etcdserverpb::maintenance_client::MaintenanceClient;
use rafter_proto::etcdserverpb::{StatusRequest, StatusResponse};
use tempfile::TempDir;
use tokio::process::{Child, Command};
use tokio::time::Instant;
use tonic::transport::{Channel, Endpoint};

use crate::args::ElectionRange;
use crate::election_messages::{fetch_metrics, MessageTally};
use crate::peer_proxy::PeerProxy;

/// How long a status probe may take to connect.
const PROBE_CONNECT_TIMEOUT: Duration = Duration::from_millis(200);
/// Pause between two rounds of probes while waiting for a stable cluster.
const STABLE_POLL_INTERVAL: Duration = Duration::from_millis(20);
/// How long reading a member's metrics may take.
const METRICS_TIMEOUT: Duration = Duration::from_millis(500);
/// Log lines shown when a member fails.
const LOG_TAIL_LINES: usize = 10;
/// Starts tried when a member finds one of its ports taken.
const START_ATTEMPTS: usize = 3;

/// Which implementation the members run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ServerKind {
    /// `rafter serve` of this very binary.
    Rafter,
    /// `etcd` (Debian's etcd-server), found on PATH or given by --etcd-binary.
    Etcd,
}

/// How members are configured.
#[derive(Debug, Clone)]
pub struct ClusterSpec {
    pub kind: ServerKind,
    pub etcd_binary: PathBuf,
    pub members: usize,
    pub heartbeat_interval_ms: u64,
    /// The randomized election timeout range; etcd has only [T, 2T).
    pub election_range: ElectionRange,
    /// Members reach each other through a proxy that can cut one off
    /// ([`LocalCluster::cut_off`]).
    pub peer_proxies: bool,
}

/// One member: its ports and, while it runs, its process.
struct Member {
    client_port: u16,
    peer_port: u16,
    /// `--listen-metrics-urls` port (Rafter members).
    metrics_port: u16,
    /// In front of `peer_port` when the spec asks for proxies; peers are
    /// told its port.
    proxy: Option<PeerProxy>,
    child: Option<Child>,
    starts: usize,
    channel: Channel,
}

/// A running cluster.
pub struct LocalCluster {
    spec: ClusterSpec,
    dir: TempDir,
    members: Vec<Member>,
}

/// Who leads, as every member agrees.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Leadership {
    pub leader_index: usize,
    pub leader_id: u64,
    pub term: u64,
}

/// A loopback port that was free a moment ago.
fn free_port() -> Result<u16, String> {
    let listener = TcpListener::bind(("127.0.0.1", 0)).map_err(|e| format!("bind: {e}"))?;
    listener
        .local_addr()
        .map(|address| address.port())
        .map_err(|e| format!("local address: {e}"))
}

/// A lazy connection to a member's client port.
fn client_channel(client_port: u16) -> Result<Channel, String> {
    Ok(
        Endpoint::from_shared(format!("http://127.0.0.1:{client_port}"))
            .map_err(|e| e.to_string())?
            .connect_timeout(PROBE_CONNECT_TIMEOUT)
            .tcp_nodelay(true)
            .connect_lazy(),
    )
}

/// This very program. On Linux `/proc/self/exe`, which still runs this
/// binary after a rebuild has replaced the file on disk during a long run.
fn own_binary() -> Result<PathBuf, String> {
    let proc_self = PathBuf::from("/proc/self/exe");
    if proc_self.exists() {
        return Ok(proc_self);
    }
    std::env::current_exe().map_err(|e| format!("own binary: {e}"))
}

impl LocalCluster {
    /// Starts every member and waits until they agree on a leader.
    pub async fn start(spec: ClusterSpec) -> Result<Self, String> {
        if spec.kind == ServerKind::Etcd && !spec.election_range.is_default() {
            return Err(format!(
                "etcd draws election timeouts from [T, 2T) only, so it cannot run {} ms",
                spec.election_range.label()
            ));
        }
        let dir = tempfile::Builder::new()
            .prefix("rafter-local-cluster-")
            .tempdir()
            .map_err(|e| format!("create a temporary directory: {e}"))?;
        let mut members = Vec::with_capacity(spec.members);
        for _ in 0..spec.members {
            let client_port = free_port()?;
            let peer_port = free_port()?;
            let proxy = if spec.peer_proxies {
                Some(PeerProxy::start(peer_port).await)
            } else {
                None
            };
            members.push(Member {
                client_port,
                peer_port,
                metrics_port: free_port()?,
                proxy,
                child: None,
                starts: 0,
                channel: client_channel(client_port)?,
            });
        }
        let mut cluster = Self { spec, dir, members };
        for attempt in 1..=START_ATTEMPTS {
            for index in 0..cluster.members.len() {
                cluster.spawn(index)?;
            }
            match cluster.wait_stable(Duration::from_secs(30)).await {
                Ok(_) => return Ok(cluster),
                Err(_) if cluster.port_taken() && attempt < START_ATTEMPTS => {
                    cluster.move_to_new_ports().await?;
                }
                Err(failure) => return Err(failure),
            }
        }
        unreachable!("the last attempt either returns or fails")
    }

    /// Whether a member's log says one of its ports was taken: a free port
    /// is only free until another process on the machine binds it.
    fn port_taken(&self) -> bool {
        (0..self.members.len()).any(|index| {
            std::fs::read_to_string(self.log_path(index))
                .is_ok_and(|log| log.to_lowercase().contains("address already in use"))
        })
    }

    /// Stops every member, forgets their data (bootstrapped with the old
    /// peer URLs) and gives them fresh ports, before a new start.
    async fn move_to_new_ports(&mut self) -> Result<(), String> {
        for index in 0..self.members.len() {
            self.kill(index).await;
            let _ = std::fs::remove_dir_all(self.dir.path().join(format!("m{index}")));
            let member = &mut self.members[index];
            member.client_port = free_port()?;
            member.peer_port = free_port()?;
            member.metrics_port = free_port()?;
            member.channel = client_channel(member.client_port)?;
            if let Some(proxy) = &member.proxy {
                proxy.retarget(member.peer_port);
            }
        }
        Ok(())
    }

    /// How many members there are.
    pub fn size(&self) -> usize {
        self.members.len()
    }

    /// A connection to member `index` (reconnects after restarts).
    pub fn channel(&self, index: usize) -> Channel {
        self.members[index].channel.clone()
    }

    /// Cuts member `index` off from its peers (or heals it): see
    /// [`PeerProxy`]. The cluster must have been started with proxies.
    pub fn cut_off(&self, index: usize, cut: bool) -> Result<(), String> {
        let proxy = self.members[index]
            .proxy
            .as_ref()
            .ok_or("the cluster runs without peer proxies")?;
        proxy.set_cut(cut);
        Ok(())
    }

    /// Kills member `index` with SIGKILL and reaps it.
    pub async fn kill(&mut self, index: usize) {
        if let Some(mut child) = self.members[index].child.take() {
            let _ = child.start_kill();
            let _ = child.wait().await;
        }
    }

    /// Starts member `index` again on its data directory and ports.
    pub fn restart(&mut self, index: usize) -> Result<(), String> {
        self.spawn(index)
    }

    /// The status of member `index`, or `None` when it does not answer
    /// within `timeout`.
    pub async fn status(&self, index: usize, timeout: Duration) -> Option<StatusResponse> {
        let mut client = MaintenanceClient::new(self.channel(index));
        match tokio::time::timeout(timeout, client.status(StatusRequest {})).await {
            Ok(Ok(response)) => Some(response.into_inner()),
            _ => None,
        }
    }

    /// The election messages member `index` sent since it last started:
    /// Rafter's `/metrics` counters, or the vote lines of etcd's log.
    pub async fn election_messages(&self, index: usize) -> Result<MessageTally, String> {
        match self.spec.kind {
            ServerKind::Rafter => {
                let text = fetch_metrics(self.members[index].metrics_port, METRICS_TIMEOUT).await?;
                Ok(MessageTally::from_rafter_metrics(&text))
            }
            ServerKind::Etcd => {
                let path = self.log_path(index);
                let text = std::fs::read_to_string(&path)
                    .map_err(|e| format!("read {}: {e}", path.display()))?;
                Ok(MessageTally::from_etcd_log(&text))
            }
        }
    }

    /// Waits until every member runs, answers and names the same leader
    /// (one of them) in the same term.
    pub async fn wait_stable(&mut self, limit: Duration) -> Result<Leadership, String> {
        let deadline = Instant::now() + limit;
        loop {
            self.check_running()?;
            if let Some(leadership) = self.agreed_leadership().await {
                return Ok(leadership);
            }
            if Instant::now() >= deadline {
                return Err(format!(
                    "the {:?} cluster did not agree on a leader within {limit:?}\n{}",
                    self.spec.kind,
                    self.log_tails()
                ));
            }
            tokio::time::sleep(STABLE_POLL_INTERVAL).await;
        }
    }

    async fn agreed_leadership(&self) -> Option<Leadership> {
        let mut leader_id = None;
        let mut leader_index = None;
        let mut term = 0;
        for index in 0..self.members.len() {
            let status = self.status(index, Duration::from_millis(500)).await?;
            let disagrees = leader_id.is_some_and(|id| id != status.leader)
                || (index > 0 && term != status.raft_term);
            if status.leader == 0 || disagrees {
                return None;
            }
            leader_id = Some(status.leader);
            term = status.raft_term;
            let member_id = status.header.map_or(0, |header| header.member_id);
            if member_id == status.leader {
                leader_index = Some(index);
            }
        }
        Some(Leadership {
            leader_index: leader_index?,
            leader_id: leader_id?,
            term,
        })
    }

    /// Fails when a member that should run has exited.
    fn check_running(&mut self) -> Result<(), String> {
        for index in 0..self.members.len() {
            if let Some(child) = self.members[index].child.as_mut() {
                if let Ok(Some(status)) = child.try_wait() {
                    self.members[index].child = None;
                    return Err(format!(
                        "member m{index} exited with {status}\n{}",
                        self.log_tails()
                    ));
                }
            }
        }
        Ok(())
    }

    fn log_path(&self, index: usize) -> PathBuf {
        let starts = self.members[index].starts;
        self.dir.path().join(format!("m{index}-{starts}.log"))
    }

    fn log_tails(&self) -> String {
        (0..self.members.len())
            .map(|index| {
                let log = std::fs::read_to_string(self.log_path(index)).unwrap_or_default();
                let lines: Vec<&str> = log.lines().collect();
                let tail = lines[lines.len().saturating_sub(LOG_TAIL_LINES)..].join("\n");
                format!(
                    "--- m{index} ({}) ---\n{tail}",
                    self.log_path(index).display()
                )
            })
            .collect::<Vec<_>>()
            .join("\n")
    }

    fn spawn(&mut self, index: usize) -> Result<(), String> {
        self.members[index].starts += 1;
        let log_path = self.log_path(index);
        let log = std::fs::File::create(&log_path)
            .map_err(|e| format!("create {}: {e}", log_path.display()))?;
        let log_for_stderr = log.try_clone().map_err(|e| e.to_string())?;
        let mut command = match self.spec.kind {
            ServerKind::Rafter => {
                let mut command = Command::new(own_binary()?);
                command.arg("serve");
                command
            }
            ServerKind::Etcd => Command::new(&self.spec.etcd_binary),
        };
        command
            .args(self.member_args(index))
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log_for_stderr)
            .kill_on_drop(true);
        let child = command
            .spawn()
            .map_err(|e| format!("cannot start {command:?}: {e}"))?;
        self.members[index].child = Some(child);
        Ok(())
    }

    /// The same etcd flags for both implementations.
    fn member_args(&self, index: usize) -> Vec<String> {
        let peer_url = |member: &Member| format!("http://127.0.0.1:{}", member.peer_port);
        let advertised = |member: &Member| match &member.proxy {
            Some(proxy) => format!("http://127.0.0.1:{}", proxy.port()),
            None => peer_url(member),
        };
        let initial_cluster = self
            .members
            .iter()
            .enumerate()
            .map(|(i, member)| format!("m{i}={}", advertised(member)))
            .collect::<Vec<_>>()
            .join(",");
        let member = &self.members[index];
        let client_url = format!("http://127.0.0.1:{}", member.client_port);
        let data_dir = self.dir.path().join(format!("m{index}"));
        let mut args: Vec<String> = [
            ("--name", format!("m{index}")),
            ("--data-dir", data_dir.display().to_string()),
            ("--listen-client-urls", client_url.clone()),
            ("--advertise-client-urls", client_url),
            ("--listen-peer-urls", peer_url(member)),
            ("--initial-advertise-peer-urls", advertised(member)),
            ("--initial-cluster", initial_cluster),
            ("--initial-cluster-state", "new".to_string()),
            (
                "--initial-cluster-token",
                "rafter-bench-election".to_string(),
            ),
            (
                "--heartbeat-interval",
                self.spec.heartbeat_interval_ms.to_string(),
            ),
            (
                "--election-timeout",
                self.spec.election_range.min_ms.to_string(),
            ),
        ]
        .into_iter()
        .flat_map(|(flag, value)| [flag.to_string(), value])
        .collect();
        match self.spec.kind {
            ServerKind::Rafter => {
                args.push("--listen-metrics-urls".to_string());
                args.push(format!("http://127.0.0.1:{}", member.metrics_port));
                if !self.spec.election_range.is_default() {
                    args.push("--election-timeout-max".to_string());
                    args.push(self.spec.election_range.max_ms.to_string());
                }
            }
            // Rafter always runs pre-vote (and check-quorum); etcd 3.4 only
            // when asked, and without it a restarted member disrupts the
            // cluster with a needless election.
            ServerKind::Etcd => args.push("--pre-vote=true".to_string()),
        }
        args
    }
}
