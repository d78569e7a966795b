//! The external authorizer: what `decide` asks an operator's HTTP service, and what its answer
//! means.
//!
//! `decide` is pure and synchronous, so it never calls out itself. The route's auth step builds
//! a [`Call`] (the identity header values, and the request's method, path, host and client for
//! the authorizer's information) and asks its [`Env`](crate::decide::Env) for an [`Answer`]:
//! the server has one when its decision cache holds it or when it was fetched for this request;
//! otherwise `decide` stops with `Outcome::NeedAuthorization`, the server makes the call
//! (`server::authorizer`) and decides again. `explain` and `rulegate test` never call: their
//! answer is a stub the test declares, or a failure that says no call was made.
//!
//! # The protocol
//!
//! `POST <url>` with `Content-Type: application/json` and the body
//! `{"identities": {"<header>": "<value>", …}, "method": …, "path": …, "query": …, "host": …,
//! "client_ip": …, "request_id": …}`. The answer:
//!
//! | authorizer answers | rulegate | Huawei row |
//! |---|---|---|
//! | 2xx, `{"status": "allow", "context": {…}}` | continue; `context` to the backend as `X-Authorizer-<key>` | — |
//! | 2xx, `{"status": "deny"}` | refuse | 401 APIG.0312 `…,auth fail` |
//! | 401 (any body) | refuse | 401 APIG.0312 |
//! | 403 (any body) | refuse | 403 APIG.0314 `…,access deny` |
//! | any other status, a body that is not that JSON, a bad `context`, more than [`MAX_BODY`] bytes, or no full answer within `timeout` once connected | refuse | 500 APIG.0617 `…response information` |
//! | refused, unreachable, or not connected within `timeout` | refuse | 500 APIG.0616 `…request information` |
//! | the URL's host does not resolve | refuse | 500 APIG.0615 `…VPC information` |
//!
//! An identity header the request lacks (or sends empty) is refused before any call with
//! 401 APIG.0313 `…,identities error`. Huawei's descriptions decide the failure rows: 0616 is
//! "failed to connect to the third-party authentication service", 0617 "failed to obtain
//! response from" it, 0615 "failed to obtain the … channel nodes" (no address to call).
//!
//! Allow, deny and 403 answers are cached for the provider's `cache` time, keyed by the
//! provider and the identity values (as Huawei caches custom-authorizer results by identity
//! source); failures never are. A provider without identity headers is never cached: every
//! request would share one answer.

use super::{Compiler, Scheme, Settings, Verified};
use crate::auth::{Provider, ServiceView};
use crate::vocab::{HttpTarget, Target};
use crate::request::RequestHead;
use crate::request::Client;
use crate::dialect::{AuthFailure, Reason};
use crate::policy::ast::{AuthItem, Spanned};
use std::fmt;

/// An authorizer provider's settings.
#[derive(Debug)]
pub struct Config {
    /// `None` only in a policy that did not compile.
    pub url: Option<String>,
    /// The `url`, split once here rather than on every call.
    pub target: Option<HttpTarget>,
    pub timeout_ms: u64,
    pub cache_ms: u64,
    pub identity_headers: Vec<String>,
}

impl Scheme for Config {
    const YIELDS_APP: bool = false;
    const CARRIES_CLAIMS: bool = false;

    fn accepts(item: &AuthItem) -> bool {
        matches!(
            item,
            AuthItem::Url(_) | AuthItem::Cache(_) | AuthItem::Identity(_) | AuthItem::Timeout(_)
        )
    }

    fn compile(items: &[&Spanned<AuthItem>], cx: &mut dyn Compiler) -> Config {
        let mut out = Config {
            url: None,
            target: None,
            timeout_ms: 500,
            cache_ms: 0,
            identity_headers: Vec::new(),
        };
        for item in items {
            match &item.value {
                AuthItem::Url(u) => {
                    out.url = Some(u.value.clone());
                    out.target = Target::parse(&u.value).http;
                }
                AuthItem::Timeout(d) => out.timeout_ms = d.value.millis,
                AuthItem::Cache(d) => out.cache_ms = d.value.millis,
                AuthItem::Identity(h) => out
                    .identity_headers
                    .extend(h.iter().map(|h| h.value.clone())),
                _ => {}
            }
        }
        if out.url.is_none() {
            let name = cx.name().to_string();
            cx.missing(
                format!("authorizer `{name}` has no `url`"),
                "add `url \"http://HOST:PORT/PATH\"`",
            );
        }
        out
    }

