//! Text → AST. pest recognises the shape (grammar/policy.pest); this module types every value
//! and turns each recovered `bad_stmt` into a precise diagnostic, so one run reports every
//! problem in the file.

use super::ast::*;
use super::diag::{self, did_you_mean, Diagnostic};
use super::fmt::quote;
use crate::vocab::{Dialect, Method, ParamLocation, Protocol};
use ipnet::IpNet;
use pest::iterators::Pair;
use pest::Parser as _;
use std::net::IpAddr;

mod backend;
mod chunks;
use chunks::parse_by_statement;
pub mod upstream;
use upstream::is_upstream;
pub use upstream::reserved as reserved_backend_name;

#[derive(pest_derive::Parser)]
#[grammar = "../grammar/policy.pest"]
pub struct PolicyParser;

/// The result of parsing one file: the AST of everything that parsed (absent only when the
/// file's structure is too broken to recover), and every diagnostic found.
pub struct Parsed {
    pub file: Option<File>,
    pub diagnostics: Vec<Diagnostic>,
}

/// Parse one policy file. `file_id` is its index in the `Sources` the spans refer to.
pub fn parse_file(file_id: u32, text: &str) -> Parsed {
    if let Some(d) = check_braces(file_id, text) {
        return Parsed {
            file: None,
            diagnostics: vec![d],
        };
    }
    parse_by_statement(file_id, text).unwrap_or_else(|| parse_whole(file_id, text))
}

/// The file parsed in one go: the reference [`parse_by_statement`] must agree with, and the
/// way every file that is not a sequence of well-formed statements is parsed.
fn parse_whole(file_id: u32, text: &str) -> Parsed {
    match PolicyParser::parse(Rule::file, text) {
        Err(e) => Parsed {
            file: None,
            diagnostics: vec![pest_error(file_id, text, e)],
        },
        Ok(mut pairs) => {
            let mut lower = Lower::new(file_id);
            let file = lower.file(pairs.next().expect("file rule"));
            Parsed {
                file: Some(file),
                diagnostics: lower.diags,
            }
        }
    }
}

/// How deep `{` and `[` may nest. Parsing recurses once per level (blocks, JSON bodies), and
/// pest runs here without its stack probe (a fifth of all parse time), so the depth is
/// bounded before pest starts: 64 is ten times what a policy with a nested JSON mock needs,
/// and parses in well under the 2 MiB stack of a spawned thread (see the test).
pub const MAX_NESTING: usize = 64;

/// Braces are checked before parsing: an unclosed `{` would otherwise make every later line a
/// confusing error of its own; and so is the depth of nesting (see [`MAX_NESTING`]).
fn check_braces(file: u32, text: &str) -> Option<Diagnostic> {
    let mut stack: Vec<usize> = Vec::new();
    let mut brackets = 0usize;
    let bytes = text.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'#' => {
                while i < bytes.len() && bytes[i] != b'\n' && bytes[i] != b'\r' {
                    i += 1;
                }
            }
            b'"' => {
                i += 1;
                while i < bytes.len() && bytes[i] != b'"' && bytes[i] != b'\n' && bytes[i] != b'\r'
                {
                    if bytes[i] == b'\\' {
                        i += 1;
                    }
                    i += 1;
                }
            }
            b'{' | b'[' if stack.len() + brackets == MAX_NESTING => {
                return Some(
                    Diagnostic::error(
                        diag::TOO_DEEP,
                        Span::new(file, i, i + 1),
                        "nested too deeply",
                    )
                    .label(format!("the {}th level of `{{` and `[`", MAX_NESTING + 1))
                    .help(format!(
                        "blocks and JSON values nest at most {MAX_NESTING} deep"
                    )),
                );
            }
            b'{' => stack.push(i),
            b'[' => brackets += 1,
            b']' => brackets = brackets.saturating_sub(1),
            b'}' if stack.pop().is_none() => {
                return Some(
                    Diagnostic::error(
                        diag::UNBALANCED,
                        Span::new(file, i, i + 1),
                        "unexpected `}`",
                    )
                    .label("this closes no block")
                    .help("remove it, or open the block it was meant to close"),
                );
            }
            _ => {}
        }
        i += 1;
    }
    stack.pop().map(|open| {
        Diagnostic::error(
            diag::UNBALANCED,
            Span::new(file, open, open + 1),
            "unclosed `{`",
        )
        .label("this block is never closed")
        .help("add the missing `}`")
    })
}

/// pest's error as a diagnostic. A position becomes the character there (none at the end of
/// the file), so the span never ends past the text or inside a character.
fn pest_error(file: u32, text: &str, e: pest::error::Error<Rule>) -> Diagnostic {
    let (start, end) = match e.location {
        pest::error::InputLocation::Pos(p) => {
            let width = text
                .get(p..)
                .and_then(|t| t.chars().next())
                .map_or(0, char::len_utf8);
            (p, p + width)
        }
        pest::error::InputLocation::Span((s, e)) => (s, e),
    };
    let e = e.renamed_rules(|r| rule_name(*r));
    let message = match &e.variant {
        pest::error::ErrorVariant::ParsingError { .. } => e.variant.message().into_owned(),
        pest::error::ErrorVariant::CustomError { message } => message.clone(),
    };
    Diagnostic::error(diag::SYNTAX, Span::new(file, start, end), "syntax error")
        .label(message)
        .help("statements end at a new line or `;`; blocks are `{ … }`")
}

fn rule_name(r: Rule) -> String {
    if r == Rule::EOI {
        // after a complete statement, the only thing that may follow is its end
        return "a new line or `;`".to_string();
    }
    let s = format!("{r:?}");
    match s.strip_prefix("kw_") {
        Some(kw) => format!("`{}`", kw.replace('_', "-")),
        None => s.replace('_', " "),
    }
}

// ---------------------------------------------------------------------------------------------
// Keywords and usage per block, for recovery diagnostics (and the language server's hover and
// completion, `crate::lsp`, which reads the same table).

/// A kind of block: where a statement stands decides which keywords it may start with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Block {
    Top,
    Service,
    Backend,
    App,
    Plan,
    Auth,
    Route,
    Policy,
    Orchestrate,
    Breaker,
    GatewayResponse,
    Throttle,
}

