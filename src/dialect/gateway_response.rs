//! Huawei's custom gateway responses: per service (Huawei: per API group), the status, body
//! and headers of the answer to one error type, written as a template over `$context.…`
//! variables.
//!
//! Huawei sorts its refusals into the error types below (its `response_type` list); a service
//! that overrides a type answers every refusal of that type with its own status and JSON body.
//! Types are exclusive: a refusal of a type the service did not override keeps Huawei's default
//! answer, which is the dialect's row (the `DEFAULT_4XX` / `DEFAULT_5XX` types cover only the
//! refusals no other type names). The vendor code a refusal carries does not change, so
//! `rulegate test`'s `expect code` still matches it.
//!
//! Variables are those Huawei documents for gateway responses and that rulegate knows:
//! `$context.error.code`, `$context.error.message`, `$context.error.type`,
//! `$context.requestId`, `$context.apiId` and `$context.apiName` (the route's label: rulegate's
//! routes have no ids), `$context.appId` (the app's key) and `$context.appName`,
//! `$context.stage`, `$context.sourceIp`, `$context.reqPath`, `$context.reqUri` (path and
//! query), `$context.reqMethod`. A value is JSON-escaped in the body (variables can only stand
//! inside its strings) and sent as is in a header (a value that cannot be a header value is
//! left out). An absent value (no app, no stage) is empty.

use super::Reason;
use std::fmt;

/// Huawei's error types for gateway responses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ResponseType {
    AuthFailure,
    AuthHeaderMissing,
    AuthorizerFailure,
    AuthorizerConfFailure,
    AuthorizerIdentitiesFailure,
    BackendUnavailable,
    BackendTimeout,
    Throttled,
    Unauthorized,
    AccessDenied,
    NotFound,
    RequestParametersFailure,
    Default4xx,
    Default5xx,
    ThirdAuthFailure,
    ThirdAuthIdentitiesFailure,
    ThirdAuthConfFailure,
    OrchestrationParameterNotFound,
    OrchestrationFailure,
}

impl ResponseType {
    pub const ALL: [ResponseType; 19] = [
        ResponseType::AuthFailure,
        ResponseType::AuthHeaderMissing,
        ResponseType::AuthorizerFailure,
        ResponseType::AuthorizerConfFailure,
        ResponseType::AuthorizerIdentitiesFailure,
        ResponseType::BackendUnavailable,
        ResponseType::BackendTimeout,
        ResponseType::Throttled,
        ResponseType::Unauthorized,
        ResponseType::AccessDenied,
        ResponseType::NotFound,
        ResponseType::RequestParametersFailure,
        ResponseType::Default4xx,
        ResponseType::Default5xx,
        ResponseType::ThirdAuthFailure,
        ResponseType::ThirdAuthIdentitiesFailure,
        ResponseType::ThirdAuthConfFailure,
        ResponseType::OrchestrationParameterNotFound,
        ResponseType::OrchestrationFailure,
    ];

