//! The `rafterpb.Dial` calls (Get, Set, Swap, Outcome), shared by
//! `Client` (the member tags mutations in its own session) and `Session`
//! (the client's tag, the same request id on every retry). A deadline that
//! passes with no member's answer still yields a definite `Answer`.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use rafter_proto::rafterpb::dial_client::DialClient;
use rafter_proto::rafterpb::{
    Deadline, DialGetRequest, DialOutcomeRequest, DialSetRequest, DialSwapRequest, SessionTag,
};
use tokio::time::Instant;
use tonic::transport::Channel;

use crate::answer::{Answer, Consistency, Outcome, RequestId, Wait};
use crate::error::{Error, Result};
use crate::seqs::Seqs;
use crate::transport::{AttemptBound, Retry, Transport, MAX_MESSAGE_BYTES};

/// Where a session mutation's tag comes from: its fixed request id, and
/// the session's seqs for an `acked_below` fresh at every attempt.
pub(crate) struct Tag {
    pub(crate) id: RequestId,
    pub(crate) seqs: Arc<Mutex<Seqs>>,
}

impl Tag {
    pub(crate) fn session_tag(&self) -> SessionTag {
        SessionTag {
            session_id: self.id.session_id,
            seq: self.id.seq,
            acked_below: self.seqs.lock().expect("seqs").acked_below(),
        }
    }
}

pub(crate) fn dial(ch: Channel) -> DialClient<Channel> {
    DialClient::new(ch).max_decoding_message_size(MAX_MESSAGE_BYTES)
}

/// The client-side deadline of a wait.
pub(crate) fn deadline(wait: Wait) -> Option<Instant> {
    match wait {
        Wait::Blocking => None,
        Wait::For(d) => Some(Instant::now() + d),
    }
}

/// The member's deadline for one attempt, with what is left of the call's.
fn proto_deadline(left: Option<Duration>) -> Deadline {
    match left {
        None => Deadline {
            blocking: true,
            timeout_ms: 0,
        },
        Some(left) => Deadline {
            blocking: false,
            timeout_ms: (left.as_millis() as u64).max(1),
        },
    }
}

/// Runs a dial mutation in attempts of at most `slice` of the call's
/// deadline: a cancelled attempt (definitely not applied) is sent again,
/// and with `resend_pending` a pending one too (same request id), while
/// time is left. `send` gets the attempt's wait and whether to use a new
/// request id.
pub(crate) async fn in_slices<F, Fut>(
    wait: Wait,
    slice: Duration,
    resend_pending: bool,
    mut send: F,
) -> Result<Answer>
where
    F: FnMut(Wait, bool) -> Fut,
    Fut: std::future::Future<Output = Result<Answer>>,
{
    let deadline = deadline(wait);
    let mut new_id = false;
    loop {
        let attempt = match deadline {
            None => Wait::Blocking,
            Some(d) => Wait::For(d.saturating_duration_since(Instant::now()).min(slice)),
        };
        let answer = send(attempt, new_id).await?;
        let time_left = deadline.is_none_or(|d| Instant::now() < d);
        match (answer.outcome, time_left) {
            (Outcome::Cancelled, true) => new_id = true,
            (Outcome::Pending, true) if resend_pending => new_id = false,
            _ => return Ok(answer),
        }
    }
}

pub(crate) async fn get(
    t: &Transport,
    key: &[u8],
    consistency: Consistency,
    wait: Wait,
) -> Result<Answer> {
    let r = t
        .call(
            deadline(wait),
            Retry::Idempotent,
            AttemptBound::Deadline,
            |ch, left| {
                let req = DialGetRequest {
                    key: key.to_vec(),
                    consistent: consistency == Consistency::Consistent,
                    deadline: Some(proto_deadline(left)),
                };
                async move { dial(ch).get(req).await }
            },
        )
        .await;
    match r {
        Ok(resp) => {
            t.prefer(&resp.leader_hint);
            Ok(resp.into())
        }
        Err(Error::DeadlineExceeded(_)) => Ok(Answer::client_timeout(None)),
        Err(e) => Err(e),
    }
}

