//! `rafter bench lease`: what it costs a server to keep many leases alive.
//! It exists because lease keep-alives (every Kubernetes node lease, every
//! service-discovery session, every etcd lock holder) are a steady stream of
//! small requests on long-lived LeaseKeepAlive streams, a load that none of
//! the key-value or watch workloads produces: a server that answers puts
//! quickly can still burn a core on keep-alive bookkeeping, or let leases
//! expire under it.
//!
//! The run has three phases. Grant: `--leases` leases of `--ttl` seconds
//! (server-chosen IDs), `--clients` LeaseGrant requests in flight at a time
//! over `--conns` connections. Keep alive: for `--duration`, every lease is
//! kept alive once per `--keepalive-interval`, spread evenly over the
//! interval, on `--keepalive-streams` LeaseKeepAlive streams that each carry
//! many leases (as etcd's clientv3 multiplexes a client's leases on one
//! stream). Each stream is one task that paces its sends from a clock and
//! matches responses to requests by lease ID, so 100,000 leases cost a few
//! tasks and one timestamp per lease, not a task or a timer per lease. A
//! lease whose previous keep-alive is still unanswered when its next is due
//! is skipped (counted), so a slow server is not buried under a growing
//! queue. Revoke: the leases are revoked (`--no-revoke` skips this), so that
//! 100,000 expiring leases do not load the cluster for whatever runs next.
//!
//! Reported: grant and revoke latency, keep-alive latency (request sent to
//! the response with that lease ID received) and keep-alives per second,
//! keep-alives skipped, unanswered or answered with TTL 0 (the lease had
//! expired), and per member the CPU time over the keep-alive phase (from
//! `/proc/PID/stat`) and peak resident memory (`VmHWM`).

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use hdrhistogram::Histogram;
use rafter_proto::etcdserverpb::lease_client::LeaseClient;
use rafter_proto::etcdserverpb::{
    LeaseGrantRequest, LeaseKeepAliveRequest, LeaseKeepAliveResponse, LeaseRevokeRequest,
};
use serde::Serialize;
use tokio::sync::mpsc;
use tokio::time::{Instant, MissedTickBehavior};
use tokio_stream::wrappers::ReceiverStream;
use tonic::transport::Channel;

use crate::args::{ClusterArgs, LeaseArgs};
use crate::conn::dial_for_watch;
use crate::report::{ms, Latency};
use crate::server_cpu;

/// Largest latency tracked exactly: one minute.
const MAX_TRACKED_LATENCY_US: u64 = 60_000_000;
/// How often a keep-alive stream sends the keep-alives that came due.
const SEND_TICK: Duration = Duration::from_millis(5);

