//! `rafter bench watch`: how fast and how cheaply a server fans one writer's
//! puts out to many watchers, in the style of etcd's `benchmark
//! watch-latency`. It exists because watch fan-out (Kubernetes' informers:
//! thousands of watches on a few prefixes) costs a server differently from
//! request/response traffic, and the other workloads never exercise it.
//!
//! `--watchers` watches on one prefix are multiplexed, `--watchers-per-stream`
//! to a gRPC Watch stream (server-chosen watch ids), the streams spread over
//! `--conns` connections: 10,000 watches take 100 streams on a few
//! connections, not 10,000 of either, which keeps the load generator light
//! enough to share a 2-core machine with the server. Once every watch is
//! created, `--clients` writers put keys under the prefix (the prefix and a
//! `--key-size`-digit key number, cycling through `--key-space`) at `--rate`
//! for `--duration`. Each value starts with the time its put was sent
//! (nanoseconds since the run's reference instant, 16 hex digits), so a
//! delivered event's latency is its receive time minus its put's send time,
//! whichever stream it arrives on; values are at least 16 bytes long. After the last put the run waits up to
//! `--drain-timeout` for the events still on their way.
//!
//! Reported: the puts as the put workload reports them, delivery latency
//! percentiles, delivered events per second, events that never arrived,
//! and the CPU time of the server processes (and of the load generator)
//! over the measured span, per delivered event.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use hdrhistogram::Histogram;
use rafter_proto::etcdserverpb::kv_client::KvClient;
use rafter_proto::etcdserverpb::watch_client::WatchClient;
use rafter_proto::etcdserverpb::watch_request::RequestUnion;
use rafter_proto::etcdserverpb::{PutRequest, WatchCreateRequest, WatchRequest};
use serde::Serialize;
use tokio::sync::{mpsc, oneshot, watch};
use tokio::time::Instant;
use tokio_stream::wrappers::ReceiverStream;
use tonic::transport::Channel;

use crate::args::{ClusterArgs, DataArgs, WatchArgs};
use crate::conn::dial_for_watch;
use crate::report::{ms, notes, settings_line, Latency, RunFigures, Settings};
use crate::runner::RunResult;
use crate::schedule::{RunLength, Schedule};
use crate::server_cpu;
use crate::stats::Recorder;
use crate::workload::{OpKind, OpOutcome, Workload};

/// Hex digits of the send time at the start of every value.
const STAMP_LEN_BYTES: usize = 16;
/// Largest delivery latency tracked exactly: one minute.
const MAX_TRACKED_LATENCY_US: u64 = 60_000_000;
/// How long creating every watch may take.
const SETUP_TIMEOUT: Duration = Duration::from_secs(120);
/// How often the drain checks whether every event has arrived.
const DRAIN_POLL_INTERVAL: Duration = Duration::from_millis(5);
/// Largest watch response accepted (a burst of events for one watch).
const MAX_WATCH_RESPONSE_BYTES: usize = 64 << 20;

