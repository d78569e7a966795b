//! What a backend is sent: the request's head, written from the client's request and the
//! decision — its target in origin form, the client's headers less those of its connection
//! and those the gateway writes anew, then the gateway's own (`Host`, `X-Forwarded-*`, the
//! request id, the hop count, the trace context) — and, for a backend that asks for one, its
//! signature.
//!
//! One writer, two sinks ([`Sink`]): the forward writes the head's bytes straight from the
//! client's headers ([`Head`]), with no header map in between (building that map and then
//! writing it out cost a tenth of a forward's instructions); `explain`, `rulegate test`, the
//! fuzz target and a signed forward (the signer reads the headers it signs) fill an
//! `http::HeaderMap` through the same writer. Both sinks see the same calls in the same order,
//! so what `explain` shows are the headers a backend receives (a property test holds the two
//! to it): the map keeps a name's values together where the head keeps the client's order,
//! and the body's framing (`Content-Length`, `chunked`) is written by the exchange
//! (`h1.rs`), after the headers.

use super::h1::Head;
use crate::compile::{Backend, HttpTarget};
use crate::decide::{Decision, ForwardPlan};
use crate::dialect::Reason;
use crate::request::trace::{tracestate, TRACEPARENT, TRACESTATE};
use http::header::{self, HeaderName, HeaderValue};
use std::net::IpAddr;

use super::proxy::{add_connection_listed, Names, HOP_BY_HOP, MAX_HOPS};

const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
const X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
const X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");
pub(super) const HOPS_HEADER: HeaderName = HeaderName::from_static("x-rulegate-hops");

/// Where the writer puts a backend request's headers, in order; every name is put once per
/// value and never replaced (the writer leaves out of the client's what it writes itself).
pub trait Sink {
    /// A header whose value is a checked `HeaderValue` already: the client's, the policy's.
    fn header(&mut self, name: &HeaderName, value: &HeaderValue);
    /// A value made here from pieces (a chain, an id): put only when it is a valid field
    /// value, as `HeaderValue::from_bytes` takes one; left out otherwise.
    fn made(&mut self, name: &HeaderName, value: &[u8]);
}

impl Sink for http::HeaderMap {
    fn header(&mut self, name: &HeaderName, value: &HeaderValue) {
        self.append(name.clone(), value.clone());
    }

    fn made(&mut self, name: &HeaderName, value: &[u8]) {
        if let Ok(value) = HeaderValue::from_bytes(value) {
            self.append(name.clone(), value);
        }
    }
}

impl Sink for Head {
    fn header(&mut self, name: &HeaderName, value: &HeaderValue) {
        Head::header(self, name, value);
    }

    fn made(&mut self, name: &HeaderName, value: &[u8]) {
        Head::made(self, name, value);
    }
}

/// The head of the request the backend of `plan` is sent at `target`. A signed backend's
/// headers are gathered in a map first: the signer reads them, then adds its own.
#[allow(clippy::too_many_arguments)]
pub(super) fn upstream_request(
    d: &Decision,
    parts: &http::request::Parts,
    tls: bool,
    target: &HttpTarget,
    plan: &ForwardPlan,
    backend: &Backend,
    hops: u32,
) -> Result<Head, Reason> {
    let uri = upstream_uri(&target.base, &plan.target, &parts.uri)?;
    let path = uri.path_and_query().map_or("/", |pq| pq.as_str());
    let forwarding = Forwarding {
        d,
        client: &parts.headers,
        tls,
        authority: target.host_value.as_ref(),
        original_host: super::handler::request_host(parts).unwrap_or_default(),
        hops,
    };
    if backend.signer.is_some() && plan.stamp.is_some() {
        let mut headers = forwarding.headers();
        sign(plan, backend, parts.method.as_str(), &mut headers)?;
        return Ok(Head::with(&parts.method, path, &headers));
    }
    // the client's lines and about 250 bytes of the gateway's own
    let mut head = Head::new(&parts.method, path, super::h1::room(&parts.headers) + 256);
    forwarding.write(&mut head);
    Ok(head)
}

