//! Step 3: the protocols a route takes (a narrowing of its service's `protocols`).

use super::{once, Answering, Build, Cx, Phase, RouteCheck, RouteFacts, Verdict};
use crate::policy::ast::RouteItem;
use crate::policy::diag::{self, Diagnostic};
use crate::dialect::Reason;
use crate::vocab::Protocol;
use std::fmt;


/// The protocols the route takes; compiled only when they are fewer than all.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Protocols(pub Vec<Protocol>);

impl Protocols {

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

impl RouteCheck for Protocols {
    const PHASE: Phase = Phase::Protocol;

    /// The route's `protocols` (a narrowing of the service's), or the service's; compiled
    /// only when fewer than all.
    fn compile(r: &RouteFacts<'_>, b: &mut dyn Build) -> Vec<Self> {
        let pick: fn(&RouteItem) -> Option<&_> = |i| match i {
            RouteItem::Protocols(p) => Some(p),
            _ => None,
        };
        let list = match once(r.route, b, "protocols", pick) {
            None => r.protocols.to_vec(),
            Some(list) => {
                let mut out = Vec::new();
                for p in list {
                    if !r.protocols.contains(&p.value) {
                        b.error(
                            Diagnostic::error(
                                diag::CONFLICT,
                                p.span,
                                format!("the service does not accept {}", p.value),
                            )
                            .label("not among the service's protocols")
                            .help("a route can narrow the service's protocols, not widen them"),
                        );
                    } else if !out.contains(&p.value) {
                        out.push(p.value);
                    }
                }
                out
            }
        };
        if list.len() < Protocol::ALL.len() {
            vec![Protocols(list)]
        } else {
            Vec::new()
        }
    }

    /// A list that takes both http and https refuses nothing.
    fn can_refuse(&self, _: u64) -> bool {
        !(self.0.contains(&Protocol::Http) && self.0.contains(&Protocol::Https))
    }

    /// Refuse a request over a protocol the route does not take.
    fn answers(&self, _: &Answering<'_>) -> Vec<Reason> {
        let refused = Protocol::ALL.into_iter().filter(|p| !self.0.contains(p));
        refused
            .map(|used| Reason::ProtocolNotAllowed {
                used,
                allowed: self.0.clone(),
            })
            .collect()
    }

    fn run<'a, C: Cx<'a>>(&self, cx: &mut C) -> Result<(), C::Stop> {
        let used = if cx.head().tls {
            Protocol::Https
        } else {
            Protocol::Http
        };
        if !self.0.contains(&used) {
            return Err(cx.fail(
                Self::PHASE,
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
        cx.step(Self::PHASE, Verdict::Pass, used.upper());
        Ok(())
    }
}
