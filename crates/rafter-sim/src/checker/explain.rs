//! Turning "this partition is not linearizable" into something a person can
//! read. A prefix of a history (the operations called by some event, those
//! still running counted as pending) that is not linearizable stays so as
//! the prefix grows, so a bisection over return events finds the first
//! return after which no linearization exists: that operation is the
//! culprit. The window shown is the culprit, the operations overlapping it,
//! the operation at which the search for a linearization of that prefix got
//! furthest (usually the culprit), and the last operation before them that
//! changed the state.

use super::budget::{Budget, Meter};
use super::model::Model;
use super::report::{Furthest, Role, Violation, WindowOp};
use super::search::{search, Outcome, Stuck, Track};
use super::view::View;

/// Explains why `view` (from `partition_label`) is not linearizable. The
/// narrowing-down gets its own `budget`; if that runs out, the smallest
/// failing prefix found so far is explained instead, and the violation says
/// it may not be minimal.
pub(crate) fn explain<M: Model>(
    model: &M,
    view: &View<'_, M::Input, M::Output>,
    partition_label: &str,
    budget: Budget,
) -> Violation {
    let returns = view.returns();
    assert!(
        !returns.is_empty(),
        "a history without completed operations is linearizable"
    );
    let mut meter = Meter::start(budget);
    let probe = |cut: usize, meter: &mut Meter| {
        let cut = Some(cut);
        search(
            model,
            &view.search_ops(cut),
            view.events_until(cut),
            Track::Stuck,
            meter,
        )
    };
    // Invariant: the prefix up to returns[hi] fails (the last one is the
    // whole history, as far as linearizability goes), and `stuck` is where
    // its search got stuck if it has been searched; every prefix up to
    // returns[j], j < lo, is linearizable.
    let (mut lo, mut hi) = (0, returns.len() - 1);
    let mut stuck = None;
    let mut minimal = true;
    while lo < hi {
        let mid = (lo + hi) / 2;
        match probe(returns[mid], &mut meter) {
            Outcome::Illegal(s) => {
                hi = mid;
                stuck = s;
            }
            Outcome::Linearizable => lo = mid + 1,
            Outcome::OutOfBudget => {
                minimal = false;
                break;
            }
        }
    }
    if stuck.is_none() && minimal {
        match probe(returns[hi], &mut meter) {
            Outcome::Illegal(s) => stuck = s,
            Outcome::OutOfBudget => {}
            Outcome::Linearizable => panic!("a failing prefix checked as linearizable"),
        }
    }
    let culprit = view.events[returns[hi]].op;
    window(
        model,
        view,
        partition_label,
        culprit,
        stuck.as_ref(),
        minimal,
    )
}

/// The violation around `culprit`; without `stuck` (the budget ran out
/// before the search could say where it got stuck) there is no context row
/// and no states.
fn window<M: Model>(
    model: &M,
    view: &View<'_, M::Input, M::Output>,
    partition_label: &str,
    culprit: usize,
    stuck: Option<&Stuck<M::State>>,
    minimal: bool,
) -> Violation {
    let mut rows: Vec<(usize, Role)> = vec![(culprit, Role::Culprit)];
    let cut = view.ret_pos[culprit].expect("the culprit returned");
    for other in 0..view.ops.len() {
        if other != culprit && view.call_pos[other] < cut && view.concurrent(culprit, other) {
            rows.push((other, Role::Concurrent));
        }
    }
    if let Some(stuck) = stuck {
        match rows.iter_mut().find(|(op, _)| *op == stuck.op) {
            Some((_, Role::Culprit)) => {}
            Some((_, role)) => *role = Role::Stuck,
            None => rows.push((stuck.op, Role::Stuck)),
        }
    }
    let init = model.init();
    let order: &[(usize, M::State)] = stuck.map_or(&[], |s| &s.order);
    let context = order
        .iter()
        .enumerate()
        .rev()
        .find(|&(i, (op, after))| {
            let before = if i == 0 { &init } else { &order[i - 1].1 };
            before != after && !rows.iter().any(|(r, _)| r == op)
        })
        .map(|(_, (op, _))| *op);
    if let Some(op) = context {
        rows.push((op, Role::Context));
    }
    rows.sort_by_key(|&(op, _)| view.call_pos[op]);
    Violation {
        partition: partition_label.to_string(),
        op: view.indices[culprit],
        minimal,
        furthest: stuck.map(|s| Furthest {
            op: view.indices[s.op],
            linearized: s.order.len(),
            states: s.states.iter().map(|s| model.describe_state(s)).collect(),
            more_states: s.more_states,
        }),
        window: rows
            .into_iter()
            .map(|(op, role)| {
                let operation = view.ops[op];
                WindowOp {
                    index: view.indices[op],
                    client_id: operation.client_id,
                    call_ns: operation.call_ns,
                    return_ns: operation.output.as_ref().map(|_| operation.return_ns),
                    text: model.describe_operation(&operation.input, operation.output.as_ref()),
                    role,
                }
            })
            .collect(),
    }
}
