//! Step 6: a `websocket` route's handshake must carry `Sec-WebSocket-Key` and
//! `Sec-WebSocket-Version`.

use super::{Cx, Phase, Verdict};
use crate::dialect::Reason;

pub const PHASE: Phase = Phase::WebSocket;
pub const TEXT: &str = "websocket handshake headers";
pub const CAN_REFUSE: bool = true;

pub fn run<'a, C: Cx<'a>>(cx: &mut C) -> Result<(), C::Stop> {
    let head = cx.head();
    if head.header(http::header::SEC_WEBSOCKET_KEY).is_none() {
        let reason = Reason::WebSocketKeyMissing;
        return Err(cx.fail(PHASE, "no Sec-WebSocket-Key header", reason));
    }
    if head.header(http::header::SEC_WEBSOCKET_VERSION).is_none() {
        let reason = Reason::WebSocketVersionMissing;
        return Err(cx.fail(PHASE, "no Sec-WebSocket-Version header", reason));
    }
    cx.step(PHASE, Verdict::Pass, "handshake headers present");
    Ok(())
}
