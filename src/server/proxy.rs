//! Forwarding to backends: the attempts (the target `decide` chose, then retries on other
//! targets), name resolution with the backend's IP deny list checked on the resolved address
//! (SSRF guard), the loop guard, header hygiene, timeouts, the mapping of upstream failures to
//! canonical reasons, and the count of each attempt's result in the targets' health and the
//! breaker (see [`crate::upstream::state`]).

use super::handler::Body;
use super::pool::{PooledBody, SendError};

use super::Gateway;
use crate::compile::{canonical_ip, Backend, HttpTarget, Snapshot};
use crate::decide::{Decision, ForwardPlan};
use crate::dialect::Reason;
use crate::request::trace::{tracestate, TRACEPARENT, TRACESTATE};
use crate::upstream::health::Attempted;
use crate::upstream::state::{replayable, retryable, InFlight, Pick, Settled, Upstreams};
use http::header::{self, HeaderName, HeaderValue};
use hyper::Response;
use std::net::{IpAddr, SocketAddr};
use std::ops::ControlFlow;
use std::time::{Duration, Instant};

/// A request that has passed this many rulegate hops is a loop.
const MAX_HOPS: u32 = 10;
const HOPS_HEADER: HeaderName = HeaderName::from_static("x-rulegate-hops");

/// Connection pools and the targets' state, shared by all requests and kept across reloads.
pub struct Upstream {
    pub(super) pool: super::pool::Pool,
    pub(super) state: Upstreams,
}

impl Upstream {
    pub fn new(tls: std::sync::Arc<rustls::ClientConfig>) -> Upstream {
        Upstream {
            pool: super::pool::Pool::new(tls),
            state: Upstreams::new(),
        }
    }
}

/// Forward the request; on failure, the canonical reason to answer with.
///
/// In three phases: what the request allows (the loop guard, how many attempts), then one
/// attempt per target (the one `decide` chose, then, for a retry, another the targets' state
/// and retry budget allow), each counted in the targets' health and the breaker and settled
/// by [`Attempt::settle`] into an answer, a refusal, or a reason to try another target.
///
/// Which failures are retried is [`retryable`]'s rule, shared with `rulegate test`.
#[allow(clippy::too_many_arguments)]
pub async fn forward(
    gw: &Gateway,
    snap: &Snapshot,
    d: &Decision,
    plan: &ForwardPlan,
    parts: &http::request::Parts,
    tls: bool,
    body: Body,
    mut client_upgrade: Option<hyper::upgrade::OnUpgrade>,
) -> Result<Response<Body>, Reason> {
    let service = &snap.services[d.service.ok_or(Reason::Internal)?];
    let backend = &service.backends[plan.backend];
    let hops = hops(d, parts)?;
    let attempts = 1 + backend.retries as usize;
    let replayable = replayable(parts.method.as_str(), !is_empty_body(parts));
    // While the client's body is still arriving, a late answer is the client's doing.
    let client_waiting = match &body {
        Body::Client(b) => Some(b.waiting()),
        _ => None,
    };
    let state = &gw.upstream.state;
    let mut body = Some(body);
    let mut tried: smallvec::SmallVec<[usize; 4]> = smallvec::SmallVec::new();
    let mut pick = plan.pick;
    let mut last;
    loop {
        tried.push(pick.target);
        let attempt = Attempt {
            gw,
            d,
            backend,
            pick,
            client_waiting: client_waiting.as_deref(),
        };
        let this_body = body
            .take()
            .unwrap_or_else(|| super::handler::full(bytes::Bytes::new()));
        let (settled, unsent) = attempt
            .send(parts, tls, plan, hops, this_body, tried.len() > 1)
            .await?;
        let retry = match settled.map(|sent| attempt.settle(sent, &mut client_upgrade)) {
            Ok(ControlFlow::Break(answer)) => return answer,
            Ok(ControlFlow::Continue(reason)) => {
                last = reason;
                retryable(Attempted::Reset, replayable)
            }
            // no connection: nothing was sent, and the body is still ours
            Err(reason) => {
                last = reason;
                body = unsent;
                retryable(Attempted::ConnectFailed, replayable)
            }
        };
        if !retry || tried.len() >= attempts {
            return Err(last);
        }
        let now = super::access_log::unix_micros() / 1000;
        match state.retry(&backend.targeting, &tried, now) {
            Some(next) => {
                tracing::debug!(request_id = %d.request_id, backend = %backend.name, target = %backend.targeting.urls[next], "retrying on another target");
                pick = Pick {
                    target: next,
                    probe: false,
                };
            }
            None => return Err(last),
        }
    }
}

