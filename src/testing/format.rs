//! The `.tests` file format: requests and what their answers must be, beside the policies.
//!
//! A sibling file rather than test blocks in the policy language, so tests never change what a
//! policy compiles to and the grammar stays the gateway's own. The syntax borrows the policy
//! language's shape (one statement a line, `{ … }` blocks, `#` comments, JSON-escaped strings)
//! so a user learns one way of writing:
//!
//! ```text
//! at 2026-11-22T10:00:00Z                   # the virtual clock every test starts at
//!
//! test "orders need a tenant" {
//!     GET http://localhost/orders/42
//!     header Authorization "Bearer eyJ…"
//!     expect status 400
//!     expect code "APIG.0201"
//!     expect step param
//! }
//!
//! test "the 7th forecast in a second is refused" {
//!     GET "http://weather.localhost/v1/forecast?lat=1&lon=2" times 6
//!     expect forward "/forecast?lat=1&lon=2"
//!     GET "http://weather.localhost/v1/forecast?lat=1&lon=2"
//!     expect status 429
//!     expect header Retry-After 1
//!     wait 1s
//!     …
//! }
//! ```
//!
//! Settings (`at`, `client ip`, `header`) written at the top of the file apply to every test,
//! written in a test before its first request to every request of the test, and after a request
//! line to that request alone. Values are bare words or quoted strings.
//!
//! The parser reports every problem of a file at once with file:line:col, through the same
//! renderer as `check` (`policy::diag`).

use crate::policy::ast::Span;
use crate::policy::diag::{self, Diagnostic};
use std::net::IpAddr;

/// The codes of test-file diagnostics; stable, like `check`'s.
pub mod codes {
    use crate::policy::diag::Code;

    pub const SYNTAX: Code = Code {
        id: "T0001",
        summary: "a test file's text does not parse",
    };
    pub const UNKNOWN: Code = Code {
        id: "T0002",
        summary: "a statement starts with a word that is not a keyword here",
    };
    pub const BAD_VALUE: Code = Code {
        id: "T0003",
        summary: "a value (URL, header, address, time, duration, number) is malformed",
    };
    pub const DUPLICATE: Code = Code {
        id: "T0004",
        summary: "two tests in one file share a name (or a snapshot file name)",
    };
    pub const NOTHING_CHECKED: Code = Code {
        id: "T0005",
        summary: "a request has no expectation and no snapshot, so it could never fail",
    };
}

/// The clock a test starts at when its file says nothing: fixed, so runs are reproducible.
pub const DEFAULT_START: &str = "2026-01-01T00:00:00Z";

/// One `.tests` file, parsed.
#[derive(Debug, Clone)]
pub struct TestFile {
    pub tests: Vec<Test>,
}

#[derive(Debug, Clone)]
pub struct Test {
    pub name: String,
    /// The test's `test "…"` keyword.
    pub span: Span,
    pub exchanges: Vec<Exchange>,
}

impl Test {
    /// Whether any request of the test is snapshotted.
    pub fn snapshots(&self) -> bool {
        self.exchanges.iter().any(|e| e.snapshot)
    }
}

/// One request line with everything that applies to it, sent `times` times.
#[derive(Debug, Clone)]
pub struct Exchange {
    pub span: Span,
    pub method: String,
    /// As written: `http://host/path?q` or `/path?q`.
    pub url: String,
    pub tls: bool,
    /// Origin-form target: `/path?q`.
    pub target: String,
    /// In order; the Host header is among them.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    pub client_ip: IpAddr,
    pub client_cert: bool,
    pub sign: Option<Sign>,
    /// `authorizer NAME …`: what provider NAME's external authorizer answers this request
    /// (nothing is ever called; without a stub it answers as unreachable).
    pub authorizers: Vec<(String, crate::auth::authorizer::Answer)>,
    /// `backend NAME …` written since the previous request: what a backend does from this
    /// request on (see [`super::backends`]).
    pub backends: Vec<super::backends::Script>,
    /// The virtual time of the first sending (ms since the epoch).
    pub at_ms: i64,
    pub times: u32,
    pub every_ms: i64,
    pub snapshot: bool,
    pub expects: Vec<Expect>,
}

/// Sign the request as an app of the service would, with the app's secret from the policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sign {
    /// A scheme with a signer (see [`crate::auth::Scheme::SIGN`]).
    pub scheme: crate::policy::ast::AuthKind,
    pub app: String,
    pub span: Span,
}

