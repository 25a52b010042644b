//! A hybrid logical clock (Kulkarni et al., 2014) for stamping local
//! writes: the physical part follows the member's wall clock but never goes
//! back, and the logical part orders stamps taken within one millisecond or
//! while the wall clock lags a stamp already seen. Conflict policies compare
//! stamps (then member ids), so a member whose clock jumps back still
//! stamps its later writes later.

/// A stamp: milliseconds, then a counter.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord)]
pub struct HlcStamp {
    pub physical_ms: u64,
    pub logical: u32,
}

#[derive(Debug, Default)]
pub struct Hlc {
    last: HlcStamp,
}

impl Hlc {
    /// A clock that continues after `last` (the newest stamp found in the
    /// member's durable state at start).
    pub fn starting_after(last: HlcStamp) -> Hlc {
        Hlc { last }
    }

    /// A new stamp, later than every stamp this clock made or observed.
    pub fn stamp(&mut self, wall_ms: u64) -> HlcStamp {
        self.last = if wall_ms > self.last.physical_ms {
            HlcStamp {
                physical_ms: wall_ms,
                logical: 0,
            }
        } else {
            HlcStamp {
                physical_ms: self.last.physical_ms,
                logical: self.last.logical + 1,
            }
        };
        self.last
    }

    /// Another member's stamp was seen: later stamps here follow it.
    pub fn observe(&mut self, seen: HlcStamp) {
        self.last = self.last.max(seen);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stamps_only_go_forward() {
        let mut c = Hlc::default();
        let a = c.stamp(100);
        let b = c.stamp(100);
        let d = c.stamp(50);
        assert!(a < b && b < d, "{a:?} {b:?} {d:?}");
        assert_eq!(d.physical_ms, 100);
        c.observe(HlcStamp {
            physical_ms: 500,
            logical: 3,
        });
        let e = c.stamp(200);
        assert_eq!(
            e,
            HlcStamp {
                physical_ms: 500,
                logical: 4
            }
        );
        assert_eq!(c.stamp(600).logical, 0);
    }
}
