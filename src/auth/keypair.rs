//! Tencent key-pair authentication (`Authorization: hmac id="…", algorithm="…", headers="…",
//! signature="…"`), with Kong's hmac-auth as a variant.
//!
//! The checks run in the order of `auth-schemes.md` §1.4, and each failure is the canonical
//! reason for its documented Tencent row. The signing string is `lowercase(name): value` lines
//! joined by `\n`; the received signature is base64-decoded and compared in constant time
//! (`Mac::verify_slice`), first with the header names as listed, then lower-cased.

use super::signing::Signing;
use super::{Compiler, Principal, Refusal, Scheme, Verified};
use crate::auth::{Provider, ServiceView};
use crate::request::RequestHead;
use crate::dialect::{AuthFailure, Reason};
use crate::policy::ast::{AuthItem, AuthKind, Spanned};
use base64::Engine as _;
use hmac::{Hmac, Mac};

/// The algorithms the scheme defines; a provider may narrow them with `algorithms`.
pub const ALGORITHMS: [&str; 4] = ["hmac-sha1", "hmac-sha256", "hmac-sha384", "hmac-sha512"];

/// A key-pair provider's settings.
#[derive(Debug)]
pub struct Config {
    /// Empty: all of [`ALGORITHMS`].
    pub algorithms: Vec<String>,
    pub clock_skew_ms: u64,
    pub kong_variant: bool,
}

impl Scheme for Config {
    const YIELDS_APP: bool = true;
    const CARRIES_CLAIMS: bool = false;
    const SIGN: Option<super::Signer<Self>> = Some(sign);

    fn accepts(item: &AuthItem) -> bool {
        matches!(
            item,
            AuthItem::Algorithms(_) | AuthItem::ClockSkew(_) | AuthItem::Variant(_)
        )
    }

    fn compile(items: &[&Spanned<AuthItem>], cx: &mut dyn Compiler) -> Config {
        let kong = items
            .iter()
            .any(|i| matches!(&i.value, AuthItem::Variant(v) if v.value == "kong"));
        // Kong's hmac-auth defaults to 300 s (auth-schemes.md §2.1), Tencent to 900 s
        let mut out = Config {
            algorithms: Vec::new(),
            clock_skew_ms: if kong { 300_000 } else { 900_000 },
            kong_variant: false,
        };
        let mut algorithms = Vec::new();
        for item in items {
            match &item.value {
                AuthItem::Algorithms(a) => algorithms.extend(a.iter()),
                AuthItem::ClockSkew(d) => out.clock_skew_ms = d.value.millis,
                AuthItem::Variant(v) => out.kong_variant = v.value == "kong",
                _ => {}
            }
        }
        out.algorithms = super::pinned_algorithms(cx, AuthKind::Keypair, &ALGORITHMS, &algorithms);
        out
    }

    fn failures(&self) -> Vec<Reason> {
        use AuthFailure as A;
        let mut out = vec![
            A::HmacNoAuthorization,
            A::HmacFormat,
            A::HmacIdOrSignatureMissing,
            A::HmacParamsMissing,
            A::HmacAlgorithmUnsupported {
                algorithm: super::SOME_DETAIL.into(),
            },
        ];
        if !self.kong_variant {
            let name = super::SOME_DETAIL.into();
            out.extend([A::HmacHeaderMissing { name }, A::HmacRepeatedHeader]);
        }
        out.push(A::HmacNoDate);
        if !self.kong_variant {
            out.extend([A::HmacBadXDate, A::HmacXDateExpired]);
        }
        out.extend([A::HmacUnknownKey, A::HmacMismatch]);
        out.into_iter().map(Reason::Auth).collect()
    }

    fn verify<'p>(
        &'p self,
        service: ServiceView<'_>,
        provider: &Provider,
        head: &RequestHead<'_>,
        now_ms: i64,
    ) -> Verified<'p> {
        verify(service, provider, self, head, now_ms).into()
    }
}

/// `rulegate test`'s signer: hmac-sha256 over `x-date`.
fn sign(_: Option<(&Provider, &Config)>, s: &mut Signing<'_>) -> Result<(), String> {
    let when = std::time::UNIX_EPOCH + std::time::Duration::from_millis(s.now_ms as u64);
    let date = httpdate::fmt_http_date(when);
    s.insert("x-date", &date)?;
    let secret = s.app.secret.as_ref().ok_or_else(|| no_secret(&s.app.name))?;
    let signature = base64::engine::general_purpose::STANDARD.encode(super::sig::hmac_sha256(
        &secret.0,
        format!("x-date: {date}").as_bytes(),
    ));
    let authorization = format!(
        "hmac id=\"{}\", algorithm=\"hmac-sha256\", headers=\"x-date\", signature=\"{signature}\"",
        s.app.key
    );
    s.insert("authorization", &authorization)
}

/// A test signing as an app that has only API keys or a password.
fn no_secret(app: &str) -> String {
    format!("cannot sign: app {app:?} has no secret")
}

