//! The operations of each workload, issued through the etcd v3 KV service:
//! one call per operation, so the same request mix reaches etcd and Rafter.

use std::collections::HashMap;
use std::time::Duration;

use rafter_proto::etcdserverpb::compare::{CompareResult, CompareTarget, TargetUnion};
use rafter_proto::etcdserverpb::kv_client::KvClient;
use rafter_proto::etcdserverpb::request_op::Request;
use rafter_proto::etcdserverpb::response_op::Response;
use rafter_proto::etcdserverpb::{
    Compare, PutRequest, RangeRequest, RequestOp, TxnRequest, TxnResponse,
};
use serde::Serialize;
use tonic::transport::Channel;

use crate::args::{CasCompare, Consistency};
use crate::keys::{unique_value, KeySpace};
use crate::rng::Rng;

/// A workload: what each operation of a run is.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Workload {
    Put,
    Get(Consistency),
    /// Compare-and-swap; each client works on its own share of the key
    /// space (keys `client, client + clients, ...`), so with no other
    /// writer every compare holds and every transaction writes.
    TxnCas(CasCompare),
    Mixed {
        read_ratio: f64,
        consistency: Consistency,
    },
}

impl Workload {
    /// The name used in reports (the subcommand's name).
    pub fn name(&self) -> &'static str {
        match self {
            Workload::Put => "put",
            Workload::Get(_) => "get",
            Workload::TxnCas(_) => "txn-cas",
            Workload::Mixed { .. } => "mixed",
        }
    }

    /// Whether the keys must exist before measuring (reads of missing keys
    /// would measure a cheaper path).
    pub fn needs_preload(&self) -> bool {
        !matches!(self, Workload::Put)
    }
}

/// The kinds of operation, reported separately.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum OpKind {
    Put,
    Get,
    Txn,
}

impl OpKind {
    /// All kinds, in report order.
    pub const ALL: [OpKind; 3] = [OpKind::Put, OpKind::Get, OpKind::Txn];

    /// Position in [`OpKind::ALL`].
    pub fn index(self) -> usize {
        self as usize
    }

    /// The name used in reports.
    pub fn name(self) -> &'static str {
        match self {
            OpKind::Put => "put",
            OpKind::Get => "get",
            OpKind::Txn => "txn",
        }
    }
}

/// What an operation that got an answer did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OpOutcome {
    /// A put or get.
    Done,
    /// A compare-and-swap whose compare held (the put was applied).
    Swapped,
    /// A compare-and-swap whose compare failed (another writer was first).
    Conflicted,
}

/// What a compare-and-swap client last saw of a key.
#[derive(Debug, Clone)]
enum Seen {
    ModRevision(i64),
    Value(Vec<u8>),
}

/// One client: a KV stub on a shared connection plus its own random
/// stream and compare-and-swap memory.
pub struct Worker {
    kv: KvClient<Channel>,
    workload: Workload,
    keys: KeySpace,
    value: Vec<u8>,
    client_index: usize,
    client_count: usize,
    rng: Rng,
    sequence: u64,
    seen: HashMap<u64, Seen>,
    request_timeout: Duration,
    /// The client session its mutations are tagged with, and the next seq.
    session: Option<(u64, u64)>,
}

impl Worker {
    /// Client number `client_index` of `client_count` on `channel`. `value`
    /// is what puts write and what the preload wrote (the starting point of
    /// compare-on-value).
    pub fn new(
        channel: Channel,
        workload: Workload,
        keys: KeySpace,
        value: Vec<u8>,
        (client_index, client_count): (usize, usize),
        request_timeout: Duration,
    ) -> Self {
        Self {
            kv: KvClient::new(channel),
            workload,
            keys,
            value,
            client_index,
            client_count,
            rng: Rng::new(0x5EED_0000 + client_index as u64),
            sequence: 0,
            seen: HashMap::new(),
            request_timeout,
            session: None,
        }
    }

    /// Opens a Rafter client session on `channel`; the worker's puts are
    /// tagged with it from then on.
    pub async fn open_session(&mut self, channel: Channel) -> Result<(), String> {
        let mut dial = rafter_proto::rafterpb::dial_client::DialClient::new(channel);
        let opened = dial
            .session_open(rafter_proto::rafterpb::SessionOpenRequest {
                timeout_ms: 600_000,
            })
            .await
            .map_err(|e| format!("opening a client session: {}", e.message()))?;
        self.session = Some((opened.into_inner().session_id, 1));
        Ok(())
    }

    /// The request, tagged with the worker's session when it has one. One
    /// request is in flight per worker, so every earlier seq is answered
    /// (acknowledged).
    fn tagged<T>(&mut self, message: T) -> tonic::Request<T> {
        let mut request = tonic::Request::new(message);
        if let Some((session_id, seq)) = self.session.as_mut() {
            let meta = request.metadata_mut();
            meta.insert("rafter-session-id", (*session_id).into());
            meta.insert("rafter-seq", (*seq).into());
            meta.insert("rafter-acked-below", (*seq).into());
            *seq += 1;
        }
        request
    }

    /// Issues the next operation and waits for its answer.
    pub async fn run_one(&mut self) -> (OpKind, Result<OpOutcome, tonic::Status>) {
        let key_index = self.rng.below(self.keys.count());
        match self.workload {
            Workload::Put => (
                OpKind::Put,
                self.put(key_index).await.map(|_| OpOutcome::Done),
            ),
            Workload::Get(consistency) => (OpKind::Get, self.get(key_index, consistency).await),
            Workload::TxnCas(compare) => {
                let own_key_index = self.own_key_index();
                (OpKind::Txn, self.cas(own_key_index, compare).await)
            }
            Workload::Mixed {
                read_ratio,
                consistency,
            } => {
                if self.rng.chance(read_ratio) {
                    (OpKind::Get, self.get(key_index, consistency).await)
                } else {
                    let result = self.put(key_index).await.map(|_| OpOutcome::Done);
                    (OpKind::Put, result)
                }
            }
        }
    }

