//! The command line of `rafter bench`: one subcommand per workload plus the
//! stepped-load runner, with etcd `benchmark`-style option names, so that a
//! run is fully described by the command that started it.

use std::time::Duration;

use std::path::PathBuf;

use crate::duration::parse_duration;
use crate::local_cluster::ServerKind;

/// `rafter bench`: load generator speaking the etcd v3 gRPC API.
#[derive(Debug, clap::Args)]
#[command(
    about = "Load generator speaking the etcd v3 API (measures etcd and Rafter alike)",
    long_about = "Load generator speaking the etcd v3 gRPC API, so the same command measures \
etcd and Rafter. Prints a table for people followed by one JSON line (the last line of \
standard output) for scripts."
)]
pub struct BenchCommand {
    #[command(subcommand)]
    pub workload: BenchWorkload,
}

/// What to run.
#[derive(Debug, clap::Subcommand)]
pub enum BenchWorkload {
    /// Put random keys of the key space.
    Put {
        #[command(flatten)]
        cluster: ClusterArgs,
        #[command(flatten)]
        data: DataArgs,
        #[command(flatten)]
        length: LengthArgs,
    },
    /// Get random keys of the (preloaded) key space.
    Get {
        #[command(flatten)]
        cluster: ClusterArgs,
        #[command(flatten)]
        data: DataArgs,
        #[command(flatten)]
        length: LengthArgs,
        #[command(flatten)]
        read: ReadArgs,
    },
    /// Compare-and-swap transactions: put if the key's mod revision (or
    /// value) is the last one this client saw, else read it back.
    TxnCas {
        #[command(flatten)]
        cluster: ClusterArgs,
        #[command(flatten)]
        data: DataArgs,
        #[command(flatten)]
        length: LengthArgs,
        #[command(flatten)]
        cas: CasArgs,
    },
    /// Gets and puts of random keys, `--read-ratio` of them gets.
    Mixed {
        #[command(flatten)]
        cluster: ClusterArgs,
        #[command(flatten)]
        data: DataArgs,
        #[command(flatten)]
        length: LengthArgs,
        #[command(flatten)]
        read: ReadArgs,
        #[command(flatten)]
        mix: MixArgs,
    },
    /// Stepped offered load (seed 004): run a workload at each target rate
    /// for `--step-duration` and report the achieved ops per second.
    Step {
        #[command(flatten)]
        cluster: ClusterArgs,
        #[command(flatten)]
        data: DataArgs,
        #[command(flatten)]
        steps: StepArgs,
        #[command(flatten)]
        read: ReadArgs,
        #[command(flatten)]
        cas: CasArgs,
        #[command(flatten)]
        mix: MixArgs,
    },
    /// Watch delivery (etcd `benchmark watch-latency` style): `--watchers`
    /// watches on one prefix, many per gRPC stream, and a writer putting
    /// keys under it at `--rate`; reports delivery latency (put sent to
    /// event received), delivered events per second and server CPU per
    /// event.
    Watch {
        #[command(flatten)]
        cluster: ClusterArgs,
        #[command(flatten)]
        data: DataArgs,
        #[command(flatten)]
        watch: WatchArgs,
    },
    /// Consistent reads through rafter-client's watch-fed cache next to
    /// direct linearizable gets (and stale cache reads): `--clients`
    /// readers of random keys under `--prefix` for `--duration` per mode,
    /// while a writer puts at `--write-rate`; reports reads/s, latency and
    /// server CPU per read.
    Cache {
        #[command(flatten)]
        cluster: ClusterArgs,
        #[command(flatten)]
        data: DataArgs,
        #[command(flatten)]
        cache: CacheArgs,
    },
    /// Dial sets (Rafter only): `Set(consistent=false)`, acknowledged after
    /// one fsync on the receiving member, next to `Set(consistent=true)`,
    /// acknowledged once committed by a majority; `--clients` writers for
    /// `--duration` per consistency; latency, sets/s and server CPU per set.
    DialSet {
        #[command(flatten)]
        cluster: ClusterArgs,
        #[command(flatten)]
        data: DataArgs,
        #[command(flatten)]
        dial: DialArgs,
    },
    /// Lease keep-alives: grant `--leases` leases, keep every one alive once
    /// per `--keepalive-interval` over a few LeaseKeepAlive streams for
    /// `--duration`, then revoke them; reports keep-alive latency and rate
    /// and each member's CPU time and peak memory.
    Lease {
        #[command(flatten)]
        cluster: ClusterArgs,
        #[command(flatten)]
        lease: LeaseArgs,
    },
    /// Large data: load `--keys` keys in transactions of `--puts-per-txn`
    /// puts, then one Range over the first `--range-keys`; reports the load
    /// rate and CPU, each member's memory, and the Range's latency and the
    /// memory it took (the servers must run on this machine).
    Large {
        #[command(flatten)]
        cluster: ClusterArgs,
        #[command(flatten)]
        data: DataArgs,
        #[command(flatten)]
        large: LargeArgs,
    },
    /// Leader failover (Raft paper figure 16): start a local cluster, crash
    /// its leader with SIGKILL over and over, and measure the time until a
    /// new leader and until the first acknowledged write; CSV and PNG CDFs.
    Election(ElectionArgs),
    /// Defragmentation under load: fill a member, delete half, compact,
    /// then defragment while writers and linearizable readers run; reports
    /// the file sizes and the requests' latency and longest stall during it.
    Defrag(crate::defrag::DefragArgs),
}

