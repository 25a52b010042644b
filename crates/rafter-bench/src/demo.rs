//! `rafter demo partition`: the CAP picture of seed 004 made visible. It
//! starts a local 3-member cluster whose members reach each other through
//! peer proxies, cuts one member off, and runs every cell of the dial
//! (get / set / swap × consistent / local × blocking / deadline) on each
//! side at once: what succeeded, what timed out (with its definite
//! outcome) and what blocked. Then it heals the cut, shows how blocked
//! calls finished and pending outcomes were decided, where every local
//! write ended up, and the conflict log of a key both sides wrote.
//!
//! It lives beside the benchmarks because it runs its cluster with their
//! local-cluster launcher. `-w json` prints the same facts for scripts (the
//! demo's test reads them).

use std::time::Duration;

use rafter_proto::rafterpb::conflicts_client::ConflictsClient;
use rafter_proto::rafterpb::dial_client::DialClient;
use rafter_proto::rafterpb::{
    ConflictListRequest, Deadline, DialGetRequest, DialOutcomeRequest, DialResponse,
    DialSetRequest, DialSwapRequest, Outcome,
};
use serde::Serialize;
use tokio::task::JoinHandle;
use tonic::transport::Channel;

use crate::args::ElectionRange;
use crate::local_cluster::{ClusterSpec, LocalCluster, ServerKind};

/// `rafter demo <scenario>`.
#[derive(Debug, clap::Args)]
pub struct DemoCommand {
    #[command(subcommand)]
    pub scenario: Scenario,
}

#[derive(Debug, clap::Subcommand)]
pub enum Scenario {
    /// Cut one member of a local 3-member cluster off and run every cell of the dial on both sides
    Partition(PartitionArgs),
}

#[derive(Debug, clap::Args)]
pub struct PartitionArgs {
    /// Deadline of the non-blocking calls
    #[arg(long, default_value = "1s", value_parser = rafter_proto::godur::parse)]
    pub timeout: Duration,
    /// How long a blocking call is watched before it counts as blocked
    #[arg(long, default_value = "2s", value_parser = rafter_proto::godur::parse)]
    pub blocked_after: Duration,
    /// table (for people) or json (for scripts)
    #[arg(short = 'w', long = "write-out", default_value = "table")]
    pub write_out: String,
}

