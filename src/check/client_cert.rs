//! Step 3: a service's `client certificate required`: the request came over TLS with a
//! certificate the gateway verified.

use super::{Answering, Build, Cx, Phase, RouteCheck, RouteFacts, Verdict};
use crate::dialect::Reason;

const TEXT: &str = "verified client certificate";

/// Compiled when the service requires a client certificate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientCert;

impl std::fmt::Display for ClientCert {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(TEXT)
    }
}

impl RouteCheck for ClientCert {
    const PHASE: Phase = Phase::ClientCert;

    fn compile(r: &RouteFacts<'_>, b: &mut dyn Build) -> Vec<Self> {
        let _ = b;
        if r.client_cert_required {
            vec![ClientCert]
        } else {
            Vec::new()
        }
    }

    fn can_refuse(&self, _: u64) -> bool {
        true
    }

    fn answers(&self, _: &Answering<'_>) -> Vec<Reason> {
        vec![Reason::ClientCertificateRequired]
    }

    fn run<'a, C: Cx<'a>>(&self, cx: &mut C) -> Result<(), C::Stop> {
        let head = cx.head();
        if !head.client_cert {
            let detail = if head.tls {
                "no verified client certificate"
            } else {
                "a client certificate needs HTTPS"
            };
            return Err(cx.fail(Self::PHASE, detail, Reason::ClientCertificateRequired));
        }
        cx.step(Self::PHASE, Verdict::Pass, TEXT);
        Ok(())
    }
}
