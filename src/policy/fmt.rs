//! Formatting policy text (`rulegate fmt`).
//!
//! The canonical form is printed from the AST, so two files that mean the same thing format
//! the same way, and formatting can never change meaning (`parse(format(p)) == parse(p)`).
//! Comments are not part of the AST: [`format_file`] finds them with a small lexical scan of
//! the source and weaves them back in by position (leading, trailing, before a block's `}`,
//! end of file), keeping single blank lines where the author left blank lines.

use super::ast::*;
use super::diag::{self, Diagnostic};
use super::parse;
use ipnet::IpNet;
use std::fmt::Write as _;

/// One level of block indentation.
const INDENT: &str = "    ";

/// A string literal as the language writes it: escapes exactly what `parse::unescape` undoes
/// (quote, backslash, control characters), so every string survives a round trip and stays on
/// one line; everything else, non-ASCII included, is written as is so it stays readable.
pub fn quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// The canonical form of one policy file, comments and paragraph breaks kept.
///
/// A file with any error is returned as its diagnostics and never formatted: printing the AST
/// of a partly-parsed file would silently drop the statements that did not parse.
pub fn format_file(text: &str) -> Result<String, Vec<Diagnostic>> {
    let parsed = parse::parse_file(0, text);
    if diag::has_errors(&parsed.diagnostics) {
        return Err(parsed.diagnostics);
    }
    let Some(file) = parsed.file else {
        // The parser only withholds the AST together with an error; stay total regardless.
        return Err(parsed.diagnostics);
    };
    let source = Source::new(text);
    let mut p = Printer {
        out: String::with_capacity(text.len() + text.len() / 8),
        src: Some(&source),
        next: 0,
    };
    p.file(&file_nodes(&file), text.len());
    Ok(p.finish())
}

/// The canonical form of an AST that has no source text (generated policies, round-trip
/// tests). Without a source there are no comments; top-level items are separated by one
/// blank line.
pub fn format_ast(file: &File) -> String {
    let mut p = Printer {
        out: String::new(),
        src: None,
        next: 0,
    };
    p.file(&file_nodes(file), 0);
    p.finish()
}

// ---------------------------------------------------------------------------------------------
// Source positions and comments

/// A `#` comment found in the source.
#[derive(Debug, Clone)]
struct Comment {
    /// Byte offset of the `#`.
    start: usize,
    /// 0-based line.
    line: usize,
    /// From `#` to the end of the line, trailing whitespace removed.
    text: String,
}

/// What the printer needs to know about the original text: where lines start (with the
/// grammar's idea of a newline: `\n`, `\r\n` or a lone `\r`) and where the comments are.
struct Source<'a> {
    text: &'a str,
    line_starts: Vec<usize>,
    comments: Vec<Comment>,
}

impl<'a> Source<'a> {
    fn new(text: &'a str) -> Source<'a> {
        let bytes = text.as_bytes();
        let mut line_starts = vec![0];
        let mut i = 0;
        while i < bytes.len() {
            match bytes[i] {
                b'\n' => line_starts.push(i + 1),
                b'\r' if bytes.get(i + 1) != Some(&b'\n') => line_starts.push(i + 1),
                _ => {}
            }
            i += 1;
        }
        let mut src = Source {
            text,
            line_starts,
            comments: Vec::new(),
        };
        src.comments = src.scan_comments();
        src
    }

    /// 0-based line of a byte offset.
    fn line(&self, offset: usize) -> usize {
        self.line_starts.partition_point(|&s| s <= offset) - 1
    }

    /// Line of the last byte of a span (the span's end is exclusive).
    fn end_line(&self, span: Span) -> usize {
        self.line((span.end as usize).max(span.start as usize + 1) - 1)
    }

    fn line_text(&self, line: usize) -> &'a str {
        let start = self.line_starts[line];
        let end = self
            .line_starts
            .get(line + 1)
            .copied()
            .unwrap_or(self.text.len());
        &self.text[start..end]
    }

    /// Whether some line strictly between `a` and `b` holds nothing but whitespace.
    fn blank_between(&self, a: usize, b: usize) -> bool {
        (a + 1..b).any(|l| self.line_text(l).trim().is_empty())
    }

