//! Watch differential test: one random sequence of writes (puts, deletes,
//! delete-ranges, multi-op txns, occasional physical compactions) runs
//! against the real etcd (the oracle) and against the server under test,
//! while watchers come and go on a few streams (random key, prefix or range;
//! some with prev_kv, some with a filter; starting now, at a past revision,
//! below the compaction revision, or in the future; with ids chosen by the
//! server or the client, duplicates included), with some cancel and progress
//! requests. Each watcher's events, flattened across responses
//! (type, key, value, create/mod revision, version, lease, prev_kv), must be
//! the same on both, and so must the control responses (created, refused,
//! canceled, compacted, progress) apart from the header's cluster/member id
//! and raft term. How events are grouped into responses may differ, except
//! that a revision's events never span two responses.
//!
//! The driver also keeps a model of the events each write produced (from
//! etcd's own answers: delete-ranges ask for prev_kv to learn the deleted
//! keys), which tells how many events each watcher must get: it waits for
//! exactly those on both servers (with a deadline), so no wait is a sleep,
//! and it checks etcd's streams against the model too.
//!
//! The server under test is `RAFTER_TEST_TARGET` (default Rafter);
//! `RAFTER_TEST_TARGET=etcd` runs etcd against etcd, which checks the
//! harness itself. The sequence comes from a seed printed at the start;
//! replay a failure with `RAFTER_WATCH_DIFF_SEED=<seed>`; run a longer
//! campaign with `RAFTER_WATCH_DIFF_SEEDS=50`.
//!
//! Races are avoided by construction, since etcd's answers would otherwise
//! depend on timing: a compaction revision is always below the first
//! revision any open watcher may still deliver (a watcher catching up on
//! history, or looking up a prev_kv, never meets a compaction), and watchers
//! are canceled only after they delivered everything. A watch never starts
//! exactly at the compaction revision: etcd 3.4 drops a delete made at that
//! revision from history, etcd 3.5.16+/3.6 keeps it. Progress requests go
//! only to streams whose watchers are all live (etcd 3.6 defers the answer
//! while a stream has a watcher that is not synced, e.g. one canceled by
//! compaction but not by the client).

mod common;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use common::watch::{show_event, RawWatch, NO_WATCH_ID};
use common::{Server, Target};
use rafter_proto::etcdserverpb::compare::{CompareResult, CompareTarget, TargetUnion};
use rafter_proto::etcdserverpb::kv_client::KvClient;
use rafter_proto::etcdserverpb::request_op::Request as Op;
use rafter_proto::etcdserverpb::response_op::Response as OpResponse;
use rafter_proto::etcdserverpb::watch_create_request::FilterType;
use rafter_proto::etcdserverpb::*;
use tonic::transport::Channel;

const KEYS: &[&[u8]] = &[b"a", b"b", b"ba", b"bb", b"c", b"d"];
/// Range ends a watcher may use besides the keys themselves.
const ENDS: &[&[u8]] = &[b"b", b"bb", b"c", b"c\0", b"e", b"\0"];
const STEPS_PER_SEED: usize = 250;
/// Open watchers at most: beyond, a new watch replaces the oldest one, so
/// the compaction revision (held below every open watcher's start) moves on.
const MAX_OPEN_WATCHERS: usize = 6;
/// Seeds per run by default; `RAFTER_WATCH_DIFF_SEEDS=<n>` runs more.
const SEEDS: u64 = 2;
/// Watch streams per server.
const STREAMS: usize = 3;
/// Watch ids the client chooses start here, far above those the server
/// chooses (counting from 0, one per watch).
const FIRST_CLIENT_ID: i64 = 1000;
/// How long a server may take to deliver the events it owes.
const DELIVERY_DEADLINE: Duration = Duration::from_secs(10);

/// A small deterministic RNG so a seed replays the same operations.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
    fn key(&mut self) -> Vec<u8> {
        KEYS[self.below(KEYS.len() as u64) as usize].to_vec()
    }
    /// Distinct keys, at most `n`.
    fn keys(&mut self, n: u64) -> Vec<Vec<u8>> {
        let mut keys: Vec<Vec<u8>> = Vec::new();
        for _ in 0..n {
            let key = self.key();
            if !keys.contains(&key) {
                keys.push(key);
            }
        }
        keys
    }
}

