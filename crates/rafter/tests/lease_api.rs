//! Acceptance tests of the etcd v3 Lease service: LeaseGrant (server-chosen
//! and client-chosen ids, an id already in use, the TTL limits), LeaseRevoke
//! (attached keys deleted in one revision, unknown leases), LeaseKeepAlive
//! (the bidirectional stream, unknown and revoked leases), LeaseTimeToLive
//! (with and without keys, unknown leases), LeaseLeases, puts and txns that
//! use leases, and expiry in real time.
//!
//! Tests use the `etcd-client` crate where it can express the case, and the
//! generated tonic client where it cannot: `etcd-client` turns a keep-alive
//! answer with TTL 0 into an error, so the raw answer is read directly. Each
//! test starts its own single-member server (see `common`), so revisions are
//! predictable. Every expectation is checked against the real etcd with
//! `RAFTER_TEST_TARGET=etcd cargo test -p rafter --test lease_api`.
//!
//! Expiry is real time: a test that waits for a lease to expire polls with a
//! deadline; no test sleeps hoping something happened meanwhile.

mod common;

use std::time::{Duration, Instant};

use common::{expect_grpc_error, revision, Server};
use etcd_client::{
    Client, Compare, CompareOp, EventType, GetOptions, LeaseGrantOptions, LeaseTimeToLiveOptions,
    PutOptions, ResponseHeader, Txn, TxnOp, WatchOptions,
};
use rafter_proto::etcdserverpb::lease_client::LeaseClient;
use rafter_proto::etcdserverpb::{LeaseKeepAliveRequest, LeaseKeepAliveResponse};
use tokio::sync::mpsc;
use tokio_stream::wrappers::UnboundedReceiverStream;
use tonic::Code;

/// etcd's answer (code NotFound) to a revoke, put or txn naming a lease
/// that does not exist (`rpctypes.ErrGRPCLeaseNotFound`).
const LEASE_NOT_FOUND: &str = "etcdserver: requested lease not found";
/// etcd's answer (code FailedPrecondition) to a grant whose client-chosen id
/// is already in use (`rpctypes.ErrGRPCLeaseExist`).
const LEASE_EXISTS: &str = "etcdserver: lease already exists";
/// etcd's answer (code OutOfRange) to a grant above the largest TTL
/// (`rpctypes.ErrGRPCLeaseTTLTooLarge`).
const TTL_TOO_LARGE: &str = "etcdserver: too large lease TTL";
/// etcd's answer (code InvalidArgument) to a put with `ignore_lease` that
/// also names a lease (`rpctypes.ErrGRPCLeaseProvided`).
const LEASE_PROVIDED: &str = "etcdserver: lease is provided";
/// The largest TTL etcd grants, in seconds (`lease.MaxLeaseTTL`).
const MAX_TTL: i64 = 9_000_000_000;
/// A lease id that is never granted.
const UNKNOWN_LEASE: i64 = 0x5eed_1ea5e;
/// How long a test waits for a lease to expire after its TTL ran out
/// (etcd checks for expired leases every 500 ms, then revokes through Raft).
const EXPIRY_DEADLINE: Duration = Duration::from_secs(20);
/// Pause between two polls while waiting for an expiry.
const POLL_INTERVAL: Duration = Duration::from_millis(50);
/// How long a test waits for a stream response it expects.
const RESPONSE_DEADLINE: Duration = Duration::from_secs(10);

/// Starts a fresh server and connects a client to it.
async fn setup() -> (Server, Client) {
    let server = Server::start().await;
    let client = server.client().await;
    (server, client)
}

/// Grants a lease with `ttl` and a server-chosen id; returns the id.
async fn grant(client: &mut Client, ttl: i64) -> i64 {
    let response = client.lease_grant(ttl, None).await.expect("lease grant");
    assert_eq!(response.ttl(), ttl, "granted TTL");
    response.id()
}

