//! Compiling one route: references, path variables, its terminal action, its place in the
//! path trees (where duplicates are caught), and its check program, which each check of
//! `crate::check` compiles from its own statements through [`Building`].

use super::snapshot::*;
use super::tree::{Shape, TreeBuilder};
use super::{dedup, Cx, Names, Once};
use crate::check;
use crate::policy::ast::{self, AuthKind, Segment, Span, Spanned};
use crate::policy::diag::{self, did_you_mean, Diagnostic};
use crate::upstream::orchestrate;
use crate::upstream::policy::{self, Policy};
use crate::upstream::shape::Shaping;
use crate::vocab::{Dialect, Method, Protocol};
use std::collections::HashMap;
use std::sync::Arc;

pub(crate) struct RouteCx<'s> {
    pub service: &'s str,
    pub dialect: Dialect,
    pub protocols: &'s [Protocol],
    pub client_cert_required: bool,
    pub stages: &'s StageSelector,
    pub limits: Limits,
    pub ip: &'s std::sync::Arc<IpRules>,
    pub backends: &'s Names,
    pub apps: &'s Names,
    pub providers: &'s Names,
    pub provider_kinds: Vec<AuthKind>,
    pub trees: Vec<TreeBuilder>,
    pub routes: Vec<Route>,
    /// Span of each route's path, for "first defined here".
    pub route_spans: Vec<Span>,
    pub used_backends: Vec<bool>,
    pub used_providers: Vec<bool>,
    /// How many routes so far carry each label: a rate's counter id numbers a label's later
    /// uses (`#1`, `#2`, …). A map, not a scan of the routes before: compiling stays linear.
    pub label_uses: HashMap<Arc<str>, u32>,
    /// The service's `throttle NAME`, for routes that bind none of their own.
    pub throttle: Option<ast::Ident>,
    /// Each app's key, by app index (`None`: the app is broken).
    pub app_keys: Vec<Option<String>>,
}

