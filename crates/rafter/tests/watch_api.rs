//! Acceptance tests of the etcd v3 Watch service: every create option (single
//! key, range, prefix, from-key, start revision now/past/future, filters,
//! prev_kv, progress_notify, fragment, client-chosen watch id), cancel and
//! progress requests, every response field, and etcd's answers to bad
//! requests (duplicate watch id, empty range, compacted start revision).
//!
//! Tests use the `etcd-client` crate where it can express the case, and a raw
//! tonic stream ([`common::watch::RawWatch`]) where it cannot (several
//! watches with chosen ids on one stream, raw cancel requests, the `fragment`
//! field, the created response itself). Each test starts its own
//! single-member server, so revisions are predictable. Every expectation is
//! checked against the real etcd with
//! `RAFTER_TEST_TARGET=etcd cargo test -p rafter --test watch_api`.
//!
//! Only what etcd 3.4 (the oracle installed here) and etcd 3.6 both do is
//! asserted. Where they differ, nothing is asserted:
//! - a progress request on a stream without watches: 3.4 answers (watch id
//!   -1, current revision), 3.6 sends nothing;
//! - a progress request while a watch catches up on history: 3.4 answers at
//!   once (before the history), 3.6 once every watch is synced;
//! - a negative start revision: 3.4 creates the watch, then cancels it with
//!   compact_revision -1 and header revision 0; 3.6 refuses it (created and
//!   canceled, watch id -1, "etcdserver: mvcc: required revision has been
//!   compacted");
//! - a watch from exactly the compaction revision when a key was deleted at
//!   that revision: 3.4 has dropped the delete from history, 3.5.16+/3.6
//!   keep it (the test below puts at the compaction revision).
//!
//! No test sleeps: every wait is a read with a deadline.

mod common;

use common::watch::{
    create_request, prefix_end, show_event, RawWatch, NO_WATCH_ID, RESPONSE_DEADLINE,
};
use common::{revision, Server};
use etcd_client::{
    Client, CompactionOptions, DeleteOptions, EventType, KeyValue, Txn, TxnOp, WatchFilterType,
    WatchOptions, WatchResponse, WatchStream,
};
use prost::Message;
use rafter_proto::etcdserverpb::{WatchCreateRequest, WatchResponse as RawResponse};

/// etcd's `cancel_reason` when a create request reuses a watch id that is
/// active on the stream (mvcc `ErrWatcherDuplicateID`).
const DUPLICATE_ID: &str = "mvcc: duplicate watch ID provided on the WatchStream";
/// etcd's `cancel_reason` when a create request's key is not below its range
/// end (mvcc `ErrEmptyWatcherRange`).
const EMPTY_RANGE: &str = "mvcc: watcher range is empty";
/// gRPC framing allowance etcd adds to `--max-request-bytes` for the size of
/// a watch response fragment (its `grpcOverheadBytes`, 512 KiB).
const GRPC_OVERHEAD_BYTES: usize = 512 * 1024;

/// Starts a fresh server and connects a client to it.
async fn setup() -> (Server, Client) {
    setup_with_args(&[]).await
}

async fn setup_with_args(args: &[&str]) -> (Server, Client) {
    let server = Server::start_with_args(args).await;
    let client = server.client().await;
    (server, client)
}

/// Puts `key = value` and returns the revision of the put.
async fn put(client: &mut Client, key: &str, value: &str) -> i64 {
    let response = client.put(key, value, None).await.expect("put");
    revision(response.header())
}

/// Deletes `key` and returns the revision of the delete.
async fn delete(client: &mut Client, key: &str) -> i64 {
    let response = client.delete(key, None).await.expect("delete");
    assert_eq!(
        response.deleted(),
        1,
        "delete {key}: expected one key deleted"
    );
    revision(response.header())
}

/// The store's current revision, read with a Range on a key nobody writes.
async fn current_revision(client: &mut Client) -> i64 {
    let response = client.get("zz-never-written", None).await.expect("range");
    revision(response.header())
}

/// An `etcd-client` event in the one-line form of [`show_event`].
fn show(event: &etcd_client::Event) -> String {
    let kind = match event.event_type() {
        EventType::Put => "PUT",
        EventType::Delete => "DELETE",
    };
    let kv = |kv: &KeyValue| {
        format!(
            "{}={} c{} m{} v{} l{}",
            kv.key_str().expect("UTF-8 key"),
            kv.value_str().expect("UTF-8 value"),
            kv.create_revision(),
            kv.mod_revision(),
            kv.version(),
            kv.lease()
        )
    };
    let mut line = match event.kv() {
        Some(current) => format!("{kind} {}", kv(current)),
        None => format!("{kind} <no kv>"),
    };
    if let Some(prev) = event.prev_kv() {
        line.push_str(&format!(" prev={}", kv(prev)));
    }
    line
}

/// Expected event line of a put: `PUT key=value c.. m.. v.. l0`.
fn put_line(key: &str, value: &str, create: i64, modified: i64, version: i64) -> String {
    format!("PUT {key}={value} c{create} m{modified} v{version} l0")
}

/// Expected event line of a delete: the key with the deletion's revision as
/// mod revision, everything else zero or empty.
fn delete_line(key: &str, modified: i64) -> String {
    format!("DELETE {key}= c0 m{modified} v0 l0")
}

/// The next response on an `etcd-client` stream; fails the test if none
/// arrives within [`RESPONSE_DEADLINE`].
async fn next_message(stream: &mut WatchStream) -> WatchResponse {
    match tokio::time::timeout(RESPONSE_DEADLINE, stream.message()).await {
        Err(_) => panic!("no watch response within {RESPONSE_DEADLINE:?}"),
        Ok(Err(e)) => panic!("watch stream failed: {e}"),
        Ok(Ok(None)) => panic!("watch stream ended"),
        Ok(Ok(Some(response))) => response,
    }
}

/// Reads event responses for watch `id` until `count` events arrived, checking
/// that no response is a control response or splits a revision, and returns
/// the events as lines.
async fn events(stream: &mut WatchStream, id: i64, count: usize) -> Vec<String> {
    let mut lines = Vec::new();
    let mut last_revision = 0;
    while lines.len() < count {
        let response = next_message(stream).await;
        assert!(
            !response.created() && !response.canceled() && response.watch_id() == id,
            "expected events for watch {id}, got {response:?} (after {lines:?})"
        );
        assert!(
            !response.events().is_empty(),
            "unexpected empty response {response:?} after {lines:?}"
        );
        let first = response.events()[0].kv().expect("kv").mod_revision();
        assert!(
            first > last_revision,
            "revision {first} continues in a new response after {lines:?}: a revision's \
             events must come in one response"
        );
        last_revision = response
            .events()
            .last()
            .unwrap()
            .kv()
            .unwrap()
            .mod_revision();
        lines.extend(response.events().iter().map(show));
    }
    assert_eq!(lines.len(), count, "more events than expected: {lines:?}");
    lines
}