    /// The pipeline asks the authorizer through its env (see the module's doc).
    fn failures(&self) -> Vec<Reason> {
        use AuthFailure as A;
        let mut out = Vec::new();
        if !self.identity_headers.is_empty() {
            out.push(A::AuthorizerIdentityMissing);
        }
        out.extend([
            A::AuthorizerDenied,
            A::AuthorizerForbidden,
            A::AuthorizerUnreachable,
            A::AuthorizerBadResponse,
            A::AuthorizerUnresolved,
        ]);
        out.into_iter().map(Reason::Auth).collect()
    }

    fn verify<'p>(
        &'p self,
        _: ServiceView<'_>,
        _: &Provider,
        _: &RequestHead<'_>,
        _: i64,
    ) -> Verified<'p> {
        Verified::External(self)
    }
}

/// An authorizer provider's settings; `None` for a provider of another scheme (a [`Call`]
/// always names an authorizer).
pub fn settings(provider: &Provider) -> Option<&Config> {
    let Settings::Authorizer(c) = &provider.settings else {
        return None;
    };
    Some(c)
}

/// An authorizer provider's URL as written, for logs and traces.
pub fn url(provider: &Provider) -> Option<&str> {
    settings(provider)?.url.as_deref()
}

/// The most of an authorizer's answer body that is read; a longer one is a bad response.
pub const MAX_BODY: usize = 64 * 1024;
/// `context` entries passed on to the backend, at most.
pub const MAX_CONTEXT: usize = 32;
/// The longest `context` value, in bytes.
pub const MAX_CONTEXT_VALUE: usize = 1024;
/// The prefix of the headers that carry `context` to the backend. Client-sent headers with
/// this prefix are dropped on routes an authorizer allowed, so a client cannot forge them.
pub const CONTEXT_PREFIX: &str = "X-Authorizer-";

/// What the authorizer is asked about one request. `Debug` shows identity values redacted:
/// they are credentials.
#[derive(Clone, PartialEq, Eq)]
pub struct Call {
    /// The provider's index in its service.
    pub provider: usize,
    /// (header name as the policy writes it, value), in the policy's order.
    pub identities: Vec<(String, String)>,
    pub method: String,
    pub path: String,
    pub query: Option<String>,
    pub host: String,
    /// `unknown` in the JSON when a trusted proxy did not name the client.
    pub client_ip: Client,
}

impl fmt::Debug for Call {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Call")
            .field("provider", &self.provider)
            .field(
                "identities",
                &format_args!("{}", Redacted(&self.identities)),
            )
            .field("method", &self.method)
            .field("path", &self.path)
            .field("query", &self.query)
            .field("host", &self.host)
            .field("client_ip", &self.client_ip)
            .finish()
    }
}

impl Call {
    /// The JSON body the authorizer receives.
    pub fn body(&self, request_id: &str) -> Vec<u8> {
        let identities: serde_json::Map<String, serde_json::Value> = self
            .identities
            .iter()
            .map(|(k, v)| (k.clone(), serde_json::Value::String(v.clone())))
            .collect();
        let body = serde_json::json!({
            "identities": identities,
            "method": self.method,
            "path": self.path,
            "query": self.query,
            "host": self.host,
            "client_ip": self.client_ip.to_string(),
            "request_id": request_id,
        });
        serde_json::to_vec(&body).unwrap_or_default()
    }
}

/// Identity headers as traces and logs show them: names only, values redacted.
pub struct Redacted<'a>(pub &'a [(String, String)]);

impl fmt::Display for Redacted<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, (name, _)) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            write!(f, "{name}=‹redacted›")?;
        }
        Ok(())
    }
}

/// The authorizer's verdict on a call, or why there is none.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    /// Continue; `context` goes to the backend as `X-Authorizer-<key>: <value>` headers.
    Allow { context: Vec<(String, String)> },
    /// `{"status": "deny"}` or a 401: APIG.0312.
    Deny,
    /// A 403: APIG.0314.
    Forbidden,
    /// No verdict: the call failed (never cached).
    Failed { failure: Failure, detail: String },
}

/// How a call failed, by the Huawei row it answers with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    /// The URL's host has no address (APIG.0615).
    Unresolved,
    /// No connection within the timeout, or refused (APIG.0616).
    Unreachable,
    /// Connected, but no well-formed answer within the timeout (APIG.0617).
    BadResponse,
}

impl Answer {
    /// Whether the decision cache may keep this answer: verdicts yes, failures never.
    pub fn cacheable(&self) -> bool {
        !matches!(self, Answer::Failed { .. })
    }

    fn failed(failure: Failure, detail: impl Into<String>) -> Answer {
        Answer::Failed {
            failure,
            detail: detail.into(),
        }
    }
}

