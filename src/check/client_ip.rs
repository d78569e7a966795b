//! Step 5: the service's and the route's `allow ips` / `deny ips`, against the client address
//! (the peer, or what a trusted proxy says).

use super::{Cx, Phase, Verdict};
use crate::dialect::Reason;
use crate::request::canonical_ip;
use ipnet::IpNet;
use std::fmt;
use std::net::IpAddr;

pub const PHASE: Phase = Phase::ClientIp;
/// Compiled only when a list is not empty.
pub const CAN_REFUSE: bool = true;

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

impl IpRules {
    pub fn run<'a, C: Cx<'a>>(&self, cx: &mut C) -> Result<(), C::Stop> {
        let ip = cx.client_ip();
        // an address a trusted proxy did not name is on no allow list and, as it could be any
        // address, on every deny list
        if !ip.ip().is_some_and(|a| self.admits(a)) {
            let detail = format!("{ip} refused by {self}");
            return Err(cx.fail(PHASE, detail, Reason::ClientIpDenied));
        }
        cx.step(
            PHASE,
            Verdict::Pass,
            format_args!("{ip} admitted by {self}"),
        );
        Ok(())
    }
}
