//! Step 10: the authenticated app's and its usage plans' rates and quotas, counted in the
//! request's batch (see [`super::limits`]). Compiled for every route whose provider
//! identifies apps: which limits apply is known only once the app is.

use super::{Answering, Batch, Build, Cx, Phase, RouteCheck, RouteFacts};
use crate::dialect::{LimitKind, Reason};
use std::fmt;

#[derive(Debug)]
pub struct Quota {
    pub batch: Batch,
}

impl fmt::Display for Quota {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("the app's and its plans' rates and quotas")
    }
}

impl RouteCheck for Quota {
    const PHASE: Phase = Phase::Quota;

    fn compile(_: &RouteFacts<'_>, b: &mut dyn Build) -> Vec<Self> {
        match b.yields_app() {
            true => vec![Quota {
                batch: Batch::Counted,
            }],
            false => Vec::new(),
        }
    }

    fn can_refuse(&self, _: u64) -> bool {
        true
    }

    /// The app's own and its plans' rates, and their quotas: which apply depends on the app,
    /// so every one the service's apps and plans hold.
    fn answers(&self, on: &Answering<'_>) -> Vec<Reason> {
        let s = on.service;
        let rates = s.apps.iter().flat_map(|a| &a.rates);
        let rates = rates.chain(s.plans.iter().flat_map(|p| &p.rates));
        let mut out: Vec<Reason> = rates.map(|r| super::limits::refused_by(r, LimitKind::AppRate, r.limit)).collect();
        let quotas = s.apps.iter().any(|a| a.quota.is_some()) || s.plans.iter().any(|p| p.quota.is_some());
        if quotas {
            out.push(Reason::QuotaExceeded);
        }
        out
    }

    fn run<'a, C: Cx<'a>>(&self, cx: &mut C) -> Result<(), C::Stop> {
        self.batch.run(cx)
    }
}
