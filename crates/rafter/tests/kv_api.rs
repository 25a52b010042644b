//! Acceptance tests of the etcd v3 KV service through the third-party
//! `etcd-client` crate: every Range, Put, DeleteRange, Txn and Compact option,
//! response headers, and etcd's errors (gRPC code and message).
//!
//! Each test starts its own single-member server (see `common`), so revisions
//! are predictable and compaction does not leak between tests. Every
//! expectation here is checked against the real etcd with
//! `RAFTER_TEST_TARGET=etcd cargo test -p rafter --test kv_api`.

mod common;

use common::{expect_grpc_code, expect_grpc_error, range_of, revision, txn_of, Server};
use etcd_client::{
    Client, Compare, CompareOp, DeleteOptions, GetOptions, GetResponse, KeyValue, PutOptions,
    SortOrder, SortTarget, Txn, TxnOp, TxnOpResponse,
};
use tonic::Code;

const EMPTY_KEY: &str = "etcdserver: key is not provided";
const COMPACTED: &str = "etcdserver: mvcc: required revision has been compacted";
const FUTURE_REV: &str = "etcdserver: mvcc: required revision is a future revision";
const TOO_MANY_OPS: &str = "etcdserver: too many operations in txn request";
const DUPLICATE_KEY: &str = "etcdserver: duplicate key given in txn request";
const LEASE_NOT_FOUND: &str = "etcdserver: requested lease not found";
const KEY_NOT_FOUND: &str = "etcdserver: key not found";
const VALUE_PROVIDED: &str = "etcdserver: value is provided";
const LEASE_PROVIDED: &str = "etcdserver: lease is provided";
const TOO_LARGE: &str = "etcdserver: request is too large";

/// A lease id that was never granted.
const UNKNOWN_LEASE: i64 = 0x5eed_1ea5e;

/// Starts a fresh server and connects a client to it.
async fn setup() -> (Server, Client) {
    let server = Server::start().await;
    let client = server.client().await;
    (server, client)
}

/// Puts `key = value` and returns the revision of the put.
async fn put(client: &mut Client, key: &str, value: &str) -> i64 {
    let response = client.put(key, value, None).await.expect("put");
    revision(response.header())
}

/// Puts every `(key, value)` in order and returns the last revision.
async fn put_all(client: &mut Client, pairs: &[(&str, &str)]) -> i64 {
    let mut last = 0;
    for (key, value) in pairs {
        last = put(client, key, value).await;
    }
    last
}

/// Ranges from `key` with `options`, expecting success.
async fn get(client: &mut Client, key: &str, options: GetOptions) -> GetResponse {
    client.get(key, Some(options)).await.expect("range")
}

/// The store's current revision, read with a Range on a key nobody writes.
async fn current_revision(client: &mut Client) -> i64 {
    let response = client.get("zz-never-written", None).await.expect("range");
    revision(response.header())
}

fn key_str(kv: &KeyValue) -> &str {
    kv.key_str().expect("UTF-8 key")
}

fn value_str(kv: &KeyValue) -> &str {
    kv.value_str().expect("UTF-8 value")
}

/// The keys of `kvs`, in response order.
fn keys(kvs: &[KeyValue]) -> Vec<&str> {
    kvs.iter().map(key_str).collect()
}

/// The `(key, value)` pairs of `kvs`, in response order.
fn pairs(kvs: &[KeyValue]) -> Vec<(&str, &str)> {
    kvs.iter().map(|kv| (key_str(kv), value_str(kv))).collect()
}

/// Whether a txn with only this compare takes its success branch.
async fn compare_holds(client: &mut Client, compare: Compare) -> bool {
    let response = client
        .txn(Txn::new().when([compare]))
        .await
        .expect("txn with a compare");
    response.succeeded()
}

/// Asserts each compare's outcome, naming the failing case.
async fn assert_compares(client: &mut Client, cases: Vec<(&str, Compare, bool)>) {
    for (name, compare, expected) in cases {
        assert_eq!(compare_holds(client, compare).await, expected, "{name}");
    }
}

// ---------------------------------------------------------------- Range

#[tokio::test]
async fn range_single_key() {
    let (_server, mut client) = setup().await;
    let rev = put_all(&mut client, &[("a", "1"), ("ab", "2"), ("b", "3")]).await;
    let response = get(&mut client, "ab", GetOptions::new()).await;
    assert_eq!(pairs(response.kvs()), [("ab", "2")]);
    assert_eq!(response.count(), 1);
    assert!(!response.more());
    assert_eq!(revision(response.header()), rev);
    let kv = &response.kvs()[0];
    assert_eq!(
        (
            kv.create_revision(),
            kv.mod_revision(),
            kv.version(),
            kv.lease()
        ),
        (rev - 1, rev - 1, 1, 0)
    );
    let missing = get(&mut client, "abc", GetOptions::new()).await;
    assert!(missing.kvs().is_empty());
    assert_eq!(missing.count(), 0);
}

#[tokio::test]
async fn range_with_range_end_prefix_and_from_key() {
    let (_server, mut client) = setup().await;
    put_all(
        &mut client,
        &[
            ("a", "0"),
            ("b", "1"),
            ("b/1", "2"),
            ("b/2", "3"),
            ("c", "4"),
        ],
    )
    .await;
    let half_open = get(&mut client, "b", GetOptions::new().with_range("c")).await;
    assert_eq!(keys(half_open.kvs()), ["b", "b/1", "b/2"]);
    let prefix = get(&mut client, "b/", GetOptions::new().with_prefix()).await;
    assert_eq!(keys(prefix.kvs()), ["b/1", "b/2"]);
    let from_key = get(&mut client, "b/2", GetOptions::new().with_from_key()).await;
    assert_eq!(keys(from_key.kvs()), ["b/2", "c"]);
    let all = get(&mut client, "", GetOptions::new().with_all_keys()).await;
    assert_eq!(keys(all.kvs()), ["a", "b", "b/1", "b/2", "c"]);
    let empty = get(&mut client, "c", GetOptions::new().with_range("b")).await;
    assert!(empty.kvs().is_empty(), "range_end before key is empty");
}

