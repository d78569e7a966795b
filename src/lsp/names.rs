//! Go to definition, find references and rename, for the names a policy defines and uses:
//! backends, apps, auth providers, plans (per service) and throttles (global).
//!
//! The AST keeps every name as an [`Ident`] with its span, so this module walks it once and
//! lists every occurrence: its kind, its scope, and whether it defines the name. It mirrors the
//! compiler's scoping (`compile/resolve.rs`: a service's backends, apps, providers and plans
//! are its own; `compile/throttle.rs`: throttles are global, and a throttle's `except app NAME`
//! means the apps of that name in the services binding it) without the compiler's index
//! tables, which exist only for a policy that resolves: here a half-typed policy still
//! navigates.

use crate::policy::ast::{self, Ident, Span};
use crate::policy::parse::Block;

/// What a name names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Backend,
    App,
    Provider,
    Plan,
    Throttle,
}

impl Kind {
    pub fn name(self) -> &'static str {
        match self {
            Kind::Backend => "backend",
            Kind::App => "app",
            Kind::Provider => "auth provider",
            Kind::Plan => "plan",
            Kind::Throttle => "throttle",
        }
    }
}

/// Where a name is visible.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scope {
    /// A service's own names (services are unique by name in a set).
    Service(String),
    /// Every service: throttles, and the apps a throttle's `except app` names.
    Global,
}

/// One occurrence of a name.
#[derive(Debug, Clone, PartialEq)]
pub struct Occurrence {
    pub kind: Kind,
    pub scope: Scope,
    pub name: String,
    pub span: Span,
    pub definition: bool,
}

impl Occurrence {
    /// Whether `other` names the same thing.
    pub fn same(&self, other: &Occurrence) -> bool {
        self.kind == other.kind
            && self.name == other.name
            && (self.scope == other.scope
                || self.scope == Scope::Global
                || other.scope == Scope::Global)
    }
}

/// Every occurrence of a name in these files.
pub fn occurrences<'a>(files: impl IntoIterator<Item = &'a ast::File>) -> Vec<Occurrence> {
    let mut w = Walk(Vec::new());
    for file in files {
        for item in &file.items {
            match &item.value {
                ast::TopItem::Service(s) => w.service(s),
                ast::TopItem::Throttle(t) => {
                    w.add(Kind::Throttle, &Scope::Global, &t.name, true);
                    for i in &t.items {
                        if let ast::ThrottleItem::Except { who, .. } = &i.value {
                            if let ast::ExceptWho::App(app) = &who.value {
                                w.add(Kind::App, &Scope::Global, app, false);
                            }
                        }
                    }
                }
                ast::TopItem::DefaultDialect(_) => {}
            }
        }
    }
    w.0
}

struct Walk(Vec<Occurrence>);

impl Walk {
    fn add(&mut self, kind: Kind, scope: &Scope, name: &Ident, definition: bool) {
        self.0.push(Occurrence {
            kind,
            scope: scope.clone(),
            name: name.value.clone(),
            span: name.span,
            definition,
        });
    }

    fn service(&mut self, s: &ast::Service) {
        let scope = Scope::Service(s.name.value.clone());
        for item in &s.items {
            match &item.value {
                ast::ServiceItem::Backend(b) => {
                    self.add(Kind::Backend, &scope, &b.name, true);
                    for bi in &b.items {
                        if let ast::BackendItem::Breaker(br) = &bi.value {
                            for x in &br.items {
                                if let ast::BreakerItem::Downgrade(ast::Downgrade::Backend(n)) =
                                    &x.value
                                {
                                    self.add(Kind::Backend, &scope, n, false);
                                }
                            }
                        }
                    }
                }
                ast::ServiceItem::App(a) => self.add(Kind::App, &scope, &a.name, true),
                ast::ServiceItem::Auth(p) => self.add(Kind::Provider, &scope, &p.name, true),
                ast::ServiceItem::Plan(p) => {
                    self.add(Kind::Plan, &scope, &p.name, true);
                    for pi in &p.items {
                        if let ast::PlanItem::Apps(apps) = &pi.value {
                            apps.iter()
                                .for_each(|a| self.add(Kind::App, &scope, a, false));
                        }
                    }
                }
                ast::ServiceItem::Throttle(t) => self.add(Kind::Throttle, &Scope::Global, t, false),
                ast::ServiceItem::Route(r) => self.route(r, &scope),
                _ => {}
            }
        }
    }

    fn route(&mut self, r: &ast::Route, scope: &Scope) {
        for item in &r.items {
            match &item.value {
                ast::RouteItem::Auth(ast::RouteAuth::Provider { provider, apps, .. }) => {
                    self.add(Kind::Provider, scope, provider, false);
                    for a in apps.iter().flatten() {
                        self.add(Kind::App, scope, a, false);
                    }
                }
                ast::RouteItem::Throttle(t) => self.add(Kind::Throttle, &Scope::Global, t, false),
                ast::RouteItem::Forward(f) => self.add(Kind::Backend, scope, &f.backend, false),
                ast::RouteItem::IssueTokens(p) => self.add(Kind::Provider, scope, p, false),
                ast::RouteItem::Upstream(ast::Upstream::Policy(p)) => {
                    for pi in &p.items {
                        if let ast::PolicyItem::Forward(f) = &pi.value {
                            self.add(Kind::Backend, scope, &f.backend, false);
                        }
                    }
                }
                _ => {}
            }
        }
    }
}

/// The occurrence under byte `offset` of file `file` (its end counts: a cursor just after a
/// name is on it).
pub fn at(all: &[Occurrence], file: u32, offset: usize) -> Option<&Occurrence> {
    all.iter().find(|o| {
        o.span.file == file && o.span.start as usize <= offset && offset <= o.span.end as usize
    })
}

