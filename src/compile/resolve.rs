//! Pass 1, resolve: every name in the policy set gets its index, every statement its slot.
//!
//! What this pass guarantees to the next ([`super::validate`]):
//! - each service name is defined once: a duplicate is reported and dropped here, never seen
//!   again;
//! - in a service, each backend, app, auth provider and plan name is bound to the index of its
//!   definition in the order written ([`Names`]); a duplicate is reported and has no index, so
//!   the indices count only the definitions that later passes will see: nothing needs a
//!   placeholder to keep them aligned;
//! - a statement that may appear once per block is held in a [`Once`] (a repetition is reported
//!   here), the lists (`allow ips`, `trusted proxies`…) are concatenated.
//!
//! A reference to a name (a route's `forward`, a plan's `apps`) is looked up through
//! [`Names::resolve`], which reports every undefined name with its nearest spelling.

use super::Cx;
use crate::compile::IpRules;
use crate::policy::ast::{self, Span, Spanned};
use crate::policy::diag::{self, did_you_mean, Diagnostic};
use crate::policy::Loaded;
use crate::vocab::Dialect;
use ipnet::IpNet;
use std::collections::HashMap;

/// A statement that may appear once per block.
pub(crate) struct Once<T> {
    what: &'static str,
    pub(crate) value: Option<(T, Span)>,
}

impl<T> Once<T> {
    pub(crate) fn new(what: &'static str) -> Self {
        Once { what, value: None }
    }

    pub(crate) fn set(&mut self, cx: &mut Cx<'_>, value: T, span: Span) {
        if let Some((_, prev)) = &self.value {
            cx.diags.push(
                Diagnostic::error(
                    diag::REPEATED_STATEMENT,
                    span,
                    format!("`{}` appears twice", self.what),
                )
                .label("second occurrence")
                .related(*prev, "first occurrence")
                .help(format!(
                    "`{}` may appear once in this block; merge the two",
                    self.what
                )),
            );
        } else {
            self.value = Some((value, span));
        }
    }

    pub(crate) fn get(&self) -> Option<&T> {
        self.value.as_ref().map(|(v, _)| v)
    }

    pub(crate) fn take(self) -> Option<T> {
        self.value.map(|(v, _)| v)
    }
}

/// Names defined in a service, with where each was defined.
pub(crate) struct Names {
    what: &'static str,
    map: HashMap<String, (usize, Span)>,
}

impl Names {
    pub(crate) fn new(what: &'static str) -> Self {
        Names {
            what,
            map: HashMap::new(),
        }
    }

    /// The index `name` is bound to, if any; no diagnostic.
    pub(crate) fn index(&self, name: &str) -> Option<usize> {
        self.map.get(name).map(|(i, _)| *i)
    }

    /// Bind `name` to the next index; `false` (and a diagnostic) when it is already bound.
    pub(crate) fn define(&mut self, cx: &mut Cx<'_>, name: &ast::Ident, code: diag::Code) -> bool {
        if let Some((_, prev)) = self.map.get(&name.value) {
            cx.diags.push(
                Diagnostic::error(
                    code,
                    name.span,
                    format!("{} `{}` is defined twice", self.what, name.value),
                )
                .label("second definition")
                .related(*prev, "first defined here")
                .help(format!(
                    "rename one of them; {} names are unique within a service",
                    self.what
                )),
            );
            return false;
        }
        let index = self.map.len();
        self.map.insert(name.value.clone(), (index, name.span));
        true
    }

    /// Bind each block's name in order, keeping the blocks whose name was free: the kept
    /// block at position `i` is the one `i` resolves to.
    fn define_all<'s, T>(
        &mut self,
        cx: &mut Cx<'_>,
        blocks: Vec<(&'s T, Span)>,
        name: impl Fn(&T) -> &ast::Ident,
        code: diag::Code,
    ) -> Vec<(&'s T, Span)> {
        blocks
            .into_iter()
            .filter(|(b, _)| self.define(cx, name(b), code))
            .collect()
    }

