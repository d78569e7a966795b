//! The compiled decision tree decides exactly like a plain reference interpretation of the AST.
//!
//! `reference` below reads the parsed `ast::File`s directly and answers a request the slow,
//! obvious way the README's pipeline describes it: it never calls into `rulegate::compile` or
//! the private parts of `rulegate::decide` (only the public request helpers `decode_segment`,
//! `decode_component` and `form_value`, the query encoder `upstream::shape::encode_query`, and
//! the shared vocabulary). Routing, in particular, scans *every* route of the service, keeps
//! those published in the stage whose template matches the path, and picks the most specific
//! template by comparing segment kinds left to right (literal > `{var}` > `{rest+}`) — the
//! order that the tree's backtracking walk is documented to produce.
//!
//! A forward's backend request is worked out from the statements alone, without
//! `rulegate::upstream`: the backend parameters in order (a later one of a name wins), then
//! each orchestration's rules in order; the query the client's pairs that pass, then the mapped
//! ones; the mapped headers; whether the backend signs (a backend that hashes the body is
//! given an empty one, through `decide_with_body`).
//!
//! Policies are generated as small models, printed to policy text, parsed with `parse_texts`
//! and compiled; every generated policy is valid by construction (and the test fails if the
//! compiler disagrees). Path segments come from a tiny alphabet with many variables and rest
//! segments, so that routes overlap heavily and the tree has to backtrack.

use std::cmp::Ordering;
use std::fmt;
use std::net::IpAddr;
use std::path::PathBuf;

use http::{HeaderMap, HeaderName, HeaderValue};
use ipnet::IpNet;
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};

use rulegate::compile::{compile, SecretStore};
use rulegate::decide::request::{decode_component, decode_segment, form_value};
use rulegate::decide::{decide, decide_with_body, Decision, Outcome, RequestHead, VirtualEnv};
use rulegate::dialect::Reason;
use rulegate::policy::ast::{self, Segment};
use rulegate::policy::diag::{has_errors, render_human};
use rulegate::policy::parse_texts;
use rulegate::upstream::shape::encode_query;
use rulegate::vocab::{Dialect, Method, ParamLocation, Protocol};

// =============================================================================================
// The reference interpreter
// =============================================================================================

/// What the reference decides: the parts of a `Decision` that are compared.
#[derive(Debug, Clone, PartialEq)]
struct RefDecision {
    dialect: Dialect,
    service: Option<usize>,
    stage: Option<usize>,
    route: Option<usize>,
    outcome: RefOutcome,
}

#[derive(Debug, Clone, PartialEq)]
enum RefOutcome {
    Reject(Reason),
    Respond {
        status: u16,
        body: Vec<u8>,
    },
    Forward {
        backend: usize,
        target: String,
        /// The mapped headers the backend receives (name in lower case, value), sorted.
        headers: Vec<(String, String)>,
        /// Whether the backend signs the request.
        signs: bool,
    },
    /// Anything the reference does not model (token endpoints, a body to read).
    Other(String),
}

fn outcome_of(d: &Decision) -> RefOutcome {
    match &d.outcome {
        Outcome::Reject(r) => RefOutcome::Reject(r.clone()),
        Outcome::Respond(r) => RefOutcome::Respond {
            status: r.status,
            body: r.body.to_vec(),
        },
        Outcome::Forward(f) => {
            let mut headers: Vec<(String, String)> = f.shaped.as_ref().map_or(Vec::new(), |s| {
                let text = |v: &HeaderValue| String::from_utf8_lossy(v.as_bytes()).into_owned();
                s.headers
                    .iter()
                    .map(|(n, v)| (n.as_str().to_string(), text(v)))
                    .collect()
            });
            headers.sort();
            RefOutcome::Forward {
                backend: f.backend,
                target: f.target.clone(),
                headers,
                signs: f.stamp.is_some(),
            }
        }
        other => RefOutcome::Other(format!("{other:?}")),
    }
}

/// The request as the reference reads it.
struct Req<'a> {
    method: &'a str,
    target: &'a str,
    host: Option<&'a str>,
    headers: &'a HeaderMap,
    peer: IpAddr,
    tls: bool,
}

impl Req<'_> {
    /// A header's first value as text; a value that is not visible ASCII counts as absent.
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
    fn path(&self) -> &str {
        match self.target.find('?') {
            Some(i) => &self.target[..i],
            None => self.target,
        }
    }
    fn query(&self) -> Option<&str> {
        self.target.find('?').map(|i| &self.target[i + 1..])
    }
}

/// Huawei's documented defaults, which apply to every dialect.
const DEFAULT_BODY: u64 = 12 << 20;
const DEFAULT_URI: u64 = 32 << 10;
const DEFAULT_HEADER: u64 = 32 << 10;
const DEFAULT_HEADERS: u64 = 128 << 10;

/// Every service of the policy set, in source order (files in load order).
fn services(files: &[ast::File]) -> Vec<&ast::Service> {
    let mut out = Vec::new();
    for f in files {
        for item in &f.items {
            if let ast::TopItem::Service(s) = &item.value {
                out.push(s);
            }
        }
    }
    out
}

fn default_dialect(files: &[ast::File]) -> Dialect {
    for f in files {
        for item in &f.items {
            if let ast::TopItem::DefaultDialect(d) = &item.value {
                return d.value;
            }
        }
    }
    // A policy set whose services all speak one dialect answers unmatched requests in it.
    let mut all: Vec<Dialect> = services(files).iter().map(|s| dialect_of(s)).collect();
    all.sort();
    all.dedup();
    if all.len() == 1 {
        all[0]
    } else {
        Dialect::Huawei
    }
}

fn dialect_of(s: &ast::Service) -> Dialect {
    for item in &s.items {
        if let ast::ServiceItem::Dialect(d) = &item.value {
            return d.value;
        }
    }
    panic!("generated services always name a dialect")
}

fn hosts_of(s: &ast::Service) -> Vec<String> {
    let mut out = Vec::new();
    for item in &s.items {
        if let ast::ServiceItem::Hosts(h) = &item.value {
            out.extend(h.iter().map(|h| h.value.to_ascii_lowercase()));
        }
    }
    out
}

fn protocols_of(s: &ast::Service) -> Vec<Protocol> {
    for item in &s.items {
        if let ast::ServiceItem::Protocols(p) = &item.value {
            let mut out = Vec::new();
            for p in p {
                if !out.contains(&p.value) {
                    out.push(p.value);
                }
            }
            return out;
        }
    }
    vec![Protocol::Http, Protocol::Https]
}

fn stages_of(s: &ast::Service) -> Option<&ast::Stages> {
    s.items.iter().find_map(|i| match &i.value {
        ast::ServiceItem::Stages(st) => Some(st),
        _ => None,
    })
}

/// (body, uri, header, headers) limits of a service.
fn limits_of(s: &ast::Service) -> (u64, u64, u64, u64) {
    let (mut body, mut uri, mut header, mut headers) =
        (DEFAULT_BODY, DEFAULT_URI, DEFAULT_HEADER, DEFAULT_HEADERS);
    for item in &s.items {
        if let ast::ServiceItem::Limits(l) = &item.value {
            for l in l {
                let n = l.size.value.bytes;
                match l.kind.value {
                    ast::LimitKind::Body => body = n,
                    ast::LimitKind::Uri => uri = n,
                    ast::LimitKind::Header => header = n,
                    ast::LimitKind::Headers => headers = n,
                }
            }
        }
    }
    (body, uri, header, headers)
}

fn routes_of(s: &ast::Service) -> Vec<&ast::Route> {
    s.items
        .iter()
        .filter_map(|i| match &i.value {
            ast::ServiceItem::Route(r) => Some(r),
            _ => None,
        })
        .collect()
}

fn backend_index(s: &ast::Service, name: &str) -> usize {
    let names: Vec<&str> = s
        .items
        .iter()
        .filter_map(|i| match &i.value {
            ast::ServiceItem::Backend(b) => Some(b.name.value.as_str()),
            _ => None,
        })
        .collect();
    names
        .iter()
        .position(|n| *n == name)
        .expect("backend exists")
}

/// Client IP rules (allow, deny) of a service or a route, gathered from every statement.
fn ip_rules(items: impl Iterator<Item = IpItem>) -> (Vec<IpNet>, Vec<IpNet>) {
    let (mut allow, mut deny) = (Vec::new(), Vec::new());
    for i in items {
        match i {
            IpItem::Allow(v) => allow.extend(v),
            IpItem::Deny(v) => deny.extend(v),
        }
    }
    (allow, deny)
}

enum IpItem {
    Allow(Vec<IpNet>),
    Deny(Vec<IpNet>),
}

fn service_ip_items(s: &ast::Service) -> impl Iterator<Item = IpItem> + '_ {
    s.items.iter().filter_map(|i| match &i.value {
        ast::ServiceItem::AllowIps(v) => Some(IpItem::Allow(v.iter().map(|n| n.value).collect())),
        ast::ServiceItem::DenyIps(v) => Some(IpItem::Deny(v.iter().map(|n| n.value).collect())),
        _ => None,
    })
}

fn route_ip_items(r: &ast::Route) -> impl Iterator<Item = IpItem> + '_ {
    r.items.iter().filter_map(|i| match &i.value {
        ast::RouteItem::AllowIps(v) => Some(IpItem::Allow(v.iter().map(|n| n.value).collect())),
        ast::RouteItem::DenyIps(v) => Some(IpItem::Deny(v.iter().map(|n| n.value).collect())),
        _ => None,
    })
}

/// Deny wins; a non-empty allow list admits only its members. IPv4-mapped IPv6 addresses
/// count as the IPv4 address.
fn admitted(ip: IpAddr, allow: &[IpNet], deny: &[IpNet]) -> bool {
    let ip = match ip {
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => ip,
        },
        v4 => v4,
    };
    if deny.iter().any(|n| n.contains(&ip)) {
        return false;
    }
    allow.is_empty() || allow.iter().any(|n| n.contains(&ip))
}

/// Host: trimmed, port removed, trailing dots removed, lower-case.
fn normalize_host(h: &str) -> String {
    let h = h.trim();
    if h.starts_with('[') {
        if let Some(end) = h.find(']') {
            return h[..=end].to_ascii_lowercase();
        }
    }
    let mut name = h;
    if let Some(colon) = h.rfind(':') {
        if h[colon + 1..].chars().all(|c| c.is_ascii_digit()) {
            name = &h[..colon];
        }
    }
    name.trim_end_matches('.').to_ascii_lowercase()
}

fn valid_host(h: &str) -> bool {
    !h.is_empty()
        && h.len() <= 255
        && h.chars()
            .all(|c| c.is_ascii_alphanumeric() || "-._[]:".contains(c))
}

/// Exact name first, then the longest matching `*.suffix`, then `*`.
fn find_service(all: &[&ast::Service], host: &str) -> Option<usize> {
    for (i, s) in all.iter().enumerate() {
        if hosts_of(s).iter().any(|h| h == host) {
            return Some(i);
        }
    }
    let mut best: Option<(usize, usize)> = None; // (suffix length, service)
    for (i, s) in all.iter().enumerate() {
        for h in hosts_of(s) {
            if let Some(suffix) = h.strip_prefix('*') {
                if suffix.starts_with('.')
                    && host.len() > suffix.len()
                    && host.ends_with(suffix)
                    && best.is_none_or(|(len, _)| suffix.len() > len)
                {
                    best = Some((suffix.len(), i));
                }
            }
        }
    }
    if let Some((_, i)) = best {
        return Some(i);
    }
    all.iter()
        .position(|s| hosts_of(s).iter().any(|h| h == "*"))
}

