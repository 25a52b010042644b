//! Acceptance tests with the real `etcdctl` (API v3) as the client: put, get
//! (prefix, --rev, --limit, --consistency=s, -w json), del, txn from stdin,
//! compaction, `endpoint status -w table`, `watch` (--prefix, ranges,
//! --rev, --prev-kv, -w json), `lease` (grant, put --lease, keep-alive
//! --once, timetolive --keys, revoke, list, errors, expiry), `lock` and
//! `elect` (campaign and `-l`) against the server under test.
//!
//! etcdctl is the tool operators already use, so its exact output is the
//! contract. A missing etcdctl fails the tests (run
//! `scripts/install-test-deps.sh`); it never skips them.

mod common;

use std::io::Write;
use std::process::{Child, Output, Stdio};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

use common::Server;
use serde_json::Value;

/// Runs etcdctl with `args` against `server`, feeding it `stdin`.
fn run_etcdctl(server: &Server, args: &[&str], stdin: &str) -> Output {
    let mut command = common::etcdctl_command(&server.address());
    command
        .arg("--command-timeout=15s")
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = command
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {command:?}: {e}"));
    let mut input = child.stdin.take().expect("etcdctl stdin");
    input
        .write_all(stdin.as_bytes())
        .expect("write etcdctl stdin");
    drop(input);
    child.wait_with_output().expect("wait for etcdctl")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8(bytes.to_vec()).expect("etcdctl prints UTF-8")
}

/// Runs etcdctl with `stdin`, expects success, and returns its standard output.
#[track_caller]
fn etcdctl_with_input(server: &Server, args: &[&str], stdin: &str) -> String {
    let output = run_etcdctl(server, args, stdin);
    assert!(
        output.status.success(),
        "etcdctl {args:?} failed with {}:\nstdout: {}\nstderr: {}",
        output.status,
        text(&output.stdout),
        text(&output.stderr)
    );
    text(&output.stdout)
}

/// Runs etcdctl, expects success, and returns its standard output.
#[track_caller]
fn etcdctl(server: &Server, args: &[&str]) -> String {
    etcdctl_with_input(server, args, "")
}

/// Runs etcdctl, expects failure, and returns its standard error.
#[track_caller]
fn etcdctl_error(server: &Server, args: &[&str]) -> String {
    let output = run_etcdctl(server, args, "");
    assert!(
        !output.status.success(),
        "etcdctl {args:?} succeeded unexpectedly: {}",
        text(&output.stdout)
    );
    text(&output.stderr)
}

/// Runs etcdctl with `-w json` and parses its output.
#[track_caller]
fn etcdctl_json(server: &Server, args: &[&str]) -> Value {
    let args: Vec<&str> = args.iter().copied().chain(["-w", "json"]).collect();
    let out = etcdctl(server, &args);
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("etcdctl {args:?}: bad JSON {out:?}: {e}"))
}

/// Puts `key = value` and returns the revision of the put.
#[track_caller]
fn put(server: &Server, key: &str, value: &str) -> i64 {
    let response = etcdctl_json(server, &["put", key, value]);
    response["header"]["revision"].as_i64().expect("revision")
}

/// etcdctl's simple output of key-value pairs: key and value lines.
fn simple(pairs: &[(&str, &str)]) -> String {
    pairs.iter().map(|(k, v)| format!("{k}\n{v}\n")).collect()
}

/// `endpoint status -w table` split into rows of trimmed cells.
fn table_rows(table: &str) -> Vec<Vec<String>> {
    table
        .lines()
        .filter(|line| line.starts_with('|'))
        .map(|line| {
            let inner = line.trim().trim_start_matches('|').trim_end_matches('|');
            inner
                .split('|')
                .map(|cell| cell.trim().to_string())
                .collect()
        })
        .collect()
}

#[tokio::test]
async fn put_and_get() {
    let server = Server::start().await;
    assert_eq!(etcdctl(&server, &["put", "greeting", "hello"]), "OK\n");
    assert_eq!(
        etcdctl(&server, &["get", "greeting"]),
        simple(&[("greeting", "hello")])
    );
    assert_eq!(etcdctl(&server, &["get", "missing"]), "");
    assert_eq!(
        etcdctl(&server, &["put", "greeting", "hi", "--prev-kv"]),
        format!("OK\n{}", simple(&[("greeting", "hello")]))
    );
    assert_eq!(
        etcdctl(&server, &["get", "greeting", "--print-value-only"]),
        "hi\n"
    );
}

