//! Forwarding to backends: the attempts (the target `decide` chose, then retries on other
//! targets), name resolution with the backend's IP deny list checked on the resolved address
//! (SSRF guard), the loop guard, header hygiene, timeouts, the mapping of upstream failures to
//! canonical reasons, and the count of each attempt's result in the targets' health and the
//! breaker (see [`crate::upstream::state`]).

use super::h1::Broken;
use super::handler::Body;
use super::pool::{PooledBody, SendError};

use super::outgoing::{upstream_request, HOPS_HEADER};
use super::Gateway;
use crate::compile::{canonical_ip, Backend, HttpTarget, Snapshot};
use crate::decide::{Decision, ForwardPlan};
use crate::dialect::Reason;
use crate::upstream::health::Attempted;
use crate::upstream::state::{replayable, retryable, InFlight, Pick, Settled, Upstreams};
use http::header::{self, HeaderName};
use hyper::Response;
use std::net::{IpAddr, SocketAddr};
use std::ops::ControlFlow;
use std::time::{Duration, Instant};

/// A request that has passed this many rulegate hops is a loop.
pub(super) const MAX_HOPS: u32 = 10;

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
    at: Instant,
) -> Result<Response<Body>, Reason> {
    let service = &snap.services[d.service.ok_or(Reason::Internal)?];
    let backend = &service.backends[plan.backend];
    let hops = hops(d, parts)?;
    let attempts = 1 + backend.retries as usize;
    // from the body, not its headers: an HTTP/2 body needs no `Content-Length`
    let replayable = replayable(
        parts.method.as_str(),
        !hyper::body::Body::is_end_stream(&body),
    );
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
    let mut at = at;
    loop {
        tried.push(pick.target);
        let attempt = Attempt {
            gw,
            d,
            backend,
            pick,
            client_waiting: client_waiting.as_deref(),
            at,
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
        at = Instant::now();
        match state.retry(&backend.targeting, &tried, super::clock::wall_ms(at)) {
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
    if !crate::request::head::may_carry(&parts.headers, &HOPS_HEADER) {
        return Ok(0);
    }
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
    /// When the attempt began: its backend's time counts from here once a target given by
    /// address is known (a name's lookup is not the backend's time).
    at: Instant,
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
        let head = upstream_request(self.d, parts, tls, target, plan, backend, hops)?;
        let endpoint = super::pool::Endpoint {
            addr,
            tls: target.tls.clone(),
        };
        let inflight = gw
            .upstream
            .state
            .begin(&backend.targeting, self.pick.target, retry);
        // the backend's time starts once its address is known: a name's lookup took time
        let at = match target.ip {
            Some(_) => self.at,
            None => Instant::now(),
        };
        let connect_timeout = Duration::from_millis(backend.connect_timeout_ms);
        // as tokio's own `timeout` does: a timeout past what an `Instant` holds is 30 years
        let timeout = Duration::from_millis(backend.timeout_ms);
        let deadline = (at.checked_add(timeout))
            .unwrap_or_else(|| at + Duration::from_secs(86_400 * 365 * 30));
        let sent = tokio::time::timeout_at(
            deadline.into(),
            gw.upstream
                .pool
                .send_or_return(&endpoint, at, connect_timeout, None, head, body),
        )
        .await
        .unwrap_or(Err((SendError::Timeout, None)));
        match sent {
            // a switch nobody asked for is a broken backend, not an answer
            Ok(response) if self.switched_unasked(&response) => {
                self.count(inflight, at, |_| Attempted::Reset);
                Ok((Ok(Ok(response)), None))
            }
            Ok(response) => {
                let status = response.status().as_u16();
                self.count(inflight, at, |ms| Attempted::Answered { status, ms });
                Ok((Ok(Ok(response)), None))
            }
            Err((SendError::Connect(e), unsent)) => {
                tracing::warn!(target = %self.url(), "backend refused the connection: {e}");
                self.count(inflight, at, |_| Attempted::ConnectFailed);
                Ok((Err(Reason::BackendUnavailable), unsent))
            }
            Err((e, _)) => {
                // the client's body failing, or a request rulegate framed wrongly, says
                // nothing of the target
                let blameless = match &e {
                    SendError::Http(Broken::Unframed(_)) => true,
                    SendError::Http(h) => super::client_body::failure_in(h).is_some(),
                    _ => self.client_late(),
                };
                if !blameless {
                    let how = match e {
                        SendError::Timeout => Attempted::TimedOut,
                        SendError::Connect(_) => Attempted::ConnectFailed,
                        SendError::Http(_) => Attempted::Reset,
                    };
                    self.count(inflight, at, |_| how);
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
    /// log a health change. `how` is told how many milliseconds the attempt took.
    fn count(&self, inflight: InFlight, at: Instant, how: impl FnOnce(u64) -> Attempted) {
        let done = Instant::now();
        let how = how(done.saturating_duration_since(at).as_millis() as u64);
        let now = super::clock::wall_ms(done);
        let t = &self.backend.targeting;
        // a breaker's change is counted and logged where it happens (upstream::state)
        let Settled { health, .. } = inflight.settle(t, self.pick, how, now);
        if let Some(change) = health {
            tracing::warn!(backend = %self.backend.name, target = %self.url(), ?change, "target health changed");
        }
    }

    /// A `101` the gateway must not pass on: it did not ask this backend for a websocket (the
    /// route's plan, see [`crate::decide::ForwardPlan::tunnel`]), or the backend switched to
    /// something else. Passed on, it would hand the client a connection nobody checks.
    fn switched_unasked(&self, response: &Response<PooledBody>) -> bool {
        let asked = matches!(&self.d.outcome, crate::decide::Outcome::Forward(p) if p.tunnel);
        response.status() == http::StatusCode::SWITCHING_PROTOCOLS
            && !(asked && crate::request::head::upgrade_is_websocket(response.headers()))
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
            // an answer, so never retried; its connection is dropped with it, never pooled
            Ok(response) if self.switched_unasked(&response) => {
                tracing::warn!(target = %target_url, "backend switched protocols unasked");
                Reason::BackendUnavailable
            }
            Ok(mut response) => {
                if response.status() == http::StatusCode::SWITCHING_PROTOCOLS {
                    let Some(ends) = client_upgrade.take().zip(response.body_mut().upgrade())
                    else {
                        tracing::error!(request_id = %d.request_id, "a websocket without its client's connection");
                        return ControlFlow::Break(Err(Reason::Internal));
                    };
                    tunnel(d.request_id.clone(), ends.0, ends.1);
                }
                return ControlFlow::Break(Ok(downstream_response(d, response)));
            }
            Err(SendError::Connect(_)) => Reason::BackendUnavailable,
            // a body that does not fit the head rulegate wrote: rulegate's own fault
            Err(SendError::Http(e @ Broken::Unframed(_))) => {
                tracing::error!(request_id = %d.request_id, target = %target_url, "{e}");
                Reason::Internal
            }
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

/// Resolve the target and apply the backend's deny list to the resolved addresses.
pub(super) async fn resolve(target: &HttpTarget, backend: &Backend) -> Result<SocketAddr, Reason> {
    if let Some(ip) = target.ip {
        return first_allowed(target, backend, [SocketAddr::new(ip, target.port)]);
    }
    match tokio::net::lookup_host((target.host.as_str(), target.port)).await {
        Ok(addrs) => first_allowed(target, backend, addrs),
        Err(e) => {
            tracing::warn!(host = %target.host, "backend name resolution failed: {e}");
            Err(Reason::BackendDnsFailed)
        }
    }
}

/// The first of the target's addresses that the backend's deny list allows.
fn first_allowed(
    target: &HttpTarget,
    backend: &Backend,
    addrs: impl IntoIterator<Item = SocketAddr>,
) -> Result<SocketAddr, Reason> {
    let allowed = |ip: IpAddr| {
        let ip = canonical_ip(ip);
        !backend.deny.iter().any(|n| n.contains(&ip))
            || backend.except.iter().any(|n| n.contains(&ip))
    };
    let mut any = false;
    for addr in addrs {
        if allowed(addr.ip()) {
            return Ok(addr);
        }
        any = true;
    }
    if !any {
        return Err(Reason::BackendDnsFailed);
    }
    tracing::warn!(
        host = %target.host,
        "every address of the backend is on its deny list"
    );
    Err(Reason::BackendIpDenied)
}

const KEEP_ALIVE: HeaderName = HeaderName::from_static("keep-alive");

/// Headers that describe one connection, not the message (RFC 9110 §7.6.1). Names, not
/// strings: removing by a string parses it on every call.
pub(super) static HOP_BY_HOP: [HeaderName; 8] = [
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
pub(super) type Names = smallvec::SmallVec<[HeaderName; 4]>;

/// The names the `Connection` headers list, added to `names` unless there already: more
/// hop-by-hop headers for this message. The usual `keep-alive` is the static name, not parsed
/// (a name outside `http`'s standard set is copied into an allocation of its own when parsed).
pub(super) fn add_connection_listed(headers: &http::HeaderMap, names: &mut Names) {
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