    /// A random key of this client's share: `client_index + n * client_count`
    /// below the key count, or a key shared with other clients when there
    /// are fewer keys than clients.
    fn own_key_index(&mut self) -> u64 {
        let key_count = self.keys.count();
        let (first, stride) = (self.client_index as u64, self.client_count as u64);
        if first >= key_count {
            return first % key_count;
        }
        let own_count = (key_count - first).div_ceil(stride);
        first + stride * self.rng.below(own_count)
    }

    /// Puts `key_index` with this client's value (also used to preload, when
    /// compare-and-swap remembers the key's state) and returns the revision
    /// it created.
    pub async fn put(&mut self, key_index: u64) -> Result<i64, tonic::Status> {
        let request = PutRequest {
            key: self.keys.key(key_index),
            value: self.value.clone(),
            ..Default::default()
        };
        let request = self.tagged(request);
        let call = self.kv.put(request);
        let response = within(self.request_timeout, call).await?;
        let revision = response.header.map_or(0, |header| header.revision);
        match self.workload {
            Workload::TxnCas(CasCompare::ModRevision) => {
                self.seen.insert(key_index, Seen::ModRevision(revision));
            }
            Workload::TxnCas(CasCompare::Value) => {
                self.seen.insert(key_index, Seen::Value(self.value.clone()));
            }
            _ => {}
        }
        Ok(revision)
    }

    async fn get(
        &mut self,
        key_index: u64,
        consistency: Consistency,
    ) -> Result<OpOutcome, tonic::Status> {
        let request = RangeRequest {
            key: self.keys.key(key_index),
            serializable: consistency == Consistency::Serializable,
            ..Default::default()
        };
        let call = self.kv.range(request);
        within(self.request_timeout, call).await?;
        Ok(OpOutcome::Done)
    }

    /// One transaction: if the key is as last seen, put a new value; else
    /// read it, remembering what the cluster says for the next attempt.
    async fn cas(
        &mut self,
        key_index: u64,
        compare: CasCompare,
    ) -> Result<OpOutcome, tonic::Status> {
        let key = self.keys.key(key_index);
        let (target, target_union, new_value) = match compare {
            CasCompare::ModRevision => {
                // Unknown keys are compared with 0 ("does not exist"): the
                // first attempt on a preloaded key fails and learns it.
                let revision = match self.seen.get(&key_index) {
                    Some(Seen::ModRevision(revision)) => *revision,
                    _ => 0,
                };
                (
                    CompareTarget::Mod,
                    TargetUnion::ModRevision(revision),
                    self.value.clone(),
                )
            }
            CasCompare::Value => {
                let expected = match self.seen.get(&key_index) {
                    Some(Seen::Value(value)) => value.clone(),
                    _ => self.value.clone(),
                };
                self.sequence += 1;
                let new_value = unique_value(self.value.len(), self.client_index, self.sequence);
                (
                    CompareTarget::Value,
                    TargetUnion::Value(expected),
                    new_value,
                )
            }
        };
        let request = TxnRequest {
            compare: vec![Compare {
                result: CompareResult::Equal as i32,
                target: target as i32,
                key: key.clone(),
                target_union: Some(target_union),
                range_end: Vec::new(),
            }],
            success: vec![RequestOp {
                request: Some(Request::RequestPut(PutRequest {
                    key: key.clone(),
                    value: new_value.clone(),
                    ..Default::default()
                })),
            }],
            failure: vec![RequestOp {
                request: Some(Request::RequestRange(RangeRequest {
                    key,
                    ..Default::default()
                })),
            }],
        };
        let call = self.kv.txn(request);
        let response = within(self.request_timeout, call).await?;
        let (outcome, seen) = learn(&response, compare, new_value);
        self.seen.insert(key_index, seen);
        Ok(outcome)
    }
}

/// What a compare-and-swap answer tells about the key.
fn learn(response: &TxnResponse, compare: CasCompare, written: Vec<u8>) -> (OpOutcome, Seen) {
    if response.succeeded {
        let revision = response.header.as_ref().map_or(0, |h| h.revision);
        let seen = match compare {
            CasCompare::ModRevision => Seen::ModRevision(revision),
            CasCompare::Value => Seen::Value(written),
        };
        return (OpOutcome::Swapped, seen);
    }
    let current = response.responses.iter().find_map(|op| match &op.response {
        Some(Response::ResponseRange(range)) => range.kvs.first(),
        _ => None,
    });
    let seen = match compare {
        CasCompare::ModRevision => Seen::ModRevision(current.map_or(0, |kv| kv.mod_revision)),
        CasCompare::Value => Seen::Value(current.map(|kv| kv.value.clone()).unwrap_or_default()),
    };
    (OpOutcome::Conflicted, seen)
}

/// Awaits a call for at most `timeout`, reporting expiry as etcd clients
/// see it (DeadlineExceeded).
async fn within<T>(
    timeout: Duration,
    call: impl std::future::Future<Output = Result<tonic::Response<T>, tonic::Status>>,
) -> Result<T, tonic::Status> {
    match tokio::time::timeout(timeout, call).await {
        Ok(result) => result.map(tonic::Response::into_inner),
        Err(_) => Err(tonic::Status::deadline_exceeded(
            "request timed out in the load generator",
        )),
    }
}
