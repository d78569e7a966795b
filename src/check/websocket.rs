//! Step 6: a `websocket` route's handshake must carry `Sec-WebSocket-Key` and
//! `Sec-WebSocket-Version`.

use super::Phase;

pub const PHASE: Phase = Phase::WebSocket;
pub const TEXT: &str = "websocket handshake headers";
pub const CAN_REFUSE: bool = true;
