//! The per-request pipeline. Pure: no I/O; time, request ids and counters come through
//! [`Env`]. `serve`, `explain` and `test` all run it through one driver, [`Drive`], which
//! resumes it after the effects it asks for (the body, a shared store's counts, an
//! authorizer's answer: see `decide/drive.rs`), so nothing is evaluated differently offline.
//!
//! The steps run in a fixed order (DESIGN.md §4), and each records a [`Step`] in the trace:
//!
//! 1. request sanity (URI and header sizes, Host)
//! 2. service by Host, stage, route by path, then method; a forward's path variables that
//!    would leave its rewrite's prefix are refused here ([`path_safety`])
//! 3. protocol · 4. CORS · 5. client IP · 6. websocket handshake · 7. authentication and the
//!    app's standing · 8. parameters · 9. body size · 10. rate limits and quotas — each as
//!    compiled into the route's check program
//! 11. the action: mock, forward or issue tokens

mod authorizer;
mod checks;
mod drive;
pub mod env;
mod path_safety;
mod request_id;
mod response;
mod token_endpoint;
mod upstream;

// The request's own vocabulary lives in `crate::request`; named here too, as before.
pub use crate::check::Verdict;
pub use crate::request::{client, head as request};
pub use client::Client;
pub use drive::{decide_with_body, Drive, Effect, Next};
pub use env::{Env, Limiter, MemoryLimiter, VirtualEnv};
pub use request::{Arrival, HostFrom, RequestHead};
pub use request_id::RequestId;
pub use response::{rejection, render_response, respond_headers, Customized, Response};

use crate::check::Phase;
use crate::compile::tree::Capture;
use crate::compile::{Action, Check, Route, Service, Snapshot, StageSelector};
use crate::dialect::Reason;
use crate::vocab::{Dialect, Method};
use smallvec::SmallVec;
use std::borrow::Cow;
use std::fmt;
use std::net::IpAddr;

/// What to do with a request, and why.
#[derive(Debug)]
pub struct Decision {
    pub request_id: RequestId,
    pub dialect: Dialect,
    pub service: Option<usize>,
    pub stage: Option<usize>,
    pub route: Option<usize>,
    /// The authenticated app, if any.
    pub app: Option<usize>,
    /// The client address the checks used (the peer, or from X-Forwarded-For or Forwarded via
    /// a trusted proxy; unknown when a trusted proxy did not name it).
    pub client_ip: Client,
    /// The TCP peer: the last hop of the forwarded X-Forwarded-For.
    pub peer: IpAddr,
    pub outcome: Outcome,
    /// Headers the pipeline adds to whatever response results (CORS, Retry-After).
    pub headers: Vec<(String, String)>,
    /// The route's own `response header`s: added to its mock and forwarded responses, never
    /// to the vendor's rejection rows.
    pub response_headers: Vec<(String, String)>,
    /// Set when an external authorizer allowed the request: its `context`, which the backend
    /// receives as `X-Authorizer-<key>` headers (client-sent headers of that prefix are dropped
    /// on every forward, with an authorizer or not).
    pub authorizer_context: Option<Vec<(String, String)>>,
    pub trace: Vec<Step>,
    /// The W3C trace the request belongs to and the gateway's span in it: what the backend
    /// receives as `traceparent`, the access line's `trace` (see [`crate::request::trace`]).
    pub trace_context: crate::request::TraceContext,
    /// The index in the route's program of the check that ended the pipeline (refused, or
    /// asked for the body); `None` when routing decided or every check passed. Policy tests
    /// measure coverage of the program's rejection branches with it.
    pub check: Option<usize>,
    /// The policy backend whose action the action step took (its index among the route's
    /// policies); `None` when the route's own action ran or the action was not reached.
    pub policy: Option<usize>,
    /// The service's custom gateway responses (Huawei) and this request's values for their
    /// variables; `None` when the service has none (every refusal is the dialect's row).
    pub custom: Option<Box<response::Customized>>,
    /// A header or query parameter carrying the caller's credentials that the backend must not
    /// receive (`hide credentials`).
    pub hidden: Option<Box<(crate::vocab::ParamLocation, String)>>,
}

