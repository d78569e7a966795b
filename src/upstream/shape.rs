//! Backend parameters, removals, `backend parameters only` and response header edits: how a
//! route (or a policy backend) shapes the request its forward sends and the answer that comes
//! back — the vendors' "backend parameters" (Huawei), "parameter mapping" (Tencent) and
//! "backend parameter mapping" (JD).
//!
//! Compiled once per forward into a [`Shaping`]; at the action step [`Shaping::apply`] turns
//! it, with what the pipeline knows of the request ([`Known`]), into a [`Shaped`] plan that
//! the `Decision` carries: `decide` stays pure, and `serve`, `explain` and `rulegate test`
//! read the same plan. The rules, each one a choice recorded in `docs/design-notes.md`:
//!
//! - a frontend header or query parameter used as a mapping's source is *consumed*: it does
//!   not also reach the backend under its own name (unless mapped to itself);
//! - a name the route maps never carries what the client sent under it: the client's header or
//!   query parameter of that name is dropped even when the mapped source is absent;
//! - an absent source (no such parameter, no app, no claim, no authorizer field) omits the
//!   backend parameter; no row;
//! - a value that cannot be a header value (a decoded `%0d%0a`, any control character)
//!   refuses the request with the invalid-parameter row, never reaches the backend;
//! - `backend parameters only`: the backend's query is the mapped parameters alone, and of the
//!   client's headers only those describing the body or the client's preferences pass
//!   ([`KEPT_WHEN_ONLY`]) besides the mapped ones and those the gateway writes itself.

use super::orchestrate::{Matched, Orchestration};
use crate::policy::ast::{self, HeaderEdit, ParamValue, SystemValue, UpstreamLocation};
use crate::request::head::{decode_component, form_value};
use crate::request::{Client, RequestHead};
use crate::vocab::ParamLocation;
use std::fmt;
use std::sync::Arc;

/// What a forward does to the backend request and its answer, as compiled.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Shaping {
    /// Backend parameters, in the order written (a later one of the same name wins).
    pub params: Vec<Param>,
    /// Orchestrations, each adding one parameter (see [`super::orchestrate`]).
    pub orchestrations: Vec<Orchestration>,
    /// The parameter each orchestration gives (same index), built once.
    pub orchestrated: Vec<Param>,
    /// `backend parameters only`.
    pub only: bool,
    /// Edits of the backend's answer's headers, in order.
    pub response: Arc<[ResponseEdit]>,
    /// Lower-case names of the client headers that never pass: removed, mapped to, or
    /// consumed as a source (computed once, when compiled).
    pub drop_headers: Vec<String>,
    /// Names of the client query parameters that never pass, likewise.
    pub drop_query: Vec<String>,
    /// A value comes from a form parameter: the body is read before the plan is made.
    pub reads_form: bool,
}

/// One backend parameter: where it goes, its name, where its value comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Param {
    pub location: UpstreamLocation,
    /// As written; header names compare without case.
    pub name: String,
    pub source: Source,
    /// A header's name as sent, parsed once when compiled (`None` for the query and path, and
    /// for a name that is no header name, which the parser never lets through).
    pub header: Option<http::HeaderName>,
}

impl Param {
    pub fn new(location: UpstreamLocation, name: String, source: Source) -> Param {
        let header = match location {
            UpstreamLocation::Header => http::HeaderName::from_bytes(name.as_bytes()).ok(),
            _ => None,
        };
        Param {
            location,
            name,
            source,
            header,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// A frontend parameter (its location and name).
    Request(ParamLocation, String),
    Constant(String),
    System(System),
}

/// A value the gateway knows about the request (see `SystemValue` in the language).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum System {
    ClientIp,
    RequestId,
    Stage,
    Service,
    Route,
    AppKey,
    AppName,
    RequestTime,
    Claim(String),
    Authorizer(String),
}

/// An edit of a forwarded answer's headers, its name and value parsed once, when compiled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResponseEdit {
    pub edit: HeaderEdit,
    pub name: http::HeaderName,
    /// `None` for a removal (and for a value that cannot be a header value: the edit is
    /// then skipped, as it always was).
    pub value: Option<http::HeaderValue>,
}

