//! A watch-fed cache of one key prefix whose reads say how fresh they must
//! be (seed 000).
//!
//! Kubernetes' API servers answer from caches like this one; one whose
//! link to etcd was cut kept serving old state, and a node that restarted
//! recreated a pod that had moved (Kubernetes issue 59848). A
//! [`Freshness::Consistent`] read here cannot do that: it first learns the
//! cluster's current revision with a linearizable request (one request
//! shared by every read waiting at that moment), then waits until the copy
//! has seen that revision, asking the server for progress notifications
//! while no events arrive. Past its deadline it returns an error, never a
//! stale answer. That is Kubernetes' later fix (KEP-2340), for every
//! program that caches etcd state.
//!
//! The cache uses only the etcd API (Range, Watch, Status), so it works
//! against etcd as well as Rafter.

mod fetch;
mod state;
mod watcher;

use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rafter_proto::etcdserverpb::{RangeRequest, RangeResponse};
use rafter_proto::mvccpb::{Event, KeyValue};
use tokio::sync::{watch, Notify};
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::answer::Wait;
use crate::client::Client;
use crate::error::{Error, Result};
use fetch::Fetcher;
use state::{OutOfOrder, State};

/// The test-only bug `fault-cache-no-catch-up`: consistent reads answer
/// from the copy without waiting for it to catch up (the linearizability
/// test of the cache must catch it). Compiled in only with the `faults`
/// feature, on only with `RAFTER_FAULT=fault-cache-no-catch-up` (as
/// rafter-core's test-only bugs).
pub fn fault_no_catch_up() -> bool {
    #[cfg(feature = "faults")]
    {
        static ON: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
        *ON.get_or_init(|| {
            std::env::var("RAFTER_FAULT").is_ok_and(|f| f == "fault-cache-no-catch-up")
        })
    }
    #[cfg(not(feature = "faults"))]
    {
        false
    }
}

/// How fresh a read must be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Freshness {
    /// Whatever the copy holds now, with its revision: no request, and no
    /// bound on how old it is (what a plain watch-fed cache serves).
    Stale,
    /// Linearizable: it reflects every write that finished before the read
    /// began. An error if that cannot be shown within the duration.
    Consistent(Duration),
}

/// Where an answer came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// The cache's copy.
    Cache,
    /// A linearizable Range on the server: a consistent read the copy had
    /// not caught up with, on a server whose progress notifications are
    /// not ordered with its events (etcd before 3.4.31 / 3.5.13).
    Server,
}

/// An answer and the store revision it reflects.
#[derive(Debug, Clone, PartialEq)]
pub struct Cached<T> {
    pub value: T,
    pub revision: i64,
    pub source: Source,
}

/// Timeouts and pacing of a cache.
#[derive(Debug, Clone)]
pub struct CacheOptions {
    /// Bound on one list page, revision request or stream set-up,
    /// retries across endpoints included.
    pub request_timeout: Duration,
    /// While a consistent read waits and no response arrives, a progress
    /// notification is requested this often.
    pub progress_interval: Duration,
    /// A watch that makes no progress for this long while a read waits for
    /// a newer revision is abandoned and resumed on the next endpoint.
    pub stall_timeout: Duration,
    /// First pause after a failed stream; doubles up to a second.
    pub retry_pause: Duration,
}

impl Default for CacheOptions {
    fn default() -> Self {
        CacheOptions {
            request_timeout: Duration::from_secs(5),
            progress_interval: Duration::from_millis(50),
            stall_timeout: Duration::from_secs(1),
            retry_pause: Duration::from_millis(50),
        }
    }
}

/// What the cache did so far.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CacheStats {
    /// The copy's revision and size now.
    pub revision: i64,
    pub keys: usize,
    /// Lists taken (the first one, and one after each compaction).
    pub lists: u64,
    /// Watch streams opened.
    pub watches: u64,
    /// Streams abandoned because they left a waiting read behind.
    pub stalls: u64,
    pub progress_requests: u64,
    /// Linearizable requests sent to learn the current revision.
    pub revision_requests: u64,
    /// Consistent reads answered by the server (see [`Source::Server`]).
    pub server_reads: u64,
}

#[derive(Default)]
struct Counters {
    lists: AtomicU64,
    watches: AtomicU64,
    stalls: AtomicU64,
    progress_requests: AtomicU64,
    server_reads: AtomicU64,
}