/// Each variable of a matched template with the (decoded) segments it took.
type Captures = Vec<(String, Vec<String>)>;

/// A template's match against decoded segments.
fn template_match(t: &[Segment], segs: &[String]) -> Option<Captures> {
    match t.split_first() {
        None => segs.is_empty().then(Vec::new),
        Some((Segment::Rest(name), _)) => {
            // one or more segments, not all of them empty
            if segs.iter().any(|s| !s.is_empty()) {
                Some(vec![(name.to_string(), segs.to_vec())])
            } else {
                None
            }
        }
        Some((first, rest_t)) => {
            let (seg, rest_s) = segs.split_first()?;
            match first {
                Segment::Literal(l) if *l == seg.as_str() => template_match(rest_t, rest_s),
                Segment::Var(name) if !seg.is_empty() => {
                    let mut vars = vec![(name.to_string(), vec![seg.clone()])];
                    vars.extend(template_match(rest_t, rest_s)?);
                    Some(vars)
                }
                _ => None,
            }
        }
    }
}

fn rank(s: &Segment) -> u8 {
    match s {
        Segment::Literal(_) => 2,
        Segment::Var(_) => 1,
        Segment::Rest(_) => 0,
    }
}

/// Compare two templates that match the same path: the first segment where their kinds differ
/// decides (literal > `{var}` > `{rest+}`).
fn specificity(a: &ast::PathTemplate, b: &ast::PathTemplate) -> Ordering {
    let ra: Vec<u8> = a.segments().map(|s| rank(&s)).collect();
    let rb: Vec<u8> = b.segments().map(|s| rank(&s)).collect();
    ra.cmp(&rb)
}

thread_local! {
    /// Requests whose winning template was reached only after a more specific branch
    /// dead-ended: the tree had to backtrack.
    static BACKTRACKED: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
}

/// Count the request when some published template is more specific than the winner at the
/// first segment where they differ, and matches the path up to and including that segment.
fn note_backtracking(
    routes: &[&ast::Route],
    stage: Option<&str>,
    segs: &[String],
    best: &ast::PathTemplate,
) {
    let fits = |t: &Segment, s: &String| match t {
        Segment::Literal(l) => *l == s.as_str(),
        Segment::Var(_) => !s.is_empty(),
        Segment::Rest(_) => false,
    };
    let dead_end = routes.iter().filter(|r| published(r, stage)).any(|r| {
        let t: Vec<Segment> = r.path.value.segments().collect();
        let best: Vec<Segment> = best.segments().collect();
        let Some(k) =
            (0..t.len().min(best.len()).min(segs.len())).find(|&k| rank(&t[k]) != rank(&best[k]))
        else {
            return false;
        };
        rank(&t[k]) > rank(&best[k]) && (0..=k).all(|j| fits(&t[j], &segs[j]))
    });
    if dead_end {
        BACKTRACKED.with(|c| c.set(c.get() + 1));
    }
}

fn route_methods(r: &ast::Route) -> Vec<Method> {
    r.methods.iter().map(|m| m.value).collect()
}

/// Explicit method, else for HEAD the GET route, else the ANY route.
fn resolve_method(
    candidates: &[usize],
    routes: &[&ast::Route],
    m: Option<Method>,
) -> Option<usize> {
    let with = |want: Method| {
        candidates
            .iter()
            .copied()
            .find(|&i| route_methods(routes[i]).contains(&want))
    };
    let explicit = match m {
        Some(m) => with(m),
        None => None,
    };
    let head_get = if m == Some(Method::Head) {
        with(Method::Get)
    } else {
        None
    };
    explicit.or(head_get).or_else(|| with(Method::Any))
}

fn published(r: &ast::Route, stage: Option<&str>) -> bool {
    let Some(stage) = stage else { return true };
    for item in &r.items {
        if let ast::RouteItem::Stages(list) = &item.value {
            return list.iter().any(|s| s.value.eq_ignore_ascii_case(stage));
        }
    }
    true
}

/// The declared type as the rejections print it.
fn expected(ty: &Option<ast::Spanned<ast::ParamType>>) -> String {
    fn range<T: fmt::Display>(r: &Option<ast::Range<T>>) -> String {
        match r {
            None => String::new(),
            Some(r) => {
                let lo = r.min.as_ref().map(|v| v.to_string()).unwrap_or_default();
                let hi = r.max.as_ref().map(|v| v.to_string()).unwrap_or_default();
                if lo.is_empty() && hi.is_empty() {
                    String::new()
                } else {
                    format!(" {lo}..{hi}")
                }
            }
        }
    }
    match ty.as_ref().map(|t| &t.value) {
        None => "string".into(),
        Some(ast::ParamType::String { len }) => format!("string{}", range(len)),
        Some(ast::ParamType::Int { range: r }) => format!("int{}", range(r)),
        Some(ast::ParamType::Decimal { range: r }) => format!("decimal{}", range(r)),
        Some(ast::ParamType::Bool) => "bool".into(),
        Some(ast::ParamType::Enum(v)) => {
            let v: Vec<&str> = v.iter().map(|s| s.value.as_str()).collect();
            format!("enum {}", v.join("|"))
        }
    }
}

enum Verdict {
    Ok,
    WrongType,
    OutOfRange,
}

fn in_range<T: PartialOrd>(x: T, r: &Option<ast::Range<T>>) -> Verdict {
    let Some(r) = r else { return Verdict::Ok };
    let low_ok = match &r.min {
        Some(m) => x >= *m,
        None => true,
    };
    let high_ok = match &r.max {
        Some(m) => x <= *m,
        None => true,
    };
    if low_ok && high_ok {
        Verdict::Ok
    } else {
        Verdict::OutOfRange
    }
}

/// Plain decimal notation: an optional minus, digits, optionally a point and digits.
fn plain_decimal(v: &str) -> bool {
    let digits = v.strip_prefix('-').unwrap_or(v);
    let (int, frac) = match digits.split_once('.') {
        Some((i, f)) => (i, Some(f)),
        None => (digits, None),
    };
    let all_digits = |s: &str| !s.is_empty() && s.chars().all(|c| c.is_ascii_digit());
    all_digits(int) && frac.is_none_or(all_digits)
}

fn type_check(ty: &Option<ast::Spanned<ast::ParamType>>, v: &str) -> Verdict {
    match ty.as_ref().map(|t| &t.value) {
        None => Verdict::Ok,
        Some(ast::ParamType::String { len }) => in_range(v.chars().count() as u64, len),
        Some(ast::ParamType::Int { range }) => match v.parse::<i64>() {
            Ok(x) => in_range(x, range),
            Err(_) => Verdict::WrongType,
        },
        Some(ast::ParamType::Decimal { range }) => {
            if !plain_decimal(v) {
                return Verdict::WrongType;
            }
            match v.parse::<f64>() {
                Ok(x) if x.is_finite() => in_range(x, range),
                _ => Verdict::WrongType,
            }
        }
        Some(ast::ParamType::Bool) => {
            if v == "true" || v == "false" {
                Verdict::Ok
            } else {
                Verdict::WrongType
            }
        }
        Some(ast::ParamType::Enum(values)) => {
            if values.iter().any(|x| x.value == v) {
                Verdict::Ok
            } else {
                Verdict::OutOfRange
            }
        }
    }
}

/// Percent-encode one decoded path segment (RFC 3986 unreserved and sub-delims kept).
fn encode(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~!$&'()*+,;=:@".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn mock_outcome(m: &ast::Mock) -> RefOutcome {
    let body = match &m.body {
        None => Vec::new(),
        Some(ast::MockBody::Text(t)) => t.value.as_bytes().to_vec(),
        Some(ast::MockBody::Json(v)) => serde_json::to_vec(v).unwrap(),
    };
    RefOutcome::Respond {
        status: m.status.value,
        body,
    }
}

/// The route's policy blocks, in order.
fn policies(route: &ast::Route) -> impl Iterator<Item = &ast::PolicyBackend> {
    route.items.iter().filter_map(|i| match &i.value {
        ast::RouteItem::Upstream(ast::Upstream::Policy(p)) => Some(p),
        _ => None,
    })
}

/// The action (`mock` or `forward`) of the first policy whose conditions hold (all, or any):
/// a header's first value, a query parameter's decoded value, the peer's address; an absent
/// value holds nothing.
fn policy_action<'r>(
    route: &'r ast::Route,
    req: &Req<'_>,
) -> Option<(&'r ast::PolicyBackend, &'r ast::PolicyItem)> {
    let holds = |c: &ast::Condition| match c {
        ast::Condition::Source(nets) => admitted(
            req.peer,
            &nets.iter().map(|n| n.value).collect::<Vec<_>>(),
            &[],
        ),
        ast::Condition::Value {
            subject,
            name,
            test,
        } => {
            let value = match subject.value {
                ast::Subject::Param(ParamLocation::Header) => {
                    req.header(&name.value).map(String::from)
                }
                ast::Subject::Param(ParamLocation::Query) => req
                    .query()
                    .and_then(|q| form_value(q, &name.value))
                    .flatten(),
                _ => None,
            };
            value.is_some_and(|v| match &test.value {
                ast::ValueTest::Is(x) => x.value == v,
                ast::ValueTest::In(xs) => xs.iter().any(|x| x.value == v),
                ast::ValueTest::Matches(_) => false,
            })
        }
    };
    policies(route).find_map(|p| {
        let mut conditions = p.items.iter().filter_map(|i| match &i.value {
            ast::PolicyItem::When(c) => Some(c),
            _ => None,
        });
        let chosen = if p.any {
            conditions.any(holds)
        } else {
            conditions.all(holds)
        };
        let action = p
            .items
            .iter()
            .map(|i| &i.value)
            .find(|i| matches!(i, ast::PolicyItem::Mock(_) | ast::PolicyItem::Forward(_)));
        action.filter(|_| chosen).map(|a| (p, a))
    })
}

/// A forward writes captured variables into the upstream path (the rewrite's, or all of them
/// when the path is forwarded as sent; any of the route's forwards, its own or a policy's);
/// the first whose value, decoded again any number of
/// times, holds a dot segment (dots only, before any `;`), or — for a one-segment `{var}` —
/// a `/`, `\` or NUL, or that needs more than eight decodings or stops being UTF-8, is refused.
fn exposed_variable(route: &ast::Route, vars: &Captures) -> Option<Reason> {
    let own = route.items.iter().filter_map(|i| match &i.value {
        ast::RouteItem::Forward(f) => Some(f),
        _ => None,
    });
    let chosen = policies(route).flat_map(|p| {
        p.items.iter().filter_map(|i| match &i.value {
            ast::PolicyItem::Forward(f) => Some(f),
            _ => None,
        })
    });
    let forwards: Vec<&ast::Forward> = own.chain(chosen).collect();
    let in_rewrite = |name: &str| {
        forwards.iter().any(|forward| match &forward.path {
            None => true,
            Some(t) => t.value.segments().any(|s| match s {
                Segment::Var(v) | Segment::Rest(v) => v == name,
                Segment::Literal(_) => false,
            }),
        })
    };
    for (name, values) in vars.iter().filter(|(n, _)| in_rewrite(n)) {
        let rest = route
            .path
            .value
            .segments()
            .any(|s| matches!(s, Segment::Rest(v) if v == name));
        if !values.iter().all(|v| forwardable(v.as_bytes(), rest)) {
            return Some(Reason::ParamInvalid {
                location: ParamLocation::Path,
                name: name.clone(),
                expected: if rest {
                    "a path without dot segments".into()
                } else {
                    "a single path segment".into()
                },
            });
        }
    }
    None
}

