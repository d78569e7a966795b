//! What a scheme's test signer works on: a request of `rulegate test` being built, and the app
//! it is signed as (see [`super::Scheme::SIGN`]). The signers live beside their verifiers, so
//! they build the very canonical forms the verifiers check.

use crate::auth::{App, ServiceView};
use crate::request::RequestHead;
use http::{HeaderMap, HeaderName, HeaderValue};
use std::net::IpAddr;

pub struct Signing<'a> {
    /// The service the request's host selects.
    pub service: ServiceView<'a>,
    /// The app signing, with its key and secret from the compiled policy.
    pub app: &'a App,
    pub method: &'a str,
    pub target: &'a str,
    pub host: Option<&'a str>,
    pub body: &'a [u8],
    pub peer: IpAddr,
    pub tls: bool,
    pub client_cert: bool,
    pub headers: &'a mut HeaderMap,
    /// The test's virtual time, ms since the epoch.
    pub now_ms: i64,
}

impl Signing<'_> {
    /// The request as the verifiers see it.
    pub fn head(&self) -> RequestHead<'_> {
        RequestHead {
            version: http::Version::HTTP_11,
            method: self.method,
            target: self.target,
            host: self.host,
            host_from: Default::default(),
            headers: self.headers,
            peer: self.peer,
            tls: self.tls,
            client_cert: self.client_cert,
            body: Some(self.body),
        }
    }

    /// Set a header; `name` is lower case.
    pub fn insert(&mut self, name: &str, value: &str) -> Result<(), String> {
        let name = HeaderName::from_bytes(name.as_bytes())
            .map_err(|_| format!("cannot sign: {name:?} is not a header name"))?;
        let value = HeaderValue::from_str(value)
            .map_err(|_| format!("cannot sign: {value:?} is not a header value"))?;
        self.headers.insert(name, value);
        Ok(())
    }
}