#[derive(Debug, PartialEq)]
pub enum Outcome {
    /// Refuse with the dialect's row for this reason.
    Reject(Reason),
    /// Answer directly: a mock (shared with the compiled route), a CORS preflight, a token.
    Respond(std::sync::Arc<Response>),
    Forward(ForwardPlan),
    /// Form parameters must be checked (or a token request read): read the body (at most `limit` bytes) and decide again.
    NeedBody {
        limit: u64,
    },
    /// The request's limits are counted, or its nonce looked up, in a remote store: have the
    /// env's limiter fetch the answer (one round trip for all the limits), then decide again.
    NeedCounts,
    /// The route's external authorizer must be asked (its answer is neither cached nor
    /// fetched yet): make this call, then decide again.
    NeedAuthorization(Box<crate::auth::authorizer::Call>),
}

/// Where to send a request that passed every check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ForwardPlan {
    pub backend: usize,
    /// The upstream request target: rewritten path plus the original query.
    pub target: String,
    /// The policy backend that chose this forward (its index among the route's policies);
    /// `None`: the route's own forward.
    pub policy: Option<usize>,
    /// What the backend request gains and loses beyond the forwarding rules (backend
    /// parameters, removals, response edits); `None` for a forward without them.
    pub shaped: Option<Box<crate::upstream::shape::Shaped>>,
    /// What the backend's signature covers (its time, the body's hash); `None` when the
    /// backend does not sign.
    pub stamp: Option<Box<crate::upstream::sign::Stamp>>,
    /// The backend's target that takes the request (the first attempt; a retry picks
    /// another), and whether it is a half-open breaker's probe.
    pub pick: crate::upstream::state::Pick,
    /// A websocket handshake on a `websocket` route: the backend request asks to switch
    /// protocols and a `101` answer is tunnelled. Otherwise the backend is not asked, and a
    /// `101` it sends anyway is a bad gateway.
    pub tunnel: bool,
}

/// One pipeline step as it happened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Step {
    /// DESIGN.md §4 step number.
    pub n: u8,
    pub name: &'static str,
    pub verdict: Verdict,
    pub detail: String,
}

impl fmt::Display for Step {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let v = match self.verdict {
            Verdict::Pass => "pass",
            Verdict::Fail => "FAIL",
            Verdict::Done => "done",
        };
        write!(f, "{:>2} {:<10} {v:<4}  {}", self.n, self.name, self.detail)
    }
}