/// Opens an `etcd-client` watch with `options`.
async fn watch(
    client: &mut Client,
    key: &str,
    options: WatchOptions,
) -> (etcd_client::Watcher, WatchStream) {
    client
        .watch(key, Some(options))
        .await
        .unwrap_or_else(|e| panic!("watch {key}: {e}"))
}

/// Reads raw responses until `count` events arrived (for watch `id`) and
/// returns their lines.
async fn raw_events(stream: &mut RawWatch, id: i64, count: usize) -> Vec<String> {
    let mut lines = Vec::new();
    while lines.len() < count {
        let response = stream.next().await;
        assert!(
            !response.created && !response.canceled && response.watch_id == id,
            "expected events for watch {id}, got {response:?} (after {lines:?})"
        );
        lines.extend(response.events.iter().map(show_event));
    }
    assert_eq!(lines.len(), count, "more events than expected: {lines:?}");
    lines
}

// ------------------------------------------------------------ key ranges

#[tokio::test]
async fn single_key_sees_its_puts_and_deletes_only() {
    let (_server, mut client) = setup().await;
    let (watcher, mut stream) = watch(&mut client, "k", WatchOptions::new()).await;
    let first = put(&mut client, "k", "v1").await;
    put(&mut client, "k2", "other").await;
    put(&mut client, "j", "other").await;
    let second = put(&mut client, "k", "v2").await;
    let deleted = delete(&mut client, "k").await;
    let recreated = put(&mut client, "k", "v3").await;
    assert_eq!(
        events(&mut stream, watcher.watch_id(), 4).await,
        [
            put_line("k", "v1", first, first, 1),
            put_line("k", "v2", first, second, 2),
            delete_line("k", deleted),
            put_line("k", "v3", recreated, recreated, 1),
        ]
    );
}

#[tokio::test]
async fn each_revision_is_one_response_with_header_revision_and_ids() {
    let (_server, mut client) = setup().await;
    let (watcher, mut stream) = watch(&mut client, "k", WatchOptions::new()).await;
    let put_response = client.put("k", "v", None).await.expect("put");
    let kv_header = put_response.header().expect("put header");
    let response = next_message(&mut stream).await;
    let header = response.header().expect("watch responses have a header");
    assert_eq!(header.revision(), kv_header.revision(), "{response:?}");
    assert_eq!(
        (header.cluster_id(), header.member_id()),
        (kv_header.cluster_id(), kv_header.member_id()),
        "the watch header names the same cluster and member as the KV header"
    );
    assert_ne!(header.cluster_id(), 0, "{response:?}");
    assert_ne!(header.member_id(), 0, "{response:?}");
    assert!(header.raft_term() >= 1, "{response:?}");
    assert_eq!(response.watch_id(), watcher.watch_id());
    assert!(!response.created() && !response.canceled(), "{response:?}");
    assert_eq!(response.compact_revision(), 0);
    assert_eq!(response.cancel_reason(), "");
    assert_eq!(
        response.events().iter().map(show).collect::<Vec<_>>(),
        [put_line(
            "k",
            "v",
            kv_header.revision(),
            kv_header.revision(),
            1
        )]
    );
}

#[tokio::test]
async fn prefix_watch() {
    let (_server, mut client) = setup().await;
    let (watcher, mut stream) = watch(&mut client, "dir/", WatchOptions::new().with_prefix()).await;
    let mut expected = Vec::new();
    for key in ["dir/a", "dira", "dir", "dir/b/c", "dir0", "dir/", "di", "e"] {
        let rev = put(&mut client, key, "x").await;
        if key.starts_with("dir/") {
            expected.push(put_line(key, "x", rev, rev, 1));
        }
    }
    assert_eq!(events(&mut stream, watcher.watch_id(), 3).await, expected);
}

#[tokio::test]
async fn range_watch_is_half_open() {
    let (_server, mut client) = setup().await;
    let (watcher, mut stream) = watch(&mut client, "b", WatchOptions::new().with_range("d")).await;
    let mut expected = Vec::new();
    for key in ["a", "b", "c", "cz", "d", "da", "e", "b\u{1}"] {
        let rev = put(&mut client, key, "x").await;
        if ("b".."d").contains(&key) {
            expected.push(put_line(key, "x", rev, rev, 1));
        }
    }
    assert_eq!(events(&mut stream, watcher.watch_id(), 4).await, expected);
}

#[tokio::test]
async fn from_key_watch_with_range_end_nul() {
    let (_server, mut client) = setup().await;
    let (watcher, mut stream) = watch(&mut client, "m", WatchOptions::new().with_from_key()).await;
    let mut expected = Vec::new();
    for key in ["a", "m", "l", "z", "mm", "zzz"] {
        let rev = put(&mut client, key, "x").await;
        if key >= "m" {
            expected.push(put_line(key, "x", rev, rev, 1));
        }
    }
    assert_eq!(events(&mut stream, watcher.watch_id(), 4).await, expected);
}

#[tokio::test]
async fn all_keys_watch() {
    let (_server, mut client) = setup().await;
    let (watcher, mut stream) = watch(&mut client, "", WatchOptions::new().with_all_keys()).await;
    let mut expected = Vec::new();
    for key in ["a", "\u{1}", "zzz", "m/n"] {
        let rev = put(&mut client, key, "x").await;
        expected.push(put_line(key, "x", rev, rev, 1));
    }
    assert_eq!(events(&mut stream, watcher.watch_id(), 4).await, expected);
}

#[tokio::test]
async fn raw_key_and_range_end_forms() {
    // The wire forms behind the options: an empty key stands for "\0" (the
    // smallest key), a range end "\0" means "every key from the key on".
    let (server, mut client) = setup().await;
    let mut stream = RawWatch::open(&server.endpoint()).await;
    let everything = stream.create_ok(create_request(b"", b"\0")).await.watch_id;
    let from_b = stream.create_ok(create_request(b"b", b"\0")).await.watch_id;
    let prefix_b = stream
        .create_ok(create_request(b"b", &prefix_end(b"b")))
        .await
        .watch_id;
    let rev_a = put(&mut client, "a", "1").await;
    let rev_c = put(&mut client, "c", "2").await;
    let rev_b1 = put(&mut client, "b1", "3").await;
    let mut expected = vec![
        (everything, put_line("a", "1", rev_a, rev_a, 1)),
        (everything, put_line("c", "2", rev_c, rev_c, 1)),
        (everything, put_line("b1", "3", rev_b1, rev_b1, 1)),
        (from_b, put_line("c", "2", rev_c, rev_c, 1)),
        (from_b, put_line("b1", "3", rev_b1, rev_b1, 1)),
        (prefix_b, put_line("b1", "3", rev_b1, rev_b1, 1)),
    ];
    let mut seen: Vec<(i64, String)> = Vec::new();
    while seen.len() < expected.len() {
        let response = stream.next().await;
        for event in &response.events {
            seen.push((response.watch_id, show_event(event)));
        }
    }
    seen.sort();
    expected.sort();
    assert_eq!(seen, expected);
}

