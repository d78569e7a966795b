//! The formatter: canonical output (snapshot), idempotence, meaning preserved (round trips,
//! including a property test over generated ASTs) and comments kept.

use ipnet::{IpNet, Ipv4Net, Ipv6Net};
use proptest::prelude::*;
use rulegate::policy::ast::*;
use rulegate::policy::fmt::{format_ast, format_file};
use rulegate::policy::parse::parse_file;
use rulegate::vocab::{Dialect, Method, ParamLocation, Protocol};
use serde_json::Value;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::path::{Path, PathBuf};

const COVERING: &str = include_str!("policies/covering.policy");

/// The AST of a text that must parse without errors.
fn parse_ok(text: &str) -> File {
    let parsed = parse_file(0, text);
    assert!(
        parsed.diagnostics.is_empty(),
        "unexpected diagnostics: {:#?}\n--- text ---\n{text}",
        parsed.diagnostics
    );
    parsed.file.expect("a file without errors has an AST")
}

fn format_ok(text: &str) -> String {
    match format_file(text) {
        Ok(s) => s,
        Err(d) => panic!("format_file failed: {d:#?}\n--- text ---\n{text}"),
    }
}

/// Every policy this crate ships as an example or test input.
fn example_files() -> Vec<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let dirs: Vec<PathBuf> = ["tests/policies", "policies", "examples", "fuzz/seeds"]
        .iter()
        .map(|d| root.join(d))
        .filter(|d| d.is_dir())
        .collect();
    let mut files = rulegate::policy::policy_files(&dirs).unwrap();
    // The fuzz seeds have no extension requirement; take every file there.
    let seeds = root.join("fuzz/seeds");
    if let Ok(entries) = std::fs::read_dir(&seeds) {
        for e in entries.flatten() {
            if !files.contains(&e.path()) {
                files.push(e.path());
            }
        }
    }
    files.sort();
    assert!(files.len() >= 2, "examples not found: {files:?}");
    files
}

/// Issue 13's statements (backend parameters, policy backends, orchestration, signing).
const BACKEND_REQUESTS: &str = include_str!("syntax/backend-requests.policy");

#[test]
fn backend_request_statements_format_canonically() {
    insta::assert_snapshot!("backend_requests", format_ok(BACKEND_REQUESTS));
}

#[test]
fn backend_request_statements_round_trip() {
    let formatted = format_ok(BACKEND_REQUESTS);
    assert_eq!(parse_ok(&formatted), parse_ok(BACKEND_REQUESTS));
    assert_eq!(format_ok(&formatted), formatted);
    assert_eq!(
        parse_ok(&format_ast(&parse_ok(BACKEND_REQUESTS))),
        parse_ok(BACKEND_REQUESTS)
    );
}

#[test]
fn covering_policy_snapshot() {
    insta::assert_snapshot!("covering", format_ok(COVERING));
}

#[test]
fn covering_policy_round_trips() {
    let formatted = format_ok(COVERING);
    assert_eq!(parse_ok(&formatted), parse_ok(COVERING));
    // Printing the AST alone means the same too.
    assert_eq!(
        parse_ok(&format_ast(&parse_ok(COVERING))),
        parse_ok(COVERING)
    );
}

#[test]
fn formatting_is_idempotent_on_every_example() {
    for path in example_files() {
        let text = std::fs::read_to_string(&path).unwrap();
        let once = format_ok(&text);
        let twice = format_ok(&once);
        assert_eq!(once, twice, "not idempotent: {}", path.display());
        assert_eq!(
            parse_ok(&once),
            parse_ok(&text),
            "meaning changed: {}",
            path.display()
        );
        assert!(once.is_empty() || (once.ends_with('\n') && !once.ends_with("\n\n")));
    }
}

/// Comment texts in source order: a string-aware scan, independent of the formatter's.
fn comments(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    for line in text.lines() {
        let mut in_string = false;
        let mut escaped = false;
        for (i, c) in line.char_indices() {
            match (in_string, escaped, c) {
                (true, true, _) => escaped = false,
                (true, false, '\\') => escaped = true,
                (true, false, '"') => in_string = false,
                (false, _, '"') => in_string = true,
                (false, _, '#') => {
                    out.push(line[i..].trim_end().to_string());
                    break;
                }
                _ => {}
            }
        }
    }
    out
}

#[test]
fn comments_survive_in_order() {
    for text in [COVERING.to_string()].into_iter().chain(
        example_files()
            .iter()
            .map(|p| std::fs::read_to_string(p).unwrap()),
    ) {
        let formatted = format_ok(&text);
        let before = comments(&text);
        assert_eq!(comments(&formatted), before);
        // And literally, in order.
        let mut at = 0;
        for c in &before {
            let found = formatted[at..]
                .find(c.as_str())
                .unwrap_or_else(|| panic!("comment {c:?} lost or out of order"));
            at += found + c.len();
        }
    }
    assert!(comments(COVERING).len() >= 12);
}