/// Puts `key = value` attached to `lease`; returns the put's revision.
async fn put_leased(client: &mut Client, key: &str, value: &str, lease: i64) -> i64 {
    let response = client
        .put(key, value, Some(PutOptions::new().with_lease(lease)))
        .await
        .unwrap_or_else(|e| panic!("put {key} with lease {lease:x}: {e}"));
    revision(response.header())
}

/// Puts `key = value` without a lease; returns the put's revision.
async fn put(client: &mut Client, key: &str, value: &str) -> i64 {
    let response = client.put(key, value, None).await.expect("put");
    revision(response.header())
}

/// The store's current revision, read with a Range on a key nobody writes.
async fn current_revision(client: &mut Client) -> i64 {
    let response = client.get("zz-never-written", None).await.expect("range");
    revision(response.header())
}

/// The keys under `prefix` now, in key order.
async fn keys_under(client: &mut Client, prefix: &str) -> Vec<String> {
    let response = client
        .get(
            prefix,
            Some(GetOptions::new().with_prefix().with_keys_only()),
        )
        .await
        .expect("range");
    response
        .kvs()
        .iter()
        .map(|kv| kv.key_str().expect("UTF-8 key").to_string())
        .collect()
}

/// The lease `key` is attached to (0: none); fails if the key is missing.
async fn lease_of(client: &mut Client, key: &str) -> i64 {
    let response = client.get(key, None).await.expect("range");
    match response.kvs() {
        [kv] => kv.lease(),
        other => panic!("expected one key {key}, got {other:?}"),
    }
}

/// The ids `LeaseLeases` lists, sorted (etcd lists them in no fixed order).
async fn lease_ids(client: &mut Client) -> Vec<i64> {
    let response = client.leases().await.expect("lease leases");
    assert_header(response.header());
    let mut ids: Vec<i64> = response.leases().iter().map(|l| l.id()).collect();
    ids.sort_unstable();
    ids
}

/// Asserts that a response header is present and filled in: cluster and
/// member id, a revision (at least 1: a fresh store is at revision 1) and a
/// Raft term.
#[track_caller]
fn assert_header(header: Option<&ResponseHeader>) {
    let header = header.expect("response has a header");
    assert_ne!(header.cluster_id(), 0, "header cluster_id: {header:?}");
    assert_ne!(header.member_id(), 0, "header member_id: {header:?}");
    assert!(header.revision() >= 1, "header revision: {header:?}");
    assert!(header.raft_term() >= 1, "header raft_term: {header:?}");
}

/// Polls until `key` is gone; returns how long after `since` that was seen.
/// Fails the test if it is still there after [`EXPIRY_DEADLINE`].
async fn wait_until_deleted(client: &mut Client, key: &str, since: Instant) -> Duration {
    let deadline = Instant::now() + EXPIRY_DEADLINE;
    loop {
        let response = client.get(key, None).await.expect("range");
        if response.kvs().is_empty() {
            return since.elapsed();
        }
        assert!(
            Instant::now() < deadline,
            "{key} still exists {EXPIRY_DEADLINE:?} after its lease's TTL ran out"
        );
        tokio::time::sleep(POLL_INTERVAL).await;
    }
}

/// A raw LeaseKeepAlive stream on the generated tonic client, which shows
/// every answer as sent (TTL 0 included).
struct RawKeepAlive {
    requests: mpsc::UnboundedSender<LeaseKeepAliveRequest>,
    responses: tonic::Streaming<LeaseKeepAliveResponse>,
}

impl RawKeepAlive {
    /// Opens a stream to `server`, sending a first request for `first_id`
    /// (etcd sends no response headers before its first message, so the
    /// call only returns once a request was sent).
    async fn open(server: &Server, first_id: i64) -> RawKeepAlive {
        let mut client = LeaseClient::connect(server.endpoint())
            .await
            .expect("connect a lease client");
        let (requests, receiver) = mpsc::unbounded_channel();
        requests
            .send(LeaseKeepAliveRequest { id: first_id })
            .expect("queue the first keep-alive");
        let responses = client
            .lease_keep_alive(UnboundedReceiverStream::new(receiver))
            .await
            .expect("open a LeaseKeepAlive stream")
            .into_inner();
        RawKeepAlive {
            requests,
            responses,
        }
    }