    /// Every comment, in order. The scan knows strings (a `#` inside `"…"` is text); in a
    /// file that parsed, every other `#` starts a comment, since no token contains one.
    fn scan_comments(&self) -> Vec<Comment> {
        let bytes = self.text.as_bytes();
        let at_newline = |i: usize| bytes[i] == b'\n' || bytes[i] == b'\r';
        let mut out = Vec::new();
        let mut i = 0;
        while i < bytes.len() {
            match bytes[i] {
                b'#' => {
                    let start = i;
                    while i < bytes.len() && !at_newline(i) {
                        i += 1;
                    }
                    out.push(Comment {
                        start,
                        line: self.line(start),
                        text: self.text[start..i].trim_end().to_string(),
                    });
                    continue;
                }
                b'"' => {
                    i += 1;
                    while i < bytes.len() && bytes[i] != b'"' && !at_newline(i) {
                        if bytes[i] == b'\\' && i + 1 < bytes.len() && !at_newline(i + 1) {
                            i += 1;
                        }
                        i += 1;
                    }
                }
                _ => {}
            }
            i += 1;
        }
        out
    }

    /// The span of a one-line statement without what pest appends to it: a statement whose
    /// rule ends in an optional part (`mock 200`, `forward orders`, `rate … [burst N]`) gets
    /// the implicit whitespace and comment before that absent part in its span. No statement
    /// holds a comment, so the first one inside ends it.
    fn statement_span(&self, span: Span) -> Span {
        let start = span.start as usize;
        let mut end = span.end as usize;
        let first = self.comments.partition_point(|c| c.start < start);
        if let Some(c) = self.comments.get(first).filter(|c| c.start < end) {
            end = c.start;
        }
        // Tokens never end in whitespace or a backslash (a line continuation).
        let bytes = self.text.as_bytes();
        while end > start + 1 && matches!(bytes[end - 1], b' ' | b'\t' | b'\n' | b'\r' | b'\\') {
            end -= 1;
        }
        Span {
            file: span.file,
            start: span.start,
            end: end as u32,
        }
    }

    /// Offset of the `{` that opens the block starting at `from` (skipping strings, since a
    /// route's path may hold `{var}`).
    fn open_brace(&self, from: usize, to: usize) -> usize {
        let bytes = self.text.as_bytes();
        let mut i = from;
        while i < to {
            match bytes[i] {
                b'{' => return i,
                b'"' => {
                    i += 1;
                    while i < to && bytes[i] != b'"' {
                        if bytes[i] == b'\\' {
                            i += 1;
                        }
                        i += 1;
                    }
                }
                _ => {}
            }
            i += 1;
        }
        from
    }
}

// ---------------------------------------------------------------------------------------------
// The document: every statement as a head line, blocks with their children

/// One printed statement: its text without indentation, its span in the source, and for
/// blocks the statements inside.
struct Node {
    head: String,
    span: Span,
    body: Option<Vec<Node>>,
}

impl Node {
    fn line(head: String, span: Span) -> Node {
        Node {
            head,
            span,
            body: None,
        }
    }

    fn block(head: String, span: Span, body: Vec<Node>) -> Node {
        Node {
            head,
            span,
            body: Some(body),
        }
    }
}

fn file_nodes(file: &File) -> Vec<Node> {
    file.items
        .iter()
        .map(|item| match &item.value {
            TopItem::DefaultDialect(d) => {
                Node::line(format!("default dialect {}", d.value), item.span)
            }
            TopItem::Service(s) => Node::block(
                format!("service {}", s.name.value),
                item.span,
                s.items.iter().map(service_item).collect(),
            ),
            TopItem::Throttle(t) => Node::block(
                format!("throttle {}", t.name.value),
                item.span,
                t.items.iter().map(throttle_item).collect(),
            ),
        })
        .collect()
}

