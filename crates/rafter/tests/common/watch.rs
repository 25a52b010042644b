//! A raw Watch stream on the generated tonic client, for what the `etcd-client`
//! crate cannot express or does not show: several watches on one stream with
//! client-chosen ids, raw create/cancel/progress requests in any order, and
//! every response field (`fragment` included).
//!
//! The gRPC call runs in its own task that forwards every response into a
//! channel as soon as it arrives, so a test that is busy writing never stalls
//! the server's sends, and requests can be sent before the server answered
//! anything (etcd sends no response headers before its first message).

use std::time::Duration;

use rafter_proto::etcdserverpb::watch_client::WatchClient;
use rafter_proto::etcdserverpb::watch_request::RequestUnion;
use rafter_proto::etcdserverpb::{
    WatchCancelRequest, WatchCreateRequest, WatchProgressRequest, WatchRequest, WatchResponse,
};
use rafter_proto::mvccpb::Event;
use tokio::sync::mpsc;
use tokio_stream::wrappers::UnboundedReceiverStream;
use tonic::transport::Channel;

/// How long a test waits for a response it expects.
pub const RESPONSE_DEADLINE: Duration = Duration::from_secs(10);
/// Largest response a raw stream accepts (etcd sends up to 2 GiB; the tests'
/// largest unfragmented response is a few MiB).
const MAX_DECODE_BYTES: usize = 64 * 1024 * 1024;

/// The watch id etcd puts on responses that belong to no watcher: a progress
/// response to a `WatchProgressRequest`, and the refusal of a create request
/// (duplicate id, empty range). etcd's Go client calls it `InvalidWatchID`.
pub const NO_WATCH_ID: i64 = -1;

/// One bidirectional Watch stream.
pub struct RawWatch {
    requests: mpsc::UnboundedSender<WatchRequest>,
    responses: mpsc::UnboundedReceiver<Result<WatchResponse, tonic::Status>>,
    /// A description for failure messages (the endpoint).
    name: String,
}

impl RawWatch {
    /// Opens a Watch stream to `endpoint` (e.g. `http://127.0.0.1:2379`).
    pub async fn open(endpoint: &str) -> RawWatch {
        let channel = Channel::from_shared(endpoint.to_string())
            .expect("valid endpoint URL")
            .connect_timeout(Duration::from_secs(2))
            .connect()
            .await
            .unwrap_or_else(|e| panic!("connect a watch stream to {endpoint}: {e}"));
        RawWatch::on_channel(channel, endpoint)
    }

    /// Opens a Watch stream on an existing channel.
    pub fn on_channel(channel: Channel, name: &str) -> RawWatch {
        let (request_tx, request_rx) = mpsc::unbounded_channel();
        let (response_tx, response_rx) = mpsc::unbounded_channel();
        let mut client = WatchClient::new(channel).max_decoding_message_size(MAX_DECODE_BYTES);
        tokio::spawn(async move {
            let mut stream = match client.watch(UnboundedReceiverStream::new(request_rx)).await {
                Ok(response) => response.into_inner(),
                Err(status) => {
                    let _ = response_tx.send(Err(status));
                    return;
                }
            };
            loop {
                match stream.message().await {
                    Ok(Some(message)) => {
                        if response_tx.send(Ok(message)).is_err() {
                            return;
                        }
                    }
                    Ok(None) => return,
                    Err(status) => {
                        let _ = response_tx.send(Err(status));
                        return;
                    }
                }
            }
        });
        RawWatch {
            requests: request_tx,
            responses: response_rx,
            name: name.to_string(),
        }
    }

    /// Sends a raw request; fails the test (with the stream's error, e.g.
    /// Unimplemented) if the stream is over.
    pub fn send(&mut self, request: RequestUnion) {
        let sent = self.requests.send(WatchRequest {
            request_union: Some(request),
        });
        if sent.is_err() {
            let mut why = String::from("it ended");
            while let Ok(item) = self.responses.try_recv() {
                if let Err(status) = item {
                    why = format!("{status:?}");
                }
            }
            panic!("watch stream to {} is closed: {why}", self.name);
        }
    }

    /// Sends a create request.
    pub fn create(&mut self, request: WatchCreateRequest) {
        self.send(RequestUnion::CreateRequest(request));
    }

