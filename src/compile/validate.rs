//! Pass 2, validate: each resolved block is checked (conflicts, ranges, vendor rules, secrets
//! read) and turned into its compiled value, or reported.
//!
//! What this pass guarantees to the next ([`super::build`]): a [`Valid`] service exists only
//! when every backend and app of it compiled, so its vectors hold exactly the blocks that
//! [`super::resolve`] bound to indices, in that order, and every index a route or a plan holds
//! points into them. A block that fails is reported and makes its service `None`: nothing
//! stands in for it. Whatever is wrong anywhere, every problem is reported in this one run.

use super::resolve::{self, Names, Once, Statements};
use super::{dedup, route, tree, Cx};
use crate::compile::*;
use crate::dialect::gateway_response::{Custom, ResponseType, Template, Var};
use crate::policy::ast::{self, Span, Spanned};
use crate::policy::diag::{self, did_you_mean, Diagnostic};
use crate::upstream::balance::{HashOn, Strategy};
use crate::upstream::breaker::{self, Rule, Trip};
use crate::upstream::health::{Active, Passive};
use crate::upstream::sign::Signer;
use crate::upstream::state::Targeting;
use crate::vocab::{Dialect, Protocol};
use std::collections::HashMap;

/// A service whose every block compiled: the input of [`super::build`].
pub(crate) struct Valid {
    pub(crate) name: String,
    pub(crate) dialect: Dialect,
    pub(crate) limits: Limits,
    pub(crate) stages: StageSelector,
    pub(crate) trees: Vec<tree::TreeBuilder>,
    pub(crate) routes: Vec<Route>,
    pub(crate) backends: Vec<Backend>,
    pub(crate) apps: Vec<App>,
    pub(crate) providers: Vec<Provider>,
    pub(crate) plans: Vec<Plan>,
    pub(crate) trusted_proxies: Vec<ipnet::IpNet>,
    pub(crate) request_id_header: Option<String>,
    pub(crate) client_cert_required: bool,
    pub(crate) gateway_responses: Vec<Custom>,
    /// Set when the service shares a counter with others (`compile::throttle`); else its own.
    pub(crate) counter_group: Option<std::sync::Arc<str>>,
}

/// A service that declares its dialect: the hosts it claims (claimed even when the service
/// is broken, so that a second claim is still reported), and the service when it is valid.
pub(crate) struct Checked {
    pub(crate) dialect: Dialect,
    pub(crate) hosts: Vec<(String, Span)>,
    pub(crate) service: Option<Valid>,
}

/// The routes of a service: its trees (to build), and which backends and providers they use.
struct Routed {
    trees: Vec<tree::TreeBuilder>,
    routes: Vec<Route>,
    used_backends: Vec<bool>,
    used_providers: Vec<bool>,
}

/// The service-wide settings, validated.
struct Settings {
    dialect: Dialect,
    declared: bool,
    hosts: Vec<(String, Span)>,
    protocols: Vec<Protocol>,
    stages: StageSelector,
    limits: Limits,
}

impl<'a> Cx<'a> {
    /// Validate one service; `None` when it declares no dialect (it cannot serve, but all its
    /// statements have been checked with a stand-in dialect so one run reports everything).
    pub(crate) fn service(&mut self, s: &ast::Service, span: Span) -> Option<Checked> {
        let diags_before = self.diags.len();
        let mut st = resolve::statements(self, s);
        let settings = self.settings(&mut st, s, span);
        let dialect = settings.dialect;
        let apps = self.apps(&mut st, &s.name.value);
        let providers = self.providers(&st, s, dialect);
        let plans = self.plans(&mut st, &s.name.value);
        let around = Around {
            service: &s.name.value,
            backends: &st.backend_names,
        };
        let backends: Vec<Option<Backend>> = st
            .backends
            .iter()
            .map(|&(b, span)| self.backend(b, span, &around))
            .collect();

        let Routed {
            trees,
            routes,
            mut used_backends,
            used_providers,
        } = self.routes(&mut st, s, &settings, &providers, (backends.len(), &apps));
        for b in backends.iter().flatten() {
            if let Downgrade::Backend(other) = b.downgrade {
                used_backends[other] = true;
            }
        }
        if !self.errors_within(span, diags_before) {
            self.unused(&st.backend_names, &used_backends, "backend", UNUSED_BACKEND);
            self.unused(
                &st.provider_names,
                &used_providers,
                "auth provider",
                UNUSED_PROVIDER,
            );
        }

        let gateway_responses = self.gateway_responses(&st, dialect);
        if !settings.declared {
            return None;
        }
        let valid = |backends: Vec<Backend>, apps: Vec<App>| Valid {
            name: s.name.value.clone(),
            dialect,
            limits: settings.limits,
            stages: settings.stages,
            trees,
            routes,
            backends,
            apps,
            providers,
            plans,
            trusted_proxies: st.trusted_proxies,
            request_id_header: st.request_id.take(),
            client_cert_required: st.client_cert.take().is_some(),
            gateway_responses,
            counter_group: None,
        };
        let backends: Option<Vec<Backend>> = backends.into_iter().collect();
        let apps: Option<Vec<App>> = apps.into_iter().collect();
        Some(Checked {
            dialect,
            hosts: settings.hosts,
            service: backends.zip(apps).map(|(b, a)| valid(b, a)),
        })
    }