/// The request as the route sees it after routing: its path variables and segments.
struct Routed<'s, 'r> {
    service: &'s Service,
    route: &'s Route,
    /// (name, decoded value) in path order; a `{rest+}` value is its segments joined by `/`.
    vars: Vec<(&'s str, String)>,
    /// The `{rest+}` variable's segments, kept apart so forwarding re-encodes each one (an
    /// encoded `%2F` inside a segment must not become a separator).
    rest: Option<(&'s str, Vec<String>)>,
    /// The request path after a path-selected stage prefix is removed.
    path: &'r str,
    /// A CORS preflight: only the protocol checks run, then step 4 answers it.
    preflight: bool,
}

struct Pipeline<'a, 'r> {
    snap: &'a Snapshot,
    /// The request's head, by value (it is a few borrowed slices): the driver that owns a
    /// stopped pipeline gives it the body when the pipeline asks.
    head: RequestHead<'r>,
    env: &'a dyn Env,
    /// Whether steps are recorded (see [`Env::keeps_trace`]).
    tracing: bool,
    d: Decision,
    /// What a check established before it stopped for an effect, handed back when the
    /// pipeline resumes there (see `drive.rs`).
    resume: drive::Resume,
    /// Where the body-size check judged the request without its body (see `drive.rs`).
    bodyless: Option<drive::Mark>,
    /// The verified token's claims, kept after step 7 for the route's policies.
    claims: Option<serde_json::Value>,
}

/// Decide what to do with one request, as far as the pipeline goes without an effect: a
/// request that needs none is decided; one that does stops with `NeedBody`, `NeedCounts` or
/// `NeedAuthorization` (drive it with [`Drive`] to have them answered). Never panics on any
/// input.
pub fn decide(snap: &Snapshot, head: &RequestHead<'_>, env: &dyn Env) -> Decision {
    let mut p = Pipeline::new(snap, *head, env);
    p.d.outcome = match p.route() {
        Ok(routed) => p.proceed(&routed, 0),
        Err(outcome) => outcome,
    };
    p.d.custom = response::customized(snap, head, &p.d);
    p.d
}

impl Decision {
    /// Before the first step: nothing found yet, the peer as the client.
    #[inline]
    fn new(snap: &Snapshot, head: &RequestHead<'_>) -> Decision {
        Decision {
            request_id: RequestId::default(),
            dialect: snap.default_dialect,
            service: None,
            stage: None,
            route: None,
            app: None,
            client_ip: Client::Known(head.peer),
            peer: head.peer,
            outcome: Outcome::Reject(Reason::Internal),
            headers: Vec::new(),
            response_headers: Vec::new(),
            authorizer_context: None,
            trace: Vec::new(),
            trace_context: Default::default(),
            check: None,
            policy: None,
            custom: None,
            hidden: None,
        }
    }
}

impl<'a, 'r> Pipeline<'a, 'r> {
    #[inline]
    fn new(snap: &'a Snapshot, head: RequestHead<'r>, env: &'a dyn Env) -> Self {
        Pipeline {
            snap,
            head,
            env,
            tracing: env.keeps_trace(),
            d: Decision::new(snap, &head),
            resume: drive::Resume::Nothing,
            bodyless: None,
            claims: None,
        }
    }

    /// Record a step. The detail is formatted only when the environment keeps a trace
    /// (`explain`, `test`); `serve` does not, so call sites pass `format_args!`, which costs
    /// nothing until it is written.
    fn step(&mut self, phase: Phase, verdict: Verdict, detail: impl fmt::Display) {
        if self.tracing {
            self.d.trace.push(Step {
                n: phase.n(),
                name: phase.name(),
                verdict,
                detail: detail.to_string(),
            });
        }
    }

    fn fail(&mut self, phase: Phase, detail: impl fmt::Display, reason: Reason) -> Outcome {
        self.step(phase, Verdict::Fail, detail);
        Outcome::Reject(reason)
    }

    /// Steps 1 and 2: the request's sanity, its service, stage, route and method.
    fn route(&mut self) -> Result<Routed<'a, 'r>, Outcome> {
        let head = self.head;
        // An ambiguous host selects no service: the default dialect refuses it.
        if let Some(conflict) = head.host_conflict() {
            self.identify(None);
            return Err(self.fail(Phase::Sanity, conflict, Reason::BadRequest));
        }
        let host = head.host.map(normalize_host);
        let service_index = host.as_deref().and_then(|h| self.snap.hosts.find(h));
        let service = service_index.map(|i| &self.snap.services[i]);
        if let Some(s) = service {
            self.d.dialect = s.dialect;
        }
        self.identify(service);
        let host = self.sanity(service, host)?;
        self.routing(service_index.zip(service), &host)
    }

    /// Steps 3–11 from check `from` of the route's program (0, or where a resumed pipeline
    /// stopped): the checks, then the preflight's answer or the action (a preflight stops
    /// after the protocol and is answered at step 4).
    fn proceed(&mut self, routed: &Routed<'a, 'r>, from: usize) -> Outcome {
        let route = routed.route;
        // 3–10: the route's program.
        for (i, check) in route.program.iter().enumerate().skip(from) {
            if routed.preflight && !matches!(check, Check::Protocol(_)) {
                break;
            }
            if self.head.body.is_none() && matches!(check, Check::BodySize(_)) {
                self.bodyless = Some(self.mark(i));
            }
            let mut cx = checks::Running { p: self, r: routed };
            if let Err(outcome) = check.run(&mut cx) {
                self.d.check = Some(i);
                return outcome;
            }
        }
        if routed.preflight {
            return self.preflight(routed);
        }

        // 11. the action
        self.action(routed)
    }

    /// Where the pipeline stands before check `check` runs.
    fn mark(&self, check: usize) -> drive::Mark {
        drive::Mark {
            check,
            trace: self.d.trace.len(),
            headers: self.d.headers.len(),
        }
    }

    /// Step 1: the URI and header sizes within the service's (or the default) limits, a
    /// sane Host and a path target. Returns the normalised host.
    fn sanity(
        &mut self,
        service: Option<&Service>,
        host: Option<Cow<'r, str>>,
    ) -> Result<Cow<'r, str>, Outcome> {
        let head = self.head;
        let limits = service
            .map(|s| s.limits)
            .unwrap_or(self.snap.default_limits);
        if head.target.len() as u64 > limits.uri {
            return Err(self.fail(
                Phase::Sanity,
                format_args!("URI is {} bytes, limit {}", head.target.len(), limits.uri),
                Reason::UriTooLarge,
            ));
        }
        let mut total = 0u64;
        for (name, value) in head.headers {
            let size = (name.as_str().len() + value.len()) as u64;
            if size > limits.header {
                return Err(self.fail(
                    Phase::Sanity,
                    format_args!("header {name} is {size} bytes, limit {}", limits.header),
                    Reason::HeaderTooLarge,
                ));
            }
            total += size;
        }
        if total > limits.headers {
            return Err(self.fail(
                Phase::Sanity,
                format_args!("headers are {total} bytes, limit {}", limits.headers),
                Reason::HeadersTooLarge,
            ));
        }
        let Some(host) = host.filter(|h| valid_host(h)) else {
            return Err(self.fail(
                Phase::Sanity,
                format_args!("missing or malformed Host {:?}", head.host.unwrap_or("")),
                Reason::BadRequest,
            ));
        };
        if !head.target.starts_with('/') {
            return Err(self.fail(
                Phase::Sanity,
                format_args!("request target {:?} is not a path", head.target),
                Reason::BadRequest,
            ));
        }
        self.step(
            Phase::Sanity,
            Verdict::Pass,
            format_args!(
                "URI {} B, headers {total} B within limits",
                head.target.len()
            ),
        );
        Ok(host)
    }

    /// The path's segments, decoded; a dot segment or an undecodable one is refused.
    fn segments(&mut self, raw_path: &'r str) -> Result<SmallVec<[Cow<'r, str>; 8]>, Outcome> {
        // Most paths have a few segments: kept on the stack.
        let mut segments: SmallVec<[Cow<'r, str>; 8]> = SmallVec::new();
        if raw_path != "/" {
            // by bytes: `split('/')`'s char searcher cost 160 instructions a request, this 90
            for s in request::split_bytes(&raw_path[1..], b'/') {
                match request::decode_segment(s) {
                    // Clients remove dot segments before sending (RFC 3986 §5.2.4); one that
                    // arrives, raw or encoded, could climb out of a rewritten backend path.
                    Some(d) if d == "." || d == ".." => {
                        return Err(self.fail(
                            Phase::Route,
                            format_args!("path segment {s:?} is a dot segment"),
                            Reason::BadRequest,
                        ));
                    }
                    Some(s) => segments.push(s),
                    None => {
                        let detail =
                            format!("path segment {s:?} is not valid percent-encoded UTF-8");
                        return Err(self.fail(Phase::Route, detail, Reason::BadRequest));
                    }
                }
            }
        }
        Ok(segments)
    }

    /// Step 2: the service by Host, its stage, the route by path and method.
    fn routing(
        &mut self,
        service: Option<(usize, &'a Service)>,
        host: &str,
    ) -> Result<Routed<'a, 'r>, Outcome> {
        let head = self.head;
        let Some((service_index, service)) = service else {
            return Err(self.fail(
                Phase::Host,
                format_args!("no service serves host {host:?}"),
                Reason::NoHost {
                    host: host.to_string(),
                },
            ));
        };
        self.d.service = Some(service_index);
        self.step(
            Phase::Host,
            Verdict::Pass,
            format_args!("{host} → service {}", service.name),
        );

        let raw_path = head.path();
        let segments = self.segments(raw_path)?;
        let (stage, path, skip) = self.stage(service, raw_path, &segments)?;
        let segments = segments.get(skip..).unwrap_or_default();
        self.d.stage = stage;
        let tree = &service.trees[stage.unwrap_or(0)];
        let Some(found) = tree.lookup(segments) else {
            return Err(self.fail(
                Phase::Route,
                format_args!("no route matches {raw_path}"),
                Reason::NoRoute {
                    uri: raw_path.to_string(),
                },
            ));
        };
        let method = Method::parse(head.method).filter(|m| *m != Method::Any);
        let preflight = method == Some(Method::Options)
            && head.header(http::header::ORIGIN).is_some()
            && found.methods.get(Method::Options).is_none();
        let requested = if preflight {
            head.header(http::header::ACCESS_CONTROL_REQUEST_METHOD)
                .and_then(Method::parse)
        } else {
            method
        };
        let preflight = preflight && requested.is_some();
        let Some(route_index) = found
            .methods
            .resolve(if preflight { requested } else { method })
        else {
            return Err(self.fail(
                Phase::Method,
                format_args!("{} is not routed for {raw_path}", head.method),
                Reason::MethodNotAllowed {
                    method: head.method.to_string(),
                    uri: raw_path.to_string(),
                },
            ));
        };
        let route = &service.routes[route_index as usize];
        self.d.route = Some(route_index as usize);
        let vars = path_vars(route, &found.captures);
        self.step(
            Phase::Route,
            Verdict::Pass,
            format_args!("{} ({}){}", route.label, route.location, ShownVars(&vars)),
        );
        self.d
            .response_headers
            .extend(route.response_headers.iter().cloned());
        let rest = rest_var(route, &found.captures);
        let routed = Routed {
            service,
            route,
            vars,
            rest,
            path,
            preflight,
        };
        // Before any check counts or calls out: a forward must not expose a variable.
        // (the route's forward, or one a policy may choose)
        if forwards(route).next().is_some() {
            self.upstream_vars_safe(&routed)?;
        }

        // A route with cors gives its CORS headers to every answer, refusals included, so a
        // browser page can read why it was refused; a preflight is answered at step 4.
        if route.cors.is_some() && !preflight {
            self.cors_headers(route);
        }
        Ok(routed)
    }

    /// The request's id and its trace context. A new trace reuses the bits of the id the
    /// gateway made; an id taken from a header is the client's, so the env makes another one
    /// for the trace (random in `serve`, the next in sequence in `explain` and `test`).
    fn identify(&mut self, service: Option<&Service>) {
        self.d.request_id = self.request_id(service);
        let bits = match self.d.request_id.made_bits() {
            Some(bits) => bits,
            None => self.env.request_id().made_bits().unwrap_or(1),
        };
        self.d.trace_context = crate::request::TraceContext::of(self.head.headers, bits);
    }

    fn request_id(&self, service: Option<&Service>) -> RequestId {
        let trusted = service
            .and_then(|s| s.request_id_header.as_deref())
            .and_then(|h| self.head.header(h))
            .filter(|v| {
                !v.is_empty()
                    && v.len() <= 128
                    && v.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
            });
        match trusted {
            Some(v) => RequestId::given(v),
            None => self.env.request_id(),
        }
    }

    /// Find the stage; returns (stage index, path after a stage prefix, how many leading
    /// segments the stage took).
    fn stage(
        &mut self,
        service: &Service,
        raw_path: &'r str,
        segments: &[Cow<'r, str>],
    ) -> Result<(Option<usize>, &'r str, usize), Outcome> {
        match &service.stages {
            StageSelector::None => Ok((None, raw_path, 0)),
            StageSelector::Header {
                header,
                names,
                default,
            } => match self.head.header(header) {
                None => {
                    self.step(
                        Phase::Stage,
                        Verdict::Pass,
                        format_args!("{} (default: no {header} header)", names[*default]),
                    );
                    Ok((Some(*default), raw_path, 0))
                }
                Some(v) => match names.iter().position(|n| n.eq_ignore_ascii_case(v.trim())) {
                    Some(i) => {
                        self.step(
                            Phase::Stage,
                            Verdict::Pass,
                            format_args!("{} (from {header})", names[i]),
                        );
                        Ok((Some(i), raw_path, 0))
                    }
                    None => Err(self.fail(
                        Phase::Stage,
                        format_args!("{header}: {v:?} names no stage of this service"),
                        Reason::NoStage {
                            stage: v.to_string(),
                            from_path: false,
                        },
                    )),
                },
            },
            StageSelector::Path { names } => {
                let first = segments.first().map(|s| s.as_ref()).unwrap_or("");
                match names.iter().position(|n| n.eq_ignore_ascii_case(first)) {
                    Some(i) => {
                        self.step(
                            Phase::Stage,
                            Verdict::Pass,
                            format_args!("{} (from the path)", names[i]),
                        );
                        let prefix_len = 1 + raw_path[1..].find('/').unwrap_or(raw_path.len() - 1);
                        let rest = &raw_path[prefix_len..];
                        let rest = if rest.is_empty() { "/" } else { rest };
                        Ok((Some(i), rest, 1))
                    }
                    None => {
                        let mapping = format!("/{}", raw_path[1..].split('/').next().unwrap_or(""));
                        let detail =
                            format!("path prefix {mapping:?} names no stage of this service");
                        Err(self.fail(
                            Phase::Stage,
                            detail,
                            Reason::NoStage {
                                stage: mapping,
                                from_path: true,
                            },
                        ))
                    }
                }
            }
        }
    }

    fn action(&mut self, r: &Routed<'_, '_>) -> Outcome {
        let chosen = match r.route.policies.is_empty() {
            true => None,
            false => self.policy(r),
        };
        let index = chosen.as_ref().map(|(i, _)| *i);
        self.d.policy = index;
        let action = index.map_or(&r.route.action, |i| &r.route.policies[i].action);
        let because = Because(chosen.as_ref().and_then(|(_, why)| why.as_deref()));
        match action {
            Action::Mock(m) => {
                self.step(
                    Phase::Action,
                    Verdict::Done,
                    format_args!("mock {}{because}", m.answer.status),
                );
                Outcome::Respond(m.answer.clone())
            }
            Action::Forward(f) => self.forward(r, f, index, because),
            Action::IssueTokens { provider } => self.issue_tokens(r, *provider),
        }
    }

    /// The backend request's target: the path (rewritten, or as received) and the query.
    fn target(&self, r: &Routed<'_, '_>, f: &crate::compile::ForwardAction) -> String {
        let query = self.visible_query();
        let mut target = match &f.path {
            None => {
                // sized for the query too: one allocation, not a second to make room for it
                let room = query.as_ref().map_or(0, |q| 1 + q.len());
                let mut path = String::with_capacity(r.path.len() + room);
                path.push_str(r.path);
                path
            }
            Some(t) => rewrite(t, &r.vars, r.rest.as_ref()),
        };
        // written onto the path rather than formatted: on every forward with a query
        if let Some(q) = query {
            target.push('?');
            target.push_str(&q);
        }
        target
    }

    /// The client's query as the backend may see it: without a parameter that carries hidden
    /// credentials (`hide credentials`).
    fn visible_query(&self) -> Option<Cow<'r, str>> {
        let query = self.head.query()?;
        let Some((crate::vocab::ParamLocation::Query, name)) = self.d.hidden.as_deref() else {
            return Some(Cow::Borrowed(query));
        };
        let kept: Vec<&str> = query
            .split('&')
            .filter(|pair| {
                let key = pair.split_once('=').map_or(*pair, |(k, _)| k);
                crate::request::head::decode_component(key).as_deref() != Some(name.as_str())
            })
            .collect();
        (!kept.is_empty()).then(|| Cow::Owned(kept.join("&")))
    }

    /// The route's first policy backend whose conditions hold, and why (when tracing).
    fn policy(&mut self, r: &Routed<'_, '_>) -> Option<(usize, Option<String>)> {
        let client = self.client_ip(r.service);
        let seen = crate::upstream::policy::Seen {
            head: self.head,
            vars: &r.vars,
            client,
            claims: self.claims.as_ref(),
            authorizer: self.d.authorizer_context.as_deref(),
        };
        let policies = &r.route.policies;
        let i = crate::upstream::policy::choose(policies, &seen)?;
        let why = self.tracing.then(|| policies[i].why(&seen).to_string());
        Some((i, why))
    }
}

/// Why the action step took a policy's action, if it did: ` (policy canary: …)`.
pub(super) struct Because<'a>(Option<&'a str>);

impl fmt::Display for Because<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(why) => write!(f, " ({why})"),
            None => Ok(()),
        }
    }
}

