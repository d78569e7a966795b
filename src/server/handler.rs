//! One request: drive the pipeline on the current snapshot, doing the effects it asks for
//! (the body, the shared store's counts, the authorizer: see [`crate::decide::Drive`]), then
//! answer or forward.

use super::{client_body, proxy, Gateway, LiveEnv};
use crate::decide::{
    respond_headers, Arrival, Decision, Drive, Effect, Next, Outcome, RequestHead,
};
use crate::dialect::{self, Reason};
use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue};
use http_body_util::Full;
use hyper::body::{Frame, Incoming, SizeHint};
use hyper::{Request, Response};
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// A body rulegate sends: to a client, or to a backend. One type for all, without a
/// `dyn` box (a box is an allocation on every answer); the streamed ones keep their state
/// behind a pointer, so a `Body` is small (40 bytes) wherever it is moved (see
/// `pool::PooledBody`).
pub enum Body {
    /// Bytes at hand: an answer of rulegate's own, a buffered request body.
    Full(Full<Bytes>),
    /// A backend's answer, streamed through; its connection goes back to the pool at its end.
    Upstream(super::pool::PooledBody),
    /// A client's request body on its way to a backend, capped and timed (boxed: see above;
    /// a request with a body allocates for it anyway).
    Client(Box<super::client_body::ClientBody>),
}

pub fn full(bytes: impl Into<Bytes>) -> Body {
    Body::Full(Full::new(bytes.into()))
}

impl hyper::body::Body for Body {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        match self.get_mut() {
            Body::Full(b) => Pin::new(b).poll_frame(cx).map_err(|never| match never {}),
            Body::Upstream(b) => Pin::new(b).poll_frame(cx).map_err(BoxError::from),
            Body::Client(b) => Pin::new(b).poll_frame(cx).map_err(BoxError::from),
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            Body::Full(b) => b.is_end_stream(),
            Body::Upstream(b) => b.is_end_stream(),
            Body::Client(b) => b.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            Body::Full(b) => b.size_hint(),
            Body::Upstream(b) => b.size_hint(),
            Body::Client(b) => b.size_hint(),
        }
    }
}

/// What every request on one connection shares, worked out when the connection opens.
pub struct Conn {
    pub peer: SocketAddr,
    pub tls: bool,
    /// A verified client certificate was presented (TLS only).
    pub client_cert: bool,
    /// The peer's address, and `address:port`, as the access log writes them.
    ip_text: String,
    peer_text: String,
}

impl Conn {
    pub fn new(peer: SocketAddr, tls: bool, client_cert: bool) -> Arc<Conn> {
        Arc::new(Conn {
            peer,
            tls,
            client_cert,
            ip_text: peer.ip().to_string(),
            peer_text: peer.to_string(),
        })
    }
}

