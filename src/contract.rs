//! Error contracts: every refusal a route can answer with, as rows of its service's dialect —
//! what an API's clients must be ready for, read off the compiled policy.
//!
//! Nothing here is written twice. Each check says what it can refuse
//! ([`RouteCheck::answers`](crate::check::RouteCheck::answers)), each auth scheme what its
//! verification can ([`Scheme::failures`](crate::auth::Scheme::failures)); this module adds
//! what any request to the route may meet before its program (a malformed or oversized
//! request, a method the route does not take) and what its actions may meet after it (a
//! backend's failures, an orchestration without a default, the token endpoint's rows).
//!
//! The contract is checked, not trusted ([`check`]): `rulegate test` fails a request whose
//! refusal is not in its route's contract (`testing::run`), and so do the `decide` and
//! `compile` fuzz targets, so a check that learns a new refusal without saying so is caught
//! by the test corpus.

use crate::check::Answering;
use crate::compile::{Action, Backend, Route, Service, Snapshot};
use crate::dialect::{self, Reason, Row};
use crate::vocab::{Dialect, Method, ParamLocation};

/// One refusal of a route: where in the pipeline it arises and the reason (an example, where
/// the reason carries what the request sent).
#[derive(Debug, Clone, PartialEq)]
pub struct Answer {
    pub step: &'static str,
    pub reason: Reason,
}

/// An answer as its dialect renders it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Entry {
    pub step: &'static str,
    pub status: u16,
    pub code: String,
    pub message: String,
}

/// Every refusal route `route` of service `service` can give, in pipeline order, each row
/// once (the first step that gives it).
pub fn answers(snap: &Snapshot, service: usize, route: usize) -> Vec<Answer> {
    let s = &snap.services[service];
    let r = &s.routes[route];
    let mut out = Vec::new();
    let mut add = |step: &'static str, reasons: Vec<Reason>| {
        out.extend(reasons.into_iter().map(|reason| Answer { step, reason }));
    };
    add("request", request_answers());
    if !takes_every_method(&r.methods) {
        let uri = r.template.to_string();
        add(
            "route",
            vec![Reason::MethodNotAllowed {
                method: "…".into(),
                uri,
            }],
        );
    }
    let on = Answering {
        service: s.view(),
        path: &r.template.to_string(),
    };
    for check in &r.program {
        add(check.phase().name(), check.answers(&on));
    }
    add("action", action_answers(s, r));
    dedup_rows(s.dialect, out)
}

/// The contract rendered in the service's dialect.
pub fn entries(snap: &Snapshot, service: usize, route: usize) -> Vec<Entry> {
    let dialect = snap.services[service].dialect;
    answers(snap, service, route)
        .into_iter()
        .map(|a| {
            let row = dialect::row(dialect, &a.reason);
            Entry {
                step: a.step,
                status: row.status,
                code: row.code.to_string(),
                message: dialect::message(dialect, &a.reason),
            }
        })
        .collect()
}

/// Whether `reason` (a refusal of this route) is one of its contract's rows.
pub fn holds(snap: &Snapshot, service: usize, route: usize, reason: &Reason) -> bool {
    let dialect = snap.services[service].dialect;
    let row = dialect::row(dialect, reason);
    answers(snap, service, route)
        .iter()
        .any(|a| dialect::row(dialect, &a.reason).same_entry(row))
}

/// Whether a decision's refusal keeps what rulegate promises of it: a row of its dialect's
/// catalogue (documented, or one of the rows marked undocumented), and, for a routed request,
/// a row of its route's contract. `rulegate test` checks every request it sends with this, and
/// so do the fuzz targets; `Err` names the broken promise.
pub fn check(snap: &Snapshot, d: &crate::decide::Decision) -> Result<(), String> {
    let crate::decide::Outcome::Reject(reason) = &d.outcome else {
        return Ok(());
    };
    let row = dialect::row(d.dialect, reason);
    let listed = || {
        dialect::undocumented(d.dialect)
            .iter()
            .any(|u| u.same_entry(row))
    };
    if !row.documented && !listed() {
        return Err(format!(
            "rulegate bug: the refusal {reason:?} answers with a row that is not in the {:?} \
             catalogue (please report it)",
            d.dialect
        ));
    }
    let (Some(s), Some(r)) = (d.service, d.route) else {
        return Ok(());
    };
    if holds(snap, s, r, reason) {
        return Ok(());
    }
    let route = &snap.services[s].routes[r].label;
    Err(format!(
        "rulegate bug: the refusal {reason:?} is not in the error contract of route {route} \
         (please report it)"
    ))
}

