//! Step 10's batch: the route's rates, then the authenticated app's and its plans' rates and
//! quotas, all counted at once (a store moves no counter when one limit refuses; a remote
//! store is asked once), at the first limit check of the program. The compiler marks that
//! check with [`Batch::Counts`]: the pipeline need not search for it. The checks are
//! [`super::rate`] and [`super::quota`].

use super::{Check, Cx};

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
            Batch::Counts => cx.count_limits(),
            Batch::Counted => Ok(()),
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
