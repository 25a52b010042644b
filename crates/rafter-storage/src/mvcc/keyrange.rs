//! etcd's key-range convention in one place: an empty `range_end` means the
//! single key, `range_end == [0]` means every key >= `key`, otherwise the
//! half-open interval `[key, range_end)`.

/// A resolved key interval.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyRange {
    Single(Vec<u8>),
    /// `[start, end)`; `end == None` means unbounded ("from key").
    Span {
        start: Vec<u8>,
        end: Option<Vec<u8>>,
    },
}

impl KeyRange {
    pub fn new(key: &[u8], range_end: &[u8]) -> KeyRange {
        match range_end {
            [] => KeyRange::Single(key.to_vec()),
            [0] => KeyRange::Span {
                start: key.to_vec(),
                end: None,
            },
            end => KeyRange::Span {
                start: key.to_vec(),
                end: Some(end.to_vec()),
            },
        }
    }

    pub fn contains(&self, k: &[u8]) -> bool {
        match self {
            KeyRange::Single(s) => s.as_slice() == k,
            KeyRange::Span { start, end } => {
                k >= start.as_slice() && end.as_ref().is_none_or(|e| k < e.as_slice())
            }
        }
    }

    /// True when the interval can hold no key (etcd answers such ranges with
    /// an empty result rather than an error).
    pub fn is_empty(&self) -> bool {
        match self {
            KeyRange::Single(_) => false,
            KeyRange::Span { start, end } => end.as_ref().is_some_and(|e| e <= start),
        }
    }

    /// Whether two intervals share a key (for etcd's duplicate-key rule).
    pub fn overlaps(&self, other: &KeyRange) -> bool {
        match (self, other) {
            (KeyRange::Single(a), b) | (b, KeyRange::Single(a)) => b.contains(a),
            (KeyRange::Span { start: s1, end: e1 }, KeyRange::Span { start: s2, end: e2 }) => {
                if self.is_empty() || other.is_empty() {
                    return false;
                }
                let s1_before_e2 = e2.as_ref().is_none_or(|e| s1 < e);
                let s2_before_e1 = e1.as_ref().is_none_or(|e| s2 < e);
                s1_before_e2 && s2_before_e1
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conventions() {
        assert!(KeyRange::new(b"a", b"").contains(b"a"));
        assert!(!KeyRange::new(b"a", b"").contains(b"ab"));
        assert!(KeyRange::new(b"a", b"\0").contains(b"zzz"));
        assert!(!KeyRange::new(b"b", b"\0").contains(b"a"));
        assert!(KeyRange::new(b"a", b"c").contains(b"b"));
        assert!(!KeyRange::new(b"a", b"c").contains(b"c"));
        assert!(KeyRange::new(b"c", b"a").is_empty());
        assert!(KeyRange::new(b"a", b"c").overlaps(&KeyRange::new(b"b", b"")));
        assert!(!KeyRange::new(b"a", b"c").overlaps(&KeyRange::new(b"c", b"d")));
        assert!(KeyRange::new(b"a", b"\0").overlaps(&KeyRange::new(b"x", b"y")));
    }
}
