//! Step 9: the body limit (the route's `limits { body … }`, else its service's).

use super::{Cx, Phase, Verdict};
use crate::dialect::Reason;
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

/// Refuse a body over the limit: its length when read, else its declared Content-Length (a
/// streamed body is cut at the limit by the server).
pub fn run<'a, C: Cx<'a>>(limit: u64, cx: &mut C) -> Result<(), C::Stop> {
    let head = cx.head();
    let size = match head.body {
        Some(b) => Some(b.len() as u64),
        None => head
            .header(http::header::CONTENT_LENGTH)
            .and_then(|v| v.trim().parse::<u64>().ok()),
    };
    match size {
        Some(n) if n > limit => {
            let detail = format!("body is {n} bytes, limit {limit}");
            return Err(cx.fail(PHASE, detail, Reason::BodyTooLarge));
        }
        Some(n) => cx.step(PHASE, Verdict::Pass, format_args!("{n} ≤ {limit} bytes")),
        None => cx.step(
            PHASE,
            Verdict::Pass,
            format_args!("streamed; cut at {limit} bytes"),
        ),
    }
    Ok(())
}
