//! The gateway's readings of the clock: wall time worked out from a monotonic reading a
//! request has taken already, instead of a reading of its own.
//!
//! A forward needs "now" in several places: the request's start, the wall time the policy's
//! clock checks and the targets' health are kept in, the backend's deadline, the pool's idle
//! stamps, the end of the exchange for the latencies and the access line's timestamp. Read
//! separately that was ten readings of the clock per forward, about 18 ns each on this
//! machine's TSC clock source — more than `decide` spends on a plain route. Now a request
//! reads the monotonic clock at its start, around the backend exchange and at its end, and
//! every other "now" is one of those readings.
//!
//! Wall time is the monotonic reading plus an offset between the two clocks. Both run at the
//! same rate (NTP slews them alike); only a step of the system clock (`date -s`, a VM
//! resumed) moves one against the other, so the offset is read again every
//! [`REFRESH_EVERY`] and a step shows in the gateway's wall time within that long. The
//! offset is one atomic word: reading it costs a load, not a lock.
//!
//! No crate does this: `coarsetime` and `quanta` make their own `Instant` types (a coarse
//! clock, a calibrated TSC), which hyper, tokio and the rest of the gateway do not take.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// How often the offset between the wall clock and the monotonic one is read again.
pub const REFRESH_EVERY: Duration = Duration::from_secs(1);

/// The monotonic reading the offset is counted from; set with the first offset.
fn origin() -> Instant {
    static ORIGIN: OnceLock<Instant> = OnceLock::new();
    *ORIGIN.get_or_init(|| {
        let origin = Instant::now();
        OFFSET_US.store(system_us(), Ordering::Relaxed);
        origin
    })
}

/// Microseconds since the Unix epoch at [`origin`], as of the last refresh.
static OFFSET_US: AtomicI64 = AtomicI64::new(0);

/// The system clock, read.
fn system_us() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as i64)
}

/// Microseconds from `origin` to `at`, negative when `at` is earlier.
fn since_origin_us(at: Instant, origin: Instant) -> i64 {
    match at.checked_duration_since(origin) {
        Some(d) => d.as_micros() as i64,
        None => -(origin.duration_since(at).as_micros() as i64),
    }
}

/// Read the offset between the clocks again (every [`REFRESH_EVERY`], see `mod.rs`).
pub fn refresh() {
    let origin = origin();
    let now = Instant::now();
    let wall = system_us();
    OFFSET_US.store(wall - since_origin_us(now, origin), Ordering::Relaxed);
}

/// Microseconds since the Unix epoch when the monotonic clock read `at`.
pub fn wall_us(at: Instant) -> i64 {
    let origin = origin();
    since_origin_us(at, origin) + OFFSET_US.load(Ordering::Relaxed)
}

/// Milliseconds since the Unix epoch when the monotonic clock read `at`.
pub fn wall_ms(at: Instant) -> i64 {
    wall_us(at).div_euclid(1000)
}

/// Microseconds since the Unix epoch, now: one monotonic reading.
pub fn now_us() -> i64 {
    wall_us(Instant::now())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_wall_time_of_a_reading_is_the_system_clocks_then() {
        let before = system_us();
        let at = Instant::now();
        let after = system_us();
        let wall = wall_us(at);
        // within the refresh's own two readings of each other, a few microseconds here
        assert!(
            (before - 1000..=after + 1000).contains(&wall),
            "{before} ≤ {wall} ≤ {after}"
        );
    }

    #[test]
    fn a_reading_before_the_origin_is_earlier_in_wall_time_too() {
        let at = Instant::now();
        origin();
        let earlier = at.checked_sub(Duration::from_secs(5)).unwrap_or(at);
        let gap = wall_us(at) - wall_us(earlier);
        // five seconds, give or take each reading's rounding to whole microseconds
        assert!((4_999_999..=5_000_001).contains(&gap), "{gap}");
    }

    #[test]
    fn a_refresh_keeps_the_wall_time_of_a_reading() {
        let at = Instant::now();
        let first = wall_us(at);
        std::thread::sleep(Duration::from_millis(20));
        refresh();
        // the clocks did not step meanwhile: the same reading, the same wall time (±1 µs of
        // rounding in each of the two offsets)
        assert!(
            (wall_us(at) - first).abs() <= 2,
            "{first} then {}",
            wall_us(at)
        );
    }
}
