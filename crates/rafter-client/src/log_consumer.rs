//! An exactly-once log consumer (seed 004 "Case 1"): producers append
//! records to a named log; `get_last_log` hands every record to exactly
//! one consumer, however many call it concurrently, and whether callers
//! crash, time out or retry.
//!
//! # Layout (etcd keys under the log's name `L`)
//!
//! - `L/rec/<20-digit index>`: the records, indices from 0.
//! - `L/head`: how many records were appended (the next index).
//! - `L/cursor`: the first index not yet claimed.
//! - `L/claim/<consumer name>`: `START-END`, the consumer's claimed,
//!   unacknowledged records `[START, END)`.
//!
//! # How
//!
//! - `append` is one Txn: if `L/head`'s mod revision is what the producer
//!   read, put the records at `head..` and bump `head`; otherwise retry on
//!   the new head. It runs in the producer's session, so a retried Txn
//!   (same request id) returns the original answer and is never applied
//!   twice.
//! - `get_last_log` first returns the consumer's own claim if it has one
//!   (a consumer restarted under the same name finishes what it claimed).
//!   Otherwise it claims `[cursor, min(head, cursor + max_batch))` with one
//!   Txn: if `L/cursor`'s mod revision is what it read and the consumer has
//!   no claim, move the cursor and write the claim. Exactly one claim wins
//!   per cursor revision, and the claim is written with the cursor move, so
//!   every index lies in exactly one claim. The Txn runs in the consumer's
//!   session: a retry returns the original answer, never a second claim.
//! - `ack` deletes the claim (only if it is still the one acknowledged).
//!
//! # Guarantee
//!
//! Every appended record lies in exactly one claim, and a claim belongs to
//! exactly one consumer name: no two consumer names are ever handed the
//! same record, and no record is skipped. A consumer is handed its claim
//! again (the same records, same `start..end`) until it acknowledges it:
//! if it crashes, times out or loses its session between `get_last_log`
//! and `ack`, the consumer restarted under the same name gets that batch
//! again, never another consumer. So each record is acknowledged exactly
//! once; processing that must happen exactly once should be idempotent
//! per batch `start` or be committed together with the ack (`ack_with`).
//!
//! Limits: names must be unique among live consumers (two live processes
//! under one name share one claim). An `append` whose session expires
//! before its answer arrives returns `Error::SessionExpired` and its
//! records may or may not be in the log (the session was the only record
//! of that request); sessions survive member crashes as long as a quorum
//! answers keep-alives within the session timeout.

use std::sync::Arc;
use std::time::Duration;

use rafter_proto::etcdserverpb::compare::{CompareResult, CompareTarget, TargetUnion};
use rafter_proto::etcdserverpb::request_op::Request as Op;
use rafter_proto::etcdserverpb::response_op::Response as OpResponse;
use rafter_proto::etcdserverpb::{
    Compare, DeleteRangeRequest, PutRequest, RangeRequest, RequestOp, TxnRequest, TxnResponse,
};
use rafter_proto::mvccpb::KeyValue;

use crate::answer::Wait;
use crate::error::{Error, Result};
use crate::session::Session;

/// Most records one `append` may carry: etcd's default limit is 128
/// operations per Txn, and the head takes one.
pub const MAX_APPEND_BATCH: usize = 127;

/// The keys of one log.
#[derive(Debug, Clone)]
struct Keys {
    log: String,
}

impl Keys {
    fn head(&self) -> Vec<u8> {
        format!("{}/head", self.log).into_bytes()
    }
    fn cursor(&self) -> Vec<u8> {
        format!("{}/cursor", self.log).into_bytes()
    }
    fn record(&self, index: u64) -> Vec<u8> {
        format!("{}/rec/{index:020}", self.log).into_bytes()
    }
    fn claim(&self, name: &str) -> Vec<u8> {
        format!("{}/claim/{name}", self.log).into_bytes()
    }
}

fn put(key: Vec<u8>, value: Vec<u8>) -> RequestOp {
    RequestOp {
        request: Some(Op::RequestPut(PutRequest {
            key,
            value,
            ..Default::default()
        })),
    }
}

