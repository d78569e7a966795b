//! Whether a target may take requests: what active probes and forwarded requests say.
//!
//! Two independent verdicts make a target available:
//!
//! - **active** (`health http "/PATH" …`): a target starts healthy; `unhealthy N` consecutive
//!   failed probes (no answer within the probe's timeout, a refused or reset connection, a
//!   status outside the range) take it out, `healthy N` consecutive good probes bring it back.
//!   The serve loop sends the probes (`server::health`); the state machine is here.
//! - **passive** (every backend; `passive …` tunes it): `unhealthy N` consecutive failed
//!   forwarded requests (a refused or reset connection, a timeout, and, when `status A..B` is
//!   given, an answer in that range) eject the target for `cooldown`; after it, the target is
//!   tried again and one more failure ejects it anew. Without a `passive` statement a refused
//!   connection ejects the target for 10 s, as rulegate always did.
//!
//! A target is available when both verdicts allow it. Times are milliseconds on the caller's
//! clock (the virtual clock in `rulegate test`).

use std::ops::RangeInclusive;

/// `health http …`, with defaults filled in.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Active {
    pub path: String,
    pub every_ms: u64,
    pub timeout_ms: u64,
    pub healthy: u32,
    pub unhealthy: u32,
    pub status: RangeInclusive<u16>,
}

impl Active {
    /// Huawei's console proposes these for a VPC channel's HTTP health check: every 10 s, a
    /// 5 s timeout, 2 good checks to come back, 5 failed ones to go, status 200.
    pub const EVERY_MS: u64 = 10_000;
    pub const TIMEOUT_MS: u64 = 5_000;
    pub const HEALTHY: u32 = 2;
    pub const UNHEALTHY: u32 = 5;
    pub const STATUS: RangeInclusive<u16> = 200..=200;
}

/// `passive …`, with defaults filled in.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Passive {
    pub unhealthy: u32,
    /// Answers that count as failures; `None`: only transport failures do.
    pub status: Option<RangeInclusive<u16>>,
    pub cooldown_ms: u64,
    /// Whether resets and timeouts count (without `passive`, only refusals do).
    pub resets_and_timeouts: bool,
}

impl Passive {
    /// Without a `passive` statement: a refused connection ejects the target for 10 s.
    pub const IMPLICIT: Passive = Passive {
        unhealthy: 1,
        status: None,
        cooldown_ms: 10_000,
        resets_and_timeouts: false,
    };
    pub const UNHEALTHY: u32 = 3;
    pub const COOLDOWN_MS: u64 = 10_000;
}

/// How one forwarded attempt (or one probe) ended, as health and the breaker count it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Attempted {
    /// The backend answered with this status, after this many milliseconds.
    Answered { status: u16, ms: u64 },
    /// No connection could be made (refused, unreachable, the connect timeout).
    ConnectFailed,
    /// The connection failed after it was made, before an answer (reset, closed).
    Reset,
    /// No answer within the timeout.
    TimedOut,
}

/// One target's health.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TargetHealth {
    /// The active verdict; `true` until probes say otherwise.
    pub active_up: bool,
    /// Consecutive probe results of the kind that would change the verdict.
    run: u32,
    /// Consecutive failed forwarded requests.
    failures: u32,
    /// Ejected by passive checks until this time.
    pub ejected_until: Option<i64>,
}

impl Default for TargetHealth {
    fn default() -> Self {
        TargetHealth {
            active_up: true,
            run: 0,
            failures: 0,
            ejected_until: None,
        }
    }
}

/// What a result did to a target, for the log and the trace.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    WentDown,
    CameBack,
    Ejected { until: i64 },
}

impl TargetHealth {
    pub fn available(&self, now_ms: i64) -> bool {
        self.active_up && self.ejected_until.is_none_or(|until| now_ms >= until)
    }

    /// Drop what active probes said (the backend no longer has an active check).
    pub fn forget_probes(&mut self) {
        self.active_up = true;
        self.run = 0;
    }

    /// Count one active probe's result.
    pub fn probed(&mut self, ok: bool, check: &Active) -> Option<Change> {
        if ok == self.active_up {
            self.run = 0;
            return None;
        }
        self.run += 1;
        let needed = if ok { check.healthy } else { check.unhealthy };
        if self.run < needed.max(1) {
            return None;
        }
        self.run = 0;
        self.active_up = ok;
        if ok {
            // a target the probes bring back starts with a clean passive record
            self.failures = 0;
            self.ejected_until = None;
            Some(Change::CameBack)
        } else {
            Some(Change::WentDown)
        }
    }

    /// Count one forwarded attempt's result.
    pub fn forwarded(&mut self, how: Attempted, p: &Passive, now_ms: i64) -> Option<Change> {
        if !p.failed(how) {
            self.failures = 0;
            if self.ejected_until.is_some_and(|until| now_ms >= until) {
                self.ejected_until = None;
            }
            return None;
        }
        self.failures += 1;
        // after a cooldown, one failure ejects the target again
        let rejoined = self.ejected_until.is_some_and(|until| now_ms >= until);
        if self.failures < p.unhealthy.max(1) && !rejoined {
            return None;
        }
        self.failures = 0;
        let until = now_ms + p.cooldown_ms as i64;
        self.ejected_until = Some(until);
        Some(Change::Ejected { until })
    }
}