/// What a mutation's call gave, as an answer: a deadline with no member's
/// answer is "pending" for a tagged request (it may have been applied) and
/// "cancelled" for an untagged one (only refused attempts are retried, so
/// none reached a state machine).
fn mutation_answer(
    t: &Transport,
    r: Result<rafter_proto::rafterpb::DialResponse>,
    tag: Option<&Tag>,
) -> Result<Answer> {
    match r {
        Ok(resp) => {
            t.prefer(&resp.leader_hint);
            Ok(resp.into())
        }
        Err(Error::DeadlineExceeded(why)) => match tag {
            Some(tag) => Ok(Answer::client_timeout(Some(tag.id))),
            None => Ok(Answer {
                outcome: Outcome::Cancelled,
                error: format!("timed out; no member accepted the request: {why}"),
                ..Answer::client_timeout(None)
            }),
        },
        Err(e) => Err(e),
    }
}

fn retry_for(tag: Option<&Tag>) -> Retry {
    if tag.is_some() {
        Retry::Idempotent
    } else {
        Retry::IfNotSent
    }
}

pub(crate) async fn set(
    t: &Transport,
    key: &[u8],
    value: &[u8],
    wait: Wait,
    tag: Option<&Tag>,
) -> Result<Answer> {
    let r = t
        .call(
            deadline(wait),
            retry_for(tag),
            AttemptBound::Deadline,
            |ch, left| {
                let req = DialSetRequest {
                    key: key.to_vec(),
                    value: value.to_vec(),
                    consistent: true,
                    deadline: Some(proto_deadline(left)),
                    session: tag.map(Tag::session_tag),
                };
                async move { dial(ch).set(req).await }
            },
        )
        .await;
    mutation_answer(t, r, tag)
}

/// `Set(consistent=false)`: sent as is, so the server's answer (today:
/// not implemented) reaches the caller.
pub(crate) async fn set_local(
    t: &Transport,
    key: &[u8],
    value: &[u8],
    wait: Wait,
) -> Result<Answer> {
    let r = t
        .call(
            deadline(wait),
            Retry::IfNotSent,
            AttemptBound::Deadline,
            |ch, left| {
                let req = DialSetRequest {
                    key: key.to_vec(),
                    value: value.to_vec(),
                    consistent: false,
                    deadline: Some(proto_deadline(left)),
                    session: None,
                };
                async move { dial(ch).set(req).await }
            },
        )
        .await;
    mutation_answer(t, r, None)
}

pub(crate) async fn swap(
    t: &Transport,
    key: &[u8],
    old: Option<&[u8]>,
    new: &[u8],
    wait: Wait,
    tag: Option<&Tag>,
) -> Result<Answer> {
    let r = t
        .call(
            deadline(wait),
            retry_for(tag),
            AttemptBound::Deadline,
            |ch, left| {
                let req = DialSwapRequest {
                    key: key.to_vec(),
                    new_value: new.to_vec(),
                    old_value: old.unwrap_or_default().to_vec(),
                    old_absent: old.is_none(),
                    deadline: Some(proto_deadline(left)),
                    session: tag.map(Tag::session_tag),
                };
                async move { dial(ch).swap(req).await }
            },
        )
        .await;
    mutation_answer(t, r, tag)
}

pub(crate) async fn outcome(t: &Transport, id: RequestId, wait: Wait) -> Result<Answer> {
    let r = t
        .call(
            deadline(wait),
            Retry::Idempotent,
            AttemptBound::Deadline,
            |ch, left| {
                let req = DialOutcomeRequest {
                    request_id: Some(id.into()),
                    deadline: Some(proto_deadline(left)),
                };
                async move { dial(ch).outcome(req).await }
            },
        )
        .await;
    match r {
        Ok(resp) => Ok(resp.into()),
        Err(Error::DeadlineExceeded(_)) => Ok(Answer::client_timeout(Some(id))),
        Err(e) => Err(e),
    }
}