#[derive(Debug, Clone)]
pub struct Expect {
    pub span: Span,
    pub what: Expectation,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Expectation {
    Status(u16),
    /// The dialect's error code (`APIG.0201`, `ARGUMENT_NOT_FOUND`, Tencent's status text).
    Code(String),
    /// The filled message of the dialect's row.
    Message(String),
    Header(String, String),
    NoHeader(String),
    Body(Vec<u8>),
    BodyJson(serde_json::Value),
    /// The step that decided (the trace's last): its name, and its detail when given.
    Step(String, Option<String>),
    /// The matched route's label, e.g. `GET /orders/{id}`.
    Route(String),
    /// A forward: the upstream target (rewritten path and query), and the backend when given.
    Forward(String, Option<String>),
    /// The backend request carries this header with this value (`expect upstream header`).
    UpstreamHeader(String, String),
    /// The backend request carries no such header (`expect upstream no header`).
    UpstreamNoHeader(String),
    /// The backend request's query has this parameter with this value (decoded).
    UpstreamQuery(String, String),
    /// The backend request's query has no such parameter.
    UpstreamNoQuery(String),
}

impl std::fmt::Display for Expectation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Expectation::Status(s) => write!(f, "status {s}"),
            Expectation::Code(c) => write!(f, "code {c:?}"),
            Expectation::Message(m) => write!(f, "message {m:?}"),
            Expectation::Header(n, v) => write!(f, "header {n}: {v}"),
            Expectation::NoHeader(n) => write!(f, "no header {n}"),
            Expectation::Body(b) => write!(f, "body {:?}", String::from_utf8_lossy(b)),
            Expectation::BodyJson(v) => write!(f, "body json {v}"),
            Expectation::Step(n, None) => write!(f, "step {n}"),
            Expectation::Step(n, Some(d)) => write!(f, "step {n} {d:?}"),
            Expectation::Route(r) => write!(f, "route {r:?}"),
            Expectation::Forward(t, None) => write!(f, "forward {t}"),
            Expectation::Forward(t, Some(b)) => write!(f, "forward {t} to {b}"),
            Expectation::UpstreamHeader(n, v) => write!(f, "upstream header {n}: {v}"),
            Expectation::UpstreamNoHeader(n) => write!(f, "upstream no header {n}"),
            Expectation::UpstreamQuery(n, v) => write!(f, "upstream query {n}={v}"),
            Expectation::UpstreamNoQuery(n) => write!(f, "upstream no query {n}"),
        }
    }
}

/// Parse one file. Diagnostics are returned whole; tests that parsed are kept either way.
pub fn parse(file: u32, text: &str) -> (TestFile, Vec<Diagnostic>) {
    let mut p = Parser {
        lx: Lexer { text, pos: 0, file },
        diags: Vec::new(),
        file,
    };
    let tests = p.file();
    (TestFile { tests }, p.diags)
}

/// The snapshot file name of a test: its name in lower case, runs of other characters as `-`.
pub fn slug(name: &str) -> String {
    let mut out = String::new();
    for c in name.chars() {
        if c.is_ascii_alphanumeric() {
            out.push(c.to_ascii_lowercase());
        } else if !out.ends_with('-') && !out.is_empty() {
            out.push('-');
        }
    }
    while out.ends_with('-') {
        out.pop();
    }
    if out.is_empty() {
        out.push_str("test");
    }
    out
}

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Word(String),
    Str(String),
    Open,
    Close,
    /// A newline or `;`.
    End,
    Eof,
}

impl Tok {
    fn describe(&self) -> String {
        match self {
            Tok::Word(w) => format!("`{w}`"),
            Tok::Str(s) => format!("{s:?}"),
            Tok::Open => "`{`".into(),
            Tok::Close => "`}`".into(),
            Tok::End => "the end of the line".into(),
            Tok::Eof => "the end of the file".into(),
        }
    }
}

struct Lexer<'a> {
    text: &'a str,
    pos: usize,
    file: u32,
}