#[tokio::test]
async fn range_limit_sets_more_and_counts_everything() {
    let (_server, mut client) = setup().await;
    put_all(
        &mut client,
        &[
            ("l/a", "1"),
            ("l/b", "2"),
            ("l/c", "3"),
            ("l/d", "4"),
            ("l/e", "5"),
        ],
    )
    .await;
    let limited = get(
        &mut client,
        "l/",
        GetOptions::new().with_prefix().with_limit(2),
    )
    .await;
    assert_eq!(keys(limited.kvs()), ["l/a", "l/b"]);
    assert!(limited.more());
    assert_eq!(limited.count(), 5);
    let exact = get(
        &mut client,
        "l/",
        GetOptions::new().with_prefix().with_limit(5),
    )
    .await;
    assert_eq!(exact.kvs().len(), 5);
    assert!(!exact.more());
    let unlimited = get(
        &mut client,
        "l/",
        GetOptions::new().with_prefix().with_limit(0),
    )
    .await;
    assert_eq!(unlimited.kvs().len(), 5);
    assert!(!unlimited.more());
}

#[tokio::test]
async fn range_at_past_revisions() {
    let (_server, mut client) = setup().await;
    let r1 = put(&mut client, "k", "v1").await;
    let r2 = put(&mut client, "k", "v2").await;
    let r3 = revision(client.delete("k", None).await.expect("delete").header());
    put(&mut client, "other", "x").await;

    let at = |rev| GetOptions::new().with_revision(rev);
    let before = get(&mut client, "k", at(r1 - 1)).await;
    assert!(before.kvs().is_empty());
    let first = get(&mut client, "k", at(r1)).await;
    assert_eq!(pairs(first.kvs()), [("k", "v1")]);
    assert_eq!(first.kvs()[0].version(), 1);
    let second = get(&mut client, "k", at(r2)).await;
    assert_eq!(pairs(second.kvs()), [("k", "v2")]);
    let kv = &second.kvs()[0];
    assert_eq!(
        (kv.create_revision(), kv.mod_revision(), kv.version()),
        (r1, r2, 2)
    );
    assert!(get(&mut client, "k", at(r3)).await.kvs().is_empty());
    assert!(get(&mut client, "k", GetOptions::new())
        .await
        .kvs()
        .is_empty());
    let all_then = get(
        &mut client,
        "",
        GetOptions::new().with_all_keys().with_revision(r2),
    )
    .await;
    assert_eq!(keys(all_then.kvs()), ["k"]);
    assert_eq!(
        revision(all_then.header()),
        r3 + 1,
        "the header carries the current revision, not the requested one"
    );
}

/// Writes four keys whose orders by key, version, create revision, mod
/// revision and value are all different and without ties:
/// key a b c d; create c a d b; version b d a c; mod b d c a; value d b a c.
async fn put_sort_fixture(client: &mut Client) {
    put_all(
        client,
        &[
            ("s/c", "z"),
            ("s/a", "y"),
            ("s/d", "w"),
            ("s/b", "x"),
            ("s/a", "y"),
            ("s/d", "w"),
            ("s/c", "z"),
            ("s/c", "z"),
            ("s/c", "z"),
            ("s/a", "y"),
        ],
    )
    .await;
}

#[tokio::test]
async fn range_sort_by_every_target_and_order() {
    let (_server, mut client) = setup().await;
    put_sort_fixture(&mut client).await;
    let cases = [
        (SortTarget::Key, ["s/a", "s/b", "s/c", "s/d"]),
        (SortTarget::Version, ["s/b", "s/d", "s/a", "s/c"]),
        (SortTarget::Create, ["s/c", "s/a", "s/d", "s/b"]),
        (SortTarget::Mod, ["s/b", "s/d", "s/c", "s/a"]),
        (SortTarget::Value, ["s/d", "s/b", "s/a", "s/c"]),
    ];
    for (target, ascending) in cases {
        let options = GetOptions::new()
            .with_prefix()
            .with_sort(target, SortOrder::Ascend);
        let response = get(&mut client, "s/", options).await;
        assert_eq!(keys(response.kvs()), ascending, "{target:?} ascending");

        let options = GetOptions::new()
            .with_prefix()
            .with_sort(target, SortOrder::Descend);
        let response = get(&mut client, "s/", options).await;
        let mut descending = ascending;
        descending.reverse();
        assert_eq!(keys(response.kvs()), descending, "{target:?} descending");

        let options = GetOptions::new()
            .with_prefix()
            .with_sort(target, SortOrder::None);
        let response = get(&mut client, "s/", options).await;
        assert_eq!(
            keys(response.kvs()),
            ascending,
            "{target:?} with order NONE sorts ascending"
        );
    }
}

#[tokio::test]
async fn range_sort_applies_before_limit() {
    let (_server, mut client) = setup().await;
    put_sort_fixture(&mut client).await;
    let options = GetOptions::new()
        .with_prefix()
        .with_sort(SortTarget::Create, SortOrder::Descend)
        .with_limit(2);
    let response = get(&mut client, "s/", options).await;
    assert_eq!(keys(response.kvs()), ["s/b", "s/d"]);
    assert!(response.more());
    assert_eq!(response.count(), 4);
    let options = GetOptions::new()
        .with_prefix()
        .with_sort(SortTarget::Key, SortOrder::Descend)
        .with_limit(1);
    let response = get(&mut client, "s/", options).await;
    assert_eq!(keys(response.kvs()), ["s/d"]);
}

