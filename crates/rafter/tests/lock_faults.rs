//! The Lock service under member faults, on a 3-member cluster.
//!
//! Three competitors take the same lock over and over through etcd's Lock
//! service, each holding with a lease of its own (a fresh one per holding,
//! kept alive while it waits and holds). Each competitor talks to one member
//! and moves on to the next when a request fails or hangs. Meanwhile the test
//! kills -9 and restarts members one at a time (the leader, a follower, the
//! leader again) and pauses the leader and a follower with SIGSTOP / SIGCONT
//! for a second each.
//!
//! A holder reads a fencing counter and writes counter+1, both in a Txn
//! guarded by `mod_revision(lock key) > 0` (its lock key still exists:
//! etcd's fencing pattern), then unlocks. Every holding is recorded (acquire
//! and release time, the lock key and its create revision, the Lock
//! response's revision, the counter read, the write's outcome). At the end
//! the revision history of the keys (lock keys and counter, from a watch
//! from the test's first revision) is checked against the records:
//! - the counter went 1, 2, 3, ... in revision order: every applied write
//!   incremented it by exactly one (a second holder at the same time would
//!   have written a value twice or gone backwards), and each successful
//!   fenced write is in the history at its revision with its value;
//! - successful fenced writes read distinct counter values, increasing in
//!   the order of their lock keys' create revisions;
//! - when Lock answered, every lock key created before the holder's had
//!   been deleted (at or before the response's revision), and at each
//!   successful fenced write the writer's key was the oldest lock key;
//! - the lock makes progress (an acquisition with a successful fenced write)
//!   while a member is down and after every restart or resume, within
//!   [`PROGRESS_DEADLINE`].
//!
//! Runs real member processes through [`common::cluster::Cluster`]; with
//! `RAFTER_TEST_TARGET=etcd` against a real etcd cluster. Waits poll with
//! deadlines; timings are printed, not asserted.

mod common;

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::cluster::{client_for, client_request_timeout, exclusive, Cluster, POLL_INTERVAL};
use common::{range_of, revision};
use etcd_client::{Client, Compare, CompareOp, EventType, LockOptions, Txn, TxnOp, WatchOptions};

const MEMBERS: usize = 3;
const COMPETITORS: usize = 3;
const PREFIX: &str = "lock-fault/";
const LOCK_NAME: &str = "lock-fault/lock";
const COUNTER: &str = "lock-fault/counter";
/// TTL of each holding's lease, in seconds: short, so a holding whose
/// competitor lost touch with the cluster releases the lock soon.
const SESSION_TTL: i64 = 2;
/// Pace of the keep-alives of a holding's lease.
const KEEP_ALIVE_EVERY: Duration = Duration::from_millis(500);
/// Longest one request through one member may take before the competitor
/// tries the next member (a paused or cut-off member holds requests).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(2);
/// Longest one Lock call may wait before the competitor gives up on it and
/// retries with a new lease through the next member.
const LOCK_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a holder holds the lock between its fenced write and unlocking.
const HOLD: Duration = Duration::from_millis(20);
/// How long a killed member stays down at least, and a paused one paused.
const FAULT_LENGTH: Duration = Duration::from_secs(1);
/// Longest the lock may go without a successful holding after a fault.
const PROGRESS_DEADLINE: Duration = Duration::from_secs(15);
/// Longest the end of the test may wait for something.
const DEADLINE: Duration = Duration::from_secs(30);

/// What became of a holder's fenced write.
#[derive(Debug, Clone, PartialEq)]
enum Write {
    /// Not attempted: the guarded read failed or found the lock key gone.
    NotTried(String),
    /// Applied at this revision.
    Succeeded(i64),
    /// Not applied: the lock key was gone.
    GuardFailed,
    /// No answer: it may or may not have been applied.
    Unknown(String),
}

/// One acquisition of the lock.
#[derive(Debug, Clone)]
struct Holding {
    competitor: usize,
    key: String,
    /// The revision in the Lock response's header.
    lock_revision: i64,
    /// The lock key's create revision, from the guarded read.
    create_revision: Option<i64>,
    acquired: Instant,
    released: Instant,
    /// The counter value the guarded read returned.
    read: Option<i64>,
    write: Write,
}