impl Block {
    /// "in a route block": where a statement stands, for messages.
    pub fn name(self) -> &'static str {
        match self {
            Block::Top => "at the top level of a file",
            Block::Service => "in a service block",
            Block::Backend => "in a backend block",
            Block::App => "in an app block",
            Block::Plan => "in a plan block",
            Block::Auth => "in an auth block",
            Block::Route => "in a route block",
            Block::Policy => "in a policy block",
            Block::Orchestrate => "in an orchestrate block",
            Block::Breaker => "in a breaker block",
            Block::GatewayResponse => "in a gateway response block",
            Block::Throttle => "in a throttle block",
        }
    }

    /// (keyword, usage) for each statement this block takes. `DIALECT` stands for the
    /// dialects' names (see `usage_text`).
    pub fn statements(self) -> &'static [(&'static str, &'static str)] {
        match self {
            Block::Top => &[
                ("service", "service NAME { … }"),
                ("throttle", "throttle NAME { rate N per WINDOW  per app|ip|header \"NAME\"|query \"NAME\" N  except app NAME N  except ip CIDR N  shared }"),
                ("default", "default dialect DIALECT"),
            ],
            Block::Service => &[
                ("dialect", "dialect DIALECT"),
                ("hosts", "hosts \"HOST\"…"),
                ("protocols", "protocols http|https…"),
                ("stages", "stages NAME… from header \"NAME\" [default NAME]  |  stages NAME… from path"),
                ("limits", "limits { body SIZE  uri SIZE  header SIZE  headers SIZE }"),
                ("backend", "backend NAME { targets \"URL\"… … }"),
                ("app", "app NAME { key \"KEY\"  secret env|file \"NAME\" … }"),
                ("auth", "auth NAME keypair|app-signature|jd-signature|jwt|authorizer|oauth2 { … }"),
                ("plan", "plan NAME { apps NAME…  rate …  quota … }"),
                ("route", "route METHOD… \"PATH\" { … }"),
                ("allow", "allow ips CIDR…"),
                ("deny", "deny ips CIDR…"),
                ("trusted", "trusted proxies CIDR…"),
                ("request", "request id from header \"NAME\""),
                ("client", "client certificate required"),
                ("throttle", "throttle NAME"),
                ("gateway", "gateway response TYPE { mock STATUS json {…}  response header \"NAME\" \"VALUE\" }"),
            ],
            Block::Backend => &[
                ("targets", "targets \"http://HOST:PORT\" [weight N]…"),
                ("timeout", "timeout DURATION"),
                ("connect", "connect timeout DURATION"),
                ("retries", "retries N [budget P%]"),
                ("balance", backend::BALANCE_USAGE),
                ("health", "health http \"/PATH\" [every DURATION] [timeout DURATION] [healthy N] [unhealthy N] [status MIN..MAX]"),
                ("passive", "passive [unhealthy N] [status MIN..MAX] [cooldown DURATION]"),
                ("breaker", "breaker { trip …  count N in DURATION | percent P min N in DURATION  open DURATION  probes N  downgrade … }"),
                ("deny", "deny ips CIDR… [except CIDR…]"),
                ("sign", "sign hmac|basic key \"KEY\" secret env|file \"NAME\""),
            ],
            Block::App => &[
                ("key", "key \"ACCESS-KEY\""),
                ("secret", "secret env \"VAR\"  |  secret file \"PATH\""),
                ("appcode", "appcode env \"VAR\"  |  appcode file \"PATH\""),
                ("trusted", "trusted ips CIDR…"),
                ("quota", "quota N per day|month"),
                ("rate", RATE_USAGE),
                ("frozen", "frozen"),
            ],
            Block::Plan => &[
                ("apps", "apps NAME…"),
                ("rate", RATE_USAGE),
                ("quota", "quota N per day|month"),
            ],
            Block::Auth => &[
                ("algorithms", "algorithms NAME…"),
                ("clock", "clock skew DURATION"),
                ("region", "region \"REGION\""),
                ("group", "group \"API-GROUP\""),
                ("variant", "variant tencent|kong"),
                ("key", "key env \"VAR\"  |  key file \"PATH\""),
                ("jwks", "jwks file \"PATH\""),
                ("issuer", "issuer \"ISS\""),
                ("audience", "audience \"AUD\"…"),
                ("leeway", "leeway DURATION"),
                ("token", "token from header \"NAME\" [bearer]  |  token from query \"NAME\"  |  token from cookie \"NAME\""),
                ("url", "url \"http://HOST:PORT/PATH\""),
                ("timeout", "timeout DURATION"),
                ("cache", "cache DURATION"),
                ("identity", "identity header \"NAME\"…"),
                ("path", "path \"/PATH\""),
                ("access", "access ttl DURATION"),
                ("refresh", "refresh ttl DURATION"),
                ("signing", "signing key env \"VAR\"  |  signing key file \"PATH\""),
                ("allow", "allow appcode"),
            ],
            Block::Route => &[
                ("stages", "stages NAME…"),
                ("protocols", "protocols http|https…"),
                ("auth", "auth none  |  auth PROVIDER [apps NAME…] [claim \"NAME\" \"VALUE\"…]…"),
                ("require", "require path|header|query|form \"NAME\" [TYPE]"),
                ("optional", "optional header|query|form \"NAME\" [TYPE]"),
                ("cors", "cors origins \"ORIGIN\"… [methods METHOD…] [headers \"NAME\"…] [expose \"NAME\"…] [credentials] [max-age DURATION]"),
                ("allow", "allow ips CIDR…"),
                ("deny", "deny ips CIDR…"),
                ("rate", RATE_USAGE),
                ("throttle", "throttle NAME"),
                ("websocket", "websocket"),
                ("limits", "limits { body SIZE }"),
                ("response", "response header \"NAME\" \"VALUE\""),
                ("mock", "mock STATUS [json JSON | text \"TEXT\"]"),
                ("forward", "forward BACKEND [path \"/PATH/{var}\"]"),
                ("issue", "issue tokens PROVIDER"),
                ("backend", BACKEND_USAGE),
                ("remove", "remove header|query \"NAME\""),
                ("policy", "policy NAME [all|any] { when …  forward BACKEND … | mock … }"),
                ("orchestrate", "orchestrate header|query|path|form \"NAME\" into header|query \"NAME\" { [pre] list|range|hash|head|tail|empty|default … }"),
            ],
            Block::Policy => &[
                ("when", "when header|query|path|form|claim|authorizer \"NAME\" is \"V\" | in \"V\"… | matches \"REGEX\"  |  when source CIDR…"),
                ("backend", BACKEND_USAGE),
                ("remove", "remove header|query \"NAME\""),
                ("forward", "forward BACKEND [path \"/PATH/{var}\"]"),
                ("mock", "mock STATUS [json JSON | text \"TEXT\"]"),
            ],
            Block::Orchestrate => &[
                ("pre", "pre list|range|hash|head|tail …"),
                ("list", "list \"VALUE\"… to \"RESULT\""),
                ("range", "range MIN..MAX to \"RESULT\""),
                ("hash", "hash  |  hash range MIN..MAX to \"RESULT\""),
                ("head", "head N"),
                ("tail", "tail N"),
                ("empty", "empty to \"RESULT\""),
                ("default", "default \"RESULT\""),
            ],
            Block::Breaker => &[
                ("trip", "trip timeouts | connect-errors | status MIN..MAX | slower than DURATION…"),
                ("count", "count N in DURATION"),
                ("percent", "percent P min N in DURATION"),
                ("open", "open DURATION"),
                ("probes", "probes N"),
                ("downgrade", "downgrade mock STATUS [json JSON | text \"TEXT\"] | downgrade backend NAME | downgrade unavailable"),
            ],
            Block::GatewayResponse => &[
                ("mock", "mock STATUS json {…}  (strings may hold $context.error.code and other variables)"),
                ("response", "response header \"NAME\" \"VALUE\""),
            ],
            Block::Throttle => &[
                ("rate", "rate N per WINDOW [burst N] [on store error allow|deny]  (the total each bound API may take; the window of every limit here)"),
                ("per", "per app|ip|header \"NAME\"|query \"NAME\" N"),
                ("except", "except app NAME N  |  except ip CIDR N"),
                ("shared", "shared"),
            ],
        }
    }

    pub const ALL: [Block; 12] = [
        Block::Top,
        Block::Service,
        Block::Backend,
        Block::App,
        Block::Plan,
        Block::Auth,
        Block::Route,
        Block::Policy,
        Block::Orchestrate,
        Block::Breaker,
        Block::GatewayResponse,
        Block::Throttle,
    ];
}

const RATE_USAGE: &str = "rate N per second|minute|hour|day|10s|5m… [per app|ip|route|header \"NAME\"|query \"NAME\"] [burst N] [on store error allow|deny]";
const BACKEND_USAGE: &str = "backend path|query|header \"NAME\" from LOCATION \"NAME\" | constant \"VALUE\" | system VALUE  |  backend parameters only  |  backend response header add|set \"NAME\" \"VALUE\"  |  backend response header remove \"NAME\"";

// ---------------------------------------------------------------------------------------------

struct Lower {
    file: u32,
    /// Where the text pest is reading starts in the file: 0 for a whole file, the piece's
    /// offset when parsing a statement at a time. Every span adds it.
    base: usize,
    diags: Vec<Diagnostic>,
}

type P<'i> = Pair<'i, Rule>;

fn children<'i>(p: &P<'i>, rule: Rule) -> impl Iterator<Item = P<'i>> {
    p.clone().into_inner().filter(move |c| c.as_rule() == rule)
}

fn child<'i>(p: &P<'i>, rule: Rule) -> Option<P<'i>> {
    children(p, rule).next()
}

/// A character of a keyword or a name, as far as recovery from a bad statement is concerned.
fn is_word_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_' || c == '-'
}

/// A statement's usage as the help shows it: `DIALECT` becomes the dialects' names
/// (`tencent|huawei|jdcloud`), so a new dialect needs no edit here.
/// A usage line of [`Block::statements`] as users read it (`DIALECT` spelled out).
pub fn usage_text(usage: &str) -> String {
    usage.replace("DIALECT", &Dialect::ALL.map(Dialect::name).join("|"))
}

fn has(p: &P<'_>, rule: Rule) -> bool {
    child(p, rule).is_some()
}

impl Lower {
    /// The pair's span without trailing whitespace or a trailing comment: pest lets an absent
    /// optional at the end of a rule keep the whitespace it skipped, and a diagnostic must
    /// underline the statement, not the comment after it.
    fn span(&self, p: &P<'_>) -> Span {
        let s = p.as_span();
        let start = self.base + s.start();
        Span::new(self.file, start, start + content_len(s.as_str()))
    }

    fn new(file: u32) -> Self {
        Lower {
            file,
            base: 0,
            diags: Vec::new(),
        }
    }

    fn err(&mut self, d: Diagnostic) {
        self.diags.push(d);
    }

    fn file(&mut self, p: P<'_>) -> File {
        let mut items = Vec::new();
        for c in p.into_inner() {
            self.top_item(c, &mut items);
        }
        File { items }
    }

    fn top_item(&mut self, c: P<'_>, items: &mut Vec<Spanned<TopItem>>) {
        let span = self.span(&c);
        match c.as_rule() {
            Rule::service => items.push(Spanned::new(TopItem::Service(self.service(c)), span)),
            Rule::throttle_block => {
                items.push(Spanned::new(TopItem::Throttle(self.throttle(c)), span))
            }
            Rule::default_dialect_stmt => {
                if let Some(d) = self.dialect(child(&c, Rule::ident).unwrap()) {
                    items.push(Spanned::new(TopItem::DefaultDialect(d), span));
                }
            }
            Rule::bad_stmt => self.bad(c, Block::Top),
            _ => {}
        }
    }

    /// A statement the block's grammar did not accept.
    fn bad(&mut self, p: P<'_>, block: Block) {
        let at = self.diags.len();
        self.bad_statement(&p, block);
        let secret = self.secret_text(&p);
        for d in &mut self.diags[at..] {
            d.conceal.extend(secret.iter().copied());
        }
    }

