//! Correctness machinery for Rafter: a deterministic simulator that runs
//! whole clusters of the real core in one thread from a seed.

pub mod checker;
pub mod sim;
mod verdict;

pub use verdict::{verdict, Verdict};
