//! Splitting a watch response that is larger than the server's request
//! limit into fragments, for watches created with `fragment`, exactly as
//! etcd's `sendFragments` does: a response under the limit, or with a
//! single event, goes whole; otherwise events are packed in order while the
//! fragment stays under the limit (at least one event each), and every
//! fragment but the last has `fragment` set.

use prost::Message;
use rafter_proto::etcdserverpb::WatchResponse;

pub fn fragment(resp: WatchResponse, max_request_bytes: usize) -> Vec<WatchResponse> {
    if resp.encoded_len() < max_request_bytes || resp.events.len() < 2 {
        return vec![resp];
    }
    let mut out = Vec::new();
    let mut rest = resp.events.into_iter().peekable();
    let shell = WatchResponse {
        events: Vec::new(),
        fragment: true,
        ..resp
    };
    while rest.peek().is_some() {
        let mut cur = shell.clone();
        let mut size = cur.encoded_len();
        while let Some(ev) = rest.peek() {
            let ev_bytes = ev.encoded_len();
            // One field tag plus the length prefix per repeated event.
            let added = 1 + prost::length_delimiter_len(ev_bytes) + ev_bytes;
            if !cur.events.is_empty() && size + added >= max_request_bytes {
                break;
            }
            size += added;
            cur.events.push(rest.next().expect("peeked"));
        }
        if rest.peek().is_none() {
            cur.fragment = false;
        }
        out.push(cur);
    }
    out
}
