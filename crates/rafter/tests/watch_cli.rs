//! `rafter watch` against the real `etcdctl watch`: both run as processes
//! on the same server at the same time, watching the same keys from the
//! same revision, and must print the same bytes (headers included, as both
//! see the same responses), the same stderr and exit the same way.
//!
//! Runs against Rafter's server by default and against etcd with
//! `RAFTER_TEST_TARGET=etcd` (see tests/common/mod.rs). A missing etcdctl
//! fails the tests (run `scripts/install-test-deps.sh`).

mod common;

use std::io::Read;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{find_on_path, Server};
use etcd_client::{Compare, CompareOp, DeleteOptions, PutOptions, Txn, TxnOp};

/// How long a watch may take to print what the test waits for.
const OUTPUT_DEADLINE: Duration = Duration::from_secs(20);
/// How long output must stay unchanged to count as complete.
const QUIET_PERIOD: Duration = Duration::from_millis(500);
/// Pause between two looks at the watches' output.
const POLL_INTERVAL: Duration = Duration::from_millis(20);

/// Which client prints the watch.
#[derive(Debug, Clone, Copy)]
enum Tool {
    Etcdctl,
    Rafter,
}

/// A `watch` process and what it printed so far.
struct Running {
    tool: Tool,
    child: Child,
    stdout: Arc<Mutex<Vec<u8>>>,
    stderr: Arc<Mutex<Vec<u8>>>,
}

/// What a finished (or killed) watch printed and how it ended.
#[derive(Debug, PartialEq, Eq)]
struct Finished {
    stdout: String,
    stderr: String,
    /// Exit status; `None` when the test killed it.
    code: Option<i32>,
}

fn collect(mut from: impl Read + Send + 'static) -> Arc<Mutex<Vec<u8>>> {
    let buffer = Arc::new(Mutex::new(Vec::new()));
    let sink = buffer.clone();
    std::thread::spawn(move || {
        let mut chunk = [0u8; 4096];
        while let Ok(n) = from.read(&mut chunk) {
            if n == 0 {
                break;
            }
            match sink.lock() {
                Ok(mut buffer) => buffer.extend_from_slice(&chunk[..n]),
                Err(_) => break,
            }
        }
    });
    buffer
}

impl Running {
    /// Starts `<tool> watch --endpoints=<server> <args>`.
    fn spawn(tool: Tool, server: &Server, args: &[&str]) -> Running {
        let mut command = match tool {
            Tool::Etcdctl => {
                let mut command = Command::new(find_on_path("etcdctl"));
                command.env("ETCDCTL_API", "3");
                command
            }
            Tool::Rafter => Command::new(env!("CARGO_BIN_EXE_rafter")),
        };
        for (name, _) in std::env::vars_os() {
            if name.to_string_lossy().starts_with("ETCDCTL_") && name != "ETCDCTL_API" {
                command.env_remove(name);
            }
        }
        command
            .arg("watch")
            .arg(format!("--endpoints={}", server.address()))
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = command
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run {command:?}: {e}"));
        let stdout = collect(child.stdout.take().unwrap());
        let stderr = collect(child.stderr.take().unwrap());
        Running {
            tool,
            child,
            stdout,
            stderr,
        }
    }

    fn stdout(&self) -> Vec<u8> {
        self.stdout.lock().unwrap().clone()
    }

    /// Waits until something was printed and nothing more for a while.
    fn wait_until_quiet(&self) {
        let deadline = Instant::now() + OUTPUT_DEADLINE;
        let mut seen = Vec::new();
        let mut unchanged_since = Instant::now();
        loop {
            let now = self.stdout();
            if now != seen {
                seen = now;
                unchanged_since = Instant::now();
            } else if !seen.is_empty() && unchanged_since.elapsed() >= QUIET_PERIOD {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{:?} printed nothing within {OUTPUT_DEADLINE:?}; stderr: {}",
                self.tool,
                String::from_utf8_lossy(&self.stderr.lock().unwrap())
            );
            std::thread::sleep(POLL_INTERVAL);
        }
    }