#[tokio::test]
async fn range_serializable() {
    let (_server, mut client) = setup().await;
    let rev = put(&mut client, "ser", "v").await;
    let response = get(&mut client, "ser", GetOptions::new().with_serializable()).await;
    assert_eq!(pairs(response.kvs()), [("ser", "v")]);
    assert_eq!(revision(response.header()), rev);
}

#[tokio::test]
async fn range_keys_only() {
    let (_server, mut client) = setup().await;
    let r1 = put(&mut client, "ko/a", "value-a").await;
    put(&mut client, "ko/b", "value-b").await;
    let response = get(
        &mut client,
        "ko/",
        GetOptions::new().with_prefix().with_keys_only(),
    )
    .await;
    assert_eq!(pairs(response.kvs()), [("ko/a", ""), ("ko/b", "")]);
    let kv = &response.kvs()[0];
    assert_eq!(
        (kv.create_revision(), kv.mod_revision(), kv.version()),
        (r1, r1, 1)
    );
    assert_eq!(response.count(), 2);
}

#[tokio::test]
async fn range_count_only() {
    let (_server, mut client) = setup().await;
    put_all(&mut client, &[("co/a", "1"), ("co/b", "2"), ("co/c", "3")]).await;
    let response = get(
        &mut client,
        "co/",
        GetOptions::new().with_prefix().with_count_only(),
    )
    .await;
    assert!(response.kvs().is_empty());
    assert_eq!(response.count(), 3);
    assert!(!response.more());
    let limited = GetOptions::new()
        .with_prefix()
        .with_count_only()
        .with_limit(1);
    let response = get(&mut client, "co/", limited).await;
    assert!(response.kvs().is_empty());
    assert_eq!(response.count(), 3);
}

/// Writes m/a, m/b, m/c, then updates m/a; returns the four revisions.
async fn put_revision_fixture(client: &mut Client) -> [i64; 4] {
    [
        put(client, "m/a", "1").await,
        put(client, "m/b", "2").await,
        put(client, "m/c", "3").await,
        put(client, "m/a", "4").await,
    ]
}

#[tokio::test]
async fn range_min_max_mod_revision() {
    let (_server, mut client) = setup().await;
    let [_, b, c, _] = put_revision_fixture(&mut client).await;
    let filtered = |options: GetOptions| options.with_prefix();
    let cases = [
        (
            filtered(GetOptions::new().with_min_mod_revision(b)),
            vec!["m/a", "m/b", "m/c"],
        ),
        (
            filtered(GetOptions::new().with_min_mod_revision(c)),
            vec!["m/a", "m/c"],
        ),
        (
            filtered(GetOptions::new().with_max_mod_revision(b)),
            vec!["m/b"],
        ),
        (
            filtered(
                GetOptions::new()
                    .with_min_mod_revision(b)
                    .with_max_mod_revision(c),
            ),
            vec!["m/b", "m/c"],
        ),
    ];
    for (options, expected) in cases {
        let response = get(&mut client, "m/", options.clone()).await;
        assert_eq!(keys(response.kvs()), expected, "{options:?}");
        assert_eq!(response.count(), 3, "count is taken before filtering");
    }
}

#[tokio::test]
async fn range_min_max_create_revision() {
    let (_server, mut client) = setup().await;
    let [a, b, c, _] = put_revision_fixture(&mut client).await;
    let filtered = |options: GetOptions| options.with_prefix();
    let cases = [
        (
            filtered(GetOptions::new().with_min_create_revision(b)),
            vec!["m/b", "m/c"],
        ),
        (
            filtered(GetOptions::new().with_max_create_revision(b)),
            vec!["m/a", "m/b"],
        ),
        (
            filtered(
                GetOptions::new()
                    .with_min_create_revision(a)
                    .with_max_create_revision(a),
            ),
            vec!["m/a"],
        ),
        (
            filtered(GetOptions::new().with_min_create_revision(c + 1)),
            vec![],
        ),
    ];
    for (options, expected) in cases {
        let response = get(&mut client, "m/", options.clone()).await;
        assert_eq!(keys(response.kvs()), expected, "{options:?}");
    }
}

// ---------------------------------------------------------------- Put

#[tokio::test]
async fn put_prev_kv() {
    let (_server, mut client) = setup().await;
    let prev = Some(PutOptions::new().with_prev_key());
    let first = client.put("p", "v1", prev.clone()).await.expect("put");
    assert!(first.prev_key().is_none(), "a new key has no previous kv");
    let r1 = revision(first.header());
    let second = client.put("p", "v2", prev).await.expect("put");
    let old = second.prev_key().expect("previous kv");
    assert_eq!((key_str(old), value_str(old)), ("p", "v1"));
    assert_eq!(
        (old.create_revision(), old.mod_revision(), old.version()),
        (r1, r1, 1)
    );
    let third = client.put("p", "v3", None).await.expect("put");
    assert!(third.prev_key().is_none(), "prev_kv only when asked for");
}

#[tokio::test]
async fn put_ignore_value_keeps_the_value() {
    let (_server, mut client) = setup().await;
    let r1 = put(&mut client, "iv", "original").await;
    let options = PutOptions::new().with_ignore_value().with_prev_key();
    let response = client.put("iv", "", Some(options)).await.expect("put");
    let r2 = revision(response.header());
    assert_eq!(r2, r1 + 1);
    assert_eq!(value_str(response.prev_key().expect("prev kv")), "original");
    let now = get(&mut client, "iv", GetOptions::new()).await;
    let kv = &now.kvs()[0];
    assert_eq!(value_str(kv), "original");
    assert_eq!(
        (kv.create_revision(), kv.mod_revision(), kv.version()),
        (r1, r2, 2)
    );
}

#[tokio::test]
async fn put_ignore_lease_keeps_the_lease() {
    let (_server, mut client) = setup().await;
    let r1 = put(&mut client, "il", "v1").await;
    let options = Some(PutOptions::new().with_ignore_lease());
    let response = client.put("il", "v2", options).await.expect("put");
    assert_eq!(revision(response.header()), r1 + 1);
    let now = get(&mut client, "il", GetOptions::new()).await;
    assert_eq!(pairs(now.kvs()), [("il", "v2")]);
    assert_eq!(now.kvs()[0].lease(), 0);
}

