//! Smoke run of `rafter bench`, so the load generator keeps working: a short
//! put run against a real server must report every operation done and no
//! error in its JSON line. Benchmarks are not timed tests, so no speed or
//! latency figure is asserted.

mod common;

use std::path::Path;
use std::process::Command;

use common::{Server, Target};

/// Runs `rafter bench` with `args` and returns its last stdout line (the
/// JSON report) parsed.
fn bench_json(args: &[&str]) -> serde_json::Value {
    let output = Command::new(env!("CARGO_BIN_EXE_rafter"))
        .arg("bench")
        .args(args)
        .output()
        .expect("run rafter bench");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "rafter bench {args:?} failed with {}\nstdout:\n{stdout}\nstderr:\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    let last_line = stdout.lines().last().expect("rafter bench printed nothing");
    serde_json::from_str(last_line)
        .unwrap_or_else(|e| panic!("the last line is not JSON ({e}): {last_line}"))
}

#[tokio::test]
async fn put_run_reports_every_op_and_no_error() {
    let server = Server::start().await;
    let endpoint = server.endpoint();
    let report = tokio::task::spawn_blocking(move || {
        bench_json(&[
            "put",
            "--endpoints",
            &endpoint,
            "--total",
            "200",
            "--clients",
            "4",
        ])
    })
    .await
    .expect("the bench thread panicked");
    assert_eq!(report["settings"]["workload"], "put");
    assert_eq!(report["ops"], 200, "report: {report}");
    assert_eq!(report["errors"], 0, "report: {report}");
    assert_eq!(report["by_op"][0]["op"], "put");
    assert!(report["latency"]["p99_us"].is_u64());
}

#[tokio::test]
async fn txn_cas_run_swaps_every_time_without_other_writers() {
    let server = Server::start().await;
    let endpoint = server.endpoint();
    let report = tokio::task::spawn_blocking(move || {
        bench_json(&[
            "txn-cas",
            "--endpoints",
            &endpoint,
            "--total",
            "100",
            "--clients",
            "2",
            "--key-space",
            "10",
            "--output",
            "json",
        ])
    })
    .await
    .expect("the bench thread panicked");
    assert_eq!(report["ops"], 100, "report: {report}");
    assert_eq!(report["errors"], 0, "report: {report}");
    assert_eq!(report["cas_swapped"], 100, "report: {report}");
}

/// A short watch run (20 watchers on 2 streams, 2 s of puts at 50/s)
/// against `target`: every acknowledged put must reach every watcher, and
/// the server's CPU time must be measured (its process found by port).
async fn watch_run_delivers_every_event(target: Target) {
    let server = Server::start_target(target, &[]).await;
    let endpoint = server.endpoint();
    let report = tokio::task::spawn_blocking(move || {
        bench_json(&[
            "watch",
            "--endpoints",
            &endpoint,
            "--watchers",
            "20",
            "--watchers-per-stream",
            "10",
            "--conns",
            "2",
            "--rate",
            "50",
            "--duration",
            "2s",
            "--val-size",
            "32",
            "--output",
            "json",
        ])
    })
    .await
    .expect("the bench thread panicked");
    assert_eq!(report["settings"]["workload"], "watch");
    assert_eq!(report["errors"], 0, "report: {report}");
    let puts = report["ops"].as_u64().unwrap();
    assert!(puts >= 50, "report: {report}");
    let watch = &report["watch"];
    assert_eq!(watch["streams"], 2, "report: {report}");
    assert_eq!(watch["events_expected"], puts * 20, "report: {report}");
    assert_eq!(watch["events_delivered"], puts * 20, "report: {report}");
    assert_eq!(watch["events_missing"], 0, "report: {report}");
    assert_eq!(watch["stream_errors"], 0, "report: {report}");
    assert!(watch["delivery_latency"]["p99_us"].as_u64().unwrap() > 0);
    assert!(watch["delivered_events_per_s"].as_f64().unwrap() > 0.0);
    assert_eq!(
        watch["server_pids"].as_array().unwrap().len(),
        1,
        "{report}"
    );
    assert!(watch["server_cpu_ms"].is_u64(), "report: {report}");
    assert!(
        watch["server_cpu_us_per_event"].is_f64(),
        "report: {report}"
    );
}

#[tokio::test]
async fn watch_run_against_etcd_delivers_every_event() {
    watch_run_delivers_every_event(Target::Etcd).await;
}

/// The same against Rafter's server (whatever `RAFTER_TEST_TARGET` says).
#[tokio::test]
async fn watch_run_against_rafter_delivers_every_event() {
    watch_run_delivers_every_event(Target::Rafter).await;
}

/// Checks one range of an election report: every trial succeeded and each
/// election took at least the six messages a 3-member election with
/// pre-vote needs (two pre-vote requests, one grant, two vote requests,
/// one vote), counted per kind.
fn assert_elections(report: &serde_json::Value, range: &str, trials: u64) {
    let figures = report["timeouts"]
        .as_array()
        .and_then(|ranges| ranges.iter().find(|r| r["range_ms"] == range))
        .unwrap_or_else(|| panic!("no range {range} in {report}"));
    assert_eq!(figures["trials"], trials, "report: {report}");
    assert_eq!(figures["failed_trials"], 0, "report: {report}");
    let messages = &figures["messages"];
    assert!(messages["min"].as_u64().unwrap() >= 6, "report: {report}");
    let kinds = &messages["mean_by_kind"];
    assert!(
        kinds["pre_vote_requests"].as_f64().unwrap() >= 2.0,
        "{report}"
    );
    assert!(
        kinds["pre_vote_responses"].as_f64().unwrap() >= 1.0,
        "{report}"
    );
    assert!(kinds["vote_requests"].as_f64().unwrap() >= 2.0, "{report}");
    assert!(kinds["vote_responses"].as_f64().unwrap() >= 1.0, "{report}");
    assert!(figures["elected"]["p50_ms"].as_f64().unwrap() > 0.0);
}