impl Pipeline<'_, '_> {
    /// Refuse a variable that a forwarded path would expose as a dot segment or an extra
    /// separator (see [`path_safety`]): those of a rewrite, or every capture when the path
    /// is forwarded as sent; one pass, in path order, over what any of the route's forwards
    /// (its own, its policies') exposes.
    fn upstream_vars_safe(&mut self, r: &Routed<'_, '_>) -> Result<(), Outcome> {
        let exposed = |name: &str| forwards(r.route).any(|f| f.exposes(name));
        for (name, value) in r.vars.iter().filter(|(name, _)| exposed(name)) {
            let (shape, safe) = match &r.rest {
                Some((rest, segments)) if rest == name => (
                    path_safety::Shape::Path,
                    segments
                        .iter()
                        .all(|s| path_safety::rest_segment_is_safe(s)),
                ),
                _ => (
                    path_safety::Shape::Segment,
                    path_safety::segment_is_safe(value),
                ),
            };
            if !safe {
                let detail = format!(
                    "path variable {name} = {value:?} would leave the forwarded path's prefix \
                     or add a segment to it"
                );
                return Err(self.fail(
                    Phase::Route,
                    detail,
                    Reason::ParamInvalid {
                        location: crate::vocab::ParamLocation::Path,
                        name: name.to_string(),
                        expected: shape.expected().to_string(),
                    },
                ));
            }
        }
        Ok(())
    }
}

