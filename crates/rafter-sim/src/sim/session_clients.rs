//! Simulated clients that make their mutations in a client session, and
//! the checks of exactly-once and definite outcomes.
//!
//! Such a client opens a session through the log, tags each mutation with
//! (session, seq) and a short deadline, and never gives up on one: when the
//! answer is lost (its member crashed, its own timeout passed, or the core
//! could not decide in time) it asks a random member for the outcome until
//! the log decides it. A cancelled op is dropped from the history (it
//! provably did nothing), so an op applied after its cancel shows up as a
//! write nobody made, which the linearizability checker catches. Now and
//! then an answer is "lost" on purpose and the op is sent again with the
//! same tag: the retry must get the same answer (a second application would
//! also break the model's exact revision count).

use std::collections::BTreeSet;

use rafter_proto::rafterpb::ClientTag;

use super::history::OpResult;

/// One client's session.
#[derive(Debug, Default)]
pub struct SessionClient {
    /// The open session (0: none).
    pub id: u64,
    /// The session being opened, and since when.
    pub opening: Option<(u64, u64)>,
    generation: u64,
    next_seq: u64,
    /// Seqs whose outcome the client does not know yet.
    outstanding: BTreeSet<u64>,
}

/// A session op in flight.
#[derive(Debug, Clone)]
pub struct SessionOp {
    pub tag: ClientTag,
    /// The answer that was "lost" before the op was sent again.
    pub first_answer: Option<OpResult>,
    /// Sent a second time (an injected lost answer, or a retry racing a
    /// question about its outcome).
    pub retried: bool,
    /// A question about its outcome is scheduled.
    pub ask_due: bool,
}

impl SessionClient {
    /// Starts opening a new session for `client`; returns its id.
    pub fn start_open(&mut self, client: usize, now_ms: u64) -> u64 {
        self.generation += 1;
        let id = ((client as u64 + 1) << 32) | self.generation;
        self.opening = Some((id, now_ms));
        id
    }

    /// Whether an open should be (re)tried now.
    pub fn should_open(&self, now_ms: u64) -> bool {
        self.id == 0 && self.opening.is_none_or(|(_, since)| now_ms >= since + 500)
    }

    pub fn opened(&mut self, id: u64) {
        if self.opening.is_some_and(|(pending, _)| pending == id) {
            self.id = id;
            self.opening = None;
            self.next_seq = 1;
            self.outstanding.clear();
        }
    }

    /// The tag of the next mutation.
    pub fn next_tag(&mut self) -> ClientTag {
        assert!(self.id != 0, "a session op without a session");
        let seq = self.next_seq;
        self.next_seq += 1;
        self.outstanding.insert(seq);
        ClientTag {
            session_id: self.id,
            seq,
            acked_below: *self.outstanding.first().expect("just inserted"),
        }
    }

    /// The client knows what became of `tag`'s op.
    pub fn settled(&mut self, tag: &ClientTag) {
        if tag.session_id == self.id {
            self.outstanding.remove(&tag.seq);
        }
    }

    /// The session is gone: the next op opens a new one.
    pub fn expired(&mut self, session_id: u64) {
        if self.id == session_id {
            self.id = 0;
        }
    }
}