pub async fn handle(gw: Arc<Gateway>, req: Request<Incoming>, conn: Arc<Conn>) -> Response<Body> {
    let started = Instant::now();
    // This request keeps the snapshot it started with, whatever reloads happen meanwhile.
    let snap = gw.snapshot.load_full();
    let (mut parts, body) = req.into_parts();
    let target = crate::decide::request::target_of(&parts.uri);
    // HTTP/1 and whether the client waits for `100 Continue` (see `settle_unread`).
    let http1 = parts.version < http::Version::HTTP_2;
    let expects_nothing = hyper::body::Body::is_end_stream(&body);
    let expects_continue = !expects_nothing && parts.headers.contains_key(http::header::EXPECT);
    let buffered = OnceLock::new();
    let mut client = RequestBody {
        incoming: Some(body),
        buffered: &buffered,
        failed: false,
    };
    let mut pending = Pending {
        gw: &gw,
        record: None,
        started,
    };
    let env = LiveEnv::new(&gw, started);
    // The `Drive` borrows the head (and so `parts`) until this block ends.
    let mut decision = {
        let mut drive = Drive::new(&snap, head_of(&parts, &conn), &env);
        if expects_nothing {
            drive.without_body();
        }
        // From the first sight of the body on, the request is accounted for even if the
        // client goes away: hyper drops this future then, and the guard's Drop writes the
        // 499 line.
        let account = |d: &Decision| {
            if pending.record.is_none() {
                let exporting = gw.otlp.is_some();
                pending.record = Some(Record::new(&snap, d, &parts, target, &conn, exporting));
            }
        };
        effects(&gw, &env, &mut drive, &mut client, account).await;
        drive.finish()
    };
    let (mut body, mut body_failed) = (client.incoming, client.failed);
    let debug = (decision.dialect.profile().debug_requested)(&parts.headers);

    let (mut upstream_us, mut done) = (None, None);
    let mut response = match &decision.outcome {
        Outcome::Forward(plan) => {
            // a websocket handshake that passed is tunnelled once both sides upgrade
            let client_upgrade = match plan.tunnel {
                true => parts.extensions.remove::<hyper::upgrade::OnUpgrade>(),
                false => None,
            };
            let body = upstream_body(&gw, &snap, &decision, body.take(), &buffered);
            let t = Instant::now();
            let result = proxy::forward(
                &gw,
                &snap,
                &decision,
                plan,
                &parts,
                conn.tls,
                body,
                client_upgrade,
                t,
            )
            .await;
            let now = Instant::now();
            upstream_us = Some(now.duration_since(t).as_micros() as u64);
            done = Some(now);
            match result {
                Ok(r) => r,
                Err(reason) => {
                    // the client's own body (too large, malformed, late, abandoned) is not a
                    // backend's failure
                    body_failed = client_body::is_body_failure(&reason);
                    if !body_failed {
                        gw.metrics.upstream_error(reason_name(&reason));
                    }
                    let response = reject(&decision, &reason, HeaderMap::new());
                    decision.outcome = Outcome::Reject(reason);
                    response
                }
            }
        }
        _ => answer(&decision, &mut parts.headers),
    };
    // HTTP/2 resets a stream whose body is left unread; the connection stays.
    if http1 {
        settle_unread(&gw, body, expects_continue, body_failed, &mut response);
    }
    let code = match &decision.outcome {
        Outcome::Reject(reason) => dialect::row(decision.dialect, reason).code,
        _ => "-",
    };
    // the end of the exchange, just read, is the answer's time; others read it now
    let done = done.unwrap_or_else(Instant::now);
    if debug {
        debug_latencies(response.headers_mut(), done - started, upstream_us);
    }
    if let Some(mut record) = pending.record.take() {
        if let Some(span) = &mut record.span {
            span.step = deciding_step(&snap, &decision, upstream_us.is_some());
        }
        let status = response.status().as_u16();
        record.write(&gw, status, code, started, done, upstream_us);
    }
    response
}

/// Huawei's debug mode (`X-Apig-Mode: debug`): the gateway's latency and, for a forward, the
/// backend's, in whole milliseconds (the rate-limit headers come with the dialect's limit
/// headers, see `dialect::huawei`).
fn debug_latencies(headers: &mut HeaderMap, latency: Duration, upstream_us: Option<u64>) {
    let ms = |us: u128| HeaderValue::from(us.div_ceil(1000) as u64);
    headers.insert(
        HeaderName::from_static("x-apig-latency"),
        ms(latency.as_micros()),
    );
    if let Some(us) = upstream_us {
        headers.insert(
            HeaderName::from_static("x-apig-upstream-latency"),
            ms(u128::from(us)),
        );
    }
}

/// What `decide` sees of the request: its head, and how it arrived.
#[inline]
fn head_of<'r>(parts: &'r http::request::Parts, conn: &Conn) -> RequestHead<'r> {
    let arrival = Arrival {
        peer: conn.peer.ip(),
        tls: conn.tls,
        client_cert: conn.client_cert,
    };
    RequestHead::of(
        &parts.method,
        &parts.uri,
        parts.version,
        &parts.headers,
        arrival,
    )
}

/// The client's body, as the pipeline's effects leave it.
struct RequestBody<'r> {
    /// Not read yet: streamed to a forward's backend, or settled after the answer.
    incoming: Option<Incoming>,
    /// Read for the pipeline (a signature over it, form parameters, a token request), and
    /// forwarded as read.
    buffered: &'r OnceLock<Bytes>,
    /// Reading it failed half-way: the connection cannot be kept.
    failed: bool,
}

