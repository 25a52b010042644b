//! Harness shared by Rafter's integration tests: it runs a real server process
//! so that the same tests run against the real etcd (the oracle that proves
//! each expectation right) and against Rafter (the system under test).
//!
//! `RAFTER_TEST_TARGET=etcd` runs `etcd` from PATH; unset or `rafter` runs this
//! crate's `rafter serve`. Both get the same etcd flag names. Each [`Server`]
//! has its own free ports and temporary data directory, waits for readiness by
//! polling a real request, captures the server's output to a log file, can be
//! killed with SIGKILL and restarted on the same data and ports, and is killed
//! and reaped when dropped.
//!
//! Not every test file uses every helper, hence `dead_code` is allowed.
#![allow(dead_code)]

use std::collections::BTreeSet;
use std::fs::File;
use std::net::{TcpListener, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use etcd_client::{
    Client, ConnectOptions, GetResponse, ResponseHeader, TxnOpResponse, TxnResponse,
};
use tempfile::TempDir;

/// How long a server may take to answer its first request.
const START_DEADLINE: Duration = Duration::from_secs(30);
/// Pause between two readiness probes.
const POLL_INTERVAL: Duration = Duration::from_millis(20);
/// Longest a single readiness probe may take.
const PROBE_TIMEOUT: Duration = Duration::from_secs(2);
/// Per-request timeout of test clients, so a hung server fails a test instead
/// of hanging it.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(15);
/// How often a first start is retried with new ports when another process took
/// one of them between choosing it and the server binding it.
const START_ATTEMPTS: usize = 3;
/// Raft heartbeat interval of test servers, in milliseconds.
const HEARTBEAT_MS: u64 = 10;
/// Raft election timeout of test servers, in milliseconds.
const ELECTION_MS: u64 = 100;
/// Lines of server log printed when a test fails.
const LOG_TAIL_LINES: usize = 200;

/// What to do when a program the tests need is missing.
pub const INSTALL_HINT: &str = "run scripts/install-test-deps.sh to install etcd and etcdctl";

/// Which server implementation the tests run against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    Rafter,
    Etcd,
}

impl Target {
    /// The target chosen by `RAFTER_TEST_TARGET` (default: Rafter).
    pub fn from_env() -> Target {
        match std::env::var("RAFTER_TEST_TARGET").as_deref() {
            Err(_) | Ok("") | Ok("rafter") => Target::Rafter,
            Ok("etcd") => Target::Etcd,
            Ok(other) => panic!("RAFTER_TEST_TARGET={other:?}: expected \"etcd\" or \"rafter\""),
        }
    }

    /// The command that runs a member, before its flags.
    fn command(self) -> Command {
        match self {
            Target::Rafter => {
                let mut command = Command::new(env!("CARGO_BIN_EXE_rafter"));
                command.arg("serve");
                command
            }
            Target::Etcd => Command::new(find_on_path("etcd")),
        }
    }
}

/// The full path of `program` on PATH; panics with [`INSTALL_HINT`] if absent.
pub fn find_on_path(program: &str) -> PathBuf {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .map(|dir| dir.join(program))
        .find(|candidate| candidate.is_file())
        .unwrap_or_else(|| panic!("`{program}` is not on PATH: {INSTALL_HINT}"))
}

/// Ports already handed out in this test process, so that parallel tests
/// never get the same one even if the kernel offers it twice.
static HANDED_OUT_PORTS: Mutex<BTreeSet<u16>> = Mutex::new(BTreeSet::new());

/// A localhost TCP port that was free a moment ago (chosen by binding port 0).
pub fn free_port() -> u16 {
    loop {
        let listener = TcpListener::bind(("127.0.0.1", 0)).expect("bind an ephemeral port");
        let port = listener.local_addr().expect("local address").port();
        if HANDED_OUT_PORTS.lock().unwrap().insert(port) {
            return port;
        }
    }
}

/// Why a server did not become ready.
struct StartFailure {
    reason: String,
    log: String,
}

impl StartFailure {
    fn port_in_use(&self) -> bool {
        self.log.to_lowercase().contains("address already in use")
    }
}

