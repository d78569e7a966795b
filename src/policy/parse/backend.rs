//! Lowering of the statements that say how a backend's targets are chosen and how the
//! backend fails (issue 14): weighted targets, `balance`, `health`, `passive`, `breaker` and
//! `retries … budget`.
//!
//! Only what the text alone decides is checked here (values within their bounds, a statement's
//! options given once); what needs the rest of the policy (a downgrade backend that exists, a
//! breaker that says when to trip) is the compiler's.

use super::*;

/// The largest weight a target may have (weights are relative; this keeps sums in `u32`).
const MAX_WEIGHT: u64 = 10_000;

impl Lower {
    pub(super) fn targets(&mut self, p: &P<'_>) -> Vec<WeightedTarget> {
        let mut out = Vec::new();
        for t in children(p, Rule::target) {
            let url = self.string(child(&t, Rule::string).unwrap());
            self.url(&url);
            let weight = child(&t, Rule::int).and_then(|w| self.int(w, "weight", 0, MAX_WEIGHT));
            out.push(WeightedTarget { url, weight });
        }
        out
    }

    pub(super) fn retries(&mut self, p: &P<'_>) -> Option<BackendItem> {
        let count = self.int(child(p, Rule::int).unwrap(), "retries", 0, 10)?;
        let budget = match child(p, Rule::percentage) {
            None => None,
            Some(b) => {
                let n = child(&b, Rule::int).unwrap();
                Some(self.int(n, "retry budget", 1, 100)?)
            }
        };
        Some(BackendItem::Retries { count, budget })
    }

    pub(super) fn balance(&mut self, p: &P<'_>) -> Option<Spanned<Balance>> {
        let span = self.span(p);
        let mut idents = children(p, Rule::ident);
        let names: Vec<(&str, &str)> = Balance::NAMES.iter().map(|n| (*n, *n)).collect();
        let kind = self.choice(&idents.next().unwrap(), "balance strategy", &names)?;
        let key = idents.next();
        let header = has(p, Rule::kw_header);
        let query = has(p, Rule::kw_query);
        let balance = match kind.value {
            "round-robin" | "least-requests" if key.is_none() && !header && !query => {
                match kind.value {
                    "round-robin" => Balance::RoundRobin,
                    _ => Balance::LeastRequests,
                }
            }
            "hash" if header || query => {
                let name = self.string(child(p, Rule::string).unwrap());
                match header {
                    true => Balance::Hash(HashKey::Header(name)),
                    false => Balance::Hash(HashKey::Query(name)),
                }
            }
            "hash" if key.as_ref().is_some_and(|k| k.as_str() == "ip") => {
                Balance::Hash(HashKey::Ip)
            }
            _ => {
                self.err(
                    Diagnostic::error(
                        diag::MALFORMED,
                        span,
                        "a balance statement that does not parse",
                    )
                    .label("not a strategy rulegate knows")
                    .help(usage_text(BALANCE_USAGE)),
                );
                return None;
            }
        };
        Some(Spanned::new(balance, span))
    }

    pub(super) fn health(&mut self, p: &P<'_>) -> Option<HealthCheck> {
        let kinds = [("http", ())];
        self.choice(&child(p, Rule::ident).unwrap(), "health check kind", &kinds)?;
        let path = self.string(child(p, Rule::string).unwrap());
        if !path.value.starts_with('/') {
            self.err(
                Diagnostic::error(
                    diag::BAD_PATH,
                    path.span,
                    "a health check path starts with `/`",
                )
                .label("not a path")
                .help("write the path the backend answers health checks on, e.g. \"/healthz\""),
            );
            return None;
        }
        let mut h = HealthCheck {
            path,
            every: None,
            timeout: None,
            healthy: None,
            unhealthy: None,
            status: None,
        };
        for opt in children(p, Rule::health_opt) {
            let first = opt.clone().into_inner().next().unwrap();
            let value = opt.clone().into_inner().nth(1);
            match first.as_rule() {
                Rule::kw_every => h.every = self.positive_duration(value),
                Rule::kw_timeout => h.timeout = self.positive_duration(value),
                Rule::kw_healthy => h.healthy = self.int(value?, "healthy threshold", 1, 10),
                Rule::kw_unhealthy => h.unhealthy = self.int(value?, "unhealthy threshold", 1, 10),
                _ => h.status = self.status_range(value),
            }
        }
        Some(h)
    }

