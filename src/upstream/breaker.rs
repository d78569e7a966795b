//! The circuit breaker: stop sending to a backend that keeps failing, answer a downgrade
//! instead, and probe it before trusting it again.
//!
//! ```text
//!            trip rule met                      `open` has passed
//!   Closed ───────────────────▶ Open ─────────────────────────────▶ HalfOpen
//!     ▲                          ▲                                     │
//!     │                          └──────── a probe fails ──────────────┤
//!     └──────────────── `probes` probes in a row succeed ──────────────┘
//! ```
//!
//! **Closed**: every request passes; its result is counted in a sliding window of `within`
//! kept as ten slices of `within / 10`, so a result leaves the count between 0.9 and 1.0 ×
//! `within` after it happened (the memory is ten pairs of counters however heavy the
//! traffic). The breaker trips at `count N`: N failures in the window, or at `percent P min
//! M`: at least M results in the window and at least P % of them failures.
//!
//! **Open** for `open`: no request reaches the backend; each gets the downgrade.
//!
//! **HalfOpen**: up to `probes` requests pass as probes; others get the downgrade. The first
//! failed probe opens the breaker again for `open`; `probes` successful ones close it with an
//! empty window. A probe whose result never comes (its client went away) is written off after
//! `open`, and new probes are let through.
//!
//! What counts as a failure is the `trip` list: timeouts, refused or reset connections,
//! answers in a status range, answers slower than a bound. Results of requests that were
//! admitted before the breaker opened are not counted once it has.
//!
//! Pure: the caller holds the state under its lock and passes the time (milliseconds on its
//! clock, the virtual clock in `rulegate test`).

use super::health::Attempted;
use std::ops::RangeInclusive;

/// A compiled `breaker { … }`, defaults filled in.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Config {
    pub trip: Trip,
    pub rule: Rule,
    pub open_ms: u64,
    pub probes: u32,
}

impl Config {
    pub const OPEN_MS: u64 = 30_000;
    pub const PROBES: u32 = 1;
    pub const RULE: Rule = Rule::Count {
        failures: 5,
        within_ms: 10_000,
    };
}

/// `count 5 in 10s, open 30s, probes 1, failures: timeouts connect-errors status 500..599`.
impl std::fmt::Display for Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        use super::state::ms;
        match self.rule {
            Rule::Count {
                failures,
                within_ms,
            } => write!(f, "count {failures} in {}", ms(within_ms))?,
            Rule::Percent {
                percent,
                min,
                within_ms,
            } => write!(f, "percent {percent} min {min} in {}", ms(within_ms))?,
        }
        write!(
            f,
            ", open {}, probes {}, failures:",
            ms(self.open_ms),
            self.probes
        )?;
        let t = &self.trip;
        if t.timeouts {
            f.write_str(" timeouts")?;
        }
        if t.connect_errors {
            f.write_str(" connect-errors")?;
        }
        for r in &t.status {
            write!(f, " status {}..{}", r.start(), r.end())?;
        }
        if let Some(bound) = t.slower_than_ms {
            write!(f, " slower than {}", ms(bound))?;
        }
        Ok(())
    }
}

/// What counts as a failure.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Trip {
    pub timeouts: bool,
    pub connect_errors: bool,
    pub status: Vec<RangeInclusive<u16>>,
    pub slower_than_ms: Option<u64>,
}

impl Trip {
    /// Without a `trip` statement: timeouts, connection failures and any 5xx answer.
    pub fn default_conditions() -> Trip {
        Trip {
            timeouts: true,
            connect_errors: true,
            status: vec![500..=599],
            slower_than_ms: None,
        }
    }

    pub fn failed(&self, how: Attempted) -> bool {
        match how {
            Attempted::TimedOut => self.timeouts,
            Attempted::ConnectFailed | Attempted::Reset => self.connect_errors,
            Attempted::Answered { status, ms } => {
                self.status.iter().any(|r| r.contains(&status))
                    || self.slower_than_ms.is_some_and(|bound| ms > bound)
            }
        }
    }
}

/// When the breaker trips.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Rule {
    Count {
        failures: u32,
        within_ms: u64,
    },
    Percent {
        percent: u32,
        min: u32,
        within_ms: u64,
    },
}

impl Rule {
    fn within_ms(&self) -> u64 {
        match self {
            Rule::Count { within_ms, .. } | Rule::Percent { within_ms, .. } => *within_ms,
        }
    }

    fn met(&self, total: u32, failed: u32) -> bool {
        match *self {
            Rule::Count { failures, .. } => failed >= failures.max(1),
            Rule::Percent { percent, min, .. } => {
                total >= min.max(1)
                    && u64::from(failed) * 100 >= u64::from(percent) * u64::from(total)
            }
        }
    }
}

const SLICES: usize = 10;

/// Results over the last `within`, in ten slices.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct Window {
    /// (slice number since the epoch, results, failures) per ring slot.
    slots: [(i64, u32, u32); SLICES],
}

