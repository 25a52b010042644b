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

use std::collections::HashSet;

use super::bitset::Bitset;
use super::budget::Meter;
use super::entries::{EntryList, Event};
use super::model::Model;

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
    Illegal(Stuck<S>),
    OutOfBudget,
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

struct Frame<S> {
    node: usize,
    /// Which of the model's successor states was taken.
    successor: usize,
    state_before: S,
}

/// Searches for a linearization of `ops`, whose calls and returns are
/// `events` (in time order; an operation with a call but no return event is
/// pending and needs no linearization).
pub(crate) fn search<M: Model>(
    model: &M,
    ops: &[SearchOp<'_, M::Input, M::Output>],
    events: &[Event],
    meter: &mut Meter,
) -> Outcome<M::State> {
    let mut list = EntryList::new(events);
    let determinate = events.iter().filter(|e| !e.is_call).count();
    let mut linearized = Bitset::new(ops.len());
    let mut determinate_done = 0;
    let mut state = model.init();
    let mut seen: HashSet<(Bitset, M::State)> = HashSet::new();
    let mut stack: Vec<Frame<M::State>> = Vec::new();
    let mut successors = Vec::new();
    let mut stuck: Option<Stuck<M::State>> = None;
    let mut cursor = list.first();
    let mut first_successor = 0;
    loop {
        if determinate_done == determinate {
            return Outcome::Linearizable;
        }
        if !meter.step() {
            return Outcome::OutOfBudget;
        }
        let node = cursor.expect("a determinate operation is pending, so its return is ahead");
        let event = list.event(node);
        if event.is_call {
            let op = ops[event.op];
            successors.clear();
            model.step(&state, op.input, op.output, &mut successors);
            let mut lifted = false;
            for successor in first_successor..successors.len() {
                linearized.insert(event.op);
                if seen.insert((linearized.clone(), successors[successor].clone())) {
                    let next = successors.swap_remove(successor);
                    stack.push(Frame {
                        node,
                        successor,
                        state_before: std::mem::replace(&mut state, next),
                    });
                    list.lift(node);
                    if op.output.is_some() {
                        determinate_done += 1;
                    }
                    lifted = true;
                    break;
                }
                linearized.remove(event.op);
            }
            first_successor = 0;
            cursor = if lifted {
                list.first()
            } else {
                list.next(node)
            };
        } else {
            record_stuck(&mut stuck, &list, &stack, &state, determinate_done, node);
            let Some(frame) = stack.pop() else {
                return Outcome::Illegal(stuck.expect("recorded just above"));
            };
            let undone = list.event(frame.node).op;
            list.unlift(frame.node);
            linearized.remove(undone);
            if ops[undone].output.is_some() {
                determinate_done -= 1;
            }
            state = frame.state_before;
            cursor = Some(frame.node);
            first_successor = frame.successor + 1;
        }
    }
}

fn record_stuck<S: Clone + Eq>(
    stuck: &mut Option<Stuck<S>>,
    list: &EntryList,
    stack: &[Frame<S>],
    state: &S,
    depth: usize,
    node: usize,
) {
    if let Some(best) = stuck.as_mut() {
        if (best.depth, best.node) > (depth, node) {
            return;
        }
        if (best.depth, best.node) == (depth, node) {
            if !best.states.contains(state) {
                if best.states.len() < STATES_KEPT {
                    best.states.push(state.clone());
                } else {
                    best.more_states = true;
                }
            }
            return;
        }
    }
    let order = stack
        .iter()
        .enumerate()
        .map(|(i, frame)| {
            let after = stack.get(i + 1).map_or(state, |f| &f.state_before);
            (list.event(frame.node).op, after.clone())
        })
        .collect();
    *stuck = Some(Stuck {
        op: list.event(node).op,
        order,
        states: vec![state.clone()],
        more_states: false,
        depth,
        node,
    });
}
