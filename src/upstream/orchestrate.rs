//! Parameter orchestration (issue 13, item 4; Huawei APIG's "orchestration rules"): a frontend
//! parameter's value mapped through rules into a *new* backend parameter.
//!
//! ```text
//! orchestrate query "uid" into header "X-Shard" {
//!     pre head 4                 // the rules below see the first four characters
//!     list "0000" "0001" to "shard-a"
//!     range 2..4999 to "shard-b"
//!     hash range 0..49 to "shard-c"
//!     empty to "shard-anon"      // the parameter is absent or empty
//!     default "shard-z"          // present, but no rule matched
//! }
//! ```
//!
//! # Semantics (Huawei's, with the choices its documents leave open)
//!
//! - The rules run in the order written; the first that matches gives the new parameter.
//!   `list` matches a listed value exactly; `range A..B` a decimal integer within `A..=B`;
//!   `hash`, `head N` and `tail N` match every value. A `pre` rule that matches does not give
//!   the result: its output is the value the rules after it see (Huawei's "pre-processing").
//! - `head N` / `tail N`: the first / last N characters (Unicode scalar values), the whole
//!   value when it is shorter.
//! - The hash (Huawei documents none): SHA-256 of the value's bytes, its first eight bytes read
//!   as a big-endian integer. `hash` gives those eight bytes as sixteen lower-case hex digits;
//!   `hash range A..B` matches when the integer modulo 100 (a bucket `0..=99`) is within
//!   `A..=B` — so `0..49` and `50..99` split the values in half, the same way on every gateway
//!   and every run.
//! - An absent or empty parameter gets the `empty` rule's value; without one, the new parameter
//!   is omitted (that a parameter is present is `require`'s job). A present value that no rule
//!   matches gets `default`'s value; without one the request is refused with
//!   [`Reason::OrchestrationFailed`](crate::dialect::Reason) — Huawei's 400 `APIG.0106
//!   Orchestration error.`.
//! - The frontend parameter still passes to the backend (orchestration adds a parameter, it
//!   does not rename one); whatever the client sent under the new parameter's name does not.
//!
//! `check` ([`validate`]) refuses a block without a rule that gives a result, a `pre` rule with
//! nothing after it to feed, a rule after `default`, a second `empty` or `default`, and warns of
//! a rule that can never apply.

use crate::policy::ast::{self, OrchestrationKind, Spanned, UpstreamLocation};
use crate::policy::diag::{self, Diagnostic};
use crate::vocab::ParamLocation;
use sha2::{Digest, Sha256};

/// The number of buckets `hash range` divides values into.
pub const HASH_BUCKETS: u64 = 100;

/// One orchestration as compiled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Orchestration {
    pub from: (ParamLocation, String),
    pub into: (UpstreamLocation, String),
    /// The matching rules in order (`empty` and `default` apart).
    pub rules: Vec<Rule>,
    pub empty: Option<String>,
    pub default: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    pub pre: bool,
    pub kind: Kind,
    /// The rule as written, for traces.
    pub text: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Kind {
    List { values: Vec<String>, to: String },
    Range { range: Bounds, to: String },
    Hash,
    HashRange { range: Bounds, to: String },
    Head(usize),
    Tail(usize),
}

/// An inclusive integer interval; an open end is unbounded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bounds {
    pub min: i64,
    pub max: i64,
}

impl Bounds {
    fn of(r: &ast::Range<i64>) -> Bounds {
        Bounds {
            min: r.min.unwrap_or(i64::MIN),
            max: r.max.unwrap_or(i64::MAX),
        }
    }

    fn holds(self, n: i64) -> bool {
        self.min <= n && n <= self.max
    }
}

/// Which rule gave the new parameter's value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Matched {
    /// The rule at this index of [`Orchestration::rules`].
    Rule(usize),
    Empty,
    Default,
}

/// A present value that no rule matched, with no `default`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NoRule;