// ------------------------------------------------------- start revision

#[tokio::test]
async fn start_revision_zero_watches_from_the_next_revision() {
    let (_server, mut client) = setup().await;
    put(&mut client, "k", "before").await;
    let (watcher, mut stream) = watch(&mut client, "k", WatchOptions::new()).await;
    let rev = put(&mut client, "k", "after").await;
    assert_eq!(
        events(&mut stream, watcher.watch_id(), 1).await,
        [put_line("k", "after", rev - 1, rev, 2)]
    );
}

#[tokio::test]
async fn past_start_revision_replays_history_then_continues_live() {
    let (_server, mut client) = setup().await;
    let r1 = put(&mut client, "k", "v1").await;
    let r2 = put(&mut client, "k", "v2").await;
    put(&mut client, "other", "x").await;
    let r4 = delete(&mut client, "k").await;
    let r5 = put(&mut client, "k", "v3").await;
    let (watcher, mut stream) = watch(
        &mut client,
        "k",
        WatchOptions::new().with_start_revision(r2),
    )
    .await;
    let replayed = events(&mut stream, watcher.watch_id(), 3).await;
    assert_eq!(
        replayed,
        [
            put_line("k", "v2", r1, r2, 2),
            delete_line("k", r4),
            put_line("k", "v3", r5, r5, 1),
        ]
    );
    let r6 = put(&mut client, "k", "v4").await;
    assert_eq!(
        events(&mut stream, watcher.watch_id(), 1).await,
        [put_line("k", "v4", r5, r6, 2)]
    );
}

#[tokio::test]
async fn replay_from_revision_one_gives_every_event() {
    let (_server, mut client) = setup().await;
    let mut expected = Vec::new();
    for i in 0..20 {
        let key = format!("h/{}", i % 4);
        let rev = put(&mut client, &key, &i.to_string()).await;
        let version = i / 4 + 1;
        let create = rev - 4 * (version - 1);
        expected.push(put_line(&key, &i.to_string(), create, rev, version));
    }
    let (watcher, mut stream) = watch(
        &mut client,
        "h/",
        WatchOptions::new().with_prefix().with_start_revision(1),
    )
    .await;
    assert_eq!(events(&mut stream, watcher.watch_id(), 20).await, expected);
}

#[tokio::test]
async fn replay_response_header_is_not_behind_its_events() {
    // etcd puts all replayed revisions into one response whose header
    // revision is the store's revision when it read them; grouping is not
    // part of the contract, but a header never names a revision older than
    // the events it carries.
    let (server, mut client) = setup().await;
    for i in 0..5 {
        put(&mut client, "k", &i.to_string()).await;
    }
    let current = current_revision(&mut client).await;
    let mut stream = RawWatch::open(&server.endpoint()).await;
    let mut request = create_request(b"k", b"");
    request.start_revision = 2;
    let created = stream.create_ok(request).await;
    let mut count = 0;
    while count < 5 {
        let response = stream.next().await;
        let header = response.header.as_ref().expect("header");
        let last = response.events.last().expect("events").kv.as_ref().unwrap();
        assert!(
            header.revision >= last.mod_revision && header.revision <= current,
            "header revision {} for events up to {} (current {current})",
            header.revision,
            last.mod_revision
        );
        assert_eq!(response.watch_id, created.watch_id);
        count += response.events.len();
    }
    assert_eq!(count, 5);
}

#[tokio::test]
async fn future_start_revision_waits_for_that_revision() {
    let (_server, mut client) = setup().await;
    let now = current_revision(&mut client).await;
    let (watcher, mut stream) = watch(
        &mut client,
        "k",
        WatchOptions::new().with_start_revision(now + 2),
    )
    .await;
    let skipped = put(&mut client, "k", "too early").await;
    assert_eq!(skipped, now + 1);
    let seen = put(&mut client, "k", "in time").await;
    assert_eq!(
        events(&mut stream, watcher.watch_id(), 1).await,
        [put_line("k", "in time", skipped, seen, 2)]
    );
}

// ------------------------------------------------ filters and prev_kv

#[tokio::test]
async fn noput_and_nodelete_filters() {
    let (_server, mut client) = setup().await;
    let (no_put, mut no_put_stream) = watch(
        &mut client,
        "k",
        WatchOptions::new().with_filters([WatchFilterType::NoPut]),
    )
    .await;
    let (no_delete, mut no_delete_stream) = watch(
        &mut client,
        "k",
        WatchOptions::new().with_filters([WatchFilterType::NoDelete]),
    )
    .await;
    let r1 = put(&mut client, "k", "v1").await;
    let r2 = delete(&mut client, "k").await;
    let r3 = put(&mut client, "k", "v2").await;
    let r4 = delete(&mut client, "k").await;
    assert_eq!(
        events(&mut no_put_stream, no_put.watch_id(), 2).await,
        [delete_line("k", r2), delete_line("k", r4)]
    );
    assert_eq!(
        events(&mut no_delete_stream, no_delete.watch_id(), 2).await,
        [
            put_line("k", "v1", r1, r1, 1),
            put_line("k", "v2", r3, r3, 1)
        ]
    );
}

#[tokio::test]
async fn filtered_revisions_send_nothing() {
    // A revision whose every event is filtered out produces no response at
    // all (not an empty one): the next response is the next kept event.
    let (_server, mut client) = setup().await;
    put(&mut client, "k", "v0").await;
    let (watcher, mut stream) = watch(
        &mut client,
        "k",
        WatchOptions::new().with_filters([WatchFilterType::NoPut]),
    )
    .await;
    for i in 0..5 {
        put(&mut client, "k", &i.to_string()).await;
    }
    let deleted = delete(&mut client, "k").await;
    let response = next_message(&mut stream).await;
    assert_eq!(response.watch_id(), watcher.watch_id());
    assert_eq!(
        response.events().iter().map(show).collect::<Vec<_>>(),
        [delete_line("k", deleted)]
    );
}