impl Lexer<'_> {
    fn span(&self, start: usize, end: usize) -> Span {
        Span::new(self.file, start, end)
    }

    /// Skip blanks and comments on the current line.
    fn skip_blank(&mut self) {
        let bytes = self.text.as_bytes();
        while self.pos < bytes.len() {
            match bytes[self.pos] {
                b' ' | b'\t' | b'\r' => self.pos += 1,
                b'#' => {
                    while self.pos < bytes.len() && bytes[self.pos] != b'\n' {
                        self.pos += 1;
                    }
                }
                _ => break,
            }
        }
    }

    fn next(&mut self) -> Result<(Tok, Span), Box<Diagnostic>> {
        self.skip_blank();
        let start = self.pos;
        let bytes = self.text.as_bytes();
        let Some(&b) = bytes.get(self.pos) else {
            return Ok((Tok::Eof, self.span(start, start)));
        };
        let one = |lx: &mut Self, t: Tok| {
            lx.pos += 1;
            Ok((t, lx.span(start, start + 1)))
        };
        match b {
            b'\n' | b';' => one(self, Tok::End),
            b'{' => one(self, Tok::Open),
            b'}' => one(self, Tok::Close),
            b'"' => self.string(start),
            _ => {
                while self.pos < bytes.len()
                    && !matches!(
                        bytes[self.pos],
                        b' ' | b'\t' | b'\r' | b'\n' | b';' | b'{' | b'}' | b'"' | b'#'
                    )
                {
                    self.pos += 1;
                }
                Ok((
                    Tok::Word(self.text[start..self.pos].to_string()),
                    self.span(start, self.pos),
                ))
            }
        }
    }

    /// A JSON-escaped string starting at the opening quote.
    fn string(&mut self, start: usize) -> Result<(Tok, Span), Box<Diagnostic>> {
        let bytes = self.text.as_bytes();
        let mut i = start + 1;
        while i < bytes.len() && bytes[i] != b'"' && bytes[i] != b'\n' {
            i += if bytes[i] == b'\\' { 2 } else { 1 };
        }
        if i >= bytes.len() || bytes[i] != b'"' {
            self.pos = i.min(bytes.len());
            return Err(Box::new(
                Diagnostic::error(
                    codes::SYNTAX,
                    self.span(start, self.pos),
                    "unterminated string",
                )
                .label("this string has no closing quote on its line"),
            ));
        }
        self.pos = i + 1;
        let span = self.span(start, self.pos);
        match serde_json::from_str::<String>(&self.text[start..self.pos]) {
            Ok(s) => Ok((Tok::Str(s), span)),
            Err(e) => Err(Box::new(
                Diagnostic::error(codes::SYNTAX, span, "invalid string escape")
                    .label(e.to_string())
                    .help("strings take JSON escapes: \\\" \\\\ \\n \\t \\u00e9"),
            )),
        }
    }
}

/// Settings that requests inherit: the file's, then the test's, then the request's own.
#[derive(Debug, Clone)]
struct Settings {
    at_ms: i64,
    client_ip: IpAddr,
    headers: Vec<(String, String)>,
}

impl Settings {
    fn set_header(&mut self, name: String, value: String) {
        self.headers.retain(|(n, _)| !n.eq_ignore_ascii_case(&name));
        self.headers.push((name, value));
    }
}

const FILE_KEYWORDS: &[&str] = &["test", "at", "client", "header"];
const TEST_KEYWORDS: &[&str] = &[
    "at",
    "client",
    "header",
    "body",
    "sign",
    "snapshot",
    "wait",
    "expect",
    "authorizer",
    "backend",
];
const EXPECTS: &[&str] = &[
    "status", "code", "message", "header", "no", "body", "step", "route", "forward", "upstream",
];

struct Parser<'a> {
    lx: Lexer<'a>,
    diags: Vec<Diagnostic>,
    file: u32,
}

/// A statement's words: the tokens up to the end of its line.
type Words = Vec<(Tok, Span)>;

