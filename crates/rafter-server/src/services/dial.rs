//! `rafterpb.Dial`: the consistency dial (seed 004) with definite outcomes.
//!
//! Get reads linearizably (ReadIndex) or from this member's own state; Set
//! and Swap are proposed in a client session, so they apply at most once
//! and a timed-out one has a definite fate: the core orders a cancel at the
//! deadline and the answer is the request's own result, `cancelled`, or
//! `pending` (then `Outcome` decides it later). Requests without the
//! client's own session tag go in this member's session, which it opens
//! through the log on first use and keeps alive.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rafter_core::Wait;
use rafter_proto::etcdserverpb::compare::{CompareResult, CompareTarget, TargetUnion};
use rafter_proto::etcdserverpb::request_op::Request as Op;
use rafter_proto::etcdserverpb::response_op::Response as OpResponse;
use rafter_proto::etcdserverpb::{
    Compare, PutRequest, RangeRequest, RangeResponse, RequestOp, TxnRequest, TxnResponse,
};
use rafter_proto::rafterpb::dial_server::Dial;
use rafter_proto::rafterpb::*;
use rafter_storage::mvcc::sessions::RequestOutcome;
use rafter_storage::mvcc::KvResponse;
use rafter_storage::{KvRequest, MvccError};
use tonic::{Request, Response, Status};

use crate::error::ApiError;
use crate::handle::NodeHandle;
use crate::local_writes::LocalWrites;

/// How long this member's own session lives without activity (cluster
/// time), and how often it is kept alive.
const MEMBER_SESSION_TIMEOUT: Duration = Duration::from_secs(600);
const MEMBER_SESSION_KEEPALIVE: Duration = Duration::from_secs(60);
/// Bounds on a client's session timeout.
const MIN_SESSION_TIMEOUT_MS: u64 = 1_000;
/// Answers of this member's session kept after delivery, newest first, so
/// `Outcome` can still be asked about a recent request (from another
/// process, e.g. `rafter dial outcome`).
const MEMBER_SESSION_RETAINED_ANSWERS: u64 = 4_096;
const DEFAULT_SESSION_TIMEOUT_MS: u64 = 60_000;
/// Pause before proposing again when there is no leader.
const NO_LEADER_RETRY: Duration = Duration::from_millis(50);

pub struct DialService {
    node: NodeHandle,
    ids: Arc<SessionIds>,
    member_session: Arc<MemberSession>,
    local_writes: Arc<LocalWrites>,
}

/// Session ids this member hands out: member id and start time in the high
/// bits, a counter below, so members never pick the same one.
pub struct SessionIds(AtomicU64);

impl SessionIds {
    pub fn new(base: u64) -> Self {
        SessionIds(AtomicU64::new(base.max(1)))
    }

    fn next(&self) -> u64 {
        self.0.fetch_add(1, Ordering::Relaxed)
    }
}

/// This member's own session, for dial mutations that come without one.
/// The newest [`MEMBER_SESSION_RETAINED_ANSWERS`] answers are kept after
/// delivery, older ones acknowledged (dropped from the store); a pending
/// one stays until the session is replaced, so `Outcome` can still decide
/// it.
#[derive(Default)]
struct MemberSession {
    state: tokio::sync::Mutex<Option<u64>>,
    next_seq: AtomicU64,
    /// Seqs not yet answered definitely.
    outstanding: Mutex<BTreeSet<u64>>,
}

impl MemberSession {
    fn acked_below(&self) -> u64 {
        let next = self.next_seq.load(Ordering::Relaxed);
        let outstanding = self.outstanding.lock().expect("outstanding");
        let retained_from = next.saturating_sub(MEMBER_SESSION_RETAINED_ANSWERS).max(1);
        outstanding
            .first()
            .copied()
            .unwrap_or(next)
            .min(retained_from)
    }
}

impl DialService {
    pub fn new(node: NodeHandle, ids: Arc<SessionIds>, local_writes: Arc<LocalWrites>) -> Self {
        DialService {
            node,
            ids,
            member_session: Arc::new(MemberSession::default()),
            local_writes,
        }
    }