/// The hops the request has made through rulegate; a loop once there are too many.
fn hops(d: &Decision, parts: &http::request::Parts) -> Result<u32, Reason> {
    let hops: u32 = parts
        .headers
        .get(HOPS_HEADER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0);
    if hops >= MAX_HOPS {
        tracing::warn!(request_id = %d.request_id, hops, "loop detected: the request has passed through rulegate {hops} times");
        return Err(Reason::LoopDetected);
    }
    Ok(hops)
}

/// One attempt at one target.
struct Attempt<'a> {
    gw: &'a Gateway,
    d: &'a Decision,
    backend: &'a Backend,
    pick: Pick,
    /// Set while the client's body is still arriving.
    client_waiting: Option<&'a std::sync::atomic::AtomicBool>,
}

/// What sending gave: the result, or (no connection could be made) the reason, with the
/// request's body back when it was never sent.
type Sent = Result<Result<Response<PooledBody>, SendError>, Reason>;

impl Attempt<'_> {
    fn url(&self) -> &str {
        &self.backend.targeting.urls[self.pick.target]
    }

    /// Resolve the target and send the request under the backend's timeouts, counting the
    /// request in flight while it waits for the answer and its result in the targets' state.
    /// `Err`: the request cannot be built (a signature that cannot be written).
    async fn send(
        &self,
        parts: &http::request::Parts,
        tls: bool,
        plan: &ForwardPlan,
        hops: u32,
        body: Body,
        retry: bool,
    ) -> Result<(Sent, Option<Body>), Reason> {
        let (gw, backend) = (self.gw, self.backend);
        let Some(target) = &backend.targets[self.pick.target].http else {
            tracing::error!(target = %self.url(), "not an http:// or https:// URL");
            return Err(Reason::BackendUnavailable);
        };
        let addr = match resolve(target, backend).await {
            Ok(a) => a,
            // a name that does not resolve, or an address the deny list refuses, says nothing
            // of the target's health
            Err(reason) => return Ok((Err(reason), Some(body))),
        };
        let request = upstream_request(self.d, parts, tls, target, plan, backend, hops, body)?;
        let endpoint = super::pool::Endpoint {
            addr,
            tls: target.tls.clone(),
        };
        let inflight = gw
            .upstream
            .state
            .begin(&backend.targeting, self.pick.target, retry);
        let started = backend.targeting.times_answers().then(Instant::now);
        let connect_timeout = Duration::from_millis(backend.connect_timeout_ms);
        let sent = tokio::time::timeout(
            Duration::from_millis(backend.timeout_ms),
            gw.upstream
                .pool
                .send_or_return(&endpoint, connect_timeout, None, request),
        )
        .await
        .unwrap_or(Err((SendError::Timeout, None)));
        match sent {
            Ok(response) => {
                let status = response.status().as_u16();
                let ms = started.map_or(0, |s| s.elapsed().as_millis() as u64);
                self.count(inflight, Attempted::Answered { status, ms });
                Ok((Ok(Ok(response)), None))
            }
            Err((SendError::Connect(e), unsent)) => {
                tracing::warn!(target = %self.url(), "backend refused the connection: {e}");
                self.count(inflight, Attempted::ConnectFailed);
                let body = unsent.map(|r| r.into_body());
                Ok((Err(Reason::BackendUnavailable), body))
            }
            Err((e, _)) => {
                let client_fault = match &e {
                    SendError::Http(h) => super::client_body::failure_in(h).is_some(),
                    _ => self.client_late(),
                };
                if !client_fault {
                    let how = match e {
                        SendError::Timeout => Attempted::TimedOut,
                        SendError::Connect(_) => Attempted::ConnectFailed,
                        SendError::Http(_) => Attempted::Reset,
                    };
                    self.count(inflight, how);
                }
                Ok((Ok(Err(e)), None))
            }
        }
    }

    fn client_late(&self) -> bool {
        self.client_waiting
            .is_some_and(|w| w.load(std::sync::atomic::Ordering::Relaxed))
    }

    /// End the request's count and count its result in the target's health and the breaker;
    /// log a health change.
    fn count(&self, inflight: InFlight, how: Attempted) {
        let now = super::access_log::unix_micros() / 1000;
        let t = &self.backend.targeting;
        // a breaker's change is counted and logged where it happens (upstream::state)
        let Settled { health, .. } = inflight.settle(t, self.pick, how, now);
        if let Some(change) = health {
            tracing::warn!(backend = %self.backend.name, target = %self.url(), ?change, "target health changed");
        }
    }

    /// What an attempt's result means: the answer (a protocol switch is tunnelled), or a
    /// reason to answer with, which `Continue` marks as one a replayable request may retry.
    fn settle(
        &self,
        sent: Result<Response<PooledBody>, SendError>,
        client_upgrade: &mut Option<hyper::upgrade::OnUpgrade>,
    ) -> ControlFlow<Result<Response<Body>, Reason>, Reason> {
        let (d, target_url) = (self.d, self.url());
        ControlFlow::Break(Err(match sent {
            Ok(mut response) => {
                if response.status() == http::StatusCode::SWITCHING_PROTOCOLS {
                    if let (Some(client), Some(backend)) =
                        (client_upgrade.take(), response.body_mut().upgrade())
                    {
                        tunnel(d.request_id.clone(), client, backend);
                    }
                }
                return ControlFlow::Break(Ok(downstream_response(d, response)));
            }
            Err(SendError::Connect(_)) => Reason::BackendUnavailable,
            // the client's body failed (too large, malformed, late, abandoned): its fault
            Err(SendError::Http(e)) => match super::client_body::failure_in(&e) {
                Some(reason) => {
                    tracing::debug!(request_id = %d.request_id, "request body: {e}");
                    reason
                }
                None => {
                    tracing::warn!(target = %target_url, "backend failed: {e}");
                    return ControlFlow::Continue(Reason::BackendUnavailable);
                }
            },
            Err(SendError::Timeout) if self.client_late() => {
                tracing::debug!(request_id = %d.request_id, "the backend timeout passed while the client's body was still arriving");
                Reason::BodyTimeout
            }
            Err(SendError::Timeout) => {
                tracing::warn!(target = %target_url, timeout_ms = self.backend.timeout_ms, "backend timed out");
                Reason::BackendTimeout
            }
        }))
    }
}

