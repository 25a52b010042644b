//! Definite outcomes and exactly-once under faults, on a 3-member cluster
//! of real processes.
//!
//! Six clients, each in a session of its own, call the dial service on two
//! keys: consistent Gets, Sets and Swaps with short timeouts (1-40 ms)
//! and unique values, moving to the next member when one fails. Meanwhile
//! the test kills -9 and restarts the leader and a follower, pauses
//! (SIGSTOP / SIGCONT) a follower and the leader, and cuts the leader and a
//! follower off from their peers (a proxy in front of each member's peer
//! port drops what peers send it; clients still reach it). Every mutation's outcome
//! is made definite: one whose answer was `pending`, or lost with its
//! member, is decided at once with `Outcome` through another member (while
//! a copy of it may still sit in a paused member), or after the run.
//!
//! Then:
//! - the keys' whole revision history (a watch from revision 1) holds each
//!   value at most once; every value of an applied Set or swapped Swap
//!   exactly once; no value of a cancelled request, or of a Swap that
//!   answered "not swapped", ever;
//! - the history of Gets, Sets and Swaps, with the decided outcomes (a
//!   cancelled request removed, a pending one answered when `Outcome`
//!   answered), is linearizable for a register with compare-and-swap
//!   (`rafter_sim::checker`).

mod common;

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::cluster::{client_for, exclusive, Cluster, POLL_INTERVAL};
use common::faults;
use etcd_client::{EventType, WatchOptions};
use rafter_proto::rafterpb::dial_client::DialClient;
use rafter_proto::rafterpb::*;
use rafter_sim::checker::register::{Register, RegisterInput, RegisterOutput};
use rafter_sim::checker::{check, Budget, CheckResult, Operation};
use tonic::transport::Channel;

const CLIENTS: usize = 6;
const KEYS: usize = 2;
const FAULT_LENGTH: Duration = Duration::from_millis(1500);
const DEADLINE: Duration = Duration::from_secs(60);
/// Longest one call may take before the client moves to the next member.
const CALL_LIMIT: Duration = Duration::from_millis(400);

fn key(k: usize) -> String {
    format!("dial-fault/{k}")
}

#[derive(Debug, Clone)]
enum Kind {
    Get,
    Set { value: u64 },
    Swap { old: Option<u64>, new: u64 },
}

/// What became of a call.
#[derive(Debug, Clone)]
enum Fate {
    /// A Get's value, or a mutation's answer (for a Swap: swapped).
    Done {
        read: Option<u64>,
        swapped: bool,
    },
    Cancelled,
    /// Not known yet: decided after the run through `Outcome`.
    Undecided(RequestId),
    /// A read that timed out or failed: it constrains nothing.
    NoRead,
}

#[derive(Debug, Clone)]
struct Call {
    client: usize,
    key: usize,
    kind: Kind,
    call_ns: u64,
    return_ns: u64,
    fate: Fate,
    /// The first answer was not definite (pending, or lost with its
    /// member): decided by a retry or by `Outcome`.
    decided_later: bool,
}

fn parse(v: &[u8]) -> u64 {
    std::str::from_utf8(v)
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("a value the test never wrote: {v:?}"))
}

async fn dial(endpoint: &str) -> DialClient<Channel> {
    DialClient::new(
        tonic::transport::Endpoint::from_shared(endpoint.to_string())
            .expect("endpoint")
            .connect_timeout(Duration::from_secs(1))
            .connect_lazy(),
    )
}

fn deadline(rng: &mut u64) -> Option<Deadline> {
    Some(Deadline {
        blocking: false,
        timeout_ms: 1 + next(rng) % 40,
    })
}

fn next(rng: &mut u64) -> u64 {
    *rng ^= *rng << 13;
    *rng ^= *rng >> 7;
    *rng ^= *rng << 17;
    *rng
}

