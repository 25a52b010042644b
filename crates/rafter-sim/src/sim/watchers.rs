//! Simulated watch clients and the check of etcd's watch guarantees.
//!
//! Each watcher keeps one watch open on some member's hub (the core's
//! `WatchHub`, fed by that member's apply), reads its responses at a
//! random, sometimes very slow pace (so outboxes fill and watches fall
//! behind and catch up from the store), asks for progress now and then, and
//! when its member crashes resumes on another member from the last revision
//! it fully received + 1, as a client library does.
//!
//! At the end, every watcher's received events must be exactly the store's
//! history for its range from its first start revision on: ordered, unique,
//! with no gap (reliable and resumable across members); no response may
//! split a revision unless it is a fragment (atomic); and a progress
//! notification at revision R must come after every event up to R
//! (bookmarkable).

use rafter_core::watch::{event_revision, StreamId, WatchRange};
use rafter_proto::etcdserverpb::watch_request::RequestUnion;
use rafter_proto::etcdserverpb::{
    WatchCreateRequest, WatchProgressRequest, WatchRequest, WatchResponse,
};
use rafter_proto::mvccpb::Event;
use rafter_storage::MvccStore;

use super::rng::Rng;

/// The watch id every simulated watcher asks for on its own stream.
const WATCH_ID: i64 = 1;

/// Where a watcher's watch lives now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Connection {
    pub member: usize,
    pub incarnation: u64,
    pub stream: StreamId,
}

pub struct SimWatcher {
    pub name: usize,
    key: Vec<u8>,
    range_end: Vec<u8>,
    range: WatchRange,
    prev_kv: bool,
    fragment: bool,
    pub connection: Option<Connection>,
    /// The revision the first watch started at.
    first_rev: i64,
    /// Where a resumed watch starts: the last fully received revision + 1.
    resume_rev: i64,
    /// Every event received, in order.
    received: Vec<Event>,
    /// Events of a fragmented response not yet complete.
    fragments: Vec<Event>,
    /// The revision the last complete response ended with.
    last_complete_rev: i64,
    /// Progress notifications: (revision, events received when it came).
    progress: Vec<(i64, usize)>,
    problems: Vec<String>,
}

impl SimWatcher {
    /// A watcher over keys `k0..k{keys}` with a random range and options.
    pub fn random(name: usize, rng: &mut Rng, keys: u8) -> SimWatcher {
        let k = |n: u64| format!("k{n}").into_bytes();
        let (key, range_end) = match rng.below(4) {
            0 => (k(rng.below(keys as u64)), vec![]),
            1 => (b"k".to_vec(), b"l".to_vec()),
            2 => (k(rng.below(keys as u64)), vec![0]),
            _ => (k(0), k(rng.between(1, keys as u64))),
        };
        let range = WatchRange::new(&key, &range_end).expect("a valid range");
        let first_rev = if rng.chance(500) {
            0
        } else {
            rng.between(1, 20) as i64
        };
        SimWatcher {
            name,
            key,
            range_end,
            range,
            prev_kv: rng.chance(500),
            fragment: rng.chance(300),
            connection: None,
            first_rev,
            resume_rev: first_rev,
            received: Vec::new(),
            fragments: Vec::new(),
            last_complete_rev: 0,
            progress: Vec::new(),
            problems: Vec::new(),
        }
    }

    /// The request that (re)creates the watch.
    pub fn create_request(&self) -> WatchRequest {
        WatchRequest {
            request_union: Some(RequestUnion::CreateRequest(WatchCreateRequest {
                key: self.key.clone(),
                range_end: self.range_end.clone(),
                start_revision: self.resume_rev,
                prev_kv: self.prev_kv,
                fragment: self.fragment,
                watch_id: WATCH_ID,
                ..Default::default()
            })),
        }
    }

    pub fn progress_request() -> WatchRequest {
        WatchRequest {
            request_union: Some(RequestUnion::ProgressRequest(WatchProgressRequest {})),
        }
    }

    /// A watch "from now" learns where it started from the created header.
    fn note(&mut self, problem: String) {
        if self.problems.len() < 5 {
            self.problems
                .push(format!("watcher w{}: {problem}", self.name));
        }
    }

