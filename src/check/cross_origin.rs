//! Step 4, for a route without `cors` in a dialect whose gateway refuses cross-origin
//! requests then (Tencent): an `Origin` other than the request's own is refused.
//! A route with `cors` answers preflights and adds CORS headers instead (in `decide`).

use super::Phase;

pub const PHASE: Phase = Phase::Cors;
pub const TEXT: &str = "cross-origin requests refused (no cors)";
pub const CAN_REFUSE: bool = true;