/// Runs the benchmark and prints its report.
pub async fn run(cluster: &ClusterArgs, data: &DataArgs, args: &WatchArgs) -> Result<(), String> {
    if args.watchers == 0 || args.watchers_per_stream == 0 {
        return Err("--watchers and --watchers-per-stream must be at least 1".to_string());
    }
    if cluster.clients == 0 {
        return Err("--clients must be at least 1".to_string());
    }
    if args.rate_puts_per_s.is_nan() || args.rate_puts_per_s <= 0.0 {
        return Err(format!(
            "--rate {} is not a positive rate",
            args.rate_puts_per_s
        ));
    }
    if data.key_space_keys == 0 {
        return Err("--key-space must be at least 1".to_string());
    }
    let stream_count = args.watchers.div_ceil(args.watchers_per_stream);
    let channels = dial_for_watch(&cluster.endpoints, cluster.conns).await?;
    let server_pids = if args.server_pids.is_empty() {
        server_cpu::find_listeners(&cluster.endpoints)
    } else {
        args.server_pids.clone()
    };
    let prefix = args.prefix.as_bytes().to_vec();
    let create = WatchCreateRequest {
        key: prefix.clone(),
        range_end: prefix_end(&prefix),
        ..Default::default()
    };

    // The watches: every stream reports once all of its watches exist.
    let clock = Instant::now();
    let shared = Arc::new(Shared {
        clock,
        writing_since: OnceLock::new(),
        delivered_events: AtomicU64::new(0),
    });
    let (stop, stopped) = watch::channel(false);
    let mut streams = Vec::with_capacity(stream_count);
    let mut readiness = Vec::with_capacity(stream_count);
    for stream_index in 0..stream_count {
        let first = stream_index * args.watchers_per_stream;
        let watches = args.watchers_per_stream.min(args.watchers - first);
        let (ready, is_ready) = oneshot::channel();
        readiness.push(is_ready);
        streams.push(tokio::spawn(watch_stream(
            channels[stream_index % channels.len()].clone(),
            create.clone(),
            watches,
            shared.clone(),
            stopped.clone(),
            ready,
        )));
    }
    let setup_started = Instant::now();
    for is_ready in readiness {
        match tokio::time::timeout_at(setup_started + SETUP_TIMEOUT, is_ready).await {
            Ok(Ok(Ok(()))) => {}
            Ok(Ok(Err(why))) => return Err(format!("creating the watches failed: {why}")),
            Ok(Err(_)) => return Err("a watch stream ended while being set up".to_string()),
            Err(_) => {
                return Err(format!(
                    "the watches were not all created within {SETUP_TIMEOUT:?}"
                ))
            }
        }
    }
    let setup = setup_started.elapsed();

    // The writers, then the drain.
    let server_cpu_before = server_cpu::total_cpu(&server_pids);
    let own_cpu_before = server_cpu::own_cpu();
    let schedule = Arc::new(Schedule::new(
        RunLength::For(args.duration),
        Some(args.rate_puts_per_s),
    ));
    let _ = shared.writing_since.set(schedule.start());
    let value_size_bytes = data.val_size_bytes.max(STAMP_LEN_BYTES);
    let key_counter = Arc::new(AtomicU64::new(0));
    let writers: Vec<_> = (0..cluster.clients)
        .map(|client_index| {
            let writer = Writer {
                kv: KvClient::new(channels[client_index % channels.len()].clone()),
                prefix: prefix.clone(),
                key_size_bytes: data.key_size_bytes,
                key_space_keys: data.key_space_keys,
                key_counter: key_counter.clone(),
                value_size_bytes,
                clock,
                request_timeout: cluster.request_timeout,
            };
            tokio::spawn(writer.run(schedule.clone()))
        })
        .collect();
    let mut puts = Recorder::new();
    for writer in writers {
        puts.merge(&writer.await.expect("a writer panicked"));
    }
    let writing_ended = Instant::now();
    let put_count = puts.latency_us(OpKind::Put).len();
    let expected_events = put_count * args.watchers as u64;
    let drain_deadline = writing_ended + args.drain_timeout;
    while shared.delivered_events.load(Ordering::Relaxed) < expected_events
        && Instant::now() < drain_deadline
    {
        tokio::time::sleep(DRAIN_POLL_INTERVAL).await;
    }
    let server_cpu_spent = server_cpu::total_cpu(&server_pids).saturating_sub(server_cpu_before);
    let own_cpu_spent = server_cpu::own_cpu()
        .zip(own_cpu_before)
        .map(|(after, before)| after.saturating_sub(before));
    let _ = stop.send(true);
    let mut delivery = StreamStats::new();
    for stream in streams {
        delivery.merge(stream.await.expect("a watch stream panicked"));
    }

    let figures = RunFigures::of(
        &RunResult {
            recorder: puts,
            elapsed: writing_ended - schedule.start(),
        },
        Workload::Put,
        Some(args.rate_puts_per_s),
        None,
    );
    let measured = delivery
        .last_delivery
        .map_or(writing_ended, |last| last.max(writing_ended))
        - schedule.start();
    let delivered = delivery.latency_us.len();
    let watch = WatchFigures {
        watchers: args.watchers,
        watchers_per_stream: args.watchers_per_stream,
        streams: stream_count,
        setup_ms: setup.as_millis() as u64,
        events_expected: expected_events,
        events_delivered: delivered,
        events_missing: expected_events.saturating_sub(delivered),
        measured_ms: measured.as_millis() as u64,
        delivered_events_per_s: round1(delivered as f64 / measured.as_secs_f64().max(1e-9)),
        delivery_latency: Latency::of(&delivery.latency_us),
        events_per_second: delivery.events_per_second,
        stream_errors: delivery.errors,
        first_stream_error: delivery.first_error,
        server_pids: server_pids.clone(),
        server_cpu_ms: (!server_pids.is_empty()).then_some(server_cpu_spent.as_millis() as u64),
        server_cpu_us_per_event: (!server_pids.is_empty() && delivered > 0)
            .then(|| round1(server_cpu_spent.as_micros() as f64 / delivered as f64)),
        bench_cpu_ms: own_cpu_spent.map(|cpu| cpu.as_millis() as u64),
    };
    let report = WatchReport {
        settings: Settings {
            workload: "watch".to_string(),
            endpoints: cluster.endpoints.clone(),
            conns: cluster.conns,
            clients: cluster.clients,
            key_size_bytes: data.key_size_bytes,
            val_size_bytes: value_size_bytes,
            key_space_keys: data.key_space_keys,
            consistency: None,
            cas_on: None,
            read_ratio: None,
            watchers: Some(args.watchers),
            watch_streams: Some(stream_count),
        },
        figures,
        watch,
    };
    crate::print(cluster.output, &report.table(), &report);
    Ok(())
}

