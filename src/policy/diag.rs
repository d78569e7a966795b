//! Diagnostics: every problem in a policy set, each with file:line:col, the source line with
//! the span marked, a stable code and help.
//!
//! Codes are stable: users grep for them and CI systems match on them. Where JD Cloud's console
//! catalogue has a code for the same management-time mistake we use it (duplicate API path →
//! `APIGATEWAY_API_PATH_ISREPEAT`); everything else is an `E…` code of our own.

use super::ast::Span;
use codespan_reporting::diagnostic::{Diagnostic as CsDiagnostic, Label, Severity as CsSeverity};
use codespan_reporting::files::{Error as FilesError, Files};
use codespan_reporting::term;
use std::ops::Range;

/// A stable diagnostic code and a one-line summary of what it means.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Code {
    pub id: &'static str,
    pub summary: &'static str,
}

macro_rules! codes {
    ($($name:ident = $id:literal, $summary:literal;)*) => {
        $(pub const $name: Code = Code { id: $id, summary: $summary };)*
        /// Every code `check` can report, for the docs and `--format json` consumers.
        pub const ALL_CODES: &[Code] = &[$($name),*];
    };
}

codes! {
    SYNTAX = "E0001", "the text does not parse";
    UNBALANCED = "E0002", "a brace is not closed, or closes nothing";
    UNKNOWN_KEYWORD = "E0003", "a statement starts with a word that is not a keyword here";
    MALFORMED = "E0004", "a known statement whose arguments do not parse";
    BAD_ESCAPE = "E0005", "a string has an invalid escape";
    TOO_DEEP = "E0006", "blocks and JSON values nest too deeply";
    BAD_UNIT = "E0101", "a size or duration has a missing or unknown unit";
    OUT_OF_RANGE = "E0102", "a number is outside the range the statement allows";
    BAD_CIDR = "E0103", "an IP address or CIDR does not parse";
    BAD_METHOD = "E0104", "an HTTP method is not one rulegate routes";
    BAD_PATH = "E0105", "a path template is malformed";
    UNKNOWN_VALUE = "E0106", "a word is not one of the values the statement takes";
    BAD_JSON = "E0107", "a mock's JSON body does not parse";
    BAD_HEADER_NAME = "E0108", "a header name is not a valid HTTP token";
    BAD_URL = "E0110", "a backend target or authorizer URL is malformed";
    RESERVED_NAME = "E0111", "a backend parameter uses a name the gateway or a vendor reserves";
    UNDEFINED = "APIGATEWAY_NOT_FOUND", "a name refers to nothing defined in this service";
    DUPLICATE_NAME = "E0202", "two definitions of the same kind share a name";
    DUPLICATE_SERVICE = "APIGATEWAY_APIGROUPNAME_ISREPEAT", "two services share a name";
    DUPLICATE_ROUTE = "APIGATEWAY_API_PATH_ISREPEAT", "two routes match the same requests";
    DUPLICATE_KEY = "APIGATEWAY_ACCESSKEY_ISREPEAT", "two apps share an access key";
    DUPLICATE_PLAN = "APIGATEWAY_POLICYNAME_ISREPEAT", "two usage plans share a name";
    DUPLICATE_HOST = "APIGATEWAY_DOMAIN_ALREADY_EXISTS", "two services claim the same host";
    MISSING_STATEMENT = "E0203", "a block lacks a statement it requires";
    REPEATED_STATEMENT = "E0204", "a statement that may appear once appears again";
    NOT_APPLICABLE = "E0205", "a statement does not apply in this block or to this kind";
    UNDECLARED_PATH_VAR = "APIGATEWAY_PATH_PARAMETERS_MUST_BE_DEFINED", "a path variable is used but not declared in the route's path";
    MISSING_SECRET = "E0301", "a referenced secret (environment variable or file) is missing";
    BAD_KEY = "E0302", "key material (a PEM key or a JWKS document) does not parse";
    NO_ACTION = "E0401", "a route has no terminal action (mock, forward or issue tokens)";
    TWO_ACTIONS = "E0402", "a route has more than one terminal action";
    CONFLICT = "E0403", "two settings contradict each other";
    UNUSED = "W0001", "a definition is never used";
    BAD_PATTERN = "E0120", "a condition's `matches` pattern is not a valid regular expression";
    TOO_MANY_POLICIES = "E0410", "a route has more than five policy backends";
    POLICY_NEVER_HOLDS = "W0101", "a policy backend's conditions can never hold on its route";
    POLICY_UNREACHABLE = "W0102", "an earlier policy backend takes every request a later one would";
    ORCHESTRATION_INCOMPLETE = "E0411", "an orchestration gives no value, or a pre-processing rule feeds nothing";
    ORCHESTRATION_RULE_NEVER_APPLIES = "W0103", "an orchestration rule can never apply";
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Error,
    Warning,
}