/// The backend request's URI in origin form (the connection is already to the target; `Host`
/// names it): the target's path prefix, then the plan's path and query. When that is what the
/// client sent (no prefix, no rewrite, no parameter hidden), the client's parsed path and query
/// are shared (a reference count) rather than written out and parsed again; otherwise the
/// bytes are written once into the buffer the URI keeps, and parsed as before.
fn upstream_uri(base: &str, target: &str, client: &http::Uri) -> Result<http::Uri, Reason> {
    if base.is_empty() {
        if let Some(pq) = client.path_and_query().filter(|pq| pq.as_str() == target) {
            let uri = http::Uri::from(pq.clone());
            // an absolute-form target without a path (`http://host`) reads as `/` but holds
            // nothing: written out, that is not the `/` the backend is sent below
            if !uri.path().is_empty() {
                return Ok(uri);
            }
        }
    }
    let mut uri = Vec::with_capacity(base.len() + target.len());
    uri.extend_from_slice(base.as_bytes());
    uri.extend_from_slice(target.as_bytes());
    http::Uri::from_maybe_shared(bytes::Bytes::from(uri)).map_err(|_| Reason::Internal)
}

/// Sign the backend request as its backend asks, over the headers it is sent with (see
/// [`crate::upstream::sign`]); a signature that cannot be written refuses the request.
pub fn sign(
    plan: &ForwardPlan,
    backend: &Backend,
    method: &str,
    headers: &mut http::HeaderMap,
) -> Result<(), Reason> {
    let (Some(signer), Some(stamp)) = (&backend.signer, &plan.stamp) else {
        return Ok(());
    };
    let mapped = plan.shaped.iter().flat_map(|s| s.headers.iter());
    let mapped = mapped.map(|(name, _)| name.as_str());
    signer
        .sign(stamp, method, &plan.target, headers, mapped)
        .map_err(|why| {
            tracing::error!(backend = %backend.name, "backend signature calculation failed: {}", why.0);
            Reason::BackendSigningFailed
        })
}

/// The request a forward's backend receives at its chosen target, as `serve` builds it
/// (`explain` and `rulegate test` show it): its headers, or the refusal signing gives.
pub fn planned_upstream(
    snap: &crate::compile::Snapshot,
    head: &crate::request::RequestHead<'_>,
    d: &Decision,
) -> Option<Result<http::HeaderMap, Reason>> {
    let crate::decide::Outcome::Forward(plan) = &d.outcome else {
        return None;
    };
    let backend = &snap.services[d.service?].backends[plan.backend];
    let http = backend.targets.get(plan.pick.target)?.http.as_ref()?;
    let forwarding = Forwarding {
        d,
        client: head.headers,
        tls: head.tls,
        authority: http.host_value.as_ref(),
        original_host: head.host.unwrap_or(""),
        hops: 0,
    };
    let mut headers = forwarding.headers();
    Some(sign(plan, backend, head.method, &mut headers).map(|_| headers))
}

/// What a backend request's headers are made from.
pub struct Forwarding<'a> {
    pub d: &'a Decision,
    /// The client's headers.
    pub client: &'a http::HeaderMap,
    /// The client came over TLS.
    pub tls: bool,
    /// The target's `Host` value ([`HttpTarget::host_value`]: none is written without one).
    pub authority: Option<&'a HeaderValue>,
    /// The host the client asked for: its `Host`, the authority of an HTTP/2 or absolute-form
    /// request, or none (empty).
    pub original_host: &'a str,
    /// The rulegate hops the request had made before this one.
    pub hops: u32,
}