/// The client headers that pass under `backend parameters only`: they describe the body or
/// the client's preferences, and a backend cannot read the request without them.
pub const KEPT_WHEN_ONLY: [&str; 7] = [
    "content-type",
    "content-encoding",
    "content-length",
    "accept",
    "accept-encoding",
    "accept-language",
    "user-agent",
];

impl Shaping {
    /// The shaping a forward's statements describe (the route's, then a policy's), or `None`
    /// when there are none: a forward without them costs nothing at run time.
    pub fn compile(items: &[&ast::Upstream]) -> Option<Arc<Shaping>> {
        let mut s = Shaping::default();
        let mut response = Vec::new();
        let mut any = false;
        for item in items {
            any |= !matches!(item, ast::Upstream::Policy(_));
            match item {
                ast::Upstream::Param(p) => s.params.push(Param::new(
                    p.location.value,
                    p.name.value.clone(),
                    source(&p.value.value),
                )),
                ast::Upstream::Remove { location, name } => match location.value {
                    UpstreamLocation::Query => s.drop_query.push(name.value.clone()),
                    _ => s.drop_headers.push(name.value.to_ascii_lowercase()),
                },
                ast::Upstream::ParametersOnly => s.only = true,
                ast::Upstream::ResponseHeader(e) => {
                    // the parser accepts only HTTP tokens as names
                    if let Ok(name) = http::HeaderName::from_bytes(e.name.value.as_bytes()) {
                        let value = e.value.as_ref();
                        response.push(ResponseEdit {
                            edit: e.edit.value,
                            name,
                            value: value.and_then(|v| http::HeaderValue::from_str(&v.value).ok()),
                        })
                    }
                }
                ast::Upstream::Orchestrate(o) => {
                    let (location, name) = (o.from_location.value, o.from.value.clone());
                    s.orchestrated.push(Param::new(
                        o.into_location.value,
                        o.into.value.clone(),
                        Source::Request(location, name),
                    ));
                    s.orchestrations.push(Orchestration::build(o));
                }
                // compiled by its own module
                ast::Upstream::Policy(_) => {}
            }
        }
        s.response = response.into();
        s.reads_form = s
            .params
            .iter()
            .chain(&s.orchestrated)
            .any(|p| matches!(p.source, Source::Request(ParamLocation::Form, _)));
        s.drops();
        any.then(|| Arc::new(s))
    }

    /// Whatever the client sent under a mapped or consumed name is dropped, as the removed
    /// names already are.
    fn drops(&mut self) {
        let (mut headers, mut query) = (
            std::mem::take(&mut self.drop_headers),
            std::mem::take(&mut self.drop_query),
        );
        for p in &self.params {
            match p.location {
                UpstreamLocation::Header => headers.push(p.name.to_ascii_lowercase()),
                UpstreamLocation::Query => query.push(p.name.clone()),
                UpstreamLocation::Path => {}
            }
            match &p.source {
                Source::Request(ParamLocation::Header, name) => {
                    headers.push(name.to_ascii_lowercase())
                }
                Source::Request(ParamLocation::Query, name) => query.push(name.clone()),
                _ => {}
            }
        }
        for o in &self.orchestrations {
            match o.into.0 {
                UpstreamLocation::Header => headers.push(o.into.1.to_ascii_lowercase()),
                _ => query.push(o.into.1.clone()),
            }
        }
        for list in [&mut headers, &mut query] {
            list.sort();
            list.dedup();
        }
        (self.drop_headers, self.drop_query) = (headers, query);
    }

    /// The path variables this shaping fills (`backend path "x" …`).
    pub fn path_names(&self) -> impl Iterator<Item = &str> {
        self.params
            .iter()
            .filter(|p| p.location == UpstreamLocation::Path)
            .map(|p| p.name.as_str())
    }

