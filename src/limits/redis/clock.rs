//! Redis's clock as a gateway can bound it, for the deadline every script call carries (see
//! the module docs of [`super`]).
//!
//! A single node has one clock. In a cluster each master has its own, and they need not
//! agree: the offset learnt from one node, applied to a node whose clock is behind, would let
//! a late script count. So a cluster keeps one [`RedisClock`] per counter group — a group's
//! keys live in one slot, on one master, and every reply for the group comes from it. After
//! a failover the slot's new master may differ from the old by the nodes' skew; that is the
//! same bounded error as a step back of a single node's clock, followed within
//! [`RELEARN_EVERY`].

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How long a learnt offset stands before a looser sample may replace it: a tighter sample
/// always does at once.
pub const RELEARN_EVERY: Duration = Duration::from_secs(10);

/// Redis's clock as this gateway can bound it. A reply carrying Redis's `TIME` R that arrives
/// at local instant t was produced no later than t, so R − t is a lower bound of the offset
/// from the local monotonic clock to Redis's, and `local instant + bound` is never later in
/// Redis time than that instant really is. Every probe and every script reply gives a sample;
/// the tightest (largest) of the last [`RELEARN_EVERY`] is kept, so a reply that waited in a
/// queue does not shorten later deadlines, and a step back of Redis's clock is followed
/// within that period (until then a late script could count by at most the step's size).
pub struct RedisClock {
    epoch: Instant,
    /// (offset in µs, when it was learnt); `None` until the first sample.
    learnt: Mutex<Option<(i64, Instant)>>,
}

impl RedisClock {
    pub fn new() -> RedisClock {
        RedisClock {
            epoch: Instant::now(),
            learnt: Mutex::new(None),
        }
    }

    fn local_us(&self, at: Instant) -> i64 {
        at.saturating_duration_since(self.epoch).as_micros() as i64
    }

    /// Redis said `redis_us` in a reply that arrived at `arrived`.
    pub fn learn(&self, redis_us: i64, arrived: Instant) {
        let sample = redis_us.saturating_sub(self.local_us(arrived));
        let mut learnt = self.learnt.lock().unwrap_or_else(|e| e.into_inner());
        let keep = learnt.is_some_and(|(offset, at)| {
            offset > sample && arrived.saturating_duration_since(at) < RELEARN_EVERY
        });
        if !keep {
            *learnt = Some((sample, arrived));
        }
    }

    /// A local instant in Redis time (µs), never later than Redis's clock at that instant.
    pub fn redis_us(&self, at: Instant) -> Option<i64> {
        let learnt = *self.learnt.lock().unwrap_or_else(|e| e.into_inner());
        learnt.map(|(offset, _)| self.local_us(at).saturating_add(offset))
    }
}

/// The clocks of a store, by [`Keys::clock`](super::keys::Keys::clock) name: one for a single
/// node, one per counter group in a cluster (bounded by the policy's services).
#[derive(Default)]
pub struct Clocks(Mutex<HashMap<String, Arc<RedisClock>>>);

impl Clocks {
    pub fn get(&self, name: &str) -> Arc<RedisClock> {
        let mut map = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(c) = map.get(name) {
            return c.clone();
        }
        let c = Arc::new(RedisClock::new());
        map.insert(name.to_string(), c.clone());
        c
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A sample is Redis's time less the instant its reply arrived; the tightest recent one
    /// is kept (a reply that queued says less), and a deadline converts with it.
    #[test]
    fn the_clock_keeps_the_tightest_lower_bound_of_redis_time() {
        let clock = RedisClock::new();
        assert_eq!(clock.redis_us(Instant::now()), None);
        let t = clock.epoch + Duration::from_secs(1);
        clock.learn(5_000_000, t); // offset 4 s
        clock.learn(4_500_000, t + Duration::from_millis(100)); // queued: offset 3.4 s
        assert_eq!(
            clock.redis_us(t + Duration::from_secs(2)),
            Some(7_000_000),
            "the looser sample does not replace a recent tighter one"
        );
        clock.learn(8_000_000, t + Duration::from_secs(3)); // 4 s again: the bound is renewed
        assert_eq!(clock.redis_us(t + Duration::from_secs(3)), Some(8_000_000));
        // an old bound gives way to a looser fresh one (Redis's clock may have stepped back)
        let later = t + RELEARN_EVERY + Duration::from_secs(5);
        clock.learn(1_000_000, later);
        assert_eq!(clock.redis_us(later), Some(1_000_000));
    }

    /// Cluster groups learn apart: one node's clock says nothing about another's.
    #[test]
    fn each_name_has_its_own_clock() {
        let clocks = Clocks::default();
        let t = Instant::now();
        clocks.get("a").learn(5_000_000, t);
        assert!(clocks.get("a").redis_us(t).is_some());
        assert!(clocks.get("b").redis_us(t).is_none());
        assert!(Arc::ptr_eq(&clocks.get("a"), &clocks.get("a")));
    }
}