/// Do what the pipeline asks until it decides (see [`crate::decide::Drive`]): read the body,
/// bounded by the limit and the body timeout; fetch the shared store's counts; ask the
/// authorizer. `account` is called once, when the request is first accounted for: before its
/// body is read, or once decided.
///
/// Each effect's future is boxed, as a new backend connection is (`pool::Pool::send_or_return`):
/// a future is as large as
/// the largest state it can be in, and these (a Redis script, an authorizer's HTTP call, a
/// backend's connection and TLS handshake) are kilobytes that most requests never enter. The
/// request's future is moved whole when it starts — over HTTP/2, into a task of its own for
/// every stream — so their size was copied on every request (callgrind, HTTP/2: 16k
/// instructions of `memcpy` per request in `tokio::spawn`).
async fn effects<'r>(
    gw: &Gateway,
    env: &LiveEnv<'_>,
    drive: &mut Drive<'_, 'r>,
    body: &mut RequestBody<'r>,
    mut account: impl FnMut(&Decision),
) {
    // Remote effects since the body was read: an authorizer comes before the limits, so a
    // request may need both, never more.
    let mut remote = 0;
    loop {
        drive.resume();
        let effect = match drive.wanted() {
            Next::Done => return account(drive.decision()),
            Next::Need(effect) => effect,
        };
        match effect {
            Effect::ReadBody { limit } | Effect::DrainBody { limit } => {
                let keep = matches!(effect, Effect::ReadBody { .. });
                account(drive.decision());
                remote = 0;
                let read = Box::pin(read_body(gw, body, limit, keep)).await;
                env.waited();
                match read {
                    Ok(bytes) => drive.body(bytes),
                    Err(reason) => drive.refuse(reason),
                }
            }
            _ if remote == 2 => {
                let request_id = &drive.decision().request_id;
                tracing::error!(%request_id, "decide asked for the same remote work twice");
                drive.refuse(Reason::Internal);
            }
            Effect::FetchCounts => {
                remote += 1;
                let fetched = Box::pin(env.limiter.fetch()).await;
                env.waited();
                if !fetched {
                    return account(drive.decision());
                }
                drive.counted();
            }
            Effect::Authorize { provider, call } => {
                remote += 1;
                let request_id = &drive.decision().request_id;
                let answer = Box::pin(gw.authorizers.ask(provider, call, request_id)).await;
                env.waited();
                drive.authorized(answer);
            }
        }
    }
}

/// Read the client's body, at most `limit` bytes: kept for the pipeline, or thrown away
/// (an empty body is not waited for then).
async fn read_body<'r>(
    gw: &Gateway,
    body: &mut RequestBody<'r>,
    limit: u64,
    keep: bool,
) -> Result<&'r [u8], Reason> {
    let incoming = match keep {
        true => body.incoming.take(),
        false => body
            .incoming
            .take()
            .filter(|b| !hyper::body::Body::is_end_stream(b)),
    };
    let Some(incoming) = incoming else {
        return Ok(&[]);
    };
    match client_body::read(incoming, limit, &gw.bodies).await {
        Ok(bytes) if keep => Ok(body.buffered.get_or_init(|| bytes)),
        Ok(_) => Ok(&[]),
        Err(reason) => {
            body.failed = true;
            Err(reason)
        }
    }
}

/// The body a forward sends: the client's, streamed, capped at the route's limit and timed;
/// or the one read for the pipeline. An empty body (most GETs) goes as one: nothing to cap,
/// time or wait for.
fn upstream_body(
    gw: &Gateway,
    snap: &crate::compile::Snapshot,
    decision: &Decision,
    body: Option<Incoming>,
    buffered: &OnceLock<Bytes>,
) -> Body {
    match body.filter(|b| !hyper::body::Body::is_end_stream(b)) {
        Some(incoming) => {
            let limit = decision
                .route
                .map(|r| snap.services[decision.service.unwrap_or(0)].routes[r].body_limit);
            let capped =
                client_body::ClientBody::new(incoming, limit.unwrap_or(u64::MAX), &gw.bodies);
            Body::Client(Box::new(capped))
        }
        None => full(buffered.get().cloned().unwrap_or_default()),
    }
}

