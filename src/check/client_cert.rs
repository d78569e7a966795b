//! Step 3: a service's `client certificate required`: the request came over TLS with a
//! certificate the gateway verified.

use super::Phase;

pub const PHASE: Phase = Phase::ClientCert;
pub const TEXT: &str = "verified client certificate";
/// A request without a verified certificate is refused.
pub const CAN_REFUSE: bool = true;
