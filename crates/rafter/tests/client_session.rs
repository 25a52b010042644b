//! `rafter-client` against real members: a resent request id gets the
//! original answer and is never applied twice, `acked_below` lets the
//! cluster drop answers, a session that is not kept alive expires (and one
//! that is does not), the client fails over when the member it uses is
//! killed, and a request that times out without a quorum has a definite
//! outcome once the quorum is back.

mod common;

use std::time::{Duration, Instant};

use common::cluster::{exclusive, Cluster};
use common::Server;
use rafter_client::etcdserverpb::request_op::Request as Op;
use rafter_client::etcdserverpb::{PutRequest, RequestOp, TxnRequest};
use rafter_client::{Client, Consistency, Error, Outcome, SessionOptions, Wait};

const WAIT: Wait = Wait::For(Duration::from_secs(20));

async fn value(client: &Client, key: &[u8]) -> Option<Vec<u8>> {
    let a = client
        .get(key, Consistency::Consistent, WAIT)
        .await
        .expect("get");
    assert!(a.valid && !a.timeout, "{a:?}");
    a.found.then_some(a.value)
}

#[tokio::test]
async fn a_resent_request_id_returns_the_original_answer() {
    let server = Server::start().await;
    let client = Client::connect(&[server.endpoint()])
        .await
        .expect("connect");
    let session = client.session(Duration::from_secs(30)).await.expect("open");

    // Set, then the same request id again with another value.
    let id = session.reserve();
    let first = session.set_as(id, b"k", b"first", WAIT).await.expect("set");
    assert!(
        first.valid && first.outcome == Outcome::Applied,
        "{first:?}"
    );
    assert_eq!(first.request_id, Some(id));
    let again = session
        .set_as(id, b"k", b"second", WAIT)
        .await
        .expect("resend");
    assert_eq!(
        (again.valid, again.outcome, again.revision, again.request_id),
        (true, Outcome::Applied, first.revision, Some(id)),
        "the resend must get the original answer: {again:?}"
    );
    assert_eq!(value(&client, b"k").await.as_deref(), Some(&b"first"[..]));

    // A swap resent after it swapped still answers "swapped" (applied
    // again, it would find "third" and fail).
    let id2 = session.reserve();
    let swap = session
        .swap_as(id2, b"k", Some(b"first"), b"third", WAIT)
        .await
        .expect("swap");
    assert!(swap.valid, "{swap:?}");
    let again = session
        .swap_as(id2, b"k", Some(b"first"), b"third", WAIT)
        .await
        .expect("resend swap");
    assert!(again.valid && again.revision == swap.revision, "{again:?}");

    // An etcd Txn with the session tag as metadata: the resend is not
    // applied again (the store's revision does not move).
    let id3 = session.reserve();
    let txn = TxnRequest {
        success: vec![RequestOp {
            request: Some(Op::RequestPut(PutRequest {
                key: b"t".to_vec(),
                value: b"once".to_vec(),
                ..Default::default()
            })),
        }],
        ..Default::default()
    };
    let t1 = session.txn_as(id3, &txn, WAIT).await.expect("txn");
    let t2 = session.txn_as(id3, &txn, WAIT).await.expect("resend txn");
    let rev = |t: &rafter_client::etcdserverpb::TxnResponse| t.header.as_ref().unwrap().revision;
    assert_eq!(rev(&t1), rev(&t2));
    let now = client
        .get(b"t", Consistency::Consistent, WAIT)
        .await
        .expect("get");
    assert_eq!(now.revision, rev(&t1), "nothing was applied after the txn");
    assert_eq!(session.outstanding(), 3);

    // Once settled and acknowledged (a later request carries acked_below),
    // the answer is gone: a resend is refused, never applied again.
    for id in [id, id2, id3] {
        session.settle(id);
    }
    let later = session.set(b"other", b"x", WAIT).await.expect("set");
    assert!(later.valid, "{later:?}");
    assert_eq!(session.outstanding(), 0);
    let stale = session.set_as(id, b"k", b"fourth", WAIT).await;
    assert_eq!(stale, Err(Error::AlreadyAcknowledged));
    assert_eq!(value(&client, b"k").await.as_deref(), Some(&b"third"[..]));
    session.close().await.expect("close");
}

#[tokio::test]
async fn a_session_not_kept_alive_expires_and_one_kept_alive_does_not() {
    let server = Server::start().await;
    let client = Client::connect(&[server.endpoint()])
        .await
        .expect("connect");
    let timeout = Duration::from_secs(1);
    let idle = client
        .session_with(SessionOptions {
            timeout,
            keep_alive: false,
        })
        .await
        .expect("open");
    let kept = client.session(timeout).await.expect("open");
    assert_eq!(idle.timeout_ms(), 1000);
    assert!(idle.set(b"a", b"1", WAIT).await.expect("set").valid);

    // Expiry runs on cluster time, which lags the wall clock a little: stay
    // idle at least a timeout, then probe (a probe that finds the session
    // alive renews it, so idle longer before the next one).
    let started = Instant::now();
    let mut pause = timeout * 2;
    loop {
        tokio::time::sleep(pause).await;
        if !idle.keep_alive().await.expect("keep-alive") {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "an idle session with a 1 s timeout is still alive after {:?}",
            started.elapsed()
        );
        pause *= 2;
    }
    assert!(idle.is_expired());
    assert_eq!(
        idle.set(b"a", b"2", WAIT).await,
        Err(Error::SessionExpired),
        "a request of an expired session is refused"
    );
    assert_eq!(value(&client, b"a").await.as_deref(), Some(&b"1"[..]));

    // Meanwhile the kept-alive session lived through many timeouts.
    assert!(started.elapsed() >= timeout * 2);
    let a = kept
        .set(b"b", b"1", WAIT)
        .await
        .expect("kept-alive session");
    assert!(a.valid && !kept.is_expired(), "{a:?}");
    assert!(kept.keep_alive().await.expect("keep-alive"));
}

