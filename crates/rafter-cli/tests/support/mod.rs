//! Harness of the parity tests: two real etcd servers ("twins") that share
//! their advertised URLs, so they report the same cluster and member IDs.
//! etcdctl talks to one twin and rafter's client commands (run in-process)
//! to the other; both receive the same command sequence, so their outputs
//! must be byte-for-byte identical, revisions included.
//!
//! `etcd` and `etcdctl` must be on PATH; a test fails with a message saying
//! so if they are not. Servers get free ports and a temporary data
//! directory, are polled until they answer, and are killed when dropped.

#![allow(dead_code)]

use std::io::Write;
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use clap::Parser;
use tempfile::TempDir;

/// How long the servers may take to answer their first request.
const START_DEADLINE: Duration = Duration::from_secs(30);
/// Pause between readiness probes.
const POLL_INTERVAL: Duration = Duration::from_millis(50);
/// Lines of server log shown when a server fails to start.
const LOG_TAIL_LINES: usize = 40;
/// How often starting is retried on new ports.
const START_ATTEMPTS: usize = 3;

/// The full path of `program` on PATH; fails the test clearly if absent.
pub fn find_on_path(program: &str) -> PathBuf {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .map(|dir| dir.join(program))
        .find(|candidate| candidate.is_file())
        .unwrap_or_else(|| {
            panic!(
                "`{program}` was not found on PATH: these tests compare rafter's client \
                 commands with etcdctl against a real etcd 3.4, so both `etcd` and `etcdctl` \
                 must be installed (scripts/install-test-deps.sh installs them)"
            )
        })
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("no free port on 127.0.0.1")
        .port()
}

/// What a command printed and how it exited.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    pub stdout: Vec<u8>,
    pub stderr: String,
    pub code: i32,
}

impl Outcome {
    pub fn stdout_text(&self) -> String {
        String::from_utf8_lossy(&self.stdout).into_owned()
    }
}

/// Two etcd servers with the same identity.
pub struct Twins {
    dir: TempDir,
    children: Vec<Child>,
    /// The client endpoint etcdctl uses.
    pub etcdctl_endpoint: String,
    /// The client endpoint rafter uses.
    pub rafter_endpoint: String,
}

impl Twins {
    /// Starts both servers and waits until each answers. A server that exits
    /// while starting (a port taken meanwhile) is retried on new ports.
    pub fn start() -> Twins {
        let etcd = find_on_path("etcd");
        find_on_path("etcdctl");
        let mut last_error = String::new();
        for _ in 0..START_ATTEMPTS {
            let mut twins = Twins::spawn(&etcd);
            match twins.wait_ready() {
                Ok(()) => return twins,
                Err(e) => last_error = e,
            }
        }
        panic!("etcd twins did not start: {last_error}");
    }

    fn spawn(etcd: &std::path::Path) -> Twins {
        let dir = tempfile::tempdir().expect("temporary directory");
        let ports: Vec<u16> = (0..4).map(|_| free_port()).collect();
        let advertised_client = format!("http://127.0.0.1:{}", ports[0]);
        let advertised_peer = format!("http://127.0.0.1:{}", ports[1]);
        let mut children = Vec::new();
        for (i, (client, peer)) in [(ports[0], ports[1]), (ports[2], ports[3])]
            .into_iter()
            .enumerate()
        {
            let log =
                std::fs::File::create(dir.path().join(format!("etcd{i}.log"))).expect("log file");
            let child = Command::new(etcd)
                .arg("--name=default")
                .arg(format!(
                    "--data-dir={}",
                    dir.path().join(format!("data{i}")).display()
                ))
                .arg(format!("--listen-client-urls=http://127.0.0.1:{client}"))
                .arg(format!("--listen-peer-urls=http://127.0.0.1:{peer}"))
                .arg(format!("--advertise-client-urls={advertised_client}"))
                .arg(format!("--initial-advertise-peer-urls={advertised_peer}"))
                .arg(format!("--initial-cluster=default={advertised_peer}"))
                .stdout(Stdio::null())
                .stderr(log)
                .spawn()
                .expect("start etcd");
            children.push(child);
        }
        Twins {
            dir,
            children,
            etcdctl_endpoint: format!("127.0.0.1:{}", ports[0]),
            rafter_endpoint: format!("127.0.0.1:{}", ports[2]),
        }
    }