/// The election benchmark's settings.
#[derive(Debug, Clone, clap::Args)]
pub struct ElectionArgs {
    /// The implementation to run: rafter (`serve` of this binary) or etcd.
    #[arg(long, value_enum, default_value_t = ServerKind::Rafter)]
    pub server: ServerKind,
    /// The etcd program for --server etcd.
    #[arg(long, default_value = "etcd")]
    pub etcd_binary: PathBuf,
    /// Members of the cluster (at least 3).
    #[arg(long, default_value_t = 3)]
    pub members: usize,
    /// Raft heartbeat interval.
    #[arg(long = "heartbeat-interval", value_name = "MS", default_value_t = 10)]
    pub heartbeat_interval_ms: u64,
    /// Election timeout ranges to measure, comma separated: `T` for etcd's
    /// and Rafter's default range [T, 2T), or `MIN-MAX` for [MIN, MAX)
    /// (Rafter only, via its --election-timeout-max; the paper's 150-155).
    #[arg(
        long = "election-timeouts",
        value_name = "T|MIN-MAX,...",
        value_delimiter = ',',
        default_value = "100,150,200"
    )]
    pub election_ranges: Vec<ElectionRange>,
    /// Leader crashes per election timeout range.
    #[arg(long, default_value_t = 100)]
    pub trials: usize,
    /// Where the CSV files and PNG plots go.
    #[arg(long, default_value = "bench-election")]
    pub out_dir: PathBuf,
    /// What to print: the table, the JSON line, or both (table first).
    #[arg(long, value_enum, default_value_t = OutputFormat::Both)]
    pub output: OutputFormat,
}

/// A randomized election timeout range [min, max) in milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ElectionRange {
    pub min_ms: u64,
    pub max_ms: u64,
}

impl ElectionRange {
    /// etcd's range for `--election-timeout T`, the only one etcd has.
    pub fn is_default(&self) -> bool {
        self.max_ms == 2 * self.min_ms
    }

    pub fn label(&self) -> String {
        format!("{}-{}", self.min_ms, self.max_ms)
    }
}

impl std::str::FromStr for ElectionRange {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        let number = |part: &str| {
            part.trim()
                .parse::<u64>()
                .map_err(|_| format!("{text:?} is not T or MIN-MAX in milliseconds"))
        };
        let range = match text.split_once('-') {
            None => {
                let min_ms = number(text)?;
                ElectionRange {
                    min_ms,
                    max_ms: 2 * min_ms,
                }
            }
            Some((min, max)) => ElectionRange {
                min_ms: number(min)?,
                max_ms: number(max)?,
            },
        };
        if range.min_ms == 0 || range.max_ms <= range.min_ms {
            return Err(format!("election timeout range {text:?} is empty"));
        }
        Ok(range)
    }
}

