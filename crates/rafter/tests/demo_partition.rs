//! `rafter demo partition` is also a test (issue 13, acceptance 4): it
//! starts its own 3-member cluster, cuts one member off and runs every cell
//! of the dial on both sides; here its JSON report is checked against the
//! dial's semantics in the product brief. The majority answers every cell.
//! The cut-off member answers local reads and local writes at once; its
//! consistent calls block when blocking (and finish after the heal) or
//! time out with a definite outcome (cancelled, or pending and decided
//! after the heal). Every local write is on the healed cluster, and the
//! key both sides wrote is in the conflict log.

use std::process::{Command, Stdio};

use serde_json::Value;

fn report() -> Value {
    let output = Command::new(env!("CARGO_BIN_EXE_rafter"))
        .args([
            "demo",
            "partition",
            "-w",
            "json",
            "--timeout",
            "2s",
            "--blocked-after",
            "3s",
        ])
        .stdin(Stdio::null())
        .output()
        .expect("run rafter demo partition");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "the demo failed:\n{stderr}");
    serde_json::from_slice(&output.stdout).unwrap_or_else(|e| {
        panic!(
            "the demo's JSON: {e}\n{}",
            String::from_utf8_lossy(&output.stdout)
        )
    })
}

fn kind(result: &Value) -> &str {
    result["kind"].as_str().expect("a result kind")
}

/// A timed-out mutation's outcome is definite: cancelled, or pending and
/// decided once the cut healed.
fn definite(cell: &Value) -> bool {
    match cell["result"]["outcome"].as_str() {
        Some("cancelled") => true,
        Some("pending") => matches!(cell["decided"].as_str(), Some("applied" | "cancelled")),
        _ => false,
    }
}

#[test]
fn every_cell_of_the_dial_behaves_as_the_brief_says() {
    let report = report();
    let cells = report["cells"].as_array().expect("cells");
    assert_eq!(cells.len(), 2 * 3 * 2 * 2, "{report}");
    for cell in cells {
        let side = cell["side"].as_str().unwrap();
        let op = cell["op"].as_str().unwrap();
        let consistent = cell["consistent"].as_bool().unwrap();
        let blocking = cell["blocking"].as_bool().unwrap();
        let result = &cell["result"];
        let what = format!("{side} {op} consistent={consistent} blocking={blocking}: {cell}");
        if op == "swap" && !consistent {
            assert_eq!(kind(result), "n/a", "swap is always consistent: {what}");
            continue;
        }
        match (side, consistent, blocking) {
            ("majority", _, _) => assert_eq!(kind(result), "succeeded", "{what}"),
            ("minority", false, _) => {
                assert_eq!(kind(result), "succeeded", "{what}");
                if op == "set" {
                    assert!(result["dot"].is_string(), "a local write has a dot: {what}");
                } else {
                    assert!(
                        result["detail"].as_str().unwrap().starts_with("\"before\""),
                        "a local read answers the member's own state: {what}"
                    );
                }
            }
            ("minority", true, true) => {
                assert_eq!(kind(result), "blocked", "{what}");
                assert_eq!(
                    kind(&cell["after_heal"]),
                    "succeeded",
                    "a blocked call finishes once a quorum is back: {what}"
                );
            }
            ("minority", true, false) => {
                assert_eq!(kind(result), "timed-out", "{what}");
                if op != "get" {
                    assert!(definite(cell), "a timed-out mutation is definite: {what}");
                }
            }
            _ => unreachable!("{what}"),
        }
    }
    let landed = report["local_writes"].as_array().expect("local writes");
    assert_eq!(landed.len(), 4, "two local writes per side: {report}");
    for l in landed {
        let value = l["local_value"].as_str().unwrap();
        assert!(
            l["now"]
                .as_str()
                .unwrap()
                .starts_with(&format!("{value:?}")),
            "every local write reached the healed cluster: {l}"
        );
    }
    let conflicts = report["conflicts"].as_array().expect("conflicts");
    assert_eq!(conflicts.len(), 1, "{report}");
    let line = conflicts[0].as_str().unwrap();
    assert!(line.starts_with("demo/both AppliedInCommitOrder"), "{line}");
}