/// One step of the sequence.
#[derive(Debug, Clone)]
enum Step {
    Put(PutRequest),
    Delete(DeleteRangeRequest),
    Txn(TxnRequest),
    Compact(i64),
    Watch {
        stream: usize,
        create: WatchCreateRequest,
    },
    /// Cancel the watcher with this index (in creation order).
    Cancel(usize),
    Progress(usize),
}

/// What the driver knows while generating: the store's revision, the
/// compaction revision, the events so far, and the watchers.
#[derive(Default)]
struct Model {
    revision: i64,
    compacted: i64,
    /// Every event so far: (revision, key, is_delete), in order.
    events: Vec<(i64, Vec<u8>, bool)>,
    watchers: Vec<Watcher>,
    value_counter: u64,
}

/// A watcher as the model sees it.
#[derive(Debug, Clone)]
struct Watcher {
    stream: usize,
    create: WatchCreateRequest,
    /// The first revision it may deliver.
    from: i64,
    state: WatchState,
    /// Set by a cancel request: how many of the model's events there were
    /// then (a live watcher gets none after that).
    canceled_at: Option<usize>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum WatchState {
    /// Delivering events.
    Live,
    /// Refused at creation (empty range): never had an id.
    Refused,
    /// Started below the compaction revision: canceled by the server.
    Compacted,
}

impl Watcher {
    fn matches(&self, revision: i64, key: &[u8], is_delete: bool) -> bool {
        let (start, end) = (&self.create.key[..], &self.create.range_end[..]);
        let in_range = match end {
            [] => key == start,
            [0] => key >= start,
            _ => key >= start && key < end,
        };
        let filtered = self.create.filters.iter().any(|&f| {
            (f == FilterType::Noput as i32 && !is_delete)
                || (f == FilterType::Nodelete as i32 && is_delete)
        });
        revision >= self.from && in_range && !filtered
    }

    /// Whether the watcher may still deliver events (and blocks compaction).
    fn open(&self) -> bool {
        self.state == WatchState::Live && self.canceled_at.is_none()
    }

    /// Whether the server still knows its id (a compaction-canceled watch
    /// stays known until the client cancels it).
    fn known(&self) -> bool {
        self.state != WatchState::Refused && self.canceled_at.is_none()
    }
}

impl Model {
    fn value(&mut self) -> Vec<u8> {
        self.value_counter += 1;
        format!("v{}", self.value_counter).into_bytes()
    }

    /// The events watcher `index` must have delivered by now, as
    /// `(revision, key, is_delete)`.
    fn expected(&self, index: usize) -> Vec<(i64, Vec<u8>, bool)> {
        let watcher = &self.watchers[index];
        match watcher.state {
            WatchState::Refused | WatchState::Compacted => vec![],
            WatchState::Live => self.events[..watcher.canceled_at.unwrap_or(self.events.len())]
                .iter()
                .filter(|(rev, key, del)| watcher.matches(*rev, key, *del))
                .cloned()
                .collect(),
        }
    }

    /// The highest revision a compaction may use now: below the first
    /// revision any open watcher may still deliver.
    fn compaction_bound(&self) -> i64 {
        self.watchers
            .iter()
            .filter(|w| w.open())
            .map(|w| w.from - 1)
            .fold(self.revision, i64::min)
    }

    fn generate(&mut self, rng: &mut Rng) -> Step {
        let live: Vec<usize> = (0..self.watchers.len())
            .filter(|&i| self.watchers[i].open())
            .collect();
        match rng.below(100) {
            0..=29 => Step::Put(PutRequest {
                key: rng.key(),
                value: self.value(),
                ..Default::default()
            }),
            30..=39 => {
                let key = rng.key();
                let range_end = match rng.below(3) {
                    0 => vec![],
                    1 => ENDS[rng.below(ENDS.len() as u64) as usize].to_vec(),
                    _ => vec![0],
                };
                Step::Delete(DeleteRangeRequest {
                    key,
                    range_end,
                    prev_kv: true,
                })
            }
            40..=54 => Step::Txn(self.txn(rng)),
            55..=61 => {
                let bound = self.compaction_bound();
                if bound > self.compacted {
                    let revision =
                        self.compacted + 1 + rng.below((bound - self.compacted) as u64) as i64;
                    Step::Compact(revision)
                } else {
                    Step::Put(PutRequest {
                        key: rng.key(),
                        value: self.value(),
                        ..Default::default()
                    })
                }
            }
            62..=79 => self.watch(rng),
            80..=87 if !live.is_empty() => {
                // A compaction-canceled watcher can be canceled by the client
                // too (etcd still knows its id); a refused one cannot.
                let cancelable: Vec<usize> = (0..self.watchers.len())
                    .filter(|&i| self.watchers[i].known())
                    .collect();
                Step::Cancel(cancelable[rng.below(cancelable.len() as u64) as usize])
            }
            88..=92 => {
                let stream = rng.below(STREAMS as u64) as usize;
                let on_stream: Vec<&Watcher> = self
                    .watchers
                    .iter()
                    .filter(|w| w.stream == stream && w.known())
                    .collect();
                if !on_stream.is_empty() && on_stream.iter().all(|w| w.open()) {
                    Step::Progress(stream)
                } else {
                    self.watch(rng)
                }
            }
            _ => self.watch(rng),
        }
    }

