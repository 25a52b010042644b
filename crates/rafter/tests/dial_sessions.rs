//! Client sessions and the dial service against real `rafter serve`
//! processes: exactly-once mutations through the etcd API (session tags as
//! gRPC metadata) and through `rafterpb.Dial`, whose dedup survives leader
//! change, snapshot install and kill -9 of every member; an expired
//! session's request is refused and never applied; `Outcome` decides a
//! request's fate through the log; the dial's Get/Set/Swap semantics.
//!
//! Rafter-only (the dial service and session tags are Rafter's own).

mod common;

use std::time::{Duration, Instant};

use common::cluster::{exclusive, Cluster, POLL_INTERVAL};
use common::Server;
use rafter_proto::etcdserverpb::kv_client::KvClient;
use rafter_proto::etcdserverpb::maintenance_client::MaintenanceClient;
use rafter_proto::etcdserverpb::{MoveLeaderRequest, PutRequest, PutResponse, RangeRequest};
use rafter_proto::rafterpb::dial_client::DialClient;
use rafter_proto::rafterpb::*;
use tonic::transport::Channel;
use tonic::{Code, Request};

const DEADLINE: Duration = Duration::from_secs(30);

async fn dial(endpoint: &str) -> DialClient<Channel> {
    DialClient::connect(endpoint.to_string())
        .await
        .expect("connect the dial client")
}

async fn kv(endpoint: &str) -> KvClient<Channel> {
    KvClient::connect(endpoint.to_string())
        .await
        .expect("connect the kv client")
}

async fn open_session(endpoint: &str, timeout_ms: u64) -> u64 {
    let resp = dial(endpoint)
        .await
        .session_open(SessionOpenRequest { timeout_ms })
        .await
        .expect("open a session")
        .into_inner();
    assert!(resp.session_id != 0);
    resp.session_id
}

/// A Put tagged with (session, seq) through the etcd API.
fn tagged_put(key: &str, value: &str, session_id: u64, seq: u64) -> Request<PutRequest> {
    let mut r = Request::new(PutRequest {
        key: key.into(),
        value: value.into(),
        ..Default::default()
    });
    let meta = r.metadata_mut();
    meta.insert(
        "rafter-session-id",
        session_id.to_string().parse().expect("ascii"),
    );
    meta.insert("rafter-seq", seq.to_string().parse().expect("ascii"));
    r
}

/// (value, version, mod revision) of `key`, or None, read linearizably.
async fn read(endpoint: &str, key: &str) -> Option<(String, i64, i64)> {
    let resp = kv(endpoint)
        .await
        .range(RangeRequest {
            key: key.into(),
            ..Default::default()
        })
        .await
        .expect("range")
        .into_inner();
    resp.kvs.first().map(|kv| {
        (
            String::from_utf8_lossy(&kv.value).into_owned(),
            kv.version,
            kv.mod_revision,
        )
    })
}

fn revision_of(p: &PutResponse) -> i64 {
    p.header.as_ref().expect("header").revision
}

#[tokio::test]
async fn a_retried_etcd_put_in_a_session_applies_once_and_answers_as_the_first_time() {
    let server = Server::start().await;
    let ep = server.endpoint();
    let session = open_session(&ep, 60_000).await;
    let mut client = kv(&ep).await;
    // The first attempt's answer is lost: the call is abandoned while in
    // flight, so the test does not know whether it was applied.
    let _ = tokio::time::timeout(
        Duration::from_micros(50),
        client.put(tagged_put("k", "first", session, 1)),
    )
    .await;
    let retry = client
        .put(tagged_put("k", "first", session, 1))
        .await
        .expect("retry")
        .into_inner();
    // A retry that (wrongly) changed its value shows it is not executed
    // again: the kept answer comes back and the store keeps the first.
    let again = client
        .put(tagged_put("k", "second", session, 1))
        .await
        .expect("second retry")
        .into_inner();
    assert_eq!(revision_of(&again), revision_of(&retry));
    let (value, version, mod_revision) = read(&ep, "k").await.expect("the key exists");
    assert_eq!(value, "first");
    assert_eq!(version, 1, "applied more than once");
    assert_eq!(mod_revision, revision_of(&retry));
    // The next seq is a new request.
    let next = client
        .put(tagged_put("k", "third", session, 2))
        .await
        .expect("next")
        .into_inner();
    assert!(revision_of(&next) > revision_of(&retry));
    assert_eq!(read(&ep, "k").await.expect("exists").1, 2);
}

