//! Seed 000's failure as a play in three acts, with two "API servers" that
//! each answer from a watch-fed cache of the pods, and two "kubelets" that
//! run what the API server they ask says is bound to them.
//!
//! 1. `prepare`: pod web-1 is bound to node K1; K1 (which asks API-2)
//!    runs it.
//! 2. The caller cuts API-2 off from the cluster.
//! 3. `play`: K1 goes down; the pod is moved to K2 through API-1 and K2
//!    runs it; K1 restarts and asks API-2 for its pods. A stale cache
//!    still says web-1 is on K1, so K1 runs it too: the pod runs twice
//!    (Kubernetes issue 59848). A consistent cache cannot confirm that it
//!    is current, so K1 gets an error and runs nothing.
//! 4. The caller heals; `after_heal`: K1 asks again until it gets an answer.
//!
//! Used by the `seed000` example and by the `seed000` test of the `rafter`
//! crate (against Rafter and etcd).

use std::collections::BTreeSet;
use std::time::Duration;

use rafter_client::etcdserverpb::request_op::Request as Op;
use rafter_client::etcdserverpb::{PutRequest, RequestOp, TxnRequest};
use rafter_client::{Cache, CacheOptions, Client, Freshness, Wait};
use tokio::time::Instant;

/// The pods' key prefix, as Kubernetes lays it out.
pub const PODS: &str = "/registry/pods/default/";
pub const POD: &str = "web-1";
/// How long a consistent read may wait before it gives up.
pub const READ_TIMEOUT: Duration = Duration::from_secs(2);
/// How long an act may wait for the world to settle.
const SETTLE: Duration = Duration::from_secs(20);

/// What the API servers' caches answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Stale,
    Consistent,
}

impl Mode {
    fn freshness(self) -> Freshness {
        match self {
            Mode::Stale => Freshness::Stale,
            Mode::Consistent => Freshness::Consistent(READ_TIMEOUT),
        }
    }
}

fn pod_key(pod: &str) -> Vec<u8> {
    format!("{PODS}{pod}").into_bytes()
}

fn binding(node: &str) -> Vec<u8> {
    format!("node={node}").into_bytes()
}

/// An API server: a cache of the pods, read as `mode` says.
pub struct ApiServer {
    pub name: &'static str,
    cache: Cache,
    mode: Mode,
}

impl ApiServer {
    async fn start(
        name: &'static str,
        endpoints: &[String],
        mode: Mode,
    ) -> Result<ApiServer, String> {
        let client = Client::connect(endpoints)
            .await
            .map_err(|e| format!("{name}: connect: {e}"))?;
        let cache = Cache::start(&client, PODS, CacheOptions::default())
            .await
            .map_err(|e| format!("{name}: start the cache: {e}"))?;
        Ok(ApiServer { name, cache, mode })
    }

    /// The pods bound to `node`, and the revision of the answer.
    async fn pods_on(&self, node: &str) -> Result<(BTreeSet<String>, i64), String> {
        let answer = self
            .cache
            .list(PODS.as_bytes(), self.mode.freshness())
            .await
            .map_err(|e| format!("{}: {e}", self.name))?;
        let pods = answer
            .value
            .iter()
            .filter(|kv| kv.value == binding(node))
            .map(|kv| String::from_utf8_lossy(&kv.key[PODS.len()..]).into_owned())
            .collect();
        Ok((pods, answer.revision))
    }

    /// Where `pod` is bound in this API server's copy, without waiting.
    async fn copy_says(&self, pod: &str) -> Option<Vec<u8>> {
        let answer = self.cache.get(&pod_key(pod), Freshness::Stale).await.ok()?;
        answer.value.map(|kv| kv.value)
    }
}

/// A node agent: runs exactly the pods its API server binds to it.
pub struct Kubelet {
    pub name: &'static str,
    pub running: BTreeSet<String>,
}

impl Kubelet {
    fn new(name: &'static str) -> Kubelet {
        Kubelet {
            name,
            running: BTreeSet::new(),
        }
    }

    /// Asks `api` for its pods and starts or stops pods to match.
    async fn sync(&mut self, api: &ApiServer, log: &mut Vec<String>) -> Result<(), String> {
        let (pods, revision) = api.pods_on(self.name).await?;
        for pod in pods.difference(&self.running) {
            log.push(format!(
                "{} starts {pod} ({} answered at revision {revision})",
                self.name, api.name
            ));
        }
        for pod in self.running.difference(&pods) {
            log.push(format!("{} stops {pod}", self.name));
        }
        self.running = pods;
        Ok(())
    }
}

/// What act 3 (or 4) ended with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    /// Pods running on both nodes.
    pub duplicates: Vec<String>,
    /// Why K1's last listing failed, if it did.
    pub k1_error: Option<String>,
}

pub struct Scenario {
    writer: Client,
    pub api1: ApiServer,
    pub api2: ApiServer,
    pub k1: Kubelet,
    pub k2: Kubelet,
    /// What happened, line by line.
    pub log: Vec<String>,
}

