//! `rulegate diff OLD NEW`: which requests are answered differently by two policy sets.
//!
//! The unit of behaviour is the route a request reaches. A request's answer depends only on
//! the host table (which service), the route it reaches, and what that route's answer reads:
//! its program and action, the backends, provider, apps and plans they name, and its
//! service's dialect and settings. So two snapshots are compared route by route, each route
//! identified across them by service, methods and path template, through a *fingerprint* of
//! everything its answer reads ([`fingerprint`]); plus the host table and the default dialect
//! for requests no service takes. A request answered differently either reaches a route whose
//! fingerprint changed, or reaches a route in one snapshot that the other lacks, or its host
//! changed service — each of which is reported. `tests/diff.rs` holds that to a property test.
//!
//! Each change carries a **witness**: a request found by trying candidates built from the
//! route (its path with values for its variables, its parameters at, inside and outside their
//! declared ranges, signed as one of its apps where rulegate can sign) until one is answered
//! differently; both answers are given as `explain` would summarise them. A change no single
//! request can show (a rate raised far beyond one request, a route behind a scheme rulegate
//! cannot sign for) says so instead of pretending.

mod witness;

pub use witness::{answer as witness_answer, Answer, Witness};

use crate::check::Check;
use crate::compile::{Action, Route, Service, Snapshot};
use std::collections::BTreeMap;
use std::fmt::Write as _;

/// How a change moves what clients can do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    /// A route the old policy lacks.
    Added,
    /// A route the new policy lacks.
    Removed,
    /// The same route under another path or methods.
    Moved,
    /// More requests refused, or sooner: a check added, a limit lowered, a range narrowed.
    Tightened,
    /// Fewer refused: a check removed, a limit raised, a range widened.
    Loosened,
    /// Anything else: another backend, rewrite, mock, dialect, provider.
    Changed,
}

impl Kind {
    pub fn name(self) -> &'static str {
        match self {
            Kind::Added => "added",
            Kind::Removed => "removed",
            Kind::Moved => "moved",
            Kind::Tightened => "tightened",
            Kind::Loosened => "loosened",
            Kind::Changed => "changed",
        }
    }

    pub fn parse(s: &str) -> Option<Kind> {
        [
            Kind::Added,
            Kind::Removed,
            Kind::Moved,
            Kind::Tightened,
            Kind::Loosened,
            Kind::Changed,
        ]
        .into_iter()
        .find(|k| k.name() == s)
    }
}

/// One class of requests answered differently.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Change {
    pub kind: Kind,
    /// The service, by name (for a host change: the host).
    pub service: String,
    /// `GET /orders/{id}` (the new label for a moved route); empty for a host change.
    pub route: String,
    /// What differs, a line each (`- rate 100 per minute …`, `+ rate 50 per minute …`).
    pub what: Vec<String>,
    pub witness: Option<Witness>,
    /// The witness's answers; equal when no candidate request showed the difference.
    pub old: Option<Answer>,
    pub new: Option<Answer>,
    #[serde(skip)]
    pub(crate) class: Class,
}

/// The requests a change is about: those reaching the route (in either snapshot), or sent to
/// the host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Class {
    /// Requests reaching one of these routes (a moved route: the old path and the new).
    Routes(Vec<RouteId>),
    Host(String),
    /// Requests no service takes, answered in the default dialect.
    Unrouted,
}

/// A route across snapshots: service name, methods and path template.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RouteId {
    pub service: String,
    pub label: String,
}

impl RouteId {
    /// Route `index` of `s`: its label, with ` #2`, ` #3`… for a later route of the same
    /// label (another stage's).
    pub fn of(s: &Service, index: usize) -> RouteId {
        let r = &s.routes[index];
        RouteId {
            service: s.name.to_string(),
            label: match r.nth {
                0 => r.label.to_string(),
                n => format!("{} #{}", r.label, n + 1),
            },
        }
    }

    /// Whether route `r` of `s` is this one (no allocation: `rulegate diff` asks per change).
    fn is(&self, s: &Service, r: &Route) -> bool {
        if *s.name != *self.service {
            return false;
        }
        match r.nth {
            0 => *r.label == *self.label,
            n => self.label.strip_prefix(&*r.label) == Some(&*format!(" #{}", n + 1)),
        }
    }
}

