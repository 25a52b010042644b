//! etcd's HTTP/JSON gateway on the client port, as etcd's grpc-gateway
//! serves it: `POST /v3/<service>/<method>` with the request's JSON form
//! as the body, answered with the response's JSON form (see `json.rs`), or
//! etcd's error body `{"error", "message", "code"}` with grpc-gateway's
//! HTTP status for the gRPC code. Streams (`/v3/watch`,
//! `/v3/lease/keepalive`) answer one `{"result": ...}` object per line.
//! Each path calls the same service code the gRPC API runs, so both answer
//! alike. Programs that speak only this gateway (Python's etcd3gw, scripts
//! with `curl`) work unchanged.

pub mod json;

use std::future::Future;
use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::Router;
use prost::Message;
use rafter_proto::etcdserverpb::cluster_server::Cluster;
use rafter_proto::etcdserverpb::kv_server::Kv;
use rafter_proto::etcdserverpb::lease_server::Lease;
use rafter_proto::etcdserverpb::maintenance_server::Maintenance;
use rafter_proto::etcdserverpb::*;
use tokio_stream::StreamExt;
use tonic::{Code, Status};

use crate::services::cluster::ClusterService;
use crate::services::kv::KvService;
use crate::services::lease::LeaseService;
use crate::services::maintenance::MaintenanceService;
use crate::services::watch::WatchService;

/// The services the gateway calls.
pub struct Services {
    pub kv: KvService,
    pub lease: LeaseService,
    pub maintenance: MaintenanceService,
    pub cluster: ClusterService,
    pub watch: WatchService,
}

/// The HTTP status etcd's gateway (grpc-gateway v1) gives a gRPC code.
fn http_status(code: Code) -> StatusCode {
    match code {
        Code::Ok => StatusCode::OK,
        Code::Cancelled => StatusCode::REQUEST_TIMEOUT,
        Code::InvalidArgument | Code::OutOfRange => StatusCode::BAD_REQUEST,
        Code::FailedPrecondition => StatusCode::PRECONDITION_FAILED,
        Code::DeadlineExceeded => StatusCode::GATEWAY_TIMEOUT,
        Code::NotFound => StatusCode::NOT_FOUND,
        Code::AlreadyExists | Code::Aborted => StatusCode::CONFLICT,
        Code::PermissionDenied => StatusCode::FORBIDDEN,
        Code::Unauthenticated => StatusCode::UNAUTHORIZED,
        Code::ResourceExhausted => StatusCode::TOO_MANY_REQUESTS,
        Code::Unimplemented => StatusCode::NOT_IMPLEMENTED,
        Code::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
        Code::Unknown | Code::Internal | Code::DataLoss => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

fn error_body(status: &Status) -> serde_json::Value {
    serde_json::json!({
        "error": status.message(),
        "message": status.message(),
        "code": status.code() as i32,
    })
}

fn json_response(status: StatusCode, body: &serde_json::Value) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
        .into_response()
}

fn error_response(status: &Status) -> Response {
    json_response(http_status(status.code()), &error_body(status))
}

/// One unary call: JSON request in, JSON response (or error) out.
async fn unary<Req, Resp, F, Fut>(
    request_name: &str,
    response_name: &str,
    body: Bytes,
    call: F,
) -> Response
where
    Req: Message + Default,
    Resp: Message,
    F: FnOnce(Req) -> Fut,
    Fut: Future<Output = Result<tonic::Response<Resp>, Status>>,
{
    let request: Req = match json::decode(request_name, &body) {
        Ok(r) => r,
        Err(e) => return error_response(&Status::invalid_argument(e.0)),
    };
    match call(request).await {
        Ok(resp) => json_response(
            StatusCode::OK,
            &json::encode(response_name, &resp.into_inner()),
        ),
        Err(status) => error_response(&status),
    }
}

/// A route calling `$service.$method` with `$req` → `$resp`.
macro_rules! unary_route {
    ($router:expr, $path:expr, $services:ident . $svc:ident . $method:ident, $req:literal, $resp:literal) => {{
        let services = Arc::clone(&$services);
        $router.route(
            $path,
            post(move |body: Bytes| {
                let services = Arc::clone(&services);
                async move {
                    unary($req, $resp, body, |r| async move {
                        services.$svc.$method(tonic::Request::new(r)).await
                    })
                    .await
                }
            }),
        )
    }};
}

/// The gateway's routes.
pub fn router(services: Services) -> Router {
    let s = Arc::new(services);
    let mut r = Router::new();
    r = unary_route!(
        r,
        "/v3/kv/range",
        s.kv.range,
        "etcdserverpb.RangeRequest",
        "etcdserverpb.RangeResponse"
    );
    r = unary_route!(
        r,
        "/v3/kv/put",
        s.kv.put,
        "etcdserverpb.PutRequest",
        "etcdserverpb.PutResponse"
    );
    r = unary_route!(
        r,
        "/v3/kv/deleterange",
        s.kv.delete_range,
        "etcdserverpb.DeleteRangeRequest",
        "etcdserverpb.DeleteRangeResponse"
    );
    r = unary_route!(
        r,
        "/v3/kv/txn",
        s.kv.txn,
        "etcdserverpb.TxnRequest",
        "etcdserverpb.TxnResponse"
    );
    r = unary_route!(
        r,
        "/v3/kv/compaction",
        s.kv.compact,
        "etcdserverpb.CompactionRequest",
        "etcdserverpb.CompactionResponse"
    );
    r = unary_route!(
        r,
        "/v3/lease/grant",
        s.lease.lease_grant,
        "etcdserverpb.LeaseGrantRequest",
        "etcdserverpb.LeaseGrantResponse"
    );
    // etcd serves revoke, time-to-live and leases under /v3/kv/lease/ too.
    for path in ["/v3/lease/revoke", "/v3/kv/lease/revoke"] {
        r = unary_route!(
            r,
            path,
            s.lease.lease_revoke,
            "etcdserverpb.LeaseRevokeRequest",
            "etcdserverpb.LeaseRevokeResponse"
        );
    }
    for path in ["/v3/lease/timetolive", "/v3/kv/lease/timetolive"] {
        r = unary_route!(
            r,
            path,
            s.lease.lease_time_to_live,
            "etcdserverpb.LeaseTimeToLiveRequest",
            "etcdserverpb.LeaseTimeToLiveResponse"
        );
    }
    for path in ["/v3/lease/leases", "/v3/kv/lease/leases"] {
        r = unary_route!(
            r,
            path,
            s.lease.lease_leases,
            "etcdserverpb.LeaseLeasesRequest",
            "etcdserverpb.LeaseLeasesResponse"
        );
    }
    r = unary_route!(
        r,
        "/v3/maintenance/status",
        s.maintenance.status,
        "etcdserverpb.StatusRequest",
        "etcdserverpb.StatusResponse"
    );
    r = unary_route!(
        r,
        "/v3/cluster/member/list",
        s.cluster.member_list,
        "etcdserverpb.MemberListRequest",
        "etcdserverpb.MemberListResponse"
    );
    let keep_alive = Arc::clone(&s);
    r = r.route(
        "/v3/lease/keepalive",
        post(move |body: Bytes| lease_keep_alive(Arc::clone(&keep_alive), body)),
    );
    let watch = Arc::clone(&s);
    r.route(
        "/v3/watch",
        post(move |body: Bytes| watch_stream(Arc::clone(&watch), body)),
    )
}

/// One line of a streamed answer: `{"result": ...}` or `{"error": ...}`.
fn stream_line<T: Message>(name: &str, item: Result<T, Status>) -> Bytes {
    let value = match item {
        Ok(msg) => serde_json::json!({ "result": json::encode(name, &msg) }),
        Err(status) => serde_json::json!({ "error": {
            "grpc_code": status.code() as i32,
            "http_code": http_status(status.code()).as_u16(),
            "message": status.message(),
            "http_status": http_status(status.code()).canonical_reason().unwrap_or(""),
        }}),
    };
    let mut line = value.to_string().into_bytes();
    line.push(b'\n');
    Bytes::from(line)
}

fn stream_response(body: Body) -> Response {
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "application/json")],
        body,
    )
        .into_response()
}

