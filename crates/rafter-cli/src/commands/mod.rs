//! One module per client command; each turns its flags into requests and
//! hands the responses to the printer.

pub mod alarm;
pub mod compact;
pub mod conflicts;
pub mod defrag;
pub mod del;
pub mod dial;
pub mod elect;
pub mod endpoint;
pub mod get;
pub mod lease;
pub mod lock;
pub mod member;
pub mod put;
pub mod session;
pub mod snapshot;
pub mod txn;
pub mod watch;
