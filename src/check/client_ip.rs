//! Step 5: the service's and the route's `allow ips` / `deny ips`, against the client address
//! (the peer, or what a trusted proxy says).

use super::{Answering, Build, Cx, Phase, RouteCheck, RouteFacts, Verdict};
use crate::policy::ast::RouteItem;
use crate::dialect::Reason;
use crate::request::canonical_ip;
use ipnet::IpNet;
use std::fmt;
use std::net::IpAddr;

/// Allow and deny lists; deny wins, and a non-empty allow list admits only its members.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IpRules {
    pub allow: Vec<IpNet>,
    pub deny: Vec<IpNet>,
}

impl IpRules {
    pub fn is_empty(&self) -> bool {
        self.allow.is_empty() && self.deny.is_empty()
    }

    pub fn admits(&self, ip: IpAddr) -> bool {
        let ip = canonical_ip(ip);
        !self.deny.iter().any(|n| n.contains(&ip))
            && (self.allow.is_empty() || self.allow.iter().any(|n| n.contains(&ip)))
    }
}

impl fmt::Display for IpRules {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let list = |v: &[IpNet]| {
            v.iter()
                .map(|n| n.to_string())
                .collect::<Vec<_>>()
                .join(" ")
        };
        match (self.allow.is_empty(), self.deny.is_empty()) {
            (false, false) => write!(
                f,
                "allow [{}] deny [{}]",
                list(&self.allow),
                list(&self.deny)
            ),
            (false, true) => write!(f, "allow [{}]", list(&self.allow)),
            (true, _) => write!(f, "deny [{}]", list(&self.deny)),
        }
    }
}

/// The check: one set of rules (the service's or the route's).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientIp(pub std::sync::Arc<IpRules>);

impl fmt::Display for ClientIp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "client ip {}", self.0)
    }
}

impl RouteCheck for ClientIp {
    const PHASE: Phase = Phase::ClientIp;

    /// The service's rules, then the route's `allow ips` / `deny ips`: each when not empty.
    fn compile(r: &RouteFacts<'_>, _: &mut dyn Build) -> Vec<Self> {
        let mut route = IpRules::default();
        for item in &r.route.items {
            match &item.value {
                RouteItem::AllowIps(a) => route.allow.extend(a.iter().map(|n| n.value)),
                RouteItem::DenyIps(d) => route.deny.extend(d.iter().map(|n| n.value)),
                _ => {}
            }
        }
        [r.service_ips.clone(), std::sync::Arc::new(route)]
            .into_iter()
            .filter(|rules| !rules.is_empty())
            .map(ClientIp)
            .collect()
    }

    fn can_refuse(&self, _: u64) -> bool {
        true
    }

    fn answers(&self, _: &Answering<'_>) -> Vec<Reason> {
        vec![Reason::ClientIpDenied, Reason::ClientIpUnknown]
    }

    fn run<'a, C: Cx<'a>>(&self, cx: &mut C) -> Result<(), C::Stop> {
        let ip = cx.client_ip();
        // an address a trusted proxy did not name is on no allow list and, as it could be any
        // address, on every deny list: refused, with the vendors' unknown-address row
        let rules = &self.0;
        let Some(address) = ip.ip() else {
            let detail = format!("the client's address is unknown; {rules} cannot admit it");
            return Err(cx.fail(Self::PHASE, detail, Reason::ClientIpUnknown));
        };
        if !rules.admits(address) {
            let detail = format!("{ip} refused by {rules}");
            return Err(cx.fail(Self::PHASE, detail, Reason::ClientIpDenied));
        }
        cx.step(
            Self::PHASE,
            Verdict::Pass,
            format_args!("{ip} admitted by {rules}"),
        );
        Ok(())
    }
}