/// Runs the benchmark and prints its report.
pub async fn run(cluster: &ClusterArgs, args: &LeaseArgs) -> Result<(), String> {
    if args.leases == 0 || args.keepalive_streams == 0 || cluster.clients == 0 {
        return Err("--leases, --keepalive-streams and --clients must be at least 1".to_string());
    }
    if args.ttl_s <= 0 {
        return Err(format!("--ttl {} is not a positive TTL", args.ttl_s));
    }
    if args.keepalive_interval.is_zero() {
        return Err("--keepalive-interval must be positive".to_string());
    }
    if !args.server_pids.is_empty() && args.server_pids.len() != cluster.endpoints.len() {
        return Err("--server-pids needs one pid per endpoint, in the same order".to_string());
    }
    let channels = dial_for_watch(&cluster.endpoints, cluster.conns).await?;
    let members: Vec<(String, Option<u32>)> = cluster
        .endpoints
        .iter()
        .enumerate()
        .map(|(index, endpoint)| {
            let pid = match args.server_pids.get(index) {
                Some(pid) => Some(*pid),
                None => server_cpu::find_listeners(std::slice::from_ref(endpoint))
                    .first()
                    .copied(),
            };
            (endpoint.clone(), pid)
        })
        .collect();

    // Grant.
    let grant_started = Instant::now();
    let ttl_s = args.ttl_s;
    let grants = for_each_bounded(
        &channels,
        cluster.clients,
        args.leases,
        cluster.request_timeout,
        move |mut client, _| async move {
            let response = client
                .lease_grant(LeaseGrantRequest { ttl: ttl_s, id: 0 })
                .await?
                .into_inner();
            if !response.error.is_empty() {
                return Err(tonic::Status::unknown(response.error));
            }
            Ok(response.id)
        },
    )
    .await;
    let grant_elapsed = grant_started.elapsed();
    let ids: Vec<i64> = grants.values.clone();
    if ids.is_empty() {
        return Err(format!(
            "no lease was granted: {}",
            grants.first_error.clone().unwrap_or_default()
        ));
    }

    // Keep alive.
    let pids: Vec<u32> = members.iter().filter_map(|(_, pid)| *pid).collect();
    let cpu_before: Vec<Option<Duration>> = members
        .iter()
        .map(|(_, pid)| pid.and_then(server_cpu::process_cpu))
        .collect();
    let own_cpu_before = server_cpu::own_cpu();
    let start = Instant::now() + SEND_TICK;
    let mut stream_ids: Vec<Vec<i64>> = vec![Vec::new(); args.keepalive_streams];
    for (index, id) in ids.iter().enumerate() {
        stream_ids[index % args.keepalive_streams].push(*id);
    }
    let streams: Vec<_> = stream_ids
        .into_iter()
        .enumerate()
        .filter(|(_, ids)| !ids.is_empty())
        .map(|(index, ids)| {
            tokio::spawn(keepalive_stream(
                channels[index % channels.len()].clone(),
                ids,
                Pacing {
                    start,
                    interval: args.keepalive_interval,
                    duration: args.duration,
                    drain_timeout: args.drain_timeout,
                },
            ))
        })
        .collect();
    let stream_count = streams.len();
    let mut keepalives = StreamStats::new();
    for stream in streams {
        keepalives.merge(stream.await.expect("a keep-alive stream panicked"));
    }
    let keepalive_end = keepalives
        .last_response
        .map_or(start + args.duration, |last| {
            last.max(start + args.duration)
        });
    let measured = keepalive_end.saturating_duration_since(start);
    let own_cpu_spent = server_cpu::own_cpu()
        .zip(own_cpu_before)
        .map(|(after, before)| after.saturating_sub(before));
    let answered = keepalives.latency_us.len();
    let member_figures: Vec<MemberFigures> = members
        .iter()
        .zip(&cpu_before)
        .map(|((endpoint, pid), before)| {
            let cpu = pid
                .and_then(server_cpu::process_cpu)
                .zip(*before)
                .map(|(after, before)| after.saturating_sub(before));
            MemberFigures {
                endpoint: endpoint.clone(),
                pid: *pid,
                cpu_ms: cpu.map(|cpu| cpu.as_millis() as u64),
                cpu_percent_of_core: cpu
                    .map(|cpu| round1(100.0 * cpu.as_secs_f64() / measured.as_secs_f64())),
                cpu_us_per_keepalive: cpu
                    .filter(|_| answered > 0)
                    .map(|cpu| round1(cpu.as_micros() as f64 / answered as f64)),
                peak_rss_kib: pid.and_then(server_cpu::peak_rss_kib),
                rss_kib: pid.and_then(server_cpu::rss_kib),
            }
        })
        .collect();
    let server_cpu_ms = (!pids.is_empty()).then(|| {
        member_figures
            .iter()
            .filter_map(|member| member.cpu_ms)
            .sum::<u64>()
    });

    // Revoke.
    let revokes = if args.no_revoke {
        None
    } else {
        let revoke_started = Instant::now();
        let ids = Arc::new(ids.clone());
        let outcome = for_each_bounded(
            &channels,
            cluster.clients,
            ids.len(),
            cluster.request_timeout,
            move |mut client, index| {
                let id = ids[index];
                async move {
                    client.lease_revoke(LeaseRevokeRequest { id }).await?;
                    Ok(id)
                }
            },
        )
        .await;
        Some(outcome.figures(revoke_started.elapsed()))
    };

    let report = LeaseReport {
        settings: LeaseSettings {
            workload: "lease".to_string(),
            endpoints: cluster.endpoints.clone(),
            conns: cluster.conns,
            clients: cluster.clients,
            leases: args.leases,
            ttl_s: args.ttl_s,
            keepalive_interval_ms: args.keepalive_interval.as_millis() as u64,
            keepalive_streams: stream_count,
            duration_ms: args.duration.as_millis() as u64,
        },
        grant: grants.figures(grant_elapsed),
        keepalive: KeepAliveFigures {
            measured_ms: measured.as_millis() as u64,
            offered_keepalives_per_s: round1(
                ids.len() as f64 / args.keepalive_interval.as_secs_f64(),
            ),
            sent: keepalives.sent,
            answered,
            keepalives_per_s: round1(answered as f64 / measured.as_secs_f64().max(1e-9)),
            latency: Latency::of(&keepalives.latency_us),
            skipped_still_pending: keepalives.skipped,
            unanswered: keepalives.unanswered,
            expired: keepalives.expired,
            unexpected: keepalives.unexpected,
            keepalives_per_second: keepalives.per_second,
            stream_errors: keepalives.errors,
            first_stream_error: keepalives.first_error,
        },
        revoke: revokes,
        members: member_figures,
        server_cpu_ms,
        bench_cpu_ms: own_cpu_spent.map(|cpu| cpu.as_millis() as u64),
    };
    crate::print(cluster.output, &report.table(), &report);
    Ok(())
}

