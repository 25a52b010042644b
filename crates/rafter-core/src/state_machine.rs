//! The one interface between the member core and the replicated state.
//!
//! The core decides which committed entries are applied, in what order, and
//! who is waiting for each result ([`ApplyBatch`]); a [`StateMachine`] only
//! applies them. Today the state is the MVCC store (implemented in
//! `rafter-storage`); leases, watch events and client sessions join it
//! behind the same trait, so the server (which applies on its own thread)
//! and the simulator (which applies inline) run the same apply code:
//! [`apply_batch`].

use raft::eraftpb::Entry;
use rafter_proto::rafterpb::raft_command::Request as KvRequest;
use rafter_proto::rafterpb::{ClientTag, HlcStamp};

use crate::command::{decode_command, CommandError};
use crate::lease::LeaseChange;
use crate::watch::Event;

/// Identifies one client request for the whole of its life in the core.
/// Chosen by the shell; unique among the requests in flight.
pub type RequestId = u64;

/// One committed entry as the state machine sees it.
pub struct Command<'a> {
    pub index: u64,
    /// `None` for entries with no state effect (a new leader's empty entry).
    pub request: Option<&'a KvRequest>,
    /// The client session tag of a mutation made in a session.
    pub client: Option<&'a ClientTag>,
    /// The proposer's clock stamp of a client mutation.
    pub stamp: Option<&'a HlcStamp>,
}

/// The replicated state.
pub trait StateMachine {
    /// The result of applying one request (errors a client should see
    /// included: they are results, not failures of the state machine).
    type Response;
    /// A failure of the state machine itself (a disk error): the member must
    /// stop.
    type Error: std::fmt::Display;

    /// Applies committed entries in log order, atomically with the last
    /// index, which becomes the applied index. Entries at or below the
    /// applied index are skipped (replay after restart). Returns the applied
    /// index, one result per entry (`None`: skipped, or no request) and the
    /// changes made, for watches.
    fn apply(&self, commands: &[Command<'_>]) -> Result<SmApplied<Self::Response>, Self::Error>;

    /// The whole state as one blob, the index it reflects and the
    /// membership it holds (read together).
    fn snapshot(&self) -> Result<SmSnapshot, Self::Error>;

    /// Replaces the whole state with a snapshot blob; returns its index.
    fn restore(&self, data: &[u8]) -> Result<u64, Self::Error>;
}

/// A point-in-time image of the state machine.
pub struct SmSnapshot {
    pub data: Vec<u8>,
    pub applied_index: u64,
    /// Every membership record in the image (removed members included).
    pub members: Vec<rafter_proto::rafterpb::MemberAttributes>,
}

/// What the state machine reports for one applied batch.
pub struct SmApplied<R> {
    pub applied_index: u64,
    /// One per command.
    pub results: Vec<Option<R>>,
    pub watch: WatchFeed,
    /// Leases granted, revoked or checkpointed, for the lessor.
    pub leases: Vec<LeaseChange>,
    /// Open client sessions after the batch, if the batch changed how many.
    pub sessions_open: Option<u64>,
    /// Local writes the batch applied: (member, seq), in order.
    pub local_dots: Vec<(u64, u64)>,
}

/// The changes of an applied batch as the watch hub takes them
/// ([`crate::watch::WatchHub::on_applied`]).
#[derive(Debug, Clone, Default)]
pub struct WatchFeed {
    /// Every change, with the key's previous value, in revision order.
    pub events: Vec<Event>,
    /// The store's revision after the batch.
    pub current_rev: i64,
    pub compact_rev: i64,
}

/// Committed entries in log order, each with the request (if any) its
/// result answers. Made by the core, applied by [`apply_batch`].
#[derive(Debug, Default)]
pub struct ApplyBatch {
    pub entries: Vec<Entry>,
    /// Parallel to `entries`.
    pub reply_to: Vec<Option<RequestId>>,
}

impl ApplyBatch {
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub fn last_index(&self) -> Option<u64> {
        self.entries.last().map(|e| e.index)
    }

    /// Appends another batch (the shell may merge queued batches into one
    /// state-machine transaction).
    pub fn append(&mut self, mut other: ApplyBatch) {
        self.entries.append(&mut other.entries);
        self.reply_to.append(&mut other.reply_to);
    }
}

/// Why a batch could not be applied; the member must stop.
#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    #[error(transparent)]
    Command(#[from] CommandError),
    #[error("state machine write failed: {0}")]
    StateMachine(String),
}

/// What one applied batch produced: the applied index and the results for
/// the requests waiting on its entries.
pub struct Applied<R> {
    pub applied_index: u64,
    pub replies: Vec<(RequestId, R)>,
    /// The batch's changes, for the watch hub.
    pub watch: WatchFeed,
    /// The batch's lease changes, for the lessor (`Node::on_lease_changes`).
    pub leases: Vec<LeaseChange>,
    /// Open client sessions after the batch, if it changed
    /// (`Node::on_sessions_open`).
    pub sessions_open: Option<u64>,
    /// Local writes the batch applied: (member, seq), in order
    /// (`Node::on_local_writes_applied` for this member's).
    pub local_dots: Vec<(u64, u64)>,
    /// Requests the batch named whose entry produced no result (it carried
    /// no request). The core names a proposal only for the entry carrying
    /// it, so this is empty unless the core is broken (the
    /// `fault-slot-by-index` mutation check).
    pub unanswered: Vec<RequestId>,
}

/// Decodes a batch, applies it in one state-machine transaction and pairs
/// each result with the request the core said it answers.
pub fn apply_batch<SM: StateMachine>(
    sm: &SM,
    batch: &ApplyBatch,
) -> Result<Applied<SM::Response>, ApplyError> {
    debug_assert_eq!(batch.entries.len(), batch.reply_to.len());
    let Some(last) = batch.last_index() else {
        return Err(ApplyError::StateMachine("empty apply batch".into()));
    };
    let mut decoded = Vec::with_capacity(batch.entries.len());
    for e in &batch.entries {
        decoded.push((e.index, decode_command(e.index, &e.data)?));
    }
    let commands: Vec<Command<'_>> = decoded
        .iter()
        .map(|(index, cmd)| Command {
            index: *index,
            request: cmd.as_ref().and_then(|c| c.request.as_ref()),
            client: cmd.as_ref().and_then(|c| c.client.as_ref()),
            stamp: cmd.as_ref().and_then(|c| c.stamp.as_ref()),
        })
        .collect();
    let SmApplied {
        applied_index,
        results,
        watch,
        leases,
        sessions_open,
        local_dots,
    } = sm
        .apply(&commands)
        .map_err(|e| ApplyError::StateMachine(e.to_string()))?;
    assert_eq!(applied_index, last, "the applied index must follow the log");
    let mut replies = Vec::new();
    let mut unanswered = Vec::new();
    for (to, result) in batch.reply_to.iter().zip(results) {
        match (to, result) {
            (Some(to), Some(result)) => replies.push((*to, result)),
            (Some(to), None) => unanswered.push(*to),
            (None, _) => {}
        }
    }
    Ok(Applied {
        applied_index,
        replies,
        watch,
        leases,
        sessions_open,
        local_dots,
        unanswered,
    })
}
