//! Client sessions in the replicated state: what makes a mutation
//! exactly-once and a timed-out request's outcome definite (the Raft
//! thesis §6.3, as LogCabin does it).
//!
//! A session is opened through the log and lives while requests or
//! keep-alives of it keep arriving, measured in cluster time: the sum of
//! the leader's `ClusterClock` entries, never a member's own clock, so every
//! member expires the same sessions at the same entry. A Put, DeleteRange or
//! Txn tagged (session, seq) is applied at most once: its answer is kept
//! until the client says it has it (`acked_below`), and a retry gets the
//! kept answer. `SessionCancel(session, seq)` decides a request's fate: if
//! it was not applied before the cancel, a `cancelled` mark takes its place
//! and the request, should it arrive later, is refused.
//!
//! Tables: `sessions` (id -> [`Session`]) and `session_results` ((id, seq)
//! -> `rafterpb.SessionResult`).

use prost::Message as _;
use rafter_proto::etcdserverpb::response_op::Response as OpResponse;
use rafter_proto::etcdserverpb::ResponseOp;
use rafter_proto::rafterpb::{session_result, ClientTag, SessionResult};
use redb::ReadableTable;

use super::tables::SessionRow;
use super::write::Writer;
use super::{KvRequest, KvResponse, MvccError};

/// What `SessionCancel` (and so `Outcome`) found out about a request.
#[derive(Debug, Clone, PartialEq)]
pub enum RequestOutcome {
    /// The request was applied (or refused by the store) before the cancel:
    /// its original answer.
    Applied(Box<Result<KvResponse, MvccError>>),
    /// The cancel came first: the request never changes the store.
    Cancelled,
    /// The client already acknowledged this request; its answer is gone.
    Acknowledged,
    /// The session is gone (expired or closed): what happened to requests
    /// it had outstanding is no longer known.
    SessionExpired,
}

impl RequestOutcome {
    /// The decision as the request's own answer: its original answer, or
    /// why it has none (cancelled, acknowledged, session gone). The layers
    /// that answer clients take it this way; the simulator, which must tell
    /// "refused" from "forgotten", matches on the variants.
    pub fn into_answer(self) -> Result<KvResponse, MvccError> {
        match self {
            RequestOutcome::Applied(answer) => *answer,
            RequestOutcome::Cancelled => Err(MvccError::Cancelled),
            RequestOutcome::Acknowledged => Err(MvccError::AlreadyAcknowledged),
            RequestOutcome::SessionExpired => Err(MvccError::SessionExpired),
        }
    }
}

/// Whether a request is one sessions make exactly-once (the mutations a
/// client may retry). Other commands ignore a tag.
pub fn is_session_scoped(req: &KvRequest) -> bool {
    matches!(
        req,
        KvRequest::Put(_) | KvRequest::DeleteRange(_) | KvRequest::Txn(_)
    )
}

/// Answers below the acknowledged mark are deleted in runs of this many,
/// not one per request (they are unreachable once acknowledged: the mark
/// is checked first).
const PRUNE_BATCH: u64 = 64;

/// A session as stored. The row is written only when it changes in a way
/// that matters: activity in a new cluster-time instant (cluster time moves
/// only at clock entries), or a run of acknowledged answers deleted. The
/// acknowledgement a request carries is kept in memory until then: an older
/// retry that still finds its kept answer gets that answer, which is right.
#[derive(Debug, Clone, Copy)]
struct Session {
    timeout_ms: u64,
    last_active_ms: u64,
    /// The client has its answer for every seq below this.
    acked_below: u64,
    /// Kept answers below this are deleted.
    pruned_below: u64,
}

impl Session {
    fn from_row(r: SessionRow) -> Self {
        Session {
            timeout_ms: r.0,
            last_active_ms: r.1,
            acked_below: r.2,
            pruned_below: r.3,
        }
    }

    fn row(&self) -> SessionRow {
        (
            self.timeout_ms,
            self.last_active_ms,
            self.acked_below,
            self.pruned_below,
        )
    }
}