impl RouteCx<'_> {
    pub fn route(&mut self, cx: &mut Cx<'_>, r: &ast::Route, span: Span) {
        let methods = self.methods(cx, &r.methods);
        let template = &r.path.value;
        let vars: Vec<String> = template.vars().map(String::from).collect();

        let mut stages = Once::new("stages");
        let mut cors = Once::new("cors");
        let mut limits = Once::new("limits");
        let mut response_headers = Vec::new();
        let mut actions: Vec<(&ast::RouteItem, Span)> = Vec::new();
        // what the route's forward sends (its policies' forwards too), see `upstream::shape`
        let mut upstream: Vec<(&ast::Upstream, Span)> = Vec::new();

        for item in &r.items {
            use ast::RouteItem as I;
            match &item.value {
                I::Stages(s) => stages.set(cx, s.clone(), item.span),
                I::Cors(c) => cors.set(cx, c.clone(), item.span),
                I::Limits(l) => limits.set(cx, l.clone(), item.span),
                I::ResponseHeader { name, value } => {
                    response_headers.push((name.value.clone(), value.value.clone()))
                }
                I::Mock(_) | I::Forward(_) | I::IssueTokens(_) => {
                    actions.push((&item.value, item.span))
                }
                // policies are compiled with the action, below
                I::Upstream(ast::Upstream::Policy(_)) => {}
                I::Upstream(u @ ast::Upstream::Orchestrate(o)) => {
                    cx.diags.extend(orchestrate::validate(o, item.span, &vars));
                    upstream.push((u, item.span))
                }
                I::Upstream(u) => upstream.push((u, item.span)),
                // The route checks read their own statements (`crate::check`).
                _ => {}
            }
        }

        let items: Vec<&ast::Upstream> = upstream.iter().map(|(u, _)| *u).collect();
        cx.diags.extend(orchestrate::clashes(&items, 0));
        let action = self.terminal(cx, r, span, &methods, (&actions, &upstream), &vars);

        // --- stages this route is published in
        let stage_indices = self.stage_indices(cx, stages.take());

        // --- the check program (steps 3–10), each check from its own statements
        let cors = cors.take().map(|c| Box::new(self.cors(&c, &methods)));
        let mut route_limits = self.limits;
        if let Some(l) = limits.take() {
            cx.limits(&l, &mut route_limits, true);
        }
        let index = self.routes.len();
        let route_label = label(&methods, template);
        let facts = check::RouteFacts {
            route: r,
            methods: &methods,
            vars: &vars,
            dialect: self.dialect,
            protocols: self.protocols,
            client_cert_required: self.client_cert_required,
            service_ips: self.ip,
            body_limit: route_limits.body,
            has_cors: cors.is_some(),
        };
        let rate_owner = self.rate_owner(&route_label);
        let program = check::compile(
            &facts,
            &mut Building {
                route: self,
                cx,
                rate_owner,
                yields_app: false,
            },
        );
        let policies = self.policies(cx, r, &vars, &program, action.as_ref(), &items);

        let location = cx.sources.location(r.path.span);
        let Some(action) = action else { return };
        if methods.is_empty() {
            return;
        }

        self.place(cx, r, &methods, &stage_indices, index);
        self.route_spans.push(r.path.span);
        let route_label: Arc<str> = route_label.into();
        let uses = self.label_uses.entry(route_label.clone()).or_insert(0);
        let nth = *uses;
        *uses += 1;
        self.routes.push(Route {
            label: route_label,
            nth,
            location: location.into(),
            methods: methods.into(),
            template: template.clone(),
            program,
            action,
            policies: policies.into(),
            response_headers: response_headers.into(),
            cors,
            body_limit: route_limits.body,
        });
    }

    /// The route's one terminal action (`mock`, `forward` or `issue tokens`).
    fn terminal(
        &mut self,
        cx: &mut Cx<'_>,
        r: &ast::Route,
        span: Span,
        methods: &[Method],
        (actions, upstream): Ending<'_, '_>,
        vars: &[String],
    ) -> Option<Action> {
        let template = &r.path.value;
        match actions {
            [] => {
                if !cx.poisoned(span) {
                    cx.diags.push(
                        Diagnostic::error(diag::NO_ACTION, r.path.span, format!("route {} has no terminal action", label(methods, template)))
                            .label("requests that reach this route have nowhere to go")
                            .help("end the route with `mock STATUS …`, `forward BACKEND` or `issue tokens PROVIDER`"),
                    );
                }
                None
            }
            [(a, _)] => self.action(cx, a, vars, upstream),
            [(_, first), (_, second), ..] => {
                cx.diags.push(
                    Diagnostic::error(
                        diag::TWO_ACTIONS,
                        *second,
                        "a route has one terminal action",
                    )
                    .label("second action")
                    .related(*first, "first action")
                    .help("split the route, or keep one of `mock`, `forward`, `issue tokens`"),
                );
                None
            }
        }
    }

    /// The stages a route is published in: its `stages`, else all of its service's.
    fn stage_indices(&self, cx: &mut Cx<'_>, stages: Option<Vec<ast::Ident>>) -> Vec<usize> {
        match (stages, self.stages) {
            (None, sel) => (0..sel.names().len().max(1)).collect(),
            (Some(list), StageSelector::None) => {
                if let Some(first) = list.first() {
                    cx.diags.push(
                        Diagnostic::error(diag::NOT_APPLICABLE, first.span, "the service declares no stages")
                            .label("route stages need service stages")
                            .help("add `stages release test from header \"X-Stage\"` (or `from path`) to the service"),
                    );
                }
                vec![0]
            }
            (Some(list), sel) => {
                let names = sel.names();
                let mut out = Vec::new();
                for s in &list {
                    match names.iter().position(|n| n.eq_ignore_ascii_case(&s.value)) {
                        Some(i) => out.push(i),
                        None => cx.diags.push(
                            Diagnostic::error(
                                diag::UNDEFINED,
                                s.span,
                                format!("undefined stage `{}`", s.value),
                            )
                            .label("not a stage of this service")
                            .help(
                                did_you_mean(&s.value, names.iter().map(String::as_str))
                                    .unwrap_or_else(|| format!("stages: {}", names.join(", "))),
                            ),
                        ),
                    }
                }
                dedup(out)
            }
        }
    }

    /// Place the route in each of its stages' trees; a clash is a duplicate route.
    fn place(
        &mut self,
        cx: &mut Cx<'_>,
        r: &ast::Route,
        methods: &[Method],
        stage_indices: &[usize],
        index: usize,
    ) {
        let template = &r.path.value;
        let shape: Vec<Shape<'_>> = template
            .segments()
            .map(|s| match s {
                Segment::Literal(l) => Shape::Literal(l),
                Segment::Var(_) => Shape::Var,
                Segment::Rest(_) => Shape::Rest,
            })
            .collect();
        let mut clashed = false;
        for &stage in stage_indices {
            for &m in methods {
                if let Err(existing) = self.trees[stage].insert(&shape, m, index as u32) {
                    if clashed {
                        continue;
                    }
                    clashed = true;
                    let other = &self.routes[existing as usize];
                    let stage_note = match self.stages.names().get(stage) {
                        Some(name) => format!(" in stage `{name}`"),
                        None => String::new(),
                    };
                    cx.diags.push(
                        Diagnostic::error(
                            diag::DUPLICATE_ROUTE,
                            r.path.span,
                            format!("{m} {template} is already routed{stage_note} by {}", other.label),
                        )
                        .label("matches the same requests")
                        .related(self.route_spans[existing as usize], "first route")
                        .help("paths that differ only in variable names are the same path; merge the routes or give them different methods or stages"),
                    );
                }
            }
        }
    }

    /// The owner part of the counter ids of a route's rates. A rate's counters are keyed by
    /// its route's label, not its position, so a reload that adds or removes other routes
    /// keeps them; a label used again (another stage's route) is told apart by how many came
    /// before it.
    /// The service's `throttle NAME`, bound even when every route binds its own: an undefined
    /// name is reported, and the throttle counts as used.
    pub fn service_throttle(&self, cx: &mut Cx<'_>) {
        if let Some(name) = &self.throttle {
            let mut found = Vec::new();
            self.bind_throttle(cx, name, &format!("{}/service", self.service), &mut found);
            cx.diags.extend(found);
        }
    }

    /// The rules of throttle `name` for counter owner `owner`; what is wrong with the binding
    /// goes to `diags`.
    fn bind_throttle(
        &self,
        cx: &mut Cx<'_>,
        name: &ast::Ident,
        owner: &str,
        diags: &mut Vec<Diagnostic>,
    ) -> Vec<RateRule> {
        let (names, keys) = (self.apps, &self.app_keys);
        let app_key = |app: &str| names.index(app).and_then(|i| keys[i].clone());
        let binding = super::throttle::Binding {
            service: self.service,
            owner,
            app_key: &app_key,
        };
        cx.throttles.bind(diags, name, &binding).unwrap_or_default()
    }

    fn rate_owner(&self, route_label: &str) -> String {
        match self.label_uses.get(route_label).copied().unwrap_or(0) {
            0 => format!("{}/route:{route_label}", self.service),
            n => format!("{}/route:{route_label}#{n}", self.service),
        }
    }

    fn methods(&mut self, cx: &mut Cx<'_>, given: &[Spanned<Method>]) -> Vec<Method> {
        let mut out: Vec<Method> = Vec::new();
        for m in given {
            if out.contains(&m.value) {
                cx.diags.push(
                    Diagnostic::error(
                        diag::REPEATED_STATEMENT,
                        m.span,
                        format!("method {} is listed twice", m.value),
                    )
                    .label("listed again"),
                );
            } else if m.value == Method::Any && given.len() > 1 {
                cx.diags.push(
                    Diagnostic::error(diag::CONFLICT, m.span, "`ANY` already covers every method")
                        .label("listed with other methods")
                        .help("write `ANY` alone, or list the methods"),
                );
            } else {
                out.push(m.value);
            }
        }
        out
    }

    fn action(
        &mut self,
        cx: &mut Cx<'_>,
        a: &ast::RouteItem,
        vars: &[String],
        upstream: &[(&ast::Upstream, Span)],
    ) -> Option<Action> {
        let shaping: Vec<&ast::Upstream> = upstream.iter().map(|(u, _)| *u).collect();
        if let (Some((_, span)), false) =
            (upstream.first(), matches!(a, ast::RouteItem::Forward(_)))
        {
            let has_policies = upstream
                .iter()
                .any(|(u, _)| matches!(u, ast::Upstream::Policy(_)));
            if !has_policies {
                cx.diags.push(
                    Diagnostic::error(diag::NOT_APPLICABLE, *span, "backend-request statements apply to a forward")
                        .label("this route does not forward")
                        .help("end the route with `forward BACKEND`, or move the statement into a `policy` block that forwards"),
                );
            }
        }
        match a {
            ast::RouteItem::Mock(m) => Some(Action::Mock(mock(m))),
            ast::RouteItem::Forward(f) => self.forward(cx, f, vars, &shaping).map(Action::Forward),
            ast::RouteItem::IssueTokens(p) => {
                let provider = self.providers.resolve(cx, p)?;
                self.used_providers[provider] = true;
                if self.provider_kinds[provider] != AuthKind::Oauth2 {
                    cx.diags.push(
                        Diagnostic::error(
                            diag::CONFLICT,
                            p.span,
                            format!("`{}` is not an oauth2 provider", p.value),
                        )
                        .label("only oauth2 providers issue tokens")
                        .help("declare it as `auth NAME oauth2 { signing key … }`"),
                    );
                    return None;
                }
                Some(Action::IssueTokens { provider })
            }
            _ => None,
        }
    }

    /// A forward: its backend, and its path rewrite's variables, which must be the route's.
    fn forward(
        &mut self,
        cx: &mut Cx<'_>,
        f: &ast::Forward,
        vars: &[String],
        upstream: &[&ast::Upstream],
    ) -> Option<ForwardAction> {
        let backend = self.backends.resolve(cx, &f.backend);
        if let Some(b) = backend {
            self.used_backends[b] = true;
        }
        let shaping = Shaping::compile(upstream);
        let mapped: Vec<&str> = shaping.iter().flat_map(|s| s.path_names()).collect();
        mapped_path_vars(cx, f, upstream);
        if let Some(p) = &f.path {
            for v in p.value.vars() {
                if !vars.iter().any(|x| x == v) && !mapped.contains(&v) {
                    cx.diags.push(
                        Diagnostic::error(
                            diag::UNDECLARED_PATH_VAR,
                            p.span,
                            format!("`{{{v}}}` is not a variable of the route's path"),
                        )
                        .label("used here")
                        .help(
                            did_you_mean(v, vars.iter().map(String::as_str)).unwrap_or_else(|| {
                                "only the route path's variables can be used when forwarding"
                                    .to_string()
                            }),
                        ),
                    );
                    return None;
                }
            }
        }
        Some(ForwardAction {
            backend: backend?,
            path: f.path.as_ref().map(|p| p.value.clone()),
            shaping,
        })
    }

    /// The route's policy backends (see [`crate::upstream::policy`]); a route that issues
    /// tokens has no backend to choose.
    fn policies(
        &mut self,
        cx: &mut Cx<'_>,
        r: &ast::Route,
        vars: &[String],
        program: &[Check],
        action: Option<&Action>,
        upstream: &[&ast::Upstream],
    ) -> Vec<Policy<Action>> {
        let blocks = policy::blocks(r);
        let Some((_, first)) = blocks.first() else {
            return Vec::new();
        };
        if let Some(Action::IssueTokens { .. }) = action {
            cx.diags.push(
                Diagnostic::error(
                    diag::NOT_APPLICABLE,
                    *first,
                    "a route that issues tokens has no backend to choose",
                )
                .label("policy backends choose between forwards and mocks")
                .help("remove the policy, or move it to a route that forwards"),
            );
        }
        let auth = program.iter().find_map(|c| match c {
            Check::Auth(a) => Some(self.provider_kinds[a.provider]),
            _ => None,
        });
        let facts = policy::RouteFacts { vars, auth };
        policy::compile(
            &blocks,
            &facts,
            &mut PolicyBuilding {
                route: self,
                cx,
                vars,
                upstream,
            },
        )
    }

    fn cors(&self, clauses: &[Spanned<ast::CorsClause>], route_methods: &[Method]) -> Cors {
        let mut cors = Cors {
            origins: Vec::new(),
            methods: Vec::new(),
            headers: Vec::new(),
            expose: Vec::new(),
            credentials: false,
            max_age_secs: None,
        };
        for c in clauses {
            match &c.value {
                ast::CorsClause::Origins(o) => {
                    cors.origins.extend(o.iter().map(|o| o.value.clone()))
                }
                ast::CorsClause::Methods(m) => cors.methods.extend(m.iter().map(|m| m.value)),
                ast::CorsClause::Headers(h) => {
                    cors.headers.extend(h.iter().map(|h| h.value.clone()))
                }
                ast::CorsClause::Expose(h) => cors.expose.extend(h.iter().map(|h| h.value.clone())),
                ast::CorsClause::Credentials => cors.credentials = true,
                ast::CorsClause::MaxAge(d) => cors.max_age_secs = Some(d.value.millis / 1000),
            }
        }
        if cors.methods.is_empty() {
            cors.methods = route_methods.to_vec();
        }
        // `ANY` is no method a browser knows: a preflight lists the methods it stands for.
        if cors.methods.contains(&Method::Any) {
            cors.methods = Method::ALL
                .into_iter()
                .filter(|m| *m != Method::Any)
                .collect();
        }
        cors
    }
}

