//! The lessor: every member mirrors the applied leases (granted TTL and
//! checkpointed remaining TTL); only the leader's ("primary") has expiry
//! deadlines. On promotion each lease gets its remaining TTL plus the
//! election timeout, so a leader change never expires a lease a client was
//! keeping alive (etcd's `Promote(extend)`). Deadlines live in a min-heap of
//! (deadline tick, id); entries made stale by a renewal are skipped when
//! they surface, so a tick costs O(expired · log n), never a scan of every
//! lease.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap};

use super::LeaseChange;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LessorConfig {
    /// Length of one tick of the core's clock, in microseconds.
    pub tick_us: u64,
    /// Added to every lease's remaining TTL when this member becomes leader.
    pub extend_on_promote_ticks: u64,
    /// How often the leader checkpoints remaining TTLs through the log
    /// (etcd's lease checkpoint interval), in ticks.
    pub checkpoint_interval_ticks: u64,
    /// Revokes proposed per tick at most (etcd revokes at most 1,000
    /// leases per second).
    pub max_revokes_per_tick: usize,
    /// A proposed revoke that has not been applied after this many ticks is
    /// proposed again (the proposal may have been lost with a leader).
    pub revoke_retry_ticks: u64,
}

impl LessorConfig {
    /// etcd's settings for a member whose tick is `tick_us` long and whose
    /// election timeout is `election_ticks`: leases are extended by one
    /// election timeout on promotion, checkpointed every 5 minutes, revoked
    /// at most 1,000 per second and retried after 3 seconds.
    pub fn new(tick_us: u64, election_ticks: u64) -> LessorConfig {
        let ticks_per_s = (1_000_000 / tick_us.max(1)).max(1);
        LessorConfig {
            tick_us,
            extend_on_promote_ticks: election_ticks,
            checkpoint_interval_ticks: 300 * ticks_per_s,
            max_revokes_per_tick: (1_000 / ticks_per_s).max(1) as usize,
            revoke_retry_ticks: 3 * ticks_per_s,
        }
    }
}

/// Whole seconds (rounded up) from tick `now` to tick `deadline`.
fn seconds_between(now: u64, deadline: u64, tick_us: u64) -> i64 {
    (deadline.saturating_sub(now) * tick_us).div_ceil(1_000_000) as i64
}

#[derive(Debug, Clone)]
struct LeaseState {
    ttl_s: i64,
    /// Checkpointed remaining TTL (0: none), from the log.
    remaining_s: i64,
    /// Only on the primary: when the lease expires.
    deadline_tick: Option<u64>,
    /// Only on the primary: a revoke was proposed at this tick.
    revoking_since: Option<u64>,
    /// Only on the primary: a checkpoint of this lease was proposed and
    /// not yet applied (a renewal must then clear it too).
    checkpoint_in_flight: bool,
}

pub struct Lessor {
    config: LessorConfig,
    leases: BTreeMap<i64, LeaseState>,
    heap: BinaryHeap<Reverse<(u64, i64)>>,
    primary: bool,
    now_tick: u64,
    next_checkpoint_tick: u64,
}

impl Lessor {
    pub fn new(config: LessorConfig) -> Lessor {
        assert!(config.tick_us > 0, "a tick has a length");
        Lessor {
            config,
            leases: BTreeMap::new(),
            heap: BinaryHeap::new(),
            primary: false,
            now_tick: 0,
            next_checkpoint_tick: config.checkpoint_interval_ticks,
        }
    }

    fn ticks(&self, seconds: i64) -> u64 {
        (seconds.max(0) as u64).saturating_mul(1_000_000) / self.config.tick_us
    }

    pub fn is_primary(&self) -> bool {
        self.primary
    }

    pub fn len(&self) -> usize {
        self.leases.len()
    }

    pub fn is_empty(&self) -> bool {
        self.leases.is_empty()
    }