    /// `Set(consistent=false)`: acknowledged once fsynced in this member's
    /// local write queue, whatever the cluster's state; the core orders it
    /// through the log as soon as it knows a leader.
    async fn set_local(&self, key: Vec<u8>, value: Vec<u8>) -> Result<DialResponse, Status> {
        // A local write is applied whatever the alarms when it commits (it
        // was acknowledged), so the space quota is enforced here.
        self.node
            .check_quota(&rafter_storage::KvRequest::Put(
                rafter_proto::etcdserverpb::PutRequest {
                    key: key.clone(),
                    value: value.clone(),
                    ..Default::default()
                },
            ))
            .and_then(|()| self.node.refuse_if_nospace())?;
        let context_revision = self
            .node
            .store
            .state()
            .map_err(ApiError::from)?
            .current_revision;
        let seen = self
            .node
            .store
            .key_stamp(&key)
            .map_err(ApiError::from)?
            .map(|s| rafter_core::hlc::HlcStamp {
                physical_ms: s.physical_ms,
                logical: s.logical,
            });
        let write = self
            .local_writes
            .accept(key, value, context_revision, seen)
            .await?;
        Ok(DialResponse {
            valid: true,
            found: true,
            revision: context_revision,
            member_id: self.node.member_id,
            local: Some(local_info(&write)),
            value: write.value,
            ..Default::default()
        })
    }

    /// Opens a session through the log; retries past an id collision.
    async fn open_session(&self, timeout_ms: u64) -> Result<u64, ApiError> {
        loop {
            let id = self.ids.next();
            let open = KvRequest::SessionOpen(SessionOpen {
                session_id: id,
                timeout_ms,
            });
            match self.node.propose(open).await {
                Ok(KvResponse::SessionOpened { session_id }) => return Ok(session_id),
                Err(ApiError::Kv(MvccError::SessionExists)) => continue,
                Err(e) => return Err(e),
                Ok(other) => return Err(wrong_kind(&other)),
            }
        }
    }

    /// The tag for a mutation: the client's, or the next seq of this
    /// member's session (opened on first use, kept alive from then on).
    async fn tag_for(&self, given: Option<SessionTag>) -> Result<(ClientTag, bool), ApiError> {
        if let Some(t) = given {
            if t.session_id == 0 || t.seq == 0 {
                return Err(ApiError::BadSessionTag(
                    "session_id and seq must be positive".into(),
                ));
            }
            let tag = ClientTag {
                session_id: t.session_id,
                seq: t.seq,
                acked_below: t.acked_below,
            };
            return Ok((tag, false));
        }
        let session_id = self.member_session_id().await?;
        let ms = &self.member_session;
        let seq = ms.next_seq.fetch_add(1, Ordering::Relaxed);
        ms.outstanding.lock().expect("outstanding").insert(seq);
        let tag = ClientTag {
            session_id,
            seq,
            acked_below: ms.acked_below(),
        };
        Ok((tag, true))
    }

    async fn member_session_id(&self) -> Result<u64, ApiError> {
        let mut state = self.member_session.state.lock().await;
        if let Some(id) = *state {
            return Ok(id);
        }
        let id = self
            .open_session(MEMBER_SESSION_TIMEOUT.as_millis() as u64)
            .await?;
        let ms = &self.member_session;
        ms.next_seq.store(1, Ordering::Relaxed);
        ms.outstanding.lock().expect("outstanding").clear();
        *state = Some(id);
        let node = self.node.clone();
        let session = self.member_session.clone();
        tokio::spawn(async move { keep_member_session(node, session, id).await });
        Ok(id)
    }

    /// Marks a member-session request answered for good.
    fn settled(&self, tag: &ClientTag, own: bool, outcome: Outcome) {
        if own && outcome != Outcome::Pending {
            let ms = &self.member_session;
            ms.outstanding.lock().expect("outstanding").remove(&tag.seq);
        }
    }

