//! Step 9: the body limit (the route's `limits { body … }`, else its service's).

use super::Phase;
use std::fmt;

pub const PHASE: Phase = Phase::BodySize;

/// The service's limit is repeated in every route's program: a branch only when the route
/// sets its own.
pub fn can_refuse(limit: u64, service_limit: u64) -> bool {
    limit != service_limit
}

pub fn fmt(limit: u64, f: &mut fmt::Formatter<'_>) -> fmt::Result {
    write!(f, "body ≤ {limit} bytes")
}