#[test]
fn comment_positions() {
    let text = "# head\n\n\nservice a {  # open\n    dialect huawei   # trailing\n\n\n    # own line\n    hosts \"x#y\"\n    # before close\n}  # after\n# tail\n";
    let expected = "# head\n\nservice a {  # open\n    dialect huawei  # trailing\n\n    # own line\n    hosts \"x#y\"\n    # before close\n}  # after\n# tail\n";
    assert_eq!(format_ok(text), expected);
}

#[test]
fn inline_block_comments() {
    let text = "service a { route GET \"/\" { mock 200 }  # after route\nlimits { body 1MB # body\n uri 2KB }\nbackend b { # only a comment\n}\n}\n";
    let expected = "service a {\n    route GET \"/\" {\n        mock 200\n    }  # after route\n    limits {\n        body 1MB  # body\n        uri 2KB\n    }\n    backend b {  # only a comment\n    }\n}\n";
    assert_eq!(format_ok(text), expected);
}

#[test]
fn blank_lines_and_empty_files() {
    assert_eq!(format_ok(""), "");
    assert_eq!(format_ok("\n\n \n"), "");
    assert_eq!(format_ok("# only\n\n\n"), "# only\n");
    assert_eq!(
        format_ok("\n\nservice a {\n\n\n dialect huawei\n\n\n}\n\n\n\nservice b {}"),
        "service a {\n    dialect huawei\n}\n\nservice b {}\n"
    );
}

#[test]
fn broken_files_are_not_formatted() {
    let broken = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/policies/shop.policy"),
    )
    .unwrap()
    .replace("dialect huawei", "dialect huawie");
    let diags = format_file(&broken).unwrap_err();
    assert!(!diags.is_empty());
    assert!(format_file("service a {").is_err());
    assert!(format_file("service a { routee GET \"/\" {} }").is_err());
}

#[test]
fn mock_json_prints_compactly() {
    let text = "service a { route GET \"/\" { mock 200 json { \"status\" :\"ok\",\n \"n\": [1, 2.5,null], \"e\": {}, \"s\": \"a\\\"b\\n#\" } } }";
    let out = format_ok(text);
    assert!(
        out.contains(
            r#"mock 200 json {"status": "ok", "n": [1, 2.5, null], "e": {}, "s": "a\"b\n#"}"#
        ),
        "{out}"
    );
}

// ---------------------------------------------------------------------------------------------
// Generated ASTs: print, parse back, compare.

fn sp<T>(value: T) -> Spanned<T> {
    Spanned::new(value, Span::default())
}

/// Words that end name lists (grammar `list_end`) or mean something else where a name is
/// expected (`auth none`).
const RESERVED: &[&str] = &[
    "from", "except", "claim", "apps", "per", "burst", "on", "default", "none",
];

fn ident() -> impl Strategy<Value = Ident> {
    "[a-z][a-z0-9_]{0,7}"
        .prop_filter("reserved word", |s| !RESERVED.contains(&s.as_str()))
        .prop_map(sp)
}

fn idents(max: usize) -> impl Strategy<Value = Vec<Ident>> {
    prop::collection::vec(ident(), 1..=max)
}

/// Free text, heavy on what needs escaping.
fn text() -> impl Strategy<Value = String> {
    prop::collection::vec(
        prop_oneof![
            6 => prop::char::range('a', 'z'),
            1 => Just('"'),
            1 => Just('\\'),
            1 => Just('\n'),
            1 => Just('\r'),
            1 => Just('\t'),
            1 => Just('#'),
            1 => Just('{'),
            1 => Just('}'),
            1 => Just(' '),
            1 => Just('/'),
            1 => Just('é'),
            1 => Just('中'),
            1 => Just('😀'),
            1 => Just('\u{2028}'),
            1 => Just('\u{1}'),
            1 => Just('\u{7f}'),
            2 => any::<char>(),
        ],
        0..10,
    )
    .prop_map(|cs| cs.into_iter().collect())
}

fn texts(max: usize) -> impl Strategy<Value = Vec<Spanned<String>>> {
    prop::collection::vec(text().prop_map(sp), 1..=max)
}

/// An HTTP token (header names must be).
fn token() -> impl Strategy<Value = String> {
    "[A-Za-z0-9!#$%&'*+.^_`|~-]{1,12}"
}

fn tokens(max: usize) -> impl Strategy<Value = Vec<Spanned<String>>> {
    prop::collection::vec(token().prop_map(sp), 1..=max)
}

fn url() -> impl Strategy<Value = Spanned<String>> {
    "https?://[a-z]{1,8}(\\.[a-z]{2,3})?(:[1-9][0-9]{0,3})?(/[a-z0-9]{0,5})?".prop_map(sp)
}