#[tokio::test]
async fn prev_kv_on_puts_and_deletes() {
    let (_server, mut client) = setup().await;
    let (with, mut with_stream) =
        watch(&mut client, "k", WatchOptions::new().with_prev_key()).await;
    let (without, mut without_stream) = watch(&mut client, "k", WatchOptions::new()).await;
    let r1 = put(&mut client, "k", "v1").await;
    let r2 = put(&mut client, "k", "v2").await;
    let r3 = delete(&mut client, "k").await;
    let r4 = put(&mut client, "k", "v3").await;
    assert_eq!(
        events(&mut with_stream, with.watch_id(), 4).await,
        [
            // A created key has no previous key-value.
            put_line("k", "v1", r1, r1, 1),
            format!(
                "{} prev=k=v1 c{r1} m{r1} v1 l0",
                put_line("k", "v2", r1, r2, 2)
            ),
            format!("{} prev=k=v2 c{r1} m{r2} v2 l0", delete_line("k", r3)),
            // Re-created after a delete: no previous key-value either.
            put_line("k", "v3", r4, r4, 1),
        ]
    );
    assert_eq!(
        events(&mut without_stream, without.watch_id(), 4).await,
        [
            put_line("k", "v1", r1, r1, 1),
            put_line("k", "v2", r1, r2, 2),
            delete_line("k", r3),
            put_line("k", "v3", r4, r4, 1),
        ]
    );
}

#[tokio::test]
async fn prev_kv_in_history_replay() {
    let (_server, mut client) = setup().await;
    let r1 = put(&mut client, "k", "v1").await;
    let r2 = put(&mut client, "k", "v2").await;
    let r3 = delete(&mut client, "k").await;
    let (watcher, mut stream) = watch(
        &mut client,
        "k",
        WatchOptions::new().with_prev_key().with_start_revision(r1),
    )
    .await;
    assert_eq!(
        events(&mut stream, watcher.watch_id(), 3).await,
        [
            put_line("k", "v1", r1, r1, 1),
            format!(
                "{} prev=k=v1 c{r1} m{r1} v1 l0",
                put_line("k", "v2", r1, r2, 2)
            ),
            format!("{} prev=k=v2 c{r1} m{r2} v2 l0", delete_line("k", r3)),
        ]
    );
}

// ------------------------------------------------- atomicity and order

#[tokio::test]
async fn txn_events_arrive_in_one_response_in_op_order() {
    let (_server, mut client) = setup().await;
    let old = put(&mut client, "t/c", "old").await;
    let (watcher, mut stream) = watch(&mut client, "t/", WatchOptions::new().with_prefix()).await;
    let txn = Txn::new().and_then([
        TxnOp::put("t/b", "1", None),
        TxnOp::put("t/a", "2", None),
        TxnOp::delete("t/c", None),
        TxnOp::put("u", "not watched", None),
        TxnOp::get("t/a", None),
    ]);
    let response = client.txn(txn).await.expect("txn");
    let rev = revision(response.header());
    let message = next_message(&mut stream).await;
    assert_eq!(message.watch_id(), watcher.watch_id());
    assert_eq!(revision(message.header()), rev);
    assert_eq!(
        message.events().iter().map(show).collect::<Vec<_>>(),
        [
            put_line("t/b", "1", rev, rev, 1),
            put_line("t/a", "2", rev, rev, 1),
            delete_line("t/c", rev),
        ],
        "the txn's events, in the order of its operations, in one response (t/c was put at {old})"
    );
}

#[tokio::test]
async fn delete_range_events_arrive_in_one_response_in_key_order() {
    let (_server, mut client) = setup().await;
    for key in ["p/c", "p/a", "p/b", "q"] {
        put(&mut client, key, "x").await;
    }
    let (watcher, mut stream) = watch(
        &mut client,
        "p/",
        WatchOptions::new().with_prefix().with_prev_key(),
    )
    .await;
    let response = client
        .delete("p/", Some(DeleteOptions::new().with_prefix()))
        .await
        .expect("delete range");
    assert_eq!(response.deleted(), 3);
    let rev = revision(response.header());
    let message = next_message(&mut stream).await;
    assert_eq!(message.watch_id(), watcher.watch_id());
    assert_eq!(revision(message.header()), rev);
    assert_eq!(
        message.events().iter().map(show).collect::<Vec<_>>(),
        [
            format!("{} prev=p/a=x c3 m3 v1 l0", delete_line("p/a", rev)),
            format!("{} prev=p/b=x c4 m4 v1 l0", delete_line("p/b", rev)),
            format!("{} prev=p/c=x c2 m2 v1 l0", delete_line("p/c", rev)),
        ]
    );
}

#[tokio::test]
async fn many_writes_arrive_in_revision_order_without_gaps() {
    let (_server, mut client) = setup().await;
    let (watcher, mut stream) = watch(&mut client, "o/", WatchOptions::new().with_prefix()).await;
    let mut expected = Vec::new();
    for i in 0..100 {
        let key = format!("o/{}", i % 7);
        if i % 10 == 9 {
            let response = client
                .txn(Txn::new().and_then([
                    TxnOp::put(key.as_str(), i.to_string(), None),
                    TxnOp::put("o/txn", i.to_string(), None),
                ]))
                .await
                .expect("txn");
            expected.push((revision(response.header()), key));
            expected.push((revision(response.header()), "o/txn".to_string()));
        } else {
            let rev = put(&mut client, &key, &i.to_string()).await;
            expected.push((rev, key));
        }
    }
    let lines = events(&mut stream, watcher.watch_id(), expected.len()).await;
    let got: Vec<(i64, String)> = lines
        .iter()
        .map(|line| {
            let key = line.split(' ').nth(1).unwrap().split('=').next().unwrap();
            let modified = line.split(" m").nth(1).unwrap().split(' ').next().unwrap();
            (modified.parse().unwrap(), key.to_string())
        })
        .collect();
    assert_eq!(got, expected);
}

// ------------------------------------------------ created and canceled

#[tokio::test]
async fn created_response_comes_first_with_current_revision() {
    let (server, mut client) = setup().await;
    let put_response = client.put("k", "v1", None).await.expect("put");
    let kv_header = put_response.header().expect("header").clone();
    let current = put(&mut client, "k", "v2").await;
    let mut stream = RawWatch::open(&server.endpoint()).await;
    let mut request = create_request(b"k", b"");
    request.start_revision = 1;
    stream.create(request);
    let created = stream.next().await;
    let expected_created = RawResponse {
        header: created.header,
        watch_id: 0,
        created: true,
        canceled: false,
        compact_revision: 0,
        cancel_reason: String::new(),
        fragment: false,
        events: vec![],
    };
    assert_eq!(
        created, expected_created,
        "the first response is the created one, with the stream's first watch id (0)"
    );
    let header = created.header.expect("created response has a header");
    assert_eq!(
        header.revision, current,
        "created header revision is the current revision"
    );
    assert_eq!(
        (header.cluster_id, header.member_id),
        (kv_header.cluster_id(), kv_header.member_id())
    );
    assert_ne!(header.cluster_id, 0);
    assert_ne!(header.member_id, 0);
    assert!(header.raft_term >= 1, "raft_term {}", header.raft_term);
    assert_eq!(
        raw_events(&mut stream, 0, 2).await,
        [
            put_line("k", "v1", current - 1, current - 1, 1),
            put_line("k", "v2", current - 1, current, 2),
        ]
    );
}