    /// What may be a secret in a statement that did not parse: after each word that is, or
    /// nearly is, one of the statements that take a secret reference (`secret "…"` written
    /// inline, `secert=…`, a one-line block holding either), the rest of its line; and the
    /// first line of a statement that starts with a value rather than a word.
    fn secret_text(&self, p: &P<'_>) -> Vec<Span> {
        const TAKE_SECRETS: [&str; 5] = ["secret", "appcode", "key", "jwks", "signing"];
        let (text, base) = (p.as_str(), self.base + p.as_span().start());
        let is_word = is_word_char;
        let mut spans = Vec::new();
        let mut i = 0;
        if !text.starts_with(is_word) {
            // a value where the keyword should be: its line
            i = text.find('\n').unwrap_or(text.len());
            spans.push(Span::new(self.file, base, base + i));
        }
        while let Some(start) = text[i..].find(is_word).map(|s| s + i) {
            let end = text[start..]
                .find(|c| !is_word(c))
                .map_or(text.len(), |e| e + start);
            i = end;
            if diag::closest(&text[start..end], TAKE_SECRETS).is_some() {
                i = text[end..].find('\n').map_or(text.len(), |e| e + end);
                if end < i {
                    spans.push(Span::new(self.file, base + end, base + i));
                }
            }
        }
        spans
    }

    fn bad_statement(&mut self, p: &P<'_>, block: Block) {
        let span = self.span(p);
        let head = child(p, Rule::bad_head).unwrap();
        let head_span = self.span(&head);
        // The word the statement starts with, not what is glued to it (`secret="…"`): the
        // rest may be a secret, and the word alone is what a keyword is matched against.
        let word = match head.as_str().find(|c: char| !is_word_char(c)) {
            Some(0) | None => head.as_str(),
            Some(end) => &head.as_str()[..end],
        };
        if let Some((_, usage)) = block.statements().iter().find(|(k, _)| *k == word) {
            self.err(
                Diagnostic::error(
                    diag::MALFORMED,
                    span,
                    format!("malformed `{word}` statement"),
                )
                .label("this does not match the statement's form")
                .help(format!("expected: {}", usage_text(usage))),
            );
            return;
        }
        let elsewhere: Vec<&str> = Block::ALL
            .iter()
            .filter(|b| b.statements().iter().any(|(k, _)| *k == word))
            .map(|b| b.name())
            .collect();
        if !elsewhere.is_empty() {
            self.err(
                Diagnostic::error(
                    diag::NOT_APPLICABLE,
                    head_span,
                    format!("`{word}` is not allowed {}", block.name()),
                )
                .label("not allowed here")
                .help(format!("`{word}` belongs {}", elsewhere.join(" or "))),
            );
            return;
        }
        let keywords = block.statements().iter().map(|(k, _)| *k);
        let help = did_you_mean(word, keywords).unwrap_or_else(|| {
            let list: Vec<String> = block
                .statements()
                .iter()
                .map(|(k, _)| format!("`{k}`"))
                .collect();
            format!("statements {} are: {}", block.name(), list.join(", "))
        });
        // Not even a word (`"hunter2"` on a line of its own): a value, maybe a secret, so it
        // is not repeated.
        let message = match word.starts_with(is_word_char) {
            true => format!("unknown keyword `{word}`"),
            false => "a statement must start with a keyword".to_string(),
        };
        self.err(
            Diagnostic::error(diag::UNKNOWN_KEYWORD, head_span, message)
                .label("not a keyword here")
                .help(help),
        );
    }

    // -----------------------------------------------------------------------------------------
    // Values

    fn ident(&self, p: P<'_>) -> Ident {
        Spanned::new(p.as_str().to_string(), self.span(&p))
    }

    fn string(&mut self, p: P<'_>) -> Spanned<String> {
        let span = self.span(&p);
        let raw = p.as_str();
        let inner = &raw[1..raw.len() - 1];
        match unescape(inner) {
            Ok(s) => Spanned::new(s, span),
            Err((bad, msg)) => {
                let at = span.start as usize + 1;
                self.err(
                    Diagnostic::error(
                        diag::BAD_ESCAPE,
                        Span::new(self.file, at + bad.start, at + bad.end),
                        "invalid escape in string",
                    )
                    .label(msg)
                    .help("valid escapes are \\\" \\\\ \\/ \\n \\r \\t \\b \\f \\uXXXX"),
                );
                Spanned::new(inner.to_string(), span)
            }
        }
    }

    fn strings(&mut self, p: &P<'_>) -> Vec<Spanned<String>> {
        children(p, Rule::string).map(|s| self.string(s)).collect()
    }

    fn int<T: TryFrom<u64>>(
        &mut self,
        p: P<'_>,
        what: &str,
        min: u64,
        max: u64,
    ) -> Option<Spanned<T>> {
        let span = self.span(&p);
        match p.as_str().parse::<u64>() {
            Ok(v) if (min..=max).contains(&v) => T::try_from(v).ok().map(|v| Spanned::new(v, span)),
            _ => {
                self.err(
                    Diagnostic::error(diag::OUT_OF_RANGE, span, format!("{what} out of range"))
                        .label(format!("must be between {min} and {max}")),
                );
                None
            }
        }
    }

