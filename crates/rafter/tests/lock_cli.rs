//! `rafter lock` and `rafter elect` against etcdctl: both tools run against
//! the same test server (Rafter, or etcd with `RAFTER_TEST_TARGET=etcd`)
//! and must print the same bytes and exit the same way. Lock and election
//! keys end in the session's lease id, which differs from run to run; the
//! comparisons replace it with `<lease>` and nothing else.

mod common;

use std::process::{Child, Command, Stdio};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

use common::{find_on_path, Server};

/// What a command printed and how it exited.
#[derive(Debug, PartialEq, Eq)]
struct Outcome {
    stdout: String,
    stderr: String,
    code: Option<i32>,
}

/// How long a test waits for a line or an exit.
const DEADLINE: Duration = Duration::from_secs(15);

/// How long a waiting lock or campaign must print nothing to count as
/// blocked.
const STILL_BLOCKED: Duration = Duration::from_millis(300);

const TOOLS: [&str; 2] = ["etcdctl", "rafter"];

/// `<tool> <subcommand> --endpoints=... <args>` (the endpoints come before
/// the arguments, which may hold a `--`).
fn command(tool: &str, server: &Server, subcommand: &str, args: &[&str]) -> Command {
    let mut command = if tool == "etcdctl" {
        Command::new(find_on_path("etcdctl"))
    } else {
        Command::new(env!("CARGO_BIN_EXE_rafter"))
    };
    for (name, _) in std::env::vars_os() {
        if name.to_string_lossy().starts_with("ETCDCTL_") {
            command.env_remove(name);
        }
    }
    command
        .env("ETCDCTL_API", "3")
        .arg(subcommand)
        .arg(format!("--endpoints={}", server.address()))
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    command
}

/// Stderr without the JSON log lines of etcdctl's client library.
fn clean_stderr(text: &str) -> String {
    text.lines()
        .filter(|line| !line.starts_with("{\"level\""))
        .map(|line| format!("{line}\n"))
        .collect()
}

/// `text` with every `name/<lease hex>` key's lease part as `<lease>`.
fn normalize(text: &str) -> String {
    text.split_inclusive('\n')
        .map(|line| {
            let (body, end) = match line.strip_suffix('\n') {
                Some(body) => (body, "\n"),
                None => (line, ""),
            };
            match body.rsplit_once('/') {
                Some((name, hex))
                    if hex.len() >= 8 && hex.chars().all(|c| c.is_ascii_hexdigit()) =>
                {
                    format!("{name}/<lease>{end}")
                }
                _ => line.to_string(),
            }
        })
        .collect()
}

fn run(tool: &str, server: &Server, subcommand: &str, args: &[&str]) -> Outcome {
    let mut command = command(tool, server, subcommand, args);
    let output = command
        .output()
        .unwrap_or_else(|e| panic!("cannot run {command:?}: {e}"));
    Outcome {
        stdout: normalize(&String::from_utf8_lossy(&output.stdout)),
        stderr: clean_stderr(&String::from_utf8_lossy(&output.stderr)),
        code: output.status.code(),
    }
}

/// Runs the command through both tools and asserts identical outcomes.
#[track_caller]
fn same(server: &Server, subcommand: &str, args: &[&str]) -> Outcome {
    let expected = run("etcdctl", server, subcommand, args);
    let actual = run("rafter", server, subcommand, args);
    assert_eq!(
        actual,
        expected,
        "`{subcommand} {}` differs (left: rafter, right: etcdctl)",
        args.join(" ")
    );
    actual
}

/// A running `lock` or `elect`: stdout lines read by a thread as they
/// appear; dropping it kills and reaps the process.
struct Running {
    child: Child,
    lines: mpsc::Receiver<String>,
    seen: Vec<String>,
    stderr: Arc<Mutex<String>>,
    what: String,
}