/// Read an authorizer's answer: its status and (at most [`MAX_BODY`] bytes of) body.
pub fn parse_answer(status: u16, body: &[u8]) -> Answer {
    match status {
        401 => return Answer::Deny,
        403 => return Answer::Forbidden,
        200..=299 => {}
        _ => return Answer::failed(Failure::BadResponse, format!("status {status}")),
    }
    let Ok(serde_json::Value::Object(answer)) = serde_json::from_slice::<serde_json::Value>(body)
    else {
        return Answer::failed(Failure::BadResponse, "the body is not a JSON object");
    };
    match answer.get("status").and_then(|s| s.as_str()) {
        Some("allow") => {}
        Some("deny") => return Answer::Deny,
        _ => {
            return Answer::failed(
                Failure::BadResponse,
                "`status` is not \"allow\" or \"deny\"",
            )
        }
    }
    let context = match answer.get("context") {
        None | Some(serde_json::Value::Null) => Vec::new(),
        Some(serde_json::Value::Object(entries)) => match context(entries) {
            Ok(c) => c,
            Err(detail) => return Answer::failed(Failure::BadResponse, detail),
        },
        Some(_) => {
            return Answer::failed(Failure::BadResponse, "`context` is not an object");
        }
    };
    Answer::Allow { context }
}

/// `context` as headers: keys of 1–32 letters, digits, `-` or `_`; values strings, numbers or
/// booleans that make valid header values of at most [`MAX_CONTEXT_VALUE`] bytes.
fn context(
    entries: &serde_json::Map<String, serde_json::Value>,
) -> Result<Vec<(String, String)>, String> {
    if entries.len() > MAX_CONTEXT {
        return Err(format!("`context` has more than {MAX_CONTEXT} entries"));
    }
    let mut out = Vec::with_capacity(entries.len());
    for (key, value) in entries {
        let key_ok = (1..=32).contains(&key.len())
            && key
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        if !key_ok {
            return Err(format!(
                "`context` key {key:?} is not 1-32 of [A-Za-z0-9_-]"
            ));
        }
        let text = match value {
            serde_json::Value::String(s) => s.clone(),
            serde_json::Value::Number(n) => n.to_string(),
            serde_json::Value::Bool(b) => b.to_string(),
            _ => {
                return Err(format!(
                    "`context` value of {key} is not a string, number or boolean"
                ))
            }
        };
        let value_ok = text.len() <= MAX_CONTEXT_VALUE
            && text
                .bytes()
                .all(|b| b == b'\t' || (b' '..=b'~').contains(&b));
        if !value_ok {
            return Err(format!(
                "`context` value of {key} is longer than {MAX_CONTEXT_VALUE} bytes or not printable ASCII"
            ));
        }
        out.push((key.clone(), text));
    }
    Ok(out)
}

/// The call for this request, or the refusal when an identity header is missing or empty.
pub fn call(
    provider_index: usize,
    provider: &Provider,
    settings: &Config,
    head: &RequestHead<'_>,
    client_ip: Client,
) -> Result<Call, (Reason, String)> {
    let mut identities = Vec::with_capacity(settings.identity_headers.len());
    for name in &settings.identity_headers {
        match head.header(name).map(str::trim) {
            Some(v) if !v.is_empty() => identities.push((name.clone(), v.to_string())),
            _ => {
                return Err((
                    Reason::Auth(AuthFailure::AuthorizerIdentityMissing),
                    format!(
                        "provider {}: identity header {name} is missing or empty",
                        provider.name
                    ),
                ))
            }
        }
    }
    Ok(Call {
        provider: provider_index,
        identities,
        method: head.method.to_string(),
        path: head.path().to_string(),
        query: head.query().map(str::to_string),
        host: head.host.unwrap_or("").to_string(),
        client_ip,
    })
}

/// The refusal for an answer other than allow: the reason and the trace's detail.
pub fn refusal(provider: &Provider, answer: &Answer) -> Option<(Reason, String)> {
    let name = &provider.name;
    let (failure, detail) = match answer {
        Answer::Allow { .. } => return None,
        Answer::Deny => (
            AuthFailure::AuthorizerDenied,
            format!("provider {name}: the authorizer denied"),
        ),
        Answer::Forbidden => (
            AuthFailure::AuthorizerForbidden,
            format!("provider {name}: the authorizer answered 403"),
        ),
        Answer::Failed { failure, detail } => (
            match failure {
                Failure::Unresolved => AuthFailure::AuthorizerUnresolved,
                Failure::Unreachable => AuthFailure::AuthorizerUnreachable,
                Failure::BadResponse => AuthFailure::AuthorizerBadResponse,
            },
            format!("provider {name}: {detail}"),
        ),
    };
    Some((Reason::Auth(failure), detail))
}

