//! Watch across a member failure: a 3-member cluster, a writer putting new
//! keys continuously through one member, a watcher connected to another
//! member only (a single-endpoint client). The watcher's member is killed
//! with SIGKILL; the watcher reconnects to a surviving member and resumes
//! from the last revision it saw plus one. It must see every write exactly
//! once: the watched prefix gets one put per revision, so the revisions it
//! sees must be contiguous, with no gap and no duplicate, and include every
//! write the writer saw succeed, with the same revision. The test runs once
//! killing a follower and once killing the leader.
//!
//! Also: watches on every member, one live and the others replaying history,
//! deliver the same events (with prev_kv) for writes made through all
//! members.
//!
//! Runs real member processes through [`common::cluster::Cluster`]; with
//! `RAFTER_TEST_TARGET=etcd` against a real etcd cluster. Waits poll with
//! deadlines; timings are printed, never asserted.

mod common;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::cluster::{client_for, client_request_timeout, exclusive, Cluster, POLL_INTERVAL};
use common::revision;
use etcd_client::{Client, EventType, WatchOptions, WatchStream, Watcher};

const MEMBERS: usize = 3;
const PREFIX: &str = "w/";
/// Events the watcher sees before its member is killed, and after it resumed.
const EVENTS_PER_PHASE: usize = 150;
/// Longest the watcher waits for its next event before it gives up on the
/// member (a killed member's stream normally fails at once).
const SILENCE_LIMIT: Duration = Duration::from_secs(5);
/// Longest a phase may take.
const PHASE_DEADLINE: Duration = Duration::from_secs(60);

/// What the watcher saw: per revision, the event (key, value).
#[derive(Default)]
struct Seen {
    events: Vec<(i64, String, String)>,
}

impl Seen {
    fn last_revision(&self) -> Option<i64> {
        self.events.last().map(|(rev, _, _)| *rev)
    }
}

/// A watch on one member: the client and the watcher handle are kept with
/// the stream (dropping the handle would half-close the stream).
struct MemberWatch {
    _client: Client,
    _watcher: Watcher,
    stream: WatchStream,
}

/// A watch stream on one member, from `start` on.
async fn watch_from(cluster: &Cluster, member: usize, start: i64) -> Option<MemberWatch> {
    let mut client = client_for(&cluster.endpoint(member)).await;
    let options = WatchOptions::new().with_prefix().with_start_revision(start);
    match tokio::time::timeout(
        client_request_timeout(),
        client.watch(PREFIX, Some(options)),
    )
    .await
    {
        Ok(Ok((watcher, stream))) => Some(MemberWatch {
            _client: client,
            _watcher: watcher,
            stream,
        }),
        Ok(Err(e)) => {
            println!("watch on {} failed: {e}", cluster.name(member));
            None
        }
        Err(_) => {
            println!("watch on {} timed out", cluster.name(member));
            None
        }
    }
}

/// Reads events until `seen` holds `target` events, or the stream fails or
/// falls silent (`false`). Checks each event as it comes.
async fn read_until(
    stream: &mut WatchStream,
    seen: &mut Seen,
    target: usize,
    member: &str,
) -> bool {
    let deadline = Instant::now() + PHASE_DEADLINE;
    while seen.events.len() < target {
        assert!(
            Instant::now() < deadline,
            "the watcher on {member} saw {} of {target} events within {PHASE_DEADLINE:?}",
            seen.events.len()
        );
        let message = match tokio::time::timeout(SILENCE_LIMIT, stream.message()).await {
            Err(_) => {
                println!("the watch stream on {member} fell silent");
                return false;
            }
            Ok(Err(e)) => {
                println!("the watch stream on {member} failed: {e}");
                return false;
            }
            Ok(Ok(None)) => {
                println!("the watch stream on {member} ended");
                return false;
            }
            Ok(Ok(Some(message))) => message,
        };
        assert!(
            !message.canceled(),
            "the watch on {member} was canceled: {message:?}"
        );
        for event in message.events() {
            let kv = event.kv().expect("event kv");
            assert_eq!(event.event_type(), EventType::Put, "only puts are written");
            let key = kv.key_str().expect("UTF-8 key").to_string();
            let value = kv.value_str().expect("UTF-8 value").to_string();
            let rev = kv.mod_revision();
            if let Some(last) = seen.last_revision() {
                assert!(
                    rev != last && rev <= last + 1,
                    "after revision {last} the watcher on {member} got {rev} ({key}): {}",
                    if rev <= last { "a duplicate" } else { "a gap" }
                );
            }
            assert_eq!(
                (kv.create_revision(), kv.version(), value.as_str()),
                (rev, 1, key.as_str()),
                "each key is written once, with its own name as value"
            );
            seen.events.push((rev, key, value));
        }
    }
    true
}

