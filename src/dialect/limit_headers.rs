//! The headers that tell a client where it stands against its limits (wire-formats.md, the
//! table at the top and §1.4, §2.3, §3.2). They go on every answer of a route with limits,
//! passed or refused. Each dialect names them in its profile (`dialect/<vendor>.rs`,
//! `Profile::limit_headers`); this module collects them.
//!
//! When several limits land on the same header, the one with the fewest requests left is
//! shown: the one the client will meet first.

use crate::vocab::Dialect;
use crate::vocab::RateKey;

/// One limit's standing after a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Standing<'a> {
    pub kind: LimitKind<'a>,
    pub limit: u64,
    pub remaining: u64,
    /// `second`, `minute`, `hour`, `day` or `month`.
    pub period: &'static str,
    /// How many periods the window spans: `per 10s` is 10 seconds (1 for quotas).
    pub periods: u32,
}

impl Standing<'_> {
    /// Huawei's throttling dimension: `api`, `app` or `ip` (None: quotas, and rates keyed by
    /// a header or query parameter, which Huawei has no name for).
    pub fn huawei_dimension(&self) -> Option<&'static str> {
        match self.kind {
            LimitKind::RouteRate(key) => key.huawei_dimension(),
            LimitKind::AppRate => Some("app"),
            LimitKind::Quota => None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LimitKind<'a> {
    /// A rate rule written on the route itself.
    RouteRate(&'a RateKey),
    /// A rate rule of the app or of one of its usage plans.
    AppRate,
    Quota,
}

/// The headers for `standings`, in the order their names first appear. `debug`: the request
/// asked for Huawei's debug headers (`X-Apig-Mode: debug`). Each dialect names its headers
/// (`Profile::limit_headers`).
pub fn limit_headers(
    dialect: Dialect,
    debug: bool,
    standings: &[Standing<'_>],
) -> Vec<(String, String)> {
    let write = dialect.profile().limit_headers;
    let mut out = LimitHeaders(Vec::new());
    for s in standings {
        write(s, debug, &mut out);
    }
    out.0.into_iter().map(|(n, _, v)| (n, v)).collect()
}

/// The headers collected so far: (name, remaining, value), one per name.
pub struct LimitHeaders(Vec<(String, u64, String)>);

impl LimitHeaders {
    /// Sets header `name` for a limit with `remaining` requests left, unless a limit with
    /// fewer left already holds it.
    pub fn put(&mut self, name: String, remaining: u64, value: String) {
        match self.0.iter_mut().find(|(n, _, _)| *n == name) {
            Some(held) if held.1 <= remaining => {}
            Some(held) => *held = (name, remaining, value),
            None => self.0.push((name, remaining, value)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const IP: RateKey = RateKey::Ip;

    fn rate(limit: u64, remaining: u64, period: &'static str) -> Standing<'static> {
        Standing {
            kind: LimitKind::RouteRate(&IP),
            limit,
            remaining,
            period,
            periods: 1,
        }
    }

    #[test]
    fn jdcloud_names_each_period_and_shows_the_tightest() {
        let h = limit_headers(
            Dialect::Jdcloud,
            false,
            &[
                rate(1000, 999, "minute"),
                rate(50, 3, "minute"),
                Standing {
                    kind: LimitKind::Quota,
                    limit: 10,
                    remaining: 9,
                    period: "day",
                    periods: 1,
                },
            ],
        );
        let h: Vec<(&str, &str)> = h.iter().map(|(a, b)| (a.as_str(), b.as_str())).collect();
        assert_eq!(
            h,
            [
                ("x-jdcloud-limit-minute", "50"),
                ("x-jdcloud-remaining-minute", "3"),
                ("x-jdcloud-limit-day", "10"),
                ("x-jdcloud-remaining-day", "9"),
            ]
        );
    }

    #[test]
    fn huawei_names_a_window_of_several_periods_by_its_count() {
        let ten_seconds = Standing {
            periods: 10,
            ..rate(5, 0, "second")
        };
        let h = limit_headers(Dialect::Huawei, true, &[ten_seconds]);
        assert_eq!(h[0].1, "remain:0,limit:5,time:10 second");
        assert_eq!(
            crate::dialect::huawei::over_ratelimit(&ten_seconds).as_deref(),
            Some("policy ip over ratelimit,limit:5,time:10 second")
        );
    }

    #[test]
    fn jdcloud_names_no_window_of_several_periods() {
        let ten_seconds = Standing {
            periods: 10,
            ..rate(5, 4, "second")
        };
        assert!(limit_headers(Dialect::Jdcloud, false, &[ten_seconds]).is_empty());
    }

    #[test]
    fn huawei_only_in_debug_mode() {
        assert!(limit_headers(Dialect::Huawei, false, &[rate(5, 4, "minute")]).is_empty());
        assert_eq!(
            limit_headers(Dialect::Huawei, true, &[rate(5, 4, "minute")]),
            [(
                "X-Apig-RateLimit-ip".to_string(),
                "remain:4,limit:5,time:1 minute".to_string()
            )]
        );
    }

    #[test]
    fn tencent_separates_route_and_usage_plan_limits() {
        let h = limit_headers(
            Dialect::Tencent,
            false,
            &[
                rate(100, 7, "second"),
                Standing {
                    kind: LimitKind::AppRate,
                    limit: 10,
                    remaining: 2,
                    period: "second",
                    periods: 1,
                },
                Standing {
                    kind: LimitKind::Quota,
                    limit: 50,
                    remaining: 0,
                    period: "day",
                    periods: 1,
                },
            ],
        );
        assert_eq!(
            h,
            [
                ("X-Api-RateLimit".to_string(), "7/100".to_string()),
                ("X-UsagePlan-RateLimit".to_string(), "2/10".to_string()),
                ("X-UsagePlan-Quota".to_string(), "0/50".to_string()),
            ]
        );
    }
}