    fn txn(&mut self, rng: &mut Rng) -> TxnRequest {
        let compare = if rng.chance(50) {
            vec![Compare {
                result: CompareResult::Greater as i32,
                target: CompareTarget::Mod as i32,
                key: rng.key(),
                range_end: vec![],
                target_union: Some(TargetUnion::ModRevision(
                    rng.below(self.revision as u64 + 1) as i64,
                )),
            }]
        } else {
            vec![]
        };
        let mut branch = |model: &mut Model| {
            // Puts and deletes on distinct keys: etcd refuses a txn whose
            // put and delete touch the same key.
            let keys = rng.keys(4);
            keys.into_iter()
                .map(|key| {
                    let request = if rng.chance(75) {
                        Op::RequestPut(PutRequest {
                            key,
                            value: model.value(),
                            ..Default::default()
                        })
                    } else {
                        Op::RequestDeleteRange(DeleteRangeRequest {
                            key,
                            range_end: vec![],
                            prev_kv: true,
                        })
                    };
                    RequestOp {
                        request: Some(request),
                    }
                })
                .collect::<Vec<_>>()
        };
        let success = branch(self);
        let failure = branch(self);
        TxnRequest {
            compare,
            success,
            failure,
        }
    }

    fn watch(&mut self, rng: &mut Rng) -> Step {
        if let Some(oldest) = (0..self.watchers.len()).find(|&i| self.watchers[i].open()) {
            if self.watchers.iter().filter(|w| w.open()).count() >= MAX_OPEN_WATCHERS {
                return Step::Cancel(oldest);
            }
        }
        let key = rng.key();
        let range_end = match rng.below(10) {
            0..=3 => vec![],
            4..=5 => {
                let mut end = key.clone();
                *end.last_mut().unwrap() += 1;
                end
            }
            6 => vec![0],
            // Sometimes not above the key: refused as an empty range.
            _ => ENDS[rng.below(ENDS.len() as u64) as usize].to_vec(),
        };
        let filters = match rng.below(10) {
            0 | 1 => vec![FilterType::Noput as i32],
            2 | 3 => vec![FilterType::Nodelete as i32],
            _ => vec![],
        };
        let start_revision = match rng.below(10) {
            0..=3 => 0,
            4..=8 => {
                let rev = 1 + rng.below(self.revision as u64) as i64;
                if rev == self.compacted {
                    rev + 1
                } else {
                    rev
                }
            }
            _ => self.revision + 1 + rng.below(3) as i64,
        };
        let stream = rng.below(STREAMS as u64) as usize;
        // Mostly ids chosen by the server (0); sometimes a new id of the
        // client's (far above the server's), or one in use on the stream,
        // which is refused as a duplicate.
        let in_use: Vec<i64> = self
            .watchers
            .iter()
            .filter(|w| w.stream == stream && w.known() && w.create.watch_id != 0)
            .map(|w| w.create.watch_id)
            .collect();
        let watch_id = match rng.below(20) {
            0..=2 => FIRST_CLIENT_ID + self.watchers.len() as i64,
            3 if !in_use.is_empty() => in_use[rng.below(in_use.len() as u64) as usize],
            _ => 0,
        };
        Step::Watch {
            stream,
            create: WatchCreateRequest {
                key,
                range_end,
                start_revision,
                filters,
                prev_kv: rng.chance(40),
                watch_id,
                ..Default::default()
            },
        }
    }