/// Runs a demo; returns the process exit code.
pub fn run(command: DemoCommand) -> i32 {
    let runtime = tokio::runtime::Runtime::new().expect("start the tokio runtime");
    let Scenario::Partition(args) = command.scenario;
    match runtime.block_on(partition(args)) {
        Ok(()) => 0,
        Err(message) => {
            eprintln!("rafter demo: {message}");
            1
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
enum Op {
    Get,
    Set,
    Swap,
}

/// What a call did, as the dial's answer says.
#[derive(Debug, Clone, Serialize)]
struct CallResult {
    /// `succeeded`, `timed-out`, `blocked`, `error` or `n/a`.
    kind: &'static str,
    /// The value read or written, the outcome, the error.
    detail: String,
    /// For a mutation that timed out: `cancelled` (never applied) or
    /// `pending` (decided later; see `decided`).
    outcome: Option<&'static str>,
    /// A local write's dot (`MEMBER-HEX#SEQ`).
    dot: Option<String>,
    /// A mutation's request id: [session, seq].
    request_id: Option<[u64; 2]>,
}

#[derive(Debug, Serialize)]
struct Cell {
    side: &'static str,
    member: String,
    op: Op,
    consistent: bool,
    blocking: bool,
    key: String,
    result: CallResult,
    /// A blocked call's answer once the cut healed.
    after_heal: Option<CallResult>,
    /// A pending outcome, decided once the cut healed.
    decided: Option<&'static str>,
}

#[derive(Debug, Serialize)]
struct Landing {
    key: String,
    written_on: &'static str,
    local_value: String,
    /// The key's value on the healed cluster (a consistent read).
    now: String,
}

#[derive(Debug, Serialize)]
struct Report {
    cut_off: String,
    majority: String,
    cells: Vec<Cell>,
    local_writes: Vec<Landing>,
    /// The conflict log after both sides wrote `demo/both` during the cut:
    /// `KEY DECISION local=VALUE committed=VALUE`.
    conflicts: Vec<String>,
}

fn outcome_name(o: Outcome) -> &'static str {
    match o {
        Outcome::Unspecified => "unspecified",
        Outcome::Applied => "applied",
        Outcome::Cancelled => "cancelled",
        Outcome::Pending => "pending",
        Outcome::Rejected => "rejected",
    }
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn classify(op: Op, answer: Result<DialResponse, tonic::Status>) -> CallResult {
    match answer {
        Err(status) => CallResult {
            kind: "error",
            detail: format!("{:?}: {}", status.code(), status.message()),
            outcome: None,
            dot: None,
            request_id: None,
        },
        Ok(r) if r.timeout => {
            let outcome = (op != Op::Get).then(|| outcome_name(r.outcome()));
            CallResult {
                kind: "timed-out",
                detail: match (outcome, &r.request_id) {
                    (Some(o), Some(id)) => format!("{o} ({}-{})", id.session_id, id.seq),
                    (Some(o), None) => o.to_string(),
                    (None, _) => "a read changes nothing".into(),
                },
                outcome,
                dot: None,
                request_id: r.request_id.map(|id| [id.session_id, id.seq]),
            }
        }
        Ok(r) => {
            let dot = r
                .local
                .as_ref()
                .map(|l| format!("{:x}#{}", l.member_id, l.seq));
            let detail = match op {
                Op::Get if !r.found => "absent".to_string(),
                Op::Get => format!("{:?} rev {}", text(&r.value), r.revision),
                Op::Set if dot.is_some() => "queued locally".to_string(),
                Op::Set => format!("applied, rev {}", r.revision),
                Op::Swap if r.valid => format!("swapped, rev {}", r.revision),
                Op::Swap => format!("not swapped: holds {:?}", text(&r.value)),
            };
            CallResult {
                kind: "succeeded",
                detail,
                outcome: None,
                dot,
                request_id: r.request_id.map(|id| [id.session_id, id.seq]),
            }
        }
    }
}

async fn call(
    mut dial: DialClient<Channel>,
    op: Op,
    key: String,
    value: String,
    consistent: bool,
    deadline: Deadline,
) -> CallResult {
    let answer = match op {
        Op::Get => dial
            .get(DialGetRequest {
                key: key.into_bytes(),
                consistent,
                deadline: Some(deadline),
            })
            .await
            .map(|r| r.into_inner()),
        Op::Set => dial
            .set(DialSetRequest {
                value: value.into_bytes(),
                key: key.into_bytes(),
                consistent,
                deadline: Some(deadline),
                session: None,
            })
            .await
            .map(|r| r.into_inner()),
        Op::Swap => dial
            .swap(DialSwapRequest {
                key: key.into_bytes(),
                new_value: value.into_bytes(),
                old_value: b"before".to_vec(),
                old_absent: false,
                deadline: Some(deadline),
                session: None,
            })
            .await
            .map(|r| r.into_inner()),
    };
    classify(op, answer)
}

/// One running cell: its call, and the answer once it came.
struct Running {
    cell: Cell,
    request: Option<JoinHandle<CallResult>>,
}

async fn partition(args: PartitionArgs) -> Result<(), String> {
    let json = match args.write_out.as_str() {
        "json" => true,
        "table" => false,
        other => return Err(format!("unknown output format {other:?} (table or json)")),
    };
    eprintln!("starting a local 3-member cluster ...");
    let mut cluster = LocalCluster::start(ClusterSpec {
        kind: ServerKind::Rafter,
        etcd_binary: "etcd".into(),
        members: 3,
        heartbeat_interval_ms: 100,
        election_range: ElectionRange {
            min_ms: 1000,
            max_ms: 2000,
        },
        peer_proxies: true,
    })
    .await?;
    let leadership = cluster.wait_stable(Duration::from_secs(30)).await?;
    let majority = leadership.leader_index;
    let cut = (majority + 1) % cluster.size();
    let sides = [("majority", majority), ("minority", cut)];

    // Keys every cell uses, written before the cut.
    let mut setup = DialClient::new(cluster.channel(majority));
    let mut keys = vec!["demo/shared".to_string(), "demo/both".to_string()];
    for (side, _) in sides {
        for blocking in [true, false] {
            keys.push(cell_key(side, Op::Swap, true, blocking));
        }
    }
    for key in &keys {
        setup
            .set(DialSetRequest {
                key: key.clone().into_bytes(),
                value: b"before".to_vec(),
                consistent: true,
                deadline: Some(Deadline {
                    blocking: true,
                    timeout_ms: 0,
                }),
                session: None,
            })
            .await
            .map_err(|e| format!("setting up {key}: {e}"))?;
    }
    wait_applied(&cluster, cut, &keys).await?;

    eprintln!("cutting m{cut} off from its peers ...");
    cluster.cut_off(cut, true)?;
    wait_leaderless(&cluster, cut).await?;

    eprintln!("running every cell of the dial on both sides ...");
    let mut running = Vec::new();
    for (side, member) in sides {
        for op in [Op::Get, Op::Set, Op::Swap] {
            for consistent in [true, false] {
                for blocking in [true, false] {
                    let key = if op == Op::Get {
                        "demo/shared".to_string()
                    } else {
                        cell_key(side, op, consistent, blocking)
                    };
                    let cell = Cell {
                        side,
                        member: format!("m{member}"),
                        op,
                        consistent,
                        blocking,
                        key: key.clone(),
                        result: not_applicable(),
                        after_heal: None,
                        decided: None,
                    };
                    let request = (op != Op::Swap || consistent).then(|| {
                        let deadline = Deadline {
                            blocking,
                            timeout_ms: args.timeout.as_millis() as u64,
                        };
                        tokio::spawn(call(
                            DialClient::new(cluster.channel(member)),
                            op,
                            key.clone(),
                            format!("{side}'s"),
                            consistent,
                            deadline,
                        ))
                    });
                    running.push(Running { cell, request });
                }
            }
        }
    }
    // Both sides write one key during the cut: a conflict after the heal.
    let both_local = call(
        DialClient::new(cluster.channel(cut)),
        Op::Set,
        "demo/both".into(),
        "minority's".into(),
        false,
        Deadline::default(),
    )
    .await;
    let both_majority = call(
        DialClient::new(cluster.channel(majority)),
        Op::Set,
        "demo/both".into(),
        "majority's".into(),
        true,
        Deadline::default(),
    )
    .await;
    if both_local.kind != "succeeded" || both_majority.kind != "succeeded" {
        return Err(format!(
            "writing demo/both on both sides: {both_local:?} {both_majority:?}"
        ));
    }

    tokio::time::sleep(args.blocked_after).await;
    let mut blocked = Vec::new();
    for (i, r) in running.iter_mut().enumerate() {
        let Some(request) = r.request.take() else {
            continue;
        };
        if request.is_finished() {
            r.cell.result = request.await.map_err(|e| e.to_string())?;
        } else {
            r.cell.result = CallResult {
                kind: "blocked",
                detail: format!("no answer after {:?}", args.blocked_after),
                outcome: None,
                dot: None,
                request_id: None,
            };
            blocked.push((i, request));
        }
    }

    eprintln!("healing the cut ...");
    cluster.cut_off(cut, false)?;
    for (i, request) in blocked {
        let answer = tokio::time::timeout(Duration::from_secs(30), request)
            .await
            .map_err(|_| "a blocked call did not finish within 30 s of the heal".to_string())?
            .map_err(|e| e.to_string())?;
        running[i].cell.after_heal = Some(answer);
    }
    let mut cells: Vec<Cell> = running.into_iter().map(|r| r.cell).collect();
    for cell in cells.iter_mut() {
        if cell.result.outcome == Some("pending") {
            cell.decided = Some(decide(&cluster, cut, cell).await?);
        }
    }
    let local_writes = landings(&cluster, majority, &cells).await?;
    let conflicts = conflict_lines(&cluster, majority).await?;
    let report = Report {
        cut_off: format!("m{cut}"),
        majority: format!("m{majority}"),
        cells,
        local_writes,
        conflicts,
    };
    if json {
        println!(
            "{}",
            serde_json::to_string(&report).map_err(|e| e.to_string())?
        );
    } else {
        print_table(&report);
    }
    Ok(())
}

fn not_applicable() -> CallResult {
    CallResult {
        kind: "n/a",
        detail: "swap is always consistent".into(),
        outcome: None,
        dot: None,
        request_id: None,
    }
}

fn cell_key(side: &str, op: Op, consistent: bool, blocking: bool) -> String {
    let op = match op {
        Op::Get => "get",
        Op::Set => "set",
        Op::Swap => "swap",
    };
    let c = if consistent { "consistent" } else { "local" };
    let b = if blocking { "blocking" } else { "deadline" };
    format!("demo/{side}/{op}-{c}-{b}")
}

/// Asks the cut-off member (healed now) how a pending request ended.
async fn decide(
    cluster: &LocalCluster,
    member: usize,
    cell: &Cell,
) -> Result<&'static str, String> {
    let Some([session_id, seq]) = cell.result.request_id else {
        return Err(format!("no request id in {:?}", cell.result));
    };
    let answer = DialClient::new(cluster.channel(member))
        .outcome(DialOutcomeRequest {
            request_id: Some(rafter_proto::rafterpb::RequestId { session_id, seq }),
            deadline: Some(Deadline {
                blocking: true,
                timeout_ms: 0,
            }),
        })
        .await
        .map_err(|e| format!("outcome of {session_id}-{seq}: {e}"))?
        .into_inner();
    Ok(outcome_name(answer.outcome()))
}

/// Where the local writes ended up: each key's value on the healed
/// cluster, read consistently once the cut-off member's queue drained.
async fn landings(
    cluster: &LocalCluster,
    majority: usize,
    cells: &[Cell],
) -> Result<Vec<Landing>, String> {
    let mut out = Vec::new();
    for cell in cells {
        if cell.op != Op::Set || cell.consistent || cell.result.kind != "succeeded" {
            continue;
        }
        let local_value = format!("{}'s", cell.side);
        let now = wait_value(cluster, majority, &cell.key, &local_value).await?;
        out.push(Landing {
            key: cell.key.clone(),
            written_on: cell.side,
            local_value,
            now,
        });
    }
    Ok(out)
}

/// Calls `probe` every 20 ms until it says it is done or `limit` passed;
/// returns its last answer and whether it was done.
async fn poll<T, F, Fut>(limit: Duration, mut probe: F) -> Result<(T, bool), String>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<(T, bool), String>>,
{
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        let (answer, done) = probe().await?;
        if done || tokio::time::Instant::now() >= deadline {
            return Ok((answer, done));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Polls a consistent read of `key` until it holds `value` (10 s at most);
/// returns what it holds then.
async fn wait_value(
    cluster: &LocalCluster,
    member: usize,
    key: &str,
    value: &str,
) -> Result<String, String> {
    let want = format!("{value:?}");
    let want = want.as_str();
    let (now, _) = poll(Duration::from_secs(10), move || async move {
        let r = call(
            DialClient::new(cluster.channel(member)),
            Op::Get,
            key.into(),
            String::new(),
            true,
            Deadline::default(),
        )
        .await;
        let done = r.detail.starts_with(want);
        Ok((r.detail, done))
    })
    .await?;
    Ok(now)
}

async fn conflict_lines(cluster: &LocalCluster, member: usize) -> Result<Vec<String>, String> {
    let (lines, _) = poll(Duration::from_secs(10), move || async move {
        let log = ConflictsClient::new(cluster.channel(member))
            .list(ConflictListRequest::default())
            .await
            .map_err(|e| format!("conflict log: {e}"))?
            .into_inner();
        let lines: Vec<String> = log
            .conflicts
            .iter()
            .map(|c| {
                format!(
                    "{} {:?} local={:?} committed={:?}",
                    text(&c.key),
                    c.decision(),
                    text(&c.local_value),
                    text(&c.committed_value)
                )
            })
            .collect();
        let done = !lines.is_empty();
        Ok((lines, done))
    })
    .await?;
    Ok(lines)
}

/// Waits until member `index` applied every key (a local read finds it).
async fn wait_applied(cluster: &LocalCluster, index: usize, keys: &[String]) -> Result<(), String> {
    for key in keys {
        let (_, applied) = poll(Duration::from_secs(10), move || async move {
            let r = call(
                DialClient::new(cluster.channel(index)),
                Op::Get,
                key.clone(),
                String::new(),
                false,
                Deadline::default(),
            )
            .await;
            Ok(((), r.kind == "succeeded" && r.detail != "absent"))
        })
        .await?;
        if !applied {
            return Err(format!("m{index} did not apply {key} within 10 s"));
        }
    }
    Ok(())
}

async fn wait_leaderless(cluster: &LocalCluster, index: usize) -> Result<(), String> {
    let (_, leaderless) = poll(Duration::from_secs(20), move || async move {
        let status = cluster.status(index, Duration::from_millis(500)).await;
        Ok(((), status.is_some_and(|s| s.leader == 0)))
    })
    .await?;
    if !leaderless {
        return Err(format!(
            "m{index} still follows a leader 20 s after the cut"
        ));
    }
    Ok(())
}

fn print_table(r: &Report) {
    println!(
        "m{} cut off from its peers; majority side answered by {}\n",
        r.cut_off.trim_start_matches('m'),
        r.majority
    );
    println!(
        "{:<5} {:<10} {:<8} | {:<44} | minority (cut off)",
        "op", "consistent", "blocking", "majority"
    );
    let describe = |c: &Cell| -> String {
        let mut s = format!("{}: {}", c.result.kind, c.result.detail);
        if let Some(dot) = &c.result.dot {
            s.push_str(&format!(" [{dot}]"));
        }
        if let Some(after) = &c.after_heal {
            s.push_str(&format!("; after heal {}: {}", after.kind, after.detail));
        }
        if let Some(decided) = c.decided {
            s.push_str(&format!("; decided after heal: {decided}"));
        }
        s
    };
    let (majority, minority): (Vec<&Cell>, Vec<&Cell>) =
        r.cells.iter().partition(|c| c.side == "majority");
    for (m, n) in majority.iter().zip(&minority) {
        println!(
            "{:<5} {:<10} {:<8} | {:<44} | {}",
            format!("{:?}", m.op).to_lowercase(),
            if m.consistent { "true" } else { "false" },
            if m.blocking { "true" } else { "false" },
            describe(m),
            describe(n)
        );
    }
    println!("\nwhere the local writes ended up (consistent reads after the heal):");
    for l in &r.local_writes {
        println!(
            "  {} (written on the {} side as {:?}): {}",
            l.key, l.written_on, l.local_value, l.now
        );
    }
    println!("\nconflict log (both sides wrote demo/both during the cut):");
    for c in &r.conflicts {
        println!("  {c}");
    }
}
