//! Endpoint failover: one channel at a time to the endpoint that last
//! worked, and the retry loop every call goes through. A connect failure,
//! a member that says it has no leader, or (for requests that are safe to
//! repeat) any ambiguous failure moves the client to the next endpoint and
//! tries again with the very same request, until an answer or the
//! deadline.

use std::future::Future;
use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;
use tonic::transport::{Channel, Endpoint};

use crate::error::{Error, Failure, Result};

/// Largest response accepted (big ranges).
pub(crate) const MAX_MESSAGE_BYTES: usize = i32::MAX as usize;

/// How the client reaches the cluster.
#[derive(Debug, Clone)]
pub struct Options {
    /// Bound on establishing a connection to one endpoint.
    pub connect_timeout: Duration,
    /// Client-side bound on one attempt of a request that has no deadline
    /// of its own (etcd KV calls, session keep-alives); longer than a
    /// member's own request timeout so the member's answer wins.
    pub attempt_timeout: Duration,
    /// How long after a dial call's deadline the client still waits for the
    /// member's own timed-out answer (which says cancelled or pending).
    pub deadline_grace: Duration,
    /// How long one attempt of a non-blocking dial mutation lets the member
    /// wait before it cancels the request. A member that lost its leader
    /// may hold a request until its deadline and then cancel it; with a
    /// slice of the call's deadline, the cancelled attempt is sent again
    /// (under a new request id: the old one is definitely not applied)
    /// while the call's deadline allows.
    pub mutation_slice: Duration,
    /// First pause after every endpoint failed once; doubles up to
    /// `max_retry_pause`.
    pub retry_pause: Duration,
    pub max_retry_pause: Duration,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            connect_timeout: Duration::from_secs(1),
            attempt_timeout: Duration::from_secs(10),
            deadline_grace: Duration::from_secs(2),
            mutation_slice: Duration::from_secs(2),
            retry_pause: Duration::from_millis(50),
            max_retry_pause: Duration::from_secs(1),
        }
    }
}

/// Which failures a request may be retried after.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Retry {
    /// Repeating it is harmless (a read, a session-tagged mutation with the
    /// same request id, a keep-alive): retry after any unavailability.
    Idempotent,
    /// Repeating it could apply it twice: retry only when it surely did
    /// not reach a state machine (connect failure, `no leader`).
    IfNotSent,
}

/// How long one attempt may take on the client side.
#[derive(Debug, Clone, Copy)]
pub(crate) enum AttemptBound {
    /// The options' `attempt_timeout`.
    Fixed,
    /// What is left of the call's deadline plus `deadline_grace`; none for
    /// a blocking call (a dead connection is noticed by HTTP/2 pings).
    Deadline,
}

struct State {
    current: usize,
    channel: Option<Channel>,
}

/// The cluster's endpoints and the one in use.
pub(crate) struct Transport {
    endpoints: Vec<Endpoint>,
    urls: Vec<String>,
    pub(crate) options: Options,
    state: Mutex<State>,
}

/// The URL tonic dials for `host:port` or `http://host:port`.
fn url(endpoint: &str) -> Result<String> {
    let e = endpoint.trim();
    if e.starts_with("https://") {
        return Err(Error::BadEndpoint(format!(
            "TLS endpoints are not supported: {e}"
        )));
    }
    Ok(if e.starts_with("http://") {
        e.to_string()
    } else {
        format!("http://{e}")
    })
}

