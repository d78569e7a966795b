//! Step 3: the protocols a route takes (a narrowing of its service's `protocols`).

use super::{Cx, Phase, Verdict};
use crate::dialect::Reason;
use crate::vocab::Protocol;
use std::fmt;

pub const PHASE: Phase = Phase::Protocol;

/// The protocols the route takes; compiled only when they are fewer than all.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Protocols(pub Vec<Protocol>);

impl Protocols {
    /// A list that takes both http and https refuses nothing.
    pub fn can_refuse(&self) -> bool {
        !(self.0.contains(&Protocol::Http) && self.0.contains(&Protocol::Https))
    }

    /// `HTTP,HTTPS`, for traces.
    pub fn names(&self) -> String {
        self.0
            .iter()
            .map(|p| p.upper())
            .collect::<Vec<_>>()
            .join(",")
    }
}

impl fmt::Display for Protocols {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let p: Vec<&str> = self.0.iter().map(|p| p.name()).collect();
        write!(f, "protocol in [{}]", p.join(", "))
    }
}

impl Protocols {
    /// Refuse a request over a protocol the route does not take.
    pub fn run<'a, C: Cx<'a>>(&self, cx: &mut C) -> Result<(), C::Stop> {
        let used = if cx.head().tls {
            Protocol::Https
        } else {
            Protocol::Http
        };
        if !self.0.contains(&used) {
            return Err(cx.fail(
                PHASE,
                format_args!(
                    "{} not allowed (route takes {})",
                    used.upper(),
                    self.names()
                ),
                Reason::ProtocolNotAllowed {
                    used,
                    allowed: self.0.clone(),
                },
            ));
        }
        cx.step(PHASE, Verdict::Pass, used.upper());
        Ok(())
    }
}
