//! A multi-member cluster harness in the style of [`super::Server`]: N members
//! as child processes on loopback, each with its own free client and peer
//! ports and data directory, bootstrapped with etcd's static `--initial-cluster`
//! flags, so the same tests run against a real etcd cluster (the oracle) and a
//! Rafter cluster (the system under test).
//!
//! Readiness is polled with deadlines, never slept for: a member is ready when
//! it answers a serializable Range, the cluster when a linearizable Range (which
//! needs a leader and a quorum) succeeds on some member. Members can be killed
//! with SIGKILL and restarted on the same data directory and ports. Each
//! process writes to its own log file; when a test fails, the tail of every
//! member's log is printed.

use std::collections::{BTreeMap, BTreeSet};
use std::fs::File;
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use etcd_client::{Client, ConnectOptions, GetOptions, StatusResponse};
use tempfile::TempDir;
use tokio::sync::{Mutex, MutexGuard};

use super::peer_proxy::PeerProxy;
use super::{die_with_parent, free_port, revision, tail, Target, LOG_TAIL_LINES};

/// Raft heartbeat interval of cluster members, in milliseconds. Short timers
/// keep elections and failovers quick; etcd accepts them (the election
/// timeout must be at least five heartbeats).
pub const HEARTBEAT_MS: u64 = 20;
/// Raft election timeout of cluster members, in milliseconds: long enough that
/// a loaded two-core machine does not lose heartbeats and start spurious
/// elections, which would make "one leader, one term" checks flaky.
pub const ELECTION_MS: u64 = 200;
/// How long a member may take to answer its first request.
const START_DEADLINE: Duration = Duration::from_secs(60);
/// How long a cluster may take to elect a leader and serve a linearizable read.
const QUORUM_DEADLINE: Duration = Duration::from_secs(60);
/// Pause between two polls.
pub const POLL_INTERVAL: Duration = Duration::from_millis(20);
/// Longest a single readiness or status probe may take.
const PROBE_TIMEOUT: Duration = Duration::from_secs(2);
/// How often a cluster start is retried with new ports when another process
/// took one of them between choosing it and a member binding it.
const START_ATTEMPTS: usize = 3;

/// The longest a member takes before failing a request it cannot complete:
/// etcd's request timeout is 5 s plus twice the election timeout, and Rafter
/// uses the same rule.
pub fn server_request_timeout() -> Duration {
    Duration::from_secs(5) + 2 * Duration::from_millis(ELECTION_MS)
}

/// Client-side bound for one request: longer than the server's own timeout,
/// so a request the server fails properly is never cut short by the client,
/// and a request the server leaves hanging fails the test instead of hanging it.
pub fn client_request_timeout() -> Duration {
    server_request_timeout() + Duration::from_secs(5)
}

/// Serialises the cluster tests of one test binary. Each test runs three or
/// more members with sub-second election timers; running several clusters at
/// once on a two-core machine starves their heartbeats and causes elections
/// that no test asked for.
pub async fn exclusive() -> MutexGuard<'static, ()> {
    // An async mutex: the guard is held across the whole async test. Each
    // test has its own runtime; tokio's mutex does not depend on one.
    static LOCK: Mutex<()> = Mutex::const_new(());
    LOCK.lock().await
}

/// One member: its ports, its process (while running) and how often it started.
struct Member {
    name: String,
    client_port: u16,
    peer_port: u16,
    /// When the cluster runs with peer proxies: the proxy in front of the
    /// peer port, whose port the members advertise.
    proxy: Option<PeerProxy>,
    child: Option<Child>,
    starts: usize,
}

impl Member {
    /// The peer port the other members use.
    fn advertised_peer_port(&self) -> u16 {
        self.proxy.as_ref().map_or(self.peer_port, PeerProxy::port)
    }
}

/// Why a cluster did not become ready.
struct StartFailure {
    reason: String,
}

/// A static cluster of real member processes.
pub struct Cluster {
    target: Target,
    /// Fault disks under the members' data directories, if any; declared
    /// before `dir` so they are unmounted before it is removed.
    disks: Vec<rafter_faultfs::FaultDisk>,
    dir: TempDir,
    extra_args: Vec<String>,
    members: Vec<Member>,
    /// Set once a failure message included the logs, so Drop does not print
    /// them again.
    log_reported: AtomicBool,
    /// Members start from this snapshot file (restored before their first
    /// start).
    restore_from: Option<PathBuf>,
}

