//! Acceptance tests of etcd's server-side concurrency API, the
//! `v3lockpb.Lock` and `v3electionpb.Election` services, through the
//! `etcd-client` crate's lock and election clients: the keys they create
//! (`name/<lease hex>` with the caller's lease), mutual exclusion (a second
//! locker waits until the holder unlocks or its lease is revoked or
//! expires), FIFO order by create revision, a lease locking twice, a waiter
//! whose call is abandoned leaving the queue, Campaign / Proclaim / Leader /
//! Observe / Resign, and etcd's errors.
//!
//! Each test starts its own single-member server, so revisions are
//! predictable; one test runs a three-member cluster, where followers serve
//! the services too. Every expectation is checked against the real etcd with
//! `RAFTER_TEST_TARGET=etcd cargo test -p rafter --test lock_election`.
//! Waits are reads with a deadline; "still blocked" is checked by a call
//! that has not returned within [`STILL_BLOCKED`] after its key is queued.

mod common;

use std::time::{Duration, Instant};

use common::{expect_grpc_error, revision, Server};
use etcd_client::{
    Client, GetOptions, LeaderKey, LeaseTimeToLiveOptions, LockOptions, LockResponse,
    ProclaimOptions, ResignOptions,
};
use tokio::task::JoinHandle;
use tonic::Code;

/// How long a waiting Lock or Campaign must stay blocked to count as such.
const STILL_BLOCKED: Duration = Duration::from_millis(300);
/// How long a test waits for something that must happen.
const DEADLINE: Duration = Duration::from_secs(10);
/// etcd's error when a key is put with a lease that does not exist.
const LEASE_NOT_FOUND: &str = "etcdserver: requested lease not found";
/// The concurrency package's `ErrElectionNotLeader`.
const NOT_LEADER: &str = "election: not leader";
/// The concurrency package's `ErrElectionNoLeader`.
const NO_LEADER: &str = "election: no leader";
/// v3election's `ErrMissingLeaderKey`.
const MISSING_LEADER_KEY: &str = "\"leader\" field must be provided";

async fn setup() -> (Server, Client) {
    let server = Server::start().await;
    let client = server.client().await;
    (server, client)
}

/// Grants a lease of `ttl` seconds and returns its id.
async fn grant(client: &mut Client, ttl: i64) -> i64 {
    client.lease_grant(ttl, None).await.expect("grant").id()
}

/// The key the concurrency package queues under `name` for `lease`.
fn queue_key(name: &str, lease: i64) -> String {
    format!("{name}/{lease:x}")
}

fn text(bytes: &[u8]) -> &str {
    std::str::from_utf8(bytes).expect("UTF-8")
}

/// Locks `name` with `lease` in a task of its own.
fn spawn_lock(client: &Client, name: &str, lease: i64) -> JoinHandle<LockResponse> {
    let (mut client, name) = (client.clone(), name.to_string());
    tokio::spawn(async move {
        client
            .lock(name, Some(LockOptions::new().with_lease(lease)))
            .await
            .expect("lock")
    })
}