    /// Whether a create request is refused: an empty range, or an id in use
    /// on its stream.
    fn refuses(&self, stream: usize, create: &WatchCreateRequest) -> bool {
        let empty_range = !create.range_end.is_empty()
            && create.range_end != [0]
            && create.key >= create.range_end;
        let duplicate = create.watch_id != 0
            && self
                .watchers
                .iter()
                .any(|w| w.stream == stream && w.known() && w.create.watch_id == create.watch_id);
        empty_range || duplicate
    }
}

/// One server with its KV client, watch streams and what each watcher got.
struct Side {
    name: &'static str,
    /// Kept alive for the test's duration.
    _server: Server,
    kv: KvClient<Channel>,
    streams: Vec<RawWatch>,
    /// (stream, watch id) to watcher index.
    ids: BTreeMap<(usize, i64), usize>,
    /// Per watcher: its event responses (and the compaction cancel).
    responses: Vec<Vec<WatchResponse>>,
    /// Per watcher: its control responses (created, canceled), shown.
    control: Vec<Vec<String>>,
    /// Progress responses per stream, shown.
    progress: Vec<Vec<String>>,
    /// Whether the compaction cancel of each watcher arrived.
    compact_canceled: Vec<bool>,
}

/// A response with the header fields that legitimately differ zeroed, as text.
fn shown_control(response: &WatchResponse) -> String {
    let mut response = response.clone();
    if let Some(h) = response.header.as_mut() {
        h.cluster_id = 0;
        h.member_id = 0;
        h.raft_term = 0;
    }
    format!("{response:?}")
}

/// A kv-service response with the header fields that legitimately differ
/// zeroed, as text.
fn shown_kv<T: std::fmt::Debug>(
    mut r: T,
    header: fn(&mut T) -> &mut Option<ResponseHeader>,
) -> String {
    if let Some(h) = header(&mut r) {
        h.cluster_id = 0;
        h.member_id = 0;
        h.raft_term = 0;
    }
    format!("{r:?}")
}

impl Side {
    async fn start(name: &'static str, target: Target) -> Side {
        let server = Server::start_target(target, &[]).await;
        let kv = KvClient::connect(server.endpoint())
            .await
            .unwrap_or_else(|e| panic!("connect {name}: {e}"));
        let mut streams = Vec::new();
        for _ in 0..STREAMS {
            streams.push(RawWatch::open(&server.endpoint()).await);
        }
        Side {
            name,
            _server: server,
            kv,
            streams,
            ids: BTreeMap::new(),
            responses: Vec::new(),
            control: Vec::new(),
            progress: vec![Vec::new(); STREAMS],
            compact_canceled: Vec::new(),
        }
    }

    /// Runs a KV step; returns its answer as text (ids zeroed) and the
    /// response itself for the model.
    async fn write(&mut self, step: &Step) -> (String, Option<WriteResult>) {
        let kv = &mut self.kv;
        let result = match step.clone() {
            Step::Put(p) => kv.put(p).await.map(|r| {
                let r = r.into_inner();
                (shown_kv(r.clone(), |r| &mut r.header), WriteResult::Put(r))
            }),
            Step::Delete(d) => kv.delete_range(d).await.map(|r| {
                let r = r.into_inner();
                (
                    shown_kv(r.clone(), |r| &mut r.header),
                    WriteResult::Delete(r),
                )
            }),
            Step::Txn(t) => kv.txn(t).await.map(|r| {
                let r = r.into_inner();
                (shown_kv(r.clone(), |r| &mut r.header), WriteResult::Txn(r))
            }),
            Step::Compact(revision) => kv
                .compact(CompactionRequest {
                    revision,
                    physical: true,
                })
                .await
                .map(|r| {
                    let r = r.into_inner();
                    (shown_kv(r, |r| &mut r.header), WriteResult::Compact)
                }),
            other => unreachable!("not a KV step: {other:?}"),
        };
        match result {
            Ok((text, response)) => (text, Some(response)),
            Err(status) => (
                format!("error {:?}: {}", status.code(), status.message()),
                None,
            ),
        }
    }

    /// Reads one response from `stream` and files it; `false` on timeout.
    async fn pump(&mut self, stream: usize, deadline: Instant) -> bool {
        let left = deadline.saturating_duration_since(Instant::now());
        let Some(response) = self.streams[stream].next_within(left).await else {
            return false;
        };
        self.file(stream, response);
        true
    }