/// What any request may meet before its route's program: too long a URI or headers, a
/// malformed request, a body that does not arrive in time, the gateway's own failure.
fn request_answers() -> Vec<Reason> {
    vec![
        Reason::UriTooLarge,
        Reason::HeaderTooLarge,
        Reason::HeadersTooLarge,
        Reason::BadRequest,
        Reason::BodyTimeout,
        Reason::Internal,
    ]
}

fn takes_every_method(methods: &[Method]) -> bool {
    methods.contains(&Method::Any)
}

/// What the route's actions (its own, and its policy backends') may meet.
fn action_answers(s: &Service, r: &Route) -> Vec<Reason> {
    let actions = std::iter::once(&r.action).chain(r.policies.iter().map(|p| &p.action));
    let mut out = Vec::new();
    for action in actions {
        match action {
            Action::Mock(_) => {}
            Action::IssueTokens { .. } => {
                out.extend(crate::auth::oauth2::token_endpoint_failures())
            }
            Action::Forward(f) => {
                out.extend(forward_answers(f, r.template.vars().find(|v| f.exposes(v))));
                out.extend(backend_answers(s, &s.backends[f.backend]));
            }
        }
    }
    out
}

/// A forward's own: a path variable it exposes that would leave the forwarded path
/// (`ForwardAction::exposes`, `decide::path_safety`), a backend parameter whose value cannot
/// be sent, an orchestration whose value matches no rule.
fn forward_answers(f: &crate::compile::ForwardAction, exposed: Option<&str>) -> Vec<Reason> {
    let mut out = Vec::new();
    if let Some(name) = exposed {
        out.push(param_invalid(ParamLocation::Path, name));
    }
    if let Some(shaping) = &f.shaping {
        if !shaping.params.is_empty() || !shaping.orchestrations.is_empty() {
            out.push(param_invalid(ParamLocation::Header, "…"));
        }
        let failing = shaping
            .orchestrations
            .iter()
            .filter(|o| o.default.is_none());
        out.extend(failing.map(|o| Reason::OrchestrationFailed {
            location: o.from.0,
            name: o.from.1.clone(),
        }));
    }
    out
}

fn param_invalid(location: ParamLocation, name: &str) -> Reason {
    Reason::ParamInvalid {
        location,
        name: name.to_string(),
        expected: "…".into(),
    }
}

/// A backend's failures (and its downgrade backend's, which a breaker may send to).
fn backend_answers(s: &Service, b: &Backend) -> Vec<Reason> {
    let mut out = vec![
        Reason::BackendUnavailable,
        Reason::BackendTimeout,
        Reason::NoBackendAvailable,
        Reason::LoopDetected,
    ];
    let named = |t: &crate::vocab::Target| {
        t.http.as_ref().is_some_and(|h| {
            h.host
                .trim_matches(['[', ']'])
                .parse::<std::net::IpAddr>()
                .is_err()
        })
    };
    if b.targets.iter().any(named) {
        out.push(Reason::BackendDnsFailed);
    }
    if !b.deny.is_empty() {
        out.push(Reason::BackendIpDenied);
    }
    if b.signer.is_some() {
        out.push(Reason::BackendSigningFailed);
    }
    if let crate::compile::Downgrade::Backend(other) = b.downgrade {
        let fallback = &s.backends[other];
        if fallback.signer.is_some() {
            out.push(Reason::BackendSigningFailed);
        }
        if fallback.targets.iter().any(named) {
            out.push(Reason::BackendDnsFailed);
        }
        if !fallback.deny.is_empty() {
            out.push(Reason::BackendIpDenied);
        }
    }
    out
}

