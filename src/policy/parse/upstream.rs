//! Lowering of the backend-request statements (issue 13): backend parameters, removals,
//! response header edits, policy backends, orchestration and backend signing.
//!
//! Only what the text alone decides is checked here (locations, names that are HTTP tokens,
//! names the vendors or the gateway reserve, a statement's own consistency); everything that
//! needs the rest of the route (does the path variable exist, is the backend defined) is the
//! compiler's.

use super::*;

/// Prefixes Huawei refuses for any parameter name, header or query (case-insensitive).
const RESERVED_PREFIXES: [&str; 2] = ["x-apig-", "x-sdk-"];
/// Names Huawei refuses for any parameter.
const RESERVED_NAMES: [&str; 1] = ["x-stage"];
/// Headers the gateway itself writes or that describe the connection, not the request: a
/// mapping could smuggle a second request (`Content-Length`, `Transfer-Encoding`) or send
/// the request to another virtual host.
const GATEWAY_HEADERS: [&str; 9] = [
    "host",
    "content-length",
    "transfer-encoding",
    "connection",
    "keep-alive",
    "proxy-connection",
    "te",
    "trailer",
    "upgrade",
];

/// Headers the gateway writes on every forward, whatever a mapping says: the forwarding
/// chain, the request-id headers of the three dialects, the loop guard's hop count and the
/// W3C trace context (a mapped `traceparent` would forge the gateway's span). A
/// backend trusts them to come from the gateway. (Each dialect's profile names its request-id
/// header; a test in `dialect/profile.rs` checks this list against them.)
pub const FORWARDING_HEADERS: [&str; 10] = [
    "x-forwarded-for",
    "x-forwarded-proto",
    "x-forwarded-host",
    "forwarded",
    "x-api-requestid",
    "x-request-id",
    "x-jdcloud-request-id",
    "x-rulegate-hops",
    "traceparent",
    "tracestate",
];

/// The prefix of an external authorizer's context headers: a backend trusts them to come from
/// the authorizer, so no mapping may write one (a client's value would pass as the context).
const AUTHORIZER_PREFIX: &str = "x-authorizer-";

/// Whether a rule is one of the one-line statements that make up `Upstream`.
pub(super) fn is_upstream(rule: Rule) -> bool {
    matches!(
        rule,
        Rule::backend_only_stmt
            | Rule::backend_response_stmt
            | Rule::backend_param_stmt
            | Rule::remove_stmt
    )
}

/// Why a backend parameter may not be called `name`, if it may not: Huawei's reserved names
/// (every dialect refuses them, so a policy stays portable) and the headers the gateway owns.
pub fn reserved(location: UpstreamLocation, name: &str) -> Option<&'static str> {
    let lower = name.to_ascii_lowercase();
    if location == UpstreamLocation::Path {
        return None;
    }
    if let Some(p) = RESERVED_PREFIXES.iter().find(|p| lower.starts_with(**p)) {
        return Some(match *p {
            "x-apig-" => "names starting with `x-apig-` are reserved by Huawei APIG",
            _ => "names starting with `x-sdk-` are reserved for request signing",
        });
    }
    if RESERVED_NAMES.contains(&lower.as_str()) {
        return Some("`x-stage` is reserved by Huawei APIG for stage selection");
    }
    if location == UpstreamLocation::Header && GATEWAY_HEADERS.contains(&lower.as_str()) {
        return Some("the gateway writes this header itself");
    }
    if location == UpstreamLocation::Header && FORWARDING_HEADERS.contains(&lower.as_str()) {
        return Some("the gateway writes this header on every forward, and backends trust it");
    }
    if location == UpstreamLocation::Header && lower.starts_with(AUTHORIZER_PREFIX) {
        return Some("`X-Authorizer-*` headers carry an external authorizer's context only");
    }
    None
}

impl Lower {
    pub(super) fn forward(&mut self, p: &P<'_>) -> Option<Forward> {
        let backend = self.ident(child(p, Rule::ident).unwrap());
        let path = match child(p, Rule::string) {
            Some(s) => {
                let s = self.string(s);
                Some(self.path_template(&s)?)
            }
            None => None,
        };
        Some(Forward { backend, path })
    }

