//! A linearizability checker: given what clients asked, were told and when,
//! is there one order of the operations, consistent with real time, in which
//! a sequential model produces exactly those answers? Built to judge the
//! simulator's histories (and any other), it is independent of Rafter's
//! types: a `Model` describes the object, `check` searches.
//!
//! - `history`: the operations (indeterminate ones included).
//! - `model`: the trait a sequential specification implements, and per-key
//!   partitioning.
//! - `register`, `kv`: models of a register with compare-and-swap and of
//!   etcd's put/range/delete/txn on one key.
//! - `check`, `search`, `explain`: the search and the narrowing-down of a
//!   violation; `report`: the verdict and its rendering.
//! - `synth`: correct histories with real concurrency, for tests and for
//!   measuring speed.

mod bitset;
mod budget;
mod check;
mod entries;
mod explain;
mod history;
pub mod kv;
mod model;
pub mod register;
mod report;
mod search;
pub mod synth;
mod view;

#[cfg(test)]
mod tests;

pub use budget::Budget;
pub use check::check;
pub use history::Operation;
pub use model::{partition_by_key, Model, Partition};
pub use report::{CheckResult, Role, Violation, WindowOp};