impl Cluster {
    /// Starts `size` members of the implementation chosen by
    /// `RAFTER_TEST_TARGET`, with extra flags for every member (e.g.
    /// `--snapshot-count`), and waits until every member answers and the
    /// cluster serves a linearizable read.
    pub async fn start(size: usize, extra_args: &[&str]) -> Cluster {
        Self::start_with(Target::from_env(), size, extra_args, false, None, false).await
    }

    /// A Rafter cluster whose members keep their data on fault disks
    /// ([`Cluster::disk`]). Fails, saying why, where FUSE is missing.
    pub async fn start_on_fault_disks(size: usize, extra_args: &[&str]) -> Cluster {
        if let Some(why) = rafter_faultfs::unavailable() {
            panic!("fault disks need FUSE: {why}");
        }
        Self::start_with(Target::Rafter, size, extra_args, false, None, true).await
    }

    /// `HashKV` at one revision is the same on every member. The revision is the
    /// current one of a linearizable read; each member is first polled until it
    /// applied that far (a serializable read at or past the revision).
    pub async fn assert_hash_kv_agrees(&self) {
        let mut client = self.client(self.running()[0]).await;
        let response = bounded_request(client.get("hash-probe", None))
            .await
            .expect("linearizable read for the hash revision");
        let at = revision(response.header());
        let mut hashes = BTreeMap::new();
        for member in self.running() {
            let mut client = self.client(member).await;
            let deadline = Instant::now() + QUORUM_DEADLINE;
            loop {
                let options = GetOptions::new().with_serializable();
                if let Ok(response) = bounded_request(client.get("hash-probe", Some(options))).await
                {
                    if revision(response.header()) >= at {
                        break;
                    }
                }
                if Instant::now() >= deadline {
                    self.fail(&format!(
                        "{} did not reach revision {at}",
                        self.name(member)
                    ));
                }
                tokio::time::sleep(POLL_INTERVAL).await;
            }
            let hash = bounded_request(client.maintenance_client().hash_kv(at))
                .await
                .unwrap_or_else(|e| {
                    self.fail(&format!("HashKV({at}) on {}: {e}", self.name(member)))
                });
            hashes.insert(
                self.name(member).to_string(),
                (hash.hash(), hash.compact_version()),
            );
        }
        println!("HashKV at revision {at} (hash, compact revision): {hashes:?}");
        let distinct: BTreeSet<_> = hashes.values().collect();
        assert_eq!(
            distinct.len(),
            1,
            "HashKV at revision {at} differs: {hashes:?}"
        );
    }

    /// Member `index`'s fault disk (see [`Cluster::start_on_fault_disks`]).
    pub fn disk(&self, index: usize) -> &rafter_faultfs::FaultDisk {
        &self.disks[index]
    }

    /// [`Cluster::start`] of a given implementation, whatever
    /// `RAFTER_TEST_TARGET` says (for tests that compare both).
    pub async fn start_target(target: Target, size: usize, extra_args: &[&str]) -> Cluster {
        Self::start_with(target, size, extra_args, false, None, false).await
    }

    /// [`Cluster::start`] with a proxy in front of every member's peer port,
    /// so [`Cluster::cut_off`] can partition a member from its peers.
    pub async fn start_with_peer_proxies(size: usize, extra_args: &[&str]) -> Cluster {
        Self::start_with(Target::from_env(), size, extra_args, true, None, false).await
    }

    /// While `cut`, no peer reaches member `index` (its own messages still
    /// reach them: an asymmetric partition); clients still do.
    pub fn cut_off(&self, index: usize, cut: bool) {
        self.members[index]
            .proxy
            .as_ref()
            .expect("the cluster was started with peer proxies")
            .set_cut(cut);
    }

    /// A new Rafter cluster whose members start from a snapshot file
    /// (`rafter snapshot restore` into each member's data directory).
    pub async fn start_restored(size: usize, snapshot: &std::path::Path) -> Cluster {
        Self::start_with(
            Target::Rafter,
            size,
            &[],
            false,
            Some(snapshot.to_path_buf()),
            false,
        )
        .await
    }

