//! Simulated lease clients and the check of lease safety and expiry.
//!
//! Each lessee grants a lease with an id of its own choosing (retrying
//! until some member applies the grant), attaches a key to it, and keeps it
//! alive at a third of its TTL through random members, as client libraries
//! do; a follower forwards the keep-alive to the leader, as the server does.
//! Some lessees stop keeping their lease alive at a random time.
//!
//! Checks: a lease is never revoked sooner than 90 % of its TTL (members'
//! clocks run up to 10 % fast) after it was granted or last renewed by the
//! leader, leader changes included; and a lease that was abandoned is
//! revoked by the end of the run, its key gone with it.

use rafter_proto::etcdserverpb::{LeaseGrantRequest, PutRequest};
use rafter_storage::{KvRequest, MvccStore};

use super::rng::Rng;

pub struct Lessee {
    pub id: i64,
    pub ttl_ms: u64,
    key: Vec<u8>,
    /// When it stops keeping the lease alive (`None`: never).
    pub abandon_at_ms: Option<u64>,
    /// First time any member applied the grant.
    pub granted_at_ms: Option<u64>,
    /// First time any member applied the revoke.
    pub revoked_at_ms: Option<u64>,
    /// Times the leader renewed the lease.
    renewals_ms: Vec<u64>,
    puts: u32,
    attach_key: bool,
    /// When the keep-alive in flight reached a member (the renewal the
    /// leader makes is no earlier).
    pub keep_alive_sent_ms: u64,
    /// A keep-alive answered that the lease is gone.
    pub gone: bool,
}

impl Lessee {
    pub fn random(name: usize, rng: &mut Rng, run_ms: u64, attach_key: bool) -> Lessee {
        Lessee {
            id: 1000 + name as i64,
            ttl_ms: 1000 * rng.between(1, 2),
            key: format!("lease{name}").into_bytes(),
            abandon_at_ms: rng.chance(500).then(|| rng.between(200, run_ms)),
            granted_at_ms: None,
            revoked_at_ms: None,
            renewals_ms: Vec::new(),
            puts: 0,
            attach_key,
            keep_alive_sent_ms: 0,
            gone: false,
        }
    }

    /// How long between two turns of this lessee.
    pub fn turn_ms(&self) -> u64 {
        self.ttl_ms / 3
    }

    pub fn keeps_alive(&self, now_ms: u64) -> bool {
        !self.gone && self.abandon_at_ms.is_none_or(|t| now_ms < t)
    }

    /// What to propose on this turn, if anything (a grant until one is
    /// applied, then a put of its key with the lease, twice).
    pub fn proposal(&mut self) -> Option<KvRequest> {
        if self.granted_at_ms.is_none() {
            return Some(KvRequest::LeaseGrant(LeaseGrantRequest {
                ttl: (self.ttl_ms / 1000) as i64,
                id: self.id,
            }));
        }
        if self.attach_key && self.puts < 2 && self.revoked_at_ms.is_none() {
            self.puts += 1;
            return Some(KvRequest::Put(PutRequest {
                key: self.key.clone(),
                value: b"leased".to_vec(),
                lease: self.id,
                ..Default::default()
            }));
        }
        None
    }

    /// A keep-alive was answered: renewed (at the latest when it was
    /// sent, which is what the leader's count down starts from), or gone.
    pub fn renewed(&mut self, ttl_s: Option<i64>) {
        match ttl_s {
            Some(_) => self.renewals_ms.push(self.keep_alive_sent_ms),
            None => self.gone = true,
        }
    }

    /// Problems with this lease at the end of a run that ended at `end_ms`
    /// (all faults healed since `healed_ms`).
    pub fn check(&self, store: &MvccStore, tick_ms: u64, end_ms: u64) -> Vec<String> {
        let mut problems = Vec::new();
        let name = format!("lease {} (TTL {} ms)", self.id, self.ttl_ms);
        if let (Some(revoked), Some(granted)) = (self.revoked_at_ms, self.granted_at_ms) {
            let last = self
                .renewals_ms
                .iter()
                .copied()
                .filter(|&t| t <= revoked)
                .max()
                .unwrap_or(granted)
                .max(granted);
            let floor = self.ttl_ms * 9 / 10;
            if revoked < last + floor.saturating_sub(2 * tick_ms) {
                problems.push(format!(
                    "{name} was revoked at {revoked} ms, {} ms after the leader granted or renewed it at {last} ms",
                    revoked - last
                ));
            }
        }
        // Counted from the last moment the lease could have been renewed:
        // a grant can still be applied after the lessee stopped.
        let last_alive = self
            .abandon_at_ms
            .map(|t| t.max(self.granted_at_ms.unwrap_or(0)));
        let abandoned = last_alive.is_some_and(|t| t + self.ttl_ms + 1000 < end_ms);
        if abandoned && self.granted_at_ms.is_some() && self.revoked_at_ms.is_none() {
            problems.push(format!(
                "{name} was abandoned at {} ms and never revoked",
                self.abandon_at_ms.unwrap_or(0)
            ));
        }
        if self.revoked_at_ms.is_some() {
            let held = store
                .range(&rafter_proto::etcdserverpb::RangeRequest {
                    key: self.key.clone(),
                    ..Default::default()
                })
                .map(|r| r.kvs.into_iter().filter(|kv| kv.lease == self.id).count())
                .unwrap_or(0);
            if held > 0 {
                problems.push(format!("{name} was revoked but its key is still there"));
            }
        }
        problems
    }
}