fn service_item(item: &Spanned<ServiceItem>) -> Node {
    let span = item.span;
    let line = |head: String| Node::line(head, span);
    match &item.value {
        ServiceItem::Dialect(d) => line(format!("dialect {}", d.value)),
        ServiceItem::Hosts(h) => line(format!("hosts{}", strings(h))),
        ServiceItem::Protocols(p) => line(format!("protocols{}", words(p))),
        ServiceItem::Stages(s) => {
            let mut head = format!("stages{}", words(&s.names));
            match &s.from {
                StageFrom::Header(h) => write!(head, " from header {}", quote(&h.value)),
                StageFrom::Path => write!(head, " from path"),
            }
            .ok();
            if let Some(d) = &s.default {
                write!(head, " default {}", d.value).ok();
            }
            line(head)
        }
        ServiceItem::Limits(l) => limits(l, span),
        ServiceItem::GatewayResponse(g) => Node::block(
            format!("gateway response {}", g.kind.value),
            span,
            g.items
                .iter()
                .map(|i| {
                    let text = match &i.value {
                        GatewayResponseItem::Answer(m) => mock(m),
                        GatewayResponseItem::Header { name, value } => format!(
                            "response header {} {}",
                            quote(&name.value),
                            quote(&value.value)
                        ),
                    };
                    Node::line(text, i.span)
                })
                .collect(),
        ),
        ServiceItem::Backend(b) => Node::block(
            format!("backend {}", b.name.value),
            span,
            b.items.iter().map(backend_item).collect(),
        ),
        ServiceItem::App(a) => Node::block(
            format!("app {}", a.name.value),
            span,
            a.items.iter().map(app_item).collect(),
        ),
        ServiceItem::Auth(a) => Node::block(
            format!("auth {} {}", a.name.value, a.kind.value.name()),
            span,
            a.items.iter().map(auth_item).collect(),
        ),
        ServiceItem::Plan(p) => Node::block(
            format!("plan {}", p.name.value),
            span,
            p.items.iter().map(plan_item).collect(),
        ),
        ServiceItem::Route(r) => Node::block(
            format!(
                "route{} {}",
                words(&r.methods),
                quote(&r.path.value.to_string())
            ),
            span,
            r.items.iter().map(route_item).collect(),
        ),
        ServiceItem::AllowIps(a) => line(format!("allow ips{}", addrs(a))),
        ServiceItem::DenyIps(a) => line(format!("deny ips{}", addrs(a))),
        ServiceItem::TrustedProxies(a) => line(format!("trusted proxies{}", addrs(a))),
        ServiceItem::RequestIdHeader(h) => {
            line(format!("request id from header {}", quote(&h.value)))
        }
        ServiceItem::ClientCertificateRequired => line("client certificate required".to_string()),
        ServiceItem::Throttle(name) => line(format!("throttle {}", name.value)),
    }
}

fn limits(items: &[LimitItem], span: Span) -> Node {
    let body = items
        .iter()
        .map(|l| {
            let span = Span {
                file: l.kind.span.file,
                start: l.kind.span.start,
                end: l.size.span.end.max(l.kind.span.start),
            };
            Node::line(format!("{} {}", l.kind.value.name(), l.size.value), span)
        })
        .collect();
    Node::block("limits".to_string(), span, body)
}

fn backend_item(item: &Spanned<BackendItem>) -> Node {
    let head = match &item.value {
        BackendItem::Targets(t) => t.iter().fold("targets".to_string(), |mut s, t| {
            write!(s, " {}", quote(&t.url.value)).ok();
            if let Some(w) = &t.weight {
                write!(s, " weight {}", w.value).ok();
            }
            s
        }),
        BackendItem::Timeout(d) => format!("timeout {}", d.value),
        BackendItem::ConnectTimeout(d) => format!("connect timeout {}", d.value),
        BackendItem::Retries { count, budget } => match budget {
            Some(b) => format!("retries {} budget {}%", count.value, b.value),
            None => format!("retries {}", count.value),
        },
        BackendItem::Balance(b) => match &b.value {
            Balance::RoundRobin => "balance round-robin".to_string(),
            Balance::LeastRequests => "balance least-requests".to_string(),
            Balance::Hash(HashKey::Ip) => "balance hash ip".to_string(),
            Balance::Hash(HashKey::Header(h)) => format!("balance hash header {}", quote(&h.value)),
            Balance::Hash(HashKey::Query(q)) => format!("balance hash query {}", quote(&q.value)),
        },
        BackendItem::Health(h) => health(h),
        BackendItem::Passive(c) => {
            let mut head = "passive".to_string();
            if let Some(n) = &c.unhealthy {
                write!(head, " unhealthy {}", n.value).ok();
            }
            if let Some(r) = &c.status {
                write!(head, " status {}", r.value).ok();
            }
            if let Some(d) = &c.cooldown {
                write!(head, " cooldown {}", d.value).ok();
            }
            head
        }
        BackendItem::Breaker(b) => {
            let body = b.items.iter().map(breaker_item).collect();
            return Node::block("breaker".to_string(), item.span, body);
        }
        BackendItem::DenyIps { deny, except } => {
            let mut head = format!("deny ips{}", addrs(deny));
            if !except.is_empty() {
                write!(head, " except{}", addrs(except)).ok();
            }
            head
        }
        BackendItem::Sign(sg) => format!(
            "sign {} key {} secret {}",
            sg.kind.value.name(),
            quote(&sg.key.value),
            secret(&sg.secret)
        ),
    };
    Node::line(head, item.span)
}