    /// One response read from the stream.
    pub fn receive(&mut self, resp: WatchResponse) {
        let revision = resp.header.as_ref().map_or(0, |h| h.revision);
        if resp.created {
            if resp.canceled {
                self.note(format!("watch refused: {}", resp.cancel_reason));
            }
            if self.resume_rev == 0 {
                self.resume_rev = revision + 1;
                self.first_rev = revision + 1;
            }
            return;
        }
        if resp.canceled {
            self.note(format!(
                "watch canceled (compact revision {}, reason {:?})",
                resp.compact_revision, resp.cancel_reason
            ));
            return;
        }
        if resp.events.is_empty() {
            // A progress notification: everything up to `revision` must be
            // here already.
            self.progress.push((revision, self.received.len()));
            if revision >= self.resume_rev {
                self.resume_rev = revision + 1;
            }
            return;
        }
        let first = event_revision(&resp.events[0]);
        if self.fragments.is_empty() && first <= self.last_complete_rev {
            self.note(format!(
                "a response starts at revision {first}, not after the previous response's {} (duplicate, reordered or split revision)",
                self.last_complete_rev
            ));
        }
        self.fragments.extend(resp.events);
        if resp.fragment {
            return;
        }
        let events = std::mem::take(&mut self.fragments);
        self.last_complete_rev = events.last().map_or(0, event_revision);
        self.resume_rev = self.last_complete_rev + 1;
        self.received.extend(events);
    }

    /// The stream broke (its member crashed): fragments of an incomplete
    /// response are dropped, as a client drops them.
    pub fn disconnected(&mut self) {
        self.connection = None;
        self.fragments.clear();
    }

    /// A line for the trace: what this watcher saw.
    pub fn summary(&self) -> String {
        format!(
            "w{} from revision {}: {} events, {} progress notifications",
            self.name,
            self.first_rev,
            self.received.len(),
            self.progress.len()
        )
    }

    /// Checks the watcher against the store's full history (`truth`, from
    /// revision 1, with previous values) and returns its problems. When
    /// `caught_up` the watcher must have every event of its range.
    pub fn check(mut self, truth: &[Event], caught_up: bool) -> Vec<String> {
        if self.first_rev == 0 {
            // Never created (no member was up to take it).
            return self.problems;
        }
        let expected: Vec<Event> = truth
            .iter()
            .filter(|e| event_revision(e) >= self.first_rev)
            .filter(|e| e.kv.as_ref().is_some_and(|kv| self.range.contains(&kv.key)))
            .map(|e| {
                let mut e = e.clone();
                if !self.prev_kv {
                    e.prev_kv = None;
                }
                e
            })
            .collect();
        let agree = self
            .received
            .iter()
            .zip(&expected)
            .take_while(|(a, b)| a == b)
            .count();
        if agree < self.received.len() {
            let got = &self.received[agree];
            let wanted = expected.get(agree);
            self.note(format!(
                "event #{agree} is {} but the history has {} (lost, duplicated or wrong event)",
                describe(Some(got)),
                describe(wanted)
            ));
        } else if caught_up && agree < expected.len() {
            self.note(format!(
                "received {} of {} events after settling; first missing {}",
                agree,
                expected.len(),
                describe(expected.get(agree))
            ));
        }
        for &(rev, count) in &self.progress {
            let due = expected.iter().filter(|e| event_revision(e) <= rev).count();
            if count < due {
                self.note(format!(
                    "progress at revision {rev} came after {count} events, but {due} events are at or below it"
                ));
                break;
            }
        }
        self.problems
    }
}

fn describe(e: Option<&Event>) -> String {
    match e.and_then(|e| e.kv.as_ref().map(|kv| (e.r#type, kv))) {
        None => "nothing".into(),
        Some((t, kv)) => format!(
            "{} {} at revision {}",
            if t == 0 { "put" } else { "delete" },
            String::from_utf8_lossy(&kv.key),
            kv.mod_revision
        ),
    }
}

/// The whole history of a store, with previous values.
pub fn full_history(store: &MvccStore) -> Vec<Event> {
    let current = store.state().map_or(1, |s| s.current_revision);
    store
        .history(1, current, usize::MAX)
        .map(|c| c.events)
        .unwrap_or_default()
}
