use rafter_proto::etcdserverpb::watch_create_request::FilterType;
use rafter_proto::etcdserverpb::watch_request::RequestUnion;
use rafter_proto::etcdserverpb::{
    WatchCancelRequest, WatchCreateRequest, WatchProgressRequest, WatchRequest, WatchResponse,
};
use rafter_proto::mvccpb::event::EventType;
use rafter_proto::mvccpb::{Event, KeyValue};

use super::hub::{DUPLICATE_WATCH_ID, PROGRESS_WATCH_ID};
use super::*;

/// A store's history kept as a list of events.
#[derive(Default)]
struct Log {
    events: Vec<Event>,
    compacted: i64,
}

impl Log {
    fn rev(&self) -> i64 {
        self.events.last().map_or(1, event_revision)
    }

    /// One revision changing `keys` (put, or delete when `value` is None).
    fn write(&mut self, keys: &[&str], value: Option<&str>) -> Vec<Event> {
        let rev = self.rev() + 1;
        let evs: Vec<Event> = keys
            .iter()
            .map(|k| Event {
                r#type: if value.is_some() {
                    EventType::Put as i32
                } else {
                    EventType::Delete as i32
                },
                kv: Some(KeyValue {
                    key: k.as_bytes().to_vec(),
                    mod_revision: rev,
                    value: value.unwrap_or("").as_bytes().to_vec(),
                    ..Default::default()
                }),
                prev_kv: Some(KeyValue {
                    key: k.as_bytes().to_vec(),
                    value: b"before".to_vec(),
                    ..Default::default()
                }),
            })
            .collect();
        self.events.extend(evs.clone());
        evs
    }
}

impl EventHistory for Log {
    fn events(&self, from: i64, to: i64, max: usize) -> Result<HistoryChunk, HistoryError> {
        if from < self.compacted {
            return Err(HistoryError::Compacted(self.compacted));
        }
        let mut out: Vec<Event> = Vec::new();
        for ev in &self.events {
            let rev = event_revision(ev);
            if rev < from || rev > to {
                continue;
            }
            if out.len() >= max && out.last().is_some_and(|l| event_revision(l) != rev) {
                let through_rev = event_revision(out.last().expect("non-empty"));
                return Ok(HistoryChunk {
                    events: out,
                    through_rev,
                });
            }
            out.push(ev.clone());
        }
        Ok(HistoryChunk {
            events: out,
            through_rev: to,
        })
    }
}

fn create(
    key: &str,
    end: &str,
    start_rev: i64,
    fill: impl FnOnce(&mut WatchCreateRequest),
) -> WatchRequest {
    let mut c = WatchCreateRequest {
        key: key.as_bytes().to_vec(),
        range_end: end.as_bytes().to_vec(),
        start_revision: start_rev,
        ..Default::default()
    };
    fill(&mut c);
    WatchRequest {
        request_union: Some(RequestUnion::CreateRequest(c)),
    }
}

fn drain(hub: &mut WatchHub, s: StreamId) -> Vec<WatchResponse> {
    std::iter::from_fn(|| hub.pop(s)).collect()
}

fn keys_and_revs(resps: &[WatchResponse]) -> Vec<(String, i64)> {
    resps
        .iter()
        .flat_map(|r| r.events.iter())
        .map(|e| {
            let kv = e.kv.as_ref().expect("kv");
            (
                String::from_utf8(kv.key.clone()).expect("utf8"),
                kv.mod_revision,
            )
        })
        .collect()
}

fn apply(hub: &mut WatchHub, log: &mut Log, keys: &[&str], value: Option<&str>) {
    let evs = log.write(keys, value);
    hub.on_applied(&evs, log.rev(), log.compacted);
}

