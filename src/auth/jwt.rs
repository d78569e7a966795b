//! JWT / OAuth id_token verification with `jsonwebtoken`.
//!
//! Keys are parsed when the policy compiles (a bad PEM or JWKS is a `check` diagnostic, not a
//! per-request failure). The provider pins its algorithms: a token naming any other algorithm
//! (`none`, or HS256 against a public key) is refused before any key is tried. `exp` and `nbf`
//! are checked here against the pipeline's clock, not the system clock, so tests run on a
//! virtual one.

use super::{Compiler, Principal, Refusal, Scheme, Verified};
use crate::auth::{Provider, Secret, ServiceView, TokenFrom};
use crate::request::RequestHead;
use crate::dialect::{AuthFailure, Reason};
use crate::policy::ast::{AuthItem, AuthKind, Spanned};
use crate::policy::diag::{self, Diagnostic};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use std::borrow::Cow;
use std::fmt;

/// One verification key: which algorithms it serves and, from a JWKS, its `kid`.
#[derive(Clone)]
pub struct JwtKey {
    pub kid: Option<String>,
    pub key: DecodingKey,
    pub algorithms: Vec<Algorithm>,
}

impl fmt::Debug for JwtKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "JwtKey {{ kid: {:?}, algorithms: {:?} }}",
            self.kid, self.algorithms
        )
    }
}

/// The algorithms a jwt provider may pin.
const ALGORITHMS: &[&str] = &[
    "HS256", "HS384", "HS512", "RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256",
    "ES384", "EdDSA",
];

/// A jwt provider's settings.
#[derive(Debug)]
pub struct Config {
    pub algorithms: Vec<String>,
    pub issuer: Option<String>,
    pub audience: Vec<String>,
    pub leeway_ms: u64,
    pub token_from: TokenFrom,
    /// The verification keys, parsed from `key` / `jwks` when the policy compiled.
    pub keys: Vec<JwtKey>,
}

impl Scheme for Config {
    const YIELDS_APP: bool = false;
    const CARRIES_CLAIMS: bool = true;

    fn accepts(item: &AuthItem) -> bool {
        use AuthItem as A;
        matches!(
            item,
            A::Algorithms(_)
                | A::Key(_)
                | A::Jwks(_)
                | A::Issuer(_)
                | A::Audience(_)
                | A::Leeway(_)
                | A::TokenFrom(_)
        )
    }

    fn compile(items: &[&Spanned<AuthItem>], cx: &mut dyn Compiler) -> Config {
        let mut out = Config {
            algorithms: Vec::new(),
            issuer: None,
            audience: Vec::new(),
            leeway_ms: 60_000,
            token_from: TokenFrom::default(),
            keys: Vec::new(),
        };
        let (mut key, mut jwks) = (None, None);
        let mut algorithms = Vec::new();
        for item in items {
            match &item.value {
                AuthItem::Algorithms(a) => algorithms.extend(a.iter()),
                AuthItem::Key(k) => key = cx.secret(k, false),
                AuthItem::Jwks(k) => jwks = cx.secret(k, false),
                AuthItem::Issuer(i) => out.issuer = Some(i.value.clone()),
                AuthItem::Audience(a) => out.audience.extend(a.iter().map(|a| a.value.clone())),
                AuthItem::Leeway(d) => out.leeway_ms = d.value.millis,
                AuthItem::TokenFrom(t) => out.token_from = super::token_from(t),
                _ => {}
            }
        }
        let before = cx.diagnostics();
        out.algorithms = super::pinned_algorithms(cx, AuthKind::Jwt, ALGORITHMS, &algorithms);
        no_mixed_families(cx, &algorithms);
        // Keys are parsed for the algorithms; with those in error, a key error is only noise.
        let at = items
            .iter()
            .find(|i| matches!(i.value, AuthItem::Key(_) | AuthItem::Jwks(_)));
        if let (Some(at), true) = (at, cx.diagnostics() == before) {
            if key.is_some() || jwks.is_some() {
                out.keys = compile_keys(cx, at.span, &out.algorithms, key, jwks);
            }
        }
        let name = cx.name().to_string();
        if at.is_none() {
            cx.missing(format!("jwt provider `{name}` has no key"),
                "add `key file \"PATH.pem\"` (or `key env \"VAR\"` for HS256) or `jwks file \"PATH\"`");
        }
        if algorithms.is_empty() {
            cx.missing(format!("jwt provider `{name}` does not pin its algorithms"),
                "add `algorithms RS256` (or the algorithms your issuer signs with): tokens are never trusted to name their own");
        }
        out
    }

