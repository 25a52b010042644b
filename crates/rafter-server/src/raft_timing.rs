//! Turns the command line's millisecond timers into Raft ticks. Raft counts
//! time in ticks of one loop timer and draws each election timeout as a
//! whole number of ticks; etcd ticks once per heartbeat interval and draws
//! from [T, 2T). Rafter does the same by default. With
//! `--election-timeout-max` it ticks at a divisor of the three timers fine
//! enough that the range holds at least [`MIN_DRAWS`] distinct timeouts, so
//! a narrow range (150–155 ms, Raft paper figure 16) is really randomized:
//! with one value only, two members whose timer phases happen to be close
//! would split the vote term after term.

/// Distinct election timeouts a narrow range must offer.
pub const MIN_DRAWS: u64 = 10;
/// The finest tick: the Raft loop wakes at most this often.
pub const MIN_TICK_US: u64 = 100;

/// The Raft loop's tick and the timers counted in it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RaftTiming {
    pub tick_us: u64,
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
                tick_us: heartbeat_interval_ms * 1000,
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
        let [heartbeat_us, min_us, max_us] =
            [heartbeat_interval_ms, election_timeout_ms, max_ms].map(|ms| ms * 1000);
        let common_us = gcd(gcd(heartbeat_us, min_us), max_us);
        // The coarsest divisor of the common period that still gives the
        // range MIN_DRAWS values (or the finest tick allowed).
        let wanted_us = ((max_us - min_us) / MIN_DRAWS).max(MIN_TICK_US);
        let tick_us = (1..=common_us / MIN_TICK_US)
            .map(|parts| common_us / parts)
            .find(|tick| common_us.is_multiple_of(*tick) && *tick <= wanted_us)
            .unwrap_or(MIN_TICK_US.min(common_us));
        let timing = Self {
            tick_us,
            heartbeat_tick: (heartbeat_us / tick_us) as usize,
            election_tick: (min_us / tick_us) as usize,
            max_election_tick: (max_us / tick_us) as usize,
        };
        assert_eq!(heartbeat_us % tick_us, 0, "the tick divides every timer");
        assert_eq!(min_us % tick_us, 0, "the tick divides every timer");
        assert_eq!(max_us % tick_us, 0, "the tick divides every timer");
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
                tick_us: 100_000,
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
    fn narrow_ranges_get_ten_draws() {
        let ticks = |max_ms| {
            let t = RaftTiming::from_ms(10, 150, Some(max_ms)).unwrap();
            (
                t.tick_us,
                t.heartbeat_tick,
                t.election_tick,
                t.max_election_tick,
            )
        };
        assert_eq!(ticks(151), (100, 100, 1500, 1510));
        assert_eq!(ticks(155), (500, 20, 300, 310));
        assert_eq!(ticks(175), (2500, 4, 60, 70));
        assert_eq!(ticks(200), (5000, 2, 30, 40));
        // Wide enough already at the heartbeat tick.
        assert_eq!(ticks(300), (10_000, 1, 15, 30));
        // Odd timers: the common period is 1 ms, its finest part 100 us.
        assert_eq!(RaftTiming::from_ms(7, 101, Some(102)).unwrap().tick_us, 100);
    }

    #[test]
    fn bad_ranges_are_refused() {
        assert!(RaftTiming::from_ms(0, 1000, None).is_err());
        assert!(RaftTiming::from_ms(10, 150, Some(150)).is_err());
        assert!(RaftTiming::from_ms(10, 150, Some(100)).is_err());
        assert!(RaftTiming::from_ms(200, 150, Some(300)).is_err());
    }
}
