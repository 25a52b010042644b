//! A session's sequence numbers: which it handed out and which are still
//! outstanding (not answered definitely), so every request can tell the
//! cluster the lowest seq whose answer it may still need (`acked_below`)
//! and the cluster can drop the answers below it.

use std::collections::BTreeSet;

#[derive(Debug)]
pub(crate) struct Seqs {
    next: u64,
    outstanding: BTreeSet<u64>,
}

impl Default for Seqs {
    fn default() -> Self {
        Seqs {
            next: 1,
            outstanding: BTreeSet::new(),
        }
    }
}

impl Seqs {
    /// A new seq, outstanding until settled.
    pub(crate) fn reserve(&mut self) -> u64 {
        let seq = self.next;
        self.next += 1;
        self.outstanding.insert(seq);
        seq
    }

    /// The client has the seq's definite answer (or gave up on it).
    pub(crate) fn settle(&mut self, seq: u64) {
        self.outstanding.remove(&seq);
    }

    /// The lowest outstanding seq, or the next one if none is.
    pub(crate) fn acked_below(&self) -> u64 {
        self.outstanding.first().copied().unwrap_or(self.next)
    }

    pub(crate) fn outstanding(&self) -> usize {
        self.outstanding.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn acked_below_is_the_lowest_outstanding_seq() {
        let mut s = Seqs::default();
        assert_eq!(s.acked_below(), 1);
        let (a, b, c) = (s.reserve(), s.reserve(), s.reserve());
        assert_eq!((a, b, c), (1, 2, 3));
        assert_eq!(s.acked_below(), 1);
        s.settle(b);
        assert_eq!(s.acked_below(), 1);
        s.settle(a);
        assert_eq!(s.acked_below(), 3);
        s.settle(c);
        assert_eq!(s.acked_below(), 4);
        s.settle(c);
        assert_eq!((s.acked_below(), s.outstanding()), (4, 0));
    }
}