/// `Connection: upgrade` with an `Upgrade` header: a protocol switch such as a websocket.
pub fn is_upgrade(headers: &http::HeaderMap) -> bool {
    headers.contains_key(http::header::UPGRADE)
        && headers
            .get_all(http::header::CONNECTION)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .any(|t| t.trim().eq_ignore_ascii_case("upgrade"))
}

/// Copy bytes both ways between the upgraded client and backend connections until either
/// side closes; first what the backend sent right after its `101`.
fn tunnel(
    request_id: crate::decide::RequestId,
    client: hyper::upgrade::OnUpgrade,
    upstream: super::h1::Upgraded,
) {
    use tokio::io::AsyncWriteExt;
    tokio::spawn(async move {
        match client.await {
            Ok(client) => {
                let mut client = hyper_util::rt::TokioIo::new(client);
                let mut backend = upstream.stream;
                if let Err(e) = client.write_all(&upstream.read).await {
                    tracing::debug!(%request_id, "upgraded connection ended: {e}");
                    return;
                }
                match tokio::io::copy_bidirectional(&mut client, &mut backend).await {
                    Ok((up, down)) => {
                        tracing::debug!(%request_id, up, down, "upgraded connection closed")
                    }
                    Err(e) => tracing::debug!(%request_id, "upgraded connection ended: {e}"),
                }
            }
            Err(e) => tracing::warn!(%request_id, "protocol upgrade failed: {e}"),
        }
    });
}

fn is_empty_body(parts: &http::request::Parts) -> bool {
    let length = parts
        .headers
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok());
    !parts.headers.contains_key(http::header::TRANSFER_ENCODING)
        && length.is_none_or(|l| l.trim() == "0")
}