impl Orchestration {
    /// The compiled form; `check` has refused what [`validate`] reports.
    pub fn build(o: &ast::Orchestration) -> Orchestration {
        let mut out = Orchestration {
            from: (o.from_location.value, o.from.value.clone()),
            into: (o.into_location.value, o.into.value.clone()),
            rules: Vec::new(),
            empty: None,
            default: None,
        };
        for r in &o.rules {
            let kind = match &r.value.kind {
                OrchestrationKind::List { values, to } => Kind::List {
                    values: values.iter().map(|v| v.value.clone()).collect(),
                    to: to.value.clone(),
                },
                OrchestrationKind::Range { range, to } => Kind::Range {
                    range: Bounds::of(&range.value),
                    to: to.value.clone(),
                },
                OrchestrationKind::Hash => Kind::Hash,
                OrchestrationKind::HashRange { range, to } => Kind::HashRange {
                    range: Bounds::of(&range.value),
                    to: to.value.clone(),
                },
                OrchestrationKind::Head(n) => Kind::Head(n.value as usize),
                OrchestrationKind::Tail(n) => Kind::Tail(n.value as usize),
                OrchestrationKind::Empty(v) => {
                    out.empty.get_or_insert_with(|| v.value.clone());
                    continue;
                }
                OrchestrationKind::Default(v) => {
                    out.default.get_or_insert_with(|| v.value.clone());
                    continue;
                }
            };
            out.rules.push(Rule {
                pre: r.value.pre,
                kind,
                text: crate::policy::fmt::orchestration_rule(&r.value),
            });
        }
        out
    }

    /// The new parameter's value for the frontend parameter's `value` (`None`: absent), and
    /// the rule that gave it; `Ok(None)`: absent or empty with no `empty` rule, omitted.
    pub fn run(&self, value: Option<&str>) -> Result<Option<(String, Matched)>, NoRule> {
        let Some(value) = value.filter(|v| !v.is_empty()) else {
            return Ok(self.empty.clone().map(|v| (v, Matched::Empty)));
        };
        let mut seen = value.to_string();
        for (i, rule) in self.rules.iter().enumerate() {
            let Some(out) = rule.kind.apply(&seen) else {
                continue;
            };
            if !rule.pre {
                return Ok(Some((out, Matched::Rule(i))));
            }
            seen = out;
        }
        match &self.default {
            Some(v) => Ok(Some((v.clone(), Matched::Default))),
            None => Err(NoRule),
        }
    }

    /// How the rule that matched reads, for traces.
    pub fn describe(&self, m: Matched) -> &str {
        match m {
            Matched::Rule(i) => &self.rules[i].text,
            Matched::Empty => "empty",
            Matched::Default => "default",
        }
    }
}

impl Kind {
    /// The rule's output for `v`, or `None` when it does not match.
    fn apply(&self, v: &str) -> Option<String> {
        match self {
            Kind::List { values, to } => values.iter().any(|x| x == v).then(|| to.clone()),
            Kind::Range { range, to } => {
                let n: i64 = v.parse().ok()?;
                range.holds(n).then(|| to.clone())
            }
            Kind::Hash => Some(format!("{:016x}", hash(v))),
            Kind::HashRange { range, to } => {
                let bucket = (hash(v) % HASH_BUCKETS) as i64;
                range.holds(bucket).then(|| to.clone())
            }
            Kind::Head(n) => Some(v.chars().take(*n).collect()),
            Kind::Tail(n) => {
                let skip = v.chars().count().saturating_sub(*n);
                Some(v.chars().skip(skip).collect())
            }
        }
    }
}

/// SHA-256 of the value, its first eight bytes as a big-endian integer.
pub fn hash(v: &str) -> u64 {
    let digest = Sha256::digest(v.as_bytes());
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest[..8]);
    u64::from_be_bytes(first)
}

