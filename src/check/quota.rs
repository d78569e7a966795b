//! Step 10: the authenticated app's and its usage plans' rates and quotas, counted in the
//! request's batch (see [`super::limits`]). Compiled for every route whose provider
//! identifies apps: which limits apply is known only once the app is.

use super::{Batch, Build, Cx, Phase, RouteCheck, RouteFacts};
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

    fn run<'a, C: Cx<'a>>(&self, cx: &mut C) -> Result<(), C::Stop> {
        self.batch.run(cx)
    }
}
