//! Step 4, for a route without `cors` in a dialect whose gateway refuses cross-origin
//! requests then (Tencent): an `Origin` other than the request's own is refused.
//! A route with `cors` answers preflights and adds CORS headers instead (in `decide`).

use super::{Answering, Build, Cx, Phase, RouteCheck, RouteFacts, Verdict};
use crate::dialect::Reason;

const TEXT: &str = "cross-origin requests refused (no cors)";

/// Compiled for a route without `cors` when the dialect refuses cross-origin requests then.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CrossOrigin;

impl std::fmt::Display for CrossOrigin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(TEXT)
    }
}

impl RouteCheck for CrossOrigin {
    const PHASE: Phase = Phase::Cors;

    fn compile(r: &RouteFacts<'_>, b: &mut dyn Build) -> Vec<Self> {
        let _ = b;
        if !r.has_cors && r.dialect.semantics().cross_origin_needs_cors {
            vec![CrossOrigin]
        } else {
            Vec::new()
        }
    }

    fn can_refuse(&self, _: u64) -> bool {
        true
    }

    fn answers(&self, on: &Answering<'_>) -> Vec<Reason> {
        vec![Reason::CrossOriginWithoutCors {
            uri: on.path.to_string(),
        }]
    }

    fn run<'a, C: Cx<'a>>(&self, cx: &mut C) -> Result<(), C::Stop> {
        let head = cx.head();
        if let Some(origin) = head.header(http::header::ORIGIN) {
            let own = format!(
                "{}://{}",
                if head.tls { "https" } else { "http" },
                head.host.unwrap_or("")
            );
            if !origin.eq_ignore_ascii_case(&own) {
                let detail = format!("cross-origin request from {origin} and the route has no cors");
                return Err(cx.fail(
                    Self::PHASE,
                    detail,
                    Reason::CrossOriginWithoutCors {
                        uri: head.path().to_string(),
                    },
                ));
            }
        }
        cx.step(Self::PHASE, Verdict::Pass, "same-origin or no Origin header");
        Ok(())
    }
}
