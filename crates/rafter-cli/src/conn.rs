//! Reaching the cluster: endpoint URLs, dialing with etcdctl's timeouts and
//! failover across `--endpoints`, and running one request under the command
//! timeout (reported as `context deadline exceeded`, as etcdctl does).

use std::future::Future;
use std::time::Duration;

use rafter_proto::etcdserverpb::{
    cluster_client::ClusterClient, kv_client::KvClient, lease_client::LeaseClient,
    maintenance_client::MaintenanceClient, watch_client::WatchClient,
};
use tokio::time::Instant;
use tonic::transport::{Channel, Endpoint};

use crate::error::CliError;
use crate::global::GlobalArgs;

/// Largest response accepted, etcdctl's default (`--max-recv-bytes` 0 means
/// `math.MaxInt32`); tonic's own default of 4 MiB would fail big ranges.
const MAX_RECV_BYTES: usize = i32::MAX as usize;

/// Pause between two rounds of dial attempts over all endpoints.
const REDIAL_PAUSE: Duration = Duration::from_millis(100);

/// Where and how patiently to connect.
#[derive(Debug, Clone)]
pub struct Conn {
    endpoints: Vec<String>,
    dial_timeout: Duration,
    command_timeout: Duration,
}

impl Conn {
    /// A connection plan for all endpoints of the global flags.
    pub fn new(global: &GlobalArgs) -> Self {
        Self::for_endpoints(global, global.endpoint_list())
    }

    /// A connection plan for the given endpoints with the global timeouts.
    pub fn for_endpoints(global: &GlobalArgs, endpoints: Vec<String>) -> Self {
        Self {
            endpoints,
            dial_timeout: global.dial_timeout,
            command_timeout: global.command_timeout,
        }
    }

    /// Runs one request: dials an endpoint, then waits for the answer, all
    /// within the command timeout.
    pub async fn call<T, F, Fut>(&self, request: F) -> Result<T, CliError>
    where
        F: FnOnce(Channel) -> Fut,
        Fut: Future<Output = Result<tonic::Response<T>, tonic::Status>>,
    {
        let deadline = Instant::now() + self.command_timeout;
        let channel = self.dial(deadline).await?;
        match tokio::time::timeout_at(deadline, request(channel)).await {
            Ok(Ok(response)) => Ok(response.into_inner()),
            Ok(Err(status)) => Err(status.into()),
            Err(_) => Err(CliError::deadline_exceeded()),
        }
    }

    /// Dials the endpoints in turn until one answers, however long that
    /// takes: a watch has no command timeout, and etcdctl's watch keeps
    /// trying to reach an endpoint rather than giving up.
    pub async fn connect_patiently(&self) -> Result<Channel, CliError> {
        loop {
            let deadline = Instant::now() + self.dial_timeout.max(REDIAL_PAUSE);
            match self.dial(deadline).await {
                Ok(channel) => return Ok(channel),
                Err(e) if e.message == CliError::deadline_exceeded().message => {
                    tokio::time::sleep(REDIAL_PAUSE).await;
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// A channel to the first endpoint that answers within the command
    /// timeout, for streams that outlive a single request.
    pub async fn channel(&self) -> Result<Channel, CliError> {
        self.dial(Instant::now() + self.command_timeout).await
    }

    /// Dials the endpoints in turn until one answers or the deadline passes.
    async fn dial(&self, deadline: Instant) -> Result<Channel, CliError> {
        let endpoints = self
            .endpoints
            .iter()
            .map(|e| endpoint(e))
            .collect::<Result<Vec<_>, _>>()?;
        if endpoints.is_empty() {
            return Err(CliError::new(
                crate::error::EXIT_BAD_CONNECTION,
                "no endpoints given",
            ));
        }
        loop {
            for ep in &endpoints {
                let left = deadline.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    return Err(CliError::deadline_exceeded());
                }
                let attempt = ep.clone().connect_timeout(self.dial_timeout.min(left));
                if let Ok(Ok(channel)) = tokio::time::timeout_at(deadline, attempt.connect()).await
                {
                    return Ok(channel);
                }
            }
            if Instant::now() + REDIAL_PAUSE >= deadline {
                tokio::time::sleep_until(deadline).await;
                return Err(CliError::deadline_exceeded());
            }
            tokio::time::sleep(REDIAL_PAUSE).await;
        }
    }
}

/// A KV client on `ch` with etcdctl's response size limit.
pub fn kv(ch: Channel) -> KvClient<Channel> {
    KvClient::new(ch).max_decoding_message_size(MAX_RECV_BYTES)
}

/// A Maintenance client on `ch` with etcdctl's response size limit.
pub fn maintenance(ch: Channel) -> MaintenanceClient<Channel> {
    MaintenanceClient::new(ch).max_decoding_message_size(MAX_RECV_BYTES)
}

/// A Watch client on `ch` with etcdctl's response size limit.
pub fn watch(ch: Channel) -> WatchClient<Channel> {
    WatchClient::new(ch).max_decoding_message_size(MAX_RECV_BYTES)
}

/// A Cluster client on `ch` with etcdctl's response size limit.
pub fn cluster(ch: Channel) -> ClusterClient<Channel> {
    ClusterClient::new(ch).max_decoding_message_size(MAX_RECV_BYTES)
}

/// A Lease client on `ch` with etcdctl's response size limit.
pub fn lease(ch: Channel) -> LeaseClient<Channel> {
    LeaseClient::new(ch).max_decoding_message_size(MAX_RECV_BYTES)
}

/// The URL tonic dials for an etcdctl-style endpoint (`host:port`,
/// or `http://host:port`; TLS endpoints are refused).
pub fn url(endpoint: &str) -> Result<String, CliError> {
    if endpoint.starts_with("https://") || endpoint.starts_with("unixs://") {
        return Err(CliError::new(
            crate::error::EXIT_BAD_CONNECTION,
            format!("TLS endpoints are not supported: {endpoint}"),
        ));
    }
    if endpoint.starts_with("http://") {
        Ok(endpoint.to_string())
    } else {
        Ok(format!("http://{endpoint}"))
    }
}

fn endpoint(endpoint: &str) -> Result<Endpoint, CliError> {
    Endpoint::from_shared(url(endpoint)?).map_err(|e| {
        CliError::new(
            crate::error::EXIT_BAD_CONNECTION,
            format!("invalid endpoint {endpoint:?}: {e}"),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_get_a_scheme() {
        assert_eq!(url("127.0.0.1:2379").unwrap(), "http://127.0.0.1:2379");
        assert_eq!(url("http://10.0.0.1:2379").unwrap(), "http://10.0.0.1:2379");
        assert!(url("https://10.0.0.1:2379").is_err());
    }
}
