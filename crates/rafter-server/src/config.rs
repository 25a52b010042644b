//! Command-line configuration of `rafter serve`, using etcd's flag names and
//! defaults so an etcd start script needs no translation.

use clap::Args;

/// Flags of `rafter serve`.
#[derive(Debug, Clone, Args)]
pub struct ServeArgs {
    /// Human-readable name for this member.
    #[arg(long, default_value = "default")]
    pub name: String,
    /// Path to the data directory (default: ./<name>.rafter).
    #[arg(long)]
    pub data_dir: Option<String>,
    /// URLs to listen on for client traffic (comma-separated).
    #[arg(long, default_value = "http://127.0.0.1:2379")]
    pub listen_client_urls: String,
    /// Client URLs advertised to the cluster and clients.
    #[arg(long, default_value = "http://127.0.0.1:2379")]
    pub advertise_client_urls: String,
    /// URLs to listen on for peer traffic.
    #[arg(long, default_value = "http://127.0.0.1:2380")]
    pub listen_peer_urls: String,
    /// Peer URLs advertised to the rest of the cluster.
    #[arg(long, default_value = "http://127.0.0.1:2380")]
    pub initial_advertise_peer_urls: String,
    /// Initial cluster configuration: name=peerURL,... (default: this member alone).
    #[arg(long)]
    pub initial_cluster: Option<String>,
    /// "new" to bootstrap a cluster, "existing" to join one.
    #[arg(long, default_value = "new")]
    pub initial_cluster_state: String,
    /// Token that makes cluster and member ids unique per bootstrap.
    #[arg(long, default_value = "etcd-cluster")]
    pub initial_cluster_token: String,
    /// Maximum client request size in bytes (etcd's default: 1.5 MiB).
    #[arg(long, default_value_t = 1_572_864)]
    pub max_request_bytes: usize,
    /// Maximum operations per transaction (etcd's default).
    #[arg(long, default_value_t = 128)]
    pub max_txn_ops: usize,
    /// Heartbeat interval in milliseconds.
    #[arg(long, default_value_t = 100)]
    pub heartbeat_interval: u64,
    /// Election timeout in milliseconds.
    #[arg(long, default_value_t = 1000)]
    pub election_timeout: u64,
    /// Upper end (exclusive) of the randomized election timeout in
    /// milliseconds (not in etcd; default: twice --election-timeout, as
    /// etcd). Narrow ranges make the Raft loop tick more often.
    #[arg(long)]
    pub election_timeout_max: Option<u64>,
    /// Applied entries between Raft log compactions (etcd's default).
    #[arg(long, default_value_t = 100_000)]
    pub snapshot_count: u64,
    /// Interval of the progress notifications sent to watches created
    /// with `progress_notify` (Go duration; etcd's flag and default).
    #[arg(long, default_value = "10m", value_parser = rafter_proto::godur::parse)]
    pub experimental_watch_progress_notify_interval: std::time::Duration,
    /// The store's space quota in bytes (etcd's flag and semantics): 0 is
    /// etcd's default of 2 GiB, a negative value turns the quota off.
    /// Past it the member raises the NOSPACE alarm and refuses writes that
    /// add data until space is freed (compact, defrag) and the alarm is
    /// disarmed.
    #[arg(long, default_value_t = 0, allow_negative_numbers = true)]
    pub quota_backend_bytes: i64,
    /// Memory the store keeps of its file's pages, in MiB (no etcd
    /// equivalent: etcd maps the whole file, so its resident memory grows
    /// with the data). Pages beyond it are read back through the kernel's
    /// page cache.
    #[arg(long, default_value_t = rafter_storage::mvcc::DEFAULT_CACHE_BYTES >> 20)]
    pub store_cache_size_mb: usize,
    /// Interval of the cross-member consistency check (Go duration; etcd's
    /// flag, which etcd leaves off by default: Rafter runs it every 5
    /// minutes unless given 0s). A member whose HashKV differs from the
    /// leader's at a common revision gets the CORRUPT alarm.
    #[arg(long, default_value = "5m", value_parser = rafter_proto::godur::parse)]
    pub experimental_corrupt_check_time: std::time::Duration,
    /// Compare this member's HashKV with its peers' once at start (etcd's
    /// flag; on by default here).
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set, num_args = 0..=1, default_missing_value = "true")]
    pub experimental_initial_corrupt_check: bool,
    /// URLs to serve /metrics, /health and /version on (HTTP).
    #[arg(long)]
    pub listen_metrics_urls: Option<String>,
}

/// etcd's default space quota (`DefaultQuotaBytes`, 2 GiB).
pub const DEFAULT_QUOTA_BYTES: u64 = 2 * 1024 * 1024 * 1024;

impl ServeArgs {
    /// The space quota in bytes (0: none).
    pub fn quota_bytes(&self) -> u64 {
        match self.quota_backend_bytes {
            0 => DEFAULT_QUOTA_BYTES,
            q if q < 0 => 0,
            q => q as u64,
        }
    }

    /// The data directory: `--data-dir`, or `./<name>.rafter` as etcd's `<name>.etcd`.
    pub fn data_dir(&self) -> std::path::PathBuf {
        match &self.data_dir {
            Some(d) => d.into(),
            None => format!("{}.rafter", self.name).into(),
        }
    }
}
