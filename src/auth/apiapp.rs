//! Tencent's application authentication ("应用认证": ApiAppKey and ApiAppSecret), distinct from
//! its key pairs (`keypair.rs`): the signature covers the method, `Accept`, `Content-Type`,
//! `Content-MD5` and the path with its query, besides `x-date`.
//!
//! As Tencent documents it (`auth-schemes.md` §1.6, from its app-auth pages and demos):
//!
//! ```text
//! signing string = "x-date: " DATE "\n" METHOD "\n" ACCEPT "\n" CONTENT-TYPE "\n"
//!                  CONTENT-MD5 "\n" PATH-AND-PARAMETERS
//! signature      = base64(HMAC-SHA1(ApiAppSecret, signing string))
//! Authorization: hmac id="ApiAppKey", algorithm="hmac-sha1", headers="x-date", signature="…"
//! ```
//!
//! An absent header is an empty line. PATH-AND-PARAMETERS is the path without a leading
//! `/release`, `/test` or `/prepub` environment segment, then, when the request has a query,
//! `?` and its parameters sorted by name (then value), as sent, not re-encoded. The demos send
//! `Content-MD5` as base64 of the *hex* MD5 of the body; rulegate signs whatever the header
//! holds, as Tencent does, and does not recompute it. `x-date` must be within `clock skew` of
//! the gateway's clock (default 900 s, Tencent's key-pair default).
//!
//! Failures answer Tencent's hmac rows (its app-auth texts are not documented); an app the API
//! does not bind answers `Found no validate apiapp.` (checked by the auth step, see
//! `check/auth.rs`).

use super::signing::Signing;
use super::{Compiler, Principal, Refusal, Scheme, Verified};
use crate::auth::{Provider, ServiceView};
use crate::dialect::{AuthFailure, Reason};
use crate::policy::ast::{AuthItem, Spanned};
use crate::request::RequestHead;
use base64::Engine as _;
use hmac::{Hmac, Mac};

/// The environment segments Tencent strips from the signed path.
const ENVIRONMENTS: [&str; 3] = ["/release", "/test", "/prepub"];

/// An app-authentication provider's settings.
#[derive(Debug)]
pub struct Config {
    pub clock_skew_ms: u64,
}

impl Scheme for Config {
    const YIELDS_APP: bool = true;
    const CARRIES_CLAIMS: bool = false;
    const SIGN: Option<super::Signer<Self>> = Some(sign);

    fn accepts(item: &AuthItem) -> bool {
        matches!(item, AuthItem::ClockSkew(_))
    }

    fn compile(items: &[&Spanned<AuthItem>], _: &mut dyn Compiler) -> Config {
        let mut out = Config {
            clock_skew_ms: 900_000,
        };
        for item in items {
            if let AuthItem::ClockSkew(d) = &item.value {
                out.clock_skew_ms = d.value.millis;
            }
        }
        out
    }

    fn failures(&self) -> Vec<Reason> {
        use AuthFailure as A;
        [
            A::HmacNoAuthorization,
            A::HmacFormat,
            A::HmacIdOrSignatureMissing,
            A::HmacAlgorithmUnsupported {
                algorithm: super::SOME_DETAIL.into(),
            },
            A::HmacBadXDate,
            A::HmacXDateExpired,
            A::HmacUnknownKey,
            A::HmacMismatch,
        ]
        .into_iter()
        .map(Reason::Auth)
        .collect()
    }

    fn verify<'p>(
        &'p self,
        service: ServiceView<'_>,
        _: &Provider,
        head: &RequestHead<'_>,
        now_ms: i64,
    ) -> Verified<'p> {
        verify(service, self, head, now_ms).into()
    }
}

/// The path as Tencent signs it: without the environment segment, with the query's parameters
/// sorted.
pub fn path_and_parameters(path: &str, query: Option<&str>) -> String {
    let mut out = path.to_string();
    for env in ENVIRONMENTS {
        if let Some(rest) = path.strip_prefix(env) {
            if rest.is_empty() || rest.starts_with('/') {
                out = if rest.is_empty() { "/".into() } else { rest.into() };
                break;
            }
        }
    }
    if let Some(q) = query.filter(|q| !q.is_empty()) {
        let mut pairs: Vec<(&str, &str)> = q
            .split('&')
            .filter(|p| !p.is_empty())
            .map(|p| p.split_once('=').unwrap_or((p, "")))
            .collect();
        pairs.sort();
        let joined: Vec<String> = pairs
            .iter()
            .map(|(k, v)| match v.is_empty() {
                true => k.to_string(),
                false => format!("{k}={v}"),
            })
            .collect();
        out.push('?');
        out.push_str(&joined.join("&"));
    }
    out
}

/// The signing string of a request dated `date`.
pub fn signing_string(head: &RequestHead<'_>, date: &str) -> String {
    let h = |name: &str| head.header(name).unwrap_or("");
    format!(
        "x-date: {date}\n{}\n{}\n{}\n{}\n{}",
        head.method,
        h("accept"),
        h("content-type"),
        h("content-md5"),
        path_and_parameters(head.path(), head.query())
    )
}