impl Writer<'_> {
    fn session(&self, id: u64) -> Result<Option<Session>, MvccError> {
        Ok(self.sessions.get(id)?.map(|v| Session::from_row(v.value())))
    }

    /// Marks the session active now and takes the client's acknowledgement,
    /// deleting acknowledged answers once a run of them has gathered; saves
    /// the row if that changed it.
    fn touch(&mut self, s: &mut Session, id: u64, acked_below: u64) -> Result<(), MvccError> {
        let mut dirty = s.last_active_ms != self.cluster_time_ms;
        s.last_active_ms = self.cluster_time_ms;
        let acked = s.acked_below.max(acked_below);
        if acked >= s.pruned_below + PRUNE_BATCH {
            self.session_results
                .retain_in((id, s.pruned_below)..(id, acked), |_, _| false)?;
            s.pruned_below = acked;
            dirty = true;
        }
        s.acked_below = acked;
        if dirty {
            self.save(id, s)?;
        }
        Ok(())
    }

    fn save(&mut self, id: u64, s: &Session) -> Result<(), MvccError> {
        self.sessions.insert(id, s.row())?;
        Ok(())
    }

    /// The kept answer or mark of (id, seq), if any.
    fn kept(&self, id: u64, seq: u64) -> Result<Option<Kept>, MvccError> {
        match self.session_results.get((id, seq))? {
            Some(bytes) => Ok(Some(decode_result(bytes.value())?)),
            None => Ok(None),
        }
    }

    /// Applies a request tagged with a session: at most once per (session,
    /// seq), keeping its answer for retries.
    pub(super) fn apply_in_session(
        &mut self,
        tag: &ClientTag,
        req: &KvRequest,
    ) -> Result<KvResponse, MvccError> {
        let id = tag.session_id;
        let Some(mut s) = self.session(id)? else {
            return Err(MvccError::SessionExpired);
        };
        self.touch(&mut s, id, tag.acked_below)?;
        if tag.seq < s.acked_below {
            return Err(MvccError::AlreadyAcknowledged);
        }
        match self.kept(id, tag.seq)? {
            Some(Kept::Answer(r)) => return r,
            // Test-only bug: the cancel is ignored.
            Some(Kept::Cancelled)
                if rafter_core::fault::active(rafter_core::fault::Fault::ApplyAfterCancel) =>
            {
                return self.apply_plain(req)
            }
            Some(Kept::Cancelled) => return Err(MvccError::Cancelled),
            None => {}
        }
        let result = self.apply_plain(req);
        if !rafter_core::fault::active(rafter_core::fault::Fault::ForgetSessionResult) {
            if let Some(encoded) = encode_result(&result) {
                self.session_results
                    .insert((id, tag.seq), encoded.as_slice())?;
            }
        }
        result
    }

    pub(super) fn session_open(
        &mut self,
        id: u64,
        timeout_ms: u64,
    ) -> Result<KvResponse, MvccError> {
        self.sessions_touched = true;
        if id == 0 || timeout_ms == 0 {
            return Err(MvccError::SessionExpired);
        }
        if self.session(id)?.is_some() {
            return Err(MvccError::SessionExists);
        }
        let s = Session {
            timeout_ms,
            last_active_ms: self.cluster_time_ms,
            acked_below: 1,
            pruned_below: 1,
        };
        self.save(id, &s)?;
        Ok(KvResponse::SessionOpened { session_id: id })
    }

    pub(super) fn session_keep_alive(&mut self, id: u64) -> Result<KvResponse, MvccError> {
        let Some(mut s) = self.session(id)? else {
            return Err(MvccError::SessionExpired);
        };
        self.touch(&mut s, id, 0)?;
        Ok(KvResponse::SessionAlive)
    }

    pub(super) fn session_close(&mut self, id: u64) -> Result<KvResponse, MvccError> {
        self.sessions_touched = true;
        if self.session(id)?.is_none() {
            return Err(MvccError::SessionExpired);
        }
        self.drop_session(id)?;
        Ok(KvResponse::SessionClosed)
    }

    /// Decides the fate of (session, seq): its answer if it was applied,
    /// otherwise it is cancelled for good.
    pub(super) fn session_cancel(&mut self, id: u64, seq: u64) -> Result<KvResponse, MvccError> {
        let Some(mut s) = self.session(id)? else {
            return Ok(KvResponse::Outcome(RequestOutcome::SessionExpired));
        };
        self.touch(&mut s, id, 0)?;
        if seq < s.acked_below {
            return Ok(KvResponse::Outcome(RequestOutcome::Acknowledged));
        }
        if let Some(kept) = self.kept(id, seq)? {
            return Ok(KvResponse::Outcome(match kept {
                Kept::Answer(r) => RequestOutcome::Applied(Box::new(r)),
                Kept::Cancelled => RequestOutcome::Cancelled,
            }));
        }
        let mark = SessionResult {
            result: Some(session_result::Result::Cancelled(true)),
        }
        .encode_to_vec();
        self.session_results.insert((id, seq), mark.as_slice())?;
        Ok(KvResponse::Outcome(RequestOutcome::Cancelled))
    }

    /// Advances cluster time and expires the sessions idle for longer than
    /// their timeout.
    pub(super) fn cluster_clock(&mut self, elapsed_ms: u64) -> Result<KvResponse, MvccError> {
        self.cluster_time_ms = self.cluster_time_ms.saturating_add(elapsed_ms);
        let now = self.cluster_time_ms;
        let mut expired = Vec::new();
        for item in self.sessions.iter()? {
            let (k, v) = item?;
            let s = Session::from_row(v.value());
            if s.last_active_ms.saturating_add(s.timeout_ms) <= now {
                expired.push(k.value());
            }
        }
        if !expired.is_empty() {
            self.sessions_touched = true;
        }
        for id in expired {
            self.drop_session(id)?;
        }
        Ok(KvResponse::ClockAdvanced)
    }

    fn drop_session(&mut self, id: u64) -> Result<(), MvccError> {
        self.sessions.remove(id)?;
        self.session_results
            .retain_in((id, 0)..=(id, u64::MAX), |_, _| false)?;
        Ok(())
    }
}

