//! Step 4, for a route without `cors` in a dialect whose gateway refuses cross-origin
//! requests then (Tencent): an `Origin` other than the request's own is refused.
//! A route with `cors` answers preflights and adds CORS headers instead (in `decide`).

use super::{Cx, Phase, Verdict};
use crate::dialect::Reason;

pub const PHASE: Phase = Phase::Cors;
pub const TEXT: &str = "cross-origin requests refused (no cors)";
pub const CAN_REFUSE: bool = true;

pub fn run<'a, C: Cx<'a>>(cx: &mut C) -> Result<(), C::Stop> {
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
                PHASE,
                detail,
                Reason::CrossOriginWithoutCors {
                    uri: head.path().to_string(),
                },
            ));
        }
    }
    cx.step(PHASE, Verdict::Pass, "same-origin or no Origin header");
    Ok(())
}
