//! The client-facing handle to a member: submit mutations to the Raft loop,
//! wait for linearizable read barriers, read the store directly, and stamp
//! response headers. Cloned into every gRPC service.

use std::sync::atomic::Ordering;
use std::sync::mpsc::Sender;
use std::sync::Arc;
use std::time::Duration;

use rafter_core::{Granted, Wait};
use rafter_proto::etcdserverpb::{alarm_request, AlarmRequest, AlarmType, ResponseHeader};
use rafter_proto::rafterpb::ClientTag;
use rafter_storage::mvcc::KvResponse;
use rafter_storage::{KvRequest, MvccStore};
use tokio::sync::oneshot;

use crate::error::ApiError;
use crate::node::{NodeRequest, NodeStatus};

/// Shared handle to the local member.
#[derive(Clone)]
pub struct NodeHandle {
    tx: Sender<NodeRequest>,
    pub store: Arc<MvccStore>,
    pub status: Arc<NodeStatus>,
    pub member_id: u64,
    pub cluster_id: u64,
    pub request_timeout: Duration,
    pub max_request_bytes: usize,
    pub max_txn_ops: usize,
    /// The core's tick, for turning client timeouts into ticks.
    pub tick_us: u64,
    /// The space quota (`--quota-backend-bytes`; 0: none): a write that
    /// would grow the store past it is refused and raises NOSPACE.
    pub quota_bytes: u64,
}