/// Runs two leader crashes per range of `rafter bench election` with
/// `server_args` (which implementation) into `out_dir`; returns the report.
async fn election_report(server_args: &[&str], ranges: &str, out_dir: &Path) -> serde_json::Value {
    let mut args: Vec<String> = ["election", "--trials", "2", "--election-timeouts", ranges]
        .iter()
        .chain(server_args)
        .map(|arg| arg.to_string())
        .collect();
    args.extend(["--out-dir".to_string(), out_dir.display().to_string()]);
    args.extend(["--output".to_string(), "json".to_string()]);
    tokio::task::spawn_blocking(move || {
        bench_json(&args.iter().map(String::as_str).collect::<Vec<_>>())
    })
    .await
    .expect("the bench thread panicked")
}

/// Two leader crashes each of a default and a narrow election range on a
/// local 3-member Rafter cluster: the narrow one runs Rafter's
/// `--election-timeout-max`, and every election's messages are counted from
/// the members' `/metrics`. The files are written.
#[tokio::test]
async fn election_run_counts_failovers_and_messages() {
    let out_dir = tempfile::tempdir().unwrap();
    let report = election_report(&["--server", "rafter"], "50,60-70", out_dir.path()).await;
    assert_elections(&report, "50-100", 2);
    assert_elections(&report, "60-70", 2);
    for file in [
        "election-trials.csv",
        "election-cdf.csv",
        "election-elected-cdf.png",
        "election-first-write-cdf.png",
        "election-messages-cdf.png",
    ] {
        let bytes = std::fs::read(out_dir.path().join(file)).unwrap();
        assert!(!bytes.is_empty(), "{file} is empty");
    }
    let trials = std::fs::read_to_string(out_dir.path().join("election-trials.csv")).unwrap();
    assert_eq!(trials.lines().count(), 1 + 4, "{trials}");
}

/// The same against etcd, whose election messages come from its log; etcd
/// cannot run a narrow range and the benchmark says so.
#[tokio::test]
async fn election_run_against_etcd_counts_messages_from_its_log() {
    let etcd = common::find_on_path("etcd").display().to_string();
    let out_dir = tempfile::tempdir().unwrap();
    let server = ["--server", "etcd", "--etcd-binary", etcd.as_str()];
    let report = election_report(&server, "50", out_dir.path()).await;
    assert_elections(&report, "50-100", 2);

    let refused = Command::new(env!("CARGO_BIN_EXE_rafter"))
        .args([
            "bench",
            "election",
            "--server",
            "etcd",
            "--etcd-binary",
            &etcd,
        ])
        .args(["--trials", "1", "--election-timeouts", "60-70"])
        .output()
        .expect("run rafter bench");
    assert!(!refused.status.success());
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(stderr.contains("[T, 2T) only"), "stderr: {stderr}");
}

/// A short lease run (200 leases kept alive every 500 ms on 2 streams for
/// 2 s) against `target`: every lease is granted and revoked, every
/// keep-alive sent is answered with a live TTL, and the server's CPU time
/// and peak memory are measured (its process found by port).
async fn lease_run_keeps_every_lease_alive(target: Target) {
    let server = Server::start_target(target, &[]).await;
    let endpoint = server.endpoint();
    let report = tokio::task::spawn_blocking(move || {
        bench_json(&[
            "lease",
            "--endpoints",
            &endpoint,
            "--leases",
            "200",
            "--ttl",
            "30",
            "--keepalive-interval",
            "500ms",
            "--keepalive-streams",
            "2",
            "--duration",
            "2s",
            "--conns",
            "2",
            "--clients",
            "8",
            "--output",
            "json",
        ])
    })
    .await
    .expect("the bench thread panicked");
    assert_eq!(report["settings"]["workload"], "lease");
    assert_eq!(report["settings"]["keepalive_streams"], 2, "{report}");
    assert_eq!(report["grant"]["ops"], 200, "report: {report}");
    assert_eq!(report["grant"]["errors"], 0, "report: {report}");
    assert_eq!(report["revoke"]["ops"], 200, "report: {report}");
    assert_eq!(report["revoke"]["errors"], 0, "report: {report}");
    let keepalive = &report["keepalive"];
    let sent = keepalive["sent"].as_u64().unwrap();
    // Four rounds of 200 in 2 s, give or take the last send tick.
    assert!(sent >= 700, "report: {report}");
    assert_eq!(keepalive["answered"], sent, "report: {report}");
    for zero in ["unanswered", "expired", "unexpected", "stream_errors"] {
        assert_eq!(keepalive[zero], 0, "{zero}: {report}");
    }
    assert!(keepalive["latency"]["p99_us"].as_u64().unwrap() > 0);
    assert!(keepalive["keepalives_per_s"].as_f64().unwrap() > 0.0);
    let members = report["members"].as_array().unwrap();
    assert_eq!(members.len(), 1, "{report}");
    assert!(members[0]["cpu_ms"].is_u64(), "report: {report}");
    assert!(
        members[0]["peak_rss_kib"].as_u64().unwrap() > 0,
        "report: {report}"
    );
}

#[tokio::test]
async fn lease_run_against_etcd_keeps_every_lease_alive() {
    lease_run_keeps_every_lease_alive(Target::Etcd).await;
}

/// The same against Rafter's server (whatever `RAFTER_TEST_TARGET` says).
#[tokio::test]
async fn lease_run_against_rafter_keeps_every_lease_alive() {
    lease_run_keeps_every_lease_alive(Target::Rafter).await;
}
