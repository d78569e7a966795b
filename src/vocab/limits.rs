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

/// A rate's window: `per minute` is one minute, `per 10s` ten seconds (Huawei's throttling
/// time: a count of one unit).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    pub count: u32,
    pub unit: RatePeriod,
}

impl Window {
    /// One whole unit: `per minute`.
    pub const fn one(unit: RatePeriod) -> Window {
        Window { count: 1, unit }
    }
    pub fn millis(self) -> u64 {
        u64::from(self.count) * self.unit.millis()
    }
    /// As a policy writes it after `per`: `minute`, `10s`, `5m`.
    pub fn written(self) -> String {
        if self.count == 1 {
            return self.unit.name().to_string();
        }
        let suffix = match self.unit {
            RatePeriod::Second => "s",
            RatePeriod::Minute => "m",
            RatePeriod::Hour => "h",
            RatePeriod::Day => "d",
        };
        format!("{}{suffix}", self.count)
    }
}

/// As Huawei writes a throttle's time: `1 minute`, `10 second`.
impl fmt::Display for Window {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.count, self.unit.name())
    }
}

/// What one rate limit counts by.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RateKey {
    App,
    Ip,
    Route,
    Header(String),
    /// A query parameter's value (decoded; absent counts as empty).
    Query(String),
}

impl RateKey {
    /// Huawei's name for the throttling dimension (`X-Apig-RateLimit-<name>`, `policy <name>
    /// over ratelimit`): `api`, `app` or `ip`; none for keys Huawei has no dimension for.
    pub fn huawei_dimension(&self) -> Option<&'static str> {
        match self {
            RateKey::Route => Some("api"),
            RateKey::App => Some("app"),
            RateKey::Ip => Some("ip"),
            RateKey::Header(_) | RateKey::Query(_) => None,
        }
    }
}

impl fmt::Display for RateKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RateKey::App => f.write_str("app"),
            RateKey::Ip => f.write_str("ip"),
            RateKey::Route => f.write_str("route"),
            RateKey::Header(h) => write!(f, "header {h:?}"),
            RateKey::Query(q) => write!(f, "query {q:?}"),
        }
    }
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

/// A rate as compiled: the route's, an app's, a plan's, or one limit of a throttle.
#[derive(Debug, Clone, PartialEq)]
pub struct RateRule {
    /// Unique within the snapshot, and stable across reloads that leave its owner alone:
    /// `service/route:LABEL/n`, `service/app:NAME/n`, `service/plan:NAME/n`; a throttle's
    /// `throttle:NAME|DIMENSION` when shared, `throttle:NAME@service/route:LABEL|DIMENSION`
    /// when each API counts its own. Rules with one id share one budget.
    pub id: String,
    pub limit: u64,
    pub period: Window,
    pub key: RateKey,
    pub burst: u64,
    pub on_store_error: StoreErrorPolicy,
    /// The throttle this limit belongs to (`None`: a `rate` statement).
    pub throttle: Option<std::sync::Arc<str>>,
    /// Special limits for some apps or clients (`except app vip 800`), first match wins.
    pub except: Vec<Exception>,
}

/// `except app NAME N` or `except ip CIDR N`: one app's or client's own limit.
#[derive(Debug, Clone, PartialEq)]
pub struct Exception {
    pub who: Excepted,
    pub limit: u64,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Excepted {
    /// The app's key (what a per-app limit counts by).
    AppKey(String),
    Ip(ipnet::IpNet),
}

impl RateRule {
    /// The limit for the client counted as `value` (its app key or IP): an exception's, or
    /// the rule's.
    pub fn limit_for(&self, value: &str) -> u64 {
        let ip = || value.parse::<std::net::IpAddr>().ok();
        self.except
            .iter()
            .find(|e| match &e.who {
                Excepted::AppKey(k) => self.key == RateKey::App && k == value,
                Excepted::Ip(net) => {
                    self.key == RateKey::Ip && ip().is_some_and(|a| net.contains(&a))
                }
            })
            .map_or(self.limit, |e| e.limit)
    }

    /// How many requests beyond the first may come at once, under `limit`: a `rate`
    /// statement's `burst`; a throttle's whole count (N per window, all N at once, as Huawei
    /// counts).
    pub fn burst_for(&self, limit: u64) -> u64 {
        match self.throttle {
            Some(_) => limit.saturating_sub(1),
            None => self.burst,
        }
    }
}

impl fmt::Display for RateRule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(name) = &self.throttle {
            return match self.key {
                RateKey::Route => write!(
                    f,
                    "throttle {name}: {} per {}",
                    self.limit,
                    self.period.written()
                ),
                _ => write!(
                    f,
                    "throttle {name}: per {} {} per {}",
                    self.key,
                    self.limit,
                    self.period.written()
                ),
            };
        }
        write!(
            f,
            "rate {} per {} per {} burst {}",
            self.limit,
            self.period.written(),
            self.key,
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
