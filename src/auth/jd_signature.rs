//! JD Cloud `JDCLOUD2-HMAC-SHA256` (`auth-schemes.md` §4): SigV4 structure with JD constants.
//!
//! `Authorization: JDCLOUD2-HMAC-SHA256 Credential=AK/yyyymmdd/region/service/jdcloud2_request,
//! SignedHeaders=a;b, Signature=<hex>`. The scope is taken from the Credential itself (as JD's
//! own verifier does); the header list from the client's `SignedHeaders`. JD's signers disagree
//! on canonicalisation, so each documented variant is tried: the raw or the `quote`d path, the
//! raw or the RFC 3986-encoded query, and a Host with or without its default port. A correctly
//! signed request is then held to its nonce: a second use within the replay window is refused.

use super::sig::{
    authorization_fields, carries_body, encode, format_sdk_date, hmac_sha256, join_pairs, parse_sdk_date, percent_decode,
    query_pairs, same, signature_refusal as refuse,
};
use crate::vocab::hex::{decode_hex, hex};
use super::signing::Signing;
use super::{Compiler, Principal, Refusal, Scheme, Verified};
use crate::dialect::Reason;
use crate::auth::{Provider, ServiceView};
use crate::request::RequestHead;
use crate::policy::ast::{AuthItem, Spanned};
use sha2::{Digest, Sha256};

pub const SCHEME: &str = "JDCLOUD2-HMAC-SHA256";

/// A jd-signature provider's settings.
#[derive(Debug)]
pub struct Config {
    pub clock_skew_ms: u64,
    /// The credential scope's region and service (API group) a signature must name; `None`
    /// accepts any.
    pub region: Option<String>,
    pub group: Option<String>,
}

impl Scheme for Config {
    const YIELDS_APP: bool = true;
    const CARRIES_CLAIMS: bool = false;
    const SIGN: Option<super::Signer<Self>> = Some(sign);

    fn accepts(item: &AuthItem) -> bool {
        matches!(
            item,
            AuthItem::ClockSkew(_) | AuthItem::Region(_) | AuthItem::Group(_)
        )
    }

    fn compile(items: &[&Spanned<AuthItem>], _: &mut dyn Compiler) -> Config {
        let mut out = Config {
            clock_skew_ms: 15 * 60_000,
            region: None,
            group: None,
        };
        for item in items {
            match &item.value {
                AuthItem::ClockSkew(d) => out.clock_skew_ms = d.value.millis,
                AuthItem::Region(r) => out.region = Some(r.value.clone()),
                AuthItem::Group(g) => out.group = Some(g.value.clone()),
                _ => {}
            }
        }
        out
    }

    /// The signature covers the body unless the client gave its hash in
    /// `x-jdcloud-content-sha256`.
    fn needs_body(&self, head: &RequestHead<'_>) -> bool {
        !head.headers.contains_key("x-jdcloud-content-sha256") && carries_body(head)
    }