    /// Every route, resolved, checked and entered in its stages' trees.
    fn routes(
        &mut self,
        st: &mut Statements<'_>,
        s: &ast::Service,
        settings: &Settings,
        providers: &[Provider],
        (backends, apps): (usize, &[Option<App>]),
    ) -> Routed {
        let dialect = settings.dialect;
        let tree_count = settings.stages.names().len().max(1);
        let mut rc = route::RouteCx {
            service: &s.name.value,
            dialect,
            protocols: &settings.protocols,
            client_cert_required: st.client_cert.get().is_some(),
            stages: &settings.stages,
            limits: settings.limits,
            ip: &st.ip,
            backends: &st.backend_names,
            apps: &st.app_names,
            providers: &st.provider_names,
            provider_kinds: providers.iter().map(|p: &Provider| p.kind()).collect(),
            trees: vec![tree::TreeBuilder::default(); tree_count],
            routes: Vec::with_capacity(st.routes.len()),
            route_spans: Vec::with_capacity(st.routes.len()),
            used_backends: vec![false; backends],
            used_providers: vec![false; providers.len()],
            label_uses: HashMap::new(),
            throttle: st.throttle.get().cloned(),
            app_keys: apps
                .iter()
                .map(|a| a.as_ref().map(|a| a.key.clone()))
                .collect(),
        };
        for (r, span) in std::mem::take(&mut st.routes) {
            rc.route(self, r, span);
        }
        rc.service_throttle(self);
        Routed {
            trees: rc.trees,
            routes: rc.routes,
            used_backends: rc.used_backends,
            used_providers: rc.used_providers,
        }
    }

    fn settings(&mut self, st: &mut Statements<'_>, s: &ast::Service, span: Span) -> Settings {
        let declared = std::mem::replace(&mut st.dialect, Once::new("dialect")).take();
        if declared.is_none() {
            self.missing(
                span,
                s.name.span,
                format!("service `{}` has no `dialect`", s.name.value),
                &format!(
                    "add {}: it decides every error answer",
                    crate::dialect::listed(|n| format!("`dialect {n}`"))
                ),
            );
        }
        let hosts = match std::mem::replace(&mut st.hosts, Once::new("hosts")).take() {
            Some(h) => self.hosts(&h),
            None => {
                self.missing(
                    span,
                    s.name.span,
                    format!("service `{}` has no `hosts`", s.name.value),
                    "add `hosts \"api.example.com\"` (or `hosts \"*\"` to take every host)",
                );
                Vec::new()
            }
        };
        let protocols = match std::mem::replace(&mut st.protocols, Once::new("protocols")).take() {
            Some(p) => dedup(p.iter().map(|p| p.value).collect()),
            None => Protocol::ALL.to_vec(),
        };
        let stages = match std::mem::replace(&mut st.stages, Once::new("stages")).take() {
            Some(x) => self.stages(&x),
            None => StageSelector::None,
        };
        let mut limits = Limits::default();
        if let Some(items) = std::mem::replace(&mut st.limits, Once::new("limits")).take() {
            self.limits(&items, &mut limits, false);
        }
        Settings {
            dialect: declared.unwrap_or(Dialect::Huawei),
            declared: declared.is_some(),
            hosts,
            protocols,
            stages,
            limits,
        }
    }

    /// Each named app, compiled, or `None` when it is broken (reported).
    fn apps(&mut self, st: &mut Statements<'_>, service: &str) -> Vec<Option<App>> {
        let blocks = std::mem::take(&mut st.apps);
        let mut key_spans: HashMap<String, Span> = HashMap::new();
        let mut apps = Vec::with_capacity(blocks.len());
        for (a, span) in blocks {
            // Duplicate keys are found even when a secret is missing.
            let key = a.items.iter().find_map(|i| match &i.value {
                ast::AppItem::Key(k) => Some(k),
                _ => None,
            });
            let mut duplicate = false;
            // two apps with the same API key could not be told apart
            for item in &a.items {
                if let ast::AppItem::ApiKey(h) = &item.value {
                    let hash = h.value.trim().to_ascii_lowercase();
                    if let Some(prev) = key_spans.get(&format!("apikey:{hash}")) {
                        self.diags.push(
                            Diagnostic::error(
                                diag::DUPLICATE_KEY,
                                h.span,
                                "this API key is also another app's",
                            )
                            .label("second use")
                            .related(*prev, "first used here")
                            .help("every API key belongs to one app"),
                        );
                        duplicate = true;
                    } else {
                        key_spans.insert(format!("apikey:{hash}"), h.span);
                    }
                }
            }
            if let Some(k) = key {
                if let Some(prev) = key_spans.get(&k.value) {
                    self.diags.push(
                        Diagnostic::error(
                            diag::DUPLICATE_KEY,
                            k.span,
                            format!("access key {:?} is used by two apps", k.value),
                        )
                        .label("second use")
                        .related(*prev, "first used here")
                        .help("every app needs its own access key"),
                    );
                    duplicate = true;
                } else {
                    key_spans.insert(k.value.clone(), k.span);
                }
            }
            apps.push(
                self.app(a, span, service)
                    .filter(|_| !duplicate)
                    .map(|(app, _)| app),
            );
        }
        apps
    }