/// When a keep-alive stream sends.
#[derive(Debug, Clone, Copy)]
struct Pacing {
    start: Instant,
    interval: Duration,
    duration: Duration,
    drain_timeout: Duration,
}

/// What one keep-alive stream (or, merged, all of them) saw.
struct StreamStats {
    latency_us: Histogram<u64>,
    sent: u64,
    skipped: u64,
    unanswered: u64,
    expired: u64,
    unexpected: u64,
    /// Keep-alives answered in each second since the phase started.
    per_second: Vec<u64>,
    last_response: Option<Instant>,
    errors: u64,
    first_error: Option<String>,
}

impl StreamStats {
    fn new() -> Self {
        Self {
            latency_us: latency_histogram(),
            sent: 0,
            skipped: 0,
            unanswered: 0,
            expired: 0,
            unexpected: 0,
            per_second: Vec::new(),
            last_response: None,
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
        self.sent += other.sent;
        self.skipped += other.skipped;
        self.unanswered += other.unanswered;
        self.expired += other.expired;
        self.unexpected += other.unexpected;
        if self.per_second.len() < other.per_second.len() {
            self.per_second.resize(other.per_second.len(), 0);
        }
        for (mine, theirs) in self.per_second.iter_mut().zip(&other.per_second) {
            *mine += theirs;
        }
        self.last_response = self.last_response.max(other.last_response);
        self.errors += other.errors;
        if self.first_error.is_none() {
            self.first_error = other.first_error;
        }
    }
}

fn latency_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, MAX_TRACKED_LATENCY_US, 3).expect("valid histogram bounds")
}

/// How many of `leases` leases are due by `elapsed` into the phase when
/// each is kept alive once per `interval`, lease `i` first at
/// `i / leases` of the interval.
fn due_count(elapsed: Duration, interval: Duration, leases: usize) -> u64 {
    let rounds = elapsed.as_secs_f64() / interval.as_secs_f64();
    (rounds * leases as f64).ceil() as u64
}