    async fn mutate(
        &self,
        request: KvRequest,
        session: Option<SessionTag>,
        deadline: Option<Deadline>,
    ) -> Result<DialResponse, Status> {
        let d = deadline.unwrap_or_default();
        let started = Instant::now();
        let budget = match d.timeout_ms {
            0 => self.node.request_timeout,
            ms => Duration::from_millis(ms),
        };
        // This member's own session is opened through the log: a member
        // that knows no leader waits for one like the request would (a
        // cut-off member's blocking Set blocks, as the dial says). Past
        // the deadline nothing was proposed: cancelled, definitely.
        let (tag, own) = loop {
            match self.tag_for(session).await {
                Err(ApiError::NoLeader | ApiError::Timeout)
                    if d.blocking || started.elapsed() + NO_LEADER_RETRY < budget =>
                {
                    tokio::time::sleep(NO_LEADER_RETRY).await;
                }
                Err(ApiError::NoLeader | ApiError::Timeout) => {
                    let mut resp = cancelled();
                    resp.member_id = self.node.member_id;
                    return Ok(resp);
                }
                other => break other?,
            }
        };
        // Without a leader nothing is proposed: wait for one until the
        // deadline (an election takes about an election timeout).
        let result = loop {
            let left = budget.saturating_sub(started.elapsed());
            let wait = if d.blocking {
                Wait::Blocking
            } else {
                self.node.wait_for(false, left.as_millis().max(1) as u64)
            };
            match self
                .node
                .propose_in_session(request.clone(), tag, wait)
                .await
            {
                Err(ApiError::NoLeader) if started.elapsed() + NO_LEADER_RETRY < budget => {
                    tokio::time::sleep(NO_LEADER_RETRY).await;
                }
                // No copy of a fresh seq of this member's session was ever
                // proposed: it never will be.
                Err(ApiError::NoLeader) if own => break Err(ApiError::Kv(MvccError::Cancelled)),
                // The client's seq may have been proposed elsewhere.
                Err(ApiError::NoLeader) => break Err(ApiError::OutcomePending),
                other => break other,
            }
        };
        let mut resp = match result {
            Err(ApiError::Kv(e @ (MvccError::SessionExpired | MvccError::AlreadyAcknowledged))) => {
                if own {
                    // Our own session is gone: open a new one next time.
                    *self.member_session.state.lock().await = None;
                }
                return Err(ApiError::Kv(e).into());
            }
            Err(ApiError::Kv(MvccError::Cancelled)) => cancelled(),
            Err(ApiError::OutcomePending) => DialResponse {
                timeout: true,
                outcome: Outcome::Pending as i32,
                error: "timed out; the outcome is not decided yet: ask Outcome(request_id)".into(),
                ..Default::default()
            },
            Err(e) => {
                self.settled(&tag, own, Outcome::Cancelled);
                return Err(e.into());
            }
            Ok(KvResponse::Outcome(o)) => outcome_response(o)?,
            Ok(answer) => applied_response(&Ok(answer))?,
        };
        self.settled(&tag, own, resp.outcome());
        resp.request_id = Some(RequestId {
            session_id: tag.session_id,
            seq: tag.seq,
        });
        resp.member_id = self.node.member_id;
        resp.leader_hint = self.leader_hint();
        Ok(resp)
    }

    /// The leader's client URL when this member is not the leader (empty
    /// when it leads or knows no leader).
    fn leader_hint(&self) -> String {
        let leader = self.node.status.leader_id.load(Ordering::Relaxed);
        if leader == 0 || leader == self.node.member_id {
            return String::new();
        }
        self.node.leader_client_url().unwrap_or_default()
    }

    /// A read under a deadline: blocking retries until it succeeds.
    async fn get_consistent(&self, key: Vec<u8>, d: Deadline) -> Result<DialResponse, Status> {
        let budget = match d.timeout_ms {
            0 => self.node.request_timeout,
            ms => Duration::from_millis(ms),
        };
        let read = async {
            loop {
                match self.node.read_barrier().await {
                    Ok(()) => return Ok(()),
                    Err(e) if !d.blocking => return Err(e),
                    Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
                }
            }
        };
        let outcome = if d.blocking {
            read.await.map(Some)
        } else {
            match tokio::time::timeout(budget, read).await {
                Ok(r) => r.map(Some),
                Err(_) => Ok(None),
            }
        };
        match outcome {
            Ok(Some(())) => self.get_local(key).map(|mut resp| {
                resp.leader_hint = self.leader_hint();
                resp
            }),
            Ok(None) | Err(ApiError::Timeout) | Err(ApiError::NoLeader) => Ok(DialResponse {
                timeout: true,
                error: "timed out before a read index was known".into(),
                member_id: self.node.member_id,
                ..Default::default()
            }),
            Err(e) => Err(e.into()),
        }
    }

    fn get_local(&self, key: Vec<u8>) -> Result<DialResponse, Status> {
        if let Some(write) = self.local_writes.newest(&key) {
            // Read your writes at this member: its newest queued write to
            // the key is newer than anything the store holds for it.
            let revision = self
                .node
                .store
                .state()
                .map_err(ApiError::from)?
                .current_revision;
            return Ok(DialResponse {
                valid: true,
                found: true,
                revision,
                member_id: self.node.member_id,
                local: Some(local_info(&write)),
                value: write.value,
                ..Default::default()
            });
        }
        let r = self
            .node
            .store
            .range(&RangeRequest {
                key,
                ..Default::default()
            })
            .map_err(ApiError::from)?;
        let mut resp = range_answer(&r);
        resp.valid = true;
        resp.member_id = self.node.member_id;
        Ok(resp)
    }
}