/// What all watch streams share.
struct Shared {
    /// The instant the send times in values count from.
    clock: Instant,
    /// When the writers started (events per second count from here).
    writing_since: OnceLock<Instant>,
    /// Events received so far on all streams (for the drain).
    delivered_events: AtomicU64,
}

/// One writer client: puts when the shared schedule says so.
struct Writer {
    kv: KvClient<Channel>,
    prefix: Vec<u8>,
    key_size_bytes: usize,
    key_space_keys: u64,
    key_counter: Arc<AtomicU64>,
    value_size_bytes: usize,
    clock: Instant,
    request_timeout: Duration,
}

impl Writer {
    async fn run(mut self, schedule: Arc<Schedule>) -> Recorder {
        let mut recorder = Recorder::new();
        while let Some(due) = schedule.take() {
            tokio::time::sleep_until(due).await;
            let key_index = self.key_counter.fetch_add(1, Ordering::Relaxed) % self.key_space_keys;
            let mut key = self.prefix.clone();
            key.extend(format!("{key_index:0width$}", width = self.key_size_bytes).bytes());
            let sent = Instant::now();
            let value = stamped_value(sent - self.clock, self.value_size_bytes);
            let request = PutRequest {
                key,
                value,
                ..Default::default()
            };
            let result =
                match tokio::time::timeout(self.request_timeout, self.kv.put(request)).await {
                    Ok(Ok(_)) => Ok(OpOutcome::Done),
                    Ok(Err(status)) => Err(status),
                    Err(_) => Err(tonic::Status::deadline_exceeded(
                        "request timed out in the load generator",
                    )),
                };
            let answered = Instant::now();
            recorder.record(
                OpKind::Put,
                &result,
                answered - sent,
                answered - schedule.start(),
            );
        }
        recorder
    }
}

/// A value of `size_bytes` (at least [`STAMP_LEN_BYTES`]) starting with
/// `since_clock` in nanoseconds as 16 hex digits, padded with dots.
fn stamped_value(since_clock: Duration, size_bytes: usize) -> Vec<u8> {
    let nanos = u64::try_from(since_clock.as_nanos()).unwrap_or(u64::MAX);
    let mut value = format!("{nanos:016x}").into_bytes();
    value.resize(size_bytes.max(STAMP_LEN_BYTES), b'.');
    value
}

/// The send time stamped into a value by [`stamped_value`].
fn value_stamp(value: &[u8]) -> Option<Duration> {
    let digits = std::str::from_utf8(value.get(..STAMP_LEN_BYTES)?).ok()?;
    u64::from_str_radix(digits, 16)
        .ok()
        .map(Duration::from_nanos)
}

/// The range end of a prefix watch (the prefix with its last byte below
/// 0xff incremented; `\0`, the end of the keyspace, when there is none).
fn prefix_end(prefix: &[u8]) -> Vec<u8> {
    match prefix.iter().rposition(|&b| b < 0xff) {
        Some(i) => {
            let mut end = prefix[..=i].to_vec();
            end[i] += 1;
            end
        }
        None => vec![0],
    }
}

/// What one stream (or, merged, all of them) received.
struct StreamStats {
    latency_us: Histogram<u64>,
    events_per_second: Vec<u64>,
    last_delivery: Option<Instant>,
    errors: u64,
    first_error: Option<String>,
}