    /// The plan for one request, or why it cannot be sent.
    pub fn apply(self: &Arc<Self>, k: &Known<'_>) -> Result<Shaped, Refused> {
        let mut out = Shaped {
            shaping: self.clone(),
            ..Shaped::default()
        };
        for p in &self.params {
            if let Some(value) = k.value(&p.source) {
                out.set(p, value)?;
            }
        }
        for (i, o) in self.orchestrations.iter().enumerate() {
            let (location, name) = &o.from;
            let value = k.frontend(*location, name);
            let Some((value, matched)) = o.run(value.as_deref()).map_err(|_| Refused::NoRule(i))?
            else {
                continue;
            };
            out.set(&self.orchestrated[i], value)?;
            out.orchestrated.push((i, matched));
        }
        Ok(out)
    }
}

impl Shaped {
    /// Give the backend parameter `p` its value; a later one of the same name wins.
    fn set(&mut self, p: &Param, value: String) -> Result<(), Refused> {
        if let Some(name) = &p.header {
            // a value with a control character (a decoded `%0d%0a`) is no header value
            let value =
                http::HeaderValue::try_from(value).map_err(|_| Refused::Unsendable(p.clone()))?;
            self.headers.retain(|(n, _)| n != name);
            self.headers.push((name.clone(), value));
            return Ok(());
        }
        let list = match p.location {
            UpstreamLocation::Path => &mut self.path,
            _ => &mut self.query,
        };
        list.retain(|(n, _)| n != &p.name);
        list.push((p.name.clone(), value));
        Ok(())
    }
}

fn source(v: &ParamValue) -> Source {
    match v {
        ParamValue::Request { location, name } => {
            Source::Request(location.value, name.value.clone())
        }
        ParamValue::Constant(c) => Source::Constant(c.value.clone()),
        ParamValue::System(s) => Source::System(match s {
            SystemValue::ClientIp => System::ClientIp,
            SystemValue::RequestId => System::RequestId,
            SystemValue::Stage => System::Stage,
            SystemValue::Service => System::Service,
            SystemValue::Route => System::Route,
            SystemValue::AppKey => System::AppKey,
            SystemValue::AppName => System::AppName,
            SystemValue::RequestTime => System::RequestTime,
            SystemValue::Claim(c) => System::Claim(c.value.clone()),
            SystemValue::Authorizer(f) => System::Authorizer(f.value.clone()),
        }),
    }
}

/// Why a request's backend parameters cannot be sent.
#[derive(Debug, Clone, PartialEq)]
pub enum Refused {
    /// The parameter's value cannot be a header value: a control character other than tab.
    Unsendable(Param),
    /// The orchestration at this index of [`Shaping::orchestrations`] matched no rule.
    NoRule(usize),
}

/// What the pipeline knows of the request at the action step.
pub struct Known<'a> {
    pub head: RequestHead<'a>,
    /// The route's path variables, decoded.
    pub vars: &'a [(&'a str, String)],
    pub client: Client,
    pub request_id: &'a str,
    pub stage: Option<&'a str>,
    pub service: &'a str,
    pub route: &'a str,
    /// The authenticated app's key and name.
    pub app: Option<(&'a str, &'a str)>,
    pub now_ms: i64,
    pub claims: Option<&'a serde_json::Value>,
    pub authorizer: Option<&'a [(String, String)]>,
}

