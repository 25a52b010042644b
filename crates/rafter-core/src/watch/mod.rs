//! Watch, sans-I/O: etcd's watchable store and watch streams as one
//! deterministic hub ([`WatchHub`]) that the server's watch thread and the
//! simulator's members drive alike.
//!
//! Events come out of apply (the state machine reports every change with its
//! previous value); the hub fans them out to the watches that are caught up
//! ("synced") and lets the others ("unsynced": new watches from a past
//! revision, and victims whose stream stopped draining) catch up from the
//! store's history ([`EventHistory`]) in bounded chunks. Per stream the hub
//! holds at most `max_outbox_bytes` of responses plus one chunk, so a slow
//! watcher costs bounded memory and never blocks apply or other streams.

mod fragment;
mod history;
mod hub;
mod range;

pub use fragment::fragment;
pub use history::{EventHistory, HistoryChunk, HistoryError};
pub use hub::{StreamId, WatchConfig, WatchHub};
pub use range::{WatchRange, WatchRangeError};

/// etcd's event type, re-exported for the hub's users.
pub use rafter_proto::mvccpb::Event;

/// The revision an event belongs to (a delete's tombstone carries it too).
pub fn event_revision(event: &Event) -> i64 {
    event.kv.as_ref().map_or(0, |kv| kv.mod_revision)
}

#[cfg(test)]
mod tests;
