//! Signing a test's request as one of the policy's apps would, with the app's key and secret
//! from the compiled policy, so a test never holds a secret and a signed route can be tested up
//! to its action. The signatures are built from the verifiers' own canonical forms
//! (`auth::app_signature::canonical_request`), at the test's virtual time.

use super::format::{Exchange, Sign, SignScheme};
use crate::auth::sig::{format_sdk_date, hex, hmac_sha256};
use crate::auth::{app_signature, jd_signature, oauth2};
use crate::compile::{App, Service, Snapshot, TokenFrom};
use crate::decide::RequestHead;
use base64::Engine as _;
use http::{HeaderMap, HeaderValue};
use sha2::{Digest, Sha256};

/// Add the signing headers to `headers`.
pub fn sign(
    snap: &Snapshot,
    s: &Sign,
    e: &Exchange,
    host: Option<&str>,
    headers: &mut HeaderMap,
    now_ms: i64,
) -> Result<(), String> {
    let (service, app) = find_app(snap, host, &s.app)?;
    match s.scheme {
        SignScheme::AppSignature => {
            let date = format_sdk_date(now_ms);
            headers.insert("x-sdk-date", value(&date)?);
            let signed: Vec<String> = ["host", "x-sdk-date"]
                .iter()
                .filter(|n| headers.contains_key(**n))
                .map(|n| n.to_string())
                .collect();
            let head = head_of(e, host, headers);
            let payload = hex(&Sha256::digest(&e.body));
            let canonical = app_signature::canonical_request(&head, &signed, &payload);
            let to_sign = format!(
                "{}\n{date}\n{}",
                app_signature::SCHEME,
                hex(&Sha256::digest(canonical.as_bytes()))
            );
            let signature = hex(&hmac_sha256(&app.secret.0, to_sign.as_bytes()));
            let authorization = format!(
                "{} Access={}, SignedHeaders={}, Signature={signature}",
                app_signature::SCHEME,
                app.key,
                signed.join(";")
            );
            headers.insert(http::header::AUTHORIZATION, value(&authorization)?);
        }
        SignScheme::Keypair => {
            let when = std::time::UNIX_EPOCH + std::time::Duration::from_millis(now_ms as u64);
            let date = httpdate::fmt_http_date(when);
            headers.insert("x-date", value(&date)?);
            let signature = base64::engine::general_purpose::STANDARD.encode(hmac_sha256(
                &app.secret.0,
                format!("x-date: {date}").as_bytes(),
            ));
            let authorization = format!(
                "hmac id=\"{}\", algorithm=\"hmac-sha256\", headers=\"x-date\", signature=\"{signature}\"",
                app.key
            );
            headers.insert(http::header::AUTHORIZATION, value(&authorization)?);
        }
        SignScheme::JdSignature => {
            let provider = service
                .providers
                .iter()
                .find(|p| p.kind == crate::policy::ast::AuthKind::JdSignature)
                .ok_or_else(|| {
                    format!(
                        "cannot sign: service {} has no jd-signature provider",
                        service.name
                    )
                })?;
            let date = format_sdk_date(now_ms);
            // Unique within a run, so `times N` is N requests, not one and its replays.
            static NONCES: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
            let nonce = format!(
                "rulegate-test-{}",
                NONCES.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
            );
            headers.insert("x-jdcloud-date", value(&date)?);
            headers.insert("x-jdcloud-nonce", value(&nonce)?);
            let mut signed: Vec<String> =
                ["content-type", "host", "x-jdcloud-date", "x-jdcloud-nonce"]
                    .iter()
                    .filter(|n| **n == "host" || headers.contains_key(**n))
                    .map(|n| n.to_string())
                    .collect();
            signed.sort();
            let host_value = host.unwrap_or("").trim();
            let head = head_of(e, host, headers);
            // a provider pinned to a region and group is signed for them; otherwise any do
            let region = provider.jd_region.as_deref().unwrap_or("cn-north-1");
            let group = provider.jd_group.as_deref().unwrap_or("rulegate-test");
            let day = &date[..8.min(date.len())];
            let scope = format!("{day}/{region}/{group}/jdcloud2_request");
            let canonical = jd_signature::canonical_request(
                &head,
                &signed,
                host_value,
                head.path(),
                &jd_signature::encoded_query(head.query().unwrap_or("")),
                &hex(&Sha256::digest(&e.body)),
            );
            let to_sign = format!(
                "{}\n{date}\n{scope}\n{}",
                jd_signature::SCHEME,
                hex(&Sha256::digest(canonical.as_bytes()))
            );
            let key = jd_signature::signing_key(&app.secret.0, day, region, group);
            let signature = hex(&hmac_sha256(&key, to_sign.as_bytes()));
            let authorization = format!(
                "{} Credential={}/{scope}, SignedHeaders={}, Signature={signature}",
                jd_signature::SCHEME,
                app.key,
                signed.join(";")
            );
            headers.insert(http::header::AUTHORIZATION, value(&authorization)?);
        }
        SignScheme::OAuth2 => {
            let provider = service
                .providers
                .iter()
                .find(|p| p.kind == crate::policy::ast::AuthKind::Oauth2)
                .ok_or_else(|| {
                    format!(
                        "cannot sign: service {} has no oauth2 provider",
                        service.name
                    )
                })?;
            let (Some(key), TokenFrom::Header { name, bearer }) =
                (&provider.signing_key, &provider.token_from)
            else {
                return Err(format!(
                    "cannot sign: provider {} takes its token from a query parameter or cookie; put one there",
                    provider.name
                ));
            };
            let now = now_ms.div_euclid(1000);
            let claims = oauth2::Claims {
                iss: oauth2::issuer(service, provider),
                sub: app.key.clone(),
                iat: now,
                exp: now + (provider.access_ttl_ms / 1000) as i64,
                jti: "rulegate-test".to_string(),
                token_use: "access".to_string(),
            };
            let token = oauth2::sign_token(&key.0, &claims).map_err(|r| r.detail)?;
            let token = if *bearer {
                format!("Bearer {token}")
            } else {
                token
            };
            let name = http::HeaderName::from_bytes(name.as_bytes())
                .map_err(|_| format!("cannot sign: {name:?} is not a header name"))?;
            headers.insert(name, value(&token)?);
        }
    }
    Ok(())
}

