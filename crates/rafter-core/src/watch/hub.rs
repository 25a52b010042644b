//! The watch hub: every watch stream of one member, the watches on each, and
//! the responses waiting to be sent. etcd splits this between its
//! `watchableStore` (synced / unsynced / victim watcher groups) and the
//! gRPC `serverWatchStream`; here it is one deterministic structure with no
//! clock, thread or I/O, so the simulator checks the server's own watch code.
//!
//! Each watch remembers `next_rev`, the lowest revision it has not yet
//! delivered. A synced watch is handed each applied batch's events and
//! advances to the hub's current revision. When its stream's outbox is full
//! it stops there (becomes unsynced) instead of growing the outbox: it
//! catches up from the store's history once the stream drains. Because a
//! watch's events are only ever taken from revisions at or above its
//! `next_rev`, and `next_rev` only moves past revisions whose events were
//! queued, no event is lost or sent twice.

use std::collections::{BTreeMap, VecDeque};

use prost::Message;
use rafter_proto::etcdserverpb::watch_create_request::FilterType;
use rafter_proto::etcdserverpb::watch_request::RequestUnion;
use rafter_proto::etcdserverpb::{ResponseHeader, WatchCreateRequest, WatchRequest, WatchResponse};
use rafter_proto::mvccpb::event::EventType;
use rafter_proto::mvccpb::Event;

use super::history::{EventHistory, HistoryError};
use super::range::WatchRange;
use super::{event_revision, fragment};

/// Identifies one watch stream (one `Watch` RPC) for its whole life.
pub type StreamId = u64;

/// etcd's `mvcc: duplicate watch ID provided on the WatchStream`.
pub const DUPLICATE_WATCH_ID: &str = "mvcc: duplicate watch ID provided on the WatchStream";

/// etcd 3.6's answer to a negative start revision.
pub const NEGATIVE_START: &str = "etcdserver: mvcc: required revision has been compacted";

/// The watch id of a progress response that answers a progress request
/// (etcd's `clientv3.InvalidWatchID`).
pub const PROGRESS_WATCH_ID: i64 = -1;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WatchConfig {
    /// Responses a stream may hold before its watches stop taking new
    /// events and fall behind (then catch up from the store).
    pub max_outbox_bytes: usize,
    /// The server's request limit, which fragmenting watches' responses are
    /// split to stay under (etcd's `--max-request-bytes`).
    pub max_request_bytes: usize,
    /// Events read from the store per catch-up step.
    pub sync_chunk_events: usize,
}

impl Default for WatchConfig {
    fn default() -> Self {
        WatchConfig {
            max_outbox_bytes: 1 << 20,
            max_request_bytes: 1_572_864,
            sync_chunk_events: 1_000,
        }
    }
}

struct Watch {
    range: WatchRange,
    /// The lowest revision whose events this watch has not queued.
    next_rev: i64,
    synced: bool,
    no_put: bool,
    no_delete: bool,
    prev_kv: bool,
    progress_notify: bool,
    fragment: bool,
    /// Events were queued since the last periodic progress notification.
    sent_since_progress: bool,
    /// Cancelled because its next revision was compacted. As in etcd, the
    /// id stays taken (and a cancel is answered) until the client cancels.
    compacted: bool,
}

impl Watch {
    fn wants(&self, ev: &Event) -> bool {
        let is_put = ev.r#type == EventType::Put as i32;
        if (is_put && self.no_put) || (!is_put && self.no_delete) {
            return false;
        }
        event_revision(ev) >= self.next_rev
            && ev
                .kv
                .as_ref()
                .is_some_and(|kv| self.range.contains(&kv.key))
    }

    fn select(&self, events: &[Event]) -> Vec<Event> {
        events
            .iter()
            .filter(|ev| self.wants(ev))
            .map(|ev| {
                let mut ev = ev.clone();
                if !self.prev_kv {
                    ev.prev_kv = None;
                }
                ev
            })
            .collect()
    }
}

#[derive(Default)]
struct Stream {
    watches: BTreeMap<i64, Watch>,
    next_auto_id: i64,
    /// Responses with their encoded sizes.
    outbox: VecDeque<(WatchResponse, usize)>,
    outbox_bytes: usize,
    /// A progress request waits until every watch is synced (etcd 3.6) and
    /// the hub has the events of the store's revision when it was asked.
    progress_deferred: Option<i64>,
}

impl Stream {
    fn has_room(&self, limit: usize) -> bool {
        self.outbox_bytes < limit
    }

    fn push(&mut self, resp: WatchResponse) {
        let size = resp.encoded_len();
        self.outbox_bytes += size;
        self.outbox.push_back((resp, size));
    }

    fn all_synced(&self) -> bool {
        self.watches.values().all(|w| w.synced || w.compacted)
    }