impl Passive {
    /// Whether an attempt that ended so counts against its target.
    pub fn failed(&self, how: Attempted) -> bool {
        match how {
            Attempted::ConnectFailed => true,
            Attempted::TimedOut | Attempted::Reset => self.resets_and_timeouts,
            Attempted::Answered { status, .. } => {
                self.status.as_ref().is_some_and(|r| r.contains(&status))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check() -> Active {
        Active {
            path: "/healthz".into(),
            every_ms: 10_000,
            timeout_ms: 2_000,
            healthy: 2,
            unhealthy: 3,
            status: 200..=399,
        }
    }

    fn passive() -> Passive {
        Passive {
            unhealthy: 3,
            status: Some(500..=599),
            cooldown_ms: 10_000,
            resets_and_timeouts: true,
        }
    }

    const OK: Attempted = Attempted::Answered { status: 200, ms: 3 };
    const E503: Attempted = Attempted::Answered { status: 503, ms: 3 };

    #[test]
    fn a_target_goes_down_after_unhealthy_failed_probes_in_a_row() {
        let mut t = TargetHealth::default();
        assert_eq!(t.probed(false, &check()), None);
        assert_eq!(t.probed(false, &check()), None);
        assert!(t.available(0));
        assert_eq!(t.probed(false, &check()), Some(Change::WentDown));
        assert!(!t.available(0));
    }

    #[test]
    fn a_good_probe_between_failures_starts_the_count_again() {
        let mut t = TargetHealth::default();
        t.probed(false, &check());
        t.probed(false, &check());
        t.probed(true, &check());
        t.probed(false, &check());
        t.probed(false, &check());
        assert!(t.available(0));
    }

    #[test]
    fn a_down_target_comes_back_after_healthy_good_probes_in_a_row() {
        let mut t = TargetHealth::default();
        for _ in 0..3 {
            t.probed(false, &check());
        }
        assert_eq!(t.probed(true, &check()), None);
        assert!(!t.available(0));
        assert_eq!(t.probed(true, &check()), Some(Change::CameBack));
        assert!(t.available(0));
    }

    #[test]
    fn consecutive_failed_requests_eject_a_target_for_the_cooldown() {
        let mut t = TargetHealth::default();
        let p = passive();
        assert_eq!(t.forwarded(E503, &p, 0), None);
        assert_eq!(t.forwarded(Attempted::TimedOut, &p, 1), None);
        assert_eq!(
            t.forwarded(Attempted::ConnectFailed, &p, 2),
            Some(Change::Ejected { until: 10_002 })
        );
        assert!(!t.available(10_001));
        assert!(t.available(10_002));
    }

    #[test]
    fn after_the_cooldown_one_more_failure_ejects_again_and_a_success_clears_it() {
        let mut t = TargetHealth::default();
        let p = passive();
        for ms in 0..3 {
            t.forwarded(E503, &p, ms);
        }
        assert_eq!(
            t.forwarded(E503, &p, 20_000),
            Some(Change::Ejected { until: 30_000 })
        );
        assert_eq!(t.forwarded(OK, &p, 30_000), None);
        assert_eq!(t.ejected_until, None);
        assert_eq!(t.forwarded(E503, &p, 30_001), None);
    }

    #[test]
    fn a_success_between_failures_starts_the_passive_count_again() {
        let mut t = TargetHealth::default();
        let p = passive();
        t.forwarded(E503, &p, 0);
        t.forwarded(E503, &p, 0);
        t.forwarded(OK, &p, 0);
        t.forwarded(E503, &p, 0);
        t.forwarded(E503, &p, 0);
        assert!(t.available(0));
    }

    #[test]
    fn without_a_passive_statement_only_a_refused_connection_ejects_for_ten_seconds() {
        let mut t = TargetHealth::default();
        let p = Passive::IMPLICIT;
        assert_eq!(t.forwarded(E503, &p, 0), None);
        assert_eq!(t.forwarded(Attempted::TimedOut, &p, 0), None);
        assert_eq!(t.forwarded(Attempted::Reset, &p, 0), None);
        assert_eq!(
            t.forwarded(Attempted::ConnectFailed, &p, 5),
            Some(Change::Ejected { until: 10_005 })
        );
    }

    #[test]
    fn probes_bringing_a_target_back_clear_its_ejection() {
        let mut t = TargetHealth::default();
        let p = Passive::IMPLICIT;
        for _ in 0..3 {
            t.probed(false, &check());
        }
        t.forwarded(Attempted::ConnectFailed, &p, 0);
        t.probed(true, &check());
        t.probed(true, &check());
        assert!(t.available(1));
    }
}