#[tokio::test]
async fn malformed_session_metadata_is_refused() {
    let server = Server::start().await;
    let mut client = kv(&server.endpoint()).await;
    let mut r = Request::new(PutRequest {
        key: "k".into(),
        value: "v".into(),
        ..Default::default()
    });
    r.metadata_mut()
        .insert("rafter-session-id", "12".parse().expect("ascii"));
    let err = client.put(r).await.expect_err("seq missing");
    assert_eq!(err.code(), Code::InvalidArgument);
    assert!(err.message().contains("go together"), "{}", err.message());
    assert_eq!(read(&server.endpoint(), "k").await, None);
}

#[tokio::test]
async fn an_expired_sessions_request_is_refused_and_never_applied() {
    let server = Server::start().await;
    let ep = server.endpoint();
    let session = open_session(&ep, 1_000).await;
    let mut d = dial(&ep).await;
    // Wait (polling, without keeping it alive: a keep-alive would) until
    // the cluster clock expired it: a request of it is then refused.
    let started = Instant::now();
    let mut client = kv(&ep).await;
    let mut seq = 0;
    let err = loop {
        assert!(started.elapsed() < DEADLINE, "the session never expired");
        tokio::time::sleep(Duration::from_millis(1_200)).await;
        seq += 1;
        match client.put(tagged_put("e", "x", session, seq)).await {
            // Still alive at that moment: that put touched it, so wait
            // longer than its timeout again.
            Ok(_) => continue,
            Err(e) => break e,
        }
    };
    assert_eq!(err.code(), Code::FailedPrecondition);
    assert_eq!(err.message(), "rafter: session expired");
    let versions_before = read(&ep, "e").await.map_or(0, |(_, v, _)| v);
    assert_eq!(versions_before, seq as i64 - 1, "the refused put applied");
    let alive = d
        .session_keep_alive(SessionKeepAliveRequest {
            session_id: session,
        })
        .await
        .expect("keep-alive")
        .into_inner()
        .alive;
    assert!(!alive);
    let err = d
        .set(DialSetRequest {
            key: "e".into(),
            value: "y".into(),
            consistent: true,
            session: Some(SessionTag {
                session_id: session,
                seq: seq + 1,
                acked_below: 0,
            }),
            ..Default::default()
        })
        .await
        .expect_err("expired");
    assert_eq!(err.code(), Code::FailedPrecondition);
    assert_eq!(
        read(&ep, "e").await.map_or(0, |(_, v, _)| v),
        versions_before
    );
}

fn tag(session_id: u64, seq: u64) -> Option<SessionTag> {
    Some(SessionTag {
        session_id,
        seq,
        acked_below: 0,
    })
}