/// One LeaseKeepAlive stream keeping `ids` alive as `pacing` says: one
/// task, one send time per lease, responses matched by lease ID.
async fn keepalive_stream(channel: Channel, ids: Vec<i64>, pacing: Pacing) -> StreamStats {
    let mut stats = StreamStats::new();
    let leases = ids.len();
    let slot_of: HashMap<i64, usize> = ids.iter().enumerate().map(|(i, id)| (*id, i)).collect();
    let mut pending: Vec<Option<Instant>> = vec![None; leases];
    let mut pending_count = 0usize;
    // At most one request per lease is queued or in flight, so a channel
    // with room for every lease never refuses one.
    let (requests, outgoing) = mpsc::channel(leases);
    let mut client = LeaseClient::new(channel);
    let mut call = Box::pin(client.lease_keep_alive(ReceiverStream::new(outgoing)));
    let mut responses: Option<tonic::Streaming<LeaseKeepAliveResponse>> = None;
    let send_end = pacing.start + pacing.duration;
    let drain_end = send_end + pacing.drain_timeout;
    let mut ticker = tokio::time::interval_at(pacing.start, SEND_TICK);
    ticker.set_missed_tick_behavior(MissedTickBehavior::Skip);
    let drain_deadline = tokio::time::sleep_until(drain_end);
    tokio::pin!(drain_deadline);
    let mut sent_upto = 0u64;
    let mut sending = true;
    loop {
        if !sending && pending_count == 0 {
            break;
        }
        tokio::select! {
            result = &mut call, if responses.is_none() => match result {
                Ok(response) => responses = Some(response.into_inner()),
                Err(status) => {
                    stats.error(format!("{:?}: {}", status.code(), status.message()));
                    break;
                }
            },
            message = async { responses.as_mut().expect("guarded").message().await },
                if responses.is_some() =>
            {
                let response = match message {
                    Ok(Some(response)) => response,
                    Ok(None) => {
                        stats.error("the server closed the keep-alive stream".to_string());
                        break;
                    }
                    Err(status) => {
                        stats.error(format!("{:?}: {}", status.code(), status.message()));
                        break;
                    }
                };
                let received = Instant::now();
                let Some(sent) = slot_of
                    .get(&response.id)
                    .and_then(|slot| pending[*slot].take())
                else {
                    stats.unexpected += 1;
                    continue;
                };
                pending_count -= 1;
                if response.ttl <= 0 {
                    stats.expired += 1;
                    continue;
                }
                let latency_us = u64::try_from((received - sent).as_micros()).unwrap_or(u64::MAX);
                stats.latency_us.saturating_record(latency_us.max(1));
                let second = received.saturating_duration_since(pacing.start).as_secs() as usize;
                if stats.per_second.len() <= second {
                    stats.per_second.resize(second + 1, 0);
                }
                stats.per_second[second] += 1;
                stats.last_response = Some(received);
            }
            _ = ticker.tick(), if sending => {
                let now = Instant::now();
                if now >= send_end {
                    sending = false;
                    continue;
                }
                let due = due_count(now - pacing.start, pacing.interval, leases);
                while sent_upto < due {
                    let slot = (sent_upto % leases as u64) as usize;
                    sent_upto += 1;
                    if pending[slot].is_some() {
                        stats.skipped += 1;
                        continue;
                    }
                    pending[slot] = Some(now);
                    pending_count += 1;
                    stats.sent += 1;
                    if requests.try_send(LeaseKeepAliveRequest { id: ids[slot] }).is_err() {
                        stats.error("the keep-alive request stream is closed".to_string());
                        sending = false;
                        break;
                    }
                }
            }
            _ = &mut drain_deadline => break,
        }
    }
    stats.unanswered = pending_count as u64;
    stats
}

/// What [`for_each_bounded`] collected.
struct Outcome<T> {
    values: Vec<T>,
    latency_us: Histogram<u64>,
    errors_by_code: BTreeMap<String, u64>,
    first_error: Option<String>,
}

impl<T> Outcome<T> {
    fn figures(&self, elapsed: Duration) -> PhaseFigures {
        PhaseFigures {
            ops: self.values.len() as u64,
            errors: self.errors_by_code.values().sum(),
            errors_by_code: self.errors_by_code.clone(),
            first_error: self.first_error.clone(),
            duration_ms: elapsed.as_millis() as u64,
            throughput_ops_per_s: round1(
                self.values.len() as f64 / elapsed.as_secs_f64().max(1e-9),
            ),
            latency: Latency::of(&self.latency_us),
        }
    }
}