fn health(h: &HealthCheck) -> String {
    let mut head = format!("health http {}", quote(&h.path.value));
    if let Some(d) = &h.every {
        write!(head, " every {}", d.value).ok();
    }
    if let Some(d) = &h.timeout {
        write!(head, " timeout {}", d.value).ok();
    }
    if let Some(n) = &h.healthy {
        write!(head, " healthy {}", n.value).ok();
    }
    if let Some(n) = &h.unhealthy {
        write!(head, " unhealthy {}", n.value).ok();
    }
    if let Some(r) = &h.status {
        write!(head, " status {}", r.value).ok();
    }
    head
}

fn breaker_item(item: &Spanned<BreakerItem>) -> Node {
    let head = match &item.value {
        BreakerItem::Trip(conditions) => conditions.iter().fold("trip".to_string(), |mut s, c| {
            match &c.value {
                TripCondition::Timeouts => s.push_str(" timeouts"),
                TripCondition::ConnectErrors => s.push_str(" connect-errors"),
                TripCondition::Status(r) => write!(s, " status {r}").unwrap_or(()),
                TripCondition::SlowerThan(d) => write!(s, " slower than {d}").unwrap_or(()),
            }
            s
        }),
        BreakerItem::Count { failures, within } => {
            format!("count {} in {}", failures.value, within.value)
        }
        BreakerItem::Percent {
            percent,
            min,
            within,
        } => format!(
            "percent {} min {} in {}",
            percent.value, min.value, within.value
        ),
        BreakerItem::Open(d) => format!("open {}", d.value),
        BreakerItem::Probes(n) => format!("probes {}", n.value),
        BreakerItem::Downgrade(Downgrade::Mock(m)) => format!("downgrade {}", mock(m)),
        BreakerItem::Downgrade(Downgrade::Backend(b)) => format!("downgrade backend {}", b.value),
        BreakerItem::Downgrade(Downgrade::Unavailable) => "downgrade unavailable".to_string(),
    };
    Node::line(head, item.span)
}

fn app_item(item: &Spanned<AppItem>) -> Node {
    let head = match &item.value {
        AppItem::Key(k) => format!("key {}", quote(&k.value)),
        AppItem::Secret(s) => format!("secret {}", secret(s)),
        AppItem::AppCode(s) => format!("appcode {}", secret(s)),
        AppItem::TrustedIps(a) => format!("trusted ips{}", addrs(a)),
        AppItem::Quota(q) => quota(q),
        AppItem::Rate(r) => rate(r),
        AppItem::Frozen => "frozen".to_string(),
        AppItem::ApiKey(h) => format!("apikey sha256 {}", quote(&h.value)),
        AppItem::Password(h) => format!("password argon2 {}", quote(&h.value)),
    };
    Node::line(head, item.span)
}

fn plan_item(item: &Spanned<PlanItem>) -> Node {
    let head = match &item.value {
        PlanItem::Apps(a) => format!("apps{}", words(a)),
        PlanItem::Rate(r) => rate(r),
        PlanItem::Quota(q) => quota(q),
    };
    Node::line(head, item.span)
}

