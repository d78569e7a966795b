//! Step 10's batch: the route's rates, then the authenticated app's and its plans' rates and
//! quotas, all counted at once (a store moves no counter when one limit refuses; a remote
//! store is asked once), at the first limit check of the program. The compiler marks that
//! check with [`Batch::Counts`]: the pipeline need not search for it. The checks are
//! [`super::rate`] and [`super::quota`].

use super::{Check, Cx, Phase, Verdict};
use crate::auth::ServiceView;
use crate::dialect::{limit_headers, LimitKind, Reason, Standing};
use crate::limits::{calendar, Count, Limit, StoreError};
use crate::vocab::{QuotaPeriod, QuotaRule, RateKey, RateRule, StoreErrorPolicy};
use smallvec::SmallVec;
use std::fmt;

/// Where a limit check stands in the batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Batch {
    /// The program's first limit check: it counts the whole batch.
    Counts,
    /// Counted with the first.
    Counted,
}

impl Batch {
    /// Count the batch at the check that [`Batch::Counts`]; the others pass silently.
    pub fn run<'a, C: Cx<'a>>(self, cx: &mut C) -> Result<(), C::Stop> {
        match self {
            Batch::Counts => count(cx),
            Batch::Counted => Ok(()),
        }
    }
}

/// The route's rates, then the authenticated app's and its plans' rates, then their quotas,
/// counted as one batch: a store moves none of the counters when one limit refuses, and a
/// remote store is asked once for all of them.
fn count<'a, C: Cx<'a>>(cx: &mut C) -> Result<(), C::Stop> {
    let now = cx.now_ms();
    // gathered in place: the batch returned by value was copied out twice (some 600 bytes on
    // the stack each time, about 250 instructions a limited request)
    let mut b = Batched {
        group: cx.service().group.clone(),
        what: Few::new(),
        counts: Few::new(),
    };
    batch(cx, now, &mut b);
    let (what, counts) = (&b.what, &b.counts);
    if counts.is_empty() {
        return Ok(());
    }
    let tallies = match cx.limiter().count(counts, now) {
        Some(Ok(tallies)) => tallies,
        Some(Err(e)) => return store_failed(cx, what, counts, &e),
        None => {
            let detail = "counted in the shared store: ask it, then decide again";
            cx.step(Phase::Rate, Verdict::Done, detail);
            return Err(cx.need_counts(None));
        }
    };
    let dialect = cx.dialect();
    let debug = (dialect.profile().debug_requested)(cx.head().headers);
    let standings: SmallVec<[Standing<'_>; 4]> = what
        .iter()
        .zip(&tallies)
        .map(|(w, t)| w.standing(t.remaining))
        .collect();
    for (name, value) in limit_headers(dialect, debug, &standings) {
        cx.add_header(name, value);
    }
    for (w, t) in what.iter().zip(&tallies) {
        match (w.kind, t.allowed) {
            (LimitKind::Quota, true) => cx.step(
                Phase::Quota,
                Verdict::Pass,
                format_args!("{}: {} of {} left", w.label, t.remaining, w.limit),
            ),
            (LimitKind::Quota, false) => {
                let detail = format_args!("{} quota of {} used up", w.label, w.limit);
                return Err(cx.fail(Phase::Quota, detail, Reason::QuotaExceeded));
            }
            (_, true) => cx.step(
                Phase::Rate,
                Verdict::Pass,
                format_args!("{}: {} left", w.label, t.remaining),
            ),
            (_, false) => {
                let secs = t.retry_after_ms.div_ceil(1000).max(1);
                cx.add_header("Retry-After", secs.to_string());
                let detail = format_args!("{}: limit reached, retry after {secs}s", w.label);
                let hit = crate::dialect::huawei::over_ratelimit(&w.standing(0));
                // the same reason `refused_by` gives the route's error contract
                return Err(cx.fail(Phase::Rate, detail, Reason::RateLimited { hit }));
            }
        }
    }
    Ok(())
}

/// The batch, into `b`: what each count is (for the trace and the limit headers) and the
/// counts.
fn batch<'a, C: Cx<'a>>(cx: &mut C, now: i64, b: &mut Batched<'a>) {
    let head = cx.head();
    for check in cx.program() {
        let Check::Rate(super::rate::Rate { rule, .. }) = check else {
            continue;
        };
        // borrowed where the value is the policy's or the request's as it stands
        let value: std::borrow::Cow<'a, str> = match &rule.key {
            // no app, no per-app limit (a throttle bound where some routes identify none)
            RateKey::App => match cx.app() {
                Some(a) => cx.service().apps[a].key.as_str().into(),
                None => continue,
            },
            RateKey::Ip => cx.client_ip().to_string().into(),
            RateKey::Route => "".into(),
            RateKey::Header(h) => head.header(h).unwrap_or("").into(),
            // the first value, decoded; absent or undecodable counts as empty
            RateKey::Query(q) => head
                .query()
                .and_then(|query| crate::request::head::form_value(query, q))
                .flatten()
                .unwrap_or_default()
                .into(),
        };
        b.rate(rule, LimitKind::RouteRate(&rule.key), &value);
    }
    let has_quota = cx.program().iter().any(|c| matches!(c, Check::Quota(_)));
    if let Some(index) = cx.app().filter(|_| has_quota) {
        b.app(cx.service(), index, now);
    }
}