impl Forwarding<'_> {
    /// The headers as a map: what `explain` and `rulegate test` show, and what a signer reads.
    /// Public so that the fuzz target can check what a forward would send without a socket.
    pub fn headers(&self) -> http::HeaderMap {
        let mut headers = http::HeaderMap::with_capacity(self.client.len() + 8);
        self.write(&mut headers);
        headers
    }

    /// The header lines a forward writes (without a signature): the fuzz target holds them to
    /// [`Forwarding::headers`].
    pub fn head_lines(&self) -> Vec<u8> {
        let mut head = Head::new(&http::Method::GET, "/", 0);
        self.write(&mut head);
        let request_line = b"GET / HTTP/1.1\r\n".len();
        head.as_bytes()[request_line..].to_vec()
    }

    /// The headers a backend receives, put into `out`: the client's, minus hop-by-hop headers,
    /// the forwarding headers (written anew), the request-id header (the gateway's id) and
    /// every `X-Authorizer-*` header (only an authorizer's answer sets those); then the route's
    /// backend parameters, the authorizer's context, `Connection: upgrade` and
    /// `Upgrade: websocket` for a websocket route's handshake, `Host` (the target's authority),
    /// `X-Forwarded-*`, `Forwarded` (when the client sent one), the id, the hop count and the
    /// trace context (`traceparent` with the gateway's span as parent; the client's
    /// `tracestate` when its trace is continued: see [`crate::request::trace`]).
    pub fn write(&self, out: &mut impl Sink) {
        let d = self.d;
        let sent = self.write_clients(out);
        // the route's backend parameters (their names are never ones the gateway writes below)
        let shaped = shaped(d);
        for (name, value) in shaped.iter().flat_map(|s| s.headers.iter()) {
            out.header(name, value);
        }
        for (key, value) in d.authorizer_context.iter().flatten() {
            let name = format!("{}{key}", crate::auth::authorizer::CONTEXT_PREFIX);
            if let Ok(name) = HeaderName::from_bytes(name.as_bytes()) {
                out.made(&name, value.as_bytes());
            }
        }
        if tunnel(d) {
            out.header(&header::CONNECTION, &HeaderValue::from_static("upgrade"));
            out.header(&header::UPGRADE, &HeaderValue::from_static("websocket"));
        }
        if let Some(authority) = self.authority {
            out.header(&header::HOST, authority);
        }
        self.write_forwarding(out, sent);
        out.made(request_id_name(d), d.request_id.as_str().as_bytes());
        out.header(&HOPS_HEADER, &hops_value(self.hops + 1));
        // the gateway's span as the backend's parent; the client's state only with its trace
        let trace = &d.trace_context;
        out.made(&TRACEPARENT, &trace.traceparent_bytes());
        if let Some(state) = trace.continued().then(|| tracestate(self.client)).flatten() {
            out.header(&TRACESTATE, &state);
        }
    }

    /// The client's headers that pass: copied one by one, never cloned and pruned. Returns
    /// which forwarding chains the client sent (seen on the way: most requests carry none,
    /// and looking each up again costs a hash).
    fn write_clients(&self, out: &mut impl Sink) -> Chains {
        let (d, client) = (self.d, self.client);
        // without a Connection header, nothing is listed in one
        let mut listed = Names::new();
        if client.contains_key(header::CONNECTION) {
            add_connection_listed(client, &mut listed);
        }
        let shaped = shaped(d);
        // `hide credentials`: the header that carried the caller's key or Basic credentials
        let hidden = match d.hidden.as_deref() {
            Some((crate::vocab::ParamLocation::Header, name)) => Some(name.as_str()),
            _ => None,
        };
        let id_name = request_id_name(d);
        let mut sent = Chains::default();
        for (name, value) in client {
            if REPLACED.contains(name) {
                sent.forwarded_for |= name == X_FORWARDED_FOR;
                sent.forwarded |= name == header::FORWARDED;
                continue;
            }
            if !HOP_BY_HOP.contains(name)
                && name != id_name
                && !listed.contains(name)
                && !is_context_header(name)
                && shaped.is_none_or(|s| s.passes(name.as_str()))
                && !hidden.is_some_and(|h| name.as_str().eq_ignore_ascii_case(h))
            {
                out.header(name, value);
            }
        }
        sent
    }

    /// `X-Forwarded-For`, `Forwarded` (when the client sent one), `X-Forwarded-Proto` and
    /// `X-Forwarded-Host`.
    fn write_forwarding(&self, out: &mut impl Sink, sent: Chains) {
        let (client, peer, tls) = (self.client, self.d.peer, self.tls);
        let client_chain = |sent: bool, name: &HeaderName| match sent {
            true => lines_joined(client, name),
            false => Chain::new(),
        };
        let xff = forwarded_for(client_chain(sent.forwarded_for, &X_FORWARDED_FOR), peer);
        out.made(&X_FORWARDED_FOR, &xff);
        let chain = client_chain(sent.forwarded, &header::FORWARDED);
        if let Some(chain) = forwarded(chain, peer, tls) {
            out.made(&header::FORWARDED, &chain);
        }
        let proto = HeaderValue::from_static(if tls { "https" } else { "http" });
        out.header(&X_FORWARDED_PROTO, &proto);
        out.made(&X_FORWARDED_HOST, self.original_host.as_bytes());
    }
}