/// The app of the service the request's host selects.
fn find_app<'s>(
    snap: &'s Snapshot,
    host: Option<&str>,
    name: &str,
) -> Result<(&'s Service, &'s App), String> {
    let host = host.unwrap_or_default();
    let bare = host
        .rsplit_once(':')
        .filter(|(_, port)| port.bytes().all(|b| b.is_ascii_digit()))
        .map_or(host, |(h, _)| h)
        .to_ascii_lowercase();
    let Some(service) = snap.hosts.find(&bare).map(|i| &snap.services[i]) else {
        return Err(format!("cannot sign: no service serves host {host:?}"));
    };
    let app = service
        .apps
        .iter()
        .find(|a| a.name == name)
        .ok_or_else(|| {
            let names: Vec<&str> = service.apps.iter().map(|a| a.name.as_str()).collect();
            format!(
                "cannot sign: service {} has no app {name:?} (its apps: {})",
                service.name,
                if names.is_empty() {
                    "none".to_string()
                } else {
                    names.join(", ")
                }
            )
        })?;
    Ok((service, app))
}

fn value(s: &str) -> Result<HeaderValue, String> {
    HeaderValue::from_str(s).map_err(|_| format!("cannot sign: {s:?} is not a header value"))
}

/// The request as the verifiers see it, for building the signature they check.
fn head_of<'a>(e: &'a Exchange, host: Option<&'a str>, headers: &'a HeaderMap) -> RequestHead<'a> {
    RequestHead {
        method: &e.method,
        target: &e.target,
        host,
        host_from: Default::default(),
        headers,
        peer: e.client_ip,
        tls: e.tls,
        client_cert: e.client_cert,
        body: Some(&e.body),
    }
}