    fn send(&mut self, id: i64) {
        self.requests
            .send(LeaseKeepAliveRequest { id })
            .expect("the keep-alive stream is open");
    }

    async fn next(&mut self) -> LeaseKeepAliveResponse {
        match tokio::time::timeout(RESPONSE_DEADLINE, self.responses.message()).await {
            Err(_) => panic!("no keep-alive response within {RESPONSE_DEADLINE:?}"),
            Ok(Err(status)) => panic!("keep-alive stream failed: {status:?}"),
            Ok(Ok(None)) => panic!("keep-alive stream ended"),
            Ok(Ok(Some(response))) => response,
        }
    }
}

// ------------------------------------------------------------- LeaseGrant

#[tokio::test]
async fn grant_chooses_an_id_and_keeps_the_revision() {
    let (_server, mut client) = setup().await;
    let before = current_revision(&mut client).await;
    let response = client.lease_grant(60, None).await.expect("lease grant");
    assert_header(response.header());
    assert_ne!(response.id(), 0, "the server chooses a non-zero id");
    assert!(response.id() > 0, "etcd's ids are positive: {response:?}");
    assert_eq!(response.ttl(), 60);
    assert_eq!(response.error(), "");
    assert_eq!(
        revision(response.header()),
        before,
        "a grant writes no key, so the revision stays"
    );
    let second = grant(&mut client, 60).await;
    assert_ne!(second, response.id(), "each grant gets its own id");
    let mut expected = vec![response.id(), second];
    expected.sort_unstable();
    assert_eq!(lease_ids(&mut client).await, expected);
}

#[tokio::test]
async fn grant_with_a_client_chosen_id() {
    let (_server, mut client) = setup().await;
    let id = 0x1234_abcd;
    let response = client
        .lease_grant(30, Some(LeaseGrantOptions::new().with_id(id)))
        .await
        .expect("lease grant with id");
    assert_header(response.header());
    assert_eq!((response.id(), response.ttl()), (id, 30));
    let ttl = client
        .lease_time_to_live(id, None)
        .await
        .expect("time to live");
    assert_eq!((ttl.id(), ttl.granted_ttl()), (id, 30));
    assert_eq!(lease_ids(&mut client).await, [id]);
}

#[tokio::test]
async fn grant_of_an_id_in_use_is_refused() {
    let (_server, mut client) = setup().await;
    let id = 0x77;
    client
        .lease_grant(30, Some(LeaseGrantOptions::new().with_id(id)))
        .await
        .expect("first grant");
    expect_grpc_error(
        client
            .lease_grant(60, Some(LeaseGrantOptions::new().with_id(id)))
            .await,
        Code::FailedPrecondition,
        LEASE_EXISTS,
    );
    // The first grant is untouched.
    let ttl = client
        .lease_time_to_live(id, None)
        .await
        .expect("time to live");
    assert_eq!(ttl.granted_ttl(), 30);
    // Once revoked, the id can be granted again.
    client.lease_revoke(id).await.expect("revoke");
    let again = client
        .lease_grant(60, Some(LeaseGrantOptions::new().with_id(id)))
        .await
        .expect("grant after revoke");
    assert_eq!((again.id(), again.ttl()), (id, 60));
}

#[tokio::test]
async fn grant_ttl_limit() {
    let (_server, mut client) = setup().await;
    let largest = client
        .lease_grant(MAX_TTL, None)
        .await
        .expect("grant the largest TTL");
    assert_eq!(largest.ttl(), MAX_TTL);
    expect_grpc_error(
        client.lease_grant(MAX_TTL + 1, None).await,
        Code::OutOfRange,
        TTL_TOO_LARGE,
    );
    expect_grpc_error(
        client.lease_grant(i64::MAX, None).await,
        Code::OutOfRange,
        TTL_TOO_LARGE,
    );
    assert_eq!(lease_ids(&mut client).await, [largest.id()]);
}