    /// Splits `12MiB` into (12, "MiB"), reporting fractions and missing units.
    fn quantity<'a>(&mut self, p: &P<'a>, what: &str, units: &str) -> Option<(u64, &'a str, Span)> {
        let span = self.span(p);
        let text = p.as_str();
        let digits = text
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(text.len());
        let (num, unit) = text.split_at(digits);
        if unit.starts_with('.') {
            self.err(
                Diagnostic::error(diag::BAD_UNIT, span, format!("fractional {what}"))
                    .label("fractions are not allowed")
                    .help(format!("use a smaller unit ({units})")),
            );
            return None;
        }
        if unit.is_empty() {
            self.err(
                Diagnostic::error(diag::BAD_UNIT, span, format!("{what} without a unit"))
                    .label("a unit is required")
                    .help(format!(
                        "write e.g. `{num}{}`; units: {units}",
                        units.split(", ").nth(1).unwrap_or("s")
                    )),
            );
            return None;
        }
        match num.parse::<u64>() {
            Ok(n) => Some((n, unit, span)),
            Err(_) => {
                self.err(
                    Diagnostic::error(diag::OUT_OF_RANGE, span, format!("{what} too large"))
                        .label("does not fit"),
                );
                None
            }
        }
    }

    fn size(&mut self, p: P<'_>) -> Option<Spanned<Size>> {
        let names: Vec<&str> = SizeUnit::ALL.iter().map(|u| u.name()).collect();
        let (n, unit, span) = self.quantity(&p, "size", &names.join(", "))?;
        let Some(u) = SizeUnit::ALL.into_iter().find(|u| u.name() == unit) else {
            self.err(
                Diagnostic::error(diag::BAD_UNIT, span, format!("unknown size unit `{unit}`"))
                    .label("not a size unit")
                    .help(
                        did_you_mean(unit, names.iter().copied())
                            .unwrap_or_else(|| format!("size units: {}", names.join(", "))),
                    ),
            );
            return None;
        };
        match n.checked_mul(u.bytes()) {
            Some(bytes) => Some(Spanned::new(Size { bytes, unit: u }, span)),
            None => {
                self.err(
                    Diagnostic::error(diag::OUT_OF_RANGE, span, "size too large")
                        .label("does not fit in 64 bits"),
                );
                None
            }
        }
    }

    fn duration(&mut self, p: P<'_>) -> Option<Spanned<Duration>> {
        let names: Vec<&str> = DurationUnit::ALL.iter().map(|u| u.name()).collect();
        let (n, unit, span) = self.quantity(&p, "duration", &names.join(", "))?;
        let Some(u) = DurationUnit::ALL.into_iter().find(|u| u.name() == unit) else {
            self.err(
                Diagnostic::error(
                    diag::BAD_UNIT,
                    span,
                    format!("unknown duration unit `{unit}`"),
                )
                .label("not a duration unit")
                .help(
                    did_you_mean(unit, names.iter().copied())
                        .unwrap_or_else(|| format!("duration units: {}", names.join(", "))),
                ),
            );
            return None;
        };
        match n.checked_mul(u.millis()) {
            Some(millis) => Some(Spanned::new(Duration { millis, unit: u }, span)),
            None => {
                self.err(
                    Diagnostic::error(diag::OUT_OF_RANGE, span, "duration too large")
                        .label("does not fit"),
                );
                None
            }
        }
    }

    /// A word that must be one of `values`; reports the closest on a miss.
    fn choice<T: Copy>(
        &mut self,
        p: &P<'_>,
        what: &str,
        values: &[(&str, T)],
    ) -> Option<Spanned<T>> {
        let span = self.span(p);
        let word = p.as_str();
        if let Some((_, v)) = values.iter().find(|(n, _)| *n == word) {
            return Some(Spanned::new(*v, span));
        }
        let names: Vec<&str> = values.iter().map(|(n, _)| *n).collect();
        let help = did_you_mean(word, names.iter().copied())
            .unwrap_or_else(|| format!("expected one of: {}", names.join(", ")));
        self.err(
            Diagnostic::error(
                diag::UNKNOWN_VALUE,
                span,
                format!("unknown {what} `{word}`"),
            )
            .label(format!("not {} {what}", article(what)))
            .help(help),
        );
        None
    }

    fn dialect(&mut self, p: P<'_>) -> Option<Spanned<Dialect>> {
        let values: Vec<(&str, Dialect)> = Dialect::ALL.iter().map(|d| (d.name(), *d)).collect();
        self.choice(&p, "dialect", &values)
    }

    fn method(&mut self, p: P<'_>) -> Option<Spanned<Method>> {
        let span = self.span(&p);
        let word = p.as_str();
        if let Some(m) = Method::parse(word) {
            return Some(Spanned::new(m, span));
        }
        let names: Vec<&str> = Method::ALL.iter().map(|m| m.name()).collect();
        let help = if Method::parse(&word.to_ascii_uppercase()).is_some() {
            format!(
                "methods are written in capitals: `{}`",
                word.to_ascii_uppercase()
            )
        } else {
            did_you_mean(word, names.iter().copied())
                .unwrap_or_else(|| format!("methods: {}", names.join(", ")))
        };
        self.err(
            Diagnostic::error(diag::BAD_METHOD, span, format!("unknown method `{word}`"))
                .label("not a method rulegate routes")
                .help(help),
        );
        None
    }

    fn addrs(&mut self, p: &P<'_>) -> Vec<Spanned<IpNet>> {
        children(p, Rule::addr)
            .filter_map(|a| self.addr(a))
            .collect()
    }

    fn addr(&mut self, p: P<'_>) -> Option<Spanned<IpNet>> {
        let span = self.span(&p);
        let text = p.as_str();
        let net = if text.contains('/') {
            text.parse::<IpNet>().ok()
        } else {
            text.parse::<IpAddr>().ok().map(IpNet::from)
        };
        match net {
            Some(net) if net.trunc() == net => Some(Spanned::new(net, span)),
            Some(net) => {
                self.err(
                    Diagnostic::error(diag::BAD_CIDR, span, format!("`{text}` has host bits set"))
                        .label("the address is not the network's first address")
                        .help(format!("did you mean `{}`?", net.trunc())),
                );
                None
            }
            None => {
                self.err(
                    Diagnostic::error(diag::BAD_CIDR, span, format!("invalid IP address or CIDR `{text}`"))
                        .label("not an address")
                        .help("write an address (`203.0.113.7`, `2001:db8::1`) or a CIDR (`203.0.113.0/24`)"),
                );
                None
            }
        }
    }

    fn secret_ref(&mut self, p: P<'_>) -> SecretRef {
        let source = if has(&p, Rule::kw_env) {
            SecretSource::Env
        } else {
            SecretSource::File
        };
        let name = self.string(child(&p, Rule::string).unwrap());
        SecretRef { source, name }
    }

    fn header_name(&mut self, s: &Spanned<String>) {
        if !is_token(&s.value) {
            self.err(
                Diagnostic::error(
                    diag::BAD_HEADER_NAME,
                    s.span,
                    format!("invalid header name {:?}", s.value),
                )
                .label("not an HTTP token")
                .help("header names are letters, digits and !#$%&'*+-.^_`|~"),
            );
        }
    }

    fn path_template(&mut self, s: &Spanned<String>) -> Option<Spanned<PathTemplate>> {
        match parse_template(&s.value) {
            Ok(t) => Some(Spanned::new(t, s.span)),
            Err(msg) => {
                self.err(
                    Diagnostic::error(
                        diag::BAD_PATH,
                        s.span,
                        format!("invalid path template {:?}", s.value),
                    )
                    .label(msg)
                    .help("a path is `/` or `/segment/{var}/…`, optionally ending in `{rest+}`"),
                );
                None
            }
        }
    }

    // -----------------------------------------------------------------------------------------
    // Blocks

    fn service(&mut self, p: P<'_>) -> Service {
        let name = self.ident(child(&p, Rule::ident).unwrap());
        let mut items = Vec::new();
        for c in p.into_inner() {
            items.extend(self.service_item(c));
        }
        Service { name, items }
    }

    fn service_item(&mut self, c: P<'_>) -> Option<Spanned<ServiceItem>> {
        let span = self.span(&c);
        let item = match c.as_rule() {
            Rule::dialect_stmt => self
                .dialect(child(&c, Rule::ident).unwrap())
                .map(ServiceItem::Dialect),
            Rule::hosts_stmt => Some(ServiceItem::Hosts(self.strings(&c))),
            Rule::protocols_stmt => Some(ServiceItem::Protocols(self.protocols(&c))),
            Rule::stages_stmt => Some(ServiceItem::Stages(self.stages(&c))),
            Rule::limits_block => Some(ServiceItem::Limits(self.limits(&c))),
            Rule::gateway_response_block => {
                Some(ServiceItem::GatewayResponse(self.gateway_response(c)))
            }
            Rule::backend_block => Some(ServiceItem::Backend(self.backend(c))),
            Rule::app_block => Some(ServiceItem::App(self.app(c))),
            Rule::auth_block => self.auth(c).map(ServiceItem::Auth),
            Rule::plan_block => Some(ServiceItem::Plan(self.plan(c))),
            Rule::route_block => self.route(c).map(ServiceItem::Route),
            Rule::allow_ips_stmt => Some(ServiceItem::AllowIps(self.addrs(&c))),
            Rule::deny_ips_stmt => Some(ServiceItem::DenyIps(self.addrs(&c))),
            Rule::trusted_proxies_stmt => Some(ServiceItem::TrustedProxies(self.addrs(&c))),
            Rule::request_id_stmt => {
                let s = self.string(child(&c, Rule::string).unwrap());
                self.header_name(&s);
                Some(ServiceItem::RequestIdHeader(s))
            }
            Rule::client_cert_stmt => Some(ServiceItem::ClientCertificateRequired),
            Rule::throttle_bind_stmt => Some(ServiceItem::Throttle(
                self.ident(child(&c, Rule::ident).unwrap()),
            )),
            Rule::bad_stmt => {
                self.bad(c, Block::Service);
                None
            }
            _ => None,
        };
        item.map(|item| Spanned::new(item, span))
    }

    fn gateway_response(&mut self, p: P<'_>) -> GatewayResponse {
        let mut inner = p.into_inner();
        let kind = loop {
            match inner.next() {
                Some(i) if i.as_rule() == Rule::ident => break self.ident(i),
                Some(_) => continue,
                None => unreachable!("the grammar requires the type"),
            }
        };
        let mut items = Vec::new();
        for c in inner {
            let span = self.span(&c);
            let item = match c.as_rule() {
                Rule::mock_stmt => self.mock(&c).map(GatewayResponseItem::Answer),
                Rule::response_header_stmt => {
                    let mut s = children(&c, Rule::string);
                    let name = self.string(s.next().unwrap());
                    let value = self.string(s.next().unwrap());
                    self.header_name(&name);
                    Some(GatewayResponseItem::Header { name, value })
                }
                Rule::bad_stmt => {
                    self.bad(c, Block::GatewayResponse);
                    None
                }
                _ => None,
            };
            if let Some(item) = item {
                items.push(Spanned::new(item, span));
            }
        }
        GatewayResponse { kind, items }
    }

    fn protocols(&mut self, p: &P<'_>) -> Vec<Spanned<Protocol>> {
        let values: Vec<(&str, Protocol)> = Protocol::ALL.iter().map(|p| (p.name(), *p)).collect();
        children(p, Rule::ident)
            .filter_map(|i| self.choice(&i, "protocol", &values))
            .collect()
    }

    fn stages(&mut self, p: &P<'_>) -> Stages {
        let names = children(p, Rule::ident).map(|i| self.ident(i)).collect();
        let from = match child(p, Rule::stage_header) {
            Some(h) => {
                let s = self.string(child(&h, Rule::string).unwrap());
                self.header_name(&s);
                StageFrom::Header(s)
            }
            None => StageFrom::Path,
        };
        let default =
            child(p, Rule::stage_default).map(|d| self.ident(child(&d, Rule::ident).unwrap()));
        Stages {
            names,
            from,
            default,
        }
    }

    fn limits(&mut self, p: &P<'_>) -> Vec<LimitItem> {
        let kinds: Vec<(&str, LimitKind)> = LimitKind::ALL.iter().map(|k| (k.name(), *k)).collect();
        let mut out = Vec::new();
        for item in children(p, Rule::limit_item) {
            let kind = self.choice(&child(&item, Rule::ident).unwrap(), "limit", &kinds);
            let size = self.size(child(&item, Rule::quantity).unwrap());
            if let (Some(kind), Some(size)) = (kind, size) {
                out.push(LimitItem { kind, size });
            }
        }
        out
    }

    fn backend(&mut self, p: P<'_>) -> Backend {
        let name = self.ident(child(&p, Rule::ident).unwrap());
        let mut items = Vec::new();
        for c in p.into_inner() {
            let span = self.span(&c);
            let item = match c.as_rule() {
                Rule::targets_stmt => Some(BackendItem::Targets(self.targets(&c))),
                Rule::balance_stmt => self.balance(&c).map(BackendItem::Balance),
                Rule::health_stmt => self.health(&c).map(BackendItem::Health),
                Rule::passive_stmt => Some(BackendItem::Passive(self.passive(&c))),
                Rule::breaker_block => Some(BackendItem::Breaker(self.breaker(c))),
                Rule::timeout_stmt => self
                    .duration(child(&c, Rule::quantity).unwrap())
                    .map(BackendItem::Timeout),
                Rule::connect_timeout_stmt => self
                    .duration(child(&c, Rule::quantity).unwrap())
                    .map(BackendItem::ConnectTimeout),
                Rule::retries_stmt => self.retries(&c),
                Rule::sign_stmt => self.signing(&c).map(BackendItem::Sign),
                Rule::backend_deny_stmt => Some(BackendItem::DenyIps {
                    deny: self.addrs(&child(&c, Rule::deny_list).unwrap()),
                    except: child(&c, Rule::except_list)
                        .map(|e| self.addrs(&e))
                        .unwrap_or_default(),
                }),
                Rule::bad_stmt => {
                    self.bad(c, Block::Backend);
                    None
                }
                _ => None,
            };
            if let Some(item) = item {
                items.push(Spanned::new(item, span));
            }
        }
        Backend { name, items }
    }

    fn app(&mut self, p: P<'_>) -> App {
        let name = self.ident(child(&p, Rule::ident).unwrap());
        let mut items = Vec::new();
        for c in p.into_inner() {
            let span = self.span(&c);
            let item = match c.as_rule() {
                Rule::app_key_stmt => {
                    Some(AppItem::Key(self.string(child(&c, Rule::string).unwrap())))
                }
                Rule::secret_stmt => Some(AppItem::Secret(
                    self.secret_ref(child(&c, Rule::secret_ref).unwrap()),
                )),
                Rule::appcode_stmt => Some(AppItem::AppCode(
                    self.secret_ref(child(&c, Rule::secret_ref).unwrap()),
                )),
                Rule::trusted_ips_stmt => Some(AppItem::TrustedIps(self.addrs(&c))),
                Rule::quota_stmt => self.quota(&c).map(AppItem::Quota),
                Rule::rate_stmt => self.rate(&c).map(AppItem::Rate),
                Rule::frozen_stmt => Some(AppItem::Frozen),
                Rule::app_apikey_stmt => {
                    let hash = child(&c, Rule::ident).unwrap();
                    let known = self.choice(&hash, "key hash", &[("sha256", ())]);
                    let value = self.string(child(&c, Rule::string).unwrap());
                    known.map(|_| AppItem::ApiKey(value))
                }
                Rule::password_stmt => {
                    let hash = child(&c, Rule::ident).unwrap();
                    let known = self.choice(&hash, "password hash", &[("argon2", ())]);
                    let value = self.string(child(&c, Rule::string).unwrap());
                    known.map(|_| AppItem::Password(value))
                }
                Rule::bad_stmt => {
                    self.bad(c, Block::App);
                    None
                }
                _ => None,
            };
            if let Some(item) = item {
                items.push(Spanned::new(item, span));
            }
        }
        App { name, items }
    }

    fn plan(&mut self, p: P<'_>) -> Plan {
        let name = self.ident(child(&p, Rule::ident).unwrap());
        let mut items = Vec::new();
        for c in p.into_inner() {
            let span = self.span(&c);
            let item = match c.as_rule() {
                Rule::plan_apps_stmt => Some(PlanItem::Apps(
                    children(&c, Rule::ident).map(|i| self.ident(i)).collect(),
                )),
                Rule::rate_stmt => self.rate(&c).map(PlanItem::Rate),
                Rule::quota_stmt => self.quota(&c).map(PlanItem::Quota),
                Rule::bad_stmt => {
                    self.bad(c, Block::Plan);
                    None
                }
                _ => None,
            };
            if let Some(item) = item {
                items.push(Spanned::new(item, span));
            }
        }
        Plan { name, items }
    }

    fn quota(&mut self, p: &P<'_>) -> Option<Quota> {
        let limit = self.int(child(p, Rule::int).unwrap(), "quota", 1, u64::MAX >> 1);
        let period = self.choice(
            &child(p, Rule::ident).unwrap(),
            "quota period",
            &[("day", QuotaPeriod::Day), ("month", QuotaPeriod::Month)],
        );
        let zone = match child(p, Rule::quota_zone) {
            Some(z) => {
                let s = self.string(child(&z, Rule::string).unwrap());
                if crate::vocab::limits::zone(&s.value).is_err() {
                    self.err(
                        Diagnostic::error(
                            diag::UNKNOWN_VALUE,
                            s.span,
                            format!("unknown time zone {:?}", s.value),
                        )
                        .label("not a time zone")
                        .help("an IANA name such as \"Asia/Shanghai\", \"UTC\", or an offset such as \"+08:00\""),
                    );
                    return None;
                }
                Some(s)
            }
            None => None,
        };
        let on_store_error = self.store_error(p)?;
        Some(Quota {
            limit: limit?,
            period: period?,
            zone,
            on_store_error,
        })
    }

    /// `on store error allow|deny`, if written; `Err` when the word is neither.
    fn store_error(&mut self, p: &P<'_>) -> Option<Option<Spanned<StoreErrorPolicy>>> {
        match child(p, Rule::rate_store_error) {
            Some(e) => Some(Some(self.choice(
                &child(&e, Rule::ident).unwrap(),
                "store error policy",
                &[
                    ("allow", StoreErrorPolicy::Allow),
                    ("deny", StoreErrorPolicy::Deny),
                ],
            )?)),
            None => Some(None),
        }
    }

    fn rate(&mut self, p: &P<'_>) -> Option<Rate> {
        let limit = self.int(child(p, Rule::int).unwrap(), "rate", 1, u32::MAX as u64);
        let period = self.window(child(p, Rule::rate_window).unwrap());
        let key = child(p, Rule::rate_key).map(|k| self.rate_key(k));
        let burst = match child(p, Rule::rate_burst) {
            Some(b) => {
                Some(self.int(child(&b, Rule::int).unwrap(), "burst", 0, u32::MAX as u64)?)
            }
            None => None,
        };
        let on_store_error = self.store_error(p)?;
        Some(Rate {
            limit: limit?,
            period: period?,
            key,
            burst,
            on_store_error,
        })
    }

    fn rate_key(&mut self, k: P<'_>) -> Spanned<RateKey> {
        let span = self.span(&k);
        let key = if has(&k, Rule::kw_app) {
            RateKey::App
        } else if has(&k, Rule::kw_ip) {
            RateKey::Ip
        } else if has(&k, Rule::kw_route) {
            RateKey::Route
        } else if has(&k, Rule::kw_query) {
            RateKey::Query(self.string(child(&k, Rule::string).unwrap()).value)
        } else {
            let s = self.string(child(&k, Rule::string).unwrap());
            self.header_name(&s);
            RateKey::Header(s.value)
        };
        Spanned::new(key, span)
    }

    /// `per minute`, `per 10s`, `per 5 minutes`: a count of seconds, minutes, hours or days.
    fn window(&mut self, p: P<'_>) -> Option<Spanned<Window>> {
        const UNITS: [(&str, RatePeriod); 16] = [
            ("s", RatePeriod::Second),
            ("second", RatePeriod::Second),
            ("seconds", RatePeriod::Second),
            ("sec", RatePeriod::Second),
            ("m", RatePeriod::Minute),
            ("minute", RatePeriod::Minute),
            ("minutes", RatePeriod::Minute),
            ("min", RatePeriod::Minute),
            ("h", RatePeriod::Hour),
            ("hour", RatePeriod::Hour),
            ("hours", RatePeriod::Hour),
            ("hr", RatePeriod::Hour),
            ("d", RatePeriod::Day),
            ("day", RatePeriod::Day),
            ("days", RatePeriod::Day),
            ("daily", RatePeriod::Day),
        ];
        let span = self.span(&p);
        let Some(q) = child(&p, Rule::quantity) else {
            // a bare unit: `per minute`
            let word = child(&p, Rule::ident).unwrap();
            let singular = [
                ("second", RatePeriod::Second),
                ("minute", RatePeriod::Minute),
                ("hour", RatePeriod::Hour),
                ("day", RatePeriod::Day),
            ];
            let unit = self.choice(&word, "rate period", &singular)?;
            return Some(Spanned::new(Window::one(unit.value), span));
        };
        let text = q.as_str();
        let digits = text
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(text.len());
        let (count, glued) = text.split_at(digits);
        let unit = match child(&p, Rule::rate_unit) {
            Some(u) if glued.is_empty() => u.as_str().trim().to_string(),
            _ => glued.to_string(),
        };
        let Some(&(_, unit)) = UNITS.iter().find(|(name, _)| *name == unit) else {
            let help = "write the window as `per minute`, `per 10s`, `per 5 minutes` (units: s, m, h, d, or their names)";
            let what = if unit.is_empty() {
                "a rate window without a unit".to_string()
            } else {
                format!("unknown rate window unit `{unit}`")
            };
            self.err(
                Diagnostic::error(diag::BAD_UNIT, span, what)
                    .label("not a window")
                    .help(help),
            );
            return None;
        };
        let max_days = 31u64;
        let count = count
            .parse::<u64>()
            .ok()
            .filter(|n| (1..=max_days * 86_400).contains(n));
        let window = count.map(|n| Window {
            count: n as u32,
            unit,
        });
        match window {
            Some(w) if w.millis() <= max_days * 86_400_000 => Some(Spanned::new(w, span)),
            _ => {
                self.err(
                    Diagnostic::error(diag::OUT_OF_RANGE, span, "rate window out of range")
                        .label("must be from 1 second to 31 days")
                        .help("for longer periods count a `quota N per day|month`"),
                );
                None
            }
        }
    }

    fn throttle(&mut self, p: P<'_>) -> Throttle {
        let name = self.ident(child(&p, Rule::ident).unwrap());
        let mut items = Vec::new();
        for c in p.into_inner() {
            let span = self.span(&c);
            let item = match c.as_rule() {
                Rule::rate_stmt => self.rate(&c).map(ThrottleItem::Rate),
                Rule::throttle_per_stmt => {
                    let key = self.rate_key(child(&c, Rule::rate_key).unwrap());
                    let limit =
                        self.int(child(&c, Rule::int).unwrap(), "limit", 1, u32::MAX as u64);
                    limit.map(|limit| ThrottleItem::Per { key, limit })
                }
                Rule::throttle_except_stmt => self.except(&c),
                Rule::shared_stmt => Some(ThrottleItem::Shared),
                Rule::bad_stmt => {
                    self.bad(c, Block::Throttle);
                    None
                }
                _ => None,
            };
            if let Some(item) = item {
                items.push(Spanned::new(item, span));
            }
        }
        Throttle { name, items }
    }

    /// `except app NAME N` or `except ip ADDR N`.
    fn except(&mut self, c: &P<'_>) -> Option<ThrottleItem> {
        let who = match child(c, Rule::ident) {
            Some(app) => {
                let app = self.ident(app);
                let span = app.span;
                Spanned::new(ExceptWho::App(app), span)
            }
            None => {
                let ip = self.addr(child(c, Rule::addr).unwrap())?;
                Spanned::new(ExceptWho::Ip(ip.value), ip.span)
            }
        };
        let limit = self.int(child(c, Rule::int).unwrap(), "limit", 1, u32::MAX as u64)?;
        Some(ThrottleItem::Except { who, limit })
    }

    fn auth(&mut self, p: P<'_>) -> Option<AuthProvider> {
        let mut idents = children(&p, Rule::ident);
        let name = self.ident(idents.next().unwrap());
        let kinds: Vec<(&str, AuthKind)> = AuthKind::ALL.iter().map(|k| (k.name(), *k)).collect();
        let kind = self.choice(&idents.next().unwrap(), "auth kind", &kinds);
        let mut items = Vec::new();
        for c in p.into_inner() {
            let span = self.span(&c);
            let item = match c.as_rule() {
                Rule::algorithms_stmt => Some(AuthItem::Algorithms(
                    children(&c, Rule::ident).map(|i| self.ident(i)).collect(),
                )),
                Rule::clock_skew_stmt => self
                    .duration(child(&c, Rule::quantity).unwrap())
                    .map(AuthItem::ClockSkew),
                Rule::region_stmt => Some(AuthItem::Region(
                    self.string(child(&c, Rule::string).unwrap()),
                )),
                Rule::group_stmt => Some(AuthItem::Group(
                    self.string(child(&c, Rule::string).unwrap()),
                )),
                Rule::variant_stmt => self
                    .choice(
                        &child(&c, Rule::ident).unwrap(),
                        "variant",
                        &[("tencent", "tencent"), ("kong", "kong")],
                    )
                    .map(|v| AuthItem::Variant(Spanned::new(v.value.to_string(), v.span))),
                Rule::auth_key_stmt => Some(AuthItem::Key(
                    self.secret_ref(child(&c, Rule::secret_ref).unwrap()),
                )),
                Rule::jwks_stmt => Some(AuthItem::Jwks(
                    self.secret_ref(child(&c, Rule::secret_ref).unwrap()),
                )),
                Rule::issuer_stmt => Some(AuthItem::Issuer(
                    self.string(child(&c, Rule::string).unwrap()),
                )),
                Rule::audience_stmt => Some(AuthItem::Audience(self.strings(&c))),
                Rule::leeway_stmt => self
                    .duration(child(&c, Rule::quantity).unwrap())
                    .map(AuthItem::Leeway),
                Rule::token_from_stmt => Some(AuthItem::TokenFrom(self.token_source(&c))),
                Rule::url_stmt => {
                    let s = self.string(child(&c, Rule::string).unwrap());
                    self.url(&s);
                    Some(AuthItem::Url(s))
                }
                Rule::timeout_stmt => self
                    .duration(child(&c, Rule::quantity).unwrap())
                    .map(AuthItem::Timeout),
                Rule::cache_stmt => self
                    .duration(child(&c, Rule::quantity).unwrap())
                    .map(AuthItem::Cache),
                Rule::identity_stmt => {
                    let names = self.strings(&c);
                    names.iter().for_each(|n| self.header_name(n));
                    Some(AuthItem::Identity(names))
                }
                Rule::path_stmt => {
                    let s = self.string(child(&c, Rule::string).unwrap());
                    self.path_template(&s);
                    Some(AuthItem::Path(s))
                }
                Rule::access_ttl_stmt => self
                    .duration(child(&c, Rule::quantity).unwrap())
                    .map(AuthItem::AccessTtl),
                Rule::refresh_ttl_stmt => self
                    .duration(child(&c, Rule::quantity).unwrap())
                    .map(AuthItem::RefreshTtl),
                Rule::signing_key_stmt => Some(AuthItem::SigningKey(
                    self.secret_ref(child(&c, Rule::secret_ref).unwrap()),
                )),
                Rule::allow_appcode_stmt => self
                    .choice(
                        &child(&c, Rule::ident).unwrap(),
                        "allowance",
                        &[("appcode", ())],
                    )
                    .map(|_| AuthItem::AllowAppcode),
                Rule::hide_credentials_stmt => Some(AuthItem::HideCredentials),
                Rule::bad_stmt => {
                    self.bad(c, Block::Auth);
                    None
                }
                _ => None,
            };
            if let Some(item) = item {
                items.push(Spanned::new(item, span));
            }
        }
        Some(AuthProvider {
            name,
            kind: kind?,
            items,
        })
    }

    fn token_source(&mut self, p: &P<'_>) -> TokenSource {
        if let Some(h) = child(p, Rule::token_header) {
            let name = self.string(child(&h, Rule::string).unwrap());
            self.header_name(&name);
            TokenSource::Header {
                name,
                bearer: has(&h, Rule::kw_bearer),
            }
        } else if let Some(q) = child(p, Rule::token_query) {
            TokenSource::Query(self.string(child(&q, Rule::string).unwrap()))
        } else {
            let c = child(p, Rule::token_cookie).unwrap();
            TokenSource::Cookie(self.string(child(&c, Rule::string).unwrap()))
        }
    }

    fn url(&mut self, s: &Spanned<String>) {
        if let Err(msg) = check_url(&s.value) {
            self.err(
                Diagnostic::error(diag::BAD_URL, s.span, format!("invalid URL {:?}", s.value))
                    .label(msg)
                    .help("write `http://HOST:PORT` or `https://HOST[:PORT][/PATH]`"),
            );
        }
    }

    fn route(&mut self, p: P<'_>) -> Option<Route> {
        let methods: Vec<Spanned<Method>> = children(&p, Rule::method)
            .filter_map(|m| self.method(m))
            .collect();
        let path = self.string(child(&p, Rule::string).unwrap());
        let path = self.path_template(&path);
        let mut items = Vec::new();
        for c in p.into_inner() {
            let span = self.span(&c);
            let item = match c.as_rule() {
                Rule::route_stages_stmt => Some(RouteItem::Stages(
                    children(&c, Rule::ident).map(|i| self.ident(i)).collect(),
                )),
                Rule::protocols_stmt => Some(RouteItem::Protocols(self.protocols(&c))),
                Rule::route_auth_stmt => Some(RouteItem::Auth(self.route_auth(&c))),
                Rule::param_stmt => self.param(&c).map(RouteItem::Param),
                Rule::cors_stmt => Some(RouteItem::Cors(self.cors(&c))),
                Rule::allow_ips_stmt => Some(RouteItem::AllowIps(self.addrs(&c))),
                Rule::deny_ips_stmt => Some(RouteItem::DenyIps(self.addrs(&c))),
                Rule::rate_stmt => self.rate(&c).map(RouteItem::Rate),
                Rule::throttle_bind_stmt => Some(RouteItem::Throttle(
                    self.ident(child(&c, Rule::ident).unwrap()),
                )),
                Rule::websocket_stmt => Some(RouteItem::WebSocket),
                Rule::limits_block => Some(RouteItem::Limits(self.limits(&c))),
                Rule::response_header_stmt => {
                    let mut s = children(&c, Rule::string);
                    let name = self.string(s.next().unwrap());
                    let value = self.string(s.next().unwrap());
                    self.header_name(&name);
                    Some(RouteItem::ResponseHeader { name, value })
                }
                Rule::mock_stmt => self.mock(&c).map(RouteItem::Mock),
                Rule::forward_stmt => self.forward(&c).map(RouteItem::Forward),
                Rule::issue_tokens_stmt => Some(RouteItem::IssueTokens(
                    self.ident(child(&c, Rule::ident).unwrap()),
                )),
                Rule::policy_block => self
                    .policy(c)
                    .map(|p| RouteItem::Upstream(Upstream::Policy(p))),
                Rule::orchestrate_block => self
                    .orchestrate(c)
                    .map(|o| RouteItem::Upstream(Upstream::Orchestrate(o))),
                Rule::bad_stmt => {
                    self.bad(c, Block::Route);
                    None
                }
                _ if is_upstream(c.as_rule()) => self.upstream(&c).map(RouteItem::Upstream),
                _ => None,
            };
            if let Some(item) = item {
                items.push(Spanned::new(item, span));
            }
        }
        if methods.is_empty() {
            return None;
        }
        Some(Route {
            methods,
            path: path?,
            items,
        })
    }

    fn route_auth(&mut self, p: &P<'_>) -> RouteAuth {
        let Some(r) = child(p, Rule::auth_ref) else {
            return RouteAuth::None;
        };
        let provider = self.ident(child(&r, Rule::ident).unwrap());
        let apps = child(&r, Rule::auth_apps)
            .map(|a| children(&a, Rule::ident).map(|i| self.ident(i)).collect());
        let claims = children(&r, Rule::auth_claim)
            .map(|c| {
                let mut s = self.strings(&c).into_iter();
                let name = s.next().unwrap();
                Claim {
                    name,
                    values: s.collect(),
                }
            })
            .collect();
        RouteAuth::Provider {
            provider,
            apps,
            claims,
        }
    }

    fn param(&mut self, p: &P<'_>) -> Option<Param> {
        let required = has(p, Rule::kw_require);
        let locs: Vec<(&str, ParamLocation)> =
            ParamLocation::ALL.iter().map(|l| (l.name(), *l)).collect();
        let location = self.choice(&child(p, Rule::ident).unwrap(), "parameter location", &locs)?;
        if !required && location.value == ParamLocation::Path {
            self.err(
                Diagnostic::error(
                    diag::CONFLICT,
                    location.span,
                    "path parameters cannot be optional",
                )
                .label("a path variable is always present when the route matches")
                .help("use `require path \"NAME\" TYPE`"),
            );
            return None;
        }
        let name = self.string(child(p, Rule::string).unwrap());
        if location.value == ParamLocation::Header {
            self.header_name(&name);
        }
        let ty = match child(p, Rule::param_type) {
            Some(t) => Some(self.param_type(t)?),
            None => None,
        };
        Some(Param {
            required,
            location,
            name,
            ty,
        })
    }

    fn param_type(&mut self, p: P<'_>) -> Option<Spanned<ParamType>> {
        let span = self.span(&p);
        #[derive(Clone, Copy)]
        enum K {
            Str,
            Int,
            Dec,
            Bool,
            Enum,
        }
        let kind = self.choice(
            &child(&p, Rule::ident).unwrap(),
            "parameter type",
            &[
                ("string", K::Str),
                ("int", K::Int),
                ("decimal", K::Dec),
                ("bool", K::Bool),
                ("enum", K::Enum),
            ],
        )?;
        let range = child(&p, Rule::range);
        let strings = self.strings(&p);
        if !matches!(kind.value, K::Enum) && !strings.is_empty() {
            self.err(
                Diagnostic::error(
                    diag::MALFORMED,
                    strings[0].span,
                    "only `enum` takes string values",
                )
                .label("unexpected string"),
            );
            return None;
        }
        if let (K::Enum | K::Bool, Some(r)) = (kind.value, &range) {
            self.err(
                Diagnostic::error(diag::MALFORMED, self.span(r), "this type takes no range")
                    .label("unexpected range"),
            );
            return None;
        }
        let ty = match kind.value {
            K::Enum => {
                if strings.is_empty() {
                    self.err(
                        Diagnostic::error(diag::MALFORMED, span, "an enum needs its values")
                            .label("no values")
                            .help("write `enum \"a\" \"b\"`"),
                    );
                    return None;
                }
                ParamType::Enum(strings)
            }
            K::Bool => ParamType::Bool,
            K::Str => ParamType::String {
                len: self.range(range, "length", |s| s.parse::<u64>().ok())?,
            },
            K::Int => ParamType::Int {
                range: self.range(range, "int", |s| s.parse::<i64>().ok())?,
            },
            K::Dec => ParamType::Decimal {
                range: self.range(range, "decimal", |s| {
                    s.parse::<f64>().ok().filter(|f| f.is_finite())
                })?,
            },
        };
        Some(Spanned::new(ty, span))
    }

    /// `Ok(None)` when there is no range; `None` after reporting an invalid one.
    fn range<T: PartialOrd + Copy>(
        &mut self,
        p: Option<P<'_>>,
        what: &str,
        parse: impl Fn(&str) -> Option<T>,
    ) -> Option<Option<Range<T>>> {
        let Some(p) = p else { return Some(None) };
        let span = self.span(&p);
        let text = p.as_str();
        let (lo, hi) = text.split_once("..").unwrap();
        let bound = |s: &str| {
            if s.is_empty() {
                Some(None)
            } else {
                parse(s).map(Some)
            }
        };
        match (bound(lo), bound(hi)) {
            (Some(min), Some(max)) => {
                if let (Some(a), Some(b)) = (min, max) {
                    if a > b {
                        self.err(
                            Diagnostic::error(
                                diag::OUT_OF_RANGE,
                                span,
                                format!("empty {what} range `{text}`"),
                            )
                            .label("the lower bound is above the upper bound"),
                        );
                        return None;
                    }
                }
                Some(Some(Range { min, max }))
            }
            _ => {
                self.err(
                    Diagnostic::error(
                        diag::OUT_OF_RANGE,
                        span,
                        format!("invalid {what} range `{text}`"),
                    )
                    .label(format!("bounds must be {what} values")),
                );
                None
            }
        }
    }

    fn cors(&mut self, p: &P<'_>) -> Vec<Spanned<CorsClause>> {
        let mut out = Vec::new();
        for c in p.clone().into_inner() {
            let span = self.span(&c);
            let clause = match c.as_rule() {
                Rule::cors_origins => Some(CorsClause::Origins(self.strings(&c))),
                Rule::cors_methods => Some(CorsClause::Methods(
                    children(&c, Rule::method)
                        .filter_map(|m| self.method(m))
                        .collect(),
                )),
                Rule::cors_headers => {
                    let h = self.strings(&c);
                    h.iter().for_each(|n| self.header_name(n));
                    Some(CorsClause::Headers(h))
                }
                Rule::cors_expose => {
                    let h = self.strings(&c);
                    h.iter().for_each(|n| self.header_name(n));
                    Some(CorsClause::Expose(h))
                }
                Rule::cors_credentials => Some(CorsClause::Credentials),
                Rule::cors_max_age => self
                    .duration(child(&c, Rule::quantity).unwrap())
                    .map(CorsClause::MaxAge),
                _ => None,
            };
            if let Some(clause) = clause {
                out.push(Spanned::new(clause, span));
            }
        }
        out
    }

    fn mock(&mut self, p: &P<'_>) -> Option<Mock> {
        let status = self.int(child(p, Rule::int).unwrap(), "status", 100, 599)?;
        let body = match child(p, Rule::mock_body) {
            None => None,
            Some(b) => {
                if let Some(j) = child(&b, Rule::json_value) {
                    match serde_json::from_str::<serde_json::Value>(j.as_str()) {
                        Ok(v) => Some(MockBody::Json(v)),
                        Err(e) => {
                            self.err(
                                Diagnostic::error(
                                    diag::BAD_JSON,
                                    self.span(&j),
                                    "invalid JSON body",
                                )
                                .label(e.to_string()),
                            );
                            return None;
                        }
                    }
                } else {
                    Some(MockBody::Text(
                        self.string(child(&b, Rule::string).unwrap()),
                    ))
                }
            }
        };
        Some(Mock { status, body })
    }
}