/// A follower's answer names the leader; the client sends its next
/// requests there (no forwarding hop).
#[tokio::test]
async fn the_client_follows_the_leader_hint() {
    let _serial = exclusive().await;
    let cluster = Cluster::start(3, &[]).await;
    let leader = cluster.leader().await;
    let follower = (0..3).find(|&i| i != leader).expect("a follower");
    // The hint is the leader's published client URL: wait until the
    // follower has it (members publish theirs just after they start).
    let mut members = cluster.client(follower).await;
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let list = members.member_list().await.expect("member list");
        if list
            .members()
            .iter()
            .any(|m| m.client_urls().contains(&cluster.endpoint(leader)))
        {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the leader's client URL never reached the follower"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let endpoints = vec![cluster.endpoint(follower), cluster.endpoint(leader)];
    let client = Client::connect(&endpoints).await.expect("connect");
    assert_eq!(client.current_endpoint(), cluster.endpoint(follower));
    let first = client.set(b"h", b"1", WAIT).await.expect("set");
    assert!(first.valid, "{first:?}");
    assert_eq!(client.current_endpoint(), cluster.endpoint(leader));
    let second = client.set(b"h", b"2", WAIT).await.expect("set");
    assert_ne!(
        second.member_id, first.member_id,
        "answered by the same member"
    );
}

#[tokio::test]
async fn the_client_fails_over_when_its_member_is_killed() {
    let _serial = exclusive().await;
    let mut cluster = Cluster::start(3, &[]).await;
    // The leader first, so killing the client's member also forces an
    // election the client must wait out.
    let leader = cluster.leader().await;
    let mut order = vec![leader];
    order.extend((0..3).filter(|&i| i != leader));
    let endpoints: Vec<String> = order.iter().map(|&i| cluster.endpoint(i)).collect();
    let client = Client::connect(&endpoints).await.expect("connect");
    let session = client.session(Duration::from_secs(30)).await.expect("open");
    assert!(session.set(b"k", b"v1", WAIT).await.expect("set").valid);

    for round in 0..2 {
        let used = client.current_endpoint();
        let index = (0..3)
            .find(|&i| cluster.endpoint(i) == used)
            .expect("the client uses a member's endpoint");
        cluster.kill9(index);
        let v = format!("v{}", round + 2);
        let a = session
            .set(b"k", v.as_bytes(), WAIT)
            .await
            .expect("set after kill");
        assert!(a.valid && !a.timeout, "round {round}: {a:?}");
        assert_ne!(client.current_endpoint(), used, "round {round}");
        assert_eq!(value(&client, b"k").await, Some(v.into_bytes()));
        let plain = client
            .set(b"plain", b"x", WAIT)
            .await
            .expect("sessionless set");
        assert!(plain.valid, "{plain:?}");
        cluster.restart(index).await;
    }
    session.close().await.expect("close");
}

#[tokio::test]
async fn a_request_that_times_out_without_quorum_has_a_definite_outcome() {
    let _serial = exclusive().await;
    let mut cluster = Cluster::start(3, &[]).await;
    let client = Client::connect(&[cluster.endpoint(0)])
        .await
        .expect("connect");
    let session = client.session(Duration::from_secs(60)).await.expect("open");
    assert!(session.set(b"k", b"before", WAIT).await.expect("set").valid);

    cluster.kill9(1);
    cluster.kill9(2);
    let a = session
        .set(b"k", b"during", Wait::For(Duration::from_millis(500)))
        .await
        .expect("a timed-out answer, not an error");
    assert!(a.timeout && !a.valid, "{a:?}");
    assert!(
        matches!(a.outcome, Outcome::Cancelled | Outcome::Pending),
        "{a:?}"
    );
    let id = a.request_id.expect("a mutation's answer names its request");
    let get = client
        .get(
            b"k",
            Consistency::Consistent,
            Wait::For(Duration::from_millis(300)),
        )
        .await
        .expect("a timed-out read");
    assert!(get.timeout && !get.valid, "{get:?}");

    cluster.restart_all(&[1, 2]).await;
    let decided = session.outcome(id, Wait::Blocking).await.expect("outcome");
    assert!(!decided.timeout, "{decided:?}");
    let now = value(&client, b"k").await;
    match decided.outcome {
        Outcome::Applied => assert_eq!(now.as_deref(), Some(&b"during"[..])),
        Outcome::Cancelled => assert_eq!(now.as_deref(), Some(&b"before"[..])),
        other => panic!("not definite: {other:?} {decided:?}"),
    }
    // Asking again gives the same decision.
    let again = session.outcome(id, Wait::Blocking).await.expect("outcome");
    assert_eq!(again.outcome, decided.outcome, "{again:?}");
    assert_eq!(session.outstanding(), 0);
}
