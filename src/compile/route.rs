//! Compiling one route: references, path variables, its terminal action, its place in the
//! path trees (where duplicates are caught), and its check program in pipeline order.

use super::snapshot::*;
use super::tree::{Shape, TreeBuilder};
use super::{dedup, Cx, Names, Once};
use crate::policy::ast::{self, AuthKind, Segment, Span, Spanned};
use crate::policy::diag::{self, did_you_mean, Diagnostic};
use crate::vocab::{Dialect, Method, ParamLocation, Protocol};
use std::collections::HashMap;
use std::sync::Arc;

pub(crate) struct RouteCx<'s> {
    pub service: &'s str,
    pub dialect: Dialect,
    pub protocols: &'s [Protocol],
    pub client_cert_required: bool,
    pub stages: &'s StageSelector,
    pub limits: Limits,
    pub ip: &'s IpRules,
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
}

impl RouteCx<'_> {
    pub fn route(&mut self, cx: &mut Cx<'_>, r: &ast::Route, span: Span) {
        let methods = self.methods(cx, &r.methods);
        let template = &r.path.value;
        let vars: Vec<String> = template.vars().map(String::from).collect();

        let mut stages = Once::new("stages");
        let mut protocols = Once::new("protocols");
        let mut auth = Once::new("auth");
        let mut cors = Once::new("cors");
        let mut websocket = Once::new("websocket");
        let mut limits = Once::new("limits");
        let mut params: Vec<(&ast::Param, Span)> = Vec::new();
        let mut ip = IpRules::default();
        let mut rates: Vec<(&ast::Rate, Span)> = Vec::new();
        let mut response_headers = Vec::new();
        let mut actions: Vec<(&ast::RouteItem, Span)> = Vec::new();

        for item in &r.items {
            use ast::RouteItem as I;
            match &item.value {
                I::Stages(s) => stages.set(cx, s.clone(), item.span),
                I::Protocols(p) => protocols.set(cx, p.clone(), item.span),
                I::Auth(a) => auth.set(cx, a.clone(), item.span),
                I::Param(p) => {
                    if let Some((_, prev)) = params.iter().find(|(q, _)| {
                        q.location.value == p.location.value
                            && q.name.value.eq_ignore_ascii_case(&p.name.value)
                    }) {
                        cx.diags.push(
                            Diagnostic::error(
                                diag::REPEATED_STATEMENT,
                                item.span,
                                format!(
                                    "{} parameter {:?} is declared twice",
                                    p.location.value, p.name.value
                                ),
                            )
                            .label("second declaration")
                            .related(*prev, "first declaration"),
                        );
                    } else {
                        params.push((p, item.span));
                    }
                }
                I::Cors(c) => cors.set(cx, c.clone(), item.span),
                I::AllowIps(a) => ip.allow.extend(a.iter().map(|n| n.value)),
                I::DenyIps(d) => ip.deny.extend(d.iter().map(|n| n.value)),
                I::Rate(rate) => rates.push((rate, item.span)),
                I::WebSocket => websocket.set(cx, (), item.span),
                I::Limits(l) => limits.set(cx, l.clone(), item.span),
                I::ResponseHeader { name, value } => {
                    response_headers.push((name.value.clone(), value.value.clone()))
                }
                I::Mock(_) | I::Forward(_) | I::IssueTokens(_) => {
                    actions.push((&item.value, item.span))
                }
            }
        }

        // --- terminal action
        let action = match actions.as_slice() {
            [] => {
                if !cx.poisoned(span) {
                    cx.diags.push(
                        Diagnostic::error(diag::NO_ACTION, r.path.span, format!("route {} has no terminal action", label(&methods, template)))
                            .label("requests that reach this route have nowhere to go")
                            .help("end the route with `mock STATUS …`, `forward BACKEND` or `issue tokens PROVIDER`"),
                    );
                }
                None
            }
            [(a, _)] => self.action(cx, a, &vars),
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
        };

        // --- stages this route is published in
        let stage_indices: Vec<usize> = match (stages.take(), self.stages) {
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
        };

        // --- protocols
        let route_protocols = match protocols.take() {
            None => self.protocols.to_vec(),
            Some(list) => {
                let mut out = Vec::new();
                for p in list {
                    if !self.protocols.contains(&p.value) {
                        cx.diags.push(
                            Diagnostic::error(
                                diag::CONFLICT,
                                p.span,
                                format!("the service does not accept {}", p.value),
                            )
                            .label("not among the service's protocols")
                            .help("a route can narrow the service's protocols, not widen them"),
                        );
                    } else {
                        out.push(p.value);
                    }
                }
                dedup(out)
            }
        };

        // --- build the program in pipeline order (DESIGN.md §4, steps 3–10)
        let mut program = Vec::new();
        if route_protocols.len() < Protocol::ALL.len() {
            program.push(Check::Protocol(crate::check::protocol::Protocols(
                route_protocols,
            )));
        }
        if self.client_cert_required {
            program.push(Check::ClientCertificate);
        }
        let cors = cors.take().map(|c| self.cors(&c, &methods));
        if cors.is_none() && self.dialect.semantics().cross_origin_needs_cors {
            program.push(Check::CrossOrigin);
        }
        if !self.ip.is_empty() {
            program.push(Check::ClientIp(self.ip.clone()));
        }
        if !ip.is_empty() {
            program.push(Check::ClientIp(ip));
        }
        if websocket.get().is_some() {
            if methods.iter().any(|m| *m != Method::Get) {
                cx.diags.push(
                    Diagnostic::error(
                        diag::CONFLICT,
                        r.methods[0].span,
                        "a websocket route takes GET only",
                    )
                    .label("the handshake is a GET request")
                    .help("write `route GET \"/path\" { websocket … }`"),
                );
            }
            program.push(Check::WebSocket);
        }
        let mut yields_app = false;
        if let Some(a) = auth.get() {
            if let Some(check) = self.auth(cx, a) {
                yields_app = crate::auth::yields_app(self.provider_kinds[check.provider]);
                program.push(Check::Auth(check));
            }
        }
        let mut param_checks = Vec::new();
        for (p, _) in &params {
            if p.location.value == ParamLocation::Path && !vars.contains(&p.name.value) {
                cx.diags.push(
                    Diagnostic::error(
                        diag::UNDECLARED_PATH_VAR,
                        p.name.span,
                        format!(
                            "path variable `{}` is not in the route's path",
                            p.name.value
                        ),
                    )
                    .label("not declared")
                    .related(r.path.span, "the route's path")
                    .help(
                        did_you_mean(&p.name.value, vars.iter().map(String::as_str))
                            .unwrap_or_else(|| {
                                format!(
                                    "declare it in the path, e.g. `{template}/{{{}}}`",
                                    p.name.value
                                )
                            }),
                    ),
                );
                continue;
            }
            param_checks.push(ParamCheck {
                required: p.required,
                location: p.location.value,
                name: p.name.value.clone(),
                ty: p
                    .ty
                    .as_ref()
                    .map(|t| param_ty(&t.value))
                    .unwrap_or(ParamTy::Any),
            });
        }
        // path, header, query, form; declaration order within each
        param_checks.sort_by_key(|p| p.location);
        let needs_form_body = param_checks
            .iter()
            .any(|p| p.location == ParamLocation::Form);
        program.extend(param_checks.into_iter().map(Check::Param));
        let mut route_limits = self.limits;
        if let Some(l) = limits.take() {
            cx.limits(&l, &mut route_limits, true);
        }
        program.push(Check::BodySize(route_limits.body));
        let index = self.routes.len();
        let route_label = label(&methods, template);
        // A rate's counters are keyed by its route's label, not its position, so a reload that
        // adds or removes other routes keeps them; a label used again (another stage's route)
        // is told apart by how many came before it.
        let same_label = self.label_uses.get(&*route_label).copied().unwrap_or(0);
        let rate_owner = match same_label {
            0 => format!("{}/route:{route_label}", self.service),
            n => format!("{}/route:{route_label}#{n}", self.service),
        };
        for (i, (rate, rspan)) in rates.iter().enumerate() {
            if matches!(rate.key.as_ref().map(|k| &k.value), Some(ast::RateKey::App)) && !yields_app
            {
                cx.diags.push(
                    Diagnostic::error(diag::CONFLICT, *rspan, "`per app` needs an authenticated app")
                        .label("this route does not identify an app")
                        .help("authenticate with a keypair, app-signature, jd-signature or oauth2 provider, or count `per ip`"),
                );
                continue;
            }
            let id = format!("{rate_owner}/{i}");
            if let Some(rule) = cx.rate_rule(rate, id, true) {
                program.push(Check::Rate(rule, Batch::Counted));
            }
        }
        if yields_app {
            program.push(Check::Quota(Batch::Counted));
        }
        crate::check::arrange(&mut program);

        let location = cx.sources.location(r.path.span);
        let Some(action) = action else { return };
        if methods.is_empty() {
            return;
        }

        // --- place in the trees; a clash is a duplicate route
        let shape: Vec<Shape<'_>> = template
            .segments
            .iter()
            .map(|s| match s {
                Segment::Literal(l) => Shape::Literal(l),
                Segment::Var(_) => Shape::Var,
                Segment::Rest(_) => Shape::Rest,
            })
            .collect();
        let mut clashed = false;
        for &stage in &stage_indices {
            for &m in &methods {
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
        self.route_spans.push(r.path.span);
        let route_label: Arc<str> = route_label.into();
        *self.label_uses.entry(route_label.clone()).or_insert(0) += 1;
        self.routes.push(Route {
            label: route_label,
            location,
            methods,
            template: template.clone(),
            vars,
            program,
            action,
            response_headers,
            cors,
            needs_form_body,
            body_limit: route_limits.body,
        });
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

    fn action(&mut self, cx: &mut Cx<'_>, a: &ast::RouteItem, vars: &[String]) -> Option<Action> {
        match a {
            ast::RouteItem::Mock(m) => Some(Action::Mock(mock(m))),
            ast::RouteItem::Forward(f) => {
                let backend = self.backends.resolve(cx, &f.backend);
                if let Some(b) = backend {
                    self.used_backends[b] = true;
                }
                if let Some(p) = &f.path {
                    for v in p.value.vars() {
                        if !vars.iter().any(|x| x == v) {
                            cx.diags.push(
                                Diagnostic::error(
                                    diag::UNDECLARED_PATH_VAR,
                                    p.span,
                                    format!("`{{{v}}}` is not a variable of the route's path"),
                                )
                                .label("used here")
                                .help(did_you_mean(v, vars.iter().map(String::as_str))
                                    .unwrap_or_else(|| "only the route path's variables can be used when forwarding".to_string())),
                            );
                            return None;
                        }
                    }
                }
                Some(Action::Forward(ForwardAction {
                    backend: backend?,
                    path: f.path.as_ref().map(|p| p.value.clone()),
                }))
            }
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

    fn auth(&mut self, cx: &mut Cx<'_>, a: &ast::RouteAuth) -> Option<AuthCheck> {
        let ast::RouteAuth::Provider {
            provider,
            apps,
            claims,
        } = a
        else {
            return None;
        };
        let index = self.providers.resolve(cx, provider)?;
        self.used_providers[index] = true;
        let kind = self.provider_kinds[index];
        let apps = match apps {
            None => None,
            Some(list) => {
                if !crate::auth::yields_app(kind) {
                    cx.diags.push(
                        Diagnostic::error(
                            diag::NOT_APPLICABLE,
                            list[0].span,
                            format!("a {} provider does not identify apps", kind.name()),
                        )
                        .label("apps are callers with access keys")
                        .help(format!(
                            "bind apps to routes that use {}",
                            crate::auth::names(crate::auth::yields_app, "or")
                        )),
                    );
                }
                Some(dedup(
                    list.iter()
                        .filter_map(|a| self.apps.resolve(cx, a))
                        .collect(),
                ))
            }
        };
        if let Some(c) = claims.first() {
            if !crate::auth::carries_claims(kind) {
                cx.diags.push(
                    Diagnostic::error(
                        diag::NOT_APPLICABLE,
                        c.name.span,
                        format!("a {} provider carries no claims", kind.name()),
                    )
                    .label("claims come from tokens")
                    .help(format!(
                        "claim rules apply to {} providers",
                        crate::auth::names(crate::auth::carries_claims, "and")
                    )),
                );
            }
        }
        let app_names = match a {
            ast::RouteAuth::Provider {
                apps: Some(list), ..
            } => list.iter().map(|a| a.value.clone()).collect(),
            _ => Vec::new(),
        };
        Some(AuthCheck {
            provider: index,
            provider_name: provider.value.clone(),
            apps,
            app_names,
            claims: claims
                .iter()
                .map(|c| {
                    (
                        c.name.value.clone(),
                        c.values.iter().map(|v| v.value.clone()).collect(),
                    )
                })
                .collect(),
        })
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

fn mock(m: &ast::Mock) -> MockResponse {
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

fn param_ty(t: &ast::ParamType) -> ParamTy {
    match t {
        ast::ParamType::String { len } => ParamTy::String {
            min_len: len.and_then(|r| r.min),
            max_len: len.and_then(|r| r.max),
        },
        ast::ParamType::Int { range } => ParamTy::Int {
            min: range.and_then(|r| r.min),
            max: range.and_then(|r| r.max),
        },
        ast::ParamType::Decimal { range } => ParamTy::Decimal {
            min: range.and_then(|r| r.min),
            max: range.and_then(|r| r.max),
        },
        ast::ParamType::Bool => ParamTy::Bool,
        ast::ParamType::Enum(v) => ParamTy::Enum(v.iter().map(|s| s.value.clone()).collect()),
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
                Check::Rate(rule, _) => Some(rule.id.as_str()),
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