fn label(methods: &[Method], template: &ast::PathTemplate) -> String {
    let m: Vec<&str> = methods.iter().map(|m| m.name()).collect();
    format!("{} {template}", m.join(" "))
}

pub(crate) fn mock(m: &ast::Mock) -> MockResponse {
    let (content_type, body): (_, bytes::Bytes) = match &m.body {
        None => (None, bytes::Bytes::new()),
        Some(ast::MockBody::Json(v)) => (
            Some("application/json"),
            serde_json::to_vec(v).unwrap_or_default().into(),
        ),
        Some(ast::MockBody::Text(t)) => (
            Some("text/plain; charset=utf-8"),
            t.value.clone().into_bytes().into(),
        ),
    };
    let headers = content_type
        .map(|ct| ("Content-Type".to_string(), ct.to_string()))
        .into_iter()
        .collect();
    MockResponse {
        content_type,
        answer: std::sync::Arc::new(crate::vocab::Response {
            status: m.status.value,
            headers,
            body,
        }),
    }
}

/// What compiling a route's policies asks of the compiler: a policy's forward is compiled as
/// the route's is.
struct PolicyBuilding<'x, 'c, 's> {
    route: &'x mut RouteCx<'s>,
    cx: &'x mut Cx<'c>,
    vars: &'x [String],
    /// The route's own backend-request statements, which a policy's forward applies first.
    upstream: &'x [&'x ast::Upstream],
}