/// One single-member cluster running as a child process.
pub struct Server {
    target: Target,
    dir: TempDir,
    client_port: u16,
    peer_port: u16,
    extra_args: Vec<String>,
    /// Where the data lives when not in `dir` (a fault disk's mount).
    data_dir: Option<PathBuf>,
    child: Option<Child>,
    starts: usize,
    /// Set once a failure message has included the log, so Drop does not
    /// print it again.
    log_reported: bool,
}

impl Server {
    /// Starts a member with default settings and waits until it serves requests.
    pub async fn start() -> Server {
        Server::start_with_args(&[]).await
    }

    /// Starts a member with extra flags (e.g. `--max-request-bytes`), which
    /// are passed again on every restart.
    pub async fn start_with_args(extra_args: &[&str]) -> Server {
        Server::start_target(Target::from_env(), extra_args).await
    }

    /// Starts a member of the given implementation whatever
    /// `RAFTER_TEST_TARGET` says (for tests that compare both).
    pub async fn start_target(target: Target, extra_args: &[&str]) -> Server {
        Server::start_on(target, None, extra_args).await
    }

    /// Starts a member whose data directory is `data_dir` (by default one
    /// in the server's temporary directory).
    pub async fn start_on(
        target: Target,
        data_dir: Option<PathBuf>,
        extra_args: &[&str],
    ) -> Server {
        let dir = tempfile::Builder::new()
            .prefix("rafter-test-")
            .tempdir()
            .expect("create a temporary directory");
        let mut server = Server {
            target,
            dir,
            client_port: free_port(),
            peer_port: free_port(),
            extra_args: extra_args.iter().map(|arg| arg.to_string()).collect(),
            data_dir,
            child: None,
            starts: 0,
            log_reported: false,
        };
        for attempt in 1..=START_ATTEMPTS {
            match server.launch().await {
                Ok(()) => return server,
                Err(failure) if failure.port_in_use() && attempt < START_ATTEMPTS => {
                    server.client_port = free_port();
                    server.peer_port = free_port();
                    // A member bootstrapped with the old peer URL must not be reused.
                    let _ = std::fs::remove_dir_all(server.data_dir());
                }
                Err(failure) => server.fail_start(failure),
            }
        }
        unreachable!("the last attempt either returns or panics")
    }

    /// Which implementation this server is.
    pub fn target(&self) -> Target {
        self.target
    }

