//! `rafter dial get|set|swap|outcome` against a real one-member server:
//! the consistency dial from the shell, its simple and JSON output, request
//! ids that a later process can ask `outcome` about, and the errors a
//! script sees (exit status and `Error:` line).

mod common;

use std::process::{Command, Stdio};

use common::Server;

/// What a command printed and how it exited.
#[derive(Debug)]
struct Run {
    stdout: String,
    stderr: String,
    code: Option<i32>,
}

fn rafter(endpoint: &str, args: &[&str]) -> Run {
    let mut command = Command::new(env!("CARGO_BIN_EXE_rafter"));
    for (name, _) in std::env::vars_os() {
        if name.to_string_lossy().starts_with("ETCDCTL_") {
            command.env_remove(name);
        }
    }
    command
        .arg("dial")
        .args(args)
        .arg(format!("--endpoints={endpoint}"))
        .stdin(Stdio::null());
    let output = command
        .output()
        .unwrap_or_else(|e| panic!("cannot run {command:?}: {e}"));
    Run {
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        code: output.status.code(),
    }
}

/// Runs `rafter dial <args>` and asserts it succeeded; returns stdout.
#[track_caller]
fn ok(server: &Server, args: &[&str]) -> String {
    let run = rafter(&server.address(), args);
    assert_eq!(
        run.code,
        Some(0),
        "`dial {}` failed: {run:?}",
        args.join(" ")
    );
    assert_eq!(run.stderr, "", "`dial {}` wrote to stderr", args.join(" "));
    run.stdout
}

/// Runs `rafter dial <args>` and asserts it failed with this exit status
/// and an `Error:` line containing `message`.
#[track_caller]
fn fails(server: &Server, args: &[&str], code: i32, message: &str) -> Run {
    let run = rafter(&server.address(), args);
    assert_eq!(run.code, Some(code), "`dial {}`: {run:?}", args.join(" "));
    assert!(
        run.stderr.starts_with("Error: ") && run.stderr.contains(message),
        "`dial {}`: expected an error line with {message:?}, got {run:?}",
        args.join(" ")
    );
    run
}

/// The request id at the end of a status line such as `OK 12-3`.
#[track_caller]
fn request_id(line: &str) -> String {
    let id = line.split_whitespace().last().expect("a status line");
    let (session, seq) = id.split_once('-').expect("SESSION-SEQ");
    assert!(
        session.parse::<u64>().is_ok_and(|s| s > 0) && seq.parse::<u64>().is_ok_and(|s| s > 0),
        "not a request id: {line:?}"
    );
    id.to_string()
}

fn json(text: &str) -> serde_json::Value {
    serde_json::from_str(text.trim()).unwrap_or_else(|e| panic!("not JSON ({e}): {text:?}"))
}

#[tokio::test]
async fn get_set_swap_and_their_simple_output() {
    let server = Server::start().await;
    assert_eq!(
        ok(&server, &["get", "k"]),
        "",
        "a missing key prints nothing"
    );

    let set = ok(&server, &["set", "k", "v1"]);
    assert!(
        set.starts_with("OK ") && set.lines().count() == 1,
        "{set:?}"
    );
    request_id(set.trim());
    assert_eq!(ok(&server, &["get", "k"]), "v1\n");
    assert_eq!(ok(&server, &["get", "k", "--consistent=false"]), "v1\n");
    assert_eq!(ok(&server, &["get", "k", "--blocking"]), "v1\n");

    let swapped = ok(&server, &["swap", "k", "v1", "v2"]);
    assert!(swapped.starts_with("SWAPPED "), "{swapped:?}");
    assert_eq!(ok(&server, &["get", "k"]), "v2\n");

    // Not swapped: the answer says what the key holds, the store is unchanged.
    let not = ok(&server, &["swap", "k", "v1", "v3"]);
    let lines: Vec<&str> = not.lines().collect();
    assert_eq!(lines.len(), 2, "{not:?}");
    assert!(lines[0].starts_with("NOT SWAPPED "), "{not:?}");
    assert_eq!(lines[1], "v2");
    assert_eq!(ok(&server, &["get", "k"]), "v2\n");

    // Old absent: refused for an existing key, applied for a missing one.
    let not = ok(&server, &["swap", "--old-absent", "k", "x"]);
    assert!(
        not.starts_with("NOT SWAPPED ") && not.ends_with("\nv2\n"),
        "{not:?}"
    );
    let fresh = ok(&server, &["swap", "--old-absent", "fresh", "x"]);
    assert!(fresh.starts_with("SWAPPED "), "{fresh:?}");
    assert_eq!(ok(&server, &["get", "fresh"]), "x\n");
    let again = ok(&server, &["swap", "--old-absent", "fresh", "y"]);
    assert!(again.starts_with("NOT SWAPPED "), "{again:?}");
    assert_eq!(ok(&server, &["get", "fresh"]), "x\n");
}