    pub(super) fn signing(&mut self, p: &P<'_>) -> Option<Signing> {
        let kinds: Vec<(&str, SigningKind)> =
            SigningKind::ALL.iter().map(|k| (k.name(), *k)).collect();
        let kind = self.choice(&child(p, Rule::ident).unwrap(), "signing kind", &kinds);
        let key = self.string(child(p, Rule::string).unwrap());
        let secret = self.secret_ref(child(p, Rule::secret_ref).unwrap());
        if key.value.is_empty() {
            self.err(
                Diagnostic::error(diag::MALFORMED, key.span, "an empty signing key")
                    .label("the key id (hmac) or user name (basic) is empty")
                    .help("write the key the backend knows, e.g. `key \"gateway\"`"),
            );
            return None;
        }
        Some(Signing {
            kind: kind?,
            key,
            secret,
        })
    }

    pub(super) fn upstream(&mut self, p: &P<'_>) -> Option<Upstream> {
        match p.as_rule() {
            Rule::backend_only_stmt => Some(Upstream::ParametersOnly),
            Rule::backend_response_stmt => self.response_edit(p).map(Upstream::ResponseHeader),
            Rule::backend_param_stmt => self.backend_param(p).map(Upstream::Param),
            _ => {
                let location = self.upstream_location(p, false)?;
                let name = self.string(child(p, Rule::string).unwrap());
                self.upstream_name(location.value, &name)?;
                Some(Upstream::Remove { location, name })
            }
        }
    }

    /// `path|query|header`; `path` only where a path variable can be meant.
    fn upstream_location(&mut self, p: &P<'_>, path: bool) -> Option<Spanned<UpstreamLocation>> {
        let all: Vec<(&str, UpstreamLocation)> = UpstreamLocation::ALL
            .iter()
            .filter(|l| path || **l != UpstreamLocation::Path)
            .map(|l| (l.name(), *l))
            .collect();
        self.choice(&child(p, Rule::ident).unwrap(), "backend location", &all)
    }

    /// A backend parameter's name: an HTTP token for headers, not reserved.
    fn upstream_name(&mut self, location: UpstreamLocation, name: &Spanned<String>) -> Option<()> {
        if location == UpstreamLocation::Header && !is_token(&name.value) {
            self.header_name(name);
            return None;
        }
        if name.value.is_empty() {
            self.err(
                Diagnostic::error(diag::MALFORMED, name.span, "an empty parameter name")
                    .label("names cannot be empty"),
            );
            return None;
        }
        if let Some(why) = reserved(location, &name.value) {
            self.err(
                Diagnostic::error(
                    diag::RESERVED_NAME,
                    name.span,
                    format!("{} {:?} is reserved", location.name(), name.value),
                )
                .label(why)
                .help("choose another name; reserved names are listed in docs/backend-requests.md"),
            );
            return None;
        }
        Some(())
    }

    fn response_edit(&mut self, p: &P<'_>) -> Option<ResponseHeaderEdit> {
        let edits: Vec<(&str, HeaderEdit)> =
            HeaderEdit::ALL.iter().map(|e| (e.name(), *e)).collect();
        let edit = self.choice(&child(p, Rule::ident).unwrap(), "header edit", &edits)?;
        let mut strings = self.strings(p).into_iter();
        let name = strings.next().unwrap();
        let value = strings.next();
        if !is_token(&name.value) {
            self.header_name(&name);
            return None;
        }
        match (edit.value, &value) {
            (HeaderEdit::Remove, Some(v)) => {
                self.err(
                    Diagnostic::error(diag::MALFORMED, v.span, "`remove` takes no value")
                        .label("unexpected value")
                        .help(format!(
                            "write `backend response header remove {}`",
                            quote(&name.value)
                        )),
                );
                None
            }
            (HeaderEdit::Add | HeaderEdit::Set, None) => {
                self.err(
                    Diagnostic::error(
                        diag::MALFORMED,
                        name.span,
                        format!("`{}` needs a value", edit.value.name()),
                    )
                    .label("no value after the name")
                    .help(format!(
                        "write `backend response header {} {} \"VALUE\"`",
                        edit.value.name(),
                        quote(&name.value)
                    )),
                );
                None
            }
            _ => Some(ResponseHeaderEdit { edit, name, value }),
        }
    }