/// The forwards a route may take: its own action's, then its policies'.
pub(super) fn forwards(route: &Route) -> impl Iterator<Item = &crate::compile::ForwardAction> {
    std::iter::once(&route.action)
        .chain(route.policies.iter().map(|p| &p.action))
        .filter_map(|a| match a {
            Action::Forward(f) => Some(f),
            _ => None,
        })
}

/// The route's path variables with their decoded values, in path order; a `{rest+}` value is
/// its segments joined by `/`.
fn path_vars<'s>(route: &'s Route, captures: &[Capture<'_>]) -> Vec<(&'s str, String)> {
    // the captures first: a route without variables does not read its template
    captures
        .iter()
        .zip(route.template.vars())
        .map(|(c, name)| match c {
            Capture::One(s) => (name, s.to_string()),
            Capture::Rest(s) => (name, s.join("/")),
        })
        .collect()
}

/// The `{rest+}` variable and its segments, if the route has one.
fn rest_var<'s>(route: &'s Route, captures: &[Capture<'_>]) -> Option<(&'s str, Vec<String>)> {
    // a `{rest+}` is only ever last, in the path and among the captures
    let Some(Capture::Rest(segments)) = captures.last() else {
        return None;
    };
    let name = route.template.vars().last()?;
    Some((name, segments.iter().map(|s| s.to_string()).collect()))
}