impl Window {
    fn record(&mut self, width: i64, now: i64, failed: bool) {
        let slice = now.div_euclid(width);
        let slot = &mut self.slots[slice.rem_euclid(SLICES as i64) as usize];
        if slot.0 != slice {
            *slot = (slice, 0, 0);
        }
        slot.1 += 1;
        slot.2 += u32::from(failed);
    }

    fn counts(&self, width: i64, now: i64) -> (u32, u32) {
        let slice = now.div_euclid(width);
        self.slots
            .iter()
            .filter(|s| s.0 > slice - SLICES as i64 && s.0 <= slice && s.1 > 0)
            .fold((0, 0), |(t, f), s| (t + s.1, f + s.2))
    }
}

/// Where the breaker stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    Closed,
    Open { until: i64 },
    HalfOpen { since: i64, sent: u32, passed: u32 },
}

/// A phase as the trace shows it, its times relative to `now`.
pub struct Shown(pub Phase, pub i64);

impl std::fmt::Display for Shown {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0 {
            Phase::Closed => f.write_str("closed"),
            Phase::Open { until } => {
                let left = (until - self.1).max(0) as u64;
                write!(f, "open, probes in {}", super::state::ms(left))
            }
            Phase::HalfOpen { sent, passed, .. } => {
                let s = if sent == 1 { "" } else { "s" };
                write!(f, "half-open, {sent} probe{s} sent, {passed} passed")
            }
        }
    }
}

/// Whether a request may go to the backend.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admit {
    Pass,
    /// It may, as one of the half-open breaker's probes.
    Probe,
    /// It gets the downgrade.
    Refuse,
}

/// A change of phase, for the log, the metrics and the trace.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transition {
    Opened { until: i64 },
    HalfOpened,
    Closed,
}

/// One breaker's state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct State {
    pub phase: Phase,
    window: Window,
}

impl Default for State {
    fn default() -> Self {
        State {
            phase: Phase::Closed,
            window: Window::default(),
        }
    }
}

impl State {
    /// Whether a request arriving now may pass, and any change of phase that decided it.
    pub fn admit(&mut self, c: &Config, now: i64) -> (Admit, Option<Transition>) {
        let mut changed = None;
        if let Phase::Open { until } = self.phase {
            if now < until {
                return (Admit::Refuse, None);
            }
            self.phase = Phase::HalfOpen {
                since: now,
                sent: 0,
                passed: 0,
            };
            changed = Some(Transition::HalfOpened);
        }
        match &mut self.phase {
            Phase::Closed => (Admit::Pass, changed),
            Phase::HalfOpen {
                since,
                sent,
                passed,
            } => {
                // probes that never reported are written off after `open`
                if *sent >= c.probes.max(1) && now - *since >= c.open_ms as i64 {
                    *since = now;
                    *sent = *passed;
                }
                if *sent < c.probes.max(1) {
                    *sent += 1;
                    (Admit::Probe, changed)
                } else {
                    (Admit::Refuse, changed)
                }
            }
            Phase::Open { .. } => unreachable!("left above"),
        }
    }

    /// Count the result of a request that `admit` let pass (`probe` when it was a probe).
    pub fn record(
        &mut self,
        c: &Config,
        how: Attempted,
        probe: bool,
        now: i64,
    ) -> Option<Transition> {
        let failed = c.trip.failed(how);
        match &mut self.phase {
            Phase::Closed if !probe => {
                let width = (c.rule.within_ms() / SLICES as u64).max(1) as i64;
                self.window.record(width, now, failed);
                // a success never trips a count (a percent's minimum may be reached by one)
                if !failed && matches!(c.rule, Rule::Count { .. }) {
                    return None;
                }
                let (total, failures) = self.window.counts(width, now);
                c.rule.met(total, failures).then(|| self.open(c, now))
            }
            Phase::HalfOpen { passed, .. } if probe => {
                if failed {
                    return Some(self.open(c, now));
                }
                *passed += 1;
                (*passed >= c.probes.max(1)).then(|| {
                    *self = State::default();
                    Transition::Closed
                })
            }
            // a straggler admitted before the phase changed
            _ => None,
        }
    }

