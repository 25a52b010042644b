//! Smoke run of `rafter bench`, so the load generator keeps working: a short
//! put run against a real server must report every operation done and no
//! error in its JSON line. Benchmarks are not timed tests, so no speed or
//! latency figure is asserted.

mod common;

use std::process::Command;

use common::Server;

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