    /// Files a response that is not the answer to a create request.
    fn file(&mut self, stream: usize, response: WatchResponse) {
        if response.watch_id == NO_WATCH_ID && !response.created {
            self.progress[stream].push(shown_control(&response));
            return;
        }
        let index = *self
            .ids
            .get(&(stream, response.watch_id))
            .unwrap_or_else(|| {
                panic!(
                    "{}: response for unknown watch id {} on stream {stream}: {response:?}",
                    self.name, response.watch_id
                )
            });
        if response.canceled && response.compact_revision == 0 {
            self.control[index].push(shown_control(&response));
        } else {
            if response.compact_revision != 0 {
                self.compact_canceled[index] = true;
            }
            self.responses[index].push(response);
        }
    }

    /// Sends a create request and files its answer (reading and filing other
    /// responses that come first).
    async fn create(&mut self, index: usize, stream: usize, create: WatchCreateRequest) {
        self.responses.push(Vec::new());
        self.control.push(Vec::new());
        self.compact_canceled.push(false);
        self.streams[stream].create(create);
        let deadline = Instant::now() + DELIVERY_DEADLINE;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let response = self.streams[stream]
                .next_within(left)
                .await
                .unwrap_or_else(|| {
                    panic!(
                        "{}: no answer to the create request of watcher {index} within \
                         {DELIVERY_DEADLINE:?}",
                        self.name
                    )
                });
            if response.created {
                if !response.canceled {
                    let previous = self.ids.insert((stream, response.watch_id), index);
                    assert!(
                        previous.is_none(),
                        "{}: watch id {} handed out twice on stream {stream}",
                        self.name,
                        response.watch_id
                    );
                }
                self.control[index].push(shown_control(&response));
                return;
            }
            self.file(stream, response);
        }
    }

    /// The events watcher `index` got, flattened, one line each.
    fn events(&self, index: usize) -> Vec<String> {
        self.responses[index]
            .iter()
            .flat_map(|r| r.events.iter().map(show_event))
            .collect()
    }

    fn event_count(&self, index: usize) -> usize {
        self.responses[index].iter().map(|r| r.events.len()).sum()
    }
}

/// What a write answered, for the model.
enum WriteResult {
    Put(PutResponse),
    Delete(DeleteRangeResponse),
    Txn(TxnResponse),
    Compact,
}

/// The events a write produced: (revision, key, is_delete) in order.
fn events_of(step: &Step, result: &WriteResult) -> Vec<(i64, Vec<u8>, bool)> {
    let revision = |h: &Option<ResponseHeader>| h.as_ref().expect("header").revision;
    match (step, result) {
        (Step::Put(request), WriteResult::Put(response)) => {
            vec![(revision(&response.header), request.key.clone(), false)]
        }
        (Step::Delete(_), WriteResult::Delete(response)) => {
            let rev = revision(&response.header);
            response
                .prev_kvs
                .iter()
                .map(|kv| (rev, kv.key.clone(), true))
                .collect()
        }
        (Step::Txn(request), WriteResult::Txn(response)) => txn_events(request, response),
        (Step::Compact(_), WriteResult::Compact) => vec![],
        (step, _) => unreachable!("{step:?} answered with another kind of response"),
    }
}

/// The events of a txn: its taken branch's puts and deletes, in order.
fn txn_events(request: &TxnRequest, response: &TxnResponse) -> Vec<(i64, Vec<u8>, bool)> {
    let rev = response.header.as_ref().expect("header").revision;
    let branch = if response.succeeded {
        &request.success
    } else {
        &request.failure
    };
    let mut events = Vec::new();
    for (op, answer) in branch.iter().zip(&response.responses) {
        match (&op.request, &answer.response) {
            (Some(Op::RequestPut(p)), Some(OpResponse::ResponsePut(_))) => {
                events.push((rev, p.key.clone(), false));
            }
            (Some(Op::RequestDeleteRange(_)), Some(OpResponse::ResponseDeleteRange(d))) => {
                events.extend(d.prev_kvs.iter().map(|kv| (rev, kv.key.clone(), true)));
            }
            (op, answer) => panic!("txn op {op:?} answered with {answer:?}"),
        }
    }
    events
}

/// Bytes as text for messages (keys and values here are ASCII).
fn text(bytes: &[u8]) -> String {
    format!("{:?}", String::from_utf8_lossy(bytes))
}