/// Resolve the target and apply the backend's deny list to the resolved addresses.
pub(super) async fn resolve(target: &HttpTarget, backend: &Backend) -> Result<SocketAddr, Reason> {
    let addrs: Vec<SocketAddr> = match target.host.parse::<IpAddr>() {
        Ok(ip) => vec![SocketAddr::new(ip, target.port)],
        Err(_) => match tokio::net::lookup_host((target.host.as_str(), target.port)).await {
            Ok(a) => a.collect(),
            Err(e) => {
                tracing::warn!(host = %target.host, "backend name resolution failed: {e}");
                return Err(Reason::BackendDnsFailed);
            }
        },
    };
    if addrs.is_empty() {
        return Err(Reason::BackendDnsFailed);
    }
    let allowed = |ip: IpAddr| {
        let ip = canonical_ip(ip);
        !backend.deny.iter().any(|n| n.contains(&ip))
            || backend.except.iter().any(|n| n.contains(&ip))
    };
    match addrs.iter().find(|a| allowed(a.ip())) {
        Some(a) => Ok(*a),
        None => {
            tracing::warn!(
                host = %target.host,
                "every address of the backend is on its deny list"
            );
            Err(Reason::BackendIpDenied)
        }
    }
}

const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
const X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
const X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");

const KEEP_ALIVE: HeaderName = HeaderName::from_static("keep-alive");

/// Headers that describe one connection, not the message (RFC 9110 §7.6.1). Names, not
/// strings: removing by a string parses it on every call.
static HOP_BY_HOP: [HeaderName; 8] = [
    header::CONNECTION,
    KEEP_ALIVE,
    HeaderName::from_static("proxy-connection"),
    header::PROXY_AUTHENTICATE,
    header::PROXY_AUTHORIZATION,
    header::TE,
    header::TRAILER,
    header::UPGRADE,
];

/// Header names a message's hop-by-hop headers come to: usually one or two.
type Names = smallvec::SmallVec<[HeaderName; 4]>;

/// The names the `Connection` headers list, added to `names` unless there already: more
/// hop-by-hop headers for this message. The usual `keep-alive` is the static name, not parsed
/// (a name outside `http`'s standard set is copied into an allocation of its own when parsed).
fn add_connection_listed(headers: &http::HeaderMap, names: &mut Names) {
    for line in headers.get_all(header::CONNECTION) {
        let Ok(line) = line.to_str() else { continue };
        for token in line.split(',').map(str::trim) {
            let name = match token.eq_ignore_ascii_case("keep-alive") {
                true => KEEP_ALIVE,
                false => match HeaderName::from_bytes(token.as_bytes()) {
                    Ok(name) => name,
                    Err(_) => continue,
                },
            };
            if !names.contains(&name) {
                names.push(name);
            }
        }
    }
}

/// Remove hop-by-hop headers: one pass to find them (usually none, or `Connection:
/// keep-alive`), then one removal for each name found.
fn strip_hop_by_hop(headers: &mut http::HeaderMap) {
    let mut found = Names::new();
    for name in headers.keys() {
        if HOP_BY_HOP.contains(name) {
            found.push(name.clone());
        }
    }
    if found.is_empty() {
        return;
    }
    add_connection_listed(headers, &mut found);
    for h in &found {
        headers.remove(h);
    }
}

#[allow(clippy::too_many_arguments)]
fn upstream_request(
    d: &Decision,
    parts: &http::request::Parts,
    tls: bool,
    target: &HttpTarget,
    plan: &ForwardPlan,
    backend: &Backend,
    hops: u32,
    body: Body,
) -> Result<hyper::Request<Body>, Reason> {
    let mut request = hyper::Request::new(body);
    *request.method_mut() = parts.method.clone();
    *request.uri_mut() = upstream_uri(&target.base, &plan.target, &parts.uri)?;
    let original_host = super::handler::request_host(parts).unwrap_or_default();
    *request.headers_mut() = upstream_headers(
        d,
        &parts.headers,
        tls,
        target.host_value.as_ref(),
        original_host,
        hops,
    );
    sign(plan, backend, parts.method.as_str(), request.headers_mut())?;
    Ok(request)
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
    let host = head.host.unwrap_or("");
    let authority = http.host_value.as_ref();
    let mut headers = upstream_headers(d, head.headers, head.tls, authority, host, 0);
    Some(sign(plan, backend, head.method, &mut headers).map(|_| headers))
}