    pub(crate) fn resolve(&self, cx: &mut Cx<'_>, name: &ast::Ident) -> Option<usize> {
        if let Some((i, _)) = self.map.get(&name.value) {
            return Some(*i);
        }
        let help =
            did_you_mean(&name.value, self.map.keys().map(String::as_str)).unwrap_or_else(|| {
                if self.map.is_empty() {
                    format!("this service defines no {}", self.what)
                } else {
                    let mut known: Vec<&str> = self.map.keys().map(String::as_str).collect();
                    known.sort();
                    format!("defined {}s: {}", self.what, known.join(", "))
                }
            });
        cx.diags.push(
            Diagnostic::error(
                diag::UNDEFINED,
                name.span,
                format!("undefined {} `{}`", self.what, name.value),
            )
            .label(format!("no {} of this name in this service", self.what))
            .help(help),
        );
        None
    }

    pub(crate) fn spans(&self) -> impl Iterator<Item = (&str, usize, Span)> {
        self.map.iter().map(|(n, (i, s))| (n.as_str(), *i, *s))
    }
}

/// The top level of a policy set, resolved.
pub(crate) struct TopLevel<'l> {
    pub(crate) default_dialect: Option<Spanned<Dialect>>,
    /// Each uniquely named service, with its block's span and the directory of its file
    /// (relative secret files are read from there).
    pub(crate) services: Vec<(&'l ast::Service, Span, &'l std::path::Path)>,
}

pub(crate) fn top_level<'l>(cx: &mut Cx<'_>, loaded: &'l Loaded) -> TopLevel<'l> {
    let mut default_dialect: Option<Spanned<Dialect>> = None;
    let mut services = Vec::new();
    let mut names: HashMap<&str, Span> = HashMap::new();
    for (file_id, file) in &loaded.files {
        let dir = loaded.dirs[*file_id as usize].as_path();
        for item in &file.items {
            match &item.value {
                ast::TopItem::DefaultDialect(d) => match &default_dialect {
                    Some(prev) => cx.diags.push(
                        Diagnostic::error(
                            diag::REPEATED_STATEMENT,
                            item.span,
                            "`default dialect` is set twice",
                        )
                        .label("second setting")
                        .related(prev.span, "first set here")
                        .help("a policy set has one default dialect"),
                    ),
                    None => default_dialect = Some(d.clone()),
                },
                // resolved with the throttles (`compile::throttle`)
                ast::TopItem::Throttle(_) => {}
                ast::TopItem::Service(s) => {
                    if let Some(prev) = names.get(s.name.value.as_str()) {
                        cx.diags.push(
                            Diagnostic::error(
                                diag::DUPLICATE_SERVICE,
                                s.name.span,
                                format!("service `{}` is defined twice", s.name.value),
                            )
                            .label("second definition")
                            .related(*prev, "first defined here")
                            .help("service names are unique across the policy set"),
                        );
                        continue;
                    }
                    names.insert(&s.name.value, s.name.span);
                    services.push((s, item.span, dir));
                }
            }
        }
    }
    TopLevel {
        default_dialect,
        services,
    }
}