    fn unsynced(&mut self) -> impl Iterator<Item = (&i64, &mut Watch)> {
        self.watches
            .iter_mut()
            .filter(|(_, w)| !w.synced && !w.compacted)
    }
}

/// Every watch stream of one member.
pub struct WatchHub {
    config: WatchConfig,
    streams: BTreeMap<StreamId, Stream>,
    next_stream: StreamId,
    /// Events of every revision up to here were handed to the hub.
    current_rev: i64,
    compact_rev: i64,
}

impl WatchHub {
    /// A hub over a store at `current_rev`, compacted at `compact_rev`.
    pub fn new(config: WatchConfig, current_rev: i64, compact_rev: i64) -> WatchHub {
        WatchHub {
            config,
            streams: BTreeMap::new(),
            next_stream: 1,
            current_rev,
            compact_rev,
        }
    }

    pub fn current_revision(&self) -> i64 {
        self.current_rev
    }

    pub fn open_stream(&mut self) -> StreamId {
        let id = self.next_stream;
        self.next_stream += 1;
        self.streams.insert(id, Stream::default());
        id
    }

    /// Forgets a stream, its watches and its unsent responses.
    pub fn close_stream(&mut self, stream: StreamId) {
        self.streams.remove(&stream);
    }

    pub fn stream_count(&self) -> usize {
        self.streams.len()
    }

    pub fn watch_count(&self) -> usize {
        self.streams.values().map(|s| s.watches.len()).sum()
    }

    /// Bytes of responses waiting on `stream`.
    pub fn outbox_bytes(&self, stream: StreamId) -> usize {
        self.streams.get(&stream).map_or(0, |s| s.outbox_bytes)
    }

    /// The next response to send on `stream`.
    pub fn pop(&mut self, stream: StreamId) -> Option<WatchResponse> {
        let s = self.streams.get_mut(&stream)?;
        let (resp, size) = s.outbox.pop_front()?;
        s.outbox_bytes -= size;
        Some(resp)
    }

    /// Up to `max` responses to send on `stream`, in order (one lock of
    /// the hub for many responses).
    pub fn pop_many(&mut self, stream: StreamId, max: usize) -> Vec<WatchResponse> {
        std::iter::from_fn(|| self.pop(stream)).take(max).collect()
    }

