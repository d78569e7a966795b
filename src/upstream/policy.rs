//! Policy backends (issue 13, item 3; Huawei's "policy backends", Tencent's conditional
//! routing): up to five alternatives to a route's action, each chosen by conditions on the
//! request.
//!
//! # Why a module of its own
//!
//! A policy's conditions, what they read of a request and how they are explained are one
//! concern, apart from what a chosen policy then does. The action a policy takes (a forward
//! with its own path and backend-request statements, or a mock) is compiled by `compile` as
//! the route's own action is, through [`Build`], and carried here as an opaque `A`: so a
//! policy's forward is built by the same code as the default forward, and this module imports
//! neither `compile` nor `decide`.
//!
//! # Semantics
//!
//! At the action step (11) the first policy, in the order written, whose conditions hold
//! (every one for `all`, the default; one for `any`) picks the action; when none holds, the
//! route's own action runs. Overlap is allowed: first match wins. A condition reads
//! - `header "N"`: the first value (names case-insensitive);
//! - `query "N"`: the first value, percent-decoded;
//! - `path "N"`: the route's path variable, decoded as routing decoded it;
//! - `source CIDR…`: the client address the checks used (the peer, or what a trusted proxy
//!   names);
//! - `claim "c"`: a claim of the verified JWT; a string, number or boolean compared as text,
//!   an array when any element (string, number or boolean) passes;
//! - `authorizer "f"`: a field of the external authorizer's context.
//!
//! An absent value never matches, not even `is ""`. `matches` is a regular expression
//! (`regex-lite`: linear time) anchored on the whole value.

use crate::policy::ast::{
    self, AuthKind, Condition, PolicyItem, Span, Spanned, Subject, ValueTest,
};
use crate::policy::diag::{self, did_you_mean, Diagnostic};
use crate::request::head::form_value;
use crate::request::{canonical_ip, Client, RequestHead};
use crate::vocab::ParamLocation;
use ipnet::IpNet;
use std::borrow::Cow;
use std::fmt;

/// Huawei's limit of policy backends per API; every dialect keeps it, so a policy stays
/// portable.
pub const MAX_POLICIES: usize = 5;

/// One compiled policy backend; `A` is the action as `compile` builds it.
#[derive(Debug)]
pub struct Policy<A> {
    pub name: String,
    /// One condition suffices (`any`), else every one must hold.
    pub any: bool,
    pub conditions: Vec<Cond>,
    pub action: A,
}

/// A compiled condition.
#[derive(Debug)]
pub enum Cond {
    /// The client's address is in one of the networks.
    Source(Vec<IpNet>),
    Value {
        subject: Subject,
        /// As written; a header's name is looked up case-insensitively.
        name: String,
        test: Test,
    },
}

#[derive(Debug)]
pub enum Test {
    Is(String),
    In(Vec<String>),
    Matches {
        /// As written, for traces and diagnostics.
        pattern: String,
        /// Anchored on the whole value.
        regex: regex_lite::Regex,
    },
}

impl Test {
    fn passes(&self, v: &str) -> bool {
        match self {
            Test::Is(x) => x == v,
            Test::In(xs) => xs.iter().any(|x| x == v),
            Test::Matches { regex, .. } => regex.is_match(v),
        }
    }