#[tokio::test]
async fn auto_and_client_chosen_watch_ids_on_one_stream() {
    // Watch id 0 in a create request means "choose one": etcd takes the
    // smallest free id counting up from the last one it chose.
    let (server, _client) = setup().await;
    let mut stream = RawWatch::open(&server.endpoint()).await;
    let with_id = |id| WatchCreateRequest {
        watch_id: id,
        ..create_request(b"k", b"")
    };
    let mut ids = Vec::new();
    for request_id in [1, 0, 0, 100, 0] {
        ids.push(stream.create_ok(with_id(request_id)).await.watch_id);
    }
    assert_eq!(ids, [1, 0, 2, 100, 3]);
}

#[tokio::test]
async fn many_watches_on_one_stream_get_their_own_events() {
    let (server, mut client) = setup().await;
    let mut stream = RawWatch::open(&server.endpoint()).await;
    let create = |id: i64, key: &[u8], end: &[u8]| WatchCreateRequest {
        watch_id: id,
        ..create_request(key, end)
    };
    let a = stream.create_ok(create(10, b"a", b"")).await.watch_id;
    let a_again = stream.create_ok(create(11, b"a", b"")).await.watch_id;
    let prefix = stream
        .create_ok(create(12, b"p/", &prefix_end(b"p/")))
        .await
        .watch_id;
    let range = stream.create_ok(create(13, b"b", b"p0")).await.watch_id;
    let mut prev = create(14, b"p/x", b"");
    prev.prev_kv = true;
    let prev_id = stream.create_ok(prev).await.watch_id;
    assert_eq!((a, a_again, prefix, range, prev_id), (10, 11, 12, 13, 14));

    let ra = put(&mut client, "a", "1").await;
    let rpx = put(&mut client, "p/x", "2").await;
    put(&mut client, "z", "3").await; // watched by none
    let rpx2 = put(&mut client, "p/x", "4").await;
    let mut expected = vec![
        (10, put_line("a", "1", ra, ra, 1)),
        (11, put_line("a", "1", ra, ra, 1)),
        (12, put_line("p/x", "2", rpx, rpx, 1)),
        (13, put_line("p/x", "2", rpx, rpx, 1)),
        (14, put_line("p/x", "2", rpx, rpx, 1)),
        (12, put_line("p/x", "4", rpx, rpx2, 2)),
        (13, put_line("p/x", "4", rpx, rpx2, 2)),
        (
            14,
            format!(
                "{} prev=p/x=2 c{rpx} m{rpx} v1 l0",
                put_line("p/x", "4", rpx, rpx2, 2)
            ),
        ),
    ];
    let mut seen = Vec::new();
    while seen.len() < expected.len() {
        let response = stream.next().await;
        assert!(!response.created && !response.canceled, "{response:?}");
        assert!(!response.events.is_empty(), "{response:?}");
        for event in &response.events {
            seen.push((response.watch_id, show_event(event)));
        }
    }
    // Per watch, events come in revision order; across watches the
    // interleaving is free.
    for id in 10..=14 {
        let of = |list: &[(i64, String)]| {
            list.iter()
                .filter(|(w, _)| *w == id)
                .map(|(_, e)| e.clone())
                .collect::<Vec<_>>()
        };
        assert_eq!(of(&seen), of(&expected), "events of watch {id}");
    }
    seen.sort();
    expected.sort();
    assert_eq!(seen, expected);
}

#[tokio::test]
async fn duplicate_watch_id_is_refused_and_the_first_watch_keeps_working() {
    let (server, mut client) = setup().await;
    let current = current_revision(&mut client).await;
    let mut stream = RawWatch::open(&server.endpoint()).await;
    let with_id = |key: &[u8]| WatchCreateRequest {
        watch_id: 7,
        ..create_request(key, b"")
    };
    assert_eq!(stream.create_ok(with_id(b"a")).await.watch_id, 7);
    stream.create(with_id(b"b"));
    let refused = stream.next().await;
    let header = refused.header.expect("refusal has a header");
    assert_eq!(header.revision, current);
    assert_eq!(
        RawResponse {
            header: None,
            ..refused
        },
        RawResponse {
            header: None,
            watch_id: NO_WATCH_ID,
            created: true,
            canceled: true,
            compact_revision: 0,
            cancel_reason: DUPLICATE_ID.to_string(),
            fragment: false,
            events: vec![],
        }
    );
    put(&mut client, "b", "not watched").await;
    let rb = put(&mut client, "a", "watched").await;
    assert_eq!(
        raw_events(&mut stream, 7, 1).await,
        [put_line("a", "watched", rb, rb, 1)]
    );
}

#[tokio::test]
async fn empty_range_is_refused() {
    let (server, mut client) = setup().await;
    let current = current_revision(&mut client).await;
    let mut stream = RawWatch::open(&server.endpoint()).await;
    for (key, end) in [(&b"b"[..], &b"a"[..]), (b"b", b"b"), (b"b\x01", b"b")] {
        stream.create(create_request(key, end));
        let refused = stream.next().await;
        let header = refused.header.expect("refusal has a header");
        assert_eq!(header.revision, current);
        assert_eq!(
            RawResponse {
                header: None,
                ..refused
            },
            RawResponse {
                header: None,
                watch_id: NO_WATCH_ID,
                created: true,
                canceled: true,
                compact_revision: 0,
                cancel_reason: EMPTY_RANGE.to_string(),
                fragment: false,
                events: vec![],
            },
            "key {key:?} range_end {end:?}"
        );
    }
    // Refusals use up no watch id and leave the stream usable.
    let created = stream.create_ok(create_request(b"a", b"c")).await;
    assert_eq!(created.watch_id, 0);
    let rev = put(&mut client, "b", "x").await;
    assert_eq!(
        raw_events(&mut stream, 0, 1).await,
        [put_line("b", "x", rev, rev, 1)]
    );
}

