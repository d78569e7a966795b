//! The vendors' catalogues as rulegate emits them: one static [`Row`] per answer, and the
//! mapping from a canonical [`Reason`] to the row each dialect documents for it.
//!
//! Every row rulegate can emit is either a row of the vendor's *newer* document (Tencent seed
//! `001_e848cb234e21db11.txt`, Huawei seed `003_7abb9b69a0954cdb.txt`, JD Cloud seed
//! `004_fe4e34096a19d54d.txt`; see the embedded `tsv/*.tsv`) with the same code, status and
//! message template, or an entry explicitly marked undocumented, with a note saying why and where
//! its text comes from. `tests/catalogue.rs` enforces this for every `Reason::examples()` value.
//!
//! # Mapping
//!
//! Tencent codes are the status as text, as in the vendor table. `—` marks an undocumented entry
//! (see [`undocumented`]). `argument`/`a format` are JD's placeholders.
//!
//! | reason | tencent | huawei | jdcloud |
//! |---|---|---|---|
//! | UriTooLarge | — 414 `Request-URI Too Large.` | 414 APIG.0201 `Request URI too large.` | — 414 OUT_OF_RANGE `Request-URI Too Large` |
//! | HeaderTooLarge, HeadersTooLarge | — 431 `Request Header Fields Too Large.` | 494 APIG.0201 `Request headers too large.` | — 431 OUT_OF_RANGE `Request Header Fields Too Large` |
//! | BodyTooLarge | — 413 `Request Entity Too Large.` | 413 APIG.0201 `Request entity too large.` | — 413 OUT_OF_RANGE `Request Entity Too Large` |
//! | BadRequest | — 400 `Bad Request.` | 400 APIG.0602 `Bad request.` | 400 INVALID_ARGUMENT `Parameter Argument Error` |
//! | BodyTimeout (stand-in) | — 400 `Bad Request.` | 400 APIG.0602 `Bad request.` | 400 INVALID_ARGUMENT `Parameter Argument Error` |
//! | NoHost | 404 `There is no api match host[$host].` | 404 APIG.0101 `The API does not exist or has not been published in the environment.` | 404 NOT_FOUND `resource cannot be found` |
//! | NoStage, from_path | 404 `There is no api match default env_mapping[$env_mapping].` | 404 APIG.0101 (published) | 404 NOT_FOUND |
//! | NoStage, not from_path | 404 `There is no api match env_mapping[$env_mapping].` | 404 APIG.0101 (published) | 404 NOT_FOUND |
//! | NoRoute | 404 `There is no api match uri[$uri].` | 404 APIG.0101 (published) | 404 NOT_FOUND |
//! | MethodNotAllowed | 405 `Method Not Allowed.` | 404 APIG.0101 `The API does not exist.` | 501 NOT_IMPLEMENTED `method is not supported now` |
//! | ProtocolNotAllowed | 426 `Not allow use HTTP protocol.` / `Not allow use HTTPS protocol.` (protocol used) | 400 APIG.0607 `The following protocol is supported: {xxx}` (allowed, upper case, `,`-joined) | 400 ARGUMENT_NOT_SUPPORT `The parameter argument is not supported` (argument = protocol used, upper case) |
//! | ClientCertificateRequired | — 400 `Bad Request.` (the undocumented bad-request row) | 400 APIG.0205 `Verify client certificate failed` | 401 UNAUTHENTICATED `Verification Failed` |
//! | CrossOriginWithoutCors | 429 `req is cross origin, api $uri need open cors flag on qcloud apigateway.` | 403 APIG.0306 `API access denied.` (never produced: see below) | 403 HTTP_FORBIDDEN `No Resource Permission` (never produced) |
//! | ClientIpDenied | — 403 `Your IP address is not allowed.` | 403 APIG.0402 | 403 HTTP_FORBIDDEN |
//! | ClientIpUnknown | 403 `Cannot identify the client IP address, unix domain sockets are not supported.` (the client's address is unknown; the row's Unix-socket clause is Tencent's cause, not the only one) | 403 APIG.0401 `Unknown client IP address.` | 403 HTTP_FORBIDDEN (JD has no row for it; as a denied address) |
//! | WebSocketKeyMissing | 403 `need header Sec-WebSocket-Key.` | 400 APIG.0201 `API request error.` + detail | 400 ARGUMENT_NOT_FOUND (argument = `Sec-WebSocket-Key`) |
//! | WebSocketVersionMissing | 403 `need header Sec-WebSocket-Version.` | 400 APIG.0201 + detail | 400 ARGUMENT_NOT_FOUND (argument = `Sec-WebSocket-Version`) |
//! | Auth(HmacNoAuthorization) | — 401 `HMAC signature cannot be verified, a validate authorization header is required` | 401 APIG.0303 | 401 UNAUTHENTICATED `Verification Failed` |
//! | Auth(HmacFormat) | 401 `HMAC authorization format error.` | 401 APIG.0303 | 401 UNAUTHENTICATED |
//! | Auth(HmacIdOrSignatureMissing) | 401 `HMAC id or signature missing.` | 401 APIG.0303 | 401 UNAUTHENTICATED |
//! | Auth(HmacParamsMissing) | 401 `HMAC authorization headers is invalidate.` | 401 APIG.0303 | 401 UNAUTHENTICATED |
//! | Auth(HmacAlgorithmUnsupported) | 401 `HMAC algorithm xxx not supported.` (xxx = algorithm) | 401 APIG.0303 | 401 UNAUTHENTICATED |
//! | Auth(HmacNoDate) | 401 `HMAC signature cannot be verified, a valid date or x-date header is required.` | 401 APIG.0303 | 401 UNAUTHENTICATED |
//! | Auth(HmacBadXDate) | 401 `HMAC signature cannot be verified, a valid x-date header is required for HMAC Authentication.` | 401 APIG.0303 | 401 UNAUTHENTICATED |
//! | Auth(HmacXDateExpired) | 401 `HMAC signature cannot be verified, the x-date header is out of date for HMAC Authentication.` | 401 APIG.0303 | 401 UNAUTHENTICATED |
//! | Auth(HmacHeaderMissing) | 401 `HMAC signature cannot be verified, a valid xxx header is required.` (xxx = header) | 401 APIG.0303 | 401 UNAUTHENTICATED |
//! | Auth(HmacRepeatedHeader) | 401 `HMAC do not support multiple HTTP header.` | 401 APIG.0303 | 401 UNAUTHENTICATED |
//! | Auth(HmacUnknownKey) | 401 `HMAC signature cannot be verified.` | 401 APIG.0303 | 401 UNAUTHENTICATED |
//! | Auth(HmacMismatch) | 401 `HMAC signature does not match.` | 401 APIG.0303 | 401 UNAUTHENTICATED |
//! | Auth(Signature) | 401 `HMAC signature cannot be verified.` | 401 APIG.0303 `Incorrect app authentication information.` + detail | 401 UNAUTHENTICATED |
//! | Auth(TokenHeaderMissing) | 401 `Oauth found no authorization header.` | 401 APIG.0301 `Incorrect IAM authentication information.` | 401 UNAUTHENTICATED |
//! | Auth(TokenFormat) | 401 `Oauth authorization header format error.` | 401 APIG.0301 | 401 UNAUTHENTICATED |
//! | Auth(TokenMissing) | 401 `Oauth found no id_token.` | 401 APIG.0301 | 401 UNAUTHENTICATED |
//! | Auth(TokenInvalid) | 401 `Oauth id_token verify error.` | 401 APIG.0301 + detail | 401 UNAUTHENTICATED |
//! | Auth(TokenExpired) | 401 `Oauth id_token verify error.` | 401 APIG.0307 `The token must be updated.` | 401 UNAUTHENTICATED |
//! | Auth(ApiKeyMissing) | — 401 `No API key found in request.` (Kong key-auth) | 401 APIG.0303 | 401 UNAUTHENTICATED |
//! | Auth(BasicMissing) | — 401 `Unauthorized.` (Kong basic-auth) | 401 APIG.0303 | 401 UNAUTHENTICATED |
//! | Auth(CredentialsInvalid) | — 401 `Invalid authentication credentials.` (Kong) | 401 APIG.0303 | 401 UNAUTHENTICATED |
//! | Auth(ApiAppNotBound) | 403 `Found no validate apiapp.` | 403 APIG.0304 | 403 HTTP_FORBIDDEN |
//! | Auth(ClaimsDenied) | 401 `Oauth id_token verify error.` | 403 APIG.0302 `The IAM user is not authorized to access the API.` | 403 HTTP_FORBIDDEN |
//! | Auth(AuthorizerDenied) | 401 `Oauth call authentication server fail.` | 401 APIG.0312 `…,auth fail` | 401 UNAUTHENTICATED |
//! | Auth(AuthorizerIdentityMissing) | 401 `Oauth signature cannot be verified, a validate authorization header is required.` | 401 APIG.0313 `…,identities error` | 401 UNAUTHENTICATED |
//! | Auth(AuthorizerForbidden) | 401 `Oauth call authentication server fail.` | 403 APIG.0314 `…,access deny` | 403 HTTP_FORBIDDEN |
//! | Auth(AuthorizerUnreachable) | 401 `Oauth call authentication server fail.` | 500 APIG.0616 | 500 INTERNAL `Internal Error` |
//! | Auth(AuthorizerBadResponse) | 401 `Oauth call authentication server fail.` | 500 APIG.0617 | 500 INTERNAL |
//! | Auth(AuthorizerUnresolved) | 401 `Oauth call authentication server fail.` | 500 APIG.0615 | 500 INTERNAL |
//! | AppNotBound | 401 `HMAC apikey is invalid for API.` | 403 APIG.0304 | 403 HTTP_FORBIDDEN |
//! | AppIpUntrusted | — 403 `Your IP address is not allowed.` | 403 APIG.0405 | 403 HTTP_FORBIDDEN |
//! | AppFrozen | 401 `HMAC signature cannot be verified.` | 405 APIG.0502 `The app has been frozen.` | 401 UNAUTHENTICATED |
//! | NoUsagePlan | 403 `Found no validate usage plan.` | 403 APIG.0304 `The app is not authorized to access the API.` | 403 HTTP_FORBIDDEN |
//! | ParamMissing header / query / path / form | 403 `header xxx is required.` / `querystring xxx is required.` / `path variable xxx is required.` / `body param xxx is required.` | 400 APIG.0201 + detail | 400 ARGUMENT_NOT_FOUND `The parameter argument is required` |
//! | ParamInvalid | 403 `Get xxx params fail.` | 400 APIG.0201 + detail | 400 ARGUMENT_WRONG_FORMAT `Type of parameter argument shall be of a format` (a format = expected) |
//! | ParamOutOfRange | 403 `Get xxx params fail.` | 400 APIG.0201 + detail | 400 OUT_OF_RANGE `The parameter value is illegal or exceeds the range` |
//! | FormContentTypeRequired | 403 `req content type need application/x-www-form-urlencoded.` | 400 APIG.0201 + detail | 400 ARGUMENT_WRONG_FORMAT (argument = `Content-Type`, a format = `application/x-www-form-urlencoded`) |
//! | OrchestrationFailed | 403 `Get xxx params fail.` (xxx = the parameter) | 400 APIG.0106 `Orchestration error.` | 400 OUT_OF_RANGE `The parameter value is illegal or exceeds the range` |
//! | RateLimited | 429 `API rate limit exceeded.` | 429 APIG.0308 | 429 RATE_LIMIT_EXCEEDED |
//! | QuotaExceeded | 429 `API quota exceeded.` | 405 APIG.0501 | 429 QUOTA_EXCEEDED |
//! | BackendUnavailable | 502 `Bad Gateway.` | 502 APIG.0202 `Backend unavailable` | 502 SOURCE_UNAVAILABLE |
//! | BackendTimeout | 504 `Gateway Time-out.` | 504 APIG.0203 `Backend timeout` | 504 DEADLINE_EXCEEDED |
//! | BackendDnsFailed | 503 `Apigw balancer error` | 500 APIG.0605 | 502 SOURCE_UNAVAILABLE |
//! | NoBackendAvailable | 503 `Apigw balancer error` | 502 APIG.0610 | 503 UNAVAILABLE |
//! | BackendIpDenied | 403 `Endpoint IP address is not allowed.` | 403 APIG.0404 | 403 HTTP_FORBIDDEN |
//! | LoopDetected | 500 `Internal Server Error.` | 500 APIG.0612 | 500 INTERNAL |
//! | BackendSigningFailed | 500 `Internal Server Error.` | 500 APIG.0705 `Backend signature calculation failed.` | 500 INTERNAL |
//! | ClientClosed | 499 `Client closed connection.` | — 499 APIG.0201 `Client closed request.` | 499 CANCELLED |
//! | Internal | 500 `Internal Server Error.` | 500 APIG.0601 | 500 INTERNAL |
//! | OAuth2(MethodInvalid) | — 400 `Bad Request.` | 400 APIG.2206 `Auth method invalid` | 400 INVALID_ARGUMENT |
//! | OAuth2(ContentTypeInvalid) | — 400 `Bad Request.` | 400 APIG.2204 `ContentType invalid` | 400 INVALID_ARGUMENT |
//! | OAuth2(AuthParameterInvalid) | 401 `Oauth authorization header format error.` | 400 APIG.2205 `Auth parameter invalid` | 401 UNAUTHENTICATED |
//! | OAuth2(GrantTypeMissing) | — 400 `Bad Request.` | 400 APIG.2210 `Lack of grant_type` | 400 INVALID_ARGUMENT |
//! | OAuth2(GrantTypeInvalid) | — 400 `Bad Request.` | 400 APIG.2209 `The value of grant_type is not in enum List` | 400 INVALID_ARGUMENT |
//! | OAuth2(ClientIdMissing) | — 400 `Bad Request.` | 400 APIG.2211 `Lack of client_id` | 400 INVALID_ARGUMENT |
//! | OAuth2(ClientSecretMissing) | — 400 `Bad Request.` | 400 APIG.2212 `Lack of client_secret` | 400 INVALID_ARGUMENT |
//! | OAuth2(RefreshTokenMissing) | — 400 `Bad Request.` | 400 APIG.2213 `Lack of refresh_token` | 400 INVALID_ARGUMENT |
//! | OAuth2(ThroughDataTooLong) | — 400 `Bad Request.` | 400 APIG.2208 `The length of through_data is out of range` | 400 INVALID_ARGUMENT |
//! | OAuth2(AppUnknown) | 401 `Oauth id_token verify error.` | 401 APIG.1004 `App not exist` | 401 UNAUTHENTICATED |
//! | OAuth2(ClientSecretInvalid) | 401 `Oauth id_token verify error.` | 400 APIG.2201 `Appkey or SecretKey is invalid` | 401 UNAUTHENTICATED |
//! | OAuth2(RefreshTokenInvalid) | 401 `Oauth id_token verify error.` | 400 APIG.2202 `Refresh token is invalid` | 401 UNAUTHENTICATED |
//! | OAuth2(RefreshTokenExpired) | 401 `Oauth id_token verify error.` | 401 APIG.1001 `Refresh token is expired` | 401 UNAUTHENTICATED |
//! | OAuth2(RefreshTokenAppMismatch) | 401 `Oauth id_token verify error.` | 401 APIG.1003 `App not match refresh token` | 401 UNAUTHENTICATED |
//! | OAuth2(AccessTokenInvalid) | 401 `Oauth id_token verify error.` | 400 APIG.2203 `Access token is invalid` | 401 UNAUTHENTICATED |
//! | OAuth2(AccessTokenExpired) | 401 `Oauth id_token verify error.` | 401 APIG.1002 `Access token is expired` | 401 UNAUTHENTICATED |
//!
//! Choices that need a reason:
//! * **Tencent BackendDnsFailed → 503 `Apigw balancer error`**, not 502: the newer Tencent seed
//!   describes that row as "后端域名无法解析或者解析出错" (the backend domain cannot be resolved).
//! * **Tencent tokens.** `Oauth found no authorization header.` and `Oauth found no id_token.`
//!   are the rows whose wording names the missing piece; Tencent has no row for an expired or
//!   under-privileged token, and its only verification-failure row is `Oauth id_token verify
//!   error.`. An external authorizer that fails or refuses is "calling the authentication server
//!   failed" from Tencent's point of view; a missing identity source is its "no verification
//!   header" row.
//! * **AppFrozen** is a disabled key for Tencent (auth-schemes.md §1.4 step 8: "unknown,
//!   disabled or unidentifiable" → `HMAC signature cannot be verified.`) and for JD (its older
//!   table answers a disabled key with 401 `APIGW_KEY_DISABLED`, today's UNAUTHENTICATED).
//! * **NoUsagePlan on Huawei** is an app that is not authorised for the API (APIG.0304): Huawei
//!   grants access by authorising apps, it has no usage plans.
//! * **JD FormContentTypeRequired** is ARGUMENT_WRONG_FORMAT on the `Content-Type` header rather
//!   than the placeholder-free INVALID_ARGUMENT, because it tells the caller what to send.
//! * **CrossOriginWithoutCors** is Tencent-only behaviour: Huawei and JD forward a cross-origin
//!   request to an API without CORS and simply add no CORS headers, so `decide` never produces
//!   this reason for them. If asked anyway, they answer with their documented "access denied"
//!   rows.
//! * **OAuth2** (`issue tokens` and `auth P` with an oauth2 provider) is Huawei's feature and
//!   `check` refuses an oauth2 provider in a service of another dialect, so the Tencent and JD
//!   columns are never produced; they are there because every reason maps in every dialect.
//!   Huawei has two rows for bad app credentials: APIG.2201 `Appkey or SecretKey is invalid`
//!   belongs to the token endpoint's 22xx block (with the refresh and access token rows) and
//!   names the pair the endpoint receives, so a wrong client_secret gets it; APIG.1009
//!   (`AppKey or AppSecret is invalid`, also in the older seed 002, next to the IAM rows) is
//!   left to app authentication. An unknown client_id, and a token whose app is gone, are
//!   APIG.1004 `App not exist`.
//! * **BodyTimeout** (a request body that did not arrive within `serve --body-timeout`) has no
//!   row in any vendor's table: none documents a 408 or a client timeout, and their timeout
//!   rows (Tencent 504 `Gateway Time-out.`, Huawei APIG.0203, JD DEADLINE_EXCEEDED) describe a
//!   slow *backend*, which would send the operator looking in the wrong place. The closest
//!   documented answer is the request's own fault, the bad-request row; [`stand_ins`] lists it
//!   so that `rulegate errors` marks the row as standing in for the body timeout.
//! * **OrchestrationFailed** is Huawei's APIG.0106 (orchestration is Huawei's feature). Tencent
//!   and JD have no orchestration and no row for it; from the client's side a value that no
//!   rule maps is a parameter value the API does not take, so they answer their rows for that:
//!   Tencent's parameter-check row `Get xxx params fail.` naming the parameter (Tencent has no
//!   400 row at all; its only other parameter row, 500 `Error occurred during query params.`,
//!   would blame the gateway), JD's OUT_OF_RANGE "the parameter value is illegal or exceeds the
//!   range" rather than the unspecific INVALID_ARGUMENT.
//! * **BackendSigningFailed** is Huawei's APIG.0705; Tencent and JD document no backend
//!   signing, so their internal-error rows.
//! * **Undocumented entries** use the standard status and, for the text, the RFC 2616 reason
//!   phrase: Tencent's documented gateway texts are exactly those phrases plus a period
//!   (`Bad Gateway.`, `Gateway Time-out.`, `Method Not Allowed.`), JD's texts carry no period.

