//! GCRA (generic cell rate algorithm) in integer microseconds.
//!
//! One number per key, the theoretical arrival time (TAT). With emission interval
//! `T = period / limit` and tolerance `τ = burst × T`, a request at `t` passes when
//! `max(TAT, t) − τ ≤ t`, and then moves TAT to `max(TAT, t) + T`. In any window of one period
//! at most `limit + burst` requests pass; `Retry-After` falls out of the TAT.
//!
//! `T` is rounded up, so rounding can only make a limit stricter, never looser. The Redis
//! script (`redis.rs`) is the same arithmetic in Lua; the tests hold the two to each other.
//!
//! The clock every store counts on is read in milliseconds, so the requests of one
//! millisecond arrive at one instant. A rate faster than one a millisecond (`T` < 1 ms) would
//! then admit one request a millisecond whatever it says (1000 a second for `rate 5000 per
//! second`). Such a rate is given the tolerance to admit its share of a millisecond at that
//! instant, `τ ≥ 1 ms − T`: a window of one period then passes at most `1 ms / T − 1` more
//! than `limit + burst`, the clock's resolution.

/// The resolution of the clock limits are counted on (milliseconds), in microseconds.
const CLOCK_RESOLUTION_US: i64 = 1000;

/// The two constants of one rate rule, in microseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Gcra {
    /// Emission interval `T`.
    pub interval_us: i64,
    /// Tolerance `τ = burst × T`.
    pub tolerance_us: i64,
}

/// One request against one key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Step {
    pub allowed: bool,
    /// The key's TAT if the request is counted.
    pub new_tat_us: i64,
    pub remaining: u64,
    pub retry_after_us: i64,
}

impl Gcra {
    pub fn new(limit: u64, period_ms: u64, burst: u64) -> Gcra {
        let period_us = (period_ms as i64).saturating_mul(1000).max(1);
        let limit = (limit.max(1)).min(i64::MAX as u64) as i64;
        let interval_us = (period_us + limit - 1) / limit;
        let interval_us = interval_us.max(1);
        let burst = burst.min(i64::MAX as u64) as i64;
        Gcra {
            interval_us,
            tolerance_us: interval_us
                .saturating_mul(burst)
                .max(CLOCK_RESOLUTION_US - interval_us),
        }
    }

    /// The outcome of a request at `now_us` for a key whose TAT is `tat_us` (None: unseen or
    /// evicted, the same as a full bucket).
    pub fn step(&self, tat_us: Option<i64>, now_us: i64) -> Step {
        let t = self.interval_us;
        let tat = tat_us.unwrap_or(now_us).max(now_us);
        let allow_at = tat.saturating_sub(self.tolerance_us);
        if now_us < allow_at {
            return Step {
                allowed: false,
                new_tat_us: tat,
                remaining: 0,
                retry_after_us: allow_at - now_us,
            };
        }
        let new_tat = tat.saturating_add(t);
        let room = t
            .saturating_add(self.tolerance_us)
            .saturating_sub(new_tat - now_us);
        Step {
            allowed: true,
            new_tat_us: new_tat,
            remaining: (room / t).max(0) as u64,
            retry_after_us: 0,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One request at `now_us`: whether it is admitted, the TAT kept when it is.
    fn admit(g: &Gcra, tat: &mut Option<i64>, now_us: i64) -> bool {
        let s = g.step(*tat, now_us);
        if s.allowed {
            *tat = Some(s.new_tat_us);
        }
        s.allowed
    }

    #[test]
    fn one_per_second_refuses_until_the_interval_has_passed() {
        let g = Gcra::new(60, 60_000, 0);
        let a = g.step(None, 0);
        assert!(a.allowed);
        assert_eq!(a.remaining, 0);
        let b = g.step(Some(a.new_tat_us), 10_000);
        assert!(!b.allowed);
        assert_eq!(b.retry_after_us, 990_000);
        assert!(g.step(Some(a.new_tat_us), 1_000_000).allowed);
    }

    #[test]
    fn burst_admits_burst_plus_one_at_once_then_one_per_interval() {
        let g = Gcra::new(100, 60_000, 9);
        let mut tat = None;
        let mut passed = (0..50).filter(|_| admit(&g, &mut tat, 0)).count();
        assert_eq!(passed, 10);
        // in one whole period at most limit + burst pass
        passed += (0..60_000)
            .filter(|ms| admit(&g, &mut tat, ms * 1_000))
            .count();
        assert_eq!(passed, 109);
    }

    #[test]
    fn remaining_counts_down_through_the_burst() {
        let g = Gcra::new(10, 1_000, 4);
        let mut tat = None;
        let left: Vec<u64> = (0..5)
            .map(|_| {
                let s = g.step(tat, 0);
                tat = Some(s.new_tat_us);
                s.remaining
            })
            .collect();
        assert_eq!(left, [4, 3, 2, 1, 0]);
    }

    #[test]
    fn a_rate_faster_than_the_millisecond_clock_admits_its_share_of_each_millisecond() {
        let g = Gcra::new(5000, 1000, 0);
        let mut tat = None;
        // ten requests in every millisecond, all read at the same instant
        let admitted = (0..1000 * 10)
            .filter(|n| admit(&g, &mut tat, n / 10 * 1000))
            .count();
        assert_eq!(admitted, 5000);
        // a rate the clock can resolve gets no tolerance beyond its burst
        assert_eq!(Gcra::new(1000, 1000, 0).tolerance_us, 0);
        assert_eq!(Gcra::new(10, 1000, 2).tolerance_us, 200_000);
    }

    #[test]
    fn an_interval_that_does_not_divide_rounds_towards_stricter() {
        // 3 per second: T = 333_334 µs, so 3 × T > 1 s and a fourth never fits in a second.
        let g = Gcra::new(3, 1_000, 0);
        assert_eq!(g.interval_us, 333_334);
    }
}
