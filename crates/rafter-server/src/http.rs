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

/// Every metric in Prometheus text format.
pub fn metrics_text(node: &NodeHandle) -> String {
    node.status.metrics.render(node)
}
