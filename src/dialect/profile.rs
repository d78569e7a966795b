//! What makes a dialect a dialect: one [`Profile`] per vendor, in `dialect/<vendor>.rs`.
//!
//! Everything that differs between Tencent, Huawei and JD Cloud is a field here — the wire
//! format of an answer (request-id header, body, headers, placeholders), the limit headers, the
//! catalogue rows, and the few places where the vendors' gateways *behave* differently (usage
//! plans, cross-origin requests, OAuth2). The rest of the crate asks the profile
//! (`dialect.profile()`) instead of matching on the dialect, so a new dialect is its word in
//! `vocab`, its file, its registration in `dialect/mod.rs` and its rows in the catalogue
//! (`docs/extending.md`, "Adding a dialect").
//!
//! Behaviour is plain `fn` pointers in a `static`, not a trait: a profile is data the compiler
//! can check is complete (every field must be given), and it costs no allocation to reach.

use http::HeaderName;

use super::catalogue::Row;
use super::limit_headers::{LimitHeaders, Standing};
use super::reason::Reason;
use crate::vocab::Dialect;

/// One vendor's dialect. Each `dialect/<vendor>.rs` exports one, as `PROFILE`.
pub struct Profile {
    /// The dialect it registers for. Its name (`dialect tencent`) is `Dialect::name`, in
    /// `vocab`: the parser reads it, and the language does not depend on `dialect`.
    pub dialect: Dialect,
    /// The header that carries the request id, on answers and on forwarded requests.
    pub request_id: RequestIdHeader,
    /// Writes the body of an answer in the vendor's exact shape.
    pub write_body: fn(out: &mut String, answer: &Answer<'_>),
    /// Headers every answer carries after `Content-Type` and the request id.
    pub answer_headers: &'static [(&'static str, &'static str)],
    /// The placeholders the vendor's message templates use.
    pub placeholders: &'static [Placeholder],
    /// The message ends with the reason's detail (`Reason::detail`), after the documented
    /// text minus its final period (Huawei, wire-formats.md §1.2).
    pub appends_detail: bool,
    /// The header(s) that show one limit's standing; `debug`: the request asked for debug
    /// headers (`X-Apig-Mode: debug`).
    pub limit_headers: fn(standing: &Standing<'_>, debug: bool, out: &mut LimitHeaders),
    /// Whether the request asks for the vendor's debug headers (Huawei: `X-Apig-Mode: debug`).
    pub debug_requested: fn(headers: &http::HeaderMap) -> bool,
    pub rows: Rows,
    pub semantics: Semantics,
}

/// The catalogue side of a dialect: the mapping and its data stay in `catalogue.rs` and
/// `tsv/`, where the three vendors can be read side by side; the profile points at them.
pub struct Rows {
    /// The row the dialect answers a reason with (an exhaustive match in `catalogue.rs`).
    pub row: fn(&Reason) -> &'static Row,
    /// The undocumented entries rulegate may emit (documented=false).
    pub undocumented: &'static [&'static Row],
    /// The vendor's table as shipped in `/work/shared/errors`: code, http_status, message,
    /// description, seed; TAB separated, one header line.
    pub tsv: &'static str,
    /// The seed whose rows count as documented: where the vendor's documents disagree, the
    /// newer one wins.
    pub newest_seed: &'static str,
}

/// Where the vendors' gateways behave differently, not only answer differently.
pub struct Semantics {
    /// Once a service has usage plans, an app that is in none of them reaches nothing
    /// (Tencent reaches APIs through usage plans).
    pub apps_outside_plans_refused: bool,
    /// A cross-origin request, preflight included, to a route without `cors` is refused with
    /// `CrossOriginWithoutCors` (Tencent). Elsewhere it is forwarded without CORS headers, and
    /// a preflight is a method the route does not take.
    pub cross_origin_needs_cors: bool,
    /// The OAuth2 token endpoint and its rows exist (Huawei): a service of another dialect
    /// cannot have an oauth2 provider.
    pub oauth2: bool,
}

/// What a body writer gets: the row, the filled message and the request id.
pub struct Answer<'a> {
    pub row: &'a Row,
    pub message: &'a str,
    pub request_id: &'a str,
}

/// A request-id header name as the vendor writes it (`text`, what `explain` prints) and as a
/// parsed name (`name`, what `serve` sends without parsing it per request). Built by
/// [`request_id_header!`] from the text alone, so the two cannot disagree.
pub struct RequestIdHeader {
    pub text: &'static str,
    pub name: HeaderName,
}

/// `RequestIdHeader` from its text: the name is the text in lower case, computed at compile
/// time (a header name that is not a valid token fails the build).
macro_rules! request_id_header {
    ($text:literal) => {{
        const TEXT: &str = $text;
        const LOWER: [u8; TEXT.len()] = $crate::dialect::profile::ascii_lowercase(TEXT);
        $crate::dialect::profile::RequestIdHeader {
            text: TEXT,
            name: http::HeaderName::from_static(match std::str::from_utf8(&LOWER) {
                Ok(name) => name,
                Err(_) => panic!("a request-id header name is ASCII"),
            }),
        }
    }};
}
pub(crate) use request_id_header;

/// `s` in ASCII lower case, as an array of its length (for [`request_id_header!`]).
pub const fn ascii_lowercase<const N: usize>(s: &str) -> [u8; N] {
    let bytes = s.as_bytes();
    assert!(bytes.len() == N);
    let mut out = [0u8; N];
    let mut i = 0;
    while i < N {
        out[i] = bytes[i].to_ascii_lowercase();
        i += 1;
    }
    out
}

/// A placeholder as the vendor writes it in a template. A `word` placeholder is a plain word
/// (`xxx`, JD's `argument`) and only counts where it stands alone, so that `Argument` in
/// "Parameter Argument Error" or a word that merely contains it is left alone.
pub struct Placeholder {
    pub token: &'static str,
    pub word: bool,
}

impl Placeholder {
    /// A placeholder that counts wherever it appears (`$uri`, `{xxx}`).
    pub const fn anywhere(token: &'static str) -> Placeholder {
        Placeholder { token, word: false }
    }

    /// A placeholder that is a plain word and counts only where it stands alone.
    pub const fn word(token: &'static str) -> Placeholder {
        Placeholder { token, word: true }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_request_id_header_name_is_its_text_in_lower_case() {
        let h = request_id_header!("X-Api-RequestId");
        assert_eq!(h.text, "X-Api-RequestId");
        assert_eq!(h.name, HeaderName::from_static("x-api-requestid"));
    }

    #[test]
    fn no_backend_parameter_may_name_a_dialects_request_id_header() {
        let reserved = crate::policy::parse::upstream::FORWARDING_HEADERS;
        for d in Dialect::ALL {
            let name = d.profile().request_id.name.as_str();
            assert!(reserved.contains(&name), "{d}: {name} is not reserved");
        }
    }

    #[test]
    fn every_profile_is_registered_under_its_own_dialect() {
        for d in Dialect::ALL {
            assert_eq!(d.profile().dialect, d);
            assert_eq!(
                d.profile().request_id.name.as_str(),
                d.profile().request_id.text.to_ascii_lowercase()
            );
        }
    }
}