    /// Waits until the output is as long as `expected` (what the other tool
    /// printed).
    fn wait_for_bytes_of(&self, expected: &[u8]) {
        let deadline = Instant::now() + OUTPUT_DEADLINE;
        while self.stdout().len() < expected.len() {
            assert!(
                Instant::now() < deadline,
                "{:?} printed only {:?} within {OUTPUT_DEADLINE:?}, not {:?}; stderr: {}",
                self.tool,
                String::from_utf8_lossy(&self.stdout()),
                String::from_utf8_lossy(expected),
                String::from_utf8_lossy(&self.stderr.lock().unwrap())
            );
            std::thread::sleep(POLL_INTERVAL);
        }
    }

    /// Waits until the output holds `expected_bytes` bytes or more.
    fn wait_for_bytes(&self, expected_bytes: usize) {
        let deadline = Instant::now() + OUTPUT_DEADLINE;
        while self.stdout().len() < expected_bytes {
            assert!(
                Instant::now() < deadline,
                "{:?} printed only {:?} within {OUTPUT_DEADLINE:?}; stderr: {}",
                self.tool,
                String::from_utf8_lossy(&self.stdout()),
                String::from_utf8_lossy(&self.stderr.lock().unwrap())
            );
            std::thread::sleep(POLL_INTERVAL);
        }
    }

    /// Kills the watch (if still running) and returns what it printed.
    fn finish(mut self) -> Finished {
        let code = match self.child.try_wait().expect("poll the watch") {
            Some(status) => status.code(),
            None => {
                let _ = self.child.kill();
                let _ = self.child.wait();
                None
            }
        };
        // Let the reader threads take the last bytes.
        std::thread::sleep(POLL_INTERVAL * 3);
        self.finished(code)
    }

    /// Waits for the watch to exit by itself.
    fn exit(mut self) -> Finished {
        let deadline = Instant::now() + OUTPUT_DEADLINE;
        loop {
            if let Some(status) = self.child.try_wait().expect("poll the watch") {
                std::thread::sleep(POLL_INTERVAL * 3);
                return self.finished(status.code());
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                panic!(
                    "{:?} watch did not exit within {OUTPUT_DEADLINE:?}; stdout: {}",
                    self.tool,
                    String::from_utf8_lossy(&self.stdout())
                );
            }
            std::thread::sleep(POLL_INTERVAL);
        }
    }

    fn finished(&self, code: Option<i32>) -> Finished {
        // etcdctl's client library logs JSON lines on stderr; they are not
        // part of the command's output.
        let stderr = String::from_utf8_lossy(&self.stderr.lock().unwrap())
            .lines()
            .filter(|line| !line.starts_with("{\"level\":"))
            .map(|line| format!("{line}\n"))
            .collect();
        Finished {
            stdout: String::from_utf8_lossy(&self.stdout()).into_owned(),
            stderr,
            code,
        }
    }
}

impl Drop for Running {
    /// A failing test must not leave its watches running.
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Both tools watching with the same arguments.
struct Pair {
    etcdctl: Running,
    rafter: Running,
}

impl Pair {
    fn spawn(server: &Server, args: &[&str]) -> Pair {
        Pair {
            etcdctl: Running::spawn(Tool::Etcdctl, server, args),
            rafter: Running::spawn(Tool::Rafter, server, args),
        }
    }

    /// Waits until both printed more than `seen` bytes (etcdctl, rafter)
    /// and returns how much they printed then.
    fn grown_past(&self, seen: (usize, usize)) -> (usize, usize) {
        let deadline = Instant::now() + OUTPUT_DEADLINE;
        loop {
            let now = (self.etcdctl.stdout().len(), self.rafter.stdout().len());
            if now.0 > seen.0 && now.1 > seen.1 {
                // Let a response split over several writes arrive whole.
                std::thread::sleep(POLL_INTERVAL * 2);
                return (self.etcdctl.stdout().len(), self.rafter.stdout().len());
            }
            assert!(
                Instant::now() < deadline,
                "the watches printed no new event within {OUTPUT_DEADLINE:?}: etcdctl {:?}, rafter {:?}",
                String::from_utf8_lossy(&self.etcdctl.stdout()),
                String::from_utf8_lossy(&self.rafter.stdout())
            );
            std::thread::sleep(POLL_INTERVAL);
        }
    }

