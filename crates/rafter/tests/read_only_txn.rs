//! Read-only Txns take the read path, as etcd serves them: answered from the
//! store after a read-index barrier (none when every range is serializable),
//! they never enter the Raft log, while a txn that may write always does.
//! The Raft index is what `Maintenance.Status` reports as `raft_index` (the
//! commit index, for etcd and Rafter alike).
//!
//! One deliberate difference: etcd counts a nested txn as a write (its
//! `isTxnReadonly` does not look inside), so it proposes a read-only txn
//! that nests one; Rafter serves it from the read path too. The expected
//! Raft index says so for each target.
//!
//! Every expectation is checked against the real etcd with
//! `RAFTER_TEST_TARGET=etcd cargo test -p rafter --test read_only_txn`.

mod common;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use common::{expect_grpc_error, range_of, revision, txn_of, Server, Target};
use etcd_client::{
    Client, Compare, CompareOp, GetOptions, GetResponse, KeyValue, Txn, TxnOp, TxnResponse,
};
use tonic::Code;

/// Keys of the fixture; each is written 1 to 3 times.
const KEYS: usize = 8;
/// Read-only txns whose answers and Raft index are checked.
const READS: usize = 1000;
/// Keys a ranged read in a txn returns at most.
const LIMIT: i64 = 3;
/// How long the member may take to publish itself after it starts serving.
const SETTLE_DEADLINE: Duration = Duration::from_secs(30);

/// What a key holds, as the fixture wrote it.
#[derive(Debug, Clone, PartialEq)]
struct Kv {
    value: String,
    create_revision: i64,
    mod_revision: i64,
    version: i64,
}

impl Kv {
    fn of(kv: &KeyValue) -> (String, Kv) {
        let kv_str = |b: &[u8]| String::from_utf8(b.to_vec()).expect("UTF-8");
        (
            kv_str(kv.key()),
            Kv {
                value: kv_str(kv.value()),
                create_revision: kv.create_revision(),
                mod_revision: kv.mod_revision(),
                version: kv.version(),
            },
        )
    }
}

type Kvs = BTreeMap<String, Kv>;

/// The keys at the current revision and at an earlier one, as the puts that
/// made them reported them (not as the server reads them back).
struct Fixture {
    now: Kvs,
    past: Kvs,
    past_revision: i64,
    revision: i64,
}

fn key(i: usize) -> String {
    format!("ro/{}", i % KEYS)
}

/// Puts every key once (the past revision), then some again: key i ends
/// with version 1 + i % 3.
async fn write_fixture(client: &mut Client) -> Fixture {
    let mut kvs = Kvs::new();
    let mut past = Kvs::new();
    let mut past_revision = 0;
    for round in 0..3 {
        for i in (0..KEYS).filter(|i| i % 3 >= round) {
            let value = format!("v{i}.{round}");
            let response = client.put(key(i), value.clone(), None).await.expect("put");
            let rev = revision(response.header());
            let kv = kvs.entry(key(i)).or_insert(Kv {
                value: String::new(),
                create_revision: rev,
                mod_revision: 0,
                version: 0,
            });
            kv.value = value;
            kv.mod_revision = rev;
            kv.version += 1;
        }
        if round == 0 {
            past = kvs.clone();
            past_revision = kvs.values().map(|kv| kv.mod_revision).max().unwrap();
        }
    }
    let revision = kvs.values().map(|kv| kv.mod_revision).max().unwrap();
    Fixture {
        now: kvs,
        past,
        past_revision,
        revision,
    }
}

/// Whether `read_txn(_, i)` has a nested txn (every fifth).
fn has_nested(i: usize) -> bool {
    i.is_multiple_of(5)
}

/// Whether the nested txn of `read_txn(_, i)` takes its success branch.
fn nested_holds(i: usize) -> bool {
    (i / 5).is_multiple_of(2)
}