fn forwardable(value: &[u8], rest: bool) -> bool {
    let mut value = value.to_vec();
    for _ in 0..9 {
        let separator = |b: &u8| *b == b'/' || *b == b'\\';
        if value.contains(&0) || (!rest && value.iter().any(separator)) {
            return false;
        }
        let dots = |piece: &[u8]| {
            let name = piece.split(|b| *b == b';').next().unwrap_or(piece);
            !name.is_empty() && name.iter().all(|b| *b == b'.')
        };
        if value.split(separator).any(dots) {
            return false;
        }
        let next = decode_once(&value);
        if next == value {
            return true;
        }
        if std::str::from_utf8(&next).is_err() {
            return false;
        }
        value = next;
    }
    false
}

/// One lenient percent-decoding: a `%` without two hex digits after it stays.
fn decode_once(s: &[u8]) -> Vec<u8> {
    let hex = |b: u8| (b as char).to_digit(16).map(|d| d as u8);
    let mut out = Vec::new();
    let mut i = 0;
    while i < s.len() {
        if s[i] == b'%' && i + 2 < s.len() {
            if let (Some(h), Some(l)) = (hex(s[i + 1]), hex(s[i + 2])) {
                out.push(h * 16 + l);
                i += 3;
                continue;
            }
        }
        out.push(s[i]);
        i += 1;
    }
    out
}

/// Decide with the reference interpretation.
fn reference(files: &[ast::File], req: &Req<'_>) -> RefDecision {
    let all = services(files);
    let mut d = RefDecision {
        dialect: default_dialect(files),
        service: None,
        stage: None,
        route: None,
        outcome: RefOutcome::Other("undecided".into()),
    };
    let outcome = reference_steps(&all, req, &mut d);
    d.outcome = outcome;
    d
}

fn reference_steps(all: &[&ast::Service], req: &Req<'_>, d: &mut RefDecision) -> RefOutcome {
    use RefOutcome::Reject;

    // 1. sanity, with the limits of the service the Host names (defaults without one)
    let host = req.host.map(normalize_host);
    let service_index = host.as_deref().and_then(|h| find_service(all, h));
    if let Some(i) = service_index {
        d.dialect = dialect_of(all[i]);
    }
    let (mut body_limit, uri_limit, header_limit, headers_limit) = match service_index {
        Some(i) => limits_of(all[i]),
        None => (DEFAULT_BODY, DEFAULT_URI, DEFAULT_HEADER, DEFAULT_HEADERS),
    };
    if req.target.len() as u64 > uri_limit {
        return Reject(Reason::UriTooLarge);
    }
    let mut total = 0u64;
    for (name, value) in req.headers.iter() {
        let size = (name.as_str().len() + value.as_bytes().len()) as u64;
        if size > header_limit {
            return Reject(Reason::HeaderTooLarge);
        }
        total += size;
    }
    if total > headers_limit {
        return Reject(Reason::HeadersTooLarge);
    }
    let host = match host {
        Some(h) if valid_host(&h) => h,
        _ => return Reject(Reason::BadRequest),
    };
    if !req.target.starts_with('/') {
        return Reject(Reason::BadRequest);
    }

    // 2. service
    let Some(si) = service_index else {
        return Reject(Reason::NoHost { host });
    };
    d.service = Some(si);
    let service = all[si];

    // path segments, decoded
    let raw_path = req.path();
    let mut segments = Vec::new();
    if raw_path != "/" {
        for s in raw_path[1..].split('/') {
            match decode_segment(s) {
                Some(d) if d == "." || d == ".." => return Reject(Reason::BadRequest),
                Some(s) => segments.push(s.into_owned()),
                None => return Reject(Reason::BadRequest),
            }
        }
    }

    // stage
    let mut path = raw_path.to_string();
    let mut stage_name: Option<String> = None;
    if let Some(st) = stages_of(service) {
        let names: Vec<&str> = st.names.iter().map(|n| n.value.as_str()).collect();
        match &st.from {
            ast::StageFrom::Header(h) => match req.header(&h.value) {
                None => {
                    let default = match &st.default {
                        Some(n) => names
                            .iter()
                            .position(|x| x.eq_ignore_ascii_case(&n.value))
                            .unwrap(),
                        None => 0,
                    };
                    d.stage = Some(default);
                    stage_name = Some(names[default].to_string());
                }
                Some(v) => match names.iter().position(|n| n.eq_ignore_ascii_case(v.trim())) {
                    Some(i) => {
                        d.stage = Some(i);
                        stage_name = Some(names[i].to_string());
                    }
                    None => {
                        return Reject(Reason::NoStage {
                            stage: v.to_string(),
                            from_path: false,
                        })
                    }
                },
            },
            ast::StageFrom::Path => {
                let first = segments.first().cloned().unwrap_or_default();
                match names.iter().position(|n| n.eq_ignore_ascii_case(&first)) {
                    Some(i) => {
                        d.stage = Some(i);
                        stage_name = Some(names[i].to_string());
                        segments.remove(0);
                        // strip the first raw segment from the path
                        let after_slash = &raw_path[1..];
                        path = match after_slash.find('/') {
                            Some(j) => after_slash[j..].to_string(),
                            None => "/".to_string(),
                        };
                    }
                    None => {
                        let first_raw = raw_path[1..].split('/').next().unwrap_or("");
                        return Reject(Reason::NoStage {
                            stage: format!("/{first_raw}"),
                            from_path: true,
                        });
                    }
                }
            }
        }
    }

    // route: scan every route, keep the published ones that match, take the most specific
    let routes = routes_of(service);
    let mut matching: Vec<(usize, Captures)> = Vec::new();
    for (i, r) in routes.iter().enumerate() {
        if !published(r, stage_name.as_deref()) {
            continue;
        }
        let template: Vec<Segment> = r.path.value.segments().collect();
        if let Some(vars) = template_match(&template, &segments) {
            matching.push((i, vars));
        }
    }
    let Some(best) = matching
        .iter()
        .map(|(i, _)| &routes[*i].path.value)
        .max_by(|a, b| specificity(a, b))
        .cloned()
    else {
        return Reject(Reason::NoRoute {
            uri: raw_path.to_string(),
        });
    };
    note_backtracking(&routes, stage_name.as_deref(), &segments, &best);
    let same_shape: Vec<usize> = matching
        .iter()
        .filter(|(i, _)| specificity(&routes[*i].path.value, &best) == Ordering::Equal)
        .map(|(i, _)| *i)
        .collect();

    // method, or the method a CORS preflight asks about
    let method = Method::parse(req.method).filter(|m| *m != Method::Any);
    let mut preflight = method == Some(Method::Options)
        && req.header("origin").is_some()
        && !same_shape
            .iter()
            .any(|&i| route_methods(routes[i]).contains(&Method::Options));
    let mut wanted = method;
    if preflight {
        match req
            .header("access-control-request-method")
            .and_then(Method::parse)
        {
            Some(m) => wanted = Some(m),
            None => preflight = false,
        }
    }
    let Some(ri) = resolve_method(&same_shape, &routes, wanted) else {
        return Reject(Reason::MethodNotAllowed {
            method: req.method.to_string(),
            uri: raw_path.to_string(),
        });
    };
    d.route = Some(ri);
    let route = routes[ri];
    let vars = &matching.iter().find(|(i, _)| *i == ri).unwrap().1;
    if let Some(refused) = exposed_variable(route, vars) {
        return Reject(refused);
    }

    // 3. protocol
    let used = if req.tls {
        Protocol::Https
    } else {
        Protocol::Http
    };
    let service_protocols = protocols_of(service);
    let mut allowed = service_protocols.clone();
    for item in &route.items {
        if let ast::RouteItem::Protocols(p) = &item.value {
            allowed.clear();
            for p in p {
                if service_protocols.contains(&p.value) && !allowed.contains(&p.value) {
                    allowed.push(p.value);
                }
            }
        }
    }
    if !allowed.contains(&used) {
        return Reject(Reason::ProtocolNotAllowed { used, allowed });
    }

    // 4. CORS (no generated route has `cors`)
    let has_cors = route
        .items
        .iter()
        .any(|i| matches!(i.value, ast::RouteItem::Cors(_)));
    assert!(!has_cors, "the reference does not model cors");
    if preflight {
        return if dialect_of(service) == Dialect::Tencent {
            Reject(Reason::CrossOriginWithoutCors {
                uri: raw_path.to_string(),
            })
        } else {
            Reject(Reason::MethodNotAllowed {
                method: req.method.to_string(),
                uri: raw_path.to_string(),
            })
        };
    }
    if dialect_of(service) == Dialect::Tencent {
        if let Some(origin) = req.header("origin") {
            let scheme = if req.tls { "https" } else { "http" };
            let own = format!("{scheme}://{}", req.host.unwrap_or(""));
            if !origin.eq_ignore_ascii_case(&own) {
                return Reject(Reason::CrossOriginWithoutCors {
                    uri: raw_path.to_string(),
                });
            }
        }
    }

    // 5. client IP: the service's rules, then the route's
    let (allow, deny) = ip_rules(service_ip_items(service));
    if !admitted(req.peer, &allow, &deny) {
        return Reject(Reason::ClientIpDenied);
    }
    let (allow, deny) = ip_rules(route_ip_items(route));
    if !admitted(req.peer, &allow, &deny) {
        return Reject(Reason::ClientIpDenied);
    }

    // 6. websocket handshake
    if route
        .items
        .iter()
        .any(|i| matches!(i.value, ast::RouteItem::WebSocket))
    {
        if req.header("sec-websocket-key").is_none() {
            return Reject(Reason::WebSocketKeyMissing);
        }
        if req.header("sec-websocket-version").is_none() {
            return Reject(Reason::WebSocketVersionMissing);
        }
    }

    // 8. parameters: path, header, query; declaration order within each
    let params: Vec<&ast::Param> = route
        .items
        .iter()
        .filter_map(|i| match &i.value {
            ast::RouteItem::Param(p) => Some(p),
            _ => None,
        })
        .collect();
    for location in [
        ParamLocation::Path,
        ParamLocation::Header,
        ParamLocation::Query,
        ParamLocation::Form,
    ] {
        for p in params.iter().filter(|p| p.location.value == location) {
            let name = &p.name.value;
            // None: absent; Some(None): present but not text
            let value: Option<Option<String>> = match location {
                ParamLocation::Path => vars
                    .iter()
                    .find(|(k, _)| k == name)
                    .map(|(_, segs)| Some(segs.join("/"))),
                ParamLocation::Header => req
                    .headers
                    .get(name.as_str())
                    .map(|v| v.to_str().ok().map(|s| s.trim().to_string())),
                ParamLocation::Query => req.query().and_then(|q| form_value(q, name)),
                ParamLocation::Form => panic!("the reference does not model form parameters"),
            };
            let verdict = match &value {
                None if p.required => {
                    return Reject(Reason::ParamMissing {
                        location,
                        name: name.clone(),
                    })
                }
                None => Verdict::Ok,
                Some(None) => Verdict::WrongType,
                Some(Some(v)) => type_check(&p.ty, v),
            };
            match verdict {
                Verdict::Ok => {}
                Verdict::WrongType => {
                    return Reject(Reason::ParamInvalid {
                        location,
                        name: name.clone(),
                        expected: expected(&p.ty),
                    })
                }
                Verdict::OutOfRange => {
                    return Reject(Reason::ParamOutOfRange {
                        location,
                        name: name.clone(),
                        expected: expected(&p.ty),
                    })
                }
            }
        }
    }

    // 9. body size by Content-Length
    for item in &route.items {
        if let ast::RouteItem::Limits(l) = &item.value {
            for l in l {
                if l.kind.value == ast::LimitKind::Body {
                    body_limit = l.size.value.bytes;
                }
            }
        }
    }
    if let Some(n) = req
        .header("content-length")
        .and_then(|v| v.trim().parse::<u64>().ok())
    {
        if n > body_limit {
            return Reject(Reason::BodyTooLarge);
        }
    }

    // 11. the action: the first policy whose conditions hold, else the route's
    action(service, route, vars, &path, req)
}

