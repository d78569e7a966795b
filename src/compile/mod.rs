//! AST → `Snapshot`: resolve names, reject conflicts and ambiguity, resolve secrets, and build
//! the decision tree. Every problem becomes a diagnostic; a snapshot is produced only when
//! there is no error.

mod render;
mod route;
mod secrets;
pub mod snapshot;
pub mod tree;

pub use secrets::{ProcessSecrets, SecretStore};
pub use snapshot::*;

use crate::policy::ast::{self, Span, Spanned};
use crate::policy::diag::{self, did_you_mean, Diagnostic};
use crate::policy::Loaded;
use crate::vocab::{Dialect, Protocol};
use ipnet::IpNet;
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::path::Path;

/// The outcome of compiling a policy set: every diagnostic (parse and compile), and the
/// snapshot when there was no error.
pub struct Compiled {
    pub snapshot: Option<Snapshot>,
    pub diagnostics: Vec<Diagnostic>,
}

/// Compile a loaded policy set. Parse diagnostics are carried over; compilation still runs
/// on what parsed so that one `check` reports everything.
pub fn compile(loaded: &Loaded, secrets: &dyn SecretStore) -> Compiled {
    let mut parse_errors: Vec<Span> = loaded
        .diagnostics
        .iter()
        .filter(|d| d.severity == diag::Severity::Error)
        .map(|d| d.span)
        .collect();
    parse_errors.sort_by_key(|s| (s.file, s.start));
    let mut cx = Cx {
        diags: loaded.diagnostics.clone(),
        parse_errors,
        secrets,
        sources: &loaded.sources,
        dir: Path::new(""),
        inputs: std::collections::BTreeMap::new(),
    };
    let mut default_dialect: Option<Spanned<Dialect>> = None;
    let mut services = Vec::new();
    let mut names: HashMap<&str, Span> = HashMap::new();
    let mut host_owner: HashMap<String, (usize, Span)> = HashMap::new();
    let mut hosts = HostTable::default();

    for (file_id, file) in &loaded.files {
        cx.dir = &loaded.dirs[*file_id as usize];
        for item in &file.items {
            match &item.value {
                ast::TopItem::DefaultDialect(d) => {
                    if let Some(prev) = &default_dialect {
                        cx.diags.push(
                            Diagnostic::error(
                                diag::REPEATED_STATEMENT,
                                item.span,
                                "`default dialect` is set twice",
                            )
                            .label("second setting")
                            .related(prev.span, "first set here")
                            .help("a policy set has one default dialect"),
                        );
                    } else {
                        default_dialect = Some(d.clone());
                    }
                }
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
                    let index = services.len();
                    let Some(compiled) = cx.service(s, item.span) else {
                        continue;
                    };
                    for (host, span) in &compiled.1 {
                        if let Some((owner, prev)) = host_owner.get(host) {
                            let owner: &Service = &services[*owner];
                            cx.diags.push(
                                Diagnostic::error(
                                    diag::DUPLICATE_HOST,
                                    *span,
                                    format!(
                                        "host {host:?} is already claimed by service `{}`",
                                        owner.name
                                    ),
                                )
                                .label("claimed twice")
                                .related(*prev, "first claimed here")
                                .help("a host name routes to exactly one service"),
                            );
                            continue;
                        }
                        host_owner.insert(host.clone(), (index, *span));
                        if host == "*" {
                            hosts.any = Some(index);
                        } else if let Some(suffix) = host.strip_prefix('*') {
                            hosts.suffixes.push((suffix.to_string(), index));
                        } else {
                            hosts.exact.insert(host.clone(), index);
                        }
                    }
                    services.push(compiled.0);
                }
            }
        }
    }
    hosts
        .suffixes
        .sort_by(|a, b| b.0.len().cmp(&a.0.len()).then(a.0.cmp(&b.0)));

    let default_dialect = match default_dialect {
        Some(d) => Some(d.value),
        None => {
            let mut dialects: Vec<Dialect> = services.iter().map(|s| s.dialect).collect();
            dialects.sort();
            dialects.dedup();
            match dialects.as_slice() {
                [only] => Some(*only),
                [] => Some(Dialect::Huawei),
                _ => {
                    let span = loaded
                        .files
                        .first()
                        .map(|(id, _)| Span::new(*id, 0, 0))
                        .unwrap_or_default();
                    cx.diags.push(
                        Diagnostic::error(
                            diag::MISSING_STATEMENT,
                            span,
                            "services answer in different dialects and no `default dialect` is set",
                        )
                        .label("requests that match no service need a dialect")
                        .help(format!(
                            "add `default dialect huawei` (or {}) at the top level of a file",
                            crate::dialect::names_except(Dialect::Huawei)
                        )),
                    );
                    None
                }
            }
        }
    };

    diag::sort(&mut cx.diags);
    let snapshot = match default_dialect {
        Some(default_dialect) if !diag::has_errors(&cx.diags) => Some(Snapshot {
            default_dialect,
            default_limits: Limits::default(),
            hosts,
            services,
            source_hash: source_hash(loaded),
            policy_files: (0..loaded.sources.len() as u32)
                .map(|i| InputFile {
                    path: loaded.sources.name(i).into(),
                    sha256: Sha256::digest(loaded.sources.text(i)).into(),
                })
                .collect(),
            inputs: std::mem::take(&mut cx.inputs)
                .into_iter()
                .map(|(path, sha256)| InputFile { path, sha256 })
                .collect(),
        }),
        _ => None,
    };
    Compiled {
        snapshot,
        diagnostics: cx.diags,
    }
}