/// What the reads and the background task share.
struct Shared {
    /// The watched range: `[key, range_end)`.
    key: Vec<u8>,
    range_end: Vec<u8>,
    state: Mutex<State>,
    /// The copy's revision, for reads waiting to catch up.
    revision: watch::Sender<i64>,
    /// The newest revision a read waits for.
    wanted: AtomicI64,
    /// Wakes the task when a read starts waiting.
    wake: Notify,
    /// Whether the current stream's server orders progress notifications
    /// after events (see `watcher::progress_is_ordered`).
    progress_ordered: AtomicBool,
    counters: Counters,
}

impl Shared {
    fn revision(&self) -> i64 {
        *self.revision.borrow()
    }

    fn install(&self, kvs: Vec<KeyValue>, revision: i64) {
        let mut state = self.state.lock().expect("cache state");
        state.replace(kvs, revision);
        self.revision.send_replace(revision);
    }

    fn apply(&self, events: &[Event]) -> std::result::Result<(), OutOfOrder> {
        let mut state = self.state.lock().expect("cache state");
        let revision = state.apply(events)?;
        self.revision.send_replace(revision);
        Ok(())
    }

    fn progress(&self, revision: i64) {
        let mut state = self.state.lock().expect("cache state");
        if state.progress(revision) {
            self.revision.send_replace(revision);
        }
    }
}

/// Aborts the background task when the last handle goes.
struct Inner {
    client: Client,
    shared: Arc<Shared>,
    fetcher: Arc<Fetcher>,
    options: CacheOptions,
    task: JoinHandle<()>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A cache of every key under one prefix (cheap to clone; the copy is
/// shared).
#[derive(Clone)]
pub struct Cache {
    inner: Arc<Inner>,
}

/// The end of the range of keys starting with `prefix` (etcd's rule: the
/// last byte below 0xff incremented, what follows it dropped; `\0`, every
/// key from `prefix` on, if there is none).
fn prefix_end(prefix: &[u8]) -> Vec<u8> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return end;
        }
    }
    vec![0]
}

/// What a consistent read found after learning the cluster's revision.
enum CaughtUp {
    Yes,
    /// The server's progress notifications cannot be trusted and no events
    /// arrived: ask the server.
    AskServer,
}

impl Cache {
    /// Lists every key under `prefix` (an empty prefix: every key) and
    /// keeps the copy current in the background until the last handle is
    /// dropped.
    pub async fn start(
        client: &Client,
        prefix: impl Into<Vec<u8>>,
        options: CacheOptions,
    ) -> Result<Cache> {
        let prefix = prefix.into();
        let (key, range_end) = if prefix.is_empty() {
            (vec![0], vec![0])
        } else {
            let end = prefix_end(&prefix);
            (prefix, end)
        };
        let (revision, _) = watch::channel(0);
        let shared = Arc::new(Shared {
            key: key.clone(),
            range_end,
            state: Mutex::new(State::default()),
            revision,
            wanted: AtomicI64::new(0),
            wake: Notify::new(),
            progress_ordered: AtomicBool::new(false),
            counters: Counters::default(),
        });
        watcher::list(&shared, client, options.request_timeout).await?;
        let task = tokio::spawn(watcher::run(
            Arc::clone(&shared),
            client.clone(),
            options.clone(),
        ));
        Ok(Cache {
            inner: Arc::new(Inner {
                client: client.clone(),
                shared,
                fetcher: Fetcher::new(client.clone(), key, options.request_timeout),
                options,
                task,
            }),
        })
    }

    /// The revision the copy holds now.
    pub fn revision(&self) -> i64 {
        self.inner.shared.revision()
    }

    pub fn stats(&self) -> CacheStats {
        let shared = &self.inner.shared;
        let c = &shared.counters;
        let keys = shared.state.lock().expect("cache state").len();
        CacheStats {
            revision: shared.revision(),
            keys,
            lists: c.lists.load(Ordering::Relaxed),
            watches: c.watches.load(Ordering::Relaxed),
            stalls: c.stalls.load(Ordering::Relaxed),
            progress_requests: c.progress_requests.load(Ordering::Relaxed),
            revision_requests: self.inner.fetcher.requests(),
            server_reads: c.server_reads.load(Ordering::Relaxed),
        }
    }

    /// `key`'s entry (`None`: absent), which must lie under the prefix.
    pub async fn get(&self, key: &[u8], freshness: Freshness) -> Result<Cached<Option<KeyValue>>> {
        self.check_covered(key)?;
        let request = RangeRequest {
            key: key.to_vec(),
            ..Default::default()
        };
        self.read(
            freshness,
            |s| s.get(key),
            request,
            |r| r.kvs.into_iter().next(),
        )
        .await
    }

