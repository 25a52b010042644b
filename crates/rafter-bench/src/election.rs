//! `rafter bench election` (Raft paper figure 16, seeds 002/004): crash the
//! leader of a local cluster with SIGKILL at a random point of its heartbeat
//! interval, and measure the time until a surviving member reports a new
//! leader and until the first write is acknowledged; restart the crashed
//! member and repeat, for each election timeout range. Also counts the
//! election messages (pre-vote and vote requests and responses) the
//! survivors sent, as seed 004's packets-per-election distribution. Writes
//! the trials and their CDFs as CSV and the CDFs as PNG plots.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

use rafter_proto::etcdserverpb::kv_client::KvClient;
use rafter_proto::etcdserverpb::PutRequest;
use serde::Serialize;
use tokio::task::JoinSet;
use tokio::time::Instant;

use crate::args::{ElectionArgs, ElectionRange};
use crate::cdf::{csv, plot_png, Series};
use crate::election_messages::{MessageFigures, MessageTally};
use crate::local_cluster::{ClusterSpec, Leadership, LocalCluster};
use crate::rng::Rng;

/// Longest a single failover may take before the trial counts as failed.
const FAILOVER_LIMIT: Duration = Duration::from_secs(30);
/// How long a status probe of a survivor may take.
const PROBE_TIMEOUT: Duration = Duration::from_millis(50);
/// Pause between rounds of status probes.
const PROBE_INTERVAL: Duration = Duration::from_millis(1);
/// A new write attempt starts this often until one is acknowledged.
const WRITE_ATTEMPT_INTERVAL: Duration = Duration::from_millis(5);
/// How long one write attempt may wait for its answer.
const WRITE_ATTEMPT_TIMEOUT: Duration = Duration::from_secs(2);

/// One crash and what followed it.
#[derive(Debug, Clone, Copy)]
struct Trial {
    elected_ms: f64,
    first_write_ms: f64,
    /// Raft terms the election took (1 unless votes split).
    terms: u64,
    /// Election messages the survivors sent from the crash to the write.
    messages: MessageTally,
}

/// Percentiles of a set of durations, in milliseconds.
#[derive(Debug, Clone, Serialize)]
pub struct Spread {
    pub p50_ms: f64,
    pub p90_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
}

