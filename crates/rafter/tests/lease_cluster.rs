//! Leases across a kill -9 of the leader, on a 3-member cluster.
//!
//! Lease A is kept alive by a client connected to every member: one
//! keep-alive a second, sent through the members in turn (leader and
//! followers alike; a follower forwards it to the leader), skipping a member
//! that does not answer. Lease B, granted just before the leader is killed,
//! gets no keep-alive at all. Both have the same TTL and keys attached.
//!
//! The test then runs on for a few TTLs and asserts, from a watch on the key
//! prefix (from before the keys were written, on a member that survives,
//! reconnecting if its stream fails):
//! - no DELETE event for A's keys ever, and A's keys are still readable at
//!   the end, attached to A;
//! - B's key is deleted, not before B's TTL has passed since its grant was
//!   sent, and no later than TTL + one election timeout + [`EXPIRY_SLACK`]
//!   after the grant response (the measured delay is printed).
//!
//! Runs real member processes through [`common::cluster::Cluster`]; with
//! `RAFTER_TEST_TARGET=etcd` against a real etcd cluster. Waits poll with
//! deadlines; sleeps only pace keep-alives and the length of the run.

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::cluster::{
    client_for, client_request_timeout, exclusive, Cluster, ELECTION_MS, POLL_INTERVAL,
};
use common::revision;
use etcd_client::{Client, ConnectOptions, EventType, PutOptions, WatchOptions};

const MEMBERS: usize = 3;
const PREFIX: &str = "lease-fault/";
/// TTL of both leases, in seconds.
const TTL: i64 = 3;
/// Pace of lease A's keep-alives: three per TTL.
const KEEP_ALIVE_EVERY: Duration = Duration::from_secs(1);
/// Longest one keep-alive attempt through one member may take before the
/// keeper tries the next member (a follower that lost its leader may hold a
/// forwarded keep-alive for the whole server request timeout).
const ATTEMPT_TIMEOUT: Duration = Duration::from_millis(800);
/// How long the test runs on after the leader was killed: a few TTLs, so
/// lease A has to survive several renewals through the new leader.
const RUN_AFTER_KILL: Duration = Duration::from_secs(3 * TTL as u64);
/// Slack on top of TTL + one election timeout for lease B's deletion.
///
/// Why: B's TTL restarts when a new leader takes over. The old leader, which
/// counted B's TTL from the grant, is killed right after the grant; the
/// followers notice only after their (randomised, up to twice the configured)
/// election timeout, elect a new leader, and the new leader — which cannot
/// know when B was last renewed — gives every lease its full TTL plus one
/// election timeout from its promotion. Then the lessor notices the expiry on
/// its next check (etcd checks every 500 ms), proposes the revoke, the revoke
/// commits, and the DELETE reaches the watcher. Failover detection and
/// election (≤ ~1 s on a loaded two-core machine), the expiry-check period
/// (0.5 s) and commit plus watch delivery (tens of ms) fit within 2 s.
const EXPIRY_SLACK: Duration = Duration::from_secs(2);
/// How long the test waits for anything that must happen.
const DEADLINE: Duration = Duration::from_secs(30);

fn ttl() -> Duration {
    Duration::from_secs(TTL as u64)
}

fn election_timeout() -> Duration {
    Duration::from_millis(ELECTION_MS)
}

/// One keep-alive attempt of lease A.
#[derive(Debug)]
struct KeepAlive {
    at: Instant,
    member: usize,
    outcome: Result<(), String>,
}

/// One event of the prefix watch, with when it arrived.
#[derive(Debug, Clone)]
struct Seen {
    at: Instant,
    kind: EventType,
    key: String,
    revision: i64,
    member: usize,
}

/// Renews `lease` once every [`KEEP_ALIVE_EVERY`], each time through the
/// next member in turn, moving on to the next one when a member fails or
/// does not answer within [`ATTEMPT_TIMEOUT`]. Runs until `stop` is set.
async fn keep_alive_loop(
    clients: Vec<Client>,
    lease: i64,
    stop: Arc<AtomicBool>,
    log: Arc<Mutex<Vec<KeepAlive>>>,
) {
    let mut next_member = 0;
    let mut ticks = tokio::time::interval(KEEP_ALIVE_EVERY);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        if stop.load(Ordering::SeqCst) {
            return;
        }
        for _ in 0..clients.len() {
            let member = next_member;
            next_member = (next_member + 1) % clients.len();
            let mut client = clients[member].clone();
            // etcd-client's keep_alive opens a stream, sends one request and
            // waits for its answer; it fails with "lease not found" on TTL 0.
            let outcome =
                match tokio::time::timeout(ATTEMPT_TIMEOUT, client.lease_keep_alive(lease)).await {
                    Ok(Ok(_)) => Ok(()),
                    Ok(Err(e)) => Err(e.to_string()),
                    Err(_) => Err(format!("no answer within {ATTEMPT_TIMEOUT:?}")),
                };
            let renewed = outcome.is_ok();
            log.lock().unwrap().push(KeepAlive {
                at: Instant::now(),
                member,
                outcome,
            });
            if renewed {
                break;
            }
        }
    }
}

