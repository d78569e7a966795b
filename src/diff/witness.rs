//! Witnesses: a request that shows a change, and what each policy answers it.
//!
//! Candidates are built from the route (in both snapshots where it is in both): its host and
//! stage, its first method, its path with a value for each variable, every declared parameter
//! at a value its type admits, then each parameter in turn at another value (the other
//! snapshot's sample, just outside its range, absent), from each address its IP lists name;
//! signed as one of its apps where rulegate can sign (`rulegate test`'s signers). Each is
//! decided by both snapshots on a fresh virtual clock and counters; the first answered
//! differently is the witness. Huawei requests carry `X-Apig-Mode: debug`, so a changed rate
//! shows in its limit headers.

use super::{Change, Class, RouteId};
use crate::check::{Check, ParamCheck, ParamTy};
use crate::compile::{Route, Service, Snapshot, StageSelector};
use crate::decide::{
    decide_with_body, render_response, Arrival, Decision, Outcome, RequestHead, VirtualEnv,
};
use crate::vocab::{Dialect, Method, ParamLocation, Segment};
use std::net::IpAddr;

/// How many candidates a route's witness search tries at most (plus a cross-origin one and
/// one of another method).
const MOST_CANDIDATES: usize = 200;

/// 2026-01-01T00:00:00Z: the clock every witness is decided at.
const NOW_MS: i64 = 1_767_225_600_000;

/// A request, as `explain` takes it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Witness {
    pub method: String,
    pub url: String,
    pub headers: Vec<(String, String)>,
    pub body: String,
    pub client_ip: IpAddr,
    /// The app it is signed as, if any.
    pub signed_as: Option<String>,
    /// The route's auth scheme, when rulegate cannot sign for it (`jwt`, `apikey`, …).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unsigned: Option<&'static str>,
}

/// An answer as the diff shows it: the response (status, headers, body) or the forward
/// (backend, upstream target, headers), the request id masked.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Answer {
    pub summary: String,
}

/// Find a witness for `change`: the first candidate answered differently, else the first
/// candidate (both answers then equal, which the report says).
pub(super) fn find(old: &Snapshot, new: &Snapshot, change: &mut Change) {
    let candidates = match &change.class {
        Class::Routes(ids) => ids
            .iter()
            .flat_map(|id| candidates(old, new, id))
            .collect::<Vec<_>>(),
        Class::Host(host) => host_candidates(host),
        Class::Unrouted => vec![plain("GET", "http://unrouted.invalid/")],
    };
    let mut first = None;
    for w in candidates {
        let (a, b) = (answer(old, &w).0, answer(new, &w).0);
        if a != b {
            change.witness = Some(w);
            (change.old, change.new) = (Some(a), Some(b));
            return;
        }
        first.get_or_insert((w, a, b));
    }
    if let Some((w, a, b)) = first {
        change.witness = Some(w);
        (change.old, change.new) = (Some(a), Some(b));
    }
}

/// What `snap` answers `w`, and the routes it reached: the one that took it, or, for a
/// method no route at its path takes, every route at that path (whose methods decide it).
pub fn answer(snap: &Snapshot, w: &Witness) -> (Answer, Vec<RouteId>) {
    let Some(d) = decided(snap, w) else {
        return (
            Answer {
                summary: "not a request HTTP can carry".into(),
            },
            Vec::new(),
        );
    };
    let routes = match (d.service, d.route) {
        (Some(s), Some(r)) => vec![RouteId::of(&snap.services[s], r)],
        (Some(s), None) => routes_at(&snap.services[s], d.stage, &w.url),
        _ => Vec::new(),
    };
    (summarise(snap, &d), routes)
}

/// Every route at the URL's path in the stage's tree.
fn routes_at(s: &Service, stage: Option<usize>, url: &str) -> Vec<RouteId> {
    let Ok(uri) = url.parse::<http::Uri>() else {
        return Vec::new();
    };
    let path = uri.path();
    let decoded: Option<Vec<std::borrow::Cow<'_, str>>> = match path {
        "/" => Some(Vec::new()),
        p => p[1..]
            .split('/')
            .map(crate::request::head::decode_segment)
            .collect(),
    };
    let Some(mut segments) = decoded else {
        return Vec::new();
    };
    if matches!(s.stages, StageSelector::Path { .. }) && !segments.is_empty() {
        segments.remove(0);
    }
    let Some(tree) = s.trees.get(stage.unwrap_or(0)) else {
        return Vec::new();
    };
    let Some(m) = tree.lookup(&segments) else {
        return Vec::new();
    };
    m.methods
        .methods()
        .map(|(_, r)| RouteId::of(s, r as usize))
        .collect()
}