    fn failures(&self) -> Vec<Reason> {
        use AuthFailure as A;
        let mut out = match &self.token_from {
            TokenFrom::Header { bearer: true, .. } => vec![A::TokenHeaderMissing, A::TokenFormat],
            TokenFrom::Header { .. } => vec![A::TokenHeaderMissing],
            TokenFrom::Query(_) | TokenFrom::Cookie(_) => Vec::new(),
        };
        out.extend([
            A::TokenMissing,
            A::TokenInvalid {
                detail: super::SOME_DETAIL.into(),
            },
            A::TokenExpired,
        ]);
        out.into_iter().map(Reason::Auth).collect()
    }

    fn verify<'p>(
        &'p self,
        _: ServiceView<'_>,
        provider: &Provider,
        head: &RequestHead<'_>,
        now_ms: i64,
    ) -> Verified<'p> {
        verify(provider, self, head, now_ms).into()
    }
}

/// Shared-secret (HS*) and public-key algorithms are never pinned together: only the known
/// algorithms count (an unknown one says nothing about the kind of key).
fn no_mixed_families(cx: &mut dyn Compiler, given: &[&Spanned<String>]) {
    let valid: Vec<&Spanned<String>> = given
        .iter()
        .copied()
        .filter(|a| ALGORITHMS.contains(&a.value.as_str()))
        .collect();
    let mut hs = valid.iter().filter(|a| a.value.starts_with("HS"));
    if let Some(first) = hs.next() {
        if 1 + hs.count() < valid.len() {
            cx.error(
                Diagnostic::error(diag::CONFLICT, first.span, "shared-secret (HS*) and public-key algorithms are mixed")
                    .label("a public key must never verify an HMAC token")
                    .help("use two providers: one with HS* and a secret key, one with public-key algorithms"),
            );
        }
    }
}

/// Parse the key material now, so a bad key is a diagnostic.
fn compile_keys(
    cx: &mut dyn Compiler,
    at: crate::policy::ast::Span,
    algorithms: &[String],
    key: Option<Secret>,
    jwks: Option<Secret>,
) -> Vec<JwtKey> {
    let algs: Vec<Algorithm> = algorithms.iter().filter_map(|a| algorithm(a)).collect();
    let pem = key.as_ref().map(|k| k.0.as_slice());
    let jwks = jwks.as_ref().map(|k| k.0.as_slice());
    match keys(pem, jwks, &algs) {
        Ok(keys) => keys,
        Err(why) => {
            let name = cx.name().to_string();
            cx.error(
                Diagnostic::error(diag::BAD_KEY, at, format!("the key of jwt provider `{name}` is unusable"))
                    .label(why)
                    .help("give a PEM public key matching the algorithms (RS*/PS*: RSA, ES*: EC, EdDSA: Ed25519), a secret for HS*, or a JWKS document"),
            );
            Vec::new()
        }
    }
}

fn refuse(failure: AuthFailure, detail: impl Into<String>) -> Refusal {
    Refusal {
        reason: Reason::Auth(failure),
        detail: detail.into(),
    }
}

fn invalid(detail: &str) -> Refusal {
    refuse(
        AuthFailure::TokenInvalid {
            detail: detail.to_string(),
        },
        detail,
    )
}

/// Parse `algorithms` names; the compiler has already checked them.
pub fn algorithm(name: &str) -> Option<Algorithm> {
    name.parse().ok()
}

