//! `Session`: the client side of the cluster's client sessions. It numbers
//! its mutations (request id = session id + seq), resends the same id on
//! every retry so a mutation is applied exactly once, tells the cluster
//! which answers it no longer needs, and keeps itself alive from a
//! background task.
//!
//! The plain methods (`set`, `swap`, `txn`) reserve a request id, retry
//! it across endpoints until a definite answer or the deadline, and settle
//! the id once the answer is definite; `set`/`swap` send a request the
//! member cancelled again under a new id while the deadline allows. The `*_as` methods take an id from `reserve` and
//! leave settling to the caller, for callers that must resend one request
//! themselves (e.g. after their own crash handling).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rafter_proto::etcdserverpb::{RangeRequest, RangeResponse, TxnRequest, TxnResponse};
use rafter_proto::rafterpb::{SessionCloseRequest, SessionKeepAliveRequest, SessionOpenRequest};
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::answer::{Answer, Consistency, RequestId, Wait};
use crate::client::Client;
use crate::dial::{self, Tag};
use crate::error::{Error, Result};
use crate::kv;
use crate::seqs::Seqs;
use crate::transport::{AttemptBound, Retry};

/// How to open a session.
#[derive(Debug, Clone, Copy)]
pub struct SessionOptions {
    /// Cluster time the session survives without a request or keep-alive
    /// (the server raises it to at least 1 s).
    pub timeout: Duration,
    /// Keep it alive from a background task every `timeout / 3`.
    pub keep_alive: bool,
}

struct Shared {
    client: Client,
    id: u64,
    timeout_ms: u64,
    seqs: Arc<Mutex<Seqs>>,
    expired: AtomicBool,
}

/// An open client session; dropping it stops its keep-alives (the cluster
/// expires it after its timeout), `close` ends it at once.
pub struct Session {
    shared: Arc<Shared>,
    keeper: Option<JoinHandle<()>>,
}

impl Drop for Session {
    fn drop(&mut self) {
        if let Some(k) = self.keeper.take() {
            k.abort();
        }
    }
}

impl Session {
    pub(crate) async fn open(client: Client, options: SessionOptions) -> Result<Session> {
        let timeout_ms = options.timeout.as_millis() as u64;
        // Opening is not idempotent (a retry would open a second session),
        // but an unused extra session just expires.
        let deadline = Instant::now() + client.transport.options.attempt_timeout * 3;
        let opened = client
            .transport
            .call(
                Some(deadline),
                Retry::Idempotent,
                AttemptBound::Fixed,
                |ch, _| async move {
                    dial::dial(ch)
                        .session_open(SessionOpenRequest { timeout_ms })
                        .await
                },
            )
            .await?;
        let shared = Arc::new(Shared {
            client,
            id: opened.session_id,
            timeout_ms: opened.timeout_ms,
            seqs: Arc::new(Mutex::new(Seqs::default())),
            expired: AtomicBool::new(false),
        });
        let keeper = options
            .keep_alive
            .then(|| tokio::spawn(keep_alive_loop(shared.clone())));
        Ok(Session { shared, keeper })
    }

    /// The session's id in the cluster.
    pub fn id(&self) -> u64 {
        self.shared.id
    }

    /// The timeout the cluster granted.
    pub fn timeout_ms(&self) -> u64 {
        self.shared.timeout_ms
    }

    /// Whether the cluster said the session is gone.
    pub fn is_expired(&self) -> bool {
        self.shared.expired.load(Ordering::Relaxed)
    }

    /// The client the session runs on.
    pub fn client(&self) -> &Client {
        &self.shared.client
    }

    /// How many request ids still wait for a definite answer.
    pub fn outstanding(&self) -> usize {
        self.shared.seqs.lock().expect("seqs").outstanding()
    }

    /// A new request id, outstanding until `settle`d.
    pub fn reserve(&self) -> RequestId {
        RequestId {
            session_id: self.shared.id,
            seq: self.shared.seqs.lock().expect("seqs").reserve(),
        }
    }

    /// The caller has `id`'s definite answer: the cluster may drop it.
    pub fn settle(&self, id: RequestId) {
        if id.session_id == self.shared.id {
            self.shared.seqs.lock().expect("seqs").settle(id.seq);
        }
    }

    fn tag(&self, id: RequestId) -> Tag {
        Tag {
            id,
            seqs: self.shared.seqs.clone(),
        }
    }

    /// Settles `id` if `r` is definite: an answer that is not pending, or
    /// a refusal that says the request never applied (or never will be
    /// known: the session is gone).
    fn settle_if_definite<T>(&self, id: RequestId, r: &Result<T>, pending: impl Fn(&T) -> bool) {
        let definite = match r {
            Ok(v) => !pending(v),
            Err(Error::SessionExpired) => {
                self.shared.expired.store(true, Ordering::Relaxed);
                true
            }
            Err(e) => !e.is_unavailable(),
        };
        if definite {
            self.settle(id);
        }
    }

    /// A read (reads need no request id).
    pub async fn get(&self, key: &[u8], consistency: Consistency, wait: Wait) -> Result<Answer> {
        self.shared.client.get(key, consistency, wait).await
    }

    /// Writes `key` exactly once.
    pub async fn set(&self, key: &[u8], value: &[u8], wait: Wait) -> Result<Answer> {
        self.mutate(wait, |id, w| self.set_as(id, key, value, w))
            .await
    }

