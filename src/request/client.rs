//! The client's address, as far as it can be known.
//!
//! When the TCP peer is one of the service's `trusted proxies`, the address list its proxies
//! wrote is walked from the right: a trusted proxy is passed over, the first address that is
//! not one is the client. The list is every `X-Forwarded-For` line in order, or else the
//! `for=` of every `Forwarded` (RFC 7239) element. Entries are read as real proxies write them:
//! `ip`, `ip:port`, `[v6]`, `[v6]:port`, quoted in `Forwarded`.
//!
//! An entry that does not parse (`unknown`, an obfuscated `_hidden`, garbage) was written by a
//! trusted proxy about a hop it would not or could not name: the walk stops there and the
//! client is [`Client::Unknown`] — never skipped, which would make a client-written entry
//! further left the client. The same holds when a request carries both headers (a trusted
//! proxy writes one of them; the other came from the client, and which is which cannot be
//! told). An unknown client is refused by every allow or deny list and every app's trusted
//! addresses (fail closed), shares one per-ip rate key, and is logged as `unknown`.

use ipnet::IpNet;
use std::fmt;
use std::net::IpAddr;

/// IPv4-mapped IPv6 addresses (`::ffff:10.0.0.1`) compare as the IPv4 address.
pub fn canonical_ip(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(ip),
        v4 => v4,
    }
}

/// The client address the checks use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Client {
    Known(IpAddr),
    /// A trusted proxy named the hop in a way that is not an address.
    Unknown,
}

impl Client {
    pub fn ip(self) -> Option<IpAddr> {
        match self {
            Client::Known(ip) => Some(ip),
            Client::Unknown => None,
        }
    }

    /// In any of `nets`; an unknown client is in none.
    pub fn in_any(self, nets: &[IpNet]) -> bool {
        self.ip()
            .map(canonical_ip)
            .is_some_and(|ip| nets.iter().any(|n| n.contains(&ip)))
    }
}

impl PartialEq<IpAddr> for Client {
    fn eq(&self, other: &IpAddr) -> bool {
        *self == Client::Known(*other)
    }
}

impl fmt::Display for Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Client::Known(ip) => ip.fmt(f),
            Client::Unknown => f.write_str("unknown"),
        }
    }
}

const X_FORWARDED_FOR: &str = "x-forwarded-for";
const FORWARDED: &str = "forwarded";

/// The client of a request from `peer`, given the service's trusted proxies. The list is
/// walked from its right end, lazily: only the entries up to the client are read, and
/// nothing is collected.
pub fn client(peer: IpAddr, headers: &http::HeaderMap, trusted: &[IpNet]) -> Client {
    let peer = canonical_ip(peer);
    let is_trusted = |ip: &IpAddr| trusted.iter().any(|n| n.contains(ip));
    if !is_trusted(&peer) {
        return Client::Known(peer);
    }
    let xff = headers.get_all(X_FORWARDED_FOR);
    let forwarded = headers.get_all(FORWARDED);
    let (lines, parse): (_, fn(&str) -> Option<IpAddr>) = match (
        xff.iter().next().is_some(),
        forwarded.iter().next().is_some(),
    ) {
        // one of them came from the client, and which cannot be told
        (true, true) => return Client::Unknown,
        (true, false) => (xff, parse_node),
        (false, true) => (forwarded, forwarded_for),
        (false, false) => return Client::Known(peer),
    };
    let mut client = Client::Known(peer);
    for entry in right_to_left(lines) {
        let Some(ip) = parse(entry) else {
            return Client::Unknown;
        };
        client = Client::Known(ip);
        if !is_trusted(&ip) {
            break;
        }
    }
    client
}

/// The comma-separated entries of every line of a header, right to left; a line that is not
/// visible ASCII is one entry that parses as nothing.
fn right_to_left<'a>(
    lines: http::header::GetAll<'a, http::HeaderValue>,
) -> impl Iterator<Item = &'a str> {
    lines
        .into_iter()
        .rev()
        .flat_map(|v| v.to_str().unwrap_or("\u{0}").rsplit(','))
}

/// The `for=` of one `Forwarded` element (`for=…;proto=…;by=…`), parsed.
fn forwarded_for(element: &str) -> Option<IpAddr> {
    let value = element.split(';').find_map(|pair| {
        let (k, v) = pair.split_once('=')?;
        k.trim().eq_ignore_ascii_case("for").then_some(v.trim())
    })?;
    let value = match value.strip_prefix('"') {
        Some(quoted) => quoted.strip_suffix('"')?,
        None => value,
    };
    parse_node(value)
}