    /// Every entry whose key starts with `prefix` (which must lie under
    /// the cache's prefix), in key order.
    pub async fn list(&self, prefix: &[u8], freshness: Freshness) -> Result<Cached<Vec<KeyValue>>> {
        self.check_covered(prefix)?;
        let (key, range_end) = if prefix.is_empty() {
            (vec![0], vec![0])
        } else {
            (prefix.to_vec(), prefix_end(prefix))
        };
        let request = RangeRequest {
            key,
            range_end,
            ..Default::default()
        };
        self.read(freshness, |s| s.list(prefix), request, |r| r.kvs)
            .await
    }

    fn check_covered(&self, key: &[u8]) -> Result<()> {
        let shared = &self.inner.shared;
        let inside = key >= shared.key.as_slice()
            && (shared.range_end == [0] || key < shared.range_end.as_slice());
        if inside {
            Ok(())
        } else {
            Err(Error::InvalidArgument(format!(
                "key {:?} is outside the cached range",
                String::from_utf8_lossy(key)
            )))
        }
    }

    async fn read<T>(
        &self,
        freshness: Freshness,
        from_copy: impl Fn(&State) -> T,
        request: RangeRequest,
        from_server: impl FnOnce(RangeResponse) -> T,
    ) -> Result<Cached<T>> {
        let timeout = match freshness {
            Freshness::Stale => {
                let state = self.inner.shared.state.lock().expect("cache state");
                return Ok(Cached {
                    value: from_copy(&state),
                    revision: state.revision(),
                    source: Source::Cache,
                });
            }
            Freshness::Consistent(timeout) => timeout,
        };
        let deadline = Instant::now() + timeout;
        let wanted = self.inner.fetcher.current_revision(deadline).await?;
        loop {
            match self.catch_up(wanted, deadline).await? {
                CaughtUp::Yes => {
                    let state = self.inner.shared.state.lock().expect("cache state");
                    // A re-list may have replaced the copy since; it is
                    // never older than a revision the cluster reported.
                    if state.revision() >= wanted || fault_no_catch_up() {
                        return Ok(Cached {
                            value: from_copy(&state),
                            revision: state.revision(),
                            source: Source::Cache,
                        });
                    }
                }
                CaughtUp::AskServer => {
                    let left = deadline.saturating_duration_since(Instant::now());
                    let response = self.inner.client.range(&request, Wait::For(left)).await?;
                    self.inner
                        .shared
                        .counters
                        .server_reads
                        .fetch_add(1, Ordering::Relaxed);
                    let revision = response.header.as_ref().map_or(0, |h| h.revision);
                    return Ok(Cached {
                        value: from_server(response),
                        revision,
                        source: Source::Server,
                    });
                }
            }
        }
    }

    /// Waits until the copy holds `wanted` (or, against a server whose
    /// progress notifications cannot be trusted, until no event arrived
    /// for a progress interval).
    async fn catch_up(&self, wanted: i64, deadline: Instant) -> Result<CaughtUp> {
        if fault_no_catch_up() {
            return Ok(CaughtUp::Yes);
        }
        let shared = &self.inner.shared;
        let mut revision = shared.revision.subscribe();
        if *revision.borrow_and_update() >= wanted {
            return Ok(CaughtUp::Yes);
        }
        shared.wanted.fetch_max(wanted, Ordering::Relaxed);
        shared.wake.notify_one();
        let ask_server_at = Instant::now() + self.inner.options.progress_interval;
        loop {
            let ordered = shared.progress_ordered.load(Ordering::Relaxed);
            let until = if ordered {
                deadline
            } else {
                deadline.min(ask_server_at)
            };
            match tokio::time::timeout_at(until, revision.changed()).await {
                Ok(Ok(())) => {
                    if *revision.borrow_and_update() >= wanted {
                        return Ok(CaughtUp::Yes);
                    }
                }
                Ok(Err(_)) => return Err(Error::Unavailable("cache: the copy was dropped".into())),
                Err(_) if !ordered && Instant::now() < deadline => return Ok(CaughtUp::AskServer),
                Err(_) => {
                    return Err(Error::DeadlineExceeded(format!(
                        "cache: the copy is at revision {}, the cluster was at {wanted}: \
                         no answer rather than a stale one",
                        shared.revision()
                    )))
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::prefix_end;

    #[test]
    fn prefix_ends_follow_etcd() {
        assert_eq!(prefix_end(b"a/"), b"a0");
        assert_eq!(prefix_end(b"a\xff"), b"b");
        assert_eq!(prefix_end(b"\xff\xff"), vec![0]);
    }
}
