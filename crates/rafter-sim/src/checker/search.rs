//! The search for a linearization (Wing & Gong, with Lowe's memoisation, as
//! Porcupine does it): walk the events in time order; at a call, try to
//! linearize that operation now (apply it to the model, lift it out of the
//! list, start again from the front); at a return, the operation returning
//! was not linearized in time, so undo the most recent choice and try the
//! next one. A configuration (set of linearized operations, model state)
//! already explored is never explored again: that bounds the search by the
//! number of distinct configurations rather than orders.
//!
//! Indeterminate operations have no return event, so nothing forces them to
//! be linearized: the search succeeds once every determinate operation is.
//! They sit in a list of their own and are tried only when no determinate
//! candidate is left, so that lost operations that never took effect cost
//! nothing while the search walks past them. When they are tried, all of a
//! configuration's indeterminate children are entered in the memo before
//! any is explored: then "lost write a, then lost write b" is recognised as
//! doing more than "lost write b" alone to reach the same state, and skipped
//! (see `Seen`), which keeps the search from trying every subset of the lost
//! writes when the history is not linearizable. A child after which the
//! operation at the barrier could never be linearized (the model says so,
//! e.g. its answer's revision is already behind) is not entered: that is
//! what bounds the subsets tried when every lost write changes the state
//! (a revision counter does). Of lost operations with equal inputs, only
//! the latest called is tried: the others are its twins.
//! The differential property test in `tests` checks all this against a
//! brute-force search.

use super::bitset::Bitset;
use super::budget::Meter;
use super::entries::{EntryList, Event};
use super::model::Model;
use super::seen::Seen;

/// An operation as the search sees it (`output == None`: indeterminate).
#[derive(Debug)]
pub(crate) struct SearchOp<'a, I, O> {
    pub input: &'a I,
    pub output: Option<&'a O>,
}

// Manual impls: the derives would wrongly require `I: Clone, O: Clone`.
impl<I, O> Clone for SearchOp<'_, I, O> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<I, O> Copy for SearchOp<'_, I, O> {}

#[derive(Debug)]
pub(crate) enum Outcome<S> {
    Linearizable,
    /// With where the search got stuck, if it was asked to keep track.
    Illegal(Option<Stuck<S>>),
    OutOfBudget,
}

/// Whether the search keeps track of where it gets stuck. Keeping track
/// copies the search stack at every new furthest point, which costs time
/// quadratic in the history's length, so only the explanation of a
/// violation asks for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Track {
    Stuck,
    Nothing,
}

/// How many distinct states a stuck point keeps for the report.
const STATES_KEPT: usize = 8;

/// The furthest the search got: the most determinate operations linearized
/// when it hit the return of an operation it could not linearize (ties go to
/// the latest such return). Over the whole search, `states` are all the
/// model states in which it was stuck there (up to `STATES_KEPT`).
#[derive(Debug, Clone)]
pub(crate) struct Stuck<S> {
    /// The operation whose return stopped the search.
    pub op: usize,
    /// One order in which the other operations were linearized, with the
    /// model state after each.
    pub order: Vec<(usize, S)>,
    pub states: Vec<S>,
    pub more_states: bool,
    depth: usize,
    node: usize,
}

/// The operations linearized so far, determinate and indeterminate ones
/// numbered separately.
struct Linearized {
    determinate: Bitset,
    indeterminate: Bitset,
}

/// What the search does next.
#[derive(Debug, Clone, Copy)]
enum Next {
    /// Walk the determinate list from `node`, trying calls (from their
    /// `first_successor`-th successor state) until the first return.
    Determinate {
        node: Option<usize>,
        first_successor: usize,
    },
    /// Explore the `child`-th indeterminate child of the configuration of
    /// the top `Level`.
    Indeterminate { child: usize },
}

/// A configuration whose determinate candidates are exhausted: the first
/// pending return, and its indeterminate children (already entered in the
/// memo).
struct Level<S> {
    barrier: usize,
    children: Vec<Child<S>>,
}

struct Child<S> {
    node: usize,
    op: usize,
    state: S,
}

/// A choice made: the operation lifted, how to take the next alternative,
/// and the state before.
struct Frame<S> {
    op: usize,
    node: usize,
    resume: Next,
    state_before: S,
}

/// Searches for a linearization of `ops`, whose calls and returns are
/// `events` (in time order; an operation with a call but no return event is
/// pending and needs no linearization).
pub(crate) fn search<M: Model>(
    model: &M,
    ops: &[SearchOp<'_, M::Input, M::Output>],
    events: &[Event],
    track: Track,
    meter: &mut Meter,
) -> Outcome<M::State> {
    Search::new(model, ops, events, track).run(meter)
}

const DETERMINATE: usize = 0;
const INDETERMINATE: usize = 1;

struct Search<'s, 'h, M: Model> {
    model: &'s M,
    ops: &'s [SearchOp<'h, M::Input, M::Output>],
    /// Each operation's number in its kind's set.
    slot: Vec<usize>,
    /// For an indeterminate operation, the next one called with an equal
    /// input, and each one's call position.
    twin: Vec<Option<usize>>,
    call_position: Vec<usize>,
    /// The determinate events and the indeterminate calls.
    lists: [EntryList; 2],
    /// Position in the whole event order of each list's events.
    positions: [Vec<usize>; 2],
    linearized: Linearized,
    determinate: usize,
    determinate_done: usize,
    state: M::State,
    seen: Seen<M::State>,
    stack: Vec<Frame<M::State>>,
    levels: Vec<Level<M::State>>,
    successors: Vec<M::State>,
    track: Track,
    stuck: Option<Stuck<M::State>>,
}

