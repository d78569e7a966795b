//! Huawei's OAuth2 token endpoint (`issue tokens P`) and the access tokens it issues (`auth P`
//! with an oauth2 provider).
//!
//! Apps are the OAuth2 clients: client_id is the app's key, client_secret its secret. The
//! endpoint follows RFC 6749 where Huawei is silent (§4.4 client_credentials, §6 refresh_token,
//! §2.3.1 credentials in the body or HTTP Basic, §5.1 the JSON answer with `Cache-Control:
//! no-store`) and answers every failure with Huawei's APIG.22xx / APIG.10xx row.
//!
//! Tokens are HS256 JWTs signed with the provider's signing key (`jsonwebtoken`, as the jwt
//! provider uses), so the gateway keeps no token store and any gateway holding the key verifies
//! them. Claims: `iss` names the service and provider (a token of one provider never passes
//! another, even one sharing the key), `sub` is the app key, `iat`/`exp` in seconds on the
//! pipeline's clock, `jti` the issuing request's id (to find it in the access log), and
//! `token_use` `access` or `refresh` (a refresh token is never an access token, nor the
//! reverse). Nothing here puts a secret or a token's signature into a trace detail.

use super::signing::Signing;
use super::{Compiler, Principal, Refusal, Scheme, Settings, Verified};
use crate::auth::{App, Provider, Secret, ServiceView, TokenFrom};
use crate::request::Client;
use crate::policy::ast::{AuthItem, Spanned};
use crate::request::{head::form_value, RequestHead};
use crate::dialect::{OAuth2Failure as F, Reason};
use base64::Engine as _;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};

pub const CLIENT_CREDENTIALS: &str = "client_credentials";
pub const REFRESH_TOKEN: &str = "refresh_token";
/// Huawei documents the limit in APIG.2208's solution: "The maximum length of through_data is
/// 300."
pub const THROUGH_DATA_MAX: usize = 300;
const FORM: &str = "application/x-www-form-urlencoded";

/// What the tokens say. `token_use` keeps the two kinds apart.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Claims {
    pub iss: String,
    pub sub: String,
    pub iat: i64,
    pub exp: i64,
    pub jti: String,
    pub token_use: String,
}

/// A successful token request: the app it was for, the JSON body, and a trace line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Issued {
    pub app: usize,
    pub body: bytes::Bytes,
    pub describe: String,
}

/// An oauth2 provider's settings.
#[derive(Debug)]
pub struct Config {
    /// Where a route's requests carry the access token.
    pub token_from: TokenFrom,
    pub access_ttl_ms: u64,
    pub refresh_ttl_ms: u64,
    /// `None` only in a policy that did not compile (the secret did not load).
    pub signing_key: Option<Secret>,
}

impl Scheme for Config {
    const YIELDS_APP: bool = true;
    const CARRIES_CLAIMS: bool = true;
    const SIGN: Option<super::Signer<Self>> = Some(sign);

    fn accepts(item: &AuthItem) -> bool {
        matches!(
            item,
            AuthItem::TokenFrom(_)
                | AuthItem::AccessTtl(_)
                | AuthItem::RefreshTtl(_)
                | AuthItem::SigningKey(_)
        )
    }

    fn compile(items: &[&Spanned<AuthItem>], cx: &mut dyn Compiler) -> Config {
        let mut out = Config {
            token_from: TokenFrom::default(),
            access_ttl_ms: 3_600_000,
            refresh_ttl_ms: 7 * 86_400_000,
            signing_key: None,
        };
        let mut has_key = false;
        for item in items {
            match &item.value {
                AuthItem::TokenFrom(t) => out.token_from = super::token_from(t),
                AuthItem::AccessTtl(d) => out.access_ttl_ms = d.value.millis,
                AuthItem::RefreshTtl(d) => out.refresh_ttl_ms = d.value.millis,
                AuthItem::SigningKey(k) => {
                    has_key = true;
                    out.signing_key = cx.secret(k, true);
                }
                _ => {}
            }
        }
        if !has_key {
            let name = cx.name().to_string();
            cx.missing(
                format!("oauth2 provider `{name}` has no `signing key`"),
                "add `signing key env \"VAR\"` or `signing key file \"PATH\"`",
            );
        }
        out
    }

