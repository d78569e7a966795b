//! Step 6: a `websocket` route's handshake must carry `Sec-WebSocket-Key` and
//! `Sec-WebSocket-Version`.

use super::{Answering, Build, Cx, Phase, RouteCheck, RouteFacts, Verdict};
use crate::dialect::Reason;
use crate::policy::ast::RouteItem;
use crate::policy::diag::{self, Diagnostic};
use crate::vocab::Method;

const TEXT: &str = "websocket handshake headers";

/// Compiled for a route with `websocket`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WebSocket;

impl std::fmt::Display for WebSocket {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(TEXT)
    }
}

impl RouteCheck for WebSocket {
    const PHASE: Phase = Phase::WebSocket;

    fn compile(r: &RouteFacts<'_>, b: &mut dyn Build) -> Vec<Self> {
        let pick: fn(&RouteItem) -> Option<&_> = |i| matches!(i, RouteItem::WebSocket).then_some(&());
        if super::once(r.route, b, "websocket", pick).is_none() {
            return Vec::new();
        }
        if r.methods.iter().any(|m| *m != Method::Get) {
            b.error(
                Diagnostic::error(
                    diag::CONFLICT,
                    r.route.methods[0].span,
                    "a websocket route takes GET only",
                )
                .label("the handshake is a GET request")
                .help("write `route GET \"/path\" { websocket … }`"),
            );
        }
        vec![WebSocket]
    }

    fn can_refuse(&self, _: u64) -> bool {
        true
    }

    fn answers(&self, _: &Answering<'_>) -> Vec<Reason> {
        vec![Reason::WebSocketKeyMissing, Reason::WebSocketVersionMissing]
    }

    fn run<'a, C: Cx<'a>>(&self, cx: &mut C) -> Result<(), C::Stop> {
        let head = cx.head();
        if head.header(http::header::SEC_WEBSOCKET_KEY).is_none() {
            let reason = Reason::WebSocketKeyMissing;
            return Err(cx.fail(Self::PHASE, "no Sec-WebSocket-Key header", reason));
        }
        if head.header(http::header::SEC_WEBSOCKET_VERSION).is_none() {
            let reason = Reason::WebSocketVersionMissing;
            return Err(cx.fail(Self::PHASE, "no Sec-WebSocket-Version header", reason));
        }
        cx.step(Self::PHASE, Verdict::Pass, "handshake headers present");
        Ok(())
    }
}