/// Watches [`PREFIX`] from `start` on `first`, and when the stream fails or
/// is canceled, resumes from the next revision on the next member (in
/// turn). Every event goes to `events` with its arrival time. Runs until
/// aborted.
async fn watch_loop(
    endpoints: Vec<String>,
    first: usize,
    start: i64,
    events: Arc<Mutex<Vec<Seen>>>,
) {
    let mut next_revision = start;
    let mut member = first;
    loop {
        let mut client = client_for(&endpoints[member]).await;
        let options = WatchOptions::new()
            .with_prefix()
            .with_start_revision(next_revision);
        match tokio::time::timeout(
            client_request_timeout(),
            client.watch(PREFIX, Some(options)),
        )
        .await
        {
            Ok(Ok((_watcher, mut stream))) => loop {
                match stream.message().await {
                    Ok(Some(message)) if !message.canceled() => {
                        let at = Instant::now();
                        let mut events = events.lock().unwrap();
                        for event in message.events() {
                            let kv = event.kv().expect("event kv");
                            events.push(Seen {
                                at,
                                kind: event.event_type(),
                                key: kv.key_str().expect("UTF-8 key").to_string(),
                                revision: kv.mod_revision(),
                                member,
                            });
                            next_revision = kv.mod_revision() + 1;
                        }
                    }
                    other => {
                        println!("watch on member {member} ended: {other:?}; resuming elsewhere");
                        break;
                    }
                }
            },
            other => println!("watch on member {member} could not start: {other:?}"),
        }
        member = (member + 1) % endpoints.len();
        tokio::time::sleep(POLL_INTERVAL).await;
    }
}