/// One client's loop until `stop`.
async fn run_client(
    id: usize,
    endpoints: Vec<String>,
    started: Instant,
    stop: Arc<AtomicBool>,
    calls: Arc<Mutex<Vec<Call>>>,
) {
    let mut rng = 0x9e37_79b9_7f4a_7c15_u64 ^ ((id as u64 + 1) * 0x1234_5678);
    let mut member = id % endpoints.len();
    let now_ns = || started.elapsed().as_nanos() as u64;
    // A session of our own, opened through whichever member answers.
    let session = loop {
        let mut d = dial(&endpoints[member]).await;
        match tokio::time::timeout(
            CALL_LIMIT,
            d.session_open(SessionOpenRequest {
                timeout_ms: 300_000,
            }),
        )
        .await
        {
            Ok(Ok(r)) => break r.into_inner().session_id,
            _ => member = (member + 1) % endpoints.len(),
        }
    };
    let mut seq = 0u64;
    let mut counter = 0u64;
    let mut last_seen: HashMap<usize, Option<u64>> = HashMap::new();
    while !stop.load(Ordering::Relaxed) {
        let k = (next(&mut rng) % KEYS as u64) as usize;
        let roll = next(&mut rng) % 10;
        counter += 1;
        let unique = (id as u64 + 1) * 1_000_000 + counter;
        let kind = match roll {
            0..=3 => Kind::Get,
            4..=6 => Kind::Set { value: unique },
            _ => Kind::Swap {
                old: last_seen.get(&k).copied().flatten(),
                new: unique,
            },
        };
        let mut d = dial(&endpoints[member]).await;
        let call_ns = now_ns();
        let tag = |seq: u64| {
            Some(SessionTag {
                session_id: session,
                seq,
                acked_below: 0,
            })
        };
        let fate = match &kind {
            Kind::Get => {
                let req = DialGetRequest {
                    key: key(k).into(),
                    consistent: true,
                    deadline: deadline(&mut rng),
                };
                match tokio::time::timeout(CALL_LIMIT, d.get(req)).await {
                    Ok(Ok(r)) if r.get_ref().valid => {
                        let r = r.into_inner();
                        let read = r.found.then(|| parse(&r.value));
                        last_seen.insert(k, read);
                        Fate::Done {
                            read,
                            swapped: false,
                        }
                    }
                    Ok(Ok(_)) => Fate::NoRead,
                    _ => {
                        member = (member + 1) % endpoints.len();
                        Fate::NoRead
                    }
                }
            }
            Kind::Set { value } | Kind::Swap { new: value, .. } => {
                seq += 1;
                let id = RequestId {
                    session_id: session,
                    seq,
                };
                let answer = match &kind {
                    Kind::Set { .. } => {
                        let req = DialSetRequest {
                            key: key(k).into(),
                            value: value.to_string().into(),
                            consistent: true,
                            deadline: deadline(&mut rng),
                            session: tag(seq),
                        };
                        tokio::time::timeout(CALL_LIMIT, d.set(req)).await
                    }
                    Kind::Swap { old, .. } => {
                        let req = DialSwapRequest {
                            key: key(k).into(),
                            new_value: value.to_string().into(),
                            old_value: old.map(|o| o.to_string().into()).unwrap_or_default(),
                            old_absent: old.is_none(),
                            deadline: deadline(&mut rng),
                            session: tag(seq),
                        };
                        tokio::time::timeout(CALL_LIMIT, d.swap(req)).await
                    }
                    Kind::Get => unreachable!(),
                };
                match answer {
                    Ok(Ok(r)) => {
                        let r = r.into_inner();
                        match r.outcome() {
                            Outcome::Applied => {
                                if r.valid {
                                    last_seen.insert(k, Some(*value));
                                } else if r.error.is_empty() {
                                    last_seen.insert(k, r.found.then(|| parse(&r.value)));
                                }
                                Fate::Done {
                                    read: None,
                                    swapped: r.valid,
                                }
                            }
                            Outcome::Cancelled => Fate::Cancelled,
                            _ => Fate::Undecided(id),
                        }
                    }
                    _ => {
                        member = (member + 1) % endpoints.len();
                        Fate::Undecided(id)
                    }
                }
            }
        };
        let mut return_ns = now_ns();
        let decided_later = matches!(fate, Fate::Undecided(_));
        let mut fate = fate;
        if let (Fate::Undecided(_), true) = (&fate, next(&mut rng).is_multiple_of(2)) {
            // Retry the same request (same tag) through the next member:
            // whatever the first copy did, the retry must not apply it
            // again.
            member = (member + 1) % endpoints.len();
            if let Some(answer) = retry(&endpoints[member], &kind, k, tag(seq)).await {
                fate = answer;
                return_ns = now_ns();
            }
        }
        if let Fate::Undecided(id) = &fate {
            // Learn the outcome now, through the other members, while
            // copies of the request may still sit in a paused member.
            if let Some(decided) = decide_now(&endpoints, &mut member, id, &stop).await {
                fate = decided;
                return_ns = now_ns();
            }
        }
        calls.lock().expect("calls").push(Call {
            client: id,
            key: k,
            kind,
            call_ns,
            return_ns,
            fate,
            decided_later,
        });
    }
}

