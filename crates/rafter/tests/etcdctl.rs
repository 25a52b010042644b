//! Acceptance tests with the real `etcdctl` (API v3) as the client: put, get
//! (prefix, --rev, --limit, --consistency=s, -w json), del, txn from stdin,
//! compaction and `endpoint status -w table` against the server under test.
//!
//! etcdctl is the tool operators already use, so its exact output is the
//! contract. A missing etcdctl fails the tests (run
//! `scripts/install-test-deps.sh`); it never skips them.

mod common;

use std::io::Write;
use std::process::{Command, Output, Stdio};

use common::{find_on_path, Server};
use serde_json::Value;

/// Runs etcdctl with `args` against `server`, feeding it `stdin`.
fn run_etcdctl(server: &Server, args: &[&str], stdin: &str) -> Output {
    let mut command = Command::new(find_on_path("etcdctl"));
    for (name, _) in std::env::vars_os() {
        if name.to_string_lossy().starts_with("ETCDCTL_") {
            command.env_remove(name);
        }
    }
    command
        .env("ETCDCTL_API", "3")
        .arg(format!("--endpoints={}", server.address()))
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
