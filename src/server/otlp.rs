//! Exporting one span per request over OTLP/HTTP (`serve --otlp URL`): binary protobuf
//! `ExportTraceServiceRequest`s POSTed to the collector, batched and bounded.
//!
//! The handful of OTLP messages needed are declared here with `prost`'s derive, their field
//! numbers those of opentelemetry-proto's `trace.proto`, `common.proto`, `resource.proto` and
//! `trace_service.proto` (v1). The OpenTelemetry SDK would bring its own runtime glue,
//! exporters and a span model the gateway has no use for: it writes one span a request, whose
//! every field it already knows when the access line is written.
//!
//! A request never waits on the exporter: its span goes into a bounded queue with `try_send`
//! (dropped, and counted, when the queue is full); one background task takes up to
//! [`BATCH`] spans a POST, every second or as soon as a batch fills, each POST bounded by
//! [`POST_TIMEOUT`]. A failed batch is tried once more at the next tick, then counted as
//! failed; while it waits, newer spans wait in the queue, so nothing grows beyond the queue's
//! bound and one batch. Failures are logged at most once every [`WARN_EVERY`].
//!
//! What a span carries is listed in [`Span::encode`]: the route, the method, the path without
//! its query (which may carry an API key), the status, the deciding step, the vendor code and
//! the upstream time. Never a header value, a query, a body, a credential or a secret, and not
//! the client's `tracestate` either (it is a header value).
//!
//! Without `--otlp` none of this exists: no task, no queue, nothing allocated per request.

use super::handler::full;
use super::pool::{Endpoint, Pool, SendError};
use crate::request::TraceContext;
use crate::vocab::target::{HttpTarget, Target};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::time::Instant;

/// Spans waiting to be sent, at most; more are dropped.
pub const QUEUE: usize = 2048;
/// Spans in one POST, at most.
pub const BATCH: usize = 512;
/// How often a partial batch is sent.
const EVERY: Duration = Duration::from_secs(1);
/// How long one POST may take, connecting included.
const POST_TIMEOUT: Duration = Duration::from_secs(2);
/// Failures are logged at most this often.
const WARN_EVERY: Duration = Duration::from_secs(10);

/// What `/metrics` reports of the exporter.
#[derive(Default)]
pub struct Counters {
    pub exported: AtomicU64,
    pub dropped: AtomicU64,
    pub failed: AtomicU64,
}

/// The request side of the exporter: where finished requests' spans go.
pub struct Exporter {
    queue: mpsc::Sender<Span>,
    pub counters: Arc<Counters>,
}

/// One request's span, as the handler finished it.
#[derive(Debug, Clone)]
pub struct Span {
    pub trace: TraceContext,
    pub start_unix_ns: u64,
    pub end_unix_ns: u64,
    pub route: Option<Arc<str>>,
    pub service: Option<Arc<str>>,
    pub method: http::Method,
    /// The request's path, without its query, at most 256 characters.
    pub path: Box<str>,
    /// The host the client asked for, as routing saw it (at most 255 bytes).
    pub host: Option<Box<str>>,
    pub status: u16,
    /// The pipeline step that decided (`auth`, `rate`, `action`, …).
    pub step: &'static str,
    /// The dialect's error code of a refusal; `-` otherwise.
    pub code: &'static str,
    pub upstream_us: Option<u64>,
}

/// Check `--otlp`'s URL: `http://` or `https://` with a host, or why not.
pub fn target(url: &str) -> Result<HttpTarget, String> {
    match Target::parse(url).http {
        Some(t) if !t.host.is_empty() => Ok(t),
        _ => Err(format!(
            "--otlp {url:?} is not an http:// or https:// URL (for example http://127.0.0.1:4318/v1/traces)"
        )),
    }
}

impl Exporter {
    /// Start the background task that sends to `url` (checked by [`target`]).
    pub fn start(url: &str, tls: Arc<rustls::ClientConfig>) -> Result<Exporter, String> {
        let target = target(url)?;
        let (queue, spans) = mpsc::channel(QUEUE);
        let counters = Arc::new(Counters::default());
        let sender = Sender {
            url: url.to_string(),
            path: path_of(url, &target).to_string(),
            target,
            pool: Pool::new(tls),
            counters: counters.clone(),
            warned: None,
        };
        tokio::spawn(sender.run(spans));
        Ok(Exporter { queue, counters })
    }