/// etcd raises a TTL below its minimum to the minimum:
/// `ceil(3 * electionTicks / 2 * heartbeat)` seconds, where electionTicks is
/// election-timeout / heartbeat-interval. The harness runs with
/// `--heartbeat-interval 10 --election-timeout 100`: 10 ticks, 15 ticks of
/// 10 ms = 150 ms, rounded up to 1 s. (etcd's defaults, 100 ms and 1000 ms,
/// give 1.5 s, rounded up to 2 s.)
#[tokio::test]
async fn grant_raises_a_small_ttl_to_the_minimum() {
    let (_server, mut client) = setup().await;
    for (asked, granted) in [(1, 1), (0, 1), (-5, 1), (2, 2)] {
        let response = client
            .lease_grant(asked, None)
            .await
            .unwrap_or_else(|e| panic!("grant TTL {asked}: {e}"));
        assert_eq!(response.ttl(), granted, "granted TTL for {asked}");
        let ttl = client
            .lease_time_to_live(response.id(), None)
            .await
            .expect("time to live");
        assert_eq!(ttl.granted_ttl(), granted, "granted_ttl for {asked}");
        client.lease_revoke(response.id()).await.expect("revoke");
    }
}

// ------------------------------------------------------------ LeaseRevoke

#[tokio::test]
async fn revoke_deletes_attached_keys_in_one_revision() {
    let (_server, mut client) = setup().await;
    let lease = grant(&mut client, 600).await;
    put(&mut client, "r/free", "stays").await;
    let first = put_leased(&mut client, "r/a", "1", lease).await;
    put_leased(&mut client, "r/b", "2", lease).await;
    let last = put_leased(&mut client, "r/c", "3", lease).await;
    let (watcher, mut stream) = client
        .watch("r/", Some(WatchOptions::new().with_prefix()))
        .await
        .expect("watch");
    let response = client.lease_revoke(lease).await.expect("revoke");
    assert_header(response.header());
    let revoked = revision(response.header());
    assert_eq!(revoked, last + 1, "the three deletes share one revision");
    assert_eq!(current_revision(&mut client).await, revoked);
    assert_eq!(keys_under(&mut client, "r/").await, ["r/free"]);
    let before = client
        .get(
            "r/",
            Some(GetOptions::new().with_prefix().with_revision(last)),
        )
        .await
        .expect("range at the last put");
    assert_eq!(before.kvs().len(), 4, "history before the revoke is kept");
    assert_eq!(before.kvs()[0].create_revision(), first);

    // The watch sees all three deletes at the revoke's revision, in one
    // response.
    let events = tokio::time::timeout(RESPONSE_DEADLINE, stream.message())
        .await
        .expect("a watch response in time")
        .expect("watch stream")
        .expect("watch stream open");
    assert_eq!(events.watch_id(), watcher.watch_id());
    let deletes: Vec<(String, i64)> = events
        .events()
        .iter()
        .map(|event| {
            assert_eq!(event.event_type(), EventType::Delete);
            let kv = event.kv().expect("kv");
            (kv.key_str().unwrap().to_string(), kv.mod_revision())
        })
        .collect();
    assert_eq!(
        deletes,
        [
            ("r/a".to_string(), revoked),
            ("r/b".to_string(), revoked),
            ("r/c".to_string(), revoked),
        ]
    );

    let ttl = client
        .lease_time_to_live(lease, None)
        .await
        .expect("time to live");
    assert_eq!(ttl.ttl(), -1, "a revoked lease is unknown");
    assert!(lease_ids(&mut client).await.is_empty());
}