    fn open(&mut self, c: &Config, now: i64) -> Transition {
        let until = now + c.open_ms as i64;
        self.phase = Phase::Open { until };
        self.window = Window::default();
        Transition::Opened { until }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const OK: Attempted = Attempted::Answered { status: 200, ms: 5 };
    const E503: Attempted = Attempted::Answered { status: 503, ms: 5 };

    fn config(rule: Rule) -> Config {
        Config {
            trip: Trip::default_conditions(),
            rule,
            open_ms: 30_000,
            probes: 2,
        }
    }

    fn count(n: u32) -> Config {
        config(Rule::Count {
            failures: n,
            within_ms: 30_000,
        })
    }

    fn pass(s: &mut State, c: &Config, how: Attempted, now: i64) -> Option<Transition> {
        assert_eq!(s.admit(c, now).0, Admit::Pass);
        s.record(c, how, false, now)
    }

    #[test]
    fn it_opens_at_the_countth_failure_within_the_window() {
        let c = count(3);
        let mut s = State::default();
        assert_eq!(pass(&mut s, &c, E503, 0), None);
        assert_eq!(pass(&mut s, &c, OK, 1), None);
        assert_eq!(pass(&mut s, &c, Attempted::TimedOut, 2), None);
        assert_eq!(
            pass(&mut s, &c, Attempted::ConnectFailed, 3),
            Some(Transition::Opened { until: 30_003 })
        );
        assert_eq!(s.admit(&c, 30_002), (Admit::Refuse, None));
    }

    #[test]
    fn failures_older_than_the_window_are_forgotten() {
        let c = count(3);
        let mut s = State::default();
        pass(&mut s, &c, E503, 0);
        pass(&mut s, &c, E503, 10_000);
        // the first slice (0..3 s) has left a 30 s window at 33 s; the one at 10 s has not
        assert_eq!(pass(&mut s, &c, E503, 33_000), None);
        assert_eq!(
            pass(&mut s, &c, E503, 33_001),
            Some(Transition::Opened { until: 63_001 })
        );
    }

    #[test]
    fn percent_waits_for_the_minimum_then_trips_on_the_share() {
        let c = config(Rule::Percent {
            percent: 50,
            min: 4,
            within_ms: 10_000,
        });
        let mut s = State::default();
        assert_eq!(pass(&mut s, &c, E503, 0), None);
        assert_eq!(pass(&mut s, &c, E503, 1), None);
        assert_eq!(pass(&mut s, &c, OK, 2), None);
        assert_eq!(
            pass(&mut s, &c, OK, 3),
            Some(Transition::Opened { until: 30_003 })
        );
        let mut s = State::default();
        for (i, how) in [OK, OK, OK, E503, OK].into_iter().enumerate() {
            assert_eq!(pass(&mut s, &c, how, i as i64), None);
        }
    }

    #[test]
    fn after_open_it_lets_probes_through_and_closes_when_they_all_succeed() {
        let c = count(1);
        let mut s = State::default();
        pass(&mut s, &c, E503, 0);
        assert_eq!(
            s.admit(&c, 30_000),
            (Admit::Probe, Some(Transition::HalfOpened))
        );
        assert_eq!(s.admit(&c, 30_001), (Admit::Probe, None));
        assert_eq!(s.admit(&c, 30_002), (Admit::Refuse, None));
        assert_eq!(s.record(&c, OK, true, 30_010), None);
        assert_eq!(s.record(&c, OK, true, 30_011), Some(Transition::Closed));
        assert_eq!(s.admit(&c, 30_012), (Admit::Pass, None));
    }

    #[test]
    fn a_failed_probe_opens_it_again_for_the_whole_duration() {
        let c = count(1);
        let mut s = State::default();
        pass(&mut s, &c, E503, 0);
        s.admit(&c, 30_000);
        assert_eq!(
            s.record(&c, Attempted::TimedOut, true, 31_000),
            Some(Transition::Opened { until: 61_000 })
        );
        assert_eq!(s.admit(&c, 60_999).0, Admit::Refuse);
    }

    #[test]
    fn probes_that_never_report_are_written_off_after_the_open_duration() {
        let c = count(1);
        let mut s = State::default();
        pass(&mut s, &c, E503, 0);
        s.admit(&c, 30_000);
        s.admit(&c, 30_000);
        assert_eq!(s.admit(&c, 59_999).0, Admit::Refuse);
        assert_eq!(s.admit(&c, 60_000).0, Admit::Probe);
    }

    #[test]
    fn results_of_requests_admitted_before_it_opened_are_not_counted() {
        let c = count(1);
        let mut s = State::default();
        assert_eq!(s.admit(&c, 0).0, Admit::Pass);
        assert_eq!(s.admit(&c, 0).0, Admit::Pass);
        s.record(&c, E503, false, 1);
        assert_eq!(s.record(&c, OK, false, 2), None);
        assert_eq!(s.phase, Phase::Open { until: 30_001 });
        s.admit(&c, 30_001);
        // a late non-probe success does not close a half-open breaker
        assert_eq!(s.record(&c, OK, false, 30_002), None);
        assert!(matches!(s.phase, Phase::HalfOpen { .. }));
    }

    #[test]
    fn slow_answers_and_listed_statuses_are_the_trip_conditions() {
        let trip = Trip {
            timeouts: false,
            connect_errors: false,
            status: vec![502..=502],
            slower_than_ms: Some(100),
        };
        assert!(trip.failed(Attempted::Answered {
            status: 200,
            ms: 101
        }));
        assert!(!trip.failed(Attempted::Answered {
            status: 200,
            ms: 100
        }));
        assert!(trip.failed(Attempted::Answered { status: 502, ms: 1 }));
        assert!(!trip.failed(E503));
        assert!(!trip.failed(Attempted::TimedOut));
        assert!(!trip.failed(Attempted::ConnectFailed));
    }
}
