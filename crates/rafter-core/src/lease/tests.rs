use super::*;

/// 10 ms ticks, 10-tick election timeout, checkpoints every 100 ticks.
fn lessor() -> Lessor {
    Lessor::new(LessorConfig {
        checkpoint_interval_ticks: 100,
        ..LessorConfig::new(10_000, 10)
    })
}

fn tick_until_revoke(l: &mut Lessor, max_ticks: u64) -> Option<(u64, Vec<i64>)> {
    for t in 1..=max_ticks {
        let (revoke, _) = l.tick();
        if !revoke.is_empty() {
            return Some((t, revoke));
        }
    }
    None
}

#[test]
fn a_lease_expires_after_its_ttl_on_the_leader_only() {
    let mut follower = lessor();
    follower.on_changes(&[LeaseChange::Granted { id: 7, ttl_s: 1 }]);
    assert_eq!(tick_until_revoke(&mut follower, 500), None);
    let mut leader = lessor();
    leader.promote();
    leader.on_changes(&[LeaseChange::Granted { id: 7, ttl_s: 1 }]);
    assert_eq!(tick_until_revoke(&mut leader, 500), Some((100, vec![7])));
}

#[test]
fn keep_alives_postpone_expiry() {
    let mut l = lessor();
    l.promote();
    l.on_changes(&[LeaseChange::Granted { id: 1, ttl_s: 1 }]);
    for _ in 0..10 {
        for _ in 0..50 {
            assert!(l.tick().0.is_empty());
        }
        assert_eq!(l.renew(1), Some((1, false)));
    }
    assert_eq!(tick_until_revoke(&mut l, 500), Some((100, vec![1])));
    // Expired: a keep-alive no longer revives it.
    assert_eq!(l.renew(1), None);
    assert_eq!(l.renew(99), None);
}

#[test]
fn a_new_leader_extends_every_lease_by_the_election_timeout() {
    let mut l = lessor();
    l.on_changes(&[LeaseChange::Granted { id: 1, ttl_s: 2 }]);
    l.promote();
    assert_eq!(tick_until_revoke(&mut l, 1000), Some((210, vec![1])));
}

#[test]
fn checkpoints_carry_remaining_ttl_to_the_next_leader() {
    let mut l = lessor();
    l.promote();
    l.on_changes(&[LeaseChange::Granted { id: 1, ttl_s: 5 }]);
    let mut checkpoints = Vec::new();
    for _ in 0..100 {
        checkpoints.extend(l.tick().1);
    }
    assert_eq!(checkpoints, vec![(1, 4)]);
    let mut next = lessor();
    next.on_changes(&[
        LeaseChange::Granted { id: 1, ttl_s: 5 },
        LeaseChange::Checkpointed {
            id: 1,
            remaining_s: 4,
        },
    ]);
    next.promote();
    // 4 s and an election timeout (0.1 s) left, truncated as etcd does.
    assert_eq!(next.time_to_live(1), Some((5, 4)));
    assert_eq!(tick_until_revoke(&mut next, 1000), Some((410, vec![1])));
}

#[test]
fn an_unapplied_revoke_is_proposed_again() {
    let mut l = lessor();
    l.promote();
    l.on_changes(&[LeaseChange::Granted { id: 3, ttl_s: 1 }]);
    assert_eq!(tick_until_revoke(&mut l, 200), Some((100, vec![3])));
    assert_eq!(tick_until_revoke(&mut l, 1000), Some((300, vec![3])));
    l.on_changes(&[LeaseChange::Revoked { id: 3 }]);
    assert_eq!(tick_until_revoke(&mut l, 1000), None);
    assert!(l.is_empty());
}

#[test]
fn min_ttl_is_one_and_a_half_election_timeouts_rounded_up() {
    assert_eq!(min_lease_ttl_s(1000), 2);
    assert_eq!(min_lease_ttl_s(100), 1);
    assert_eq!(min_lease_ttl_s(2000), 3);
}

#[test]
fn a_renewal_during_an_unapplied_checkpoint_clears_it_too() {
    let mut l = lessor();
    l.promote();
    l.on_changes(&[LeaseChange::Granted { id: 1, ttl_s: 5 }]);
    let mut checkpoints = Vec::new();
    for _ in 0..100 {
        checkpoints.extend(l.tick().1);
    }
    assert_eq!(checkpoints, vec![(1, 4)]);
    // The checkpoint is proposed, not applied, when the keep-alive comes:
    // the renewal must clear it through the log.
    assert_eq!(l.renew(1), Some((5, true)));
    l.on_changes(&[LeaseChange::Checkpointed {
        id: 1,
        remaining_s: 4,
    }]);
    assert_eq!(l.renew(1), Some((5, true)));
    l.on_changes(&[LeaseChange::Checkpointed {
        id: 1,
        remaining_s: 0,
    }]);
    assert_eq!(l.renew(1), Some((5, false)));
}

/// A new leader promoted from a stale checkpoint (1 s left) then applies a
/// keep-alive's clearing committed in the previous term: the lease lives a
/// full TTL from that apply, not the stale second (simulator seed 7002 of
/// the local-writes campaign).
#[test]
fn a_cleared_checkpoint_applied_after_promotion_renews_the_lease() {
    let mut l = lessor();
    l.on_changes(&[
        LeaseChange::Granted { id: 3, ttl_s: 5 },
        LeaseChange::Checkpointed {
            id: 3,
            remaining_s: 1,
        },
    ]);
    l.promote();
    for _ in 0..50 {
        assert!(l.tick().0.is_empty());
    }
    l.on_changes(&[LeaseChange::Checkpointed {
        id: 3,
        remaining_s: 0,
    }]);
    let (after, revoked) = tick_until_revoke(&mut l, 1000).expect("expires at last");
    assert_eq!(revoked, vec![3]);
    assert_eq!(
        after, 500,
        "a full TTL (5 s = 500 ticks) after the clearing applied"
    );
}