/// A kept answer, decoded.
enum Kept {
    Answer(Result<KvResponse, MvccError>),
    Cancelled,
}

/// The answer as kept; `None` for failures that are not answers (a
/// storage error aborts the whole batch before this is reached).
fn encode_result(result: &Result<KvResponse, MvccError>) -> Option<Vec<u8>> {
    let r = match result {
        Ok(KvResponse::Put(p)) => session_result::Result::Response(ResponseOp {
            response: Some(OpResponse::ResponsePut(p.clone())),
        }),
        Ok(KvResponse::DeleteRange(d)) => session_result::Result::Response(ResponseOp {
            response: Some(OpResponse::ResponseDeleteRange(d.clone())),
        }),
        Ok(KvResponse::Txn(t)) => session_result::Result::Response(ResponseOp {
            response: Some(OpResponse::ResponseTxn(t.clone())),
        }),
        Ok(_) => return None,
        Err(e) => session_result::Result::Error(e.code()?),
    };
    Some(SessionResult { result: Some(r) }.encode_to_vec())
}

fn decode_result(bytes: &[u8]) -> Result<Kept, MvccError> {
    let corrupt = || MvccError::Storage("corrupt session result".into());
    let kept = SessionResult::decode(bytes).map_err(|_| corrupt())?;
    Ok(match kept.result.ok_or_else(corrupt)? {
        session_result::Result::Cancelled(_) => Kept::Cancelled,
        session_result::Result::Error(code) => {
            Kept::Answer(Err(MvccError::from_code(code).ok_or_else(corrupt)?))
        }
        session_result::Result::Response(op) => Kept::Answer(Ok(match op.response {
            Some(OpResponse::ResponsePut(p)) => KvResponse::Put(p),
            Some(OpResponse::ResponseDeleteRange(d)) => KvResponse::DeleteRange(d),
            Some(OpResponse::ResponseTxn(t)) => KvResponse::Txn(t),
            _ => return Err(corrupt()),
        })),
    })
}