    async fn start_with(
        target: Target,
        size: usize,
        extra_args: &[&str],
        proxied: bool,
        restore_from: Option<PathBuf>,
        fault_disks: bool,
    ) -> Cluster {
        let mut members = Vec::new();
        for n in 1..=size {
            let peer_port = free_port();
            let proxy = if proxied {
                Some(PeerProxy::start(peer_port).await)
            } else {
                None
            };
            members.push(Member {
                name: format!("m{n}"),
                client_port: free_port(),
                peer_port,
                proxy,
                child: None,
                starts: 0,
            });
        }
        let dir = tempfile::Builder::new()
            .prefix("rafter-cluster-test-")
            .tempdir()
            .expect("create a temporary directory");
        let mut cluster = Cluster {
            target,
            disks: Vec::new(),
            dir,
            extra_args: extra_args.iter().map(|arg| arg.to_string()).collect(),
            members,
            log_reported: AtomicBool::new(false),
            restore_from,
        };
        if fault_disks {
            for index in 0..size {
                let backing = cluster.member_dir(index).join("backing");
                let data = cluster.data_dir(index);
                for dir in [&backing, &data] {
                    std::fs::create_dir_all(dir).expect("create a fault disk's directories");
                }
                let disk =
                    rafter_faultfs::FaultDisk::mount(&backing, &data).expect("mount a fault disk");
                cluster.disks.push(disk);
            }
        }
        for attempt in 1..=START_ATTEMPTS {
            match cluster.launch_all().await {
                Ok(()) => return cluster,
                Err(_) if cluster.port_in_use() && attempt < START_ATTEMPTS => {
                    cluster.stop_all();
                    for index in 0..size {
                        // Members bootstrapped with the old peer URLs must not be reused.
                        let _ = std::fs::remove_dir_all(cluster.data_dir(index));
                        let member = &mut cluster.members[index];
                        member.client_port = free_port();
                        member.peer_port = free_port();
                        if let Some(proxy) = &member.proxy {
                            proxy.retarget(member.peer_port);
                        }
                    }
                }
                Err(failure) => cluster.fail(&failure.reason),
            }
        }
        unreachable!("the last attempt either returns or panics")
    }

    /// Which implementation the members are.
    pub fn target(&self) -> Target {
        self.target
    }

    /// The number of members, running or not.
    pub fn size(&self) -> usize {
        self.members.len()
    }

    /// The member's name as given to `--name` (`m1`, `m2`, ...).
    pub fn name(&self, index: usize) -> &str {
        &self.members[index].name
    }

    /// The member's client URL, e.g. `http://127.0.0.1:40123`.
    pub fn endpoint(&self, index: usize) -> String {
        format!("http://127.0.0.1:{}", self.members[index].client_port)
    }

    /// The member's client address without scheme, as etcdctl prints it.
    pub fn address(&self, index: usize) -> String {
        format!("127.0.0.1:{}", self.members[index].client_port)
    }

    /// Whether the member's process is running (not killed by the test).
    pub fn is_running(&self, index: usize) -> bool {
        self.members[index].child.is_some()
    }

    /// The member's process id while it runs, e.g. to pause it with SIGSTOP.
    pub fn pid(&self, index: usize) -> Option<u32> {
        self.members[index].child.as_ref().map(Child::id)
    }

    /// The indices of the running members.
    pub fn running(&self) -> Vec<usize> {
        (0..self.size()).filter(|&i| self.is_running(i)).collect()
    }

    /// A new client talking to this member only. Its connection is lazy, so
    /// this succeeds even when the member is down (requests then fail or hang:
    /// bound them with [`client_request_timeout`]).
    pub async fn client(&self, index: usize) -> Client {
        client_for(&self.endpoint(index)).await
    }

    /// Kills the member with SIGKILL (`kill -9`: no chance to flush or clean
    /// up) and reaps it.
    pub fn kill9(&mut self, index: usize) {
        let member = &mut self.members[index];
        let mut child = member
            .child
            .take()
            .unwrap_or_else(|| panic!("kill9: member {} is not running", member.name));
        // On Unix, `Child::kill` sends SIGKILL.
        child.kill().expect("SIGKILL the member");
        child.wait().expect("reap the member");
    }

    /// Waits up to `limit` for member `index` to exit on its own; returns
    /// its status, or `None` if it still runs.
    pub async fn wait_for_exit(
        &mut self,
        index: usize,
        limit: Duration,
    ) -> Option<std::process::ExitStatus> {
        let deadline = Instant::now() + limit;
        loop {
            let member = &mut self.members[index];
            let child = member
                .child
                .as_mut()
                .expect("wait_for_exit: the member is not running");
            if let Some(status) = child.try_wait().expect("poll the member") {
                member.child = None;
                return Some(status);
            }
            if Instant::now() >= deadline {
                return None;
            }
            tokio::time::sleep(POLL_INTERVAL).await;
        }
    }