    /// The signature row, and the replay of a spent nonce (refused where the nonce is spent).
    fn failures(&self) -> Vec<Reason> {
        let replayed = crate::dialect::AuthFailure::Replayed {
            detail: super::SOME_DETAIL.into(),
        };
        vec![
            super::sig::signature_refusal(super::SOME_DETAIL).reason,
            Reason::Auth(replayed),
        ]
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

/// `rulegate test`'s signer, for the service's jd-signature provider (its region and group
/// when it pins them), with a nonce unique within the run.
fn sign(provider: Option<(&Provider, &Config)>, s: &mut Signing<'_>) -> Result<(), String> {
    let Some((_, settings)) = provider else {
        return Err(format!(
            "cannot sign: service {} has no jd-signature provider",
            s.service.name
        ));
    };
    let date = format_sdk_date(s.now_ms);
    // Unique within a run, so `times N` is N requests, not one and its replays.
    static NONCES: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
    let nonce = format!(
        "rulegate-test-{}",
        NONCES.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    );
    s.insert("x-jdcloud-date", &date)?;
    s.insert("x-jdcloud-nonce", &nonce)?;
    let mut signed: Vec<String> = ["content-type", "host", "x-jdcloud-date", "x-jdcloud-nonce"]
        .iter()
        .filter(|n| **n == "host" || s.headers.contains_key(**n))
        .map(|n| n.to_string())
        .collect();
    signed.sort();
    let host_value = s.host.unwrap_or("").trim();
    let head = s.head();
    // a provider pinned to a region and group is signed for them; otherwise any do
    let region = settings.region.as_deref().unwrap_or("cn-north-1");
    let group = settings.group.as_deref().unwrap_or("rulegate-test");
    let day = &date[..8.min(date.len())];
    let scope = format!("{day}/{region}/{group}/jdcloud2_request");
    let canonical = canonical_request(
        &head,
        &signed,
        host_value,
        head.path(),
        &encoded_query(head.query().unwrap_or("")),
        &hex(&Sha256::digest(s.body)),
    );
    let to_sign = format!(
        "{SCHEME}\n{date}\n{scope}\n{}",
        hex(&Sha256::digest(canonical.as_bytes()))
    );
    let secret = s
        .app
        .secret
        .as_ref()
        .ok_or_else(|| format!("cannot sign: app {:?} has no secret", s.app.name))?;
    let key = signing_key(&secret.0, day, region, group);
    let signature = hex(&hmac_sha256(&key, to_sign.as_bytes()));
    let authorization = format!(
        "{SCHEME} Credential={}/{scope}, SignedHeaders={}, Signature={signature}",
        s.app.key,
        signed.join(";")
    );
    s.insert("authorization", &authorization)
}

struct Credential<'a> {
    ak: &'a str,
    date: &'a str,
    region: &'a str,
    service: &'a str,
    signed: Vec<String>,
    signature: &'a str,
}

fn parse(value: &str) -> Option<Credential<'_>> {
    let [credential, signed, signature] =
        authorization_fields(value, SCHEME, ["Credential", "SignedHeaders", "Signature"])?;
    let mut scope = credential.split('/');
    let (ak, date, region, service, terminator) = (
        scope.next()?,
        scope.next()?,
        scope.next()?,
        scope.next()?,
        scope.next()?,
    );
    if terminator != "jdcloud2_request" || scope.next().is_some() {
        return None;
    }
    Some(Credential {
        ak,
        date,
        region,
        service,
        signed: signed
            .split(';')
            .map(|h| h.trim().to_ascii_lowercase())
            .collect(),
        signature,
    })
}

pub fn verify(
    service: ServiceView<'_>,
    settings: &Config,
    head: &RequestHead<'_>,
    now_ms: i64,
) -> Result<Principal, Refusal> {
    let Some(authorization) = head.header(http::header::AUTHORIZATION) else {
        return Err(refuse("authorization header not found"));
    };
    let Some(c) = parse(authorization) else {
        return Err(refuse("authorization header format error"));
    };
    // The scope is the client's, but it must be the one this API is published under.
    let pinned = [
        ("region", &settings.region, c.region),
        ("service", &settings.group, c.service),
    ];
    for (part, expected, got) in pinned {
        if let Some(expected) = expected.as_deref().filter(|e| *e != got) {
            return Err(refuse(format!(
                "credential scope {part} {got:?} is not {expected:?}"
            )));
        }
    }
    for required in ["x-jdcloud-date", "x-jdcloud-nonce"] {
        if !c.signed.iter().any(|h| h == required) || head.header(required).is_none() {
            return Err(refuse(format!("{required} must be present and signed")));
        }
    }
    if head.headers.contains_key("x-jdcloud-security-token")
        && !c.signed.iter().any(|h| h == "x-jdcloud-security-token")
    {
        return Err(refuse("x-jdcloud-security-token must be signed"));
    }
    let date = head.header("x-jdcloud-date").unwrap_or("").trim();
    let nonce = head.header("x-jdcloud-nonce").unwrap_or("").trim();
    if date.get(..8) != Some(c.date) {
        return Err(refuse("the credential date is not the x-jdcloud-date day"));
    }
    let now = now_ms;
    match parse_sdk_date(date) {
        None => return Err(refuse("x-jdcloud-date is not yyyymmddThhmmssZ")),
        Some(t) if (now - t).unsigned_abs() > settings.clock_skew_ms => {
            return Err(refuse(format!(
                "x-jdcloud-date {date} is outside the {} s window",
                settings.clock_skew_ms / 1000
            )))
        }
        Some(_) => {}
    }
    let Some(&app_index) = service.app_by_key.get(c.ak) else {
        return Err(refuse(format!("unknown access key {}", c.ak)));
    };
    let app = &service.apps[app_index];
    let Some(received) = decode_hex(c.signature) else {
        return Err(refuse("signature is not hex"));
    };

    let payload = match head.header("x-jdcloud-content-sha256") {
        Some(v) => v.trim().to_string(),
        None => hex(&Sha256::digest(head.body.unwrap_or_default())),
    };
    let scope = format!("{}/{}/{}/jdcloud2_request", c.date, c.region, c.service);
    let Some(secret) = &app.secret else {
        return Err(refuse("the app has no secret to sign with"));
    };
    let key = signing_key(&secret.0, c.date, c.region, c.service);
    let path = head.path();
    let query = head.query().unwrap_or("");
    let host = head.header(http::header::HOST).unwrap_or("").trim();
    let hosts = [Some(host), strip_default_port(host)];
    let mut tried = 0;
    for canonical_path in [path.to_string(), quote_path(path)] {
        for canonical_query in [raw_query(query), encoded_query(query)] {
            for host in hosts.iter().flatten() {
                tried += 1;
                let canonical = canonical_request(
                    head,
                    &c.signed,
                    host,
                    &canonical_path,
                    &canonical_query,
                    &payload,
                );
                let to_sign = format!(
                    "{SCHEME}\n{date}\n{scope}\n{}",
                    hex(&Sha256::digest(canonical.as_bytes()))
                );
                if same(&hmac_sha256(&key, to_sign.as_bytes()), &received) {
                    // Only a correctly signed request spends its nonce: a forger cannot burn them.
                    let ttl = 2 * settings.clock_skew_ms;
                    return Ok(Principal {
                        app: Some(app_index),
                        describe: format!(
                            "app {} (access key {}) signed JDCLOUD2 for {}/{}",
                            app.name, c.ak, c.region, c.service
                        ),
                        claims: None,
                        nonce: Some(super::Nonce {
                            key: format!("jd|{}|{nonce}", c.ak),
                            value: nonce.to_string(),
                            ttl_ms: ttl,
                        }),
                    });
                }
            }
        }
    }
    Err(refuse(format!(
        "signature mismatch ({tried} canonical forms tried)"
    )))
}