use super::reason::{AuthFailure, Reason};
use crate::vocab::{Dialect, ParamLocation, Protocol};

/// One row of a vendor's catalogue as rulegate emits it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct Row {
    /// Tencent: the status as text ("404"), like the TSV's code column; Huawei "APIG.0101";
    /// JD Cloud "NOT_FOUND".
    pub code: &'static str,
    pub status: u16,
    /// The template exactly as documented (placeholders unfilled).
    pub message: &'static str,
    /// false = an explicitly marked undocumented entry.
    pub documented: bool,
    /// For undocumented rows: why and where the text comes from.
    pub note: &'static str,
}

impl Row {
    const fn doc(code: &'static str, status: u16, message: &'static str) -> Row {
        Row {
            code,
            status,
            message,
            documented: true,
            note: "",
        }
    }

    const fn undoc(
        code: &'static str,
        status: u16,
        message: &'static str,
        note: &'static str,
    ) -> Row {
        Row {
            code,
            status,
            message,
            documented: false,
            note,
        }
    }

    /// Same (code, status, message): how a row is recognised in a vendor table.
    pub fn same_entry(&self, other: &Row) -> bool {
        self.code == other.code && self.status == other.status && self.message == other.message
    }
}

/// Tencent rows (seed 001). The code is the status as text, as in the vendor table.
mod tencent {
    use super::Row;