    /// The finite set of values that pass, when there is one.
    fn values(&self) -> Option<&[String]> {
        match self {
            Test::Is(x) => Some(std::slice::from_ref(x)),
            Test::In(xs) => Some(xs),
            Test::Matches { .. } => None,
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Compilation

/// What a route tells the compilation of its policies.
pub struct RouteFacts<'r> {
    /// The route's path variables.
    pub vars: &'r [String],
    /// The kind of the route's auth provider, if it has one.
    pub auth: Option<AuthKind>,
}

/// What compiling policies needs from the compiler: diagnostics, and the actions, compiled as
/// the route's own are.
pub trait Build {
    type Action;
    /// Report an error or a warning.
    fn report(&mut self, d: Diagnostic);
    /// A policy's forward, with the policy's backend-request statements (`upstream`), which
    /// apply on top of the route's; `None` when it does not compile (reported).
    fn forward(
        &mut self,
        forward: &ast::Forward,
        upstream: &[(&ast::Upstream, Span)],
    ) -> Option<Self::Action>;
    fn mock(&mut self, mock: &ast::Mock) -> Self::Action;
}

/// The `policy` blocks of a route, in order, with their spans.
pub fn blocks(route: &ast::Route) -> Vec<(&ast::PolicyBackend, Span)> {
    route
        .items
        .iter()
        .filter_map(|i| match &i.value {
            ast::RouteItem::Upstream(ast::Upstream::Policy(p)) => Some((p, i.span)),
            _ => None,
        })
        .collect()
}

/// The route's policies, in order, with their diagnostics (errors and warnings).
pub fn compile<B: Build>(
    policies: &[(&ast::PolicyBackend, Span)],
    facts: &RouteFacts<'_>,
    b: &mut B,
) -> Vec<Policy<B::Action>> {
    if let Some((_, extra)) = policies.get(MAX_POLICIES) {
        b.report(
            Diagnostic::error(
                diag::TOO_MANY_POLICIES,
                *extra,
                format!("a route has at most {MAX_POLICIES} policy backends"),
            )
            .label("one policy too many")
            .help("merge policies with `any`, or split the route (Huawei APIG allows five policy backends per API)"),
        );
    }
    let mut out: Vec<Policy<B::Action>> = Vec::new();
    let mut spans: Vec<Span> = Vec::new();
    for (i, (p, span)) in policies.iter().enumerate() {
        if let Some(first) = policies[..i]
            .iter()
            .find(|(q, _)| q.name.value == p.name.value)
        {
            b.report(
                Diagnostic::error(
                    diag::DUPLICATE_NAME,
                    p.name.span,
                    format!("policy `{}` is defined twice in this route", p.name.value),
                )
                .label("second definition")
                .related(first.0.name.span, "first definition")
                .help("give each policy of a route its own name"),
            );
        }
        if let Some(policy) = one(p, *span, facts, b) {
            warn_never_holds(&policy, p, facts, b);
            if let Some(k) = out.iter().position(|earlier| covers(earlier, &policy)) {
                b.report(unreachable(&policy, &out[k], p.name.span, spans[k]));
            }
            out.push(policy);
            spans.push(p.name.span);
        }
    }
    out
}

/// One policy: its conditions and its one action.
fn one<B: Build>(
    p: &ast::PolicyBackend,
    span: Span,
    facts: &RouteFacts<'_>,
    b: &mut B,
) -> Option<Policy<B::Action>> {
    let mut conditions = Vec::new();
    let mut actions: Vec<(&PolicyItem, Span)> = Vec::new();
    let mut upstream: Vec<(&ast::Upstream, Span)> = Vec::new();
    let mut broken = false;
    for item in &p.items {
        match &item.value {
            PolicyItem::When(c) => match condition(c, facts, b) {
                Some(c) => conditions.push(c),
                None => broken = true,
            },
            PolicyItem::Upstream(u) => upstream.push((u, item.span)),
            a @ (PolicyItem::Forward(_) | PolicyItem::Mock(_)) => actions.push((a, item.span)),
        }
    }
    if conditions.is_empty() && !broken {
        b.report(
            Diagnostic::error(
                diag::MISSING_STATEMENT,
                p.name.span,
                format!("policy `{}` has no condition", p.name.value),
            )
            .label("it would take every request")
            .help("add a condition, e.g. `when header \"X-Canary\" is \"1\"`; the route's own action is the default"),
        );
        broken = true;
    }
    let action = action(p, span, &actions, &upstream, b);
    if broken {
        return None;
    }
    Some(Policy {
        name: p.name.value.clone(),
        any: p.any,
        conditions,
        action: action?,
    })
}

/// The policy's one action (`forward` or `mock`); a mock takes no backend-request statements.
fn action<B: Build>(
    p: &ast::PolicyBackend,
    span: Span,
    actions: &[(&PolicyItem, Span)],
    upstream: &[(&ast::Upstream, Span)],
    b: &mut B,
) -> Option<B::Action> {
    match actions {
        [] => {
            b.report(
                Diagnostic::error(
                    diag::MISSING_STATEMENT,
                    span,
                    format!("policy `{}` has no action", p.name.value),
                )
                .label("requests it takes have nowhere to go")
                .help("end the policy with `forward BACKEND [path \"…\"]` or `mock STATUS …`"),
            );
            None
        }
        [(PolicyItem::Forward(f), _)] => b.forward(f, upstream),
        [(PolicyItem::Mock(m), _)] => {
            if let Some((u, at)) = upstream.first() {
                b.report(
                    Diagnostic::error(
                        diag::NOT_APPLICABLE,
                        *at,
                        format!(
                            "`{}` shapes a backend request, and this policy mocks",
                            u.keyword()
                        ),
                    )
                    .label("a mock sends nothing to a backend")
                    .help("remove the statement, or make the policy `forward BACKEND`"),
                );
                return None;
            }
            Some(b.mock(m))
        }
        [(_, first), (_, second), ..] => {
            b.report(
                Diagnostic::error(diag::TWO_ACTIONS, *second, "a policy has one action")
                    .label("second action")
                    .related(*first, "first action")
                    .help("keep one `forward` or `mock`; write another policy for the other"),
            );
            None
        }
        [(_, _)] => None,
    }
}

/// A condition as written, checked against the route: a path variable it has, a pattern that
/// compiles, a subject that is there before the body.
fn condition<B: Build>(c: &Condition, facts: &RouteFacts<'_>, b: &mut B) -> Option<Cond> {
    let (subject, name, test) = match c {
        Condition::Source(nets) => {
            return Some(Cond::Source(nets.iter().map(|n| n.value).collect()))
        }
        Condition::Value {
            subject,
            name,
            test,
        } => (subject, name, test),
    };
    match subject.value {
        Subject::Param(ParamLocation::Form) => {
            b.report(
                Diagnostic::error(
                    diag::NOT_APPLICABLE,
                    name.span,
                    "a policy condition cannot read a form parameter",
                )
                .label("the body is not read to choose a backend")
                .help("test a header, query or path parameter, the source, a claim or an authorizer field"),
            );
            return None;
        }
        Subject::Param(ParamLocation::Path) if !facts.vars.contains(&name.value) => {
            b.report(
                Diagnostic::error(
                    diag::UNDECLARED_PATH_VAR,
                    name.span,
                    format!("`{}` is not a variable of the route's path", name.value),
                )
                .label("tested here")
                .help(
                    did_you_mean(&name.value, facts.vars.iter().map(String::as_str))
                        .unwrap_or_else(|| {
                            "a path condition tests one of the route path's variables".to_string()
                        }),
                ),
            );
            return None;
        }
        _ => {}
    }
    let test = match &test.value {
        ValueTest::Is(v) => Test::Is(v.value.clone()),
        ValueTest::In(vs) => Test::In(vs.iter().map(|v| v.value.clone()).collect()),
        ValueTest::Matches(p) => pattern(p, b)?,
    };
    Some(Cond::Value {
        subject: subject.value,
        name: name.value.clone(),
        test,
    })
}

/// A `matches` pattern, anchored on the whole value; an invalid one is reported with the
/// regex engine's own words.
fn pattern<B: Build>(p: &Spanned<String>, b: &mut B) -> Option<Test> {
    // compiled alone first, so the error's positions are the pattern's as written
    let anchored = regex_lite::Regex::new(&p.value)
        .and_then(|_| regex_lite::Regex::new(&format!("^(?:{})$", p.value)));
    match anchored {
        Ok(regex) => Some(Test::Matches {
            pattern: p.value.clone(),
            regex,
        }),
        Err(e) => {
            b.report(
                Diagnostic::error(
                    diag::BAD_PATTERN,
                    p.span,
                    format!("`{}` is not a valid regular expression", p.value),
                )
                .label(e.to_string())
                .help("`matches` takes a regular expression (regex-lite syntax), matched against the whole value"),
            );
            None
        }
    }
}

/// Whether a condition can ever hold on this route: a claim needs a provider that carries
/// claims, an authorizer field an external authorizer.
fn can_hold(c: &Cond, facts: &RouteFacts<'_>) -> bool {
    match c {
        Cond::Value {
            subject: Subject::Claim,
            ..
        } => facts.auth.is_some_and(crate::auth::carries_claims),
        Cond::Value {
            subject: Subject::Authorizer,
            ..
        } => facts.auth == Some(AuthKind::Authorizer),
        _ => true,
    }
}

fn warn_never_holds<A, B: Build>(
    policy: &Policy<A>,
    p: &ast::PolicyBackend,
    facts: &RouteFacts<'_>,
    b: &mut B,
) {
    let mut never = policy.conditions.iter().filter(|c| !can_hold(c, facts));
    let dead = match policy.any {
        true => policy.conditions.iter().all(|c| !can_hold(c, facts)),
        false => never.clone().next().is_some(),
    };
    let Some(Cond::Value { subject, name, .. }) = never.next().filter(|_| dead) else {
        return;
    };
    let why = match subject {
        Subject::Claim => {
            "the route's auth carries no claims (only a jwt or oauth2 provider's tokens do)"
        }
        _ => "the route is not authorized by an external authorizer",
    };
    b.report(
        Diagnostic::warning(
            diag::POLICY_NEVER_HOLDS,
            p.name.span,
            format!("policy `{}` can never be chosen", p.name.value),
        )
        .label(format!(
            "`when {} \"{name}\"` never holds: {why}",
            subject.name()
        ))
        .help("remove the policy, or give the route the auth its condition reads"),
    );
}

fn unreachable<A>(later: &Policy<A>, earlier: &Policy<A>, at: Span, first: Span) -> Diagnostic {
    Diagnostic::warning(
        diag::POLICY_UNREACHABLE,
        at,
        format!("policy `{}` can never be chosen", later.name),
    )
    .label("every request it takes is taken first by an earlier policy")
    .related(
        first,
        format!("policy `{}` comes first and wins", earlier.name),
    )
    .help(
        "the first policy whose conditions hold wins: put the narrower policy first, or remove it",
    )
}

/// Whether every request `b` takes is taken by `a` (so `a` before `b` leaves `b` nothing). Only
/// what is certain: written conditions compared as sets, never a guess.
fn covers<A>(a: &Policy<A>, b: &Policy<A>) -> bool {
    // b holds ⇒ c holds
    let b_implies = |c: &Cond| match b.any {
        false => b.conditions.iter().any(|x| implies(x, c)),
        true => b.conditions.iter().all(|x| implies(x, c)),
    };
    match a.any {
        false => a.conditions.iter().all(b_implies),
        true => match b.any {
            false => a.conditions.iter().any(b_implies),
            true => b
                .conditions
                .iter()
                .all(|x| a.conditions.iter().any(|c| implies(x, c))),
        },
    }
}

/// Whether condition `x` holding means `y` holds.
fn implies(x: &Cond, y: &Cond) -> bool {
    match (x, y) {
        (Cond::Source(xs), Cond::Source(ys)) => xs.iter().all(|n| ys.iter().any(|m| m.contains(n))),
        (
            Cond::Value {
                subject: sx,
                name: nx,
                test: tx,
            },
            Cond::Value {
                subject: sy,
                name: ny,
                test: ty,
            },
        ) => {
            let same_name = match sx {
                Subject::Param(ParamLocation::Header) => nx.eq_ignore_ascii_case(ny),
                _ => nx == ny,
            };
            let narrower = match (tx.values(), ty) {
                (Some(values), _) => values.iter().all(|v| ty.passes(v)),
                (None, Test::Matches { pattern, .. }) => {
                    matches!(tx, Test::Matches { pattern: p, .. } if p == pattern)
                }
                (None, _) => false,
            };
            sx == sy && same_name && narrower
        }
        _ => false,
    }
}

/// The policy as `check --print-tree` and coverage show it: `policy canary: header X-Canary
/// is "1" and …` (`or` for `any`).
impl<A> fmt::Display for Policy<A> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "policy {}: ", self.name)?;
        for (i, c) in self.conditions.iter().enumerate() {
            if i > 0 {
                f.write_str(if self.any { " or " } else { " and " })?;
            }
            write!(f, "{c}")?;
        }
        Ok(())
    }
}