impl StreamStats {
    fn new() -> Self {
        Self {
            latency_us: Histogram::new_with_bounds(1, MAX_TRACKED_LATENCY_US, 3)
                .expect("valid histogram bounds"),
            events_per_second: Vec::new(),
            last_delivery: None,
            errors: 0,
            first_error: None,
        }
    }

    fn error(&mut self, why: String) {
        self.errors += 1;
        self.first_error.get_or_insert(why);
    }

    fn merge(&mut self, other: StreamStats) {
        self.latency_us
            .add(&other.latency_us)
            .expect("histograms with equal bounds");
        if self.events_per_second.len() < other.events_per_second.len() {
            self.events_per_second
                .resize(other.events_per_second.len(), 0);
        }
        for (mine, theirs) in self
            .events_per_second
            .iter_mut()
            .zip(&other.events_per_second)
        {
            *mine += theirs;
        }
        self.last_delivery = self.last_delivery.max(other.last_delivery);
        self.errors += other.errors;
        if self.first_error.is_none() {
            self.first_error = other.first_error;
        }
    }
}

/// One gRPC Watch stream carrying `watches` watches of `create`: sends all
/// the create requests at once, says `ready` when every one is created,
/// then times every event until `stop`.
async fn watch_stream(
    channel: Channel,
    create: WatchCreateRequest,
    watches: usize,
    shared: Arc<Shared>,
    mut stop: watch::Receiver<bool>,
    ready: oneshot::Sender<Result<(), String>>,
) -> StreamStats {
    let mut stats = StreamStats::new();
    let mut ready = Some(ready);
    let (requests, outgoing) = mpsc::channel(watches);
    for _ in 0..watches {
        let request = WatchRequest {
            request_union: Some(RequestUnion::CreateRequest(create.clone())),
        };
        // The receiver is alive and has room for every create.
        let _ = requests.send(request).await;
    }
    let mut client = WatchClient::new(channel).max_decoding_message_size(MAX_WATCH_RESPONSE_BYTES);
    let mut responses = match client.watch(ReceiverStream::new(outgoing)).await {
        Ok(response) => response.into_inner(),
        Err(status) => {
            let why = format!("{:?}: {}", status.code(), status.message());
            if let Some(ready) = ready.take() {
                let _ = ready.send(Err(why.clone()));
            }
            stats.error(why);
            return stats;
        }
    };
    let mut created = 0;
    loop {
        let message = tokio::select! {
            _ = stop.changed() => break,
            message = responses.message() => message,
        };
        let response = match message {
            Ok(Some(response)) => response,
            Ok(None) => {
                stats.error("the server closed the watch stream".to_string());
                break;
            }
            Err(status) => {
                let why = format!("{:?}: {}", status.code(), status.message());
                if let Some(ready) = ready.take() {
                    let _ = ready.send(Err(why.clone()));
                }
                stats.error(why);
                break;
            }
        };
        if response.created {
            created += 1;
            if created == watches {
                if let Some(ready) = ready.take() {
                    let _ = ready.send(Ok(()));
                }
            }
        }
        if response.canceled {
            let why = format!("watch canceled: {}", response.cancel_reason);
            if let Some(ready) = ready.take() {
                let _ = ready.send(Err(why.clone()));
            }
            stats.error(why);
        }
        if response.events.is_empty() {
            continue;
        }
        let received = Instant::now();
        for event in &response.events {
            let Some(sent) = event.kv.as_ref().and_then(|kv| value_stamp(&kv.value)) else {
                continue;
            };
            let latency = received.saturating_duration_since(shared.clock + sent);
            let latency_us = u64::try_from(latency.as_micros()).unwrap_or(u64::MAX);
            stats.latency_us.saturating_record(latency_us.max(1));
        }
        let count = response.events.len() as u64;
        if let Some(since) = shared.writing_since.get() {
            let second = received.saturating_duration_since(*since).as_secs() as usize;
            if stats.events_per_second.len() <= second {
                stats.events_per_second.resize(second + 1, 0);
            }
            stats.events_per_second[second] += count;
        }
        stats.last_delivery = Some(received);
        shared.delivered_events.fetch_add(count, Ordering::Relaxed);
    }
    drop(requests);
    stats
}

fn round1(value: f64) -> f64 {
    (value * 10.0).round() / 10.0
}