    /// Starts a killed member again on the same data directory and ports and
    /// waits until it answers requests.
    pub async fn restart(&mut self, index: usize) {
        self.restart_all(&[index]).await;
    }

    /// Starts a killed member again and waits until it answers requests,
    /// without waiting for it to know a leader (it may be cut off).
    pub async fn restart_without_leader(&mut self, index: usize) {
        assert!(
            !self.is_running(index),
            "restart: member {} is still running",
            self.name(index)
        );
        self.spawn(index);
        if let Err(failure) = self.wait_member_ready(index).await {
            self.fail(&failure.reason);
        }
    }

    /// Starts several killed members at once (all before waiting for any: a
    /// restarted etcd member does not serve clients until it reaches a
    /// quorum), then waits until each answers requests and knows a leader,
    /// i.e. has rejoined the cluster.
    pub async fn restart_all(&mut self, indices: &[usize]) {
        if let Err(reason) = self.try_restart_all(indices).await {
            self.fail(&reason);
        }
    }

    /// [`Cluster::restart_all`], returning why a member did not come back
    /// (it exited or never answered) instead of failing the test.
    pub async fn try_restart_all(&mut self, indices: &[usize]) -> Result<(), String> {
        for &index in indices {
            assert!(
                !self.is_running(index),
                "restart: member {} is still running",
                self.name(index)
            );
            self.spawn(index);
        }
        for &index in indices {
            if let Err(failure) = self.wait_member_ready(index).await {
                self.stop_all();
                return Err(format!("{}\n{}", failure.reason, self.all_logs()));
            }
        }
        for &index in indices {
            self.wait_knows_leader(index).await;
        }
        Ok(())
    }

    /// Polls `Maintenance.Status` until the member reports a leader. A
    /// restarted etcd member serves clients only once it has one; a member
    /// that answers before it heard from the leader would refuse
    /// linearizable requests with "no leader" for a moment.
    async fn wait_knows_leader(&self, index: usize) {
        let started = Instant::now();
        let deadline = started + QUORUM_DEADLINE;
        loop {
            if let Some(status) = self.status(index).await {
                if status.leader() != 0 {
                    let waited = started.elapsed();
                    if waited > PROBE_TIMEOUT / 4 {
                        println!(
                            "{} answered requests {waited:?} before it knew a leader",
                            self.name(index)
                        );
                    }
                    return;
                }
            }
            if Instant::now() >= deadline {
                self.fail(&format!(
                    "restarted member {} knew no leader within {QUORUM_DEADLINE:?}",
                    self.name(index)
                ));
            }
            tokio::time::sleep(POLL_INTERVAL).await;
        }
    }

    /// `Maintenance.Status` of one member, or `None` if it does not answer in time.
    pub async fn status(&self, index: usize) -> Option<StatusResponse> {
        let probe = async {
            let client = self.client(index).await;
            client.maintenance_client().status().await.ok()
        };
        tokio::time::timeout(PROBE_TIMEOUT, probe).await.ok()?
    }

    /// Waits until every running member reports the same leader, one of the
    /// running members, and returns its index. Asking all of them rules out
    /// a member that still believes in a leader that was just killed.
    pub async fn leader(&self) -> usize {
        let deadline = Instant::now() + QUORUM_DEADLINE;
        loop {
            let running = self.running();
            let mut ids = Vec::new();
            let mut leaders = Vec::new();
            for &index in &running {
                if let Some(status) = self.status(index).await {
                    let id = status.header().map(|h| h.member_id()).unwrap_or(0);
                    ids.push((index, id));
                    leaders.push(status.leader());
                }
            }
            if ids.len() == running.len() && leaders.windows(2).all(|w| w[0] == w[1]) {
                if let Some(&(index, _)) = ids.iter().find(|(_, id)| Some(id) == leaders.first()) {
                    return index;
                }
            }
            if Instant::now() >= deadline {
                self.fail(&format!(
                    "the running members did not agree on a leader within {QUORUM_DEADLINE:?}: \
                     member ids {ids:?}, leaders they report {leaders:?}"
                ));
            }
            tokio::time::sleep(POLL_INTERVAL).await;
        }
    }

    /// The running members other than the leader.
    pub async fn followers(&self) -> Vec<usize> {
        let leader = self.leader().await;
        self.running()
            .into_iter()
            .filter(|&i| i != leader)
            .collect()
    }

    /// Waits until a linearizable Range succeeds on some running member.
    pub async fn wait_quorum(&self) {
        if let Err(failure) = self.try_wait_quorum().await {
            self.fail(&failure.reason);
        }
    }