#[test]
fn range_conventions() {
    assert_eq!(WatchRange::new(b"", b""), Ok(WatchRange::Single(vec![0])));
    let from = WatchRange::new(b"b", b"\0").expect("from-key");
    assert!(from.contains(b"zz") && !from.contains(b"a"));
    let span = WatchRange::new(b"a", b"c").expect("span");
    assert!(span.contains(b"b") && !span.contains(b"c"));
    assert_eq!(WatchRange::new(b"c", b"a"), Err(WatchRangeError));
    assert_eq!(WatchRange::new(b"c", b"c"), Err(WatchRangeError));
}

#[test]
fn a_watch_from_now_sees_later_events_of_its_range_only() {
    let mut log = Log::default();
    let mut hub = WatchHub::new(WatchConfig::default(), 1, -1);
    let s = hub.open_stream();
    hub.request(s, create("a", "b", 0, |_| {}), 0, -1);
    apply(&mut hub, &mut log, &["a1", "b1"], Some("x"));
    apply(&mut hub, &mut log, &["z"], Some("x"));
    let out = drain(&mut hub, s);
    assert!(out[0].created && out[0].watch_id == 0);
    assert_eq!(keys_and_revs(&out), vec![("a1".into(), 2)]);
    assert!(out[1].prev_kv_free());
}

trait PrevFree {
    fn prev_kv_free(&self) -> bool;
}
impl PrevFree for WatchResponse {
    fn prev_kv_free(&self) -> bool {
        self.events.iter().all(|e| e.prev_kv.is_none())
    }
}

#[test]
fn a_watch_from_a_past_revision_replays_history_then_follows() {
    let mut log = Log::default();
    let mut hub = WatchHub::new(WatchConfig::default(), 1, -1);
    for i in 0..5 {
        apply(&mut hub, &mut log, &[&format!("k{i}")], Some("v"));
    }
    let s = hub.open_stream();
    hub.request(s, create("k", "l", 3, |c| c.prev_kv = true), 0, -1);
    assert!(hub.needs_sync());
    while hub.sync(&log).expect("sync") {}
    apply(&mut hub, &mut log, &["k9"], Some("v"));
    let out = drain(&mut hub, s);
    let got: Vec<i64> = keys_and_revs(&out).iter().map(|(_, r)| *r).collect();
    assert_eq!(got, vec![3, 4, 5, 6, 7]);
    assert!(out
        .iter()
        .skip(1)
        .all(|r| r.events.iter().all(|e| e.prev_kv.is_some())));
}

#[test]
fn a_full_stream_falls_behind_and_catches_up_without_loss_or_duplicates() {
    let mut log = Log::default();
    let config = WatchConfig {
        max_outbox_bytes: 200,
        sync_chunk_events: 3,
        ..Default::default()
    };
    let mut hub = WatchHub::new(config, 1, -1);
    let s = hub.open_stream();
    hub.request(s, create("", "\0", 0, |_| {}), 0, -1);
    let mut got = Vec::new();
    for i in 0..60 {
        apply(
            &mut hub,
            &mut log,
            &[&format!("k{i}"), &format!("j{i}")],
            Some("value"),
        );
        assert!(
            hub.outbox_bytes(s) < 200 + 200,
            "outbox grew to {}",
            hub.outbox_bytes(s)
        );
        if i % 7 == 0 {
            // The consumer drains now and then; catch-up runs meanwhile.
            got.extend(drain(&mut hub, s));
            while hub.sync(&log).expect("sync") {
                got.extend(drain(&mut hub, s));
            }
        }
    }
    loop {
        got.extend(drain(&mut hub, s));
        if !hub.sync(&log).expect("sync") && hub.outbox_bytes(s) == 0 {
            break;
        }
    }
    let revs: Vec<i64> = keys_and_revs(&got).iter().map(|(_, r)| *r).collect();
    let want: Vec<i64> = (2..62).flat_map(|r| [r, r]).collect();
    assert_eq!(revs, want);
    for r in &got {
        // Atomic: a response never holds half a revision.
        assert!(r.events.len() % 2 == 0);
    }
}