/// Length of `text` without a trailing `# comment` and trailing blanks (strings respected).
fn content_len(text: &str) -> usize {
    // most statements hold no `#` at all: one fast search spares the byte-by-byte walk
    let end = if text.as_bytes().contains(&b'#') {
        trailing_comment(text)
    } else {
        text.len()
    };
    text[..end]
        .trim_end_matches([' ', '\t', '\n', '\r', '\\'])
        .len()
}

/// Where a trailing comment starts (outside strings, with nothing but blanks after its line),
/// or the text's length.
fn trailing_comment(text: &str) -> usize {
    let bytes = text.as_bytes();
    let mut in_string = false;
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'\\' if in_string => i += 1,
            b'"' => in_string = !in_string,
            b'\n' | b'\r' => in_string = false,
            b'#' if !in_string => {
                // a comment runs to the end of its line; only a trailing one is cut
                let line_end = text[i..].find(['\n', '\r']).map_or(bytes.len(), |n| i + n);
                if text[line_end..].trim().is_empty() {
                    return i;
                }
                i = line_end;
                continue;
            }
            _ => {}
        }
        i += 1;
    }
    bytes.len()
}

/// "a" or "an" before a word, by its first letter.
fn article(word: &str) -> &'static str {
    if word.starts_with(['a', 'e', 'i', 'o', 'u']) {
        "an"
    } else {
        "a"
    }
}