#[tokio::test]
async fn put_option_errors() {
    let (_server, mut client) = setup().await;
    let rev = put(&mut client, "exists", "v").await;
    let cases = [
        (
            "missing",
            "",
            PutOptions::new().with_ignore_value(),
            Code::InvalidArgument,
            KEY_NOT_FOUND,
        ),
        (
            "missing",
            "v",
            PutOptions::new().with_ignore_lease(),
            Code::InvalidArgument,
            KEY_NOT_FOUND,
        ),
        (
            "exists",
            "x",
            PutOptions::new().with_ignore_value(),
            Code::InvalidArgument,
            VALUE_PROVIDED,
        ),
        (
            "exists",
            "v",
            PutOptions::new()
                .with_ignore_lease()
                .with_lease(UNKNOWN_LEASE),
            Code::InvalidArgument,
            LEASE_PROVIDED,
        ),
        (
            "exists",
            "v",
            PutOptions::new().with_lease(UNKNOWN_LEASE),
            Code::NotFound,
            LEASE_NOT_FOUND,
        ),
        (
            "fresh",
            "v",
            PutOptions::new().with_lease(UNKNOWN_LEASE),
            Code::NotFound,
            LEASE_NOT_FOUND,
        ),
    ];
    for (key, value, options, code, message) in cases {
        expect_grpc_error(client.put(key, value, Some(options)).await, code, message);
    }
    assert_eq!(
        current_revision(&mut client).await,
        rev,
        "failed puts write nothing"
    );
    assert!(get(&mut client, "fresh", GetOptions::new())
        .await
        .kvs()
        .is_empty());
}

// ---------------------------------------------------------------- DeleteRange

#[tokio::test]
async fn delete_single_key_with_prev_kv() {
    let (_server, mut client) = setup().await;
    let r1 = put(&mut client, "d", "v").await;
    let options = Some(DeleteOptions::new().with_prev_key());
    let response = client.delete("d", options).await.expect("delete");
    assert_eq!(response.deleted(), 1);
    assert_eq!(revision(response.header()), r1 + 1);
    let prev = response.prev_kvs();
    assert_eq!(pairs(prev), [("d", "v")]);
    assert_eq!(prev[0].mod_revision(), r1);
    assert!(get(&mut client, "d", GetOptions::new())
        .await
        .kvs()
        .is_empty());

    let recreated = put(&mut client, "d", "again").await;
    let without_prev = client.delete("d", None).await.expect("delete");
    assert_eq!(without_prev.deleted(), 1);
    assert!(
        without_prev.prev_kvs().is_empty(),
        "prev_kvs only when asked for"
    );
    assert_eq!(revision(without_prev.header()), recreated + 1);
}

#[tokio::test]
async fn delete_range_prefix_and_from_key() {
    let (_server, mut client) = setup().await;
    put_all(
        &mut client,
        &[
            ("a", "0"),
            ("b/1", "1"),
            ("b/2", "2"),
            ("b/3", "3"),
            ("c", "4"),
            ("d", "5"),
        ],
    )
    .await;
    let range = DeleteOptions::new().with_range("b/3").with_prev_key();
    let response = client
        .delete("b/1", Some(range))
        .await
        .expect("delete range");
    assert_eq!(response.deleted(), 2);
    assert_eq!(pairs(response.prev_kvs()), [("b/1", "1"), ("b/2", "2")]);

    let prefix = client
        .delete("b/", Some(DeleteOptions::new().with_prefix()))
        .await
        .expect("delete prefix");
    assert_eq!(prefix.deleted(), 1);

    let from_key = client
        .delete("c", Some(DeleteOptions::new().with_from_key()))
        .await
        .expect("delete from key");
    assert_eq!(from_key.deleted(), 2);
    let left = get(&mut client, "", GetOptions::new().with_all_keys()).await;
    assert_eq!(keys(left.kvs()), ["a"]);
}

#[tokio::test]
async fn delete_of_nothing_keeps_the_revision() {
    let (_server, mut client) = setup().await;
    let rev = put(&mut client, "x", "1").await;
    let single = client.delete("nothing", None).await.expect("delete");
    assert_eq!(single.deleted(), 0);
    assert_eq!(revision(single.header()), rev);
    let prefix = client
        .delete(
            "nothing/",
            Some(DeleteOptions::new().with_prefix().with_prev_key()),
        )
        .await
        .expect("delete prefix");
    assert_eq!(prefix.deleted(), 0);
    assert!(prefix.prev_kvs().is_empty());
    assert_eq!(revision(prefix.header()), rev);
    assert_eq!(current_revision(&mut client).await, rev);
}

// ---------------------------------------------------------------- Txn compares

#[tokio::test]
async fn txn_compare_value() {
    let (_server, mut client) = setup().await;
    put_all(&mut client, &[("k", "v1"), ("k", "v2")]).await;
    let value = |op, v: &str| Compare::value("k", op, v);
    assert_compares(
        &mut client,
        vec![
            ("= v2", value(CompareOp::Equal, "v2"), true),
            ("= v1", value(CompareOp::Equal, "v1"), false),
            ("> v1", value(CompareOp::Greater, "v1"), true),
            ("> v2", value(CompareOp::Greater, "v2"), false),
            ("< v3", value(CompareOp::Less, "v3"), true),
            ("< v2", value(CompareOp::Less, "v2"), false),
            ("!= v1", value(CompareOp::NotEqual, "v1"), true),
            ("!= v2", value(CompareOp::NotEqual, "v2"), false),
        ],
    )
    .await;
}