    pub static NO_HOST: Row = Row::doc("404", 404, "There is no api match host[$host].");
    pub static NO_ENV: Row = Row::doc(
        "404",
        404,
        "There is no api match env_mapping[$env_mapping].",
    );
    pub static NO_DEFAULT_ENV: Row = Row::doc(
        "404",
        404,
        "There is no api match default env_mapping[$env_mapping].",
    );
    pub static NO_URI: Row = Row::doc("404", 404, "There is no api match uri[$uri].");
    pub static METHOD: Row = Row::doc("405", 405, "Method Not Allowed.");
    pub static NO_HTTPS: Row = Row::doc("426", 426, "Not allow use HTTPS protocol.");
    pub static NO_HTTP: Row = Row::doc("426", 426, "Not allow use HTTP protocol.");
    pub static CROSS_ORIGIN: Row = Row::doc(
        "429",
        429,
        "req is cross origin, api $uri need open cors flag on qcloud apigateway.",
    );
    pub static WS_KEY: Row = Row::doc("403", 403, "need header Sec-WebSocket-Key.");
    pub static WS_VERSION: Row = Row::doc("403", 403, "need header Sec-WebSocket-Version.");

    pub static HMAC_APIKEY_INVALID: Row = Row::doc("401", 401, "HMAC apikey is invalid for API.");
    pub static HMAC_BAD_XDATE: Row = Row::doc(
        "401",
        401,
        "HMAC signature cannot be verified, a valid x-date header is required for HMAC Authentication.",
    );
    pub static HMAC_XDATE_EXPIRED: Row = Row::doc(
        "401",
        401,
        "HMAC signature cannot be verified, the x-date header is out of date for HMAC Authentication.",
    );
    pub static HMAC_NO_DATE: Row = Row::doc(
        "401",
        401,
        "HMAC signature cannot be verified, a valid date or x-date header is required.",
    );
    pub static HMAC_ID_OR_SIGNATURE: Row = Row::doc("401", 401, "HMAC id or signature missing.");
    pub static HMAC_MULTIPLE_HEADER: Row =
        Row::doc("401", 401, "HMAC do not support multiple HTTP header.");
    pub static HMAC_HEADER_MISSING: Row = Row::doc(
        "401",
        401,
        "HMAC signature cannot be verified, a valid xxx header is required.",
    );
    pub static HMAC_ALGORITHM: Row = Row::doc("401", 401, "HMAC algorithm xxx not supported.");
    pub static HMAC_FORMAT: Row = Row::doc("401", 401, "HMAC authorization format error.");
    pub static HMAC_PARAMS: Row = Row::doc("401", 401, "HMAC authorization headers is invalidate.");
    pub static HMAC_UNVERIFIABLE: Row = Row::doc("401", 401, "HMAC signature cannot be verified.");
    pub static HMAC_MISMATCH: Row = Row::doc("401", 401, "HMAC signature does not match.");