fn describe_op(op: &RequestOp) -> String {
    match &op.request {
        Some(Op::RequestPut(p)) => format!("put {}={}", text(&p.key), text(&p.value)),
        Some(Op::RequestDeleteRange(d)) => {
            format!("delete [{}, {})", text(&d.key), text(&d.range_end))
        }
        other => format!("{other:?}"),
    }
}

/// A step in a readable form for failure messages.
fn describe(step: &Step) -> String {
    let ops = |ops: &[RequestOp]| ops.iter().map(describe_op).collect::<Vec<_>>().join(", ");
    match step {
        Step::Put(p) => format!("put {}={}", text(&p.key), text(&p.value)),
        Step::Delete(d) => format!("delete [{}, {})", text(&d.key), text(&d.range_end)),
        Step::Txn(t) => format!(
            "txn if {:?} then [{}] else [{}]",
            t.compare
                .iter()
                .map(|c| format!("mod({}) > {:?}", text(&c.key), c.target_union))
                .collect::<Vec<_>>(),
            ops(&t.success),
            ops(&t.failure)
        ),
        Step::Compact(rev) => format!("compact {rev} (physical)"),
        Step::Watch { stream, create } => {
            format!("watch on stream {stream}: {}", describe_create(create))
        }
        Step::Cancel(index) => format!("cancel watcher {index}"),
        Step::Progress(stream) => format!("progress request on stream {stream}"),
    }
}

fn describe_create(create: &WatchCreateRequest) -> String {
    format!(
        "[{}, {}) from {} filters {:?} prev_kv {} watch_id {}",
        text(&create.key),
        text(&create.range_end),
        create.start_revision,
        create.filters,
        create.prev_kv,
        create.watch_id
    )
}

fn show_model_event((rev, key, is_delete): &(i64, Vec<u8>, bool)) -> String {
    format!(
        "{} {} m{rev}",
        if *is_delete { "DELETE" } else { "PUT" },
        String::from_utf8_lossy(key)
    )
}

/// An event line reduced to what the model knows.
fn model_line(line: &str) -> String {
    let mut words = line.split(' ');
    let kind = words.next().unwrap();
    let kv = words.next().unwrap();
    let key = kv.split('=').next().unwrap();
    let modified = line.split(' ').find(|w| w.starts_with('m')).unwrap_or("m?");
    format!("{kind} {key} {modified}")
}

/// Checks that no revision's events span two responses of one watcher.
fn check_grouping(side: &Side, index: usize, context: &str) {
    let mut last = 0;
    for response in &side.responses[index] {
        assert!(
            !response.fragment,
            "{}: {context}: fragment set though the watch did not ask for it",
            side.name
        );
        let Some(first) = response.events.first() else {
            continue;
        };
        let first = first.kv.as_ref().expect("kv").mod_revision;
        assert!(
            first > last,
            "{}: {context}: revision {first} continues in a new response after revision {last}; \
             a revision's events must come in one response:\n{:#?}",
            side.name,
            side.responses[index]
        );
        last = response
            .events
            .last()
            .unwrap()
            .kv
            .as_ref()
            .unwrap()
            .mod_revision;
        let header = response.header.as_ref().expect("header").revision;
        assert!(
            header >= last,
            "{}: {context}: header revision {header} is behind the events it carries (up to \
             {last})",
            side.name
        );
    }
}

/// Waits until every watcher has its expected events on `side`.
async fn deliver(side: &mut Side, model: &Model, context: &str) {
    let deadline = Instant::now() + DELIVERY_DEADLINE;
    for stream in 0..STREAMS {
        loop {
            let owing: Vec<usize> = (0..model.watchers.len())
                .filter(|&i| model.watchers[i].stream == stream)
                .filter(|&i| {
                    let watcher = &model.watchers[i];
                    match watcher.state {
                        WatchState::Compacted => !side.compact_canceled[i],
                        WatchState::Live => side.event_count(i) < model.expected(i).len(),
                        WatchState::Refused => false,
                    }
                })
                .collect();
            let Some(&first) = owing.first() else { break };
            if !side.pump(stream, deadline).await {
                let watcher = &model.watchers[first];
                panic!(
                    "{}: {context}: watcher {first} ({watcher:?}) did not deliver within \
                     {DELIVERY_DEADLINE:?}.\nexpected (model): {:#?}\ngot: {:#?}",
                    side.name,
                    model
                        .expected(first)
                        .iter()
                        .map(show_model_event)
                        .collect::<Vec<_>>(),
                    side.events(first)
                );
            }
        }
    }
}

