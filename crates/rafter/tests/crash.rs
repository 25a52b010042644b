//! Crash-recovery acceptance: several concurrent writers, `kill -9` of the
//! server while writes are in flight, restart on the same data directory,
//! over several rounds. Afterwards every acknowledged write is present with
//! its value and revision, no two writes share a revision, nothing appears
//! that was never written, and revisions continue above every earlier one.
//!
//! Acknowledging a write promises durability; this is the test of that promise.

mod common;

use std::collections::{BTreeMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::{revision, Server};
use etcd_client::{Client, GetOptions};
use tokio::sync::Notify;

/// Concurrent writer tasks, each with its own stream of keys.
const WRITERS: usize = 8;
/// Acknowledged writes to wait for before each kill; one round per entry.
/// The short round kills the server soon after it recovered from the last kill.
const ACKS_BEFORE_KILL: [usize; 5] = [200, 300, 50, 400, 250];
/// Longest the writers may take to reach a round's acknowledgements.
const WRITE_DEADLINE: Duration = Duration::from_secs(60);
/// Longest one put may take before it counts as unacknowledged.
const PUT_TIMEOUT: Duration = Duration::from_secs(10);
/// Prefix of every key the writers write.
const PREFIX: &str = "crash/";

/// One put a writer issued; `acked` holds the revision the server answered.
#[derive(Debug, Clone)]
struct Write {
    writer: usize,
    key: String,
    value: String,
    acked: Option<i64>,
}

/// What the writers of a round share.
struct Round {
    acks: AtomicUsize,
    target: usize,
    stop: AtomicBool,
    reached: Notify,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_writes_survive_kill_9() {
    let mut server = Server::start().await;
    let mut history: Vec<Write> = Vec::new();
    for (round, &target) in ACKS_BEFORE_KILL.iter().enumerate() {
        let client = server.client().await;
        let writes = write_until_killed(&mut server, client, round, target).await;
        let acked = writes.iter().filter(|w| w.acked.is_some()).count();
        assert!(
            acked >= target,
            "round {round}: {acked} acks, wanted {target}"
        );
        history.extend(writes);

        server.restart().await;
        let mut client = server.client().await;
        verify_after_restart(&mut client, &history, round).await;
    }
}

/// Runs the writers until `target` puts are acknowledged, then SIGKILLs the
/// server while the others are still in flight, and returns every put issued.
async fn write_until_killed(
    server: &mut Server,
    client: Client,
    round: usize,
    target: usize,
) -> Vec<Write> {
    let shared = Arc::new(Round {
        acks: AtomicUsize::new(0),
        target,
        stop: AtomicBool::new(false),
        reached: Notify::new(),
    });
    let writers: Vec<_> = (0..WRITERS)
        .map(|writer| tokio::spawn(run_writer(client.clone(), shared.clone(), round, writer)))
        .collect();
    let reached = tokio::time::timeout(WRITE_DEADLINE, shared.reached.notified()).await;
    shared.stop.store(true, Ordering::SeqCst);
    server.kill9();
    assert!(
        reached.is_ok(),
        "round {round}: only {} of {target} puts acknowledged within {WRITE_DEADLINE:?}",
        shared.acks.load(Ordering::SeqCst)
    );
    let mut writes = Vec::new();
    for writer in writers {
        writes.extend(writer.await.expect("writer task"));
    }
    writes
}

/// Puts `crash/r{round}/w{writer}/{n}` with unique values until told to stop
/// or a put fails (the server died), and returns the puts it issued.
async fn run_writer(
    mut client: Client,
    shared: Arc<Round>,
    round: usize,
    writer: usize,
) -> Vec<Write> {
    let mut writes = Vec::new();
    for n in 0.. {
        if shared.stop.load(Ordering::SeqCst) {
            break;
        }
        let key = format!("{PREFIX}r{round}/w{writer}/{n:06}");
        let value = format!("value-r{round}-w{writer}-n{n}");
        let result =
            tokio::time::timeout(PUT_TIMEOUT, client.put(key.as_str(), value.as_str(), None)).await;
        let acked = match result {
            Ok(Ok(response)) => Some(revision(response.header())),
            Ok(Err(_)) | Err(_) => None,
        };
        writes.push(Write {
            writer,
            key,
            value,
            acked,
        });
        if acked.is_none() {
            break;
        }
        if shared.acks.fetch_add(1, Ordering::SeqCst) + 1 == shared.target {
            shared.reached.notify_one();
        }
    }
    writes
}

/// Checks the restarted server against everything written so far.
async fn verify_after_restart(client: &mut Client, history: &[Write], round: usize) {
    let response = client
        .get(PREFIX, Some(GetOptions::new().with_prefix()))
        .await
        .expect("read back after restart");
    let stored: BTreeMap<&str, (&str, i64)> = response
        .kvs()
        .iter()
        .map(|kv| {
            let key = kv.key_str().expect("UTF-8 key");
            let value = kv.value_str().expect("UTF-8 value");
            (key, (value, kv.mod_revision()))
        })
        .collect();

    for write in history {
        if let Some(rev) = write.acked {
            assert_eq!(
                stored.get(write.key.as_str()),
                Some(&(write.value.as_str(), rev)),
                "round {round}: acknowledged write {write:?} lost or changed"
            );
        }
    }

    let issued: BTreeMap<&str, &str> = history
        .iter()
        .map(|w| (w.key.as_str(), w.value.as_str()))
        .collect();
    for (key, (value, _)) in &stored {
        assert_eq!(
            issued.get(key),
            Some(value),
            "round {round}: {key} = {value} was never written"
        );
    }

    let revisions: HashSet<i64> = stored.values().map(|&(_, rev)| rev).collect();
    assert_eq!(
        revisions.len(),
        stored.len(),
        "round {round}: two writes share a revision"
    );
    assert_writers_monotonic(history, round);

    let highest = stored.values().map(|&(_, rev)| rev).max().unwrap_or(0);
    assert!(
        revision(response.header()) >= highest,
        "round {round}: the store's revision went backwards"
    );
    let marker = client
        .put(format!("marker/{round}"), "after restart", None)
        .await
        .expect("write after restart");
    assert!(
        revision(marker.header()) > highest,
        "round {round}: a new write got revision {} but {highest} was already used",
        revision(marker.header())
    );
}

/// Each writer's acknowledged puts were issued one after another, so their
/// revisions must increase in issue order.
fn assert_writers_monotonic(history: &[Write], round: usize) {
    for writer in 0..WRITERS {
        let revisions: Vec<i64> = history
            .iter()
            .filter(|w| w.writer == writer)
            .filter_map(|w| w.acked)
            .collect();
        assert!(
            revisions.windows(2).all(|pair| pair[0] < pair[1]),
            "round {round}: writer {writer} saw revisions out of order: {revisions:?}"
        );
    }
}