    /// Queue a span; never waits. A full queue drops it.
    pub fn push(&self, span: Span) {
        if self.queue.try_send(span).is_err() {
            self.counters.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// The URL's path (with its query, if it has one): what the POST asks for.
fn path_of<'u>(url: &'u str, target: &HttpTarget) -> &'u str {
    let after = url
        .find("://")
        .map_or(0, |i| i + 3 + target.authority.len());
    match url.get(after..) {
        Some(p) if p.starts_with('/') => p,
        _ => "/",
    }
}

/// The background task's state.
struct Sender {
    url: String,
    path: String,
    target: HttpTarget,
    pool: Pool,
    counters: Arc<Counters>,
    warned: Option<Instant>,
}

impl Sender {
    async fn run(mut self, mut spans: mpsc::Receiver<Span>) {
        let mut batch: Vec<Span> = Vec::with_capacity(BATCH);
        // a batch that failed once, encoded, and its span count: tried again at the next tick
        let mut retry: Option<(bytes::Bytes, usize)> = None;
        let mut tick = tokio::time::interval(EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let full = tokio::select! {
                span = spans.recv() => match span {
                    Some(span) => {
                        batch.push(span);
                        batch.len() >= BATCH
                    }
                    None => return,
                },
                _ = tick.tick() => true,
            };
            if !full {
                continue;
            }
            if let Some((body, n)) = retry.take() {
                if let Err(e) = self.post(body, n).await {
                    self.counters.failed.fetch_add(n as u64, Ordering::Relaxed);
                    self.warn(&e, n, false);
                }
            }
            if batch.is_empty() {
                continue;
            }
            let body = bytes::Bytes::from(encode(&batch));
            let n = batch.len();
            batch.clear();
            if let Err(e) = self.post(body.clone(), n).await {
                self.warn(&e, n, true);
                retry = Some((body, n));
            }
        }
    }

    fn warn(&mut self, e: &str, spans: usize, retried: bool) {
        let now = Instant::now();
        if self.warned.is_some_and(|at| now - at < WARN_EVERY) {
            return;
        }
        self.warned = Some(now);
        let then = if retried {
            "tried again at the next batch"
        } else {
            "dropped"
        };
        tracing::warn!(url = %self.url, spans, "OTLP export failed ({then}): {e}");
    }