impl Parser<'_> {
    fn file(&mut self) -> Vec<Test> {
        let mut settings = Settings {
            at_ms: parse_time(DEFAULT_START).unwrap_or(0),
            client_ip: IpAddr::from([127, 0, 0, 1]),
            headers: Vec::new(),
        };
        let mut tests: Vec<Test> = Vec::new();
        loop {
            let (tok, span) = self.token();
            match tok {
                Tok::Eof => break,
                Tok::End => continue,
                Tok::Word(w) if w == "test" => {
                    if let Some(t) = self.test(span, &settings) {
                        let clash = tests
                            .iter()
                            .find(|o| o.name == t.name || slug(&o.name) == slug(&t.name));
                        if let Some(other) = clash {
                            self.diags.push(
                                Diagnostic::error(
                                    codes::DUPLICATE,
                                    t.span,
                                    format!("a second test named {:?}", t.name),
                                )
                                .label("test names identify results and snapshot files")
                                .related(other.span, "the first one"),
                            );
                        } else {
                            tests.push(t);
                        }
                    }
                }
                Tok::Word(w) => {
                    let Some(words) = self.rest_of_line() else {
                        continue;
                    };
                    if !self.setting(&w, span, &words, &mut settings) {
                        self.unknown(&w, span, FILE_KEYWORDS, "at the top of a test file");
                    }
                }
                other => {
                    self.diags.push(
                        Diagnostic::error(
                            codes::SYNTAX,
                            span,
                            format!("unexpected {}", other.describe()),
                        )
                        .help("a test file holds settings (`at`, `client ip`, `header`) and `test \"NAME\" { … }` blocks"),
                    );
                    self.skip_line();
                }
            }
        }
        tests
    }

    /// The next token; a malformed one is reported and its line skipped (an `End`).
    fn token(&mut self) -> (Tok, Span) {
        match self.lx.next() {
            Ok(t) => t,
            Err(d) => {
                let span = d.span;
                self.diags.push(*d);
                self.skip_line();
                (Tok::End, span)
            }
        }
    }

    fn skip_line(&mut self) {
        loop {
            if let Ok((Tok::End | Tok::Eof, _)) = self.lx.next() {
                return;
            }
        }
    }

    /// The remaining tokens of the current statement; `None` when one of them was malformed
    /// (reported once: the statement is not judged further).
    fn rest_of_line(&mut self) -> Option<Words> {
        let mut words = Vec::new();
        let mut ok = true;
        loop {
            match self.lx.next() {
                Ok((Tok::End | Tok::Eof, _)) => return ok.then_some(words),
                Ok(t) => words.push(t),
                Err(d) => {
                    self.diags.push(*d);
                    ok = false;
                }
            }
        }
    }

    fn unknown(&mut self, word: &str, span: Span, keywords: &[&str], place: &str) {
        self.diags.push(
            Diagnostic::error(
                codes::UNKNOWN,
                span,
                format!("unknown keyword `{word}` {place}"),
            )
            .maybe_help(diag::did_you_mean(word, keywords.iter().copied())),
        );
    }

    fn malformed(&mut self, span: Span, usage: &str) {
        self.diags.push(
            Diagnostic::error(codes::SYNTAX, span, "malformed statement")
                .help(format!("expected: {usage}")),
        );
    }

    fn bad_value(&mut self, span: Span, message: impl Into<String>) {
        self.diags
            .push(Diagnostic::error(codes::BAD_VALUE, span, message));
    }

    /// `at`, `client ip`, `header`: true when `keyword` is one of them (reported if malformed).
    fn setting(&mut self, keyword: &str, span: Span, words: &Words, s: &mut Settings) -> bool {
        match keyword {
            "at" => match values(words).as_slice() {
                [(t, tspan)] => match parse_time(t) {
                    Some(ms) => s.at_ms = ms,
                    None => self.bad_value(
                        *tspan,
                        format!("{t:?} is not an RFC 3339 time such as 2026-11-22T10:00:00Z"),
                    ),
                },
                _ => self.malformed(span, "at 2026-11-22T10:00:00Z"),
            },
            "client" => match values(words).as_slice() {
                [(ip, _), (addr, aspan)] if ip == "ip" => match addr.parse::<IpAddr>() {
                    Ok(a) => s.client_ip = a,
                    Err(_) => self.bad_value(*aspan, format!("{addr:?} is not an IP address")),
                },
                _ => self.malformed(span, "client ip 203.0.113.7"),
            },
            "header" => match values(words).as_slice() {
                [(name, nspan), (value, vspan)] => {
                    if http::HeaderName::from_bytes(name.as_bytes()).is_err() {
                        self.bad_value(*nspan, format!("{name:?} is not a valid header name"));
                    } else if http::HeaderValue::from_str(value).is_err() {
                        self.bad_value(*vspan, "a header value must be visible ASCII");
                    } else {
                        s.set_header(name.clone(), value.clone());
                    }
                }
                _ => self.malformed(span, "header NAME VALUE   (quote a value with spaces)"),
            },
            _ => return false,
        }
        true
    }

    fn test(&mut self, keyword: Span, file_settings: &Settings) -> Option<Test> {
        let name = match self.lx.next() {
            Ok((Tok::Str(s), _)) => s,
            Ok((t, span)) => {
                self.diags.push(
                    Diagnostic::error(
                        codes::SYNTAX,
                        span,
                        format!("expected the test's name in quotes, found {}", t.describe()),
                    )
                    .help("test \"orders need a tenant\" { … }"),
                );
                if t != Tok::Open {
                    self.skip_line();
                    return None;
                }
                String::new()
            }
            Err(d) => {
                self.diags.push(*d);
                self.skip_line();
                return None;
            }
        };
        if !name.is_empty() {
            match self.lx.next() {
                Ok((Tok::Open, _)) => {}
                Ok((t, span)) => {
                    self.diags.push(Diagnostic::error(
                        codes::SYNTAX,
                        span,
                        format!(
                            "expected `{{` after the test's name, found {}",
                            t.describe()
                        ),
                    ));
                    self.skip_line();
                    return None;
                }
                Err(d) => {
                    self.diags.push(*d);
                    return None;
                }
            }
        }
        let mut b = TestBuilder {
            settings: file_settings.clone(),
            clock_ms: file_settings.at_ms,
            started: false,
            snapshot_all: false,
            exchanges: Vec::new(),
            pending_backends: Vec::new(),
        };
        loop {
            let (tok, span) = self.token();
            match tok {
                Tok::End => continue,
                Tok::Close => break,
                Tok::Eof => {
                    self.diags.push(
                        Diagnostic::error(codes::SYNTAX, keyword, "this test is not closed")
                            .label("no `}` before the end of the file"),
                    );
                    break;
                }
                Tok::Word(w) => {
                    if let Some(words) = self.rest_of_line() {
                        self.statement(&w, span, &words, &mut b);
                    }
                }
                other => {
                    self.diags.push(Diagnostic::error(
                        codes::SYNTAX,
                        span,
                        format!("unexpected {}", other.describe()),
                    ));
                    self.skip_line();
                }
            }
        }
        let span = keyword;
        if b.exchanges.is_empty() {
            self.diags.push(
                Diagnostic::error(
                    codes::NOTHING_CHECKED,
                    span,
                    format!("test {name:?} sends no request"),
                )
                .help("start a request with a method and a URL: GET http://localhost/health"),
            );
        }
        for e in &b.exchanges {
            if e.expects.is_empty() && !e.snapshot {
                self.diags.push(
                    Diagnostic::error(
                        codes::NOTHING_CHECKED,
                        e.span,
                        "this request checks nothing, so it could never fail",
                    )
                    .help("add `expect status 200` (or another expectation) or `snapshot`"),
                );
            }
        }
        Some(Test {
            name,
            span,
            exchanges: b.exchanges,
        })
    }

    fn statement(&mut self, w: &str, span: Span, words: &Words, b: &mut TestBuilder) {
        if is_method(w) {
            return self.request(w, span, words, b);
        }
        let client_cert = w == "client"
            && values(words)
                .first()
                .is_some_and(|(v, _)| v == "certificate");
        match w {
            "at" => {
                let before = b.settings.at_ms;
                self.setting(w, span, words, &mut b.settings);
                if b.started && b.settings.at_ms < b.clock_ms {
                    self.bad_value(span, "the clock only moves forward in a test");
                    b.settings.at_ms = before;
                } else {
                    b.clock_ms = b.settings.at_ms;
                }
            }
            // Before the first request a setting is the test's; after it, that request's.
            "client" | "header" if !client_cert => match b.exchanges.last_mut() {
                None => {
                    self.setting(w, span, words, &mut b.settings);
                }
                Some(e) => {
                    let mut s = Settings {
                        at_ms: e.at_ms,
                        client_ip: e.client_ip,
                        headers: std::mem::take(&mut e.headers),
                    };
                    self.setting(w, span, words, &mut s);
                    e.client_ip = s.client_ip;
                    e.headers = s.headers;
                }
            },
            "snapshot" => {
                if !words.is_empty() {
                    return self.malformed(span, "snapshot");
                }
                match b.exchanges.last_mut() {
                    Some(e) => e.snapshot = true,
                    None => b.snapshot_all = true,
                }
            }
            "wait" => match values(words).as_slice() {
                [(d, dspan)] => match parse_duration(d) {
                    Some(ms) => b.clock_ms += ms,
                    None => self.bad_value(
                        *dspan,
                        format!("{d:?} is not a duration such as 500ms, 12s, 1m, 2h or 1d"),
                    ),
                },
                _ => self.malformed(span, "wait 12s"),
            },
            "backend" => self.backend(span, words, b),
            "body" | "sign" | "expect" | "client" | "authorizer" => {
                let Some(e) = b.exchanges.last_mut() else {
                    self.diags.push(
                        Diagnostic::error(
                            codes::SYNTAX,
                            span,
                            format!("`{w}` before the test's first request"),
                        )
                        .help("start a request with a method and a URL (GET http://localhost/health); the statements after it apply to it"),
                    );
                    return;
                };
                match w {
                    "body" => self.body(span, words, e),
                    "sign" => self.sign(span, words, e),
                    "authorizer" => self.authorizer(span, words, e),
                    "client" => {
                        if words.len() != 1 {
                            self.malformed(span, "client certificate");
                        } else if !e.tls {
                            self.bad_value(span, "a client certificate is presented over TLS only: use an https:// URL");
                        }
                        e.client_cert = true;
                    }
                    _ => self.expect(span, words, e),
                }
            }
            _ => self.unknown(w, span, TEST_KEYWORDS, "in a test"),
        }
    }

    /// The JSON written from `words[from]` to the end of the statement, and its text.
    fn json(&mut self, words: &Words, from: usize) -> Option<(serde_json::Value, String)> {
        let start = words.get(from)?.1.start as usize;
        let end = words.last().map_or(start, |(_, s)| s.end as usize);
        let text = self.lx.text[start..end].to_string();
        match serde_json::from_str::<serde_json::Value>(&text) {
            Ok(v) => Some((v, text)),
            Err(err) => {
                self.bad_value(
                    Span::new(self.file, start, end),
                    format!("invalid JSON: {err}"),
                );
                None
            }
        }
    }

    fn request(&mut self, method: &str, span: Span, words: &Words, b: &mut TestBuilder) {
        let vals = values(words);
        let usage = "METHOD URL [times N [every DURATION]], e.g. GET http://localhost/health";
        let Some((url, uspan)) = vals.first() else {
            return self.malformed(span, usage);
        };
        let mut times = 1u32;
        let mut every_ms = 0i64;
        match &vals[1..] {
            [] => {}
            [(t, _), (n, nspan), rest @ ..] if t == "times" => {
                match n.parse::<u32>() {
                    Ok(n) if (1..=10_000).contains(&n) => times = n,
                    _ => self.bad_value(*nspan, "`times` takes a whole number from 1 to 10000"),
                }
                match rest {
                    [] => {}
                    [(e, _), (d, dspan)] if e == "every" => match parse_duration(d) {
                        Some(ms) => every_ms = ms,
                        None => self.bad_value(*dspan, format!("{d:?} is not a duration")),
                    },
                    _ => return self.malformed(span, usage),
                }
            }
            _ => return self.malformed(span, usage),
        }
        let Some((mut tls, authority, target)) = split_url(url) else {
            return self.bad_value(
                *uspan,
                format!("{url:?}: expected http://host/path, https://host/path or /path"),
            );
        };
        let mut headers = b.settings.headers.clone();
        if let Some(a) = authority {
            if !headers.iter().any(|(n, _)| n.eq_ignore_ascii_case("host")) {
                headers.insert(0, ("Host".to_string(), a));
            }
        } else if !headers.iter().any(|(n, _)| n.eq_ignore_ascii_case("host")) {
            // `/path` after a full URL goes to the same host.
            let previous = b.exchanges.last().and_then(|p| {
                p.headers
                    .iter()
                    .find(|(n, _)| n.eq_ignore_ascii_case("host"))
                    .cloned()
            });
            match previous {
                Some(h) => {
                    headers.insert(0, h);
                    tls = b.exchanges.last().is_some_and(|p| p.tls);
                }
                None => self.bad_value(*uspan, "no host: give a full URL or set a Host header"),
            }
        }
        if let Some(prev) = b.exchanges.last() {
            b.clock_ms += prev.every_ms * i64::from(prev.times - 1);
        }
        b.started = true;
        b.exchanges.push(Exchange {
            span: Span::new(self.file, span.start as usize, uspan.end as usize),
            method: method.to_string(),
            url: url.clone(),
            tls,
            target,
            headers,
            body: Vec::new(),
            client_ip: b.settings.client_ip,
            client_cert: false,
            sign: None,
            authorizers: Vec::new(),
            backends: std::mem::take(&mut b.pending_backends),
            at_ms: b.clock_ms,
            times,
            every_ms,
            snapshot: b.snapshot_all,
            expects: Vec::new(),
        });
    }

    /// `backend NAME …`: a scripted backend, from the next request on (like `wait`, it is a
    /// change in the world between requests).
    fn backend(&mut self, span: Span, words: &Words, b: &mut TestBuilder) {
        let vals: Vec<String> = values(words).into_iter().map(|(v, _)| v).collect();
        match super::backends::parse(&vals, parse_duration) {
            Ok(script) => b.pending_backends.push(script),
            Err(why) => self.diags.push(
                Diagnostic::error(codes::BAD_VALUE, span, "malformed backend script")
                    .label(why)
                    .help(format!("expected: {}", super::backends::USAGE)),
            ),
        }
    }

    /// `authorizer NAME allow [json {CONTEXT}] | deny | forbidden | unreachable | unresolved |
    /// bad-response`: the stubbed answer of provider NAME's authorizer for this request.
    fn authorizer(&mut self, span: Span, words: &Words, e: &mut Exchange) {
        use crate::auth::authorizer::{parse_answer, Answer, Failure};
        let usage = "authorizer NAME allow [json {\"user\": \"ann\"}] | deny | forbidden | unreachable | unresolved | bad-response";
        let vals = values(words);
        let (Some((name, _)), Some((verdict, _))) = (vals.first(), vals.get(1)) else {
            return self.malformed(span, usage);
        };
        let failed = |failure, what: &str| Answer::Failed {
            failure,
            detail: format!("the test's stub answers {what}"),
        };
        let answer = match (verdict.as_str(), vals.len()) {
            ("allow", 2) => Answer::Allow {
                context: Vec::new(),
            },
            ("allow", n) if n > 3 && vals[2].0 == "json" => {
                let Some((context, _)) = self.json(words, 3) else {
                    return;
                };
                let answer = serde_json::json!({"status": "allow", "context": context});
                match parse_answer(200, answer.to_string().as_bytes()) {
                    a @ Answer::Allow { .. } => a,
                    Answer::Failed { detail, .. } => {
                        let start = words[3].1.start as usize;
                        let end = words.last().map_or(start, |(_, s)| s.end as usize);
                        return self.bad_value(Span::new(self.file, start, end), detail);
                    }
                    _ => return self.malformed(span, usage),
                }
            }
            ("deny", 2) => Answer::Deny,
            ("forbidden", 2) => Answer::Forbidden,
            ("unreachable", 2) => failed(Failure::Unreachable, "unreachable"),
            ("unresolved", 2) => failed(Failure::Unresolved, "unresolved"),
            ("bad-response", 2) => failed(Failure::BadResponse, "a bad response"),
            _ => return self.malformed(span, usage),
        };
        e.authorizers.retain(|(n, _)| n != name);
        e.authorizers.push((name.clone(), answer));
    }

    fn body(&mut self, span: Span, words: &Words, e: &mut Exchange) {
        match words.as_slice() {
            [(Tok::Word(j), _), _, ..] if j == "json" => {
                if let Some((_, text)) = self.json(words, 1) {
                    e.body = text.into_bytes();
                }
            }
            [(Tok::Word(_) | Tok::Str(_), _)] => {
                let (v, _) = &values(words)[0];
                e.body = v.clone().into_bytes();
            }
            _ => self.malformed(span, "body \"text\"   or   body json {…} (on one line)"),
        }
    }

    fn sign(&mut self, span: Span, words: &Words, e: &mut Exchange) {
        let signers = || {
            crate::policy::ast::AuthKind::ALL
                .into_iter()
                .filter(|k| crate::auth::signs(*k))
        };
        match values(words).as_slice() {
            [(scheme, sspan), (a, _), (app, _)] if a == "app" => {
                let Some(scheme) = signers().find(|k| k.name() == scheme) else {
                    return self.diags.push(
                        Diagnostic::error(
                            codes::UNKNOWN,
                            *sspan,
                            format!("rulegate cannot sign with {scheme:?}"),
                        )
                        .help(format!(
                            "the schemes are {}",
                            crate::auth::names(crate::auth::signs, "and")
                        )),
                    );
                };
                e.sign = Some(Sign {
                    scheme,
                    app: app.clone(),
                    span,
                });
            }
            _ => {
                let names: Vec<&str> = signers().map(|k| k.name()).collect();
                let usage = format!("sign {} app NAME", names.join("|"));
                self.malformed(span, &usage)
            }
        }
    }

    fn expect(&mut self, span: Span, words: &Words, e: &mut Exchange) {
        let vals = values(words);
        let what = match vals.as_slice() {
            [(k, _), (v, vspan)] if k == "status" => match v.parse::<u16>() {
                Ok(s) if (100..=999).contains(&s) => Expectation::Status(s),
                _ => return self.bad_value(*vspan, format!("{v:?} is not an HTTP status")),
            },
            [(k, _), (v, _)] if k == "code" => Expectation::Code(v.clone()),
            [(k, _), (v, _)] if k == "message" => Expectation::Message(v.clone()),
            [(k, _), (n, nspan), (v, _)] if k == "header" => {
                if http::HeaderName::from_bytes(n.as_bytes()).is_err() {
                    return self.bad_value(*nspan, format!("{n:?} is not a valid header name"));
                }
                Expectation::Header(n.clone(), v.clone())
            }
            [(k, _), (h, _), (n, _)] if k == "no" && h == "header" => {
                Expectation::NoHeader(n.clone())
            }
            [(k, _), (v, _)] if k == "step" => Expectation::Step(v.clone(), None),
            [(k, _), (v, _), (d, _)] if k == "step" => {
                Expectation::Step(v.clone(), Some(d.clone()))
            }
            [(k, _), (v, _)] if k == "route" => Expectation::Route(v.clone()),
            [(k, _), (v, _)] if k == "forward" => Expectation::Forward(v.clone(), None),
            [(k, _), (v, _), (t, _), (b, _)] if k == "forward" && t == "to" => {
                Expectation::Forward(v.clone(), Some(b.clone()))
            }
            [(k, _), (w, _), (n, _), (v, _)] if k == "upstream" && w == "header" => {
                Expectation::UpstreamHeader(n.clone(), v.clone())
            }
            [(k, _), (no, _), (w, _), (n, _)] if k == "upstream" && no == "no" && w == "header" => {
                Expectation::UpstreamNoHeader(n.clone())
            }
            [(k, _), (w, _), (n, _), (v, _)] if k == "upstream" && w == "query" => {
                Expectation::UpstreamQuery(n.clone(), v.clone())
            }
            [(k, _), (no, _), (w, _), (n, _)] if k == "upstream" && no == "no" && w == "query" => {
                Expectation::UpstreamNoQuery(n.clone())
            }
            [(k, _), (j, _), _, ..] if k == "body" && j == "json" => match self.json(words, 2) {
                Some((v, _)) => Expectation::BodyJson(v),
                None => return,
            },
            [(k, _), (v, _)] if k == "body" => Expectation::Body(v.clone().into_bytes()),
            [(k, kspan), ..] if !EXPECTS.contains(&k.as_str()) => {
                return self.unknown(k, *kspan, EXPECTS, "after `expect`")
            }
            _ => {
                return self.malformed(
                    span,
                    "expect status N | code C | message M | header NAME VALUE | no header NAME | body B | body json {…} | step NAME [DETAIL] | route \"GET /path\" | forward TARGET [to BACKEND] | upstream [no] header NAME [VALUE] | upstream [no] query NAME [VALUE]",
                )
            }
        };
        e.expects.push(Expect { span, what });
    }
}