impl Known<'_> {
    /// A source's value for this request; `None` when absent.
    pub fn value(&self, s: &Source) -> Option<String> {
        match s {
            Source::Constant(c) => Some(c.clone()),
            Source::Request(location, name) => self.frontend(*location, name),
            Source::System(system) => self.system(system),
        }
    }

    pub fn frontend(&self, location: ParamLocation, name: &str) -> Option<String> {
        match location {
            ParamLocation::Path => self
                .vars
                .iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| v.clone()),
            ParamLocation::Header => self.head.header(name).map(str::to_string),
            ParamLocation::Query => form_value(self.head.query()?, name)?,
            ParamLocation::Form => {
                let body = std::str::from_utf8(self.head.body?).ok()?;
                form_value(body, name)?
            }
        }
    }

    fn system(&self, s: &System) -> Option<String> {
        Some(match s {
            System::ClientIp => self.client.to_string(),
            System::RequestId => self.request_id.to_string(),
            System::Stage => self.stage?.to_string(),
            System::Service => self.service.to_string(),
            System::Route => self.route.to_string(),
            System::AppKey => self.app?.0.to_string(),
            System::AppName => self.app?.1.to_string(),
            System::RequestTime => rfc3339(self.now_ms),
            System::Claim(name) => claim_text(self.claims?.get(name)?)?,
            System::Authorizer(field) => self
                .authorizer?
                .iter()
                .find(|(k, _)| k == field)
                .map(|(_, v)| v.clone())?,
        })
    }
}

/// A claim as a parameter value: a string as it is, a number or a boolean as JSON writes it;
/// `null`, arrays and objects are absent (no single value to send).
fn claim_text(v: &serde_json::Value) -> Option<String> {
    match v {
        serde_json::Value::String(s) => Some(s.clone()),
        serde_json::Value::Number(n) => Some(n.to_string()),
        serde_json::Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// The request time as RFC 3339 in UTC, to the second (`2026-12-04T13:05:00Z`).
fn rfc3339(now_ms: i64) -> String {
    jiff::Timestamp::from_millisecond(now_ms)
        .map(|t| t.strftime("%Y-%m-%dT%H:%M:%SZ").to_string())
        .unwrap_or_default()
}

/// One request's backend-request plan: what the gateway adds to, and drops from, what the
/// client sent. Carried by the forward's plan in the `Decision`.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Shaped {
    /// The compiled shaping (what never passes, `backend parameters only`, the response
    /// edits).
    pub shaping: Arc<Shaping>,
    /// Headers the backend receives from the mapping and the orchestrations, ready to send.
    pub headers: Vec<(http::HeaderName, http::HeaderValue)>,
    /// Query parameters the mapping adds (decoded; encoded when the query is written).
    pub query: Vec<(String, String)>,
    /// Path variables the mapping fills for the forward's path template.
    pub path: Vec<(String, String)>,
    /// Which rule of each orchestration gave its parameter (by index in the shaping).
    pub orchestrated: Vec<(usize, Matched)>,
}

impl Shaped {
    /// Whether a client header passes to the backend (`name` in lower case, as
    /// `http::HeaderName` keeps it).
    pub fn passes(&self, name: &str) -> bool {
        let s = &self.shaping;
        !s.drop_headers.iter().any(|d| d == name) && (!s.only || KEPT_WHEN_ONLY.contains(&name))
    }

    /// The backend's query string: the client's parameters that pass, then the mapped ones;
    /// `None` when empty.
    pub fn query_string(&self, client: Option<&str>) -> Option<String> {
        let mut out = String::new();
        if !self.shaping.only {
            for pair in client.unwrap_or("").split('&').filter(|p| !p.is_empty()) {
                let key = pair.split_once('=').map_or(pair, |(k, _)| k);
                let key = decode_component(key).unwrap_or_default();
                if !self.shaping.drop_query.contains(&key) {
                    push_pair(&mut out, pair);
                }
            }
        }
        for (name, value) in &self.query {
            let pair = format!("{}={}", encode_query(name), encode_query(value));
            push_pair(&mut out, &pair);
        }
        (!out.is_empty()).then_some(out)
    }
}

fn push_pair(out: &mut String, pair: &str) {
    if !out.is_empty() {
        out.push('&');
    }
    out.push_str(pair);
}

/// A query component percent-encoded: unreserved characters as they are, the rest `%XX`.
pub fn encode_query(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

impl Shaping {
    /// The statements as compiled, one line each, for the compiled tree's rendering.
    pub fn describe(&self) -> Vec<String> {
        let mut lines: Vec<String> = self
            .params
            .iter()
            .map(|p| format!("{p} ← {}", p.source))
            .collect();
        for (o, p) in self.orchestrations.iter().zip(&self.orchestrated) {
            let rules: Vec<&str> = o.rules.iter().map(|r| r.text.as_str()).collect();
            lines.push(format!(
                "{p} ← orchestrate {} [{}]",
                p.source,
                rules.join("; ")
            ));
        }
        if !self.drop_headers.is_empty() {
            lines.push(format!("drop headers {}", self.drop_headers.join(" ")));
        }
        if !self.drop_query.is_empty() {
            lines.push(format!("drop query {}", self.drop_query.join(" ")));
        }
        if self.only {
            lines.push("backend parameters only".to_string());
        }
        for e in self.response.iter() {
            let value = e.value.as_ref().and_then(|v| v.to_str().ok()).unwrap_or("");
            let line = format!("response header {} {} {value}", e.edit.name(), e.name);
            lines.push(line.trim_end().to_string());
        }
        lines
    }
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Source::Request(location, name) => write!(f, "{location} {name:?}"),
            Source::Constant(c) => write!(f, "constant {c:?}"),
            Source::System(s) => write!(f, "system {s}"),
        }
    }
}