/// Where to send load and through how many connections and clients.
#[derive(Debug, Clone, clap::Args)]
pub struct ClusterArgs {
    /// Client URLs or host:port pairs, comma separated.
    #[arg(long, value_delimiter = ',', default_value = "127.0.0.1:2379")]
    pub endpoints: Vec<String>,
    /// gRPC connections (HTTP/2), spread over the endpoints round-robin.
    #[arg(long, default_value_t = 1)]
    pub conns: usize,
    /// Concurrent clients, each with one request in flight, spread over the
    /// connections round-robin.
    #[arg(long, default_value_t = 1)]
    pub clients: usize,
    /// A request not answered within this long counts as a DeadlineExceeded error.
    #[arg(long, value_parser = parse_duration, default_value = "10s")]
    pub request_timeout: Duration,
    /// Rafter only: each client opens a client session and tags its
    /// mutations with it (exactly-once; `rafter-session-id` and
    /// `rafter-seq` gRPC metadata), to measure what sessions cost.
    #[arg(long)]
    pub session: bool,
    /// What to print: the table, the JSON line, or both (table first).
    #[arg(long, value_enum, default_value_t = OutputFormat::Both)]
    pub output: OutputFormat,
}

/// The shape of the data written and read.
#[derive(Debug, Clone, clap::Args)]
pub struct DataArgs {
    /// Key size in bytes (keys are zero-padded decimal numbers).
    #[arg(long = "key-size", value_name = "BYTES", default_value_t = 8)]
    pub key_size_bytes: usize,
    /// Value size in bytes.
    #[arg(long = "val-size", value_name = "BYTES", default_value_t = 8)]
    pub val_size_bytes: usize,
    /// Number of distinct keys used.
    #[arg(long = "key-space", value_name = "KEYS", default_value_t = 1000)]
    pub key_space_keys: u64,
}

/// How long a run lasts and how fast load is offered.
#[derive(Debug, Clone, clap::Args)]
pub struct LengthArgs {
    /// Operations to run in total (default 10000 when --duration is not given).
    #[arg(long = "total", value_name = "OPS", conflicts_with = "duration")]
    pub total_ops: Option<u64>,
    /// Run for this long instead of a number of operations (e.g. 10s).
    #[arg(long, value_parser = parse_duration)]
    pub duration: Option<Duration>,
    /// Target rate in operations per second over all clients; operations
    /// are scheduled at fixed intervals (open loop while enough clients are
    /// free). Unlimited when not given.
    #[arg(long = "rate", value_name = "OPS_PER_S")]
    pub rate_ops_per_s: Option<f64>,
}

/// Which consistency `rafter bench dial-set` measures.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum DialMode {
    Consistent,
    Local,
}

impl DialMode {
    pub fn label(self) -> &'static str {
        match self {
            DialMode::Consistent => "consistent",
            DialMode::Local => "local",
        }
    }
}

/// The phases of `rafter bench dial-set`.
#[derive(Debug, Clone, clap::Args)]
pub struct DialArgs {
    /// The consistencies to measure, one phase each, in this order.
    #[arg(
        long,
        value_enum,
        value_delimiter = ',',
        default_value = "consistent,local"
    )]
    pub modes: Vec<DialMode>,
    /// How long each phase lasts.
    #[arg(long, value_parser = parse_duration, default_value = "10s")]
    pub duration: Duration,
    /// The prefix the keys live under.
    #[arg(long, default_value = "/bench-dial/")]
    pub prefix: String,
}

/// How `rafter bench cache` reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum CacheMode {
    /// A linearizable Range per read.
    Direct,
    /// `Freshness::Consistent` reads through one shared cache.
    Consistent,
    /// `Freshness::Stale` reads through one shared cache.
    Stale,
}