/// Build the provider's keys from a PEM (`key`) or a JWKS document (`jwks`).
pub fn keys(
    pem: Option<&[u8]>,
    jwks: Option<&[u8]>,
    algorithms: &[Algorithm],
) -> Result<Vec<JwtKey>, String> {
    let mut out = Vec::new();
    if let Some(material) = pem {
        let hmac: Vec<Algorithm> = algorithms
            .iter()
            .copied()
            .filter(|a| family(*a) == Family::Hmac)
            .collect();
        if !hmac.is_empty() {
            out.push(JwtKey {
                kid: None,
                key: DecodingKey::from_secret(material),
                algorithms: hmac,
            });
        }
        for fam in [Family::Rsa, Family::Ec, Family::Ed] {
            let algs: Vec<Algorithm> = algorithms
                .iter()
                .copied()
                .filter(|a| family(*a) == fam)
                .collect();
            if algs.is_empty() {
                continue;
            }
            let key = match fam {
                Family::Rsa => DecodingKey::from_rsa_pem(material),
                Family::Ec => DecodingKey::from_ec_pem(material),
                _ => DecodingKey::from_ed_pem(material),
            }
            .map_err(|e| format!("the key is not {} public key in PEM: {e}", fam.name()))?;
            out.push(JwtKey {
                kid: None,
                key,
                algorithms: algs,
            });
        }
    }
    if let Some(document) = jwks {
        let set: jsonwebtoken::jwk::JwkSet = serde_json::from_slice(document)
            .map_err(|e| format!("the JWKS document does not parse: {e}"))?;
        for jwk in &set.keys {
            let key =
                DecodingKey::from_jwk(jwk).map_err(|e| format!("a JWKS key is unusable: {e}"))?;
            let algs: Vec<Algorithm> = match jwk
                .common
                .key_algorithm
                .and_then(|a| a.to_string().parse().ok())
            {
                Some(a) => algorithms.iter().copied().filter(|x| *x == a).collect(),
                None => algorithms
                    .iter()
                    .copied()
                    .filter(|a| family(*a) != Family::Hmac)
                    .collect(),
            };
            out.push(JwtKey {
                kid: jwk.common.key_id.clone(),
                key,
                algorithms: algs,
            });
        }
    }
    Ok(out)
}

#[derive(PartialEq, Eq, Clone, Copy)]
enum Family {
    Hmac,
    Rsa,
    Ec,
    Ed,
}

impl Family {
    fn name(self) -> &'static str {
        match self {
            Family::Hmac => "an HMAC",
            Family::Rsa => "an RSA",
            Family::Ec => "an EC",
            Family::Ed => "an Ed25519",
        }
    }
}

fn family(a: Algorithm) -> Family {
    use Algorithm::*;
    match a {
        HS256 | HS384 | HS512 => Family::Hmac,
        RS256 | RS384 | RS512 | PS256 | PS384 | PS512 => Family::Rsa,
        ES256 | ES384 => Family::Ec,
        EdDSA => Family::Ed,
    }
}

/// The token from where the provider says it is (also the oauth2 provider's access tokens).
pub(crate) fn token<'a>(
    from: &TokenFrom,
    head: &RequestHead<'a>,
) -> Result<Cow<'a, str>, Refusal> {
    match from {
        TokenFrom::Header { name, bearer } => {
            let Some(value) = head.header(name) else {
                return Err(refuse(
                    AuthFailure::TokenHeaderMissing,
                    format!("no {name} header"),
                ));
            };
            let value = value.trim();
            let token = if *bearer {
                match value.split_once(' ') {
                    Some((scheme, t)) if scheme.eq_ignore_ascii_case("bearer") => t.trim(),
                    _ => {
                        return Err(refuse(
                            AuthFailure::TokenFormat,
                            format!("{name} is not `Bearer <token>`"),
                        ))
                    }
                }
            } else {
                value
            };
            if token.is_empty() {
                return Err(refuse(
                    AuthFailure::TokenMissing,
                    format!("{name} carries no token"),
                ));
            }
            Ok(Cow::Borrowed(token))
        }
        // decoded like every query parameter the pipeline reads
        TokenFrom::Query(name) => head
            .query()
            .and_then(|q| crate::request::head::form_value(q, name).flatten())
            .filter(|t| !t.is_empty())
            .map(Cow::Owned)
            .ok_or_else(|| {
                refuse(
                    AuthFailure::TokenMissing,
                    format!("no {name} query parameter"),
                )
            }),
        TokenFrom::Cookie(name) => head
            .headers
            .get_all(http::header::COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(';'))
            .find_map(|c| c.trim().strip_prefix(name.as_str())?.strip_prefix('='))
            .filter(|t| !t.is_empty())
            .map(Cow::Borrowed)
            .ok_or_else(|| refuse(AuthFailure::TokenMissing, format!("no {name} cookie"))),
    }
}

