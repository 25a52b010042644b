//! The watch thread: drives the core's [`WatchHub`] (the same hub the
//! simulator drives) off the apply thread. Apply hands each batch's changes
//! over a bounded channel and never waits: when the channel is full it
//! drops them and later tells the hub "the store moved on" (a gap), and
//! every watch catches up from the store's history instead. The thread fans
//! events out to synced watches, runs catch-up steps for unsynced ones,
//! sends periodic progress notifications and wakes the streams that have
//! responses waiting.

use std::collections::HashMap;
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender, TrySendError};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use rafter_core::watch::{StreamId, WatchConfig, WatchHub};
use rafter_core::WatchFeed;
use rafter_storage::MvccStore;
use tokio::sync::Notify;

/// Applied batches that may wait for the watch thread before apply drops
/// them (and the watches catch up from the store).
const FEED_CAPACITY: usize = 1024;
/// How often unsynced watches are caught up when nothing else wakes the
/// thread (etcd syncs every 100 ms).
const SYNC_INTERVAL: Duration = Duration::from_millis(100);
/// Catch-up steps per turn, so applied batches are taken in between.
const MAX_SYNC_STEPS_PER_TURN: usize = 64;

/// What the watch thread is told.
pub enum WatchInput {
    /// One applied batch's changes.
    Applied(WatchFeed),
    /// The store moved past batches the hub was not given (dropped on a
    /// full channel, or replaced by a snapshot); it is now at these
    /// revisions.
    Gap { current_rev: i64, compact_rev: i64 },
    /// A stream drained or a watch was created from a past revision:
    /// catching up may proceed now.
    Wake,
}

/// The hub and the wakers of the streams it serves, shared by the watch
/// thread and the gRPC stream tasks.
pub struct WatchShared {
    hub: Mutex<WatchHub>,
    wakers: Mutex<HashMap<StreamId, Arc<Notify>>>,
    input: SyncSender<WatchInput>,
}

impl WatchShared {
    pub fn hub(&self) -> MutexGuard<'_, WatchHub> {
        self.hub.lock().expect("watch hub lock")
    }

    /// Registers a stream; its notifier fires when responses are waiting.
    pub fn open_stream(&self) -> (StreamId, Arc<Notify>) {
        let id = self.hub().open_stream();
        let notify = Arc::new(Notify::new());
        self.wakers
            .lock()
            .expect("wakers lock")
            .insert(id, notify.clone());
        (id, notify)
    }

    pub fn close_stream(&self, id: StreamId) {
        self.hub().close_stream(id);
        self.wakers.lock().expect("wakers lock").remove(&id);
    }

    /// Asks the watch thread to run catch-up steps soon (never blocks).
    pub fn wake(&self) {
        let _ = self.input.try_send(WatchInput::Wake);
    }

    fn notify_ready(&self, hub: &WatchHub) {
        let wakers = self.wakers.lock().expect("wakers lock");
        for id in hub.streams_with_output() {
            if let Some(n) = wakers.get(&id) {
                n.notify_one();
            }
        }
    }
}

/// The apply thread's end of the feed.
pub struct WatchFeeder {
    input: SyncSender<WatchInput>,
    /// Batches were dropped; the hub must be told before the next one.
    gap: bool,
}

impl WatchFeeder {
    /// Hands an applied batch over without waiting.
    pub fn applied(&mut self, feed: WatchFeed) {
        if self.gap {
            let gap = WatchInput::Gap {
                current_rev: feed.current_rev,
                compact_rev: feed.compact_rev,
            };
            // The gap carries this batch's revision: its events are read
            // from the store with the rest.
            self.gap = self.input.try_send(gap).is_err();
            return;
        }
        match self.input.try_send(WatchInput::Applied(feed)) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) => {
                tracing::debug!("watch feed full; watches catch up from the store");
                self.gap = true;
            }
            Err(TrySendError::Disconnected(_)) => {}
        }
    }

    /// The store was replaced by a snapshot.
    pub fn store_replaced(&mut self, current_rev: i64, compact_rev: i64) {
        let gap = WatchInput::Gap {
            current_rev,
            compact_rev,
        };
        self.gap = self.input.try_send(gap).is_err();
    }
}

/// Starts the watch thread over `store`.
pub fn start(
    store: Arc<MvccStore>,
    config: WatchConfig,
    progress_interval: Duration,
) -> std::io::Result<(Arc<WatchShared>, WatchFeeder)> {
    let state = store
        .state()
        .map_err(|e| std::io::Error::other(e.to_string()))?;
    let (tx, rx) = std::sync::mpsc::sync_channel(FEED_CAPACITY);
    let shared = Arc::new(WatchShared {
        hub: Mutex::new(WatchHub::new(
            config,
            state.current_revision,
            state.compact_revision,
        )),
        wakers: Mutex::new(HashMap::new()),
        input: tx.clone(),
    });
    let thread_shared = shared.clone();
    std::thread::Builder::new()
        .name("rafter-watch".into())
        .spawn(move || run(&thread_shared, &store, rx, progress_interval))?;
    Ok((
        shared,
        WatchFeeder {
            input: tx,
            gap: false,
        },
    ))
}

fn run(shared: &WatchShared, store: &MvccStore, rx: Receiver<WatchInput>, progress: Duration) {
    let mut next_progress = Instant::now() + progress;
    loop {
        let wait = SYNC_INTERVAL.min(next_progress.saturating_duration_since(Instant::now()));
        let first = match rx.recv_timeout(wait) {
            Ok(input) => Some(input),
            Err(RecvTimeoutError::Timeout) => None,
            // Unreachable while `shared` holds a sender; the thread lives
            // as long as the process.
            Err(RecvTimeoutError::Disconnected) => return,
        };
        let mut hub = shared.hub();
        for input in first.into_iter().chain(rx.try_iter().take(FEED_CAPACITY)) {
            match input {
                WatchInput::Applied(feed) => {
                    hub.on_applied(&feed.events, feed.current_rev, feed.compact_rev)
                }
                WatchInput::Gap {
                    current_rev,
                    compact_rev,
                } => hub.on_store_replaced(current_rev, compact_rev),
                WatchInput::Wake => {}
            }
        }
        for _ in 0..MAX_SYNC_STEPS_PER_TURN {
            match hub.sync(store) {
                Ok(true) => {}
                Ok(false) => break,
                Err(e) => {
                    tracing::error!("watch catch-up failed: {e}");
                    break;
                }
            }
        }
        if Instant::now() >= next_progress {
            hub.progress_tick();
            next_progress = Instant::now() + progress;
        }
        shared.notify_ready(&hub);
    }
}