/// Step 11: a policy's action (a mock, or a forward of the path as sent), else the route's.
fn action(
    service: &ast::Service,
    route: &ast::Route,
    vars: &Captures,
    path: &str,
    req: &Req<'_>,
) -> RefOutcome {
    // the route's backend-request statements, then the chosen policy's
    let mut upstream: Vec<&ast::Upstream> = route
        .items
        .iter()
        .filter_map(|i| match &i.value {
            ast::RouteItem::Upstream(u) if !matches!(u, ast::Upstream::Policy(_)) => Some(u),
            _ => None,
        })
        .collect();
    if let Some((policy, action)) = policy_action(route, req) {
        return match action {
            ast::PolicyItem::Mock(m) => mock_outcome(m),
            ast::PolicyItem::Forward(f) => {
                upstream.extend(policy.items.iter().filter_map(|i| match &i.value {
                    ast::PolicyItem::Upstream(u) => Some(u),
                    _ => None,
                }));
                forward_outcome(service, f, &upstream, vars, path.to_string(), req)
            }
            _ => RefOutcome::Other("no modelled policy action".into()),
        };
    }
    for item in &route.items {
        match &item.value {
            ast::RouteItem::Mock(m) => return mock_outcome(m),
            ast::RouteItem::Forward(f) => {
                let target = match &f.path {
                    None => path.to_string(),
                    Some(t) => rewritten(&t.value, vars),
                };
                return forward_outcome(service, f, &upstream, vars, target, req);
            }
            _ => {}
        }
    }
    RefOutcome::Other("no modelled action".into())
}

/// Whether the backend a forward names signs what it receives.
fn backend_signs(s: &ast::Service, name: &str) -> bool {
    s.items.iter().any(|i| match &i.value {
        ast::ServiceItem::Backend(b) if b.name.value == name => b
            .items
            .iter()
            .any(|i| matches!(i.value, ast::BackendItem::Sign(_))),
        _ => false,
    })
}

/// A forward to `path`: with no backend-request statements the client's query passes as sent;
/// with them, the backend request they describe, or why it cannot be sent.
fn forward_outcome(
    service: &ast::Service,
    f: &ast::Forward,
    upstream: &[&ast::Upstream],
    vars: &Captures,
    path: String,
    req: &Req<'_>,
) -> RefOutcome {
    let mut target = path;
    let mut headers = Vec::new();
    if upstream.is_empty() {
        if let Some(q) = req.query() {
            target.push('?');
            target.push_str(q);
        }
    } else {
        let mapped = match mapped(upstream, vars, req) {
            Ok(m) => m,
            Err(reason) => return RefOutcome::Reject(reason),
        };
        let query = backend_query(upstream, &mapped.query, req);
        if !query.is_empty() {
            target.push('?');
            target.push_str(&query.join("&"));
        }
        headers = mapped.headers;
        for (name, _) in &mut headers {
            name.make_ascii_lowercase();
        }
        headers.sort();
    }
    RefOutcome::Forward {
        backend: backend_index(service, &f.backend.value),
        target,
        headers,
        signs: backend_signs(service, &f.backend.value),
    }
}

/// The backend parameters a forward's statements give: (name, value) per location.
#[derive(Default)]
struct Mapped {
    headers: Vec<(String, String)>,
    query: Vec<(String, String)>,
}

impl Mapped {
    /// A later mapping of a name replaces an earlier one (header names without case); a header
    /// value with a control character (tab aside) is refused, named by its source.
    fn set(
        &mut self,
        location: ast::UpstreamLocation,
        name: &str,
        value: String,
        blame: (ParamLocation, String),
    ) -> Result<(), Reason> {
        let list = match location {
            ast::UpstreamLocation::Header => {
                if value.chars().any(|c| c != '\t' && (c < ' ' || c == '\x7f')) {
                    return Err(Reason::ParamInvalid {
                        location: blame.0,
                        name: blame.1,
                        expected: "a value without control characters".into(),
                    });
                }
                self.headers.retain(|(n, _)| !n.eq_ignore_ascii_case(name));
                &mut self.headers
            }
            ast::UpstreamLocation::Query => {
                self.query.retain(|(n, _)| n != name);
                &mut self.query
            }
            ast::UpstreamLocation::Path => panic!("the reference does not model backend path"),
        };
        list.push((name.to_string(), value));
        Ok(())
    }
}

/// A frontend parameter's value: a path variable's decoded segments, a query parameter's
/// decoded value (undecodable counts as absent), a header's first value.
fn frontend(req: &Req<'_>, vars: &Captures, location: ParamLocation, name: &str) -> Option<String> {
    match location {
        ParamLocation::Path => vars
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.join("/")),
        ParamLocation::Query => req.query().and_then(|q| form_value(q, name)).flatten(),
        ParamLocation::Header => req.header(name).map(String::from),
        ParamLocation::Form => None,
    }
}

/// Every backend parameter, in order, then every orchestration, in order.
fn mapped(upstream: &[&ast::Upstream], vars: &Captures, req: &Req<'_>) -> Result<Mapped, Reason> {
    let mut m = Mapped::default();
    for u in upstream {
        let ast::Upstream::Param(p) = u else { continue };
        let (value, blame) = match &p.value.value {
            ast::ParamValue::Request { location, name } => (
                frontend(req, vars, location.value, &name.value),
                (location.value, name.value.clone()),
            ),
            ast::ParamValue::Constant(c) => (
                Some(c.value.clone()),
                (ParamLocation::Header, p.name.value.clone()),
            ),
            ast::ParamValue::System(_) => panic!("the reference does not model system values"),
        };
        if let Some(value) = value {
            m.set(p.location.value, &p.name.value, value, blame)?;
        }
    }
    for u in upstream {
        let ast::Upstream::Orchestrate(o) = u else {
            continue;
        };
        let from = (o.from_location.value, o.from.value.clone());
        let value = frontend(req, vars, from.0, &from.1);
        let out = orchestrated(o, value).ok_or_else(|| Reason::OrchestrationFailed {
            location: from.0,
            name: from.1.clone(),
        })?;
        if let Some(v) = out {
            m.set(o.into_location.value, &o.into.value, v, from)?;
        }
    }
    Ok(m)
}

/// An orchestration's new value: `Some(None)` omits it, `None` means no rule maps the value.
/// The rules run in order; a `pre` rule's output is what the rules after it see.
fn orchestrated(o: &ast::Orchestration, value: Option<String>) -> Option<Option<String>> {
    use ast::OrchestrationKind as K;
    let first = |want: fn(&K) -> Option<&ast::Spanned<String>>| {
        o.rules
            .iter()
            .find_map(|r| want(&r.value.kind))
            .map(|v| v.value.clone())
    };
    let empty = first(|k| match k {
        K::Empty(v) => Some(v),
        _ => None,
    });
    let default = first(|k| match k {
        K::Default(v) => Some(v),
        _ => None,
    });
    let Some(mut seen) = value.filter(|v| !v.is_empty()) else {
        return Some(empty);
    };
    for r in &o.rules {
        let out = match &r.value.kind {
            K::List { values, to } => values
                .iter()
                .any(|x| x.value == seen)
                .then(|| to.value.clone()),
            K::Range { range, to } => {
                let within = |n: i64| {
                    range.value.min.is_none_or(|m| m <= n) && range.value.max.is_none_or(|m| n <= m)
                };
                seen.parse::<i64>()
                    .ok()
                    .filter(|n| within(*n))
                    .map(|_| to.value.clone())
            }
            K::Head(n) => Some(seen.chars().take(n.value as usize).collect()),
            K::Tail(n) => {
                let chars: Vec<char> = seen.chars().collect();
                Some(
                    chars[chars.len().saturating_sub(n.value as usize)..]
                        .iter()
                        .collect(),
                )
            }
            K::Hash | K::HashRange { .. } => panic!("the reference does not model hashes"),
            K::Empty(_) | K::Default(_) => None,
        };
        match out {
            Some(v) if r.value.pre => seen = v,
            Some(v) => return Some(Some(v)),
            None => {}
        }
    }
    default.map(Some)
}

/// The backend's query pairs: the client's that pass (as sent), then the mapped ones encoded.
/// A client pair passes unless `backend parameters only` is written, or its decoded name is
/// removed, mapped to, or consumed as a mapping's source.
fn backend_query(
    upstream: &[&ast::Upstream],
    mapped: &[(String, String)],
    req: &Req<'_>,
) -> Vec<String> {
    use ast::UpstreamLocation as L;
    let dropped = |key: &str| {
        upstream.iter().any(|u| match u {
            ast::Upstream::Param(p) => {
                (p.location.value == L::Query && p.name.value == key)
                    || matches!(&p.value.value, ast::ParamValue::Request { location, name }
                        if location.value == ParamLocation::Query && name.value == key)
            }
            ast::Upstream::Remove { location, name } => {
                location.value == L::Query && name.value == key
            }
            ast::Upstream::Orchestrate(o) => {
                o.into_location.value == L::Query && o.into.value == key
            }
            _ => false,
        })
    };
    let only = upstream
        .iter()
        .any(|u| matches!(u, ast::Upstream::ParametersOnly));
    let mut pairs = Vec::new();
    if !only {
        for pair in req
            .query()
            .unwrap_or("")
            .split('&')
            .filter(|p| !p.is_empty())
        {
            let key = pair.split_once('=').map_or(pair, |(k, _)| k);
            if !dropped(&decode_component(key).unwrap_or_default()) {
                pairs.push(pair.to_string());
            }
        }
    }
    for (name, value) in mapped {
        pairs.push(format!("{}={}", encode_query(name), encode_query(value)));
    }
    pairs
}