    /// Replaces every lease (start-up, snapshot install): (id, TTL,
    /// checkpointed remaining TTL or 0).
    pub fn reset(&mut self, leases: &[(i64, i64, i64)]) {
        let was_primary = self.primary;
        self.primary = false;
        self.heap.clear();
        self.leases = leases
            .iter()
            .map(|&(id, ttl_s, remaining_s)| {
                (
                    id,
                    LeaseState {
                        ttl_s,
                        remaining_s,
                        deadline_tick: None,
                        revoking_since: None,
                        checkpoint_in_flight: false,
                    },
                )
            })
            .collect();
        if was_primary {
            self.promote();
        }
    }

    /// Applied lease changes, in log order.
    pub fn on_changes(&mut self, changes: &[LeaseChange]) {
        for change in changes {
            match *change {
                LeaseChange::Granted { id, ttl_s } => {
                    let deadline_tick = self.primary.then(|| self.now_tick + self.ticks(ttl_s));
                    self.leases.insert(
                        id,
                        LeaseState {
                            ttl_s,
                            remaining_s: 0,
                            deadline_tick,
                            revoking_since: None,
                            checkpoint_in_flight: false,
                        },
                    );
                    if let Some(d) = deadline_tick {
                        self.heap.push(Reverse((d, id)));
                    }
                }
                LeaseChange::Revoked { id } => {
                    self.leases.remove(&id);
                }
                LeaseChange::Checkpointed { id, remaining_s } => {
                    let now = self.now_tick;
                    let primary = self.primary;
                    let tick_us = self.config.tick_us;
                    if let Some(l) = self.leases.get_mut(&id) {
                        l.remaining_s = remaining_s;
                        l.checkpoint_in_flight = false;
                        // A cleared checkpoint is a keep-alive that was
                        // answered once it applied: the lease lives a TTL
                        // from now at least. The clearing may come from an
                        // earlier leader's term and apply after this member
                        // took over from the stale checkpoint (which would
                        // revoke the lease early).
                        let renewed =
                            now + (l.ttl_s.max(0) as u64).saturating_mul(1_000_000) / tick_us;
                        let earlier = l.deadline_tick.is_some_and(|d| d < renewed);
                        if primary && remaining_s == 0 && earlier && l.revoking_since.is_none() {
                            l.deadline_tick = Some(renewed);
                            self.heap.push(Reverse((renewed, id)));
                        }
                    }
                }
            }
        }
    }

    /// This member became leader: every lease expires after its remaining
    /// TTL (checkpointed, else granted) plus the election timeout.
    pub fn promote(&mut self) {
        self.primary = true;
        self.heap.clear();
        let now = self.now_tick;
        let extend = self.config.extend_on_promote_ticks;
        let tick_us = self.config.tick_us;
        for (id, l) in self.leases.iter_mut() {
            let left_s = if l.remaining_s > 0 {
                l.remaining_s
            } else {
                l.ttl_s
            };
            let d = now + (left_s.max(0) as u64).saturating_mul(1_000_000) / tick_us + extend;
            l.deadline_tick = Some(d);
            l.revoking_since = None;
            l.checkpoint_in_flight = false;
            self.heap.push(Reverse((d, *id)));
        }
        self.next_checkpoint_tick = now + self.config.checkpoint_interval_ticks;
    }

    /// This member stopped leading: it forgets deadlines.
    pub fn demote(&mut self) {
        self.primary = false;
        self.heap.clear();
        for l in self.leases.values_mut() {
            l.deadline_tick = None;
            l.revoking_since = None;
            l.checkpoint_in_flight = false;
        }
    }