    /// Each named provider, compiled; every provider block (a duplicate too) is checked
    /// against the dialect.
    fn providers(
        &mut self,
        st: &Statements<'_>,
        s: &ast::Service,
        dialect: Dialect,
    ) -> Vec<Provider> {
        let mut providers = Vec::new();
        for (&(p, span), &defined) in st.providers.iter().zip(&st.provider_defined) {
            if defined {
                providers.push(self.provider(p, span));
            }
            // The token endpoint and its answers are Huawei's: the other vendors document no
            // rows for them, so a service answering in their dialect cannot have one.
            if p.kind.value == ast::AuthKind::Oauth2 && !dialect.semantics().oauth2 {
                self.diags.push(
                    Diagnostic::error(
                        diag::NOT_APPLICABLE,
                        p.kind.span,
                        format!(
                            "an oauth2 provider needs a huawei service; `{}` answers in {dialect}",
                            s.name.value
                        ),
                    )
                    .label("Huawei's OAuth2 token endpoint")
                    .help("use `dialect huawei`, or a jwt provider for tokens issued elsewhere"),
                );
            }
            // Tencent's app authentication and its `Found no validate apiapp.` row are
            // Tencent's: the other vendors document neither.
            if p.kind.value == ast::AuthKind::ApiApp && dialect != Dialect::Tencent {
                self.diags.push(
                    Diagnostic::error(
                        diag::NOT_APPLICABLE,
                        p.kind.span,
                        format!(
                            "an apiapp provider needs a tencent service; `{}` answers in {dialect}",
                            s.name.value
                        ),
                    )
                    .label("Tencent's app authentication (ApiAppKey)")
                    .help("use `dialect tencent`, or the dialect's own app scheme (app-signature for huawei, jd-signature for jdcloud)"),
                );
            }
        }
        providers
    }

    fn plans(&mut self, st: &mut Statements<'_>, service: &str) -> Vec<Plan> {
        std::mem::take(&mut st.plans)
            .into_iter()
            .map(|(p, _)| self.plan(p, &st.app_names, service))
            .collect()
    }

    /// "Never used" warnings; the caller asks only while the service has no error: a
    /// misspelled `forward` line makes its backend look unused.
    fn unused(&mut self, names: &Names, used: &[bool], what: &str, why: (&str, &str)) {
        for (name, i, span) in names.spans() {
            if !used.get(i).copied().unwrap_or(true) {
                self.diags.push(
                    Diagnostic::warning(
                        diag::UNUSED,
                        span,
                        format!("{what} `{name}` is never used"),
                    )
                    .label(why.0)
                    .help(why.1),
                );
            }
        }
    }
}

const UNUSED_BACKEND: (&str, &str) = (
    "no route forwards here",
    "forward a route to it, or remove it",
);
const UNUSED_PROVIDER: (&str, &str) = (
    "no route authenticates with it",
    "use it in a route's `auth`, or remove it",
);

/// One block at a time: a service's settings, a backend, an app, a plan, a provider.
impl<'a> Cx<'a> {
    fn hosts(&mut self, hosts: &[Spanned<String>]) -> Vec<(String, Span)> {
        let mut out: Vec<(String, Span)> = Vec::new();
        let mut seen: std::collections::HashSet<String> = std::collections::HashSet::new();
        for h in hosts {
            let host = h.value.to_ascii_lowercase();
            let name = host.strip_prefix("*.").unwrap_or(&host);
            let valid = host == "*"
                || (!name.is_empty()
                    && name.len() <= 253
                    && name.split('.').all(|l| {
                        !l.is_empty()
                            && l.len() <= 63
                            && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
                    }))
                || name.parse::<std::net::IpAddr>().is_ok()
                || name
                    .strip_prefix('[')
                    .and_then(|n| n.strip_suffix(']'))
                    .is_some_and(|n| n.parse::<std::net::Ipv6Addr>().is_ok());
            if !valid {
                self.diags.push(
                    Diagnostic::error(diag::UNKNOWN_VALUE, h.span, format!("invalid host {:?}", h.value))
                        .label("not a host name")
                        .help("write a host name without scheme or port (`api.example.com`), `*.example.com`, or `*`"),
                );
                continue;
            }
            if !seen.insert(host.clone()) {
                continue;
            }
            out.push((host, h.span));
        }
        out
    }

    fn stages(&mut self, st: &ast::Stages) -> StageSelector {
        let mut names: Vec<String> = Vec::new();
        for n in &st.names {
            if names.iter().any(|x| x.eq_ignore_ascii_case(&n.value)) {
                self.diags.push(
                    Diagnostic::error(
                        diag::DUPLICATE_NAME,
                        n.span,
                        format!("stage `{}` is listed twice", n.value),
                    )
                    .label("listed again"),
                );
            } else {
                names.push(n.value.clone());
            }
        }
        match &st.from {
            ast::StageFrom::Path => {
                if let Some(d) = &st.default {
                    self.diags.push(
                        Diagnostic::error(
                            diag::NOT_APPLICABLE,
                            d.span,
                            "a path-selected stage has no default",
                        )
                        .label("every request names its stage in the path")
                        .help("remove `default …`, or select stages `from header`"),
                    );
                }
                StageSelector::Path { names }
            }
            ast::StageFrom::Header(h) => {
                let default = match &st.default {
                    None => 0,
                    Some(d) => match names.iter().position(|n| n.eq_ignore_ascii_case(&d.value)) {
                        Some(i) => i,
                        None => {
                            self.diags.push(
                                Diagnostic::error(
                                    diag::UNDEFINED,
                                    d.span,
                                    format!("undefined stage `{}`", d.value),
                                )
                                .label("not one of the listed stages")
                                .maybe_help(did_you_mean(
                                    &d.value,
                                    names.iter().map(String::as_str),
                                )),
                            );
                            0
                        }
                    },
                };
                StageSelector::Header {
                    header: h.value.clone(),
                    names,
                    default,
                }
            }
        }
    }