#[tokio::test]
async fn dial_get_set_swap_and_outcome() {
    let server = Server::start().await;
    let ep = server.endpoint();
    let mut d = dial(&ep).await;
    let set = d
        .set(DialSetRequest {
            key: "cfg".into(),
            value: "a".into(),
            consistent: true,
            ..Default::default()
        })
        .await
        .expect("set")
        .into_inner();
    assert!(set.valid && !set.timeout);
    assert_eq!(set.outcome(), Outcome::Applied);
    let id = set.request_id.expect("a request id");
    for consistent in [true, false] {
        let got = d
            .get(DialGetRequest {
                key: "cfg".into(),
                consistent,
                ..Default::default()
            })
            .await
            .expect("get")
            .into_inner();
        assert!(got.valid && got.found);
        assert_eq!(got.value, b"a");
        assert!(got.revision >= set.revision);
    }
    let missing = d
        .get(DialGetRequest {
            key: "nope".into(),
            consistent: true,
            ..Default::default()
        })
        .await
        .expect("get")
        .into_inner();
    assert!(missing.valid && !missing.found);

    // Swap: refused on a wrong old value (showing the current one),
    // applied on the right one, and on "absent" for a new key.
    let wrong = d
        .swap(DialSwapRequest {
            key: "cfg".into(),
            new_value: "b".into(),
            old_value: "zzz".into(),
            ..Default::default()
        })
        .await
        .expect("swap")
        .into_inner();
    assert!(!wrong.valid && wrong.found);
    assert_eq!(wrong.value, b"a");
    assert_eq!(wrong.outcome(), Outcome::Applied);
    let right = d
        .swap(DialSwapRequest {
            key: "cfg".into(),
            new_value: "b".into(),
            old_value: "a".into(),
            ..Default::default()
        })
        .await
        .expect("swap")
        .into_inner();
    assert!(right.valid);
    assert!(right.value.is_empty(), "a write's answer carries no value");
    let fresh = d
        .swap(DialSwapRequest {
            key: "new".into(),
            new_value: "1".into(),
            old_absent: true,
            ..Default::default()
        })
        .await
        .expect("swap")
        .into_inner();
    assert!(fresh.valid);

    // The set's outcome, asked later: applied, with its revision.
    let outcome = d
        .outcome(DialOutcomeRequest {
            request_id: Some(id),
            ..Default::default()
        })
        .await
        .expect("outcome")
        .into_inner();
    assert_eq!(outcome.outcome(), Outcome::Applied);
    assert!(outcome.valid);
    assert_eq!(outcome.revision, set.revision);

    // A request never sent, asked about: cancelled for good; sending it
    // afterwards does nothing.
    let session = open_session(&ep, 60_000).await;
    let never = d
        .outcome(DialOutcomeRequest {
            request_id: Some(RequestId {
                session_id: session,
                seq: 1,
            }),
            ..Default::default()
        })
        .await
        .expect("outcome")
        .into_inner();
    assert_eq!(never.outcome(), Outcome::Cancelled);
    let late = d
        .set(DialSetRequest {
            key: "late".into(),
            value: "x".into(),
            consistent: true,
            session: tag(session, 1),
            ..Default::default()
        })
        .await
        .expect("set")
        .into_inner();
    assert_eq!(late.outcome(), Outcome::Cancelled);
    assert!(!late.valid);
    assert_eq!(read(&ep, "late").await, None, "a cancelled request applied");

    let err = d
        .get(DialGetRequest::default())
        .await
        .expect_err("empty key");
    assert_eq!(err.code(), Code::InvalidArgument);
    assert_eq!(err.message(), "etcdserver: key is not provided");
}

/// A set with no quorum times out with its outcome pending (the cancel
/// cannot be ordered either); once the quorum is back, `Outcome` decides
/// it and the store agrees with the decision.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_quorum_a_timed_out_set_is_pending_until_outcome_decides_it() {
    let _serial = exclusive().await;
    let mut cluster = Cluster::start(3, &[]).await;
    let session = open_session_with_retry(&cluster, 60_000).await;
    let leader = cluster.leader().await;
    let others: Vec<usize> = (0..3).filter(|&i| i != leader).collect();
    for &i in &others {
        cluster.kill9(i);
    }
    let ep = cluster.endpoint(leader);
    let mut d = dial(&ep).await;
    let pending = d
        .set(DialSetRequest {
            key: "p".into(),
            value: "v".into(),
            consistent: true,
            deadline: Some(Deadline {
                blocking: false,
                timeout_ms: 300,
            }),
            session: tag(session, 1),
        })
        .await
        .expect("set")
        .into_inner();
    assert!(pending.timeout && !pending.valid);
    assert_eq!(pending.outcome(), Outcome::Pending, "{pending:?}");
    cluster.restart_all(&others).await;
    let decided = d
        .outcome(DialOutcomeRequest {
            request_id: pending.request_id,
            deadline: Some(Deadline {
                blocking: true,
                timeout_ms: 0,
            }),
        })
        .await
        .expect("outcome")
        .into_inner();
    let stored = read(&ep, "p").await;
    match decided.outcome() {
        Outcome::Applied => assert_eq!(stored.map(|(v, ..)| v).as_deref(), Some("v")),
        Outcome::Cancelled => assert_eq!(stored, None),
        other => panic!("not decided: {other:?} {decided:?}"),
    }
}

/// A session opened before the quorum went away: retried until a leader
/// answers.
async fn open_session_with_retry(cluster: &Cluster, timeout_ms: u64) -> u64 {
    let started = Instant::now();
    loop {
        for i in cluster.running() {
            let mut d = dial(&cluster.endpoint(i)).await;
            if let Ok(r) = d.session_open(SessionOpenRequest { timeout_ms }).await {
                return r.into_inner().session_id;
            }
        }
        assert!(started.elapsed() < DEADLINE, "no session could be opened");
        tokio::time::sleep(POLL_INTERVAL).await;
    }
}