#[tokio::test]
async fn revoke_without_keys_keeps_the_revision() {
    let (_server, mut client) = setup().await;
    put(&mut client, "k", "v").await;
    let lease = grant(&mut client, 60).await;
    let before = current_revision(&mut client).await;
    let response = client.lease_revoke(lease).await.expect("revoke");
    assert_eq!(revision(response.header()), before);
    assert_eq!(current_revision(&mut client).await, before);
}

#[tokio::test]
async fn revoke_of_an_unknown_lease_is_not_found() {
    let (_server, mut client) = setup().await;
    expect_grpc_error(
        client.lease_revoke(UNKNOWN_LEASE).await,
        Code::NotFound,
        LEASE_NOT_FOUND,
    );
    let lease = grant(&mut client, 60).await;
    client.lease_revoke(lease).await.expect("first revoke");
    expect_grpc_error(
        client.lease_revoke(lease).await,
        Code::NotFound,
        LEASE_NOT_FOUND,
    );
}

#[tokio::test]
async fn keys_detached_by_a_later_put_survive_the_revoke() {
    let (_server, mut client) = setup().await;
    let lease = grant(&mut client, 60).await;
    put_leased(&mut client, "d/moved", "1", lease).await;
    put_leased(&mut client, "d/stays-leased", "1", lease).await;
    put(&mut client, "d/moved", "2").await;
    assert_eq!(lease_of(&mut client, "d/moved").await, 0);
    let other = grant(&mut client, 60).await;
    put_leased(&mut client, "d/other", "1", other).await;
    client.lease_revoke(lease).await.expect("revoke");
    assert_eq!(keys_under(&mut client, "d/").await, ["d/moved", "d/other"]);
}

// --------------------------------------------------------- LeaseKeepAlive

#[tokio::test]
async fn keep_alive_stream_renews_the_lease() {
    let (_server, mut client) = setup().await;
    let lease = grant(&mut client, 30).await;
    let (mut keeper, mut stream) = client.lease_keep_alive(lease).await.expect("keep alive");
    assert_eq!(keeper.id(), lease);
    // etcd-client consumed the answer to its first request; each further
    // request gets one answer on the same stream.
    for round in 0..3 {
        keeper.keep_alive().await.expect("send a keep-alive");
        let response = tokio::time::timeout(RESPONSE_DEADLINE, stream.message())
            .await
            .expect("a keep-alive response in time")
            .expect("keep-alive stream")
            .expect("keep-alive stream open");
        assert_header(response.header());
        assert_eq!(
            (response.id(), response.ttl()),
            (lease, 30),
            "round {round}: the answer carries the id and the full TTL"
        );
    }
    let ttl = client
        .lease_time_to_live(lease, None)
        .await
        .expect("time to live");
    assert!(
        (29..=30).contains(&ttl.ttl()),
        "a renewed lease has its full TTL left: {ttl:?}"
    );
}

#[tokio::test]
async fn keep_alive_of_unknown_or_revoked_lease_answers_ttl_zero() {
    let (server, mut client) = setup().await;
    let lease = grant(&mut client, 30).await;
    let mut stream = RawKeepAlive::open(&server, UNKNOWN_LEASE).await;
    let response = stream.next().await;
    assert_eq!((response.id, response.ttl), (UNKNOWN_LEASE, 0));
    let header = response.header.expect("keep-alive response has a header");
    assert!(header.revision >= 1 && header.raft_term >= 1, "{header:?}");
    // The stream stays open: a known lease is renewed on it...
    stream.send(lease);
    let response = stream.next().await;
    assert_eq!((response.id, response.ttl), (lease, 30));
    // ...and once revoked, it answers TTL 0 as well.
    client.lease_revoke(lease).await.expect("revoke");
    stream.send(lease);
    let response = stream.next().await;
    assert_eq!((response.id, response.ttl), (lease, 0));
    // etcd-client reports a TTL-0 answer to its first request as an error.
    assert!(client.lease_keep_alive(lease).await.is_err());
}

// -------------------------------------------------------- LeaseTimeToLive