fn decided(snap: &Snapshot, w: &Witness) -> Option<Decision> {
    let uri: http::Uri = w.url.parse().ok()?;
    let method = http::Method::from_bytes(w.method.as_bytes()).ok()?;
    let mut headers = http::HeaderMap::new();
    for (k, v) in &w.headers {
        headers.append(
            http::HeaderName::from_bytes(k.as_bytes()).ok()?,
            http::HeaderValue::from_str(v).ok()?,
        );
    }
    let arrival = Arrival {
        peer: w.client_ip,
        tls: w.url.starts_with("https:"),
        client_cert: false,
    };
    let mut head = RequestHead::of(&method, &uri, http::Version::HTTP_11, &headers, arrival);
    let env = VirtualEnv::new(NOW_MS);
    Some(decide_with_body(snap, &mut head, w.body.as_bytes(), &env))
}

fn summarise(snap: &Snapshot, d: &Decision) -> Answer {
    let id = d.request_id.to_string();
    let mask = |s: &str| s.replace(&id, "…");
    let mut out = String::new();
    match &d.outcome {
        Outcome::Forward(plan) => {
            let s = &snap.services[d.service.unwrap_or(0)];
            out.push_str(&format!(
                "forward to {}: {}\n",
                s.backends[plan.backend].name, plan.target
            ));
        }
        _ => match render_response(d) {
            Some(r) => {
                out.push_str(&format!("{}\n", r.status));
                let mut headers: Vec<String> = r
                    .headers
                    .iter()
                    .map(|(k, v)| format!("{k}: {}", mask(v)))
                    .collect();
                headers.sort();
                for h in headers {
                    out.push_str(&h);
                    out.push('\n');
                }
                out.push_str(&mask(&String::from_utf8_lossy(&r.body)));
            }
            None => out.push_str("no answer"),
        },
    }
    if matches!(d.outcome, Outcome::Forward(_)) {
        let mut added: Vec<String> = d.headers.iter().map(|(k, v)| format!("{k}: {v}")).collect();
        added.sort();
        for h in added {
            out.push_str(&h);
            out.push('\n');
        }
    }
    Answer {
        summary: out.trim_end().to_string(),
    }
}

fn plain(method: &str, url: &str) -> Witness {
    Witness {
        method: method.into(),
        url: url.into(),
        headers: Vec::new(),
        body: String::new(),
        client_ip: "203.0.113.10".parse().unwrap(),
        signed_as: None,
        unsigned: None,
    }
}

fn host_candidates(host: &str) -> Vec<Witness> {
    let host = match host {
        "*" => "witness.invalid".to_string(),
        h if h.starts_with('.') => format!("w{h}"),
        h => h.to_string(),
    };
    vec![plain("GET", &format!("http://{host}/"))]
}

/// The route's candidates, from whichever snapshots have it.
fn candidates(old: &Snapshot, new: &Snapshot, id: &RouteId) -> Vec<Witness> {
    let versions: Vec<_> = [route_in(new, id), route_in(old, id)]
        .into_iter()
        .flatten()
        .collect();
    let Some(&(snap, s, r)) = versions.first() else {
        return Vec::new();
    };
    let params: Vec<&ParamCheck> = versions
        .iter()
        .flat_map(|(_, _, r)| r.program.iter())
        .filter_map(|c| match c {
            Check::Param(p) => Some(p),
            _ => None,
        })
        .collect();
    let peers = peers(&versions.iter().map(|v| v.2).collect::<Vec<_>>());
    let base = base_values(&params);
    // each parameter in turn at every value either version's type suggests, and absent
    let mut variants = vec![base.clone()];
    for (i, (p, at)) in base.iter().enumerate() {
        let same = |q: &&&ParamCheck| q.location == p.location && q.name == p.name;
        let tried = params.iter().filter(same).flat_map(|q| values(&q.ty));
        for v in tried.map(Some).chain([None]) {
            if *at != v {
                let mut next = base.clone();
                next[i].1 = v;
                variants.push(next);
            }
        }
    }
    let Some(at) = Place::of(snap, s, r) else {
        return Vec::new();
    };
    let pairs = peers
        .iter()
        .flat_map(|peer| variants.iter().map(move |v| (*peer, v)));
    let mut out: Vec<Witness> = pairs
        .take(MOST_CANDIDATES)
        .map(|(peer, values)| build(s, r, &at, values, peer))
        .collect();
    // where the dialect (or a CORS rule) decides: a cross-origin request, another method
    if let Some(w) = out.first().cloned() {
        let mut cross = w.clone();
        cross
            .headers
            .push(("Origin".into(), "http://elsewhere.invalid".into()));
        let mut other = w;
        other.method = if other.method == "PATCH" {
            "PUT".into()
        } else {
            "PATCH".into()
        };
        other.signed_as = None;
        out.extend([cross, other]);
    }
    out
}

