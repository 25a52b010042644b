//! Opening the gRPC connections a run shares: `--conns` HTTP/2 connections
//! spread round-robin over `--endpoints`, dialed up front so that connection
//! setup is not measured as request latency.

use std::time::Duration;

use tonic::transport::{Channel, Endpoint};

/// How long dialing one connection may take.
const DIAL_TIMEOUT: Duration = Duration::from_secs(5);

/// The URL tonic dials for an endpoint given as `host:port` or
/// `http://host:port` (TLS endpoints are not supported).
pub fn endpoint_url(endpoint: &str) -> Result<String, String> {
    if endpoint.starts_with("https://") {
        return Err(format!("TLS endpoints are not supported: {endpoint}"));
    }
    if endpoint.starts_with("http://") {
        Ok(endpoint.to_string())
    } else {
        Ok(format!("http://{endpoint}"))
    }
}

/// HTTP/2 receive window of one stream on connections that carry watch
/// streams: many watches share a stream, and the default 64 KiB would make
/// the server wait for window updates under a burst of events.
const WATCH_STREAM_WINDOW_BYTES: u32 = 4 << 20;
/// HTTP/2 receive window of a whole connection carrying watch streams.
const WATCH_CONNECTION_WINDOW_BYTES: u32 = 32 << 20;

/// Dials `conns` connections, the i-th to `endpoints[i % endpoints.len()]`.
pub async fn dial(endpoints: &[String], conns: usize) -> Result<Vec<Channel>, String> {
    dial_with(endpoints, conns, |endpoint| endpoint).await
}

/// Dials like [`dial`], with receive windows sized for many busy watch
/// streams on each connection.
pub async fn dial_for_watch(endpoints: &[String], conns: usize) -> Result<Vec<Channel>, String> {
    dial_with(endpoints, conns, |endpoint| {
        endpoint
            .initial_stream_window_size(WATCH_STREAM_WINDOW_BYTES)
            .initial_connection_window_size(WATCH_CONNECTION_WINDOW_BYTES)
    })
    .await
}

async fn dial_with(
    endpoints: &[String],
    conns: usize,
    tune: impl Fn(Endpoint) -> Endpoint,
) -> Result<Vec<Channel>, String> {
    if endpoints.is_empty() {
        return Err("no endpoints given".to_string());
    }
    if conns == 0 {
        return Err("--conns must be at least 1".to_string());
    }
    let mut channels = Vec::with_capacity(conns);
    for endpoint in endpoints.iter().cycle().take(conns) {
        let url = endpoint_url(endpoint)?;
        let endpoint = Endpoint::from_shared(url.clone())
            .map_err(|e| format!("bad endpoint {endpoint:?}: {e}"))?;
        let channel = tune(endpoint)
            .connect_timeout(DIAL_TIMEOUT)
            .tcp_nodelay(true)
            .connect()
            .await
            .map_err(|e| format!("cannot connect to {url}: {e}"))?;
        channels.push(channel);
    }
    Ok(channels)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn adds_a_scheme_and_refuses_tls() {
        assert_eq!(
            endpoint_url("127.0.0.1:2379").unwrap(),
            "http://127.0.0.1:2379"
        );
        assert_eq!(
            endpoint_url("http://127.0.0.1:2379").unwrap(),
            "http://127.0.0.1:2379"
        );
        assert!(endpoint_url("https://127.0.0.1:2379").is_err());
    }
}