/// Rulegate's own answer: a direct one or a refusal. A direct answer's headers go into the
/// request's own header map, emptied: hyper hands the answer's map back as the next
/// request's, so a keep-alive connection answering directly allocates no header map at all.
fn answer(decision: &Decision, headers: &mut HeaderMap) -> Response<Body> {
    match &decision.outcome {
        Outcome::Respond(r) => to_hyper(
            r.status,
            respond_headers(decision, r),
            r.body.clone(),
            emptied(headers),
        ),
        Outcome::Reject(reason) => reject(decision, reason, emptied(headers)),
        // remote work the effects could not finish (or a forward, answered elsewhere):
        // nothing to answer but a fault
        _ => reject(decision, &Reason::Internal, emptied(headers)),
    }
}

/// Accounts for a request whose client leaves before the answer: logged and counted as 499
/// with the dialect's code for a closed client.
struct Pending<'a> {
    gw: &'a Gateway,
    record: Option<Record<'a>>,
    started: Instant,
}

impl Drop for Pending<'_> {
    fn drop(&mut self) {
        if let Some(record) = self.record.take() {
            let code = dialect::row(record.dialect, &Reason::ClientClosed).code;
            record.write(self.gw, 499, code, self.started, Instant::now(), None);
        }
    }
}

fn reason_name(reason: &Reason) -> &'static str {
    match reason {
        Reason::BackendUnavailable => "backend_unavailable",
        Reason::BackendTimeout => "backend_timeout",
        Reason::BackendDnsFailed => "backend_dns_failed",
        Reason::NoBackendAvailable => "no_backend_available",
        Reason::BackendIpDenied => "backend_ip_denied",
        Reason::LoopDetected => "loop_detected",
        _ => "other",
    }
}

/// The host the client asked for, as `decide` saw it: the authority (HTTP/2, absolute-form)
/// or the Host header.
pub fn request_host(parts: &http::request::Parts) -> Option<&str> {
    crate::decide::request::host_of(&parts.uri, parts.version, &parts.headers).0
}

/// A body the answer left unread (a refusal before the body arrived, a mock without a body
/// limit): a small one is read and thrown away after the answer so the connection serves the
/// next request; otherwise, and when reading the body failed half-way, the answer announces
/// that the connection closes, so a pooled client does not send its next request into a
/// dead socket. HTTP/1 only.
fn settle_unread(
    gw: &Gateway,
    body: Option<Incoming>,
    expects_continue: bool,
    body_failed: bool,
    response: &mut Response<Body>,
) {
    let closes = match body {
        Some(body) => client_body::unread(body, expects_continue, &gw.bodies),
        None => body_failed,
    };
    if closes {
        response.headers_mut().insert(
            http::header::CONNECTION,
            http::HeaderValue::from_static("close"),
        );
    }
}

/// The dialect's row for a refusal, with the pipeline's headers (CORS, Retry-After).
pub fn reject(d: &Decision, reason: &Reason, map: HeaderMap) -> Response<Body> {
    let e = crate::decide::rejection(d, reason);
    let pipeline = d.headers.iter().map(|(k, v)| (k.as_str(), v.as_str()));
    let headers = e.headers.iter().map(|(k, v)| (k.as_str(), v.as_str()));
    to_hyper(e.status, headers.chain(pipeline), e.body.into(), map)
}

/// The map, emptied, to be filled again: its allocation is kept.
fn emptied(map: &mut HeaderMap) -> HeaderMap {
    let mut map = std::mem::take(map);
    map.clear();
    map
}

/// A response with `headers` appended, in order, to `map` (empty).
pub fn to_hyper<K: AsRef<str>, V: AsRef<str>>(
    status: u16,
    headers: impl IntoIterator<Item = (K, V)>,
    body: Bytes,
    map: HeaderMap,
) -> Response<Body> {
    let mut response = Response::new(full(body));
    *response.headers_mut() = map;
    *response.status_mut() =
        http::StatusCode::from_u16(status).unwrap_or(http::StatusCode::INTERNAL_SERVER_ERROR);
    // The status line says what `explain` prints (`dialect::reason_phrase`); hyper's own
    // phrase is kept only where it is the same (no extension to allocate then), so a 413 says
    // `Content Too Large` (RFC 9110), not hyper's `Payload Too Large`, and a 499 is not `<none>`.
    let phrase = dialect::reason_phrase(status);
    if response.status().canonical_reason() != Some(phrase) {
        response
            .extensions_mut()
            .insert(hyper::ext::ReasonPhrase::from_static(phrase.as_bytes()));
    }
    for (k, v) in headers {
        if let (Some(k), Some(v)) = (header_name(k.as_ref()), header_value(v.as_ref())) {
            response.headers_mut().append(k, v);
        }
    }
    response
}