/// Compares everything both sides got so far, and etcd's events with the model.
fn compare(etcd: &Side, other: &Side, model: &Model, context: &str) {
    for index in 0..model.watchers.len() {
        let watcher = &model.watchers[index];
        let what = format!(
            "{context}: watcher {index} (stream {}, {}, {:?}, canceled: {})",
            watcher.stream,
            describe_create(&watcher.create),
            watcher.state,
            watcher.canceled_at.is_some()
        );
        check_grouping(etcd, index, &what);
        check_grouping(other, index, &what);
        let expected: Vec<String> = model.expected(index).iter().map(show_model_event).collect();
        let etcd_events = etcd.events(index);
        assert_eq!(
            etcd_events
                .iter()
                .map(|l| model_line(l))
                .collect::<Vec<_>>(),
            expected,
            "etcd disagrees with the test's model (a bug in the test): {what}"
        );
        assert_eq!(
            other.events(index),
            etcd_events,
            "{} and etcd delivered different events to {what}",
            other.name
        );
        assert_eq!(
            other.control[index], etcd.control[index],
            "{} and etcd sent different control responses to {what}",
            other.name
        );
        let compaction = |side: &Side| {
            side.responses[index]
                .iter()
                .filter(|r| r.compact_revision != 0)
                .map(shown_control)
                .collect::<Vec<_>>()
        };
        assert_eq!(
            compaction(other),
            compaction(etcd),
            "{} and etcd differ on the compaction cancel of {what}",
            other.name
        );
    }
    assert_eq!(
        other.progress, etcd.progress,
        "{context}: {} and etcd sent different progress responses",
        other.name
    );
}

async fn run_seed(seed: u64, target: Target) {
    let mut etcd = Side::start("etcd", Target::Etcd).await;
    let other_name = match target {
        Target::Etcd => "etcd (second)",
        Target::Rafter => "rafter",
    };
    let mut other = Side::start(other_name, target).await;
    let mut rng = Rng(seed);
    let mut model = Model {
        revision: 1,
        ..Default::default()
    };
    let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
    for step_number in 0..STEPS_PER_SEED {
        let step = model.generate(&mut rng);
        let context = format!(
            "seed {seed}, step {step_number} ({}) (replay: RAFTER_WATCH_DIFF_SEED={seed})",
            describe(&step)
        );
        match &step {
            Step::Put(_) | Step::Delete(_) | Step::Txn(_) | Step::Compact(_) => {
                let (expected, result) = etcd.write(&step).await;
                let (actual, _) = other.write(&step).await;
                assert_eq!(
                    actual, expected,
                    "{context}: {other_name} and etcd answered the write differently"
                );
                let Some(result) = result else {
                    *counts.entry("write error").or_default() += 1;
                    continue;
                };
                let events = events_of(&step, &result);
                if let Some(&(rev, _, _)) = events.first() {
                    model.revision = rev;
                }
                if let Step::Compact(rev) = step {
                    model.compacted = rev;
                    *counts.entry("compaction").or_default() += 1;
                }
                *counts.entry("event").or_default() += events.len();
                model.events.extend(events);
            }
            Step::Watch { stream, create } => {
                let index = model.watchers.len();
                let state = if model.refuses(*stream, create) {
                    WatchState::Refused
                } else if create.start_revision > 0 && create.start_revision < model.compacted {
                    WatchState::Compacted
                } else {
                    WatchState::Live
                };
                let from = if create.start_revision > 0 {
                    create.start_revision
                } else {
                    model.revision + 1
                };
                *counts
                    .entry(match state {
                        WatchState::Refused => "watch refused",
                        WatchState::Compacted => "watch compacted",
                        _ if create.start_revision == 0 => "watch from now",
                        _ if create.start_revision <= model.revision => "watch from the past",
                        _ => "watch from the future",
                    })
                    .or_default() += 1;
                if create.watch_id != 0 {
                    *counts.entry("client-chosen id").or_default() += 1;
                    if state == WatchState::Refused
                        && create.watch_id < FIRST_CLIENT_ID + index as i64
                    {
                        *counts.entry("duplicate id").or_default() += 1;
                    }
                }
                model.watchers.push(Watcher {
                    stream: *stream,
                    create: create.clone(),
                    from,
                    state,
                    canceled_at: None,
                });
                etcd.create(index, *stream, create.clone()).await;
                other.create(index, *stream, create.clone()).await;
            }
            Step::Cancel(index) => {
                let stream = model.watchers[*index].stream;
                // Everything owed arrives first, so nothing can follow the cancel.
                deliver(&mut etcd, &model, &context).await;
                deliver(&mut other, &model, &context).await;
                for side in [&mut etcd, &mut other] {
                    let id = *side
                        .ids
                        .iter()
                        .find(|(_, &i)| i == *index)
                        .map(|((_, id), _)| id)
                        .expect("the watcher has an id");
                    side.streams[stream].cancel(id);
                    let before = side.control[*index].len();
                    let deadline = Instant::now() + DELIVERY_DEADLINE;
                    while side.control[*index].len() == before {
                        if !side.pump(stream, deadline).await {
                            panic!("{}: {context}: no answer to the cancel request", side.name);
                        }
                    }
                }
                model.watchers[*index].canceled_at = Some(model.events.len());
                *counts.entry("cancel").or_default() += 1;
            }
            Step::Progress(stream) => {
                deliver(&mut etcd, &model, &context).await;
                deliver(&mut other, &model, &context).await;
                for side in [&mut etcd, &mut other] {
                    side.streams[*stream].request_progress();
                    let before = side.progress[*stream].len();
                    let deadline = Instant::now() + DELIVERY_DEADLINE;
                    while side.progress[*stream].len() == before {
                        if !side.pump(*stream, deadline).await {
                            panic!(
                                "{}: {context}: no answer to the progress request",
                                side.name
                            );
                        }
                    }
                }
                *counts.entry("progress").or_default() += 1;
            }
        }
        deliver(&mut etcd, &model, &context).await;
        deliver(&mut other, &model, &context).await;
        compare(&etcd, &other, &model, &context);
    }
    println!("seed {seed}: {counts:?}");
}

