//! The entry point: split the history as the model says, search each part
//! within one shared budget, and explain the first part that fails.

use super::budget::{Budget, Meter};
use super::explain::explain;
use super::history::{assert_well_formed, Operation};
use super::model::{Model, Partition};
use super::report::CheckResult;
use super::search::{search, Outcome, Track};
use super::view::View;

/// Checks that `history` is linearizable with respect to `model`.
///
/// Parts are checked in the order `Model::partition` returns them; the first
/// violation found is reported. `Unknown` means the budget ran out before a
/// verdict. Narrowing a violation down gets a second budget of the same
/// size, so a failing check may take up to twice the budget.
pub fn check<M: Model>(
    model: &M,
    history: &[Operation<M::Input, M::Output>],
    budget: impl Into<Budget>,
) -> CheckResult {
    assert_well_formed(history);
    let budget = budget.into();
    let partitions = model.partition(history);
    let mut covered = vec![false; history.len()];
    for index in partitions.iter().flat_map(|p| &p.ops) {
        assert!(
            !std::mem::replace(&mut covered[*index], true),
            "operation #{index} is in two partitions"
        );
    }
    assert!(
        covered.iter().all(|&c| c),
        "every operation must be in a partition"
    );
    let mut meter = Meter::start(budget);
    for partition in &partitions {
        if !meter.check_clock() {
            return CheckResult::Unknown {
                partition: partition.label.clone(),
            };
        }
        let relevant = Partition {
            label: partition.label.clone(),
            ops: partition
                .ops
                .iter()
                .copied()
                .filter(|&i| history[i].is_determinate() || !model.is_read_only(&history[i].input))
                .collect(),
        };
        let view = View::new(history, &relevant);
        match search(
            model,
            &view.search_ops(None),
            &view.events,
            Track::Nothing,
            &mut meter,
        ) {
            Outcome::Linearizable => {}
            Outcome::OutOfBudget => {
                return CheckResult::Unknown {
                    partition: partition.label.clone(),
                }
            }
            Outcome::Illegal(_) => {
                return CheckResult::Illegal(explain(model, &view, &partition.label, budget))
            }
        }
    }
    CheckResult::Ok
}