    /// POST one encoded batch of `spans` spans, within [`POST_TIMEOUT`].
    async fn post(&self, body: bytes::Bytes, spans: usize) -> Result<(), String> {
        let deadline = Instant::now() + POST_TIMEOUT;
        let addr = tokio::time::timeout_at(deadline, resolve(&self.target))
            .await
            .map_err(|_| "name resolution timed out".to_string())??;
        let mut request = hyper::Request::new(full(body));
        *request.method_mut() = http::Method::POST;
        *request.uri_mut() = self.path.parse().map_err(|_| "bad path".to_string())?;
        let headers = request.headers_mut();
        if let Ok(host) = http::HeaderValue::from_str(&self.target.authority) {
            headers.insert(http::header::HOST, host);
        }
        headers.insert(
            http::header::CONTENT_TYPE,
            http::HeaderValue::from_static("application/x-protobuf"),
        );
        let endpoint = Endpoint {
            addr,
            tls: self.target.tls.clone(),
        };
        let connect_within = deadline.saturating_duration_since(Instant::now());
        let answer = self
            .pool
            .send_by(&endpoint, connect_within, Some(deadline), request);
        let response = match answer.await {
            Ok(r) => r,
            Err(SendError::Connect(e)) => return Err(format!("cannot connect: {e}")),
            Err(SendError::Timeout) => return Err(format!("no answer within {POST_TIMEOUT:?}")),
            Err(SendError::Http(e)) => return Err(format!("the POST failed: {e}")),
        };
        let status = response.status();
        // read the answer to its end (within the deadline) so the connection is reused
        let body = http_body_util::BodyExt::collect(response.into_body());
        let _ = tokio::time::timeout_at(deadline, body).await;
        if !status.is_success() {
            return Err(format!("the collector answered {status}"));
        }
        self.counters
            .exported
            .fetch_add(spans as u64, Ordering::Relaxed);
        Ok(())
    }
}

async fn resolve(target: &HttpTarget) -> Result<SocketAddr, String> {
    if let Some(ip) = target.ip {
        return Ok(SocketAddr::new(ip, target.port));
    }
    tokio::net::lookup_host((target.host.as_str(), target.port))
        .await
        .map_err(|e| format!("cannot resolve {}: {e}", target.host))?
        .next()
        .ok_or_else(|| format!("{} has no address", target.host))
}

/// The `ExportTraceServiceRequest` for a batch, encoded: one resource (`service.name =
/// rulegate`), one scope, the spans. The three enclosing messages are framed by hand around
/// the spans, each encoded once: `prost` would work out every nested length again at each
/// level above it.
fn encode(spans: &[Span]) -> Vec<u8> {
    use prost::encoding::{encode_key, encode_varint, WireType};
    use prost::Message;
    let field = |n: u32, body: &[u8], out: &mut Vec<u8>| {
        encode_key(n, WireType::LengthDelimited, out);
        encode_varint(body.len() as u64, out);
        out.extend_from_slice(body);
    };
    // ScopeSpans: scope = 1, spans = 2
    let mut scope_spans = Vec::with_capacity(64 + spans.len() * 512);
    let scope = proto::InstrumentationScope {
        name: "rulegate".into(),
        version: env!("CARGO_PKG_VERSION").into(),
    };
    encode_key(1, WireType::LengthDelimited, &mut scope_spans);
    let _ = scope.encode_length_delimited(&mut scope_spans);
    for span in spans {
        encode_key(2, WireType::LengthDelimited, &mut scope_spans);
        let _ = span.encode().encode_length_delimited(&mut scope_spans);
    }
    // ResourceSpans: resource = 1, scope_spans = 2
    let mut resource_spans = Vec::with_capacity(scope_spans.len() + 64);
    let resource = proto::Resource {
        attributes: vec![text("service.name", "rulegate")],
        dropped_attributes_count: 0,
    };
    encode_key(1, WireType::LengthDelimited, &mut resource_spans);
    let _ = resource.encode_length_delimited(&mut resource_spans);
    field(2, &scope_spans, &mut resource_spans);
    // ExportTraceServiceRequest: resource_spans = 1
    let mut out = Vec::with_capacity(resource_spans.len() + 8);
    field(1, &resource_spans, &mut out);
    out
}

fn text(key: &'static str, value: &str) -> proto::KeyValue {
    proto::KeyValue {
        key: bytes::Bytes::from_static(key.as_bytes()),
        value: Some(proto::AnyValue {
            value: Some(proto::Value::Text(value.into())),
        }),
    }
}

fn int(key: &'static str, value: i64) -> proto::KeyValue {
    proto::KeyValue {
        key: bytes::Bytes::from_static(key.as_bytes()),
        value: Some(proto::AnyValue {
            value: Some(proto::Value::Int(value)),
        }),
    }
}

fn double(key: &'static str, value: f64) -> proto::KeyValue {
    proto::KeyValue {
        key: bytes::Bytes::from_static(key.as_bytes()),
        value: Some(proto::AnyValue {
            value: Some(proto::Value::Double(value)),
        }),
    }
}

impl Span {
    /// The span as OTLP has it: named after its route (`unrouted` without one), kind SERVER,
    /// its parent the client's span when the trace was continued, status ERROR for a 5xx.
    /// Attributes: `http.request.method`, `url.path`, `http.route`,
    /// `http.response.status_code`, `server.address`, `rulegate.service`, `rulegate.step`,
    /// `rulegate.code` (a refusal's), `rulegate.upstream.duration_ms` (a forward's).
    fn encode(&self) -> proto::Span {
        let mut attributes = vec![
            text("http.request.method", self.method.as_str()),
            text("url.path", &self.path),
            int("http.response.status_code", i64::from(self.status)),
            text("rulegate.step", self.step),
        ];
        if let Some(route) = &self.route {
            attributes.push(text("http.route", route));
        }
        if let Some(host) = &self.host {
            attributes.push(text("server.address", host));
        }
        if let Some(service) = &self.service {
            attributes.push(text("rulegate.service", service));
        }
        if self.code != "-" {
            attributes.push(text("rulegate.code", self.code));
        }
        if let Some(us) = self.upstream_us {
            attributes.push(double("rulegate.upstream.duration_ms", us as f64 / 1000.0));
        }
        let error = self.status >= 500;
        proto::Span {
            trace_id: self.trace.trace_id.to_be_bytes().to_vec(),
            span_id: self.trace.span_id.to_be_bytes().to_vec(),
            trace_state: String::new(),
            parent_span_id: self
                .trace
                .parent
                .map_or_else(Vec::new, |p| p.to_be_bytes().to_vec()),
            name: self.route.as_deref().unwrap_or("unrouted").to_string(),
            kind: proto::SPAN_KIND_SERVER,
            start_time_unix_nano: self.start_unix_ns,
            end_time_unix_nano: self.end_unix_ns,
            attributes,
            status: Some(proto::Status {
                message: String::new(),
                code: if error {
                    proto::STATUS_CODE_ERROR
                } else {
                    proto::STATUS_CODE_UNSET
                },
            }),
            flags: u32::from(self.trace.sampled),
        }
    }
}

/// The OTLP v1 messages rulegate writes, with opentelemetry-proto's field numbers. Fields it
/// never sets (events, links, dropped counts but the resource's) are left out: protobuf
/// readers take an absent field as its default. The three enclosing messages are framed by
/// hand (`encode`); they are declared for the tests, which decode what it writes.
pub mod proto {
    #[cfg(test)]
    /// `opentelemetry.proto.collector.trace.v1.ExportTraceServiceRequest`
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct ExportTraceServiceRequest {
        #[prost(message, repeated, tag = "1")]
        pub resource_spans: Vec<ResourceSpans>,
    }