fn source_hash(loaded: &Loaded) -> String {
    let mut h = Sha256::new();
    for i in 0..loaded.sources.len() as u32 {
        h.update(loaded.sources.name(i).as_bytes());
        h.update([0]);
        h.update(loaded.sources.text(i).as_bytes());
        h.update([0]);
    }
    h.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

/// Why a file could not be read, without the OS's error number: the store's own explanation
/// when it gave one (a dangling symbolic link), else the kind of error.
fn why(e: &std::io::Error) -> String {
    match e.get_ref() {
        Some(inner) => inner.to_string(),
        None => e.kind().to_string(),
    }
}

/// Compilation context shared by every block.
pub(crate) struct Cx<'a> {
    pub(crate) diags: Vec<Diagnostic>,
    /// Spans of parse errors, sorted by (file, start): a block containing one may lack
    /// statements only because they did not parse, so "missing statement" diagnostics are
    /// suppressed inside it. Sorted so that asking costs a binary search, not a scan: every
    /// route may ask.
    parse_errors: Vec<Span>,
    secrets: &'a dyn SecretStore,
    pub(crate) sources: &'a crate::policy::diag::Sources,
    /// Directory of the file being compiled, for relative secret files.
    dir: &'a Path,
    /// Every secret file read so far and a digest of its content, for `Snapshot::inputs`.
    inputs: std::collections::BTreeMap<std::path::PathBuf, [u8; 32]>,
}

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

    pub(crate) fn define(
        &mut self,
        cx: &mut Cx<'_>,
        name: &ast::Ident,
        index: usize,
        code: diag::Code,
    ) -> bool {
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
        self.map.insert(name.value.clone(), (index, name.span));
        true
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

impl<'a> Cx<'a> {
    pub(crate) fn poisoned(&self, block: Span) -> bool {
        let first = self
            .parse_errors
            .partition_point(|e| (e.file, e.start) < (block.file, block.start));
        self.parse_errors
            .get(first)
            .is_some_and(|e| e.file == block.file && e.start < block.end)
    }

    /// Whether any error lies inside `block`: a parse error, or a compile error among the
    /// diagnostics from `since` on (those pushed while compiling the block; earlier ones lie
    /// in other blocks), so a policy of many services is not scanned once per service.
    fn errors_within(&self, block: Span, since: usize) -> bool {
        self.poisoned(block)
            || self.diags[since.min(self.diags.len())..].iter().any(|d| {
                d.severity == diag::Severity::Error
                    && d.span.file == block.file
                    && d.span.start >= block.start
                    && d.span.start < block.end
            })
    }

    pub(crate) fn missing(&mut self, block: Span, at: Span, message: String, help: &str) {
        if !self.poisoned(block) {
            self.diags.push(
                Diagnostic::error(diag::MISSING_STATEMENT, at, message)
                    .label("declared here")
                    .help(help),
            );
        }
    }

    /// Read a secret; `trim` drops one trailing newline (files written by editors have one).
    pub(crate) fn secret(&mut self, r: &ast::SecretRef, owner: &str, trim: bool) -> Option<Secret> {
        let name = &r.name.value;
        let found = match r.source {
            ast::SecretSource::Env => self
                .secrets
                .env(name)
                .map(String::into_bytes)
                .ok_or_else(|| format!("environment variable `{name}` is not set")),
            ast::SecretSource::File => {
                let path = self.dir.join(name);
                let read = self.secrets.file(&path);
                if let Ok(bytes) = &read {
                    self.inputs
                        .insert(path.clone(), Sha256::digest(bytes).into());
                }
                read.map_err(|e| format!("file `{}` cannot be read: {}", path.display(), why(&e)))
            }
        };
        match found {
            Ok(mut bytes) => {
                if trim {
                    if bytes.ends_with(b"\n") {
                        bytes.pop();
                    }
                    if bytes.ends_with(b"\r") {
                        bytes.pop();
                    }
                }
                if bytes.is_empty() {
                    self.diags.push(
                        Diagnostic::error(
                            diag::MISSING_SECRET,
                            r.name.span,
                            format!("the secret for {owner} is empty"),
                        )
                        .label("empty")
                        .help("put the secret in the environment variable or file"),
                    );
                    return None;
                }
                Some(Secret(bytes))
            }
            Err(why) => {
                self.diags.push(
                    Diagnostic::error(diag::MISSING_SECRET, r.name.span, format!("the secret for {owner} is missing"))
                        .label(why)
                        .help("secrets are read when the policy is compiled; provide it, or fix the reference"),
                );
                None
            }
        }
    }

    fn service(&mut self, s: &ast::Service, span: Span) -> Option<(Service, Vec<(String, Span)>)> {
        let diags_before = self.diags.len();
        let mut dialect = Once::new("dialect");
        let mut hosts = Once::new("hosts");
        let mut protocols = Once::new("protocols");
        let mut stages = Once::new("stages");
        let mut limits = Once::new("limits");
        let mut request_id = Once::new("request id from header");
        let mut client_cert = Once::new("client certificate required");
        let mut ip = IpRules::default();
        let mut trusted_proxies: Vec<IpNet> = Vec::new();
        let mut backends = Vec::new();
        let mut backend_names = Names::new("backend");
        let mut apps_ast = Vec::new();
        let mut providers_ast = Vec::new();
        let mut plans_ast = Vec::new();
        let mut routes_ast = Vec::new();

        for item in &s.items {
            use ast::ServiceItem as I;
            match &item.value {
                I::Dialect(d) => dialect.set(self, d.value, item.span),
                I::Hosts(h) => hosts.set(self, h.clone(), item.span),
                I::Protocols(p) => protocols.set(self, p.clone(), item.span),
                I::Stages(st) => stages.set(self, st.clone(), item.span),
                I::Limits(l) => limits.set(self, l.clone(), item.span),
                I::RequestIdHeader(h) => request_id.set(self, h.value.clone(), item.span),
                I::ClientCertificateRequired => client_cert.set(self, (), item.span),
                I::AllowIps(a) => ip.allow.extend(a.iter().map(|n| n.value)),
                I::DenyIps(d) => ip.deny.extend(d.iter().map(|n| n.value)),
                I::TrustedProxies(t) => trusted_proxies.extend(t.iter().map(|n| n.value)),
                I::Backend(b) => {
                    if backend_names.define(self, &b.name, backends.len(), diag::DUPLICATE_NAME) {
                        // keep indices aligned with names: a broken backend still occupies its
                        // slot (routes that forward to it are resolved by that index)
                        let compiled = self.backend(b, item.span);
                        backends.push(compiled.unwrap_or_else(|| Backend {
                            name: b.name.value.clone(),
                            targets: Vec::new(),
                            timeout_ms: 0,
                            connect_timeout_ms: 0,
                            retries: 0,
                            deny: Vec::new(),
                            except: Vec::new(),
                        }));
                    }
                }
                I::App(a) => apps_ast.push((a, item.span)),
                I::Auth(p) => providers_ast.push((p, item.span)),
                I::Plan(p) => plans_ast.push((p, item.span)),
                I::Route(r) => routes_ast.push((r, item.span)),
            }
        }

        // Without a dialect the service cannot serve, but its other statements are still
        // checked (with a stand-in dialect) so one run reports everything.
        let declared_dialect = dialect.take();
        if declared_dialect.is_none() {
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
        let dialect = declared_dialect.unwrap_or(Dialect::Huawei);
        let hosts = match hosts.take() {
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
        let service_protocols: Vec<Protocol> = match protocols.take() {
            Some(p) => dedup(p.iter().map(|p| p.value).collect()),
            None => Protocol::ALL.to_vec(),
        };
        let stage_sel = match stages.take() {
            Some(st) => self.stages(&st),
            None => StageSelector::None,
        };
        let mut svc_limits = Limits::default();
        if let Some(items) = limits.take() {
            self.limits(&items, &mut svc_limits, false);
        }

        // Apps, providers and plans.
        let mut app_names = Names::new("app");
        let mut apps = Vec::new();
        let mut app_by_key: HashMap<String, usize> = HashMap::new();
        let mut key_spans: HashMap<String, Span> = HashMap::new();
        for (a, span) in apps_ast {
            if !app_names.define(self, &a.name, apps.len(), diag::DUPLICATE_NAME) {
                continue;
            }
            // Duplicate keys are found even when a secret is missing.
            let key = a.items.iter().find_map(|i| match &i.value {
                ast::AppItem::Key(k) => Some(k),
                _ => None,
            });
            let mut duplicate = false;
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
            match self.app(a, span, &s.name.value).filter(|_| !duplicate) {
                Some((app, _)) => {
                    app_by_key.insert(app.key.clone(), apps.len());
                    apps.push(app);
                }
                // keep indices aligned with names: a broken app still occupies its slot
                None => apps.push(App {
                    name: a.name.value.clone(),
                    key: String::new(),
                    secret: Secret(Vec::new()),
                    app_codes: Vec::new(),
                    trusted_ips: Vec::new(),
                    frozen: true,
                    outside_plans: false,
                    quota: None,
                    rates: Vec::new(),
                }),
            }
        }
        let mut provider_names = Names::new("auth provider");
        let mut providers = Vec::new();
        for (p, span) in providers_ast {
            if provider_names.define(self, &p.name, providers.len(), diag::DUPLICATE_NAME) {
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
        }
        let mut plan_names = Names::new("plan");
        let mut plans = Vec::new();
        for (p, _) in plans_ast {
            if plan_names.define(self, &p.name, plans.len(), diag::DUPLICATE_PLAN) {
                plans.push(self.plan(p, &app_names, &s.name.value));
            }
        }
        // Tencent reaches APIs through usage plans: once a service has plans, a key that is in
        // none of them reaches nothing. Known here, so no request has to search the plans.
        if dialect.semantics().apps_outside_plans_refused && !plans.is_empty() {
            let mut in_a_plan = vec![false; apps.len()];
            for &i in plans.iter().flat_map(|p: &Plan| &p.apps) {
                if let Some(member) = in_a_plan.get_mut(i) {
                    *member = true;
                }
            }
            for (app, in_plan) in apps.iter_mut().zip(in_a_plan) {
                app.outside_plans = !in_plan;
            }
        }

        // Routes and trees.
        let tree_count = stage_sel.names().len().max(1);
        let mut rc = route::RouteCx {
            service: &s.name.value,
            dialect,
            protocols: &service_protocols,
            client_cert_required: client_cert.get().is_some(),
            stages: &stage_sel,
            limits: svc_limits,
            ip: &ip,
            backends: &backend_names,
            apps: &app_names,
            providers: &provider_names,
            provider_kinds: providers.iter().map(|p: &Provider| p.kind()).collect(),
            trees: vec![tree::TreeBuilder::default(); tree_count],
            routes: Vec::new(),
            route_spans: Vec::new(),
            used_backends: vec![false; backends.len()],
            used_providers: vec![false; providers.len()],
            label_uses: HashMap::new(),
        };
        for (r, span) in routes_ast {
            rc.route(self, r, span);
        }
        let route::RouteCx {
            trees,
            routes,
            used_backends,
            used_providers,
            ..
        } = rc;

        // "Never used" is noise while the service has errors: a misspelled `forward` line
        // makes its backend look unused.
        let clean = !self.errors_within(span, diags_before);
        for (name, i, span) in backend_names.spans().filter(|_| clean) {
            if !used_backends.get(i).copied().unwrap_or(true) {
                self.diags.push(
                    Diagnostic::warning(
                        diag::UNUSED,
                        span,
                        format!("backend `{name}` is never used"),
                    )
                    .label("no route forwards here")
                    .help("forward a route to it, or remove it"),
                );
            }
        }
        for (name, i, span) in provider_names.spans().filter(|_| clean) {
            if !used_providers.get(i).copied().unwrap_or(true) {
                self.diags.push(
                    Diagnostic::warning(
                        diag::UNUSED,
                        span,
                        format!("auth provider `{name}` is never used"),
                    )
                    .label("no route authenticates with it")
                    .help("use it in a route's `auth`, or remove it"),
                );
            }
        }

        declared_dialect?;
        let service = Service {
            name: s.name.value.as_str().into(),
            dialect,
            limits: svc_limits,
            stages: stage_sel,
            trees: trees.into_iter().map(tree::TreeBuilder::build).collect(),
            routes,
            backends,
            apps,
            app_by_key,
            providers,
            plans,
            trusted_proxies,
            request_id_header: request_id.take(),
            client_cert_required: client_cert.take().is_some(),
        };
        Some((service, hosts))
    }

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

    fn backend(&mut self, b: &ast::Backend, span: Span) -> Option<Backend> {
        let mut targets = Once::new("targets");
        let mut timeout = Once::new("timeout");
        let mut connect = Once::new("connect timeout");
        let mut retries = Once::new("retries");
        let mut deny = Vec::new();
        let mut except = Vec::new();
        for item in &b.items {
            match &item.value {
                ast::BackendItem::Targets(t) => targets.set(
                    self,
                    t.iter().map(|t| t.value.clone()).collect::<Vec<_>>(),
                    item.span,
                ),
                ast::BackendItem::Timeout(d) => timeout.set(self, d.value.millis, item.span),
                ast::BackendItem::ConnectTimeout(d) => connect.set(self, d.value.millis, item.span),
                ast::BackendItem::Retries(r) => retries.set(self, r.value, item.span),
                ast::BackendItem::DenyIps { deny: d, except: e } => {
                    deny.extend(d.iter().map(|n| n.value));
                    except.extend(e.iter().map(|n| n.value));
                }
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
        Some(Backend {
            name: b.name.value.clone(),
            targets: targets.iter().map(|t: &String| Target::parse(t)).collect(),
            timeout_ms: timeout.take().unwrap_or(60_000),
            connect_timeout_ms: connect.take().unwrap_or(5_000),
            retries: retries.take().unwrap_or(0),
            deny,
            except,
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
        let Some(secret_ref) = secret.take() else {
            self.missing(
                span,
                a.name.span,
                format!("app `{}` has no `secret`", a.name.value),
                "add `secret env \"VAR\"` or `secret file \"PATH\"`",
            );
            return None;
        };
        let secret = self.secret(&secret_ref, &owner, true)?;
        Some((
            App {
                name: a.name.value.clone(),
                key: key.value,
                secret,
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

pub(crate) fn dedup<T: PartialEq>(v: Vec<T>) -> Vec<T> {
    let mut out: Vec<T> = Vec::with_capacity(v.len());
    for x in v {
        if !out.contains(&x) {
            out.push(x);
        }
    }
    out
}
