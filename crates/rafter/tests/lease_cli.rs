//! `rafter lease ...` against etcdctl: both tools run against the same test
//! server (Rafter, or etcd with `RAFTER_TEST_TARGET=etcd`) in the same state,
//! and must print the same bytes and exit the same way. Where the state
//! differs between the two runs by design (each grant gets its own id, a
//! remaining TTL may tick down between the runs), the comparison says
//! exactly what it allows.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use common::{find_on_path, Server};
use etcd_client::{Client, LeaseGrantOptions, PutOptions};

/// What a command printed and how it exited.
#[derive(Debug, PartialEq, Eq)]
struct Outcome {
    stdout: String,
    stderr: String,
    code: Option<i32>,
}

/// How long a test waits for a line from a running `lease keep-alive`.
const LINE_DEADLINE: Duration = Duration::from_secs(15);

fn outcome(output: Output) -> Outcome {
    Outcome {
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        // etcdctl's client library logs retries as JSON lines on stderr.
        stderr: String::from_utf8_lossy(&output.stderr)
            .lines()
            .filter(|line| !line.starts_with("{\"level\""))
            .map(|line| format!("{line}\n"))
            .collect(),
        code: output.status.code(),
    }
}

/// `etcdctl <args>` or `rafter <args>` against `server`, ready to run.
fn command(tool: &str, server: &Server, args: &[&str]) -> Command {
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
        .args(args)
        .arg(format!("--endpoints={}", server.address()))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    command
}

fn run(tool: &str, server: &Server, args: &[&str]) -> Outcome {
    let mut command = command(tool, server, args);
    outcome(
        command
            .output()
            .unwrap_or_else(|e| panic!("cannot run {command:?}: {e}")),
    )
}

/// Runs `args` through both tools and asserts identical output.
#[track_caller]
fn same(server: &Server, args: &[&str]) -> Outcome {
    let expected = run("etcdctl", server, args);
    let actual = run("rafter", server, args);
    assert_eq!(
        actual,
        expected,
        "`{}` differs (left: rafter, right: etcdctl)",
        args.join(" ")
    );
    actual
}

/// Like [`same`], for output that may change between two runs (a remaining
/// TTL ticking down): rafter must match etcdctl run just before or after.
#[track_caller]
fn same_as_before_or_after(server: &Server, args: &[&str]) {
    let before = run("etcdctl", server, args);
    let actual = run("rafter", server, args);
    let after = run("etcdctl", server, args);
    assert!(
        actual == before || actual == after,
        "`{}` differs:\nrafter: {actual:?}\netcdctl before: {before:?}\netcdctl after: {after:?}",
        args.join(" ")
    );
}

/// Grants a lease with a chosen id (so both tools can be pointed at it).
async fn grant(client: &mut Client, id: i64, ttl: i64) {
    let response = client
        .lease_grant(ttl, Some(LeaseGrantOptions::new().with_id(id)))
        .await
        .expect("lease grant");
    assert_eq!((response.id(), response.ttl()), (id, ttl));
}

/// `text` with every form of lease id `from` (16 hex digits, decimal)
/// replaced by `to`'s. Only whole words are replaced: a short id's digits
/// also occur inside the member id printed in the header.
fn replace_id(text: &str, from: i64, to: i64) -> String {
    let forms = [
        (format!("{from:016x}"), format!("{to:016x}")),
        (from.to_string(), to.to_string()),
    ];
    let mut out = String::with_capacity(text.len());
    let mut word = String::new();
    let flush = |word: &mut String, out: &mut String| {
        let replaced = forms.iter().find(|(f, _)| f == word).map(|(_, t)| t);
        out.push_str(replaced.unwrap_or(word));
        word.clear();
    };
    for c in text.chars() {
        if c.is_ascii_alphanumeric() {
            word.push(c);
        } else {
            flush(&mut word, &mut out);
            out.push(c);
        }
    }
    flush(&mut word, &mut out);
    out
}