/// Undo the JSON-style escapes allowed in strings. On error: the bad escape's byte range
/// (whole characters, so a diagnostic can point at it) and a message.
pub fn unescape(s: &str) -> Result<String, (std::ops::Range<usize>, String)> {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.char_indices().peekable();
    while let Some((i, c)) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        let (_, e) = chars
            .next()
            .ok_or((i..i + 1, "dangling backslash".to_string()))?;
        let unescaped = match e {
            '"' => '"',
            '\\' => '\\',
            '/' => '/',
            'n' => '\n',
            'r' => '\r',
            't' => '\t',
            'b' => '\u{8}',
            'f' => '\u{c}',
            'u' => {
                let hex: String = chars.by_ref().take(4).map(|(_, c)| c).collect();
                let end = chars.peek().map_or(s.len(), |&(j, _)| j);
                u32::from_str_radix(&hex, 16)
                    .ok()
                    .filter(|_| hex.len() == 4)
                    .and_then(char::from_u32)
                    .ok_or((i..end, format!("`\\u{hex}` is not a character")))?
            }
            other => {
                let end = i + 1 + other.len_utf8();
                return Err((i..end, format!("`\\{other}` is not an escape")));
            }
        };
        out.push(unescaped);
    }
    Ok(out)
}

/// HTTP token characters (RFC 9110 §5.6.2).
pub fn is_token(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

/// Parse `/a/{b}/{rest+}`.
pub fn parse_template(s: &str) -> Result<PathTemplate, String> {
    let Some(rest) = s.strip_prefix('/') else {
        return Err("must start with `/`".into());
    };
    if s.contains(['?', '#']) {
        return Err("a path cannot hold a query or fragment".into());
    }
    if rest.is_empty() {
        return Ok(PathTemplate::new([]));
    }
    let parts: Vec<&str> = rest.split('/').collect();
    let mut segments = Vec::with_capacity(parts.len());
    let mut seen: Vec<&str> = Vec::new();
    for (i, part) in parts.iter().enumerate() {
        if part.is_empty() {
            return Err(if i + 1 == parts.len() {
                "a trailing `/` is not allowed".into()
            } else {
                "empty segment (`//`)".into()
            });
        }
        if let Some(inner) = part.strip_prefix('{').and_then(|p| p.strip_suffix('}')) {
            let (name, rest) = match inner.strip_suffix('+') {
                Some(n) => (n, true),
                None => (inner, false),
            };
            if name.is_empty()
                || !name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
            {
                return Err(format!("`{{{inner}}}` is not a valid variable"));
            }
            if seen.contains(&name) {
                return Err(format!("variable `{name}` appears twice"));
            }
            seen.push(name);
            if rest {
                if i + 1 != parts.len() {
                    return Err(format!("`{{{name}+}}` must be the last segment"));
                }
                segments.push(Segment::Rest(name));
            } else {
                segments.push(Segment::Var(name));
            }
        } else if part.contains(['{', '}']) {
            return Err(format!("`{part}`: a variable must be a whole segment"));
        } else {
            segments.push(Segment::Literal(part));
        }
    }
    Ok(PathTemplate::new(segments))
}

/// A minimal check of `http(s)://host[:port][/path]`: rulegate never resolves names at check time.
pub fn check_url(s: &str) -> Result<(), String> {
    let rest = s
        .strip_prefix("http://")
        .or_else(|| s.strip_prefix("https://"))
        .ok_or("the scheme must be http or https")?;
    let authority = rest.split('/').next().unwrap_or("");
    if authority.is_empty() {
        return Err("no host".into());
    }
    let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
        let (h, after) = v6.split_once(']').ok_or("unclosed `[`")?;
        (h, after.strip_prefix(':'))
    } else {
        match authority.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (authority, None),
        }
    };
    if host.is_empty() || host.contains(['@', ' ']) {
        return Err("invalid host".into());
    }
    if let Some(p) = port {
        if p.parse::<u16>().ok().filter(|p| *p > 0).is_none() {
            return Err(format!("invalid port `{p}`"));
        }
    }
    Ok(())
}