/// The dedup table is replicated state: a retry gets the original answer
/// after the leader changed, on a member that caught up by snapshot, and
/// after every member was killed with SIGKILL and restarted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dedup_survives_leader_change_snapshot_install_and_kill9_of_every_member() {
    let _serial = exclusive().await;
    let mut cluster = Cluster::start(3, &["--snapshot-count", "50"]).await;
    // Opened (and the request made) before anything else: the first
    // session, seq 1.
    let session = open_session_with_retry(&cluster, 600_000).await;
    let leader = cluster.leader().await;
    let original = kv(&cluster.endpoint(leader))
        .await
        .put(tagged_put("d", "once", session, 1))
        .await
        .expect("put")
        .into_inner();
    let want = revision_of(&original);

    // Leader change.
    let target = (leader + 1) % 3;
    let target_id = member_id(&cluster.endpoint(target)).await;
    MaintenanceClient::connect(cluster.endpoint(leader))
        .await
        .expect("connect")
        .move_leader(MoveLeaderRequest { target_id })
        .await
        .expect("move leader");
    retry_everywhere(&cluster, session, want).await;

    // A follower misses enough entries to catch up by snapshot; then it
    // leads, and answers the retry from its installed state.
    let leader = cluster.leader().await;
    let lagging = (leader + 1) % 3;
    cluster.kill9(lagging);
    let mut client = kv(&cluster.endpoint(leader)).await;
    for i in 0..200 {
        client
            .put(PutRequest {
                key: format!("fill{i}").into(),
                value: "x".into(),
                ..Default::default()
            })
            .await
            .expect("fill");
    }
    cluster.restart(lagging).await;
    wait_until_caught_up(&cluster, lagging, &cluster.endpoint(leader)).await;
    assert!(
        cluster.log(lagging).contains("installing snapshot"),
        "the lagging member did not catch up by snapshot"
    );
    let lagging_id = member_id(&cluster.endpoint(lagging)).await;
    MaintenanceClient::connect(cluster.endpoint(leader))
        .await
        .expect("connect")
        .move_leader(MoveLeaderRequest {
            target_id: lagging_id,
        })
        .await
        .expect("move leader");
    assert_eq!(cluster.leader().await, lagging);
    retry_everywhere(&cluster, session, want).await;

    // kill -9 of every member, then restart.
    for i in 0..3 {
        cluster.kill9(i);
    }
    cluster.restart_all(&[0, 1, 2]).await;
    retry_everywhere(&cluster, session, want).await;
    let (value, version, _) = read(&cluster.endpoint(0), "d").await.expect("exists");
    assert_eq!((value.as_str(), version), ("once", 1));
}

/// Retries (session, 1) through every member: each must answer with the
/// original revision.
async fn retry_everywhere(cluster: &Cluster, session: u64, want_revision: i64) {
    for i in 0..cluster.size() {
        let ep = cluster.endpoint(i);
        let again = kv(&ep)
            .await
            .put(tagged_put("d", "twice", session, 1))
            .await
            .expect("retry")
            .into_inner();
        assert_eq!(revision_of(&again), want_revision, "via {ep}");
    }
}

async fn member_id(endpoint: &str) -> u64 {
    MaintenanceClient::connect(endpoint.to_string())
        .await
        .expect("connect")
        .status(rafter_proto::etcdserverpb::StatusRequest {})
        .await
        .expect("status")
        .into_inner()
        .header
        .expect("header")
        .member_id
}

/// Waits until `member` has applied what the leader has.
async fn wait_until_caught_up(cluster: &Cluster, member: usize, leader_ep: &str) {
    let target = read_revision(leader_ep).await;
    let started = Instant::now();
    loop {
        let mut c = kv(&cluster.endpoint(member)).await;
        let rev = c
            .range(RangeRequest {
                key: "fill199".into(),
                serializable: true,
                ..Default::default()
            })
            .await
            .map(|r| r.into_inner().header.map_or(0, |h| h.revision))
            .unwrap_or(0);
        if rev >= target {
            return;
        }
        assert!(started.elapsed() < DEADLINE, "member never caught up");
        tokio::time::sleep(POLL_INTERVAL).await;
    }
}

async fn read_revision(endpoint: &str) -> i64 {
    kv(endpoint)
        .await
        .range(RangeRequest {
            key: "x".into(),
            ..Default::default()
        })
        .await
        .expect("range")
        .into_inner()
        .header
        .expect("header")
        .revision
}