/// The route `id` names in `snap`, with its service.
fn route_in<'s>(
    snap: &'s Snapshot,
    id: &RouteId,
) -> Option<(&'s Snapshot, &'s Service, &'s Route)> {
    let s = snap.services.iter().find(|s| *s.name == id.service)?;
    let r = s.routes.iter().find(|r| id.is(s, r))?;
    Some((snap, s, r))
}

/// Each parameter (by location and name, once) at the first value its type admits.
fn base_values<'p>(params: &[&'p ParamCheck]) -> Vec<(&'p ParamCheck, Option<String>)> {
    let mut out: Vec<(&ParamCheck, Option<String>)> = Vec::new();
    for p in params {
        if !out
            .iter()
            .any(|(q, _)| q.location == p.location && q.name == p.name)
        {
            out.push((p, values(&p.ty).into_iter().next()));
        }
    }
    out
}

/// Values to try for a type: one it admits first, then its bounds and just outside them.
fn values(ty: &ParamTy) -> Vec<String> {
    match ty {
        ParamTy::Any => vec!["w".into()],
        ParamTy::Bool => vec!["true".into(), "maybe".into()],
        ParamTy::Enum(values) => {
            let mut v = values.clone();
            v.push("not-listed".into());
            v
        }
        ParamTy::String { min_len, max_len } => {
            let n = min_len.unwrap_or(1).max(1);
            let mut v = vec!["w".repeat(n as usize)];
            if let Some(m) = max_len {
                v.push("w".repeat(*m as usize));
                v.push("w".repeat(*m as usize + 1));
            }
            if n > 1 {
                v.push("w".repeat(n as usize - 1));
            }
            v
        }
        ParamTy::Int { min, max } => {
            let first = min.or(*max).unwrap_or(1);
            let mut v = vec![first.to_string()];
            v.extend(
                min.iter()
                    .flat_map(|m| [m.saturating_sub(1), *m])
                    .map(|x| x.to_string()),
            );
            v.extend(
                max.iter()
                    .flat_map(|m| [*m, m.saturating_add(1)])
                    .map(|x| x.to_string()),
            );
            v.push("x".into());
            v
        }
        ParamTy::Decimal { min, max } => {
            let first = min.or(*max).unwrap_or(1.0);
            let mut v = vec![first.to_string()];
            v.extend(
                min.iter()
                    .flat_map(|m| [m - 1.0, *m])
                    .map(|x| x.to_string()),
            );
            v.extend(
                max.iter()
                    .flat_map(|m| [*m, m + 1.0])
                    .map(|x| x.to_string()),
            );
            v.push("x".into());
            v
        }
    }
}

/// The default client, then for each network the route's IP lists name (in either version)
/// its first and last address: a narrowed or widened list differs at one of them.
fn peers(routes: &[&Route]) -> Vec<IpAddr> {
    let mut out: Vec<IpAddr> = vec!["203.0.113.10".parse().unwrap()];
    for r in routes {
        for c in &r.program {
            let Check::ClientIp(rules) = c else { continue };
            for net in rules.0.allow.iter().chain(&rules.0.deny) {
                for ip in [net.network(), net.broadcast()] {
                    if !out.contains(&ip) {
                        out.push(ip);
                    }
                }
            }
        }
    }
    out
}

/// One candidate: the route's host, stage, method and path, these parameter values, signed
/// as one of its apps if rulegate can sign for its provider.
fn build(
    s: &Service,
    r: &Route,
    at: &Place,
    params: &[(&ParamCheck, Option<String>)],
    peer: IpAddr,
) -> Witness {
    let value = |location: ParamLocation, name: &str| {
        params
            .iter()
            .find(|(p, _)| p.location == location && p.name == name)
            .and_then(|(_, v)| v.clone())
    };
    let mut path = String::new();
    let mut headers: Vec<(String, String)> = Vec::new();
    match (&s.stages, &at.stage) {
        (StageSelector::Path { .. }, Some(stage)) => path.push_str(&format!("/{stage}")),
        (StageSelector::Header { header, .. }, Some(stage)) => {
            headers.push((header.clone(), stage.clone()))
        }
        _ => {}
    }
    for seg in r.template.segments() {
        let piece = match seg {
            Segment::Literal(l) => l.to_string(),
            Segment::Var(v) | Segment::Rest(v) => {
                value(ParamLocation::Path, v).unwrap_or_else(|| "w".into())
            }
        };
        path.push('/');
        path.push_str(&crate::request::head::encode_segment(&piece));
    }
    if path.is_empty() {
        path.push('/');
    }
    let mut query = Vec::new();
    let mut form = Vec::new();
    for (p, v) in params {
        let Some(v) = v else { continue };
        let pair = format!(
            "{}={}",
            crate::auth::sig::encode(p.name.as_bytes()),
            crate::auth::sig::encode(v.as_bytes())
        );
        match p.location {
            ParamLocation::Query => query.push(pair),
            ParamLocation::Form => form.push(pair),
            ParamLocation::Header => headers.push((p.name.clone(), v.clone())),
            ParamLocation::Path => {}
        }
    }
    if !query.is_empty() {
        path.push('?');
        path.push_str(&query.join("&"));
    }
    let body = form.join("&");
    if !form.is_empty() {
        headers.push((
            "Content-Type".into(),
            "application/x-www-form-urlencoded".into(),
        ));
        headers.push(("Content-Length".into(), body.len().to_string()));
    }
    if s.dialect == Dialect::Huawei {
        headers.push(("X-Apig-Mode".into(), "debug".into()));
    }
    headers.push(("Host".into(), at.host.clone()));
    let mut w = Witness {
        method: at.method.clone(),
        url: format!("{}://{}{path}", at.scheme, at.host),
        headers,
        body,
        client_ip: peer,
        signed_as: None,
        unsigned: None,
    };
    sign(s, r, &mut w);
    w
}