#[tokio::test]
async fn time_to_live_reports_ttls_and_keys() {
    let (_server, mut client) = setup().await;
    let lease = grant(&mut client, 120).await;
    let empty = client
        .lease_time_to_live(lease, Some(LeaseTimeToLiveOptions::new().with_keys()))
        .await
        .expect("time to live");
    assert_header(empty.header());
    assert_eq!((empty.id(), empty.granted_ttl()), (lease, 120));
    assert!((119..=120).contains(&empty.ttl()), "{empty:?}");
    assert!(empty.keys().is_empty());

    put_leased(&mut client, "t/b", "1", lease).await;
    put_leased(&mut client, "t/a", "1", lease).await;
    put_leased(&mut client, "t/c", "1", lease).await;
    put(&mut client, "t/free", "1").await;

    let without_keys = client
        .lease_time_to_live(lease, None)
        .await
        .expect("time to live");
    assert!(
        without_keys.keys().is_empty(),
        "keys only when asked: {without_keys:?}"
    );
    let with_keys = client
        .lease_time_to_live(lease, Some(LeaseTimeToLiveOptions::new().with_keys()))
        .await
        .expect("time to live with keys");
    assert_eq!(with_keys.granted_ttl(), 120);
    // etcd lists a lease's keys in no fixed order.
    let mut keys: Vec<&[u8]> = with_keys.keys().iter().map(Vec::as_slice).collect();
    keys.sort_unstable();
    assert_eq!(keys, [&b"t/a"[..], b"t/b", b"t/c"]);
}

#[tokio::test]
async fn time_to_live_of_an_unknown_lease_is_minus_one() {
    let (_server, mut client) = setup().await;
    for options in [None, Some(LeaseTimeToLiveOptions::new().with_keys())] {
        let response = client
            .lease_time_to_live(UNKNOWN_LEASE, options)
            .await
            .expect("time to live of an unknown lease is no error");
        assert_header(response.header());
        assert_eq!(
            (response.id(), response.ttl(), response.granted_ttl()),
            (UNKNOWN_LEASE, -1, 0)
        );
        assert!(response.keys().is_empty());
    }
}

// ------------------------------------------------------------ LeaseLeases

#[tokio::test]
async fn leases_lists_granted_ids() {
    let (_server, mut client) = setup().await;
    assert!(lease_ids(&mut client).await.is_empty());
    let mut ids = Vec::new();
    for ttl in [10, 20, 30] {
        ids.push(grant(&mut client, ttl).await);
    }
    let chosen = 0x42;
    client
        .lease_grant(40, Some(LeaseGrantOptions::new().with_id(chosen)))
        .await
        .expect("grant with id");
    ids.push(chosen);
    ids.sort_unstable();
    assert_eq!(lease_ids(&mut client).await, ids);
    client.lease_revoke(chosen).await.expect("revoke");
    ids.retain(|&id| id != chosen);
    assert_eq!(lease_ids(&mut client).await, ids);
}

// ------------------------------------------------------- puts and txns