#[cfg(test)]
mod nesting {
    use super::{parse_file, MAX_NESTING};

    fn mock(depth: usize) -> String {
        let json = format!("{}1{}", "[".repeat(depth), "]".repeat(depth));
        format!("service s {{\n  route GET \"/\" {{\n    mock 200 json {json}\n  }}\n}}\n")
    }

    /// `text` parsed on a quarter of a spawned thread's default stack.
    fn on_a_small_stack(text: String) -> super::Parsed {
        std::thread::Builder::new()
            .stack_size(512 * 1024)
            .spawn(move || parse_file(0, &text))
            .unwrap()
            .join()
            .unwrap()
    }

    /// The deepest policy allowed parses on a quarter of a spawned thread's stack.
    #[test]
    fn the_deepest_allowed_nesting_parses_on_a_small_stack() {
        let text = mock(MAX_NESTING - 2); // two levels are the service and the route
        let parsed = on_a_small_stack(text);
        assert!(parsed.diagnostics.is_empty(), "{:?}", parsed.diagnostics);
        assert!(parsed.file.is_some());
    }

    /// Braces that the brace check reads inside a string are inside a string for the parser's
    /// recovery too: a statement's head does not run on into them. Before, 40 of them
    /// (`routenull\0"/{{{…` in a service) took pest's backtracking hours, and 100,000
    /// overflowed the stack; now both are one error, on a quarter of a thread's stack.
    #[test]
    fn braces_in_a_string_after_a_bad_head_are_a_string_to_the_recovery_too() {
        for braces in [40, 100_000] {
            let text = format!(
                "service inventory {{\n    routenull\0\"/{}stock/{{sku}}\" {{\n        mock 200\n    }}\n}}\n",
                "{".repeat(braces)
            );
            let parsed = on_a_small_stack(text);
            let codes: Vec<&str> = parsed.diagnostics.iter().map(|d| d.code.id).collect();
            assert_eq!(codes, ["E0003"], "{braces} braces");
        }
    }