fn range(key: Vec<u8>) -> RequestOp {
    RequestOp {
        request: Some(Op::RequestRange(RangeRequest {
            key,
            ..Default::default()
        })),
    }
}

/// `key`'s mod revision is `rev` (0: the key is absent).
fn unchanged_since(key: Vec<u8>, rev: i64) -> Compare {
    if rev == 0 {
        Compare {
            result: CompareResult::Equal as i32,
            target: CompareTarget::Create as i32,
            key,
            target_union: Some(TargetUnion::CreateRevision(0)),
            range_end: vec![],
        }
    } else {
        Compare {
            result: CompareResult::Equal as i32,
            target: CompareTarget::Mod as i32,
            key,
            target_union: Some(TargetUnion::ModRevision(rev)),
            range_end: vec![],
        }
    }
}

/// A counter key's value and mod revision ((0, 0) if absent).
fn counter(kv: Option<&KeyValue>) -> Result<(u64, i64)> {
    match kv {
        None => Ok((0, 0)),
        Some(kv) => {
            let n = std::str::from_utf8(&kv.value)
                .ok()
                .and_then(|s| s.parse().ok())
                .ok_or_else(|| {
                    Error::Rejected(format!(
                        "log key {:?} holds {:?}, not a counter",
                        String::from_utf8_lossy(&kv.key),
                        String::from_utf8_lossy(&kv.value)
                    ))
                })?;
            Ok((n, kv.mod_revision))
        }
    }
}

/// The first key-value of the txn's `index`th range response.
fn ranged(t: &TxnResponse, index: usize) -> Option<&KeyValue> {
    match t.responses.get(index).and_then(|r| r.response.as_ref()) {
        Some(OpResponse::ResponseRange(r)) => r.kvs.first(),
        _ => None,
    }
}

fn claim_text(start: u64, end: u64) -> Vec<u8> {
    format!("{start}-{end}").into_bytes()
}

fn parse_claim(value: &[u8]) -> Result<(u64, u64)> {
    let bad = || {
        Error::Rejected(format!(
            "log claim holds {:?}, not START-END",
            String::from_utf8_lossy(value)
        ))
    };
    let text = std::str::from_utf8(value).map_err(|_| bad())?;
    let (s, e) = text.split_once('-').ok_or_else(bad)?;
    let (s, e) = (s.parse().map_err(|_| bad())?, e.parse().map_err(|_| bad())?);
    if s > e {
        return Err(bad());
    }
    Ok((s, e))
}

/// Appends records to a log.
pub struct LogProducer {
    session: Arc<Session>,
    keys: Keys,
    /// The head as of this producer's last look: (next index, mod revision).
    head: Option<(u64, i64)>,
    /// Bound on one append, retries included.
    pub timeout: Duration,
}

impl LogProducer {
    pub fn new(session: Arc<Session>, log: &str) -> LogProducer {
        LogProducer {
            session,
            keys: Keys { log: log.into() },
            head: None,
            timeout: Duration::from_secs(60),
        }
    }

    async fn read(&self, key: Vec<u8>) -> Result<Option<KeyValue>> {
        let req = RangeRequest {
            key,
            ..Default::default()
        };
        let r = self.session.range(&req, Wait::For(self.timeout)).await?;
        Ok(r.kvs.into_iter().next())
    }