fn template() -> impl Strategy<Value = PathTemplate> {
    // (is a variable, text)
    prop::collection::vec(
        prop_oneof![
            3 => "[a-zA-Z0-9._~%é\"\\\\ -]{1,6}".prop_map(|l| (false, l)),
            1 => "[a-z][a-z0-9_-]{0,4}".prop_map(|v| (true, v)),
        ],
        0..4,
    )
    .prop_flat_map(|segs| (Just(segs), any::<bool>()))
    .prop_map(|(segs, rest)| {
        // Variables must be unique; a `{rest+}` may only end the path.
        let n = segs.len();
        let named: Vec<(bool, String)> = segs
            .into_iter()
            .enumerate()
            .map(|(i, (var, text))| match var {
                true => (true, format!("{text}{i}")),
                false => (false, text),
            })
            .collect();
        PathTemplate::new(named.iter().enumerate().map(|(i, (var, text))| match var {
            true if rest && i + 1 == n => Segment::Rest(text),
            true => Segment::Var(text),
            false => Segment::Literal(text),
        }))
    })
}

fn net() -> impl Strategy<Value = Spanned<IpNet>> {
    prop_oneof![
        (any::<u32>(), 0u8..=32)
            .prop_map(|(a, p)| IpNet::V4(Ipv4Net::new(Ipv4Addr::from(a), p).unwrap().trunc())),
        (any::<u128>(), 0u8..=128)
            .prop_map(|(a, p)| IpNet::V6(Ipv6Net::new(Ipv6Addr::from(a), p).unwrap().trunc())),
    ]
    .prop_map(sp)
}

fn nets() -> impl Strategy<Value = Vec<Spanned<IpNet>>> {
    prop::collection::vec(net(), 1..=3)
}

fn duration() -> impl Strategy<Value = Spanned<Duration>> {
    (
        0u64..1_000_000,
        prop::sample::select(DurationUnit::ALL.to_vec()),
    )
        .prop_map(|(n, unit)| {
            sp(Duration {
                millis: n * unit.millis(),
                unit,
            })
        })
}

fn size() -> impl Strategy<Value = Spanned<Size>> {
    (
        0u64..1_000_000,
        prop::sample::select(SizeUnit::ALL.to_vec()),
    )
        .prop_map(|(n, unit)| {
            sp(Size {
                bytes: n * unit.bytes(),
                unit,
            })
        })
}

fn limits() -> impl Strategy<Value = Vec<LimitItem>> {
    prop::collection::vec(
        (prop::sample::select(LimitKind::ALL.to_vec()), size()).prop_map(|(kind, size)| {
            LimitItem {
                kind: sp(kind),
                size,
            }
        }),
        0..4,
    )
}

fn methods() -> impl Strategy<Value = Vec<Spanned<Method>>> {
    prop::collection::vec(
        prop::sample::select(Method::ALL.to_vec()).prop_map(sp),
        1..=3,
    )
}

fn protocols() -> impl Strategy<Value = Vec<Spanned<Protocol>>> {
    prop::collection::vec(
        prop::sample::select(Protocol::ALL.to_vec()).prop_map(sp),
        1..=2,
    )
}

fn dialect() -> impl Strategy<Value = Spanned<Dialect>> {
    prop::sample::select(Dialect::ALL.to_vec()).prop_map(sp)
}

fn secret() -> impl Strategy<Value = SecretRef> {
    (any::<bool>(), text()).prop_map(|(env, name)| SecretRef {
        source: if env {
            SecretSource::Env
        } else {
            SecretSource::File
        },
        name: sp(name),
    })
}

fn quota() -> impl Strategy<Value = Quota> {
    let zone = prop::sample::select(vec!["Asia/Shanghai", "UTC", "+08:00", "America/New_York"]);
    let store = prop::sample::select(vec![StoreErrorPolicy::Allow, StoreErrorPolicy::Deny]);
    (
        1u64..=u64::MAX >> 1,
        any::<bool>(),
        prop::option::of(zone),
        prop::option::of(store),
    )
        .prop_map(|(limit, day, zone, store)| Quota {
            limit: sp(limit),
            period: sp(if day {
                QuotaPeriod::Day
            } else {
                QuotaPeriod::Month
            }),
            zone: zone.map(|z| sp(z.to_string())),
            on_store_error: store.map(sp),
        })
}

fn rate_key() -> impl Strategy<Value = RateKey> {
    prop_oneof![
        Just(RateKey::App),
        Just(RateKey::Ip),
        Just(RateKey::Route),
        token().prop_map(RateKey::Header),
        text().prop_map(RateKey::Query),
    ]
}

