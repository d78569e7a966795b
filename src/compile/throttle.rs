//! Throttles: named sets of limits (`throttle NAME { … }` at the top level of a file) that
//! services and routes bind with `throttle NAME` — Huawei's request-throttling policies with
//! their excluded apps and addresses, Tencent's special apps and parameter throttling.
//!
//! A throttle adds nothing to the request path. For each route it is bound to it compiles into
//! ordinary [`RateRule`]s — the total (`rate N per WINDOW`, Huawei's API limit), then one per
//! `per` dimension — which the route's batch counts with its own rates (`check::rate`,
//! `check::limits`). What makes the budget shared or per API is the rules' ids alone, since a
//! counter's key is its rule id and the value counted:
//!
//! * `shared`: `throttle:NAME|DIMENSION` on every route bound, so all of them draw on one
//!   budget;
//! * otherwise `throttle:NAME@OWNER|DIMENSION`, where OWNER is the route's own counter owner
//!   (`service/route:LABEL`), so each API counts its own.
//!
//! A shared throttle bound in several services ties their counters together: [`Throttles::groups`]
//! puts such services in one counter group, so that one request's batch never spans two
//! groups (Redis Cluster makes the group a hash tag, see `limits::Count::group`).
//!
//! A route's `throttle` replaces its service's: Huawei binds one policy per API.

use super::Cx;
use crate::policy::ast::{self, ExceptWho, Span, Spanned, ThrottleItem};
use crate::policy::diag::{self, did_you_mean, Diagnostic};
use crate::policy::Loaded;
use crate::vocab::{Excepted, Exception, RateKey, RateRule, StoreErrorPolicy, Window};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

/// Every throttle of the policy set, validated, and what the routes made of them.
#[derive(Default)]
pub(crate) struct Throttles<'a> {
    defs: BTreeMap<&'a str, Def<'a>>,
}

struct Def<'a> {
    name: &'a ast::Ident,
    /// `None` when the block has no valid `rate`: bindings compile to nothing (the block's
    /// own error says why).
    total: Option<Total>,
    per: Vec<(RateKey, u64)>,
    except: Vec<(&'a Spanned<ExceptWho>, u64)>,
    shared: bool,
    /// The services that bind it (the service's name), for the counter groups.
    bound_in: BTreeSet<String>,
    /// Per `except app`: whether some binding service has the app.
    app_found: Vec<bool>,
}

#[derive(Clone, Copy)]
struct Total {
    limit: u64,
    window: Window,
    on_store_error: StoreErrorPolicy,
}

/// What a binding needs of the route: its counter owner and its service's apps.
pub(crate) struct Binding<'r> {
    pub service: &'r str,
    /// `service/route:LABEL`: the per-API counters' owner.
    pub owner: &'r str,
    /// The app's key by name, in the route's service.
    pub app_key: &'r dyn Fn(&str) -> Option<String>,
}