/// The values rulegate itself writes on most answers (Content-Types), without copying them
/// each time; any other value is checked and copied.
fn header_value(value: &str) -> Option<http::HeaderValue> {
    const STATIC: [&str; 3] = [
        "application/json",
        "text/plain; charset=utf-8",
        "application/json;charset=UTF-8",
    ];
    match STATIC.iter().find(|s| **s == value) {
        Some(s) => Some(http::HeaderValue::from_static(s)),
        None => http::HeaderValue::from_str(value).ok(),
    }
}

/// The names rulegate itself writes on every answer, without parsing them each time.
fn header_name(name: &str) -> Option<http::HeaderName> {
    use http::header;
    let dialects = crate::vocab::Dialect::ALL;
    if let Some(id) = dialects
        .iter()
        .map(|d| &d.profile().request_id)
        .find(|id| id.text == name)
    {
        return Some(id.name.clone());
    }
    Some(match name {
        "Content-Type" => header::CONTENT_TYPE,
        "Server" => header::SERVER,
        "Retry-After" => header::RETRY_AFTER,
        _ => return http::HeaderName::from_bytes(name.as_bytes()).ok(),
    })
}

/// One access-log line: what was asked, and what decided it. Borrows or shares everything it
/// can: it is built for every request.
struct Record<'a> {
    request_id: crate::decide::RequestId,
    trace: crate::request::TraceContext,
    dialect: crate::vocab::Dialect,
    client: crate::decide::Client,
    conn: &'a Conn,
    method: http::Method,
    target: &'a str,
    service: Option<Arc<str>>,
    route: Option<Arc<str>>,
    /// What only the span needs, with `--otlp`.
    span: Option<SpanFacts>,
}

/// What a request's span has besides its access line.
struct SpanFacts {
    /// The host the client asked for (at most 255 bytes).
    host: Option<Box<str>>,
    /// The pipeline step that decided.
    step: &'static str,
}

/// The pipeline step that decided a request, for its span: the check that refused it (or
/// asked for its body), routing when no route was found, else the route's action.
fn deciding_step(snap: &crate::compile::Snapshot, d: &Decision, forwarded: bool) -> &'static str {
    match (d.service, d.route, d.check) {
        (Some(s), Some(r), Some(i)) => snap.services[s].routes[r]
            .program
            .get(i)
            .map_or("action", |c| c.phase().name()),
        (_, None, _) => "routing",
        _ if forwarded && matches!(d.outcome, Outcome::Reject(_)) => "upstream",
        _ => "action",
    }
}