#[tokio::test]
async fn txn_compare_version() {
    let (_server, mut client) = setup().await;
    put_all(&mut client, &[("k", "v1"), ("k", "v2")]).await;
    let version = |op, v| Compare::version("k", op, v);
    assert_compares(
        &mut client,
        vec![
            ("= 2", version(CompareOp::Equal, 2), true),
            ("= 1", version(CompareOp::Equal, 1), false),
            ("> 1", version(CompareOp::Greater, 1), true),
            ("> 2", version(CompareOp::Greater, 2), false),
            ("< 3", version(CompareOp::Less, 3), true),
            ("< 2", version(CompareOp::Less, 2), false),
            ("!= 1", version(CompareOp::NotEqual, 1), true),
            ("!= 2", version(CompareOp::NotEqual, 2), false),
        ],
    )
    .await;
}

#[tokio::test]
async fn txn_compare_create_revision() {
    let (_server, mut client) = setup().await;
    let created = put(&mut client, "k", "v1").await;
    put(&mut client, "k", "v2").await;
    let create = |op, r| Compare::create_revision("k", op, r);
    assert_compares(
        &mut client,
        vec![
            ("= created", create(CompareOp::Equal, created), true),
            ("= created+1", create(CompareOp::Equal, created + 1), false),
            ("> created-1", create(CompareOp::Greater, created - 1), true),
            ("> created", create(CompareOp::Greater, created), false),
            ("< created+1", create(CompareOp::Less, created + 1), true),
            ("< created", create(CompareOp::Less, created), false),
            ("!= 0", create(CompareOp::NotEqual, 0), true),
            ("!= created", create(CompareOp::NotEqual, created), false),
        ],
    )
    .await;
}

#[tokio::test]
async fn txn_compare_mod_revision() {
    let (_server, mut client) = setup().await;
    put(&mut client, "k", "v1").await;
    let modified = put(&mut client, "k", "v2").await;
    put(&mut client, "other", "x").await;
    let mod_rev = |op, r| Compare::mod_revision("k", op, r);
    assert_compares(
        &mut client,
        vec![
            ("= modified", mod_rev(CompareOp::Equal, modified), true),
            (
                "= modified-1",
                mod_rev(CompareOp::Equal, modified - 1),
                false,
            ),
            (
                "> modified-1",
                mod_rev(CompareOp::Greater, modified - 1),
                true,
            ),
            ("> modified", mod_rev(CompareOp::Greater, modified), false),
            ("< modified+1", mod_rev(CompareOp::Less, modified + 1), true),
            ("< modified", mod_rev(CompareOp::Less, modified), false),
            (
                "!= modified-1",
                mod_rev(CompareOp::NotEqual, modified - 1),
                true,
            ),
            ("!= modified", mod_rev(CompareOp::NotEqual, modified), false),
        ],
    )
    .await;
}

#[tokio::test]
async fn txn_compare_lease() {
    let (_server, mut client) = setup().await;
    put(&mut client, "k", "v").await;
    let lease = |op, id| Compare::lease("k", op, id);
    assert_compares(
        &mut client,
        vec![
            ("= 0", lease(CompareOp::Equal, 0), true),
            ("= unknown", lease(CompareOp::Equal, UNKNOWN_LEASE), false),
            ("> 0", lease(CompareOp::Greater, 0), false),
            ("< 1", lease(CompareOp::Less, 1), true),
            (
                "!= unknown",
                lease(CompareOp::NotEqual, UNKNOWN_LEASE),
                true,
            ),
            ("!= 0", lease(CompareOp::NotEqual, 0), false),
        ],
    )
    .await;
}

#[tokio::test]
async fn txn_compare_on_a_range_needs_every_key() {
    let (_server, mut client) = setup().await;
    put_all(&mut client, &[("r/a", "1"), ("r/b", "2"), ("r/c", "3")]).await;
    assert_compares(
        &mut client,
        vec![
            (
                "prefix > 0",
                Compare::value("r/", CompareOp::Greater, "0").with_prefix(),
                true,
            ),
            (
                "prefix < 3",
                Compare::value("r/", CompareOp::Less, "3").with_prefix(),
                false,
            ),
            (
                "[r/a, r/c) < 3",
                Compare::value("r/a", CompareOp::Less, "3").with_range("r/c"),
                true,
            ),
            (
                "prefix version = 1",
                Compare::version("r/", CompareOp::Equal, 1).with_prefix(),
                true,
            ),
            (
                "prefix create > 0",
                Compare::create_revision("r/", CompareOp::Greater, 0).with_prefix(),
                true,
            ),
            (
                "empty range version = 0",
                Compare::version("q/", CompareOp::Equal, 0).with_prefix(),
                true,
            ),
            (
                "empty range value = ''",
                Compare::value("q/", CompareOp::Equal, "").with_prefix(),
                false,
            ),
        ],
    )
    .await;
}

#[tokio::test]
async fn txn_compare_on_a_missing_key() {
    let (_server, mut client) = setup().await;
    assert_compares(
        &mut client,
        vec![
            (
                "version = 0",
                Compare::version("nope", CompareOp::Equal, 0),
                true,
            ),
            (
                "version > 0",
                Compare::version("nope", CompareOp::Greater, 0),
                false,
            ),
            (
                "create = 0",
                Compare::create_revision("nope", CompareOp::Equal, 0),
                true,
            ),
            (
                "mod = 0",
                Compare::mod_revision("nope", CompareOp::Equal, 0),
                true,
            ),
            (
                "lease = 0",
                Compare::lease("nope", CompareOp::Equal, 0),
                true,
            ),
            (
                "value = ''",
                Compare::value("nope", CompareOp::Equal, ""),
                false,
            ),
            (
                "value != x",
                Compare::value("nope", CompareOp::NotEqual, "x"),
                false,
            ),
            (
                "value > ''",
                Compare::value("nope", CompareOp::Greater, ""),
                false,
            ),
        ],
    )
    .await;
}

// ---------------------------------------------------------------- Txn ops

