//! `KV.RangeStream` (etcd 3.7): a Range answered in chunks, all at one
//! revision, so a member never builds a large range's whole answer at
//! once. The first chunk counts the keys in range and pins the revision;
//! later chunks read at that revision from the key after the last one sent
//! and stop at their limit without counting. Merging the messages
//! (protobuf merge: the key-values concatenate) gives the unary Range's
//! answer: the header and revision come first, `count` and `more` last.
//! Chunks start at 10 keys and double while a chunk's encoding is under
//! half of the request size limit (halving above twice it), as etcd's
//! design does. Sorted, filtered, count-only and single-key ranges are
//! answered in one message, as etcd does.

use prost::Message as _;
use rafter_proto::etcdserverpb::range_request::SortOrder;
use rafter_proto::etcdserverpb::{RangeRequest, RangeResponse};

use super::{MvccError, MvccStore};

/// Keys in the first chunk.
const FIRST_CHUNK_KEYS: i64 = 10;

/// Whether the range must be answered in one message.
fn unchunked(r: &RangeRequest) -> bool {
    r.count_only
        || r.sort_order != SortOrder::None as i32
        || r.sort_target != 0
        || r.min_mod_revision != 0
        || r.max_mod_revision != 0
        || r.min_create_revision != 0
        || r.max_create_revision != 0
        || r.range_end.is_empty()
}

/// Where a stream is: not started, reading pages, or done.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Step {
    Start,
    Reading,
    Done,
}

/// One RangeStream's progress: each [`RangeChunks::next_chunk`] reads the
/// next message (one store read), so the caller decides where each read
/// runs and can stop between two of them.
#[derive(Debug)]
pub struct RangeChunks {
    /// The request, its key moved past each chunk and its revision pinned.
    request: RangeRequest,
    max_request_bytes: usize,
    /// Keys the client asked for (its limit; all when none).
    wanted: i64,
    chunk_keys: i64,
    /// Keys in range, counted by the first chunk.
    total: i64,
    sent: i64,
    last_size_bytes: usize,
    cursor: Option<Vec<u8>>,
    step: Step,
}

impl RangeChunks {
    /// The chunks of `r` (validated).
    pub fn new(r: RangeRequest, max_request_bytes: usize) -> Self {
        Self {
            wanted: if r.limit > 0 { r.limit } else { i64::MAX },
            request: r,
            max_request_bytes,
            chunk_keys: FIRST_CHUNK_KEYS,
            total: 0,
            sent: 0,
            last_size_bytes: 0,
            cursor: None,
            step: Step::Start,
        }
    }

    /// The next message, or `None` after the last. Only the first message
    /// has a header. A chunk read after its pinned revision was compacted
    /// fails with `Compacted`, as etcd's does.
    pub fn next_chunk(&mut self, store: &MvccStore) -> Result<Option<RangeResponse>, MvccError> {
        let mut message = match self.step {
            Step::Done => return Ok(None),
            Step::Start if unchunked(&self.request) => {
                self.step = Step::Done;
                return store.range(&self.request).map(Some);
            }
            Step::Start => {
                self.request.limit = self.chunk_keys.min(self.wanted);
                let first = store.range_page(&self.request, true)?;
                self.total = first.count;
                // Later chunks read at the first one's revision even as
                // writes arrive (the header carries the current revision,
                // which is the one read unless the request named one).
                if self.request.revision <= 0 {
                    self.request.revision = first.header.as_ref().map_or(0, |h| h.revision);
                }
                first
            }
            Step::Reading => {
                if self.last_size_bytes < self.max_request_bytes / 2 {
                    self.chunk_keys = self.chunk_keys.saturating_mul(2);
                } else if self.last_size_bytes > self.max_request_bytes.saturating_mul(2) {
                    self.chunk_keys = (self.chunk_keys / 2).max(1);
                }
                let mut next_key = self.cursor.take().expect("reading after a full chunk");
                next_key.push(0);
                self.request.key = next_key;
                self.request.limit = self.chunk_keys.min(self.wanted - self.sent);
                let mut page = store.range_page(&self.request, false)?;
                page.header = None;
                page
            }
        };
        self.sent += message.kvs.len() as i64;
        self.last_size_bytes = message.encoded_len();
        self.cursor = message.kvs.last().map(|kv| kv.key.clone());
        if self.sent < self.wanted.min(self.total) && self.cursor.is_some() {
            // Not the last message: count and more come with the last one.
            message.count = 0;
            message.more = false;
            self.step = Step::Reading;
        } else {
            message.count = self.total;
            message.more = self.total > self.sent;
            self.step = Step::Done;
        }
        Ok(Some(message))
    }
}

#[cfg(test)]
mod tests {
    use rafter_proto::etcdserverpb::PutRequest;

    use super::*;
    use crate::mvcc::{ApplyEntry, KvRequest};

    fn put(store: &MvccStore, index: &mut u64, key: String, value: &str) {
        *index += 1;
        let request = KvRequest::Put(PutRequest {
            key: key.into_bytes(),
            value: value.as_bytes().to_vec(),
            ..Default::default()
        });
        let entry = ApplyEntry {
            index: *index,
            request: Some(&request),
            client: None,
            stamp: None,
        };
        store.apply(&[entry], false).expect("apply");
    }

    fn merged(
        store: &MvccStore,
        r: &RangeRequest,
        mut between: impl FnMut(usize),
    ) -> (usize, RangeResponse) {
        let mut all = RangeResponse::default();
        let mut messages = 0;
        let mut chunks = RangeChunks::new(r.clone(), 1 << 20);
        while let Some(chunk) = chunks.next_chunk(store).expect("range chunks") {
            messages += 1;
            all.merge(chunk.encode_to_vec().as_slice()).expect("merge");
            between(messages);
        }
        (messages, all)
    }

    #[test]
    fn chunks_merge_into_the_range_at_one_revision() {
        let store = MvccStore::open_in_memory().expect("store");
        let mut index = 0;
        for i in 0..1000 {
            put(&store, &mut index, format!("k{i:04}"), "v");
        }
        let r = RangeRequest {
            key: b"k".to_vec(),
            range_end: b"l".to_vec(),
            ..Default::default()
        };
        let unary = store.range(&r).expect("range");
        let (messages, all) = merged(&store, &r, |_| {});
        assert!(messages > 3, "{messages} messages");
        assert_eq!(all, unary);
        // Writes between chunks are not seen: the revision is pinned.
        let (messages, all) = merged(&store, &r, |message| {
            if message == 1 {
                for i in 0..1000 {
                    put(&store, &mut index, format!("k{i:04}"), "changed");
                }
            }
        });
        assert!(messages > 3, "{messages} messages");
        assert_eq!(all, unary);
        // Limits, at the current revision and at a past one.
        for (limit, revision) in [
            (1, 0),
            (10, 0),
            (11, 0),
            (999, 0),
            (1000, 0),
            (1001, 0),
            (0, 500),
            (0, 1500),
            (700, 1500),
        ] {
            let r = RangeRequest {
                limit,
                revision,
                ..r.clone()
            };
            assert_eq!(
                merged(&store, &r, |_| {}).1,
                store.range(&r).expect("range"),
                "limit {limit}"
            );
        }
    }
}