    /// Streams with responses waiting.
    pub fn streams_with_output(&self) -> impl Iterator<Item = StreamId> + '_ {
        self.streams
            .iter()
            .filter(|(_, s)| !s.outbox.is_empty())
            .map(|(id, _)| *id)
    }

    /// Whether some unsynced watch could catch up now (its stream has room).
    pub fn needs_sync(&self) -> bool {
        let limit = self.config.max_outbox_bytes;
        self.streams
            .values()
            .any(|s| s.has_room(limit) && s.watches.values().any(|w| !w.synced && !w.compacted))
    }

    /// Whether one of `stream`'s watches could catch up now (cheaper than
    /// [`WatchHub::needs_sync`]: only this stream's watches are looked at).
    pub fn stream_needs_sync(&self, stream: StreamId) -> bool {
        let limit = self.config.max_outbox_bytes;
        self.streams.get(&stream).is_some_and(|s| {
            s.has_room(limit) && s.watches.values().any(|w| !w.synced && !w.compacted)
        })
    }

    /// One request from a client on `stream`. Unknown streams are ignored
    /// (the stream closed while the request was in flight). `store_rev` is
    /// the store's revision now, which may be ahead of the hub's (applied
    /// batches on their way to the hub): a watch "from now" starts after it,
    /// as etcd's does. `store_compact_rev` is the store's compaction
    /// revision now: a watch from below it is cancelled even when the hub
    /// has not yet been handed that compaction.
    pub fn request(
        &mut self,
        stream: StreamId,
        req: WatchRequest,
        store_rev: i64,
        store_compact_rev: i64,
    ) {
        self.compact_rev = self.compact_rev.max(store_compact_rev);
        let compact_rev = self.compact_rev;
        let current_rev = self.current_rev;
        let now_rev = current_rev.max(store_rev);
        let Some(s) = self.streams.get_mut(&stream) else {
            return;
        };
        match req.request_union {
            Some(RequestUnion::CreateRequest(create)) => {
                if let Some(id) = create_watch(s, create, current_rev, now_rev) {
                    // etcd sends the created response, then the cancel.
                    if s.watches[&id].next_rev < compact_rev {
                        cancel_compacted(s, id, compact_rev);
                    }
                }
            }
            // etcd answers only a cancel of a watch that exists.
            Some(RequestUnion::CancelRequest(cancel))
                if s.watches.remove(&cancel.watch_id).is_some() =>
            {
                s.push(response(now_rev, cancel.watch_id, |r| r.canceled = true));
            }
            Some(RequestUnion::ProgressRequest(_)) => {
                s.progress_deferred = Some(now_rev);
                self.answer_progress_requests();
            }
            Some(RequestUnion::CancelRequest(_)) | None => {}
        }
    }

    /// The events of an applied batch; afterwards the store is at
    /// `current_rev` (compacted at `compact_rev`). Synced watches queue
    /// their events, or fall behind when their stream is full.
    pub fn on_applied(&mut self, events: &[Event], current_rev: i64, compact_rev: i64) {
        assert!(
            current_rev >= self.current_rev,
            "the store's revision went back from {} to {current_rev}",
            self.current_rev
        );
        debug_assert!(events
            .iter()
            .all(|e| event_revision(e) > self.current_rev && event_revision(e) <= current_rev));
        self.current_rev = current_rev;
        self.compact_rev = self.compact_rev.max(compact_rev);
        let config = self.config;
        for s in self.streams.values_mut() {
            let room = s.has_room(config.max_outbox_bytes);
            let mut queued = Vec::new();
            for (id, w) in s.watches.iter_mut().filter(|(_, w)| w.synced) {
                if w.next_rev > current_rev {
                    continue; // a watch that starts in the future
                }
                let selected = if crate::fault::active(crate::fault::Fault::WatchSkipFull) && !room
                {
                    Vec::new()
                } else {
                    w.select(events)
                };
                if !selected.is_empty() && !room {
                    w.synced = false; // a victim: catches up from the store
                    if crate::fault::active(crate::fault::Fault::WatchDup) {
                        // Test-only bug: resume one revision early.
                        w.next_rev -= 1;
                    }
                    continue;
                }
                w.next_rev = current_rev + 1;
                if !selected.is_empty() {
                    w.sent_since_progress = true;
                    queued.push((*id, w.fragment, selected));
                }
            }
            for (id, frag, selected) in queued {
                push_events(s, config, current_rev, id, frag, selected);
            }
        }
        self.answer_progress_requests();
    }

    /// The store was replaced (a snapshot was installed): every watch
    /// catches up from the new store's history.
    pub fn on_store_replaced(&mut self, current_rev: i64, compact_rev: i64) {
        self.current_rev = self.current_rev.max(current_rev);
        self.compact_rev = self.compact_rev.max(compact_rev);
        for w in self
            .streams
            .values_mut()
            .flat_map(|s| s.watches.values_mut())
        {
            w.synced = false;
        }
    }

    /// One catch-up step for the unsynced watches whose streams have room:
    /// reads a chunk of history once and hands each watch its part. Returns
    /// whether more catching up is possible right away.
    pub fn sync(&mut self, history: &dyn EventHistory) -> Result<bool, HistoryError> {
        let config = self.config;
        let (current_rev, compact_rev) = (self.current_rev, self.compact_rev);
        let mut from_rev = i64::MAX;
        for s in self.streams.values_mut() {
            if !s.has_room(config.max_outbox_bytes) {
                continue;
            }
            let mut compacted = Vec::new();
            for (id, w) in s.unsynced() {
                if w.next_rev < compact_rev {
                    compacted.push(*id);
                } else if w.next_rev > current_rev {
                    w.synced = true;
                } else {
                    from_rev = from_rev.min(w.next_rev);
                }
            }
            for id in compacted {
                cancel_compacted(s, id, compact_rev);
            }
        }
        if from_rev == i64::MAX {
            self.answer_progress_requests();
            return Ok(false);
        }
        let chunk = match history.events(from_rev, current_rev, config.sync_chunk_events) {
            Ok(chunk) => chunk,
            Err(HistoryError::Compacted(rev)) => {
                // The store compacted past revisions the hub has not been
                // told about yet; the watches below it are cancelled on the
                // next step.
                self.compact_rev = self.compact_rev.max(rev);
                return Ok(true);
            }
            Err(e) => return Err(e),
        };
        let through_rev = chunk.through_rev;
        assert!(
            through_rev >= from_rev && through_rev <= current_rev,
            "history chunk through {through_rev} outside {from_rev}..={current_rev}"
        );
        for s in self.streams.values_mut() {
            if !s.has_room(config.max_outbox_bytes) {
                continue;
            }
            let mut queued = Vec::new();
            for (id, w) in s.unsynced() {
                if w.next_rev > through_rev {
                    continue;
                }
                let selected: Vec<Event> = w
                    .select(&chunk.events)
                    .into_iter()
                    .filter(|ev| event_revision(ev) <= through_rev)
                    .collect();
                w.next_rev = through_rev + 1;
                w.synced = w.next_rev > current_rev;
                if !selected.is_empty() {
                    w.sent_since_progress = true;
                    queued.push((*id, w.fragment, selected));
                }
            }
            for (id, frag, selected) in queued {
                push_events(s, config, current_rev, id, frag, selected);
            }
        }
        self.answer_progress_requests();
        Ok(self.needs_sync())
    }

    /// etcd's periodic progress notification: each synced watch created
    /// with `progress_notify` that queued no events since the last tick is
    /// told the current revision.
    pub fn progress_tick(&mut self) {
        let current_rev = self.current_rev;
        for s in self.streams.values_mut() {
            let mut notify = Vec::new();
            for (id, w) in s.watches.iter_mut() {
                if w.progress_notify && w.synced && !w.sent_since_progress {
                    notify.push(*id);
                }
                w.sent_since_progress = false;
            }
            for id in notify {
                s.push(response(current_rev, id, |_| {}));
            }
        }
    }

    /// Answers deferred progress requests on streams whose watches have all
    /// queued every event up to the current revision.
    fn answer_progress_requests(&mut self) {
        let current_rev = self.current_rev;
        for s in self.streams.values_mut() {
            let due = s.progress_deferred.is_some_and(|at| at <= current_rev);
            if due && s.all_synced() {
                s.progress_deferred = None;
                s.push(response(current_rev, PROGRESS_WATCH_ID, |_| {}));
            }
        }
    }
}