/// Waits until `events` holds one matching `found`, and returns it.
async fn wait_event(
    cluster: &Cluster,
    events: &Mutex<Vec<Seen>>,
    deadline: Instant,
    what: &str,
    found: impl Fn(&Seen) -> bool,
) -> Seen {
    loop {
        if let Some(seen) = events.lock().unwrap().iter().find(|s| found(s)) {
            return seen.clone();
        }
        if Instant::now() >= deadline {
            cluster.fail(&format!(
                "the watch did not see {what} in time; events: {:#?}",
                events.lock().unwrap()
            ));
        }
        tokio::time::sleep(POLL_INTERVAL).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kept_alive_lease_survives_a_leader_kill9_and_an_abandoned_one_expires() {
    let _serial = exclusive().await;
    let mut cluster = Cluster::start(MEMBERS, &[]).await;
    let leader = cluster.leader().await;
    let followers = cluster.followers().await;
    // The watch is on a follower: it survives the kill of the leader.
    let watched = followers[0];
    println!(
        "{:?}: leader {}, watch on {}",
        cluster.target(),
        cluster.name(leader),
        cluster.name(watched)
    );

    let endpoints: Vec<String> = (0..MEMBERS).map(|i| cluster.endpoint(i)).collect();
    let options = ConnectOptions::new()
        .with_connect_timeout(Duration::from_secs(2))
        .with_timeout(client_request_timeout());
    let mut all = Client::connect(&endpoints, Some(options))
        .await
        .expect("connect a client to every member");
    let mut members = Vec::new();
    for member in 0..MEMBERS {
        members.push(cluster.client(member).await);
    }

    // Lease A with two keys, kept alive from now on.
    let granted_a = all.lease_grant(TTL, None).await.expect("grant lease A");
    let lease_a = granted_a.id();
    let start = revision(granted_a.header()) + 1;
    let a_keys = [format!("{PREFIX}a/1"), format!("{PREFIX}a/2")];
    for key in &a_keys {
        all.put(
            key.as_str(),
            "a",
            Some(PutOptions::new().with_lease(lease_a)),
        )
        .await
        .expect("put a key with lease A");
    }
    let events = Arc::new(Mutex::new(Vec::new()));
    let watcher = tokio::spawn(watch_loop(
        endpoints.clone(),
        watched,
        start,
        Arc::clone(&events),
    ));
    let stop = Arc::new(AtomicBool::new(false));
    let keep_alives = Arc::new(Mutex::new(Vec::new()));
    let keeper = tokio::spawn(keep_alive_loop(
        members.clone(),
        lease_a,
        Arc::clone(&stop),
        Arc::clone(&keep_alives),
    ));

    // Before the kill, A is renewed through every member once: the leader
    // itself and both followers (which forward to the leader).
    let deadline = Instant::now() + DEADLINE;
    loop {
        let renewed_through: Vec<usize> = {
            let log = keep_alives.lock().unwrap();
            let mut members: Vec<usize> = log
                .iter()
                .filter(|k| k.outcome.is_ok())
                .map(|k| k.member)
                .collect();
            members.sort();
            members.dedup();
            members
        };
        if renewed_through.len() == MEMBERS {
            break;
        }
        if Instant::now() >= deadline {
            cluster.fail(&format!(
                "lease A was not renewed through every member: {:#?}",
                keep_alives.lock().unwrap()
            ));
        }
        tokio::time::sleep(POLL_INTERVAL).await;
    }

    // Lease B with one key, never renewed; then the leader dies at once.
    let b_key = format!("{PREFIX}b/1");
    let b_sent = Instant::now();
    let lease_b = all
        .lease_grant(TTL, None)
        .await
        .expect("grant lease B")
        .id();
    let b_granted = Instant::now();
    all.put(
        b_key.as_str(),
        "b",
        Some(PutOptions::new().with_lease(lease_b)),
    )
    .await
    .expect("put a key with lease B");
    cluster.kill9(leader);
    let killed_at = Instant::now();
    println!(
        "lease B granted in {:?}; killed leader {} {:?} after B's grant",
        b_granted - b_sent,
        cluster.name(leader),
        killed_at - b_granted
    );

    // B's key is deleted by its lease's expiry.
    let bound = ttl() + election_timeout() + EXPIRY_SLACK;
    let deleted = wait_event(
        &cluster,
        &events,
        b_granted + bound + DEADLINE,
        "the deletion of lease B's key",
        |s| s.kind == EventType::Delete && s.key == b_key,
    )
    .await;
    let delay = deleted.at - b_granted;
    let new_leader = cluster.leader().await;
    println!(
        "{:?}: lease B (TTL {TTL} s) key deleted at revision {} {delay:?} after its grant response \
         ({:?} after the kill; bound {bound:?}); new leader {}",
        cluster.target(),
        deleted.revision,
        deleted.at - killed_at,
        cluster.name(new_leader)
    );
    assert!(
        deleted.at - b_sent >= ttl(),
        "lease B's key was deleted {:?} after its grant was sent, before its TTL of {TTL} s",
        deleted.at - b_sent
    );
    assert!(
        delay <= bound,
        "lease B's key was deleted {delay:?} after its grant, later than TTL {TTL} s + \
         election timeout {ELECTION_MS} ms + slack {EXPIRY_SLACK:?}"
    );

    // Keep A alive a few TTLs past the kill.
    tokio::time::sleep_until((killed_at + RUN_AFTER_KILL).into()).await;
    stop.store(true, Ordering::SeqCst);
    keeper.await.expect("the keep-alive task");

    // A sentinel write shows the watch has delivered everything until now,
    // so "no DELETE of A's keys" is not just a stalled watch.
    let survivor = cluster.running()[0];
    let mut on_survivor = cluster.client(survivor).await;
    let sentinel = format!("{PREFIX}end");
    on_survivor
        .put(sentinel.as_str(), "end", None)
        .await
        .expect("put the sentinel");
    wait_event(
        &cluster,
        &events,
        Instant::now() + DEADLINE,
        "the sentinel write",
        |s| s.key == sentinel,
    )
    .await;
    watcher.abort();

    let events = events.lock().unwrap().clone();
    let a_deletes: Vec<&Seen> = events
        .iter()
        .filter(|s| s.kind == EventType::Delete && a_keys.contains(&s.key))
        .collect();
    assert!(
        a_deletes.is_empty(),
        "lease A's keys were deleted although A was kept alive: {a_deletes:#?}\nkeep-alives: {:#?}",
        keep_alives.lock().unwrap()
    );
    for key in &a_keys {
        let response = on_survivor.get(key.as_str(), None).await.expect("get");
        let kv = response
            .kvs()
            .first()
            .unwrap_or_else(|| panic!("lease A's key {key} is gone at the end"));
        assert_eq!(kv.lease(), lease_a, "{key} is still attached to lease A");
    }
    let a_left = on_survivor
        .lease_time_to_live(lease_a, None)
        .await
        .expect("time to live of A");
    assert!(a_left.ttl() > 0, "lease A is alive at the end: {a_left:?}");
    let b_left = on_survivor
        .lease_time_to_live(lease_b, None)
        .await
        .expect("time to live of B");
    assert_eq!(b_left.ttl(), -1, "lease B is gone at the end: {b_left:?}");

    let log = keep_alives.lock().unwrap();
    let lost: Vec<&KeepAlive> = log
        .iter()
        .filter(|k| matches!(&k.outcome, Err(e) if e.contains("lease not found")))
        .collect();
    assert!(lost.is_empty(), "lease A was reported gone: {lost:#?}");
    let after_kill: Vec<usize> = log
        .iter()
        .filter(|k| k.at > killed_at && k.outcome.is_ok())
        .map(|k| k.member)
        .collect();
    assert!(
        after_kill.len() >= 2,
        "lease A was renewed at least twice after the kill: {log:#?}"
    );
    let failed = log.iter().filter(|k| k.outcome.is_err()).count();
    let watch_members: std::collections::BTreeSet<usize> =
        events.iter().map(|s| s.member).collect();
    println!(
        "{} keep-alives of A ({failed} attempts failed, {} renewals after the kill, through \
         members {after_kill:?}); {} watch events from members {watch_members:?}",
        log.len(),
        after_kill.len(),
        events.len()
    );
}