#[tokio::test]
async fn get_prefix_range_limit_and_serializable() {
    let server = Server::start().await;
    for (key, value) in [
        ("dir/a", "1"),
        ("dir/b", "2"),
        ("dir/c", "3"),
        ("dirx", "4"),
    ] {
        put(&server, key, value);
    }
    let all = simple(&[("dir/a", "1"), ("dir/b", "2"), ("dir/c", "3")]);
    assert_eq!(etcdctl(&server, &["get", "dir/", "--prefix"]), all);
    assert_eq!(
        etcdctl(&server, &["get", "dir/a", "dir/c"]),
        simple(&[("dir/a", "1"), ("dir/b", "2")])
    );
    assert_eq!(
        etcdctl(&server, &["get", "dir/", "--prefix", "--limit", "2"]),
        simple(&[("dir/a", "1"), ("dir/b", "2")])
    );
    assert_eq!(
        etcdctl(&server, &["get", "dir/", "--prefix", "--consistency=s"]),
        all
    );
    assert_eq!(
        etcdctl(&server, &["get", "dir/b", "--from-key"]),
        simple(&[("dir/b", "2"), ("dir/c", "3"), ("dirx", "4")])
    );
    assert_eq!(
        etcdctl(&server, &["get", "dir/", "--prefix", "--keys-only"]),
        "dir/a\n\ndir/b\n\ndir/c\n\n"
    );
    assert_eq!(
        etcdctl(
            &server,
            &[
                "get",
                "dir/",
                "--prefix",
                "--sort-by=VALUE",
                "--order=DESCEND"
            ]
        ),
        simple(&[("dir/c", "3"), ("dir/b", "2"), ("dir/a", "1")])
    );
}

#[tokio::test]
async fn get_at_a_past_revision() {
    let server = Server::start().await;
    let first = put(&server, "k", "v1");
    let second = put(&server, "k", "v2");
    assert_eq!(second, first + 1);
    let at_first = format!("--rev={first}");
    assert_eq!(
        etcdctl(&server, &["get", "k", &at_first]),
        simple(&[("k", "v1")])
    );
    assert_eq!(etcdctl(&server, &["get", "k"]), simple(&[("k", "v2")]));
    let before = format!("--rev={}", first - 1);
    assert_eq!(etcdctl(&server, &["get", "k", &before]), "");
}

#[tokio::test]
async fn get_json() {
    let server = Server::start().await;
    let rev = put(&server, "foo", "bar");
    let response = etcdctl_json(&server, &["get", "foo"]);
    let header = &response["header"];
    assert_ne!(header["cluster_id"].as_u64().expect("cluster_id"), 0);
    assert_ne!(header["member_id"].as_u64().expect("member_id"), 0);
    assert_eq!(header["revision"].as_i64(), Some(rev));
    assert!(header["raft_term"].as_u64().expect("raft_term") >= 1);
    assert_eq!(response["count"].as_i64(), Some(1));
    let kv = &response["kvs"][0];
    assert_eq!(kv["key"], "Zm9v", "base64 of foo");
    assert_eq!(kv["value"], "YmFy", "base64 of bar");
    assert_eq!(kv["create_revision"].as_i64(), Some(rev));
    assert_eq!(kv["mod_revision"].as_i64(), Some(rev));
    assert_eq!(kv["version"].as_i64(), Some(1));

    put(&server, "foo2", "baz");
    let limited = etcdctl_json(&server, &["get", "foo", "--prefix", "--limit", "1"]);
    assert_eq!(limited["more"], true);
    assert_eq!(limited["count"].as_i64(), Some(2));
    assert_eq!(limited["kvs"].as_array().map(Vec::len), Some(1));
}

#[tokio::test]
async fn del() {
    let server = Server::start().await;
    for key in ["d/a", "d/b", "d/c", "solo"] {
        put(&server, key, "v");
    }
    assert_eq!(
        etcdctl(&server, &["del", "solo", "--prev-kv"]),
        format!("1\n{}", simple(&[("solo", "v")]))
    );
    assert_eq!(etcdctl(&server, &["del", "nothing"]), "0\n");
    assert_eq!(etcdctl(&server, &["del", "d/a", "d/c"]), "2\n");
    assert_eq!(etcdctl(&server, &["del", "d/", "--prefix"]), "1\n");
    assert_eq!(etcdctl(&server, &["get", "", "--from-key"]), "");
}

/// A txn for etcdctl's interactive syntax: compares, success ops, failure ops,
/// each block ended by an empty line.
fn txn_script(compares: &[&str], success: &[&str], failure: &[&str]) -> String {
    [compares, success, failure]
        .iter()
        .map(|block| {
            block
                .iter()
                .map(|line| format!("{line}\n"))
                .collect::<String>()
                + "\n"
        })
        .collect()
}

