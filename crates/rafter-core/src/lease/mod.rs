//! Leases, sans-I/O: the replicated lease state lives in the state machine
//! (grant, revoke and checkpoint go through the log); the [`Lessor`] is the
//! leader's clock over it (etcd's `lessor`): when each lease expires, which
//! keep-alives renew it, which revokes to propose, which remaining TTLs to
//! checkpoint. It runs on ticks, so the simulator drives it on simulated
//! time exactly as the server does on the wall clock.

mod lessor;

pub use lessor::{Lessor, LessorConfig};

/// What applying a batch did to the leases, reported to the lessor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LeaseChange {
    Granted { id: i64, ttl_s: i64 },
    Revoked { id: i64 },
    Checkpointed { id: i64, remaining_s: i64 },
}

/// etcd's largest TTL (`MaxLeaseTTL`), in seconds.
pub const MAX_LEASE_TTL_S: i64 = 9_000_000_000;

/// etcd's minimum TTL: one and a half election timeouts, rounded up to a
/// whole second (a lease must outlive a leader change).
pub fn min_lease_ttl_s(election_timeout_ms: u64) -> i64 {
    (election_timeout_ms * 3 / 2).div_ceil(1000) as i64
}

#[cfg(test)]
mod tests;