/// Sends a mutation again with its tag; its answer if definite.
async fn retry(endpoint: &str, kind: &Kind, k: usize, session: Option<SessionTag>) -> Option<Fate> {
    let mut d = dial(endpoint).await;
    let deadline = Some(Deadline {
        blocking: false,
        timeout_ms: 200,
    });
    let answer = match kind {
        Kind::Set { value } => {
            let req = DialSetRequest {
                key: key(k).into(),
                value: value.to_string().into(),
                consistent: true,
                deadline,
                session,
            };
            tokio::time::timeout(CALL_LIMIT, d.set(req)).await
        }
        Kind::Swap { old, new } => {
            let req = DialSwapRequest {
                key: key(k).into(),
                new_value: new.to_string().into(),
                old_value: old.map(|o| o.to_string().into()).unwrap_or_default(),
                old_absent: old.is_none(),
                deadline,
                session,
            };
            tokio::time::timeout(CALL_LIMIT, d.swap(req)).await
        }
        Kind::Get => return None,
    };
    let r = answer.ok()?.ok()?.into_inner();
    match r.outcome() {
        Outcome::Applied => Some(Fate::Done {
            read: None,
            swapped: r.valid,
        }),
        Outcome::Cancelled => Some(Fate::Cancelled),
        _ => None,
    }
}

/// Asks members in turn for a request's outcome until one decides it (or
/// the run stops: it is decided after the run then).
async fn decide_now(
    endpoints: &[String],
    member: &mut usize,
    id: &RequestId,
    stop: &AtomicBool,
) -> Option<Fate> {
    while !stop.load(Ordering::Relaxed) {
        *member = (*member + 1) % endpoints.len();
        let mut d = dial(&endpoints[*member]).await;
        let req = DialOutcomeRequest {
            request_id: Some(*id),
            deadline: Some(Deadline {
                blocking: false,
                timeout_ms: 500,
            }),
        };
        if let Ok(Ok(r)) = tokio::time::timeout(CALL_LIMIT, d.outcome(req)).await {
            let r = r.into_inner();
            match r.outcome() {
                Outcome::Applied => {
                    return Some(Fate::Done {
                        read: None,
                        swapped: r.valid,
                    })
                }
                Outcome::Cancelled => return Some(Fate::Cancelled),
                _ => {}
            }
        }
    }
    None
}