/// One address as proxies write it: `ip`, `ip:port`, `[v6]`, `[v6]:port`.
pub fn parse_node(s: &str) -> Option<IpAddr> {
    let s = s.trim();
    if let Some(rest) = s.strip_prefix('[') {
        let (v6, after) = rest.split_once(']')?;
        if !after.is_empty() && !is_port(after.strip_prefix(':')?) {
            return None;
        }
        return v6
            .parse::<std::net::Ipv6Addr>()
            .ok()
            .map(|ip| canonical_ip(ip.into()));
    }
    if let Ok(ip) = s.parse::<IpAddr>() {
        return Some(canonical_ip(ip));
    }
    let (v4, port) = s.split_once(':')?;
    is_port(port)
        .then(|| v4.parse::<std::net::Ipv4Addr>().ok())
        .flatten()
        .map(IpAddr::V4)
}

fn is_port(s: &str) -> bool {
    !s.is_empty() && s.len() <= 5 && s.bytes().all(|b| b.is_ascii_digit())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn nodes_parse_as_proxies_write_them() {
        assert_eq!(parse_node(" 10.1.2.3 "), Some(ip("10.1.2.3")));
        assert_eq!(parse_node("203.0.113.9:5555"), Some(ip("203.0.113.9")));
        assert_eq!(parse_node("2001:db8::1"), Some(ip("2001:db8::1")));
        assert_eq!(parse_node("[2001:db8::1]"), Some(ip("2001:db8::1")));
        assert_eq!(parse_node("[2001:db8::1]:443"), Some(ip("2001:db8::1")));
        assert_eq!(parse_node("[::ffff:10.0.0.1]:1"), Some(ip("10.0.0.1")));
        for bad in [
            "unknown",
            "_hidden",
            "",
            "10.1.2.3:",
            "10.1.2.3:x",
            "[::1",
            "[::1]x",
            "[1.2.3.4]",
            "1.2.3.4:5:6",
            "[::1]:123456",
        ] {
            assert_eq!(parse_node(bad), None, "{bad:?}");
        }
    }

    fn headers(pairs: &[(&'static str, &'static str)]) -> http::HeaderMap {
        let mut h = http::HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, http::HeaderValue::from_static(v));
        }
        h
    }

    #[test]
    fn the_walk_stops_at_the_first_untrusted_or_unparseable_entry() {
        let trusted: Vec<IpNet> = vec!["127.0.0.0/8".parse().unwrap()];
        let peer = ip("127.0.0.1");
        let cases: [(&[(&'static str, &'static str)], Client); 9] = [
            (&[], Client::Known(peer)),
            (
                &[("x-forwarded-for", "10.1.2.3, 203.0.113.9:5555")],
                Client::Known(ip("203.0.113.9")),
            ),
            (&[("x-forwarded-for", "10.1.2.3, unknown")], Client::Unknown),
            (
                &[("x-forwarded-for", "10.1.2.3, [2001:db8::1]:80, 127.0.0.5")],
                Client::Known(ip("2001:db8::1")),
            ),
            (
                &[("x-forwarded-for", "10.1.2.3"), ("x-forwarded-for", "_x")],
                Client::Unknown,
            ),
            (
                &[("x-forwarded-for", "127.0.0.9, 127.0.0.8")],
                Client::Known(ip("127.0.0.9")),
            ),
            (
                &[(
                    "forwarded",
                    "for=10.1.2.3, for=\"[2001:db8::2]:4711\";proto=http",
                )],
                Client::Known(ip("2001:db8::2")),
            ),
            (
                &[("forwarded", "for=10.1.2.3, for=_hidden")],
                Client::Unknown,
            ),
            (
                &[
                    ("forwarded", "for=10.1.2.3"),
                    ("x-forwarded-for", "10.9.9.9"),
                ],
                Client::Unknown,
            ),
        ];
        for (h, want) in cases {
            assert_eq!(client(peer, &headers(h), &trusted), want, "{h:?}");
        }
        let from_outside = client(
            ip("192.0.2.1"),
            &headers(&[("x-forwarded-for", "10.1.2.3")]),
            &trusted,
        );
        assert_eq!(from_outside, Client::Known(ip("192.0.2.1")));
    }
}