    /// The output of the member's current (or last) process so far.
    pub fn log(&self, index: usize) -> String {
        std::fs::read_to_string(self.log_path(index)).unwrap_or_default()
    }

    /// Panics with `message` and every member's log tail.
    pub fn fail(&self, message: &str) -> ! {
        self.log_reported.store(true, Ordering::SeqCst);
        panic!("{:?} cluster: {message}\n{}", self.target, self.all_logs())
    }

    fn all_logs(&self) -> String {
        let mut text = String::new();
        for index in 0..self.size() {
            text.push_str(&format!(
                "--- last {LOG_TAIL_LINES} lines of {} ({}) ---\n{}\n",
                self.name(index),
                self.log_path(index).display(),
                tail(&self.log(index), LOG_TAIL_LINES)
            ));
        }
        text
    }

    fn member_dir(&self, index: usize) -> PathBuf {
        self.dir.path().join(&self.members[index].name)
    }

    fn data_dir(&self, index: usize) -> PathBuf {
        self.member_dir(index).join("data")
    }

    /// A Rafter member's MVCC store file.
    pub fn store_file(&self, index: usize) -> PathBuf {
        assert_eq!(
            self.target,
            Target::Rafter,
            "an etcd member has no Rafter store"
        );
        self.data_dir(index).join("member").join("kv.redb")
    }

    fn log_path(&self, index: usize) -> PathBuf {
        self.member_dir(index)
            .join(format!("member-{}.log", self.members[index].starts))
    }

    fn initial_cluster(&self) -> String {
        self.members
            .iter()
            .map(|m| format!("{}=http://127.0.0.1:{}", m.name, m.advertised_peer_port()))
            .collect::<Vec<_>>()
            .join(",")
    }

    /// The member's flags: the same for etcd and Rafter.
    fn args(&self, index: usize) -> Vec<String> {
        let member = &self.members[index];
        let client_url = self.endpoint(index);
        let peer_url = format!("http://127.0.0.1:{}", member.peer_port);
        let advertised_peer_url = format!("http://127.0.0.1:{}", member.advertised_peer_port());
        let token = format!("rafter-cluster-test-{}", self.members[0].peer_port);
        let mut args: Vec<String> = [
            ("--name", member.name.clone()),
            ("--data-dir", self.data_dir(index).display().to_string()),
            ("--listen-client-urls", client_url.clone()),
            ("--advertise-client-urls", client_url),
            ("--listen-peer-urls", peer_url),
            ("--initial-advertise-peer-urls", advertised_peer_url),
            ("--initial-cluster", self.initial_cluster()),
            ("--initial-cluster-state", "new".to_string()),
            ("--initial-cluster-token", token),
            ("--heartbeat-interval", HEARTBEAT_MS.to_string()),
            ("--election-timeout", ELECTION_MS.to_string()),
        ]
        .into_iter()
        .flat_map(|(flag, value)| [flag.to_string(), value])
        .collect();
        args.extend(self.extra_args.iter().cloned());
        args
    }

    /// Starts every member, then waits for each and for a quorum.
    async fn launch_all(&mut self) -> Result<(), StartFailure> {
        if let Some(snapshot) = &self.restore_from {
            for index in 0..self.size() {
                let dir = self.data_dir(index);
                if dir.join("member").exists() {
                    continue;
                }
                let out = Command::new(env!("CARGO_BIN_EXE_rafter"))
                    .args(["snapshot", "restore"])
                    .arg(snapshot)
                    .args(["--name", &self.members[index].name])
                    .arg("--data-dir")
                    .arg(&dir)
                    .output()
                    .expect("run rafter snapshot restore");
                assert!(
                    out.status.success(),
                    "rafter snapshot restore failed: {}",
                    String::from_utf8_lossy(&out.stderr)
                );
            }
        }
        for index in 0..self.size() {
            self.spawn(index);
        }
        for index in 0..self.size() {
            self.wait_member_ready(index).await?;
        }
        self.try_wait_quorum().await
    }

    /// Spawns the member's process with its output to a fresh log file.
    fn spawn(&mut self, index: usize) {
        self.spawn_with_env(index, &[]);
    }

    /// Starts a killed member with extra environment variables (such as
    /// `RAFTER_CRASH_POINT`) and waits up to `limit` for it to exit.
    pub async fn start_expecting_exit(
        &mut self,
        index: usize,
        env: &[(&str, &str)],
        limit: Duration,
    ) -> Option<std::process::ExitStatus> {
        assert!(
            !self.is_running(index),
            "member {} still runs",
            self.name(index)
        );
        self.spawn_with_env(index, env);
        self.wait_for_exit(index, limit).await
    }

