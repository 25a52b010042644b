//! The history as the search walks it: call and return events in time order,
//! in a doubly linked list from which a linearized operation is lifted (its
//! call and return unlinked) and into which it is put back, in O(1), when the
//! search backtracks. Lifting keeps a removed node's own links, so undoing
//! lifts in reverse order restores the list exactly ("dancing links").

/// A call or return of an operation (indices are local to the partition).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Event {
    pub op: usize,
    pub is_call: bool,
}

/// When each operation of a partition was called and, if it is determinate,
/// returned.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Interval {
    pub call: u64,
    pub ret: Option<u64>,
}

/// Events in time order. At equal times calls come first: operations that
/// touch at an instant count as concurrent, so ties never produce a false
/// violation. Indeterminate operations have no return event: they may take
/// effect at any time after their call.
pub(crate) fn events(intervals: &[Interval]) -> Vec<Event> {
    let mut keyed: Vec<(u64, bool, usize)> = Vec::with_capacity(intervals.len() * 2);
    for (op, interval) in intervals.iter().enumerate() {
        keyed.push((interval.call, false, op));
        if let Some(ret) = interval.ret {
            assert!(
                interval.call <= ret,
                "operation {op} returns before its call"
            );
            keyed.push((ret, true, op));
        }
    }
    keyed.sort_unstable();
    keyed
        .into_iter()
        .map(|(_, is_return, op)| Event {
            op,
            is_call: !is_return,
        })
        .collect()
}

const NIL: usize = usize::MAX;
const HEAD: usize = 0;

#[derive(Debug, Clone)]
struct Node {
    prev: usize,
    next: usize,
    event: Event,
    /// For a call: the node of its return, or NIL if indeterminate.
    ret: usize,
}

/// The linked list of events not yet lifted. Node 0 is a sentinel head;
/// node `i + 1` is `events[i]`.
#[derive(Debug)]
pub(crate) struct EntryList {
    nodes: Vec<Node>,
}

impl EntryList {
    pub(crate) fn new(events: &[Event]) -> Self {
        let mut nodes = Vec::with_capacity(events.len() + 1);
        nodes.push(Node {
            prev: NIL,
            next: if events.is_empty() { NIL } else { 1 },
            event: Event {
                op: NIL,
                is_call: false,
            },
            ret: NIL,
        });
        let ops = events.iter().map(|e| e.op + 1).max().unwrap_or(0);
        let mut call_node = vec![NIL; ops];
        for (i, event) in events.iter().enumerate() {
            let id = i + 1;
            nodes.push(Node {
                prev: i,
                next: if id == events.len() { NIL } else { id + 1 },
                event: *event,
                ret: NIL,
            });
            if event.is_call {
                assert_eq!(
                    call_node[event.op], NIL,
                    "operation {} called twice",
                    event.op
                );
                call_node[event.op] = id;
            } else {
                let call = call_node[event.op];
                assert_ne!(call, NIL, "operation {} returns before its call", event.op);
                assert_eq!(nodes[call].ret, NIL, "operation {} returns twice", event.op);
                nodes[call].ret = id;
            }
        }
        EntryList { nodes }
    }

    /// The first node still in the list.
    pub(crate) fn first(&self) -> Option<usize> {
        self.next(HEAD)
    }

    pub(crate) fn next(&self, node: usize) -> Option<usize> {
        Some(self.nodes[node].next).filter(|&n| n != NIL)
    }

    /// Which of the events the list was built from `node` is.
    pub(crate) fn index(&self, node: usize) -> usize {
        assert!(node != HEAD && node < self.nodes.len(), "not an event node");
        node - 1
    }

    pub(crate) fn event(&self, node: usize) -> Event {
        self.nodes[node].event
    }

    /// Removes a call and its return (if any) from the list.
    pub(crate) fn lift(&mut self, call: usize) {
        assert!(self.nodes[call].event.is_call, "only calls are lifted");
        self.unlink(call);
        let ret = self.nodes[call].ret;
        if ret != NIL {
            self.unlink(ret);
        }
    }

    /// Undoes the most recent `lift` not yet undone, which must be `call`'s.
    pub(crate) fn unlift(&mut self, call: usize) {
        let ret = self.nodes[call].ret;
        if ret != NIL {
            self.relink(ret);
        }
        self.relink(call);
    }

    fn unlink(&mut self, node: usize) {
        let Node { prev, next, .. } = self.nodes[node];
        self.nodes[prev].next = next;
        if next != NIL {
            self.nodes[next].prev = prev;
        }
    }

    fn relink(&mut self, node: usize) {
        let Node { prev, next, .. } = self.nodes[node];
        assert_eq!(
            self.nodes[prev].next, next,
            "unlift out of order: the list changed around node {node}"
        );
        self.nodes[prev].next = node;
        if next != NIL {
            self.nodes[next].prev = node;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn walk(list: &EntryList) -> Vec<(usize, bool)> {
        let mut out = Vec::new();
        let mut node = list.first();
        while let Some(n) = node {
            let e = list.event(n);
            out.push((e.op, e.is_call));
            node = list.next(n);
        }
        out
    }

    #[test]
    fn events_sort_by_time_with_calls_first_on_ties() {
        let intervals = [
            Interval {
                call: 0,
                ret: Some(10),
            },
            Interval {
                call: 10,
                ret: Some(20),
            },
            Interval { call: 5, ret: None },
        ];
        let order: Vec<(usize, bool)> = events(&intervals)
            .iter()
            .map(|e| (e.op, e.is_call))
            .collect();
        assert_eq!(
            order,
            vec![(0, true), (2, true), (1, true), (0, false), (1, false)]
        );
    }

    #[test]
    fn lift_and_unlift_in_reverse_restore_the_list() {
        let intervals = [
            Interval {
                call: 0,
                ret: Some(3),
            },
            Interval {
                call: 1,
                ret: Some(2),
            },
            Interval { call: 4, ret: None },
        ];
        let mut list = EntryList::new(&events(&intervals));
        let before = walk(&list);
        // Calls are nodes 1 (op 0), 2 (op 1) and 5 (op 2).
        list.lift(2);
        assert_eq!(walk(&list), vec![(0, true), (0, false), (2, true)]);
        list.lift(1);
        assert_eq!(walk(&list), vec![(2, true)]);
        list.lift(5);
        assert_eq!(list.first(), None);
        list.unlift(5);
        list.unlift(1);
        list.unlift(2);
        assert_eq!(walk(&list), before);
    }
}