    pub static OAUTH_SERVER_FAIL: Row =
        Row::doc("401", 401, "Oauth call authentication server fail.");
    pub static OAUTH_NO_VALIDATE_HEADER: Row = Row::doc(
        "401",
        401,
        "Oauth signature cannot be verified, a validate authorization header is required.",
    );
    pub static OAUTH_HEADER_FORMAT: Row =
        Row::doc("401", 401, "Oauth authorization header format error.");
    pub static OAUTH_NO_HEADER: Row = Row::doc("401", 401, "Oauth found no authorization header.");
    pub static OAUTH_NO_ID_TOKEN: Row = Row::doc("401", 401, "Oauth found no id_token.");
    pub static OAUTH_VERIFY_ERROR: Row = Row::doc("401", 401, "Oauth id_token verify error.");

    pub static NO_USAGE_PLAN: Row = Row::doc("403", 403, "Found no validate usage plan.");
    pub static ENDPOINT_IP: Row = Row::doc("403", 403, "Endpoint IP address is not allowed.");
    pub static PARAM_FAIL: Row = Row::doc("403", 403, "Get xxx params fail.");
    pub static HEADER_REQUIRED: Row = Row::doc("403", 403, "header xxx is required.");
    pub static PATH_REQUIRED: Row = Row::doc("403", 403, "path variable xxx is required.");
    pub static QUERY_REQUIRED: Row = Row::doc("403", 403, "querystring xxx is required.");
    pub static BODY_REQUIRED: Row = Row::doc("403", 403, "body param xxx is required.");
    pub static FORM_CONTENT_TYPE: Row = Row::doc(
        "403",
        403,
        "req content type need application/x-www-form-urlencoded.",
    );

    pub static RATE_LIMIT: Row = Row::doc("429", 429, "API rate limit exceeded.");
    pub static QUOTA: Row = Row::doc("429", 429, "API quota exceeded.");
    pub static CLIENT_CLOSED: Row = Row::doc("499", 499, "Client closed connection.");
    pub static INTERNAL: Row = Row::doc("500", 500, "Internal Server Error.");
    pub static BAD_GATEWAY: Row = Row::doc("502", 502, "Bad Gateway.");
    pub static BALANCER: Row = Row::doc("503", 503, "Apigw balancer error");
    pub static TIMEOUT: Row = Row::doc("504", 504, "Gateway Time-out.");

    pub static HMAC_NO_AUTHORIZATION: Row = Row::undoc(
        "401",
        401,
        "HMAC signature cannot be verified, a validate authorization header is required",
        "Not in Tencent's current table (seed 001). Legacy pre-2019 string, quoted verbatim as the \
         server's reply in a Tencent demo comment (auth-schemes.md §1.4); no period, as quoted.",
    );
    pub static URI_TOO_LARGE: Row = Row::undoc(
        "414",
        414,
        "Request-URI Too Large.",
        "Tencent documents no URI limit. Standard 414 with the RFC 2616 reason phrase plus a period, \
         the form of Tencent's documented gateway texts (`Bad Gateway.`, `Gateway Time-out.`).",
    );
    pub static HEADERS_TOO_LARGE: Row = Row::undoc(
        "431",
        431,
        "Request Header Fields Too Large.",
        "Tencent documents no header limit. Standard 431 (RFC 6585) with its reason phrase plus a \
         period, the form of Tencent's documented gateway texts (`Bad Gateway.`).",
    );
    pub static BODY_TOO_LARGE: Row = Row::undoc(
        "413",
        413,
        "Request Entity Too Large.",
        "Tencent documents a 16 MB upload limit but no error for it. Standard 413 with the RFC 2616 \
         reason phrase plus a period, the form of Tencent's documented gateway texts.",
    );
    pub static BAD_REQUEST: Row = Row::undoc(
        "400",
        400,
        "Bad Request.",
        "Tencent documents no 400. Standard 400 with the RFC 2616 reason phrase plus a period, the \
         form of Tencent's documented gateway texts (`Internal Server Error.`).",
    );
    pub static IP_UNKNOWN: Row = Row::doc(
        "403",
        403,
        "Cannot identify the client IP address, unix domain sockets are not supported.",
    );
    pub static NO_APIAPP: Row = Row::doc("403", 403, "Found no validate apiapp.");
    pub static KEY_MISSING: Row = Row::undoc(
        "401",
        401,
        "No API key found in request.",
        "Tencent documents no API-key authentication. Text of Kong's key-auth plugin (Tencent's \
         gateway descends from Kong) with the trailing period Tencent's table adds to Kong texts.",
    );
    pub static BASIC_MISSING: Row = Row::undoc(
        "401",
        401,
        "Unauthorized.",
        "Tencent documents no Basic authentication. Text of Kong's basic-auth plugin for a \
         request without credentials, with Tencent's trailing period.",
    );
    pub static CREDENTIALS_INVALID: Row = Row::undoc(
        "401",
        401,
        "Invalid authentication credentials.",
        "Tencent documents no API-key or Basic authentication. Text of Kong's key-auth and \
         basic-auth plugins for credentials no consumer has, with Tencent's trailing period.",
    );
    pub static IP_DENIED: Row = Row::undoc(
        "403",
        403,
        "Your IP address is not allowed.",
        "Tencent documents no IP allow/deny error. Text of Kong's ip-restriction plugin before \
         3.4.0 (Tencent's gateway descends from Kong), with the trailing period Tencent's table \
         adds to Kong texts (`API rate limit exceeded.`). Used for client IP and app trusted IPs.",
    );
}

/// Huawei rows (seed 003).
mod huawei {
    use super::Row;

