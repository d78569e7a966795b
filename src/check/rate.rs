//! Step 10: a route's `rate N per PERIOD [per KEY] [burst B]`, counted in the request's batch
//! (see [`super::limits`]).

use super::{Answering, Batch, Build, Cx, Phase, RouteCheck, RouteFacts};
use crate::policy::ast::{self, RouteItem};
use crate::dialect::{LimitKind, Reason};
use crate::policy::diag::{self, Diagnostic};
use crate::vocab::RateRule;
use std::fmt;

#[derive(Debug)]
pub struct Rate {
    /// Boxed: a rate is the largest check, and every check of every route is as large as the
    /// largest (100k routes' programs carried it).
    pub rule: Box<RateRule>,
    pub batch: Batch,
}

impl fmt::Display for Rate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.rule.fmt(f)
    }
}

impl RouteCheck for Rate {
    const PHASE: Phase = Phase::Rate;

    /// Each `rate` statement; `per app` only on a route whose provider identifies apps.
    fn compile(r: &RouteFacts<'_>, b: &mut dyn Build) -> Vec<Self> {
        let rates = r.route.items.iter().filter_map(|i| match &i.value {
            RouteItem::Rate(rate) => Some((rate, i.span)),
            _ => None,
        });
        let mut out = Vec::new();
        for (n, (rate, span)) in rates.enumerate() {
            let per_app = matches!(rate.key.as_ref().map(|k| &k.value), Some(ast::RateKey::App));
            if per_app && !b.yields_app() {
                b.error(
                    Diagnostic::error(diag::CONFLICT, span, "`per app` needs an authenticated app")
                        .label("this route does not identify an app")
                        .help(format!(
                            "authenticate with a {} provider, or count `per ip`",
                            crate::auth::names(crate::auth::yields_app, "or")
                        )),
                );
                continue;
            }
            if let Some(rule) = b.rate_rule(rate, n) {
                out.push(Rate {
                    rule: Box::new(rule),
                    batch: Batch::Counted,
                });
            }
        }
        let bound = super::once(r.route, b, "throttle", |i| match i {
            RouteItem::Throttle(name) => Some(name),
            _ => None,
        });
        let throttled = b.throttle(bound).into_iter().map(|rule| Rate {
            rule: Box::new(rule),
            batch: Batch::Counted,
        });
        out.extend(throttled);
        out
    }

    fn can_refuse(&self, _: u64) -> bool {
        true
    }

    /// Its refusal at its own limit and at each exception's (Huawei's detail names the limit).
    fn answers(&self, _: &Answering<'_>) -> Vec<Reason> {
        let rule = &self.rule;
        let limits = std::iter::once(rule.limit).chain(rule.except.iter().map(|e| e.limit));
        limits.map(|limit| super::limits::refused_by(rule, LimitKind::RouteRate(&rule.key), limit)).collect()
    }

    fn run<'a, C: Cx<'a>>(&self, cx: &mut C) -> Result<(), C::Stop> {
        self.batch.run(cx)
    }
}