#[tokio::test]
async fn cancel_request_is_answered_and_stops_events() {
    let (server, mut client) = setup().await;
    let mut stream = RawWatch::open(&server.endpoint()).await;
    let a = stream.create_ok(create_request(b"a", b"")).await.watch_id;
    let b = stream.create_ok(create_request(b"b", b"")).await.watch_id;
    let current = put(&mut client, "c", "x").await;
    stream.cancel(a);
    let canceled = stream.next().await;
    let header = canceled.header.expect("cancel response has a header");
    assert_eq!(header.revision, current);
    assert_ne!(header.member_id, 0);
    assert_eq!(
        RawResponse {
            header: None,
            ..canceled
        },
        RawResponse {
            header: None,
            watch_id: a,
            created: false,
            canceled: true,
            compact_revision: 0,
            cancel_reason: String::new(),
            fragment: false,
            events: vec![],
        }
    );
    put(&mut client, "a", "after cancel").await;
    let rb = put(&mut client, "b", "x").await;
    assert_eq!(
        raw_events(&mut stream, b, 1).await,
        [put_line("b", "x", rb, rb, 1)],
        "the canceled watch gets no more events"
    );
}

#[tokio::test]
async fn cancel_with_etcd_client() {
    let (_server, mut client) = setup().await;
    let (mut watcher, mut stream) = watch(&mut client, "a", WatchOptions::new()).await;
    let id = watcher.watch_id();
    watcher.cancel().await.expect("send cancel");
    let response = next_message(&mut stream).await;
    assert!(response.canceled() && !response.created(), "{response:?}");
    assert_eq!(response.watch_id(), id);
    assert!(response.events().is_empty());
}

#[tokio::test]
async fn cancel_of_an_unknown_watch_is_ignored() {
    // etcd sends nothing back for a cancel of an id that is not active; the
    // next response on the stream answers the next request.
    let (server, _client) = setup().await;
    let mut stream = RawWatch::open(&server.endpoint()).await;
    stream.cancel(42);
    let created = stream.create_ok(create_request(b"a", b"")).await;
    assert_eq!(created.watch_id, 0);
    stream.cancel(0);
    let canceled = stream.next().await;
    assert!(canceled.canceled && canceled.watch_id == 0, "{canceled:?}");
    // A second cancel of the same id is unknown by now.
    stream.cancel(0);
    let created = stream.create_ok(create_request(b"a", b"")).await;
    assert_eq!(created.watch_id, 1);
}

#[tokio::test]
async fn watch_id_of_a_canceled_watch_can_be_chosen_again() {
    let (server, mut client) = setup().await;
    let mut stream = RawWatch::open(&server.endpoint()).await;
    let with_id = |key: &[u8]| WatchCreateRequest {
        watch_id: 5,
        ..create_request(key, b"")
    };
    stream.create_ok(with_id(b"a")).await;
    stream.cancel(5);
    assert!(stream.next().await.canceled);
    assert_eq!(stream.create_ok(with_id(b"b")).await.watch_id, 5);
    put(&mut client, "a", "x").await;
    let rb = put(&mut client, "b", "y").await;
    assert_eq!(
        raw_events(&mut stream, 5, 1).await,
        [put_line("b", "y", rb, rb, 1)]
    );
}

// ------------------------------------------------------------ progress

#[tokio::test]
async fn progress_request_reports_the_current_revision() {
    // Both etcd 3.4 and 3.6 answer at once when every watch on the stream is
    // synced (3.4 answers at once even when one is not; 3.6 then waits; and
    // 3.6 sends nothing on a stream without watches), so the test asks only
    // with one synced watch.
    let (_server, mut client) = setup().await;
    let (mut watcher, mut stream) = watch(&mut client, "k", WatchOptions::new()).await;
    put(&mut client, "other", "1").await;
    let current = put(&mut client, "other", "2").await;
    watcher
        .request_progress()
        .await
        .expect("send progress request");
    let response = next_message(&mut stream).await;
    assert_eq!(
        response.watch_id(),
        NO_WATCH_ID,
        "a progress response belongs to no watch: {response:?}"
    );
    assert!(!response.created() && !response.canceled(), "{response:?}");
    assert!(response.events().is_empty(), "{response:?}");
    assert_eq!(revision(response.header()), current);
    assert_ne!(response.header().unwrap().member_id(), 0);
}

#[tokio::test]
async fn progress_request_after_events() {
    let (server, mut client) = setup().await;
    let mut stream = RawWatch::open(&server.endpoint()).await;
    let id = stream.create_ok(create_request(b"k", b"")).await.watch_id;
    let rev = put(&mut client, "k", "v").await;
    assert_eq!(
        raw_events(&mut stream, id, 1).await,
        [put_line("k", "v", rev, rev, 1)]
    );
    let current = put(&mut client, "j", "v").await;
    stream.request_progress();
    let progress = stream.next().await;
    assert_eq!(
        (
            progress.watch_id,
            progress.created,
            progress.canceled,
            progress.events.len()
        ),
        (NO_WATCH_ID, false, false, 0),
        "{progress:?}"
    );
    assert_eq!(progress.header.expect("header").revision, current);
}

#[tokio::test]
async fn progress_notify_is_sent_periodically_to_watches_that_asked() {
    let (server, mut client) =
        setup_with_args(&["--experimental-watch-progress-notify-interval", "500ms"]).await;
    let mut stream = RawWatch::open(&server.endpoint()).await;
    let mut notified = create_request(b"a", b"");
    notified.progress_notify = true;
    let notified = stream.create_ok(notified).await.watch_id;
    let silent = stream.create_ok(create_request(b"b", b"")).await.watch_id;
    assert_ne!(notified, silent);
    let current = put(&mut client, "c", "unwatched").await;
    for _ in 0..2 {
        let response = stream.next().await;
        assert_eq!(
            response.watch_id, notified,
            "only the watch with progress_notify gets progress notifications: {response:?}"
        );
        assert!(
            !response.created && !response.canceled && response.events.is_empty(),
            "{response:?}"
        );
        assert_eq!(response.header.expect("header").revision, current);
    }
    // Events still arrive as usual in between.
    let rev = put(&mut client, "a", "x").await;
    loop {
        let response = stream.next().await;
        assert_eq!(response.watch_id, notified, "{response:?}");
        if !response.events.is_empty() {
            assert_eq!(
                response.events.iter().map(show_event).collect::<Vec<_>>(),
                [put_line("a", "x", rev, rev, 1)]
            );
            break;
        }
    }
}

// ------------------------------------------------------------ compaction