pub fn verify(
    provider: &Provider,
    c: &Config,
    head: &RequestHead<'_>,
    now_ms: i64,
) -> Result<Principal, Refusal> {
    let token = token(&c.token_from, head)?;
    let token = token.as_ref();
    let Ok(header) = jsonwebtoken::decode_header(token) else {
        return Err(invalid("the token is not a JWT"));
    };
    let candidates: Vec<&JwtKey> = c
        .keys
        .iter()
        .filter(|k| k.algorithms.contains(&header.alg))
        .filter(|k| header.kid.is_none() || k.kid.is_none() || k.kid == header.kid)
        .collect();
    if candidates.is_empty() {
        return Err(invalid(&format!(
            "no key of this provider verifies {:?} tokens",
            header.alg
        )));
    }
    let mut validation = Validation::new(header.alg);
    validation.algorithms = vec![header.alg];
    validation.validate_exp = false;
    validation.validate_nbf = false;
    validation.required_spec_claims.clear();
    if let Some(iss) = &c.issuer {
        validation.set_issuer(&[iss]);
        validation.required_spec_claims.insert("iss".into());
    }
    if c.audience.is_empty() {
        validation.validate_aud = false;
    } else {
        validation.set_audience(&c.audience);
        validation.required_spec_claims.insert("aud".into());
    }
    let mut last = invalid("signature verification failed");
    for key in candidates {
        match jsonwebtoken::decode::<serde_json::Value>(token, &key.key, &validation) {
            Ok(data) => return check_times(provider, c, data.claims, now_ms),
            Err(e) => {
                use jsonwebtoken::errors::ErrorKind as E;
                last = match e.kind() {
                    E::InvalidIssuer => invalid("issuer not accepted"),
                    E::InvalidAudience => invalid("audience not accepted"),
                    E::MissingRequiredClaim(c) => invalid(&format!("claim {c} missing")),
                    E::InvalidSignature => invalid("signature verification failed"),
                    _ => invalid("the token does not decode"),
                };
                if !matches!(e.kind(), E::InvalidSignature) {
                    return Err(last);
                }
            }
        }
    }
    Err(last)
}

fn check_times(
    provider: &Provider,
    c: &Config,
    claims: serde_json::Value,
    now_ms: i64,
) -> Result<Principal, Refusal> {
    let now = now_ms / 1000;
    let leeway = (c.leeway_ms / 1000) as i64;
    let number = |name: &str| claims.get(name).and_then(serde_json::Value::as_i64);
    if let Some(exp) = number("exp") {
        if now > exp + leeway {
            return Err(refuse(
                AuthFailure::TokenExpired,
                format!("expired {} s ago", now - exp),
            ));
        }
    }
    if let Some(nbf) = number("nbf") {
        if now + leeway < nbf {
            return Err(invalid("the token is not valid yet"));
        }
    }
    let subject = claims
        .get("sub")
        .and_then(|s| s.as_str())
        .unwrap_or("-")
        .to_string();
    Ok(Principal {
        app: None,
        describe: format!("token of {subject} verified by {}", provider.name),
        claims: Some(claims),
        nonce: None,
    })
}

/// Whether a claim holds one of the allowed values: a string (space-separated, as OAuth
/// scopes are), an array of strings, or a number or boolean compared as text.
pub fn claim_allows(claims: &serde_json::Value, name: &str, allowed: &[String]) -> bool {
    let has = |v: &str| allowed.iter().any(|a| a == v);
    match claims.get(name) {
        Some(serde_json::Value::String(s)) => s.split_whitespace().any(has),
        Some(serde_json::Value::Array(items)) => items.iter().any(|i| match i {
            serde_json::Value::String(s) => has(s),
            other => has(&other.to_string()),
        }),
        Some(serde_json::Value::Number(n)) => has(&n.to_string()),
        Some(serde_json::Value::Bool(b)) => has(&b.to_string()),
        _ => false,
    }
}