/// A forward path template with the captured variables written in.
fn rewritten(t: &ast::PathTemplate, vars: &Captures) -> String {
    if t.is_root() {
        return "/".to_string();
    }
    let value = |name: &str| -> Vec<String> {
        vars.iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
            .unwrap_or_default()
    };
    let mut out = String::new();
    for s in t.segments() {
        out.push('/');
        match s {
            Segment::Literal(l) => out.push_str(l),
            // a variable expands to the segments it captured (one for `{var}`, all of them
            // for a rest variable, however the forward path writes it), each encoded on its own
            Segment::Var(v) | Segment::Rest(v) => {
                let parts: Vec<String> = value(v).iter().map(|s| encode(s)).collect();
                out.push_str(&parts.join("/"));
            }
        }
    }
    out
}

// =============================================================================================
// Generated policies
// =============================================================================================

const LITERALS: [&str; 3] = ["a", "b", "c"];
const HOST_POOL: [&str; 6] = ["a.test", "*.test", "*", "x.a.test", "*.a.test", "B.test"];
const STAGE_POOL: [&str; 3] = ["release", "TEST", "a"];
const STAGE_HEADERS: [&str; 2] = ["X-Stage", "x-env"];
const CIDRS: [&str; 6] = [
    "10.0.0.0/8",
    "10.1.0.0/16",
    "192.168.0.0/16",
    "203.0.113.7",
    "2001:db8::/32",
    "::1",
];
const DIALECTS: [&str; 3] = ["huawei", "tencent", "jdcloud"];
const HEADER_PARAMS: [&str; 2] = ["X-H0", "x-h1"];
const QUERY_PARAMS: [&str; 2] = ["q0", "q1"];
const TYPES: [&str; 14] = [
    "",
    "string",
    "string 1..3",
    "string 2..",
    "int",
    "int 1..10",
    "int -5..",
    "int ..0",
    "decimal",
    "decimal 0.5..2.5",
    "decimal ..-1.25",
    "bool",
    "enum \"a\" \"b\" \"7\"",
    "string ..0",
];
const STATUSES: [u16; 6] = [200, 201, 204, 404, 418, 503];
const METHOD_SETS: [&[&str]; 10] = [
    &["GET"],
    &["ANY"],
    &["HEAD"],
    &["POST"],
    &["GET", "HEAD"],
    &["GET", "POST"],
    &["PUT", "DELETE"],
    &["OPTIONS"],
    &["ANY"],
    &["GET"],
];

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Seg {
    Lit(u8),
    Var,
    Rest,
}

#[derive(Debug, Clone)]
struct RawRoute {
    methods: u8,
    segs: Vec<Seg>,
    stages: Option<u8>,
    protocols: Option<u8>,
    allow: u8,
    deny: u8,
    params: Vec<(u8, u8, bool, u8)>,
    body_limit: u8,
    websocket: bool,
    action: (bool, u8, u8, u8),
    /// Policy backends: (conditions, a, b, c), and a backend-request statement of the
    /// policy's own (for a forward).
    policies: Vec<RawPolicyBackend>,
    /// The route's backend-request statements (for a forward).
    shape: Option<RawShape>,
}

/// A policy backend: (conditions, a, b, c) (see [`policy_text`]), and a backend-request
/// statement of its own.
type RawPolicyBackend = ((u8, u8, u8, u8), Option<u8>);

/// Backend-request statements: parameters and removals (see [`shape_lines`]), an
/// orchestration (into a header?, its rules as bits), `backend parameters only`.
#[derive(Debug, Clone)]
struct RawShape {
    items: Vec<u8>,
    orchestrate: Option<(bool, u8)>,
    only: bool,
}

#[derive(Debug, Clone)]
struct RawService {
    dialect: u8,
    protocols: u8,
    stages: Option<(u8, bool, Option<u8>, bool)>,
    limits: u8,
    allow: u8,
    deny: u8,
    backends: u8,
    /// How each backend signs: 0 not, 1 `sign hmac`, 2 `sign basic`.
    signs: (u8, u8),
    routes: Vec<RawRoute>,
}

#[derive(Debug, Clone)]
struct RawPolicy {
    default_dialect: u8,
    host_owners: Vec<u8>,
    split_files: bool,
    services: Vec<RawService>,
}

fn seg_strategy() -> impl Strategy<Value = Seg> {
    prop_oneof![
        6 => (0u8..3).prop_map(Seg::Lit),
        3 => Just(Seg::Var),
        1 => Just(Seg::Rest),
    ]
}

fn mask_strategy() -> impl Strategy<Value = u8> {
    prop_oneof![8 => Just(0u8), 1 => 1u8..64]
}

fn route_strategy() -> impl Strategy<Value = RawRoute> {
    (
        (
            0u8..METHOD_SETS.len() as u8,
            prop::collection::vec(seg_strategy(), 0..=4),
            prop::option::weighted(0.3, 1u8..8),
            prop::option::weighted(0.1, 0u8..3),
        ),
        (
            mask_strategy(),
            mask_strategy(),
            prop::collection::vec(
                (0u8..3, 0u8..4, any::<bool>(), 0u8..TYPES.len() as u8),
                0..=4,
            ),
            prop_oneof![5 => Just(0u8), 1 => 1u8..3],
            prop::bool::weighted(0.1),
            (any::<bool>(), any::<u8>(), any::<u8>(), any::<u8>()),
        ),
        prop_oneof![
            1 => Just(Vec::new()),
            1 => prop::collection::vec(
                (
                    (0u8..4, any::<u8>(), any::<u8>(), any::<u8>()),
                    prop::option::weighted(0.5, 0u8..5),
                ),
                1..=2,
            ),
        ],
        prop::option::weighted(0.7, shape_strategy()),
    )
        .prop_map(
            |(
                (methods, segs, stages, protocols),
                (allow, deny, params, body_limit, websocket, action),
                policies,
                shape,
            )| {
                RawRoute {
                    methods,
                    segs,
                    stages,
                    protocols,
                    allow,
                    deny,
                    params,
                    body_limit,
                    websocket,
                    action,
                    policies,
                    shape,
                }
            },
        )
}

fn service_strategy() -> impl Strategy<Value = RawService> {
    (
        0u8..3,
        prop_oneof![6 => 0u8..2, 1 => 2u8..4],
        prop::option::weighted(
            0.6,
            (
                1u8..8,
                any::<bool>(),
                prop::option::of(0u8..3),
                any::<bool>(),
            ),
        ),
        prop_oneof![3 => Just(0u8), 1 => 1u8..16],
        mask_strategy(),
        mask_strategy(),
        (1u8..=2, (0u8..3, 0u8..3)),
        prop::collection::vec(route_strategy(), 1..=12),
    )
        .prop_map(
            |(dialect, protocols, stages, limits, allow, deny, (backends, signs), routes)| {
                RawService {
                    dialect,
                    protocols,
                    stages,
                    limits,
                    allow,
                    deny,
                    backends,
                    signs,
                    routes,
                }
            },
        )
}

fn shape_strategy() -> impl Strategy<Value = RawShape> {
    (
        // a header mapped from query `x`, which may carry a decoded line feed, half the time
        prop::collection::vec(prop_oneof![1 => Just(3u8), 3 => 0u8..8], 1..=3),
        prop::option::weighted(0.5, (any::<bool>(), any::<u8>())),
        prop::bool::weighted(0.15),
    )
        .prop_map(|(items, orchestrate, only)| RawShape {
            items,
            orchestrate,
            only,
        })
}

fn policy_strategy() -> impl Strategy<Value = RawPolicy> {
    (
        0u8..3,
        prop::collection::vec(0u8..3, HOST_POOL.len()),
        any::<bool>(),
        prop::collection::vec(service_strategy(), 1..=2),
    )
        .prop_map(
            |(default_dialect, host_owners, split_files, services)| RawPolicy {
                default_dialect,
                host_owners,
                split_files,
                services,
            },
        )
}

/// A policy backend: conditions on a header, a query parameter or the source (all, or any of
/// a header and the source), then a mock or a forward of the path as sent.
fn policy_text(i: usize, ((kind, a, b, c), extra): RawPolicyBackend, backends: u8) -> String {
    let value = |x: u8| quote(VALUES[x as usize % VALUES.len()]);
    let header = format!(
        "when header {} is {}",
        quote(HEADER_PARAMS[a as usize % 2]),
        value(b)
    );
    let source = format!("when source {}", CIDRS[b as usize % CIDRS.len()]);
    let conditions = match kind {
        0 => header,
        1 => format!(
            "when query {} in {} {}",
            quote(QUERY_PARAMS[a as usize % 2]),
            value(b),
            value(c)
        ),
        2 => source,
        _ => format!("{header}; {source}"),
    };
    let mode = if kind == 3 && c % 2 == 0 { " any" } else { "" };
    let action = match (c % 3, extra) {
        (0, _) => format!("mock {}", STATUSES[a as usize % STATUSES.len()]),
        (_, None) => format!("forward b{}", c % backends),
        (_, Some(e)) => format!("{}; forward b{}", POLICY_SHAPES[e as usize], c % backends),
    };
    format!("policy p{i}{mode} {{ {conditions}; {action} }}")
}

/// A policy's own backend-request statements: after the route's, so a later mapping wins.
const POLICY_SHAPES: [&str; 5] = [
    "backend header \"X-M\" constant \"p\"",
    "backend query \"q\" from query \"x\"",
    "remove query \"x\"",
    "backend parameters only",
    "backend header \"X-M\" from query \"o\"",
];

/// A route's backend-request statements, valid by construction: the mapped names (`q`,
/// `X-M`) never clash with the orchestration's (`X-O`, `oq`); the orchestration has a rule
/// that gives a value after any `pre`, and `default` last.
fn shape_lines(sh: &RawShape, vars: &[(String, bool)]) -> Vec<String> {
    let from_path = match vars.iter().find(|(_, rest)| !rest) {
        Some((v, _)) => format!("path {}", quote(v)),
        None => "query \"x\"".to_string(),
    };
    let mut out: Vec<String> = sh
        .items
        .iter()
        .map(|i| match i {
            0 => format!("backend query \"q\" from {from_path}"),
            1 => "backend query \"q\" from query \"x\"".to_string(),
            2 => "backend query \"q\" from header \"X-H\"".to_string(),
            3 => "backend header \"X-M\" from query \"x\"".to_string(),
            4 => "backend header \"X-M\" constant \"c\"".to_string(),
            5 => "remove query \"x\"".to_string(),
            6 => "remove header \"X-H\"".to_string(),
            _ => "backend header \"X-M\" from header \"X-H\"".to_string(),
        })
        .collect();
    if sh.only {
        out.push("backend parameters only".into());
    }
    if let Some((header, bits)) = sh.orchestrate {
        let into = match header {
            true => "header \"X-O\"",
            false => "query \"oq\"",
        };
        let bit = |n: u8| bits & (1 << n) != 0;
        let (pre, empty, default) = (bit(0), bit(3), bit(4));
        let range = bit(2);
        // a rule that gives a value, after the `pre` (which `default` is not)
        let list = bit(1) || (!range && (pre || !default));
        let mut rules = Vec::new();
        if pre {
            rules.push("pre head 1");
        }
        let (list, range) = (
            list.then_some("list \"a\" \"b\" to \"v\""),
            range.then_some("range 1..5 to \"r\""),
        );
        match bit(5) {
            false => rules.extend(list.into_iter().chain(range)),
            true => rules.extend(range.into_iter().chain(list)),
        }
        if empty {
            rules.push("empty to \"e\"");
        }
        if default {
            rules.push("default \"d\"");
        }
        out.push(format!("orchestrate query \"o\" into {into} {{"));
        out.extend(rules.iter().map(|r| format!("    {r}")));
        out.push("}".into());
    }
    out
}

