//! The HTTP endpoints etcd serves beside its gRPC API, on the client port
//! and on `--listen-metrics-urls`: `/metrics` (Prometheus text), `/health`
//! (etcd's JSON), `/livez` and `/readyz` (etcd 3.6's probes, plain `ok`)
//! and `/version`. Served with axum.

use std::sync::atomic::Ordering;
use std::time::Duration;

use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use tokio::net::TcpListener;

use crate::handle::NodeHandle;
use crate::services::maintenance::API_VERSION;

/// How long `/health` and `/readyz` wait for a linearizable read barrier.
const PROBE_READ_TIMEOUT: Duration = Duration::from_secs(1);

/// Serves the endpoints on a metrics listener.
pub async fn serve(listener: TcpListener, node: NodeHandle) {
    if let Err(e) = axum::serve(listener, router(node)).await {
        tracing::error!("metrics listener failed: {e}");
    }
}

/// The endpoints, for the client port and the metrics listeners.
pub fn router(node: NodeHandle) -> Router {
    let metrics = node.clone();
    let health = node.clone();
    let ready = node.clone();
    let live = node;
    Router::new()
        .route(
            "/metrics",
            get(move || {
                let node = metrics.clone();
                async move {
                    (
                        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
                        metrics_text(&node),
                    )
                }
            }),
        )
        .route(
            "/health",
            get(move || {
                let node = health.clone();
                async move { health_response(&node).await }
            }),
        )
        .route(
            "/readyz",
            get(move || {
                let node = ready.clone();
                async move {
                    match ready_problem(&node).await {
                        None => (StatusCode::OK, "ok".to_string()),
                        Some(why) => (
                            StatusCode::SERVICE_UNAVAILABLE,
                            format!("[-]{why}\nreadyz check failed"),
                        ),
                    }
                }
            }),
        )
        .route(
            "/livez",
            get(move || {
                let node = live.clone();
                async move {
                    // Live while the Raft loop runs (a leader is not needed).
                    if node.status.running.load(Ordering::Acquire) {
                        (StatusCode::OK, "ok")
                    } else {
                        (
                            StatusCode::SERVICE_UNAVAILABLE,
                            "[-]raft loop stopped\nlivez check failed",
                        )
                    }
                }
            }),
        )
        .route(
            "/version",
            get(|| async {
                (
                    [(header::CONTENT_TYPE, "application/json")],
                    format!(r#"{{"etcdserver":"{API_VERSION}","etcdcluster":"{API_VERSION}"}}"#),
                )
            }),
        )
}

/// Why the member cannot serve linearizable requests now, if it cannot:
/// no leader, or no read barrier within the probe timeout.
async fn ready_problem(node: &NodeHandle) -> Option<&'static str> {
    if node.status.leader_id.load(Ordering::Relaxed) == 0 {
        return Some("RAFT NO LEADER");
    }
    match node.read_barrier_within(PROBE_READ_TIMEOUT).await {
        Ok(()) => None,
        Err(_) => Some("RAFT READ FAILED"),
    }
}

/// etcd's `/health`: `{"health":"true","reason":""}`, or 503 with the reason.
async fn health_response(node: &NodeHandle) -> Response {
    let (status, body) = match ready_problem(node).await {
        None => (
            StatusCode::OK,
            r#"{"health":"true","reason":""}"#.to_string(),
        ),
        Some(why) => (
            StatusCode::SERVICE_UNAVAILABLE,
            format!(r#"{{"health":"false","reason":"{why}"}}"#),
        ),
    };
    (status, [(header::CONTENT_TYPE, "application/json")], body).into_response()
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