    /// Runs a mutation in slices of its deadline (`dial::in_slices`):
    /// after a cancel, under a new request id; after a pending answer,
    /// under the same one. Settles each id once its answer is definite.
    async fn mutate<'a, F, Fut>(&'a self, wait: Wait, mut send: F) -> Result<Answer>
    where
        F: FnMut(RequestId, Wait) -> Fut,
        Fut: std::future::Future<Output = Result<Answer>> + 'a,
    {
        let slice = self.shared.client.transport.options.mutation_slice;
        let mut id = self.reserve();
        dial::in_slices(wait, slice, true, |w, new_id| {
            if new_id {
                id = self.reserve();
            }
            let fut = send(id, w);
            let this_id = id;
            async move {
                let r = fut.await;
                self.settle_if_definite(this_id, &r, |a| !a.outcome.is_definite());
                r
            }
        })
        .await
    }

    /// `set` under a reserved id; a resend returns the original answer.
    pub async fn set_as(
        &self,
        id: RequestId,
        key: &[u8],
        value: &[u8],
        wait: Wait,
    ) -> Result<Answer> {
        let tag = self.tag(id);
        let r = dial::set(&self.shared.client.transport, key, value, wait, Some(&tag)).await;
        self.note_expiry(&r);
        r
    }

    /// Sets `key` to `new` iff it holds `old` (`None`: is absent), exactly
    /// once.
    pub async fn swap(
        &self,
        key: &[u8],
        old: Option<&[u8]>,
        new: &[u8],
        wait: Wait,
    ) -> Result<Answer> {
        self.mutate(wait, |id, w| self.swap_as(id, key, old, new, w))
            .await
    }

    /// `swap` under a reserved id.
    pub async fn swap_as(
        &self,
        id: RequestId,
        key: &[u8],
        old: Option<&[u8]>,
        new: &[u8],
        wait: Wait,
    ) -> Result<Answer> {
        let tag = self.tag(id);
        let r = dial::swap(
            &self.shared.client.transport,
            key,
            old,
            new,
            wait,
            Some(&tag),
        )
        .await;
        self.note_expiry(&r);
        r
    }

    /// The definite outcome of a request; settles it if it is this
    /// session's and now decided.
    pub async fn outcome(&self, id: RequestId, wait: Wait) -> Result<Answer> {
        let r = self.shared.client.outcome(id, wait).await;
        self.note_expiry(&r);
        self.settle_if_definite(id, &r, |a| !a.outcome.is_definite());
        r
    }

    /// An etcd Txn applied exactly once. A deadline that passes first is
    /// `Error::DeadlineExceeded` and leaves the id outstanding (its fate
    /// is unknown: resend it with `txn_as` or ask `outcome`).
    pub async fn txn(&self, req: &TxnRequest, wait: Wait) -> Result<TxnResponse> {
        let id = self.reserve();
        let r = self.txn_as(id, req, wait).await;
        self.settle_if_definite(id, &r, |_| false);
        r
    }

    /// `txn` under a reserved id; a resend returns the original response.
    pub async fn txn_as(&self, id: RequestId, req: &TxnRequest, wait: Wait) -> Result<TxnResponse> {
        let tag = self.tag(id);
        let r = kv::txn(&self.shared.client.transport, req, wait, Some(&tag)).await;
        self.note_expiry(&r);
        r
    }

    /// An etcd Range through the session's client.
    pub async fn range(&self, req: &RangeRequest, wait: Wait) -> Result<RangeResponse> {
        self.shared.client.range(req, wait).await
    }

    /// One keep-alive now; `false` if the cluster says the session is gone.
    pub async fn keep_alive(&self) -> Result<bool> {
        keep_alive_once(&self.shared, Instant::now() + self.keep_alive_budget()).await
    }

    fn keep_alive_budget(&self) -> Duration {
        self.shared.client.transport.options.attempt_timeout
    }

    /// Ends the session in the cluster (its kept answers are dropped) and
    /// stops its keep-alives.
    pub async fn close(mut self) -> Result<()> {
        if let Some(k) = self.keeper.take() {
            k.abort();
        }
        let id = self.shared.id;
        let deadline = Instant::now() + self.keep_alive_budget();
        self.shared
            .client
            .transport
            .call(
                Some(deadline),
                Retry::Idempotent,
                AttemptBound::Fixed,
                |ch, _| async move {
                    dial::dial(ch)
                        .session_close(SessionCloseRequest { session_id: id })
                        .await
                },
            )
            .await?;
        self.shared.expired.store(true, Ordering::Relaxed);
        Ok(())
    }

    fn note_expiry<T>(&self, r: &Result<T>) {
        if let Err(Error::SessionExpired) = r {
            self.shared.expired.store(true, Ordering::Relaxed);
        }
    }
}

async fn keep_alive_once(shared: &Shared, deadline: Instant) -> Result<bool> {
    let session_id = shared.id;
    let resp = shared
        .client
        .transport
        .call(
            Some(deadline),
            Retry::Idempotent,
            AttemptBound::Fixed,
            |ch, _| async move {
                dial::dial(ch)
                    .session_keep_alive(SessionKeepAliveRequest { session_id })
                    .await
            },
        )
        .await?;
    if !resp.alive {
        shared.expired.store(true, Ordering::Relaxed);
    }
    Ok(resp.alive)
}

/// Sends a keep-alive every third of the timeout until the session is
/// gone (or the task is aborted by `Session`'s drop or close).
async fn keep_alive_loop(shared: Arc<Shared>) {
    let every = Duration::from_millis((shared.timeout_ms / 3).max(1));
    loop {
        tokio::time::sleep(every).await;
        match keep_alive_once(&shared, Instant::now() + every).await {
            Ok(true) => {}
            Ok(false) => {
                tracing::warn!(session = shared.id, "session expired");
                return;
            }
            Err(e) => tracing::debug!(session = shared.id, "keep-alive failed: {e}"),
        }
    }
}