    fn backend_param(&mut self, p: &P<'_>) -> Option<BackendParam> {
        let location = self.upstream_location(p, true)?;
        let name = self.string(child(p, Rule::string).unwrap());
        self.upstream_name(location.value, &name)?;
        let value = if let Some(f) = child(p, Rule::param_from) {
            let span = self.span(&f);
            let locs: Vec<(&str, ParamLocation)> =
                ParamLocation::ALL.iter().map(|l| (l.name(), *l)).collect();
            let loc = self.choice(
                &child(&f, Rule::ident).unwrap(),
                "parameter location",
                &locs,
            )?;
            let from = self.string(child(&f, Rule::string).unwrap());
            if loc.value == ParamLocation::Header {
                self.header_name(&from);
            }
            Spanned::new(
                ParamValue::Request {
                    location: loc,
                    name: from,
                },
                span,
            )
        } else if let Some(c) = child(p, Rule::param_constant) {
            let span = self.span(&c);
            Spanned::new(
                ParamValue::Constant(self.string(child(&c, Rule::string).unwrap())),
                span,
            )
        } else {
            let s = child(p, Rule::param_system).unwrap();
            let span = self.span(&s);
            Spanned::new(ParamValue::System(self.system_value(&s)?), span)
        };
        Some(BackendParam {
            location,
            name,
            value,
        })
    }

    fn system_value(&mut self, p: &P<'_>) -> Option<SystemValue> {
        let word = child(p, Rule::ident).unwrap();
        let field = child(p, Rule::string).map(|s| self.string(s));
        let mut names: Vec<(&str, Option<SystemValue>)> = SystemValue::PLAIN
            .iter()
            .map(|(n, v)| (*n, Some(v.clone())))
            .collect();
        names.extend(SystemValue::NAMED.iter().map(|n| (*n, None)));
        // `choice` wants `Copy` values: choose an index, then clone.
        let indexed: Vec<(&str, usize)> = names
            .iter()
            .enumerate()
            .map(|(i, (n, _))| (*n, i))
            .collect();
        let i = self.choice(&word, "system value", &indexed)?.value;
        let (name, plain) = &names[i];
        match (plain, field) {
            (Some(v), None) => Some(v.clone()),
            (Some(_), Some(f)) => {
                self.err(
                    Diagnostic::error(diag::MALFORMED, f.span, format!("`{name}` takes no name"))
                        .label("unexpected string")
                        .help("only `claim \"NAME\"` and `authorizer \"FIELD\"` name a field"),
                );
                None
            }
            (None, Some(f)) if *name == "claim" => Some(SystemValue::Claim(f)),
            (None, Some(f)) => Some(SystemValue::Authorizer(f)),
            (None, None) => {
                self.err(
                    Diagnostic::error(
                        diag::MALFORMED,
                        self.span(p),
                        format!("`system {name}` needs the field's name"),
                    )
                    .label("no name")
                    .help(format!("write `system {name} \"NAME\"`")),
                );
                None
            }
        }
    }

    pub(super) fn policy(&mut self, p: P<'_>) -> Option<PolicyBackend> {
        let name = self.ident(child(&p, Rule::ident).unwrap());
        let any = child(&p, Rule::policy_mode).is_some_and(|m| has(&m, Rule::kw_any));
        let mut items = Vec::new();
        for c in p.into_inner() {
            let span = self.span(&c);
            let item = match c.as_rule() {
                Rule::when_stmt => self.condition(&c).map(PolicyItem::When),
                Rule::forward_stmt => self.forward(&c).map(PolicyItem::Forward),
                Rule::mock_stmt => self.mock(&c).map(PolicyItem::Mock),
                Rule::bad_stmt => {
                    self.bad(c, Block::Policy);
                    None
                }
                r if is_upstream(r) => self.upstream(&c).map(PolicyItem::Upstream),
                _ => None,
            };
            if let Some(item) = item {
                items.push(Spanned::new(item, span));
            }
        }
        Some(PolicyBackend { name, any, items })
    }

    fn condition(&mut self, p: &P<'_>) -> Option<Condition> {
        if let Some(s) = child(p, Rule::when_source) {
            return Some(Condition::Source(self.addrs(&s)));
        }
        let subject_pair = child(p, Rule::when_subject).unwrap();
        let at = self.base + subject_pair.as_span().start();
        let subject_span = Span::new(self.file, at, at);
        let subject = if has(&subject_pair, Rule::kw_claim) {
            Spanned::new(Subject::Claim, subject_span)
        } else if has(&subject_pair, Rule::kw_authorizer) {
            Spanned::new(Subject::Authorizer, subject_span)
        } else {
            let locs: Vec<(&str, Subject)> = ParamLocation::ALL
                .iter()
                .map(|l| (l.name(), Subject::Param(*l)))
                .collect();
            self.choice(
                &child(&subject_pair, Rule::ident).unwrap(),
                "condition subject",
                &locs,
            )?
        };
        let name = self.string(child(&subject_pair, Rule::string).unwrap());
        if subject.value == Subject::Param(ParamLocation::Header) {
            self.header_name(&name);
        }
        let t = child(p, Rule::when_test).unwrap();
        let span = self.span(&t);
        let values = self.strings(&t);
        let test = if has(&t, Rule::kw_is) {
            ValueTest::Is(values.into_iter().next().unwrap())
        } else if has(&t, Rule::kw_in) {
            ValueTest::In(values)
        } else {
            ValueTest::Matches(values.into_iter().next().unwrap())
        };
        Some(Condition::Value {
            subject,
            name,
            test: Spanned::new(test, span),
        })
    }