    /// A route's access token: missing or malformed, invalid, expired, of no app.
    fn failures(&self) -> Vec<Reason> {
        [
            F::AuthParameterInvalid,
            F::AccessTokenInvalid,
            F::AccessTokenExpired,
            F::AppUnknown,
        ]
        .into_iter()
        .map(Reason::OAuth2)
        .collect()
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

/// `rulegate test`'s signer: an access token of the service's oauth2 provider, as `issue
/// tokens` issues it, where the provider reads it.
fn sign(provider: Option<(&Provider, &Config)>, s: &mut Signing<'_>) -> Result<(), String> {
    let Some((provider, c)) = provider else {
        return Err(format!(
            "cannot sign: service {} has no oauth2 provider",
            s.service.name
        ));
    };
    let (Some(key), TokenFrom::Header { name, bearer }) = (&c.signing_key, &c.token_from) else {
        return Err(format!(
            "cannot sign: provider {} takes its token from a query parameter or cookie; put one there",
            provider.name
        ));
    };
    let now = s.now_ms.div_euclid(1000);
    let claims = Claims {
        iss: issuer(s.service, provider),
        sub: s.app.key.clone(),
        iat: now,
        exp: now + (c.access_ttl_ms / 1000) as i64,
        jti: "rulegate-test".to_string(),
        token_use: "access".to_string(),
    };
    let token = sign_token(&key.0, &claims).map_err(|r| r.detail)?;
    let token = if *bearer {
        format!("Bearer {token}")
    } else {
        token
    };
    s.insert(name, &token)
}

/// An oauth2 provider's settings and signing key; `None` for a provider of another scheme
/// (the compiler lets only oauth2 providers issue tokens) or without a key.
fn signing(provider: &Provider) -> Option<(&Config, &Secret)> {
    let Settings::Oauth2(c) = &provider.settings else {
        return None;
    };
    Some((c, c.signing_key.as_ref()?))
}

/// Every refusal the token endpoint (`issue tokens`) can give: the route's error contract.
pub fn token_endpoint_failures() -> Vec<Reason> {
    let route_only = [F::AccessTokenInvalid, F::AccessTokenExpired];
    let failures = F::ALL.into_iter().filter(|f| !route_only.contains(f));
    let mut out: Vec<Reason> = failures.map(Reason::OAuth2).collect();
    out.extend([Reason::AppFrozen, Reason::AppIpUntrusted, Reason::Internal]);
    out
}

fn refuse(failure: F, detail: impl Into<String>) -> Refusal {
    Refusal {
        reason: Reason::OAuth2(failure),
        detail: detail.into(),
    }
}

/// The issuer claim of the provider's tokens.
pub fn issuer(service: ServiceView<'_>, provider: &Provider) -> String {
    format!("rulegate/{}/{}", service.name, provider.name)
}

/// What can be judged before the body is read: the method (APIG.2206) and the content type
/// (APIG.2204). A request refused here is never read.
pub fn check_head(head: &RequestHead<'_>) -> Result<(), Refusal> {
    if head.method != "POST" {
        return Err(refuse(
            F::MethodInvalid,
            format!("the token endpoint takes POST, not {}", head.method),
        ));
    }
    let content_type = head.header(http::header::CONTENT_TYPE).unwrap_or("");
    let media = content_type.split(';').next().unwrap_or("").trim();
    if !media.eq_ignore_ascii_case(FORM) {
        return Err(refuse(
            F::ContentTypeInvalid,
            format!("Content-Type {content_type:?} is not {FORM}"),
        ));
    }
    Ok(())
}

/// The token request's parameters, each present at most once (RFC 6749 §3.2).
struct Form<'b> {
    body: &'b str,
}

impl Form<'_> {
    /// A parameter's value; an empty value counts as absent (RFC 6749 §3.2). A repeated or
    /// undecodable parameter is APIG.2205.
    fn get(&self, name: &str) -> Result<Option<String>, Refusal> {
        let count = self
            .body
            .split('&')
            .filter(|pair| {
                let key = pair.split_once('=').map_or(*pair, |(k, _)| k);
                crate::request::head::decode_component(key).as_deref() == Some(name)
            })
            .count();
        if count > 1 {
            return Err(refuse(
                F::AuthParameterInvalid,
                format!("parameter {name} is repeated"),
            ));
        }
        match form_value(self.body, name) {
            None => Ok(None),
            Some(None) => Err(refuse(
                F::AuthParameterInvalid,
                format!("parameter {name} is not valid percent-encoded UTF-8"),
            )),
            Some(Some(v)) if v.is_empty() => Ok(None),
            Some(Some(v)) => Ok(Some(v)),
        }
    }
}