/// What `check` says of one `orchestrate` block: `vars` are the route's path variables.
pub fn validate(o: &ast::Orchestration, span: ast::Span, vars: &[String]) -> Vec<Diagnostic> {
    let mut out = Vec::new();
    if o.from_location.value == ParamLocation::Path && !vars.contains(&o.from.value) {
        out.push(
            Diagnostic::error(
                diag::UNDECLARED_PATH_VAR,
                o.from.span,
                format!(
                    "`{{{}}}` is not a variable of the route's path",
                    o.from.value
                ),
            )
            .label("orchestrated here")
            .help("orchestrate a variable of the route's path, a query parameter or a header"),
        );
    }
    let mut seen_empty: Option<ast::Span> = None;
    let mut seen_default: Option<ast::Span> = None;
    // the span of a rule that matches every value, with nothing `pre` about it
    let mut total: Option<ast::Span> = None;
    for r in &o.rules {
        rule(&mut out, r, &mut seen_empty, &mut seen_default, &mut total);
    }
    let gives = |r: &&Spanned<ast::OrchestrationRule>| {
        !r.value.pre
            && !matches!(
                r.value.kind,
                OrchestrationKind::Empty(_) | OrchestrationKind::Default(_)
            )
    };
    let last_giving = o.rules.iter().rposition(|r| gives(&r));
    let last_pre = o.rules.iter().rposition(|r| r.value.pre);
    match (last_giving, last_pre) {
        (None, _) if seen_default.is_none() => out.push(
            Diagnostic::error(
                diag::ORCHESTRATION_INCOMPLETE,
                span,
                "this orchestration gives no value",
            )
            .label("no rule here gives the new parameter")
            .help("add a rule without `pre` (`list`, `range`, `hash`, …) or a `default`"),
        ),
        (giving, Some(pre)) if giving.is_none_or(|g| g < pre) => out.push(
            Diagnostic::error(
                diag::ORCHESTRATION_INCOMPLETE,
                o.rules[pre].span,
                "a pre-processing rule with no rule after it",
            )
            .label("its value feeds nothing")
            .help("add the rule that maps its value after it, or remove `pre`"),
        ),
        _ => {}
    }
    out
}

/// One rule's diagnostics, in order: repeats, rules after `default`, rules that never apply.
fn rule(
    out: &mut Vec<Diagnostic>,
    r: &Spanned<ast::OrchestrationRule>,
    seen_empty: &mut Option<ast::Span>,
    seen_default: &mut Option<ast::Span>,
    total: &mut Option<ast::Span>,
) {
    let repeat = |first: ast::Span, what: &str| {
        Diagnostic::error(
            diag::REPEATED_STATEMENT,
            r.span,
            format!("a second `{what}`"),
        )
        .label("repeated")
        .related(first, "the first")
        .help(format!("an orchestration has one `{what}`; remove one"))
    };
    match &r.value.kind {
        OrchestrationKind::Empty(_) => match *seen_empty {
            Some(first) => out.push(repeat(first, "empty")),
            None => *seen_empty = Some(r.span),
        },
        OrchestrationKind::Default(_) => match *seen_default {
            Some(first) => out.push(repeat(first, "default")),
            None => *seen_default = Some(r.span),
        },
        kind => {
            if let Some(d) = *seen_default {
                out.push(
                    Diagnostic::error(diag::CONFLICT, r.span, "a rule after `default`")
                        .label("written after the default")
                        .related(d, "the default")
                        .help("`default` applies when no rule matched: write it last"),
                );
            } else if let Some(t) = *total {
                out.push(
                    Diagnostic::warning(
                        diag::ORCHESTRATION_RULE_NEVER_APPLIES,
                        r.span,
                        "this rule never applies",
                    )
                    .label("never reached")
                    .related(t, "this rule matches every value first")
                    .help("move the rule before it, or remove it"),
                );
            } else if let OrchestrationKind::HashRange { range, .. } = kind {
                let b = Bounds::of(&range.value);
                if b.max < 0 || b.min > (HASH_BUCKETS - 1) as i64 {
                    out.push(
                        Diagnostic::warning(
                            diag::ORCHESTRATION_RULE_NEVER_APPLIES,
                            range.span,
                            "this hash range holds no bucket",
                        )
                        .label("hash buckets are 0..99")
                        .help("write a range within 0..99"),
                    );
                }
            }
            let is_total = matches!(
                kind,
                OrchestrationKind::Hash | OrchestrationKind::Head(_) | OrchestrationKind::Tail(_)
            );
            if is_total && !r.value.pre && total.is_none() {
                *total = Some(r.span);
            }
        }
    }
}