/// A competitor: one client per member, and the member it uses now.
struct Competitor {
    id: usize,
    clients: Vec<Client>,
    member: usize,
}

impl Competitor {
    /// Runs `op` through the current member within `limit`; on an error or
    /// timeout, moves on to the next member and returns the error.
    async fn call<T, F, Fut>(&mut self, limit: Duration, op: F) -> Result<T, String>
    where
        F: FnOnce(Client) -> Fut,
        Fut: Future<Output = Result<T, etcd_client::Error>>,
    {
        let client = self.clients[self.member].clone();
        let result = match tokio::time::timeout(limit, op(client)).await {
            Ok(Ok(value)) => return Ok(value),
            Ok(Err(e)) => e.to_string(),
            Err(_) => format!("no answer within {limit:?}"),
        };
        self.member = (self.member + 1) % self.clients.len();
        Err(result)
    }

    /// One holding: a fresh lease, Lock, the fenced read and write, Unlock,
    /// revoke. `None` if no lease could be granted or Lock failed.
    async fn hold_once(&mut self) -> Option<Holding> {
        let lease = self
            .call(REQUEST_TIMEOUT, |mut c| async move {
                c.lease_grant(SESSION_TTL, None).await
            })
            .await
            .ok()?
            .id();
        let keeper = tokio::spawn(keep_alive(self.clients.clone(), self.member, lease));
        let holding = self.lock_and_write(lease).await;
        keeper.abort();
        // Best effort: the lease expires anyway.
        let _ = self
            .call(REQUEST_TIMEOUT, |mut c| async move {
                c.lease_revoke(lease).await
            })
            .await;
        holding
    }

    async fn lock_and_write(&mut self, lease: i64) -> Option<Holding> {
        let locked = self
            .call(LOCK_TIMEOUT, |mut c| async move {
                c.lock(LOCK_NAME, Some(LockOptions::new().with_lease(lease)))
                    .await
            })
            .await
            .ok()?;
        let acquired = Instant::now();
        let key = String::from_utf8(locked.key().to_vec()).expect("UTF-8 lock key");
        let mut holding = Holding {
            competitor: self.id,
            key: key.clone(),
            lock_revision: revision(locked.header()),
            create_revision: None,
            acquired,
            released: acquired,
            read: None,
            write: Write::NotTried(String::new()),
        };
        let guard = || Compare::mod_revision(key.as_str(), CompareOp::Greater, 0);

        let read = Txn::new()
            .when([guard()])
            .and_then([TxnOp::get(COUNTER, None), TxnOp::get(key.as_str(), None)]);
        match self
            .call(REQUEST_TIMEOUT, |mut c| async move { c.txn(read).await })
            .await
        {
            Ok(response) if response.succeeded() => {
                let ops = response.op_responses();
                let counter = range_of(&ops[0])
                    .kvs()
                    .first()
                    .map(|kv| {
                        kv.value_str()
                            .expect("UTF-8 counter")
                            .parse::<i64>()
                            .expect("numeric counter")
                    })
                    .unwrap_or(0);
                holding.read = Some(counter);
                holding.create_revision = range_of(&ops[1])
                    .kvs()
                    .first()
                    .map(|kv| kv.create_revision());
                let write = Txn::new().when([guard()]).and_then([TxnOp::put(
                    COUNTER,
                    (counter + 1).to_string(),
                    None,
                )]);
                holding.write = match self
                    .call(REQUEST_TIMEOUT, |mut c| async move { c.txn(write).await })
                    .await
                {
                    Ok(response) if response.succeeded() => {
                        Write::Succeeded(revision(response.header()))
                    }
                    Ok(_) => Write::GuardFailed,
                    Err(e) => Write::Unknown(e),
                };
            }
            Ok(_) => holding.write = Write::NotTried("the lock key was gone".into()),
            Err(e) => holding.write = Write::NotTried(e),
        }
        if matches!(holding.write, Write::Succeeded(_)) {
            tokio::time::sleep(HOLD).await;
        }
        for _ in 0..self.clients.len() {
            let key = key.clone();
            let unlocked = self
                .call(REQUEST_TIMEOUT, |mut c| async move { c.unlock(key).await })
                .await;
            if unlocked.is_ok() {
                break;
            }
        }
        holding.released = Instant::now();
        Some(holding)
    }
}