/// `/v3/lease/keepalive`: the body is one keep-alive; the answer is one line.
async fn lease_keep_alive(s: Arc<Services>, body: Bytes) -> Response {
    let req: LeaseKeepAliveRequest = match json::decode("etcdserverpb.LeaseKeepAliveRequest", &body)
    {
        Ok(r) => r,
        Err(e) => return error_response(&Status::invalid_argument(e.0)),
    };
    let answer = s.lease.keep_alive_once(req.id).await;
    stream_response(Body::from(stream_line(
        "etcdserverpb.LeaseKeepAliveResponse",
        answer,
    )))
}

/// `/v3/watch`: the body is one watch request; the answer streams every
/// watch response, one per line, until the client goes away.
async fn watch_stream(s: Arc<Services>, body: Bytes) -> Response {
    let req: WatchRequest = match json::decode("etcdserverpb.WatchRequest", &body) {
        Ok(r) => r,
        Err(e) => return error_response(&Status::invalid_argument(e.0)),
    };
    // The request side stays open while the response body lives: dropping
    // the body (the client went away) drops `open`, which ends the
    // requests and so the watch stream.
    let (open, requests) = tokio::sync::mpsc::channel::<Result<WatchRequest, Status>>(1);
    if open.send(Ok(req)).await.is_err() {
        return error_response(&Status::unavailable("watch stream closed"));
    }
    let responses = s
        .watch
        .open(tokio_stream::wrappers::ReceiverStream::new(requests));
    let lines = responses.map(move |item| {
        let _keep_open = &open;
        Ok::<_, std::convert::Infallible>(stream_line("etcdserverpb.WatchResponse", item))
    });
    stream_response(Body::from_stream(lines))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grpc_codes_map_as_grpc_gateway_maps_them() {
        assert_eq!(http_status(Code::OutOfRange), StatusCode::BAD_REQUEST);
        assert_eq!(http_status(Code::NotFound), StatusCode::NOT_FOUND);
        assert_eq!(
            http_status(Code::Unavailable),
            StatusCode::SERVICE_UNAVAILABLE
        );
        assert_eq!(
            error_body(&Status::out_of_range(
                "etcdserver: mvcc: required revision is a future revision"
            )),
            serde_json::json!({
                "error": "etcdserver: mvcc: required revision is a future revision",
                "message": "etcdserver: mvcc: required revision is a future revision",
                "code": 11
            })
        );
    }
}
