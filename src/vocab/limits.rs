//! The words of rate limits and quotas that the language, the compiler, the counters and the
//! limit headers share: periods, what a rate counts by, what to do when the store fails, and
//! what a quota's time-zone name means.
//!
//! They are here, not in the AST, so that `limits` and `dialect` can speak of a quota's period
//! without depending on the parser, and the parser can check a zone name without depending on
//! the counters.

use jiff::tz::TimeZone;
use std::fmt;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QuotaPeriod {
    Day,
    Month,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RatePeriod {
    Second,
    Minute,
    Hour,
    Day,
}

impl RatePeriod {
    pub fn name(self) -> &'static str {
        match self {
            RatePeriod::Second => "second",
            RatePeriod::Minute => "minute",
            RatePeriod::Hour => "hour",
            RatePeriod::Day => "day",
        }
    }
    pub fn millis(self) -> u64 {
        match self {
            RatePeriod::Second => 1_000,
            RatePeriod::Minute => 60_000,
            RatePeriod::Hour => 3_600_000,
            RatePeriod::Day => 86_400_000,
        }
    }
}

/// What one rate limit counts by.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RateKey {
    App,
    Ip,
    Route,
    Header(String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreErrorPolicy {
    Allow,
    Deny,
}

/// The zone a policy names: an IANA name (`Asia/Shanghai`), `UTC`, or a fixed offset
/// (`+08:00`).
pub fn zone(name: &str) -> Result<TimeZone, String> {
    if name.eq_ignore_ascii_case("utc") {
        return Ok(TimeZone::UTC);
    }
    if let Some(offset) = fixed_offset(name) {
        return Ok(TimeZone::fixed(offset));
    }
    TimeZone::get(name).map_err(|_| format!("unknown time zone {name:?}"))
}

fn fixed_offset(s: &str) -> Option<jiff::tz::Offset> {
    let sign = match s.as_bytes().first()? {
        b'+' => 1,
        b'-' => -1,
        _ => return None,
    };
    let (h, m) = s[1..].split_once(':').unwrap_or((&s[1..], "0"));
    let (h, m): (i32, i32) = (h.parse().ok()?, m.parse().ok()?);
    if !(0..=18).contains(&h) || !(0..60).contains(&m) {
        return None;
    }
    jiff::tz::Offset::from_seconds(sign * (h * 3600 + m * 60)).ok()
}

/// A rate as compiled: the route's, an app's or a plan's.
#[derive(Debug, Clone, PartialEq)]
pub struct RateRule {
    /// Unique within the snapshot, and stable across reloads that leave its owner alone:
    /// `service/route:LABEL/n`, `service/app:NAME/n`, `service/plan:NAME/n`.
    pub id: String,
    pub limit: u64,
    pub period: RatePeriod,
    pub key: RateKey,
    pub burst: u64,
    pub on_store_error: StoreErrorPolicy,
}

impl fmt::Display for RateRule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let key = match &self.key {
            RateKey::App => "app".to_string(),
            RateKey::Ip => "ip".to_string(),
            RateKey::Route => "route".to_string(),
            RateKey::Header(h) => format!("header {h:?}"),
        };
        write!(
            f,
            "rate {} per {} per {key} burst {}",
            self.limit,
            self.period.name(),
            self.burst
        )
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QuotaRule {
    pub limit: u64,
    pub period: QuotaPeriod,
    /// Where the day or month is counted: its midnight resets the quota.
    pub zone: TimeZone,
    pub on_store_error: StoreErrorPolicy,
}