fn rate() -> impl Strategy<Value = Rate> {
    let unit = prop::sample::select(vec![
        RatePeriod::Second,
        RatePeriod::Minute,
        RatePeriod::Hour,
        RatePeriod::Day,
    ]);
    let period = (1u32..=30, unit).prop_map(|(count, unit)| Window { count, unit });
    let key = rate_key();
    let store = prop::sample::select(vec![StoreErrorPolicy::Allow, StoreErrorPolicy::Deny]);
    (
        1u64..=u32::MAX as u64,
        period,
        prop::option::of(key),
        prop::option::of(0u64..=u32::MAX as u64),
        prop::option::of(store),
    )
        .prop_map(|(limit, period, key, burst, store)| Rate {
            limit: sp(limit),
            period: sp(period),
            key: key.map(sp),
            burst: burst.map(sp),
            on_store_error: store.map(sp),
        })
}

fn json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(Value::from),
        text().prop_map(Value::from),
    ];
    leaf.prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::vec((text(), inner), 0..4)
                .prop_map(|kv| Value::Object(kv.into_iter().collect())),
        ]
    })
}

fn range<T: PartialOrd + Copy + std::fmt::Debug>(
    bound: impl Strategy<Value = T> + Clone,
) -> impl Strategy<Value = Option<Range<T>>> {
    prop::option::of(
        (prop::option::of(bound.clone()), prop::option::of(bound)).prop_map(|(a, b)| {
            match (a, b) {
                (Some(a), Some(b)) if a > b => Range {
                    min: Some(b),
                    max: Some(a),
                },
                (min, max) => Range { min, max },
            }
        }),
    )
}

fn param_type() -> impl Strategy<Value = ParamType> {
    let finite = prop::num::f64::NORMAL | prop::num::f64::SUBNORMAL | prop::num::f64::ZERO;
    prop_oneof![
        range(any::<u64>()).prop_map(|len| ParamType::String { len }),
        range(any::<i64>()).prop_map(|range| ParamType::Int { range }),
        range(finite).prop_map(|range| ParamType::Decimal { range }),
        Just(ParamType::Bool),
        texts(3).prop_map(ParamType::Enum),
    ]
}

fn param() -> impl Strategy<Value = Param> {
    (
        any::<bool>(),
        prop::sample::select(ParamLocation::ALL.to_vec()),
        text(),
        token(),
        prop::option::of(param_type()),
    )
        .prop_map(|(required, location, name, header, ty)| Param {
            // Path parameters are always required; header names are HTTP tokens.
            required: required || location == ParamLocation::Path,
            location: sp(location),
            name: sp(if location == ParamLocation::Header {
                header
            } else {
                name
            }),
            ty: ty.map(sp),
        })
}

fn cors() -> impl Strategy<Value = Vec<Spanned<CorsClause>>> {
    prop::collection::vec(
        prop_oneof![
            texts(2).prop_map(CorsClause::Origins),
            methods().prop_map(CorsClause::Methods),
            tokens(2).prop_map(CorsClause::Headers),
            tokens(2).prop_map(CorsClause::Expose),
            Just(CorsClause::Credentials),
            duration().prop_map(CorsClause::MaxAge),
        ]
        .prop_map(sp),
        1..=4,
    )
}

fn route_auth() -> impl Strategy<Value = RouteAuth> {
    let claim = (text(), texts(2)).prop_map(|(name, values)| Claim {
        name: sp(name),
        values,
    });
    prop_oneof![
        Just(RouteAuth::None),
        (
            ident(),
            prop::option::of(idents(3)),
            prop::collection::vec(claim, 0..3)
        )
            .prop_map(|(provider, apps, claims)| RouteAuth::Provider {
                provider,
                apps,
                claims
            }),
    ]
}

fn route_item() -> impl Strategy<Value = RouteItem> {
    prop_oneof![
        1 => idents(3).prop_map(RouteItem::Stages),
        1 => protocols().prop_map(RouteItem::Protocols),
        1 => route_auth().prop_map(RouteItem::Auth),
        3 => param().prop_map(RouteItem::Param),
        1 => cors().prop_map(RouteItem::Cors),
        1 => nets().prop_map(RouteItem::AllowIps),
        1 => nets().prop_map(RouteItem::DenyIps),
        1 => rate().prop_map(RouteItem::Rate),
        1 => ident().prop_map(RouteItem::Throttle),
        1 => Just(RouteItem::WebSocket),
        1 => limits().prop_map(RouteItem::Limits),
        1 => (token(), text()).prop_map(|(n, v)| RouteItem::ResponseHeader {
            name: sp(n),
            value: sp(v)
        }),
        2 => (
            100u16..=599,
            prop::option::of(prop_oneof![
                json().prop_map(MockBody::Json),
                text().prop_map(|t| MockBody::Text(sp(t))),
            ])
        )
            .prop_map(|(status, body)| RouteItem::Mock(Mock {
                status: sp(status),
                body
            })),
        1 => (ident(), prop::option::of(template())).prop_map(|(backend, path)| {
            RouteItem::Forward(Forward {
                backend,
                path: path.map(sp),
            })
        }),
        1 => ident().prop_map(RouteItem::IssueTokens),
        3 => upstream().prop_map(RouteItem::Upstream),
    ]
}