/// The definitions of what `o` names.
pub fn definitions<'a>(all: &'a [Occurrence], o: &Occurrence) -> Vec<&'a Occurrence> {
    all.iter().filter(|x| x.definition && x.same(o)).collect()
}

/// Every occurrence of what `o` names (definitions too when `declarations`).
pub fn references<'a>(
    all: &'a [Occurrence],
    o: &Occurrence,
    declarations: bool,
) -> Vec<&'a Occurrence> {
    all.iter()
        .filter(|x| x.same(o) && (declarations || !x.definition))
        .collect()
}

/// Why `new` cannot replace the name `o` (not a name the grammar reads as one, or the name of
/// another definition of the same kind in the same scope); `None` when it can.
pub fn refuse_rename(all: &[Occurrence], o: &Occurrence, new: &str) -> Option<String> {
    if !is_name(new) {
        return Some(format!(
            "`{new}` is not a name: a name is a letter or `_`, then letters, digits, `_` or `-`"
        ));
    }
    if RESERVED.contains(&new) {
        return Some(format!(
            "`{new}` cannot be a name: it is a word the language reads in lists of names"
        ));
    }
    let probe = Occurrence {
        name: new.to_string(),
        ..o.clone()
    };
    if new != o.name {
        if let Some(other) = all.iter().find(|x| x.definition && x.same(&probe)) {
            return Some(format!(
                "a {} named `{new}` already exists{}",
                o.kind.name(),
                match &other.scope {
                    Scope::Service(s) => format!(" in service `{s}`"),
                    Scope::Global => String::new(),
                }
            ));
        }
    }
    None
}

/// Words that end an open list of names in the grammar (`list_end`), or stand where a name
/// would (`auth none`): a name spelled like one would change what a statement means.
const RESERVED: &[&str] = &[
    "from", "except", "claim", "apps", "per", "burst", "on", "default", "none",
];

/// The grammar's `ident`: a letter or `_`, then letters, digits, `_` or `-`.
pub fn is_name(s: &str) -> bool {
    let mut chars = s.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

/// The kinds of names completion offers after the words `before` (the statement typed so
/// far, without the word being typed) in `block`, with the scope they are looked up in.
pub fn expected(block: Block, before: &[&str]) -> Option<Kind> {
    match (block, before) {
        (Block::Route | Block::Policy, ["forward"]) => Some(Kind::Backend),
        (Block::Breaker, ["downgrade", "backend"]) => Some(Kind::Backend),
        (Block::Route, ["auth"]) | (Block::Route, ["issue", "tokens"]) => Some(Kind::Provider),
        (Block::Route | Block::Service, ["throttle"]) => Some(Kind::Throttle),
        (Block::Plan, ["apps", ..]) => Some(Kind::App),
        (Block::Route, ["auth", _, "apps", ..]) => Some(Kind::App),
        (Block::Throttle, ["except", "app"]) => Some(Kind::App),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const POLICY: &str = r#"throttle t { rate 10 per second; except app a 5 }
service s {
    dialect huawei
    hosts "x"
    backend b { targets "http://127.0.0.1:1" }
    backend c {
        targets "http://127.0.0.1:2"
        breaker { count 1 in 1s; open 1s; downgrade backend b }
    }
    app a { key "k" }
    plan p { apps a }
    auth j jwt { key env "K" }
    throttle t
    route GET "/x" { auth j apps a; forward b }
}
service other {
    dialect huawei
    hosts "y"
    backend b { targets "http://127.0.0.1:3" }
    route GET "/y" { throttle t; forward b }
}
"#;

    fn all() -> Vec<Occurrence> {
        let parsed = crate::policy::parse::parse_file(0, POLICY);
        assert!(parsed.diagnostics.is_empty(), "{:?}", parsed.diagnostics);
        occurrences([&parsed.file.unwrap()])
    }

    fn nth(needle: &str, n: usize) -> usize {
        POLICY.match_indices(needle).nth(n).unwrap().0
    }

    #[test]
    fn a_services_names_are_its_own_and_throttles_are_global() {
        let all = all();
        // `forward b` in service s → backend b of s, not of other
        let use_b = at(&all, 0, nth("forward b", 0) + 8).unwrap();
        let defs = definitions(&all, use_b);
        assert_eq!(defs.len(), 1);
        assert_eq!(defs[0].span.start as usize, nth("backend b", 0) + 8);
        // b of s: defined, used by the downgrade and the forward
        assert_eq!(references(&all, use_b, true).len(), 3);
        assert_eq!(references(&all, use_b, false).len(), 2);
        // throttle t: defined at the top, bound by a service and a route of another service
        let t = at(&all, 0, nth("throttle t", 1) + 9).unwrap();
        assert_eq!(references(&all, t, true).len(), 3);
        // app a: the plan, the route's apps and the throttle's exception
        let a = at(&all, 0, nth("app a {", 0) + 4).unwrap();
        assert!(a.definition);
        assert_eq!(references(&all, a, false).len(), 3);
    }

    #[test]
    fn renames_are_refused_onto_names_taken_or_not_names() {
        let all = all();
        let b = at(&all, 0, nth("backend b", 0) + 8).unwrap();
        assert!(refuse_rename(&all, b, "c")
            .unwrap()
            .contains("already exists in service `s`"));
        assert!(refuse_rename(&all, b, "9x").unwrap().contains("not a name"));
        assert!(refuse_rename(&all, b, "from").is_some());
        assert!(refuse_rename(&all, b, "d").is_none());
        // the other service's `c`-less scope: b of other may become c
        let b2 = at(&all, 0, nth("backend b {", 1) + 8).unwrap();
        assert!(refuse_rename(&all, b2, "c").is_none());
    }
}