    /// Appends `records` (at most [`MAX_APPEND_BATCH`]) as consecutive
    /// entries, exactly once; returns the index of the first.
    pub async fn append(&mut self, records: &[Vec<u8>]) -> Result<u64> {
        if records.is_empty() || records.len() > MAX_APPEND_BATCH {
            return Err(Error::InvalidArgument(format!(
                "append takes 1 to {MAX_APPEND_BATCH} records, not {}",
                records.len()
            )));
        }
        loop {
            let (head, rev) = match self.head {
                Some(h) => h,
                None => counter(self.read(self.keys.head()).await?.as_ref())?,
            };
            let n = records.len() as u64;
            let mut success: Vec<RequestOp> = records
                .iter()
                .enumerate()
                .map(|(i, r)| put(self.keys.record(head + i as u64), r.clone()))
                .collect();
            success.push(put(self.keys.head(), (head + n).to_string().into_bytes()));
            let txn = TxnRequest {
                compare: vec![unchanged_since(self.keys.head(), rev)],
                success,
                failure: vec![range(self.keys.head())],
            };
            match self.session.txn(&txn, Wait::For(self.timeout)).await {
                Ok(t) if t.succeeded => {
                    let revision = t.header.map_or(0, |h| h.revision);
                    self.head = Some((head + n, revision));
                    return Ok(head);
                }
                Ok(t) => self.head = Some(counter(ranged(&t, 0))?),
                // Definitely not applied: look again.
                Err(Error::Cancelled(_)) => self.head = None,
                Err(e) => {
                    self.head = None;
                    return Err(e);
                }
            }
        }
    }
}

/// A batch of records handed to one consumer: indices `[start, end)`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Batch {
    pub start: u64,
    pub end: u64,
    pub records: Vec<Vec<u8>>,
    /// Whether this batch was handed out before (to this consumer name,
    /// which crashed or did not ack it).
    pub redelivered: bool,
}

impl Batch {
    pub fn is_empty(&self) -> bool {
        self.start == self.end
    }
}

/// What the consumer knows of its own claim key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Claim {
    /// Not looked at since this consumer started (or lost its session).
    Unknown,
    None,
    Held(u64, u64),
}

/// One named consumer of a log.
pub struct LogConsumer {
    session: Arc<Session>,
    keys: Keys,
    name: String,
    claim: Claim,
    /// Most records one claim takes.
    pub max_batch: u64,
    /// Bound on one call, retries included.
    pub timeout: Duration,
}

impl LogConsumer {
    /// A consumer named `name` (unique among live consumers of the log;
    /// a restarted consumer takes its predecessor's name to finish its
    /// claim).
    pub fn new(session: Arc<Session>, log: &str, name: &str) -> LogConsumer {
        LogConsumer {
            session,
            keys: Keys { log: log.into() },
            name: name.into(),
            claim: Claim::Unknown,
            max_batch: 1000,
            timeout: Duration::from_secs(60),
        }
    }

    async fn read(&self, key: Vec<u8>) -> Result<Option<KeyValue>> {
        let req = RangeRequest {
            key,
            ..Default::default()
        };
        let r = self.session.range(&req, Wait::For(self.timeout)).await?;
        Ok(r.kvs.into_iter().next())
    }

    async fn records(&self, start: u64, end: u64) -> Result<Vec<Vec<u8>>> {
        if start == end {
            return Ok(Vec::new());
        }
        let req = RangeRequest {
            key: self.keys.record(start),
            range_end: self.keys.record(end),
            ..Default::default()
        };
        let r = self.session.range(&req, Wait::For(self.timeout)).await?;
        if r.kvs.len() as u64 != end - start {
            return Err(Error::Rejected(format!(
                "log records [{start}, {end}) hold {} entries",
                r.kvs.len()
            )));
        }
        Ok(r.kvs.into_iter().map(|kv| kv.value).collect())
    }

    /// The records appended since the last retrieval by any consumer, up to
    /// `max_batch` of them (empty if there are none), or this consumer's
    /// unacknowledged claim if it has one. Call `ack` once they are
    /// processed.
    pub async fn get_last_log(&mut self) -> Result<Batch> {
        let r = self.next_batch().await;
        if let Err(Error::SessionExpired) = r {
            self.claim = Claim::Unknown;
        }
        r
    }

