//! Calendar windows for quotas: a day or a month in a time zone (UTC unless the quota names
//! one), so "50 per day" resets at local midnight as the vendors' consoles describe it.

pub use crate::vocab::limits::zone;
use crate::vocab::limits::QuotaPeriod;
use jiff::tz::TimeZone;
use jiff::{Timestamp, ToSpan};

/// `[start, end)` in milliseconds since the epoch of the day or month that `now_ms` falls in.
pub fn window(period: QuotaPeriod, tz: &TimeZone, now_ms: i64) -> (i64, i64) {
    let now = Timestamp::from_millisecond(now_ms).unwrap_or(Timestamp::UNIX_EPOCH);
    let date = now.to_zoned(tz.clone()).date();
    let (start, next) = match period {
        QuotaPeriod::Day => (date, date.checked_add(1.day())),
        QuotaPeriod::Month => {
            let first = date.first_of_month();
            (first, first.checked_add(1.month()))
        }
    };
    // A day can start at 01:00 (a DST gap at midnight): `to_zoned` resolves that compatibly.
    let at = |d: jiff::civil::Date| {
        d.to_zoned(tz.clone())
            .map(|z| z.timestamp().as_millisecond())
    };
    let start = at(start).unwrap_or(now_ms);
    let end = next.ok().and_then(|d| at(d).ok()).unwrap_or(i64::MAX);
    (start, end)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(s: &str) -> i64 {
        s.parse::<Timestamp>().unwrap().as_millisecond()
    }

    #[test]
    fn a_utc_day_runs_from_midnight_to_midnight() {
        let (s, e) = window(QuotaPeriod::Day, &TimeZone::UTC, ms("2026-03-05T13:00:00Z"));
        assert_eq!(
            (s, e),
            (ms("2026-03-05T00:00:00Z"), ms("2026-03-06T00:00:00Z"))
        );
    }

    #[test]
    fn a_shanghai_day_starts_at_16_00_utc() {
        let tz = zone("Asia/Shanghai").unwrap();
        let (s, e) = window(QuotaPeriod::Day, &tz, ms("2026-03-05T17:00:00Z"));
        assert_eq!(
            (s, e),
            (ms("2026-03-05T16:00:00Z"), ms("2026-03-06T16:00:00Z"))
        );
        let (s, _) = window(QuotaPeriod::Day, &tz, ms("2026-03-05T15:59:59.999Z"));
        assert_eq!(s, ms("2026-03-04T16:00:00Z"));
    }

    #[test]
    fn a_month_in_a_fixed_offset() {
        let tz = zone("+08:00").unwrap();
        let (s, e) = window(QuotaPeriod::Month, &tz, ms("2026-02-28T20:00:00Z"));
        assert_eq!(
            (s, e),
            (ms("2026-02-28T16:00:00Z"), ms("2026-03-31T16:00:00Z"))
        );
    }

    #[test]
    fn a_day_across_a_dst_change_is_23_hours() {
        let tz = zone("Europe/Berlin").unwrap();
        let (s, e) = window(QuotaPeriod::Day, &tz, ms("2026-03-29T12:00:00Z"));
        assert_eq!(e - s, 23 * 3_600_000);
    }

    #[test]
    fn unknown_zones_are_refused() {
        assert!(zone("Mars/Olympus").is_err());
        assert!(zone("+25:00").is_err());
    }
}