impl CacheMode {
    pub fn label(self) -> &'static str {
        match self {
            CacheMode::Direct => "direct",
            CacheMode::Consistent => "consistent",
            CacheMode::Stale => "stale",
        }
    }
}

/// The phases and the writer of `rafter bench cache`.
#[derive(Debug, Clone, clap::Args)]
pub struct CacheArgs {
    /// The modes to measure, one phase each, in this order.
    #[arg(
        long,
        value_enum,
        value_delimiter = ',',
        default_value = "direct,consistent,stale"
    )]
    pub modes: Vec<CacheMode>,
    /// How long each phase lasts.
    #[arg(long, value_parser = parse_duration, default_value = "10s")]
    pub duration: Duration,
    /// Puts per second to random keys under the prefix during every phase.
    #[arg(
        long = "write-rate",
        value_name = "PUTS_PER_S",
        default_value_t = 100.0
    )]
    pub write_rate_puts_per_s: f64,
    /// The prefix the cache holds and the keys live under.
    #[arg(long, default_value = "/bench-cache/")]
    pub prefix: String,
    /// Server processes whose CPU time is measured (comma separated);
    /// default: the processes listening on the endpoints' ports.
    #[arg(long = "server-pids", value_name = "PID,...", value_delimiter = ',')]
    pub server_pids: Vec<u32>,
}

/// The data of `rafter bench large`.
#[derive(Debug, Clone, clap::Args)]
pub struct LargeArgs {
    /// Keys written (0..KEYS), once each.
    #[arg(long = "keys", value_name = "KEYS", default_value_t = 1_000_000)]
    pub keys: u64,
    /// Puts per transaction while loading (etcd's default limit is 128).
    #[arg(long = "puts-per-txn", value_name = "PUTS", default_value_t = 100)]
    pub puts_per_txn: usize,
    /// Keys the Range covers (the first ones).
    #[arg(long = "range-keys", value_name = "KEYS", default_value_t = 100_000)]
    pub range_keys: u64,
}

/// The watchers and the writer of `rafter bench watch`.
#[derive(Debug, Clone, clap::Args)]
pub struct WatchArgs {
    /// Watches in total, all on the same prefix (each put is delivered to
    /// every one of them).
    #[arg(long = "watchers", value_name = "WATCHES", default_value_t = 1000)]
    pub watchers: usize,
    /// Watches multiplexed on one gRPC Watch stream; the streams are spread
    /// over the `--conns` connections round-robin.
    #[arg(
        long = "watchers-per-stream",
        value_name = "WATCHES",
        default_value_t = 100
    )]
    pub watchers_per_stream: usize,
    /// The prefix watched and written under.
    #[arg(long, default_value = "/bench-watch/")]
    pub prefix: String,
    /// Puts per second the writer offers (the `--clients` share it).
    #[arg(long = "rate", value_name = "PUTS_PER_S", default_value_t = 100.0)]
    pub rate_puts_per_s: f64,
    /// How long the writer puts.
    #[arg(long, value_parser = parse_duration, default_value = "10s")]
    pub duration: Duration,
    /// After the last put, how long to wait for events still on their way.
    #[arg(long, value_parser = parse_duration, default_value = "10s")]
    pub drain_timeout: Duration,
    /// Server processes whose CPU time is measured (comma separated);
    /// default: the processes listening on the endpoints' ports.
    #[arg(long = "server-pids", value_name = "PID,...", value_delimiter = ',')]
    pub server_pids: Vec<u32>,
}