impl Change {
    /// Whether a request sent to `host` that reached the routes `old` in the old snapshot and
    /// `new` in the new one (see [`witness_answer`]) is one of this change's.
    pub fn covers(&self, host: &str, old: &[RouteId], new: &[RouteId]) -> bool {
        match &self.class {
            Class::Routes(ids) => ids.iter().any(|id| old.contains(id) || new.contains(id)),
            Class::Host(h) => {
                h == host || (h.starts_with('.') && host.ends_with(h.as_str())) || h == "*"
            }
            Class::Unrouted => old.is_empty() && new.is_empty(),
        }
    }
}

/// Every change from `old` to `new`; with `witnesses`, each with a request that shows it.
pub fn changes(old: &Snapshot, new: &Snapshot, witnesses: bool) -> Vec<Change> {
    let mut out = hosts(old, new);
    if old.default_dialect != new.default_dialect {
        out.push(Change {
            kind: Kind::Changed,
            service: String::new(),
            route: String::new(),
            what: vec![format!(
                "requests no service takes: answered in {} instead of {}",
                new.default_dialect, old.default_dialect
            )],
            witness: None,
            old: None,
            new: None,
            class: Class::Unrouted,
        });
    }
    let old_routes = routes(old);
    let new_routes = routes(new);
    out.extend(route_changes(&old_routes, &new_routes));
    if witnesses {
        for c in &mut out {
            witness::find(old, new, c);
        }
    }
    out
}

/// One line: `behaviour: 2 added, 1 tightened` or `behaviour unchanged`.
pub fn summary(changes: &[Change]) -> String {
    if changes.is_empty() {
        return "behaviour unchanged".to_string();
    }
    let mut counts: BTreeMap<Kind, usize> = BTreeMap::new();
    for c in changes {
        *counts.entry(c.kind).or_default() += 1;
    }
    let parts: Vec<String> = counts
        .iter()
        .map(|(k, n)| format!("{n} {}", k.name()))
        .collect();
    format!("behaviour: {}", parts.join(", "))
}

/// Each host's service by name: exact names, `*.suffix` (as `.suffix`) and `*`.
fn host_owners(snap: &Snapshot) -> BTreeMap<String, String> {
    let name = |i: usize| snap.services[i].name.to_string();
    let mut out: BTreeMap<String, String> = snap
        .hosts
        .exact
        .iter()
        .map(|(h, s)| (h.clone(), name(*s)))
        .collect();
    out.extend(
        snap.hosts
            .suffixes
            .iter()
            .map(|(h, s)| (h.clone(), name(*s))),
    );
    if let Some(s) = snap.hosts.any {
        out.insert("*".into(), name(s));
    }
    out
}

/// Hosts that another service takes, or that only one snapshot routes.
fn hosts(old: &Snapshot, new: &Snapshot) -> Vec<Change> {
    let (a, b) = (host_owners(old), host_owners(new));
    let mut all: Vec<&String> = a.keys().chain(b.keys()).collect();
    all.sort();
    all.dedup();
    let none = "no service".to_string();
    all.into_iter()
        .filter(|h| a.get(*h) != b.get(*h))
        .map(|h| {
            let (from, to) = (a.get(h).unwrap_or(&none), b.get(h).unwrap_or(&none));
            Change {
                kind: match (a.get(h), b.get(h)) {
                    (None, _) => Kind::Added,
                    (_, None) => Kind::Removed,
                    _ => Kind::Changed,
                },
                service: h.clone(),
                route: String::new(),
                what: vec![format!("host {h}: {from} → {to}")],
                witness: None,
                old: None,
                new: None,
                class: Class::Host(h.clone()),
            }
        })
        .collect()
}

/// A snapshot's route, by identity: the digest of its fingerprint (a reload of 100k routes
/// keeps 32 bytes a route, not the text), which is printed again only for a changed route.
struct Known<'s> {
    service: &'s Service,
    route: &'s Route,
    shared: std::rc::Rc<Shared>,
    stages: Vec<&'s str>,
    digest: [u8; 32],
}

impl Known<'_> {
    /// The fingerprint's lines.
    fn text(&self) -> String {
        let mut out = String::new();
        fingerprint(
            &mut out,
            &self.shared,
            self.service,
            self.route,
            &self.stages,
        );
        out
    }
}

fn routes(snap: &Snapshot) -> BTreeMap<RouteId, Known<'_>> {
    let mut out = BTreeMap::new();
    for s in &snap.services {
        let stages = stages_by_route(s);
        let shared = std::rc::Rc::new(Shared::of(snap, s));
        for (i, (r, stages)) in s.routes.iter().zip(stages).enumerate() {
            let mut hashing = Hashing(Default::default());
            fingerprint(&mut hashing, &shared, s, r, &stages);
            let digest = sha2::Digest::finalize(hashing.0).into();
            let shared = shared.clone();
            let known = Known {
                service: s,
                route: r,
                shared,
                stages,
                digest,
            };
            out.insert(RouteId::of(s, i), known);
        }
    }
    out
}