    pub static NOT_PUBLISHED: Row = Row::doc(
        "APIG.0101",
        404,
        "The API does not exist or has not been published in the environment.",
    );
    pub static NO_METHOD: Row = Row::doc("APIG.0101", 404, "The API does not exist.");
    pub static REQUEST_ERROR: Row = Row::doc("APIG.0201", 400, "API request error.");
    pub static ENTITY_TOO_LARGE: Row = Row::doc("APIG.0201", 413, "Request entity too large.");
    pub static URI_TOO_LARGE: Row = Row::doc("APIG.0201", 414, "Request URI too large.");
    pub static HEADERS_TOO_LARGE: Row = Row::doc("APIG.0201", 494, "Request headers too large.");
    pub static BACKEND_UNAVAILABLE: Row = Row::doc("APIG.0202", 502, "Backend unavailable");
    pub static BACKEND_TIMEOUT: Row = Row::doc("APIG.0203", 504, "Backend timeout");
    pub static IAM_AUTH: Row = Row::doc(
        "APIG.0301",
        401,
        "Incorrect IAM authentication information.",
    );
    pub static IAM_FORBIDDEN: Row = Row::doc(
        "APIG.0302",
        403,
        "The IAM user is not authorized to access the API.",
    );
    pub static APP_AUTH: Row = Row::doc(
        "APIG.0303",
        401,
        "Incorrect app authentication information.",
    );
    pub static APP_NOT_AUTHORIZED: Row = Row::doc(
        "APIG.0304",
        403,
        "The app is not authorized to access the API.",
    );
    pub static ACCESS_DENIED: Row = Row::doc("APIG.0306", 403, "API access denied.");
    pub static TOKEN_UPDATE: Row = Row::doc("APIG.0307", 401, "The token must be updated.");
    pub static THROTTLED: Row = Row::doc(
        "APIG.0308",
        429,
        "The throttling threshold has been reached.",
    );
    pub static THIRD_PARTY_AUTH_FAIL: Row = Row::doc(
        "APIG.0312",
        401,
        "Incorrect third-party authentication information,auth fail",
    );
    pub static THIRD_PARTY_IDENTITIES: Row = Row::doc(
        "APIG.0313",
        401,
        "Incorrect third-party authentication information,identities error",
    );
    pub static THIRD_PARTY_ACCESS_DENY: Row = Row::doc(
        "APIG.0314",
        403,
        "Incorrect third-party authentication information,access deny",
    );
    pub static IP_UNKNOWN: Row = Row::doc("APIG.0401", 403, "Unknown client IP address.");
    pub static IP_NOT_AUTHORIZED: Row = Row::doc(
        "APIG.0402",
        403,
        "The IP address is not authorized to access the API.",
    );
    pub static BACKEND_IP_DENIED: Row = Row::doc(
        "APIG.0404",
        403,
        "Access to the backend IP address has been denied.",
    );
    pub static APP_UNTRUSTED_IP: Row = Row::doc(
        "APIG.0405",
        403,
        "The app is not accessed from a trusted IP address.",
    );
    pub static APP_QUOTA: Row = Row::doc("APIG.0501", 405, "The app quota has been used up.");
    pub static APP_FROZEN: Row = Row::doc("APIG.0502", 405, "The app has been frozen.");
    pub static INTERNAL: Row = Row::doc("APIG.0601", 500, "Internal server error.");
    pub static BAD_REQUEST: Row = Row::doc("APIG.0602", 400, "Bad request.");
    pub static CLIENT_CERT: Row = Row::doc("APIG.0205", 400, "Verify client certificate failed");
    pub static DNS_FAILED: Row = Row::doc("APIG.0605", 500, "Domain name resolution failed.");
    pub static PROTOCOL: Row = Row::doc(
        "APIG.0607",
        400,
        "The following protocol is supported: {xxx}",
    );
    pub static NO_BACKEND: Row = Row::doc("APIG.0610", 502, "No backend available.");
    pub static SELF_CALL: Row = Row::doc("APIG.0612", 500, "An API cannot call itself.");
    pub static ORCHESTRATION: Row = Row::doc("APIG.0106", 400, "Orchestration error.");
    pub static BACKEND_SIGNATURE: Row =
        Row::doc("APIG.0705", 500, "Backend signature calculation failed.");
    pub static THIRD_PARTY_VPC: Row = Row::doc(
        "APIG.0615",
        500,
        "Incorrect third-party authentication VPC information",
    );
    pub static THIRD_PARTY_REQUEST: Row = Row::doc(
        "APIG.0616",
        500,
        "Incorrect third-party authentication request information",
    );
    pub static THIRD_PARTY_RESPONSE: Row = Row::doc(
        "APIG.0617",
        500,
        "Incorrect third-party authentication response information",
    );

    pub static CLIENT_CLOSED: Row = Row::undoc(
        "APIG.0201",
        499,
        "Client closed request.",
        "Huawei documents no row for a client that went away; the answer only reaches the access \
         log. nginx's 499 text (Huawei APIG is nginx-based), sentence-cased with a period like \
         Huawei's table, under APIG.0201, the code Huawei reuses for request-level errors of \
         every status.",
    );
}

/// JD Cloud rows (seed 004, general error codes).
mod jdcloud {
    use super::Row;

    pub static ARGUMENT_NOT_SUPPORT: Row = Row::doc(
        "ARGUMENT_NOT_SUPPORT",
        400,
        "The parameter argument is not supported",
    );
    pub static ARGUMENT_NOT_FOUND: Row = Row::doc(
        "ARGUMENT_NOT_FOUND",
        400,
        "The parameter argument is required",
    );
    pub static ARGUMENT_WRONG_FORMAT: Row = Row::doc(
        "ARGUMENT_WRONG_FORMAT",
        400,
        "Type of parameter argument shall be of a format",
    );
    pub static OUT_OF_RANGE: Row = Row::doc(
        "OUT_OF_RANGE",
        400,
        "The parameter value is illegal or exceeds the range",
    );
    pub static INVALID_ARGUMENT: Row =
        Row::doc("INVALID_ARGUMENT", 400, "Parameter Argument Error");
    pub static UNAUTHENTICATED: Row = Row::doc("UNAUTHENTICATED", 401, "Verification Failed");
    pub static HTTP_FORBIDDEN: Row = Row::doc("HTTP_FORBIDDEN", 403, "No Resource Permission");
    pub static NOT_FOUND: Row = Row::doc("NOT_FOUND", 404, "resource cannot be found");
    pub static QUOTA_EXCEEDED: Row = Row::doc("QUOTA_EXCEEDED", 429, "Insufficient Quota");
    pub static RATE_LIMIT_EXCEEDED: Row =
        Row::doc("RATE_LIMIT_EXCEEDED", 429, "Your requests are too frequent");
    pub static CANCELLED: Row = Row::doc("CANCELLED", 499, "Cancel Operation");
    pub static INTERNAL: Row = Row::doc("INTERNAL", 500, "Internal Error");
    pub static NOT_IMPLEMENTED: Row =
        Row::doc("NOT_IMPLEMENTED", 501, "method is not supported now");
    pub static SOURCE_UNAVAILABLE: Row =
        Row::doc("SOURCE_UNAVAILABLE", 502, "Origin Server Unavailable");
    pub static UNAVAILABLE: Row = Row::doc("UNAVAILABLE", 503, "Service Unavailable");
    pub static DEADLINE_EXCEEDED: Row = Row::doc("DEADLINE_EXCEEDED", 504, "Time Out");