/// One finding, pointing at the source.
#[derive(Debug, Clone)]
pub struct Diagnostic {
    pub severity: Severity,
    pub code: Code,
    pub message: String,
    pub span: Span,
    /// Short text under the marked span.
    pub label: String,
    /// Other places that explain this one ("first defined here").
    pub related: Vec<(Span, String)>,
    pub help: Option<String>,
    /// Source text that may hold a secret value (a mistaken inline `secret "…"`): shown
    /// masked wherever the source is rendered.
    pub conceal: Vec<Span>,
}

impl Diagnostic {
    pub fn error(code: Code, span: Span, message: impl Into<String>) -> Diagnostic {
        Diagnostic {
            severity: Severity::Error,
            code,
            message: message.into(),
            span,
            label: String::new(),
            related: Vec::new(),
            help: None,
            conceal: Vec::new(),
        }
    }

    pub fn warning(code: Code, span: Span, message: impl Into<String>) -> Diagnostic {
        Diagnostic {
            severity: Severity::Warning,
            ..Diagnostic::error(code, span, message)
        }
    }

    pub fn label(mut self, label: impl Into<String>) -> Self {
        self.label = label.into();
        self
    }

    pub fn help(mut self, help: impl Into<String>) -> Self {
        self.help = Some(help.into());
        self
    }

    pub fn maybe_help(mut self, help: Option<String>) -> Self {
        self.help = help;
        self
    }

    pub fn related(mut self, span: Span, label: impl Into<String>) -> Self {
        self.related.push((span, label.into()));
        self
    }
}

/// "did you mean `route`?" for the closest candidate, if one is close enough.
pub fn did_you_mean<'a>(
    word: &str,
    candidates: impl IntoIterator<Item = &'a str>,
) -> Option<String> {
    closest(word, candidates).map(|c| format!("did you mean `{c}`?"))
}

/// The candidate closest to `word` by edit distance, if it is plausibly a misspelling.
pub fn closest<'a>(word: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    let limit = (word.chars().count() / 3).max(1) + usize::from(word.len() > 6);
    candidates
        .into_iter()
        .map(|c| {
            (
                strsim::damerau_levenshtein(&word.to_lowercase(), &c.to_lowercase()),
                c,
            )
        })
        // A candidate that shares nothing with the word is not a misspelling of it.
        .filter(|(d, c)| *d <= limit && *d < word.chars().count().max(c.chars().count()))
        .min_by_key(|(d, c)| (*d, c.len()))
        .map(|(_, c)| c)
}

/// The text of every file in a policy set, by the file id in `Span::file`.
#[derive(Debug, Default, Clone)]
pub struct Sources {
    files: Vec<SourceFile>,
}

#[derive(Debug, Clone)]
struct SourceFile {
    name: String,
    text: String,
    line_starts: Vec<usize>,
}

impl Sources {
    pub fn new() -> Sources {
        Sources::default()
    }

    pub fn add(&mut self, name: impl Into<String>, text: impl Into<String>) -> u32 {
        let text = text.into();
        let line_starts = codespan_reporting::files::line_starts(&text).collect();
        self.files.push(SourceFile {
            name: name.into(),
            text,
            line_starts,
        });
        (self.files.len() - 1) as u32
    }

    pub fn name(&self, file: u32) -> &str {
        &self.files[file as usize].name
    }

    pub fn text(&self, file: u32) -> &str {
        &self.files[file as usize].text
    }

    pub fn len(&self) -> usize {
        self.files.len()
    }

    pub fn is_empty(&self) -> bool {
        self.files.is_empty()
    }

    /// A copy with every byte in `spans` but whitespace, quotes and braces replaced by `*`: the same
    /// lines and offsets, so diagnostics point at the same places, and no secret value.
    fn concealed(&self, spans: impl Iterator<Item = Span>) -> Sources {
        let mut out = self.clone();
        for span in spans {
            let Some(f) = out.files.get_mut(span.file as usize) else {
                continue;
            };
            let mut bytes = std::mem::take(&mut f.text).into_bytes();
            let end = (span.end as usize).min(bytes.len());
            for b in bytes.iter_mut().take(end).skip(span.start as usize) {
                if !b.is_ascii_whitespace() && !matches!(*b, b'"' | b'{' | b'}') {
                    *b = b'*';
                }
            }
            // Only whole characters were replaced (a span starts and ends on a boundary and
            // every byte of a multi-byte character became `*`), so this is valid UTF-8.
            f.text = String::from_utf8(bytes).unwrap_or_default();
        }
        out
    }

    /// 1-based line and column (in characters) of a byte offset.
    pub fn line_col(&self, file: u32, offset: u32) -> (usize, usize) {
        let f = &self.files[file as usize];
        let offset = (offset as usize).min(f.text.len());
        let line = f.line_starts.partition_point(|&s| s <= offset) - 1;
        let col = f.text[f.line_starts[line]..offset].chars().count();
        (line + 1, col + 1)
    }