#[tokio::test]
async fn grant_output_and_errors() {
    let server = Server::start().await;
    for format in ["simple", "json", "fields"] {
        let expected = run("etcdctl", &server, &["lease", "grant", "60", "-w", format]);
        let actual = run("rafter", &server, &["lease", "grant", "60", "-w", format]);
        assert_eq!(actual.code, Some(0), "{actual:?}");
        // Each grant gets its own id; everything else must match.
        let id_of = |out: &Outcome| -> i64 {
            let text = &out.stdout;
            let id = match format {
                "simple" => i64::from_str_radix(&text[6..22], 16).unwrap(),
                "json" => {
                    let v: serde_json::Value = serde_json::from_str(text).unwrap();
                    v["ID"].as_i64().unwrap()
                }
                _ => text
                    .lines()
                    .find_map(|l| l.strip_prefix("\"ID\" : "))
                    .unwrap()
                    .parse()
                    .unwrap(),
            };
            id
        };
        let (mine, theirs) = (id_of(&actual), id_of(&expected));
        assert_ne!(mine, theirs);
        assert_eq!(
            actual,
            Outcome {
                stdout: replace_id(&expected.stdout, theirs, mine),
                ..expected
            },
            "lease grant -w {format}"
        );
    }
    // Output formats etcdctl refuses, argument errors, server errors.
    for args in [
        &["lease", "grant", "60", "-w", "table"][..],
        &["lease", "grant", "60", "-w", "bogus"],
        &["lease", "grant"],
        &["lease", "grant", "1", "2"],
        &["lease", "grant", "abc"],
        &["lease", "grant", "9000000001"],
    ] {
        same(&server, args);
    }
    // Raised to the minimum TTL (1 s with the harness's timers).
    let out = run("rafter", &server, &["lease", "grant", "0"]);
    assert!(out.stdout.ends_with(" granted with TTL(1s)\n"), "{out:?}");
}

#[tokio::test]
async fn timetolive_keepalive_and_list_output() {
    let server = Server::start().await;
    let mut client = server.client().await;
    let id = 0x2040_a200_b5ab_4e22;
    grant(&mut client, id, 600).await;
    client
        .put("t/a", "1", Some(PutOptions::new().with_lease(id)))
        .await
        .expect("put");
    let hex = format!("{id:016x}");
    let short = format!("{id:x}");
    for format in ["simple", "json", "fields", "protobuf", "table"] {
        same_as_before_or_after(&server, &["lease", "timetolive", &hex, "-w", format]);
        same_as_before_or_after(
            &server,
            &["lease", "timetolive", &short, "--keys", "-w", format],
        );
        same(
            &server,
            &["lease", "keep-alive", "--once", &hex, "-w", format],
        );
        same(&server, &["lease", "list", "-w", format]);
    }
    for args in [
        &["lease", "timetolive", "1234"][..],
        &["lease", "timetolive", "1234", "--keys", "-w", "json"],
        &["lease", "timetolive", "1234", "-w", "fields"],
        &["lease", "timetolive"],
        &["lease", "timetolive", "zz"],
        &["lease", "keep-alive", "--once", "1234"],
        &["lease", "keep-alive", "--once", "1234", "-w", "json"],
        &["lease", "keep-alive"],
        &["lease", "keep-alive", "zz"],
        &["lease", "keep-alive", "1234"],
        &["lease", "keep-alive", "1234", "-w", "json"],
    ] {
        same(&server, args);
    }
}

#[tokio::test]
async fn revoke_output_and_errors() {
    let server = Server::start().await;
    let mut client = server.client().await;
    // Leases without keys, so a revoke leaves the revision (and with it the
    // printed header) unchanged.
    for format in ["simple", "json", "fields", "protobuf", "table"] {
        let (theirs, mine) = (0x100, 0x200);
        grant(&mut client, theirs, 60).await;
        grant(&mut client, mine, 60).await;
        let expected = run(
            "etcdctl",
            &server,
            &["lease", "revoke", &format!("{theirs:x}"), "-w", format],
        );
        let actual = run(
            "rafter",
            &server,
            &["lease", "revoke", &format!("{mine:x}"), "-w", format],
        );
        assert_eq!(
            actual,
            Outcome {
                stdout: replace_id(&expected.stdout, theirs, mine),
                ..expected
            },
            "lease revoke -w {format}"
        );
        // etcdctl revokes before refusing to print protobuf or a table.
        for id in [theirs, mine] {
            let _ = client.lease_revoke(id).await;
        }
    }
    for args in [
        &["lease", "revoke", "1234"][..],
        &["lease", "revoke", "1234", "-w", "json"],
        &["lease", "revoke"],
        &["lease", "revoke", "1", "2"],
        &["lease", "revoke", "zz"],
    ] {
        same(&server, args);
    }
}

