//! JD Cloud API Gateway: compact `{"requestId":…,"error":{"code":status,"status":…,
//! "message":…}}`, `x-jdcloud-request-id`, and limit headers per period.

use super::catalogue;
use super::limit_headers::{LimitHeaders, Standing};
use super::profile::{request_id_header, Answer, Placeholder, Profile, Rows, Semantics};
use super::render::escape_json;
use crate::vocab::Dialect;

pub static PROFILE: Profile = Profile {
    dialect: Dialect::Jdcloud,
    request_id: request_id_header!("x-jdcloud-request-id"),
    write_body,
    answer_headers: &[],
    placeholders: &[Placeholder::word("argument"), Placeholder::word("a format")],
    appends_detail: false,
    limit_headers,
    debug_requested: |_| false,
    rows: Rows {
        row: catalogue::jdcloud_row,
        undocumented: &catalogue::JDCLOUD_UNDOCUMENTED,
        tsv: include_str!("tsv/jdcloud.tsv"),
        newest_seed: "004_fe4e34096a19d54d.txt",
    },
    semantics: Semantics {
        apps_outside_plans_refused: false,
        cross_origin_needs_cors: false,
        oauth2: false,
    },
};

fn write_body(out: &mut String, a: &Answer<'_>) {
    out.push_str("{\"requestId\":\"");
    escape_json(a.request_id, out);
    out.push_str("\",\"error\":{\"code\":");
    out.push_str(&a.row.status.to_string());
    out.push_str(",\"status\":\"");
    escape_json(a.row.code, out);
    out.push_str("\",\"message\":\"");
    escape_json(a.message, out);
    out.push_str("\"}}");
}

/// `x-jdcloud-limit-<period>` and `x-jdcloud-remaining-<period>`, for rates and quotas alike
/// (`day`, `month` for quotas). A window of several periods (`per 10s`) has none: JD names one
/// period only, and `x-jdcloud-limit-second: 5` would promise 5 a second.
fn limit_headers(s: &Standing<'_>, _debug: bool, out: &mut LimitHeaders) {
    if s.periods != 1 {
        return;
    }
    out.put(
        format!("x-jdcloud-limit-{}", s.period),
        s.remaining,
        s.limit.to_string(),
    );
    out.put(
        format!("x-jdcloud-remaining-{}", s.period),
        s.remaining,
        s.remaining.to_string(),
    );
}