/// Where every candidate for a route goes: a host that selects its service, a stage that
/// publishes it, its protocol and its first method. Found once per route.
struct Place {
    host: String,
    scheme: &'static str,
    method: String,
    stage: Option<String>,
}

impl Place {
    /// `None` when no host selects the service, or no stage publishes the route.
    fn of(snap: &Snapshot, s: &Service, r: &Route) -> Option<Place> {
        let https_only = r.program.iter().any(
            |c| matches!(c, Check::Protocol(p) if !p.0.contains(&crate::vocab::Protocol::Http)),
        );
        let method = match r.methods.iter().find(|m| **m != Method::Any) {
            Some(m) => m.name().to_string(),
            None => "GET".to_string(),
        };
        let stage = match s.stages {
            StageSelector::None => None,
            _ => {
                let index = s.routes.iter().position(|x| std::ptr::eq(x, r))?;
                Some(super::stages_by_route(s)[index].first()?.to_string())
            }
        };
        Some(Place {
            host: host_of(snap, s)?,
            scheme: if https_only { "https" } else { "http" },
            method,
            stage,
        })
    }
}

/// A host that selects the service: its first exact host, else one of its wildcards'.
fn host_of(snap: &Snapshot, s: &Service) -> Option<String> {
    let index = snap.services.iter().position(|x| std::ptr::eq(x, s))?;
    let mut exact: Vec<&String> = snap
        .hosts
        .exact
        .iter()
        .filter(|(_, i)| **i == index)
        .map(|(h, _)| h)
        .collect();
    exact.sort();
    if let Some(h) = exact.first() {
        return Some((*h).clone());
    }
    let wild = snap.hosts.suffixes.iter().find(|(_, i)| *i == index);
    match wild {
        Some((suffix, _)) => Some(format!("w{suffix}")),
        None => (snap.hosts.any == Some(index)).then(|| "witness.invalid".to_string()),
    }
}

/// Sign as the first app the route binds (any app of the service if it binds none), where
/// the provider's scheme has a signer.
fn sign(s: &Service, r: &Route, w: &mut Witness) {
    let Some(auth) = r.program.iter().find_map(|c| match c {
        Check::Auth(a) => Some(a),
        _ => None,
    }) else {
        return;
    };
    let kind = s.providers[auth.provider].kind();
    if !crate::auth::signs(kind) {
        w.unsigned = Some(kind.name());
        return;
    }
    let app = match &auth.apps {
        Some(bound) => bound.first().map(|i| &s.apps[*i]),
        None => s.apps.iter().find(|a| a.secret.is_some()),
    };
    let Some(app) = app else { return };
    let Ok(uri) = w.url.parse::<http::Uri>() else {
        return;
    };
    let target = uri
        .path_and_query()
        .map(|p| p.as_str().to_string())
        .unwrap_or_default();
    let mut headers = http::HeaderMap::new();
    for (k, v) in &w.headers {
        if let (Ok(k), Ok(v)) = (
            http::HeaderName::from_bytes(k.as_bytes()),
            http::HeaderValue::from_str(v),
        ) {
            headers.append(k, v);
        }
    }
    let host = uri.host().map(String::from);
    let mut signing = crate::auth::signing::Signing {
        service: s.view(),
        app,
        method: &w.method,
        target: &target,
        host: host.as_deref(),
        body: w.body.as_bytes(),
        peer: w.client_ip,
        tls: w.url.starts_with("https:"),
        client_cert: false,
        headers: &mut headers,
        now_ms: NOW_MS,
    };
    if crate::auth::sign(kind, &mut signing).is_ok() {
        w.headers = headers
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_str().unwrap_or("").to_string()))
            .collect();
        w.signed_as = Some(app.name.clone());
    }
}