#[tokio::test]
async fn txn_success_and_failure_branches() {
    let (_server, mut client) = setup().await;
    let r1 = put(&mut client, "flag", "on").await;
    let txn = |expected: &str| {
        Txn::new()
            .when([Compare::value("flag", CompareOp::Equal, expected)])
            .and_then([
                TxnOp::put("branch", "success", Some(PutOptions::new().with_prev_key())),
                TxnOp::get("flag", None),
            ])
            .or_else([
                TxnOp::put("branch", "failure", None),
                TxnOp::delete("flag", None),
            ])
    };
    let success = client.txn(txn("on")).await.expect("txn");
    assert!(success.succeeded());
    assert_eq!(revision(success.header()), r1 + 1);
    let ops = success.op_responses();
    assert_eq!(ops.len(), 2);
    match &ops[0] {
        TxnOpResponse::Put(put) => assert!(put.prev_key().is_none()),
        other => panic!("expected a put response, got {other:?}"),
    }
    assert_eq!(pairs(range_of(&ops[1]).kvs()), [("flag", "on")]);

    let failure = client.txn(txn("off")).await.expect("txn");
    assert!(!failure.succeeded());
    assert_eq!(revision(failure.header()), r1 + 2);
    let ops = failure.op_responses();
    assert!(matches!(ops[0], TxnOpResponse::Put(_)));
    match &ops[1] {
        TxnOpResponse::Delete(delete) => assert_eq!(delete.deleted(), 1),
        other => panic!("expected a delete response, got {other:?}"),
    }
    let branch = get(&mut client, "branch", GetOptions::new()).await;
    assert_eq!(pairs(branch.kvs()), [("branch", "failure")]);
    assert_eq!(branch.kvs()[0].version(), 2);
    assert!(get(&mut client, "flag", GetOptions::new())
        .await
        .kvs()
        .is_empty());
}

#[tokio::test]
async fn txn_without_writes_keeps_the_revision() {
    let (_server, mut client) = setup().await;
    let rev = put(&mut client, "k", "v").await;
    let read_only = Txn::new()
        .when([Compare::value("k", CompareOp::Equal, "v")])
        .and_then([TxnOp::get("k", None)]);
    let response = client.txn(read_only).await.expect("txn");
    assert!(response.succeeded());
    assert_eq!(revision(response.header()), rev);
    let failed_without_ops = Txn::new().when([Compare::value("k", CompareOp::Equal, "x")]);
    let response = client.txn(failed_without_ops).await.expect("txn");
    assert!(!response.succeeded());
    assert!(response.op_responses().is_empty());
    assert_eq!(revision(response.header()), rev);
    let deletes_nothing = Txn::new().and_then([TxnOp::delete("missing", None)]);
    let response = client.txn(deletes_nothing).await.expect("txn");
    assert_eq!(revision(response.header()), rev);
}

#[tokio::test]
async fn txn_writes_share_one_revision() {
    let (_server, mut client) = setup().await;
    let r1 = put(&mut client, "gone", "x").await;
    let txn = Txn::new().and_then([
        TxnOp::put("t/a", "1", None),
        TxnOp::put("t/b", "2", None),
        TxnOp::delete("gone", None),
    ]);
    let response = client.txn(txn).await.expect("txn");
    let rev = revision(response.header());
    assert_eq!(rev, r1 + 1, "one txn is one revision");
    let written = get(&mut client, "t/", GetOptions::new().with_prefix()).await;
    for kv in written.kvs() {
        assert_eq!((kv.create_revision(), kv.mod_revision()), (rev, rev));
    }
    assert_eq!(written.kvs().len(), 2);
}

#[tokio::test]
async fn txn_nested() {
    let (_server, mut client) = setup().await;
    let r1 = put(&mut client, "outer", "yes").await;
    let inner = |expected: &str| {
        Txn::new()
            .when([Compare::version("inner", CompareOp::Equal, 0)])
            .and_then([TxnOp::put("inner", expected, None)])
            .or_else([TxnOp::get("inner", None)])
    };
    let outer = Txn::new()
        .when([Compare::value("outer", CompareOp::Equal, "yes")])
        .and_then([TxnOp::put("sibling", "s", None), TxnOp::txn(inner("first"))])
        .or_else([TxnOp::put("outer-failed", "x", None)]);
    let response = client.txn(outer.clone()).await.expect("nested txn");
    assert!(response.succeeded());
    assert_eq!(revision(response.header()), r1 + 1);
    let ops = response.op_responses();
    let nested = txn_of(&ops[1]);
    assert!(nested.succeeded());
    assert!(matches!(nested.op_responses()[0], TxnOpResponse::Put(_)));
    for key in ["sibling", "inner"] {
        let response = get(&mut client, key, GetOptions::new()).await;
        assert_eq!(
            response.kvs()[0].mod_revision(),
            r1 + 1,
            "{key} written by the same txn"
        );
    }

    let again = client.txn(outer).await.expect("nested txn");
    assert!(again.succeeded());
    let ops = again.op_responses();
    let nested = txn_of(&ops[1]);
    assert!(!nested.succeeded(), "inner now exists");
    assert_eq!(
        pairs(range_of(&nested.op_responses()[0]).kvs()),
        [("inner", "first")]
    );
    assert_eq!(revision(again.header()), r1 + 2);
    assert!(get(&mut client, "outer-failed", GetOptions::new())
        .await
        .kvs()
        .is_empty());
}