/// Keeps `lease` alive until aborted (or the lease is gone), through
/// `member` and on to the next member when one fails.
async fn keep_alive(clients: Vec<Client>, mut member: usize, lease: i64) {
    loop {
        let mut client = clients[member].clone();
        match tokio::time::timeout(KEEP_ALIVE_EVERY, client.lease_keep_alive(lease)).await {
            Ok(Ok(_)) => {}
            Ok(Err(e)) if e.to_string().contains("lease not found") => return,
            _ => member = (member + 1) % clients.len(),
        }
        tokio::time::sleep(KEEP_ALIVE_EVERY).await;
    }
}

/// Takes the lock over and over until `stop` is set, recording every
/// holding in `history`.
async fn compete(
    mut competitor: Competitor,
    stop: Arc<AtomicBool>,
    history: Arc<Mutex<Vec<Holding>>>,
) {
    while !stop.load(Ordering::SeqCst) {
        match competitor.hold_once().await {
            Some(holding) => history.lock().unwrap().push(holding),
            None => tokio::time::sleep(POLL_INTERVAL).await,
        }
    }
}

/// Waits until some holding acquired after `since` made a successful fenced
/// write; returns how long that took from `since`.
async fn wait_progress(
    cluster: &Cluster,
    history: &Mutex<Vec<Holding>>,
    since: Instant,
    what: &str,
) -> Duration {
    let deadline = since + PROGRESS_DEADLINE;
    loop {
        let done = history
            .lock()
            .unwrap()
            .iter()
            .filter(|h| h.acquired > since && matches!(h.write, Write::Succeeded(_)))
            .map(|h| h.released)
            .min();
        if let Some(at) = done {
            let took = at.saturating_duration_since(since);
            println!("progress {what}: a fenced write within {took:?}");
            return took;
        }
        if Instant::now() >= deadline {
            cluster.fail(&format!(
                "no holding with a successful fenced write {what} within {PROGRESS_DEADLINE:?}; \
                 holdings: {:#?}",
                history.lock().unwrap()
            ));
        }
        tokio::time::sleep(POLL_INTERVAL).await;
    }
}

/// One event of the keys' history.
#[derive(Debug, Clone)]
struct Event {
    kind: EventType,
    key: String,
    value: String,
    create_revision: i64,
    mod_revision: i64,
}

/// Every event under [`PREFIX`] from `start` until the sentinel key, read
/// through a running member.
async fn key_history(cluster: &Cluster, start: i64, sentinel: &str) -> Vec<Event> {
    let member = cluster.running()[0];
    let mut client = client_for(&cluster.endpoint(member)).await;
    let options = WatchOptions::new().with_prefix().with_start_revision(start);
    let (_watcher, mut stream) = tokio::time::timeout(
        client_request_timeout(),
        client.watch(PREFIX, Some(options)),
    )
    .await
    .expect("watch in time")
    .expect("watch the history");
    let deadline = Instant::now() + DEADLINE;
    let mut events = Vec::new();
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let message = match tokio::time::timeout(left, stream.message()).await {
            Ok(Ok(Some(message))) => message,
            other => cluster.fail(&format!(
                "the history watch ended before the sentinel after {} events: {other:?}",
                events.len()
            )),
        };
        for event in message.events() {
            let kv = event.kv().expect("event kv");
            let key = kv.key_str().expect("UTF-8 key").to_string();
            if key == sentinel {
                return events;
            }
            events.push(Event {
                kind: event.event_type(),
                value: kv.value_str().expect("UTF-8 value").to_string(),
                key,
                create_revision: kv.create_revision(),
                mod_revision: kv.mod_revision(),
            });
        }
    }
}