/// Path variables as the trace shows them: ` name="value"` each.
struct ShownVars<'a>(&'a [(&'a str, String)]);

impl fmt::Display for ShownVars<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (k, v) in self.0 {
            write!(f, " {k}={v:?}")?;
        }
        Ok(())
    }
}

/// Fill a forward path template with the route's variables, percent-encoding each segment.
/// A `{var}` or `{var+}` naming the route's rest variable expands to all its segments.
fn rewrite(
    t: &crate::vocab::PathTemplate,
    vars: &[(&str, String)],
    rest: Option<&(&str, Vec<String>)>,
) -> String {
    use crate::vocab::Segment;
    if t.is_root() {
        return "/".to_string();
    }
    // room for a usual path and its query: grown from empty it took two allocations or three
    let mut out = String::with_capacity(64);
    let value = |name: &str| {
        vars.iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v.as_str())
            .unwrap_or("")
    };
    for s in t.segments() {
        out.push('/');
        match s {
            Segment::Literal(l) => out.push_str(l),
            Segment::Var(v) | Segment::Rest(v) => match rest {
                Some((name, segments)) if *name == v => {
                    let parts: Vec<String> = segments
                        .iter()
                        .map(|p| request::encode_segment(p))
                        .collect();
                    out.push_str(&parts.join("/"));
                }
                _ => out.push_str(&request::encode_segment(value(v))),
            },
        }
    }
    out
}