struct TestBuilder {
    settings: Settings,
    /// The virtual time the next request is sent at.
    clock_ms: i64,
    started: bool,
    snapshot_all: bool,
    exchanges: Vec<Exchange>,
    /// `backend` statements since the last request: they apply from the next one on.
    pending_backends: Vec<super::backends::Script>,
}

/// Words and strings of a statement as text, with spans.
fn values(words: &Words) -> Vec<(String, Span)> {
    words
        .iter()
        .map(|(t, s)| match t {
            Tok::Word(w) | Tok::Str(w) => (w.clone(), *s),
            other => (other.describe(), *s),
        })
        .collect()
}

/// Upper-case letters only: `GET`, `POST`, `PROPFIND`.
fn is_method(w: &str) -> bool {
    !w.is_empty() && w.bytes().all(|b| b.is_ascii_uppercase())
}

/// (tls, authority, origin-form target) from `http(s)://authority/path?q` or `/path?q`.
pub fn split_url(url: &str) -> Option<(bool, Option<String>, String)> {
    if url.starts_with('/') {
        return Some((false, None, url.to_string()));
    }
    let (tls, rest) = if let Some(r) = url.strip_prefix("https://") {
        (true, r)
    } else {
        (false, url.strip_prefix("http://")?)
    };
    let (authority, target) = match rest.find(['/', '?']) {
        Some(i) if rest.as_bytes()[i] == b'/' => (&rest[..i], rest[i..].to_string()),
        Some(i) => (&rest[..i], format!("/{}", &rest[i..])),
        None => (rest, "/".to_string()),
    };
    (!authority.is_empty()).then(|| (tls, Some(authority.to_string()), target))
}