#[tokio::test]
async fn txn_reads_see_earlier_writes_of_the_same_txn() {
    let (_server, mut client) = setup().await;
    put_all(&mut client, &[("k", "old"), ("doomed", "x")]).await;
    let txn = Txn::new().and_then([
        TxnOp::get("k", None),
        TxnOp::put("k", "new", None),
        TxnOp::get("k", None),
        TxnOp::delete("doomed", None),
        TxnOp::get("doomed", None),
        TxnOp::get(
            "",
            Some(GetOptions::new().with_all_keys().with_count_only()),
        ),
    ]);
    let response = client.txn(txn).await.expect("txn");
    let rev = revision(response.header());
    let ops = response.op_responses();
    assert_eq!(pairs(range_of(&ops[0]).kvs()), [("k", "old")]);
    let after_put = range_of(&ops[2]).kvs();
    assert_eq!(pairs(after_put), [("k", "new")]);
    assert_eq!(
        (after_put[0].mod_revision(), after_put[0].version()),
        (rev, 2)
    );
    assert!(range_of(&ops[4]).kvs().is_empty());
    assert_eq!(range_of(&ops[5]).count(), 1);
}

#[tokio::test]
async fn txn_operation_limit() {
    let (_server, mut client) = setup().await;
    let puts = |n: usize| -> Vec<TxnOp> {
        (0..n)
            .map(|i| TxnOp::put(format!("many/{i:03}"), "v", None))
            .collect()
    };
    let rev = revision(
        client
            .txn(Txn::new().and_then(puts(128)))
            .await
            .expect("128 ops")
            .header(),
    );
    let all = get(
        &mut client,
        "many/",
        GetOptions::new().with_prefix().with_count_only(),
    )
    .await;
    assert_eq!(all.count(), 128);
    expect_grpc_error(
        client.txn(Txn::new().and_then(puts(129))).await,
        Code::InvalidArgument,
        TOO_MANY_OPS,
    );
    expect_grpc_error(
        client.txn(Txn::new().or_else(puts(129))).await,
        Code::InvalidArgument,
        TOO_MANY_OPS,
    );
    assert_eq!(current_revision(&mut client).await, rev);
}

#[tokio::test]
async fn txn_duplicate_keys() {
    let (_server, mut client) = setup().await;
    let rev = put_all(&mut client, &[("dup/a", "1"), ("dup/b", "2")]).await;
    let two_puts = Txn::new().and_then([
        TxnOp::put("dup/a", "x", None),
        TxnOp::put("dup/a", "y", None),
    ]);
    expect_grpc_error(
        client.txn(two_puts).await,
        Code::InvalidArgument,
        DUPLICATE_KEY,
    );
    let put_in_delete_range = Txn::new().and_then([
        TxnOp::delete("dup/a", Some(DeleteOptions::new().with_range("dup/c"))),
        TxnOp::put("dup/b", "x", None),
    ]);
    expect_grpc_error(
        client.txn(put_in_delete_range).await,
        Code::InvalidArgument,
        DUPLICATE_KEY,
    );
    let put_in_deleted_prefix = Txn::new().and_then([
        TxnOp::put("dup/b", "x", None),
        TxnOp::delete("dup/", Some(DeleteOptions::new().with_prefix())),
    ]);
    expect_grpc_error(
        client.txn(put_in_deleted_prefix).await,
        Code::InvalidArgument,
        DUPLICATE_KEY,
    );
    assert_eq!(current_revision(&mut client).await, rev);
}

#[tokio::test]
async fn txn_same_key_allowed_across_branches_and_deletes() {
    let (_server, mut client) = setup().await;
    put_all(&mut client, &[("same/a", "1"), ("same/b", "2")]).await;
    let across_branches = Txn::new()
        .when([Compare::version("same/a", CompareOp::Equal, 1)])
        .and_then([TxnOp::put("same/a", "then", None)])
        .or_else([TxnOp::put("same/a", "else", None)]);
    assert!(client.txn(across_branches).await.expect("txn").succeeded());
    let overlapping_deletes = Txn::new().and_then([
        TxnOp::delete("same/", Some(DeleteOptions::new().with_prefix())),
        TxnOp::delete("same/a", None),
    ]);
    client
        .txn(overlapping_deletes)
        .await
        .expect("overlapping deletes");
    let left = get(&mut client, "same/", GetOptions::new().with_prefix()).await;
    assert!(left.kvs().is_empty());
}

// ---------------------------------------------------------------- Compact

#[tokio::test]
async fn compact_then_read_the_past() {
    let (_server, mut client) = setup().await;
    let r1 = put(&mut client, "c", "v1").await;
    let r2 = put(&mut client, "c", "v2").await;
    let r3 = put(&mut client, "c", "v3").await;
    let response = client.compact(r2, None).await.expect("compact");
    assert_eq!(revision(response.header()), r3, "compaction is not a write");

    let at = |rev| GetOptions::new().with_revision(rev);
    expect_grpc_error(
        client.get("c", Some(at(r1))).await,
        Code::OutOfRange,
        COMPACTED,
    );
    let at_compaction = get(&mut client, "c", at(r2)).await;
    assert_eq!(pairs(at_compaction.kvs()), [("c", "v2")]);
    let latest = get(&mut client, "c", GetOptions::new()).await;
    assert_eq!(pairs(latest.kvs()), [("c", "v3")]);
    assert_eq!(latest.kvs()[0].version(), 3, "compaction keeps versions");
}

#[tokio::test]
async fn compact_an_already_compacted_revision() {
    let (_server, mut client) = setup().await;
    let r1 = put(&mut client, "c", "v1").await;
    let r2 = put(&mut client, "c", "v2").await;
    client.compact(r2, None).await.expect("compact");
    expect_grpc_error(client.compact(r2, None).await, Code::OutOfRange, COMPACTED);
    expect_grpc_error(client.compact(r1, None).await, Code::OutOfRange, COMPACTED);
}

#[tokio::test]
async fn compact_physical() {
    let (_server, mut client) = setup().await;
    put(&mut client, "c", "v1").await;
    let r2 = put(&mut client, "c", "v2").await;
    let options = etcd_client::CompactionOptions::new().with_physical();
    client
        .compact(r2, Some(options))
        .await
        .expect("physical compact");
    let latest = get(&mut client, "c", GetOptions::new()).await;
    assert_eq!(pairs(latest.kvs()), [("c", "v2")]);
}

