//! Why rulegate never gives some documented rows: one short reason for each row of the
//! vendors' tables that no `Reason` maps to, so `rulegate errors` accounts for every row and
//! the catalogue test fails when a row has neither a ✓ nor a reason (or a reason but a ✓: a row
//! that became emitted must lose its excuse).
//!
//! The reasons are data, written from the rows' own descriptions in the seeds: what a row
//! answers, and why that situation cannot reach a rulegate client. Rows of the vendors'
//! management APIs (console operations) are not answers to requests at all; they are left out of
//! the runtime share `rulegate errors` reports.

use super::Row;
use crate::vocab::Dialect;
use std::fmt;

/// Why a documented row is not emitted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Why {
    /// An answer of the vendor's management console or API, not of the gateway to a request.
    Console,
    /// The situation cannot arise: `check` refuses the policy that would cause it.
    RefusedByCheck {
        code: &'static str,
        what: &'static str,
    },
    /// The vendor documents the same situation twice; rulegate gives the other row.
    SameAs(&'static str),
    /// A vendor feature outside rulegate's scope.
    OutOfScope(&'static str),
    /// A failure of the vendor's own infrastructure, which rulegate does not have.
    VendorInternal(&'static str),
    /// The request is refused before there is an HTTP exchange to answer.
    BeforeHttp(&'static str),
    /// A feature not built yet.
    NotYet(&'static str),
}

impl Why {
    /// Whether the row describes a gateway's answer to a request.
    pub fn runtime(self) -> bool {
        !matches!(self, Why::Console)
    }
}

impl fmt::Display for Why {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Why::Console => f.write_str("a management console or API answer, not a gateway's"),
            Why::RefusedByCheck { code, what } => {
                write!(f, "cannot arise: `check` refuses {what} ({code})")
            }
            Why::SameAs(row) => write!(f, "the same situation's other row is given: {row}"),
            Why::OutOfScope(what) => write!(f, "outside rulegate's scope: {what}"),
            Why::VendorInternal(what) => {
                write!(
                    f,
                    "the vendor's own infrastructure failing ({what}); rulegate has none"
                )
            }
            Why::BeforeHttp(what) => write!(f, "refused before any HTTP answer: {what}"),
            Why::NotYet(what) => write!(f, "not built yet: {what}"),
        }
    }
}

/// A row, by code, status and message, and why it is not emitted.
struct Excuse(&'static str, u16, &'static str, Why);

const UNDEFINED: &str = "APIGATEWAY_NOT_FOUND";

#[rustfmt::skip]
static HUAWEI: &[Excuse] = &[
    Excuse("APIG.0103", 500, "The backend does not exist.", Why::RefusedByCheck { code: UNDEFINED, what: "a forward to an undefined backend" }),
    Excuse("APIG.0104", 500, "The plug-ins do not exist.", Why::RefusedByCheck { code: UNDEFINED, what: "a route naming an undefined provider, plan or backend" }),
    Excuse("APIG.0105", 500, "The backend configurations do not exist.", Why::RefusedByCheck { code: "E0203", what: "a backend without `targets`" }),
    Excuse("APIG.0107", 500, "The custom lua script encountered an unexpected error", Why::OutOfScope("Huawei's custom Lua scripts")),
    Excuse("APIG.0201", 502, "Backend unavailable.", Why::SameAs("502 APIG.0202 Backend unavailable")),
    Excuse("APIG.0201", 504, "Backend timeout.", Why::SameAs("504 APIG.0203 Backend timeout")),
    Excuse("APIG.0201", 500, "An unexpected error occurred", Why::SameAs("500 APIG.0601 Internal server error.")),
    Excuse("APIG.0204", 400, "SSL protocol is not supported: TLSv1.1", Why::BeforeHttp("rulegate's TLS speaks only 1.2 and 1.3, so a TLS 1.1 client fails the handshake")),
    Excuse("APIG.0305", 401, "Incorrect authentication information.", Why::SameAs("each scheme's own row (APIG.0301, APIG.0303, APIG.0312–0314, APIG.2xxx)")),
    Excuse("APIG.0310", 403, "The project is unavailable.", Why::OutOfScope("Huawei Cloud accounts and projects")),
    Excuse("APIG.0311", 401, "Incorrect debugging authentication information.", Why::OutOfScope("the console's online debugging of an API")),
    Excuse("APIG.0606", 500, "Failed to load the API configurations.", Why::RefusedByCheck { code: "E0001", what: "any policy that does not compile; a failed reload keeps serving the previous snapshot" }),
    Excuse("APIG.0608", 500, "Failed to obtain the admin token.", Why::VendorInternal("IAM administrator tokens")),
    Excuse("APIG.0609", 500, "The VPC backend does not exist.", Why::RefusedByCheck { code: UNDEFINED, what: "a forward to an undefined backend (VPC channels are backends here)" }),
    Excuse("APIG.0611", 500, "The backend port does not exist.", Why::RefusedByCheck { code: "E0110", what: "a target URL without a valid port" }),
    Excuse("APIG.0613", 503, "The IAM service is currently unavailable.", Why::VendorInternal("IAM")),
    Excuse("APIG.0802", 403, "The IAM user is forbidden in the currently selected region", Why::OutOfScope("IAM users and regions")),
    Excuse("APIG.2102", 400, "PublicKey is null", Why::RefusedByCheck { code: "E0301", what: "a signature key whose secret is missing" }),
    Excuse("APIG.1009", 400, "AppKey or AppSecret is invalid", Why::SameAs("the OAuth2 token endpoint's APIG.1004 (unknown client) and APIG.2201 (wrong secret)")),
];

#[rustfmt::skip]
static TENCENT: &[Excuse] = &[
    Excuse("401", 401, "Oauth found no related Oauth api.", Why::RefusedByCheck { code: UNDEFINED, what: "a route naming an undefined auth provider" }),
    Excuse("401", 401, "Oauth miss Oauth id_token.", Why::SameAs("401 Oauth found no id_token.")),
    Excuse("404", 404, "Not found micro service with key.", Why::OutOfScope("Tencent TSF micro-services")),
    Excuse("404", 404, "Not Found Host.", Why::SameAs("404 There is no api match host[$host].")),
    Excuse("404", 404, "Get Host Fail.", Why::BeforeHttp("a Host that is not text is refused by the HTTP parser")),
    Excuse("404", 404, "Could not support method.", Why::SameAs("405 Method Not Allowed.")),
    Excuse("404", 404, "Not allow use HTTPS protocol或者Not allow use HTTP protocol.", Why::SameAs("426 Not allow use HTTP protocol. / Not allow use HTTPS protocol.")),
    Excuse("404", 404, "Found no api.", Why::SameAs("404 There is no api match uri[$uri].")),
    Excuse("426", 426, "Not allow use xxx protocol.", Why::SameAs("426 Not allow use HTTP protocol. / Not allow use HTTPS protocol. (the template's two instances)")),
    Excuse("481", 481, "API config error.", Why::RefusedByCheck { code: "E0001", what: "any policy that does not compile" }),
    Excuse("481", 481, "TSF config error.", Why::OutOfScope("Tencent TSF micro-services")),
    Excuse("481", 481, "Get location of micro service info fail.", Why::OutOfScope("Tencent TSF micro-services")),
    Excuse("481", 481, "Only support the map_from like method.req.{path}.{}.", Why::OutOfScope("Tencent TSF micro-services")),
    Excuse("481", 481, "Found no valid cors config.", Why::RefusedByCheck { code: "E0004", what: "a `cors` block that does not parse" }),
    Excuse("481", 481, "Oauth public key error.", Why::RefusedByCheck { code: "E0302", what: "key material that does not parse" }),
    Excuse("481", 481, "Oauth id_token location forbidden.", Why::RefusedByCheck { code: "E0106", what: "a token location that is not a header, a query parameter or a cookie" }),
    Excuse("481", 481, "Oauth found no oauth config.", Why::RefusedByCheck { code: UNDEFINED, what: "a route naming an undefined auth provider" }),
    Excuse("481", 481, "Oauth found no public key.", Why::RefusedByCheck { code: "E0301", what: "a missing key file or variable" }),
    Excuse("481", 481, "Mock config error.", Why::RefusedByCheck { code: "E0107", what: "a mock whose JSON does not parse" }),
    Excuse("500", 500, "Error occurred during query params.", Why::VendorInternal("its query-string processing; rulegate's parameter checks answer with the documented 403 rows")),
];

#[rustfmt::skip]
static JDCLOUD: &[Excuse] = &[
    Excuse("UNKNOWN", 500, "Unknown Error", Why::SameAs("500 INTERNAL")),
    Excuse("APIGATEWAY_PATH_PARAMETERS_MUST_BE_DEFINED", 400, "Please define path parameter in the Parameter Path", Why::RefusedByCheck { code: "APIGATEWAY_PATH_PARAMETERS_MUST_BE_DEFINED", what: "a rewrite naming an undeclared path variable" }),
    Excuse("APIGATEWAY_API_PATH_ISREPEAT", 409, "API Path Repeated", Why::RefusedByCheck { code: "APIGATEWAY_API_PATH_ISREPEAT", what: "two routes that match the same requests" }),
];

/// JD's rows that answer its resource-management API (the generic OpenAPI states and every
/// `APIGATEWAY_*` / `APIGW_*` code not listed above): console operations.
fn jd_console(row: &Row) -> bool {
    const GENERIC: [&str; 6] = [
        "ARGUMENT_MISMATCH",
        "FAILED_PRECONDITION",
        "RESOURCE_NOT_EXIST",
        "ABORTED",
        "ALREADY_EXISTS",
        "CONFLICT",
    ];
    GENERIC.contains(&row.code)
        || row.code.starts_with("APIGATEWAY_")
        || row.code.starts_with("APIGW_")
}

/// Why `row` (a documented row of `dialect`) is not emitted; `None` when no reason is written.
pub fn why(dialect: Dialect, row: &Row) -> Option<Why> {
    let listed = table(dialect)
        .iter()
        .find(|e| e.0 == row.code && e.1 == row.status && e.2 == row.message)
        .map(|e| e.3);
    listed.or_else(|| (dialect == Dialect::Jdcloud && jd_console(row)).then_some(Why::Console))
}

/// Every excuse written for `dialect`, as (code, status, message): the catalogue test checks
/// that each still names a documented row rulegate does not emit.
pub fn listed(dialect: Dialect) -> Vec<(&'static str, u16, &'static str)> {
    table(dialect).iter().map(|e| (e.0, e.1, e.2)).collect()
}

fn table(dialect: Dialect) -> &'static [Excuse] {
    match dialect {
        Dialect::Huawei => HUAWEI,
        Dialect::Tencent => TENCENT,
        Dialect::Jdcloud => JDCLOUD,
    }
}
