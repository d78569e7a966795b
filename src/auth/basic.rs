//! HTTP Basic credentials (RFC 7617; Kong's basic-auth): `Authorization: Basic
//! base64(KEY:PASSWORD)`, where KEY is an app's `key` and PASSWORD is checked against the app's
//! `password argon2 "$argon2id$…"`.
//!
//! The policy never holds a password, only its argon2 PHC string (the salt and cost inside).
//! argon2 is slow by design, which a gateway cannot pay on every request, and an attacker could
//! make it pay: so a password that verified is remembered, as the SHA-256 of the whole
//! credential, for [`REMEMBER_MS`], in a bounded cache per provider ([`MAX_REMEMBERED`]
//! entries, cleared when full). A wrong password is never remembered and always costs one
//! argon2 verification; an unknown key costs none. A policy reload (a changed hash) starts a
//! new cache. `hide credentials` keeps the `Authorization` header from the backend.

use super::{Compiler, Principal, Refusal, Scheme, Verified};
use crate::auth::{Provider, ServiceView};
use crate::dialect::{AuthFailure, Reason};
use crate::policy::ast::{AuthItem, Spanned};
use crate::request::RequestHead;
use base64::Engine as _;
use std::collections::HashMap;
use std::sync::Mutex;

/// How long a verified credential is remembered.
pub const REMEMBER_MS: i64 = 300_000;
/// At most this many credentials are remembered per provider.
pub const MAX_REMEMBERED: usize = 10_000;

/// A Basic provider's settings, and what it remembers.
#[derive(Debug)]
pub struct Config {
    pub hide: bool,
    /// SHA-256 of `key:password` → (app, remembered until).
    remembered: Mutex<HashMap<[u8; 32], (usize, i64)>>,
}

impl Scheme for Config {
    const YIELDS_APP: bool = true;
    const CARRIES_CLAIMS: bool = false;

    fn accepts(item: &AuthItem) -> bool {
        matches!(item, AuthItem::HideCredentials)
    }

    fn compile(items: &[&Spanned<AuthItem>], _: &mut dyn Compiler) -> Config {
        Config {
            hide: items
                .iter()
                .any(|i| matches!(i.value, AuthItem::HideCredentials)),
            remembered: Mutex::default(),
        }
    }

    fn failures(&self) -> Vec<Reason> {
        [AuthFailure::BasicMissing, AuthFailure::CredentialsInvalid]
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
        self.check(service, head, now_ms).into()
    }
}

fn refuse(failure: AuthFailure, detail: &str) -> Refusal {
    Refusal {
        reason: Reason::Auth(failure),
        detail: detail.to_string(),
    }
}

/// `(user, password)` of an `Authorization: Basic …` header.
pub fn credentials(authorization: &str) -> Option<(String, String)> {
    let (scheme, encoded) = authorization.trim().split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .ok()?;
    let text = String::from_utf8(decoded).ok()?;
    let (user, password) = text.split_once(':')?;
    Some((user.to_string(), password.to_string()))
}

impl Config {
    fn check(
        &self,
        service: ServiceView<'_>,
        head: &RequestHead<'_>,
        now_ms: i64,
    ) -> Result<Principal, Refusal> {
        let Some(authorization) = head.header(http::header::AUTHORIZATION) else {
            return Err(refuse(AuthFailure::BasicMissing, "no Authorization header"));
        };
        let Some((user, password)) = credentials(authorization) else {
            return Err(refuse(
                AuthFailure::BasicMissing,
                "the Authorization header is not `Basic base64(user:password)`",
            ));
        };
        let invalid = || refuse(AuthFailure::CredentialsInvalid, "wrong user or password");
        let &index = service.app_by_key.get(&user).ok_or_else(invalid)?;
        let app = &service.apps[index];
        let fingerprint: [u8; 32] = {
            use sha2::Digest;
            sha2::Sha256::digest(format!("{user}:{password}").as_bytes()).into()
        };
        let mut remembered = self.remembered.lock().unwrap_or_else(|e| e.into_inner());
        let known = remembered
            .get(&fingerprint)
            .is_some_and(|&(i, until)| i == index && now_ms < until);
        if !known {
            drop(remembered);
            let hash = app.password.as_ref().ok_or_else(invalid)?;
            if !verify_password(hash, &password) {
                return Err(invalid());
            }
            remembered = self.remembered.lock().unwrap_or_else(|e| e.into_inner());
            if remembered.len() >= MAX_REMEMBERED {
                remembered.clear();
            }
            remembered.insert(fingerprint, (index, now_ms + REMEMBER_MS));
        }
        Ok(Principal {
            app: Some(index),
            describe: format!("app {} (Basic)", app.name),
            claims: None,
            nonce: None,
        })
    }
}

/// Whether `password` matches the argon2 PHC string `hash`.
pub fn verify_password(hash: &str, password: &str) -> bool {
    use argon2::password_hash::{PasswordHash, PasswordVerifier};
    PasswordHash::new(hash).is_ok_and(|h| {
        argon2::Argon2::default()
            .verify_password(password.as_bytes(), &h)
            .is_ok()
    })
}

/// Whether `hash` is an argon2 PHC string rulegate can verify with (for `check`).
pub fn is_argon2(hash: &str) -> bool {
    argon2::password_hash::PasswordHash::new(hash)
        .is_ok_and(|h| h.algorithm.as_str().starts_with("argon2"))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `argon2id` of "s3cret" (m=19456, t=2, p=1, the crate's defaults), made once with the
    /// `argon2` crate's hasher.
    const HASH: &str = "$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHRzYWx0$0000";

    #[test]
    fn basic_credentials_parse_as_rfc_7617_writes_them() {
        let header = format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode("ak-partner:pa:ss")
        );
        assert_eq!(
            credentials(&header),
            Some(("ak-partner".into(), "pa:ss".into()))
        );
        assert_eq!(credentials("Bearer abc"), None);
        assert_eq!(credentials("Basic !!!"), None);
    }

    #[test]
    fn a_password_verifies_against_its_argon2_hash_and_no_other() {
        use argon2::password_hash::{PasswordHasher, SaltString};
        let salt = SaltString::encode_b64(b"0123456789abcdef").unwrap();
        let hash = argon2::Argon2::default()
            .hash_password(b"s3cret", &salt)
            .unwrap()
            .to_string();
        assert!(is_argon2(&hash));
        assert!(verify_password(&hash, "s3cret"));
        assert!(!verify_password(&hash, "s3cret "));
        assert!(!verify_password(HASH, "s3cret"));
        assert!(!is_argon2("$2b$12$abcdefghijklmnopqrstuu"));
    }
}