    pub static URI_TOO_LARGE: Row = Row::undoc(
        "OUT_OF_RANGE",
        414,
        "Request-URI Too Large",
        "JD Cloud documents no URI limit. Standard 414 with the RFC 2616 reason phrase (JD texts \
         carry no period); status enum OUT_OF_RANGE, JD's \"exceeds the range\" member.",
    );
    pub static HEADERS_TOO_LARGE: Row = Row::undoc(
        "OUT_OF_RANGE",
        431,
        "Request Header Fields Too Large",
        "JD Cloud documents no header limit. Standard 431 with the RFC 6585 reason phrase (JD texts \
         carry no period); status enum OUT_OF_RANGE, JD's \"exceeds the range\" member.",
    );
    pub static BODY_TOO_LARGE: Row = Row::undoc(
        "OUT_OF_RANGE",
        413,
        "Request Entity Too Large",
        "JD Cloud documents no body limit. Standard 413 with the RFC 2616 reason phrase (JD texts \
         carry no period); status enum OUT_OF_RANGE, JD's \"exceeds the range\" member.",
    );
}

pub(super) static TENCENT_UNDOCUMENTED: [&Row; 9] = [
    &tencent::HMAC_NO_AUTHORIZATION,
    &tencent::URI_TOO_LARGE,
    &tencent::HEADERS_TOO_LARGE,
    &tencent::BODY_TOO_LARGE,
    &tencent::BAD_REQUEST,
    &tencent::IP_DENIED,
    &tencent::KEY_MISSING,
    &tencent::BASIC_MISSING,
    &tencent::CREDENTIALS_INVALID,
];
pub(super) static HUAWEI_UNDOCUMENTED: [&Row; 1] = [&huawei::CLIENT_CLOSED];
pub(super) static JDCLOUD_UNDOCUMENTED: [&Row; 3] = [
    &jdcloud::URI_TOO_LARGE,
    &jdcloud::HEADERS_TOO_LARGE,
    &jdcloud::BODY_TOO_LARGE,
];

/// The row `dialect` answers `reason` with. See the module docs for the table; each dialect's
/// profile (`Profile::rows`) points at its mapping below.
pub fn row(dialect: Dialect, reason: &Reason) -> &'static Row {
    (dialect.profile().rows.row)(reason)
}

pub(super) fn tencent_row(reason: &Reason) -> &'static Row {
    use tencent as t;
    match reason {
        Reason::UriTooLarge => &t::URI_TOO_LARGE,
        Reason::HeaderTooLarge | Reason::HeadersTooLarge => &t::HEADERS_TOO_LARGE,
        Reason::BodyTooLarge => &t::BODY_TOO_LARGE,
        // Tencent documents nothing for client certificates: the request is refused as bad.
        Reason::BadRequest | Reason::ClientCertificateRequired | Reason::BodyTimeout => {
            &t::BAD_REQUEST
        }
        Reason::NoHost { .. } => &t::NO_HOST,
        Reason::NoStage {
            from_path: true, ..
        } => &t::NO_DEFAULT_ENV,
        Reason::NoStage {
            from_path: false, ..
        } => &t::NO_ENV,
        Reason::NoRoute { .. } => &t::NO_URI,
        Reason::MethodNotAllowed { .. } => &t::METHOD,
        Reason::ProtocolNotAllowed {
            used: Protocol::Http,
            ..
        } => &t::NO_HTTP,
        Reason::ProtocolNotAllowed {
            used: Protocol::Https,
            ..
        } => &t::NO_HTTPS,
        Reason::CrossOriginWithoutCors { .. } => &t::CROSS_ORIGIN,
        Reason::ClientIpDenied | Reason::AppIpUntrusted => &t::IP_DENIED,
        Reason::ClientIpUnknown => &t::IP_UNKNOWN,
        Reason::WebSocketKeyMissing => &t::WS_KEY,
        Reason::WebSocketVersionMissing => &t::WS_VERSION,
        Reason::Auth(failure) => tencent_auth(failure),
        Reason::AppNotBound => &t::HMAC_APIKEY_INVALID,
        Reason::AppFrozen => &t::HMAC_UNVERIFIABLE,
        Reason::NoUsagePlan => &t::NO_USAGE_PLAN,
        Reason::ParamMissing { location, .. } => match location {
            ParamLocation::Header => &t::HEADER_REQUIRED,
            ParamLocation::Query => &t::QUERY_REQUIRED,
            ParamLocation::Path => &t::PATH_REQUIRED,
            ParamLocation::Form => &t::BODY_REQUIRED,
        },
        Reason::ParamInvalid { .. }
        | Reason::ParamOutOfRange { .. }
        | Reason::OrchestrationFailed { .. } => &t::PARAM_FAIL,
        Reason::FormContentTypeRequired => &t::FORM_CONTENT_TYPE,
        Reason::RateLimited { .. } => &t::RATE_LIMIT,
        Reason::QuotaExceeded => &t::QUOTA,
        Reason::BackendUnavailable => &t::BAD_GATEWAY,
        Reason::BackendTimeout => &t::TIMEOUT,
        Reason::BackendDnsFailed | Reason::NoBackendAvailable => &t::BALANCER,
        Reason::BackendIpDenied => &t::ENDPOINT_IP,
        Reason::LoopDetected | Reason::BackendSigningFailed | Reason::Internal => &t::INTERNAL,
        Reason::ClientClosed => &t::CLIENT_CLOSED,
        Reason::OAuth2(failure) => oauth2::tencent(*failure),
    }
}

fn tencent_auth(failure: &AuthFailure) -> &'static Row {
    use tencent as t;
    use AuthFailure as A;
    match failure {
        A::HmacNoAuthorization => &t::HMAC_NO_AUTHORIZATION,
        A::HmacFormat => &t::HMAC_FORMAT,
        A::HmacIdOrSignatureMissing => &t::HMAC_ID_OR_SIGNATURE,
        A::HmacParamsMissing => &t::HMAC_PARAMS,
        A::HmacAlgorithmUnsupported { .. } => &t::HMAC_ALGORITHM,
        A::HmacNoDate => &t::HMAC_NO_DATE,
        A::HmacBadXDate => &t::HMAC_BAD_XDATE,
        A::HmacXDateExpired => &t::HMAC_XDATE_EXPIRED,
        A::HmacHeaderMissing { .. } => &t::HMAC_HEADER_MISSING,
        A::HmacRepeatedHeader => &t::HMAC_MULTIPLE_HEADER,
        A::HmacUnknownKey | A::Signature { .. } | A::Replayed { .. } => &t::HMAC_UNVERIFIABLE,
        A::HmacMismatch => &t::HMAC_MISMATCH,
        A::TokenHeaderMissing => &t::OAUTH_NO_HEADER,
        A::TokenFormat => &t::OAUTH_HEADER_FORMAT,
        A::TokenMissing => &t::OAUTH_NO_ID_TOKEN,
        A::TokenInvalid { .. } | A::TokenExpired | A::ClaimsDenied => &t::OAUTH_VERIFY_ERROR,
        A::ApiKeyMissing => &t::KEY_MISSING,
        A::BasicMissing => &t::BASIC_MISSING,
        A::CredentialsInvalid => &t::CREDENTIALS_INVALID,
        A::ApiAppNotBound => &t::NO_APIAPP,
        A::AuthorizerIdentityMissing => &t::OAUTH_NO_VALIDATE_HEADER,
        A::AuthorizerDenied
        | A::AuthorizerForbidden
        | A::AuthorizerUnreachable
        | A::AuthorizerBadResponse
        | A::AuthorizerUnresolved => &t::OAUTH_SERVER_FAIL,
    }
}