    /// Sends a cancel request for `watch_id`.
    pub fn cancel(&mut self, watch_id: i64) {
        self.send(RequestUnion::CancelRequest(WatchCancelRequest { watch_id }));
    }

    /// Sends a progress request.
    pub fn request_progress(&mut self) {
        self.send(RequestUnion::ProgressRequest(WatchProgressRequest {}));
    }

    /// Sends a create request and returns its `created` response; fails the
    /// test if another response comes first or the watch was refused.
    pub async fn create_ok(&mut self, request: WatchCreateRequest) -> WatchResponse {
        let shown = format!("{request:?}");
        self.create(request);
        let response = self.next().await;
        assert!(
            response.created && !response.canceled && response.events.is_empty(),
            "expected the created response to {shown}, got {response:?}"
        );
        response
    }

    /// The next response, or `None` if none arrives within `wait`. Fails the
    /// test if the stream ends or fails.
    pub async fn next_within(&mut self, wait: Duration) -> Option<WatchResponse> {
        match tokio::time::timeout(wait, self.responses.recv()).await {
            Err(_) => None,
            Ok(Some(Ok(response))) => Some(response),
            Ok(Some(Err(status))) => panic!("watch stream to {} failed: {status:?}", self.name),
            Ok(None) => panic!("watch stream to {} ended", self.name),
        }
    }

    /// The next response; fails the test if none arrives within
    /// [`RESPONSE_DEADLINE`].
    pub async fn next(&mut self) -> WatchResponse {
        self.next_within(RESPONSE_DEADLINE)
            .await
            .unwrap_or_else(|| {
                panic!(
                    "no watch response from {} within {RESPONSE_DEADLINE:?}",
                    self.name
                )
            })
    }

    /// The next stream item as it is (a response, the stream's error, or
    /// `None` when it ended), waiting at most `wait`; `Err(())` on timeout.
    pub async fn next_raw(
        &mut self,
        wait: Duration,
    ) -> Result<Option<Result<WatchResponse, tonic::Status>>, ()> {
        tokio::time::timeout(wait, self.responses.recv())
            .await
            .map_err(|_| ())
    }
}

/// A create request for `key` up to `range_end` (empty: the key alone).
pub fn create_request(key: &[u8], range_end: &[u8]) -> WatchCreateRequest {
    WatchCreateRequest {
        key: key.to_vec(),
        range_end: range_end.to_vec(),
        ..Default::default()
    }
}

/// The end of the range of keys that start with `prefix` (etcd's
/// `GetPrefixRangeEnd`): the prefix with its last byte below 0xff
/// incremented, or `"\0"` (every key from `prefix` on) if there is none.
pub fn prefix_end(prefix: &[u8]) -> Vec<u8> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return end;
        }
    }
    vec![0]
}

/// An event in one line: `PUT key=value c<create> m<mod> v<version> l<lease>`
/// (and ` prev=...` when it has a previous key-value), for comparisons whose
/// failure messages show what differed.
pub fn show_event(event: &Event) -> String {
    let kind = match event.r#type {
        0 => "PUT",
        1 => "DELETE",
        other => return format!("unknown event type {other}: {event:?}"),
    };
    let kv = |kv: &rafter_proto::mvccpb::KeyValue| {
        format!(
            "{}={} c{} m{} v{} l{}",
            String::from_utf8_lossy(&kv.key),
            show_value(&kv.value),
            kv.create_revision,
            kv.mod_revision,
            kv.version,
            kv.lease
        )
    };
    let mut line = match &event.kv {
        Some(current) => format!("{kind} {}", kv(current)),
        None => format!("{kind} <no kv>"),
    };
    if let Some(prev) = &event.prev_kv {
        line.push_str(&format!(" prev={}", kv(prev)));
    }
    line
}

/// A value as text; long values are summarised by length and first bytes.
fn show_value(value: &[u8]) -> String {
    if value.len() <= 40 {
        String::from_utf8_lossy(value).into_owned()
    } else {
        format!(
            "<{} bytes: {}...>",
            value.len(),
            String::from_utf8_lossy(&value[..16])
        )
    }
}