    pub(crate) fn limits(&mut self, items: &[ast::LimitItem], limits: &mut Limits, route: bool) {
        let mut seen: Vec<ast::LimitKind> = Vec::new();
        for item in items {
            let kind = item.kind.value;
            if seen.contains(&kind) {
                self.diags.push(
                    Diagnostic::error(
                        diag::REPEATED_STATEMENT,
                        item.kind.span,
                        format!("limit `{}` is set twice", kind.name()),
                    )
                    .label("second setting"),
                );
                continue;
            }
            seen.push(kind);
            if route && kind != ast::LimitKind::Body {
                self.diags.push(
                    Diagnostic::error(
                        diag::NOT_APPLICABLE,
                        item.kind.span,
                        format!("limit `{}` cannot be set per route", kind.name()),
                    )
                    .label("URI and header sizes are checked before a route is chosen")
                    .help("set it in the service's `limits` block"),
                );
                continue;
            }
            let bytes = item.size.value.bytes;
            if bytes == 0 {
                self.diags.push(
                    Diagnostic::error(
                        diag::OUT_OF_RANGE,
                        item.size.span,
                        "a size limit must be above zero",
                    )
                    .label("zero"),
                );
                continue;
            }
            match kind {
                ast::LimitKind::Body => limits.body = bytes,
                ast::LimitKind::Uri => limits.uri = bytes,
                ast::LimitKind::Header => limits.header = bytes,
                ast::LimitKind::Headers => limits.headers = bytes,
            }
        }
    }

    fn backend(&mut self, b: &ast::Backend, span: Span, around: &Around<'_>) -> Option<Backend> {
        let mut targets = Once::new("targets");
        let mut timeout = Once::new("timeout");
        let mut connect = Once::new("connect timeout");
        let mut retries = Once::new("retries");
        let mut balance = Once::new("balance");
        let mut health = Once::new("health");
        let mut passive = Once::new("passive");
        let mut breaker = Once::new("breaker");
        let mut deny = Vec::new();
        let mut except = Vec::new();
        let mut sign = Once::new("sign");
        for item in &b.items {
            match &item.value {
                ast::BackendItem::Targets(t) => targets.set(self, t.clone(), item.span),
                ast::BackendItem::Timeout(d) => timeout.set(self, d.value.millis, item.span),
                ast::BackendItem::ConnectTimeout(d) => connect.set(self, d.value.millis, item.span),
                ast::BackendItem::Retries { count, budget } => retries.set(
                    self,
                    (count.value, budget.as_ref().map(|b| b.value)),
                    item.span,
                ),
                ast::BackendItem::Balance(x) => balance.set(self, x.value.clone(), item.span),
                ast::BackendItem::Health(h) => health.set(self, h.clone(), item.span),
                ast::BackendItem::Passive(p) => passive.set(self, p.clone(), item.span),
                ast::BackendItem::Breaker(x) => breaker.set(self, x, item.span),
                ast::BackendItem::DenyIps { deny: d, except: e } => {
                    deny.extend(d.iter().map(|n| n.value));
                    except.extend(e.iter().map(|n| n.value));
                }
                ast::BackendItem::Sign(s) => sign.set(self, s.clone(), item.span),
            }
        }
        let Some(targets) = targets.take() else {
            self.missing(
                span,
                b.name.span,
                format!("backend `{}` has no `targets`", b.name.value),
                "add `targets \"http://HOST:PORT\"`",
            );
            return None;
        };
        let urls: Vec<&str> = targets.iter().map(|t| t.url.value.as_str()).collect();
        let weights: Vec<u32> = targets
            .iter()
            .map(|t| t.weight.as_ref().map_or(1, |w| w.value))
            .collect();
        let balance = balance.take().map_or(Strategy::RoundRobin, strategy);
        let timeout_ms = timeout.take().unwrap_or(60_000);
        let (retries, retry_budget) = retries.take().unwrap_or((0, None));
        let breaker = match breaker.take() {
            Some(x) => Some(self.breaker(x, b, around)?),
            None => None,
        };
        let (breaker, downgrade) = match breaker {
            Some((config, downgrade)) => (Some(config), downgrade),
            None => (None, Downgrade::Unavailable),
        };
        let health = match health.take() {
            Some(h) => Some(self.active_check(&h)?),
            None => None,
        };
        Some(Backend {
            name: b.name.value.clone(),
            targets: urls.iter().map(|t| Target::parse(t)).collect(),
            targeting: Targeting::new(
                format!("{}/{}", around.service, b.name.value),
                urls.iter().map(|u| u.to_string()).collect(),
                weights,
                balance,
                health,
                passive
                    .take()
                    .map_or(Passive::IMPLICIT, |p| passive_check(&p)),
                breaker,
                retry_budget,
            ),
            downgrade,
            timeout_ms,
            connect_timeout_ms: connect.take().unwrap_or(5_000),
            retries,
            deny,
            except,
            signer: match sign.take() {
                Some(s) => Some(self.signer(&s, &b.name.value)?),
                None => None,
            },
        })
    }