fn auth_item(item: &Spanned<AuthItem>) -> Node {
    let head = match &item.value {
        AuthItem::Algorithms(a) => format!("algorithms{}", words(a)),
        AuthItem::ClockSkew(d) => format!("clock skew {}", d.value),
        AuthItem::Region(r) => format!("region {}", quote(&r.value)),
        AuthItem::Group(g) => format!("group {}", quote(&g.value)),
        AuthItem::Variant(v) => format!("variant {}", v.value),
        AuthItem::Key(s) => format!("key {}", secret(s)),
        AuthItem::Jwks(s) => format!("jwks {}", secret(s)),
        AuthItem::Issuer(s) => format!("issuer {}", quote(&s.value)),
        AuthItem::Audience(a) => format!("audience{}", strings(a)),
        AuthItem::Leeway(d) => format!("leeway {}", d.value),
        AuthItem::TokenFrom(TokenSource::Header { name, bearer }) => format!(
            "token from header {}{}",
            quote(&name.value),
            if *bearer { " bearer" } else { "" }
        ),
        AuthItem::TokenFrom(TokenSource::Query(q)) => {
            format!("token from query {}", quote(&q.value))
        }
        AuthItem::TokenFrom(TokenSource::Cookie(c)) => {
            format!("token from cookie {}", quote(&c.value))
        }
        AuthItem::Url(u) => format!("url {}", quote(&u.value)),
        AuthItem::Timeout(d) => format!("timeout {}", d.value),
        AuthItem::Cache(d) => format!("cache {}", d.value),
        AuthItem::Identity(h) => format!("identity header{}", strings(h)),
        AuthItem::Path(p) => format!("path {}", quote(&p.value)),
        AuthItem::AccessTtl(d) => format!("access ttl {}", d.value),
        AuthItem::RefreshTtl(d) => format!("refresh ttl {}", d.value),
        AuthItem::SigningKey(s) => format!("signing key {}", secret(s)),
        AuthItem::AllowAppcode => "allow appcode".to_string(),
        AuthItem::HideCredentials => "hide credentials".to_string(),
    };
    Node::line(head, item.span)
}

fn route_item(item: &Spanned<RouteItem>) -> Node {
    let head = match &item.value {
        RouteItem::Stages(s) => format!("stages{}", words(s)),
        RouteItem::Protocols(p) => format!("protocols{}", words(p)),
        RouteItem::Auth(RouteAuth::None) => "auth none".to_string(),
        RouteItem::Auth(RouteAuth::Provider {
            provider,
            apps,
            claims,
        }) => {
            let mut head = format!("auth {}", provider.value);
            if let Some(apps) = apps {
                write!(head, " apps{}", words(apps)).ok();
            }
            for c in claims {
                write!(
                    head,
                    " claim {}{}",
                    quote(&c.name.value),
                    strings(&c.values)
                )
                .ok();
            }
            head
        }
        RouteItem::Param(p) => {
            let mut head = format!(
                "{} {} {}",
                if p.required { "require" } else { "optional" },
                p.location.value,
                quote(&p.name.value)
            );
            if let Some(ty) = &p.ty {
                write!(head, " {}", ty.value).ok();
            }
            head
        }
        RouteItem::Cors(clauses) => {
            let mut head = "cors".to_string();
            for c in clauses {
                match &c.value {
                    CorsClause::Origins(o) => write!(head, " origins{}", strings(o)),
                    CorsClause::Methods(m) => write!(head, " methods{}", words(m)),
                    CorsClause::Headers(h) => write!(head, " headers{}", strings(h)),
                    CorsClause::Expose(h) => write!(head, " expose{}", strings(h)),
                    CorsClause::Credentials => write!(head, " credentials"),
                    CorsClause::MaxAge(d) => write!(head, " max-age {}", d.value),
                }
                .ok();
            }
            head
        }
        RouteItem::AllowIps(a) => format!("allow ips{}", addrs(a)),
        RouteItem::DenyIps(a) => format!("deny ips{}", addrs(a)),
        RouteItem::Rate(r) => rate(r),
        RouteItem::Throttle(name) => format!("throttle {}", name.value),
        RouteItem::WebSocket => "websocket".to_string(),
        RouteItem::Limits(l) => return limits(l, item.span),
        RouteItem::ResponseHeader { name, value } => format!(
            "response header {} {}",
            quote(&name.value),
            quote(&value.value)
        ),
        RouteItem::Mock(m) => mock(m),
        RouteItem::Forward(f) => forward(f),
        RouteItem::IssueTokens(p) => format!("issue tokens {}", p.value),
        RouteItem::Upstream(u) => return upstream(u, item.span),
    };
    Node::line(head, item.span)
}

fn forward(f: &Forward) -> String {
    let mut head = format!("forward {}", f.backend.value);
    if let Some(p) = &f.path {
        write!(head, " path {}", quote(&p.value.to_string())).ok();
    }
    head
}