/// Lower-case, without port and without a trailing dot; borrowed when it already is.
fn normalize_host(h: &str) -> Cow<'_, str> {
    let h = request::trim(h);
    let without_port = if let Some(rest) = h.strip_prefix('[') {
        match rest.split_once(']') {
            Some((v6, _)) => return format!("[{}]", v6.to_ascii_lowercase()).into(),
            None => h,
        }
    } else {
        // a byte search: `rsplit_once(':')` costs several times as much on every request
        match h.bytes().rposition(|b| b == b':') {
            Some(at) if h[at + 1..].bytes().all(|b| b.is_ascii_digit()) => &h[..at],
            _ => h,
        }
    };
    let host = without_port.trim_end_matches('.');
    if host.bytes().any(|b| b.is_ascii_uppercase()) {
        host.to_ascii_lowercase().into()
    } else {
        host.into()
    }
}

fn valid_host(h: &str) -> bool {
    !h.is_empty()
        && h.len() <= 255
        // a pattern, not `b"-._[]:".contains`: a call for each dot of every request's host
        && h.bytes().all(|b| {
            b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'[' | b']' | b':')
        })
}

#[cfg(test)]
mod tests {
    /// A host's bytes matched by pattern are the bytes the list allowed.
    #[test]
    fn a_host_is_valid_as_the_list_had_it() {
        let by_list = |h: &str| {
            !h.is_empty()
                && h.len() <= 255
                && h.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-._[]:".contains(&b))
        };
        for c in (0..128u8).map(char::from).chain(['é', '\u{a0}', 'ı']) {
            for host in [format!("a{c}b"), c.to_string()] {
                assert_eq!(super::valid_host(&host), by_list(&host), "{host:?}");
            }
        }
    }
}