/// Runs `op(client, i)` for every `i` in `0..count`, `concurrency` at a
/// time, the workers spread over `channels`; each call times out after
/// `timeout`.
async fn for_each_bounded<T, F, Fut>(
    channels: &[Channel],
    concurrency: usize,
    count: usize,
    timeout: Duration,
    op: F,
) -> Outcome<T>
where
    T: Send + 'static,
    F: Fn(LeaseClient<Channel>, usize) -> Fut + Clone + Send + 'static,
    Fut: std::future::Future<Output = Result<T, tonic::Status>> + Send,
{
    let next = Arc::new(AtomicUsize::new(0));
    let workers: Vec<_> = (0..concurrency.min(count))
        .map(|worker| {
            let client = LeaseClient::new(channels[worker % channels.len()].clone());
            let next = next.clone();
            let op = op.clone();
            tokio::spawn(async move {
                let mut outcome = Outcome {
                    values: Vec::new(),
                    latency_us: latency_histogram(),
                    errors_by_code: BTreeMap::new(),
                    first_error: None,
                };
                loop {
                    let index = next.fetch_add(1, Ordering::Relaxed);
                    if index >= count {
                        break;
                    }
                    let sent = Instant::now();
                    let result =
                        match tokio::time::timeout(timeout, op(client.clone(), index)).await {
                            Ok(result) => result,
                            Err(_) => Err(tonic::Status::deadline_exceeded(
                                "request timed out in the load generator",
                            )),
                        };
                    match result {
                        Ok(value) => {
                            let latency_us =
                                u64::try_from(sent.elapsed().as_micros()).unwrap_or(u64::MAX);
                            outcome.latency_us.saturating_record(latency_us.max(1));
                            outcome.values.push(value);
                        }
                        Err(status) => {
                            *outcome
                                .errors_by_code
                                .entry(format!("{:?}", status.code()))
                                .or_default() += 1;
                            outcome.first_error.get_or_insert_with(|| {
                                format!("{:?}: {}", status.code(), status.message())
                            });
                        }
                    }
                }
                outcome
            })
        })
        .collect();
    let mut all = Outcome {
        values: Vec::with_capacity(count),
        latency_us: latency_histogram(),
        errors_by_code: BTreeMap::new(),
        first_error: None,
    };
    for worker in workers {
        let outcome = worker.await.expect("a lease worker panicked");
        all.values.extend(outcome.values);
        all.latency_us
            .add(&outcome.latency_us)
            .expect("histograms with equal bounds");
        for (code, count) in outcome.errors_by_code {
            *all.errors_by_code.entry(code).or_default() += count;
        }
        if all.first_error.is_none() {
            all.first_error = outcome.first_error;
        }
    }
    all
}

fn round1(value: f64) -> f64 {
    (value * 10.0).round() / 10.0
}

/// The settings of a lease run.
#[derive(Debug, Clone, Serialize)]
pub struct LeaseSettings {
    pub workload: String,
    pub endpoints: Vec<String>,
    pub conns: usize,
    /// LeaseGrant (and LeaseRevoke) requests in flight at a time.
    pub clients: usize,
    pub leases: usize,
    pub ttl_s: i64,
    pub keepalive_interval_ms: u64,
    pub keepalive_streams: usize,
    pub duration_ms: u64,
}

/// The grant or revoke phase.
#[derive(Debug, Clone, Serialize)]
pub struct PhaseFigures {
    /// Successful requests.
    pub ops: u64,
    pub errors: u64,
    pub errors_by_code: BTreeMap<String, u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub first_error: Option<String>,
    pub duration_ms: u64,
    pub throughput_ops_per_s: f64,
    pub latency: Latency,
}

/// The keep-alive phase.
#[derive(Debug, Clone, Serialize)]
pub struct KeepAliveFigures {
    /// From the first keep-alive until the last response (at least
    /// `--duration`).
    pub measured_ms: u64,
    /// Granted leases per keep-alive interval.
    pub offered_keepalives_per_s: f64,
    pub sent: u64,
    /// Answered with a positive TTL.
    pub answered: u64,
    pub keepalives_per_s: f64,
    /// From a keep-alive's send to the response with its lease ID.
    pub latency: Latency,
    /// Keep-alives not sent because the lease's previous one was unanswered.
    pub skipped_still_pending: u64,
    /// Sent but not answered by the end of the drain.
    pub unanswered: u64,
    /// Answered with TTL 0: the lease had expired or was unknown.
    pub expired: u64,
    /// Responses for no pending keep-alive.
    pub unexpected: u64,
    /// Keep-alives answered in each second of the phase.
    pub keepalives_per_second: Vec<u64>,
    pub stream_errors: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub first_stream_error: Option<String>,
}

/// One member's cost over the keep-alive phase.
#[derive(Debug, Clone, Serialize)]
pub struct MemberFigures {
    pub endpoint: String,
    /// The process listening on the endpoint (none found: no figures).
    pub pid: Option<u32>,
    /// CPU time (user + system) over the keep-alive phase.
    pub cpu_ms: Option<u64>,
    pub cpu_percent_of_core: Option<f64>,
    /// That CPU time per answered keep-alive (of all members).
    pub cpu_us_per_keepalive: Option<f64>,
    /// VmHWM after the keep-alive phase: the process's peak so far.
    pub peak_rss_kib: Option<u64>,
    /// VmRSS after the keep-alive phase.
    pub rss_kib: Option<u64>,
}