/// The cache key of a call to a provider: a SHA-256 of the URL, the provider's name and the
/// identity values, so the cache never holds credentials in the clear.
pub fn cache_key(provider: &Provider, call: &Call) -> [u8; 32] {
    use sha2::{Digest, Sha256};
    let mut h = Sha256::new();
    let mut field = |bytes: &[u8]| {
        h.update((bytes.len() as u64).to_be_bytes());
        h.update(bytes);
    };
    field(url(provider).unwrap_or("").as_bytes());
    field(provider.name.as_bytes());
    for (name, value) in &call.identities {
        field(name.as_bytes());
        field(value.as_bytes());
    }
    h.finalize().into()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bad(a: Answer) -> String {
        match a {
            Answer::Failed {
                failure: Failure::BadResponse,
                detail,
            } => detail,
            other => panic!("expected a bad response, got {other:?}"),
        }
    }

    #[test]
    fn verdicts() {
        assert_eq!(
            parse_answer(200, br#"{"status":"allow"}"#),
            Answer::Allow { context: vec![] }
        );
        assert_eq!(
            parse_answer(204, br#"{"status":"allow","context":null}"#),
            Answer::Allow { context: vec![] }
        );
        assert_eq!(parse_answer(200, br#"{"status":"deny"}"#), Answer::Deny);
        assert_eq!(parse_answer(401, b"whatever"), Answer::Deny);
        assert_eq!(parse_answer(403, b""), Answer::Forbidden);
        assert_eq!(
            parse_answer(
                200,
                br#"{"status":"allow","context":{"user":"ann","level":3,"admin":false}}"#
            ),
            Answer::Allow {
                context: vec![
                    ("user".into(), "ann".into()),
                    ("level".into(), "3".into()),
                    ("admin".into(), "false".into()),
                ]
            }
        );
    }

    #[test]
    fn malformed_answers_are_bad_responses() {
        assert_eq!(
            bad(parse_answer(500, br#"{"status":"allow"}"#)),
            "status 500"
        );
        assert_eq!(bad(parse_answer(302, b"")), "status 302");
        assert_eq!(bad(parse_answer(200, b"")), "the body is not a JSON object");
        assert_eq!(
            bad(parse_answer(200, b"allow")),
            "the body is not a JSON object"
        );
        assert_eq!(
            bad(parse_answer(200, b"[1]")),
            "the body is not a JSON object"
        );
        for body in [r#"{}"#, r#"{"status":"ALLOW"}"#, r#"{"status":true}"#] {
            assert_eq!(
                bad(parse_answer(200, body.as_bytes())),
                "`status` is not \"allow\" or \"deny\"",
                "{body}"
            );
        }
        assert_eq!(
            bad(parse_answer(200, br#"{"status":"allow","context":[1]}"#)),
            "`context` is not an object"
        );
        assert!(bad(parse_answer(
            200,
            br#"{"status":"allow","context":{"a b":"x"}}"#
        ))
        .contains("key \"a b\""));
        assert!(bad(parse_answer(
            200,
            br#"{"status":"allow","context":{"u":{"x":1}}}"#
        ))
        .contains("not a string"));
        assert!(bad(parse_answer(
            200,
            br#"{"status":"allow","context":{"u":"line\r\nX-Injected: 1"}}"#
        ))
        .contains("not printable"));
        let many: serde_json::Map<String, serde_json::Value> = (0..33)
            .map(|i| (format!("k{i}"), serde_json::Value::from(i)))
            .collect();
        let body = serde_json::json!({"status": "allow", "context": many}).to_string();
        assert!(bad(parse_answer(200, body.as_bytes())).contains("more than 32"));
    }

    #[test]
    fn debug_and_display_redact_identity_values() {
        let call = Call {
            provider: 0,
            identities: vec![("Authorization".into(), "Bearer s3cret".into())],
            method: "GET".into(),
            path: "/a".into(),
            query: None,
            host: "h".into(),
            client_ip: crate::request::Client::Known([127, 0, 0, 1].into()),
        };
        let shown = format!("{call:?}");
        assert!(!shown.contains("s3cret"), "{shown}");
        assert!(shown.contains("Authorization=‹redacted›"), "{shown}");
        // the authorizer itself gets the value
        let body: serde_json::Value = serde_json::from_slice(&call.body("rid")).unwrap();
        assert_eq!(body["identities"]["Authorization"], "Bearer s3cret");
        assert_eq!(body["request_id"], "rid");
        assert_eq!(body["query"], serde_json::Value::Null);
    }
}