    /// `gateway response TYPE { … }`: Huawei services only; a type Huawei lists, once; a
    /// JSON body; variables Huawei documents.
    fn gateway_responses(&mut self, st: &Statements<'_>, dialect: Dialect) -> Vec<Custom> {
        let mut out: Vec<Custom> = Vec::new();
        for (g, span) in &st.gateway_responses {
            if dialect != Dialect::Huawei {
                self.diags.push(
                    Diagnostic::error(
                        diag::NOT_APPLICABLE,
                        *span,
                        format!(
                            "gateway responses are Huawei's; this service answers in {dialect}"
                        ),
                    )
                    .help("remove the block, or make the service `dialect huawei`"),
                );
                continue;
            }
            if let Some(c) = self.gateway_response(g) {
                if out.iter().any(|o| o.kind == c.kind) {
                    self.diags.push(
                        Diagnostic::error(
                            diag::REPEATED_STATEMENT,
                            g.kind.span,
                            format!("a second gateway response for {}", c.kind),
                        )
                        .help("one response per error type; merge the two"),
                    );
                    continue;
                }
                out.push(c);
            }
        }
        out
    }

    fn gateway_response(&mut self, g: &ast::GatewayResponse) -> Option<Custom> {
        let Some(kind) = ResponseType::from_name(&g.kind.value) else {
            let names = ResponseType::ALL.map(ResponseType::name);
            self.diags.push(
                Diagnostic::error(
                    diag::UNKNOWN_VALUE,
                    g.kind.span,
                    format!("`{}` is not one of Huawei's error types", g.kind.value),
                )
                .label("not an error type")
                .help(
                    did_you_mean(&g.kind.value, names.iter().copied())
                        .unwrap_or_else(|| format!("one of: {}", names.join(", "))),
                ),
            );
            return None;
        };
        let mut answer = Once::new("mock");
        let mut headers = Vec::new();
        for item in &g.items {
            match &item.value {
                ast::GatewayResponseItem::Answer(m) => answer.set(self, (m, item.span), item.span),
                ast::GatewayResponseItem::Header { name, value } => {
                    // the answer's framing and identity are the gateway's
                    const RESERVED: [&str; 5] = [
                        "content-type",
                        "content-length",
                        "transfer-encoding",
                        "x-request-id",
                        "server",
                    ];
                    if RESERVED.contains(&name.value.to_ascii_lowercase().as_str()) {
                        self.diags.push(
                            Diagnostic::error(
                                diag::RESERVED_NAME,
                                name.span,
                                format!("header {:?} is the gateway's own", name.value),
                            )
                            .label("reserved")
                            .help("a gateway response's body is JSON and carries the request id header; choose another name"),
                        );
                        continue;
                    }
                    let t = self.template(&value.value, value.span)?;
                    headers.push((name.value.clone(), t));
                }
            }
        }
        let Some((m, at)) = answer.take() else {
            self.diags.push(
                Diagnostic::error(
                    diag::MISSING_STATEMENT,
                    g.kind.span,
                    format!("gateway response {kind} has no answer"),
                )
                .help("add `mock STATUS json {\"error_code\": \"$context.error.code\", …}`"),
            );
            return None;
        };
        let Some(ast::MockBody::Json(body)) = &m.body else {
            self.diags.push(
                Diagnostic::error(
                    diag::NOT_APPLICABLE,
                    at,
                    "a gateway response's body is JSON",
                )
                .help("write `json {…}` after the status, as Huawei requires"),
            );
            return None;
        };
        let text = serde_json::to_string(body).unwrap_or_default();
        Some(Custom {
            kind,
            status: m.status.value,
            body: self.template(&text, at)?,
            headers,
        })
    }

    fn template(&mut self, text: &str, at: Span) -> Option<Template> {
        match Template::parse(text) {
            Ok(t) => Some(t),
            Err(unknown) => {
                let names: Vec<String> = Var::names().map(|n| format!("$context.{n}")).collect();
                self.diags.push(
                    Diagnostic::error(
                        diag::UNKNOWN_VALUE,
                        at,
                        format!("{unknown} is not a variable of a gateway response"),
                    )
                    .help(
                        did_you_mean(&unknown, names.iter().map(String::as_str))
                            .unwrap_or_else(|| format!("one of: {}", names.join(", "))),
                    ),
                );
                None
            }
        }
    }