#[tokio::test]
async fn put_with_a_lease_and_ignore_lease() {
    let (_server, mut client) = setup().await;
    let lease = grant(&mut client, 60).await;
    put_leased(&mut client, "p", "v1", lease).await;
    assert_eq!(lease_of(&mut client, "p").await, lease);

    // ignore_lease keeps the key's current lease.
    client
        .put("p", "v2", Some(PutOptions::new().with_ignore_lease()))
        .await
        .expect("put with ignore_lease");
    let response = client.get("p", None).await.expect("range");
    let kv = &response.kvs()[0];
    assert_eq!((kv.value_str().unwrap(), kv.lease()), ("v2", lease));

    // ignore_lease together with a lease is refused.
    expect_grpc_error(
        client
            .put(
                "p",
                "v3",
                Some(PutOptions::new().with_ignore_lease().with_lease(lease)),
            )
            .await,
        Code::InvalidArgument,
        LEASE_PROVIDED,
    );

    // A put to an unknown lease is refused and changes nothing.
    let before = current_revision(&mut client).await;
    expect_grpc_error(
        client
            .put("p", "v4", Some(PutOptions::new().with_lease(UNKNOWN_LEASE)))
            .await,
        Code::NotFound,
        LEASE_NOT_FOUND,
    );
    expect_grpc_error(
        client
            .put(
                "fresh",
                "v",
                Some(PutOptions::new().with_lease(UNKNOWN_LEASE)),
            )
            .await,
        Code::NotFound,
        LEASE_NOT_FOUND,
    );
    assert_eq!(current_revision(&mut client).await, before);
    assert_eq!(lease_of(&mut client, "p").await, lease);

    // Moving a key to another lease detaches it from the first.
    let other = grant(&mut client, 60).await;
    put_leased(&mut client, "p", "v5", other).await;
    let ttl = client
        .lease_time_to_live(lease, Some(LeaseTimeToLiveOptions::new().with_keys()))
        .await
        .expect("time to live");
    assert!(ttl.keys().is_empty(), "{ttl:?}");
    let ttl = client
        .lease_time_to_live(other, Some(LeaseTimeToLiveOptions::new().with_keys()))
        .await
        .expect("time to live");
    assert_eq!(ttl.keys(), [b"p".to_vec()]);
}

#[tokio::test]
async fn txn_compares_the_lease_and_puts_with_leases() {
    let (_server, mut client) = setup().await;
    let lease = grant(&mut client, 60).await;
    put_leased(&mut client, "leased", "1", lease).await;
    put(&mut client, "free", "1").await;
    let cases = [
        (Compare::lease("leased", CompareOp::Equal, lease), true),
        (Compare::lease("leased", CompareOp::NotEqual, lease), false),
        (Compare::lease("leased", CompareOp::Greater, 0), true),
        (Compare::lease("leased", CompareOp::Less, lease), false),
        (Compare::lease("free", CompareOp::Equal, 0), true),
        (Compare::lease("free", CompareOp::Equal, lease), false),
        // A missing key compares as lease 0.
        (Compare::lease("missing", CompareOp::Equal, 0), true),
    ];
    for (compare, expected) in cases {
        let response = client
            .txn(Txn::new().when([compare.clone()]))
            .await
            .expect("txn");
        assert_header(response.header());
        assert_eq!(response.succeeded(), expected, "{compare:?}");
    }

    // A txn's put can attach a key to a lease...
    let response = client
        .txn(
            Txn::new()
                .when([Compare::lease("free", CompareOp::Equal, 0)])
                .and_then([TxnOp::put(
                    "free",
                    "2",
                    Some(PutOptions::new().with_lease(lease)),
                )]),
        )
        .await
        .expect("txn with a leased put");
    assert!(response.succeeded());
    assert_eq!(lease_of(&mut client, "free").await, lease);

    // ...and one naming an unknown lease fails the whole txn.
    let before = current_revision(&mut client).await;
    expect_grpc_error(
        client
            .txn(Txn::new().and_then([
                TxnOp::put("x", "1", None),
                TxnOp::put("y", "1", Some(PutOptions::new().with_lease(UNKNOWN_LEASE))),
            ]))
            .await,
        Code::NotFound,
        LEASE_NOT_FOUND,
    );
    assert_eq!(current_revision(&mut client).await, before);
}

// ---------------------------------------------------------------- expiry