#[tokio::test]
async fn future_revisions() {
    let (_server, mut client) = setup().await;
    let rev = put(&mut client, "f", "v").await;
    expect_grpc_error(
        client.compact(rev + 1, None).await,
        Code::OutOfRange,
        FUTURE_REV,
    );
    let future = GetOptions::new().with_revision(rev + 1);
    expect_grpc_error(
        client.get("f", Some(future)).await,
        Code::OutOfRange,
        FUTURE_REV,
    );
    let current = get(&mut client, "f", GetOptions::new().with_revision(rev)).await;
    assert_eq!(pairs(current.kvs()), [("f", "v")]);
}

// ---------------------------------------------------------------- Headers

#[tokio::test]
async fn revision_increases_by_one_per_mutation() {
    let (_server, mut client) = setup().await;
    let start = current_revision(&mut client).await;
    assert_eq!(start, 1, "a new store is at revision 1");
    let mut expected = start;
    let mut mutate = |rev: i64| {
        expected += 1;
        assert_eq!(rev, expected);
    };
    mutate(put(&mut client, "h/a", "1").await);
    mutate(put(&mut client, "h/a", "1").await);
    mutate(put(&mut client, "h/b", "2").await);
    let deleted = client
        .delete("h/", Some(DeleteOptions::new().with_prefix()))
        .await;
    mutate(revision(deleted.expect("delete").header()));
    let txn = Txn::new().and_then([TxnOp::put("h/c", "3", None), TxnOp::put("h/d", "4", None)]);
    mutate(revision(client.txn(txn).await.expect("txn").header()));
    let ignore_value = Some(PutOptions::new().with_ignore_value());
    let response = client.put("h/c", "", ignore_value).await.expect("put");
    mutate(revision(response.header()));
    assert_eq!(current_revision(&mut client).await, expected);
}

#[tokio::test]
async fn headers_identify_the_member() {
    let (_server, mut client) = setup().await;
    let put = client.put("id", "v", None).await.expect("put");
    let header = put.header().expect("header").clone();
    assert_ne!(header.member_id(), 0);
    assert_ne!(header.cluster_id(), 0);
    assert!(header.raft_term() >= 1);
    let range = client.get("id", None).await.expect("range");
    let delete = client.delete("id", None).await.expect("delete");
    let txn = client.txn(Txn::new()).await.expect("txn");
    for other in [range.header(), delete.header(), txn.header()] {
        let other = other.expect("header");
        assert_eq!(
            (other.member_id(), other.cluster_id(), other.raft_term()),
            (header.member_id(), header.cluster_id(), header.raft_term())
        );
    }
    let status = client.status().await.expect("status");
    assert_eq!(status.leader(), header.member_id(), "a single member leads");
    assert_eq!(status.raft_term(), header.raft_term());
}

// ---------------------------------------------------------------- Request errors

#[tokio::test]
async fn empty_key_is_rejected() {
    let (_server, mut client) = setup().await;
    let rev = current_revision(&mut client).await;
    expect_grpc_error(
        client.put("", "v", None).await,
        Code::InvalidArgument,
        EMPTY_KEY,
    );
    expect_grpc_error(client.get("", None).await, Code::InvalidArgument, EMPTY_KEY);
    expect_grpc_error(
        client.delete("", None).await,
        Code::InvalidArgument,
        EMPTY_KEY,
    );
    let txn_put = Txn::new().and_then([TxnOp::put("", "v", None)]);
    expect_grpc_error(client.txn(txn_put).await, Code::InvalidArgument, EMPTY_KEY);
    let txn_get = Txn::new().or_else([TxnOp::get("", None)]);
    expect_grpc_error(client.txn(txn_get).await, Code::InvalidArgument, EMPTY_KEY);
    assert_eq!(current_revision(&mut client).await, rev);
}

/// A value of `len` bytes.
fn value_of_len(len: usize) -> Vec<u8> {
    vec![b'x'; len]
}

/// With etcd's default `--max-request-bytes` of 1.5 MiB: a 1 MiB put works,
/// a put over the limit gets "request is too large", and a message beyond
/// gRPC's receive limit (the request limit plus 512 KiB) is refused by gRPC
/// itself with RESOURCE_EXHAUSTED.
#[tokio::test]
async fn request_too_large_default_limit() {
    let (_server, mut client) = setup().await;
    client
        .put("big", value_of_len(1024 * 1024), None)
        .await
        .expect("1 MiB put");
    let rev = current_revision(&mut client).await;
    let over_limit = client.put("big", value_of_len(1_572_864 + 1), None).await;
    expect_grpc_error(over_limit, Code::InvalidArgument, TOO_LARGE);
    let over_grpc_limit = client
        .put("big", value_of_len(2 * 1024 * 1024 + 1), None)
        .await;
    expect_grpc_code(over_grpc_limit, Code::ResourceExhausted);
    assert_eq!(current_revision(&mut client).await, rev);
}

#[tokio::test]
async fn request_too_large_configured_limit() {
    let server = Server::start_with_args(&["--max-request-bytes", "1048576"]).await;
    let mut client = server.client().await;
    client
        .put("big", value_of_len(1_000_000), None)
        .await
        .expect("put under 1 MiB");
    let over_limit = client.put("big", value_of_len(1024 * 1024), None).await;
    expect_grpc_error(over_limit, Code::InvalidArgument, TOO_LARGE);
    let txn = Txn::new().and_then([
        TxnOp::put("big/a", value_of_len(600_000), None),
        TxnOp::put("big/b", value_of_len(600_000), None),
    ]);
    expect_grpc_error(client.txn(txn).await, Code::InvalidArgument, TOO_LARGE);
    let over_grpc_limit = client.put("big", value_of_len(1536 * 1024 + 1), None).await;
    expect_grpc_code(over_grpc_limit, Code::ResourceExhausted);
}
