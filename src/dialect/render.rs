//! A [`Reason`] as bytes on the wire: the filled message, the body in the dialect's exact shape,
//! and the headers.
//!
//! Each dialect has its own hand-written body writer (`Profile::write_body`) because the vendors'
//! bodies differ in ways a generic JSON writer cannot reproduce: Tencent is lua-cjson output
//! (`/` escaped as `\/`), Huawei's template puts a space after `:` and `,`, JD's is compact
//! (wire-formats.md §5.4). The escapers they share are here.

use super::catalogue::{row, Row};
use super::profile::{Answer, Placeholder, Profile};
use super::reason::{AuthFailure, Reason};
use crate::vocab::Dialect;

/// A rejection ready to be written: status, headers in order, body bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ErrorResponse {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

/// The header that carries the request id in `dialect`'s answers.
pub fn request_id_header(dialect: Dialect) -> &'static str {
    dialect.profile().request_id.text
}

/// The answer `dialect` gives for `reason`, byte for byte.
pub fn render(dialect: Dialect, reason: &Reason, request_id: &str) -> ErrorResponse {
    let profile = dialect.profile();
    let row = row(dialect, reason);
    let message = filled_message(profile, row, reason);
    let mut body = String::with_capacity(message.len() + request_id.len() + 96);
    let mut headers = vec![
        ("Content-Type".to_string(), "application/json".to_string()),
        (profile.request_id.text.to_string(), request_id.to_string()),
    ];
    headers.extend(
        profile
            .answer_headers
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string())),
    );
    let answer = Answer {
        row,
        message: &message,
        request_id,
    };
    (profile.write_body)(&mut body, &answer);
    ErrorResponse {
        status: row.status,
        headers,
        body,
    }
}

/// The filled message as it appears in the body. Some dialects append `reason.detail()` after
/// the documented text minus its final period (`Profile::appends_detail`).
pub fn message(dialect: Dialect, reason: &Reason) -> String {
    filled_message(dialect.profile(), row(dialect, reason), reason)
}

fn filled_message(profile: &Profile, row: &Row, reason: &Reason) -> String {
    let filled = fill(row.message, profile.placeholders, &values(reason));
    match reason.detail() {
        Some(detail) if profile.appends_detail => {
            let text = filled.strip_suffix('.').unwrap_or(&filled);
            format!("{text}: {detail}")
        }
        _ => filled,
    }
}

/// The values a reason supplies, keyed by placeholder token. Tokens do not collide across
/// dialects, so one list serves them all; a template takes only the ones it declares.
fn values(reason: &Reason) -> Vec<(&'static str, String)> {
    match reason {
        Reason::NoHost { host } => vec![("$host", host.clone())],
        Reason::NoStage { stage, .. } => vec![("$env_mapping", stage.clone())],
        Reason::NoRoute { uri }
        | Reason::MethodNotAllowed { uri, .. }
        | Reason::CrossOriginWithoutCors { uri } => vec![("$uri", uri.clone())],
        Reason::ProtocolNotAllowed { used, allowed } => vec![
            (
                "{xxx}",
                allowed
                    .iter()
                    .map(|p| p.upper())
                    .collect::<Vec<_>>()
                    .join(","),
            ),
            ("argument", used.upper().to_string()),
        ],
        Reason::ParamMissing { name, .. } => {
            vec![("xxx", name.clone()), ("argument", name.clone())]
        }
        Reason::ParamInvalid { name, expected, .. } => vec![
            ("xxx", name.clone()),
            ("argument", name.clone()),
            ("a format", expected.clone()),
        ],
        Reason::ParamOutOfRange { name, .. } | Reason::OrchestrationFailed { name, .. } => {
            vec![("xxx", name.clone())]
        }
        Reason::FormContentTypeRequired => vec![
            ("argument", "Content-Type".to_string()),
            ("a format", "application/x-www-form-urlencoded".to_string()),
        ],
        Reason::WebSocketKeyMissing => vec![("argument", "Sec-WebSocket-Key".to_string())],
        Reason::WebSocketVersionMissing => {
            vec![("argument", "Sec-WebSocket-Version".to_string())]
        }
        Reason::Auth(AuthFailure::HmacAlgorithmUnsupported { algorithm }) => {
            vec![("xxx", algorithm.clone())]
        }
        Reason::Auth(AuthFailure::HmacHeaderMissing { name }) => vec![("xxx", name.clone())],
        _ => Vec::new(),
    }
}