impl Transport {
    pub(crate) fn new(endpoints: &[String], options: Options) -> Result<Transport> {
        let urls = endpoints
            .iter()
            .filter(|e| !e.trim().is_empty())
            .map(|e| url(e))
            .collect::<Result<Vec<_>>>()?;
        if urls.is_empty() {
            return Err(Error::BadEndpoint("no endpoints given".into()));
        }
        let endpoints = urls
            .iter()
            .map(|u| {
                Endpoint::from_shared(u.clone())
                    .map(|e| {
                        e.connect_timeout(options.connect_timeout)
                            .tcp_nodelay(true)
                            .http2_keep_alive_interval(Duration::from_secs(2))
                            .keep_alive_timeout(Duration::from_secs(4))
                    })
                    .map_err(|err| Error::BadEndpoint(format!("invalid endpoint {u:?}: {err}")))
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Transport {
            endpoints,
            urls,
            options,
            state: Mutex::new(State {
                current: 0,
                channel: None,
            }),
        })
    }

    /// The endpoint requests go to now.
    pub(crate) fn current_endpoint(&self) -> String {
        let state = self.state.lock().expect("transport state");
        self.urls[state.current].clone()
    }

    /// A channel to the current endpoint, connecting (and moving on past
    /// endpoints that refuse) once around the list.
    pub(crate) async fn channel(&self) -> Result<(usize, Channel)> {
        let start = {
            let state = self.state.lock().expect("transport state");
            if let Some(ch) = &state.channel {
                return Ok((state.current, ch.clone()));
            }
            state.current
        };
        let mut last = String::new();
        for step in 0..self.endpoints.len() {
            let index = (start + step) % self.endpoints.len();
            match self.endpoints[index].connect().await {
                Ok(ch) => {
                    let mut state = self.state.lock().expect("transport state");
                    state.current = index;
                    state.channel = Some(ch.clone());
                    return Ok((index, ch));
                }
                Err(e) => {
                    tracing::debug!(endpoint = %self.urls[index], "connect failed: {e}");
                    last = format!("{}: {e}", self.urls[index]);
                }
            }
        }
        Err(Error::Unavailable(format!(
            "no endpoint accepted a connection (last: {last})"
        )))
    }

    /// A member named the leader's client URL: if it is one of the
    /// endpoints and not the one in use, later requests go there (a
    /// mutation sent to the leader is not forwarded).
    pub(crate) fn prefer(&self, leader_url: &str) {
        if leader_url.is_empty() {
            return;
        }
        let Ok(wanted) = url(leader_url) else {
            return;
        };
        let Some(index) = self.urls.iter().position(|u| *u == wanted) else {
            return;
        };
        let mut state = self.state.lock().expect("transport state");
        if state.current != index {
            state.current = index;
            state.channel = None;
        }
    }

    /// Forgets the channel to `index` and moves on to the next endpoint,
    /// unless another call already did.
    pub(crate) fn failed(&self, index: usize) {
        let mut state = self.state.lock().expect("transport state");
        if state.current == index {
            state.current = (index + 1) % self.endpoints.len();
            state.channel = None;
        }
    }

    /// Runs `attempt` until it answers, fails definitely, or `deadline`
    /// passes (`None`: no deadline). `attempt` gets a channel and what is
    /// left of the deadline, and must send the same request every time.
    pub(crate) async fn call<T, F, Fut>(
        &self,
        deadline: Option<Instant>,
        retry: Retry,
        bound: AttemptBound,
        mut attempt: F,
    ) -> Result<T>
    where
        F: FnMut(Channel, Option<Duration>) -> Fut,
        Fut: Future<Output = std::result::Result<tonic::Response<T>, tonic::Status>>,
    {
        let mut pause = self.options.retry_pause;
        let mut failures = 0usize;
        let mut last_error: Option<Error> = None;
        loop {
            let left = match deadline {
                Some(d) => {
                    let left = d.saturating_duration_since(Instant::now());
                    if left.is_zero() {
                        return Err(deadline_exceeded(last_error));
                    }
                    Some(left)
                }
                None => None,
            };
            let (index, failure) = match self.channel().await {
                Err(e) => (None, e),
                Ok((index, channel)) => {
                    let bound = match (bound, left) {
                        (AttemptBound::Fixed, _) => Some(self.options.attempt_timeout),
                        (AttemptBound::Deadline, Some(left)) => {
                            Some(left + self.options.deadline_grace)
                        }
                        (AttemptBound::Deadline, None) => None,
                    };
                    let fut = attempt(channel, left);
                    let result = match bound {
                        Some(b) => match tokio::time::timeout(b, fut).await {
                            Ok(r) => r,
                            Err(_) => Err(tonic::Status::deadline_exceeded(format!(
                                "no answer from {} within {b:?}",
                                self.urls[index]
                            ))),
                        },
                        None => fut.await,
                    };
                    match result {
                        Ok(response) => return Ok(response.into_inner()),
                        Err(status) => {
                            let (error, class) = Error::from_status(&status);
                            match (class, retry) {
                                (Failure::Final, _) => return Err(error),
                                (Failure::Ambiguous, Retry::IfNotSent) => return Err(error),
                                _ => {}
                            }
                            tracing::debug!(endpoint = %self.urls[index], "retrying: {error}");
                            (Some(index), error)
                        }
                    }
                }
            };
            if let Some(index) = index {
                self.failed(index);
            }
            last_error = Some(failure);
            failures += 1;
            // A pause once every endpoint has failed in a row.
            if index.is_none() || failures.is_multiple_of(self.endpoints.len()) {
                let sleep = match deadline {
                    Some(d) => pause.min(d.saturating_duration_since(Instant::now())),
                    None => pause,
                };
                tokio::time::sleep(sleep).await;
                pause = (pause * 2).min(self.options.max_retry_pause);
            }
        }
    }
}

fn deadline_exceeded(last: Option<Error>) -> Error {
    Error::DeadlineExceeded(match last {
        Some(e) => format!("no member answered before the deadline (last error: {e})"),
        None => "no member answered before the deadline".into(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_get_a_scheme_and_tls_is_refused() {
        assert_eq!(url("127.0.0.1:2379").unwrap(), "http://127.0.0.1:2379");
        assert_eq!(url("http://h:1").unwrap(), "http://h:1");
        assert!(url("https://h:1").is_err());
        assert!(Transport::new(&[], Options::default()).is_err());
        assert!(Transport::new(&[" ".into()], Options::default()).is_err());
    }

    #[tokio::test]
    async fn a_dead_endpoint_is_skipped_until_the_deadline() {
        // Nothing listens on port 1: every connect is refused at once.
        let t = Transport::new(&["127.0.0.1:1".into()], Options::default()).unwrap();
        let deadline = Instant::now() + Duration::from_millis(300);
        let r: Result<()> = t
            .call(
                Some(deadline),
                Retry::Idempotent,
                AttemptBound::Fixed,
                |_, _| async { Ok(tonic::Response::new(())) },
            )
            .await;
        assert!(matches!(r, Err(Error::DeadlineExceeded(_))), "{r:?}");
    }
}