/// The leases of `rafter bench lease`.
#[derive(Debug, Clone, clap::Args)]
pub struct LeaseArgs {
    /// Leases granted and kept alive.
    #[arg(long = "leases", value_name = "LEASES", default_value_t = 10_000)]
    pub leases: usize,
    /// TTL of every lease.
    #[arg(long = "ttl", value_name = "SECONDS", default_value_t = 60)]
    pub ttl_s: i64,
    /// How often each lease is kept alive (spread evenly over the interval).
    #[arg(long, value_parser = parse_duration, default_value = "1s")]
    pub keepalive_interval: Duration,
    /// LeaseKeepAlive streams the leases are multiplexed on, spread over
    /// the `--conns` connections round-robin.
    #[arg(
        long = "keepalive-streams",
        value_name = "STREAMS",
        default_value_t = 4
    )]
    pub keepalive_streams: usize,
    /// How long the leases are kept alive.
    #[arg(long, value_parser = parse_duration, default_value = "10s")]
    pub duration: Duration,
    /// After the last keep-alive is sent, how long to wait for responses.
    #[arg(long, value_parser = parse_duration, default_value = "5s")]
    pub drain_timeout: Duration,
    /// Leave the leases to expire instead of revoking them at the end.
    #[arg(long)]
    pub no_revoke: bool,
    /// Server processes, one per endpoint in the same order, whose CPU time
    /// and memory are measured; default: the process listening on each
    /// endpoint's port.
    #[arg(long = "server-pids", value_name = "PID,...", value_delimiter = ',')]
    pub server_pids: Vec<u32>,
}

/// Read consistency.
#[derive(Debug, Clone, clap::Args)]
pub struct ReadArgs {
    /// l: linearizable, s: serializable (served locally by the member).
    #[arg(long, value_enum, default_value_t = Consistency::Linearizable)]
    pub consistency: Consistency,
}

/// What compare-and-swap compares.
#[derive(Debug, Clone, clap::Args)]
pub struct CasArgs {
    /// Compare the key's mod revision or its value with the last one seen.
    #[arg(long = "cas-on", value_enum, default_value_t = CasCompare::ModRevision)]
    pub compare: CasCompare,
}

/// The read share of a mixed workload.
#[derive(Debug, Clone, clap::Args)]
pub struct MixArgs {
    /// Fraction of operations that are gets (0.0 to 1.0).
    #[arg(long, default_value_t = 0.9)]
    pub read_ratio: f64,
}

/// The steps of a stepped-load run.
#[derive(Debug, Clone, clap::Args)]
pub struct StepArgs {
    /// Target rates in operations per second, one step each, comma separated.
    #[arg(
        long = "rates",
        value_name = "OPS_PER_S,...",
        value_delimiter = ',',
        required = true
    )]
    pub rates_ops_per_s: Vec<f64>,
    /// How long each step lasts.
    #[arg(long, value_parser = parse_duration, default_value = "10s")]
    pub step_duration: Duration,
    /// The workload run at each step.
    #[arg(long, value_enum, default_value_t = StepWorkload::TxnCas)]
    pub workload: StepWorkload,
}

/// Workloads a stepped run can offer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum StepWorkload {
    Put,
    Get,
    TxnCas,
    Mixed,
}

/// Read consistency levels, named as etcd's `benchmark range --consistency`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Consistency {
    /// Linearizable.
    #[value(name = "l")]
    Linearizable,
    /// Serializable.
    #[value(name = "s")]
    Serializable,
}

/// What a compare-and-swap transaction compares.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum CasCompare {
    /// The key's mod revision.
    #[value(name = "mod")]
    ModRevision,
    /// The key's value.
    #[value(name = "value")]
    Value,
}

/// Output selection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum OutputFormat {
    Both,
    Table,
    Json,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn election_ranges_parse() {
        let parse = |text: &str| text.parse::<ElectionRange>();
        assert_eq!(
            parse("150"),
            Ok(ElectionRange {
                min_ms: 150,
                max_ms: 300
            })
        );
        assert!(parse("150").unwrap().is_default());
        let narrow = parse("150-155").unwrap();
        assert_eq!((narrow.min_ms, narrow.max_ms), (150, 155));
        assert!(!narrow.is_default());
        assert_eq!(narrow.label(), "150-155");
        for bad in ["", "x", "150-150", "150-100", "0", "-5"] {
            assert!(parse(bad).is_err(), "{bad:?} parsed");
        }
    }
}