/// The headers a backend receives: the client's, minus hop-by-hop headers, the forwarding
/// headers (written anew), the request-id header (the gateway's id) and every
/// `X-Authorizer-*` header (only an authorizer's answer sets those); then the authorizer's
/// context, `Host` (the target's authority), `X-Forwarded-*`, the id, the hop count and the
/// trace context (`traceparent` with the gateway's span as parent; the client's `tracestate`
/// when its trace is continued: see [`crate::request::trace`]). `authority` is the target's
/// `Host` value ([`HttpTarget::host_value`]: none is written without one).
/// Public so that the fuzz target can check what a forward would send without a socket.
pub fn upstream_headers(
    d: &Decision,
    client: &http::HeaderMap,
    tls: bool,
    authority: Option<&HeaderValue>,
    original_host: &str,
    hops: u32,
) -> http::HeaderMap {
    // without a Connection header, nothing is listed in one and there is no upgrade
    let connection = client.contains_key(header::CONNECTION);
    let upgrade = (connection && is_upgrade(client))
        .then(|| client.get(header::UPGRADE).cloned())
        .flatten();
    let id_name = d.dialect.profile().request_id.name.clone();
    // The client's headers minus those of its connection and those set below: copied
    // one by one rather than cloned and then pruned, which costs a lookup per name removed.
    let mut listed = Names::new();
    if connection {
        add_connection_listed(client, &mut listed);
    }
    let shaped = match &d.outcome {
        crate::decide::Outcome::Forward(plan) => plan.shaped.as_deref(),
        _ => None,
    };
    // `hide credentials`: the header that carried the caller's key or Basic credentials
    let hidden = match d.hidden.as_deref() {
        Some((crate::vocab::ParamLocation::Header, name)) => Some(name.as_str()),
        _ => None,
    };
    let mut headers = http::HeaderMap::with_capacity(client.len() + 6);
    for (name, value) in client {
        if !HOP_BY_HOP.contains(name)
            && !REPLACED.contains(name)
            && *name != id_name
            && !listed.contains(name)
            && !is_context_header(name)
            && shaped.is_none_or(|s| s.passes(name.as_str()))
            && !hidden.is_some_and(|h| name.as_str().eq_ignore_ascii_case(h))
        {
            headers.append(name.clone(), value.clone());
        }
    }
    // the route's backend parameters (their names are never ones the gateway writes below)
    for (name, value) in shaped.iter().flat_map(|s| s.headers.iter()) {
        headers.append(name.clone(), value.clone());
    }
    for (key, value) in d.authorizer_context.iter().flatten() {
        let name = format!("{}{key}", crate::auth::authorizer::CONTEXT_PREFIX);
        if let (Ok(n), Ok(v)) = (
            HeaderName::from_bytes(name.as_bytes()),
            HeaderValue::from_str(value),
        ) {
            headers.append(n, v);
        }
    }
    if let Some(protocol) = upgrade {
        headers.insert(
            http::header::CONNECTION,
            http::HeaderValue::from_static("upgrade"),
        );
        headers.insert(http::header::UPGRADE, protocol);
    }
    if let Some(authority) = authority {
        headers.insert(header::HOST, authority.clone());
    }
    let chain = bytes::Bytes::from(forwarded_for(client, d.peer));
    if let Ok(chain) = HeaderValue::from_maybe_shared(chain) {
        headers.insert(X_FORWARDED_FOR, chain);
    }
    if let Some(chain) = forwarded(client, d.peer, tls) {
        headers.insert(header::FORWARDED, chain);
    }
    headers.insert(
        X_FORWARDED_PROTO,
        HeaderValue::from_static(if tls { "https" } else { "http" }),
    );
    if let Some(host) = forwarded_host(client, original_host) {
        headers.insert(X_FORWARDED_HOST, host);
    }
    if let Some(id) = d.request_id.header_value() {
        headers.insert(id_name, id);
    }
    headers.insert(HOPS_HEADER, hops_value(hops + 1));
    // the gateway's span as the backend's parent; the client's state only with its trace
    let trace = &d.trace_context;
    headers.insert(TRACEPARENT, trace.traceparent());
    if let Some(state) = trace.continued().then(|| tracestate(client)).flatten() {
        headers.insert(TRACESTATE, state);
    }
    headers
}

/// The headers [`upstream_headers`] writes anew, whatever the client sent.
static REPLACED: [HeaderName; 8] = [
    header::HOST,
    header::TRANSFER_ENCODING,
    X_FORWARDED_FOR,
    X_FORWARDED_PROTO,
    X_FORWARDED_HOST,
    HOPS_HEADER,
    TRACEPARENT,
    TRACESTATE,
];

