//! The cache's background task: list the prefix at a revision R, watch it
//! from R + 1, and keep the copy current. A broken stream resumes on the
//! next endpoint from the last revision the copy holds; a compacted one
//! is re-listed; a stream that leaves a waiting consistent read behind
//! for `stall_timeout` (its member cut off from the cluster, say) is
//! treated as broken. While a read waits, the task asks the server for
//! progress notifications so an idle prefix still catches up.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use rafter_proto::etcdserverpb::maintenance_client::MaintenanceClient;
use rafter_proto::etcdserverpb::watch_client::WatchClient;
use rafter_proto::etcdserverpb::watch_request::RequestUnion;
use rafter_proto::etcdserverpb::{
    RangeRequest, StatusRequest, WatchCreateRequest, WatchProgressRequest, WatchRequest,
    WatchResponse,
};
use tokio::sync::mpsc;
use tokio::time::Instant;
use tonic::transport::Channel;

use super::{CacheOptions, Shared};
use crate::answer::Wait;
use crate::client::Client;
use crate::error::Result;
use crate::transport::MAX_MESSAGE_BYTES;

/// Keys per page of a list.
const LIST_PAGE_KEYS: i64 = 10_000;
/// Longest pause between attempts when every endpoint fails.
const MAX_RETRY_PAUSE: Duration = Duration::from_secs(1);

/// Why a watch stream ended.
enum End {
    /// The copy cannot continue from its revision: list again.
    Relist(String),
    /// The stream failed (on this endpoint, if it got one): resume on the
    /// next endpoint after a pause.
    Broken(Option<usize>, String),
    /// The stream left a waiting read behind: resume on the next endpoint
    /// at once.
    Stalled(usize),
}

/// Loads the prefix at one revision (page by page, every page at the first
/// page's revision) and installs it.
pub(super) async fn list(shared: &Shared, client: &Client, timeout: Duration) -> Result<()> {
    let mut kvs = Vec::new();
    let mut revision = 0;
    let mut key = shared.key.clone();
    loop {
        let request = RangeRequest {
            key: key.clone(),
            range_end: shared.range_end.clone(),
            limit: LIST_PAGE_KEYS,
            revision,
            ..Default::default()
        };
        let page = client.range(&request, Wait::For(timeout)).await?;
        if revision == 0 {
            revision = page.header.as_ref().map_or(0, |h| h.revision);
        }
        let next = page.kvs.last().map(|kv| {
            let mut k = kv.key.clone();
            k.push(0);
            k
        });
        kvs.extend(page.kvs);
        match next {
            Some(next) if page.more => key = next,
            _ => break,
        }
    }
    shared.counters.lists.fetch_add(1, Ordering::Relaxed);
    shared.install(kvs, revision);
    Ok(())
}

/// Runs until the cache is dropped (which aborts it).
pub(super) async fn run(shared: Arc<Shared>, client: Client, options: CacheOptions) {
    let mut need_list = false;
    let mut pause = options.retry_pause;
    loop {
        if need_list {
            match list(&shared, &client, options.request_timeout).await {
                Ok(()) => need_list = false,
                Err(e) => {
                    tracing::debug!("cache list failed: {e}");
                    tokio::time::sleep(pause).await;
                    pause = (pause * 2).min(MAX_RETRY_PAUSE);
                    continue;
                }
            }
        }
        let before = shared.revision();
        let end = watch(&shared, &client, &options).await;
        if shared.revision() > before {
            pause = options.retry_pause;
        }
        match end {
            End::Relist(reason) => {
                tracing::debug!("cache re-lists: {reason}");
                need_list = true;
            }
            End::Broken(index, reason) => {
                tracing::debug!("cache watch broke: {reason}");
                if let Some(index) = index {
                    client.transport.failed(index);
                }
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(MAX_RETRY_PAUSE);
            }
            End::Stalled(index) => {
                tracing::debug!("cache watch stalled behind a waiting read; moving on");
                shared.counters.stalls.fetch_add(1, Ordering::Relaxed);
                client.transport.failed(index);
            }
        }
    }
}

/// Whether a server of this version sends a requested progress
/// notification only after every event up to its revision (etcd fixed this
/// in 3.4.25 and 3.5.8, with related fixes up to 3.4.31 and 3.5.13, the
/// versions Kubernetes' consistent reads from cache require; Rafter reports
/// 3.6). Against older servers a consistent read the cache has not caught
/// up with is answered by the server instead.
pub(super) fn progress_is_ordered(version: &str) -> bool {
    let mut parts = version
        .trim_start_matches('v')
        .split('.')
        .map(|p| {
            p.chars()
                .take_while(char::is_ascii_digit)
                .collect::<String>()
        })
        .map(|p| p.parse::<u64>().unwrap_or(0));
    let major = parts.next().unwrap_or(0);
    let minor = parts.next().unwrap_or(0);
    let patch = parts.next().unwrap_or(0);
    match (major, minor) {
        (3, 4) => patch >= 31,
        (3, 5) => patch >= 13,
        (3, m) => m >= 6,
        (m, _) => m > 3,
    }
}