    /// The server's process id, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// The client URL, e.g. `http://127.0.0.1:40123`.
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.client_port)
    }

    /// The client address without scheme, as `etcdctl endpoint status` prints it.
    pub fn address(&self) -> String {
        format!("127.0.0.1:{}", self.client_port)
    }

    /// A new client connected to this server.
    pub async fn client(&self) -> Client {
        let options = ConnectOptions::new()
            .with_connect_timeout(PROBE_TIMEOUT)
            .with_timeout(REQUEST_TIMEOUT);
        Client::connect([self.endpoint()], Some(options))
            .await
            .expect("connect a client")
    }

    /// Kills the server with SIGKILL (`kill -9`: no chance to flush or clean
    /// up) and reaps it.
    pub fn kill9(&mut self) {
        let mut child = self.child.take().expect("kill9: the server is not running");
        // On Unix, `Child::kill` sends SIGKILL.
        child.kill().expect("SIGKILL the server");
        child.wait().expect("reap the server");
    }

    /// Starts the member again on the same data directory and ports, and waits
    /// until it serves requests.
    pub async fn restart(&mut self) {
        assert!(self.child.is_none(), "restart: the server is still running");
        if let Err(failure) = self.launch().await {
            self.fail_start(failure);
        }
    }

    /// Starts the member again on its data and expects it to refuse: to
    /// exit without ever answering a request. Returns its exit status and
    /// output.
    pub async fn restart_expecting_exit(&mut self) -> (std::process::ExitStatus, String) {
        assert!(self.child.is_none(), "restart: the server is still running");
        let mut child = self.spawn();
        let deadline = Instant::now() + START_DEADLINE;
        loop {
            if let Some(status) = child.try_wait().expect("poll the server process") {
                return (status, self.log());
            }
            if self.answers_requests().await || Instant::now() >= deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!("the server started instead of refusing:\n{}", self.log());
            }
            tokio::time::sleep(POLL_INTERVAL).await;
        }
    }

    /// Waits up to `limit` for the running server to exit on its own;
    /// returns its status, or `None` if it still runs.
    pub async fn wait_for_exit(&mut self, limit: Duration) -> Option<std::process::ExitStatus> {
        let deadline = Instant::now() + limit;
        loop {
            let child = self
                .child
                .as_mut()
                .expect("wait_for_exit: the server is not running");
            if let Some(status) = child.try_wait().expect("poll the server process") {
                self.child = None;
                return Some(status);
            }
            if Instant::now() >= deadline {
                return None;
            }
            tokio::time::sleep(POLL_INTERVAL).await;
        }
    }

    /// The member's data directory.
    pub fn data_path(&self) -> PathBuf {
        self.data_dir()
    }

    /// The output of the current (or last) server process so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    fn data_dir(&self) -> PathBuf {
        self.data_dir
            .clone()
            .unwrap_or_else(|| self.dir.path().join("data"))
    }

    fn log_path(&self) -> PathBuf {
        self.dir.path().join(format!("server-{}.log", self.starts))
    }

    fn args(&self) -> Vec<String> {
        let client_url = self.endpoint();
        let peer_url = format!("http://127.0.0.1:{}", self.peer_port);
        let mut args: Vec<String> = [
            ("--name", "test-member".to_string()),
            ("--data-dir", self.data_dir().display().to_string()),
            ("--listen-client-urls", client_url.clone()),
            ("--advertise-client-urls", client_url),
            ("--listen-peer-urls", peer_url.clone()),
            ("--initial-advertise-peer-urls", peer_url.clone()),
            ("--initial-cluster", format!("test-member={peer_url}")),
            ("--initial-cluster-state", "new".to_string()),
            (
                "--initial-cluster-token",
                format!("rafter-test-{}", self.peer_port),
            ),
            // A single member elects itself after one election timeout; short
            // timers keep the many server starts of the tests fast.
            ("--heartbeat-interval", HEARTBEAT_MS.to_string()),
            ("--election-timeout", ELECTION_MS.to_string()),
        ]
        .into_iter()
        .flat_map(|(flag, value)| [flag.to_string(), value])
        .collect();
        args.extend(self.extra_args.iter().cloned());
        args
    }

    /// Spawns the process (a new start) with output to a fresh log file.
    fn spawn(&mut self) -> Child {
        self.starts += 1;
        let log = File::create(self.log_path()).expect("create the server log");
        let mut command = self.target.command();
        command
            .args(self.args())
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("clone the log file handle"))
            .stderr(log);
        die_with_parent(&mut command);
        command
            .spawn()
            .unwrap_or_else(|e| panic!("cannot spawn {command:?}: {e}"))
    }

    /// Spawns the process with output to a fresh log file and waits for it.
    async fn launch(&mut self) -> Result<(), StartFailure> {
        let child = self.spawn();
        self.child = Some(child);
        self.wait_ready().await
    }

    /// Polls with a real request until the server answers, it exits, or the
    /// deadline passes.
    async fn wait_ready(&mut self) -> Result<(), StartFailure> {
        let deadline = Instant::now() + START_DEADLINE;
        loop {
            let child = self.child.as_mut().expect("the server was spawned");
            if let Some(status) = child.try_wait().expect("poll the server process") {
                self.child = None;
                return Err(self.start_failure(format!("the server exited with {status}")));
            }
            if self.answers_requests().await {
                return Ok(());
            }
            if Instant::now() >= deadline {
                self.stop();
                return Err(self.start_failure(format!(
                    "the server did not answer a Range request within {START_DEADLINE:?}"
                )));
            }
            tokio::time::sleep(POLL_INTERVAL).await;
        }
    }

    /// Whether the client port accepts connections and a linearizable Range
    /// (which needs an elected leader) succeeds.
    async fn answers_requests(&self) -> bool {
        if TcpStream::connect(("127.0.0.1", self.client_port)).is_err() {
            return false;
        }
        let probe = async {
            let mut client = Client::connect([self.endpoint()], None).await.ok()?;
            client.get("rafter-test-readiness-probe", None).await.ok()
        };
        matches!(
            tokio::time::timeout(PROBE_TIMEOUT, probe).await,
            Ok(Some(_))
        )
    }

    fn start_failure(&self, reason: String) -> StartFailure {
        StartFailure {
            reason,
            log: self.log(),
        }
    }

    fn fail_start(&mut self, failure: StartFailure) -> ! {
        self.log_reported = true;
        panic!(
            "{:?} server failed to start: {}\ncommand: {:?} {}\n--- server log ({}) ---\n{}",
            self.target,
            failure.reason,
            self.target.command(),
            self.args().join(" "),
            self.log_path().display(),
            failure.log
        )
    }

    fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop();
        if std::thread::panicking() && !self.log_reported {
            eprintln!(
                "--- last {LOG_TAIL_LINES} lines of the {:?} server log ---\n{}",
                self.target,
                tail(&self.log(), LOG_TAIL_LINES)
            );
        }
    }
}