    #[cfg(test)]
    /// `opentelemetry.proto.trace.v1.ResourceSpans`
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct ResourceSpans {
        #[prost(message, optional, tag = "1")]
        pub resource: Option<Resource>,
        #[prost(message, repeated, tag = "2")]
        pub scope_spans: Vec<ScopeSpans>,
        #[prost(string, tag = "3")]
        pub schema_url: String,
    }

    /// `opentelemetry.proto.resource.v1.Resource`
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Resource {
        #[prost(message, repeated, tag = "1")]
        pub attributes: Vec<KeyValue>,
        #[prost(uint32, tag = "2")]
        pub dropped_attributes_count: u32,
    }

    #[cfg(test)]
    /// `opentelemetry.proto.trace.v1.ScopeSpans`
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct ScopeSpans {
        #[prost(message, optional, tag = "1")]
        pub scope: Option<InstrumentationScope>,
        #[prost(message, repeated, tag = "2")]
        pub spans: Vec<Span>,
        #[prost(string, tag = "3")]
        pub schema_url: String,
    }

    /// `opentelemetry.proto.common.v1.InstrumentationScope`
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct InstrumentationScope {
        #[prost(string, tag = "1")]
        pub name: String,
        #[prost(string, tag = "2")]
        pub version: String,
    }

    /// `opentelemetry.proto.trace.v1.Span.SpanKind.SPAN_KIND_SERVER`
    pub const SPAN_KIND_SERVER: i32 = 2;
    /// `opentelemetry.proto.trace.v1.Status.StatusCode`
    pub const STATUS_CODE_UNSET: i32 = 0;
    pub const STATUS_CODE_ERROR: i32 = 2;

    /// `opentelemetry.proto.trace.v1.Span`
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Span {
        #[prost(bytes = "vec", tag = "1")]
        pub trace_id: Vec<u8>,
        #[prost(bytes = "vec", tag = "2")]
        pub span_id: Vec<u8>,
        #[prost(string, tag = "3")]
        pub trace_state: String,
        #[prost(bytes = "vec", tag = "4")]
        pub parent_span_id: Vec<u8>,
        #[prost(string, tag = "5")]
        pub name: String,
        #[prost(int32, tag = "6")]
        pub kind: i32,
        #[prost(fixed64, tag = "7")]
        pub start_time_unix_nano: u64,
        #[prost(fixed64, tag = "8")]
        pub end_time_unix_nano: u64,
        #[prost(message, repeated, tag = "9")]
        pub attributes: Vec<KeyValue>,
        #[prost(message, optional, tag = "15")]
        pub status: Option<Status>,
        /// W3C trace flags in the low byte (`sampled`).
        #[prost(fixed32, tag = "16")]
        pub flags: u32,
    }