#[tokio::test]
async fn watch_below_the_compaction_revision_is_canceled() {
    let (server, mut client) = setup().await;
    let mut revs = Vec::new();
    for i in 0..5 {
        revs.push(put(&mut client, "k", &i.to_string()).await);
    }
    let compacted = revs[2];
    client
        .compact(compacted, Some(CompactionOptions::new().with_physical()))
        .await
        .expect("compact");
    let mut stream = RawWatch::open(&server.endpoint()).await;
    let mut request = create_request(b"k", b"");
    request.start_revision = compacted - 1;
    let created = stream.create_ok(request).await;
    let id = created.watch_id;
    let canceled = stream.next().await;
    assert_eq!(
        RawResponse {
            header: None,
            ..canceled.clone()
        },
        RawResponse {
            header: None,
            watch_id: id,
            created: false,
            canceled: true,
            compact_revision: compacted,
            cancel_reason: String::new(),
            fragment: false,
            events: vec![],
        },
        "a watch that starts below the compaction revision is canceled with compact_revision \
         set: {canceled:?}"
    );
    // etcd (3.4 and 3.6) sends this response with header revision 0.
    let header = canceled.header.expect("header");
    assert_eq!(header.revision, 0, "{header:?}");
    assert_ne!(header.member_id, 0);

    // The canceled watch gets nothing more; the stream stays usable, and
    // watching from the compaction revision itself works.
    let mut request = create_request(b"k", b"");
    request.start_revision = compacted;
    let from_compacted = stream.create_ok(request).await.watch_id;
    assert_eq!(
        raw_events(&mut stream, from_compacted, 3).await,
        [
            put_line("k", "2", revs[0], revs[2], 3),
            put_line("k", "3", revs[0], revs[3], 4),
            put_line("k", "4", revs[0], revs[4], 5),
        ]
    );
}

#[tokio::test]
async fn compaction_with_etcd_client_shows_compact_revision() {
    let (_server, mut client) = setup().await;
    for i in 0..4 {
        put(&mut client, "k", &i.to_string()).await;
    }
    let compacted = current_revision(&mut client).await;
    client.compact(compacted, None).await.expect("compact");
    let (watcher, mut stream) =
        watch(&mut client, "k", WatchOptions::new().with_start_revision(2)).await;
    let response = next_message(&mut stream).await;
    assert!(response.canceled(), "{response:?}");
    assert_eq!(response.watch_id(), watcher.watch_id());
    assert_eq!(response.compact_revision(), compacted);
    assert!(response.events().is_empty());
}

// ------------------------------------------------------------ fragment

/// A txn that puts `count` keys `f/NN` with `size`-byte values made of `fill`.
fn big_txn(count: usize, size: usize, fill: u8) -> Txn {
    let value = vec![fill; size];
    Txn::new().and_then(
        (0..count)
            .map(|i| TxnOp::put(format!("f/{i:02}"), value.clone(), None))
            .collect::<Vec<_>>(),
    )
}

/// Reads responses of watch `id` until `count` events arrived; returns the
/// messages as they came.
async fn raw_messages(stream: &mut RawWatch, id: i64, count: usize) -> Vec<RawResponse> {
    let mut messages = Vec::new();
    let mut events = 0;
    while events < count {
        let response = stream.next().await;
        assert_eq!(response.watch_id, id, "{response:?}");
        assert!(!response.created && !response.canceled, "{response:?}");
        events += response.events.len();
        messages.push(response);
    }
    assert_eq!(events, count, "more events than expected");
    messages
}

#[tokio::test]
async fn fragment_splits_large_responses_and_they_reassemble() {
    // With fragment set, a response larger than --max-request-bytes plus
    // etcd's 512 KiB gRPC allowance is sent as several messages: every one
    // but the last has fragment=true, each stays below the limit (unless it
    // holds a single event), and together they hold the response's events.
    const MAX_REQUEST_BYTES: usize = 1024 * 1024;
    const KEYS: usize = 16;
    const VALUE: usize = 60_000;
    let limit = MAX_REQUEST_BYTES + GRPC_OVERHEAD_BYTES;
    let max_request = MAX_REQUEST_BYTES.to_string();
    let (server, mut client) =
        setup_with_args(&["--max-request-bytes", max_request.as_str()]).await;
    let first = client.txn(big_txn(KEYS, VALUE, b'a')).await.expect("txn");
    let first = revision(first.header());

    let mut fragmented = RawWatch::open(&server.endpoint()).await;
    let mut request = create_request(b"f/", &prefix_end(b"f/"));
    request.prev_kv = true;
    request.fragment = true;
    let fragmented_id = fragmented.create_ok(request.clone()).await.watch_id;
    let mut whole = RawWatch::open(&server.endpoint()).await;
    request.fragment = false;
    let whole_id = whole.create_ok(request).await.watch_id;

    // One revision whose events with their prev_kv (2 x 16 x 60 kB) exceed
    // the limit: it cannot be sent in one message below the limit.
    let second = client.txn(big_txn(KEYS, VALUE, b'b')).await.expect("txn");
    let second = revision(second.header());
    assert_eq!(second, first + 1);

    let messages = raw_messages(&mut fragmented, fragmented_id, KEYS).await;
    assert!(
        messages.len() >= 2,
        "a {}-byte revision must be fragmented below {limit} bytes: got {} message(s)",
        2 * KEYS * VALUE,
        messages.len()
    );
    let sizes: Vec<usize> = messages.iter().map(|m| m.encoded_len()).collect();
    println!("fragments of one revision: {sizes:?} bytes, limit {limit}");
    for (index, message) in messages.iter().enumerate() {
        let last = index + 1 == messages.len();
        assert_eq!(
            message.fragment,
            !last,
            "fragment flag of message {index} of {} (sizes {sizes:?})",
            messages.len()
        );
        assert!(
            sizes[index] < limit || message.events.len() == 1,
            "message {index} is {} bytes with {} events, limit {limit}",
            sizes[index],
            message.events.len()
        );
        assert_eq!(
            message.header.as_ref().map(|h| h.revision),
            Some(second),
            "every fragment carries the revision's header"
        );
    }
    let events: Vec<_> = messages.iter().flat_map(|m| m.events.iter()).collect();
    for (i, event) in events.iter().enumerate() {
        let kv = event.kv.as_ref().expect("kv");
        let prev = event.prev_kv.as_ref().expect("prev_kv");
        assert_eq!(
            kv.key,
            format!("f/{i:02}").into_bytes(),
            "event {i} in order"
        );
        assert_eq!((kv.mod_revision, kv.version), (second, 2));
        assert_eq!(kv.value, vec![b'b'; VALUE]);
        assert_eq!((prev.mod_revision, prev.value.len()), (first, VALUE));
        assert_eq!(prev.value[0], b'a');
    }

    // Without fragment, the same revision comes as one message, however large.
    let messages = raw_messages(&mut whole, whole_id, KEYS).await;
    assert_eq!(messages.len(), 1, "sizes {:?}", {
        messages.iter().map(|m| m.encoded_len()).collect::<Vec<_>>()
    });
    assert!(!messages[0].fragment);
    assert!(messages[0].encoded_len() >= limit);
}