impl Scenario {
    /// Act 1. API-1 and the scheduler use `api1_endpoints`; API-2 uses
    /// `api2_endpoints` (which the caller can cut off).
    pub async fn prepare(
        api1_endpoints: &[String],
        api2_endpoints: &[String],
        mode: Mode,
    ) -> Result<Scenario, String> {
        let writer = Client::connect(api1_endpoints)
            .await
            .map_err(|e| format!("scheduler: connect: {e}"))?;
        let mut s = Scenario {
            writer,
            api1: ApiServer::start("API-1", api1_endpoints, mode).await?,
            api2: ApiServer::start("API-2", api2_endpoints, mode).await?,
            k1: Kubelet::new("K1"),
            k2: Kubelet::new("K2"),
            log: vec![format!("caches: {mode:?}")],
        };
        s.bind(POD, "K1").await?;
        for api in [&s.api1, &s.api2] {
            settle(&format!("{} sees {POD} on K1", api.name), || async {
                api.copy_says(POD).await == Some(binding("K1"))
            })
            .await?;
        }
        s.k1.sync(&s.api2, &mut s.log).await?;
        s.k2.sync(&s.api1, &mut s.log).await?;
        if !s.k1.running.contains(POD) {
            return Err(format!("K1 does not run {POD} after act 1"));
        }
        Ok(s)
    }

    /// The scheduler binds `pod` to `node` (a plain put through API-1's
    /// endpoints).
    async fn bind(&mut self, pod: &str, node: &str) -> Result<(), String> {
        let put = RequestOp {
            request: Some(Op::RequestPut(PutRequest {
                key: pod_key(pod),
                value: binding(node),
                ..Default::default()
            })),
        };
        let txn = TxnRequest {
            success: vec![put],
            ..Default::default()
        };
        let response = self
            .writer
            .txn(&txn, Wait::For(SETTLE))
            .await
            .map_err(|e| format!("scheduler: bind {pod} to {node}: {e}"))?;
        let revision = response.header.map_or(0, |h| h.revision);
        self.log.push(format!(
            "scheduler binds {pod} to {node} (revision {revision})"
        ));
        Ok(())
    }

    /// Act 3, once API-2 is cut off.
    pub async fn play(&mut self) -> Result<Outcome, String> {
        self.log.push("API-2 is cut off from the cluster".into());
        self.log.push("K1 goes down".into());
        self.k1.running.clear();
        self.bind(POD, "K2").await?;
        let deadline = Instant::now() + SETTLE;
        while !self.k2.running.contains(POD) {
            if Instant::now() >= deadline {
                return Err(format!("K2 did not start {POD} within {SETTLE:?}"));
            }
            if let Err(e) = self.k2.sync(&self.api1, &mut self.log).await {
                self.log.push(format!("K2: {e}"));
            }
        }
        self.log
            .push("K1 restarts and lists its pods through API-2".into());
        let k1_error = self.k1.sync(&self.api2, &mut self.log).await.err();
        if let Some(e) = &k1_error {
            self.log
                .push(format!("K1 gets no answer, runs nothing: {e}"));
        }
        Ok(self.outcome(k1_error))
    }

    /// Act 4, once API-2 is back: K1 asks until it gets an answer.
    pub async fn after_heal(&mut self) -> Result<Outcome, String> {
        self.log.push("API-2 is reconnected".into());
        let deadline = Instant::now() + SETTLE;
        loop {
            match self.k1.sync(&self.api2, &mut self.log).await {
                Ok(()) => {
                    self.log.push(format!(
                        "K1 lists its pods through API-2: {:?}",
                        self.k1.running
                    ));
                    return Ok(self.outcome(None));
                }
                Err(e) if Instant::now() >= deadline => {
                    return Err(format!(
                        "K1 got no answer within {SETTLE:?} of the heal: {e}"
                    ))
                }
                Err(_) => {}
            }
        }
    }

    fn outcome(&mut self, k1_error: Option<String>) -> Outcome {
        let duplicates: Vec<String> = self
            .k1
            .running
            .intersection(&self.k2.running)
            .cloned()
            .collect();
        for pod in &duplicates {
            self.log
                .push(format!("DUPLICATE: {pod} runs on both K1 and K2"));
        }
        if duplicates.is_empty() {
            self.log.push(format!(
                "no duplicate: K1 runs {:?}, K2 runs {:?}",
                self.k1.running, self.k2.running
            ));
        }
        Outcome {
            duplicates,
            k1_error,
        }
    }
}

/// Polls `done` until it holds, or fails after [`SETTLE`].
async fn settle<F, Fut>(what: &str, mut done: F) -> Result<(), String>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + SETTLE;
    while !done().await {
        if Instant::now() >= deadline {
            return Err(format!("not within {SETTLE:?}: {what}"));
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    Ok(())
}