impl policy::Build for PolicyBuilding<'_, '_, '_> {
    type Action = Action;

    fn report(&mut self, d: Diagnostic) {
        self.cx.diags.push(d);
    }

    fn forward(&mut self, f: &ast::Forward, upstream: &[(&ast::Upstream, Span)]) -> Option<Action> {
        // the route's statements first, then the policy's (a later mapping of a name wins)
        let mut all: Vec<&ast::Upstream> = self.upstream.to_vec();
        for (u, span) in upstream {
            if let ast::Upstream::Orchestrate(o) = u {
                let found = orchestrate::validate(o, *span, self.vars);
                self.cx.diags.extend(found);
            }
            all.push(u);
        }
        let found = orchestrate::clashes(&all, self.upstream.len());
        self.cx.diags.extend(found);
        self.route
            .forward(self.cx, f, self.vars, &all)
            .map(Action::Forward)
    }

    fn mock(&mut self, m: &ast::Mock) -> Action {
        Action::Mock(mock(m))
    }
}

/// How a route ends: its terminal statements, and the backend-request statements its forward
/// (or its policies' forwards) apply.
type Ending<'x, 'a> = (
    &'x [(&'a ast::RouteItem, Span)],
    &'x [(&'a ast::Upstream, Span)],
);

/// What a check's compilation asks of the compiler (see [`check::Build`]).
struct Building<'x, 'c, 's> {
    route: &'x mut RouteCx<'s>,
    cx: &'x mut Cx<'c>,
    rate_owner: String,
    /// Set when the auth check resolves its provider.
    yields_app: bool,
}