pub(super) fn huawei_row(reason: &Reason) -> &'static Row {
    use huawei as h;
    match reason {
        Reason::UriTooLarge => &h::URI_TOO_LARGE,
        Reason::HeaderTooLarge | Reason::HeadersTooLarge => &h::HEADERS_TOO_LARGE,
        Reason::BodyTooLarge => &h::ENTITY_TOO_LARGE,
        Reason::BadRequest | Reason::BodyTimeout => &h::BAD_REQUEST,
        Reason::ClientCertificateRequired => &h::CLIENT_CERT,
        Reason::NoHost { .. } | Reason::NoStage { .. } | Reason::NoRoute { .. } => {
            &h::NOT_PUBLISHED
        }
        Reason::MethodNotAllowed { .. } => &h::NO_METHOD,
        Reason::ProtocolNotAllowed { .. } => &h::PROTOCOL,
        Reason::CrossOriginWithoutCors { .. } => &h::ACCESS_DENIED,
        Reason::ClientIpDenied => &h::IP_NOT_AUTHORIZED,
        Reason::ClientIpUnknown => &h::IP_UNKNOWN,
        Reason::WebSocketKeyMissing
        | Reason::WebSocketVersionMissing
        | Reason::ParamMissing { .. }
        | Reason::ParamInvalid { .. }
        | Reason::ParamOutOfRange { .. }
        | Reason::FormContentTypeRequired => &h::REQUEST_ERROR,
        Reason::Auth(failure) => huawei_auth(failure),
        Reason::AppNotBound | Reason::NoUsagePlan => &h::APP_NOT_AUTHORIZED,
        Reason::AppIpUntrusted => &h::APP_UNTRUSTED_IP,
        Reason::AppFrozen => &h::APP_FROZEN,
        Reason::RateLimited { .. } => &h::THROTTLED,
        Reason::QuotaExceeded => &h::APP_QUOTA,
        Reason::BackendUnavailable => &h::BACKEND_UNAVAILABLE,
        Reason::BackendTimeout => &h::BACKEND_TIMEOUT,
        Reason::BackendDnsFailed => &h::DNS_FAILED,
        Reason::NoBackendAvailable => &h::NO_BACKEND,
        Reason::BackendIpDenied => &h::BACKEND_IP_DENIED,
        Reason::LoopDetected => &h::SELF_CALL,
        Reason::OrchestrationFailed { .. } => &h::ORCHESTRATION,
        Reason::BackendSigningFailed => &h::BACKEND_SIGNATURE,
        Reason::ClientClosed => &h::CLIENT_CLOSED,
        Reason::Internal => &h::INTERNAL,
        Reason::OAuth2(failure) => oauth2::huawei(*failure),
    }
}

fn huawei_auth(failure: &AuthFailure) -> &'static Row {
    use huawei as h;
    use AuthFailure as A;
    match failure {
        A::HmacNoAuthorization
        | A::HmacFormat
        | A::HmacIdOrSignatureMissing
        | A::HmacParamsMissing
        | A::HmacAlgorithmUnsupported { .. }
        | A::HmacNoDate
        | A::HmacBadXDate
        | A::HmacXDateExpired
        | A::HmacHeaderMissing { .. }
        | A::HmacRepeatedHeader
        | A::HmacUnknownKey
        | A::HmacMismatch
        | A::Signature { .. }
        | A::Replayed { .. }
        | A::ApiKeyMissing
        | A::BasicMissing
        | A::CredentialsInvalid => &h::APP_AUTH,
        A::TokenHeaderMissing | A::TokenFormat | A::TokenMissing | A::TokenInvalid { .. } => {
            &h::IAM_AUTH
        }
        A::TokenExpired => &h::TOKEN_UPDATE,
        A::ClaimsDenied => &h::IAM_FORBIDDEN,
        A::ApiAppNotBound => &h::APP_NOT_AUTHORIZED,
        A::AuthorizerDenied => &h::THIRD_PARTY_AUTH_FAIL,
        A::AuthorizerIdentityMissing => &h::THIRD_PARTY_IDENTITIES,
        A::AuthorizerForbidden => &h::THIRD_PARTY_ACCESS_DENY,
        A::AuthorizerUnreachable => &h::THIRD_PARTY_REQUEST,
        A::AuthorizerBadResponse => &h::THIRD_PARTY_RESPONSE,
        A::AuthorizerUnresolved => &h::THIRD_PARTY_VPC,
    }
}

pub(super) fn jdcloud_row(reason: &Reason) -> &'static Row {
    use jdcloud as j;
    match reason {
        Reason::UriTooLarge => &j::URI_TOO_LARGE,
        Reason::HeaderTooLarge | Reason::HeadersTooLarge => &j::HEADERS_TOO_LARGE,
        Reason::BodyTooLarge => &j::BODY_TOO_LARGE,
        Reason::BadRequest | Reason::BodyTimeout => &j::INVALID_ARGUMENT,
        Reason::ClientCertificateRequired => &j::UNAUTHENTICATED,
        Reason::NoHost { .. } | Reason::NoStage { .. } | Reason::NoRoute { .. } => &j::NOT_FOUND,
        Reason::MethodNotAllowed { .. } => &j::NOT_IMPLEMENTED,
        Reason::ProtocolNotAllowed { .. } => &j::ARGUMENT_NOT_SUPPORT,
        Reason::WebSocketKeyMissing
        | Reason::WebSocketVersionMissing
        | Reason::ParamMissing { .. } => &j::ARGUMENT_NOT_FOUND,
        Reason::ParamInvalid { .. } | Reason::FormContentTypeRequired => &j::ARGUMENT_WRONG_FORMAT,
        Reason::ParamOutOfRange { .. } | Reason::OrchestrationFailed { .. } => &j::OUT_OF_RANGE,
        Reason::Auth(failure) => match failure {
            // JD's replay answer (APIGW_NONCE_CONFLICT, 403 in the older table) in today's enum
            AuthFailure::ClaimsDenied
            | AuthFailure::ApiAppNotBound
            | AuthFailure::AuthorizerForbidden
            | AuthFailure::Replayed { .. } => &j::HTTP_FORBIDDEN,
            AuthFailure::AuthorizerUnreachable
            | AuthFailure::AuthorizerBadResponse
            | AuthFailure::AuthorizerUnresolved => &j::INTERNAL,
            _ => &j::UNAUTHENTICATED,
        },
        Reason::AppFrozen => &j::UNAUTHENTICATED,
        Reason::CrossOriginWithoutCors { .. }
        | Reason::ClientIpDenied
        | Reason::ClientIpUnknown
        | Reason::AppNotBound
        | Reason::AppIpUntrusted
        | Reason::NoUsagePlan
        | Reason::BackendIpDenied => &j::HTTP_FORBIDDEN,
        Reason::RateLimited { .. } => &j::RATE_LIMIT_EXCEEDED,
        Reason::QuotaExceeded => &j::QUOTA_EXCEEDED,
        Reason::BackendUnavailable | Reason::BackendDnsFailed => &j::SOURCE_UNAVAILABLE,
        Reason::BackendTimeout => &j::DEADLINE_EXCEEDED,
        Reason::NoBackendAvailable => &j::UNAVAILABLE,
        Reason::LoopDetected | Reason::BackendSigningFailed | Reason::Internal => &j::INTERNAL,
        Reason::ClientClosed => &j::CANCELLED,
        Reason::OAuth2(failure) => oauth2::jdcloud(*failure),
    }
}