/// Read-only txn number `i`: a compare on one key, of a kind and an outcome
/// that vary with `i`; the success branch reads that key and a limited
/// prefix range, the failure branch reads the key at the past revision and
/// (every fifth txn) runs a nested read-only txn, which reads the next key
/// now or at the past revision. Every third txn is serializable throughout.
/// Returns the txn and whether its compare holds.
fn read_txn(f: &Fixture, i: usize) -> (Txn, bool) {
    let k = key(i);
    let kv = &f.now[&k];
    let holds = (i / 4).is_multiple_of(2);
    let off = i64::from(!holds);
    let compare = match i % 4 {
        0 => Compare::value(
            k.as_str(),
            CompareOp::Equal,
            if holds { kv.value.as_str() } else { "nope" },
        ),
        1 => Compare::version(k.as_str(), CompareOp::Equal, kv.version + off),
        2 => Compare::mod_revision(k.as_str(), CompareOp::Less, kv.mod_revision + 1 - off),
        _ => Compare::create_revision(
            k.as_str(),
            CompareOp::NotEqual,
            kv.create_revision + 1 - off,
        ),
    };
    let serializable = i.is_multiple_of(3);
    let options = |o: GetOptions| {
        Some(if serializable {
            o.with_serializable()
        } else {
            o
        })
    };
    let mut failure = vec![TxnOp::get(
        k.as_str(),
        options(GetOptions::new().with_revision(f.past_revision)),
    )];
    if has_nested(i) {
        let other = key(i + 1);
        // Versions are 1 to 3.
        let version = if nested_holds(i) { 0 } else { 3 };
        let past = GetOptions::new().with_revision(f.past_revision);
        let nested = Txn::new()
            .when([Compare::version(
                other.as_str(),
                CompareOp::Greater,
                version,
            )])
            .and_then([TxnOp::get(other.as_str(), options(GetOptions::new()))])
            .or_else([TxnOp::get(other.as_str(), options(past))]);
        failure.push(TxnOp::txn(nested));
    }
    let txn = Txn::new().when([compare]).and_then([
        TxnOp::get(k.as_str(), options(GetOptions::new())),
        TxnOp::get(
            "ro/",
            options(GetOptions::new().with_prefix().with_limit(LIMIT)),
        ),
    ]);
    (txn.or_else(failure), holds)
}

/// The key-values of a range response, as the fixture describes them.
fn kvs_of(response: &GetResponse) -> Kvs {
    response.kvs().iter().map(Kv::of).collect()
}