impl<'a> Throttles<'a> {
    /// Every `throttle` block of the policy set: names unique, each block checked.
    pub(crate) fn resolve(cx: &mut Cx<'_>, loaded: &'a Loaded) -> Throttles<'a> {
        let mut out = Throttles::default();
        let blocks = loaded.files.iter().flat_map(|(_, f)| &f.items);
        for item in blocks {
            let ast::TopItem::Throttle(t) = &item.value else {
                continue;
            };
            if let Some(prev) = out.defs.get(t.name.value.as_str()) {
                cx.diags.push(
                    Diagnostic::error(
                        diag::DUPLICATE_NAME,
                        t.name.span,
                        format!("throttle `{}` is defined twice", t.name.value),
                    )
                    .label("second definition")
                    .related(prev.name.span, "first defined here")
                    .help("throttle names are unique across the policy set"),
                );
                continue;
            }
            let def = Def::check(cx, t, item.span);
            out.defs.insert(&t.name.value, def);
        }
        out
    }

    /// The rules `throttle NAME` gives a route; `None` (with a diagnostic) when no throttle has
    /// the name.
    pub(crate) fn bind(
        &mut self,
        diags: &mut Vec<Diagnostic>,
        name: &ast::Ident,
        route: &Binding<'_>,
    ) -> Option<Vec<RateRule>> {
        let Some(def) = self.defs.get_mut(name.value.as_str()) else {
            let help = did_you_mean(&name.value, self.defs.keys().copied()).unwrap_or_else(|| {
                "define it at the top level of a file: `throttle NAME { rate N per minute … }`"
                    .to_string()
            });
            diags.push(
                Diagnostic::error(
                    diag::UNDEFINED,
                    name.span,
                    format!("undefined throttle `{}`", name.value),
                )
                .label("no throttle of this name in the policy set")
                .help(help),
            );
            return None;
        };
        def.bound_in.insert(route.service.to_string());
        Some(def.rules(route))
    }

    /// Warnings for throttles bound nowhere; errors for `except app` naming an app that no
    /// binding service defines (a typo would otherwise silently except no one).
    pub(crate) fn finish(&self, diags: &mut Vec<Diagnostic>) {
        for def in self.defs.values() {
            if def.bound_in.is_empty() {
                diags.push(
                    Diagnostic::warning(
                        diag::UNUSED,
                        def.name.span,
                        format!("throttle `{}` is bound nowhere", def.name.value),
                    )
                    .label("no service or route says `throttle` with this name")
                    .help(format!(
                        "bind it with `throttle {}` in a service or a route, or remove it",
                        def.name.value
                    )),
                );
                continue;
            }
            for (app, found) in def.except_apps().zip(&def.app_found) {
                if !found {
                    let services: Vec<&str> = def.bound_in.iter().map(String::as_str).collect();
                    diags.push(
                        Diagnostic::error(
                            diag::UNDEFINED,
                            app.span,
                            format!("undefined app `{}`", app.value),
                        )
                        .label("no service this throttle is bound in defines it")
                        .help(format!("bound in: {}", services.join(", "))),
                    );
                }
            }
        }
    }

    /// Each service's counter group: services that bind one shared throttle count in one
    /// group, named by the first of them in name order (stable across reloads that bind the
    /// same throttles); every other service is its own group.
    pub(crate) fn groups(&self) -> HashMap<String, Arc<str>> {
        let mut parent: BTreeMap<&str, &str> = BTreeMap::new();
        fn root<'s>(parent: &BTreeMap<&'s str, &'s str>, mut s: &'s str) -> &'s str {
            while let Some(&p) = parent.get(s).filter(|&&p| p != s) {
                s = p;
            }
            s
        }
        for def in self.defs.values().filter(|d| d.shared) {
            let mut services = def.bound_in.iter().map(String::as_str);
            let Some(first) = services.next() else {
                continue;
            };
            parent.entry(first).or_insert(first);
            for s in services {
                parent.entry(s).or_insert(s);
                let (a, b) = (root(&parent, first), root(&parent, s));
                let (low, high) = if a <= b { (a, b) } else { (b, a) };
                parent.insert(high, low);
            }
        }
        parent
            .keys()
            .map(|&s| (s.to_string(), Arc::from(root(&parent, s))))
            .collect()
    }
}