// --- the backend request (issue 13)

/// A backend parameter's name at `location`: what the parser accepts there.
fn upstream_name(location: UpstreamLocation) -> impl Strategy<Value = Spanned<String>> {
    let name = match location {
        UpstreamLocation::Header => token().boxed(),
        _ => text().prop_filter("empty", |t| !t.is_empty()).boxed(),
    };
    name.prop_filter("reserved", move |n| {
        rulegate::policy::parse::reserved_backend_name(location, n).is_none()
    })
    .prop_map(sp)
}

fn located_name(
    locations: Vec<UpstreamLocation>,
) -> impl Strategy<Value = (Spanned<UpstreamLocation>, Spanned<String>)> {
    prop::sample::select(locations).prop_flat_map(|l| (Just(sp(l)), upstream_name(l)))
}

/// A frontend parameter: header names are tokens, other names any text.
fn frontend_param() -> impl Strategy<Value = (Spanned<ParamLocation>, Spanned<String>)> {
    prop::sample::select(ParamLocation::ALL.to_vec()).prop_flat_map(|l| {
        let name = match l {
            ParamLocation::Header => token().boxed(),
            _ => text().boxed(),
        };
        (Just(sp(l)), name.prop_map(sp))
    })
}

fn system_value() -> impl Strategy<Value = SystemValue> {
    prop_oneof![
        prop::sample::select(SystemValue::PLAIN.to_vec()).prop_map(|(_, v)| v),
        text().prop_map(|t| SystemValue::Claim(sp(t))),
        text().prop_map(|t| SystemValue::Authorizer(sp(t))),
    ]
}

fn param_value() -> impl Strategy<Value = ParamValue> {
    prop_oneof![
        frontend_param().prop_map(|(location, name)| ParamValue::Request { location, name }),
        text().prop_map(|t| ParamValue::Constant(sp(t))),
        system_value().prop_map(ParamValue::System),
    ]
}

/// The one-line statements, valid in a route and in a policy.
fn upstream_line() -> impl Strategy<Value = Upstream> {
    use UpstreamLocation as L;
    prop_oneof![
        3 => (located_name(L::ALL.to_vec()), param_value()).prop_map(|((location, name), v)| {
            Upstream::Param(BackendParam { location, name, value: sp(v) })
        }),
        1 => located_name(vec![L::Query, L::Header])
            .prop_map(|(location, name)| Upstream::Remove { location, name }),
        1 => Just(Upstream::ParametersOnly),
        1 => (prop::sample::select(HeaderEdit::ALL.to_vec()), token(), text()).prop_map(
            |(edit, name, value)| Upstream::ResponseHeader(ResponseHeaderEdit {
                edit: sp(edit),
                name: sp(name),
                value: (edit != HeaderEdit::Remove).then(|| sp(value)),
            })
        ),
    ]
}

fn condition() -> impl Strategy<Value = Condition> {
    let test = prop_oneof![
        text().prop_map(|t| ValueTest::Is(sp(t))),
        texts(3).prop_map(ValueTest::In),
        text().prop_map(|t| ValueTest::Matches(sp(t))),
    ];
    let subject = prop_oneof![
        frontend_param().prop_map(|(l, n)| (sp(Subject::Param(l.value)), n)),
        text().prop_map(|n| (sp(Subject::Claim), sp(n))),
        text().prop_map(|n| (sp(Subject::Authorizer), sp(n))),
    ];
    prop_oneof![
        nets().prop_map(Condition::Source),
        (subject, test).prop_map(|((subject, name), test)| Condition::Value {
            subject,
            name,
            test: sp(test)
        }),
    ]
}

fn policy_backend() -> impl Strategy<Value = PolicyBackend> {
    let item = prop_oneof![
        3 => condition().prop_map(PolicyItem::When),
        2 => upstream_line().prop_map(PolicyItem::Upstream),
        1 => (ident(), prop::option::of(template())).prop_map(|(backend, path)| {
            PolicyItem::Forward(Forward { backend, path: path.map(sp) })
        }),
        1 => (100u16..=599, prop::option::of(text()))
            .prop_map(|(status, body)| PolicyItem::Mock(Mock {
                status: sp(status),
                body: body.map(|t| MockBody::Text(sp(t))),
            })),
    ];
    (
        ident(),
        any::<bool>(),
        prop::collection::vec(item.prop_map(sp), 0..5),
    )
        .prop_map(|(name, any, items)| PolicyBackend { name, any, items })
}