    /// `health http …` with Huawei's defaults; its timeout must be shorter than its interval,
    /// as Huawei requires.
    fn active_check(&mut self, h: &ast::HealthCheck) -> Option<Active> {
        let every_ms = h
            .every
            .as_ref()
            .map_or(Active::EVERY_MS, |d| d.value.millis);
        let timeout_ms = h
            .timeout
            .as_ref()
            .map_or(Active::TIMEOUT_MS, |d| d.value.millis);
        if timeout_ms >= every_ms {
            let at = h
                .timeout
                .as_ref()
                .or(h.every.as_ref())
                .map_or(h.path.span, |d| d.span);
            self.diags.push(
                Diagnostic::error(
                    diag::CONFLICT,
                    at,
                    format!(
                        "a health check's timeout ({timeout_ms} ms) must be shorter than its interval ({every_ms} ms)"
                    ),
                )
                .label("probes would overlap")
                .help("lower `timeout` or raise `every` (defaults: every 10s, timeout 5s)"),
            );
            return None;
        }
        Some(Active {
            path: h.path.value.clone(),
            every_ms,
            timeout_ms,
            healthy: h.healthy.as_ref().map_or(Active::HEALTHY, |n| n.value),
            unhealthy: h.unhealthy.as_ref().map_or(Active::UNHEALTHY, |n| n.value),
            status: h
                .status
                .as_ref()
                .map_or(Active::STATUS, |r| status_range(&r.value)),
        })
    }

    /// `breaker { … }` with its defaults, its downgrade resolved.
    fn breaker(
        &mut self,
        x: &ast::BreakerBlock,
        b: &ast::Backend,
        around: &Around<'_>,
    ) -> Option<(breaker::Config, Downgrade)> {
        let mut trip = Once::new("trip");
        let mut rule = Once::new("count or percent");
        let mut open = Once::new("open");
        let mut probes = Once::new("probes");
        let mut downgrade = Once::new("downgrade");
        for item in &x.items {
            match &item.value {
                ast::BreakerItem::Trip(t) => trip.set(self, t, item.span),
                ast::BreakerItem::Count { failures, within } => rule.set(
                    self,
                    Rule::Count {
                        failures: failures.value,
                        within_ms: within.value.millis,
                    },
                    item.span,
                ),
                ast::BreakerItem::Percent {
                    percent,
                    min,
                    within,
                } => rule.set(
                    self,
                    Rule::Percent {
                        percent: percent.value,
                        min: min.value,
                        within_ms: within.value.millis,
                    },
                    item.span,
                ),
                ast::BreakerItem::Open(d) => open.set(self, d.value.millis, item.span),
                ast::BreakerItem::Probes(n) => probes.set(self, n.value, item.span),
                ast::BreakerItem::Downgrade(d) => downgrade.set(self, (d, item.span), item.span),
            }
        }
        let downgrade = match downgrade.take() {
            None | Some((ast::Downgrade::Unavailable, _)) => Downgrade::Unavailable,
            Some((ast::Downgrade::Mock(m), _)) => Downgrade::Mock(super::route::mock(m)),
            Some((ast::Downgrade::Backend(name), at)) => {
                let other = around.backends.resolve(self, name)?;
                if name.value == b.name.value {
                    self.diags.push(
                        Diagnostic::error(
                            diag::CONFLICT,
                            at,
                            format!("backend `{}` cannot downgrade to itself", name.value),
                        )
                        .label("the backend whose breaker is open")
                        .help("name another backend of the service, or `downgrade unavailable`"),
                    );
                    return None;
                }
                Downgrade::Backend(other)
            }
        };
        let config = breaker::Config {
            trip: trip
                .take()
                .map_or_else(Trip::default_conditions, trip_conditions),
            rule: rule.take().unwrap_or(breaker::Config::RULE),
            open_ms: open.take().unwrap_or(breaker::Config::OPEN_MS),
            probes: probes.take().unwrap_or(breaker::Config::PROBES),
        };
        Some((config, downgrade))
    }

    /// A backend's signing key: a key that can be sent as the vendors send it, and its secret.
    fn signer(&mut self, s: &ast::Signing, backend: &str) -> Option<Signer> {
        let key = &s.key.value;
        let bad = match s.kind.value {
            ast::SigningKind::Hmac => key
                .bytes()
                .find(|b| !b.is_ascii_graphic() || b",;=".contains(b))
                .map(|_| "an hmac key id is printable ASCII without spaces, `,`, `;` or `=`"),
            ast::SigningKind::Basic => key
                .bytes()
                .find(|b| *b == b':' || b.is_ascii_control())
                .map(|_| "a basic user name has no `:` and no control characters (RFC 7617)"),
        };
        if let Some(why) = bad {
            self.diags.push(
                Diagnostic::error(
                    diag::MALFORMED,
                    s.key.span,
                    format!("key {key:?} cannot be sent"),
                )
                .label(why)
                .help("choose a key of letters, digits, `-` and `_`"),
            );
            return None;
        }
        let owner = format!("backend `{backend}`'s signing key");
        let secret = self.secret(&s.secret, &owner, true)?;
        Some(Signer {
            kind: s.kind.value,
            key: key.clone(),
            secret,
        })
    }