/// The batch as it is gathered.
struct Batched<'s> {
    group: std::sync::Arc<str>,
    what: Few<Limited<'s>>,
    counts: Few<Count>,
}

/// A request's limits, on the stack: a route has a few.
type Few<T> = SmallVec<[T; 4]>;

impl<'s> Batched<'s> {
    fn rate(&mut self, rule: &'s RateRule, kind: LimitKind<'s>, value: &str) {
        let limit = rule.limit_for(value);
        // `rate|<rule id>|<value>`, written out rather than formatted: on every limited request
        let value_key = key_value(value);
        let mut key = String::with_capacity(6 + rule.id.len() + value_key.len());
        for piece in ["rate|", &rule.id, "|", &value_key] {
            key.push_str(piece);
        }
        self.counts.push(Count {
            key,
            limit: Limit::Rate {
                limit,
                period_ms: rule.period.millis(),
                burst: rule.burst_for(limit),
            },
            fail_open: rule.on_store_error == StoreErrorPolicy::Allow,
            group: self.group.clone(),
        });
        self.what.push(Limited {
            label: Label::Rate(rule),
            kind,
            limit,
            period: rule.period.unit.name(),
            periods: rule.period.count,
        });
    }

    /// The app's and its plans' rates, then their quotas.
    fn app(&mut self, service: ServiceView<'s>, index: usize, now: i64) {
        let app = &service.apps[index];
        let plans = service.plans.iter().filter(|p| p.apps.contains(&index));
        for rule in app
            .rates
            .iter()
            .chain(plans.clone().flat_map(|p| p.rates.iter()))
        {
            self.rate(rule, LimitKind::AppRate, &app.key);
        }
        let quotas = app.quota.iter().map(|q| (q, Label::App(&app.name)));
        let plan_quotas = plans.filter_map(|p| p.quota.as_ref().map(|q| (q, Label::Plan(&p.name))));
        for (rule, owner) in quotas.chain(plan_quotas) {
            self.quota(service.name, rule, owner, &app.key, now);
        }
    }

    fn quota(&mut self, service: &str, rule: &QuotaRule, owner: Label<'s>, key: &str, now: i64) {
        let (start_ms, end_ms) = calendar::window(rule.period, &rule.zone, now);
        self.counts.push(Count {
            key: format!("quota|{service}/{owner}|{key}"),
            limit: Limit::Quota {
                limit: rule.limit,
                start_ms,
                end_ms,
            },
            fail_open: rule.on_store_error == StoreErrorPolicy::Allow,
            group: self.group.clone(),
        });
        self.what.push(Limited {
            label: owner,
            kind: LimitKind::Quota,
            limit: rule.limit,
            period: match rule.period {
                QuotaPeriod::Day => "day",
                QuotaPeriod::Month => "month",
            },
            periods: 1,
        });
    }
}