fn refuse(failure: AuthFailure, detail: impl Into<String>) -> Refusal {
    Refusal {
        reason: Reason::Auth(failure),
        detail: detail.into(),
    }
}

/// The fields of an `hmac …` Authorization value.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Params {
    pub id: Option<String>,
    pub algorithm: Option<String>,
    pub headers: Option<String>,
    pub signature: Option<String>,
}

/// Parse `hmac k="v", k="v"…` (token case-insensitive, fields in any order, optional spaces;
/// `username` is accepted for `id`). `None` when the value is not of that form.
pub fn parse(value: &str) -> Option<Params> {
    let value = value.trim();
    let (scheme, rest) = value.split_at(value.find(char::is_whitespace)?);
    if !scheme.eq_ignore_ascii_case("hmac") {
        return None;
    }
    let mut params = Params::default();
    let mut rest = rest.trim_start();
    while !rest.is_empty() {
        let (key, after) = rest.split_once('=')?;
        let key = key.trim();
        let after = after.trim_start().strip_prefix('"')?;
        let end = after.find('"')?;
        let (val, tail) = (after[..end].to_string(), &after[end + 1..]);
        match key.to_ascii_lowercase().as_str() {
            "id" | "username" => params.id = Some(val),
            "algorithm" => params.algorithm = Some(val),
            "headers" => params.headers = Some(val),
            "signature" => params.signature = Some(val),
            _ => {}
        }
        let tail = tail.trim_start();
        rest = match tail.strip_prefix(',') {
            Some(t) => t.trim_start(),
            None if tail.is_empty() => tail,
            None => return None,
        };
    }
    Some(params)
}

/// Verify a request. The app's binding, trusted IPs and frozen state are the pipeline's.
pub fn verify(
    service: ServiceView<'_>,
    provider: &Provider,
    c: &Config,
    head: &RequestHead<'_>,
    now_ms: i64,
) -> Result<Principal, Refusal> {
    let Some(authorization) = head.header(http::header::AUTHORIZATION) else {
        return Err(refuse(
            AuthFailure::HmacNoAuthorization,
            "no Authorization header",
        ));
    };
    let Some(params) = parse(authorization) else {
        return Err(refuse(
            AuthFailure::HmacFormat,
            "the Authorization header is not `hmac k=\"v\", …`",
        ));
    };
    let (Some(id), Some(signature)) = (&params.id, &params.signature) else {
        return Err(refuse(
            AuthFailure::HmacIdOrSignatureMissing,
            "id or signature missing",
        ));
    };
    let (Some(algorithm), Some(listed)) = (&params.algorithm, &params.headers) else {
        return Err(refuse(
            AuthFailure::HmacParamsMissing,
            "algorithm or headers missing",
        ));
    };
    let allowed = if c.algorithms.is_empty() {
        ALGORITHMS.iter().any(|a| a == algorithm)
    } else {
        c.algorithms.iter().any(|a| a == algorithm)
    };
    if !allowed {
        return Err(refuse(
            AuthFailure::HmacAlgorithmUnsupported {
                algorithm: algorithm.clone(),
            },
            format!(
                "algorithm {algorithm:?} is not accepted by provider {}",
                provider.name
            ),
        ));
    }
    let names: Vec<&str> = listed.split(' ').filter(|n| !n.is_empty()).collect();
    check_date(c, head, &names, now_ms)?;

    let mut lines: Vec<(&str, String)> = Vec::with_capacity(names.len());
    for name in &names {
        let mut values = head.headers.get_all(*name).iter();
        match (values.next(), values.next()) {
            (None, _) if c.kong_variant => {
                lines.push((name, kong_pseudo_header(name, head)))
            }
            (None, _) => {
                return Err(refuse(
                    AuthFailure::HmacHeaderMissing {
                        name: (*name).to_string(),
                    },
                    format!("signed header {name} is not in the request"),
                ))
            }
            (Some(_), Some(_)) if !c.kong_variant => {
                return Err(refuse(
                    AuthFailure::HmacRepeatedHeader,
                    format!("header {name} appears more than once"),
                ))
            }
            (Some(v), _) => lines.push((
                name,
                format!("{name}: {}", String::from_utf8_lossy(v.as_bytes())),
            )),
        }
    }

    let Some(&app_index) = service.app_by_key.get(id) else {
        return Err(refuse(
            AuthFailure::HmacUnknownKey,
            format!("no app has the key {id:?}"),
        ));
    };
    let app = &service.apps[app_index];
    let Ok(received) = base64::engine::general_purpose::STANDARD.decode(signature.trim()) else {
        return Err(refuse(
            AuthFailure::HmacMismatch,
            "the signature is not base64",
        ));
    };
    let as_listed = lines
        .iter()
        .map(|(_, l)| l.as_str())
        .collect::<Vec<_>>()
        .join("\n");
    let lowered = lines
        .iter()
        .map(|(name, l)| match l.strip_prefix(*name) {
            Some(rest) => format!("{}{rest}", name.to_ascii_lowercase()),
            None => l.clone(),
        })
        .collect::<Vec<_>>()
        .join("\n");
    let Some(secret) = &app.secret else {
        return Err(refuse(
            AuthFailure::HmacUnknownKey,
            format!("app {} has no secret to sign with", app.name),
        ));
    };
    let matches = |s: &str| hmac_matches(algorithm, &secret.0, s.as_bytes(), &received);
    if matches(&as_listed) || (lowered != as_listed && matches(&lowered)) {
        Ok(Principal {
            app: Some(app_index),
            describe: format!("app {} (key {id}) signed with {algorithm}", app.name),
            claims: None,
            nonce: None,
        })
    } else {
        Err(refuse(
            AuthFailure::HmacMismatch,
            format!("signature does not match for key {id:?}"),
        ))
    }
}