/// Decides an undecided call through `Outcome`, blocking, trying members
/// until one answers.
async fn decide(cluster: &Cluster, id: &RequestId) -> (Fate, Instant) {
    let started = Instant::now();
    loop {
        for m in cluster.running() {
            let mut d = dial(&cluster.endpoint(m)).await;
            let req = DialOutcomeRequest {
                request_id: Some(*id),
                deadline: Some(Deadline {
                    blocking: true,
                    timeout_ms: 0,
                }),
            };
            if let Ok(Ok(r)) = tokio::time::timeout(CALL_LIMIT, d.outcome(req)).await {
                let r = r.into_inner();
                let fate = match r.outcome() {
                    Outcome::Applied => Fate::Done {
                        read: None,
                        swapped: r.valid,
                    },
                    Outcome::Cancelled => Fate::Cancelled,
                    other => panic!("Outcome did not decide {id:?}: {other:?} {r:?}"),
                };
                return (fate, Instant::now());
            }
        }
        assert!(started.elapsed() < DEADLINE, "no member decided {id:?}");
        tokio::time::sleep(POLL_INTERVAL).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn timed_out_requests_have_definite_outcomes_and_swaps_are_linearizable_under_faults() {
    let _serial = exclusive().await;
    let mut cluster = Cluster::start_with_peer_proxies(3, &[]).await;
    let endpoints: Vec<String> = (0..3).map(|i| cluster.endpoint(i)).collect();
    let started = Instant::now();
    let stop = Arc::new(AtomicBool::new(false));
    let calls = Arc::new(Mutex::new(Vec::new()));
    let clients: Vec<_> = (0..CLIENTS)
        .map(|id| {
            tokio::spawn(run_client(
                id,
                endpoints.clone(),
                started,
                stop.clone(),
                calls.clone(),
            ))
        })
        .collect();
    tokio::time::sleep(Duration::from_secs(1)).await;
    for fault in [
        "kill leader",
        "pause follower",
        "cut leader",
        "kill follower",
        "pause leader",
        "cut follower",
    ] {
        faults::inject(&mut cluster, fault, FAULT_LENGTH, started).await;
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    stop.store(true, Ordering::Relaxed);
    for c in clients {
        c.await.expect("client task");
    }
    let mut calls = calls.lock().expect("calls").clone();

    // Decide every undecided mutation.
    let mut decided_after_run = 0;
    for call in &mut calls {
        if let Fate::Undecided(id) = &call.fate {
            let (fate, at) = decide(&cluster, id).await;
            decided_after_run += 1;
            call.fate = fate;
            call.return_ns = (at - started).as_nanos() as u64;
        }
    }
    let count = |f: &dyn Fn(&Call) -> bool| calls.iter().filter(|c| f(c)).count();
    let mutations = count(&|c| !matches!(c.kind, Kind::Get));
    let cancelled = count(&|c| matches!(c.fate, Fate::Cancelled));
    let applied = count(&|c| !matches!(c.kind, Kind::Get) && matches!(c.fate, Fate::Done { .. }));
    let decided_later = count(&|c| c.decided_later);
    println!(
        "{} calls: {mutations} mutations, {applied} applied, {cancelled} cancelled, {decided_later} decided by a retry or Outcome ({decided_after_run} after the run)",
        calls.len()
    );
    assert!(applied > 50, "too little was applied to judge");
    assert!(
        cancelled + decided_later > 0,
        "no request timed out: the timeouts did not bite"
    );

    // The keys' whole revision history.
    let mut history: BTreeMap<u64, usize> = BTreeMap::new();
    let mut client = client_for(&cluster.endpoint(cluster.leader().await)).await;
    let current = client
        .get(
            "dial-fault/",
            Some(etcd_client::GetOptions::new().with_prefix()),
        )
        .await
        .expect("range")
        .header()
        .expect("header")
        .revision();
    let (_watcher, mut stream) = client
        .watch(
            "dial-fault/",
            Some(WatchOptions::new().with_prefix().with_start_revision(1)),
        )
        .await
        .expect("watch");
    let mut seen_rev = 0;
    while seen_rev < current {
        let resp = tokio::time::timeout(Duration::from_secs(10), stream.message())
            .await
            .expect("watch answers")
            .expect("watch stream")
            .expect("watch open");
        for e in resp.events() {
            let kv = e.kv().expect("kv");
            seen_rev = seen_rev.max(kv.mod_revision());
            if e.event_type() == EventType::Put {
                *history.entry(parse(kv.value())).or_default() += 1;
            }
        }
        if resp.events().is_empty() {
            seen_rev = seen_rev.max(resp.header().map_or(0, |h| h.revision()));
        }
    }
    for (value, times) in &history {
        assert_eq!(*times, 1, "value {value} was written {times} times");
    }
    for call in &calls {
        let value = match call.kind {
            Kind::Get => continue,
            Kind::Set { value } | Kind::Swap { new: value, .. } => value,
        };
        let times = history.get(&value).copied().unwrap_or(0);
        let expected = match (&call.kind, &call.fate) {
            (_, Fate::Cancelled) => 0,
            (Kind::Set { .. }, Fate::Done { .. }) => 1,
            (Kind::Swap { .. }, Fate::Done { swapped, .. }) => usize::from(*swapped),
            other => panic!("undecided at the end: {other:?}"),
        };
        assert_eq!(times, expected, "{call:?} is in the history {times} times");
    }

    // Linearizability of the register history with the decided outcomes.
    type Op = Operation<RegisterInput<usize, u64>, RegisterOutput<u64>>;
    let mut ops: Vec<Op> = Vec::new();
    for c in &calls {
        let input = match c.kind {
            Kind::Get => RegisterInput::Get { key: c.key },
            Kind::Set { value } => RegisterInput::Put { key: c.key, value },
            Kind::Swap { old, new } => RegisterInput::Cas {
                key: c.key,
                expected: old,
                new,
            },
        };
        let output = match (&c.kind, &c.fate) {
            (_, Fate::Cancelled) | (_, Fate::NoRead) => continue,
            (Kind::Get, Fate::Done { read, .. }) => RegisterOutput::Get(*read),
            (Kind::Set { .. }, Fate::Done { .. }) => RegisterOutput::Put,
            (Kind::Swap { .. }, Fate::Done { swapped, .. }) => RegisterOutput::Cas(*swapped),
            (_, Fate::Undecided(_)) => unreachable!("decided above"),
        };
        ops.push(Operation::ok(
            c.client,
            c.call_ns,
            c.return_ns,
            input,
            output,
        ));
    }
    match check(&Register::new(), &ops, Budget::steps(50_000_000)) {
        CheckResult::Ok => {}
        other => panic!("not shown linearizable: {other}"),
    }
}