    /// A keep-alive on the primary: the lease lives another TTL from now.
    /// Returns the TTL, or `None` for an unknown (or expired) lease, and
    /// whether the lease had a checkpointed remaining TTL, which must now
    /// be cleared through the log (else a next leader would start from
    /// that stale remainder: etcd's checkpoint-on-renew fix).
    pub fn renew(&mut self, id: i64) -> Option<(i64, bool)> {
        assert!(self.primary, "only the leader renews leases");
        let now = self.now_tick;
        let ticks = {
            let l = self.leases.get(&id)?;
            if l.deadline_tick.is_some_and(|d| d <= now) || l.revoking_since.is_some() {
                return None; // expired: its revoke is on its way
            }
            self.ticks(l.ttl_s)
        };
        let l = self.leases.get_mut(&id).expect("just seen");
        let d = now + ticks;
        l.deadline_tick = Some(d);
        // A keep-alive makes the checkpointed remaining TTL obsolete, but
        // only its clearing through the log makes it so for a next leader:
        // until that applies the checkpoint stands, and every keep-alive
        // asks for the clearing (one answered while an earlier clearing
        // was lost would leave the stale remainder in the log: a lease
        // revoked early after a leader change, simulator seed 7002).
        let had_checkpoint = l.remaining_s > 0 || l.checkpoint_in_flight;
        self.heap.push(Reverse((d, id)));
        Some((l.ttl_s, had_checkpoint))
    }

    /// (granted TTL, remaining seconds) of a lease; remaining is the
    /// primary's count down, else the checkpointed or granted TTL.
    pub fn time_to_live(&self, id: i64) -> Option<(i64, i64)> {
        let l = self.leases.get(&id)?;
        let remaining = match l.deadline_tick {
            // Whole seconds left, truncated as etcd reports them (a lease
            // granted 60 s a moment ago has 59 left).
            Some(d) => (d.saturating_sub(self.now_tick) * self.config.tick_us / 1_000_000) as i64,
            None if l.remaining_s > 0 => l.remaining_s,
            None => l.ttl_s,
        };
        Some((l.ttl_s, remaining))
    }

    /// Every lease id, in order.
    pub fn ids(&self) -> Vec<i64> {
        self.leases.keys().copied().collect()
    }

    /// One tick. On the primary, returns the leases to revoke now (expired,
    /// at most `max_revokes_per_tick`, each proposed again if its revoke
    /// was not applied within `revoke_retry_ticks`) and the remaining TTLs
    /// to checkpoint when the interval is up.
    pub fn tick(&mut self) -> (Vec<i64>, Vec<(i64, i64)>) {
        self.now_tick += 1;
        if !self.primary {
            return (Vec::new(), Vec::new());
        }
        let now = self.now_tick;
        let mut revoke = Vec::new();
        while revoke.len() < self.config.max_revokes_per_tick {
            let Some(&Reverse((d, id))) = self.heap.peek() else {
                break;
            };
            if d > now {
                break;
            }
            self.heap.pop();
            let retry = self.config.revoke_retry_ticks;
            let Some(l) = self.leases.get_mut(&id) else {
                continue; // revoked meanwhile
            };
            if l.deadline_tick != Some(d) {
                continue; // renewed: a later entry stands for it
            }
            if l.revoking_since.is_none_or(|t| now >= t + retry) {
                l.revoking_since = Some(now);
                revoke.push(id);
            }
            // Looked at again if the revoke does not arrive in time.
            let again = now + retry;
            l.deadline_tick = Some(again);
            self.heap.push(Reverse((again, id)));
        }
        let mut checkpoints = Vec::new();
        if self.config.checkpoint_interval_ticks > 0 && now >= self.next_checkpoint_tick {
            self.next_checkpoint_tick = now + self.config.checkpoint_interval_ticks;
            let now = self.now_tick;
            let tick_us = self.config.tick_us;
            for (id, l) in self.leases.iter_mut() {
                if let (Some(d), None) = (l.deadline_tick, l.revoking_since) {
                    let left = seconds_between(now, d, tick_us);
                    if left < l.ttl_s {
                        l.checkpoint_in_flight = true;
                        checkpoints.push((*id, left.max(1)));
                    }
                }
            }
        }
        (revoke, checkpoints)
    }
}