/// Makes the kernel SIGKILL the child when the thread that spawned it dies, so
/// no server outlives an aborted or killed test run (Drop covers the rest).
fn die_with_parent(command: &mut Command) {
    // SAFETY: the closure only calls prctl, which is async-signal-safe.
    unsafe {
        command.pre_exec(|| {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) == -1 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
}

/// The last `lines` lines of `text`.
fn tail(text: &str, lines: usize) -> &str {
    match text.rmatch_indices('\n').nth(lines) {
        Some((index, _)) => &text[index + 1..],
        None => text,
    }
}

/// The real etcdctl (API v3) aimed at `endpoints` (comma separated), with
/// any `ETCDCTL_*` settings of the environment removed so only the test's
/// flags count.
pub fn etcdctl_command(endpoints: &str) -> Command {
    let mut command = Command::new(find_on_path("etcdctl"));
    for (name, _) in std::env::vars_os() {
        if name.to_string_lossy().starts_with("ETCDCTL_") {
            command.env_remove(name);
        }
    }
    command
        .env("ETCDCTL_API", "3")
        .arg(format!("--endpoints={endpoints}"));
    command
}

/// Runs this crate's `rafter` binary (a client command), expects success
/// and returns its standard output.
#[track_caller]
pub fn rafter_ok(args: &[&str]) -> String {
    let mut command = Command::new(env!("CARGO_BIN_EXE_rafter"));
    command.args(args).stdin(Stdio::null());
    let output = command
        .output()
        .unwrap_or_else(|e| panic!("cannot run {command:?}: {e}"));
    assert!(
        output.status.success(),
        "{command:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// Asserts that `result` is a gRPC error with exactly this code and message.
#[track_caller]
pub fn expect_grpc_error<T: std::fmt::Debug>(
    result: Result<T, etcd_client::Error>,
    code: tonic::Code,
    message: &str,
) {
    match result {
        Err(etcd_client::Error::GRpcStatus(status)) => {
            assert_eq!(
                (status.code(), status.message()),
                (code, message),
                "unexpected gRPC status {status:?}"
            );
        }
        other => panic!("expected gRPC error {code:?} {message:?}, got {other:?}"),
    }
}

/// Asserts that `result` is a gRPC error with this code, whatever its message.
#[track_caller]
pub fn expect_grpc_code<T: std::fmt::Debug>(
    result: Result<T, etcd_client::Error>,
    code: tonic::Code,
) {
    match result {
        Err(etcd_client::Error::GRpcStatus(status)) => {
            assert_eq!(status.code(), code, "unexpected gRPC status {status:?}");
        }
        other => panic!("expected gRPC error {code:?}, got {other:?}"),
    }
}

/// The range response of a txn's op; fails the test if it is another kind.
#[track_caller]
pub fn range_of(op: &TxnOpResponse) -> &GetResponse {
    match op {
        TxnOpResponse::Get(response) => response,
        other => panic!("expected a range response, got {other:?}"),
    }
}

/// The nested txn response of a txn's op; fails the test if it is another
/// kind.
#[track_caller]
pub fn txn_of(op: &TxnOpResponse) -> &TxnResponse {
    match op {
        TxnOpResponse::Txn(response) => response,
        other => panic!("expected a txn response, got {other:?}"),
    }
}

/// The revision of a response header (every KV response must have one).
#[track_caller]
pub fn revision(header: Option<&ResponseHeader>) -> i64 {
    header.expect("response has a header").revision()
}
pub mod cluster;
pub mod dial;
pub mod faults;
pub mod output;
pub use rafter_bench::peer_proxy;
pub mod watch;

/// A small deterministic generator (xorshift), so a test's random choices
/// repeat from run to run.
pub struct Rng(pub u64);

impl Rng {
    /// A number in `0..n`.
    pub fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}
