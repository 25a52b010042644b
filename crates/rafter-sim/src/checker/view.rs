//! One partition of a history, prepared for searching: its operations with
//! local indices, their events in time order, and prefixes of it ("the
//! history as it stood when event `p` happened"), which is how a violation
//! is narrowed down to where it starts.

use super::entries::{events, Event, Interval};
use super::history::Operation;
use super::model::Partition;
use super::search::SearchOp;

pub(crate) struct View<'h, I, O> {
    /// Local index → index in the history.
    pub indices: Vec<usize>,
    pub ops: Vec<&'h Operation<I, O>>,
    pub events: Vec<Event>,
    pub call_pos: Vec<usize>,
    /// Position of each operation's return event, if it is determinate.
    pub ret_pos: Vec<Option<usize>>,
}

impl<'h, I, O> View<'h, I, O> {
    pub(crate) fn new(history: &'h [Operation<I, O>], partition: &Partition) -> Self {
        let ops: Vec<&Operation<I, O>> = partition.ops.iter().map(|&i| &history[i]).collect();
        let intervals: Vec<Interval> = ops
            .iter()
            .map(|op| Interval {
                call: op.call_ns,
                ret: op.output.as_ref().map(|_| op.return_ns),
            })
            .collect();
        let events = events(&intervals);
        let mut call_pos = vec![usize::MAX; ops.len()];
        let mut ret_pos = vec![None; ops.len()];
        for (pos, event) in events.iter().enumerate() {
            if event.is_call {
                call_pos[event.op] = pos;
            } else {
                ret_pos[event.op] = Some(pos);
            }
        }
        View {
            indices: partition.ops.clone(),
            ops,
            events,
            call_pos,
            ret_pos,
        }
    }

    /// The operations as of just after event `cut` (all of them if `None`):
    /// those that had not returned by then are pending, whatever they later
    /// returned.
    pub(crate) fn search_ops(&self, cut: Option<usize>) -> Vec<SearchOp<'h, I, O>> {
        self.ops
            .iter()
            .zip(&self.ret_pos)
            .map(|(op, ret)| SearchOp {
                input: &op.input,
                output: match (ret, cut) {
                    (Some(ret), Some(cut)) if *ret > cut => None,
                    _ => op.output.as_ref(),
                },
            })
            .collect()
    }

    /// The events up to and including `cut` (all of them if `None`).
    pub(crate) fn events_until(&self, cut: Option<usize>) -> &[Event] {
        match cut {
            Some(cut) => &self.events[..=cut],
            None => &self.events,
        }
    }

    /// Positions of the return events, in time order.
    pub(crate) fn returns(&self) -> Vec<usize> {
        (0..self.events.len())
            .filter(|&p| !self.events[p].is_call)
            .collect()
    }

    /// Whether local operations `a` and `b` overlap in time (an operation
    /// without a return is open-ended).
    pub(crate) fn concurrent(&self, a: usize, b: usize) -> bool {
        let before = |x: usize, y: usize| self.ret_pos[x].is_some_and(|r| r < self.call_pos[y]);
        !before(a, b) && !before(b, a)
    }
}