    pub(super) fn orchestrate(&mut self, p: P<'_>) -> Option<Orchestration> {
        let mut idents = children(&p, Rule::ident);
        let mut strings = children(&p, Rule::string);
        let locs: Vec<(&str, ParamLocation)> =
            ParamLocation::ALL.iter().map(|l| (l.name(), *l)).collect();
        let from_location = self.choice(&idents.next().unwrap(), "parameter location", &locs);
        let from = self.string(strings.next().unwrap());
        let into_locs: Vec<(&str, UpstreamLocation)> =
            [UpstreamLocation::Header, UpstreamLocation::Query]
                .iter()
                .map(|l| (l.name(), *l))
                .collect();
        let into_location = self.choice(&idents.next().unwrap(), "backend location", &into_locs);
        let into = self.string(strings.next().unwrap());
        let into_ok = match &into_location {
            Some(l) => self.upstream_name(l.value, &into).is_some(),
            None => false,
        };
        let mut rules = Vec::new();
        for c in p.into_inner() {
            match c.as_rule() {
                Rule::orch_rule => {
                    let span = self.span(&c);
                    if let Some(r) = self.orchestration_rule(&c) {
                        rules.push(Spanned::new(r, span));
                    }
                }
                Rule::bad_stmt => self.bad(c, Block::Orchestrate),
                _ => {}
            }
        }
        if !into_ok {
            return None;
        }
        Some(Orchestration {
            from_location: from_location?,
            from,
            into_location: into_location?,
            into,
            rules,
        })
    }

    fn orchestration_rule(&mut self, p: &P<'_>) -> Option<OrchestrationRule> {
        let pre = has(p, Rule::kw_pre);
        let r = p
            .clone()
            .into_inner()
            .find(|c| c.as_rule() != Rule::kw_pre)
            .unwrap();
        let kind = match r.as_rule() {
            Rule::orch_list => {
                let mut values = self.strings(&r);
                let to = values.pop().unwrap();
                OrchestrationKind::List { values, to }
            }
            Rule::orch_range | Rule::orch_hash_range => {
                let range_pair = child(&r, Rule::range).unwrap();
                let span = self.span(&range_pair);
                let range = self.range(Some(range_pair), "int", |s| s.parse::<i64>().ok())??;
                let range = Spanned::new(range, span);
                let to = self.string(child(&r, Rule::string).unwrap());
                match r.as_rule() {
                    Rule::orch_range => OrchestrationKind::Range { range, to },
                    _ => OrchestrationKind::HashRange { range, to },
                }
            }
            Rule::orch_hash => OrchestrationKind::Hash,
            Rule::orch_head => OrchestrationKind::Head(self.int(
                child(&r, Rule::int).unwrap(),
                "length",
                1,
                4096,
            )?),
            Rule::orch_tail => OrchestrationKind::Tail(self.int(
                child(&r, Rule::int).unwrap(),
                "length",
                1,
                4096,
            )?),
            Rule::orch_empty => {
                OrchestrationKind::Empty(self.string(child(&r, Rule::string).unwrap()))
            }
            _ => OrchestrationKind::Default(self.string(child(&r, Rule::string).unwrap())),
        };
        if pre
            && matches!(
                kind,
                OrchestrationKind::Empty(_) | OrchestrationKind::Default(_)
            )
        {
            self.err(
                Diagnostic::error(
                    diag::CONFLICT,
                    self.span(p),
                    "`empty` and `default` give the result",
                )
                .label("a pre-processing rule only feeds the rules after it")
                .help("remove `pre`"),
            );
            return None;
        }
        Some(OrchestrationRule { pre, kind })
    }
}