fn response(revision: i64, watch_id: i64, fill: impl FnOnce(&mut WatchResponse)) -> WatchResponse {
    let mut resp = WatchResponse {
        header: Some(ResponseHeader {
            revision,
            ..Default::default()
        }),
        watch_id,
        ..Default::default()
    };
    fill(&mut resp);
    resp
}

/// Creates a watch; the hub has events up to `current_rev`, the store is at
/// `now_rev`.
/// Returns the new watch's id, if one was created.
fn create_watch(
    s: &mut Stream,
    create: WatchCreateRequest,
    current_rev: i64,
    now_rev: i64,
) -> Option<i64> {
    let range = match WatchRange::new(&create.key, &create.range_end) {
        Ok(range) => range,
        Err(e) => {
            s.push(response(now_rev, -1, |r| {
                r.created = true;
                r.canceled = true;
                r.cancel_reason = e.to_string();
            }));
            return None;
        }
    };
    if create.start_revision < 0 {
        // etcd 3.6 refuses a negative start (3.4 created and then
        // cancelled the watch).
        s.push(response(now_rev, -1, |r| {
            r.created = true;
            r.canceled = true;
            r.cancel_reason = NEGATIVE_START.to_string();
        }));
        return None;
    }
    let id = if create.watch_id != 0 {
        if s.watches.contains_key(&create.watch_id) {
            s.push(response(now_rev, -1, |r| {
                r.created = true;
                r.canceled = true;
                r.cancel_reason = DUPLICATE_WATCH_ID.to_string();
            }));
            return None;
        }
        create.watch_id
    } else {
        while s.watches.contains_key(&s.next_auto_id) {
            s.next_auto_id += 1;
        }
        s.next_auto_id += 1;
        s.next_auto_id - 1
    };
    let next_rev = if create.start_revision <= 0 {
        now_rev + 1
    } else {
        create.start_revision
    };
    let filters = |f: FilterType| create.filters.contains(&(f as i32));
    s.watches.insert(
        id,
        Watch {
            range,
            next_rev,
            synced: next_rev > current_rev,
            no_put: filters(FilterType::Noput),
            no_delete: filters(FilterType::Nodelete),
            prev_kv: create.prev_kv,
            progress_notify: create.progress_notify,
            fragment: create.fragment,
            sent_since_progress: false,
            compacted: false,
        },
    );
    s.push(response(now_rev, id, |r| r.created = true));
    Some(id)
}

/// etcd's answer to a watch whose next revision was compacted: cancelled,
/// with the compaction revision, and (as etcd sends it) a header revision
/// of 0.
fn cancel_compacted(s: &mut Stream, id: i64, compact_rev: i64) {
    if let Some(w) = s.watches.get_mut(&id) {
        w.compacted = true;
        w.synced = false;
    }
    s.push(response(0, id, |r| {
        r.canceled = true;
        r.compact_revision = compact_rev;
    }));
}

/// Queues one watch's events as one response (several when the watch asked
/// for fragments and they exceed the request limit), so all events of a
/// revision always travel together.
fn push_events(
    s: &mut Stream,
    config: WatchConfig,
    revision: i64,
    id: i64,
    frag: bool,
    events: Vec<Event>,
) {
    let resp = response(revision, id, |r| r.events = events);
    if frag {
        for part in fragment(resp, config.max_request_bytes) {
            s.push(part);
        }
    } else {
        s.push(resp);
    }
}