    pub fn name(self) -> &'static str {
        match self {
            ResponseType::AuthFailure => "AUTH_FAILURE",
            ResponseType::AuthHeaderMissing => "AUTH_HEADER_MISSING",
            ResponseType::AuthorizerFailure => "AUTHORIZER_FAILURE",
            ResponseType::AuthorizerConfFailure => "AUTHORIZER_CONF_FAILURE",
            ResponseType::AuthorizerIdentitiesFailure => "AUTHORIZER_IDENTITIES_FAILURE",
            ResponseType::BackendUnavailable => "BACKEND_UNAVAILABLE",
            ResponseType::BackendTimeout => "BACKEND_TIMEOUT",
            ResponseType::Throttled => "THROTTLED",
            ResponseType::Unauthorized => "UNAUTHORIZED",
            ResponseType::AccessDenied => "ACCESS_DENIED",
            ResponseType::NotFound => "NOT_FOUND",
            ResponseType::RequestParametersFailure => "REQUEST_PARAMETERS_FAILURE",
            ResponseType::Default4xx => "DEFAULT_4XX",
            ResponseType::Default5xx => "DEFAULT_5XX",
            ResponseType::ThirdAuthFailure => "THIRD_AUTH_FAILURE",
            ResponseType::ThirdAuthIdentitiesFailure => "THIRD_AUTH_IDENTITIES_FAILURE",
            ResponseType::ThirdAuthConfFailure => "THIRD_AUTH_CONF_FAILURE",
            ResponseType::OrchestrationParameterNotFound => "ORCHESTRATION_PARAMETER_NOT_FOUND",
            ResponseType::OrchestrationFailure => "ORCHESTRATION_FAILURE",
        }
    }

    pub fn from_name(name: &str) -> Option<ResponseType> {
        ResponseType::ALL.into_iter().find(|t| t.name() == name)
    }

    /// The type of a refusal whose row has `status`. rulegate's external authorizer is
    /// Huawei's third-party authorizer (its rows are APIG.0312–0314), so its failures are the
    /// `THIRD_AUTH_*` types; Huawei's function-based custom authorizers (`AUTHORIZER_*`) have
    /// no counterpart, nor has a missing orchestration source (rulegate omits the parameter).
    pub fn of(reason: &Reason, status: u16) -> ResponseType {
        use super::AuthFailure as A;
        match reason {
            Reason::Auth(A::AuthorizerDenied | A::AuthorizerForbidden) => {
                ResponseType::ThirdAuthFailure
            }
            Reason::Auth(A::AuthorizerIdentityMissing) => ResponseType::ThirdAuthIdentitiesFailure,
            Reason::Auth(
                A::AuthorizerUnreachable | A::AuthorizerBadResponse | A::AuthorizerUnresolved,
            ) => ResponseType::ThirdAuthConfFailure,
            Reason::Auth(
                A::HmacNoAuthorization
                | A::TokenHeaderMissing
                | A::TokenMissing
                | A::ApiKeyMissing
                | A::BasicMissing,
            ) => ResponseType::AuthHeaderMissing,
            Reason::Auth(A::ApiAppNotBound) => ResponseType::Unauthorized,
            Reason::Auth(_) | Reason::AppFrozen => ResponseType::AuthFailure,
            Reason::AppNotBound | Reason::NoUsagePlan => ResponseType::Unauthorized,
            Reason::ClientIpDenied
            | Reason::ClientIpUnknown
            | Reason::AppIpUntrusted
            | Reason::CrossOriginWithoutCors { .. } => ResponseType::AccessDenied,
            Reason::RateLimited { .. } => ResponseType::Throttled,
            Reason::NoHost { .. }
            | Reason::NoStage { .. }
            | Reason::NoRoute { .. }
            | Reason::MethodNotAllowed { .. } => ResponseType::NotFound,
            Reason::ParamMissing { .. }
            | Reason::ParamInvalid { .. }
            | Reason::ParamOutOfRange { .. }
            | Reason::FormContentTypeRequired
            | Reason::WebSocketKeyMissing
            | Reason::WebSocketVersionMissing => ResponseType::RequestParametersFailure,
            Reason::BackendUnavailable | Reason::BackendDnsFailed | Reason::NoBackendAvailable => {
                ResponseType::BackendUnavailable
            }
            Reason::BackendTimeout => ResponseType::BackendTimeout,
            Reason::OrchestrationFailed { .. } => ResponseType::OrchestrationFailure,
            _ if status >= 500 => ResponseType::Default5xx,
            _ => ResponseType::Default4xx,
        }
    }
}

impl fmt::Display for ResponseType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A `$context.…` variable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Var {
    ErrorCode,
    ErrorMessage,
    ErrorType,
    RequestId,
    ApiId,
    ApiName,
    AppId,
    AppName,
    Stage,
    SourceIp,
    ReqPath,
    ReqUri,
    ReqMethod,
}

impl Var {
    const NAMES: [(&'static str, Var); 13] = [
        ("error.code", Var::ErrorCode),
        ("error.message", Var::ErrorMessage),
        ("error.type", Var::ErrorType),
        ("requestId", Var::RequestId),
        ("apiId", Var::ApiId),
        ("apiName", Var::ApiName),
        ("appId", Var::AppId),
        ("appName", Var::AppName),
        ("stage", Var::Stage),
        ("sourceIp", Var::SourceIp),
        ("reqPath", Var::ReqPath),
        ("reqUri", Var::ReqUri),
        ("reqMethod", Var::ReqMethod),
    ];

    /// The variables' names after `$context.`, for diagnostics.
    pub fn names() -> impl Iterator<Item = &'static str> {
        Var::NAMES.iter().map(|(n, _)| *n)
    }
}

/// Text with `$context.…` variables.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template {
    parts: Vec<Part>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Part {
    Text(String),
    Var(Var),
}

impl Template {
    /// Split `text` at its variables; `Err` names the first `$context.NAME` that is not one.
    pub fn parse(text: &str) -> Result<Template, String> {
        const PREFIX: &str = "$context.";
        let mut parts = Vec::new();
        let mut rest = text;
        while let Some(at) = rest.find(PREFIX) {
            if at > 0 {
                parts.push(Part::Text(rest[..at].to_string()));
            }
            let after = &rest[at + PREFIX.len()..];
            let len = after
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '.' || c == '_'))
                .unwrap_or(after.len());
            // a sentence may end a variable with a full stop
            let name = after[..len].trim_end_matches('.');
            let var = Var::NAMES
                .iter()
                .find(|(n, _)| *n == name)
                .map(|(_, v)| *v)
                .ok_or_else(|| format!("$context.{name}"))?;
            parts.push(Part::Var(var));
            rest = &after[name.len()..];
        }
        if !rest.is_empty() {
            parts.push(Part::Text(rest.to_string()));
        }
        Ok(Template { parts })
    }

    fn fill(&self, values: &Values<'_>, escape: bool) -> String {
        let mut out = String::new();
        for p in &self.parts {
            match p {
                Part::Text(t) => out.push_str(t),
                Part::Var(v) => {
                    let value = values.get(*v);
                    match escape {
                        true => {
                            let quoted = serde_json::to_string(value).unwrap_or_default();
                            out.push_str(&quoted[1..quoted.len() - 1]);
                        }
                        false => out.push_str(value),
                    }
                }
            }
        }
        out
    }
}