/// Substitutes, in one left-to-right pass, every placeholder of `template` for which `values`
/// has a value. One pass, so a value that itself contains a token (a URI `/xxx`) stays as sent.
fn fill(template: &str, placeholders: &[Placeholder], values: &[(&'static str, String)]) -> String {
    let mut out = String::with_capacity(template.len() + 32);
    let mut rest = template;
    while let Some(c) = rest.chars().next() {
        let before = &template[..template.len() - rest.len()];
        let hit = placeholders.iter().find_map(|p| {
            let after = rest.strip_prefix(p.token)?;
            if p.word && !(word_edge(before.chars().next_back()) && word_edge(after.chars().next()))
            {
                return None;
            }
            let value = values.iter().find(|(t, _)| *t == p.token)?;
            Some((p.token.len(), value.1.as_str()))
        });
        match hit {
            Some((len, value)) => {
                out.push_str(value);
                rest = &rest[len..];
            }
            None => {
                out.push(c);
                rest = &rest[c.len_utf8()..];
            }
        }
    }
    out
}

fn word_edge(c: Option<char>) -> bool {
    !matches!(c, Some(c) if c.is_alphanumeric() || c == '_')
}

/// lua-cjson's string escaping, as Tencent's Kong-lineage gateway emits it: `"` `\` `/`, the
/// short escapes `\b \t \n \f \r`, other control characters and DEL as lowercase `\u00xx`;
/// everything else, non-ASCII included, verbatim.
pub(crate) fn escape_cjson(s: &str, out: &mut String) {
    for c in s.chars() {
        match c {
            '/' => out.push_str("\\/"),
            '\u{7f}' => out.push_str("\\u007f"),
            _ => escape_json_char(c, out),
        }
    }
}

/// Plain JSON string escaping (`"`, `\`, control characters), leaving `/` and non-ASCII alone:
/// what Huawei's and JD's bodies need.
pub(crate) fn escape_json(s: &str, out: &mut String) {
    for c in s.chars() {
        escape_json_char(c, out);
    }
}

fn escape_json_char(c: char, out: &mut String) {
    match c {
        '"' => out.push_str("\\\""),
        '\\' => out.push_str("\\\\"),
        '\u{8}' => out.push_str("\\b"),
        '\t' => out.push_str("\\t"),
        '\n' => out.push_str("\\n"),
        '\u{c}' => out.push_str("\\f"),
        '\r' => out.push_str("\\r"),
        c if c < ' ' => {
            const HEX: &[u8; 16] = b"0123456789abcdef";
            let b = c as usize;
            out.push_str("\\u00");
            out.push(HEX[b >> 4] as char);
            out.push(HEX[b & 0xf] as char);
        }
        c => out.push(c),
    }
}

/// The HTTP/1.1 status line rulegate writes for its own answers, without the line end: what
/// `explain` and `test` print and what `serve` sends (hyper writes the same phrase, see
/// `server::handler::to_hyper`).
pub fn status_line(status: u16) -> String {
    format!("HTTP/1.1 {status} {}", reason_phrase(status))
}

/// The reason phrase for a status line. Standard codes use the IANA registry (RFC 9110 and
/// the RFCs it lists); the non-standard statuses the vendors document get nginx's texts for
/// 494 and 499 and, for Tencent's 481, the form Tencent's front end is seen to write for a
/// status it has no phrase for (`HTTP/1.1 435 status code 435`, wire-formats.md §2.3). An
/// unknown status gets an empty phrase, which HTTP/1.1 allows.
pub fn reason_phrase(status: u16) -> &'static str {
    match status {
        100 => "Continue",
        101 => "Switching Protocols",
        102 => "Processing",
        103 => "Early Hints",
        200 => "OK",
        201 => "Created",
        202 => "Accepted",
        203 => "Non-Authoritative Information",
        204 => "No Content",
        205 => "Reset Content",
        206 => "Partial Content",
        207 => "Multi-Status",
        208 => "Already Reported",
        226 => "IM Used",
        300 => "Multiple Choices",
        301 => "Moved Permanently",
        302 => "Found",
        303 => "See Other",
        304 => "Not Modified",
        305 => "Use Proxy",
        307 => "Temporary Redirect",
        308 => "Permanent Redirect",
        400 => "Bad Request",
        401 => "Unauthorized",
        402 => "Payment Required",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        406 => "Not Acceptable",
        407 => "Proxy Authentication Required",
        408 => "Request Timeout",
        409 => "Conflict",
        410 => "Gone",
        411 => "Length Required",
        412 => "Precondition Failed",
        413 => "Content Too Large",
        414 => "URI Too Long",
        415 => "Unsupported Media Type",
        416 => "Range Not Satisfiable",
        417 => "Expectation Failed",
        421 => "Misdirected Request",
        422 => "Unprocessable Content",
        423 => "Locked",
        424 => "Failed Dependency",
        425 => "Too Early",
        426 => "Upgrade Required",
        428 => "Precondition Required",
        429 => "Too Many Requests",
        431 => "Request Header Fields Too Large",
        451 => "Unavailable For Legal Reasons",
        481 => "status code 481",
        494 => "Request Header Or Cookie Too Large",
        499 => "Client Closed Request",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        505 => "HTTP Version Not Supported",
        506 => "Variant Also Negotiates",
        507 => "Insufficient Storage",
        508 => "Loop Detected",
        510 => "Not Extended",
        511 => "Network Authentication Required",
        _ => "",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cjson(s: &str) -> String {
        let mut out = String::new();
        escape_cjson(s, &mut out);
        out
    }

    fn json(s: &str) -> String {
        let mut out = String::new();
        escape_json(s, &mut out);
        out
    }

    #[test]
    fn cjson_escapes_slash_quote_backslash() {
        assert_eq!(cjson(r#"/a "b" \c"#), r#"\/a \"b\" \\c"#);
    }

    #[test]
    fn cjson_escapes_controls_like_lua_cjson() {
        assert_eq!(
            cjson("\u{0}\u{7}\u{8}\t\n\u{b}\u{c}\r\u{e}\u{1f}\u{7f}"),
            r"\u0000\u0007\b\t\n\u000b\f\r\u000e\u001f\u007f"
        );
    }

    #[test]
    fn cjson_leaves_non_ascii_as_utf8() {
        assert_eq!(cjson("接口/é"), "接口\\/é");
    }

    #[test]
    fn json_keeps_slash_and_del() {
        assert_eq!(json("/a/b\u{7f}"), "/a/b\u{7f}");
    }

    #[test]
    fn json_escapes_quote_backslash_controls() {
        assert_eq!(
            json("\"x\\y\"\n\r\t\u{8}\u{c}\u{1}\u{1a}"),
            r#"\"x\\y\"\n\r\t\b\f\u0001\u001a"#
        );
    }

    #[test]
    fn fill_is_one_pass_and_respects_words() {
        let ph = Dialect::Tencent.profile().placeholders;
        let vals = vec![
            ("xxx", "a xxx b".to_string()),
            ("$uri", "/$host".to_string()),
        ];
        assert_eq!(
            fill("header xxx is required.", ph, &vals),
            "header a xxx b is required."
        );
        assert_eq!(fill("uri[$uri] $host", ph, &vals), "uri[/$host] $host");
        assert_eq!(fill("xxxy yxxx", ph, &vals), "xxxy yxxx");
        let jd = Dialect::Jdcloud.profile().placeholders;
        let vals = vec![("argument", "page".to_string())];
        assert_eq!(
            fill("Parameter Argument Error", jd, &vals),
            "Parameter Argument Error"
        );
        assert_eq!(
            fill("The parameter argument is required", jd, &vals),
            "The parameter page is required"
        );
    }

    #[test]
    fn reason_phrases_cover_vendor_statuses() {
        for status in [
            400, 401, 403, 404, 405, 413, 414, 426, 429, 431, 481, 494, 499, 500, 501, 502, 503,
            504,
        ] {
            assert!(!reason_phrase(status).is_empty(), "{status}");
        }
        assert_eq!(reason_phrase(499), "Client Closed Request");
        assert_eq!(reason_phrase(599), "");
    }
}
