//! Turns the command line's millisecond timers into Raft ticks. Raft counts
//! time in ticks of one loop timer; etcd ticks once per heartbeat interval
//! and draws election timeouts from [T, 2T). Rafter does the same by
//! default, and with `--election-timeout-max` ticks at the greatest common
//! divisor of the three timers so a narrow range (150–155 ms, Raft paper
//! figure 16) can be expressed exactly.

/// The Raft loop's tick and the timers counted in it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RaftTiming {
    pub tick_ms: u64,
    pub heartbeat_tick: usize,
    /// Minimum of the randomized election timeout (and check-quorum period).
    pub election_tick: usize,
    /// End (exclusive) of the randomized election timeout.
    pub max_election_tick: usize,
}

fn gcd(a: u64, b: u64) -> u64 {
    if b == 0 {
        a
    } else {
        gcd(b, a % b)
    }
}

impl RaftTiming {
    /// `election_timeout_max_ms` of `None` gives etcd's range [T, 2T) with
    /// one tick per heartbeat interval.
    pub fn from_ms(
        heartbeat_interval_ms: u64,
        election_timeout_ms: u64,
        election_timeout_max_ms: Option<u64>,
    ) -> Result<Self, String> {
        if heartbeat_interval_ms == 0 {
            return Err("--heartbeat-interval must be at least 1 ms".to_string());
        }
        let Some(max_ms) = election_timeout_max_ms else {
            let election_tick = (election_timeout_ms / heartbeat_interval_ms).max(2) as usize;
            return Ok(Self {
                tick_ms: heartbeat_interval_ms,
                heartbeat_tick: 1,
                election_tick,
                max_election_tick: 2 * election_tick,
            });
        };
        if election_timeout_ms <= heartbeat_interval_ms {
            return Err(format!(
                "--election-timeout ({election_timeout_ms} ms) must exceed --heartbeat-interval ({heartbeat_interval_ms} ms)"
            ));
        }
        if max_ms <= election_timeout_ms {
            return Err(format!(
                "--election-timeout-max ({max_ms} ms) must exceed --election-timeout ({election_timeout_ms} ms)"
            ));
        }
        let tick_ms = gcd(gcd(heartbeat_interval_ms, election_timeout_ms), max_ms);
        let timing = Self {
            tick_ms,
            heartbeat_tick: (heartbeat_interval_ms / tick_ms) as usize,
            election_tick: (election_timeout_ms / tick_ms) as usize,
            max_election_tick: (max_ms / tick_ms) as usize,
        };
        assert!(timing.heartbeat_tick < timing.election_tick);
        assert!(timing.election_tick < timing.max_election_tick);
        Ok(timing)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_ticks_once_per_heartbeat_with_etcds_range() {
        let t = RaftTiming::from_ms(100, 1000, None).unwrap();
        assert_eq!(
            t,
            RaftTiming {
                tick_ms: 100,
                heartbeat_tick: 1,
                election_tick: 10,
                max_election_tick: 20
            }
        );
        // A timeout shorter than two heartbeats still leaves room to campaign.
        assert_eq!(
            RaftTiming::from_ms(100, 100, None).unwrap().election_tick,
            2
        );
    }

    #[test]
    fn narrow_range_ticks_at_the_common_divisor() {
        let t = RaftTiming::from_ms(10, 150, Some(155)).unwrap();
        assert_eq!(
            (
                t.tick_ms,
                t.heartbeat_tick,
                t.election_tick,
                t.max_election_tick
            ),
            (5, 2, 30, 31)
        );
        let t = RaftTiming::from_ms(10, 150, Some(151)).unwrap();
        assert_eq!(
            (
                t.tick_ms,
                t.heartbeat_tick,
                t.election_tick,
                t.max_election_tick
            ),
            (1, 10, 150, 151)
        );
    }

    #[test]
    fn bad_ranges_are_refused() {
        assert!(RaftTiming::from_ms(0, 1000, None).is_err());
        assert!(RaftTiming::from_ms(10, 150, Some(150)).is_err());
        assert!(RaftTiming::from_ms(10, 150, Some(100)).is_err());
        assert!(RaftTiming::from_ms(200, 150, Some(300)).is_err());
    }
}