/// Which forwarding chains a client sent: `X-Forwarded-For`, `Forwarded`.
#[derive(Debug, Default, Clone, Copy)]
struct Chains {
    forwarded_for: bool,
    forwarded: bool,
}

/// A forward's shaping of its backend request, if it has one.
fn shaped(d: &Decision) -> Option<&crate::upstream::shape::Shaped> {
    match &d.outcome {
        crate::decide::Outcome::Forward(plan) => plan.shaped.as_deref(),
        _ => None,
    }
}

/// The backend is asked to switch to a websocket ([`crate::decide::ForwardPlan::tunnel`]).
fn tunnel(d: &Decision) -> bool {
    matches!(&d.outcome, crate::decide::Outcome::Forward(plan) if plan.tunnel)
}

/// The dialect's request-id header: the backend gets the gateway's id under it.
fn request_id_name(d: &Decision) -> &'static HeaderName {
    &d.dialect.profile().request_id.name
}

/// The headers [`Forwarding::write`] writes anew, whatever the client sent.
static REPLACED: [HeaderName; 9] = [
    header::HOST,
    header::TRANSFER_ENCODING,
    header::FORWARDED,
    X_FORWARDED_FOR,
    X_FORWARDED_PROTO,
    X_FORWARDED_HOST,
    HOPS_HEADER,
    TRACEPARENT,
    TRACESTATE,
];

/// The hop count as a header value; those below the loop limit without formatting one.
fn hops_value(hops: u32) -> HeaderValue {
    const TEXT: [&str; MAX_HOPS as usize + 1] =
        ["0", "1", "2", "3", "4", "5", "6", "7", "8", "9", "10"];
    match TEXT.get(hops as usize) {
        Some(text) => HeaderValue::from_static(text),
        None => HeaderValue::from(hops),
    }
}

/// A forwarding chain being written: on the stack while it is short (a request through no
/// proxy has nothing but the peer's address in it).
type Chain = smallvec::SmallVec<[u8; 64]>;

/// The chain the backend receives: every `X-Forwarded-For` line the request carried, in
/// order and byte for byte, then the TCP peer — the hop this gateway saw, not the client it
/// computed (which may sit further left).
fn forwarded_for(mut chain: Chain, peer: IpAddr) -> Chain {
    push_ip(&mut chain, crate::compile::canonical_ip(peer));
    chain
}

/// `ip` as `Display` writes it, appended to `out`: IPv4, on every forwarded request, digit
/// by digit rather than through the formatting machinery.
fn push_ip(out: &mut Chain, ip: IpAddr) {
    match ip {
        IpAddr::V4(v4) => {
            for (i, octet) in v4.octets().into_iter().enumerate() {
                if i > 0 {
                    out.push(b'.');
                }
                if octet >= 100 {
                    out.push(b'0' + octet / 100);
                }
                if octet >= 10 {
                    out.push(b'0' + octet / 10 % 10);
                }
                out.push(b'0' + octet % 10);
            }
        }
        IpAddr::V6(v6) => out.extend_from_slice(v6.to_string().as_bytes()),
    }
}

/// RFC 7239's `Forwarded`, when the request carried one: its elements, every line in order
/// and byte for byte, then this hop's (`for=` the TCP peer, `proto=`), so that the right-most
/// element — the one a backend behind rulegate should believe — is what rulegate saw, never
/// what the client wrote. A request without one gets none: `X-Forwarded-For` carries the
/// chain, and a backend that reads `Forwarded` then falls back to its own peer, rulegate.
fn forwarded(mut chain: Chain, peer: IpAddr, tls: bool) -> Option<Chain> {
    if chain.is_empty() {
        return None;
    }
    let this_hop = match crate::compile::canonical_ip(peer) {
        IpAddr::V4(ip) => format!("for={ip}"),
        // an IPv6 node is quoted and bracketed (RFC 7239 §6)
        IpAddr::V6(ip) => format!("for=\"[{ip}]\""),
    };
    chain.extend_from_slice(this_hop.as_bytes());
    chain.extend_from_slice(if tls { b";proto=https" } else { b";proto=http" });
    Some(chain)
}