    pub(super) fn passive(&mut self, p: &P<'_>) -> PassiveCheck {
        let mut c = PassiveCheck {
            unhealthy: None,
            status: None,
            cooldown: None,
        };
        for opt in children(p, Rule::passive_opt) {
            let first = opt.clone().into_inner().next().unwrap();
            let value = opt.clone().into_inner().nth(1);
            match first.as_rule() {
                Rule::kw_unhealthy => {
                    c.unhealthy = value.and_then(|v| self.int(v, "unhealthy threshold", 1, 100))
                }
                Rule::kw_cooldown => c.cooldown = self.positive_duration(value),
                _ => c.status = self.status_range(value),
            }
        }
        c
    }

    pub(super) fn breaker(&mut self, p: P<'_>) -> BreakerBlock {
        let mut items = Vec::new();
        for c in p.into_inner() {
            let span = self.span(&c);
            let item = match c.as_rule() {
                Rule::trip_stmt => Some(BreakerItem::Trip(self.trip(&c))),
                Rule::count_stmt => self.count(&c),
                Rule::percent_stmt => self.percent(&c),
                Rule::open_stmt => self
                    .positive_duration(child(&c, Rule::quantity))
                    .map(BreakerItem::Open),
                Rule::probes_stmt => self
                    .int(child(&c, Rule::int).unwrap(), "probes", 1, 100)
                    .map(BreakerItem::Probes),
                Rule::downgrade_stmt => self.downgrade(&c).map(BreakerItem::Downgrade),
                Rule::bad_stmt => {
                    self.bad(c, Block::Breaker);
                    None
                }
                _ => None,
            };
            if let Some(item) = item {
                items.push(Spanned::new(item, span));
            }
        }
        BreakerBlock { items }
    }

    fn trip(&mut self, p: &P<'_>) -> Vec<Spanned<TripCondition>> {
        let mut out = Vec::new();
        for c in children(p, Rule::trip_condition) {
            let span = self.span(&c);
            let first = c.clone().into_inner().next().unwrap();
            let condition = match first.as_rule() {
                Rule::kw_timeouts => Some(TripCondition::Timeouts),
                Rule::kw_connect_errors => Some(TripCondition::ConnectErrors),
                Rule::kw_status => self
                    .status_range(child(&c, Rule::range))
                    .map(|r| TripCondition::Status(r.value)),
                _ => self
                    .positive_duration(child(&c, Rule::quantity))
                    .map(|d| TripCondition::SlowerThan(d.value)),
            };
            if let Some(condition) = condition {
                out.push(Spanned::new(condition, span));
            }
        }
        out
    }

    fn count(&mut self, p: &P<'_>) -> Option<BreakerItem> {
        let failures = self.int(child(p, Rule::int).unwrap(), "failures", 1, 1_000_000);
        let within = self.positive_duration(child(p, Rule::quantity));
        Some(BreakerItem::Count {
            failures: failures?,
            within: within?,
        })
    }

    fn percent(&mut self, p: &P<'_>) -> Option<BreakerItem> {
        let mut ints = children(p, Rule::int);
        let percent = self.int(ints.next().unwrap(), "percent", 1, 100);
        let min = self.int(ints.next().unwrap(), "minimum requests", 1, 1_000_000);
        let within = self.positive_duration(child(p, Rule::quantity));
        Some(BreakerItem::Percent {
            percent: percent?,
            min: min?,
            within: within?,
        })
    }

    fn downgrade(&mut self, p: &P<'_>) -> Option<Downgrade> {
        if let Some(m) = child(p, Rule::mock_stmt) {
            return self.mock(&m).map(Downgrade::Mock);
        }
        if let Some(b) = child(p, Rule::ident) {
            return Some(Downgrade::Backend(self.ident(b)));
        }
        Some(Downgrade::Unavailable)
    }

    /// A duration above zero (`every 0s` would probe without pause, `open 0s` never open).
    fn positive_duration(&mut self, p: Option<P<'_>>) -> Option<Spanned<Duration>> {
        let d = self.duration(p?)?;
        if d.value.millis == 0 {
            self.err(
                Diagnostic::error(diag::OUT_OF_RANGE, d.span, "a duration of zero")
                    .label("must be above zero"),
            );
            return None;
        }
        Some(d)
    }

    /// An HTTP status range within 100..599.
    fn status_range(&mut self, p: Option<P<'_>>) -> Option<Spanned<Range<u16>>> {
        let p = p?;
        let span = self.span(&p);
        let range = self.range(Some(p), "status", |s| {
            s.parse::<u16>().ok().filter(|n| (100..=599).contains(n))
        })??;
        Some(Spanned::new(range, span))
    }
}

pub(super) const BALANCE_USAGE: &str =
    "balance round-robin | least-requests | hash ip | hash header \"NAME\" | hash query \"NAME\"";
