//! AST → `Snapshot`, in three passes, each in its own module and each documenting what it
//! guarantees to the next:
//!
//! 1. [`resolve`]: names → indices (services, backends, apps, providers, plans), statements →
//!    their slots; every duplicate and every undefined name is reported.
//! 2. [`validate`]: each block checked (conflicts, ranges, vendor rules, secrets read) and
//!    compiled, or reported; routes are resolved and checked by [`route`].
//! 3. [`build`]: valid input → [`Snapshot`], unable to fail.
//!
//! Every problem becomes a diagnostic and all are reported in one run; the build runs only
//! when there is no error, and then every service is valid (the gate in [`compile`]).

mod build;
mod render;
mod resolve;
mod route;
mod secrets;
pub mod snapshot;
mod throttle;
pub mod tree;
mod validate;

pub(crate) use resolve::{Names, Once};
pub use secrets::{ProcessSecrets, SecretStore};
pub use snapshot::*;

use crate::policy::ast::{self, Span};
use crate::policy::diag::{self, Diagnostic};
use crate::policy::Loaded;
use crate::vocab::Dialect;
use std::collections::HashMap;
use std::path::Path;

/// The outcome of compiling a policy set: every diagnostic (parse and compile), and the
/// snapshot when there was no error.
pub struct Compiled {
    pub snapshot: Option<Snapshot>,
    pub diagnostics: Vec<Diagnostic>,
}

/// A service that declares its dialect, and the service when it is valid.
type Declared = (Dialect, Option<validate::Valid>);

/// Each host claimed, with the index of its service among the [`Declared`] ones.
type HostClaims = Vec<(String, usize)>;

/// Compile a loaded policy set. Parse diagnostics are carried over; compilation still runs
/// on what parsed so that one `check` reports everything.
pub fn compile(loaded: &Loaded, secrets: &dyn SecretStore) -> Compiled {
    let mut cx = Cx::new(loaded, secrets);
    let top = resolve::top_level(&mut cx, loaded);
    cx.throttles = throttle::Throttles::resolve(&mut cx, loaded);
    let (mut services, hosts) = cx.services(&top.services);
    cx.throttles.finish(&mut cx.diags);
    let groups = cx.throttles.groups();
    for v in services.iter_mut().filter_map(|(_, v)| v.as_mut()) {
        v.counter_group = groups.get(&v.name).cloned();
    }
    let default_dialect = match top.default_dialect {
        Some(d) => Some(d.value),
        None => cx.default_dialect(loaded, &services),
    };
    diag::sort(&mut cx.diags);
    // The gate between validate and build: no error means every service is valid.
    let services: Option<Vec<validate::Valid>> = services.into_iter().map(|(_, s)| s).collect();
    let snapshot = match (default_dialect, services) {
        (Some(default_dialect), Some(services)) if !diag::has_errors(&cx.diags) => {
            Some(build::snapshot(build::Input {
                loaded,
                default_dialect,
                services,
                hosts,
                inputs: std::mem::take(&mut cx.inputs),
            }))
        }
        _ => None,
    };
    Compiled {
        snapshot,
        diagnostics: cx.diags,
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
    /// The policy set's throttles, which routes bind as they compile.
    pub(crate) throttles: throttle::Throttles<'a>,
}

impl<'a> Cx<'a> {
    fn new(loaded: &'a Loaded, secrets: &'a dyn SecretStore) -> Self {
        let mut parse_errors: Vec<Span> = loaded
            .diagnostics
            .iter()
            .filter(|d| d.severity == diag::Severity::Error)
            .map(|d| d.span)
            .collect();
        parse_errors.sort_by_key(|s| (s.file, s.start));
        Cx {
            diags: loaded.diagnostics.clone(),
            parse_errors,
            secrets,
            sources: &loaded.sources,
            dir: Path::new(""),
            inputs: std::collections::BTreeMap::new(),
            throttles: throttle::Throttles::default(),
        }
    }

    /// Validate every service and let each claim its hosts (a service without a dialect
    /// claims none). Returns the services that declare a dialect, with it (the service `None`
    /// when broken), and the host claims, by index into them.
    fn services(
        &mut self,
        services: &[(&ast::Service, Span, &'a Path)],
    ) -> (Vec<Declared>, HostClaims) {
        let mut out = Vec::new();
        let mut claims = Vec::new();
        let mut owners: HashMap<String, (String, Span)> = HashMap::new();
        for &(s, span, dir) in services {
            self.dir = dir;
            let Some(checked) = self.service(s, span) else {
                continue;
            };
            for (host, span) in checked.hosts {
                if let Some((owner, prev)) = owners.get(&host) {
                    self.diags.push(
                        Diagnostic::error(
                            diag::DUPLICATE_HOST,
                            span,
                            format!("host {host:?} is already claimed by service `{owner}`"),
                        )
                        .label("claimed twice")
                        .related(*prev, "first claimed here")
                        .help("a host name routes to exactly one service"),
                    );
                    continue;
                }
                owners.insert(host.clone(), (s.name.value.clone(), span));
                claims.push((host, out.len()));
            }
            out.push((checked.dialect, checked.service));
        }
        (out, claims)
    }

    /// With no `default dialect`: the services' one dialect, Huawei's when there is no
    /// service, else an error.
    fn default_dialect(&mut self, loaded: &Loaded, services: &[Declared]) -> Option<Dialect> {
        // A broken service counts too: it declared its dialect.
        let mut dialects: Vec<Dialect> = services.iter().map(|(d, _)| *d).collect();
        dialects.sort();
        dialects.dedup();
        match dialects.as_slice() {
            [only] => return Some(*only),
            [] => return Some(Dialect::Huawei),
            _ => {}
        }
        let span = loaded
            .files
            .first()
            .map(|(id, _)| Span::new(*id, 0, 0))
            .unwrap_or_default();
        self.diags.push(
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