/// The first `n` key-values of `kvs` in key order.
fn first(kvs: &Kvs, n: usize) -> Kvs {
    kvs.iter()
        .take(n)
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

/// Only `k` of `kvs`.
fn only(kvs: &Kvs, k: &str) -> Kvs {
    kvs.get_key_value(k)
        .map(|(k, v)| (k.clone(), v.clone()))
        .into_iter()
        .collect()
}

/// Checks the answer to `read_txn(f, i)`.
fn check_answer(f: &Fixture, i: usize, holds: bool, response: &TxnResponse) {
    let k = key(i);
    assert_eq!(response.succeeded(), holds, "txn {i}: compare outcome");
    assert_eq!(revision(response.header()), f.revision, "txn {i}: header");
    let ops = response.op_responses();
    if holds {
        assert_eq!(ops.len(), 2, "txn {i}: success branch");
        assert_eq!(kvs_of(range_of(&ops[0])), only(&f.now, &k), "txn {i}: get");
        let prefix = range_of(&ops[1]);
        assert_eq!(kvs_of(prefix), first(&f.now, LIMIT as usize), "txn {i}");
        assert_eq!((prefix.count(), prefix.more()), (KEYS as i64, true));
        return;
    }
    assert_eq!(
        ops.len(),
        1 + usize::from(has_nested(i)),
        "txn {i}: failure branch"
    );
    let at_past = range_of(&ops[0]);
    assert_eq!(kvs_of(at_past), only(&f.past, &k), "txn {i}: past get");
    if has_nested(i) {
        let nested = txn_of(&ops[1]);
        assert_eq!(
            nested.succeeded(),
            nested_holds(i),
            "txn {i}: nested compare"
        );
        let at = if nested_holds(i) { &f.now } else { &f.past };
        let got = kvs_of(range_of(&nested.op_responses()[0]));
        assert_eq!(got, only(at, &key(i + 1)), "txn {i}: nested get");
    }
}

/// The Raft index once the member has published itself (its one write of
/// its own after it starts) and nothing else is in flight.
async fn settled_raft_index(client: &mut Client) -> u64 {
    let deadline = Instant::now() + SETTLE_DEADLINE;
    loop {
        let members = client.member_list().await.expect("member list");
        let published = members
            .members()
            .iter()
            .all(|m| !m.client_urls().is_empty());
        let status = client.status().await.expect("status");
        if published && status.raft_index() == status.raft_applied_index() {
            return status.raft_index();
        }
        assert!(
            Instant::now() < deadline,
            "the member did not settle: {status:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn raft_index(client: &mut Client) -> u64 {
    client.status().await.expect("status").raft_index()
}

#[tokio::test]
async fn read_only_txns_leave_the_raft_index_alone() {
    let server = Server::start().await;
    let mut client = server.client().await;
    let f = write_fixture(&mut client).await;
    let start = settled_raft_index(&mut client).await;
    for i in 0..READS {
        let (txn, holds) = read_txn(&f, i);
        let response = client.txn(txn).await.expect("read-only txn");
        check_answer(&f, i, holds, &response);
    }
    let proposed = match server.target() {
        Target::Rafter => 0,
        Target::Etcd => (0..READS).filter(|&i| has_nested(i)).count() as u64,
    };
    let before = raft_index(&mut client).await;
    assert_eq!(
        before,
        start + proposed,
        "{READS} read-only txns ({proposed} expected in the log)"
    );

    // A txn that may write goes through Raft, even when its compare fails
    // and it writes nothing.
    let k = key(0);
    let skipped_write = Txn::new()
        .when([Compare::value(k.as_str(), CompareOp::Equal, "nope")])
        .and_then([TxnOp::put(k.as_str(), "never", None)]);
    let response = client.txn(skipped_write).await.expect("txn");
    assert!(!response.succeeded());
    assert_eq!(revision(response.header()), f.revision);
    assert_eq!(raft_index(&mut client).await, before + 1);
    let write = Txn::new()
        .when([Compare::value(
            k.as_str(),
            CompareOp::Equal,
            &*f.now[&k].value,
        )])
        .and_then([TxnOp::put(k.as_str(), "new", None)]);
    let response = client.txn(write).await.expect("txn");
    assert!(response.succeeded());
    assert_eq!(revision(response.header()), f.revision + 1);
    assert_eq!(raft_index(&mut client).await, before + 2);

    // The read path sees that write at once.
    let read = Txn::new()
        .when([Compare::value(k.as_str(), CompareOp::Equal, "new")])
        .and_then([TxnOp::get(k.as_str(), None)]);
    let response = client.txn(read).await.expect("txn");
    assert!(response.succeeded());
    let ops = response.op_responses();
    let kv = &range_of(&ops[0]).kvs()[0];
    assert_eq!(
        (kv.value_str().unwrap(), kv.mod_revision()),
        ("new", f.revision + 1)
    );
    assert_eq!(raft_index(&mut client).await, before + 2);
}

/// etcd refuses a request over `--max-request-bytes` only when it would
/// propose it: a read-only txn that large is answered (gRPC's receive limit,
/// 512 KiB above, still bounds it), the same txn with a put is refused.
#[tokio::test]
async fn request_limit_applies_to_txns_that_write() {
    let server = Server::start_with_args(&["--max-request-bytes", "1048576"]).await;
    let mut client = server.client().await;
    let rev = revision(client.put("k", "v", None).await.expect("put").header());
    let big = vec![b'x'; 1024 * 1024];
    let read = Txn::new()
        .when([Compare::value("k", CompareOp::Equal, big.clone())])
        .or_else([TxnOp::get("k", None)]);
    let response = client.txn(read).await.expect("a large read-only txn");
    assert!(!response.succeeded());
    assert_eq!(revision(response.header()), rev);
    let kvs = kvs_of(range_of(&response.op_responses()[0]));
    assert_eq!(kvs["k"].value, "v");
    let write = Txn::new()
        .when([Compare::value("k", CompareOp::Equal, big)])
        .or_else([TxnOp::put("k", "w", None)]);
    expect_grpc_error(
        client.txn(write).await,
        Code::InvalidArgument,
        "etcdserver: request is too large",
    );
}
