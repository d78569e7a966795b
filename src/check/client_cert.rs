//! Step 3: a service's `client certificate required`: the request came over TLS with a
//! certificate the gateway verified.

use super::{Cx, Phase, Verdict};
use crate::dialect::Reason;

pub const PHASE: Phase = Phase::ClientCert;
pub const TEXT: &str = "verified client certificate";
/// A request without a verified certificate is refused.
pub const CAN_REFUSE: bool = true;

pub fn run<'a, C: Cx<'a>>(cx: &mut C) -> Result<(), C::Stop> {
    let head = cx.head();
    if !head.client_cert {
        let detail = if head.tls {
            "no verified client certificate"
        } else {
            "a client certificate needs HTTPS"
        };
        return Err(cx.fail(PHASE, detail, Reason::ClientCertificateRequired));
    }
    cx.step(PHASE, Verdict::Pass, TEXT);
    Ok(())
}