impl fmt::Display for Cond {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Cond::Source(nets) => {
                f.write_str("source")?;
                nets.iter().try_for_each(|n| write!(f, " {n}"))
            }
            Cond::Value {
                subject,
                name,
                test,
            } => {
                write!(f, "{} {name} ", subject.name())?;
                match test {
                    Test::Is(x) => write!(f, "is {x:?}"),
                    Test::In(xs) => write!(f, "in {xs:?}"),
                    Test::Matches { pattern, .. } => write!(f, "matches {pattern:?}"),
                }
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Choosing

/// What the conditions read of a request, as the pipeline knows it at the action step.
pub struct Seen<'a> {
    pub head: RequestHead<'a>,
    /// The route's path variables, decoded.
    pub vars: &'a [(&'a str, String)],
    /// The client address the checks used.
    pub client: Client,
    /// The verified JWT's claims, when the route's auth kept them.
    pub claims: Option<&'a serde_json::Value>,
    /// The external authorizer's context, when it allowed the request.
    pub authorizer: Option<&'a [(String, String)]>,
}

/// The first policy whose conditions hold, by index.
pub fn choose<A>(policies: &[Policy<A>], seen: &Seen<'_>) -> Option<usize> {
    policies.iter().position(|p| p.holds(seen))
}

impl<A> Policy<A> {
    pub fn holds(&self, seen: &Seen<'_>) -> bool {
        let mut each = self
            .conditions
            .iter()
            .map(|c| c.value_that_holds(seen).is_some());
        match self.any {
            true => each.any(|h| h),
            false => each.all(|h| h),
        }
    }

