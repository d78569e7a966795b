//! API keys (Kong's key-auth, APISIX's key-auth): the caller sends one of its app's keys in a
//! header (default `apikey`) or a query parameter; the gateway finds the app by the key's
//! SHA-256.
//!
//! The policy never holds a key, only `apikey sha256 "HEX"` per app. SHA-256 and not a slow
//! password hash, on purpose: an API key is random (a slow hash protects guessable secrets,
//! not 128-bit random ones), and the key must find its app in one map lookup — a slow hash
//! would cost every request, and with salts could not be looked up at all. Keys rotate by
//! listing the new hash beside the old one. `hide credentials` keeps the key from the backend.

use super::{Compiler, Principal, Refusal, Scheme, Verified};
use crate::auth::{Provider, ServiceView, TokenFrom};
use crate::dialect::{AuthFailure, Reason};
use crate::policy::ast::{AuthItem, Spanned, TokenSource};
use crate::request::RequestHead;

/// An API-key provider's settings.
#[derive(Debug)]
pub struct Config {
    /// Where the key is read; the default is the `apikey` header.
    pub from: TokenFrom,
    pub hide: bool,
}

impl Scheme for Config {
    const YIELDS_APP: bool = true;
    const CARRIES_CLAIMS: bool = false;

    fn accepts(item: &AuthItem) -> bool {
        matches!(item, AuthItem::TokenFrom(_) | AuthItem::HideCredentials)
    }

    fn compile(items: &[&Spanned<AuthItem>], _: &mut dyn Compiler) -> Config {
        let mut out = Config {
            from: TokenFrom::Header {
                name: "apikey".into(),
                bearer: false,
            },
            hide: false,
        };
        for item in items {
            match &item.value {
                AuthItem::TokenFrom(t) => out.from = token_from(t),
                AuthItem::HideCredentials => out.hide = true,
                _ => {}
            }
        }
        out
    }

    fn failures(&self) -> Vec<Reason> {
        [AuthFailure::ApiKeyMissing, AuthFailure::CredentialsInvalid]
            .into_iter()
            .map(Reason::Auth)
            .collect()
    }

    fn verify<'p>(
        &'p self,
        service: ServiceView<'_>,
        _: &Provider,
        head: &RequestHead<'_>,
        _: i64,
    ) -> Verified<'p> {
        verify(service, self, head).into()
    }
}

fn token_from(t: &TokenSource) -> TokenFrom {
    super::token_from(t)
}

/// The key as the request carries it, if it does.
pub fn presented<'h>(from: &TokenFrom, head: &RequestHead<'h>) -> Option<String> {
    match from {
        TokenFrom::Header { name, .. } => head.header(name.as_str()).map(str::to_string),
        TokenFrom::Query(name) => crate::request::head::form_value(head.query()?, name)?,
        TokenFrom::Cookie(name) => head
            .header(http::header::COOKIE)?
            .split(';')
            .filter_map(|c| c.trim().split_once('='))
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.to_string()),
    }
}

fn verify(service: ServiceView<'_>, c: &Config, head: &RequestHead<'_>) -> Result<Principal, Refusal> {
    let Some(key) = presented(&c.from, head).filter(|k| !k.is_empty()) else {
        return Err(Refusal {
            reason: Reason::Auth(AuthFailure::ApiKeyMissing),
            detail: format!("no API key in {}", describe(&c.from)),
        });
    };
    let hash: [u8; 32] = {
        use sha2::Digest;
        sha2::Sha256::digest(key.as_bytes()).into()
    };
    let Some(&index) = service.app_by_api_key.get(&hash) else {
        return Err(Refusal {
            reason: Reason::Auth(AuthFailure::CredentialsInvalid),
            detail: "the API key is no app's".into(),
        });
    };
    Ok(Principal {
        app: Some(index),
        describe: format!("app {} (API key)", service.apps[index].name),
        claims: None,
        nonce: None,
    })
}

fn describe(from: &TokenFrom) -> String {
    match from {
        TokenFrom::Header { name, .. } => format!("header {name:?}"),
        TokenFrom::Query(name) => format!("query parameter {name:?}"),
        TokenFrom::Cookie(name) => format!("cookie {name:?}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn head<'a>(target: &'a str, headers: &'a http::HeaderMap) -> RequestHead<'a> {
        RequestHead {
            version: http::Version::HTTP_11,
            method: "GET",
            target,
            host: None,
            host_from: Default::default(),
            headers,
            peer: std::net::IpAddr::from([127, 0, 0, 1]),
            tls: false,
            client_cert: false,
            body: None,
        }
    }

    #[test]
    fn a_key_is_read_from_its_header_query_parameter_or_cookie() {
        let mut h = http::HeaderMap::new();
        h.insert("apikey", "k1".parse().unwrap());
        h.insert("cookie", "a=1; key=k3".parse().unwrap());
        let header = TokenFrom::Header {
            name: "apikey".into(),
            bearer: false,
        };
        assert_eq!(presented(&header, &head("/x", &h)).as_deref(), Some("k1"));
        let query = TokenFrom::Query("key".into());
        assert_eq!(
            presented(&query, &head("/x?a=b&key=k%202", &h)).as_deref(),
            Some("k 2")
        );
        let cookie = TokenFrom::Cookie("key".into());
        assert_eq!(presented(&cookie, &head("/x", &h)).as_deref(), Some("k3"));
        assert_eq!(presented(&query, &head("/x", &h)), None);
    }
}