fn quote(s: &str) -> String {
    format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
}

fn masked<'a>(mask: u8, pool: &[&'a str]) -> Vec<&'a str> {
    pool.iter()
        .enumerate()
        .filter(|(i, _)| mask & (1 << i) != 0)
        .map(|(_, s)| *s)
        .collect()
}

/// What request generation needs to know about a printed policy, to aim requests at its routes.
#[derive(Debug, Default)]
struct PolicyInfo {
    services: Vec<ServiceInfo>,
}

#[derive(Debug, Default)]
struct ServiceInfo {
    host: String,
    stage_names: Vec<String>,
    /// `None`: no stages; `Some(None)`: from the path; `Some(Some(h))`: from header `h`.
    stage_from: Option<Option<String>>,
    /// Each route's segments and methods.
    routes: Vec<(Vec<Seg>, Vec<&'static str>)>,
}

/// Print a raw policy as valid policy text: one text per file.
fn print_policy(p: &RawPolicy) -> (Vec<String>, PolicyInfo) {
    let mut info = PolicyInfo::default();
    let mut files = vec![format!(
        "default dialect {}\n",
        DIALECTS[p.default_dialect as usize]
    )];
    for (si, s) in p.services.iter().enumerate() {
        let mut out = String::new();
        let mut sinfo = ServiceInfo {
            host: format!("s{si}.only"),
            ..ServiceInfo::default()
        };
        let line = |out: &mut String, depth: usize, text: &str| {
            out.push_str(&"    ".repeat(depth));
            out.push_str(text);
            out.push('\n');
        };
        line(&mut out, 0, &format!("service s{si} {{"));
        line(
            &mut out,
            1,
            &format!("dialect {}", DIALECTS[s.dialect as usize]),
        );
        let mut hosts: Vec<String> = HOST_POOL
            .iter()
            .zip(&p.host_owners)
            .filter(|(_, o)| **o as usize == si + 1)
            .map(|(h, _)| quote(h))
            .collect();
        hosts.push(quote(&format!("s{si}.only")));
        line(&mut out, 1, &format!("hosts {}", hosts.join(" ")));
        let service_protocols: Vec<&str> = match s.protocols {
            0 => vec!["http", "https"],
            1 => {
                line(&mut out, 1, "protocols http https");
                vec!["http", "https"]
            }
            2 => {
                line(&mut out, 1, "protocols https");
                vec!["https"]
            }
            _ => {
                line(&mut out, 1, "protocols http");
                vec!["http"]
            }
        };
        let stage_names: Vec<&str> = match s.stages {
            None => Vec::new(),
            Some((mask, from_header, default, header_name)) => {
                let names = masked(mask, &STAGE_POOL);
                let from = if from_header {
                    let mut from = format!(
                        "from header {}",
                        quote(STAGE_HEADERS[usize::from(header_name)])
                    );
                    if let Some(d) = default {
                        // a default in a different case from its declaration
                        let d = names[d as usize % names.len()];
                        from.push_str(&format!(" default {}", d.to_ascii_lowercase()));
                    }
                    from
                } else {
                    "from path".to_string()
                };
                line(&mut out, 1, &format!("stages {} {from}", names.join(" ")));
                sinfo.stage_names = names.iter().map(|n| n.to_string()).collect();
                sinfo.stage_from =
                    Some(from_header.then(|| STAGE_HEADERS[usize::from(header_name)].to_string()));
                names
            }
        };
        if s.limits != 0 {
            let all = [
                ("uri", "64B"),
                ("header", "200B"),
                ("headers", "1KiB"),
                ("body", "2KiB"),
            ];
            let items: Vec<String> = all
                .iter()
                .enumerate()
                .filter(|(i, _)| s.limits & (1 << i) != 0)
                .map(|(_, (k, v))| format!("{k} {v}"))
                .collect();
            line(&mut out, 1, &format!("limits {{ {} }}", items.join("; ")));
        }
        if s.allow != 0 {
            line(
                &mut out,
                1,
                &format!("allow ips {}", masked(s.allow, &CIDRS).join(" ")),
            );
        }
        if s.deny != 0 {
            line(
                &mut out,
                1,
                &format!("deny ips {}", masked(s.deny, &CIDRS).join(" ")),
            );
        }
        for b in 0..s.backends {
            line(&mut out, 1, &format!("backend b{b} {{"));
            let port = 9000 + u16::from(b);
            line(&mut out, 2, &format!("targets \"http://127.0.0.1:{port}\""));
            match [s.signs.0, s.signs.1][usize::from(b)] {
                0 => {}
                1 => line(
                    &mut out,
                    2,
                    &format!("sign hmac key \"k{b}\" secret env \"S{b}\""),
                ),
                _ => line(&mut out, 2, "sign basic key \"gateway\" secret env \"SB\""),
            }
            line(&mut out, 1, "}");
        }

        // Routes, dropping each method that another route already takes on the same shape
        // in a common stage (a compile error).
        let stage_count = stage_names.len().max(1);
        let mut taken: std::collections::HashSet<(Vec<Seg>, &str, usize)> = Default::default();
        for r in &s.routes {
            let mut segs = Vec::new();
            for seg in &r.segs {
                segs.push(*seg);
                if *seg == Seg::Rest {
                    break;
                }
            }
            let stages: Vec<usize> = match (r.stages, stage_names.is_empty()) {
                (Some(mask), false) => {
                    let picked: Vec<usize> = (0..stage_names.len())
                        .filter(|i| mask & (1 << i) != 0)
                        .collect();
                    if picked.is_empty() {
                        vec![0]
                    } else {
                        picked
                    }
                }
                _ => (0..stage_count).collect(),
            };
            let mut methods: Vec<&str> = Vec::new();
            for m in METHOD_SETS[r.methods as usize] {
                let free = stages
                    .iter()
                    .all(|st| !taken.contains(&(segs.clone(), *m, *st)));
                if free {
                    methods.push(m);
                }
            }
            if methods.is_empty() {
                continue;
            }
            for m in &methods {
                for st in &stages {
                    taken.insert((segs.clone(), m, *st));
                }
            }

            let mut vars: Vec<(String, bool)> = Vec::new(); // (name, is rest)
            let mut path = String::new();
            for (i, seg) in segs.iter().enumerate() {
                match seg {
                    Seg::Lit(l) => path.push_str(&format!("/{}", LITERALS[*l as usize])),
                    Seg::Var => {
                        path.push_str(&format!("/{{v{i}}}"));
                        vars.push((format!("v{i}"), false));
                    }
                    Seg::Rest => {
                        path.push_str(&format!("/{{r{i}+}}"));
                        vars.push((format!("r{i}"), true));
                    }
                }
            }
            if path.is_empty() {
                path.push('/');
            }
            line(
                &mut out,
                1,
                &format!("route {} {} {{", methods.join(" "), quote(&path)),
            );
            sinfo.routes.push((segs.clone(), methods.clone()));
            if r.stages.is_some() && !stage_names.is_empty() {
                let names: Vec<&str> = stages.iter().map(|i| stage_names[*i]).collect();
                line(&mut out, 2, &format!("stages {}", names.join(" ")));
            }
            if let Some(p) = r.protocols {
                let list = match p {
                    0 => service_protocols.clone(),
                    1 => vec![service_protocols[0]],
                    _ => vec![*service_protocols.last().unwrap()],
                };
                line(&mut out, 2, &format!("protocols {}", list.join(" ")));
            }
            if r.allow != 0 {
                line(
                    &mut out,
                    2,
                    &format!("allow ips {}", masked(r.allow, &CIDRS).join(" ")),
                );
            }
            if r.deny != 0 {
                line(
                    &mut out,
                    2,
                    &format!("deny ips {}", masked(r.deny, &CIDRS).join(" ")),
                );
            }
            if r.websocket && methods == ["GET"] {
                line(&mut out, 2, "websocket");
            }
            let mut declared: Vec<(&str, String)> = Vec::new();
            for (loc, name, required, ty) in &r.params {
                let (loc_name, name, required) = match loc {
                    0 if !vars.is_empty() => {
                        ("path", vars[*name as usize % vars.len()].0.clone(), true)
                    }
                    0 | 1 => (
                        "header",
                        HEADER_PARAMS[*name as usize % 2].to_string(),
                        *required,
                    ),
                    _ => (
                        "query",
                        QUERY_PARAMS[*name as usize % 2].to_string(),
                        *required,
                    ),
                };
                let key = (loc_name, name.to_ascii_lowercase());
                if declared.contains(&key) {
                    continue;
                }
                declared.push(key);
                let kw = if required { "require" } else { "optional" };
                let ty = TYPES[*ty as usize];
                line(
                    &mut out,
                    2,
                    format!("{kw} {loc_name} {} {ty}", quote(&name)).trim_end(),
                );
            }
            match r.body_limit {
                0 => {}
                1 => line(&mut out, 2, "limits { body 100B }"),
                _ => line(&mut out, 2, "limits { body 1KiB }"),
            }
            for (i, policy) in r.policies.iter().enumerate() {
                line(&mut out, 2, &policy_text(i, *policy, s.backends));
            }
            let (mock, a, b, c) = r.action;
            if let (false, Some(shape)) = (mock, &r.shape) {
                for text in shape_lines(shape, &vars) {
                    line(&mut out, 2, &text);
                }
            }
            if mock {
                let status = STATUSES[a as usize % STATUSES.len()];
                let body = match b % 3 {
                    0 => String::new(),
                    1 => format!(" text {}", quote("hello \"there\"")),
                    _ => format!(" json {{\"ok\": true, \"n\": [1, 2.5, {c}], \"s\": \"x\"}}"),
                };
                line(&mut out, 2, &format!("mock {status}{body}"));
            } else {
                let backend = a % s.backends;
                let template = match b % 4 {
                    0 => String::new(),
                    1 => " path \"/\"".to_string(),
                    k => {
                        let mut order: Vec<&(String, bool)> = vars.iter().collect();
                        if k == 3 {
                            order.reverse();
                        }
                        let n = order.len();
                        let mut t = String::from("/up");
                        for (i, (name, _)) in order.iter().enumerate() {
                            // the last may be written as a rest, any other as a plain variable
                            if i + 1 == n && c % 2 == 1 {
                                t.push_str(&format!("/{{{name}+}}"));
                            } else {
                                t.push_str(&format!("/{{{name}}}"));
                            }
                        }
                        format!(" path {}", quote(&t))
                    }
                };
                line(&mut out, 2, &format!("forward b{backend}{template}"));
            }
            line(&mut out, 1, "}");
        }
        line(&mut out, 0, "}");
        if p.split_files {
            files.push(out);
        } else {
            files[0].push_str(&out);
        }
        info.services.push(sinfo);
    }
    (files, info)
}

// =============================================================================================
// Generated requests
// =============================================================================================

const METHODS: [&str; 7] = ["GET", "HEAD", "POST", "PUT", "OPTIONS", "DELETE", "BREW"];
const REQ_HOSTS: [&str; 14] = [
    "a.test",
    "A.Test:8080",
    "x.a.test",
    "y.x.a.test",
    "b.test",
    "B.TEST.",
    "z.test",
    "test",
    "other.org",
    "s0.only",
    "s1.only:443",
    "[::1]:80",
    "bad host",
    "",
];
const PREFIXES: [&str; 6] = ["", "release", "RELEASE", "test", "a", "prod"];
const REQ_SEGMENTS: [&str; 16] = [
    "a", "b", "c", "a", "b", "7", "-3", "1.5", "%61", "%zz", "%2F", "", "x", "%2e%2e", "..", ".",
];
const VALUES: [&str; 22] = [
    "",
    "a",
    "b",
    "7",
    "-3",
    "10",
    "11",
    "0",
    "1.5",
    "2.50",
    "-2",
    "true",
    "false",
    "abcd",
    "99999999999999999999",
    "+4",
    "1e3",
    "%zz",
    "a+b",
    "%61",
    " 5 ",
    "NaN",
];
const QUERY_NAMES: [&str; 4] = ["q0", "q1", "Q0", "x"];
const STAGE_VALUES: [&str; 7] = ["release", "Release", " test ", "TEST", "a", "prod", ""];
const CONTENT_LENGTHS: [&str; 7] = ["0", "50", "500", "5000", "13000000", "abc", " 20 "];
const PEERS: [&str; 8] = [
    "10.0.0.1",
    "10.1.2.3",
    "192.168.1.5",
    "203.0.113.7",
    "127.0.0.1",
    "::1",
    "::ffff:10.1.0.9",
    "2001:db8::5",
];
const ORIGINS: [&str; 3] = ["http://a.test", "https://evil.example", "http://A.TEST"];
const REQUEST_METHODS: [&str; 5] = ["GET", "POST", "ANY", "BREW", "get"];

/// A generated request, owning everything `RequestHead` borrows.
#[derive(Clone)]
struct GenRequest {
    method: &'static str,
    host: Option<String>,
    target: String,
    headers: HeaderMap,
    peer: IpAddr,
    tls: bool,
}

impl GenRequest {
    /// The request as the compiled pipeline reads it.
    fn head(&self) -> RequestHead<'_> {
        RequestHead {
            version: http::Version::HTTP_11,
            method: self.method,
            target: &self.target,
            host: self.host.as_deref(),
            host_from: Default::default(),
            headers: &self.headers,
            peer: self.peer,
            tls: self.tls,
            client_cert: false,
            body: None,
        }
    }
}