/// Each row once, at the first step that gives it.
fn dedup_rows(dialect: Dialect, answers: Vec<Answer>) -> Vec<Answer> {
    let mut kept: Vec<Answer> = Vec::new();
    for a in answers {
        let row: &Row = dialect::row(dialect, &a.reason);
        let message = dialect::message(dialect, &a.reason);
        let seen = kept.iter().any(|k| {
            dialect::row(dialect, &k.reason).same_entry(row)
                && dialect::message(dialect, &k.reason) == message
        });
        if !seen {
            kept.push(a);
        }
    }
    kept
}

/// The routes `rulegate errors` reports: of `service` (by name) if given, whose method and
/// path template are `route` (`GET /orders/{id}`, or the path alone) if given. `Err` names
/// what matched nothing.
pub fn select(
    snap: &Snapshot,
    service: Option<&str>,
    route: Option<&str>,
) -> Result<Vec<(usize, usize)>, String> {
    let services: Vec<usize> = (0..snap.services.len())
        .filter(|&i| service.is_none_or(|name| *snap.services[i].name == *name))
        .collect();
    if services.is_empty() {
        let names: Vec<&str> = snap.services.iter().map(|s| &*s.name).collect();
        return Err(format!(
            "no service {:?}; the policy's services: {}",
            service.unwrap_or(""),
            names.join(", ")
        ));
    }
    let wanted = route.map(parse_route);
    let mut out = Vec::new();
    for &s in &services {
        for (r, candidate) in snap.services[s].routes.iter().enumerate() {
            if wanted.as_ref().is_none_or(|w| w.matches(candidate)) {
                out.push((s, r));
            }
        }
    }
    if out.is_empty() {
        let labels: Vec<&str> = services
            .iter()
            .flat_map(|&s| snap.services[s].routes.iter().map(|r| &*r.label))
            .collect();
        return Err(format!(
            "no route {:?}; the routes: {}",
            route.unwrap_or(""),
            labels.join(", ")
        ));
    }
    Ok(out)
}

/// `GET /orders/{id}` or `/orders/{id}`.
struct Wanted {
    method: Option<String>,
    path: String,
}

fn parse_route(text: &str) -> Wanted {
    match text.trim().split_once(char::is_whitespace) {
        Some((method, path)) => Wanted {
            method: Some(method.to_ascii_uppercase()),
            path: path.trim().to_string(),
        },
        None => Wanted {
            method: None,
            path: text.trim().to_string(),
        },
    }
}

impl Wanted {
    fn matches(&self, r: &Route) -> bool {
        let method = |m: &String| r.methods.iter().any(|x| x.name() == m || *x == Method::Any);
        r.template.to_string() == self.path && self.method.as_ref().is_none_or(method)
    }
}

/// One block a route: its service, label and location, then a line a refusal.
pub fn human(snap: &Snapshot, routes: &[(usize, usize)]) -> String {
    let mut out = String::new();
    for (n, &(s, r)) in routes.iter().enumerate() {
        let service = &snap.services[s];
        let route = &service.routes[r];
        if n > 0 {
            out.push('\n');
        }
        out.push_str(&format!(
            "# {} {} ({}, {})\n",
            service.name, route.label, route.location, service.dialect
        ));
        for e in entries(snap, s, r) {
            out.push_str(&format!(
                "{:<10} {:>3}  {:<32} {}\n",
                e.step, e.status, e.code, e.message
            ));
        }
    }
    if routes
        .iter()
        .any(|&(s, _)| !snap.services[s].gateway_responses.is_empty())
    {
        out.push_str(
            "\n(a service with `gateway response` blocks answers those types with its own \
             status and body; the codes above still identify the refusals)\n",
        );
    }
    out
}

/// `[{"service", "route", "location", "dialect", "answers": [{"step", "status", "code",
/// "message"}]}]`.
pub fn json(snap: &Snapshot, routes: &[(usize, usize)]) -> String {
    let all: Vec<serde_json::Value> = routes
        .iter()
        .map(|&(s, r)| {
            let service = &snap.services[s];
            let route = &service.routes[r];
            serde_json::json!({
                "service": &*service.name,
                "route": &*route.label,
                "location": route.location,
                "dialect": service.dialect.name(),
                "answers": entries(snap, s, r),
            })
        })
        .collect();
    serde_json::to_string_pretty(&all).unwrap_or_default()
}
