//! Counts gRPC calls as etcd's go-grpc-prometheus interceptors do:
//! `grpc_server_started_total` when a call arrives and
//! `grpc_server_handled_total` with its status code when it is answered
//! (a call that fails before answering carries its code in the response
//! headers; one that answers carries it in the trailers and counts as OK
//! here, when its answer starts). A tower layer on the client port's
//! server, so every service is counted without code in it.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use crate::node::NodeStatus;

#[derive(Clone)]
pub struct GrpcMetricsLayer {
    status: Arc<NodeStatus>,
}

impl GrpcMetricsLayer {
    pub fn new(status: Arc<NodeStatus>) -> Self {
        GrpcMetricsLayer { status }
    }
}

impl<S> tower::Layer<S> for GrpcMetricsLayer {
    type Service = GrpcMetrics<S>;

    fn layer(&self, inner: S) -> Self::Service {
        GrpcMetrics {
            inner,
            status: Arc::clone(&self.status),
        }
    }
}

#[derive(Clone)]
pub struct GrpcMetrics<S> {
    inner: S,
    status: Arc<NodeStatus>,
}

/// grpc-go's name of a status code (the `grpc_code` label).
fn code_name(code: &str) -> &'static str {
    match code {
        "0" => "OK",
        "1" => "Canceled",
        "2" => "Unknown",
        "3" => "InvalidArgument",
        "4" => "DeadlineExceeded",
        "5" => "NotFound",
        "6" => "AlreadyExists",
        "7" => "PermissionDenied",
        "8" => "ResourceExhausted",
        "9" => "FailedPrecondition",
        "10" => "Aborted",
        "11" => "OutOfRange",
        "12" => "Unimplemented",
        "13" => "Internal",
        "14" => "Unavailable",
        "15" => "DataLoss",
        "16" => "Unauthenticated",
        _ => "Unknown",
    }
}

/// The call's type as go-grpc-prometheus labels it.
fn call_type(service: &str, method: &str) -> &'static str {
    match (service, method) {
        ("etcdserverpb.Watch", "Watch") | ("etcdserverpb.Lease", "LeaseKeepAlive") => "bidi_stream",
        ("etcdserverpb.Maintenance", "Snapshot") => "server_stream",
        _ => "unary",
    }
}

impl<S, B, RB> tower::Service<http::Request<B>> for GrpcMetrics<S>
where
    S: tower::Service<http::Request<B>, Response = http::Response<RB>>,
    S::Future: Send + 'static,
    S::Error: 'static,
    RB: 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<S::Response, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: http::Request<B>) -> Self::Future {
        let is_grpc = req
            .headers()
            .get(http::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("application/grpc"));
        let labels = is_grpc
            .then(|| {
                let mut parts = req.uri().path().trim_start_matches('/').splitn(2, '/');
                let service = parts.next()?.to_string();
                let method = parts.next()?.to_string();
                Some((call_type(&service, &method), service, method))
            })
            .flatten();
        let fut = self.inner.call(req);
        let Some((kind, service, method)) = labels else {
            return Box::pin(fut);
        };
        let metrics = Arc::clone(&self.status);
        metrics
            .metrics
            .grpc_started
            .with_label_values(&[kind, &service, &method])
            .inc();
        Box::pin(async move {
            let resp = fut.await?;
            let code = resp
                .headers()
                .get("grpc-status")
                .and_then(|v| v.to_str().ok())
                .map_or("OK", code_name);
            metrics
                .metrics
                .grpc_handled
                .with_label_values(&[kind, &service, &method, code])
                .inc();
            Ok(resp)
        })
    }
}