impl NodeHandle {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        tx: Sender<NodeRequest>,
        store: Arc<MvccStore>,
        status: Arc<NodeStatus>,
        member_id: u64,
        cluster_id: u64,
        request_timeout: Duration,
        max_request_bytes: usize,
        max_txn_ops: usize,
        tick_us: u64,
    ) -> Self {
        NodeHandle {
            tx,
            store,
            status,
            member_id,
            cluster_id,
            request_timeout,
            max_request_bytes,
            max_txn_ops,
            tick_us,
            quota_bytes: 0,
        }
    }

    /// etcd's quota check before proposing: a request that adds data
    /// (see `alarms::adds_data`) and would take the store file past the
    /// quota is refused with "database space exceeded", and this member
    /// raises the NOSPACE alarm through the log (in the background, as
    /// etcd does) so every member refuses such writes until it is disarmed.
    pub fn check_quota(&self, request: &KvRequest) -> Result<(), ApiError> {
        if self.quota_bytes == 0 || !rafter_storage::mvcc::alarms::adds_data(request) {
            return Ok(());
        }
        let cost = quota_cost(request);
        if self.store.db_size_bytes() + cost < self.quota_bytes {
            return Ok(());
        }
        let raised = self.store.alarms().is_ok_and(|alarms| {
            alarms
                .iter()
                .any(|a| a.member_id == self.member_id && a.alarm == AlarmType::Nospace as i32)
        });
        if !raised {
            tracing::warn!(
                "database size {} bytes + request {cost} bytes exceeds the quota of {} bytes: raising NOSPACE",
                self.store.db_size_bytes(),
                self.quota_bytes
            );
            let node = self.clone();
            tokio::spawn(async move {
                let raise = KvRequest::Alarm(AlarmRequest {
                    action: alarm_request::AlarmAction::Activate as i32,
                    member_id: node.member_id,
                    alarm: AlarmType::Nospace as i32,
                });
                if let Err(e) = node.propose(raise).await {
                    tracing::warn!(
                        "raising the NOSPACE alarm failed (retried on the next write): {e}"
                    );
                }
            });
        }
        Err(rafter_storage::MvccError::NoSpace.into())
    }

    /// Refuses with "database space exceeded" while NOSPACE is raised (for
    /// writes the log would apply anyway: local writes).
    pub fn refuse_if_nospace(&self) -> Result<(), ApiError> {
        let alarms = self.store.alarms()?;
        if alarms.iter().any(|a| a.alarm == AlarmType::Nospace as i32) {
            return Err(rafter_storage::MvccError::NoSpace.into());
        }
        Ok(())
    }

    /// Hands local writes (durable in this member's queue) to the core,
    /// which orders them through the log.
    pub fn queue_local_writes(
        &self,
        writes: Vec<rafter_proto::rafterpb::LocalWrite>,
    ) -> Result<(), ApiError> {
        self.tx
            .send(NodeRequest::QueueLocalWrites(writes))
            .map_err(|_| ApiError::Stopped)
    }

    /// Replicates a mutation and returns its applied result.
    pub async fn propose(&self, request: KvRequest) -> Result<KvResponse, ApiError> {
        self.check_quota(&request)?;
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(NodeRequest::Propose { request, reply })
            .map_err(|_| ApiError::Stopped)?;
        self.await_reply(rx).await
    }

    /// Replicates a mutation made in a client session: applied at most
    /// once; by `wait` at the latest the core answers with its result, its
    /// cancellation (`MvccError::Cancelled`) or `OutcomePending`. No timer
    /// here: the core keeps the deadline (a blocking request waits as long
    /// as it takes).
    pub async fn propose_in_session(
        &self,
        request: KvRequest,
        tag: ClientTag,
        wait: Wait,
    ) -> Result<KvResponse, ApiError> {
        self.check_quota(&request)?;
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(NodeRequest::ProposeInSession {
                request,
                tag,
                wait,
                reply,
            })
            .map_err(|_| ApiError::Stopped)?;
        rx.await.map_err(|_| ApiError::Stopped)?
    }

    /// Decides a session request's fate through the log; answers with what
    /// was decided (`KvResponse::Outcome`).
    pub async fn decide_outcome(
        &self,
        session_id: u64,
        seq: u64,
        wait: Wait,
    ) -> Result<KvResponse, ApiError> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(NodeRequest::DecideOutcome {
                session_id,
                seq,
                wait,
                reply,
            })
            .map_err(|_| ApiError::Stopped)?;
        rx.await.map_err(|_| ApiError::Stopped)?
    }

    /// The core's wait for a client's deadline: blocking, the given
    /// timeout, or (0) this member's request timeout.
    pub fn wait_for(&self, blocking: bool, timeout_ms: u64) -> Wait {
        if blocking {
            return Wait::Blocking;
        }
        let timeout = if timeout_ms == 0 {
            self.request_timeout
        } else {
            Duration::from_millis(timeout_ms)
        };
        let ticks = timeout.as_micros() as u64 / self.tick_us.max(1);
        Wait::Ticks(ticks.max(1))
    }

    /// Returns once this member has applied everything that was committed
    /// when the call began, so a read that follows is linearizable (the
    /// member core grants it: read index known and applied).
    pub async fn read_barrier(&self) -> Result<(), ApiError> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(NodeRequest::ReadIndex { reply })
            .map_err(|_| ApiError::Stopped)?;
        self.await_reply(rx).await
    }

    /// [`NodeHandle::read_barrier`] within `timeout`.
    pub async fn read_barrier_within(&self, timeout: Duration) -> Result<(), ApiError> {
        match tokio::time::timeout(timeout, self.read_barrier()).await {
            Ok(r) => r,
            Err(_) => Err(ApiError::Timeout),
        }
    }

    /// Proposes a membership change; answers once it is applied here.
    pub async fn change_membership(
        &self,
        change: rafter_proto::rafterpb::MembershipChange,
    ) -> Result<KvResponse, ApiError> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(NodeRequest::ChangeMembership { change, reply })
            .map_err(|_| ApiError::Stopped)?;
        self.await_reply(rx).await
    }

    /// Asks the leader to hand leadership to `target`, and waits until it has.
    pub async fn transfer_leader(&self, target: u64) -> Result<(), ApiError> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(NodeRequest::TransferLeader { target, reply })
            .map_err(|_| ApiError::Stopped)?;
        self.await_reply(rx).await
    }

    /// A keep-alive on this member's core: `Ok(Some(ttl))` renewed,
    /// `Ok(None)` no such lease, `Err(NotLeader)` ask the leader.
    pub async fn lease_renew(&self, id: i64) -> Result<Option<i64>, ApiError> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(NodeRequest::LeaseRenew { id, reply })
            .map_err(|_| ApiError::Stopped)?;
        match self.await_reply(rx).await? {
            Granted::LeaseRenewed { ttl_s } => Ok(ttl_s),
            other => unreachable!("a keep-alive granted {other:?}"),
        }
    }

    /// (granted TTL, remaining seconds) from the leader's lessor.
    pub async fn lease_time_to_live(&self, id: i64) -> Result<Option<(i64, i64)>, ApiError> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(NodeRequest::LeaseTimeToLive { id, reply })
            .map_err(|_| ApiError::Stopped)?;
        match self.await_reply(rx).await? {
            Granted::LeaseTimeToLive { ttl } => Ok(ttl),
            other => unreachable!("a time-to-live granted {other:?}"),
        }
    }

    /// Every lease id this member has applied.
    pub async fn lease_ids(&self) -> Result<Vec<i64>, ApiError> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(NodeRequest::LeaseIds { reply })
            .map_err(|_| ApiError::Stopped)?;
        match tokio::time::timeout(self.request_timeout, rx).await {
            Ok(Ok(ids)) => Ok(ids),
            Ok(Err(_)) => Err(ApiError::Stopped),
            Err(_) => Err(ApiError::Timeout),
        }
    }

    /// The leader's client URL, from the attributes members publish.
    pub fn leader_client_url(&self) -> Result<String, ApiError> {
        let leader = self.status.leader_id.load(Ordering::Relaxed);
        if leader == 0 {
            return Err(ApiError::NoLeader);
        }
        self.store
            .member_attributes()?
            .into_iter()
            .find(|a| a.member_id == leader)
            .and_then(|a| a.client_urls.into_iter().next())
            .ok_or(ApiError::NoLeader)
    }

    async fn await_reply<T>(
        &self,
        rx: oneshot::Receiver<Result<T, ApiError>>,
    ) -> Result<T, ApiError> {
        match tokio::time::timeout(self.request_timeout, rx).await {
            Ok(Ok(result)) => result,
            Ok(Err(_)) => Err(ApiError::Stopped),
            Err(_) => Err(ApiError::Timeout),
        }
    }

    /// The store's current revision (what a watch "from now" starts after).
    pub fn current_revision(&self) -> i64 {
        self.store.state().map_or(0, |s| s.current_revision)
    }

    /// The store's current and compaction revisions.
    pub fn revisions(&self) -> (i64, i64) {
        self.store
            .state()
            .map_or((0, -1), |s| (s.current_revision, s.compact_revision))
    }

    /// A response header for `revision` with this member's identity and term.
    pub fn header(&self, revision: i64) -> ResponseHeader {
        ResponseHeader {
            cluster_id: self.cluster_id,
            member_id: self.member_id,
            revision,
            raft_term: self.status.term.load(Ordering::Relaxed),
        }
    }

    /// Completes a header the store filled with only a revision.
    pub fn stamp(&self, header: &mut Option<ResponseHeader>) {
        let revision = header.as_ref().map_or(0, |h| h.revision);
        *header = Some(self.header(revision));
    }
}

/// What a request adds to the store, for the quota check (etcd's
/// `backendQuota.Cost`: the encoded request plus a fixed overhead per put
/// and per lease).
fn quota_cost(request: &KvRequest) -> u64 {
    /// etcd's `kvOverhead` and `leaseOverhead`.
    const KV_OVERHEAD_BYTES: u64 = 256;
    const LEASE_OVERHEAD_BYTES: u64 = 64;
    fn txn_cost(t: &rafter_proto::etcdserverpb::TxnRequest) -> u64 {
        use rafter_proto::etcdserverpb::request_op::Request;
        t.success
            .iter()
            .chain(&t.failure)
            .map(|op| match &op.request {
                Some(Request::RequestPut(p)) => {
                    prost::Message::encoded_len(p) as u64 + KV_OVERHEAD_BYTES
                }
                Some(Request::RequestTxn(t)) => txn_cost(t),
                _ => 0,
            })
            .sum()
    }
    match request {
        KvRequest::Put(p) => prost::Message::encoded_len(p) as u64 + KV_OVERHEAD_BYTES,
        KvRequest::LeaseGrant(_) => LEASE_OVERHEAD_BYTES,
        KvRequest::Txn(t) => txn_cost(t),
        _ => 0,
    }
}