fn parse_time(s: &str) -> Option<i64> {
    s.parse::<jiff::Timestamp>()
        .ok()
        .map(|t| t.as_millisecond())
}

/// `500ms`, `12s`, `1m`, `2h`, `1d` in milliseconds.
pub fn parse_duration(s: &str) -> Option<i64> {
    let split = s.find(|c: char| !c.is_ascii_digit())?;
    let (n, unit) = s.split_at(split);
    let n: i64 = n.parse().ok()?;
    let unit_ms = match unit {
        "ms" => 1,
        "s" => 1000,
        "m" => 60_000,
        "h" => 3_600_000,
        "d" => 86_400_000,
        _ => return None,
    };
    n.checked_mul(unit_ms)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_ok(text: &str) -> TestFile {
        let (f, diags) = parse(0, text);
        assert!(diags.is_empty(), "{diags:#?}");
        f
    }

    #[test]
    fn settings_inherit_and_the_clock_moves() {
        let f = parse_ok(
            "at 2026-11-22T10:00:00Z\nheader X-A 1\n\
             test \"t\" {\n  header X-B 2\n  GET http://h/x times 3 every 10s\n  expect status 200\n  wait 1m\n  POST /y\n  header X-A 3\n  body \"a=b\"\n  snapshot\n}\n",
        );
        let t = &f.tests[0];
        let (a, b) = (&t.exchanges[0], &t.exchanges[1]);
        assert_eq!(a.headers.len(), 3, "{:?}", a.headers);
        assert_eq!(a.headers[0], ("Host".to_string(), "h".to_string()));
        assert_eq!(b.at_ms - a.at_ms, 20_000 + 60_000);
        assert!(b.headers.contains(&("X-A".to_string(), "3".to_string())));
        assert_eq!(b.body, b"a=b");
        assert!(b.snapshot && !a.snapshot);
    }

    #[test]
    fn json_bodies_and_expectations() {
        let f = parse_ok(
            "test \"j\" {\n GET http://h/\n expect body json {\"a\": [1, 2]}\n expect header Retry-After 12\n expect forward /v1 to orders\n}\n",
        );
        let e = &f.tests[0].exchanges[0];
        assert_eq!(
            e.expects[0].what,
            Expectation::BodyJson(serde_json::json!({"a": [1, 2]}))
        );
        assert_eq!(
            e.expects[2].what,
            Expectation::Forward("/v1".into(), Some("orders".into()))
        );
    }

    #[test]
    fn every_problem_is_reported_with_its_place() {
        let (_, diags) = parse(
            0,
            "tset \"a\" {}\ntest \"b\" {\n GET http://h/\n expct status 200\n}\ntest \"c\" {\n GET /nowhere\n expect status 2000\n}\n",
        );
        let codes: Vec<&str> = diags.iter().map(|d| d.code.id).collect();
        assert_eq!(
            codes,
            ["T0002", "T0002", "T0005", "T0003", "T0003", "T0005"],
            "{diags:#?}"
        );
        assert_eq!(diags[1].help.as_deref(), Some("did you mean `expect`?"));
    }

    #[test]
    fn slugs() {
        assert_eq!(slug("Orders need a tenant!"), "orders-need-a-tenant");
        assert_eq!(slug("--"), "test");
    }
}