#[test]
fn compacted_start_is_cancelled_with_the_compaction_revision() {
    let mut log = Log::default();
    let mut hub = WatchHub::new(WatchConfig::default(), 1, -1);
    for _ in 0..5 {
        apply(&mut hub, &mut log, &["k"], Some("v"));
    }
    log.compacted = 4;
    hub.on_applied(&[], log.rev(), 4);
    let s = hub.open_stream();
    hub.request(s, create("k", "", 2, |_| {}), 0, -1);
    hub.request(s, create("k", "", 4, |_| {}), 0, -1);
    while hub.sync(&log).expect("sync") {}
    let out = drain(&mut hub, s);
    // Created, then cancelled at once (etcd's order); the second is created.
    assert!(out[0].created && out[1].canceled && out[2].created);
    let cancel = out.iter().find(|r| r.canceled).expect("a cancel");
    assert_eq!((cancel.watch_id, cancel.compact_revision), (0, 4));
    assert_eq!(
        keys_and_revs(&out),
        vec![("k".into(), 4), ("k".into(), 5), ("k".into(), 6)]
    );
}

#[test]
fn errors_as_etcd_sends_them() {
    let mut hub = WatchHub::new(WatchConfig::default(), 1, -1);
    let s = hub.open_stream();
    hub.request(s, create("a", "", 0, |c| c.watch_id = 7), 0, -1);
    hub.request(s, create("b", "", 0, |c| c.watch_id = 7), 0, -1);
    hub.request(s, create("b", "a", 0, |_| {}), 0, -1);
    hub.request(
        s,
        WatchRequest {
            request_union: Some(RequestUnion::CancelRequest(WatchCancelRequest {
                watch_id: 7,
            })),
        },
        0,
        -1,
    );
    hub.request(
        s,
        WatchRequest {
            request_union: Some(RequestUnion::CancelRequest(WatchCancelRequest {
                watch_id: 99,
            })),
        },
        0,
        -1,
    );
    let out = drain(&mut hub, s);
    assert_eq!(out.len(), 4);
    assert!(out[0].created && !out[0].canceled && out[0].watch_id == 7);
    assert!(out[1].created && out[1].canceled && out[1].cancel_reason == DUPLICATE_WATCH_ID);
    assert_eq!(out[1].watch_id, -1);
    assert!(out[2].canceled && out[2].watch_id == -1);
    assert_eq!(out[2].cancel_reason, "mvcc: watcher range is empty");
    assert!(out[3].canceled && !out[3].created && out[3].watch_id == 7);
}