impl<'a> Record<'a> {
    fn new(
        snap: &crate::compile::Snapshot,
        d: &Decision,
        parts: &http::request::Parts,
        target: &'a str,
        conn: &'a Conn,
        exporting: bool,
    ) -> Record<'a> {
        Record {
            request_id: d.request_id.clone(),
            trace: d.trace_context,
            dialect: d.dialect,
            client: d.client_ip,
            conn,
            method: parts.method.clone(),
            target,
            service: d.service.map(|s| snap.services[s].name.clone()),
            route: match (d.service, d.route) {
                (Some(s), Some(r)) => Some(snap.services[s].routes[r].label.clone()),
                _ => None,
            },
            span: exporting.then(|| SpanFacts {
                host: request_host(parts)
                    .filter(|h| h.len() <= 255)
                    .map(Into::into),
                step: "-",
            }),
        }
    }

    fn write(
        &self,
        gw: &Gateway,
        status: u16,
        code: &'static str,
        started: Instant,
        done: Instant,
        upstream_us: Option<u64>,
    ) {
        let elapsed = done.saturating_duration_since(started);
        let end_us = super::clock::wall_us(done);
        let latency = elapsed.as_secs_f64();
        gw.metrics.request(
            self.service.as_ref(),
            self.route.as_ref(),
            status,
            code,
            latency,
        );
        let end = self.target.bytes().position(|b| b == b'?');
        let path = &self.target[..end.unwrap_or(self.target.len())];
        // a 40 KiB URI is a rejection worth logging, not worth copying whole
        let (path, cut) = match path.char_indices().nth(256) {
            Some((at, _)) => (&path[..at], "…"),
            None => (path, ""),
        };
        // The client is the peer unless a trusted proxy named another.
        let other;
        let client = if self.client == self.conn.peer.ip() {
            &self.conn.ip_text
        } else {
            other = self.client.to_string();
            &other
        };
        // a new trace's id is usually the request id's digits: no need to write them again
        let hex;
        let trace = match self.request_id.made_bits() == Some(self.trace.trace_id) {
            true => self.request_id.as_str(),
            false => {
                hex = self.trace.trace_hex();
                hex.as_str()
            }
        };
        gw.access_log.write(&super::access_log::Line {
            request_id: &self.request_id,
            trace,
            client,
            peer: &self.conn.peer_text,
            method: self.method.as_str(),
            path,
            cut,
            route: self.route.as_deref().unwrap_or("-"),
            status,
            code,
            at_us: end_us,
            latency_us: elapsed.as_micros() as u64,
            upstream_us: upstream_us.unwrap_or(0),
        });
        // a client's trace it does not sample is not recorded here either (parent-based)
        let exported = self.span.as_ref().filter(|_| self.trace.sampled);
        if let (Some(otlp), Some(facts)) = (&gw.otlp, exported) {
            let end = end_us.max(0) as u64 * 1000;
            otlp.push(super::otlp::Span {
                trace: self.trace,
                start_unix_ns: end.saturating_sub(elapsed.as_nanos() as u64),
                end_unix_ns: end,
                route: self.route.clone(),
                service: self.service.clone(),
                method: self.method.clone(),
                path: match cut {
                    "" => path.into(),
                    _ => format!("{path}{cut}").into(),
                },
                host: facts.host.clone(),
                status,
                step: facts.step,
                code,
                upstream_us,
            });
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_body_is_moved_without_a_call_to_memcpy() {
        // the reason the streamed bodies are boxed (see `Body`)
        assert!(std::mem::size_of::<super::Body>() <= 48);
    }

    #[test]
    fn the_shortcut_header_names_are_the_parsed_ones() {
        for name in [
            "Content-Type",
            "X-Request-Id",
            "X-Api-RequestId",
            "x-jdcloud-request-id",
            "Server",
            "Retry-After",
            crate::dialect::request_id_header(crate::vocab::Dialect::Tencent),
            crate::dialect::request_id_header(crate::vocab::Dialect::Huawei),
            crate::dialect::request_id_header(crate::vocab::Dialect::Jdcloud),
        ] {
            assert_eq!(
                super::header_name(name),
                http::HeaderName::from_bytes(name.as_bytes()).ok(),
                "{name}"
            );
        }
    }

    #[test]
    fn every_status_line_says_the_phrase_explain_prints() {
        for status in 100..1000u16 {
            let r = super::to_hyper(
                status,
                [("a", "b")],
                bytes::Bytes::new(),
                http::HeaderMap::new(),
            );
            let written = match r.extensions().get::<hyper::ext::ReasonPhrase>() {
                Some(p) => p.as_bytes(),
                None => r.status().canonical_reason().unwrap_or("").as_bytes(),
            };
            if r.status().as_u16() == status {
                let phrase = crate::dialect::reason_phrase(status);
                assert_eq!(written, phrase.as_bytes(), "{status}");
            }
        }
    }

    #[test]
    fn the_shortcut_header_values_are_the_parsed_ones() {
        for value in [
            "application/json",
            "text/plain; charset=utf-8",
            "application/json;charset=UTF-8",
            "text/html",
            "bad\nvalue",
        ] {
            assert_eq!(
                super::header_value(value),
                http::HeaderValue::from_str(value).ok(),
                "{value}"
            );
        }
    }
}