impl check::Build for Building<'_, '_, '_> {
    fn error(&mut self, d: Diagnostic) {
        self.cx.diags.push(d);
    }

    fn provider(&mut self, name: &ast::Ident) -> Option<(usize, AuthKind)> {
        let index = self.route.providers.resolve(self.cx, name)?;
        self.route.used_providers[index] = true;
        let kind = self.route.provider_kinds[index];
        self.yields_app = crate::auth::yields_app(kind);
        Some((index, kind))
    }

    fn app(&mut self, name: &ast::Ident) -> Option<usize> {
        self.route.apps.resolve(self.cx, name)
    }

    fn yields_app(&self) -> bool {
        self.yields_app
    }

    fn rate_rule(&mut self, rate: &ast::Rate, n: usize) -> Option<RateRule> {
        let id = format!("{}/{n}", self.rate_owner);
        self.cx.rate_rule(rate, id, true)
    }

    fn throttle(&mut self, bound: Option<&ast::Ident>) -> Vec<RateRule> {
        // The service's binding is reported once, at the service (`service_throttle`).
        let mut found = Vec::new();
        let rules = match bound.or(self.route.throttle.as_ref()) {
            Some(name) => self
                .route
                .bind_throttle(self.cx, name, &self.rate_owner, &mut found),
            None => Vec::new(),
        };
        if bound.is_some() {
            self.cx.diags.extend(found);
        }
        rules
    }
}

