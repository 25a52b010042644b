//! Where unsynced watches catch up: the store's retained history, read in
//! bounded chunks of whole revisions. The hub never reads past its own
//! current revision, so an event it will also be handed by apply is never
//! delivered twice.

use rafter_proto::mvccpb::Event;

/// Events of revisions `from..=through`, in revision order, each with its
/// previous key-value when one was retained.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct HistoryChunk {
    pub events: Vec<Event>,
    /// Every event of every revision up to here is in `events`.
    pub through_rev: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HistoryError {
    /// The revisions asked for were compacted away; the payload is the
    /// store's compaction revision.
    #[error("mvcc: required revision has been compacted")]
    Compacted(i64),
    #[error("reading history failed: {0}")]
    Failed(String),
}

/// The store's history, as the hub reads it.
pub trait EventHistory {
    /// Events of revisions `from_rev..=to_rev`, stopping at the first
    /// revision boundary after `max_events` events (a revision is never
    /// split). Fails with [`HistoryError::Compacted`] when `from_rev` is
    /// below the compaction revision.
    fn events(
        &self,
        from_rev: i64,
        to_rev: i64,
        max_events: usize,
    ) -> Result<HistoryChunk, HistoryError>;
}