    /// Polls each server until it accepts connections and serves a
    /// linearizable read.
    fn wait_ready(&mut self) -> Result<(), String> {
        let deadline = Instant::now() + START_DEADLINE;
        let endpoints = [self.etcdctl_endpoint.clone(), self.rafter_endpoint.clone()];
        for (i, endpoint) in endpoints.iter().enumerate() {
            loop {
                if let Ok(Some(status)) = self.children[i].try_wait() {
                    return Err(format!(
                        "etcd at {endpoint} exited ({status}): {}",
                        self.log(i)
                    ));
                }
                if Instant::now() > deadline {
                    return Err(format!(
                        "etcd at {endpoint} never became ready: {}",
                        self.log(i)
                    ));
                }
                let listening = TcpStream::connect(endpoint.as_str()).is_ok();
                if listening {
                    let probe = etcdctl_raw(
                        endpoint,
                        &["endpoint", "health", "--command-timeout=2s"],
                        b"",
                    );
                    if probe.code == 0 {
                        break;
                    }
                }
                std::thread::sleep(POLL_INTERVAL);
            }
        }
        Ok(())
    }

    /// The last lines of server `i`'s log, for failure messages.
    fn log(&self, i: usize) -> String {
        let text = std::fs::read_to_string(self.dir.path().join(format!("etcd{i}.log")))
            .unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(LOG_TAIL_LINES)..].join("\n")
    }

    /// Runs etcdctl against its twin.
    pub fn etcdctl(&self, args: &[&str], stdin: &[u8]) -> Outcome {
        etcdctl_raw(&self.etcdctl_endpoint, args, stdin)
    }

    /// Runs a rafter client command in-process against its twin.
    pub async fn rafter(&self, args: &[&str], stdin: &[u8]) -> Outcome {
        rafter_raw(&self.rafter_endpoint, args, stdin).await
    }

    /// Runs the command through both tools and asserts identical output and
    /// exit code; returns what they printed.
    pub async fn same(&self, args: &[&str], stdin: &[u8]) -> Outcome {
        let expected = self.etcdctl(args, stdin);
        let actual = self.rafter(args, stdin).await;
        assert_eq!(
            actual,
            expected,
            "`{}` differs (left: rafter, right: etcdctl)\nrafter stdout:\n{}\netcdctl stdout:\n{}",
            args.join(" "),
            actual.stdout_text(),
            expected.stdout_text()
        );
        actual
    }
}

impl Drop for Twins {
    fn drop(&mut self) {
        for child in &mut self.children {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// etcdctl (v3 API) against `endpoint`, with its client-library log lines
/// removed from stderr.
pub fn etcdctl_raw(endpoint: &str, args: &[&str], stdin: &[u8]) -> Outcome {
    let mut child = Command::new(find_on_path("etcdctl"))
        .env("ETCDCTL_API", "3")
        .args(args)
        .arg(format!("--endpoints={endpoint}"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run etcdctl");
    let mut input = child.stdin.take().expect("etcdctl stdin");
    input.write_all(stdin).expect("write etcdctl stdin");
    drop(input);
    let out = child.wait_with_output().expect("etcdctl output");
    let stderr = String::from_utf8_lossy(&out.stderr)
        .lines()
        .filter(|l| !l.starts_with("{\"level\":"))
        .map(|l| format!("{l}\n"))
        .collect();
    Outcome {
        stdout: out.stdout,
        stderr,
        code: out.status.code().unwrap_or(-1),
    }
}

#[derive(Debug, Parser)]
#[command(name = "rafter")]
struct Cli {
    #[command(subcommand)]
    command: rafter_cli::ClientCommand,
}

/// A rafter client command against `endpoint`, run in-process.
pub async fn rafter_raw(endpoint: &str, args: &[&str], stdin: &[u8]) -> Outcome {
    let endpoint_flag = format!("--endpoints={endpoint}");
    let argv = std::iter::once("rafter")
        .chain(args.iter().copied())
        .chain(std::iter::once(endpoint_flag.as_str()));
    let cli = Cli::try_parse_from(argv).unwrap_or_else(|e| panic!("rafter {args:?}: {e}"));
    let mut stdout = Vec::new();
    let mut stderr = Vec::new();
    let mut input = stdin;
    let mut ctx = rafter_cli::Ctx {
        out: &mut stdout,
        err: &mut stderr,
        stdin: &mut input,
    };
    let code = rafter_cli::run_with(cli.command, &mut ctx).await;
    Outcome {
        stdout,
        stderr: String::from_utf8_lossy(&stderr).into_owned(),
        code,
    }
}
