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

/// Dials `conns` connections, the i-th to `endpoints[i % endpoints.len()]`.
pub async fn dial(endpoints: &[String], conns: usize) -> Result<Vec<Channel>, String> {
    if endpoints.is_empty() {
        return Err("no endpoints given".to_string());
    }
    if conns == 0 {
        return Err("--conns must be at least 1".to_string());
    }
    let mut channels = Vec::with_capacity(conns);
    for endpoint in endpoints.iter().cycle().take(conns) {
        let url = endpoint_url(endpoint)?;
        let channel = Endpoint::from_shared(url.clone())
            .map_err(|e| format!("bad endpoint {endpoint:?}: {e}"))?
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
