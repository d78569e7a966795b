//! Backend signing (issue 13, item 5; Huawei APIG's "signature key", bound to a backend here):
//! every request forwarded to a backend with `sign hmac|basic key "K" secret …` carries proof
//! that it came through the gateway.
//!
//! - **hmac**: Huawei's `SDK-HMAC-SHA256`, the scheme app authentication verifies
//!   ([`crate::auth::app_signature`], whose canonical request and `Authorization` builder this
//!   module calls, so what the gateway signs is what its verifier and Huawei's SDKs check).
//!   The gateway sets `X-Sdk-Date` and `Authorization: SDK-HMAC-SHA256 Access=K,
//!   SignedHeaders=…, Signature=…`; it signs `host`, `x-sdk-date` and every header its backend
//!   parameters set (so the backend can trust those values too), over the method, the path and
//!   query the backend receives and the SHA-256 of the body. A backend verifies with
//!   `apigateway-sdk-python`'s `Signer.Verify` over the signed headers, as Huawei's backend
//!   sample does. The client's `X-Sdk-Content-Sha256` is dropped: the gateway hashes the body
//!   itself, and a client's `UNSIGNED-PAYLOAD` must not make a backend skip the body.
//! - **basic**: `Authorization: Basic base64(K:secret)` (RFC 7617).
//!
//! Either way the client's own `Authorization` is replaced. What a signature covers is fixed
//! when the request is decided ([`Stamp`]: the time from the `Env` clock and the body's hash,
//! so `decide` reads the body first for an `hmac` backend); the headers are computed per target
//! ([`Signer::sign`]: the signature covers `Host`), by `serve` for each attempt and by
//! `explain` and `rulegate test` for the first target — one function for all three.

use crate::auth::app_signature;
use crate::auth::sig::format_sdk_date;
use crate::auth::Secret;
use crate::policy::ast::SigningKind;
use crate::request::RequestHead;
use crate::vocab::hex::hex;
use base64::Engine;
use http::{HeaderMap, HeaderName, HeaderValue};
use sha2::{Digest, Sha256};

/// A backend's signing key, as compiled (the secret read when the policy was).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Signer {
    pub kind: SigningKind,
    /// The key id (hmac) or user name (basic).
    pub key: String,
    pub secret: Secret,
}

/// What the decision fixes for a request's signature.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stamp {
    /// `X-Sdk-Date`, `yyyymmddThhmmssZ`.
    pub date: String,
    /// The hex SHA-256 of the body sent.
    pub payload_hash: String,
}

/// A signature that cannot be written into the request (a key that is not a header value):
/// the request is refused with `Reason::BackendSigningFailed`, never sent unsigned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unsignable(pub String);

const X_SDK_DATE: HeaderName = HeaderName::from_static("x-sdk-date");
const X_SDK_CONTENT_SHA256: HeaderName = HeaderName::from_static("x-sdk-content-sha256");

impl Signer {
    /// Whether the signature covers the body (so it must be read before the forward).
    pub fn needs_body(&self) -> bool {
        self.kind == SigningKind::Hmac
    }

    /// The time and body a request's signature covers (`basic` covers neither).
    pub fn stamp(&self, now_ms: i64, body: &[u8]) -> Stamp {
        Stamp {
            date: format_sdk_date(now_ms),
            payload_hash: match (self.needs_body(), body.is_empty()) {
                (false, _) => String::new(),
                (true, true) => app_signature::EMPTY_SHA256.to_string(),
                (true, false) => hex(&Sha256::digest(body)),
            },
        }
    }