impl fmt::Debug for GenRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let short = |s: &str| {
            if s.len() > 80 {
                format!("{}…({} bytes)", &s[..40], s.len())
            } else {
                s.to_string()
            }
        };
        write!(
            f,
            "{} {} host={:?} peer={} tls={}",
            self.method,
            short(&self.target),
            self.host,
            self.peer,
            self.tls
        )?;
        for (k, v) in &self.headers {
            write!(
                f,
                " [{k}: {:?}]",
                short(&String::from_utf8_lossy(v.as_bytes()))
            )?;
        }
        Ok(())
    }
}

/// Values for the variables of an aimed request's path.
const VAR_VALUES: [&str; 15] = [
    "a", "b", "c", "7", "-3", "1.5", "x", "abcd", "0", "10", "true", "%61", "%2F", "%zz", "",
];

#[derive(Debug, Clone)]
struct RawRequest {
    /// Aim at a route: (service, route, values for its variables); else a random path.
    aim: Option<(u8, u8, Vec<u8>)>,
    method: u8,
    host: Option<u8>,
    prefix: u8,
    segs: Vec<u8>,
    trailing_slash: bool,
    query: Option<Vec<(u8, u8, bool)>>,
    stage_header: Option<(bool, u8)>,
    param_headers: Vec<(u8, u8)>,
    content_length: Option<u8>,
    big: u8,
    cors: (Option<u8>, Option<u8>),
    websocket: u8,
    peer: u8,
    tls: bool,
    /// Sources the backend-request statements read: (query `x`, query `o`, header `X-H`;
    /// a value of [`MAPPED_VALUES`]).
    mapped: Vec<(u8, u8)>,
}

/// Values of the mapped sources: around the orchestration rules (`list "a" "b"`,
/// `range 1..5`, `pre head 1`), empty, and a decoded line feed no header can carry.
const MAPPED_VALUES: [&str; 10] = ["", "a", "1", "9", "b", "19", "ab", "%0A", "a%0Db", "a%zz"];

fn request_strategy() -> impl Strategy<Value = RawRequest> {
    (
        prop::option::weighted(
            0.75,
            (
                any::<u8>(),
                any::<u8>(),
                prop::collection::vec(0u8..VAR_VALUES.len() as u8, 5),
            ),
        ),
        (
            0u8..METHODS.len() as u8,
            prop::option::weighted(
                0.97,
                prop_oneof![3 => 0u8..5, 1 => 0u8..REQ_HOSTS.len() as u8],
            ),
            prop_oneof![2 => Just(0u8), 1 => 1u8..PREFIXES.len() as u8],
            prop::collection::vec(
                prop_oneof![4 => 0u8..6, 1 => 0u8..REQ_SEGMENTS.len() as u8],
                0..=4,
            ),
            prop::bool::weighted(0.1),
            prop::option::weighted(
                0.6,
                prop::collection::vec(
                    (0u8..4, 0u8..VALUES.len() as u8, prop::bool::weighted(0.1)),
                    0..=3,
                ),
            ),
        ),
        (
            prop::option::weighted(0.4, (any::<bool>(), 0u8..8)),
            prop::collection::vec((0u8..3, 0u8..VALUES.len() as u8), 0..=2),
            prop::option::weighted(0.2, 0u8..CONTENT_LENGTHS.len() as u8),
            prop_oneof![12 => Just(0u8), 1 => 1u8..7],
            (
                prop::option::weighted(0.15, 0u8..ORIGINS.len() as u8),
                prop::option::weighted(0.5, 0u8..REQUEST_METHODS.len() as u8),
            ),
            0u8..4,
            0u8..PEERS.len() as u8,
            any::<bool>(),
        ),
        prop::collection::vec(
            (
                0u8..3,
                prop_oneof![3 => 0u8..MAPPED_VALUES.len() as u8, 1 => 7u8..9],
            ),
            1..=3,
        ),
    )
        .prop_map(
            |(
                aim,
                (method, host, prefix, segs, trailing_slash, query),
                (stage_header, param_headers, content_length, big, cors, websocket, peer, tls),
                mapped,
            )| RawRequest {
                aim,
                method,
                host,
                prefix,
                segs,
                trailing_slash,
                query,
                stage_header,
                param_headers,
                content_length,
                big,
                cors,
                websocket,
                peer,
                tls,
                mapped,
            },
        )
}

fn build_request(r: &RawRequest, info: &PolicyInfo) -> GenRequest {
    let mut path = String::new();
    let mut host = r.host.map(|h| REQ_HOSTS[h as usize].to_string());
    let mut stage_header: Option<(String, Vec<u8>)> = None;
    let aimed = r.aim.as_ref().and_then(|(si, ri, values)| {
        let service = &info.services[*si as usize % info.services.len()];
        let route = service
            .routes
            .get(*ri as usize % service.routes.len().max(1))?;
        Some((service, route, values))
    });
    let mut method = METHODS[r.method as usize];
    if let Some((service, (route, methods), values)) = aimed {
        host = Some(service.host.clone());
        // mostly a method the route takes
        if r.method < 4 {
            let m = methods[r.method as usize % methods.len()];
            if m != "ANY" {
                method = m;
            }
        }
        match &service.stage_from {
            None => {}
            Some(None) => {
                // mostly a stage of the service, in varying case
                let n = service.stage_names.len();
                let name = match r.prefix {
                    5 => "prod".to_string(),
                    k if k % 2 == 1 => service.stage_names[k as usize % n].to_ascii_uppercase(),
                    k => service.stage_names[k as usize % n].clone(),
                };
                path.push('/');
                path.push_str(&name);
            }
            Some(Some(h)) => {
                if let Some((_, v)) = r.stage_header {
                    let n = service.stage_names.len();
                    let value = if (v as usize) < 2 * n {
                        service.stage_names[v as usize % n].to_ascii_lowercase()
                    } else {
                        STAGE_VALUES[v as usize % STAGE_VALUES.len()].to_string()
                    };
                    stage_header = Some((h.clone(), value.into_bytes()));
                }
            }
        }
        for (i, seg) in route.iter().enumerate() {
            let value = |k: usize| VAR_VALUES[values[k % values.len()] as usize];
            path.push('/');
            match seg {
                Seg::Lit(l) => path.push_str(LITERALS[*l as usize]),
                Seg::Var => path.push_str(value(i)),
                Seg::Rest => {
                    path.push_str(value(i));
                    if values[(i + 1) % values.len()] % 2 == 0 {
                        path.push('/');
                        path.push_str(value(i + 2));
                    }
                }
            }
        }
    } else {
        if r.prefix != 0 {
            path.push('/');
            path.push_str(PREFIXES[r.prefix as usize]);
        }
        for s in &r.segs {
            path.push('/');
            path.push_str(REQ_SEGMENTS[*s as usize]);
        }
    }
    if r.trailing_slash || path.is_empty() {
        path.push('/');
    }
    let mut target = path;
    let mut pairs: Vec<String> = Vec::new();
    if let Some(q) = &r.query {
        for (name, value, bare) in q {
            let name = QUERY_NAMES[*name as usize];
            if *bare {
                pairs.push(name.to_string());
            } else {
                pairs.push(format!(
                    "{name}={}",
                    VALUES[*value as usize].replace(' ', "+")
                ));
            }
        }
    }
    match r.big {
        5 => pairs.push(format!("pad={}", "x".repeat(33 << 10))),
        6 => pairs.push(format!("pad={}", "x".repeat(60))),
        _ => {}
    }
    for (which, value) in &r.mapped {
        let value = MAPPED_VALUES[*value as usize];
        match which {
            0 => pairs.push(format!("x={value}")),
            1 => pairs.push(format!("o={value}")),
            _ => {}
        }
    }
    if r.query.is_some() || !pairs.is_empty() {
        target.push('?');
        target.push_str(&pairs.join("&"));
    }

    let mut headers = HeaderMap::new();
    let mut add = |name: &str, value: &[u8]| {
        headers.append(
            HeaderName::from_bytes(name.as_bytes()).unwrap(),
            HeaderValue::from_bytes(value).unwrap(),
        );
    };
    if let Some((name, value)) = &stage_header {
        add(name, value);
    } else if let Some((which, v)) = r.stage_header {
        let name = STAGE_HEADERS[usize::from(which)];
        if v as usize == STAGE_VALUES.len() {
            add(name, b"r\xe9lease"); // not visible ASCII
        } else {
            add(name, STAGE_VALUES[v as usize].as_bytes());
        }
    }
    for (name, value) in &r.param_headers {
        let name = ["x-h0", "X-H1", "x-other"][*name as usize];
        add(name, VALUES[*value as usize].as_bytes());
    }
    for (which, value) in &r.mapped {
        if *which == 2 {
            add("x-h", MAPPED_VALUES[*value as usize].as_bytes());
        }
    }
    if let Some(cl) = r.content_length {
        add("content-length", CONTENT_LENGTHS[cl as usize].as_bytes());
    }
    match r.big {
        1 => add("x-big", "y".repeat(150).as_bytes()),
        2 => add("x-big", "y".repeat(33 << 10).as_bytes()),
        3 => {
            for _ in 0..5 {
                add("x-big", "y".repeat(30 << 10).as_bytes());
            }
        }
        4 => add("x-big", "y".repeat(900).as_bytes()),
        _ => {}
    }
    if let Some(o) = r.cors.0 {
        add("origin", ORIGINS[o as usize].as_bytes());
        if let Some(m) = r.cors.1 {
            add(
                "access-control-request-method",
                REQUEST_METHODS[m as usize].as_bytes(),
            );
        }
    }
    if r.websocket & 1 != 0 {
        add("sec-websocket-key", b"dGhlIHNhbXBsZSBub25jZQ==");
    }
    if r.websocket & 2 != 0 {
        add("sec-websocket-version", b"13");
    }
    GenRequest {
        method,
        host,
        target,
        headers,
        peer: PEERS[r.peer as usize].parse().unwrap(),
        tls: r.tls,
    }
}