/// Client credentials from `Authorization: Basic` (RFC 6749 §2.3.1: each part
/// form-urlencoded, then base64). `None` when the request has no Basic credentials.
fn basic_credentials(head: &RequestHead<'_>) -> Result<Option<(String, String)>, Refusal> {
    let Some(value) = head.header(http::header::AUTHORIZATION) else {
        return Ok(None);
    };
    let Some((scheme, encoded)) = value.trim().split_once(' ') else {
        return Ok(None);
    };
    if !scheme.eq_ignore_ascii_case("basic") {
        return Ok(None);
    }
    let malformed = || refuse(F::AuthParameterInvalid, "malformed Basic credentials");
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .map_err(|_| malformed())?;
    let text = String::from_utf8(decoded).map_err(|_| malformed())?;
    let (id, secret) = text.split_once(':').ok_or_else(malformed)?;
    let id = crate::request::head::decode_component(id).ok_or_else(malformed)?;
    let secret = crate::request::head::decode_component(secret).ok_or_else(malformed)?;
    Ok(Some((id, secret)))
}

/// Whether `presented` is the app's secret, compared in constant time.
fn same_secret(app: &App, presented: &str) -> bool {
    app.secret
        .as_ref()
        .is_some_and(|s| super::sig::same_secret(&s.0, presented.as_bytes()))
}

/// Answer a token request whose head passed [`check_head`] and whose body has been read.
pub fn issue(
    service: ServiceView<'_>,
    provider: &Provider,
    head: &RequestHead<'_>,
    client_ip: Client,
    now_ms: i64,
    request_id: &str,
) -> Result<Issued, Refusal> {
    let Some((c, key)) = signing(provider) else {
        return Err(Refusal {
            reason: Reason::Internal,
            detail: format!("provider {} has no signing key", provider.name),
        });
    };
    let body = std::str::from_utf8(head.body.unwrap_or_default())
        .map_err(|_| refuse(F::AuthParameterInvalid, "the body is not UTF-8"))?;
    let form = Form { body };

    let grant = form
        .get("grant_type")?
        .ok_or_else(|| refuse(F::GrantTypeMissing, "no grant_type"))?;
    if grant != CLIENT_CREDENTIALS && grant != REFRESH_TOKEN {
        return Err(refuse(
            F::GrantTypeInvalid,
            format!("grant_type {grant:?} is neither {CLIENT_CREDENTIALS} nor {REFRESH_TOKEN}"),
        ));
    }

    let (body_id, body_secret) = (form.get("client_id")?, form.get("client_secret")?);
    let (client_id, client_secret) = match basic_credentials(head)? {
        // RFC 6749 §2.3: one authentication method per request. A client_id repeated in the
        // body is tolerated when it names the same client (some clients always send it).
        Some(_) if body_secret.is_some() => {
            return Err(refuse(
                F::AuthParameterInvalid,
                "client credentials both in the Authorization header and in the body",
            ))
        }
        Some((id, _)) if body_id.as_ref().is_some_and(|b| *b != id) => {
            return Err(refuse(
                F::AuthParameterInvalid,
                "client_id in the body differs from the Authorization header's",
            ))
        }
        Some((id, secret)) => (
            Some(id).filter(|s| !s.is_empty()),
            Some(secret).filter(|s| !s.is_empty()),
        ),
        None => (body_id, body_secret),
    };
    let client_id = client_id.ok_or_else(|| refuse(F::ClientIdMissing, "no client_id"))?;
    let client_secret =
        client_secret.ok_or_else(|| refuse(F::ClientSecretMissing, "no client_secret"))?;
    let presented_refresh = if grant == REFRESH_TOKEN {
        Some(
            form.get("refresh_token")?
                .ok_or_else(|| refuse(F::RefreshTokenMissing, "no refresh_token"))?,
        )
    } else {
        None
    };
    if let Some(data) = form.get("through_data")? {
        let n = data.chars().count();
        if n > THROUGH_DATA_MAX {
            return Err(refuse(
                F::ThroughDataTooLong,
                format!("through_data is {n} characters, at most {THROUGH_DATA_MAX}"),
            ));
        }
    }

    let Some(&app_index) = service.app_by_key.get(&client_id) else {
        return Err(refuse(
            F::AppUnknown,
            format!("no app of service {} has key {client_id:?}", service.name),
        ));
    };
    let app = &service.apps[app_index];
    if !same_secret(app, &client_secret) {
        return Err(refuse(
            F::ClientSecretInvalid,
            format!("client_secret is not app {}'s secret", app.name),
        ));
    }
    if app.frozen {
        return Err(Refusal {
            reason: Reason::AppFrozen,
            detail: format!("app {} is frozen", app.name),
        });
    }
    if !app.trusted_ips.is_empty() && !client_ip.in_any(&app.trusted_ips) {
        return Err(Refusal {
            reason: Reason::AppIpUntrusted,
            detail: format!(
                "{client_ip} is not among app {}'s trusted addresses",
                app.name
            ),
        });
    }

    let iss = issuer(service, provider);
    let now = now_ms.div_euclid(1000);
    // A refreshed grant keeps its refresh token's expiry: refreshing never extends how long
    // the app may go without presenting its secret.
    let refresh_exp = match presented_refresh {
        None => now + (c.refresh_ttl_ms / 1000) as i64,
        Some(token) => {
            let claims = decode(&key.0, &iss, &token, "refresh")
                .map_err(|why| refuse(F::RefreshTokenInvalid, format!("refresh token {why}")))?;
            if now >= claims.exp {
                return Err(refuse(
                    F::RefreshTokenExpired,
                    format!("refresh token expired {} s ago", now - claims.exp),
                ));
            }
            if claims.sub != app.key {
                return Err(refuse(
                    F::RefreshTokenAppMismatch,
                    format!("the refresh token was not issued to app {}", app.name),
                ));
            }
            claims.exp
        }
    };
    let access_ttl = (c.access_ttl_ms / 1000) as i64;
    let claims = |token_use: &str, exp: i64| Claims {
        iss: iss.clone(),
        sub: app.key.clone(),
        iat: now,
        exp,
        jti: request_id.to_string(),
        token_use: token_use.to_string(),
    };
    let access = sign_token(&key.0, &claims("access", now + access_ttl))?;
    let refresh = sign_token(&key.0, &claims("refresh", refresh_exp))?;
    let body = serde_json::json!({
        "access_token": access,
        "token_type": "Bearer",
        "expires_in": access_ttl,
        "refresh_token": refresh,
    });
    Ok(Issued {
        app: app_index,
        body: body.to_string().into(),
        describe: format!(
            "{grant} for app {}: access token for {access_ttl} s, refresh token for {} s",
            app.name,
            refresh_exp - now
        ),
    })
}