/// The watch side of the report.
#[derive(Debug, Clone, Serialize)]
pub struct WatchFigures {
    pub watchers: usize,
    pub watchers_per_stream: usize,
    pub streams: usize,
    /// Time to create every watch.
    pub setup_ms: u64,
    /// Acknowledged puts × watchers.
    pub events_expected: u64,
    pub events_delivered: u64,
    pub events_missing: u64,
    /// From the first put until the last event arrived.
    pub measured_ms: u64,
    pub delivered_events_per_s: f64,
    /// From a put's send to its event's arrival.
    pub delivery_latency: Latency,
    /// Events received in each second since the first put.
    pub events_per_second: Vec<u64>,
    pub stream_errors: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub first_stream_error: Option<String>,
    /// The server processes measured (empty: none found, no CPU figures).
    pub server_pids: Vec<u32>,
    /// Their CPU time (user + system) from the first put to the drain's end.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub server_cpu_ms: Option<u64>,
    /// That CPU time per delivered event (puts included).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub server_cpu_us_per_event: Option<f64>,
    /// The load generator's own CPU time over the same span.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bench_cpu_ms: Option<u64>,
}

/// The report of a watch run: the puts as a put run reports them, plus the
/// watch figures.
#[derive(Debug, Clone, Serialize)]
pub struct WatchReport {
    pub settings: Settings,
    #[serde(flatten)]
    pub figures: RunFigures,
    pub watch: WatchFigures,
}

impl WatchReport {
    /// The table for people.
    pub fn table(&self) -> String {
        use std::fmt::Write as _;
        let (f, w) = (&self.figures, &self.watch);
        let mut text = format!("{}\n", settings_line(&self.settings));
        let _ = writeln!(
            text,
            "{:<6} {:>9} {:>7} {:>11} {:>9} {:>9} {:>9} {:>9}",
            "op", "count", "errors", "per s", "p50 ms", "p90 ms", "p99 ms", "max ms"
        );
        let row =
            |text: &mut String, name: &str, count: u64, errors: u64, rate: f64, l: &Latency| {
                let _ = writeln!(
                    text,
                    "{:<6} {:>9} {:>7} {:>11.1} {:>9} {:>9} {:>9} {:>9}",
                    name,
                    count,
                    errors,
                    rate,
                    ms(l.p50_us as f64),
                    ms(l.p90_us as f64),
                    ms(l.p99_us as f64),
                    ms(l.max_us as f64)
                );
            };
        row(
            &mut text,
            "put",
            f.ops,
            f.errors,
            f.throughput_ops_per_s,
            &f.latency,
        );
        row(
            &mut text,
            "event",
            w.events_delivered,
            w.stream_errors,
            w.delivered_events_per_s,
            &w.delivery_latency,
        );
        let _ = writeln!(
            text,
            "delivered {} of {} events ({} missing) in {} ms; {} watches created in {} ms",
            w.events_delivered,
            w.events_expected,
            w.events_missing,
            w.measured_ms,
            w.watchers,
            w.setup_ms
        );
        match (w.server_cpu_ms, w.server_cpu_us_per_event) {
            (Some(cpu_ms), per_event) => {
                let pids: Vec<String> = w.server_pids.iter().map(u32::to_string).collect();
                let _ = write!(text, "server CPU: {cpu_ms} ms (pids {})", pids.join(","));
                if let Some(us) = per_event {
                    let _ = write!(text, ", {us} us per delivered event");
                }
                text.push('\n');
            }
            (None, _) => text.push_str("server CPU: not measured (no server process found)\n"),
        }
        if let Some(bench_ms) = w.bench_cpu_ms {
            let _ = writeln!(text, "load generator CPU: {bench_ms} ms");
        }
        if let Some(error) = &w.first_stream_error {
            let _ = writeln!(
                text,
                "watch stream errors: {} (first: {error:?})",
                w.stream_errors
            );
        }
        text.push_str(&notes(f));
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_carry_their_send_time() {
        let sent = Duration::from_nanos(123_456_789_012);
        let value = stamped_value(sent, 32);
        assert_eq!(value.len(), 32);
        assert_eq!(value_stamp(&value), Some(sent));
        assert_eq!(stamped_value(sent, 4).len(), STAMP_LEN_BYTES);
        assert_eq!(value_stamp(b"short"), None);
    }

    #[test]
    fn prefix_ends() {
        assert_eq!(prefix_end(b"/bench-watch/"), b"/bench-watch0".to_vec());
        assert_eq!(prefix_end(b"a\xff"), b"b".to_vec());
        assert_eq!(prefix_end(b"\xff"), vec![0]);
    }
}