    /// `opentelemetry.proto.trace.v1.Status`
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Status {
        #[prost(string, tag = "2")]
        pub message: String,
        #[prost(int32, tag = "3")]
        pub code: i32,
    }

    /// `opentelemetry.proto.common.v1.KeyValue`
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct KeyValue {
        /// A `string` in the schema: the same bytes on the wire, without an allocation for
        /// the constant keys rulegate writes.
        #[prost(bytes = "bytes", tag = "1")]
        pub key: bytes::Bytes,
        #[prost(message, optional, tag = "2")]
        pub value: Option<AnyValue>,
    }

    /// `opentelemetry.proto.common.v1.AnyValue`
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct AnyValue {
        #[prost(oneof = "Value", tags = "1, 3, 4")]
        pub value: Option<Value>,
    }

    /// `AnyValue.value`: the kinds rulegate writes (`string_value`, `int_value`,
    /// `double_value`).
    #[derive(Clone, PartialEq, prost::Oneof)]
    pub enum Value {
        #[prost(string, tag = "1")]
        Text(String),
        #[prost(int64, tag = "3")]
        Int(i64),
        #[prost(double, tag = "4")]
        Double(f64),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_url_must_be_http_or_https_with_a_host() {
        assert!(target("http://127.0.0.1:4318/v1/traces").is_ok());
        assert!(target("https://collector.example/v1/traces").is_ok());
        for bad in [
            "127.0.0.1:4318",
            "ftp://x/v1/traces",
            "http://",
            "http://:4318/",
        ] {
            assert!(target(bad).is_err(), "{bad}");
        }
        let url = "http://127.0.0.1:4318/v1/traces";
        assert_eq!(path_of(url, &target(url).unwrap()), "/v1/traces");
        let bare = "http://127.0.0.1:4318";
        assert_eq!(path_of(bare, &target(bare).unwrap()), "/");
    }

    #[test]
    fn a_span_carries_its_ids_route_and_outcome() {
        let span = Span {
            trace: TraceContext {
                trace_id: 0x0102,
                span_id: 0x0304,
                parent: Some(0x05),
                sampled: true,
            },
            start_unix_ns: 1,
            end_unix_ns: 2,
            route: Some("GET /a".into()),
            service: Some("shop".into()),
            method: http::Method::GET,
            path: "/a".into(),
            host: None,
            status: 503,
            step: "action",
            code: "APIG.0201",
            upstream_us: Some(1500),
        };
        let encoded = encode(&[span.clone(), span]);
        let decoded: proto::ExportTraceServiceRequest =
            prost::Message::decode(encoded.as_slice()).unwrap();
        let s = &decoded.resource_spans[0].scope_spans[0].spans[0];
        assert_eq!(s.trace_id.len(), 16);
        assert_eq!(s.trace_id[14..], [1, 2]);
        assert_eq!(s.span_id, 0x0304u64.to_be_bytes());
        assert_eq!(s.parent_span_id, 5u64.to_be_bytes());
        assert_eq!(s.name, "GET /a");
        assert_eq!(s.kind, proto::SPAN_KIND_SERVER);
        assert_eq!(s.status.as_ref().unwrap().code, proto::STATUS_CODE_ERROR);
        assert_eq!(decoded.resource_spans[0].scope_spans[0].spans.len(), 2);
        let resource = decoded.resource_spans[0].resource.as_ref().unwrap();
        assert_eq!(&resource.attributes[0].key[..], b"service.name");
        let scope = decoded.resource_spans[0].scope_spans[0]
            .scope
            .as_ref()
            .unwrap();
        assert_eq!(scope.name, "rulegate");
        let keys: Vec<&[u8]> = s.attributes.iter().map(|a| &a.key[..]).collect();
        assert!(keys.contains(&&b"rulegate.code"[..]), "{keys:?}");
        assert!(
            keys.contains(&&b"rulegate.upstream.duration_ms"[..]),
            "{keys:?}"
        );
    }
}