    /// Waits until etcdctl printed everything (its output stopped growing)
    /// and rafter as many bytes, then kills both and asserts they printed
    /// the same.
    #[track_caller]
    fn same_after(self) -> Finished {
        self.etcdctl.wait_until_quiet();
        let expected = self.etcdctl.stdout();
        self.rafter.wait_for_bytes_of(&expected);
        std::thread::sleep(QUIET_PERIOD);
        let expected = self.etcdctl.finish();
        let actual = self.rafter.finish();
        assert_eq!(
            actual, expected,
            "rafter watch (left) differs from etcdctl watch (right)"
        );
        actual
    }

    /// Waits for both to exit by themselves and asserts the same outcome.
    #[track_caller]
    fn same_exit(self) -> Finished {
        let expected = self.etcdctl.exit();
        let actual = self.rafter.exit();
        assert_eq!(
            actual, expected,
            "rafter watch (left) differs from etcdctl watch (right)"
        );
        actual
    }
}

/// The server's current revision.
async fn revision(server: &Server) -> i64 {
    let mut client = server.client().await;
    let response = client.get("rafter-watch-test-probe", None).await.unwrap();
    response.header().unwrap().revision()
}

/// Puts, overwrites, a two-key transaction (two events in one response)
/// and deletes under `k`, plus a key outside the prefix (and no byte 0x7f,
/// which Go before 1.18 quotes as `\u007f`, later ones as `\x7f`: etcdctl
/// builds differ there). After each write
/// whose event the watches print, `printed()` runs (to wait for them).
async fn write_events(server: &Server, mut printed: impl FnMut()) {
    let mut client = server.client().await;
    client.put("k1", "v1", None).await.unwrap();
    printed();
    client.put("k1", "v2", None).await.unwrap();
    printed();
    client.put("other", "x", None).await.unwrap();
    let txn = Txn::new()
        .when([Compare::version("k1", CompareOp::Greater, 0)])
        .and_then([
            TxnOp::put("k2", "two words", None),
            TxnOp::put("k3", "line1\nline2", None),
        ]);
    client.txn(txn).await.unwrap();
    printed();
    client.delete("k1", None).await.unwrap();
    printed();
    client
        .delete("k", Some(DeleteOptions::new().with_prefix()))
        .await
        .unwrap();
    printed();
    client
        .put("k\u{e9}\u{1}", "bin\u{2}", Some(PutOptions::new()))
        .await
        .unwrap();
}

/// Watches with `args` (plus `--rev` of the next revision) on a fresh
/// server, writes the events and compares both tools' output. Each write
/// waits until both watches printed the one before, so the server sends
/// both the same responses (a watch created late would get the history
/// batched into one response, which json, fields and protobuf show).
async fn compare_events(args: &[&str]) -> Finished {
    let server = Server::start().await;
    let next = (revision(&server).await + 1).to_string();
    // `--rev` first: anything after `--` belongs to the exec command.
    let mut all: Vec<&str> = vec!["--rev", &next];
    all.extend(args);
    let pair = Pair::spawn(&server, &all);
    let mut seen = (0, 0);
    write_events(&server, || {
        tokio::task::block_in_place(|| seen = pair.grown_past(seen));
    })
    .await;
    tokio::task::block_in_place(|| pair.same_after())
}

#[tokio::test(flavor = "multi_thread")]
async fn simple_prefix_prev_kv_and_hex() {
    let out = compare_events(&["--prefix", "k", "--prev-kv"]).await;
    assert!(
        out.stdout.starts_with("PUT\nk1\nv1\nPUT\nk1\nv1\nk1\nv2\n"),
        "{out:?}"
    );
    assert!(out.stdout.contains("DELETE\n"), "{out:?}");
    compare_events(&["k", "--prefix", "--hex"]).await;
    // A key range, and the flag spelled `--prefix=false`.
    compare_events(&["k1", "k3", "--prefix=false"]).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn json_fields_and_protobuf() {
    let out = compare_events(&["k", "--prefix", "-w", "json", "--prev-kv"]).await;
    assert!(out.stdout.starts_with("{\"Header\":{"), "{out:?}");
    compare_events(&["k", "--prefix", "-w", "fields"]).await;
    compare_events(&["k", "--prefix", "-w", "protobuf"]).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn history_from_an_old_revision() {
    let server = Server::start().await;
    let first = revision(&server).await + 1;
    write_events(&server, || {}).await;
    // Everything already happened: the watch replays it from `first`.
    let rev = first.to_string();
    let pair = Pair::spawn(&server, &["k", "--prefix", "--rev", &rev, "-w", "json"]);
    let out = tokio::task::block_in_place(|| pair.same_after());
    assert!(out.stdout.contains("\"Events\":[{\"kv\":"), "{out:?}");
    assert_eq!(out.code, None, "the watch ended: {out:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn compacted_revision_cancels_the_watch() {
    let server = Server::start().await;
    let mut client = server.client().await;
    client.put("a", "1", None).await.unwrap();
    let old = revision(&server).await;
    client.put("a", "2", None).await.unwrap();
    let now = revision(&server).await;
    client.compact(now, None).await.unwrap();
    let old = old.to_string();
    for format in ["simple", "json"] {
        let pair = Pair::spawn(&server, &["a", "--rev", &old, "-w", format]);
        let out = tokio::task::block_in_place(|| pair.same_exit());
        assert_eq!(out.code, Some(5), "{out:?}");
        assert_eq!(
            out.stderr,
            "watch was canceled (etcdserver: mvcc: required revision has been compacted)\n\
             Error: watch is canceled by the server\n"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn argument_errors() {
    let server = Server::start().await;
    for args in [&[][..], &["a", "b", "--prefix"], &["a", "--"]] {
        let pair = Pair::spawn(&server, args);
        let out = tokio::task::block_in_place(|| pair.same_exit());
        assert_eq!(out.code, Some(128), "{args:?}: {out:?}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn exec_command_per_event() {
    let script = "printf '%s %s %s %s\\n' \"$ETCD_WATCH_REVISION\" \"$ETCD_WATCH_EVENT_TYPE\" \
                  \"$ETCD_WATCH_KEY\" \"$ETCD_WATCH_VALUE\"";
    let out = compare_events(&["k", "--prefix", "--", "sh", "-c", script]).await;
    assert!(out.stdout.contains("\"PUT\" \"k1\" \"v1\"\n"), "{out:?}");
}

/// `--progress-notify` (etcdctl 3.5's flag; the 3.4 etcdctl here lacks it,
/// so the expected text is etcdctl 3.5's printer: `progress notify: REV`).
/// The server gets etcd's flag for a short progress interval (default 10
/// minutes) so that it notifies within the test.
#[tokio::test(flavor = "multi_thread")]
async fn progress_notifications() {
    let server =
        Server::start_with_args(&["--experimental-watch-progress-notify-interval=200ms"]).await;
    let rev = revision(&server).await.to_string();
    let watch = Running::spawn(Tool::Rafter, &server, &["k", "--progress-notify"]);
    let expected = format!("progress notify: {rev}\n");
    tokio::task::block_in_place(|| watch.wait_for_bytes(expected.len()));
    let out = watch.finish();
    assert!(out.stdout.starts_with(&expected), "{out:?}");
}

/// A server that dies and comes back: both clients dial again and resume
/// the watch after the last revision they printed, losing and repeating
/// nothing.
#[tokio::test(flavor = "multi_thread")]
async fn resumes_after_the_server_restarts() {
    let mut server = Server::start().await;
    let next = (revision(&server).await + 1).to_string();
    let pair = Pair::spawn(&server, &["--rev", &next, "r", "--prev-kv"]);
    server.client().await.put("r", "1", None).await.unwrap();
    let seen = tokio::task::block_in_place(|| pair.grown_past((0, 0)));
    server.kill9();
    server.restart().await;
    let mut client = server.client().await;
    client.put("r", "2", None).await.unwrap();
    client.put("r", "3", None).await.unwrap();
    tokio::task::block_in_place(|| pair.grown_past(seen));
    let out = tokio::task::block_in_place(|| pair.same_after());
    assert_eq!(out.stdout, "PUT\nr\n1\nPUT\nr\n1\nr\n2\nPUT\nr\n2\nr\n3\n");
}