/// What a request's variables are, gathered when it was decided.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Context {
    pub request_id: String,
    pub api: String,
    pub app_key: String,
    pub app_name: String,
    pub stage: String,
    pub source_ip: String,
    pub path: String,
    pub uri: String,
    pub method: String,
}

struct Values<'a> {
    ctx: &'a Context,
    code: &'a str,
    message: &'a str,
    kind: ResponseType,
}

impl Values<'_> {
    fn get(&self, v: Var) -> &str {
        let c = self.ctx;
        match v {
            Var::ErrorCode => self.code,
            Var::ErrorMessage => self.message,
            Var::ErrorType => self.kind.name(),
            Var::RequestId => &c.request_id,
            Var::ApiId | Var::ApiName => &c.api,
            Var::AppId => &c.app_key,
            Var::AppName => &c.app_name,
            Var::Stage => &c.stage,
            Var::SourceIp => &c.source_ip,
            Var::ReqPath => &c.path,
            Var::ReqUri => &c.uri,
            Var::ReqMethod => &c.method,
        }
    }
}

/// A service's answer to one error type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Custom {
    pub kind: ResponseType,
    pub status: u16,
    /// The JSON body as compact text, its strings templates.
    pub body: Template,
    pub headers: Vec<(String, Template)>,
}

impl Custom {
    /// The status, the headers (before the request id and the pipeline's) and the body.
    pub fn render(
        &self,
        ctx: &Context,
        code: &str,
        message: &str,
    ) -> (u16, Vec<(String, String)>, String) {
        let values = Values {
            ctx,
            code,
            message,
            kind: self.kind,
        };
        let mut headers = vec![("Content-Type".to_string(), "application/json".to_string())];
        for (name, t) in &self.headers {
            let value = t.fill(&values, false);
            if http::HeaderValue::from_str(&value).is_ok() {
                headers.push((name.clone(), value));
            }
        }
        (self.status, headers, self.body.fill(&values, true))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ctx() -> Context {
        Context {
            request_id: "abc".into(),
            api: "GET /orders/{id}".into(),
            source_ip: "203.0.113.9".into(),
            method: "GET".into(),
            ..Context::default()
        }
    }

    #[test]
    fn a_template_fills_its_variables_escaping_them_in_the_body() {
        let t = Template::parse(r#"{"code":"$context.error.code","msg":"$context.error.message"}"#)
            .unwrap();
        let c = Custom {
            kind: ResponseType::AuthFailure,
            status: 418,
            body: t,
            headers: vec![(
                "X-Type".into(),
                Template::parse("$context.error.type").unwrap(),
            )],
        };
        let (status, headers, body) = c.render(&ctx(), "APIG.0303", "say \"no\"");
        assert_eq!(status, 418);
        assert_eq!(body, r#"{"code":"APIG.0303","msg":"say \"no\""}"#);
        assert_eq!(headers[1], ("X-Type".into(), "AUTH_FAILURE".into()));
    }

    #[test]
    fn an_unknown_variable_is_named() {
        assert_eq!(
            Template::parse("x $context.error.cod y"),
            Err("$context.error.cod".to_string())
        );
        assert!(Template::parse("ends with $context.requestId.").is_ok());
    }

    #[test]
    fn every_type_name_round_trips() {
        for t in ResponseType::ALL {
            assert_eq!(ResponseType::from_name(t.name()), Some(t));
        }
    }

    #[test]
    fn refusals_fall_in_their_types_and_the_rest_in_the_defaults() {
        assert_eq!(
            ResponseType::of(&Reason::RateLimited { hit: None }, 429),
            ResponseType::Throttled
        );
        assert_eq!(
            ResponseType::of(&Reason::NoRoute { uri: "/x".into() }, 404),
            ResponseType::NotFound
        );
        assert_eq!(
            ResponseType::of(&Reason::BadRequest, 400),
            ResponseType::Default4xx
        );
        assert_eq!(
            ResponseType::of(&Reason::Internal, 500),
            ResponseType::Default5xx
        );
    }
}