    /// `path:line:col` of a span's start.
    pub fn location(&self, span: Span) -> String {
        let (line, col) = self.line_col(span.file, span.start);
        format!("{}:{}:{}", self.name(span.file), line, col)
    }
}

impl<'a> Files<'a> for Sources {
    type FileId = u32;
    type Name = &'a str;
    type Source = &'a str;

    fn name(&'a self, id: u32) -> Result<&'a str, FilesError> {
        self.files
            .get(id as usize)
            .map(|f| f.name.as_str())
            .ok_or(FilesError::FileMissing)
    }

    fn source(&'a self, id: u32) -> Result<&'a str, FilesError> {
        self.files
            .get(id as usize)
            .map(|f| f.text.as_str())
            .ok_or(FilesError::FileMissing)
    }

    fn line_index(&'a self, id: u32, byte_index: usize) -> Result<usize, FilesError> {
        let f = self.files.get(id as usize).ok_or(FilesError::FileMissing)?;
        Ok(f.line_starts.partition_point(|&s| s <= byte_index) - 1)
    }

    fn line_range(&'a self, id: u32, line_index: usize) -> Result<Range<usize>, FilesError> {
        let f = self.files.get(id as usize).ok_or(FilesError::FileMissing)?;
        let start = *f
            .line_starts
            .get(line_index)
            .ok_or(FilesError::LineTooLarge {
                given: line_index,
                max: f.line_starts.len() - 1,
            })?;
        let end = f
            .line_starts
            .get(line_index + 1)
            .copied()
            .unwrap_or(f.text.len());
        Ok(start..end)
    }
}

/// Sort diagnostics by file and position so output is stable whatever order checks ran in.
pub fn sort(diags: &mut [Diagnostic]) {
    diags.sort_by(|a, b| {
        (a.span.file, a.span.start, a.severity, a.code.id).cmp(&(
            b.span.file,
            b.span.start,
            b.severity,
            b.code.id,
        ))
    });
}

/// Render for a terminal (or a snapshot, with `color = false`).
pub fn render_human(sources: &Sources, diags: &[Diagnostic], color: bool) -> String {
    use codespan_reporting::term::termcolor::{Ansi, NoColor};
    let concealed;
    let sources = if diags.iter().any(|d| !d.conceal.is_empty()) {
        concealed = sources.concealed(diags.iter().flat_map(|d| d.conceal.iter().copied()));
        &concealed
    } else {
        sources
    };
    let config = term::Config::default();
    let mut out = Vec::new();
    for d in diags {
        let cs = to_codespan(sources, d);
        let result = if color {
            term::emit(&mut Ansi::new(&mut out), &config, sources, &cs)
        } else {
            term::emit(&mut NoColor::new(&mut out), &config, sources, &cs)
        };
        if result.is_err() {
            out.extend_from_slice(
                format!("{}: {}\n", sources.location(d.span), d.message).as_bytes(),
            );
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn to_codespan(sources: &Sources, d: &Diagnostic) -> CsDiagnostic<u32> {
    let len = sources.text(d.span.file).len();
    let clamp = |s: Span| {
        (s.start as usize).min(len)..(s.end as usize).min(len).max((s.start as usize).min(len))
    };
    let mut labels = vec![Label::primary(d.span.file, clamp(d.span)).with_message(d.label.clone())];
    for (span, msg) in &d.related {
        labels.push(Label::secondary(span.file, clamp(*span)).with_message(msg.clone()));
    }
    let severity = match d.severity {
        Severity::Error => CsSeverity::Error,
        Severity::Warning => CsSeverity::Warning,
    };
    CsDiagnostic::new(severity)
        .with_code(d.code.id)
        .with_message(d.message.clone())
        .with_labels(labels)
        .with_notes(d.help.iter().map(|h| format!("help: {h}")).collect())
}

/// Machine-readable form for `check --format json`.
#[derive(Debug, serde::Serialize)]
pub struct JsonDiagnostic {
    pub file: String,
    pub line: usize,
    pub column: usize,
    pub end_line: usize,
    pub end_column: usize,
    pub severity: Severity,
    pub code: &'static str,
    pub message: String,
    pub help: Option<String>,
}

pub fn to_json(sources: &Sources, diags: &[Diagnostic]) -> Vec<JsonDiagnostic> {
    diags
        .iter()
        .map(|d| {
            let (line, column) = sources.line_col(d.span.file, d.span.start);
            let (end_line, end_column) = sources.line_col(d.span.file, d.span.end);
            JsonDiagnostic {
                file: sources.name(d.span.file).to_string(),
                line,
                column,
                end_line,
                end_column,
                severity: d.severity,
                code: d.code.id,
                message: d.message.clone(),
                help: d.help.clone(),
            }
        })
        .collect()
}

pub fn has_errors(diags: &[Diagnostic]) -> bool {
    diags.iter().any(|d| d.severity == Severity::Error)
}