/// Writes `w/<n>` = `w/<n>` through `client` until `stop` is set; returns
/// the writes that succeeded with their revisions. Every attempt uses a new
/// key, so a write that failed but was applied anyway shows up to the
/// watcher as a key the writer does not know, never as a duplicate.
async fn write_until(mut client: Client, stop: Arc<AtomicBool>) -> BTreeMap<i64, String> {
    let mut written = BTreeMap::new();
    let mut attempt = 0u64;
    while !stop.load(Ordering::SeqCst) {
        attempt += 1;
        let key = format!("{PREFIX}{attempt:06}");
        match tokio::time::timeout(
            client_request_timeout(),
            client.put(key.as_str(), key.as_str(), None),
        )
        .await
        {
            Ok(Ok(response)) => {
                written.insert(revision(response.header()), key);
            }
            Ok(Err(e)) => {
                println!("write {key} failed: {e}");
                // Back off instead of spinning while the cluster elects.
                tokio::time::sleep(POLL_INTERVAL).await;
            }
            Err(_) => println!("write {key} timed out"),
        }
    }
    written
}

async fn resume_after_kill(kill_leader: bool) {
    let _serial = exclusive().await;
    let mut cluster = Cluster::start(MEMBERS, &[]).await;
    let leader = cluster.leader().await;
    let followers = cluster.followers().await;
    // The watcher's member is killed; the writer's survives; the watcher
    // resumes on the third.
    let (watched, writer_member, resumed) = if kill_leader {
        (leader, followers[0], followers[1])
    } else {
        (followers[0], leader, followers[1])
    };
    println!(
        "leader {}, watcher on {}, writer on {}, resume on {}",
        cluster.name(leader),
        cluster.name(watched),
        cluster.name(writer_member),
        cluster.name(resumed)
    );

    let start = {
        let mut client = cluster.client(writer_member).await;
        let response = client.get("never-written", None).await.expect("range");
        revision(response.header()) + 1
    };
    let mut first = watch_from(&cluster, watched, start)
        .await
        .expect("watch on the first member");

    let stop = Arc::new(AtomicBool::new(false));
    let writer = tokio::spawn(write_until(
        cluster.client(writer_member).await,
        Arc::clone(&stop),
    ));

    let mut seen = Seen::default();
    let watched_name = cluster.name(watched).to_string();
    assert!(
        read_until(
            &mut first.stream,
            &mut seen,
            EVENTS_PER_PHASE,
            &watched_name
        )
        .await,
        "the watch on {watched_name} failed before its member was killed"
    );
    assert_eq!(
        seen.events[0].0, start,
        "the watch starts at its start revision"
    );

    cluster.kill9(watched);
    let killed_at = Instant::now();
    println!(
        "killed {} after revision {:?}",
        cluster.name(watched),
        seen.last_revision()
    );
    // What the old stream still delivers is fine (it was sent before the
    // kill); it ends or fails soon.
    read_until(&mut first.stream, &mut seen, usize::MAX, &watched_name).await;
    drop(first);

    // Resume on the third member from the next revision.
    let target = seen.events.len() + EVENTS_PER_PHASE;
    let resumed_name = cluster.name(resumed).to_string();
    let deadline = Instant::now() + PHASE_DEADLINE;
    loop {
        assert!(
            Instant::now() < deadline,
            "the watcher could not resume on {resumed_name} within {PHASE_DEADLINE:?}"
        );
        let next = seen.last_revision().expect("events before the kill") + 1;
        let Some(mut watch) = watch_from(&cluster, resumed, next).await else {
            continue;
        };
        if read_until(&mut watch.stream, &mut seen, target, &resumed_name).await {
            break;
        }
    }
    println!(
        "resumed on {resumed_name}; {} events {:?} after the kill",
        seen.events.len(),
        killed_at.elapsed()
    );

    stop.store(true, Ordering::SeqCst);
    let written = writer.await.expect("the writer task");
    let last_written = *written.keys().last().expect("some writes succeeded");
    // Read on until the watcher has the last write too.
    let mut last = watch_from(&cluster, resumed, seen.last_revision().unwrap() + 1)
        .await
        .expect("watch on the surviving member");
    let owed = (last_written - seen.last_revision().unwrap()).max(0) as usize;
    let target = seen.events.len() + owed;
    assert!(
        read_until(&mut last.stream, &mut seen, target, &resumed_name).await,
        "the watcher did not get up to the last write (revision {last_written})"
    );

    // Contiguous revisions from the start, each once (checked as they came),
    // and every successful write at its revision.
    let revisions: Vec<i64> = seen.events.iter().map(|(rev, _, _)| *rev).collect();
    let expected: Vec<i64> = (start..start + revisions.len() as i64).collect();
    assert_eq!(
        revisions, expected,
        "the revisions seen have a gap or a duplicate"
    );
    let by_revision: BTreeMap<i64, &str> = seen
        .events
        .iter()
        .map(|(rev, key, _)| (*rev, key.as_str()))
        .collect();
    for (rev, key) in &written {
        assert_eq!(
            by_revision.get(rev).copied(),
            Some(key.as_str()),
            "the write of {key} at revision {rev} was not seen there"
        );
    }
    println!(
        "{} writes succeeded, {} events seen, revisions {start}..={}",
        written.len(),
        seen.events.len(),
        revisions.last().unwrap()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_resumes_on_another_member_after_kill9_of_a_follower() {
    resume_after_kill(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_resumes_on_another_member_after_kill9_of_the_leader() {
    resume_after_kill(true).await;
}

/// Every event of a watch on `member` until `count` arrived, as lines
/// (type, key, value, revisions, version), with the revision of the response
/// header that carried it checked not to be behind it.
async fn member_events(stream: &mut WatchStream, count: usize, member: &str) -> Vec<String> {
    let mut lines = Vec::new();
    let deadline = Instant::now() + PHASE_DEADLINE;
    while lines.len() < count {
        let left = deadline.saturating_duration_since(Instant::now());
        let message = match tokio::time::timeout(left, stream.message()).await {
            Ok(Ok(Some(message))) => message,
            other => panic!(
                "the watch on {member} delivered {} of {count} events: {other:?}\n{lines:#?}",
                lines.len()
            ),
        };
        let header = revision(message.header());
        for event in message.events() {
            let kv = event.kv().expect("kv");
            assert!(header >= kv.mod_revision(), "{member}: {message:?}");
            let prev = event
                .prev_kv()
                .map(|p| format!(" prev={}@{}", p.value_str().unwrap(), p.mod_revision()))
                .unwrap_or_default();
            lines.push(format!(
                "{:?} {}={} c{} m{} v{}{prev}",
                event.event_type(),
                kv.key_str().unwrap(),
                kv.value_str().unwrap(),
                kv.create_revision(),
                kv.mod_revision(),
                kv.version()
            ));
        }
    }
    lines
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watchers_on_every_member_see_the_same_events() {
    let _serial = exclusive().await;
    let cluster = Cluster::start(MEMBERS, &[]).await;
    let mut clients = Vec::new();
    for member in 0..MEMBERS {
        clients.push(cluster.client(member).await);
    }
    let start = {
        let response = clients[0].get("never-written", None).await.expect("range");
        revision(response.header()) + 1
    };
    // Watches on every member, from the same revision, with prev_kv; one
    // opened before the writes, the others after half of them (history).
    let options = WatchOptions::new()
        .with_prefix()
        .with_prev_key()
        .with_start_revision(start);
    let (_first_watcher, mut first) = clients[0]
        .watch(PREFIX, Some(options.clone()))
        .await
        .expect("watch on the first member");
    let mut expected_events = 0;
    for round in 0..60 {
        let client = &mut clients[round % MEMBERS];
        let key = format!("{PREFIX}{}", round % 7);
        match round % 5 {
            0..=2 => {
                client
                    .put(key.as_str(), format!("v{round}"), None)
                    .await
                    .expect("put");
                expected_events += 1;
            }
            3 => {
                let deleted = client.delete(key.as_str(), None).await.expect("delete");
                expected_events += deleted.deleted() as usize;
            }
            _ => {
                let txn = etcd_client::Txn::new().and_then([
                    etcd_client::TxnOp::put(key.as_str(), format!("t{round}"), None),
                    etcd_client::TxnOp::put(format!("{PREFIX}txn"), format!("t{round}"), None),
                ]);
                client.txn(txn).await.expect("txn");
                expected_events += 2;
            }
        }
    }
    let mut streams = Vec::new();
    for (member, client) in clients.iter_mut().enumerate().skip(1) {
        let (watcher, stream) = client
            .watch(PREFIX, Some(options.clone()))
            .await
            .unwrap_or_else(|e| panic!("watch on {}: {e}", cluster.name(member)));
        streams.push((member, watcher, stream));
    }
    let reference = member_events(&mut first, expected_events, cluster.name(0)).await;
    for (member, _watcher, stream) in &mut streams {
        let name = cluster.name(*member);
        let events = member_events(stream, expected_events, name).await;
        assert_eq!(
            events,
            reference,
            "{name} (history) and {} (live) delivered different events",
            cluster.name(0)
        );
    }
    println!("{expected_events} events, the same on every member");
}
