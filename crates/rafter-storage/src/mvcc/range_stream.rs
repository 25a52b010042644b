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

impl MvccStore {
    /// Answers `r` (validated) in chunks, handing each message to `emit`
    /// in order; `emit` returns false when the client is gone. Only the
    /// first message has a header. A chunk read after its pinned revision
    /// was compacted fails with `Compacted`, as etcd's does.
    pub fn range_chunks(
        &self,
        r: &RangeRequest,
        max_request_bytes: usize,
        mut emit: impl FnMut(RangeResponse) -> bool,
    ) -> Result<(), MvccError> {
        if unchunked(r) {
            emit(self.range(r)?);
            return Ok(());
        }
        let wanted = if r.limit > 0 { r.limit } else { i64::MAX };
        let mut chunk_keys = FIRST_CHUNK_KEYS;
        let mut request = r.clone();
        request.limit = chunk_keys.min(wanted);
        let mut message = self.range_page(&request, true)?;
        let total = message.count;
        // Later chunks read at the first one's revision even as writes
        // arrive (the header carries the current revision, which is the
        // one read unless the request named one).
        if r.revision <= 0 {
            request.revision = message.header.as_ref().map_or(0, |h| h.revision);
        }
        let mut sent = message.kvs.len() as i64;
        let mut size = message.encoded_len();
        let mut cursor = message.kvs.last().map(|kv| kv.key.clone());
        while sent < wanted.min(total) {
            let Some(mut next_key) = cursor.take() else {
                break;
            };
            // Not the last message: count and more come with the last one.
            message.count = 0;
            message.more = false;
            if !emit(message) {
                return Ok(());
            }
            if size < max_request_bytes / 2 {
                chunk_keys = chunk_keys.saturating_mul(2);
            } else if size > max_request_bytes.saturating_mul(2) {
                chunk_keys = (chunk_keys / 2).max(1);
            }
            next_key.push(0);
            request.key = next_key;
            request.limit = chunk_keys.min(wanted - sent);
            message = self.range_page(&request, false)?;
            message.header = None;
            sent += message.kvs.len() as i64;
            size = message.encoded_len();
            cursor = message.kvs.last().map(|kv| kv.key.clone());
        }
        message.count = total;
        message.more = total > sent;
        emit(message);
        Ok(())
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
        store
            .range_chunks(r, 1 << 20, |chunk| {
                messages += 1;
                all.merge(chunk.encode_to_vec().as_slice()).expect("merge");
                between(messages);
                true
            })
            .expect("range chunks");
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