/// Waits until `count` keys are queued under `name/`.
async fn wait_queued(client: &mut Client, name: &str, count: i64) {
    let deadline = Instant::now() + DEADLINE;
    loop {
        let response = client
            .get(
                format!("{name}/"),
                Some(GetOptions::new().with_prefix().with_count_only()),
            )
            .await
            .expect("count queued keys");
        if response.count() == count {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{name}: {} keys queued, expected {count}",
            response.count()
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Asserts that `task` has not finished within [`STILL_BLOCKED`].
async fn assert_blocked<T: std::fmt::Debug>(task: &mut JoinHandle<T>, what: &str) {
    if let Ok(done) = tokio::time::timeout(STILL_BLOCKED, task).await {
        panic!("{what} should still wait, but returned {done:?}");
    }
}

/// Waits for `task` to finish within [`DEADLINE`].
async fn finished<T>(task: JoinHandle<T>, what: &str) -> T {
    tokio::time::timeout(DEADLINE, task)
        .await
        .unwrap_or_else(|_| panic!("{what} did not return within {DEADLINE:?}"))
        .expect("task")
}

/// The create revision and lease of `key`, if it exists.
async fn key_info(client: &mut Client, key: &[u8]) -> Option<(i64, i64)> {
    let response = client.get(key, None).await.expect("get");
    response
        .kvs()
        .first()
        .map(|kv| (kv.create_revision(), kv.lease()))
}

// ------------------------------------------------------------------ lock

#[tokio::test]
async fn lock_creates_a_key_under_the_name_with_the_lease() {
    let (_server, mut client) = setup().await;
    let lease = grant(&mut client, 60).await;
    let response = client
        .lock("mylock", Some(LockOptions::new().with_lease(lease)))
        .await
        .expect("lock");
    assert_eq!(text(response.key()), queue_key("mylock", lease));
    let (created, key_lease) = key_info(&mut client, response.key())
        .await
        .expect("the lock key exists while the lock is held");
    assert_eq!(key_lease, lease);
    // Uncontended: the header is the txn's that created the key.
    assert_eq!(revision(response.header()), created);
    let value = client.get(response.key(), None).await.expect("get");
    assert_eq!(value.kvs()[0].value(), b"");

    let unlock = client.unlock(response.key()).await.expect("unlock");
    assert_eq!(revision(unlock.header()), created + 1);
    assert_eq!(key_info(&mut client, response.key()).await, None);
}

#[tokio::test]
async fn lock_without_lease_grants_a_sixty_second_lease() {
    let (_server, mut client) = setup().await;
    let response = client.lock("nolease", None).await.expect("lock");
    let (_, lease) = key_info(&mut client, response.key())
        .await
        .expect("the lock key exists");
    assert_ne!(lease, 0, "the key is attached to a granted lease");
    assert_eq!(text(response.key()), queue_key("nolease", lease));
    let ttl = client
        .lease_time_to_live(lease, Some(LeaseTimeToLiveOptions::new().with_keys()))
        .await
        .expect("time to live");
    assert_eq!(ttl.granted_ttl(), 60);
    assert_eq!(ttl.keys(), [response.key().to_vec()]);
}

#[tokio::test]
async fn second_locker_waits_until_the_holder_unlocks() {
    let (_server, mut client) = setup().await;
    let (first, second) = (grant(&mut client, 60).await, grant(&mut client, 60).await);
    let held = client
        .lock("mutex", Some(LockOptions::new().with_lease(first)))
        .await
        .expect("lock");
    let mut waiter = spawn_lock(&client, "mutex", second);
    wait_queued(&mut client, "mutex", 2).await;
    assert_blocked(&mut waiter, "the second Lock").await;

    let unlock = client.unlock(held.key()).await.expect("unlock");
    let acquired = finished(waiter, "the second Lock").await;
    assert_eq!(text(acquired.key()), queue_key("mutex", second));
    // The header is the read that found no earlier key: the unlock's revision.
    assert_eq!(revision(acquired.header()), revision(unlock.header()));
    assert!(key_info(&mut client, acquired.key()).await.is_some());
}

#[tokio::test]
async fn revoking_the_holders_lease_releases_the_lock() {
    let (_server, mut client) = setup().await;
    let (first, second) = (grant(&mut client, 60).await, grant(&mut client, 60).await);
    client
        .lock("mutex", Some(LockOptions::new().with_lease(first)))
        .await
        .expect("lock");
    let mut waiter = spawn_lock(&client, "mutex", second);
    wait_queued(&mut client, "mutex", 2).await;
    assert_blocked(&mut waiter, "the second Lock").await;

    client.lease_revoke(first).await.expect("revoke");
    let acquired = finished(waiter, "the second Lock").await;
    assert_eq!(text(acquired.key()), queue_key("mutex", second));
}

#[tokio::test]
async fn an_expiring_lease_releases_the_lock() {
    let (_server, mut client) = setup().await;
    let first = grant(&mut client, 1).await;
    let second = grant(&mut client, 60).await;
    client
        .lock("mutex", Some(LockOptions::new().with_lease(first)))
        .await
        .expect("lock");
    let waiter = spawn_lock(&client, "mutex", second);
    let acquired = finished(waiter, "the Lock behind an expiring lease").await;
    assert_eq!(text(acquired.key()), queue_key("mutex", second));
    let held = client
        .get(
            "mutex/",
            Some(GetOptions::new().with_prefix().with_keys_only()),
        )
        .await
        .expect("get");
    let keys: Vec<&[u8]> = held.kvs().iter().map(|kv| kv.key()).collect();
    assert_eq!(keys, [acquired.key()]);
}

#[tokio::test]
async fn waiters_get_the_lock_in_create_revision_order() {
    let (_server, mut client) = setup().await;
    let mut leases = Vec::new();
    for _ in 0..4 {
        leases.push(grant(&mut client, 60).await);
    }
    let holder = client
        .lock("fifo", Some(LockOptions::new().with_lease(leases[0])))
        .await
        .expect("lock");
    let mut waiters = Vec::new();
    for (i, lease) in leases.iter().enumerate().skip(1) {
        waiters.push(spawn_lock(&client, "fifo", *lease));
        wait_queued(&mut client, "fifo", i as i64 + 1).await;
    }
    let mut current = holder;
    for (i, mut waiter) in waiters.into_iter().enumerate() {
        assert_blocked(&mut waiter, &format!("waiter {}", i + 1)).await;
        client.unlock(current.key()).await.expect("unlock");
        current = finished(waiter, &format!("waiter {}", i + 1)).await;
        assert_eq!(text(current.key()), queue_key("fifo", leases[i + 1]));
    }
}

#[tokio::test]
async fn a_waiter_whose_lease_is_revoked_leaves_the_queue() {
    let (_server, mut client) = setup().await;
    let (a, b, c) = (
        grant(&mut client, 60).await,
        grant(&mut client, 60).await,
        grant(&mut client, 60).await,
    );
    let held = client
        .lock("skip", Some(LockOptions::new().with_lease(a)))
        .await
        .expect("lock");
    let second = spawn_lock(&client, "skip", b);
    wait_queued(&mut client, "skip", 2).await;
    let mut third = spawn_lock(&client, "skip", c);
    wait_queued(&mut client, "skip", 3).await;
    // The third waits on the second's key; revoking the second's lease
    // deletes it, and the third then waits on the holder's.
    client.lease_revoke(b).await.expect("revoke");
    wait_queued(&mut client, "skip", 2).await;
    assert_blocked(&mut third, "the third Lock").await;
    // What the second's call answers now differs between etcd versions
    // (3.4 grants it, later versions answer "session expired"): not asserted.
    second.abort();
    client.unlock(held.key()).await.expect("unlock");
    let acquired = finished(third, "the third Lock").await;
    assert_eq!(text(acquired.key()), queue_key("skip", c));
}

#[tokio::test]
async fn locking_twice_with_one_lease_is_one_acquisition() {
    let (_server, mut client) = setup().await;
    let lease = grant(&mut client, 60).await;
    let first = client
        .lock("twice", Some(LockOptions::new().with_lease(lease)))
        .await
        .expect("lock");
    let again = client
        .lock("twice", Some(LockOptions::new().with_lease(lease)))
        .await
        .expect("lock again");
    assert_eq!(again.key(), first.key());
    let (created, _) = key_info(&mut client, first.key()).await.expect("key");
    assert_eq!(revision(first.header()), created);
    // The second call changed nothing: its txn read the existing key.
    assert_eq!(revision(again.header()), created);
}

#[tokio::test]
async fn an_abandoned_lock_call_leaves_the_queue() {
    let (_server, mut client) = setup().await;
    let (first, second) = (grant(&mut client, 60).await, grant(&mut client, 60).await);
    let held = client
        .lock("gone", Some(LockOptions::new().with_lease(first)))
        .await
        .expect("lock");
    let waiter = spawn_lock(&client, "gone", second);
    wait_queued(&mut client, "gone", 2).await;
    // Dropping the call cancels the RPC: the server deletes the waiter's key.
    waiter.abort();
    wait_queued(&mut client, "gone", 1).await;
    assert!(key_info(&mut client, held.key()).await.is_some());
    assert_eq!(
        key_info(&mut client, queue_key("gone", second).as_bytes()).await,
        None
    );
}

#[tokio::test]
async fn lock_with_an_unknown_lease_fails() {
    let (_server, mut client) = setup().await;
    expect_grpc_error(
        client
            .lock("bad", Some(LockOptions::new().with_lease(0x1234)))
            .await,
        Code::Unknown,
        LEASE_NOT_FOUND,
    );
    assert_eq!(key_info(&mut client, b"bad/1234").await, None);
}

#[tokio::test]
async fn unlock_of_a_missing_key_succeeds() {
    let (_server, mut client) = setup().await;
    let before = revision(client.get("x", None).await.expect("get").header());
    let unlock = client.unlock("never/locked").await.expect("unlock");
    assert_eq!(revision(unlock.header()), before);
}

// -------------------------------------------------------------- election

/// Campaigns for `name` with `lease` and `value` in a task of its own.
fn spawn_campaign(client: &Client, name: &str, value: &str, lease: i64) -> JoinHandle<LeaderKey> {
    let (mut client, name, value) = (client.clone(), name.to_string(), value.to_string());
    tokio::spawn(async move {
        let mut response = client.campaign(name, value, lease).await.expect("campaign");
        response
            .take_leader()
            .expect("campaign returns the leader key")
    })
}

async fn campaign(client: &mut Client, name: &str, value: &str, lease: i64) -> LeaderKey {
    let mut response = client.campaign(name, value, lease).await.expect("campaign");
    response
        .take_leader()
        .expect("campaign returns the leader key")
}

/// The current leader's key and value.
async fn leader_of(client: &mut Client, name: &str) -> (String, String) {
    let response = client.leader(name).await.expect("leader");
    let kv = response.kv().expect("leader kv");
    (text(kv.key()).to_string(), text(kv.value()).to_string())
}

#[tokio::test]
async fn campaign_returns_the_leader_key() {
    let (_server, mut client) = setup().await;
    let lease = grant(&mut client, 60).await;
    let mut response = client
        .campaign("elect", "alpha", lease)
        .await
        .expect("campaign");
    let header_rev = revision(response.header());
    let leader = response.take_leader().expect("leader key");
    assert_eq!(leader.name(), b"elect");
    assert_eq!(text(leader.key()), queue_key("elect", lease));
    assert_eq!(leader.lease(), lease);
    let (created, key_lease) = key_info(&mut client, leader.key()).await.expect("key");
    assert_eq!(leader.rev(), created);
    assert_eq!(header_rev, created);
    assert_eq!(key_lease, lease);

    let response = client.leader("elect").await.expect("leader");
    let kv = response.kv().expect("kv");
    assert_eq!(kv.key(), leader.key());
    assert_eq!(kv.value(), b"alpha");
    assert_eq!(kv.create_revision(), created);
    assert_eq!(kv.lease(), lease);
    assert_eq!(revision(response.header()), created);
}

#[tokio::test]
async fn campaign_without_lease_grants_a_sixty_second_lease() {
    let (_server, mut client) = setup().await;
    let leader = campaign(&mut client, "nolease", "v", 0).await;
    assert_ne!(leader.lease(), 0);
    assert_eq!(text(leader.key()), queue_key("nolease", leader.lease()));
    let ttl = client
        .lease_time_to_live(leader.lease(), None)
        .await
        .expect("time to live");
    assert_eq!(ttl.granted_ttl(), 60);
}

#[tokio::test]
async fn second_candidate_leads_after_the_first_resigns() {
    let (_server, mut client) = setup().await;
    let (first, second) = (grant(&mut client, 60).await, grant(&mut client, 60).await);
    let leader = campaign(&mut client, "elect", "one", first).await;
    let mut candidate = spawn_campaign(&client, "elect", "two", second);
    wait_queued(&mut client, "elect", 2).await;
    assert_blocked(&mut candidate, "the second Campaign").await;
    assert_eq!(
        leader_of(&mut client, "elect").await,
        (queue_key("elect", first), "one".to_string())
    );

    let resign = client
        .resign(Some(ResignOptions::new().with_leader(leader.clone())))
        .await
        .expect("resign");
    let resigned_at = revision(resign.header());
    let next = finished(candidate, "the second Campaign").await;
    assert_eq!(text(next.key()), queue_key("elect", second));
    assert!(next.rev() < resigned_at);
    assert_eq!(
        leader_of(&mut client, "elect").await,
        (queue_key("elect", second), "two".to_string())
    );
    // The old leader key no longer leads: proclaiming with it fails.
    expect_grpc_error(
        client
            .proclaim("stale", Some(ProclaimOptions::new().with_leader(leader)))
            .await,
        Code::Unknown,
        NOT_LEADER,
    );
}

#[tokio::test]
async fn revoking_the_leaders_lease_hands_over_leadership() {
    let (_server, mut client) = setup().await;
    let (first, second) = (grant(&mut client, 60).await, grant(&mut client, 60).await);
    campaign(&mut client, "elect", "one", first).await;
    let mut candidate = spawn_campaign(&client, "elect", "two", second);
    wait_queued(&mut client, "elect", 2).await;
    assert_blocked(&mut candidate, "the second Campaign").await;
    client.lease_revoke(first).await.expect("revoke");
    let next = finished(candidate, "the second Campaign").await;
    assert_eq!(text(next.key()), queue_key("elect", second));
}

#[tokio::test]
async fn proclaim_updates_the_leaders_value() {
    let (_server, mut client) = setup().await;
    let lease = grant(&mut client, 60).await;
    let leader = campaign(&mut client, "elect", "v1", lease).await;
    let proclaim = client
        .proclaim(
            "v2",
            Some(ProclaimOptions::new().with_leader(leader.clone())),
        )
        .await
        .expect("proclaim");
    assert_eq!(revision(proclaim.header()), leader.rev() + 1);
    let response = client.leader("elect").await.expect("leader");
    let kv = response.kv().expect("kv");
    assert_eq!(kv.value(), b"v2");
    assert_eq!(kv.create_revision(), leader.rev());
    assert_eq!(kv.version(), 2);
    assert_eq!(kv.lease(), lease);
}

#[tokio::test]
async fn proclaim_by_a_waiting_candidate_updates_its_own_key_only() {
    let (_server, mut client) = setup().await;
    let (first, second) = (grant(&mut client, 60).await, grant(&mut client, 60).await);
    campaign(&mut client, "elect", "one", first).await;
    let candidate = spawn_campaign(&client, "elect", "two", second);
    wait_queued(&mut client, "elect", 2).await;
    let key = queue_key("elect", second);
    let (created, _) = key_info(&mut client, key.as_bytes()).await.expect("key");
    // Proclaim checks only the key's create revision, as etcd's.
    let waiting = LeaderKey::new()
        .with_name("elect")
        .with_key(key.as_str())
        .with_rev(created)
        .with_lease(second);
    client
        .proclaim("two-b", Some(ProclaimOptions::new().with_leader(waiting)))
        .await
        .expect("proclaim");
    assert_eq!(
        leader_of(&mut client, "elect").await,
        (queue_key("elect", first), "one".to_string())
    );
    candidate.abort();
}

#[tokio::test]
async fn proclaim_with_a_wrong_revision_is_not_leader() {
    let (_server, mut client) = setup().await;
    let lease = grant(&mut client, 60).await;
    let leader = campaign(&mut client, "elect", "v1", lease).await;
    let wrong = leader.clone().with_rev(leader.rev() + 100);
    expect_grpc_error(
        client
            .proclaim("v2", Some(ProclaimOptions::new().with_leader(wrong)))
            .await,
        Code::Unknown,
        NOT_LEADER,
    );
    assert_eq!(leader_of(&mut client, "elect").await.1, "v1");
}

#[tokio::test]
async fn proclaim_and_resign_need_a_leader_key() {
    let (_server, mut client) = setup().await;
    expect_grpc_error(
        client.proclaim("v", None).await,
        Code::Unknown,
        MISSING_LEADER_KEY,
    );
    expect_grpc_error(client.resign(None).await, Code::Unknown, MISSING_LEADER_KEY);
}

#[tokio::test]
async fn leader_without_candidates_is_an_error() {
    let (_server, mut client) = setup().await;
    expect_grpc_error(client.leader("nobody").await, Code::Unknown, NO_LEADER);
    let lease = grant(&mut client, 60).await;
    let leader = campaign(&mut client, "nobody", "v", lease).await;
    client
        .resign(Some(ResignOptions::new().with_leader(leader)))
        .await
        .expect("resign");
    expect_grpc_error(client.leader("nobody").await, Code::Unknown, NO_LEADER);
}

#[tokio::test]
async fn resign_when_not_leading_changes_nothing() {
    let (_server, mut client) = setup().await;
    let lease = grant(&mut client, 60).await;
    let leader = campaign(&mut client, "elect", "v", lease).await;
    let before = revision(client.get("x", None).await.expect("get").header());
    let wrong = leader.clone().with_rev(leader.rev() + 1);
    let resign = client
        .resign(Some(ResignOptions::new().with_leader(wrong)))
        .await
        .expect("resign");
    assert_eq!(revision(resign.header()), before);
    assert_eq!(leader_of(&mut client, "elect").await.1, "v");
}

#[tokio::test]
async fn campaigning_again_with_one_lease_keeps_the_place_and_posts_the_value() {
    let (_server, mut client) = setup().await;
    let lease = grant(&mut client, 60).await;
    let first = campaign(&mut client, "elect", "v1", lease).await;
    let again = campaign(&mut client, "elect", "v2", lease).await;
    assert_eq!(again.key(), first.key());
    assert_eq!(again.rev(), first.rev());
    assert_eq!(leader_of(&mut client, "elect").await.1, "v2");
}

#[tokio::test]
async fn campaign_with_an_unknown_lease_fails() {
    let (_server, mut client) = setup().await;
    let result = client.campaign("bad", "v", 0x1234).await;
    expect_grpc_error(result, Code::Unknown, LEASE_NOT_FOUND);
    expect_grpc_error(client.leader("bad").await, Code::Unknown, NO_LEADER);
}

#[tokio::test]
async fn an_abandoned_campaign_resigns() {
    let (_server, mut client) = setup().await;
    let (first, second) = (grant(&mut client, 60).await, grant(&mut client, 60).await);
    campaign(&mut client, "elect", "one", first).await;
    let candidate = spawn_campaign(&client, "elect", "two", second);
    wait_queued(&mut client, "elect", 2).await;
    candidate.abort();
    wait_queued(&mut client, "elect", 1).await;
    assert_eq!(
        leader_of(&mut client, "elect").await,
        (queue_key("elect", first), "one".to_string())
    );
}

// --------------------------------------------------------------- observe

/// The next observation within [`DEADLINE`], as (key, value, header
/// revision).
async fn next_observed(stream: &mut etcd_client::ObserveStream) -> (String, String, i64) {
    let response = tokio::time::timeout(DEADLINE, stream.message())
        .await
        .expect("an observation within the deadline")
        .expect("observe stream")
        .expect("the observe stream stays open");
    let kv = response.kv().expect("kv");
    (
        text(kv.key()).to_string(),
        text(kv.value()).to_string(),
        revision(response.header()),
    )
}

#[tokio::test]
async fn observe_follows_proclamations_and_leaders() {
    let (_server, mut client) = setup().await;
    let (first, second) = (grant(&mut client, 60).await, grant(&mut client, 60).await);
    // No leader yet: nothing arrives until the first candidate (etcd sends
    // not even the response headers, so the observe call itself waits).
    let mut first_observation = {
        let mut client = client.clone();
        tokio::spawn(async move {
            let mut observer = client.observe("elect").await.expect("observe");
            let first = next_observed(&mut observer).await;
            (observer, first)
        })
    };
    assert_blocked(&mut first_observation, "observe before any campaign").await;
    let leader = campaign(&mut client, "elect", "one", first).await;
    let (mut observer, observed) = finished(first_observation, "observe").await;
    assert_eq!(
        observed,
        (queue_key("elect", first), "one".to_string(), leader.rev())
    );

    let proclaim = client
        .proclaim(
            "one-b",
            Some(ProclaimOptions::new().with_leader(leader.clone())),
        )
        .await
        .expect("proclaim");
    assert_eq!(
        next_observed(&mut observer).await,
        (
            queue_key("elect", first),
            "one-b".to_string(),
            revision(proclaim.header())
        )
    );

    // A waiting candidate's own changes are not the leader's.
    let candidate = spawn_campaign(&client, "elect", "two", second);
    wait_queued(&mut client, "elect", 2).await;
    client
        .resign(Some(ResignOptions::new().with_leader(leader)))
        .await
        .expect("resign");
    let next = finished(candidate, "the second Campaign").await;
    let current = revision(client.get("x", None).await.expect("get").header());
    assert_eq!(
        next_observed(&mut observer).await,
        (queue_key("elect", second), "two".to_string(), current)
    );
    assert_eq!(text(next.key()), queue_key("elect", second));
}

#[tokio::test]
async fn observe_starts_with_the_current_leader() {
    let (_server, mut client) = setup().await;
    let (first, second) = (grant(&mut client, 60).await, grant(&mut client, 60).await);
    campaign(&mut client, "elect", "one", first).await;
    let candidate = spawn_campaign(&client, "elect", "two", second);
    wait_queued(&mut client, "elect", 2).await;
    let current = revision(client.get("x", None).await.expect("get").header());
    let mut observer = client.observe("elect").await.expect("observe");
    assert_eq!(
        next_observed(&mut observer).await,
        (queue_key("elect", first), "one".to_string(), current)
    );
    // The leader's lease ends: the next candidate is observed.
    let revoke = client.lease_revoke(first).await.expect("revoke");
    finished(candidate, "the second Campaign").await;
    assert_eq!(
        next_observed(&mut observer).await,
        (
            queue_key("elect", second),
            "two".to_string(),
            revision(revoke.header())
        )
    );
}

// --------------------------------------------------------------- cluster

#[tokio::test]
async fn locks_and_elections_span_the_members_of_a_cluster() {
    let _serial = common::cluster::exclusive().await;
    let cluster = common::cluster::Cluster::start(3, &[]).await;
    let leader = cluster.leader().await;
    let followers = cluster.followers().await;
    let mut on_leader = cluster.client(leader).await;
    let mut on_first = cluster.client(followers[0]).await;
    let on_second = cluster.client(followers[1]).await;
    let (a, b) = (
        grant(&mut on_first, 60).await,
        grant(&mut on_first, 60).await,
    );

    // A lock taken through one follower excludes a locker on the other.
    let held = on_first
        .lock("mutex", Some(LockOptions::new().with_lease(a)))
        .await
        .expect("lock");
    let mut waiter = spawn_lock(&on_second, "mutex", b);
    wait_queued(&mut on_leader, "mutex", 2).await;
    assert_blocked(&mut waiter, "the Lock on the other follower").await;
    on_leader.unlock(held.key()).await.expect("unlock");
    let acquired = finished(waiter, "the Lock on the other follower").await;
    assert_eq!(text(acquired.key()), queue_key("mutex", b));

    // A leader elected through a follower is observed on another member.
    let first_observation = {
        let mut client = on_leader.clone();
        tokio::spawn(async move {
            let mut observer = client.observe("elect").await.expect("observe");
            let first = next_observed(&mut observer).await;
            (observer, first)
        })
    };
    let elected = campaign(&mut on_first, "elect", "one", a).await;
    let (mut observer, observed) = finished(first_observation, "observe").await;
    assert_eq!(observed.0, queue_key("elect", a));
    assert_eq!(observed.1, "one");
    let mut on_second = on_second;
    on_second
        .proclaim("two", Some(ProclaimOptions::new().with_leader(elected)))
        .await
        .expect("proclaim through another member");
    assert_eq!(next_observed(&mut observer).await.1, "two");
    assert_eq!(
        leader_of(&mut on_second, "elect").await,
        (queue_key("elect", a), "two".to_string())
    );
}