    /// Why the policy holds for this request, for the trace: `policy canary: header
    /// X-Canary is "1"` (every condition of an `all`, the first that holds of an `any`).
    pub fn why<'p>(&'p self, seen: &'p Seen<'p>) -> Why<'p, A> {
        Why { policy: self, seen }
    }
}

/// See [`Policy::why`]; formatted only when the trace is kept.
pub struct Why<'p, A> {
    policy: &'p Policy<A>,
    seen: &'p Seen<'p>,
}

impl<A> fmt::Display for Why<'_, A> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "policy {}: ", self.policy.name)?;
        let held = self
            .policy
            .conditions
            .iter()
            .filter_map(|c| c.value_that_holds(self.seen).map(|v| (c, v)));
        let take = if self.policy.any { 1 } else { usize::MAX };
        for (i, (c, v)) in held.take(take).enumerate() {
            if i > 0 {
                f.write_str(" and ")?;
            }
            c.explain(f, &v)?;
        }
        Ok(())
    }
}

impl Cond {
    /// The request's value that makes the condition hold, if one does.
    fn value_that_holds<'s>(&self, seen: &Seen<'s>) -> Option<Cow<'s, str>> {
        match self {
            Cond::Source(nets) => {
                let ip = seen.client.ip().map(canonical_ip)?;
                nets.iter()
                    .any(|n| n.contains(&ip))
                    .then(|| ip.to_string().into())
            }
            Cond::Value {
                subject,
                name,
                test,
            } => match subject {
                Subject::Param(ParamLocation::Header) => {
                    seen.head.header(name.as_str()).map(Cow::Borrowed)
                }
                Subject::Param(ParamLocation::Query) => seen
                    .head
                    .query()
                    .and_then(|q| form_value(q, name))
                    .flatten()
                    .map(Cow::Owned),
                Subject::Param(ParamLocation::Path) => seen
                    .vars
                    .iter()
                    .find(|(k, _)| *k == name)
                    .map(|(_, v)| Cow::Owned(v.clone())),
                Subject::Param(ParamLocation::Form) => None,
                Subject::Authorizer => seen
                    .authorizer?
                    .iter()
                    .find(|(k, _)| k == name)
                    .map(|(_, v)| Cow::Owned(v.clone())),
                Subject::Claim => return claim_that_passes(seen.claims?.get(name)?, test),
            }
            .filter(|v| test.passes(v)),
        }
    }

    fn explain(&self, f: &mut fmt::Formatter<'_>, value: &str) -> fmt::Result {
        match self {
            Cond::Source(nets) => {
                let ip: std::net::IpAddr = value.parse().map_err(|_| fmt::Error)?;
                let net = nets.iter().find(|n| n.contains(&ip)).ok_or(fmt::Error)?;
                write!(f, "source {value} in {net}")
            }
            Cond::Value {
                subject,
                name,
                test,
            } => {
                write!(f, "{} {name} is {value:?}", subject.name())?;
                match test {
                    Test::Is(_) => Ok(()),
                    Test::In(xs) => write!(f, ", one of {xs:?}"),
                    Test::Matches { pattern, .. } => write!(f, ", matches {pattern:?}"),
                }
            }
        }
    }
}