impl fmt::Display for System {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = match self {
            System::ClientIp => "client-ip",
            System::RequestId => "request-id",
            System::Stage => "stage",
            System::Service => "service",
            System::Route => "route",
            System::AppKey => "app-key",
            System::AppName => "app-name",
            System::RequestTime => "request-time",
            System::Claim(c) => return write!(f, "claim {c:?}"),
            System::Authorizer(a) => return write!(f, "authorizer {a:?}"),
        };
        f.write_str(name)
    }
}

impl fmt::Display for Param {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {:?}", self.location.name(), self.name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::request::Arrival;
    use std::net::IpAddr;

    fn shaping(params: Vec<Param>, only: bool) -> Arc<Shaping> {
        let mut s = Shaping {
            params,
            only,
            ..Shaping::default()
        };
        s.drops();
        Arc::new(s)
    }

    fn param(location: UpstreamLocation, name: &str, source: Source) -> Param {
        Param::new(location, name.into(), source)
    }

    fn with_known<R>(uri: &str, headers: &[(&str, &str)], f: impl FnOnce(&Known<'_>) -> R) -> R {
        let uri: http::Uri = uri.parse().unwrap();
        let mut h = http::HeaderMap::new();
        for (k, v) in headers {
            h.append(
                http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                v.parse().unwrap(),
            );
        }
        let arrival = Arrival {
            peer: IpAddr::from([192, 0, 2, 7]),
            tls: false,
            client_cert: false,
        };
        let head = RequestHead::of(
            &http::Method::GET,
            &uri,
            http::Version::HTTP_11,
            &h,
            arrival,
        );
        let vars = [("id", "42".to_string())];
        let claims = serde_json::json!({"sub": "u-1", "level": 3, "roles": ["a"]});
        let k = Known {
            head,
            vars: &vars,
            client: Client::Known(IpAddr::from([192, 0, 2, 7])),
            request_id: "rid-1",
            stage: Some("release"),
            service: "orders",
            route: "GET /orders/{id}",
            app: None,
            now_ms: 1_764_853_500_000,
            claims: Some(&claims),
            authorizer: None,
        };
        f(&k)
    }

    #[test]
    fn a_path_variable_becomes_a_query_parameter_and_the_source_query_is_consumed() {
        let s = shaping(
            vec![
                param(
                    UpstreamLocation::Query,
                    "uid",
                    Source::Request(ParamLocation::Path, "id".into()),
                ),
                param(
                    UpstreamLocation::Header,
                    "X-Tenant",
                    Source::Request(ParamLocation::Query, "tenant".into()),
                ),
            ],
            false,
        );
        let shaped = with_known("/orders/42?tenant=acme&keep=1&uid=forged", &[], |k| {
            s.apply(k)
        })
        .unwrap();
        assert_eq!(
            shaped.headers,
            vec![(
                http::HeaderName::from_static("x-tenant"),
                http::HeaderValue::from_static("acme")
            )]
        );
        assert_eq!(
            shaped
                .query_string(Some("tenant=acme&keep=1&uid=forged"))
                .as_deref(),
            Some("keep=1&uid=42")
        );
    }

    #[test]
    fn a_client_query_parameter_under_a_mapped_name_is_dropped_however_it_is_encoded() {
        let s = shaping(
            vec![param(
                UpstreamLocation::Query,
                "uid",
                Source::Request(ParamLocation::Path, "id".into()),
            )],
            false,
        );
        let client = "u%69d=forged&uid=again&%75id=third&keep=1";
        let shaped = with_known(&format!("/orders/42?{client}"), &[], |k| s.apply(k)).unwrap();
        assert_eq!(
            shaped.query_string(Some(client)).as_deref(),
            Some("keep=1&uid=42")
        );
    }

    #[test]
    fn a_mapped_header_never_carries_what_the_client_sent_even_when_the_source_is_absent() {
        let s = shaping(
            vec![param(
                UpstreamLocation::Header,
                "X-Tenant",
                Source::Request(ParamLocation::Query, "tenant".into()),
            )],
            false,
        );
        let shaped = with_known("/orders/42", &[("x-tenant", "forged")], |k| s.apply(k)).unwrap();
        assert!(shaped.headers.is_empty());
        assert!(!shaped.passes("x-tenant"));
        assert!(shaped.passes("accept"));
    }

    #[test]
    fn system_values_come_from_what_the_pipeline_knows() {
        let s = shaping(
            vec![
                param(
                    UpstreamLocation::Header,
                    "a",
                    Source::System(System::ClientIp),
                ),
                param(
                    UpstreamLocation::Header,
                    "b",
                    Source::System(System::RequestTime),
                ),
                param(
                    UpstreamLocation::Header,
                    "c",
                    Source::System(System::Claim("level".into())),
                ),
                param(
                    UpstreamLocation::Header,
                    "d",
                    Source::System(System::AppKey),
                ),
                param(
                    UpstreamLocation::Header,
                    "e",
                    Source::System(System::Claim("roles".into())),
                ),
            ],
            false,
        );
        let shaped = with_known("/orders/42", &[], |k| s.apply(k)).unwrap();
        let got: Vec<(&str, &str)> = shaped
            .headers
            .iter()
            .map(|(a, b)| (a.as_str(), b.to_str().unwrap()))
            .collect();
        assert_eq!(
            got,
            vec![
                ("a", "192.0.2.7"),
                ("b", "2025-12-04T13:05:00Z"),
                ("c", "3")
            ]
        );
    }

    #[test]
    fn a_decoded_line_break_mapped_into_a_header_is_unsendable() {
        let s = shaping(
            vec![param(
                UpstreamLocation::Header,
                "X-Q",
                Source::Request(ParamLocation::Query, "q".into()),
            )],
            false,
        );
        let got = with_known("/orders/42?q=a%0d%0aX-Admin:%201", &[], |k| s.apply(k));
        assert!(matches!(got, Err(Refused::Unsendable(p)) if p.name == "X-Q"));
    }

    #[test]
    fn parameters_only_passes_the_mapped_query_and_the_body_headers_alone() {
        let s = shaping(
            vec![param(
                UpstreamLocation::Query,
                "q",
                Source::Constant("a b&c".into()),
            )],
            true,
        );
        let shaped = with_known("/orders/42?debug=1", &[], |k| s.apply(k)).unwrap();
        assert_eq!(
            shaped.query_string(Some("debug=1")).as_deref(),
            Some("q=a%20b%26c")
        );
        assert!(shaped.passes("content-type"));
        assert!(!shaped.passes("cookie"));
    }
}