#[tokio::test]
async fn txn_from_stdin() {
    let server = Server::start().await;
    put(&server, "k", "v1");
    let script = txn_script(
        &[r#"value("k") = "v1""#, r#"version("k") = "1""#],
        &["put k v2", "get k"],
        &["put k failed"],
    );
    assert_eq!(
        etcdctl_with_input(&server, &["txn"], &script),
        format!("SUCCESS\n\nOK\n\n{}", simple(&[("k", "v2")]))
    );
    assert_eq!(
        etcdctl_with_input(&server, &["txn"], &script),
        "FAILURE\n\nOK\n"
    );
    assert_eq!(etcdctl(&server, &["get", "k"]), simple(&[("k", "failed")]));

    let revision_compares = txn_script(
        &[r#"mod("k") > "0""#, r#"create("k") < "100""#],
        &["del k"],
        &[],
    );
    assert_eq!(
        etcdctl_with_input(&server, &["txn"], &revision_compares),
        "SUCCESS\n\n1\n"
    );

    let json = etcdctl_with_input(&server, &["txn", "-w", "json"], &script);
    let response: Value = serde_json::from_str(&json).expect("txn JSON");
    // Go's JSON encoding omits a false `succeeded`.
    let succeeded = response["succeeded"].as_bool().unwrap_or_default();
    assert!(!succeeded, "k is gone, so the failure branch ran: {json}");
    assert!(
        response["responses"][0]["Response"]["ResponsePut"].is_object(),
        "{json}"
    );
}

#[tokio::test]
async fn compaction() {
    let server = Server::start().await;
    let r1 = put(&server, "k", "v1");
    let r2 = put(&server, "k", "v2");
    let r3 = put(&server, "k", "v3");
    assert_eq!(
        etcdctl(&server, &["compaction", &r2.to_string()]),
        format!("compacted revision {r2}\n")
    );
    let compacted = "etcdserver: mvcc: required revision has been compacted";
    let stderr = etcdctl_error(&server, &["get", "k", &format!("--rev={r1}")]);
    assert!(stderr.contains(&format!("Error: {compacted}")), "{stderr}");
    assert_eq!(
        etcdctl(&server, &["get", "k", &format!("--rev={r2}")]),
        simple(&[("k", "v2")])
    );
    let stderr = etcdctl_error(&server, &["compaction", &r2.to_string()]);
    assert!(stderr.contains(compacted), "{stderr}");
    assert_eq!(
        etcdctl(&server, &["compaction", "--physical", &r3.to_string()]),
        format!("compacted revision {r3}\n")
    );
    assert_eq!(etcdctl(&server, &["get", "k"]), simple(&[("k", "v3")]));
}

#[tokio::test]
async fn endpoint_status_table() {
    let server = Server::start().await;
    put(&server, "k", "v");
    let member_id = etcdctl_json(&server, &["get", "k"])["header"]["member_id"]
        .as_u64()
        .expect("member_id");
    let table = etcdctl(&server, &["endpoint", "status", "-w", "table"]);
    let rows = table_rows(&table);
    assert_eq!(rows.len(), 2, "a header and one member:\n{table}");
    assert_eq!(
        rows[0],
        [
            "ENDPOINT",
            "ID",
            "VERSION",
            "DB SIZE",
            "IS LEADER",
            "IS LEARNER",
            "RAFT TERM",
            "RAFT INDEX",
            "RAFT APPLIED INDEX",
            "ERRORS"
        ]
    );
    let row = &rows[1];
    assert_eq!(row[0], server.address());
    assert_eq!(row[1], format!("{member_id:x}"));
    assert!(!row[2].is_empty(), "a version is reported");
    assert!(!row[3].is_empty(), "a DB size is reported");
    assert_eq!((row[4].as_str(), row[5].as_str()), ("true", "false"));
    let number = |cell: &str| -> u64 { cell.parse().unwrap_or_else(|_| panic!("{table}")) };
    assert!(number(&row[6]) >= 1, "raft term");
    assert!(number(&row[8]) >= 1, "raft applied index");
    assert!(number(&row[7]) >= number(&row[8]), "raft index ≥ applied");
    assert_eq!(row[9], "", "no errors");

    let status = etcdctl_json(&server, &["endpoint", "status"]);
    let status = &status[0]["Status"];
    assert_eq!(status["leader"].as_u64(), Some(member_id));
    assert_eq!(status["header"]["member_id"].as_u64(), Some(member_id));
}

// ------------------------------------------------------------ watch

/// How long a test waits for `etcdctl watch` to print what it expects.
const WATCH_DEADLINE: Duration = Duration::from_secs(15);

/// A running `etcdctl watch` (or another long-running etcdctl command, such
/// as `lock` or `elect`), which runs until killed: its stdout lines are
/// read by a thread as they appear; dropping it kills and reaps the process.
struct EtcdctlWatch {
    child: Child,
    lines: mpsc::Receiver<String>,
    seen: Vec<String>,
    stderr: Arc<Mutex<String>>,
    args: Vec<String>,
}

impl EtcdctlWatch {
    /// Starts `etcdctl watch <args>` against `server`.
    fn spawn(server: &Server, args: &[&str]) -> EtcdctlWatch {
        EtcdctlWatch::spawn_command(server, "watch", args)
    }

    /// Starts `etcdctl <command> <args>` against `server`.
    fn spawn_command(server: &Server, subcommand: &str, args: &[&str]) -> EtcdctlWatch {
        let mut command = common::etcdctl_command(&server.address());
        command
            .arg(subcommand)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = command
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run {command:?}: {e}"));
        let (lines, stderr) = common::output::capture(&mut child);
        EtcdctlWatch {
            child,
            lines,
            seen: Vec::new(),
            stderr,
            args: std::iter::once(subcommand)
                .chain(args.iter().copied())
                .map(String::from)
                .collect(),
        }
    }

    /// Waits until etcdctl printed `count` lines in all and returns them all.
    #[track_caller]
    fn lines(&mut self, count: usize) -> Vec<String> {
        let deadline = Instant::now() + WATCH_DEADLINE;
        while self.seen.len() < count {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => self.seen.push(line),
                Err(error) => {
                    let why = match error {
                        mpsc::RecvTimeoutError::Timeout => format!("within {WATCH_DEADLINE:?}"),
                        mpsc::RecvTimeoutError::Disconnected => {
                            // Its stdout closed: it exited (or is exiting).
                            let _ = self.child.wait();
                            "before it exited".to_string()
                        }
                    };
                    let status = self.child.try_wait().ok().flatten();
                    panic!(
                        "etcdctl {:?} printed {} of {count} lines {why} (exit status \
                         {status:?}):\n{:#?}\nstderr: {}",
                        self.args,
                        self.seen.len(),
                        self.seen,
                        self.stderr.lock().unwrap()
                    );
                }
            }
        }
        self.seen.clone()
    }

    /// Asserts that nothing more than the `count` lines seen so far is
    /// printed within `wait`.
    #[track_caller]
    fn printed_nothing_more(&mut self, count: usize, wait: Duration) {
        assert_eq!(self.seen.len(), count, "lines so far: {:#?}", self.seen);
        if let Ok(line) = self.lines.recv_timeout(wait) {
            panic!(
                "etcdctl {:?} printed {line:?} after {:#?}, expected nothing yet",
                self.args, self.seen
            );
        }
    }

    /// Sends `signal` to etcdctl and waits for it to exit.
    fn stop_with(&mut self, signal: libc::c_int) {
        let pid = self.child.id() as libc::pid_t;
        // SAFETY: kill(2) on our own child, which is not yet reaped.
        assert_eq!(unsafe { libc::kill(pid, signal) }, 0, "signal etcdctl");
        let deadline = Instant::now() + WATCH_DEADLINE;
        while self.child.try_wait().expect("poll etcdctl").is_none() {
            assert!(
                Instant::now() < deadline,
                "etcdctl {:?} did not exit after signal {signal}",
                self.args
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for EtcdctlWatch {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The current revision, as `etcdctl get -w json` reports it.
#[track_caller]
fn current_revision(server: &Server) -> i64 {
    etcdctl_json(server, &["get", "never-written"])["header"]["revision"]
        .as_i64()
        .expect("revision")
}

/// etcdctl's simple watch output: per event its type, then (with
/// `--prev-kv`, when there is one) the previous key and value, then the key
/// and value (empty for a delete).
fn watch_lines(events: &[&[&str]]) -> Vec<String> {
    events
        .iter()
        .flat_map(|event| event.iter().map(|s| s.to_string()))
        .collect()
}

#[tokio::test]
async fn watch_prefix_prints_puts_and_deletes() {
    let server = Server::start().await;
    // Watching from the next revision makes the output independent of when
    // etcdctl's watch is established.
    let from = format!("--rev={}", current_revision(&server) + 1);
    let mut watch = EtcdctlWatch::spawn(&server, &["dir/", "--prefix", &from]);
    put(&server, "dir/a", "1");
    put(&server, "dirx", "not watched");
    put(&server, "dir/b", "2");
    etcdctl(&server, &["del", "dir/a"]);
    put(&server, "dir/b", "3");
    assert_eq!(
        watch.lines(12),
        watch_lines(&[
            &["PUT", "dir/a", "1"],
            &["PUT", "dir/b", "2"],
            &["DELETE", "dir/a", ""],
            &["PUT", "dir/b", "3"],
        ])
    );
}

#[tokio::test]
async fn watch_range_and_single_key() {
    let server = Server::start().await;
    let from = format!("--rev={}", current_revision(&server) + 1);
    let mut range = EtcdctlWatch::spawn(&server, &["b", "d", &from]);
    let mut single = EtcdctlWatch::spawn(&server, &["c", &from]);
    for key in ["a", "b", "c", "d", "cc"] {
        put(&server, key, &format!("v-{key}"));
    }
    assert_eq!(
        range.lines(9),
        watch_lines(&[
            &["PUT", "b", "v-b"],
            &["PUT", "c", "v-c"],
            &["PUT", "cc", "v-cc"],
        ])
    );
    assert_eq!(single.lines(3), watch_lines(&[&["PUT", "c", "v-c"]]));
}

#[tokio::test]
async fn watch_rev_replays_history() {
    let server = Server::start().await;
    put(&server, "k", "v1");
    let second = put(&server, "k", "v2");
    etcdctl(&server, &["del", "k"]);
    put(&server, "k", "v3");
    let mut watch = EtcdctlWatch::spawn(&server, &["k", &format!("--rev={second}")]);
    assert_eq!(
        watch.lines(9),
        watch_lines(&[
            &["PUT", "k", "v2"],
            &["DELETE", "k", ""],
            &["PUT", "k", "v3"],
        ])
    );
    // And it keeps watching live.
    put(&server, "k", "v4");
    assert_eq!(watch.lines(12)[9..], watch_lines(&[&["PUT", "k", "v4"]]));
}

#[tokio::test]
async fn watch_prev_kv() {
    let server = Server::start().await;
    let from = format!("--rev={}", current_revision(&server) + 1);
    let mut watch = EtcdctlWatch::spawn(&server, &["k", "--prev-kv", &from]);
    put(&server, "k", "v1");
    put(&server, "k", "v2");
    etcdctl(&server, &["del", "k"]);
    assert_eq!(
        watch.lines(13),
        watch_lines(&[
            &["PUT", "k", "v1"],
            &["PUT", "k", "v1", "k", "v2"],
            &["DELETE", "k", "v2", "k", ""],
        ])
    );
}

#[tokio::test]
async fn watch_json() {
    let server = Server::start().await;
    let r1 = put(&server, "k", "v1");
    let from = format!("--rev={r1}");
    let mut watch = EtcdctlWatch::spawn(&server, &["k", &from, "--prev-kv", "-w", "json"]);
    let r2 = put(&server, "k", "v2");
    let r3 = {
        let deleted = etcdctl_json(&server, &["del", "k"]);
        deleted["header"]["revision"].as_i64().expect("revision")
    };
    // One JSON document per line; the replayed r1 may share a response with
    // r2, so read until all three events are in.
    let mut events = Vec::new();
    let mut lines = 0;
    while events.len() < 3 {
        lines += 1;
        let line = watch.lines(lines).pop().expect("a line");
        let response: Value = serde_json::from_str(&line)
            .unwrap_or_else(|e| panic!("etcdctl watch -w json: bad JSON {line:?}: {e}"));
        assert_eq!(response["Canceled"], false, "{line}");
        assert_eq!(response["Created"], false, "{line}");
        assert_eq!(response["CompactRevision"], 0, "{line}");
        let header = &response["Header"];
        assert_ne!(header["cluster_id"].as_u64().unwrap_or(0), 0, "{line}");
        assert_ne!(header["member_id"].as_u64().unwrap_or(0), 0, "{line}");
        assert!(header["raft_term"].as_u64().unwrap_or(0) >= 1, "{line}");
        let revision = header["revision"].as_i64().expect("header revision");
        let batch = response["Events"].as_array().expect("Events array");
        assert!(!batch.is_empty(), "{line}");
        for event in batch {
            assert!(
                revision >= event["kv"]["mod_revision"].as_i64().expect("mod_revision"),
                "{line}"
            );
            events.push(event.clone());
        }
    }
    assert_eq!(events.len(), 3, "{events:#?}");
    // Go's JSON encoding omits zero values: a PUT has no "type", a delete's
    // kv has no value, versions or create revision.
    assert_eq!(events[0]["type"], Value::Null, "{:?}", events[0]);
    assert_eq!(events[0]["kv"]["key"], "aw==", "base64 of k");
    assert_eq!(events[0]["kv"]["value"], "djE=", "base64 of v1");
    assert_eq!(events[0]["kv"]["create_revision"].as_i64(), Some(r1));
    assert_eq!(events[0]["kv"]["mod_revision"].as_i64(), Some(r1));
    assert_eq!(events[0]["kv"]["version"].as_i64(), Some(1));
    assert_eq!(events[0]["prev_kv"], Value::Null);

    assert_eq!(events[1]["type"], Value::Null);
    assert_eq!(events[1]["kv"]["value"], "djI=", "base64 of v2");
    assert_eq!(events[1]["kv"]["create_revision"].as_i64(), Some(r1));
    assert_eq!(events[1]["kv"]["mod_revision"].as_i64(), Some(r2));
    assert_eq!(events[1]["kv"]["version"].as_i64(), Some(2));
    assert_eq!(events[1]["prev_kv"]["value"], "djE=");
    assert_eq!(events[1]["prev_kv"]["mod_revision"].as_i64(), Some(r1));

    assert_eq!(events[2]["type"], 1, "DELETE is 1");
    assert_eq!(events[2]["kv"]["key"], "aw==");
    assert_eq!(events[2]["kv"]["mod_revision"].as_i64(), Some(r3));
    assert_eq!(events[2]["kv"]["value"], Value::Null);
    assert_eq!(events[2]["kv"]["version"], Value::Null);
    assert_eq!(events[2]["prev_kv"]["value"], "djI=");
    assert_eq!(events[2]["prev_kv"]["version"].as_i64(), Some(2));
}

// ------------------------------------------------------------ lease

/// Grants a lease with `etcdctl lease grant`, checks the line it prints and
/// returns the lease id as etcdctl prints it (16 hex digits).
#[track_caller]
fn lease_grant(server: &Server, ttl: i64) -> String {
    let out = etcdctl(server, &["lease", "grant", &ttl.to_string()]);
    let id = out
        .strip_prefix("lease ")
        .and_then(|rest| rest.strip_suffix(&format!(" granted with TTL({ttl}s)\n")))
        .unwrap_or_else(|| panic!("unexpected lease grant output {out:?}"));
    assert_eq!(id.len(), 16, "etcdctl prints ids as 16 hex digits: {out:?}");
    assert!(i64::from_str_radix(id, 16).is_ok(), "{out:?}");
    id.to_string()
}

/// etcdctl's stderr without its client library's JSON log lines.
fn error_lines(stderr: &str) -> String {
    stderr
        .lines()
        .filter(|line| !line.starts_with("{\"level\""))
        .map(|line| format!("{line}\n"))
        .collect()
}

#[tokio::test]
async fn lease_grant_put_timetolive_keepalive_revoke() {
    let server = Server::start().await;
    let id = lease_grant(&server, 600);
    let decimal = i64::from_str_radix(&id, 16).unwrap();
    assert_eq!(
        etcdctl(&server, &["put", "--lease", &id, "l/a", "1"]),
        "OK\n"
    );
    assert_eq!(
        etcdctl(&server, &["put", "l/b", "2", "--lease", &id]),
        "OK\n"
    );
    put(&server, "l/free", "3");
    let got = etcdctl_json(&server, &["get", "l/a"]);
    assert_eq!(got["kvs"][0]["lease"].as_i64(), Some(decimal));

    // Remaining TTL: 600 or 599 s, depending on when the second turned.
    let ttl = etcdctl(&server, &["lease", "timetolive", &id]);
    let expected = |remaining: i64, keys: &str| {
        format!("lease {id} granted with TTL(600s), remaining({remaining}s){keys}\n")
    };
    assert!(
        ttl == expected(600, "") || ttl == expected(599, ""),
        "{ttl:?}"
    );
    // etcd lists a lease's keys in no fixed order.
    let with_keys = etcdctl(&server, &["lease", "timetolive", &id, "--keys"]);
    assert!(
        [599, 600].iter().any(|&remaining| {
            with_keys == expected(remaining, ", attached keys([l/a l/b])")
                || with_keys == expected(remaining, ", attached keys([l/b l/a])")
        }),
        "{with_keys:?}"
    );
    let json = etcdctl_json(&server, &["lease", "timetolive", &id, "--keys"]);
    assert_eq!(json["id"].as_i64(), Some(decimal));
    assert_eq!(json["granted-ttl"].as_i64(), Some(600));
    let mut keys: Vec<&str> = json["keys"]
        .as_array()
        .expect("keys")
        .iter()
        .map(|k| k.as_str().expect("base64 key"))
        .collect();
    keys.sort_unstable();
    assert_eq!(keys, ["bC9h", "bC9i"], "base64 of l/a and l/b");

    assert_eq!(
        etcdctl(&server, &["lease", "keep-alive", "--once", &id]),
        format!("lease {id} keepalived with TTL(600)\n")
    );
    let json = etcdctl_json(&server, &["lease", "keep-alive", "--once", &id]);
    assert_eq!(
        (json["ID"].as_i64(), json["TTL"].as_i64()),
        (Some(decimal), Some(600))
    );
    assert!(json["revision"].as_i64().unwrap_or(0) >= 1, "{json}");

    assert_eq!(
        etcdctl(&server, &["lease", "revoke", &id]),
        format!("lease {id} revoked\n")
    );
    assert_eq!(
        etcdctl(&server, &["get", "l/", "--prefix"]),
        simple(&[("l/free", "3")])
    );
    assert_eq!(
        etcdctl(&server, &["lease", "timetolive", &id]),
        format!("lease {id} already expired\n")
    );
}

#[tokio::test]
async fn lease_list() {
    let server = Server::start().await;
    assert_eq!(etcdctl(&server, &["lease", "list"]), "found 0 leases\n");
    let mut ids = vec![lease_grant(&server, 60), lease_grant(&server, 120)];
    ids.sort();
    let out = etcdctl(&server, &["lease", "list"]);
    let mut lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.remove(0), "found 2 leases", "{out:?}");
    // etcd lists leases in no fixed order.
    lines.sort_unstable();
    assert_eq!(lines, ids);
    let json = etcdctl_json(&server, &["lease", "list"]);
    let mut listed: Vec<i64> = json["leases"]
        .as_array()
        .expect("leases")
        .iter()
        .map(|l| l["id"].as_i64().expect("id"))
        .collect();
    listed.sort_unstable();
    let expected: Vec<i64> = ids
        .iter()
        .map(|id| i64::from_str_radix(id, 16).unwrap())
        .collect();
    assert_eq!(listed, expected);
}

#[tokio::test]
async fn lease_errors() {
    let server = Server::start().await;
    let unknown = "1234abcd";
    assert_eq!(
        error_lines(&etcdctl_error(
            &server,
            &["put", "k", "v", "--lease", unknown]
        )),
        "Error: etcdserver: requested lease not found\n"
    );
    assert_eq!(
        error_lines(&etcdctl_error(&server, &["lease", "revoke", unknown])),
        "Error: failed to revoke lease (etcdserver: requested lease not found)\n"
    );
    let once = run_etcdctl(&server, &["lease", "keep-alive", "--once", unknown], "");
    assert_eq!(once.status.code(), Some(2), "etcdctl's bad-connection code");
    assert_eq!(
        error_lines(&text(&once.stderr)),
        "Error: etcdserver: requested lease not found\n"
    );
    assert_eq!(
        etcdctl(&server, &["lease", "timetolive", unknown]),
        "lease 000000001234abcd already expired\n"
    );
    assert_eq!(
        error_lines(&etcdctl_error(&server, &["lease", "grant", "9000000001"])),
        "Error: failed to grant lease (etcdserver: too large lease TTL)\n"
    );
    // etcd raises a TTL below its minimum (1 s with the harness's timers).
    let out = etcdctl(&server, &["lease", "grant", "0"]);
    assert!(out.ends_with(" granted with TTL(1s)\n"), "{out:?}");
    let bad_id = run_etcdctl(&server, &["lease", "revoke", "zz"], "");
    assert_eq!(bad_id.status.code(), Some(128));
    assert_eq!(
        error_lines(&text(&bad_id.stderr)),
        "Error: bad lease ID arg (strconv.ParseInt: parsing \"zz\": invalid syntax), expecting ID in Hex\n"
    );
}

#[tokio::test]
async fn lease_expiry_deletes_keys() {
    let server = Server::start().await;
    let id = lease_grant(&server, 2);
    assert_eq!(
        etcdctl(&server, &["put", "gone", "x", "--lease", &id]),
        "OK\n"
    );
    let deadline = Instant::now() + Duration::from_secs(20);
    while !etcdctl(&server, &["get", "gone"]).is_empty() {
        assert!(Instant::now() < deadline, "the key outlived its lease");
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(
        etcdctl(&server, &["lease", "timetolive", &id]),
        format!("lease {id} already expired\n")
    );
}

// ------------------------------------------------------- lock and elect
//
// etcdctl's lock and elect use the client-side concurrency package (KV,
// Lease and Watch), not the Lock and Election services; these tests check
// that etcdctl's recipes work against the server as against etcd.

/// How long a waiting `etcdctl lock` or `elect` must print nothing to count
/// as blocked.
const STILL_BLOCKED: Duration = Duration::from_millis(300);

/// The keys under `prefix`.
#[track_caller]
fn keys_under(server: &Server, prefix: &str) -> Vec<String> {
    etcdctl(server, &["get", prefix, "--prefix", "--keys-only"])
        .lines()
        .filter(|line| !line.is_empty())
        .map(String::from)
        .collect()
}

/// Waits until `count` keys exist under `prefix` and returns them.
#[track_caller]
fn wait_for_keys(server: &Server, prefix: &str, count: usize) -> Vec<String> {
    let deadline = Instant::now() + WATCH_DEADLINE;
    loop {
        let keys = keys_under(server, prefix);
        if keys.len() == count {
            return keys;
        }
        assert!(
            Instant::now() < deadline,
            "{prefix}: keys {keys:?}, expected {count}"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Whether `key` is a lock or election key under `name`: `name/<lease hex>`.
fn is_session_key(key: &str, name: &str) -> bool {
    key.strip_prefix(&format!("{name}/"))
        .is_some_and(|hex| !hex.is_empty() && hex.chars().all(|c| c.is_ascii_hexdigit()))
}

#[tokio::test]
async fn lock_prints_the_key_and_holds_the_lock_until_signalled() {
    let server = Server::start().await;
    let mut first = EtcdctlWatch::spawn_command(&server, "lock", &["mylock"]);
    // etcdctl prints the key, then an empty line.
    let printed = first.lines(2);
    assert!(is_session_key(&printed[0], "mylock"), "{printed:?}");
    assert_eq!(printed[1], "");
    assert_eq!(keys_under(&server, "mylock/"), [printed[0].clone()]);

    let mut second = EtcdctlWatch::spawn_command(&server, "lock", &["mylock"]);
    wait_for_keys(&server, "mylock/", 2);
    second.printed_nothing_more(0, STILL_BLOCKED);

    // On SIGTERM etcdctl unlocks: the second gets the lock.
    first.stop_with(libc::SIGTERM);
    let acquired = second.lines(2);
    assert!(is_session_key(&acquired[0], "mylock"), "{acquired:?}");
    assert_ne!(acquired[0], printed[0]);
    assert_eq!(keys_under(&server, "mylock/"), [acquired[0].clone()]);
    second.stop_with(libc::SIGINT);
    assert_eq!(keys_under(&server, "mylock/"), Vec::<String>::new());
}

#[tokio::test]
async fn a_killed_lock_holder_releases_when_its_lease_expires() {
    let server = Server::start().await;
    let mut first = EtcdctlWatch::spawn_command(&server, "lock", &["mylock", "--ttl=1"]);
    let held = first.lines(1)[0].clone();
    let mut second = EtcdctlWatch::spawn_command(&server, "lock", &["mylock"]);
    wait_for_keys(&server, "mylock/", 2);
    // SIGKILL: no unlock, no more keep-alives; the 1 s lease expires.
    first.stop_with(libc::SIGKILL);
    let acquired = second.lines(1)[0].clone();
    assert_ne!(acquired, held);
    assert_eq!(keys_under(&server, "mylock/"), [acquired]);
}

#[tokio::test]
async fn lock_runs_a_command_while_holding_the_lock() {
    let server = Server::start().await;
    let out = etcdctl(
        &server,
        &[
            "lock",
            "mylock",
            "--",
            "sh",
            "-c",
            "echo $ETCD_LOCK_KEY $ETCD_LOCK_REV",
        ],
    );
    let (key, rev) = out
        .trim_end()
        .split_once(' ')
        .unwrap_or_else(|| panic!("unexpected output {out:?}"));
    assert!(is_session_key(key, "mylock"), "{out:?}");
    let rev: i64 = rev.parse().expect("ETCD_LOCK_REV is a revision");
    // The lock key was created at ETCD_LOCK_REV and deleted afterwards.
    assert_eq!(current_revision(&server), rev + 1);
    assert_eq!(keys_under(&server, "mylock/"), Vec::<String>::new());
}

#[tokio::test]
async fn elect_campaigns_and_elect_l_observes_the_leaders() {
    let server = Server::start().await;
    let mut alpha = EtcdctlWatch::spawn_command(&server, "elect", &["myelect", "alpha"]);
    // Elected: etcdctl prints the leader key and its value.
    let elected = alpha.lines(2);
    assert!(is_session_key(&elected[0], "myelect"), "{elected:?}");
    assert_eq!(elected[1], "alpha");

    let mut beta = EtcdctlWatch::spawn_command(&server, "elect", &["myelect", "beta"]);
    wait_for_keys(&server, "myelect/", 2);
    beta.printed_nothing_more(0, STILL_BLOCKED);

    let mut observer = EtcdctlWatch::spawn_command(&server, "elect", &["-l", "myelect"]);
    assert_eq!(observer.lines(2), [elected[0].clone(), "alpha".to_string()]);

    // On SIGINT etcdctl resigns: beta leads, and the observer sees it.
    alpha.stop_with(libc::SIGINT);
    let next = beta.lines(2);
    assert!(is_session_key(&next[0], "myelect"), "{next:?}");
    assert_ne!(next[0], elected[0]);
    assert_eq!(next[1], "beta");
    assert_eq!(
        observer.lines(4),
        [
            elected[0].clone(),
            "alpha".to_string(),
            next[0].clone(),
            "beta".to_string()
        ]
    );
    beta.stop_with(libc::SIGINT);
    assert_eq!(keys_under(&server, "myelect/"), Vec::<String>::new());
}

#[tokio::test]
async fn elect_without_a_proposal_needs_l() {
    let server = Server::start().await;
    let stderr = etcdctl_error(&server, &["elect", "myelect"]);
    assert!(
        stderr.contains("no proposal argument but -l not set"),
        "{stderr:?}"
    );
}

/// `endpoint status`, `health` and `hashkv` with `--endpoints=http://...`:
/// etcdctl 3.4 dials these with the URL as the HTTP/2 `:authority`, which
/// etcd accepts (Rafter repairs it: `rafter-server/src/authority_fix.rs`).
#[tokio::test]
async fn endpoint_commands_accept_endpoints_written_as_urls() {
    let server = Server::start().await;
    put(&server, "k", "v");
    for args in [
        &["endpoint", "status", "-w", "json"][..],
        &["endpoint", "health"],
        &["endpoint", "hashkv", "-w", "json"],
        &["get", "k"],
    ] {
        let output = common::etcdctl_command(&server.endpoint())
            .arg("--command-timeout=15s")
            .args(args)
            .stdin(Stdio::null())
            .output()
            .expect("run etcdctl");
        let (stdout, stderr) = (text(&output.stdout), text(&output.stderr));
        assert!(
            output.status.success() && !stderr.contains("PROTOCOL_ERROR"),
            "etcdctl --endpoints={} {args:?} failed with {}:\nstdout: {stdout}\nstderr: {stderr}",
            server.endpoint(),
            output.status
        );
        if args[1] != "k" {
            // etcdctl 3.4 prints `endpoint health` on standard error.
            assert!(
                stdout.contains(&server.endpoint()) || stderr.contains(&server.endpoint()),
                "{args:?}: {stdout}{stderr}"
            );
        }
    }
}
