//! Huawei Cloud API Gateway (APIG): `{"error_code": …, "error_msg": …, "request_id": …}` with a
//! space after `:` and `,`, the reason's detail appended to the message, `X-Request-Id`, and
//! its own OAuth2 token endpoint.

use super::catalogue;
use super::limit_headers::{LimitHeaders, Standing};
use super::profile::{request_id_header, Answer, Placeholder, Profile, Rows, Semantics};
use super::render::escape_json;
use crate::vocab::Dialect;

pub static PROFILE: Profile = Profile {
    dialect: Dialect::Huawei,
    request_id: request_id_header!("X-Request-Id"),
    write_body,
    answer_headers: &[("Server", "api-gateway")],
    placeholders: &[Placeholder::anywhere("{xxx}")],
    appends_detail: true,
    limit_headers,
    debug_requested,
    rows: Rows {
        row: catalogue::huawei_row,
        undocumented: &catalogue::HUAWEI_UNDOCUMENTED,
        tsv: include_str!("tsv/huawei.tsv"),
        newest_seed: "003_7abb9b69a0954cdb.txt",
    },
    semantics: Semantics {
        apps_outside_plans_refused: false,
        cross_origin_needs_cors: false,
        oauth2: true,
    },
};

fn write_body(out: &mut String, a: &Answer<'_>) {
    out.push_str("{\"error_code\": \"");
    escape_json(a.row.code, out);
    out.push_str("\", \"error_msg\": \"");
    escape_json(a.message, out);
    out.push_str("\", \"request_id\": \"");
    escape_json(a.request_id, out);
    out.push_str("\"}");
}

/// `X-Apig-Mode: debug` asks for Huawei's debugging headers.
fn debug_requested(headers: &http::HeaderMap) -> bool {
    // a name, not a string: a string would be parsed on every request
    const MODE: http::HeaderName = http::HeaderName::from_static("x-apig-mode");
    if !crate::request::head::may_carry(headers, &MODE) {
        return false;
    }
    headers
        .get(MODE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("debug"))
}

/// None, unless the request carries `X-Apig-Mode: debug`; then `X-Apig-RateLimit-api` (per
/// route), `-app` (per app) and `-ip` (per client IP) as `remain:9,limit:10,time:1 second`.
/// Quotas and header-keyed rates have no Huawei header.
fn limit_headers(s: &Standing<'_>, debug: bool, out: &mut LimitHeaders) {
    let Some(dimension) = s.huawei_dimension() else {
        return;
    };
    if debug {
        out.put(
            format!("X-Apig-RateLimit-{dimension}"),
            s.remaining,
            format!(
                "remain:{},limit:{},time:{} {}",
                s.remaining, s.limit, s.periods, s.period
            ),
        );
    }
}

/// The detail of Huawei's 429 for the limit that refused (wire-formats.md §1.2: `policy ip
/// over ratelimit,limit:5,time:1 minute`, spacing as documented); `None` for limits Huawei
/// has no dimension for.
pub fn over_ratelimit(s: &Standing<'_>) -> Option<String> {
    let dimension = s.huawei_dimension()?;
    Some(format!(
        "policy {dimension} over ratelimit,limit:{},time:{} {}",
        s.limit, s.periods, s.period
    ))
}
