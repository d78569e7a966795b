//! Step 9: the body limit (the route's `limits { body … }`, else its service's).

use super::{Answering, Build, Cx, Phase, RouteCheck, RouteFacts, Verdict};
use crate::dialect::Reason;
use std::fmt;

/// The limit in bytes; every route has one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BodySize(pub u64);

impl fmt::Display for BodySize {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "body ≤ {} bytes", self.0)
    }
}

impl RouteCheck for BodySize {
    const PHASE: Phase = Phase::BodySize;

    fn compile(r: &RouteFacts<'_>, _: &mut dyn Build) -> Vec<Self> {
        vec![BodySize(r.body_limit)]
    }

    /// The service's limit is repeated in every route's program: a branch only when the
    /// route sets its own.
    fn can_refuse(&self, service_body: u64) -> bool {
        self.0 != service_body
    }

    /// Refuse a body over the limit: its length when read, else its declared Content-Length
    /// (a streamed body is cut at the limit by the server).
    fn answers(&self, _: &Answering<'_>) -> Vec<Reason> {
        vec![Reason::BodyTooLarge]
    }

    fn run<'a, C: Cx<'a>>(&self, cx: &mut C) -> Result<(), C::Stop> {
        let (limit, head) = (self.0, cx.head());
        let size = match head.body {
            Some(b) => Some(b.len() as u64),
            None => head
                .header(http::header::CONTENT_LENGTH)
                .and_then(|v| v.trim().parse::<u64>().ok()),
        };
        match size {
            Some(n) if n > limit => {
                let detail = format!("body is {n} bytes, limit {limit}");
                return Err(cx.fail(Self::PHASE, detail, Reason::BodyTooLarge));
            }
            Some(n) => cx.step(Self::PHASE, Verdict::Pass, format_args!("{n} ≤ {limit} bytes")),
            None => cx.step(
                Self::PHASE,
                Verdict::Pass,
                format_args!("streamed; cut at {limit} bytes"),
            ),
        }
        Ok(())
    }
}