#[tokio::test]
async fn an_expired_lease_deletes_its_keys() {
    let (_server, mut client) = setup().await;
    let ttl = 2;
    let granted_at = Instant::now();
    let lease = grant(&mut client, ttl).await;
    put_leased(&mut client, "e/a", "1", lease).await;
    let last = put_leased(&mut client, "e/b", "1", lease).await;
    put(&mut client, "e/free", "1").await;
    let after_puts = current_revision(&mut client).await;
    assert_eq!(keys_under(&mut client, "e/").await.len(), 3);

    let waited = wait_until_deleted(&mut client, "e/a", granted_at).await;
    // etcd never expires a lease before its TTL ran out.
    assert!(
        waited >= Duration::from_secs(ttl as u64),
        "expired after {waited:?}, TTL {ttl} s"
    );
    assert_eq!(keys_under(&mut client, "e/").await, ["e/free"]);
    assert_eq!(
        current_revision(&mut client).await,
        after_puts + 1,
        "the expiry deletes both keys in one revision"
    );
    assert!(after_puts > last);
    let response = client
        .lease_time_to_live(lease, None)
        .await
        .expect("time to live");
    assert_eq!(response.ttl(), -1);
    assert!(lease_ids(&mut client).await.is_empty());
    expect_grpc_error(
        client.lease_revoke(lease).await,
        Code::NotFound,
        LEASE_NOT_FOUND,
    );
}

#[tokio::test]
async fn a_lease_kept_alive_outlives_its_ttl() {
    let (_server, mut client) = setup().await;
    let ttl = 2;
    let lease = grant(&mut client, ttl).await;
    put_leased(&mut client, "alive", "1", lease).await;
    let (mut keeper, mut stream) = client.lease_keep_alive(lease).await.expect("keep alive");
    // Renew every half second for three TTLs; the key must stay throughout.
    let until = Instant::now() + Duration::from_secs(3 * ttl as u64);
    while Instant::now() < until {
        tokio::time::sleep(Duration::from_millis(500)).await;
        keeper.keep_alive().await.expect("send a keep-alive");
        let response = tokio::time::timeout(RESPONSE_DEADLINE, stream.message())
            .await
            .expect("a keep-alive response in time")
            .expect("keep-alive stream")
            .expect("keep-alive stream open");
        assert_eq!(response.ttl(), ttl, "the lease is still alive");
        assert_eq!(lease_of(&mut client, "alive").await, lease);
    }
    // Once no longer renewed, it expires.
    let stopped = Instant::now();
    drop(keeper);
    drop(stream);
    let waited = wait_until_deleted(&mut client, "alive", stopped).await;
    assert!(waited >= Duration::from_millis(ttl as u64 * 1000 - 600));
}

// ------------------------------------------------------- lease and watch

#[tokio::test]
async fn lease_id_in_events_and_revocation_deletes() {
    // The kv's lease field in a watch event, and the delete event of a
    // revocation.
    let (_server, mut client) = setup().await;
    let lease = client
        .lease_grant(60, None)
        .await
        .expect("lease grant")
        .id();
    let (watcher, mut stream) = client
        .watch("l/", Some(WatchOptions::new().with_prefix()))
        .await
        .expect("watch");
    let put_response = client
        .put("l/a", "leased", Some(PutOptions::new().with_lease(lease)))
        .await
        .expect("put with lease");
    let put_rev = revision(put_response.header());
    let revoke = client.lease_revoke(lease).await.expect("lease revoke");
    let revoke_rev = revision(revoke.header());
    let mut lines = Vec::new();
    while lines.len() < 2 {
        let response = tokio::time::timeout(RESPONSE_DEADLINE, stream.message())
            .await
            .expect("a watch response in time")
            .expect("watch stream")
            .expect("watch stream open");
        assert_eq!(response.watch_id(), watcher.watch_id());
        for event in response.events() {
            let kv = event.kv().expect("kv");
            lines.push(format!(
                "{:?} {}={} c{} m{} v{} l{}",
                event.event_type(),
                kv.key_str().unwrap(),
                kv.value_str().unwrap(),
                kv.create_revision(),
                kv.mod_revision(),
                kv.version(),
                kv.lease()
            ));
        }
    }
    assert_eq!(
        lines,
        [
            format!("Put l/a=leased c{put_rev} m{put_rev} v1 l{lease}"),
            format!("Delete l/a= c0 m{revoke_rev} v0 l0"),
        ]
    );
}