// =============================================================================================
// The comparison
// =============================================================================================

struct Checked {
    files: Vec<ast::File>,
    snapshot: rulegate::compile::Snapshot,
}

/// Parse and compile policy texts; a generated policy must compile without errors.
fn load(texts: &[String]) -> Result<Checked, String> {
    let loaded = parse_texts(
        texts
            .iter()
            .enumerate()
            .map(|(i, t)| (format!("p{i}.policy"), t.clone(), PathBuf::new()))
            .collect(),
    );
    let compiled = compile(&loaded, &AnySecret);
    if has_errors(&compiled.diagnostics) {
        return Err(format!(
            "a generated policy does not compile:\n{}\n{}",
            texts.join("\n# ---- next file\n"),
            render_human(&loaded.sources, &compiled.diagnostics, false)
        ));
    }
    Ok(Checked {
        files: loaded.files.into_iter().map(|(_, f)| f).collect(),
        snapshot: compiled.snapshot.expect("no errors, so a snapshot"),
    })
}

/// The compiled pipeline's decision; a backend that signs the body gets an empty one.
fn decided(c: &Checked, r: &GenRequest) -> Decision {
    let env = VirtualEnv::new(1_700_000_000_000);
    let d = decide(&c.snapshot, &r.head(), &env);
    if !matches!(d.outcome, Outcome::NeedBody { .. }) {
        return d;
    }
    decide_with_body(&c.snapshot, &mut r.head(), b"", &env)
}

/// Every secret a generated policy names, without touching the process environment.
struct AnySecret;

impl SecretStore for AnySecret {
    fn env(&self, name: &str) -> Option<String> {
        Some(format!("secret of {name}"))
    }

    fn file(&self, path: &std::path::Path) -> std::io::Result<Vec<u8>> {
        Ok(path.display().to_string().into_bytes())
    }
}

/// Run both interpretations on one request; `Err` describes a difference.
fn compare(c: &Checked, r: &GenRequest) -> Result<(), String> {
    let d = decided(c, r);
    let got = RefDecision {
        dialect: d.dialect,
        service: d.service,
        stage: d.stage,
        route: d.route,
        outcome: outcome_of(&d),
    };
    let req = Req {
        method: r.method,
        target: &r.target,
        host: r.host.as_deref(),
        headers: &r.headers,
        peer: r.peer,
        tls: r.tls,
    };
    let want = reference(&c.files, &req);
    if got == want {
        Ok(())
    } else {
        Err(format!(
            "request: {r:?}\n decide:    {got:?}\n reference: {want:?}\n trace:\n{}",
            d.trace
                .iter()
                .map(|s| format!("   {s}"))
                .collect::<Vec<_>>()
                .join("\n")
        ))
    }
}

/// Tallies over a run, to show the generators reach every outcome.
#[derive(Default, Debug)]
struct Tally {
    requests: usize,
    outcomes: std::collections::BTreeMap<String, usize>,
}

impl Tally {
    fn add(&mut self, c: &Checked, r: &GenRequest) {
        self.requests += 1;
        let req = Req {
            method: r.method,
            target: &r.target,
            host: r.host.as_deref(),
            headers: &r.headers,
            peer: r.peer,
            tls: r.tls,
        };
        let outcome = reference(&c.files, &req).outcome;
        for (extra, reached) in [
            (
                "orchestration refused",
                matches!(
                    &outcome,
                    RefOutcome::Reject(Reason::OrchestrationFailed { .. })
                ),
            ),
            (
                "unsendable header",
                matches!(&outcome, RefOutcome::Reject(Reason::ParamInvalid { expected, .. })
                    if expected.contains("control characters")),
            ),
            (
                "shaped forward",
                matches!(&outcome, RefOutcome::Forward { headers, .. } if !headers.is_empty()),
            ),
            (
                "signed forward",
                matches!(&outcome, RefOutcome::Forward { signs: true, .. }),
            ),
        ] {
            if reached {
                *self.outcomes.entry(extra.into()).or_default() += 1;
            }
        }
        let kind = match outcome {
            RefOutcome::Reject(r) => {
                let s = format!("{r:?}");
                format!("reject {}", s.split([' ', '(']).next().unwrap_or(""))
            }
            RefOutcome::Respond { .. } => "mock".into(),
            RefOutcome::Forward { .. } => "forward".into(),
            RefOutcome::Other(o) => o,
        };
        *self.outcomes.entry(kind).or_default() += 1;
        if chosen_by_a_policy(c, r) {
            *self.outcomes.entry("by a policy".into()).or_default() += 1;
        }
    }
}

/// Whether the compiled pipeline's action step took a policy's action.
fn chosen_by_a_policy(c: &Checked, r: &GenRequest) -> bool {
    decided(c, r)
        .trace
        .last()
        .is_some_and(|s| s.name == "action" && s.detail.contains(" (policy p"))
}

const POLICIES: u32 = 300;
const REQUESTS_PER_POLICY: usize = 20;

#[test]
fn compiled_tree_decides_like_the_reference() {
    // REFERENCE_POLICIES=N runs a longer search.
    let cases = std::env::var("REFERENCE_POLICIES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(POLICIES);
    let mut runner = TestRunner::new(Config {
        cases,
        failure_persistence: None,
        ..Config::default()
    });
    let tally = std::cell::RefCell::new(Tally::default());
    let strategy = (
        policy_strategy(),
        prop::collection::vec(request_strategy(), REQUESTS_PER_POLICY),
    );
    let result = runner.run(&strategy, |(policy, requests)| {
        let (texts, info) = print_policy(&policy);
        let checked = load(&texts).map_err(TestCaseError::fail)?;
        for raw in &requests {
            let r = build_request(raw, &info);
            tally.borrow_mut().add(&checked, &r);
            if let Err(diff) = compare(&checked, &r) {
                return Err(TestCaseError::fail(format!(
                    "{diff}\npolicy:\n{}",
                    texts.join("\n# ---- next file\n")
                )));
            }
        }
        Ok(())
    });
    let tally = tally.into_inner();
    let backtracked = BACKTRACKED.with(|c| c.get());
    eprintln!(
        "{} requests compared ({} of them needed backtracking); outcomes (shrinking included): {:#?}",
        tally.requests, backtracked / 2, tally.outcomes
    );
    if let Err(e) = result {
        panic!("{e}");
    }
    // The generators must reach the interesting outcomes, or the comparison proves little.
    assert!(backtracked > 0, "no request made the tree backtrack");
    for kind in [
        "mock",
        "forward",
        "reject NoRoute",
        "reject MethodNotAllowed",
        "reject NoStage",
        "reject ParamInvalid",
        "reject ParamOutOfRange",
        "reject ParamMissing",
        "reject ClientIpDenied",
        "reject ProtocolNotAllowed",
        "reject BadRequest",
        "reject HeaderTooLarge",
        "reject UriTooLarge",
        "reject BodyTooLarge",
        "by a policy",
        "orchestration refused",
        "unsendable header",
        "shaped forward",
        "signed forward",
    ] {
        assert!(
            tally.outcomes.get(kind).copied().unwrap_or(0) > 0,
            "no generated request ended in {kind}"
        );
    }
}

// =============================================================================================
// Focused cases
// =============================================================================================

fn decide_one(policy: &str, method: &'static str, target: &str) -> (Decision, RefDecision) {
    let checked = load(&[policy.to_string()]).unwrap();
    let r = GenRequest {
        method,
        host: Some("a.test".to_string()),
        target: target.to_string(),
        headers: HeaderMap::new(),
        peer: "10.0.0.1".parse().unwrap(),
        tls: false,
    };
    let head = r.head();
    let d = decide(&checked.snapshot, &head, &VirtualEnv::new(0));
    let req = Req {
        method: r.method,
        target: &r.target,
        host: r.host.as_deref(),
        headers: &r.headers,
        peer: r.peer,
        tls: r.tls,
    };
    let want = reference(&checked.files, &req);
    (d, want)
}

/// The README's own example of backtracking, and the left-to-right rule on overlapping
/// templates whose more specific branch dead-ends deep down.
#[test]
fn backtracking_picks_the_left_to_right_most_specific_template() {
    let policy = r#"
service s {
    dialect huawei
    hosts "a.test"
    route GET "/a/b/c" { mock 200 text "0" }
    route GET "/a/{x}/d" { mock 200 text "1" }
    route GET "/a/{r+}" { mock 200 text "2" }
    route GET "/{x}/b/{y}/e" { mock 200 text "3" }
    route GET "/{r+}" { mock 200 text "4" }
}
"#;
    for (path, body) in [
        ("/a/b/c", "0"),
        ("/a/b/d", "1"),
        ("/a/b/e", "2"),
        ("/a/b/c/e", "2"),
        ("/z/b/c/e", "3"),
        ("/z/b/c", "4"),
    ] {
        let (d, want) = decide_one(policy, "GET", path);
        let got = outcome_of(&d);
        assert_eq!(got, want.outcome, "{path}");
        assert_eq!(
            got,
            RefOutcome::Respond {
                status: 200,
                body: body.as_bytes().to_vec()
            },
            "{path}"
        );
    }
}

/// Found by `compiled_tree_decides_like_the_reference`. A `{rest+}` capture is joined with `/`
/// and split again when the forward path is rewritten, so a `%2F` *inside* one request segment
/// becomes a real separator upstream: the gateway routed `a%2Fb` as one segment, the backend
/// gets two (and `/%2F` becomes `//`). Rewriting should percent-encode each captured segment on
/// its own, as the reference does (`src/decide/mod.rs`, `rewrite`, the `Segment::Rest` arm).
#[test]
fn encoded_slash_in_rest_capture_stays_encoded() {
    let policy = r#"
service s {
    dialect huawei
    hosts "a.test"
    backend b0 { targets "http://127.0.0.1:9000" }
    route GET "/files/{p+}" { forward b0 path "/store/{p+}" }
}
"#;
    for (path, target) in [
        ("/files/a%2Fb/c", "/store/a%2Fb/c"),
        ("/files/%2F", "/store/%2F"),
    ] {
        let (d, want) = decide_one(policy, "GET", path);
        let expected = RefOutcome::Forward {
            backend: 0,
            target: target.to_string(),
            headers: Vec::new(),
            signs: false,
        };
        assert_eq!(want.outcome, expected, "the reference, {path}");
        assert_eq!(outcome_of(&d), expected, "decide, {path}");
    }
}