/// A fingerprint written straight into its digest.
struct Hashing(sha2::Sha256);

impl std::fmt::Write for Hashing {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        sha2::Digest::update(&mut self.0, s.as_bytes());
        Ok(())
    }
}

fn route_changes(
    old: &BTreeMap<RouteId, Known<'_>>,
    new: &BTreeMap<RouteId, Known<'_>>,
) -> Vec<Change> {
    let change = |kind, ids: Vec<RouteId>, what| Change {
        kind,
        service: ids[0].service.clone(),
        route: ids.last().map(|id| id.label.clone()).unwrap_or_default(),
        what,
        witness: None,
        old: None,
        new: None,
        class: Class::Routes(ids),
    };
    // a removed route that an added one of its service repeats, path aside: moved
    let unlabelled = |k: &Known<'_>| k.digest;
    let mut added: Vec<&RouteId> = new.keys().filter(|id| !old.contains_key(id)).collect();
    let mut out = Vec::new();
    for (id, k) in old {
        match new.get(id) {
            Some(n) if n.digest == k.digest => {}
            Some(n) => {
                let (kind, what) = compare(k, n);
                out.push(change(kind, vec![id.clone()], what));
            }
            None => {
                let moved = added
                    .iter()
                    .position(|a| a.service == id.service && unlabelled(&new[*a]) == unlabelled(k));
                match moved.map(|i| added.remove(i)) {
                    Some(to) => {
                        let what = vec![format!("{} → {}", id.label, to.label)];
                        out.push(change(Kind::Moved, vec![id.clone(), to.clone()], what));
                    }
                    None => out.push(change(
                        Kind::Removed,
                        vec![id.clone()],
                        vec![format!("- {}", id.label)],
                    )),
                }
            }
        }
    }
    for id in added {
        out.push(change(
            Kind::Added,
            vec![id.clone()],
            vec![format!("+ {}", id.label)],
        ));
    }
    out
}

/// What a service's routes read beyond themselves, digested once per service (a service of
/// many routes and apps is not printed once per route): each backend and provider by index,
/// its apps and plans, its settings.
struct Shared {
    backends: Vec<String>,
    providers: Vec<String>,
    apps: String,
    settings: String,
}

impl Shared {
    fn of(snap: &Snapshot, s: &Service) -> Shared {
        let backends = s.backends.iter().map(|b| {
            format!(
                "\"{}\" {}",
                b.name,
                digest(&without_generation(&format!("{b:?}")))
            )
        });
        let providers = s
            .providers
            .iter()
            .map(|p| format!("\"{}\" {}", p.name, digest(&format!("{p:?}"))));
        Shared {
            backends: backends.collect(),
            providers: providers.collect(),
            apps: digest(&format!("{:?} {:?}", s.apps, s.plans)),
            settings: format!(
                "{} {:?} {:?} proxies {:?} id {:?} cert {} responses {} default {}",
                s.dialect,
                s.limits,
                s.stages,
                s.trusted_proxies,
                s.request_id_header,
                s.client_cert_required,
                digest(&format!("{:?}", s.gateway_responses)),
                snap.default_dialect,
            ),
        }
    }
}

fn digest(text: &str) -> String {
    use sha2::{Digest, Sha256};
    crate::vocab::hex::hex(&Sha256::digest(text.as_bytes())[..12])
}

/// What a route's answers read, as text: the route (location aside), then the backends,
/// provider, apps and plans it names, then its service's settings. Secrets print as
/// `<secret>`; a changed secret file shows in the snapshots' inputs instead.
/// (The route's label, methods and template are its identity, compared as such: they are
/// not part of it, so a moved route's fingerprint is its old one.)
fn fingerprint(
    out: &mut impl std::fmt::Write,
    shared: &Shared,
    s: &Service,
    r: &Route,
    stages: &[&str],
) {
    for c in &r.program {
        let _ = writeln!(out, "check {c} {c:?}");
    }
    let _ = writeln!(out, "action {:?}", r.action);
    let _ = writeln!(out, "policies {:?}", r.policies);
    let _ = writeln!(
        out,
        "headers {:?} cors {:?} body {}",
        r.response_headers, r.cors, r.body_limit
    );
    for b in backends_of(s, r) {
        let _ = writeln!(out, "backend {}", shared.backends[b]);
    }
    for c in &r.program {
        if let Check::Auth(a) = c {
            let _ = writeln!(out, "provider {}", shared.providers[a.provider]);
            let _ = writeln!(out, "apps {}", shared.apps);
        }
    }
    let _ = writeln!(out, "service {} stages {stages:?}", shared.settings);
}