    fn app(&mut self, a: &ast::App, span: Span, service: &str) -> Option<(App, Span)> {
        let mut key = Once::new("key");
        let mut secret = Once::new("secret");
        let mut quota = Once::new("quota");
        let mut trusted = Vec::new();
        let mut frozen = false;
        let mut rates = Vec::new();
        let mut codes = Vec::new();
        let mut api_keys = Vec::new();
        let mut password = Once::new("password");
        let owner = format!("app `{}`", a.name.value);
        for item in &a.items {
            match &item.value {
                ast::AppItem::Key(k) => key.set(self, k.clone(), item.span),
                ast::AppItem::Secret(s) => secret.set(self, s.clone(), item.span),
                ast::AppItem::AppCode(s) => {
                    if codes.len() == MAX_APP_CODES {
                        self.diags.push(
                            Diagnostic::error(
                                diag::REPEATED_STATEMENT,
                                item.span,
                                format!(
                                    "app `{}` has more than {MAX_APP_CODES} appcodes",
                                    a.name.value
                                ),
                            )
                            .help("Huawei APIG gives an app at most five AppCodes; remove one"),
                        );
                    }
                    if let Some(code) = self.secret(s, &owner, true) {
                        codes.push(code);
                    }
                }
                ast::AppItem::TrustedIps(t) => trusted.extend(t.iter().map(|n| n.value)),
                ast::AppItem::Quota(q) => quota.set(self, quota_rule(q), item.span),
                ast::AppItem::Rate(r) => {
                    let id = format!("{service}/app:{}/{}", a.name.value, rates.len());
                    if let Some(rule) = self.rate_rule(r, id, false) {
                        rates.push(rule);
                    }
                }
                ast::AppItem::Frozen => frozen = true,
                ast::AppItem::ApiKey(h) => {
                    if let Some(k) = self.api_key_hash(h) {
                        api_keys.push(k);
                    }
                }
                ast::AppItem::Password(h) => {
                    if crate::auth::basic::is_argon2(&h.value) {
                        password.set(self, h.value.clone(), item.span);
                    } else {
                        self.diags.push(
                            Diagnostic::error(
                                diag::MALFORMED,
                                h.span,
                                "not an argon2 password hash (a PHC string such as `$argon2id$v=19$m=19456,t=2,p=1$SALT$HASH`)",
                            )
                            .help("hash the password with argon2 (e.g. `argon2 SALT -id -e`); rulegate never takes a plain password"),
                        );
                    }
                }
            }
        }
        let Some(key) = key.take() else {
            self.missing(
                span,
                a.name.span,
                format!("app `{}` has no `key`", a.name.value),
                "add `key \"ACCESS-KEY\"`",
            );
            return None;
        };
        let password = password.take();
        let secret = match secret.take() {
            Some(r) => Some(self.secret(&r, &owner, true)?),
            // an app of API keys or a password alone signs nothing
            None if !api_keys.is_empty() || password.is_some() => None,
            None => {
                self.missing(
                    span,
                    a.name.span,
                    format!("app `{}` has no `secret`", a.name.value),
                    "add `secret env \"VAR\"` or `secret file \"PATH\"` (or, for API keys and Basic only, `apikey sha256 \"HEX\"` / `password argon2 \"PHC\"`)",
                );
                return None;
            }
        };
        Some((
            App {
                name: a.name.value.clone(),
                key: key.value,
                secret,
                api_keys,
                password,
                app_codes: codes,
                trusted_ips: trusted,
                frozen,
                outside_plans: false,
                quota: quota.take(),
                rates,
            },
            key.span,
        ))
    }

    /// `apikey sha256 "HEX"`: 64 hex digits, the SHA-256 of the key.
    fn api_key_hash(&mut self, h: &Spanned<String>) -> Option<[u8; 32]> {
        let hex = h.value.trim();
        let bytes: Option<Vec<u8>> = (hex.len() == 64
            && hex.bytes().all(|b| b.is_ascii_hexdigit()))
        .then(|| {
            (0..32)
                .map(|i| u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).ok())
                .collect()
        })
        .flatten();
        match bytes.and_then(|b| <[u8; 32]>::try_from(b).ok()) {
            Some(k) => Some(k),
            None => {
                self.diags.push(
                    Diagnostic::error(
                        diag::MALFORMED,
                        h.span,
                        "an API key is given as its SHA-256: 64 hex digits",
                    )
                    .help("write the key's hash, e.g. `printf %s KEY | sha256sum`; rulegate never takes a plain key"),
                );
                None
            }
        }
    }

    fn plan(&mut self, p: &ast::Plan, apps: &Names, service: &str) -> Plan {
        let mut members = Vec::new();
        let mut rates = Vec::new();
        let mut quota = Once::new("quota");
        for item in &p.items {
            match &item.value {
                ast::PlanItem::Apps(list) => {
                    for a in list {
                        if let Some(i) = apps.resolve(self, a) {
                            members.push(i);
                        }
                    }
                }
                ast::PlanItem::Rate(r) => {
                    let id = format!("{service}/plan:{}/{}", p.name.value, rates.len());
                    if let Some(rule) = self.rate_rule(r, id, false) {
                        rates.push(rule);
                    }
                }
                ast::PlanItem::Quota(q) => quota.set(self, quota_rule(q), item.span),
            }
        }
        Plan {
            name: p.name.value.clone(),
            apps: members,
            rates,
            quota: quota.take(),
        }
    }

    /// `route_context`: whether `per app` must be backed by an app-yielding auth (checked by the
    /// caller for routes); apps and plans always know their app.
    pub(crate) fn rate_rule(
        &mut self,
        r: &ast::Rate,
        id: String,
        _route_context: bool,
    ) -> Option<RateRule> {
        let key = r
            .key
            .as_ref()
            .map(|k| k.value.clone())
            .unwrap_or(ast::RateKey::Route);
        Some(RateRule {
            id,
            limit: r.limit.value,
            period: r.period.value,
            throttle: None,
            except: Vec::new(),
            key,
            burst: r.burst.as_ref().map(|b| b.value).unwrap_or(0),
            on_store_error: r
                .on_store_error
                .as_ref()
                .map(|e| e.value)
                .unwrap_or(ast::StoreErrorPolicy::Allow),
        })
    }

    /// A provider block: the statements its scheme does not take are refused here, the rest
    /// are the scheme's to compile (see [`crate::auth::Scheme`]).
    fn provider(&mut self, p: &ast::AuthProvider, span: Span) -> Provider {
        let kind = p.kind.value;
        let mut items = Vec::with_capacity(p.items.len());
        for item in &p.items {
            if crate::auth::accepts(kind, &item.value) {
                items.push(item);
                continue;
            }
            let help = match &item.value {
                ast::AuthItem::Path(_) => "the token endpoint is a route: `route POST \"/oauth2/token\" { issue tokens NAME }`".to_string(),
                other => format!("`{}` applies to: {}", other.keyword(), crate::auth::kinds_for(other)),
            };
            self.diags.push(
                Diagnostic::error(
                    diag::NOT_APPLICABLE,
                    item.span,
                    format!(
                        "`{}` does not apply to a {} provider",
                        item.value.keyword(),
                        kind.name()
                    ),
                )
                .label("not applicable")
                .help(help),
            );
        }
        let mut cx = ProviderCx {
            cx: self,
            owner: format!("auth provider `{}`", p.name.value),
            name: &p.name,
            block: span,
        };
        Provider {
            name: p.name.value.clone(),
            settings: crate::auth::Settings::compile(kind, &items, &mut cx),
        }
    }
}