#[test]
fn filters_drop_the_filtered_kind() {
    let mut log = Log::default();
    let mut hub = WatchHub::new(WatchConfig::default(), 1, -1);
    let s = hub.open_stream();
    hub.request(
        s,
        create("k", "", 0, |c| c.filters = vec![FilterType::Noput as i32]),
        0,
        -1,
    );
    hub.request(
        s,
        create("k", "", 0, |c| {
            c.filters = vec![FilterType::Nodelete as i32]
        }),
        0,
        -1,
    );
    apply(&mut hub, &mut log, &["k"], Some("v"));
    apply(&mut hub, &mut log, &["k"], None);
    let out: Vec<WatchResponse> = drain(&mut hub, s)
        .into_iter()
        .filter(|r| !r.events.is_empty())
        .collect();
    assert_eq!(out.len(), 2);
    assert_eq!(
        (out[0].watch_id, out[0].events[0].r#type),
        (1, EventType::Put as i32)
    );
    assert_eq!(
        (out[1].watch_id, out[1].events[0].r#type),
        (0, EventType::Delete as i32)
    );
}

#[test]
fn a_progress_request_waits_until_every_watch_is_synced() {
    let mut log = Log::default();
    let mut hub = WatchHub::new(WatchConfig::default(), 1, -1);
    for _ in 0..3 {
        apply(&mut hub, &mut log, &["k"], Some("v"));
    }
    let s = hub.open_stream();
    hub.request(s, create("k", "", 2, |_| {}), 0, -1);
    let progress = WatchRequest {
        request_union: Some(RequestUnion::ProgressRequest(WatchProgressRequest {})),
    };
    hub.request(s, progress, 0, -1);
    assert!(drain(&mut hub, s)
        .iter()
        .all(|r| r.watch_id != PROGRESS_WATCH_ID));
    while hub.sync(&log).expect("sync") {}
    let out = drain(&mut hub, s);
    let last = out.last().expect("responses");
    assert_eq!(last.watch_id, PROGRESS_WATCH_ID);
    assert_eq!(last.header.as_ref().map(|h| h.revision), Some(4));
    assert_eq!(keys_and_revs(&out).len(), 3);
}

#[test]
fn periodic_progress_only_for_quiet_synced_watches() {
    let mut log = Log::default();
    let mut hub = WatchHub::new(WatchConfig::default(), 1, -1);
    let s = hub.open_stream();
    hub.request(s, create("a", "", 0, |c| c.progress_notify = true), 0, -1);
    hub.request(s, create("b", "", 0, |c| c.progress_notify = true), 0, -1);
    hub.request(s, create("c", "", 0, |_| {}), 0, -1);
    drain(&mut hub, s);
    apply(&mut hub, &mut log, &["a"], Some("v"));
    drain(&mut hub, s);
    hub.progress_tick();
    let out = drain(&mut hub, s);
    assert_eq!(out.len(), 1);
    assert_eq!((out[0].watch_id, out[0].events.len()), (1, 0));
    hub.progress_tick();
    assert_eq!(drain(&mut hub, s).len(), 2);
}

#[test]
fn large_responses_are_fragmented_only_when_asked() {
    let mut log = Log::default();
    let config = WatchConfig {
        max_request_bytes: 300,
        ..Default::default()
    };
    let mut hub = WatchHub::new(config, 1, -1);
    let s = hub.open_stream();
    hub.request(s, create("k", "l", 0, |c| c.fragment = true), 0, -1);
    hub.request(s, create("k", "l", 0, |_| {}), 0, -1);
    let keys: Vec<String> = (0..20).map(|i| format!("k{i:02}")).collect();
    let refs: Vec<&str> = keys.iter().map(String::as_str).collect();
    apply(&mut hub, &mut log, &refs, Some(&"x".repeat(40)));
    let out = drain(&mut hub, s);
    let frags: Vec<&WatchResponse> = out
        .iter()
        .filter(|r| r.watch_id == 0 && !r.created)
        .collect();
    assert!(frags.len() > 2);
    assert!(frags[..frags.len() - 1].iter().all(|r| r.fragment));
    assert!(!frags.last().expect("last").fragment);
    assert_eq!(frags.iter().map(|r| r.events.len()).sum::<usize>(), 20);
    let whole: Vec<&WatchResponse> = out
        .iter()
        .filter(|r| r.watch_id == 1 && !r.created)
        .collect();
    assert_eq!((whole.len(), whole[0].events.len()), (1, 20));
}

#[test]
fn a_watch_below_a_compaction_the_hub_was_not_yet_told_of_is_cancelled() {
    let mut log = Log::default();
    let mut hub = WatchHub::new(WatchConfig::default(), 1, -1);
    apply(&mut hub, &mut log, &["k"], Some("v"));
    // The store compacted at 4 and moved on; the hub has not seen it yet.
    let s = hub.open_stream();
    hub.request(s, create("k", "", 2, |_| {}), 4, 4);
    let out = drain(&mut hub, s);
    assert!(out[0].created);
    assert!(out[1].canceled && out[1].compact_revision == 4);
    apply(&mut hub, &mut log, &["k"], Some("w"));
    assert!(drain(&mut hub, s).is_empty());
}
