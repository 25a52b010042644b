//! The keys one watch covers, from a `WatchCreateRequest`'s key and
//! range_end with etcd's conventions: an empty key means `"\0"`, an empty
//! range_end a single key, a range_end of `"\0"` every key from `key` on,
//! and otherwise the half-open range `[key, range_end)`, which must not be
//! empty.

/// A watched key range.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WatchRange {
    Single(Vec<u8>),
    /// `[start, end)`; `None` is unbounded.
    Span {
        start: Vec<u8>,
        end: Option<Vec<u8>>,
    },
}

/// etcd's `mvcc: watcher range is empty`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("mvcc: watcher range is empty")]
pub struct WatchRangeError;

impl WatchRange {
    pub fn new(key: &[u8], range_end: &[u8]) -> Result<WatchRange, WatchRangeError> {
        let key = if key.is_empty() {
            vec![0]
        } else {
            key.to_vec()
        };
        match range_end {
            [] => Ok(WatchRange::Single(key)),
            [0] => Ok(WatchRange::Span {
                start: key,
                end: None,
            }),
            end if key.as_slice() >= end => Err(WatchRangeError),
            end => Ok(WatchRange::Span {
                start: key,
                end: Some(end.to_vec()),
            }),
        }
    }

    pub fn contains(&self, key: &[u8]) -> bool {
        match self {
            WatchRange::Single(k) => k.as_slice() == key,
            WatchRange::Span { start, end } => {
                key >= start.as_slice() && end.as_ref().is_none_or(|e| key < e.as_slice())
            }
        }
    }
}