/// A backend's debug text without its targeting's compile count (`generation`), which differs
/// between any two compiles and says nothing of behaviour.
fn without_generation(debug: &str) -> String {
    let Some(at) = debug.find("generation: ") else {
        return debug.to_string();
    };
    let digits = debug[at + 12..]
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(0);
    format!("{}{}", &debug[..at], &debug[at + 12 + digits..])
}

/// The backends a route may send to: its forward's, its policies', their downgrades.
fn backends_of(s: &Service, r: &Route) -> Vec<usize> {
    let actions = std::iter::once(&r.action).chain(r.policies.iter().map(|p| &p.action));
    let mut out: Vec<usize> = Vec::new();
    for a in actions {
        if let Action::Forward(f) = a {
            out.push(f.backend);
            if let crate::compile::Downgrade::Backend(other) = s.backends[f.backend].downgrade {
                out.push(other);
            }
        }
    }
    out.sort();
    out.dedup();
    out
}

/// For each route of `s`, the stages whose tree routes to it (none named for a service without
/// stages). One walk of each tree: a reload of many routes stays linear.
pub(super) fn stages_by_route(s: &Service) -> Vec<Vec<&str>> {
    let mut out = vec![Vec::new(); s.routes.len()];
    for (name, tree) in s.stages.names().iter().zip(&s.trees) {
        let seen = std::cell::RefCell::new(Vec::new());
        tree.render(&|i| {
            seen.borrow_mut().push(i as usize);
            String::new()
        });
        for i in seen.into_inner() {
            if let Some(stages) = out.get_mut(i) {
                if !stages.contains(&name.as_str()) {
                    stages.push(name.as_str());
                }
            }
        }
    }
    out
}

/// How a route changed: check lines removed and added, and whether that tightens or loosens.
fn compare(old: &Known<'_>, new: &Known<'_>) -> (Kind, Vec<String>) {
    let lines =
        |k: &Known<'_>| -> Vec<String> { k.route.program.iter().map(|c| c.to_string()).collect() };
    let (a, b) = (lines(old), lines(new));
    let mut what: Vec<String> = Vec::new();
    let removed: Vec<&String> = a.iter().filter(|l| !b.contains(l)).collect();
    let added: Vec<&String> = b.iter().filter(|l| !a.contains(l)).collect();
    what.extend(removed.iter().map(|l| format!("- {l}")));
    what.extend(added.iter().map(|l| format!("+ {l}")));
    let kind = tightness(old.route, new.route, removed.len(), added.len());
    let (a, b) = (action(old), action(new));
    if a != b {
        what.push(format!("action: {a} → {b}"));
    } else if format!("{:?}", old.route.action) != format!("{:?}", new.route.action) {
        what.push(format!(
            "action: {a}, its rewrite or backend parameters changed"
        ));
    }
    what.extend(dependencies(old, new));
    if old.service.dialect != new.service.dialect {
        what.push(format!(
            "dialect: {} → {}",
            old.service.dialect, new.service.dialect
        ));
    }
    if what.is_empty() {
        what.push(
            "its service's settings changed (stages, limits, proxies, gateway responses)"
                .to_string(),
        );
    }
    (kind, what)
}

/// The named things a route reads that changed in place: a backend's settings, its
/// provider's, the service's apps and plans.
fn dependencies(old: &Known<'_>, new: &Known<'_>) -> Vec<String> {
    let section = |k: &Known<'_>, prefix: &str| -> Vec<String> {
        k.text()
            .lines()
            .filter(|l| l.starts_with(prefix))
            .map(String::from)
            .collect()
    };
    let mut out = Vec::new();
    let (a, b) = (section(old, "backend "), section(new, "backend "));
    let name = |l: &String| l.split('"').nth(1).unwrap_or("").to_string();
    for l in &b {
        if let Some(before) = a.iter().find(|x| name(x) == name(l)) {
            if before != l {
                out.push(format!("backend {}: its settings changed", name(l)));
            }
        }
    }
    if section(old, "provider ") != section(new, "provider ") {
        out.push("its auth provider's settings changed".to_string());
    }
    if section(old, "apps ") != section(new, "apps ") {
        out.push("the service's apps or usage plans changed".to_string());
    }
    out
}