    #[test]
    fn one_level_more_is_refused_before_parsing_and_so_is_a_hostile_depth() {
        for depth in [MAX_NESTING - 1, 100_000] {
            let parsed = parse_file(0, &mock(depth));
            assert!(parsed.file.is_none());
            let d = &parsed.diagnostics[..];
            assert_eq!(d.len(), 1);
            assert_eq!(d[0].code.id, "E0006");
            assert_eq!(d[0].message, "nested too deeply");
            let at = mock(depth).find('[').unwrap() + MAX_NESTING - 2;
            assert_eq!(
                (d[0].span.start as usize, d[0].span.end as usize),
                (at, at + 1)
            );
        }
    }
}

#[cfg(test)]
mod error_spans {
    use super::{pest_error, Rule};
    use pest::error::{Error, ErrorVariant};
    use pest::Position;

    /// What `check` prints as file:line:col, and the JSON's end column, come from the span:
    /// it covers the whole character pest stopped at, and nothing past the text (found by the
    /// `compile` fuzz target: an error at the end of a file ended one byte past it).
    #[test]
    fn a_syntax_error_spans_whole_characters_inside_the_text() {
        for (text, pos, end) in [("service s {", 11, 11), ("a é", 2, 4), ("a?", 1, 2)] {
            let at = Position::new(text, pos).expect("a position in the text");
            let e = Error::<Rule>::new_from_pos(
                ErrorVariant::CustomError {
                    message: "expected".into(),
                },
                at,
            );
            let d = pest_error(0, text, e);
            assert_eq!((d.span.start as usize, d.span.end as usize), (pos, end));
            assert!(text.get(pos..end).is_some(), "{text:?}");
        }
    }

    /// A bad escape is pointed at whole: its backslash and every character it took, however
    /// many bytes they are (found by the `compile` fuzz target: `\` before a two-byte
    /// character split it).
    #[test]
    fn a_bad_escape_is_the_whole_escape() {
        for (text, bad) in [
            ("a\\\u{616}b", 1..4),
            ("\\x", 0..2),
            ("x\\", 1..2),
            ("\\u12", 0..4),
            ("\\uZZZZé", 0..6),
            ("\\uéééé!", 0..10),
        ] {
            let (range, _) = super::unescape(text).expect_err(text);
            assert_eq!(range, bad, "{text:?}");
            assert!(text.get(range).is_some());
        }
    }
}