async fn server_version(
    channel: Channel,
    timeout: Duration,
) -> std::result::Result<String, String> {
    let mut maintenance = MaintenanceClient::new(channel);
    let call = maintenance.status(StatusRequest {});
    match tokio::time::timeout(timeout, call).await {
        Ok(Ok(r)) => Ok(r.into_inner().version),
        Ok(Err(status)) => Err(format!("status: {}", status.message())),
        Err(_) => Err(format!("status: no answer within {timeout:?}")),
    }
}

/// One watch stream, from the copy's revision + 1, until it ends.
async fn watch(shared: &Shared, client: &Client, options: &CacheOptions) -> End {
    let (index, channel) = match client.transport.channel().await {
        Ok(c) => c,
        Err(e) => return End::Broken(None, e.to_string()),
    };
    // One attempt each, bounded like any attempt of the client's.
    let attempt_timeout = client
        .transport
        .options
        .attempt_timeout
        .min(options.request_timeout);
    let ordered = match server_version(channel.clone(), attempt_timeout).await {
        Ok(version) => progress_is_ordered(&version),
        Err(e) => return End::Broken(Some(index), e),
    };
    shared.progress_ordered.store(ordered, Ordering::Relaxed);
    let (requests, outgoing) = mpsc::channel(4);
    let create = WatchRequest {
        request_union: Some(RequestUnion::CreateRequest(WatchCreateRequest {
            key: shared.key.clone(),
            range_end: shared.range_end.clone(),
            start_revision: shared.revision() + 1,
            ..Default::default()
        })),
    };
    requests.try_send(create).expect("a new channel has room");
    let mut watch_client = WatchClient::new(channel).max_decoding_message_size(MAX_MESSAGE_BYTES);
    let open = watch_client.watch(tokio_stream::wrappers::ReceiverStream::new(outgoing));
    let mut stream = match tokio::time::timeout(attempt_timeout, open).await {
        Ok(Ok(r)) => r.into_inner(),
        Ok(Err(status)) => return End::Broken(Some(index), status.message().to_string()),
        Err(_) => return End::Broken(Some(index), "the watch did not open".into()),
    };
    shared.counters.watches.fetch_add(1, Ordering::Relaxed);
    let mut behind_since: Option<Instant> = None;
    let mut last_progress_request: Option<Instant> = None;
    loop {
        let before = shared.revision();
        tokio::select! {
            message = stream.message() => match message {
                Ok(Some(response)) => {
                    if let Err(end) = on_response(shared, index, ordered, response) {
                        return end;
                    }
                }
                Ok(None) => return End::Broken(Some(index), "the server ended the stream".into()),
                Err(status) => return End::Broken(Some(index), status.message().to_string()),
            },
            _ = shared.wake.notified() => {}
            _ = tokio::time::sleep(options.progress_interval) => {}
        }
        let revision = shared.revision();
        if shared.wanted.load(Ordering::Relaxed) <= revision {
            behind_since = None;
            continue;
        }
        let now = Instant::now();
        if revision > before {
            behind_since = Some(now);
        }
        let since = *behind_since.get_or_insert(now);
        if ordered && last_progress_request.is_none_or(|t| now - t >= options.progress_interval) {
            let request = WatchRequest {
                request_union: Some(RequestUnion::ProgressRequest(WatchProgressRequest {})),
            };
            // A full queue already holds a request the server will answer.
            if requests.try_send(request).is_ok() {
                shared
                    .counters
                    .progress_requests
                    .fetch_add(1, Ordering::Relaxed);
            }
            last_progress_request = Some(now);
        }
        if now - since >= options.stall_timeout {
            return End::Stalled(index);
        }
    }
}

/// Applies one response to the copy; `Err` ends the stream.
fn on_response(
    shared: &Shared,
    index: usize,
    ordered: bool,
    response: WatchResponse,
) -> std::result::Result<(), End> {
    if response.compact_revision > 0 {
        return Err(End::Relist(format!(
            "revision {} is compacted (compaction at {})",
            shared.revision() + 1,
            response.compact_revision
        )));
    }
    if response.canceled {
        return Err(End::Broken(
            Some(index),
            format!("the server cancelled the watch: {}", response.cancel_reason),
        ));
    }
    if response.created {
        return Ok(());
    }
    if !response.events.is_empty() {
        return shared.apply(&response.events).map_err(|o| {
            End::Relist(format!(
                "an event at revision {} arrived when the copy was at {}",
                o.event_revision, o.revision
            ))
        });
    }
    if ordered {
        let revision = response.header.map_or(0, |h| h.revision);
        shared.progress(revision);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::progress_is_ordered;

    #[test]
    fn progress_is_trusted_from_the_fixed_versions_on() {
        assert!(!progress_is_ordered("3.4.23"));
        assert!(progress_is_ordered("3.4.31"));
        assert!(!progress_is_ordered("3.5.12"));
        assert!(progress_is_ordered("3.5.21"));
        assert!(progress_is_ordered("3.6.0"));
        assert!(progress_is_ordered("v3.6.5"));
        assert!(!progress_is_ordered("3.3.27"));
        assert!(!progress_is_ordered("garbage"));
    }
}
