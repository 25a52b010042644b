//! `Client`: a handle on a cluster (cheap to clone) that fails over between
//! endpoints, answers the consistency dial without a client session (the
//! member tags mutations in its own), and opens `Session`s for
//! exactly-once retries.

use std::sync::Arc;
use std::time::Duration;

use rafter_proto::etcdserverpb::{RangeRequest, RangeResponse, TxnRequest, TxnResponse};

use crate::answer::{Answer, Consistency, RequestId, Wait};
use crate::error::Result;
use crate::session::{Session, SessionOptions};
use crate::transport::{Options, Transport};
use crate::{dial, kv};

/// A connection to a Rafter cluster.
#[derive(Clone)]
pub struct Client {
    pub(crate) transport: Arc<Transport>,
}

impl Client {
    /// Connects to the first of `endpoints` (`host:port` or
    /// `http://host:port`) that accepts a connection.
    pub async fn connect<S: AsRef<str>>(endpoints: &[S]) -> Result<Client> {
        Client::connect_with(endpoints, Options::default()).await
    }

    /// `connect` with explicit timeouts and retry pauses.
    pub async fn connect_with<S: AsRef<str>>(endpoints: &[S], options: Options) -> Result<Client> {
        let list: Vec<String> = endpoints.iter().map(|e| e.as_ref().to_string()).collect();
        let transport = Arc::new(Transport::new(&list, options)?);
        transport.channel().await?;
        Ok(Client { transport })
    }

    /// The endpoint requests go to now (the last one that worked).
    pub fn current_endpoint(&self) -> String {
        self.transport.current_endpoint()
    }

    /// Reads `key`: linearizably or from the answering member's state.
    pub async fn get(&self, key: &[u8], consistency: Consistency, wait: Wait) -> Result<Answer> {
        dial::get(&self.transport, key, consistency, wait).await
    }

    /// Writes `key` (consistent: acknowledged once committed by a
    /// majority) in the answering member's session: applied at most once,
    /// sent again only while no member accepted it or after a member
    /// cancelled it (so it never applies twice).
    pub async fn set(&self, key: &[u8], value: &[u8], wait: Wait) -> Result<Answer> {
        let t = &self.transport;
        dial::in_slices(wait, t.options.mutation_slice, false, |w, _| {
            dial::set(t, key, value, w, None)
        })
        .await
    }

    /// `set` with an explicit consistency; `Local` asks for a write that
    /// stays available without a quorum: acknowledged once durable on the
    /// answering member, ordered through the log once it reaches a leader
    /// (`Answer::local` names its dot).
    pub async fn set_with(
        &self,
        key: &[u8],
        value: &[u8],
        consistency: Consistency,
        wait: Wait,
    ) -> Result<Answer> {
        match consistency {
            Consistency::Consistent => self.set(key, value, wait).await,
            Consistency::Local => dial::set_local(&self.transport, key, value, wait).await,
        }
    }

    /// Sets `key` to `new` iff it holds `old` (`None`: iff it is absent).
    /// `valid` says whether it swapped; otherwise `value`/`found` say what
    /// the key holds.
    pub async fn swap(
        &self,
        key: &[u8],
        old: Option<&[u8]>,
        new: &[u8],
        wait: Wait,
    ) -> Result<Answer> {
        let t = &self.transport;
        dial::in_slices(wait, t.options.mutation_slice, false, |w, _| {
            dial::swap(t, key, old, new, w, None)
        })
        .await
    }

    /// The definite outcome of a mutation (ordering a cancel through the
    /// log if it is not decided yet).
    pub async fn outcome(&self, id: RequestId, wait: Wait) -> Result<Answer> {
        dial::outcome(&self.transport, id, wait).await
    }

    /// Opens a session with this timeout (cluster time without a request
    /// or keep-alive), kept alive in the background until dropped or closed.
    pub async fn session(&self, timeout: Duration) -> Result<Session> {
        self.session_with(SessionOptions {
            timeout,
            keep_alive: true,
        })
        .await
    }

    pub async fn session_with(&self, options: SessionOptions) -> Result<Session> {
        Session::open(self.clone(), options).await
    }

    /// An etcd Range, linearizable unless `req.serializable`.
    pub async fn range(&self, req: &RangeRequest, wait: Wait) -> Result<RangeResponse> {
        kv::range(&self.transport, req, wait).await
    }

    /// An etcd Txn without a session: retried only when no member accepted
    /// it (a Txn that writes could otherwise apply twice; use
    /// `Session::txn` for exactly-once retries).
    pub async fn txn(&self, req: &TxnRequest, wait: Wait) -> Result<TxnResponse> {
        kv::txn(&self.transport, req, wait, None).await
    }
}