/// The report of a lease run.
#[derive(Debug, Clone, Serialize)]
pub struct LeaseReport {
    pub settings: LeaseSettings,
    pub grant: PhaseFigures,
    pub keepalive: KeepAliveFigures,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub revoke: Option<PhaseFigures>,
    pub members: Vec<MemberFigures>,
    /// All members' CPU time over the keep-alive phase.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub server_cpu_ms: Option<u64>,
    /// The load generator's CPU time over the keep-alive phase.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bench_cpu_ms: Option<u64>,
}

impl LeaseReport {
    /// The table for people.
    pub fn table(&self) -> String {
        use std::fmt::Write as _;
        let (s, k) = (&self.settings, &self.keepalive);
        let mut text = format!(
            "lease against {} ({} conns, {} clients, {} leases of TTL {} s, keep-alive every {} ms on {} streams)\n",
            s.endpoints.join(","),
            s.conns,
            s.clients,
            s.leases,
            s.ttl_s,
            s.keepalive_interval_ms,
            s.keepalive_streams
        );
        let _ = writeln!(
            text,
            "{:<10} {:>9} {:>7} {:>11} {:>9} {:>9} {:>9} {:>9}",
            "op", "count", "errors", "per s", "p50 ms", "p90 ms", "p99 ms", "max ms"
        );
        let row =
            |text: &mut String, name: &str, count: u64, errors: u64, rate: f64, l: &Latency| {
                let _ = writeln!(
                    text,
                    "{:<10} {:>9} {:>7} {:>11.1} {:>9} {:>9} {:>9} {:>9}",
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
        let g = &self.grant;
        row(
            &mut text,
            "grant",
            g.ops,
            g.errors,
            g.throughput_ops_per_s,
            &g.latency,
        );
        row(
            &mut text,
            "keepalive",
            k.answered,
            k.stream_errors + k.expired + k.unanswered,
            k.keepalives_per_s,
            &k.latency,
        );
        if let Some(r) = &self.revoke {
            row(
                &mut text,
                "revoke",
                r.ops,
                r.errors,
                r.throughput_ops_per_s,
                &r.latency,
            );
        }
        let _ = writeln!(
            text,
            "keep-alives: {} sent, {} answered in {} ms (offered {:.1}/s), {} skipped (previous unanswered), {} unanswered, {} expired (TTL 0), {} unexpected",
            k.sent,
            k.answered,
            k.measured_ms,
            k.offered_keepalives_per_s,
            k.skipped_still_pending,
            k.unanswered,
            k.expired,
            k.unexpected
        );
        for member in &self.members {
            let kib = |v: Option<u64>| {
                v.map_or("n/a".to_string(), |v| format!("{:.1}", v as f64 / 1024.0))
            };
            let _ = writeln!(
                text,
                "member {} (pid {}): CPU {} ms ({} % of a core, {} us per keep-alive), peak RSS {} MiB, RSS {} MiB",
                member.endpoint,
                member.pid.map_or("?".to_string(), |p| p.to_string()),
                member.cpu_ms.map_or("n/a".to_string(), |v| v.to_string()),
                member.cpu_percent_of_core.map_or("n/a".to_string(), |v| v.to_string()),
                member.cpu_us_per_keepalive.map_or("n/a".to_string(), |v| v.to_string()),
                kib(member.peak_rss_kib),
                kib(member.rss_kib)
            );
        }
        if let Some(bench_ms) = self.bench_cpu_ms {
            let _ = writeln!(text, "load generator CPU: {bench_ms} ms");
        }
        for (phase, figures) in [("grant", Some(g)), ("revoke", self.revoke.as_ref())] {
            if let Some(error) = figures.and_then(|f| f.first_error.as_ref()) {
                let _ = writeln!(
                    text,
                    "{phase} errors: {:?} (first: {error:?})",
                    figures.unwrap().errors_by_code
                );
            }
        }
        if let Some(error) = &k.first_stream_error {
            let _ = writeln!(
                text,
                "keep-alive stream errors: {} (first: {error:?})",
                k.stream_errors
            );
        }
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keepalives_come_due_evenly_over_the_interval() {
        let second = Duration::from_secs(1);
        assert_eq!(due_count(Duration::ZERO, second, 100), 0);
        assert_eq!(due_count(Duration::from_millis(5), second, 100), 1);
        assert_eq!(due_count(Duration::from_millis(500), second, 100), 50);
        assert_eq!(due_count(Duration::from_millis(1500), second, 100), 150);
    }
}