#[tokio::test]
async fn fragment_of_history_replay_reassembles() {
    const MAX_REQUEST_BYTES: usize = 1024 * 1024;
    const VALUE: usize = 60_000;
    let limit = MAX_REQUEST_BYTES + GRPC_OVERHEAD_BYTES;
    let max_request = MAX_REQUEST_BYTES.to_string();
    let (server, mut client) =
        setup_with_args(&["--max-request-bytes", max_request.as_str()]).await;
    let mut revs = Vec::new();
    for fill in [b'a', b'b', b'c'] {
        let response = client.txn(big_txn(16, VALUE, fill)).await.expect("txn");
        revs.push(revision(response.header()));
    }
    let mut stream = RawWatch::open(&server.endpoint()).await;
    let mut request = create_request(b"f/", &prefix_end(b"f/"));
    request.start_revision = revs[0];
    request.prev_kv = true;
    request.fragment = true;
    let id = stream.create_ok(request).await.watch_id;
    let messages = raw_messages(&mut stream, id, 48).await;
    println!(
        "replay messages: {:?}",
        messages
            .iter()
            .map(|m| (m.encoded_len(), m.events.len(), m.fragment))
            .collect::<Vec<_>>()
    );
    // Reassemble: a message with fragment=true continues in the next one.
    let mut responses: Vec<Vec<_>> = vec![vec![]];
    for (index, message) in messages.iter().enumerate() {
        assert!(
            message.encoded_len() < limit || message.events.len() == 1,
            "message {index}: {} bytes",
            message.encoded_len()
        );
        responses.last_mut().unwrap().extend(message.events.clone());
        if !message.fragment {
            responses.push(vec![]);
        }
    }
    assert!(
        responses.pop().unwrap().is_empty(),
        "the last message has fragment=false"
    );
    let mut all = Vec::new();
    for response in &responses {
        let revisions: Vec<i64> = response
            .iter()
            .map(|e| e.kv.as_ref().unwrap().mod_revision)
            .collect();
        assert!(revisions.windows(2).all(|w| w[0] <= w[1]), "{revisions:?}");
        all.extend(response.iter().cloned());
    }
    let seen: Vec<(i64, String, usize)> = all
        .iter()
        .map(|e| {
            let kv = e.kv.as_ref().unwrap();
            (
                kv.mod_revision,
                String::from_utf8_lossy(&kv.key).into_owned(),
                e.prev_kv.as_ref().map_or(0, |p| p.value.len()),
            )
        })
        .collect();
    let expected: Vec<(i64, String, usize)> = revs
        .iter()
        .enumerate()
        .flat_map(|(n, &rev)| {
            (0..16).map(move |i| (rev, format!("f/{i:02}"), if n == 0 { 0 } else { VALUE }))
        })
        .collect();
    assert_eq!(seen, expected);
    // No revision is split between two reassembled responses.
    let mut last = 0;
    for response in &responses {
        let first = response[0].kv.as_ref().unwrap().mod_revision;
        assert!(first > last, "revision {first} split across responses");
        last = response.last().unwrap().kv.as_ref().unwrap().mod_revision;
    }
}

// ------------------------------------------------------------ streams

#[tokio::test]
async fn watches_on_separate_streams_are_independent() {
    let (server, mut client) = setup().await;
    let mut one = RawWatch::open(&server.endpoint()).await;
    let mut two = RawWatch::open(&server.endpoint()).await;
    // Each stream numbers its watches from 0.
    assert_eq!(one.create_ok(create_request(b"k", b"")).await.watch_id, 0);
    assert_eq!(two.create_ok(create_request(b"k", b"")).await.watch_id, 0);
    one.cancel(0);
    assert!(one.next().await.canceled);
    let rev = put(&mut client, "k", "v").await;
    assert_eq!(
        raw_events(&mut two, 0, 1).await,
        [put_line("k", "v", rev, rev, 1)],
        "canceling a watch on one stream leaves the other stream's watch alone"
    );
    // The next response on the first stream is for its new watch, not the
    // canceled one.
    let new = one.create_ok(create_request(b"k2", b"")).await.watch_id;
    assert_eq!(new, 1);
    let rev2 = put(&mut client, "k2", "w").await;
    assert_eq!(
        raw_events(&mut one, new, 1).await,
        [put_line("k2", "w", rev2, rev2, 1)],
        "the canceled watch got an event"
    );
}

#[tokio::test]
async fn etcd_client_adds_a_watch_to_its_stream() {
    let (_server, mut client) = setup().await;
    let (mut watcher, mut stream) = watch(&mut client, "a", WatchOptions::new()).await;
    let first = watcher.watch_id();
    watcher
        .watch("b", Some(WatchOptions::new().with_prev_key()))
        .await
        .expect("send a second create request");
    let created = next_message(&mut stream).await;
    assert!(
        created.created() && !created.canceled(),
        "the second watch's created response comes on the same stream: {created:?}"
    );
    let second = created.watch_id();
    assert_ne!(second, first);
    let ra = put(&mut client, "a", "1").await;
    let rb = put(&mut client, "b", "2").await;
    assert_eq!(
        events(&mut stream, first, 1).await,
        [put_line("a", "1", ra, ra, 1)]
    );
    assert_eq!(
        events(&mut stream, second, 1).await,
        [put_line("b", "2", rb, rb, 1)]
    );
}

#[tokio::test]
async fn many_streams_each_get_every_event() {
    const STREAMS: usize = 20;
    let (server, mut client) = setup().await;
    let mut streams = Vec::new();
    for _ in 0..STREAMS {
        let mut stream = RawWatch::open(&server.endpoint()).await;
        let id = stream
            .create_ok(create_request(b"m/", &prefix_end(b"m/")))
            .await
            .watch_id;
        streams.push((stream, id));
    }
    let mut expected = Vec::new();
    for i in 0..10 {
        let key = format!("m/{i}");
        let rev = put(&mut client, &key, "v").await;
        expected.push(put_line(&key, "v", rev, rev, 1));
    }
    for (index, (stream, id)) in streams.iter_mut().enumerate() {
        assert_eq!(
            raw_events(stream, *id, expected.len()).await,
            expected,
            "stream {index}"
        );
    }
}

#[tokio::test]
async fn a_closed_stream_leaves_the_server_serving() {
    let (server, mut client) = setup().await;
    {
        let mut stream = RawWatch::open(&server.endpoint()).await;
        stream.create_ok(create_request(b"k", b"")).await;
        let mut request = create_request(b"k", b"");
        request.start_revision = 1;
        request.prev_kv = true;
        stream.create_ok(request).await;
        // Dropped here, with watches active.
    }
    for i in 0..20 {
        put(&mut client, "k", &i.to_string()).await;
    }
    let (watcher, mut stream) = watch(&mut client, "k", WatchOptions::new()).await;
    let rev = put(&mut client, "k", "last").await;
    assert_eq!(
        events(&mut stream, watcher.watch_id(), 1).await,
        [put_line("k", "last", rev - 20, rev, 21)]
    );
}