fn mock(m: &Mock) -> String {
    let mut head = format!("mock {}", m.status.value);
    match &m.body {
        None => {}
        Some(MockBody::Json(v)) => {
            head.push_str(" json ");
            json(&mut head, v);
        }
        Some(MockBody::Text(t)) => write!(head, " text {}", quote(&t.value)).unwrap(),
    }
    head
}

/// A backend-request statement: one line, or a block for policies and orchestration.
fn upstream(u: &Upstream, span: Span) -> Node {
    let head = match u {
        Upstream::Param(p) => {
            let value = match &p.value.value {
                ParamValue::Request { location, name } => {
                    format!("from {} {}", location.value, quote(&name.value))
                }
                ParamValue::Constant(c) => format!("constant {}", quote(&c.value)),
                ParamValue::System(v) => match v {
                    SystemValue::Claim(n) | SystemValue::Authorizer(n) => {
                        format!("system {} {}", v.name(), quote(&n.value))
                    }
                    _ => format!("system {}", v.name()),
                },
            };
            format!(
                "backend {} {} {value}",
                p.location.value.name(),
                quote(&p.name.value)
            )
        }
        Upstream::Remove { location, name } => {
            format!("remove {} {}", location.value.name(), quote(&name.value))
        }
        Upstream::ParametersOnly => "backend parameters only".to_string(),
        Upstream::ResponseHeader(e) => {
            let mut head = format!(
                "backend response header {} {}",
                e.edit.value.name(),
                quote(&e.name.value)
            );
            if let Some(v) = &e.value {
                write!(head, " {}", quote(&v.value)).ok();
            }
            head
        }
        Upstream::Policy(p) => {
            let head = format!("policy {}{}", p.name.value, if p.any { " any" } else { "" });
            return Node::block(head, span, p.items.iter().map(policy_item).collect());
        }
        Upstream::Orchestrate(o) => {
            let head = format!(
                "orchestrate {} {} into {} {}",
                o.from_location.value,
                quote(&o.from.value),
                o.into_location.value.name(),
                quote(&o.into.value)
            );
            let body = o
                .rules
                .iter()
                .map(|r| Node::line(orchestration_rule(&r.value), r.span))
                .collect();
            return Node::block(head, span, body);
        }
    };
    Node::line(head, span)
}

fn policy_item(item: &Spanned<PolicyItem>) -> Node {
    let head = match &item.value {
        PolicyItem::When(Condition::Source(a)) => format!("when source{}", addrs(a)),
        PolicyItem::When(Condition::Value {
            subject,
            name,
            test,
        }) => {
            let test = match &test.value {
                ValueTest::Is(v) => format!("is {}", quote(&v.value)),
                ValueTest::In(v) => format!("in{}", strings(v)),
                ValueTest::Matches(v) => format!("matches {}", quote(&v.value)),
            };
            format!(
                "when {} {} {test}",
                subject.value.name(),
                quote(&name.value)
            )
        }
        PolicyItem::Upstream(u) => return upstream(u, item.span),
        PolicyItem::Forward(f) => forward(f),
        PolicyItem::Mock(m) => mock(m),
    };
    Node::line(head, item.span)
}

/// An orchestration rule as written (also the trace's text for the rule that matched).
pub fn orchestration_rule(r: &OrchestrationRule) -> String {
    let rule = match &r.kind {
        OrchestrationKind::List { values, to } => {
            format!("list{} to {}", strings(values), quote(&to.value))
        }
        OrchestrationKind::Range { range, to } => {
            format!("range {} to {}", range.value, quote(&to.value))
        }
        OrchestrationKind::Hash => "hash".to_string(),
        OrchestrationKind::HashRange { range, to } => {
            format!("hash range {} to {}", range.value, quote(&to.value))
        }
        OrchestrationKind::Head(n) => format!("head {}", n.value),
        OrchestrationKind::Tail(n) => format!("tail {}", n.value),
        OrchestrationKind::Empty(v) => format!("empty to {}", quote(&v.value)),
        OrchestrationKind::Default(v) => format!("default {}", quote(&v.value)),
    };
    if r.pre {
        format!("pre {rule}")
    } else {
        rule
    }
}