impl Spread {
    fn of(samples_ms: &[f64]) -> Self {
        let mut sorted = samples_ms.to_vec();
        sorted.sort_by(f64::total_cmp);
        let at = |quantile: f64| {
            if sorted.is_empty() {
                return 0.0;
            }
            let rank = ((quantile * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
            (sorted[rank - 1] * 10.0).round() / 10.0
        };
        Self {
            p50_ms: at(0.50),
            p90_ms: at(0.90),
            p99_ms: at(0.99),
            max_ms: at(1.0),
        }
    }
}

/// The figures of one election timeout range.
#[derive(Debug, Clone, Serialize)]
pub struct TimeoutFigures {
    pub election_timeout_ms: u64,
    pub election_timeout_max_ms: u64,
    /// The range members draw their randomized timeout from: [min, max).
    pub range_ms: String,
    pub trials: usize,
    pub failed_trials: usize,
    pub elected: Spread,
    pub first_write: Spread,
    /// How many elections took 1, 2, ... terms.
    pub elections_by_terms: BTreeMap<u64, usize>,
    /// Election messages per trial.
    pub messages: MessageFigures,
}

/// The report of the whole run.
#[derive(Debug, Clone, Serialize)]
pub struct ElectionReport {
    pub server: String,
    pub members: usize,
    pub heartbeat_interval_ms: u64,
    pub timeouts: Vec<TimeoutFigures>,
    pub files: Vec<String>,
}

/// Runs every election timeout in turn and writes the files.
pub async fn run(args: &ElectionArgs) -> Result<(), String> {
    if args.members < 3 {
        return Err("--members must be at least 3 to survive a leader crash".to_string());
    }
    if args.election_ranges.is_empty() || args.trials == 0 {
        return Err("give at least one --election-timeouts range and one trial".to_string());
    }
    let mut rng = Rng::new(0xE1EC_7104);
    let mut figures = Vec::new();
    let mut curves = Curves::default();
    let mut trials_csv = String::from(
        "range_ms,trial,elected_ms,first_write_ms,terms,election_messages,\
         pre_vote_requests,pre_vote_responses,vote_requests,vote_responses\n",
    );
    for &range in &args.election_ranges {
        let spec = ClusterSpec {
            peer_proxies: false,
            kind: args.server,
            etcd_binary: args.etcd_binary.clone(),
            members: args.members,
            heartbeat_interval_ms: args.heartbeat_interval_ms,
            election_range: range,
        };
        let range_ms = range.label();
        eprintln!(
            "election timeout {range_ms} ms: starting {} {:?} members",
            args.members, args.server
        );
        let mut cluster = LocalCluster::start(spec).await?;
        let mut trials = Vec::with_capacity(args.trials);
        let mut failed_trials = 0;
        for trial_index in 0..args.trials {
            let timing = Timing {
                heartbeat_interval_ms: args.heartbeat_interval_ms,
                range,
            };
            match crash_leader(&mut cluster, timing, &mut rng).await {
                Ok(trial) => {
                    let m = &trial.messages;
                    let _ = writeln!(
                        trials_csv,
                        "{range_ms},{trial_index},{:.3},{:.3},{},{},{},{},{},{}",
                        trial.elected_ms,
                        trial.first_write_ms,
                        trial.terms,
                        m.total(),
                        m.pre_vote_requests,
                        m.pre_vote_responses,
                        m.vote_requests,
                        m.vote_responses
                    );
                    trials.push(trial);
                }
                Err(message) => {
                    eprintln!("trial {trial_index} failed: {message}");
                    failed_trials += 1;
                    cluster.wait_stable(FAILOVER_LIMIT).await?;
                }
            }
        }
        let elected_ms: Vec<f64> = trials.iter().map(|t| t.elected_ms).collect();
        let first_write_ms: Vec<f64> = trials.iter().map(|t| t.first_write_ms).collect();
        let tallies: Vec<MessageTally> = trials.iter().map(|t| t.messages).collect();
        let mut elections_by_terms = BTreeMap::new();
        for trial in &trials {
            *elections_by_terms.entry(trial.terms).or_insert(0) += 1;
        }
        figures.push(TimeoutFigures {
            election_timeout_ms: range.min_ms,
            election_timeout_max_ms: range.max_ms,
            range_ms: range_ms.clone(),
            trials: trials.len(),
            failed_trials,
            elected: Spread::of(&elected_ms),
            first_write: Spread::of(&first_write_ms),
            elections_by_terms,
            messages: MessageFigures::of(&tallies),
        });
        curves.push(&range_ms, elected_ms, first_write_ms, &tallies);
    }
    let files = write_files(&args.out_dir, &trials_csv, &curves)?;
    let report = ElectionReport {
        server: format!("{:?}", args.server).to_lowercase(),
        members: args.members,
        heartbeat_interval_ms: args.heartbeat_interval_ms,
        timeouts: figures,
        files,
    };
    crate::print(args.output, &table(&report), &report);
    Ok(())
}

/// One CDF curve per range for each measurement.
#[derive(Default)]
struct Curves {
    elected_ms: Vec<Series>,
    first_write_ms: Vec<Series>,
    messages: Vec<Series>,
}

impl Curves {
    fn push(
        &mut self,
        label: &str,
        elected_ms: Vec<f64>,
        first_write_ms: Vec<f64>,
        tallies: &[MessageTally],
    ) {
        let series = |samples| Series {
            label: label.to_string(),
            samples,
        };
        self.elected_ms.push(series(elected_ms));
        self.first_write_ms.push(series(first_write_ms));
        self.messages
            .push(series(tallies.iter().map(|t| t.total() as f64).collect()));
    }
}

/// Writes the trials, the CDFs and the plots; returns their paths.
fn write_files(out_dir: &Path, trials_csv: &str, curves: &Curves) -> Result<Vec<String>, String> {
    std::fs::create_dir_all(out_dir).map_err(|e| format!("create {}: {e}", out_dir.display()))?;
    let cdf_csv = format!(
        "metric,range_ms,value,cumulative_fraction\n{}{}{}",
        csv("elected_ms", &curves.elected_ms),
        csv("first_write_ms", &curves.first_write_ms),
        csv("election_messages", &curves.messages)
    );
    let files: [(PathBuf, Vec<u8>); 5] = [
        (
            out_dir.join("election-trials.csv"),
            trials_csv.as_bytes().to_vec(),
        ),
        (out_dir.join("election-cdf.csv"), cdf_csv.into_bytes()),
        (
            out_dir.join("election-elected-cdf.png"),
            plot_png(&curves.elected_ms, "ms"),
        ),
        (
            out_dir.join("election-first-write-cdf.png"),
            plot_png(&curves.first_write_ms, "ms"),
        ),
        (
            out_dir.join("election-messages-cdf.png"),
            plot_png(&curves.messages, "msgs"),
        ),
    ];
    let mut written = Vec::with_capacity(files.len());
    for (path, bytes) in files {
        std::fs::write(&path, bytes).map_err(|e| format!("write {}: {e}", path.display()))?;
        written.push(path.display().to_string());
    }
    Ok(written)
}

/// The cluster's Raft timers.
#[derive(Debug, Clone, Copy)]
struct Timing {
    heartbeat_interval_ms: u64,
    range: ElectionRange,
}

/// Waits until the cluster has kept the same leader and term for two
/// maximal election timeouts, so a restarted member has rejoined and no
/// election is under way when the next crash comes.
async fn settled(cluster: &mut LocalCluster, timing: Timing) -> Result<Leadership, String> {
    let settle = Duration::from_millis(2 * timing.range.max_ms);
    let deadline = Instant::now() + FAILOVER_LIMIT;
    let mut leadership = cluster.wait_stable(FAILOVER_LIMIT).await?;
    loop {
        tokio::time::sleep(settle).await;
        let now = cluster.wait_stable(FAILOVER_LIMIT).await?;
        if now == leadership {
            return Ok(now);
        }
        if Instant::now() >= deadline {
            return Err(format!("the leader kept changing for {FAILOVER_LIMIT:?}"));
        }
        leadership = now;
    }
}

/// One trial: crash the leader, time the new election and the first
/// acknowledged write, restart the crashed member.
async fn crash_leader(
    cluster: &mut LocalCluster,
    timing: Timing,
    rng: &mut Rng,
) -> Result<Trial, String> {
    let before = settled(cluster, timing).await?;
    let survivors: Vec<usize> = (0..cluster.size())
        .filter(|index| *index != before.leader_index)
        .collect();
    let messages_before = survivors_messages(cluster, &survivors).await?;
    // Crash at a uniformly random point of the leader's heartbeat interval.
    let offset_us = rng.below(timing.heartbeat_interval_ms.max(1) * 1000);
    tokio::time::sleep(Duration::from_micros(offset_us)).await;
    cluster.kill(before.leader_index).await;
    let crashed_at = Instant::now();
    let measured = tokio::time::timeout(FAILOVER_LIMIT, async {
        tokio::join!(
            new_leader(cluster, &survivors, before.leader_id, crashed_at),
            first_write(cluster, &survivors, crashed_at)
        )
    })
    .await;
    // The term after the first write: etcd reports the term of its last
    // applied entry, which lags the election until the new leader's first
    // entry is applied (a write implies it is).
    let mut term = 0;
    for &index in &survivors {
        if let Some(status) = cluster.status(index, PROBE_TIMEOUT).await {
            term = term.max(status.raft_term);
        }
    }
    let messages_after = survivors_messages(cluster, &survivors).await;
    cluster.restart(before.leader_index)?;
    let (elected, written) =
        measured.map_err(|_| format!("no failover within {FAILOVER_LIMIT:?}"))?;
    Ok(Trial {
        elected_ms: elected.as_secs_f64() * 1000.0,
        first_write_ms: written.as_secs_f64() * 1000.0,
        terms: term.saturating_sub(before.term),
        messages: messages_after?.since(&messages_before),
    })
}

/// The election messages the survivors sent so far, summed.
async fn survivors_messages(
    cluster: &LocalCluster,
    survivors: &[usize],
) -> Result<MessageTally, String> {
    let mut sum = MessageTally::default();
    for &index in survivors {
        sum.add(&cluster.election_messages(index).await?);
    }
    Ok(sum)
}

/// Polls the survivors until one names a leader other than the crashed
/// one; returns the time since the crash.
async fn new_leader(
    cluster: &LocalCluster,
    survivors: &[usize],
    old_leader_id: u64,
    crashed_at: Instant,
) -> Duration {
    loop {
        for &index in survivors {
            if let Some(status) = cluster.status(index, PROBE_TIMEOUT).await {
                if status.leader != 0 && status.leader != old_leader_id {
                    return crashed_at.elapsed();
                }
            }
        }
        tokio::time::sleep(PROBE_INTERVAL).await;
    }
}

/// Starts a put to the survivors in turn every few milliseconds until one
/// is acknowledged; returns the time since the crash.
async fn first_write(cluster: &LocalCluster, survivors: &[usize], crashed_at: Instant) -> Duration {
    let mut attempts = JoinSet::new();
    let mut ticker = tokio::time::interval(WRITE_ATTEMPT_INTERVAL);
    let mut attempt = 0usize;
    loop {
        tokio::select! {
            _ = ticker.tick() => {
                let mut kv = KvClient::new(cluster.channel(survivors[attempt % survivors.len()]));
                let request = PutRequest {
                    key: b"rafter-bench-election".to_vec(),
                    value: attempt.to_string().into_bytes(),
                    ..Default::default()
                };
                attempt += 1;
                attempts.spawn(async move {
                    tokio::time::timeout(WRITE_ATTEMPT_TIMEOUT, kv.put(request)).await
                });
            }
            Some(Ok(Ok(Ok(_)))) = attempts.join_next() => {
                let elapsed = crashed_at.elapsed();
                attempts.abort_all();
                return elapsed;
            }
        }
    }
}

/// The table for people.
fn table(report: &ElectionReport) -> String {
    let mut text = format!(
        "leader crash and failover: {} members of {}, heartbeat {} ms\n",
        report.members, report.server, report.heartbeat_interval_ms
    );
    let _ = writeln!(
        text,
        "{:>10} {:>7} {:>7}  {:>31}  {:>31}  {:>20}  elections by terms",
        "range ms",
        "trials",
        "failed",
        "new leader p50/p90/p99/max ms",
        "first write p50/p90/p99/max ms",
        "msgs min/p50/p90/max"
    );
    let spread = |s: &Spread| {
        format!(
            "{:.1}/{:.1}/{:.1}/{:.1}",
            s.p50_ms, s.p90_ms, s.p99_ms, s.max_ms
        )
    };
    for figures in &report.timeouts {
        let terms: Vec<String> = figures
            .elections_by_terms
            .iter()
            .map(|(terms, count)| format!("{terms}:{count}"))
            .collect();
        let _ = writeln!(
            text,
            "{:>10} {:>7} {:>7}  {:>31}  {:>31}  {:>20}  {}",
            figures.range_ms,
            figures.trials,
            figures.failed_trials,
            spread(&figures.elected),
            spread(&figures.first_write),
            format!(
                "{}/{}/{}/{}",
                figures.messages.min,
                figures.messages.p50,
                figures.messages.p90,
                figures.messages.max
            ),
            terms.join(" ")
        );
    }
    let _ = writeln!(text, "files: {}", report.files.join(", "));
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spread_uses_nearest_rank() {
        let samples: Vec<f64> = (1..=100).map(f64::from).collect();
        let spread = Spread::of(&samples);
        assert_eq!(
            (spread.p50_ms, spread.p90_ms, spread.p99_ms, spread.max_ms),
            (50.0, 90.0, 99.0, 100.0)
        );
        assert_eq!(Spread::of(&[]).max_ms, 0.0);
    }
}