/// `X-Forwarded-Host`: the host the client asked for. Usually its `Host` header, whose value
/// is then shared (the same bytes: `original_host` is that value read as text) rather than
/// checked and copied again; otherwise (the authority of an HTTP/2 or absolute-form request,
/// or no host at all: an empty value) made from the text.
fn forwarded_host(client: &http::HeaderMap, original_host: &str) -> Option<HeaderValue> {
    match client.get(header::HOST) {
        Some(host) if host.as_bytes() == original_host.as_bytes() => Some(host.clone()),
        _ => HeaderValue::from_str(original_host).ok(),
    }
}

/// The hop count as a header value; those below the loop limit without formatting one.
fn hops_value(hops: u32) -> HeaderValue {
    const TEXT: [&str; MAX_HOPS as usize + 1] =
        ["0", "1", "2", "3", "4", "5", "6", "7", "8", "9", "10"];
    match TEXT.get(hops as usize) {
        Some(text) => HeaderValue::from_static(text),
        None => HeaderValue::from(hops),
    }
}

/// The chain the backend receives: every `X-Forwarded-For` line the request carried, in
/// order and byte for byte, then the TCP peer — the hop this gateway saw, not the client it
/// computed (which may sit further left).
fn forwarded_for(headers: &http::HeaderMap, peer: IpAddr) -> Vec<u8> {
    let mut chain = lines_joined(headers, &X_FORWARDED_FOR);
    push_ip(&mut chain, crate::compile::canonical_ip(peer));
    chain
}

/// `ip` as `Display` writes it, appended to `out`: IPv4, on every forwarded request, digit
/// by digit rather than through the formatting machinery.
fn push_ip(out: &mut Vec<u8>, ip: IpAddr) {
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
fn forwarded(headers: &http::HeaderMap, peer: IpAddr, tls: bool) -> Option<HeaderValue> {
    let mut chain = lines_joined(headers, &header::FORWARDED);
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
    HeaderValue::from_bytes(&chain).ok()
}

/// Every non-empty line of a list header, trimmed, each followed by `, `: the chain so far,
/// ready for this hop's entry.
fn lines_joined(headers: &http::HeaderMap, name: &HeaderName) -> Vec<u8> {
    let mut chain = Vec::new();
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

/// One `backend response header` edit of a forwarded answer.
fn edit_header(headers: &mut http::HeaderMap, edit: &crate::upstream::shape::ResponseEdit) {
    use crate::policy::ast::HeaderEdit;
    match (edit.edit, &edit.value) {
        (HeaderEdit::Remove, _) => {
            headers.remove(&edit.name);
        }
        (HeaderEdit::Set, Some(v)) => {
            headers.insert(edit.name.clone(), v.clone());
        }
        (HeaderEdit::Add, Some(v)) => {
            headers.append(edit.name.clone(), v.clone());
        }
        _ => {}
    }
}

fn downstream_response(d: &Decision, response: Response<PooledBody>) -> Response<Body> {
    let (mut parts, body) = response.into_parts();
    let switching = parts.status == http::StatusCode::SWITCHING_PROTOCOLS;
    let upgrade = parts.headers.get(http::header::UPGRADE).cloned();
    strip_hop_by_hop(&mut parts.headers);
    if let (true, Some(protocol)) = (switching, upgrade) {
        parts.headers.insert(
            http::header::CONNECTION,
            http::HeaderValue::from_static("upgrade"),
        );
        parts.headers.insert(http::header::UPGRADE, protocol);
    }
    if let crate::decide::Outcome::Forward(plan) = &d.outcome {
        for edit in plan.shaped.iter().flat_map(|s| s.shaping.response.iter()) {
            edit_header(&mut parts.headers, edit);
        }
    }
    for (k, v) in d.response_headers.iter().chain(d.headers.iter()) {
        if let (Ok(k), Ok(v)) = (
            http::HeaderName::from_bytes(k.as_bytes()),
            http::HeaderValue::from_str(v),
        ) {
            parts.headers.append(k, v);
        }
    }
    let id_header = &d.dialect.profile().request_id.name;
    if !parts.headers.contains_key(id_header) {
        if let Some(v) = d.request_id.header_value() {
            parts.headers.insert(id_header.clone(), v);
        }
    }
    Response::from_parts(parts, Body::Upstream(body))
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
            let mut out = b"a, ".to_vec();
            push_ip(&mut out, ip);
            assert_eq!(String::from_utf8(out).unwrap(), format!("a, {ip}"));
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
}