impl Running {
    fn spawn(tool: &str, server: &Server, subcommand: &str, args: &[&str]) -> Running {
        let mut command = command(tool, server, subcommand, args);
        let mut child = command
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run {command:?}: {e}"));
        let (lines, stderr) = common::output::capture(&mut child);
        Running {
            child,
            lines,
            seen: Vec::new(),
            stderr,
            what: format!("{tool} {subcommand} {}", args.join(" ")),
        }
    }

    /// Waits until `count` lines were printed in all; returns them all,
    /// normalized.
    #[track_caller]
    fn lines(&mut self, count: usize) -> Vec<String> {
        let deadline = Instant::now() + DEADLINE;
        while self.seen.len() < count {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => self.seen.push(line),
                Err(e) => panic!(
                    "`{}` printed {:?}, expected {count} lines ({e}); stderr: {}",
                    self.what,
                    self.seen,
                    self.stderr.lock().unwrap()
                ),
            }
        }
        self.seen.iter().map(|l| normalize(l)).collect()
    }

    /// The raw lines seen so far.
    fn raw(&self) -> &[String] {
        &self.seen
    }

    /// Asserts nothing more is printed within `wait`.
    #[track_caller]
    fn printed_nothing_more(&mut self, wait: Duration) {
        if let Ok(line) = self.lines.recv_timeout(wait) {
            panic!(
                "`{}` printed {line:?} after {:?}, expected nothing",
                self.what, self.seen
            );
        }
    }

    /// Sends `signal`, waits for the exit; returns the exit code, the rest
    /// of stdout (normalized) and stderr.
    #[track_caller]
    fn stop_with(&mut self, signal: libc::c_int) -> Outcome {
        let pid = self.child.id() as libc::pid_t;
        // SAFETY: kill(2) on our own child, which is not yet reaped.
        assert_eq!(unsafe { libc::kill(pid, signal) }, 0, "signal");
        let deadline = Instant::now() + DEADLINE;
        let status = loop {
            if let Some(status) = self.child.try_wait().expect("poll") {
                break status;
            }
            assert!(
                Instant::now() < deadline,
                "`{}` did not exit after signal {signal}",
                self.what
            );
            std::thread::sleep(Duration::from_millis(10));
        };
        // Let the reader threads drain the pipes.
        while let Ok(line) = self.lines.recv_timeout(Duration::from_secs(5)) {
            self.seen.push(line);
        }
        std::thread::sleep(Duration::from_millis(50));
        Outcome {
            stdout: self
                .seen
                .iter()
                .map(|l| normalize(&format!("{l}\n")))
                .collect(),
            stderr: clean_stderr(&self.stderr.lock().unwrap()),
            code: status.code(),
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The keys under `prefix`.
fn keys_under(server: &Server, prefix: &str) -> Vec<String> {
    let out = run(
        "etcdctl",
        server,
        "get",
        &[prefix, "--prefix", "--keys-only"],
    );
    out.stdout
        .lines()
        .filter(|l| !l.is_empty())
        .map(String::from)
        .collect()
}

/// Waits until `count` keys exist under `prefix`.
#[track_caller]
fn wait_for_keys(server: &Server, prefix: &str, count: usize) {
    let deadline = Instant::now() + DEADLINE;
    loop {
        let keys = keys_under(server, prefix);
        if keys.len() == count {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{prefix}: keys {keys:?}, expected {count}"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[tokio::test]
async fn argument_errors_match_etcdctl() {
    let server = Server::start().await;
    same(&server, "lock", &[]);
    same(&server, "elect", &[]);
    same(&server, "elect", &["name"]);
    same(&server, "elect", &["-l", "name", "proposal"]);
    same(&server, "elect", &["name", "proposal", "extra"]);
}

#[tokio::test]
async fn lock_runs_a_command_as_etcdctl_does() {
    let server = Server::start().await;
    let check = "echo ${ETCD_LOCK_KEY%/*}; test \"$ETCD_LOCK_REV\" -gt 0 && echo has-rev";
    let out = same(&server, "lock", &["mylock", "--", "sh", "-c", check]);
    assert_eq!(out.stdout, "mylock\nhas-rev\n");
    // ETCD_LOCK_KEY is the held key, which exists while the command runs.
    let out = same(
        &server,
        "lock",
        &[
            "mylock",
            "--",
            "sh",
            "-c",
            &format!(
                "ETCDCTL_API=3 {} get --endpoints={} --print-value-only=false --keys-only \"$ETCD_LOCK_KEY\"",
                find_on_path("etcdctl").display(),
                server.address()
            ),
        ],
    );
    assert_eq!(out.stdout, "mylock/<lease>\n\n");
    same(&server, "lock", &["mylock", "echo", "hi", "there"]);
    let out = same(&server, "lock", &["mylock", "--", "sh", "-c", "exit 3"]);
    assert_eq!(
        (out.stderr.as_str(), out.code),
        ("Error: exit status 3\n", Some(1))
    );
    same(&server, "lock", &["mylock", "--", "sh", "-c", "kill -9 $$"]);
    same(&server, "lock", &["mylock", "no-such-command-here"]);
    same(&server, "lock", &["--ttl=3", "mylock", "true"]);
    // Every run released the lock.
    assert_eq!(keys_under(&server, "mylock/"), Vec::<String>::new());
}

#[tokio::test]
async fn lock_holds_until_signalled_as_etcdctl_does() {
    let server = Server::start().await;
    let mut outcomes = Vec::new();
    for tool in TOOLS {
        for signal in [libc::SIGINT, libc::SIGTERM] {
            let mut holder = Running::spawn(tool, &server, "lock", &["mylock"]);
            assert_eq!(holder.lines(2), ["mylock/<lease>", ""]);
            assert_eq!(
                keys_under(&server, "mylock/"),
                [normalize(&holder.raw()[0])]
            );
            // A second one, of the other tool, waits for it.
            let other = if tool == "rafter" {
                "etcdctl"
            } else {
                "rafter"
            };
            let mut waiter = Running::spawn(other, &server, "lock", &["mylock"]);
            wait_for_keys(&server, "mylock/", 2);
            waiter.printed_nothing_more(STILL_BLOCKED);
            outcomes.push((tool, holder.stop_with(signal)));
            assert_eq!(waiter.lines(2), ["mylock/<lease>", ""]);
            assert_ne!(waiter.raw()[0], holder.raw()[0]);
            waiter.stop_with(libc::SIGINT);
            assert_eq!(keys_under(&server, "mylock/"), Vec::<String>::new());
        }
    }
    let (etcdctl, rafter) = outcomes.split_at(2);
    for (theirs, mine) in etcdctl.iter().zip(rafter) {
        assert_eq!(mine.1, theirs.1, "rafter (left) vs etcdctl (right)");
    }
    assert_eq!(rafter[0].1.code, Some(0));
}

#[tokio::test]
async fn an_interrupted_wait_for_a_lock_fails_as_etcdctl_does() {
    let server = Server::start().await;
    let mut holder = Running::spawn("etcdctl", &server, "lock", &["mylock"]);
    holder.lines(2);
    let mut outcomes = Vec::new();
    for tool in TOOLS {
        let mut waiter = Running::spawn(tool, &server, "lock", &["mylock"]);
        wait_for_keys(&server, "mylock/", 2);
        waiter.printed_nothing_more(STILL_BLOCKED);
        outcomes.push(waiter.stop_with(libc::SIGINT));
        // Its place in the queue is given up.
        wait_for_keys(&server, "mylock/", 1);
    }
    assert_eq!(outcomes[1], outcomes[0], "rafter (left) vs etcdctl (right)");
    assert_eq!(outcomes[1].stderr, "Error: context canceled\n");
    assert_eq!(outcomes[1].code, Some(1));
    holder.stop_with(libc::SIGINT);
}

/// One election with two campaigners and an observer, all of `tool`:
/// everything each printed and how each ended.
fn election(tool: &str, server: &Server, name: &str) -> Vec<Outcome> {
    let prefix = format!("{name}/");
    let mut alpha = Running::spawn(tool, server, "elect", &[name, "alpha"]);
    assert_eq!(alpha.lines(2), [format!("{name}/<lease>"), "alpha".into()]);
    let mut beta = Running::spawn(tool, server, "elect", &[name, "beta"]);
    wait_for_keys(server, &prefix, 2);
    beta.printed_nothing_more(STILL_BLOCKED);
    let mut observer = Running::spawn(tool, server, "elect", &["-l", name]);
    observer.lines(2);
    let alpha_end = alpha.stop_with(libc::SIGINT);
    beta.lines(2);
    assert_ne!(beta.raw()[0], alpha.raw()[0]);
    observer.lines(4);
    assert_eq!(observer.raw()[2], beta.raw()[0]);
    let beta_end = beta.stop_with(libc::SIGTERM);
    wait_for_keys(server, &prefix, 0);
    observer.printed_nothing_more(STILL_BLOCKED);
    let observer_end = observer.stop_with(libc::SIGINT);
    vec![alpha_end, beta_end, observer_end]
}

#[tokio::test]
async fn elect_campaigns_and_observes_as_etcdctl_does() {
    let server = Server::start().await;
    let expected = election("etcdctl", &server, "e1");
    let actual = election("rafter", &server, "e2");
    let expected: Vec<Outcome> = expected
        .into_iter()
        .map(|o| Outcome {
            stdout: o.stdout.replace("e1/", "e2/"),
            ..o
        })
        .collect();
    assert_eq!(actual, expected, "rafter (left) vs etcdctl (right)");
    assert_eq!(
        actual[2].stdout, "e2/<lease>\nalpha\ne2/<lease>\nbeta\n",
        "the observer saw both leaders"
    );
}

#[tokio::test]
async fn rafter_observes_etcdctl_leaders_and_the_reverse() {
    let server = Server::start().await;
    let mut mine = Running::spawn("rafter", &server, "elect", &["-l", "mixed"]);
    let mut theirs = Running::spawn("etcdctl", &server, "elect", &["-l", "mixed"]);
    let mut leader = Running::spawn("etcdctl", &server, "elect", &["mixed", "one"]);
    leader.lines(2);
    let mut next = Running::spawn("rafter", &server, "elect", &["mixed", "two"]);
    wait_for_keys(&server, "mixed/", 2);
    leader.stop_with(libc::SIGINT);
    next.lines(2);
    assert_eq!(mine.lines(4), theirs.lines(4));
    assert_eq!(mine.raw(), theirs.raw());
    assert_eq!(mine.raw()[2], next.raw()[0]);
    next.stop_with(libc::SIGINT);
    assert_eq!(mine.stop_with(libc::SIGINT), theirs.stop_with(libc::SIGINT));
}

#[tokio::test]
async fn a_lost_session_ends_lock_as_etcdctl_does() {
    let server = Server::start().await;
    // (etcdctl 3.4's elect does not notice a revoked lease within the
    // deadline, so only lock is compared here.)
    for (subcommand, args) in [("lock", &["lost"][..])] {
        let mut outcomes = Vec::new();
        for tool in TOOLS {
            let mut holder = Running::spawn(tool, &server, subcommand, args);
            holder.lines(2);
            let lease = holder.raw()[0].rsplit_once('/').expect("key").1.to_string();
            let revoked = run("etcdctl", &server, "lease", &["revoke", &lease]);
            assert_eq!(revoked.code, Some(0), "{revoked:?}");
            let deadline = Instant::now() + DEADLINE;
            let status = loop {
                if let Some(status) = holder.child.try_wait().expect("poll") {
                    break status;
                }
                assert!(
                    Instant::now() < deadline,
                    "{tool} {subcommand} kept running"
                );
                std::thread::sleep(Duration::from_millis(10));
            };
            std::thread::sleep(Duration::from_millis(100));
            outcomes.push((status.code(), clean_stderr(&holder.stderr.lock().unwrap())));
        }
        assert_eq!(outcomes[1], outcomes[0], "{subcommand}: rafter vs etcdctl");
    }
}