/// Tightened when the new program only adds checks or lowers limits, loosened when it only
/// removes or raises them; anything else changed.
fn tightness(old: &Route, new: &Route, removed: usize, added: usize) -> Kind {
    let same_action = format!("{:?}", old.action) == format!("{:?}", new.action);
    if !same_action {
        return Kind::Changed;
    }
    match (removed, added) {
        (0, 0) => Kind::Changed,
        (0, _) => Kind::Tightened,
        (_, 0) => Kind::Loosened,
        _ => rate_direction(old, new).unwrap_or(Kind::Changed),
    }
}

/// The same rates with other limits: all lower (per unit of time) is tightened, all higher
/// loosened.
fn rate_direction(old: &Route, new: &Route) -> Option<Kind> {
    let rates = |r: &Route| -> Vec<(String, f64)> {
        r.program
            .iter()
            .filter_map(|c| match c {
                Check::Rate(x) => Some((
                    x.rule.id.clone(),
                    x.rule.limit as f64 / x.rule.period.millis() as f64,
                )),
                _ => None,
            })
            .collect()
    };
    let (a, b) = (rates(old), rates(new));
    let others = |r: &Route| -> Vec<String> {
        r.program
            .iter()
            .filter(|c| !matches!(c, Check::Rate(_)))
            .map(|c| c.to_string())
            .collect()
    };
    if a.len() != b.len() || others(old) != others(new) {
        return None;
    }
    let pairs: Vec<(f64, f64)> = a
        .iter()
        .map(|(id, x)| b.iter().find(|(j, _)| j == id).map(|(_, y)| (*x, *y)))
        .collect::<Option<_>>()?;
    if pairs.iter().all(|(x, y)| y <= x) {
        Some(Kind::Tightened)
    } else if pairs.iter().all(|(x, y)| y >= x) {
        Some(Kind::Loosened)
    } else {
        None
    }
}

fn action(k: &Known<'_>) -> String {
    match &k.route.action {
        Action::Mock(m) => format!("mock {}", m.answer.status),
        Action::Forward(f) => {
            let path = f
                .path
                .as_ref()
                .map(|p| format!(" path {p}"))
                .unwrap_or_default();
            format!("forward {}{path}", k.service.backends[f.backend].name)
        }
        Action::IssueTokens { .. } => "issue tokens".to_string(),
    }
}

/// The report as text: a block a change, its witness and both answers indented.
pub fn human(changes: &[Change]) -> String {
    let mut out = String::new();
    for c in changes {
        let place = match c.route.is_empty() {
            true => c.service.clone(),
            false => format!("{} {}", c.service, c.route),
        };
        let _ = writeln!(out, "{:<9} {place}", c.kind.name());
        for line in &c.what {
            let _ = writeln!(out, "    {line}");
        }
        if let Some(w) = &c.witness {
            let _ = writeln!(out, "  witness: {}", witness_line(w));
        }
        match (&c.old, &c.new) {
            (Some(a), Some(b)) if a == b => {
                let why = match c.witness.as_ref().and_then(|w| w.unsigned) {
                    Some(scheme) => {
                        format!(", as rulegate cannot authenticate as a {scheme} caller")
                    }
                    None => String::new(),
                };
                let _ = writeln!(
                    out,
                    "  no single request found shows it{why} (both answer the same):"
                );
                let _ = writeln!(out, "{}", indent(&a.summary, "    "));
            }
            (Some(a), Some(b)) => {
                let _ = writeln!(out, "  old:\n{}", indent(&a.summary, "    "));
                let _ = writeln!(out, "  new:\n{}", indent(&b.summary, "    "));
            }
            _ => {}
        }
        out.push('\n');
    }
    out.push_str(&summary(changes));
    out.push('\n');
    out
}

/// `GET http://host/path -H 'Name: value' --data '…' --client-ip IP (signed as APP)`, as
/// `explain` takes it (the Host header is the URL's).
fn witness_line(w: &Witness) -> String {
    let mut line = format!("{} {}", w.method, w.url);
    for (k, v) in w
        .headers
        .iter()
        .filter(|(k, _)| !k.eq_ignore_ascii_case("host"))
    {
        let _ = write!(line, " -H '{k}: {v}'");
    }
    if !w.body.is_empty() {
        let _ = write!(line, " --data '{}'", w.body);
    }
    let _ = write!(line, " --client-ip {}", w.client_ip);
    if let Some(app) = &w.signed_as {
        let _ = write!(line, " (signed as {app})");
    }
    line
}

fn indent(text: &str, by: &str) -> String {
    text.lines()
        .map(|l| format!("{by}{l}"))
        .collect::<Vec<_>>()
        .join("\n")
}