fn orchestration() -> impl Strategy<Value = Orchestration> {
    let bucket = || {
        range(any::<i64>()).prop_map(|r| {
            sp(r.unwrap_or(Range {
                min: None,
                max: None,
            }))
        })
    };
    let kind = prop_oneof![
        (texts(3), text()).prop_map(|(values, to)| OrchestrationKind::List { values, to: sp(to) }),
        (bucket(), text()).prop_map(|(range, to)| OrchestrationKind::Range { range, to: sp(to) }),
        Just(OrchestrationKind::Hash),
        (bucket(), text())
            .prop_map(|(range, to)| OrchestrationKind::HashRange { range, to: sp(to) }),
        (1u32..=4096).prop_map(|n| OrchestrationKind::Head(sp(n))),
        (1u32..=4096).prop_map(|n| OrchestrationKind::Tail(sp(n))),
        text().prop_map(|t| OrchestrationKind::Empty(sp(t))),
        text().prop_map(|t| OrchestrationKind::Default(sp(t))),
    ];
    let rule = (any::<bool>(), kind).prop_map(|(pre, kind)| OrchestrationRule {
        pre: pre
            && !matches!(
                kind,
                OrchestrationKind::Empty(_) | OrchestrationKind::Default(_)
            ),
        kind,
    });
    (
        frontend_param(),
        located_name(vec![UpstreamLocation::Header, UpstreamLocation::Query]),
        prop::collection::vec(rule.prop_map(sp), 0..5),
    )
        .prop_map(
            |((from_location, from), (into_location, into), rules)| Orchestration {
                from_location,
                from,
                into_location,
                into,
                rules,
            },
        )
}

fn upstream() -> impl Strategy<Value = Upstream> {
    prop_oneof![
        4 => upstream_line(),
        1 => policy_backend().prop_map(Upstream::Policy),
        1 => orchestration().prop_map(Upstream::Orchestrate),
    ]
}

fn route() -> impl Strategy<Value = Route> {
    (
        methods(),
        template(),
        prop::collection::vec(route_item().prop_map(sp), 0..6),
    )
        .prop_map(|(methods, path, items)| Route {
            methods,
            path: sp(path),
            items,
        })
}

fn backend() -> impl Strategy<Value = Backend> {
    let item = prop_oneof![
        prop::collection::vec(
            (url(), prop::option::of((0u32..=10_000).prop_map(sp)))
                .prop_map(|(url, weight)| WeightedTarget { url, weight }),
            1..=3
        )
        .prop_map(BackendItem::Targets),
        duration().prop_map(BackendItem::Timeout),
        duration().prop_map(BackendItem::ConnectTimeout),
        (0u32..=10, prop::option::of(1u32..=100)).prop_map(|(n, b)| BackendItem::Retries {
            count: sp(n),
            budget: b.map(sp)
        }),
        balance().prop_map(|b| BackendItem::Balance(sp(b))),
        health().prop_map(BackendItem::Health),
        (
            prop::option::of(1u32..=100),
            status_range(),
            prop::option::of(positive_duration())
        )
            .prop_map(|(n, status, cooldown)| BackendItem::Passive(PassiveCheck {
                unhealthy: n.map(sp),
                status,
                cooldown
            })),
        prop::collection::vec(breaker_item().prop_map(sp), 0..5)
            .prop_map(|items| BackendItem::Breaker(BreakerBlock { items })),
        (nets(), prop::collection::vec(net(), 0..3))
            .prop_map(|(deny, except)| BackendItem::DenyIps { deny, except }),
        (
            prop::sample::select(SigningKind::ALL.to_vec()),
            text().prop_filter("empty", |k| !k.is_empty()),
            secret()
        )
            .prop_map(|(kind, key, secret)| BackendItem::Sign(Signing {
                kind: sp(kind),
                key: sp(key),
                secret
            })),
    ];
    (ident(), prop::collection::vec(item.prop_map(sp), 0..5))
        .prop_map(|(name, items)| Backend { name, items })
}

fn positive_duration() -> impl Strategy<Value = Spanned<Duration>> {
    duration().prop_filter("zero", |d| d.value.millis > 0)
}

fn status_range() -> impl Strategy<Value = Option<Spanned<Range<u16>>>> {
    range(100u16..=599).prop_map(|r| r.map(sp))
}

fn balance() -> impl Strategy<Value = Balance> {
    prop_oneof![
        Just(Balance::RoundRobin),
        Just(Balance::LeastRequests),
        Just(Balance::Hash(HashKey::Ip)),
        text().prop_map(|h| Balance::Hash(HashKey::Header(sp(h)))),
        text().prop_map(|q| Balance::Hash(HashKey::Query(sp(q)))),
    ]
}