/// The headers of a token answer (RFC 6749 §5.1).
pub fn answer_headers() -> Vec<(String, String)> {
    [
        ("Content-Type", "application/json;charset=UTF-8"),
        ("Cache-Control", "no-store"),
        ("Pragma", "no-cache"),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect()
}

/// Sign claims with a provider's key (also how `rulegate test` signs as an app).
pub fn sign_token(key: &[u8], claims: &Claims) -> Result<String, Refusal> {
    jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        claims,
        &EncodingKey::from_secret(key),
    )
    .map_err(|e| Refusal {
        reason: Reason::Internal,
        detail: format!("signing a token failed: {e}"),
    })
}

/// Verify a token's signature, issuer and kind; expiry is the caller's, on its clock. The
/// error says why, without the token.
fn decode(key: &[u8], iss: &str, token: &str, token_use: &str) -> Result<Claims, &'static str> {
    let mut validation = Validation::new(Algorithm::HS256);
    validation.algorithms = vec![Algorithm::HS256];
    validation.validate_exp = false;
    validation.validate_aud = false;
    validation.required_spec_claims.clear();
    validation.set_issuer(&[iss]);
    let data = jsonwebtoken::decode::<Claims>(token, &DecodingKey::from_secret(key), &validation)
        .map_err(|e| {
        use jsonwebtoken::errors::ErrorKind as E;
        match e.kind() {
            E::InvalidSignature => "does not verify with this provider's key",
            E::InvalidIssuer => "was issued by another provider",
            E::InvalidAlgorithm => "is not an HS256 token",
            _ => "is not a token of this provider",
        }
    })?;
    if data.claims.token_use != token_use {
        return Err(if token_use == "access" {
            "is a refresh token, not an access token"
        } else {
            "is an access token, not a refresh token"
        });
    }
    Ok(data.claims)
}

/// Verify a route's `Authorization: Bearer <access token>` (or wherever the provider's `token
/// from` says) and identify its app.
pub fn verify(
    service: ServiceView<'_>,
    provider: &Provider,
    c: &Config,
    head: &RequestHead<'_>,
    now_ms: i64,
) -> Result<Principal, Refusal> {
    let token = super::jwt::token(&c.token_from, head)
        .map_err(|r| refuse(F::AuthParameterInvalid, r.detail))?;
    let Some(key) = &c.signing_key else {
        return Err(Refusal {
            reason: Reason::Internal,
            detail: format!("provider {} has no signing key", provider.name),
        });
    };
    let claims = decode(&key.0, &issuer(service, provider), &token, "access")
        .map_err(|why| refuse(F::AccessTokenInvalid, format!("access token {why}")))?;
    let now = now_ms.div_euclid(1000);
    if now >= claims.exp {
        return Err(refuse(
            F::AccessTokenExpired,
            format!("access token expired {} s ago", now - claims.exp),
        ));
    }
    let Some(&app) = service.app_by_key.get(&claims.sub) else {
        return Err(refuse(
            F::AppUnknown,
            format!("no app of service {} has the token's key", service.name),
        ));
    };
    Ok(Principal {
        app: Some(app),
        describe: format!(
            "access token of app {} verified by {}, {} s left",
            service.apps[app].name,
            provider.name,
            claims.exp - now
        ),
        claims: serde_json::to_value(&claims).ok(),
        nonce: None,
    })
}

