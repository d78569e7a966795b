//! Tencent Cloud API Gateway (Kong lineage): bodies are lua-cjson output (`/` escaped as `\/`),
//! the request id is `X-Api-RequestId`, and apps reach APIs through usage plans.

use super::catalogue;
use super::limit_headers::{LimitHeaders, LimitKind, Standing};
use super::profile::{request_id_header, Answer, Placeholder, Profile, Rows, Semantics};
use super::render::escape_cjson;
use crate::vocab::Dialect;

pub static PROFILE: Profile = Profile {
    dialect: Dialect::Tencent,
    request_id: request_id_header!("X-Api-RequestId"),
    write_body,
    answer_headers: &[],
    placeholders: &[
        Placeholder::anywhere("$host"),
        Placeholder::anywhere("$uri"),
        Placeholder::anywhere("$env_mapping"),
        Placeholder::word("xxx"),
    ],
    appends_detail: false,
    limit_headers,
    debug_requested: |_| false,
    rows: Rows {
        row: catalogue::tencent_row,
        undocumented: &catalogue::TENCENT_UNDOCUMENTED,
        tsv: include_str!("tsv/tencent.tsv"),
        newest_seed: "001_e848cb234e21db11.txt",
    },
    semantics: Semantics {
        apps_outside_plans_refused: true,
        cross_origin_needs_cors: true,
        oauth2: false,
    },
};

/// `{"message":"…"}`, lua-cjson escaped.
fn write_body(out: &mut String, a: &Answer<'_>) {
    out.push_str("{\"message\":\"");
    escape_cjson(a.message, out);
    out.push_str("\"}");
}

/// `X-Api-RateLimit` for the route's own rates, `X-UsagePlan-RateLimit` for the app's and its
/// plans' rates, `X-UsagePlan-Quota` for quotas; each `remaining/limit` (the vendor capture
/// shows `X-Service-RateLimit: 5000/5000`; the order is unconfirmed).
fn limit_headers(s: &Standing<'_>, _debug: bool, out: &mut LimitHeaders) {
    let name = match s.kind {
        LimitKind::RouteRate(_) => "X-Api-RateLimit",
        LimitKind::AppRate => "X-UsagePlan-RateLimit",
        LimitKind::Quota => "X-UsagePlan-Quota",
    };
    out.put(
        name.to_string(),
        s.remaining,
        format!("{}/{}", s.remaining, s.limit),
    );
}