/// kDate = HMAC("JDCLOUD2" + SK, yyyymmdd); then region, service, "jdcloud2_request".
pub(crate) fn signing_key(secret: &[u8], date: &str, region: &str, service: &str) -> Vec<u8> {
    let mut k = b"JDCLOUD2".to_vec();
    k.extend_from_slice(secret);
    let k = hmac_sha256(&k, date.as_bytes());
    let k = hmac_sha256(&k, region.as_bytes());
    let k = hmac_sha256(&k, service.as_bytes());
    hmac_sha256(&k, b"jdcloud2_request")
}

pub fn canonical_request(
    head: &RequestHead<'_>,
    signed: &[String],
    host: &str,
    path: &str,
    query: &str,
    payload: &str,
) -> String {
    let mut names: Vec<&str> = signed.iter().map(String::as_str).collect();
    names.sort_unstable();
    names.dedup();
    let mut out = format!("{}\n{path}\n{query}\n", head.method.to_ascii_uppercase());
    for name in &names {
        let value = if *name == "host" {
            host.to_string()
        } else {
            head.headers
                .get(*name)
                .map(|v| String::from_utf8_lossy(v.as_bytes()).trim().to_string())
                .unwrap_or_default()
        };
        out.push_str(&format!("{name}:{value}\n"));
    }
    out.push('\n');
    out.push_str(&names.join(";"));
    out.push('\n');
    out.push_str(payload);
    out
}

fn strip_default_port(host: &str) -> Option<&str> {
    host.strip_suffix(":80")
        .or_else(|| host.strip_suffix(":443"))
}

/// Python's `quote(path)`: everything but unreserved characters and `/` percent-encoded.
fn quote_path(path: &str) -> String {
    path.split('/')
        .map(|s| encode(s.as_bytes()))
        .collect::<Vec<_>>()
        .join("/")
}

/// The apim SDK's form: pairs split on `&` and `=`, trimmed, sorted, not re-encoded.
fn raw_query(query: &str) -> String {
    let mut pairs: Vec<(&str, &str)> = query
        .split('&')
        .filter(|p| !p.trim().is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (k.trim(), v.trim())
        })
        .collect();
    pairs.sort();
    join_pairs(pairs)
}

/// The documented form: keys and values RFC 3986-encoded, then sorted.
pub(crate) fn encoded_query(query: &str) -> String {
    let mut pairs: Vec<(String, String)> = query_pairs(query)
        .map(|(k, v)| (encode(&percent_decode(k)), encode(&percent_decode(v))))
        .collect();
    pairs.sort();
    join_pairs(pairs)
}