    async fn next_batch(&mut self) -> Result<Batch> {
        if self.claim == Claim::Unknown {
            self.claim = match self.read(self.keys.claim(&self.name)).await? {
                Some(kv) => {
                    let (s, e) = parse_claim(&kv.value)?;
                    Claim::Held(s, e)
                }
                None => Claim::None,
            };
        }
        if let Claim::Held(start, end) = self.claim {
            let records = self.records(start, end).await?;
            return Ok(Batch {
                start,
                end,
                records,
                redelivered: true,
            });
        }
        let mut known_head = 0;
        let (mut cursor, mut rev) = counter(self.read(self.keys.cursor()).await?.as_ref())?;
        loop {
            if cursor >= known_head {
                known_head = counter(self.read(self.keys.head()).await?.as_ref())?.0;
                if cursor >= known_head {
                    return Ok(Batch {
                        start: cursor,
                        end: cursor,
                        records: Vec::new(),
                        redelivered: false,
                    });
                }
            }
            let end = known_head.min(cursor + self.max_batch.max(1));
            let txn = TxnRequest {
                compare: vec![
                    unchanged_since(self.keys.cursor(), rev),
                    unchanged_since(self.keys.claim(&self.name), 0),
                ],
                success: vec![
                    put(self.keys.cursor(), end.to_string().into_bytes()),
                    put(self.keys.claim(&self.name), claim_text(cursor, end)),
                ],
                failure: vec![
                    range(self.keys.cursor()),
                    range(self.keys.claim(&self.name)),
                ],
            };
            match self.session.txn(&txn, Wait::For(self.timeout)).await {
                Ok(t) if t.succeeded => {
                    self.claim = Claim::Held(cursor, end);
                    let records = self.records(cursor, end).await?;
                    return Ok(Batch {
                        start: cursor,
                        end,
                        records,
                        redelivered: false,
                    });
                }
                Ok(t) => {
                    if let Some(kv) = ranged(&t, 1) {
                        // Our own claim, which this consumer did not know of.
                        let (start, end) = parse_claim(&kv.value)?;
                        self.claim = Claim::Held(start, end);
                        let records = self.records(start, end).await?;
                        return Ok(Batch {
                            start,
                            end,
                            records,
                            redelivered: true,
                        });
                    }
                    (cursor, rev) = counter(ranged(&t, 0))?;
                }
                Err(Error::Cancelled(_)) => {
                    (cursor, rev) = counter(self.read(self.keys.cursor()).await?.as_ref())?;
                }
                Err(e) => {
                    // Whether the claim applied is unknown: look next time.
                    self.claim = Claim::Unknown;
                    return Err(e);
                }
            }
        }
    }

    /// Acknowledges `batch`: its records are consumed for good.
    pub async fn ack(&mut self, batch: &Batch) -> Result<()> {
        self.ack_with(batch, Vec::new()).await
    }

    /// Acknowledges `batch` and applies `ops` in the same Txn, so an effect
    /// of processing it is committed exactly when the batch is consumed.
    pub async fn ack_with(&mut self, batch: &Batch, ops: Vec<RequestOp>) -> Result<()> {
        if batch.is_empty() {
            return Ok(());
        }
        let claim = self.keys.claim(&self.name);
        let mut success = ops;
        success.push(RequestOp {
            request: Some(Op::RequestDeleteRange(DeleteRangeRequest {
                key: claim.clone(),
                ..Default::default()
            })),
        });
        let txn = TxnRequest {
            compare: vec![Compare {
                result: CompareResult::Equal as i32,
                target: CompareTarget::Value as i32,
                key: claim,
                target_union: Some(TargetUnion::Value(claim_text(batch.start, batch.end))),
                range_end: vec![],
            }],
            success,
            failure: vec![],
        };
        match self.session.txn(&txn, Wait::For(self.timeout)).await {
            Ok(t) if t.succeeded => {
                self.claim = Claim::None;
                Ok(())
            }
            Ok(_) => {
                self.claim = Claim::Unknown;
                Err(Error::Rejected(format!(
                    "batch [{}, {}) is not this consumer's claim",
                    batch.start, batch.end
                )))
            }
            Err(e) => {
                self.claim = Claim::Unknown;
                Err(e)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_sort_by_index_and_claims_round_trip() {
        let k = Keys { log: "L".into() };
        assert_eq!(k.record(7), b"L/rec/00000000000000000007");
        assert!(k.record(9) < k.record(10));
        assert_eq!(parse_claim(&claim_text(3, 9)).unwrap(), (3, 9));
        assert!(parse_claim(b"9-3").is_err());
        assert!(parse_claim(b"x").is_err());
    }
}