/// Every non-empty line of a list header, trimmed, each followed by `, `: the chain so far,
/// ready for this hop's entry.
fn lines_joined(headers: &http::HeaderMap, name: &HeaderName) -> Chain {
    let mut chain = Chain::new();
    for line in headers.get_all(name) {
        let line = line.as_bytes().trim_ascii();
        if !line.is_empty() {
            chain.extend_from_slice(line);
            chain.extend_from_slice(b", ");
        }
    }
    chain
}

/// A header named like an authorizer's `context` (`X-Authorizer-…`): only the authorizer's
/// answer may set those, never the client.
fn is_context_header(name: &HeaderName) -> bool {
    let prefix = crate::auth::authorizer::CONTEXT_PREFIX;
    name.as_str()
        .get(..prefix.len())
        .is_some_and(|p| p.eq_ignore_ascii_case(prefix))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_address_is_appended_as_display_writes_it() {
        for ip in [
            "0.0.0.0",
            "1.2.3.4",
            "10.0.99.100",
            "127.0.0.1",
            "255.255.255.255",
            "192.168.10.9",
            "::1",
            "2001:db8::8a2e:370:7334",
        ] {
            let ip: IpAddr = ip.parse().unwrap();
            let mut out = Chain::from_slice(b"a, ");
            push_ip(&mut out, ip);
            assert_eq!(String::from_utf8(out.to_vec()).unwrap(), format!("a, {ip}"));
        }
    }

    #[test]
    fn the_upstream_uri_is_the_prefix_and_the_target_as_format_and_parse_gave_it() {
        let clients = [
            "/data",
            "/data?x=1&y=%20",
            "/",
            "*",
            "http://h.example",
            "http://h.example/a/b?q",
            "/a/../b?",
        ];
        for client in clients {
            let client: http::Uri = client.parse().unwrap();
            let as_read = crate::decide::request::target_of(&client).to_string();
            for base in ["", "/base", "/b/c"] {
                for target in [as_read.as_str(), "/data", "/other?x=1", "*", "/", "/x y"] {
                    let old: Result<http::Uri, _> = format!("{base}{target}").parse();
                    let new = upstream_uri(base, target, &client);
                    match (old, new) {
                        (Ok(old), Ok(new)) => {
                            assert_eq!(old, new, "{client} {base} {target}");
                            assert_eq!(
                                old.to_string(),
                                new.to_string(),
                                "{client} {base} {target}"
                            );
                        }
                        (Err(_), Err(_)) => {}
                        (old, new) => panic!("{client} {base} {target}: {old:?} against {new:?}"),
                    }
                }
            }
        }
    }

    #[test]
    fn every_hop_count_reads_as_its_number() {
        for hops in 0..=MAX_HOPS + 2 {
            assert_eq!(hops_value(hops), HeaderValue::from(hops), "{hops}");
        }
    }

    /// What a forward writes and what `explain` shows (the map) are the same headers: parsed
    /// back, the written lines are the map's values, name by name in the same order. (The map
    /// keeps a name's values together; the written head keeps the client's order.)
    mod the_two_sinks {
        use super::*;
        use proptest::prelude::*;

        const POLICY: &str = r#"service s {
    dialect huawei
    hosts "h.example"
    backend b { targets "http://127.0.0.1:9" }
    route GET "/plain" { forward b }
    route GET "/shaped" {
        backend header "X-Tenant" constant "acme"
        remove header "X-Drop"
        forward b
    }
}
"#;

        fn snapshot() -> crate::compile::Snapshot {
            let loaded = crate::policy::parse_texts(vec![(
                "t.policy".into(),
                POLICY.into(),
                Default::default(),
            )]);
            let compiled = crate::compile::compile(&loaded, &crate::compile::ProcessSecrets);
            let messages: Vec<&String> = compiled.diagnostics.iter().map(|d| &d.message).collect();
            compiled.snapshot.unwrap_or_else(|| panic!("{messages:?}"))
        }

        /// Header lines back as (name, value) pairs, grouped by name in first-seen order.
        fn grouped(lines: &[u8]) -> Vec<(String, Vec<Vec<u8>>)> {
            let text = lines.split(|b| *b == b'\n');
            let mut out: Vec<(String, Vec<Vec<u8>>)> = Vec::new();
            for line in text.filter(|l| !l.is_empty()) {
                let line = line.strip_suffix(b"\r").unwrap();
                let at = line.windows(2).position(|w| w == b": ").unwrap();
                let (name, value) = (
                    String::from_utf8(line[..at].to_vec()).unwrap(),
                    line[at + 2..].to_vec(),
                );
                match out.iter_mut().find(|(n, _)| *n == name) {
                    Some((_, values)) => values.push(value),
                    None => out.push((name, vec![value])),
                }
            }
            out
        }

        fn of_map(map: &http::HeaderMap) -> Vec<(String, Vec<Vec<u8>>)> {
            let mut out: Vec<(String, Vec<Vec<u8>>)> = Vec::new();
            for (name, value) in map {
                match out.iter_mut().find(|(n, _)| n == name.as_str()) {
                    Some((_, values)) => values.push(value.as_bytes().to_vec()),
                    None => out.push((name.as_str().to_string(), vec![value.as_bytes().to_vec()])),
                }
            }
            // the written head keeps its framing aside: Content-Length is the exchange's
            out.retain(|(n, _)| n != "content-length");
            out
        }

        fn names() -> impl Strategy<Value = &'static str> {
            prop::sample::select(vec![
                "host",
                "x-forwarded-for",
                "forwarded",
                "x-forwarded-host",
                "x-forwarded-proto",
                "connection",
                "keep-alive",
                "upgrade",
                "te",
                "transfer-encoding",
                "content-length",
                "x-request-id",
                "x-rulegate-hops",
                "traceparent",
                "tracestate",
                "x-authorizer-user",
                "x-drop",
                "x-tenant",
                "x-a",
                "x-b",
                "cookie",
            ])
        }

        fn values() -> impl Strategy<Value = String> {
            prop::sample::select(vec![
                "1",
                "",
                " a ",
                "for=1.2.3.4",
                "keep-alive, x-a",
                "upgrade",
                "websocket",
                "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
                "k=v,l=w",
                "10.0.0.1, 10.0.0.2",
                "h.example",
            ])
            .prop_map(str::to_string)
        }

        proptest! {
            #[test]
            fn a_forwards_written_head_holds_the_headers_explain_shows(
                path in prop::sample::select(vec!["/plain", "/shaped", "/none"]),
                headers in prop::collection::vec((names(), values()), 0..12),
                tls in any::<bool>(),
                hops in 0u32..12,
                host in prop::sample::select(vec!["", "h.example", "other.example:8080"]),
            ) {
                let snap = snapshot();
                let mut client = http::HeaderMap::new();
                for (name, value) in &headers {
                    client.append(*name, HeaderValue::from_str(value).unwrap());
                }
                let head = crate::request::RequestHead {
                    version: http::Version::HTTP_11,
                    method: "GET",
                    target: path,
                    host: Some(host),
                    host_from: Default::default(),
                    headers: &client,
                    peer: IpAddr::from([127, 0, 0, 1]),
                    tls,
                    client_cert: false,
                    body: None,
                };
                let env = crate::decide::VirtualEnv::new(0);
                let d = crate::decide::decide(&snap, &head, &env);
                let authority = HeaderValue::from_static("127.0.0.1:9");
                let forwarding = Forwarding {
                    d: &d,
                    client: &client,
                    tls,
                    authority: Some(&authority),
                    original_host: host,
                    hops,
                };
                let (map, written) = (forwarding.headers(), forwarding.head_lines());
                prop_assert_eq!(grouped(&written), of_map(&map));
            }
        }
    }
}