/// ` a b c`: each value after a space, so callers write `format!("hosts{}", …)`.
fn words<T: std::fmt::Display>(items: &[Spanned<T>]) -> String {
    items.iter().fold(String::new(), |mut s, i| {
        write!(s, " {}", i.value).ok();
        s
    })
}

fn strings(items: &[Spanned<String>]) -> String {
    items.iter().fold(String::new(), |mut s, i| {
        write!(s, " {}", quote(&i.value)).ok();
        s
    })
}

fn addrs(items: &[Spanned<IpNet>]) -> String {
    items.iter().fold(String::new(), |mut s, i| {
        write!(s, " {}", addr(&i.value)).ok();
        s
    })
}

/// A single address prints without its `/32` or `/128`, as it is usually written.
fn addr(net: &IpNet) -> String {
    if net.prefix_len() == net.max_prefix_len() {
        net.addr().to_string()
    } else {
        net.to_string()
    }
}

fn secret(s: &SecretRef) -> String {
    let source = match s.source {
        SecretSource::Env => "env",
        SecretSource::File => "file",
    };
    format!("{source} {}", quote(&s.name.value))
}

fn quota(q: &Quota) -> String {
    let period = match q.period.value {
        QuotaPeriod::Day => "day",
        QuotaPeriod::Month => "month",
    };
    let mut s = format!("quota {} per {period}", q.limit.value);
    if let Some(z) = &q.zone {
        write!(s, " in {}", quote(&z.value)).unwrap();
    }
    s.push_str(store_error(q.on_store_error.as_ref()));
    s
}

fn rate_key(k: &RateKey) -> String {
    match k {
        RateKey::App => "per app".to_string(),
        RateKey::Ip => "per ip".to_string(),
        RateKey::Route => "per route".to_string(),
        RateKey::Header(h) => format!("per header {}", quote(h)),
        RateKey::Query(q) => format!("per query {}", quote(q)),
    }
}

fn throttle_item(item: &Spanned<ThrottleItem>) -> Node {
    let text = match &item.value {
        ThrottleItem::Rate(r) => rate(r),
        ThrottleItem::Per { key, limit } => format!("{} {}", rate_key(&key.value), limit.value),
        ThrottleItem::Except { who, limit } => match &who.value {
            ExceptWho::App(app) => format!("except app {} {}", app.value, limit.value),
            ExceptWho::Ip(ip) => format!("except ip {} {}", addr(ip), limit.value),
        },
        ThrottleItem::Shared => "shared".to_string(),
    };
    Node::line(text, item.span)
}

fn store_error(e: Option<&Spanned<StoreErrorPolicy>>) -> &'static str {
    match e.map(|e| e.value) {
        None => "",
        Some(StoreErrorPolicy::Allow) => " on store error allow",
        Some(StoreErrorPolicy::Deny) => " on store error deny",
    }
}

fn rate(r: &Rate) -> String {
    let mut s = format!("rate {} per {}", r.limit.value, r.period.value.written());
    if let Some(k) = &r.key {
        write!(s, " {}", rate_key(&k.value)).unwrap();
    }
    if let Some(b) = &r.burst {
        write!(s, " burst {}", b.value).ok();
    }
    s.push_str(store_error(r.on_store_error.as_ref()));
    s
}

/// Compact one-line JSON with a space after `:` and `,`, keys in the author's order.
fn json(out: &mut String, v: &serde_json::Value) {
    use serde_json::Value;
    match v {
        Value::Null => out.push_str("null"),
        Value::Bool(b) => write!(out, "{b}").unwrap(),
        Value::Number(n) => write!(out, "{n}").unwrap(),
        // serde_json escapes `"`, `\` and control characters, so the text stays on one line
        // and is a valid policy string too.
        Value::String(s) => json_string(out, s),
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                json(out, item);
            }
            out.push(']');
        }
        Value::Object(map) => {
            out.push('{');
            for (i, (k, item)) in map.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                json_string(out, k);
                out.push_str(": ");
                json(out, item);
            }
            out.push('}');
        }
    }
}

fn json_string(out: &mut String, s: &str) {
    out.push_str(&serde_json::Value::from(s).to_string());
}

// ---------------------------------------------------------------------------------------------
// Printing with comments and blank lines

struct Printer<'s, 'a> {
    out: String,
    src: Option<&'s Source<'a>>,
    /// Index of the first comment not yet printed.
    next: usize,
}