/// base64(HMAC-SHA1(secret, text)).
pub fn signature(secret: &[u8], text: &str) -> String {
    let mut mac = <Hmac<sha1::Sha1> as hmac::digest::KeyInit>::new_from_slice(secret)
        .expect("HMAC takes any key length");
    mac.update(text.as_bytes());
    base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
}

fn refuse(failure: AuthFailure, detail: impl Into<String>) -> Refusal {
    Refusal {
        reason: Reason::Auth(failure),
        detail: detail.into(),
    }
}

fn verify(
    service: ServiceView<'_>,
    c: &Config,
    head: &RequestHead<'_>,
    now_ms: i64,
) -> Result<Principal, Refusal> {
    let Some(authorization) = head.header(http::header::AUTHORIZATION) else {
        return Err(refuse(AuthFailure::HmacNoAuthorization, "no Authorization header"));
    };
    let Some(params) = super::keypair::parse(authorization) else {
        return Err(refuse(
            AuthFailure::HmacFormat,
            "the Authorization header is not `hmac k=\"v\", …`",
        ));
    };
    let (Some(id), Some(received)) = (&params.id, &params.signature) else {
        return Err(refuse(
            AuthFailure::HmacIdOrSignatureMissing,
            "id or signature missing",
        ));
    };
    if let Some(algorithm) = params.algorithm.as_ref().filter(|a| *a != "hmac-sha1") {
        let algorithm = algorithm.clone();
        return Err(refuse(
            AuthFailure::HmacAlgorithmUnsupported {
                algorithm: algorithm.clone(),
            },
            format!("app authentication signs with hmac-sha1, not {algorithm}"),
        ));
    }
    let Some(date) = head.header("x-date") else {
        return Err(refuse(AuthFailure::HmacBadXDate, "no x-date header"));
    };
    let Ok(when) = httpdate::parse_http_date(date) else {
        return Err(refuse(AuthFailure::HmacBadXDate, "x-date is not an HTTP date"));
    };
    let when_ms = when
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64);
    if (now_ms - when_ms).unsigned_abs() > c.clock_skew_ms {
        return Err(refuse(AuthFailure::HmacXDateExpired, "x-date out of the clock skew"));
    }
    let Some(&index) = service.app_by_key.get(id) else {
        return Err(refuse(AuthFailure::HmacUnknownKey, format!("no app has key {id:?}")));
    };
    let app = &service.apps[index];
    let Some(secret) = &app.secret else {
        return Err(refuse(
            AuthFailure::HmacUnknownKey,
            format!("app {} has no secret to sign with", app.name),
        ));
    };
    let expected = signature(&secret.0, &signing_string(head, date));
    if !super::sig::same(expected.as_bytes(), received.as_bytes()) {
        return Err(refuse(
            AuthFailure::HmacMismatch,
            format!("signature does not match for app key {id:?}"),
        ));
    }
    Ok(Principal {
        app: Some(index),
        describe: format!("app {} (ApiAppKey {id})", app.name),
        claims: None,
        nonce: None,
    })
}

/// `rulegate test`'s signer: the signing string of the test's request, dated by its clock.
fn sign(_: Option<(&Provider, &Config)>, s: &mut Signing<'_>) -> Result<(), String> {
    let when = std::time::UNIX_EPOCH + std::time::Duration::from_millis(s.now_ms as u64);
    let date = httpdate::fmt_http_date(when);
    s.insert("x-date", &date)?;
    let secret = s
        .app
        .secret
        .as_ref()
        .ok_or_else(|| format!("cannot sign: app {:?} has no secret", s.app.name))?;
    let text = signing_string(&s.head(), &date);
    let authorization = format!(
        "hmac id=\"{}\", algorithm=\"hmac-sha1\", headers=\"x-date\", signature=\"{}\"",
        s.app.key,
        signature(&secret.0, &text)
    );
    s.insert("authorization", &authorization)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_environment_segment_goes_and_the_query_is_sorted_not_reencoded() {
        assert_eq!(
            path_and_parameters("/release/orders/7", Some("b=2&a=1%20x&c")),
            "/orders/7?a=1%20x&b=2&c"
        );
        assert_eq!(path_and_parameters("/test", None), "/");
        assert_eq!(path_and_parameters("/testing/x", None), "/testing/x");
        assert_eq!(path_and_parameters("/prepub/x", Some("")), "/x");
    }

    /// A vector worked by hand from the documented procedure and checked with Python's
    /// `hmac`/`hashlib`/`base64` (the way Tencent's demo computes it): secret "secret", the
    /// signing string below.
    #[test]
    fn the_signature_is_base64_hmac_sha1_of_the_signing_string() {
        let text = "x-date: Mon, 01 Dec 2026 08:00:00 GMT\nGET\napplication/json\n\n\n/orders?a=1&b=2";
        assert_eq!(signature(b"secret", text), VECTOR);
    }

    const VECTOR: &str = "UhRCTqLueJjUK968o7QlFpETyjc=";
}