/// A claim's text that passes: a string, number or boolean as text; an array's first element
/// that passes.
fn claim_that_passes<'s>(claim: &serde_json::Value, test: &Test) -> Option<Cow<'s, str>> {
    let text = |v: &serde_json::Value| match v {
        serde_json::Value::String(s) => Some(s.clone()),
        serde_json::Value::Number(n) => Some(n.to_string()),
        serde_json::Value::Bool(b) => Some(b.to_string()),
        _ => None,
    };
    let one = |v: &serde_json::Value| text(v).filter(|t| test.passes(t)).map(Cow::Owned);
    match claim {
        serde_json::Value::Array(items) => items.iter().find_map(one),
        other => one(other),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::diag::Severity;
    use http::HeaderMap;
    use std::net::IpAddr;

    /// Compiles actions to their text: `forward b` / `mock 503`.
    #[derive(Default)]
    struct Texts(Vec<Diagnostic>);

    impl Build for Texts {
        type Action = String;
        fn report(&mut self, d: Diagnostic) {
            self.0.push(d);
        }
        fn forward(&mut self, f: &ast::Forward, up: &[(&ast::Upstream, Span)]) -> Option<String> {
            Some(format!("forward {} +{}", f.backend.value, up.len()))
        }
        fn mock(&mut self, m: &ast::Mock) -> String {
            format!("mock {}", m.status.value)
        }
    }

    fn route(items: &str) -> crate::policy::Loaded {
        let text = format!(
            "service s {{\n dialect huawei\n hosts \"*\"\n backend b {{ targets \"http://10.0.0.1\" }}\n backend c {{ targets \"http://10.0.0.2\" }}\n route GET \"/o/{{id}}\" {{\n{items}\n forward b\n }}\n}}\n"
        );
        let loaded =
            crate::policy::parse_texts(vec![("t.policy".into(), text, Default::default())]);
        let errors: Vec<&String> = loaded.diagnostics.iter().map(|d| &d.message).collect();
        assert!(errors.is_empty(), "{errors:?}");
        loaded
    }

    fn the_route(loaded: &crate::policy::Loaded) -> &ast::Route {
        let ast::TopItem::Service(s) = &loaded.files[0].1.items[0].value else {
            panic!("a service")
        };
        s.items
            .iter()
            .find_map(|i| match &i.value {
                ast::ServiceItem::Route(r) => Some(r),
                _ => None,
            })
            .expect("a route")
    }

    fn compiled(items: &str, auth: Option<AuthKind>) -> (Vec<Policy<String>>, Vec<Diagnostic>) {
        let loaded = route(items);
        let r = the_route(&loaded);
        let vars = vec!["id".to_string()];
        let mut b = Texts::default();
        let policies = compile(&blocks(r), &RouteFacts { vars: &vars, auth }, &mut b);
        (policies, b.0)
    }

    fn ok(items: &str) -> Vec<Policy<String>> {
        let (policies, diags) = compiled(items, Some(AuthKind::Jwt));
        let messages: Vec<&String> = diags.iter().map(|d| &d.message).collect();
        assert!(messages.is_empty(), "{messages:?}");
        policies
    }

    fn codes(items: &str, auth: Option<AuthKind>) -> Vec<(&'static str, Severity)> {
        let (_, diags) = compiled(items, auth);
        diags.iter().map(|d| (d.code.id, d.severity)).collect()
    }

    struct Request {
        target: &'static str,
        headers: HeaderMap,
        client: Client,
        claims: Option<serde_json::Value>,
        authorizer: Option<Vec<(String, String)>>,
    }

    fn request(target: &'static str, headers: &[(&'static str, &'static str)]) -> Request {
        let mut map = HeaderMap::new();
        for (k, v) in headers {
            map.append(*k, v.parse().unwrap());
        }
        Request {
            target,
            headers: map,
            client: Client::Known(IpAddr::from([192, 0, 2, 7])),
            claims: None,
            authorizer: None,
        }
    }

    /// (the chosen policy's action, why) for a request.
    fn pick(policies: &[Policy<String>], r: &Request) -> Option<(String, String)> {
        let head = RequestHead {
            version: http::Version::HTTP_11,
            method: "GET",
            target: r.target,
            host: Some("h"),
            host_from: Default::default(),
            headers: &r.headers,
            peer: IpAddr::from([127, 0, 0, 1]),
            tls: false,
            client_cert: false,
            body: None,
        };
        let vars = [("id", "7".to_string())];
        let seen = Seen {
            head,
            vars: &vars,
            client: r.client,
            claims: r.claims.as_ref(),
            authorizer: r.authorizer.as_deref(),
        };
        let i = choose(policies, &seen)?;
        Some((
            policies[i].action.clone(),
            policies[i].why(&seen).to_string(),
        ))
    }

    const CANARY: &str = r#"policy canary { when header "X-Canary" is "1"; forward c }"#;

    #[test]
    fn a_request_whose_header_holds_takes_the_policy_and_the_trace_says_why() {
        let p = ok(CANARY);
        let got = pick(&p, &request("/o/7", &[("x-canary", "1")]));
        assert_eq!(
            got,
            Some((
                "forward c +0".into(),
                r#"policy canary: header X-Canary is "1""#.into()
            ))
        );
        assert_eq!(pick(&p, &request("/o/7", &[("x-canary", "2")])), None);
        assert_eq!(pick(&p, &request("/o/7", &[])), None);
    }

    #[test]
    fn a_header_condition_reads_the_first_value() {
        let p = ok(CANARY);
        let r = request("/o/7", &[("X-Canary", "0"), ("X-Canary", "1")]);
        assert_eq!(pick(&p, &r), None);
    }

    #[test]
    fn an_absent_value_never_matches_not_even_is_empty_but_an_empty_one_does() {
        let p = ok(r#"policy e { when query "q" is ""; mock 204 }"#);
        assert_eq!(pick(&p, &request("/o/7", &[])), None);
        assert_eq!(pick(&p, &request("/o/7?other=", &[])), None);
        assert!(pick(&p, &request("/o/7?q=", &[])).is_some());
    }

    #[test]
    fn a_query_condition_reads_the_decoded_value_and_a_path_condition_the_variable() {
        let p = ok(
            r#"policy q all { when query "region" in "cn north" "eu"; when path "id" is "7"; mock 204 }"#,
        );
        let got = pick(&p, &request("/o/7?region=cn+north", &[])).map(|(_, why)| why);
        assert_eq!(
            got.as_deref(),
            Some(
                r#"policy q: query region is "cn north", one of ["cn north", "eu"] and path id is "7""#
            )
        );
        assert_eq!(pick(&p, &request("/o/7?region=cn%20south", &[])), None);
    }

    #[test]
    fn a_pattern_is_anchored_on_the_whole_value() {
        let p = ok(r#"policy r { when header "X-Region" matches "cn-[a-z]+"; mock 204 }"#);
        assert!(pick(&p, &request("/o/7", &[("x-region", "cn-north")])).is_some());
        assert_eq!(
            pick(&p, &request("/o/7", &[("x-region", "cn-north-1")])),
            None
        );
        assert_eq!(
            pick(&p, &request("/o/7", &[("x-region", "xcn-north")])),
            None
        );
    }

    #[test]
    fn any_needs_one_condition_and_all_needs_every_one() {
        let conds = r#"when header "A" is "1"; when header "B" is "1""#;
        let any = ok(&format!("policy p any {{ {conds}; mock 204 }}"));
        let all = ok(&format!("policy p {{ {conds}; mock 204 }}"));
        let one = request("/o/7", &[("b", "1")]);
        let both = request("/o/7", &[("a", "1"), ("b", "1")]);
        assert_eq!(
            pick(&any, &one).map(|(_, why)| why).as_deref(),
            Some(r#"policy p: header B is "1""#)
        );
        assert_eq!(pick(&all, &one), None);
        assert!(pick(&all, &both).is_some());
    }

    #[test]
    fn a_claim_is_compared_as_text_and_an_array_by_any_element() {
        let p = ok(r#"policy c { when claim "role" in "staff" "42" "true"; mock 204 }"#);
        let with = |claims: serde_json::Value| {
            let mut r = request("/o/7", &[]);
            r.claims = Some(serde_json::json!({ "role": claims }));
            pick(&p, &r).map(|(_, why)| why)
        };
        assert!(with(serde_json::json!("staff")).is_some());
        assert!(with(serde_json::json!(42)).is_some());
        assert!(with(serde_json::json!(true)).is_some());
        assert_eq!(
            with(serde_json::json!(["guest", "staff"])).as_deref(),
            Some(r#"policy c: claim role is "staff", one of ["staff", "42", "true"]"#)
        );
        assert_eq!(with(serde_json::json!("staff ops")), None);
        assert_eq!(with(serde_json::json!({"staff": 1})), None);
        assert_eq!(pick(&p, &request("/o/7", &[])), None, "no claims");
    }

    #[test]
    fn a_source_condition_reads_the_client_the_checks_used_and_an_unknown_one_never_matches() {
        let p = ok(r#"policy s { when source 192.0.2.0/24 10.0.0.0/8; mock 204 }"#);
        let mut r = request("/o/7", &[]);
        assert_eq!(
            pick(&p, &r).map(|(_, why)| why).as_deref(),
            Some("policy s: source 192.0.2.7 in 192.0.2.0/24")
        );
        r.client = Client::Known("::ffff:10.1.2.3".parse().unwrap());
        assert!(
            pick(&p, &r).is_some(),
            "a v4-mapped address is its v4 address"
        );
        r.client = Client::Known(IpAddr::from([198, 51, 100, 1]));
        assert_eq!(pick(&p, &r), None);
        r.client = Client::Unknown;
        assert_eq!(pick(&p, &r), None);
    }

    #[test]
    fn an_authorizer_condition_reads_the_context_field() {
        let (p, _) = compiled(
            r#"policy a { when authorizer "plan" is "frozen"; mock 503 }"#,
            Some(AuthKind::Authorizer),
        );
        let mut r = request("/o/7", &[]);
        assert_eq!(pick(&p, &r), None, "no context");
        r.authorizer = Some(vec![("plan".into(), "frozen".into())]);
        assert_eq!(pick(&p, &r).map(|(a, _)| a).as_deref(), Some("mock 503"));
    }

    #[test]
    fn the_first_policy_that_holds_wins_when_policies_overlap() {
        let p = ok(
            r#"policy narrow { when header "A" is "1"; when header "B" is "1"; forward c }
            policy wide { when header "A" is "1"; mock 204 }"#,
        );
        let both = request("/o/7", &[("a", "1"), ("b", "1")]);
        assert_eq!(
            pick(&p, &both).map(|(a, _)| a).as_deref(),
            Some("forward c +0")
        );
        let one = request("/o/7", &[("a", "1")]);
        assert_eq!(pick(&p, &one).map(|(a, _)| a).as_deref(), Some("mock 204"));
    }

    #[test]
    fn a_policy_hands_its_own_backend_statements_to_its_forward() {
        let p = ok(
            r#"policy canary { when header "X-Canary" is "1"; forward c; backend header "X-Canary" constant "1"; remove query "debug" }"#,
        );
        assert_eq!(p[0].action, "forward c +2");
    }

    #[test]
    fn a_policy_prints_its_conditions_joined_by_its_combiner() {
        let p = ok(
            r#"policy p any { when header "A" in "1" "2"; when source 10.0.0.0/8 192.168.0.0/16; when query "r" matches "cn-.*"; mock 204 }
            policy q { when path "id" is "7"; when claim "role" is "x"; mock 204 }"#,
        );
        assert_eq!(
            p[0].to_string(),
            r#"policy p: header A in ["1", "2"] or source 10.0.0.0/8 192.168.0.0/16 or query r matches "cn-.*""#
        );
        assert_eq!(
            p[1].to_string(),
            r#"policy q: path id is "7" and claim role is "x""#
        );
    }

    #[test]
    fn more_than_five_policies_is_an_error_at_the_sixth() {
        let six: String = (0..6)
            .map(|i| format!("policy p{i} {{ when header \"A\" is \"{i}\"; mock 204 }}\n"))
            .collect();
        assert_eq!(
            codes(&six, None),
            [(diag::TOO_MANY_POLICIES.id, Severity::Error)]
        );
        let five: String = six.lines().take(5).collect::<Vec<_>>().join("\n");
        assert_eq!(codes(&five, None), []);
    }

    #[test]
    fn a_policy_needs_a_condition_and_exactly_one_action() {
        let e = Severity::Error;
        assert_eq!(
            codes("policy p { mock 204 }", None),
            [(diag::MISSING_STATEMENT.id, e)]
        );
        assert_eq!(
            codes(r#"policy p { when header "A" is "1" }"#, None),
            [(diag::MISSING_STATEMENT.id, e)]
        );
        assert_eq!(
            codes(
                r#"policy p { when header "A" is "1"; mock 204; forward c }"#,
                None
            ),
            [(diag::TWO_ACTIONS.id, e)]
        );
        assert_eq!(
            codes(
                r#"policy p { when header "A" is "1"; mock 204; remove header "Cookie" }"#,
                None
            ),
            [(diag::NOT_APPLICABLE.id, e)]
        );
        assert_eq!(
            codes(
                r#"policy p { when header "A" is "1"; mock 204 }; policy p { when header "A" is "2"; mock 204 }"#,
                None
            ),
            [(diag::DUPLICATE_NAME.id, e)]
        );
    }

    #[test]
    fn a_condition_must_read_something_the_route_has_before_the_body() {
        let e = Severity::Error;
        assert_eq!(
            codes(r#"policy p { when path "idd" is "1"; mock 204 }"#, None),
            [(diag::UNDECLARED_PATH_VAR.id, e)]
        );
        assert_eq!(
            codes(r#"policy p { when form "a" is "1"; mock 204 }"#, None),
            [(diag::NOT_APPLICABLE.id, e)]
        );
    }

    #[test]
    fn an_invalid_pattern_is_an_error_quoting_the_regex_engine() {
        let (_, diags) = compiled(
            r#"policy p { when query "a" matches "(x"; mock 204 }"#,
            None,
        );
        assert_eq!(diags.len(), 1);
        assert_eq!(diags[0].code, diag::BAD_PATTERN);
        assert!(
            diags[0].label.contains("without closing"),
            "{}",
            diags[0].label
        );
    }

    #[test]
    fn a_claim_without_a_claims_provider_or_a_field_without_an_authorizer_is_warned() {
        let w = Severity::Warning;
        let claim = r#"policy p { when claim "role" is "staff"; mock 204 }"#;
        assert_eq!(codes(claim, None), [(diag::POLICY_NEVER_HOLDS.id, w)]);
        assert_eq!(
            codes(claim, Some(AuthKind::AppSignature)),
            [(diag::POLICY_NEVER_HOLDS.id, w)]
        );
        assert_eq!(codes(claim, Some(AuthKind::Jwt)), []);
        let field = r#"policy p { when authorizer "plan" is "x"; mock 204 }"#;
        assert_eq!(
            codes(field, Some(AuthKind::Jwt)),
            [(diag::POLICY_NEVER_HOLDS.id, w)]
        );
        assert_eq!(codes(field, Some(AuthKind::Authorizer)), []);
        let either =
            r#"policy p any { when authorizer "plan" is "x"; when header "A" is "1"; mock 204 }"#;
        assert_eq!(
            codes(either, None),
            [],
            "`any` holds through its other condition"
        );
    }

    #[test]
    fn a_policy_an_earlier_one_covers_is_warned_and_a_narrower_earlier_one_is_not() {
        let w = [(diag::POLICY_UNREACHABLE.id, Severity::Warning)];
        let pair = |a: &str, b: &str| codes(&format!("policy a {a}\npolicy b {b}"), None);
        let is1 = r#"{ when header "X" is "1"; mock 204 }"#;
        assert_eq!(pair(is1, r#"{ when header "x" is "1"; forward c }"#), w);
        assert_eq!(pair(r#"{ when header "X" in "1" "2"; mock 204 }"#, is1), w);
        assert_eq!(
            pair(r#"{ when header "X" matches "[0-9]"; mock 204 }"#, is1),
            w
        );
        assert_eq!(
            pair(
                r#"{ when source 10.0.0.0/8; mock 204 }"#,
                r#"{ when source 10.1.0.0/16; mock 204 }"#
            ),
            w
        );
        assert_eq!(
            pair(
                is1,
                r#"{ when header "X" is "1"; when query "q" is "2"; mock 204 }"#
            ),
            w
        );
        assert_eq!(
            pair(
                r#"{ when header "X" is "1"; when query "q" is "2"; mock 204 }"#,
                is1
            ),
            []
        );
        assert_eq!(
            pair(
                r#"{ when header "X" in "1" "2"; mock 204 }"#,
                r#"{ when header "X" in "2" "3"; mock 204 }"#
            ),
            []
        );
        assert_eq!(pair(is1, r#"{ when query "X" is "1"; mock 204 }"#), []);
        assert_eq!(
            pair(
                r#"{ when header "X" matches "1"; mock 204 }"#,
                r#"{ when header "X" matches "1|1"; mock 204 }"#
            ),
            []
        );
        let any = r#"any { when header "X" is "1"; when query "q" is "2"; mock 204 }"#;
        assert_eq!(pair(any, is1), w);
        assert_eq!(pair(is1, any), []);
        assert_eq!(
            pair(
                any,
                r#"any { when query "q" is "2"; when header "X" is "1"; mock 204 }"#
            ),
            w
        );
    }
}