    /// Sign the upstream request in place: `headers` are the ones it is sent with (`Host`
    /// included), `target` its path and query, `mapped` the names of the headers the backend
    /// parameters set.
    pub fn sign<'m>(
        &self,
        stamp: &Stamp,
        method: &str,
        target: &str,
        headers: &mut HeaderMap,
        mapped: impl Iterator<Item = &'m str>,
    ) -> Result<(), Unsignable> {
        let authorization = match self.kind {
            SigningKind::Basic => {
                let mut pair = self.key.as_bytes().to_vec();
                pair.push(b':');
                pair.extend_from_slice(&self.secret.0);
                let encoded = base64::engine::general_purpose::STANDARD.encode(pair);
                format!("Basic {encoded}")
            }
            SigningKind::Hmac => self.hmac(stamp, method, target, headers, mapped)?,
        };
        let value = HeaderValue::from_str(&authorization)
            .map_err(|_| Unsignable(format!("key {:?} cannot be sent in a header", self.key)))?;
        headers.insert(http::header::AUTHORIZATION, value);
        Ok(())
    }

    fn hmac<'m>(
        &self,
        stamp: &Stamp,
        method: &str,
        target: &str,
        headers: &mut HeaderMap,
        mapped: impl Iterator<Item = &'m str>,
    ) -> Result<String, Unsignable> {
        let date = HeaderValue::from_str(&stamp.date)
            .map_err(|_| Unsignable(format!("date {:?}", stamp.date)))?;
        headers.insert(X_SDK_DATE, date);
        headers.remove(X_SDK_CONTENT_SHA256);
        let mut signed: Vec<String> = ["host", "x-sdk-date"].map(String::from).to_vec();
        signed.extend(mapped.map(str::to_ascii_lowercase));
        signed.retain(|n| headers.contains_key(n.as_str()));
        let head = RequestHead {
            version: http::Version::HTTP_11,
            method,
            target,
            host: None,
            host_from: Default::default(),
            headers,
            peer: std::net::Ipv4Addr::UNSPECIFIED.into(),
            tls: false,
            client_cert: false,
            body: None,
        };
        let key = (self.key.as_str(), self.secret.0.as_slice());
        Ok(app_signature::authorization(
            &head,
            key,
            &signed,
            &stamp.date,
            &stamp.payload_hash,
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn signer(kind: SigningKind, key: &str, secret: &str) -> Signer {
        Signer {
            kind,
            key: key.into(),
            secret: Secret(secret.as_bytes().to_vec()),
        }
    }

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(
                HeaderName::from_bytes(k.as_bytes()).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        h
    }

    /// A vector computed by Huawei's Python SDK (`apigateway_sdk_python.signer.Signer.Sign`,
    /// version 1.0.0) for the same request, key, secret and date:
    /// `HttpRequest("POST", "http://10.0.0.5:8080/orders/42?b=2&a=1",
    /// {"X-Sdk-Date": "20261204T120000Z", "X-Tenant": "acme"}, '{"n":1}')`, signed as
    /// `gateway` / `s3cr3t`.
    #[test]
    fn hmac_signs_as_huaweis_sdk_does() {
        let s = signer(SigningKind::Hmac, "gateway", "s3cr3t");
        let mut h = headers(&[
            ("host", "10.0.0.5:8080"),
            ("x-tenant", "acme"),
            ("x-forwarded-for", "198.51.100.7"),
            ("x-sdk-content-sha256", "UNSIGNED-PAYLOAD"),
            ("authorization", "Bearer client-token"),
        ]);
        let stamp = s.stamp(1_796_385_600_000, br#"{"n":1}"#);
        assert_eq!(stamp.date, "20261204T120000Z");
        s.sign(
            &stamp,
            "POST",
            "/orders/42?b=2&a=1",
            &mut h,
            ["X-Tenant"].into_iter(),
        )
        .unwrap();
        assert_eq!(h.get("x-sdk-date").unwrap(), "20261204T120000Z");
        assert!(!h.contains_key("x-sdk-content-sha256"));
        assert_eq!(
            h.get("authorization").unwrap(),
            "SDK-HMAC-SHA256 Access=gateway, SignedHeaders=host;x-sdk-date;x-tenant, \
             Signature=ebce50e852b64a03876fd17dec7a5f67c550224cc9f93b257b2c198312429388"
        );
    }

    #[test]
    fn basic_is_the_key_and_secret_in_base64() {
        let s = signer(SigningKind::Basic, "gateway", "open sesame");
        let mut h = headers(&[("authorization", "Bearer client-token")]);
        let stamp = s.stamp(0, b"");
        s.sign(&stamp, "GET", "/", &mut h, std::iter::empty())
            .unwrap();
        // base64("gateway:open sesame")
        assert_eq!(
            h.get_all("authorization").iter().collect::<Vec<_>>(),
            ["Basic Z2F0ZXdheTpvcGVuIHNlc2FtZQ=="]
        );
    }

    #[test]
    fn a_key_that_cannot_be_a_header_value_is_unsignable_not_sent_unsigned() {
        let s = signer(SigningKind::Hmac, "bad\nkey", "s");
        let mut h = headers(&[("host", "a"), ("authorization", "Bearer client-token")]);
        let stamp = s.stamp(0, b"");
        let got = s.sign(&stamp, "GET", "/", &mut h, std::iter::empty());
        assert!(matches!(got, Err(Unsignable(_))), "{got:?}");
    }
}