impl<'a> Def<'a> {
    /// One `rate` (the total and the window), `per` dimensions at most once each, exceptions
    /// only for a dimension the throttle limits.
    fn check(cx: &mut Cx<'_>, t: &'a ast::Throttle, span: Span) -> Def<'a> {
        let mut def = Def {
            name: &t.name,
            total: None,
            per: Vec::new(),
            except: Vec::new(),
            shared: false,
            bound_in: BTreeSet::new(),
            app_found: Vec::new(),
        };
        let mut rate_at: Option<Span> = None;
        let mut per_at: Vec<(RateKey, Span)> = Vec::new();
        for item in &t.items {
            match &item.value {
                ThrottleItem::Rate(r) => {
                    if let Some(prev) = rate_at {
                        cx.diags.push(repeated(item.span, prev, "rate"));
                        continue;
                    }
                    rate_at = Some(item.span);
                    def.total = def.total_of(cx, r);
                }
                ThrottleItem::Per { key, limit } => {
                    if key.value == RateKey::Route {
                        cx.diags.push(
                            Diagnostic::error(
                                diag::NOT_APPLICABLE,
                                key.span,
                                "`per route` in a throttle",
                            )
                            .label("the throttle's `rate` is each API's total")
                            .help("write the total as `rate N per WINDOW`"),
                        );
                        continue;
                    }
                    if let Some((_, prev)) = per_at.iter().find(|(k, _)| *k == key.value) {
                        cx.diags
                            .push(repeated(item.span, *prev, &format!("per {}", key.value)));
                        continue;
                    }
                    per_at.push((key.value.clone(), item.span));
                    def.per.push((key.value.clone(), limit.value));
                }
                ThrottleItem::Except { who, limit } => def.except(cx, who, limit.value, &per_at),
                ThrottleItem::Shared => def.shared = true,
            }
        }
        if rate_at.is_none() && !cx.poisoned(span) {
            cx.diags.push(
                Diagnostic::error(
                    diag::MISSING_STATEMENT,
                    t.name.span,
                    format!("throttle `{}` has no `rate`", t.name.value),
                )
                .label("its window and total are missing")
                .help("add `rate N per WINDOW`, e.g. `rate 500 per minute`: the total each bound API may take, and the window of every limit here"),
            );
        }
        def.app_found = vec![false; def.except_apps().count()];
        def
    }

    fn total_of(&self, cx: &mut Cx<'_>, r: &ast::Rate) -> Option<Total> {
        if let Some(b) = &r.burst {
            cx.diags.push(
                Diagnostic::error(diag::NOT_APPLICABLE, b.span, "`burst` in a throttle")
                    .label("a throttle's limits admit their whole count at once")
                    .help("remove it: `rate N per WINDOW` lets N requests through in any window"),
            );
            return None;
        }
        if let Some(k) = &r.key {
            cx.diags.push(
                Diagnostic::error(diag::NOT_APPLICABLE, k.span, "a keyed `rate` in a throttle")
                    .label("the throttle's `rate` is each API's total")
                    .help(format!(
                        "count per client with its own line: `per {} {}`",
                        k.value, r.limit.value
                    )),
            );
            return None;
        }
        Some(Total {
            limit: r.limit.value,
            window: r.period.value,
            on_store_error: r
                .on_store_error
                .as_ref()
                .map_or(StoreErrorPolicy::Allow, |e| e.value),
        })
    }

    fn except(
        &mut self,
        cx: &mut Cx<'_>,
        who: &'a Spanned<ExceptWho>,
        limit: u64,
        per: &[(RateKey, Span)],
    ) {
        let (key, what) = match &who.value {
            ExceptWho::App(_) => (RateKey::App, "app"),
            ExceptWho::Ip(_) => (RateKey::Ip, "ip"),
        };
        if !per.iter().any(|(k, _)| *k == key) {
            cx.diags.push(
                Diagnostic::error(
                    diag::MISSING_STATEMENT,
                    who.span,
                    format!("`except {what}` without a `per {what}` limit"),
                )
                .label("there is no per-client limit to replace")
                .help(format!("add `per {what} N` before it")),
            );
            return;
        }
        if let Some((prev, _)) = self.except.iter().find(|(w, _)| w.value == who.value) {
            cx.diags.push(repeated(who.span, prev.span, "except"));
            return;
        }
        self.except.push((who, limit));
    }

    fn except_apps(&self) -> impl Iterator<Item = &'a ast::Ident> + '_ {
        self.except.iter().filter_map(|(who, _)| match &who.value {
            ExceptWho::App(app) => Some(app),
            ExceptWho::Ip(_) => None,
        })
    }

    /// The route's rules: the total, then each dimension with its exceptions.
    fn rules(&mut self, route: &Binding<'_>) -> Vec<RateRule> {
        let Some(total) = self.total else {
            return Vec::new();
        };
        let name: Arc<str> = Arc::from(self.name.value.as_str());
        let base = match self.shared {
            true => format!("throttle:{name}"),
            false => format!("throttle:{name}@{}", route.owner),
        };
        let mut except = Vec::new();
        let mut apps = self.app_found.iter_mut();
        for (who, limit) in &self.except {
            let excepted = match &who.value {
                ExceptWho::Ip(net) => Some(Excepted::Ip(*net)),
                ExceptWho::App(app) => {
                    let key = (route.app_key)(&app.value);
                    if let Some(found) = apps.next() {
                        *found |= key.is_some();
                    }
                    key.map(Excepted::AppKey)
                }
            };
            except.extend(excepted.map(|who| Exception { who, limit: *limit }));
        }
        let rule = |key: RateKey, limit: u64, dimension: String| RateRule {
            id: format!("{base}|{dimension}"),
            limit,
            period: total.window,
            key,
            burst: 0, // a throttle admits its whole count at once: `RateRule::burst_for`
            on_store_error: total.on_store_error,
            throttle: Some(name.clone()),
            except: except.clone(),
        };
        let mut out = vec![rule(RateKey::Route, total.limit, "api".to_string())];
        for (key, limit) in &self.per {
            let dimension = match key {
                RateKey::Header(h) => format!("header:{}", h.to_ascii_lowercase()),
                RateKey::Query(q) => format!("query:{q}"),
                other => other.to_string(),
            };
            out.push(rule(key.clone(), *limit, dimension));
        }
        out
    }
}

fn repeated(span: Span, prev: Span, what: &str) -> Diagnostic {
    Diagnostic::error(
        diag::REPEATED_STATEMENT,
        span,
        format!("`{what}` appears twice"),
    )
    .label("second occurrence")
    .related(prev, "first occurrence")
    .help(format!("`{what}` may appear once in a throttle; keep one"))
}
