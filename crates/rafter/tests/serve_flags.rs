//! `rafter serve` refuses contradictory Raft timers with a clear message
//! before touching the data directory, and runs a narrow election timeout
//! range (`--election-timeout-max`, which etcd lacks).

mod common;

use std::process::Command;

use common::{Server, Target};

fn serve_error(args: &[&str]) -> String {
    let data_dir = tempfile::tempdir().unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_rafter"))
        .arg("serve")
        .arg("--data-dir")
        .arg(data_dir.path().join("m"))
        .args(args)
        .output()
        .expect("run rafter serve");
    assert!(!output.status.success(), "rafter serve {args:?} started");
    assert!(
        !data_dir.path().join("m").exists(),
        "the data directory was created"
    );
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[test]
fn contradictory_election_timers_are_refused() {
    let stderr = serve_error(&["--election-timeout", "150", "--election-timeout-max", "150"]);
    assert!(
        stderr.contains("--election-timeout-max (150 ms) must exceed --election-timeout (150 ms)"),
        "stderr: {stderr}"
    );
    let stderr = serve_error(&[
        "--heartbeat-interval",
        "200",
        "--election-timeout",
        "150",
        "--election-timeout-max",
        "300",
    ]);
    assert!(
        stderr.contains("must exceed --heartbeat-interval"),
        "stderr: {stderr}"
    );
    let stderr = serve_error(&["--heartbeat-interval", "0"]);
    assert!(stderr.contains("at least 1 ms"), "stderr: {stderr}");
}

#[tokio::test]
async fn narrow_election_range_serves() {
    // A Rafter flag: etcd has no way to narrow the range. The harness runs
    // members with a 10 ms heartbeat and a 100 ms election timeout.
    let server = Server::start_target(Target::Rafter, &["--election-timeout-max", "103"]).await;
    let mut client = server.client().await;
    client.put("k", "v", None).await.unwrap();
    let got = client.get("k", None).await.unwrap();
    assert_eq!(got.kvs()[0].value(), b"v");
}