/// The refusal `rule` gives at `limit` (its own, or an exception's), as the batch gives it.
pub(crate) fn refused_by(rule: &RateRule, kind: LimitKind<'_>, limit: u64) -> Reason {
    let standing = Standing {
        kind,
        limit,
        remaining: 0,
        period: rule.period.unit.name(),
        periods: rule.period.count,
    };
    let hit = crate::dialect::huawei::over_ratelimit(&standing);
    Reason::RateLimited { hit }
}

/// A counted value as its counter's key holds it: a value longer than 64 bytes (a header or
/// query parameter is what the client sends, up to the URI and header limits) by its SHA-256,
/// so a hostile client cannot make each counter it creates kilobytes long.
fn key_value(value: &str) -> std::borrow::Cow<'_, str> {
    use sha2::{Digest, Sha256};
    if value.len() <= 64 {
        return value.into();
    }
    let digest = Sha256::digest(value.as_bytes());
    format!("sha256:{}", crate::vocab::hex::hex(&digest)).into()
}

/// The store could not count: each limit's `on store error` decides. One that denies refuses
/// the request with its own row (a rate's with `Retry-After: 1`); when all allow, the request
/// passes uncounted.
fn store_failed<'a, C: Cx<'a>>(
    cx: &mut C,
    what: &[Limited<'_>],
    counts: &[Count],
    e: &StoreError,
) -> Result<(), C::Stop> {
    let Some(w) = counts.iter().position(|c| !c.fail_open).map(|i| &what[i]) else {
        cx.step(
            Phase::Rate,
            Verdict::Pass,
            format_args!("not counted: {e}; every limit here allows on store error"),
        );
        return Ok(());
    };
    let detail = format_args!("{}: not counted: {e}; on store error deny", w.label);
    if w.kind == LimitKind::Quota {
        return Err(cx.fail(Phase::Quota, detail, Reason::QuotaExceeded));
    }
    cx.add_header("Retry-After", "1".to_string());
    Err(cx.fail(Phase::Rate, detail, Reason::RateLimited { hit: None }))
}

/// A limit as the trace names it: the rule as written (rates) or its owner (quotas).
#[derive(Clone, Copy)]
enum Label<'s> {
    Rate(&'s RateRule),
    App(&'s str),
    Plan(&'s str),
}

impl fmt::Display for Label<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Label::Rate(r) => write!(f, "{r}"),
            Label::App(name) => write!(f, "app:{name}"),
            Label::Plan(name) => write!(f, "plan:{name}"),
        }
    }
}

/// What one count of the batch is, for the trace and the limit headers.
struct Limited<'s> {
    label: Label<'s>,
    kind: LimitKind<'s>,
    limit: u64,
    period: &'static str,
    periods: u32,
}

impl<'s> Limited<'s> {
    fn standing(&self, remaining: u64) -> Standing<'s> {
        Standing {
            kind: self.kind,
            limit: self.limit,
            remaining,
            period: self.period,
            periods: self.periods,
        }
    }
}

/// Mark the program's first limit check as the one that counts the batch.
pub fn mark_batch(program: &mut [Check]) {
    let first = program.iter_mut().find_map(|c| match c {
        Check::Rate(r) => Some(&mut r.batch),
        Check::Quota(q) => Some(&mut q.batch),
        _ => None,
    });
    if let Some(batch) = first {
        *batch = Batch::Counts;
    }
}

#[cfg(test)]
mod tests {
    use super::key_value;

    #[test]
    fn a_short_value_is_its_own_key_and_a_long_one_its_digest() {
        assert_eq!(key_value("acme"), "acme");
        let long = "a".repeat(10_000);
        let key = key_value(&long);
        assert_eq!(key.len(), "sha256:".len() + 64);
        assert_ne!(key, key_value(&format!("{long}b")));
        assert_eq!(key, key_value(&long));
    }
}