/// Runs a write through etcdctl, then through rafter, which writes one
/// revision later: rafter's output must be etcdctl's with the revision one
/// higher.
#[track_caller]
fn same_write(server: &Server, args: &[&str]) {
    let expected = run("etcdctl", server, args);
    let actual = run("rafter", server, args);
    let mut shifted = expected.stdout.clone();
    for (prefix, suffix) in [("\"revision\":", ","), ("\"Revision\" : ", "\n")] {
        if let Some(start) = shifted.find(prefix) {
            let from = start + prefix.len();
            let end = from + shifted[from..].find(suffix).expect("revision end");
            let revision: i64 = shifted[from..end].parse().expect("revision");
            shifted.replace_range(from..end, &(revision + 1).to_string());
        }
    }
    assert_eq!(
        actual,
        Outcome {
            stdout: shifted,
            ..expected
        },
        "`{}` differs (left: rafter, right: etcdctl)",
        args.join(" ")
    );
}

#[tokio::test]
async fn put_with_lease() {
    let server = Server::start().await;
    let mut client = server.client().await;
    let id = 0xabc;
    grant(&mut client, id, 60).await;
    same(&server, &["put", "k", "v", "--lease", "abc"]);
    same_write(
        &server,
        &["put", "k", "v", "--lease=0000000000000abc", "-w", "json"],
    );
    same_write(
        &server,
        &["put", "k", "v2", "--ignore-lease", "-w", "fields"],
    );
    same(&server, &["get", "k", "-w", "json"]);
    same(&server, &["put", "k", "v", "--lease", "1234"]);
    same(
        &server,
        &["put", "k", "v", "--lease", "abc", "--ignore-lease"],
    );
    same(
        &server,
        &["lease", "timetolive", "abc", "--keys", "-w", "fields"],
    );
}

/// A running `lease keep-alive` whose output lines are read by a thread.
struct KeepAlive {
    child: Child,
    lines: mpsc::Receiver<String>,
}

impl KeepAlive {
    fn spawn(tool: &str, server: &Server, args: &[&str]) -> KeepAlive {
        let mut child = command(tool, server, args)
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn lease keep-alive");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { return };
                if tx.send(line).is_err() {
                    return;
                }
            }
        });
        KeepAlive { child, lines }
    }

    fn line(&self) -> String {
        self.lines
            .recv_timeout(LINE_DEADLINE)
            .unwrap_or_else(|e| panic!("no keep-alive line within {LINE_DEADLINE:?}: {e}"))
    }

    /// Waits for the process to exit by itself; returns its exit code and
    /// the lines it printed meanwhile.
    fn finish(mut self) -> (Option<i32>, Vec<String>) {
        let deadline = std::time::Instant::now() + LINE_DEADLINE;
        loop {
            if let Some(status) = self.child.try_wait().expect("poll keep-alive") {
                let rest = self.lines.iter().collect();
                return (status.code(), rest);
            }
            assert!(
                std::time::Instant::now() < deadline,
                "keep-alive still runs after its lease was revoked"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for KeepAlive {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `lease keep-alive` renews until the lease is revoked, printing every
/// answer, then says so and exits 0, as etcdctl does.
#[tokio::test]
async fn keep_alive_until_revoked() {
    let server = Server::start().await;
    let mut client = server.client().await;
    for (tool, id) in [("etcdctl", 0x51), ("rafter", 0x52)] {
        for format in ["simple", "json"] {
            grant(&mut client, id, 3).await;
            let hex = format!("{id:016x}");
            let keep =
                KeepAlive::spawn(tool, &server, &["lease", "keep-alive", &hex, "-w", format]);
            let first = keep.line();
            // Renewed at least twice (every TTL/3 = 1 s).
            let second = keep.line();
            if format == "simple" {
                assert_eq!(
                    first,
                    format!("lease {hex} keepalived with TTL(3)"),
                    "{tool}"
                );
            } else {
                let v: serde_json::Value = serde_json::from_str(&first).expect("JSON line");
                assert_eq!((v["ID"].as_i64(), v["TTL"].as_i64()), (Some(id), Some(3)));
                assert!(v["revision"].as_i64().unwrap_or(0) >= 1, "{first}");
            }
            assert_eq!(second, first, "{tool} -w {format}");
            client.lease_revoke(id).await.expect("revoke");
            let (code, rest) = keep.finish();
            assert_eq!(code, Some(0), "{tool} -w {format}");
            let last = rest.last().cloned().unwrap_or_default();
            if format == "simple" {
                assert_eq!(last, format!("lease {hex} expired or revoked."), "{tool}");
            } else {
                assert!(rest.iter().all(|l| l.starts_with('{')), "{tool}: {rest:?}");
            }
        }
    }
}