/// A token answer's body for `explain` and snapshots: each token's signature masked with `*`
/// (same length, so Content-Length still matches), header and claims kept for review. Other
/// bodies are returned unchanged.
pub fn mask_signatures(body: &[u8]) -> bytes::Bytes {
    let Ok(mut json) = serde_json::from_slice::<serde_json::Value>(body) else {
        return bytes::Bytes::copy_from_slice(body);
    };
    for field in ["access_token", "refresh_token"] {
        if let Some(serde_json::Value::String(t)) = json.get_mut(field) {
            if let Some(dot) = t.rfind('.') {
                let masked = "*".repeat(t.len() - dot - 1);
                t.replace_range(dot + 1.., &masked);
            }
        }
    }
    json.to_string().into()
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &[u8] = b"unit-test-signing-key-0123456789";

    fn claims(token_use: &str, exp: i64) -> Claims {
        Claims {
            iss: "rulegate/shop/tokens".into(),
            sub: "ak-1".into(),
            iat: 100,
            exp,
            jti: "r1".into(),
            token_use: token_use.into(),
        }
    }

    #[test]
    fn a_token_decodes_with_its_key_issuer_and_kind_only() {
        let t = sign_token(KEY, &claims("access", 200)).unwrap();
        assert_eq!(
            decode(KEY, "rulegate/shop/tokens", &t, "access").unwrap(),
            claims("access", 200)
        );
        assert_eq!(
            decode(b"another-key", "rulegate/shop/tokens", &t, "access"),
            Err("does not verify with this provider's key")
        );
        assert_eq!(
            decode(KEY, "rulegate/shop/other", &t, "access"),
            Err("was issued by another provider")
        );
        assert_eq!(
            decode(KEY, "rulegate/shop/tokens", &t, "refresh"),
            Err("is an access token, not a refresh token")
        );
        let r = sign_token(KEY, &claims("refresh", 200)).unwrap();
        assert_eq!(
            decode(KEY, "rulegate/shop/tokens", &r, "access"),
            Err("is a refresh token, not an access token")
        );
        assert_eq!(
            decode(KEY, "rulegate/shop/tokens", "not.a.token", "access"),
            Err("is not a token of this provider")
        );
    }

    #[test]
    fn a_token_signed_with_another_algorithm_is_refused() {
        let t = jsonwebtoken::encode(
            &Header::new(Algorithm::HS512),
            &claims("access", 200),
            &EncodingKey::from_secret(KEY),
        )
        .unwrap();
        assert_eq!(
            decode(KEY, "rulegate/shop/tokens", &t, "access"),
            Err("is not an HS256 token")
        );
    }

    #[test]
    fn masking_keeps_length_header_and_claims() {
        let t = sign_token(KEY, &claims("access", 200)).unwrap();
        let body = serde_json::json!({"access_token": t, "token_type": "Bearer"}).to_string();
        let masked = mask_signatures(body.as_bytes());
        assert_eq!(masked.len(), body.len());
        let text = std::str::from_utf8(&masked).unwrap();
        let signature = t.rsplit('.').next().unwrap();
        assert!(!text.contains(signature));
        let (signed_part, _) = t.rsplit_once('.').unwrap();
        assert!(text.contains(&format!("{signed_part}.*******")));
        assert_eq!(&mask_signatures(b"not json")[..], b"not json");
    }

    #[test]
    fn secrets_compare_by_digest() {
        let app = App {
            name: "a".into(),
            key: "k".into(),
            secret: Some(crate::auth::Secret(b"s3cret".to_vec())),
            api_keys: Vec::new(),
            password: None,
            app_codes: Vec::new(),
            trusted_ips: Vec::new(),
            frozen: false,
            outside_plans: false,
            quota: None,
            rates: Vec::new(),
        };
        assert!(same_secret(&app, "s3cret"));
        assert!(!same_secret(&app, "s3cret "));
        assert!(!same_secret(&app, ""));
    }
}