#[tokio::test]
async fn json_fields_and_outcome_of_an_earlier_request() {
    let server = Server::start().await;
    let set = json(&ok(&server, &["set", "j", "hello", "-w", "json"]));
    assert_eq!(set["valid"], true, "{set}");
    assert_eq!(set["timeout"], false, "{set}");
    assert_eq!(set["outcome"], "APPLIED", "{set}");
    // A write's answer carries no value (a retry is answered from the
    // kept answer, which does not hold what was written).
    assert_eq!(set["value"], "", "{set}");
    assert_eq!(set["error"], "", "{set}");
    let revision = set["revision"].as_i64().expect("a revision");
    assert!(revision > 0, "{set}");
    let id = request_id(set["request_id"].as_str().expect("a request id"));

    // Another process asks what became of it.
    assert_eq!(ok(&server, &["outcome", &id]), format!("APPLIED {id}\n"));
    let outcome = json(&ok(&server, &["outcome", &id, "-w", "json"]));
    assert_eq!(outcome["outcome"], "APPLIED", "{outcome}");
    assert_eq!(outcome["valid"], true, "{outcome}");
    assert_eq!(outcome["timeout"], false, "{outcome}");
    assert_eq!(outcome["revision"].as_i64(), Some(revision), "{outcome}");
    assert_eq!(
        outcome["request_id"].as_str(),
        Some(id.as_str()),
        "{outcome}"
    );

    let get = json(&ok(&server, &["get", "j", "-w", "json"]));
    assert_eq!(get["valid"], true, "{get}");
    assert_eq!(get["found"], true, "{get}");
    assert_eq!(get["value"], "hello", "{get}");
    assert_eq!(get["revision"].as_i64(), Some(revision), "{get}");
    assert_eq!(get["outcome"], "NONE", "{get}");
    assert_eq!(get["request_id"], serde_json::Value::Null, "{get}");
    let hex = json(&ok(&server, &["get", "j", "-w", "json", "--hex"]));
    assert_eq!(hex["value"], "68656c6c6f", "{hex}");

    let missing = json(&ok(&server, &["get", "nothing", "-w", "json"]));
    assert_eq!(
        (&missing["valid"], &missing["found"]),
        (&true.into(), &false.into())
    );

    let swap = json(&ok(&server, &["swap", "j", "wrong", "new", "-w", "json"]));
    assert_eq!(swap["valid"], false, "{swap}");
    assert_eq!(swap["found"], true, "{swap}");
    assert_eq!(swap["value"], "hello", "{swap}");
    assert_eq!(swap["outcome"], "APPLIED", "{swap}");
}

#[tokio::test]
async fn a_local_set_names_its_dot_and_is_read_back_locally() {
    let server = Server::start().await;
    let out = ok(&server, &["set", "lk", "lv", "--consistent=false"]);
    assert!(
        out.starts_with("OK local ") && out.ends_with("#1\n"),
        "{out:?}"
    );
    assert_eq!(ok(&server, &["get", "lk", "--consistent=false"]), "lv\n");
    let second = json(&ok(
        &server,
        &["set", "lk", "lv2", "--consistent=false", "-w", "json"],
    ));
    assert_eq!(second["valid"], true, "{second}");
    assert_eq!(second["local"]["seq"], 2, "{second}");
    assert_eq!(second["request_id"], serde_json::Value::Null, "{second}");
}

#[tokio::test]
async fn errors_are_clear_and_exit_non_zero() {
    let server = Server::start().await;
    fails(&server, &["get", ""], 1, "etcdserver: key is not provided");
    fails(
        &server,
        &["set", "", "v"],
        1,
        "etcdserver: key is not provided",
    );
    fails(
        &server,
        &["swap", "", "a", "b"],
        1,
        "etcdserver: key is not provided",
    );
    fails(
        &server,
        &["swap", "k", "v"],
        128,
        "dial swap needs 3 arguments",
    );
    fails(
        &server,
        &["swap", "--old-absent", "k", "a", "b"],
        128,
        "needs 2 arguments",
    );
    fails(&server, &["outcome", "abc"], 128, "bad request id \"abc\"");
    fails(&server, &["outcome", "7-0"], 128, "bad request id");
    // A session nobody opened: its requests' fate is not known.
    fails(
        &server,
        &["outcome", "999999-1"],
        1,
        "rafter: session expired",
    );
    fails(
        &server,
        &["get", "k", "-w", "table"],
        4,
        "unsupported output format",
    );
    // Usage errors (clap's wording).
    let run = rafter(&server.address(), &["get", "k", "--timeout", "soon"]);
    assert_eq!(run.code, Some(2), "{run:?}");
    assert!(run.stderr.contains("invalid duration"), "{run:?}");
    let run = rafter(&server.address(), &["get"]);
    assert_eq!(run.code, Some(2), "{run:?}");
    // Nothing listens on port 1.
    let run = rafter("127.0.0.1:1", &["get", "k", "--timeout", "1s"]);
    assert_eq!(run.code, Some(1), "{run:?}");
    assert!(run.stderr.starts_with("Error: "), "{run:?}");
    // The store was never touched by the failed requests.
    assert_eq!(ok(&server, &["get", "k"]), "");
}
