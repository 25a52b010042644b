//! A Rust client for a Rafter cluster.
//!
//! - [`Client`]: endpoint failover (a connect failure or an unavailable
//!   member moves it to the next endpoint, and it stays on the one that
//!   worked), the consistency dial of seed 004 (`get`, `set`, `swap`,
//!   `outcome`) and etcd `range`/`txn`.
//! - [`Session`]: a client session; its mutations carry a request id that
//!   every retry reuses, so each is applied exactly once, and a timed-out
//!   one has a definite fate (cancelled, or pending with the id to ask
//!   `outcome` about).
//! - [`cache`]: a watch-fed cache of a key prefix whose consistent reads
//!   never answer stale (seed 000); it speaks only the etcd API.
//! - [`log_consumer`]: an exactly-once log consumer on top (seed 004
//!   "Case 1").

mod answer;
pub mod cache;
mod client;
mod dial;
mod error;
mod kv;
pub mod log_consumer;
mod seqs;
mod session;
mod transport;

pub use answer::{Answer, BadRequestId, Consistency, Outcome, RequestId, Wait};
pub use cache::{Cache, CacheOptions, Cached, Freshness};
pub use client::Client;
pub use error::{Error, Result};
pub use session::{Session, SessionOptions};
pub use transport::Options;

/// The etcd wire types the KV calls take and return.
pub use rafter_proto::etcdserverpb;