/// Tencent: the request needs `Date` or `X-Date`, signed; only `X-Date` is held to the clock.
/// Kong: `X-Date` or `Date` must be within the skew, signed or not.
fn check_date(
    c: &Config,
    head: &RequestHead<'_>,
    names: &[&str],
    now_ms: i64,
) -> Result<(), Refusal> {
    let within = |v: &str| {
        httpdate::parse_http_date(v.trim()).ok().and_then(|t| {
            let t = t.duration_since(std::time::UNIX_EPOCH).ok()?.as_millis() as i64;
            Some((now_ms - t).unsigned_abs() <= c.clock_skew_ms)
        })
    };
    let x_date = head.header("x-date");
    let date = head.header(http::header::DATE);
    if c.kong_variant {
        let ok = x_date.and_then(within).unwrap_or(false) || date.and_then(within).unwrap_or(false);
        if !ok {
            return Err(refuse(
                AuthFailure::HmacNoDate,
                "no X-Date or Date within the clock skew",
            ));
        }
        return Ok(());
    }
    let signed = |h: &str| names.iter().any(|n| n.eq_ignore_ascii_case(h));
    if (x_date.is_none() && date.is_none()) || !(signed("x-date") || signed("date")) {
        return Err(refuse(
            AuthFailure::HmacNoDate,
            "neither X-Date nor Date is present and signed",
        ));
    }
    if let Some(v) = x_date {
        match within(v) {
            None => {
                return Err(refuse(
                    AuthFailure::HmacBadXDate,
                    format!("X-Date {v:?} is not an HTTP date"),
                ))
            }
            Some(false) => {
                return Err(refuse(
                    AuthFailure::HmacXDateExpired,
                    format!(
                        "X-Date {v:?} is more than {} s from the gateway clock",
                        c.clock_skew_ms / 1000
                    ),
                ))
            }
            Some(true) => {}
        }
    }
    Ok(())
}

/// Kong signs an absent header as `name:`, or the pseudo-headers `request-line` and
/// `@request-target` when no real header has that name.
fn kong_pseudo_header(name: &str, head: &RequestHead<'_>) -> String {
    match name {
        "request-line" => format!("{} {} HTTP/1.1", head.method, head.target),
        "@request-target" => format!(
            "@request-target: {} {}",
            head.method.to_ascii_lowercase(),
            head.target
        ),
        _ => format!("{name}:"),
    }
}

/// HMAC of `message` under `key` compared with `expected` in constant time.
pub fn hmac_matches(algorithm: &str, key: &[u8], message: &[u8], expected: &[u8]) -> bool {
    fn check<M: Mac + hmac::digest::KeyInit>(key: &[u8], message: &[u8], expected: &[u8]) -> bool {
        match <M as hmac::digest::KeyInit>::new_from_slice(key) {
            Ok(mut mac) => {
                mac.update(message);
                mac.verify_slice(expected).is_ok()
            }
            Err(_) => false,
        }
    }
    match algorithm {
        "hmac-sha1" => check::<Hmac<sha1::Sha1>>(key, message, expected),
        "hmac-sha256" => check::<Hmac<sha2::Sha256>>(key, message, expected),
        "hmac-sha384" => check::<Hmac<sha2::Sha384>>(key, message, expected),
        "hmac-sha512" => check::<Hmac<sha2::Sha512>>(key, message, expected),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_tencent_and_kong_forms() {
        let p = parse(
            r#"hmac id="AK", algorithm="hmac-sha1", headers="x-date source", signature="c2ln""#,
        )
        .unwrap();
        assert_eq!(p.id.as_deref(), Some("AK"));
        assert_eq!(p.headers.as_deref(), Some("x-date source"));
        let p = parse(r#"HMAC signature="s",username="u" ,algorithm="a",headers="h""#).unwrap();
        assert_eq!(p.id.as_deref(), Some("u"));
        assert_eq!(p.signature.as_deref(), Some("s"));
        assert!(parse("Bearer abc").is_none());
        assert!(parse(r#"hmac id=AK"#).is_none());
        assert!(parse(r#"hmac id="AK" algorithm="x""#).is_none());
        assert_eq!(parse("hmac  ").map(|p| p.id), None);
    }
}
