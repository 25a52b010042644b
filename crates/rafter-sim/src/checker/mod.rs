//! A linearizability checker: given what clients asked, were told and when,
//! is there one order of the operations, consistent with real time, in which
//! a sequential model produces exactly those answers? Built to judge the
//! simulator's histories (and any other), it is independent of Rafter's
//! types: a `Model` describes the object, `check` searches.
//!
//! - `history`: the operations (indeterminate ones included).
//! - `model`: the trait a sequential specification implements, and
//!   partitioning per key or per connected component of keys.
//! - `register`, `kv`: models of a register with compare-and-swap, and of
//!   etcd's put/range/delete-range/txn over one or several keys with its
//!   global revision.
//! - `check`: the entry point; `budget`: when to give up (`Unknown`).
//! - `view`, `entries`, `bitset`, `seen`, `search`: the search and its
//!   data structures; `explain`: narrowing a violation down; `report`: the
//!   verdict and its rendering.
//! - `synth`: correct histories with real concurrency, for tests and for
//!   measuring speed.
//!
//! ```
//! use std::time::Duration;
//! use rafter_sim::checker::register::{Register, RegisterInput as In, RegisterOutput as Out};
//! use rafter_sim::checker::{check, Operation};
//!
//! let history = [
//!     Operation::ok(0, 0, 10, In::Put { key: "x", value: 1 }, Out::Put),
//!     Operation::ok(1, 20, 30, In::Put { key: "x", value: 2 }, Out::Put),
//!     Operation::ok(2, 40, 50, In::Get { key: "x" }, Out::Get(Some(1))),
//! ];
//! let result = check(&Register::new(), &history, Duration::from_secs(1));
//! let violation = result.violation().expect("a stale read");
//! assert_eq!(violation.op, 2);
//! assert_eq!(violation.window_ops(), vec![1, 2]);
//! println!("{violation}");
//! ```

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
mod seen;
pub mod synth;
mod view;

#[cfg(test)]
mod tests;

pub use budget::Budget;
pub use check::check;
pub use history::Operation;
pub use model::{partition_by_key, partition_by_keys, Model, Partition};
pub use report::{CheckResult, Furthest, Role, Violation, WindowOp};