/// Sends `signal` to the member's process.
fn signal(cluster: &Cluster, member: usize, signal: libc::c_int) {
    let pid = cluster.pid(member).expect("the member runs") as libc::pid_t;
    // SAFETY: kill(2) with the pid of our own child process.
    let result = unsafe { libc::kill(pid, signal) };
    assert_eq!(result, 0, "signal {signal} to {}", cluster.name(member));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lock_stays_exclusive_and_live_across_kill9_restart_and_pause() {
    let _serial = exclusive().await;
    let mut cluster = Cluster::start(MEMBERS, &[]).await;
    let test_started = Instant::now();
    let start = {
        let mut client = cluster.client(0).await;
        let response = client.get("never-written", None).await.expect("range");
        revision(response.header()) + 1
    };

    let stop = Arc::new(AtomicBool::new(false));
    let history = Arc::new(Mutex::new(Vec::new()));
    let mut competitors = Vec::new();
    for id in 0..COMPETITORS {
        let mut clients = Vec::new();
        for member in 0..MEMBERS {
            clients.push(cluster.client(member).await);
        }
        let competitor = Competitor {
            id,
            clients,
            member: id % MEMBERS,
        };
        competitors.push(tokio::spawn(compete(
            competitor,
            Arc::clone(&stop),
            Arc::clone(&history),
        )));
    }
    wait_progress(&cluster, &history, test_started, "before any fault").await;

    // Kill -9 and restart, or pause, one member at a time: the leader, a
    // follower, then (after pausing the leader and a follower) the leader
    // again.
    let mut faults = Vec::new();
    for fault in [
        "kill the leader",
        "kill a follower",
        "pause the leader",
        "pause a follower",
        "kill the leader",
    ] {
        let leader = cluster.leader().await;
        let victim = if fault.contains("follower") {
            cluster.followers().await[0]
        } else {
            leader
        };
        let name = cluster.name(victim).to_string();
        let began = Instant::now();
        if fault.starts_with("pause") {
            signal(&cluster, victim, libc::SIGSTOP);
            tokio::time::sleep(FAULT_LENGTH).await;
            signal(&cluster, victim, libc::SIGCONT);
            let resumed = Instant::now();
            let after = wait_progress(
                &cluster,
                &history,
                resumed,
                &format!("after resuming {name}"),
            )
            .await;
            faults.push(format!(
                "{fault}: paused {name} {:?}; progress {after:?} after",
                resumed - began
            ));
        } else {
            cluster.kill9(victim);
            let during =
                wait_progress(&cluster, &history, began, &format!("while {name} is down")).await;
            tokio::time::sleep_until((began + FAULT_LENGTH).into()).await;
            cluster.restart(victim).await;
            let restarted = Instant::now();
            let after = wait_progress(
                &cluster,
                &history,
                restarted,
                &format!("after restarting {name}"),
            )
            .await;
            faults.push(format!(
                "{fault}: killed {name} for {:?}; progress {during:?} into it, {after:?} after the restart",
                restarted - began
            ));
        }
    }

    stop.store(true, Ordering::SeqCst);
    for competitor in competitors {
        tokio::time::timeout(DEADLINE, competitor)
            .await
            .expect("the competitors stop in time")
            .expect("a competitor task");
    }
    let sentinel = format!("{PREFIX}zz-end");
    let survivor = cluster.running()[0];
    cluster
        .client(survivor)
        .await
        .put(sentinel.as_str(), "end", None)
        .await
        .expect("put the sentinel");
    let events = key_history(&cluster, start, &sentinel).await;
    let holdings = history.lock().unwrap().clone();
    check(&cluster, &holdings, &events);

    let succeeded = holdings
        .iter()
        .filter(|h| matches!(h.write, Write::Succeeded(_)))
        .count();
    let guard_failed = holdings
        .iter()
        .filter(|h| h.write == Write::GuardFailed)
        .count();
    let unknown = holdings
        .iter()
        .filter(|h| matches!(h.write, Write::Unknown(_)))
        .count();
    let overlapping = holdings
        .iter()
        .enumerate()
        .filter(|(i, a)| {
            holdings[i + 1..]
                .iter()
                .any(|b| a.acquired < b.released && b.acquired < a.released)
        })
        .count();
    let per_competitor: Vec<usize> = (0..COMPETITORS)
        .map(|id| holdings.iter().filter(|h| h.competitor == id).count())
        .collect();
    println!("{:?}: {}", cluster.target(), faults.join("; "));
    println!(
        "{:?}: {} acquisitions in {:?}: {succeeded} fenced writes succeeded, {guard_failed} \
         found their lock key gone, {unknown} unknown, {} without a write; {overlapping} \
         holdings overlapped another in wall-clock time; per competitor {per_competitor:?}",
        cluster.target(),
        holdings.len(),
        test_started.elapsed(),
        holdings.len() - succeeded - guard_failed - unknown,
    );
}

/// Checks the holdings against the keys' revision history.
fn check(cluster: &Cluster, holdings: &[Holding], events: &[Event]) {
    let fail = |message: String| -> ! {
        cluster.fail(&format!(
            "{message}\nholdings: {holdings:#?}\nevents: {events:#?}"
        ))
    };

    // The counter went 1, 2, 3, ... in revision order.
    let counter: Vec<(i64, i64)> = events
        .iter()
        .filter(|e| e.key == COUNTER)
        .map(|e| {
            assert_eq!(e.kind, EventType::Put, "the counter is never deleted");
            (
                e.mod_revision,
                e.value.parse::<i64>().expect("numeric counter"),
            )
        })
        .collect();
    for (index, (rev, value)) in counter.iter().enumerate() {
        if *value != index as i64 + 1 {
            fail(format!(
                "write {} of the counter (revision {rev}) wrote {value}: two holders read the \
                 same value or one read a stale value",
                index + 1
            ));
        }
    }
    let by_revision: BTreeMap<i64, i64> = counter.iter().copied().collect();

    // Lock keys: create and delete revision of each (a fresh lease per
    // holding, so each key name is created once).
    let mut created: BTreeMap<String, i64> = BTreeMap::new();
    let mut deleted: BTreeMap<String, i64> = BTreeMap::new();
    for event in events
        .iter()
        .filter(|e| e.key.starts_with(&format!("{LOCK_NAME}/")))
    {
        match event.kind {
            EventType::Put => {
                if let Some(first) = created.insert(event.key.clone(), event.create_revision) {
                    if first != event.create_revision {
                        fail(format!("lock key {} was created twice", event.key));
                    }
                }
            }
            EventType::Delete => {
                deleted.insert(event.key.clone(), event.mod_revision);
            }
        }
    }
    // Whether the lock key created at `create` was the oldest at `at`.
    let oldest_at = |create: i64, at: i64| -> Result<(), String> {
        for (key, &other) in &created {
            let gone = deleted.get(key).copied().unwrap_or(i64::MAX);
            if other < create && gone > at {
                return Err(format!(
                    "lock key {key} (created at {other}, deleted at {gone}) still existed"
                ));
            }
        }
        Ok(())
    };

    let mut writes = Vec::new();
    for holding in holdings {
        let Some(&create) = created.get(&holding.key) else {
            fail(format!("lock key {} is not in the history", holding.key));
        };
        if holding.create_revision.is_some_and(|read| read != create) {
            fail(format!(
                "the guarded read of {} saw create revision {:?}, the history {create}",
                holding.key, holding.create_revision
            ));
        }
        if let Err(e) = oldest_at(create, holding.lock_revision) {
            fail(format!(
                "Lock returned {} (created at {create}) at revision {} while {e}",
                holding.key, holding.lock_revision
            ));
        }
        if let Write::Succeeded(at) = holding.write {
            let read = holding.read.expect("a write follows a read");
            if by_revision.get(&at) != Some(&(read + 1)) {
                fail(format!(
                    "the fenced write of {} at revision {at} (read {read}) is not in the \
                     counter history as {}",
                    holding.key,
                    read + 1
                ));
            }
            if let Err(e) = oldest_at(create, at) {
                fail(format!(
                    "the fenced write of {} (created at {create}) at revision {at} happened \
                     while {e}",
                    holding.key
                ));
            }
            writes.push((create, read, at));
        }
    }
    // In the order of the lock keys, successful writes read increasing,
    // distinct counter values and were applied in that order.
    writes.sort();
    for pair in writes.windows(2) {
        let ((c1, r1, w1), (c2, r2, w2)) = (pair[0], pair[1]);
        if !(r1 < r2 && w1 < w2) {
            fail(format!(
                "holder with key created at {c1} read {r1} and wrote at {w1}, the next one \
                 (key created at {c2}) read {r2} and wrote at {w2}"
            ));
        }
    }
    println!(
        "history: {} counter writes, {} lock keys, {} successful fenced writes checked",
        counter.len(),
        created.len(),
        writes.len()
    );
}