fn seeds() -> Vec<u64> {
    match std::env::var("RAFTER_WATCH_DIFF_SEED") {
        Ok(s) => vec![s.parse().expect("RAFTER_WATCH_DIFF_SEED is a u64")],
        Err(_) => {
            let base = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .expect("clock after 1970")
                .as_nanos() as u64;
            let n = std::env::var("RAFTER_WATCH_DIFF_SEEDS")
                .ok()
                .and_then(|s| s.parse().ok())
                .unwrap_or(SEEDS);
            (0..n).map(|i| base.wrapping_add(i)).collect()
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn random_watches_match_etcd() {
    let target = Target::from_env();
    for seed in seeds() {
        println!("watch differential seed {seed} against {target:?}");
        run_seed(seed, target).await;
    }
}

#[test]
fn generator_is_deterministic() {
    let steps = |seed| {
        let mut rng = Rng(seed);
        let mut model = Model {
            revision: 10,
            ..Default::default()
        };
        (0..100)
            .map(|_| format!("{:?}", model.generate(&mut rng)))
            .collect::<Vec<_>>()
    };
    assert_eq!(steps(7), steps(7));
    assert_ne!(steps(7), steps(8));
}

#[test]
fn model_matches_ranges_filters_and_start() {
    let watcher = |key: &[u8], end: &[u8], filters: Vec<i32>, from| Watcher {
        stream: 0,
        create: WatchCreateRequest {
            key: key.to_vec(),
            range_end: end.to_vec(),
            filters,
            ..Default::default()
        },
        from,
        state: WatchState::Live,
        canceled_at: None,
    };
    let single = watcher(b"b", b"", vec![], 1);
    assert!(single.matches(1, b"b", false));
    assert!(!single.matches(1, b"ba", false));
    let prefix = watcher(b"b", b"c", vec![], 5);
    assert!(prefix.matches(5, b"bb", true));
    assert!(!prefix.matches(4, b"bb", true), "before its start");
    assert!(!prefix.matches(5, b"c", true));
    let from_key = watcher(b"b", b"\0", vec![FilterType::Noput as i32], 1);
    assert!(from_key.matches(3, b"d", true));
    assert!(!from_key.matches(3, b"d", false), "NOPUT");
    assert!(!from_key.matches(3, b"a", true));
    let no_delete = watcher(b"a", b"", vec![FilterType::Nodelete as i32], 1);
    assert!(!no_delete.matches(3, b"a", true));
    assert!(no_delete.matches(3, b"a", false));
}