/// Huawei's OAuth2 rows (seed 003) and what the other dialects would answer (never produced:
/// see the module docs).
mod oauth2 {
    use super::{jdcloud, tencent, Row};
    use crate::dialect::OAuth2Failure as O;

    static AUTH_METHOD: Row = Row::doc("APIG.2206", 400, "Auth method invalid");
    static CONTENT_TYPE: Row = Row::doc("APIG.2204", 400, "ContentType invalid");
    static AUTH_PARAMETER: Row = Row::doc("APIG.2205", 400, "Auth parameter invalid");
    static NO_GRANT_TYPE: Row = Row::doc("APIG.2210", 400, "Lack of grant_type");
    static GRANT_TYPE: Row = Row::doc(
        "APIG.2209",
        400,
        "The value of grant_type is not in enum List",
    );
    static NO_CLIENT_ID: Row = Row::doc("APIG.2211", 400, "Lack of client_id");
    static NO_CLIENT_SECRET: Row = Row::doc("APIG.2212", 400, "Lack of client_secret");
    static NO_REFRESH_TOKEN: Row = Row::doc("APIG.2213", 400, "Lack of refresh_token");
    static THROUGH_DATA: Row = Row::doc(
        "APIG.2208",
        400,
        "The length of through_data is out of range",
    );
    static APP_NOT_EXIST: Row = Row::doc("APIG.1004", 401, "App not exist");
    static SECRET_INVALID: Row = Row::doc("APIG.2201", 400, "Appkey or SecretKey is invalid");
    static REFRESH_INVALID: Row = Row::doc("APIG.2202", 400, "Refresh token is invalid");
    static REFRESH_EXPIRED: Row = Row::doc("APIG.1001", 401, "Refresh token is expired");
    static REFRESH_APP: Row = Row::doc("APIG.1003", 401, "App not match refresh token");
    static ACCESS_INVALID: Row = Row::doc("APIG.2203", 400, "Access token is invalid");
    static ACCESS_EXPIRED: Row = Row::doc("APIG.1002", 401, "Access token is expired");

    pub fn huawei(f: O) -> &'static Row {
        match f {
            O::MethodInvalid => &AUTH_METHOD,
            O::ContentTypeInvalid => &CONTENT_TYPE,
            O::AuthParameterInvalid => &AUTH_PARAMETER,
            O::GrantTypeMissing => &NO_GRANT_TYPE,
            O::GrantTypeInvalid => &GRANT_TYPE,
            O::ClientIdMissing => &NO_CLIENT_ID,
            O::ClientSecretMissing => &NO_CLIENT_SECRET,
            O::RefreshTokenMissing => &NO_REFRESH_TOKEN,
            O::ThroughDataTooLong => &THROUGH_DATA,
            O::AppUnknown => &APP_NOT_EXIST,
            O::ClientSecretInvalid => &SECRET_INVALID,
            O::RefreshTokenInvalid => &REFRESH_INVALID,
            O::RefreshTokenExpired => &REFRESH_EXPIRED,
            O::RefreshTokenAppMismatch => &REFRESH_APP,
            O::AccessTokenInvalid => &ACCESS_INVALID,
            O::AccessTokenExpired => &ACCESS_EXPIRED,
        }
    }

    /// A malformed token request is a bad request; a bad credential is Tencent's only
    /// token-verification row.
    pub fn tencent(f: O) -> &'static Row {
        if is_request_error(f) {
            &tencent::BAD_REQUEST
        } else if f == O::AuthParameterInvalid {
            &tencent::OAUTH_HEADER_FORMAT
        } else {
            &tencent::OAUTH_VERIFY_ERROR
        }
    }

    pub fn jdcloud(f: O) -> &'static Row {
        if is_request_error(f) {
            &jdcloud::INVALID_ARGUMENT
        } else {
            &jdcloud::UNAUTHENTICATED
        }
    }

    /// A token request that is malformed, as opposed to one whose credentials are wrong.
    fn is_request_error(f: O) -> bool {
        matches!(
            f,
            O::MethodInvalid
                | O::ContentTypeInvalid
                | O::GrantTypeMissing
                | O::GrantTypeInvalid
                | O::ClientIdMissing
                | O::ClientSecretMissing
                | O::RefreshTokenMissing
                | O::ThroughDataTooLong
        )
    }
}

/// The undocumented entries rulegate may emit (documented=false), for `rulegate errors` to
/// list separately.
pub fn undocumented(dialect: Dialect) -> Vec<&'static Row> {
    dialect.profile().rows.undocumented.to_vec()
}

/// A row that also answers a situation the vendor documents no row for, and why that row.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct StandIn {
    pub row: &'static Row,
    /// The reason it stands in for, as `Reason`'s snake-case name.
    pub reason: &'static str,
    pub note: &'static str,
}

const BODY_TIMEOUT_NOTE: &str = "Also answers a request body that did not arrive within \
    `serve --body-timeout`: the vendor documents no client-timeout row (no 408), and its timeout \
    rows name a slow backend. The closest answer is the dialect's bad-request row.";

/// The rows that stand in for reasons the vendor has no row of their own for, for
/// `rulegate errors` to mark. `tests/catalogue.rs` checks each is the row the reason maps to.
pub fn stand_ins(dialect: Dialect) -> Vec<StandIn> {
    vec![StandIn {
        row: row(dialect, &Reason::BodyTimeout),
        reason: "body_timeout",
        note: BODY_TIMEOUT_NOTE,
    }]
}

/// The vendor's table as shipped in `/work/shared/errors`, embedded so that `rulegate errors`
/// and the tests need no file at run time. Columns: code, http_status, message, description,
/// seed; TAB separated, one header line.
pub fn tsv(dialect: Dialect) -> &'static str {
    dialect.profile().rows.tsv
}

/// The seed whose rows count as documented: where the vendor's documents disagree, the newer
/// one wins.
pub fn newest_seed(dialect: Dialect) -> &'static str {
    dialect.profile().rows.newest_seed
}

/// Every documented row of the dialect (from the embedded TSV of the newer seed) with whether
/// rulegate can emit it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct CatalogueEntry {
    /// documented=true
    pub row: Row,
    pub description: String,
    pub emitted: bool,
}

/// The dialect's documented rows in table order. `emitted` = some `Reason::examples()` value
/// maps to the row.
pub fn catalogue(dialect: Dialect) -> Vec<CatalogueEntry> {
    let emitted: Vec<&Row> = Reason::examples()
        .iter()
        .map(|reason| row(dialect, reason))
        .filter(|r| r.documented)
        .collect();
    let seed = newest_seed(dialect);
    tsv(dialect)
        .lines()
        .skip(1)
        .filter_map(|line| {
            let mut cols = line.split('\t');
            let (code, status, message, description, row_seed) = (
                cols.next()?,
                cols.next()?,
                cols.next()?,
                cols.next()?,
                cols.next()?,
            );
            if row_seed != seed {
                return None;
            }
            // The embedded tables are fixed data checked by the tests: a status that does not
            // parse would be a corrupted copy, so such a line is skipped rather than guessed.
            let row = Row::doc(code, status.parse().ok()?, message);
            Some(CatalogueEntry {
                emitted: emitted.iter().any(|e| e.same_entry(&row)),
                row,
                description: description.to_string(),
            })
        })
        .collect()
}