fn health() -> impl Strategy<Value = HealthCheck> {
    (
        text().prop_map(|p| format!("/{p}")),
        prop::option::of(positive_duration()),
        prop::option::of(positive_duration()),
        prop::option::of(1u32..=10),
        prop::option::of(1u32..=10),
        status_range(),
    )
        .prop_map(
            |(path, every, timeout, healthy, unhealthy, status)| HealthCheck {
                path: sp(path),
                every,
                timeout,
                healthy: healthy.map(sp),
                unhealthy: unhealthy.map(sp),
                status,
            },
        )
}

fn breaker_item() -> impl Strategy<Value = BreakerItem> {
    let condition = prop_oneof![
        Just(TripCondition::Timeouts),
        Just(TripCondition::ConnectErrors),
        status_range()
            .prop_filter_map("open", |r| r)
            .prop_map(|r| TripCondition::Status(r.value)),
        positive_duration().prop_map(|d| TripCondition::SlowerThan(d.value)),
    ];
    prop_oneof![
        prop::collection::vec(condition.prop_map(sp), 1..4).prop_map(BreakerItem::Trip),
        (1u32..=1000, positive_duration()).prop_map(|(n, within)| BreakerItem::Count {
            failures: sp(n),
            within
        }),
        (1u32..=100, 1u32..=1000, positive_duration()).prop_map(|(p, m, within)| {
            BreakerItem::Percent {
                percent: sp(p),
                min: sp(m),
                within,
            }
        }),
        positive_duration().prop_map(BreakerItem::Open),
        (1u32..=100).prop_map(|n| BreakerItem::Probes(sp(n))),
        (100u16..=599).prop_map(|status| BreakerItem::Downgrade(Downgrade::Mock(Mock {
            status: sp(status),
            body: None
        }))),
        ident().prop_map(|b| BreakerItem::Downgrade(Downgrade::Backend(b))),
        Just(BreakerItem::Downgrade(Downgrade::Unavailable)),
    ]
}

fn app() -> impl Strategy<Value = App> {
    let item = prop_oneof![
        text().prop_map(|k| AppItem::Key(sp(k))),
        secret().prop_map(AppItem::Secret),
        secret().prop_map(AppItem::AppCode),
        nets().prop_map(AppItem::TrustedIps),
        quota().prop_map(AppItem::Quota),
        rate().prop_map(AppItem::Rate),
        Just(AppItem::Frozen),
    ];
    (ident(), prop::collection::vec(item.prop_map(sp), 0..5))
        .prop_map(|(name, items)| App { name, items })
}

fn plan() -> impl Strategy<Value = Plan> {
    let item = prop_oneof![
        idents(3).prop_map(PlanItem::Apps),
        rate().prop_map(PlanItem::Rate),
        quota().prop_map(PlanItem::Quota),
    ];
    (ident(), prop::collection::vec(item.prop_map(sp), 0..4))
        .prop_map(|(name, items)| Plan { name, items })
}

fn auth() -> impl Strategy<Value = AuthProvider> {
    let algorithm = "[A-Za-z][A-Za-z0-9_-]{0,8}".prop_map(sp);
    let token_source = prop_oneof![
        (token(), any::<bool>()).prop_map(|(n, bearer)| TokenSource::Header {
            name: sp(n),
            bearer
        }),
        text().prop_map(|q| TokenSource::Query(sp(q))),
        text().prop_map(|c| TokenSource::Cookie(sp(c))),
    ];
    let item = prop_oneof![
        prop::collection::vec(algorithm, 1..=3).prop_map(AuthItem::Algorithms),
        duration().prop_map(AuthItem::ClockSkew),
        text().prop_map(|r| AuthItem::Region(sp(r))),
        text().prop_map(|g| AuthItem::Group(sp(g))),
        prop::sample::select(vec!["tencent", "kong"])
            .prop_map(|v| AuthItem::Variant(sp(v.to_string()))),
        secret().prop_map(AuthItem::Key),
        secret().prop_map(AuthItem::Jwks),
        text().prop_map(|s| AuthItem::Issuer(sp(s))),
        texts(3).prop_map(AuthItem::Audience),
        duration().prop_map(AuthItem::Leeway),
        token_source.prop_map(AuthItem::TokenFrom),
        url().prop_map(AuthItem::Url),
        duration().prop_map(AuthItem::Timeout),
        duration().prop_map(AuthItem::Cache),
        tokens(3).prop_map(AuthItem::Identity),
        template().prop_map(|t| AuthItem::Path(sp(t.to_string()))),
        duration().prop_map(AuthItem::AccessTtl),
        duration().prop_map(AuthItem::RefreshTtl),
        secret().prop_map(AuthItem::SigningKey),
        Just(AuthItem::AllowAppcode),
    ];
    (
        ident(),
        prop::sample::select(AuthKind::ALL.to_vec()),
        prop::collection::vec(item.prop_map(sp), 0..6),
    )
        .prop_map(|(name, kind, items)| AuthProvider {
            name,
            kind: sp(kind),
            items,
        })
}

