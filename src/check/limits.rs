//! Step 10: the route's rates, then the authenticated app's and its plans' rates and quotas.
//!
//! Every limit of a request is counted in one batch (a store moves no counter when one limit
//! refuses; a remote store is asked once), at the first limit check of the program. The
//! compiler marks that check with [`Batch::Counts`]: the pipeline need not search for it.

use super::{Cx, Phase};

pub const RATE: Phase = Phase::Rate;
pub const QUOTA: Phase = Phase::Quota;
pub const QUOTA_TEXT: &str = "the app's and its plans' rates and quotas";
pub const CAN_REFUSE: bool = true;

/// Where a limit check stands in the batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Batch {
    /// The program's first limit check: it counts the whole batch.
    Counts,
    /// Counted with the first.
    Counted,
}

/// The batch is counted at the check that [`Batch::Counts`]; the others pass silently.
pub fn run<'a, C: Cx<'a>>(batch: Batch, cx: &mut C) -> Result<(), C::Stop> {
    match batch {
        Batch::Counts => cx.count_limits(),
        Batch::Counted => Ok(()),
    }
}