/// Keeps this member's session alive; forgets it once it is gone.
async fn keep_member_session(node: NodeHandle, session: Arc<MemberSession>, id: u64) {
    loop {
        tokio::time::sleep(MEMBER_SESSION_KEEPALIVE).await;
        if *session.state.lock().await != Some(id) {
            return;
        }
        let ka = KvRequest::SessionKeepAlive(SessionKeepAlive { session_id: id });
        if let Err(ApiError::Kv(MvccError::SessionExpired)) = node.propose(ka).await {
            let mut state = session.state.lock().await;
            if *state == Some(id) {
                *state = None;
            }
            return;
        }
    }
}

fn wrong_kind(r: &KvResponse) -> ApiError {
    tracing::error!(?r, "apply returned a response of the wrong kind");
    ApiError::Stopped
}

fn cancelled() -> DialResponse {
    DialResponse {
        timeout: true,
        outcome: Outcome::Cancelled as i32,
        error: "timed out; cancelled: it did not and never will change the store".into(),
        ..Default::default()
    }
}

/// The first key-value of a range answer.
fn range_answer(r: &RangeResponse) -> DialResponse {
    let kv = r.kvs.first();
    DialResponse {
        value: kv.map(|kv| kv.value.clone()).unwrap_or_default(),
        found: kv.is_some(),
        revision: r.header.as_ref().map_or(0, |h| h.revision),
        ..Default::default()
    }
}

/// The answer of an applied (or store-refused) Set or Swap. It carries no
/// value for a write that took effect: a retry is answered from the kept
/// answer, which does not hold what the first copy wrote.
fn applied_response(r: &Result<KvResponse, MvccError>) -> Result<DialResponse, ApiError> {
    let mut resp = match r {
        Ok(KvResponse::Put(p)) => DialResponse {
            valid: true,
            found: true,
            revision: p.header.as_ref().map_or(0, |h| h.revision),
            ..Default::default()
        },
        Ok(KvResponse::Txn(t)) => swap_answer(t),
        Ok(KvResponse::DeleteRange(d)) => DialResponse {
            valid: true,
            revision: d.header.as_ref().map_or(0, |h| h.revision),
            ..Default::default()
        },
        Ok(other) => return Err(wrong_kind(other)),
        Err(e) => DialResponse {
            error: e.to_string(),
            ..Default::default()
        },
    };
    resp.outcome = Outcome::Applied as i32;
    Ok(resp)
}

/// A swap's txn answer: swapped, or the value found instead.
fn swap_answer(t: &TxnResponse) -> DialResponse {
    let revision = t.header.as_ref().map_or(0, |h| h.revision);
    let found = t.responses.iter().find_map(|r| match &r.response {
        Some(OpResponse::ResponseRange(range)) => Some(range_answer(range)),
        _ => None,
    });
    match (t.succeeded, found) {
        (false, Some(found)) => DialResponse { revision, ..found },
        (succeeded, _) => DialResponse {
            valid: succeeded,
            found: succeeded,
            revision,
            ..Default::default()
        },
    }
}

fn outcome_response(o: RequestOutcome) -> Result<DialResponse, ApiError> {
    match o {
        RequestOutcome::Applied(r) => applied_response(&r),
        RequestOutcome::Cancelled => Ok(cancelled()),
        RequestOutcome::Acknowledged => Err(ApiError::Kv(MvccError::AlreadyAcknowledged)),
        RequestOutcome::SessionExpired => Err(ApiError::Kv(MvccError::SessionExpired)),
    }
}

fn local_info(w: &LocalWrite) -> LocalWriteInfo {
    LocalWriteInfo {
        member_id: w.member_id,
        seq: w.seq,
        context_revision: w.context_revision,
        hlc_physical_ms: w.hlc_physical_ms,
        hlc_logical: w.hlc_logical,
    }
}

fn check_key(key: &[u8]) -> Result<(), ApiError> {
    if key.is_empty() {
        return Err(ApiError::Kv(MvccError::EmptyKey));
    }
    Ok(())
}

#[tonic::async_trait]
impl Dial for DialService {
    async fn get(
        &self,
        request: Request<DialGetRequest>,
    ) -> Result<Response<DialResponse>, Status> {
        let r = request.into_inner();
        check_key(&r.key)?;
        let resp = if r.consistent {
            self.get_consistent(r.key, r.deadline.unwrap_or_default())
                .await?
        } else {
            self.get_local(r.key)?
        };
        Ok(Response::new(resp))
    }