/// The names a forward's orchestrations write must not collide with each other or with a
/// backend parameter: the vendor refuses a mapped parameter that clashes with an existing one.
/// Only clashes that involve an item at index `from` or later are reported (a policy's forward
/// checks its own items against the route's, whose clashes the route reported).
pub fn clashes(items: &[&ast::Upstream], from: usize) -> Vec<Diagnostic> {
    fn writes(u: &ast::Upstream) -> Option<(UpstreamLocation, &Spanned<String>)> {
        match u {
            ast::Upstream::Param(p) => Some((p.location.value, &p.name)),
            ast::Upstream::Orchestrate(o) => Some((o.into_location.value, &o.into)),
            _ => None,
        }
    }
    let mut out = Vec::new();
    for (i, item) in items.iter().enumerate() {
        let ast::Upstream::Orchestrate(o) = item else {
            continue;
        };
        let (location, name) = (o.into_location.value, &o.into);
        let clash = items.iter().enumerate().find_map(|(j, other)| {
            let (l, n) = writes(other)?;
            let orchestrated_later = matches!(other, ast::Upstream::Orchestrate(_)) && j >= i;
            let same = l == location
                && match location {
                    UpstreamLocation::Header => n.value.eq_ignore_ascii_case(&name.value),
                    _ => n.value == name.value,
                };
            (same && !orchestrated_later && i.max(j) >= from).then_some(n)
        });
        if let Some(first) = clash {
            out.push(
                Diagnostic::error(
                    diag::CONFLICT,
                    name.span,
                    format!(
                        "{} {:?} is already a backend parameter",
                        location.name(),
                        name.value
                    ),
                )
                .label("orchestrated into here")
                .related(first.span, "written here too")
                .help("orchestrate into a new name: an orchestration adds a parameter"),
            );
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn orchestration(text: &str) -> Orchestration {
        let policy = format!(
            "service s {{ dialect huawei\n hosts \"*\"\n backend b {{ targets \"http://127.0.0.1:1\" }}\n route GET \"/\" {{\n orchestrate query \"uid\" into header \"X-Shard\" {{\n{text}\n}}\n forward b\n }} }}"
        );
        let loaded =
            crate::policy::parse_texts(vec![("t.policy".into(), policy, Default::default())]);
        let o = loaded.files[0]
            .1
            .items
            .iter()
            .find_map(|i| match &i.value {
                ast::TopItem::Service(s) => Some(s),
                _ => None,
            })
            .into_iter()
            .flat_map(|s| &s.items)
            .find_map(|i| match &i.value {
                ast::ServiceItem::Route(r) => Some(r),
                _ => None,
            })
            .into_iter()
            .flat_map(|r| &r.items)
            .find_map(|i| match &i.value {
                ast::RouteItem::Upstream(ast::Upstream::Orchestrate(o)) => Some(o),
                _ => None,
            })
            .expect("an orchestrate block");
        Orchestration::build(o)
    }

    fn run(o: &Orchestration, v: Option<&str>) -> Result<Option<String>, NoRule> {
        o.run(v).map(|r| r.map(|(v, _)| v))
    }

    #[test]
    fn the_first_matching_rule_gives_the_value_and_default_catches_the_rest() {
        let o = orchestration(
            "list \"a\" \"b\" to \"ab\"\n range 1..10 to \"small\"\n range 5..100 to \"big\"\n default \"other\"",
        );
        assert_eq!(run(&o, Some("b")), Ok(Some("ab".into())));
        assert_eq!(run(&o, Some("7")), Ok(Some("small".into())));
        assert_eq!(run(&o, Some("11")), Ok(Some("big".into())));
        assert_eq!(run(&o, Some("1.5")), Ok(Some("other".into())));
        assert_eq!(o.run(Some("x")).unwrap().unwrap().1, Matched::Default);
    }

    #[test]
    fn range_bounds_are_inclusive_and_only_integers_match() {
        let o = orchestration("range 1..10 to \"in\"");
        assert_eq!(run(&o, Some("1")), Ok(Some("in".into())));
        assert_eq!(run(&o, Some("10")), Ok(Some("in".into())));
        assert_eq!(run(&o, Some("0")), Err(NoRule));
        assert_eq!(run(&o, Some("1e1")), Err(NoRule));
        assert_eq!(run(&o, Some(" 5")), Err(NoRule));
    }

    #[test]
    fn a_pre_rule_feeds_the_rules_after_it() {
        let o = orchestration(
            "pre head 4\n list \"0000\" to \"first\"\n pre tail 2\n list \"99\" to \"last\"",
        );
        assert_eq!(run(&o, Some("00001234")), Ok(Some("first".into())));
        // head 4 of "12349999" is "1234", its tail 2 is "34": no rule matches
        assert_eq!(run(&o, Some("12349999")), Err(NoRule));
        assert_eq!(run(&o, Some("0099")), Ok(Some("last".into())));
    }

    #[test]
    fn head_and_tail_count_characters_and_keep_a_shorter_value_whole() {
        let o = orchestration("head 3");
        assert_eq!(run(&o, Some("zürich")), Ok(Some("zür".into())));
        assert_eq!(run(&o, Some("ab")), Ok(Some("ab".into())));
        let o = orchestration("tail 2");
        assert_eq!(run(&o, Some("zürich")), Ok(Some("ch".into())));
        assert_eq!(run(&o, Some("é")), Ok(Some("é".into())));
    }

    #[test]
    fn an_absent_or_empty_value_takes_the_empty_rule_or_is_omitted() {
        let o = orchestration("list \"a\" to \"x\"\n empty to \"none\"");
        assert_eq!(run(&o, None), Ok(Some("none".into())));
        assert_eq!(run(&o, Some("")), Ok(Some("none".into())));
        let o = orchestration("list \"a\" to \"x\"");
        assert_eq!(run(&o, None), Ok(None));
    }

    /// The hash is SHA-256's first eight bytes: fixed across runs and machines.
    #[test]
    fn the_hash_is_sha256_read_as_an_integer() {
        // SHA-256("abc") = ba7816bf8f01cfea414140de5dae2223…
        assert_eq!(hash("abc"), 0xba78_16bf_8f01_cfea);
        let o = orchestration("hash");
        assert_eq!(run(&o, Some("abc")), Ok(Some("ba7816bf8f01cfea".into())));
        // 0xba7816bf8f01cfea = 13436514500253700074 (Python: `0xba7816bf8f01cfea % 100`)
        assert_eq!(hash("abc") % 100, 74);
        let o = orchestration("hash range 0..73 to \"low\"\n hash range 74..74 to \"hit\"");
        assert_eq!(run(&o, Some("abc")), Ok(Some("hit".into())));
    }

    #[test]
    fn hash_ranges_split_values_evenly() {
        let o = orchestration("hash range 0..49 to \"a\"\n hash range 50..99 to \"b\"");
        let a = (0..10_000)
            .filter(|i| run(&o, Some(&format!("user-{i}"))) == Ok(Some("a".into())))
            .count();
        assert!(
            (4_800..5_200).contains(&a),
            "{a} of 10000 in the first half"
        );
    }
}