impl<'s, 'h, M: Model> Search<'s, 'h, M> {
    fn new(
        model: &'s M,
        ops: &'s [SearchOp<'h, M::Input, M::Output>],
        events: &[Event],
        track: Track,
    ) -> Self {
        let mut slot = Vec::with_capacity(ops.len());
        let mut counts = [0, 0];
        for op in ops {
            let kind = kind_of(op);
            slot.push(counts[kind]);
            counts[kind] += 1;
        }
        let mut split: [Vec<Event>; 2] = [Vec::new(), Vec::new()];
        let mut positions: [Vec<usize>; 2] = [Vec::new(), Vec::new()];
        for (position, event) in events.iter().enumerate() {
            let kind = kind_of(&ops[event.op]);
            assert!(
                event.is_call || kind == DETERMINATE,
                "an indeterminate operation has no return event"
            );
            split[kind].push(*event);
            positions[kind].push(position);
        }
        let mut call_position = vec![usize::MAX; ops.len()];
        for (event, &position) in split[INDETERMINATE].iter().zip(&positions[INDETERMINATE]) {
            call_position[event.op] = position;
        }
        let mut twin = vec![None; ops.len()];
        for (i, earlier) in split[INDETERMINATE].iter().enumerate() {
            twin[earlier.op] = split[INDETERMINATE][i + 1..]
                .iter()
                .find(|later| ops[later.op].input == ops[earlier.op].input)
                .map(|later| later.op);
        }
        let determinate = split[DETERMINATE].iter().filter(|e| !e.is_call).count();
        assert_eq!(
            counts[DETERMINATE], determinate,
            "every determinate operation has a return event"
        );
        Search {
            model,
            ops,
            slot,
            twin,
            call_position,
            lists: [
                EntryList::new(&split[DETERMINATE]),
                EntryList::new(&split[INDETERMINATE]),
            ],
            positions,
            linearized: Linearized {
                determinate: Bitset::new(counts[DETERMINATE]),
                indeterminate: Bitset::new(counts[INDETERMINATE]),
            },
            determinate,
            determinate_done: 0,
            state: model.init(),
            seen: Seen::new(),
            stack: Vec::new(),
            levels: Vec::new(),
            successors: Vec::new(),
            track,
            stuck: None,
        }
    }

    fn run(mut self, meter: &mut Meter) -> Outcome<M::State> {
        let mut next = self.restart();
        loop {
            if self.determinate_done == self.determinate {
                return Outcome::Linearizable;
            }
            if !meter.step() {
                return Outcome::OutOfBudget;
            }
            next = match next {
                Next::Determinate {
                    node,
                    first_successor,
                } => {
                    let node =
                        node.expect("a determinate operation is pending, so its return is ahead");
                    if self.lists[DETERMINATE].event(node).is_call {
                        self.try_determinate(node, first_successor)
                    } else {
                        self.open_level(node);
                        Next::Indeterminate { child: 0 }
                    }
                }
                Next::Indeterminate { child } => {
                    let level = self.levels.last().expect("a level is open");
                    if child < level.children.len() {
                        self.take_child(child)
                    } else {
                        let barrier = level.barrier;
                        self.record_stuck(barrier);
                        self.levels.pop();
                        match self.backtrack() {
                            Some(resume) => resume,
                            None => return Outcome::Illegal(self.stuck),
                        }
                    }
                }
            };
        }
    }

    /// The walk from the front of the determinate list.
    fn restart(&self) -> Next {
        Next::Determinate {
            node: self.lists[DETERMINATE].first(),
            first_successor: 0,
        }
    }

    /// Tries to linearize the determinate call at `node` now.
    fn try_determinate(&mut self, node: usize, first_successor: usize) -> Next {
        let op = self.lists[DETERMINATE].event(node).op;
        let search_op = self.ops[op];
        self.successors.clear();
        self.model.step(
            &self.state,
            search_op.input,
            search_op.output,
            &mut self.successors,
        );
        let slot = self.slot[op];
        for successor in first_successor..self.successors.len() {
            self.linearized.determinate.insert(slot);
            let entered = self.seen.enter(
                &self.linearized.determinate,
                &self.successors[successor],
                &self.linearized.indeterminate,
            );
            if entered {
                let next = self.successors.swap_remove(successor);
                self.push(
                    op,
                    node,
                    Next::Determinate {
                        node: Some(node),
                        first_successor: successor + 1,
                    },
                    next,
                );
                self.lists[DETERMINATE].lift(node);
                self.determinate_done += 1;
                return self.restart();
            }
            self.linearized.determinate.remove(slot);
        }
        Next::Determinate {
            node: self.lists[DETERMINATE].next(node),
            first_successor: 0,
        }
    }

    /// Opens a level for the current configuration, stuck at the return
    /// `barrier`: enters every indeterminate child (a call before the
    /// barrier, with each of its successor states) not subsumed.
    ///
    /// Of several such calls with equal inputs only the latest is a child:
    /// an earlier one can take effect wherever a later one can, so a
    /// linearization that uses an earlier one while a later one is unused
    /// has a twin using the later one, with the same states.
    fn open_level(&mut self, barrier: usize) {
        let limit = self.positions[DETERMINATE][self.lists[DETERMINATE].index(barrier)];
        let stuck = self.ops[self.lists[DETERMINATE].event(barrier).op];
        let stuck_output = stuck
            .output
            .expect("a return event belongs to a determinate operation");
        let mut children = Vec::new();
        let mut cursor = self.lists[INDETERMINATE].first();
        while let Some(node) = cursor {
            cursor = self.lists[INDETERMINATE].next(node);
            let op = self.lists[INDETERMINATE].event(node).op;
            if self.call_position[op] > limit {
                break;
            }
            if self.has_later_twin(op, limit) {
                continue;
            }
            let search_op = self.ops[op];
            self.successors.clear();
            self.model.step(
                &self.state,
                search_op.input,
                search_op.output,
                &mut self.successors,
            );
            self.linearized.indeterminate.insert(self.slot[op]);
            for state in self.successors.drain(..) {
                // The barrier's operation must come before its return,
                // so after this child; a child that rules it out for good
                // is a dead end.
                if !self
                    .model
                    .can_still_linearize(&state, stuck.input, stuck_output)
                {
                    continue;
                }
                if self.seen.enter(
                    &self.linearized.determinate,
                    &state,
                    &self.linearized.indeterminate,
                ) {
                    children.push(Child { node, op, state });
                }
            }
            self.linearized.indeterminate.remove(self.slot[op]);
        }
        self.levels.push(Level { barrier, children });
    }

    /// Whether an unused indeterminate operation with the same input as
    /// `op` was called after it and before position `limit`.
    fn has_later_twin(&self, op: usize, limit: usize) -> bool {
        let mut twin = self.twin[op];
        while let Some(other) = twin {
            if self.call_position[other] > limit {
                return false;
            }
            if !self.linearized.indeterminate.contains(self.slot[other]) {
                return true;
            }
            twin = self.twin[other];
        }
        false
    }

    /// Linearizes the top level's `child`-th child (entered already).
    fn take_child(&mut self, child: usize) -> Next {
        let level = self.levels.last_mut().expect("a level is open");
        let Child { node, op, .. } = level.children[child];
        let state = level.children[child].state.clone();
        self.linearized.indeterminate.insert(self.slot[op]);
        self.push(op, node, Next::Indeterminate { child: child + 1 }, state);
        self.lists[INDETERMINATE].lift(node);
        self.restart()
    }

    fn push(&mut self, op: usize, node: usize, resume: Next, state: M::State) {
        let state_before = std::mem::replace(&mut self.state, state);
        self.stack.push(Frame {
            op,
            node,
            resume,
            state_before,
        });
    }

    /// Undoes the latest choice; returns how to take its next alternative,
    /// or `None` if no choice is left to undo.
    fn backtrack(&mut self) -> Option<Next> {
        let frame = self.stack.pop()?;
        let kind = match frame.resume {
            Next::Determinate { .. } => DETERMINATE,
            Next::Indeterminate { .. } => INDETERMINATE,
        };
        self.lists[kind].unlift(frame.node);
        let slot = self.slot[frame.op];
        if kind == DETERMINATE {
            self.linearized.determinate.remove(slot);
            self.determinate_done -= 1;
        } else {
            self.linearized.indeterminate.remove(slot);
        }
        self.state = frame.state_before;
        Some(frame.resume)
    }

    fn record_stuck(&mut self, node: usize) {
        if self.track == Track::Nothing {
            return;
        }
        let depth = self.determinate_done;
        if let Some(best) = self.stuck.as_mut() {
            if (best.depth, best.node) > (depth, node) {
                return;
            }
            if (best.depth, best.node) == (depth, node) {
                if !best.states.contains(&self.state) {
                    if best.states.len() < STATES_KEPT {
                        best.states.push(self.state.clone());
                    } else {
                        best.more_states = true;
                    }
                }
                return;
            }
        }
        let order = self
            .stack
            .iter()
            .enumerate()
            .map(|(i, frame)| {
                let after = self
                    .stack
                    .get(i + 1)
                    .map_or(&self.state, |f| &f.state_before);
                (frame.op, after.clone())
            })
            .collect();
        self.stuck = Some(Stuck {
            op: self.lists[DETERMINATE].event(node).op,
            order,
            states: vec![self.state.clone()],
            more_states: false,
            depth,
            node,
        });
    }
}

fn kind_of<I, O>(op: &SearchOp<'_, I, O>) -> usize {
    if op.output.is_some() {
        DETERMINATE
    } else {
        INDETERMINATE
    }
}