fn service_item() -> impl Strategy<Value = ServiceItem> {
    let stages = (
        idents(3),
        prop::option::of(token()),
        prop::option::of(ident()),
    )
        .prop_map(|(names, header, default)| {
            ServiceItem::Stages(Stages {
                names,
                from: match header {
                    Some(h) => StageFrom::Header(sp(h)),
                    None => StageFrom::Path,
                },
                default,
            })
        });
    prop_oneof![
        1 => dialect().prop_map(ServiceItem::Dialect),
        1 => texts(3).prop_map(ServiceItem::Hosts),
        1 => protocols().prop_map(ServiceItem::Protocols),
        1 => stages,
        1 => limits().prop_map(ServiceItem::Limits),
        1 => backend().prop_map(ServiceItem::Backend),
        1 => app().prop_map(ServiceItem::App),
        1 => auth().prop_map(ServiceItem::Auth),
        1 => plan().prop_map(ServiceItem::Plan),
        3 => route().prop_map(ServiceItem::Route),
        1 => nets().prop_map(ServiceItem::AllowIps),
        1 => nets().prop_map(ServiceItem::DenyIps),
        1 => nets().prop_map(ServiceItem::TrustedProxies),
        1 => token().prop_map(|h| ServiceItem::RequestIdHeader(sp(h))),
        1 => Just(ServiceItem::ClientCertificateRequired),
        1 => ident().prop_map(ServiceItem::Throttle),
    ]
}

fn throttle() -> impl Strategy<Value = Throttle> {
    let who = prop_oneof![
        ident().prop_map(ExceptWho::App),
        net().prop_map(|n| ExceptWho::Ip(n.value)),
    ];
    let item = prop_oneof![
        rate().prop_map(ThrottleItem::Rate),
        (rate_key(), 1u64..=u32::MAX as u64).prop_map(|(k, n)| ThrottleItem::Per {
            key: sp(k),
            limit: sp(n),
        }),
        (who, 1u64..=u32::MAX as u64).prop_map(|(w, n)| ThrottleItem::Except {
            who: sp(w),
            limit: sp(n),
        }),
        Just(ThrottleItem::Shared),
    ];
    (ident(), prop::collection::vec(item.prop_map(sp), 0..6))
        .prop_map(|(name, items)| Throttle { name, items })
}

fn file() -> impl Strategy<Value = File> {
    let service = (
        ident(),
        prop::collection::vec(service_item().prop_map(sp), 0..8),
    )
        .prop_map(|(name, items)| TopItem::Service(Service { name, items }));
    let top = prop_oneof![
        1 => dialect().prop_map(TopItem::DefaultDialect),
        4 => service,
        1 => throttle().prop_map(TopItem::Throttle),
    ];
    prop::collection::vec(top.prop_map(sp), 0..3).prop_map(|items| File { items })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn generated_asts_round_trip(file in file()) {
        let text = format_ast(&file);
        let parsed = parse_file(0, &text);
        prop_assert!(
            parsed.diagnostics.is_empty(),
            "diagnostics {:#?}\n--- text ---\n{}",
            parsed.diagnostics,
            text
        );
        prop_assert_eq!(parsed.file.as_ref(), Some(&file), "--- text ---\n{}", text);
        // The printed AST is already canonical.
        prop_assert_eq!(format_file(&text).ok(), Some(text.clone()));
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Comments and blank lines sprinkled anywhere a line boundary allows them never change
    /// the meaning, are all kept in order, and format to a fixed point.
    #[test]
    fn sprinkled_comments_and_blank_lines(
        edits in prop::collection::vec((any::<prop::sample::Index>(), 0u8..3), 1..40),
    ) {
        let base = format_ok(COVERING);
        let mut lines: Vec<String> = base.lines().map(str::to_string).collect();
        for (n, (at, kind)) in edits.iter().enumerate() {
            let i = at.index(lines.len() + 1);
            match kind {
                0 => lines.insert(i, String::new()),
                1 => lines.insert(i, format!("   # own {n}")),
                _ => {
                    let i = i.min(lines.len() - 1);
                    lines[i].push_str(&format!(" # trailing {n}"));
                }
            }
        }
        let text = lines.join("\n");
        let once = format_ok(&text);
        prop_assert_eq!(parse_ok(&once), parse_ok(COVERING));
        prop_assert_eq!(format_ok(&once), once.clone());
        prop_assert_eq!(comments(&once), comments(&text));
    }
}