    async fn set(
        &self,
        request: Request<DialSetRequest>,
    ) -> Result<Response<DialResponse>, Status> {
        let r = request.into_inner();
        check_key(&r.key)?;
        if r.key.len() + r.value.len() > self.node.max_request_bytes {
            return Err(ApiError::RequestTooLarge.into());
        }
        if !r.consistent {
            return self.set_local(r.key, r.value).await.map(Response::new);
        }
        let put = KvRequest::Put(PutRequest {
            key: r.key,
            value: r.value,
            ..Default::default()
        });
        self.mutate(put, r.session, r.deadline)
            .await
            .map(Response::new)
    }

    async fn swap(
        &self,
        request: Request<DialSwapRequest>,
    ) -> Result<Response<DialResponse>, Status> {
        let r = request.into_inner();
        check_key(&r.key)?;
        if r.new_value.len() + r.old_value.len() > self.node.max_request_bytes {
            return Err(ApiError::RequestTooLarge.into());
        }
        let compare = if r.old_absent {
            Compare {
                result: CompareResult::Equal as i32,
                target: CompareTarget::Create as i32,
                key: r.key.clone(),
                target_union: Some(TargetUnion::CreateRevision(0)),
                range_end: vec![],
            }
        } else {
            Compare {
                result: CompareResult::Equal as i32,
                target: CompareTarget::Value as i32,
                key: r.key.clone(),
                target_union: Some(TargetUnion::Value(r.old_value.clone())),
                range_end: vec![],
            }
        };
        let txn = KvRequest::Txn(TxnRequest {
            compare: vec![compare],
            success: vec![RequestOp {
                request: Some(Op::RequestPut(PutRequest {
                    key: r.key.clone(),
                    value: r.new_value.clone(),
                    ..Default::default()
                })),
            }],
            failure: vec![RequestOp {
                request: Some(Op::RequestRange(RangeRequest {
                    key: r.key,
                    ..Default::default()
                })),
            }],
        });
        self.mutate(txn, r.session, r.deadline)
            .await
            .map(Response::new)
    }

    async fn outcome(
        &self,
        request: Request<DialOutcomeRequest>,
    ) -> Result<Response<DialResponse>, Status> {
        let r = request.into_inner();
        let Some(id) = r.request_id else {
            return Err(ApiError::BadSessionTag("request_id is required".into()).into());
        };
        let d = r.deadline.unwrap_or_default();
        let wait = self.node.wait_for(d.blocking, d.timeout_ms);
        let mut resp = match self.node.decide_outcome(id.session_id, id.seq, wait).await {
            Ok(KvResponse::Outcome(o)) => outcome_response(o)?,
            Ok(other) => return Err(wrong_kind(&other).into()),
            Err(ApiError::Timeout | ApiError::NoLeader) => DialResponse {
                timeout: true,
                outcome: Outcome::Pending as i32,
                error: "no quorum ordered the decision in time".into(),
                ..Default::default()
            },
            Err(e) => return Err(e.into()),
        };
        // The question was answered: the cancel's "timed out" is not this
        // call's.
        if resp.outcome() == Outcome::Cancelled {
            resp.timeout = false;
        }
        resp.request_id = Some(id);
        resp.member_id = self.node.member_id;
        Ok(Response::new(resp))
    }

    async fn session_open(
        &self,
        request: Request<SessionOpenRequest>,
    ) -> Result<Response<SessionOpenResponse>, Status> {
        let timeout_ms = match request.into_inner().timeout_ms {
            0 => DEFAULT_SESSION_TIMEOUT_MS,
            ms => ms.max(MIN_SESSION_TIMEOUT_MS),
        };
        let session_id = self.open_session(timeout_ms).await?;
        Ok(Response::new(SessionOpenResponse {
            session_id,
            timeout_ms,
        }))
    }

    async fn session_keep_alive(
        &self,
        request: Request<SessionKeepAliveRequest>,
    ) -> Result<Response<SessionKeepAliveResponse>, Status> {
        let session_id = request.into_inner().session_id;
        let ka = KvRequest::SessionKeepAlive(SessionKeepAlive { session_id });
        let alive = match self.node.propose(ka).await {
            Ok(_) => true,
            Err(ApiError::Kv(MvccError::SessionExpired)) => false,
            Err(e) => return Err(e.into()),
        };
        Ok(Response::new(SessionKeepAliveResponse { alive }))
    }

    async fn session_close(
        &self,
        request: Request<SessionCloseRequest>,
    ) -> Result<Response<SessionCloseResponse>, Status> {
        let session_id = request.into_inner().session_id;
        let close = KvRequest::SessionClose(SessionClose { session_id });
        match self.node.propose(close).await {
            Ok(_) | Err(ApiError::Kv(MvccError::SessionExpired)) => {
                Ok(Response::new(SessionCloseResponse {}))
            }
            Err(e) => Err(e.into()),
        }
    }
}