/// A `backend path "x" …` must name a variable of the forward's path template.
fn mapped_path_vars(cx: &mut Cx<'_>, f: &ast::Forward, upstream: &[&ast::Upstream]) {
    let template_vars: Vec<&str> = f.path.iter().flat_map(|p| p.value.vars()).collect();
    for u in upstream {
        let ast::Upstream::Param(p) = u else { continue };
        if p.location.value != ast::UpstreamLocation::Path
            || template_vars.contains(&p.name.value.as_str())
        {
            continue;
        }
        let help = match &f.path {
            Some(_) => format!(
                "use `{{{}}}` in the forward's `path`, or map a query parameter or header",
                p.name.value
            ),
            None => "give the forward a `path \"…\"` that uses the variable".to_string(),
        };
        cx.diags.push(
            Diagnostic::error(
                diag::UNDECLARED_PATH_VAR,
                p.name.span,
                format!("the forward's path has no variable `{{{}}}`", p.name.value),
            )
            .label("mapped here")
            .related(f.backend.span, "the forward")
            .help(help),
        );
    }
}

#[cfg(test)]
mod tests {
    use crate::compile::{compile, Check, ProcessSecrets, Snapshot};

    fn snapshot(policy: &str) -> Snapshot {
        let loaded = crate::policy::parse_texts(vec![(
            "t.policy".into(),
            policy.into(),
            Default::default(),
        )]);
        let compiled = compile(&loaded, &ProcessSecrets);
        let messages: Vec<&String> = compiled.diagnostics.iter().map(|d| &d.message).collect();
        compiled.snapshot.unwrap_or_else(|| panic!("{messages:?}"))
    }

    fn rate_ids(s: &Snapshot) -> Vec<&str> {
        s.services[0]
            .routes
            .iter()
            .flat_map(|r| &r.program)
            .filter_map(|c| match c {
                Check::Rate(rate) => Some(rate.rule.id.as_str()),
                _ => None,
            })
            .collect()
    }

    /// The counters of a label's later uses are numbered by how many routes carried it
    /// before (what the scan of every earlier route counted, now kept in a map), whatever
    /// other labels come between.
    #[test]
    fn a_label_used_again_numbers_its_rate_counters_by_the_routes_before_it() {
        let s = snapshot(
            r#"service s {
    dialect huawei
    hosts "*"
    stages A B C from header "X-Stage"
    route GET "/a" { stages A; rate 1 per second; mock 200 }
    route POST "/a" { stages A; rate 1 per second; rate 2 per minute; mock 200 }
    route GET "/b" { rate 1 per second; mock 200 }
    route GET "/a" { stages B; rate 1 per second; rate 2 per minute; mock 200 }
    route GET HEAD "/a/{id}" { rate 1 per second; mock 200 }
    route GET "/a" { stages C; rate 1 per second; mock 200 }
    route POST "/a" { stages B; rate 1 per second; mock 200 }
}"#,
        );
        assert_eq!(
            rate_ids(&s),
            [
                "s/route:GET /a/0",
                "s/route:POST /a/0",
                "s/route:POST /a/1",
                "s/route:GET /b/0",
                "s/route:GET /a#1/0",
                "s/route:GET /a#1/1",
                "s/route:GET HEAD /a/{id}/0",
                "s/route:GET /a#2/0",
                "s/route:POST /a#1/0",
            ]
        );
    }
}