impl Printer<'_, '_> {
    fn file(&mut self, nodes: &[Node], end: usize) {
        if self.src.is_none() {
            for (i, n) in nodes.iter().enumerate() {
                if i > 0 {
                    self.out.push('\n');
                }
                self.node(n, 0, 0);
            }
            return;
        }
        self.items(nodes, 0, end);
    }

    fn finish(mut self) -> String {
        while self.out.ends_with("\n\n") {
            self.out.pop();
        }
        self.out
    }

    /// The next unprinted comment if it starts before `limit`.
    fn comment_before(&self, limit: usize) -> Option<&Comment> {
        let src = self.src?;
        src.comments.get(self.next).filter(|c| c.start < limit)
    }

    fn indent(&mut self, depth: usize) {
        for _ in 0..depth {
            self.out.push_str(INDENT);
        }
    }

    /// One blank line where the source had at least one between two printed pieces.
    fn gap(&mut self, prev_end_line: Option<usize>, next_line: usize) {
        if let (Some(src), Some(prev)) = (self.src, prev_end_line) {
            if src.blank_between(prev, next_line) {
                self.out.push('\n');
            }
        }
    }

    fn own_line_comment(&mut self, depth: usize, prev_end_line: &mut Option<usize>) {
        let c = self.src.unwrap().comments[self.next].clone();
        self.next += 1;
        self.gap(*prev_end_line, c.line);
        self.indent(depth);
        self.out.push_str(&c.text);
        self.out.push('\n');
        *prev_end_line = Some(c.line);
    }

    /// The statements of one block (or the file), with their comments. `limit` is the offset
    /// of the block's `}` (or the end of the file): comments before it belong inside.
    fn items(&mut self, nodes: &[Node], depth: usize, limit: usize) {
        let mut prev_end_line = None;
        for n in nodes {
            let start = n.span.start as usize;
            while self.comment_before(start).is_some() {
                self.own_line_comment(depth, &mut prev_end_line);
            }
            if let Some(src) = self.src {
                self.gap(prev_end_line, src.line(start));
                prev_end_line = Some(src.end_line(self.span(n)));
            }
            self.node(n, depth, limit);
        }
        while self.comment_before(limit).is_some() {
            self.own_line_comment(depth, &mut prev_end_line);
        }
    }

    /// The node's span as far as its text goes (see [`Source::statement_span`]); a block's
    /// span ends at its `}` already.
    fn span(&self, n: &Node) -> Span {
        match (self.src, &n.body) {
            (Some(src), None) => src.statement_span(n.span),
            _ => n.span,
        }
    }

    /// A comment after the end of `span` on its last line, and before `limit`.
    fn trailing(&mut self, span: Span, limit: usize) {
        let Some(src) = self.src else { return };
        let Some(c) = src.comments.get(self.next) else {
            return;
        };
        if c.start >= span.end as usize && c.start < limit && c.line == src.end_line(span) {
            self.out.push_str("  ");
            self.out.push_str(&c.text);
            self.next += 1;
        }
    }

    fn node(&mut self, n: &Node, depth: usize, limit: usize) {
        self.indent(depth);
        self.out.push_str(&n.head);
        let Some(body) = &n.body else {
            self.trailing(self.span(n), limit);
            self.out.push('\n');
            return;
        };
        // The block's `}` is the last byte of its span.
        let close = (n.span.end as usize).saturating_sub(1);
        if body.is_empty() && self.comment_before(close).is_none() {
            self.out.push_str(" {}");
            self.trailing(n.span, limit);
            self.out.push('\n');
            return;
        }
        self.out.push_str(" {");
        if let Some(src) = self.src {
            // A comment on the line of the opening brace stays there (unless a statement
            // follows the brace on that line: then the comment trails the statement).
            let open = src.open_brace(n.span.start as usize, close);
            let brace = Span {
                file: n.span.file,
                start: open as u32,
                end: open as u32 + 1,
            };
            let first = body.first().map_or(close, |c| c.span.start as usize);
            self.trailing(brace, first);
        }
        self.out.push('\n');
        self.items(body, depth + 1, close);
        self.indent(depth);
        self.out.push('}');
        self.trailing(n.span, limit);
        self.out.push('\n');
    }
}
