//! A minimal HTTP/1.1 endpoint for `--listen-metrics-urls` (as etcd's):
//! `/metrics` (Prometheus text), `/health` and `/version`. Hand-rolled since
//! it serves three fixed documents and needs no framework.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

use crate::handle::NodeHandle;
use crate::services::maintenance::API_VERSION;

/// Largest request head read before answering (requests here are tiny).
const MAX_HEAD_BYTES: usize = 8192;

pub async fn serve(listener: TcpListener, node: NodeHandle) {
    let node = Arc::new(node);
    loop {
        let Ok((mut sock, _)) = listener.accept().await else {
            continue;
        };
        let node = node.clone();
        tokio::spawn(async move {
            let mut buf = vec![0u8; MAX_HEAD_BYTES];
            let mut len = 0;
            while len < buf.len() {
                match sock.read(&mut buf[len..]).await {
                    Ok(0) | Err(_) => return,
                    Ok(n) => len += n,
                }
                if buf[..len].windows(4).any(|w| w == b"\r\n\r\n") {
                    break;
                }
            }
            let head = String::from_utf8_lossy(&buf[..len]);
            let path = head.split_whitespace().nth(1).unwrap_or("/");
            let (status, ctype, body) = match path {
                "/metrics" => ("200 OK", "text/plain; version=0.0.4", metrics_text(&node)),
                "/health" => {
                    let ok = node.status.leader_id.load(Ordering::Relaxed) != 0;
                    let body = if ok {
                        r#"{"health":"true","reason":""}"#.to_string()
                    } else {
                        r#"{"health":"false","reason":"RAFT NO LEADER"}"#.to_string()
                    };
                    (
                        if ok {
                            "200 OK"
                        } else {
                            "503 Service Unavailable"
                        },
                        "application/json",
                        body,
                    )
                }
                "/version" => (
                    "200 OK",
                    "application/json",
                    format!(r#"{{"etcdserver":"{API_VERSION}","etcdcluster":"{API_VERSION}"}}"#),
                ),
                _ => (
                    "404 Not Found",
                    "text/plain",
                    "404 page not found\n".to_string(),
                ),
            };
            let resp = format!(
                "HTTP/1.1 {status}\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
            let _ = sock.write_all(resp.as_bytes()).await;
        });
    }
}

/// The counters in Prometheus text format.
pub fn metrics_text(node: &NodeHandle) -> String {
    let s = &node.status;
    let counters = [
        (
            "rafter_wal_fsyncs_total",
            "Fsyncs of the Raft log.",
            s.wal_fsyncs.load(Ordering::Relaxed),
        ),
        (
            "rafter_proposals_total",
            "Proposals accepted into the Raft log.",
            s.proposals.load(Ordering::Relaxed),
        ),
        (
            "rafter_entries_applied_total",
            "Raft entries applied to the store.",
            s.entries_applied.load(Ordering::Relaxed),
        ),
        (
            "rafter_store_syncs_total",
            "Durable commits of the state machine store.",
            s.store_syncs.load(Ordering::Relaxed),
        ),
        (
            "rafter_store_sync_microseconds_total",
            "Time spent in durable commits of the state machine store.",
            s.store_sync_us.load(Ordering::Relaxed),
        ),
        (
            "rafter_ready_cycles_total",
            "Raft Ready cycles processed.",
            s.ready_cycles.load(Ordering::Relaxed),
        ),
    ];
    let gauges = [
        (
            "rafter_raft_term",
            "Current Raft term.",
            s.term.load(Ordering::Relaxed),
        ),
        (
            "rafter_raft_applied_index",
            "Last applied Raft index.",
            s.applied_index.load(Ordering::Relaxed),
        ),
        (
            "rafter_raft_commit_index",
            "Raft commit index.",
            s.commit_index.load(Ordering::Relaxed),
        ),
        (
            "rafter_db_size_bytes",
            "Size of the state machine file.",
            node.store.db_size_bytes(),
        ),
        (
            "rafter_conflict_log_records",
            "Local writes the conflict log records as concurrent with a committed change (until compacted).",
            node.store.conflict_count().unwrap_or(0),
        ),
    ];
    let mut out = String::new();
    for (kind, list) in [("counter", &counters[..]), ("gauge", &gauges[..])] {
        for (name, help, value) in list.iter() {
            out.push_str(&format!(
                "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}\n"
            ));
        }
    }
    let name = "rafter_raft_messages_sent_total";
    out.push_str(&format!(
        "# HELP {name} Raft messages sent to peers, by type.\n# TYPE {name} counter\n"
    ));
    for (kind, count) in s.messages_sent.snapshot() {
        out.push_str(&format!("{name}{{type=\"{kind}\"}} {count}\n"));
    }
    out
}
