//! What `decide` needs from the world: the time, a request id, and counters. Behind a trait so
//! `explain` and `test` run on a virtual clock with in-memory counters, and the server on the
//! real clock with whichever store the operator chose.

use crate::compile::{QuotaRule, RateRule};
use crate::policy::ast::QuotaPeriod;
use std::collections::HashMap;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::Mutex;

pub trait Env {
    /// Milliseconds since the Unix epoch.
    fn now_ms(&self) -> i64;
    /// A fresh request id: 32 lower-case hex characters.
    fn request_id(&self) -> String;
    fn limiter(&self) -> &dyn Limiter;
    /// Whether `decide` records its steps in `Decision::trace`. `explain` and `test` show
    /// them; `serve` answers without, since formatting each step's detail costs more than
    /// deciding.
    fn keeps_trace(&self) -> bool {
        true
    }
}

/// Counting for rate limits and quotas.
pub trait Limiter {
    /// Count one request against a rate rule under `key` and say whether it may pass.
    fn rate(&self, key: &str, rule: &RateRule, now_ms: i64) -> RateVerdict;
    /// Count one request against a quota under `key` and say whether it may pass.
    fn quota(&self, key: &str, rule: &QuotaRule, now_ms: i64) -> QuotaVerdict;
    /// Record `key` (a signer's nonce) for `ttl_ms`; false when it was already recorded and has
    /// not expired — a replay.
    fn first_use(&self, key: &str, ttl_ms: u64, now_ms: i64) -> bool;
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateVerdict {
    pub allowed: bool,
    pub remaining: u64,
    /// When refused: how long until one request would pass.
    pub retry_after_ms: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QuotaVerdict {
    pub allowed: bool,
    pub used: u64,
    pub remaining: u64,
}

/// GCRA (generic cell rate algorithm) and calendar-window quotas in process memory.
///
/// GCRA keeps one number per key, the theoretical arrival time (TAT). A request at `t` passes
/// when `max(TAT, t) + T - t ≤ T + τ`, where `T = period / limit` and `τ = burst × T`; it then
/// moves TAT to `max(TAT, t) + T`. Exact, smooth, and `Retry-After` falls out of the TAT.
#[derive(Default)]
pub struct MemoryLimiter {
    tat: Mutex<HashMap<String, i64>>,
    quotas: Mutex<HashMap<String, (i64, u64)>>,
    /// nonce → expiry (ms)
    nonces: Mutex<HashMap<String, i64>>,
}

impl MemoryLimiter {
    pub fn new() -> Self {
        Self::default()
    }
}

/// The start of the calendar window (UTC) that `now_ms` falls in.
pub fn window_start(period: QuotaPeriod, now_ms: i64) -> i64 {
    let ts = jiff::Timestamp::from_millisecond(now_ms).unwrap_or(jiff::Timestamp::UNIX_EPOCH);
    let date = ts.to_zoned(jiff::tz::TimeZone::UTC).date();
    let start = match period {
        QuotaPeriod::Day => date,
        QuotaPeriod::Month => date.first_of_month(),
    };
    start
        .to_zoned(jiff::tz::TimeZone::UTC)
        .map(|z| z.timestamp().as_millisecond())
        .unwrap_or(0)
}

impl Limiter for MemoryLimiter {
    fn rate(&self, key: &str, rule: &RateRule, now_ms: i64) -> RateVerdict {
        let period = rule.period.millis() as f64;
        let t = period / rule.limit as f64;
        let tau = t * rule.burst as f64;
        let mut map = self.tat.lock().unwrap_or_else(|e| e.into_inner());
        let now = now_ms as f64;
        let tat = map.get(key).map(|v| *v as f64).unwrap_or(now).max(now);
        let new_tat = tat + t;
        let allow_at = new_tat - t - tau;
        if now < allow_at {
            return RateVerdict {
                allowed: false,
                remaining: 0,
                retry_after_ms: (allow_at - now).ceil() as u64,
            };
        }
        map.insert(key.to_string(), new_tat.ceil() as i64);
        let remaining = ((t + tau - (new_tat - now)) / t).floor().max(0.0) as u64;
        RateVerdict {
            allowed: true,
            remaining,
            retry_after_ms: 0,
        }
    }

    fn first_use(&self, key: &str, ttl_ms: u64, now_ms: i64) -> bool {
        let mut nonces = self.nonces.lock().unwrap_or_else(|e| e.into_inner());
        // Expired entries go when the map doubles, so it stays bounded by the TTL's traffic.
        if nonces.len() >= 4096 && nonces.len().is_power_of_two() {
            nonces.retain(|_, expiry| *expiry > now_ms);
        }
        match nonces.get(key) {
            Some(expiry) if *expiry > now_ms => false,
            _ => {
                nonces.insert(key.to_string(), now_ms + ttl_ms as i64);
                true
            }
        }
    }

    fn quota(&self, key: &str, rule: &QuotaRule, now_ms: i64) -> QuotaVerdict {
        let start = window_start(rule.period, now_ms);
        let mut map = self.quotas.lock().unwrap_or_else(|e| e.into_inner());
        let entry = map.entry(key.to_string()).or_insert((start, 0));
        if entry.0 != start {
            *entry = (start, 0);
        }
        if entry.1 >= rule.limit {
            return QuotaVerdict {
                allowed: false,
                used: entry.1,
                remaining: 0,
            };
        }
        entry.1 += 1;
        QuotaVerdict {
            allowed: true,
            used: entry.1,
            remaining: rule.limit - entry.1,
        }
    }
}

/// A deterministic world: a clock that moves only when told, sequential request ids, and
/// in-memory counters. `explain` and policy tests run on it.
pub struct VirtualEnv {
    now_ms: AtomicI64,
    next_id: AtomicU64,
    limiter: MemoryLimiter,
}

impl VirtualEnv {
    pub fn new(now_ms: i64) -> Self {
        VirtualEnv {
            now_ms: AtomicI64::new(now_ms),
            next_id: AtomicU64::new(1),
            limiter: MemoryLimiter::new(),
        }
    }

    pub fn set_now_ms(&self, now_ms: i64) {
        self.now_ms.store(now_ms, Ordering::SeqCst);
    }

    pub fn advance_ms(&self, ms: i64) {
        self.now_ms.fetch_add(ms, Ordering::SeqCst);
    }
}

impl Env for VirtualEnv {
    fn now_ms(&self) -> i64 {
        self.now_ms.load(Ordering::SeqCst)
    }

    fn request_id(&self) -> String {
        format!("{:032x}", self.next_id.fetch_add(1, Ordering::SeqCst))
    }

    fn limiter(&self) -> &dyn Limiter {
        &self.limiter
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::ast::{RateKey, RatePeriod, StoreErrorPolicy};

    fn rule(limit: u64, burst: u64) -> RateRule {
        RateRule {
            id: "r".into(),
            limit,
            period: RatePeriod::Minute,
            key: RateKey::Route,
            burst,
            on_store_error: StoreErrorPolicy::Allow,
        }
    }

    #[test]
    fn gcra_spaces_requests_and_reports_retry_after() {
        let l = MemoryLimiter::new();
        let r = rule(60, 0); // one per second
        assert!(l.rate("k", &r, 0).allowed);
        let refused = l.rate("k", &r, 10);
        assert!(!refused.allowed);
        assert_eq!(refused.retry_after_ms, 990);
        assert!(l.rate("k", &r, 1000).allowed);
    }

    #[test]
    fn gcra_burst_admits_burst_plus_one_at_once() {
        let l = MemoryLimiter::new();
        let r = rule(60, 4);
        let passed = (0..10).filter(|_| l.rate("k", &r, 0).allowed).count();
        assert_eq!(passed, 5);
    }

    #[test]
    fn quota_resets_at_the_calendar_boundary() {
        let l = MemoryLimiter::new();
        let q = QuotaRule {
            limit: 2,
            period: QuotaPeriod::Day,
        };
        let day = 86_400_000;
        assert!(l.quota("a", &q, day + 5).allowed);
        assert!(l.quota("a", &q, 2 * day - 1).allowed);
        assert!(!l.quota("a", &q, 2 * day - 1).allowed);
        assert!(l.quota("a", &q, 2 * day).allowed);
    }
}