/// A service's statements, each in its slot, and its blocks bound to their names.
pub(crate) struct Statements<'s> {
    pub(crate) dialect: Once<Dialect>,
    pub(crate) hosts: Once<Vec<Spanned<String>>>,
    pub(crate) protocols: Once<Vec<Spanned<crate::vocab::Protocol>>>,
    pub(crate) stages: Once<ast::Stages>,
    pub(crate) limits: Once<Vec<ast::LimitItem>>,
    pub(crate) request_id: Once<String>,
    pub(crate) client_cert: Once<()>,
    /// `throttle NAME`: the throttle every route binds unless it binds its own.
    pub(crate) throttle: Once<ast::Ident>,
    /// Shared by every route's client-ip check (one copy per service, not per route).
    pub(crate) ip: std::sync::Arc<IpRules>,
    pub(crate) trusted_proxies: Vec<IpNet>,
    pub(crate) backends: Vec<(&'s ast::Backend, Span)>,
    pub(crate) backend_names: Names,
    pub(crate) apps: Vec<(&'s ast::App, Span)>,
    pub(crate) app_names: Names,
    /// Every provider block, a duplicate name included (its scheme is still checked against
    /// the dialect); `provider_defined[i]` says whether block `i` got an index.
    pub(crate) providers: Vec<(&'s ast::AuthProvider, Span)>,
    pub(crate) provider_defined: Vec<bool>,
    pub(crate) provider_names: Names,
    pub(crate) plans: Vec<(&'s ast::Plan, Span)>,
    pub(crate) plan_names: Names,
    pub(crate) routes: Vec<(&'s ast::Route, Span)>,
    pub(crate) gateway_responses: Vec<(&'s ast::GatewayResponse, Span)>,
}

pub(crate) fn statements<'s>(cx: &mut Cx<'_>, s: &'s ast::Service) -> Statements<'s> {
    let mut st = Statements {
        dialect: Once::new("dialect"),
        hosts: Once::new("hosts"),
        protocols: Once::new("protocols"),
        stages: Once::new("stages"),
        limits: Once::new("limits"),
        request_id: Once::new("request id from header"),
        client_cert: Once::new("client certificate required"),
        throttle: Once::new("throttle"),
        ip: Default::default(),
        trusted_proxies: Vec::new(),
        backends: Vec::new(),
        backend_names: Names::new("backend"),
        apps: Vec::new(),
        app_names: Names::new("app"),
        providers: Vec::new(),
        provider_defined: Vec::new(),
        provider_names: Names::new("auth provider"),
        plans: Vec::new(),
        plan_names: Names::new("plan"),
        routes: Vec::new(),
        gateway_responses: Vec::new(),
    };
    let mut backends = Vec::new();
    for item in &s.items {
        use ast::ServiceItem as I;
        match &item.value {
            I::Dialect(d) => st.dialect.set(cx, d.value, item.span),
            I::Hosts(h) => st.hosts.set(cx, h.clone(), item.span),
            I::Protocols(p) => st.protocols.set(cx, p.clone(), item.span),
            I::Stages(x) => st.stages.set(cx, x.clone(), item.span),
            I::Limits(l) => st.limits.set(cx, l.clone(), item.span),
            I::RequestIdHeader(h) => st.request_id.set(cx, h.value.clone(), item.span),
            I::ClientCertificateRequired => st.client_cert.set(cx, (), item.span),
            I::AllowIps(a) => std::sync::Arc::make_mut(&mut st.ip)
                .allow
                .extend(a.iter().map(|n| n.value)),
            I::DenyIps(d) => std::sync::Arc::make_mut(&mut st.ip)
                .deny
                .extend(d.iter().map(|n| n.value)),
            I::TrustedProxies(t) => st.trusted_proxies.extend(t.iter().map(|n| n.value)),
            I::Backend(b) => backends.push((b, item.span)),
            I::App(a) => st.apps.push((a, item.span)),
            I::Auth(p) => st.providers.push((p, item.span)),
            I::Plan(p) => st.plans.push((p, item.span)),
            I::Route(r) => st.routes.push((r, item.span)),
            I::GatewayResponse(g) => st.gateway_responses.push((g, item.span)),
            I::Throttle(t) => st.throttle.set(cx, t.clone(), item.span),
        }
    }
    st.backends = st
        .backend_names
        .define_all(cx, backends, |b| &b.name, diag::DUPLICATE_NAME);
    let apps = std::mem::take(&mut st.apps);
    st.apps = st
        .app_names
        .define_all(cx, apps, |a| &a.name, diag::DUPLICATE_NAME);
    for (p, _) in &st.providers {
        let defined = st.provider_names.define(cx, &p.name, diag::DUPLICATE_NAME);
        st.provider_defined.push(defined);
    }
    let plans = std::mem::take(&mut st.plans);
    st.plans = st
        .plan_names
        .define_all(cx, plans, |p| &p.name, diag::DUPLICATE_PLAN);
    st
}