/// The compiler as a scheme's compilation sees it: one provider block.
struct ProviderCx<'c, 'a, 'p> {
    cx: &'c mut Cx<'a>,
    owner: String,
    name: &'p ast::Ident,
    block: Span,
}

impl crate::auth::Compiler for ProviderCx<'_, '_, '_> {
    fn secret(&mut self, r: &ast::SecretRef, trim: bool) -> Option<Secret> {
        self.cx.secret(r, &self.owner, trim)
    }
    fn error(&mut self, d: Diagnostic) {
        self.cx.diags.push(d);
    }
    fn missing(&mut self, message: String, help: &str) {
        self.cx.missing(self.block, self.name.span, message, help);
    }
    fn diagnostics(&self) -> usize {
        self.cx.diags.len()
    }
    fn name(&self) -> &str {
        &self.name.value
    }
}

/// Huawei's limit on AppCodes per app (`auth-schemes.md` §3.6).
const MAX_APP_CODES: usize = 5;

fn quota_rule(q: &ast::Quota) -> QuotaRule {
    QuotaRule {
        limit: q.limit.value,
        period: q.period.value,
        // the parser has refused unknown zones
        zone: q
            .zone
            .as_ref()
            .and_then(|z| crate::limits::calendar::zone(&z.value).ok())
            .unwrap_or(jiff::tz::TimeZone::UTC),
        on_store_error: q
            .on_store_error
            .as_ref()
            .map_or(ast::StoreErrorPolicy::Allow, |e| e.value),
    }
}

/// What a backend's statements may refer to beyond the backend itself.
struct Around<'s> {
    service: &'s str,
    /// The service's backends, for a breaker's `downgrade backend NAME`.
    backends: &'s Names,
}

fn strategy(b: ast::Balance) -> Strategy {
    match b {
        ast::Balance::RoundRobin => Strategy::RoundRobin,
        ast::Balance::LeastRequests => Strategy::LeastRequests,
        ast::Balance::Hash(ast::HashKey::Ip) => Strategy::Hash(HashOn::ClientIp),
        ast::Balance::Hash(ast::HashKey::Header(h)) => {
            Strategy::Hash(HashOn::Header(h.value.to_ascii_lowercase()))
        }
        ast::Balance::Hash(ast::HashKey::Query(q)) => Strategy::Hash(HashOn::Query(q.value)),
    }
}

/// `A..B` as written for statuses: both ends included, an open end the last status of HTTP.
fn status_range(r: &ast::Range<u16>) -> std::ops::RangeInclusive<u16> {
    r.min.unwrap_or(100)..=r.max.unwrap_or(599)
}

fn passive_check(p: &ast::PassiveCheck) -> Passive {
    Passive {
        unhealthy: p.unhealthy.as_ref().map_or(Passive::UNHEALTHY, |n| n.value),
        status: p.status.as_ref().map(|r| status_range(&r.value)),
        cooldown_ms: p
            .cooldown
            .as_ref()
            .map_or(Passive::COOLDOWN_MS, |d| d.value.millis),
        resets_and_timeouts: true,
    }
}

fn trip_conditions(t: &Vec<Spanned<ast::TripCondition>>) -> Trip {
    let mut trip = Trip {
        timeouts: false,
        connect_errors: false,
        status: Vec::new(),
        slower_than_ms: None,
    };
    for c in t {
        match &c.value {
            ast::TripCondition::Timeouts => trip.timeouts = true,
            ast::TripCondition::ConnectErrors => trip.connect_errors = true,
            ast::TripCondition::Status(r) => trip.status.push(status_range(r)),
            ast::TripCondition::SlowerThan(d) => trip.slower_than_ms = Some(d.millis),
        }
    }
    trip
}