    fn spawn_with_env(&mut self, index: usize, env: &[(&str, &str)]) {
        std::fs::create_dir_all(self.member_dir(index)).expect("create the member directory");
        self.members[index].starts += 1;
        let log = File::create(self.log_path(index)).expect("create the member log");
        let mut command = self.target.command();
        command
            .args(self.args(index))
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("clone the log file handle"))
            .stderr(log);
        die_with_parent(&mut command);
        let child = command
            .spawn()
            .unwrap_or_else(|e| panic!("cannot spawn {command:?}: {e}"));
        self.members[index].child = Some(child);
    }

    /// Polls a serializable Range until the member answers, it exits, or the
    /// deadline passes.
    async fn wait_member_ready(&mut self, index: usize) -> Result<(), StartFailure> {
        let deadline = Instant::now() + START_DEADLINE;
        loop {
            let member = &mut self.members[index];
            let child = member.child.as_mut().expect("the member was spawned");
            if let Some(status) = child.try_wait().expect("poll the member process") {
                member.child = None;
                return Err(StartFailure {
                    reason: format!("member {} exited with {status}", member.name),
                });
            }
            if self.answers_serializable(index).await {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(StartFailure {
                    reason: format!(
                        "member {} did not answer a serializable Range within {START_DEADLINE:?}\ncommand: {:?} {}",
                        self.name(index),
                        self.target.command(),
                        self.args(index).join(" ")
                    ),
                });
            }
            tokio::time::sleep(POLL_INTERVAL).await;
        }
    }

    async fn answers_serializable(&self, index: usize) -> bool {
        if TcpStream::connect(("127.0.0.1", self.members[index].client_port)).is_err() {
            return false;
        }
        let probe = async {
            let mut client = self.client(index).await;
            let options = GetOptions::new().with_serializable();
            client
                .get("rafter-test-readiness-probe", Some(options))
                .await
                .ok()
        };
        matches!(
            tokio::time::timeout(PROBE_TIMEOUT, probe).await,
            Ok(Some(_))
        )
    }

    async fn try_wait_quorum(&self) -> Result<(), StartFailure> {
        let deadline = Instant::now() + QUORUM_DEADLINE;
        loop {
            for index in self.running() {
                let probe = async {
                    let mut client = self.client(index).await;
                    client.get("rafter-test-readiness-probe", None).await.ok()
                };
                if let Ok(Some(_)) = tokio::time::timeout(PROBE_TIMEOUT, probe).await {
                    return Ok(());
                }
            }
            if Instant::now() >= deadline {
                return Err(StartFailure {
                    reason: format!(
                        "no running member served a linearizable Range within {QUORUM_DEADLINE:?}"
                    ),
                });
            }
            tokio::time::sleep(POLL_INTERVAL).await;
        }
    }

    fn port_in_use(&self) -> bool {
        (0..self.size()).any(|i| {
            self.log(i)
                .to_lowercase()
                .contains("address already in use")
        })
    }

    fn stop_all(&mut self) {
        for member in &mut self.members {
            if let Some(mut child) = member.child.take() {
                let _ = child.kill();
                let _ = child.wait();
            }
        }
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        self.stop_all();
        if std::thread::panicking() && !self.log_reported.load(Ordering::SeqCst) {
            eprintln!("{}", self.all_logs());
        }
    }
}

/// `request`, or a timeout error after [`client_request_timeout`]: a
/// request the server leaves hanging fails instead of hanging the test.
pub async fn bounded_request<T>(
    request: impl std::future::Future<Output = Result<T, etcd_client::Error>>,
) -> Result<T, etcd_client::Error> {
    match tokio::time::timeout(client_request_timeout(), request).await {
        Ok(result) => result,
        Err(_) => Err(etcd_client::Error::IoError(std::io::Error::new(
            std::io::ErrorKind::TimedOut,
            format!(
                "no answer within the client timeout of {:?}",
                client_request_timeout()
            ),
        ))),
    }
}

/// A client for one endpoint, with the harness's connect and request timeouts.
pub async fn client_for(endpoint: &str) -> Client {
    let options = ConnectOptions::new()
        .with_connect_timeout(PROBE_TIMEOUT)
        .with_timeout(client_request_timeout());
    Client::connect([endpoint], Some(options))
        .await
        .expect("connect a client")
}
